//! What can be wrong with a model configuration.

use std::fmt;
use std::path::PathBuf;

/// Where something is in a `config.pbtxt`: 1-based line and column (columns count
/// characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: u32,
    pub column: u32,
}

impl Position {
    /// The position of byte `offset` of `text` (clamped to the text and to a character
    /// boundary).
    pub(super) fn of(text: &str, offset: usize) -> Position {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Position {
            line: count(before.matches('\n').count() + 1),
            column: count(before[line_start..].chars().count() + 1),
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// ` (line L, column C)` after a message, or nothing when the position is not known.
fn at(position: &Option<Position>) -> String {
    match position {
        Some(p) => format!(" (line {}, column {})", p.line, p.column),
        None => String::new(),
    }
}

/// An invalid model configuration. Every variant names the configuration (`file`: the
/// path of its `config.pbtxt`, or a description of a configuration generated from the model
/// when there is no file) and, past syntax, the path of the offending field, such as
/// `input[0].dims` or `parameters.preprocess.crop`. Errors found while reading the text
/// carry the `position` of the offending value.
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
    #[error("{}:{position}: {message}", file.display())]
    Syntax {
        file: PathBuf,
        position: Position,
        message: String,
    },

    /// A field that Triton's model configuration does not have (`message` names the
    /// protobuf message that lacks it, such as `inference.ModelInput`).
    #[error("{file}: {field}: no such field in {message}{}", at(position))]
    UnknownField {
        file: String,
        field: String,
        message: String,
        position: Option<Position>,
    },

    /// A field holds the wrong kind of value (a string where a number belongs, ...);
    /// `found` is the value as written.
    #[error(
        "{file}: {field}: expected {expected}, found `{found}`{}",
        at(position)
    )]
    WrongType {
        file: String,
        field: String,
        expected: &'static str,
        found: String,
        position: Option<Position>,
    },

    /// An enum field holds a name (or number) that is not one of its values.
    #[error(
        "{file}: {field}: unknown value `{value}`, expected one of {expected}{}",
        at(position)
    )]
    UnknownEnumValue {
        file: String,
        field: String,
        value: String,
        expected: String,
        position: Option<Position>,
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
    #[error(
        "{file}: {field}: {value} is out of range: {constraint}{}",
        at(position)
    )]
    OutOfRange {
        file: String,
        field: String,
        value: String,
        constraint: String,
        position: Option<Position>,
    },

    /// A field that may appear at most once appears again.
    #[error("{file}: {field}: specified more than once{}", at(position))]
    Repeated {
        file: String,
        field: String,
        position: Option<Position>,
    },

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
