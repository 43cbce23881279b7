//! Shared harness for the in-process engine tests (`engine.rs`,
//! `identity_rotation.rs`): deterministic validator keys, network limits
//! tuned for fast reconnects on loopback, and a 4-validator genesis whose
//! views time out quickly.
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use bitcraps_consensus::{Genesis, Params};
use bitcraps_crypto::Keypair;
use bitcraps_node::net::Limits;
use std::net::{SocketAddr, UdpSocket};

/// Genesis time of every test chain (ms).
pub const GENESIS_MS: u64 = 1_700_000_000_000;

/// A deterministic key from a one-byte tag and an index.
pub fn key(tag: u8, i: u16) -> Keypair {
    let mut seed = [tag; 32];
    seed[..2].copy_from_slice(&i.to_be_bytes());
    Keypair::from_seed(&seed)
}

/// Validator `i`'s consensus key.
pub fn consensus_key(i: u16) -> Keypair {
    key(0xc0, i)
}

/// Validator `i`'s genesis QUIC identity key.
pub fn identity_key(i: u16) -> Keypair {
    key(0x1d, i)
}

/// Reconnect and keep-alive settings that make a restarted peer come back in
/// well under a second on loopback.
pub fn limits() -> Limits {
    Limits {
        reconnect_base_ms: 20,
        reconnect_max_ms: 300,
        connect_timeout_ms: 1_500,
        breaker_failure_threshold: 50,
        breaker_cooldown_ms: 300,
        keep_alive_ms: 200,
        idle_timeout_ms: 3_000,
        ..Limits::default()
    }
}

/// A genesis for `addrs.len()` validators listening at `addrs`.
pub fn genesis(chain_id: &str, addrs: &[SocketAddr]) -> Genesis {
    let keys: Vec<Keypair> = (0..addrs.len() as u16).map(consensus_key).collect();
    let params = Params {
        view_timeout_ms: 500,
        max_view_timeout_ms: 4_000,
        retry_interval_ms: 250,
        max_payload_bytes: 1 << 20,
        max_clock_drift_ms: 5_000,
    };
    let mut g = Genesis::from_keypairs(chain_id, GENESIS_MS, &keys, params);
    for (i, v) in g.validators.iter_mut().enumerate() {
        v.identity_key = identity_key(i as u16).public();
        v.address = addrs[i].to_string();
    }
    g.validate().expect("valid test genesis");
    g
}

/// `n` loopback UDP sockets (bound, so the ports are taken), their
/// addresses for the genesis, and a data directory per validator.
pub fn bind(n: u16) -> (Vec<UdpSocket>, Vec<SocketAddr>, Vec<tempfile::TempDir>) {
    let sockets: Vec<UdpSocket> = (0..n)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    let addrs = sockets.iter().map(|s| s.local_addr().unwrap()).collect();
    let dirs = (0..n).map(|_| tempfile::tempdir().unwrap()).collect();
    (sockets, addrs, dirs)
}
