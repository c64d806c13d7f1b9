//! The one observer of a model version: every stage of the request path reports here,
//! and it feeds the Prometheus metrics ([`crate::metrics`]), Triton's statistics
//! ([`crate::stats`]) and the tuner's latency window from the same events.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::arrangement::Arrangement;
use crate::error::ServeError;
use crate::metrics::{self as m, ModelMetrics};
use crate::recent::{RecentLatencies, RecentSummary};
use crate::stats::{ModelStatistics, ModelStats};

/// What one model version's requests, queue and engine report.
pub struct Telemetry {
    metrics: ModelMetrics,
    stats: ModelStats,
    /// Latencies of the current tuning window, when the server tunes itself.
    latencies: Option<LatencyWindow>,
    /// Latencies of the successful requests of the last minutes, for the live view.
    recent: RecentLatencies,
}

impl Telemetry {
    /// Registers the metrics of `model` `version`; `tuned` keeps a latency window for the
    /// tuner.
    pub fn new(model: &str, version: u64, tuned: bool) -> Self {
        Telemetry {
            metrics: ModelMetrics::new(model, version),
            stats: ModelStats::default(),
            latencies: tuned.then(LatencyWindow::new),
            recent: RecentLatencies::new(),
        }
    }

    /// A request of `rows` batch rows finished after `elapsed`, `queued` of it in the
    /// queue. Every request that reached the model counts, refused ones too.
    fn request_finished(&self, ok: bool, rows: usize, elapsed: Duration, queued: Duration) {
        self.stats.request(ok, rows, elapsed, queued);
        if let Some(latencies) = &self.latencies {
            latencies.record(elapsed);
        }
        let triton = &self.metrics.triton;
        if ok {
            self.recent.record(elapsed);
            self.metrics.queue_seconds.record(queued.as_secs_f64());
            self.metrics.inferences.increment(rows as u64);
            triton.success.increment(1);
            triton.inferences.increment(rows as u64);
            triton.request_us.increment(m::micros(elapsed));
            triton.queue_us.increment(m::micros(queued));
        } else {
            triton.failure.increment(1);
        }
    }

    /// A request's images took `time` to decode and preprocess.
    pub fn preprocessed(&self, time: Duration) {
        self.metrics.preprocess_seconds.record(time.as_secs_f64());
    }

    /// A response cache hit, found in `lookup`.
    pub fn cache_hit(&self, lookup: Duration) {
        self.stats.cache_hit(lookup);
        self.metrics.cache_hits.increment(1);
        self.metrics.triton.cache_hits.increment(1);
        self.metrics
            .triton
            .cache_hit_us
            .increment(m::micros(lookup));
    }

    /// A response cache miss; `spent` is the lookup and the insertion.
    pub fn cache_miss(&self, spent: Duration) {
        self.stats.cache_miss(spent);
        self.metrics.cache_misses.increment(1);
        self.metrics.triton.cache_misses.increment(1);
        self.metrics
            .triton
            .cache_miss_us
            .increment(m::micros(spent));
    }

    /// One engine execution of `rows` rows serving `requests` requests: gathering inputs,
    /// running, splitting outputs.
    pub fn executed(
        &self,
        rows: usize,
        requests: u64,
        input: Duration,
        infer: Duration,
        output: Duration,
    ) {
        let compute = input + infer;
        self.metrics.compute_seconds.record(compute.as_secs_f64());
        self.metrics.batch_size.record(rows as f64);
        self.metrics.executions.increment(1);
        // Triton's compute durations add up per request: a batch of n requests adds its
        // time n times.
        let triton = &self.metrics.triton;
        triton.executions.increment(1);
        triton
            .compute_input_us
            .increment(requests * m::micros(input));
        triton
            .compute_infer_us
            .increment(requests * m::micros(infer));
        triton
            .compute_output_us
            .increment(requests * m::micros(output));
        self.stats.execution(rows, requests, input, infer, output);
    }

    /// A queued request was dropped because its client went away.
    pub fn cancelled(&self) {
        metrics::counter!(m::CANCELLED_REQUESTS).increment(1);
    }

    /// Jobs waiting in the queue now.
    pub fn queue_depth(&self, depth: usize) {
        self.metrics.queue_depth.set(depth as f64);
        self.metrics.triton.pending.set(depth as f64);
    }

    /// The tuner's current choice.
    pub fn tuned(&self, arrangement: Arrangement, max_batch: usize, delay: Duration) {
        self.metrics.tuned(arrangement, max_batch, delay);
    }

    /// Whether the tuner watches this model.
    pub fn is_tuned(&self) -> bool {
        self.latencies.is_some()
    }

    /// What the tuning window since the last call measured; `None` when not tuned.
    pub fn take_window(&self) -> Option<Measurement> {
        self.latencies.as_ref().map(LatencyWindow::take)
    }

    /// The successful requests of the last `window` (at most 5 minutes): count and
    /// latency quantiles.
    pub fn recent(&self, window: Duration) -> RecentSummary {
        self.recent.summary(window)
    }

    /// Triton's statistics of `name` `version`.
    pub fn statistics(&self, name: &str, version: u64) -> ModelStatistics {
        self.stats.snapshot(name, version)
    }

    /// Starts tracking one request: counted in flight now, and when dropped (also when
    /// the client goes away mid-request) recorded with its outcome and duration.
    pub fn track(&self) -> RequestTracker<'_> {
        self.metrics.inflight.increment(1.0);
        RequestTracker {
            telemetry: self,
            started: Instant::now(),
            outcome: "cancelled",
        }
    }
}

/// One request in flight; see [`Telemetry::track`].
pub struct RequestTracker<'a> {
    telemetry: &'a Telemetry,
    started: Instant,
    outcome: &'static str,
}

impl RequestTracker<'_> {
    /// The request finished: `Ok((rows, time in the queue))` or why it failed. Recorded
    /// at once in the statistics and the tuner's window, and in the metrics when the
    /// tracker drops.
    pub fn finish(&mut self, result: Result<(usize, Duration), &ServeError>) {
        let elapsed = self.started.elapsed();
        match result {
            Ok((rows, queued)) => {
                self.telemetry.request_finished(true, rows, elapsed, queued);
                self.outcome = "success";
            }
            Err(error) => {
                self.telemetry
                    .request_finished(false, 1, elapsed, Duration::ZERO);
                self.outcome = error.kind();
            }
        }
    }
}

impl Drop for RequestTracker<'_> {
    fn drop(&mut self) {
        let metrics = &self.telemetry.metrics;
        metrics.inflight.decrement(1.0);
        match self.outcome {
            "success" => metrics.succeeded.increment(1),
            failed => metrics.failed(failed).increment(1),
        }
        metrics
            .request_seconds
            .record(self.started.elapsed().as_secs_f64());
    }
}

/// What one window measured of the setting in force.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measurement {
    pub requests: u64,
    /// Requests finished per second.
    pub throughput: f64,
    /// Median latency: steadier than p99 in a short window, so what tells a change of load.
    pub p50: Duration,
    pub p99: Duration,
}

/// Request latencies of the current window.
pub struct LatencyWindow {
    histogram: Mutex<(Histogram<u64>, Instant)>,
}

impl LatencyWindow {
    pub fn new() -> Self {
        let histogram = Histogram::new_with_bounds(1, 60_000_000, 2).expect("the bounds are valid");
        LatencyWindow {
            histogram: Mutex::new((histogram, Instant::now())),
        }
    }

    /// Records one finished request.
    pub fn record(&self, latency: Duration) {
        let micros = (latency.as_micros() as u64).clamp(1, 60_000_000);
        let mut guard = self.histogram.lock().unwrap_or_else(|e| e.into_inner());
        let _ = guard.0.record(micros);
    }

    /// What the window since the last call measured; starts the next window.
    pub fn take(&self) -> Measurement {
        let mut guard = self.histogram.lock().unwrap_or_else(|e| e.into_inner());
        let (histogram, since) = &mut *guard;
        let seconds = since.elapsed().as_secs_f64().max(1e-3);
        let measurement = Measurement {
            requests: histogram.len(),
            throughput: histogram.len() as f64 / seconds,
            p50: Duration::from_micros(histogram.value_at_quantile(0.5)),
            p99: Duration::from_micros(histogram.value_at_quantile(0.99)),
        };
        histogram.reset();
        *since = Instant::now();
        measurement
    }
}

impl Default for LatencyWindow {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_reports_count_rate_and_p99() {
        let latencies = LatencyWindow::new();
        for ms in 1..=100 {
            latencies.record(Duration::from_millis(ms));
        }
        let measured = latencies.take();
        assert_eq!(measured.requests, 100);
        let p99 = measured.p99.as_secs_f64() * 1000.0;
        assert!((98.0..=100.0).contains(&p99), "{p99}");
        assert_eq!(latencies.take().requests, 0);
    }

    #[test]
    fn one_event_reaches_the_statistics_and_the_tuning_window() {
        let telemetry = Telemetry::new("m", 1, true);
        telemetry.request_finished(true, 2, Duration::from_millis(3), Duration::from_millis(1));
        telemetry.request_finished(false, 1, Duration::from_millis(1), Duration::ZERO);
        telemetry.executed(
            2,
            1,
            Duration::ZERO,
            Duration::from_millis(2),
            Duration::ZERO,
        );
        let stats = telemetry.statistics("m", 1);
        assert_eq!(stats.inference_count, 2);
        assert_eq!(stats.execution_count, 1);
        assert_eq!(stats.inference_stats.success.count, 1);
        assert_eq!(stats.inference_stats.fail.count, 1);
        assert_eq!(telemetry.take_window().map(|w| w.requests), Some(2));
        assert_eq!(telemetry.recent(Duration::from_secs(60)).requests, 1);
        assert!(Telemetry::new("m", 1, false).take_window().is_none());
    }
}
