//! Reading a configuration given as JSON (the `config` parameter of a load request in
//! Triton's model repository extension): protobuf's JSON mapping of Triton's
//! `ModelConfig`, read by prost-reflect.
//!
//! JSON has proto3's semantics: a field set to its default value (`"count": 0`) cannot be
//! told from one left out, as in Triton.

use std::path::Path;

use prost_reflect::DynamicMessage;

use super::error::Position;
use super::schema;
use super::ConfigError;

/// Reads `text`, a JSON object, into a message of [`schema::text_model_config`]; `origin`
/// names it in errors.
pub(super) fn parse(text: &str, origin: &Path) -> Result<DynamicMessage, ConfigError> {
    let syntax = |error: serde_json::Error| {
        // The position is reported on its own; serde_json also appends it to the text.
        let mut message = error.to_string();
        if let Some(at) = message.rfind(" at line ") {
            message.truncate(at);
        }
        ConfigError::Syntax {
            file: origin.to_path_buf(),
            position: Position {
                line: u32::try_from(error.line()).unwrap_or(u32::MAX),
                column: u32::try_from(error.column()).unwrap_or(u32::MAX),
            },
            message,
        }
    };
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let message =
        DynamicMessage::deserialize(schema::model_config(), &mut deserializer).map_err(syntax)?;
    deserializer.end().map_err(syntax)?;
    Ok(schema::as_text_message(&message))
}
