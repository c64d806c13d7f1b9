//! Guards the single-thread cost of one image through `ImagePreprocessor::preprocess_f32`
//! (decode, resize to short side 256, center crop 224, normalise into an NCHW f32 slice):
//! a slower decoder path, a resize that loses its SIMD kernels or resamples more than the
//! crop, or per-image buffer growth all show here. `scripts/bench-preprocess.sh` runs it
//! next to the same work done by Pillow.
//!
//! Images: the comma-separated paths in `FERROSERVE_BENCH_IMAGES`, or by default
//! `tests/data/images/cat.jpg`.

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};
use ferroserve_core::preprocess::{ColorOrder, ImagePreprocessing, Layout, PixelType};
use ferroserve_vision::ImagePreprocessor;

fn images() -> Vec<PathBuf> {
    match std::env::var("FERROSERVE_BENCH_IMAGES") {
        Ok(list) => list.split(',').map(PathBuf::from).collect(),
        Err(_) => {
            vec![PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/images/cat.jpg")]
        }
    }
}

fn preprocess(c: &mut Criterion) {
    let settings = ImagePreprocessing {
        resize_short_side: 256,
        crop_width: 224,
        crop_height: 224,
        mean: [127.0; 3],
        std: [128.0; 3],
        color_order: ColorOrder::Rgb,
        layout: Layout::Nchw,
        pixel_type: PixelType::F32,
        max_pixels: ImagePreprocessing::DEFAULT_MAX_PIXELS,
    };
    let mut group = c.benchmark_group("preprocess_f32");
    for path in images() {
        let encoded = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let mut pre = ImagePreprocessor::new(settings.clone());
        let mut out = vec![0f32; pre.settings().image_len()];
        group.bench_function(name, |b| {
            b.iter(|| pre.preprocess_f32(&encoded, &mut out).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, preprocess);
criterion_main!(benches);
