//! The `ferroserve` command: wiring only. `serve` runs `ferroserve-server`, `classify`
//! runs files through `ferroserve-runtime`, `bench` is `ferroserve-bench`.
#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod accuracy;
mod classify;
mod config;
mod engine;
mod serve;

/// ferroserve: a low-latency inference server for ONNX image classifiers.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Log filter (tracing's EnvFilter syntax), e.g. `info` or `ferroserve=debug`;
    /// `access=info` adds one line per request.
    #[arg(long, global = true, env = "FERROSERVE_LOG", default_value = "warn")]
    log: String,

    /// text: for people (coloured only on a terminal); json: one JSON object per line.
    #[arg(
        long,
        global = true,
        env = "FERROSERVE_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the models of a repository over HTTP and gRPC (KServe v2 / Triton protocol).
    Serve(serve::ServeArgs),
    /// Classify image files and folders with a model, in parallel, and print the top classes.
    Classify(classify::ClassifyArgs),
    /// Measure a server's throughput and latency percentiles under load (closed or open
    /// loop, HTTP, gRPC or images), or the engine alone in this process.
    Bench(ferroserve_bench::BenchArgs),
    /// Measure how often an engine, a precision or a quantized model changes a
    /// classifier's top-1 and top-5 against a reference, over image files and folders.
    Accuracy(accuracy::AccuracyArgs),
    /// Check a Triton model repository without serving it, or print a model's
    /// completed configuration.
    Config(config::ConfigArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&cli.log))
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().with_current_span(false).init(),
    }
    let result = match cli.command {
        Command::Serve(args) => serve::run(args).map(|()| ExitCode::SUCCESS),
        Command::Classify(args) => classify::run(args),
        Command::Config(args) => config::run(args),
        Command::Accuracy(args) => accuracy::run(args),
        Command::Bench(mut args) => {
            args.model_repository
                .get_or_insert_with(default_model_repository);
            ferroserve_bench::run(args)
        }
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// The model repository at `path`, or the bundled one.
fn open_repository(path: Option<&Path>) -> anyhow::Result<ferroserve_core::ModelRepository> {
    let dir = path.map_or_else(default_model_repository, Path::to_path_buf);
    ferroserve_core::ModelRepository::open(&dir)
        .map_err(|e| anyhow::anyhow!("model repository {}: {e}", dir.display()))
}

/// The bundled model repository: `models/` beside the executable or in a folder above it
/// (a source checkout), else the checkout this binary was built from.
fn default_model_repository() -> PathBuf {
    let marker = Path::new("models/efficientnet-lite0/config.pbtxt");
    let found = std::env::current_exe().ok().and_then(|exe| {
        exe.ancestors()
            .skip(1)
            .find(|dir| dir.join(marker).is_file())
            .map(|dir| dir.join("models"))
    });
    found.unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models"))
}
