//! Shared fixtures for the benchmarks.
//!
//! The criterion benches (`benches/benches/*.rs`) and the instruction-count
//! binary (`src/bin/hotpaths.rs`, driven by `scripts/bench-gate.sh`) build their
//! inputs here, so a path the gate counts is the same code path criterion times.
//! Every fixture is deterministic: keys come from fixed seeds, nothing reads the
//! clock or OS randomness.
//!
//! * [`sigs`]: ed25519 signatures over vote-sized messages, parallel verification.
//! * [`chain`]: consensus traffic of a healthy chain and wire messages.
//! * [`app`]: application blocks (transfers and craps bets), mempools, payloads.
//! * [`trace`]: a full correlation tracker and one transaction's calls into it.

pub mod app;
pub mod chain;
pub mod sigs;
pub mod trace;
