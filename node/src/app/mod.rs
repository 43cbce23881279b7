//! The application the validators agree on (until the craps game lands:
//! accounts and signed chip transfers). Pure and deterministic: no clock,
//! no I/O, no hash-map iteration order; the same blocks give the same state
//! root on every machine.

pub mod genesis;

pub use genesis::{Allocation, AppGenesis};
