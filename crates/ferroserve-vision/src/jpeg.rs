//! The marker structure of a JPEG file, walked once before its pixels are decoded.
//!
//! A decoder fills what it cannot read with something plausible, so a file whose
//! entropy-coded data is noise still "decodes". Real encoders never write such data:
//! inside a scan, a 0xFF byte is followed only by a stuffed 0x00, a restart marker in
//! sequence, fill bytes or the next segment. [`check_markers`] refuses anything else.

/// Why a JPEG's structure is broken.
pub(crate) type Broken = String;

/// Walks the segments of `data` (which starts with SOI) and the entropy-coded data of
/// every scan, up to EOI.
pub(crate) fn check_markers(data: &[u8]) -> Result<(), Broken> {
    let mut at = 2; // after SOI
    let mut restart_interval = 0u16;
    loop {
        let (marker, next) = next_marker(data, at)?;
        match marker {
            EOI => return Ok(()),
            0x00..=0xBF | SOI => {
                return Err(format!(
                    "marker 0xFF{marker:02X} at byte {} is not valid here",
                    next - 2
                ));
            }
            RST0..=RST7 => {
                return Err(format!(
                    "restart marker 0xFF{marker:02X} at byte {} is outside a scan",
                    next - 2
                ));
            }
            _ => {
                let length = segment_length(data, next)?;
                let body = &data[next + 2..next + length];
                if marker == DRI {
                    restart_interval = body
                        .get(..2)
                        .map(|b| u16::from_be_bytes([b[0], b[1]]))
                        .ok_or("the restart interval segment is too short")?;
                }
                at = next + length;
                if marker == SOS {
                    at = skip_scan(data, at, restart_interval)?;
                }
            }
        }
    }
}

/// The width and height in the frame header (SOFn) of the JPEG `data`, found by walking
/// its segments; `None` if there is none before the first scan.
pub(crate) fn frame_size(data: &[u8]) -> Option<(u32, u32)> {
    let mut at = 2;
    loop {
        let (marker, next) = next_marker(data, at).ok()?;
        match marker {
            0xC0..=0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => {
                let header = data.get(next + 3..next + 7)?;
                let height = u16::from_be_bytes([header[0], header[1]]);
                let width = u16::from_be_bytes([header[2], header[3]]);
                return Some((u32::from(width), u32::from(height)));
            }
            SOS | EOI | 0x00..=0xBF | SOI | RST0..=RST7 => return None,
            _ => at = next + segment_length(data, next).ok()?,
        }
    }
}

const RST0: u8 = 0xD0;
const RST7: u8 = 0xD7;
const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOS: u8 = 0xDA;
const DRI: u8 = 0xDD;

/// The next marker at or after `at` and the position after it. Stray bytes between
/// segments are skipped, as libjpeg does (with a warning): they do not make the pixels
/// wrong, unlike noise inside a scan.
fn next_marker(data: &[u8], at: usize) -> Result<(u8, usize), Broken> {
    let truncated = || "the file ends before its end-of-image marker (truncated?)".to_string();
    let mut at = at
        + data
            .get(at..)
            .ok_or_else(truncated)?
            .iter()
            .position(|&b| b == 0xFF)
            .ok_or_else(truncated)?;
    while data.get(at) == Some(&0xFF) {
        at += 1;
    }
    match data.get(at) {
        Some(&marker) => Ok((marker, at + 1)),
        None => Err(truncated()),
    }
}

/// The length of the segment whose length field is at `at`, checked against the file.
fn segment_length(data: &[u8], at: usize) -> Result<usize, Broken> {
    let length = data
        .get(at..at + 2)
        .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
        .ok_or("the file ends inside a segment header (truncated?)")?;
    if length < 2 || at + length > data.len() {
        return Err(format!(
            "the segment at byte {} runs past the end of the file (truncated?)",
            at - 2
        ));
    }
    Ok(length)
}

/// Skips the entropy-coded data of a scan that starts at `at`; returns the position of
/// the marker that ends it. Restart markers must come in order, and only when the file
/// set a restart interval.
fn skip_scan(data: &[u8], mut at: usize, restart_interval: u16) -> Result<usize, Broken> {
    let mut expected_restart = 0u8;
    loop {
        let Some(offset) = memchr::memchr(0xFF, &data[at..]) else {
            return Err("the file ends inside a scan (truncated?)".into());
        };
        let marker_at = at + offset;
        let mut after = marker_at + 1;
        while data.get(after) == Some(&0xFF) {
            after += 1;
        }
        match data.get(after) {
            None => return Err("the file ends inside a scan (truncated?)".into()),
            Some(0x00) => at = after + 1,
            Some(&marker @ RST0..=RST7) => {
                if restart_interval == 0 || marker - RST0 != expected_restart {
                    return Err(format!(
                        "the entropy-coded data holds restart marker 0xFF{marker:02X} at byte {marker_at} out of sequence (corrupt data)"
                    ));
                }
                expected_restart = (expected_restart + 1) % 8;
                at = after + 1;
            }
            Some(&marker @ (0x01..=0xBF | SOI)) => {
                return Err(format!(
                    "the entropy-coded data holds the invalid marker 0xFF{marker:02X} at byte {marker_at} (corrupt data)"
                ));
            }
            Some(_) => return Ok(marker_at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SOI, an optional restart interval, one scan holding `scan`, EOI. The segments'
    /// contents are not looked at, only their lengths.
    fn jpeg(restart_interval: Option<u16>, scan: &[u8]) -> Vec<u8> {
        let mut data = vec![0xFF, SOI];
        if let Some(interval) = restart_interval {
            data.extend([0xFF, DRI, 0, 4]);
            data.extend(interval.to_be_bytes());
        }
        data.extend([0xFF, SOS, 0, 4, 1, 2]);
        data.extend(scan);
        data.extend([0xFF, EOI]);
        data
    }

    #[test]
    fn the_frame_header_gives_the_size() {
        let mut data = vec![0xFF, SOI, 0xFF, 0xE0, 0, 4, 9, 9];
        data.extend([0xFF, 0xC2, 0, 11, 8, 0x01, 0x2C, 0x01, 0xC3, 3, 0, 0, 0]);
        assert_eq!(frame_size(&data), Some((451, 300)));
        assert_eq!(
            frame_size(&jpeg(None, b"ab")),
            None,
            "no frame before the scan"
        );
        assert_eq!(frame_size(&data[..12]), None, "truncated");
    }

    #[test]
    fn stuffed_bytes_fill_bytes_and_restarts_in_order_are_valid() {
        assert_eq!(check_markers(&jpeg(None, b"ab\xFF\x00cd")), Ok(()));
        let restarts =
            b"a\xFF\xD0b\xFF\xD1c\xFF\xFF\xD2d\xFF\xD3\xFF\xD4\xFF\xD5\xFF\xD6\xFF\xD7\xFF\xD0";
        assert_eq!(check_markers(&jpeg(Some(1), restarts)), Ok(()));
        // Stray bytes between segments are skipped, as libjpeg does.
        let mut stray = jpeg(None, b"ab");
        stray.splice(2..2, [0x00, 0x17]);
        assert_eq!(check_markers(&stray), Ok(()));
    }

    #[test]
    fn restarts_out_of_order_or_without_an_interval_are_corrupt() {
        let skipped = check_markers(&jpeg(Some(1), b"a\xFF\xD0b\xFF\xD2")).unwrap_err();
        assert!(
            skipped.contains("0xFFD2") && skipped.contains("out of sequence"),
            "{skipped}"
        );
        assert!(check_markers(&jpeg(None, b"a\xFF\xD0b")).is_err());
    }

    #[test]
    fn reserved_markers_in_a_scan_and_truncations_are_corrupt() {
        let reserved = check_markers(&jpeg(None, b"ab\xFF\x37cd")).unwrap_err();
        assert!(reserved.contains("invalid marker 0xFF37"), "{reserved}");
        let whole = jpeg(None, b"abcd");
        for cut in 3..whole.len() - 1 {
            assert!(check_markers(&whole[..cut]).is_err(), "cut at {cut}");
        }
        let mut overlong = whole.clone();
        overlong[5] = 0x40; // the DRI-less SOS claims 64 bytes
        assert!(check_markers(&overlong).is_err());
    }
}
