//! bitcraps-chaos: attack the consensus and check it holds.
//!
//! Tier 1 (this crate today) is a deterministic, single-threaded simulator with
//! virtual time and one seed for all randomness. It runs the real consensus core,
//! the real signing guard and a crash-consistent simulated WAL over a simulated
//! network, injects faults ([`plan`]), byzantine behaviour ([`byzantine`]) and
//! checks safety and liveness ([`checker`]). A failing seed replays identically.
#![forbid(unsafe_code)]

pub mod byzantine;
pub mod checker;
pub mod net;
pub mod plan;
pub mod report;
pub mod rng;
pub mod sim;
pub mod storage;

pub use report::{run_campaign, Campaign, CampaignReport};
pub use sim::{run_seed, SeedOutcome};
