//! Image decoding and preprocessing into caller-owned tensor buffers.
//!
//! [`ImagePreprocessor`] carries out a model's
//! [`ImagePreprocessing`](ferroserve_core::ImagePreprocessing) settings: it decodes an
//! encoded image, resizes and center-crops it as Pillow's bicubic resize would, normalises
//! it, and writes it into a slice of the caller's input tensor.
// The one `unsafe` is the call of the AVX2 build of the resampler, after detection.
#![deny(unsafe_code)]

#[doc(hidden)]
pub mod bench;
mod decode;
mod error;
mod format;
mod geometry;
mod jpeg;
mod preprocessor;
mod resample;

pub use error::{InvalidSettings, VisionError};
pub use format::ImageFormat;
pub use preprocessor::ImagePreprocessor;
