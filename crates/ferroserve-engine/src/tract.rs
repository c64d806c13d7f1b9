//! tract, the pure-Rust engine. tract optimises a model far better when every dimension
//! is known, so the engine keeps the parsed model and builds one optimised plan per batch
//! size it meets (shared by every worker); each [`Runner`] owns only execution states.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use ferroserve_core::{DataType, Precision, Tensor, TensorRef, TensorSpec};
use tract_onnx::prelude::{
    tvec, DatumType, Framework, InferenceFact, InferenceModel, InferenceModelExt, IntoRunnable,
    TValue, TractError, TypedFact, TypedRunnableModel, TypedSimpleState,
};

use crate::onnxruntime::reshape;
use crate::{check_inputs, Engine, EngineError, EngineKind, EngineOptions, Runner};

/// A model loaded by tract.
pub struct TractEngine {
    shared: Arc<Plans>,
    precision: Precision,
    inputs: Vec<TensorSpec>,
    outputs: Vec<TensorSpec>,
}

/// The parsed model and its optimised plans, by batch size (0 for a model without a
/// dynamic batch dimension).
struct Plans {
    model: InferenceModel,
    inputs: Vec<TensorSpec>,
    plans: Mutex<HashMap<usize, Arc<TypedRunnableModel>>>,
}

impl Plans {
    /// The plan for `batch` rows, optimised on first use.
    fn plan(&self, batch: usize) -> Result<Arc<TypedRunnableModel>, TractError> {
        if let Some(plan) = self
            .plans
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&batch)
        {
            return Ok(plan.clone());
        }
        let mut model = self.model.clone();
        for (i, spec) in self.inputs.iter().enumerate() {
            let dt = datum_type(spec.dtype).expect("specs come from tract's own types");
            let shape: Vec<usize> = spec
                .shape
                .iter()
                .enumerate()
                .map(|(axis, &d)| {
                    if axis == 0 && d < 0 {
                        batch
                    } else {
                        d.max(0) as usize
                    }
                })
                .collect();
            model.set_input_fact(i, InferenceFact::dt_shape(dt, shape))?;
        }
        let plan = model.into_optimized()?.into_runnable()?;
        self.plans
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(batch, plan.clone());
        Ok(plan)
    }
}

impl TractEngine {
    /// Loads the model and optimises it for batch size 1. tract runs each inference on
    /// the calling thread; `intra_op_threads` is not used. Only the first dimension of
    /// an input may be dynamic (the batch). The precision is f32, or int8 for a
    /// quantized model file; other precisions are refused.
    pub fn load(path: &Path, options: &EngineOptions) -> Result<Self, EngineError> {
        let error = |e: TractError| EngineError::Load {
            path: path.to_path_buf(),
            reason: format!("{e:#}"),
        };
        let model = tract_onnx::onnx().model_for_path(path).map_err(error)?;
        let requested = options.precision.unwrap_or_default();
        let precision = crate::as_stored(EngineKind::Tract, requested, path)?;
        let typed = model.clone().into_typed().map_err(error)?;
        let describe = |name: &str, fact: &TypedFact| -> Result<TensorSpec, EngineError> {
            Ok(TensorSpec {
                name: name.to_string(),
                dtype: data_type(fact.datum_type).ok_or_else(|| EngineError::Load {
                    path: path.to_path_buf(),
                    reason: if fact.datum_type == DatumType::String {
                        format!(
                            "'{name}' is a string tensor (TYPE_STRING), which the tract engine \
                             does not run: serve this model with ONNX Runtime \
                             (backend: \"onnxruntime\")"
                        )
                    } else {
                        format!(
                            "'{name}' has unsupported element type {:?}",
                            fact.datum_type
                        )
                    },
                })?,
                shape: fact
                    .shape
                    .iter()
                    .map(|d| d.to_i64().unwrap_or(-1))
                    .collect(),
            })
        };
        let inputs = typed
            .inputs
            .iter()
            .map(|&outlet| {
                describe(
                    &typed.node(outlet.node).name,
                    typed.outlet_fact(outlet).map_err(error)?,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let outputs = typed
            .outputs
            .iter()
            .enumerate()
            .map(|(i, &outlet)| {
                let name = typed
                    .outlet_label(outlet)
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("{}.{i}", typed.node(outlet.node).name));
                describe(&name, typed.outlet_fact(outlet).map_err(error)?)
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(spec) = inputs
            .iter()
            .find(|s| s.shape.iter().skip(1).any(|&d| d < 0))
        {
            return Err(EngineError::Load {
                path: path.to_path_buf(),
                reason: format!(
                    "input '{}' has shape {:?}: the tract engine takes a dynamic batch dimension only",
                    spec.name, spec.shape
                ),
            });
        }
        let shared = Arc::new(Plans {
            model,
            inputs: inputs.clone(),
            plans: Mutex::new(HashMap::new()),
        });
        shared.plan(batch_key(&inputs, 1)).map_err(error)?;
        Ok(TractEngine {
            shared,
            precision,
            inputs,
            outputs,
        })
    }
}

/// The plan key for a batch of `rows`: 0 when no input has a dynamic batch dimension.
fn batch_key(inputs: &[TensorSpec], rows: usize) -> usize {
    if inputs.iter().any(|s| s.shape.first() == Some(&-1)) {
        rows
    } else {
        0
    }
}

fn data_type(dt: DatumType) -> Option<DataType> {
    Some(match dt {
        DatumType::Bool => DataType::Bool,
        DatumType::U8 => DataType::Uint8,
        DatumType::U16 => DataType::Uint16,
        DatumType::U32 => DataType::Uint32,
        DatumType::U64 => DataType::Uint64,
        DatumType::I8 => DataType::Int8,
        DatumType::I16 => DataType::Int16,
        DatumType::I32 => DataType::Int32,
        DatumType::I64 => DataType::Int64,
        DatumType::F16 => DataType::Fp16,
        DatumType::F32 => DataType::Fp32,
        DatumType::F64 => DataType::Fp64,
        _ => return None,
    })
}

fn datum_type(dtype: DataType) -> Option<DatumType> {
    Some(match dtype {
        DataType::Bool => DatumType::Bool,
        DataType::Uint8 => DatumType::U8,
        DataType::Uint16 => DatumType::U16,
        DataType::Uint32 => DatumType::U32,
        DataType::Uint64 => DatumType::U64,
        DataType::Int8 => DatumType::I8,
        DataType::Int16 => DatumType::I16,
        DataType::Int32 => DatumType::I32,
        DataType::Int64 => DatumType::I64,
        DataType::Fp16 => DatumType::F16,
        DataType::Fp32 => DatumType::F32,
        DataType::Fp64 => DatumType::F64,
        DataType::Bytes => return None,
    })
}

impl Engine for TractEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Tract
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
        Ok(Box::new(TractRunner {
            shared: self.shared.clone(),
            states: HashMap::new(),
        }))
    }
}

/// One worker's execution states, one per batch size it has run.
struct TractRunner {
    shared: Arc<Plans>,
    states: HashMap<usize, TypedSimpleState>,
}

impl TractRunner {
    /// Runs the plan for `key` on `inputs` as they are.
    fn run_plan(
        &mut self,
        key: usize,
        inputs: &[TensorRef<'_>],
    ) -> Result<tract_onnx::prelude::TVec<TValue>, EngineError> {
        let run_error = |e: TractError| EngineError::Run(format!("{e:#}"));
        let state = match self.states.entry(key) {
            std::collections::hash_map::Entry::Occupied(state) => state.into_mut(),
            std::collections::hash_map::Entry::Vacant(slot) => {
                let plan = self.shared.plan(key).map_err(run_error)?;
                slot.insert(TypedSimpleState::new(&plan).map_err(run_error)?)
            }
        };
        let mut values = tvec![];
        for input in inputs {
            let dt = datum_type(input.dtype).ok_or_else(|| {
                EngineError::InvalidInput(format!("{} tensors cannot reach an engine", input.dtype))
            })?;
            let mut tensor =
                tract_onnx::prelude::Tensor::zero_dt(dt, input.shape).map_err(run_error)?;
            tensor.as_bytes_mut().copy_from_slice(input.data);
            values.push(TValue::from(tensor));
        }
        state.run(values).map_err(run_error)
    }
}

impl Runner for TractRunner {
    /// A batch of several rows runs row by row on the batch-1 plan: tract's batched
    /// convolutions are slower per image than its single-image ones (efficientnet-lite0:
    /// 50 ms against 20 ms per image, `cargo bench -p ferroserve-engine`).
    fn run(&mut self, inputs: &[TensorRef<'_>], outputs: &mut [Tensor]) -> Result<(), EngineError> {
        check_inputs(&self.shared.inputs, inputs)?;
        let rows = inputs
            .first()
            .and_then(|i| i.shape.first())
            .copied()
            .unwrap_or(1);
        let key = batch_key(&self.shared.inputs, rows);
        if key == 0 || rows <= 1 {
            let results = self.run_plan(key, inputs)?;
            return copy_rows(&results, outputs, 0, 1);
        }
        let mut shapes: Vec<Vec<usize>> = inputs.iter().map(|i| i.shape.to_vec()).collect();
        for shape in &mut shapes {
            shape[0] = 1;
        }
        for row in 0..rows {
            let single: Vec<TensorRef<'_>> = inputs
                .iter()
                .zip(&shapes)
                .map(|(input, shape)| {
                    let row_bytes = input.data.len() / rows;
                    TensorRef {
                        dtype: input.dtype,
                        shape,
                        data: &input.data[row * row_bytes..(row + 1) * row_bytes],
                    }
                })
                .collect();
            let results = self.run_plan(1, &single)?;
            copy_rows(&results, outputs, row, rows)?;
        }
        Ok(())
    }
}

/// Copies one run's outputs into row `row` of `outputs`, which hold `rows` rows (the
/// first row sizes them). With `rows == 1` the outputs take the results' shapes as they are.
fn copy_rows(
    results: &[TValue],
    outputs: &mut [Tensor],
    row: usize,
    rows: usize,
) -> Result<(), EngineError> {
    if results.len() != outputs.len() {
        return Err(EngineError::Run(format!(
            "model produced {} outputs, caller expects {}",
            results.len(),
            outputs.len()
        )));
    }
    for (value, out) in results.iter().zip(outputs.iter_mut()) {
        let dtype = data_type(value.datum_type()).ok_or_else(|| {
            EngineError::Run(format!("unsupported output type {:?}", value.datum_type()))
        })?;
        let bytes = value.as_bytes();
        if row == 0 {
            let mut shape: Vec<i64> = value.shape().iter().map(|&d| d as i64).collect();
            if rows > 1 {
                match shape.first_mut() {
                    Some(first) if *first == 1 => *first = rows as i64,
                    _ => {
                        return Err(EngineError::Run(format!(
                            "output of shape {shape:?} has no batch dimension"
                        )))
                    }
                }
            }
            reshape(out, dtype, &shape)?;
        }
        let slot = out
            .data
            .as_bytes_mut()
            .get_mut(row * bytes.len()..(row + 1) * bytes.len())
            .ok_or_else(|| {
                EngineError::Run("rows of a batch gave outputs of different sizes".into())
            })?;
        slot.copy_from_slice(bytes);
    }
    Ok(())
}
