//! Protobuf text format, the language of Triton's `config.pbtxt`, parsed into a generic tree
//! of fields.
//!
//! The parser is written by hand rather than generated from `model_config.proto`: generated
//! and reflective text-format parsers reject a field the schema does not know as a hard
//! error, whereas ferroserve must load any Triton repository and report the fields it does
//! not use as warnings. A schema-free tree lets the typed layer ([`super::ModelConfig`])
//! decide field by field.
//!
//! Supported syntax: `name: value` scalars; messages written `name { ... }`, `name: { ... }`
//! or with `<` `>`; repeated fields written repeatedly or as lists (`[1, 2]`,
//! `[{ ... }, { ... }]`); single- or double-quoted strings with C escapes (`\n`, `\"`,
//! octal `\101`, hex `\x41`, `\u00e9`, `\U0001F600`) and adjacent-string concatenation;
//! decimal, hexadecimal (`0x1F`) and octal (`017`) integers, optionally negative; floats
//! (`1.5`, `-2e-3`, `.5`, `1.5f`, `inf`, `nan`); `true`/`false`; enum identifiers;
//! `[extension.names]` as field names; `#` comments; optional `,` or `;` after each field.

use std::fmt;

/// Where something starts in the text: 1-based line and column (columns count characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: u32,
    pub column: u32,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A syntax error, with the position of the offending character.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{position}: {message}")]
pub struct ParseError {
    pub position: Position,
    pub message: String,
}

/// A message: its fields in the order written. A repeated field appears once per element,
/// whether it was written repeatedly or as a list.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Message {
    pub fields: Vec<Field>,
}

/// One `name: value` or `name { ... }` occurrence.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The field name; extension names keep their brackets (`[pkg.ext]`).
    pub name: String,
    /// Where the field name starts.
    pub position: Position,
    pub value: Value,
}

/// The value of one field occurrence.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A string literal (adjacent literals already joined, escapes resolved).
    String(String),
    /// An integer literal with its sign applied; wide enough for every `int64` and `uint64`.
    Integer(i128),
    /// A floating-point literal, including `inf` and `nan` (optionally negative).
    Float(f64),
    /// `true`, `True`, `false` or `False`.
    Bool(bool),
    /// Any other bare identifier: an enum value such as `TYPE_FP32`.
    Identifier(String),
    /// A nested message.
    Message(Message),
}

impl Value {
    /// What kind of value this is, in words, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::String(_) => "a string",
            Value::Integer(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Bool(_) => "a bool",
            Value::Identifier(_) => "an identifier",
            Value::Message(_) => "a message",
        }
    }
}

impl Message {
    /// Parses a whole document: the fields of the top-level message.
    pub fn parse(text: &str) -> Result<Message, ParseError> {
        Parser::new(text).parse_fields(None)
    }
}

/// A character cursor that tracks line and column.
struct Parser {
    chars: Vec<char>,
    index: usize,
    line: u32,
    column: u32,
}

impl Parser {
    fn new(text: &str) -> Self {
        Parser {
            // A byte-order mark, as some editors write, is not part of the text.
            chars: text
                .strip_prefix('\u{feff}')
                .unwrap_or(text)
                .chars()
                .collect(),
            index: 0,
            line: 1,
            column: 1,
        }
    }

    fn position(&self) -> Position {
        Position {
            line: self.line,
            column: self.column,
        }
    }

    fn error_at<T>(position: Position, message: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError {
            position,
            message: message.into(),
        })
    }

    fn error<T>(&self, message: impl Into<String>) -> Result<T, ParseError> {
        Self::error_at(self.position(), message)
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.index).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<char> {
        self.chars.get(self.index + offset).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.index += 1;
        if c == '\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(c)
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn skip_blanks(&mut self) {
        while let Some(c) = self.peek() {
            if c == '#' {
                while self.peek().is_some_and(|c| c != '\n') {
                    self.bump();
                }
            } else if c.is_whitespace() {
                self.bump();
            } else {
                break;
            }
        }
    }

    fn describe_next(&self) -> String {
        match self.peek() {
            None => "end of input".to_string(),
            Some(c) => format!("'{}'", c.escape_default()),
        }
    }

    /// Fields up to `close` (the closing bracket of a nested message) or end of input.
    fn parse_fields(&mut self, close: Option<char>) -> Result<Message, ParseError> {
        let mut message = Message::default();
        loop {
            self.skip_blanks();
            match (self.peek(), close) {
                (None, None) => return Ok(message),
                (None, Some(close)) => {
                    return self.error(format!("expected '{close}' before end of input"))
                }
                (Some(c), Some(close)) if c == close => {
                    self.bump();
                    return Ok(message);
                }
                _ => {}
            }
            self.parse_field(&mut message.fields)?;
            self.skip_blanks();
            if !self.eat(',') {
                self.eat(';');
            }
        }
    }

    fn parse_field(&mut self, fields: &mut Vec<Field>) -> Result<(), ParseError> {
        let position = self.position();
        let name = self.parse_field_name()?;
        self.skip_blanks();
        let colon = self.eat(':');
        self.skip_blanks();
        match self.peek() {
            Some('[') => {
                self.bump();
                self.parse_list(&name, position, fields)
            }
            Some('{' | '<') => {
                let value = self.parse_message_value()?;
                fields.push(Field {
                    name,
                    position,
                    value,
                });
                Ok(())
            }
            _ if !colon => self.error(format!(
                "expected ':', '{{' or '[' after field name `{name}`, found {}",
                self.describe_next()
            )),
            _ => {
                let value = self.parse_scalar()?;
                fields.push(Field {
                    name,
                    position,
                    value,
                });
                Ok(())
            }
        }
    }

    fn parse_field_name(&mut self) -> Result<String, ParseError> {
        if self.eat('[') {
            // Extension or Any type name: `[pkg.name]` or `[type.googleapis.com/pkg.Name]`.
            let mut name = String::from("[");
            self.skip_blanks();
            while let Some(c) = self.peek() {
                if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/') {
                    name.push(c);
                    self.bump();
                } else {
                    break;
                }
            }
            self.skip_blanks();
            if name.len() == 1 || !self.eat(']') {
                return self
                    .error("malformed extension field name, expected `[name.of.extension]`");
            }
            name.push(']');
            return Ok(name);
        }
        match self.peek() {
            Some(c) if c.is_ascii_alphabetic() || c == '_' => Ok(self.take_identifier()),
            _ => self.error(format!(
                "expected a field name, found {}",
                self.describe_next()
            )),
        }
    }

    fn take_identifier(&mut self) -> String {
        let mut ident = String::new();
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                ident.push(c);
                self.bump();
            } else {
                break;
            }
        }
        ident
    }

    /// The elements of a `[ ... ]` list (the `[` already consumed), each as one field.
    fn parse_list(
        &mut self,
        name: &str,
        position: Position,
        fields: &mut Vec<Field>,
    ) -> Result<(), ParseError> {
        self.skip_blanks();
        if self.eat(']') {
            return Ok(());
        }
        loop {
            self.skip_blanks();
            let value = match self.peek() {
                Some('{' | '<') => self.parse_message_value()?,
                _ => self.parse_scalar()?,
            };
            fields.push(Field {
                name: name.to_string(),
                position,
                value,
            });
            self.skip_blanks();
            if self.eat(']') {
                return Ok(());
            }
            if !self.eat(',') {
                return self.error(format!(
                    "expected ',' or ']' in the list of `{name}`, found {}",
                    self.describe_next()
                ));
            }
        }
    }

    fn parse_message_value(&mut self) -> Result<Value, ParseError> {
        let close = match self.bump() {
            Some('<') => '>',
            _ => '}',
        };
        Ok(Value::Message(self.parse_fields(Some(close))?))
    }

    fn parse_scalar(&mut self) -> Result<Value, ParseError> {
        let start = self.position();
        match self.peek() {
            Some('"' | '\'') => self.parse_strings(),
            Some('-') => {
                self.bump();
                self.skip_blanks();
                match self.parse_unsigned_scalar(start)? {
                    Value::Integer(i) => Ok(Value::Integer(-i)),
                    Value::Float(f) => Ok(Value::Float(-f)),
                    other => Self::error_at(
                        start,
                        format!("'-' must be followed by a number, found {}", other.kind()),
                    ),
                }
            }
            _ => self.parse_unsigned_scalar(start),
        }
    }

    fn parse_unsigned_scalar(&mut self, start: Position) -> Result<Value, ParseError> {
        match self.peek() {
            Some(c) if c.is_ascii_digit() => self.parse_number(),
            Some('.') if self.peek_at(1).is_some_and(|c| c.is_ascii_digit()) => self.parse_number(),
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                let ident = self.take_identifier();
                Ok(match ident.as_str() {
                    "true" | "True" => Value::Bool(true),
                    "false" | "False" => Value::Bool(false),
                    _ => match ident.to_ascii_lowercase().as_str() {
                        "inf" | "infinity" => Value::Float(f64::INFINITY),
                        "nan" => Value::Float(f64::NAN),
                        _ => Value::Identifier(ident),
                    },
                })
            }
            _ => Self::error_at(
                start,
                format!("expected a value, found {}", self.describe_next()),
            ),
        }
    }

    fn parse_number(&mut self) -> Result<Value, ParseError> {
        let start = self.position();
        let mut text = String::new();
        let hex = self.peek() == Some('0') && matches!(self.peek_at(1), Some('x' | 'X'));
        while let Some(c) = self.peek() {
            let exponent_sign = !hex && matches!(c, '+' | '-') && text.ends_with(['e', 'E']);
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' || exponent_sign {
                text.push(c);
                self.bump();
            } else {
                break;
            }
        }
        let invalid = || {
            Self::error_at(
                start,
                format!("invalid number `{text}` (strings must be quoted)"),
            )
        };
        let integer = if hex {
            u64::from_str_radix(&text[2..], 16).ok()
        } else if text.bytes().all(|b| b.is_ascii_digit()) {
            if text.len() > 1 && text.starts_with('0') {
                u64::from_str_radix(&text[1..], 8).ok()
            } else {
                text.parse::<u64>().ok()
            }
        } else {
            let body = text.strip_suffix(['f', 'F']).unwrap_or(&text);
            let looks_like_float = !body.is_empty()
                && body
                    .bytes()
                    .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
            return match body.parse::<f64>() {
                Ok(f) if looks_like_float => Ok(Value::Float(f)),
                _ => invalid(),
            };
        };
        match integer {
            Some(i) => Ok(Value::Integer(i128::from(i))),
            None => invalid(),
        }
    }

    /// One string literal, followed by any adjacent literals, joined.
    fn parse_strings(&mut self) -> Result<Value, ParseError> {
        let start = self.position();
        let mut bytes = Vec::new();
        loop {
            self.parse_string_literal(&mut bytes)?;
            self.skip_blanks();
            if !matches!(self.peek(), Some('"' | '\'')) {
                break;
            }
        }
        match String::from_utf8(bytes) {
            Ok(s) => Ok(Value::String(s)),
            Err(_) => Self::error_at(start, "string is not valid UTF-8 after escapes"),
        }
    }

    fn parse_string_literal(&mut self, out: &mut Vec<u8>) -> Result<(), ParseError> {
        let start = self.position();
        let Some(quote) = self.bump() else {
            return self.error("expected a string");
        };
        loop {
            match self.bump() {
                None | Some('\n') => return Self::error_at(start, "unterminated string"),
                Some(c) if c == quote => return Ok(()),
                Some('\\') => self.parse_escape(out)?,
                Some(c) => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
    }

    fn parse_escape(&mut self, out: &mut Vec<u8>) -> Result<(), ParseError> {
        let position = self.position();
        let Some(c) = self.bump() else {
            return self.error("unterminated string");
        };
        let byte = match c {
            'n' => b'\n',
            't' => b'\t',
            'r' => b'\r',
            'a' => 0x07,
            'b' => 0x08,
            'f' => 0x0c,
            'v' => 0x0b,
            '\\' => b'\\',
            '\'' => b'\'',
            '"' => b'"',
            '?' => b'?',
            '0'..='7' => {
                let mut value = c.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match self.peek().and_then(|d| d.to_digit(8)) {
                        Some(d) => {
                            value = value * 8 + d;
                            self.bump();
                        }
                        None => break,
                    }
                }
                match u8::try_from(value) {
                    Ok(b) => b,
                    Err(_) => return Self::error_at(position, "octal escape above \\377"),
                }
            }
            'x' | 'X' => {
                let value = self.take_hex_digits(2);
                match value {
                    Some((v, _)) => v as u8,
                    None => return Self::error_at(position, "\\x must be followed by hex digits"),
                }
            }
            'u' | 'U' => {
                let digits = if c == 'u' { 4 } else { 8 };
                let scalar = match self.take_hex_digits(digits) {
                    Some((v, n)) if n == digits => char::from_u32(v),
                    _ => None,
                };
                let Some(ch) = scalar else {
                    return Self::error_at(
                        position,
                        format!("\\{c} must be followed by {digits} hex digits of a Unicode scalar value"),
                    );
                };
                let mut buf = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                return Ok(());
            }
            other => {
                return Self::error_at(
                    position,
                    format!("unknown escape sequence \\{}", other.escape_default()),
                )
            }
        };
        out.push(byte);
        Ok(())
    }

    /// Up to `max` hex digits: their value and how many there were (`None` if none).
    fn take_hex_digits(&mut self, max: usize) -> Option<(u32, usize)> {
        let mut value = 0u32;
        let mut count = 0;
        while count < max {
            let Some(d) = self.peek().and_then(|c| c.to_digit(16)) else {
                break;
            };
            value = value * 16 + d;
            count += 1;
            self.bump();
        }
        (count > 0).then_some((value, count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Message {
        match Message::parse(text) {
            Ok(m) => m,
            Err(e) => panic!("parse failed: {e}"),
        }
    }

    fn values(m: &Message, name: &str) -> Vec<Value> {
        m.fields
            .iter()
            .filter(|f| f.name == name)
            .map(|f| f.value.clone())
            .collect()
    }

    fn only(m: &Message, name: &str) -> Value {
        let mut v = values(m, name);
        assert_eq!(v.len(), 1, "field {name}");
        v.remove(0)
    }

    fn message(v: Value) -> Message {
        match v {
            Value::Message(m) => m,
            other => panic!("not a message: {other:?}"),
        }
    }

    #[test]
    fn scalars_of_every_kind() {
        let m = parse(
            r#"
            s: "hello" i: 42 n: -7 h: 0x1F o: 017 big: 18446744073709551615
            f: 1.5 e: -2e-3 d: .5 g: 3.0f inf: -inf
            b: true c: False k: TYPE_FP32
            "#,
        );
        assert_eq!(only(&m, "s"), Value::String("hello".into()));
        assert_eq!(only(&m, "i"), Value::Integer(42));
        assert_eq!(only(&m, "n"), Value::Integer(-7));
        assert_eq!(only(&m, "h"), Value::Integer(31));
        assert_eq!(only(&m, "o"), Value::Integer(15));
        assert_eq!(only(&m, "big"), Value::Integer(u64::MAX as i128));
        assert_eq!(only(&m, "f"), Value::Float(1.5));
        assert_eq!(only(&m, "e"), Value::Float(-0.002));
        assert_eq!(only(&m, "d"), Value::Float(0.5));
        assert_eq!(only(&m, "g"), Value::Float(3.0));
        assert_eq!(only(&m, "inf"), Value::Float(f64::NEG_INFINITY));
        assert_eq!(only(&m, "b"), Value::Bool(true));
        assert_eq!(only(&m, "c"), Value::Bool(false));
        assert_eq!(only(&m, "k"), Value::Identifier("TYPE_FP32".into()));
    }

    #[test]
    fn strings_quotes_escapes_and_concatenation() {
        let m = parse(
            r#"
            a: 'single "inner"'
            b: "esc \"q\" \\ \n \t \101\x42 \u00e9 \U0001F600"
            c: "abc" 'def'
               # a comment between the parts
               "ghi"
            "#,
        );
        assert_eq!(only(&m, "a"), Value::String("single \"inner\"".into()));
        assert_eq!(
            only(&m, "b"),
            Value::String("esc \"q\" \\ \n \t AB é 😀".into())
        );
        assert_eq!(only(&m, "c"), Value::String("abcdefghi".into()));
    }

    #[test]
    fn messages_lists_and_separators() {
        let m = parse(
            r#"
            input [
              { name: "a", dims: [ 3, -1 ] },
              < name: "b"; dims: 4 dims: 5 >
            ]
            one { x: 1 }, two: { x: 2 }; three: < x: 3 >
            empty: []
            [ext.field]: 1
            "#,
        );
        let inputs = values(&m, "input");
        assert_eq!(inputs.len(), 2);
        let a = message(inputs[0].clone());
        assert_eq!(
            values(&a, "dims"),
            vec![Value::Integer(3), Value::Integer(-1)]
        );
        let b = message(inputs[1].clone());
        assert_eq!(
            values(&b, "dims"),
            vec![Value::Integer(4), Value::Integer(5)]
        );
        for name in ["one", "two", "three"] {
            assert_eq!(message(only(&m, name)).fields.len(), 1);
        }
        assert!(values(&m, "empty").is_empty());
        assert_eq!(only(&m, "[ext.field]"), Value::Integer(1));
    }

    #[test]
    fn field_positions_are_recorded() {
        let m = parse("a: 1\n  b {\n    c: 2 }");
        assert_eq!(m.fields[0].position, Position { line: 1, column: 1 });
        assert_eq!(m.fields[1].position, Position { line: 2, column: 3 });
        let b = message(m.fields[1].value.clone());
        assert_eq!(b.fields[0].position, Position { line: 3, column: 5 });
    }

    fn error(text: &str) -> ParseError {
        match Message::parse(text) {
            Ok(m) => panic!("expected an error, parsed {m:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn errors_carry_line_and_column() {
        let e = error("name: \"x\"\nmax_batch_size 8\n");
        assert_eq!(
            e.position,
            Position {
                line: 2,
                column: 16
            }
        );
        assert!(e.message.contains("expected ':'"), "{e}");

        let e = error("a {\n  b: 1\n");
        assert_eq!(e.position.line, 3);
        assert!(e.message.contains("expected '}'"), "{e}");

        let e = error("crop: 224x200");
        assert_eq!(e.position, Position { line: 1, column: 7 });
        assert!(e.message.contains("224x200"), "{e}");

        let e = error("s: \"open\nt: 1");
        assert_eq!(e.position, Position { line: 1, column: 4 });
        assert!(e.message.contains("unterminated"), "{e}");

        let e = error("dims: [1 2]");
        assert!(e.message.contains("expected ',' or ']'"), "{e}");

        assert!(error("a: \"\\q\"").message.contains("unknown escape"));
        assert!(error("a: -x").message.contains("'-'"));
        assert!(error("a: 99999999999999999999")
            .message
            .contains("invalid number"));
        assert!(error("a: \"\\xff\"").message.contains("UTF-8"));
        assert!(error("a: }").message.contains("expected a value"));
        assert!(error("}").message.contains("expected a field name"));
        assert!(error("a: 1 }").message.contains("expected a field name"));
        assert!(error("[ext: 1").message.contains("extension"));
    }

    #[test]
    fn empty_and_comment_only_documents() {
        assert!(parse("").fields.is_empty());
        assert!(parse("\u{feff}").fields.is_empty());
        assert!(parse("# nothing\n   # here\n").fields.is_empty());
    }
}
