//! JSON lines: one object per event, for log shippers.
//!
//! ```json
//! {"timestamp":"2026-11-23T22:30:43.123456Z","level":"INFO","target":"bitcraps_node::http",
//!  "message":"request","correlation_id":"0193...","trace_id":"4bf9...","status":200,
//!  "spans":[{"name":"http_request","method":"POST","path":"/api/v1/tx","correlation_id":"0193..."}]}
//! ```
//!
//! (one line in the output). Keys, in order:
//!
//! * `timestamp`: RFC 3339, UTC, microseconds; `level`: `ERROR` .. `TRACE`;
//!   `target`: the event's target (for records bridged from the `log` crate,
//!   the original `log` target); `message`: the message, `""` if none.
//! * `correlation_id`, `trace_id`, `span_id` ([`LIFTED`]): from the event's own
//!   fields if it has them, else from the innermost span in scope that has
//!   them, whether the span recorded them at creation or later with
//!   `Span::record` (fields declared `tracing::field::Empty`). Absent keys are
//!   left out.
//! * the event's other fields, flattened. Numbers and booleans stay JSON
//!   numbers and booleans; everything else is its `Display`/`Debug` text. A
//!   field whose name clashes with one of the keys above is written as
//!   `field.<name>`.
//! * `spans`: the spans in scope, outermost first, each `{"name": ..., <its
//!   fields>}`, so a reader sees the whole context and not just the lifted ids.
//!
//! Every field value, the message and span fields included, goes through the
//! redaction rules of [`super::redact`]. `log.*` fields added by the `log`
//! bridge are not printed.

use super::clock::{rfc3339, wall_now};
use super::redact::{is_secret_field, redact_text, write_error_chain, REDACTED};
use super::throttle::Summary;
use serde_json::Value;
use std::fmt::{self, Write as _};
use std::io::Write as _;
use tracing::field::{Field, Visit};
use tracing::span;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// Context ids lifted from spans to the top level of each line.
pub const LIFTED: [&str; 3] = ["correlation_id", "trace_id", "span_id"];

/// Top-level keys an event field may not take (it becomes `field.<name>`).
const RESERVED: [&str; 5] = ["timestamp", "level", "target", "message", "spans"];

/// The JSON output layer. Writes each line with one `write_all` to a writer
/// from `make_writer`.
#[derive(Debug)]
pub struct JsonLayer<W> {
    make_writer: W,
}

impl<W> JsonLayer<W> {
    pub fn new(make_writer: W) -> Self {
        JsonLayer { make_writer }
    }
}

/// A span's fields, redacted, in recording order; stored in the span's
/// extensions by [`JsonLayer`].
#[derive(Debug, Default)]
struct SpanFields(Vec<(&'static str, Value)>);

impl SpanFields {
    fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
}

/// Collects fields as JSON values, redacted.
#[derive(Default)]
struct Collect {
    /// Events keep the message apart; spans treat it as a field.
    event: bool,
    message: Option<String>,
    log_target: Option<String>,
    fields: Vec<(&'static str, Value)>,
}

impl Collect {
    fn put(&mut self, field: &Field, value: Value) {
        let name = field.name();
        if self.event && name == "message" {
            self.message = Some(match value {
                Value::String(s) => s,
                other => other.to_string(),
            });
            return;
        }
        if name == "log.target" {
            if let Value::String(s) = value {
                self.log_target = Some(s);
            }
            return;
        }
        if name.starts_with("log.") {
            return;
        }
        let name = name.strip_prefix("r#").unwrap_or(name);
        let value = if is_secret_field(name) {
            Value::String(REDACTED.to_owned())
        } else {
            value
        };
        // A later `record` of the same span field replaces the earlier value.
        match self.fields.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.fields.push((name, value)),
        }
    }

    fn text(text: &str) -> Value {
        Value::String(redact_text(text).into_owned())
    }
}

impl Visit for Collect {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let mut s = String::new();
        let _ = write!(s, "{value:?}");
        self.put(field, Self::text(&s));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Self::text(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let mut s = String::new();
        write_error_chain(&mut s, value);
        self.put(field, Self::text(&s));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.put(field, Value::String(value.to_string()));
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.put(field, Value::String(value.to_string()));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // NaN and infinities have no JSON number: null.
        self.put(field, Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }
}

/// Appends `"key":` (with a comma unless it is the object's first key).
fn key(out: &mut Vec<u8>, name: &str, first: bool) {
    if !first {
        out.push(b',');
    }
    json(out, name);
    out.push(b':');
}

/// Appends `value` as JSON. Strings and `Value`s always serialize; the
/// fallback keeps the line valid if that ever changed.
fn json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    let mark = out.len();
    if serde_json::to_writer(&mut *out, value).is_err() {
        out.truncate(mark);
        out.extend_from_slice(b"null");
    }
}

/// Appends `"name":value` pairs of `fields`, renaming clashes with `taken`.
fn fields_into(out: &mut Vec<u8>, fields: &[(&'static str, Value)], taken: &[&str]) {
    for (name, value) in fields {
        if taken.contains(name) {
            key(out, &format!("field.{name}"), false);
        } else {
            key(out, name, false);
        }
        json(out, value);
    }
}

impl<S, W> Layer<S> for JsonLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut collect = Collect::default();
        attrs.record(&mut collect);
        span.extensions_mut().insert(SpanFields(collect.fields));
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut ext = span.extensions_mut();
        let Some(fields) = ext.get_mut::<SpanFields>() else {
            return;
        };
        let mut collect = Collect {
            fields: std::mem::take(&mut fields.0),
            ..Collect::default()
        };
        values.record(&mut collect);
        fields.0 = collect.fields;
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut ev = Collect {
            event: true,
            ..Collect::default()
        };
        event.record(&mut ev);

        let mut out = Vec::with_capacity(256);
        out.push(b'{');
        key(&mut out, "timestamp", true);
        json(&mut out, &rfc3339(wall_now()));
        key(&mut out, "level", false);
        json(&mut out, meta.level().as_str());
        key(&mut out, "target", false);
        json(&mut out, ev.log_target.as_deref().unwrap_or(meta.target()));
        key(&mut out, "message", false);
        json(&mut out, ev.message.as_deref().unwrap_or(""));

        // Outermost first.
        let spans: Vec<_> = ctx
            .event_scope(event)
            .map(|scope| scope.from_root().collect())
            .unwrap_or_default();
        for name in LIFTED {
            let own = ev.fields.iter().find(|(n, _)| *n == name).map(|(_, v)| v);
            if let Some(value) = own {
                key(&mut out, name, false);
                json(&mut out, value);
                continue;
            }
            for span in spans.iter().rev() {
                let ext = span.extensions();
                if let Some(value) = ext.get::<SpanFields>().and_then(|f| f.get(name)) {
                    key(&mut out, name, false);
                    json(&mut out, value);
                    break;
                }
            }
        }
        let rest: Vec<_> = ev
            .fields
            .into_iter()
            .filter(|(n, _)| !LIFTED.contains(n))
            .collect();
        fields_into(&mut out, &rest, &RESERVED);

        if !spans.is_empty() {
            key(&mut out, "spans", false);
            out.push(b'[');
            for (i, span) in spans.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.push(b'{');
                key(&mut out, "name", true);
                json(&mut out, span.name());
                if let Some(fields) = span.extensions().get::<SpanFields>() {
                    fields_into(&mut out, &fields.0, &["name"]);
                }
                out.push(b'}');
            }
            out.push(b']');
        }
        out.extend_from_slice(b"}\n");
        // A failed log write has nowhere to be reported; the line is lost.
        let _ = self.make_writer.make_writer_for(meta).write_all(&out);
    }
}

/// A throttle summary as a JSON line (with the trailing newline): the usual
/// keys plus `suppressed`, `suppressed_message` and `window_ms`.
pub fn summary_line(summary: &Summary<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.push(b'{');
    key(&mut out, "timestamp", true);
    json(&mut out, &rfc3339(wall_now()));
    key(&mut out, "level", false);
    json(&mut out, summary.level.as_str());
    key(&mut out, "target", false);
    json(&mut out, summary.target);
    key(&mut out, "message", false);
    json(&mut out, &summary.sentence());
    key(&mut out, "suppressed", false);
    json(&mut out, &summary.suppressed);
    key(&mut out, "suppressed_message", false);
    json(&mut out, summary.message);
    key(&mut out, "window_ms", false);
    json(&mut out, &summary.window_ms);
    out.extend_from_slice(b"}\n");
    out
}
