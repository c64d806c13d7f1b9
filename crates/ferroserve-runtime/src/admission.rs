//! Admission: a request checked against its model's [`Signature`], built once when the
//! model loads, and laid out in the engine's input order. Nothing is decoded,
//! preprocessed or queued for a request that fails here.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use ferroserve_core::config::ShapeMap;
use ferroserve_core::{wire, DataType, ModelConfig};
use ferroserve_engine::model::LoadedModel;
use smallvec::SmallVec;

use crate::error::ServeError;
use crate::infer::{InferInput, InputData, RequestedOutput};
use crate::scheduler::JobTensor;

/// What a model accepts, resolved once at load: each input a client may send, where it
/// goes in the engine, and each output it may ask for.
#[derive(Debug)]
pub struct Signature {
    model: String,
    /// Request input name → how it reaches the engine.
    inputs: HashMap<String, InputSlot>,
    /// The names clients may send, in the configuration's order, for error messages.
    input_names: String,
    /// For each engine input, the request input that fills it.
    engine_inputs: Vec<String>,
    /// Largest batch; 0 when the model does not batch.
    max_batch: usize,
    /// Served output name → engine output position.
    outputs: HashMap<String, usize>,
    /// For each engine output, how its shape becomes the served one, when the
    /// configuration reshapes it.
    output_reshapes: Vec<Option<ShapeMap>>,
    /// What a request that names no output gets, in the configuration's order.
    default_outputs: Vec<usize>,
    /// Where one encoded image goes for `/classify`: the engine input it is preprocessed
    /// into and the name clients send images under (empty when they cannot); `None`
    /// when the model declares no image preprocessing.
    image: Option<(usize, Arc<str>)>,
}

/// How one request input reaches the engine.
#[derive(Debug, Clone)]
enum InputSlot {
    /// A tensor for the engine input at `position`, of `dtype` and `dims` (without the
    /// batch dimension when the model batches; `-1` is any size), reshaped for the model
    /// when the configuration says so.
    Tensor {
        position: usize,
        dtype: DataType,
        dims: Vec<i64>,
        reshape: Option<ShapeMap>,
    },
    /// Encoded images, one per batch row, preprocessed into the engine input at
    /// `position`.
    Images { position: usize },
}

/// The outputs a request asked for: engine output position and classification count.
pub type Outputs = SmallVec<[(usize, Option<usize>); 4]>;

/// A request that passed admission, its inputs in engine order.
#[derive(Debug)]
pub struct Admitted {
    pub inputs: Vec<AdmittedInput>,
    /// Batch rows (1 for a model that does not batch).
    pub rows: usize,
    pub outputs: Outputs,
}

/// One engine input of an admitted request.
#[derive(Debug)]
pub enum AdmittedInput {
    Tensor(JobTensor),
    /// Encoded images to preprocess, with the name and shape they were sent with.
    Images {
        name: Arc<str>,
        shape: Vec<usize>,
        images: Vec<Bytes>,
    },
}

impl Signature {
    /// The signature of `model`: its configuration's inputs (the encoded-image input in
    /// place of the image input it feeds) and outputs, matched to the engine's.
    pub fn of(model: &LoadedModel) -> Self {
        let inputs: Vec<&str> = model
            .engine
            .inputs()
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        let outputs: Vec<&str> = model
            .engine
            .outputs()
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        let images = match (&model.encoded_image_input, model.image_input) {
            (Some(name), Some(position)) => Some((name.as_str(), position)),
            _ => None,
        };
        let mut signature = Signature::build(&model.name, &model.config, &inputs, &outputs, images);
        signature.image = model
            .image_input
            .filter(|_| model.preprocessing.is_some())
            .map(|position| {
                let name = model.encoded_image_input.as_deref().unwrap_or_default();
                (position, Arc::from(name))
            });
        signature
    }

    /// The signature of the ensemble `name`: its configuration's inputs and outputs, in
    /// the configuration's order (the positions [`Admitted`] uses).
    pub fn of_ensemble(name: &str, config: &ModelConfig) -> Self {
        let inputs: Vec<&str> = config.input.iter().map(|i| i.name.as_str()).collect();
        let outputs: Vec<&str> = config.output.iter().map(|o| o.name.as_str()).collect();
        Signature::build(name, config, &inputs, &outputs, None)
    }

    /// The signature of `config` over a model taking `engine_inputs` and giving
    /// `engine_outputs` (names, in the engine's order); `images` is the encoded-image
    /// input and the engine input it is preprocessed into.
    fn build(
        model: &str,
        config: &ModelConfig,
        engine_inputs: &[&str],
        engine_outputs: &[&str],
        images: Option<(&str, usize)>,
    ) -> Self {
        let engine_position = |name: &str| engine_inputs.iter().position(|&s| s == name);
        let mut inputs = HashMap::new();
        let mut filled_by = vec![String::new(); engine_inputs.len()];
        for input in &config.input {
            let slot = match images {
                Some((encoded, position)) if encoded == input.name => {
                    Some(InputSlot::Images { position })
                }
                _ => engine_position(&input.name).map(|position| InputSlot::Tensor {
                    position,
                    dtype: input.data_type,
                    dims: input.dims.clone(),
                    reshape: input
                        .reshape
                        .as_ref()
                        .and_then(|r| ShapeMap::new(&input.dims, &r.shape).ok()),
                }),
            };
            if let Some(slot) = slot {
                let (InputSlot::Tensor { position, .. } | InputSlot::Images { position }) = slot;
                filled_by[position] = input.name.clone();
                inputs.insert(input.name.clone(), slot);
            }
        }
        let engine_output = |name: &str| engine_outputs.iter().position(|&s| s == name);
        let outputs: HashMap<String, usize> = config
            .output
            .iter()
            .filter_map(|o| engine_output(&o.name).map(|p| (o.name.clone(), p)))
            .collect();
        let default_outputs = config
            .output
            .iter()
            .filter_map(|o| outputs.get(&o.name).copied())
            .collect();
        let output_reshapes = engine_outputs
            .iter()
            .map(|&name| {
                let output = config.output.iter().find(|o| o.name == name)?;
                ShapeMap::new(&output.dims, &output.reshape.as_ref()?.shape).ok()
            })
            .collect();
        Signature {
            image: None,
            model: model.to_string(),
            inputs,
            input_names: config
                .input
                .iter()
                .map(|i| i.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            engine_inputs: filled_by,
            max_batch: config.max_batch_size() as usize,
            outputs,
            output_reshapes,
            default_outputs,
        }
    }

    /// The shape a response carries for engine output `position` of `shape`: the
    /// engine's own, or its reshape back to the configuration's dims (the batch dimension
    /// first kept as it is when the model batches).
    pub fn served_output_shape(
        &self,
        position: usize,
        shape: Vec<usize>,
    ) -> Result<Vec<usize>, ServeError> {
        let Some(Some(map)) = self.output_reshapes.get(position) else {
            return Ok(shape);
        };
        let batched = self.max_batch > 0;
        let (batch, dims) = match shape.split_first() {
            Some((&rows, dims)) if batched => (Some(rows), dims),
            _ => (None, &shape[..]),
        };
        let served = map.to_dims(dims).filter(|_| !batched || batch.is_some());
        let Some(served) = served else {
            return Err(ServeError::UnusableOutput(format!(
                "model '{}' gave an output of shape {shape:?}, which does not fit its reshape {:?}",
                self.model, map.model
            )));
        };
        Ok(batch.into_iter().chain(served).collect())
    }

    /// Checks a request's inputs and requested outputs and lays the inputs out in
    /// engine order. The inputs' byte sizes were checked when they were built
    /// ([`InferInput::tensor`]); this checks them against the model.
    pub fn admit(
        &self,
        inputs: &[InferInput],
        requested: &[RequestedOutput],
    ) -> Result<Admitted, ServeError> {
        let outputs = self.outputs(requested)?;
        let mut slots: Vec<Option<AdmittedInput>> = Vec::new();
        slots.resize_with(self.engine_inputs.len(), || None);
        let mut rows = None;
        for input in inputs {
            let slot = self.inputs.get(input.name()).ok_or_else(|| {
                invalid(format!(
                    "unexpected inference input '{}' for model '{}' (inputs: {})",
                    input.name(),
                    self.model,
                    self.input_names
                ))
            })?;
            let (position, admitted, batch) = match slot {
                InputSlot::Tensor {
                    position,
                    dtype,
                    dims,
                    reshape,
                } => {
                    let tensor = self.tensor(input, *dtype, dims, reshape.as_ref())?;
                    let batch = (self.max_batch > 0).then(|| tensor.shape[0]);
                    (*position, AdmittedInput::Tensor(tensor), batch)
                }
                InputSlot::Images { position } => {
                    let images = self.images(input)?;
                    let batch = (self.max_batch > 0).then_some(images.len());
                    let admitted = AdmittedInput::Images {
                        name: Arc::from(input.name()),
                        shape: input.shape().to_vec(),
                        images,
                    };
                    (*position, admitted, batch)
                }
            };
            if slots[position].replace(admitted).is_some() {
                return Err(invalid(format!("input '{}' is given twice", input.name())));
            }
            if let Some(n) = batch {
                if n == 0 || n > self.max_batch {
                    return Err(invalid(format!(
                        "input '{}' has a batch of {n}; model '{}' takes 1 to {}",
                        input.name(),
                        self.model,
                        self.max_batch
                    )));
                }
                if rows.is_some_and(|r| r != n) {
                    return Err(invalid(
                        "all inputs must have the same batch size".to_string(),
                    ));
                }
                rows = Some(n);
            }
        }
        let inputs = slots
            .into_iter()
            .zip(&self.engine_inputs)
            .map(|(slot, name)| {
                slot.ok_or_else(|| {
                    invalid(format!(
                        "expected {} inputs but got {} inputs for model '{}': missing input '{name}'",
                        self.engine_inputs.len(),
                        inputs.len(),
                        self.model
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Admitted {
            inputs,
            rows: rows.unwrap_or(1),
            outputs,
        })
    }

    /// A tensor input checked against its declaration, in the shape the model takes.
    fn tensor(
        &self,
        input: &InferInput,
        dtype: DataType,
        dims: &[i64],
        reshape: Option<&ShapeMap>,
    ) -> Result<JobTensor, ServeError> {
        let name = input.name();
        if input.dtype() != dtype {
            return Err(invalid(format!(
                "inference input '{name}' data-type is '{}', but model '{}' expects '{dtype}': input '{name}' must be {dtype}",
                input.dtype(),
                self.model
            )));
        }
        let shape = input.shape();
        let batched = self.max_batch > 0;
        let given = if batched {
            shape.get(1..).unwrap_or(&[])
        } else {
            shape
        };
        let fits = (!batched || !shape.is_empty())
            && given.len() == dims.len()
            && given
                .iter()
                .zip(dims)
                .all(|(&got, &want)| want < 0 || got as i64 == want);
        if !fits {
            let mut expected = if batched { vec![-1] } else { Vec::new() };
            expected.extend_from_slice(dims);
            return Err(invalid(format!(
                "unexpected shape for input '{name}' for model '{}'. Expected {expected:?}, got {shape:?}",
                self.model
            )));
        }
        let data = match input.data() {
            InputData::Raw(data) => {
                if dtype == DataType::Bool && data.iter().any(|&b| b > 1) {
                    return Err(invalid(format!(
                        "input '{name}': BOOL values must be 0 or 1"
                    )));
                }
                data.clone()
            }
            InputData::Encoded(data) => data.clone(),
            InputData::Strings(strings) => wire::encode_bytes(strings)
                .map_err(|e| ServeError::tensor(crate::infer::Place::Input(name), e))?,
        };
        let shape = match reshape {
            None => shape.to_vec(),
            Some(map) => {
                let model_dims = map
                    .to_model(given)
                    .expect("a shape that fits the dims fits their reshape");
                let batch = batched.then(|| shape[0]);
                batch.into_iter().chain(model_dims).collect()
            }
        };
        Ok(JobTensor { dtype, shape, data })
    }

    /// The encoded images of an image input: one per batch row, shape `[n]` (or
    /// `[n, 1]` when the model batches).
    fn images(&self, input: &InferInput) -> Result<Vec<Bytes>, ServeError> {
        let name = input.name();
        let images = match input.data() {
            InputData::Strings(images) => images.clone(),
            InputData::Encoded(data) => wire::split_bytes(data)
                .map_err(|e| ServeError::tensor(crate::infer::Place::Input(name), e))?,
            InputData::Raw(_) => {
                return Err(invalid(format!(
                    "input '{name}' must be BYTES (encoded images)"
                )))
            }
        };
        let batched = self.max_batch > 0;
        let shape_ok = match input.shape() {
            [n] => *n == images.len(),
            [n, 1] => batched && *n == images.len(),
            _ => false,
        };
        if !shape_ok || images.is_empty() || (!batched && images.len() != 1) {
            return Err(invalid(format!(
                "input '{name}' must hold one encoded image per batch row, shape [n] or [n, 1]; got shape {:?} with {} images",
                input.shape(),
                images.len()
            )));
        }
        Ok(images)
    }

    /// The requested outputs as (engine position, classification); every served output
    /// when none is named.
    fn outputs(&self, requested: &[RequestedOutput]) -> Result<Outputs, ServeError> {
        if requested.is_empty() {
            return Ok(self.default_outputs.iter().map(|&p| (p, None)).collect());
        }
        let mut outputs = Outputs::new();
        for (i, output) in requested.iter().enumerate() {
            if requested[..i].iter().any(|o| o.name == output.name) {
                return Err(invalid(format!(
                    "output '{}' already exists in request",
                    output.name
                )));
            }
            let position = *self.outputs.get(&output.name).ok_or_else(|| {
                invalid(format!(
                    "unexpected inference output '{}' for model '{}'",
                    output.name, self.model
                ))
            })?;
            if output.classification == Some(0) {
                return Err(invalid(format!(
                    "output '{}': classification must ask for at least 1 class",
                    output.name
                )));
            }
            outputs.push((position, output.classification));
        }
        Ok(outputs)
    }

    /// `/classify`'s request: one encoded image for the model's image input, every
    /// output. Admitted like an inference request sending the image as the model's
    /// `BYTES` input of shape `[1]`.
    pub fn admit_image(&self, image: Bytes) -> Result<Admitted, ServeError> {
        let Some((position, name)) = &self.image else {
            return Err(ServeError::Unsupported(format!(
                "model '{}' declares no image preprocessing (parameters preprocess.*)",
                self.model
            )));
        };
        if self.engine_inputs.len() != 1 {
            return Err(ServeError::Unsupported(format!(
                "model '{}' takes more than the image",
                self.model
            )));
        }
        debug_assert_eq!(*position, 0);
        Ok(Admitted {
            inputs: vec![AdmittedInput::Images {
                name: name.clone(),
                shape: vec![1],
                images: vec![image],
            }],
            rows: 1,
            outputs: self.default_outputs.iter().map(|&p| (p, None)).collect(),
        })
    }
}

fn invalid(message: String) -> ServeError {
    ServeError::InvalidRequest(message)
}
