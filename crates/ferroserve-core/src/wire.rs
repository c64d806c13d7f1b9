//! Tensor elements on the wire, in one place for every front end, the runtime and the
//! load generator: the switch from a [`DataType`] to its Rust element type
//! ([`with_element_type!`]), little-endian elements to and from JSON, and the
//! length-prefixed encoding of `BYTES` elements.
//!
//! Every function checks what a client controls (element counts, value ranges, lengths)
//! and answers with a [`WireError`] that says what was wrong; none panics on bad input.

use std::fmt;

use bytes::Bytes;
use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserializer, Serialize, Serializer};

use crate::tensor::DataType;

pub use half::f16;

/// Why tensor elements could not be read or written.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WireError {
    #[error("shape {shape:?} needs {expected} elements, got {got}")]
    ElementCount {
        shape: Vec<usize>,
        expected: usize,
        got: usize,
    },
    #[error("shape {shape:?} of type {dtype} needs {} bytes, got {got}", expected.map_or_else(|| "more than addressable".to_string(), |n| n.to_string()))]
    ByteSize {
        shape: Vec<usize>,
        dtype: DataType,
        /// `None` when the size overflows.
        expected: Option<usize>,
        got: usize,
    },
    #[error("element {index} is {value}, not a valid {dtype} value: expected {expected}")]
    Value {
        index: usize,
        value: String,
        dtype: DataType,
        expected: &'static str,
    },
    #[error("BYTES element {index} starts at byte {offset} but only {remaining} bytes remain, too few for its 4-byte length")]
    TruncatedLength {
        index: usize,
        offset: usize,
        remaining: usize,
    },
    #[error("BYTES element {index} declares {length} bytes but only {remaining} remain")]
    TruncatedElement {
        index: usize,
        length: usize,
        remaining: usize,
    },
    #[error("a BYTES element of {0} bytes is too long for its 4-byte length")]
    ElementTooLong(usize),
    #[error("{0} elements have no fixed size")]
    NotFixedSize(DataType),
    #[error("shape {shape:?} needs {expected} elements, got more")]
    TooManyElements { shape: Vec<usize>, expected: usize },
    #[error("data is not an array of numbers, booleans or strings: {0}")]
    Json(String),
}

/// A fixed-size element type of the protocol, read and written little-endian.
pub trait Element: Copy + PartialEq + fmt::Debug + Send + Sync + 'static {
    /// The element's size in bytes.
    const SIZE: usize;
    /// What a JSON value of this type must be, for error messages.
    const EXPECTED: &'static str;
    /// Reads one element from exactly [`Self::SIZE`] bytes.
    fn read(bytes: &[u8]) -> Self;
    /// Appends the element's bytes.
    fn write(self, out: &mut Vec<u8>);
    /// The element a JSON value stands for, if it is one exactly.
    fn from_json(value: &JsonElement) -> Option<Self>;
    /// The element as a number (booleans as 0 and 1).
    fn to_f64(self) -> f64;
    /// Adds the element to a JSON array: a number, or a boolean for `BOOL`.
    fn serialize_into<S: SerializeSeq>(self, seq: &mut S) -> Result<(), S::Error>;
}

macro_rules! integer_element {
    ($($t:ty),*) => {$(
        impl Element for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            const EXPECTED: &'static str = concat!("an integer in the range of ", stringify!($t));
            fn read(bytes: &[u8]) -> Self {
                <$t>::from_le_bytes(bytes.try_into().expect("an element's bytes"))
            }
            fn write(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn from_json(value: &JsonElement) -> Option<Self> {
                match *value {
                    JsonElement::UInt(v) => <$t>::try_from(v).ok(),
                    JsonElement::Int(v) => <$t>::try_from(v).ok(),
                    _ => None,
                }
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn serialize_into<S: SerializeSeq>(self, seq: &mut S) -> Result<(), S::Error> {
                seq.serialize_element(&self)
            }
        }
    )*};
}

integer_element!(u8, u16, u32, u64, i8, i16, i32, i64);

macro_rules! float_element {
    ($t:ty, $expected:literal, $from:expr, $to:expr, $json:expr) => {
        impl Element for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            const EXPECTED: &'static str = $expected;
            fn read(bytes: &[u8]) -> Self {
                <$t>::from_le_bytes(bytes.try_into().expect("an element's bytes"))
            }
            fn write(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn from_json(value: &JsonElement) -> Option<Self> {
                value.number().and_then($from)
            }
            fn to_f64(self) -> f64 {
                $to(self)
            }
            fn serialize_into<S: SerializeSeq>(self, seq: &mut S) -> Result<(), S::Error> {
                seq.serialize_element(&$json(self))
            }
        }
    };
}

float_element!(
    f16,
    "a number within the FP16 range",
    |v: f64| (v.abs() <= f16::MAX.to_f64()).then(|| f16::from_f64(v)),
    |v: f16| v.to_f64(),
    |v: f16| v.to_f32()
);
float_element!(
    f32,
    "a number within the FP32 range",
    |v: f64| (v.abs() <= f64::from(f32::MAX)).then_some(v as f32),
    f64::from,
    |v: f32| v
);
float_element!(f64, "a number", Some, |v| v, |v: f64| v);

impl Element for bool {
    const SIZE: usize = 1;
    const EXPECTED: &'static str = "true or false";
    fn read(bytes: &[u8]) -> Self {
        bytes[0] != 0
    }
    fn write(self, out: &mut Vec<u8>) {
        out.push(u8::from(self));
    }
    fn from_json(value: &JsonElement) -> Option<Self> {
        match *value {
            JsonElement::Bool(b) => Some(b),
            _ => None,
        }
    }
    fn to_f64(self) -> f64 {
        f64::from(u8::from(self))
    }
    fn serialize_into<S: SerializeSeq>(self, seq: &mut S) -> Result<(), S::Error> {
        seq.serialize_element(&self)
    }
}

/// Runs `$numeric` with `$t` bound to the [`Element`] type of the fixed-size datatype
/// `$dtype`, or `$bytes` for `BYTES`: the one switch on datatypes.
///
/// ```
/// # use ferroserve_core::{with_element_type, wire::Element, DataType};
/// let size = with_element_type!(DataType::Fp16, |T| T::SIZE, bytes => 0);
/// assert_eq!(size, 2);
/// ```
#[macro_export]
macro_rules! with_element_type {
    ($dtype:expr, |$t:ident| $numeric:expr, bytes => $bytes:expr) => {
        match $dtype {
            $crate::DataType::Bool => {
                type $t = bool;
                $numeric
            }
            $crate::DataType::Uint8 => {
                type $t = u8;
                $numeric
            }
            $crate::DataType::Uint16 => {
                type $t = u16;
                $numeric
            }
            $crate::DataType::Uint32 => {
                type $t = u32;
                $numeric
            }
            $crate::DataType::Uint64 => {
                type $t = u64;
                $numeric
            }
            $crate::DataType::Int8 => {
                type $t = i8;
                $numeric
            }
            $crate::DataType::Int16 => {
                type $t = i16;
                $numeric
            }
            $crate::DataType::Int32 => {
                type $t = i32;
                $numeric
            }
            $crate::DataType::Int64 => {
                type $t = i64;
                $numeric
            }
            $crate::DataType::Fp16 => {
                type $t = $crate::wire::f16;
                $numeric
            }
            $crate::DataType::Fp32 => {
                type $t = f32;
                $numeric
            }
            $crate::DataType::Fp64 => {
                type $t = f64;
                $numeric
            }
            $crate::DataType::Bytes => $bytes,
        }
    };
}

/// The elements of little-endian `data`, read as `T` (a trailing partial element is
/// ignored).
pub fn elements<T: Element>(data: &[u8]) -> impl ExactSizeIterator<Item = T> + '_ {
    data.chunks_exact(T::SIZE).map(T::read)
}

/// The elements of `data` (of the fixed-size `dtype`) as `f64`; nothing for `BYTES`.
pub fn to_f64(dtype: DataType, data: &[u8]) -> Vec<f64> {
    with_element_type!(dtype, |T| elements::<T>(data).map(T::to_f64).collect(), bytes => Vec::new())
}

/// Checks that `data` holds exactly the elements of a tensor of `shape` and `dtype`.
pub fn check_byte_size(dtype: DataType, shape: &[usize], data: &[u8]) -> Result<(), WireError> {
    let size = dtype.size().ok_or(WireError::NotFixedSize(dtype))?;
    let expected = shape.iter().try_fold(size, |n, &d| n.checked_mul(d));
    if expected == Some(data.len()) {
        Ok(())
    } else {
        Err(WireError::ByteSize {
            shape: shape.to_vec(),
            dtype,
            expected,
            got: data.len(),
        })
    }
}

/// One element of a tensor given as JSON.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonElement {
    Bool(bool),
    /// A negative integer.
    Int(i64),
    /// A non-negative integer.
    UInt(u64),
    /// A number with a fraction or exponent, or an integer too large for 64 bits.
    Float(f64),
    Str(Box<str>),
}

impl JsonElement {
    /// A finite JSON number as `f64`; `None` for anything else.
    fn number(&self) -> Option<f64> {
        match *self {
            JsonElement::UInt(v) => Some(v as f64),
            JsonElement::Int(v) => Some(v as f64),
            JsonElement::Float(v) if v.is_finite() => Some(v),
            _ => None,
        }
    }
}

impl fmt::Display for JsonElement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonElement::Bool(b) => write!(f, "{b}"),
            JsonElement::Int(i) => write!(f, "{i}"),
            JsonElement::UInt(u) => write!(f, "{u}"),
            JsonElement::Float(x) => write!(f, "{x}"),
            JsonElement::Str(s) if s.chars().count() > 32 => {
                write!(f, "{:?}...", s.chars().take(32).collect::<String>())
            }
            JsonElement::Str(s) => write!(f, "{s:?}"),
        }
    }
}

/// Reads the `data` of a JSON tensor of `shape`, given flat (`[1, 2, 3, 4]`) or nested
/// (`[[1, 2], [3, 4]]`), as little-endian `dtype` bytes. The elements are converted as
/// they are read, with no intermediate list, and reading stops at the first element
/// beyond the shape. Every element must be representable exactly: integers within the
/// type's range, floats finite and within range, booleans for `BOOL`.
pub fn json_to_le(dtype: DataType, shape: &[usize], json: &str) -> Result<Vec<u8>, WireError> {
    fn convert<T: Element>(
        dtype: DataType,
        shape: &[usize],
        json: &str,
    ) -> Result<Vec<u8>, WireError> {
        let expected = element_count(dtype, shape)?;
        // A JSON element takes at least two characters ("1,"): a short text cannot make
        // a huge shape reserve memory.
        let mut out = Vec::with_capacity(T::SIZE * expected.min(json.len() / 2 + 1));
        read_json(shape, expected, json, |index, value| {
            let element = T::from_json(&value).ok_or_else(|| WireError::Value {
                index,
                value: value.to_string(),
                dtype,
                expected: T::EXPECTED,
            })?;
            element.write(&mut out);
            Ok(())
        })?;
        Ok(out)
    }
    with_element_type!(dtype, |T| convert::<T>(dtype, shape, json), bytes => Err(WireError::NotFixedSize(dtype)))
}

/// Reads the `data` of a JSON `BYTES` tensor of `shape`: each element must be a string
/// (sent as its UTF-8 bytes).
pub fn json_to_strings(shape: &[usize], json: &str) -> Result<Vec<Bytes>, WireError> {
    let expected = element_count(DataType::Bytes, shape)?;
    let mut strings = Vec::with_capacity(expected.min(json.len() / 3 + 1));
    read_json(shape, expected, json, |index, value| match value {
        JsonElement::Str(s) => {
            strings.push(Bytes::from(s.into_string()));
            Ok(())
        }
        other => Err(WireError::Value {
            index,
            value: other.to_string(),
            dtype: DataType::Bytes,
            expected: "a string",
        }),
    })?;
    Ok(strings)
}

/// Elements of a tensor of `shape`; an error, not a wrapped number, when a client's shape
/// multiplies past what a `usize` holds.
pub fn element_count(dtype: DataType, shape: &[usize]) -> Result<usize, WireError> {
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| WireError::ByteSize {
            shape: shape.to_vec(),
            dtype,
            expected: None,
            got: 0,
        })
}

/// Hands every scalar of the JSON array `json` to `each`, in row-major order, and
/// checks that there are exactly `expected` of them.
fn read_json(
    shape: &[usize],
    expected: usize,
    json: &str,
    each: impl FnMut(usize, JsonElement) -> Result<(), WireError>,
) -> Result<(), WireError> {
    let mut reader = Reader {
        each,
        count: 0,
        expected,
        refused: None,
    };
    let mut deserializer = serde_json::Deserializer::from_str(json);
    let read = Flatten(&mut reader)
        .deserialize(&mut deserializer)
        .and_then(|()| deserializer.end());
    if let Some(refused) = reader.refused {
        return Err(match refused {
            Refused::Element(error) => error,
            Refused::TooMany => WireError::TooManyElements {
                shape: shape.to_vec(),
                expected,
            },
        });
    }
    read.map_err(|e| WireError::Json(e.to_string()))?;
    if reader.count != expected {
        return Err(WireError::ElementCount {
            shape: shape.to_vec(),
            expected,
            got: reader.count,
        });
    }
    Ok(())
}

/// The state of one [`read_json`]: the elements seen so far, and why reading stopped
/// early, if it did.
struct Reader<F> {
    each: F,
    count: usize,
    expected: usize,
    refused: Option<Refused>,
}

enum Refused {
    Element(WireError),
    TooMany,
}

impl<F: FnMut(usize, JsonElement) -> Result<(), WireError>> Reader<F> {
    fn push<E: de::Error>(&mut self, element: JsonElement) -> Result<(), E> {
        if self.count == self.expected {
            self.refused = Some(Refused::TooMany);
            return Err(E::custom("more elements than the shape holds"));
        }
        if let Err(error) = (self.each)(self.count, element) {
            self.refused = Some(Refused::Element(error));
            return Err(E::custom("an element is not valid"));
        }
        self.count += 1;
        Ok(())
    }
}

/// Visits one JSON value: a scalar is an element, an array is visited element by
/// element. Nesting depth is bounded by the deserializer's recursion limit.
struct Flatten<'r, F>(&'r mut Reader<F>);

impl<'de, F: FnMut(usize, JsonElement) -> Result<(), WireError>> DeserializeSeed<'de>
    for Flatten<'_, F>
{
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, F: FnMut(usize, JsonElement) -> Result<(), WireError>> Visitor<'de> for Flatten<'_, F> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of numbers, booleans or strings (possibly nested)")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.0.push(JsonElement::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.0.push(match u64::try_from(v) {
            Ok(u) => JsonElement::UInt(u),
            Err(_) => JsonElement::Int(v),
        })
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.0.push(JsonElement::UInt(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.0.push(JsonElement::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.0.push(JsonElement::Str(v.into()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<(), E> {
        self.0.push(JsonElement::Str(v.into_boxed_str()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Flatten(&mut *self.0))?.is_some() {}
        Ok(())
    }
}

/// Little-endian tensor data serialised as a flat JSON array of `dtype` values: numbers,
/// booleans, or (for `BYTES` in their binary form) strings, lossily decoded as UTF-8.
pub struct JsonElements<'a> {
    pub dtype: DataType,
    pub data: &'a [u8],
}

impl Serialize for JsonElements<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        fn each<S: Serializer, T: Element>(data: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
            let values = elements::<T>(data);
            let mut seq = serializer.serialize_seq(Some(values.len()))?;
            for value in values {
                value.serialize_into(&mut seq)?;
            }
            seq.end()
        }
        with_element_type!(self.dtype, |T| each::<S, T>(self.data, serializer), bytes => {
            let strings = split_bytes(&Bytes::copy_from_slice(self.data))
                .map_err(serde::ser::Error::custom)?;
            let mut seq = serializer.serialize_seq(Some(strings.len()))?;
            for string in &strings {
                seq.serialize_element(&String::from_utf8_lossy(string))?;
            }
            seq.end()
        })
    }
}

/// The `BYTES` elements of `data` in their binary form (each a 4-byte little-endian
/// length, then that many bytes), as slices of `data`, in order; a framing error ends
/// the iteration.
pub fn bytes_elements(data: &[u8]) -> BytesElements<'_> {
    BytesElements {
        data,
        offset: 0,
        index: 0,
    }
}

/// The iterator of [`bytes_elements`].
#[derive(Debug, Clone)]
pub struct BytesElements<'a> {
    data: &'a [u8],
    offset: usize,
    index: usize,
}

impl BytesElements<'_> {
    /// Where the next element's length prefix starts: after the elements read so far.
    pub fn offset(&self) -> usize {
        self.offset
    }
}

impl<'a> Iterator for BytesElements<'a> {
    type Item = Result<&'a [u8], WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        let (data, offset, index) = (self.data, self.offset, self.index);
        if offset >= data.len() {
            return None;
        }
        let Some(prefix) = data.get(offset..offset + 4) else {
            self.offset = data.len();
            return Some(Err(WireError::TruncatedLength {
                index,
                offset,
                remaining: data.len() - offset,
            }));
        };
        let length = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        let start = offset + 4;
        let remaining = data.len() - start;
        if length > remaining {
            self.offset = data.len();
            return Some(Err(WireError::TruncatedElement {
                index,
                length,
                remaining,
            }));
        }
        self.offset = start + length;
        self.index += 1;
        Some(Ok(&data[start..start + length]))
    }
}

/// Splits `BYTES` elements in their binary form (each a 4-byte little-endian length, then
/// that many bytes) into slices of `data`, without copying.
pub fn split_bytes(data: &Bytes) -> Result<Vec<Bytes>, WireError> {
    bytes_elements(data)
        .map(|element| element.map(|e| data.slice_ref(e)))
        .collect()
}

/// Checks that `data` holds exactly the `BYTES` elements of a tensor of `shape`, in their
/// binary form.
pub fn check_bytes(shape: &[usize], data: &[u8]) -> Result<(), WireError> {
    let expected = element_count(DataType::Bytes, shape)?;
    let mut got = 0;
    for element in bytes_elements(data) {
        element?;
        got += 1;
    }
    if got == expected {
        Ok(())
    } else {
        Err(WireError::ElementCount {
            shape: shape.to_vec(),
            expected,
            got,
        })
    }
}

/// The bytes the first `count` `BYTES` elements of `data` (binary form) take; `None`
/// when `data` holds fewer or is not well framed.
pub fn bytes_prefix_len(data: &[u8], count: usize) -> Option<usize> {
    let mut elements = bytes_elements(data);
    for _ in 0..count {
        elements.next()?.ok()?;
    }
    Some(elements.offset())
}

/// Bytes [`write_bytes`] writes for `elements`.
pub fn bytes_len<T: AsRef<[u8]>>(elements: &[T]) -> usize {
    elements.iter().map(|e| 4 + e.as_ref().len()).sum()
}

/// Appends `BYTES` elements in their binary form: each a 4-byte little-endian length,
/// then its bytes. An element longer than `u32::MAX` bytes is an error.
pub fn write_bytes<T: AsRef<[u8]>>(elements: &[T], out: &mut Vec<u8>) -> Result<(), WireError> {
    out.reserve(bytes_len(elements));
    for element in elements {
        let element = element.as_ref();
        let length =
            u32::try_from(element.len()).map_err(|_| WireError::ElementTooLong(element.len()))?;
        out.extend_from_slice(&length.to_le_bytes());
        out.extend_from_slice(element);
    }
    Ok(())
}

/// `BYTES` elements in their binary form, as one buffer.
pub fn encode_bytes<T: AsRef<[u8]>>(elements: &[T]) -> Result<Bytes, WireError> {
    let mut out = Vec::new();
    write_bytes(elements, &mut out)?;
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_and_flat_arrays_give_the_same_elements() {
        let nested = json_to_le(DataType::Int32, &[2, 2], "[[1, 2], [3, 4]]").unwrap();
        let flat = json_to_le(DataType::Int32, &[2, 2], "[1, 2, 3, 4]").unwrap();
        assert_eq!(nested, flat);
        let bools = json_to_le(DataType::Bool, &[2, 1, 1], "[[[true]], [[false]]]").unwrap();
        assert_eq!(bools, [1, 0]);
    }

    #[test]
    fn the_element_count_must_match_the_shape() {
        let few = json_to_le(DataType::Fp32, &[3], "[1, 2]").unwrap_err();
        assert_eq!(few.to_string(), "shape [3] needs 3 elements, got 2");
        let many = json_to_le(DataType::Fp32, &[2], "[1, 2, 3]").unwrap_err();
        assert_eq!(many.to_string(), "shape [2] needs 2 elements, got more");
        // A short text for a huge shape is refused without reserving the shape's bytes.
        let huge = json_to_le(DataType::Fp64, &[1 << 40], "[1]").unwrap_err();
        assert!(matches!(huge, WireError::ElementCount { got: 1, .. }));
        assert!(json_to_le(DataType::Fp32, &[usize::MAX, 2], "[1]").is_err());
    }

    #[test]
    fn reading_stops_at_the_first_element_beyond_the_shape() {
        let mut seen = 0;
        let refused = read_json(&[2], 2, "[1, 2, 3, \"not even read\", {}]", |_, _| {
            seen += 1;
            Ok(())
        });
        assert!(matches!(refused, Err(WireError::TooManyElements { .. })));
        assert_eq!(seen, 2);
    }

    #[test]
    fn json_elements_become_little_endian_values_of_every_type() {
        let cases: Vec<(DataType, &str, Vec<u8>)> = vec![
            (DataType::Bool, "[true, false]", vec![1, 0]),
            (DataType::Uint8, "[0, 255]", vec![0, 255]),
            (DataType::Int8, "[-1, 127]", vec![0xff, 0x7f]),
            (DataType::Uint16, "[1, 65535]", vec![1, 0, 0xff, 0xff]),
            (DataType::Int16, "[-2, 256]", vec![0xfe, 0xff, 0, 1]),
            (DataType::Int32, "[-1]", (-1i32).to_le_bytes().to_vec()),
            (DataType::Uint32, "[7]", 7u32.to_le_bytes().to_vec()),
            (DataType::Int64, "[-3]", (-3i64).to_le_bytes().to_vec()),
            (
                DataType::Uint64,
                "[18446744073709551615]",
                u64::MAX.to_le_bytes().to_vec(),
            ),
            (
                DataType::Fp16,
                "[1.5, -2]",
                [0x3e00u16.to_le_bytes(), 0xc000u16.to_le_bytes()].concat(),
            ),
            (
                DataType::Fp32,
                "[0.5, 2]",
                [0.5f32.to_le_bytes(), 2f32.to_le_bytes()].concat(),
            ),
            (DataType::Fp64, "[0.25]", 0.25f64.to_le_bytes().to_vec()),
        ];
        for (dtype, json, expected) in cases {
            let count = expected.len() / dtype.size().unwrap();
            let bytes = json_to_le(dtype, &[count], json).unwrap();
            assert_eq!(bytes, expected, "{dtype}");
            let back = serde_json::to_value(JsonElements {
                dtype,
                data: &bytes,
            })
            .unwrap();
            let again = json_to_le(dtype, &[count], &back.to_string()).unwrap();
            assert_eq!(again, expected, "{dtype} round trip");
        }
    }

    #[test]
    fn values_outside_the_type_are_refused_with_the_element() {
        let cases = [
            (DataType::Uint8, "[1, 256]", "element 1 is 256"),
            (DataType::Int8, "[-129]", "element 0 is -129"),
            (DataType::Bool, "[1]", "true or false"),
            (DataType::Fp16, "[70000]", "FP16 range"),
            (DataType::Fp32, "[1e39]", "FP32 range"),
            (DataType::Int32, "[1.5]", "an integer"),
            (DataType::Fp64, "[\"x\"]", "a number"),
        ];
        for (dtype, json, message) in cases {
            let count = json.matches(',').count() + 1;
            let error = json_to_le(dtype, &[count], json).unwrap_err().to_string();
            assert!(error.contains(message), "{dtype} {json}: {error}");
        }
        assert!(json_to_le(DataType::Bytes, &[1], "[1]").is_err());
    }

    #[test]
    fn bytes_elements_round_trip_and_truncations_are_refused() {
        let elements = [b"ab".as_slice(), b"", b"xyz"];
        let encoded = encode_bytes(&elements).unwrap();
        assert_eq!(encoded.len(), bytes_len(&elements));
        let split = split_bytes(&encoded).unwrap();
        assert_eq!(split, elements.map(Bytes::from_static));
        for cut in 1..encoded.len() {
            let truncated = encoded.slice(..cut);
            if let Ok(parts) = split_bytes(&truncated) {
                // Cutting exactly between elements leaves whole elements.
                assert!(parts.len() < 3, "cut at {cut}");
            }
        }
        assert!(matches!(
            split_bytes(&Bytes::from_static(&[9, 0, 0, 0, 1])),
            Err(WireError::TruncatedElement {
                index: 0,
                length: 9,
                remaining: 1
            })
        ));
        assert!(matches!(
            split_bytes(&Bytes::from_static(&[1, 0])),
            Err(WireError::TruncatedLength { .. })
        ));
    }

    #[test]
    fn bytes_elements_are_counted_and_measured() {
        let encoded = encode_bytes(&["ab", "", "xyz"]).unwrap();
        assert!(check_bytes(&[3], &encoded).is_ok());
        assert!(check_bytes(&[1, 3], &encoded).is_ok());
        assert!(matches!(
            check_bytes(&[2], &encoded),
            Err(WireError::ElementCount {
                expected: 2,
                got: 3,
                ..
            })
        ));
        assert!(check_bytes(&[3], &encoded[..encoded.len() - 1]).is_err());
        assert!(check_bytes(&[0], &[]).is_ok());
        // Found by fuzz/tensor_wire: a shape whose product overflows (to 0, wrapped) is
        // refused, not taken for an empty tensor nor a panic.
        let huge = [1usize << 32, 1 << 32];
        assert!(matches!(
            check_bytes(&huge, &[]),
            Err(WireError::ByteSize { expected: None, .. })
        ));
        assert_eq!(bytes_prefix_len(&encoded, 0), Some(0));
        assert_eq!(bytes_prefix_len(&encoded, 1), Some(6));
        assert_eq!(bytes_prefix_len(&encoded, 2), Some(10));
        assert_eq!(bytes_prefix_len(&encoded, 3), Some(encoded.len()));
        assert_eq!(bytes_prefix_len(&encoded, 4), None);
        let slices: Vec<&[u8]> = bytes_elements(&encoded).map(Result::unwrap).collect();
        assert_eq!(slices, [b"ab".as_slice(), b"", b"xyz"]);
    }

    #[test]
    fn byte_sizes_are_checked_against_the_shape() {
        assert!(check_byte_size(DataType::Fp32, &[2, 3], &[0; 24]).is_ok());
        let error = check_byte_size(DataType::Fp32, &[2, 3], &[0; 20]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "shape [2, 3] of type FP32 needs 24 bytes, got 20"
        );
        let huge = check_byte_size(DataType::Fp64, &[usize::MAX, 2], &[]).unwrap_err();
        assert!(huge.to_string().contains("more than addressable"));
    }

    #[test]
    fn numbers_convert_to_f64_for_every_type() {
        let half = [
            f16::from_f32(0.5).to_le_bytes(),
            f16::from_f32(-1.0).to_le_bytes(),
        ]
        .concat();
        assert_eq!(to_f64(DataType::Fp16, &half), [0.5, -1.0]);
        assert_eq!(to_f64(DataType::Bool, &[1, 0]), [1.0, 0.0]);
        assert_eq!(to_f64(DataType::Int16, &(-7i16).to_le_bytes()), [-7.0]);
        assert!(to_f64(DataType::Bytes, &[1, 2]).is_empty());
    }

    #[test]
    fn objects_nulls_and_deep_nesting_are_not_tensor_data() {
        let read = |json: &str| json_to_le(DataType::Fp32, &[2], json);
        assert!(matches!(read("[1, null]"), Err(WireError::Json(_))));
        assert!(matches!(read(r#"[{"a": 1}, 2]"#), Err(WireError::Json(_))));
        assert!(matches!(read("[1, 2] 3"), Err(WireError::Json(_))));
        let deep = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(matches!(read(&deep), Err(WireError::Json(_))));
    }

    #[test]
    fn bytes_elements_of_json_are_strings() {
        let strings = json_to_strings(&[2], r#"["ab", ""]"#).unwrap();
        assert_eq!(strings, vec![Bytes::from("ab"), Bytes::new()]);
        assert!(json_to_strings(&[1], "[1]").is_err());
    }

    #[test]
    fn raw_data_serialises_as_the_shortest_json_values() {
        let json =
            |dtype, data: &[u8]| serde_json::to_string(&JsonElements { dtype, data }).unwrap();
        let floats = [0.1f32.to_le_bytes(), (-2.0f32).to_le_bytes()].concat();
        assert_eq!(json(DataType::Fp32, &floats), "[0.1,-2.0]");
        assert_eq!(json(DataType::Int16, &(-3i16).to_le_bytes()), "[-3]");
        assert_eq!(json(DataType::Bool, &[1, 0]), "[true,false]");
        let strings = encode_bytes(&["a", "bc"]).unwrap();
        assert_eq!(json(DataType::Bytes, &strings), r#"["a","bc"]"#);
    }
}
