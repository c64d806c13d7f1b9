//! A `config.pbtxt` of any text: parsed and validated, or refused with an error naming
//! the file; never a panic.
#![no_main]

use std::path::Path;

use ferroserve_core::ModelConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ModelConfig::parse(text, Path::new("model/config.pbtxt"));
    }
});
