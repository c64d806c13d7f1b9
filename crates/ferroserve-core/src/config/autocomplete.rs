//! Completing a configuration from the model's own inputs and outputs, as Triton's ONNX
//! Runtime backend does when `config.pbtxt` is partial or absent.

use super::{ConfigError, DynamicBatching, InputFormat, ModelConfig, ModelInput, ModelOutput};
use crate::tensor::{DataType, TensorSpec};

impl ModelConfig {
    /// Fills in what the configuration left out from the model's own `inputs` and
    /// `outputs` (full shapes, `-1` for dynamic dimensions, batch dimension included), and
    /// checks that what it declares fits the model. For a model without `config.pbtxt`,
    /// call it on [`ModelConfig::new`].
    ///
    /// The rules:
    ///
    /// - The model *can batch* when every input and output has a first dimension of `-1`
    ///   and at least one more, or is declared with a `reshape` (a tensor whose only
    ///   dimension is the batch is declared as `dims: [1]` with `reshape: { shape: [] }`).
    /// - `max_batch_size` not given: if the model can batch and no declared input or output
    ///   spells out the batch dimension (declares as many dims as the model's shape has),
    ///   it becomes [`DEFAULT_MAX_BATCH_SIZE`](Self::DEFAULT_MAX_BATCH_SIZE) and, unless
    ///   configured, `dynamic_batching` is enabled with default settings (Triton's
    ///   behaviour); otherwise it becomes 0. `max_batch_size > 0` for a model that cannot
    ///   batch is an error.
    /// - No inputs declared: every model input is added, `data_type` and `dims` from the
    ///   model (batch dimension dropped when `max_batch_size > 0`). The same for outputs.
    /// - Inputs declared: each must exist in the model with the same `data_type` and dims
    ///   that fit the model's shape (`[-1] + dims` when `max_batch_size > 0`, the
    ///   `reshape` in place of `dims` when there is one; a declared size may narrow a
    ///   dynamic model dimension but not change a fixed one), and every
    ///   model input must be declared. Declared outputs are checked the same way; model
    ///   outputs left undeclared are simply not served.
    ///
    /// On error the configuration is left as it was.
    pub fn autocomplete(
        &mut self,
        inputs: &[TensorSpec],
        outputs: &[TensorSpec],
    ) -> Result<(), ConfigError> {
        let mut completed = self.clone();
        completed.complete(inputs, outputs)?;
        *self = completed;
        Ok(())
    }

    fn complete(
        &mut self,
        inputs: &[TensorSpec],
        outputs: &[TensorSpec],
    ) -> Result<(), ConfigError> {
        let reshaped = |name: &str| {
            let input = self.input.iter().find(|i| i.name == name);
            let output = self.output.iter().find(|o| o.name == name);
            input.is_some_and(|i| i.reshape.is_some())
                || output.is_some_and(|o| o.reshape.is_some())
        };
        let can_batch = inputs
            .iter()
            .chain(outputs)
            .all(|t| t.shape.first() == Some(&-1) && (t.shape.len() >= 2 || reshaped(&t.name)));
        match self.max_batch_size {
            None => {
                let spells_out_batch = self.declared_model_dims().any(|(name, dims)| {
                    inputs
                        .iter()
                        .chain(outputs)
                        .any(|t| t.name == name && t.shape.len() == dims.len())
                });
                if can_batch && !spells_out_batch {
                    self.max_batch_size = Some(Self::DEFAULT_MAX_BATCH_SIZE);
                    self.dynamic_batching
                        .get_or_insert_with(DynamicBatching::default);
                } else {
                    self.max_batch_size = Some(0);
                }
            }
            Some(n) if n > 0 && !can_batch => {
                let unbatched = inputs
                    .iter()
                    .chain(outputs)
                    .find(|t| {
                        t.shape.first() != Some(&-1) || (t.shape.len() < 2 && !reshaped(&t.name))
                    })
                    .map(|t| format!(" ('{}' has shape {:?})", t.name, t.shape))
                    .unwrap_or_default();
                return Err(self.invalid(
                    "max_batch_size",
                    format!(
                        "{n} requires a model that can batch: every input and output needs \
                         a first dimension of -1 and at least one more{unbatched}"
                    ),
                ));
            }
            Some(_) => {}
        }
        let batch = self.max_batch_size() > 0;

        if self.input.is_empty() {
            for (i, spec) in inputs.iter().enumerate() {
                let dims = self.completed_dims(spec, batch, &format!("input[{i}].dims"))?;
                self.input.push(ModelInput {
                    name: spec.name.clone(),
                    data_type: spec.dtype,
                    format: InputFormat::None,
                    dims,
                    reshape: None,
                    optional: false,
                });
            }
        } else {
            for (i, input) in self.input.iter().enumerate() {
                self.check_declared(
                    "input",
                    i,
                    &input.name,
                    input.data_type,
                    input.model_dims(),
                    inputs,
                )?;
            }
            if let Some(missing) = inputs
                .iter()
                .find(|spec| !self.input.iter().any(|i| i.name == spec.name))
            {
                return Err(self.invalid(
                    "input",
                    format!("model input '{}' is not declared", missing.name),
                ));
            }
        }

        if self.output.is_empty() {
            for (i, spec) in outputs.iter().enumerate() {
                let dims = self.completed_dims(spec, batch, &format!("output[{i}].dims"))?;
                self.output.push(ModelOutput {
                    name: spec.name.clone(),
                    data_type: spec.dtype,
                    dims,
                    reshape: None,
                    label_filename: String::new(),
                });
            }
        } else {
            for (i, output) in self.output.iter().enumerate() {
                self.check_declared(
                    "output",
                    i,
                    &output.name,
                    output.data_type,
                    output.model_dims(),
                    outputs,
                )?;
            }
        }
        self.validate()
    }

    /// Names and model dims (the `reshape` when there is one) of every declared input
    /// and output.
    fn declared_model_dims(&self) -> impl Iterator<Item = (&str, &[i64])> {
        let inputs = self.input.iter().map(|i| (i.name.as_str(), i.model_dims()));
        let outputs = self
            .output
            .iter()
            .map(|o| (o.name.as_str(), o.model_dims()));
        inputs.chain(outputs)
    }

    /// The configuration dims for a model tensor.
    fn completed_dims(
        &self,
        spec: &TensorSpec,
        batch: bool,
        field: &str,
    ) -> Result<Vec<i64>, ConfigError> {
        let dims = spec.shape.get(usize::from(batch)..).unwrap_or_default();
        if dims.is_empty() || dims.iter().any(|&d| d == 0 || d < -1) {
            return Err(self.invalid(
                field,
                format!(
                    "model tensor '{}' has shape {:?}, which a configuration cannot describe \
                     (dims need at least one dimension, each -1 or positive)",
                    spec.name, spec.shape
                ),
            ));
        }
        Ok(dims.to_vec())
    }

    /// Checks the declared input or output `section[index]`, whose model dims are `dims`
    /// (its `reshape` when it has one), against the model's tensors.
    fn check_declared(
        &self,
        section: &str,
        index: usize,
        name: &str,
        data_type: DataType,
        dims: &[i64],
        model: &[TensorSpec],
    ) -> Result<(), ConfigError> {
        let Some(spec) = model.iter().find(|t| t.name == name) else {
            let names: Vec<_> = model.iter().map(|t| t.name.as_str()).collect();
            return Err(self.invalid(
                &format!("{section}[{index}].name"),
                format!(
                    "the model has no {section} '{name}' (it has: {})",
                    names.join(", ")
                ),
            ));
        };
        if spec.dtype != data_type {
            return Err(self.invalid(
                &format!("{section}[{index}].data_type"),
                format!(
                    "{} declared, but model {section} '{name}' is {}",
                    data_type.config_name(),
                    spec.dtype.config_name()
                ),
            ));
        }
        let batch = (self.max_batch_size() > 0).then_some(-1);
        let full: Vec<i64> = batch.into_iter().chain(dims.iter().copied()).collect();
        let fits = full.len() == spec.shape.len()
            && full
                .iter()
                .zip(&spec.shape)
                .all(|(&declared, &model)| model == -1 || declared == model);
        if !fits {
            let reshaped = match section {
                "input" => self.input.get(index).is_some_and(|i| i.reshape.is_some()),
                _ => self.output.get(index).is_some_and(|o| o.reshape.is_some()),
            };
            let field = if reshaped { "reshape" } else { "dims" };
            return Err(self.invalid(
                &format!("{section}[{index}].{field}"),
                format!(
                    "{dims:?} (full shape {full:?} with max_batch_size {}) does not fit \
                     model {section} '{name}' of shape {:?}",
                    self.max_batch_size(),
                    spec.shape
                ),
            ));
        }
        Ok(())
    }

    pub(super) fn invalid(&self, field: &str, message: String) -> ConfigError {
        ConfigError::Invalid {
            file: self.origin(),
            field: field.to_string(),
            message,
        }
    }
}
