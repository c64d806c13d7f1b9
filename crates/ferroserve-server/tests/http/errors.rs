//! Bad requests: 4xx JSON errors that change nothing, unknown names, body limits, and repository changes outside explicit mode.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

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
        ("FP16 for an FP32 input", serde_json::to_vec(&input(json!([1]), "FP16", json!([1.0]))).unwrap(), "must be FP32"),
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
            "the same output twice",
            json!({"inputs": [{"name": "input", "shape": [1, 3, 224, 224], "datatype": "FP32", "parameters": {"binary_data_size": size}}],
                   "outputs": [{"name": "logits"}, {"name": "logits"}]}),
            cat.clone(),
            "output 'logits' already exists in request",
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
        (client.get(url("/v1")), StatusCode::NOT_FOUND, "no route"),
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
    let mut config = support::config(support::bundled_models(), ModelControlMode::Explicit);
    config.runtime.startup_models = vec![MODEL.into()];
    config.http_limits.max_request_bytes = 1024;
    let server = TestServer::start(config);
    let small = &server.url("");
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
