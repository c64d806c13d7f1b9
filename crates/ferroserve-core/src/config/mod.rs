//! Triton's model configuration (`config.pbtxt`) as typed data.
//!
//! [`ModelConfig::parse`] reads the protobuf text format against Triton's own schema
//! (`proto/model_config.proto`, compiled into [`proto`]), so a file Triton accepts is
//! accepted and a field Triton does not know is an error. The typed [`ModelConfig`] holds
//! the fields ferroserve acts on; every other field the file sets is listed in
//! [`ModelConfig::warnings`] by its path (`optimization.cuda.graphs`), and kept:
//! [`ModelConfig::to_proto`] and [`ModelConfig::to_json`] give the whole configuration,
//! as Triton reports it. Values that are present but wrong are [`ConfigError`]s that name
//! the file and the field.
//!
//! The typed configuration also serialises (serde) to Triton's JSON shape for the fields
//! it holds: protobuf field names, enums as their names (`"TYPE_FP32"`, `"KIND_CPU"`),
//! 64-bit integers as JSON numbers, scalar fields always present and unset sub-messages
//! left out.

mod autocomplete;
mod decode;
mod ensemble;
mod error;
mod json;
mod message;
mod precision;
mod preprocessing;
mod schema;
mod shape;
mod text;

/// Triton's `ModelConfig` message and the messages it holds, generated from
/// `proto/model_config.proto` (package `inference`).
#[allow(clippy::all)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/inference.rs"));
}

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Serialize, Serializer};

use crate::tensor::{DataType, TensorSpec};

/// The platform of an ensemble model.
pub const ENSEMBLE_PLATFORM: &str = "ensemble";

pub use ensemble::{EnsemblePlan, EnsembleScheduling, EnsembleStep};
pub use error::{ConfigError, Position};
pub use precision::{Precision, BF16_PARAMETER, PRECISION_PARAMETER};
pub use shape::ShapeMap;

/// A model's configuration: Triton's `ModelConfig` message, restricted to what ferroserve
/// serves. Field names are Triton's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelConfig {
    /// The model name; must equal the name of the model's folder in the repository.
    pub name: String,
    /// `onnxruntime_onnx`, `ensemble`, or empty.
    pub platform: String,
    /// `onnxruntime`, `openvino`, `tract` (ferroserve's own), or empty.
    pub backend: String,
    /// Which versions to serve; `None` serves the latest one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_policy: Option<VersionPolicy>,
    /// Largest batch the model accepts; 0 disables batching. `None` when the file does
    /// not say, which lets [`ModelConfig::autocomplete`] choose (and serialises as 0).
    #[serde(serialize_with = "serialize_max_batch_size")]
    pub max_batch_size: Option<u32>,
    /// The model inputs, in the order declared.
    pub input: Vec<ModelInput>,
    /// The model outputs served, in the order declared.
    pub output: Vec<ModelOutput>,
    /// Present when requests are batched dynamically.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dynamic_batching: Option<DynamicBatching>,
    /// Execution instances of the model.
    pub instance_group: Vec<InstanceGroup>,
    /// File name of the model inside each version folder; empty means `model.onnx`
    /// (`model.xml` for the `openvino` backend).
    pub default_model_filename: String,
    /// Whether `optimization.execution_accelerators.cpu_execution_accelerator` names
    /// `openvino`: Triton's ONNX Runtime backend then runs the model through ONNX
    /// Runtime's OpenVINO execution provider, ferroserve on its OpenVINO engine.
    #[serde(skip)]
    pub openvino_accelerator: bool,
    /// Free-form parameters; ferroserve reads its image preprocessing from `preprocess.*`
    /// and the precision from `INFERENCE_PRECISION_HINT` or `HINT_BF16`
    /// ([`ModelConfig::precision`]).
    pub parameters: BTreeMap<String, ModelParameter>,
    /// Present when the model's responses may be cached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_cache: Option<ResponseCache>,
    /// The steps of an ensemble (`platform: "ensemble"`); `None` for any other model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ensemble_scheduling: Option<EnsembleScheduling>,
    /// The file this configuration was read from; `None` when built from the model alone.
    #[serde(skip)]
    pub source: Option<PathBuf>,
    /// Fields that were present but not used, each naming the field path.
    #[serde(skip)]
    pub warnings: Vec<String>,
    /// The complete message of the file; the empty message when built from the model
    /// alone. See [`ModelConfig::to_proto`].
    #[serde(skip)]
    message: Box<proto::ModelConfig>,
}

fn serialize_max_batch_size<S: Serializer>(value: &Option<u32>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u32(value.unwrap_or(0))
}

fn serialize_data_type<S: Serializer>(value: &DataType, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(value.config_name())
}

/// Declares a protobuf enum of the model configuration: its values, their names in the
/// configuration, and serialisation as those names.
macro_rules! config_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in the order of the protobuf enum.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The name used in the model configuration.
            pub fn config_name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// Parses a name used in the model configuration.
            pub fn from_config_name(name: &str) -> Option<$name> {
                $name::ALL.iter().copied().find(|v| v.config_name() == name)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.config_name())
            }
        }
    };
}

config_enum! {
    /// How an input tensor holds an image (Triton's `ModelInput.Format`).
    #[derive(Default)]
    InputFormat {
        /// No particular format (the default).
        #[default]
        None = "FORMAT_NONE",
        /// `[H, W, C]` per image.
        Nhwc = "FORMAT_NHWC",
        /// `[C, H, W]` per image.
        Nchw = "FORMAT_NCHW",
    }
}

config_enum! {
    /// Where a group of instances runs (Triton's `ModelInstanceGroup.Kind`).
    #[derive(Default)]
    InstanceKind {
        /// On the listed GPUs if all are available, else on the CPU (the default).
        #[default]
        Auto = "KIND_AUTO",
        /// On GPUs.
        Gpu = "KIND_GPU",
        /// On the CPU.
        Cpu = "KIND_CPU",
        /// Where the model or backend itself decides.
        Model = "KIND_MODEL",
    }
}

config_enum! {
    /// What happens to a request that times out in the queue
    /// (Triton's `ModelQueuePolicy.TimeoutAction`).
    #[derive(Default)]
    TimeoutAction {
        /// Fail the request (the default).
        #[default]
        Reject = "REJECT",
        /// Run it after every request that has not timed out.
        Delay = "DELAY",
    }
}

/// One model input (Triton's `ModelInput`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelInput {
    pub name: String,
    #[serde(serialize_with = "serialize_data_type")]
    pub data_type: DataType,
    pub format: InputFormat,
    /// Shape without the batch dimension when `max_batch_size > 0`; `-1` is any size.
    pub dims: Vec<i64>,
    /// The shape the model takes instead of `dims` (batch dimension excluded), when the
    /// two differ (Triton's `reshape`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reshape: Option<Reshape>,
    /// Whether requests may leave this input out.
    pub optional: bool,
}

impl ModelInput {
    /// The dims the model itself takes: the `reshape` when there is one, else `dims`.
    pub fn model_dims(&self) -> &[i64] {
        self.reshape.as_ref().map_or(&self.dims, |r| &r.shape)
    }
}

/// A tensor's shape in the model when it differs from the configured `dims` (Triton's
/// `ModelTensorReshape`); batch dimension excluded, `-1` is any size, empty for a tensor
/// whose only dimension is the batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reshape {
    pub shape: Vec<i64>,
}

/// One model output (Triton's `ModelOutput`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelOutput {
    pub name: String,
    #[serde(serialize_with = "serialize_data_type")]
    pub data_type: DataType,
    /// Shape without the batch dimension when `max_batch_size > 0`; `-1` is any size.
    pub dims: Vec<i64>,
    /// The shape the model gives instead of `dims` (batch dimension excluded), when the
    /// two differ (Triton's `reshape`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reshape: Option<Reshape>,
    /// Class labels for a classification output, relative to the model folder; empty if none.
    pub label_filename: String,
}

impl ModelOutput {
    /// The dims the model itself gives: the `reshape` when there is one, else `dims`.
    pub fn model_dims(&self) -> &[i64] {
        self.reshape.as_ref().map_or(&self.dims, |r| &r.shape)
    }
}

/// Dynamic batching settings (Triton's `ModelDynamicBatching`).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct DynamicBatching {
    /// Batch sizes to run as soon as they can be formed; each at most `max_batch_size`.
    pub preferred_batch_size: Vec<u32>,
    /// Longest a request waits for others to join its batch.
    pub max_queue_delay_microseconds: u64,
    /// Queue limits; `None` means the defaults (unbounded queue, no timeout).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_queue_policy: Option<QueuePolicy>,
}

/// Queue limits for requests waiting to be batched (Triton's `ModelQueuePolicy`).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct QueuePolicy {
    pub timeout_action: TimeoutAction,
    /// Timeout of each request in the queue; 0 means none.
    pub default_timeout_microseconds: u64,
    /// Whether a request may ask for a shorter timeout than the default.
    pub allow_timeout_override: bool,
    /// Requests beyond this many in the queue are rejected; 0 means no limit.
    pub max_queue_size: u32,
}

/// A group of execution instances (Triton's `ModelInstanceGroup`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceGroup {
    /// Optional group name.
    pub name: String,
    pub kind: InstanceKind,
    /// Instances on the CPU, or per listed GPU; at least 1 (1 when not given).
    pub count: u32,
    /// GPU indices for `KIND_GPU`/`KIND_AUTO`; empty means every GPU.
    pub gpus: Vec<u32>,
}

/// Which of a model's versions to serve (Triton's `ModelVersionPolicy`). The default is
/// the single latest version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionPolicy {
    /// The `num_versions` highest-numbered versions.
    Latest { num_versions: u32 },
    /// Every version present.
    All {},
    /// Exactly these versions; each must be present.
    Specific { versions: Vec<u64> },
}

impl Default for VersionPolicy {
    fn default() -> Self {
        VersionPolicy::Latest { num_versions: 1 }
    }
}

impl VersionPolicy {
    /// The versions to serve out of those `available`, ascending. For `Specific`, versions
    /// that are not available are left out; the caller decides whether that is an error.
    pub fn select(&self, available: &[u64]) -> Vec<u64> {
        let mut available = available.to_vec();
        available.sort_unstable();
        available.dedup();
        match self {
            VersionPolicy::Latest { num_versions } => {
                let keep = (*num_versions as usize).min(available.len());
                available.split_off(available.len() - keep)
            }
            VersionPolicy::All {} => available,
            VersionPolicy::Specific { versions } => available
                .into_iter()
                .filter(|v| versions.contains(v))
                .collect(),
        }
    }
}

/// The value of one entry of `parameters` (Triton's `ModelParameter`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelParameter {
    pub string_value: String,
}

/// Response cache settings (Triton's `ModelResponseCache`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ResponseCache {
    pub enable: bool,
}

impl ModelConfig {
    /// Triton's default `max_batch_size` for a model that can batch but whose
    /// configuration does not say how much (`--backend-config=default-max-batch-size`).
    pub const DEFAULT_MAX_BATCH_SIZE: u32 = 4;

    /// The model file name used when `default_model_filename` is empty.
    pub const DEFAULT_MODEL_FILENAME: &'static str = "model.onnx";

    /// The model file name of the `openvino` backend when `default_model_filename` is
    /// empty, as in Triton's OpenVINO backend: OpenVINO IR, with its weights in
    /// `model.bin` beside it.
    pub const OPENVINO_MODEL_FILENAME: &'static str = "model.xml";

    /// An empty configuration for the model `name`, to be filled by
    /// [`ModelConfig::autocomplete`] when the model has no `config.pbtxt`.
    pub fn new(name: impl Into<String>) -> Self {
        ModelConfig {
            name: name.into(),
            platform: String::new(),
            backend: String::new(),
            version_policy: None,
            max_batch_size: None,
            input: Vec::new(),
            output: Vec::new(),
            dynamic_batching: None,
            instance_group: Vec::new(),
            default_model_filename: String::new(),
            openvino_accelerator: false,
            parameters: BTreeMap::new(),
            response_cache: None,
            ensemble_scheduling: None,
            source: None,
            warnings: Vec::new(),
            message: Box::default(),
        }
    }

    /// Parses and validates the text of a `config.pbtxt`; `file` is where it came from,
    /// for error messages and [`ModelConfig::source`].
    pub fn parse(text: &str, file: &Path) -> Result<Self, ConfigError> {
        let message = text::parse(text, file)?;
        let mut config = decode::model_config(&message, file)?;
        config.message = Box::new(schema::to_proto(&message));
        Ok(config)
    }

    /// Parses and validates a configuration given as JSON, the way Triton's model
    /// repository extension sends one with a load request (the `ModelConfig` message in
    /// protobuf's JSON mapping: field names as in the schema or in lowerCamelCase, enums by
    /// name). `origin` names it in error messages and becomes [`ModelConfig::source`].
    pub fn from_json(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        let message = json::parse(text, origin)?;
        let mut config = decode::model_config(&message, origin)?;
        config.message = Box::new(schema::to_proto(&message));
        Ok(config)
    }

    /// Reads, parses and validates a `config.pbtxt`.
    pub fn load(file: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
            file: file.to_path_buf(),
            source,
        })?;
        Self::parse(&text, file)
    }

    /// `max_batch_size`, with 0 (no batching) when it is not set.
    pub fn max_batch_size(&self) -> u32 {
        self.max_batch_size.unwrap_or(0)
    }

    /// The model file name inside each version folder.
    pub fn model_filename(&self) -> &str {
        match (self.default_model_filename.as_str(), self.backend.as_str()) {
            ("", "openvino") => Self::OPENVINO_MODEL_FILENAME,
            ("", _) => Self::DEFAULT_MODEL_FILENAME,
            (filename, _) => filename,
        }
    }

    /// Whether this is an ensemble of other models (`platform: "ensemble"`).
    pub fn is_ensemble(&self) -> bool {
        self.platform == ENSEMBLE_PLATFORM
    }

    /// The string value of parameter `key`.
    pub fn parameter(&self, key: &str) -> Option<&str> {
        self.parameters.get(key).map(|p| p.string_value.as_str())
    }

    /// The inputs as requests carry them (`dims`, which a `reshape` may change on the way
    /// to the model): full shapes, with a leading `-1` batch dimension when
    /// `max_batch_size > 0`.
    pub fn input_specs(&self) -> Vec<TensorSpec> {
        self.input
            .iter()
            .map(|i| self.spec(&i.name, i.data_type, &i.dims))
            .collect()
    }

    /// The outputs as responses carry them (`dims`): full shapes, with a leading `-1`
    /// batch dimension when `max_batch_size > 0`.
    pub fn output_specs(&self) -> Vec<TensorSpec> {
        self.output
            .iter()
            .map(|o| self.spec(&o.name, o.data_type, &o.dims))
            .collect()
    }

    fn spec(&self, name: &str, dtype: DataType, dims: &[i64]) -> TensorSpec {
        let batch = (self.max_batch_size() > 0).then_some(-1);
        TensorSpec {
            name: name.to_string(),
            dtype,
            shape: batch.into_iter().chain(dims.iter().copied()).collect(),
        }
    }

    /// How errors and warnings name this configuration: its file, or the model.
    fn origin(&self) -> String {
        match &self.source {
            Some(file) => file.display().to_string(),
            None => format!("configuration of model '{}' (no config.pbtxt)", self.name),
        }
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod triton_examples;
