//! Server, health and model metadata, and the model configuration.

use super::*;

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
async fn health_endpoints_answer_with_status_and_json_body() {
    for (path, body) in [
        ("/v2/health/live", json!({"live": true})),
        ("/v2/health/ready", json!({"ready": true})),
        (
            "/v2/models/efficientnet-lite0/ready",
            json!({"name": MODEL, "ready": true}),
        ),
        (
            "/v2/models/efficientnet-lite0/versions/1/ready",
            json!({"name": MODEL, "ready": true}),
        ),
    ] {
        let response = reqwest::get(url(path)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(response.json::<Value>().await.unwrap(), body, "{path}");
    }
    // Not ready, unknown models included, is a 400, as Triton answers it.
    for (path, says) in [
        (
            "/v2/models/no-such-model/ready",
            "Request for unknown model: 'no-such-model' is not found",
        ),
        (
            "/v2/models/efficientnet-lite0/versions/2/ready",
            "version 2 is not found",
        ),
    ] {
        let response = reqwest::get(url(path)).await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
        let json: Value = response.json().await.unwrap();
        assert_eq!(json["ready"], false, "{path}");
        assert!(json["error"].as_str().unwrap().contains(says), "{json}");
    }
    let response = reqwest::get(url("/v2/models/efficientnet-lite0/versions/one/ready"))
        .await
        .unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "version").await;
}

#[tokio::test]
async fn shared_memory_status_is_empty_and_unregistering_succeeds() {
    let client = Client::new();
    for kind in ["systemsharedmemory", "cudasharedmemory"] {
        let status: Value = client
            .get(url(&format!("/v2/{kind}/status")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(status, json!([]), "{kind}");
        for path in ["unregister", "region/r0/unregister"] {
            let response = client
                .post(url(&format!("/v2/{kind}/{path}")))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{kind}/{path}");
        }
        let response = client
            .get(url(&format!("/v2/{kind}/region/r0/status")))
            .send()
            .await
            .unwrap();
        assert_error(response, StatusCode::BAD_REQUEST, "'r0'").await;
        let response = client
            .post(url(&format!("/v2/{kind}/region/r0/register")))
            .json(&json!({"key": "/r0", "offset": 0, "byte_size": 64}))
            .send()
            .await
            .unwrap();
        assert_error(response, StatusCode::BAD_REQUEST, "not supported").await;
    }
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

/// Fields ferroserve does not act on are still part of the configuration: the endpoints
/// (HTTP and gRPC) return the whole file, as Triton does. Multi-threaded, so that the
/// gRPC channel's task can close its connection while the server stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_config_is_returned_whole() {
    let repository = TempRepository::with_bundled(&[MODEL]);
    let file = repository.path().join(MODEL).join("config.pbtxt");
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str(
        r#"
optimization { execution_accelerators { cpu_execution_accelerator: [ { name: "openvino" } ] } }
model_warmup [ { name: "zeros" batch_size: 1 inputs { key: "input" value {
  data_type: TYPE_FP32 dims: [ 3, 224, 224 ] zero_data: true } } } ]
"#,
    );
    std::fs::write(&file, text).unwrap();
    let server = TestServer::start(repository.config(ModelControlMode::None));

    let json: Value = reqwest::get(server.url(&format!("/v2/models/{MODEL}/config")))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let accelerator = &json["optimization"]["execution_accelerators"]["cpu_execution_accelerator"];
    assert_eq!(accelerator[0]["name"], "openvino", "{json}");
    assert_eq!(json["model_warmup"][0]["name"], "zeros", "{json}");
    assert_eq!(json["input"][0]["dims"], json!([3, 224, 224]), "{json}");

    use ferroserve_server::grpc::proto::grpc_inference_service_client::GrpcInferenceServiceClient;
    let mut client = GrpcInferenceServiceClient::connect(server.grpc_url())
        .await
        .unwrap();
    let config = client
        .model_config(ferroserve_server::grpc::proto::ModelConfigRequest {
            name: MODEL.into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .config
        .unwrap();
    let accelerators = config.optimization.unwrap().execution_accelerators.unwrap();
    assert_eq!(accelerators.cpu_execution_accelerator[0].name, "openvino");
    assert_eq!(config.model_warmup[0].name, "zeros");
}
