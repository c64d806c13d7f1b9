//! From a model repository entry to a model ready to run: the engine chosen, the model
//! loaded, and its configuration completed from the model's own inputs and outputs.

use std::sync::Arc;

use ferroserve_core::config::{InstanceKind, ShapeMap};
use ferroserve_core::{
    ConfigError, DataType, ImagePreprocessing, Labels, ModelConfig, ModelDescription, ModelVersion,
};

use crate::{Engine, EngineError, EngineKind, EngineOptions};

/// One version of a model, loaded into its engine, with everything resolved once.
pub struct LoadedModel {
    pub name: String,
    pub version: u64,
    /// The configuration, completed and checked against the model.
    pub config: ModelConfig,
    pub engine: Arc<dyn Engine>,
    /// How images are turned into the image input, when the model declares it.
    pub preprocessing: Option<ImagePreprocessing>,
    /// Labels of each output that has them, by the output's position in
    /// [`Engine::outputs`].
    pub labels: Vec<Option<Labels>>,
    /// Index of the input that takes preprocessed images, in [`Engine::inputs`] order.
    pub image_input: Option<usize>,
    /// How a preprocessed image's shape (the image input's `dims`) becomes the model's,
    /// when the image input has a `reshape`.
    pub image_reshape: Option<ShapeMap>,
    /// The `BYTES` input (declared in the configuration, absent from the model, with
    /// `preprocess.*` parameters) through which clients send encoded images, one per
    /// batch row, preprocessed on the server into the image input. When there is one, the
    /// image input itself is internal: it is left out of `config.input`, so clients
    /// neither see nor send it. A `BYTES` input the model has is a string tensor, passed
    /// to the engine as it comes.
    pub encoded_image_input: Option<String>,
    /// Whether a classifier's scores need a softmax to become probabilities
    /// (parameter `postprocess.softmax`: `true`/`false`; when absent, decided per
    /// response by looking at the scores).
    pub softmax: Option<bool>,
}

/// Why a model version could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ModelLoadError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Invalid(String),
}

/// The engine that runs a model: `chosen` (on the command line) when given, else what
/// the configuration says: `backend: "openvino"` or `"tract"`; ONNX Runtime's `openvino`
/// CPU execution accelerator (Triton users write it to have ONNX Runtime run the model
/// through OpenVINO); else ONNX Runtime.
pub fn engine_for(config: &ModelConfig, chosen: Option<EngineKind>) -> EngineKind {
    match (chosen, config.backend.as_str()) {
        (Some(kind), _) => kind,
        (None, "openvino") => EngineKind::OpenVino,
        (None, "tract") => EngineKind::Tract,
        (None, _) if config.openvino_accelerator => EngineKind::OpenVino,
        (None, _) => EngineKind::OnnxRuntime,
    }
}

impl LoadedModel {
    /// Loads `version` of the model `description` on the engine [`engine_for`] chooses,
    /// in `options.precision` when given, else the configuration's precision, else
    /// [`Precision::F32`](ferroserve_core::Precision::F32). Every failure of the engine
    /// names the model file.
    pub fn load(
        description: &ModelDescription,
        version: &ModelVersion,
        engine: Option<EngineKind>,
        options: &EngineOptions,
    ) -> Result<Self, ModelLoadError> {
        let mut config = description
            .config
            .clone()
            .unwrap_or_else(|| ModelConfig::new(&description.name));
        if config.is_ensemble() {
            return Err(ModelLoadError::Invalid(format!(
                "model '{}' is an ensemble: its steps are other models, it has no model file to load",
                description.name
            )));
        }
        if let Some(i) = config
            .instance_group
            .iter()
            .position(|group| group.kind == InstanceKind::Gpu)
        {
            return Err(ModelLoadError::Invalid(format!(
                "model '{}': instance_group[{i}] asks for KIND_GPU, and ferroserve runs models \
                 on the CPU only (no GPU execution provider is built in); use KIND_CPU, or \
                 KIND_AUTO",
                description.name
            )));
        }
        config.version_policy.get_or_insert_with(Default::default);
        let kind = engine_for(&config, engine);
        let options = EngineOptions {
            precision: Some(match options.precision {
                Some(precision) => precision,
                None => config.precision()?.unwrap_or_default(),
            }),
            ..options.clone()
        };
        let file = &version.model_file;
        let engine = crate::load(kind, file, &options).map_err(|e| match e {
            EngineError::Load { .. } => e,
            other => EngineError::Load {
                path: file.clone(),
                reason: other.to_string(),
            },
        })?;
        // A BYTES input the model does not have carries encoded images, when the
        // configuration says how to preprocess them; any other BYTES input is a string
        // tensor of the model, checked like every input.
        let (encoded, mut declared): (Vec<_>, Vec<_>) = std::mem::take(&mut config.input)
            .into_iter()
            .partition(|input| {
                input.data_type == DataType::Bytes
                    && !engine.inputs().iter().any(|spec| spec.name == input.name)
            });
        config.input.append(&mut declared);
        config.autocomplete(engine.inputs(), engine.outputs())?;
        let preprocessing = config.image_preprocessing()?;
        let encoded_image_input = match encoded.as_slice() {
            [] => None,
            [input] if preprocessing.is_some() => Some(input.name.clone()),
            [input] => {
                return Err(ModelLoadError::Invalid(format!(
                    "model '{}': BYTES input '{}' is not an input of the model; as an input of \
                     encoded images it needs preprocess.* parameters",
                    description.name, input.name
                )))
            }
            inputs => {
                let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
                return Err(ModelLoadError::Invalid(format!(
                    "model '{}' declares BYTES inputs {} that the model does not have; only one \
                     can carry encoded images",
                    description.name,
                    names.join(", ")
                )));
            }
        };
        let image_input = config.image_input().and_then(|declared| {
            engine
                .inputs()
                .iter()
                .position(|spec| spec.name == declared.name)
        });
        let image_reshape = image_input.and_then(|position| {
            let name = &engine.inputs()[position].name;
            let declared = config.input.iter().find(|i| &i.name == name)?;
            ShapeMap::new(&declared.dims, &declared.reshape.as_ref()?.shape).ok()
        });
        if let (Some(_), Some(position)) = (&encoded_image_input, image_input) {
            let internal = &engine.inputs()[position].name;
            config.input.retain(|input| &input.name != internal);
        }
        config.input.extend(encoded);
        let labels = engine
            .outputs()
            .iter()
            .map(|spec| description.labels.get(&spec.name).cloned())
            .collect();
        let softmax = match config.parameter("postprocess.softmax") {
            None => None,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(other) => {
                return Err(ModelLoadError::Invalid(format!(
                    "model '{}': parameter postprocess.softmax must be 'true' or 'false', got '{other}'",
                    description.name
                )))
            }
        };
        Ok(LoadedModel {
            name: description.name.clone(),
            version: version.version,
            config,
            engine,
            preprocessing,
            image_input,
            image_reshape,
            encoded_image_input,
            labels,
            softmax,
        })
    }

    /// Largest batch the model accepts; 0 when it does not batch.
    pub fn max_batch_size(&self) -> usize {
        self.config.max_batch_size() as usize
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn config(text: &str) -> ModelConfig {
        ModelConfig::parse(text, Path::new("config.pbtxt")).expect("parses")
    }

    #[test]
    fn the_engine_comes_from_the_command_line_the_backend_or_the_accelerator() {
        let accelerated = config(
            r#"platform: "onnxruntime_onnx"
            optimization { execution_accelerators {
                cpu_execution_accelerator: [ { name: "openvino" } ]
            } }"#,
        );
        let cases = [
            (r#"backend: "openvino""#, None, EngineKind::OpenVino),
            (r#"backend: "tract""#, None, EngineKind::Tract),
            (r#"backend: "onnxruntime""#, None, EngineKind::OnnxRuntime),
            (
                r#"platform: "onnxruntime_onnx""#,
                None,
                EngineKind::OnnxRuntime,
            ),
            ("", None, EngineKind::OnnxRuntime),
            (
                r#"platform: "onnxruntime_onnx""#,
                Some(EngineKind::OpenVino),
                EngineKind::OpenVino,
            ),
            (
                r#"backend: "openvino""#,
                Some(EngineKind::OnnxRuntime),
                EngineKind::OnnxRuntime,
            ),
        ];
        for (text, chosen, expected) in cases {
            assert_eq!(
                engine_for(&config(text), chosen),
                expected,
                "{text} {chosen:?}"
            );
        }
        assert_eq!(engine_for(&accelerated, None), EngineKind::OpenVino);
        assert_eq!(
            engine_for(&accelerated, Some(EngineKind::OnnxRuntime)),
            EngineKind::OnnxRuntime,
            "the command line wins"
        );
        assert_eq!(
            engine_for(&ModelConfig::new("bare"), None),
            EngineKind::OnnxRuntime
        );
    }
}
