//! Tensor data as clients send it: JSON `data` arrays of any datatype and shape, and
//! length-prefixed `BYTES` elements. Decoded, or refused with an error; never a panic.
#![no_main]

use arbitrary::Arbitrary;
use bytes::Bytes;
use ferroserve_core::{wire, DataType};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Tensor<'a> {
    datatype: u8,
    shape: Vec<u16>,
    json: &'a str,
    raw: &'a [u8],
}

fuzz_target!(|tensor: Tensor<'_>| {
    let dtype = DataType::ALL[usize::from(tensor.datatype) % DataType::ALL.len()];
    let shape: Vec<usize> = tensor.shape.iter().map(|&d| usize::from(d)).collect();
    if dtype == DataType::Bytes {
        let _ = wire::json_to_strings(&shape, tensor.json);
        let _ = wire::check_bytes(&shape, tensor.raw);
        let _ = wire::split_bytes(&Bytes::copy_from_slice(tensor.raw));
    } else {
        let _ = wire::json_to_le(dtype, &shape, tensor.json);
        let _ = wire::check_byte_size(dtype, &shape, tensor.raw);
    }
});
