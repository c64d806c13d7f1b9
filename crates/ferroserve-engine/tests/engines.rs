//! One suite, run against every engine: the bundled efficientnet-lite0 on the reference
//! input tensors of tests/data/images must give the reference top-5 (computed
//! independently with onnxruntime 1.32 in Python), and bad input must be refused.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use ferroserve_core::reference::Reference;
use ferroserve_core::{DataType, Tensor, TensorRef};
use ferroserve_engine::{onnxruntime, Engine, EngineError, EngineKind, EngineOptions};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn load(kind: EngineKind) -> Arc<dyn Engine> {
    let model = repo_root().join("models/efficientnet-lite0/1/model.onnx");
    ferroserve_engine::load(kind, &model, &EngineOptions::default()).expect("model loads")
}

fn reference() -> &'static Reference {
    static REFERENCE: OnceLock<Reference> = OnceLock::new();
    REFERENCE.get_or_init(Reference::bundled)
}

fn reference_input(image: &str) -> Vec<u8> {
    reference().input(image)
}

/// One row of logits against the reference top-5 of `image`.
fn assert_matches_reference(logits: &[f32], image: &str) {
    reference().check_logits(image, logits).unwrap();
}

fn run(engine: &dyn Engine, batch: &[&str]) -> Tensor {
    let data: Vec<u8> = batch
        .iter()
        .flat_map(|image| reference_input(image))
        .collect();
    let shape = [batch.len(), 3, 224, 224];
    let input = TensorRef {
        dtype: DataType::Fp32,
        shape: &shape,
        data: &data,
    };
    let mut outputs = vec![Tensor::with_capacity(DataType::Fp32, 0)];
    engine
        .runner()
        .unwrap()
        .run(&[input], &mut outputs)
        .unwrap();
    outputs.pop().unwrap()
}

macro_rules! engine_suite {
    ($module:ident, $kind:expr) => {
        mod $module {
            use super::*;

            #[test]
            fn describes_the_model() {
                let engine = load($kind);
                assert_eq!(engine.kind(), $kind);
                let input = &engine.inputs()[0];
                assert_eq!(
                    (input.name.as_str(), input.dtype),
                    ("input", DataType::Fp32)
                );
                assert_eq!(input.shape, [-1, 3, 224, 224]);
                let output = &engine.outputs()[0];
                assert_eq!(
                    (output.name.as_str(), output.dtype),
                    ("logits", DataType::Fp32)
                );
                assert_eq!(output.shape, [-1, 1000]);
            }

            #[test]
            fn matches_reference_probabilities() {
                let engine = load($kind);
                for image in ["cat.jpg", "coffee.jpg", "motorcycle.jpg", "astronaut.png"] {
                    let out = run(engine.as_ref(), &[image]);
                    assert_eq!(out.shape, [1, 1000]);
                    assert_matches_reference(out.data.as_slice(), image);
                }
            }

            #[test]
            fn a_batch_equals_its_images_run_alone() {
                let engine = load($kind);
                let batch = run(engine.as_ref(), &["cat.jpg", "coffee.jpg"]);
                assert_eq!(batch.shape, [2, 1000]);
                let logits: &[f32] = batch.data.as_slice();
                for (i, image) in ["cat.jpg", "coffee.jpg"].into_iter().enumerate() {
                    let alone = run(engine.as_ref(), &[image]);
                    let alone: &[f32] = alone.data.as_slice();
                    let row = &logits[i * 1000..(i + 1) * 1000];
                    let worst = row
                        .iter()
                        .zip(alone)
                        .map(|(a, b)| (a - b).abs())
                        .fold(0.0, f32::max);
                    assert!(worst < 1e-3, "{image}: batched logits differ by {worst}");
                }
            }

            #[test]
            fn runners_work_in_parallel_threads() {
                let engine = load($kind);
                std::thread::scope(|scope| {
                    for image in ["cat.jpg", "coffee.jpg"] {
                        let engine = engine.clone();
                        scope.spawn(move || {
                            for _ in 0..3 {
                                let out = run(engine.as_ref(), &[image]);
                                assert_matches_reference(out.data.as_slice(), image);
                            }
                        });
                    }
                });
            }

            #[test]
            fn reads_misaligned_input_bytes() {
                let engine = load($kind);
                let mut bytes = vec![0u8];
                bytes.extend(reference_input("coffee.jpg"));
                let shape = [1, 3, 224, 224];
                let input = TensorRef {
                    dtype: DataType::Fp32,
                    shape: &shape,
                    data: &bytes[1..],
                };
                let mut outputs = vec![Tensor::with_capacity(DataType::Fp32, 0)];
                engine
                    .runner()
                    .unwrap()
                    .run(&[input], &mut outputs)
                    .unwrap();
                assert_matches_reference(outputs[0].data.as_slice(), "coffee.jpg");
            }

            #[test]
            fn refuses_bad_inputs() {
                let engine = load($kind);
                let mut runner = engine.runner().unwrap();
                let mut outputs = vec![Tensor::with_capacity(DataType::Fp32, 0)];
                let data = vec![0u8; 4 * 3 * 224 * 224];
                let cases: [(DataType, &[usize], &[u8], &str); 4] = [
                    (DataType::Fp32, &[1, 3, 224, 200], &data, "shape"),
                    (DataType::Fp32, &[1, 224, 224], &data, "shape"),
                    (DataType::Int32, &[1, 3, 224, 224], &data, "must be FP32"),
                    (DataType::Fp32, &[1, 3, 224, 224], &data[1..], "bytes"),
                ];
                for (dtype, shape, data, says) in cases {
                    let input = TensorRef { dtype, shape, data };
                    match runner.run(&[input], &mut outputs) {
                        Err(EngineError::InvalidInput(message)) => {
                            assert!(message.contains(says), "'{message}' should mention {says}")
                        }
                        other => panic!("{dtype} {shape:?}: expected InvalidInput, got {other:?}"),
                    }
                }
                assert!(matches!(
                    runner.run(&[], &mut outputs),
                    Err(EngineError::InvalidInput(_))
                ));
                // The runner still works after refusing bad input.
                let good = reference_input("cat.jpg");
                let input = TensorRef {
                    dtype: DataType::Fp32,
                    shape: &[1, 3, 224, 224],
                    data: &good,
                };
                runner.run(&[input], &mut outputs).unwrap();
                assert_matches_reference(outputs[0].data.as_slice(), "cat.jpg");
            }

            #[test]
            fn a_missing_or_broken_model_file_is_a_load_error() {
                let dir =
                    std::env::temp_dir().join(format!("ferroserve-engine-{}", std::process::id()));
                std::fs::create_dir_all(&dir).unwrap();
                let broken = dir.join(format!("{}-broken.onnx", stringify!($module)));
                std::fs::write(&broken, b"not an onnx model").unwrap();
                for path in [broken.clone(), dir.join("missing.onnx")] {
                    match ferroserve_engine::load($kind, &path, &EngineOptions::default()) {
                        Err(EngineError::Load { path: p, .. }) => assert_eq!(p, path),
                        Err(other) => panic!("expected a load error, got {other}"),
                        Ok(_) => panic!("{} loaded", path.display()),
                    }
                }
            }
        }
    };
}

engine_suite!(onnx_runtime, EngineKind::OnnxRuntime);
#[cfg(feature = "tract")]
engine_suite!(tract, EngineKind::Tract);

#[test]
fn a_missing_onnxruntime_library_says_how_to_install_it() {
    let err =
        onnxruntime::library_path(Some("/nonexistent/libonnxruntime.so".as_ref())).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("/nonexistent/libonnxruntime.so"),
        "{message}"
    );
    assert!(
        message.contains("scripts/setup-onnxruntime.sh"),
        "{message}"
    );
    assert!(message.contains("ORT_DYLIB_PATH"), "{message}");
}
