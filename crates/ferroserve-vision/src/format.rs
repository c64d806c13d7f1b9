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

/// Width and height declared by the fixed-layout header of a PNG, GIF, BMP or WebP file,
/// read without running a decoder. `None` when the header is too short or malformed, and
/// always for JPEG, whose size sits in a frame marker that only a marker scan finds.
pub(crate) fn declared_size(format: ImageFormat, data: &[u8]) -> Option<(u32, u32)> {
    match format {
        ImageFormat::Jpeg => None,
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
