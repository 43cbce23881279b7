//! Logging for the binary: tracing to stderr (stdout is reserved for command
//! output such as `config show` or `status --json`), text or JSON lines,
//! redacted and rate-limited per callsite. The pipeline itself lives in
//! [`bitcraps_node::logs`]; this module maps the command-line options onto it.

use super::CliResult;
use bitcraps_node::config::LogFormat;
use bitcraps_node::logs::{self, ExtraLayer, LogGuard, LogSetup, ThrottleConfig};

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

/// Starts the node's log pipeline ([`bitcraps_node::logs`]) on stderr:
/// `level` as the filter, `format` for the lines, the default throttle, and
/// `extra` installed first in the subscriber (the OpenTelemetry layer).
/// Keep the returned guard until the process ends; dropping it writes the
/// counts of repeated lines the throttle is still holding back. The extra
/// layer sees every span and event the filter enables.
pub fn init_with(level: &str, format: LogFormat, extra: Option<ExtraLayer>) -> CliResult<LogGuard> {
    let setup = LogSetup {
        filter: level.to_owned(),
        format,
        throttle: ThrottleConfig::default(),
        extra,
    };
    logs::init(setup).map_err(Into::into)
}
