//! The model repository against real folders: layouts Triton accepts, version policies,
//! labels, and every way a model folder can be wrong.

use std::fs;
use std::path::{Path, PathBuf};

use ferroserve_core::config::VersionPolicy;
use ferroserve_core::{ModelEntry, ModelRepository, RepositoryError};

/// A scratch repository in a temporary folder.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Self {
        Scratch {
            dir: tempfile::tempdir().expect("temporary folder"),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, relative: &str, contents: &str) -> PathBuf {
        let path = self.path().join(relative);
        fs::create_dir_all(path.parent().expect("has a parent")).expect("create folders");
        fs::write(&path, contents).expect("write file");
        path
    }

    fn mkdir(&self, relative: &str) {
        fs::create_dir_all(self.path().join(relative)).expect("create folder");
    }

    fn open(&self) -> ModelRepository {
        ModelRepository::open(self.path()).expect("opens")
    }
}

const RESNET_CONFIG: &str = r#"
# ResNet-50 served from a Triton repository.
name: "resnet"
platform: "onnxruntime_onnx"
max_batch_size: 8
version_policy: { latest: { num_versions: 2 } }
input [ { name: "input", data_type: TYPE_FP32, format: FORMAT_NCHW, dims: [ 3, 224, 224 ] } ]
output [
  { name: "logits", data_type: TYPE_FP32, dims: [ 3 ], label_filename: "labels.txt" },
  { name: "features", data_type: TYPE_FP32, dims: [ 2048 ] }
]
dynamic_batching { max_queue_delay_microseconds: 200 }
instance_group [ { count: 2, kind: KIND_CPU } ]
optimization { execution_accelerators { cpu_execution_accelerator: [ { name: "openvino" } ] } }
"#;

fn resnet(scratch: &Scratch) {
    scratch.write("resnet/config.pbtxt", RESNET_CONFIG);
    scratch.write("resnet/labels.txt", "cat\r\ndog\r\nbird\r\n");
    for version in ["1", "2", "3"] {
        scratch.write(&format!("resnet/{version}/model.onnx"), "onnx");
    }
    // None of these are versions.
    scratch.mkdir("resnet/latest");
    scratch.mkdir("resnet/0");
    scratch.mkdir("resnet/04");
    scratch.write("resnet/5", "a file, not a folder");
}

#[test]
fn loads_a_triton_model_with_config_labels_and_versions() {
    let scratch = Scratch::new();
    resnet(&scratch);
    let model = scratch.open().load("resnet").expect("loads");

    assert_eq!(model.name, "resnet");
    assert_eq!(model.path, scratch.path().join("resnet"));
    let versions: Vec<_> = model.versions.iter().map(|v| v.version).collect();
    assert_eq!(versions, vec![2, 3], "latest 2 of versions 1..=3");
    assert_eq!(
        model.versions[1].model_file,
        scratch.path().join("resnet/3/model.onnx")
    );

    let config = model.config.expect("has a config");
    assert_eq!(config.max_batch_size(), 8);
    assert!(config.openvino_accelerator, "runs on OpenVINO");
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);

    assert_eq!(model.labels.len(), 1, "only outputs with label_filename");
    let labels = &model.labels["logits"];
    assert_eq!(labels.len(), 3);
    assert_eq!(labels.get(1), Some("dog"));
    assert_eq!(labels.get(3), None);
}

#[test]
fn a_model_without_config_serves_its_latest_version() {
    let scratch = Scratch::new();
    scratch.write("plain/1/model.onnx", "onnx");
    scratch.write("plain/4/model.onnx", "onnx");
    let model = scratch.open().load("plain").expect("loads");
    assert!(model.config.is_none());
    assert!(model.labels.is_empty());
    let versions: Vec<_> = model.versions.iter().map(|v| v.version).collect();
    assert_eq!(versions, vec![4]);
}

#[test]
fn config_name_is_filled_from_the_folder() {
    let scratch = Scratch::new();
    scratch.write("unnamed/config.pbtxt", "max_batch_size: 2");
    scratch.write("unnamed/1/model.onnx", "onnx");
    let model = scratch.open().load("unnamed").expect("loads");
    assert_eq!(model.config.expect("has a config").name, "unnamed");
}

#[test]
fn version_policies_all_and_specific() {
    let scratch = Scratch::new();
    for version in [1, 2, 3] {
        scratch.write(&format!("every/{version}/model.onnx"), "onnx");
        scratch.write(&format!("some/{version}/model.onnx"), "onnx");
    }
    scratch.write("every/config.pbtxt", "version_policy: { all { } }");
    scratch.write(
        "some/config.pbtxt",
        "version_policy: { specific { versions: [ 3, 1 ] } }",
    );
    let repository = scratch.open();
    for (name, expected) in [("every", vec![1, 2, 3]), ("some", vec![1, 3])] {
        let model = repository.load(name).expect("loads");
        let versions: Vec<_> = model.versions.iter().map(|v| v.version).collect();
        assert_eq!(versions, expected, "{name}");
    }
    let config = repository.load("some").expect("loads").config;
    assert_eq!(
        config.and_then(|c| c.version_policy),
        Some(VersionPolicy::Specific {
            versions: vec![3, 1]
        })
    );
}

#[test]
fn default_model_filename_names_the_file_in_each_version() {
    let scratch = Scratch::new();
    scratch.write(
        "custom/config.pbtxt",
        "default_model_filename: \"net.onnx\"",
    );
    scratch.write("custom/7/net.onnx", "onnx");
    let model = scratch.open().load("custom").expect("loads");
    assert_eq!(
        model.versions[0].model_file,
        scratch.path().join("custom/7/net.onnx")
    );
}

#[test]
fn the_openvino_backend_reads_model_xml_with_its_weights_beside_it() {
    let scratch = Scratch::new();
    scratch.write("ir/config.pbtxt", "backend: \"openvino\"");
    scratch.write("ir/1/model.xml", "<net/>");
    scratch.write("ir/1/model.bin", "weights");
    let model = scratch.open().load("ir").expect("loads");
    assert_eq!(
        model.versions[0].model_file,
        scratch.path().join("ir/1/model.xml")
    );

    // The OpenVINO backend reads ONNX too, when the configuration names it.
    scratch.write(
        "onnx/config.pbtxt",
        "backend: \"openvino\"\ndefault_model_filename: \"model.onnx\"",
    );
    scratch.write("onnx/1/model.onnx", "onnx");
    let model = scratch.open().load("onnx").expect("loads");
    assert_eq!(
        model.versions[0].model_file,
        scratch.path().join("onnx/1/model.onnx")
    );
}

fn load_error(scratch: &Scratch, name: &str) -> String {
    match scratch.open().load(name) {
        Ok(model) => panic!("{name} should not load: {model:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn load_errors_name_the_file_relative_to_the_repository() {
    let scratch = Scratch::new();

    scratch.write("renamed/config.pbtxt", "name: \"other\"");
    scratch.write("renamed/1/model.onnx", "onnx");
    let config = Path::new("renamed/config.pbtxt");
    assert_eq!(
        load_error(&scratch, "renamed"),
        format!(
            "{}: name: 'other' differs from the model folder name 'renamed'",
            config.display()
        )
    );

    scratch.write("broken/config.pbtxt", "name: \"broken\"\ninput [ {\n");
    scratch.write("broken/1/model.onnx", "onnx");
    let message = load_error(&scratch, "broken");
    let config = Path::new("broken/config.pbtxt");
    assert!(
        message.starts_with(&format!("{}:3:1: ", config.display())),
        "{message}"
    );

    scratch.write("invalid/config.pbtxt", "max_batch_size: -4");
    scratch.write("invalid/1/model.onnx", "onnx");
    let message = load_error(&scratch, "invalid");
    let config = Path::new("invalid/config.pbtxt");
    assert!(
        message.starts_with(&format!("{}: max_batch_size: ", config.display())),
        "{message}"
    );

    scratch.write("nofile/2/weights.bin", "not the model");
    let message = load_error(&scratch, "nofile");
    assert_eq!(
        message,
        format!(
            "model file {} is missing",
            Path::new("nofile/2/model.onnx").display()
        )
    );

    scratch.write("noweights/config.pbtxt", "backend: \"openvino\"");
    scratch.write("noweights/1/model.xml", "<net/>");
    let message = load_error(&scratch, "noweights");
    assert_eq!(
        message,
        format!(
            "weights file {} of the OpenVINO IR {} is missing",
            Path::new("noweights/1/model.bin").display(),
            Path::new("noweights/1/model.xml").display()
        )
    );

    scratch.write("empty/config.pbtxt", "");
    scratch.mkdir("empty/latest");
    let message = load_error(&scratch, "empty");
    assert!(
        message.starts_with("model 'empty': no version to serve"),
        "{message}"
    );

    scratch.write(
        "pinned/config.pbtxt",
        "version_policy { specific { versions: [ 2 ] } }",
    );
    scratch.write("pinned/1/model.onnx", "onnx");
    let config = Path::new("pinned/config.pbtxt");
    assert!(load_error(&scratch, "pinned").starts_with(&format!(
        "{}: version_policy.specific.versions: version 2 has no folder",
        config.display()
    )));

    scratch.write(
        "nolabels/config.pbtxt",
        "output { name: \"y\" data_type: TYPE_FP32 dims: [ 2 ] label_filename: \"gone.txt\" }",
    );
    scratch.write("nolabels/1/model.onnx", "onnx");
    let message = load_error(&scratch, "nolabels");
    let config = Path::new("nolabels/config.pbtxt");
    assert!(
        message.starts_with(&format!(
            "{}: output[0].label_filename: cannot read labels file {}",
            config.display(),
            Path::new("nolabels/gone.txt").display()
        )),
        "{message}"
    );
}

#[test]
fn names_that_are_not_model_folders_are_not_found() {
    let scratch = Scratch::new();
    resnet(&scratch);
    scratch.write(".hidden/1/model.onnx", "onnx");
    scratch.write("file.txt", "not a model");
    let repository = scratch.open();
    for name in [
        "",
        ".",
        "..",
        "../resnet",
        "resnet/1",
        ".hidden",
        "file.txt",
        "absent",
    ] {
        match repository.load(name) {
            Err(RepositoryError::ModelNotFound { name: n, .. }) => assert_eq!(n, name),
            other => panic!("{name:?} should not be found: {other:?}"),
        }
    }
}

#[test]
fn index_lists_every_model_with_its_state() {
    let scratch = Scratch::new();
    resnet(&scratch);
    scratch.write("plain/1/model.onnx", "onnx");
    scratch.write("plain/2/model.onnx", "onnx");
    scratch.write("renamed/config.pbtxt", "name: \"other\"");
    scratch.write("renamed/1/model.onnx", "onnx");
    scratch.mkdir("bare");
    scratch.write(".git/HEAD", "ref");
    scratch.write("README.md", "not a model");

    let index = scratch.open().index().expect("lists");
    let summary: Vec<_> = index
        .iter()
        .map(|e| {
            (
                e.name.as_str(),
                e.versions.clone(),
                e.has_config,
                e.error.is_some(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("bare", vec![], false, true),
            ("plain", vec![1, 2], false, false),
            ("renamed", vec![1], true, true),
            ("resnet", vec![1, 2, 3], true, false),
        ]
    );
    let renamed: &ModelEntry = &index[2];
    assert!(
        renamed
            .error
            .as_deref()
            .is_some_and(|e| e.contains("differs from the model folder name")),
        "{renamed:?}"
    );
}

#[test]
fn open_needs_a_folder() {
    let scratch = Scratch::new();
    let file = scratch.write("file.txt", "x");
    assert!(matches!(
        ModelRepository::open(&file),
        Err(RepositoryError::NotADirectory { .. })
    ));
    let missing = scratch.path().join("missing");
    let err = ModelRepository::open(&missing).expect_err("missing");
    assert!(matches!(err, RepositoryError::Io { .. }));
    assert!(err.to_string().contains("missing"), "{err}");
}

#[test]
fn the_bundled_repository_loads() {
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    let repository = ModelRepository::open(&models).expect("opens");
    let model = repository.load("efficientnet-lite0").expect("loads");
    assert_eq!(model.versions.len(), 1);
    assert_eq!(model.versions[0].version, 1);
    assert!(model.versions[0]
        .model_file
        .ends_with("efficientnet-lite0/1/model.onnx"));
    let labels = &model.labels["logits"];
    assert_eq!(labels.len(), 1000);
    assert_eq!(labels.get(0), Some("tench, Tinca tinca"));
    let config = model.config.expect("has a config");
    let preprocessing = config
        .image_preprocessing()
        .expect("valid")
        .expect("declares preprocessing");
    assert_eq!(preprocessing.mean, [127.0; 3]);
    assert_eq!(config.image_input().map(|i| i.name.as_str()), Some("input"));

    let index = repository.index().expect("lists");
    assert!(index
        .iter()
        .any(|e| e.name == "efficientnet-lite0" && e.error.is_none() && e.has_config));
}

/// Every file the repository opens must resolve inside it; what errors say never shows
/// where the repository is.
#[test]
fn the_repository_is_a_jail() {
    let outside = tempfile::tempdir().expect("temporary folder");
    let secret = outside.path().join("secret.txt");
    fs::write(&secret, "the secret\n").expect("write");
    fs::create_dir_all(outside.path().join("model/1")).expect("mkdir");
    fs::write(outside.path().join("model/1/model.onnx"), "onnx").expect("write");

    let scratch = Scratch::new();
    let depth = scratch.path().components().count();
    let up = "../".repeat(depth);
    let through_dots = format!(
        "{up}{}",
        secret.display().to_string().trim_start_matches('/')
    );
    let config = |labels: &str| {
        RESNET_CONFIG
            .replace("name: \"resnet\"\n", "")
            .replace("labels.txt", labels)
    };
    // A label_filename with `..`, and one that is absolute.
    scratch.write("dots/config.pbtxt", &config(&through_dots));
    scratch.write("dots/1/model.onnx", "onnx");
    scratch.write(
        "absolute/config.pbtxt",
        &config(&secret.display().to_string()),
    );
    scratch.write("absolute/1/model.onnx", "onnx");
    // labels.txt, a model file and a whole model folder linked to outside files.
    scratch.write("linked-labels/config.pbtxt", &config("labels.txt"));
    scratch.write("linked-labels/1/model.onnx", "onnx");
    std::os::unix::fs::symlink(&secret, scratch.path().join("linked-labels/labels.txt"))
        .expect("link");
    scratch.mkdir("linked-file/1");
    std::os::unix::fs::symlink(
        outside.path().join("model/1/model.onnx"),
        scratch.path().join("linked-file/1/model.onnx"),
    )
    .expect("link");
    std::os::unix::fs::symlink(
        outside.path().join("model"),
        scratch.path().join("linked-folder"),
    )
    .expect("link");
    // The weights of an OpenVINO IR linked to an outside file.
    scratch.write("linked-weights/config.pbtxt", "backend: \"openvino\"");
    scratch.write("linked-weights/1/model.xml", "<net/>");
    std::os::unix::fs::symlink(&secret, scratch.path().join("linked-weights/1/model.bin"))
        .expect("link");

    let repository = scratch.open();
    for name in [
        "dots",
        "absolute",
        "linked-labels",
        "linked-file",
        "linked-folder",
        "linked-weights",
    ] {
        let error = repository.load(name).expect_err(name);
        assert!(
            matches!(
                error,
                RepositoryError::Outside { .. } | RepositoryError::OutsideField { .. }
            ),
            "{name}: {error}"
        );
        let message = repository.redact(&error.to_string());
        assert!(
            message.contains("outside the model repository"),
            "{message}"
        );
        for place in [scratch.path(), outside.path()] {
            assert!(
                !message.contains(&*place.display().to_string()),
                "{message}"
            );
        }
    }
    for entry in repository.index().expect("index") {
        let message = entry.error.unwrap_or_default();
        assert!(
            !message.contains(&*scratch.path().display().to_string()),
            "{message}"
        );
    }

    // Allowed on request: anywhere, or into one named folder.
    let anywhere = scratch.open().allow_links_anywhere();
    let labels = anywhere
        .load("linked-labels")
        .expect("links may lead anywhere");
    assert_eq!(labels.labels["logits"].get(0), Some("the secret"));
    let into = scratch.open().allow_links_into(outside.path());
    into.load("linked-file")
        .expect("links may lead into the named folder");
    into.load("linked-folder")
        .expect("links may lead into the named folder");
}

#[test]
fn errors_name_files_relative_to_the_repository() {
    let scratch = Scratch::new();
    scratch.write("broken/config.pbtxt", "max_batch_size: \"eight\"\n");
    scratch.write("broken/1/model.onnx", "onnx");
    let repository = scratch.open();
    let message = repository.load("broken").expect_err("invalid").to_string();
    assert!(message.starts_with("broken/config.pbtxt"), "{message}");
    let root = scratch.path().display().to_string();
    assert_eq!(
        repository.redact(&format!(
            "cannot load {root}/broken/1/model.onnx from {root}"
        )),
        "cannot load broken/1/model.onnx from the model repository"
    );
}
