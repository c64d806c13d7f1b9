//! The body of `POST /v2/models/{model}/infer`: JSON, or a JSON header followed by binary
//! tensor data at any `Inference-Header-Content-Length`. Decoded, or refused with an
//! error; never a panic.
#![no_main]

use arbitrary::Arbitrary;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Request<'a> {
    header_length: Option<u16>,
    body: &'a [u8],
}

fuzz_target!(|request: Request<'_>| {
    let body = Bytes::copy_from_slice(request.body);
    let header_length = request.header_length.map(usize::from);
    let _ = ferroserve_server::http::decode_request("model", None, body, header_length);
});
