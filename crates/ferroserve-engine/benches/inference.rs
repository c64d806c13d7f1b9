//! Engine time per image: efficientnet-lite0 at batch 1 and batch 8 on ONNX Runtime and
//! OpenVINO (1 and 2 intra-op threads, f32) and tract. Guards against regressions in the engine
//! wrappers (input views, output copies) and shows the engines' relative speed.

use std::path::Path;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ferroserve_core::{DataType, Precision, Tensor, TensorRef};
use ferroserve_engine::{EngineKind, EngineOptions};

fn inference(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let model = root.join("models/efficientnet-lite0/1/model.onnx");
    let image =
        std::fs::read(root.join("tests/data/images/cat.input.f32")).expect("reference input");
    let mut group = c.benchmark_group("efficientnet-lite0");
    group.sample_size(20);
    let engines = [
        ("onnxruntime-1-thread", EngineKind::OnnxRuntime, 1),
        ("onnxruntime-2-threads", EngineKind::OnnxRuntime, 2),
        ("openvino-1-thread", EngineKind::OpenVino, 1),
        ("openvino-2-threads", EngineKind::OpenVino, 2),
        ("tract", EngineKind::Tract, 1),
    ];
    for (name, kind, threads) in engines {
        let options = EngineOptions {
            intra_op_threads: threads,
            precision: Some(Precision::F32),
            ..EngineOptions::default()
        };
        let engine = ferroserve_engine::load(kind, &model, &options).expect("model loads");
        let mut runner = engine.runner().expect("runner");
        for batch in [1usize, 8] {
            let data: Vec<u8> = image.repeat(batch);
            let shape = [batch, 3, 224, 224];
            let input = TensorRef {
                dtype: DataType::Fp32,
                shape: &shape,
                data: &data,
            };
            let mut outputs = vec![Tensor::with_capacity(DataType::Fp32, 0)];
            group.throughput(Throughput::Elements(batch as u64));
            group.bench_with_input(BenchmarkId::new(name, batch), &batch, |b, _| {
                b.iter(|| runner.run(&[input], &mut outputs).expect("inference"))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, inference);
criterion_main!(benches);
