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
