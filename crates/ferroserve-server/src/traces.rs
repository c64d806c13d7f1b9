//! Traces of inference requests, exported over OTLP (`--otlp-endpoint`).
//!
//! Each inference request, on either protocol, is one server span with a child span per
//! stage the runtime measured: `preprocess` (decoding the request's images), `queue`
//! (waiting for a model instance) and `compute` (the engine run of the batch the request
//! was in). The children are made when the request ends, from the instants and durations
//! of its [`Timings`]: the compute ran on a model worker's thread, which knows nothing of
//! requests' traces, and spans made afterwards cost that thread nothing.
//!
//! A request that carries a W3C `traceparent` (HTTP header or gRPC metadata) continues
//! that trace, and its `tracestate` is kept; one without starts a new trace. Finished
//! spans go to a batch exporter whose own thread sends them over OTLP/gRPC: the request
//! path never waits on the network, and spans are dropped when the exporter's queue is
//! full.
//!
//! Without an endpoint [`Traces::begin`] answers `None` and nothing else happens: no
//! exporter, no span, no allocation.

use std::time::{Duration, Instant, SystemTime};

use http::HeaderMap;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt, Tracer, TracerProvider};
use opentelemetry::{Context, Key, KeyValue};
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;

use ferroserve_runtime::infer::Timings;

/// Where the spans of inference requests go: nowhere, or to an OTLP collector.
#[derive(Clone, Default)]
pub struct Traces {
    exporting: Option<Exporting>,
}

#[derive(Clone)]
struct Exporting {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

impl Traces {
    /// No traces: [`begin`](Self::begin) answers `None`.
    pub fn off() -> Traces {
        Traces::default()
    }

    /// Exports to the OTLP/gRPC collector at `endpoint`, `http://HOST:PORT` (4317 is the
    /// collector's port). Call within a Tokio runtime: it carries the connection.
    /// `service.name` is `ferroserve` unless `OTEL_SERVICE_NAME` or
    /// `OTEL_RESOURCE_ATTRIBUTES` say otherwise; the SDK's other `OTEL_*` variables
    /// (sampler, batch sizes, headers, timeout) apply.
    pub fn export_to(endpoint: &str) -> Result<Traces, String> {
        let bad = |why: &str| format!("--otlp-endpoint {endpoint}: {why}");
        match endpoint.split_once("://") {
            Some(("http", rest)) if !rest.is_empty() => {}
            Some(("https", _)) => {
                return Err(bad(
                    "TLS to the collector is not supported: use http:// to a collector beside the server",
                ))
            }
            _ => return Err(bad("expected http://HOST:PORT, an OTLP/gRPC collector")),
        }
        let exporter = SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()
            .map_err(|e| bad(&e.to_string()))?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource())
            .build();
        let tracer = provider.tracer("ferroserve");
        Ok(Traces {
            exporting: Some(Exporting { provider, tracer }),
        })
    }

    /// Whether spans are exported.
    pub fn is_on(&self) -> bool {
        self.exporting.is_some()
    }

    /// Begins the span of one request of `protocol` (`http`, `grpc`), whose headers or
    /// metadata are `headers`; `None` when traces are off.
    pub fn begin(&self, protocol: &'static str, headers: &HeaderMap) -> Option<RequestSpan> {
        let exporting = self.exporting.as_ref()?;
        Some(RequestSpan {
            tracer: exporting.tracer.clone(),
            parent: TraceContextPropagator::new().extract(&Headers(headers)),
            protocol,
            request_id: headers
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            begun_at: SystemTime::now(),
            begun: Instant::now(),
        })
    }

    /// Exports the spans still waiting, for at most `timeout`, and stops exporting.
    /// Blocking.
    pub fn shutdown(&self, timeout: Duration) {
        if let Some(exporting) = &self.exporting {
            if let Err(e) = exporting.provider.shutdown_with_timeout(timeout) {
                tracing::warn!("traces: not every span was exported: {e}");
            }
        }
    }
}

/// `service.name` `ferroserve`, unless the environment names the service.
fn resource() -> Resource {
    let detected = Resource::builder().build();
    let named = detected
        .get(&Key::new("service.name"))
        .is_some_and(|name| !name.as_str().starts_with("unknown_service"));
    if named {
        detected
    } else {
        Resource::builder().with_service_name("ferroserve").build()
    }
}

/// HTTP headers or gRPC metadata, as the propagator reads them.
struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// The span of one request, begun; made and exported when it [`end`](Self::end)s.
pub struct RequestSpan {
    tracer: SdkTracer,
    /// The trace the request continues, or none.
    parent: Context,
    protocol: &'static str,
    /// The client's `x-request-id`.
    request_id: Option<String>,
    /// When the request began, on the wall clock and on the clock of the runtime's
    /// instants.
    begun_at: SystemTime,
    begun: Instant,
}

/// How a request ended, as its span records it.
pub struct Ended<'a> {
    /// The span's name: the route, or the RPC's full name.
    pub name: &'static str,
    pub model: &'a str,
    /// The version that served the request, or else the one asked for.
    pub version: Option<u64>,
    /// The HTTP status, or the gRPC code.
    pub status: i64,
    /// Why the request failed, when the server is at fault (an HTTP status of 5xx, or a
    /// gRPC code of the same errors): the span's status is then an error.
    pub error: Option<&'a str>,
    /// The request as the runtime served it; `None` when it failed.
    pub served: Option<Served<'a>>,
}

/// A request the runtime served.
pub struct Served<'a> {
    /// The protocol's request id (echoed in the response); may be empty.
    pub id: &'a str,
    /// The request's batch rows.
    pub rows: usize,
    pub timings: Timings,
}

impl RequestSpan {
    /// Ends the request's span now, with its stages' spans when it was served.
    pub fn end(self, ended: Ended<'_>) {
        let now = SystemTime::now();
        let mut attributes = vec![
            KeyValue::new("protocol", self.protocol),
            KeyValue::new("model", ended.model.to_owned()),
            KeyValue::new("status", ended.status),
        ];
        if let Some(version) = ended.version {
            attributes.push(KeyValue::new("version", version as i64));
        }
        if let Some(request_id) = &self.request_id {
            attributes.push(KeyValue::new("request_id", request_id.clone()));
        }
        if let Some(served) = &ended.served {
            if !served.id.is_empty() {
                attributes.push(KeyValue::new("id", served.id.to_owned()));
            }
            attributes.push(KeyValue::new("batch_size", served.rows as i64));
        }
        let span = self
            .tracer
            .span_builder(ended.name)
            .with_kind(SpanKind::Server)
            .with_start_time(self.begun_at)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &self.parent);
        let request = self.parent.with_span(span);
        if let Some(error) = ended.error {
            request.span().set_status(Status::error(error.to_owned()));
        }
        if let Some(served) = &ended.served {
            self.stages(&request, &served.timings);
        }
        request.span().end_with_timestamp(now);
    }

    /// The spans of the stages the runtime measured, children of `request`'s span: none
    /// for an answer from the response cache.
    fn stages(&self, request: &Context, timings: &Timings) {
        let Some(enqueued) = timings.enqueued else {
            return;
        };
        let stage = |name: &'static str, from: Instant, to: Instant, attributes: Vec<KeyValue>| {
            self.tracer
                .span_builder(name)
                .with_start_time(self.wall(from))
                .with_attributes(attributes)
                .start_with_context(&self.tracer, request)
                .end_with_timestamp(self.wall(to));
        };
        if !timings.preprocess.is_zero() {
            stage("preprocess", enqueued - timings.preprocess, enqueued, vec![]);
        }
        let run = enqueued + timings.queue;
        stage("queue", enqueued, run, vec![]);
        let batch = KeyValue::new("batch_size", timings.batch_size as i64);
        stage("compute", run, run + timings.compute, vec![batch]);
    }

    /// `at` on the wall clock.
    fn wall(&self, at: Instant) -> SystemTime {
        self.begun_at + at.saturating_duration_since(self.begun)
    }
}
