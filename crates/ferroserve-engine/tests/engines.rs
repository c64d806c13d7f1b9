//! One suite, run against every engine: the bundled efficientnet-lite0 on the reference
//! input tensors of tests/data/images must give the reference top-5 (computed
//! independently with onnxruntime 1.32 in Python, in f32, the precision the suite runs
//! in), and bad input must be refused. Then what only some engines do: OpenVINO's IR
//! and precisions, and the precisions the others refuse.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use ferroserve_core::reference::Reference;
use ferroserve_core::{DataType, Precision, Tensor, TensorRef};
use ferroserve_engine::{onnxruntime, Engine, EngineError, EngineKind, EngineOptions};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn bundled_model() -> PathBuf {
    repo_root().join("models/efficientnet-lite0/1/model.onnx")
}

fn load(kind: EngineKind) -> Arc<dyn Engine> {
    let options = EngineOptions {
        precision: Some(Precision::F32),
        ..EngineOptions::default()
    };
    ferroserve_engine::load(kind, &bundled_model(), &options).expect("model loads")
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
                assert_eq!(engine.precision(), Precision::F32);
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
            fn a_runner_of_two_threads_gives_the_same_results() {
                let engine = load($kind);
                let data = reference_input("motorcycle.jpg");
                let input = TensorRef {
                    dtype: DataType::Fp32,
                    shape: &[1, 3, 224, 224],
                    data: &data,
                };
                let mut outputs = vec![Tensor::with_capacity(DataType::Fp32, 0)];
                let mut runner = engine.runner_with_threads(2).unwrap();
                runner.run(&[input], &mut outputs).unwrap();
                assert_matches_reference(outputs[0].data.as_slice(), "motorcycle.jpg");
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
#[cfg(feature = "openvino")]
engine_suite!(openvino, EngineKind::OpenVino);
#[cfg(feature = "tract")]
engine_suite!(tract, EngineKind::Tract);

/// The engines that compute a model as its file holds it refuse bf16 and f16, and int8
/// for a file that is not quantized; auto is f32.
#[test]
fn onnxruntime_and_tract_compute_in_the_precision_of_the_file() {
    let mut kinds = vec![EngineKind::OnnxRuntime];
    if cfg!(feature = "tract") {
        kinds.push(EngineKind::Tract);
    }
    for kind in kinds {
        for precision in [Precision::Bf16, Precision::F16, Precision::Int8] {
            let options = EngineOptions {
                precision: Some(precision),
                ..EngineOptions::default()
            };
            let message = match ferroserve_engine::load(kind, &bundled_model(), &options) {
                Err(EngineError::Load { path, reason }) => {
                    assert_eq!(path, bundled_model());
                    reason
                }
                Err(other) => panic!("{kind:?} {precision}: expected a load error, got {other}"),
                Ok(_) => panic!("{kind:?} loaded the f32 model in {precision}"),
            };
            let says = match precision {
                Precision::Int8 => "needs a quantized model file",
                _ => "precision of its file",
            };
            assert!(message.contains(says), "{kind:?} {precision}: {message}");
        }
        let auto = EngineOptions {
            precision: Some(Precision::Auto),
            ..EngineOptions::default()
        };
        let engine = ferroserve_engine::load(kind, &bundled_model(), &auto).unwrap();
        assert_eq!(engine.precision(), Precision::F32, "{kind:?}");
    }
}

#[cfg(feature = "openvino")]
mod openvino_only {
    use super::*;
    use ferroserve_engine::openvino;

    fn options(precision: Precision) -> EngineOptions {
        EngineOptions {
            precision: Some(precision),
            ..EngineOptions::default()
        }
    }

    fn load_error(path: &Path, options: &EngineOptions) -> String {
        match ferroserve_engine::load(EngineKind::OpenVino, path, options) {
            Err(EngineError::Load { path: p, reason }) => {
                assert_eq!(p, path);
                reason
            }
            Err(other) => panic!("expected a load error, got {other}"),
            Ok(_) => panic!("{} loaded", path.display()),
        }
    }

    /// A folder of its own for one test, removed first if a run left it.
    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("ferroserve-openvino-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// An OpenVINO IR written by hand: `output = input + bias`, input f32 `[-1, 4]`,
    /// the bias four f32 constants in `model.bin`. With `quantized`, a FakeQuantize of
    /// 256 levels over [0, 2.55] follows the addition (an int8 model).
    fn write_ir(dir: &Path, bias: [f32; 4], quantized: bool) -> PathBuf {
        let mut weights: Vec<u8> = bias.iter().flat_map(|b| b.to_le_bytes()).collect();
        let scalar = |id: usize, name: &str, offset: usize| {
            format!(
                r#"<layer id="{id}" name="{name}" type="Const" version="opset1">
                  <data element_type="f32" shape="" offset="{offset}" size="4"/>
                  <output><port id="0" precision="FP32"/></output>
                </layer>"#
            )
        };
        let port = |id: usize, names: &str| {
            format!(r#"<port id="{id}" precision="FP32"{names}><dim>-1</dim><dim>4</dim></port>"#)
        };
        let mut layers = vec![
            format!(
                r#"<layer id="0" name="input" type="Parameter" version="opset1">
                  <data shape="?,4" element_type="f32"/>
                  <output>{}</output>
                </layer>"#,
                port(0, r#" names="input""#)
            ),
            r#"<layer id="1" name="bias" type="Const" version="opset1">
                  <data element_type="f32" shape="1,4" offset="0" size="16"/>
                  <output><port id="0" precision="FP32"><dim>1</dim><dim>4</dim></port></output>
                </layer>"#
                .to_string(),
            format!(
                r#"<layer id="2" name="add" type="Add" version="opset1">
                  <data auto_broadcast="numpy"/>
                  <input>{}<port id="1" precision="FP32"><dim>1</dim><dim>4</dim></port></input>
                  <output>{}</output>
                </layer>"#,
                port(0, ""),
                port(2, if quantized { "" } else { r#" names="output""# })
            ),
        ];
        let mut edges = vec![
            r#"<edge from-layer="0" from-port="0" to-layer="2" to-port="0"/>"#.to_string(),
            r#"<edge from-layer="1" from-port="0" to-layer="2" to-port="1"/>"#.to_string(),
        ];
        let last = if quantized {
            for (i, (name, value)) in [
                ("in_low", 0.0f32),
                ("in_high", 2.55),
                ("out_low", 0.0),
                ("out_high", 2.55),
            ]
            .into_iter()
            .enumerate()
            {
                layers.push(scalar(3 + i, name, weights.len()));
                weights.extend(value.to_le_bytes());
                edges.push(format!(
                    r#"<edge from-layer="{}" from-port="0" to-layer="7" to-port="{}"/>"#,
                    3 + i,
                    1 + i
                ));
            }
            layers.push(format!(
                r#"<layer id="7" name="quantize" type="FakeQuantize" version="opset1">
                  <data levels="256" auto_broadcast="numpy"/>
                  <input>{}<port id="1" precision="FP32"/><port id="2" precision="FP32"/><port id="3" precision="FP32"/><port id="4" precision="FP32"/></input>
                  <output>{}</output>
                </layer>"#,
                port(0, ""),
                port(5, r#" names="output""#)
            ));
            edges.push(
                r#"<edge from-layer="2" from-port="2" to-layer="7" to-port="0"/>"#.to_string(),
            );
            (7, 5)
        } else {
            (2, 2)
        };
        layers.push(format!(
            r#"<layer id="8" name="result" type="Result" version="opset1">
              <input>{}</input>
            </layer>"#,
            port(0, "")
        ));
        edges.push(format!(
            r#"<edge from-layer="{}" from-port="{}" to-layer="8" to-port="0"/>"#,
            last.0, last.1
        ));
        let xml = format!(
            "<?xml version=\"1.0\"?>\n<net name=\"bias\" version=\"11\">\n<layers>\n{}\n</layers>\n<edges>\n{}\n</edges>\n</net>\n",
            layers.join("\n"),
            edges.join("\n")
        );
        let model = dir.join("model.xml");
        std::fs::write(&model, xml).unwrap();
        std::fs::write(dir.join("model.bin"), weights).unwrap();
        model
    }

    fn run_rows(engine: &dyn Engine, rows: &[[f32; 4]]) -> Vec<f32> {
        let data: Vec<u8> = rows
            .iter()
            .flatten()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let input = TensorRef {
            dtype: DataType::Fp32,
            shape: &[rows.len(), 4],
            data: &data,
        };
        let mut outputs = vec![Tensor::with_capacity(DataType::Fp32, 0)];
        engine
            .runner()
            .unwrap()
            .run(&[input], &mut outputs)
            .unwrap();
        assert_eq!(outputs[0].shape, [rows.len(), 4]);
        outputs[0].data.as_slice::<f32>().to_vec()
    }

    #[test]
    fn reads_an_ir_and_needs_its_weights_beside_it() {
        let dir = scratch("ir");
        let model = write_ir(&dir, [1.0, 2.0, 3.0, 4.0], false);
        let engine =
            ferroserve_engine::load(EngineKind::OpenVino, &model, &options(Precision::F32))
                .expect("the IR loads");
        assert_eq!(engine.inputs()[0].name, "input");
        assert_eq!(engine.inputs()[0].shape, [-1, 4]);
        assert_eq!(engine.outputs()[0].name, "output");
        let out = run_rows(
            engine.as_ref(),
            &[[0.5, 0.5, 0.5, 0.5], [-1.0, -2.0, -3.0, -4.0]],
        );
        assert_eq!(out, [1.5, 2.5, 3.5, 4.5, 0.0, 0.0, 0.0, 0.0]);

        std::fs::remove_file(dir.join("model.bin")).unwrap();
        let reason = load_error(&model, &options(Precision::F32));
        assert!(
            reason.contains("model.bin") && reason.contains("missing"),
            "{reason}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn int8_runs_a_quantized_model_and_refuses_one_that_is_not() {
        let dir = scratch("int8");
        let model = write_ir(&dir, [0.0, 0.5, 1.0, 1.5], true);
        let engine =
            ferroserve_engine::load(EngineKind::OpenVino, &model, &options(Precision::Int8))
                .expect("the quantized IR loads");
        assert_eq!(engine.precision(), Precision::Int8);
        // Steps of 0.01 over [0, 2.55]: clamped at both ends.
        let out = run_rows(engine.as_ref(), &[[0.123, 0.123, 2.0, -5.0]]);
        let expected = [0.12, 0.62, 2.55, 0.0];
        for (got, want) in out.iter().zip(expected) {
            assert!((got - want).abs() < 0.006, "{out:?} against {expected:?}");
        }
        std::fs::remove_dir_all(&dir).unwrap();

        let reason = load_error(&bundled_model(), &options(Precision::Int8));
        assert!(reason.contains("needs a quantized model file"), "{reason}");
    }

    /// bf16 and f16 load where the CPU computes them natively, as OpenVINO reports it,
    /// and are refused with the reason elsewhere; auto is bf16 where it is native, and no
    /// precision at all is f32.
    #[test]
    fn reduced_precisions_follow_what_the_cpu_computes_natively() {
        let (capabilities, cpu) = openvino::cpu_capabilities(None).unwrap();
        println!("{cpu}: {capabilities:?}");
        let native = |c: &str| capabilities.iter().any(|have| have == c);
        for (precision, capability) in [(Precision::Bf16, "BF16"), (Precision::F16, "FP16")] {
            if native(capability) {
                let engine = ferroserve_engine::load(
                    EngineKind::OpenVino,
                    &bundled_model(),
                    &options(precision),
                )
                .unwrap_or_else(|e| panic!("{precision} on {cpu}: {e}"));
                assert_eq!(engine.precision(), precision);
                // Reduced precision moves the probabilities; the top class stays.
                let out = run(engine.as_ref(), &["cat.jpg"]);
                let logits: &[f32] = out.data.as_slice();
                let best = (0..logits.len())
                    .max_by(|&a, &b| logits[a].total_cmp(&logits[b]))
                    .unwrap();
                assert_eq!(best, reference().top5("cat.jpg")[0].index, "{precision}");
            } else {
                let reason = load_error(&bundled_model(), &options(precision));
                assert!(
                    reason.contains(&format!("precision {precision} is not native on this CPU"))
                        && reason.contains(capability)
                        && reason.contains(&cpu),
                    "{reason}"
                );
            }
        }
        let auto = ferroserve_engine::load(
            EngineKind::OpenVino,
            &bundled_model(),
            &options(Precision::Auto),
        )
        .unwrap();
        let expected = if native("BF16") {
            Precision::Bf16
        } else {
            Precision::F32
        };
        assert_eq!(auto.precision(), expected);
        // Without a precision it is f32 whatever the CPU: bf16 is asked for, never assumed.
        let default =
            ferroserve_engine::load(EngineKind::OpenVino, &bundled_model(), &Default::default())
                .unwrap();
        assert_eq!(default.precision(), Precision::F32);
    }

    /// The configuration's precision (Triton's `HINT_BF16` here) reaches the engine,
    /// and `--precision` wins over it.
    #[test]
    fn the_command_line_precision_wins_over_the_configuration() {
        let dir = scratch("precedence");
        let folder = dir.join("m");
        std::fs::create_dir_all(folder.join("1")).unwrap();
        std::fs::hard_link(bundled_model(), folder.join("1/model.onnx"))
            .or_else(|_| std::fs::copy(bundled_model(), folder.join("1/model.onnx")).map(drop))
            .unwrap();
        std::fs::write(
            folder.join("config.pbtxt"),
            "backend: \"openvino\"\ndefault_model_filename: \"model.onnx\"\n\
             parameters { key: \"HINT_BF16\" value { string_value: \"YES\" } }\n",
        )
        .unwrap();
        let repository = ferroserve_core::ModelRepository::open(&dir).unwrap();
        let description = repository.load("m").unwrap();
        let version = &description.versions[0];
        let load = |precision: Option<Precision>| {
            let options = EngineOptions {
                precision,
                ..EngineOptions::default()
            };
            ferroserve_engine::model::LoadedModel::load(&description, version, None, &options)
        };
        let (capabilities, _) = openvino::cpu_capabilities(None).unwrap();
        match load(None) {
            Ok(model) => {
                assert!(capabilities.iter().any(|c| c == "BF16"));
                assert_eq!(model.engine.precision(), Precision::Bf16);
            }
            Err(e) => {
                assert!(!capabilities.iter().any(|c| c == "BF16"), "{e}");
                assert!(
                    e.to_string().contains("precision bf16 is not native"),
                    "{e}"
                );
            }
        }
        let model = load(Some(Precision::F32)).expect("f32 loads anywhere");
        assert_eq!(model.engine.kind(), EngineKind::OpenVino);
        assert_eq!(model.engine.precision(), Precision::F32);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_openvino_library_says_how_to_install_it() {
        let missing = Path::new("/nonexistent/libopenvino_c.so.2641");
        let message = openvino::library_path(Some(missing))
            .unwrap_err()
            .to_string();
        for says in [
            "/nonexistent/libopenvino_c.so.2641",
            "scripts/setup-openvino.sh",
            "OPENVINO_LIB_PATH",
        ] {
            assert!(message.contains(says), "{message}");
        }
        // Even once another test has loaded the library, a path that is not there fails.
        let options = EngineOptions {
            openvino_library: Some(missing.to_path_buf()),
            ..EngineOptions::default()
        };
        match ferroserve_engine::load(EngineKind::OpenVino, &bundled_model(), &options) {
            Err(EngineError::RuntimeMissing(message)) => {
                assert!(message.contains("setup-openvino.sh"), "{message}")
            }
            Err(other) => panic!("expected RuntimeMissing, got {other}"),
            Ok(_) => panic!("loaded without its library"),
        }
    }
}

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
