//! What a measurement counts: the latency of each successful request in an HDR
//! histogram (microseconds), failed requests by kind, and how fast an overloaded server
//! said no (the latency of its refusals).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Longest latency the histograms hold (an hour, in microseconds); longer ones are
/// recorded as this.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// Why a request did not count as a success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureKind {
    /// The HTTP server answered with this status instead of 200.
    Http(u16),
    /// The gRPC server answered with this status code.
    Grpc(tonic::Code),
    /// No connection could be made.
    Connect,
    /// No reply within `--timeout`.
    Timeout,
    /// The connection failed while sending or receiving.
    Io,
    /// A success status, but the reply lacks an expected output or has the wrong size.
    BadReply,
    /// Open loop: not sent, because `--max-in-flight` requests were outstanding.
    Dropped,
    /// In-process: the engine failed or panicked.
    Engine,
}

impl FailureKind {
    /// Whether the server refused the request for want of capacity (HTTP 429 or 503,
    /// gRPC RESOURCE_EXHAUSTED or UNAVAILABLE): an answer whose speed matters under
    /// overload.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            FailureKind::Http(429 | 503)
                | FailureKind::Grpc(tonic::Code::ResourceExhausted | tonic::Code::Unavailable)
        )
    }
}

impl fmt::Display for FailureKind {
    /// The key in the report: `http_503`, `grpc_unavailable`, `timeout`, ...
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureKind::Http(status) => write!(f, "http_{status}"),
            FailureKind::Grpc(code) => write!(f, "grpc_{}", snake_case(&format!("{code:?}"))),
            FailureKind::Connect => f.write_str("connect"),
            FailureKind::Timeout => f.write_str("timeout"),
            FailureKind::Io => f.write_str("io"),
            FailureKind::BadReply => f.write_str("bad_reply"),
            FailureKind::Dropped => f.write_str("dropped"),
            FailureKind::Engine => f.write_str("engine"),
        }
    }
}

/// `ResourceExhausted` → `resource_exhausted`.
fn snake_case(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 4);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// A failed request: its kind, and what the server or the connection said.
#[derive(Debug, Clone)]
pub struct Failure {
    pub kind: FailureKind,
    pub detail: String,
}

impl Failure {
    pub fn new(kind: FailureKind, detail: impl Into<String>) -> Failure {
        Failure {
            kind,
            detail: detail.into(),
        }
    }
}

/// The outcomes of the requests of one worker, or of a whole level once merged.
#[derive(Debug, Clone)]
pub struct Tally {
    /// Latencies of successful requests, in microseconds.
    pub latencies: Histogram<u64>,
    /// Latencies of refusals ([`FailureKind::is_refusal`]), in microseconds.
    pub refusals: Histogram<u64>,
    /// Failed requests by kind (the kind's report key).
    pub failures: BTreeMap<String, u64>,
    /// The first failure's detail of each kind, to show what went wrong.
    pub examples: BTreeMap<String, String>,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            latencies: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .expect("valid histogram bounds"),
            refusals: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .expect("valid histogram bounds"),
            failures: BTreeMap::new(),
            examples: BTreeMap::new(),
        }
    }
}

impl Tally {
    pub fn record(&mut self, outcome: &Result<(), Failure>, latency: Duration) {
        match outcome {
            Ok(()) => self.success(latency),
            Err(failure) => {
                if failure.kind.is_refusal() {
                    self.refusals.saturating_record(micros(latency));
                }
                self.failure(failure)
            }
        }
    }

    pub fn success(&mut self, latency: Duration) {
        self.latencies.saturating_record(micros(latency));
    }

    pub fn failure(&mut self, failure: &Failure) {
        let key = failure.kind.to_string();
        *self.failures.entry(key.clone()).or_default() += 1;
        self.examples
            .entry(key)
            .or_insert_with(|| failure.detail.clone());
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &Tally) {
        self.latencies
            .add(&other.latencies)
            .expect("histograms of equal bounds merge");
        self.refusals
            .add(&other.refusals)
            .expect("histograms of equal bounds merge");
        for (kind, count) in &other.failures {
            *self.failures.entry(kind.clone()).or_default() += count;
        }
        for (kind, detail) in &other.examples {
            self.examples
                .entry(kind.clone())
                .or_insert_with(|| detail.clone());
        }
    }

    pub fn successes(&self) -> u64 {
        self.latencies.len()
    }

    pub fn failed(&self) -> u64 {
        self.failures.values().sum()
    }
}

/// A latency in whole microseconds, within what the histograms hold.
fn micros(latency: Duration) -> u64 {
    u64::try_from(latency.as_micros())
        .unwrap_or(u64::MAX)
        .clamp(1, MAX_LATENCY_US)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_kinds_have_stable_report_keys() {
        assert_eq!(FailureKind::Http(429).to_string(), "http_429");
        assert_eq!(
            FailureKind::Grpc(tonic::Code::ResourceExhausted).to_string(),
            "grpc_resource_exhausted"
        );
        assert_eq!(
            FailureKind::Grpc(tonic::Code::Unavailable).to_string(),
            "grpc_unavailable"
        );
        assert_eq!(FailureKind::BadReply.to_string(), "bad_reply");
    }

    #[test]
    fn merged_tallies_add_up_and_keep_the_first_example() {
        let mut a = Tally::default();
        a.success(Duration::from_millis(2));
        a.failure(&Failure::new(FailureKind::Http(503), "first"));
        let mut b = Tally::default();
        b.success(Duration::from_millis(4));
        b.success(Duration::ZERO);
        b.failure(&Failure::new(FailureKind::Http(503), "second"));
        b.failure(&Failure::new(FailureKind::Timeout, "slow"));
        a.merge(&b);
        assert_eq!(a.successes(), 3);
        assert_eq!(a.failed(), 3);
        assert_eq!(a.failures["http_503"], 2);
        assert_eq!(a.examples["http_503"], "first");
        assert_eq!(a.latencies.min(), 1, "a zero latency is recorded as 1 µs");
        assert!(a.latencies.max() >= 4000);
    }

    #[test]
    fn refusals_keep_their_latency_and_other_failures_do_not() {
        let mut tally = Tally::default();
        let refused = Failure::new(FailureKind::Http(429), "queue full");
        let exhausted = Failure::new(FailureKind::Grpc(tonic::Code::ResourceExhausted), "");
        tally.record(&Err(refused), Duration::from_millis(3));
        tally.record(&Err(exhausted), Duration::from_millis(1));
        tally.record(
            &Err(Failure::new(FailureKind::Http(400), "bad")),
            Duration::from_secs(1),
        );
        tally.record(
            &Err(Failure::new(FailureKind::Timeout, "")),
            Duration::from_secs(30),
        );
        assert_eq!(tally.refusals.len(), 2);
        assert!(tally.refusals.max() < 3100);
        assert_eq!(tally.failed(), 4);
        assert_eq!(tally.successes(), 0);
    }
}
