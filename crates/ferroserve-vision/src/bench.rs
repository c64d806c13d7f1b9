//! The resampler alone, for this crate's bench (`benches/preprocess.rs`) to compare with
//! the `fast_image_resize` resampler it replaced. Not part of the stable API.

use crate::decode::Channels;
use crate::geometry::{CropPlan, Orientation};
use crate::resample::Resampler;

/// Resamples center crops as [`ImagePreprocessor`](crate::ImagePreprocessor) does, keeping
/// its coefficient tables and buffers between calls.
pub struct CropResampler {
    resampler: Resampler,
    out: Vec<u8>,
}

impl Default for CropResampler {
    fn default() -> Self {
        CropResampler {
            resampler: Resampler::new(),
            out: Vec::new(),
        }
    }
}

impl CropResampler {
    /// The `crop` x `crop` center of the upright `width` x `height` image `pixels` (RGB,
    /// rows top to bottom) resized so that its short side is `short_side`, as RGB.
    ///
    /// Panics if `pixels` is not `width * height * 3` bytes or `crop > short_side`.
    pub fn resample(
        &mut self,
        pixels: &[u8],
        width: u32,
        height: u32,
        short_side: u32,
        crop: u32,
    ) -> &[u8] {
        assert_eq!(pixels.len(), width as usize * height as usize * 3);
        assert!(crop <= short_side);
        let plan = CropPlan::new(width, height, Orientation::IDENTITY, short_side, crop, crop);
        self.resampler
            .resample(pixels, width as usize, Channels::Rgb, &plan, &mut self.out);
        &self.out[..crop as usize * crop as usize * 3]
    }
}
