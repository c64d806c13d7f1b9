//! Ensembles (`platform: "ensemble"`): models of the repository run one after another,
//! each step's inputs taken from the ensemble's inputs or from earlier steps' outputs.
//!
//! What the configuration alone decides is checked with it (`ModelConfig::validate`):
//! every tensor has one producer, every step input and ensemble output is produced, the
//! steps can be ordered (no cycle), and every ensemble input and step output is used.
//! [`ModelConfig::check_steps`] checks the rest against the step models' configurations:
//! their tensor names, datatypes, shapes and batch sizes.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::{ConfigError, ModelConfig};
use crate::tensor::DataType;

/// The steps of an ensemble (Triton's `ModelEnsembling`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnsembleScheduling {
    #[serde(rename = "step")]
    pub steps: Vec<EnsembleStep>,
}

/// One step of an ensemble (Triton's `ModelEnsembling.Step`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnsembleStep {
    /// A model of the same repository.
    pub model_name: String,
    /// The version to run; `-1` runs the latest ready one.
    pub model_version: i64,
    /// Each input of the step's model → the ensemble tensor that fills it.
    pub input_map: BTreeMap<String, String>,
    /// Each output of the step's model that is used → the ensemble tensor it becomes.
    pub output_map: BTreeMap<String, String>,
}

impl EnsembleStep {
    /// The version to run: `None` for the latest.
    pub fn version(&self) -> Option<u64> {
        u64::try_from(self.model_version).ok()
    }
}

/// How an ensemble runs, worked out once from its configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnsemblePlan {
    /// Step indices in an order where every step comes after the steps producing its
    /// inputs.
    pub order: Vec<usize>,
}

/// Where an ensemble tensor comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Producer {
    /// The ensemble input at this index.
    Input(usize),
    /// An output of the step at this index.
    Step { step: usize },
}

impl ModelConfig {
    /// The ensemble's steps, when this is an ensemble.
    pub fn steps(&self) -> &[EnsembleStep] {
        self.ensemble_scheduling
            .as_ref()
            .map_or(&[], |scheduling| &scheduling.steps)
    }

    /// The checks of an ensemble that need no other model; nothing for other models.
    pub(super) fn validate_ensemble(&self) -> Result<(), ConfigError> {
        if !self.is_ensemble() {
            if self.ensemble_scheduling.is_some() {
                return Err(self.invalid(
                    "ensemble_scheduling",
                    "is only for ensembles (platform: \"ensemble\")".into(),
                ));
            }
            return Ok(());
        }
        let missing = |field: &str| ConfigError::Missing {
            file: self.origin(),
            field: field.to_string(),
        };
        if self.steps().is_empty() {
            return Err(missing("ensemble_scheduling.step"));
        }
        if self.input.is_empty() {
            return Err(missing("input"));
        }
        if self.output.is_empty() {
            return Err(missing("output"));
        }
        if !self.backend.is_empty() {
            return Err(self.invalid(
                "backend",
                format!(
                    "'{}' given for an ensemble, which runs no backend of its own",
                    self.backend
                ),
            ));
        }
        for (i, step) in self.steps().iter().enumerate() {
            if step.input_map.is_empty() {
                return Err(missing(&format!("ensemble_scheduling.step[{i}].input_map")));
            }
            if step.output_map.is_empty() {
                return Err(missing(&format!(
                    "ensemble_scheduling.step[{i}].output_map"
                )));
            }
        }
        let producers = self.producers()?;
        for (i, step) in self.steps().iter().enumerate() {
            for (model_input, tensor) in &step.input_map {
                if !producers.contains_key(tensor.as_str()) {
                    return Err(self.invalid(
                        &format!("ensemble_scheduling.step[{i}].input_map.{model_input}"),
                        format!(
                            "tensor '{tensor}' is neither an ensemble input nor an output of any step"
                        ),
                    ));
                }
            }
        }
        for (i, output) in self.output.iter().enumerate() {
            if !matches!(
                producers.get(output.name.as_str()),
                Some(Producer::Step { .. })
            ) {
                return Err(self.invalid(
                    &format!("output[{i}]"),
                    format!(
                        "ensemble output '{}' is not the output of any step",
                        output.name
                    ),
                ));
            }
        }
        self.ensemble_plan()?;
        let consumed = |tensor: &str| {
            self.steps()
                .iter()
                .any(|step| step.input_map.values().any(|t| t == tensor))
        };
        for (i, input) in self.input.iter().enumerate() {
            if !consumed(&input.name) {
                return Err(self.invalid(
                    &format!("input[{i}]"),
                    format!(
                        "ensemble input '{}' is not the input of any step",
                        input.name
                    ),
                ));
            }
        }
        for (i, step) in self.steps().iter().enumerate() {
            for (model_output, tensor) in &step.output_map {
                let output = self.output.iter().any(|o| o.name == *tensor);
                if !output && !consumed(tensor) {
                    return Err(self.invalid(
                        &format!("ensemble_scheduling.step[{i}].output_map.{model_output}"),
                        format!(
                            "tensor '{tensor}' is not used: neither an ensemble output nor the \
                             input of any step"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Every ensemble tensor and where it comes from; a tensor produced twice (by two
    /// steps, or by a step and the request) is an error.
    fn producers(&self) -> Result<HashMap<&str, Producer>, ConfigError> {
        let mut producers: HashMap<&str, Producer> = self
            .input
            .iter()
            .enumerate()
            .map(|(i, input)| (input.name.as_str(), Producer::Input(i)))
            .collect();
        for (i, step) in self.steps().iter().enumerate() {
            for (model_output, tensor) in &step.output_map {
                if let Some(earlier) = producers.insert(tensor, Producer::Step { step: i }) {
                    let by = match earlier {
                        Producer::Input(_) => "it is an ensemble input".to_string(),
                        Producer::Step { step } => format!("step {step} produces it too"),
                    };
                    return Err(self.invalid(
                        &format!("ensemble_scheduling.step[{i}].output_map.{model_output}"),
                        format!("tensor '{tensor}' has more than one producer: {by}"),
                    ));
                }
            }
        }
        Ok(producers)
    }

    /// The order the steps run in: each after the steps whose outputs it takes. Steps
    /// that wait on each other are a cycle, and an error. `None` for a model that is not
    /// an ensemble.
    pub fn ensemble_plan(&self) -> Result<Option<EnsemblePlan>, ConfigError> {
        if !self.is_ensemble() {
            return Ok(None);
        }
        let producers = self.producers()?;
        let steps = self.steps();
        let mut done = vec![false; steps.len()];
        let mut order = Vec::with_capacity(steps.len());
        while order.len() < steps.len() {
            let ready = (0..steps.len()).find(|&i| {
                !done[i]
                    && steps[i].input_map.values().all(|tensor| {
                        match producers.get(tensor.as_str()) {
                            Some(Producer::Step { step }) => done[*step],
                            _ => true,
                        }
                    })
            });
            let Some(i) = ready else {
                let waiting: Vec<String> = (0..steps.len())
                    .filter(|&i| !done[i])
                    .map(|i| format!("{i} ({})", steps[i].model_name))
                    .collect();
                return Err(self.invalid(
                    "ensemble_scheduling.step",
                    format!(
                        "steps {} wait on each other's outputs: a cycle",
                        waiting.join(", ")
                    ),
                ));
            };
            done[i] = true;
            order.push(i);
        }
        Ok(Some(EnsemblePlan { order }))
    }

    /// Checks the steps against `models`, the configurations of the step models (one per
    /// step, in step order, completed from the models): each mapped tensor must be an
    /// input or output of its step's model, every input the model requires must be
    /// mapped, and the tensors joined by a map must agree in datatype and shape (batch
    /// dimension included). A batching ensemble needs steps that batch as much.
    pub fn check_steps(&self, models: &[&ModelConfig]) -> Result<(), ConfigError> {
        assert_eq!(models.len(), self.steps().len(), "one model per step");
        let field = |i: usize, rest: &str| format!("ensemble_scheduling.step[{i}].{rest}");
        for (i, (step, model)) in self.steps().iter().zip(models).enumerate() {
            for model_output in step.output_map.keys() {
                if !model.output.iter().any(|o| o.name == *model_output) {
                    return Err(self.invalid(
                        &field(i, &format!("output_map.{model_output}")),
                        format!(
                            "model '{}' has no output '{model_output}' (it has: {})",
                            step.model_name,
                            names(model.output.iter().map(|o| &o.name))
                        ),
                    ));
                }
            }
        }
        // Every ensemble tensor's datatype and full shape, from its producer.
        let mut tensors: HashMap<&str, (DataType, Vec<i64>)> = self
            .input
            .iter()
            .map(|i| (i.name.as_str(), (i.data_type, self.full_shape(&i.dims))))
            .collect();
        for (step, model) in self.steps().iter().zip(models) {
            for (model_output, tensor) in &step.output_map {
                if let Some(output) = model.output.iter().find(|o| o.name == *model_output) {
                    let shape = model.full_shape(&output.dims);
                    tensors.insert(tensor, (output.data_type, shape));
                }
            }
        }
        let produced = |tensor: &str| -> Result<(DataType, Vec<i64>), ConfigError> {
            tensors.get(tensor).cloned().ok_or_else(|| {
                self.invalid(
                    "ensemble_scheduling.step",
                    format!("tensor '{tensor}' has no producer"),
                )
            })
        };
        let ensemble_batch = self.max_batch_size();
        for (i, (step, model)) in self.steps().iter().zip(models).enumerate() {
            let name = &step.model_name;
            let step_batch = model.max_batch_size();
            if ensemble_batch > 0 && step_batch > 0 && step_batch < ensemble_batch {
                return Err(self.invalid(
                    &field(i, "model_name"),
                    format!(
                        "model '{name}' takes batches of up to {step_batch}, fewer than the \
                         ensemble's max_batch_size {ensemble_batch}"
                    ),
                ));
            }
            for (model_input, tensor) in &step.input_map {
                let place = field(i, &format!("input_map.{model_input}"));
                let Some(input) = model.input.iter().find(|i| i.name == *model_input) else {
                    return Err(self.invalid(
                        &place,
                        format!(
                            "model '{name}' has no input '{model_input}' (it has: {})",
                            names(model.input.iter().map(|i| &i.name))
                        ),
                    ));
                };
                let (dtype, shape) = produced(tensor)?;
                let consumer = format!("input '{model_input}' of model '{name}'");
                let expected = model.full_shape(&input.dims);
                self.agree(
                    &place,
                    tensor,
                    (dtype, &shape),
                    &consumer,
                    (input.data_type, &expected),
                )?;
            }
            if let Some(unmapped) = model
                .input
                .iter()
                .find(|i| !i.optional && !step.input_map.contains_key(&i.name))
            {
                return Err(self.invalid(
                    &field(i, "input_map"),
                    format!(
                        "input '{}' of model '{name}' is not mapped to any ensemble tensor",
                        unmapped.name
                    ),
                ));
            }
        }
        for (i, output) in self.output.iter().enumerate() {
            let (dtype, shape) = produced(&output.name)?;
            let consumer = format!("ensemble output '{}'", output.name);
            let expected = self.full_shape(&output.dims);
            self.agree(
                &format!("output[{i}]"),
                &output.name,
                (dtype, &shape),
                &consumer,
                (output.data_type, &expected),
            )?;
        }
        Ok(())
    }

    /// `dims` with the batch dimension (`-1`) first when the model batches.
    fn full_shape(&self, dims: &[i64]) -> Vec<i64> {
        let batch = (self.max_batch_size() > 0).then_some(-1);
        batch.into_iter().chain(dims.iter().copied()).collect()
    }

    /// Checks that `tensor`, as produced, fits what `consumer` takes.
    fn agree(
        &self,
        field: &str,
        tensor: &str,
        (dtype, shape): (DataType, &[i64]),
        consumer: &str,
        (want_dtype, want_shape): (DataType, &[i64]),
    ) -> Result<(), ConfigError> {
        if dtype != want_dtype {
            return Err(self.invalid(
                field,
                format!(
                    "tensor '{tensor}' is {}, but {consumer} is {}",
                    dtype.config_name(),
                    want_dtype.config_name()
                ),
            ));
        }
        let fits = shape.len() == want_shape.len()
            && shape
                .iter()
                .zip(want_shape)
                .all(|(&a, &b)| a < 0 || b < 0 || a == b);
        if !fits {
            return Err(self.invalid(
                field,
                format!(
                    "tensor '{tensor}' has shape {shape:?}, but {consumer} has shape {want_shape:?} \
                     (batch dimension included as -1)"
                ),
            ));
        }
        Ok(())
    }
}

fn names<'a>(names: impl Iterator<Item = &'a String>) -> String {
    names.map(String::as_str).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn parse(text: &str) -> Result<ModelConfig, ConfigError> {
        ModelConfig::parse(text, Path::new("ensemble/config.pbtxt"))
    }

    /// Triton's example: an image preprocessing model, then a classifier.
    const PIPELINE: &str = r#"
        name: "pipeline"
        platform: "ensemble"
        max_batch_size: 4
        input [ { name: "IMAGE" data_type: TYPE_UINT8 dims: [ 224, 224, 3 ] } ]
        output [ { name: "CLASSIFICATION" data_type: TYPE_FP32 dims: [ 1000 ] } ]
        ensemble_scheduling {
          step [
            {
              model_name: "classifier"
              model_version: -1
              input_map { key: "input" value: "preprocessed" }
              output_map { key: "logits" value: "CLASSIFICATION" }
            },
            {
              model_name: "preprocess"
              model_version: 2
              input_map { key: "RAW" value: "IMAGE" }
              output_map { key: "OUT" value: "preprocessed" }
            }
          ]
        }
    "#;

    fn step_config(text: &str) -> ModelConfig {
        ModelConfig::parse(text, Path::new("step/config.pbtxt")).expect("a step config")
    }

    fn preprocess() -> ModelConfig {
        step_config(
            r#"
            max_batch_size: 8
            input { name: "RAW" data_type: TYPE_UINT8 dims: [224, 224, 3] }
            output { name: "OUT" data_type: TYPE_FP32 dims: [3, 224, 224] }
            "#,
        )
    }

    fn classifier() -> ModelConfig {
        step_config(
            r#"
            max_batch_size: 8
            input { name: "input" data_type: TYPE_FP32 dims: [3, 224, 224] }
            output { name: "logits" data_type: TYPE_FP32 dims: [1000] }
            "#,
        )
    }

    fn error_of(text: &str) -> String {
        parse(text).expect_err("refused").to_string()
    }

    #[test]
    fn steps_run_after_the_steps_they_take_tensors_from() {
        let config = parse(PIPELINE).expect("parses");
        assert!(config.is_ensemble());
        let steps = config.steps();
        assert_eq!(steps[0].model_name, "classifier");
        assert_eq!(steps[0].version(), None);
        assert_eq!(steps[1].version(), Some(2));
        assert_eq!(steps[1].input_map["RAW"], "IMAGE");
        let plan = config.ensemble_plan().unwrap().unwrap();
        assert_eq!(plan.order, vec![1, 0]);
        config
            .check_steps(&[&classifier(), &preprocess()])
            .expect("the steps fit");
        // The whole file comes back, steps included.
        let json = config.to_json();
        assert_eq!(json["platform"], "ensemble");
        assert_eq!(
            json["ensemble_scheduling"]["step"][1]["input_map"]["RAW"],
            "IMAGE"
        );
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    }

    #[test]
    fn the_tensors_of_an_ensemble_are_checked_with_its_configuration() {
        let cases = [
            // A step takes a tensor nobody produces.
            (
                PIPELINE.replace(r#"value: "preprocessed" }
              output_map { key: "logits""#, r#"value: "nowhere" }
              output_map { key: "logits""#),
                "step[0].input_map.input: tensor 'nowhere' is neither an ensemble input nor an output of any step",
            ),
            // Two producers of one tensor.
            (
                PIPELINE.replace(r#"value: "preprocessed" }
            }"#, r#"value: "CLASSIFICATION" }
            }"#),
                "has more than one producer",
            ),
            // An ensemble input no step takes.
            (
                PIPELINE.replace(
                    r#"input [ { name: "IMAGE""#,
                    r#"input [ { name: "UNUSED" data_type: TYPE_FP32 dims: [ 1 ] }, { name: "IMAGE""#,
                ),
                "input[0]: ensemble input 'UNUSED' is not the input of any step",
            ),
            // An ensemble output no step gives.
            (
                PIPELINE.replace(
                    r#"output [ { name: "CLASSIFICATION""#,
                    r#"output [ { name: "MISSING" data_type: TYPE_FP32 dims: [ 1 ] }, { name: "CLASSIFICATION""#,
                ),
                "output[0]: ensemble output 'MISSING' is not the output of any step",
            ),
            // Steps feeding each other.
            (
                PIPELINE.replace(
                    r#"key: "input" value: "preprocessed""#,
                    r#"key: "input" value: "CLASSIFICATION""#,
                ),
                "a cycle",
            ),
            // A step output nobody takes.
            (
                PIPELINE.replace(
                    r#"output_map { key: "OUT" value: "preprocessed" }"#,
                    r#"output_map { key: "OUT" value: "preprocessed" } output_map { key: "EXTRA" value: "spare" }"#,
                ),
                "step[1].output_map.EXTRA: tensor 'spare' is not used",
            ),
            (
                PIPELINE.replace(r#"platform: "ensemble""#, ""),
                "ensemble_scheduling: is only for ensembles",
            ),
            (
                PIPELINE.replace("ensemble_scheduling {", "xensemble {"),
                "no such field",
            ),
            (
                PIPELINE.replace("model_version: 2", "model_version: -2"),
                "step[1].model_version",
            ),
            (
                PIPELINE.replace(
                    r#"input_map { key: "RAW" value: "IMAGE" }"#,
                    r#"input_map { key: "RAW" value: "IMAGE" } input_map { key: "RAW" value: "IMAGE" }"#,
                ),
                "step[1].input_map.RAW: specified more than once",
            ),
        ];
        for (text, expected) in cases {
            let error = error_of(&text);
            assert!(
                error.contains(expected),
                "expected '{expected}' in: {error}"
            );
        }
        let no_steps = r#"
            platform: "ensemble"
            input [ { name: "a" data_type: TYPE_FP32 dims: [ 1 ] } ]
            output [ { name: "b" data_type: TYPE_FP32 dims: [ 1 ] } ]
        "#;
        assert!(error_of(no_steps).contains("ensemble_scheduling.step: required"));
    }

    #[test]
    fn the_steps_must_fit_their_models() {
        let config = parse(PIPELINE).expect("parses");
        let check = |classifier: &ModelConfig, preprocess: &ModelConfig| {
            config
                .check_steps(&[classifier, preprocess])
                .map_err(|e| e.to_string())
        };
        let fp16 = step_config(
            r#"
            max_batch_size: 8
            input { name: "input" data_type: TYPE_FP16 dims: [3, 224, 224] }
            output { name: "logits" data_type: TYPE_FP32 dims: [1000] }
            "#,
        );
        let error = check(&fp16, &preprocess()).unwrap_err();
        assert!(
            error.contains("step[0].input_map.input: tensor 'preprocessed' is TYPE_FP32, but input 'input' of model 'classifier' is TYPE_FP16"),
            "{error}"
        );
        let smaller = step_config(
            r#"
            max_batch_size: 8
            input { name: "input" data_type: TYPE_FP32 dims: [3, 112, 112] }
            output { name: "logits" data_type: TYPE_FP32 dims: [1000] }
            "#,
        );
        let error = check(&smaller, &preprocess()).unwrap_err();
        assert!(error.contains("has shape [-1, 3, 224, 224]"), "{error}");
        let two_inputs = step_config(
            r#"
            max_batch_size: 8
            input { name: "input" data_type: TYPE_FP32 dims: [3, 224, 224] }
            input { name: "scale" data_type: TYPE_FP32 dims: [1] }
            output { name: "logits" data_type: TYPE_FP32 dims: [1000] }
            "#,
        );
        let error = check(&two_inputs, &preprocess()).unwrap_err();
        assert!(
            error.contains("input 'scale' of model 'classifier' is not mapped"),
            "{error}"
        );
        let renamed = step_config(
            r#"
            max_batch_size: 8
            input { name: "input" data_type: TYPE_FP32 dims: [3, 224, 224] }
            output { name: "scores" data_type: TYPE_FP32 dims: [1000] }
            "#,
        );
        let error = check(&renamed, &preprocess()).unwrap_err();
        assert!(
            error.contains("step[0].output_map.logits: model 'classifier' has no output 'logits' (it has: scores)"),
            "{error}"
        );
        let small_batches = step_config(
            r#"
            max_batch_size: 2
            input { name: "input" data_type: TYPE_FP32 dims: [3, 224, 224] }
            output { name: "logits" data_type: TYPE_FP32 dims: [1000] }
            "#,
        );
        let error = check(&small_batches, &preprocess()).unwrap_err();
        assert!(error.contains("batches of up to 2"), "{error}");
        let wider = step_config(
            r#"
            max_batch_size: 8
            input { name: "input" data_type: TYPE_FP32 dims: [3, 224, 224] }
            output { name: "logits" data_type: TYPE_FP32 dims: [1001] }
            "#,
        );
        let error = check(&wider, &preprocess()).unwrap_err();
        assert!(
            error.contains("output[0]: tensor 'CLASSIFICATION' has shape [-1, 1001]"),
            "{error}"
        );
    }
}
