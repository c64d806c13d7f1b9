//! Extractors that turn the parts of a request every route shares into checked values,
//! answering malformed ones with an [`ApiError`].

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::RequestExt as _;
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH};
use http::request::Parts;
use http::StatusCode;
use serde::Deserialize;

use super::error::ApiError;
use super::HttpState;
use crate::access::ApiGroup;
use crate::traces::RequestSpan;
use ferroserve_runtime::ServeError;

/// The model a route names: `/v2/models/{model}[/versions/{version}]/...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ModelRef {
    pub name: String,
    /// `None` serves the latest ready version.
    pub version: Option<u64>,
}

impl<S: Send + Sync> FromRequestParts<S> for ModelRef {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let model = ModelRef::from_path(parts, state).await;
        model.map_err(|e| e.before_body(&parts.headers))
    }
}

impl ModelRef {
    async fn from_path<S: Send + Sync>(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        // The router's own (percent-decoded) parameters, borrowed: no map of owned strings.
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::invalid(rejection.body_text()))?;
        let mut name = None;
        let mut version = None;
        for (key, value) in &params {
            match key {
                "model" => name = Some(value.to_owned()),
                "version" => version = Some(parse_version(value)?),
                _ => {}
            }
        }
        let name = name.ok_or_else(|| ApiError::invalid("the route names no model"))?;
        Ok(ModelRef { name, version })
    }
}

/// The model a route names and the request's body ([`RequestBody`]), once there is room
/// in the model's queue: room is checked before the body is read, so that an overloaded
/// model answers 429 at once instead of after reading (and parsing) a large body.
/// Unknown models and the like are answered after the body.
pub(super) struct WithRoom(pub ModelRef, pub Bytes);

/// The largest body a refused HTTP/1 request may still send on a connection that is kept
/// open: the 429 goes out at once, and the body that follows is read and dropped, so that
/// the client's next request needs no new connection. A larger one (or one of unknown
/// length) closes the connection after the answer, as before.
const DRAIN_BYTES: u64 = 4 << 20;
/// The longest such a body may take to arrive.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(2);

impl FromRequest<HttpState> for WithRoom {
    type Rejection = ApiError;

    async fn from_request(mut request: Request, state: &HttpState) -> Result<Self, ApiError> {
        let model = request
            .extract_parts_with_state::<ModelRef, _>(state)
            .await?;
        if let Err(full @ (ServeError::QueueFull(_) | ServeError::QueueTooLong { .. })) =
            state.runtime.has_room(&model.name, model.version)
        {
            return Err(refuse_before_body(ApiError::from(full), request));
        }
        let RequestBody(body) = RequestBody::from_request(request, state).await?;
        Ok(WithRoom(model, body))
    }
}

/// `error`, answered before the body of `request` is read. An HTTP/1 body of known
/// length up to [`DRAIN_BYTES`] is read and dropped after the answer, keeping the
/// connection; otherwise the connection closes after the answer.
fn refuse_before_body(error: ApiError, request: Request) -> ApiError {
    let length = declared_length(request.headers());
    let drainable = request.version() < http::Version::HTTP_2
        && !request
            .headers()
            .contains_key(http::header::TRANSFER_ENCODING)
        && length.is_some_and(|length| length <= DRAIN_BYTES);
    if !drainable {
        return error.before_body(request.headers());
    }
    let mut body = request.into_body();
    tokio::spawn(async move {
        use http_body_util::BodyExt as _;
        let drain = async { while let Some(Ok(_)) = body.frame().await {} };
        let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
    });
    error
}

/// The span of a traced request, begun before anything else of the request is read;
/// `None` when traces are off.
pub(super) struct Traced(pub Option<RequestSpan>);

impl FromRequestParts<HttpState> for Traced {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &HttpState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Traced(state.traces.begin("http", &parts.headers)))
    }
}

/// Refuses a state-changing request from a browser page of another origin (403), before
/// its body is read; see [`crate::access`].
pub(super) struct SameOrigin;

impl FromRequestParts<HttpState> for SameOrigin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &HttpState) -> Result<Self, ApiError> {
        let group = ApiGroup::of_http_path(parts.uri.path()).unwrap_or(ApiGroup::Metadata);
        state
            .access
            .check_origin(group, &parts.method, &parts.headers)
            .map_err(|denied| {
                ApiError::new(StatusCode::FORBIDDEN, denied.to_string()).before_body(&parts.headers)
            })?;
        Ok(SameOrigin)
    }
}

/// A model version as written in a URL: a non-negative integer. Triton answers a
/// version that is not one with 400, and so do we.
pub(super) fn parse_version(text: &str) -> Result<u64, ApiError> {
    text.parse().map_err(|_| {
        ApiError::invalid(format!(
            "model version '{text}' is not a version number: expected a non-negative integer such as 1"
        ))
    })
}

/// The whole request body, at most [`super::HttpLimits::max_request_bytes`] long and not
/// compressed (`Content-Encoding` other than `identity` is refused with 415).
pub(super) struct RequestBody(pub Bytes);

impl FromRequest<HttpState> for RequestBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &HttpState) -> Result<Self, ApiError> {
        if let Some(coding) = request.headers().get(CONTENT_ENCODING) {
            let coding = String::from_utf8_lossy(coding.as_bytes());
            if !coding.trim().eq_ignore_ascii_case("identity") {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    format!("compressed request bodies (Content-Encoding: {coding}) are not supported; send the body uncompressed"),
                )
                .closing_connection());
            }
        }
        let limit = state.limits.max_request_bytes;
        let too_large = || {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body is larger than the limit of {limit} bytes"),
            )
            .closing_connection()
        };
        if declared_length(request.headers()).is_some_and(|length| length > limit as u64) {
            return Err(too_large());
        }
        match Bytes::from_request(request, state).await {
            Ok(body) => Ok(RequestBody(body)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(too_large())
            }
            Err(rejection) if timed_out(&rejection) => Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "the request body stopped arriving: no data within the body timeout",
            )
            .closing_connection()),
            Err(rejection) => {
                Err(ApiError::new(rejection.status(), rejection.body_text()).closing_connection())
            }
        }
    }
}

/// The body length `Content-Length` declares; `None` when absent or not a number.
fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// Whether reading the body failed because it stopped arriving (the body timeout).
fn timed_out(rejection: &axum::extract::rejection::BytesRejection) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(rejection);
    while let Some(error) = source {
        if error.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        source = error.source();
    }
    false
}

/// The `Inference-Header-Content-Length` header of the binary tensor data extension:
/// how many leading bytes of the body are the JSON header. `None` when absent.
pub(super) fn inference_header_length(
    headers: &http::HeaderMap,
) -> Result<Option<usize>, ApiError> {
    let Some(value) = headers.get(super::INFERENCE_HEADER_CONTENT_LENGTH) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "header {}: expected the length of the JSON header in bytes, got '{}'",
                super::INFERENCE_HEADER_CONTENT_LENGTH,
                String::from_utf8_lossy(value.as_bytes())
            ))
        })
}

/// Parses a body that must hold one JSON object (serde would also take an array for a
/// struct). `what` names the body in the error.
pub(super) fn json_object<'a, T: Deserialize<'a>>(
    body: &'a [u8],
    what: &str,
) -> Result<T, ServeError> {
    let malformed =
        |reason: String| ServeError::InvalidRequest(format!("malformed {what} JSON: {reason}"));
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => serde_json::from_slice(body).map_err(|e| malformed(e.to_string())),
        Some(_) => Err(malformed("expected a JSON object".into())),
        None => Err(malformed("the body is empty".into())),
    }
}
