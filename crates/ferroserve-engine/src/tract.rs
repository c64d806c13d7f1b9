//! tract, the pure-Rust engine: the optimised plan is shared by every worker, and each
//! [`Runner`] owns only its execution state.

use std::path::Path;
use std::sync::Arc;

use ferroserve_core::{DataType, Tensor, TensorRef, TensorSpec};
use tract_onnx::prelude::{
    tvec, DatumType, Framework, InferenceModelExt, IntoRunnable, TValue, TypedFact,
    TypedRunnableModel, TypedSimpleState,
};

use crate::onnxruntime::reshape;
use crate::{check_inputs, Engine, EngineError, EngineKind, EngineOptions, Runner};

/// A model optimised by tract.
pub struct TractEngine {
    plan: Arc<TypedRunnableModel>,
    inputs: Vec<TensorSpec>,
    outputs: Vec<TensorSpec>,
}

impl TractEngine {
    /// Loads and optimises the model. tract runs each inference on the calling thread;
    /// `intra_op_threads` is not used.
    pub fn load(path: &Path, _options: &EngineOptions) -> Result<Self, EngineError> {
        let error = |e: tract_onnx::prelude::TractError| EngineError::Load {
            path: path.to_path_buf(),
            reason: format!("{e:#}"),
        };
        let model = tract_onnx::onnx()
            .model_for_path(path)
            .map_err(error)?
            .into_optimized()
            .map_err(error)?;
        let describe = |name: &str, fact: &TypedFact| -> Result<TensorSpec, EngineError> {
            Ok(TensorSpec {
                name: name.to_string(),
                dtype: data_type(fact.datum_type).ok_or_else(|| EngineError::Load {
                    path: path.to_path_buf(),
                    reason: format!(
                        "'{name}' has unsupported element type {:?}",
                        fact.datum_type
                    ),
                })?,
                shape: fact
                    .shape
                    .iter()
                    .map(|d| d.to_i64().unwrap_or(-1))
                    .collect(),
            })
        };
        let inputs = model
            .inputs
            .iter()
            .map(|&outlet| {
                describe(
                    &model.node(outlet.node).name,
                    model.outlet_fact(outlet).map_err(error)?,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let outputs = model
            .outputs
            .iter()
            .enumerate()
            .map(|(i, &outlet)| {
                let name = model
                    .outlet_label(outlet)
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("{}.{i}", model.node(outlet.node).name));
                describe(&name, model.outlet_fact(outlet).map_err(error)?)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let plan = model.into_runnable().map_err(error)?;
        Ok(TractEngine {
            plan,
            inputs,
            outputs,
        })
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

    fn inputs(&self) -> &[TensorSpec] {
        &self.inputs
    }

    fn outputs(&self) -> &[TensorSpec] {
        &self.outputs
    }

    fn runner(&self) -> Result<Box<dyn Runner>, EngineError> {
        let state =
            TypedSimpleState::new(&self.plan).map_err(|e| EngineError::Run(format!("{e:#}")))?;
        Ok(Box::new(TractRunner {
            state,
            inputs: self.inputs.clone(),
        }))
    }
}

struct TractRunner {
    state: TypedSimpleState,
    inputs: Vec<TensorSpec>,
}

impl Runner for TractRunner {
    fn run(&mut self, inputs: &[TensorRef<'_>], outputs: &mut [Tensor]) -> Result<(), EngineError> {
        check_inputs(&self.inputs, inputs)?;
        let run_error = |e: tract_onnx::prelude::TractError| EngineError::Run(format!("{e:#}"));
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
        let results = self.state.run(values).map_err(run_error)?;
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
            let shape: Vec<i64> = value.shape().iter().map(|&d| d as i64).collect();
            reshape(out, dtype, &shape)?;
            out.data.as_bytes_mut().copy_from_slice(value.as_bytes());
        }
        Ok(())
    }
}
