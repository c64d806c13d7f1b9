//! `ferroserve config check` and `config print`: the real binary on the bundled
//! repository and on a broken one.

use std::path::{Path, PathBuf};
use std::process::Command;

fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

fn config(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ferroserve"))
        .arg("config")
        .args(args)
        .output()
        .expect("the binary runs");
    let mut text = String::from_utf8(out.stdout).expect("UTF-8 output");
    text.push_str(&String::from_utf8(out.stderr).expect("UTF-8 output"));
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn the_bundled_repository_checks_clean() {
    let (code, out) = config(&["check", models().to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("efficientnet-lite0: ok (versions 1)"), "{out}");
    assert!(
        out.contains("efficientnet-lite0-image: ok (versions 1)"),
        "{out}"
    );
    assert!(out.contains("2 models, 0 with errors"), "{out}");
}

#[test]
fn errors_are_reported_per_model_and_field_and_fail_the_check() {
    let repository = tempfile::tempdir().unwrap();
    let copy = |name: &str| {
        let to = repository.path().join(name);
        std::fs::create_dir_all(to.join("1")).unwrap();
        std::fs::copy(
            models().join("efficientnet-lite0/1/model.onnx"),
            to.join("1/model.onnx"),
        )
        .unwrap();
        to
    };
    copy("good");
    let wrong_dims = copy("wrong-dims");
    std::fs::write(
        wrong_dims.join("config.pbtxt"),
        "input [ { name: \"input\" data_type: TYPE_FP32 dims: [ 3, 100, 100 ] } ]\n",
    )
    .unwrap();
    let unknown_field = copy("unknown-field");
    std::fs::write(
        unknown_field.join("config.pbtxt"),
        "max_batch_size: 8\nbatching: true\n",
    )
    .unwrap();
    let (code, out) = config(&["check", repository.path().to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("good: ok (versions 1)"), "{out}");
    assert!(out.contains("wrong-dims: error:"), "{out}");
    assert!(
        out.contains("unknown-field: error: unknown-field/config.pbtxt"),
        "{out}"
    );
    assert!(out.contains("batching"), "{out}");
    assert!(out.contains("3 models, 2 with errors"), "{out}");
    assert!(
        !out.contains(&*repository.path().display().to_string()),
        "paths are relative to the repository: {out}"
    );
}

#[test]
fn print_gives_the_completed_configuration() {
    let repository = tempfile::tempdir().unwrap();
    let model = repository.path().join("bare/1");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::copy(
        models().join("efficientnet-lite0/1/model.onnx"),
        model.join("model.onnx"),
    )
    .unwrap();
    let at = repository.path().to_str().unwrap();
    let (code, text) = config(&["print", "bare", "--model-repository", at]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("name: \"bare\""), "{text}");
    assert!(text.contains("data_type: TYPE_FP32"), "{text}");
    let (code, json) = config(&["print", "bare", "--model-repository", at, "--json"]);
    assert_eq!(code, 0, "{json}");
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["input"][0]["dims"], serde_json::json!([3, 224, 224]));
    assert_eq!(value["output"][0]["dims"], serde_json::json!([1000]));
}
