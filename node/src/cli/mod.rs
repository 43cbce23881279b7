//! The `bitcraps` command line (clap derive).
//!
//! One module per verb. Each exposes an `Args` type (clap) and a
//! `run(&Context, Args)`; adding a verb is one [`Command`] variant, one match
//! arm in [`dispatch`] and one module.
//!
//! Errors: every command returns a [`CliResult`]; [`main`] prints
//! `error: <message>` and its causes to stderr and exits 1. Usage errors are
//! clap's (exit 2). Nothing here prints secrets: key commands print public keys
//! only.

mod bench;
mod config_cmd;
mod init;
mod keys;
mod localnet;
mod logging;
mod play;
mod start;
mod status;
mod testnet;
mod trace;
mod version;

use bitcraps_node::home::Home;
use bitcraps_node::localnet::LocalnetArgs;
use clap::{Parser, Subcommand};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

/// What a command returns; any error with a cause chain.
pub type CliResult<T = ()> = Result<T, CliError>;
pub type CliError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Parser, Debug)]
#[command(
    name = "bitcraps",
    version,
    about = "BitCraps validator node",
    long_about = "BitCraps validator node: create a node home (`init`) or a local \
                  testnet (`testnet init`), run a validator (`start`) and inspect it \
                  (`status`)."
)]
struct Cli {
    /// Node home directory (config.toml, genesis.json, keys/, data/).
    /// Default: $BITCRAPS_HOME, else ~/.bitcraps.
    #[arg(long, global = true, value_name = "DIR")]
    home: Option<PathBuf>,
    /// Log line format on stderr (default: text, or `[log] format` for `start`).
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    log_format: Option<logging::FormatArg>,
    /// Log filter in tracing EnvFilter syntax, e.g. `info` or
    /// `info,bitcraps_node::net=debug` (default: info, or `[log] level` for `start`).
    #[arg(long, global = true, value_name = "FILTER", value_parser = bitcraps_node::logs::parse_level)]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a single-validator node home (keys, config, genesis).
    Init(init::Args),
    /// Generate and inspect key files.
    Keys(keys::Args),
    /// Show or check the node's config.toml.
    Config(config_cmd::Args),
    /// Create the homes of a multi-validator test network.
    Testnet(testnet::Args),
    /// Run the validator until Ctrl-C or SIGTERM.
    Start(start::Args),
    /// Ask a running node for its status (GET /status).
    Status(status::Args),
    /// Follow a transaction by its correlation id across nodes: one merged
    /// timeline of every stage each node saw.
    Trace(trace::Args),
    /// Run a local cluster of validator processes with simulated players,
    /// then check that every node reached the same state root.
    Localnet(LocalnetArgs),
    /// Benchmark a local cluster: open-loop signed load through every
    /// validator; throughput, latency from intended send time, CPU, memory.
    Bench(bench::Args),
    /// Play craps against a node: keys, balance, tables, bets, live rolls.
    Play(play::Args),
    /// Print the version.
    Version(version::Args),
}

/// What every command may use: global options.
#[derive(Debug)]
pub struct Context {
    home: Option<PathBuf>,
    log_format: Option<logging::FormatArg>,
    log_level: Option<String>,
    /// Set by [`Context::init_logging`]; dropped when `main` returns, which
    /// writes the log throttle's pending summaries.
    log_guard: std::sync::OnceLock<bitcraps_node::logs::LogGuard>,
}

impl Context {
    /// The node home: `--home`, else `$BITCRAPS_HOME`, else `~/.bitcraps`.
    pub fn home(&self) -> CliResult<Home> {
        if let Some(h) = &self.home {
            return Ok(Home::new(h));
        }
        if let Some(h) = std::env::var_os("BITCRAPS_HOME").filter(|h| !h.is_empty()) {
            return Ok(Home::new(PathBuf::from(h)));
        }
        match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            Some(h) => Ok(Home::new(PathBuf::from(h).join(".bitcraps"))),
            None => Err("cannot find a home directory: pass --home or set BITCRAPS_HOME".into()),
        }
    }

    /// Starts logging to stderr. `config` supplies defaults for options not
    /// given on the command line (used by `start`).
    pub fn init_logging(&self, config: Option<&bitcraps_node::config::LogSection>) -> CliResult {
        self.init_logging_with(config, None)
    }

    /// [`Context::init_logging`] with an extra layer first in the stack (the
    /// OpenTelemetry exporter's, for `start`).
    pub fn init_logging_with(
        &self,
        config: Option<&bitcraps_node::config::LogSection>,
        extra: Option<bitcraps_node::logs::ExtraLayer>,
    ) -> CliResult {
        let level = self
            .log_level
            .clone()
            .or_else(|| config.map(|c| c.level.clone()))
            .unwrap_or_else(|| "info".to_owned());
        let format = self
            .log_format
            .map(logging::FormatArg::into_format)
            .or_else(|| config.map(|c| c.format))
            .unwrap_or_default();
        let guard = logging::init_with(&level, format, extra)?;
        // Logging starts once per process (a second `init` fails above).
        let _ = self.log_guard.set(guard);
        Ok(())
    }
}

/// reqwest's top-level message is generic ("error sending request"); the
/// causes say what happened (connection refused, timed out).
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let c = cause.to_string();
        if !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
        source = cause.source();
    }
    text
}

/// Parses the command line, runs the command, returns the exit code.
pub fn main() -> ExitCode {
    // Exits 2 on usage errors and 0 for --help/--version, as clap does.
    let cli = Cli::parse();
    let ctx = Context {
        home: cli.home,
        log_format: cli.log_format,
        log_level: cli.log_level,
        log_guard: std::sync::OnceLock::new(),
    };
    match dispatch(&ctx, cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report(e.as_ref());
            ExitCode::from(1)
        }
    }
}

fn dispatch(ctx: &Context, command: Command) -> CliResult {
    // `start` initialises logging itself, once its config gives the defaults.
    if !matches!(command, Command::Start(_)) {
        ctx.init_logging(None)?;
    }
    match command {
        Command::Init(args) => init::run(ctx, args),
        Command::Keys(args) => keys::run(ctx, args),
        Command::Config(args) => config_cmd::run(ctx, args),
        Command::Testnet(args) => testnet::run(ctx, args),
        Command::Start(args) => start::run(ctx, args),
        Command::Status(args) => status::run(ctx, args),
        Command::Trace(args) => trace::run(ctx, args),
        Command::Localnet(args) => localnet::run(ctx, args),
        Command::Bench(args) => bench::run(ctx, args),
        Command::Play(args) => play::run(ctx, args),
        Command::Version(args) => version::run(ctx, args),
    }
}

/// `error: <message>` then each cause, skipping causes whose text the message
/// above already includes (many errors embed their source's message).
fn report(error: &(dyn std::error::Error + 'static)) {
    let mut stderr = std::io::stderr().lock();
    let mut shown = error.to_string();
    let _ = writeln!(stderr, "error: {shown}");
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !shown.contains(&text) {
            let _ = writeln!(stderr, "  caused by: {text}");
            shown.push_str(&text);
        }
        source = cause.source();
    }
}

/// Writes to stdout; a closed pipe (`bitcraps ... | head`) is an error to
/// report, not a panic.
pub fn emit(text: &str) -> CliResult {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| format!("writing to stdout: {e}").into())
}
