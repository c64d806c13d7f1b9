//! Dense tensors: element types, shapes and 8-byte aligned storage that engines can read
//! as typed slices without copying.
//!
//! A `BYTES` tensor keeps its elements in their binary form, as the wire has them
//! ([`crate::wire`]): each a 4-byte little-endian length, then that many bytes, in
//! row-major order. Its data is therefore as long as its elements make it, not a
//! multiple of an element size.

use std::fmt;

/// Element type of a tensor, named as in the KServe v2 protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum DataType {
    Bool,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
    Int8,
    Int16,
    Int32,
    Int64,
    Fp16,
    Fp32,
    Fp64,
    /// Variable-length byte strings (e.g. encoded images).
    Bytes,
}

impl DataType {
    pub const ALL: [DataType; 13] = [
        DataType::Bool,
        DataType::Uint8,
        DataType::Uint16,
        DataType::Uint32,
        DataType::Uint64,
        DataType::Int8,
        DataType::Int16,
        DataType::Int32,
        DataType::Int64,
        DataType::Fp16,
        DataType::Fp32,
        DataType::Fp64,
        DataType::Bytes,
    ];

    /// The protocol name: `FP32`, `UINT8`, `BYTES`, ...
    pub fn name(self) -> &'static str {
        match self {
            DataType::Bool => "BOOL",
            DataType::Uint8 => "UINT8",
            DataType::Uint16 => "UINT16",
            DataType::Uint32 => "UINT32",
            DataType::Uint64 => "UINT64",
            DataType::Int8 => "INT8",
            DataType::Int16 => "INT16",
            DataType::Int32 => "INT32",
            DataType::Int64 => "INT64",
            DataType::Fp16 => "FP16",
            DataType::Fp32 => "FP32",
            DataType::Fp64 => "FP64",
            DataType::Bytes => "BYTES",
        }
    }

    /// Parses a protocol name (`FP32`).
    pub fn from_name(name: &str) -> Option<DataType> {
        DataType::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The name in Triton's model configuration: `TYPE_FP32`, `TYPE_STRING` for bytes.
    pub fn config_name(self) -> &'static str {
        match self {
            DataType::Bool => "TYPE_BOOL",
            DataType::Uint8 => "TYPE_UINT8",
            DataType::Uint16 => "TYPE_UINT16",
            DataType::Uint32 => "TYPE_UINT32",
            DataType::Uint64 => "TYPE_UINT64",
            DataType::Int8 => "TYPE_INT8",
            DataType::Int16 => "TYPE_INT16",
            DataType::Int32 => "TYPE_INT32",
            DataType::Int64 => "TYPE_INT64",
            DataType::Fp16 => "TYPE_FP16",
            DataType::Fp32 => "TYPE_FP32",
            DataType::Fp64 => "TYPE_FP64",
            DataType::Bytes => "TYPE_STRING",
        }
    }

    /// Parses a model-configuration name (`TYPE_FP32`).
    pub fn from_config_name(name: &str) -> Option<DataType> {
        DataType::ALL.into_iter().find(|t| t.config_name() == name)
    }

    /// Size of one element in bytes; `None` for variable-length `BYTES`.
    pub fn size(self) -> Option<usize> {
        Some(match self {
            DataType::Bool | DataType::Uint8 | DataType::Int8 => 1,
            DataType::Uint16 | DataType::Int16 | DataType::Fp16 => 2,
            DataType::Uint32 | DataType::Int32 | DataType::Fp32 => 4,
            DataType::Uint64 | DataType::Int64 | DataType::Fp64 => 8,
            DataType::Bytes => return None,
        })
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A model input or output as the model declares it. A dimension of `-1` is dynamic.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TensorSpec {
    pub name: String,
    pub dtype: DataType,
    pub shape: Vec<i64>,
}

impl TensorSpec {
    /// Whether a concrete shape fits this spec (same rank, equal fixed dimensions).
    pub fn accepts_shape(&self, shape: &[usize]) -> bool {
        self.shape.len() == shape.len()
            && self
                .shape
                .iter()
                .zip(shape)
                .all(|(&want, &got)| want < 0 || want as usize == got)
    }
}

/// Growable bytes whose start is 8-byte aligned, so they can be viewed as a slice of any
/// numeric element type. Shrinking keeps the capacity: a buffer reused for same-sized
/// tensors allocates once.
#[derive(Clone, Default)]
pub struct TensorBuf {
    words: Vec<u64>,
    len: usize,
}

impl TensorBuf {
    /// An empty buffer that can grow to `bytes` without reallocating.
    pub fn with_capacity(bytes: usize) -> Self {
        TensorBuf {
            words: Vec::with_capacity(bytes.div_ceil(8)),
            len: 0,
        }
    }

    /// Sets the length in bytes. New bytes are zero.
    pub fn resize(&mut self, bytes: usize) {
        self.words.resize(bytes.div_ceil(8), 0);
        self.len = bytes;
    }

    /// A buffer holding a copy of `bytes`.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let mut buf = TensorBuf::with_capacity(bytes.len());
        buf.resize(bytes.len());
        buf.as_bytes_mut().copy_from_slice(bytes);
        buf
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.words.capacity() * 8
    }

    pub fn as_bytes(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.words)[..self.len]
    }

    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        &mut bytemuck::cast_slice_mut(&mut self.words)[..self.len]
    }

    /// The bytes as elements of `T`. Panics only if the length is not a multiple of
    /// `size_of::<T>()`, which the tensor constructors rule out.
    pub fn as_slice<T: bytemuck::Pod>(&self) -> &[T] {
        bytemuck::cast_slice(self.as_bytes())
    }

    pub fn as_mut_slice<T: bytemuck::Pod>(&mut self) -> &mut [T] {
        bytemuck::cast_slice_mut(self.as_bytes_mut())
    }
}

impl fmt::Debug for TensorBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TensorBuf({} bytes)", self.len)
    }
}

/// An owned tensor: fixed-size elements, or `BYTES` elements in their binary form.
#[derive(Debug, Clone)]
pub struct Tensor {
    pub dtype: DataType,
    pub shape: Vec<usize>,
    pub data: TensorBuf,
}

impl Tensor {
    /// An empty tensor of `dtype` whose buffer can hold `bytes` without reallocating.
    pub fn with_capacity(dtype: DataType, bytes: usize) -> Self {
        Tensor {
            dtype,
            shape: Vec::new(),
            data: TensorBuf::with_capacity(bytes),
        }
    }

    /// Sets dtype and shape and sizes the buffer to match; contents are unspecified.
    /// Panics for `BYTES`, which has no fixed element size.
    pub fn reshape(&mut self, dtype: DataType, shape: &[usize]) {
        let size = dtype
            .size()
            .expect("dense tensors have a fixed element size");
        self.dtype = dtype;
        self.shape.clear();
        self.shape.extend_from_slice(shape);
        self.data.resize(size * shape.iter().product::<usize>());
    }

    /// Sets dtype `BYTES` and `shape`, and sizes the buffer to `bytes` bytes for the
    /// elements in their binary form, which the caller then writes.
    pub fn reshape_bytes(&mut self, shape: &[usize], bytes: usize) {
        self.dtype = DataType::Bytes;
        self.shape.clear();
        self.shape.extend_from_slice(shape);
        self.data.resize(bytes);
    }

    /// Sets dtype `BYTES` and `shape`, with `elements` (one per element of `shape`) as
    /// the contents, in their binary form. An element longer than `u32::MAX` bytes is an
    /// error.
    pub fn set_strings<T: AsRef<[u8]>>(
        &mut self,
        shape: &[usize],
        elements: &[T],
    ) -> Result<(), crate::wire::WireError> {
        let len = crate::wire::bytes_len(elements);
        self.reshape_bytes(shape, len);
        let mut offset = 0;
        let out = self.data.as_bytes_mut();
        for element in elements {
            let element = element.as_ref();
            let length = u32::try_from(element.len())
                .map_err(|_| crate::wire::WireError::ElementTooLong(element.len()))?;
            out[offset..offset + 4].copy_from_slice(&length.to_le_bytes());
            out[offset + 4..offset + 4 + element.len()].copy_from_slice(element);
            offset += 4 + element.len();
        }
        Ok(())
    }

    /// A tensor of `f32` values.
    pub fn from_f32(shape: &[usize], values: &[f32]) -> Self {
        assert_eq!(shape.iter().product::<usize>(), values.len());
        Tensor {
            dtype: DataType::Fp32,
            shape: shape.to_vec(),
            data: TensorBuf::from_bytes(bytemuck::cast_slice(values)),
        }
    }

    pub fn element_count(&self) -> usize {
        self.shape.iter().product()
    }

    /// A borrowed view of this tensor.
    pub fn view(&self) -> TensorRef<'_> {
        TensorRef {
            dtype: self.dtype,
            shape: &self.shape,
            data: self.data.as_bytes(),
        }
    }
}

/// A borrowed tensor: element type, shape and raw little-endian bytes (`BYTES` elements
/// in their binary form). The bytes need not be aligned; engines copy them when they must.
#[derive(Debug, Clone, Copy)]
pub struct TensorRef<'a> {
    pub dtype: DataType,
    pub shape: &'a [usize],
    pub data: &'a [u8],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in DataType::ALL {
            assert_eq!(DataType::from_name(t.name()), Some(t));
            assert_eq!(DataType::from_config_name(t.config_name()), Some(t));
        }
        assert_eq!(DataType::from_name("FLOAT"), None);
    }

    #[test]
    fn buffer_is_aligned_for_every_element_type() {
        let mut buf = TensorBuf::with_capacity(24);
        buf.resize(24);
        buf.as_mut_slice::<f64>()[2] = 1.5;
        assert_eq!(buf.as_slice::<f64>(), &[0.0, 0.0, 1.5]);
        assert_eq!(buf.as_slice::<u8>().len(), 24);
        buf.resize(12);
        assert_eq!(buf.as_slice::<f32>().len(), 3);
        assert!(buf.capacity() >= 24);
    }

    #[test]
    fn reshape_reuses_capacity() {
        let mut t = Tensor::with_capacity(DataType::Fp32, 4 * 1000);
        let cap = t.data.capacity();
        t.reshape(DataType::Fp32, &[2, 500]);
        assert_eq!(t.data.len(), 4000);
        t.reshape(DataType::Uint8, &[10]);
        assert_eq!(t.data.len(), 10);
        assert_eq!(t.data.capacity(), cap);
    }

    #[test]
    fn bytes_tensors_hold_their_elements_in_binary_form() {
        let mut t = Tensor::with_capacity(DataType::Fp32, 0);
        t.set_strings(&[1, 2], &["ab", ""]).unwrap();
        assert_eq!(t.dtype, DataType::Bytes);
        assert_eq!(t.shape, [1, 2]);
        assert_eq!(t.data.as_bytes(), b"\x02\0\0\0ab\0\0\0\0");
        assert!(crate::wire::check_bytes(&t.shape, t.data.as_bytes()).is_ok());
    }

    #[test]
    fn spec_accepts_dynamic_dimensions() {
        let spec = TensorSpec {
            name: "input".into(),
            dtype: DataType::Fp32,
            shape: vec![-1, 3, 224, 224],
        };
        assert!(spec.accepts_shape(&[7, 3, 224, 224]));
        assert!(!spec.accepts_shape(&[7, 3, 224, 225]));
        assert!(!spec.accepts_shape(&[3, 224, 224]));
    }
}
