//! OpenVINO through the `openvino` crate, loading `libopenvino_c.so.2641` (OpenVINO
//! 2026.4.1's C API, with its CPU plugin beside it) at run time. It reads ONNX, and
//! OpenVINO IR: `model.xml` with its weights in `model.bin` beside it.
//!
//! Each [`Runner`] is one OpenVINO stream: the model compiled for the CPU with one
//! stream (`NUM_STREAMS` 1) of the runner's threads (`INFERENCE_NUM_THREADS`), and an
//! infer request its worker thread runs synchronously. OpenVINO runs a synchronous
//! request on the calling thread, inside the stream, so the `instances x threads` of an
//! arrangement are the streams and threads OpenVINO runs. Threads are not pinned to
//! cores (`ENABLE_CPU_PINNING` off): several models, and other processes, share them.
//!
//! The precision is OpenVINO's `INFERENCE_PRECISION_HINT`, checked first against what
//! the CPU computes natively (the CPU device's `OPTIMIZATION_CAPABILITIES`): where the
//! CPU lacks bf16 or f16, OpenVINO would quietly compute in f32, and ferroserve refuses
//! the model instead.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ferroserve_core::{DataType, Precision, Tensor, TensorRef, TensorSpec};
use openvino::{
    CompiledModel, Core, DeviceType, ElementType, InferRequest, Model, Node, PropertyKey,
    RwPropertyKey, Shape,
};

use crate::onnxruntime::reshape;
use crate::{check_inputs, Engine, EngineError, EngineKind, EngineOptions, Runner};

/// The OpenVINO release ferroserve is built and tested against: its C API library.
pub const LIBRARY_FILE: &str = "libopenvino_c.so.2641";

const HOW_TO_INSTALL: &str = "Install it with `scripts/setup-openvino.sh` (it copies \
libopenvino_c.so.2641, the CPU plugin and oneTBB out of the PyPI wheel openvino==2026.4.1, \
openvino/libs/, into .cache/openvino/) or point --openvino-library / OPENVINO_LIB_PATH at \
that file";

/// Where the OpenVINO C library is looked for, first match wins: the explicit path
/// (flag), `OPENVINO_LIB_PATH`, the executable's folder, then `.cache/openvino/` in the
/// executable's folder or any folder above it (where the set-up script puts it). The
/// CPU plugin and the model readers must be in the same folder.
pub fn library_path(explicit: Option<&Path>) -> Result<PathBuf, EngineError> {
    if let Some(path) = explicit {
        return existing(path.to_path_buf());
    }
    if let Some(path) = std::env::var_os("OPENVINO_LIB_PATH").filter(|p| !p.is_empty()) {
        return existing(PathBuf::from(path));
    }
    let exe = std::env::current_exe().map_err(|e| EngineError::RuntimeMissing(e.to_string()))?;
    let mut searched = Vec::new();
    if let Some(dir) = exe.parent() {
        searched.push(dir.join(LIBRARY_FILE));
        for ancestor in dir.ancestors() {
            searched.push(ancestor.join(".cache/openvino").join(LIBRARY_FILE));
        }
    }
    match searched.iter().find(|p| p.is_file()) {
        Some(found) => Ok(found.clone()),
        None => Err(EngineError::RuntimeMissing(format!(
            "OpenVINO library {LIBRARY_FILE} not found next to {} or in a .cache/openvino \
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
            "OpenVINO library {} does not exist. {HOW_TO_INSTALL}",
            path.display()
        )))
    }
}

/// The OpenVINO runtime: the library loaded once per process (the first path found
/// wins for the process), and the one `Core` every model is read and compiled with.
/// Compiling sets the CPU's properties on the core, so it happens under the lock.
fn core(explicit: Option<&Path>) -> Result<&'static Mutex<Core>, EngineError> {
    static CORE: OnceLock<Result<Mutex<Core>, String>> = OnceLock::new();
    let path = library_path(explicit)?;
    let core = CORE.get_or_init(|| {
        openvino_sys::library::load_from(&path).map_err(|e| {
            format!(
                "cannot load OpenVINO from {}: {e}. {HOW_TO_INSTALL}",
                path.display()
            )
        })?;
        Core::new()
            .map(Mutex::new)
            .map_err(|e| format!("cannot start OpenVINO from {}: {e}", path.display()))
    });
    core.as_ref()
        .map_err(|e| EngineError::RuntimeMissing(e.clone()))
}

fn lock(core: &Mutex<Core>) -> std::sync::MutexGuard<'_, Core> {
    core.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the CPU computes natively, as OpenVINO's CPU device reports it
/// (`OPTIMIZATION_CAPABILITIES`: `FP32`, `BF16`, `FP16`, `INT8`, ...), and the CPU's name.
pub fn cpu_capabilities(library: Option<&Path>) -> Result<(Vec<String>, String), EngineError> {
    let core = lock(core(library)?);
    let get = |key: PropertyKey| {
        core.get_property(&DeviceType::CPU, &key)
            .map_err(|e| EngineError::RuntimeMissing(format!("OpenVINO's CPU device: {e}")))
    };
    let capabilities = get(PropertyKey::DeviceCapabilities)?;
    let name = get(PropertyKey::DeviceFullName)?;
    Ok((
        capabilities
            .split_whitespace()
            .map(str::to_string)
            .collect(),
        name,
    ))
}

/// A model read by OpenVINO, compiled for the CPU once per runner.
pub struct OpenVinoEngine {
    core: &'static Mutex<Core>,
    model: Model,
    path: PathBuf,
    precision: Precision,
    /// OpenVINO's `INFERENCE_PRECISION_HINT` for `precision`.
    hint: &'static str,
    threads: usize,
    inputs: Vec<TensorSpec>,
    outputs: Vec<TensorSpec>,
    /// The model compiled while loading (with `threads`), handed to the first runner.
    first: Mutex<Option<CompiledModel>>,
}

impl OpenVinoEngine {
    /// Reads the model (ONNX, or IR when the file is `*.xml`), decides its precision on
    /// this CPU, and compiles it once, so that a model OpenVINO cannot run fails here.
    pub fn load(path: &Path, options: &EngineOptions) -> Result<Self, EngineError> {
        let core = core(options.openvino_library.as_deref())?;
        let error = |reason: String| load_error(path, reason);
        let model = read_model(&mut lock(core), path)?;
        let inputs = ports(&model, Port::Input).map_err(error)?;
        let outputs = ports(&model, Port::Output).map_err(error)?;
        let (capabilities, cpu) = cpu_capabilities(options.openvino_library.as_deref())?;
        let requested = options.precision.unwrap_or_default();
        let (precision, hint) = precision_on(&capabilities, &cpu, requested, path)?;
        let engine = OpenVinoEngine {
            core,
            model,
            path: path.to_path_buf(),
            precision,
            hint,
            threads: options.intra_op_threads.max(1),
            inputs,
            outputs,
            first: Mutex::new(None),
        };
        let compiled = engine.compile(engine.threads)?;
        *engine.first.lock().unwrap_or_else(|e| e.into_inner()) = Some(compiled);
        Ok(engine)
    }

    /// The model compiled for one stream of `threads` threads in this engine's precision.
    fn compile(&self, threads: usize) -> Result<CompiledModel, EngineError> {
        let error = |reason: String| load_error(&self.path, reason);
        let threads = threads.max(1).to_string();
        let mut core = lock(self.core);
        let settings = [
            (RwPropertyKey::HintPerformanceMode, "LATENCY"),
            (RwPropertyKey::NumStreams, "1"),
            (RwPropertyKey::InferenceNumThreads, threads.as_str()),
            (RwPropertyKey::HintEnableCpuPinning, "NO"),
            (RwPropertyKey::HintInferencePrecision, self.hint),
        ];
        core.set_properties(&DeviceType::CPU, settings)
            .map_err(|e| error(describe(&e)))?;
        let compiled = core
            .compile_model(&self.model, DeviceType::CPU)
            .map_err(|e| error(format!("OpenVINO cannot compile it: {}", describe(&e))))?;
        drop(core);
        let property = |key: RwPropertyKey| {
            compiled
                .get_property(&PropertyKey::Rw(key))
                .map(|value| value.into_owned())
                .map_err(|e| error(describe(&e)))
        };
        let precision = property(RwPropertyKey::HintInferencePrecision)?;
        if precision != self.hint {
            return Err(error(format!(
                "OpenVINO compiled it in {precision}, not in the {} asked for",
                self.hint
            )));
        }
        let (streams, used) = (
            property(RwPropertyKey::NumStreams)?,
            property(RwPropertyKey::InferenceNumThreads)?,
        );
        if streams != "1" || used != threads {
            tracing::warn!(
                model = %self.path.display(),
                "OpenVINO compiled {streams} streams of {used} threads in all, for 1 stream of {threads} threads"
            );
        }
        Ok(compiled)
    }
}

fn load_error(path: &Path, reason: impl std::fmt::Display) -> EngineError {
    EngineError::Load {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// OpenVINO's message for an error, on one line: its `Exception from src/...cpp:N:` lines
/// (where in OpenVINO's sources the error was raised) left out, the rest joined.
fn describe(error: &openvino::InferenceError) -> String {
    let Some(message) = &error.message else {
        return error.kind.to_string();
    };
    let lines: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("Exception from src/"))
        .collect();
    lines.join(" ")
}

/// Reads `path`: OpenVINO IR when it ends in `.xml` (its weights must be beside it),
/// else ONNX.
fn read_model(core: &mut Core, path: &Path) -> Result<Model, EngineError> {
    let text = |p: &Path| {
        p.to_str()
            .map(str::to_string)
            .ok_or_else(|| load_error(path, "the path is not UTF-8, which OpenVINO needs"))
    };
    if !path.is_file() {
        return Err(load_error(path, "no such file"));
    }
    let weights = match ferroserve_core::ir_weights_file(path) {
        Some(weights) if !weights.is_file() => {
            return Err(load_error(
                path,
                format!(
                    "its weights file {} is missing (an OpenVINO IR is model.xml with model.bin beside it)",
                    weights.display()
                ),
            ))
        }
        Some(weights) => text(&weights)?,
        None => String::new(),
    };
    core.read_model_from_file(&text(path)?, &weights)
        .map_err(|e| load_error(path, format!("OpenVINO cannot read it: {}", describe(&e))))
}

enum Port {
    Input,
    Output,
}

/// The model's inputs or outputs as specs; dynamic dims are `-1`.
fn ports(model: &Model, port: Port) -> Result<Vec<TensorSpec>, String> {
    let text = |e: openvino::InferenceError| describe(&e);
    let count = match port {
        Port::Input => model.get_inputs_len(),
        Port::Output => model.get_outputs_len(),
    }
    .map_err(text)?;
    (0..count)
        .map(|i| {
            let node = match port {
                Port::Input => model.get_input_by_index(i),
                Port::Output => model.get_output_by_index(i),
            }
            .map_err(text)?;
            spec(&node).map_err(|e| {
                let what = match port {
                    Port::Input => "input",
                    Port::Output => "output",
                };
                format!("{what} {i}: {e}")
            })
        })
        .collect()
}

fn spec(node: &Node) -> Result<TensorSpec, String> {
    let text = |e: openvino::InferenceError| describe(&e);
    let name = node
        .get_name()
        .map_err(|e| format!("has no name ({})", text(e)))?;
    let element = node.get_element_type().map_err(text)?;
    let dtype = data_type(element).ok_or_else(|| {
        format!("'{name}' has element type {element}, which ferroserve does not serve")
    })?;
    let shape = node.get_partial_shape().map_err(text)?;
    if shape.get_rank().is_dynamic() {
        return Err(format!(
            "'{name}' has a dynamic rank; only dimensions may be dynamic"
        ));
    }
    let shape = shape
        .get_dimensions()
        .iter()
        .map(|d| if d.is_dynamic() { -1 } else { d.get_min() })
        .collect();
    Ok(TensorSpec { name, dtype, shape })
}

fn data_type(element: ElementType) -> Option<DataType> {
    Some(match element {
        ElementType::Boolean => DataType::Bool,
        ElementType::U8 => DataType::Uint8,
        ElementType::U16 => DataType::Uint16,
        ElementType::U32 => DataType::Uint32,
        ElementType::U64 => DataType::Uint64,
        ElementType::I8 => DataType::Int8,
        ElementType::I16 => DataType::Int16,
        ElementType::I32 => DataType::Int32,
        ElementType::I64 => DataType::Int64,
        ElementType::F16 => DataType::Fp16,
        ElementType::F32 => DataType::Fp32,
        ElementType::F64 => DataType::Fp64,
        _ => return None,
    })
}

fn element_type(dtype: DataType) -> Option<ElementType> {
    Some(match dtype {
        DataType::Bool => ElementType::Boolean,
        DataType::Uint8 => ElementType::U8,
        DataType::Uint16 => ElementType::U16,
        DataType::Uint32 => ElementType::U32,
        DataType::Uint64 => ElementType::U64,
        DataType::Int8 => ElementType::I8,
        DataType::Int16 => ElementType::I16,
        DataType::Int32 => ElementType::I32,
        DataType::Int64 => ElementType::I64,
        DataType::Fp16 => ElementType::F16,
        DataType::Fp32 => ElementType::F32,
        DataType::Fp64 => ElementType::F64,
        _ => return None,
    })
}

/// The precision `requested` becomes on a CPU of these `capabilities`, with OpenVINO's
/// `INFERENCE_PRECISION_HINT` for it; an error for a precision the CPU does not compute
/// natively, or int8 for a model file that holds no quantization.
fn precision_on(
    capabilities: &[String],
    cpu: &str,
    requested: Precision,
    path: &Path,
) -> Result<(Precision, &'static str), EngineError> {
    let native = |capability: &str| capabilities.iter().any(|c| c == capability);
    let refuse = |capability: &str| {
        load_error(
            path,
            format!(
                "precision {requested} is not native on this CPU ({cpu}): OpenVINO's CPU \
                 device computes {} natively, no {capability}. ferroserve does not emulate \
                 it; use precision f32 or auto",
                capabilities.join(" ")
            ),
        )
    };
    Ok(match requested {
        Precision::Auto if native("BF16") => (Precision::Bf16, "bf16"),
        Precision::Auto | Precision::F32 => (Precision::F32, "f32"),
        Precision::Bf16 if native("BF16") => (Precision::Bf16, "bf16"),
        Precision::Bf16 => return Err(refuse("BF16")),
        Precision::F16 if native("FP16") => (Precision::F16, "f16"),
        Precision::F16 => return Err(refuse("FP16")),
        Precision::Int8 => {
            crate::require_quantized(path)?;
            (Precision::Int8, "f32")
        }
    })
}

impl Engine for OpenVinoEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::OpenVino
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
        let first = (threads.max(1) == self.threads)
            .then(|| self.first.lock().ok().and_then(|mut c| c.take()))
            .flatten();
        let mut compiled = match first {
            Some(compiled) => compiled,
            None => self.compile(threads)?,
        };
        let request = compiled
            .create_infer_request()
            .map_err(|e| load_error(&self.path, describe(&e)))?;
        Ok(Box::new(OpenVinoRunner {
            request,
            _compiled: compiled,
            inputs: self.inputs.clone(),
            outputs: self.outputs.clone(),
            tensors: self.inputs.iter().map(|_| InputTensor::default()).collect(),
        }))
    }
}

/// One worker's stream: its compiled model and infer request.
struct OpenVinoRunner {
    request: InferRequest,
    /// What `request` runs; kept for as long as the request.
    _compiled: CompiledModel,
    inputs: Vec<TensorSpec>,
    outputs: Vec<TensorSpec>,
    /// One OpenVINO tensor per input, which the input's bytes are copied into.
    tensors: Vec<InputTensor>,
}

/// An input's OpenVINO tensor, made again when the input's shape changes (a new batch
/// size); `shape` is the one it has.
#[derive(Default)]
struct InputTensor {
    tensor: Option<openvino::Tensor>,
    shape: Vec<usize>,
}

impl InputTensor {
    /// The tensor, of `input`'s type and shape.
    fn fitting(&mut self, input: &TensorRef<'_>) -> Result<&mut openvino::Tensor, EngineError> {
        if self.tensor.is_none() || self.shape != input.shape {
            let element = element_type(input.dtype).ok_or_else(|| {
                EngineError::InvalidInput(format!(
                    "{} tensors are not supported by OpenVINO",
                    input.dtype
                ))
            })?;
            let mut dims = [0i64; 8];
            if input.shape.len() > dims.len() {
                return Err(EngineError::InvalidInput(format!(
                    "inputs of more than {} dimensions are not supported",
                    dims.len()
                )));
            }
            for (dim, &d) in dims.iter_mut().zip(input.shape) {
                *dim = d as i64;
            }
            let shape = Shape::new(&dims[..input.shape.len()]).map_err(run_error)?;
            self.tensor = None;
            self.tensor = Some(openvino::Tensor::new(element, &shape).map_err(run_error)?);
            self.shape.clear();
            self.shape.extend_from_slice(input.shape);
        }
        Ok(self.tensor.as_mut().expect("made above"))
    }
}

fn run_error(e: openvino::InferenceError) -> EngineError {
    EngineError::Run(describe(&e))
}

impl Runner for OpenVinoRunner {
    fn run(&mut self, inputs: &[TensorRef<'_>], outputs: &mut [Tensor]) -> Result<(), EngineError> {
        check_inputs(&self.inputs, inputs)?;
        if outputs.len() != self.outputs.len() {
            return Err(EngineError::Run(format!(
                "model produces {} outputs, caller expects {}",
                self.outputs.len(),
                outputs.len()
            )));
        }
        for (index, (input, slot)) in inputs.iter().zip(&mut self.tensors).enumerate() {
            let tensor = slot.fitting(input)?;
            // The one copy of the input: OpenVINO's tensor is aligned whatever the
            // alignment of the request's bytes.
            tensor
                .get_raw_data_mut()
                .map_err(run_error)?
                .copy_from_slice(input.data);
            self.request
                .set_input_tensor_by_index(index, tensor)
                .map_err(run_error)?;
        }
        self.request.infer().map_err(run_error)?;
        for (index, (out, spec)) in outputs.iter_mut().zip(&self.outputs).enumerate() {
            let tensor = self
                .request
                .get_output_tensor_by_index(index)
                .map_err(run_error)?;
            let shape = tensor.get_shape().map_err(run_error)?;
            reshape(out, spec.dtype, shape.get_dimensions())?;
            let data = tensor.get_raw_data().map_err(run_error)?;
            if data.len() != out.data.len() {
                return Err(EngineError::Run(format!(
                    "output '{}' has {} bytes for shape {:?}",
                    spec.name,
                    data.len(),
                    shape.get_dimensions()
                )));
            }
            out.data.as_bytes_mut().copy_from_slice(data);
        }
        Ok(())
    }
}
