//! A small writer for the Prometheus text exposition format (version 0.0.4).
//!
//! `/metrics` renders a few dozen families from the node's counters, which
//! does not justify a metrics registry crate and its global state: the node
//! reads its own counters at scrape time and writes them through
//! [`PromWriter`].
//!
//! What the writer guarantees, so `promtool check metrics` accepts its output:
//! * each family gets its `# HELP` and `# TYPE` once, and all its samples are
//!   written together, even when calls for different families interleave
//!   (samples are buffered per family and emitted in first-call order);
//! * label values are escaped (`\\`, `\"`, `\n`), help text too (`\\`, `\n`);
//! * floats use the format's spellings (`+Inf`, `-Inf`, `NaN`);
//! * histograms get `_bucket` lines with cumulative counts, a `le="+Inf"`
//!   bucket equal to `_count`, then `_sum` and `_count`.
//!
//! Misuse by the caller (an invalid metric or label name, a family reused
//! with another type, buckets out of order) cannot produce a broken
//! exposition: the offending sample is dropped and a warning logged. Nothing
//! here panics.
//!
//! Naming (see DESIGN.md): `bitcraps_` prefix, base units, counters end in
//! `_total`, durations are `_seconds` histograms. The writer does not enforce
//! conventions; promtool's lint in the tests does.

use std::collections::HashMap;
use std::fmt::Write as _;

/// Builds one exposition. Call the metric methods in any order, then
/// [`finish`](Self::finish).
#[derive(Debug, Default)]
pub struct PromWriter {
    families: Vec<Family>,
    /// Family name -> index in `families`.
    by_name: HashMap<String, usize>,
}

#[derive(Debug)]
struct Family {
    name: String,
    help: String,
    kind: Kind,
    /// Sample lines, each ending in `\n`.
    samples: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

impl PromWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// One counter sample. `name` should end in `_total`.
    pub fn counter(
        &mut self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        value: u64,
    ) -> &mut Self {
        if let Some(out) = self.family(name, help, Kind::Counter, labels) {
            write_sample(out, name, labels, None, &value.to_string());
        }
        self
    }

    /// One counter sample with a fractional value (e.g. CPU seconds). A
    /// negative or non-finite value is dropped (a counter cannot be either).
    pub fn counter_f64(
        &mut self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        value: f64,
    ) -> &mut Self {
        if !value.is_finite() || value < 0.0 {
            tracing::warn!(
                metric = name,
                value,
                "dropping a negative or non-finite counter"
            );
            return self;
        }
        if let Some(out) = self.family(name, help, Kind::Counter, labels) {
            write_sample(out, name, labels, None, &format_f64(value));
        }
        self
    }

    /// One gauge sample.
    pub fn gauge(
        &mut self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        value: f64,
    ) -> &mut Self {
        if let Some(out) = self.family(name, help, Kind::Gauge, labels) {
            write_sample(out, name, labels, None, &format_f64(value));
        }
        self
    }

    /// One histogram series. `buckets` are `(upper bound, cumulative count)`
    /// in increasing bound order; the `+Inf` bucket may be omitted (it is
    /// `count`). `sum` and `count` are over all observations.
    pub fn histogram(
        &mut self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        buckets: &[(f64, u64)],
        sum: f64,
        count: u64,
    ) -> &mut Self {
        if let Err(why) = check_buckets(buckets, count) {
            tracing::warn!(metric = name, why, "dropping malformed histogram");
            return self;
        }
        if labels.iter().any(|(label, _)| *label == "le") {
            tracing::warn!(metric = name, "histogram labels may not include `le`");
            return self;
        }
        let Some(out) = self.family(name, help, Kind::Histogram, labels) else {
            return self;
        };
        let bucket_name = format!("{name}_bucket");
        let mut wrote_inf = false;
        for &(upper_bound, cumulative) in buckets {
            wrote_inf |= upper_bound == f64::INFINITY;
            let le = format_f64(upper_bound);
            write_sample(
                out,
                &bucket_name,
                labels,
                Some(&le),
                &cumulative.to_string(),
            );
        }
        if !wrote_inf {
            write_sample(out, &bucket_name, labels, Some("+Inf"), &count.to_string());
        }
        write_sample(out, &format!("{name}_sum"), labels, None, &format_f64(sum));
        write_sample(
            out,
            &format!("{name}_count"),
            labels,
            None,
            &count.to_string(),
        );
        self
    }

    /// The exposition text.
    pub fn finish(self) -> String {
        let mut out = String::new();
        for family in self.families {
            let _ = writeln!(out, "# HELP {} {}", family.name, escape_help(&family.help));
            let _ = writeln!(out, "# TYPE {} {}", family.name, family.kind.as_str());
            out.push_str(&family.samples);
        }
        out
    }

    /// The sample buffer of family `name`, created on first use; `None` (and
    /// a warning) when the call is invalid.
    fn family(
        &mut self,
        name: &str,
        help: &str,
        kind: Kind,
        labels: &[(&str, &str)],
    ) -> Option<&mut String> {
        if !is_metric_name(name) {
            tracing::warn!(metric = name, "dropping sample: invalid metric name");
            return None;
        }
        for (i, (label, _)) in labels.iter().enumerate() {
            if !is_label_name(label) || labels[..i].iter().any(|(other, _)| other == label) {
                tracing::warn!(
                    metric = name,
                    label,
                    "dropping sample: invalid or repeated label"
                );
                return None;
            }
        }
        let index = match self.by_name.get(name) {
            Some(&index) => index,
            None => {
                self.families.push(Family {
                    name: name.to_owned(),
                    help: help.to_owned(),
                    kind,
                    samples: String::new(),
                });
                let index = self.families.len() - 1;
                self.by_name.insert(name.to_owned(), index);
                index
            }
        };
        let family = self.families.get_mut(index)?;
        if family.kind != kind {
            tracing::warn!(
                metric = name,
                registered = family.kind.as_str(),
                requested = kind.as_str(),
                "dropping sample: metric family used with two types"
            );
            return None;
        }
        Some(&mut family.samples)
    }
}

/// Appends `name{labels[,le="..."]} value\n`.
fn write_sample(
    out: &mut String,
    name: &str,
    labels: &[(&str, &str)],
    le: Option<&str>,
    value: &str,
) {
    out.push_str(name);
    if !labels.is_empty() || le.is_some() {
        out.push('{');
        let extra = le.map(|le| ("le", le));
        for (i, (label, value)) in labels.iter().copied().chain(extra).enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(label);
            out.push_str("=\"");
            escape_label_value(out, value);
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    out.push_str(value);
    out.push('\n');
}

fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Floats as the format spells them. Integral values print without a
/// fraction (`3`, not `3.0`); others use Rust's shortest round-trip form,
/// which Prometheus parses (`0.25`, `1e-7`).
fn format_f64(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value == f64::INFINITY {
        "+Inf".to_owned()
    } else if value == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        // Exact: integers below 2^53 are representable, and 1e15 < 2^53.
        format!("{}", value as i64)
    } else {
        format!("{value:?}")
    }
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__` (reserved).
fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

fn check_buckets(buckets: &[(f64, u64)], count: u64) -> Result<(), &'static str> {
    let mut previous: Option<(f64, u64)> = None;
    for &(bound, cumulative) in buckets {
        if bound.is_nan() {
            return Err("bucket bound is NaN");
        }
        if let Some((previous_bound, previous_count)) = previous {
            if bound <= previous_bound {
                return Err("bucket bounds must increase");
            }
            if cumulative < previous_count {
                return Err("bucket counts must be cumulative");
            }
        }
        if cumulative > count {
            return Err("bucket count exceeds the total count");
        }
        if bound == f64::INFINITY && cumulative != count {
            return Err("the +Inf bucket must equal the total count");
        }
        previous = Some((bound, cumulative));
    }
    Ok(())
}

/// Asserts that `promtool check metrics` (lint included) accepts `text`;
/// skips, with a note, when promtool is not installed (CI installs it).
#[cfg(test)]
pub(crate) fn assert_promtool_accepts(text: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            eprintln!("skipping: promtool not available ({e})");
            return;
        }
    };
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool output");
    assert!(
        out.status.success(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// One parsed sample line.
    #[derive(Debug, PartialEq)]
    struct Sample {
        name: String,
        labels: BTreeMap<String, String>,
        value: f64,
    }

    /// A strict little parser for what the writer emits: checks HELP/TYPE
    /// once per family, before its samples, and families contiguous.
    fn parse(text: &str) -> (Vec<(String, String, String)>, Vec<Sample>) {
        let mut families: Vec<(String, String, String)> = Vec::new(); // name, type, help
        let mut samples = Vec::new();
        let mut pending_help: Option<(String, String)> = None;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').unwrap();
                assert!(pending_help.is_none(), "two HELP lines in a row");
                assert!(
                    families.iter().all(|f| f.0 != name),
                    "HELP twice for {name}"
                );
                pending_help = Some((name.to_owned(), help.to_owned()));
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                let (help_name, help) = pending_help.take().expect("TYPE without HELP");
                assert_eq!(help_name, name);
                families.push((name.to_owned(), kind.to_owned(), help));
            } else {
                assert!(!line.starts_with('#'), "unexpected comment {line}");
                let sample = parse_sample(line);
                let (family, kind, _) = families.last().expect("sample before TYPE");
                let allowed: Vec<String> = if kind == "histogram" {
                    ["_bucket", "_sum", "_count"]
                        .iter()
                        .map(|s| format!("{family}{s}"))
                        .collect()
                } else {
                    vec![family.clone()]
                };
                assert!(
                    allowed.contains(&sample.name),
                    "{} outside its family",
                    sample.name
                );
                samples.push(sample);
            }
        }
        assert!(pending_help.is_none());
        (families, samples)
    }

    fn parse_sample(line: &str) -> Sample {
        let name_end = line.find(['{', ' ']).unwrap();
        let name = line[..name_end].to_owned();
        assert!(is_metric_name(&name));
        let mut labels = BTreeMap::new();
        let mut rest = &line[name_end..];
        if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices().peekable();
            loop {
                let (start, _) = *chars.peek().unwrap();
                let eq = body[start..].find('=').unwrap() + start;
                let label = body[start..eq].to_owned();
                assert!(is_label_name(&label), "label {label}");
                while chars.next().unwrap().0 < eq {}
                assert_eq!(chars.next().unwrap().1, '"');
                let mut value = String::new();
                loop {
                    match chars.next().unwrap().1 {
                        '\\' => match chars.next().unwrap().1 {
                            '\\' => value.push('\\'),
                            '"' => value.push('"'),
                            'n' => value.push('\n'),
                            other => panic!("bad escape \\{other}"),
                        },
                        '"' => break,
                        '\n' => panic!("raw newline in label value"),
                        c => value.push(c),
                    }
                }
                assert!(labels.insert(label, value).is_none(), "repeated label");
                match chars.next().unwrap() {
                    (_, ',') => continue,
                    (i, '}') => {
                        rest = &body[i + 1..];
                        break;
                    }
                    (_, c) => panic!("unexpected {c}"),
                }
            }
        }
        let value = rest.strip_prefix(' ').unwrap();
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v.parse().unwrap(),
        };
        Sample {
            name,
            labels,
            value,
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn example() -> String {
        let mut w = PromWriter::new();
        w.counter(
            "bitcraps_http_requests_total",
            "HTTP requests answered.",
            &[("route", "/status"), ("code", "200")],
            7,
        );
        w.gauge("bitcraps_height", "Highest committed height.", &[], 42.0);
        // Interleaved: same family again after another one.
        w.counter(
            "bitcraps_http_requests_total",
            "HTTP requests answered.",
            &[("route", "/api/v1/tx"), ("code", "202")],
            3,
        );
        w.histogram(
            "bitcraps_commit_latency_seconds",
            "Time from proposal to commit.",
            &[("node", "val\"0\\\nx")],
            &[(0.005, 1), (0.25, 4), (1.0, 9)],
            3.5,
            10,
        );
        w.gauge(
            "bitcraps_sync_rate_blocks_per_second",
            "Blocks committed per second.\nOver the last window \\ of sync.",
            &[],
            0.125,
        );
        w.finish()
    }

    #[test]
    fn families_are_contiguous_with_one_help_and_type() {
        let text = example();
        let (families, samples) = parse(&text);
        let names: Vec<&str> = families.iter().map(|f| f.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "bitcraps_http_requests_total",
                "bitcraps_height",
                "bitcraps_commit_latency_seconds",
                "bitcraps_sync_rate_blocks_per_second"
            ]
        );
        assert_eq!(families[2].1, "histogram");
        assert_eq!(
            families[3].2,
            "Blocks committed per second.\\nOver the last window \\\\ of sync."
        );
        assert_eq!(
            samples[1],
            Sample {
                name: "bitcraps_http_requests_total".into(),
                labels: labels(&[("route", "/api/v1/tx"), ("code", "202")]),
                value: 3.0,
            }
        );
        assert_eq!(samples[2].name, "bitcraps_height");
    }

    #[test]
    fn histogram_layout_and_label_escaping() {
        let text = example();
        let (_, samples) = parse(&text);
        let hist: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.name.starts_with("bitcraps_commit_latency_seconds"))
            .collect();
        let node = "val\"0\\\nx";
        let les: Vec<(&str, f64)> = hist
            .iter()
            .filter(|s| s.name.ends_with("_bucket"))
            .map(|s| {
                assert_eq!(s.labels["node"], node);
                (s.labels["le"].as_str(), s.value)
            })
            .collect();
        assert_eq!(
            les,
            [("0.005", 1.0), ("0.25", 4.0), ("1", 9.0), ("+Inf", 10.0)]
        );
        assert_eq!(hist[4].name, "bitcraps_commit_latency_seconds_sum");
        assert_eq!(hist[4].value, 3.5);
        assert_eq!(hist[5].name, "bitcraps_commit_latency_seconds_count");
        assert_eq!(hist[5].value, 10.0);
        assert!(text.contains(r#"node="val\"0\\\nx""#), "{text}");
    }

    #[test]
    fn explicit_inf_bucket_is_not_repeated() {
        let mut w = PromWriter::new();
        w.histogram(
            "h_seconds",
            "h",
            &[],
            &[(1.0, 1), (f64::INFINITY, 2)],
            1.5,
            2,
        );
        let text = w.finish();
        assert_eq!(text.matches("le=\"+Inf\"").count(), 1, "{text}");
    }

    #[test]
    fn float_spellings() {
        assert_eq!(format_f64(f64::NAN), "NaN");
        assert_eq!(format_f64(f64::INFINITY), "+Inf");
        assert_eq!(format_f64(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_f64(3.0), "3");
        assert_eq!(format_f64(-2.0), "-2");
        assert_eq!(format_f64(0.1), "0.1");
        assert_eq!(format_f64(1e-7), "1e-7");
        assert_eq!(format_f64(1e300), "1e300");
        for v in [0.1, 1e-7, 1e300, 123456.789, -0.5] {
            assert_eq!(format_f64(v).parse::<f64>().unwrap(), v);
        }
    }

    #[test]
    fn misuse_drops_samples_instead_of_breaking_the_output() {
        let mut w = PromWriter::new();
        w.counter("ok_total", "fine", &[], 1);
        w.gauge("ok_total", "wrong type", &[], 2.0); // type clash
        w.counter("9bad", "bad name", &[], 1);
        w.counter("bad-name_total", "bad name", &[], 1);
        w.counter("x_total", "bad label", &[("__reserved", "v")], 1);
        w.counter("x_total", "bad label", &[("a-b", "v")], 1);
        w.counter("x_total", "repeated", &[("a", "1"), ("a", "2")], 1);
        w.histogram("h", "le label", &[("le", "1")], &[], 0.0, 0);
        w.histogram("h", "unsorted", &[], &[(2.0, 1), (1.0, 2)], 0.0, 2);
        w.histogram("h", "not cumulative", &[], &[(1.0, 2), (2.0, 1)], 0.0, 2);
        w.histogram("h", "over count", &[], &[(1.0, 3)], 0.0, 2);
        w.histogram("h", "nan", &[], &[(f64::NAN, 0)], 0.0, 0);
        w.histogram("h", "inf mismatch", &[], &[(f64::INFINITY, 1)], 0.0, 2);
        let text = w.finish();
        let (families, samples) = parse(&text);
        // Rejected calls create no family, so no HELP/TYPE without samples.
        assert_eq!(families.len(), 1, "{text}");
        assert_eq!(samples.len(), 1, "{text}");
        assert_eq!(samples[0].value, 1.0);
    }

    #[test]
    fn empty_writer_is_empty() {
        assert_eq!(PromWriter::new().finish(), "");
    }

    /// `promtool check metrics` (lint included) on the example, when promtool
    /// is installed; skipped otherwise.
    #[test]
    fn promtool_accepts_the_output() {
        assert_promtool_accepts(&example());
    }
}
