//! Request extractors and the body limit, answering with JSON errors.
//!
//! axum's own extractors reject with plain text and their own status choices
//! (e.g. 422 for a JSON type error). These wrappers keep axum's parsing but map
//! every rejection to an [`HttpError`], so clients see one error shape.
//!
//! Body size is enforced twice, because neither check alone is enough:
//! [`reject_oversize`] refuses a declared `content-length` above
//! `max_body_bytes` before reading a byte, and the router's
//! `DefaultBodyLimit` stops reading a chunked body (or one whose length was
//! not declared) as soon as it passes the limit. Both answer 413.
//!
//! The limit is `max_body_bytes` for every route but `POST /api/v1/txs`,
//! whose limit ([`MAX_SUBMIT_BATCH_BODY_BYTES`]) is derived from the largest
//! batch of the largest transactions instead ([`body_limit`]).

use super::error::HttpError;
use super::handlers::{MAX_SUBMIT_BATCH_BODY_BYTES, SUBMIT_BATCH_PATH};
use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

/// The body limit in force, as a request extension (for the 413 message).
#[derive(Debug, Clone, Copy)]
pub(crate) struct MaxBodyBytes(pub usize);

/// The body limit of a request to `path`: [`MAX_SUBMIT_BATCH_BODY_BYTES`]
/// for the batch route (the router sets the same limit on that route's
/// `DefaultBodyLimit`), `max_body_bytes` for every other path.
pub(crate) fn body_limit(path: &str, max_body_bytes: usize) -> usize {
    if path == SUBMIT_BATCH_PATH {
        MAX_SUBMIT_BATCH_BODY_BYTES
    } else {
        max_body_bytes
    }
}

/// Middleware: 413 for a declared `content-length` above the limit (see
/// [`body_limit`]), before the body is read; records the limit for
/// [`ApiJson`].
pub(crate) async fn reject_oversize(
    State(max_body_bytes): State<usize>,
    mut req: Request,
    next: Next,
) -> Response {
    let max_body_bytes = body_limit(req.uri().path(), max_body_bytes);
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse::<u64>().ok());
    // hyper has already refused malformed or conflicting lengths.
    if declared.is_some_and(|len| len > max_body_bytes as u64) {
        return HttpError::payload_too_large(max_body_bytes).into_response();
    }
    req.extensions_mut().insert(MaxBodyBytes(max_body_bytes));
    next.run(req).await
}

/// A JSON body: requires `content-type: application/json` (or `+json`), a
/// body within the limit and a value that deserializes (unknown fields are
/// refused where the type says `deny_unknown_fields`).
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = HttpError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(HttpError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                super::error::codes::UNSUPPORTED_MEDIA_TYPE,
                "expected content-type: application/json",
            ));
        }
        let max_body_bytes = req.extensions().get::<MaxBodyBytes>().map(|m| m.0);
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                HttpError::payload_too_large(max_body_bytes.unwrap_or_default())
            } else {
                // The client went away or sent a broken chunked encoding.
                HttpError::bad_request(format!(
                    "could not read the request body: {}",
                    rejection.body_text()
                ))
            }
        })?;
        serde_json::from_slice(&bytes)
            .map(ApiJson)
            .map_err(|e| HttpError::bad_request(format!("invalid JSON body: {e}")))
    }
}

/// `application/json`, or any `application/*+json`, with any parameters.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return false;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json")
            || subtype
                .get(subtype.len().saturating_sub(5)..)
                .is_some_and(|suffix| suffix.eq_ignore_ascii_case("+json")))
}

/// Path parameters; a parameter that does not parse is a 400.
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            // A handler mounted on a route without the parameter is our bug.
            Err(PathRejection::MissingPathParams(e)) => Err(HttpError::internal(&e.body_text())),
            Err(rejection) => Err(HttpError::bad_request(rejection.body_text())),
        }
    }
}

/// Query string parameters; one that does not parse is a 400. Unknown
/// parameters are ignored.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| ApiQuery(value))
            .map_err(|rejection: QueryRejection| HttpError::bad_request(rejection.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ct(value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
        h
    }

    #[test]
    fn recognises_json_content_types() {
        for ok in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/problem+json",
            " application/json ;x=y",
        ] {
            assert!(is_json(&ct(ok)), "{ok}");
        }
        for bad in [
            "text/plain",
            "application/jsonx",
            "application/x-www-form-urlencoded",
            "json",
            "",
            "application/",
            "+json",
        ] {
            assert!(!is_json(&ct(bad)), "{bad}");
        }
        assert!(!is_json(&HeaderMap::new()));
    }
}
