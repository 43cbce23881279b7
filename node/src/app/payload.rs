//! Block payloads: the transactions a block carries.
//!
//! ```text
//! payload = entry*        entry = u32-LE length || bytes (one encoded SignedTx)
//! ```
//!
//! The framing is deliberately independent of transaction decoding: a block
//! whose framing is valid executes entry by entry, and an entry that does not
//! decode becomes a `malformed` receipt instead of poisoning its neighbours.
//! The framing itself is strict ([`split_payload`]): a truncated length, a
//! truncated entry or more than [`MAX_TXS_PER_BLOCK`] entries make the whole
//! payload invalid, and such a block executes no transactions.

/// Most entries in one block payload. Bounds execution work, receipts and
/// state writes per block whatever the byte limit.
pub const MAX_TXS_PER_BLOCK: usize = 65_536;

/// Bytes of the length prefix of each entry.
pub const ENTRY_HEADER_BYTES: usize = 4;

/// Why a payload's framing is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("payload truncated inside the length prefix at byte {offset}")]
    TruncatedLength { offset: usize },
    #[error("payload entry at byte {offset} claims {len} bytes but only {available} remain")]
    TruncatedEntry {
        offset: usize,
        len: usize,
        available: usize,
    },
    #[error("payload has more than {max} entries")]
    TooManyTxs { max: usize },
}

/// Builds a payload within a byte and an entry limit.
#[derive(Debug, Clone)]
pub struct PayloadBuilder {
    buf: Vec<u8>,
    count: usize,
    max_bytes: usize,
    max_txs: usize,
}

impl PayloadBuilder {
    /// `max_txs` is capped at [`MAX_TXS_PER_BLOCK`], so a builder can never
    /// produce a payload that [`split_payload`] refuses.
    pub fn new(max_bytes: usize, max_txs: usize) -> Self {
        PayloadBuilder {
            buf: Vec::new(),
            count: 0,
            max_bytes,
            max_txs: max_txs.min(MAX_TXS_PER_BLOCK),
        }
    }

    /// Appends one entry if it fits both limits; returns false (and changes
    /// nothing) if it would not.
    pub fn try_push(&mut self, tx: &[u8]) -> bool {
        let Ok(len) = u32::try_from(tx.len()) else {
            return false;
        };
        let new_len = self
            .buf
            .len()
            .saturating_add(ENTRY_HEADER_BYTES)
            .saturating_add(tx.len());
        if self.count >= self.max_txs || new_len > self.max_bytes {
            return false;
        }
        self.buf.extend_from_slice(&len.to_le_bytes());
        self.buf.extend_from_slice(tx);
        self.count += 1;
        true
    }

    /// Entries pushed so far.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Payload bytes so far.
    pub fn byte_len(&self) -> usize {
        self.buf.len()
    }

    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Splits a payload into its entries (borrowed). Strict: see the module doc.
/// The empty payload has no entries.
pub fn split_payload(payload: &[u8]) -> Result<Vec<&[u8]>, PayloadError> {
    let mut out = Vec::new();
    let mut offset = 0usize;
    while offset < payload.len() {
        if out.len() >= MAX_TXS_PER_BLOCK {
            return Err(PayloadError::TooManyTxs {
                max: MAX_TXS_PER_BLOCK,
            });
        }
        let header = payload
            .get(offset..offset + ENTRY_HEADER_BYTES)
            .ok_or(PayloadError::TruncatedLength { offset })?;
        let mut len_bytes = [0u8; ENTRY_HEADER_BYTES];
        len_bytes.copy_from_slice(header);
        // u32 always fits usize on the 32/64-bit targets we build for; on a
        // 16-bit target the entry would simply be reported as truncated.
        let len = usize::try_from(u32::from_le_bytes(len_bytes)).unwrap_or(usize::MAX);
        let start = offset + ENTRY_HEADER_BYTES;
        let available = payload.len() - start;
        if len > available {
            return Err(PayloadError::TruncatedEntry {
                offset,
                len,
                available,
            });
        }
        out.push(&payload[start..start + len]);
        offset = start + len;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn builder_respects_limits_and_round_trips() {
        let mut b = PayloadBuilder::new(4 + 3 + 4 + 5, 10);
        assert!(b.is_empty());
        assert!(b.try_push(b"abc"));
        assert!(!b.try_push(b"123456"), "one byte over max_bytes");
        assert!(b.try_push(b"12345"));
        assert!(!b.try_push(b""), "even an empty entry needs 4 bytes");
        assert_eq!((b.len(), b.byte_len()), (2, 16));
        let p = b.finish();
        assert_eq!(split_payload(&p).unwrap(), vec![&b"abc"[..], &b"12345"[..]]);

        let mut b = PayloadBuilder::new(1 << 20, 2);
        assert!(b.try_push(b"x") && b.try_push(b""));
        assert!(!b.try_push(b"y"), "max_txs");
        let p = b.finish();
        assert_eq!(split_payload(&p).unwrap(), vec![&b"x"[..], &b""[..]]);

        assert_eq!(
            PayloadBuilder::new(usize::MAX, usize::MAX).max_txs,
            MAX_TXS_PER_BLOCK
        );
        assert!(split_payload(&[]).unwrap().is_empty());
    }

    #[test]
    fn strict_framing() {
        let mut b = PayloadBuilder::new(1000, 10);
        assert!(b.try_push(b"hello"));
        let p = b.finish();
        assert_eq!(
            split_payload(&p[..2]),
            Err(PayloadError::TruncatedLength { offset: 0 })
        );
        assert_eq!(
            split_payload(&p[..7]),
            Err(PayloadError::TruncatedEntry {
                offset: 0,
                len: 5,
                available: 3
            })
        );
        let mut tail = p.clone();
        tail.push(0);
        assert_eq!(
            split_payload(&tail),
            Err(PayloadError::TruncatedLength { offset: 9 })
        );
        // u32::MAX length on a short buffer.
        assert!(split_payload(&[0xff, 0xff, 0xff, 0xff, 1]).is_err());
        // Exactly the entry limit is fine, one more is not.
        let max = vec![0u8; MAX_TXS_PER_BLOCK * 4];
        assert_eq!(split_payload(&max).unwrap().len(), MAX_TXS_PER_BLOCK);
        let over = vec![0u8; (MAX_TXS_PER_BLOCK + 1) * 4];
        assert_eq!(
            split_payload(&over),
            Err(PayloadError::TooManyTxs {
                max: MAX_TXS_PER_BLOCK
            })
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn split_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(entries) = split_payload(&bytes) {
                let mut b = PayloadBuilder::new(usize::MAX, MAX_TXS_PER_BLOCK);
                for e in &entries {
                    prop_assert!(b.try_push(e));
                }
                prop_assert_eq!(b.finish(), bytes);
            }
        }

        #[test]
        fn builder_round_trips(
            entries in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..30),
            max_bytes in 0usize..800, max_txs in 0usize..40,
        ) {
            let mut b = PayloadBuilder::new(max_bytes, max_txs);
            let mut kept = Vec::new();
            for e in &entries {
                if b.try_push(e) {
                    kept.push(e.as_slice());
                }
            }
            let p = b.finish();
            prop_assert!(p.len() <= max_bytes);
            prop_assert!(kept.len() <= max_txs);
            prop_assert_eq!(split_payload(&p).unwrap(), kept);
        }
    }
}
