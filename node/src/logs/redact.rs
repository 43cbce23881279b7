//! Redaction: keeps secrets out of every line the node writes.
//!
//! Redaction happens where fields are turned into text, so it covers event
//! fields, the message, and span fields (recorded at creation or later), in
//! both output formats: the text format formats fields with
//! [`RedactingFields`], the JSON format ([`super::json`]) calls
//! [`is_secret_field`] and [`redact_text`] on every field it records, and the
//! throttle's summaries quote messages already redacted.
//!
//! # Rule 1: secret field names
//!
//! A field whose name contains, ignoring ASCII case, one of
//! [`SECRET_NAME_WORDS`] (`key`, `seed`, `secret`, `pin`, `passphrase`,
//! `password`, `token`, `share`, `private`, `mnemonic`, `authorization`,
//! `bearer`) prints as `[redacted]`, whatever its type (a numeric `pin = 1234`
//! too). Containment, not equality, so `user_pin`, `admin_token` and
//! `beacon_share` are caught; that also catches innocent names (`keystore`,
//! `spinner`), which is the safe way to be wrong.
//!
//! Exceptions, listed in [`ALLOWED_NAME_PHRASES`]: an occurrence of a word that
//! lies inside one of these phrases does not count, but any other occurrence
//! in the same name still does (`public_key_seed` is redacted for `seed`).
//!
//! * `public_key`, `publickey`, `pubkey`: public keys.
//! * `key_id`, `keys_dir`: key identifiers and the key directory path.
//! * `identity_key`, `consensus_key`: this code base's names for the public
//!   halves of the node's identity and consensus keys (`start` logs both at
//!   startup, the engine logs `new_identity_key` on rotation). The secret
//!   halves are always called `*_seed` / `secret_*` and stay redacted.
//! * `ping`: a network round trip, not a PIN (also covers `mapping`,
//!   `shipping`).
//! * `share_index`: which beacon share, not the share itself. The engine logs
//!   an invalid share's index as `share`, which rule 1 redacts; renaming that
//!   field to `share_index` keeps the index visible.
//!
//! # Rule 2: secret-looking values, in any field including the message
//!
//! * PEM private key blocks: from `-----BEGIN <label>-----` where the label
//!   contains `PRIVATE KEY` up to and including the matching `-----END ...-----`
//!   (or the end of the text if the block is cut off) become
//!   `[redacted private key]`. Certificates and public keys are kept.
//! * HTTP credentials: `Bearer <token>` (any token) and `Basic <credentials>`
//!   keep the scheme and replace the token with `[redacted]`. The scheme must
//!   start a word and be followed by white space; the token is the run of
//!   RFC 7235 `token68` characters. A run of only lowercase letters is taken
//!   for prose ("basic setup", "the bearer of this note") and kept: real
//!   tokens and base64 credentials have digits, capitals or punctuation.
//! * `key=value` fragments in free text for the keys `pin`, `passphrase`,
//!   `password` and `token` (ASCII case ignored, spaces around `=` allowed): the
//!   value is replaced, quotes kept (`pin="[redacted]"`). `password`,
//!   `passphrase` and `token` may end a longer name (`admin_token=`,
//!   `dbpassword=`); `pin` must not follow a letter (`spin=3` is kept). An
//!   unquoted value runs to white space or one of `,;&)]}"'`; a quoted one (`"`,
//!   `'` or Rust's escaped `\"`) to its closing quote.
//!
//! Cost: a field name check is a few short comparisons without allocation; the
//! value scan is one pass over the bytes that only looks further at `-`, `b`,
//! `p` and `t`, and allocates only when something is redacted.
//!
//! # What this cannot catch
//!
//! A secret logged under an innocent field name in an innocent shape: a raw
//! hex seed as `value = %hex`, key bytes in a `Debug` dump of a struct that
//! does not redact itself, a password after `:` (`password: hunter2`) or in a
//! JSON document inside a message, a bearer token made only of lowercase
//! letters (taken for prose, see rule 2). The node never logs those; the secret
//! types' own `Debug` impls print no key material, and `node/tests/secret_scan.rs`
//! runs a real localnet at debug level and searches every log and file for
//! every secret it used. Redaction is the second line of defence, not the
//! first. It also only applies to the node's own log output: a layer installed
//! through [`super::LogSetup::extra`] sees the raw field values.

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::FormatFields;

/// What a redacted value prints as.
pub const REDACTED: &str = "[redacted]";

/// What a PEM private key block prints as.
pub const REDACTED_PEM: &str = "[redacted private key]";

/// Rule 1: a field whose name contains one of these is secret.
pub const SECRET_NAME_WORDS: &[&str] = &[
    "key",
    "seed",
    "secret",
    "pin",
    "passphrase",
    "password",
    "token",
    "share",
    "private",
    "mnemonic",
    "authorization",
    "bearer",
];

/// Rule 1 exceptions: `(word, phrase)`: an occurrence of `word` inside
/// `phrase` does not make a name secret. See the module docs for why each one
/// is safe.
pub const ALLOWED_NAME_PHRASES: &[(&str, &str)] = &[
    ("key", "public_key"),
    ("key", "publickey"),
    ("key", "pubkey"),
    ("key", "key_id"),
    ("key", "keys_dir"),
    ("key", "identity_key"),
    ("key", "consensus_key"),
    ("pin", "ping"),
    ("share", "share_index"),
];

/// Rule 1: whether a field called `name` must be printed as [`REDACTED`].
pub fn is_secret_field(name: &str) -> bool {
    let name = name.as_bytes();
    SECRET_NAME_WORDS.iter().any(|word| {
        let word = word.as_bytes();
        (0..name.len().saturating_sub(word.len() - 1))
            .filter(|&at| name[at..].len() >= word.len() && eq_ci(&name[at..at + word.len()], word))
            .any(|at| !allowed_occurrence(name, word, at))
    })
}

/// Whether the occurrence of `word` at `at` in `name` lies inside an allowed
/// phrase.
fn allowed_occurrence(name: &[u8], word: &[u8], at: usize) -> bool {
    ALLOWED_NAME_PHRASES.iter().any(|(w, phrase)| {
        if w.as_bytes() != word {
            return false;
        }
        let phrase = phrase.as_bytes();
        // Where the word sits inside the phrase (present by construction).
        let Some(offset) = find_ci(phrase, word, 0) else {
            return false;
        };
        let Some(start) = at.checked_sub(offset) else {
            return false;
        };
        name.get(start..start + phrase.len())
            .is_some_and(|candidate| eq_ci(candidate, phrase))
    })
}

/// Rule 2: `text` with PEM private keys, HTTP credentials and
/// `pin=`/`passphrase=`/`password=`/`token=` values replaced. Borrows when
/// nothing matched.
pub fn redact_text(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut out: Option<String> = None;
    // Bytes of `text` before this index are already in `out`.
    let mut copied = 0;
    let mut at = 0;
    while at < bytes.len() {
        match secret_at(bytes, at) {
            Some(hit) => {
                let o = out.get_or_insert_with(|| String::with_capacity(text.len()));
                // Every boundary below falls next to an ASCII byte (a pattern
                // character or a delimiter) or at the end, so slicing is safe;
                // `get` keeps it panic-free regardless.
                o.push_str(text.get(copied..hit.start).unwrap_or_default());
                o.push_str(hit.replacement);
                copied = hit.end;
                at = hit.end.max(at + 1);
            }
            None => at += 1,
        }
    }
    match out {
        None => Cow::Borrowed(text),
        Some(mut o) => {
            o.push_str(text.get(copied..).unwrap_or_default());
            Cow::Owned(o)
        }
    }
}

/// A secret found by [`secret_at`]: replace `start..end` with `replacement`.
struct Hit {
    start: usize,
    end: usize,
    replacement: &'static str,
}

/// The rule-2 secret starting at `at`, if any.
fn secret_at(b: &[u8], at: usize) -> Option<Hit> {
    match b[at].to_ascii_lowercase() {
        b'-' => pem_at(b, at),
        b'b' => auth_at(b, at),
        b'p' | b't' => assignment_at(b, at),
        _ => None,
    }
}

/// `-----BEGIN ... PRIVATE KEY-----` .. `-----END ...-----`.
fn pem_at(b: &[u8], at: usize) -> Option<Hit> {
    const BEGIN: &[u8] = b"-----BEGIN ";
    const END: &[u8] = b"-----END ";
    const DASHES: &[u8] = b"-----";
    /// Longest label looked at (`ENCRYPTED PRIVATE KEY` is 21 bytes).
    const MAX_LABEL: usize = 64;
    if !starts_with_ci(b, at, BEGIN) {
        return None;
    }
    let label_start = at + BEGIN.len();
    let limit = b.len().min(label_start + MAX_LABEL + DASHES.len());
    let label_end = find_ci(&b[..limit], DASHES, label_start)?;
    // Only private keys: certificates and public keys stay readable.
    find_ci(&b[label_start..label_end], b"PRIVATE KEY", 0)?;
    let body = label_end + DASHES.len();
    // A block cut off before its END line is redacted to the end of the text.
    let end = find_ci(b, END, body)
        .and_then(|e| find_ci(b, DASHES, e + END.len()))
        .map_or(b.len(), |d| d + DASHES.len());
    Some(Hit {
        start: at,
        end,
        replacement: REDACTED_PEM,
    })
}

/// `Bearer <token>` / `Basic <credentials>`: the token is replaced.
fn auth_at(b: &[u8], at: usize) -> Option<Hit> {
    if at > 0 && b[at - 1].is_ascii_alphanumeric() {
        return None;
    }
    let scheme = if starts_with_ci(b, at, b"bearer") {
        6
    } else if starts_with_ci(b, at, b"basic") {
        5
    } else {
        return None;
    };
    let mut start = at + scheme;
    if !b.get(start).is_some_and(|c| *c == b' ' || *c == b'\t') {
        return None;
    }
    while b.get(start).is_some_and(|c| *c == b' ' || *c == b'\t') {
        start += 1;
    }
    let mut end = start;
    while b.get(end).is_some_and(|c| is_token68(*c)) {
        end += 1;
    }
    while b.get(end) == Some(&b'=') {
        end += 1;
    }
    let token = &b[start..end];
    // Real tokens and base64 credentials have digits, capitals or
    // punctuation; a lowercase word is prose ("the bearer of this note").
    if token.is_empty() || token.iter().all(u8::is_ascii_lowercase) {
        return None;
    }
    Some(Hit {
        start,
        end,
        replacement: REDACTED,
    })
}

/// RFC 7235 `token68` characters, without the trailing `=` padding.
fn is_token68(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
}

/// `pin=`, `passphrase=`, `password=`, `token=`: the value is replaced.
fn assignment_at(b: &[u8], at: usize) -> Option<Hit> {
    let name_len = if starts_with_ci(b, at, b"passphrase") {
        10
    } else if starts_with_ci(b, at, b"password") {
        8
    } else if starts_with_ci(b, at, b"token") {
        5
    } else if starts_with_ci(b, at, b"pin") {
        if at > 0 && b[at - 1].is_ascii_alphabetic() {
            return None;
        }
        3
    } else {
        return None;
    };
    let mut i = at + name_len;
    while b.get(i) == Some(&b' ') {
        i += 1;
    }
    if b.get(i) != Some(&b'=') {
        return None;
    }
    i += 1;
    while b.get(i) == Some(&b' ') {
        i += 1;
    }
    let (start, end) = match (b.get(i), b.get(i + 1)) {
        (Some(q @ (b'"' | b'\'')), _) => {
            let start = i + 1;
            let end = b[start..]
                .iter()
                .position(|c| c == q)
                .map_or(b.len(), |p| start + p);
            (start, end)
        }
        (Some(b'\\'), Some(b'"')) => {
            let start = i + 2;
            let end = find_ci(b, b"\\\"", start).unwrap_or(b.len());
            (start, end)
        }
        _ => {
            let end = b[i..]
                .iter()
                .position(|c| {
                    c.is_ascii_whitespace()
                        || matches!(c, b',' | b';' | b'&' | b')' | b']' | b'}' | b'"' | b'\'')
                })
                .map_or(b.len(), |p| i + p);
            (i, end)
        }
    };
    if start >= end {
        return None;
    }
    Some(Hit {
        start,
        end,
        replacement: REDACTED,
    })
}

fn eq_ci(a: &[u8], b: &[u8]) -> bool {
    a.eq_ignore_ascii_case(b)
}

fn starts_with_ci(hay: &[u8], at: usize, needle: &[u8]) -> bool {
    hay.get(at..at + needle.len())
        .is_some_and(|s| eq_ci(s, needle))
}

/// First index `>= from` where `needle` occurs in `hay`, ignoring ASCII case.
fn find_ci(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    (from..=hay.len() - needle.len()).find(|&i| eq_ci(&hay[i..i + needle.len()], needle))
}

/// Escapes characters a terminal could act on (ESC, BEL, BS, FF, DEL and the
/// C1 controls), as `tracing_subscriber`'s own formatter does, so a logged
/// value cannot repaint or hide lines on an operator's terminal.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    let bad = |c: char| {
        matches!(
            c,
            '\x1b' | '\x07' | '\x08' | '\x0c' | '\x7f' | '\u{80}'..='\u{9f}'
        )
    };
    if !text.chars().any(bad) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if bad(c) {
            // Writing to a String cannot fail.
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// The text format's field formatter: `tracing_subscriber`'s default layout
/// (message first and bare, then `name=value` separated by spaces, `Debug`
/// formatting, `log.*` bridge fields skipped, `r#` stripped) with both
/// redaction rules applied. Used for event fields and, through
/// `FormattedFields`, for span fields at creation and on every `record`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RedactingFields;

impl<'writer> FormatFields<'writer> for RedactingFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = TextVisitor {
            ansi: writer.has_ansi_escapes(),
            writer,
            empty: true,
            result: Ok(()),
            scratch: String::new(),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

/// Writes redacted fields for [`RedactingFields`].
struct TextVisitor<'a> {
    writer: Writer<'a>,
    ansi: bool,
    empty: bool,
    result: fmt::Result,
    /// Reused buffer for formatting one value before it is scanned.
    scratch: String,
}

impl TextVisitor<'_> {
    /// Writes the separator and `name=` (or nothing for the message).
    fn begin(&mut self, name: &str) -> fmt::Result {
        if !self.empty {
            self.writer.write_char(' ')?;
        }
        self.empty = false;
        if name == "message" {
            return Ok(());
        }
        let name = name.strip_prefix("r#").unwrap_or(name);
        if self.ansi {
            write!(self.writer, "\x1b[3m{name}\x1b[0m\x1b[2m=\x1b[0m")
        } else {
            write!(self.writer, "{name}=")
        }
    }

    /// One field whose value is already formatted in `self.scratch`.
    fn scratch_field(&mut self, name: &str) {
        if self.result.is_err() || name.starts_with("log.") {
            return;
        }
        let scratch = std::mem::take(&mut self.scratch);
        self.result = self.begin(name).and_then(|()| {
            if name != "message" && is_secret_field(name) {
                self.writer.write_str(REDACTED)
            } else {
                let redacted = redact_text(&scratch);
                self.writer.write_str(&escape_controls(&redacted))
            }
        });
        self.scratch = scratch;
    }

    /// A number or bool: only rule 1 applies.
    fn plain_field(&mut self, name: &str, value: &dyn fmt::Display) {
        if self.result.is_err() || name.starts_with("log.") {
            return;
        }
        self.result = self.begin(name).and_then(|()| {
            if is_secret_field(name) {
                self.writer.write_str(REDACTED)
            } else {
                write!(self.writer, "{value}")
            }
        });
    }
}

impl Visit for TextVisitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.scratch.clear();
        let _ = write!(self.scratch, "{value:?}");
        self.scratch_field(field.name());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.scratch.clear();
        // The message prints bare; other strings quoted, as fmt does.
        let _ = if field.name() == "message" {
            self.scratch.write_str(value)
        } else {
            write!(self.scratch, "{value:?}")
        };
        self.scratch_field(field.name());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.scratch.clear();
        write_error_chain(&mut self.scratch, value);
        self.scratch_field(field.name());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.plain_field(field.name(), &value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.plain_field(field.name(), &value);
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.plain_field(field.name(), &value);
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.plain_field(field.name(), &value);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.plain_field(field.name(), &value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.plain_field(field.name(), &value);
    }
}

/// `error: cause: cause ...`, skipping a cause whose text the line already
/// contains (many errors embed their source's message).
pub(crate) fn write_error_chain(out: &mut String, error: &(dyn std::error::Error + 'static)) {
    let _ = write!(out, "{error}");
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_field_names() {
        for name in [
            "key",
            "signing_key",
            "API_KEY",
            "apikey",
            "keystore",
            "seed",
            "secret_seed",
            "client_secret",
            "pin",
            "user_pin",
            "SO_PIN",
            "passphrase",
            "password",
            "db_password",
            "token",
            "admin_token",
            "share",
            "secret_share",
            "beacon_share",
            "private",
            "private_key",
            "mnemonic",
            "authorization",
            "bearer",
            "bearer_auth",
            // An allowed phrase does not excuse a second, secret word.
            "public_key_seed",
            "identity_key_secret",
            // Nor a separate occurrence of the same word.
            "public_key_key",
            "ping_pin",
        ] {
            assert!(is_secret_field(name), "{name} should be secret");
        }
    }

    #[test]
    fn public_field_names() {
        for name in [
            "public_key",
            "PublicKey",
            "validator_public_key",
            "pubkey",
            "key_id",
            "keys_dir",
            "identity_key",
            "new_identity_key",
            "consensus_key",
            "share_index",
            "ping",
            "ping_ms",
            "mapping",
            "hash",
            "block_hash",
            "correlation_id",
            "trace_id",
            "span_id",
            "peer",
            "height",
            "view",
            "message",
            "path",
            "k",
            "",
        ] {
            assert!(!is_secret_field(name), "{name} should be public");
        }
    }

    #[test]
    fn pem_private_keys_are_redacted() {
        let pem =
            "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIGZz\n-----END PRIVATE KEY-----";
        let text = format!("loaded {pem} from disk");
        assert_eq!(
            redact_text(&text),
            "loaded [redacted private key] from disk"
        );
        // Other labels, Debug-escaped newlines, lowercase markers.
        let ec = "key: \"-----BEGIN EC PRIVATE KEY-----\\nAAAA\\n-----END EC PRIVATE KEY-----\\n\"";
        assert_eq!(redact_text(ec), "key: \"[redacted private key]\\n\"");
        let rsa = "-----begin rsa private key-----xyz-----end rsa private key----- tail";
        assert_eq!(redact_text(rsa), "[redacted private key] tail");
        // Cut off before its END line: everything after BEGIN goes.
        let cut = "x -----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk";
        assert_eq!(redact_text(cut), "x [redacted private key]");
    }

    #[test]
    fn pem_certificates_and_public_keys_are_kept() {
        for text in [
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
            "-----BEGIN PUBLIC KEY-----\nMCow\n-----END PUBLIC KEY-----",
            "-----BEGIN with no closing dashes",
            "----- a separator line -----",
        ] {
            assert_eq!(redact_text(text), text);
        }
    }

    #[test]
    fn http_credentials_are_redacted() {
        let cases = [
            (
                "Authorization: Bearer abc.def-ghi_jkl",
                "Authorization: Bearer [redacted]",
            ),
            ("bearer  tok3n== rest", "bearer  [redacted] rest"),
            (
                "headers {\"authorization\": \"Bearer eyJhbGciOi\"}",
                "headers {\"authorization\": \"Bearer [redacted]\"}",
            ),
            ("Basic dXNlcjpwYXNz", "Basic [redacted]"),
            (
                "auth=Basic YWxhZGRpbjpvcGVuc2VzYW1l=, next",
                "auth=Basic [redacted], next",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(redact_text(text), want, "{text}");
        }
    }

    #[test]
    fn prose_about_schemes_is_kept() {
        for text in [
            "basic setup complete",
            "Basic sanity checks passed",
            "the bearer of this note",
            "the Bearer: nothing",
            "forbearer tokens",
            "Basic ab",
        ] {
            assert_eq!(redact_text(text), text, "{text}");
        }
        // Anything with a digit, capital or punctuation is a token.
        assert_eq!(redact_text("the bearer x1"), "the bearer [redacted]");
        assert_eq!(redact_text("Basic Ab"), "Basic [redacted]");
    }

    #[test]
    fn key_value_fragments_are_redacted() {
        let cases = [
            ("login with pin=1234 ok", "login with pin=[redacted] ok"),
            ("PIN=1234", "PIN=[redacted]"),
            (
                "so_pin=9876,user_pin=1111",
                "so_pin=[redacted],user_pin=[redacted]",
            ),
            (
                "passphrase=\"correct horse\" done",
                "passphrase=\"[redacted]\" done",
            ),
            ("password='hunter2'", "password='[redacted]'"),
            (
                "db_password = s3cret; next",
                "db_password = [redacted]; next",
            ),
            (
                "GET /x?token=abc123&page=2",
                "GET /x?token=[redacted]&page=2",
            ),
            ("admin_token=zzz", "admin_token=[redacted]"),
            (
                "args: \"pin=\\\"42\\\"\"",
                "args: \"pin=\\\"[redacted]\\\"\"",
            ),
            ("(token=abc)", "(token=[redacted])"),
            ("pin=\"unterminated", "pin=\"[redacted]"),
        ];
        for (text, want) in cases {
            assert_eq!(redact_text(text), want, "{text}");
        }
    }

    #[test]
    fn innocent_text_is_kept_and_borrowed() {
        for text in [
            "",
            "spin=3 pinned=true ping=12ms",
            "token bucket refilled",
            "pin= ",
            "password reset requested",
            "peer 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 connected",
            "correlation_id=0193f3c2-7c1e-7d2a-9a55-3f1f8e9e2b10",
            "-- dashes -----",
            "ünïcödé ✓ bearer",
        ] {
            assert!(matches!(redact_text(text), Cow::Borrowed(_)), "{text}");
        }
    }

    #[test]
    fn redaction_keeps_utf8_around_hits() {
        assert_eq!(redact_text("ключ pin=тайна ✓"), "ключ pin=[redacted] ✓");
        assert_eq!(redact_text("pin=✓"), "pin=[redacted]");
    }

    #[test]
    fn terminal_controls_are_escaped() {
        assert_eq!(escape_controls("a\x1b[2Jb"), "a\\x1b[2Jb");
        assert_eq!(escape_controls("bell\x07 \u{9b}"), "bell\\x07 \\x9b");
        assert!(matches!(escape_controls("plain\ttext\n"), Cow::Borrowed(_)));
    }
}
