//! Command-line arguments of `bitcraps localnet`, and the humane duration
//! parser they use (`60s`, `2m`, `1m30s`, `0`).

use crate::home_pkcs11::{SoftHsmTokens, TestnetSigner};
use std::path::PathBuf;

/// Most validators a localnet starts: each is a separate process on this
/// machine, and beyond ~20 a laptop spends its time context switching.
pub const MAX_VALIDATORS: u16 = 20;
/// Most simulated players (each holds a key and an in-flight window).
pub const MAX_PLAYERS: u32 = 1024;
/// Longest `--duration` accepted (one week): guards against typos such as
/// `6000h` that would otherwise overflow or run forever unnoticed.
pub const MAX_DURATION_MS: u64 = 7 * 24 * 3_600_000;

/// `bitcraps localnet`: a real cluster of validator processes on 127.0.0.1,
/// driven by simulated players through the HTTP API.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct LocalnetArgs {
    /// Number of validators, each its own process.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=i64::from(MAX_VALIDATORS)))]
    pub validators: u16,
    /// Number of simulated players sending transfers.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_PLAYERS)))]
    pub players: u32,
    /// How long to drive load, e.g. `60s`, `2m`, `1m30s`, `500ms`; `0` runs
    /// until Ctrl-C.
    #[arg(long, default_value = "60s", value_parser = parse_duration_ms, value_name = "DURATION")]
    pub duration: u64,
    /// Directory for the genesis, keys and each validator's home (`valN/`).
    #[arg(long, default_value = "./localnet", value_name = "PATH")]
    pub dir: PathBuf,
    /// Total transactions per second offered by all players together (a fixed
    /// schedule, whatever the cluster does); `0` sends as fast as the players'
    /// in-flight windows allow.
    #[arg(long, default_value_t = 200, value_name = "TX_PER_S")]
    pub rate: u64,
    /// Also write the summary as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Reuse the existing localnet in `--dir` (chain data included) instead of
    /// wiping it and initialising a fresh one.
    #[arg(long)]
    pub keep: bool,
    /// Where the validators' consensus keys live: `memory` (plaintext key
    /// files, loaded into memory), `keystore` (encrypted keystores, each
    /// unlocked at start-up with a random passphrase from a 0600 file in the
    /// validator's keys/) or `softhsm`: generated inside a SoftHSM2 token made
    /// for this run in `<dir>/softhsm/`, so every vote is signed through
    /// PKCS#11.
    #[arg(long, value_enum, default_value_t = LocalnetSigner::Memory, value_name = "BACKEND")]
    pub signer: LocalnetSigner,
    /// Log filter for every validator process (`--log-level` of their
    /// `start`), e.g. `debug` or `info,bitcraps_node::engine=debug`; their
    /// logs are `<dir>/valN/node.log`. Default: each node's `[log] level`.
    #[arg(long, value_name = "FILTER", value_parser = crate::logs::parse_level)]
    pub node_log_level: Option<String>,
}

/// `--signer` of `bitcraps localnet`.
#[derive(
    clap::ValueEnum,
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum LocalnetSigner {
    /// Plaintext key files; the nodes report signer backend `memory`.
    #[default]
    Memory,
    /// Keys in a SoftHSM2 token; the nodes report signer backend `pkcs11`.
    Softhsm,
    /// Encrypted keystores with random passphrases in 0600 files; the nodes
    /// report signer backend `keystore`.
    Keystore,
}

impl LocalnetSigner {
    /// `memory`, `softhsm` or `keystore`, as on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            LocalnetSigner::Memory => "memory",
            LocalnetSigner::Softhsm => "softhsm",
            LocalnetSigner::Keystore => "keystore",
        }
    }

    /// The backend every node's `/status` must report (`signer.backend`).
    pub fn node_backend(self) -> &'static str {
        match self {
            LocalnetSigner::Memory => "memory",
            LocalnetSigner::Softhsm => "pkcs11",
            LocalnetSigner::Keystore => "keystore",
        }
    }

    /// What `testnet init` does with the consensus keys. `token` is the
    /// run's SoftHSM2 tokens, which `softhsm` needs (without them it would
    /// get plaintext keys, and the run's signer check would fail on the
    /// backend the nodes report).
    pub fn testnet_signer(self, token: Option<&SoftHsmTokens>) -> TestnetSigner {
        match (self, token) {
            (LocalnetSigner::Keystore, _) => TestnetSigner::keystore(),
            (LocalnetSigner::Softhsm, Some(token)) => token.testnet_signer(),
            (LocalnetSigner::Memory | LocalnetSigner::Softhsm, _) => TestnetSigner::Plaintext,
        }
    }

    /// The start-up line about the keys (no secrets, no paths outside the
    /// homes), for every signer but `softhsm` (which names its tokens).
    pub fn describe(self) -> &'static str {
        match self {
            LocalnetSigner::Memory => "plaintext key files, signing in memory",
            LocalnetSigner::Keystore => {
                "encrypted keystores (keys/consensus.key, Argon2id + XChaCha20-Poly1305), each \
                 unlocked at start-up with the random passphrase in its 0600 \
                 keys/consensus.passphrase, then signing in memory"
            }
            LocalnetSigner::Softhsm => "SoftHSM2 tokens (PKCS#11)",
        }
    }
}

impl LocalnetArgs {
    /// The defaults, as `bitcraps localnet` with no flags would use them.
    pub fn defaults() -> LocalnetArgs {
        LocalnetArgs {
            validators: 4,
            players: 16,
            duration: 60_000,
            dir: PathBuf::from("./localnet"),
            rate: 200,
            json: None,
            keep: false,
            signer: LocalnetSigner::Memory,
            node_log_level: None,
        }
    }
}

/// The arguments every validator's `start` gets for `--node-log-level`.
pub fn node_log_args(filter: Option<&str>) -> Vec<String> {
    filter
        .map(|f| vec!["--log-level".to_owned(), f.to_owned()])
        .unwrap_or_default()
}

/// Parses a humane duration into milliseconds.
///
/// Accepts one or more `<integer><unit>` parts with units `ms`, `s`, `m`,
/// `h` (`1m30s`), or a bare integer meaning seconds (`0`, `15`). Whitespace
/// around the value is ignored. Returns a message fit for a clap error.
pub fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration (try 60s, 2m or 0)".into());
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        let secs: u64 = s
            .parse()
            .map_err(|_| format!("duration {s:?} is too large"))?;
        return checked_total(secs.checked_mul(1_000), s);
    }
    let bytes = s.as_bytes();
    let mut total_ms: u64 = 0;
    let mut i = 0;
    while i < bytes.len() {
        let digits_start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == digits_start {
            return Err(format!(
                "bad duration {s:?}: expected a number at position {digits_start} (try 60s, 2m, 1m30s or 0)"
            ));
        }
        let value: u64 = s[digits_start..i]
            .parse()
            .map_err(|_| format!("duration {s:?} is too large"))?;
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit_ms: u64 = match &s[unit_start..i] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "" => {
                return Err(format!(
                    "bad duration {s:?}: every number needs a unit (ms, s, m, h)"
                ))
            }
            other => {
                return Err(format!(
                    "bad duration {s:?}: unknown unit {other:?} (use ms, s, m or h)"
                ))
            }
        };
        let part = value
            .checked_mul(unit_ms)
            .ok_or_else(|| format!("duration {s:?} is too large"))?;
        total_ms = total_ms
            .checked_add(part)
            .ok_or_else(|| format!("duration {s:?} is too large"))?;
    }
    checked_total(Some(total_ms), s)
}

fn checked_total(total_ms: Option<u64>, s: &str) -> Result<u64, String> {
    match total_ms {
        Some(ms) if ms <= MAX_DURATION_MS => Ok(ms),
        _ => Err(format!(
            "duration {s:?} is too large (at most {} hours)",
            MAX_DURATION_MS / 3_600_000
        )),
    }
}

/// Renders milliseconds the way [`parse_duration_ms`] reads them (`1m30s`).
pub fn format_duration_ms(ms: u64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut rest = ms;
    for (unit, unit_ms) in [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
        let n = rest / unit_ms;
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
            rest -= n * unit_ms;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn parses_humane_durations() {
        assert_eq!(parse_duration_ms("60s"), Ok(60_000));
        assert_eq!(parse_duration_ms("2m"), Ok(120_000));
        assert_eq!(parse_duration_ms("0"), Ok(0));
        assert_eq!(parse_duration_ms("0s"), Ok(0));
        assert_eq!(parse_duration_ms("15"), Ok(15_000));
        assert_eq!(parse_duration_ms("1m30s"), Ok(90_000));
        assert_eq!(parse_duration_ms("1h2m3s4ms"), Ok(3_723_004));
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert_eq!(parse_duration_ms(" 20s "), Ok(20_000));
    }

    #[test]
    fn rejects_bad_durations() {
        for bad in [
            "",
            "s",
            "10x",
            "1.5s",
            "-1s",
            "1m30",
            "m5",
            "10 s",
            "99999999999999999999",
        ] {
            assert!(parse_duration_ms(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_duration_ms("169h").is_err());
        assert_eq!(parse_duration_ms("168h"), Ok(MAX_DURATION_MS));
        assert!(parse_duration_ms("18446744073709551615s").is_err());
    }

    #[test]
    fn format_round_trips() {
        for ms in [0, 1, 999, 1_000, 60_000, 90_000, 3_723_004, MAX_DURATION_MS] {
            assert_eq!(parse_duration_ms(&format_duration_ms(ms)), Ok(ms));
        }
        assert_eq!(format_duration_ms(90_000), "1m30s");
    }

    #[derive(clap::Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        args: LocalnetArgs,
    }

    #[test]
    fn clap_defaults_and_limits() {
        let cli = Cli::try_parse_from(["x"]).unwrap();
        assert_eq!(cli.args, LocalnetArgs::defaults());
        let cli = Cli::try_parse_from([
            "x",
            "--validators",
            "7",
            "--players",
            "1024",
            "--duration",
            "0",
            "--rate",
            "0",
            "--json",
            "s.json",
            "--keep",
            "--dir",
            "/tmp/ln",
            "--signer",
            "softhsm",
        ])
        .unwrap();
        assert_eq!(cli.args.signer, LocalnetSigner::Softhsm);
        assert_eq!(cli.args.signer.node_backend(), "pkcs11");
        let keystore = Cli::try_parse_from(["x", "--signer", "keystore"]).unwrap();
        assert_eq!(keystore.args.signer, LocalnetSigner::Keystore);
        assert_eq!(keystore.args.signer.as_str(), "keystore");
        assert_eq!(keystore.args.signer.node_backend(), "keystore");
        assert_eq!(
            keystore.args.signer.testnet_signer(None),
            TestnetSigner::keystore()
        );
        assert_eq!(
            serde_json::to_string(&LocalnetSigner::Keystore).unwrap(),
            "\"keystore\""
        );
        assert_eq!(
            LocalnetSigner::Memory.testnet_signer(None),
            TestnetSigner::Plaintext
        );
        assert_eq!(cli.args.validators, 7);
        assert_eq!(cli.args.players, 1024);
        assert_eq!(cli.args.duration, 0);
        assert_eq!(cli.args.rate, 0);
        assert!(cli.args.keep);
        assert_eq!(cli.args.json, Some(PathBuf::from("s.json")));
        for bad in [
            vec!["x", "--validators", "0"],
            vec!["x", "--validators", "21"],
            vec!["x", "--players", "0"],
            vec!["x", "--players", "1025"],
            vec!["x", "--duration", "forever"],
            vec!["x", "--signer", "pkcs11"],
        ] {
            assert!(Cli::try_parse_from(&bad).is_err(), "{bad:?} accepted");
        }
    }
}
