//! The KServe v2 / Triton protocol over gRPC (tonic): `inference.GRPCInferenceService`.
//!
//! [`service`] answers the protocol's RPCs by calling the protocol-neutral [`Runtime`];
//! this module only translates messages. Its `tensors` module decodes inference requests
//! (raw or typed tensor contents) and encodes responses; its `config` module writes the
//! model configuration and statistics as the protocol's messages. Errors are [`ServeError`]s,
//! answered with the gRPC code of the table both front ends share ([`crate::status`]).
//!
//! Shared memory is not supported: its status RPCs report no regions, registering a
//! region answers UNIMPLEMENTED, and so do the trace and log settings RPCs.

mod config;
mod tensors;

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::{BoxFuture, BoxStream, Service};
use tonic::server::NamedService;
use tonic::{Code, Request, Response, Status, Streaming};
use tracing::Instrument;

use ferroserve_runtime::infer::Timings;
use ferroserve_runtime::{LoadParameters, Runtime, ServeError};
use proto::grpc_inference_service_server::{GrpcInferenceService, GrpcInferenceServiceServer};
use proto::*;

use crate::access::{AccessRules, ApiGroup};
use crate::status::grpc;
use crate::traces::{Ended, RequestSpan, Served, Traces};

/// The protocol's messages, generated in `ferroserve-protocol`.
pub use ferroserve_protocol as proto;

pub use ferroserve_protocol::MAX_MESSAGE_BYTES;

/// Decodes a `ModelInferRequest` into the runtime's request (tensor contents checked and
/// packed), or refuses it with [`ServeError::InvalidRequest`]. Public for the fuzz
/// target of the same name.
pub fn decode_infer_request(
    message: ModelInferRequest,
) -> Result<ferroserve_runtime::infer::InferRequest, ServeError> {
    tensors::infer_request(message)
}

/// Responses of one `ModelStreamInfer` call that may wait for the client to read them.
const STREAM_BUFFER: usize = 64;

/// The gRPC service over `runtime`, under the `access` rules, with messages of up to
/// `max_message_bytes` both ways, inference requests traced to `traces`. Serve it with
/// `tonic::transport::Server::builder().add_service(...)`.
pub fn service(
    runtime: Arc<Runtime>,
    access: Arc<AccessRules>,
    max_message_bytes: usize,
    traces: Traces,
) -> Guarded<GrpcInferenceServiceServer<InferenceService>> {
    let inner = GrpcInferenceServiceServer::new(InferenceService { runtime, traces })
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes);
    Guarded { inner, access }
}

/// A gRPC service behind the access rules (UNAUTHENTICATED without the key of a
/// restricted method's group), whose answer to an over-size message is
/// RESOURCE_EXHAUSTED, as gRPC specifies, where tonic answers OUT_OF_RANGE.
#[derive(Clone)]
pub struct Guarded<S> {
    inner: S,
    access: Arc<AccessRules>,
}

impl<S: NamedService> NamedService for Guarded<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> Service<http::Request<B>> for Guarded<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let group = ApiGroup::of_grpc_path(request.uri().path());
        if let Err(denied) = self.access.check(group, request.headers()) {
            let status = Status::unauthenticated(denied.to_string());
            return Box::pin(async move { Ok(status.into_http()) });
        }
        let answer = self.inner.call(request);
        Box::pin(async move {
            let mut response = answer.await?;
            let headers = response.headers_mut();
            let too_large = headers.get("grpc-status").is_some_and(|s| s == "11")
                && headers.get("grpc-message").is_some_and(|m| {
                    String::from_utf8_lossy(m.as_bytes()).contains("too%20large")
                        || String::from_utf8_lossy(m.as_bytes()).contains("too large")
                });
            if too_large {
                headers.insert("grpc-status", http::HeaderValue::from_static("8"));
            }
            Ok(response)
        })
    }
}

/// `inference.GRPCInferenceService` over a [`Runtime`].
#[derive(Clone)]
pub struct InferenceService {
    runtime: Arc<Runtime>,
    traces: Traces,
}

/// A model version as the protocol gives it: empty for the one chosen by the version
/// policy, else a number.
fn version(text: &str) -> Result<Option<u64>, ServeError> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        ServeError::InvalidRequest(format!(
            "model version must be a non-negative integer (or empty for the latest), got '{text}'"
        ))
    })
}

/// A model name that can only name a folder directly inside the repository.
fn model_folder(name: &str) -> Result<&str, ServeError> {
    let plain =
        !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0']);
    if plain {
        Ok(name)
    } else {
        Err(ServeError::InvalidRequest(format!(
            "model name must name a folder of the model repository, got '{name}'"
        )))
    }
}

/// The span names of the traced RPCs.
const MODEL_INFER_SPAN: &str = "inference.GRPCInferenceService/ModelInfer";
const MODEL_STREAM_INFER_SPAN: &str = "inference.GRPCInferenceService/ModelStreamInfer";

/// Answers one inference request, of a `ModelStreamInfer` call when `streamed`; its
/// `span`, when it is traced, ends with the answer.
async fn answer(
    runtime: &Runtime,
    message: ModelInferRequest,
    streamed: bool,
    span: Option<RequestSpan>,
) -> Result<ModelInferResponse, ServeError> {
    let Some(span) = span else {
        return infer(runtime, message, streamed)
            .await
            .map(|(response, _)| response);
    };
    let model = message.model_name.clone();
    let asked = version(&message.model_version).ok().flatten();
    let answer = infer(runtime, message, streamed).await;
    let (code, error) = match &answer {
        Ok(_) => (Code::Ok, None),
        Err(error) => {
            let (status, code) = crate::status::of(error);
            (code, status.is_server_error().then(|| error.to_string()))
        }
    };
    let served = answer.as_ref().ok().map(|(response, (rows, timings))| {
        let served = Served {
            id: &response.id,
            rows: *rows,
            timings: *timings,
        };
        (response.model_version.parse().ok(), served)
    });
    let (version, served) = match served {
        Some((version, served)) => (version, Some(served)),
        None => (asked, None),
    };
    span.end(Ended {
        name: if streamed {
            MODEL_STREAM_INFER_SPAN
        } else {
            MODEL_INFER_SPAN
        },
        model: &model,
        version,
        status: code as i64,
        error: error.as_deref(),
        served,
    });
    answer.map(|(response, _)| response)
}

/// Runs one inference request through the runtime: the response, and the request's rows
/// and timings.
async fn infer(
    runtime: &Runtime,
    message: ModelInferRequest,
    streamed: bool,
) -> Result<(ModelInferResponse, (usize, Timings)), ServeError> {
    let request = decode_infer_request(message)?;
    let span = if streamed {
        tracing::info_span!("grpc_stream_infer", model = %request.model, id = %request.id)
    } else {
        tracing::info_span!("grpc_infer", model = %request.model, id = %request.id)
    };
    let response = runtime.infer(request).instrument(span).await?;
    let served = (response.rows, response.timings);
    Ok((tensors::infer_response(response)?, served))
}

/// Answers one request of a `ModelStreamInfer` call; a failure becomes `error_message`,
/// with the request's model, version and id so the client can tell which one failed.
async fn stream_answer(
    runtime: &Runtime,
    message: ModelInferRequest,
    span: Option<RequestSpan>,
) -> ModelStreamInferResponse {
    let failed = ModelInferResponse {
        model_name: message.model_name.clone(),
        model_version: message.model_version.clone(),
        id: message.id.clone(),
        ..Default::default()
    };
    match answer(runtime, message, true, span).await {
        Ok(response) => ModelStreamInferResponse {
            error_message: String::new(),
            infer_response: Some(response),
        },
        Err(error) => ModelStreamInferResponse {
            error_message: error.to_string(),
            infer_response: Some(failed),
        },
    }
}

#[tonic::async_trait]
impl GrpcInferenceService for InferenceService {
    async fn server_live(
        &self,
        _: Request<ServerLiveRequest>,
    ) -> Result<Response<ServerLiveResponse>, Status> {
        Ok(Response::new(ServerLiveResponse {
            live: self.runtime.live(),
        }))
    }

    async fn server_ready(
        &self,
        _: Request<ServerReadyRequest>,
    ) -> Result<Response<ServerReadyResponse>, Status> {
        Ok(Response::new(ServerReadyResponse {
            ready: self.runtime.ready(),
        }))
    }

    /// Not ready (rather than an error) for a model the server does not know.
    async fn model_ready(
        &self,
        request: Request<ModelReadyRequest>,
    ) -> Result<Response<ModelReadyResponse>, Status> {
        let request = request.into_inner();
        let version = version(&request.version).map_err(grpc)?;
        Ok(Response::new(ModelReadyResponse {
            ready: self.runtime.model_ready(&request.name, version),
        }))
    }

    async fn server_metadata(
        &self,
        _: Request<ServerMetadataRequest>,
    ) -> Result<Response<ServerMetadataResponse>, Status> {
        Ok(Response::new(ServerMetadataResponse {
            name: ferroserve_runtime::SERVER_NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            extensions: ferroserve_runtime::EXTENSIONS
                .iter()
                .map(|e| e.to_string())
                .collect(),
        }))
    }

    async fn model_metadata(
        &self,
        request: Request<ModelMetadataRequest>,
    ) -> Result<Response<ModelMetadataResponse>, Status> {
        let request = request.into_inner();
        let metadata = self
            .runtime
            .model_metadata(&request.name, version(&request.version).map_err(grpc)?)
            .map_err(grpc)?;
        let tensor = |t: ferroserve_runtime::infer::TensorMetadata| {
            model_metadata_response::TensorMetadata {
                name: t.name,
                datatype: t.datatype.name().into(),
                shape: t.shape,
            }
        };
        Ok(Response::new(ModelMetadataResponse {
            name: metadata.name,
            versions: metadata.versions,
            platform: metadata.platform,
            inputs: metadata.inputs.into_iter().map(tensor).collect(),
            outputs: metadata.outputs.into_iter().map(tensor).collect(),
        }))
    }

    async fn model_infer(
        &self,
        request: Request<ModelInferRequest>,
    ) -> Result<Response<ModelInferResponse>, Status> {
        let span = self.traces.begin("grpc", request.metadata().as_ref());
        let response = answer(&self.runtime, request.into_inner(), false, span).await;
        response.map(Response::new).map_err(grpc)
    }

    /// Requests are served concurrently, so that they can be batched together; each
    /// response is sent as soon as it is ready, which may not be the order of the
    /// requests: clients match them by `id`. A request whose client has gone is dropped.
    async fn model_stream_infer(
        &self,
        request: Request<Streaming<ModelInferRequest>>,
    ) -> Result<Response<BoxStream<ModelStreamInferResponse>>, Status> {
        // Each request of the call is traced with the call's metadata.
        let traced = self
            .traces
            .is_on()
            .then(|| request.metadata().as_ref().clone());
        let mut requests = request.into_inner();
        let (responses, receiver) = mpsc::channel(STREAM_BUFFER);
        let runtime = self.runtime.clone();
        let traces = self.traces.clone();
        tokio::spawn(async move {
            loop {
                match requests.message().await {
                    Ok(Some(message)) => {
                        let span = traced
                            .as_ref()
                            .and_then(|metadata| traces.begin("grpc", metadata));
                        let runtime = runtime.clone();
                        let responses = responses.clone();
                        tokio::spawn(async move {
                            tokio::select! {
                                answer = stream_answer(&runtime, message, span) => {
                                    let _ = responses.send(Ok(answer)).await;
                                }
                                () = responses.closed() => {}
                            }
                        });
                    }
                    Ok(None) => break,
                    Err(status) => {
                        let _ = responses.send(Err(status)).await;
                        break;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    async fn model_config(
        &self,
        request: Request<ModelConfigRequest>,
    ) -> Result<Response<ModelConfigResponse>, Status> {
        let request = request.into_inner();
        let model_config = self
            .runtime
            .model_config(&request.name, version(&request.version).map_err(grpc)?)
            .map_err(grpc)?;
        Ok(Response::new(ModelConfigResponse {
            config: Some(config::model_config(&model_config)),
        }))
    }

    async fn model_statistics(
        &self,
        request: Request<ModelStatisticsRequest>,
    ) -> Result<Response<ModelStatisticsResponse>, Status> {
        let request = request.into_inner();
        let name = Some(request.name.as_str()).filter(|n| !n.is_empty());
        let statistics = self
            .runtime
            .statistics(name, version(&request.version).map_err(grpc)?)
            .map_err(grpc)?;
        Ok(Response::new(ModelStatisticsResponse {
            model_stats: statistics.into_iter().map(config::statistics).collect(),
        }))
    }

    async fn repository_index(
        &self,
        request: Request<RepositoryIndexRequest>,
    ) -> Result<Response<RepositoryIndexResponse>, Status> {
        let request = request.into_inner();
        let models = self
            .runtime
            .repository_index()
            .map_err(grpc)?
            .into_iter()
            .filter(|entry| !request.ready || entry.state == "READY")
            .map(|entry| repository_index_response::ModelIndex {
                name: entry.name,
                version: entry.version,
                state: entry.state,
                reason: entry.reason,
            })
            .collect();
        Ok(Response::new(RepositoryIndexResponse { models }))
    }

    /// Loads from ferroserve's one repository; the `config` parameter (a JSON string)
    /// loads with that configuration, the `file:<path>` parameters (bytes) with those
    /// files instead of the model's folder. Other parameters are ignored.
    async fn repository_model_load(
        &self,
        request: Request<RepositoryModelLoadRequest>,
    ) -> Result<Response<RepositoryModelLoadResponse>, Status> {
        let request = request.into_inner();
        one_repository(&request.repository_name).map_err(grpc)?;
        let name = model_folder(&request.model_name).map_err(grpc)?;
        let mut given = LoadParameters::default();
        for (key, parameter) in &request.parameters {
            use model_repository_parameter::ParameterChoice;
            let choice = parameter.parameter_choice.as_ref();
            if key == "config" {
                let Some(ParameterChoice::StringParam(json)) = choice else {
                    return Err(grpc(ServeError::InvalidRequest(
                        "load parameter 'config' must be a string_param".into(),
                    )));
                };
                given.config = Some(crate::load::config(name, json).map_err(grpc)?);
            } else if let Some(path) = key.strip_prefix("file:") {
                let Some(ParameterChoice::BytesParam(contents)) = choice else {
                    return Err(grpc(ServeError::InvalidRequest(format!(
                        "load parameter '{key}' must be a bytes_param"
                    ))));
                };
                given.files.push((path.to_string(), contents.to_vec()));
            }
        }
        self.runtime
            .load_model_with(name, given)
            .await
            .map_err(grpc)?;
        Ok(Response::new(RepositoryModelLoadResponse {}))
    }

    /// `unload_dependents` is accepted and has no effect: an ensemble's steps are models
    /// of their own, loaded until they are unloaded.
    async fn repository_model_unload(
        &self,
        request: Request<RepositoryModelUnloadRequest>,
    ) -> Result<Response<RepositoryModelUnloadResponse>, Status> {
        let request = request.into_inner();
        one_repository(&request.repository_name).map_err(grpc)?;
        self.runtime
            .unload_model(&request.model_name)
            .await
            .map_err(grpc)?;
        Ok(Response::new(RepositoryModelUnloadResponse {}))
    }

    async fn system_shared_memory_status(
        &self,
        request: Request<SystemSharedMemoryStatusRequest>,
    ) -> Result<Response<SystemSharedMemoryStatusResponse>, Status> {
        no_region(&request.into_inner().name).map_err(grpc)?;
        Ok(Response::new(SystemSharedMemoryStatusResponse::default()))
    }

    async fn system_shared_memory_register(
        &self,
        _: Request<SystemSharedMemoryRegisterRequest>,
    ) -> Result<Response<SystemSharedMemoryRegisterResponse>, Status> {
        Err(shared_memory_unsupported())
    }

    /// Succeeds: no region is ever registered, so there is nothing to unregister.
    async fn system_shared_memory_unregister(
        &self,
        _: Request<SystemSharedMemoryUnregisterRequest>,
    ) -> Result<Response<SystemSharedMemoryUnregisterResponse>, Status> {
        Ok(Response::new(SystemSharedMemoryUnregisterResponse {}))
    }

    async fn cuda_shared_memory_status(
        &self,
        request: Request<CudaSharedMemoryStatusRequest>,
    ) -> Result<Response<CudaSharedMemoryStatusResponse>, Status> {
        no_region(&request.into_inner().name).map_err(grpc)?;
        Ok(Response::new(CudaSharedMemoryStatusResponse::default()))
    }

    async fn cuda_shared_memory_register(
        &self,
        _: Request<CudaSharedMemoryRegisterRequest>,
    ) -> Result<Response<CudaSharedMemoryRegisterResponse>, Status> {
        Err(shared_memory_unsupported())
    }

    /// Succeeds: no region is ever registered, so there is nothing to unregister.
    async fn cuda_shared_memory_unregister(
        &self,
        _: Request<CudaSharedMemoryUnregisterRequest>,
    ) -> Result<Response<CudaSharedMemoryUnregisterResponse>, Status> {
        Ok(Response::new(CudaSharedMemoryUnregisterResponse {}))
    }
}

/// ferroserve serves one repository, which has no name.
fn one_repository(name: &str) -> Result<(), ServeError> {
    if name.is_empty() {
        Ok(())
    } else {
        Err(ServeError::Unsupported(format!(
            "repository_name '{name}' is not supported: ferroserve serves one repository"
        )))
    }
}

/// The status of all regions (empty `name`) is empty; a named region does not exist.
fn no_region(name: &str) -> Result<(), ServeError> {
    if name.is_empty() {
        Ok(())
    } else {
        Err(ServeError::InvalidRequest(format!(
            "no shared-memory region '{name}' is registered"
        )))
    }
}

fn shared_memory_unsupported() -> Status {
    grpc(ServeError::Unsupported(
        "shared memory is not supported: send tensors in the request".into(),
    ))
}
