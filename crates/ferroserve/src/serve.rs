//! `ferroserve serve`: the command line turned into a [`ServeConfig`] for
//! [`ferroserve_server::run`].

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferroserve_core::Links;
use ferroserve_runtime::{LoadOptions, ModelControlMode, Naive, RuntimeOptions};
use ferroserve_server::access::{AccessRules, Restriction};
use ferroserve_server::connections::{ConnectionLimits, TlsFiles};
use ferroserve_server::http::HttpLimits;
use ferroserve_server::{ServeConfig, TuneConfig};

use crate::engine::EngineArgs;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Model repository (Triton layout). Default: the bundled one. `--model-store` is
    /// accepted too, as Triton (and KServe's Triton runtime) spell it.
    /// A folder holding just a `model.onnx` (KServe's single-model layout) is served as
    /// the one model `--model-name`, its configuration completed from the model.
    #[arg(
        long,
        visible_alias = "model-store",
        env = "FERROSERVE_MODEL_REPOSITORY"
    )]
    model_repository: Option<PathBuf>,
    /// Let symbolic links in the model repository lead outside it. Off: every file the
    /// server opens (model folders, config.pbtxt, model and label files) must resolve
    /// inside the repository.
    #[arg(long, env = "FERROSERVE_ALLOW_LINKS_OUTSIDE_REPOSITORY")]
    allow_links_outside_repository: bool,
    /// The model's name in the single-model layout (KServe passes the
    /// InferenceService's name).
    #[arg(long, env = "FERROSERVE_MODEL_NAME", default_value = "model")]
    model_name: String,
    /// Address the three ports listen on. The default, 127.0.0.1, serves this machine
    /// only; `--host 0.0.0.0` exposes the server (the container image sets it, where the
    /// pod's network and its Service decide who can connect).
    #[arg(long, env = "FERROSERVE_HOST", default_value = "127.0.0.1")]
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
    /// Serve HTTP (`--allow-http=false` turns it off, as in Triton).
    #[arg(long, env = "FERROSERVE_ALLOW_HTTP", default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    allow_http: bool,
    /// Serve gRPC (`--allow-grpc=false` turns it off, as in Triton).
    #[arg(long, env = "FERROSERVE_ALLOW_GRPC", default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    allow_grpc: bool,
    /// On SIGTERM, seconds during which readiness answers 503 while requests are still
    /// served, so that load balancers stop sending new ones first.
    #[arg(long, env = "FERROSERVE_DRAIN_DELAY_SECS", default_value_t = 0.0)]
    drain_delay_secs: f64,
    /// After the drain delay, seconds accepted requests may take to finish before the
    /// process exits anyway (with status 1).
    #[arg(long, env = "FERROSERVE_EXIT_TIMEOUT_SECS", default_value_t = 30.0)]
    exit_timeout_secs: f64,
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
    #[command(flatten)]
    engine: EngineArgs,
    /// Threads per model instance. Default: the cores shared among a model's instances.
    #[arg(long, env = "FERROSERVE_INTRA_OP_THREADS")]
    intra_op_threads: Option<usize>,
    /// Requests a model's queue holds when its config sets no max_queue_size; more get 429.
    #[arg(long, env = "FERROSERVE_MAX_QUEUE_SIZE", default_value_t = 256)]
    max_queue_size: usize,
    /// Longest a request may be expected to wait in a model's queue, in milliseconds: a
    /// request that would wait longer behind the work already queued (as the model's
    /// measured time per request says) gets 429 at once instead of a late answer.
    /// 0: no bound by time, only by --max-queue-size.
    #[arg(long, env = "FERROSERVE_MAX_QUEUE_WAIT_MS", default_value_t = 500)]
    max_queue_wait_ms: u64,
    /// Threads decoding and preprocessing images. Default: one per core.
    #[arg(long, env = "FERROSERVE_PREPROCESS_THREADS")]
    preprocess_threads: Option<usize>,
    /// Threads of the async runtime that handles connections.
    #[arg(long, env = "FERROSERVE_IO_THREADS", default_value_t = 2)]
    io_threads: usize,
    /// Largest request body accepted, in bytes; larger ones get 413.
    #[arg(long, env = "FERROSERVE_MAX_REQUEST_BYTES", default_value_t = 64 * 1024 * 1024)]
    max_request_bytes: usize,
    /// Connections served at once on the HTTP and gRPC ports together; beyond, 64 more
    /// get only the health routes on HTTP. Default: three quarters of the open-file
    /// limit, less that headroom and the metrics port's 40 (its own cap).
    #[arg(long, env = "FERROSERVE_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Seconds a client has to send a request head, and to send the next request on an
    /// idle keep-alive connection (slow or idle clients are then disconnected); also
    /// bounds a TLS handshake.
    #[arg(long, env = "FERROSERVE_HEADER_TIMEOUT_SECS", default_value_t = 30.0)]
    header_timeout_secs: f64,
    /// Seconds a request body may pause before the request is answered with 408.
    #[arg(long, env = "FERROSERVE_BODY_TIMEOUT_SECS", default_value_t = 30.0)]
    body_timeout_secs: f64,
    /// Serve HTTP and gRPC over TLS with this certificate chain (PEM); reloaded when
    /// the file changes. Needs --tls-key.
    #[arg(long, env = "FERROSERVE_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "FERROSERVE_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// Require client certificates signed by these CAs (PEM): mutual TLS.
    #[arg(long, env = "FERROSERVE_TLS_CLIENT_CA")]
    tls_client_ca: Option<PathBuf>,
    /// Largest gRPC message either way, in bytes; larger ones get RESOURCE_EXHAUSTED.
    #[arg(long, env = "FERROSERVE_GRPC_MAX_MESSAGE_BYTES", default_value_t = ferroserve_server::grpc::MAX_MESSAGE_BYTES)]
    grpc_max_message_bytes: usize,
    /// Restrict API groups to clients sending a header, on HTTP and gRPC alike:
    /// `GROUP[,GROUP...]:HEADER=VALUE` (repeatable; Triton's --http-restricted-api and
    /// --grpc-restricted-protocol are accepted as aliases). Groups: metadata, inference,
    /// shared-memory, model-config, model-repository, statistics, trace, logging; health
    /// stays open. `Authorization: Bearer VALUE` is accepted in place of the header.
    #[arg(
        long,
        env = "FERROSERVE_RESTRICTED_API",
        visible_aliases = ["http-restricted-api", "grpc-restricted-protocol"],
        value_delimiter = ';'
    )]
    restricted_api: Vec<Restriction>,
    /// Origins whose browser pages may call the server across origins (CORS), e.g.
    /// `https://app.example.com`, or `*`; off by default. Without it, state-changing
    /// requests (repository control) from a page of another origin are refused.
    #[arg(long, env = "FERROSERVE_CORS_ALLOW_ORIGIN", value_delimiter = ',')]
    cors_allow_origin: Vec<String>,
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
    /// Export traces over OTLP/gRPC to this collector, e.g. `http://localhost:4317`: a
    /// span per inference request (HTTP and gRPC) with child spans for its queue,
    /// preprocessing and compute, continuing the trace of a W3C `traceparent` the
    /// request carries. Without it, `OTEL_EXPORTER_OTLP_ENDPOINT` is used if set; else
    /// no traces.
    #[arg(long, env = "FERROSERVE_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
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
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let model_repository = args
        .model_repository
        .clone()
        .unwrap_or_else(crate::default_model_repository);
    let (model_repository, links) =
        match single_model_repository(&model_repository, &args.model_name)? {
            // The single model's link leads to the folder it was given in.
            Some(repository) => (repository, Links::Inside(vec![model_repository])),
            None => (model_repository, Links::default()),
        };
    let links = if args.allow_links_outside_repository {
        Links::Anywhere
    } else {
        links
    };
    let runtime = RuntimeOptions {
        model_repository,
        control_mode: args.model_control_mode,
        startup_models: args.load_models.clone(),
        load: LoadOptions {
            engine: args.engine.engine,
            engine_options: args.engine.options(),
            intra_op_threads: args.intra_op_threads,
            max_queue_size: args.max_queue_size,
            max_queue_wait: (args.max_queue_wait_ms > 0)
                .then(|| Duration::from_millis(args.max_queue_wait_ms)),
            tune: args.tune,
            naive: Naive {
                one_instance: args.naive(Technique::OneInstance),
                fresh_buffers: args.naive(Technique::Buffers),
                no_batching: args.naive(Technique::Batching),
            },
        },
        preprocess_threads: args.preprocess_threads.unwrap_or(cores),
        links,
        cache_bytes: if args.naive(Technique::Cache) {
            0
        } else {
            args.cache_size
        },
    };
    let config = ServeConfig {
        runtime,
        host: args.host,
        http_port: args.allow_http.then_some(args.http_port),
        grpc_port: args.allow_grpc.then_some(args.grpc_port),
        metrics_port: args.metrics_port,
        drain_delay: seconds(args.drain_delay_secs),
        exit_timeout: seconds(args.exit_timeout_secs),
        repository_poll: Duration::from_secs(args.repository_poll_secs),
        io_threads: args.io_threads,
        http_limits: HttpLimits {
            max_request_bytes: args.max_request_bytes,
            body_timeout: seconds(args.body_timeout_secs),
        },
        connections: {
            let mut limits = ConnectionLimits::for_this_process();
            if let Some(max) = args.max_connections {
                limits.max_connections = max;
            }
            limits.header_timeout = seconds(args.header_timeout_secs);
            limits
        },
        tls: match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: args.tls_client_ca.clone(),
            }),
            (None, None) if args.tls_client_ca.is_none() => None,
            _ => anyhow::bail!("TLS needs both --tls-cert and --tls-key"),
        },
        grpc_max_message_bytes: args.grpc_max_message_bytes,
        access: AccessRules::new(args.restricted_api.clone(), args.cors_allow_origin.clone())
            .map_err(anyhow::Error::msg)?,
        tune: args.tune.then(|| TuneConfig {
            latency_target: Duration::from_secs_f64(args.latency_target_ms.max(0.001) / 1000.0),
            window: Duration::from_millis(args.tune_window_ms.max(10)),
        }),
        nodelay: !args.naive(Technique::Nodelay),
        otlp_endpoint: args.otlp_endpoint.clone().or_else(|| {
            std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
                .ok()
                .filter(|endpoint| !endpoint.is_empty())
        }),
    };
    Ok(ferroserve_server::run(config)?)
}

/// A non-negative number of seconds from the command line.
fn seconds(value: f64) -> Duration {
    Duration::try_from_secs_f64(value.max(0.0)).unwrap_or(Duration::MAX)
}

/// KServe's single-model layout: `folder` holds a `model.onnx` and no model folders. It
/// is served as a repository of one model, `name`, version 1, without a configuration
/// (completed from the model): a folder under the temporary directory linking to the
/// file. `None` for any other layout.
fn single_model_repository(folder: &Path, name: &str) -> anyhow::Result<Option<PathBuf>> {
    let file = folder.join("model.onnx");
    if !file.is_file() {
        return Ok(None);
    }
    let plain = !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\\']);
    if !plain {
        anyhow::bail!("--model-name '{name}' is not a plain folder name");
    }
    let repository = std::env::temp_dir().join(format!("ferroserve-{}", std::process::id()));
    let version = repository.join(name).join("1");
    std::fs::create_dir_all(&version)?;
    let target = version.join("model.onnx");
    let _ = std::fs::remove_file(&target);
    std::os::unix::fs::symlink(file.canonicalize()?, target)?;
    tracing::info!("serving the single model file as '{name}'");
    Ok(Some(repository))
}
