//! `ferroserve serve`: the KServe v2 / Triton protocol over HTTP and gRPC, and
//! Prometheus metrics, on three ports.

use std::future::IntoFuture;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::serve::ListenerExt;
use ferroserve_engine::{EngineKind, EngineOptions};
use ferroserve_server::models::{LoadOptions, Naive};
use ferroserve_server::{ModelControlMode, Server, ServerOptions};
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Model repository (Triton layout). Default: the bundled one.
    #[arg(long, env = "FERROSERVE_MODEL_REPOSITORY")]
    model_repository: Option<PathBuf>,
    /// Address the three ports listen on.
    #[arg(long, env = "FERROSERVE_HOST", default_value = "0.0.0.0")]
    host: IpAddr,
    /// HTTP port (KServe v2 REST).
    #[arg(long, env = "FERROSERVE_HTTP_PORT", default_value_t = 8000)]
    http_port: u16,
    /// gRPC port (inference.GRPCInferenceService).
    #[arg(long, env = "FERROSERVE_GRPC_PORT", default_value_t = 8001)]
    grpc_port: u16,
    /// Prometheus metrics port (GET /metrics).
    #[arg(long, env = "FERROSERVE_METRICS_PORT", default_value_t = 8002)]
    metrics_port: u16,
    /// none: load every model at start-up; poll: also reload models that change on disk;
    /// explicit: load only --load-model, then on request through the repository API.
    #[arg(long, env = "FERROSERVE_MODEL_CONTROL_MODE", default_value = "none")]
    model_control_mode: ModelControlMode,
    /// Seconds between repository scans in poll mode.
    #[arg(long, env = "FERROSERVE_REPOSITORY_POLL_SECS", default_value_t = 15)]
    repository_poll_secs: u64,
    /// Models to load at start-up in explicit mode (repeatable).
    #[arg(
        long = "load-model",
        env = "FERROSERVE_LOAD_MODEL",
        value_delimiter = ','
    )]
    load_models: Vec<String>,
    /// Inference engine for every model: onnxruntime or tract. Default: each config's backend.
    #[arg(long, env = "FERROSERVE_ENGINE")]
    engine: Option<EngineKind>,
    /// Path of libonnxruntime.so.1.32.0 (also read from ORT_DYLIB_PATH).
    #[arg(long, env = "FERROSERVE_ONNXRUNTIME_LIBRARY")]
    onnxruntime_library: Option<PathBuf>,
    /// Threads per model instance. Default: the cores shared among a model's instances.
    #[arg(long, env = "FERROSERVE_INTRA_OP_THREADS")]
    intra_op_threads: Option<usize>,
    /// Requests a model's queue holds when its config sets no max_queue_size; more get 429.
    #[arg(long, env = "FERROSERVE_MAX_QUEUE_SIZE", default_value_t = 256)]
    max_queue_size: usize,
    /// Threads decoding and preprocessing images. Default: one per core.
    #[arg(long, env = "FERROSERVE_PREPROCESS_THREADS")]
    preprocess_threads: Option<usize>,
    /// Threads of the async runtime that handles connections.
    #[arg(long, env = "FERROSERVE_IO_THREADS", default_value_t = 2)]
    io_threads: usize,
    /// Largest request body accepted, in bytes; larger ones get 413.
    #[arg(long, env = "FERROSERVE_MAX_REQUEST_BYTES", default_value_t = 64 * 1024 * 1024)]
    max_request_bytes: usize,
    /// Bytes the response cache may hold, shared by the models whose config.pbtxt sets
    /// `response_cache { enable: true }`; 0 turns the cache off.
    #[arg(long, env = "FERROSERVE_CACHE_SIZE", default_value_t = 64 * 1024 * 1024)]
    cache_size: usize,
    /// Choose each model's instances, threads per instance, batch size and queue delay
    /// from the server's own measurements, keeping p99 under --latency-target-ms.
    /// Overrides the configurations' instance groups and dynamic batching.
    #[arg(long, env = "FERROSERVE_TUNE")]
    tune: bool,
    /// The p99 latency --tune keeps requests under, in milliseconds.
    #[arg(long, env = "FERROSERVE_LATENCY_TARGET_MS", default_value_t = 50.0)]
    latency_target_ms: f64,
    /// How long --tune measures each setting, in milliseconds.
    #[arg(long, env = "FERROSERVE_TUNE_WINDOW_MS", default_value_t = 1000)]
    tune_window_ms: u64,
    /// Turn serving techniques off, to measure what each is worth: `--naive` turns off
    /// all of them, `--naive=buffers,nodelay` only those listed. one-instance: one
    /// engine instance on all cores (one request computed at a time); buffers: allocate
    /// tensors per run; batching: no dynamic batching; cache: no response cache;
    /// nodelay: leave Nagle's algorithm on.
    #[arg(
        long,
        env = "FERROSERVE_NAIVE",
        value_delimiter = ',',
        num_args = 0..,
        require_equals = true,
        default_missing_value = "all"
    )]
    naive: Option<Vec<Technique>>,
}

/// A technique `--naive` can turn off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Technique {
    All,
    OneInstance,
    Buffers,
    Batching,
    Cache,
    Nodelay,
}

impl ServeArgs {
    /// Whether `--naive` turned `technique` off.
    fn naive(&self, technique: Technique) -> bool {
        self.naive
            .as_ref()
            .is_some_and(|off| off.contains(&Technique::All) || off.contains(&technique))
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let metrics = ferroserve_server::metrics::install()
        .map_err(|e| anyhow::anyhow!("cannot install the metrics recorder: {e}"))?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let model_repository = args
        .model_repository
        .clone()
        .unwrap_or_else(crate::default_model_repository);
    let options = ServerOptions {
        model_repository,
        control_mode: args.model_control_mode,
        startup_models: args.load_models.clone(),
        load: LoadOptions {
            engine: args.engine,
            engine_options: EngineOptions {
                intra_op_threads: 1,
                onnxruntime_library: args.onnxruntime_library.clone(),
            },
            intra_op_threads: args.intra_op_threads,
            max_queue_size: args.max_queue_size,
            tune: args.tune,
            naive: Naive {
                one_instance: args.naive(Technique::OneInstance),
                fresh_buffers: args.naive(Technique::Buffers),
                no_batching: args.naive(Technique::Batching),
            },
        },
        preprocess_threads: args.preprocess_threads.unwrap_or(cores),
        cache_bytes: if args.naive(Technique::Cache) {
            0
        } else {
            args.cache_size
        },
    };
    // Bind first, so that a taken port fails before minutes of model loading.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.io_threads.max(1))
        .thread_name("io")
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let bind = |port: u16| {
        let addr = SocketAddr::new(args.host, port);
        runtime
            .block_on(TcpListener::bind(addr))
            .with_context(|| format!("cannot listen on {addr}"))
    };
    let (http, grpc, metrics_listener) = (
        bind(args.http_port)?,
        bind(args.grpc_port)?,
        bind(args.metrics_port)?,
    );
    let server = Server::new(&options).context("starting the server")?;
    runtime.block_on(serve(
        server,
        options,
        args,
        http,
        grpc,
        metrics_listener,
        metrics,
    ))
}

async fn serve(
    server: Arc<Server>,
    options: ServerOptions,
    args: ServeArgs,
    http: TcpListener,
    grpc: TcpListener,
    metrics_listener: TcpListener,
    metrics: ferroserve_server::metrics::PrometheusHandle,
) -> anyhow::Result<()> {
    let (shutdown, _) = tokio::sync::watch::channel(false);
    if server.control_mode() == ModelControlMode::Poll {
        let server = server.clone();
        let every = Duration::from_secs(args.repository_poll_secs.max(1));
        std::thread::Builder::new()
            .name("repository-poll".into())
            .spawn(move || loop {
                std::thread::sleep(every);
                server.poll_repository();
            })
            .context("starting the repository poller")?;
    }
    let http_addr = http.local_addr()?;
    let grpc_addr = grpc.local_addr()?;
    let metrics_addr = metrics_listener.local_addr()?;
    let limits = ferroserve_server::http::HttpLimits {
        max_request_bytes: args.max_request_bytes,
    };
    let nodelay = !args.naive(Technique::Nodelay);
    let http_task = tokio::spawn(
        axum::serve(
            http.tap_io(move |tcp| no_delay(tcp, nodelay)),
            ferroserve_server::http::router(server.clone(), limits),
        )
        .with_graceful_shutdown(wait(shutdown.clone()))
        .into_future(),
    );
    let metrics_task = tokio::spawn(
        axum::serve(
            metrics_listener.tap_io(move |tcp| no_delay(tcp, nodelay)),
            ferroserve_server::http::metrics_router(metrics, server.clone()),
        )
        .with_graceful_shutdown(wait(shutdown.clone()))
        .into_future(),
    );
    let grpc_task = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(ferroserve_server::grpc::service(server.clone()))
            .serve_with_incoming_shutdown(
                TcpIncoming::from(grpc).with_nodelay(Some(nodelay)),
                wait(shutdown.clone()),
            ),
    );
    // Health answers while the models load; readiness flips once each is warmed up.
    let loader = server.clone();
    tokio::task::spawn_blocking(move || loader.load_startup_models(&options)).await?;
    if args.tune {
        ferroserve_server::tune::start(
            server.clone(),
            Duration::from_secs_f64(args.latency_target_ms.max(0.001) / 1000.0),
            Duration::from_millis(args.tune_window_ms.max(10)),
        );
    }
    let mut models = Vec::new();
    for entry in server.repository_index().unwrap_or_default() {
        if entry.state == "READY" {
            models.push(entry.name);
        } else if !entry.reason.is_empty() {
            tracing::error!(model = entry.name, "not available: {}", entry.reason);
        }
    }
    models.dedup();
    let example = models.first().cloned().unwrap_or_else(|| "MODEL".into());
    let host = if args.host.is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        args.host.to_string()
    };
    eprintln!(
        "ferroserve ready: HTTP {http_addr}, gRPC {grpc_addr}, metrics {metrics_addr}; models: {}\n\
         try: curl -s --data-binary @image.jpg 'http://{host}:{}/v2/models/{example}/classify?top_k=3'",
        models.join(", "),
        http_addr.port(),
    );
    shutdown_signal().await;
    eprintln!("ferroserve: shutting down, finishing accepted requests");
    let _ = shutdown.send(true);
    let (a, b, c) = tokio::join!(http_task, grpc_task, metrics_task);
    a??;
    b?.context("gRPC server")?;
    c??;
    let drain = server.clone();
    tokio::task::spawn_blocking(move || drain.shutdown()).await?;
    Ok(())
}

/// Small responses go out at once instead of waiting for the client's delayed ACK
/// (Nagle's algorithm costs up to 40 ms per request otherwise).
fn no_delay(tcp: &mut tokio::net::TcpStream, on: bool) {
    if let Err(e) = tcp.set_nodelay(on) {
        tracing::debug!("cannot set TCP_NODELAY: {e}");
    }
}

/// Resolves once shutdown has been asked for.
async fn wait(shutdown: tokio::sync::watch::Sender<bool>) {
    let mut receiver = shutdown.subscribe();
    let _ = receiver.wait_for(|&stop| stop).await;
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = interrupt => {},
            _ = terminate.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
