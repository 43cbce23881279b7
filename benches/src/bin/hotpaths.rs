//! Runs one hot path a given number of times, for instruction counting.
//!
//! ```text
//! hotpaths <name> <iterations>    run <name>'s measured step <iterations> times
//! hotpaths list                   print the names, one per line
//! ```
//!
//! `scripts/bench-gate.sh` runs this under `valgrind --tool=callgrind` with
//! `--collect-atstart=no --toggle-collect=*hotpaths::measured*`, so only the
//! work inside [`measured`] is counted: building the fixture and the
//! per-iteration copies of mutable inputs (a state or mempool clone) are not.
//! It runs every path with K and 2K iterations and divides the difference by
//! K, so what is left of one-time effects (first-use allocations, lazy
//! initialisation) cancels as well. Inputs come from the fixed-seed fixtures
//! of `bitcraps_benches`, the same ones the criterion benches use.

use bitcraps_benches::app::{pool_config, root_genesis, GameBlock, PoolFixture};
use bitcraps_benches::chain::{stream, DuplicateVote, Messages};
use bitcraps_benches::sigs::{bytes, items, signed};
use bitcraps_consensus::Message;
use bitcraps_crypto::batch::verify_batch;
use bitcraps_crypto::{hash, Keypair};
use bitcraps_node::app::{AppState, SignedTx};
use std::hint::black_box;
use std::process::ExitCode;

/// Every hot path and what one iteration does.
const PATHS: &[(&str, &str)] = &[
    (
        "crypto::sign",
        "one ed25519 signature of a vote's signing bytes",
    ),
    (
        "crypto::verify",
        "one strict ed25519 verification of a vote signature",
    ),
    (
        "crypto::batch_verify_64",
        "verify_batch over 64 valid signatures by 16 keys",
    ),
    ("crypto::blake3_1k", "blake3 of 1024 bytes"),
    (
        "consensus::handle_10_views",
        "a fresh 4-validator follower core handling 10 views of traffic (90 messages, 10 commits)",
    ),
    (
        "consensus::duplicate_vote",
        "a follower core handed a vote it already counted",
    ),
    (
        "game::execute_block_100",
        "execute_block of 100 pre-verified transfers and bets (state clone not counted)",
    ),
    (
        "codec::decode_proposal",
        "Message::decode of a proposal with 1000 x 256 B payload entries",
    ),
    ("codec::decode_tx", "SignedTx::decode of a transfer"),
    (
        "mempool::insert_100",
        "admitting 100 transactions into a pool of 1000 (pool clone not counted)",
    ),
    (
        "mempool::cycle_100",
        "the pool life of 100 transactions in a pool of 1000: admit, take them in a payload, commit it (pool clone not counted)",
    ),
    (
        "tracker::lifecycle_100",
        "the tracker calls of 100 transactions on their origin validator (begin to executed), in a full tracker of 4096",
    ),
    (
        "state::root_1000",
        "AppState::genesis over 1000 accounts and its state root",
    ),
];

/// The measured step. Never inlined: callgrind toggles collection on entry
/// and exit of this function (every instantiation carries the same name).
#[inline(never)]
fn measured<T>(step: impl FnOnce() -> T) -> T {
    black_box(step())
}

/// Builds `name`'s fixture, then runs its measured step `k` times.
fn run(name: &str, k: u64) -> Result<(), String> {
    match name {
        "crypto::sign" => {
            let key = Keypair::from_seed(&[1; 32]);
            let msg = signed(1).remove(0).1;
            for _ in 0..k {
                measured(|| key.sign(black_box(&msg)));
            }
        }
        "crypto::verify" => {
            let (key, msg, sig) = signed(1).remove(0);
            for _ in 0..k {
                let ok = measured(|| black_box(&key).verify(black_box(&msg), black_box(&sig)));
                ok.map_err(|e| e.to_string())?;
            }
        }
        "crypto::batch_verify_64" => {
            let triples = signed(64);
            let items = items(&triples);
            for _ in 0..k {
                let verdicts = measured(|| verify_batch(black_box(&items)));
                if !verdicts.iter().all(|ok| *ok) {
                    return Err("batch refused a valid signature".into());
                }
            }
        }
        "crypto::blake3_1k" => {
            let input = bytes(1024);
            for _ in 0..k {
                measured(|| hash(black_box(&input)));
            }
        }
        "consensus::handle_10_views" => {
            let s = stream(4, 10);
            for _ in 0..k {
                let core = s.core();
                let height = measured(|| s.replay(core));
                if height != s.views {
                    return Err(format!("committed {height} of {} views", s.views));
                }
            }
        }
        "consensus::duplicate_vote" => {
            let mut dup = DuplicateVote::new();
            for _ in 0..k {
                let input = dup.input.clone();
                measured(|| dup.handle(input));
            }
        }
        "game::execute_block_100" => {
            let mut block = GameBlock::new(100);
            for _ in 0..k {
                let mut state = block.pre.clone();
                let r = measured(|| block.execute(&mut state));
                if r.accepted != 100 {
                    return Err(format!("{} of 100 accepted", r.accepted));
                }
            }
        }
        "codec::decode_proposal" => {
            let bytes = Messages::new().proposal_full.encode();
            for _ in 0..k {
                let m = measured(|| Message::decode(black_box(&bytes)));
                m.map_err(|e| e.to_string())?;
            }
        }
        "codec::decode_tx" => {
            let bytes = bitcraps_benches::app::sample_txs().0.encode();
            for _ in 0..k {
                let tx = measured(|| SignedTx::decode(black_box(&bytes)));
                tx.map_err(|e| e.to_string())?;
            }
        }
        "mempool::insert_100" => {
            let f = PoolFixture::new(1000, 100, pool_config(1000));
            for _ in 0..k {
                let mut pool = f.pool.clone();
                let admitted = measured(|| f.admit(&mut pool));
                if admitted != 100 {
                    return Err(format!("{admitted} of 100 admitted"));
                }
            }
        }
        "mempool::cycle_100" => {
            let f = PoolFixture::new(1000, 100, pool_config(2000));
            for _ in 0..k {
                let mut pool = f.pool.clone();
                let committed = measured(|| f.cycle(&mut pool));
                if committed != 1100 {
                    return Err(format!("{committed} of 1100 committed"));
                }
            }
        }
        "tracker::lifecycle_100" => {
            const ENTRIES: u64 = 4_096;
            let t = bitcraps_benches::trace::full_tracker(ENTRIES as usize);
            for i in 0..k {
                let first = ENTRIES + i * 100;
                let done = measured(|| bitcraps_benches::trace::lifecycle(&t, first, 100));
                if done != 100 {
                    return Err(format!("{done} of 100 completed"));
                }
            }
        }
        "state::root_1000" => {
            let genesis = root_genesis(1000);
            for _ in 0..k {
                measured(|| AppState::genesis(black_box(&genesis)).state_root());
            }
        }
        _ => return Err(format!("unknown hot path {name:?} (see `hotpaths list`)")),
    }
    Ok(())
}

fn main() -> ExitCode {
    // Hash tables are keyed per process; a fixed key gives the same probe
    // sequences, so the same instruction count, on every run.
    bitcraps_crypto::fastmap::fix_seed_for_counting(0x5eed_0fb1_7c4a_9500);
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [list] if list == "list" => {
            for (name, what) in PATHS {
                println!("{name}\t{what}");
            }
            ExitCode::SUCCESS
        }
        [name, k] => {
            let Ok(k) = k.parse::<u64>() else {
                eprintln!("hotpaths: iterations must be a number, got {k:?}");
                return ExitCode::from(2);
            };
            match run(name, k) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("hotpaths: {name}: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        _ => {
            eprintln!("usage: hotpaths <name> <iterations> | hotpaths list");
            ExitCode::from(2)
        }
    }
}
