//! The serving layer: the protocol-neutral [`Server`] (admission, preprocessing,
//! scheduling) and its front ends, the KServe v2 / Triton protocol over HTTP and gRPC,
//! plus Prometheus metrics.

pub mod cache;
pub mod error;
pub mod grpc;
pub mod http;
pub mod infer;
pub mod metrics;
pub mod models;
pub mod preprocess;
pub mod scheduler;
pub mod server;
pub mod stats;
pub mod tune;

pub use error::ServeError;
pub use server::{ModelControlMode, Server, ServerOptions};
