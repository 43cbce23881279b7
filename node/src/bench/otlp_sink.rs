//! An OTLP/HTTP trace sink for `bitcraps bench --tracing-overhead`: accepts
//! `POST /v1/traces` on 127.0.0.1, counts requests and bytes, answers with an
//! empty `ExportTraceServiceResponse` (zero bytes of protobuf), keeps
//! nothing. It stands for a collector that keeps up, so the measured cost is
//! the validators' own: building, batching and encoding spans.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::routing::post;
use axum::Router;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Largest export request accepted (the SDK's batches are far smaller).
const MAX_EXPORT_BYTES: usize = 16 * 1024 * 1024;

/// What the sink received.
#[derive(Debug, Default)]
pub struct SinkCounters {
    pub requests: AtomicU64,
    pub bytes: AtomicU64,
}

/// A running sink; stops when dropped.
#[derive(Debug)]
pub struct OtlpSink {
    pub addr: SocketAddr,
    pub counters: Arc<SinkCounters>,
    task: tokio::task::JoinHandle<()>,
}

impl OtlpSink {
    /// Binds 127.0.0.1 on a free port and serves until dropped.
    pub async fn start() -> std::io::Result<OtlpSink> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let counters = Arc::new(SinkCounters::default());
        let app = Router::new()
            .route("/v1/traces", post(export))
            .layer(DefaultBodyLimit::max(MAX_EXPORT_BYTES))
            .with_state(Arc::clone(&counters));
        let task = tokio::spawn(async move {
            // Ends when the task is aborted (drop).
            let _ = axum::serve(listener, app).await;
        });
        Ok(OtlpSink {
            addr,
            counters,
            task,
        })
    }

    /// `OTEL_EXPORTER_OTLP_ENDPOINT` for the validators.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for OtlpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn export(
    State(counters): State<Arc<SinkCounters>>,
    body: Bytes,
) -> (StatusCode, [(header::HeaderName, &'static str); 1], Bytes) {
    counters.requests.fetch_add(1, Ordering::Relaxed);
    counters
        .bytes
        .fetch_add(body.len() as u64, Ordering::Relaxed);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        Bytes::new(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_what_it_receives() {
        let sink = OtlpSink::start().await.unwrap();
        let client = reqwest::Client::new();
        for body in [vec![1u8; 10], vec![2u8; 5]] {
            let resp = client
                .post(format!("{}/v1/traces", sink.endpoint()))
                .header("content-type", "application/x-protobuf")
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
        }
        let other = client
            .post(format!("{}/v1/logs", sink.endpoint()))
            .send()
            .await
            .unwrap();
        assert_eq!(other.status(), 404);
        assert_eq!(sink.counters.requests.load(Ordering::Relaxed), 2);
        assert_eq!(sink.counters.bytes.load(Ordering::Relaxed), 15);
    }
}
