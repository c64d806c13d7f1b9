//! The protocol-neutral runtime: what both front ends and `ferroserve classify` call.
//! A request goes one way through four stages: admission (checked against the model's
//! [`Signature`](crate::admission::Signature)), cache-or-compute (preprocessing, queue,
//! engine), respond (outputs shaped, classification), telemetry (one observer per model).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferroserve_core::cache::ResponseCache;
use ferroserve_core::repository::UploadedModel;
use ferroserve_core::{Links, ModelConfig, ModelRepository};
use tokio::sync::oneshot;

use crate::admission::{Admitted, AdmittedInput};
use crate::cache;
use crate::error::{LoadError, ServeError};
use crate::infer::{
    Classified, InferRequest, InferResponse, ModelMetadata, RawInput, RepositoryEntry,
    TensorMetadata, Timings,
};
use crate::preprocess::PreprocessPool;
use crate::registry::{LoadOptions, LoadOverride, ModelRegistry, Served, ServedModel};
use crate::respond;
use crate::scheduler::{Job, JobResult, JobTensor, Reserved};
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
pub struct RuntimeOptions {
    pub model_repository: PathBuf,
    pub control_mode: ModelControlMode,
    /// Models loaded at start-up in explicit mode.
    pub startup_models: Vec<String>,
    pub load: LoadOptions,
    /// Threads decoding and preprocessing images.
    pub preprocess_threads: usize,
    /// Where symbolic links in the repository may lead besides the repository itself.
    pub links: Links,
    /// Bytes the response cache may hold; 0 turns it off. Only models whose
    /// configuration sets `response_cache { enable: true }` use it.
    pub cache_bytes: usize,
}

/// The serving state shared by the HTTP and gRPC front ends.
pub struct Runtime {
    models: Arc<ModelRegistry>,
    preprocess: PreprocessPool,
    cache: Option<ResponseCache>,
    control_mode: ModelControlMode,
    /// [`STARTING`], [`READY`], [`DRAINING`] or [`STOPPING`].
    state: AtomicU8,
}

const STARTING: u8 = 0;
const READY: u8 = 1;
/// Not ready (load balancers stop sending), still serving.
const DRAINING: u8 = 2;
const STOPPING: u8 = 3;

impl Runtime {
    /// Opens the repository and loads the start-up models, each warmed up. A model that
    /// fails to load is reported and left unavailable; it does not stop the server.
    /// Blocking.
    pub fn start(options: RuntimeOptions) -> Result<Arc<Runtime>, ServeError> {
        let runtime = Runtime::new(&options)?;
        runtime.load_startup_models(&options);
        Ok(runtime)
    }

    /// Opens the repository without loading anything; the server is not ready until
    /// [`load_startup_models`](Self::load_startup_models) has run.
    pub fn new(options: &RuntimeOptions) -> Result<Arc<Runtime>, ServeError> {
        let repository = ModelRepository::open(&options.model_repository)
            .map_err(|e| ServeError::Repository(e.to_string()))?;
        let repository = match &options.links {
            Links::Anywhere => repository.allow_links_anywhere(),
            Links::Inside(folders) => folders
                .iter()
                .fold(repository, |r, folder| r.allow_links_into(folder)),
        };
        Ok(Arc::new(Runtime {
            models: Arc::new(ModelRegistry::new(repository, options.load.clone())),
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
    pub fn load_startup_models(&self, options: &RuntimeOptions) {
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
            // An ensemble loaded earlier in this pass loaded its steps with it.
            if options.control_mode != ModelControlMode::Explicit && self.models.is_loaded(name) {
                continue;
            }
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
        self.model_readiness(model, version).is_ok()
    }

    /// Why the model (version) is not ready, if it is not: unknown, no such version, not
    /// loaded, or the server not ready.
    pub fn model_readiness(&self, model: &str, version: Option<u64>) -> Result<(), ServeError> {
        let served = self.models.get(model, version)?;
        if let Served::Ensemble(ensemble) = &served {
            if let Some(reason) = self.models.unavailable_step(ensemble) {
                return Err(ServeError::StepUnavailable {
                    ensemble: model.to_string(),
                    reason,
                });
            }
        }
        if self.ready() {
            Ok(())
        } else {
            Err(ServeError::ModelNotReady(model.to_string()))
        }
    }

    fn served(&self, model: &str, version: Option<u64>) -> Result<Served, ServeError> {
        match self.state.load(Ordering::Acquire) {
            READY | DRAINING => {}
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
        let config = served.config();
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
                .loaded_all()
                .iter()
                .filter(|s| s.name() == model)
                .map(|s| s.version().to_string())
                .collect(),
        };
        Ok(ModelMetadata {
            name: served.name().to_string(),
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

    /// Whether a request for the model would find room in its queue now: checked before
    /// a large body is read, so that an overloaded server refuses at once what it would
    /// refuse anyway. A hint; the queue refuses for certain at submission.
    pub fn has_room(&self, model: &str, version: Option<u64>) -> Result<(), ServeError> {
        match self.served(model, version)? {
            Served::Model(served) => served.scheduler.has_room(),
            // An ensemble's requests wait in its steps' queues, checked step by step.
            Served::Ensemble(_) => Ok(()),
        }
    }

    /// The one input a raw binary request fills; refused for a model with more than one.
    pub fn raw_input(&self, model: &str, version: Option<u64>) -> Result<RawInput, ServeError> {
        let served = self.served(model, version)?;
        let config = served.config();
        match config.input.as_slice() {
            [input] => Ok(RawInput {
                name: input.name.clone(),
                dtype: input.data_type,
                dims: input.dims.clone(),
                batched: config.max_batch_size() > 0,
            }),
            inputs => Err(ServeError::InvalidRequest(format!(
                "a raw binary request (Inference-Header-Content-Length: 0) needs a model with one input; model '{model}' has {}",
                inputs.len()
            ))),
        }
    }

    /// The model's configuration, completed from the model itself.
    pub fn model_config(
        &self,
        model: &str,
        version: Option<u64>,
    ) -> Result<ModelConfig, ServeError> {
        Ok(self.served(model, version)?.config().clone())
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
            .loaded_all()
            .iter()
            .filter(|s| model.is_none_or(|m| s.name() == m))
            .filter(|s| version.is_none_or(|v| s.version() == v))
            .map(|s| s.telemetry().statistics(s.name(), s.version()))
            .collect())
    }

    /// Every loaded model version.
    pub fn loaded_models(&self) -> Vec<Arc<ServedModel>> {
        self.models.loaded()
    }

    /// Starts the tuner thread (`--tune`) over the loaded models.
    pub fn start_tuner(&self, target: Duration, window: Duration) {
        crate::tune::start(self.models.clone(), target, window);
    }

    /// The repository index.
    pub fn repository_index(&self) -> Result<Vec<RepositoryEntry>, ServeError> {
        self.models.index()
    }

    /// Loads or reloads a model (explicit mode only).
    pub async fn load_model(self: &Arc<Self>, model: &str) -> Result<(), ServeError> {
        self.load_model_with(model, LoadParameters::default()).await
    }

    /// Loads or reloads a model (explicit mode only), with what the load request gives
    /// in place of its folder (Triton's `config` and `file:` load parameters). What is
    /// given holds until the model is unloaded.
    pub async fn load_model_with(
        self: &Arc<Self>,
        model: &str,
        given: LoadParameters,
    ) -> Result<(), ServeError> {
        self.require_explicit()?;
        let plain_name = !model.is_empty()
            && model != "."
            && model != ".."
            && !model.contains(['/', '\\', '\0']);
        let failed = |reason: String| ServeError::LoadFailed {
            model: model.to_string(),
            reason,
        };
        if !plain_name {
            return Err(failed(LoadError::BadName(model.to_string()).to_string()));
        }
        let uploads = !given.files.is_empty();
        if uploads && given.config.is_none() {
            return Err(failed(
                "file: parameters need the config parameter too: the model's folder is not used \
                 when its files are sent"
                    .into(),
            ));
        }
        let in_repository = self.models.repository().root().join(model).is_dir();
        if !uploads && !in_repository && !self.models.has_uploaded_files(model) {
            return Err(ServeError::ModelNotFound(model.to_string()));
        }
        let models = self.models.clone();
        let model = model.to_string();
        tokio::task::spawn_blocking(move || {
            let Some(config) = given.config else {
                return models.load(&model);
            };
            let files = if uploads {
                let uploaded = UploadedModel::write(&model, &given.files).map_err(|e| {
                    ServeError::LoadFailed {
                        model: model.clone(),
                        reason: e.to_string(),
                    }
                })?;
                Some(Arc::new(uploaded))
            } else {
                None
            };
            models.load_with(&model, Some(LoadOverride { config, files }))
        })
        .await
        .map_err(|_| ServeError::WorkerStopped)?
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

    /// The first step of a shutdown: readiness answers false from now on, so that load
    /// balancers stop sending requests, while requests are still served.
    pub fn begin_drain(&self) {
        let _ = self
            .state
            .compare_exchange(READY, DRAINING, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Stops accepting requests, answers those accepted, and stops the workers. Blocking.
    pub fn shutdown(&self) {
        self.state.store(STOPPING, Ordering::Release);
        self.models.drain();
    }

    /// Runs one inference request: admission, cache-or-compute, respond, telemetry. An
    /// ensemble's request runs its steps, each an inference request of its own.
    pub async fn infer(&self, request: InferRequest) -> Result<InferResponse, ServeError> {
        let served = match self.served(&request.model, request.version)? {
            Served::Model(served) => served,
            Served::Ensemble(ensemble) => {
                if let Some(reason) = self.models.unavailable_step(&ensemble) {
                    return Err(ServeError::StepUnavailable {
                        ensemble: request.model,
                        reason,
                    });
                }
                return ensemble.infer(self, request).await;
            }
        };
        let mut tracker = served.telemetry.track();
        let started = Instant::now();
        let result = async {
            let admitted = served.signature.admit(&request.inputs, &request.outputs)?;
            let (rows, requested) = (admitted.rows, admitted.outputs.clone());
            let computed = self
                .cache_or_compute(
                    &served,
                    admitted,
                    served.queue_timeout.of_request(request.timeout),
                    started,
                )
                .await?;
            Ok((rows, requested, computed))
        }
        .await;
        let response = result.map(|(rows, requested, computed)| {
            let timings = computed.timings;
            let response = InferResponse {
                model: served.model.name.clone(),
                version: served.model.version,
                id: request.id,
                rows,
                outputs: respond::outputs(&served, &requested, computed.outputs),
                timings,
            };
            (rows, response)
        });
        tracker.finish(response.as_ref().map(|(rows, r)| (*rows, r.timings.queue)));
        response.map(|(_, response)| response)
    }

    /// Classifies one encoded image with the model's first output: the `k` most
    /// probable classes (softmax applied unless the scores already are probabilities).
    pub async fn classify_image(
        &self,
        model: &str,
        version: Option<u64>,
        image: Bytes,
        k: usize,
    ) -> Result<Classified, ServeError> {
        let Served::Model(served) = self.served(model, version)? else {
            return Err(ServeError::Unsupported(format!(
                "model '{model}' is an ensemble; /classify takes a model with image preprocessing"
            )));
        };
        let mut tracker = served.telemetry.track();
        let started = Instant::now();
        let result = async {
            let admitted = served.signature.admit_image(image)?;
            self.cache_or_compute(&served, admitted, None, started)
                .await
        }
        .await;
        let classified = result.and_then(|computed| {
            Ok(Classified {
                classes: respond::classes(&served, &computed.outputs, k)?,
                version: served.model.version,
                timings: computed.timings,
            })
        });
        tracker.finish(classified.as_ref().map(|c| (1, c.timings.queue)));
        classified
    }

    /// The model's outputs from the response cache when the model uses it and holds
    /// them; else computed, and stored for next time when that succeeds.
    async fn cache_or_compute(
        &self,
        served: &ServedModel,
        admitted: Admitted,
        timeout: Option<Duration>,
        started: Instant,
    ) -> Result<Computed, ServeError> {
        let Some(cache) = self.cache.as_ref().filter(|_| served.caches_responses()) else {
            return self.compute(served, admitted, timeout, started).await;
        };
        let lookup = Instant::now();
        let key = cache::request_key(served, &admitted);
        if let Some(outputs) = cache.get(&key).and_then(cache::decode) {
            served.telemetry.cache_hit(lookup.elapsed());
            return Ok(Computed {
                outputs,
                timings: Timings::default(),
            });
        }
        let mut spent = lookup.elapsed();
        let result = self.compute(served, admitted, timeout, started).await;
        if let Ok(computed) = &result {
            let storing = Instant::now();
            cache.insert(key, cache::encode(&computed.outputs));
            spent += storing.elapsed();
        }
        // A miss whose computation failed is still a miss.
        served.telemetry.cache_miss(spent);
        result
    }

    /// Preprocesses the request's images, queues the job and waits for the engine.
    async fn compute(
        &self,
        served: &ServedModel,
        admitted: Admitted,
        timeout: Option<Duration>,
        started: Instant,
    ) -> Result<Computed, ServeError> {
        // The queue's place first: no image is decoded for a job the queue would refuse.
        let place = served.scheduler.reserve()?;
        let mut preprocess = Duration::ZERO;
        let mut inputs = Vec::with_capacity(admitted.inputs.len());
        for input in admitted.inputs {
            inputs.push(match input {
                AdmittedInput::Tensor(tensor) => tensor,
                AdmittedInput::Images { images, .. } => {
                    let begun = Instant::now();
                    let tensor = self.image_batch(served, &images).await?;
                    preprocess += begun.elapsed();
                    tensor
                }
            });
        }
        if !preprocess.is_zero() {
            served.telemetry.preprocessed(preprocess);
        }
        let enqueued = Instant::now();
        let deadline = timeout.map(|t| started + t);
        let mut result = submit(place, inputs, admitted.rows, enqueued, deadline).await?;
        for (position, output) in result.outputs.iter_mut().enumerate() {
            let shape = std::mem::take(&mut output.shape);
            output.shape = served.signature.served_output_shape(position, shape)?;
        }
        Ok(Computed {
            outputs: result.outputs,
            timings: Timings {
                queue: result.queued,
                preprocess,
                compute: result.compute,
                enqueued: Some(enqueued),
                batch_size: result.batch_size,
            },
        })
    }

    /// Decodes and preprocesses `images` into the model's image input, with a batch
    /// dimension when the model batches.
    async fn image_batch(
        &self,
        served: &ServedModel,
        images: &[Bytes],
    ) -> Result<JobTensor, ServeError> {
        let (Some(settings), Some(position)) = (&served.preprocessing, served.model.image_input)
        else {
            return Err(ServeError::Unsupported(format!(
                "model '{}' declares no image preprocessing",
                served.model.name
            )));
        };
        let data = self.preprocess.preprocess(settings, images).await?;
        let mut shape = Vec::with_capacity(4);
        if served.model.max_batch_size() > 0 {
            shape.push(images.len());
        }
        let image = settings.image_shape();
        match served
            .model
            .image_reshape
            .as_ref()
            .and_then(|r| r.to_model(&image))
        {
            Some(reshaped) => shape.extend(reshaped),
            None => shape.extend(image),
        }
        Ok(JobTensor {
            dtype: served.model.engine.inputs()[position].dtype,
            shape,
            data: Bytes::from(data.as_bytes().to_vec()),
        })
    }

    /// Response cache gauges and counters, brought up to date (before a metrics scrape).
    pub fn publish_cache_metrics(&self) {
        if let Some(cache) = &self.cache {
            crate::metrics::publish_cache(cache);
        }
    }
}

/// What a load request may give besides the model's name (Triton's model repository
/// extension).
#[derive(Debug, Default)]
pub struct LoadParameters {
    /// The `config` parameter: a configuration to load with instead of the folder's.
    pub config: Option<ModelConfig>,
    /// The `file:<path>` parameters: the files of the model's folder, by path inside it.
    /// When there are any, the model loads from them, not from the repository.
    pub files: Vec<(String, Vec<u8>)>,
}

/// A request's outputs, computed or from the cache, and where its time went.
struct Computed {
    outputs: Vec<JobTensor>,
    timings: Timings,
}

/// Queues a job of `rows` batch rows, at `enqueued`, in the place held for it and waits
/// for its result.
async fn submit(
    place: Reserved<'_>,
    inputs: Vec<JobTensor>,
    rows: usize,
    enqueued: Instant,
    deadline: Option<Instant>,
) -> Result<JobResult, ServeError> {
    let (reply, result) = oneshot::channel();
    let job = Job {
        inputs,
        rows,
        enqueued,
        deadline,
        reply,
    };
    place.submit(job)?;
    result.await.map_err(|_| ServeError::WorkerStopped)?
}
