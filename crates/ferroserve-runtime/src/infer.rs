//! Inference requests and responses as both front ends decode and encode them, free of
//! any wire format.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferroserve_core::wire::{self, WireError};
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

/// The one input of a model, as a raw binary request (Triton's binary tensor data
/// extension with `Inference-Header-Content-Length: 0`) fills it: the whole body is the
/// tensor's data, and its name, datatype and shape come from the model's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawInput {
    pub name: String,
    pub dtype: DataType,
    /// The configured dims, `-1` for a dimension of any size.
    pub dims: Vec<i64>,
    /// Whether the model batches: the body is then one batch row.
    pub batched: bool,
}

impl RawInput {
    /// The input the body makes: a `BYTES` input holds the whole body as its one
    /// element; any other datatype takes its shape from the dims, one of which may be
    /// `-1` and is then worked out from the body's length.
    pub fn input(&self, body: Bytes) -> Result<InferInput, ServeError> {
        let place = Place::Input(&self.name);
        let mut shape: Vec<usize> = if self.batched { vec![1] } else { Vec::new() };
        let known: usize = self
            .dims
            .iter()
            .filter(|&&d| d >= 0)
            .map(|&d| d as usize)
            .product();
        let open = self.dims.iter().filter(|&&d| d < 0).count();
        if self.dtype == DataType::Bytes {
            if known != 1 {
                return Err(ServeError::InvalidRequest(format!(
                    "a raw binary request is one BYTES element, but {place} has dims {:?}",
                    self.dims
                )));
            }
            shape.extend(self.dims.iter().map(|_| 1));
            return InferInput::strings(self.name.clone(), shape, vec![body]);
        }
        let element = self.dtype.size().unwrap_or(1);
        let open_size = match open {
            0 => 1,
            1 if known > 0 && body.len().is_multiple_of(known * element) => {
                body.len() / (known * element)
            }
            _ => {
                return Err(ServeError::InvalidRequest(format!(
                    "a raw binary request's shape cannot be worked out: {place} has dims {:?} and the body {} bytes",
                    self.dims,
                    body.len()
                )))
            }
        };
        shape.extend(
            self.dims
                .iter()
                .map(|&d| usize::try_from(d).unwrap_or(open_size)),
        );
        InferInput::tensor(self.name.clone(), self.dtype, shape, body)
    }
}

/// One input tensor of a request. Built only through [`InferInput::tensor`] and
/// [`InferInput::strings`], which check the data against the shape once, so that
/// nothing after the front end checks it again.
#[derive(Debug, Clone)]
pub struct InferInput {
    name: String,
    dtype: DataType,
    shape: Vec<usize>,
    data: InputData,
}

/// The elements of an input tensor.
#[derive(Debug, Clone)]
pub enum InputData {
    /// Fixed-size elements, little-endian, row-major.
    Raw(Bytes),
    /// `BYTES` elements, one per tensor element.
    Strings(Vec<Bytes>),
    /// `BYTES` elements in their binary form (each a 4-byte little-endian length, then
    /// its bytes), one per tensor element: a tensor passed on as an engine produced it.
    Encoded(Bytes),
}

impl InferInput {
    /// A tensor of fixed-size elements: `data` must hold exactly the elements of
    /// `shape`.
    pub fn tensor(
        name: impl Into<String>,
        dtype: DataType,
        shape: Vec<usize>,
        data: Bytes,
    ) -> Result<Self, ServeError> {
        let name = name.into();
        if let Err(e) = wire::check_byte_size(dtype, &shape, &data) {
            return Err(ServeError::tensor(Place::Input(&name), e));
        }
        Ok(InferInput {
            name,
            dtype,
            shape,
            data: InputData::Raw(data),
        })
    }

    /// A `BYTES` tensor: one element per entry of `shape`.
    pub fn strings(
        name: impl Into<String>,
        shape: Vec<usize>,
        elements: Vec<Bytes>,
    ) -> Result<Self, ServeError> {
        let name = name.into();
        let expected = wire::element_count(DataType::Bytes, &shape)
            .map_err(|e| ServeError::tensor(Place::Input(&name), e))?;
        if elements.len() != expected {
            let error = WireError::ElementCount {
                shape,
                expected,
                got: elements.len(),
            };
            return Err(ServeError::tensor(Place::Input(&name), error));
        }
        Ok(InferInput {
            name,
            dtype: DataType::Bytes,
            shape,
            data: InputData::Strings(elements),
        })
    }

    /// A `BYTES` tensor whose elements are given in their binary form, one per entry of
    /// `shape` (as an earlier step of an ensemble produced them).
    pub fn encoded_strings(
        name: impl Into<String>,
        shape: Vec<usize>,
        data: Bytes,
    ) -> Result<Self, ServeError> {
        let name = name.into();
        if let Err(e) = wire::check_bytes(&shape, &data) {
            return Err(ServeError::tensor(Place::Input(&name), e));
        }
        Ok(InferInput {
            name,
            dtype: DataType::Bytes,
            shape,
            data: InputData::Encoded(data),
        })
    }

    /// The input a model output makes, as it came from the model: `BYTES` in their binary
    /// form, any other datatype little-endian. The data is shared, not copied.
    pub fn from_output(
        name: impl Into<String>,
        dtype: DataType,
        shape: Vec<usize>,
        data: Bytes,
    ) -> Result<Self, ServeError> {
        if dtype == DataType::Bytes {
            InferInput::encoded_strings(name, shape, data)
        } else {
            InferInput::tensor(name, dtype, shape, data)
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn dtype(&self) -> DataType {
        self.dtype
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn data(&self) -> &InputData {
        &self.data
    }
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
    /// Batch rows of the request (1 for a model that does not batch).
    pub rows: usize,
    pub outputs: Vec<InferOutput>,
    pub timings: Timings,
}

/// Where a request's time went in the server, apart from the protocol, and the engine run
/// that computed it (all zero when its answer came from the response cache). The stages
/// follow each other: preprocessing ends when the job is queued, at `enqueued`, and the
/// engine run begins `queue` later.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timings {
    /// Waiting in the model's queue.
    pub queue: Duration,
    /// Decoding and preprocessing images.
    pub preprocess: Duration,
    /// The engine run of the batch the request was in, gathering its inputs included.
    pub compute: Duration,
    /// When the job entered the model's queue; `None` when no job was queued.
    pub enqueued: Option<Instant>,
    /// Rows of the engine run: the request's and those of the requests batched with it.
    pub batch_size: usize,
}

/// What `/classify` answers: the ranked classes, the model version that ranked them, and
/// where the time went.
#[derive(Debug, Clone)]
pub struct Classified {
    pub classes: Vec<ClassifiedAs>,
    pub version: u64,
    pub timings: Timings,
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
    /// Fixed-size elements, little-endian, row-major; for a `BYTES` tensor of the model,
    /// its elements in their binary form (each a 4-byte little-endian length, then its
    /// bytes), as the wire carries them.
    Raw(Bytes),
    /// `BYTES` elements (classification results).
    Strings(Vec<String>),
}

/// One class of an image classified by [`crate::Runtime::classify_image`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ClassifiedAs {
    pub label: Option<Arc<str>>,
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
