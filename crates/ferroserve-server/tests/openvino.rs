//! The OpenVINO engine behind the real server: the bundled model served on it, chosen in
//! each of the three ways (`--engine`, `backend: "openvino"`, ONNX Runtime's `openvino`
//! accelerator), and models it cannot load reported by name, file and reason while the
//! others keep serving.

use std::path::Path;

use ferroserve_core::{DataType, Precision};
use ferroserve_engine::{EngineKind, EngineOptions};
use ferroserve_runtime::infer::{InferInput, InferRequest};
use ferroserve_runtime::{ModelControlMode, Runtime};
use reqwest::StatusCode;
use serde_json::{json, Value};

mod support;
use support::{
    assert_matches_reference, copy_dir, f32s, reference, TempRepository, TestServer, MODEL,
};

/// A copy of the bundled model under `name`, its config.pbtxt with `extra` lines added
/// (and without its own precision, which `extra` may set).
fn bundled_copy(repository: &TempRepository, name: &str, extra: &str) {
    let folder = repository.path().join(name);
    copy_dir(&support::bundled_models().join(MODEL), &folder);
    let config = folder.join("config.pbtxt");
    let text = std::fs::read_to_string(&config).unwrap();
    let precision =
        r#"parameters { key: "INFERENCE_PRECISION_HINT" value { string_value: "f32" } }"#;
    assert!(
        text.contains(precision),
        "the bundled config states its precision"
    );
    let text = text
        .replace(&format!("name: \"{MODEL}\""), &format!("name: \"{name}\""))
        .replace(precision, "");
    std::fs::write(&config, format!("{text}\n{extra}\n")).unwrap();
}

/// The cat's reference tensor through `model`'s HTTP infer route: its logits.
async fn cat_logits(server: &TestServer, model: &str) -> Vec<f32> {
    let tensor = reference().input("cat.jpg");
    let header = json!({
        "inputs": [{"name": "input", "shape": [1, 3, 224, 224], "datatype": "FP32",
                    "parameters": {"binary_data_size": tensor.len()}}],
        "outputs": [{"name": "logits", "parameters": {"binary_data": true}}]
    });
    let mut body = serde_json::to_vec(&header).unwrap();
    let header_length = body.len();
    body.extend_from_slice(&tensor);
    let response = reqwest::Client::new()
        .post(server.url(&format!("/v2/models/{model}/infer")))
        .header("Inference-Header-Content-Length", header_length)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{model}");
    let json_length: usize = response.headers()["Inference-Header-Content-Length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let bytes = response.bytes().await.unwrap();
    f32s(&bytes[json_length..])
}

fn engine_of(runtime: &Runtime, model: &str) -> (EngineKind, Precision) {
    let served = runtime
        .loaded_models()
        .into_iter()
        .find(|m| m.model.name == model)
        .unwrap_or_else(|| panic!("{model} is loaded"));
    (served.model.engine.kind(), served.model.engine.precision())
}

#[tokio::test]
async fn serves_the_bundled_model_on_openvino() {
    let mut config = support::config(support::bundled_models(), ModelControlMode::None);
    config.runtime.load.engine = Some(EngineKind::OpenVino);
    config.runtime.load.engine_options.precision = Some(Precision::F32);
    let server = TestServer::start(config);
    assert_eq!(
        engine_of(server.runtime(), MODEL),
        (EngineKind::OpenVino, Precision::F32)
    );
    assert_matches_reference("cat.jpg", &cat_logits(&server, MODEL).await);

    let response = reqwest::Client::new()
        .post(server.url(&format!("/v2/models/{MODEL}/classify")))
        .header("Content-Type", "image/jpeg")
        .body(reference().encoded("cat.jpg"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let classes: Value = response.json().await.unwrap();
    assert_eq!(
        classes[0]["index"].as_u64(),
        Some(reference().top5("cat.jpg")[0].index as u64),
        "{classes}"
    );
}

/// The int8 model (tests/data/models, made by scripts/quantize) is served in int8, as its
/// configuration says, on ONNX Runtime and on OpenVINO; on the cat both keep the f32
/// model's answer among their top five (`ferroserve accuracy` measures how often).
#[tokio::test]
async fn the_int8_model_is_served_on_both_engines() {
    const INT8: &str = "efficientnet-lite0-int8";
    let f32_top = reference().top5("cat.jpg")[0].index;
    for engine in [EngineKind::OnnxRuntime, EngineKind::OpenVino] {
        let models = support::repo_root().join("tests/data/models");
        let mut config = support::config(models, ModelControlMode::Explicit);
        config.runtime.startup_models = vec![INT8.into()];
        config.runtime.load.engine = Some(engine);
        let server = TestServer::start(config);
        assert_eq!(engine_of(server.runtime(), INT8), (engine, Precision::Int8));
        let logits = cat_logits(&server, INT8).await;
        assert_eq!(logits.len(), 1000);
        let top5: Vec<usize> = ferroserve_core::classification::top_k(&logits, 5)
            .iter()
            .map(|class| class.index)
            .collect();
        assert!(
            top5.contains(&f32_top),
            "{engine:?}: the f32 top class {f32_top} is not in the int8 top five {top5:?}"
        );
        server.stop().expect("a clean stop");
    }
}

/// `--tune` loads every arrangement it chooses among, each instance an OpenVINO stream of
/// its own threads, and serves from the first.
#[tokio::test]
async fn tuning_loads_every_arrangement_on_openvino() {
    let mut config = support::config(support::bundled_models(), ModelControlMode::Explicit);
    config.runtime.startup_models = vec![MODEL.into()];
    config.runtime.load.engine = Some(EngineKind::OpenVino);
    config.runtime.load.engine_options.precision = Some(Precision::F32);
    config.runtime.load.tune = true;
    let server = TestServer::start(config);
    let served = server.runtime().loaded_models();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(
        served[0].arrangements,
        ferroserve_runtime::Arrangement::candidates(cores)
    );
    assert_matches_reference("cat.jpg", &cat_logits(&server, MODEL).await);
}

#[tokio::test]
async fn a_config_chooses_openvino_by_backend_or_by_onnxruntime_accelerator() {
    let repository = TempRepository::with_bundled(&[]);
    bundled_copy(
        &repository,
        "by-backend",
        r#"backend: "openvino"
        default_model_filename: "model.onnx"
        parameters { key: "INFERENCE_PRECISION_HINT" value { string_value: "f32" } }"#,
    );
    bundled_copy(
        &repository,
        "by-accelerator",
        r#"optimization { execution_accelerators { cpu_execution_accelerator: [ { name: "openvino" } ] } }
        parameters { key: "INFERENCE_PRECISION_HINT" value { string_value: "f32" } }"#,
    );
    let config = std::fs::read_to_string(repository.path().join("by-backend/config.pbtxt"))
        .unwrap()
        .replace("platform: \"onnxruntime_onnx\"\n", "");
    std::fs::write(repository.path().join("by-backend/config.pbtxt"), config).unwrap();
    let server = TestServer::start(repository.config(ModelControlMode::None));
    for model in ["by-backend", "by-accelerator"] {
        assert_eq!(
            engine_of(server.runtime(), model),
            (EngineKind::OpenVino, Precision::F32),
            "{model}"
        );
        assert_matches_reference("cat.jpg", &cat_logits(&server, model).await);
    }
}

/// The repository index's reason for `model`, which the server's log line also carries;
/// the model is not loaded.
fn failure(runtime: &Runtime, model: &str, root: &Path) -> String {
    let entry = runtime
        .repository_index()
        .unwrap()
        .into_iter()
        .find(|e| e.name == model)
        .unwrap_or_else(|| panic!("{model} is in the index"));
    assert_eq!(entry.state, "UNAVAILABLE", "{model}: {entry:?}");
    let reason = entry.reason;
    assert!(!reason.contains('\n'), "{model}: one line: {reason}");
    assert!(
        !reason.contains(&*root.display().to_string()),
        "{model}: no server path: {reason}"
    );
    reason
}

fn assert_says(reason: &str, parts: &[&str]) {
    for part in parts {
        assert!(reason.contains(part), "'{reason}' should say '{part}'");
    }
}

/// The model named `good` answers.
fn assert_serves(runtime: &Runtime) {
    let request = InferRequest {
        model: "good".into(),
        version: None,
        id: String::new(),
        inputs: vec![InferInput::tensor(
            "input",
            DataType::Fp32,
            vec![1, 3, 224, 224],
            reference().input("cat.jpg").into(),
        )
        .unwrap()],
        outputs: Vec::new(),
        timeout: None,
    };
    let response = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(runtime.infer(request))
        .expect("the good model serves");
    assert_eq!(response.model, "good");
}

#[test]
fn without_its_library_an_openvino_model_fails_alone() {
    let repository = TempRepository::with_bundled(&[]);
    bundled_copy(&repository, "good", "");
    bundled_copy(
        &repository,
        "on-openvino",
        r#"optimization { execution_accelerators { cpu_execution_accelerator: [ { name: "openvino" } ] } }"#,
    );
    let mut config = repository.config(ModelControlMode::None);
    config.runtime.load.engine_options = EngineOptions {
        openvino_library: Some("/nonexistent/libopenvino_c.so.2641".into()),
        ..EngineOptions::default()
    };
    let server = TestServer::start(config);
    let reason = failure(server.runtime(), "on-openvino", repository.path());
    assert_says(
        &reason,
        &[
            "on-openvino/1/model.onnx",
            "/nonexistent/libopenvino_c.so.2641 does not exist",
            "scripts/setup-openvino.sh",
        ],
    );
    assert_serves(server.runtime());
}

#[test]
fn models_openvino_cannot_load_are_named_with_their_file_and_reason() {
    let repository = TempRepository::with_bundled(&[]);
    bundled_copy(&repository, "good", "");
    bundled_copy(
        &repository,
        "unknown-precision",
        r#"parameters { key: "INFERENCE_PRECISION_HINT" value { string_value: "f64" } }"#,
    );
    let (capabilities, cpu) = ferroserve_engine::openvino::cpu_capabilities(None).unwrap();
    let lacking = [("bf16", "BF16"), ("f16", "FP16")]
        .into_iter()
        .find(|(_, capability)| !capabilities.iter().any(|c| c == capability));
    if let Some((precision, _)) = lacking {
        bundled_copy(
            &repository,
            "unsupported-precision",
            &format!(
                r#"optimization {{ execution_accelerators {{ cpu_execution_accelerator: [ {{ name: "openvino" }} ] }} }}
                parameters {{ key: "INFERENCE_PRECISION_HINT" value {{ string_value: "{precision}" }} }}"#
            ),
        );
    } else {
        println!("{cpu} computes bf16 and f16 natively: no precision to refuse");
    }
    let write = |file: &str, contents: &[u8]| {
        let path = repository.path().join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    };
    write(
        "corrupt/config.pbtxt",
        b"backend: \"openvino\"\ndefault_model_filename: \"model.onnx\"\n",
    );
    write("corrupt/1/model.onnx", b"these bytes are not an ONNX model");
    write("no-weights/config.pbtxt", b"backend: \"openvino\"\n");
    write(
        "no-weights/1/model.xml",
        b"<?xml version=\"1.0\"?>\n<net/>\n",
    );

    let server = TestServer::start(repository.config(ModelControlMode::None));
    let runtime = server.runtime();
    let root = repository.path();
    assert_says(
        &failure(runtime, "unknown-precision", root),
        &[
            "unknown-precision/config.pbtxt",
            "parameters.INFERENCE_PRECISION_HINT",
            "unknown precision 'f64'",
        ],
    );
    if let Some((precision, capability)) = lacking {
        assert_says(
            &failure(runtime, "unsupported-precision", root),
            &[
                "unsupported-precision/1/model.onnx",
                &format!("precision {precision} is not native on this CPU ({cpu})"),
                capability,
            ],
        );
    }
    assert_says(
        &failure(runtime, "corrupt", root),
        &["corrupt/1/model.onnx", "OpenVINO cannot read it"],
    );
    assert_says(
        &failure(runtime, "no-weights", root),
        &[
            "no-weights/1/model.bin",
            "no-weights/1/model.xml",
            "missing",
        ],
    );
    assert_serves(runtime);
}
