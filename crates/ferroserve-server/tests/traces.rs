//! Traces exported over OTLP (`--otlp-endpoint`): a server started with `TestServer`
//! sends its spans to an OTLP/gRPC collector of the test's own on 127.0.0.1, which keeps
//! every span it receives. Spans are batched and sent in the background; stopping the
//! server flushes them, so each test stops its server before reading what came.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use ferroserve_runtime::ModelControlMode;
use ferroserve_server::grpc::proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use ferroserve_server::grpc::proto::model_infer_request::InferInputTensor;
use ferroserve_server::grpc::proto::ModelInferRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::Span;
use reqwest::StatusCode;

mod support;
use support::{reference, TestServer, MODEL};

/// An OTLP/gRPC collector that keeps what it is sent.
#[derive(Clone, Default)]
struct Collector {
    received: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.received.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

impl Collector {
    /// A collector serving on an ephemeral port of 127.0.0.1, and its endpoint.
    async fn start() -> (Collector, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let collector = Collector::default();
        let service = TraceServiceServer::new(collector.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        (collector, endpoint)
    }

    /// Every span received so far; each resource that sent spans must be `ferroserve`.
    fn spans(&self) -> Vec<Span> {
        let received = self.received.lock().unwrap();
        let mut spans = Vec::new();
        for resource_spans in received.iter().flat_map(|r| &r.resource_spans) {
            let resource = resource_spans.resource.as_ref().expect("a resource");
            assert_eq!(
                string(&resource.attributes, "service.name"),
                Some("ferroserve"),
                "{:?}",
                resource.attributes
            );
            for scope in &resource_spans.scope_spans {
                spans.extend(scope.spans.iter().cloned());
            }
        }
        spans
    }
}

/// A server on the bundled `MODEL` alone, exporting to `endpoint`, its response cache off
/// (an answer from the cache has no queue or compute).
fn start_server(endpoint: String) -> TestServer {
    let mut config = support::config(support::bundled_models(), ModelControlMode::Explicit);
    config.runtime.startup_models = vec![MODEL.into()];
    config.runtime.cache_bytes = 0;
    config.otlp_endpoint = Some(endpoint);
    TestServer::start(config)
}

/// Stops `server`, which exports the spans still waiting, off the test's async threads
/// (the collector runs on them).
async fn stop(server: TestServer) {
    tokio::task::spawn_blocking(move || server.stop())
        .await
        .unwrap()
        .expect("the server stops cleanly");
}

/// The attribute `key`'s value.
fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref()?.value.as_ref())
}

fn string<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    match attribute(attributes, key)? {
        Value::StringValue(s) => Some(s),
        _ => None,
    }
}

fn int(attributes: &[KeyValue], key: &str) -> Option<i64> {
    match attribute(attributes, key)? {
        Value::IntValue(i) => Some(*i),
        _ => None,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A W3C `traceparent` of a sampled trace.
fn traceparent(trace_id: &str, parent_id: &str) -> String {
    format!("00-{trace_id}-{parent_id}-01")
}

/// The binary-layout body of one preprocessed photo, and its JSON header's length.
fn infer_body() -> (Bytes, usize) {
    let tensor = reference().input("cat.jpg");
    let header = serde_json::json!({
        "inputs": [{"name": "input", "shape": [1, 3, 224, 224], "datatype": "FP32",
                    "parameters": {"binary_data_size": tensor.len()}}],
        "outputs": [{"name": "logits", "parameters": {"binary_data": true}}]
    });
    let mut body = serde_json::to_vec(&header).unwrap();
    let length = body.len();
    body.extend_from_slice(&tensor);
    (Bytes::from(body), length)
}

/// Posts one inference over HTTP with `traceparent`, if any; the status.
async fn http_infer(server: &TestServer, traceparent: Option<&str>) -> StatusCode {
    let (body, length) = infer_body();
    let mut request = reqwest::Client::new()
        .post(server.url(&format!("/v2/models/{MODEL}/infer")))
        .header("Inference-Header-Content-Length", length)
        .body(body);
    if let Some(traceparent) = traceparent {
        request = request.header("traceparent", traceparent);
    }
    request.send().await.unwrap().status()
}

/// Calls `ModelInfer` with `traceparent` in the metadata; the call's code.
async fn grpc_infer(server: &TestServer, traceparent: &str) -> tonic::Code {
    let mut client = GrpcInferenceServiceClient::connect(server.grpc_url())
        .await
        .unwrap();
    let mut request = tonic::Request::new(ModelInferRequest {
        model_name: MODEL.into(),
        inputs: vec![InferInputTensor {
            name: "input".into(),
            datatype: "FP32".into(),
            shape: vec![1, 3, 224, 224],
            ..Default::default()
        }],
        raw_input_contents: vec![Bytes::from(reference().input("cat.jpg"))],
        ..Default::default()
    });
    request
        .metadata_mut()
        .insert("traceparent", traceparent.parse().unwrap());
    match client.model_infer(request).await {
        Ok(_) => tonic::Code::Ok,
        Err(status) => status.code(),
    }
}

/// The one span of `trace_id`, hex, without a parent in it: the request's.
fn request_span<'a>(spans: &'a [Span], trace_id: &str) -> &'a Span {
    let roots: Vec<&Span> = spans
        .iter()
        .filter(|s| hex(&s.trace_id) == trace_id)
        .filter(|s| !spans.iter().any(|p| p.span_id == s.parent_span_id))
        .collect();
    assert_eq!(
        roots.len(),
        1,
        "one request span of trace {trace_id}: {spans:#?}"
    );
    roots[0]
}

/// The names of `span`'s children, with the children.
fn children<'a>(spans: &'a [Span], span: &Span) -> HashMap<&'a str, &'a Span> {
    spans
        .iter()
        .filter(|s| s.trace_id == span.trace_id && s.parent_span_id == span.span_id)
        .map(|s| (s.name.as_str(), s))
        .collect()
}

/// Checks that `child` lies within `parent` in time.
fn assert_within(child: &Span, parent: &Span) {
    assert!(
        parent.start_time_unix_nano <= child.start_time_unix_nano
            && child.start_time_unix_nano <= child.end_time_unix_nano
            && child.end_time_unix_nano <= parent.end_time_unix_nano,
        "{} [{}, {}] lies outside {} [{}, {}]",
        child.name,
        child.start_time_unix_nano,
        child.end_time_unix_nano,
        parent.name,
        parent.start_time_unix_nano,
        parent.end_time_unix_nano,
    );
}

const HTTP_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const HTTP_PARENT: &str = "00f067aa0ba902b7";
const GRPC_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const GRPC_PARENT: &str = "b7ad6b7169203331";
const CLASSIFY_TRACE: &str = "5b8efff798038103d269b633813fc60c";
const CLASSIFY_PARENT: &str = "eee19b7ec3c1b174";

#[tokio::test(flavor = "multi_thread")]
async fn request_spans_continue_the_callers_trace_with_stage_children() {
    let (collector, endpoint) = Collector::start().await;
    let server = start_server(endpoint);

    let traced = traceparent(HTTP_TRACE, HTTP_PARENT);
    assert_eq!(http_infer(&server, Some(&traced)).await, StatusCode::OK);
    let traced = traceparent(GRPC_TRACE, GRPC_PARENT);
    assert_eq!(grpc_infer(&server, &traced).await, tonic::Code::Ok);
    let classified = reqwest::Client::new()
        .post(server.url(&format!("/v2/models/{MODEL}/classify?top_k=3")))
        .header("traceparent", traceparent(CLASSIFY_TRACE, CLASSIFY_PARENT))
        .body(reference().encoded("cat.jpg"))
        .send()
        .await
        .unwrap();
    assert_eq!(classified.status(), StatusCode::OK);
    assert_eq!(http_infer(&server, None).await, StatusCode::OK);
    stop(server).await;

    let spans = collector.spans();
    let cases = [
        (
            HTTP_TRACE,
            HTTP_PARENT,
            "http",
            200,
            "POST /v2/models/{model}/infer",
        ),
        (
            GRPC_TRACE,
            GRPC_PARENT,
            "grpc",
            0,
            "inference.GRPCInferenceService/ModelInfer",
        ),
        (
            CLASSIFY_TRACE,
            CLASSIFY_PARENT,
            "http",
            200,
            "POST /v2/models/{model}/classify",
        ),
    ];
    for (trace_id, parent_id, protocol, status, name) in cases {
        let span = request_span(&spans, trace_id);
        assert_eq!(hex(&span.parent_span_id), parent_id, "{span:#?}");
        assert_eq!(span.name, name);
        assert_eq!(span.kind, SpanKind::Server as i32);
        assert_eq!(string(&span.attributes, "model"), Some(MODEL));
        assert_eq!(int(&span.attributes, "version"), Some(1));
        assert_eq!(string(&span.attributes, "protocol"), Some(protocol));
        assert_eq!(int(&span.attributes, "status"), Some(status));
        let stages = children(&spans, span);
        let mut expected = vec!["compute", "queue"];
        if trace_id == CLASSIFY_TRACE {
            expected.push("preprocess");
        }
        let mut names: Vec<&str> = stages.keys().copied().collect();
        names.sort_unstable();
        expected.sort_unstable();
        assert_eq!(names, expected, "the stages of {name}");
        for stage in stages.values() {
            assert_within(stage, span);
        }
        assert_eq!(int(&stages["compute"].attributes, "batch_size"), Some(1));
    }

    // Without a traceparent, the request starts a trace of its own.
    let known = [HTTP_TRACE, GRPC_TRACE, CLASSIFY_TRACE];
    let started: Vec<&Span> = spans
        .iter()
        .filter(|s| !known.contains(&hex(&s.trace_id).as_str()) && s.parent_span_id.is_empty())
        .collect();
    assert_eq!(started.len(), 1, "one new trace: {started:#?}");
    assert_eq!(started[0].name, "POST /v2/models/{model}/infer");
    assert_eq!(children(&spans, started[0]).len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_traceparent_is_ignored_and_the_request_served() {
    let (collector, endpoint) = Collector::start().await;
    let server = start_server(endpoint);
    let malformed = [
        "not a traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    ];
    for traceparent in malformed {
        assert_eq!(
            http_infer(&server, Some(traceparent)).await,
            StatusCode::OK,
            "HTTP, traceparent {traceparent:?}"
        );
        assert_eq!(
            grpc_infer(&server, traceparent).await,
            tonic::Code::Ok,
            "gRPC, traceparent {traceparent:?}"
        );
    }
    stop(server).await;

    // Each request started a trace of its own.
    let spans = collector.spans();
    let requests: Vec<&Span> = spans
        .iter()
        .filter(|s| s.parent_span_id.is_empty())
        .collect();
    assert_eq!(requests.len(), 2 * malformed.len(), "{spans:#?}");
    for span in requests {
        assert_ne!(hex(&span.trace_id), HTTP_TRACE);
        assert_ne!(span.trace_id, [0; 16]);
    }
}
