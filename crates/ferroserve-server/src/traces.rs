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
//! that trace, and its `tracestate` is kept; one without, or with a malformed one,
//! starts a new trace. Finished
//! spans go to a batch exporter whose own thread sends them over OTLP/gRPC: the request
//! path never waits on the network, and spans are dropped when the exporter's queue is
//! full.
//!
//! Without an endpoint [`Traces::begin`] answers `None` and nothing else happens: no
//! exporter, no span, no allocation.

use std::time::{Duration, Instant, SystemTime};

use http::HeaderMap;
use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId,
    TraceState, Tracer, TracerProvider,
};
use opentelemetry::{Context, Key, KeyValue};
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
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
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let parent = header("traceparent")
            .and_then(|traceparent| caller(traceparent, header("tracestate")))
            .map_or_else(Context::new, |caller| {
                Context::new().with_remote_span_context(caller)
            });
        Some(RequestSpan {
            tracer: exporting.tracer.clone(),
            parent,
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

/// The caller's span as a W3C `traceparent` gives it, `VERSION-TRACE_ID-PARENT_ID-FLAGS`
/// in lowercase hex (2, 32, 16 and 2 digits; a later version may add fields after
/// these), with the `tracestate` that came with it; `None` when `traceparent` is
/// malformed, as the recommendation says: version `ff`, an all-zero id, a field of the
/// wrong length or with other characters. A malformed `tracestate` is dropped. Public
/// for the fuzz target `traceparent`.
pub fn caller(traceparent: &str, tracestate: Option<&str>) -> Option<SpanContext> {
    let hex = |field: &str, digits: usize| {
        field.len() == digits
            && field
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    let mut fields = traceparent.split('-');
    let version = fields.next()?;
    let trace_id = fields.next()?;
    let parent_id = fields.next()?;
    let flags = fields.next()?;
    let more = fields.next().is_some();
    let known = hex(version, 2) && version != "ff" && !(version == "00" && more);
    if !known || !hex(trace_id, 32) || !hex(parent_id, 16) || !hex(flags, 2) {
        return None;
    }
    let trace_id = TraceId::from_hex(trace_id).ok()?;
    let parent_id = SpanId::from_hex(parent_id).ok()?;
    if trace_id == TraceId::INVALID || parent_id == SpanId::INVALID {
        return None;
    }
    let flags = TraceFlags::new(u8::from_str_radix(flags, 16).ok()?) & TraceFlags::SAMPLED;
    let state = tracestate
        .and_then(|state| state.parse::<TraceState>().ok())
        .unwrap_or_default();
    Some(SpanContext::new(trace_id, parent_id, flags, true, state))
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
            stage(
                "preprocess",
                enqueued - timings.preprocess,
                enqueued,
                vec![],
            );
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

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const PARENT: &str = "00f067aa0ba902b7";

    #[test]
    fn a_well_formed_traceparent_names_the_callers_span() {
        let caller = caller(&format!("00-{TRACE}-{PARENT}-01"), Some("vendor=x")).unwrap();
        assert_eq!(caller.trace_id().to_string(), TRACE);
        assert_eq!(caller.span_id().to_string(), PARENT);
        assert!(caller.is_sampled());
        assert!(caller.is_remote());
        assert_eq!(caller.trace_state().get("vendor"), Some("x"));
        let unsampled = super::caller(&format!("00-{TRACE}-{PARENT}-00"), None).unwrap();
        assert!(!unsampled.is_sampled());
        // A later version may add fields.
        assert!(super::caller(&format!("01-{TRACE}-{PARENT}-01-more"), None).is_some());
    }

    #[test]
    fn a_malformed_traceparent_names_no_span() {
        let zeros = "0".repeat(32);
        let malformed = [
            String::new(),
            "not a traceparent".into(),
            format!("00-{}-{PARENT}-01", &TRACE[1..]),
            format!("00-+{}-{PARENT}-01", &TRACE[1..]),
            format!("00-{}-{PARENT}-01", TRACE.to_uppercase()),
            format!("00-{zeros}-{PARENT}-01"),
            format!("00-{TRACE}-{}-01", &zeros[..16]),
            format!("ff-{TRACE}-{PARENT}-01"),
            format!("00-{TRACE}-{PARENT}-01-more"),
            format!("00-{TRACE}-{PARENT}-1"),
            format!("00-{TRACE}-{PARENT}"),
        ];
        for traceparent in malformed {
            assert!(caller(&traceparent, None).is_none(), "{traceparent:?}");
        }
    }
}
