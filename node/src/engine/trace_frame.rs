//! The trace envelope of a proposal: which transactions of a block belong to
//! which trace, so every validator can put its spans for a transaction under
//! the request that submitted it.
//!
//! Transactions are signed by players and must not change, and a block's id
//! covers its payload, so trace context cannot ride inside either. The
//! proposer sends this frame right after its proposal, on the same ordered
//! stream, carrying for each traced transaction the binary form of a W3C
//! `traceparent` (version 00): trace id (= the correlation id), the parent
//! span id, and the flags.
//!
//! ```text
//! 0xB7 | version (1) | block id (32) | count: u16 BE |
//!     count x ( tx index: u16 BE | trace id (16) | parent span id (8) | flags (1) )
//! ```
//!
//! flags: bit 0 = sampled (W3C), bit 1 = the parent span id is meaningful
//! (zero otherwise: the origin exported nothing, so there is no span to hang
//! children on). Other bits must be zero.
//!
//! The frame is advisory: a validator that misses it (relay path, restart)
//! still executes the block and only loses the spans. A peer can lie in it,
//! but only about trace labels, so the receiver keeps frames from the block's
//! proposer only (checked at execution, when the proposer is known), and
//! everything it holds is bounded.

use bitcraps_crypto::Hash32;
use uuid::Uuid;

/// First byte of a trace envelope frame.
pub const TRACE_ENVELOPE_TAG: u8 = 0xB7;
/// Frame layout version.
const VERSION: u8 = 1;
/// Bytes before the entries: tag, version, block id, count.
const HEADER_BYTES: usize = 1 + 1 + 32 + 2;
/// Bytes per entry.
pub const ENTRY_BYTES: usize = 2 + 16 + 8 + 1;
/// Most entries in one frame (and so traced transactions per block).
pub const MAX_ENTRIES: usize = 8_192;

const FLAG_SAMPLED: u8 = 0b01;
const FLAG_HAS_PARENT: u8 = 0b10;

/// One traced transaction of a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceEntry {
    /// Position of the transaction among the block's payload entries.
    pub index: u16,
    pub correlation_id: Uuid,
    /// The span to hang this validator's spans on (the origin's request span).
    pub parent_span_id: Option<[u8; 8]>,
    pub sampled: bool,
}

/// A decoded envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceEnvelope {
    pub block: Hash32,
    pub entries: Vec<TraceEntry>,
}

/// Why an envelope was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("not a trace envelope")]
    WrongTag,
    #[error("unknown trace envelope version {0}")]
    Version(u8),
    #[error("trace envelope of {len} bytes does not match its {count} entries")]
    Length { len: usize, count: usize },
    #[error("trace envelope with {0} entries (limit {MAX_ENTRIES})")]
    TooMany(usize),
    #[error("trace envelope entry with reserved flag bits {0:#04x}")]
    Flags(u8),
    #[error("trace envelope entry with a nil trace id")]
    NilTraceId,
    #[error("trace envelope entries not in strictly increasing index order")]
    Order,
}

impl TraceEnvelope {
    /// The frame; `None` when there is nothing to send. Entries past
    /// [`MAX_ENTRIES`] are left out (those transactions just lose their spans
    /// on peers).
    pub fn encode(&self) -> Option<Vec<u8>> {
        if self.entries.is_empty() {
            return None;
        }
        let entries = &self.entries[..self.entries.len().min(MAX_ENTRIES)];
        let mut out = Vec::with_capacity(HEADER_BYTES + entries.len() * ENTRY_BYTES);
        out.push(TRACE_ENVELOPE_TAG);
        out.push(VERSION);
        out.extend_from_slice(self.block.as_bytes());
        // MAX_ENTRIES fits a u16.
        out.extend_from_slice(&(entries.len() as u16).to_be_bytes());
        for e in entries {
            out.extend_from_slice(&e.index.to_be_bytes());
            out.extend_from_slice(e.correlation_id.as_bytes());
            out.extend_from_slice(&e.parent_span_id.unwrap_or([0; 8]));
            let mut flags = 0;
            if e.sampled {
                flags |= FLAG_SAMPLED;
            }
            if e.parent_span_id.is_some() {
                flags |= FLAG_HAS_PARENT;
            }
            out.push(flags);
        }
        Some(out)
    }

    /// Parses and checks a frame: exact length, known flags, ascending
    /// indexes (so one transaction cannot be claimed twice).
    pub fn decode(bytes: &[u8]) -> Result<TraceEnvelope, EnvelopeError> {
        if bytes.first() != Some(&TRACE_ENVELOPE_TAG) {
            return Err(EnvelopeError::WrongTag);
        }
        if bytes.len() < HEADER_BYTES {
            return Err(EnvelopeError::Length {
                len: bytes.len(),
                count: 0,
            });
        }
        if bytes[1] != VERSION {
            return Err(EnvelopeError::Version(bytes[1]));
        }
        let mut block = [0u8; 32];
        block.copy_from_slice(&bytes[2..34]);
        let count = usize::from(u16::from_be_bytes([bytes[34], bytes[35]]));
        if count > MAX_ENTRIES {
            return Err(EnvelopeError::TooMany(count));
        }
        if bytes.len() != HEADER_BYTES + count * ENTRY_BYTES {
            return Err(EnvelopeError::Length {
                len: bytes.len(),
                count,
            });
        }
        let mut entries = Vec::with_capacity(count);
        let mut last: Option<u16> = None;
        for raw in bytes[HEADER_BYTES..].chunks_exact(ENTRY_BYTES) {
            let index = u16::from_be_bytes([raw[0], raw[1]]);
            if last.is_some_and(|l| index <= l) {
                return Err(EnvelopeError::Order);
            }
            last = Some(index);
            let mut id = [0u8; 16];
            id.copy_from_slice(&raw[2..18]);
            let correlation_id = Uuid::from_bytes(id);
            if correlation_id.is_nil() {
                return Err(EnvelopeError::NilTraceId);
            }
            let mut span = [0u8; 8];
            span.copy_from_slice(&raw[18..26]);
            let flags = raw[26];
            if flags & !(FLAG_SAMPLED | FLAG_HAS_PARENT) != 0 {
                return Err(EnvelopeError::Flags(flags));
            }
            entries.push(TraceEntry {
                index,
                correlation_id,
                parent_span_id: (flags & FLAG_HAS_PARENT != 0).then_some(span),
                sampled: flags & FLAG_SAMPLED != 0,
            });
        }
        Ok(TraceEnvelope {
            block: Hash32(block),
            entries,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> TraceEnvelope {
        TraceEnvelope {
            block: Hash32([7; 32]),
            entries: vec![
                TraceEntry {
                    index: 0,
                    correlation_id: Uuid::now_v7(),
                    parent_span_id: Some([1, 2, 3, 4, 5, 6, 7, 8]),
                    sampled: true,
                },
                TraceEntry {
                    index: 5,
                    correlation_id: Uuid::new_v4(),
                    parent_span_id: None,
                    sampled: false,
                },
            ],
        }
    }

    #[test]
    fn round_trips() {
        let env = sample();
        let bytes = env.encode().unwrap();
        assert_eq!(bytes.len(), HEADER_BYTES + 2 * ENTRY_BYTES);
        assert_eq!(TraceEnvelope::decode(&bytes).unwrap(), env);
    }

    #[test]
    fn nothing_to_send_without_entries() {
        let env = TraceEnvelope {
            block: Hash32::ZERO,
            entries: vec![],
        };
        assert_eq!(env.encode(), None);
    }

    #[test]
    fn refuses_malformed_frames() {
        let good = sample().encode().unwrap();
        let mut wrong_tag = good.clone();
        wrong_tag[0] = 0xB5;
        assert_eq!(
            TraceEnvelope::decode(&wrong_tag),
            Err(EnvelopeError::WrongTag)
        );
        let mut version = good.clone();
        version[1] = 9;
        assert_eq!(
            TraceEnvelope::decode(&version),
            Err(EnvelopeError::Version(9))
        );
        assert!(matches!(
            TraceEnvelope::decode(&good[..good.len() - 1]),
            Err(EnvelopeError::Length { .. })
        ));
        let mut longer = good.clone();
        longer.push(0);
        assert!(matches!(
            TraceEnvelope::decode(&longer),
            Err(EnvelopeError::Length { .. })
        ));
        assert!(matches!(
            TraceEnvelope::decode(&good[..10]),
            Err(EnvelopeError::Length { .. })
        ));
        let mut flags = good.clone();
        flags[HEADER_BYTES + ENTRY_BYTES - 1] = 0x80;
        assert_eq!(
            TraceEnvelope::decode(&flags),
            Err(EnvelopeError::Flags(0x80))
        );
        let mut nil = good.clone();
        nil[HEADER_BYTES + 2..HEADER_BYTES + 18].fill(0);
        assert_eq!(TraceEnvelope::decode(&nil), Err(EnvelopeError::NilTraceId));
        // The second entry claims index 0 again.
        let mut order = good.clone();
        order[HEADER_BYTES + ENTRY_BYTES..HEADER_BYTES + ENTRY_BYTES + 2].fill(0);
        assert_eq!(TraceEnvelope::decode(&order), Err(EnvelopeError::Order));
        let mut many = good[..HEADER_BYTES].to_vec();
        many[34..36].copy_from_slice(&u16::MAX.to_be_bytes());
        assert_eq!(
            TraceEnvelope::decode(&many),
            Err(EnvelopeError::TooMany(usize::from(u16::MAX)))
        );
    }

    proptest! {
        #[test]
        fn decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut framed = vec![TRACE_ENVELOPE_TAG];
            framed.extend_from_slice(&bytes);
            let _ = TraceEnvelope::decode(&framed);
        }
    }
}
