//! The gRPC front end over a real socket: a server started with `TestServer` on the
//! bundled repository, called with the generated client as tritonclient and
//! perf_analyzer call Triton. Numbers are checked against the reference top-5 of
//! tests/data/images/expected.json (computed independently with onnxruntime in Python).

use std::collections::HashMap;
use std::sync::OnceLock;

use ferroserve_runtime::ModelControlMode;
use ferroserve_server::grpc;
use ferroserve_server::grpc::proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use ferroserve_server::grpc::proto::infer_parameter::ParameterChoice;
use ferroserve_server::grpc::proto::model_infer_request::{
    InferInputTensor, InferRequestedOutputTensor,
};
use ferroserve_server::grpc::proto::model_version_policy::PolicyChoice;
use ferroserve_server::grpc::proto::*;
use tonic::transport::Channel;
use tonic::Code;

mod support;
use support::{assert_matches_reference, f32s, reference, TempRepository, TestServer, MODEL};

const IMAGES: [&str; 4] = ["cat.jpg", "coffee.jpg", "astronaut.png", "motorcycle.jpg"];

type Client = GrpcInferenceServiceClient<Channel>;

/// The server most tests share: the bundled repository with every model loaded.
fn shared() -> &'static TestServer {
    static SHARED: OnceLock<TestServer> = OnceLock::new();
    SHARED.get_or_init(TestServer::bundled)
}

async fn connect(server: &TestServer) -> Client {
    GrpcInferenceServiceClient::connect(server.grpc_url())
        .await
        .unwrap()
        .max_decoding_message_size(grpc::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(grpc::MAX_MESSAGE_BYTES)
}

async fn client() -> Client {
    connect(shared()).await
}

/// The preprocessed reference input of one image: 3x224x224 little-endian FP32.
fn reference_input(image: &str) -> Vec<u8> {
    reference().input(image)
}

fn image_input(shape: &[i64]) -> InferInputTensor {
    InferInputTensor {
        name: "input".into(),
        datatype: "FP32".into(),
        shape: shape.to_vec(),
        ..Default::default()
    }
}

/// A request for `images` as one batch, its data in `raw_input_contents`.
fn raw_request(images: &[&str]) -> ModelInferRequest {
    let data: Vec<u8> = images.iter().flat_map(|i| reference_input(i)).collect();
    ModelInferRequest {
        model_name: MODEL.into(),
        inputs: vec![image_input(&[images.len() as i64, 3, 224, 224])],
        raw_input_contents: vec![data.into()],
        ..Default::default()
    }
}

fn int64_parameter(value: i64) -> InferParameter {
    InferParameter {
        parameter_choice: Some(ParameterChoice::Int64Param(value)),
    }
}

/// `BYTES` elements of a raw tensor: each a 4-byte little-endian length, then the bytes.
fn strings(raw: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = raw;
    while !rest.is_empty() {
        let length = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
        out.push(String::from_utf8(rest[4..4 + length].to_vec()).unwrap());
        rest = &rest[4 + length..];
    }
    out
}

/// Sends `request` and returns the error's code and message; it must fail.
async fn refused(client: &mut Client, request: ModelInferRequest) -> (Code, String) {
    let status = client
        .model_infer(request)
        .await
        .expect_err("the request must be refused");
    (status.code(), status.message().to_string())
}

#[tokio::test]
async fn server_is_live_and_ready() {
    let mut client = client().await;
    let live = client.server_live(ServerLiveRequest {}).await.unwrap();
    assert!(live.into_inner().live);
    let ready = client.server_ready(ServerReadyRequest {}).await.unwrap();
    assert!(ready.into_inner().ready);

    let ready = |name: &str, version: &str| ModelReadyRequest {
        name: name.into(),
        version: version.into(),
    };
    let model = client.model_ready(ready(MODEL, "")).await.unwrap();
    assert!(model.into_inner().ready);
    let model = client.model_ready(ready(MODEL, "1")).await.unwrap();
    assert!(model.into_inner().ready);
    let missing = client.model_ready(ready(MODEL, "7")).await.unwrap();
    assert!(!missing.into_inner().ready);
    let unknown = client
        .model_ready(ready("no-such-model", ""))
        .await
        .unwrap();
    assert!(!unknown.into_inner().ready);
    let bad = client
        .model_ready(ready(MODEL, "latest"))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn server_metadata_names_ferroserve_and_its_extensions() {
    let mut client = client().await;
    let metadata = client
        .server_metadata(ServerMetadataRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(metadata.name, "ferroserve");
    assert!(!metadata.version.is_empty());
    for extension in ["classification", "model_repository", "statistics"] {
        assert!(
            metadata.extensions.iter().any(|e| e == extension),
            "extension {extension} in {:?}",
            metadata.extensions
        );
    }
}

#[tokio::test]
async fn model_metadata_gives_inputs_and_outputs_with_the_batch_dimension() {
    let mut client = client().await;
    let metadata = client
        .model_metadata(ModelMetadataRequest {
            name: MODEL.into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(metadata.name, MODEL);
    assert_eq!(metadata.versions, ["1"]);
    assert_eq!(metadata.platform, "onnxruntime_onnx");
    assert_eq!(metadata.inputs.len(), 1);
    assert_eq!(metadata.inputs[0].name, "input");
    assert_eq!(metadata.inputs[0].datatype, "FP32");
    assert_eq!(metadata.inputs[0].shape, [-1, 3, 224, 224]);
    assert_eq!(metadata.outputs.len(), 1);
    assert_eq!(metadata.outputs[0].name, "logits");
    assert_eq!(metadata.outputs[0].datatype, "FP32");
    assert_eq!(metadata.outputs[0].shape, [-1, 1000]);

    let unknown = client
        .model_metadata(ModelMetadataRequest {
            name: "no-such-model".into(),
            version: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
}

#[tokio::test]
async fn model_config_reports_the_configuration() {
    let mut client = client().await;
    let config = client
        .model_config(ModelConfigRequest {
            name: MODEL.into(),
            version: "1".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .config
        .unwrap();
    assert_eq!(config.name, MODEL);
    assert_eq!(config.platform, "onnxruntime_onnx");
    assert_eq!(config.max_batch_size, 8);

    assert_eq!(config.input.len(), 1);
    let input = &config.input[0];
    assert_eq!(input.name, "input");
    assert_eq!(input.data_type(), DataType::TypeFp32);
    assert_eq!(input.format(), model_input::Format::Nchw);
    assert_eq!(input.dims, [3, 224, 224]);

    assert_eq!(config.output.len(), 1);
    let output = &config.output[0];
    assert_eq!(output.name, "logits");
    assert_eq!(output.data_type(), DataType::TypeFp32);
    assert_eq!(output.dims, [1000]);
    assert_eq!(output.label_filename, "labels.txt");

    assert_eq!(config.instance_group.len(), 1);
    assert_eq!(config.instance_group[0].count, 2);
    assert_eq!(
        config.instance_group[0].kind(),
        model_instance_group::Kind::Cpu
    );
    let policy = config.version_policy.unwrap().policy_choice.unwrap();
    assert!(matches!(policy, PolicyChoice::Latest(l) if l.num_versions == 1));
    let parameter = |key: &str| config.parameters[key].string_value.clone();
    assert_eq!(parameter("preprocess.crop"), "224");
    assert_eq!(parameter("preprocess.resize_short_side"), "256");
    assert_eq!(parameter("preprocess.color_order"), "RGB");
    assert!(config.response_cache.is_none());

    let unknown = client
        .model_config(ModelConfigRequest {
            name: "no-such-model".into(),
            version: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
}

#[tokio::test]
async fn raw_inputs_give_the_reference_top5() {
    let mut client = client().await;
    for image in IMAGES {
        let mut request = raw_request(&[image]);
        request.id = format!("raw-{image}");
        let response = client.model_infer(request).await.unwrap().into_inner();
        assert_eq!(response.model_name, MODEL);
        assert_eq!(response.model_version, "1");
        assert_eq!(response.id, format!("raw-{image}"));
        assert_eq!(response.outputs.len(), 1);
        assert_eq!(response.outputs[0].name, "logits");
        assert_eq!(response.outputs[0].datatype, "FP32");
        assert_eq!(response.outputs[0].shape, [1, 1000]);
        assert_eq!(response.raw_output_contents.len(), 1);
        assert_matches_reference(image, &f32s(&response.raw_output_contents[0]));
    }
}

#[tokio::test]
async fn typed_fp32_contents_give_the_reference_top5() {
    let mut client = client().await;
    let image = "coffee.jpg";
    let mut input = image_input(&[1, 3, 224, 224]);
    input.contents = Some(InferTensorContents {
        fp32_contents: f32s(&reference_input(image)),
        ..Default::default()
    });
    let request = ModelInferRequest {
        model_name: MODEL.into(),
        model_version: "1".into(),
        inputs: vec![input],
        ..Default::default()
    };
    let response = client.model_infer(request).await.unwrap().into_inner();
    assert_eq!(response.outputs[0].shape, [1, 1000]);
    assert_matches_reference(image, &f32s(&response.raw_output_contents[0]));
}

#[tokio::test]
async fn a_batch_of_two_gives_one_row_per_image() {
    let mut client = client().await;
    let batch = ["cat.jpg", "motorcycle.jpg"];
    let response = client
        .model_infer(raw_request(&batch))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.outputs[0].shape, [2, 1000]);
    let logits = f32s(&response.raw_output_contents[0]);
    for (row, image) in logits.chunks(1000).zip(batch) {
        assert_matches_reference(image, row);
    }
}

#[tokio::test]
async fn classification_returns_score_index_label_strings() {
    let mut client = client().await;
    let batch = ["cat.jpg", "coffee.jpg"];
    let mut request = raw_request(&batch);
    request.outputs = vec![InferRequestedOutputTensor {
        name: "logits".into(),
        parameters: HashMap::from([("classification".into(), int64_parameter(3))]),
    }];
    let response = client.model_infer(request).await.unwrap().into_inner();
    assert_eq!(response.outputs[0].name, "logits");
    assert_eq!(response.outputs[0].datatype, "BYTES");
    assert_eq!(response.outputs[0].shape, [2, 3]);
    let classes = strings(&response.raw_output_contents[0]);
    assert_eq!(classes.len(), 6);
    for (row, image) in classes.chunks(3).zip(batch) {
        for (class, expected) in row.iter().zip(reference().top5(image)) {
            let (index, label) = (expected.index, &expected.label);
            let mut parts = class.splitn(3, ':');
            let score: f32 = parts.next().unwrap().parse().unwrap();
            assert!(score.is_finite(), "{image}: score of '{class}'");
            assert_eq!(
                parts.next().unwrap(),
                index.to_string(),
                "{image}: '{class}'"
            );
            assert_eq!(parts.next().unwrap(), label, "{image}: '{class}'");
        }
    }
}

#[tokio::test]
async fn the_timeout_parameter_is_accepted() {
    let mut client = client().await;
    let mut request = raw_request(&["cat.jpg"]);
    request.parameters = HashMap::from([("timeout".into(), int64_parameter(30_000_000))]);
    let response = client.model_infer(request).await.unwrap().into_inner();
    assert_matches_reference("cat.jpg", &f32s(&response.raw_output_contents[0]));

    let mut request = raw_request(&["cat.jpg"]);
    request.parameters = HashMap::from([("timeout".into(), int64_parameter(i64::MAX))]);
    client.model_infer(request).await.unwrap();

    let mut request = raw_request(&["cat.jpg"]);
    request.parameters = HashMap::from([("timeout".into(), int64_parameter(-1))]);
    assert_eq!(refused(&mut client, request).await.0, Code::InvalidArgument);
}

#[tokio::test]
async fn statistics_count_requests() {
    let mut client = client().await;
    let request = || ModelStatisticsRequest {
        name: MODEL.into(),
        version: String::new(),
    };
    let before = client
        .model_statistics(request())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(before.model_stats.len(), 1);
    let before = &before.model_stats[0];
    assert_eq!(before.name, MODEL);
    assert_eq!(before.version, "1");

    client
        .model_infer(raw_request(&["cat.jpg", "coffee.jpg"]))
        .await
        .unwrap();

    let after = client
        .model_statistics(request())
        .await
        .unwrap()
        .into_inner();
    let after = &after.model_stats[0];
    let success = |s: &ModelStatistics| s.inference_stats.unwrap().success.unwrap();
    // Requests are counted before they are answered. Executions (`execution_count`,
    // `batch_stats`) are counted by the model's worker after it has answered, so they
    // may not include this request yet.
    assert!(after.inference_count >= before.inference_count + 2);
    assert!(success(after).count > success(before).count);
    assert!(success(after).ns > success(before).ns);
    assert!(after.last_inference > 0);
    assert!(after.execution_count >= before.execution_count);

    let all = client
        .model_statistics(ModelStatisticsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(all.model_stats.iter().any(|s| s.name == MODEL));
    let unknown = client
        .model_statistics(ModelStatisticsRequest {
            name: "no-such-model".into(),
            version: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
}

#[tokio::test]
async fn stream_infer_answers_every_request_errors_included() {
    let mut client = client().await;
    let mut requests = Vec::new();
    for image in ["cat.jpg", "coffee.jpg"] {
        let mut request = raw_request(&[image]);
        request.id = image.into();
        requests.push(request);
    }
    requests.push(ModelInferRequest {
        model_name: "no-such-model".into(),
        id: "unknown".into(),
        ..Default::default()
    });
    let mut responses = client
        .model_stream_infer(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    let mut answers = HashMap::new();
    while let Some(response) = responses.message().await.unwrap() {
        let infer = response.infer_response.unwrap();
        answers.insert(infer.id.clone(), (response.error_message, infer));
    }
    assert_eq!(answers.len(), 3);
    for image in ["cat.jpg", "coffee.jpg"] {
        let (error, response) = &answers[image];
        assert_eq!(error, "");
        assert_matches_reference(image, &f32s(&response.raw_output_contents[0]));
    }
    let (error, response) = &answers["unknown"];
    assert!(error.contains("no-such-model"), "{error}");
    assert_eq!(response.model_name, "no-such-model");
}

#[tokio::test]
async fn bad_requests_are_refused_and_good_ones_still_served() {
    let mut client = client().await;
    let not_found = ModelInferRequest {
        model_name: "no-such-model".into(),
        ..raw_request(&["cat.jpg"])
    };
    assert_eq!(refused(&mut client, not_found).await.0, Code::NotFound);

    let mut missing_version = raw_request(&["cat.jpg"]);
    missing_version.model_version = "7".into();
    assert_eq!(
        refused(&mut client, missing_version).await.0,
        Code::NotFound
    );

    let mut unknown_input = raw_request(&["cat.jpg"]);
    unknown_input.inputs[0].name = "pixels".into();
    let (code, message) = refused(&mut client, unknown_input).await;
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("pixels"), "{message}");

    let mut wrong_datatype = raw_request(&["cat.jpg"]);
    wrong_datatype.inputs[0].datatype = "INT32".into();
    let (code, message) = refused(&mut client, wrong_datatype).await;
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("FP32"), "{message}");

    let mut unknown_datatype = raw_request(&["cat.jpg"]);
    unknown_datatype.inputs[0].datatype = "FLOAT".into();
    assert_eq!(
        refused(&mut client, unknown_datatype).await.0,
        Code::InvalidArgument
    );

    let mut wrong_shape = raw_request(&["cat.jpg"]);
    wrong_shape.inputs[0].shape = vec![1, 224, 224, 3];
    let (code, message) = refused(&mut client, wrong_shape).await;
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("shape"), "{message}");

    let mut negative_dimension = raw_request(&["cat.jpg"]);
    negative_dimension.inputs[0].shape = vec![-1, 3, 224, 224];
    assert_eq!(
        refused(&mut client, negative_dimension).await.0,
        Code::InvalidArgument
    );

    let mut overflowing_shape = raw_request(&["cat.jpg"]);
    overflowing_shape.inputs[0].shape = vec![i64::MAX, i64::MAX, 224, 224];
    assert_eq!(
        refused(&mut client, overflowing_shape).await.0,
        Code::InvalidArgument
    );

    let mut too_large_batch = raw_request(&["cat.jpg"]);
    too_large_batch.inputs[0].shape = vec![1 << 40, 3, 224, 224];
    assert_eq!(
        refused(&mut client, too_large_batch).await.0,
        Code::InvalidArgument
    );

    let mut short_raw = raw_request(&["cat.jpg"]);
    short_raw.raw_input_contents[0].truncate(1000);
    let (code, message) = refused(&mut client, short_raw).await;
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("bytes"), "{message}");

    let mut extra_raw = raw_request(&["cat.jpg"]);
    extra_raw.raw_input_contents.push(vec![0u8; 4].into());
    assert_eq!(
        refused(&mut client, extra_raw).await.0,
        Code::InvalidArgument
    );

    let mut mixed = raw_request(&["cat.jpg"]);
    mixed.inputs[0].contents = Some(InferTensorContents {
        fp32_contents: vec![0.0; 3 * 224 * 224],
        ..Default::default()
    });
    let (code, message) = refused(&mut client, mixed).await;
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("raw_input_contents"), "{message}");

    let no_data = ModelInferRequest {
        model_name: MODEL.into(),
        inputs: vec![image_input(&[1, 3, 224, 224])],
        ..Default::default()
    };
    assert_eq!(refused(&mut client, no_data).await.0, Code::InvalidArgument);

    let typed = |datatype: &str, contents: InferTensorContents| ModelInferRequest {
        model_name: MODEL.into(),
        inputs: vec![InferInputTensor {
            datatype: datatype.into(),
            contents: Some(contents),
            ..image_input(&[1, 2])
        }],
        ..Default::default()
    };
    let out_of_range = typed(
        "UINT8",
        InferTensorContents {
            uint_contents: vec![7, 300],
            ..Default::default()
        },
    );
    let (code, message) = refused(&mut client, out_of_range).await;
    assert_eq!(code, Code::InvalidArgument);
    assert!(
        message.contains("300") && message.contains("UINT8"),
        "{message}"
    );

    let wrong_field = typed(
        "INT32",
        InferTensorContents {
            fp32_contents: vec![1.0, 2.0],
            ..Default::default()
        },
    );
    let (code, message) = refused(&mut client, wrong_field).await;
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("int_contents"), "{message}");

    let mut too_few_values = raw_request(&["cat.jpg"]);
    too_few_values.raw_input_contents.clear();
    too_few_values.inputs[0].contents = Some(InferTensorContents {
        fp32_contents: vec![0.5; 10],
        ..Default::default()
    });
    assert_eq!(
        refused(&mut client, too_few_values).await.0,
        Code::InvalidArgument
    );

    let fp16 = typed("FP16", InferTensorContents::default());
    assert_eq!(refused(&mut client, fp16).await.0, Code::InvalidArgument);

    let truncated_bytes = ModelInferRequest {
        model_name: MODEL.into(),
        inputs: vec![InferInputTensor {
            datatype: "BYTES".into(),
            ..image_input(&[1])
        }],
        raw_input_contents: vec![vec![200, 0, 0, 0, 1, 2].into()],
        ..Default::default()
    };
    assert_eq!(
        refused(&mut client, truncated_bytes).await.0,
        Code::InvalidArgument
    );

    let mut unknown_output = raw_request(&["cat.jpg"]);
    unknown_output.outputs = vec![InferRequestedOutputTensor {
        name: "probabilities".into(),
        parameters: HashMap::new(),
    }];
    assert_eq!(
        refused(&mut client, unknown_output).await.0,
        Code::InvalidArgument
    );

    let mut negative_classification = raw_request(&["cat.jpg"]);
    negative_classification.outputs = vec![InferRequestedOutputTensor {
        name: "logits".into(),
        parameters: HashMap::from([("classification".into(), int64_parameter(-3))]),
    }];
    assert_eq!(
        refused(&mut client, negative_classification).await.0,
        Code::InvalidArgument
    );

    let mut bad_version = raw_request(&["cat.jpg"]);
    bad_version.model_version = "one".into();
    assert_eq!(
        refused(&mut client, bad_version).await.0,
        Code::InvalidArgument
    );

    let response = client
        .model_infer(raw_request(&["motorcycle.jpg"]))
        .await
        .expect("a good request after the bad ones")
        .into_inner();
    assert_matches_reference("motorcycle.jpg", &f32s(&response.raw_output_contents[0]));
}

#[tokio::test]
async fn repository_changes_need_explicit_mode() {
    let mut client = client().await;
    let index = client
        .repository_index(RepositoryIndexRequest::default())
        .await
        .unwrap()
        .into_inner();
    let entry = index.models.iter().find(|m| m.name == MODEL).unwrap();
    assert_eq!(
        (entry.version.as_str(), entry.state.as_str()),
        ("1", "READY")
    );
    let load = client
        .repository_model_load(RepositoryModelLoadRequest {
            model_name: MODEL.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(load.code(), Code::Unimplemented);
}

#[tokio::test]
async fn shared_memory_has_no_regions() {
    let mut client = client().await;
    let status = client
        .system_shared_memory_status(SystemSharedMemoryStatusRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(status.regions.is_empty());
    let status = client
        .cuda_shared_memory_status(CudaSharedMemoryStatusRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(status.regions.is_empty());
    client
        .system_shared_memory_unregister(SystemSharedMemoryUnregisterRequest::default())
        .await
        .unwrap();
    let register = client
        .system_shared_memory_register(SystemSharedMemoryRegisterRequest {
            name: "input".into(),
            key: "/input".into(),
            offset: 0,
            byte_size: 602_112,
        })
        .await
        .unwrap_err();
    assert_eq!(register.code(), Code::Unimplemented);
    let trace = client
        .trace_setting(TraceSettingRequest::default())
        .await
        .unwrap_err();
    assert_eq!(trace.code(), Code::Unimplemented);
}

async fn model_ready(client: &mut Client) -> bool {
    let request = ModelReadyRequest {
        name: MODEL.into(),
        version: String::new(),
    };
    client
        .model_ready(request)
        .await
        .unwrap()
        .into_inner()
        .ready
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repository_load_and_unload_in_explicit_mode() {
    let repository = TempRepository::with_bundled(&[MODEL]);

    let server = TestServer::start(repository.config(ModelControlMode::Explicit));
    let mut client = connect(&server).await;
    let index = |ready_only: bool| RepositoryIndexRequest {
        repository_name: String::new(),
        ready: ready_only,
    };

    assert!(!model_ready(&mut client).await);
    let listed = client
        .repository_index(index(false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.models.len(), 1);
    assert_eq!(listed.models[0].name, MODEL);
    assert_ne!(listed.models[0].state, "READY");
    let ready_only = client
        .repository_index(index(true))
        .await
        .unwrap()
        .into_inner();
    assert!(ready_only.models.is_empty());
    let not_loaded = client
        .model_infer(raw_request(&["cat.jpg"]))
        .await
        .unwrap_err();
    assert_eq!(not_loaded.code(), Code::NotFound);

    let load = |name: &str| RepositoryModelLoadRequest {
        model_name: name.into(),
        ..Default::default()
    };
    client.repository_model_load(load(MODEL)).await.unwrap();
    assert!(model_ready(&mut client).await);
    let listed = client
        .repository_index(index(true))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.models.len(), 1);
    assert_eq!(
        (
            listed.models[0].version.as_str(),
            listed.models[0].state.as_str()
        ),
        ("1", "READY")
    );
    let response = client
        .model_infer(raw_request(&["cat.jpg"]))
        .await
        .unwrap()
        .into_inner();
    assert_matches_reference("cat.jpg", &f32s(&response.raw_output_contents[0]));

    let missing = client
        .repository_model_load(load("no-such-model"))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let escaping = client
        .repository_model_load(load("../models"))
        .await
        .unwrap_err();
    assert_eq!(escaping.code(), Code::InvalidArgument);
    // A configuration override that Triton's schema refuses fails the load; one sent
    // as bytes is not a configuration.
    let with_config = |choice| RepositoryModelLoadRequest {
        model_name: MODEL.into(),
        parameters: HashMap::from([(
            "config".into(),
            ModelRepositoryParameter {
                parameter_choice: Some(choice),
            },
        )]),
        ..Default::default()
    };
    let refused = client
        .repository_model_load(with_config(
            model_repository_parameter::ParameterChoice::StringParam(
                r#"{"max_batch_size": -1}"#.into(),
            ),
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("max_batch_size"), "{refused:?}");
    let as_bytes = client
        .repository_model_load(with_config(
            model_repository_parameter::ParameterChoice::BytesParam("{}".into()),
        ))
        .await
        .unwrap_err();
    assert_eq!(as_bytes.code(), Code::InvalidArgument);
    assert!(model_ready(&mut client).await, "still serving");

    client
        .repository_model_unload(RepositoryModelUnloadRequest {
            model_name: MODEL.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!model_ready(&mut client).await);
    let listed = client
        .repository_index(index(false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.models[0].state, "UNAVAILABLE");
    let unloaded = client
        .model_infer(raw_request(&["cat.jpg"]))
        .await
        .unwrap_err();
    assert_eq!(unloaded.code(), Code::Unavailable);
    assert!(!listed.models[0].reason.is_empty());
    let unknown = client
        .repository_model_unload(RepositoryModelUnloadRequest {
            model_name: "no-such-model".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
}

/// The same restriction rules as HTTP: a restricted method without its key is
/// UNAUTHENTICATED; with it (or as a Bearer token) it is served; health stays open.
#[tokio::test(flavor = "multi_thread")]
async fn restricted_methods_need_their_key() {
    let mut config = support::config(support::bundled_models(), ModelControlMode::Explicit);
    config.runtime.startup_models = vec![MODEL.into()];
    config.access = ferroserve_server::access::AccessRules::new(
        vec!["inference:x-api-key=k1".parse().unwrap()],
        vec![],
    )
    .unwrap();
    let server = TestServer::start(config);
    let mut client = connect(&server).await;
    let live = client.server_live(ServerLiveRequest {}).await.unwrap();
    assert!(live.into_inner().live);
    let refused = client
        .model_infer(raw_request(&["cat.jpg"]))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    assert!(refused.message().contains("x-api-key"), "{refused:?}");
    for (key, value) in [("x-api-key", "k1"), ("authorization", "Bearer k1")] {
        let mut request = tonic::Request::new(raw_request(&["cat.jpg"]));
        request.metadata_mut().insert(key, value.parse().unwrap());
        let response = client.model_infer(request).await.unwrap().into_inner();
        assert_matches_reference("cat.jpg", &f32s(&response.raw_output_contents[0]));
    }
}

/// A message over the limit is RESOURCE_EXHAUSTED, as gRPC specifies.
#[tokio::test(flavor = "multi_thread")]
async fn an_over_size_message_is_resource_exhausted() {
    let mut config = support::config(support::bundled_models(), ModelControlMode::Explicit);
    config.runtime.startup_models = vec![MODEL.into()];
    config.grpc_max_message_bytes = 64 * 1024;
    let server = TestServer::start(config);
    let mut client = connect(&server).await;
    let refused = client
        .model_infer(raw_request(&["cat.jpg"]))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    let ready = client
        .server_ready(ServerReadyRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(ready.ready);
}

/// A server on the bundled tensor model with `change` applied to its configuration.
fn server_with(change: impl FnOnce(&mut ferroserve_server::ServeConfig)) -> TestServer {
    let mut config = support::config(support::bundled_models(), ModelControlMode::Explicit);
    config.runtime.startup_models = vec![MODEL.into()];
    change(&mut config);
    TestServer::start(config)
}

/// Reads what the server sends on a raw connection for up to `wait`; true if the server
/// closed it (end of stream or a reset) within that time.
async fn closed_within(stream: &mut tokio::net::TcpStream, wait: std::time::Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut sink = [0u8; 1024];
    let reading = async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(wait, reading).await.is_ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_without_the_http2_preface_in_time_is_closed() {
    use tokio::io::AsyncWriteExt;
    let server = server_with(|config| {
        config.connections.header_timeout = std::time::Duration::from_secs(1);
    });
    let address = server.grpc_url().trim_start_matches("http://").to_string();
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let mut silent = tokio::net::TcpStream::connect(&address).await.unwrap();
    let mut slow = tokio::net::TcpStream::connect(&address).await.unwrap();
    slow.write_all(&preface[..10]).await.unwrap();
    let mut spoke = tokio::net::TcpStream::connect(&address).await.unwrap();
    spoke.write_all(preface).await.unwrap();
    let wait = std::time::Duration::from_secs(20);
    assert!(
        closed_within(&mut silent, wait).await,
        "a silent connection stays"
    );
    assert!(closed_within(&mut slow, wait).await, "a slow preface stays");
    // One that sent the preface in time is an HTTP/2 connection, idle but not cut.
    let short = std::time::Duration::from_secs(2);
    assert!(
        !closed_within(&mut spoke, short).await,
        "a whole preface was cut"
    );
    let mut client = connect(&server).await;
    client.server_live(ServerLiveRequest {}).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn at_the_cap_a_connection_with_no_call_in_flight_makes_room() {
    let server = server_with(|config| config.connections.max_connections = 2);
    let address = server.grpc_url().trim_start_matches("http://").to_string();
    // A stream kept open: a call in flight on its connection.
    let mut busy = connect(&server).await;
    let (requests, waiting) = tokio::sync::mpsc::channel(1);
    let mut answers = busy
        .model_stream_infer(tokio_stream::wrappers::ReceiverStream::new(waiting))
        .await
        .unwrap()
        .into_inner();
    requests.send(raw_request(&["cat.jpg"])).await.unwrap();
    assert!(answers.message().await.unwrap().is_some());
    // A connection that never speaks takes the second place; a newcomer is served, and
    // the silent one is closed for it.
    let mut silent = tokio::net::TcpStream::connect(&address).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let mut served = connect(&server).await;
    served.server_live(ServerLiveRequest {}).await.unwrap();
    let wait = std::time::Duration::from_secs(5);
    assert!(
        closed_within(&mut silent, wait).await,
        "the silent connection stays"
    );
    // With the busy stream and an idle served client at the cap, the idle one makes room.
    let mut newcomer = connect(&server).await;
    newcomer.server_live(ServerLiveRequest {}).await.unwrap();
    // The stream was left alone: it still answers.
    requests.send(raw_request(&["coffee.jpg"])).await.unwrap();
    let answer = answers.message().await.unwrap().expect("an answer");
    assert_eq!(answer.error_message, "");
    assert_matches_reference(
        "coffee.jpg",
        &f32s(&answer.infer_response.unwrap().raw_output_contents[0]),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_http_and_grpc_ports_share_one_cap() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = server_with(|config| config.connections.max_connections = 2);
    let grpc_address = server.grpc_url().trim_start_matches("http://").to_string();
    let http_address = server.url("").trim_start_matches("http://").to_string();
    // A silent gRPC connection, then an HTTP client kept alive, take the cap.
    let mut silent = tokio::net::TcpStream::connect(&grpc_address).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let mut http = tokio::net::TcpStream::connect(&http_address).await.unwrap();
    http.write_all(b"GET /v2 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = [0u8; 512];
    let read = http.read(&mut answer).await.unwrap();
    assert!(answer[..read].starts_with(b"HTTP/1.1 200"));
    // A gRPC newcomer is served: the room is made on the gRPC port by the silent one.
    let mut client = connect(&server).await;
    client.server_live(ServerLiveRequest {}).await.unwrap();
    let wait = std::time::Duration::from_secs(5);
    assert!(
        closed_within(&mut silent, wait).await,
        "the silent connection stays"
    );
    // An HTTP newcomer closes the older idle connection, the HTTP client's, and a gRPC
    // call that follows reconnects if its own was the one closed.
    let newcomer = reqwest::get(server.url("/v2")).await.unwrap();
    assert_eq!(newcomer.status(), reqwest::StatusCode::OK);
    assert!(
        closed_within(&mut http, wait).await,
        "the idle HTTP client stays"
    );
    client.server_live(ServerLiveRequest {}).await.unwrap();
}
