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

/// A rectangle in continuous pixel coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Rect {
    pub left: f64,
    pub top: f64,
    pub width: f64,
    pub height: f64,
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

/// Resize-then-center-crop of one image, expressed as one resampling of a stored-image
/// rectangle.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct CropPlan {
    /// The part of the stored image that becomes the crop.
    pub source: Rect,
    /// Size of the resampled buffer, in stored orientation (crop size, swapped when the
    /// orientation transposes).
    pub resampled_width: u32,
    pub resampled_height: u32,
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
        let (shown_w, shown_h) = (f64::from(shown_w), f64::from(shown_h));
        let scale = f64::from(short_side) / shown_w.min(shown_h);
        let resized_w = (shown_w * scale).round_ties_even();
        let resized_h = (shown_h * scale).round_ties_even();
        let (crop_w, crop_h) = (f64::from(crop_width), f64::from(crop_height));
        let left = ((resized_w - crop_w) / 2.0).floor();
        let top = ((resized_h - crop_h) / 2.0).floor();
        // Resampling `crop` output pixels from this rectangle gives exactly the pixels that
        // resizing the whole image and then cropping gives: same scale, same pixel centers.
        let (step_w, step_h) = (shown_w / resized_w, shown_h / resized_h);
        let mut shown = Rect {
            left: left * step_w,
            top: top * step_h,
            width: crop_w * step_w,
            height: crop_h * step_h,
        };
        if orientation.flip_x {
            shown.left = shown_w - shown.left - shown.width;
        }
        if orientation.flip_y {
            shown.top = shown_h - shown.top - shown.height;
        }
        shown.left = shown.left.max(0.0);
        shown.top = shown.top.max(0.0);
        shown.width = shown.width.min(shown_w - shown.left);
        shown.height = shown.height.min(shown_h - shown.top);

        let (cw, ch) = (crop_width as isize, crop_height as isize);
        let Orientation {
            transpose,
            flip_x,
            flip_y,
        } = orientation;
        if transpose {
            // Displayed (x, y) is resampled (y', x') with x' = x or cw-1-x, y' = y or ch-1-y,
            // in a buffer `ch` pixels wide.
            CropPlan {
                source: Rect {
                    left: shown.top,
                    top: shown.left,
                    width: shown.height,
                    height: shown.width,
                },
                resampled_width: crop_height,
                resampled_height: crop_width,
                walk: PixelWalk {
                    start: if flip_x { (cw - 1) * ch } else { 0 } + if flip_y { ch - 1 } else { 0 },
                    step_x: if flip_x { -ch } else { ch },
                    step_y: if flip_y { -1 } else { 1 },
                },
            }
        } else {
            CropPlan {
                source: shown,
                resampled_width: crop_width,
                resampled_height: crop_height,
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
        let scale = 451.0 / 385.0;
        assert!((plan.source.left - 80.0 * scale).abs() < 1e-9);
        assert!((plan.source.width - 224.0 * scale).abs() < 1e-9);
        assert!((plan.source.top - 16.0 * 300.0 / 256.0).abs() < 1e-9);
        // 13x10 -> 332.8x256 -> 333x256.
        let plan = CropPlan::new(13, 10, Orientation::IDENTITY, 256, 224, 224);
        assert!((plan.source.left - ((333 - 224) / 2) as f64 * 13.0 / 333.0).abs() < 1e-9);
        // Ties round to even, as Python's round does: 5x2 at short side 1 is 2.5 -> 2 wide.
        let plan = CropPlan::new(5, 2, Orientation::IDENTITY, 1, 1, 1);
        assert!((plan.source.width - 5.0 / 2.0).abs() < 1e-9);
        assert_eq!((plan.resampled_width, plan.resampled_height), (1, 1));
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
            assert_eq!(
                (plan.resampled_width, plan.resampled_height),
                (w, h),
                "{exif:?}"
            );
            assert_eq!(
                plan.source,
                Rect {
                    left: 0.0,
                    top: 0.0,
                    width: w as f64,
                    height: h as f64
                },
                "{exif:?}"
            );
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
    fn crop_rect_follows_orientation() {
        // A 300x200 image shown rotated is 200x300: resized to 256x384, cropped at (16, 80).
        for exif in ALL {
            let orientation = Orientation::from_exif(exif);
            let plan = CropPlan::new(300, 200, orientation, 256, 224, 224);
            let (across, along) = if orientation.transpose {
                (plan.source.top, plan.source.left)
            } else {
                (plan.source.left, plan.source.top)
            };
            if orientation.transpose {
                // Displayed x runs along stored y (200 rows): 16 of 256 resized columns.
                let step = 200.0 / 256.0;
                let expect_x = if orientation.flip_x {
                    200.0 - 240.0 * step
                } else {
                    16.0 * step
                };
                let step = 300.0 / 384.0;
                let expect_y = if orientation.flip_y {
                    300.0 - 304.0 * step
                } else {
                    80.0 * step
                };
                assert!((across - expect_x).abs() < 1e-9, "{exif:?}");
                assert!((along - expect_y).abs() < 1e-9, "{exif:?}");
            } else {
                let step = 300.0 / 384.0;
                let expect_x = if orientation.flip_x {
                    300.0 - 304.0 * step
                } else {
                    80.0 * step
                };
                let step = 200.0 / 256.0;
                let expect_y = if orientation.flip_y {
                    200.0 - 240.0 * step
                } else {
                    16.0 * step
                };
                assert!((across - expect_x).abs() < 1e-9, "{exif:?}");
                assert!((along - expect_y).abs() < 1e-9, "{exif:?}");
            }
        }
    }
}
