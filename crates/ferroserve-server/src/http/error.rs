//! The one error answer of the HTTP front end: a status and `{"error": "<message>"}`.

use axum::response::{IntoResponse, Response};
use axum::Json;
use http::header::{CONNECTION, CONTENT_LENGTH, RETRY_AFTER, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderValue, StatusCode};

use ferroserve_runtime::ServeError;

/// A request that failed, as the client sees it. Errors of the runtime take their status
/// from [`crate::status::of`]; the few that only HTTP knows of (body too large,
/// unsupported content coding, unknown route) name theirs.
#[derive(Debug)]
pub(super) struct ApiError {
    status: StatusCode,
    message: String,
    /// Answer with `Connection: close`: the request body was not read to its end, so
    /// the connection cannot carry another request.
    close: bool,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            close: false,
        }
    }

    /// Closes the connection after this answer, which is sent before the body of the
    /// request it answers was read.
    pub(super) fn closing_connection(mut self) -> Self {
        self.close = true;
        self
    }

    /// Closes the connection after this answer if the request it answers, with
    /// `headers`, has a body; for answers sent before that body is read.
    pub(super) fn before_body(self, headers: &HeaderMap) -> Self {
        let has_body = headers.contains_key(TRANSFER_ENCODING)
            || headers
                .get(CONTENT_LENGTH)
                .is_some_and(|length| length.as_bytes() != b"0");
        if has_body {
            self.closing_connection()
        } else {
            self
        }
    }

    pub(super) fn status(&self) -> StatusCode {
        self.status
    }

    pub(super) fn message(&self) -> &str {
        &self.message
    }

    /// A malformed request: 400, like [`ServeError::InvalidRequest`].
    pub(super) fn invalid(message: impl Into<String>) -> Self {
        ServeError::InvalidRequest(message.into()).into()
    }
}

impl From<ServeError> for ApiError {
    fn from(error: ServeError) -> Self {
        ApiError {
            status: crate::status::of(&error).0,
            message: error.to_string(),
            close: false,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(serde_json::json!({ "error": self.message }));
        let mut response = (self.status, body).into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            // A queue drains in well under a second; clients that honour this back off.
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if self.close {
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}
