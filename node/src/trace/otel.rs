//! OpenTelemetry trace export (OTLP over HTTP/protobuf), switched on by the
//! standard environment variables.
//!
//! **When**: `OTEL_EXPORTER_OTLP_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set, and neither
//! `OTEL_SDK_DISABLED=true` nor `OTEL_TRACES_EXPORTER=none` says otherwise.
//! The exporter reads the rest of the standard variables itself (headers,
//! timeout, the `/v1/traces` suffix for the generic endpoint), the sampler
//! comes from `OTEL_TRACES_SAMPLER`/`_ARG` (default: parent-based always-on)
//! and the batch processor from `OTEL_BSP_*` (queue size, delay, batch size).
//!
//! **Never blocking consensus**: spans are handed to a batch processor whose
//! queue is bounded (`OTEL_BSP_MAX_QUEUE_SIZE`, 2048 by default); when the
//! collector is slow or down the queue fills and further spans are dropped
//! (counted by the SDK), and export runs on a tokio task, never on the engine.
//! With export off, no provider is installed: the global tracer is the no-op
//! one and [`exporting`] lets hot paths skip building spans at all.
//!
//! **The correlation id is the trace id**: a request's root span gets the
//! 16 bytes of its correlation id as its trace id ([`with_trace_id`] and the
//! [`CorrelationIds`] generator), so `bitcraps trace <id>`, the logs and the
//! tracing backend all use one id. The SDK picks a root span's trace id from
//! its id generator while the span is being started, on the calling thread,
//! so a thread-local override around that call is enough.

use super::tracker::Origin;
use opentelemetry::trace::{SpanId, TraceContextExt as _, TraceId, TracerProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Instrumentation scope name of every span the node creates.
pub const TRACER_NAME: &str = "bitcraps";
/// `service.name` of the exported resource.
pub const SERVICE_NAME: &str = "bitcraps-validator";

/// True while an exporter is installed (set once by [`Telemetry::from_env`]).
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether spans are being exported. Cheap: hot paths check it before
/// building per-transaction spans.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

thread_local! {
    /// The trace id the next root span started on this thread must use.
    static NEXT_TRACE_ID: Cell<Option<u128>> = const { Cell::new(None) };
}

/// Runs `start` (which must start a root span on this thread, e.g. by asking
/// a new tracing span for its OpenTelemetry context) so that the root span's
/// trace id is `trace_id`. The override is cleared afterwards even if `start`
/// started no span, so it never leaks into an unrelated later trace.
pub fn with_trace_id<T>(trace_id: [u8; 16], start: impl FnOnce() -> T) -> T {
    struct Clear;
    impl Drop for Clear {
        fn drop(&mut self) {
            NEXT_TRACE_ID.with(|c| c.set(None));
        }
    }
    NEXT_TRACE_ID.with(|c| c.set(Some(u128::from_be_bytes(trace_id))));
    let _clear = Clear;
    start()
}

/// Starts `span` (a new tracing span with no parent) as the root of the
/// trace whose id is `correlation_id`, and records its `span_id` field.
/// Nothing happens with export off.
pub fn start_root(span: &tracing::Span, correlation_id: &uuid::Uuid) {
    if !exporting() {
        return;
    }
    let cx = with_trace_id(*correlation_id.as_bytes(), || span.context());
    let sc = cx.span().span_context().clone();
    if sc.is_valid() {
        span.record("span_id", tracing::field::display(sc.span_id()));
    }
}

/// The current tracing span as the parent of a transaction's spans on every
/// validator (empty with export off or outside any exported span).
pub fn current_origin() -> Origin {
    if !exporting() {
        return Origin::default();
    }
    let cx = tracing::Span::current().context();
    let span = cx.span();
    let sc = span.span_context();
    if !sc.is_valid() {
        return Origin::default();
    }
    Origin {
        parent_span_id: Some(sc.span_id().to_bytes()),
        sampled: sc.is_sampled(),
    }
}

/// The W3C form of a trace id: 32 lowercase hex digits, no dashes.
pub fn trace_hex(id: &uuid::Uuid) -> String {
    hex::encode(id.as_bytes())
}

/// Trace ids: the pending override of [`with_trace_id`] if any, else random.
/// Span ids are always random.
#[derive(Debug, Default)]
pub struct CorrelationIds {
    random: RandomIdGenerator,
}

impl IdGenerator for CorrelationIds {
    fn new_trace_id(&self) -> TraceId {
        match NEXT_TRACE_ID.with(|c| c.take()) {
            Some(id) if id != 0 => TraceId::from(id),
            _ => self.random.new_trace_id(),
        }
    }

    fn new_span_id(&self) -> SpanId {
        self.random.new_span_id()
    }
}

/// Is OTLP export requested by the environment `get` reads?
pub fn export_requested(get: impl Fn(&str) -> Option<String>) -> bool {
    let set = |name: &str| get(name).is_some_and(|v| !v.trim().is_empty());
    let disabled = get("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    let exporter_none = get("OTEL_TRACES_EXPORTER")
        .is_some_and(|v| v.split(',').any(|e| e.trim().eq_ignore_ascii_case("none")));
    (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
        && !disabled
        && !exporter_none
}

/// The export pipeline, if switched on. Keep it alive for the life of the
/// process and call [`Telemetry::shutdown`] at the end to flush.
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// No export.
    pub fn disabled() -> Self {
        Telemetry::default()
    }

    /// Starts OTLP export if the environment asks for it. Must be called
    /// inside a tokio runtime (the batch processor runs on it). `instance`
    /// names this process in the exported resource (`service.instance.id`,
    /// e.g. the validator's name).
    pub fn from_env(instance: &str, attributes: Vec<KeyValue>) -> Result<Self, String> {
        if !export_requested(|k| std::env::var(k).ok()) {
            return Ok(Telemetry::disabled());
        }
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
            .map_err(|e| format!("OTLP exporter: {e}"))?;
        let processor = opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
            exporter,
            opentelemetry_sdk::runtime::Tokio,
        )
        .build();
        let resource = Resource::builder()
            .with_service_name(SERVICE_NAME)
            .with_attribute(KeyValue::new("service.instance.id", instance.to_owned()))
            .with_attribute(KeyValue::new("service.version", crate::VERSION))
            .with_attributes(attributes)
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_id_generator(CorrelationIds::default())
            .with_resource(resource)
            .build();
        opentelemetry::global::set_tracer_provider(provider.clone());
        EXPORTING.store(true, Ordering::Relaxed);
        Ok(Telemetry {
            provider: Some(provider),
        })
    }

    /// Whether export is on.
    pub fn enabled(&self) -> bool {
        self.provider.is_some()
    }

    /// The `tracing` layer that turns this process's tracing spans into
    /// OpenTelemetry spans (None when export is off).
    ///
    /// It sees only spans, and only the node's own (`bitcraps*` targets):
    /// log events never reach the collector, so the log redaction layer
    /// (`crate::logs`) is not bypassed through span events, and dependencies'
    /// spans (whose fields we do not control) are not exported. Our spans'
    /// fields are ids, methods and routes, never secrets.
    pub fn layer(
        &self,
    ) -> Option<Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync>>
    {
        use tracing_subscriber::Layer as _;
        let provider = self.provider.as_ref()?;
        let layer = tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(TRACER_NAME))
            // Code locations and thread ids add ~5 attributes to every span
            // for no operational value.
            .with_location(false)
            .with_threads(false)
            .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
                meta.is_span() && meta.target().starts_with("bitcraps")
            }));
        Some(Box::new(layer))
    }

    /// Flushes queued spans and stops the exporter. Call from outside the
    /// runtime's worker threads (the processor's task must still run).
    pub fn shutdown(self) {
        if let Some(provider) = self.provider {
            EXPORTING.store(false, Ordering::Relaxed);
            if let Err(e) = provider.shutdown() {
                tracing::warn!("flushing OpenTelemetry spans: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn export_follows_the_standard_variables() {
        assert!(!export_requested(env(&[])));
        assert!(export_requested(env(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://127.0.0.1:4318"
        )])));
        assert!(export_requested(env(&[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://127.0.0.1:4318/v1/traces"
        )])));
        assert!(!export_requested(env(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            " "
        )])));
        assert!(!export_requested(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_SDK_DISABLED", "TRUE"),
        ])));
        assert!(!export_requested(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ])));
    }

    #[test]
    fn the_override_sets_one_trace_id_then_clears() {
        let ids = CorrelationIds::default();
        let wanted = *uuid::Uuid::now_v7().as_bytes();
        let got = with_trace_id(wanted, || ids.new_trace_id());
        assert_eq!(got.to_bytes(), wanted);
        // Consumed: the next root is random again.
        assert_ne!(ids.new_trace_id().to_bytes(), wanted);
        // Cleared even when nothing consumed it.
        with_trace_id(wanted, || ());
        assert_ne!(ids.new_trace_id().to_bytes(), wanted);
    }
}
