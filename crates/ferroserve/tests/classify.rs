//! `ferroserve classify` end to end: the real binary on the sample photos, on every
//! engine, and on files that are not images.

use std::path::{Path, PathBuf};
use std::process::Command;

fn images() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/images")
}

fn classify(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ferroserve"))
        .arg("classify")
        .args(args)
        .output()
        .expect("the binary runs");
    let text = |b: Vec<u8>| String::from_utf8(b).expect("UTF-8 output");
    (
        out.status.code().unwrap_or(-1),
        text(out.stdout),
        text(out.stderr),
    )
}

/// The top label of each image, from `--json` lines.
fn top_labels(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            let path = v["path"].as_str().unwrap();
            let name = Path::new(path)
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            (name, v["classes"][0]["label"].as_str().unwrap().to_string())
        })
        .collect()
}

fn sample_photos_are_recognised(engine: &str) {
    let dir = images();
    let (code, stdout, stderr) = classify(&["--json", "--engine", engine, dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let labels = top_labels(&stdout);
    let top = |name: &str| &labels.iter().find(|(n, _)| n == name).unwrap().1;
    assert!(["tiger cat", "Egyptian cat", "tabby, tabby cat"].contains(&top("cat.jpg").as_str()));
    assert_eq!(top("coffee.jpg"), "espresso");
    assert_eq!(top("motorcycle.jpg"), "moped");
    assert_eq!(
        labels.len(),
        4,
        "the folder's four images, in order: {labels:?}"
    );
    assert!(stderr.contains("4 images, 0 failed"), "{stderr}");
    assert!(stderr.contains(&format!("on {engine} ")), "{stderr}");
}

#[test]
fn sample_photos_on_onnxruntime() {
    sample_photos_are_recognised("onnxruntime");
}

#[test]
fn sample_photos_on_openvino() {
    sample_photos_are_recognised("openvino");
}

#[test]
fn sample_photos_on_tract() {
    sample_photos_are_recognised("tract");
}

#[test]
fn bad_files_are_reported_and_the_rest_still_classify() {
    let dir = tempfile::tempdir().unwrap();
    let cat = std::fs::read(images().join("cat.jpg")).unwrap();
    let write = |name: &str, bytes: &[u8]| std::fs::write(dir.path().join(name), bytes).unwrap();
    write("truncated.jpg", &cat[..cat.len() / 3]);
    write("empty.png", b"");
    write(
        "random.jpg",
        &(0..4000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect::<Vec<_>>(),
    );
    write("scan.tiff", b"II*\0 not supported");
    // A PNG header declaring 100000 x 100000 pixels.
    let mut huge = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    huge.extend(100_000u32.to_be_bytes());
    huge.extend(100_000u32.to_be_bytes());
    huge.extend([8, 2, 0, 0, 0, 0, 0, 0, 0]);
    write("huge.png", &huge);
    write("good.jpg", &cat);
    let (code, stdout, stderr) = classify(&[
        "--json",
        dir.path().to_str().unwrap(),
        dir.path().join("scan.tiff").to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "any failure makes the exit code non-zero");
    assert_eq!(
        top_labels(&stdout).len(),
        1,
        "the good image is classified: {stdout}"
    );
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    for (file, reason) in [
        ("truncated.jpg", "truncated"),
        ("empty.png", "empty"),
        ("random.jpg", "format"),
        ("scan.tiff", "format"),
        ("huge.png", "100000x100000"),
    ] {
        assert!(
            errors
                .iter()
                .any(|e| e.contains(file) && e.contains(reason)),
            "no one-line error for {file} mentioning '{reason}' in:\n{stderr}"
        );
    }
    assert!(stderr.contains("6 images, 5 failed"), "{stderr}");
}

#[test]
fn a_missing_onnxruntime_library_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_ferroserve"))
        .args([
            "classify",
            "--onnxruntime-library",
            "/nonexistent/libonnxruntime.so.1.32.0",
        ])
        .arg(images().join("cat.jpg"))
        .env_remove("ORT_DYLIB_PATH")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("setup-onnxruntime.sh"), "{stderr}");
}

#[test]
fn a_missing_openvino_library_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_ferroserve"))
        .args([
            "classify",
            "--engine",
            "openvino",
            "--openvino-library",
            "/nonexistent/libopenvino_c.so.2641",
        ])
        .arg(images().join("cat.jpg"))
        .env_remove("OPENVINO_LIB_PATH")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line in:\n{stderr}"));
    for says in [
        "efficientnet-lite0",
        "efficientnet-lite0/1/model.onnx",
        "setup-openvino.sh",
    ] {
        assert!(line.contains(says), "'{line}' should say '{says}'");
    }
}
