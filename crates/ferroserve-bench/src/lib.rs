//! `ferroserve bench`: a load generator for a KServe v2 / Triton server, or for the
//! engine alone in this process (the ceiling a server is measured against).
//!
//! Each level of a sweep warms up for `--warmup` (not recorded), then measures for
//! `--duration`. A closed loop (`--concurrency`) keeps N requests outstanding, one per
//! connection; an open loop (`--rate`) sends on a schedule regardless of replies and
//! times each request from its scheduled send, so a slow server cannot hide its queue
//! (no coordinated omission). Latencies of successful requests go into HDR histograms at
//! microsecond resolution; failures are counted by kind. Results go to a table on
//! stdout, and optionally to JSON and PNG charts.
//!
//! Modules: `payload` builds what is sent from the model's metadata and the input files,
//! `target` sends it over each protocol and checks the replies, `load` drives the closed
//! and open loops, `in_process` runs the engine alone, `tally` counts, `report` and
//! `chart` write the results.

mod chart;
mod in_process;
mod load;
mod payload;
mod report;
mod tally;
mod target;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use ferroserve_core::Precision;
use ferroserve_engine::EngineKind;

use report::{Level, Load};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Server's HTTP address (KServe v2 REST), for the http, http-json and image protocols.
    #[arg(
        long,
        env = "FERROSERVE_BENCH_URL",
        default_value = "http://127.0.0.1:8000"
    )]
    url: String,
    /// Server's gRPC address, for the grpc protocol.
    #[arg(
        long,
        env = "FERROSERVE_BENCH_GRPC_URL",
        default_value = "http://127.0.0.1:8001"
    )]
    grpc_url: String,
    /// Model to send requests to.
    #[arg(long, default_value = "efficientnet-lite0")]
    model: String,
    /// http: tensors in Triton's binary extension; http-json: tensors as JSON; grpc:
    /// ModelInfer with raw tensor contents; image: POST .../classify with the encoded image.
    #[arg(long, value_enum, default_value_t = Protocol::Http)]
    protocol: Protocol,
    /// Closed loop: sweep these numbers of concurrent requests (one connection each),
    /// comma-separated. The default when neither this nor --rate is given: 1.
    #[arg(long, value_delimiter = ',', conflicts_with = "rate")]
    concurrency: Vec<usize>,
    /// Open loop: sweep these request rates (requests per second), comma-separated.
    #[arg(long, value_delimiter = ',')]
    rate: Vec<f64>,
    /// Open loop: send times at constant intervals, or as a Poisson process of that rate.
    #[arg(long, value_enum, default_value_t = Arrivals::Constant)]
    arrivals: Arrivals,
    /// Open loop: requests outstanding at most; a request due when this many are
    /// outstanding is not sent and counts as a `dropped` error.
    #[arg(long, default_value_t = 256)]
    max_in_flight: usize,
    /// Warm-up before each level's measurement, not recorded (e.g. 2s, 500ms).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Measurement window of each level (e.g. 10s, 1m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// A request unanswered after this long counts as a `timeout` error.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    timeout: Duration,
    /// One input row: raw little-endian tensor data of the model's input (e.g. a
    /// 3x224x224 FP32 file). Default: random data of the input's shape.
    #[arg(long, conflicts_with = "image")]
    input: Option<PathBuf>,
    /// An encoded image (JPEG, PNG, ...): the body of the image protocol, or the value of
    /// a model's BYTES input; in-process, it is preprocessed once into the image input.
    #[arg(long)]
    image: Option<PathBuf>,
    /// Rows per request: the input repeated this many times along the batch dimension.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also draw PNG charts (throughput, latency percentiles and distribution) into this folder.
    #[arg(long)]
    chart: Option<PathBuf>,
    /// No progress bar (it is also hidden when stderr is not a terminal).
    #[arg(long)]
    quiet: bool,
    /// Threads of the client's async runtime. Default: one per core.
    #[arg(long)]
    client_threads: Option<usize>,

    /// No server: load the model here and measure the engine alone (closed loop only).
    #[arg(long)]
    in_process: bool,
    /// In-process: model repository (Triton layout). Default: the bundled one.
    #[arg(long, env = "FERROSERVE_MODEL_REPOSITORY")]
    pub model_repository: Option<PathBuf>,
    /// In-process: model instances, each its own engine session on its own thread.
    /// Without --instances and --threads, both `cores`x1 and 1x`cores` are measured.
    #[arg(long, requires = "in_process")]
    instances: Option<usize>,
    /// In-process: intra-op threads of each instance.
    #[arg(long, requires = "in_process")]
    threads: Option<usize>,
    /// In-process: inference engine, onnxruntime, openvino or tract. Default: the
    /// model's configuration (its backend, or ONNX Runtime's openvino accelerator).
    #[arg(long, env = "FERROSERVE_ENGINE")]
    engine: Option<EngineKind>,
    /// In-process: precision, auto, f32, bf16, f16 or int8. Default: the model's
    /// configuration, else f32.
    #[arg(long, env = "FERROSERVE_PRECISION")]
    precision: Option<Precision>,
    /// In-process: path of libonnxruntime.so.1.32.0 (also read from ORT_DYLIB_PATH).
    #[arg(long, env = "FERROSERVE_ONNXRUNTIME_LIBRARY")]
    onnxruntime_library: Option<PathBuf>,
    /// In-process: path of OpenVINO's libopenvino_c.so.2641 (also read from
    /// OPENVINO_LIB_PATH).
    #[arg(long, env = "FERROSERVE_OPENVINO_LIBRARY")]
    openvino_library: Option<PathBuf>,
}

/// How requests reach the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// KServe v2 HTTP with Triton's binary tensor data extension.
    Http,
    /// KServe v2 HTTP with tensors as JSON arrays.
    HttpJson,
    /// `inference.GRPCInferenceService/ModelInfer` with raw tensor contents.
    Grpc,
    /// `POST /v2/models/{m}/classify` with the encoded image as the body.
    Image,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::HttpJson => "http-json",
            Protocol::Grpc => "grpc",
            Protocol::Image => "image",
        }
    }
}

/// When an open loop sends its requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Arrivals {
    /// Every 1/rate seconds.
    Constant,
    /// Exponentially distributed gaps of mean 1/rate seconds.
    Poisson,
}

/// When a level records: replies after `start` and before `end` count.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub start: Instant,
    pub end: Instant,
}

impl Window {
    /// The window that opens `warmup` from now and lasts `duration`.
    fn after(warmup: Duration, duration: Duration) -> Window {
        let start = Instant::now() + warmup;
        Window {
            start,
            end: start + duration,
        }
    }

    pub fn contains(&self, instant: Instant) -> bool {
        self.start <= instant && instant < self.end
    }

    pub fn duration(&self) -> Duration {
        self.end - self.start
    }
}

/// What every level of a run shares.
pub struct Timing {
    pub warmup: Duration,
    pub duration: Duration,
    pub timeout: Duration,
}

pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    check(&args)?;
    let report = if args.in_process {
        in_process::run(&args)?
    } else {
        load::run(&args)?
    };
    report.print(&mut std::io::stdout().lock())?;
    report.print_failures(&mut std::io::stderr().lock())?;
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report.to_json())?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(dir) = &args.chart {
        let written = chart::draw(&report, dir)?;
        for path in written {
            eprintln!("wrote {}", path.display());
        }
    }
    let failed: Vec<String> = report
        .levels
        .iter()
        .filter(|level| level.tally.successes() == 0)
        .map(Level::label)
        .collect();
    if failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "error: no request succeeded at {}; see the errors above",
            failed.join(", ")
        );
        Ok(ExitCode::from(1))
    }
}

/// Refuses contradictory or empty settings before anything is loaded or sent.
fn check(args: &BenchArgs) -> anyhow::Result<()> {
    if args.concurrency.contains(&0) {
        bail!("--concurrency must be at least 1");
    }
    if let Some(rate) = args.rate.iter().find(|r| !(r.is_finite() && **r > 0.0)) {
        bail!("--rate must be a positive number of requests per second, got {rate}");
    }
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    if args.duration.is_zero() {
        bail!("--duration must be longer than 0");
    }
    if args.max_in_flight == 0 {
        bail!("--max-in-flight must be at least 1");
    }
    if args.instances == Some(0) || args.threads == Some(0) {
        bail!("--instances and --threads must be at least 1");
    }
    if args.client_threads == Some(0) {
        bail!("--client-threads must be at least 1");
    }
    if args.in_process && !args.rate.is_empty() {
        bail!("--in-process measures a closed loop: give --concurrency, not --rate");
    }
    if args.protocol == Protocol::Image && !args.in_process {
        if args.image.is_none() {
            bail!("--protocol image sends an encoded image: give --image FILE");
        }
        if args.batch != 1 {
            bail!("--protocol image sends one image per request: --batch must be 1");
        }
        if args.input.is_some() {
            bail!("--protocol image sends --image, not a tensor: drop --input");
        }
    }
    Ok(())
}

/// The levels to sweep, in the order given.
fn loads(args: &BenchArgs) -> Vec<Load> {
    if !args.rate.is_empty() {
        args.rate.iter().map(|&r| Load::Rate(r)).collect()
    } else if args.concurrency.is_empty() {
        vec![Load::Concurrency(1)]
    } else {
        args.concurrency
            .iter()
            .map(|&c| Load::Concurrency(c))
            .collect()
    }
}

/// One line on stderr as each level ends, unless `--quiet`.
fn summarize(args: &BenchArgs, level: &Level) {
    if args.quiet {
        return;
    }
    let latencies = &level.tally.latencies;
    let ms = |q: f64| latencies.value_at_quantile(q) as f64 / 1000.0;
    eprintln!(
        "{}: {:.1} req/s, p50 {:.2} ms, p99 {:.2} ms, {} errors",
        level.label(),
        level.throughput(),
        ms(0.5),
        ms(0.99),
        level.tally.failed()
    );
}

/// A progress bar on stderr for one level, or a hidden one.
fn progress_bar(args: &BenchArgs, label: &str) -> indicatif::ProgressBar {
    if args.quiet || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let total = (args.warmup + args.duration).as_millis() as u64;
    let bar = indicatif::ProgressBar::new(total);
    let style = indicatif::ProgressStyle::with_template("{prefix:>14} [{bar:30}] {msg}")
        .expect("a valid template")
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(label.to_string());
    bar
}

/// Runs `measure` on its own thread while the progress bar follows the clock and
/// `replies` (every reply so far, warm-up included).
fn with_progress<T: Send>(
    bar: &indicatif::ProgressBar,
    timing: &Timing,
    replies: &std::sync::atomic::AtomicU64,
    measure: impl FnOnce() -> T + Send,
) -> T {
    let started = Instant::now();
    std::thread::scope(|scope| {
        let worker = scope.spawn(measure);
        while !worker.is_finished() {
            let elapsed = started.elapsed();
            let phase = if elapsed < timing.warmup {
                "warm-up"
            } else if elapsed < timing.warmup + timing.duration {
                "measuring"
            } else {
                "draining"
            };
            let count = replies.load(std::sync::atomic::Ordering::Relaxed);
            bar.set_position(elapsed.as_millis() as u64);
            bar.set_message(format!("{phase}, {count} replies"));
            std::thread::sleep(Duration::from_millis(100));
        }
        bar.finish_and_clear();
        match worker.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Parses `2s`, `500ms`, `1.5s`, `1m`, `100us` or a plain number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a duration: expected e.g. 2s, 500ms, 1m"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1e3,
        "us" | "µs" => value / 1e6,
        "m" | "min" => value * 60.0,
        other => {
            return Err(format!(
                "unknown unit '{other}' in '{text}': expected us, ms, s or m"
            ))
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("'{text}': {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("0.5s"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("100us"), Ok(Duration::from_micros(100)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("2h").is_err());
    }

    #[test]
    fn a_window_holds_its_start_but_not_its_end() {
        let window = Window::after(Duration::ZERO, Duration::from_secs(1));
        assert!(window.contains(window.start));
        assert!(!window.contains(window.end));
        assert_eq!(window.duration(), Duration::from_secs(1));
    }
}
