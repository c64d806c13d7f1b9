//! Prometheus metrics: every name, unit and bucket layout in one place. Labels: `model`
//! and `version` on everything per model.

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
pub use metrics_exporter_prometheus::PrometheusHandle;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

/// Requests answered, labelled `outcome` = `success` or the error kind.
pub const REQUESTS: &str = "ferroserve_requests_total";
/// Batch rows inferred successfully.
pub const INFERENCES: &str = "ferroserve_inferences_total";
/// Engine executions (one per batch).
pub const EXECUTIONS: &str = "ferroserve_executions_total";
/// Requests dropped from the queue because their client went away.
pub const CANCELLED_REQUESTS: &str = "ferroserve_cancelled_requests_total";
/// From request decoded to response ready.
pub const REQUEST_SECONDS: &str = "ferroserve_request_duration_seconds";
/// Time in the scheduler queue.
pub const QUEUE_SECONDS: &str = "ferroserve_queue_duration_seconds";
/// Image decoding and preprocessing of one request.
pub const PREPROCESS_SECONDS: &str = "ferroserve_preprocess_duration_seconds";
/// One engine execution, gathering inputs and running the model.
pub const COMPUTE_SECONDS: &str = "ferroserve_compute_duration_seconds";
/// Rows per engine execution.
pub const BATCH_SIZE: &str = "ferroserve_batch_size";
/// Jobs waiting in the scheduler queue.
pub const QUEUE_DEPTH: &str = "ferroserve_queue_depth";
/// Inference requests being served.
pub const INFLIGHT: &str = "ferroserve_inflight_requests";

/// Latency buckets: 100 µs to 10 s, about three per decade.
const SECONDS_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
const BATCH_BUCKETS: [f64; 9] = [1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 16.0, 32.0, 64.0];

/// Installs the global recorder and describes every metric. Call once per process;
/// a second call returns an error.
pub fn install() -> Result<PrometheusHandle, String> {
    let mut builder = PrometheusBuilder::new();
    for name in [
        REQUEST_SECONDS,
        QUEUE_SECONDS,
        PREPROCESS_SECONDS,
        COMPUTE_SECONDS,
    ] {
        builder = builder
            .set_buckets_for_metric(Matcher::Full(name.into()), &SECONDS_BUCKETS)
            .map_err(|e| e.to_string())?;
    }
    builder = builder
        .set_buckets_for_metric(Matcher::Full(BATCH_SIZE.into()), &BATCH_BUCKETS)
        .map_err(|e| e.to_string())?;
    let handle = builder.install_recorder().map_err(|e| e.to_string())?;
    describe_counter!(REQUESTS, "Inference requests answered, by outcome");
    describe_counter!(INFERENCES, "Batch rows inferred successfully");
    describe_counter!(EXECUTIONS, "Engine executions (one per batch)");
    describe_counter!(
        CANCELLED_REQUESTS,
        "Requests dropped from the queue because the client went away"
    );
    describe_histogram!(
        REQUEST_SECONDS,
        Unit::Seconds,
        "End-to-end request duration in the server"
    );
    describe_histogram!(
        QUEUE_SECONDS,
        Unit::Seconds,
        "Time a request waited in the scheduler queue"
    );
    describe_histogram!(
        PREPROCESS_SECONDS,
        Unit::Seconds,
        "Image decoding and preprocessing per request"
    );
    describe_histogram!(
        COMPUTE_SECONDS,
        Unit::Seconds,
        "Engine execution time per batch"
    );
    describe_histogram!(BATCH_SIZE, "Rows per engine execution");
    describe_gauge!(QUEUE_DEPTH, "Requests waiting in the scheduler queue");
    describe_gauge!(INFLIGHT, "Inference requests being served");
    Ok(handle)
}
