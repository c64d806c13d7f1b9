//! Responses: the engine's outputs picked and shaped as the request asked, with Triton's
//! classification extension, and the ranked classes of `/classify`.

use ferroserve_core::classification::{rank, top_k};
use ferroserve_core::{wire, DataType, Labels, TensorSpec};

use crate::admission::Outputs;
use crate::error::ServeError;
use crate::infer::{ClassifiedAs, InferOutput, OutputData};
use crate::registry::ServedModel;
use crate::scheduler::JobTensor;

/// The response tensors: the requested outputs as they are, or as classification strings.
pub fn outputs(
    served: &ServedModel,
    requested: &Outputs,
    computed: Vec<JobTensor>,
) -> Vec<InferOutput> {
    shape_outputs(
        served.model.engine.outputs(),
        &served.model.labels,
        served.model.max_batch_size() > 0,
        requested,
        computed,
    )
}

/// The requested outputs of `computed` (one per entry of `specs`, which names them, in
/// the same order), as they are or as classification strings with the `labels` of the
/// same position; `batched` when the first dimension is the batch.
pub fn shape_outputs(
    specs: &[TensorSpec],
    labels: &[Option<Labels>],
    batched: bool,
    requested: &Outputs,
    mut computed: Vec<JobTensor>,
) -> Vec<InferOutput> {
    requested
        .iter()
        .map(|&(position, classification)| {
            let name = specs[position].name.clone();
            match classification {
                None => {
                    let tensor = std::mem::replace(&mut computed[position], empty());
                    InferOutput {
                        name,
                        dtype: tensor.dtype,
                        shape: tensor.shape,
                        data: OutputData::Raw(tensor.data),
                    }
                }
                Some(k) => {
                    let labels = labels.get(position).and_then(Option::as_ref);
                    classify_rows(labels, batched, name, &computed[position], k)
                }
            }
        })
        .collect()
}

fn empty() -> JobTensor {
    JobTensor {
        dtype: DataType::Fp32,
        shape: Vec::new(),
        data: bytes::Bytes::new(),
    }
}

/// Triton's classification extension: per batch row, the top `k` entries as
/// `"<value>:<index>[:<label>]"`.
fn classify_rows(
    labels: Option<&Labels>,
    batched: bool,
    name: String,
    tensor: &JobTensor,
    k: usize,
) -> InferOutput {
    let values: Vec<f32> = wire::to_f64(tensor.dtype, &tensor.data)
        .into_iter()
        .map(|v| v as f32)
        .collect();
    let rows = if batched {
        tensor.shape.first().copied().unwrap_or(1).max(1)
    } else {
        1
    };
    let per_row = values.len() / rows;
    let k = k.min(per_row);
    let mut strings = Vec::with_capacity(rows * k);
    for row in values.chunks(per_row.max(1)) {
        for class in top_k(row, k) {
            strings.push(match labels.and_then(|l| l.get(class.index)) {
                Some(label) => format!("{}:{}:{label}", class.score, class.index),
                None => format!("{}:{}", class.score, class.index),
            });
        }
    }
    let shape = if batched { vec![rows, k] } else { vec![k] };
    InferOutput {
        name,
        dtype: DataType::Bytes,
        shape,
        data: OutputData::Strings(strings),
    }
}

/// The `k` most probable classes of one image from the model's first output, with
/// their labels.
pub fn classes(
    served: &ServedModel,
    computed: &[JobTensor],
    k: usize,
) -> Result<Vec<ClassifiedAs>, ServeError> {
    let output = &computed[0];
    if output.dtype != DataType::Fp32 {
        return Err(ServeError::UnusableOutput(format!(
            "model '{}' does not output FP32 scores",
            served.model.name
        )));
    }
    let scores: Vec<f32> = wire::elements::<f32>(&output.data).collect();
    let labels = served.model.labels.first().and_then(Option::as_ref);
    Ok(rank(scores, k, served.model.softmax)
        .into_iter()
        .map(|c| ClassifiedAs {
            label: labels.and_then(|l| l.shared(c.index)),
            index: c.index,
            probability: c.score,
        })
        .collect())
}
