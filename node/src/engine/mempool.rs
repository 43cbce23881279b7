//! The stand-in application: a bounded queue of opaque transactions that the
//! engine packs into the payload of the blocks it proposes.
//!
//! Payload format: each transaction as a `u32` little-endian length followed by
//! its bytes. An empty payload is valid. The real application (the craps state
//! machine) will replace this with its own batching and validation.

use tokio::sync::mpsc;

/// Drains submitted transactions into payloads.
#[derive(Debug)]
pub struct Mempool {
    rx: mpsc::Receiver<Vec<u8>>,
    /// A transaction that did not fit in the previous payload.
    carry: Option<Vec<u8>>,
    /// Transactions dropped because one alone exceeds the payload limit.
    pub dropped: u64,
}

const LEN_PREFIX: usize = 4;

impl Mempool {
    pub fn new(rx: mpsc::Receiver<Vec<u8>>) -> Self {
        Mempool {
            rx,
            carry: None,
            dropped: 0,
        }
    }

    /// Takes transactions, oldest first, while the payload stays within
    /// `max_bytes`. Never waits.
    pub fn take_payload(&mut self, max_bytes: usize) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let tx = match self.carry.take() {
                Some(tx) => tx,
                None => match self.rx.try_recv() {
                    Ok(tx) => tx,
                    Err(_) => break,
                },
            };
            let Ok(len) = u32::try_from(tx.len()) else {
                self.dropped += 1;
                continue;
            };
            let need = LEN_PREFIX + tx.len();
            if need > max_bytes {
                self.dropped += 1;
                continue;
            }
            if out.len() + need > max_bytes {
                self.carry = Some(tx);
                break;
            }
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&tx);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_within_limit_and_carries_over() {
        let (tx, rx) = mpsc::channel(8);
        let mut m = Mempool::new(rx);
        assert!(m.take_payload(100).is_empty());
        tx.try_send(vec![1; 10]).unwrap();
        tx.try_send(vec![2; 10]).unwrap();
        tx.try_send(vec![3; 200]).unwrap();
        tx.try_send(vec![4; 1]).unwrap();
        let p = m.take_payload(20);
        assert_eq!(p.len(), 14);
        assert_eq!(&p[..4], &10u32.to_le_bytes());
        let p = m.take_payload(20);
        assert_eq!(p.len(), 14 + 5);
        assert_eq!(m.dropped, 1);
    }
}
