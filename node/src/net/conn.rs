//! Serving one established connection: a writer that drains the peer's queue
//! into coalesced writes on our outbound stream, and a reader that turns the
//! peer's stream into [`Incoming`] messages. Ends at the first of: the
//! connection closing, a protocol violation, a penalty kick, shutdown, or a newer
//! connection from the same peer replacing this one.

use super::clock::now;
use super::frame::{self, FrameError, FrameReader, ENVELOPE_HEADER_BYTES, LENGTH_PREFIX_BYTES};
use super::peer::{Admit, Peer};
use super::{Incoming, Limits, PenaltyReason};
use bytes::BytesMut;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

/// QUIC application close codes we use.
pub(crate) mod code {
    pub(crate) const SHUTDOWN: u32 = 0;
    pub(crate) const PROTOCOL_VIOLATION: u32 = 1;
    pub(crate) const PENALIZED: u32 = 2;
    pub(crate) const REPLACED: u32 = 3;
    pub(crate) const REFUSED: u32 = 4;
    pub(crate) const CLOSED: u32 = 5;
}

/// What every connection task needs from the network.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub(crate) limits: Arc<Limits>,
    pub(crate) incoming: mpsc::Sender<Incoming>,
    pub(crate) shutdown: watch::Receiver<bool>,
}

/// Resolves once shutdown is requested (or the network handle is gone).
pub(crate) async fn shutdown_requested(rx: &mut watch::Receiver<bool>) {
    // An Err means the sender is gone, which also means shut down.
    let _ = rx.wait_for(|stop| *stop).await;
}

/// How serving a connection ended.
#[derive(Debug)]
pub(crate) enum Ended {
    /// Lost, closed by the peer, or closed by us for misbehaviour.
    Lost,
    Shutdown,
    /// A newer connection from the same peer arrived; serve it next.
    Replaced(quinn::Connection),
}

enum Stop {
    Error(String),
    Violation(FrameError),
    Penalized,
    NodeGone,
}

pub(crate) async fn serve(
    peer: &Arc<Peer>,
    ctx: &Ctx,
    conn: quinn::Connection,
    handoff: Option<&mut mpsc::Receiver<quinn::Connection>>,
) -> Ended {
    peer.on_connected(&conn);
    let mut kicks = peer.kicks();
    kicks.borrow_and_update();
    let mut shutdown = ctx.shutdown.clone();
    let next_conn = async {
        match handoff {
            Some(rx) => rx.recv().await,
            None => std::future::pending().await,
        }
    };
    let outcome: Result<Ended, (u32, Stop)> = tokio::select! {
        r = read_loop(peer, ctx, &conn) => Err(r),
        r = write_loop(peer, ctx, &conn) => Err((code::CLOSED, r)),
        e = conn.closed() => Err((code::CLOSED, Stop::Error(format!("connection closed: {e}")))),
        _ = kicks.changed() => Err((code::PENALIZED, Stop::Penalized)),
        () = shutdown_requested(&mut shutdown) => Ok(Ended::Shutdown),
        Some(newer) = next_conn => Ok(Ended::Replaced(newer)),
    };
    match outcome {
        Ok(Ended::Shutdown) => {
            conn.close(code::SHUTDOWN.into(), b"shutdown");
            peer.on_disconnected(None);
            Ended::Shutdown
        }
        Ok(ended) => {
            conn.close(code::REPLACED.into(), b"replaced");
            peer.on_disconnected(None);
            ended
        }
        Err((close_code, stop)) => {
            let (reason, error): (&[u8], Option<String>) = match stop {
                Stop::Error(e) => (b"error", Some(e)),
                Stop::Violation(e) => (b"protocol violation", Some(e.to_string())),
                Stop::Penalized => (b"penalized", None),
                Stop::NodeGone => (b"shutdown", None),
            };
            conn.close(close_code.into(), reason);
            peer.on_disconnected(error);
            Ended::Lost
        }
    }
}

async fn read_loop(peer: &Arc<Peer>, ctx: &Ctx, conn: &quinn::Connection) -> (u32, Stop) {
    let recv = match conn.accept_uni().await {
        Ok(r) => r,
        Err(e) => return (code::CLOSED, Stop::Error(format!("accepting stream: {e}"))),
    };
    let mut frames = FrameReader::new(recv, ctx.limits.max_frame_bytes);
    loop {
        let payload = match frames.next().await {
            Ok(Some(p)) => p,
            Ok(None) => {
                return (
                    code::PROTOCOL_VIOLATION,
                    Stop::Error("peer finished its stream".into()),
                )
            }
            Err(e) if e.is_protocol_violation() => {
                let reason = match e {
                    FrameError::Oversize { .. } => PenaltyReason::Oversize,
                    _ => PenaltyReason::Protocol,
                };
                peer.penalize(reason, now());
                return (code::PROTOCOL_VIOLATION, Stop::Violation(e));
            }
            Err(e) => return (code::CLOSED, Stop::Error(e.to_string())),
        };
        let wire_bytes = payload.len() + LENGTH_PREFIX_BYTES + ENVELOPE_HEADER_BYTES;
        match peer.admit_inbound(wire_bytes, now()) {
            Admit::Deliver => {}
            Admit::Drop => continue,
            Admit::Disconnect => return (code::PENALIZED, Stop::Penalized),
        }
        // Back-pressure: once the node holds `inbound_queue_messages` of this
        // peer's messages, stop reading from it until the node catches up.
        let Ok(permit) = peer.inbound_permits.clone().acquire_owned().await else {
            return (code::SHUTDOWN, Stop::NodeGone);
        };
        let msg = Incoming {
            from: peer.index,
            bytes: payload,
            _permit: permit,
        };
        if ctx.incoming.send(msg).await.is_err() {
            return (code::SHUTDOWN, Stop::NodeGone);
        }
    }
}

async fn write_loop(peer: &Arc<Peer>, ctx: &Ctx, conn: &quinn::Connection) -> Stop {
    let mut send = match conn.open_uni().await {
        Ok(s) => s,
        Err(e) => return Stop::Error(format!("opening stream: {e}")),
    };
    let mut buf = BytesMut::new();
    loop {
        let batch = peer.drain(ctx.limits.write_batch_bytes);
        if batch.is_empty() {
            peer.wake_writer.notified().await;
            continue;
        }
        for q in &batch {
            frame::encode_into(&mut buf, &q.bytes);
        }
        let chunk = buf.split().freeze();
        let wire_bytes = chunk.len();
        if let Err(e) = send.write_chunk(chunk).await {
            return Stop::Error(format!("writing: {e}"));
        }
        peer.record_sent(&batch, wire_bytes, now());
    }
}
