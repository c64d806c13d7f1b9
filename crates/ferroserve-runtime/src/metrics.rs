//! Prometheus metrics: every name, unit and bucket layout in one place. Labels: `model`
//! and `version` on everything per model.

use std::time::Duration;

use metrics::{
    describe_counter, describe_gauge, describe_histogram, Counter, Gauge, Histogram, Unit,
};
pub use metrics_exporter_prometheus::PrometheusHandle;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

use ferroserve_core::cache::ResponseCache;

use crate::arrangement::Arrangement;

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
/// The tuner's choice: instances, threads per instance, largest batch, queue delay.
pub const TUNED_INSTANCES: &str = "ferroserve_tuned_instances";
pub const TUNED_THREADS: &str = "ferroserve_tuned_threads_per_instance";
pub const TUNED_MAX_BATCH: &str = "ferroserve_tuned_max_batch_size";
pub const TUNED_QUEUE_DELAY: &str = "ferroserve_tuned_queue_delay_seconds";
/// Response cache lookups, labelled `result` = `hit` or `miss`.
pub const CACHE_LOOKUPS: &str = "ferroserve_cache_lookups_total";
/// Entries the response cache removed to make room.
pub const CACHE_EVICTIONS: &str = "ferroserve_cache_evictions_total";
/// Entries in the response cache.
pub const CACHE_ENTRIES: &str = "ferroserve_cache_entries";
/// Bytes charged for the response cache's entries.
pub const CACHE_BYTES: &str = "ferroserve_cache_bytes";

/// Triton's names, with Triton's meanings and units (cumulative microseconds), so that
/// dashboards and autoscaling rules written for Triton work unchanged.
pub mod triton {
    pub const REQUEST_SUCCESS: &str = "nv_inference_request_success";
    pub const REQUEST_FAILURE: &str = "nv_inference_request_failure";
    pub const INFERENCE_COUNT: &str = "nv_inference_count";
    pub const EXEC_COUNT: &str = "nv_inference_exec_count";
    pub const REQUEST_DURATION: &str = "nv_inference_request_duration_us";
    pub const QUEUE_DURATION: &str = "nv_inference_queue_duration_us";
    pub const COMPUTE_INPUT_DURATION: &str = "nv_inference_compute_input_duration_us";
    pub const COMPUTE_INFER_DURATION: &str = "nv_inference_compute_infer_duration_us";
    pub const COMPUTE_OUTPUT_DURATION: &str = "nv_inference_compute_output_duration_us";
    pub const PENDING_REQUESTS: &str = "nv_inference_pending_request_count";
    pub const CACHE_HITS: &str = "nv_cache_num_hits_per_model";
    pub const CACHE_MISSES: &str = "nv_cache_num_misses_per_model";
    pub const CACHE_HIT_DURATION: &str = "nv_cache_hit_duration_per_model";
    pub const CACHE_MISS_DURATION: &str = "nv_cache_miss_duration_per_model";
}

/// Latency buckets: 100 µs to 10 s, about three per decade.
const SECONDS_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
const BATCH_BUCKETS: [f64; 9] = [1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 16.0, 32.0, 64.0];

/// Installs the global recorder and describes every metric, once per process; later
/// calls return the same handle.
pub fn install() -> Result<PrometheusHandle, String> {
    static HANDLE: std::sync::OnceLock<Result<PrometheusHandle, String>> =
        std::sync::OnceLock::new();
    HANDLE.get_or_init(install_recorder).clone()
}

fn install_recorder() -> Result<PrometheusHandle, String> {
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
    describe_counter!(CACHE_LOOKUPS, "Response cache lookups, by result");
    describe_counter!(
        CACHE_EVICTIONS,
        "Entries the response cache removed to make room"
    );
    describe_gauge!(TUNED_INSTANCES, "Model instances the tuner runs");
    describe_gauge!(
        TUNED_THREADS,
        "Intra-op threads per instance the tuner chose"
    );
    describe_gauge!(TUNED_MAX_BATCH, "Largest batch the tuner allows");
    describe_gauge!(
        TUNED_QUEUE_DELAY,
        Unit::Seconds,
        "Queue delay the tuner allows for a batch to fill"
    );
    describe_triton();
    describe_gauge!(CACHE_ENTRIES, "Entries in the response cache");
    describe_gauge!(
        CACHE_BYTES,
        Unit::Bytes,
        "Bytes charged for the response cache's entries"
    );
    Ok(handle)
}

/// One model version's metrics, registered once when it loads, so that a request
/// records into existing handles instead of building labels.
fn describe_triton() {
    use triton::*;
    let counters = [
        (
            REQUEST_SUCCESS,
            "Number of successful inference requests, all batch sizes",
        ),
        (
            REQUEST_FAILURE,
            "Number of failed inference requests, all batch sizes",
        ),
        (
            INFERENCE_COUNT,
            "Number of inferences performed (a batch of n counts n)",
        ),
        (EXEC_COUNT, "Number of model executions performed"),
        (
            REQUEST_DURATION,
            "Cumulative inference request duration in microseconds",
        ),
        (
            QUEUE_DURATION,
            "Cumulative inference queuing duration in microseconds",
        ),
        (
            COMPUTE_INPUT_DURATION,
            "Cumulative compute input duration in microseconds",
        ),
        (
            COMPUTE_INFER_DURATION,
            "Cumulative compute inference duration in microseconds",
        ),
        (
            COMPUTE_OUTPUT_DURATION,
            "Cumulative inference compute output duration in microseconds",
        ),
        (CACHE_HITS, "Number of response cache hits per model"),
        (CACHE_MISSES, "Number of response cache misses per model"),
        (
            CACHE_HIT_DURATION,
            "Total cache hit duration per model, in microseconds",
        ),
        (
            CACHE_MISS_DURATION,
            "Total cache miss (lookup and insertion) duration per model, in microseconds",
        ),
    ];
    for (name, help) in counters {
        describe_counter!(name, help);
    }
    describe_gauge!(
        PENDING_REQUESTS,
        "Instantaneous number of pending requests awaiting execution per-model"
    );
}

/// Triton's per-model counters ([`triton`]).
pub struct TritonMetrics {
    pub success: Counter,
    pub failure: Counter,
    pub inferences: Counter,
    pub executions: Counter,
    pub request_us: Counter,
    pub queue_us: Counter,
    pub compute_input_us: Counter,
    pub compute_infer_us: Counter,
    pub compute_output_us: Counter,
    pub pending: Gauge,
    pub cache_hits: Counter,
    pub cache_misses: Counter,
    pub cache_hit_us: Counter,
    pub cache_miss_us: Counter,
}

impl TritonMetrics {
    fn new(labels: &[(&'static str, String); 2]) -> Self {
        use triton::*;
        TritonMetrics {
            success: metrics::counter!(REQUEST_SUCCESS, labels),
            failure: metrics::counter!(REQUEST_FAILURE, labels),
            inferences: metrics::counter!(INFERENCE_COUNT, labels),
            executions: metrics::counter!(EXEC_COUNT, labels),
            request_us: metrics::counter!(REQUEST_DURATION, labels),
            queue_us: metrics::counter!(QUEUE_DURATION, labels),
            compute_input_us: metrics::counter!(COMPUTE_INPUT_DURATION, labels),
            compute_infer_us: metrics::counter!(COMPUTE_INFER_DURATION, labels),
            compute_output_us: metrics::counter!(COMPUTE_OUTPUT_DURATION, labels),
            pending: metrics::gauge!(PENDING_REQUESTS, labels),
            cache_hits: metrics::counter!(CACHE_HITS, labels),
            cache_misses: metrics::counter!(CACHE_MISSES, labels),
            cache_hit_us: metrics::counter!(CACHE_HIT_DURATION, labels),
            cache_miss_us: metrics::counter!(CACHE_MISS_DURATION, labels),
        }
    }
}

/// Whole microseconds, for Triton's cumulative counters.
pub fn micros(time: Duration) -> u64 {
    time.as_micros().try_into().unwrap_or(u64::MAX)
}

pub struct ModelMetrics {
    labels: [(&'static str, String); 2],
    pub triton: TritonMetrics,
    pub succeeded: Counter,
    pub request_seconds: Histogram,
    pub queue_seconds: Histogram,
    pub preprocess_seconds: Histogram,
    pub compute_seconds: Histogram,
    pub batch_size: Histogram,
    pub inferences: Counter,
    pub executions: Counter,
    pub queue_depth: Gauge,
    /// The server-wide in-flight gauge (no labels), resolved once.
    pub inflight: Gauge,
    pub cache_hits: Counter,
    pub cache_misses: Counter,
}

impl ModelMetrics {
    pub fn new(model: &str, version: u64) -> Self {
        let labels = [
            ("model", model.to_string()),
            ("version", version.to_string()),
        ];
        let outcome = |outcome: &'static str| {
            let [model, version] = labels.clone();
            [model, version, ("outcome", outcome.to_string())]
        };
        let result = |result: &'static str| {
            let [model, version] = labels.clone();
            [model, version, ("result", result.to_string())]
        };
        ModelMetrics {
            succeeded: metrics::counter!(REQUESTS, &outcome("success")),
            request_seconds: metrics::histogram!(REQUEST_SECONDS, &labels),
            queue_seconds: metrics::histogram!(QUEUE_SECONDS, &labels),
            preprocess_seconds: metrics::histogram!(PREPROCESS_SECONDS, &labels),
            compute_seconds: metrics::histogram!(COMPUTE_SECONDS, &labels),
            batch_size: metrics::histogram!(BATCH_SIZE, &labels),
            inferences: metrics::counter!(INFERENCES, &labels),
            executions: metrics::counter!(EXECUTIONS, &labels),
            queue_depth: metrics::gauge!(QUEUE_DEPTH, &labels),
            inflight: metrics::gauge!(INFLIGHT),
            cache_hits: metrics::counter!(CACHE_LOOKUPS, &result("hit")),
            cache_misses: metrics::counter!(CACHE_LOOKUPS, &result("miss")),
            triton: TritonMetrics::new(&labels),
            labels,
        }
    }

    /// Publishes the tuner's current choice.
    pub fn tuned(&self, arrangement: Arrangement, max_batch: usize, delay: Duration) {
        let labels = &self.labels;
        metrics::gauge!(TUNED_INSTANCES, labels).set(arrangement.instances as f64);
        metrics::gauge!(TUNED_THREADS, labels).set(arrangement.threads as f64);
        metrics::gauge!(TUNED_MAX_BATCH, labels).set(max_batch as f64);
        metrics::gauge!(TUNED_QUEUE_DELAY, labels).set(delay.as_secs_f64());
    }

    /// The request counter of a failed outcome (an error kind); registered on first use.
    pub fn failed(&self, kind: &'static str) -> Counter {
        let [model, version] = self.labels.clone();
        metrics::counter!(REQUESTS, &[model, version, ("outcome", kind.to_string())])
    }
}

/// Publishes the response cache's gauges and eviction count (before a scrape).
pub fn publish_cache(cache: &ResponseCache) {
    let stats = cache.stats();
    metrics::counter!(CACHE_EVICTIONS).absolute(stats.evictions);
    metrics::gauge!(CACHE_ENTRIES).set(cache.len() as f64);
    metrics::gauge!(CACHE_BYTES).set(cache.size_bytes() as f64);
}
