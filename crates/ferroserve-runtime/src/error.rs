//! Why a request was not served or a model not loaded. Each variant is typed where the
//! failure arises; the front ends map each one to an HTTP status and a gRPC code in one
//! table of their own (this crate knows neither protocol).

use std::sync::Arc;
use std::time::Duration;

use ferroserve_core::wire::WireError;
use ferroserve_core::RepositoryError;
use ferroserve_engine::model::ModelLoadError;
use ferroserve_engine::EngineError;
use ferroserve_vision::VisionError;

/// Why a request was not served.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ServeError {
    /// Worded as Triton words it, which clients match on.
    #[error("Request for unknown model: '{0}' is not found")]
    ModelNotFound(String),
    #[error("Request for unknown model: '{model}' version {version} is not found")]
    VersionNotFound { model: String, version: u64 },
    #[error("model '{0}' is not ready")]
    ModelNotReady(String),
    /// An ensemble whose step cannot run now (its model unloaded, say).
    #[error("model '{ensemble}' is not ready: {reason}")]
    StepUnavailable { ensemble: String, reason: String },
    /// The request does not fit the model or the protocol; the message says how.
    #[error("{0}")]
    InvalidRequest(String),
    /// A tensor's elements do not fit its datatype or shape.
    #[error("{place}: {source}")]
    InvalidTensor {
        /// Which tensor: `input 'x'`, `output 'y'`.
        place: String,
        #[source]
        source: WireError,
    },
    /// One of a request's encoded images cannot be preprocessed.
    #[error("image {index}: {source}")]
    InvalidImage {
        index: usize,
        #[source]
        source: Arc<VisionError>,
    },
    /// Something the protocol allows that ferroserve does not do.
    #[error("{0}")]
    Unsupported(String),
    #[error("model '{0}': the request queue is full, retry later")]
    QueueFull(String),
    /// The queue holds more work than can be served within the model's bound.
    #[error("model '{model}': the request queue is full, retry later (a new request would wait about {} ms, more than the {} ms allowed)", wait.as_millis(), bound.as_millis())]
    QueueTooLong {
        model: String,
        wait: Duration,
        bound: Duration,
    },
    #[error("image preprocessing is at capacity, retry later")]
    PreprocessingFull,
    #[error("request timed out after waiting {0:?} in the queue")]
    Timeout(Duration),
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The reason names files relative to the repository.
    #[error("failed to load model '{model}': {reason}")]
    LoadFailed { model: String, reason: String },
    #[error("inference failed: {0}")]
    Engine(#[source] Arc<EngineError>),
    /// The model's output is not what the request needs (say, scores to classify).
    #[error("{0}")]
    UnusableOutput(String),
    #[error("the model worker stopped")]
    WorkerStopped,
    /// The reason names files relative to the repository.
    #[error("cannot read the model repository: {0}")]
    Repository(String),
}

impl ServeError {
    /// A short, stable label for metrics: `not_found`, `invalid`, `queue_full`, ...
    pub fn kind(&self) -> &'static str {
        match self {
            ServeError::ModelNotFound(_) | ServeError::VersionNotFound { .. } => "not_found",
            ServeError::ModelNotReady(_) | ServeError::StepUnavailable { .. } => "not_ready",
            ServeError::InvalidRequest(_)
            | ServeError::InvalidTensor { .. }
            | ServeError::InvalidImage { .. }
            | ServeError::Unsupported(_) => "invalid",
            ServeError::QueueFull(_)
            | ServeError::QueueTooLong { .. }
            | ServeError::PreprocessingFull => "queue_full",
            ServeError::Timeout(_) => "timeout",
            ServeError::ShuttingDown => "shutting_down",
            ServeError::LoadFailed { .. } => "load_failed",
            ServeError::Engine(_) | ServeError::UnusableOutput(_) | ServeError::WorkerStopped => {
                "engine"
            }
            ServeError::Repository(_) => "repository",
        }
    }

    /// A tensor-level error at `place`.
    pub fn tensor(place: impl std::fmt::Display, source: WireError) -> Self {
        ServeError::InvalidTensor {
            place: place.to_string(),
            source,
        }
    }
}

impl From<EngineError> for ServeError {
    /// Bad input caught by the engine is the client's; anything else is the engine's.
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::InvalidInput(message) => ServeError::InvalidRequest(message),
            other => ServeError::Engine(Arc::new(other)),
        }
    }
}

/// Why a model could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Repository(#[from] RepositoryError),
    #[error("model '{0}' has no version folder with a model file")]
    NoVersions(String),
    #[error("version {version}: {source}")]
    Version {
        version: u64,
        #[source]
        source: ModelLoadError,
    },
    #[error("version {version}: warm-up inference failed: {source}")]
    WarmUp {
        version: u64,
        #[source]
        source: EngineError,
    },
    #[error("'{0}' is not a model name")]
    BadName(String),
    /// A step of an ensemble cannot be loaded or found.
    #[error("ensemble_scheduling.step[{index}] (model '{model}'): {reason}")]
    Step {
        index: usize,
        model: String,
        reason: String,
    },
    /// The ensemble's steps do not fit their models.
    #[error(transparent)]
    Config(#[from] ferroserve_core::ConfigError),
}
