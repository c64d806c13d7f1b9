//! Generates the gRPC messages and service of `proto/grpc_service.proto` (KServe v2 /
//! Triton, package `inference`), with Triton's full `model_config.proto` as vendored once
//! in `ferroserve-core/proto`. There is no `protoc` at build time: protox parses the
//! files into a descriptor set, which tonic-prost-build turns into Rust.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let crate_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto = crate_dir.join("proto");
    let config_proto = crate_dir.join("../ferroserve-core/proto");
    let files = [
        proto.join("grpc_service.proto"),
        config_proto.join("model_config.proto"),
    ];
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let descriptors = protox::compile(&files[..1], [&proto, &config_proto])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Every `bytes` field as `bytes::Bytes`: tensor contents are then slices of the
        // received message and outputs are sent without copying.
        .bytes(".")
        // RPCs ferroserve does not implement answer UNIMPLEMENTED.
        .generate_default_stubs(true)
        .compile_fds(descriptors)?;
    Ok(())
}
