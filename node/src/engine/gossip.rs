//! Transaction gossip: every transaction a client submits reaches every
//! validator's mempool, so whichever validator leads next can propose it.
//!
//! Without it a transaction waits in the mempool of the validator it was sent
//! to until that validator's turn as leader (n - 1 views on average at worst),
//! and a crashed validator strands what it was sent. With it the next leader
//! has it within a network hop. Each validator still verifies each signature
//! once (at gossip admission instead of at execution; the verdict cache
//! carries it to execution), so gossip moves verification work, it does not
//! add any.
//!
//! Only transactions admitted from clients are gossiped, once, by the node
//! that admitted them (no re-gossip: the network is a full mesh, relayed where
//! links are down). A transaction may carry its trace context (the binary
//! form of a W3C `traceparent`: trace id = correlation id, parent span id,
//! flags) so that whichever validator proposes it can put it in the trace
//! envelope.
//!
//! ```text
//! 0xB8 | version (1) | count: u16 BE |
//!     count x ( flags (1) | [trace id (16) | parent span id (8)] if bit 0 |
//!               len: u16 BE | transaction (len) )
//! ```
//!
//! flags: bit 0 = trace context present, bit 1 = sampled, bit 2 = the parent
//! span id is meaningful. Other bits must be zero.

use crate::trace::tracker::Origin;
use uuid::Uuid;

/// First byte of a gossip frame.
pub const TX_GOSSIP_TAG: u8 = 0xB8;
const VERSION: u8 = 1;
const HEADER_BYTES: usize = 1 + 1 + 2;
const TRACE_BYTES: usize = 16 + 8;
/// Most transactions in one frame.
pub const MAX_GOSSIP_TXS: usize = 2_048;
/// A frame is flushed once it holds this many bytes (well under the frame
/// limit, so it never has to be split).
pub const GOSSIP_FLUSH_BYTES: usize = 256 * 1024;

const FLAG_TRACE: u8 = 0b001;
const FLAG_SAMPLED: u8 = 0b010;
const FLAG_PARENT: u8 = 0b100;

/// One gossiped transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GossipTx {
    pub encoded: Vec<u8>,
    pub trace: Option<(Uuid, Origin)>,
}

/// Why a gossip frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GossipError {
    #[error("not a gossip frame")]
    WrongTag,
    #[error("unknown gossip frame version {0}")]
    Version(u8),
    #[error("gossip frame truncated")]
    Truncated,
    #[error("gossip frame with {0} transactions (limit {MAX_GOSSIP_TXS})")]
    TooMany(usize),
    #[error("gossip entry with reserved flag bits {0:#04x}")]
    Flags(u8),
    #[error("gossip entry of {len} bytes (limit {max})")]
    TooLarge { len: usize, max: usize },
    #[error("{0} trailing bytes after the last gossip entry")]
    Trailing(usize),
}

/// Transactions waiting to be gossiped, flushed as one frame.
#[derive(Debug, Default)]
pub struct GossipBatch {
    frame: Vec<u8>,
    count: usize,
}

impl GossipBatch {
    /// Adds a transaction; returns a full frame to send when this one filled
    /// the batch.
    pub fn push(&mut self, tx: &[u8], trace: Option<(Uuid, Origin)>) -> Option<Vec<u8>> {
        let Ok(len) = u16::try_from(tx.len()) else {
            return None; // larger than any admissible transaction
        };
        if self.count == 0 {
            self.frame.clear();
            self.frame
                .extend_from_slice(&[TX_GOSSIP_TAG, VERSION, 0, 0]);
        }
        let mut flags = 0;
        if let Some((_, origin)) = &trace {
            flags |= FLAG_TRACE;
            if origin.sampled {
                flags |= FLAG_SAMPLED;
            }
            if origin.parent_span_id.is_some() {
                flags |= FLAG_PARENT;
            }
        }
        self.frame.push(flags);
        if let Some((id, origin)) = &trace {
            self.frame.extend_from_slice(id.as_bytes());
            self.frame
                .extend_from_slice(&origin.parent_span_id.unwrap_or([0; 8]));
        }
        self.frame.extend_from_slice(&len.to_be_bytes());
        self.frame.extend_from_slice(tx);
        self.count += 1;
        if self.count >= MAX_GOSSIP_TXS || self.frame.len() >= GOSSIP_FLUSH_BYTES {
            return self.take();
        }
        None
    }

    /// The pending frame, if any.
    pub fn take(&mut self) -> Option<Vec<u8>> {
        if self.count == 0 {
            return None;
        }
        // MAX_GOSSIP_TXS fits a u16.
        let count = (self.count as u16).to_be_bytes();
        self.frame[2..4].copy_from_slice(&count);
        self.count = 0;
        Some(std::mem::take(&mut self.frame))
    }
}

/// Parses a gossip frame; `max_tx_bytes` bounds each transaction.
pub fn decode(bytes: &[u8], max_tx_bytes: usize) -> Result<Vec<GossipTx>, GossipError> {
    if bytes.first() != Some(&TX_GOSSIP_TAG) {
        return Err(GossipError::WrongTag);
    }
    if bytes.len() < HEADER_BYTES {
        return Err(GossipError::Truncated);
    }
    if bytes[1] != VERSION {
        return Err(GossipError::Version(bytes[1]));
    }
    let count = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
    if count > MAX_GOSSIP_TXS {
        return Err(GossipError::TooMany(count));
    }
    let mut rest = &bytes[HEADER_BYTES..];
    let mut take = |n: usize| -> Result<&[u8], GossipError> {
        if rest.len() < n {
            return Err(GossipError::Truncated);
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Ok(head)
    };
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let flags = take(1)?[0];
        if flags & !(FLAG_TRACE | FLAG_SAMPLED | FLAG_PARENT) != 0 {
            return Err(GossipError::Flags(flags));
        }
        let trace = if flags & FLAG_TRACE != 0 {
            let t = take(TRACE_BYTES)?;
            let mut id = [0u8; 16];
            id.copy_from_slice(&t[..16]);
            let mut span = [0u8; 8];
            span.copy_from_slice(&t[16..]);
            Some((
                Uuid::from_bytes(id),
                Origin {
                    parent_span_id: (flags & FLAG_PARENT != 0).then_some(span),
                    sampled: flags & FLAG_SAMPLED != 0,
                },
            ))
        } else {
            None
        };
        let len_bytes = take(2)?;
        let len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
        if len > max_tx_bytes {
            return Err(GossipError::TooLarge {
                len,
                max: max_tx_bytes,
            });
        }
        let encoded = take(len)?.to_vec();
        out.push(GossipTx { encoded, trace });
    }
    if !rest.is_empty() {
        return Err(GossipError::Trailing(rest.len()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn traced() -> Option<(Uuid, Origin)> {
        Some((
            Uuid::now_v7(),
            Origin {
                parent_span_id: Some([3; 8]),
                sampled: true,
            },
        ))
    }

    #[test]
    fn round_trips_with_and_without_trace() {
        let mut b = GossipBatch::default();
        assert_eq!(b.take(), None);
        assert_eq!(b.push(&[1, 2, 3], traced()), None);
        assert_eq!(b.push(&[9; 200], None), None);
        let unsampled = Some((Uuid::new_v4(), Origin::default()));
        assert_eq!(b.push(&[7], unsampled), None);
        let frame = b.take().unwrap();
        assert_eq!(b.take(), None);
        let txs = decode(&frame, 1024).unwrap();
        assert_eq!(txs.len(), 3);
        assert_eq!(txs[0].encoded, vec![1, 2, 3]);
        assert!(txs[0].trace.unwrap().1.sampled);
        assert_eq!(txs[0].trace.unwrap().1.parent_span_id, Some([3; 8]));
        assert_eq!(txs[1].trace, None);
        assert_eq!(txs[2].trace, unsampled);
        // A second batch starts clean.
        b.push(&[5], None);
        assert_eq!(decode(&b.take().unwrap(), 1024).unwrap().len(), 1);
    }

    #[test]
    fn flushes_when_full() {
        let mut b = GossipBatch::default();
        let tx = vec![0u8; 1000];
        let mut frames = 0;
        for _ in 0..600 {
            if let Some(f) = b.push(&tx, None) {
                assert!(f.len() <= GOSSIP_FLUSH_BYTES + 1_003);
                assert!(decode(&f, 1_000).is_ok());
                frames += 1;
            }
        }
        assert_eq!(frames, 2);
    }

    #[test]
    fn refuses_malformed_frames() {
        let mut b = GossipBatch::default();
        b.push(&[1, 2, 3], traced());
        let good = b.take().unwrap();
        let mut tag = good.clone();
        tag[0] = 0xB7;
        assert_eq!(decode(&tag, 1024), Err(GossipError::WrongTag));
        let mut version = good.clone();
        version[1] = 2;
        assert_eq!(decode(&version, 1024), Err(GossipError::Version(2)));
        assert_eq!(
            decode(&good[..good.len() - 1], 1024),
            Err(GossipError::Truncated)
        );
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(decode(&trailing, 1024), Err(GossipError::Trailing(1)));
        let mut flags = good.clone();
        flags[HEADER_BYTES] = 0x80;
        assert_eq!(decode(&flags, 1024), Err(GossipError::Flags(0x80)));
        assert_eq!(
            decode(&good, 2),
            Err(GossipError::TooLarge { len: 3, max: 2 })
        );
        let mut many = good[..HEADER_BYTES].to_vec();
        many[2..4].copy_from_slice(&u16::MAX.to_be_bytes());
        assert_eq!(
            decode(&many, 1024),
            Err(GossipError::TooMany(usize::from(u16::MAX)))
        );
    }

    proptest! {
        #[test]
        fn decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut framed = vec![TX_GOSSIP_TAG, VERSION];
            framed.extend_from_slice(&bytes);
            let _ = decode(&framed, 512);
        }
    }
}
