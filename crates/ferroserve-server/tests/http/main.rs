//! The HTTP front end over real sockets, one module per topic: a server started with
//! `TestServer` (the serve lifecycle of `ferroserve serve`) on the bundled repository,
//! driven with reqwest. Inference results are checked against the reference top-5 of
//! tests/data/images (computed independently with onnxruntime in Python).

use std::sync::OnceLock;

use ferroserve_runtime::ModelControlMode;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

#[path = "../support/mod.rs"]
mod support;
use support::{assert_matches_reference, f32s, reference, TempRepository, TestServer, MODEL};

mod cache;
mod errors;
mod images;
mod inference;
mod metadata;
mod page;
mod repository;
mod security;
mod statistics;

const IMAGES: [&str; 4] = ["cat.jpg", "coffee.jpg", "astronaut.png", "motorcycle.jpg"];
const HEADER_LENGTH: &str = "Inference-Header-Content-Length";

/// The server most tests share: the bundled repository, every model loaded.
fn shared() -> &'static TestServer {
    static SHARED: OnceLock<TestServer> = OnceLock::new();
    SHARED.get_or_init(TestServer::bundled)
}

/// The URL of `path` on the shared server.
fn url(path: &str) -> String {
    shared().url(path)
}

/// The preprocessed reference tensor of one image: 3x224x224 little-endian f32.
fn reference_input(image: &str) -> Vec<u8> {
    reference().input(image)
}

/// A body in the binary tensor data layout: `header` as JSON, then `binary`.
fn binary_body(header: &Value, binary: &[&[u8]]) -> (Vec<u8>, usize) {
    let mut body = serde_json::to_vec(header).unwrap();
    let length = body.len();
    for chunk in binary {
        body.extend_from_slice(chunk);
    }
    (body, length)
}

/// Posts a binary-layout request and returns the status, the JSON header and the binary
/// data after it.
async fn post_binary(
    client: &Client,
    path: &str,
    header: &Value,
    binary: &[&[u8]],
) -> (StatusCode, Value, Vec<u8>) {
    let (body, length) = binary_body(header, binary);
    let response = client
        .post(url(path))
        .header(HEADER_LENGTH, length)
        .header("Content-Type", "application/octet-stream")
        .body(body)
        .send()
        .await
        .unwrap();
    split_response(response).await
}

/// The status, JSON header and trailing binary data of a response.
async fn split_response(response: reqwest::Response) -> (StatusCode, Value, Vec<u8>) {
    let status = response.status();
    let header_length = response
        .headers()
        .get(HEADER_LENGTH)
        .map(|v| v.to_str().unwrap().parse::<usize>().unwrap());
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    let body = response.bytes().await.unwrap();
    match header_length {
        Some(length) => {
            assert_eq!(content_type.as_deref(), Some("application/octet-stream"));
            (
                status,
                serde_json::from_slice(&body[..length]).unwrap(),
                body[length..].to_vec(),
            )
        }
        None => {
            assert_eq!(
                content_type.as_deref(),
                Some("application/json"),
                "{}",
                String::from_utf8_lossy(&body)
            );
            (status, serde_json::from_slice(&body).unwrap(), Vec::new())
        }
    }
}

/// The request header of a binary FP32 batch of `rows` images, all outputs binary.
fn image_batch_header(rows: usize) -> Value {
    json!({
        "id": "batch",
        "inputs": [{
            "name": "input", "shape": [rows, 3, 224, 224], "datatype": "FP32",
            "parameters": {"binary_data_size": rows * 3 * 224 * 224 * 4}
        }],
        "parameters": {"binary_data_output": true}
    })
}

/// A good inference, to show the server still serves after a bad request.
async fn assert_still_serves(client: &Client) {
    let cat = reference_input("cat.jpg");
    let (status, header, binary) = post_binary(
        client,
        &format!("/v2/models/{MODEL}/infer"),
        &image_batch_header(1),
        &[&cat],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{header}");
    assert_matches_reference("cat.jpg", &f32s(&binary));
}

/// Checks that `response` is an error with `status` and a JSON `{"error": ...}` body
/// whose message contains `expected`.
async fn assert_error(response: reqwest::Response, status: StatusCode, expected: &str) {
    assert_eq!(response.status(), status, "{}", response.url());
    let content_type = response.headers().get("content-type").cloned();
    let body = response.text().await.unwrap();
    assert_eq!(content_type.unwrap(), "application/json", "{body}");
    let json: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    let message = json["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message: {body}"));
    assert_eq!(json.as_object().unwrap().len(), 1, "{body}");
    assert!(
        message.to_lowercase().contains(&expected.to_lowercase()),
        "expected '{expected}' in: {message}"
    );
}

/// Parses `"score:index:label"`.
fn parse_class(text: &str) -> (f32, usize, String) {
    let mut parts = text.splitn(3, ':');
    let score = parts.next().unwrap().parse().unwrap();
    let index = parts.next().unwrap().parse().unwrap();
    (score, index, parts.next().unwrap_or_default().to_string())
}

async fn inference_count(client: &Client, path: &str) -> (u64, u64) {
    let json: Value = client
        .get(url(path))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let stats = json["model_stats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == MODEL)
        .unwrap()
        .clone();
    assert_eq!(stats["version"], "1");
    (
        stats["inference_count"].as_u64().unwrap(),
        stats["inference_stats"]["success"]["count"]
            .as_u64()
            .unwrap(),
    )
}

/// The model statistics of `model` at `base`.
async fn model_stats(client: &Client, base: &str, model: &str) -> Value {
    let json: Value = client
        .get(format!("{base}/v2/models/{model}/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    json["model_stats"][0].clone()
}
