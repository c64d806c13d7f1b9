//! Errors of the serving layer, and the one table that maps each to an HTTP status and a
//! gRPC code, so that both front ends always agree.

use http::StatusCode;
use tonic::Code;

/// Why a request was not served.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ServeError {
    #[error("unknown model '{0}'")]
    ModelNotFound(String),
    #[error("model '{model}' has no version {version}")]
    VersionNotFound { model: String, version: String },
    #[error("model '{0}' is not ready")]
    ModelNotReady(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("model '{0}': the request queue is full, retry later")]
    QueueFull(String),
    #[error("request timed out after waiting {0:?} in the queue")]
    Timeout(std::time::Duration),
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("failed to load model '{model}': {reason}")]
    LoadFailed { model: String, reason: String },
    #[error("inference failed: {0}")]
    Engine(String),
}

impl ServeError {
    /// The HTTP status and gRPC code for this error.
    pub fn status(&self) -> (StatusCode, Code) {
        match self {
            ServeError::ModelNotFound(_) | ServeError::VersionNotFound { .. } => {
                (StatusCode::NOT_FOUND, Code::NotFound)
            }
            ServeError::InvalidRequest(_) => (StatusCode::BAD_REQUEST, Code::InvalidArgument),
            ServeError::Unsupported(_) => (StatusCode::BAD_REQUEST, Code::Unimplemented),
            ServeError::QueueFull(_) => (StatusCode::TOO_MANY_REQUESTS, Code::ResourceExhausted),
            ServeError::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, Code::DeadlineExceeded),
            ServeError::ModelNotReady(_) | ServeError::ShuttingDown => {
                (StatusCode::SERVICE_UNAVAILABLE, Code::Unavailable)
            }
            ServeError::LoadFailed { .. } => (StatusCode::BAD_REQUEST, Code::InvalidArgument),
            ServeError::Engine(_) => (StatusCode::INTERNAL_SERVER_ERROR, Code::Internal),
        }
    }

    /// A short, stable label for metrics: `not_found`, `invalid`, `queue_full`, ...
    pub fn kind(&self) -> &'static str {
        match self {
            ServeError::ModelNotFound(_) | ServeError::VersionNotFound { .. } => "not_found",
            ServeError::ModelNotReady(_) => "not_ready",
            ServeError::InvalidRequest(_) | ServeError::Unsupported(_) => "invalid",
            ServeError::QueueFull(_) => "queue_full",
            ServeError::Timeout(_) => "timeout",
            ServeError::ShuttingDown => "shutting_down",
            ServeError::LoadFailed { .. } => "load_failed",
            ServeError::Engine(_) => "engine",
        }
    }
}

impl From<ServeError> for tonic::Status {
    fn from(error: ServeError) -> Self {
        tonic::Status::new(error.status().1, error.to_string())
    }
}
