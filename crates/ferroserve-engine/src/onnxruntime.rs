//! ONNX Runtime through the `ort` crate, loading `libonnxruntime.so` at run time.
//!
//! ONNX Runtime sessions need exclusive access to run, so every [`Runner`] owns a
//! session of its own, built from the model bytes the engine keeps in memory.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use ferroserve_core::{wire, DataType, Precision, Tensor, TensorBuf, TensorRef, TensorSpec};
use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::{Session, SessionInputValue};
use ort::value::{DynValue, TensorElementType, ValueType};

use crate::{check_inputs, Engine, EngineError, EngineKind, EngineOptions, Runner};

/// The ONNX Runtime release ferroserve is built and tested against.
pub const LIBRARY_FILE: &str = "libonnxruntime.so.1.32.0";

const HOW_TO_INSTALL: &str = "Install it with `scripts/setup-onnxruntime.sh` (it copies \
libonnxruntime.so.1.32.0 out of the PyPI wheel onnxruntime==1.32.0, onnxruntime/capi/) \
or point --onnxruntime-library / ORT_DYLIB_PATH at that file";

/// Where the ONNX Runtime library is looked for, first match wins: the explicit path
/// (flag), `ORT_DYLIB_PATH`, the executable's folder, then `.cache/onnxruntime/` in the
/// executable's folder or any folder above it (where the set-up script puts it).
pub fn library_path(explicit: Option<&Path>) -> Result<PathBuf, EngineError> {
    if let Some(path) = explicit {
        return existing(path.to_path_buf());
    }
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        return existing(PathBuf::from(path));
    }
    let exe = std::env::current_exe().map_err(|e| EngineError::RuntimeMissing(e.to_string()))?;
    let mut searched = Vec::new();
    if let Some(dir) = exe.parent() {
        searched.push(dir.join(LIBRARY_FILE));
        for ancestor in dir.ancestors() {
            searched.push(ancestor.join(".cache/onnxruntime").join(LIBRARY_FILE));
        }
    }
    match searched.iter().find(|p| p.is_file()) {
        Some(found) => Ok(found.clone()),
        None => Err(EngineError::RuntimeMissing(format!(
            "ONNX Runtime library {LIBRARY_FILE} not found next to {} or in a .cache/onnxruntime \
             folder above it. {HOW_TO_INSTALL}",
            exe.display()
        ))),
    }
}

fn existing(path: PathBuf) -> Result<PathBuf, EngineError> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(EngineError::RuntimeMissing(format!(
            "ONNX Runtime library {} does not exist. {HOW_TO_INSTALL}",
            path.display()
        )))
    }
}

/// Loads the library once per process and keeps the ONNX Runtime environment alive.
fn environment(explicit: Option<&Path>) -> Result<Environment, EngineError> {
    static ENVIRONMENT: OnceLock<Result<Environment, String>> = OnceLock::new();
    let env = ENVIRONMENT.get_or_init(|| {
        let path = library_path(explicit).map_err(|e| e.to_string())?;
        let builder = ort::init_from(&path).map_err(|e| {
            format!(
                "cannot load ONNX Runtime from {}: {e}. {HOW_TO_INSTALL}",
                path.display()
            )
        })?;
        builder
            .with_name("ferroserve")
            .build()
            .map_err(|e| format!("cannot start ONNX Runtime from {}: {e}", path.display()))
    });
    env.clone().map_err(EngineError::RuntimeMissing)
}

/// A model loaded into ONNX Runtime.
pub struct OnnxRuntimeEngine {
    environment: Environment,
    model: Arc<[u8]>,
    path: PathBuf,
    precision: Precision,
    threads: usize,
    inputs: Vec<TensorSpec>,
    outputs: Vec<TensorSpec>,
    /// The session built while loading, handed to the first runner.
    first_session: std::sync::Mutex<Option<Session>>,
}

impl OnnxRuntimeEngine {
    /// Loads the model in f32, or int8 for a quantized model file (precision `int8`);
    /// other precisions are refused.
    pub fn load(path: &Path, options: &EngineOptions) -> Result<Self, EngineError> {
        let environment = environment(options.onnxruntime_library.as_deref())?;
        let model: Arc<[u8]> = std::fs::read(path).map_err(|e| load_error(path, e))?.into();
        let requested = options.precision.unwrap_or_default();
        let precision = crate::as_stored(EngineKind::OnnxRuntime, requested, path)?;
        let threads = options.intra_op_threads.max(1);
        let session =
            build_session(&environment, &model, threads).map_err(|e| load_error(path, e))?;
        let inputs = session
            .inputs()
            .iter()
            .map(|o| spec(o.name(), o.dtype()))
            .collect::<Result<_, _>>()
            .map_err(|e| load_error(path, e))?;
        let outputs = session
            .outputs()
            .iter()
            .map(|o| spec(o.name(), o.dtype()))
            .collect::<Result<_, _>>()
            .map_err(|e| load_error(path, e))?;
        Ok(OnnxRuntimeEngine {
            environment,
            model,
            path: path.to_path_buf(),
            precision,
            threads,
            inputs,
            outputs,
            first_session: std::sync::Mutex::new(Some(session)),
        })
    }
}

fn load_error(path: &Path, reason: impl std::fmt::Display) -> EngineError {
    EngineError::Load {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn build_session(
    environment: &Environment,
    model: &[u8],
    threads: usize,
) -> Result<Session, String> {
    let text = |e: ort::Error<_>| e.to_string();
    Session::builder(environment)
        .map_err(|e| e.to_string())?
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(text)?
        .with_intra_threads(threads)
        .map_err(text)?
        .with_inter_threads(1)
        .map_err(text)?
        .commit_from_memory(model)
        .map_err(|e| e.to_string())
}

fn spec(name: &str, value: &ValueType) -> Result<TensorSpec, String> {
    let ValueType::Tensor { ty, shape, .. } = value else {
        return Err(format!(
            "'{name}' is not a tensor ({value:?}); only tensors are supported"
        ));
    };
    Ok(TensorSpec {
        name: name.to_string(),
        dtype: data_type(*ty)
            .ok_or_else(|| format!("'{name}' has unsupported element type {ty:?}"))?,
        shape: shape.iter().map(|&d| if d < 0 { -1 } else { d }).collect(),
    })
}

fn data_type(ty: TensorElementType) -> Option<DataType> {
    Some(match ty {
        TensorElementType::Bool => DataType::Bool,
        TensorElementType::Uint8 => DataType::Uint8,
        TensorElementType::Uint16 => DataType::Uint16,
        TensorElementType::Uint32 => DataType::Uint32,
        TensorElementType::Uint64 => DataType::Uint64,
        TensorElementType::Int8 => DataType::Int8,
        TensorElementType::Int16 => DataType::Int16,
        TensorElementType::Int32 => DataType::Int32,
        TensorElementType::Int64 => DataType::Int64,
        TensorElementType::Float16 => DataType::Fp16,
        TensorElementType::Float32 => DataType::Fp32,
        TensorElementType::Float64 => DataType::Fp64,
        TensorElementType::String => DataType::Bytes,
        _ => return None,
    })
}

impl Engine for OnnxRuntimeEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::OnnxRuntime
    }

    fn precision(&self) -> Precision {
        self.precision
    }

    fn inputs(&self) -> &[TensorSpec] {
        &self.inputs
    }

    fn outputs(&self) -> &[TensorSpec] {
        &self.outputs
    }

    fn runner(&self) -> Result<Box<dyn Runner>, EngineError> {
        self.runner_with_threads(self.threads)
    }

    fn runner_with_threads(&self, threads: usize) -> Result<Box<dyn Runner>, EngineError> {
        let first = (threads == self.threads)
            .then(|| self.first_session.lock().ok().and_then(|mut s| s.take()))
            .flatten();
        let session = match first {
            Some(session) => session,
            None => build_session(&self.environment, &self.model, threads.max(1))
                .map_err(|e| load_error(&self.path, e))?,
        };
        Ok(Box::new(OnnxRuntimeRunner {
            session,
            inputs: self.inputs.clone(),
            scratch: vec![TensorBuf::default(); self.inputs.len()],
        }))
    }
}

/// One worker's ONNX Runtime session.
struct OnnxRuntimeRunner {
    session: Session,
    inputs: Vec<TensorSpec>,
    /// Aligned copies of inputs whose bytes arrive misaligned for their element type.
    scratch: Vec<TensorBuf>,
}

impl Runner for OnnxRuntimeRunner {
    fn run(&mut self, inputs: &[TensorRef<'_>], outputs: &mut [Tensor]) -> Result<(), EngineError> {
        check_inputs(&self.inputs, inputs)?;
        let values = inputs
            .iter()
            .zip(self.scratch.iter_mut())
            .map(|(input, scratch)| input_value(input, scratch))
            .collect::<Result<Vec<_>, _>>()?;
        let results = self
            .session
            .run(values.as_slice())
            .map_err(|e| EngineError::Run(e.to_string()))?;
        if results.len() != outputs.len() {
            return Err(EngineError::Run(format!(
                "model produced {} outputs, caller expects {}",
                results.len(),
                outputs.len()
            )));
        }
        for ((_, value), out) in results.iter().zip(outputs.iter_mut()) {
            copy_output(&value, out)?;
        }
        Ok(())
    }
}

/// The bytes as a slice of `T`, copied into `scratch` only when misaligned.
fn aligned<'a, T: bytemuck::Pod>(data: &'a [u8], scratch: &'a mut TensorBuf) -> &'a [T] {
    match bytemuck::try_cast_slice(data) {
        Ok(values) => values,
        Err(_) => {
            scratch.resize(data.len());
            scratch.as_bytes_mut().copy_from_slice(data);
            let scratch: &'a TensorBuf = scratch;
            scratch.as_slice()
        }
    }
}

fn input_value<'a>(
    input: &TensorRef<'a>,
    scratch: &'a mut TensorBuf,
) -> Result<SessionInputValue<'a>, EngineError> {
    macro_rules! view {
        ($t:ty) => {
            ort::value::TensorRef::from_array_view((
                input.shape,
                aligned::<$t>(input.data, scratch),
            ))
            .map(SessionInputValue::from)
        };
    }
    let value = match input.dtype {
        DataType::Uint8 => view!(u8),
        DataType::Uint16 => view!(u16),
        DataType::Uint32 => view!(u32),
        DataType::Uint64 => view!(u64),
        DataType::Int8 => view!(i8),
        DataType::Int16 => view!(i16),
        DataType::Int32 => view!(i32),
        DataType::Int64 => view!(i64),
        DataType::Fp16 => view!(half::f16),
        DataType::Fp32 => view!(f32),
        DataType::Fp64 => view!(f64),
        // `bool` is not plain bytes to Rust: the 0/1 bytes (checked at admission) are
        // copied into an owned tensor.
        DataType::Bool => {
            let values: Vec<bool> = input.data.iter().map(|&b| b != 0).collect();
            ort::value::Tensor::from_array((input.shape.to_vec(), values))
                .map(|tensor| SessionInputValue::from(tensor.into_dyn()))
        }
        DataType::Bytes => {
            let strings = strings(input.data)?;
            ort::value::Tensor::from_string_array((input.shape.to_vec(), strings.as_slice()))
                .map(|tensor| SessionInputValue::from(tensor.into_dyn()))
        }
    };
    value.map_err(|e| EngineError::InvalidInput(e.to_string()))
}

/// One element of a string tensor, as bytes: ONNX Runtime's strings are byte strings, not
/// necessarily UTF-8.
#[derive(Clone)]
struct ByteString(Vec<u8>);

impl ort::value::Utf8Data for ByteString {
    fn as_utf8_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// The elements of `BYTES` data (binary form, checked by `check_inputs`) for a string
/// tensor. ONNX Runtime takes them as C strings, so none may hold a NUL byte.
fn strings(data: &[u8]) -> Result<Vec<ByteString>, EngineError> {
    wire::bytes_elements(data)
        .enumerate()
        .map(|(index, element)| {
            let element = element.map_err(|e| EngineError::InvalidInput(e.to_string()))?;
            if element.contains(&0) {
                return Err(EngineError::InvalidInput(format!(
                    "BYTES element {index} holds a NUL byte, which ONNX Runtime strings cannot hold"
                )));
            }
            Ok(ByteString(element.to_vec()))
        })
        .collect()
}

fn copy_output(value: &DynValue, out: &mut Tensor) -> Result<(), EngineError> {
    macro_rules! copy {
        ($t:ty, $dtype:expr) => {{
            let (shape, data) = value
                .try_extract_tensor::<$t>()
                .map_err(|e| EngineError::Run(e.to_string()))?;
            reshape(out, $dtype, shape)?;
            out.data
                .as_bytes_mut()
                .copy_from_slice(bytemuck::cast_slice(data));
        }};
    }
    let ty = value
        .dtype()
        .tensor_type()
        .ok_or_else(|| EngineError::Run("model output is not a tensor".into()))?;
    match data_type(ty) {
        Some(DataType::Uint8) => copy!(u8, DataType::Uint8),
        Some(DataType::Uint16) => copy!(u16, DataType::Uint16),
        Some(DataType::Uint32) => copy!(u32, DataType::Uint32),
        Some(DataType::Uint64) => copy!(u64, DataType::Uint64),
        Some(DataType::Int8) => copy!(i8, DataType::Int8),
        Some(DataType::Int16) => copy!(i16, DataType::Int16),
        Some(DataType::Int32) => copy!(i32, DataType::Int32),
        Some(DataType::Int64) => copy!(i64, DataType::Int64),
        Some(DataType::Fp16) => copy!(half::f16, DataType::Fp16),
        Some(DataType::Fp32) => copy!(f32, DataType::Fp32),
        Some(DataType::Fp64) => copy!(f64, DataType::Fp64),
        Some(DataType::Bool) => {
            let (shape, data) = value
                .try_extract_tensor::<bool>()
                .map_err(|e| EngineError::Run(e.to_string()))?;
            reshape(out, DataType::Bool, shape)?;
            for (byte, &value) in out.data.as_bytes_mut().iter_mut().zip(data) {
                *byte = u8::from(value);
            }
        }
        Some(DataType::Bytes) => {
            let (shape, strings) = value.try_extract_strings().map_err(|e| {
                EngineError::Run(format!("a string output is not valid UTF-8: {e}"))
            })?;
            let dims = shape
                .iter()
                .map(|&d| usize::try_from(d))
                .collect::<Result<Vec<usize>, _>>()
                .map_err(|_| EngineError::Run(format!("unsupported output shape {shape:?}")))?;
            out.set_strings(&dims, &strings)
                .map_err(|e| EngineError::Run(e.to_string()))?;
        }
        None => return Err(EngineError::Run(format!("unsupported output type {ty:?}"))),
    }
    Ok(())
}

/// Reshapes `out` to an engine-reported shape without allocating for ranks up to 8.
pub(crate) fn reshape(out: &mut Tensor, dtype: DataType, shape: &[i64]) -> Result<(), EngineError> {
    let mut dims = [0usize; 8];
    if shape.len() > dims.len() || shape.iter().any(|&d| d < 0) {
        return Err(EngineError::Run(format!(
            "unsupported output shape {shape:?}"
        )));
    }
    for (dim, &d) in dims.iter_mut().zip(shape) {
        *dim = d as usize;
    }
    out.reshape(dtype, &dims[..shape.len()]);
    Ok(())
}
