//! The response cache.

use super::*;

#[tokio::test]
async fn the_response_cache_answers_repeated_requests_without_running_the_model() {
    let repository = TempRepository::with_bundled(&[MODEL]);
    let config = repository.path().join(MODEL).join("config.pbtxt");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\nresponse_cache { enable: true }\n");
    std::fs::write(&config, text).unwrap();
    let server = TestServer::start(repository.config(ModelControlMode::None));
    let base = server.url("");
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
    let photo = reference().encoded("cat.jpg");
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
        .get(server.metrics_url("/metrics"))
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
    server.stop().unwrap();
}

#[tokio::test]
async fn models_without_the_opt_in_are_not_cached() {
    let client = Client::new();
    let base = &shared().url("");
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
