//! `ferroserve accuracy` end to end: the real binary comparing engines and models on the
//! sample photos and the accuracy set.

use std::path::{Path, PathBuf};
use std::process::Command;

fn data(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data")
        .join(path)
}

fn repository(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
        .to_string_lossy()
        .into_owned()
}

/// Runs `ferroserve accuracy --json ARGS`, on the bundled models unless ARGS name a
/// repository: the exit code and the report.
fn accuracy(args: &[&str]) -> (i32, serde_json::Value, String) {
    let bundled = repository("models");
    let mut command = Command::new(env!("CARGO_BIN_EXE_ferroserve"));
    command.args(["accuracy", "--json"]);
    if !args.contains(&"--model-repository") {
        command.args(["--model-repository", &bundled]);
    }
    let out = command.args(args).output().expect("the binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("a JSON report ({e}); stderr: {stderr}"));
    (out.status.code().unwrap_or(-1), report, stderr)
}

#[test]
fn tract_gives_onnxruntime_s_answers_on_every_photo() {
    let (images, photos) = (data("images"), data("accuracy/photos"));
    let (code, report, stderr) = accuracy(&[
        "--engine",
        "tract",
        images.to_str().unwrap(),
        photos.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["candidate"], "efficientnet-lite0 on tract f32");
    assert_eq!(report["reference"], "efficientnet-lite0 on onnxruntime f32");
    assert_eq!(report["groups"]["images"]["images"], 4);
    assert_eq!(report["groups"]["photos"]["images"], 19);
    let total = &report["total"];
    assert_eq!(total["images"], 23);
    assert_eq!(total["top1"], 23, "{report}");
    assert_eq!(total["top5"], 23, "{report}");
    let difference = total["max_score_difference"].as_f64().unwrap();
    assert!(difference < 1e-3, "two f32 engines differ by {difference}");
}

#[test]
fn a_quantized_model_is_compared_with_the_f32_one() {
    let images = data("images");
    let (code, report, stderr) = accuracy(&[
        "--model-repository",
        &repository("tests/data/models"),
        "--model",
        "efficientnet-lite0-int8",
        "--reference-model-repository",
        &repository("models"),
        "--reference-model",
        "efficientnet-lite0",
        images.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        report["candidate"],
        "efficientnet-lite0-int8 on onnxruntime int8"
    );
    let total = &report["total"];
    assert_eq!(total["images"], 4);
    // int8 scores are not f32 scores: the two models were really both run.
    let difference = total["max_score_difference"].as_f64().unwrap();
    assert!(
        difference > 0.01,
        "int8 and f32 differ by only {difference}"
    );
    let top1_in_top5 = total["top1_in_top5"].as_u64().unwrap();
    assert!(top1_in_top5 >= total["top1"].as_u64().unwrap());
}

#[test]
fn files_that_are_not_images_are_listed_and_fail_the_run() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(data("images/cat.jpg"), dir.path().join("cat.jpg")).unwrap();
    std::fs::write(dir.path().join("broken.jpg"), b"not a JPEG").unwrap();
    let (code, report, _) = accuracy(&[dir.path().to_str().unwrap()]);
    assert_eq!(code, 1);
    assert_eq!(report["total"]["images"], 1);
    assert_eq!(report["total"]["top1"], 1);
    let failed = report["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{report}");
    assert!(failed[0][0].as_str().unwrap().ends_with("broken.jpg"));
}
