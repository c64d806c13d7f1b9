//! The models being served: loading a model's versions from the repository, warming
//! them up and swapping them in atomically, unloading them, and noticing changes on
//! disk. A version that is replaced keeps serving the requests it already accepted.
//!
//! An ensemble is loaded after its step models: loading it loads the steps that are not
//! loaded yet, and checks its steps against their configurations. It names its steps,
//! and finds them by name at each request: a step model reloaded is the one the next
//! request runs, and a step model unloaded leaves the ensemble loaded but not ready
//! until the step is back (as in Triton).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use ferroserve_core::config::{QueuePolicy, TimeoutAction};
use ferroserve_core::repository::UploadedModel;
use ferroserve_core::{
    DataType, ImagePreprocessing, ModelConfig, ModelDescription, ModelRepository, Tensor, TensorRef,
};
use ferroserve_engine::model::LoadedModel;
use ferroserve_engine::{EngineError, EngineKind, EngineOptions};

use crate::admission::Signature;
use crate::arrangement::Arrangement;
use crate::ensemble::ServedEnsemble;
use crate::error::{LoadError, ServeError};
use crate::infer::RepositoryEntry;
use crate::scheduler::{BatchPolicy, Scheduler, SchedulerOptions};
use crate::telemetry::Telemetry;

/// How models are loaded.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Engine for every model; `None` follows each configuration's backend.
    pub engine: Option<EngineKind>,
    pub engine_options: EngineOptions,
    /// Threads per model instance; `None` shares the cores among the instances.
    pub intra_op_threads: Option<usize>,
    /// Jobs a model's queue holds when its configuration sets no `max_queue_size`.
    pub max_queue_size: usize,
    /// Longest a request may be expected to wait in a model's queue before it is
    /// refused (`--max-queue-wait-ms`); `None`: no bound by time.
    pub max_queue_wait: Option<Duration>,
    /// Load every arrangement of instances a tuner may choose among (see
    /// [`Arrangement::candidates`]) instead of the configuration's instance group.
    pub tune: bool,
    /// Techniques turned off, to measure what each is worth.
    pub naive: Naive,
}

/// Serving techniques that can be turned off (`ferroserve serve --naive`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Naive {
    /// One instance using every core: one request computed at a time.
    pub one_instance: bool,
    /// Input and output buffers allocated per run instead of reused.
    pub fresh_buffers: bool,
    /// No dynamic batching, whatever the configuration says.
    pub no_batching: bool,
}

/// One loaded version of a repository model, as requests find it.
#[derive(Clone)]
pub enum Served {
    /// A model that an engine runs.
    Model(Arc<ServedModel>),
    /// An ensemble of other models of the repository.
    Ensemble(Arc<ServedEnsemble>),
}

impl Served {
    pub fn name(&self) -> &str {
        match self {
            Served::Model(served) => &served.model.name,
            Served::Ensemble(ensemble) => &ensemble.name,
        }
    }

    pub fn version(&self) -> u64 {
        match self {
            Served::Model(served) => served.model.version,
            Served::Ensemble(ensemble) => ensemble.version,
        }
    }

    /// The configuration, completed from the model (an ensemble's as written).
    pub fn config(&self) -> &ModelConfig {
        match self {
            Served::Model(served) => &served.model.config,
            Served::Ensemble(ensemble) => &ensemble.config,
        }
    }

    pub fn telemetry(&self) -> &Arc<Telemetry> {
        match self {
            Served::Model(served) => &served.telemetry,
            Served::Ensemble(ensemble) => &ensemble.telemetry,
        }
    }
}

/// What a load request gives in place of the model's folder (Triton's `config` and
/// `file:` load parameters). It holds until the model is unloaded: a plain load after it
/// loads the same again.
#[derive(Clone)]
pub struct LoadOverride {
    /// The configuration to load with, instead of the folder's `config.pbtxt`.
    pub config: ModelConfig,
    /// The model's files, when the request sent them: then the model loads from this
    /// folder, not from the repository.
    pub files: Option<Arc<UploadedModel>>,
}

/// One model version loaded, warmed up and accepting jobs. It keeps serving the
/// requests that hold it after a newer load replaces it: its queue closes when the last
/// of them lets go.
pub struct ServedModel {
    pub model: LoadedModel,
    /// What requests may send and ask for, resolved at load.
    pub signature: Signature,
    pub scheduler: Scheduler,
    pub telemetry: Arc<Telemetry>,
    pub preprocessing: Option<Arc<ImagePreprocessing>>,
    /// The instance groups of the scheduler, in its order; the first starts active.
    pub arrangements: Vec<Arrangement>,
    /// Unique to this load: two loads of one version (say, after a configuration change)
    /// never share response cache entries.
    pub load_id: u64,
    /// How long a request may wait in the queue (`default_queue_policy`).
    pub queue_timeout: QueueTimeout,
}

/// The queue timeout of Triton's `default_queue_policy`, with `timeout_action: REJECT`:
/// a request still queued after it is answered with a timeout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueTimeout {
    /// `default_timeout_microseconds`; `None` when 0 or the action is `DELAY` (which
    /// ferroserve does not do: such requests simply wait their turn).
    pub default: Option<Duration>,
    /// `allow_timeout_override`: a request may ask for a shorter timeout.
    pub allow_override: bool,
}

impl QueueTimeout {
    fn of(policy: Option<&QueuePolicy>) -> Self {
        let Some(policy) = policy else {
            return QueueTimeout {
                default: None,
                allow_override: true,
            };
        };
        QueueTimeout {
            default: (policy.timeout_action == TimeoutAction::Reject
                && policy.default_timeout_microseconds > 0)
                .then(|| Duration::from_micros(policy.default_timeout_microseconds)),
            allow_override: policy.allow_timeout_override,
        }
    }

    /// The timeout of a request that asks for `requested` (its `timeout` parameter).
    pub fn of_request(self, requested: Option<Duration>) -> Option<Duration> {
        match (self.default, requested) {
            (Some(default), Some(asked)) if self.allow_override => Some(asked.min(default)),
            (Some(default), _) => Some(default),
            (None, asked) if self.allow_override => asked,
            (None, _) => None,
        }
    }
}

impl ServedModel {
    /// Whether the configuration opts in to the response cache.
    pub fn caches_responses(&self) -> bool {
        self.model
            .config
            .response_cache
            .as_ref()
            .is_some_and(|c| c.enable)
    }

    fn start(
        model: LoadedModel,
        arrangements: Vec<Arrangement>,
        options: &LoadOptions,
    ) -> Result<Self, LoadError> {
        let warm_up_failed = |source| LoadError::WarmUp {
            version: model.version,
            source,
        };
        let mut groups = Vec::with_capacity(arrangements.len());
        for arrangement in &arrangements {
            let mut runners = Vec::with_capacity(arrangement.instances);
            for _ in 0..arrangement.instances {
                let mut runner = model
                    .engine
                    .runner_with_threads(arrangement.threads)
                    .map_err(warm_up_failed)?;
                match warm_up(&model, runner.as_mut()) {
                    Ok(()) => {}
                    // What a string input must hold is the model's own business (numbers
                    // to parse, say): a string model that refuses the warm-up's strings
                    // still loads, and its first request pays for initialisation.
                    Err(error) if takes_strings(&model) => tracing::warn!(
                        model = model.name,
                        "warm-up inference with strings \"0\" failed, skipped: {error}"
                    ),
                    Err(error) => return Err(warm_up_failed(error)),
                }
                runners.push(runner);
            }
            groups.push(runners);
        }
        let config = &model.config;
        let max_batch = config.max_batch_size() as usize;
        let policy = match &config.dynamic_batching {
            Some(batching) if max_batch > 0 && !options.naive.no_batching => BatchPolicy {
                dynamic: true,
                max_batch,
                preferred: {
                    let mut sizes: Vec<usize> = batching
                        .preferred_batch_size
                        .iter()
                        .map(|&s| s as usize)
                        .collect();
                    sizes.sort_unstable();
                    sizes
                },
                max_delay: std::time::Duration::from_micros(batching.max_queue_delay_microseconds),
            },
            _ => BatchPolicy {
                dynamic: false,
                max_batch: max_batch.max(1),
                preferred: Vec::new(),
                max_delay: std::time::Duration::ZERO,
            },
        };
        let queue_policy = config
            .dynamic_batching
            .as_ref()
            .and_then(|b| b.default_queue_policy.as_ref());
        let capacity = queue_policy
            .map(|p| p.max_queue_size as usize)
            .filter(|&n| n > 0)
            .unwrap_or(options.max_queue_size);
        let queue_timeout = QueueTimeout::of(queue_policy);
        let telemetry = Arc::new(Telemetry::new(&model.name, model.version, options.tune));
        let scheduler = Scheduler::start(
            &model.name,
            groups,
            model.engine.outputs().len(),
            SchedulerOptions {
                policy,
                capacity,
                max_wait: options.max_queue_wait,
                reuse_buffers: !options.naive.fresh_buffers,
            },
            telemetry.clone(),
        );
        let preprocessing = model.preprocessing.clone().map(Arc::new);
        static LOADS: AtomicU64 = AtomicU64::new(0);
        Ok(ServedModel {
            signature: Signature::of(&model),
            model,
            scheduler,
            telemetry,
            preprocessing,
            arrangements,
            load_id: LOADS.fetch_add(1, Ordering::Relaxed),
            queue_timeout,
        })
    }
}

/// Whether the model has a string input.
fn takes_strings(model: &LoadedModel) -> bool {
    model
        .engine
        .inputs()
        .iter()
        .any(|spec| spec.dtype == DataType::Bytes)
}

/// Runs each instance once on zeros (strings `"0"`), so that the first request does not
/// pay for lazy initialisation.
fn warm_up(
    model: &LoadedModel,
    runner: &mut dyn ferroserve_engine::Runner,
) -> Result<(), EngineError> {
    let batched = model.max_batch_size() > 0;
    let inputs: Vec<Tensor> = model
        .engine
        .inputs()
        .iter()
        .map(|spec| {
            let declared = model.config.input.iter().find(|i| i.name == spec.name);
            let mut shape: Vec<usize> = Vec::new();
            if batched {
                shape.push(1);
            }
            match declared {
                Some(input) => shape.extend(input.model_dims().iter().map(|&d| d.max(1) as usize)),
                None => shape = spec.shape.iter().map(|&d| d.max(1) as usize).collect(),
            }
            let mut tensor = Tensor::with_capacity(spec.dtype, 0);
            if spec.dtype == DataType::Bytes {
                let elements = shape.iter().product::<usize>();
                tensor
                    .set_strings(&shape, &vec!["0"; elements])
                    .expect("one-byte strings fit their length prefix");
            } else {
                tensor.reshape(spec.dtype, &shape);
            }
            tensor
        })
        .collect();
    let views: Vec<TensorRef<'_>> = inputs.iter().map(Tensor::view).collect();
    let mut outputs = vec![Tensor::with_capacity(DataType::Fp32, 0); model.engine.outputs().len()];
    runner.run(&views, &mut outputs)
}

/// What is known of one model of the repository.
#[derive(Default)]
struct ModelSlot {
    /// Loaded versions, ascending.
    versions: BTreeMap<u64, Served>,
    /// Why the last load failed, or that it was unloaded.
    reason: Option<String>,
    /// The files the loaded versions came from, to notice changes when polling.
    fingerprint: Vec<(PathBuf, SystemTime, u64)>,
    /// What the loaded versions were loaded with instead of the model's folder.
    load_override: Option<LoadOverride>,
}

/// The versions one load makes.
type Versions = BTreeMap<u64, Served>;

/// The models being served.
pub struct ModelRegistry {
    repository: ModelRepository,
    options: LoadOptions,
    models: RwLock<BTreeMap<String, ModelSlot>>,
    /// Loads and unloads one at a time.
    loading: Mutex<()>,
}

impl ModelRegistry {
    pub fn new(repository: ModelRepository, options: LoadOptions) -> Self {
        ModelRegistry {
            repository,
            options,
            models: RwLock::new(BTreeMap::new()),
            loading: Mutex::new(()),
        }
    }

    pub fn repository(&self) -> &ModelRepository {
        &self.repository
    }

    /// The version to serve: `version`, or the latest loaded one.
    pub fn get(&self, name: &str, version: Option<u64>) -> Result<Served, ServeError> {
        let models = self.models.read().unwrap_or_else(|e| e.into_inner());
        let slot = models
            .get(name)
            .ok_or_else(|| ServeError::ModelNotFound(name.to_string()))?;
        let found = match version {
            Some(v) => slot.versions.get(&v),
            None => slot.versions.values().next_back(),
        };
        match (found, version) {
            (Some(served), _) => Ok(served.clone()),
            (None, Some(version)) if !slot.versions.is_empty() => {
                Err(ServeError::VersionNotFound {
                    model: name.to_string(),
                    version,
                })
            }
            (None, _) => Err(ServeError::ModelNotReady(name.to_string())),
        }
    }

    /// Every loaded version of every model an engine runs (ensembles left out).
    pub fn loaded(&self) -> Vec<Arc<ServedModel>> {
        self.loaded_all()
            .into_iter()
            .filter_map(|served| match served {
                Served::Model(model) => Some(model),
                Served::Ensemble(_) => None,
            })
            .collect()
    }

    /// Every loaded version of every model, ensembles included.
    pub fn loaded_all(&self) -> Vec<Served> {
        let models = self.models.read().unwrap_or_else(|e| e.into_inner());
        models
            .values()
            .flat_map(|slot| slot.versions.values().cloned())
            .collect()
    }

    /// Whether `name` is known at all (loaded, or failed to load).
    pub fn knows(&self, name: &str) -> bool {
        self.models
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(name)
    }

    /// Whether `name` was last loaded from files a load request sent (which a plain load
    /// loads again).
    pub fn has_uploaded_files(&self, name: &str) -> bool {
        self.models
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .and_then(|slot| slot.load_override.as_ref())
            .is_some_and(|kept| kept.files.is_some())
    }

    /// Whether some version of `name` is loaded.
    pub fn is_loaded(&self, name: &str) -> bool {
        self.models
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .is_some_and(|slot| !slot.versions.is_empty())
    }

    /// Loads (or reloads) every version of `name` the version policy selects. The new
    /// versions are warmed up before they replace the old ones; on failure the old ones
    /// keep serving and the reason is kept for the repository index. A model last loaded
    /// with an override loads with it again. Blocking.
    pub fn load(&self, name: &str) -> Result<(), ServeError> {
        self.load_with(name, None)
    }

    /// [`load`](Self::load), with `given` in place of the model's folder when it is some;
    /// it then holds for later loads until the model is unloaded.
    pub fn load_with(&self, name: &str, given: Option<LoadOverride>) -> Result<(), ServeError> {
        let _one_at_a_time = self.loading.lock().unwrap_or_else(|e| e.into_inner());
        self.load_locked(name, given, &mut Vec::new())
    }

    /// A load, with the loading lock held; `loading` names the ensembles whose loads
    /// this one is part of (to refuse a cycle of ensembles).
    fn load_locked(
        &self,
        name: &str,
        given: Option<LoadOverride>,
        loading: &mut Vec<String>,
    ) -> Result<(), ServeError> {
        let kept = given.or_else(|| {
            let models = self.models.read().unwrap_or_else(|e| e.into_inner());
            models.get(name).and_then(|slot| slot.load_override.clone())
        });
        let fingerprint = fingerprint(&self.repository.root().join(name));
        match self.load_versions(name, kept.as_ref(), loading) {
            Ok(versions) => {
                let mut models = self.models.write().unwrap_or_else(|e| e.into_inner());
                let slot = models.entry(name.to_string()).or_default();
                // The replaced versions serve the requests that already hold them, and
                // close their queues when the last one lets go.
                let retired = std::mem::replace(&mut slot.versions, versions);
                slot.reason = None;
                slot.fingerprint = fingerprint;
                slot.load_override = kept;
                drop(models);
                drop(retired);
                tracing::info!(model = name, "model loaded");
                Ok(())
            }
            Err(error) => {
                // One line naming the model, its file relative to the repository and why.
                let mut reason = error.to_string();
                if let Some(files) = kept.as_ref().and_then(|k| k.files.as_ref()) {
                    reason = files.repository().redact(&reason);
                }
                let reason = self.repository.redact(&reason);
                tracing::error!(model = name, "failed to load model '{name}': {reason}");
                let mut models = self.models.write().unwrap_or_else(|e| e.into_inner());
                let slot = models.entry(name.to_string()).or_default();
                slot.reason = Some(reason.clone());
                slot.fingerprint = fingerprint;
                Err(ServeError::LoadFailed {
                    model: name.to_string(),
                    reason,
                })
            }
        }
    }

    fn load_versions(
        &self,
        name: &str,
        given: Option<&LoadOverride>,
        loading: &mut Vec<String>,
    ) -> Result<Versions, LoadError> {
        let description = match given {
            Some(LoadOverride {
                config,
                files: Some(files),
            }) => files.repository().load_with_config(name, config)?,
            Some(LoadOverride { config, .. }) => self.repository.load_with_config(name, config)?,
            None => self.repository.load(name)?,
        };
        if description.versions.is_empty() {
            return Err(LoadError::NoVersions(name.to_string()));
        }
        if description
            .config
            .as_ref()
            .is_some_and(ModelConfig::is_ensemble)
        {
            loading.push(name.to_string());
            let versions = self.load_ensemble(&description, loading);
            loading.pop();
            return versions;
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let configured_instances = description
            .config
            .as_ref()
            .map(|c| {
                c.instance_group
                    .iter()
                    .map(|g| g.count as usize)
                    .sum::<usize>()
            })
            .unwrap_or(0)
            .max(1);
        let instances = if self.options.naive.one_instance {
            1
        } else {
            configured_instances
        };
        let configured = Arrangement {
            instances,
            threads: self
                .options
                .intra_op_threads
                .unwrap_or((cores / instances).max(1)),
        };
        let arrangements = if self.options.tune {
            Arrangement::candidates(cores)
        } else {
            vec![configured]
        };
        let mut engine_options = self.options.engine_options.clone();
        engine_options.intra_op_threads = arrangements[0].threads;
        let mut versions = BTreeMap::new();
        for version in &description.versions {
            let model =
                LoadedModel::load(&description, version, self.options.engine, &engine_options)
                    .map_err(|source| LoadError::Version {
                        version: version.version,
                        source,
                    })?;
            let served = ServedModel::start(model, arrangements.clone(), &self.options)?;
            versions.insert(version.version, Served::Model(Arc::new(served)));
        }
        Ok(versions)
    }

    /// Every version of the ensemble `description`: its step models loaded first when
    /// they are not, and its steps checked against their configurations.
    fn load_ensemble(
        &self,
        description: &ModelDescription,
        loading: &mut Vec<String>,
    ) -> Result<Versions, LoadError> {
        let name = &description.name;
        let config = description
            .config
            .clone()
            .expect("an ensemble has a configuration");
        let mut steps = Vec::with_capacity(config.steps().len());
        for (index, step) in config.steps().iter().enumerate() {
            let step_error = |reason: String| LoadError::Step {
                index,
                model: step.model_name.clone(),
                reason,
            };
            if loading.contains(&step.model_name) || self.reaches(&step.model_name, name) {
                let mut cycle = loading.clone();
                cycle.push(step.model_name.clone());
                return Err(step_error(format!(
                    "ensembles that run each other make a cycle: {}",
                    cycle.join(" -> ")
                )));
            }
            if !self.is_loaded(&step.model_name) {
                if !self.repository.root().join(&step.model_name).is_dir() {
                    return Err(step_error(format!(
                        "no model '{}' in the model repository",
                        step.model_name
                    )));
                }
                self.load_locked(&step.model_name, None, loading)
                    .map_err(|e| step_error(e.to_string()))?;
            }
            let served = self
                .get(&step.model_name, step.version())
                .map_err(|e| step_error(e.to_string()))?;
            steps.push(served);
        }
        let configs: Vec<&ModelConfig> = steps.iter().map(Served::config).collect();
        config.check_steps(&configs)?;
        let plan = config
            .ensemble_plan()?
            .expect("an ensemble configuration has a plan");
        let mut versions = BTreeMap::new();
        for version in &description.versions {
            let ensemble = ServedEnsemble::new(description, config.clone(), version.version, &plan);
            versions.insert(version.version, Served::Ensemble(Arc::new(ensemble)));
        }
        Ok(versions)
    }

    /// Why the ensemble cannot run now, if it cannot: a step model (or its version) is
    /// not loaded, here or in a nested ensemble, or was reloaded with a configuration its
    /// step no longer fits.
    pub fn unavailable_step(&self, ensemble: &ServedEnsemble) -> Option<String> {
        self.unavailable_within(ensemble, 0)
    }

    fn unavailable_within(&self, ensemble: &ServedEnsemble, depth: usize) -> Option<String> {
        if depth > 64 {
            return Some("ensembles nest more than 64 deep".into());
        }
        let mut steps = Vec::with_capacity(ensemble.config.steps().len());
        for (index, step) in ensemble.config.steps().iter().enumerate() {
            let served = match self.get(&step.model_name, step.version()) {
                Ok(served) => served,
                Err(e) => {
                    return Some(format!(
                        "step {index} (model '{}') is not available: {e}",
                        step.model_name
                    ))
                }
            };
            if let Served::Ensemble(inner) = &served {
                if let Some(reason) = self.unavailable_within(inner, depth + 1) {
                    return Some(format!(
                        "step {index} (ensemble '{}'): {reason}",
                        step.model_name
                    ));
                }
            }
            steps.push(served);
        }
        let configs: Vec<&ModelConfig> = steps.iter().map(Served::config).collect();
        ensemble
            .config
            .check_steps(&configs)
            .err()
            .map(|e| self.repository.redact(&e.to_string()))
    }

    /// Whether the loaded model `from`, if an ensemble, runs `target`, itself or through
    /// the ensembles among its steps.
    fn reaches(&self, from: &str, target: &str) -> bool {
        fn walk(registry: &ModelRegistry, from: &str, target: &str, depth: usize) -> bool {
            let Ok(Served::Ensemble(ensemble)) = registry.get(from, None) else {
                return false;
            };
            depth < 64
                && ensemble.config.steps().iter().any(|step| {
                    step.model_name == target || walk(registry, &step.model_name, target, depth + 1)
                })
        }
        walk(self, from, target, 0)
    }

    /// Stops serving `name`; accepted requests still finish.
    pub fn unload(&self, name: &str) -> Result<(), ServeError> {
        let _one_at_a_time = self.loading.lock().unwrap_or_else(|e| e.into_inner());
        let mut models = self.models.write().unwrap_or_else(|e| e.into_inner());
        let slot = models
            .get_mut(name)
            .ok_or_else(|| ServeError::ModelNotFound(name.to_string()))?;
        // As on reload: accepted requests still finish.
        drop(std::mem::take(&mut slot.versions));
        slot.reason = Some("unloaded".into());
        slot.fingerprint.clear();
        slot.load_override = None;
        tracing::info!(model = name, "model unloaded");
        Ok(())
    }

    /// The repository's models, each loaded version a line, each model without one a
    /// line saying why.
    pub fn index(&self) -> Result<Vec<RepositoryEntry>, ServeError> {
        let on_disk = self
            .repository
            .index()
            .map_err(|e| ServeError::Repository(self.repository.redact(&e.to_string())))?;
        // Ensembles whose steps are missing are loaded but not ready.
        let not_ready: HashMap<(String, u64), String> = self
            .loaded_all()
            .iter()
            .filter_map(|served| match served {
                Served::Ensemble(ensemble) => {
                    let reason = self.unavailable_step(ensemble)?;
                    Some(((ensemble.name.clone(), ensemble.version), reason))
                }
                Served::Model(_) => None,
            })
            .collect();
        let models = self.models.read().unwrap_or_else(|e| e.into_inner());
        let mut entries = Vec::new();
        let mut names: Vec<&str> = on_disk.iter().map(|e| e.name.as_str()).collect();
        names.extend(models.keys().map(String::as_str));
        names.sort_unstable();
        names.dedup();
        for name in names {
            match models.get(name) {
                Some(slot) if !slot.versions.is_empty() => {
                    // A failed reload leaves these versions serving; say why it failed.
                    let reason = slot
                        .reason
                        .as_ref()
                        .map(|r| format!("still serving; the last load failed: {r}"))
                        .unwrap_or_default();
                    entries.extend(slot.versions.keys().map(|&v| {
                        match not_ready.get(&(name.to_string(), v)) {
                            Some(why) => RepositoryEntry {
                                name: name.to_string(),
                                version: v.to_string(),
                                state: "UNAVAILABLE".into(),
                                reason: why.clone(),
                            },
                            None => RepositoryEntry {
                                name: name.to_string(),
                                version: v.to_string(),
                                state: "READY".into(),
                                reason: reason.clone(),
                            },
                        }
                    }));
                }
                slot => entries.push(RepositoryEntry {
                    name: name.to_string(),
                    version: String::new(),
                    state: if slot.is_some() {
                        "UNAVAILABLE".into()
                    } else {
                        String::new()
                    },
                    reason: slot.and_then(|s| s.reason.clone()).unwrap_or_default(),
                }),
            }
        }
        Ok(entries)
    }

    /// Reloads the models whose files changed since they were loaded, loads new ones and
    /// unloads the ones whose folder is gone. Blocking.
    pub fn poll(&self) {
        let on_disk = match self.repository.index() {
            Ok(entries) => entries,
            Err(e) => {
                tracing::warn!("cannot read the model repository: {e}");
                return;
            }
        };
        for entry in &on_disk {
            let current = fingerprint(&self.repository.root().join(&entry.name));
            let known = {
                let models = self.models.read().unwrap_or_else(|e| e.into_inner());
                models.get(&entry.name).map(|slot| slot.fingerprint.clone())
            };
            if known.as_ref() != Some(&current) {
                let _ = self.load(&entry.name);
            }
        }
        let gone: Vec<String> = {
            let models = self.models.read().unwrap_or_else(|e| e.into_inner());
            models
                .iter()
                .filter(|(name, slot)| {
                    !slot.versions.is_empty() && !on_disk.iter().any(|e| &e.name == *name)
                })
                .map(|(name, _)| name.clone())
                .collect()
        };
        for name in gone {
            let _ = self.unload(&name);
        }
    }

    /// Closes every queue and waits until the accepted requests are answered. (An
    /// ensemble has no queue of its own: its requests wait in its steps' queues.)
    pub fn drain(&self) {
        for served in self.loaded() {
            served.scheduler.drain();
        }
    }
}

/// Every file under `dir` with its modification time and size, sorted.
fn fingerprint(dir: &Path) -> Vec<(PathBuf, SystemTime, u64)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, SystemTime, u64)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                walk(&path, out);
            } else {
                out.push((
                    path,
                    meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    meta.len(),
                ));
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, &mut files);
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(action: TimeoutAction, default_us: u64, allow_override: bool) -> QueuePolicy {
        QueuePolicy {
            timeout_action: action,
            default_timeout_microseconds: default_us,
            allow_timeout_override: allow_override,
            max_queue_size: 0,
        }
    }

    #[test]
    fn the_queue_policy_decides_a_request_timeout_as_triton_does() {
        let ms = Duration::from_millis;
        // No policy: the request's own timeout, if any.
        let none = QueueTimeout::of(None);
        assert_eq!(none.of_request(Some(ms(5))), Some(ms(5)));
        assert_eq!(none.of_request(None), None);
        // A default that requests may only shorten.
        let shorten = QueueTimeout::of(Some(&policy(TimeoutAction::Reject, 100_000, true)));
        assert_eq!(shorten.of_request(None), Some(ms(100)));
        assert_eq!(shorten.of_request(Some(ms(5))), Some(ms(5)));
        assert_eq!(shorten.of_request(Some(ms(500))), Some(ms(100)));
        // A default requests cannot change.
        let fixed = QueueTimeout::of(Some(&policy(TimeoutAction::Reject, 100_000, false)));
        assert_eq!(fixed.of_request(Some(ms(5))), Some(ms(100)));
        // DELAY is not done: no timeout from the policy.
        let delay = QueueTimeout::of(Some(&policy(TimeoutAction::Delay, 100_000, true)));
        assert_eq!(delay.of_request(None), None);
    }
}
