//! The front ends of the runtime: the KServe v2 / Triton protocol over HTTP ([`http`],
//! axum) and gRPC ([`grpc`], tonic), Prometheus metrics, and the serve lifecycle
//! ([`serve::run`]: listeners, repository polling, the tuner, shutdown). Each error of
//! the runtime is answered as [`status::of`] says, on both protocols.

pub mod access;
pub mod connections;
pub mod grpc;
pub mod http;
mod load;
pub mod serve;
pub mod status;
pub mod traces;

pub use serve::{run, Addresses, RunError, ServeConfig, Server, TuneConfig};
