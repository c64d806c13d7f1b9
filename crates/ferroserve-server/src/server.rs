//! The protocol-neutral server: what both front ends call. It checks requests against
//! the model, preprocesses encoded images, queues jobs, and shapes responses.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferroserve_core::cache::{CacheKey, ResponseCache};
use ferroserve_core::classification::{is_probability_distribution, softmax_in_place, top_k};
use ferroserve_core::{DataType, ImagePreprocessing, ModelConfig, ModelRepository};
use tokio::sync::oneshot;

use crate::cache;
use crate::error::ServeError;
use crate::infer::{
    ClassifiedAs, InferInput, InferOutput, InferRequest, InferResponse, InputData, ModelMetadata,
    OutputData, RepositoryEntry, RequestedOutput, TensorMetadata,
};
use crate::metrics::{self as m, ModelMetrics};
use crate::models::{LoadOptions, ModelManager, ServedModel};
use crate::preprocess::PreprocessPool;
use crate::scheduler::{Job, JobResult, JobTensor};
use crate::stats::ModelStatistics;

/// The server name both front ends report.
pub const SERVER_NAME: &str = "ferroserve";

/// The protocol extensions both front ends report (as Triton, one list for both).
pub const EXTENSIONS: &[&str] = &[
    "classification",
    "binary_tensor_data",
    "model_configuration",
    "model_repository",
    "schedule_policy",
    "statistics",
];

/// When models are loaded and unloaded (Triton's `--model-control-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ModelControlMode {
    /// Load every model at start-up; the repository API cannot change them.
    #[default]
    None,
    /// Like `None`, and reload models whose files change on disk.
    Poll,
    /// Load only the models named at start-up; clients load and unload through the
    /// repository API.
    Explicit,
}

impl std::str::FromStr for ModelControlMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(ModelControlMode::None),
            "poll" => Ok(ModelControlMode::Poll),
            "explicit" => Ok(ModelControlMode::Explicit),
            other => Err(format!(
                "unknown model control mode '{other}': expected none, poll or explicit"
            )),
        }
    }
}

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub model_repository: PathBuf,
    pub control_mode: ModelControlMode,
    /// Models loaded at start-up in explicit mode.
    pub startup_models: Vec<String>,
    pub load: LoadOptions,
    /// Threads decoding and preprocessing images.
    pub preprocess_threads: usize,
    /// Bytes the response cache may hold; 0 turns it off. Only models whose
    /// configuration sets `response_cache { enable: true }` use it.
    pub cache_bytes: usize,
}

/// The server state shared by the HTTP and gRPC front ends.
pub struct Server {
    models: ModelManager,
    preprocess: PreprocessPool,
    cache: Option<ResponseCache>,
    control_mode: ModelControlMode,
    /// [`STARTING`], [`READY`] or [`STOPPING`].
    state: AtomicU8,
}

const STARTING: u8 = 0;
const READY: u8 = 1;
const STOPPING: u8 = 2;

impl Server {
    /// Opens the repository and loads the start-up models, each warmed up. A model that
    /// fails to load is reported and left unavailable; it does not stop the server.
    /// Blocking.
    pub fn start(options: ServerOptions) -> Result<Arc<Server>, ServeError> {
        let server = Server::new(&options)?;
        server.load_startup_models(&options);
        Ok(server)
    }

    /// Opens the repository without loading anything; the server is not ready until
    /// [`load_startup_models`](Self::load_startup_models) has run.
    pub fn new(options: &ServerOptions) -> Result<Arc<Server>, ServeError> {
        let repository = ModelRepository::open(&options.model_repository)
            .map_err(|e| ServeError::InvalidRequest(format!("model repository: {e}")))?;
        Ok(Arc::new(Server {
            models: ModelManager::new(repository, options.load.clone()),
            preprocess: PreprocessPool::start(
                options.preprocess_threads,
                64 * options.preprocess_threads.max(1),
            ),
            cache: (options.cache_bytes > 0).then(|| {
                let shards = 4 * std::thread::available_parallelism().map_or(1, |n| n.get());
                ResponseCache::new(options.cache_bytes, shards)
            }),
            control_mode: options.control_mode,
            state: AtomicU8::new(STARTING),
        }))
    }

    /// Loads and warms up the start-up models (every model of the repository, or the
    /// named ones in explicit mode), then marks the server ready. A model that fails to
    /// load is logged and left unavailable. Blocking.
    pub fn load_startup_models(&self, options: &ServerOptions) {
        let names: Vec<String> = match options.control_mode {
            ModelControlMode::Explicit => options.startup_models.clone(),
            _ => match self.models.repository().index() {
                Ok(entries) => entries.into_iter().map(|e| e.name).collect(),
                Err(e) => {
                    tracing::error!("cannot read the model repository: {e}");
                    Vec::new()
                }
            },
        };
        for name in &names {
            let _ = self.models.load(name);
        }
        let _ = self
            .state
            .compare_exchange(STARTING, READY, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Re-reads the repository (poll mode's periodic step). Blocking.
    pub fn poll_repository(&self) {
        self.models.poll();
    }

    pub fn control_mode(&self) -> ModelControlMode {
        self.control_mode
    }

    /// The server process is up.
    pub fn live(&self) -> bool {
        true
    }

    /// Start-up loading is done and the server is not shutting down.
    pub fn ready(&self) -> bool {
        self.state.load(Ordering::Acquire) == READY
    }

    /// Whether the model (version) is loaded, warmed up and accepting requests.
    pub fn model_ready(&self, model: &str, version: Option<u64>) -> bool {
        self.ready() && self.models.get(model, version).is_ok()
    }

    fn served(&self, model: &str, version: Option<u64>) -> Result<Arc<ServedModel>, ServeError> {
        match self.state.load(Ordering::Acquire) {
            READY => {}
            STARTING => return Err(ServeError::ModelNotReady(model.to_string())),
            _ => return Err(ServeError::ShuttingDown),
        }
        self.models.get(model, version)
    }

    /// The model's inputs and outputs, as the protocol's model metadata reports them.
    pub fn model_metadata(
        &self,
        model: &str,
        version: Option<u64>,
    ) -> Result<ModelMetadata, ServeError> {
        let served = self.served(model, version)?;
        let config = &served.model.config;
        let batched = config.max_batch_size() > 0;
        let full_shape = |dims: &[i64]| {
            let mut shape = if batched { vec![-1] } else { Vec::new() };
            shape.extend_from_slice(dims);
            shape
        };
        let versions = match version {
            Some(v) => vec![v.to_string()],
            None => self
                .models
                .loaded()
                .iter()
                .filter(|s| s.model.name == model)
                .map(|s| s.model.version.to_string())
                .collect(),
        };
        Ok(ModelMetadata {
            name: served.model.name.clone(),
            versions,
            platform: if config.platform.is_empty() {
                "onnxruntime_onnx".into()
            } else {
                config.platform.clone()
            },
            inputs: config
                .input
                .iter()
                .map(|i| TensorMetadata {
                    name: i.name.clone(),
                    datatype: i.data_type,
                    shape: full_shape(&i.dims),
                })
                .collect(),
            outputs: config
                .output
                .iter()
                .map(|o| TensorMetadata {
                    name: o.name.clone(),
                    datatype: o.data_type,
                    shape: full_shape(&o.dims),
                })
                .collect(),
        })
    }

    /// The model's configuration, completed from the model itself.
    pub fn model_config(
        &self,
        model: &str,
        version: Option<u64>,
    ) -> Result<ModelConfig, ServeError> {
        Ok(self.served(model, version)?.model.config.clone())
    }

    /// Statistics of every loaded version of `model` (of every model when `None`).
    pub fn statistics(
        &self,
        model: Option<&str>,
        version: Option<u64>,
    ) -> Result<Vec<ModelStatistics>, ServeError> {
        if let Some(name) = model {
            self.models.get(name, version)?;
        }
        Ok(self
            .models
            .loaded()
            .iter()
            .filter(|s| model.is_none_or(|m| s.model.name == m))
            .filter(|s| version.is_none_or(|v| s.model.version == v))
            .map(|s| s.stats.snapshot(&s.model.name, s.model.version))
            .collect())
    }

    /// Every loaded model version.
    pub fn loaded_models(&self) -> Vec<Arc<ServedModel>> {
        self.models.loaded()
    }

    /// The repository index.
    pub fn repository_index(&self) -> Result<Vec<RepositoryEntry>, ServeError> {
        self.models.index()
    }

    /// Loads or reloads a model (explicit mode only).
    pub async fn load_model(self: &Arc<Self>, model: &str) -> Result<(), ServeError> {
        self.require_explicit()?;
        let plain_name = !model.is_empty()
            && model != "."
            && model != ".."
            && !model.contains(['/', '\\', '\0']);
        if !plain_name {
            return Err(invalid(format!("'{model}' is not a model name")));
        }
        if !self.models.repository().root().join(model).is_dir() {
            return Err(ServeError::ModelNotFound(model.to_string()));
        }
        let server = self.clone();
        let model = model.to_string();
        tokio::task::spawn_blocking(move || server.models.load(&model))
            .await
            .map_err(|e| ServeError::Engine(e.to_string()))?
    }

    /// Unloads a model (explicit mode only).
    pub async fn unload_model(self: &Arc<Self>, model: &str) -> Result<(), ServeError> {
        self.require_explicit()?;
        self.models.unload(model)
    }

    fn require_explicit(&self) -> Result<(), ServeError> {
        if self.control_mode == ModelControlMode::Explicit {
            Ok(())
        } else {
            Err(ServeError::Unsupported(
                "models can be loaded and unloaded only with --model-control-mode explicit".into(),
            ))
        }
    }

    /// Stops accepting requests, answers those accepted, and stops the workers. Blocking.
    pub fn shutdown(&self) {
        self.state.store(STOPPING, Ordering::Release);
        self.models.drain();
    }

    /// Runs one inference request.
    pub async fn infer(&self, request: InferRequest) -> Result<InferResponse, ServeError> {
        let mut tracker = RequestTracker::start();
        let served = self.served(&request.model, request.version)?;
        tracker.model(&served);
        let result = self.infer_on(&served, request).await;
        tracker.finish(&result);
        result
    }

    async fn infer_on(
        &self,
        served: &Arc<ServedModel>,
        request: InferRequest,
    ) -> Result<InferResponse, ServeError> {
        let started = Instant::now();
        // Every request that reached the model counts in its statistics, refused ones too.
        let result = match requested_outputs(served, &request.outputs) {
            Ok(outputs) => {
                let compute = async {
                    let (inputs, rows) = self.job_inputs(served, &request.inputs).await?;
                    submit(served, inputs, rows, request.timeout, started).await
                };
                let key = || cache::request_key(served, &request.inputs);
                let result = self.through_cache(served, key, compute).await;
                result.map(|computed| (outputs, computed))
            }
            Err(e) => Err(e),
        };
        let rows = batch_rows(served, &request.inputs);
        record(
            served,
            result.as_ref().map(|(_, computed)| computed),
            rows,
            started,
        );
        let (outputs, computed) = result?;
        Ok(InferResponse {
            model: served.model.name.clone(),
            version: served.model.version,
            id: request.id,
            outputs: shape_outputs(served, &outputs, computed),
        })
    }

    /// The model's outputs from the response cache when the model uses it and holds
    /// them; else from `compute`, stored for next time when it succeeds.
    async fn through_cache(
        &self,
        served: &ServedModel,
        key: impl FnOnce() -> Option<CacheKey>,
        compute: impl Future<Output = Result<JobResult, ServeError>>,
    ) -> Result<JobResult, ServeError> {
        let cache = self.cache.as_ref().filter(|_| served.caches_responses());
        let lookup = Instant::now();
        let Some((cache, key)) = cache.zip(key()) else {
            return compute.await;
        };
        if let Some(outputs) = cache.get(&key).and_then(cache::decode) {
            served.stats.cache_hit(lookup.elapsed());
            served.metrics.cache_hits.increment(1);
            return Ok(JobResult {
                outputs,
                queued: Duration::ZERO,
                compute: Duration::ZERO,
            });
        }
        let mut spent = lookup.elapsed();
        served.metrics.cache_misses.increment(1);
        let result = compute.await;
        if let Ok(computed) = &result {
            let storing = Instant::now();
            cache.insert(key, cache::encode(&computed.outputs));
            spent += storing.elapsed();
        }
        // A miss whose computation failed is still a miss, as in the metrics above.
        served.stats.cache_miss(spent);
        result
    }

    /// Response cache gauges and counters, brought up to date (before a metrics scrape).
    pub fn publish_cache_metrics(&self) {
        if let Some(cache) = &self.cache {
            let stats = cache.stats();
            metrics::counter!(m::CACHE_EVICTIONS).absolute(stats.evictions);
            metrics::gauge!(m::CACHE_ENTRIES).set(cache.len() as f64);
            metrics::gauge!(m::CACHE_BYTES).set(cache.size_bytes() as f64);
        }
    }

    /// Checks the request's inputs against the model and lays them out in engine order,
    /// preprocessing encoded images. Returns them with the batch size.
    async fn job_inputs(
        &self,
        served: &ServedModel,
        inputs: &[InferInput],
    ) -> Result<(Vec<JobTensor>, usize), ServeError> {
        let model = &served.model;
        let config = &model.config;
        let batched = config.max_batch_size() > 0;
        for (i, input) in inputs.iter().enumerate() {
            if inputs[..i].iter().any(|other| other.name == input.name) {
                return Err(invalid(format!("input '{}' is given twice", input.name)));
            }
            if !config
                .input
                .iter()
                .any(|declared| declared.name == input.name)
            {
                let expected: Vec<&str> = config.input.iter().map(|d| d.name.as_str()).collect();
                return Err(invalid(format!(
                    "unknown input '{}' for model '{}' (inputs: {})",
                    input.name,
                    model.name,
                    expected.join(", ")
                )));
            }
        }
        let mut rows = None;
        let mut tensors = Vec::with_capacity(model.engine.inputs().len());
        for (position, spec) in model.engine.inputs().iter().enumerate() {
            let given = inputs.iter().find(|input| input.name == spec.name);
            let tensor = match given {
                Some(input) => {
                    check_input(config, input)?;
                    let InputData::Raw(data) = &input.data else {
                        return Err(invalid(format!(
                            "input '{}' is {}, not BYTES",
                            input.name, spec.dtype
                        )));
                    };
                    JobTensor {
                        dtype: input.dtype,
                        shape: input.shape.clone(),
                        data: data.clone(),
                    }
                }
                None => self.encoded_images(served, inputs, position).await?,
            };
            if batched {
                let n = tensor.shape.first().copied().unwrap_or(0);
                if n == 0 || n > config.max_batch_size() as usize {
                    return Err(invalid(format!(
                        "input '{}' has a batch of {n}; model '{}' takes 1 to {}",
                        spec.name,
                        model.name,
                        config.max_batch_size()
                    )));
                }
                if rows.is_some_and(|r| r != n) {
                    return Err(invalid(
                        "all inputs must have the same batch size".to_string(),
                    ));
                }
                rows = Some(n);
            }
            tensors.push(tensor);
        }
        Ok((tensors, rows.unwrap_or(1)))
    }

    /// The image input built from the request's encoded images, when `position` is the
    /// image input and the request carries the model's `BYTES` image input instead.
    async fn encoded_images(
        &self,
        served: &ServedModel,
        inputs: &[InferInput],
        position: usize,
    ) -> Result<JobTensor, ServeError> {
        let model = &served.model;
        let spec = &model.engine.inputs()[position];
        let encoded_name = model.encoded_image_input.as_deref();
        let encoded = inputs
            .iter()
            .find(|input| Some(input.name.as_str()) == encoded_name);
        let (Some(encoded), Some(settings), true) = (
            encoded,
            &served.preprocessing,
            model.image_input == Some(position),
        ) else {
            let alternative = encoded_name
                .map(|n| format!(" (or '{n}' with encoded images)"))
                .unwrap_or_default();
            return Err(invalid(format!(
                "missing input '{}'{alternative}",
                spec.name
            )));
        };
        let InputData::Strings(images) = &encoded.data else {
            return Err(invalid(format!(
                "input '{}' must be BYTES (encoded images)",
                encoded.name
            )));
        };
        let batched = model.max_batch_size() > 0;
        let shape_ok = match encoded.shape.as_slice() {
            [n] => *n == images.len(),
            [n, 1] => batched && *n == images.len(),
            _ => false,
        };
        if !shape_ok || images.is_empty() || (!batched && images.len() != 1) {
            return Err(invalid(format!(
                "input '{}' must hold one encoded image per batch row, shape [n] or [n, 1]; got shape {:?} with {} images",
                encoded.name,
                encoded.shape,
                images.len()
            )));
        }
        self.image_batch(served, settings, images).await
    }

    /// Decodes and preprocesses `images` into the model's image input, with a batch
    /// dimension when the model batches.
    async fn image_batch(
        &self,
        served: &ServedModel,
        settings: &Arc<ImagePreprocessing>,
        images: &[Bytes],
    ) -> Result<JobTensor, ServeError> {
        let model = &served.model;
        let position = model.image_input.ok_or_else(|| {
            ServeError::Unsupported(format!("model '{}' has no image input", model.name))
        })?;
        let started = Instant::now();
        let data = self.preprocess.preprocess(settings, images).await?;
        served
            .metrics
            .preprocess_seconds
            .record(started.elapsed().as_secs_f64());
        let mut shape = Vec::with_capacity(4);
        if model.max_batch_size() > 0 {
            shape.push(images.len());
        }
        shape.extend(settings.image_shape());
        Ok(JobTensor {
            dtype: model.engine.inputs()[position].dtype,
            shape,
            data: Bytes::from(data.as_bytes().to_vec()),
        })
    }

    /// Classifies one encoded image with the model's first output: the `top_k` classes
    /// with probabilities (softmax applied unless the scores already are probabilities).
    pub async fn classify_image(
        &self,
        model: &str,
        version: Option<u64>,
        image: Bytes,
        top_k_classes: usize,
    ) -> Result<Vec<ClassifiedAs>, ServeError> {
        let mut tracker = RequestTracker::start();
        let served = self.served(model, version)?;
        tracker.model(&served);
        let result = self.classify_on(&served, image, top_k_classes).await;
        tracker.finish(&result);
        result
    }

    async fn classify_on(
        &self,
        served: &Arc<ServedModel>,
        image: Bytes,
        top_k_classes: usize,
    ) -> Result<Vec<ClassifiedAs>, ServeError> {
        let model = &served.model.name;
        let Some(settings) = served.preprocessing.clone() else {
            return Err(ServeError::Unsupported(format!(
                "model '{model}' declares no image preprocessing (parameters preprocess.*)"
            )));
        };
        if served.model.engine.inputs().len() != 1 {
            return Err(ServeError::Unsupported(format!(
                "model '{model}' takes more than the image"
            )));
        }
        let started = Instant::now();
        let compute = async {
            let tensor = self
                .image_batch(served, &settings, std::slice::from_ref(&image))
                .await?;
            submit(served, vec![tensor], 1, None, started).await
        };
        let key = || Some(cache::image_key(served, &image));
        let result = self.through_cache(served, key, compute).await;
        record(served, result.as_ref(), 1, started);
        let result = result?;
        let output = &result.outputs[0];
        if output.dtype != DataType::Fp32 {
            return Err(ServeError::Unsupported(format!(
                "model '{model}' does not output FP32 scores"
            )));
        }
        let mut scores: Vec<f32> = output
            .data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if served
            .model
            .softmax
            .unwrap_or_else(|| !is_probability_distribution(&scores))
        {
            softmax_in_place(&mut scores);
        }
        let labels = served.model.labels.first().and_then(Option::as_ref);
        Ok(top_k(&scores, top_k_classes)
            .into_iter()
            .map(|c| ClassifiedAs {
                label: labels.and_then(|l| l.get(c.index)).map(str::to_string),
                index: c.index,
                probability: c.score,
            })
            .collect())
    }
}

/// Counts a request in flight and, when dropped (also when the client goes away
/// mid-request), records its outcome and duration.
struct RequestTracker {
    started: Instant,
    metrics: Option<Arc<ModelMetrics>>,
    outcome: &'static str,
}

impl RequestTracker {
    fn start() -> Self {
        metrics::gauge!(m::INFLIGHT).increment(1.0);
        RequestTracker {
            started: Instant::now(),
            metrics: None,
            outcome: "cancelled",
        }
    }

    fn model(&mut self, served: &ServedModel) {
        self.metrics = Some(served.metrics.clone());
    }

    fn finish<T>(&mut self, result: &Result<T, ServeError>) {
        self.outcome = match result {
            Ok(_) => "success",
            Err(e) => e.kind(),
        };
    }
}

impl Drop for RequestTracker {
    fn drop(&mut self) {
        metrics::gauge!(m::INFLIGHT).decrement(1.0);
        if let Some(metrics) = &self.metrics {
            match self.outcome {
                "success" => metrics.succeeded.increment(1),
                failed => metrics.failed(failed).increment(1),
            }
            metrics
                .request_seconds
                .record(self.started.elapsed().as_secs_f64());
        }
    }
}

/// Records a finished request in the model's statistics and metrics.
fn record(
    served: &ServedModel,
    result: Result<&JobResult, &ServeError>,
    rows: usize,
    started: Instant,
) {
    let queued = result.map_or(Duration::ZERO, |r| r.queued);
    let elapsed = started.elapsed();
    served.stats.request(result.is_ok(), rows, elapsed, queued);
    if let Some(latencies) = &served.latencies {
        latencies.record(elapsed);
    }
    if result.is_ok() {
        served.metrics.queue_seconds.record(queued.as_secs_f64());
        served.metrics.inferences.increment(rows as u64);
    }
}

/// The batch rows of a request: the first dimension of its first input when the model
/// batches.
fn batch_rows(served: &ServedModel, inputs: &[InferInput]) -> usize {
    match inputs.first() {
        Some(input) if served.model.max_batch_size() > 0 => {
            input.shape.first().copied().unwrap_or(1)
        }
        _ => 1,
    }
}

fn invalid(message: String) -> ServeError {
    ServeError::InvalidRequest(message)
}

/// Checks one tensor input's datatype, shape and byte size against its declaration.
fn check_input(config: &ModelConfig, input: &InferInput) -> Result<(), ServeError> {
    let declared = config
        .input
        .iter()
        .find(|d| d.name == input.name)
        .expect("checked by the caller");
    if input.dtype != declared.data_type {
        return Err(invalid(format!(
            "input '{}' must be {}, got {}",
            input.name, declared.data_type, input.dtype
        )));
    }
    let batched = config.max_batch_size() > 0;
    let dims = if batched {
        input.shape.get(1..).unwrap_or(&[])
    } else {
        &input.shape[..]
    };
    let fits = (!batched || !input.shape.is_empty())
        && dims.len() == declared.dims.len()
        && dims
            .iter()
            .zip(&declared.dims)
            .all(|(&got, &want)| want < 0 || got as i64 == want);
    if !fits {
        let mut expected = if batched { vec![-1] } else { Vec::new() };
        expected.extend_from_slice(&declared.dims);
        return Err(invalid(format!(
            "input '{}' must have shape {expected:?}, got {:?}",
            input.name, input.shape
        )));
    }
    if let (InputData::Raw(data), Some(size)) = (&input.data, input.dtype.size()) {
        let expected = input
            .shape
            .iter()
            .try_fold(size, |n, &d| n.checked_mul(d))
            .ok_or_else(|| {
                invalid(format!(
                    "input '{}' has an impossibly large shape {:?}",
                    input.name, input.shape
                ))
            })?;
        if data.len() != expected {
            return Err(invalid(format!(
                "input '{}' of shape {:?} and type {} needs {expected} bytes, got {}",
                input.name,
                input.shape,
                input.dtype,
                data.len()
            )));
        }
    }
    Ok(())
}

/// The outputs to return as (engine output position, classification), checked.
fn requested_outputs(
    served: &ServedModel,
    requested: &[RequestedOutput],
) -> Result<Vec<(usize, Option<usize>)>, ServeError> {
    let config = &served.model.config;
    let engine_outputs = served.model.engine.outputs();
    let position = |name: &str| engine_outputs.iter().position(|o| o.name == name);
    if requested.is_empty() {
        return Ok(config
            .output
            .iter()
            .filter_map(|o| position(&o.name))
            .map(|p| (p, None))
            .collect());
    }
    requested
        .iter()
        .map(|r| {
            let served_output = config.output.iter().any(|o| o.name == r.name);
            match position(&r.name) {
                Some(p) if served_output => {
                    if r.classification == Some(0) {
                        return Err(invalid(format!(
                            "output '{}': classification must ask for at least 1 class",
                            r.name
                        )));
                    }
                    Ok((p, r.classification))
                }
                _ => Err(invalid(format!(
                    "unknown output '{}' for model '{}'",
                    r.name, served.model.name
                ))),
            }
        })
        .collect()
}

async fn submit(
    served: &ServedModel,
    inputs: Vec<JobTensor>,
    rows: usize,
    timeout: Option<Duration>,
    started: Instant,
) -> Result<JobResult, ServeError> {
    let (reply, result) = oneshot::channel();
    let job = Job {
        inputs,
        rows,
        enqueued: Instant::now(),
        deadline: timeout.map(|t| started + t),
        reply,
    };
    served.scheduler.submit(job)?;
    result
        .await
        .map_err(|_| ServeError::Engine("the model worker stopped".into()))?
}

/// The response tensors: raw outputs, or classification strings.
fn shape_outputs(
    served: &ServedModel,
    outputs: &[(usize, Option<usize>)],
    mut result: JobResult,
) -> Vec<InferOutput> {
    let specs = served.model.engine.outputs();
    outputs
        .iter()
        .map(|&(position, classification)| {
            let tensor = &mut result.outputs[position];
            let name = specs[position].name.clone();
            match classification {
                None => InferOutput {
                    name,
                    dtype: tensor.dtype,
                    shape: tensor.shape.clone(),
                    data: OutputData::Raw(tensor.data.clone()),
                },
                Some(k) => classify_output(served, position, name, tensor, k),
            }
        })
        .collect()
}

/// Triton's classification extension: per batch row, the top `k` entries as
/// `"<value>:<index>[:<label>]"`.
fn classify_output(
    served: &ServedModel,
    position: usize,
    name: String,
    tensor: &JobTensor,
    k: usize,
) -> InferOutput {
    let values: Vec<f32> = to_f32(tensor);
    let batched = served.model.max_batch_size() > 0;
    let rows = if batched {
        tensor.shape.first().copied().unwrap_or(1).max(1)
    } else {
        1
    };
    let per_row = values.len() / rows;
    let k = k.min(per_row);
    let labels = served.model.labels.get(position).and_then(Option::as_ref);
    let mut strings = Vec::with_capacity(rows * k);
    for row in values.chunks(per_row.max(1)) {
        for class in top_k(row, k) {
            strings.push(match labels.and_then(|l| l.get(class.index)) {
                Some(label) => format!("{}:{}:{label}", class.score, class.index),
                None => format!("{}:{}", class.score, class.index),
            });
        }
    }
    let shape = if batched { vec![rows, k] } else { vec![k] };
    InferOutput {
        name,
        dtype: DataType::Bytes,
        shape,
        data: OutputData::Strings(strings),
    }
}

/// The output's values as `f32`, whatever numeric type it has.
fn to_f32(tensor: &JobTensor) -> Vec<f32> {
    macro_rules! convert {
        ($t:ty) => {
            tensor
                .data
                .chunks_exact(std::mem::size_of::<$t>())
                .map(|b| {
                    <$t>::from_le_bytes(b.try_into().expect("chunk has the element size")) as f32
                })
                .collect()
        };
    }
    match tensor.dtype {
        DataType::Fp32 => convert!(f32),
        DataType::Fp64 => convert!(f64),
        DataType::Int8 => convert!(i8),
        DataType::Int16 => convert!(i16),
        DataType::Int32 => convert!(i32),
        DataType::Int64 => convert!(i64),
        DataType::Uint8 | DataType::Bool => convert!(u8),
        DataType::Uint16 => convert!(u16),
        DataType::Uint32 => convert!(u32),
        DataType::Uint64 => convert!(u64),
        DataType::Fp16 | DataType::Bytes => Vec::new(),
    }
}
