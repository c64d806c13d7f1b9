//! Inference requests and responses as both front ends decode and encode them, free of
//! any wire format.

use std::time::Duration;

use bytes::Bytes;
use ferroserve_core::DataType;

use crate::error::ServeError;

/// One inference request.
#[derive(Debug, Clone)]
pub struct InferRequest {
    pub model: String,
    /// `None` serves the latest ready version.
    pub version: Option<u64>,
    /// Echoed in the response.
    pub id: String,
    pub inputs: Vec<InferInput>,
    /// Outputs to return, in this order; empty returns every output.
    pub outputs: Vec<RequestedOutput>,
    /// How long the request may wait in the queue (Triton's `timeout` parameter).
    pub timeout: Option<Duration>,
}

/// Where in a request something is, for error messages: `input 'x'`, `output 'y'`,
/// `the request`. Formatted only when an error is reported.
#[derive(Debug, Clone, Copy)]
pub enum Place<'a> {
    Input(&'a str),
    Output(&'a str),
    Request,
}

impl std::fmt::Display for Place<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Input(name) => write!(f, "input '{name}'"),
            Place::Output(name) => write!(f, "output '{name}'"),
            Place::Request => f.write_str("the request"),
        }
    }
}

/// Checks a tensor's datatype name and shape as a request declares them, on either
/// wire: returns the datatype, the shape and the element count. `place` names the tensor
/// in messages.
pub fn tensor_header<D>(
    place: Place<'_>,
    datatype: &str,
    shape: &[D],
) -> Result<(DataType, Vec<usize>, usize), ServeError>
where
    D: Copy + TryInto<usize> + std::fmt::Debug,
{
    let dtype = DataType::from_name(datatype).ok_or_else(|| {
        let known: Vec<&str> = DataType::ALL.iter().map(|t| t.name()).collect();
        ServeError::InvalidRequest(format!(
            "{place}: unsupported datatype '{datatype}' (supported: {})",
            known.join(", ")
        ))
    })?;
    let dims = shape
        .iter()
        .map(|&d| d.try_into().ok())
        .collect::<Option<Vec<usize>>>()
        .ok_or_else(|| {
            ServeError::InvalidRequest(format!(
                "{place}: shape {shape:?} has a negative or too large dimension"
            ))
        })?;
    let elements = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| {
            ServeError::InvalidRequest(format!("{place}: shape {dims:?} has too many elements"))
        })?;
    Ok((dtype, dims, elements))
}

/// One input tensor of a request.
#[derive(Debug, Clone)]
pub struct InferInput {
    pub name: String,
    pub dtype: DataType,
    pub shape: Vec<usize>,
    pub data: InputData,
}

/// The elements of an input tensor.
#[derive(Debug, Clone)]
pub enum InputData {
    /// Fixed-size elements, little-endian, row-major.
    Raw(Bytes),
    /// `BYTES` elements, one per tensor element.
    Strings(Vec<Bytes>),
}

/// An output the client asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestedOutput {
    pub name: String,
    /// Triton's classification extension: return the top `k` classes of each batch row
    /// as `BYTES` strings `"<score>:<index>[:<label>]"` instead of the tensor.
    pub classification: Option<usize>,
}

/// The result of one inference request.
#[derive(Debug, Clone)]
pub struct InferResponse {
    pub model: String,
    pub version: u64,
    pub id: String,
    pub outputs: Vec<InferOutput>,
}

/// One output tensor of a response.
#[derive(Debug, Clone)]
pub struct InferOutput {
    pub name: String,
    pub dtype: DataType,
    pub shape: Vec<usize>,
    pub data: OutputData,
}

/// The elements of an output tensor.
#[derive(Debug, Clone)]
pub enum OutputData {
    /// Fixed-size elements, little-endian, row-major.
    Raw(Bytes),
    /// `BYTES` elements (classification results).
    Strings(Vec<String>),
}

/// One class of an image classified by [`crate::Server::classify_image`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ClassifiedAs {
    pub label: Option<String>,
    pub index: usize,
    pub probability: f32,
}

/// A model's inputs and outputs as the protocol's metadata reports them.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelMetadata {
    pub name: String,
    pub versions: Vec<String>,
    pub platform: String,
    pub inputs: Vec<TensorMetadata>,
    pub outputs: Vec<TensorMetadata>,
}

/// One tensor in [`ModelMetadata`]; `-1` marks a dynamic dimension (the batch included).
#[derive(Debug, Clone, serde::Serialize)]
pub struct TensorMetadata {
    pub name: String,
    pub datatype: DataType,
    pub shape: Vec<i64>,
}

/// One line of the repository index.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RepositoryEntry {
    pub name: String,
    /// Empty when no version is loaded.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// `READY`, `UNAVAILABLE` or `UNLOADING`... as Triton reports them.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub state: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
}
