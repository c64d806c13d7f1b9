//! Encoded images: the /classify endpoint and a model's BYTES input.

use super::*;

#[tokio::test]
async fn classify_endpoint_labels_an_encoded_image() {
    let client = Client::new();
    let cat = reference().encoded("cat.jpg");
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
        .map(|i| reference().encoded(i))
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
