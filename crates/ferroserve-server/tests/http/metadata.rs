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
