//! Request latencies of the last minutes, for the live view of the browser page: a fixed
//! ring of [`SLOTS`] histograms of [`SLOT`] each, allocated once. Recording takes a
//! short lock and never allocates; a summary merges the slots of a window.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The time one slot covers.
pub const SLOT: Duration = Duration::from_secs(5);
/// Slots kept: [`SLOT`] × `SLOTS` is the longest window a summary covers (5 minutes).
pub const SLOTS: usize = 60;

/// Sub-buckets per power of two: a latency is kept within 1/16 (6%) of its value.
const SUB_BUCKETS: u64 = 8;
/// Latencies are counted in microseconds from 1 µs up to 2^27 µs (134 s); longer ones
/// count in the last bucket.
const MAX_MICROS: u64 = (1 << 27) - 1;
const BUCKETS: usize = bucket_of(MAX_MICROS) + 1;

/// The histogram bucket of a latency of `micros` µs (at least 1): exact below 16 µs,
/// then [`SUB_BUCKETS`] equal buckets per power of two.
const fn bucket_of(micros: u64) -> usize {
    if micros < 2 * SUB_BUCKETS {
        return micros as usize;
    }
    let octave = 63 - micros.leading_zeros() as u64; // floor(log2(micros)), at least 4
    let shift = octave - 3;
    let sub = (micros >> shift) & (SUB_BUCKETS - 1);
    (SUB_BUCKETS + shift * SUB_BUCKETS + sub) as usize
}

/// The middle of bucket `index`, in microseconds.
fn bucket_middle(index: usize) -> f64 {
    let index = index as u64;
    if index < 2 * SUB_BUCKETS {
        return index as f64;
    }
    let shift = index / SUB_BUCKETS - 1;
    let sub = index % SUB_BUCKETS;
    let low = (SUB_BUCKETS + sub) << shift;
    low as f64 + (1u64 << shift) as f64 / 2.0
}

/// One slot: the counts of the period (a multiple of [`SLOT`] since the start) it holds.
#[derive(Clone)]
struct Slot {
    /// `u64::MAX` while the slot was never used.
    period: u64,
    counts: [u32; BUCKETS],
}

/// The latencies of the requests that finished in the last [`SLOT`] × [`SLOTS`].
pub struct RecentLatencies {
    origin: Instant,
    slots: Mutex<Box<[Slot]>>,
}

/// What [`RecentLatencies::summary`] measured over a window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecentSummary {
    /// Requests that finished in the window.
    pub requests: u64,
    /// The time the window covers: shorter than asked for while the server is young.
    pub seconds: f64,
    /// Median and 99th percentile latency; `None` when no request finished.
    pub p50: Option<Duration>,
    pub p99: Option<Duration>,
}

impl RecentSummary {
    /// Requests finished per second over the window.
    pub fn throughput(&self) -> f64 {
        if self.seconds > 0.0 {
            self.requests as f64 / self.seconds
        } else {
            0.0
        }
    }
}

impl RecentLatencies {
    pub fn new() -> Self {
        Self::starting_at(Instant::now())
    }

    fn starting_at(origin: Instant) -> Self {
        let empty = Slot {
            period: u64::MAX,
            counts: [0; BUCKETS],
        };
        RecentLatencies {
            origin,
            slots: Mutex::new(vec![empty; SLOTS].into_boxed_slice()),
        }
    }

    /// Records a request that finished now after `latency`.
    pub fn record(&self, latency: Duration) {
        self.record_at(Instant::now(), latency);
    }

    fn period_of(&self, now: Instant) -> u64 {
        (now.saturating_duration_since(self.origin).as_nanos() / SLOT.as_nanos()) as u64
    }

    fn record_at(&self, now: Instant, latency: Duration) {
        let period = self.period_of(now);
        let micros = (latency.as_micros() as u64).clamp(1, MAX_MICROS);
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let slot = &mut slots[(period % SLOTS as u64) as usize];
        if slot.period != period {
            slot.period = period;
            slot.counts = [0; BUCKETS];
        }
        let count = &mut slot.counts[bucket_of(micros)];
        *count = count.saturating_add(1);
    }

    /// The requests of the last `window` (rounded up to whole slots, at most
    /// [`SLOT`] × [`SLOTS`]), the slot in progress included.
    pub fn summary(&self, window: Duration) -> RecentSummary {
        self.summary_at(Instant::now(), window)
    }

    fn summary_at(&self, now: Instant, window: Duration) -> RecentSummary {
        let period = self.period_of(now);
        let slots_wanted =
            (window.as_nanos().div_ceil(SLOT.as_nanos()) as u64).clamp(1, SLOTS as u64);
        let mut merged = [0u64; BUCKETS];
        {
            let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            for slot in slots.iter() {
                if slot.period <= period && period - slot.period < slots_wanted {
                    for (total, &count) in merged.iter_mut().zip(slot.counts.iter()) {
                        *total += u64::from(count);
                    }
                }
            }
        }
        let requests = merged.iter().sum();
        let since_origin = now.saturating_duration_since(self.origin);
        let into_slot = since_origin.as_secs_f64() - (period as f64) * SLOT.as_secs_f64();
        let full_slots = (slots_wanted - 1).min(period) as f64;
        RecentSummary {
            requests,
            seconds: full_slots * SLOT.as_secs_f64() + into_slot,
            p50: quantile(&merged, requests, 0.50),
            p99: quantile(&merged, requests, 0.99),
        }
    }
}

impl Default for RecentLatencies {
    fn default() -> Self {
        Self::new()
    }
}

/// The latency below which `q` of the `total` counts in `counts` lie (the middle of its
/// bucket), or `None` when there are none.
fn quantile(counts: &[u64; BUCKETS], total: u64, q: f64) -> Option<Duration> {
    if total == 0 {
        return None;
    }
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    let index = counts.iter().position(|&count| {
        seen += count;
        seen >= rank
    })?;
    Some(Duration::from_secs_f64(bucket_middle(index) / 1e6))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(duration: Option<Duration>) -> f64 {
        duration.expect("a quantile").as_secs_f64() * 1000.0
    }

    #[test]
    fn buckets_are_ordered_and_keep_a_value_within_a_sixteenth() {
        let mut last = 0;
        for micros in 1..=200_000u64 {
            let index = bucket_of(micros);
            assert!(index >= last && index < BUCKETS, "{micros}");
            last = index;
            let middle = bucket_middle(index);
            let error = (middle - micros as f64).abs() / micros as f64;
            assert!(error <= 1.0 / 16.0, "{micros} µs read back as {middle}");
        }
        assert_eq!(bucket_of(MAX_MICROS), BUCKETS - 1);
    }

    #[test]
    fn the_quantiles_of_a_window() {
        let origin = Instant::now();
        let recent = RecentLatencies::starting_at(origin);
        for i in 1..=100 {
            recent.record_at(origin, Duration::from_millis(i));
        }
        let summary = recent.summary_at(origin + Duration::from_secs(1), Duration::from_secs(60));
        assert_eq!(summary.requests, 100);
        assert!((47.0..=53.0).contains(&ms(summary.p50)), "{summary:?}");
        assert!((93.0..=105.0).contains(&ms(summary.p99)), "{summary:?}");
        assert!((summary.seconds - 1.0).abs() < 1e-6, "{summary:?}");
        assert!((summary.throughput() - 100.0).abs() < 1e-6);
    }

    #[test]
    fn old_slots_leave_the_window_and_are_reused() {
        let origin = Instant::now();
        let recent = RecentLatencies::starting_at(origin);
        recent.record_at(origin, Duration::from_millis(100));
        let later = origin + SLOT * 2;
        recent.record_at(later, Duration::from_millis(1));
        let last_slot = recent.summary_at(later, SLOT);
        assert_eq!(last_slot.requests, 1);
        assert!((0.9..=1.1).contains(&ms(last_slot.p99)), "{last_slot:?}");
        assert_eq!(recent.summary_at(later, SLOT * 3).requests, 2);
        // A whole ring later the first slot holds a new period, the old count gone.
        let next_round = origin + SLOT * SLOTS as u32;
        recent.record_at(next_round, Duration::from_millis(7));
        let round = recent.summary_at(next_round, SLOT * SLOTS as u32);
        assert_eq!(round.requests, 2, "{round:?}");
        assert!((SLOT.as_secs_f64() * (SLOTS - 1) as f64 - round.seconds).abs() < 1e-6);
    }

    #[test]
    fn an_idle_window_has_no_quantiles() {
        let origin = Instant::now();
        let recent = RecentLatencies::starting_at(origin);
        recent.record_at(origin, Duration::from_millis(3));
        let idle = recent.summary_at(origin + SLOT * 20, Duration::from_secs(60));
        assert_eq!(idle.requests, 0);
        assert_eq!(idle.p50, None);
        assert_eq!(idle.throughput(), 0.0);
        let huge = Duration::from_secs(1000);
        recent.record_at(origin + SLOT * 20, huge);
        let clamped = recent.summary_at(origin + SLOT * 20, SLOT);
        assert!(ms(clamped.p99) > 120_000.0, "{clamped:?}");
    }
}
