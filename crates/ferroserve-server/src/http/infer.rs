//! The inference request and response of the KServe v2 HTTP protocol, with Triton's
//! binary tensor data and classification extensions: decoding a request body into an
//! [`InferRequest`] and encoding an [`InferResponse`] as a response body.
//!
//! With the binary tensor data extension the body is a JSON header of
//! `Inference-Header-Content-Length` bytes followed by the binary data of every input
//! that declares `"parameters": {"binary_data_size": K}`, K bytes each, in input order.
//! Responses use the same layout when any output is returned as binary data.

use std::time::Duration;

use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use ferroserve_core::DataType;
use http::header::CONTENT_TYPE;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use ferroserve_core::wire::{self, JsonElements, WireError};
use ferroserve_runtime::infer::{
    tensor_header, InferInput, InferRequest, InferResponse, OutputData, Place, RawInput,
    RequestedOutput,
};
use ferroserve_runtime::ServeError;

/// `parameters` of a request, input or output: names to strings, numbers or booleans.
type Parameters = Map<String, Value>;

/// The JSON header of an inference request (`$inference_request`). Fields the protocol
/// does not define (a `model_name` some clients send) are ignored.
#[derive(Debug, Deserialize)]
struct RequestHeader<'a> {
    #[serde(default)]
    id: String,
    #[serde(default)]
    parameters: Parameters,
    #[serde(borrow)]
    inputs: Vec<RequestInput<'a>>,
    #[serde(default)]
    outputs: Vec<RequestOutput>,
}

/// `$request_input`. Its `data` is kept as the JSON text it is, and read once the
/// datatype and shape are known, straight into the tensor's bytes.
#[derive(Debug, Deserialize)]
struct RequestInput<'a> {
    name: String,
    shape: Vec<u64>,
    datatype: String,
    #[serde(default)]
    parameters: Parameters,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

/// `$request_output`.
#[derive(Debug, Deserialize)]
struct RequestOutput {
    name: String,
    #[serde(default)]
    parameters: Parameters,
}

/// How the client wants each output encoded: as JSON `data`, or as binary data after
/// the JSON header.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutputEncoding {
    /// The request's `binary_data_output`: the choice for outputs that make none.
    binary_by_default: bool,
    /// Outputs whose `binary_data` parameter chose for themselves.
    chosen: Vec<(String, bool)>,
}

impl OutputEncoding {
    /// Whether output `name` goes in binary form.
    pub fn is_binary(&self, name: &str) -> bool {
        self.chosen
            .iter()
            .find(|(chosen, _)| chosen == name)
            .map_or(self.binary_by_default, |&(_, binary)| binary)
    }
}

fn invalid(message: impl Into<String>) -> ServeError {
    ServeError::InvalidRequest(message.into())
}

/// Decodes an inference request for `model` (`version`). `header_length` is the
/// `Inference-Header-Content-Length` header: the body's first that many bytes are the
/// JSON header and the rest is binary tensor data; without it the body is all JSON.
/// Binary input data is sliced out of `body` without copying.
pub fn decode_request(
    model: &str,
    version: Option<u64>,
    body: Bytes,
    header_length: Option<usize>,
) -> Result<(InferRequest, OutputEncoding), ServeError> {
    let (header, binary) = match header_length {
        Some(length) if length > body.len() => {
            return Err(invalid(format!(
                "Inference-Header-Content-Length is {length} but the body has only {} bytes",
                body.len()
            )))
        }
        Some(length) => (body.slice(..length), body.slice(length..)),
        None => (body, Bytes::new()),
    };
    let header: RequestHeader = super::extract::json_object(&header, "inference request")?;
    refuse_shared_memory(&header.parameters, Place::Request)?;

    let mut binary = BinarySection {
        data: binary,
        offset: 0,
    };
    let inputs = header
        .inputs
        .into_iter()
        .map(|input| decode_input(input, &mut binary))
        .collect::<Result<Vec<_>, _>>()?;
    binary.finish()?;

    let mut encoding = OutputEncoding {
        binary_by_default: bool_parameter(
            &header.parameters,
            "binary_data_output",
            Place::Request,
        )?
        .unwrap_or(false),
        chosen: Vec::new(),
    };
    let mut outputs = Vec::with_capacity(header.outputs.len());
    for output in header.outputs {
        let place = Place::Output(&output.name);
        refuse_shared_memory(&output.parameters, place)?;
        if let Some(binary) = bool_parameter(&output.parameters, "binary_data", place)? {
            encoding.chosen.push((output.name.clone(), binary));
        }
        let classification = integer_parameter(&output.parameters, "classification", place)?
            .map(|k| usize::try_from(k).unwrap_or(usize::MAX));
        outputs.push(RequestedOutput {
            name: output.name,
            classification,
        });
    }

    let timeout = integer_parameter(&header.parameters, "timeout", Place::Request)?
        .filter(|&us| us > 0)
        .map(Duration::from_micros);
    let request = InferRequest {
        model: model.to_string(),
        version,
        id: header.id,
        inputs,
        outputs,
        timeout,
    };
    Ok((request, encoding))
}

/// Decodes a raw binary request (`Inference-Header-Content-Length: 0`): the whole body
/// is the data of the model's one input, described by `input`; every output is returned
/// as JSON.
pub fn decode_raw_request(
    model: &str,
    version: Option<u64>,
    body: Bytes,
    input: RawInput,
) -> Result<(InferRequest, OutputEncoding), ServeError> {
    let request = InferRequest {
        model: model.to_string(),
        version,
        id: String::new(),
        inputs: vec![input.input(body)?],
        outputs: Vec::new(),
        timeout: None,
    };
    Ok((request, OutputEncoding::default()))
}

/// The binary tensor data after the JSON header, handed out to inputs in order.
struct BinarySection {
    data: Bytes,
    offset: usize,
}

impl BinarySection {
    fn take(&mut self, input: &str, size: u64) -> Result<Bytes, ServeError> {
        let remaining = self.data.len() - self.offset;
        match usize::try_from(size) {
            Ok(size) if size <= remaining => {
                let chunk = self.data.slice(self.offset..self.offset + size);
                self.offset += size;
                Ok(chunk)
            }
            _ => Err(invalid(format!(
                "input '{input}' declares binary_data_size {size} but only {remaining} bytes of binary data remain \
                 after the JSON header (Inference-Header-Content-Length)"
            ))),
        }
    }

    fn finish(self) -> Result<(), ServeError> {
        let left = self.data.len() - self.offset;
        if left > 0 {
            return Err(invalid(format!(
                "{left} bytes of binary data after the JSON header belong to no input \
                 (the inputs' binary_data_size add up to {})",
                self.offset
            )));
        }
        Ok(())
    }
}

fn decode_input(
    input: RequestInput<'_>,
    binary: &mut BinarySection,
) -> Result<InferInput, ServeError> {
    let name = input.name;
    let place = Place::Input(&name);
    refuse_shared_memory(&input.parameters, place)?;
    let (dtype, shape, _) = tensor_header(place, &input.datatype, &input.shape)?;
    let binary_size = integer_parameter(&input.parameters, "binary_data_size", place)?;
    let wrong = |error: WireError| ServeError::tensor(Place::Input(&name), error);
    match (binary_size, input.data) {
        (Some(_), Some(_)) => Err(invalid(format!(
            "{place}: both \"data\" and binary_data_size are given; give one"
        ))),
        (None, None) => Err(invalid(format!(
            "{place}: no data: give \"data\" or parameter binary_data_size"
        ))),
        (Some(size), None) => {
            let data = binary.take(&name, size)?;
            if dtype == DataType::Bytes {
                let strings = wire::split_bytes(&data).map_err(wrong)?;
                InferInput::strings(name, shape, strings)
            } else {
                InferInput::tensor(name, dtype, shape, data)
            }
        }
        (None, Some(data)) => {
            if dtype == DataType::Bytes {
                let strings = wire::json_to_strings(&shape, data.get()).map_err(wrong)?;
                InferInput::strings(name, shape, strings)
            } else {
                let data = wire::json_to_le(dtype, &shape, data.get()).map_err(wrong)?;
                InferInput::tensor(name, dtype, shape, Bytes::from(data))
            }
        }
    }
}

/// Shared memory (Triton's shared-memory extension) is not served: a request that asks
/// for it would otherwise be answered with data from the wrong place.
fn refuse_shared_memory(parameters: &Parameters, place: Place<'_>) -> Result<(), ServeError> {
    if parameters.keys().any(|k| k.starts_with("shared_memory_")) {
        return Err(ServeError::Unsupported(format!(
            "{place} uses shared memory, which ferroserve does not support; send the data in the body"
        )));
    }
    Ok(())
}

fn bool_parameter(
    parameters: &Parameters,
    key: &str,
    place: Place<'_>,
) -> Result<Option<bool>, ServeError> {
    match parameters.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(invalid(format!(
            "{place}: parameter {key} must be true or false, got {other}"
        ))),
    }
}

fn integer_parameter(
    parameters: &Parameters,
    key: &str,
    place: Place<'_>,
) -> Result<Option<u64>, ServeError> {
    match parameters.get(key) {
        None => Ok(None),
        Some(value) => value.as_u64().map(Some).ok_or_else(|| {
            invalid(format!(
                "{place}: parameter {key} must be a non-negative integer, got {value}"
            ))
        }),
    }
}

/// The JSON header of an inference response (`$inference_response`).
#[derive(Debug, Serialize)]
struct ResponseHeader<'a> {
    model_name: &'a str,
    model_version: String,
    id: &'a str,
    outputs: Vec<ResponseOutput<'a>>,
}

/// `$response_output`: JSON `data`, or `binary_data_size` with the data after the header.
#[derive(Debug, Serialize)]
struct ResponseOutput<'a> {
    name: &'a str,
    datatype: DataType,
    shape: &'a [usize],
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<BinaryDataSize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<OutputElements<'a>>,
}

#[derive(Debug, Serialize)]
struct BinaryDataSize {
    binary_data_size: usize,
}

/// The `data` of a JSON output.
#[derive(Debug)]
enum OutputElements<'a> {
    Raw(DataType, &'a [u8]),
    Strings(&'a [String]),
}

impl Serialize for OutputElements<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            OutputElements::Raw(dtype, data) => JsonElements {
                dtype: *dtype,
                data,
            }
            .serialize(serializer),
            OutputElements::Strings(strings) => strings.serialize(serializer),
        }
    }
}

/// The response body and headers: `application/json`, or, when any output is binary,
/// the JSON header followed by the binary outputs in order, as
/// `application/octet-stream` with `Inference-Header-Content-Length`.
pub fn encode_response(
    response: &InferResponse,
    encoding: &OutputEncoding,
) -> Result<Response, ServeError> {
    let mut binary_chunks: Vec<Bytes> = Vec::new();
    let mut outputs = Vec::with_capacity(response.outputs.len());
    for output in &response.outputs {
        let (parameters, data) = if encoding.is_binary(&output.name) {
            let chunk = match &output.data {
                OutputData::Raw(raw) => raw.clone(),
                OutputData::Strings(strings) => wire::encode_bytes(strings)
                    .map_err(|e| ServeError::tensor(Place::Output(&output.name), e))?,
            };
            let size = chunk.len();
            binary_chunks.push(chunk);
            (
                Some(BinaryDataSize {
                    binary_data_size: size,
                }),
                None,
            )
        } else {
            let data = match &output.data {
                OutputData::Raw(raw) => OutputElements::Raw(output.dtype, raw),
                OutputData::Strings(strings) => OutputElements::Strings(strings),
            };
            (None, Some(data))
        };
        outputs.push(ResponseOutput {
            name: &output.name,
            datatype: output.dtype,
            shape: &output.shape,
            parameters,
            data,
        });
    }
    let header = ResponseHeader {
        model_name: &response.model,
        model_version: response.version.to_string(),
        id: &response.id,
        outputs,
    };
    let json = serde_json::to_vec(&header)
        .map_err(|e| ServeError::UnusableOutput(format!("cannot encode the response: {e}")))?;
    if binary_chunks.is_empty() {
        return Ok(([(CONTENT_TYPE, "application/json")], json).into_response());
    }
    let header_length = json.len();
    let mut body = BytesMut::with_capacity(
        header_length + binary_chunks.iter().map(Bytes::len).sum::<usize>(),
    );
    body.extend_from_slice(&json);
    for chunk in &binary_chunks {
        body.extend_from_slice(chunk);
    }
    Ok((
        [
            (CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                super::INFERENCE_HEADER_CONTENT_LENGTH,
                header_length.to_string(),
            ),
        ],
        body.freeze(),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferroserve_runtime::infer::{InferOutput, InputData};

    fn decode(
        body: &[u8],
        header_length: Option<usize>,
    ) -> Result<(InferRequest, OutputEncoding), String> {
        decode_request("m", Some(1), Bytes::copy_from_slice(body), header_length)
            .map_err(|e| e.to_string())
    }

    /// A body of `header` followed by `binary`, with the header's length.
    fn with_binary(header: &str, binary: &[u8]) -> (Vec<u8>, Option<usize>) {
        let mut body = header.as_bytes().to_vec();
        body.extend_from_slice(binary);
        (body, Some(header.len()))
    }

    fn raw(input: &InferInput) -> &[u8] {
        match input.data() {
            InputData::Raw(data) => data,
            _ => panic!("expected raw data"),
        }
    }

    #[test]
    fn json_inputs_decode_to_typed_bytes() {
        let body = r#"{"id": "7", "inputs": [
            {"name": "a", "shape": [2, 2], "datatype": "UINT32", "data": [[1, 2], [3, 4]]},
            {"name": "b", "shape": [3], "datatype": "BOOL", "data": [true, false, true]},
            {"name": "c", "shape": [1], "datatype": "BYTES", "data": ["hello"]}
        ], "model_name": "ignored"}"#;
        let (request, encoding) = decode(body.as_bytes(), None).unwrap();
        assert_eq!(request.id, "7");
        assert_eq!((request.model.as_str(), request.version), ("m", Some(1)));
        assert_eq!(request.inputs[0].dtype(), DataType::Uint32);
        assert_eq!(request.inputs[0].shape(), [2, 2]);
        assert_eq!(
            raw(&request.inputs[0]),
            [1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0]
        );
        assert_eq!(raw(&request.inputs[1]), [1, 0, 1]);
        assert!(
            matches!(request.inputs[2].data(), InputData::Strings(s) if s == &[Bytes::from("hello")])
        );
        assert!(request.outputs.is_empty());
        assert!(!encoding.is_binary("anything"));
        assert_eq!(request.timeout, None);
    }

    #[test]
    fn binary_inputs_take_consecutive_chunks_without_copying() {
        let header = r#"{"inputs": [
            {"name": "a", "shape": [2], "datatype": "UINT16", "parameters": {"binary_data_size": 4}},
            {"name": "j", "shape": [1], "datatype": "INT8", "data": [-1]},
            {"name": "b", "shape": [2], "datatype": "BYTES", "parameters": {"binary_data_size": 9}}
        ]}"#;
        let binary = [1, 0, 2, 0, 1, 0, 0, 0, b'x', 0, 0, 0, 0];
        let (body, length) = with_binary(header, &binary);
        let body = Bytes::from(body);
        let (request, _) = decode_request("m", None, body.clone(), length).unwrap();
        let a = raw(&request.inputs[0]);
        assert_eq!(a, [1, 0, 2, 0]);
        assert_eq!(
            a.as_ptr(),
            body[header.len()..].as_ptr(),
            "sliced from the body"
        );
        assert_eq!(raw(&request.inputs[1]), [0xff]);
        assert!(
            matches!(request.inputs[2].data(), InputData::Strings(s) if s == &[Bytes::from("x"), Bytes::new()])
        );
    }

    #[test]
    fn binary_size_mismatches_are_refused() {
        let one = r#"{"inputs": [{"name": "a", "shape": [2], "datatype": "UINT8", "parameters": {"binary_data_size": 2}}]}"#;
        let (body, length) = with_binary(one, &[1]);
        assert!(
            decode(&body, length).unwrap_err().contains("only 1 bytes"),
            "beyond the body"
        );
        let (body, length) = with_binary(one, &[1, 2, 3]);
        assert!(
            decode(&body, length)
                .unwrap_err()
                .contains("belong to no input"),
            "leftover bytes"
        );
        let (body, _) = with_binary(one, &[1, 2]);
        assert!(decode(&body, Some(body.len() + 1))
            .unwrap_err()
            .contains("Inference-Header-Content-Length"));
        let (body, length) =
            with_binary(&one.replace("[2]", "[3]").replace(": 2}", ": 3}"), &[1, 2]);
        assert!(decode(&body, length).is_err());
        let four = one.replace(": 2}", ": 4}");
        let (body, length) = with_binary(&four, &[1, 2, 3, 4]);
        assert!(
            decode(&body, length).unwrap_err().contains("needs 2 bytes"),
            "size does not match the shape"
        );
        let (body, length) = with_binary(one, &[]);
        assert!(decode(&body, length).is_err());
        let negative = one.replace(": 2}", ": -2}");
        let (body, length) = with_binary(&negative, &[1, 2]);
        assert!(decode(&body, length)
            .unwrap_err()
            .contains("non-negative integer"));
    }

    #[test]
    fn binary_body_without_header_length_is_malformed_json() {
        let (body, _) = with_binary(r#"{"inputs": []}"#, &[1, 2, 3]);
        assert!(decode(&body, None).unwrap_err().contains("malformed"));
    }

    #[test]
    fn malformed_requests_are_refused_with_a_reason() {
        for (body, expected) in [
            ("", "malformed"),
            ("{", "malformed"),
            ("[]", "malformed"),
            (
                r#"{"inputs": [{"name": "a", "datatype": "FP32", "data": [1]}]}"#,
                "shape",
            ),
            (
                r#"{"inputs": [{"name": "a", "shape": [1], "datatype": "FP33", "data": [1]}]}"#,
                "unsupported datatype 'FP33'",
            ),
            (
                r#"{"inputs": [{"name": "a", "shape": [2], "datatype": "FP32", "data": [1]}]}"#,
                "needs 2 elements, got 1",
            ),
            (
                r#"{"inputs": [{"data": [1, 2, 3], "name": "a", "shape": [2], "datatype": "FP32"}]}"#,
                "input 'a': shape [2] needs 2 elements, got more",
            ),
            (
                r#"{"inputs": [{"name": "a", "shape": [2], "datatype": "FP32", "data": [1, null]}]}"#,
                "input 'a': data is not an array of numbers",
            ),
            (
                r#"{"inputs": [{"name": "a", "shape": [1], "datatype": "UINT8", "data": [300]}]}"#,
                "UINT8",
            ),
            (
                r#"{"inputs": [{"name": "a", "shape": [1], "datatype": "INT32", "data": [1.5]}]}"#,
                "INT32",
            ),
            (
                r#"{"inputs": [{"name": "a", "shape": [1], "datatype": "FP32"}]}"#,
                "input 'a': no data",
            ),
            (
                r#"{"inputs": [{"name": "a", "shape": [-1], "datatype": "FP32", "data": [1]}]}"#,
                "malformed",
            ),
            (
                r#"{"inputs": [{"name": "a", "shape": [4294967296, 4294967296, 4294967296], "datatype": "FP32", "data": []}]}"#,
                "too many",
            ),
            (
                r#"{"inputs": [], "parameters": {"binary_data_output": "yes"}}"#,
                "true or false",
            ),
            (
                r#"{"inputs": [], "outputs": [{"name": "o", "parameters": {"classification": -1}}]}"#,
                "non-negative",
            ),
            (
                r#"{"inputs": [{"name": "a", "shape": [1], "datatype": "FP32", "parameters": {"shared_memory_region": "r"}}]}"#,
                "shared memory",
            ),
        ] {
            let error = decode(body.as_bytes(), None).unwrap_err();
            assert!(error.contains(expected), "{body}: {error}");
        }
        // FP16 as JSON numbers, as Triton accepts them: 1.0 is 0x3C00.
        let (request, _) = decode(
            br#"{"inputs": [{"name": "a", "shape": [1], "datatype": "FP16", "data": [1]}]}"#,
            None,
        )
        .unwrap();
        assert!(matches!(
            request.inputs[0].data(),
            InputData::Raw(bytes) if bytes.as_ref() == [0x00, 0x3c]
        ));
        assert!(decode(b"{\"inputs\": [], \"id\": \"\xff\"}", None)
            .unwrap_err()
            .contains("malformed"));
    }

    #[test]
    fn output_parameters_choose_encoding_and_classification() {
        let body = r#"{"inputs": [], "parameters": {"binary_data_output": true, "timeout": 2500},
            "outputs": [{"name": "a", "parameters": {"binary_data": false, "classification": 3}}, {"name": "b"}]}"#;
        let (request, encoding) = decode(body.as_bytes(), None).unwrap();
        assert_eq!(
            request.outputs[0],
            RequestedOutput {
                name: "a".into(),
                classification: Some(3)
            }
        );
        assert_eq!(
            request.outputs[1],
            RequestedOutput {
                name: "b".into(),
                classification: None
            }
        );
        assert!(!encoding.is_binary("a"));
        assert!(encoding.is_binary("b"));
        assert_eq!(request.timeout, Some(Duration::from_micros(2500)));
    }

    fn response() -> InferResponse {
        InferResponse {
            model: "m".into(),
            version: 3,
            id: "x".into(),
            rows: 1,
            outputs: vec![
                InferOutput {
                    name: "scores".into(),
                    dtype: DataType::Fp32,
                    shape: vec![1, 2],
                    data: OutputData::Raw(Bytes::from(
                        [0.5f32, 2.0]
                            .iter()
                            .flat_map(|v| v.to_le_bytes())
                            .collect::<Vec<u8>>(),
                    )),
                },
                InferOutput {
                    name: "classes".into(),
                    dtype: DataType::Bytes,
                    shape: vec![1, 1],
                    data: OutputData::Strings(vec!["2:1:b".into()]),
                },
            ],
            timings: Default::default(),
        }
    }

    async fn body_of(response: Response) -> (http::HeaderMap, Bytes) {
        let (parts, body) = response.into_parts();
        (
            parts.headers,
            axum::body::to_bytes(body, usize::MAX).await.unwrap(),
        )
    }

    #[tokio::test]
    async fn json_responses_carry_data_inline() {
        let (headers, body) =
            body_of(encode_response(&response(), &OutputEncoding::default()).unwrap()).await;
        assert_eq!(headers[CONTENT_TYPE], "application/json");
        assert!(headers
            .get(super::super::INFERENCE_HEADER_CONTENT_LENGTH)
            .is_none());
        let json: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"model_name": "m", "model_version": "3", "id": "x", "outputs": [
                {"name": "scores", "datatype": "FP32", "shape": [1, 2], "data": [0.5, 2.0]},
                {"name": "classes", "datatype": "BYTES", "shape": [1, 1], "data": ["2:1:b"]}
            ]})
        );
    }

    #[tokio::test]
    async fn binary_responses_put_data_after_the_header() {
        let encoding = OutputEncoding {
            binary_by_default: true,
            chosen: Vec::new(),
        };
        let (headers, body) = body_of(encode_response(&response(), &encoding).unwrap()).await;
        assert_eq!(headers[CONTENT_TYPE], "application/octet-stream");
        let length: usize = headers[super::super::INFERENCE_HEADER_CONTENT_LENGTH]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let json: Value = serde_json::from_slice(&body[..length]).unwrap();
        assert_eq!(json["outputs"][0]["parameters"]["binary_data_size"], 8);
        assert_eq!(json["outputs"][1]["parameters"]["binary_data_size"], 9);
        assert!(json["outputs"][0].get("data").is_none());
        let binary = &body[length..];
        assert_eq!(
            &binary[..8],
            [0.5f32, 2.0]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect::<Vec<u8>>()
        );
        assert_eq!(&binary[8..], b"\x05\0\0\x002:1:b");
    }
}
