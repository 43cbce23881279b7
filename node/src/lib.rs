//! bitcraps-node: the validator node.
//!
//! * [`net`]: QUIC transport between validators, mutually authenticated by the
//!   identity keys in genesis.
//! * [`storage`]: crash-safe embedded storage (redb) for the consensus WAL,
//!   committed blocks and application state.
//! * [`engine`]: the validator engine, one tokio task that drives the consensus
//!   core with the network, storage, clock and signing guard.
#![forbid(unsafe_code)]

pub mod api;
pub mod app;
#[cfg(feature = "server")]
pub mod beacon_key;
#[cfg(feature = "server")]
pub mod bench;
pub mod chainspec;
#[cfg(feature = "server")]
pub mod config;
#[cfg(feature = "server")]
pub mod config_signer;
pub mod fifo;
#[cfg(feature = "server")]
pub mod home;
#[cfg(feature = "server")]
pub mod home_pkcs11;
#[cfg(feature = "server")]
pub mod http;
#[cfg(feature = "server")]
pub mod keystore_file;
#[cfg(feature = "server")]
pub mod localnet;
#[cfg(feature = "server")]
pub mod logs;
#[cfg(feature = "server")]
pub mod play;
#[cfg(feature = "server")]
pub mod signer_setup;
pub mod trace;
#[cfg(feature = "server")]
pub mod validator;

#[cfg(feature = "server")]
pub mod engine;
#[cfg(feature = "server")]
pub mod net;
#[cfg(feature = "server")]
pub mod storage;

/// The version reported by `bitcraps version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
