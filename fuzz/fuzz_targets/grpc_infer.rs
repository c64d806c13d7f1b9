//! The bytes of a gRPC `ModelInferRequest`: decoded by prost, then checked and packed
//! into the runtime's request (typed or raw tensor contents, shapes, parameters).
//! Decoded, or refused with an error; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;

use ferroserve_server::grpc::proto::ModelInferRequest;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = ModelInferRequest::decode(data) {
        let _ = ferroserve_server::grpc::decode_infer_request(message);
    }
});
