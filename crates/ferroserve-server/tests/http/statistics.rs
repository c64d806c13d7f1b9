//! Triton's statistics and the Prometheus metrics port.

use super::*;

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
        .get(shared().metrics_url("/metrics"))
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
        .get(shared().metrics_url("/nothing"))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::NOT_FOUND, "no route").await;
}
