//! Ensembles: a request for an ensemble runs its steps one after another, in the order
//! worked out at load, each step an ordinary inference request of its model (admitted,
//! cached, queued and counted as the model's own). A step's inputs are the ensemble's
//! inputs or earlier steps' outputs, passed on as they are: the tensors' buffers are
//! shared between steps, never copied.
//!
//! Steps are found by name at each request, so that a step model reloaded is the one
//! the next request runs; while a step model is not loaded the ensemble is not ready,
//! and its requests are refused before any step runs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferroserve_core::config::EnsemblePlan;
use ferroserve_core::{Labels, ModelConfig, ModelDescription, TensorSpec};

use crate::admission::{AdmittedInput, Signature};
use crate::error::ServeError;
use crate::infer::{InferInput, InferRequest, InferResponse, OutputData, RequestedOutput, Timings};
use crate::respond;
use crate::runtime::Runtime;
use crate::scheduler::JobTensor;
use crate::telemetry::Telemetry;

/// One version of an ensemble, loaded: its configuration, the order of its steps, and
/// what its requests are admitted against.
pub struct ServedEnsemble {
    pub name: String,
    pub version: u64,
    /// The configuration as written (ensembles are not completed from a model).
    pub config: ModelConfig,
    /// The ensemble's inputs and outputs, as requests see them.
    pub signature: Signature,
    pub telemetry: Arc<Telemetry>,
    /// Step indices in the order they run.
    order: Vec<usize>,
    /// The outputs, in the configuration's order.
    outputs: Vec<TensorSpec>,
    /// Labels of each output that has them, in the configuration's order.
    labels: Vec<Option<Labels>>,
}

impl ServedEnsemble {
    /// Version `version` of the ensemble `description`, whose configuration `config`
    /// was checked against its steps and runs them as `plan` says.
    pub fn new(
        description: &ModelDescription,
        config: ModelConfig,
        version: u64,
        plan: &EnsemblePlan,
    ) -> Self {
        let labels = config
            .output
            .iter()
            .map(|o| description.labels.get(&o.name).cloned())
            .collect();
        ServedEnsemble {
            name: description.name.clone(),
            version,
            signature: Signature::of_ensemble(&description.name, &config),
            telemetry: Arc::new(Telemetry::new(&description.name, version, false)),
            order: plan.order.clone(),
            outputs: config.output_specs(),
            labels,
            config,
        }
    }

    /// Runs one request through the steps on `runtime`: admission against the
    /// ensemble's inputs and outputs, every step in order, then the requested outputs.
    pub(crate) async fn infer(
        &self,
        runtime: &Runtime,
        request: InferRequest,
    ) -> Result<InferResponse, ServeError> {
        let mut tracker = self.telemetry.track();
        let result = self.run(runtime, request).await;
        tracker.finish(result.as_ref().map(|(rows, r)| (*rows, r.timings.queue)));
        result.map(|(_, response)| response)
    }

    async fn run(
        &self,
        runtime: &Runtime,
        request: InferRequest,
    ) -> Result<(usize, InferResponse), ServeError> {
        let started = Instant::now();
        let admitted = self.signature.admit(&request.inputs, &request.outputs)?;
        // The ensemble's tensors by name: its inputs first, then each step's outputs.
        let mut tensors: HashMap<&str, JobTensor> = HashMap::new();
        for (input, admitted) in self.config.input.iter().zip(admitted.inputs) {
            if let AdmittedInput::Tensor(tensor) = admitted {
                tensors.insert(&input.name, tensor);
            }
        }
        let mut timings = Timings::default();
        for &index in &self.order {
            let step = &self.config.steps()[index];
            let inputs = step
                .input_map
                .iter()
                .map(|(model_input, tensor)| {
                    let tensor = tensors.get(tensor.as_str()).ok_or_else(|| {
                        ServeError::UnusableOutput(format!(
                            "ensemble '{}': tensor '{tensor}' was not produced before step {index}",
                            self.name
                        ))
                    })?;
                    InferInput::from_output(
                        model_input.as_str(),
                        tensor.dtype,
                        tensor.shape.clone(),
                        tensor.data.clone(),
                    )
                })
                .collect::<Result<Vec<_>, _>>()?;
            let outputs = step
                .output_map
                .keys()
                .map(|name| RequestedOutput {
                    name: name.clone(),
                    classification: None,
                })
                .collect();
            // The request's timeout covers the whole ensemble: each step gets what is left.
            let timeout = request
                .timeout
                .map(|limit| remaining(limit, started))
                .transpose()?;
            let step_request = InferRequest {
                model: step.model_name.clone(),
                version: step.version(),
                id: request.id.clone(),
                inputs,
                outputs,
                timeout,
            };
            // A step may itself be an ensemble: the call recurses, boxed.
            let response = Box::pin(runtime.infer(step_request)).await?;
            timings.queue += response.timings.queue;
            timings.preprocess += response.timings.preprocess;
            timings.compute += response.timings.compute;
            for output in response.outputs {
                let Some(tensor) = step.output_map.get(&output.name) else {
                    continue;
                };
                let OutputData::Raw(data) = output.data else {
                    return Err(ServeError::UnusableOutput(format!(
                        "step {index} (model '{}') gave output '{}' as strings",
                        step.model_name, output.name
                    )));
                };
                let produced = JobTensor {
                    dtype: output.dtype,
                    shape: output.shape,
                    data,
                };
                tensors.insert(tensor.as_str(), produced);
            }
        }
        let computed: Vec<JobTensor> = self
            .config
            .output
            .iter()
            .map(|output| tensors.remove(output.name.as_str()))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                ServeError::UnusableOutput(format!(
                    "ensemble '{}': a step did not give every output",
                    self.name
                ))
            })?;
        let batched = self.config.max_batch_size() > 0;
        let outputs = respond::shape_outputs(
            &self.outputs,
            &self.labels,
            batched,
            &admitted.outputs,
            computed,
        );
        let response = InferResponse {
            model: self.name.clone(),
            version: self.version,
            id: request.id,
            rows: admitted.rows,
            outputs,
            timings,
        };
        Ok((admitted.rows, response))
    }
}

/// How long is left of `limit` since `started`; a timeout when nothing is.
fn remaining(limit: Duration, started: Instant) -> Result<Duration, ServeError> {
    limit
        .checked_sub(started.elapsed())
        .filter(|left| !left.is_zero())
        .ok_or(ServeError::Timeout(started.elapsed()))
}
