//! The runtime on the kinds of model repositories Triton serves: string tensors to and
//! from an ONNX graph, `reshape`, ensembles (their steps run in order, readiness while a
//! step is unloaded, cycles and unknown steps refused at load) and loads with a
//! configuration override. The models are written at test time (`support/onnx.rs`).

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use ferroserve_core::{wire, DataType, ModelConfig};
use ferroserve_runtime::infer::{InferInput, InferRequest, InferResponse, OutputData};
use ferroserve_runtime::{
    LoadOptions, LoadParameters, ModelControlMode, Runtime, RuntimeOptions, ServeError,
};

mod support;
use support::onnx::{self, DataType as Elem};

fn start(repository: &Path, control_mode: ModelControlMode) -> Arc<Runtime> {
    Runtime::start(RuntimeOptions {
        model_repository: repository.to_path_buf(),
        control_mode,
        startup_models: Vec::new(),
        load: LoadOptions {
            engine: None,
            engine_options: Default::default(),
            intra_op_threads: Some(1),
            max_queue_size: 16,
            max_queue_wait: None,
            tune: false,
            naive: Default::default(),
        },
        preprocess_threads: 1,
        links: Default::default(),
        cache_bytes: 0,
    })
    .expect("the runtime starts")
}

fn write_config(repository: &Path, model: &str, text: &str) {
    std::fs::create_dir_all(repository.join(model)).unwrap();
    std::fs::write(repository.join(model).join("config.pbtxt"), text).unwrap();
}

fn request(model: &str, inputs: Vec<InferInput>) -> InferRequest {
    InferRequest {
        model: model.into(),
        version: None,
        id: "t".into(),
        inputs,
        outputs: Vec::new(),
        timeout: None,
    }
}

fn f32_input(name: &str, shape: Vec<usize>, values: &[f32]) -> InferInput {
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    InferInput::tensor(name, DataType::Fp32, shape, Bytes::from(data)).unwrap()
}

fn raw(response: &InferResponse, output: usize) -> &Bytes {
    match &response.outputs[output].data {
        OutputData::Raw(data) => data,
        OutputData::Strings(_) => panic!("expected a tensor"),
    }
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    wire::elements::<f32>(bytes).collect()
}

fn executor() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn string_tensors_reach_the_graph_and_come_back() {
    let repository = tempfile::tempdir().unwrap();
    onnx::identity(
        &repository.path().join("strings/1/model.onnx"),
        Elem::String,
        &[-1, 2],
    );
    let runtime = start(repository.path(), ModelControlMode::None);
    let config = runtime.model_config("strings", None).unwrap();
    assert_eq!(config.input[0].data_type, DataType::Bytes);
    assert_eq!(config.max_batch_size(), ModelConfig::DEFAULT_MAX_BATCH_SIZE);
    let elements = vec![
        Bytes::from("héllo"),
        Bytes::new(),
        Bytes::from("x"),
        Bytes::from("0"),
    ];
    let input = InferInput::strings("INPUT0", vec![2, 2], elements.clone()).unwrap();
    let response = executor()
        .block_on(runtime.infer(request("strings", vec![input])))
        .unwrap();
    let output = &response.outputs[0];
    assert_eq!(
        (output.dtype, output.shape.as_slice()),
        (DataType::Bytes, &[2, 2][..])
    );
    assert_eq!(wire::split_bytes(raw(&response, 0)).unwrap(), elements);

    // A NUL byte cannot reach ONNX Runtime: refused, not truncated.
    let nul = InferInput::strings(
        "INPUT0",
        vec![1, 2],
        vec![Bytes::from("a\0b"), Bytes::new()],
    )
    .unwrap();
    let error = executor()
        .block_on(runtime.infer(request("strings", vec![nul])))
        .unwrap_err();
    assert!(
        matches!(&error, ServeError::InvalidRequest(m) if m.contains("NUL")),
        "{error}"
    );
    runtime.shutdown();
}

#[test]
fn a_bytes_input_the_graph_lacks_is_an_image_input_only_with_preprocessing() {
    let repository = tempfile::tempdir().unwrap();
    onnx::identity(
        &repository.path().join("m/1/model.onnx"),
        Elem::Float,
        &[-1, 4],
    );
    write_config(
        repository.path(),
        "m",
        r#"input { name: "text" data_type: TYPE_STRING dims: [ 1 ] }"#,
    );
    let runtime = start(repository.path(), ModelControlMode::None);
    let index = runtime.repository_index().unwrap();
    assert!(
        index[0]
            .reason
            .contains("BYTES input 'text' is not an input of the model")
            && index[0].reason.contains("preprocess.*"),
        "{:?}",
        index[0]
    );
    runtime.shutdown();
}

/// A model configured for a GPU is not quietly run on the CPU: it fails its load with
/// the reason, the other models serving; KIND_AUTO runs on the CPU.
#[test]
fn a_gpu_instance_group_fails_the_load_with_its_reason() {
    let repository = tempfile::tempdir().unwrap();
    for (model, kind) in [("gpu", "KIND_GPU"), ("auto", "KIND_AUTO")] {
        onnx::identity(
            &repository.path().join(model).join("1/model.onnx"),
            Elem::Float,
            &[-1, 4],
        );
        write_config(
            repository.path(),
            model,
            &format!("instance_group {{ count: 1 kind: {kind} }}"),
        );
    }
    let runtime = start(repository.path(), ModelControlMode::None);
    let index = runtime.repository_index().unwrap();
    let entry = |name: &str| index.iter().find(|e| e.name == name).unwrap();
    assert_eq!(entry("gpu").state, "UNAVAILABLE");
    assert!(
        entry("gpu")
            .reason
            .contains("instance_group[0] asks for KIND_GPU")
            && entry("gpu").reason.contains("CPU only"),
        "{:?}",
        entry("gpu")
    );
    assert_eq!(entry("auto").state, "READY", "{:?}", entry("auto"));
    let input = f32_input("INPUT0", vec![1, 4], &[1.0, 2.0, 3.0, 4.0]);
    let response = executor()
        .block_on(runtime.infer(request("auto", vec![input])))
        .unwrap();
    assert_eq!(f32s(raw(&response, 0)), [1.0, 2.0, 3.0, 4.0]);
    runtime.shutdown();
}

#[test]
fn reshape_maps_the_configured_shapes_to_the_model_and_back() {
    let repository = tempfile::tempdir().unwrap();
    onnx::identity(
        &repository.path().join("m/1/model.onnx"),
        Elem::Float,
        &[1, 4],
    );
    write_config(
        repository.path(),
        "m",
        r#"
        max_batch_size: 0
        input { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] reshape { shape: [ 1, 4 ] } }
        output { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 2, 2 ] reshape { shape: [ 1, 4 ] } }
        "#,
    );
    let runtime = start(repository.path(), ModelControlMode::None);
    let values = [1.0, 2.0, 3.0, 4.0];
    let response = executor()
        .block_on(runtime.infer(request("m", vec![f32_input("INPUT0", vec![4], &values)])))
        .unwrap();
    assert_eq!(response.outputs[0].shape, [2, 2]);
    assert_eq!(f32s(raw(&response, 0)), values);
    let metadata = runtime.model_metadata("m", None).unwrap();
    assert_eq!(metadata.inputs[0].shape, [4]);
    assert_eq!(metadata.outputs[0].shape, [2, 2]);
    runtime.shutdown();
}

/// Two FP32 identity steps of shape [-1, 4], and an ensemble `chain` running them in a
/// row: `IN` → `first` → `middle` → `second` → `OUT`.
fn chain_repository(repository: &Path) {
    for step in ["first", "second"] {
        onnx::identity(
            &repository.join(step).join("1/model.onnx"),
            Elem::Float,
            &[-1, 4],
        );
    }
    std::fs::create_dir_all(repository.join("chain/1")).unwrap();
    write_config(repository, "chain", CHAIN);
}

const CHAIN: &str = r#"
    platform: "ensemble"
    max_batch_size: 2
    input { name: "IN" data_type: TYPE_FP32 dims: [ 4 ] }
    output { name: "OUT" data_type: TYPE_FP32 dims: [ 4 ] }
    ensemble_scheduling {
      step { model_name: "second" model_version: -1
             input_map { key: "INPUT0" value: "middle" } output_map { key: "OUTPUT0" value: "OUT" } }
      step { model_name: "first" model_version: 1
             input_map { key: "INPUT0" value: "IN" } output_map { key: "OUTPUT0" value: "middle" } }
    }
"#;

#[test]
fn an_ensemble_runs_its_steps_and_is_not_ready_without_them() {
    let repository = tempfile::tempdir().unwrap();
    chain_repository(repository.path());
    let runtime = start(repository.path(), ModelControlMode::Explicit);
    let tokio = executor();
    // Loading the ensemble loads its steps.
    tokio.block_on(runtime.load_model("chain")).unwrap();
    assert!(runtime.model_ready("first", None) && runtime.model_ready("second", None));
    assert!(runtime.model_ready("chain", None));
    let values = [0.5, -1.0, 2.0, 8.0, 1.0, 2.0, 3.0, 4.0];
    let response = tokio
        .block_on(runtime.infer(request("chain", vec![f32_input("IN", vec![2, 4], &values)])))
        .unwrap();
    assert_eq!((response.model.as_str(), response.version), ("chain", 1));
    assert_eq!(response.outputs[0].name, "OUT");
    assert_eq!(response.outputs[0].shape, [2, 4]);
    assert_eq!(f32s(raw(&response, 0)), values);
    let statistics = runtime.statistics(None, None).unwrap();
    for model in ["chain", "first", "second"] {
        let stats = statistics.iter().find(|s| s.name == model).unwrap();
        assert_eq!(stats.inference_count, 2, "{model}");
    }
    assert_eq!(
        runtime.model_metadata("chain", None).unwrap().platform,
        "ensemble"
    );

    // A step unloaded: the ensemble stays loaded but is not ready, and says why.
    tokio.block_on(runtime.unload_model("first")).unwrap();
    let why = runtime.model_readiness("chain", None).unwrap_err();
    assert!(
        matches!(&why, ServeError::StepUnavailable { reason, .. } if reason.contains("'first'")),
        "{why}"
    );
    let refused = tokio
        .block_on(runtime.infer(request(
            "chain",
            vec![f32_input("IN", vec![1, 4], &values[..4])],
        )))
        .unwrap_err();
    assert!(
        matches!(refused, ServeError::StepUnavailable { .. }),
        "{refused}"
    );
    let chain = runtime.repository_index().unwrap();
    let chain = chain.iter().find(|e| e.name == "chain").unwrap();
    assert_eq!(chain.state, "UNAVAILABLE");
    // Back again: ready, and serving.
    tokio.block_on(runtime.load_model("first")).unwrap();
    assert!(runtime.model_ready("chain", None));
    tokio
        .block_on(runtime.infer(request(
            "chain",
            vec![f32_input("IN", vec![1, 4], &values[..4])],
        )))
        .unwrap();
    runtime.shutdown();
}

#[test]
fn ensembles_are_refused_at_load_when_their_steps_cannot_run() {
    let repository = tempfile::tempdir().unwrap();
    chain_repository(repository.path());
    // Two ensembles running each other.
    for (name, other) in [("ping", "pong"), ("pong", "ping")] {
        std::fs::create_dir_all(repository.path().join(name).join("1")).unwrap();
        write_config(
            repository.path(),
            name,
            &format!(
                r#"
                platform: "ensemble"
                input {{ name: "IN" data_type: TYPE_FP32 dims: [ 4 ] }}
                output {{ name: "OUT" data_type: TYPE_FP32 dims: [ 4 ] }}
                ensemble_scheduling {{ step {{ model_name: "{other}"
                  input_map {{ key: "IN" value: "IN" }} output_map {{ key: "OUT" value: "OUT" }} }} }}
                "#
            ),
        );
    }
    let runtime = start(repository.path(), ModelControlMode::Explicit);
    let tokio = executor();
    let error = tokio
        .block_on(runtime.load_model("ping"))
        .unwrap_err()
        .to_string();
    assert!(error.contains("cycle: ping -> pong -> ping"), "{error}");
    assert!(!runtime.model_ready("ping", None) && !runtime.model_ready("pong", None));

    let load = |config: &str| {
        let config = ModelConfig::parse(config, Path::new("override")).unwrap();
        let parameters = LoadParameters {
            config: Some(config),
            files: Vec::new(),
        };
        tokio
            .block_on(runtime.load_model_with("chain", parameters))
            .unwrap_err()
            .to_string()
    };
    let unknown = load(&CHAIN.replace("\"second\"", "\"third\""));
    assert!(
        unknown.contains("ensemble_scheduling.step[0] (model 'third'): no model 'third'"),
        "{unknown}"
    );
    let no_version = load(&CHAIN.replace("model_version: 1", "model_version: 7"));
    assert!(no_version.contains("version 7"), "{no_version}");
    let wrong_type = load(&CHAIN.replace(
        "name: \"IN\" data_type: TYPE_FP32",
        "name: \"IN\" data_type: TYPE_FP16",
    ));
    assert!(
        wrong_type.contains("is TYPE_FP16, but input 'INPUT0' of model 'first' is TYPE_FP32"),
        "{wrong_type}"
    );
    let wrong_shape = load(&CHAIN.replace(
        "name: \"OUT\" data_type: TYPE_FP32 dims: [ 4 ]",
        "name: \"OUT\" data_type: TYPE_FP32 dims: [ 5 ]",
    ));
    assert!(
        wrong_shape.contains("output[0]: tensor 'OUT' has shape [-1, 4]"),
        "{wrong_shape}"
    );
    // None of these changed what is served: the ensemble loads as it is.
    tokio.block_on(runtime.load_model("chain")).unwrap();
    assert!(runtime.model_ready("chain", None));
    runtime.shutdown();
}

#[test]
fn a_config_override_holds_until_the_model_is_unloaded() {
    let repository = tempfile::tempdir().unwrap();
    for version in ["1", "2"] {
        onnx::identity(
            &repository.path().join("m").join(version).join("model.onnx"),
            Elem::Float,
            &[-1, 4],
        );
    }
    let runtime = start(repository.path(), ModelControlMode::Explicit);
    let tokio = executor();
    let first_only = ModelConfig::from_json(
        r#"{"version_policy": {"specific": {"versions": [1]}}}"#,
        Path::new("override"),
    )
    .unwrap();
    let parameters = LoadParameters {
        config: Some(first_only),
        files: Vec::new(),
    };
    tokio
        .block_on(runtime.load_model_with("m", parameters))
        .unwrap();
    assert!(runtime.model_ready("m", Some(1)) && !runtime.model_ready("m", Some(2)));
    tokio.block_on(runtime.load_model("m")).unwrap();
    assert!(!runtime.model_ready("m", Some(2)), "the override holds");
    tokio.block_on(runtime.unload_model("m")).unwrap();
    tokio.block_on(runtime.load_model("m")).unwrap();
    assert!(runtime.model_ready("m", Some(2)) && !runtime.model_ready("m", Some(1)));
    runtime.shutdown();
}
