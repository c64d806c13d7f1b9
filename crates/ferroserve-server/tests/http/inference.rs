//! Tensor inference, JSON and binary, single and batched, and the classification extension.

use super::*;

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

#[tokio::test]
async fn classification_extension_returns_labelled_classes() {
    let client = Client::new();
    let input = reference_input("motorcycle.jpg");
    let expected = reference().top5("motorcycle.jpg");
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
        for (text, class) in strings.iter().zip(expected) {
            let (score, got_index, got_label) = parse_class(text);
            assert_eq!(
                (got_index, &got_label),
                (class.index, &class.label),
                "{text}"
            );
            assert!(score <= previous, "scores descend: {strings:?}");
            previous = score;
        }
    }
}

/// Triton's raw binary request: `Inference-Header-Content-Length: 0` and the body is the
/// model's one input, a tensor or an encoded image.
#[tokio::test]
async fn raw_binary_requests_fill_the_one_input() {
    let client = Client::new();
    let image = reference().encoded("cat.jpg");
    for (model, body) in [
        ("efficientnet-lite0", reference_input("cat.jpg")),
        ("efficientnet-lite0-image", image.clone()),
    ] {
        let response = client
            .post(url(&format!("/v2/models/{model}/infer")))
            .header("Inference-Header-Content-Length", "0")
            .body(body)
            .send()
            .await
            .unwrap();
        let (status, json, _) = split_response(response).await;
        assert_eq!(status, StatusCode::OK, "{model}: {json}");
        assert_eq!(json["outputs"][0]["shape"], json!([1, 1000]), "{model}");
        let logits: Vec<f32> = json["outputs"][0]["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        if model == MODEL {
            assert_matches_reference("cat.jpg", &logits);
        } else {
            let best = logits
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .unwrap()
                .0;
            assert_eq!(best, reference().top5("cat.jpg")[0].index, "{model}");
        }
    }
    // A body that is not one whole tensor is refused, and says why.
    let response = client
        .post(url("/v2/models/efficientnet-lite0/infer"))
        .header("Inference-Header-Content-Length", "0")
        .body(vec![0u8; 100])
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "input 'input'").await;
}
