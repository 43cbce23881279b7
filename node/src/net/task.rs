//! The per-peer task that keeps exactly one connection alive.
//!
//! Which side connects is fixed by index (the lower dials), so the pair never
//! builds two connections at once. The dialing side redials with jittered
//! exponential backoff behind the circuit breaker; the accepting side serves
//! whatever connection the accept loop hands it, a newer one replacing an older.

use super::backoff::{Backoff, Jitter};
use super::clock::now;
use super::conn::{self, serve, shutdown_requested, Ctx, Ended};
use super::peer::Peer;
use super::tls;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Sleeps for `d`; returns true if shutdown was requested meanwhile.
async fn sleep_or_shutdown(d: Duration, ctx: &Ctx) -> bool {
    let mut shutdown = ctx.shutdown.clone();
    tokio::select! {
        () = tokio::time::sleep(d) => false,
        () = shutdown_requested(&mut shutdown) => true,
    }
}

async fn dial(
    endpoint: &quinn::Endpoint,
    config: &quinn::ClientConfig,
    allowed: &tls::AllowedKeys,
    peer: &Peer,
    timeout: Duration,
) -> Result<quinn::Connection, String> {
    let connecting = endpoint
        .connect_with(config.clone(), peer.addr, tls::SERVER_NAME)
        .map_err(|e| format!("dial {}: {e}", peer.addr))?;
    let conn = match tokio::time::timeout(timeout, connecting).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return Err(format!("dial {}: {e}", peer.addr)),
        Err(_) => return Err(format!("dial {}: timed out", peer.addr)),
    };
    // The verifier already pinned the key; these cannot fail with our own
    // configuration, but a connection we cannot attribute is never served.
    let key = tls::peer_public_key(&conn);
    let index = key.as_ref().and_then(|k| allowed.index_of(k));
    match key {
        Some(key) if index == Some(peer.index) && tls::negotiated_alpn(&conn) => {
            if allowed.confirm(peer.index, &key) {
                tracing::info!(
                    peer = peer.index,
                    "peer uses its rotated identity key; previous key retired"
                );
            }
            Ok(conn)
        }
        _ => {
            conn.close(conn::code::REFUSED.into(), b"identity");
            Err(format!(
                "dial {}: unexpected identity or protocol",
                peer.addr
            ))
        }
    }
}

fn refused_by_peer(conn: &quinn::Connection) -> bool {
    matches!(
        conn.close_reason(),
        Some(quinn::ConnectionError::ApplicationClosed(c)) if c.error_code == conn::code::REFUSED.into()
    )
}

/// Keeps a connection to a peer with a higher index.
pub(crate) async fn run_dialer(
    peer: Arc<Peer>,
    ctx: Ctx,
    endpoint: quinn::Endpoint,
    client: quinn::ClientConfig,
    allowed: tls::AllowedKeys,
    jitter_seed: u64,
) {
    let limits = Arc::clone(&ctx.limits);
    let mut backoff = Backoff::new(
        limits.reconnect_base_ms,
        limits.reconnect_max_ms,
        Jitter::new(jitter_seed),
    );
    let connect_timeout = Duration::from_millis(limits.connect_timeout_ms);
    let stable_after = Duration::from_millis(limits.reconnect_max_ms);
    let mut shutdown = ctx.shutdown.clone();
    loop {
        if *ctx.shutdown.borrow() {
            return;
        }
        if let Some(wait) = peer.breaker_wait(now()) {
            if sleep_or_shutdown(wait, &ctx).await {
                return;
            }
            continue;
        }
        let attempt = tokio::select! {
            r = dial(&endpoint, &client, &allowed, &peer, connect_timeout) => r,
            () = shutdown_requested(&mut shutdown) => return,
        };
        match attempt {
            Ok(conn) => {
                let started = now();
                if let Ended::Shutdown = serve(&peer, &ctx, conn.clone(), None).await {
                    return;
                }
                if refused_by_peer(&conn) {
                    // The handshake completed but the peer turned us away (it is
                    // cooling us down, or has no room): that is a failed attempt.
                    peer.on_dial_failure(format!("dial {}: refused by peer", peer.addr), now());
                }
                // Only a connection that lasted counts as recovery; a peer that
                // accepts and drops us at once keeps backing off.
                if now().saturating_duration_since(started) >= stable_after {
                    backoff.reset();
                }
            }
            Err(e) => peer.on_dial_failure(e, now()),
        }
        if sleep_or_shutdown(backoff.next_delay(), &ctx).await {
            return;
        }
    }
}

/// Serves connections from a peer with a lower index.
pub(crate) async fn run_acceptor(
    peer: Arc<Peer>,
    ctx: Ctx,
    mut handoff: mpsc::Receiver<quinn::Connection>,
) {
    let mut shutdown = ctx.shutdown.clone();
    loop {
        let conn = tokio::select! {
            c = handoff.recv() => match c {
                Some(c) => c,
                None => return,
            },
            () = shutdown_requested(&mut shutdown) => return,
        };
        let mut next = Some(conn);
        while let Some(conn) = next.take() {
            match serve(&peer, &ctx, conn, Some(&mut handoff)).await {
                Ended::Replaced(newer) => next = Some(newer),
                Ended::Shutdown => return,
                Ended::Lost => {}
            }
        }
    }
}
