//! Correlation ids: one UUID per request, echoed on every response.
//!
//! A client (or the `localnet` player) may send `x-correlation-id` to follow
//! its request through the node's logs; otherwise the server makes one up. The
//! id is kept in the request extensions ([`CorrelationId`] is an extractor),
//! passed to [`NodeApi::submit`](super::NodeApi::submit) so the mempool and
//! engine can log it, and returned in the response header whatever the
//! outcome (including 404, 413, 429 and 503 answered by other middleware),
//! because this is the outermost layer.
//!
//! The same layer opens the `http_request` tracing span and logs one line per
//! request, so everything logged while handling it carries the id. With
//! OpenTelemetry export on, that span is the root of the request's trace and
//! its trace id is the correlation id ([`crate::trace::otel`]); its
//! `trace_id` and `span_id` fields put the same ids in every log line.

use super::clock;
use axum::extract::{FromRequestParts, MatchedPath, Request};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use std::convert::Infallible;
use tracing::Instrument;
use uuid::Uuid;

/// The request and response header carrying the id.
pub const CORRELATION_HEADER: HeaderName = HeaderName::from_static("x-correlation-id");

/// The `path` span field for requests that matched no route. Logging the raw
/// path instead would let any client mint unbounded label values.
const UNMATCHED_PATH: &str = "<unmatched>";

/// The request's correlation id. Extract it in a handler like any extractor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CorrelationId(pub Uuid);

impl CorrelationId {
    /// The client's id if it sent a usable UUID (any version, any of the
    /// textual forms `uuid` parses), otherwise a fresh v7 (time-ordered, so
    /// generated ids sort by arrival in logs).
    ///
    /// The nil and max UUIDs are refused: clients send them as placeholders,
    /// and one id shared by unrelated requests correlates nothing.
    pub fn from_header(value: Option<&HeaderValue>) -> Self {
        let parsed = value
            .and_then(|v| v.to_str().ok())
            .and_then(|s| Uuid::parse_str(s.trim()).ok())
            .filter(|u| !u.is_nil() && !u.is_max());
        CorrelationId(parsed.unwrap_or_else(Uuid::now_v7))
    }

    /// The header value: the canonical lowercase hyphenated form.
    pub fn header_value(&self) -> HeaderValue {
        let mut buf = Uuid::encode_buffer();
        let text: &str = self.0.hyphenated().encode_lower(&mut buf);
        // 36 ASCII characters from [0-9a-f-] always make a valid header value.
        HeaderValue::from_str(text).unwrap_or(HeaderValue::from_static("invalid"))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CorrelationId {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // The middleware always inserts one; the fallback only matters for a
        // router built without it (it keeps handlers infallible).
        Ok(parts
            .extensions
            .get::<CorrelationId>()
            .copied()
            .unwrap_or_else(|| CorrelationId::from_header(parts.headers.get(&CORRELATION_HEADER))))
    }
}

/// Outermost middleware: assigns the id, runs the request inside the
/// `http_request` span, logs status and latency, sets the response header.
pub(crate) async fn correlate(mut req: Request, next: Next) -> Response {
    let id = CorrelationId::from_header(req.headers().get(&CORRELATION_HEADER));
    let header = id.header_value();
    // Inner layers and handlers see the canonical id, not what the client sent.
    req.headers_mut().insert(CORRELATION_HEADER, header.clone());
    req.extensions_mut().insert(id);

    let path = req.extensions().get::<MatchedPath>().cloned();
    let path = path.as_ref().map_or(UNMATCHED_PATH, MatchedPath::as_str);
    let span = tracing::info_span!(
        "http_request",
        method = %req.method(),
        path = %path,
        correlation_id = %id.0,
        trace_id = %crate::trace::otel::trace_hex(&id.0),
        span_id = tracing::field::Empty,
        otel.name = %format_args!("{} {path}", req.method()),
        otel.kind = "server",
    );
    crate::trace::otel::start_root(&span, &id.0);
    let started = clock::now();
    let mut response = next.run(req).instrument(span.clone()).await;
    let latency_us = u64::try_from(clock::now().saturating_duration_since(started).as_micros())
        .unwrap_or(u64::MAX);
    span.in_scope(|| {
        tracing::debug!(
            status = response.status().as_u16(),
            latency_us,
            "request done"
        );
    });
    response.headers_mut().insert(CORRELATION_HEADER, header);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_valid_ids_of_any_version() {
        for text in [
            "67e55044-10b1-426f-9247-bb680e5fe0c8",          // v4
            "017f22e2-79b0-7cc3-98c4-dc0c0c07398f",          // v7
            "6ba7b810-9dad-11d1-80b4-00c04fd430c8",          // v1
            "urn:uuid:6ba7b810-9dad-11d1-80b4-00c04fd430c8", // other textual form
        ] {
            let id = CorrelationId::from_header(Some(&HeaderValue::from_static(text)));
            assert_eq!(id.0, Uuid::parse_str(text).unwrap());
        }
    }

    #[test]
    fn canonicalises_case() {
        let id = CorrelationId::from_header(Some(&HeaderValue::from_static(
            "67E55044-10B1-426F-9247-BB680E5FE0C8",
        )));
        assert_eq!(id.header_value(), "67e55044-10b1-426f-9247-bb680e5fe0c8");
    }

    #[test]
    fn replaces_missing_invalid_and_placeholder_ids_with_v7() {
        let bad = [
            None,
            Some(HeaderValue::from_static("")),
            Some(HeaderValue::from_static("not-a-uuid")),
            Some(HeaderValue::from_static(
                "00000000-0000-0000-0000-000000000000",
            )),
            Some(HeaderValue::from_static(
                "ffffffff-ffff-ffff-ffff-ffffffffffff",
            )),
            Some(HeaderValue::from_bytes(b"\xff\xfe").unwrap()),
        ];
        for value in bad {
            let id = CorrelationId::from_header(value.as_ref());
            assert_eq!(id.0.get_version_num(), 7, "{value:?}");
        }
    }
}
