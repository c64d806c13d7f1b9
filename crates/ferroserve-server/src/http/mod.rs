//! The KServe v2 / Triton protocol over HTTP (axum): health, metadata, inference with
//! Triton's binary tensor data and classification extensions, the model repository,
//! statistics and model configuration extensions, and `/classify` for plain clients.
//! Every error is answered as `{"error": "<message>"}` with the status of
//! [`crate::status::of`].
//!
//! | Route | Answer |
//! |---|---|
//! | `GET /v2` | server metadata |
//! | `GET /v2/health/live`, `/v2/health/ready` | 200 or 503, `{"live": true}` / `{"ready": true}` |
//! | `GET /v2/models/stats` | statistics of every model |
//! | `GET /v2/models/{m}[/versions/{v}]` | model metadata |
//! | `GET /v2/models/{m}[/versions/{v}]/ready` | 200, or 400 when not ready (unknown included) |
//! | `GET /v2/models/{m}[/versions/{v}]/config` | model configuration |
//! | `GET /v2/models/{m}[/versions/{v}]/stats` | statistics of the model |
//! | `POST /v2/models/{m}[/versions/{v}]/infer` | inference |
//! | `POST /v2/models/{m}[/versions/{v}]/classify?top_k=K` | top classes of the image in the body |
//! | `POST /v2/repository/index` | repository index |
//! | `POST /v2/repository/models/{m}/load`, `/unload` | load or unload (explicit mode) |
//! | `GET /v2/{systemsharedmemory,cudasharedmemory}/status`, `POST .../unregister` | `[]`, 200: no region is ever registered |

mod error;
mod extract;
mod infer;
mod ui;

/// The decoder of inference request bodies, public for the fuzz targets (fuzz/).
pub use infer::{decode_request, OutputEncoding};

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Json, Router};
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::access::{AccessRules, ApiGroup};
use crate::traces::{Ended, RequestSpan, Served, Traces};
use base64::Engine as _;
use ferroserve_runtime::infer::{InferRequest, Timings};
use ferroserve_runtime::{LoadParameters, Runtime, ServeError};

use error::ApiError;
use extract::{ModelRef, RequestBody, SameOrigin, Traced, WithRoom};

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
    /// Longest pause while a request body arrives; a slower body is answered with 408.
    pub body_timeout: std::time::Duration,
}

impl HttpLimits {
    /// 64 MiB: a batch of 8 preprocessed 3×512×512 FP32 images fits, with room.
    pub const DEFAULT_MAX_REQUEST_BYTES: usize = 64 << 20;
    pub const DEFAULT_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_request_bytes: Self::DEFAULT_MAX_REQUEST_BYTES,
            body_timeout: Self::DEFAULT_BODY_TIMEOUT,
        }
    }
}

/// What every handler shares.
#[derive(Clone)]
struct HttpState {
    runtime: Arc<Runtime>,
    limits: HttpLimits,
    access: Arc<AccessRules>,
    traces: Traces,
}

/// The KServe v2 / Triton HTTP API of `runtime`, under the `access` rules, inference
/// requests traced to `traces`.
pub fn router(
    runtime: Arc<Runtime>,
    limits: HttpLimits,
    access: Arc<AccessRules>,
    traces: Traces,
) -> Router {
    let routes = Router::new()
        .route("/v2", get(server_metadata))
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready))
        .route("/v2/models/stats", get(all_statistics))
        .route("/v2/repository/index", post(repository_index))
        .route("/v2/repository/models/{model}/load", post(load_model))
        .route("/v2/repository/models/{model}/unload", post(unload_model));
    let routes = shared_memory_routes(routes, "systemsharedmemory");
    let routes = shared_memory_routes(routes, "cudasharedmemory");
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
        .layer(DefaultBodyLimit::max(limits.max_request_bytes))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            limits.body_timeout,
        ));
    // Checked per request only when some API is restricted: an open server pays nothing.
    let routes = if access.restricts() {
        routes.layer(axum::middleware::from_fn_with_state(access.clone(), guard))
    } else {
        routes
    };
    let routes = if access.cors_origins.is_empty() {
        routes
    } else {
        routes.layer(cors(&access))
    };
    // The access log is a layer only when its target is on (the filter is set at start),
    // so that it costs the request path nothing otherwise.
    let routes = if tracing::enabled!(target: "access", tracing::Level::INFO) {
        routes.layer(axum::middleware::from_fn(access_log))
    } else {
        routes
    };
    routes.with_state(HttpState {
        runtime,
        limits,
        access,
        traces,
    })
}

/// The keys of restricted APIs, before anything of the request's body is read: 401
/// without the key.
async fn guard(
    State(access): State<Arc<AccessRules>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Some(group) = ApiGroup::of_http_path(request.uri().path()) {
        if let Err(denied) = access.check(group, request.headers()) {
            return ApiError::new(StatusCode::UNAUTHORIZED, denied.to_string())
                .before_body(request.headers())
                .into_response();
        }
    }
    next.run(request).await
}

/// Cross-origin requests from the pages of `--cors-allow-origin`.
fn cors(access: &AccessRules) -> tower_http::cors::CorsLayer {
    use tower_http::cors::{AllowOrigin, Any, CorsLayer};
    let rules = access.clone();
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin, _| {
            rules.allows_origin(origin.as_bytes())
        }))
        .allow_methods(Any)
        .allow_headers(Any)
        .expose_headers([INFERENCE_HEADER_CONTENT_LENGTH, SERVER_TIMING])
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

/// Triton's shared-memory extension routes under `/v2/{kind}`: no region is ever
/// registered, so the status is an empty list and unregistering succeeds (clients
/// unregister before they start); registering is refused as unsupported.
fn shared_memory_routes(routes: Router<HttpState>, kind: &str) -> Router<HttpState> {
    routes
        .route(
            &format!("/v2/{kind}/status"),
            get(|| async { Json(json!([])) }),
        )
        .route(
            &format!("/v2/{kind}/region/{{region}}/status"),
            get(
                |axum::extract::Path(region): axum::extract::Path<String>| async move {
                    ApiError::invalid(format!(
                        "Unable to find shared memory region: '{region}' is not registered"
                    ))
                },
            ),
        )
        .route(&format!("/v2/{kind}/unregister"), post(|| async {}))
        .route(
            &format!("/v2/{kind}/region/{{region}}/unregister"),
            post(|| async {}),
        )
        .route(
            &format!("/v2/{kind}/region/{{region}}/register"),
            post(|| async {
                ApiError::from(ServeError::Unsupported(
                    "shared memory is not supported: send tensors in the request body".into(),
                ))
            }),
        )
}

/// What a connection over the connection limit is served: the health routes, so that
/// probes still get through; anything else is 503.
pub fn health_router(runtime: Arc<Runtime>) -> Router {
    Router::new()
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready))
        .fallback(|| async {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server is at its connection limit; retry later",
            )
            .closing_connection()
        })
        .with_state(HttpState {
            runtime,
            limits: HttpLimits::default(),
            access: Arc::default(),
            traces: Traces::off(),
        })
}

/// `GET /metrics` in the Prometheus text format, for the separate metrics port: the
/// server's metrics and the process's (`process_resident_memory_bytes`,
/// `process_open_fds`, `process_cpu_seconds_total`, ...).
pub fn metrics_router(handle: PrometheusHandle, runtime: Arc<Runtime>) -> Router {
    let process = metrics_process::Collector::default();
    process.describe();
    Router::new()
        .route(
            "/metrics",
            get(move || {
                runtime.publish_cache_metrics();
                process.collect();
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

/// 200 or 503 with `{"<what>": true|false}`, as the Open Inference Protocol's health
/// responses read (the KServe SDK parses the body; Kubernetes probes read the status).
fn health(what: &str, ok: bool) -> Response {
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(json!({ what: ok }))).into_response()
}

async fn server_metadata() -> Json<Value> {
    Json(json!({
        "name": ferroserve_runtime::SERVER_NAME,
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": ferroserve_runtime::EXTENSIONS,
    }))
}

async fn live(State(state): State<HttpState>) -> Response {
    health("live", state.runtime.live())
}

async fn ready(State(state): State<HttpState>) -> Response {
    health("ready", state.runtime.ready())
}

/// 200 `{"name", "ready": true}` when the model (version) is ready; otherwise 400 with
/// `"ready": false` and the reason, unknown models included. The protocol reads any 4xx
/// as "not ready", Triton answers 400, and tritonclient's `is_model_ready` checks for 200.
async fn model_ready(State(state): State<HttpState>, model: ModelRef) -> Response {
    match state.runtime.model_readiness(&model.name, model.version) {
        Ok(()) => Json(json!({ "name": model.name, "ready": true })).into_response(),
        Err(why) => (
            StatusCode::BAD_REQUEST,
            Json(json!({ "name": model.name, "ready": false, "error": why.to_string() })),
        )
            .into_response(),
    }
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
    Traced(span): Traced,
    headers: HeaderMap,
    WithRoom(model, body): WithRoom,
) -> Result<Response, ApiError> {
    let answer = async {
        let (request, encoding) = match extract::inference_header_length(&headers)? {
            Some(0) => {
                let input = state.runtime.raw_input(&model.name, model.version)?;
                infer::decode_raw_request(&model.name, model.version, body, input)?
            }
            header_length => decode_off_the_runtime(&model, body, header_length).await?,
        };
        let response = state.runtime.infer(request).await?;
        let mut encoded = infer::encode_response(&response, &encoding)?;
        let timing = server_timing(&response.timings);
        encoded.headers_mut().insert(SERVER_TIMING, timing);
        Ok((encoded, response))
    }
    .await;
    if let Some(span) = span {
        let served = answer.as_ref().ok().map(|(_, response)| {
            let served = Served {
                id: &response.id,
                rows: response.rows,
                timings: response.timings,
            };
            (response.version, served)
        });
        end_span(span, INFER_SPAN, &model, &answer, served);
    }
    answer.map(|(encoded, _)| encoded)
}

/// The span names of the traced routes.
const INFER_SPAN: &str = "POST /v2/models/{model}/infer";
const CLASSIFY_SPAN: &str = "POST /v2/models/{model}/classify";

/// Ends the span `name` of a request for `model` answered with `answer`, `served` by the
/// given version when it succeeded.
fn end_span<T>(
    span: RequestSpan,
    name: &'static str,
    model: &ModelRef,
    answer: &Result<(Response, T), ApiError>,
    served: Option<(u64, Served<'_>)>,
) {
    let (status, error) = match answer {
        Ok((response, _)) => (response.status(), None),
        Err(error) => (error.status(), Some(error.message())),
    };
    let (version, served) = match served {
        Some((version, served)) => (Some(version), Some(served)),
        None => (model.version, None),
    };
    span.end(Ended {
        name,
        model: &model.name,
        version,
        status: i64::from(status.as_u16()),
        error: error.filter(|_| status.is_server_error()),
        served,
    });
}

/// JSON headers larger than this are read on a blocking thread: a big JSON tensor must
/// not hold up the async runtime's threads, which answer health checks too.
const LARGE_JSON_BYTES: usize = 64 * 1024;

/// Decodes an inference request, on a blocking thread when its JSON header is large.
async fn decode_off_the_runtime(
    model: &ModelRef,
    body: bytes::Bytes,
    header_length: Option<usize>,
) -> Result<(InferRequest, infer::OutputEncoding), ServeError> {
    if header_length.unwrap_or(body.len()) <= LARGE_JSON_BYTES {
        return infer::decode_request(&model.name, model.version, body, header_length);
    }
    let (name, version) = (model.name.clone(), model.version);
    tokio::task::spawn_blocking(move || infer::decode_request(&name, version, body, header_length))
        .await
        .map_err(|_| ServeError::WorkerStopped)?
}

/// The `Server-Timing` header: where the request's time went in the server, in
/// milliseconds (the browser page shows it).
fn server_timing(timings: &Timings) -> HeaderValue {
    use std::io::Write as _;
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    // Written on the stack: three durations of at most 24 characters each fit.
    let mut text = [0u8; 160];
    let capacity = text.len();
    let mut rest = &mut text[..];
    let written = write!(
        rest,
        "queue;dur={:.3}, preprocess;dur={:.3}, compute;dur={:.3}",
        ms(timings.queue),
        ms(timings.preprocess),
        ms(timings.compute)
    );
    let length = capacity - rest.len();
    match written {
        Ok(()) => HeaderValue::from_bytes(&text[..length]).expect("the header is ASCII"),
        Err(_) => HeaderValue::from_static(""),
    }
}

/// `?top_k=K` of `/classify` (other parameters are ignored); `None` when absent. Read
/// from the borrowed query string: nothing is copied unless it is percent-encoded.
fn top_k(query: Option<&str>) -> Result<Option<usize>, ApiError> {
    let Some(query) = query else {
        return Ok(None);
    };
    let mut top_k = None;
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        if key == "top_k" {
            let k = value
                .trim()
                .parse()
                .map_err(|_| ApiError::invalid("top_k is not a whole number: expected ?top_k=K"))?;
            top_k = Some(k);
        }
    }
    Ok(top_k)
}

/// Classes `/classify` returns unless `top_k` says otherwise, and the most it may ask.
const DEFAULT_TOP_K: usize = 5;
const MAX_TOP_K: usize = 1000;

#[tracing::instrument(skip_all, fields(model = %model.name, version = ?model.version))]
async fn classify(
    State(state): State<HttpState>,
    Traced(span): Traced,
    uri: Uri,
    WithRoom(model, image): WithRoom,
) -> Result<Response, ApiError> {
    let answer = async {
        let top_k = top_k(uri.query())?.unwrap_or(DEFAULT_TOP_K);
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
        // Serialized into a buffer sized for the classes, not grown from axum's 128 bytes.
        let mut body = Vec::with_capacity(16 + 96 * classified.classes.len());
        serde_json::to_writer(&mut body, &classified.classes).map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the classes: {e}"),
            )
        })?;
        let mut response = ([(CONTENT_TYPE, "application/json")], body).into_response();
        response
            .headers_mut()
            .insert(SERVER_TIMING, server_timing(&classified.timings));
        Ok((response, (classified.version, classified.timings)))
    }
    .await;
    if let Some(span) = span {
        let served = answer.as_ref().ok().map(|&(_, (version, timings))| {
            let served = Served {
                id: "",
                rows: 1,
                timings,
            };
            (version, served)
        });
        end_span(span, CLASSIFY_SPAN, &model, &answer, served);
    }
    answer.map(|(response, _)| response)
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
    _: SameOrigin,
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
    _: SameOrigin,
    RequestBody(body): RequestBody,
) -> Result<StatusCode, ApiError> {
    let request: RepositoryRequest = optional_json(&body, "load request")?;
    let parameters = load_parameters(&model.name, &request.parameters)?;
    state
        .runtime
        .load_model_with(&model.name, parameters)
        .await?;
    Ok(StatusCode::OK)
}

/// The `config` parameter (a JSON string) and the `file:<path>` parameters (base64
/// strings) of a load request; other parameters are ignored.
fn load_parameters(
    model: &str,
    parameters: &Map<String, Value>,
) -> Result<LoadParameters, ServeError> {
    let mut given = LoadParameters::default();
    for (key, value) in parameters {
        let text = || {
            value.as_str().ok_or_else(|| {
                ServeError::InvalidRequest(format!(
                    "load parameter '{key}' must be a string, got {value}"
                ))
            })
        };
        if key == "config" {
            given.config = Some(crate::load::config(model, text()?)?);
        } else if let Some(path) = key.strip_prefix("file:") {
            let contents = base64::engine::general_purpose::STANDARD
                .decode(text()?)
                .map_err(|e| {
                    ServeError::InvalidRequest(format!(
                        "load parameter '{key}' must be the file's contents in base64: {e}"
                    ))
                })?;
            given.files.push((path.to_string(), contents));
        }
    }
    Ok(given)
}

async fn unload_model(
    State(state): State<HttpState>,
    model: ModelRef,
    _: SameOrigin,
    RequestBody(body): RequestBody,
) -> Result<StatusCode, ApiError> {
    // `unload_dependents` needs no action: an ensemble's steps are models of their own,
    // loaded until they are unloaded.
    let _: RepositoryRequest = optional_json(&body, "unload request")?;
    state.runtime.unload_model(&model.name).await?;
    Ok(StatusCode::OK)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn server_timing_names_each_stage_in_milliseconds() {
        let timings = Timings {
            queue: Duration::from_micros(1500),
            preprocess: Duration::from_millis(2),
            compute: Duration::MAX,
            ..Timings::default()
        };
        let header = server_timing(&timings);
        let text = header.to_str().unwrap();
        assert!(
            text.starts_with("queue;dur=1.500, preprocess;dur=2.000, compute;dur=18446744073709"),
            "{text}"
        );
    }

    #[test]
    fn top_k_is_read_from_the_query_string() {
        assert_eq!(top_k(None).unwrap(), None);
        assert_eq!(top_k(Some("other=1")).unwrap(), None);
        assert_eq!(top_k(Some("top_k=3")).unwrap(), Some(3));
        assert_eq!(top_k(Some("a=b&top_k=%37")).unwrap(), Some(7));
        assert!(top_k(Some("top_k=many")).is_err());
        assert!(top_k(Some("top_k=-1")).is_err());
    }
}
