//! Tensor elements on the wire: JSON arrays (flat or nested) to little-endian bytes of a
//! declared datatype and back, and the length-prefixed encoding of `BYTES` elements in
//! binary tensor data. Plain functions, free of HTTP.

use std::fmt;

use bytes::Bytes;
use ferroserve_core::DataType;
use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

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

/// The elements of a JSON tensor in row-major order: the `data` of a request input,
/// flattened as it is read, whether it was given flat (`[1, 2, 3, 4]`) or nested
/// (`[[1, 2], [3, 4]]`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FlatElements(pub Vec<JsonElement>);

impl<'de> Deserialize<'de> for FlatElements {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut elements = Vec::new();
        deserializer.deserialize_any(Flatten(&mut elements))?;
        Ok(FlatElements(elements))
    }
}

/// Appends every scalar of a (nested) JSON array to the vector. Nesting depth is bounded
/// by serde_json's recursion limit.
struct Flatten<'a>(&'a mut Vec<JsonElement>);

impl<'de> DeserializeSeed<'de> for Flatten<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Flatten<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of numbers, booleans or strings (possibly nested)")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.0.push(JsonElement::Bool(v));
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.0.push(match u64::try_from(v) {
            Ok(u) => JsonElement::UInt(u),
            Err(_) => JsonElement::Int(v),
        });
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.0.push(JsonElement::UInt(v));
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.0.push(JsonElement::Float(v));
        Ok(())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.0.push(JsonElement::Str(v.into()));
        Ok(())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<(), E> {
        self.0.push(JsonElement::Str(v.into_boxed_str()));
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if let Some(size) = seq.size_hint() {
            self.0.reserve(size);
        }
        while seq.next_element_seed(Flatten(&mut *self.0))?.is_some() {}
        Ok(())
    }
}

/// The little-endian bytes of JSON elements as `dtype`, which must have a fixed size.
/// Every element must be representable exactly: integers within the type's range,
/// floats finite and within range, booleans for `BOOL`. `FP16` is refused: it has no
/// JSON form and must be sent as binary data.
pub fn json_to_raw(dtype: DataType, elements: &[JsonElement]) -> Result<Vec<u8>, String> {
    let size = dtype
        .size()
        .ok_or_else(|| format!("{dtype} elements have no fixed size"))?;
    let mut out = Vec::with_capacity(size * elements.len());
    let invalid = |index: usize, element: &JsonElement, expected: String| {
        format!("element {index} is {element}, not a valid {dtype} value: expected {expected}")
    };
    macro_rules! integers {
        ($t:ty) => {
            for (index, element) in elements.iter().enumerate() {
                let value = match element {
                    JsonElement::UInt(v) => <$t>::try_from(*v).ok(),
                    JsonElement::Int(v) => <$t>::try_from(*v).ok(),
                    _ => None,
                };
                let value = value.ok_or_else(|| {
                    invalid(
                        index,
                        element,
                        format!("an integer from {} to {}", <$t>::MIN, <$t>::MAX),
                    )
                })?;
                out.extend_from_slice(&value.to_le_bytes());
            }
        };
    }
    match dtype {
        DataType::Bool => {
            for (index, element) in elements.iter().enumerate() {
                match element {
                    JsonElement::Bool(b) => out.push(u8::from(*b)),
                    _ => return Err(invalid(index, element, "true or false".into())),
                }
            }
        }
        DataType::Uint8 => integers!(u8),
        DataType::Uint16 => integers!(u16),
        DataType::Uint32 => integers!(u32),
        DataType::Uint64 => integers!(u64),
        DataType::Int8 => integers!(i8),
        DataType::Int16 => integers!(i16),
        DataType::Int32 => integers!(i32),
        DataType::Int64 => integers!(i64),
        DataType::Fp32 => {
            for (index, element) in elements.iter().enumerate() {
                let value = number(element)
                    .filter(|v| v.abs() <= f64::from(f32::MAX))
                    .ok_or_else(|| {
                        invalid(index, element, "a number within the FP32 range".into())
                    })?;
                out.extend_from_slice(&(value as f32).to_le_bytes());
            }
        }
        DataType::Fp64 => {
            for (index, element) in elements.iter().enumerate() {
                let value =
                    number(element).ok_or_else(|| invalid(index, element, "a number".into()))?;
                out.extend_from_slice(&value.to_le_bytes());
            }
        }
        DataType::Fp16 => {
            return Err(
                "FP16 has no JSON representation; send FP16 tensors as binary data \
                 (parameter binary_data_size, binary tensor data extension)"
                    .into(),
            )
        }
        DataType::Bytes => return Err("BYTES elements have no fixed size".into()),
    }
    Ok(out)
}

/// A JSON number as `f64`; `None` for anything else.
fn number(element: &JsonElement) -> Option<f64> {
    match element {
        JsonElement::UInt(v) => Some(*v as f64),
        JsonElement::Int(v) => Some(*v as f64),
        JsonElement::Float(v) if v.is_finite() => Some(*v),
        _ => None,
    }
}

/// The `BYTES` elements of a JSON tensor: each must be a string (sent as its UTF-8 bytes).
pub fn json_to_strings(elements: Vec<JsonElement>) -> Result<Vec<Bytes>, String> {
    elements
        .into_iter()
        .enumerate()
        .map(|(index, element)| match element {
            JsonElement::Str(s) => Ok(Bytes::from(s.into_string())),
            other => Err(format!(
                "element {index} is {other}, not a string as BYTES needs"
            )),
        })
        .collect()
}

/// Splits `BYTES` elements in binary form (each a 4-byte little-endian length, then that
/// many bytes) into slices of `data`, without copying.
pub fn split_bytes_elements(data: &Bytes) -> Result<Vec<Bytes>, String> {
    let mut elements = Vec::new();
    let mut offset = 0;
    while offset < data.len() {
        let Some(prefix) = data.get(offset..offset + 4) else {
            return Err(format!(
                "BYTES element {} starts at byte {offset} but only {} bytes remain, too few for its 4-byte length",
                elements.len(),
                data.len() - offset
            ));
        };
        let length = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        let start = offset + 4;
        let remaining = data.len() - start;
        if length > remaining {
            return Err(format!(
                "BYTES element {} declares {length} bytes but only {remaining} remain",
                elements.len()
            ));
        }
        elements.push(data.slice(start..start + length));
        offset = start + length;
    }
    Ok(elements)
}

/// `BYTES` elements in binary form: each a 4-byte little-endian length, then its bytes.
pub fn encode_bytes_elements<T: AsRef<[u8]>>(elements: &[T]) -> Result<Vec<u8>, String> {
    let total: usize = elements.iter().map(|e| 4 + e.as_ref().len()).sum();
    let mut out = Vec::with_capacity(total);
    for element in elements {
        let element = element.as_ref();
        let length = u32::try_from(element.len()).map_err(|_| {
            format!(
                "a BYTES element of {} bytes is too long for its 4-byte length",
                element.len()
            )
        })?;
        out.extend_from_slice(&length.to_le_bytes());
        out.extend_from_slice(element);
    }
    Ok(out)
}

/// Raw little-endian tensor data serialised as a flat JSON array of `dtype` values:
/// numbers, booleans, or (for `BYTES` in binary form) strings, lossily decoded as UTF-8.
pub struct JsonElements<'a> {
    pub dtype: DataType,
    pub data: &'a [u8],
}

impl Serialize for JsonElements<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        macro_rules! numbers {
            ($t:ty) => {{
                let chunks = self.data.chunks_exact(std::mem::size_of::<$t>());
                let mut seq = serializer.serialize_seq(Some(chunks.len()))?;
                for chunk in chunks {
                    let mut bytes = [0u8; std::mem::size_of::<$t>()];
                    bytes.copy_from_slice(chunk);
                    seq.serialize_element(&<$t>::from_le_bytes(bytes))?;
                }
                seq.end()
            }};
        }
        match self.dtype {
            DataType::Bool => {
                let mut seq = serializer.serialize_seq(Some(self.data.len()))?;
                for &byte in self.data {
                    seq.serialize_element(&(byte != 0))?;
                }
                seq.end()
            }
            DataType::Uint8 => numbers!(u8),
            DataType::Uint16 => numbers!(u16),
            DataType::Uint32 => numbers!(u32),
            DataType::Uint64 => numbers!(u64),
            DataType::Int8 => numbers!(i8),
            DataType::Int16 => numbers!(i16),
            DataType::Int32 => numbers!(i32),
            DataType::Int64 => numbers!(i64),
            DataType::Fp32 => numbers!(f32),
            DataType::Fp64 => numbers!(f64),
            DataType::Fp16 => {
                let chunks = self.data.chunks_exact(2);
                let mut seq = serializer.serialize_seq(Some(chunks.len()))?;
                for chunk in chunks {
                    seq.serialize_element(&f16_to_f32(u16::from_le_bytes([chunk[0], chunk[1]])))?;
                }
                seq.end()
            }
            DataType::Bytes => {
                let elements = split_bytes_elements(&Bytes::copy_from_slice(self.data))
                    .map_err(serde::ser::Error::custom)?;
                let mut seq = serializer.serialize_seq(Some(elements.len()))?;
                for element in &elements {
                    seq.serialize_element(&String::from_utf8_lossy(element))?;
                }
                seq.end()
            }
        }
    }
}

/// The `f32` equal to an IEEE 754 half-precision value (every one is representable).
pub fn f16_to_f32(bits: u16) -> f32 {
    let negative = bits & 0x8000 != 0;
    let exponent = u32::from((bits >> 10) & 0x1f);
    let fraction = u32::from(bits & 0x3ff);
    let magnitude = match exponent {
        // Zero and subnormals: fraction × 2^-24, exact in f32.
        0 => fraction as f32 * f32::from_bits(0x3380_0000),
        0x1f if fraction == 0 => f32::INFINITY,
        0x1f => f32::NAN,
        _ => f32::from_bits(((exponent + 127 - 15) << 23) | (fraction << 13)),
    };
    if negative {
        -magnitude
    } else {
        magnitude
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(json: &str) -> Vec<JsonElement> {
        serde_json::from_str::<FlatElements>(json).unwrap().0
    }

    #[test]
    fn nested_and_flat_arrays_give_the_same_elements() {
        assert_eq!(flat("[[1, 2], [3, 4]]"), flat("[1, 2, 3, 4]"));
        assert_eq!(flat("[[[1], [2]], [[3], [4]]]"), flat("[1, 2, 3, 4]"));
        assert_eq!(flat("[]"), Vec::new());
        assert_eq!(
            flat(r#"[true, -1, 2.5, "a"]"#),
            vec![
                JsonElement::Bool(true),
                JsonElement::Int(-1),
                JsonElement::Float(2.5),
                JsonElement::Str("a".into())
            ]
        );
    }

    #[test]
    fn objects_and_nulls_are_not_tensor_data() {
        assert!(serde_json::from_str::<FlatElements>("[1, null]").is_err());
        assert!(serde_json::from_str::<FlatElements>(r#"[{"a": 1}]"#).is_err());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let json = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(serde_json::from_str::<FlatElements>(&json).is_err());
    }

    #[test]
    fn integers_become_little_endian_bytes_of_their_type() {
        assert_eq!(
            json_to_raw(DataType::Uint8, &flat("[0, 255]")).unwrap(),
            vec![0, 255]
        );
        assert_eq!(
            json_to_raw(DataType::Int16, &flat("[-2]")).unwrap(),
            (-2i16).to_le_bytes()
        );
        assert_eq!(
            json_to_raw(DataType::Uint32, &flat("[1, 2]")).unwrap(),
            [1, 0, 0, 0, 2, 0, 0, 0]
        );
        assert_eq!(
            json_to_raw(DataType::Uint64, &flat("[18446744073709551615]")).unwrap(),
            u64::MAX.to_le_bytes()
        );
        assert_eq!(
            json_to_raw(DataType::Int64, &flat("[-9223372036854775808]")).unwrap(),
            i64::MIN.to_le_bytes()
        );
    }

    #[test]
    fn values_that_do_not_fit_are_refused() {
        for (dtype, json) in [
            (DataType::Uint8, "[300]"),
            (DataType::Uint8, "[-1]"),
            (DataType::Int8, "[128]"),
            (DataType::Int32, "[1.5]"),
            (DataType::Int32, "[2147483648]"),
            (DataType::Uint16, "[true]"),
            (DataType::Int64, r#"["1"]"#),
            (DataType::Fp32, "[1e39]"),
            (DataType::Fp32, "[false]"),
            (DataType::Fp64, r#"["x"]"#),
            (DataType::Bool, "[1]"),
        ] {
            let error = json_to_raw(dtype, &flat(json)).unwrap_err();
            assert!(error.contains(dtype.name()), "{dtype} {json}: {error}");
        }
        let error = json_to_raw(DataType::Uint8, &flat("[1, 300]")).unwrap_err();
        assert!(error.contains("element 1 is 300"), "{error}");
    }

    #[test]
    fn floats_and_bools_convert() {
        assert_eq!(
            json_to_raw(DataType::Fp32, &flat("[1.5, -2, 3]")).unwrap(),
            {
                [1.5f32, -2.0, 3.0]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect::<Vec<u8>>()
            }
        );
        assert_eq!(
            json_to_raw(DataType::Fp64, &flat("[0.1]")).unwrap(),
            0.1f64.to_le_bytes()
        );
        assert_eq!(
            json_to_raw(DataType::Bool, &flat("[true, false]")).unwrap(),
            vec![1, 0]
        );
        assert!(json_to_raw(DataType::Fp16, &flat("[1]"))
            .unwrap_err()
            .contains("binary"));
    }

    #[test]
    fn bytes_elements_are_strings() {
        let strings = json_to_strings(flat(r#"["ab", ""]"#)).unwrap();
        assert_eq!(strings, vec![Bytes::from("ab"), Bytes::new()]);
        assert!(json_to_strings(flat("[1]")).is_err());
    }

    #[test]
    fn bytes_elements_round_trip_through_the_binary_form() {
        let encoded = encode_bytes_elements(&["cat", "", "tabby"]).unwrap();
        assert_eq!(&encoded[..7], &[3, 0, 0, 0, b'c', b'a', b't']);
        let split = split_bytes_elements(&Bytes::from(encoded)).unwrap();
        assert_eq!(
            split,
            vec![Bytes::from("cat"), Bytes::new(), Bytes::from("tabby")]
        );
        assert_eq!(
            split_bytes_elements(&Bytes::new()).unwrap(),
            Vec::<Bytes>::new()
        );
    }

    #[test]
    fn truncated_bytes_elements_are_refused() {
        assert!(split_bytes_elements(&Bytes::from_static(&[1, 0])).is_err());
        assert!(split_bytes_elements(&Bytes::from_static(&[5, 0, 0, 0, b'a'])).is_err());
        assert!(split_bytes_elements(&Bytes::from_static(&[255, 255, 255, 255])).is_err());
    }

    #[test]
    fn raw_data_serialises_as_json_values() {
        let json =
            |dtype, data: &[u8]| serde_json::to_string(&JsonElements { dtype, data }).unwrap();
        let floats: Vec<u8> = [0.1f32, -2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(json(DataType::Fp32, &floats), "[0.1,-2.0]");
        assert_eq!(json(DataType::Int16, &(-3i16).to_le_bytes()), "[-3]");
        assert_eq!(json(DataType::Bool, &[1, 0]), "[true,false]");
        assert_eq!(json(DataType::Fp16, &0x3c00u16.to_le_bytes()), "[1.0]");
        assert_eq!(
            json(DataType::Bytes, &encode_bytes_elements(&["hi"]).unwrap()),
            r#"["hi"]"#
        );
    }

    #[test]
    fn half_precision_converts_exactly() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x0400), 2f32.powi(-14));
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
        assert_eq!(f16_to_f32(0x8000), 0.0);
    }
}
