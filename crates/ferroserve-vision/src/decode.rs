//! Decoding any supported format into 8-bit gray or RGB pixels in a reusable buffer.

use std::io::Cursor;

use image::metadata::Orientation as ExifOrientation;
use image::{ColorType, ImageDecoder, ImageError, Limits};
use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;
use zune_jpeg::errors::DecodeErrors;
use zune_jpeg::JpegDecoder;

use crate::geometry::Orientation;
use crate::{ImageFormat, VisionError};

/// Colour channels of decoded pixels, 8 bits each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Channels {
    Gray = 1,
    Rgb = 3,
}

/// A decoded image whose pixels are the first `width * height * channels` bytes of the
/// buffer handed to [`decode`], rows top to bottom, as stored in the file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Decoded {
    pub width: u32,
    pub height: u32,
    pub channels: Channels,
    /// How the stored pixels must be turned to be displayed (EXIF orientation).
    pub orientation: Orientation,
}

impl Decoded {
    pub fn len(&self) -> usize {
        self.width as usize * self.height as usize * self.channels as usize
    }
}

/// Decodes `data`, already recognised as `format`, into `buf`, growing `buf` only when it is
/// smaller than this image needs. Refuses images declaring more than `max_pixels` pixels
/// before any pixel memory is allocated. With `draft_short_side`, a JPEG at least twice
/// that large on its short side is decoded at reduced scale, never below that size.
pub(crate) fn decode(
    format: ImageFormat,
    data: &[u8],
    max_pixels: u64,
    draft_short_side: Option<u32>,
    buf: &mut Vec<u8>,
) -> Result<Decoded, VisionError> {
    if let Some((width, height)) = crate::format::declared_size(format, data) {
        check_size(format, width, height, max_pixels)?;
    } else if format != ImageFormat::Jpeg {
        return Err(corrupt(format, "header is truncated or malformed"));
    }
    if format == ImageFormat::Png && crate::format::png_data_could_hold_pixels(data) == Some(false)
    {
        return Err(corrupt(
            format,
            "image data is too short for the declared size (truncated?)",
        ));
    }
    let limits = decoder_limits(max_pixels);
    let cursor = Cursor::new(data);
    let err = |e| image_error(format, e);
    match format {
        ImageFormat::Jpeg => decode_jpeg(data, max_pixels, draft_short_side, buf),
        ImageFormat::Png => {
            let decoder = image::codecs::png::PngDecoder::with_limits(cursor, limits.clone());
            decode_image(format, decoder.map_err(err)?, limits, max_pixels, buf)
        }
        ImageFormat::WebP => {
            let decoder = image::codecs::webp::WebPDecoder::new(cursor).map_err(err)?;
            decode_image(format, decoder, limits, max_pixels, buf)
        }
        ImageFormat::Bmp => {
            let decoder = image::codecs::bmp::BmpDecoder::new(cursor).map_err(err)?;
            decode_image(format, decoder, limits, max_pixels, buf)
        }
        ImageFormat::Gif => {
            let decoder = image::codecs::gif::GifDecoder::new(cursor).map_err(err)?;
            decode_image(format, decoder, limits, max_pixels, buf)
        }
    }
}

fn check_size(
    format: ImageFormat,
    width: u32,
    height: u32,
    max_pixels: u64,
) -> Result<(), VisionError> {
    if width == 0 || height == 0 {
        return Err(corrupt(format, format!("image is {width}x{height} pixels")));
    }
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(VisionError::TooLarge {
            width,
            height,
            max_pixels,
        });
    }
    Ok(())
}

/// Limits for the `image` decoders: no allocation beyond what the largest allowed image
/// needs in the widest pixel format they emit (16-bit RGBA, 8 bytes a pixel).
fn decoder_limits(max_pixels: u64) -> Limits {
    let mut limits = Limits::default();
    limits.max_alloc = Some(max_pixels.saturating_mul(8));
    limits
}

/// The first `len` bytes of `buf`, grown (never shrunk) to hold them. Bytes past what was
/// written before are zero; bytes from an earlier image are left for the decoder to overwrite.
///
/// Growing past the capacity takes a fresh zeroed allocation instead of extending the old
/// one: a large one comes from the OS as untouched zero pages, so a file that declares a
/// huge image and then fails to decode costs address space, not resident memory, and the
/// old contents are not copied.
fn scratch(buf: &mut Vec<u8>, len: usize) -> &mut [u8] {
    if buf.capacity() < len {
        *buf = Vec::new();
        *buf = vec![0; len];
    } else if buf.len() < len {
        buf.resize(len, 0);
    }
    &mut buf[..len]
}

fn decode_jpeg(
    data: &[u8],
    max_pixels: u64,
    draft_short_side: Option<u32>,
    buf: &mut Vec<u8>,
) -> Result<Decoded, VisionError> {
    let format = ImageFormat::Jpeg;
    crate::jpeg::check_markers(data).map_err(|broken| corrupt(format, broken))?;
    // Strict mode refuses truncated entropy data, as libjpeg (and so Pillow) does, instead
    // of filling the missing rows with gray. Our own size limit replaces zune's default one.
    let options = DecoderOptions::default()
        .set_strict_mode(true)
        .set_max_width(usize::from(u16::MAX))
        .set_max_height(usize::from(u16::MAX));
    let mut decoder = JpegDecoder::new_with_options(ZCursor::new(data), options);
    decoder.decode_headers().map_err(jpeg_error)?;
    let (width, height) = decoder
        .dimensions()
        .ok_or_else(|| corrupt(format, "no frame header"))?;
    let (width, height) = (width as u32, height as u32);
    check_size(format, width, height, max_pixels)?;
    let input = decoder
        .input_colorspace()
        .ok_or_else(|| corrupt(format, "no frame header"))?;
    let (output, channels) = match input {
        ColorSpace::Luma | ColorSpace::LumaA => (ColorSpace::Luma, Channels::Gray),
        // YCbCr, RGB, CMYK and YCCK all convert to RGB inside the decoder.
        _ => (ColorSpace::RGB, Channels::Rgb),
    };
    decoder.set_options(decoder.options().jpeg_set_out_colorspace(output));
    let orientation = decoder
        .exif()
        .and_then(|exif| ExifOrientation::from_exif_chunk(exif))
        .map_or(Orientation::IDENTITY, Orientation::from_exif);
    // CMYK and YCCK are left to the full decoder, which converts them.
    let scale = match (draft_short_side, input) {
        (Some(short), ColorSpace::YCbCr | ColorSpace::RGB | ColorSpace::Luma) => {
            draft_scale(width, height, short)
        }
        _ => 1,
    };
    if scale > 1 {
        return decode_jpeg_scaled(data, (width, height), scale, orientation, max_pixels, buf);
    }
    let decoded = Decoded {
        width,
        height,
        channels,
        orientation,
    };
    decoder
        .decode_into(scratch(buf, decoded.len()))
        .map_err(jpeg_error)?;
    Ok(decoded)
}

/// The largest reduction, 8, 4 or 2, that keeps the short side of a `width` x `height`
/// image at least `short_side`; 1 when none does.
fn draft_scale(width: u32, height: u32, short_side: u32) -> u32 {
    let short = width.min(height);
    [8, 4, 2]
        .into_iter()
        .find(|&scale| short.div_ceil(scale) >= short_side)
        .unwrap_or(1)
}

/// Decodes a JPEG of `size` at 1/`scale` of it, in the DCT domain (a reduced inverse DCT
/// per block, as libjpeg's `scale_denom`): the entropy decoding is the same, everything
/// after it works on `scale`² times fewer pixels.
fn decode_jpeg_scaled(
    data: &[u8],
    (width, height): (u32, u32),
    scale: u32,
    orientation: Orientation,
    max_pixels: u64,
    buf: &mut Vec<u8>,
) -> Result<Decoded, VisionError> {
    let format = ImageFormat::Jpeg;
    let failed = |e: jpeg_decoder::Error| corrupt(format, e.to_string());
    let mut decoder = jpeg_decoder::Decoder::new(data);
    decoder.set_max_decoding_buffer_size(
        usize::try_from(max_pixels.saturating_mul(4)).unwrap_or(usize::MAX),
    );
    // Both sizes fit in u16: zune-jpeg read them under that limit.
    let wanted = |side: u32| u16::try_from(side.div_ceil(scale)).unwrap_or(u16::MAX);
    let (scaled_width, scaled_height) = decoder
        .scale(wanted(width), wanted(height))
        .map_err(failed)?;
    let pixels = decoder.decode().map_err(failed)?;
    let channels = match decoder.info().map(|info| info.pixel_format) {
        Some(jpeg_decoder::PixelFormat::RGB24) => Channels::Rgb,
        Some(jpeg_decoder::PixelFormat::L8) => Channels::Gray,
        other => {
            return Err(VisionError::UnsupportedFeature {
                format,
                message: format!("reduced-scale decoding to {other:?}"),
            })
        }
    };
    let decoded = Decoded {
        width: u32::from(scaled_width),
        height: u32::from(scaled_height),
        channels,
        orientation,
    };
    if pixels.len() != decoded.len() {
        return Err(corrupt(
            format,
            "the scaled decoder returned the wrong number of pixels",
        ));
    }
    scratch(buf, decoded.len()).copy_from_slice(&pixels);
    Ok(decoded)
}

fn jpeg_error(error: DecodeErrors) -> VisionError {
    let format = ImageFormat::Jpeg;
    match error {
        DecodeErrors::Unsupported(scheme) => VisionError::UnsupportedFeature {
            format,
            message: format!("{scheme:?}"),
        },
        other => corrupt(format, other.to_string()),
    }
}

fn decode_image(
    format: ImageFormat,
    mut decoder: impl ImageDecoder,
    mut limits: Limits,
    max_pixels: u64,
    buf: &mut Vec<u8>,
) -> Result<Decoded, VisionError> {
    let err = |e| image_error(format, e);
    let (width, height) = decoder.dimensions();
    check_size(format, width, height, max_pixels)?;
    limits.max_image_width = Some(width);
    limits.max_image_height = Some(height);
    decoder.set_limits(limits).map_err(err)?;
    // Broken metadata does not make the pixels unusable: show them as stored.
    let orientation = decoder
        .orientation()
        .map_or(Orientation::IDENTITY, Orientation::from_exif);
    let color = decoder.color_type();
    let len = usize::try_from(decoder.total_bytes())
        .map_err(|_| corrupt(format, "decoded size overflows memory"))?;
    let bytes = scratch(buf, len);
    decoder.read_image(bytes).map_err(err)?;
    let pixels = width as usize * height as usize;
    let channels = narrow_in_place(format, bytes, pixels, color)?;
    Ok(Decoded {
        width,
        height,
        channels,
        orientation,
    })
}

/// Rewrites `pixels` pixels of `color` at the start of `bytes` as 8-bit gray or RGB in
/// place: alpha is dropped and 16-bit samples are rounded to 8 bits.
fn narrow_in_place(
    format: ImageFormat,
    bytes: &mut [u8],
    pixels: usize,
    color: ColorType,
) -> Result<Channels, VisionError> {
    let (channels, kept, stride, wide) = match color {
        ColorType::L8 => return Ok(Channels::Gray),
        ColorType::Rgb8 => return Ok(Channels::Rgb),
        ColorType::La8 => (Channels::Gray, 1, 2, false),
        ColorType::Rgba8 => (Channels::Rgb, 3, 4, false),
        ColorType::L16 => (Channels::Gray, 1, 2, true),
        ColorType::La16 => (Channels::Gray, 1, 4, true),
        ColorType::Rgb16 => (Channels::Rgb, 3, 6, true),
        ColorType::Rgba16 => (Channels::Rgb, 3, 8, true),
        other => {
            return Err(VisionError::UnsupportedFeature {
                format,
                message: format!("pixel type {other:?}"),
            })
        }
    };
    // Each output pixel is no wider than an input pixel, so writing pixel `i` only
    // overwrites bytes of pixels up to `i`, which were read already.
    for i in 0..pixels {
        let from = i * stride;
        for c in 0..kept {
            bytes[i * kept + c] = if wide {
                let at = from + 2 * c;
                let sample = u16::from_ne_bytes([bytes[at], bytes[at + 1]]);
                ((u32::from(sample) + 128) / 257) as u8
            } else {
                bytes[from + c]
            };
        }
    }
    Ok(channels)
}

fn image_error(format: ImageFormat, error: ImageError) -> VisionError {
    match error {
        ImageError::Unsupported(e) => VisionError::UnsupportedFeature {
            format,
            message: e.to_string(),
        },
        other => corrupt(format, other.to_string()),
    }
}

fn corrupt(format: ImageFormat, message: impl Into<String>) -> VisionError {
    VisionError::Corrupt {
        format,
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrows_wide_and_alpha_pixels_in_place() {
        let mut rgba = vec![1, 2, 3, 255, 4, 5, 6, 0];
        let channels = narrow_in_place(ImageFormat::Png, &mut rgba, 2, ColorType::Rgba8);
        assert_eq!(channels.unwrap(), Channels::Rgb);
        assert_eq!(&rgba[..6], &[1, 2, 3, 4, 5, 6]);

        let samples: [u16; 4] = [0, 65535, 257 * 100 + 128, 257 * 100 + 129];
        let mut la16: Vec<u8> = samples.iter().flat_map(|s| s.to_ne_bytes()).collect();
        let channels = narrow_in_place(ImageFormat::Png, &mut la16, 2, ColorType::La16);
        assert_eq!(channels.unwrap(), Channels::Gray);
        assert_eq!(&la16[..2], &[0, 100]);

        let mut l16 = samples[3].to_ne_bytes().to_vec();
        narrow_in_place(ImageFormat::Png, &mut l16, 1, ColorType::L16).unwrap();
        assert_eq!(l16[0], 101);

        let mut rgb16: Vec<u8> = samples[..3].iter().flat_map(|s| s.to_ne_bytes()).collect();
        narrow_in_place(ImageFormat::Png, &mut rgb16, 1, ColorType::Rgb16).unwrap();
        assert_eq!(&rgb16[..3], &[0, 255, 100]);
    }

    #[test]
    fn the_draft_scale_keeps_the_short_side_at_least_the_target() {
        assert_eq!(draft_scale(4000, 3000, 256), 8); // 500x375
        assert_eq!(draft_scale(1920, 1080, 256), 4); // 480x270
        assert_eq!(draft_scale(640, 480, 256), 1); // 240 would be too small
        assert_eq!(draft_scale(1000, 600, 256), 2); // 300
        assert_eq!(draft_scale(3000, 4000, 256), 8); // portrait alike
        assert_eq!(draft_scale(2041, 2041, 256), 8); // 256 rounded up
    }
}
