//! What the server's integration tests share: [`TestServer::start`], the one way a test
//! starts a server (the real serve lifecycle of `ferroserve serve`, on ephemeral ports of
//! 127.0.0.1), the reference results, and copying a model folder.

#![allow(dead_code)] // each test binary uses its own part of this module

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ferroserve_core::reference::Reference;
use ferroserve_runtime::{LoadOptions, ModelControlMode, Runtime, RuntimeOptions};
use ferroserve_server::http::HttpLimits;
use ferroserve_server::{Addresses, RunError, ServeConfig, Server};

pub const MODEL: &str = "efficientnet-lite0";

/// The checkout's root (the bundled repository is `models/` below it).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The bundled model repository.
pub fn bundled_models() -> PathBuf {
    repo_root().join("models")
}

/// The sample photos with their reference inputs and top-5.
pub fn reference() -> &'static Reference {
    static REFERENCE: OnceLock<Reference> = OnceLock::new();
    REFERENCE.get_or_init(Reference::bundled)
}

/// One row of logits against the reference top-5 of `image`.
pub fn assert_matches_reference(image: &str, logits: &[f32]) {
    assert_eq!(logits.len(), 1000, "{image}: one logit per class");
    reference().check_logits(image, logits).unwrap();
}

/// Little-endian f32 bytes as values.
pub fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

/// The configuration tests start from: `repository` in `mode`, on ephemeral ports of
/// 127.0.0.1, one intra-op thread per instance, a queue of 64, two preprocessing
/// threads, a 1 MiB response cache, the default HTTP limits, no tuning, and no
/// repository polling of its own (a test polls when it wants to).
pub fn config(repository: PathBuf, control_mode: ModelControlMode) -> ServeConfig {
    ServeConfig {
        runtime: RuntimeOptions {
            model_repository: repository,
            control_mode,
            startup_models: Vec::new(),
            load: LoadOptions {
                engine: None,
                engine_options: Default::default(),
                intra_op_threads: Some(1),
                max_queue_size: 64,
                max_queue_wait: None,
                tune: false,
                naive: Default::default(),
            },
            preprocess_threads: 2,
            links: Default::default(),
            cache_bytes: 1 << 20,
        },
        host: IpAddr::V4(Ipv4Addr::LOCALHOST),
        http_port: Some(0),
        grpc_port: Some(0),
        metrics_port: 0,
        drain_delay: Duration::ZERO,
        exit_timeout: Duration::from_secs(30),
        repository_poll: Duration::from_secs(24 * 3600),
        io_threads: 2,
        http_limits: HttpLimits::default(),
        grpc_max_message_bytes: ferroserve_server::grpc::MAX_MESSAGE_BYTES,
        connections: ferroserve_server::connections::ConnectionLimits::for_this_process(),
        tls: None,
        access: Default::default(),
        tune: None,
        nodelay: true,
        otlp_endpoint: None,
    }
}

/// A server on a thread of its own, stopped (accepted requests answered) when dropped.
pub struct TestServer {
    runtime: Arc<Runtime>,
    addresses: Addresses,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), RunError>>>,
}

impl TestServer {
    /// Starts a server on `config` and returns once its start-up models are loaded.
    /// Blocking; callable from a test's async runtime.
    pub fn start(config: ServeConfig) -> TestServer {
        let (bound, started) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let server = Server::bind(config)?;
            bound
                .send((server.runtime().clone(), server.addresses()))
                .unwrap();
            server.serve_until(async {
                let _ = stopped.await;
            })
        });
        let Ok((runtime, addresses)) = started.recv() else {
            panic!("the test server did not start: {:?}", thread.join());
        };
        while !runtime.ready() {
            assert!(
                !thread.is_finished(),
                "the test server stopped while loading"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        TestServer {
            runtime,
            addresses,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// A server on the bundled repository with every model loaded.
    pub fn bundled() -> TestServer {
        TestServer::start(config(bundled_models(), ModelControlMode::None))
    }

    /// The HTTP URL of `path` (`/v2/...`).
    pub fn url(&self, path: &str) -> String {
        let http = self.addresses.http.expect("the test server serves HTTP");
        format!("http://{http}{path}")
    }

    /// The gRPC endpoint.
    pub fn grpc_url(&self) -> String {
        let grpc = self.addresses.grpc.expect("the test server serves gRPC");
        format!("http://{grpc}")
    }

    /// The metrics port's URL of `path`.
    pub fn metrics_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addresses.metrics)
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// Stops accepting, answers every accepted request, and returns how serving ended.
    pub fn stop(mut self) -> Result<(), RunError> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> Result<(), RunError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take() {
            Some(thread) => thread.join().expect("the server thread does not panic"),
            None => Ok(()),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}

/// A copy of some bundled models in a temporary folder, removed on drop.
pub struct TempRepository(tempfile::TempDir);

impl TempRepository {
    /// A repository holding `models` of the bundled one.
    pub fn with_bundled(models: &[&str]) -> TempRepository {
        let folder = tempfile::tempdir().unwrap();
        for model in models {
            copy_dir(&bundled_models().join(model), &folder.path().join(model));
        }
        TempRepository(folder)
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }

    /// The configuration of [`config`] on this repository.
    pub fn config(&self, control_mode: ModelControlMode) -> ServeConfig {
        config(self.path().to_path_buf(), control_mode)
    }
}

/// Copies the folder `from` (a model, say) to `to`, recursively, following links.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if std::fs::metadata(entry.path()).unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
