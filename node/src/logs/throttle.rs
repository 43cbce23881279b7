//! Rate limiting of repeated lines.
//!
//! A peer that keeps failing can make one `warn!` fire thousands of times a
//! second; the lines bury everything else and fill disks. The throttle lets
//! through at most `burst` events per `window_ms` **per callsite** (one
//! `info!`/`warn!`/... statement in the source, identified by its static
//! metadata) and counts the rest. Every level is throttled, errors included (a
//! flood of errors is the main case), but callsites never share a budget: a
//! flooding callsite cannot silence another one.
//!
//! # Windows and summaries
//!
//! A callsite's window opens with its first event and lasts `window_ms`; the
//! first event after it ends opens the next one. When a window that dropped
//! events has ended, one summary line is written at the callsite's level and
//! target, quoting the first dropped event's (redacted) message:
//!
//! ```text
//! ... WARN bitcraps_node::net: suppressed 1234 repeats of "peer send failed" in a 1000 ms window suppressed=1234
//! ```
//!
//! Summaries are written before the next line that passes the throttle from
//! any callsite (so a callsite that went quiet is reported as soon as anything
//! else is logged), before that callsite's own next line, and for every window
//! still open when the [`super::LogGuard`] is dropped at shutdown. If the whole
//! node goes silent, a pending summary waits for the next line or for
//! shutdown; no count is lost either way. There is no timer thread.
//!
//! # Memory
//!
//! One small slot per callsite that has logged. Callsites are statics, so
//! their number is bounded by the log statements compiled into the binary (a
//! few hundred here). Events bridged from the `log` crate all share one
//! callsite per level, so they are keyed by their original target, file and
//! line instead, which is just as bounded. [`MAX_TRACKED_CALLSITES`] caps the
//! table anyway: when it is full, slots that have nothing to report and whose
//! window has ended are dropped; if none can be, the new callsite's events
//! pass unthrottled rather than being lost.
//!
//! The throttle only governs the node's own output layer. A layer installed
//! through [`super::LogSetup::extra`] sees every event the filter enables.

use super::clock::{rfc3339, wall_now, MillisClock};
use super::redact::redact_text;
use std::collections::HashMap;
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Mutex, PoisonError};
use tracing::field::{Field, Visit};
use tracing::span;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

/// Default number of events one callsite may log per window.
pub const DEFAULT_BURST: u32 = 20;
/// Default window length, in milliseconds.
pub const DEFAULT_WINDOW_MS: u64 = 1_000;
/// Most callsites tracked at once (see the module docs on memory).
pub const MAX_TRACKED_CALLSITES: usize = 4_096;

/// How much each callsite may log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Events let through per callsite per window. 0 turns throttling off.
    pub burst: u32,
    /// Window length in milliseconds. 0 turns throttling off.
    pub window_ms: u64,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            burst: DEFAULT_BURST,
            window_ms: DEFAULT_WINDOW_MS,
        }
    }
}

impl ThrottleConfig {
    fn enabled(&self) -> bool {
        self.burst > 0 && self.window_ms > 0
    }
}

/// The throttle's decision for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admit<L> {
    /// Let the event through. If the key's previous window dropped events,
    /// report them first.
    Pass(Option<Report<L>>),
    /// Drop the event. `first`: it is the first one dropped in this window;
    /// the caller may describe it with [`Throttle::set_label`].
    Drop { first: bool },
}

/// Events a key's window dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report<L> {
    /// How many were dropped.
    pub suppressed: u64,
    /// When the window opened (the clock passed to [`Throttle::admit`]).
    pub window_start_ms: u64,
    /// The label set for the window's first dropped event, if any.
    pub label: Option<L>,
}

/// One key's window.
#[derive(Debug)]
struct Slot<L> {
    start_ms: u64,
    admitted: u32,
    suppressed: u64,
    label: Option<L>,
}

impl<L> Slot<L> {
    fn take_report(&mut self) -> Option<Report<L>> {
        if self.suppressed == 0 {
            return None;
        }
        let report = Report {
            suppressed: self.suppressed,
            window_start_ms: self.start_ms,
            label: self.label.take(),
        };
        self.suppressed = 0;
        Some(report)
    }
}

/// The pure core: per-key fixed windows, no clock, no I/O. `K` identifies a
/// callsite; `L` describes it in reports.
#[derive(Debug)]
pub struct Throttle<K, L> {
    config: ThrottleConfig,
    max_keys: usize,
    slots: HashMap<K, Slot<L>>,
    /// Slots with `suppressed > 0`.
    pending: usize,
    /// No pending window ends before this time (a lower bound), so
    /// [`Throttle::due`] can return at once on most calls.
    next_due_ms: u64,
}

impl<K: Eq + Hash + Clone, L> Throttle<K, L> {
    /// A throttle tracking at most `max_keys` keys.
    pub fn new(config: ThrottleConfig, max_keys: usize) -> Self {
        Throttle {
            config,
            max_keys,
            slots: HashMap::new(),
            pending: 0,
            next_due_ms: u64::MAX,
        }
    }

    /// Counts one event of `key` at `now_ms` and decides whether it passes.
    pub fn admit(&mut self, key: K, now_ms: u64) -> Admit<L> {
        if !self.config.enabled() {
            return Admit::Pass(None);
        }
        let window = self.config.window_ms;
        if !self.slots.contains_key(&key) && !self.make_room(now_ms) {
            // Full of callsites with counts to report: fail open.
            return Admit::Pass(None);
        }
        let slot = self.slots.entry(key).or_insert(Slot {
            start_ms: now_ms,
            admitted: 0,
            suppressed: 0,
            label: None,
        });
        if now_ms >= slot.start_ms.saturating_add(window) {
            let report = slot.take_report();
            slot.start_ms = now_ms;
            slot.admitted = 1;
            if report.is_some() {
                self.pending -= 1;
            }
            return Admit::Pass(report);
        }
        if slot.admitted < self.config.burst {
            slot.admitted += 1;
            return Admit::Pass(None);
        }
        slot.suppressed += 1;
        let first = slot.suppressed == 1;
        if first {
            self.pending += 1;
            self.next_due_ms = self.next_due_ms.min(slot.start_ms.saturating_add(window));
        }
        Admit::Drop { first }
    }

    /// Describes `key`'s current window (call after [`Admit::Drop`] with
    /// `first`). Ignored for an untracked key.
    pub fn set_label(&mut self, key: &K, label: L) {
        if let Some(slot) = self.slots.get_mut(key) {
            slot.label = Some(label);
        }
    }

    /// Reports of every window that has ended by `now_ms` with events
    /// dropped, and clears them. Cheap when nothing is due.
    pub fn due(&mut self, now_ms: u64) -> Vec<(K, Report<L>)> {
        if self.pending == 0 || now_ms < self.next_due_ms {
            return Vec::new();
        }
        let window = self.config.window_ms;
        let mut out = Vec::new();
        let mut next = u64::MAX;
        for (key, slot) in &mut self.slots {
            if slot.suppressed == 0 {
                continue;
            }
            let end = slot.start_ms.saturating_add(window);
            if now_ms >= end {
                if let Some(report) = slot.take_report() {
                    out.push((key.clone(), report));
                }
            } else {
                next = next.min(end);
            }
        }
        self.pending -= out.len();
        self.next_due_ms = next;
        out
    }

    /// Reports of every window with events dropped, ended or not, and clears
    /// them (shutdown).
    pub fn drain(&mut self) -> Vec<(K, Report<L>)> {
        let out: Vec<_> = self
            .slots
            .iter_mut()
            .filter_map(|(key, slot)| slot.take_report().map(|r| (key.clone(), r)))
            .collect();
        self.pending = 0;
        self.next_due_ms = u64::MAX;
        out
    }

    /// How many keys are tracked.
    pub fn tracked(&self) -> usize {
        self.slots.len()
    }

    /// Frees a slot if the table is full; false if it cannot.
    fn make_room(&mut self, now_ms: u64) -> bool {
        if self.slots.len() < self.max_keys {
            return true;
        }
        let window = self.config.window_ms;
        self.slots
            .retain(|_, s| s.suppressed > 0 || now_ms < s.start_ms.saturating_add(window));
        self.slots.len() < self.max_keys
    }
}

/// A callsite as the throttle sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CallsiteKey {
    /// A `tracing` callsite (one statement in the source).
    Static(tracing::callsite::Identifier),
    /// An event bridged from the `log` crate: a hash of its level, target,
    /// module, file and line (the bridge uses one callsite per level).
    Log(u64),
}

/// What a summary says about the callsite whose events were dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub level: Level,
    pub target: String,
    /// The first dropped event's message, redacted.
    pub message: String,
}

/// One summary line to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary<'a> {
    pub level: Level,
    pub target: &'a str,
    /// The suppressed events' message (redacted).
    pub message: &'a str,
    pub suppressed: u64,
    pub window_ms: u64,
}

impl Summary<'_> {
    /// The human-readable sentence, used as the summary line's message.
    pub fn sentence(&self) -> String {
        format!(
            "suppressed {} repeats of {:?} in a {} ms window",
            self.suppressed, self.message, self.window_ms
        )
    }

    /// The summary as a text-format line (with the trailing newline), shaped
    /// like `tracing_subscriber`'s default format.
    pub fn text_line(&self, ansi: bool) -> String {
        let level = format!("{:>5}", self.level.as_str());
        let level = if ansi {
            let colour = match self.level {
                Level::ERROR => "31",
                Level::WARN => "33",
                Level::INFO => "32",
                Level::DEBUG => "34",
                Level::TRACE => "35",
            };
            format!("\x1b[{colour}m{level}\x1b[0m")
        } else {
            level
        };
        format!(
            "{} {level} {}: {} suppressed={}\n",
            rfc3339(wall_now()),
            self.target,
            super::redact::escape_controls(&self.sentence()),
            self.suppressed
        )
    }
}

/// Writes summary lines in the output's format.
pub type SummarySink = Box<dyn Fn(&Summary<'_>) + Send + Sync>;

/// State shared by the [`Throttled`] layer and the [`super::LogGuard`].
pub struct Shared {
    state: Mutex<Throttle<CallsiteKey, Label>>,
    clock: MillisClock,
    sink: SummarySink,
    window_ms: u64,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("state", &self.state)
            .field("window_ms", &self.window_ms)
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub fn new(config: ThrottleConfig, clock: MillisClock, sink: SummarySink) -> Self {
        Shared {
            state: Mutex::new(Throttle::new(config, MAX_TRACKED_CALLSITES)),
            clock,
            sink,
            window_ms: config.window_ms,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Throttle<CallsiteKey, Label>> {
        // A panic elsewhere while holding the lock leaves consistent counts.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes every pending summary, ended windows or not (shutdown).
    pub fn flush(&self) {
        let reports = self.lock().drain();
        self.write(reports);
    }

    fn write(&self, reports: Vec<(CallsiteKey, Report<Label>)>) {
        for (_, report) in reports {
            let label = report.label.unwrap_or_else(|| Label {
                level: Level::WARN,
                target: module_path!().to_owned(),
                message: "(message not captured)".to_owned(),
            });
            (self.sink)(&Summary {
                level: label.level,
                target: &label.target,
                message: &label.message,
                suppressed: report.suppressed,
                window_ms: self.window_ms,
            });
        }
    }
}

/// Wraps the output layer `L`: every event passes through the throttle
/// before `L` sees it; everything else (spans, interest, filtering) is passed
/// to `L` unchanged.
pub struct Throttled<L> {
    inner: L,
    shared: std::sync::Arc<Shared>,
}

impl<L> fmt::Debug for Throttled<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Throttled")
            .field("shared", &self.shared)
            .finish_non_exhaustive()
    }
}

impl<L> Throttled<L> {
    pub fn new(inner: L, shared: std::sync::Arc<Shared>) -> Self {
        Throttled { inner, shared }
    }
}

/// The `log` bridge's field names (`tracing-log`).
const LOG_TARGET: &str = "log.target";

fn key_of(event: &Event<'_>) -> CallsiteKey {
    let meta = event.metadata();
    if meta.fields().field(LOG_TARGET).is_none() {
        return CallsiteKey::Static(meta.callsite());
    }
    let mut v = LogOrigin {
        hasher: DefaultHasher::new(),
    };
    meta.level().hash(&mut v.hasher);
    event.record(&mut v);
    CallsiteKey::Log(v.hasher.finish())
}

/// Hashes the `log.*` fields that locate a bridged `log` record's origin.
struct LogOrigin {
    hasher: DefaultHasher,
}

impl Visit for LogOrigin {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name().starts_with("log.") {
            field.name().hash(&mut self.hasher);
            value.hash(&mut self.hasher);
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name().starts_with("log.") {
            field.name().hash(&mut self.hasher);
            value.hash(&mut self.hasher);
        }
    }

    fn record_debug(&mut self, _field: &Field, _value: &dyn fmt::Debug) {}
}

/// Captures an event's message (redacted) and bridged `log` target.
#[derive(Default)]
struct Describe {
    message: String,
    log_target: Option<String>,
}

impl Visit for Describe {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = redact_text(value).into_owned(),
            LOG_TARGET => self.log_target = Some(value.to_owned()),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = redact_text(&format!("{value:?}")).into_owned();
        }
    }
}

fn describe(event: &Event<'_>, meta: &Metadata<'_>) -> Label {
    let mut d = Describe::default();
    event.record(&mut d);
    Label {
        level: *meta.level(),
        target: d.log_target.unwrap_or_else(|| meta.target().to_owned()),
        message: d.message,
    }
}

impl<S, L> Layer<S> for Throttled<L>
where
    S: Subscriber,
    L: Layer<S>,
{
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let now = (self.shared.clock)();
        let key = key_of(event);
        let (due, decision) = {
            let mut state = self.shared.lock();
            let due = state.due(now);
            (due, state.admit(key.clone(), now))
        };
        // Written without the lock: the sink does I/O.
        self.shared.write(due);
        match decision {
            Admit::Pass(report) => {
                if let Some(report) = report {
                    self.shared.write(vec![(key, report)]);
                }
                self.inner.on_event(event, ctx);
            }
            Admit::Drop { first: true } => {
                let label = describe(event, event.metadata());
                self.shared.lock().set_label(&key, label);
            }
            Admit::Drop { first: false } => {}
        }
    }

    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        self.inner.on_register_dispatch(subscriber);
    }

    fn on_layer(&mut self, subscriber: &mut S) {
        self.inner.on_layer(subscriber);
    }

    fn register_callsite(
        &self,
        metadata: &'static Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        self.inner.register_callsite(metadata)
    }

    fn enabled(&self, metadata: &Metadata<'_>, ctx: Context<'_, S>) -> bool {
        self.inner.enabled(metadata, ctx)
    }

    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        self.inner.on_new_span(attrs, id, ctx);
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        self.inner.max_level_hint()
    }

    fn on_record(&self, span: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        self.inner.on_record(span, values, ctx);
    }

    fn on_follows_from(&self, span: &span::Id, follows: &span::Id, ctx: Context<'_, S>) {
        self.inner.on_follows_from(span, follows, ctx);
    }

    fn event_enabled(&self, event: &Event<'_>, ctx: Context<'_, S>) -> bool {
        self.inner.event_enabled(event, ctx)
    }

    fn on_enter(&self, id: &span::Id, ctx: Context<'_, S>) {
        self.inner.on_enter(id, ctx);
    }

    fn on_exit(&self, id: &span::Id, ctx: Context<'_, S>) {
        self.inner.on_exit(id, ctx);
    }

    fn on_close(&self, id: span::Id, ctx: Context<'_, S>) {
        self.inner.on_close(id, ctx);
    }

    fn on_id_change(&self, old: &span::Id, new: &span::Id, ctx: Context<'_, S>) {
        self.inner.on_id_change(old, new, ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: ThrottleConfig = ThrottleConfig {
        burst: 3,
        window_ms: 1_000,
    };

    fn throttle() -> Throttle<&'static str, &'static str> {
        Throttle::new(CFG, 16)
    }

    fn passes(t: &mut Throttle<&'static str, &'static str>, key: &'static str, now: u64) -> bool {
        matches!(t.admit(key, now), Admit::Pass(_))
    }

    #[test]
    fn burst_passes_then_drops_until_the_window_ends() {
        let mut t = throttle();
        for i in 0..3 {
            assert_eq!(t.admit("a", 100 + i), Admit::Pass(None));
        }
        assert_eq!(t.admit("a", 200), Admit::Drop { first: true });
        t.set_label(&"a", "peer send failed");
        for now in 201..1_099 {
            assert_eq!(t.admit("a", now), Admit::Drop { first: false });
        }
        // The window opened at 100 and ends at 1100.
        assert_eq!(
            t.admit("a", 1_100),
            Admit::Pass(Some(Report {
                suppressed: 899,
                window_start_ms: 100,
                label: Some("peer send failed"),
            }))
        );
        // A fresh window: the report is not repeated, the burst starts over.
        assert_eq!(t.admit("a", 1_101), Admit::Pass(None));
        assert_eq!(t.admit("a", 1_102), Admit::Pass(None));
        assert_eq!(t.admit("a", 1_103), Admit::Drop { first: true });
    }

    #[test]
    fn callsites_never_share_a_budget() {
        let mut t = throttle();
        for now in 0..100 {
            t.admit("flood", now);
        }
        for now in 0..3 {
            assert!(
                passes(&mut t, "quiet", 50 + now),
                "quiet callsite throttled"
            );
        }
        assert!(!passes(&mut t, "quiet", 60));
    }

    #[test]
    fn quiet_callsites_are_reported_by_due() {
        let mut t = throttle();
        for now in 0..10 {
            t.admit("a", now);
        }
        for now in 500..505 {
            t.admit("b", now);
        }
        assert!(t.due(999).is_empty(), "nothing has ended yet");
        let due = t.due(1_000);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].0, "a");
        assert_eq!(due[0].1.suppressed, 7);
        assert!(t.due(1_200).is_empty(), "reported once");
        let due = t.due(1_500);
        assert_eq!(due.len(), 1);
        assert_eq!((due[0].0, due[0].1.suppressed), ("b", 2));
        // After `due` reported it, the next event of `a` carries no report.
        assert_eq!(t.admit("a", 1_600), Admit::Pass(None));
    }

    #[test]
    fn drain_reports_open_windows_at_shutdown() {
        let mut t = throttle();
        for now in 0..5 {
            t.admit("a", now);
        }
        t.admit("b", 1);
        let drained = t.drain();
        assert_eq!(drained.len(), 1);
        assert_eq!((drained[0].0, drained[0].1.suppressed), ("a", 2));
        assert!(t.drain().is_empty());
        assert!(t.due(u64::MAX).is_empty());
    }

    #[test]
    fn a_late_event_reports_the_old_window() {
        // The callsite went quiet for an hour; its count survives.
        let mut t = throttle();
        for now in 0..4 {
            t.admit("a", now);
        }
        match t.admit("a", 3_600_000) {
            Admit::Pass(Some(r)) => assert_eq!((r.suppressed, r.window_start_ms), (1, 0)),
            other => panic!("expected a report, got {other:?}"),
        }
    }

    #[test]
    fn disabled_config_passes_everything() {
        for cfg in [
            ThrottleConfig {
                burst: 0,
                window_ms: 1_000,
            },
            ThrottleConfig {
                burst: 5,
                window_ms: 0,
            },
        ] {
            let mut t: Throttle<&str, ()> = Throttle::new(cfg, 4);
            for now in 0..1_000 {
                assert_eq!(t.admit("a", now), Admit::Pass(None));
            }
            assert_eq!(t.tracked(), 0);
        }
    }

    #[test]
    fn the_table_is_bounded_and_fails_open() {
        let mut t: Throttle<u32, ()> = Throttle::new(CFG, 2);
        // Two keys with pending counts fill the table.
        for key in [1, 2] {
            for now in 0..5 {
                t.admit(key, now);
            }
        }
        // A third key passes untracked, however often it logs.
        for now in 10..20 {
            assert_eq!(t.admit(3, now), Admit::Pass(None));
        }
        assert_eq!(t.tracked(), 2);
        // Once the pending windows are reported and have ended, their slots
        // can be reused.
        assert_eq!(t.due(2_000).len(), 2);
        assert_eq!(t.admit(3, 2_001), Admit::Pass(None));
        assert_eq!(t.tracked(), 1);
    }

    #[test]
    fn idle_slots_are_evicted_first() {
        let mut t: Throttle<u32, ()> = Throttle::new(CFG, 2);
        t.admit(1, 0);
        for now in 0..5 {
            t.admit(2, now);
        }
        // Key 1's window ended with nothing to report: it makes room.
        assert_eq!(t.admit(3, 1_500), Admit::Pass(None));
        for now in 1_501..1_510 {
            t.admit(3, now);
        }
        assert!(matches!(t.admit(3, 1_511), Admit::Drop { first: false }));
        let mut due = t.due(3_000);
        due.sort_by_key(|(k, _)| *k);
        let keys: Vec<u32> = due.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, vec![2, 3]);
    }

    #[test]
    fn summary_sentence() {
        let s = Summary {
            level: Level::ERROR,
            target: "bitcraps_node::net",
            message: "peer send failed",
            suppressed: 1234,
            window_ms: 1_000,
        };
        assert_eq!(
            s.sentence(),
            "suppressed 1234 repeats of \"peer send failed\" in a 1000 ms window"
        );
        let line = s.text_line(false);
        assert!(line.ends_with(
            "Z ERROR bitcraps_node::net: suppressed 1234 repeats of \"peer send failed\" in a 1000 ms window suppressed=1234\n"
        ), "{line}");
    }
}
