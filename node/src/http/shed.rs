//! Load shedding: a cap on requests in flight, a deadline per request, and a
//! panic barrier.
//!
//! * **Concurrency.** At most `max_concurrent_requests` requests are past this
//!   layer at once. One more is answered 503 `overloaded` immediately instead
//!   of queueing: a queue in front of a saturated node only adds latency until
//!   clients time out anyway, and an unbounded one is a memory leak. The
//!   health endpoints are exempt (they are constant-time and must keep
//!   answering a busy node's orchestrator).
//! * **Deadline.** A request not answered within `request_timeout_ms` gets 503
//!   `timeout`; its handler future is dropped, which releases its permit (and
//!   cancels e.g. a `submit` still waiting on the mempool). The deadline also
//!   covers reading the body, so a client trickling bytes cannot hold a
//!   permit forever.
//! * **Panics.** A panic in a handler (or in the `NodeApi` implementation it
//!   calls) becomes a logged 500 with the correlation id, instead of a reset
//!   connection; the server keeps serving.

use super::error::{codes, HttpError};
use super::is_health_path;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::Semaphore;

#[derive(Debug)]
pub(crate) struct Shedder {
    permits: Arc<Semaphore>,
    max_concurrent_requests: usize,
    timeout: Duration,
}

impl Shedder {
    /// `max_concurrent_requests` is clamped to `1..=Semaphore::MAX_PERMITS`
    /// (tokio panics above it) and `request_timeout_ms` to at least 1.
    pub(crate) fn new(max_concurrent_requests: usize, request_timeout_ms: u64) -> Self {
        let max_concurrent_requests = max_concurrent_requests.clamp(1, Semaphore::MAX_PERMITS);
        Shedder {
            permits: Arc::new(Semaphore::new(max_concurrent_requests)),
            max_concurrent_requests,
            timeout: Duration::from_millis(request_timeout_ms.max(1)),
        }
    }
}

/// Middleware: concurrency cap, deadline and panic barrier (see module docs).
pub(crate) async fn shed(
    State(shedder): State<Arc<Shedder>>,
    req: Request,
    next: Next,
) -> Response {
    // Held until the response is built (or the handler is dropped).
    let _permit = if is_health_path(req.uri().path()) {
        None
    } else {
        match Arc::clone(&shedder.permits).try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                let mut response = HttpError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    codes::OVERLOADED,
                    format!(
                        "the node is already handling {} requests; retry shortly",
                        shedder.max_concurrent_requests
                    ),
                )
                .into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(1u64));
                return response;
            }
        }
    };

    let handler = CatchUnwind {
        inner: Box::pin(next.run(req)),
    };
    match tokio::time::timeout(shedder.timeout, handler).await {
        Ok(Ok(response)) => response,
        Ok(Err(panic)) => HttpError::internal(&format!(
            "request handler panicked: {}",
            panic_message(panic.as_ref())
        ))
        .into_response(),
        Err(_elapsed) => HttpError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            codes::TIMEOUT,
            format!(
                "the request took longer than {} ms",
                shedder.timeout.as_millis()
            ),
        )
        .into_response(),
    }
}

/// Polls a future, turning a panic into `Err(payload)`.
///
/// `AssertUnwindSafe` is sound here because the panicked future is never
/// polled again (it is dropped with this wrapper); shared state it touched is
/// behind the `NodeApi` implementation's own synchronisation (std locks
/// poison, and the node's code treats that as it must anyway).
struct CatchUnwind<F> {
    inner: Pin<Box<F>>,
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.inner.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "non-string panic payload"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamps_limits() {
        let s = Shedder::new(0, 0);
        assert_eq!(s.max_concurrent_requests, 1);
        assert_eq!(s.timeout, Duration::from_millis(1));
        // Would panic inside tokio unclamped.
        let s = Shedder::new(usize::MAX, u64::MAX);
        assert_eq!(s.max_concurrent_requests, Semaphore::MAX_PERMITS);
    }

    #[tokio::test]
    async fn catch_unwind_turns_panics_into_errors() {
        let ok = CatchUnwind {
            inner: Box::pin(async { 7 }),
        };
        assert_eq!(ok.await.ok(), Some(7));
        let boom = CatchUnwind {
            inner: Box::pin(async {
                if std::hint::black_box(true) {
                    panic!("boom {}", 42);
                }
                7
            }),
        };
        let payload = boom.await.err().unwrap();
        assert_eq!(panic_message(payload.as_ref()), "boom 42");
    }
}
