//! Triton's own configuration examples (`tests/data/triton-configs`, see its NOTICE)
//! through the parser.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::{text, ConfigError, ModelConfig};

fn examples_folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/triton-configs")
}

/// Every vendored example: its path in Triton's repository and its text.
fn examples() -> Vec<(String, String)> {
    let folder = examples_folder();
    let manifest = std::fs::read_to_string(folder.join("MANIFEST")).expect("MANIFEST");
    manifest
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|name| {
            let text = std::fs::read_to_string(folder.join(name))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            (name.to_string(), text)
        })
        .collect()
}

fn example(name: &str) -> String {
    std::fs::read_to_string(examples_folder().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// `text` without its `platform` and `backend` lines: ferroserve refuses every platform
/// but ONNX Runtime and ensembles before looking at the rest of the file. An ensemble
/// keeps its platform line.
fn without_platform(text: &str) -> String {
    text.lines()
        .filter(|line| {
            let line = line.trim_start();
            let ensemble = line.starts_with("platform:") && line.contains("\"ensemble\"");
            ensemble || (!line.starts_with("platform:") && !line.starts_with("backend:"))
        })
        .map(|line| format!("{line}\n"))
        .collect()
}

/// The examples that are not configurations as they stand: fragments of the
/// documentation that elide fields with `...`. Triton refuses them too.
const NOT_CONFIGURATIONS: &[&str] = &[
    "docs/user_guide/ragged_batching.md.L43.pbtxt",
    "docs/user_guide/trace.md.L332.pbtxt",
];

/// The examples that ferroserve refuses once read (platform and backend lines left out,
/// but an ensemble's platform kept), each with the field its error names and why. Most
/// are Triton's own negative tests (among them every reshape and ensemble one);
/// the others leave to Triton's auto-completion what ferroserve requires, or use a type
/// ferroserve does not serve.
const REFUSED: &[(&str, &str, &str)] = &[
    (
        "docs/user_guide/model_configuration.md.L365.pbtxt",
        "input[0].data_type",
        "a fragment that leaves the data type to Triton's auto-completion",
    ),
    (
        "docs/user_guide/model_configuration.md.L380.pbtxt",
        "output[0].data_type",
        "a fragment that leaves the data type to Triton's auto-completion",
    ),
    (
        "qa/L0_model_config/autofill_noplatform_success/python/incomplete_output/config.pbtxt",
        "output[0].dims",
        "leaves dims to the Python backend's auto-completion",
    ),
    (
        "qa/L0_model_config/autofill_noplatform_success/tensorrt/hint_for_no_batch/config.pbtxt",
        "input[1].data_type",
        "leaves the data type to TensorRT's auto-completion",
    ),
    (
        "qa/L0_model_config/autofill_noplatform_success/tensorrt/incomplete_input/config.pbtxt",
        "input[0].dims",
        "leaves dims to TensorRT's auto-completion",
    ),
    (
        "qa/L0_model_config/autofill_noplatform_success/tensorrt/incomplete_output/config.pbtxt",
        "output[0].dims",
        "leaves dims to TensorRT's auto-completion",
    ),
    (
        "qa/L0_model_config/custom_parameters/tensorrt/valid/allocation_strategy_no_key/partial.pbtxt",
        "parameters.key",
        "a parameter without a key, which ferroserve cannot look up",
    ),
    (
        "qa/L0_model_config/noautofill_platform/invalid_cpu/config.pbtxt",
        "instance_group[0].gpus",
        "Triton's negative test: GPUs for KIND_CPU",
    ),
    (
        "qa/L0_model_config/noautofill_platform/missing_datatype/config.pbtxt",
        "input[0].data_type",
        "Triton's negative test: no data type",
    ),
    (
        "qa/L0_model_config/noautofill_platform/negative_gpu/config.pbtxt",
        "instance_group[1].gpus",
        "Triton's negative test: GPU -1",
    ),
    (
        "qa/L0_model_config/noautofill_platform/negative_max_batch_size/config.pbtxt",
        "max_batch_size",
        "Triton's negative test: max_batch_size -2",
    ),
    (
        "qa/L0_model_config/noautofill_platform/zerodims_input0/config.pbtxt",
        "input[0].dims",
        "Triton's negative test: a dimension of 0",
    ),
    (
        "qa/L0_model_config/noautofill_platform/zerodims_input1/config.pbtxt",
        "input[0].dims",
        "Triton's negative test: a dimension of 0",
    ),
    (
        "qa/L0_model_config/noautofill_platform/zerodims_output0/config.pbtxt",
        "output[0].dims",
        "Triton's negative test: a dimension of 0",
    ),
    (
        "qa/L0_model_config/noautofill_platform/zerodims_output1/config.pbtxt",
        "output[0].dims",
        "Triton's negative test: a dimension of 0",
    ),
    (
        "qa/python_models/identity_bf16/config.pbtxt",
        "input[0].data_type",
        "TYPE_BF16, which ferroserve does not serve",
    ),    (
        "docs/user_guide/ensemble_models.md.L205.pbtxt",
        "ensemble_scheduling",
        "a fragment of the documentation, without its platform line",
    ),
    (
        "qa/L0_model_config/autofill_noplatform/ensemble/ensemble_scheduling_no_set/config.pbtxt",
        "ensemble_scheduling.step",
        "Triton's negative test of ensembles: ensemble scheduling no set",
    ),
    (
        "qa/L0_model_config/autofill_noplatform/ensemble/has_backend/config.pbtxt",
        "ensemble_scheduling.step",
        "Triton's negative test of ensembles: has backend",
    ),
    (
        "qa/L0_model_config/autofill_noplatform/ensemble/no_input_map/config.pbtxt",
        "ensemble_scheduling.step[1].input_map",
        "Triton's negative test of ensembles: no input map",
    ),
    (
        "qa/L0_model_config/autofill_noplatform/ensemble/no_model_name/config.pbtxt",
        "ensemble_scheduling.step[1].model_name",
        "Triton's negative test of ensembles: no model name",
    ),
    (
        "qa/L0_model_config/autofill_noplatform/ensemble/no_output_map/config.pbtxt",
        "ensemble_scheduling.step[1].output_map",
        "Triton's negative test of ensembles: no output map",
    ),
    (
        "qa/L0_model_config/autofill_noplatform/ensemble/no_step/config.pbtxt",
        "ensemble_scheduling.step",
        "Triton's negative test of ensembles: no step",
    ),
    (
        "qa/L0_model_config/autofill_noplatform/ensemble/no_step_2/config.pbtxt",
        "ensemble_scheduling.step",
        "Triton's negative test of ensembles: no step 2",
    ),
    (
        "qa/L0_model_config/autofill_noplatform/ensemble/output_to_tensor_overmapped/config.pbtxt",
        "ensemble_scheduling.step[2].output_map.output2",
        "Triton's negative test of ensembles: output to tensor overmapped",
    ),
    (
        "qa/L0_model_config/autofill_noplatform/ensemble/redundant_tensor_as_input/config.pbtxt",
        "ensemble_scheduling.step[1].input_map.input",
        "Triton's negative test of ensembles: redundant tensor as input",
    ),
    (
        "qa/L0_model_config/autofill_noplatform/ensemble/redundant_tensor_as_output/config.pbtxt",
        "ensemble_scheduling.step[1].output_map.output3",
        "Triton's negative test of ensembles: redundant tensor as output",
    ),
    (
        "qa/L0_model_config/autofill_noplatform/ensemble/tensor_to_input_overmapped/config.pbtxt",
        "ensemble_scheduling.step[3].input_map.input4",
        "Triton's negative test of ensembles: tensor to input overmapped",
    ),
    (
        "qa/L0_model_config/autofill_noplatform/ensemble/unreachable_input/config.pbtxt",
        "input[1]",
        "Triton's negative test of ensembles: unreachable input",
    ),
    (
        "qa/L0_model_config/autofill_noplatform/ensemble/unreachable_output/config.pbtxt",
        "output[1]",
        "Triton's negative test of ensembles: unreachable output",
    ),
    (
        "qa/L0_model_config/autofill_noplatform/ensemble/unreachable_output_2/config.pbtxt",
        "ensemble_scheduling.step",
        "Triton's negative test of ensembles: unreachable output 2",
    ),
    (
        "qa/L0_model_config/autofill_noplatform/ensemble/unreachable_output_3/config.pbtxt",
        "ensemble_scheduling.step[1].input_map.input",
        "Triton's negative test of ensembles: unreachable output 3",
    ),
    (
        "qa/L0_model_config/noautofill_platform/ensemble_scheduling_set/config.pbtxt",
        "ensemble_scheduling",
        "Triton's negative test: ensemble_scheduling on a model that is no ensemble",
    ),
    (
        "qa/L0_model_config/noautofill_platform/reshape_elementcount0/config.pbtxt",
        "input[0].reshape",
        "Triton's negative test: a reshape of another size than its dims",
    ),
    (
        "qa/L0_model_config/noautofill_platform/reshape_elementcount1/config.pbtxt",
        "input[0].reshape",
        "Triton's negative test: a reshape of another size than its dims",
    ),
    (
        "qa/L0_model_config/noautofill_platform/reshape_elementcount2/config.pbtxt",
        "output[0].reshape",
        "Triton's negative test: a reshape of another size than its dims",
    ),
    (
        "qa/L0_model_config/noautofill_platform/reshape_elementcount3/config.pbtxt",
        "output[0].reshape",
        "Triton's negative test: a reshape of another size than its dims",
    ),
    (
        "qa/L0_model_config/noautofill_platform/reshape_nobatch_variable0/config.pbtxt",
        "input[0].reshape",
        "Triton's negative test: a reshape of another size than its dims",
    ),
    (
        "qa/L0_model_config/noautofill_platform/reshape_nobatch_variable1/config.pbtxt",
        "output[0].reshape",
        "Triton's negative test: a reshape of another size than its dims",
    ),
    (
        "qa/L0_model_config/noautofill_platform/reshape_nobatch_variable2/config.pbtxt",
        "input[0].reshape",
        "Triton's negative test: a reshape of another size than its dims",
    ),
    (
        "qa/L0_model_config/noautofill_platform/reshape_nobatch_variable3/config.pbtxt",
        "output[0].reshape",
        "Triton's negative test: a reshape of another size than its dims",
    ),
    (
        "qa/L0_model_config/noautofill_platform/reshape_nobatch_variable4/config.pbtxt",
        "input[0].reshape",
        "Triton's negative test: a reshape of another size than its dims",
    ),
    (
        "qa/L0_model_config/noautofill_platform/reshape_nobatch_variable5/config.pbtxt",
        "output[0].reshape",
        "Triton's negative test: a reshape of another size than its dims",
    ),
    (
        "qa/L0_model_config/noautofill_platform/reshape_nobatch_zerodims0/config.pbtxt",
        "input[0].reshape.shape",
        "Triton's negative test: a reshape dimension of 0",
    ),
    (
        "qa/L0_model_config/noautofill_platform/reshape_nobatch_zerodims1/config.pbtxt",
        "output[0].reshape.shape",
        "Triton's negative test: a reshape dimension of 0",
    ),
    (
        "qa/L0_model_config/noautofill_platform/reshape_variable0/config.pbtxt",
        "input[0].reshape",
        "Triton's negative test: a reshape of another size than its dims",
    ),
    (
        "qa/L0_model_config/noautofill_platform/reshape_variable1/config.pbtxt",
        "output[0].reshape",
        "Triton's negative test: a reshape of another size than its dims",
    ),
    (
        "qa/L0_model_config/noautofill_platform/reshape_variable2/config.pbtxt",
        "input[0].reshape",
        "Triton's negative test: a reshape of another size than its dims",
    ),
    (
        "qa/L0_model_config/noautofill_platform/reshape_variable3/config.pbtxt",
        "output[0].reshape",
        "Triton's negative test: a reshape of another size than its dims",
    ),
    (
        "qa/L0_model_config/noautofill_platform/reshape_variable4/config.pbtxt",
        "input[0].reshape",
        "Triton's negative test: a reshape of another size than its dims",
    ),
    (
        "qa/L0_model_config/noautofill_platform/reshape_variable5/config.pbtxt",
        "output[0].reshape",
        "Triton's negative test: a reshape of another size than its dims",
    ),
    (
        "qa/L0_model_config/noautofill_platform/reshape_zerodims0/config.pbtxt",
        "input[0].reshape.shape",
        "Triton's negative test: a reshape dimension of 0",
    ),
    (
        "qa/L0_model_config/noautofill_platform/reshape_zerodims1/config.pbtxt",
        "output[0].reshape.shape",
        "Triton's negative test: a reshape dimension of 0",
    ),
];

/// Every example Triton accepts is read against the schema. With its platform and backend
/// lines left out, each one either loads, and the whole file comes back from `to_json`,
/// or is one of [`REFUSED`], refused on the field stated there.
#[test]
fn every_configuration_triton_accepts_is_read() {
    let (mut read, mut refused, mut out_of_scope) = (0, 0, 0);
    for (name, text) in examples() {
        let file = Path::new(&name);
        let message = text::parse(&text, file);
        if NOT_CONFIGURATIONS.contains(&name.as_str()) {
            assert!(
                matches!(message, Err(ConfigError::Syntax { .. })),
                "{name}: {message:?}"
            );
            continue;
        }
        let message = message.unwrap_or_else(|e| panic!("{e}"));
        read += 1;

        let expected_refusal = REFUSED.iter().find(|(file, _, _)| *file == name);
        match (
            ModelConfig::parse(&without_platform(&text), file),
            expected_refusal,
        ) {
            (Ok(config), None) => {
                let json = config.to_json();
                for (field, _) in message.fields() {
                    let name_in_json = field.name();
                    assert!(
                        json.get(name_in_json).is_some(),
                        "{name}: {name_in_json} is not echoed"
                    );
                }
            }
            (Ok(_), Some((_, field, _))) => panic!("{name}: loads, expected an error on {field}"),
            (Err(e), Some((_, field, _))) => {
                assert!(
                    e.to_string().contains(&format!(": {field}: ")),
                    "{name}: expected an error on {field}, got {e}"
                );
                refused += 1;
            }
            // Stateful and decoupled models: out of scope, refused by name.
            (Err(e), None) if e.to_string().contains("not supported by ferroserve") => {
                out_of_scope += 1;
            }
            (Err(e), None) => panic!("{name}: {e}"),
        }
    }
    assert_eq!(read, examples().len() - NOT_CONFIGURATIONS.len());
    assert_eq!(refused, REFUSED.len());
    // Today's count, so that a change in what is refused shows.
    assert_eq!(
        out_of_scope, OUT_OF_SCOPE,
        "examples refused as stateful or decoupled"
    );
}

/// Examples that use sequence batching or decoupled transactions.
const OUT_OF_SCOPE: usize = 62;

#[test]
fn to_json_echoes_optimization_and_model_warmup() {
    let text = format!(
        "{}\n{}",
        example("docs/user_guide/optimization.md.L250.pbtxt"),
        // Decoupled models are refused; the policy written out is still echoed.
        without_platform(&example("qa/L0_warmup/decoupled/config.pbtxt"))
            .replace("decoupled: True", "decoupled: False")
    );
    let config = ModelConfig::parse(&text, Path::new("config.pbtxt")).expect("parses");
    let json = config.to_json();
    assert_eq!(
        json["optimization"]["execution_accelerators"],
        json!({
            "gpu_execution_accelerator": [{
                "name": "tensorrt",
                "parameters": {
                    "precision_mode": "FP16",
                    "max_workspace_size_bytes": "1073741824"
                }
            }],
            "cpu_execution_accelerator": []
        })
    );
    assert_eq!(
        json["model_warmup"],
        json!([{
            "name": "decoupled sample",
            "batch_size": 1,
            "inputs": {
                "INPUT": {
                    "data_type": "TYPE_FP32",
                    "dims": [4],
                    "zero_data": true
                }
            },
            "count": 0
        }])
    );
    assert_eq!(
        json["model_transaction_policy"],
        json!({ "decoupled": false })
    );
    let warned: Vec<_> = config
        .warnings
        .iter()
        .map(|w| w.split(':').next().unwrap_or_default())
        .collect();
    assert_eq!(
        warned,
        [
            "optimization.execution_accelerators.gpu_execution_accelerator.name",
            "optimization.execution_accelerators.gpu_execution_accelerator.parameters.precision_mode",
            "optimization.execution_accelerators.gpu_execution_accelerator.parameters.max_workspace_size_bytes",
            "model_warmup.name",
            "model_warmup.batch_size",
            "model_warmup.inputs.INPUT.data_type",
            "model_warmup.inputs.INPUT.dims",
            "model_warmup.inputs.INPUT.zero_data",
            "model_transaction_policy.decoupled",
        ]
    );
}

/// Triton's `qa/L0_config_json/test.sh` checks that its JSON writes 64-bit integers as
/// numbers, on `max_priority_level.pbtxt` and on a `dynamic_batching` it appends to a
/// configuration: the same values here.
#[test]
fn to_json_writes_64_bit_integers_as_triton_does() {
    let text = without_platform(&example("qa/L0_config_json/max_priority_level.pbtxt"));
    let json = ModelConfig::parse(&text, Path::new("config.pbtxt"))
        .expect("parses")
        .to_json();
    let batching = &json["dynamic_batching"];
    assert_eq!(batching["priority_levels"], json!(18446744073709551615u64));
    assert_eq!(batching["default_priority_level"], json!(4294967295u64));
    assert_eq!(
        batching["priority_queue_policy"]["4294967296"],
        json!({
            "timeout_action": "REJECT",
            "default_timeout_microseconds": 18446744073709551615u64,
            "allow_timeout_override": true,
            "max_queue_size": 10
        })
    );

    let text = r#"
        input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 16 ] reshape: { shape: [ 16 ] } } ]
        output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 16 ] reshape: { shape: [ 16 ] } } ]
        version_policy: { specific: { versions: [1] }}
        dynamic_batching: { max_queue_delay_microseconds: 42
          default_queue_policy: { default_timeout_microseconds: 123 }
          priority_queue_policy: { key: 1  value: { default_timeout_microseconds: 123 }}
          priority_queue_policy: { key: 2  value: { default_timeout_microseconds: 123 }}}
    "#;
    let json = ModelConfig::parse(text, Path::new("config.pbtxt"))
        .expect("parses")
        .to_json()
        .to_string();
    let occurrences = |needle: &str| json.matches(needle).count();
    assert_eq!(occurrences(r#""dims":[16]"#), 2, "{json}");
    assert_eq!(occurrences(r#""reshape":{"shape":[16]}"#), 2, "{json}");
    assert_eq!(
        occurrences(r#""version_policy":{"specific":{"versions":[1]}}"#),
        1,
        "{json}"
    );
    assert_eq!(
        occurrences(r#""max_queue_delay_microseconds":42"#),
        1,
        "{json}"
    );
    assert_eq!(
        occurrences(r#""default_timeout_microseconds":123"#),
        3,
        "{json}"
    );
}
