//! Recognising an encoded image from its leading bytes, and reading the size its header
//! declares before any decoder runs.

use std::fmt;

/// An encoded image format this crate decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageFormat {
    /// Baseline or progressive; gray, YCbCr, RGB, CMYK or YCCK.
    Jpeg,
    /// 1 to 16 bits, gray, RGB, palette, with or without alpha.
    Png,
    /// Lossy or lossless.
    WebP,
    /// Windows bitmap.
    Bmp,
    /// The first frame.
    Gif,
}

impl ImageFormat {
    /// Recognises the format from the magic bytes at the start of `data`, never from a file
    /// name. `None` when the bytes match none of the supported formats.
    pub fn sniff(data: &[u8]) -> Option<ImageFormat> {
        if data.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(ImageFormat::Jpeg)
        } else if data.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(ImageFormat::Png)
        } else if data.len() >= 12 && data.starts_with(b"RIFF") && &data[8..12] == b"WEBP" {
            Some(ImageFormat::WebP)
        } else if data.starts_with(b"GIF87a") || data.starts_with(b"GIF89a") {
            Some(ImageFormat::Gif)
        } else if data.starts_with(b"BM") {
            Some(ImageFormat::Bmp)
        } else {
            None
        }
    }

    /// Lower-case name, as in the format's MIME subtype: `jpeg`, `png`, `webp`, `bmp`, `gif`.
    pub fn name(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "jpeg",
            ImageFormat::Png => "png",
            ImageFormat::WebP => "webp",
            ImageFormat::Bmp => "bmp",
            ImageFormat::Gif => "gif",
        }
    }
}

impl fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Width and height declared by the header of an image, read without running a decoder:
/// the fixed-layout header of a PNG, GIF, BMP or WebP file, the frame header of a JPEG.
/// `None` when the header is too short or malformed.
pub(crate) fn declared_size(format: ImageFormat, data: &[u8]) -> Option<(u32, u32)> {
    match format {
        ImageFormat::Jpeg => crate::jpeg::frame_size(data),
        // Signature, then the IHDR chunk: length, "IHDR", width and height big-endian.
        ImageFormat::Png => {
            if data.get(12..16)? != b"IHDR" {
                return None;
            }
            Some((be_u32(data, 16)?, be_u32(data, 20)?))
        }
        // Logical screen descriptor right after the 6-byte signature.
        ImageFormat::Gif => Some((u32::from(le_u16(data, 6)?), u32::from(le_u16(data, 8)?))),
        // 14-byte file header, then a DIB header whose first field is its own size.
        ImageFormat::Bmp => match le_u32(data, 14)? {
            12 => Some((u32::from(le_u16(data, 18)?), u32::from(le_u16(data, 20)?))),
            _ => {
                let width = i32::try_from(le_u32(data, 18)?).ok()?;
                // A negative height marks a top-down bitmap.
                let height = le_u32(data, 22)? as i32;
                Some((u32::try_from(width).ok()?, height.unsigned_abs()))
            }
        },
        // RIFF header, then the first chunk: VP8X (extended), VP8L (lossless) or VP8 (lossy).
        ImageFormat::WebP => match data.get(12..16)? {
            b"VP8X" => Some((le_u24(data, 24)? + 1, le_u24(data, 27)? + 1)),
            b"VP8L" => {
                if *data.get(20)? != 0x2F {
                    return None;
                }
                let bits = le_u32(data, 21)?;
                Some(((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1))
            }
            b"VP8 " => {
                if data.get(23..26)? != [0x9D, 0x01, 0x2A] {
                    return None;
                }
                let width = u32::from(le_u16(data, 26)? & 0x3FFF);
                let height = u32::from(le_u16(data, 28)? & 0x3FFF);
                Some((width, height))
            }
            _ => None,
        },
    }
}

/// Deflate's largest expansion: 258 bytes from a 2-bit length-and-distance code.
const DEFLATE_MAX_RATIO: u64 = 1032;

/// Whether the compressed image data of the PNG `data` could inflate to the pixels its
/// header declares: the declared rows (without their filter bytes, which only adds
/// margin) must not exceed `1032 x` the bytes of all IDAT chunks before the first
/// unreadable one. A 69-byte file declaring 8000x8000 RGBA16 fails here, before any
/// decoder reserves the 512 MB its pixels would need. `None` if the header is unreadable.
pub(crate) fn png_data_could_hold_pixels(data: &[u8]) -> Option<bool> {
    let (width, height) = declared_size(ImageFormat::Png, data)?;
    let (depth, color) = (*data.get(24)?, *data.get(25)?);
    let samples: u64 = match color {
        0 | 3 => 1,
        2 => 3,
        4 => 2,
        6 => 4,
        _ => return Some(true),
    };
    let row_bits = u64::from(width) * samples * u64::from(depth);
    let declared = row_bits.div_ceil(8) * u64::from(height);
    let mut compressed = 0u64;
    let mut at = 8;
    while let (Some(len), Some(kind)) = (be_u32(data, at), data.get(at + 4..at + 8)) {
        if kind == b"IDAT" {
            // What the file holds, not what a truncated chunk claims.
            let present = data.len().saturating_sub(at + 8).min(len as usize);
            compressed += present as u64;
        }
        at = at.saturating_add(12).saturating_add(len as usize);
    }
    Some(declared <= compressed.saturating_mul(DEFLATE_MAX_RATIO))
}

fn be_u32(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

fn le_u32(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

fn le_u24(data: &[u8], at: usize) -> Option<u32> {
    let b = data.get(at..at + 3)?;
    Some(u32::from(b[0]) | u32::from(b[1]) << 8 | u32::from(b[2]) << 16)
}

fn le_u16(data: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(data.get(at..at + 2)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_magic_bytes() {
        assert_eq!(
            ImageFormat::sniff(b"\xFF\xD8\xFF\xE0rest"),
            Some(ImageFormat::Jpeg)
        );
        assert_eq!(
            ImageFormat::sniff(b"\x89PNG\r\n\x1a\nrest"),
            Some(ImageFormat::Png)
        );
        assert_eq!(
            ImageFormat::sniff(b"RIFF\0\0\0\0WEBPVP8 "),
            Some(ImageFormat::WebP)
        );
        assert_eq!(ImageFormat::sniff(b"RIFF\0\0\0\0WAVEfmt "), None);
        assert_eq!(ImageFormat::sniff(b"GIF89a\x01\0"), Some(ImageFormat::Gif));
        assert_eq!(ImageFormat::sniff(b"BM\0\0"), Some(ImageFormat::Bmp));
        assert_eq!(ImageFormat::sniff(b"II*\0"), None);
        assert_eq!(ImageFormat::sniff(b""), None);
    }

    #[test]
    fn png_data_must_be_able_to_hold_the_declared_pixels() {
        let chunk = |kind: &[u8], body: &[u8]| {
            let mut c = (body.len() as u32).to_be_bytes().to_vec();
            c.extend_from_slice(kind);
            c.extend_from_slice(body);
            c.extend_from_slice(&[0; 4]);
            c
        };
        let png = |width: u32, height: u32, idat: usize| {
            let mut ihdr = width.to_be_bytes().to_vec();
            ihdr.extend_from_slice(&height.to_be_bytes());
            ihdr.extend_from_slice(&[16, 6, 0, 0, 0]);
            let mut data = b"\x89PNG\r\n\x1a\n".to_vec();
            data.extend(chunk(b"IHDR", &ihdr));
            data.extend(chunk(b"IDAT", &vec![0; idat]));
            data.extend(chunk(b"IEND", &[]));
            data
        };
        // 8000x8000 RGBA16 is 512 MB of rows: 10 bytes cannot hold them, 500 KB can.
        assert_eq!(
            png_data_could_hold_pixels(&png(8000, 8000, 10)),
            Some(false)
        );
        assert_eq!(
            png_data_could_hold_pixels(&png(8000, 8000, 500_000)),
            Some(true)
        );
        assert_eq!(png_data_could_hold_pixels(&png(8000, 8000, 10)[..20]), None);
        let truncated = png(8000, 8000, 500_000);
        assert_eq!(png_data_could_hold_pixels(&truncated[..69]), Some(false));
    }

    #[test]
    fn reads_declared_sizes() {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        png.extend_from_slice(&100_000u32.to_be_bytes());
        png.extend_from_slice(&7u32.to_be_bytes());
        assert_eq!(declared_size(ImageFormat::Png, &png), Some((100_000, 7)));
        assert_eq!(declared_size(ImageFormat::Png, &png[..20]), None);

        let gif = b"GIF89a\x10\x27\x02\x00";
        assert_eq!(declared_size(ImageFormat::Gif, gif), Some((10_000, 2)));

        let mut bmp = vec![0u8; 26];
        bmp[..2].copy_from_slice(b"BM");
        bmp[14..18].copy_from_slice(&40u32.to_le_bytes());
        bmp[18..22].copy_from_slice(&640i32.to_le_bytes());
        bmp[22..26].copy_from_slice(&(-480i32).to_le_bytes());
        assert_eq!(declared_size(ImageFormat::Bmp, &bmp), Some((640, 480)));

        let mut vp8x = b"RIFF\0\0\0\0WEBPVP8X\x0a\0\0\0\0\0\0\0".to_vec();
        vp8x.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0x01, 0x00, 0x00]);
        assert_eq!(declared_size(ImageFormat::WebP, &vp8x), Some((1 << 24, 2)));
    }
}
