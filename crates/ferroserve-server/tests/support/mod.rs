//! What the server's integration tests share: where the bundled models and the sample
//! images are, server options for a test, and copying a model folder.

#![allow(dead_code)] // each test binary uses its own part of this module

use std::path::{Path, PathBuf};

use ferroserve_server::models::LoadOptions;
use ferroserve_server::{ModelControlMode, ServerOptions};

/// The checkout's root (the bundled repository is `models/` below it).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The sample photos and their reference tensors.
pub fn images() -> PathBuf {
    repo_root().join("tests/data/images")
}

/// A test server on `repository`: one intra-op thread per instance, a queue of 64, two
/// preprocessing threads, a 1 MiB response cache.
pub fn options(repository: PathBuf, control_mode: ModelControlMode) -> ServerOptions {
    ServerOptions {
        model_repository: repository,
        control_mode,
        startup_models: Vec::new(),
        load: LoadOptions {
            engine: None,
            engine_options: Default::default(),
            intra_op_threads: Some(1),
            max_queue_size: 64,
            tune: false,
            naive: Default::default(),
        },
        preprocess_threads: 2,
        cache_bytes: 1 << 20,
    }
}

/// Copies the folder `from` (a model, say) to `to`, recursively, following links.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if std::fs::metadata(entry.path()).unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
