//! The one table from a runtime error to what each protocol answers, so that HTTP and
//! gRPC always agree.

use ferroserve_runtime::ServeError;
use http::StatusCode;
use tonic::Code;

/// The HTTP status and gRPC code of `error`.
pub fn of(error: &ServeError) -> (StatusCode, Code) {
    match error {
        ServeError::ModelNotFound(_) | ServeError::VersionNotFound { .. } => {
            (StatusCode::NOT_FOUND, Code::NotFound)
        }
        ServeError::InvalidRequest(_)
        | ServeError::InvalidTensor { .. }
        | ServeError::InvalidImage { .. } => (StatusCode::BAD_REQUEST, Code::InvalidArgument),
        ServeError::Unsupported(_) => (StatusCode::BAD_REQUEST, Code::Unimplemented),
        ServeError::QueueFull(_)
        | ServeError::QueueTooLong { .. }
        | ServeError::PreprocessingFull => (StatusCode::TOO_MANY_REQUESTS, Code::ResourceExhausted),
        ServeError::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, Code::DeadlineExceeded),
        ServeError::ModelNotReady(_)
        | ServeError::StepUnavailable { .. }
        | ServeError::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, Code::Unavailable),
        ServeError::LoadFailed { .. } => (StatusCode::BAD_REQUEST, Code::InvalidArgument),
        ServeError::Engine(_)
        | ServeError::UnusableOutput(_)
        | ServeError::WorkerStopped
        | ServeError::Repository(_) => (StatusCode::INTERNAL_SERVER_ERROR, Code::Internal),
    }
}

/// `error` as a gRPC status.
pub fn grpc(error: ServeError) -> tonic::Status {
    tonic::Status::new(of(&error).1, error.to_string())
}
