//! `config.toml`: the node's local settings (where its files are, what it
//! listens on, its resource limits, logging).
//!
//! What belongs here is everything an operator may tune *per node* without
//! asking the other validators; anything every validator must agree on lives
//! in `genesis.json` ([`crate::chainspec`]). The file is strict
//! (`deny_unknown_fields` in every section) so a misspelt option fails loudly
//! instead of silently keeping its default, and [`Config::validate`] rejects
//! values that parse but cannot work (a zero queue, an unparsable address).
//!
//! Relative paths are relative to the node's home directory (the directory
//! holding `config.toml`), so a home can be moved or copied as a whole.
//!
//! [`Config::to_toml`] writes every option with a comment saying what it does
//! and its unit; `bitcraps init` writes that, so the file documents itself.

use crate::config_signer::{AdminSection, SignerSection};
use crate::http::HttpLimits;
use crate::net::Limits;
use crate::trace::tracker::{
    TrackerConfig, MAX_ENTRIES_LIMIT, MIN_CLEANUP_INTERVAL_MS, MIN_MAX_AGE_MS,
};
use crate::validator::MempoolLimits;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::io::Read as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Largest `config.toml` accepted (bytes); a real one is a few KiB.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Default QUIC (UDP) listen address of a single-node home.
pub const DEFAULT_P2P_LISTEN: &str = "127.0.0.1:9400";
/// Default HTTP (TCP) listen address of a single-node home.
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:9480";

/// The whole `config.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub node: NodeSection,
    #[serde(default)]
    pub keys: KeysSection,
    #[serde(default)]
    pub p2p: P2pSection,
    #[serde(default)]
    pub http: HttpSection,
    #[serde(default)]
    pub mempool: MempoolLimits,
    #[serde(default)]
    pub net: NetSection,
    #[serde(default)]
    pub log: LogSection,
    #[serde(default)]
    pub signer: SignerSection,
    #[serde(default)]
    pub admin: AdminSection,
    #[serde(default)]
    pub correlation: CorrelationSection,
}

/// `[node]`: where the chain's files are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeSection {
    /// The chain spec shared by all validators.
    pub genesis: PathBuf,
    /// Database and signing-guard state.
    pub data_dir: PathBuf,
    /// Store every block's receipts and index them by transaction id
    /// (`GET /api/v1/tx/{hash}` for any committed transaction). A validator
    /// that serves no lookups can turn it off: no receipt chunks in the
    /// block's commit and no index thread (see BENCHMARKS.md). The state
    /// root is the same.
    pub index_receipts: bool,
}

impl Default for NodeSection {
    fn default() -> Self {
        NodeSection {
            genesis: PathBuf::from("genesis.json"),
            data_dir: PathBuf::from("data"),
            index_receipts: true,
        }
    }
}

/// `[keys]`: key files (plaintext backend).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysSection {
    /// Signs votes and proposals (genesis `consensus_key`).
    pub consensus: PathBuf,
    /// Authenticates QUIC connections (genesis `identity_key`).
    pub identity: PathBuf,
    /// This validator's share of the dice beacon key (genesis `app.beacon`).
    pub beacon_share: PathBuf,
}

impl Default for KeysSection {
    fn default() -> Self {
        KeysSection {
            consensus: PathBuf::from("keys/consensus.key"),
            identity: PathBuf::from("keys/identity.key"),
            beacon_share: PathBuf::from("keys/beacon_share.key"),
        }
    }
}

/// `[p2p]`: the QUIC endpoint other validators dial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct P2pSection {
    /// UDP `ip:port`.
    pub listen: String,
}

impl Default for P2pSection {
    fn default() -> Self {
        P2pSection {
            listen: DEFAULT_P2P_LISTEN.to_owned(),
        }
    }
}

/// `[http]`: the HTTP API and its client limits ([`HttpLimits`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSection {
    /// TCP `ip:port`.
    pub listen: String,
    pub max_body_bytes: usize,
    pub requests_per_s: u32,
    pub burst: u32,
    pub max_clients: usize,
    pub max_concurrent_requests: usize,
    pub request_timeout_ms: u64,
}

impl Default for HttpSection {
    fn default() -> Self {
        let d = HttpLimits::default();
        HttpSection {
            listen: DEFAULT_HTTP_LISTEN.to_owned(),
            max_body_bytes: d.max_body_bytes,
            requests_per_s: d.requests_per_s,
            burst: d.burst,
            max_clients: d.max_clients,
            max_concurrent_requests: d.max_concurrent_requests,
            request_timeout_ms: d.request_timeout_ms,
        }
    }
}

impl HttpSection {
    /// The limits the HTTP server enforces. Fields the config does not expose
    /// (if the server grows new ones) keep their defaults.
    // The `..default()` is needless today; it keeps this compiling when
    // HttpLimits grows a field.
    #[allow(clippy::needless_update)]
    pub fn limits(&self) -> HttpLimits {
        HttpLimits {
            max_body_bytes: self.max_body_bytes,
            requests_per_s: self.requests_per_s,
            burst: self.burst,
            max_clients: self.max_clients,
            max_concurrent_requests: self.max_concurrent_requests,
            request_timeout_ms: self.request_timeout_ms,
            ..HttpLimits::default()
        }
    }
}

/// `[net]`: the QUIC transport's bounds (the tunable part of [`Limits`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetSection {
    pub max_frame_bytes: usize,
    pub outbound_queue_messages: usize,
    pub outbound_queue_bytes: usize,
    pub inbound_queue_messages: usize,
    pub inbound_messages_per_s: u64,
    pub inbound_burst_messages: u64,
    pub inbound_bytes_per_s: u64,
    pub inbound_burst_bytes: u64,
    pub reconnect_base_ms: u64,
    pub reconnect_max_ms: u64,
    pub connect_timeout_ms: u64,
    pub breaker_failure_threshold: u32,
    pub breaker_cooldown_ms: u64,
    pub penalty_threshold: u32,
    pub penalty_cooldown_ms: u64,
    pub keep_alive_ms: u64,
    pub idle_timeout_ms: u64,
}

impl Default for NetSection {
    fn default() -> Self {
        let d = Limits::default();
        NetSection {
            max_frame_bytes: d.max_frame_bytes,
            outbound_queue_messages: d.outbound_queue_messages,
            outbound_queue_bytes: d.outbound_queue_bytes,
            inbound_queue_messages: d.inbound_queue_messages,
            inbound_messages_per_s: d.inbound_messages_per_s,
            inbound_burst_messages: d.inbound_burst_messages,
            inbound_bytes_per_s: d.inbound_bytes_per_s,
            inbound_burst_bytes: d.inbound_burst_bytes,
            reconnect_base_ms: d.reconnect_base_ms,
            reconnect_max_ms: d.reconnect_max_ms,
            connect_timeout_ms: d.connect_timeout_ms,
            breaker_failure_threshold: d.breaker_failure_threshold,
            breaker_cooldown_ms: d.breaker_cooldown_ms,
            penalty_threshold: d.penalty_threshold,
            penalty_cooldown_ms: d.penalty_cooldown_ms,
            keep_alive_ms: d.keep_alive_ms,
            idle_timeout_ms: d.idle_timeout_ms,
        }
    }
}

impl NetSection {
    /// The transport limits: these fields over [`Limits::default`].
    pub fn limits(&self) -> Limits {
        Limits {
            max_frame_bytes: self.max_frame_bytes,
            outbound_queue_messages: self.outbound_queue_messages,
            outbound_queue_bytes: self.outbound_queue_bytes,
            inbound_queue_messages: self.inbound_queue_messages,
            inbound_messages_per_s: self.inbound_messages_per_s,
            inbound_burst_messages: self.inbound_burst_messages,
            inbound_bytes_per_s: self.inbound_bytes_per_s,
            inbound_burst_bytes: self.inbound_burst_bytes,
            reconnect_base_ms: self.reconnect_base_ms,
            reconnect_max_ms: self.reconnect_max_ms,
            connect_timeout_ms: self.connect_timeout_ms,
            breaker_failure_threshold: self.breaker_failure_threshold,
            breaker_cooldown_ms: self.breaker_cooldown_ms,
            penalty_threshold: self.penalty_threshold,
            penalty_cooldown_ms: self.penalty_cooldown_ms,
            keep_alive_ms: self.keep_alive_ms,
            idle_timeout_ms: self.idle_timeout_ms,
            ..Limits::default()
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (for log shippers).
    Json,
}

impl LogFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// `[log]`: used by `bitcraps start` unless `--log-level`/`--log-format` are given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// tracing-subscriber `EnvFilter` directives, e.g. `info` or `info,bitcraps_node::net=debug`.
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

/// `[correlation]`: bounds of the correlation tracker behind
/// `/api/v1/correlation/*` and `bitcraps trace` ([`TrackerConfig`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorrelationSection {
    /// Transactions tracked at once; the oldest is evicted beyond this.
    pub max_entries: usize,
    /// Entries first seen longer ago than this are evicted (milliseconds).
    pub max_age_ms: u64,
    /// How often old entries are evicted (milliseconds).
    pub cleanup_interval_ms: u64,
}

impl Default for CorrelationSection {
    fn default() -> Self {
        let d = TrackerConfig::default();
        CorrelationSection {
            max_entries: d.max_entries,
            max_age_ms: d.max_age_ms,
            cleanup_interval_ms: d.cleanup_interval_ms,
        }
    }
}

impl CorrelationSection {
    /// The tracker's bounds.
    pub fn tracker_config(&self) -> TrackerConfig {
        TrackerConfig {
            max_entries: self.max_entries,
            max_age_ms: self.max_age_ms,
            cleanup_interval_ms: self.cleanup_interval_ms,
        }
    }

    /// Each bound, with the option's name in the error.
    fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=MAX_ENTRIES_LIMIT).contains(&self.max_entries) {
            return Err(invalid(
                "correlation.max_entries",
                format!("{} is outside 1..={MAX_ENTRIES_LIMIT}", self.max_entries),
            ));
        }
        if self.max_age_ms < MIN_MAX_AGE_MS {
            return Err(invalid(
                "correlation.max_age_ms",
                format!(
                    "{} is below {MIN_MAX_AGE_MS}: transactions would be forgotten before they commit",
                    self.max_age_ms
                ),
            ));
        }
        if !(MIN_CLEANUP_INTERVAL_MS..=self.max_age_ms).contains(&self.cleanup_interval_ms) {
            return Err(invalid(
                "correlation.cleanup_interval_ms",
                format!(
                    "{} is outside {MIN_CLEANUP_INTERVAL_MS}..=correlation.max_age_ms ({})",
                    self.cleanup_interval_ms, self.max_age_ms
                ),
            ));
        }
        // Whatever else the tracker itself refuses (its rules may grow).
        self.tracker_config()
            .validate()
            .map_err(|reason| invalid("correlation", reason))
    }
}

/// Why a config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is larger than {MAX_CONFIG_BYTES} bytes; not a config file")]
    TooLarge { path: PathBuf },
    #[error("parsing {path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// A value that parses but cannot work. `field` is `section.option`.
    #[error("invalid config: {field}: {reason}")]
    Invalid { field: String, reason: String },
}

fn invalid(field: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

/// Parses a listen address; `field` names the option in errors.
pub fn parse_listen(field: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    let addr: SocketAddr = value.trim().parse().map_err(|_| {
        invalid(
            field,
            format!(
                "{value:?} is not an `ip:port` address (e.g. \"127.0.0.1:9400\" or \"[::1]:9400\")"
            ),
        )
    })?;
    if addr.port() == 0 {
        // Other validators and clients must know where to reach us, so an
        // OS-chosen port would be unusable.
        return Err(invalid(field, format!("{value:?}: port 0 is not allowed")));
    }
    Ok(addr)
}

impl Config {
    /// Reads, parses and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let io = |source| ConfigError::Io {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let mut bytes = Vec::new();
        file.take(MAX_CONFIG_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        if bytes.len() as u64 > MAX_CONFIG_BYTES {
            return Err(ConfigError::TooLarge {
                path: path.to_owned(),
            });
        }
        let text = String::from_utf8(bytes).map_err(|_| ConfigError::Parse {
            path: path.to_owned(),
            message: "not UTF-8 text".into(),
        })?;
        let config = Config::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Parses TOML text without validating values.
    pub fn parse(text: &str) -> Result<Config, String> {
        // toml's message already names the line, column and offending key.
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())
    }

    /// Checks ranges, addresses and limits.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (field, path) in [
            ("node.genesis", &self.node.genesis),
            ("node.data_dir", &self.node.data_dir),
            ("keys.consensus", &self.keys.consensus),
            ("keys.identity", &self.keys.identity),
        ] {
            if path.as_os_str().is_empty() {
                return Err(invalid(field, "must not be empty"));
            }
        }
        if self.keys.consensus == self.keys.identity {
            // The two keys have different jobs (ARCHITECTURE.md invariant 7).
            return Err(invalid(
                "keys.identity",
                "must be a different file from keys.consensus",
            ));
        }
        self.p2p_listen()?;
        self.http_listen()?;
        self.signer.validate()?;

        let h = &self.http;
        positive("http.max_body_bytes", h.max_body_bytes as u64)?;
        at_most(
            "http.max_body_bytes",
            h.max_body_bytes as u64,
            bitcraps_consensus::params::MAX_MESSAGE_BYTES as u64,
        )?;
        positive("http.requests_per_s", u64::from(h.requests_per_s))?;
        positive("http.burst", u64::from(h.burst))?;
        positive("http.max_clients", h.max_clients as u64)?;
        positive(
            "http.max_concurrent_requests",
            h.max_concurrent_requests as u64,
        )?;
        positive("http.request_timeout_ms", h.request_timeout_ms)?;

        let m = &self.mempool;
        positive("mempool.capacity", m.capacity as u64)?;
        positive("mempool.per_account", m.per_account as u64)?;
        if m.per_account > m.capacity {
            return Err(invalid(
                "mempool.per_account",
                format!(
                    "{} is larger than mempool.capacity ({})",
                    m.per_account, m.capacity
                ),
            ));
        }

        let n = &self.net;
        positive("net.max_frame_bytes", n.max_frame_bytes as u64)?;
        at_most(
            "net.max_frame_bytes",
            n.max_frame_bytes as u64,
            crate::net::frame::MAX_FRAME_BYTES as u64,
        )?;
        positive(
            "net.outbound_queue_messages",
            n.outbound_queue_messages as u64,
        )?;
        if n.outbound_queue_bytes < n.max_frame_bytes {
            return Err(invalid(
                "net.outbound_queue_bytes",
                format!(
                    "{} must be at least net.max_frame_bytes ({}) so one largest frame fits",
                    n.outbound_queue_bytes, n.max_frame_bytes
                ),
            ));
        }
        positive(
            "net.inbound_queue_messages",
            n.inbound_queue_messages as u64,
        )?;
        positive("net.inbound_messages_per_s", n.inbound_messages_per_s)?;
        positive("net.inbound_burst_messages", n.inbound_burst_messages)?;
        positive("net.inbound_bytes_per_s", n.inbound_bytes_per_s)?;
        if n.inbound_burst_bytes < n.max_frame_bytes as u64 {
            return Err(invalid(
                "net.inbound_burst_bytes",
                format!(
                    "{} must be at least net.max_frame_bytes ({}) or a largest frame could never pass",
                    n.inbound_burst_bytes, n.max_frame_bytes
                ),
            ));
        }
        positive("net.reconnect_base_ms", n.reconnect_base_ms)?;
        if n.reconnect_max_ms < n.reconnect_base_ms {
            return Err(invalid(
                "net.reconnect_max_ms",
                format!(
                    "{} is below net.reconnect_base_ms ({})",
                    n.reconnect_max_ms, n.reconnect_base_ms
                ),
            ));
        }
        positive("net.connect_timeout_ms", n.connect_timeout_ms)?;
        positive(
            "net.breaker_failure_threshold",
            u64::from(n.breaker_failure_threshold),
        )?;
        positive("net.penalty_threshold", u64::from(n.penalty_threshold))?;
        positive("net.keep_alive_ms", n.keep_alive_ms)?;
        positive("net.idle_timeout_ms", n.idle_timeout_ms)?;
        if n.keep_alive_ms >= n.idle_timeout_ms {
            // Otherwise an idle but healthy connection times out between pings.
            return Err(invalid(
                "net.keep_alive_ms",
                format!(
                    "{} must be below net.idle_timeout_ms ({})",
                    n.keep_alive_ms, n.idle_timeout_ms
                ),
            ));
        }
        // Anything the transport itself refuses (its rules may grow).
        self.net
            .limits()
            .validate()
            .map_err(|e| invalid("net", e.to_string()))?;

        if self.log.level.trim().is_empty() {
            return Err(invalid("log.level", "must not be empty (e.g. \"info\")"));
        }
        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .map_err(|e| invalid("log.level", format!("{:?}: {e}", self.log.level)))?;
        self.correlation.validate()?;
        Ok(())
    }

    /// `[p2p] listen`, parsed.
    pub fn p2p_listen(&self) -> Result<SocketAddr, ConfigError> {
        parse_listen("p2p.listen", &self.p2p.listen)
    }

    /// `[http] listen`, parsed.
    pub fn http_listen(&self) -> Result<SocketAddr, ConfigError> {
        parse_listen("http.listen", &self.http.listen)
    }

    /// The documented default file.
    pub fn default_toml() -> String {
        Config::default().to_toml()
    }

    /// This config as TOML, every option present with a comment saying what it
    /// does and its unit. Parsing the output gives back `self`.
    pub fn to_toml(&self) -> String {
        let mut out = String::new();
        let mut line = |s: &str| {
            out.push_str(s);
            out.push('\n');
        };
        line("# BitCraps node configuration.");
        line("# Relative paths are relative to the directory holding this file (the node's home).");
        line("# Every option is shown with its current value; units are in the names.");
        line("# Check a change with `bitcraps config validate`.");
        line("");
        line("[node]");
        line("# Chain spec shared byte for byte by every validator of the chain.");
        line(&kv("genesis", &s(&self.node.genesis.to_string_lossy())));
        line("# Database (WAL, blocks, app state) and the signing guard's double-sign state");
        line("# (`guard_state`). Back up guard_state together with the consensus key.");
        line(&kv("data_dir", &s(&self.node.data_dir.to_string_lossy())));
        line("# Store each block's receipts and index them by transaction id (data_dir/txindex,");
        line("# built in the background), so GET /api/v1/tx/{hash} answers for any committed");
        line("# transaction. false: a validator that serves no lookups stores no receipts and");
        line("# runs no index thread; the API then only knows recent transactions committed.");
        line(&kv("index_receipts", &self.node.index_receipts.to_string()));
        line("");
        line("[keys]");
        line("# Plaintext key files (mode 0600). For localnet/testnet only; production keys");
        line("# belong in an encrypted keystore or an HSM.");
        line("# Signs votes and proposals; its public key is genesis `consensus_key`.");
        line(&kv("consensus", &s(&self.keys.consensus.to_string_lossy())));
        line("# Authenticates QUIC connections; its public key is genesis `identity_key`.");
        line(&kv("identity", &s(&self.keys.identity.to_string_lossy())));
        line("# This validator's share of the dice beacon's threshold key (needed when");
        line("# genesis has `app.beacon`; dealt by `testnet init`).");
        line(&kv(
            "beacon_share",
            &s(&self.keys.beacon_share.to_string_lossy()),
        ));
        line("");
        line("[p2p]");
        line("# UDP address of the QUIC endpoint other validators dial (`ip:port`; genesis");
        line("# `address` tells them where to find it).");
        line(&kv("listen", &s(&self.p2p.listen)));
        line("");
        let h = &self.http;
        line("[http]");
        line("# TCP address of the HTTP API (`ip:port`). Keep it on loopback unless a");
        line("# reverse proxy or firewall protects it.");
        line(&kv("listen", &s(&h.listen)));
        line("# Largest request body in bytes; larger requests get 413.");
        line(&kv("max_body_bytes", &h.max_body_bytes.to_string()));
        line("# Sustained requests per second allowed per client IP.");
        line(&kv("requests_per_s", &h.requests_per_s.to_string()));
        line("# Burst of requests allowed per client IP (requests).");
        line(&kv("burst", &h.burst.to_string()));
        line("# Client IPs tracked by the rate limiter (oldest evicted first).");
        line(&kv("max_clients", &h.max_clients.to_string()));
        line("# Requests handled at once; more wait, then get 503.");
        line(&kv(
            "max_concurrent_requests",
            &h.max_concurrent_requests.to_string(),
        ));
        line("# A request taking longer than this many milliseconds gets 503.");
        line(&kv("request_timeout_ms", &h.request_timeout_ms.to_string()));
        line("");
        let m = &self.mempool;
        line("[mempool]");
        line("# Verified transactions waiting for a block, all accounts together.");
        line(&kv("capacity", &m.capacity.to_string()));
        line("# Pending transactions per sending account (at most `capacity`).");
        line(&kv("per_account", &m.per_account.to_string()));
        line("");
        let n = &self.net;
        line("[net]");
        line("# Largest QUIC frame payload sent or accepted, in bytes (at most 8 MiB).");
        line(&kv("max_frame_bytes", &n.max_frame_bytes.to_string()));
        line("# Per-peer outbound queue, in messages; when full the oldest is dropped.");
        line(&kv(
            "outbound_queue_messages",
            &n.outbound_queue_messages.to_string(),
        ));
        line("# Per-peer outbound queue, in bytes (at least max_frame_bytes).");
        line(&kv(
            "outbound_queue_bytes",
            &n.outbound_queue_bytes.to_string(),
        ));
        line("# Per-peer messages delivered but not yet handled; when reached we stop");
        line("# reading from that peer (QUIC flow control pushes back).");
        line(&kv(
            "inbound_queue_messages",
            &n.inbound_queue_messages.to_string(),
        ));
        line("# Inbound rate limit per peer: sustained messages per second.");
        line(&kv(
            "inbound_messages_per_s",
            &n.inbound_messages_per_s.to_string(),
        ));
        line("# Inbound rate limit per peer: burst, in messages.");
        line(&kv(
            "inbound_burst_messages",
            &n.inbound_burst_messages.to_string(),
        ));
        line("# Inbound rate limit per peer: sustained bytes per second.");
        line(&kv(
            "inbound_bytes_per_s",
            &n.inbound_bytes_per_s.to_string(),
        ));
        line("# Inbound rate limit per peer: burst, in bytes (at least max_frame_bytes).");
        line(&kv(
            "inbound_burst_bytes",
            &n.inbound_burst_bytes.to_string(),
        ));
        line("# First redial delay in milliseconds; doubles per failure, with jitter.");
        line(&kv("reconnect_base_ms", &n.reconnect_base_ms.to_string()));
        line("# Largest redial delay in milliseconds.");
        line(&kv("reconnect_max_ms", &n.reconnect_max_ms.to_string()));
        line("# A dial or handshake taking longer than this many milliseconds fails.");
        line(&kv("connect_timeout_ms", &n.connect_timeout_ms.to_string()));
        line("# Consecutive dial failures that open a peer's circuit breaker.");
        line(&kv(
            "breaker_failure_threshold",
            &n.breaker_failure_threshold.to_string(),
        ));
        line("# How long an opened circuit breaker stays open, in milliseconds.");
        line(&kv(
            "breaker_cooldown_ms",
            &n.breaker_cooldown_ms.to_string(),
        ));
        line("# Penalty points at which a misbehaving peer is disconnected (garbage,");
        line("# oversize or badly signed messages cost 100 each).");
        line(&kv("penalty_threshold", &n.penalty_threshold.to_string()));
        line("# How long a peer disconnected for misbehaviour is refused, in milliseconds.");
        line(&kv(
            "penalty_cooldown_ms",
            &n.penalty_cooldown_ms.to_string(),
        ));
        line("# QUIC keep-alive interval in milliseconds (below idle_timeout_ms).");
        line(&kv("keep_alive_ms", &n.keep_alive_ms.to_string()));
        line("# A connection silent for this many milliseconds is closed.");
        line(&kv("idle_timeout_ms", &n.idle_timeout_ms.to_string()));
        line("");
        line("[log]");
        line("# Log filter in tracing EnvFilter syntax, e.g. \"info\" or");
        line("# \"info,bitcraps_node::net=debug\". `--log-level` overrides it.");
        line(&kv("level", &s(&self.log.level)));
        line("# \"text\" (human-readable) or \"json\" (one object per line). `--log-format`");
        line("# overrides it. Logs go to stderr.");
        line(&kv("format", &s(self.log.format.as_str())));
        line("");
        for l in self.signer.toml_lines(kv, s) {
            line(&l);
        }
        for l in self.admin.toml_lines(kv, s) {
            line(&l);
        }
        let c = &self.correlation;
        line("");
        line("[correlation]");
        line("# Per-transaction stage times behind GET /api/v1/correlation/{id} and");
        line("# `bitcraps trace`. Transactions tracked at once (1 to 10000000, about");
        line("# 300 bytes each); the oldest is forgotten first.");
        line(&kv("max_entries", &c.max_entries.to_string()));
        line("# Forget a transaction this many milliseconds after it was first seen");
        line("# (at least 1000).");
        line(&kv("max_age_ms", &c.max_age_ms.to_string()));
        line("# How often old transactions are forgotten, in milliseconds (100 to max_age_ms).");
        line(&kv(
            "cleanup_interval_ms",
            &c.cleanup_interval_ms.to_string(),
        ));
        out
    }
}

/// `key = value`.
fn kv(key: &str, value: &str) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write!(out, "{key} = {value}");
    out
}

/// A TOML string literal with the escaping TOML needs.
fn s(value: &str) -> String {
    toml::Value::String(value.to_owned()).to_string()
}

fn positive(field: &str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(invalid(field, "must be greater than 0"));
    }
    Ok(())
}

fn at_most(field: &str, value: u64, max: u64) -> Result<(), ConfigError> {
    if value > max {
        return Err(invalid(
            field,
            format!("{value} is above the maximum {max}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_paths(value: &toml::Value, prefix: &str, out: &mut Vec<String>) {
        if let toml::Value::Table(t) = value {
            for (k, v) in t {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                key_paths(v, &path, out);
                out.push(path);
            }
        }
    }

    #[test]
    fn default_toml_round_trips_and_validates() {
        let text = Config::default_toml();
        let parsed = Config::parse(&text).unwrap();
        assert_eq!(parsed, Config::default());
        parsed.validate().unwrap();
    }

    #[test]
    fn to_toml_writes_every_option_with_a_comment() {
        // Every option the struct serializes must appear in the documented
        // output, so adding a field without documenting it fails here.
        let mut c = Config::default();
        c.p2p.listen = "10.0.0.1:1234".into();
        c.http.listen = "[::1]:8080".into();
        c.node.genesis = PathBuf::from("/etc/bitcraps/genesis \"main\".json");
        c.node.index_receipts = false;
        c.mempool.capacity = 7;
        c.mempool.per_account = 3;
        c.net.keep_alive_ms = 77;
        c.log.format = LogFormat::Json;
        c.log.level = "debug,bitcraps_node::net=trace".into();
        c.signer.backend = crate::config_signer::SignerBackend::Pkcs11;
        c.signer.pkcs11_module = "/usr/lib/softhsm/libsofthsm2.so".into();
        c.signer.pkcs11_token = "validators".into();
        c.signer.pin_file = "keys/pin".into();
        c.signer.probe_interval_ms = 1_234;
        c.admin.token_file = "keys/admin.token".into();
        c.correlation.max_entries = 1_000;
        c.correlation.max_age_ms = 60_000;
        c.correlation.cleanup_interval_ms = 250;
        let text = c.to_toml();
        assert_eq!(Config::parse(&text).unwrap(), c);

        let documented: toml::Value = toml::from_str(&text).unwrap();
        let full = toml::Value::try_from(&c).unwrap();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        key_paths(&documented, "", &mut a);
        key_paths(&full, "", &mut b);
        a.sort();
        b.sort();
        assert_eq!(a, b);

        // Each option line is preceded by a comment.
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            if l.contains(" = ") && !l.starts_with('#') {
                assert!(lines[i - 1].starts_with('#'), "undocumented: {l}");
            }
        }
    }

    fn rejects(edit: impl FnOnce(&mut Config), field: &str) {
        let mut c = Config::default();
        edit(&mut c);
        match c.validate() {
            Err(ConfigError::Invalid { field: f, reason }) => {
                assert_eq!(f, field, "reason: {reason}");
            }
            other => panic!("expected {field} to be rejected, got {other:?}"),
        }
    }

    #[test]
    fn validate_rejects_bad_values() {
        rejects(|c| c.p2p.listen = "localhost".into(), "p2p.listen");
        rejects(|c| c.p2p.listen = "127.0.0.1:0".into(), "p2p.listen");
        rejects(|c| c.http.listen = "1.2.3.4:99999".into(), "http.listen");
        rejects(|c| c.http.max_body_bytes = 0, "http.max_body_bytes");
        rejects(
            |c| c.http.max_body_bytes = usize::MAX,
            "http.max_body_bytes",
        );
        rejects(|c| c.http.requests_per_s = 0, "http.requests_per_s");
        rejects(|c| c.http.request_timeout_ms = 0, "http.request_timeout_ms");
        rejects(|c| c.mempool.capacity = 0, "mempool.capacity");
        rejects(|c| c.mempool.per_account = 0, "mempool.per_account");
        rejects(
            |c| c.mempool.per_account = c.mempool.capacity + 1,
            "mempool.per_account",
        );
        rejects(|c| c.net.max_frame_bytes = 0, "net.max_frame_bytes");
        rejects(
            |c| c.signer.probe_interval_ms = 0,
            "signer.probe_interval_ms",
        );
        rejects(|c| c.signer.pin_env = "A B".into(), "signer.pin_env");
        rejects(
            |c| c.signer.backend = crate::config_signer::SignerBackend::Pkcs11,
            "signer.pkcs11_module",
        );
        rejects(
            |c| {
                c.signer.backend = crate::config_signer::SignerBackend::Pkcs11;
                c.signer.pkcs11_module = "/usr/lib/softhsm/libsofthsm2.so".into();
            },
            "signer.pkcs11_token",
        );
        rejects(|c| c.net.max_frame_bytes = 1 << 30, "net.max_frame_bytes");
        rejects(
            |c| c.net.outbound_queue_bytes = 10,
            "net.outbound_queue_bytes",
        );
        rejects(
            |c| c.net.inbound_queue_messages = 0,
            "net.inbound_queue_messages",
        );
        rejects(|c| c.net.inbound_burst_bytes = 1, "net.inbound_burst_bytes");
        rejects(|c| c.net.reconnect_base_ms = 0, "net.reconnect_base_ms");
        rejects(|c| c.net.reconnect_max_ms = 1, "net.reconnect_max_ms");
        rejects(
            |c| c.net.keep_alive_ms = c.net.idle_timeout_ms,
            "net.keep_alive_ms",
        );
        rejects(|c| c.net.penalty_threshold = 0, "net.penalty_threshold");
        rejects(|c| c.log.level = "".into(), "log.level");
        rejects(|c| c.log.level = "info,[".into(), "log.level");
        rejects(
            |c| c.keys.identity = c.keys.consensus.clone(),
            "keys.identity",
        );
        rejects(|c| c.node.data_dir = PathBuf::new(), "node.data_dir");
    }

    #[test]
    fn correlation_section_parses_validates_and_feeds_the_tracker() {
        let c = Config::parse(
            "[correlation]\nmax_entries = 500\nmax_age_ms = 2000\ncleanup_interval_ms = 100\n",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(
            c.correlation.tracker_config(),
            TrackerConfig {
                max_entries: 500,
                max_age_ms: 2_000,
                cleanup_interval_ms: 100,
            }
        );
        // Defaults are the tracker's, and valid.
        assert_eq!(
            Config::default().correlation.tracker_config(),
            TrackerConfig::default()
        );
        TrackerConfig::default().validate().unwrap();

        rejects(|c| c.correlation.max_entries = 0, "correlation.max_entries");
        rejects(
            |c| c.correlation.max_entries = MAX_ENTRIES_LIMIT + 1,
            "correlation.max_entries",
        );
        rejects(|c| c.correlation.max_age_ms = 999, "correlation.max_age_ms");
        rejects(
            |c| c.correlation.cleanup_interval_ms = 99,
            "correlation.cleanup_interval_ms",
        );
        rejects(
            |c| {
                c.correlation.max_age_ms = 1_000;
                c.correlation.cleanup_interval_ms = 1_001;
            },
            "correlation.cleanup_interval_ms",
        );
        let err = Config::parse("[correlation]\nmax_entrys = 5\n").unwrap_err();
        assert!(err.contains("max_entrys"), "{err}");

        // load() refuses a bad value with the option's name.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "[correlation]\nmax_age_ms = 10\n").unwrap();
        let err = Config::load(&path).unwrap_err().to_string();
        assert!(err.contains("correlation.max_age_ms"), "{err}");
    }

    #[test]
    fn parse_rejects_unknown_fields_and_bad_types() {
        let err = Config::parse("[p2p]\nlisten = \"127.0.0.1:1\"\nlisten_port = 3\n").unwrap_err();
        assert!(err.contains("listen_port"), "{err}");
        let err = Config::parse("[nodes]\n").unwrap_err();
        assert!(err.contains("nodes"), "{err}");
        let err = Config::parse("[mempool]\ncapacity = -1\n").unwrap_err();
        assert!(err.contains("capacity"), "{err}");
        let err = Config::parse("[log]\nformat = \"xml\"\n").unwrap_err();
        assert!(err.contains("xml"), "{err}");
        // Missing sections and options take their defaults.
        assert_eq!(Config::parse("").unwrap(), Config::default());
    }

    #[test]
    fn limits_carry_the_configured_values() {
        let mut c = Config::default();
        c.net.inbound_queue_messages = 5;
        c.http.burst = 9;
        assert_eq!(c.net.limits().inbound_queue_messages, 5);
        assert_eq!(c.http.limits().burst, 9);
        assert_eq!(Config::default().net.limits(), Limits::default());
        assert_eq!(Config::default().http.limits(), HttpLimits::default());
    }

    #[test]
    fn load_limits_size_and_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, vec![b'#'; MAX_CONFIG_BYTES as usize + 1]).unwrap();
        assert!(matches!(
            Config::load(&path),
            Err(ConfigError::TooLarge { .. })
        ));
        std::fs::write(&path, "[http]\nmax_body_bytes = 0\n").unwrap();
        let err = Config::load(&path).unwrap_err().to_string();
        assert!(err.contains("http.max_body_bytes"), "{err}");
        std::fs::write(&path, "[http\n").unwrap();
        let err = Config::load(&path).unwrap_err().to_string();
        assert!(err.contains("config.toml"), "{err}");
    }
}
