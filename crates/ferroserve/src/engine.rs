//! The engine flags `serve`, `classify` and `config` share.

use std::path::PathBuf;

use ferroserve_core::Precision;
use ferroserve_engine::{EngineKind, EngineOptions};

/// Which engine runs the models, in what precision, and where its library is.
#[derive(clap::Args)]
pub struct EngineArgs {
    /// Inference engine for every model: onnxruntime, openvino or tract. Default: each
    /// model's configuration (its backend, or ONNX Runtime's openvino accelerator).
    #[arg(long, env = "FERROSERVE_ENGINE")]
    pub engine: Option<EngineKind>,
    /// Precision for every model: auto, f32, bf16, f16 or int8 (a quantized model file).
    /// Default: each model's parameter INFERENCE_PRECISION_HINT (or HINT_BF16), else f32.
    /// auto is bf16 where the CPU computes it natively and the engine is OpenVINO, else f32.
    #[arg(long, env = "FERROSERVE_PRECISION")]
    pub precision: Option<Precision>,
    /// Path of libonnxruntime.so.1.32.0 (also read from ORT_DYLIB_PATH).
    #[arg(long, env = "FERROSERVE_ONNXRUNTIME_LIBRARY")]
    pub onnxruntime_library: Option<PathBuf>,
    /// Path of OpenVINO's libopenvino_c.so.2641, its CPU plugin beside it (also read from
    /// OPENVINO_LIB_PATH).
    #[arg(long, env = "FERROSERVE_OPENVINO_LIBRARY")]
    pub openvino_library: Option<PathBuf>,
}

impl EngineArgs {
    /// The engine options of these flags, one intra-op thread (the caller decides).
    pub fn options(&self) -> EngineOptions {
        EngineOptions {
            intra_op_threads: 1,
            precision: self.precision,
            onnxruntime_library: self.onnxruntime_library.clone(),
            openvino_library: self.openvino_library.clone(),
        }
    }
}
