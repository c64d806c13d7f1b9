//! The hand-written `config.pbtxt` parser that the prost-reflect one replaces, kept only
//! to compare the two on Triton's examples.

mod decode;
mod pbtxt;

use std::path::Path;

use super::error::Position;
use super::{ConfigError, ModelConfig};

/// Parses and validates `text` as [`ModelConfig::parse`] did before the schema-based parser.
pub(super) fn parse(text: &str, file: &Path) -> Result<ModelConfig, ConfigError> {
    let message = pbtxt::Message::parse(text).map_err(|error| ConfigError::Syntax {
        file: file.to_path_buf(),
        position: Position {
            line: error.position.line,
            column: error.position.column,
        },
        message: error.message,
    })?;
    decode::model_config(&message, file)
}
