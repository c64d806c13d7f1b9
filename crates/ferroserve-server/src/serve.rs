//! The serve lifecycle in one call, [`run`]: bind the three ports, load the models while
//! health already answers, serve HTTP, gRPC and metrics, poll the repository and tune
//! when asked, and on SIGINT/SIGTERM stop accepting, answer every accepted request and
//! exit.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ferroserve_runtime::{ModelControlMode, Runtime, RuntimeOptions, ServeError};
use tokio::net::TcpListener;

use crate::access::AccessRules;
use crate::connections::{self, ConnectionLimits, Tls, TlsFiles};
use crate::http::HttpLimits;
use crate::traces::Traces;

/// Everything `ferroserve serve` needs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub runtime: RuntimeOptions,
    /// Address the three ports listen on.
    pub host: IpAddr,
    /// The HTTP port; `None` serves no HTTP (KServe's `--allow-http=false`).
    pub http_port: Option<u16>,
    /// The gRPC port; `None` serves no gRPC (`--allow-grpc=false`).
    pub grpc_port: Option<u16>,
    pub metrics_port: u16,
    /// After SIGTERM: how long readiness answers 503 while requests are still served, so
    /// that load balancers stop sending new ones (Kubernetes removes the endpoint).
    pub drain_delay: Duration,
    /// After the drain delay: how long in-flight and queued requests may take before the
    /// process exits anyway, with an error.
    pub exit_timeout: Duration,
    /// Time between repository scans in poll mode.
    pub repository_poll: Duration,
    /// Threads of the async runtime that handles connections.
    pub io_threads: usize,
    pub http_limits: HttpLimits,
    /// Connection cap, health headroom and header timeout, on each port.
    pub connections: ConnectionLimits,
    /// Serve HTTP and gRPC over TLS with these files (the metrics port stays plain).
    pub tls: Option<TlsFiles>,
    /// Largest gRPC message, either way; larger ones get RESOURCE_EXHAUSTED.
    pub grpc_max_message_bytes: usize,
    /// Which APIs need a key, and which browser origins may call across origins.
    pub access: AccessRules,
    /// `--tune`: the p99 target and the measuring window.
    pub tune: Option<TuneConfig>,
    /// Send small responses at once (TCP_NODELAY); off only to measure what it is worth.
    pub nodelay: bool,
    /// Export a span per inference request to this OTLP/gRPC collector
    /// (`http://HOST:4317`); `None`: no traces.
    pub otlp_endpoint: Option<String>,
}

/// How `--tune` runs.
#[derive(Debug, Clone, Copy)]
pub struct TuneConfig {
    pub latency_target: Duration,
    pub window: Duration,
}

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot install the metrics recorder: {0}")]
    Metrics(String),
    #[error("cannot start the async runtime: {0}")]
    AsyncRuntime(#[source] std::io::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Runtime(#[from] ServeError),
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("gRPC server: {0}")]
    Grpc(#[from] tonic::transport::Error),
    #[error("a server task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("traces: {0}")]
    Traces(String),
    #[error("requests were still in flight after the exit timeout of {0:?}")]
    ExitTimeout(Duration),
}

/// Serves until SIGINT or SIGTERM, then answers the accepted requests and returns.
/// Blocking. The ports are bound before the models load, so that a taken port fails at
/// once; health answers while the models load and readiness flips once each is warm.
pub fn run(config: ServeConfig) -> Result<(), RunError> {
    Server::bind(config)?.serve_until(shutdown_signal())
}

/// A server whose ports are bound and whose runtime is open, models not yet loaded.
pub struct Server {
    io: tokio::runtime::Runtime,
    runtime: Arc<Runtime>,
    config: ServeConfig,
    listeners: Listeners,
    addresses: Addresses,
    metrics: ferroserve_runtime::metrics::PrometheusHandle,
    tls: Option<PortsTls>,
    traces: Traces,
}

/// The TLS of the HTTP port (offering HTTP/2 and HTTP/1.1) and of the gRPC port (HTTP/2).
struct PortsTls {
    http: Arc<Tls>,
    grpc: Arc<Tls>,
}

/// Where a bound server listens (the ports are known even when 0 was asked for).
#[derive(Debug, Clone, Copy)]
pub struct Addresses {
    pub http: Option<SocketAddr>,
    pub grpc: Option<SocketAddr>,
    pub metrics: SocketAddr,
}

struct Listeners {
    http: Option<TcpListener>,
    grpc: Option<TcpListener>,
    metrics: TcpListener,
}

impl Server {
    /// Installs the metrics recorder, starts the async runtime, binds the three ports,
    /// sets up the traces' exporter and opens the model repository.
    pub fn bind(config: ServeConfig) -> Result<Server, RunError> {
        let metrics = ferroserve_runtime::metrics::install().map_err(RunError::Metrics)?;
        let io = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.io_threads.max(1))
            .thread_name("io")
            .enable_all()
            .build()
            .map_err(RunError::AsyncRuntime)?;
        let bind = |port: u16| {
            let addr = SocketAddr::new(config.host, port);
            io.block_on(TcpListener::bind(addr))
                .map_err(|source| RunError::Bind { addr, source })
        };
        let listeners = Listeners {
            http: config.http_port.map(bind).transpose()?,
            grpc: config.grpc_port.map(bind).transpose()?,
            metrics: bind(config.metrics_port)?,
        };
        let local = |listener: &TcpListener| {
            listener.local_addr().map_err(|source| RunError::Io {
                what: "reading a listener's address",
                source,
            })
        };
        let addresses = Addresses {
            http: listeners.http.as_ref().map(local).transpose()?,
            grpc: listeners.grpc.as_ref().map(local).transpose()?,
            metrics: local(&listeners.metrics)?,
        };
        let tls = match &config.tls {
            None => None,
            Some(files) => Some(PortsTls {
                http: Arc::new(
                    Tls::new(files.clone(), &["h2", "http/1.1"]).map_err(RunError::Tls)?,
                ),
                grpc: Arc::new(Tls::new(files.clone(), &["h2"]).map_err(RunError::Tls)?),
            }),
        };
        let traces = match &config.otlp_endpoint {
            // The exporter's connection lives on the async runtime.
            Some(endpoint) => {
                let _runtime = io.enter();
                let traces = Traces::export_to(endpoint).map_err(RunError::Traces)?;
                tracing::info!(endpoint, "traces: exporting spans over OTLP/gRPC");
                traces
            }
            None => Traces::off(),
        };
        let runtime = Runtime::new(&config.runtime)?;
        Ok(Server {
            io,
            runtime,
            config,
            listeners,
            addresses,
            metrics,
            tls,
            traces,
        })
    }

    pub fn addresses(&self) -> Addresses {
        self.addresses
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// Serves, loads the start-up models, and once `stop` resolves stops accepting,
    /// answers every accepted request and returns. Blocking.
    pub fn serve_until(
        self,
        stop: impl std::future::Future<Output = ()> + Send,
    ) -> Result<(), RunError> {
        let Server {
            io,
            runtime,
            config,
            listeners,
            addresses,
            metrics,
            tls,
            traces,
        } = self;
        let ports = Ports {
            listeners,
            addresses,
            tls,
        };
        io.block_on(serve(runtime, config, ports, metrics, traces, stop))
    }
}

/// The bound ports, where they are, and their TLS.
struct Ports {
    listeners: Listeners,
    addresses: Addresses,
    tls: Option<PortsTls>,
}

async fn serve(
    runtime: Arc<Runtime>,
    config: ServeConfig,
    ports: Ports,
    metrics: ferroserve_runtime::metrics::PrometheusHandle,
    traces: Traces,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), RunError> {
    let Ports {
        listeners,
        addresses,
        tls,
    } = ports;
    // Polled once now, so that the signal handlers are installed before the models load:
    // a SIGTERM from then on drains the server instead of killing it.
    let mut stop = std::pin::pin!(stop);
    let stopped = tokio::select! {
        biased;
        () = &mut stop => true,
        () = std::future::ready(()) => false,
    };
    let (shutdown, _) = tokio::sync::watch::channel(false);
    if runtime.control_mode() == ModelControlMode::Poll {
        let runtime = runtime.clone();
        let every = config.repository_poll.max(Duration::from_secs(1));
        std::thread::Builder::new()
            .name("repository-poll".into())
            .spawn(move || loop {
                std::thread::sleep(every);
                runtime.poll_repository();
            })
            .map_err(|source| RunError::Io {
                what: "starting the repository poller",
                source,
            })?;
    }
    let nodelay = config.nodelay;
    let access = Arc::new(config.access.clone());
    let mut tasks = tokio::task::JoinSet::new();
    let inference = connections::Connections::new(config.connections);
    let health = crate::http::health_router(runtime.clone());
    if let Some(http) = listeners.http {
        let app = crate::http::router(
            runtime.clone(),
            config.http_limits,
            access.clone(),
            traces.clone(),
        );
        let serving = connections::serve_http(
            http,
            app,
            health.clone(),
            inference.clone(),
            tls.as_ref().map(|t| t.http.clone()),
            nodelay,
            shutdown.subscribe(),
        );
        tasks.spawn(async move {
            serving.await;
            Ok(())
        });
    }
    let serving = connections::serve_http(
        listeners.metrics,
        crate::http::metrics_router(metrics, runtime.clone()),
        health,
        connections::Connections::new(config.connections.for_metrics()),
        None,
        nodelay,
        shutdown.subscribe(),
    );
    tasks.spawn(async move {
        serving.await;
        Ok(())
    });
    if let Some(grpc) = listeners.grpc {
        let service = crate::grpc::service(
            runtime.clone(),
            access.clone(),
            config.grpc_max_message_bytes,
            traces.clone(),
        );
        let incoming = connections::grpc_incoming(
            grpc,
            inference.clone(),
            tls.as_ref().map(|t| t.grpc.clone()),
            nodelay,
        );
        let serving = tonic::transport::Server::builder()
            .max_concurrent_streams(GRPC_MAX_STREAMS)
            .http2_max_header_list_size(GRPC_MAX_HEADER_BYTES)
            .http2_keepalive_interval(Some(Duration::from_secs(60)))
            .http2_keepalive_timeout(Some(Duration::from_secs(20)))
            .layer(connections::GrpcCalls)
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, wait(shutdown.clone()));
        tasks.spawn(async move { serving.await.map_err(RunError::Grpc) });
    }
    let loader = runtime.clone();
    let options = config.runtime.clone();
    tokio::task::spawn_blocking(move || loader.load_startup_models(&options)).await?;
    if let Some(tune) = config.tune {
        runtime.start_tuner(tune.latency_target, tune.window);
    }
    announce(&runtime, &config, addresses);
    if !stopped {
        stop.await;
    }
    runtime.begin_drain();
    eprintln!(
        "ferroserve: shutting down: not ready; serving for {:?} more, then finishing accepted requests",
        config.drain_delay
    );
    tokio::time::sleep(config.drain_delay).await;
    let _ = shutdown.send(true);
    let finish = async {
        while let Some(task) = tasks.join_next().await {
            task??;
        }
        let drain = runtime.clone();
        tokio::task::spawn_blocking(move || drain.shutdown()).await?;
        tokio::task::spawn_blocking(move || traces.shutdown(TRACES_FLUSH_TIMEOUT)).await?;
        Ok(())
    };
    tokio::time::timeout(config.exit_timeout, finish)
        .await
        .map_err(|_| RunError::ExitTimeout(config.exit_timeout))?
}

/// Longest the last spans may take to reach the collector at shutdown.
const TRACES_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Streams one gRPC connection may have open at once.
const GRPC_MAX_STREAMS: u32 = 256;
/// Largest header block of a gRPC request.
const GRPC_MAX_HEADER_BYTES: u32 = 32 * 1024;

/// The line users wait for: where to connect, what is served, and a first command.
fn announce(runtime: &Runtime, config: &ServeConfig, addresses: Addresses) {
    let Addresses {
        http,
        grpc,
        metrics,
    } = addresses;
    let show = |address: Option<SocketAddr>| address.map_or("off".to_string(), |a| a.to_string());
    let mut models = Vec::new();
    for entry in runtime.repository_index().unwrap_or_default() {
        if entry.state == "READY" {
            models.push(entry.name);
        } else if !entry.reason.is_empty() {
            tracing::error!(model = entry.name, "not available: {}", entry.reason);
        }
    }
    models.dedup();
    let example = models.first().cloned().unwrap_or_else(|| "MODEL".into());
    let host = if config.host.is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        config.host.to_string()
    };
    eprintln!(
        "ferroserve ready: HTTP {}, gRPC {}, metrics {metrics}; models: {}",
        show(http),
        show(grpc),
        models.join(", "),
    );
    if let Some(http) = http {
        eprintln!(
            "try: curl -s --data-binary @image.jpg 'http://{host}:{}/v2/models/{example}/classify?top_k=3'",
            http.port()
        );
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
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {},
                    _ = terminate.recv() => {},
                }
            }
            Err(e) => {
                tracing::warn!("cannot watch for SIGTERM ({e}); stopping on SIGINT only");
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
