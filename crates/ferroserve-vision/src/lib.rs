//! Image decoding and preprocessing into caller-owned tensor buffers.
//!
//! [`ImagePreprocessor`] carries out a model's
//! [`ImagePreprocessing`](ferroserve_core::ImagePreprocessing) settings: it decodes an
//! encoded image, resizes and center-crops it as Pillow's bicubic resize would, normalises
//! it, and writes it into a slice of the caller's input tensor.
#![forbid(unsafe_code)]

mod decode;
mod error;
mod format;
mod geometry;
mod preprocessor;

pub use error::{InvalidSettings, VisionError};
pub use format::ImageFormat;
pub use preprocessor::ImagePreprocessor;
