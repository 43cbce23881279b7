//! The route table, the middleware stack and the server loop.
//!
//! Middleware, outermost first (each request passes them in this order, and
//! every answer one of them produces still passes the ones above it):
//!
//! 1. `correlation`: id, tracing span, per-request log line, response header.
//!    Outermost so that even 413/429/503 answers carry the id and are logged.
//! 2. `ratelimit`: per-client token bucket (429). Before anything that costs.
//! 3. `extract::reject_oversize`: a declared body above the limit (413).
//! 4. `shed`: concurrency cap (503 `overloaded`), deadline (503 `timeout`),
//!    panic barrier (500).
//! 5. `DefaultBodyLimit`: caps bodies of unknown length while they are read
//!    (`POST /api/v1/txs` has its own, larger limit: see `extract.rs`).
//!
//! axum applies `Router::layer` to every route and to the fallbacks, so
//! 404 and 405 answers get the same treatment as everything else.

use super::extract::reject_oversize;
use super::ratelimit::{rate_limit, RateLimiter};
use super::shed::{shed, Shedder};
use super::{correlation, handlers, HttpLimits, NodeApi};
use axum::extract::DefaultBodyLimit;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::{get, post};
use axum::{Extension, Router};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// The node's HTTP API with every limit of `limits` applied.
///
/// Zero limits other than `max_body_bytes` make no sense (they would refuse
/// everything); they are raised to 1 with a warning rather than failing, and
/// config validation should refuse them earlier.
pub fn router(api: Arc<dyn NodeApi>, limits: &HttpLimits) -> Router {
    warn_about_zero_limits(limits);
    let limiter = Arc::new(RateLimiter::new(
        limits.requests_per_s,
        limits.burst,
        limits.max_clients,
    ));
    let shedder = Arc::new(Shedder::new(
        limits.max_concurrent_requests,
        limits.request_timeout_ms,
    ));

    Router::new()
        .route("/livez", get(handlers::livez))
        .route("/readyz", get(handlers::readyz))
        .route("/status", get(handlers::status))
        .route("/metrics", get(handlers::metrics))
        .route("/api/v1/tx", post(handlers::submit_tx))
        // Its own body limit (`extract::body_limit` applies the same one
        // to declared lengths); this inner layer overrides the outer one.
        .route(
            handlers::SUBMIT_BATCH_PATH,
            post(handlers::submit_txs)
                .layer(DefaultBodyLimit::max(handlers::MAX_SUBMIT_BATCH_BODY_BYTES)),
        )
        .route("/api/v1/tx/{hash}", get(handlers::tx))
        .route(
            "/api/v1/blocks",
            get(handlers::blocks).layer(Extension(handlers::LongPollCap::for_request_timeout(
                limits.request_timeout_ms,
            ))),
        )
        .route("/api/v1/blocks/{height}", get(handlers::block))
        .route("/api/v1/accounts/{key}", get(handlers::account))
        .route("/api/v1/tables", get(handlers::tables))
        .route("/api/v1/tables/{id}", get(handlers::table))
        .route("/api/v1/tables/{id}/rolls", get(handlers::rolls))
        .route("/api/v1/game", get(handlers::game))
        .route("/api/v1/supply", get(handlers::supply))
        .route("/api/v1/peers", get(handlers::peers))
        // The static segment wins over `{id}` (axum matches it first).
        .route(
            "/api/v1/correlation/stats",
            get(handlers::correlation_stats),
        )
        .route("/api/v1/correlation/{id}", get(handlers::correlation))
        .route(
            "/api/v1/memory-protection/status",
            get(handlers::memory_protection),
        )
        .route("/api/v1/admin/wipe", post(handlers::admin_wipe))
        .route(
            "/api/v1/admin/rotate-identity",
            post(handlers::admin_rotate_identity),
        )
        // Applies to the routes above only: keep it after the last route.
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .fallback(handlers::not_found)
        .with_state(api)
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(from_fn_with_state(shedder, shed))
        .layer(from_fn_with_state(limits.max_body_bytes, reject_oversize))
        .layer(from_fn_with_state(limiter, rate_limit))
        .layer(from_fn(correlation::correlate))
}

/// Serves [`router`] on `listener` until `shutdown` completes, then stops
/// accepting, lets requests in flight finish and returns.
///
/// Draining is bounded: requests cannot outlive `request_timeout_ms`, so a
/// connection still open [`DRAIN_GRACE_MS`] after that is idle or stalled
/// (e.g. a client that never finishes its headers) and is abandoned, rather
/// than holding the node's shutdown forever.
///
/// Client addresses reach the rate limiter through `ConnectInfo`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    api: Arc<dyn NodeApi>,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(api, &limits);
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "HTTP API listening");
    }
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.await;
        tracing::info!("HTTP API shutting down: no new connections, draining");
        let _ = stopping_tx.send(());
    });
    let drain_limit = Duration::from_millis(
        limits
            .request_timeout_ms
            .max(1)
            .saturating_add(DRAIN_GRACE_MS),
    );
    let drain_deadline = async move {
        if stopping_rx.await.is_ok() {
            tokio::time::sleep(drain_limit).await;
        } else {
            // The server ended before the signal (it only does on error).
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        result = server => result?,
        () = drain_deadline => {
            tracing::warn!(
                drain_limit_ms = drain_limit.as_millis() as u64,
                "HTTP connections still open after the drain limit; abandoning them"
            );
        }
    }
    tracing::info!("HTTP API stopped");
    Ok(())
}

/// How long past `request_timeout_ms` [`serve`] waits for connections to
/// close after shutdown was requested.
pub const DRAIN_GRACE_MS: u64 = 1_000;

fn warn_about_zero_limits(limits: &HttpLimits) {
    let zeros = [
        ("requests_per_s", u64::from(limits.requests_per_s)),
        ("burst", u64::from(limits.burst)),
        ("max_clients", limits.max_clients as u64),
        (
            "max_concurrent_requests",
            limits.max_concurrent_requests as u64,
        ),
        ("request_timeout_ms", limits.request_timeout_ms),
    ];
    for (field, value) in zeros {
        if value == 0 {
            tracing::warn!(
                field,
                "http limit is 0, which would refuse every request; using 1"
            );
        }
    }
}
