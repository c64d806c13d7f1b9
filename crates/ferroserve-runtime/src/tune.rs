//! `--tune`: each model's scheduler settings chosen from the server's own measurements.
//!
//! Every window (a second by default) the tuner reads, per model, how many requests
//! finished and their 99th percentile latency, and moves the model's settings
//! (instance arrangement, largest batch, queue delay) by a hill climb:
//!
//! - A setting is **better** than another when it keeps p99 under the target and the
//!   other does not, or both do and it served at least 3% more requests per second, or
//!   neither does and its p99 is at least 3% lower.
//! - The current setting runs for a few windows, then one neighbour is **probed** for one
//!   window: one more or one fewer instance arrangement step, twice or half the largest
//!   batch, the next longer or shorter queue delay. A probe that is better in
//!   [`CONFIRMATIONS`] windows in a row is kept (one lucky window is noise on a busy
//!   machine); a worse one is undone after its window.
//! - When a whole round of neighbours brings nothing, the wait between probes grows
//!   [`SETTLE_GROWTH`]-fold (up to [`MAX_SETTLE`] windows). After [`QUIET_AFTER`] such
//!   rounds in a row the search goes quiet: it probes nothing more, since every
//!   neighbour has lost and each probe of a loser costs its window's latency.
//! - It starts again from [`MIN_SETTLE`] when p99 breaks the target (the window it
//!   does: a load that no setting serves in time is searched, and settles, like any
//!   other) or when the load changes: two windows in a row whose throughput or median
//!   latency is half or twice the settled one's (more clients at a saturated model queue
//!   longer without serving more; the median, because a window's p99 on a shared machine
//!   can double from noise alone).
//! - A window with fewer than [`MIN_REQUESTS`] requests says nothing; it changes nothing.
//!
//! The decision is the pure [`Search::step`]; the thread around it only measures and
//! applies.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use crate::arrangement::Arrangement;
use crate::registry::{ModelRegistry, ServedModel};
use crate::scheduler::{BatchPolicy, Settings};
pub use crate::telemetry::Measurement;

/// Queue delays the tuner tries when it batches.
pub const DELAYS: [Duration; 6] = [
    Duration::ZERO,
    Duration::from_micros(250),
    Duration::from_micros(500),
    Duration::from_millis(1),
    Duration::from_millis(2),
    Duration::from_millis(4),
];
/// Windows in a row a probe must beat the current setting to replace it.
pub const CONFIRMATIONS: u32 = 3;
/// Windows with fewer requests are ignored.
pub const MIN_REQUESTS: u64 = 20;
/// Fewest windows between probes.
pub const MIN_SETTLE: u32 = 2;
/// Most windows between probes.
pub const MAX_SETTLE: u32 = 32;
/// How much longer the wait between probes gets after a round that found nothing
/// better: a probe of a worse setting costs a window of throughput, so a stable load
/// should soon pay for few of them.
pub const SETTLE_GROWTH: u32 = 4;
/// Rounds in a row that found nothing better, after which the search stops probing
/// until the load changes. One round can lose to noise; two agree.
pub const QUIET_AFTER: u32 = 2;

/// One point of the space the tuner searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Candidate {
    /// Index of the instance arrangement (scheduler group).
    pub arrangement: usize,
    pub max_batch: usize,
    /// Index into [`DELAYS`].
    pub delay: usize,
}

impl Candidate {
    fn settings(self) -> Settings {
        Settings {
            instances: self.arrangement,
            policy: BatchPolicy {
                dynamic: self.max_batch > 1,
                max_batch: self.max_batch,
                preferred: Vec::new(),
                max_delay: DELAYS[self.delay],
            },
        }
    }
}

/// The hill climb of one model; see the module documentation.
#[derive(Debug)]
pub struct Search {
    target: Duration,
    arrangements: usize,
    /// The model's largest batch (1 when it does not batch).
    max_batch: usize,
    current: Candidate,
    /// The current setting's latest window.
    last: Option<Measurement>,
    /// The window when the current setting was last adopted or confirmed, to notice a
    /// change of load.
    settled: Option<Measurement>,
    /// Consecutive windows that measured a different load from the settled one.
    drifted: u32,
    probing: Option<Probe>,
    untried: VecDeque<Candidate>,
    settle: u32,
    waited: u32,
    /// Rounds in a row whose neighbours all lost.
    fruitless: u32,
}

/// A neighbour on trial, and how many windows in a row it has beaten the current setting.
#[derive(Debug, Clone, Copy)]
struct Probe {
    candidate: Candidate,
    wins: u32,
}

impl Search {
    /// Starts from `start` (usually one instance per core, no batching).
    pub fn new(target: Duration, arrangements: usize, max_batch: usize, start: Candidate) -> Self {
        let mut search = Search {
            target,
            arrangements: arrangements.max(1),
            max_batch: max_batch.max(1),
            current: start,
            last: None,
            settled: None,
            drifted: 0,
            probing: None,
            untried: VecDeque::new(),
            settle: MIN_SETTLE,
            waited: 0,
            fruitless: 0,
        };
        search.untried = search.neighbours(start);
        search
    }

    /// The setting in force (or being probed).
    pub fn current(&self) -> Candidate {
        self.probing.map_or(self.current, |p| p.candidate)
    }

    /// Takes the measurement of the window that just ended; returns the setting to
    /// apply when it changes.
    pub fn step(&mut self, window: Measurement) -> Option<Candidate> {
        if window.requests < MIN_REQUESTS {
            // Idle: nothing to learn. An interrupted probe is undone.
            return self.probing.take().map(|_| self.current);
        }
        if let Some(mut probe) = self.probing.take() {
            let better = self.last.is_none_or(|last| self.better(&window, &last));
            if !better {
                return Some(self.current);
            }
            // One lucky window is not enough on a noisy machine: a probe must win again.
            probe.wins += 1;
            if probe.wins < CONFIRMATIONS {
                self.probing = Some(probe);
            } else {
                self.adopt(probe.candidate, window);
            }
            return None;
        }
        let drifting = self
            .settled
            .is_some_and(|settled| another_load(&window, &settled));
        self.drifted = if drifting { self.drifted + 1 } else { 0 };
        let load_changed = self.drifted >= 2;
        self.last = Some(window);
        // A p99 that breaks the target is news once, not every window: a load no
        // setting serves in time would otherwise keep every probe going.
        let broke_target = window.p99 > self.target
            && self
                .settled
                .is_none_or(|settled| settled.p99 <= self.target);
        if broke_target || load_changed {
            self.drifted = 0;
            self.settle = MIN_SETTLE;
            self.fruitless = 0;
            self.settled = Some(window);
            if self.untried.is_empty() {
                self.untried = self.neighbours(self.current);
            }
        }
        self.waited += 1;
        if self.waited < self.settle {
            return None;
        }
        self.waited = 0;
        if self.untried.is_empty() {
            // A whole round brought nothing: probe less often, then not at all.
            self.fruitless = (self.fruitless + 1).min(QUIET_AFTER);
            if self.fruitless >= QUIET_AFTER {
                return None;
            }
            self.settle = (self.settle * SETTLE_GROWTH).min(MAX_SETTLE);
            self.settled = Some(window);
            self.untried = self.neighbours(self.current);
        }
        let candidate = self.untried.pop_front()?;
        self.probing = Some(Probe { candidate, wins: 0 });
        Some(candidate)
    }

    fn adopt(&mut self, candidate: Candidate, window: Measurement) {
        self.current = candidate;
        self.last = Some(window);
        self.settled = Some(window);
        self.settle = MIN_SETTLE;
        self.waited = 0;
        self.fruitless = 0;
        self.untried = self.neighbours(candidate);
    }

    fn better(&self, a: &Measurement, b: &Measurement) -> bool {
        match (a.p99 <= self.target, b.p99 <= self.target) {
            (true, false) => true,
            (false, true) => false,
            (true, true) => a.throughput > 1.03 * b.throughput,
            (false, false) => a.p99.as_secs_f64() < 0.97 * b.p99.as_secs_f64(),
        }
    }

    /// The settings one step away from `c`.
    fn neighbours(&self, c: Candidate) -> VecDeque<Candidate> {
        let mut all = VecDeque::new();
        let mut push = |n: Candidate| {
            if n != c && !all.contains(&n) {
                all.push_back(n);
            }
        };
        if c.arrangement + 1 < self.arrangements {
            push(Candidate {
                arrangement: c.arrangement + 1,
                ..c
            });
        }
        if c.arrangement > 0 {
            push(Candidate {
                arrangement: c.arrangement - 1,
                ..c
            });
        }
        if c.max_batch < self.max_batch {
            push(Candidate {
                max_batch: (c.max_batch * 2).min(self.max_batch),
                ..c
            });
        }
        if c.max_batch > 1 {
            let max_batch = c.max_batch / 2;
            push(Candidate {
                max_batch,
                delay: if max_batch == 1 { 0 } else { c.delay },
                ..c
            });
            if c.delay + 1 < DELAYS.len() {
                push(Candidate {
                    delay: c.delay + 1,
                    ..c
                });
            }
            if c.delay > 0 {
                push(Candidate {
                    delay: c.delay - 1,
                    ..c
                });
            }
        }
        all
    }
}

/// Whether `window` measured another load than `settled`: half or twice the throughput,
/// or half or twice the median latency. Less is noise: on a 2-core VM one setting under
/// one steady client measured 155 to 240 requests a second from window to window.
fn another_load(window: &Measurement, settled: &Measurement) -> bool {
    let ratio = |now: f64, then: f64| now / then.max(1e-9);
    let throughput = ratio(window.throughput, settled.throughput);
    let p50 = ratio(window.p50.as_secs_f64(), settled.p50.as_secs_f64());
    !(0.5..=2.0).contains(&throughput) || !(0.5..=2.0).contains(&p50)
}

/// Starts the tuner thread: every `window`, one [`Search::step`] per tuned model.
pub fn start(models: Arc<ModelRegistry>, target: Duration, window: Duration) {
    let spawned = std::thread::Builder::new()
        .name("tuner".into())
        .spawn(move || {
            let mut searches: HashMap<u64, Search> = HashMap::new();
            loop {
                std::thread::sleep(window);
                let loaded = models.loaded();
                searches.retain(|id, _| loaded.iter().any(|m| m.load_id == *id));
                for served in loaded {
                    let Some(measured) = served.telemetry.take_window() else {
                        continue;
                    };
                    let search = searches
                        .entry(served.load_id)
                        .or_insert_with(|| new_search(&served, target));
                    tracing::debug!(
                        model = served.model.name,
                        requests = measured.requests,
                        throughput = measured.throughput,
                        p50_ms = measured.p50.as_secs_f64() * 1e3,
                        p99_ms = measured.p99.as_secs_f64() * 1e3,
                        "tuner: window of {:?}",
                        search.current()
                    );
                    if let Some(next) = search.step(measured) {
                        apply(&served, next);
                    }
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the tuner: {e}");
    }
}

fn new_search(served: &ServedModel, target: Duration) -> Search {
    let start = Candidate {
        arrangement: 0,
        max_batch: 1,
        delay: 0,
    };
    apply(served, start);
    Search::new(
        target,
        served.arrangements.len(),
        served.model.max_batch_size(),
        start,
    )
}

fn apply(served: &ServedModel, candidate: Candidate) {
    let arrangement: Arrangement = served.arrangements[candidate.arrangement];
    tracing::info!(
        model = served.model.name,
        "tuner: instances x threads {arrangement}, max batch {}, queue delay {:?}",
        candidate.max_batch,
        DELAYS[candidate.delay]
    );
    served.scheduler.apply(candidate.settings());
    served
        .telemetry
        .tuned(arrangement, candidate.max_batch, DELAYS[candidate.delay]);
}

#[cfg(test)]
mod tests {
    use super::*;

    const TARGET: Duration = Duration::from_millis(50);

    fn start() -> Candidate {
        Candidate {
            arrangement: 0,
            max_batch: 1,
            delay: 0,
        }
    }

    /// A window of `throughput` whose p99 is `p99_ms` and median half that.
    fn window(throughput: f64, p99_ms: u64) -> Measurement {
        Measurement {
            requests: throughput as u64,
            throughput,
            p50: Duration::from_micros(p99_ms * 500),
            p99: Duration::from_millis(p99_ms),
        }
    }

    /// Runs the search against a model of the system: `measure` gives what a setting
    /// measures. Returns the settings in force, window by window.
    fn run(
        search: &mut Search,
        windows: usize,
        measure: impl Fn(Candidate) -> Measurement,
    ) -> Vec<Candidate> {
        let mut history = Vec::new();
        for _ in 0..windows {
            let now = search.current();
            history.push(now);
            search.step(measure(now));
        }
        history
    }

    #[test]
    fn it_climbs_to_the_best_setting_under_the_target_and_stays() {
        // Throughput grows with the batch up to 4, p99 breaks the target beyond it;
        // arrangement 1 is worse everywhere.
        let measure = |c: Candidate| {
            let base = if c.arrangement == 0 { 300.0 } else { 220.0 };
            let gain = match c.max_batch {
                1 => 1.0,
                2 => 1.2,
                4 => 1.4,
                _ => 1.5,
            };
            let p99 = if c.max_batch > 4 { 80 } else { 30 };
            window(base * gain - 10.0 * c.delay as f64, p99)
        };
        let mut search = Search::new(TARGET, 2, 8, start());
        let history = run(&mut search, 200, measure);
        let best = Candidate {
            arrangement: 0,
            max_batch: 4,
            delay: 0,
        };
        assert_eq!(search.current, best);
        let last_hundred = &history[100..];
        let at_best = last_hundred.iter().filter(|&&c| c == best).count();
        assert!(at_best >= 90, "only {at_best} of 100 windows at the best");
    }

    #[test]
    fn a_latency_violation_moves_it_to_a_setting_that_meets_the_target() {
        // Only arrangement 1 without batching meets the target.
        let measure = |c: Candidate| {
            if c.arrangement == 1 && c.max_batch == 1 {
                window(200.0, 20)
            } else {
                window(300.0, 90)
            }
        };
        let mut search = Search::new(TARGET, 2, 8, start());
        run(&mut search, 30, measure);
        assert_eq!(search.current.arrangement, 1);
        assert_eq!(search.current.max_batch, 1);
    }

    #[test]
    fn it_follows_a_change_of_load() {
        let mut search = Search::new(TARGET, 2, 1, start());
        // Light load: arrangement 1 (more threads per request) is best.
        let light = |c: Candidate| window(if c.arrangement == 1 { 260.0 } else { 200.0 }, 10);
        run(&mut search, 60, light);
        assert_eq!(search.current.arrangement, 1);
        // Heavy load: arrangement 0 is.
        let heavy = |c: Candidate| window(if c.arrangement == 0 { 330.0 } else { 250.0 }, 40);
        run(&mut search, 80, heavy);
        assert_eq!(search.current.arrangement, 0);
    }

    #[test]
    fn once_every_neighbour_has_lost_it_stops_probing() {
        // A lone client: arrangement 1 answers sooner; batching brings nothing.
        let measure = |c: Candidate| {
            let throughput = if c.arrangement == 1 { 450.0 } else { 300.0 };
            window(throughput - 20.0 * (c.max_batch - 1) as f64, 5)
        };
        let mut search = Search::new(TARGET, 2, 8, start());
        let history = run(&mut search, 300, measure);
        let best = Candidate {
            arrangement: 1,
            ..start()
        };
        let settled_from = history.iter().rposition(|&c| c != best).unwrap() + 1;
        assert!(
            settled_from < 60,
            "it still probed at window {settled_from} of 300"
        );
    }

    #[test]
    fn a_load_no_setting_serves_in_time_is_searched_then_left_alone() {
        // Sixteen clients on two cores: every setting's p99 breaks the target.
        let measure = |c: Candidate| window(if c.arrangement == 0 { 280.0 } else { 210.0 }, 90);
        let mut search = Search::new(TARGET, 2, 8, start());
        let history = run(&mut search, 200, measure);
        let probes = history[100..].iter().filter(|&&c| c != start()).count();
        assert_eq!(probes, 0, "it kept probing");
    }

    #[test]
    fn a_machine_that_slows_and_recovers_does_not_wake_a_quiet_search() {
        // One client; the machine serves it 30% slower every other five seconds.
        let second = std::cell::Cell::new(0);
        let measure = |c: Candidate| {
            let slow = (second.replace(second.get() + 1) / 5) % 2 == 1;
            let throughput = match (c.arrangement, slow) {
                (0, _) => 130.0,
                (_, false) => 220.0,
                (_, true) => 155.0,
            };
            window(throughput, (1000.0 / throughput * 2.0) as u64)
        };
        let mut search = Search::new(TARGET, 2, 8, start());
        let history = run(&mut search, 300, measure);
        let changes = history[150..].windows(2).filter(|w| w[0] != w[1]).count();
        assert_eq!(changes, 0, "it kept probing");
    }

    #[test]
    fn more_clients_at_the_same_throughput_wake_a_quiet_search() {
        let mut search = Search::new(TARGET, 2, 1, start());
        // A lone client: arrangement 1 is best, and the search goes quiet on it.
        let lone = |c: Candidate| window(if c.arrangement == 1 { 450.0 } else { 400.0 }, 4);
        run(&mut search, 100, lone);
        assert_eq!(search.current.arrangement, 1);
        // Four clients: arrangement 1 serves about as much as before, but each request
        // now waits behind three others; arrangement 0 serves more.
        let four = |c: Candidate| window(if c.arrangement == 0 { 520.0 } else { 460.0 }, 12);
        run(&mut search, 40, four);
        assert_eq!(search.current.arrangement, 0);
    }

    #[test]
    fn one_lucky_window_does_not_move_it() {
        let mut search = Search::new(TARGET, 2, 1, start());
        // Settle on the start, then probe: the probe wins its first window only.
        let mut probed = None;
        for _ in 0..10 {
            if let Some(probe) = search.step(window(300.0, 20)) {
                probed = Some(probe);
                break;
            }
        }
        let probe = probed.expect("it probes a neighbour");
        assert_ne!(probe, start());
        assert_eq!(
            search.step(window(320.0, 20)),
            None,
            "one win: keep probing"
        );
        assert_eq!(search.current(), probe);
        assert_eq!(
            search.step(window(280.0, 20)),
            Some(start()),
            "then a loss: back"
        );
        assert_eq!(search.current, start());
    }

    #[test]
    fn idle_windows_change_nothing() {
        let mut search = Search::new(TARGET, 2, 8, start());
        for _ in 0..50 {
            assert_eq!(search.step(window(5.0, 500)), None);
        }
        assert_eq!(search.current(), start());
    }
}
