//! The HTTP front end over real sockets: a server with the bundled efficientnet-lite0
//! behind `http::router` on 127.0.0.1:0, driven with reqwest. Inference results are
//! checked against tests/data/images/expected.json (reference top-5 computed
//! independently with onnxruntime in Python) on the reference input tensors.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use ferroserve_server::http::{metrics_router, router, HttpLimits};
use ferroserve_server::{ModelControlMode, Server};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod support;
use support::{copy_dir, images, options, repo_root};

const MODEL: &str = "efficientnet-lite0";
const IMAGES: [&str; 4] = ["cat.jpg", "coffee.jpg", "astronaut.png", "motorcycle.jpg"];
const HEADER_LENGTH: &str = "Inference-Header-Content-Length";

/// Serves `app` on a fresh port of 127.0.0.1 on the current runtime; returns its base URL.
async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}")
}

/// The server most tests share: the bundled repository, every model loaded, served on
/// its own thread and runtime so that it outlives each test's runtime.
struct Shared {
    /// The API with the default limits.
    base: String,
    /// The same server with a 1 KiB body limit.
    small_base: String,
    /// The metrics port.
    metrics_base: String,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let handle =
            ferroserve_server::metrics::install().expect("the metrics recorder installs once");
        let (started, wait) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let server = Server::start(options(repo_root().join("models"), ModelControlMode::None))
                .expect("the server starts");
            runtime.block_on(async move {
                let small = HttpLimits {
                    max_request_bytes: 1024,
                };
                let shared = Shared {
                    base: serve(router(server.clone(), HttpLimits::default())).await,
                    small_base: serve(router(server.clone(), small)).await,
                    metrics_base: serve(metrics_router(handle, server.clone())).await,
                };
                started.send(shared).unwrap();
                std::future::pending::<()>().await
            })
        });
        wait.recv().expect("the shared server starts")
    })
}

fn url(path: &str) -> String {
    format!("{}{path}", shared().base)
}

/// The preprocessed reference tensor of one image: 3x224x224 little-endian f32.
fn reference_input(image: &str) -> Vec<u8> {
    let stem = image.rsplit_once('.').unwrap().0;
    std::fs::read(images().join(format!("{stem}.input.f32"))).unwrap()
}

/// (index, label, probability) of the reference top 5.
fn expected_top5(image: &str) -> Vec<(usize, String, f32)> {
    let text = std::fs::read_to_string(images().join("expected.json")).unwrap();
    let json: Value = serde_json::from_str(&text).unwrap();
    json[image]["top5"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["index"].as_u64().unwrap() as usize,
                e["label"].as_str().unwrap().to_string(),
                e["prob"].as_f64().unwrap() as f32,
            )
        })
        .collect()
}

fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|&x| (x - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// Checks one row of logits against the reference top 5 of `image`.
fn assert_matches_reference(image: &str, logits: &[f32]) {
    assert_eq!(logits.len(), 1000, "{image}");
    let probabilities = softmax(logits);
    let mut order: Vec<usize> = (0..probabilities.len()).collect();
    order.sort_by(|&a, &b| probabilities[b].total_cmp(&probabilities[a]));
    for (rank, (index, label, probability)) in expected_top5(image).into_iter().enumerate() {
        assert_eq!(order[rank], index, "{image}: rank {rank} should be {label}");
        let got = probabilities[index];
        assert!(
            (got - probability).abs() < 0.01,
            "{image}: {label} has probability {got}, expected {probability}"
        );
    }
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
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

#[tokio::test]
async fn server_metadata_lists_the_extensions() {
    let json: Value = reqwest::get(url("/v2"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(json["name"], "ferroserve");
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    let extensions: Vec<&str> = json["extensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    for extension in [
        "classification",
        "binary_tensor_data",
        "model_repository",
        "statistics",
        "model_configuration",
    ] {
        assert!(extensions.contains(&extension), "{extensions:?}");
    }
}

#[tokio::test]
async fn health_endpoints_answer_with_status_and_empty_body() {
    for path in [
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/efficientnet-lite0/ready",
        "/v2/models/efficientnet-lite0/versions/1/ready",
    ] {
        let response = reqwest::get(url(path)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert!(response.bytes().await.unwrap().is_empty(), "{path}");
    }
    for path in [
        "/v2/models/no-such-model/ready",
        "/v2/models/efficientnet-lite0/versions/2/ready",
    ] {
        let response = reqwest::get(url(path)).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert!(response.bytes().await.unwrap().is_empty(), "{path}");
    }
    let response = reqwest::get(url("/v2/models/efficientnet-lite0/versions/one/ready"))
        .await
        .unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "version").await;
}

#[tokio::test]
async fn model_metadata_describes_the_tensors() {
    for path in [
        "/v2/models/efficientnet-lite0",
        "/v2/models/efficientnet-lite0/versions/1",
    ] {
        let json: Value = reqwest::get(url(path)).await.unwrap().json().await.unwrap();
        assert_eq!(json["name"], MODEL);
        assert_eq!(json["versions"], json!(["1"]));
        assert_eq!(json["platform"], "onnxruntime_onnx");
        assert_eq!(
            json["inputs"][0],
            json!({"name": "input", "datatype": "FP32", "shape": [-1, 3, 224, 224]})
        );
        assert_eq!(
            json["outputs"],
            json!([{"name": "logits", "datatype": "FP32", "shape": [-1, 1000]}])
        );
    }
}

#[tokio::test]
async fn model_config_is_tritons_json() {
    for path in [
        "/v2/models/efficientnet-lite0/config",
        "/v2/models/efficientnet-lite0/versions/1/config",
    ] {
        let json: Value = reqwest::get(url(path)).await.unwrap().json().await.unwrap();
        assert_eq!(json["name"], MODEL);
        assert_eq!(json["max_batch_size"], 8);
        assert_eq!(json["input"][0]["data_type"], "TYPE_FP32");
        assert_eq!(json["input"][0]["dims"], json!([3, 224, 224]));
        assert_eq!(json["output"][0]["label_filename"], "labels.txt");
    }
}

#[tokio::test]
async fn json_inference_matches_the_reference() {
    let client = Client::new();
    let data = f32s(&reference_input("coffee.jpg"));
    let request = json!({
        "id": "json-1",
        "inputs": [{"name": "input", "shape": [1, 3, 224, 224], "datatype": "FP32", "data": data}],
        "outputs": [{"name": "logits"}]
    });
    let response = client
        .post(url("/v2/models/efficientnet-lite0/infer"))
        .json(&request)
        .send()
        .await
        .unwrap();
    let (status, json, binary) = split_response(response).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert!(binary.is_empty());
    assert_eq!(json["model_name"], MODEL);
    assert_eq!(json["model_version"], "1");
    assert_eq!(json["id"], "json-1");
    let output = &json["outputs"][0];
    assert_eq!(output["name"], "logits");
    assert_eq!(output["datatype"], "FP32");
    assert_eq!(output["shape"], json!([1, 1000]));
    let logits: Vec<f32> = output["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    assert_matches_reference("coffee.jpg", &logits);
}

#[tokio::test]
async fn nested_json_data_is_accepted() {
    let client = Client::new();
    let data = f32s(&reference_input("cat.jpg"));
    // [1][3][224][224] as nested arrays.
    let nested: Vec<Vec<Vec<f32>>> = data
        .chunks(224 * 224)
        .map(|channel| channel.chunks(224).map(<[f32]>::to_vec).collect())
        .collect();
    let request = json!({
        "inputs": [{"name": "input", "shape": [1, 3, 224, 224], "datatype": "FP32", "data": [nested]}],
    });
    let response = client
        .post(url("/v2/models/efficientnet-lite0/infer"))
        .json(&request)
        .send()
        .await
        .unwrap();
    let (status, json, _) = split_response(response).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["id"], "");
    let logits: Vec<f32> = json["outputs"][0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    assert_matches_reference("cat.jpg", &logits);
}

#[tokio::test]
async fn binary_inference_matches_the_reference_for_every_image() {
    let client = Client::new();
    for image in IMAGES {
        let input = reference_input(image);
        let header = json!({
            "id": image,
            "inputs": [{"name": "input", "shape": [1, 3, 224, 224], "datatype": "FP32",
                        "parameters": {"binary_data_size": input.len()}}],
            "outputs": [{"name": "logits", "parameters": {"binary_data": true}}]
        });
        let (status, json, binary) = post_binary(
            &client,
            "/v2/models/efficientnet-lite0/versions/1/infer",
            &header,
            &[&input],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{json}");
        assert_eq!(json["id"], image);
        let output = &json["outputs"][0];
        assert_eq!(output["parameters"]["binary_data_size"], 4000);
        assert_eq!(output["shape"], json!([1, 1000]));
        assert!(output.get("data").is_none());
        assert_matches_reference(image, &f32s(&binary));
    }
}

#[tokio::test]
async fn a_batch_of_two_answers_each_row() {
    let client = Client::new();
    let (cat, coffee) = (reference_input("cat.jpg"), reference_input("coffee.jpg"));
    let (status, json, binary) = post_binary(
        &client,
        "/v2/models/efficientnet-lite0/infer",
        &image_batch_header(2),
        &[&cat, &coffee],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["outputs"][0]["shape"], json!([2, 1000]));
    let logits = f32s(&binary);
    assert_matches_reference("cat.jpg", &logits[..1000]);
    assert_matches_reference("coffee.jpg", &logits[1000..]);
}

#[tokio::test]
async fn concurrent_requests_are_each_answered_correctly() {
    let client = Client::new();
    let requests = IMAGES.iter().cycle().take(8).map(|&image| {
        let client = client.clone();
        async move {
            let input = reference_input(image);
            let (status, json, binary) = post_binary(
                &client,
                "/v2/models/efficientnet-lite0/infer",
                &image_batch_header(1),
                &[&input],
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{json}");
            assert_matches_reference(image, &f32s(&binary));
        }
    });
    let tasks: Vec<_> = requests.map(tokio::spawn).collect();
    for task in tasks {
        task.await.unwrap();
    }
}

/// Parses `"score:index:label"`.
fn parse_class(text: &str) -> (f32, usize, String) {
    let mut parts = text.splitn(3, ':');
    let score = parts.next().unwrap().parse().unwrap();
    let index = parts.next().unwrap().parse().unwrap();
    (score, index, parts.next().unwrap_or_default().to_string())
}

#[tokio::test]
async fn classification_extension_returns_labelled_classes() {
    let client = Client::new();
    let input = reference_input("motorcycle.jpg");
    let expected = expected_top5("motorcycle.jpg");
    for binary_output in [false, true] {
        let header = json!({
            "inputs": [{"name": "input", "shape": [1, 3, 224, 224], "datatype": "FP32",
                        "parameters": {"binary_data_size": input.len()}}],
            "outputs": [{"name": "logits", "parameters": {"classification": 5, "binary_data": binary_output}}]
        });
        let (status, json, binary) = post_binary(
            &client,
            "/v2/models/efficientnet-lite0/infer",
            &header,
            &[&input],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{json}");
        let output = &json["outputs"][0];
        assert_eq!(output["datatype"], "BYTES");
        assert_eq!(output["shape"], json!([1, 5]));
        let strings: Vec<String> = if binary_output {
            assert_eq!(output["parameters"]["binary_data_size"], binary.len());
            let mut strings = Vec::new();
            let mut rest = &binary[..];
            while !rest.is_empty() {
                let length = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
                strings.push(String::from_utf8(rest[4..4 + length].to_vec()).unwrap());
                rest = &rest[4 + length..];
            }
            strings
        } else {
            output["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(strings.len(), 5);
        let mut previous = f32::INFINITY;
        for (text, (index, label, _)) in strings.iter().zip(&expected) {
            let (score, got_index, got_label) = parse_class(text);
            assert_eq!((got_index, &got_label), (*index, label), "{text}");
            assert!(score <= previous, "scores descend: {strings:?}");
            previous = score;
        }
    }
}

#[tokio::test]
async fn classify_endpoint_labels_an_encoded_image() {
    let client = Client::new();
    let cat = std::fs::read(images().join("cat.jpg")).unwrap();
    let response = client
        .post(url("/v2/models/efficientnet-lite0/classify"))
        .header("Content-Type", "image/jpeg")
        .body(cat.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let classes: Value = response.json().await.unwrap();
    let classes = classes.as_array().unwrap();
    assert_eq!(classes.len(), 5);
    let top = &classes[0];
    let label = top["label"].as_str().unwrap();
    assert!(
        ["tiger cat", "Egyptian cat", "tabby, tabby cat"].contains(&label),
        "{top}"
    );
    assert!(
        [281, 282, 285].contains(&top["index"].as_u64().unwrap()),
        "{top}"
    );
    let probability = top["probability"].as_f64().unwrap();
    assert!(probability > 0.2 && probability <= 1.0, "{top}");

    let response = client
        .post(url(
            "/v2/models/efficientnet-lite0/versions/1/classify?top_k=2",
        ))
        .body(cat.clone())
        .send()
        .await
        .unwrap();
    let classes: Value = response.json().await.unwrap();
    assert_eq!(classes.as_array().unwrap().len(), 2);

    for (query, expected) in [
        ("?top_k=0", "top_k"),
        ("?top_k=1001", "top_k"),
        ("?top_k=many", "top_k"),
    ] {
        let response = client
            .post(url(&format!(
                "/v2/models/efficientnet-lite0/classify{query}"
            )))
            .body(cat.clone())
            .send()
            .await
            .unwrap();
        assert_error(response, StatusCode::BAD_REQUEST, expected).await;
    }
    let response = client
        .post(url("/v2/models/efficientnet-lite0/classify"))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "empty").await;
    let response = client
        .post(url("/v2/models/efficientnet-lite0/classify"))
        .body(b"not an image".to_vec())
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "image").await;
    let response = client
        .post(url("/v2/models/no-such-model/classify"))
        .body(cat)
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::NOT_FOUND, "no-such-model").await;
    assert_still_serves(&client).await;
}

#[tokio::test]
async fn encoded_images_through_a_bytes_input_when_a_model_declares_one() {
    let client = Client::new();
    let index: Value = client
        .post(url("/v2/repository/index"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut found = None;
    for entry in index.as_array().unwrap() {
        let name = entry["name"].as_str().unwrap();
        let metadata: Value = client
            .get(url(&format!("/v2/models/{name}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let inputs = metadata["inputs"].as_array().cloned().unwrap_or_default();
        if let Some(input) = inputs.iter().find(|i| i["datatype"] == "BYTES") {
            found = Some((
                name.to_string(),
                input["name"].as_str().unwrap().to_string(),
            ));
        }
    }
    let Some((model, input)) = found else {
        eprintln!("skipped: no model of the bundled repository declares a BYTES input");
        return;
    };
    let images: Vec<Vec<u8>> = ["cat.jpg", "coffee.jpg"]
        .iter()
        .map(|i| std::fs::read(images().join(i)).unwrap())
        .collect();
    let classes = infer_encoded_images(&client, &model, &input, &images).await;
    assert_eq!(classes.len(), 6, "{classes:?}");
    let (_, cat_index, _) = parse_class(&classes[0]);
    assert!([281, 282, 285].contains(&cat_index), "{classes:?}");
    let (_, coffee_index, coffee_label) = parse_class(&classes[3]);
    assert_eq!(
        (coffee_index, coffee_label.as_str()),
        (967, "espresso"),
        "{classes:?}"
    );

    let header = json!({"inputs": [{"name": input, "shape": [1], "datatype": "BYTES", "data": ["not an image"]}]});
    let response = client
        .post(url(&format!("/v2/models/{model}/infer")))
        .json(&header)
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "image").await;
    let header = json!({"inputs": [{"name": input, "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 6}}]});
    let (body, length) = binary_body(&header, &[&[9, 0, 0, 0, b'a', b'b']]);
    let response = client
        .post(url(&format!("/v2/models/{model}/infer")))
        .header(HEADER_LENGTH, length)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "declares 9 bytes").await;
    assert_still_serves(&client).await;
}

/// Sends encoded images as one batch through `model`'s BYTES input `input`, asking for
/// the top 3 classes of each, and returns them as `"score:index:label"`, row by row.
async fn infer_encoded_images(
    client: &Client,
    model: &str,
    input: &str,
    images: &[Vec<u8>],
) -> Vec<String> {
    let mut elements = Vec::new();
    for image in images {
        elements.extend_from_slice(&(image.len() as u32).to_le_bytes());
        elements.extend_from_slice(image);
    }
    let header = json!({
        "inputs": [{"name": input, "shape": [images.len(), 1], "datatype": "BYTES",
                    "parameters": {"binary_data_size": elements.len()}}],
        "outputs": [{"name": "logits", "parameters": {"classification": 3}}]
    });
    let (status, json, _) = post_binary(
        client,
        &format!("/v2/models/{model}/infer"),
        &header,
        &[&elements],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["outputs"][0]["shape"], json!([images.len(), 3]));
    json["outputs"][0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
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

#[tokio::test]
async fn statistics_count_inferences() {
    let client = Client::new();
    let paths = [
        "/v2/models/stats",
        "/v2/models/efficientnet-lite0/stats",
        "/v2/models/efficientnet-lite0/versions/1/stats",
    ];
    let mut before = Vec::new();
    for path in paths {
        before.push(inference_count(&client, path).await);
    }
    let (cat, coffee) = (reference_input("cat.jpg"), reference_input("coffee.jpg"));
    let (status, json, _) = post_binary(
        &client,
        "/v2/models/efficientnet-lite0/infer",
        &image_batch_header(2),
        &[&cat, &coffee],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    for (path, (rows, successes)) in paths.into_iter().zip(before) {
        let (rows_after, successes_after) = inference_count(&client, path).await;
        assert!(rows_after >= rows + 2, "{path}: {rows} -> {rows_after}");
        assert!(
            successes_after > successes,
            "{path}: {successes} -> {successes_after}"
        );
    }
    let json: Value = client
        .get(url("/v2/models/efficientnet-lite0/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let stats = &json["model_stats"][0];
    for key in ["last_inference", "execution_count"] {
        assert!(stats[key].as_u64().unwrap() > 0, "{key}: {stats}");
    }
    for key in [
        "success",
        "fail",
        "queue",
        "compute_input",
        "compute_infer",
        "compute_output",
    ] {
        assert!(
            stats["inference_stats"][key]["ns"].is_u64(),
            "{key}: {stats}"
        );
    }
    assert!(stats["batch_stats"].is_array());

    let response = client
        .get(url("/v2/models/no-such-model/stats"))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::NOT_FOUND, "no-such-model").await;
    let response = client
        .get(url("/v2/models/efficientnet-lite0/versions/9/stats"))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::NOT_FOUND, "version 9").await;
}

#[tokio::test]
async fn metrics_port_exposes_request_durations() {
    let client = Client::new();
    assert_still_serves(&client).await;
    let response = client
        .get(format!("{}/metrics", shared().metrics_base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = response.text().await.unwrap();
    assert!(
        text.contains("ferroserve_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(text.contains(&format!("model=\"{MODEL}\"")), "{text}");
    let response = client
        .get(format!("{}/nothing", shared().metrics_base))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::NOT_FOUND, "no route").await;
}

#[tokio::test]
async fn repository_changes_are_refused_unless_explicit() {
    let client = Client::new();
    let json: Value = client
        .post(url("/v2/repository/index"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entry = json
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == MODEL)
        .unwrap();
    assert_eq!(
        entry,
        &json!({"name": MODEL, "version": "1", "state": "READY"})
    );
    let response = client
        .post(url("/v2/repository/models/efficientnet-lite0/unload"))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "explicit").await;
    let response = client
        .post(url("/v2/repository/models/efficientnet-lite0/load"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "explicit").await;
    assert_still_serves(&client).await;
}

#[tokio::test]
async fn infer_errors_are_4xx_json_and_leave_the_server_serving() {
    let client = Client::new();
    let infer = url("/v2/models/efficientnet-lite0/infer");
    let cat = reference_input("cat.jpg");
    let input = |shape: Value, datatype: &str, data: Value| json!({"inputs": [{"name": "input", "shape": shape, "datatype": datatype, "data": data}]});
    let json_cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("malformed JSON", b"{\"inputs\": [".to_vec(), "malformed"),
        ("not an object", b"[1, 2]".to_vec(), "malformed"),
        ("bad UTF-8", b"{\"id\": \"\xff\xfe\", \"inputs\": []}".to_vec(), "malformed"),
        ("missing inputs", b"{}".to_vec(), "inputs"),
        ("unknown datatype", serde_json::to_vec(&input(json!([1]), "FP8", json!([1]))).unwrap(), "FP8"),
        ("count mismatch", serde_json::to_vec(&input(json!([1, 3, 224, 224]), "FP32", json!([1.0, 2.0]))).unwrap(), "needs 150528 elements"),
        ("UINT8 out of range", serde_json::to_vec(&input(json!([1]), "UINT8", json!([300]))).unwrap(), "300"),
        ("INT32 fraction", serde_json::to_vec(&input(json!([1]), "INT32", json!([1.5]))).unwrap(), "1.5"),
        ("FP16 as JSON", serde_json::to_vec(&input(json!([1]), "FP16", json!([1.0]))).unwrap(), "binary"),
        ("string for FP32", serde_json::to_vec(&input(json!([1]), "FP32", json!(["x"]))).unwrap(), "FP32"),
        ("wrong datatype", serde_json::to_vec(&input(json!([1]), "FP64", json!([1.0]))).unwrap(), "FP32"),
        ("wrong shape", serde_json::to_vec(&input(json!([1, 3]), "FP32", json!([1.0, 2.0, 3.0]))).unwrap(), "shape"),
        ("unknown input", serde_json::to_vec(&json!({"inputs": [{"name": "pixels", "shape": [1], "datatype": "FP32", "data": [1.0]}]})).unwrap(), "pixels"),
        ("no inputs", serde_json::to_vec(&json!({"inputs": []})).unwrap(), "input"),
        ("shared memory", serde_json::to_vec(&json!({"inputs": [{"name": "input", "shape": [1, 3, 224, 224], "datatype": "FP32", "parameters": {"shared_memory_region": "r", "shared_memory_byte_size": 4}}]})).unwrap(), "shared memory"),
    ];
    for (case, body, expected) in json_cases {
        let response = client.post(&infer).body(body).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{case}");
        assert_error(response, StatusCode::BAD_REQUEST, expected).await;
        assert_still_serves(&client).await;
    }

    let size = cat.len();
    let binary_cases: Vec<(&str, Value, Vec<u8>, &str)> = vec![
        (
            "binary beyond the body",
            image_batch_header(1),
            cat[..size - 4].to_vec(),
            "remain",
        ),
        (
            "leftover binary",
            image_batch_header(1),
            [&cat[..], &[0u8; 4]].concat(),
            "belong to no input",
        ),
        (
            "size not matching the shape",
            json!({"inputs": [{"name": "input", "shape": [1, 3, 224, 223], "datatype": "FP32", "parameters": {"binary_data_size": size}}]}),
            cat.clone(),
            "bytes",
        ),
        (
            "wrong shape, right size",
            json!({"inputs": [{"name": "input", "shape": [1, 3, 448, 112], "datatype": "FP32", "parameters": {"binary_data_size": size}}]}),
            cat.clone(),
            "shape",
        ),
        (
            "batch too large",
            json!({"inputs": [{"name": "input", "shape": [9, 3, 224, 224], "datatype": "FP32", "parameters": {"binary_data_size": 9 * size}}]}),
            cat.repeat(9),
            "batch",
        ),
        (
            "unknown output",
            json!({"inputs": [{"name": "input", "shape": [1, 3, 224, 224], "datatype": "FP32", "parameters": {"binary_data_size": size}}],
                   "outputs": [{"name": "probabilities"}]}),
            cat.clone(),
            "probabilities",
        ),
        (
            "classification of 0",
            json!({"inputs": [{"name": "input", "shape": [1, 3, 224, 224], "datatype": "FP32", "parameters": {"binary_data_size": size}}],
                   "outputs": [{"name": "logits", "parameters": {"classification": 0}}]}),
            cat.clone(),
            "classification",
        ),
        (
            "data and binary",
            json!({"inputs": [{"name": "input", "shape": [1], "datatype": "FP32", "data": [1.0], "parameters": {"binary_data_size": 4}}]}),
            vec![0; 4],
            "both",
        ),
    ];
    for (case, header, binary, expected) in binary_cases {
        let (body, length) = binary_body(&header, &[&binary]);
        let response = client
            .post(&infer)
            .header(HEADER_LENGTH, length)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{case}");
        assert_error(response, StatusCode::BAD_REQUEST, expected).await;
        assert_still_serves(&client).await;
    }

    let (body, length) = binary_body(&image_batch_header(1), &[&cat]);
    for (case, header_length, expected) in [
        (
            "header length beyond the body",
            (body.len() + 1).to_string(),
            "Inference-Header-Content-Length",
        ),
        (
            "header length not a number",
            "many".to_string(),
            "Inference-Header-Content-Length",
        ),
        (
            "header length splitting the JSON",
            (length - 1).to_string(),
            "malformed",
        ),
    ] {
        let response = client
            .post(&infer)
            .header(HEADER_LENGTH, header_length)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{case}");
        assert_error(response, StatusCode::BAD_REQUEST, expected).await;
        assert_still_serves(&client).await;
    }
    let response = client.post(&infer).body(body.clone()).send().await.unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "malformed").await;

    let response = client
        .post(&infer)
        .header("Content-Encoding", "gzip")
        .header(HEADER_LENGTH, length)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::UNSUPPORTED_MEDIA_TYPE, "compressed").await;
    assert_still_serves(&client).await;
}

#[tokio::test]
async fn unknown_models_versions_and_routes_are_json_errors() {
    let client = Client::new();
    let request = serde_json::to_vec(
        &json!({"inputs": [{"name": "input", "shape": [1], "datatype": "FP32", "data": [1.0]}]}),
    )
    .unwrap();
    let cases = [
        (
            client.get(url("/v2/models/no-such-model")),
            StatusCode::NOT_FOUND,
            "no-such-model",
        ),
        (
            client.get(url("/v2/models/no-such-model/config")),
            StatusCode::NOT_FOUND,
            "no-such-model",
        ),
        (
            client
                .post(url("/v2/models/no-such-model/infer"))
                .body(request.clone()),
            StatusCode::NOT_FOUND,
            "no-such-model",
        ),
        (
            client.get(url("/v2/models/efficientnet-lite0/versions/7")),
            StatusCode::NOT_FOUND,
            "version 7",
        ),
        (
            client
                .post(url("/v2/models/efficientnet-lite0/versions/7/infer"))
                .body(request.clone()),
            StatusCode::NOT_FOUND,
            "version 7",
        ),
        (
            client.get(url("/v2/models/efficientnet-lite0/versions/latest")),
            StatusCode::BAD_REQUEST,
            "version",
        ),
        (
            client
                .post(url("/v2/models/efficientnet-lite0/versions/-1/infer"))
                .body(request.clone()),
            StatusCode::BAD_REQUEST,
            "version",
        ),
        (
            client.get(url("/v2/nothing/here")),
            StatusCode::NOT_FOUND,
            "no route",
        ),
        (client.get(url("/")), StatusCode::NOT_FOUND, "no route"),
        (
            client.get(url("/v2/models/efficientnet-lite0/infer")),
            StatusCode::METHOD_NOT_ALLOWED,
            "GET",
        ),
        (
            client.delete(url("/v2/health/live")),
            StatusCode::METHOD_NOT_ALLOWED,
            "DELETE",
        ),
    ];
    for (request, status, expected) in cases {
        assert_error(request.send().await.unwrap(), status, expected).await;
    }
    assert_still_serves(&client).await;
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_413() {
    let client = Client::new();
    let small = &shared().small_base;
    let response = client
        .post(format!("{small}/v2/models/efficientnet-lite0/infer"))
        .body(vec![b' '; 4096])
        .send()
        .await
        .unwrap();
    assert_error(
        response,
        StatusCode::PAYLOAD_TOO_LARGE,
        "limit of 1024 bytes",
    )
    .await;

    // Without Content-Length the limit applies as the body streams in.
    let address = small.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let chunk = vec![b' '; 4096];
    let mut request = format!(
        "POST /v2/models/efficientnet-lite0/classify HTTP/1.1\r\nHost: {address}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n",
        chunk.len()
    )
    .into_bytes();
    request.extend_from_slice(&chunk);
    request.extend_from_slice(b"\r\n0\r\n\r\n");
    stream.write_all(&request).await.unwrap();
    let mut answer = Vec::new();
    let read = stream.read_to_end(&mut answer);
    tokio::time::timeout(std::time::Duration::from_secs(30), read)
        .await
        .expect("the server answers and closes the connection")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("{\"error\":"), "{answer}");

    // Small requests still pass through the small server.
    let response = client
        .get(format!("{small}/v2/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_still_serves(&client).await;
}

/// A copy of the bundled repository in a temporary folder, removed on drop.
struct TempRepository(PathBuf);

impl TempRepository {
    /// A repository holding only `model` of the bundled one, in a folder of its own
    /// for the test `test`.
    fn with_bundled(model: &str, test: &str) -> Self {
        let root = std::env::temp_dir().join(format!(
            "ferroserve-http-{test}-{model}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&root);
        copy_dir(&repo_root().join("models").join(model), &root.join(model));
        TempRepository(root)
    }
}

impl Drop for TempRepository {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A server of its own on `repository`, served over HTTP; returns it with its base URL.
async fn start_on(repository: &TempRepository, mode: ModelControlMode) -> (Arc<Server>, String) {
    let options = options(repository.0.clone(), mode);
    let server: Arc<Server> = tokio::task::spawn_blocking(move || Server::start(options))
        .await
        .unwrap()
        .unwrap();
    let base = serve(router(server.clone(), HttpLimits::default())).await;
    (server, base)
}

#[tokio::test]
async fn repository_api_in_explicit_mode() {
    let repository = TempRepository::with_bundled(MODEL, "explicit");
    let (server, base) = start_on(&repository, ModelControlMode::Explicit).await;
    let client = Client::new();
    let at = |path: &str| format!("{base}{path}");

    let index: Value = client
        .post(at("/v2/repository/index"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(index.as_array().unwrap().len(), 1, "{index}");
    assert_eq!(index[0]["name"], MODEL);
    assert_ne!(index[0]["state"], "READY");
    let ready_only: Value = client
        .post(at("/v2/repository/index"))
        .body(r#"{"ready": true}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready_only, json!([]));
    assert_eq!(
        client
            .get(at("/v2/models/efficientnet-lite0/ready"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::SERVICE_UNAVAILABLE
    );

    let response = client
        .post(at("/v2/repository/models/efficientnet-lite0/load"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "{}",
        response.text().await.unwrap()
    );
    assert_eq!(
        client
            .get(at("/v2/models/efficientnet-lite0/ready"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let ready_only: Value = client
        .post(at("/v2/repository/index"))
        .body(r#"{"ready": true}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        ready_only,
        json!([{"name": MODEL, "version": "1", "state": "READY"}])
    );

    // Reload with a body as tritonclient sends it.
    let response = client
        .post(at("/v2/repository/models/efficientnet-lite0/load"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let cat = reference_input("cat.jpg");
    let header = image_batch_header(1);
    let (body, length) = binary_body(&header, &[&cat]);
    let response = client
        .post(at("/v2/models/efficientnet-lite0/infer"))
        .header(HEADER_LENGTH, length)
        .body(body)
        .send()
        .await
        .unwrap();
    let (status, json, binary) = split_response(response).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_matches_reference("cat.jpg", &f32s(&binary));

    for (path, body, status, expected) in [
        (
            "/v2/repository/models/no-such-model/load",
            "",
            StatusCode::NOT_FOUND,
            "no-such-model",
        ),
        (
            "/v2/repository/models/efficientnet-lite0/load",
            r#"{"parameters": {"config": "{}"}}"#,
            StatusCode::BAD_REQUEST,
            "config",
        ),
        (
            "/v2/repository/models/efficientnet-lite0/load",
            "{",
            StatusCode::BAD_REQUEST,
            "malformed",
        ),
        (
            "/v2/repository/models/efficientnet-lite0/unload",
            "[]",
            StatusCode::BAD_REQUEST,
            "malformed",
        ),
        (
            "/v2/repository/index",
            r#"{"ready": "yes"}"#,
            StatusCode::BAD_REQUEST,
            "malformed",
        ),
    ] {
        let response = client.post(at(path)).body(body).send().await.unwrap();
        assert_error(response, status, expected).await;
    }

    let response = client
        .post(at("/v2/repository/models/efficientnet-lite0/unload"))
        .body(r#"{"parameters": {"unload_dependents": false}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        client
            .get(at("/v2/models/efficientnet-lite0/ready"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    let index: Value = client
        .post(at("/v2/repository/index"))
        .body("")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(index[0]["name"], MODEL);
    assert_eq!(index[0]["state"], "UNAVAILABLE");
    let image = std::fs::read(images().join("cat.jpg")).unwrap();
    let response = client
        .post(at("/v2/models/efficientnet-lite0/classify"))
        .body(image)
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::SERVICE_UNAVAILABLE, "not ready").await;
    tokio::task::spawn_blocking(move || server.shutdown())
        .await
        .unwrap();
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

#[tokio::test]
async fn the_response_cache_answers_repeated_requests_without_running_the_model() {
    let metrics_base = &shared().metrics_base;
    let repository = TempRepository::with_bundled(MODEL, "cache");
    let config = repository.0.join(MODEL).join("config.pbtxt");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\nresponse_cache { enable: true }\n");
    std::fs::write(&config, text).unwrap();
    let (server, base) = start_on(&repository, ModelControlMode::None).await;
    let client = Client::new();
    let infer = |image: &'static str, outputs: Value| {
        let client = client.clone();
        let path = format!("{base}/v2/models/{MODEL}/infer");
        async move {
            let input = reference_input(image);
            let header = json!({
                "inputs": [{"name": "input", "shape": [1, 3, 224, 224], "datatype": "FP32",
                            "parameters": {"binary_data_size": input.len()}}],
                "outputs": outputs
            });
            let (body, length) = binary_body(&header, &[&input]);
            let response = client
                .post(path)
                .header(HEADER_LENGTH, length)
                .body(body)
                .send()
                .await
                .unwrap();
            split_response(response).await
        }
    };
    let raw = || json!([{"name": "logits", "parameters": {"binary_data": true}}]);

    let (status, _, first) = infer("cat.jpg", raw()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, second) = infer("cat.jpg", raw()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first, second);
    assert_matches_reference("cat.jpg", &f32s(&second));
    // Asking for classes instead of the tensor is served from the same entry.
    let (status, json, _) = infer(
        "cat.jpg",
        json!([{"name": "logits", "parameters": {"classification": 2}}]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let top = json["outputs"][0]["data"][0].as_str().unwrap();
    assert!(top.ends_with(":tiger cat"), "{top}");
    // A different image is a miss and gets its own answer.
    let (status, _, coffee) = infer("coffee.jpg", raw()).await;
    assert_eq!(status, StatusCode::OK);
    assert_matches_reference("coffee.jpg", &f32s(&coffee));

    // An encoded image: preprocessing is skipped too on a hit.
    let photo = std::fs::read(images().join("cat.jpg")).unwrap();
    let mut answers = Vec::new();
    for _ in 0..2 {
        let response = client
            .post(format!("{base}/v2/models/{MODEL}/classify?top_k=1"))
            .body(photo.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        answers.push(response.json::<Value>().await.unwrap());
    }
    assert_eq!(answers[0], answers[1]);

    let stats = model_stats(&client, &base, MODEL).await;
    let infer_stats = &stats["inference_stats"];
    assert_eq!(infer_stats["cache_hit"]["count"], 3, "{stats}");
    assert_eq!(infer_stats["cache_miss"]["count"], 3, "{stats}");
    assert_eq!(infer_stats["success"]["count"], 6, "{stats}");
    assert_eq!(stats["inference_count"], 6, "{stats}");
    assert_eq!(stats["execution_count"], 3, "{stats}");

    let text = client
        .get(format!("{metrics_base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let hits = text
        .lines()
        .find(|l| {
            l.starts_with("ferroserve_cache_lookups_total")
                && l.contains(&format!("model=\"{MODEL}\","))
                && l.contains("result=\"hit\"")
        })
        .unwrap_or_else(|| panic!("no cache hit counter: {text}"));
    let count: f64 = hits.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 2.0, "{hits}");
    server.shutdown();
}

#[tokio::test]
async fn models_without_the_opt_in_are_not_cached() {
    let client = Client::new();
    let base = &shared().base;
    let before = model_stats(&client, base, MODEL).await;
    assert_still_serves(&client).await;
    assert_still_serves(&client).await;
    let after = model_stats(&client, base, MODEL).await;
    for counter in ["cache_hit", "cache_miss"] {
        assert_eq!(after["inference_stats"][counter]["count"], 0, "{after}");
    }
    let executions =
        after["execution_count"].as_u64().unwrap() - before["execution_count"].as_u64().unwrap();
    assert!(executions >= 2, "{before} -> {after}");
}
