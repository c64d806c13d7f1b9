//! Reading a `config.pbtxt`: protobuf text format against Triton's `ModelConfig` schema,
//! by prost-reflect, with its errors turned into [`ConfigError`]s that name the field.

use std::collections::HashMap;
use std::path::Path;

use miette::Diagnostic;
use prost_reflect::text_format::ParseError;
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MessageDescriptor};

use super::error::Position;
use super::schema;
use super::ConfigError;

/// Reads `text`, the contents of `file`, into a message of [`schema::text_model_config`].
pub(super) fn parse(text: &str, file: &Path) -> Result<DynamicMessage, ConfigError> {
    let colons = ListColons::find(text);
    DynamicMessage::parse_text_format(schema::text_model_config(), &colons.insert(text))
        .map_err(|error| config_error(text, &colons, file, &error))
}

/// Where a list of messages follows a field name without a colon (`input [ { ... } ]`).
/// The text format allows that, Triton's files do it everywhere, and prost-reflect wants
/// the colon (`input: [ { ... } ]`): the parser is given the text with these colons added.
struct ListColons {
    /// Byte offsets in the original text, ascending: each is the end of a field name.
    offsets: Vec<usize>,
}

impl ListColons {
    fn find(text: &str) -> ListColons {
        let mut offsets = Vec::new();
        let mut tokens = Tokens { text, at: 0 };
        let mut previous = None;
        while let Some((start, token)) = tokens.next() {
            if let Token::Name(name) = token {
                let is_identifier = name.starts_with(|c: char| c.is_alphabetic() || c == '_');
                let is_value = previous == Some(Token::Colon);
                if is_identifier && !is_value && tokens.clone().next_is_message_list() {
                    offsets.push(start + name.len());
                }
            }
            previous = Some(token);
        }
        ListColons { offsets }
    }

    /// `text` with the colons added.
    fn insert<'t>(&self, text: &'t str) -> std::borrow::Cow<'t, str> {
        if self.offsets.is_empty() {
            return text.into();
        }
        let mut completed = String::with_capacity(text.len() + self.offsets.len());
        let mut copied = 0;
        for &offset in &self.offsets {
            completed.push_str(&text[copied..offset]);
            completed.push(':');
            copied = offset;
        }
        completed.push_str(&text[copied..]);
        completed.into()
    }

    /// The offset in the original text of `offset` in the text with the colons added.
    fn original(&self, offset: usize) -> usize {
        let added = self
            .offsets
            .iter()
            .enumerate()
            .take_while(|&(i, &colon)| colon + i < offset)
            .count();
        offset - added
    }
}

/// What prost-reflect reported, told apart by its message: its `ParseError` exposes only
/// the message and the span of the offending text.
#[derive(Debug, PartialEq)]
enum Reported {
    UnknownField,
    UnknownEnumValue,
    OutOfRange,
    AlreadySet,
    OneofAlreadySet,
    /// A value of the wrong kind for its field.
    WrongType,
    Syntax,
}

impl Reported {
    fn of(message: &str) -> Reported {
        // A token where a value belongs: what prost-reflect expects for each kind of field.
        const VALUES: &[&str] = &[
            "a string",
            "an integer",
            "a number",
            "an enum value",
            "'true' or 'false'",
            "0 or 1",
            "'{' or '<'",
        ];
        let expected = message
            .strip_prefix("expected ")
            .and_then(|rest| rest.split_once(", but found "))
            .map(|(expected, _)| expected);
        if message.starts_with("field '") && message.contains("' not found for message '") {
            Reported::UnknownField
        } else if message.contains("' was not found for enum '") {
            Reported::UnknownEnumValue
        } else if message.starts_with("expected value to be ") && message.ends_with("out of range")
        {
            Reported::OutOfRange
        } else if message.ends_with("' is already set") {
            Reported::AlreadySet
        } else if message.starts_with("a value is already set for oneof") {
            Reported::OneofAlreadySet
        } else if expected.is_some_and(|e| VALUES.contains(&e)) {
            Reported::WrongType
        } else {
            Reported::Syntax
        }
    }
}

fn config_error(text: &str, colons: &ListColons, file: &Path, error: &ParseError) -> ConfigError {
    let message = error.to_string();
    let span = error
        .labels()
        .and_then(|mut labels| labels.next())
        .map(|s| colons.original(s.offset())..colons.original(s.offset() + s.len()));
    let offset = span.as_ref().map_or(text.len(), |s| s.start);
    let found = span
        .and_then(|s| text.get(s))
        .unwrap_or_default()
        .to_string();
    let position = Position::of(text, offset);
    let reported = Reported::of(&message);
    // An unknown field is reported at its name; everything else at a value.
    let located = Location::find(text, offset, reported == Reported::UnknownField);
    let file_name = file.display().to_string();
    let field = located.path();
    match reported {
        Reported::UnknownField => ConfigError::UnknownField {
            file: file_name,
            field,
            message: located.message.full_name().to_string(),
            position: Some(position),
        },
        Reported::UnknownEnumValue => ConfigError::UnknownEnumValue {
            file: file_name,
            field,
            value: found,
            expected: located
                .field()
                .and_then(|f| f.kind().as_enum().cloned())
                .map(|e| e.values().map(|v| v.name().to_string()).collect::<Vec<_>>())
                .unwrap_or_default()
                .join(", "),
            position: Some(position),
        },
        Reported::OutOfRange => ConfigError::OutOfRange {
            file: file_name,
            field,
            value: found,
            constraint: located
                .field()
                .map_or("", |f| range_of(&f.kind()))
                .to_string(),
            position: Some(position),
        },
        Reported::AlreadySet => ConfigError::Repeated {
            file: file_name,
            field,
            position: Some(position),
        },
        Reported::OneofAlreadySet => {
            let choices = located
                .field()
                .and_then(|f| f.containing_oneof())
                .map(|oneof| {
                    let names: Vec<_> = oneof.fields().map(|f| format!("`{}`", f.name())).collect();
                    names.join(", ")
                })
                .unwrap_or_default();
            ConfigError::Invalid {
                file: file_name,
                field: located.message_path.clone(),
                message: format!(
                    "only one of {choices} may be given (line {}, column {})",
                    position.line, position.column
                ),
            }
        }
        Reported::WrongType => ConfigError::WrongType {
            file: file_name,
            field,
            expected: located
                .field()
                .map_or("a value", |f| kind_in_words(&f.kind())),
            found,
            position: Some(position),
        },
        Reported::Syntax => ConfigError::Syntax {
            file: file.to_path_buf(),
            position,
            message,
        },
    }
}

/// What a value of `kind` is written as, for error messages.
fn kind_in_words(kind: &Kind) -> &'static str {
    match kind {
        Kind::String | Kind::Bytes => "a string",
        Kind::Bool => "true or false",
        Kind::Float | Kind::Double => "a number",
        Kind::Enum(_) => "an enum value name",
        Kind::Message(_) => "a message `{ ... }`",
        _ => "an integer",
    }
}

/// The range of an integer `kind`, for error messages.
fn range_of(kind: &Kind) -> &'static str {
    match kind {
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 | Kind::Enum(_) => {
            "must be a signed 32-bit integer"
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => "must be a signed 64-bit integer",
        Kind::Uint32 | Kind::Fixed32 => "must be an unsigned 32-bit integer",
        _ => "must be an unsigned 64-bit integer",
    }
}

/// The field being written at a byte offset of a `config.pbtxt`, found by following the
/// text's nesting up to that offset. prost-reflect accepted everything before the offset,
/// so only names, braces and the extent of strings and comments need telling apart.
struct Location {
    /// The path of the message holding the field (`input[0]`), empty for the top level.
    message_path: String,
    /// That message's descriptor.
    message: MessageDescriptor,
    /// The name of the field last named in that message.
    field: Option<String>,
}

/// One message being written: its path and descriptor, the field last named in it, and
/// how many message values each of its fields has had so far.
struct Frame {
    location: Location,
    opened: HashMap<String, usize>,
}

impl Location {
    /// Where byte `offset` of `text` is: in the value of a field, or, when `at_name`, at
    /// the name of a field.
    fn find(text: &str, offset: usize, at_name: bool) -> Location {
        let root = Frame {
            location: Location {
                message_path: String::new(),
                message: schema::text_model_config(),
                field: None,
            },
            opened: HashMap::new(),
        };
        let mut stack = vec![root];
        let mut tokens = Tokens { text, at: 0 };
        while let Some((start, token)) = tokens.next() {
            if start > offset || (start == offset && !at_name) {
                break;
            }
            let top = stack.last_mut().expect("the top level is never closed");
            match token {
                Token::Name(name) if tokens.clone().next_is_field_value() => {
                    top.location.field = Some(name.to_string());
                }
                Token::Open => {
                    let child = top.child();
                    stack.push(child);
                }
                Token::Close if stack.len() > 1 => {
                    stack.pop();
                }
                _ => {}
            }
        }
        stack.pop().expect("the top level is never closed").location
    }

    fn field(&self) -> Option<FieldDescriptor> {
        self.message.get_field_by_name(self.field.as_deref()?)
    }

    /// The path of the field (the message's path when no field was named yet).
    fn path(&self) -> String {
        match (&self.field, self.message_path.is_empty()) {
            (None, _) => self.message_path.clone(),
            (Some(field), true) => field.clone(),
            (Some(field), false) => format!("{}.{field}", self.message_path),
        }
    }
}

impl Frame {
    /// The message that a `{` opens here: the value of the field last named.
    fn child(&mut self) -> Frame {
        let field = self.location.field();
        let name = self.location.field.clone().unwrap_or_default();
        let count = self.opened.entry(name.clone()).or_insert(0);
        let segment = match &field {
            Some(f) if f.is_list() => format!("{name}[{count}]"),
            _ => name,
        };
        *count += 1;
        let parent = &self.location;
        let message = field
            .and_then(|f| f.kind().as_message().cloned())
            .unwrap_or_else(|| parent.message.clone());
        Frame {
            location: Location {
                message_path: if parent.message_path.is_empty() {
                    segment
                } else {
                    format!("{}.{segment}", parent.message_path)
                },
                message,
                field: None,
            },
            opened: HashMap::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Token<'t> {
    /// A field name, enum value, number, `true`, ...
    Name(&'t str),
    /// `{` or `<`.
    Open,
    /// `}` or `>`.
    Close,
    /// `:`.
    Colon,
    /// `[`.
    ListOpen,
    /// `]`.
    ListClose,
    /// A string, or any other punctuation.
    Other,
}

/// The tokens of protobuf text format, each with the byte offset where it starts.
#[derive(Clone)]
struct Tokens<'t> {
    text: &'t str,
    at: usize,
}

impl<'t> Tokens<'t> {
    /// Whether the next token starts a field's value (`:`, `{`, `<` or, for a list of
    /// messages, `[`), which makes the name before it a field name.
    fn next_is_field_value(&mut self) -> bool {
        matches!(
            self.next(),
            Some((_, Token::Colon | Token::Open | Token::ListOpen))
        )
    }

    /// Whether the next tokens open a list of messages, or an empty list.
    fn next_is_message_list(&mut self) -> bool {
        matches!(self.next(), Some((_, Token::ListOpen)))
            && matches!(self.next(), Some((_, Token::Open | Token::ListClose)))
    }

    fn rest(&self) -> &'t str {
        &self.text[self.at..]
    }

    fn skip_blanks_and_comments(&mut self) {
        loop {
            let rest = self.rest();
            let trimmed = rest.trim_start();
            self.at += rest.len() - trimmed.len();
            if !trimmed.starts_with('#') {
                return;
            }
            self.at += trimmed.find('\n').unwrap_or(trimmed.len());
        }
    }
}

impl<'t> Iterator for Tokens<'t> {
    type Item = (usize, Token<'t>);

    fn next(&mut self) -> Option<(usize, Token<'t>)> {
        self.skip_blanks_and_comments();
        let start = self.at;
        let rest = self.rest();
        let c = rest.chars().next()?;
        let is_name = |c: char| c.is_alphanumeric() || matches!(c, '_' | '.' | '+');
        let (length, token) = match c {
            '{' | '<' => (1, Token::Open),
            '}' | '>' => (1, Token::Close),
            ':' => (1, Token::Colon),
            '[' => (1, Token::ListOpen),
            ']' => (1, Token::ListClose),
            '"' | '\'' => (string_length(rest, c), Token::Other),
            c if is_name(c) => {
                let length = rest.find(|c| !is_name(c)).unwrap_or(rest.len());
                (length, Token::Name(&rest[..length]))
            }
            c => (c.len_utf8(), Token::Other),
        };
        self.at += length;
        Some((start, token))
    }
}

/// The length in bytes of the string literal at the start of `text`, quoted by `quote`,
/// up to its closing quote (or the end of the line, for an unterminated one).
fn string_length(text: &str, quote: char) -> usize {
    let mut chars = text.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '\n' => return i,
            c if c == quote => return i + 1,
            _ => {}
        }
    }
    text.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path_at(text: &str, marker: &str) -> String {
        let offset = text.find(marker).expect("marker in text");
        Location::find(text, offset, marker.starts_with("name")).path()
    }

    #[test]
    fn locations_follow_nesting_lists_and_strings() {
        let text = r#"
            name: "a { b"  # a comment with { and }
            input [ { name: "x" }, { name: 'y}' dims: @ } ]
            instance_group { kind: KIND_CPU } instance_group < count: @2 >
            dynamic_batching { default_queue_policy { max_queue_size: @ } }
        "#;
        assert_eq!(path_at(text, "@ }"), "input[1].dims");
        assert_eq!(path_at(text, "@2"), "instance_group[1].count");
        assert_eq!(
            path_at(text, "@ } }"),
            "dynamic_batching.default_queue_policy.max_queue_size"
        );
        assert_eq!(path_at(text, "name: \"a"), "name");
    }
}
