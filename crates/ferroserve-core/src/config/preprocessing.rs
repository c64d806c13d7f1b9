//! Image preprocessing from `parameters` (`preprocess.*`) and the image input's format.

use super::{ConfigError, InputFormat, ModelConfig, ModelInput};
use crate::preprocess::{ColorOrder, ImagePreprocessing, Layout, PixelType};
use crate::tensor::DataType;

const PREFIX: &str = "preprocess.";
const KEYS: &[&str] = &[
    "preprocess.resize_short_side",
    "preprocess.crop",
    "preprocess.mean",
    "preprocess.std",
    "preprocess.color_order",
    "preprocess.max_pixels",
    "preprocess.jpeg_draft",
];

/// The `preprocess.*` parameters, parsed but not yet combined with the image input.
#[derive(Debug, Default)]
pub(super) struct PreprocessSettings {
    resize_short_side: Option<u32>,
    /// Width, height.
    crop: Option<(u32, u32)>,
    mean: Option<[f32; 3]>,
    std: Option<[f32; 3]>,
    color_order: Option<ColorOrder>,
    max_pixels: Option<u64>,
    jpeg_draft: Option<bool>,
}

/// Where the image sits in an input: layout, height and width (`-1` when dynamic).
struct ImageGeometry {
    layout: Layout,
    height: i64,
    width: i64,
}

impl ModelConfig {
    /// The input that receives images: the single `TYPE_FP32` or `TYPE_UINT8` input whose
    /// dims describe one 3-channel image (`[3, H, W]` or `[H, W, 3]`, as its `format` says
    /// or, for `FORMAT_NONE`, channels first if the first dim is 3; with
    /// `max_batch_size: 0` a leading batch dim may precede them). `None` if no input, or
    /// more than one, fits.
    pub fn image_input(&self) -> Option<&ModelInput> {
        let mut candidates = self.input.iter().filter(|i| self.geometry(i).is_some());
        match (candidates.next(), candidates.next()) {
            (Some(input), None) => Some(input),
            _ => None,
        }
    }

    /// How to turn an image into the [`image_input`](Self::image_input) tensor: `None` when
    /// the configuration has no `preprocess.*` parameters, else these settings. They live
    /// in `parameters` so that the file stays a valid Triton configuration:
    ///
    /// | key | value | default |
    /// |-----|-------|---------|
    /// | `preprocess.resize_short_side` | pixels, e.g. `256` | larger crop side × 256/224, rounded |
    /// | `preprocess.crop` | `224` (square) or `224x200` (width x height) | the input's height and width |
    /// | `preprocess.mean` | `123.7,116.3,103.5`, or one value for every channel | ImageNet |
    /// | `preprocess.std` | as `mean`, each above 0 | ImageNet |
    /// | `preprocess.color_order` | `RGB` or `BGR` | `RGB` |
    /// | `preprocess.max_pixels` | largest image accepted, in pixels | 64 Mi |
    /// | `preprocess.jpeg_draft` | `true`: decode a large JPEG at 1/2, 1/4 or 1/8 scale | `false` |
    ///
    /// Any other `preprocess.*` key is an error. The layout comes from the image input's
    /// `format`, or from its dims for `FORMAT_NONE`; the pixel type from its `data_type`
    /// (`TYPE_FP32` → `F32`, `TYPE_UINT8` → `U8`). Call it after
    /// [`autocomplete`](Self::autocomplete) when the inputs come from the model.
    pub fn image_preprocessing(&self) -> Result<Option<ImagePreprocessing>, ConfigError> {
        let Some(settings) = self.preprocess_settings()? else {
            return Ok(None);
        };
        let file = self.origin();
        let invalid = |field: &str, message: String| ConfigError::Invalid {
            file: file.clone(),
            field: field.to_string(),
            message,
        };
        let candidates: Vec<_> = self
            .input
            .iter()
            .filter_map(|i| Some((i, self.geometry(i)?)))
            .collect();
        let [(input, geometry)] = candidates.as_slice() else {
            return Err(invalid(
                "input",
                format!(
                    "preprocess.* parameters need exactly one TYPE_FP32 or TYPE_UINT8 input \
                     holding a 3-channel image ([3, H, W] or [H, W, 3]), found {}",
                    candidates.len()
                ),
            ));
        };
        let (crop_width, crop_height) = match settings.crop {
            Some((w, h)) => {
                let fits = |dim: i64, size: u32| dim < 0 || dim == i64::from(size);
                if !fits(geometry.width, w) || !fits(geometry.height, h) {
                    return Err(invalid(
                        "parameters.preprocess.crop",
                        format!(
                            "{w}x{h} does not match the {}x{} (width x height) image of input '{}'",
                            geometry.width, geometry.height, input.name
                        ),
                    ));
                }
                (w, h)
            }
            None => match (
                u32::try_from(geometry.width),
                u32::try_from(geometry.height),
            ) {
                (Ok(w), Ok(h)) => (w, h),
                _ => {
                    return Err(invalid(
                        "parameters.preprocess.crop",
                        format!(
                            "required because the image size of input '{}' is dynamic",
                            input.name
                        ),
                    ))
                }
            },
        };
        let longer_side = crop_width.max(crop_height);
        let resize_short_side = match settings.resize_short_side {
            Some(size) if size < longer_side => {
                return Err(invalid(
                    "parameters.preprocess.resize_short_side",
                    format!("{size} is smaller than the {crop_width}x{crop_height} crop"),
                ))
            }
            Some(size) => size,
            None => u32::try_from((u64::from(longer_side) * 256 + 112) / 224).map_err(|_| {
                invalid(
                    "parameters.preprocess.crop",
                    format!("{crop_width}x{crop_height} is too large"),
                )
            })?,
        };
        let imagenet = ImagePreprocessing::imagenet();
        Ok(Some(ImagePreprocessing {
            resize_short_side,
            crop_width,
            crop_height,
            mean: settings.mean.unwrap_or(imagenet.mean),
            std: settings.std.unwrap_or(imagenet.std),
            color_order: settings.color_order.unwrap_or(ColorOrder::Rgb),
            layout: geometry.layout,
            pixel_type: match input.data_type {
                DataType::Uint8 => PixelType::U8,
                _ => PixelType::F32,
            },
            max_pixels: settings
                .max_pixels
                .unwrap_or(ImagePreprocessing::DEFAULT_MAX_PIXELS),
            jpeg_draft: settings.jpeg_draft.unwrap_or(false),
        }))
    }

    fn geometry(&self, input: &ModelInput) -> Option<ImageGeometry> {
        if !matches!(input.data_type, DataType::Fp32 | DataType::Uint8) {
            return None;
        }
        let dims = match input.dims.as_slice() {
            [_, rest @ ..] if rest.len() == 3 && self.max_batch_size() == 0 => rest,
            dims => dims,
        };
        let &[a, b, c] = dims else {
            return None;
        };
        let nchw = ImageGeometry {
            layout: Layout::Nchw,
            height: b,
            width: c,
        };
        let nhwc = ImageGeometry {
            layout: Layout::Nhwc,
            height: a,
            width: b,
        };
        match input.format {
            InputFormat::Nchw => (a == 3).then_some(nchw),
            InputFormat::Nhwc => (c == 3).then_some(nhwc),
            InputFormat::None if a == 3 => Some(nchw),
            InputFormat::None => (c == 3).then_some(nhwc),
        }
    }

    /// Parses the `preprocess.*` parameters; `None` when there are none.
    pub(super) fn preprocess_settings(&self) -> Result<Option<PreprocessSettings>, ConfigError> {
        let mut settings = PreprocessSettings::default();
        let mut any = false;
        for (key, parameter) in self.parameters.range(PREFIX.to_string()..) {
            if !key.starts_with(PREFIX) {
                break;
            }
            any = true;
            let field = format!("parameters.{key}");
            let value = parameter.string_value.trim();
            let invalid = |expected: &str| ConfigError::Invalid {
                file: self.origin(),
                field: field.clone(),
                message: format!("expected {expected}, found `{value}`"),
            };
            match key.as_str() {
                "preprocess.resize_short_side" => {
                    settings.resize_short_side =
                        Some(positive(value).ok_or_else(|| invalid("a positive number of pixels"))?)
                }
                "preprocess.crop" => {
                    settings.crop = Some(crop(value).ok_or_else(|| {
                        invalid("SIZE or WIDTHxHEIGHT in pixels, such as `224` or `224x200`")
                    })?)
                }
                "preprocess.mean" => {
                    settings.mean = Some(per_channel(value, |v| v.is_finite()).ok_or_else(|| {
                        invalid("one number, or three separated by commas, such as `127.5` or `123.7,116.3,103.5`")
                    })?)
                }
                "preprocess.std" => {
                    settings.std = Some(per_channel(value, |v| v.is_finite() && v > 0.0).ok_or_else(|| {
                        invalid("one positive number, or three separated by commas, such as `58.4,57.1,57.4`")
                    })?)
                }
                "preprocess.color_order" => {
                    settings.color_order = Some(match value.to_ascii_uppercase().as_str() {
                        "RGB" => ColorOrder::Rgb,
                        "BGR" => ColorOrder::Bgr,
                        _ => return Err(invalid("`RGB` or `BGR`")),
                    })
                }
                "preprocess.max_pixels" => {
                    settings.max_pixels =
                        Some(positive(value).ok_or_else(|| invalid("a positive number of pixels"))?)
                }
                "preprocess.jpeg_draft" => {
                    settings.jpeg_draft = Some(match value {
                        "true" => true,
                        "false" => false,
                        _ => return Err(invalid("`true` or `false`")),
                    })
                }
                _ => {
                    return Err(ConfigError::Invalid {
                        file: self.origin(),
                        field,
                        message: format!(
                            "unknown preprocessing parameter, expected one of {}",
                            KEYS.join(", ")
                        ),
                    })
                }
            }
        }
        Ok(any.then_some(settings))
    }
}

fn positive<T: std::str::FromStr + Default + PartialOrd>(text: &str) -> Option<T> {
    text.parse().ok().filter(|v| *v > T::default())
}

fn crop(text: &str) -> Option<(u32, u32)> {
    match text.split_once(['x', 'X']) {
        Some((w, h)) => Some((positive(w.trim())?, positive(h.trim())?)),
        None => {
            let size = positive(text)?;
            Some((size, size))
        }
    }
}

fn per_channel(text: &str, valid: impl Fn(f32) -> bool) -> Option<[f32; 3]> {
    let values = text
        .split(',')
        .map(|v| v.trim().parse::<f32>().ok().filter(|&v| valid(v)))
        .collect::<Option<Vec<_>>>()?;
    match *values.as_slice() {
        [v] => Some([v; 3]),
        [r, g, b] => Some([r, g, b]),
        _ => None,
    }
}
