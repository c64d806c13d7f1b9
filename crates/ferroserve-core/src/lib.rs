//! The vocabulary shared by every layer of ferroserve: tensors and their element types,
//! the model configuration (Triton's `config.pbtxt`), and the model repository on disk.
#![forbid(unsafe_code)]

pub mod preprocess;
pub mod tensor;

pub use preprocess::{ColorOrder, ImagePreprocessing, Layout, PixelType};
pub use tensor::{DataType, Tensor, TensorBuf, TensorRef, TensorSpec};
