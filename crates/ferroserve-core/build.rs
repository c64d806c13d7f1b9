//! Compiles Triton's `proto/model_config.proto` (package `inference`) into prost messages
//! (`model_config.rs`) and into an encoded `FileDescriptorSet` (`model_config.bin`) that
//! `config.pbtxt` files are parsed and printed with. There is no `protoc` at build time:
//! protox parses the file.

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("proto");
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let file = proto.join("model_config.proto");
    println!("cargo:rerun-if-changed={}", file.display());

    let descriptors = protox::compile([&file], [&proto])?;
    std::fs::write(out.join("model_config.bin"), descriptors.encode_to_vec())?;
    prost_build::Config::new()
        // The schema's comments are Sphinx markup, not rustdoc (and their indented
        // examples would run as doctests).
        .disable_comments(["."])
        .compile_fds(descriptors)?;
    Ok(())
}
