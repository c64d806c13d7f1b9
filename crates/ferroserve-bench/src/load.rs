//! Load on a server: the closed loop (N workers, each with its own connection, sending
//! the next request when the last is answered) and the open loop (requests sent on a
//! schedule, whatever the replies).
//!
//! Closed loop: a reply counts when it arrives inside the measurement window; its
//! latency runs from its send. Throughput is successful replies in the window divided
//! by the window.
//!
//! Open loop: a scheduler thread sends request `k` at `start + k/rate` (constant
//! arrivals) or after exponential gaps (Poisson), each on its own task, and never waits
//! for replies. A request counts when it is *scheduled* inside the window, and its
//! latency runs from its scheduled time, so time spent waiting behind a slow server or
//! a late scheduler is measured, not omitted. At most `--max-in-flight` requests are
//! outstanding; one due beyond that is not sent and counts as `dropped`. Throughput is
//! the window's successes divided by the time from the window's start until the last
//! of them was answered (at least the window).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use tokio::runtime::Runtime;

use super::payload::{self, Random, Sources};
use super::report::{Level, Load, Report};
use super::tally::{Failure, FailureKind, Tally};
use super::target::{Connection, Target};
use super::{Arrivals, BenchArgs, Protocol, Timing, Window};

/// gRPC connections an open loop spreads its requests over (each multiplexes many).
const OPEN_LOOP_GRPC_CONNECTIONS: usize = 4;

/// Measures every level of `args` against the server.
pub fn run(args: &BenchArgs) -> anyhow::Result<Report> {
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.client_threads {
        runtime.worker_threads(threads);
    }
    let runtime = runtime
        .thread_name("bench-client")
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let image = match &args.image {
        Some(path) => {
            Some(Bytes::from(std::fs::read(path).with_context(|| {
                format!("reading --image {}", path.display())
            })?))
        }
        None => None,
    };
    let row = match &args.input {
        Some(path) => Some((
            std::fs::read(path).with_context(|| format!("reading --input {}", path.display()))?,
            format!("--input {}", path.display()),
        )),
        None => None,
    };
    let sources = Sources {
        row: row
            .as_ref()
            .map(|(data, what)| (data.as_slice(), what.clone())),
        image: image.as_deref(),
    };
    let build = |meta: &payload::ModelMeta| payload::build(&args.model, meta, args.batch, &sources);
    let target = runtime.block_on(Target::prepare(
        args.protocol,
        &args.url,
        &args.grpc_url,
        &args.model,
        build,
        image.clone(),
    ))?;
    // One request first: a refused request fails here with the server's reason, not
    // as a table of errors after the whole sweep.
    runtime
        .block_on(async {
            let mut connection = target.connect(1).await?;
            connection.infer().await
        })
        .map_err(|failure| {
            anyhow::anyhow!(
                "the first request to model '{}' at {} failed ({}): {}",
                args.model,
                target.address,
                failure.kind,
                failure.detail
            )
        })?;

    let timing = Timing {
        warmup: args.warmup,
        duration: args.duration,
        timeout: args.timeout,
    };
    let mut levels = Vec::new();
    for load in super::loads(args) {
        let label = match load {
            Load::Concurrency(c) => format!("concurrency {c}"),
            Load::Rate(r) => format!("rate {r}/s"),
        };
        let bar = super::progress_bar(args, &label);
        let replies = Arc::new(AtomicU64::new(0));
        let (tally, elapsed) = super::with_progress(&bar, &timing, &replies, || match load {
            Load::Concurrency(c) => runtime.block_on(closed_loop(&target, c, &timing, &replies)),
            Load::Rate(rate) => open_loop(&runtime, &target, rate, args, &timing, &replies),
        })?;
        let level = Level {
            load,
            arrangement: None,
            tally,
            elapsed,
        };
        super::summarize(args, &level);
        levels.push(level);
    }
    Ok(Report {
        target: target.address.clone(),
        model: args.model.clone(),
        protocol: args.protocol.name().to_string(),
        batch: if args.protocol == Protocol::Image {
            1
        } else {
            args.batch
        },
        warmup: args.warmup,
        duration: args.duration,
        arrivals: (!args.rate.is_empty()).then_some(args.arrivals),
        engine: None,
        precision: None,
        levels,
    })
}

/// `concurrency` workers, each with its own connection, for one warm-up and window.
async fn closed_loop(
    target: &Target,
    concurrency: usize,
    timing: &Timing,
    replies: &Arc<AtomicU64>,
) -> anyhow::Result<(Tally, Duration)> {
    let mut connections = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let connection = target
            .connect(1)
            .await
            .map_err(|f| anyhow::anyhow!("{}", f.detail))
            .context("opening the workers' connections")?;
        connections.push(connection);
    }
    let window = Window::after(timing.warmup, timing.duration);
    let mut workers = tokio::task::JoinSet::new();
    for connection in connections {
        workers.spawn(closed_worker(
            connection,
            window,
            timing.timeout,
            replies.clone(),
        ));
    }
    let mut tally = Tally::default();
    while let Some(worker) = workers.join_next().await {
        tally.merge(&worker.context("a bench worker failed")?);
    }
    Ok((tally, window.duration()))
}

async fn closed_worker(
    mut connection: Connection,
    window: Window,
    timeout: Duration,
    replies: Arc<AtomicU64>,
) -> Tally {
    let mut tally = Tally::default();
    loop {
        let sent = Instant::now();
        if sent >= window.end {
            break;
        }
        let outcome = send(&mut connection, timeout).await;
        let done = Instant::now();
        replies.fetch_add(1, Ordering::Relaxed);
        if window.contains(done) {
            tally.record(&outcome, done - sent);
        }
        if let Err(Failure {
            kind: FailureKind::Connect,
            ..
        }) = outcome
        {
            // The server is gone: retry, but do not spin.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    tally
}

async fn send(connection: &mut Connection, timeout: Duration) -> Result<(), Failure> {
    match tokio::time::timeout(timeout, connection.infer()).await {
        Ok(outcome) => outcome,
        Err(_) => Err(Failure::new(
            FailureKind::Timeout,
            format!("no reply within {timeout:?}"),
        )),
    }
}

/// What the open loop's requests share.
#[derive(Default)]
struct OpenLoopTally {
    tally: Tally,
    /// When the last request scheduled in the window was answered.
    last_reply: Option<Instant>,
}

/// Sends at `rate` per second for one warm-up and window, from this thread; requests
/// run on `runtime`.
fn open_loop(
    runtime: &Runtime,
    target: &Target,
    rate: f64,
    args: &BenchArgs,
    timing: &Timing,
    replies: &Arc<AtomicU64>,
) -> anyhow::Result<(Tally, Duration)> {
    let count = if args.protocol == Protocol::Grpc {
        OPEN_LOOP_GRPC_CONNECTIONS
    } else {
        1
    };
    let connections = runtime
        .block_on(async {
            let mut connections = Vec::with_capacity(count);
            for _ in 0..count {
                connections.push(target.connect(args.max_in_flight).await?);
            }
            Ok::<_, Failure>(connections)
        })
        .map_err(|f| anyhow::anyhow!("opening connections: {}", f.detail))?;
    let shared = Arc::new(Mutex::new(OpenLoopTally::default()));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut random = Random::seeded();
    let origin = Instant::now();
    let window = Window {
        start: origin + timing.warmup,
        end: origin + timing.warmup + timing.duration,
    };
    let mut offset = 0.0f64;
    for k in 0.. {
        let due = origin + Duration::from_secs_f64(offset);
        if due >= window.end {
            break;
        }
        offset = match args.arrivals {
            Arrivals::Constant => (k + 1) as f64 / rate,
            Arrivals::Poisson => offset - (1.0 - random.next_f64()).ln() / rate,
        };
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let measured = window.contains(due);
        if in_flight.load(Ordering::Acquire) >= args.max_in_flight {
            if measured {
                let failure = Failure::new(
                    FailureKind::Dropped,
                    format!(
                        "not sent: {} requests were outstanding (--max-in-flight)",
                        args.max_in_flight
                    ),
                );
                lock(&shared).tally.failure(&failure);
            }
            continue;
        }
        in_flight.fetch_add(1, Ordering::AcqRel);
        let mut connection = connections[k % connections.len()].clone();
        let (shared, in_flight, replies) = (shared.clone(), in_flight.clone(), replies.clone());
        let timeout = timing.timeout;
        runtime.spawn(async move {
            let outcome = send(&mut connection, timeout).await;
            let done = Instant::now();
            if measured {
                let mut shared = lock(&shared);
                shared.tally.record(&outcome, done - due);
                shared.last_reply = shared.last_reply.max(Some(done));
            }
            replies.fetch_add(1, Ordering::Relaxed);
            in_flight.fetch_sub(1, Ordering::AcqRel);
        });
    }
    // Every request ends within its timeout, so this wait does too.
    while in_flight.load(Ordering::Acquire) > 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let shared = std::mem::take(&mut *lock(&shared));
    let answered = shared.last_reply.map_or(Duration::ZERO, |last| {
        last.saturating_duration_since(window.start)
    });
    Ok((shared.tally, answered.max(window.duration())))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
