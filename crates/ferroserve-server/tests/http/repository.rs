//! The repository API in explicit mode.

use super::*;

#[tokio::test]
async fn repository_api_in_explicit_mode() {
    let repository = TempRepository::with_bundled(&[MODEL]);
    let server = TestServer::start(repository.config(ModelControlMode::Explicit));
    let base = server.url("");
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
        StatusCode::BAD_REQUEST
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
        // A configuration override that Triton's schema refuses fails the load.
        (
            "/v2/repository/models/efficientnet-lite0/load",
            r#"{"parameters": {"config": "{\"inputs\": []}"}}"#,
            StatusCode::BAD_REQUEST,
            "the load request's config:1:",
        ),
        (
            "/v2/repository/models/efficientnet-lite0/load",
            r#"{"parameters": {"config": 3}}"#,
            StatusCode::BAD_REQUEST,
            "load parameter 'config' must be a string",
        ),
        (
            "/v2/repository/models/efficientnet-lite0/load",
            r#"{"parameters": {"file:1/model.onnx": "not base64!"}}"#,
            StatusCode::BAD_REQUEST,
            "base64",
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
        StatusCode::BAD_REQUEST
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
    let image = reference().encoded("cat.jpg");
    let response = client
        .post(at("/v2/models/efficientnet-lite0/classify"))
        .body(image)
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::SERVICE_UNAVAILABLE, "not ready").await;
    server.stop().unwrap();
}

/// Reloads under load lose nothing: a request admitted to a version is answered by it,
/// on the tensor model and on the image model (whose requests are decoded first).
#[tokio::test(flavor = "multi_thread")]
async fn reloads_under_load_lose_no_request() {
    let repository = TempRepository::with_bundled(&[MODEL, "efficientnet-lite0-image"]);
    let mut config = repository.config(ModelControlMode::Explicit);
    config.runtime.startup_models = vec![MODEL.into(), "efficientnet-lite0-image".into()];
    let server = TestServer::start(config);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for client in 0..4 {
        let (stop, image) = (stop.clone(), reference().encoded("cat.jpg"));
        let tensor = reference_input("cat.jpg");
        let (classify, infer) = (
            server.url("/v2/models/efficientnet-lite0-image/classify?top_k=1"),
            server.url(&format!("/v2/models/{MODEL}/infer")),
        );
        load.push(tokio::spawn(async move {
            let http = Client::new();
            let (mut sent, mut failed) = (0, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let response = if client % 2 == 0 {
                    http.post(&classify)
                        .body(image.clone())
                        .send()
                        .await
                        .unwrap()
                } else {
                    let (body, length) = binary_body(&image_batch_header(1), &[&tensor]);
                    http.post(&infer)
                        .header(HEADER_LENGTH, length)
                        .body(body)
                        .send()
                        .await
                        .unwrap()
                };
                sent += 1;
                if response.status() != StatusCode::OK {
                    failed.push(response.text().await.unwrap());
                }
            }
            (sent, failed)
        }));
    }
    for _ in 0..10 {
        for model in [MODEL, "efficientnet-lite0-image"] {
            server.runtime().load_model(model).await.unwrap();
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    for client in load {
        let (sent, failed) = client.await.unwrap();
        assert!(
            failed.is_empty(),
            "{} of {sent} failed: {:?}",
            failed.len(),
            failed
        );
        total += sent;
    }
    assert!(total > 0);
    server.stop().unwrap();
}
