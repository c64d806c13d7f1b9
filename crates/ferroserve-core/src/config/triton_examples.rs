//! Triton's own configuration examples (`tests/data/triton-configs`, see its NOTICE)
//! through the parser.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::{legacy, text, ConfigError, ModelConfig};

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
/// but ONNX Runtime before looking at the rest of the file.
fn without_platform(text: &str) -> String {
    text.lines()
        .filter(|line| {
            let line = line.trim_start();
            !line.starts_with("platform:") && !line.starts_with("backend:")
        })
        .map(|line| format!("{line}\n"))
        .collect()
}

/// The variant and field of an error.
fn kind(error: &ConfigError) -> String {
    let debug = format!("{error:?}");
    let variant = debug
        .split([' ', '{'])
        .next()
        .unwrap_or_default()
        .to_string();
    let field = match error {
        ConfigError::Read { .. } | ConfigError::Syntax { .. } => "",
        ConfigError::UnknownField { field, .. }
        | ConfigError::WrongType { field, .. }
        | ConfigError::UnknownEnumValue { field, .. }
        | ConfigError::Unsupported { field, .. }
        | ConfigError::OutOfRange { field, .. }
        | ConfigError::Repeated { field, .. }
        | ConfigError::Missing { field, .. }
        | ConfigError::DuplicateName { field, .. }
        | ConfigError::Invalid { field, .. } => field,
    };
    format!("{variant} {field}")
}

/// The fields of the schema that are maps, by name.
const MAP_FIELDS: &[&str] = &[
    "cc_model_filenames",
    "input",
    "input_map",
    "inputs",
    "metric_tags",
    "output_map",
    "parameters",
    "priority_queue_policy",
];

/// The paths of `warnings`, each cut after its first map field: the old parser named a
/// map entry's fields `key` and `value`, the new one names the entry by its key.
fn warned_paths(warnings: &[String]) -> Vec<String> {
    let mut paths: Vec<String> = warnings
        .iter()
        .map(|warning| {
            let path = warning.split(": ").next().unwrap_or_default();
            let segments: Vec<&str> = path.split('.').collect();
            let end = (1..segments.len())
                .find(|&i| MAP_FIELDS.contains(&segments[i]))
                .map_or(segments.len(), |i| i + 1);
            segments[..end].join(".")
        })
        .collect();
    paths.sort();
    paths.dedup();
    paths
}

/// The typed configuration without what only one parser fills: the file's message and
/// the warnings.
fn typed(config: &ModelConfig) -> ModelConfig {
    ModelConfig {
        message: Box::default(),
        warnings: Vec::new(),
        ..config.clone()
    }
}

/// Where the two parsers' first errors differ, and why.
const EXPLAINED_ERRORS: &[(&str, &str)] = &[(
    "qa/python_models/identity_bf16/config.pbtxt",
    "the file sets `backend: \"python\"` after an input of TYPE_BF16, both unsupported; \
     the old parser checked fields in the file's order, the new one in field-number order",
)];

/// Runs every example through the hand-written parser and the schema-based one, as
/// written and without platform and backend, and checks that they agree: both accept with
/// the same typed configuration and warnings on the same fields, or both refuse on the
/// same field.
#[test]
fn the_old_and_new_parsers_agree_on_tritons_examples() {
    for strip in [false, true] {
        let mut counts = BTreeMap::<String, usize>::new();
        let mut count = |what: String| *counts.entry(what).or_default() += 1;
        for (name, text) in examples() {
            let text = if strip { without_platform(&text) } else { text };
            let file = Path::new(&name);
            let (old, new) = (legacy::parse(&text, file), ModelConfig::parse(&text, file));
            match (&old, &new) {
                (Ok(old), Ok(new)) => {
                    assert_eq!(typed(old), typed(new), "{name}");
                    let (old_paths, new_paths) =
                        (warned_paths(&old.warnings), warned_paths(&new.warnings));
                    assert_eq!(old_paths, new_paths, "{name}: warnings");
                    let mut sorted = [old.warnings.clone(), new.warnings.clone()];
                    sorted.iter_mut().for_each(|w| w.sort());
                    if sorted[0] == sorted[1] {
                        count("both accept, same typed configuration and warnings".into());
                    } else {
                        count(
                            "both accept, same typed configuration, warnings differ in map \
                             entry paths"
                                .into(),
                        );
                    }
                }
                (Err(old), Err(new)) => {
                    let (old_kind, new_kind) = (kind(old), kind(new));
                    if old_kind == new_kind {
                        count(format!(
                            "both refuse: {}",
                            old_kind.split(' ').next().unwrap()
                        ));
                    } else {
                        assert!(
                            EXPLAINED_ERRORS.iter().any(|(file, _)| *file == name),
                            "{name}: old `{old}`, new `{new}`"
                        );
                        count(format!("both refuse, differently: {old_kind} / {new_kind}"));
                    }
                }
                (Ok(_), Err(new)) => panic!("{name}: only the new parser refuses it: {new}"),
                (Err(old), Ok(_)) => panic!("{name}: only the old parser refuses it: {old}"),
            }
        }
        let label = if strip {
            "without platform and backend"
        } else {
            "as written"
        };
        println!("{label}:");
        for (what, n) in &counts {
            println!("  {n:4} {what}");
        }
    }
}

/// The examples that are not configurations as they stand: fragments of the
/// documentation that elide fields with `...`. Triton refuses them too.
const NOT_CONFIGURATIONS: &[&str] = &[
    "docs/user_guide/ragged_batching.md.L43.pbtxt",
    "docs/user_guide/trace.md.L332.pbtxt",
];

/// Every example Triton accepts is read against the schema; ferroserve's own checks then
/// refuse only what it does not serve, and the whole file comes back from `to_json`.
#[test]
fn every_configuration_triton_accepts_is_read() {
    let mut read = 0;
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

        match ModelConfig::parse(&without_platform(&text), file) {
            Ok(config) => {
                let json = config.to_json();
                for (field, _) in message.fields() {
                    let name_in_json = field.name();
                    assert!(
                        json.get(name_in_json).is_some(),
                        "{name}: {name_in_json} is not echoed"
                    );
                }
            }
            Err(
                ConfigError::Unsupported { .. }
                | ConfigError::Missing { .. }
                | ConfigError::OutOfRange { .. }
                | ConfigError::DuplicateName { .. }
                | ConfigError::Invalid { .. },
            ) => {}
            Err(e) => panic!("{name}: {e}"),
        }
    }
    assert_eq!(read, examples().len() - NOT_CONFIGURATIONS.len());
}

#[test]
fn to_json_echoes_optimization_and_model_warmup() {
    let text = format!(
        "{}\n{}",
        example("docs/user_guide/optimization.md.L250.pbtxt"),
        without_platform(&example("qa/L0_warmup/decoupled/config.pbtxt"))
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
        json!({ "decoupled": true })
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
