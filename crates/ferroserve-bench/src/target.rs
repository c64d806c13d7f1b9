//! The server side of a measurement: the model's metadata, one prepared request per
//! protocol, and connections that send it and check each reply.
//!
//! Requests are built once (bodies are shared [`Bytes`]), so sending costs the client
//! little more than the protocol itself. HTTP uses hyper's pooled client with
//! `TCP_NODELAY`; gRPC the generated tonic client. A closed-loop worker opens its own
//! [`Connection`], and so its own TCP connection, as perf_analyzer does.

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use ferroserve_core::wire::JsonElements;
use ferroserve_core::DataType;
use ferroserve_protocol::grpc_inference_service_client::GrpcInferenceServiceClient;
use ferroserve_protocol::model_infer_request::InferInputTensor;
use ferroserve_protocol::{
    ModelInferRequest, ModelInferResponse, ModelMetadataRequest, MAX_MESSAGE_BYTES,
};
use http::{HeaderValue, Method, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tonic::transport::{Channel, Endpoint};

use super::payload::{ExpectedOutput, ModelMeta, Payload, TensorMeta};
use super::tally::{Failure, FailureKind};
use super::Protocol;

/// The header of Triton's binary tensor data extension: length of the JSON header at
/// the start of the body.
const HEADER_LENGTH: &str = "inference-header-content-length";

/// Classes asked of the image endpoint.
const TOP_K: usize = 5;

type HttpClient = hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>;
type GrpcClient = GrpcInferenceServiceClient<Channel>;

/// A server and model to send one prepared request to, over one protocol.
pub struct Target {
    /// The address requests go to (the HTTP or the gRPC one).
    pub address: String,
    call: Call,
}

/// The prepared request.
enum Call {
    Http(Arc<HttpCall>),
    Grpc(Arc<GrpcCall>),
}

pub struct HttpCall {
    uri: Uri,
    /// `Inference-Header-Content-Length` of the binary extension.
    header_length: Option<HeaderValue>,
    content_type: HeaderValue,
    body: Bytes,
    reply: HttpReply,
}

/// What a successful HTTP reply holds.
enum HttpReply {
    /// A JSON header with `binary_data_size` per output, then the outputs' bytes.
    Binary(Vec<ExpectedOutput>),
    /// JSON with each output's elements in `data`.
    Json(Vec<ExpectedOutput>),
    /// `/classify`: a JSON array of classes.
    Classes,
}

pub struct GrpcCall {
    endpoint: Endpoint,
    request: ModelInferRequest,
    outputs: Vec<ExpectedOutput>,
}

impl Target {
    /// Fetches `model`'s metadata from the server, with a clear error when the server
    /// cannot be reached or has no such model; `payload` builds the request from it.
    pub async fn prepare(
        protocol: Protocol,
        http_url: &str,
        grpc_url: &str,
        model: &str,
        payload: impl FnOnce(&ModelMeta) -> anyhow::Result<Payload>,
        image: Option<Bytes>,
    ) -> anyhow::Result<Target> {
        match protocol {
            Protocol::Grpc => {
                let endpoint = grpc_endpoint(grpc_url)?;
                let meta = grpc_metadata(&endpoint, grpc_url, model).await?;
                let payload = payload(&meta)?;
                let request = ModelInferRequest {
                    model_name: model.to_string(),
                    inputs: payload
                        .inputs
                        .iter()
                        .map(|input| InferInputTensor {
                            name: input.name.clone(),
                            datatype: input.datatype.clone(),
                            shape: input.shape.clone(),
                            ..Default::default()
                        })
                        .collect(),
                    raw_input_contents: payload.inputs.iter().map(|i| i.data.clone()).collect(),
                    ..Default::default()
                };
                Ok(Target {
                    address: grpc_url.to_string(),
                    call: Call::Grpc(Arc::new(GrpcCall {
                        endpoint,
                        request,
                        outputs: payload.outputs,
                    })),
                })
            }
            Protocol::Http | Protocol::HttpJson | Protocol::Image => {
                let base = base_url(http_url)?;
                let meta = http_metadata(&base, model).await?;
                let call = match protocol {
                    Protocol::Image => {
                        let image = image.context("--protocol image needs --image FILE")?;
                        HttpCall {
                            uri: model_uri(&base, model, &format!("/classify?top_k={TOP_K}"))?,
                            header_length: None,
                            content_type: HeaderValue::from_static("application/octet-stream"),
                            body: image,
                            reply: HttpReply::Classes,
                        }
                    }
                    Protocol::Http => binary_call(&base, model, payload(&meta)?)?,
                    _ => json_call(&base, model, payload(&meta)?)?,
                };
                Ok(Target {
                    address: http_url.to_string(),
                    call: Call::Http(Arc::new(call)),
                })
            }
        }
    }

    /// A new connection (or, for HTTP, a pool of up to `pool` connections).
    pub async fn connect(&self, pool: usize) -> Result<Connection, Failure> {
        match &self.call {
            Call::Http(call) => {
                let mut connector = HttpConnector::new();
                connector.set_nodelay(true);
                connector.set_connect_timeout(Some(Duration::from_secs(10)));
                let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
                    .pool_max_idle_per_host(pool)
                    .build(connector);
                Ok(Connection::Http {
                    client,
                    call: call.clone(),
                })
            }
            Call::Grpc(call) => {
                let channel = call.endpoint.connect().await.map_err(|e| {
                    Failure::new(
                        FailureKind::Connect,
                        format!("{}: {}", self.address, chain(&e)),
                    )
                })?;
                Ok(Connection::Grpc {
                    client: grpc_client(channel),
                    call: call.clone(),
                })
            }
        }
    }
}

/// A connection to the server (or a pool of them) sending the prepared request.
/// Clones share the connection.
#[derive(Clone)]
pub enum Connection {
    Http {
        client: HttpClient,
        call: Arc<HttpCall>,
    },
    Grpc {
        client: GrpcClient,
        call: Arc<GrpcCall>,
    },
}

impl Connection {
    /// Sends the request once; `Ok` when the reply is a success holding every expected
    /// output at its expected size.
    pub async fn infer(&mut self) -> Result<(), Failure> {
        match self {
            Connection::Http { client, call } => {
                let mut request = http::Request::builder()
                    .method(Method::POST)
                    .uri(call.uri.clone())
                    .header(http::header::CONTENT_TYPE, call.content_type.clone());
                if let Some(length) = &call.header_length {
                    request = request.header(HEADER_LENGTH, length.clone());
                }
                let request = request
                    .body(Full::new(call.body.clone()))
                    .expect("a valid prepared request");
                let response = client.request(request).await.map_err(|e| {
                    let kind = if e.is_connect() {
                        FailureKind::Connect
                    } else {
                        FailureKind::Io
                    };
                    Failure::new(kind, chain(&e))
                })?;
                let (parts, body) = response.into_parts();
                let body = body
                    .collect()
                    .await
                    .map_err(|e| Failure::new(FailureKind::Io, chain(&e)))?
                    .to_bytes();
                if parts.status != StatusCode::OK {
                    return Err(Failure::new(
                        FailureKind::Http(parts.status.as_u16()),
                        error_text(&body),
                    ));
                }
                check_http_reply(&call.reply, &parts.headers, &body)
                    .map_err(|reason| Failure::new(FailureKind::BadReply, reason))
            }
            Connection::Grpc { client, call } => {
                let response =
                    client
                        .model_infer(call.request.clone())
                        .await
                        .map_err(|status| {
                            Failure::new(
                                FailureKind::Grpc(status.code()),
                                status.message().to_string(),
                            )
                        })?;
                check_grpc_reply(&call.outputs, response.get_ref())
                    .map_err(|reason| Failure::new(FailureKind::BadReply, reason))
            }
        }
    }
}

fn grpc_endpoint(url: &str) -> anyhow::Result<Endpoint> {
    let endpoint = Endpoint::from_shared(url.to_string()).with_context(|| {
        format!("--grpc-url '{url}' is not a URL such as http://127.0.0.1:8001")
    })?;
    Ok(endpoint
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(10)))
}

fn grpc_client(channel: Channel) -> GrpcClient {
    GrpcInferenceServiceClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

async fn grpc_metadata(endpoint: &Endpoint, url: &str, model: &str) -> anyhow::Result<ModelMeta> {
    let channel = endpoint.connect().await.map_err(|e| {
        anyhow::anyhow!(
            "cannot reach the gRPC server at {url}: {}; is `ferroserve serve` running there?",
            chain(&e)
        )
    })?;
    let request = ModelMetadataRequest {
        name: model.to_string(),
        version: String::new(),
    };
    let metadata = match grpc_client(channel).model_metadata(request).await {
        Ok(response) => response.into_inner(),
        Err(status) if status.code() == tonic::Code::NotFound => {
            bail!(
                "the server at {url} has no model '{model}': {}",
                status.message()
            )
        }
        Err(status) => bail!(
            "ModelMetadata of '{model}' at {url} failed: {:?}: {}",
            status.code(),
            status.message()
        ),
    };
    let tensors = |list: Vec<_>| {
        list.into_iter()
            .map(
                |t: ferroserve_protocol::model_metadata_response::TensorMetadata| TensorMeta {
                    name: t.name,
                    datatype: t.datatype,
                    shape: t.shape,
                },
            )
            .collect()
    };
    Ok(ModelMeta {
        inputs: tensors(metadata.inputs),
        outputs: tensors(metadata.outputs),
    })
}

/// `url` without a trailing slash, checked to be a plain HTTP URL.
fn base_url(url: &str) -> anyhow::Result<String> {
    let uri: Uri = url
        .parse()
        .with_context(|| format!("--url '{url}' is not a URL such as http://127.0.0.1:8000"))?;
    match uri.scheme_str() {
        Some("http") if uri.host().is_some() => Ok(url.trim_end_matches('/').to_string()),
        Some("https") => bail!("--url '{url}': https is not supported; use http://"),
        _ => bail!("--url '{url}' is not a URL such as http://127.0.0.1:8000"),
    }
}

fn model_uri(base: &str, model: &str, suffix: &str) -> anyhow::Result<Uri> {
    let text = format!("{base}/v2/models/{model}{suffix}");
    text.parse()
        .with_context(|| format!("'{text}' is not a valid URL (model name '{model}')"))
}

async fn http_metadata(base: &str, model: &str) -> anyhow::Result<ModelMeta> {
    let client: hyper_util::client::legacy::Client<HttpConnector, http_body_util::Empty<Bytes>> =
        hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http();
    let uri = model_uri(base, model, "")?;
    let unreachable = |e: &dyn StdError| {
        anyhow::anyhow!(
            "cannot reach the server at {base}: {}; is `ferroserve serve` running there?",
            chain(e)
        )
    };
    let response = tokio::time::timeout(Duration::from_secs(30), client.get(uri))
        .await
        .map_err(|e| unreachable(&e))?
        .map_err(|e| unreachable(&e))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| unreachable(&e))?
        .to_bytes();
    if status == StatusCode::NOT_FOUND {
        bail!(
            "the server at {base} has no model '{model}': {}",
            error_text(&body)
        );
    }
    if status != StatusCode::OK {
        bail!(
            "GET /v2/models/{model} at {base} answered {status}: {}",
            error_text(&body)
        );
    }
    let json: Value = serde_json::from_slice(&body)
        .with_context(|| format!("the metadata of '{model}' at {base} is not JSON"))?;
    let tensors = |key: &str| -> anyhow::Result<Vec<TensorMeta>> {
        let list = json[key].as_array().map(Vec::as_slice).unwrap_or_default();
        list.iter()
            .map(|t| {
                let shape = t["shape"]
                    .as_array()
                    .map(|dims| dims.iter().map(Value::as_i64).collect::<Option<Vec<i64>>>());
                match (t["name"].as_str(), t["datatype"].as_str(), shape.flatten()) {
                    (Some(name), Some(datatype), Some(shape)) => Ok(TensorMeta {
                        name: name.to_string(),
                        datatype: datatype.to_string(),
                        shape,
                    }),
                    _ => bail!(
                        "the metadata of '{model}' at {base} has a malformed {key} entry: {t}"
                    ),
                }
            })
            .collect()
    };
    Ok(ModelMeta {
        inputs: tensors("inputs")?,
        outputs: tensors("outputs")?,
    })
}

/// The binary tensor data extension: a JSON header, then each input's bytes; every
/// output asked back as binary.
fn binary_call(base: &str, model: &str, payload: Payload) -> anyhow::Result<HttpCall> {
    let inputs: Vec<Value> = payload
        .inputs
        .iter()
        .map(|input| {
            json!({
                "name": input.name,
                "shape": input.shape,
                "datatype": input.datatype,
                "parameters": {"binary_data_size": input.data.len()},
            })
        })
        .collect();
    let outputs: Vec<Value> = payload
        .outputs
        .iter()
        .map(|output| json!({"name": output.name, "parameters": {"binary_data": true}}))
        .collect();
    let header = serde_json::to_vec(&json!({"inputs": inputs, "outputs": outputs}))?;
    let mut body = header.clone();
    for input in &payload.inputs {
        body.extend_from_slice(&input.data);
    }
    Ok(HttpCall {
        uri: model_uri(base, model, "/infer")?,
        header_length: Some(HeaderValue::from(header.len())),
        content_type: HeaderValue::from_static("application/octet-stream"),
        body: Bytes::from(body),
        reply: HttpReply::Binary(payload.outputs),
    })
}

/// Plain KServe v2 JSON: every input's elements in `data`.
fn json_call(base: &str, model: &str, payload: Payload) -> anyhow::Result<HttpCall> {
    let mut body = String::from("{\"inputs\":[");
    for (i, input) in payload.inputs.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        let head = json!({"name": input.name, "shape": input.shape, "datatype": input.datatype});
        let head = head.to_string();
        // The object without its closing brace, then its data.
        body.push_str(&head[..head.len() - 1]);
        body.push_str(",\"data\":");
        json_numbers(&input.datatype, &input.data, &mut body).with_context(|| {
            format!(
                "input '{}' cannot be sent as JSON; use --protocol http or grpc",
                input.name
            )
        })?;
        body.push('}');
    }
    let outputs: Vec<Value> = payload
        .outputs
        .iter()
        .map(|output| json!({"name": output.name}))
        .collect();
    body.push_str("],\"outputs\":");
    body.push_str(&Value::from(outputs).to_string());
    body.push('}');
    Ok(HttpCall {
        uri: model_uri(base, model, "/infer")?,
        header_length: None,
        content_type: HeaderValue::from_static("application/json"),
        body: Bytes::from(body),
        reply: HttpReply::Json(payload.outputs),
    })
}

/// Appends the little-endian elements of `data` as a JSON array (shortest text that
/// reads back to the same values).
fn json_numbers(datatype: &str, data: &[u8], out: &mut String) -> anyhow::Result<()> {
    let Some(dtype) = DataType::from_name(datatype).filter(|t| t.size().is_some()) else {
        bail!("{datatype} elements have no JSON form in bench");
    };
    out.push_str(&serde_json::to_string(&JsonElements { dtype, data })?);
    Ok(())
}

fn check_http_reply(
    reply: &HttpReply,
    headers: &http::HeaderMap,
    body: &[u8],
) -> Result<(), String> {
    match reply {
        HttpReply::Binary(expected) => {
            let length = headers
                .get(HEADER_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
                .ok_or(
                    "the reply has no Inference-Header-Content-Length: outputs were not binary",
                )?;
            let header = body
                .get(..length)
                .and_then(|h| serde_json::from_slice::<Value>(h).ok())
                .ok_or("the reply's JSON header is malformed")?;
            let mut total = 0;
            for output in expected {
                let size = find_output(&header, &output.name)?["parameters"]["binary_data_size"]
                    .as_u64()
                    .ok_or_else(|| format!("output '{}' is not binary", output.name))?
                    as usize;
                if output.bytes.is_some_and(|b| b != size) {
                    return Err(format!(
                        "output '{}' has {size} bytes, expected {}",
                        output.name,
                        output.bytes.unwrap_or_default()
                    ));
                }
                total += size;
            }
            if total != body.len() - length {
                return Err(format!(
                    "the outputs declare {total} bytes but {} follow the header",
                    body.len() - length
                ));
            }
            Ok(())
        }
        HttpReply::Json(expected) => {
            let json: Value =
                serde_json::from_slice(body).map_err(|e| format!("the reply is not JSON: {e}"))?;
            for output in expected {
                let data = find_output(&json, &output.name)?["data"]
                    .as_array()
                    .ok_or_else(|| format!("output '{}' has no data", output.name))?;
                let wrong = match output.elements {
                    Some(n) => data.len() != n,
                    None => data.is_empty(),
                };
                if wrong {
                    return Err(format!(
                        "output '{}' has {} elements, expected {:?}",
                        output.name,
                        data.len(),
                        output.elements
                    ));
                }
            }
            Ok(())
        }
        HttpReply::Classes => {
            let json: Value =
                serde_json::from_slice(body).map_err(|e| format!("the reply is not JSON: {e}"))?;
            match json.as_array() {
                Some(classes)
                    if !classes.is_empty() && classes.iter().all(|c| c["index"].is_u64()) =>
                {
                    Ok(())
                }
                _ => Err(format!(
                    "expected a list of classes, got {}",
                    truncate(&json.to_string())
                )),
            }
        }
    }
}

fn find_output<'a>(reply: &'a Value, name: &str) -> Result<&'a Value, String> {
    reply["outputs"]
        .as_array()
        .and_then(|outputs| outputs.iter().find(|o| o["name"] == name))
        .ok_or_else(|| format!("the reply has no output '{name}'"))
}

fn check_grpc_reply(expected: &[ExpectedOutput], reply: &ModelInferResponse) -> Result<(), String> {
    for output in expected {
        let position = reply
            .outputs
            .iter()
            .position(|o| o.name == output.name)
            .ok_or_else(|| format!("the reply has no output '{}'", output.name))?;
        let size = reply
            .raw_output_contents
            .get(position)
            .map(Bytes::len)
            .ok_or_else(|| format!("output '{}' has no raw contents", output.name))?;
        let wrong = match output.bytes {
            Some(bytes) => size != bytes,
            None => size == 0,
        };
        if wrong {
            return Err(format!(
                "output '{}' has {size} bytes, expected {:?}",
                output.name, output.bytes
            ));
        }
    }
    Ok(())
}

/// The message of a `{"error": "..."}` body, else the body itself, shortened.
fn error_text(body: &[u8]) -> String {
    let text = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|json| json["error"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    truncate(&text)
}

fn truncate(text: &str) -> String {
    const MAX: usize = 300;
    match text.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_string(),
    }
}

/// An error and its sources, `outer: inner: innermost`.
fn chain(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected(name: &str, elements: usize) -> ExpectedOutput {
        ExpectedOutput {
            name: name.into(),
            elements: Some(elements),
            bytes: Some(elements * 4),
        }
    }

    #[test]
    fn json_numbers_read_back_exactly() {
        let values = [0.1f32, -2.5, 1e-7];
        let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut text = String::new();
        json_numbers("FP32", &data, &mut text).unwrap();
        let back: Vec<f32> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, values);
        assert!(json_numbers("BYTES", &[0, 0], &mut String::new()).is_err());
    }

    #[test]
    fn binary_replies_must_carry_each_output_at_its_size() {
        let header = br#"{"outputs":[{"name":"logits","parameters":{"binary_data_size":8}}]}"#;
        let mut headers = http::HeaderMap::new();
        headers.insert(HEADER_LENGTH, HeaderValue::from(header.len()));
        let mut body = header.to_vec();
        body.extend_from_slice(&[0; 8]);
        let reply = HttpReply::Binary(vec![expected("logits", 2)]);
        assert_eq!(check_http_reply(&reply, &headers, &body), Ok(()));
        let wrong = HttpReply::Binary(vec![expected("logits", 3)]);
        assert!(check_http_reply(&wrong, &headers, &body).is_err());
        let missing = HttpReply::Binary(vec![expected("probabilities", 2)]);
        assert!(check_http_reply(&missing, &headers, &body).is_err());
        assert!(check_http_reply(&reply, &headers, &body[..body.len() - 1]).is_err());
        assert!(check_http_reply(&reply, &http::HeaderMap::new(), &body).is_err());
    }

    #[test]
    fn json_and_class_replies_are_checked() {
        let reply = HttpReply::Json(vec![expected("logits", 2)]);
        let none = http::HeaderMap::new();
        let good = br#"{"outputs":[{"name":"logits","data":[1.0,2.0]}]}"#;
        assert_eq!(check_http_reply(&reply, &none, good), Ok(()));
        let short = br#"{"outputs":[{"name":"logits","data":[1.0]}]}"#;
        assert!(check_http_reply(&reply, &none, short).is_err());
        let classes = br#"[{"label":"tabby","index":281,"probability":0.5}]"#;
        assert_eq!(
            check_http_reply(&HttpReply::Classes, &none, classes),
            Ok(())
        );
        assert!(check_http_reply(&HttpReply::Classes, &none, b"[]").is_err());
    }

    #[test]
    fn urls_must_be_plain_http() {
        assert_eq!(
            base_url("http://127.0.0.1:8000/").unwrap(),
            "http://127.0.0.1:8000"
        );
        assert!(base_url("https://example.com").is_err());
        assert!(base_url("127.0.0.1:8000").is_err());
    }
}
