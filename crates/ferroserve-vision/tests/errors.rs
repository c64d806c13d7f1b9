//! Bad input is refused with the error that names what was wrong, never a panic, and
//! decompression bombs are refused from their header, before pixel memory is allocated.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ferroserve_core::preprocess::{ImagePreprocessing, PixelType};
use ferroserve_vision::{ImageFormat, ImagePreprocessor, VisionError};

fn imagenet() -> ImagePreprocessor {
    ImagePreprocessor::new(ImagePreprocessing::imagenet())
}

fn run(encoded: &[u8]) -> Result<(), VisionError> {
    let mut pre = imagenet();
    let mut out = vec![0f32; pre.settings().image_len()];
    pre.preprocess_f32(encoded, &mut out)
}

fn shared_image(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/images");
    std::fs::read(path.join(name)).unwrap()
}

/// Deterministic noise (xorshift), so failures reproduce.
fn noise(len: usize, mut state: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// A well-formed PNG declaring `width` x `height` RGB pixels whose compressed data holds
/// one row of zeros: what a decompression bomb looks like before it is inflated.
fn png_declaring(width: u32, height: u32) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    png_chunk(&mut png, b"IHDR", &ihdr);
    // zlib stream of a stored (uncompressed) block of 4 zero bytes.
    png_chunk(
        &mut png,
        b"IDAT",
        &[
            0x78, 0x01, 0x01, 0x04, 0x00, 0xFB, 0xFF, 0, 0, 0, 0, 0, 0x04, 0x00, 0x01,
        ],
    );
    png_chunk(&mut png, b"IEND", &[]);
    png
}

#[test]
fn empty_input() {
    assert!(matches!(run(&[]), Err(VisionError::Empty)));
}

#[test]
fn random_bytes() {
    for seed in 1..20 {
        let data = noise(4096, seed);
        assert!(
            matches!(run(&data), Err(VisionError::UnsupportedFormat)),
            "seed {seed}"
        );
    }
}

#[test]
fn random_bytes_behind_each_magic_are_corrupt() {
    let magics: [(&[u8], ImageFormat); 5] = [
        (b"\xFF\xD8\xFF", ImageFormat::Jpeg),
        (b"\x89PNG\r\n\x1a\n", ImageFormat::Png),
        (b"RIFF\x00\x10\x00\x00WEBP", ImageFormat::WebP),
        (b"GIF89a", ImageFormat::Gif),
        (b"BM", ImageFormat::Bmp),
    ];
    for (magic, expected) in magics {
        for seed in 1..10 {
            let mut data = magic.to_vec();
            data.extend(noise(2048, seed));
            match run(&data) {
                Err(VisionError::Corrupt { format, .. })
                | Err(VisionError::UnsupportedFeature { format, .. }) => {
                    assert_eq!(format, expected)
                }
                // Noise may declare a huge size; refusing it is right too.
                Err(VisionError::TooLarge { .. }) => {}
                other => panic!("{expected} + noise {seed}: {other:?}"),
            }
        }
    }
}

#[test]
fn unsupported_formats() {
    let tiff = b"II*\x00\x08\x00\x00\x00\x00\x00";
    let text = b"this is not an image, it is plain text\n";
    for data in [&tiff[..], &text[..]] {
        assert!(matches!(run(data), Err(VisionError::UnsupportedFormat)));
    }
}

#[test]
fn truncated_jpeg() {
    // A file that ends before its end-of-image marker is refused, as Pillow refuses it,
    // even where the decoder could pad the missing rows.
    let jpeg = shared_image("cat.jpg");
    for cut in [
        jpeg.len() / 10,
        jpeg.len() / 2,
        jpeg.len() - 64,
        jpeg.len() - 2,
    ] {
        let result = run(&jpeg[..cut]);
        assert!(
            matches!(
                result,
                Err(VisionError::Corrupt {
                    format: ImageFormat::Jpeg,
                    ..
                })
            ),
            "cut at {cut}: {result:?}"
        );
    }
}

/// The offset of the first byte after the SOS segment of `jpeg`: its entropy-coded data.
fn scan_start(jpeg: &[u8]) -> usize {
    let mut at = 2;
    loop {
        assert_eq!(jpeg[at], 0xFF, "a segment at {at}");
        let length = usize::from(u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]));
        let next = at + 2 + length;
        if jpeg[at + 1] == 0xDA {
            return next;
        }
        at = next;
    }
}

#[test]
fn a_jpeg_whose_scan_is_noise_is_corrupt() {
    // Headers intact, entropy-coded data replaced by noise, end-of-image marker kept:
    // a decoder would paint something; the file is refused instead.
    let jpeg = shared_image("cat.jpg");
    let start = scan_start(&jpeg);
    for seed in 1..10 {
        let mut broken = jpeg.clone();
        let end = broken.len() - 2;
        broken[start..end].copy_from_slice(&noise(end - start, seed));
        let result = run(&broken);
        assert!(
            matches!(&result, Err(VisionError::Corrupt { format: ImageFormat::Jpeg, message })
                if message.contains("marker")),
            "seed {seed}: {result:?}"
        );
    }
    // A few noisy bytes that happen to hold no 0xFF are not detectable this way; the
    // photo itself, untouched, still decodes.
    assert!(run(&jpeg).is_ok());
}

#[test]
fn truncated_png() {
    let png = shared_image("astronaut.png");
    for cut in [20, png.len() / 2, png.len() - 20] {
        let result = run(&png[..cut]);
        assert!(
            matches!(
                result,
                Err(VisionError::Corrupt {
                    format: ImageFormat::Png,
                    ..
                })
            ),
            "cut at {cut}: {result:?}"
        );
    }
}

#[test]
fn png_bomb_is_refused_from_its_header() {
    let bomb = png_declaring(100_000, 100_000);
    let started = Instant::now();
    let result = run(&bomb);
    assert!(
        matches!(
            result,
            Err(VisionError::TooLarge {
                width: 100_000,
                height: 100_000,
                max_pixels: ImagePreprocessing::DEFAULT_MAX_PIXELS
            })
        ),
        "{result:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    // The header alone is enough.
    assert!(matches!(
        run(&bomb[..33]),
        Err(VisionError::TooLarge { .. })
    ));
}

#[test]
fn jpeg_and_gif_bombs_are_refused_from_their_headers() {
    // cat.jpg with its baseline frame header (FFC0) patched to 65000x65000.
    let mut jpeg = shared_image("cat.jpg");
    let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    jpeg[sof + 5..sof + 9].copy_from_slice(&[0xFD, 0xE8, 0xFD, 0xE8]);
    let result = run(&jpeg);
    assert!(
        matches!(
            result,
            Err(VisionError::TooLarge {
                width: 65000,
                height: 65000,
                ..
            })
        ),
        "{result:?}"
    );

    let gif = b"GIF89a\xFF\xFF\xFF\xFF\x00\x00\x00";
    assert!(matches!(run(gif), Err(VisionError::TooLarge { .. })));
}

#[test]
fn max_pixels_is_the_settings_limit() {
    let mut settings = ImagePreprocessing::imagenet();
    settings.max_pixels = 451 * 300 - 1;
    let mut pre = ImagePreprocessor::new(settings);
    let mut out = vec![0f32; pre.settings().image_len()];
    let result = pre.preprocess_f32(&shared_image("cat.jpg"), &mut out);
    assert!(matches!(
        result,
        Err(VisionError::TooLarge {
            width: 451,
            height: 300,
            ..
        })
    ));
}

#[test]
fn wrong_output_length_and_type() {
    let jpeg = shared_image("cat.jpg");
    let mut pre = imagenet();
    let len = pre.settings().image_len();
    for wrong in [0, len - 1, len + 1] {
        let mut out = vec![0f32; wrong];
        let result = pre.preprocess_f32(&jpeg, &mut out);
        assert!(
            matches!(result, Err(VisionError::WrongOutputLen { expected, actual })
                if expected == len && actual == wrong),
            "{result:?}"
        );
    }
    let mut out = vec![0u8; len];
    let result = pre.preprocess_u8(&jpeg, &mut out);
    assert!(matches!(
        result,
        Err(VisionError::WrongPixelType {
            expected: PixelType::F32,
            requested: PixelType::U8
        })
    ));
}

#[test]
fn invalid_settings_are_refused() {
    let base = ImagePreprocessing::imagenet();
    let mut crop_too_big = base.clone();
    crop_too_big.crop_width = 257;
    let mut zero_std = base.clone();
    zero_std.std[1] = 0.0;
    let mut zero_side = base.clone();
    zero_side.resize_short_side = 0;
    let mut no_pixels = base;
    no_pixels.max_pixels = 0;
    let jpeg = shared_image("cat.jpg");
    for settings in [crop_too_big, zero_std, zero_side, no_pixels] {
        assert!(
            ImagePreprocessor::validate(&settings).is_err(),
            "{settings:?}"
        );
        let mut pre = ImagePreprocessor::new(settings);
        let mut out = vec![0f32; pre.settings().image_len()];
        let result = pre.preprocess_f32(&jpeg, &mut out);
        assert!(
            matches!(result, Err(VisionError::InvalidSettings(_))),
            "{result:?}"
        );
    }
    assert!(ImagePreprocessor::validate(&ImagePreprocessing::imagenet()).is_ok());
}

#[test]
fn preprocessor_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<ImagePreprocessor>();
}

#[test]
fn damaged_images_never_panic() {
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut settings = ImagePreprocessing::imagenet();
    settings.resize_short_side = 32;
    settings.crop_width = 32;
    settings.crop_height = 32;
    let mut pre = ImagePreprocessor::new(settings);
    let mut out = vec![0f32; pre.settings().image_len()];
    for entry in std::fs::read_dir(fixtures).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "py" || e == "md") {
            continue;
        }
        let original = std::fs::read(&path).unwrap();
        assert!(pre.preprocess_f32(&original, &mut out).is_ok(), "{path:?}");
        for cut in (1..original.len()).step_by(7) {
            let _ = pre.preprocess_f32(&original[..cut], &mut out);
        }
        let positions = noise(600, original.len() as u64);
        for pair in positions.chunks_exact(3) {
            let mut damaged = original.clone();
            let at = (usize::from(pair[0]) << 8 | usize::from(pair[1])) % damaged.len();
            damaged[at] ^= pair[2] | 1;
            let _ = pre.preprocess_f32(&damaged, &mut out);
        }
    }
}
