//! Logging for the binary: tracing to stderr (stdout is reserved for command
//! output such as `config show` or `status --json`), text or JSON lines.

use super::CliResult;
use bitcraps_node::config::LogFormat;
use tracing_subscriber::EnvFilter;

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl FormatArg {
    pub fn into_format(self) -> LogFormat {
        match self {
            FormatArg::Text => LogFormat::Text,
            FormatArg::Json => LogFormat::Json,
        }
    }
}

/// Checks `--log-level` while parsing, so a bad filter is a usage error.
pub fn parse_level(value: &str) -> Result<String, String> {
    if value.trim().is_empty() {
        return Err("empty filter (try `info`)".into());
    }
    EnvFilter::try_new(value)
        .map(|_| value.to_owned())
        .map_err(|e| e.to_string())
}

pub fn init(level: &str, format: LogFormat) -> CliResult {
    let mut filter = EnvFilter::try_new(level).map_err(|e| format!("log level {level:?}: {e}"))?;
    // cryptoki logs an ERROR for every mechanism a token lists that it has no
    // name for (dozens per login on SoftHSM2); that is noise, not an error.
    // An operator who names the target in --log-level still gets it.
    if !level.contains("cryptoki") {
        if let Ok(quiet) = "cryptoki::mechanism=off".parse() {
            filter = filter.add_directive(quiet);
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in log files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    result.map_err(|e| format!("starting the logger: {e}").into())
}
