//! Every supported format and pixel layout decodes to the right picture, upright.
//!
//! Each test image is a four-quadrant picture (see `tests/fixtures/make_fixtures.py`):
//! top-left red, top-right green, bottom-left blue, bottom-right yellow. Images Rust can
//! encode are made here with the `image` crate; the others are fixtures made by Pillow.

use std::io::Cursor;
use std::path::PathBuf;

use ferroserve_core::preprocess::{ColorOrder, ImagePreprocessing, Layout, PixelType};
use ferroserve_vision::{ImagePreprocessor, VisionError};
use image::codecs::bmp::BmpEncoder;
use image::codecs::gif::GifEncoder;
use image::codecs::png::PngEncoder;
use image::codecs::webp::WebPEncoder;
use image::{ExtendedColorType, ImageEncoder};

const W: u32 = 64;
const H: u32 = 48;
const RED: [u8; 3] = [255, 0, 0];
const GREEN: [u8; 3] = [0, 255, 0];
const BLUE: [u8; 3] = [0, 0, 255];
const YELLOW: [u8; 3] = [255, 255, 0];
const QUADRANTS: [[u8; 3]; 4] = [RED, GREEN, BLUE, YELLOW];

/// Resize 64x48 to 32x24 and crop its central 24x24, raw RGB pixels, rows of 24.
fn small_u8(layout: Layout, color_order: ColorOrder) -> ImagePreprocessing {
    ImagePreprocessing {
        resize_short_side: 24,
        crop_width: 24,
        crop_height: 24,
        mean: [0.0; 3],
        std: [1.0; 3],
        color_order,
        layout,
        pixel_type: PixelType::U8,
        max_pixels: 1 << 20,
        jpeg_draft: false,
    }
}

fn preprocess(encoded: &[u8]) -> Vec<u8> {
    let mut pre = ImagePreprocessor::new(small_u8(Layout::Nhwc, ColorOrder::Rgb));
    let mut out = vec![0u8; pre.settings().image_len()];
    pre.preprocess_u8(encoded, &mut out).unwrap();
    out
}

/// RGB at the centre of each quadrant of a 24x24 NHWC crop: TL, TR, BL, BR.
fn quadrant_centers(out: &[u8]) -> [[u8; 3]; 4] {
    quadrant_centers_of(out, 24)
}

/// RGB at the centre of each quadrant of a `side` x `side` NHWC crop.
fn quadrant_centers_of(out: &[u8], side: usize) -> [[u8; 3]; 4] {
    let at = |x: usize, y: usize| {
        let i = (y * side + x) * 3;
        [out[i], out[i + 1], out[i + 2]]
    };
    let (near, far) = (side / 4, 3 * side / 4);
    [at(near, near), at(far, near), at(near, far), at(far, far)]
}

fn assert_quadrants(name: &str, encoded: &[u8], expected: [[u8; 3]; 4], tolerance: u8) {
    let got = quadrant_centers(&preprocess(encoded));
    for (g, e) in got.iter().zip(&expected) {
        for c in 0..3 {
            assert!(
                g[c].abs_diff(e[c]) <= tolerance,
                "{name}: quadrants {got:?}, expected {expected:?} within {tolerance}"
            );
        }
    }
}

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The quadrant picture with `channels` samples a pixel, made from RGB by `pixel`.
fn picture<T: Copy>(channels: usize, pixel: impl Fn([u8; 3], u32, u32) -> Vec<T>) -> Vec<T> {
    let mut data = Vec::with_capacity((W * H) as usize * channels);
    for y in 0..H {
        for x in 0..W {
            let q = usize::from(x >= W / 2) + 2 * usize::from(y >= H / 2);
            data.extend(pixel(QUADRANTS[q], x, y));
        }
    }
    data
}

fn gray_of(rgb: [u8; 3]) -> u8 {
    // Distinct gray levels for the four quadrants.
    match rgb {
        RED => 30,
        GREEN => 90,
        BLUE => 160,
        _ => 230,
    }
}

const GRAYS: [[u8; 3]; 4] = [[30; 3], [90; 3], [160; 3], [230; 3]];

fn png(data: &[u8], color: ExtendedColorType) -> Vec<u8> {
    let mut encoded = Vec::new();
    PngEncoder::new(&mut encoded)
        .write_image(data, W, H, color)
        .unwrap();
    encoded
}

fn bytes_of_u16(samples: Vec<u16>) -> Vec<u8> {
    // `write_image` takes 16-bit samples in native byte order.
    samples.iter().flat_map(|s| s.to_ne_bytes()).collect()
}

#[test]
fn png_rgb8() {
    let data = picture(3, |p, _, _| p.to_vec());
    assert_quadrants(
        "png rgb8",
        &png(&data, ExtendedColorType::Rgb8),
        QUADRANTS,
        0,
    );
}

#[test]
fn png_rgb16_is_scaled_to_8_bits() {
    let data = picture(3, |p, _, _| p.iter().map(|&v| u16::from(v) * 257).collect());
    let encoded = png(&bytes_of_u16(data), ExtendedColorType::Rgb16);
    assert_quadrants("png rgb16", &encoded, QUADRANTS, 0);
}

#[test]
fn png_rgba8_drops_alpha_without_compositing() {
    // Alpha varies from opaque to fully transparent; the colour must not change.
    let data = picture(4, |p, x, _| vec![p[0], p[1], p[2], (x * 4) as u8]);
    assert_quadrants(
        "png rgba8",
        &png(&data, ExtendedColorType::Rgba8),
        QUADRANTS,
        0,
    );
}

#[test]
fn png_rgba16() {
    let data = picture(4, |p, _, y| {
        let mut px: Vec<u16> = p.iter().map(|&v| u16::from(v) * 257).collect();
        px.push((y * 1000) as u16);
        px
    });
    let encoded = png(&bytes_of_u16(data), ExtendedColorType::Rgba16);
    assert_quadrants("png rgba16", &encoded, QUADRANTS, 0);
}

#[test]
fn png_gray8_is_replicated() {
    let data = picture(1, |p, _, _| vec![gray_of(p)]);
    assert_quadrants("png l8", &png(&data, ExtendedColorType::L8), GRAYS, 0);
}

#[test]
fn png_gray16() {
    let data = picture(1, |p, _, _| vec![u16::from(gray_of(p)) * 257]);
    let encoded = png(&bytes_of_u16(data), ExtendedColorType::L16);
    assert_quadrants("png l16", &encoded, GRAYS, 0);
}

#[test]
fn png_gray_alpha8() {
    let data = picture(2, |p, x, _| vec![gray_of(p), x as u8]);
    assert_quadrants("png la8", &png(&data, ExtendedColorType::La8), GRAYS, 0);
}

#[test]
fn png_gray_alpha16() {
    let data = picture(2, |p, _, _| vec![u16::from(gray_of(p)) * 257, 0]);
    let encoded = png(&bytes_of_u16(data), ExtendedColorType::La16);
    assert_quadrants("png la16", &encoded, GRAYS, 0);
}

#[test]
fn png_palette_with_transparency() {
    assert_quadrants("palette.png", &fixture("palette.png"), QUADRANTS, 0);
}

#[test]
fn bmp() {
    let data = picture(3, |p, _, _| p.to_vec());
    let mut encoded = Vec::new();
    BmpEncoder::new(&mut encoded)
        .write_image(&data, W, H, ExtendedColorType::Rgb8)
        .unwrap();
    assert_quadrants("bmp", &encoded, QUADRANTS, 0);
}

#[test]
fn bmp_and_gif_from_pillow() {
    for name in ["quadrants.bmp", "quadrants.gif"] {
        assert_quadrants(name, &fixture(name), QUADRANTS, 0);
    }
}

#[test]
fn gif_first_frame() {
    let first = picture(4, |p, _, _| vec![p[0], p[1], p[2], 255]);
    // A second frame of another picture must be ignored.
    let second = picture(4, |_, _, _| vec![9, 9, 9, 255]);
    let mut encoded = Vec::new();
    {
        let mut encoder = GifEncoder::new(&mut encoded);
        for data in [first, second] {
            let frame = image::RgbaImage::from_raw(W, H, data).unwrap();
            encoder.encode_frame(image::Frame::new(frame)).unwrap();
        }
    }
    // GIF quantises colours to a palette: allow a little drift.
    assert_quadrants("gif", &encoded, QUADRANTS, 8);
}

#[test]
fn webp_lossless() {
    let data = picture(3, |p, _, _| p.to_vec());
    let mut encoded = Vec::new();
    WebPEncoder::new_lossless(Cursor::new(&mut encoded))
        .encode(&data, W, H, ExtendedColorType::Rgb8)
        .unwrap();
    assert_quadrants("webp lossless", &encoded, QUADRANTS, 0);
}

#[test]
fn webp_lossy() {
    assert_quadrants("lossy.webp", &fixture("lossy.webp"), QUADRANTS, 8);
}

#[test]
fn jpeg_baseline() {
    assert_quadrants(
        "orientation-1.jpg",
        &fixture("orientation-1.jpg"),
        QUADRANTS,
        8,
    );
}

#[test]
fn jpeg_progressive() {
    assert_quadrants("progressive.jpg", &fixture("progressive.jpg"), QUADRANTS, 8);
}

#[test]
fn jpeg_grayscale() {
    assert_quadrants("gray.jpg", &fixture("gray.jpg"), GRAYS, 4);
}

#[test]
fn jpeg_cmyk() {
    // Bottom-right is yellow at 50% black: Pillow decodes it as (127, 127, 0).
    let expected = [RED, GREEN, BLUE, [127, 127, 0]];
    assert_quadrants("cmyk.jpg", &fixture("cmyk.jpg"), expected, 8);
}

#[test]
fn jpeg_exif_orientations_are_turned_upright() {
    for value in 1..=8 {
        let name = format!("orientation-{value}.jpg");
        assert_quadrants(&name, &fixture(&name), QUADRANTS, 8);
    }
}

#[test]
fn png_and_webp_exif_orientation() {
    for name in ["orientation-6.png", "orientation-6.webp"] {
        assert_quadrants(name, &fixture(name), QUADRANTS, 0);
    }
}

#[test]
fn layouts_channel_orders_and_normalisation_agree() {
    let encoded = fixture("orientation-6.jpg");
    let run = |layout, order| {
        let mut pre = ImagePreprocessor::new(small_u8(layout, order));
        let mut out = vec![0u8; pre.settings().image_len()];
        pre.preprocess_u8(&encoded, &mut out).unwrap();
        out
    };
    let nhwc_rgb = run(Layout::Nhwc, ColorOrder::Rgb);
    let nhwc_bgr = run(Layout::Nhwc, ColorOrder::Bgr);
    let nchw_rgb = run(Layout::Nchw, ColorOrder::Rgb);
    let nchw_bgr = run(Layout::Nchw, ColorOrder::Bgr);
    let plane = 24 * 24;
    for i in 0..plane {
        for c in 0..3 {
            let rgb = nhwc_rgb[i * 3 + c];
            assert_eq!(nhwc_bgr[i * 3 + 2 - c], rgb);
            assert_eq!(nchw_rgb[c * plane + i], rgb);
            assert_eq!(nchw_bgr[(2 - c) * plane + i], rgb);
        }
    }

    let mut settings = small_u8(Layout::Nchw, ColorOrder::Bgr);
    settings.pixel_type = PixelType::F32;
    settings.mean = [103.53, 116.28, 123.675];
    settings.std = [57.375, 57.12, 58.395];
    let mut pre = ImagePreprocessor::new(settings.clone());
    let mut out = vec![0f32; pre.settings().image_len()];
    pre.preprocess_f32(&encoded, &mut out).unwrap();
    for (i, (f, p)) in out.iter().zip(&nchw_bgr).enumerate() {
        let c = i / plane;
        assert_eq!(*f, (f32::from(*p) - settings.mean[c]) / settings.std[c]);
    }
}

#[test]
fn extreme_aspect_ratios_and_tiny_images() {
    // A one-pixel-wide strip is upscaled 256x across and cropped along its length; a 1x1
    // image becomes a flat crop of its colour.
    let mut pre = ImagePreprocessor::new(ImagePreprocessing::imagenet());
    let mut out = vec![0f32; pre.settings().image_len()];
    for (width, height) in [(1, 3000), (3000, 1), (1, 1), (2, 3)] {
        let data: Vec<u8> = (0..width * height).map(|i| (i % 200) as u8 + 20).collect();
        let mut encoded = Vec::new();
        PngEncoder::new(&mut encoded)
            .write_image(&data, width, height, ExtendedColorType::L8)
            .unwrap();
        pre.preprocess_f32(&encoded, &mut out).unwrap();
        assert!(out.iter().all(|v| v.is_finite()), "{width}x{height}");
    }
    let one = vec![0u8; 3];
    let mut encoded = Vec::new();
    PngEncoder::new(&mut encoded)
        .write_image(&one, 1, 1, ExtendedColorType::Rgb8)
        .unwrap();
    pre.preprocess_f32(&encoded, &mut out).unwrap();
    let black = [-123.675 / 58.395, -116.28 / 57.12, -103.53 / 57.375];
    for (c, plane) in out.chunks_exact(224 * 224).enumerate() {
        assert!(
            plane.iter().all(|v| (v - black[c]).abs() < 1e-5),
            "channel {c}"
        );
    }
}

#[test]
fn jpeg_draft_decodes_at_reduced_scale_and_keeps_the_picture() {
    // The fixtures are 64x48 and the resize needs a short side of 12: a draft decode at
    // half scale keeps 24, twice that. CMYK is left to the full decoder.
    let settings = ImagePreprocessing {
        resize_short_side: 12,
        crop_width: 12,
        crop_height: 12,
        ..small_u8(Layout::Nhwc, ColorOrder::Rgb)
    };
    let mut names: Vec<String> = (1..=8).map(|v| format!("orientation-{v}.jpg")).collect();
    names.extend(["progressive.jpg", "gray.jpg", "cmyk.jpg"].map(String::from));
    for name in names {
        let encoded = fixture(&name);
        let mut full = ImagePreprocessor::new(settings.clone());
        let mut draft = ImagePreprocessor::new(ImagePreprocessing {
            jpeg_draft: true,
            ..settings.clone()
        });
        let mut full_out = vec![0u8; full.settings().image_len()];
        let mut draft_out = full_out.clone();
        full.preprocess_u8(&encoded, &mut full_out).unwrap();
        draft.preprocess_u8(&encoded, &mut draft_out).unwrap();
        let (expected, got) = (
            quadrant_centers_of(&full_out, 12),
            quadrant_centers_of(&draft_out, 12),
        );
        for (g, e) in got.iter().zip(&expected) {
            for c in 0..3 {
                assert!(
                    g[c].abs_diff(e[c]) <= 8,
                    "{name}: draft {got:?}, full {expected:?}"
                );
            }
        }
        // The decoded pixels a quarter as many: the decode buffer shows it.
        let (full_kept, draft_kept) = (full.retained_bytes(), draft.retained_bytes());
        if name == "cmyk.jpg" {
            assert_eq!(draft_kept, full_kept, "{name}");
        } else {
            assert!(
                draft_kept < full_kept,
                "{name}: {draft_kept} vs {full_kept}"
            );
        }
    }
}

#[test]
fn jpeg_draft_never_weakens_the_pixel_limit() {
    let mut draft = ImagePreprocessor::new(ImagePreprocessing {
        jpeg_draft: true,
        max_pixels: 64 * 48 - 1,
        ..small_u8(Layout::Nhwc, ColorOrder::Rgb)
    });
    let mut out = vec![0u8; draft.settings().image_len()];
    let refused = draft.preprocess_u8(&fixture("orientation-1.jpg"), &mut out);
    assert!(
        matches!(refused, Err(VisionError::TooLarge { .. })),
        "{refused:?}"
    );
}
