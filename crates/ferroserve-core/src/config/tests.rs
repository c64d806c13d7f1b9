use std::path::Path;

use serde_json::json;

use super::*;
use crate::config::error::Position;
use crate::preprocess::{ColorOrder, ImagePreprocessing, Layout, PixelType};

const FILE: &str = "models/resnet50/config.pbtxt";

fn parse(text: &str) -> ModelConfig {
    match ModelConfig::parse(text, Path::new(FILE)) {
        Ok(config) => config,
        Err(e) => panic!("config did not parse: {e}"),
    }
}

fn parse_err(text: &str) -> ConfigError {
    match ModelConfig::parse(text, Path::new(FILE)) {
        Ok(config) => panic!("expected an error, parsed {config:?}"),
        Err(e) => e,
    }
}

/// A valid input and output to build other configurations around.
const IO: &str = r#"
    input { name: "x" data_type: TYPE_FP32 dims: [ 3, 224, 224 ] }
    output { name: "y" data_type: TYPE_FP32 dims: [ 1000 ] }
"#;

const TRITON_EXAMPLE: &str = r#"
# ResNet-50 exported from PyTorch, as a Triton model configuration.
name: "resnet50"
platform: "onnxruntime_onnx"
max_batch_size: 16
version_policy: { latest: { num_versions: 2 } }
input [
  {
    name: "pixel_values"
    data_type: TYPE_FP32
    format: FORMAT_NCHW
    dims: [ 3, 224, 224 ]
    reshape: { shape: [ 1, 3, 224, 224 ] }
  }
]
output [
  {
    name: "probabilities"
    data_type: TYPE_FP32
    dims: [ 1000 ]
    label_filename: "imagenet_labels.txt"
  }
]
dynamic_batching {
  preferred_batch_size: [ 4, 8 ]
  max_queue_delay_microseconds: 100
  default_queue_policy {
    max_queue_size: 64
    default_timeout_microseconds: 5000000
    timeout_action: DELAY
    allow_timeout_override: true
  }
}
instance_group [
  { count: 2, kind: KIND_GPU, gpus: [ 0, 1 ] },
  { name: "cpu_fallback" count: 1 kind: KIND_CPU }
]
optimization { cuda { graphs: true } }  # not used by ferroserve
parameters: { key: "preprocess.crop" value: { string_value: "224" } }
parameters [
  { key: "preprocess.color_order", value: { string_value: "BGR" } },
  { key: "intra_op_thread_count" value { string_value: "4" } }
]
response_cache { enable: true }
model_warmup [ { name: "zeros" batch_size: 1 } ]
"#;

#[test]
fn parses_a_realistic_triton_configuration() {
    let config = parse(TRITON_EXAMPLE);
    assert_eq!(config.name, "resnet50");
    assert_eq!(config.platform, "onnxruntime_onnx");
    assert_eq!(config.max_batch_size, Some(16));
    assert_eq!(
        config.version_policy,
        Some(VersionPolicy::Latest { num_versions: 2 })
    );
    assert_eq!(
        config.input,
        vec![ModelInput {
            name: "pixel_values".into(),
            data_type: DataType::Fp32,
            format: InputFormat::Nchw,
            dims: vec![3, 224, 224],
            reshape: Some(Reshape {
                shape: vec![1, 3, 224, 224]
            }),
            optional: false,
        }]
    );
    assert_eq!(
        config.output,
        vec![ModelOutput {
            name: "probabilities".into(),
            data_type: DataType::Fp32,
            dims: vec![1000],
            reshape: None,
            label_filename: "imagenet_labels.txt".into(),
        }]
    );
    assert_eq!(
        config.dynamic_batching,
        Some(DynamicBatching {
            preferred_batch_size: vec![4, 8],
            max_queue_delay_microseconds: 100,
            default_queue_policy: Some(QueuePolicy {
                timeout_action: TimeoutAction::Delay,
                default_timeout_microseconds: 5_000_000,
                allow_timeout_override: true,
                max_queue_size: 64,
            }),
        })
    );
    assert_eq!(
        config.instance_group,
        vec![
            InstanceGroup {
                name: String::new(),
                kind: InstanceKind::Gpu,
                count: 2,
                gpus: vec![0, 1],
            },
            InstanceGroup {
                name: "cpu_fallback".into(),
                kind: InstanceKind::Cpu,
                count: 1,
                gpus: vec![],
            },
        ]
    );
    assert_eq!(config.parameter("preprocess.crop"), Some("224"));
    assert_eq!(config.parameter("preprocess.color_order"), Some("BGR"));
    assert_eq!(config.parameter("intra_op_thread_count"), Some("4"));
    assert_eq!(config.response_cache, Some(ResponseCache { enable: true }));
    assert_eq!(config.model_filename(), "model.onnx");
    assert_eq!(config.source.as_deref(), Some(Path::new(FILE)));
    assert_eq!(
        config.warnings,
        vec![
            "optimization.cuda.graphs: not used by ferroserve, ignored",
            "model_warmup.name: not used by ferroserve, ignored",
            "model_warmup.batch_size: not used by ferroserve, ignored",
        ]
    );
    assert_eq!(
        config.input_specs(),
        vec![TensorSpec {
            name: "pixel_values".into(),
            dtype: DataType::Fp32,
            shape: vec![-1, 3, 224, 224],
        }]
    );
}

#[test]
fn the_bundled_efficientnet_configuration_parses() {
    let file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/efficientnet-lite0/config.pbtxt");
    let config = match ModelConfig::load(&file) {
        Ok(config) => config,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(config.name, "efficientnet-lite0");
    assert_eq!(config.max_batch_size(), 8);
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    assert_eq!(config.instance_group[0].kind, InstanceKind::Cpu);
    assert_eq!(config.instance_group[0].count, 2);
    let pre = config.image_preprocessing().expect("valid").expect("some");
    assert_eq!(
        pre,
        ImagePreprocessing {
            resize_short_side: 256,
            crop_width: 224,
            crop_height: 224,
            mean: [127.0; 3],
            std: [128.0; 3],
            color_order: ColorOrder::Rgb,
            layout: Layout::Nchw,
            pixel_type: PixelType::F32,
            max_pixels: ImagePreprocessing::DEFAULT_MAX_PIXELS,
            jpeg_draft: false,
        }
    );
}

/// An invalid configuration, the field path its error must name, and the error kind.
type ErrorCase = (String, &'static str, fn(&ConfigError) -> bool);

#[test]
fn every_error_names_the_file_and_the_field() {
    let cases: Vec<ErrorCase> = vec![
        (
            format!("max_batch_size: \"8\" {IO}"),
            "max_batch_size",
            |e| matches!(e, ConfigError::WrongType { .. }),
        ),
        (format!("name: 7 {IO}"), "name", |e| {
            matches!(e, ConfigError::WrongType { .. })
        }),
        (
            format!("{IO} dynamic_batching: 5"),
            "dynamic_batching",
            |e| matches!(e, ConfigError::WrongType { .. }),
        ),
        (
            format!("{IO} response_cache {{ enable: \"yes\" }}"),
            "response_cache.enable",
            |e| matches!(e, ConfigError::WrongType { .. }),
        ),
        (
            "input { name: \"x\" data_type: TYPE_FLOAT dims: [1] }".into(),
            "input[0].data_type",
            |e| matches!(e, ConfigError::UnknownEnumValue { .. }),
        ),
        (
            "input { name: \"x\" data_type: \"TYPE_FP32\" dims: [1] }".into(),
            "input[0].data_type",
            |e| matches!(e, ConfigError::WrongType { .. }),
        ),
        (
            format!("{IO} instance_group {{ kind: KIND_TPU }}"),
            "instance_group[0].kind",
            |e| matches!(e, ConfigError::UnknownEnumValue { .. }),
        ),
        (
            "input { name: \"x\" data_type: TYPE_FP32 format: FORMAT_CHW dims: [3, 1, 1] }".into(),
            "input[0].format",
            |e| matches!(e, ConfigError::UnknownEnumValue { .. }),
        ),
        (
            format!("{IO} dynamic_batching {{ default_queue_policy {{ timeout_action: DROP }} }}"),
            "dynamic_batching.default_queue_policy.timeout_action",
            |e| matches!(e, ConfigError::UnknownEnumValue { .. }),
        ),
        (
            format!("platform: \"tensorrt_plan\" {IO}"),
            "platform",
            |e| matches!(e, ConfigError::Unsupported { .. }),
        ),
        (format!("backend: \"python\" {IO}"), "backend", |e| {
            matches!(e, ConfigError::Unsupported { .. })
        }),
        (
            "output { name: \"y\" data_type: TYPE_BF16 dims: [1] }".into(),
            "output[0].data_type",
            |e| matches!(e, ConfigError::Unsupported { .. }),
        ),
        (format!("max_batch_size: -1 {IO}"), "max_batch_size", |e| {
            matches!(e, ConfigError::OutOfRange { .. })
        }),
        (
            format!("{IO} instance_group [ {{ count: -2 kind: KIND_CPU }} ]"),
            "instance_group[0].count",
            |e| matches!(e, ConfigError::OutOfRange { .. }),
        ),
        (
            format!("{IO} instance_group [ {{ count: 1 }}, {{ count: 0 }} ]"),
            "instance_group[1].count",
            |e| matches!(e, ConfigError::OutOfRange { .. }),
        ),
        (
            "input { name: \"x\" data_type: TYPE_FP32 dims: [3, 0, 224] }".into(),
            "input[0].dims",
            |e| matches!(e, ConfigError::OutOfRange { .. }),
        ),
        (
            format!("{IO} output {{ name: \"z\" data_type: TYPE_FP32 dims: [-2] }}"),
            "output[1].dims",
            |e| matches!(e, ConfigError::OutOfRange { .. }),
        ),
        (
            format!("max_batch_size: 8 {IO} dynamic_batching {{ preferred_batch_size: [4, 16] }}"),
            "dynamic_batching.preferred_batch_size",
            |e| matches!(e, ConfigError::OutOfRange { .. }),
        ),
        (
            format!("{IO} dynamic_batching {{ preferred_batch_size: 0 }}"),
            "dynamic_batching.preferred_batch_size",
            |e| matches!(e, ConfigError::OutOfRange { .. }),
        ),
        (
            format!("{IO} version_policy {{ latest {{ num_versions: 0 }} }}"),
            "version_policy.latest.num_versions",
            |e| matches!(e, ConfigError::OutOfRange { .. }),
        ),
        (
            format!("{IO} version_policy {{ specific {{ versions: [1, -3] }} }}"),
            "version_policy.specific.versions",
            |e| matches!(e, ConfigError::OutOfRange { .. }),
        ),
        (
            format!("{IO} version_policy {{ specific {{ }} }}"),
            "version_policy.specific.versions",
            |e| matches!(e, ConfigError::Missing { .. }),
        ),
        (
            format!("max_batch_size: 1 max_batch_size: 2 {IO}"),
            "max_batch_size",
            |e| matches!(e, ConfigError::Repeated { .. }),
        ),
        (
            "input { name: \"x\" name: \"x2\" data_type: TYPE_FP32 dims: [1] }".into(),
            "input[0].name",
            |e| matches!(e, ConfigError::Repeated { .. }),
        ),
        (
            format!(
                "{IO} parameters {{ key: \"a\" value {{ string_value: \"1\" }} }} \
                 parameters {{ key: \"a\" value {{ string_value: \"2\" }} }}"
            ),
            "parameters.a",
            |e| matches!(e, ConfigError::Repeated { .. }),
        ),
        (
            "input { name: \"x\" dims: [1] }".into(),
            "input[0].data_type",
            |e| matches!(e, ConfigError::Missing { .. }),
        ),
        (
            "output { name: \"y\" data_type: TYPE_FP32 }".into(),
            "output[0].dims",
            |e| matches!(e, ConfigError::Missing { .. }),
        ),
        (
            "input { data_type: TYPE_FP32 dims: [1] }".into(),
            "input[0].name",
            |e| matches!(e, ConfigError::Missing { .. }),
        ),
        (
            format!("{IO} parameters {{ value {{ string_value: \"1\" }} }}"),
            "parameters.key",
            |e| matches!(e, ConfigError::Missing { .. }),
        ),
        (
            format!("{IO} input {{ name: \"x\" data_type: TYPE_UINT8 dims: [4] }}"),
            "input[1].name",
            |e| matches!(e, ConfigError::DuplicateName { .. }),
        ),
        (
            format!("{IO} output {{ name: \"y\" data_type: TYPE_FP32 dims: [4] }}"),
            "output[1].name",
            |e| matches!(e, ConfigError::DuplicateName { .. }),
        ),
        (
            format!("{IO} instance_group {{ kind: KIND_CPU gpus: [0] }}"),
            "instance_group[0].gpus",
            |e| matches!(e, ConfigError::Invalid { .. }),
        ),
        (
            format!("{IO} version_policy {{ all {{ }} latest {{ }} }}"),
            "version_policy",
            |e| matches!(e, ConfigError::Invalid { .. }),
        ),
        (
            "input { name: \"x\" data_type: TYPE_FP32 format: FORMAT_NCHW dims: [3, 224] }".into(),
            "input[0].dims",
            |e| matches!(e, ConfigError::Invalid { .. }),
        ),
        (
            format!(
                "{IO} parameters {{ key: \"preprocess.crop\" value {{ string_value: \"big\" }} }}"
            ),
            "parameters.preprocess.crop",
            |e| matches!(e, ConfigError::Invalid { .. }),
        ),
        (
            format!(
                "{IO} parameters {{ key: \"preprocess.size\" value {{ string_value: \"224\" }} }}"
            ),
            "parameters.preprocess.size",
            |e| matches!(e, ConfigError::Invalid { .. }),
        ),
    ];
    for (text, field, is_kind) in cases {
        let err = parse_err(&text);
        let message = err.to_string();
        assert!(is_kind(&err), "wrong kind for {field}: {err:?}");
        assert!(
            message.starts_with(&format!("{FILE}: {field}: ")),
            "message should name the file and `{field}`: {message}"
        );
    }
}

#[test]
fn syntax_errors_carry_file_line_and_column() {
    let err = parse_err("name: \"m\"\nmax_batch_size: 8x\n");
    assert!(matches!(err, ConfigError::Syntax { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.starts_with(&format!("{FILE}:2:17: ")), "{message}");
}

#[test]
fn preprocess_values_are_checked_when_parsing() {
    for (key, value) in [
        ("resize_short_side", "0"),
        ("resize_short_side", "-5"),
        ("crop", "224x"),
        ("crop", "0x10"),
        ("mean", "1,2"),
        ("mean", "1,2,nope"),
        ("std", "0"),
        ("std", "1,-1,1"),
        ("color_order", "RGBA"),
        ("max_pixels", "0"),
        ("jpeg_draft", "yes"),
    ] {
        let err = parse_err(&format!(
            "{IO} parameters {{ key: \"preprocess.{key}\" value {{ string_value: \"{value}\" }} }}"
        ));
        let message = err.to_string();
        assert!(
            message.contains(&format!("parameters.preprocess.{key}: expected"))
                && message.contains(&format!("found `{value}`")),
            "{message}"
        );
    }
}

#[test]
fn bools_accept_protobuf_spellings() {
    for (text, expected) in [
        ("True", true),
        ("t", true),
        ("1", true),
        ("f", false),
        ("0", false),
    ] {
        let config = parse(&format!("{IO} response_cache {{ enable: {text} }}"));
        assert_eq!(
            config.response_cache,
            Some(ResponseCache { enable: expected })
        );
    }
}

#[test]
fn defaults_when_fields_are_absent() {
    let config = parse(&format!(
        "{IO} instance_group {{ }} version_policy {{ latest {{ }} }}"
    ));
    assert_eq!(config.name, "");
    assert_eq!(config.max_batch_size, None);
    assert_eq!(config.max_batch_size(), 0);
    assert_eq!(config.instance_group[0].count, 1);
    assert_eq!(config.instance_group[0].kind, InstanceKind::Auto);
    assert_eq!(
        config.version_policy,
        Some(VersionPolicy::Latest { num_versions: 1 })
    );
    assert_eq!(config.input[0].format, InputFormat::None);
    assert!(config.warnings.is_empty());
}

#[test]
fn serialises_to_tritons_json_shape() {
    let config = parse(
        r#"
        name: "m" platform: "onnxruntime_onnx" max_batch_size: 8
        version_policy { specific { versions: [1, 3] } }
        input { name: "x" data_type: TYPE_UINT8 format: FORMAT_NHWC dims: [224, 224, 3] optional: true }
        output { name: "y" data_type: TYPE_FP32 dims: [-1, 1000] label_filename: "labels.txt" }
        dynamic_batching {
          preferred_batch_size: [4, 8] max_queue_delay_microseconds: 500
          default_queue_policy { max_queue_size: 10 }
        }
        instance_group { count: 2 kind: KIND_GPU gpus: [0] }
        default_model_filename: "resnet.onnx"
        parameters { key: "preprocess.crop" value { string_value: "224" } }
        response_cache { enable: true }
        "#,
    );
    let value = serde_json::to_value(&config).expect("serialises");
    assert_eq!(
        value,
        json!({
            "name": "m",
            "platform": "onnxruntime_onnx",
            "backend": "",
            "version_policy": { "specific": { "versions": [1, 3] } },
            "max_batch_size": 8,
            "input": [{
                "name": "x",
                "data_type": "TYPE_UINT8",
                "format": "FORMAT_NHWC",
                "dims": [224, 224, 3],
                "optional": true
            }],
            "output": [{
                "name": "y",
                "data_type": "TYPE_FP32",
                "dims": [-1, 1000],
                "label_filename": "labels.txt"
            }],
            "dynamic_batching": {
                "preferred_batch_size": [4, 8],
                "max_queue_delay_microseconds": 500,
                "default_queue_policy": {
                    "timeout_action": "REJECT",
                    "default_timeout_microseconds": 0,
                    "allow_timeout_override": false,
                    "max_queue_size": 10
                }
            },
            "instance_group": [{ "name": "", "kind": "KIND_GPU", "count": 2, "gpus": [0] }],
            "default_model_filename": "resnet.onnx",
            "parameters": { "preprocess.crop": { "string_value": "224" } },
            "response_cache": { "enable": true }
        })
    );

    // Keys come in the order of Triton's ModelConfig message.
    let text = serde_json::to_string(&config).expect("serialises");
    let order = [
        "\"name\"",
        "\"platform\"",
        "\"backend\"",
        "\"version_policy\"",
        "\"max_batch_size\"",
        "\"input\"",
        "\"output\"",
        "\"dynamic_batching\"",
        "\"instance_group\"",
        "\"default_model_filename\"",
        "\"parameters\"",
        "\"response_cache\"",
    ];
    let positions: Vec<_> = order.iter().map(|key| text.find(key)).collect();
    assert!(positions.iter().all(Option::is_some), "{text}");
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
}

#[test]
fn serialises_unset_messages_by_leaving_them_out() {
    let value = serde_json::to_value(ModelConfig::new("m")).expect("serialises");
    assert_eq!(
        value,
        json!({
            "name": "m",
            "platform": "",
            "backend": "",
            "max_batch_size": 0,
            "input": [],
            "output": [],
            "instance_group": [],
            "default_model_filename": "",
            "parameters": {}
        })
    );
    let policies = [
        (
            VersionPolicy::Latest { num_versions: 2 },
            json!({ "latest": { "num_versions": 2 } }),
        ),
        (VersionPolicy::All {}, json!({ "all": {} })),
    ];
    for (policy, expected) in policies {
        assert_eq!(serde_json::to_value(policy).expect("serialises"), expected);
    }
}

#[test]
fn version_policies_select_versions() {
    let found = [5, 1, 2];
    assert_eq!(VersionPolicy::default().select(&found), vec![5]);
    assert_eq!(
        VersionPolicy::Latest { num_versions: 2 }.select(&found),
        vec![2, 5]
    );
    assert_eq!(
        VersionPolicy::Latest { num_versions: 9 }.select(&found),
        vec![1, 2, 5]
    );
    assert_eq!(VersionPolicy::All {}.select(&found), vec![1, 2, 5]);
    assert_eq!(
        VersionPolicy::Specific {
            versions: vec![5, 1, 7]
        }
        .select(&found),
        vec![1, 5]
    );
    assert!(VersionPolicy::default().select(&[]).is_empty());
}

fn spec(name: &str, dtype: DataType, shape: &[i64]) -> TensorSpec {
    TensorSpec {
        name: name.into(),
        dtype,
        shape: shape.to_vec(),
    }
}

fn classifier_io() -> (Vec<TensorSpec>, Vec<TensorSpec>) {
    (
        vec![spec("input", DataType::Fp32, &[-1, 3, 224, 224])],
        vec![spec("logits", DataType::Fp32, &[-1, 1000])],
    )
}

#[test]
fn autocomplete_builds_a_config_from_the_model_alone() {
    let (inputs, outputs) = classifier_io();
    let mut config = ModelConfig::new("classifier");
    config.autocomplete(&inputs, &outputs).expect("completes");
    assert_eq!(
        config.max_batch_size,
        Some(ModelConfig::DEFAULT_MAX_BATCH_SIZE)
    );
    assert_eq!(config.dynamic_batching, Some(DynamicBatching::default()));
    assert_eq!(config.input[0].name, "input");
    assert_eq!(config.input[0].dims, vec![3, 224, 224]);
    assert_eq!(config.input[0].data_type, DataType::Fp32);
    assert_eq!(config.output[0].dims, vec![1000]);
    assert_eq!(config.input_specs(), inputs);
    assert_eq!(config.output_specs(), outputs);
    assert_eq!(config.image_input().map(|i| i.name.as_str()), Some("input"));
    assert_eq!(config.image_preprocessing().expect("valid"), None);

    // Completing again changes nothing.
    let before = config.clone();
    config.autocomplete(&inputs, &outputs).expect("completes");
    assert_eq!(config, before);
}

#[test]
fn autocomplete_keeps_the_batch_dimension_of_models_that_cannot_batch() {
    let mut config = ModelConfig::new("fixed");
    config
        .autocomplete(
            &[spec("input", DataType::Fp32, &[1, 3, 224, 224])],
            &[spec("logits", DataType::Fp32, &[1, 1000])],
        )
        .expect("completes");
    assert_eq!(config.max_batch_size, Some(0));
    assert_eq!(config.dynamic_batching, None);
    assert_eq!(config.input[0].dims, vec![1, 3, 224, 224]);

    // A tensor whose only dimension is the batch needs a reshape: without one, no
    // batching.
    let mut config = ModelConfig::new("scores");
    config
        .autocomplete(
            &[spec("input", DataType::Fp32, &[-1, 16])],
            &[spec("score", DataType::Fp32, &[-1])],
        )
        .expect("completes");
    assert_eq!(config.max_batch_size, Some(0));
    assert_eq!(config.output[0].dims, vec![-1]);

    // With one (Triton's example: `dims: [1]`, `reshape: { shape: [] }`), it batches.
    let mut config =
        parse(r#"output { name: "score" data_type: TYPE_FP32 dims: [1] reshape { shape: [] } }"#);
    config
        .autocomplete(
            &[spec("input", DataType::Fp32, &[-1, 16])],
            &[spec("score", DataType::Fp32, &[-1])],
        )
        .expect("completes");
    assert_eq!(
        config.max_batch_size,
        Some(ModelConfig::DEFAULT_MAX_BATCH_SIZE)
    );
    assert_eq!(config.output[0].dims, vec![1]);
    assert_eq!(config.output[0].model_dims(), &[] as &[i64]);
}

#[test]
fn a_reshape_lets_declared_dims_differ_from_the_model() {
    // The model takes one image with its batch dimension; clients send [3, 224, 224].
    let mut config = parse(
        r#"
        max_batch_size: 0
        input { name: "input" data_type: TYPE_FP32 dims: [3, 224, 224] reshape { shape: [1, 3, 224, 224] } }
        output { name: "logits" data_type: TYPE_FP32 dims: [1000] reshape { shape: [1, 1000] } }
        "#,
    );
    config
        .autocomplete(
            &[spec("input", DataType::Fp32, &[1, 3, 224, 224])],
            &[spec("logits", DataType::Fp32, &[1, 1000])],
        )
        .expect("completes");
    assert_eq!(config.input[0].dims, vec![3, 224, 224]);
    assert_eq!(config.input[0].model_dims(), &[1, 3, 224, 224]);
    assert_eq!(
        config.input_specs()[0].shape,
        vec![3, 224, 224],
        "requests carry the dims"
    );

    // Without the reshape the same dims do not fit the model.
    let mut plain = parse(
        r#"
        max_batch_size: 0
        input { name: "input" data_type: TYPE_FP32 dims: [3, 224, 224] }
        "#,
    );
    let error = plain
        .autocomplete(
            &[spec("input", DataType::Fp32, &[1, 3, 224, 224])],
            &[spec("logits", DataType::Fp32, &[1, 1000])],
        )
        .unwrap_err()
        .to_string();
    assert!(error.contains("input[0].dims"), "{error}");

    // A reshape that does not fit the model is named as such.
    let mut wrong = parse(
        r#"
        max_batch_size: 0
        input { name: "input" data_type: TYPE_FP32 dims: [3, 224, 224] reshape { shape: [3, 224, 224] } }
        "#,
    );
    let error = wrong
        .autocomplete(
            &[spec("input", DataType::Fp32, &[1, 3, 224, 224])],
            &[spec("logits", DataType::Fp32, &[1, 1000])],
        )
        .unwrap_err()
        .to_string();
    assert!(error.contains("input[0].reshape"), "{error}");
}

#[test]
fn a_reshape_must_hold_the_same_elements_as_the_dims() {
    let error = parse_err(
        r#"input { name: "x" data_type: TYPE_FP32 dims: [3, 224, 224] reshape { shape: [1, 3, 224] } }"#,
    )
    .to_string();
    assert!(error.contains(": input[0].reshape: "), "{error}");
    assert!(error.contains("same elements"), "{error}");
    let error = parse_err(
        r#"
        input { name: "x" data_type: TYPE_FP32 dims: [4] }
        output { name: "y" data_type: TYPE_FP32 dims: [-1, 4] reshape { shape: [4] } }
        "#,
    )
    .to_string();
    assert!(error.contains(": output[0].reshape: "), "{error}");
}

#[test]
fn a_json_configuration_reads_as_its_text_would() {
    let json = r#"{
        "name": "resnet50",
        "max_batch_size": 8,
        "input": [{"name": "x", "data_type": "TYPE_FP32", "format": "FORMAT_NCHW",
                   "dims": [3, 224, 224], "reshape": {"shape": [1, 3, 224, 224]}}],
        "output": [{"name": "y", "dataType": "TYPE_FP32", "dims": ["1000"]}],
        "version_policy": {"specific": {"versions": [2]}},
        "instance_group": [{"count": 2, "kind": "KIND_CPU"}],
        "parameters": {"preprocess.crop": {"string_value": "224"}},
        "optimization": {"cuda": {"graphs": true}}
    }"#;
    let config = ModelConfig::from_json(json, Path::new("request")).expect("parses");
    let text = parse(
        r#"
        name: "resnet50"
        max_batch_size: 8
        input { name: "x" data_type: TYPE_FP32 format: FORMAT_NCHW dims: [3, 224, 224] reshape { shape: [1, 3, 224, 224] } }
        output { name: "y" data_type: TYPE_FP32 dims: [1000] }
        version_policy { specific { versions: [2] } }
        instance_group { count: 2 kind: KIND_CPU }
        parameters { key: "preprocess.crop" value { string_value: "224" } }
        optimization { cuda { graphs: true } }
        "#,
    );
    assert_eq!(config.input, text.input);
    assert_eq!(config.output, text.output);
    assert_eq!(config.max_batch_size, text.max_batch_size);
    assert_eq!(config.version_policy, text.version_policy);
    assert_eq!(config.instance_group, text.instance_group);
    assert_eq!(config.parameters, text.parameters);
    assert_eq!(config.warnings, text.warnings);
    assert_eq!(config.to_json(), text.to_json());
    assert_eq!(config.source.as_deref(), Some(Path::new("request")));

    // Triton's own lifecycle test overrides only the backend and the versions.
    let partial = ModelConfig::from_json(
        r#"{"backend":"onnxruntime","version_policy":{"specific" : { "versions": [2] }} }"#,
        Path::new("request"),
    )
    .expect("parses");
    assert!(partial.input.is_empty());
    assert_eq!(partial.max_batch_size, None, "left to autocompletion");
}

#[test]
fn json_errors_name_the_field_or_the_position() {
    let error = ModelConfig::from_json(r#"{"inputs": []}"#, Path::new("request"))
        .unwrap_err()
        .to_string();
    assert!(error.starts_with("request:1:"), "{error}");
    assert!(error.contains("inputs"), "{error}");
    let error = ModelConfig::from_json("{\n  \"name\": 3\n}", Path::new("request"))
        .unwrap_err()
        .to_string();
    assert!(error.starts_with("request:2:"), "{error}");
    let error = ModelConfig::from_json(
        r#"{"input": [{"name": "x", "data_type": "TYPE_FP32", "dims": [0]}]}"#,
        Path::new("request"),
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("input[0].dims"), "{error}");
    assert!(ModelConfig::from_json("[1]", Path::new("request")).is_err());
    assert!(ModelConfig::from_json("{} {}", Path::new("request")).is_err());
}

#[test]
fn autocomplete_fills_only_what_the_file_left_out() {
    let (inputs, outputs) = classifier_io();
    let mut config = parse(
        r#"
        max_batch_size: 16
        input { name: "input" data_type: TYPE_FP32 format: FORMAT_NCHW dims: [3, 224, 224] }
        parameters { key: "preprocess.mean" value { string_value: "127" } }
        "#,
    );
    config.autocomplete(&inputs, &outputs).expect("completes");
    assert_eq!(config.max_batch_size, Some(16));
    assert_eq!(config.dynamic_batching, None);
    assert_eq!(config.input[0].format, InputFormat::Nchw);
    assert_eq!(config.output[0].name, "logits");
    assert_eq!(config.output[0].dims, vec![1000]);
    let pre = config.image_preprocessing().expect("valid").expect("some");
    assert_eq!(pre.mean, [127.0; 3]);
    assert_eq!(
        (pre.crop_width, pre.crop_height, pre.resize_short_side),
        (224, 224, 256)
    );
}

#[test]
fn autocomplete_does_not_batch_when_the_file_spells_out_the_batch_dimension() {
    let (inputs, outputs) = classifier_io();
    let mut config =
        parse(r#"input { name: "input" data_type: TYPE_FP32 dims: [-1, 3, 224, 224] }"#);
    config.autocomplete(&inputs, &outputs).expect("completes");
    assert_eq!(config.max_batch_size, Some(0));
    assert_eq!(config.output[0].dims, vec![-1, 1000]);
}

#[test]
fn declared_dims_may_narrow_dynamic_model_dimensions() {
    let mut config = parse(
        r#"
        max_batch_size: 2
        input { name: "input" data_type: TYPE_FP32 dims: [3, 320, 320] }
        output { name: "logits" data_type: TYPE_FP32 dims: [1000] }
        "#,
    );
    config
        .autocomplete(
            &[spec("input", DataType::Fp32, &[-1, 3, -1, -1])],
            &[
                spec("logits", DataType::Fp32, &[-1, 1000]),
                spec("features", DataType::Fp32, &[-1, 1280]),
            ],
        )
        .expect("completes");
    assert_eq!(config.output.len(), 1, "undeclared outputs are not served");
}

#[test]
fn autocomplete_errors_name_the_field() {
    let (inputs, outputs) = classifier_io();
    let cases = [
        (
            "input { name: \"image\" data_type: TYPE_FP32 dims: [3, 224, 224] }",
            "input[0].name",
        ),
        (
            "input { name: \"input\" data_type: TYPE_UINT8 dims: [3, 224, 224] }",
            "input[0].data_type",
        ),
        (
            "input { name: \"input\" data_type: TYPE_FP32 dims: [3, 256, 256] }",
            "input[0].dims",
        ),
        (
            "max_batch_size: 0 input { name: \"input\" data_type: TYPE_FP32 dims: [3, 224, 224] }",
            "input[0].dims",
        ),
        (
            "output { name: \"probs\" data_type: TYPE_FP32 dims: [1000] }",
            "output[0].name",
        ),
        (
            "output { name: \"logits\" data_type: TYPE_FP32 dims: [1001] }",
            "output[0].dims",
        ),
        (
            "dynamic_batching { preferred_batch_size: [8] }",
            "dynamic_batching.preferred_batch_size",
        ),
    ];
    for (text, field) in cases {
        let mut config = parse(text);
        let err = config
            .autocomplete(&inputs, &outputs)
            .expect_err("does not fit the model");
        let message = err.to_string();
        assert!(
            message.starts_with(&format!("{FILE}: {field}: ")),
            "`{text}` should fail on {field}: {message}"
        );
    }

    // Every model input must be declared.
    let mut config = parse("input { name: \"input\" data_type: TYPE_FP32 dims: [3, 224, 224] }");
    let err = config
        .autocomplete(
            &[
                inputs[0].clone(),
                spec("mask", DataType::Bool, &[-1, 224, 224]),
            ],
            &outputs,
        )
        .expect_err("mask is not declared");
    assert!(
        err.to_string()
            .contains(": input: model input 'mask' is not declared"),
        "{err}"
    );

    // A failed completion leaves the configuration as it was.
    let mut config = parse("output { name: \"logits\" data_type: TYPE_FP32 dims: [1001] }");
    let before = config.clone();
    config
        .autocomplete(&inputs, &outputs)
        .expect_err("1001 classes");
    assert_eq!(config, before);

    // Batching needs a model that batches.
    let mut config = parse("max_batch_size: 8");
    let err = config
        .autocomplete(
            &[spec("input", DataType::Fp32, &[1, 3, 224, 224])],
            &[spec("logits", DataType::Fp32, &[1, 1000])],
        )
        .expect_err("cannot batch");
    assert!(
        err.to_string()
            .starts_with(&format!("{FILE}: max_batch_size: 8 requires")),
        "{err}"
    );

    // Without a file the error names the model.
    let mut config = ModelConfig::new("scalar");
    let err = config
        .autocomplete(&[spec("input", DataType::Fp32, &[])], &[])
        .expect_err("scalar input");
    assert!(
        err.to_string()
            .starts_with("configuration of model 'scalar' (no config.pbtxt): input[0].dims: "),
        "{err}"
    );
}

fn with_parameters(inputs: &str, parameters: &[(&str, &str)]) -> ModelConfig {
    let mut text = inputs.to_string();
    for (key, value) in parameters {
        text.push_str(&format!(
            "parameters {{ key: \"preprocess.{key}\" value {{ string_value: \"{value}\" }} }}\n"
        ));
    }
    parse(&text)
}

const NCHW_224: &str =
    "max_batch_size: 4 input { name: \"x\" data_type: TYPE_FP32 dims: [3, 224, 224] }";
const NCHW_DYNAMIC: &str =
    "max_batch_size: 4 input { name: \"x\" data_type: TYPE_FP32 format: FORMAT_NCHW dims: [3, -1, -1] }";

#[test]
fn preprocessing_defaults_come_from_the_input_and_imagenet() {
    let pre = with_parameters(NCHW_224, &[("color_order", "bgr")])
        .image_preprocessing()
        .expect("valid")
        .expect("some");
    let imagenet = ImagePreprocessing::imagenet();
    assert_eq!(
        pre,
        ImagePreprocessing {
            color_order: ColorOrder::Bgr,
            ..imagenet
        }
    );
}

#[test]
fn preprocessing_takes_every_setting_from_parameters() {
    let pre = with_parameters(
        NCHW_DYNAMIC,
        &[
            ("crop", "200x100"),
            ("mean", "1, 2, 3"),
            ("std", "4,5,6"),
            ("max_pixels", "1000000"),
            ("jpeg_draft", "true"),
        ],
    )
    .image_preprocessing()
    .expect("valid")
    .expect("some");
    assert_eq!((pre.crop_width, pre.crop_height), (200, 100));
    assert_eq!(pre.resize_short_side, 229, "200 * 256 / 224 = 228.6");
    assert_eq!(pre.mean, [1.0, 2.0, 3.0]);
    assert_eq!(pre.std, [4.0, 5.0, 6.0]);
    assert_eq!(pre.max_pixels, 1_000_000);
    assert!(pre.jpeg_draft);
    assert_eq!(pre.image_shape(), [3, 100, 200]);
}

#[test]
fn preprocessing_layout_and_pixel_type_follow_the_image_input() {
    let nhwc_u8 = "max_batch_size: 1 \
        input { name: \"scale\" data_type: TYPE_FP32 dims: [1] } \
        input { name: \"image\" data_type: TYPE_UINT8 dims: [300, 320, 3] }";
    let config = with_parameters(nhwc_u8, &[("resize_short_side", "330")]);
    assert_eq!(config.image_input().map(|i| i.name.as_str()), Some("image"));
    let pre = config.image_preprocessing().expect("valid").expect("some");
    assert_eq!(pre.layout, Layout::Nhwc);
    assert_eq!(pre.pixel_type, PixelType::U8);
    assert_eq!(
        (pre.crop_width, pre.crop_height, pre.resize_short_side),
        (320, 300, 330)
    );

    // An unbatched model whose dims include its own batch dimension.
    let unbatched = "input { name: \"x\" data_type: TYPE_FP32 dims: [1, 3, 224, 224] }";
    let pre = with_parameters(unbatched, &[("std", "1")])
        .image_preprocessing()
        .expect("valid")
        .expect("some");
    assert_eq!(pre.layout, Layout::Nchw);
    assert_eq!(pre.std, [1.0; 3]);
}

#[test]
fn no_preprocess_parameters_means_no_preprocessing() {
    let config = parse(&format!(
        "{IO} parameters {{ key: \"other\" value {{ string_value: \"1\" }} }}"
    ));
    assert_eq!(config.image_preprocessing().expect("valid"), None);
}

#[test]
fn preprocessing_errors_name_the_field() {
    let two_images = "max_batch_size: 1 \
        input { name: \"a\" data_type: TYPE_FP32 dims: [3, 224, 224] } \
        input { name: \"b\" data_type: TYPE_FP32 dims: [3, 224, 224] }";
    let no_image = "input { name: \"ids\" data_type: TYPE_INT64 dims: [3, 224, 224] }";
    type Parameters = &'static [(&'static str, &'static str)];
    let cases: [(&str, Parameters, &str); 5] = [
        (two_images, &[("crop", "224")], "input"),
        (no_image, &[("crop", "224")], "input"),
        (NCHW_DYNAMIC, &[("mean", "0")], "parameters.preprocess.crop"),
        (NCHW_224, &[("crop", "200")], "parameters.preprocess.crop"),
        (
            NCHW_224,
            &[("resize_short_side", "200")],
            "parameters.preprocess.resize_short_side",
        ),
    ];
    for (inputs, parameters, field) in cases {
        let config = with_parameters(inputs, parameters);
        let err = config.image_preprocessing().expect_err("invalid");
        let message = err.to_string();
        assert!(
            message.starts_with(&format!("{FILE}: {field}: ")),
            "{parameters:?} should fail on {field}: {message}"
        );
    }
    assert!(parse(two_images).image_input().is_none());
}

#[test]
fn truncated_or_mangled_files_are_errors_not_panics() {
    let boundaries = TRITON_EXAMPLE.char_indices().map(|(i, _)| i);
    for end in boundaries {
        // Every prefix either parses or fails with an error; none panics.
        let _ = ModelConfig::parse(&TRITON_EXAMPLE[..end], Path::new(FILE));
    }
    for (i, _) in TRITON_EXAMPLE.char_indices().step_by(7) {
        for replacement in ["{", "}", "[", "\"", "-", "0x", ":", "\\", "<", "#"] {
            let mut mangled = TRITON_EXAMPLE.to_string();
            mangled.insert_str(i, replacement);
            let _ = ModelConfig::parse(&mangled, Path::new(FILE));
        }
    }
}

#[test]
fn fields_triton_does_not_know_are_errors_with_their_line() {
    let err = parse_err("max_batch_size: 8\ninput [\n  { name: \"x\" data_type: TYPE_FP32 dims: [1] colour: 3 }\n]\n");
    assert!(
        matches!(&err, ConfigError::UnknownField { field, message, position: Some(p), .. }
            if field == "input[0].colour" && message == "inference.ModelInput" && p.line == 3),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "{FILE}: input[0].colour: no such field in inference.ModelInput (line 3, column 46)"
        )
    );
}

#[test]
fn errors_after_a_list_without_colon_keep_their_column() {
    // `input [` gets a colon for the parser; the column is still the file's.
    let err = parse_err("input [ { name: \"x\" data_type: TYPE_FLOAT dims: [1] } ]");
    match &err {
        ConfigError::UnknownEnumValue {
            field,
            value,
            position,
            ..
        } => {
            assert_eq!(field, "input[0].data_type");
            assert_eq!(value, "TYPE_FLOAT");
            assert_eq!(
                *position,
                Some(Position {
                    line: 1,
                    column: 32
                })
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        err.to_string()
            .contains("expected one of TYPE_INVALID, TYPE_BOOL"),
        "{err}"
    );
}

#[test]
fn wrong_values_name_what_was_expected_and_found() {
    let err = parse_err(&format!("max_batch_size: \"8\" {IO}"));
    assert_eq!(
        err.to_string(),
        format!("{FILE}: max_batch_size: expected an integer, found `\"8\"` (line 1, column 17)")
    );
    let err = parse_err(&format!(
        "{IO} version_policy {{ latest {{ }} specific {{ versions: 1 }} }}"
    ));
    assert!(
        err.to_string().contains(
            "version_policy: only one of `latest`, `all`, `specific` may be given (line 4"
        ),
        "{err}"
    );
    let err = parse_err(&format!(
        "{IO} version_policy {{ latest {{ num_versions: -1 }} }}"
    ));
    assert!(
        matches!(err, ConfigError::OutOfRange { ref value, .. } if value == "-1"),
        "{err:?}"
    );
    // Two scheduling choices: a oneof in Triton's schema.
    let err = parse_err(&format!(
        "{IO} dynamic_batching {{ }} sequence_batching {{ }}"
    ));
    assert!(
        matches!(&err, ConfigError::Invalid { field, message, .. }
            if field.is_empty() && message.starts_with("only one of `dynamic_batching`, `sequence_batching`, `ensemble_scheduling`")),
        "{err:?}"
    );
    // A default value written twice is still written twice.
    let err = parse_err(&format!("max_batch_size: 0 max_batch_size: 0 {IO}"));
    assert!(matches!(err, ConfigError::Repeated { .. }), "{err:?}");
}

#[test]
fn explicit_defaults_are_told_apart_from_absent_fields() {
    let err = parse_err(&format!("{IO} instance_group {{ count: 0 }}"));
    assert!(
        matches!(&err, ConfigError::OutOfRange { field, .. } if field == "instance_group[0].count"),
        "{err:?}"
    );
    let err = parse_err("input { name: \"x\" data_type: TYPE_INVALID dims: [1] }");
    assert!(matches!(err, ConfigError::Unsupported { .. }), "{err:?}");
    let config = parse(&format!("max_batch_size: 0 {IO}"));
    assert_eq!(config.max_batch_size, Some(0));
    let err = parse_err(&format!("{IO} instance_group {{ kind: 9 }}"));
    assert!(
        matches!(&err, ConfigError::UnknownEnumValue { value, .. } if value == "9"),
        "{err:?}"
    );
}

#[test]
fn ignored_map_entries_are_named_by_their_key() {
    let config = parse(&format!(
        "{IO} model_warmup [ {{ name: \"w\" inputs {{ key: \"x\" value {{ data_type: TYPE_FP32 dims: [3] zero_data: true }} }} }} ]"
    ));
    assert_eq!(
        config.warnings,
        vec![
            "model_warmup.name: not used by ferroserve, ignored",
            "model_warmup.inputs.x.data_type: not used by ferroserve, ignored",
            "model_warmup.inputs.x.dims: not used by ferroserve, ignored",
            "model_warmup.inputs.x.zero_data: not used by ferroserve, ignored",
        ]
    );
}

/// Fails unless every value of `expected` is in `actual`: objects may have more keys,
/// arrays must have as many elements, each checked the same way.
fn assert_json_includes(actual: &serde_json::Value, expected: &serde_json::Value, path: &str) {
    use serde_json::Value;
    match (actual, expected) {
        (Value::Object(actual), Value::Object(expected)) => {
            for (key, value) in expected {
                let Some(found) = actual.get(key) else {
                    panic!("{path}.{key} is missing");
                };
                assert_json_includes(found, value, &format!("{path}.{key}"));
            }
        }
        (Value::Array(actual), Value::Array(expected)) => {
            assert_eq!(actual.len(), expected.len(), "{path}");
            for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
                assert_json_includes(a, e, &format!("{path}[{i}]"));
            }
        }
        _ => assert_eq!(actual, expected, "{path}"),
    }
}

#[test]
fn to_json_echoes_the_whole_file() {
    let mut config = parse(TRITON_EXAMPLE);
    config
        .autocomplete(
            &[spec("pixel_values", DataType::Fp32, &[-1, 1, 3, 224, 224])],
            &[
                spec("probabilities", DataType::Fp32, &[-1, 1000]),
                spec("features", DataType::Fp32, &[-1, 1280]),
            ],
        )
        .expect("completes");
    let value = config.to_json();

    // Everything the typed configuration serialises is there, unchanged.
    let typed = serde_json::to_value(&config).expect("serialises");
    assert_json_includes(&value, &typed, "");

    // So are the fields ferroserve does not act on, and the input's reshape.
    assert_eq!(
        value["optimization"],
        json!({
            "priority": "PRIORITY_DEFAULT",
            "cuda": {
                "graphs": true,
                "busy_wait_events": false,
                "graph_spec": [],
                "output_copy_stream": false
            },
            "gather_kernel_buffer_threshold": 0,
            "eager_batching": false
        })
    );
    assert_eq!(
        value["model_warmup"],
        json!([{
            "name": "zeros",
            "batch_size": 1,
            "inputs": {},
            "count": 0
        }])
    );
    assert_eq!(
        value["input"][0]["reshape"],
        json!({ "shape": [1, 3, 224, 224] })
    );
    // Triton's defaults are printed; unset messages are not.
    assert_eq!(value["input"][0]["is_shape_tensor"], false);
    assert_eq!(value["input"][0]["allow_ragged_batch"], false);
    assert_eq!(value["runtime"], "");
    assert_eq!(value["batch_input"], json!([]));
    assert_eq!(value["cc_model_filenames"], json!({}));
    assert!(value.get("sequence_batching").is_none());
    assert!(value.get("model_transaction_policy").is_none());
    // 64-bit integers are numbers.
    assert_eq!(
        value["dynamic_batching"]["default_queue_policy"]["default_timeout_microseconds"],
        5_000_000
    );
    assert_eq!(
        value["version_policy"],
        json!({ "latest": { "num_versions": 2 } })
    );
}

#[test]
fn to_proto_overlays_the_typed_view_on_the_file() {
    let (inputs, outputs) = classifier_io();
    let mut config = parse(
        r#"
        input { name: "input" data_type: TYPE_FP32 dims: [3, 50176] reshape { shape: [3, 224, 224] } }
        instance_group { count: 2 kind: KIND_CPU rate_limiter { priority: 3 } }
        optimization { execution_accelerators { cpu_execution_accelerator { name: "openvino" } } }
        dynamic_batching { preserve_ordering: true }
        "#,
    );
    config.autocomplete(&inputs, &outputs).expect("completes");
    let message = config.to_proto();
    assert_eq!(message.max_batch_size, 4, "completed");
    assert_eq!(message.output.len(), 1, "completed");
    assert_eq!(message.output[0].name, "logits");
    assert_eq!(message.output[0].dims, vec![1000]);
    assert_eq!(message.input[0].dims, vec![3, 50176]);
    assert_eq!(
        message.input[0].reshape.as_ref().map(|r| r.shape.clone()),
        Some(vec![3, 224, 224])
    );
    assert_eq!(message.instance_group[0].count, 2);
    assert_eq!(
        message.instance_group[0]
            .rate_limiter
            .as_ref()
            .map(|r| r.priority),
        Some(3)
    );
    let accelerators = message
        .optimization
        .as_ref()
        .and_then(|o| o.execution_accelerators.as_ref())
        .map(|a| a.cpu_execution_accelerator[0].name.clone());
    assert_eq!(accelerators.as_deref(), Some("openvino"));
    match &message.scheduling_choice {
        Some(proto::model_config::SchedulingChoice::DynamicBatching(batching)) => {
            assert!(batching.preserve_ordering);
        }
        other => panic!("{other:?}"),
    }
    // The version policy in effect, though the file gives none.
    assert_eq!(
        message.version_policy,
        Some(proto::ModelVersionPolicy {
            policy_choice: Some(proto::model_version_policy::PolicyChoice::Latest(
                proto::model_version_policy::Latest { num_versions: 1 }
            ))
        })
    );
}

#[test]
fn to_json_of_a_configuration_built_from_the_model() {
    let (inputs, outputs) = classifier_io();
    let mut config = ModelConfig::new("classifier");
    config.autocomplete(&inputs, &outputs).expect("completes");
    let value = config.to_json();
    assert_json_includes(
        &value,
        &json!({
            "name": "classifier",
            "platform": "",
            "backend": "",
            "version_policy": { "latest": { "num_versions": 1 } },
            "max_batch_size": 4,
            "input": [{ "name": "input", "data_type": "TYPE_FP32", "format": "FORMAT_NONE", "dims": [3, 224, 224], "optional": false }],
            "output": [{ "name": "logits", "data_type": "TYPE_FP32", "dims": [1000], "label_filename": "" }],
            "dynamic_batching": {
                "preferred_batch_size": [],
                "max_queue_delay_microseconds": 0,
                "preserve_ordering": false,
                "priority_levels": 0,
                "default_priority_level": 0,
                "priority_queue_policy": {}
            },
            "instance_group": [],
            "default_model_filename": "",
            "parameters": {},
            "model_warmup": []
        }),
        "",
    );
    for absent in [
        "optimization",
        "response_cache",
        "dynamic_batching.default_queue_policy",
    ] {
        let mut at = &value;
        for key in absent.split('.') {
            at = &at[key];
        }
        assert!(at.is_null(), "{absent} should be left out: {value}");
    }
}

#[test]
fn to_json_contains_execution_accelerators_and_model_warmup() {
    let config = parse(&format!(
        r#"{IO}
        optimization {{ execution_accelerators {{
            cpu_execution_accelerator: [ {{ name: "openvino" }} ]
        }} }}
        model_warmup [
          {{
            name: "random"
            batch_size: 1
            inputs {{ key: "x" value: {{ data_type: TYPE_FP32 dims: [ 3, 224, 224 ] random_data: true }} }}
          }}
        ]
        "#
    ));
    assert!(config.openvino_accelerator);
    let value = config.to_json();
    assert_eq!(
        value["optimization"]["execution_accelerators"]["cpu_execution_accelerator"],
        json!([{ "name": "openvino", "parameters": {} }])
    );
    assert_eq!(
        value["model_warmup"],
        json!([{
            "name": "random",
            "batch_size": 1,
            "inputs": {
                "x": { "data_type": "TYPE_FP32", "dims": [3, 224, 224], "random_data": true }
            },
            "count": 0
        }])
    );
    // Loaded, with one warning for each field set that ferroserve does not act on.
    assert_eq!(
        config.warnings,
        vec![
            "model_warmup.name: not used by ferroserve, ignored",
            "model_warmup.batch_size: not used by ferroserve, ignored",
            "model_warmup.inputs.x.data_type: not used by ferroserve, ignored",
            "model_warmup.inputs.x.dims: not used by ferroserve, ignored",
            "model_warmup.inputs.x.random_data: not used by ferroserve, ignored",
        ]
    );
}

#[test]
fn to_text_reads_back_as_the_same_configuration() {
    let config = parse(TRITON_EXAMPLE);
    let text = config.to_text();
    assert!(text.contains("max_batch_size: 16"), "{text}");
    let again = parse(&text);
    assert_eq!(again.to_json(), config.to_json(), "{text}");
}

#[test]
fn stateful_and_decoupled_models_are_refused_by_name() {
    for (text, field) in [
        (
            format!("{IO} sequence_batching {{ max_sequence_idle_microseconds: 5000000 }}"),
            "sequence_batching",
        ),
        (
            format!("{IO} model_transaction_policy {{ decoupled: true }}"),
            "model_transaction_policy.decoupled",
        ),
    ] {
        let message = parse_err(&text).to_string();
        assert!(
            message.contains(&format!(": {field}: "))
                && message.contains("not supported by ferroserve"),
            "{message}"
        );
    }
}

#[test]
fn the_openvino_backend_and_accelerator_are_read() {
    let backend = parse(&format!("backend: \"openvino\"\n{IO}"));
    assert_eq!(backend.backend, "openvino");
    assert_eq!(
        backend.model_filename(),
        "model.xml",
        "Triton's OpenVINO layout"
    );
    assert!(!backend.openvino_accelerator);

    let accelerated = parse(&format!(
        r#"platform: "onnxruntime_onnx"
        {IO}
        optimization {{ execution_accelerators {{
            cpu_execution_accelerator: [ {{ name: "openvino" }} ]
            gpu_execution_accelerator: [ {{ name: "tensorrt" }} ]
        }} }}"#
    ));
    assert!(accelerated.openvino_accelerator);
    assert_eq!(accelerated.model_filename(), "model.onnx");
    assert_eq!(
        accelerated.warnings,
        ["optimization.execution_accelerators.gpu_execution_accelerator.name: not used by ferroserve, ignored"]
    );

    let plain = parse(IO);
    assert!(!plain.openvino_accelerator);
    assert_eq!(plain.model_filename(), "model.onnx");

    match parse_err(
        "optimization { execution_accelerators { cpu_execution_accelerator: [ { name: \"dnnl\" } ] } }",
    ) {
        ConfigError::Unsupported {
            field,
            value,
            supported,
            ..
        } => {
            assert_eq!(
                field,
                "optimization.execution_accelerators.cpu_execution_accelerator.name"
            );
            assert_eq!((value.as_str(), supported.as_str()), ("dnnl", "openvino"));
        }
        other => panic!("expected Unsupported, got {other}"),
    }
}

#[test]
fn the_precision_comes_from_openvino_and_triton_parameter_names() {
    let with = |parameters: &str| format!("{IO}\n{parameters}");
    let hint = |value: &str| {
        with(&format!(
            r#"parameters {{ key: "INFERENCE_PRECISION_HINT" value {{ string_value: "{value}" }} }}"#
        ))
    };
    assert_eq!(parse(IO).precision().unwrap(), None);
    for (value, precision) in [
        ("f32", Precision::F32),
        ("bf16", Precision::Bf16),
        ("F16", Precision::F16),
        ("int8", Precision::Int8),
        ("auto", Precision::Auto),
    ] {
        assert_eq!(parse(&hint(value)).precision().unwrap(), Some(precision));
    }
    let triton = with(r#"parameters { key: "HINT_BF16" value { string_value: "YES" } }"#);
    assert_eq!(parse(&triton).precision().unwrap(), Some(Precision::Bf16));

    let unknown = parse_err(&hint("f64")).to_string();
    assert_eq!(
        unknown,
        format!("{FILE}: parameters.INFERENCE_PRECISION_HINT: unknown precision 'f64': expected one of auto, f32, bf16, f16, int8")
    );
    let no = parse_err(&with(
        r#"parameters { key: "HINT_BF16" value { string_value: "NO" } }"#,
    ))
    .to_string();
    assert!(no.contains("parameters.HINT_BF16: expected `YES`"), "{no}");
    let conflict = parse_err(&with(
        r#"parameters { key: "HINT_BF16" value { string_value: "YES" } }
        parameters { key: "INFERENCE_PRECISION_HINT" value { string_value: "f32" } }"#,
    ))
    .to_string();
    assert!(conflict.contains("asks for bf16 but"), "{conflict}");
}

#[test]
fn openvino_stream_parameters_are_warned_about_and_devices_other_than_the_cpu_refused() {
    let config = parse(&format!(
        r#"{IO}
        parameters {{ key: "NUM_STREAMS" value {{ string_value: "2" }} }}
        parameters {{ key: "PERFORMANCE_HINT" value {{ string_value: "THROUGHPUT" }} }}
        parameters {{ key: "TARGET_DEVICE" value {{ string_value: "CPU" }} }}"#
    ));
    let warned: Vec<_> = config
        .warnings
        .iter()
        .map(|w| w.split(':').next().unwrap_or_default())
        .collect();
    assert_eq!(
        warned,
        ["parameters.NUM_STREAMS", "parameters.PERFORMANCE_HINT"]
    );
    assert!(config.warnings[0].contains("one OpenVINO stream"));
    let gpu = parse_err(&format!(
        r#"{IO} parameters {{ key: "TARGET_DEVICE" value {{ string_value: "GPU" }} }}"#
    ));
    assert!(
        gpu.to_string()
            .contains("parameters.TARGET_DEVICE: `GPU` is not supported"),
        "{gpu}"
    );
}
