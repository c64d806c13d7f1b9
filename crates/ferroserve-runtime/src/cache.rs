//! The response cache in the request path: what a request's key is made of, and how a
//! model's outputs are stored as one payload and read back without copying.
//!
//! The cache stores the engine's outputs, all of them, before the response picks and
//! shapes them: the requested outputs and the classification count are applied after a
//! hit, so they are not part of the key and requests that differ only in them share one
//! entry.

use std::sync::Arc;

use bytes::{Buf, Bytes};
use ferroserve_core::cache::{CacheKey, CacheKeyBuilder};
use ferroserve_core::DataType;

use crate::admission::{Admitted, AdmittedInput};
use crate::registry::ServedModel;
use crate::scheduler::JobTensor;

/// The key of an admitted request: the model load and every input as sent (name,
/// datatype, shape, contents; encoded images before preprocessing), in engine order.
/// `/classify` on one image admits the same request as an inference request sending the
/// image as the model's `BYTES` input of shape `[1]`, so both share one entry.
pub fn request_key(served: &ServedModel, admitted: &Admitted) -> CacheKey {
    let mut key = model_key(served);
    for input in &admitted.inputs {
        match input {
            // Every engine input is present, in engine order: the position names it.
            AdmittedInput::Tensor(tensor) => {
                key.input("", tensor.dtype.name(), &tensor.shape, &tensor.data)
            }
            AdmittedInput::Images {
                name,
                shape,
                images,
            } => key.bytes_input(name, shape, images),
        };
    }
    key.finish()
}

fn model_key(served: &ServedModel) -> CacheKeyBuilder {
    let mut key = CacheKeyBuilder::new();
    key.model(&served.model.name, served.model.version, served.load_id);
    key
}

/// The outputs as one payload: per tensor its datatype, shape and bytes, each
/// length-prefixed.
pub fn encode(outputs: &[JobTensor]) -> Arc<[u8]> {
    let size: usize = outputs
        .iter()
        .map(|t| 1 + 8 * (2 + t.shape.len()) + t.data.len())
        .sum();
    let mut payload = Vec::with_capacity(8 + size);
    payload.extend_from_slice(&(outputs.len() as u64).to_le_bytes());
    for tensor in outputs {
        payload.push(datatype_code(tensor.dtype));
        payload.extend_from_slice(&(tensor.shape.len() as u64).to_le_bytes());
        for &dim in &tensor.shape {
            payload.extend_from_slice(&(dim as u64).to_le_bytes());
        }
        payload.extend_from_slice(&(tensor.data.len() as u64).to_le_bytes());
        payload.extend_from_slice(&tensor.data);
    }
    payload.into()
}

/// The outputs stored by [`encode`]; their data are slices of the payload, not copies.
/// `None` if the payload is malformed (it never is, unless [`encode`] changed).
pub fn decode(payload: Arc<[u8]>) -> Option<Vec<JobTensor>> {
    let mut payload = Bytes::from_owner(payload);
    let count = length(&mut payload)?;
    (0..count)
        .map(|_| {
            let dtype = *DataType::ALL.get(payload.try_get_u8().ok()? as usize)?;
            let rank = length(&mut payload)?;
            let shape = (0..rank)
                .map(|_| length(&mut payload))
                .collect::<Option<Vec<usize>>>()?;
            let size = length(&mut payload)?;
            let data = (size <= payload.len()).then(|| payload.split_to(size))?;
            Some(JobTensor { dtype, shape, data })
        })
        .collect()
}

/// A length or count written by [`encode`].
fn length(payload: &mut Bytes) -> Option<usize> {
    usize::try_from(payload.try_get_u64_le().ok()?).ok()
}

fn datatype_code(dtype: DataType) -> u8 {
    DataType::ALL
        .iter()
        .position(|&t| t == dtype)
        .expect("every datatype is in DataType::ALL") as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_round_trip() {
        let outputs = vec![
            JobTensor {
                dtype: DataType::Fp32,
                shape: vec![2, 3],
                data: Bytes::from((0u8..24).collect::<Vec<_>>()),
            },
            JobTensor {
                dtype: DataType::Int64,
                shape: vec![],
                data: Bytes::from_static(&[7, 0, 0, 0, 0, 0, 0, 0]),
            },
        ];
        let decoded = decode(encode(&outputs)).expect("decodes");
        assert_eq!(decoded.len(), 2);
        for (a, b) in decoded.iter().zip(&outputs) {
            assert_eq!((a.dtype, &a.shape, &a.data), (b.dtype, &b.shape, &b.data));
        }
    }

    #[test]
    fn truncated_payloads_are_refused() {
        let outputs = vec![JobTensor {
            dtype: DataType::Fp32,
            shape: vec![4],
            data: Bytes::from(vec![1u8; 16]),
        }];
        let payload = encode(&outputs);
        for len in 0..payload.len() {
            assert!(decode(payload[..len].into()).is_none(), "length {len}");
        }
    }
}
