//! The engine contract: load a model, describe its inputs and outputs, and run batches
//! on worker threads. One module per engine: ONNX Runtime, OpenVINO and tract, the last
//! two behind cargo features (`openvino`, `tract`, both on by default).
//!
//! An [`Engine`] is a loaded model, shared by all workers. Each worker asks it for a
//! [`Runner`], its own mutable state, and calls [`Runner::run`] synchronously on a
//! dedicated thread (never on an async runtime).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferroserve_core::{DataType, Precision, Tensor, TensorRef, TensorSpec};

pub mod model;
pub mod onnxruntime;
#[cfg(feature = "openvino")]
pub mod openvino;
#[cfg(feature = "tract")]
pub mod tract;

/// A model loaded into an inference engine; shared across worker threads.
pub trait Engine: Send + Sync {
    /// The engine's name: `onnxruntime`, `openvino` or `tract`.
    fn kind(&self) -> EngineKind;
    /// The precision the model is computed in: never [`Precision::Auto`], which each
    /// engine resolves when it loads the model.
    fn precision(&self) -> Precision;
    /// The model's inputs, in the order [`Runner::run`] takes them. Dynamic dims are `-1`.
    fn inputs(&self) -> &[TensorSpec];
    /// The model's outputs, in the order [`Runner::run`] writes them.
    fn outputs(&self) -> &[TensorSpec];
    /// Creates the per-worker state that runs the model.
    fn runner(&self) -> Result<Box<dyn Runner>, EngineError>;
    /// Like [`runner`](Self::runner), with `threads` intra-op threads instead of the
    /// engine's setting, for an engine that has such threads (the default ignores it).
    fn runner_with_threads(&self, threads: usize) -> Result<Box<dyn Runner>, EngineError> {
        let _ = threads;
        self.runner()
    }
}

/// One worker's handle on a model: runs one batch at a time.
pub trait Runner: Send {
    /// Runs the model on `inputs` (one per model input, in [`Engine::inputs`] order) and
    /// writes each model output into the matching element of `outputs`, reshaping it and
    /// reusing its buffer. `outputs` must have one tensor per model output. `BYTES`
    /// tensors, both ways, hold their elements in their binary form (see
    /// [`ferroserve_core::tensor`]).
    fn run(&mut self, inputs: &[TensorRef<'_>], outputs: &mut [Tensor]) -> Result<(), EngineError>;
}

/// Which engine runs a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineKind {
    OnnxRuntime,
    OpenVino,
    Tract,
}

impl EngineKind {
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::OnnxRuntime => "onnxruntime",
            EngineKind::OpenVino => "openvino",
            EngineKind::Tract => "tract",
        }
    }
}

impl std::str::FromStr for EngineKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "onnxruntime" | "ort" | "onnxruntime_onnx" => Ok(EngineKind::OnnxRuntime),
            "openvino" => Ok(EngineKind::OpenVino),
            "tract" => Ok(EngineKind::Tract),
            other => Err(format!(
                "unknown engine '{other}': expected 'onnxruntime', 'openvino' or 'tract'"
            )),
        }
    }
}

/// How an engine runs a model.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Threads one inference may use (intra-op parallelism).
    pub intra_op_threads: usize,
    /// The precision to compute in; `None` is [`Precision::F32`] for [`load`], and the
    /// model configuration's precision for [`model::LoadedModel::load`].
    pub precision: Option<Precision>,
    /// Explicit path of the ONNX Runtime shared library; see [`onnxruntime::library_path`].
    pub onnxruntime_library: Option<PathBuf>,
    /// Explicit path of OpenVINO's C library, `libopenvino_c.so.2641`; see
    /// `openvino::library_path`.
    pub openvino_library: Option<PathBuf>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            intra_op_threads: 1,
            precision: None,
            onnxruntime_library: None,
            openvino_library: None,
        }
    }
}

/// Loads the model at `path` into the engine `kind`: an ONNX file, or for OpenVINO also
/// an IR (`model.xml` with `model.bin` beside it).
pub fn load(
    kind: EngineKind,
    path: &Path,
    options: &EngineOptions,
) -> Result<Arc<dyn Engine>, EngineError> {
    match kind {
        EngineKind::OnnxRuntime => Ok(Arc::new(onnxruntime::OnnxRuntimeEngine::load(
            path, options,
        )?)),
        #[cfg(feature = "openvino")]
        EngineKind::OpenVino => Ok(Arc::new(openvino::OpenVinoEngine::load(path, options)?)),
        #[cfg(not(feature = "openvino"))]
        EngineKind::OpenVino => Err(EngineError::NotBuilt("openvino")),
        #[cfg(feature = "tract")]
        EngineKind::Tract => Ok(Arc::new(tract::TractEngine::load(path, options)?)),
        #[cfg(not(feature = "tract"))]
        EngineKind::Tract => Err(EngineError::NotBuilt("tract")),
    }
}

/// What can go wrong loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    RuntimeMissing(String),
    #[error("engine '{0}' is not built into this binary (cargo feature '{0}')")]
    NotBuilt(&'static str),
    #[error("cannot load model {path}: {reason}")]
    Load { path: PathBuf, reason: String },
    #[error("{0}")]
    InvalidInput(String),
    #[error("inference failed: {0}")]
    Run(String),
}

/// The precision of an engine that computes a model as its file holds it (ONNX Runtime,
/// tract): f32, or int8 for a model file that is quantized. bf16 and f16 would need the
/// model converted, which is not done at load: refused.
fn as_stored(
    kind: EngineKind,
    requested: Precision,
    path: &Path,
) -> Result<Precision, EngineError> {
    match requested {
        Precision::Auto | Precision::F32 => Ok(Precision::F32),
        Precision::Int8 => {
            require_quantized(path)?;
            Ok(Precision::Int8)
        }
        Precision::Bf16 | Precision::F16 => Err(EngineError::Load {
            path: path.to_path_buf(),
            reason: format!(
                "precision {requested} is not available on {}, which computes a model in the \
                 precision of its file (f32, or int8 for a quantized model); use --engine \
                 openvino, or precision f32",
                kind.name()
            ),
        }),
    }
}

/// Operators whose presence makes a model file quantized: ONNX's QuantizeLinear and
/// DequantizeLinear (QDQ), QLinear* and *Integer operators, and OpenVINO IR's
/// FakeQuantize. Operator types are plain strings in both formats.
const QUANTIZED_OPERATORS: &[&[u8]] = &[
    b"QuantizeLinear",
    b"QLinear",
    b"ConvInteger",
    b"MatMulInteger",
    b"FakeQuantize",
];

/// Precision int8 computes a quantized model file as it is: one without quantized
/// operators is refused rather than silently run in f32.
fn require_quantized(path: &Path) -> Result<(), EngineError> {
    let error = |reason: String| EngineError::Load {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| error(e.to_string()))?;
    let quantized = QUANTIZED_OPERATORS
        .iter()
        .any(|op| memchr::memmem::find(&bytes, op).is_some());
    if quantized {
        Ok(())
    } else {
        Err(error(
            "precision int8 needs a quantized model file (QuantizeLinear/DequantizeLinear \
             operators in ONNX, FakeQuantize in OpenVINO IR), and this one holds none; \
             quantize it first, or use precision f32"
                .into(),
        ))
    }
}

/// Checks `inputs` against the model's input specs before an engine sees them.
fn check_inputs(specs: &[TensorSpec], inputs: &[TensorRef<'_>]) -> Result<(), EngineError> {
    if inputs.len() != specs.len() {
        return Err(EngineError::InvalidInput(format!(
            "model takes {} inputs, got {}",
            specs.len(),
            inputs.len()
        )));
    }
    for (spec, input) in specs.iter().zip(inputs) {
        if input.dtype != spec.dtype {
            return Err(EngineError::InvalidInput(format!(
                "input '{}' must be {}, got {}",
                spec.name, spec.dtype, input.dtype
            )));
        }
        if !spec.accepts_shape(input.shape) {
            return Err(EngineError::InvalidInput(format!(
                "input '{}' must have shape {:?}, got {:?}",
                spec.name, spec.shape, input.shape
            )));
        }
        let Some(size) = input.dtype.size() else {
            ferroserve_core::wire::check_bytes(input.shape, input.data)
                .map_err(|e| EngineError::InvalidInput(format!("input '{}': {e}", spec.name)))?;
            continue;
        };
        let expected = size * input.shape.iter().product::<usize>();
        if input.data.len() != expected {
            return Err(EngineError::InvalidInput(format!(
                "input '{}' of shape {:?} needs {expected} bytes, got {}",
                spec.name,
                input.shape,
                input.data.len()
            )));
        }
        if input.dtype == DataType::Bool && input.data.iter().any(|&b| b > 1) {
            return Err(EngineError::InvalidInput(format!(
                "input '{}': BOOL values must be 0 or 1",
                spec.name
            )));
        }
    }
    Ok(())
}
