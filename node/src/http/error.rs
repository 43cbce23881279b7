//! Every error the server answers, as one JSON shape ([`ErrorBody`]).
//!
//! Clients branch on the stable `error` code (listed in [`codes`]), never on
//! the message, and never see axum's plain-text rejections: every extractor,
//! fallback and middleware in this module answers through [`HttpError`].

use super::ApiError;
use crate::api::ErrorBody;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::borrow::Cow;

/// The stable `error` codes this server produces itself. [`ApiError::Rejected`]
/// adds the node's own codes (`bad_signature`, `stale_nonce`, ...).
pub mod codes {
    /// 400: malformed request (bad hex, bad JSON, unknown field, bad path).
    pub const BAD_REQUEST: &str = "bad_request";
    /// 404: no such route or object.
    pub const NOT_FOUND: &str = "not_found";
    /// 405: the route exists but not for this method (see the `allow` header).
    pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
    /// 413: the body exceeds `max_body_bytes` (or the batch route's own
    /// limit), or a batch holds more than `MAX_SUBMIT_BATCH` transactions.
    pub const PAYLOAD_TOO_LARGE: &str = "payload_too_large";
    /// 415: the body is not `application/json`.
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "unsupported_media_type";
    /// 429: the client IP is over its budget (see the `retry-after` header).
    pub const RATE_LIMITED: &str = "rate_limited";
    /// 503 from `/readyz`.
    pub const NOT_READY: &str = "not_ready";
    /// 503: the node refused the call (mempool full, stopping).
    pub const UNAVAILABLE: &str = "unavailable";
    /// 503: `max_concurrent_requests` are already in flight.
    pub const OVERLOADED: &str = "overloaded";
    /// 503: the request took longer than `request_timeout_ms`.
    pub const TIMEOUT: &str = "timeout";
    /// 500: something broke inside the node (details are in its log only).
    pub const INTERNAL: &str = "internal";
    /// 401: an admin call without the right bearer token.
    pub const UNAUTHORIZED: &str = "unauthorized";
    /// 403: the admin API is disabled on this node.
    pub const FORBIDDEN: &str = "forbidden";
}

/// An error response: a status and an [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    status: StatusCode,
    code: Cow<'static, str>,
    message: String,
}

impl HttpError {
    /// Any status and code. Prefer the named constructors.
    pub fn new(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        HttpError {
            status,
            code: code.into(),
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, codes::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, codes::NOT_FOUND, message)
    }

    pub fn payload_too_large(max_body_bytes: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            codes::PAYLOAD_TOO_LARGE,
            format!("request body exceeds {max_body_bytes} bytes"),
        )
    }

    /// 500 with a generic message. `detail` goes to the log only: it may name
    /// files, keys or internal state that clients have no business seeing.
    pub fn internal(detail: &str) -> Self {
        tracing::error!(detail, "internal error answering an HTTP request");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            codes::INTERNAL,
            "internal error; see the node log",
        )
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn code(&self) -> &str {
        &self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<ApiError> for HttpError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::BadRequest(m) => Self::bad_request(m),
            ApiError::Rejected { code, message } => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
            }
            ApiError::NotFound(m) => Self::not_found(m),
            ApiError::Unavailable(m) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, codes::UNAVAILABLE, m)
            }
            ApiError::Internal(detail) => Self::internal(&detail),
            ApiError::Unauthorized(m) => {
                Self::new(StatusCode::UNAUTHORIZED, codes::UNAUTHORIZED, m)
            }
            ApiError::Forbidden(m) => Self::new(StatusCode::FORBIDDEN, codes::FORBIDDEN, m),
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code.into_owned(),
            message: self.message,
        };
        (self.status, Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_map_to_statuses_and_codes() {
        let cases = [
            (ApiError::BadRequest("x".into()), 400, "bad_request", "x"),
            (
                ApiError::Rejected {
                    code: "stale_nonce".into(),
                    message: "nonce 3 < 5".into(),
                },
                422,
                "stale_nonce",
                "nonce 3 < 5",
            ),
            (ApiError::NotFound("gone".into()), 404, "not_found", "gone"),
            (
                ApiError::Unavailable("full".into()),
                503,
                "unavailable",
                "full",
            ),
        ];
        for (api, status, code, message) in cases {
            let e = HttpError::from(api);
            assert_eq!(e.status().as_u16(), status);
            assert_eq!(e.code(), code);
            assert_eq!(e.message(), message);
        }
    }

    #[test]
    fn internal_detail_is_not_returned() {
        let e = HttpError::from(ApiError::Internal("redb: /secret/path corrupt".into()));
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(e.code(), "internal");
        assert!(!e.message().contains("secret"));
    }
}
