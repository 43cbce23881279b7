//! Serving one established connection: a writer that drains the peer's queue
//! into coalesced writes on our outbound stream, and a reader that turns the
//! peer's stream into [`Incoming`] messages (its own, and those it relays to
//! us) and forwards relay frames it asks us to pass on (see `relay.rs`). Ends
//! at the first of: the connection closing, a protocol violation, a penalty
//! kick, shutdown, or a newer connection from the same peer replacing this one.

use super::clock::now;
use super::frame::{Frame, FrameError, FrameReader, RelayHeader};
use super::peer::{lock, Admit, Peer};
use super::relay::{self, RecentDigests, Route};
use super::{Incoming, Limits, PenaltyReason};
use bytes::{Bytes, BytesMut};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
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
    /// Our validator index.
    pub(crate) me: u16,
    pub(crate) limits: Arc<Limits>,
    pub(crate) incoming: mpsc::Sender<Incoming>,
    pub(crate) shutdown: watch::Receiver<bool>,
    /// Every other validator, to forward relay frames to.
    pub(crate) peers: Arc<BTreeMap<u16, Arc<Peer>>>,
    /// Relayed messages delivered recently (shared by all connections, since
    /// the copies of one message arrive through different relays).
    pub(crate) recent_relayed: Arc<Mutex<RecentDigests>>,
}

impl Ctx {
    /// Whether `index` is in the validator set.
    fn is_validator(&self, index: u16) -> bool {
        index == self.me || self.peers.contains_key(&index)
    }
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
            peer.on_disconnected(None, now());
            Ended::Shutdown
        }
        Ok(ended) => {
            conn.close(code::REPLACED.into(), b"replaced");
            peer.on_disconnected(None, now());
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
            peer.on_disconnected(error, now());
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
        let frame = match frames.next().await {
            Ok(Some(f)) => f,
            Ok(None) => {
                return (
                    code::PROTOCOL_VIOLATION,
                    Stop::Error("peer finished its stream".into()),
                )
            }
            Err(e) if e.is_protocol_violation() => return violation(peer, e),
            Err(e) => return (code::CLOSED, Stop::Error(e.to_string())),
        };
        // Every frame, relayed or not, is charged to the connection it came on.
        match peer.admit_inbound(frame.wire_len(), now()) {
            Admit::Deliver => {}
            Admit::Drop => continue,
            Admit::Disconnect => return (code::PENALIZED, Stop::Penalized),
        }
        let (from, relayed_by, bytes) = match frame {
            Frame::Data(bytes) => (peer.index, None, bytes),
            Frame::Relay { header, inner } => {
                let route = relay::route(&header, ctx.me, peer.index, |i| ctx.is_validator(i));
                let route = match route {
                    Ok(r) => r,
                    Err(why) => return violation(peer, FrameError::BadRelay(why)),
                };
                if !peer.admit_relay(header.origin, now()) {
                    continue;
                }
                match route {
                    Route::Forward => {
                        forward(peer, ctx, header, inner);
                        continue;
                    }
                    Route::Deliver => {
                        let fresh = lock(&ctx.recent_relayed)
                            .first_sighting(relay::digest(header.origin, &inner), now());
                        if !fresh {
                            peer.count_relay_duplicate();
                            continue;
                        }
                        (header.origin, Some(peer.index), inner)
                    }
                }
            }
        };
        // Back-pressure: once the node holds `inbound_queue_messages` of the
        // messages that came on this connection (relayed ones included), stop
        // reading from it until the node catches up.
        let Ok(permit) = peer.inbound_permits.clone().acquire_owned().await else {
            return (code::SHUTDOWN, Stop::NodeGone);
        };
        let msg = Incoming {
            from,
            relayed_by,
            bytes,
            _permit: permit,
        };
        if ctx.incoming.send(msg).await.is_err() {
            return (code::SHUTDOWN, Stop::NodeGone);
        }
    }
}

/// Penalizes a protocol violation and ends the connection.
fn violation(peer: &Peer, e: FrameError) -> (u32, Stop) {
    let reason = match e {
        FrameError::Oversize { .. } => PenaltyReason::Oversize,
        _ => PenaltyReason::Protocol,
    };
    peer.penalize(reason, now());
    (code::PROTOCOL_VIOLATION, Stop::Violation(e))
}

/// Passes a relay frame from `from` on to its target, if we have a live
/// connection to it. Messages for a target we cannot reach are dropped, not
/// queued: holding other validators' traffic for a reconnect is the origin's
/// job (it queues its own copy).
fn forward(from: &Peer, ctx: &Ctx, header: RelayHeader, inner: Bytes) {
    let at = now();
    match ctx.peers.get(&header.target) {
        Some(target) if target.is_live(at) => {
            let header = RelayHeader {
                hops_left: header.hops_left.saturating_sub(1),
                ..header
            };
            target.enqueue_relay(header, inner, at);
        }
        _ => from.count_relay_dropped(),
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
            q.frame.encode_into(&mut buf);
        }
        let chunk = buf.split().freeze();
        let wire_bytes = chunk.len();
        if let Err(e) = send.write_chunk(chunk).await {
            return Stop::Error(format!("writing: {e}"));
        }
        peer.record_sent(&batch, wire_bytes, now());
    }
}
