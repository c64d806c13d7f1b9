//! Where the crop lies in the stored image, and how resampled pixels are turned upright.
//!
//! The image is never rotated at full size. The center crop is computed in displayed
//! (upright) coordinates, mapped back onto the stored pixels, resampled there straight to
//! the crop size, and the small result is read in displayed order when the tensor is written.

use image::metadata::Orientation as ExifOrientation;

/// How stored pixels map to displayed ones: displayed pixel `(x, y)` of a `w` x `h` image
/// is found by mirroring `x` (`flip_x`: `w - 1 - x`) and `y` (`flip_y`), then, when
/// `transpose`, swapping the two coordinates to index the stored image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Orientation {
    transpose: bool,
    flip_x: bool,
    flip_y: bool,
}

impl Orientation {
    pub const IDENTITY: Orientation = Orientation {
        transpose: false,
        flip_x: false,
        flip_y: false,
    };

    /// The transform an EXIF orientation tag asks for.
    pub fn from_exif(exif: ExifOrientation) -> Orientation {
        let (transpose, flip_x, flip_y) = match exif {
            ExifOrientation::NoTransforms => (false, false, false),
            ExifOrientation::FlipHorizontal => (false, true, false),
            ExifOrientation::Rotate180 => (false, true, true),
            ExifOrientation::FlipVertical => (false, false, true),
            ExifOrientation::Rotate90FlipH => (true, false, false),
            ExifOrientation::Rotate90 => (true, true, false),
            ExifOrientation::Rotate270FlipH => (true, true, true),
            ExifOrientation::Rotate270 => (true, false, true),
        };
        Orientation {
            transpose,
            flip_x,
            flip_y,
        }
    }

    /// Size of the displayed image for a stored image of `width` x `height`.
    fn displayed_size(self, width: u32, height: u32) -> (u32, u32) {
        if self.transpose {
            (height, width)
        } else {
            (width, height)
        }
    }
}

/// One axis of a resize-then-crop, as Pillow computes it along the displayed image: the
/// crop keeps `len` consecutive pixels, from `first` on, of the `input` pixels resized to
/// `resized`. `mirrored` says that stored order runs against displayed order on this axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Axis {
    pub input: u32,
    /// Can exceed `u32` for extreme aspect ratios (a 1-pixel-high image resized to 256).
    pub resized: u64,
    pub first: u64,
    pub len: u32,
    pub mirrored: bool,
}

/// Where one displayed pixel of the crop lies in the resampled buffer: pixel `(x, y)` is
/// pixel number `start + x * step_x + y * step_y` of that buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PixelWalk {
    pub start: isize,
    pub step_x: isize,
    pub step_y: isize,
}

impl PixelWalk {
    pub fn index(&self, x: usize, y: usize) -> usize {
        (self.start + x as isize * self.step_x + y as isize * self.step_y) as usize
    }
}

/// Resize-then-center-crop of one image, expressed as one resampling of the stored image
/// straight to the crop.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct CropPlan {
    /// The stored image's x axis (its columns); the resampled buffer is `columns.len` wide.
    pub columns: Axis,
    /// The stored image's y axis (its rows); the resampled buffer is `rows.len` high.
    pub rows: Axis,
    /// Reads the resampled buffer in displayed order.
    pub walk: PixelWalk,
}

impl CropPlan {
    /// Plans the crop of a `crop_width` x `crop_height` center of the image resized so its
    /// short side is `short_side`, for an image stored as `width` x `height` pixels and
    /// displayed after `orientation`.
    ///
    /// Rounds as the Pillow reference does: the resized size is `round(side * short_side /
    /// short)` with ties to even (Python's `round`), the crop offset is
    /// `(resized - crop) // 2`. The crop must not exceed `short_side`.
    pub fn new(
        width: u32,
        height: u32,
        orientation: Orientation,
        short_side: u32,
        crop_width: u32,
        crop_height: u32,
    ) -> CropPlan {
        let (shown_w, shown_h) = orientation.displayed_size(width, height);
        let scale = f64::from(short_side) / f64::from(shown_w.min(shown_h));
        let axis = |input: u32, crop: u32, mirrored: bool| {
            let resized = (f64::from(input) * scale).round_ties_even() as u64;
            Axis {
                input,
                resized,
                first: resized.saturating_sub(u64::from(crop)) / 2,
                len: crop,
                mirrored,
            }
        };
        let Orientation {
            transpose,
            flip_x,
            flip_y,
        } = orientation;
        let across = axis(shown_w, crop_width, flip_x);
        let down = axis(shown_h, crop_height, flip_y);
        let (cw, ch) = (crop_width as isize, crop_height as isize);
        if transpose {
            // Displayed (x, y) is resampled (y', x') with x' = x or cw-1-x, y' = y or ch-1-y,
            // in a buffer `ch` pixels wide.
            CropPlan {
                columns: down,
                rows: across,
                walk: PixelWalk {
                    start: if flip_x { (cw - 1) * ch } else { 0 } + if flip_y { ch - 1 } else { 0 },
                    step_x: if flip_x { -ch } else { ch },
                    step_y: if flip_y { -1 } else { 1 },
                },
            }
        } else {
            CropPlan {
                columns: across,
                rows: down,
                walk: PixelWalk {
                    start: if flip_y { (ch - 1) * cw } else { 0 } + if flip_x { cw - 1 } else { 0 },
                    step_x: if flip_x { -1 } else { 1 },
                    step_y: if flip_y { -cw } else { cw },
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{DynamicImage, GenericImageView, RgbImage};

    const ALL: [ExifOrientation; 8] = [
        ExifOrientation::NoTransforms,
        ExifOrientation::FlipHorizontal,
        ExifOrientation::Rotate180,
        ExifOrientation::FlipVertical,
        ExifOrientation::Rotate90FlipH,
        ExifOrientation::Rotate90,
        ExifOrientation::Rotate270FlipH,
        ExifOrientation::Rotate270,
    ];

    #[test]
    fn follows_pillow_rounding() {
        // cat.jpg: 451x300 -> 385x256 (384.85 rounds up), crop offset (385-224)//2 = 80.
        let plan = CropPlan::new(451, 300, Orientation::IDENTITY, 256, 224, 224);
        assert_eq!((plan.columns.resized, plan.columns.first), (385, 80));
        assert_eq!((plan.rows.resized, plan.rows.first), (256, 16));
        assert_eq!((plan.columns.input, plan.rows.input), (451, 300));
        // 13x10 -> 332.8x256 -> 333x256.
        let plan = CropPlan::new(13, 10, Orientation::IDENTITY, 256, 224, 224);
        assert_eq!(
            (plan.columns.resized, plan.columns.first),
            (333, (333 - 224) / 2)
        );
        // Ties round to even, as Python's round does: 5x2 at short side 1 is 2.5 -> 2 wide.
        let plan = CropPlan::new(5, 2, Orientation::IDENTITY, 1, 1, 1);
        assert_eq!(plan.columns.resized, 2);
        assert_eq!((plan.columns.len, plan.rows.len), (1, 1));
        // A 1-pixel-high strip resizes wider than u32 holds.
        let plan = CropPlan::new(u32::MAX, 1, Orientation::IDENTITY, 256, 224, 224);
        assert_eq!(plan.columns.resized, u64::from(u32::MAX) * 256);
    }

    #[test]
    fn walks_match_physical_orientation() {
        // With no resize (crop = whole displayed image), the resampled buffer is the stored
        // image itself, and walking it must reproduce `image`'s own orientation transform.
        let (w, h) = (5u32, 3u32);
        let stored = RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 0]));
        for exif in ALL {
            let orientation = Orientation::from_exif(exif);
            let mut shown = DynamicImage::ImageRgb8(stored.clone());
            shown.apply_orientation(exif);
            let (sw, sh) = shown.dimensions();
            let plan = CropPlan::new(w, h, orientation, sw.min(sh), sw, sh);
            for (axis, size) in [(plan.columns, w), (plan.rows, h)] {
                assert_eq!(
                    (axis.input, axis.resized, axis.first, axis.len),
                    (size, u64::from(size), 0, size),
                    "{exif:?}"
                );
            }
            for y in 0..sh {
                for x in 0..sw {
                    let at = plan.walk.index(x as usize, y as usize);
                    let (sx, sy) = (at as u32 % w, at as u32 / w);
                    let expected = shown.get_pixel(x, y);
                    assert_eq!([sx as u8, sy as u8], [expected[0], expected[1]], "{exif:?}");
                }
            }
        }
    }

    #[test]
    fn axes_follow_orientation() {
        // A 300x200 image shown rotated is 200x300: resized to 256x384, cropped at (16, 80).
        for exif in ALL {
            let orientation = Orientation::from_exif(exif);
            let plan = CropPlan::new(300, 200, orientation, 256, 224, 224);
            let (across, down) = if orientation.transpose {
                (plan.rows, plan.columns)
            } else {
                (plan.columns, plan.rows)
            };
            assert_eq!(across.mirrored, orientation.flip_x, "{exif:?}");
            assert_eq!(down.mirrored, orientation.flip_y, "{exif:?}");
            let (shown_w, shown_h) = orientation.displayed_size(300, 200);
            assert_eq!((across.input, down.input), (shown_w, shown_h), "{exif:?}");
            let expected = if orientation.transpose {
                [(256, 16), (384, 80)]
            } else {
                [(384, 80), (256, 16)]
            };
            assert_eq!(
                [(across.resized, across.first), (down.resized, down.first)],
                expected,
                "{exif:?}"
            );
        }
    }
}
