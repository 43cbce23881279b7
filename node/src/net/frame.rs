//! Length-delimited frames with a versioned envelope, on one long-lived QUIC
//! stream per direction.
//!
//! Wire format of one frame:
//!
//! ```text
//! u32 big-endian body length | envelope version (1) | kind | payload
//!
//! kind 0 (data):  payload = the node's message
//! kind 1 (relay): payload = origin: u16 BE | target: u16 BE | hops_left: u8 | inner message
//! ```
//!
//! The length is checked against the limit *before* anything is allocated, so a
//! peer cannot make us reserve memory by announcing a huge frame. The limit
//! applies to the whole payload of every kind, so a relayed message can carry at
//! most `limit - RELAY_HEADER_BYTES` bytes: never more than a direct one could.
//! The envelope version lets the transport evolve independently of the consensus
//! codec (whose own version byte is inside the payload); adding a kind does not
//! need a new version because a node that does not know a kind refuses it.
//!
//! What a relay frame means (who may send which header to whom) is decided in
//! `relay.rs`; this module only checks what can be checked without knowing the
//! connection: the header is complete and `hops_left` is within
//! [`MAX_RELAY_HOPS`].
//!
//! Why one stream per direction and coalesced writes: a QUIC stream per message
//! costs a stream open and a frame header, and every separate `write` is a trip
//! through quinn's connection lock; batching many frames into one write was
//! measured at ~7x the throughput of writing each message separately.

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, BufReader};

/// Envelope version this node writes and accepts.
pub const ENVELOPE_VERSION: u8 = 1;
/// Envelope kind: an opaque payload for the node (a consensus message).
pub const KIND_DATA: u8 = 0;
/// Envelope kind: a message relayed for a validator we may not reach directly.
pub const KIND_RELAY: u8 = 1;
/// Bytes of the relay header (origin, target, hops left) inside the payload.
pub const RELAY_HEADER_BYTES: usize = 5;
/// Largest `hops_left` a relay frame may carry: one intermediate validator (see
/// `relay.rs` for why one hop is enough and more would amplify).
pub const MAX_RELAY_HOPS: u8 = 1;
/// Bytes of the length prefix.
pub const LENGTH_PREFIX_BYTES: usize = 4;
/// Bytes of the envelope header (version + kind).
pub const ENVELOPE_HEADER_BYTES: usize = 2;
/// Hard limit on a payload: the consensus codec's message limit.
pub const MAX_FRAME_BYTES: usize = bitcraps_consensus::params::MAX_MESSAGE_BYTES;

/// Why a frame stream was refused or ended.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    Oversize { len: usize, max: usize },
    #[error("frame shorter than the envelope header")]
    Truncated,
    #[error("unknown envelope version {0}")]
    BadVersion(u8),
    #[error("unknown envelope kind {0}")]
    UnknownKind(u8),
    #[error("stream ended in the middle of a frame")]
    UnexpectedEof,
    #[error("bad relay frame: {0}")]
    BadRelay(&'static str),
    #[error("stream read failed: {0}")]
    Io(String),
}

impl FrameError {
    /// True when the peer broke the protocol (as opposed to the stream failing).
    pub fn is_protocol_violation(&self) -> bool {
        !matches!(self, FrameError::Io(_) | FrameError::UnexpectedEof)
    }
}

/// The routing header of a relay frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayHeader {
    /// The validator that wrote the message (claimed by the sender of the frame).
    pub origin: u16,
    /// The validator the message is for.
    pub target: u16,
    /// How many more times the message may be forwarded.
    pub hops_left: u8,
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A message from the peer itself.
    Data(Bytes),
    /// A message relayed through the peer (or for the peer to forward).
    Relay { header: RelayHeader, inner: Bytes },
}

impl Frame {
    /// Bytes after the envelope header (what the frame limit applies to).
    pub fn payload_len(&self) -> usize {
        match self {
            Frame::Data(b) => b.len(),
            Frame::Relay { inner, .. } => RELAY_HEADER_BYTES + inner.len(),
        }
    }

    /// Bytes on the wire, length prefix included.
    pub fn wire_len(&self) -> usize {
        LENGTH_PREFIX_BYTES + ENVELOPE_HEADER_BYTES + self.payload_len()
    }

    /// Appends the encoded frame to `buf`.
    pub fn encode_into(&self, buf: &mut BytesMut) {
        match self {
            Frame::Data(b) => put_frame(buf, None, b),
            Frame::Relay { header, inner } => put_frame(buf, Some(*header), inner),
        }
    }
}

/// Appends one data frame carrying `payload` to `buf`.
pub fn encode_into(buf: &mut BytesMut, payload: &[u8]) {
    put_frame(buf, None, payload);
}

/// Appends one relay frame carrying `header` and `inner` to `buf`.
pub fn encode_relay_into(buf: &mut BytesMut, header: RelayHeader, inner: &[u8]) {
    put_frame(buf, Some(header), inner);
}

/// A data frame without a relay header, a relay frame with one.
fn put_frame(buf: &mut BytesMut, relay: Option<RelayHeader>, body: &[u8]) {
    let (kind, header_bytes) = match relay {
        None => (KIND_DATA, 0),
        Some(_) => (KIND_RELAY, RELAY_HEADER_BYTES),
    };
    let body_len = ENVELOPE_HEADER_BYTES + header_bytes + body.len();
    buf.reserve(LENGTH_PREFIX_BYTES + body_len);
    // Payloads are limited to MAX_FRAME_BYTES (8 MiB) before they are queued, so
    // the body length always fits a u32; saturate rather than wrap if not.
    buf.put_u32(u32::try_from(body_len).unwrap_or(u32::MAX));
    buf.put_u8(ENVELOPE_VERSION);
    buf.put_u8(kind);
    if let Some(h) = relay {
        buf.put_u16(h.origin);
        buf.put_u16(h.target);
        buf.put_u8(h.hops_left);
    }
    buf.put_slice(body);
}

/// Splits a relay payload into its header and the inner message.
fn decode_relay(payload: Bytes) -> Result<Frame, FrameError> {
    let Some(&[o0, o1, t0, t1, hops_left]) = payload.get(..RELAY_HEADER_BYTES) else {
        return Err(FrameError::BadRelay(
            "payload shorter than the relay header",
        ));
    };
    let header = RelayHeader {
        origin: u16::from_be_bytes([o0, o1]),
        target: u16::from_be_bytes([t0, t1]),
        hops_left,
    };
    if header.hops_left > MAX_RELAY_HOPS {
        return Err(FrameError::BadRelay("hops_left above MAX_RELAY_HOPS"));
    }
    Ok(Frame::Relay {
        header,
        inner: payload.slice(RELAY_HEADER_BYTES..),
    })
}

/// Reads frames from a byte stream, buffering reads.
#[derive(Debug)]
pub struct FrameReader<R> {
    inner: BufReader<R>,
    max_payload_bytes: usize,
}

/// Read buffer size: large enough that small frames cost one read per many.
const READ_BUFFER_BYTES: usize = 64 * 1024;

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(stream: R, max_payload_bytes: usize) -> Self {
        FrameReader {
            inner: BufReader::with_capacity(READ_BUFFER_BYTES, stream),
            max_payload_bytes,
        }
    }

    /// The next frame, `Ok(None)` when the stream ended cleanly between frames.
    pub async fn next(&mut self) -> Result<Option<Frame>, FrameError> {
        let mut prefix = [0u8; LENGTH_PREFIX_BYTES];
        // Read the first byte separately so a clean end of stream is told apart
        // from one that cuts a frame.
        match self.inner.read(&mut prefix[..1]).await {
            Ok(0) => return Ok(None),
            Ok(_) => {}
            Err(e) => return Err(FrameError::Io(e.to_string())),
        }
        self.read_exact(&mut prefix[1..]).await?;
        let body_len = u32::from_be_bytes(prefix) as usize;
        let max_body = self.max_payload_bytes + ENVELOPE_HEADER_BYTES;
        if body_len > max_body {
            return Err(FrameError::Oversize {
                len: body_len.saturating_sub(ENVELOPE_HEADER_BYTES),
                max: self.max_payload_bytes,
            });
        }
        if body_len < ENVELOPE_HEADER_BYTES {
            return Err(FrameError::Truncated);
        }
        let mut header = [0u8; ENVELOPE_HEADER_BYTES];
        self.read_exact(&mut header).await?;
        if header[0] != ENVELOPE_VERSION {
            return Err(FrameError::BadVersion(header[0]));
        }
        let kind = header[1];
        if kind != KIND_DATA && kind != KIND_RELAY {
            return Err(FrameError::UnknownKind(kind));
        }
        let mut payload = vec![0u8; body_len - ENVELOPE_HEADER_BYTES];
        self.read_exact(&mut payload).await?;
        let payload = Bytes::from(payload);
        if kind == KIND_RELAY {
            return decode_relay(payload).map(Some);
        }
        Ok(Some(Frame::Data(payload)))
    }

    async fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), FrameError> {
        match self.inner.read_exact(buf).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                Err(FrameError::UnexpectedEof)
            }
            Err(e) => Err(FrameError::Io(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_all(bytes: &[u8], max: usize) -> Vec<Result<Option<Frame>, FrameError>> {
        let mut r = FrameReader::new(bytes, max);
        let mut out = Vec::new();
        loop {
            let item = r.next().await;
            let stop = !matches!(item, Ok(Some(_)));
            out.push(item);
            if stop {
                return out;
            }
        }
    }

    #[tokio::test]
    async fn round_trip_many_frames_in_one_buffer() {
        let mut buf = BytesMut::new();
        for p in [&b"a"[..], b"", b"hello world"] {
            encode_into(&mut buf, p);
        }
        let got = read_all(&buf, 100).await;
        assert_eq!(
            got,
            vec![
                Ok(Some(Frame::Data(Bytes::from_static(b"a")))),
                Ok(Some(Frame::Data(Bytes::new()))),
                Ok(Some(Frame::Data(Bytes::from_static(b"hello world")))),
                Ok(None),
            ]
        );
    }

    #[tokio::test]
    async fn relay_frames_round_trip_and_share_the_limit() {
        let header = RelayHeader {
            origin: 0x0102,
            target: 0x0304,
            hops_left: 1,
        };
        let mut buf = BytesMut::new();
        encode_relay_into(&mut buf, header, b"inner");
        assert_eq!(
            &buf[..11],
            &[0, 0, 0, 12, ENVELOPE_VERSION, KIND_RELAY, 1, 2, 3, 4, 1]
        );
        let relayed = Frame::Relay {
            header,
            inner: Bytes::from_static(b"inner"),
        };
        assert_eq!(relayed.wire_len(), buf.len());
        relayed.encode_into(&mut buf);
        Frame::Data(Bytes::from_static(b"direct")).encode_into(&mut buf);
        let got = read_all(&buf, 100).await;
        assert_eq!(got[0], Ok(Some(relayed.clone())));
        assert_eq!(got[1], Ok(Some(relayed)));
        assert_eq!(got[2], Ok(Some(Frame::Data(Bytes::from_static(b"direct")))));
        // The limit covers header and inner: 96 inner bytes fit 100, 97 do not.
        let mut buf = BytesMut::new();
        encode_relay_into(&mut buf, header, &[7; 95]);
        encode_relay_into(&mut buf, header, &[7; 96]);
        let got = read_all(&buf, 100).await;
        assert!(matches!(got[0], Ok(Some(Frame::Relay { ref inner, .. })) if inner.len() == 95));
        assert_eq!(got[1], Err(FrameError::Oversize { len: 101, max: 100 }));
    }

    #[tokio::test]
    async fn broken_relay_headers_are_violations() {
        for body in [&[][..], &[0, 1, 0, 2][..]] {
            let mut buf = BytesMut::new();
            let len = (ENVELOPE_HEADER_BYTES + body.len()) as u32;
            buf.put_u32(len);
            buf.put_slice(&[ENVELOPE_VERSION, KIND_RELAY]);
            buf.put_slice(body);
            let got = read_all(&buf, 100).await;
            assert!(matches!(got[0], Err(FrameError::BadRelay(_))), "{got:?}");
            assert!(got[0].as_ref().unwrap_err().is_protocol_violation());
        }
        let mut buf = BytesMut::new();
        let hops = RelayHeader {
            origin: 0,
            target: 1,
            hops_left: MAX_RELAY_HOPS + 1,
        };
        encode_relay_into(&mut buf, hops, b"x");
        let got = read_all(&buf, 100).await;
        assert!(matches!(got[0], Err(FrameError::BadRelay(_))));
    }

    #[tokio::test]
    async fn oversize_is_refused_from_the_prefix_alone() {
        // Announces 4 GiB and sends nothing else: must fail without allocating.
        let got = read_all(&[0xff, 0xff, 0xff, 0xff], 100).await;
        assert!(matches!(got[0], Err(FrameError::Oversize { .. })));
        let mut buf = BytesMut::new();
        encode_into(&mut buf, &[0u8; 101]);
        let got = read_all(&buf, 100).await;
        assert_eq!(got[0], Err(FrameError::Oversize { len: 101, max: 100 }));
        assert!(got[0].as_ref().unwrap_err().is_protocol_violation());
    }

    #[tokio::test]
    async fn bad_envelopes_and_cut_frames() {
        assert_eq!(
            read_all(&[0, 0, 0, 2, 9, 0], 100).await[0],
            Err(FrameError::BadVersion(9))
        );
        assert_eq!(
            read_all(&[0, 0, 0, 2, ENVELOPE_VERSION, 2], 100).await[0],
            Err(FrameError::UnknownKind(2))
        );
        assert_eq!(
            read_all(&[0, 0, 0, 2, ENVELOPE_VERSION, 7], 100).await[0],
            Err(FrameError::UnknownKind(7))
        );
        assert_eq!(
            read_all(&[0, 0, 0, 1, ENVELOPE_VERSION], 100).await[0],
            Err(FrameError::Truncated)
        );
        assert_eq!(
            read_all(&[0, 0, 0, 5, ENVELOPE_VERSION, 0, 1], 100).await[0],
            Err(FrameError::UnexpectedEof)
        );
        assert_eq!(
            read_all(&[0, 0], 100).await[0],
            Err(FrameError::UnexpectedEof)
        );
    }
}
