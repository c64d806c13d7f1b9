//! One worker's image preprocessor: decode, resample the center crop, write the tensor.

use ferroserve_core::preprocess::{ColorOrder, ImagePreprocessing, Layout, PixelType};

use crate::decode::{self, Channels};
use crate::geometry::{CropPlan, PixelWalk};
use crate::resample::Resampler;
use crate::{ImageFormat, InvalidSettings, VisionError};

/// Turns encoded images into model input, one image at a time, writing straight into a
/// caller-owned tensor slice.
///
/// Each image is decoded (JPEG, PNG, WebP, BMP or GIF, recognised by its magic bytes), turned
/// upright by its EXIF orientation, resized so its short side is `resize_short_side` with an
/// antialiased Catmull-Rom bicubic filter (Pillow's `BICUBIC`), center-cropped, and written
/// in the settings' layout, channel order and element type. Alpha is dropped without
/// compositing, gray is replicated to three channels, 16-bit samples are rounded to 8 bits.
///
/// The preprocessor keeps its decode and resample buffers, and the resampler's coefficient
/// tables, between calls: after the first image of a given size, preprocessing another of
/// that size allocates nothing of its own (the decoders still allocate their state). A
/// buffer grown past [`ImagePreprocessor::RETAINED_BYTES`] for one large image is freed once
/// that image is done, so that what a preprocessor keeps between calls
/// ([`ImagePreprocessor::retained_bytes`]) stays under that cap whatever clients send.
/// Give each worker thread its own preprocessor; it is `Send`, not meant to be shared.
pub struct ImagePreprocessor {
    settings: ImagePreprocessing,
    /// Why the settings cannot be carried out, if they cannot.
    invalid: Option<InvalidSettings>,
    /// `(p - mean[c]) / std[c]` for every 8-bit value `p`, per output channel `c`.
    normalized: [[f32; 256]; 3],
    /// Decoded pixels of the current image, 8-bit gray or RGB, as stored in the file.
    decoded: Vec<u8>,
    /// The resampled crop, in stored orientation.
    resampled: Vec<u8>,
    /// One displayed row of the crop, for crops that cannot be read in place.
    row: Vec<[u8; 3]>,
    resampler: Resampler,
}

/// Held while an image larger than [`ImagePreprocessor::RETAINED_BYTES`] is decoded.
static LARGE_IMAGE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The most bytes decoding `encoded` may take, from its declared size (8 bytes a pixel,
/// 16-bit RGBA, for the formats that have it; 3 for JPEG, which decodes to 8-bit RGB);
/// the pixel limit's worth when the size cannot be read.
fn decode_bytes_at_most(format: ImageFormat, encoded: &[u8], max_pixels: u64) -> u64 {
    let pixels = crate::format::declared_size(format, encoded)
        .map_or(max_pixels, |(w, h)| u64::from(w) * u64::from(h))
        .min(max_pixels);
    let per_pixel = if format == ImageFormat::Jpeg { 3 } else { 8 };
    pixels * per_pixel
}

/// What `resample` left in `ImagePreprocessor::resampled`.
#[derive(Clone, Copy)]
struct Resampled {
    channels: Channels,
    walk: PixelWalk,
}

impl ImagePreprocessor {
    /// The most heap memory a preprocessor keeps between images: 64 MiB.
    ///
    /// Enough for the decode buffer of a 4000x3000 photo as RGB (36 MB, a JPEG) or RGBA
    /// (48 MB, a PNG) and the resampler's scratch memory, so that the common large image
    /// is decoded into reused memory; an image needing more (up to `max_pixels` x 8 bytes
    /// for a 16-bit RGBA PNG) gets its buffer for the duration of the call only.
    pub const RETAINED_BYTES: usize = 64 << 20;

    /// A preprocessor carrying out `settings`.
    ///
    /// Settings that [`ImagePreprocessor::validate`] refuses make every call fail with
    /// [`VisionError::InvalidSettings`]; validate them at start-up.
    pub fn new(settings: ImagePreprocessing) -> ImagePreprocessor {
        let invalid = ImagePreprocessor::validate(&settings).err();
        let mut normalized = [[0.0; 256]; 3];
        for (c, table) in normalized.iter_mut().enumerate() {
            for (p, value) in table.iter_mut().enumerate() {
                *value = (p as f32 - settings.mean[c]) / settings.std[c];
            }
        }
        ImagePreprocessor {
            settings,
            invalid,
            normalized,
            decoded: Vec::new(),
            resampled: Vec::new(),
            row: Vec::new(),
            resampler: Resampler::new(),
        }
    }

    /// Checks that `settings` can be carried out: no zero size, a crop no larger than
    /// `resize_short_side` (the center crop must fit inside the resized image), finite
    /// `mean`, finite non-zero `std`, and `max_pixels` of at least 1.
    pub fn validate(settings: &ImagePreprocessing) -> Result<(), InvalidSettings> {
        let s = settings;
        let fail = |message: String| Err(InvalidSettings(message));
        if s.resize_short_side == 0 || s.crop_width == 0 || s.crop_height == 0 {
            return fail(format!(
                "resize_short_side {} and crop {}x{} must all be at least 1",
                s.resize_short_side, s.crop_width, s.crop_height
            ));
        }
        if s.crop_width > s.resize_short_side || s.crop_height > s.resize_short_side {
            return fail(format!(
                "crop {}x{} does not fit in an image resized to a short side of {}",
                s.crop_width, s.crop_height, s.resize_short_side
            ));
        }
        if s.std.iter().any(|d| *d == 0.0 || !d.is_finite())
            || s.mean.iter().any(|m| !m.is_finite())
        {
            return fail(format!(
                "mean {:?} must be finite and std {:?} finite and non-zero",
                s.mean, s.std
            ));
        }
        if s.max_pixels == 0 {
            return fail("max_pixels must be at least 1".to_owned());
        }
        Ok(())
    }

    /// Heap bytes this preprocessor keeps between calls (its buffers' capacities and the
    /// resampler's tables), at most [`ImagePreprocessor::RETAINED_BYTES`] after any call.
    pub fn retained_bytes(&self) -> usize {
        self.decoded.capacity()
            + self.resampled.capacity()
            + self.row.capacity() * size_of::<[u8; 3]>()
            + self.resampler.retained_bytes()
    }

    /// Frees the buffers that one large image grew past the cap.
    fn release_excess(&mut self) {
        if self.retained_bytes() > Self::RETAINED_BYTES {
            self.decoded = Vec::new();
            self.resampler.release_scratch();
        }
    }

    /// The settings this preprocessor carries out.
    pub fn settings(&self) -> &ImagePreprocessing {
        &self.settings
    }

    /// Decodes `encoded` and writes one image of `settings().image_len()` elements into
    /// `out`, each `(pixel - mean[c]) / std[c]`.
    ///
    /// Requires settings with [`PixelType::F32`] and `out.len() == settings().image_len()`.
    /// On error `out` is left untouched.
    pub fn preprocess_f32(&mut self, encoded: &[u8], out: &mut [f32]) -> Result<(), VisionError> {
        self.check_output(PixelType::F32, out.len())?;
        let resampled = self.resample(encoded)?;
        let normalized = &self.normalized;
        write_image(
            &self.resampled,
            resampled,
            &self.settings,
            &mut self.row,
            out,
            |c, p| normalized[c][usize::from(p)],
        );
        Ok(())
    }

    /// Decodes `encoded` and writes one image of `settings().image_len()` raw pixels
    /// (0..=255, `mean` and `std` unused) into `out`.
    ///
    /// Requires settings with [`PixelType::U8`] and `out.len() == settings().image_len()`.
    /// On error `out` is left untouched.
    pub fn preprocess_u8(&mut self, encoded: &[u8], out: &mut [u8]) -> Result<(), VisionError> {
        self.check_output(PixelType::U8, out.len())?;
        let resampled = self.resample(encoded)?;
        write_image(
            &self.resampled,
            resampled,
            &self.settings,
            &mut self.row,
            out,
            |_, p| p,
        );
        Ok(())
    }

    fn check_output(&self, requested: PixelType, len: usize) -> Result<(), VisionError> {
        if let Some(invalid) = &self.invalid {
            return Err(VisionError::InvalidSettings(invalid.clone()));
        }
        if self.settings.pixel_type != requested {
            return Err(VisionError::WrongPixelType {
                expected: self.settings.pixel_type,
                requested,
            });
        }
        let expected = self.settings.image_len();
        if len != expected {
            return Err(VisionError::WrongOutputLen {
                expected,
                actual: len,
            });
        }
        Ok(())
    }

    /// Decodes `encoded` into `self.decoded` and resamples its crop into `self.resampled`,
    /// then frees what a large image grew. An image whose pixels need more than
    /// [`Self::RETAINED_BYTES`] waits for its turn: one such image is decoded at a time in
    /// the whole process, so that however many preprocessors run, their memory stays under
    /// one large image plus [`Self::RETAINED_BYTES`] each.
    fn resample(&mut self, encoded: &[u8]) -> Result<Resampled, VisionError> {
        if encoded.is_empty() {
            return Err(VisionError::Empty);
        }
        let format = ImageFormat::sniff(encoded).ok_or(VisionError::UnsupportedFormat)?;
        let large = decode_bytes_at_most(format, encoded, self.settings.max_pixels)
            > Self::RETAINED_BYTES as u64;
        let _turn = large.then(|| LARGE_IMAGE.lock().unwrap_or_else(|e| e.into_inner()));
        let resampled = self.decode_and_resample(format, encoded);
        self.release_excess();
        resampled
    }

    fn decode_and_resample(
        &mut self,
        format: ImageFormat,
        encoded: &[u8],
    ) -> Result<Resampled, VisionError> {
        let settings = &self.settings;
        // Twice the target: decoding down to the target itself changed the top-1 of 6% of
        // the accuracy set; with this margin, none (docs/preprocessing.md).
        let draft = settings
            .jpeg_draft
            .then_some(settings.resize_short_side * 2);
        let decoded = decode::decode(
            format,
            encoded,
            settings.max_pixels,
            draft,
            &mut self.decoded,
        )?;
        let plan = CropPlan::new(
            decoded.width,
            decoded.height,
            decoded.orientation,
            settings.resize_short_side,
            settings.crop_width,
            settings.crop_height,
        );
        self.resampler.resample(
            &self.decoded[..decoded.len()],
            decoded.width as usize,
            decoded.channels,
            &plan,
            &mut self.resampled,
        );
        Ok(Resampled {
            channels: decoded.channels,
            walk: plan.walk,
        })
    }
}

/// Writes the resampled crop into `out` in displayed order, in the settings' layout and
/// channel order; `value(c, p)` gives the element for pixel value `p` of output channel `c`.
/// `scratch` holds one displayed row when the crop cannot be read in place.
fn write_image<T>(
    resampled: &[u8],
    image: Resampled,
    settings: &ImagePreprocessing,
    scratch: &mut Vec<[u8; 3]>,
    out: &mut [T],
    value: impl Fn(usize, u8) -> T,
) {
    let (width, height) = (settings.crop_width as usize, settings.crop_height as usize);
    let bgr = settings.color_order == ColorOrder::Bgr;
    // Output channels 0, 1, 2 of an RGB pixel.
    let ordered = |[r, g, b]: [u8; 3]| if bgr { [b, g, r] } else { [r, g, b] };
    scratch.resize(width, [0; 3]);
    match settings.layout {
        Layout::Nchw => {
            let plane = width * height;
            let (first, rest) = out.split_at_mut(plane);
            let (second, third) = rest.split_at_mut(plane);
            let planes = first
                .chunks_exact_mut(width)
                .zip(second.chunks_exact_mut(width))
                .zip(third.chunks_exact_mut(width));
            for (y, ((out0, out1), out2)) in planes.enumerate() {
                let row = displayed_row(resampled, image, y, scratch);
                let outs = out0.iter_mut().zip(out1.iter_mut()).zip(out2.iter_mut());
                for (((o0, o1), o2), &pixel) in outs.zip(row) {
                    let [p0, p1, p2] = ordered(pixel);
                    *o0 = value(0, p0);
                    *o1 = value(1, p1);
                    *o2 = value(2, p2);
                }
            }
        }
        Layout::Nhwc => {
            for (y, outs) in out.chunks_exact_mut(width * 3).enumerate() {
                let row = displayed_row(resampled, image, y, scratch);
                for (o, &pixel) in outs.chunks_exact_mut(3).zip(row) {
                    let [p0, p1, p2] = ordered(pixel);
                    o[0] = value(0, p0);
                    o[1] = value(1, p1);
                    o[2] = value(2, p2);
                }
            }
        }
    }
}

/// Displayed row `y` of the resampled crop as RGB pixels: read in place when the crop is
/// RGB and upright, otherwise gathered (and gray replicated) into `scratch`.
fn displayed_row<'a>(
    resampled: &'a [u8],
    image: Resampled,
    y: usize,
    scratch: &'a mut [[u8; 3]],
) -> &'a [[u8; 3]] {
    let walk = image.walk;
    let start = walk.index(0, y);
    match image.channels {
        Channels::Rgb => {
            let (pixels, _) = resampled.as_chunks::<3>();
            if walk.step_x == 1 {
                return &pixels[start..start + scratch.len()];
            }
            for (x, out) in scratch.iter_mut().enumerate() {
                *out = pixels[walk.index(x, y)];
            }
        }
        Channels::Gray => {
            for (x, out) in scratch.iter_mut().enumerate() {
                *out = [resampled[walk.index(x, y)]; 3];
            }
        }
    }
    scratch
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CRC-32 of PNG chunks (ISO 3309), bit by bit.
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    fn chunk(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut out = (body.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(body);
        let crc = crc32(&[kind.as_slice(), body].concat());
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    #[test]
    fn a_png_declaring_more_pixels_than_its_data_holds_is_refused_before_decoding() {
        // Issue 14: 69 bytes declaring 8000x8000 RGBA16 (512 MB of pixels, within the
        // default max_pixels) used to grow the decode buffer to 512 MB and keep it.
        let mut ihdr = 8000u32.to_be_bytes().to_vec();
        ihdr.extend_from_slice(&8000u32.to_be_bytes());
        ihdr.extend_from_slice(&[16, 6, 0, 0, 0]);
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend(chunk(b"IHDR", &ihdr));
        png.extend(chunk(
            b"IDAT",
            &[
                0x78, 0x9c, 0xed, 0xc1, 0x01, 0x0d, 0, 0, 0, 0xc2, 0xa0, 0xf7,
            ],
        ));
        png.extend(chunk(b"IEND", &[]));
        assert_eq!(png.len(), 69);
        let mut pre = ImagePreprocessor::new(ImagePreprocessing::imagenet());
        let mut out = vec![0f32; pre.settings().image_len()];
        let error = pre.preprocess_f32(&png, &mut out).unwrap_err();
        assert!(matches!(error, VisionError::Corrupt { .. }), "{error}");
        assert_eq!(pre.decoded.capacity(), 0);
        assert!(pre.retained_bytes() < ImagePreprocessor::RETAINED_BYTES);
    }

    #[test]
    fn buffers_grown_past_the_cap_are_released_and_smaller_ones_kept() {
        // 16384x520 RGBA16: 68 MB decoded, over the 64 MiB cap; all zero, so a small file.
        let (width, height) = (16384u32, 520u32);
        let pixels = vec![0u8; width as usize * height as usize * 8];
        let mut png = Vec::new();
        image::ImageEncoder::write_image(
            image::codecs::png::PngEncoder::new(&mut png),
            &pixels,
            width,
            height,
            image::ExtendedColorType::Rgba16,
        )
        .unwrap();
        drop(pixels);
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/images/");
        let photo = std::fs::read(format!("{dir}motorcycle.jpg")).unwrap();
        let mut pre = ImagePreprocessor::new(ImagePreprocessing::imagenet());
        let mut out = vec![0f32; pre.settings().image_len()];

        pre.preprocess_f32(&png, &mut out).unwrap();
        for plane in out.chunks_exact(out.len() / 3) {
            assert!(plane.iter().all(|&v| v == plane[0]), "a black image");
        }
        assert!(pre.retained_bytes() <= ImagePreprocessor::RETAINED_BYTES);
        assert_eq!(pre.decoded.capacity(), 0);

        // A normal photo grows its buffers again once, then reuses them.
        pre.preprocess_f32(&photo, &mut out).unwrap();
        let decoded = (pre.decoded.as_ptr(), pre.decoded.capacity());
        let kept = pre.retained_bytes();
        pre.preprocess_f32(&photo, &mut out).unwrap();
        assert_eq!((pre.decoded.as_ptr(), pre.decoded.capacity()), decoded);
        assert_eq!(pre.retained_bytes(), kept);
    }

    #[test]
    fn buffers_do_not_grow_after_the_first_image() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/images/");
        let large = std::fs::read(format!("{dir}motorcycle.jpg")).unwrap();
        let small = std::fs::read(format!("{dir}cat.jpg")).unwrap();
        let mut pre = ImagePreprocessor::new(ImagePreprocessing::imagenet());
        let mut out = vec![0f32; pre.settings().image_len()];
        pre.preprocess_f32(&large, &mut out).unwrap();
        let buffers = |pre: &ImagePreprocessor| {
            [
                (pre.decoded.as_ptr() as usize, pre.decoded.capacity()),
                (pre.resampled.as_ptr() as usize, pre.resampled.capacity()),
                (pre.row.as_ptr() as usize, pre.row.capacity()),
            ]
        };
        let after_first = buffers(&pre);
        for encoded in [&large, &small, &large] {
            pre.preprocess_f32(encoded, &mut out).unwrap();
            assert_eq!(buffers(&pre), after_first);
        }
    }
}
