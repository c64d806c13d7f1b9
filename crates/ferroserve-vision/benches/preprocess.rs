//! Guards the single-thread cost of one image through `ImagePreprocessor::preprocess_f32`
//! (decode, resize to short side 256, center crop 224, normalise into an NCHW f32 slice):
//! a slower decoder path, a resize that loses its SIMD kernels or resamples more than the
//! crop, or per-image buffer growth all show here. `scripts/bench-preprocess.sh` runs it
//! next to the same work done by Pillow.
//!
//! The group `resample` times the resize-and-crop step alone on the same decoded pixels,
//! with this crate's resampler (Pillow's fixed-point bicubic, coefficient tables kept) and
//! with `fast_image_resize` 6 (Catmull-Rom convolution, coefficients rebuilt every call),
//! which this crate used before: the comparison that justifies keeping our own.
//!
//! Images: the comma-separated paths in `FERROSERVE_BENCH_IMAGES`, or by default
//! `tests/data/images/cat.jpg`.

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};
use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType as ResizePixelType, ResizeAlg, ResizeOptions};
use ferroserve_core::preprocess::{ColorOrder, ImagePreprocessing, Layout, PixelType};
use ferroserve_vision::bench::CropResampler;
use ferroserve_vision::ImagePreprocessor;

const SHORT_SIDE: u32 = 256;
const CROP: u32 = 224;

fn images() -> Vec<PathBuf> {
    match std::env::var("FERROSERVE_BENCH_IMAGES") {
        Ok(list) => list.split(',').map(PathBuf::from).collect(),
        Err(_) => {
            vec![PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/images/cat.jpg")]
        }
    }
}

fn read(path: &PathBuf) -> (String, Vec<u8>) {
    let encoded = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    (name, encoded)
}

fn preprocess(c: &mut Criterion) {
    let settings = ImagePreprocessing {
        resize_short_side: SHORT_SIDE,
        crop_width: CROP,
        crop_height: CROP,
        mean: [127.0; 3],
        std: [128.0; 3],
        color_order: ColorOrder::Rgb,
        layout: Layout::Nchw,
        pixel_type: PixelType::F32,
        max_pixels: ImagePreprocessing::DEFAULT_MAX_PIXELS,
        jpeg_draft: false,
    };
    let mut group = c.benchmark_group("preprocess_f32");
    for path in images() {
        let (name, encoded) = read(&path);
        let mut pre = ImagePreprocessor::new(settings.clone());
        let mut out = vec![0f32; pre.settings().image_len()];
        group.bench_function(name, |b| {
            b.iter(|| pre.preprocess_f32(&encoded, &mut out).unwrap())
        });
    }
    group.finish();
}

/// RGB pixels of `encoded`, upright as stored (the bench images carry no EXIF rotation).
fn decode_rgb(encoded: &[u8]) -> (Vec<u8>, u32, u32) {
    let rgb = image::load_from_memory(encoded).ok().map(|i| i.to_rgb8());
    if let Some(rgb) = rgb {
        let (w, h) = rgb.dimensions();
        return (rgb.into_raw(), w, h);
    }
    let options = zune_core::options::DecoderOptions::default()
        .jpeg_set_out_colorspace(zune_core::colorspace::ColorSpace::RGB);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(
        zune_core::bytestream::ZCursor::new(encoded),
        options,
    );
    let pixels = decoder.decode().expect("a JPEG or an image crate format");
    let (w, h) = decoder.dimensions().unwrap();
    (pixels, w as u32, h as u32)
}

/// The crop rectangle in source pixels, as this crate computed it for fast_image_resize.
fn crop_rect(width: u32, height: u32) -> (f64, f64, f64, f64) {
    let (w, h) = (f64::from(width), f64::from(height));
    let scale = f64::from(SHORT_SIDE) / w.min(h);
    let (rw, rh) = ((w * scale).round_ties_even(), (h * scale).round_ties_even());
    let crop = f64::from(CROP);
    let (left, top) = (((rw - crop) / 2.0).floor(), ((rh - crop) / 2.0).floor());
    let (sw, sh) = (w / rw, h / rh);
    (left * sw, top * sh, crop * sw, crop * sh)
}

fn resample(c: &mut Criterion) {
    let mut group = c.benchmark_group("resample");
    for path in images() {
        let (name, encoded) = read(&path);
        let (pixels, width, height) = decode_rgb(&encoded);

        let mut ours = CropResampler::default();
        group.bench_function(format!("{name}/ferroserve"), |b| {
            b.iter(|| {
                ours.resample(&pixels, width, height, SHORT_SIDE, CROP)
                    .len()
            })
        });

        let source = ImageRef::new(width, height, &pixels, ResizePixelType::U8x3).unwrap();
        let mut target = Image::new(CROP, CROP, ResizePixelType::U8x3);
        let (left, top, w, h) = crop_rect(width, height);
        let options = ResizeOptions::new()
            .resize_alg(ResizeAlg::Convolution(FilterType::CatmullRom))
            .crop(left, top, w, h);
        let mut resizer = fast_image_resize::Resizer::new();
        group.bench_function(format!("{name}/fast_image_resize"), |b| {
            b.iter(|| resizer.resize(&source, &mut target, &options).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, preprocess, resample);
criterion_main!(benches);
