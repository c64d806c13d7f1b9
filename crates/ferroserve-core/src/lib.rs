//! The vocabulary shared by every layer of ferroserve: tensors and their element types,
//! the model configuration (Triton's `config.pbtxt`), and the model repository on disk.
#![forbid(unsafe_code)]

pub mod cache;
pub mod classification;
pub mod config;
pub mod labels;
pub mod preprocess;
pub mod reference;
pub mod repository;
pub mod tensor;
pub mod wire;

pub use config::{ConfigError, ModelConfig, Precision};
pub use labels::{Labels, LabelsError};
pub use preprocess::{ColorOrder, ImagePreprocessing, Layout, PixelType};
pub use repository::{
    ir_weights_file, Links, ModelDescription, ModelEntry, ModelRepository, ModelVersion,
    RepositoryError,
};
pub use tensor::{DataType, Tensor, TensorBuf, TensorRef, TensorSpec};
