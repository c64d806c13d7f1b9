//! What each request carries and what its reply must hold, derived once from the model's
//! metadata: concrete input shapes (the batch dimension set to `--batch`), input data
//! from a file, an encoded image or random numbers, and the size of each output.

use anyhow::bail;
use bytes::Bytes;
use ferroserve_core::{wire, DataType};

/// Name, element type (KServe name: `FP32`, `BYTES`, ...) and shape of a tensor, as
/// model metadata gives them: `-1` marks a dimension of any size, and a leading `-1` is
/// the batch dimension.
#[derive(Debug, Clone)]
pub struct TensorMeta {
    pub name: String,
    pub datatype: String,
    pub shape: Vec<i64>,
}

/// A model's inputs and outputs, in metadata order.
#[derive(Debug, Clone)]
pub struct ModelMeta {
    pub inputs: Vec<TensorMeta>,
    pub outputs: Vec<TensorMeta>,
}

/// One input tensor of the request, ready to send.
#[derive(Debug, Clone)]
pub struct InputTensor {
    pub name: String,
    pub datatype: String,
    pub shape: Vec<i64>,
    /// The elements as little-endian bytes; for `BYTES`, each element is a 4-byte
    /// little-endian length followed by that many bytes.
    pub data: Bytes,
}

/// An output the reply must carry.
#[derive(Debug, Clone)]
pub struct ExpectedOutput {
    pub name: String,
    /// Elements in the reply, when the metadata fixes them.
    pub elements: Option<usize>,
    /// Bytes in the reply, when the metadata fixes them and the type has a fixed size.
    pub bytes: Option<usize>,
}

/// The request every worker sends, and what a correct reply holds.
#[derive(Debug, Clone)]
pub struct Payload {
    pub inputs: Vec<InputTensor>,
    pub outputs: Vec<ExpectedOutput>,
}

/// Where the data of the inputs comes from.
pub struct Sources<'a> {
    /// One row of the model's only fixed-size input (a raw tensor file, or an image
    /// preprocessed here), and what to call it in an error message.
    pub row: Option<(&'a [u8], String)>,
    /// An encoded image, the value of each row of a `BYTES` input.
    pub image: Option<&'a [u8]>,
}

/// Builds the payload of `batch` rows for `meta`: `sources.row` fills the only
/// fixed-size input, `sources.image` each `BYTES` input, random data the rest.
pub fn build(
    model: &str,
    meta: &ModelMeta,
    batch: usize,
    sources: &Sources<'_>,
) -> anyhow::Result<Payload> {
    if meta.inputs.is_empty() {
        bail!("model '{model}' has no inputs");
    }
    let fixed_inputs = meta
        .inputs
        .iter()
        .filter(|input| input.datatype != "BYTES")
        .count();
    if sources.row.is_some() && fixed_inputs != 1 {
        bail!(
            "model '{model}' has {fixed_inputs} inputs of fixed-size elements; --input fills exactly one: {}",
            describe(&meta.inputs)
        );
    }
    if sources.image.is_some() && fixed_inputs == meta.inputs.len() {
        bail!(
            "--image fills BYTES inputs, and model '{model}' has none ({}): use --protocol image, or --input FILE",
            describe(&meta.inputs)
        );
    }
    let mut random = Random::seeded();
    let mut inputs = Vec::with_capacity(meta.inputs.len());
    for input in &meta.inputs {
        let (shape, row_elements) = batch_shape(model, input, batch)?;
        let data = if input.datatype == "BYTES" {
            let Some(image) = sources.image else {
                bail!(
                    "model '{model}' input '{}' is BYTES (an encoded image per row): give --image FILE",
                    input.name
                );
            };
            let mut data = Vec::new();
            wire::write_bytes(&vec![image; batch * row_elements], &mut data)?;
            data
        } else {
            let dtype = data_type(model, input)?;
            let size = dtype.size().expect("fixed-size type");
            let row_bytes = row_elements * size;
            match &sources.row {
                Some((row, what)) => {
                    if row.len() != row_bytes {
                        bail!(
                            "{what} holds {} bytes, but one row of model '{model}' input '{}' ({} of shape {:?}) is {row_bytes} bytes",
                            row.len(),
                            input.name,
                            input.datatype,
                            &input.shape[usize::from(is_batched(input))..],
                        );
                    }
                    row.repeat(batch)
                }
                None => random.fill(dtype, batch * row_elements),
            }
        };
        inputs.push(InputTensor {
            name: input.name.clone(),
            datatype: input.datatype.clone(),
            shape,
            data: Bytes::from(data),
        });
    }
    let outputs = meta
        .outputs
        .iter()
        .map(|output| expected_output(output, batch))
        .collect();
    Ok(Payload { inputs, outputs })
}

/// Whether the tensor's first dimension is the batch dimension.
fn is_batched(tensor: &TensorMeta) -> bool {
    tensor.shape.first() == Some(&-1)
}

/// The shape of `batch` rows of `input`, and the elements of one row. A `BYTES` input's
/// other variable dimensions are 1 (one image per row).
fn batch_shape(model: &str, input: &TensorMeta, batch: usize) -> anyhow::Result<(Vec<i64>, usize)> {
    let batched = is_batched(input);
    if !batched && batch != 1 {
        bail!(
            "model '{model}' does not batch (input '{}' has shape {:?}, without a leading -1): use --batch 1",
            input.name,
            input.shape
        );
    }
    let row = &input.shape[usize::from(batched)..];
    let mut shape = Vec::with_capacity(input.shape.len());
    if batched {
        shape.push(batch as i64);
    }
    for &dim in row {
        match dim {
            -1 if input.datatype == "BYTES" => shape.push(1),
            d if d < 0 => bail!(
                "model '{model}' input '{}' has shape {:?}: a variable dimension besides the batch, whose size bench cannot choose",
                input.name,
                input.shape
            ),
            d => shape.push(d),
        }
    }
    let row_elements = shape[usize::from(batched)..]
        .iter()
        .product::<i64>()
        .try_into()
        .unwrap_or(0);
    Ok((shape, row_elements))
}

fn data_type(model: &str, tensor: &TensorMeta) -> anyhow::Result<DataType> {
    match DataType::from_name(&tensor.datatype) {
        Some(dtype) => Ok(dtype),
        None => bail!(
            "model '{model}' tensor '{}' has datatype '{}', which bench does not know",
            tensor.name,
            tensor.datatype
        ),
    }
}

/// What `batch` rows of `output` hold, as far as the metadata says.
fn expected_output(output: &TensorMeta, batch: usize) -> ExpectedOutput {
    let batched = is_batched(output);
    let row = &output.shape[usize::from(batched)..];
    let elements = row
        .iter()
        .try_fold(1usize, |n, &d| usize::try_from(d).ok().map(|d| n * d))
        .map(|n| if batched { n * batch } else { n });
    let size = DataType::from_name(&output.datatype).and_then(DataType::size);
    ExpectedOutput {
        name: output.name.clone(),
        elements,
        bytes: elements.zip(size).map(|(n, s)| n * s),
    }
}

/// `input FP32 [-1, 3, 224, 224], ...` for error messages.
fn describe(tensors: &[TensorMeta]) -> String {
    tensors
        .iter()
        .map(|t| format!("{} {} {:?}", t.name, t.datatype, t.shape))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A small xorshift generator: random input data need not be good randomness, only
/// different from zero and cheap.
pub struct Random(u64);

impl Random {
    pub fn seeded() -> Random {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9E37_79B9_7F4A_7C15, |d| d.as_nanos() as u64);
        Random(nanos | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `elements` random values of `dtype` as little-endian bytes: floats uniform in
    /// [-1, 1), integers and booleans 0 or 1 (valid as class indices and as BOOL).
    fn fill(&mut self, dtype: DataType, elements: usize) -> Vec<u8> {
        let size = dtype.size().expect("fixed-size type");
        let mut data = Vec::with_capacity(elements * size);
        for _ in 0..elements {
            let unit = self.next_f64();
            match dtype {
                DataType::Fp32 => {
                    data.extend_from_slice(&((unit * 2.0 - 1.0) as f32).to_le_bytes())
                }
                DataType::Fp64 => data.extend_from_slice(&(unit * 2.0 - 1.0).to_le_bytes()),
                // Zero is 0.0 in half precision.
                DataType::Fp16 => data.extend_from_slice(&[0, 0]),
                _ => {
                    let mut element = vec![0; size];
                    element[0] = u8::from(unit >= 0.5);
                    data.extend_from_slice(&element);
                }
            }
        }
        data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(name: &str, datatype: &str, shape: &[i64]) -> TensorMeta {
        TensorMeta {
            name: name.into(),
            datatype: datatype.into(),
            shape: shape.to_vec(),
        }
    }

    fn classifier() -> ModelMeta {
        ModelMeta {
            inputs: vec![tensor("input", "FP32", &[-1, 3, 2, 2])],
            outputs: vec![tensor("logits", "FP32", &[-1, 10])],
        }
    }

    const NO_SOURCES: Sources<'static> = Sources {
        row: None,
        image: None,
    };

    #[test]
    fn random_inputs_fill_the_batch_shape_and_outputs_scale_with_it() {
        let payload = build("m", &classifier(), 3, &NO_SOURCES).unwrap();
        assert_eq!(payload.inputs[0].shape, [3, 3, 2, 2]);
        assert_eq!(payload.inputs[0].data.len(), 3 * 12 * 4);
        assert_eq!(payload.outputs[0].elements, Some(30));
        assert_eq!(payload.outputs[0].bytes, Some(120));
    }

    #[test]
    fn a_row_is_repeated_and_its_size_checked() {
        let row: Vec<u8> = (0..48).collect();
        let sources = Sources {
            row: Some((&row, "input file x".into())),
            image: None,
        };
        let payload = build("m", &classifier(), 2, &sources).unwrap();
        assert_eq!(&payload.inputs[0].data[..48], &row[..]);
        assert_eq!(&payload.inputs[0].data[48..], &row[..]);

        let short = Sources {
            row: Some((&row[..40], "input file x".into())),
            image: None,
        };
        let error = build("m", &classifier(), 1, &short)
            .unwrap_err()
            .to_string();
        assert!(error.contains("input file x holds 40 bytes"), "{error}");
        assert!(error.contains("48 bytes"), "{error}");
    }

    #[test]
    fn bytes_inputs_take_the_image_once_per_row() {
        let meta = ModelMeta {
            inputs: vec![tensor("image", "BYTES", &[-1, 1])],
            outputs: vec![tensor("logits", "FP32", &[-1, 10])],
        };
        let error = build("m", &meta, 1, &NO_SOURCES).unwrap_err().to_string();
        assert!(error.contains("--image"), "{error}");
        let sources = Sources {
            row: None,
            image: Some(b"jpeg"),
        };
        let payload = build("m", &meta, 2, &sources).unwrap();
        assert_eq!(payload.inputs[0].shape, [2, 1]);
        assert_eq!(&payload.inputs[0].data[..], b"\x04\0\0\0jpeg\x04\0\0\0jpeg");
    }

    #[test]
    fn unbatched_models_and_variable_dimensions_are_refused() {
        let fixed = ModelMeta {
            inputs: vec![tensor("x", "FP32", &[1, 4])],
            outputs: vec![],
        };
        assert!(build("m", &fixed, 1, &NO_SOURCES).is_ok());
        let error = build("m", &fixed, 2, &NO_SOURCES).unwrap_err().to_string();
        assert!(error.contains("--batch 1"), "{error}");
        let variable = ModelMeta {
            inputs: vec![tensor("x", "FP32", &[-1, -1])],
            outputs: vec![],
        };
        assert!(build("m", &variable, 1, &NO_SOURCES).is_err());
    }
}
