//! Inference requests and responses between the protocol's messages and the runtime's
//! [`ferroserve_runtime::infer`]: tensor contents decoded from `raw_input_contents` or typed
//! `contents` into little-endian bytes, outputs encoded as `raw_output_contents`.
//!
//! Everything a client controls is checked here before anything is allocated from it:
//! datatypes, shapes (negative or overflowing dimensions), element counts, byte sizes
//! and value ranges. A bad request is an [`ServeError::InvalidRequest`], never a panic.

use std::collections::HashMap;
use std::fmt::Display;
use std::time::Duration;

use bytes::Bytes;
use ferroserve_core::wire::{self, Element};
use ferroserve_core::DataType;

use super::proto::infer_parameter::ParameterChoice;
use super::proto::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};
use super::proto::model_infer_response::InferOutputTensor;
use super::proto::{InferParameter, InferTensorContents, ModelInferRequest, ModelInferResponse};
use ferroserve_runtime::infer::{
    tensor_header, InferInput, InferOutput, InferRequest, InferResponse, OutputData, Place,
    RequestedOutput,
};
use ferroserve_runtime::ServeError;

fn invalid(message: String) -> ServeError {
    ServeError::InvalidRequest(message)
}

/// Decodes a `ModelInferRequest`. Tensor data comes either all in `raw_input_contents`
/// (one entry per input, in input order) or all in each input's `contents`.
pub(super) fn infer_request(message: ModelInferRequest) -> Result<InferRequest, ServeError> {
    let version = super::version(&message.model_version)?;
    let timeout = timeout(&message.parameters)?;
    let raw = message.raw_input_contents;
    if !raw.is_empty() {
        if raw.len() != message.inputs.len() {
            return Err(invalid(format!(
                "raw_input_contents must hold one entry per input: {} inputs, {} entries",
                message.inputs.len(),
                raw.len()
            )));
        }
        if let Some(typed) = message.inputs.iter().find(|i| i.contents.is_some()) {
            return Err(invalid(format!(
                "input '{}' has contents while the request has raw_input_contents: \
                 send every input one way or the other",
                typed.name
            )));
        }
    }
    let mut raw = raw.into_iter();
    let inputs = message
        .inputs
        .into_iter()
        .map(|tensor| input(tensor, raw.next()))
        .collect::<Result<Vec<_>, _>>()?;
    let outputs = message
        .outputs
        .into_iter()
        .map(requested_output)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(InferRequest {
        model: message.model_name,
        version,
        id: message.id,
        inputs,
        outputs,
        timeout,
    })
}

/// The request parameter `timeout`: how long the request may wait in the queue, in
/// microseconds (int64); 0 or absent means no limit. Other parameters are ignored.
fn timeout(parameters: &HashMap<String, InferParameter>) -> Result<Option<Duration>, ServeError> {
    let Some(parameter) = parameters.get("timeout") else {
        return Ok(None);
    };
    let micros = match parameter.parameter_choice {
        Some(ParameterChoice::Int64Param(us)) => u64::try_from(us).ok(),
        Some(ParameterChoice::Uint64Param(us)) => Some(us),
        _ => None,
    };
    match micros {
        Some(0) => Ok(None),
        Some(us) => Ok(Some(Duration::from_micros(us))),
        None => Err(invalid(
            "parameter 'timeout' must be a non-negative int64 of microseconds".into(),
        )),
    }
}

/// An output to return; the `classification` parameter (int64) asks for the top `k`
/// classes instead of the tensor. Other parameters are ignored.
fn requested_output(output: InferRequestedOutputTensor) -> Result<RequestedOutput, ServeError> {
    let classification = match output.parameters.get("classification") {
        None => None,
        Some(parameter) => {
            let k = match parameter.parameter_choice {
                Some(ParameterChoice::Int64Param(k)) => usize::try_from(k).ok(),
                Some(ParameterChoice::Uint64Param(k)) => usize::try_from(k).ok(),
                _ => None,
            };
            Some(k.ok_or_else(|| {
                invalid(format!(
                    "output '{}': parameter 'classification' must be a non-negative int64 \
                     (the number of classes)",
                    output.name
                ))
            })?)
        }
    };
    Ok(RequestedOutput {
        name: output.name,
        classification,
    })
}

/// One input tensor, with its data from `raw` when the request has raw contents: raw
/// `BYTES` elements are split at their 4-byte little-endian length prefixes (slices of
/// the message, not copies).
fn input(tensor: InferInputTensor, raw: Option<Bytes>) -> Result<InferInput, ServeError> {
    let name = tensor.name;
    let (dtype, shape, elements) =
        tensor_header(Place::Input(&name), &tensor.datatype, &tensor.shape)?;
    match (raw, tensor.contents) {
        (Some(bytes), _) if dtype == DataType::Bytes => {
            let strings = wire::split_bytes(&bytes)
                .map_err(|e| ServeError::tensor(Place::Input(&name), e))?;
            InferInput::strings(name, shape, strings)
        }
        (Some(bytes), _) => InferInput::tensor(name, dtype, shape, bytes),
        (None, Some(contents)) => typed_data(name, dtype, shape, elements, contents),
        (None, None) => Err(invalid(format!(
            "input '{name}' has no data: give it contents, or give the request raw_input_contents"
        ))),
    }
}

/// `values` converted to `T`, little-endian; a value out of `T`'s range is an error.
fn pack<S, T>(name: &str, dtype: DataType, values: &[S]) -> Result<Bytes, ServeError>
where
    S: Copy + Display,
    T: TryFrom<S> + Element,
{
    let mut out = Vec::with_capacity(std::mem::size_of_val(values));
    for (position, &value) in values.iter().enumerate() {
        let value = T::try_from(value).map_err(|_| {
            invalid(format!(
                "input '{name}': value {value} at position {position} does not fit {dtype}"
            ))
        })?;
        value.write(&mut out);
    }
    Ok(Bytes::from(out))
}

/// Typed contents: the values of the one field that matches the datatype.
fn typed_data(
    name: String,
    dtype: DataType,
    shape: Vec<usize>,
    elements: usize,
    contents: InferTensorContents,
) -> Result<InferInput, ServeError> {
    let fields = [
        ("bool_contents", contents.bool_contents.len()),
        ("int_contents", contents.int_contents.len()),
        ("int64_contents", contents.int64_contents.len()),
        ("uint_contents", contents.uint_contents.len()),
        ("uint64_contents", contents.uint64_contents.len()),
        ("fp32_contents", contents.fp32_contents.len()),
        ("fp64_contents", contents.fp64_contents.len()),
        ("bytes_contents", contents.bytes_contents.len()),
    ];
    let fp16 = || {
        invalid(format!(
            "input '{name}' is FP16, which has no typed contents: send it in raw_input_contents"
        ))
    };
    let field = match dtype {
        DataType::Bool => "bool_contents",
        DataType::Int8 | DataType::Int16 | DataType::Int32 => "int_contents",
        DataType::Int64 => "int64_contents",
        DataType::Uint8 | DataType::Uint16 | DataType::Uint32 => "uint_contents",
        DataType::Uint64 => "uint64_contents",
        DataType::Fp32 => "fp32_contents",
        DataType::Fp64 => "fp64_contents",
        DataType::Bytes => "bytes_contents",
        DataType::Fp16 => return Err(fp16()),
    };
    if let Some((other, _)) = fields.iter().find(|&&(f, n)| f != field && n > 0) {
        return Err(invalid(format!(
            "input '{name}' is {dtype}: its values belong in contents.{field}, not contents.{other}"
        )));
    }
    let count = fields.iter().find(|(f, _)| *f == field).map_or(0, |f| f.1);
    if count != elements {
        return Err(invalid(format!(
            "input '{name}' of shape {shape:?} has {elements} elements, got {count} values in contents.{field}"
        )));
    }
    let c = contents;
    let data = match dtype {
        DataType::Bool => Bytes::from(
            c.bool_contents
                .iter()
                .map(|&b| u8::from(b))
                .collect::<Vec<u8>>(),
        ),
        DataType::Int8 => pack::<i32, i8>(&name, dtype, &c.int_contents)?,
        DataType::Int16 => pack::<i32, i16>(&name, dtype, &c.int_contents)?,
        DataType::Int32 => pack::<i32, i32>(&name, dtype, &c.int_contents)?,
        DataType::Int64 => pack::<i64, i64>(&name, dtype, &c.int64_contents)?,
        DataType::Uint8 => pack::<u32, u8>(&name, dtype, &c.uint_contents)?,
        DataType::Uint16 => pack::<u32, u16>(&name, dtype, &c.uint_contents)?,
        DataType::Uint32 => pack::<u32, u32>(&name, dtype, &c.uint_contents)?,
        DataType::Uint64 => pack::<u64, u64>(&name, dtype, &c.uint64_contents)?,
        DataType::Fp32 => pack::<f32, f32>(&name, dtype, &c.fp32_contents)?,
        DataType::Fp64 => pack::<f64, f64>(&name, dtype, &c.fp64_contents)?,
        DataType::Bytes => return InferInput::strings(name, shape, c.bytes_contents),
        DataType::Fp16 => return Err(fp16()),
    };
    InferInput::tensor(name, dtype, shape, data)
}

/// Encodes a response: every output's elements in `raw_output_contents`, `BYTES`
/// elements (classification strings) each prefixed with its 4-byte little-endian length.
pub(super) fn infer_response(response: InferResponse) -> Result<ModelInferResponse, ServeError> {
    let mut outputs = Vec::with_capacity(response.outputs.len());
    let mut raw = Vec::with_capacity(response.outputs.len());
    for InferOutput {
        name,
        dtype,
        shape,
        data,
    } in response.outputs
    {
        raw.push(match data {
            OutputData::Raw(bytes) => bytes,
            OutputData::Strings(strings) => wire::encode_bytes(&strings)
                .map_err(|e| ServeError::tensor(Place::Output(&name), e))?,
        });
        outputs.push(InferOutputTensor {
            name,
            datatype: dtype.name().into(),
            shape: shape.iter().map(|&d| d as i64).collect(),
            parameters: HashMap::new(),
            contents: None,
        });
    }
    Ok(ModelInferResponse {
        model_name: response.model,
        model_version: response.version.to_string(),
        id: response.id,
        parameters: HashMap::new(),
        outputs,
        raw_output_contents: raw,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferroserve_runtime::infer::InputData;

    fn typed(datatype: &str, shape: &[i64], contents: InferTensorContents) -> ModelInferRequest {
        ModelInferRequest {
            model_name: "m".into(),
            inputs: vec![InferInputTensor {
                name: "x".into(),
                datatype: datatype.into(),
                shape: shape.to_vec(),
                contents: Some(contents),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn raw_bytes(request: ModelInferRequest) -> Result<Bytes, ServeError> {
        let mut request = infer_request(request)?;
        match request.inputs.remove(0).data().clone() {
            InputData::Raw(bytes) => Ok(bytes),
            _ => panic!("expected fixed-size elements"),
        }
    }

    fn refused(request: ModelInferRequest) -> String {
        match infer_request(request) {
            Err(e @ (ServeError::InvalidRequest(_) | ServeError::InvalidTensor { .. })) => {
                e.to_string()
            }
            other => panic!("expected an invalid request, got {other:?}"),
        }
    }

    #[test]
    fn typed_contents_become_little_endian_elements_of_the_datatype() {
        let ints = |v: Vec<i32>| InferTensorContents {
            int_contents: v,
            ..Default::default()
        };
        let uints = |v: Vec<u32>| InferTensorContents {
            uint_contents: v,
            ..Default::default()
        };
        let cases: Vec<(&str, InferTensorContents, Vec<u8>)> = vec![
            (
                "BOOL",
                InferTensorContents {
                    bool_contents: vec![true, false],
                    ..Default::default()
                },
                vec![1, 0],
            ),
            ("INT8", ints(vec![-1, 127]), vec![0xff, 0x7f]),
            ("INT16", ints(vec![-2, 256]), vec![0xfe, 0xff, 0x00, 0x01]),
            (
                "INT32",
                ints(vec![-1, 1]),
                [(-1i32).to_le_bytes(), 1i32.to_le_bytes()].concat(),
            ),
            ("UINT8", uints(vec![0, 255]), vec![0, 255]),
            ("UINT16", uints(vec![1, 65535]), vec![1, 0, 0xff, 0xff]),
            (
                "UINT32",
                uints(vec![7, u32::MAX]),
                [7u32.to_le_bytes(), u32::MAX.to_le_bytes()].concat(),
            ),
            (
                "INT64",
                InferTensorContents {
                    int64_contents: vec![i64::MIN, 3],
                    ..Default::default()
                },
                [i64::MIN.to_le_bytes(), 3i64.to_le_bytes()].concat(),
            ),
            (
                "UINT64",
                InferTensorContents {
                    uint64_contents: vec![u64::MAX, 3],
                    ..Default::default()
                },
                [u64::MAX.to_le_bytes(), 3u64.to_le_bytes()].concat(),
            ),
            (
                "FP32",
                InferTensorContents {
                    fp32_contents: vec![1.5, -0.25],
                    ..Default::default()
                },
                [1.5f32.to_le_bytes(), (-0.25f32).to_le_bytes()].concat(),
            ),
            (
                "FP64",
                InferTensorContents {
                    fp64_contents: vec![1.5, -0.25],
                    ..Default::default()
                },
                [1.5f64.to_le_bytes(), (-0.25f64).to_le_bytes()].concat(),
            ),
        ];
        for (datatype, contents, expected) in cases {
            let bytes = raw_bytes(typed(datatype, &[2], contents)).unwrap();
            assert_eq!(&bytes[..], &expected[..], "{datatype}");
        }
    }

    #[test]
    fn typed_values_out_of_range_are_refused() {
        let ints = |v: Vec<i32>| InferTensorContents {
            int_contents: v,
            ..Default::default()
        };
        let uints = |v: Vec<u32>| InferTensorContents {
            uint_contents: v,
            ..Default::default()
        };
        for (datatype, contents) in [
            ("INT8", ints(vec![0, 128])),
            ("INT8", ints(vec![-129, 0])),
            ("INT16", ints(vec![40_000, 0])),
            ("UINT8", uints(vec![256, 0])),
            ("UINT16", uints(vec![0, 65_536])),
        ] {
            let message = refused(typed(datatype, &[2], contents));
            assert!(message.contains("does not fit"), "{datatype}: {message}");
        }
    }

    #[test]
    fn bytes_elements_split_at_their_length_prefixes() {
        let mut request = typed("BYTES", &[3], InferTensorContents::default());
        request.inputs[0].contents = None;
        request.raw_input_contents = vec![Bytes::from_static(b"\x02\0\0\0ab\0\0\0\0\x01\0\0\0c")];
        let decoded = infer_request(request.clone()).unwrap();
        let InputData::Strings(strings) = decoded.inputs[0].data() else {
            panic!("expected BYTES elements");
        };
        assert_eq!(strings, &["ab", "", "c"]);

        request.inputs[0].shape = vec![2];
        assert!(refused(request.clone()).contains("needs 2 elements, got 3"));
        request.raw_input_contents = vec![Bytes::from_static(b"\x02\0\0")];
        assert!(refused(request).contains("too few for its 4-byte length"));
    }

    #[test]
    fn typed_bytes_contents_are_kept_as_elements() {
        let request = typed(
            "BYTES",
            &[1, 2],
            InferTensorContents {
                bytes_contents: vec![Bytes::from_static(b"jpeg"), Bytes::new()],
                ..Default::default()
            },
        );
        let decoded = infer_request(request).unwrap();
        let InputData::Strings(strings) = decoded.inputs[0].data() else {
            panic!("expected BYTES elements");
        };
        assert_eq!(strings.len(), 2);
    }

    #[test]
    fn classification_strings_are_length_prefixed() {
        let response = infer_response(InferResponse {
            model: "m".into(),
            version: 3,
            id: "r".into(),
            rows: 1,
            outputs: vec![InferOutput {
                name: "y".into(),
                dtype: DataType::Bytes,
                shape: vec![1, 2],
                data: OutputData::Strings(vec!["0.5:1:a".into(), "".into()]),
            }],
            timings: Default::default(),
        })
        .unwrap();
        assert_eq!(response.model_version, "3");
        assert_eq!(response.outputs[0].datatype, "BYTES");
        assert_eq!(response.outputs[0].shape, [1, 2]);
        assert_eq!(
            &response.raw_output_contents[0][..],
            b"\x07\0\0\x000.5:1:a\0\0\0\0"
        );
    }
}
