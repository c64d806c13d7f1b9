//! Per-model-version counters for Triton's statistics extension: plain atomics, updated
//! by the scheduler, read as a [`ModelStatistics`] snapshot.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A count and the total time it took, as Triton's `StatisticDuration`.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct StatisticDuration {
    pub count: u64,
    pub ns: u64,
}

#[derive(Default)]
struct DurationCounter {
    count: AtomicU64,
    ns: AtomicU64,
}

impl DurationCounter {
    fn add(&self, count: u64, time: Duration) {
        self.count.fetch_add(count, Ordering::Relaxed);
        self.ns.fetch_add(time.as_nanos() as u64, Ordering::Relaxed);
    }

    fn read(&self) -> StatisticDuration {
        StatisticDuration {
            count: self.count.load(Ordering::Relaxed),
            ns: self.ns.load(Ordering::Relaxed),
        }
    }
}

/// The live counters of one model version.
#[derive(Default)]
pub struct ModelStats {
    last_inference_ms: AtomicU64,
    inference_count: AtomicU64,
    execution_count: AtomicU64,
    success: DurationCounter,
    fail: DurationCounter,
    queue: DurationCounter,
    compute_input: DurationCounter,
    compute_infer: DurationCounter,
    compute_output: DurationCounter,
    cache_hit: DurationCounter,
    cache_miss: DurationCounter,
    /// Per batch size: compute input, infer and output times.
    batches: Mutex<BTreeMap<usize, [StatisticDuration; 3]>>,
}

impl ModelStats {
    /// Records one finished request of `rows` batch rows.
    pub fn request(&self, ok: bool, rows: usize, total: Duration, queue: Duration) {
        let counter = if ok { &self.success } else { &self.fail };
        counter.add(1, total);
        if ok {
            self.inference_count
                .fetch_add(rows as u64, Ordering::Relaxed);
            self.queue.add(1, queue);
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        self.last_inference_ms
            .store(now.as_millis() as u64, Ordering::Relaxed);
    }

    /// Records a response cache hit and the time the lookup took.
    pub fn cache_hit(&self, lookup: Duration) {
        self.cache_hit.add(1, lookup);
    }

    /// Records a response cache miss and the time the lookup and the insertion took.
    pub fn cache_miss(&self, lookup_and_insert: Duration) {
        self.cache_miss.add(1, lookup_and_insert);
    }

    /// Records one engine execution of a batch of `batch_size` rows serving `requests`
    /// requests, with the time spent gathering inputs, running and splitting outputs.
    pub fn execution(
        &self,
        batch_size: usize,
        requests: u64,
        input: Duration,
        infer: Duration,
        output: Duration,
    ) {
        self.execution_count.fetch_add(1, Ordering::Relaxed);
        self.compute_input.add(requests, input);
        self.compute_infer.add(requests, infer);
        self.compute_output.add(requests, output);
        let mut batches = self.batches.lock().unwrap_or_else(|e| e.into_inner());
        let entry = batches.entry(batch_size).or_default();
        for (stat, time) in entry.iter_mut().zip([input, infer, output]) {
            stat.count += 1;
            stat.ns += time.as_nanos() as u64;
        }
    }

    /// A snapshot in the shape of Triton's `ModelStatistics`.
    pub fn snapshot(&self, name: &str, version: u64) -> ModelStatistics {
        let batches = self.batches.lock().unwrap_or_else(|e| e.into_inner());
        ModelStatistics {
            name: name.to_string(),
            version: version.to_string(),
            last_inference: self.last_inference_ms.load(Ordering::Relaxed),
            inference_count: self.inference_count.load(Ordering::Relaxed),
            execution_count: self.execution_count.load(Ordering::Relaxed),
            inference_stats: InferStatistics {
                success: self.success.read(),
                fail: self.fail.read(),
                queue: self.queue.read(),
                compute_input: self.compute_input.read(),
                compute_infer: self.compute_infer.read(),
                compute_output: self.compute_output.read(),
                cache_hit: self.cache_hit.read(),
                cache_miss: self.cache_miss.read(),
            },
            batch_stats: batches
                .iter()
                .map(|(&batch_size, [input, infer, output])| BatchStatistics {
                    batch_size,
                    compute_input: *input,
                    compute_infer: *infer,
                    compute_output: *output,
                })
                .collect(),
        }
    }
}

/// Triton's `ModelStatistics`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ModelStatistics {
    pub name: String,
    pub version: String,
    /// Milliseconds since the Unix epoch of the last request; 0 if none.
    pub last_inference: u64,
    /// Batch rows inferred successfully.
    pub inference_count: u64,
    /// Engine executions (one per batch).
    pub execution_count: u64,
    pub inference_stats: InferStatistics,
    pub batch_stats: Vec<BatchStatistics>,
}

/// Triton's `InferStatistics`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct InferStatistics {
    pub success: StatisticDuration,
    pub fail: StatisticDuration,
    pub queue: StatisticDuration,
    pub compute_input: StatisticDuration,
    pub compute_infer: StatisticDuration,
    pub compute_output: StatisticDuration,
    pub cache_hit: StatisticDuration,
    pub cache_miss: StatisticDuration,
}

/// Triton's `InferBatchStatistics`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BatchStatistics {
    pub batch_size: usize,
    pub compute_input: StatisticDuration,
    pub compute_infer: StatisticDuration,
    pub compute_output: StatisticDuration,
}
