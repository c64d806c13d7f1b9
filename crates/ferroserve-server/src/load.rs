//! What both front ends make of a load request's parameters (Triton's model repository
//! extension): the `config` parameter read as a JSON model configuration.

use std::path::Path;

use ferroserve_core::ModelConfig;
use ferroserve_runtime::ServeError;

/// How errors name a configuration sent with a load request.
const ORIGIN: &str = "the load request's config";

/// The `config` parameter of a load request for `model`: a JSON `ModelConfig`. A bad one
/// fails the load, naming the field.
pub(crate) fn config(model: &str, json: &str) -> Result<ModelConfig, ServeError> {
    ModelConfig::from_json(json, Path::new(ORIGIN)).map_err(|e| ServeError::LoadFailed {
        model: model.to_string(),
        reason: e.to_string(),
    })
}
