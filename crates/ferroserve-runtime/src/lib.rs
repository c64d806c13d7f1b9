//! The protocol-neutral serving runtime: the models being served and everything a
//! request goes through between a front end and an engine. It knows neither HTTP nor
//! gRPC; the front ends (`ferroserve-server`) and `ferroserve classify` call
//! [`Runtime`].
//!
//! A request travels one way: [`admission`] (checked against the model's signature) →
//! [`cache`] or compute ([`preprocess`], [`scheduler`], the engine) → [`respond`] →
//! [`telemetry`] (Prometheus [`metrics`], Triton [`stats`], the [`tune`]r's window, the
//! [`recent`] latencies of the live view).

pub mod admission;
pub mod arrangement;
pub mod cache;
pub mod ensemble;
pub mod error;
pub mod infer;
pub mod metrics;
pub mod preprocess;
pub mod recent;
pub mod registry;
pub mod respond;
pub mod runtime;
pub mod scheduler;
pub mod stats;
pub mod telemetry;
pub mod tune;

pub use arrangement::Arrangement;
pub use error::{LoadError, ServeError};
pub use registry::{LoadOptions, LoadOverride, Naive, Served};
pub use runtime::{
    LoadParameters, ModelControlMode, Runtime, RuntimeOptions, EXTENSIONS, SERVER_NAME,
};
