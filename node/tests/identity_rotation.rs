//! Identity key rotation end to end: four validator engines over real QUIC on
//! loopback. Validator 1 (it dials 2 and 3, and 0 dials it, so both TLS
//! sides are exercised) rotates its QUIC identity key; every peer accepts
//! and persists the rotation; validator 1 restarts with the new key and the
//! cluster keeps committing; the old key is retired once the new one
//! connected, and a key nobody announced is still refused.
//!
//! Deadlines here are failure bounds only; a healthy run takes a few seconds.

#![cfg(feature = "server")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/engines.rs"]
mod support;

use bitcraps_consensus::Genesis;
use bitcraps_crypto::Keypair;
use bitcraps_node::engine::rotation::{RotationBook, ROTATIONS_FILE};
use bitcraps_node::engine::{Engine, EngineConfig, EngineHandle, EngineStatus, Listen};
use bitcraps_node::net::tls;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use support::{consensus_key, identity_key, key, limits};
use tokio::time::timeout;

const N: u16 = 4;
const ROTATED: u16 = 1;
const POLL: Duration = Duration::from_millis(100);
const DEADLINE: Duration = Duration::from_secs(60);

fn genesis(addrs: &[SocketAddr]) -> Genesis {
    support::genesis("rotation-test", addrs)
}

fn start(g: &Genesis, me: u16, identity: Keypair, dir: &Path, listen: Listen) -> EngineHandle {
    let mut config = EngineConfig::new(g.clone(), me, identity, consensus_key(me), dir, listen);
    config.limits = limits();
    Engine::start(config).unwrap()
}

async fn wait_until(
    engines: &[EngineHandle],
    what: &str,
    ok: impl Fn(usize, &EngineHandle, &EngineStatus) -> bool,
) {
    let end = tokio::time::Instant::now() + DEADLINE;
    loop {
        let statuses: Vec<EngineStatus> = engines.iter().map(|e| e.status()).collect();
        assert!(
            statuses.iter().all(|s| s.fatal.is_none()),
            "engine stopped: {statuses:?}"
        );
        if engines
            .iter()
            .zip(&statuses)
            .enumerate()
            .all(|(i, (e, s))| ok(i, e, s))
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "timed out waiting for {what}: {statuses:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Dials `addr` (validator `server`) presenting `id`; true if the node let the
/// connection stay open for a while (it was accepted).
async fn admitted(id: &Keypair, server: &Keypair, addr: SocketAddr) -> bool {
    tls::install_crypto_provider();
    let ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let cfg = tls::client_config(
        &tls::TlsIdentity::from_keypair(id).unwrap(),
        server.public(),
        Arc::new(quinn::TransportConfig::default()),
    )
    .unwrap();
    let connecting = ep.connect_with(cfg, addr, tls::SERVER_NAME).unwrap();
    let Ok(Ok(conn)) = timeout(DEADLINE, connecting).await else {
        return false;
    };
    // The server may only reject the client certificate after the client
    // considers the handshake done: wait for the close.
    let open = timeout(Duration::from_millis(1_000), conn.closed())
        .await
        .is_err();
    conn.close(0u32.into(), b"test done");
    open
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_validator_rotates_its_identity_key_and_the_cluster_keeps_committing() {
    let (sockets, addrs, dirs) = support::bind(N);
    let g = genesis(&addrs);
    let mut engines: Vec<EngineHandle> = sockets
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let i = i as u16;
            start(
                &g,
                i,
                identity_key(i),
                dirs[usize::from(i)].path(),
                Listen::Socket(s),
            )
        })
        .collect();
    wait_until(&engines, "height 3 and full connectivity", |_, _, s| {
        s.height >= 3 && s.peers_connected == usize::from(N) - 1
    })
    .await;

    // Validator 1 rotates while running with its old key.
    let old = identity_key(ROTATED).public();
    let new_key = key(0x2e, ROTATED);
    let new = new_key.public();
    let signed = engines[usize::from(ROTATED)]
        .rotate_identity(new)
        .await
        .unwrap();
    assert_eq!(signed.rotation.sequence, 1);
    assert_eq!(signed.rotation.validator, ROTATED);
    wait_until(&engines, "every peer accepts the rotation", |i, e, _| {
        i == usize::from(ROTATED) || e.peer_identity_keys(ROTATED) == Some((new, Some(old)))
    })
    .await;
    // The peers persisted it.
    for (i, d) in dirs.iter().enumerate() {
        let book = RotationBook::load(d.path(), &g).unwrap();
        assert_eq!(book.current_key(ROTATED), Some(new), "validator {i}");
        assert!(d.path().join(ROTATIONS_FILE).exists());
    }
    // The rotating node keeps it too (it re-broadcasts it after restarting).
    assert_eq!(
        engines[usize::from(ROTATED)]
            .identity_rotation()
            .map(|a| a.previous_key),
        Some(old)
    );

    // Restart validator 1 with the new key, on the same address.
    let old_engine = engines.remove(usize::from(ROTATED));
    let before = old_engine.status().height;
    old_engine.shutdown().await.unwrap();
    engines.insert(
        usize::from(ROTATED),
        start(
            &g,
            ROTATED,
            Keypair::from_seed(&new_key.seed()),
            dirs[usize::from(ROTATED)].path(),
            Listen::Addr(addrs[usize::from(ROTATED)]),
        ),
    );
    wait_until(
        &engines,
        "progress after the restart with the new key",
        |_, _, s| s.height >= before + 3 && s.peers_connected == usize::from(N) - 1,
    )
    .await;
    // Once validator 1 connected with its new key, the old one is retired.
    wait_until(&engines, "the previous key retired", |i, e, _| {
        i == usize::from(ROTATED) || e.peer_identity_keys(ROTATED) == Some((new, None))
    })
    .await;

    // Validator 2 accepts connections from validator 1 (1 dials 2): the old
    // key and a key nobody announced are refused now.
    let server = identity_key(2);
    assert!(!admitted(&identity_key(ROTATED), &server, addrs[2]).await);
    assert!(!admitted(&key(0xee, 9), &server, addrs[2]).await);

    // Starting with a key that is neither genesis nor rotated is refused,
    // and the genesis key of another validator is no way in either.
    let h = engines.remove(usize::from(ROTATED));
    h.shutdown().await.unwrap();
    let mut config = EngineConfig::new(
        g.clone(),
        ROTATED,
        key(0x3f, 0),
        consensus_key(ROTATED),
        dirs[usize::from(ROTATED)].path(),
        Listen::Addr(addrs[usize::from(ROTATED)]),
    );
    config.limits = limits();
    let err = Engine::start(config).unwrap_err().to_string();
    assert!(err.contains("identity key"), "{err}");

    for e in engines {
        let s = e.status();
        assert_eq!(s.evidence, 0, "no double signing");
        e.shutdown().await.unwrap();
    }
}
