//! How a model wants its images: the preprocessing settings a model configuration carries
//! in its `parameters`, as plain data. `ferroserve-vision` carries them out.

/// Order of the colour channels in the model's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ColorOrder {
    Rgb,
    Bgr,
}

/// Memory layout of one image in the model's input tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Layout {
    /// Channels first: `[3, H, W]` (Triton's `FORMAT_NCHW`).
    Nchw,
    /// Channels last: `[H, W, 3]` (Triton's `FORMAT_NHWC`).
    Nhwc,
}

/// Element type written into the input tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum PixelType {
    /// `(pixel - mean[c]) / std[c]` as `f32`.
    F32,
    /// Raw pixels 0..=255, for models that normalise inside the graph.
    U8,
}

/// The preprocessing of one image: resize so the short side is `resize_short_side`
/// (bicubic, antialiased), center-crop to `crop_width` x `crop_height`, normalise
/// per channel, and write in `layout` with channels in `color_order`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ImagePreprocessing {
    pub resize_short_side: u32,
    pub crop_width: u32,
    pub crop_height: u32,
    /// Per-channel mean subtracted from the 0..=255 pixel value, in `color_order`.
    pub mean: [f32; 3],
    /// Per-channel divisor applied after the mean, in `color_order`.
    pub std: [f32; 3],
    pub color_order: ColorOrder,
    pub layout: Layout,
    pub pixel_type: PixelType,
    /// Images whose header declares more pixels than this are refused before decoding.
    pub max_pixels: u64,
    /// Whether a JPEG at least four times as large as needed is decoded at reduced scale
    /// (1/2, 1/4 or 1/8, in the DCT domain, as Pillow's draft mode and libjpeg's
    /// `scale_denom` do) so that its short side stays at least twice
    /// `resize_short_side`, which the resize then filters down. Much faster for large
    /// photos; the pixels differ slightly from a full decode.
    pub jpeg_draft: bool,
}

impl ImagePreprocessing {
    /// Default limit on decoded pixels: 64 megapixels (a 256 MiB RGBA buffer).
    pub const DEFAULT_MAX_PIXELS: u64 = 64 * 1024 * 1024;

    /// The common ImageNet convention: short side 256, crop 224, torchvision mean/std.
    pub fn imagenet() -> Self {
        ImagePreprocessing {
            resize_short_side: 256,
            crop_width: 224,
            crop_height: 224,
            mean: [123.675, 116.28, 103.53],
            std: [58.395, 57.12, 57.375],
            color_order: ColorOrder::Rgb,
            layout: Layout::Nchw,
            pixel_type: PixelType::F32,
            max_pixels: Self::DEFAULT_MAX_PIXELS,
            jpeg_draft: false,
        }
    }

    /// Shape of one preprocessed image (without a batch dimension).
    pub fn image_shape(&self) -> [usize; 3] {
        let (h, w) = (self.crop_height as usize, self.crop_width as usize);
        match self.layout {
            Layout::Nchw => [3, h, w],
            Layout::Nhwc => [h, w, 3],
        }
    }

    /// Number of elements in one preprocessed image.
    pub fn image_len(&self) -> usize {
        self.image_shape().iter().product()
    }

    /// Size in bytes of one preprocessed image.
    pub fn image_bytes(&self) -> usize {
        let element = match self.pixel_type {
            PixelType::F32 => 4,
            PixelType::U8 => 1,
        };
        self.image_len() * element
    }
}
