//! The node's log pipeline: filter, redaction, throttling, text or JSON lines.
//!
//! ```text
//! Registry
//!   └─ extra            optional (the OpenTelemetry layer), installed first
//!   └─ EnvFilter        global: decides for every layer
//!   └─ Throttled        per-callsite rate limit, summaries of what it dropped
//!        └─ output      text: tracing_subscriber's fmt layer + RedactingFields
//!                       JSON: JsonLayer (one object per line, lifted ids)
//! ```
//!
//! * **Filter.** One `EnvFilter` built from `--log-level` / `[log] level`
//!   (directives like `info,bitcraps_node::net=debug`), installed as a
//!   *global* layer: a callsite it disables is disabled for the whole
//!   subscriber, the OpenTelemetry layer included. That is what we want (the
//!   exported spans and the log lines describe the same events), and a global
//!   filter lets `tracing` cache "never" per callsite so a disabled `debug!`
//!   costs one load and branch. Per-layer filters would force per-event
//!   checks and two copies of the same directives. `cryptoki::mechanism` is
//!   turned off unless the filter names `cryptoki` (see [`filter`]).
//! * **Throttle** ([`throttle`]): wraps only the output layer, so a flood is
//!   cut from stderr without hiding it from the extra layer; configured by
//!   [`ThrottleConfig`].
//! * **Redaction** ([`redact`]): in the field formatters of both outputs, so
//!   secrets in event fields, messages and span fields never reach stderr.
//! * **JSON** ([`json`]): `timestamp`, `level`, `target`, `message`,
//!   `correlation_id`/`trace_id`/`span_id` lifted from the innermost span that
//!   has them, the event's fields, and `spans`.
//!
//! [`init`] installs the pipeline as the global subscriber (and bridges the
//! `log` crate) writing to stderr, with colours only on a terminal; [`build`]
//! returns it without installing it, for tests and other writers.

pub mod clock;
pub mod json;
pub mod redact;
pub mod throttle;

pub use clock::MillisClock;
pub use throttle::{ThrottleConfig, DEFAULT_BURST, DEFAULT_WINDOW_MS, MAX_TRACKED_CALLSITES};

use crate::config::LogFormat;
use std::fmt;
use std::io::Write as _;
use std::sync::Arc;
use throttle::{Shared, Summary, SummarySink, Throttled};
use tracing::Dispatch;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// A layer installed below the filter and output (the OpenTelemetry layer).
pub type ExtraLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// What [`init`] and [`build`] need.
pub struct LogSetup {
    /// `EnvFilter` directives (already validated by the CLI).
    pub filter: String,
    /// Text or JSON lines.
    pub format: LogFormat,
    /// Per-callsite rate limit of the output.
    pub throttle: ThrottleConfig,
    /// An extra layer installed first in the stack (the OpenTelemetry layer).
    /// `None`: no extra layer. It sees every event and span the filter
    /// enables, unthrottled and unredacted.
    pub extra: Option<ExtraLayer>,
}

impl fmt::Debug for LogSetup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogSetup")
            .field("filter", &self.filter)
            .field("format", &self.format)
            .field("throttle", &self.throttle)
            .field("extra", &self.extra.is_some())
            .finish()
    }
}

impl LogSetup {
    /// `filter` and `format` with the default throttle and no extra layer.
    pub fn new(filter: impl Into<String>, format: LogFormat) -> Self {
        LogSetup {
            filter: filter.into(),
            format,
            throttle: ThrottleConfig::default(),
            extra: None,
        }
    }
}

/// Keep this alive while the process logs: dropping it writes the summaries
/// of events the throttle is still holding back (windows not yet reported).
#[must_use = "dropping the guard at once loses nothing, but it should live until shutdown"]
pub struct LogGuard {
    shared: Arc<Shared>,
}

impl fmt::Debug for LogGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogGuard").finish_non_exhaustive()
    }
}

impl LogGuard {
    /// Writes every pending throttle summary now.
    pub fn flush(&self) {
        self.shared.flush();
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.shared.flush();
    }
}

/// The `EnvFilter` for `directives`, with `cryptoki::mechanism` off unless the
/// directives mention `cryptoki`: cryptoki logs an ERROR for every mechanism a
/// token lists that it has no name for (dozens per login on SoftHSM2), which
/// is noise, not an error. An operator who names the target still gets it.
pub fn filter(directives: &str) -> Result<EnvFilter, String> {
    let mut filter =
        EnvFilter::try_new(directives).map_err(|e| format!("log level {directives:?}: {e}"))?;
    if !directives.contains("cryptoki") {
        if let Ok(quiet) = "cryptoki::mechanism=off".parse() {
            filter = filter.add_directive(quiet);
        }
    }
    Ok(filter)
}

/// A clap value parser for log filters (`--log-level`, `--node-log-level`):
/// a filter that would not parse is a usage error, not a node that fails to
/// start later.
pub fn parse_level(value: &str) -> Result<String, String> {
    if value.trim().is_empty() {
        return Err("empty filter (try `info`)".into());
    }
    EnvFilter::try_new(value)
        .map(|_| value.to_owned())
        .map_err(|e| e.to_string())
}

/// Builds the pipeline and installs it as the global subscriber, writing to
/// stderr (stdout is reserved for command output), with ANSI colours only if
/// stderr is a terminal. Also routes `log` crate records into it.
pub fn init(setup: LogSetup) -> Result<LogGuard, String> {
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (dispatch, guard) = build(setup, std::io::stderr, ansi)?;
    dispatch
        .try_init()
        .map_err(|e| format!("starting the logger: {e}"))?;
    Ok(guard)
}

/// Builds the pipeline writing to `writer` without installing it. `ansi`:
/// colour the text format. Use with `tracing::dispatcher::with_default` or
/// `set_global_default`.
pub fn build<W>(setup: LogSetup, writer: W, ansi: bool) -> Result<(Dispatch, LogGuard), String>
where
    W: for<'w> MakeWriter<'w> + Clone + Send + Sync + 'static,
{
    build_with_clock(setup, writer, ansi, clock::monotonic_ms())
}

/// [`build`] with the throttle's clock supplied (tests drive it by hand).
pub fn build_with_clock<W>(
    setup: LogSetup,
    writer: W,
    ansi: bool,
    clock: MillisClock,
) -> Result<(Dispatch, LogGuard), String>
where
    W: for<'w> MakeWriter<'w> + Clone + Send + Sync + 'static,
{
    let env_filter = filter(&setup.filter)?;
    let sink = summary_sink(setup.format, writer.clone(), ansi);
    let shared = Arc::new(Shared::new(setup.throttle, clock, sink));
    let base = tracing_subscriber::registry()
        .with(setup.extra)
        .with(env_filter);
    let dispatch = match setup.format {
        LogFormat::Text => {
            let output = tracing_subscriber::fmt::layer()
                .with_writer(writer)
                .with_ansi(ansi)
                .fmt_fields(redact::RedactingFields);
            Dispatch::new(base.with(Throttled::new(output, shared.clone())))
        }
        LogFormat::Json => {
            let output = json::JsonLayer::new(writer);
            Dispatch::new(base.with(Throttled::new(output, shared.clone())))
        }
    };
    Ok((dispatch, LogGuard { shared }))
}

/// Writes throttle summaries to `writer` in `format`.
fn summary_sink<W>(format: LogFormat, writer: W, ansi: bool) -> SummarySink
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    Box::new(move |summary: &Summary<'_>| {
        let line = match format {
            LogFormat::Text => summary.text_line(ansi).into_bytes(),
            LogFormat::Json => json::summary_line(summary),
        };
        // A failed log write has nowhere to be reported.
        let _ = writer.make_writer().write_all(&line);
    })
}

#[cfg(test)]
mod tests;
