//! The KServe v2 / Triton protocol over HTTP (axum): health, metadata, inference with
//! Triton's binary tensor data and classification extensions, the model repository,
//! statistics and model configuration extensions, and `/classify` for plain clients.
//! Every error is answered as `{"error": "<message>"}` with the status of
//! [`crate::status::of`].
//!
//! | Route | Answer |
//! |---|---|
//! | `GET /v2` | server metadata |
//! | `GET /v2/health/live`, `/v2/health/ready` | 200 or 503, empty body |
//! | `GET /v2/models/stats` | statistics of every model |
//! | `GET /v2/models/{m}[/versions/{v}]` | model metadata |
//! | `GET /v2/models/{m}[/versions/{v}]/ready` | 200 or 503, empty body |
//! | `GET /v2/models/{m}[/versions/{v}]/config` | model configuration |
//! | `GET /v2/models/{m}[/versions/{v}]/stats` | statistics of the model |
//! | `POST /v2/models/{m}[/versions/{v}]/infer` | inference |
//! | `POST /v2/models/{m}[/versions/{v}]/classify?top_k=K` | top classes of the image in the body |
//! | `POST /v2/repository/index` | repository index |
//! | `POST /v2/repository/models/{m}/load`, `/unload` | load or unload (explicit mode) |

mod error;
mod extract;
mod infer;
mod ui;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Json, Router};
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use ferroserve_runtime::infer::Timings;
use ferroserve_runtime::{Runtime, ServeError};

use error::ApiError;
use extract::{ModelRef, RequestBody};

/// The header of the binary tensor data extension giving the length of the JSON header
/// at the start of a request or response body.
pub const INFERENCE_HEADER_CONTENT_LENGTH: HeaderName =
    HeaderName::from_static("inference-header-content-length");

/// The W3C `Server-Timing` response header.
pub const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");

/// Limits on what a client may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Largest request body accepted; longer ones are answered with 413.
    pub max_request_bytes: usize,
}

impl HttpLimits {
    /// 64 MiB: a batch of 8 preprocessed 3×512×512 FP32 images fits, with room.
    pub const DEFAULT_MAX_REQUEST_BYTES: usize = 64 << 20;
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_request_bytes: Self::DEFAULT_MAX_REQUEST_BYTES,
        }
    }
}

/// What every handler shares.
#[derive(Clone)]
struct HttpState {
    runtime: Arc<Runtime>,
    limits: HttpLimits,
}

/// The KServe v2 / Triton HTTP API of `runtime`.
pub fn router(runtime: Arc<Runtime>, limits: HttpLimits) -> Router {
    let routes = Router::new()
        .route("/v2", get(server_metadata))
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready))
        .route("/v2/models/stats", get(all_statistics))
        .route("/v2/repository/index", post(repository_index))
        .route("/v2/repository/models/{model}/load", post(load_model))
        .route("/v2/repository/models/{model}/unload", post(unload_model));
    let routes = model_route(routes, "", get(model_metadata));
    let routes = model_route(routes, "/ready", get(model_ready));
    let routes = model_route(routes, "/config", get(model_config));
    let routes = model_route(routes, "/stats", get(model_statistics));
    let routes = model_route(routes, "/infer", post(infer));
    let routes = model_route(routes, "/classify", post(classify));
    let routes = routes.merge(ui::routes());
    let routes = routes
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limits.max_request_bytes));
    // The access log is a layer only when its target is on (the filter is set at start),
    // so that it costs the request path nothing otherwise.
    let routes = if tracing::enabled!(target: "access", tracing::Level::INFO) {
        routes.layer(axum::middleware::from_fn(access_log))
    } else {
        routes
    };
    routes.with_state(HttpState { runtime, limits })
}

/// One access-log line per request, at INFO under the target `access` (`--log
/// warn,access=info`): protocol, method, path, model, version, status, latency and the
/// client's `x-request-id`.
async fn access_log(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let started = std::time::Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let response = next.run(request).await;
    let (model, version) = model_of(&path);
    tracing::info!(
        target: "access",
        protocol = "http",
        %method,
        path,
        model,
        version,
        status = response.status().as_u16(),
        latency_us = started.elapsed().as_micros() as u64,
        request_id,
    );
    response
}

/// The model and version a `/v2/models/{m}[/versions/{v}]/...` path names, or empty.
fn model_of(path: &str) -> (&str, &str) {
    let mut parts = path.strip_prefix("/v2/models/").unwrap_or("").split('/');
    let model = parts.next().filter(|m| *m != "stats").unwrap_or("");
    let version = match parts.next() {
        Some("versions") => parts.next().unwrap_or(""),
        _ => "",
    };
    (model, version)
}

/// Routes `/v2/models/{model}{suffix}` and `/v2/models/{model}/versions/{version}{suffix}`
/// to the same handler.
fn model_route(
    routes: Router<HttpState>,
    suffix: &str,
    handler: MethodRouter<HttpState>,
) -> Router<HttpState> {
    routes
        .route(&format!("/v2/models/{{model}}{suffix}"), handler.clone())
        .route(
            &format!("/v2/models/{{model}}/versions/{{version}}{suffix}"),
            handler,
        )
}

/// `GET /metrics` in the Prometheus text format, for the separate metrics port.
pub fn metrics_router(handle: PrometheusHandle, runtime: Arc<Runtime>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(move || {
                runtime.publish_cache_metrics();
                let text = handle.render();
                async move {
                    (
                        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
                        text,
                    )
                }
            }),
        )
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
}

async fn unknown_route(method: Method, uri: Uri, headers: HeaderMap) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route for {method} {}", uri.path()),
    )
    .before_body(&headers)
}

async fn method_not_allowed(method: Method, uri: Uri, headers: HeaderMap) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} does not accept {method}", uri.path()),
    )
    .before_body(&headers)
}

/// 200 or 503 with an empty body, as the health APIs answer.
fn health(ok: bool) -> StatusCode {
    if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

async fn server_metadata() -> Json<Value> {
    Json(json!({
        "name": ferroserve_runtime::SERVER_NAME,
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": ferroserve_runtime::EXTENSIONS,
    }))
}

async fn live(State(state): State<HttpState>) -> StatusCode {
    health(state.runtime.live())
}

async fn ready(State(state): State<HttpState>) -> StatusCode {
    health(state.runtime.ready())
}

/// 200 when the model (version) is ready, else 503, unknown models included: the answer
/// is a yes or no, as Triton's (which says no with 400) and tritonclient's
/// `is_model_ready` (which checks for 200) treat it.
async fn model_ready(State(state): State<HttpState>, model: ModelRef) -> StatusCode {
    health(state.runtime.model_ready(&model.name, model.version))
}

async fn model_metadata(
    State(state): State<HttpState>,
    model: ModelRef,
) -> Result<Response, ApiError> {
    let metadata = state.runtime.model_metadata(&model.name, model.version)?;
    Ok(Json(metadata).into_response())
}

async fn model_config(
    State(state): State<HttpState>,
    model: ModelRef,
) -> Result<Response, ApiError> {
    let config = state.runtime.model_config(&model.name, model.version)?;
    Ok(Json(config.to_json()).into_response())
}

async fn all_statistics(State(state): State<HttpState>) -> Result<Response, ApiError> {
    let stats = state.runtime.statistics(None, None)?;
    Ok(Json(json!({ "model_stats": stats })).into_response())
}

async fn model_statistics(
    State(state): State<HttpState>,
    model: ModelRef,
) -> Result<Response, ApiError> {
    let stats = state.runtime.statistics(Some(&model.name), model.version)?;
    Ok(Json(json!({ "model_stats": stats })).into_response())
}

#[tracing::instrument(skip_all, fields(model = %model.name, version = ?model.version))]
async fn infer(
    State(state): State<HttpState>,
    model: ModelRef,
    headers: HeaderMap,
    RequestBody(body): RequestBody,
) -> Result<Response, ApiError> {
    let header_length = extract::inference_header_length(&headers)?;
    let (request, encoding) =
        infer::decode_request(&model.name, model.version, body, header_length)?;
    let response = state.runtime.infer(request).await?;
    let timing = server_timing(&response.timings);
    let mut encoded = infer::encode_response(&response, &encoding)?;
    encoded.headers_mut().insert(SERVER_TIMING, timing);
    Ok(encoded)
}

/// The `Server-Timing` header: where the request's time went in the server, in
/// milliseconds (the browser page shows it).
fn server_timing(timings: &Timings) -> HeaderValue {
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    let text = format!(
        "queue;dur={:.3}, preprocess;dur={:.3}, compute;dur={:.3}",
        ms(timings.queue),
        ms(timings.preprocess),
        ms(timings.compute)
    );
    HeaderValue::from_str(&text).expect("the header is ASCII")
}

/// `?top_k=K` of `/classify`.
#[derive(Debug, Deserialize)]
struct ClassifyQuery {
    top_k: Option<usize>,
}

/// Classes `/classify` returns unless `top_k` says otherwise, and the most it may ask.
const DEFAULT_TOP_K: usize = 5;
const MAX_TOP_K: usize = 1000;

#[tracing::instrument(skip_all, fields(model = %model.name, version = ?model.version))]
async fn classify(
    State(state): State<HttpState>,
    model: ModelRef,
    query: Result<Query<ClassifyQuery>, axum::extract::rejection::QueryRejection>,
    RequestBody(image): RequestBody,
) -> Result<Response, ApiError> {
    let Query(query) =
        query.map_err(|e| ApiError::invalid(format!("{}: expected ?top_k=K", e.body_text())))?;
    let top_k = query.top_k.unwrap_or(DEFAULT_TOP_K);
    if !(1..=MAX_TOP_K).contains(&top_k) {
        return Err(ApiError::invalid(format!(
            "top_k is {top_k}: expected 1 to {MAX_TOP_K}"
        )));
    }
    if image.is_empty() {
        return Err(ApiError::invalid(
            "the body is empty: expected an encoded image (JPEG, PNG, ...)",
        ));
    }
    let classified = state
        .runtime
        .classify_image(&model.name, model.version, image, top_k)
        .await?;
    let mut response = Json(classified.classes).into_response();
    response
        .headers_mut()
        .insert(SERVER_TIMING, server_timing(&classified.timings));
    Ok(response)
}

/// A body that may be empty or a JSON object; empty reads as `{}`.
fn optional_json<T: DeserializeOwned + Default>(body: &[u8], what: &str) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    Ok(extract::json_object(body, what)?)
}

/// `$repository_index_request`.
#[derive(Debug, Default, Deserialize)]
struct IndexRequest {
    #[serde(default)]
    ready: bool,
}

async fn repository_index(
    State(state): State<HttpState>,
    RequestBody(body): RequestBody,
) -> Result<Response, ApiError> {
    let request: IndexRequest = optional_json(&body, "repository index request")?;
    let mut entries = state.runtime.repository_index()?;
    if request.ready {
        entries.retain(|entry| entry.state == "READY");
    }
    Ok(Json(entries).into_response())
}

/// `$repository_load_request` and `$repository_unload_request`.
#[derive(Debug, Default, Deserialize)]
struct RepositoryRequest {
    #[serde(default)]
    parameters: Map<String, Value>,
}

async fn load_model(
    State(state): State<HttpState>,
    model: ModelRef,
    RequestBody(body): RequestBody,
) -> Result<StatusCode, ApiError> {
    let request: RepositoryRequest = optional_json(&body, "load request")?;
    // A configuration or files sent with the request would change what is loaded;
    // loading the repository's own instead would answer a different question.
    if let Some(key) = request
        .parameters
        .keys()
        .find(|k| *k == "config" || k.starts_with("file:"))
    {
        return Err(ServeError::Unsupported(format!(
            "load parameter '{key}' is not supported: ferroserve loads models only from the repository"
        ))
        .into());
    }
    state.runtime.load_model(&model.name).await?;
    Ok(StatusCode::OK)
}

async fn unload_model(
    State(state): State<HttpState>,
    model: ModelRef,
    RequestBody(body): RequestBody,
) -> Result<StatusCode, ApiError> {
    // `unload_dependents` needs no action: no model depends on another.
    let _: RepositoryRequest = optional_json(&body, "unload request")?;
    state.runtime.unload_model(&model.name).await?;
    Ok(StatusCode::OK)
}
