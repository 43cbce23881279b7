//! Signs the bench transactions ahead of the schedule, on a thread of its
//! own, into a bounded queue.
//!
//! Why a thread: an ed25519 signature, the encoding, the hash and the hex
//! cost tens of microseconds per transaction. Done on the send path they
//! would delay sends at high rates (and be counted as latency); done here,
//! the generator only pops a ready transaction. The queue holds at most
//! [`queue_capacity`] transactions, so memory is bounded and the signer
//! simply blocks when it is far enough ahead.
//!
//! Why ahead of the whole run when it fits: clients sign on their own
//! machines, but here the signer shares the two cores with the validators
//! it measures (~15% of a core at 10,000 tx/s). A `--rate` run of up to
//! [`MAX_AHEAD`] transactions is signed before the clock starts, so the
//! measured window holds only the validators and the sending; longer runs
//! sign the rest while they go. The thread measures its own
//! CPU time (`/proc/thread-self/stat`) so the report can say what signing
//! cost.
//!
//! Transaction `i` is from account `i % K` with that account's next nonce,
//! a transfer of 1 chip to account `(i + 1) % K`: balances stay flat, and
//! the generator sends in `i` order, so each account's nonces go out in
//! order.

use super::procfs;
use crate::app::tx::{tx_hash, Action, Transaction};
use crate::engine::Clock;
use bitcraps_crypto::Keypair;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Smallest and largest signing queue when signing while the load runs.
pub const MIN_QUEUE: usize = 1_024;
pub const MAX_QUEUE: usize = 100_000;
/// Most transactions signed before a `--rate` run starts: ~400 bytes each
/// (hex body, id, bookkeeping), so at most ~240 MB in the bench process.
pub const MAX_AHEAD: usize = 600_000;

/// A signed transaction ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// Sending account (index into the bench accounts).
    pub account: usize,
    /// Transaction id, as blocks list it.
    pub hash: [u8; 32],
    /// Hex of the encoded signed transaction (the submit body).
    pub hex: String,
    /// Encoded size in bytes.
    pub size: usize,
}

/// What the signing thread did, once it stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SignerReport {
    pub signed: u64,
    /// CPU time the thread used (ms).
    pub cpu_ms: u64,
    /// How long the thread ran (ms).
    pub wall_ms: u64,
}

impl SignerReport {
    /// CPU% of one core over the thread's life.
    pub fn cpu_percent(&self) -> f64 {
        if self.wall_ms == 0 {
            return 0.0;
        }
        self.cpu_ms as f64 * 100.0 / self.wall_ms as f64
    }

    /// Mean CPU per signed transaction (µs).
    pub fn us_per_tx(&self) -> f64 {
        if self.signed == 0 {
            return 0.0;
        }
        self.cpu_ms as f64 * 1_000.0 / self.signed as f64
    }
}

/// Queue size for `rate`: about a second of transactions, within
/// [`MIN_QUEUE`]..=[`MAX_QUEUE`], or, for a run of `planned_ms` at a fixed
/// rate, the whole run plus a second (re-sends draw from the same queue)
/// up to [`MAX_AHEAD`].
pub fn queue_capacity(rate: u64, planned_ms: Option<u64>) -> usize {
    let second = usize::try_from(rate).unwrap_or(MAX_QUEUE);
    match planned_ms {
        Some(ms) => {
            let run = rate.saturating_mul(ms) / 1_000;
            usize::try_from(run)
                .unwrap_or(MAX_AHEAD)
                .saturating_add(second)
                .clamp(MIN_QUEUE, MAX_AHEAD)
        }
        None => second.clamp(MIN_QUEUE, MAX_QUEUE),
    }
}

/// How many transactions the signer makes for a run of `planned_ms` at
/// `rate`: the whole queue when the run fits in it (sign it all, then
/// stop), no limit otherwise (sign while the load runs).
pub fn sign_limit(rate: u64, planned_ms: Option<u64>) -> Option<u64> {
    let ms = planned_ms?;
    let run = rate.saturating_mul(ms) / 1_000;
    let queue = u64::try_from(queue_capacity(rate, Some(ms))).unwrap_or(u64::MAX);
    (run < queue).then_some(queue)
}

/// The `i`-th transaction's sender and recipient for `accounts` accounts.
pub fn route(i: u64, accounts: usize) -> (usize, usize) {
    let k = u64::try_from(accounts.max(1)).unwrap_or(u64::MAX);
    let from = usize::try_from(i % k).unwrap_or(0);
    (from, (from + 1) % accounts.max(1))
}

/// Signs transaction `i` with the account's next nonce from `nonces`.
pub fn prepare(chain_id: &str, keys: &[Keypair], nonces: &mut [u64], i: u64) -> Option<Prepared> {
    let (from, to) = route(i, keys.len());
    let key = keys.get(from)?;
    let nonce = nonces.get_mut(from)?;
    let signed = Transaction {
        from: key.public(),
        nonce: *nonce,
        action: Action::Transfer {
            to: keys.get(to)?.public(),
            amount: 1,
        },
    }
    .sign(chain_id, key);
    *nonce += 1;
    let bytes = signed.encode();
    Some(Prepared {
        account: from,
        hash: tx_hash(&bytes).0,
        size: bytes.len(),
        hex: hex::encode(bytes),
    })
}

/// The signing thread: owns the keys' nonces (all start at 0: the accounts
/// are fresh), fills `tx` until the receiver is dropped or, with `limit`,
/// after that many transactions (a run signed ahead signs nothing more
/// while it is measured).
pub fn spawn(
    chain_id: String,
    keys: Arc<Vec<Keypair>>,
    capacity: usize,
    limit: Option<u64>,
    clock: Arc<dyn Clock>,
) -> std::io::Result<(
    mpsc::Receiver<Prepared>,
    std::thread::JoinHandle<SignerReport>,
)> {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let handle = std::thread::Builder::new()
        .name("bench-signer".into())
        .spawn(move || {
            let start_us = clock.now_us();
            let start_ticks = procfs::read_thread_cpu_ticks();
            let mut nonces = vec![0u64; keys.len()];
            let mut signed = 0u64;
            while signed < limit.unwrap_or(u64::MAX) {
                let Some(p) = prepare(&chain_id, &keys, &mut nonces, signed) else {
                    break;
                };
                // Blocks while the queue is full; fails once the bench is done.
                if tx.blocking_send(p).is_err() {
                    break;
                }
                signed += 1;
            }
            let ticks = match (start_ticks, procfs::read_thread_cpu_ticks()) {
                (Some(a), Some(b)) => b.saturating_sub(a),
                _ => 0,
            };
            SignerReport {
                signed,
                cpu_ms: ticks * 1_000 / procfs::CLOCK_TICKS_PER_S,
                wall_ms: clock.now_us().saturating_sub(start_us) / 1_000,
            }
        })?;
    Ok((rx, handle))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::tx::SignedTx;

    #[test]
    fn transactions_rotate_accounts_with_ordered_nonces() {
        let keys: Vec<Keypair> = (1..=3u8).map(|i| Keypair::from_seed(&[i; 32])).collect();
        let mut nonces = vec![0; 3];
        let txs: Vec<Prepared> = (0..7)
            .map(|i| prepare("c", &keys, &mut nonces, i).unwrap())
            .collect();
        assert_eq!(nonces, vec![3, 2, 2]);
        for (i, p) in txs.iter().enumerate() {
            let tx = SignedTx::decode(&hex::decode(&p.hex).unwrap()).unwrap();
            assert!(tx.verify("c").is_ok());
            assert_eq!(p.account, i % 3);
            assert_eq!(tx.tx.from, keys[i % 3].public());
            assert_eq!(tx.tx.nonce, u64::try_from(i / 3).unwrap());
            assert_eq!(
                tx.tx.action,
                Action::Transfer {
                    to: keys[(i + 1) % 3].public(),
                    amount: 1
                }
            );
            assert_eq!(p.hash, tx.hash().0);
            assert_eq!(p.size, p.hex.len() / 2);
        }
        assert_eq!(route(5, 1), (0, 0));
        assert_eq!(queue_capacity(10, None), MIN_QUEUE);
        assert_eq!(queue_capacity(10_000, None), 10_000);
        assert_eq!(queue_capacity(u64::MAX, None), MAX_QUEUE);
        // A fixed-rate run: all of it plus a second, up to the cap.
        assert_eq!(queue_capacity(10_000, Some(20_000)), 210_000);
        assert_eq!(queue_capacity(10, Some(1_000)), MIN_QUEUE);
        assert_eq!(queue_capacity(10_000, Some(3_600_000)), MAX_AHEAD);
        assert_eq!(queue_capacity(u64::MAX, Some(u64::MAX)), MAX_AHEAD);
        // A run that fits is signed whole, then the signer stops.
        assert_eq!(sign_limit(10_000, Some(20_000)), Some(210_000));
        assert_eq!(sign_limit(10_000, Some(3_600_000)), None);
        assert_eq!(sign_limit(10_000, None), None);
    }

    #[test]
    fn thread_fills_the_queue_and_stops_when_dropped() {
        let keys = Arc::new(vec![Keypair::from_seed(&[9; 32])]);
        let clock: Arc<dyn Clock> = Arc::new(crate::engine::SystemClock::new());
        let (mut rx, handle) =
            spawn("c".into(), Arc::clone(&keys), 4, None, Arc::clone(&clock)).unwrap();
        let first = rx.blocking_recv().unwrap();
        let second = rx.blocking_recv().unwrap();
        assert_ne!(first.hash, second.hash);
        drop(rx);
        let report = handle.join().unwrap();
        // Two taken, up to four queued, one blocked in send.
        assert!((2..=7).contains(&report.signed), "{report:?}");
        // With a limit the thread stops on its own, the queue still open.
        let (mut rx, handle) = spawn("c".into(), keys, 16, Some(3), clock).unwrap();
        let report = handle.join().unwrap();
        assert_eq!(report.signed, 3);
        for _ in 0..3 {
            assert!(rx.try_recv().is_ok());
        }
        assert!(rx.try_recv().is_err());
    }
}
