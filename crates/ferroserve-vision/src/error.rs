//! Why an image could not be preprocessed, and why settings were refused.

use ferroserve_core::preprocess::PixelType;

use crate::ImageFormat;

/// Why one image could not be preprocessed.
///
/// Every variant but [`VisionError::InvalidSettings`], [`VisionError::WrongOutputLen`] and
/// [`VisionError::WrongPixelType`] describes bad input from the client; those three are
/// mistakes of the server's configuration or its code.
#[derive(Debug, thiserror::Error)]
pub enum VisionError {
    /// The request carried zero bytes of image data.
    #[error("image data is empty")]
    Empty,
    /// The leading bytes match none of the supported formats.
    #[error("unrecognised image format: expected JPEG, PNG, WebP, BMP or GIF data")]
    UnsupportedFormat,
    /// A supported container using a feature its decoder lacks (e.g. 12-bit or lossless JPEG).
    #[error("unsupported {format} feature: {message}")]
    UnsupportedFeature {
        format: ImageFormat,
        message: String,
    },
    /// The header declares more pixels than the settings' `max_pixels`; nothing was decoded.
    #[error("image is {width}x{height} pixels, more than the limit of {max_pixels} pixels")]
    TooLarge {
        width: u32,
        height: u32,
        max_pixels: u64,
    },
    /// Truncated or malformed data.
    #[error("corrupt or truncated {format} data: {message}")]
    Corrupt {
        format: ImageFormat,
        message: String,
    },
    /// The preprocessor's settings cannot be carried out; no image can be preprocessed.
    #[error(transparent)]
    InvalidSettings(#[from] InvalidSettings),
    /// The output slice does not hold exactly one preprocessed image.
    #[error("output buffer holds {actual} elements, expected {expected} (one image)")]
    WrongOutputLen { expected: usize, actual: usize },
    /// The element type asked for is not the one the settings name.
    #[error("settings ask for {expected:?} pixels, but {requested:?} output was requested")]
    WrongPixelType {
        expected: PixelType,
        requested: PixelType,
    },
}

/// Preprocessing settings that cannot be carried out.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid image preprocessing settings: {0}")]
pub struct InvalidSettings(pub String);
