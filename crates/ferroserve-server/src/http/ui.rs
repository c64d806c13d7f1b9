//! The browser's view of the server, all of it embedded in the binary and served
//! offline: the page at `/` (try a model, the live panel, the models), its assets under
//! `/ui/`, the OpenAPI document of the HTTP API at `/v2/openapi.json` with its docs page
//! at `/v2/docs` (Redoc, vendored), and `GET /v2/ui/live`, the server's own measurements
//! as JSON for the live panel (the metrics port is another origin, which the page cannot
//! read). Nothing here changes the server: no route of the page loads or unloads models.
//!
//! | Route | Answer |
//! |---|---|
//! | `GET /` | the page |
//! | `GET /ui/{file}` | the page's and the docs page's scripts and styles |
//! | `GET /ui/samples/{name}` | a sample photo to classify |
//! | `GET /v2/openapi.json` | the OpenAPI 3 document of the HTTP API |
//! | `GET /v2/docs` | the OpenAPI document, rendered |
//! | `GET /v2/ui/live` | per model: requests, recent latency, queue, cache, scheduling |

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use http::StatusCode;
use serde::Serialize;

use ferroserve_runtime::infer::RepositoryEntry;
use ferroserve_runtime::recent::RecentSummary;
use ferroserve_runtime::registry::ServedModel;

use super::error::ApiError;
use super::HttpState;

/// The page's policy: everything from this origin, no inline script or style, images
/// also from the files the user picks (`blob:`).
const PAGE_POLICY: &str = "default-src 'self'; img-src 'self' blob:; object-src 'none'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The docs page's policy: Redoc sets styles inline and runs its search in a worker it
/// creates from a `blob:`.
const DOCS_POLICY: &str = "default-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

const HTML: &str = "text/html; charset=utf-8";
const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JPEG: &str = "image/jpeg";
const SVG: &str = "image/svg+xml";

const INDEX_HTML: &str = include_str!("../../assets/index.html");
const DOCS_HTML: &str = include_str!("../../assets/docs.html");
const OPENAPI_JSON: &str = include_str!("../../assets/openapi.json");

/// The files under `/ui/`: name, content type, contents.
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "page.js",
        JAVASCRIPT,
        include_bytes!("../../assets/page.js"),
    ),
    ("page.css", CSS, include_bytes!("../../assets/page.css")),
    (
        "docs.js",
        JAVASCRIPT,
        include_bytes!("../../assets/docs.js"),
    ),
    (
        "favicon.svg",
        SVG,
        include_bytes!("../../assets/favicon.svg"),
    ),
    (
        "redoc.standalone.js",
        JAVASCRIPT,
        include_bytes!("../../assets/vendor/redoc/redoc.standalone.js"),
    ),
];

/// The sample photos under `/ui/samples/`, the test suite's own.
const SAMPLES: &[(&str, &[u8])] = &[
    (
        "cat.jpg",
        include_bytes!("../../../../tests/data/images/cat.jpg"),
    ),
    (
        "coffee.jpg",
        include_bytes!("../../../../tests/data/images/coffee.jpg"),
    ),
    (
        "motorcycle.jpg",
        include_bytes!("../../../../tests/data/images/motorcycle.jpg"),
    ),
];

/// The windows of the live view's latency summaries.
const LAST_MINUTE: Duration = Duration::from_secs(60);
const LAST_5_MINUTES: Duration = Duration::from_secs(300);

/// The page, its assets, the OpenAPI document and its docs page, and the live view.
pub(super) fn routes() -> Router<HttpState> {
    Router::new()
        .route("/", get(page))
        .route("/ui/{file}", get(file))
        .route("/ui/samples/{name}", get(sample))
        .route("/v2/openapi.json", get(openapi))
        .route("/v2/docs", get(docs))
        .route("/v2/ui/live", get(live_view))
}

/// A response of embedded `body`: its type, never sniffed, revalidated by the browser
/// so that a new binary's page is seen at once; `policy` for documents.
fn embedded(content_type: &'static str, policy: Option<&'static str>, body: Body) -> Response {
    let mut response = (
        [
            (CONTENT_TYPE, content_type),
            (X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response();
    if let Some(policy) = policy {
        response.headers_mut().insert(
            CONTENT_SECURITY_POLICY,
            http::HeaderValue::from_static(policy),
        );
    }
    response
}

async fn page() -> Response {
    embedded(HTML, Some(PAGE_POLICY), Body::from(INDEX_HTML))
}

async fn docs() -> Response {
    embedded(HTML, Some(DOCS_POLICY), Body::from(DOCS_HTML))
}

async fn openapi() -> Response {
    embedded("application/json", None, Body::from(OPENAPI_JSON))
}

async fn file(Path(name): Path<String>) -> Result<Response, ApiError> {
    let (_, content_type, contents) = FILES
        .iter()
        .find(|(file, _, _)| *file == name)
        .ok_or_else(|| not_found("/ui/", &name))?;
    Ok(embedded(content_type, None, Body::from(*contents)))
}

async fn sample(Path(name): Path<String>) -> Result<Response, ApiError> {
    let (_, contents) = SAMPLES
        .iter()
        .find(|(sample, _)| *sample == name)
        .ok_or_else(|| not_found("/ui/samples/", &name))?;
    Ok(embedded(JPEG, None, Body::from(*contents)))
}

fn not_found(folder: &str, name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no file {folder}{name}: the server embeds no such file"),
    )
}

/// What `GET /v2/ui/live` answers.
#[derive(Debug, Serialize)]
struct LiveView {
    /// Whether the server is ready (start-up loading done, not draining).
    ready: bool,
    /// Every loaded model version.
    models: Vec<ModelView>,
    /// The repository index: every model with its state, the unavailable ones too.
    repository: Vec<RepositoryEntry>,
}

/// One loaded model version in the live view.
#[derive(Debug, Serialize)]
struct ModelView {
    name: String,
    version: String,
    /// Whether `/classify` takes images for it (its configuration has `preprocess.*`).
    classifies: bool,
    /// Requests finished, successful and failed, since the model was loaded.
    success: u64,
    fail: u64,
    /// Jobs waiting in the queue now.
    queue_depth: usize,
    last_minute: Window,
    last_5_minutes: Window,
    cache: CacheView,
    scheduling: SchedulingView,
}

/// The successful requests of a recent window.
#[derive(Debug, Serialize)]
struct Window {
    /// The seconds the window covers (less than its length while the model is young).
    seconds: f64,
    requests: u64,
    /// Requests per second over the window.
    throughput: f64,
    /// Latency quantiles in milliseconds, `null` without requests.
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
}

impl From<RecentSummary> for Window {
    fn from(summary: RecentSummary) -> Self {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        Window {
            seconds: summary.seconds,
            requests: summary.requests,
            throughput: summary.throughput(),
            p50_ms: summary.p50.map(ms),
            p99_ms: summary.p99.map(ms),
        }
    }
}

/// The response cache as the model uses it.
#[derive(Debug, Serialize)]
struct CacheView {
    /// Whether the configuration opts in (`response_cache { enable: true }`).
    enabled: bool,
    hits: u64,
    misses: u64,
    /// Hits over lookups, `null` before the first lookup.
    hit_ratio: Option<f64>,
}

/// How the model's jobs run now: what `--tune` chose, or the configuration's settings.
#[derive(Debug, Serialize)]
struct SchedulingView {
    tuned: bool,
    instances: usize,
    threads_per_instance: usize,
    dynamic_batching: bool,
    max_batch: usize,
    max_queue_delay_us: u64,
}

async fn live_view(State(state): State<HttpState>) -> Result<Json<LiveView>, ApiError> {
    let runtime = &state.runtime;
    let models = runtime
        .loaded_models()
        .iter()
        .map(|served| model_view(served))
        .collect();
    Ok(Json(LiveView {
        ready: runtime.ready(),
        models,
        repository: runtime.repository_index()?,
    }))
}

fn model_view(served: &ServedModel) -> ModelView {
    let model = &served.model;
    let telemetry = &served.telemetry;
    let stats = telemetry
        .statistics(&model.name, model.version)
        .inference_stats;
    let (hits, misses) = (stats.cache_hit.count, stats.cache_miss.count);
    let settings = served.scheduler.settings();
    let arrangement = served.arrangements.get(settings.instances);
    ModelView {
        name: model.name.clone(),
        version: model.version.to_string(),
        classifies: served.preprocessing.is_some(),
        success: stats.success.count,
        fail: stats.fail.count,
        queue_depth: served.scheduler.queue_depth(),
        last_minute: telemetry.recent(LAST_MINUTE).into(),
        last_5_minutes: telemetry.recent(LAST_5_MINUTES).into(),
        cache: CacheView {
            enabled: served.caches_responses(),
            hits,
            misses,
            hit_ratio: (hits + misses > 0).then(|| hits as f64 / (hits + misses) as f64),
        },
        scheduling: SchedulingView {
            tuned: telemetry.is_tuned(),
            instances: arrangement.map_or(0, |a| a.instances),
            threads_per_instance: arrangement.map_or(0, |a| a.threads),
            dynamic_batching: settings.policy.dynamic,
            max_batch: settings.policy.max_batch,
            max_queue_delay_us: settings.policy.max_delay.as_micros() as u64,
        },
    }
}
