//! What can be wrong with a model configuration.

use std::path::PathBuf;

use super::pbtxt::ParseError;

/// An invalid model configuration. Every variant names the configuration (`file`: the
/// path of its `config.pbtxt`, or a description of a configuration generated from the model
/// when there is no file) and, past syntax, the path of the offending field, such as
/// `input[0].dims` or `parameters.preprocess.crop`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The file is not valid protobuf text format.
    #[error("{}:{}", file.display(), error)]
    Syntax {
        file: PathBuf,
        #[source]
        error: ParseError,
    },

    /// A field holds the wrong kind of value (a string where a number belongs, ...).
    #[error("{file}: {field}: expected {expected}, found {found}")]
    WrongType {
        file: String,
        field: String,
        expected: &'static str,
        found: &'static str,
    },

    /// An enum field holds a name that is not one of its values.
    #[error("{file}: {field}: unknown value `{value}`, expected one of {expected}")]
    UnknownEnumValue {
        file: String,
        field: String,
        value: String,
        expected: String,
    },

    /// A valid Triton value that ferroserve cannot serve (another platform, `TYPE_BF16`, ...).
    #[error("{file}: {field}: `{value}` is not supported, expected one of {supported}")]
    Unsupported {
        file: String,
        field: String,
        value: String,
        supported: String,
    },

    /// A number outside the range its field allows.
    #[error("{file}: {field}: {value} is out of range: {constraint}")]
    OutOfRange {
        file: String,
        field: String,
        value: String,
        constraint: String,
    },

    /// A field that may appear at most once appears again.
    #[error("{file}: {field}: specified more than once")]
    Repeated { file: String, field: String },

    /// A required field is missing.
    #[error("{file}: {field}: required but missing")]
    Missing { file: String, field: String },

    /// Two inputs (or two outputs) share a name.
    #[error("{file}: {field}: duplicate name `{name}`")]
    DuplicateName {
        file: String,
        field: String,
        name: String,
    },

    /// The configuration is well-formed but inconsistent, with itself or with the model.
    #[error("{file}: {field}: {message}")]
    Invalid {
        file: String,
        field: String,
        message: String,
    },
}
