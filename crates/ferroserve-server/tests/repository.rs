//! Repository control in poll mode: a new version is loaded and warmed up before it
//! replaces the old one, and a model that fails to load leaves the previous version
//! serving, with the reason in the repository index. Polls are triggered directly.

use ferroserve_runtime::infer::{InferInput, InferRequest};
use ferroserve_runtime::{ModelControlMode, Runtime};

mod support;
use support::{copy_dir, TempRepository, TestServer, MODEL};

fn request() -> InferRequest {
    let zeros = vec![0u8; 4 * 3 * 224 * 224];
    InferRequest {
        model: MODEL.into(),
        version: None,
        id: "poll".into(),
        inputs: vec![InferInput::tensor(
            "input",
            ferroserve_core::DataType::Fp32,
            vec![1, 3, 224, 224],
            zeros.into(),
        )
        .unwrap()],
        outputs: vec![],
        timeout: None,
    }
}

fn served_version(server: &Runtime) -> u64 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime
        .block_on(server.infer(request()))
        .expect("inference succeeds")
        .version
}

#[test]
fn poll_mode_swaps_in_new_versions_and_keeps_serving_through_bad_ones() {
    let repository = TempRepository::with_bundled(&[MODEL]);
    let model_dir = repository.path().join(MODEL);
    let test_server = TestServer::start(repository.config(ModelControlMode::Poll));
    let server = test_server.runtime();
    assert_eq!(served_version(server), 1);

    // A new version appears: after a poll it serves, and the old one is retired.
    copy_dir(&model_dir.join("1"), &model_dir.join("2"));
    server.poll_repository();
    assert_eq!(served_version(server), 2);
    assert!(!server.model_ready(MODEL, Some(1)));

    // A broken configuration: the load fails, version 2 keeps serving, and the index
    // says why.
    let config = model_dir.join("config.pbtxt");
    let good = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        good.replace("max_batch_size: 8", "max_batch_size: -3"),
    )
    .unwrap();
    server.poll_repository();
    assert_eq!(served_version(server), 2);
    let index = server.repository_index().unwrap();
    let entry = index
        .iter()
        .find(|e| e.name == MODEL && e.version == "2")
        .expect("version 2 listed");
    assert_eq!(entry.state, "READY");
    let failed = index
        .iter()
        .find(|e| e.name == MODEL && !e.reason.is_empty());
    assert!(
        failed.is_some_and(|e| e.reason.contains("max_batch_size")),
        "the index should say why the reload failed: {index:?}"
    );

    // Fixed again: reloads.
    std::fs::write(&config, good).unwrap();
    server.poll_repository();
    assert_eq!(served_version(server), 2);
    assert!(server
        .repository_index()
        .unwrap()
        .iter()
        .all(|e| e.reason.is_empty()));

    // The folder is removed: the model is unloaded.
    std::fs::remove_dir_all(&model_dir).unwrap();
    server.poll_repository();
    assert!(!server.model_ready(MODEL, None));
}
