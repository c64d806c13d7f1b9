//! A configuration as Triton's complete `ModelConfig` message: what the file set, with
//! what ferroserve completed or normalised taken from the typed view.

use super::proto::model_config::SchedulingChoice;
use super::proto::model_version_policy::{All, Latest, PolicyChoice, Specific};
use super::{proto, schema};
use super::{
    DynamicBatching, InstanceGroup, ModelConfig, ModelInput, ModelOutput, QueuePolicy,
    VersionPolicy,
};

impl ModelConfig {
    /// The configuration as Triton's `ModelConfig` message, as Triton reports it: every
    /// field the file set, with the fields ferroserve acts on taken from this typed view
    /// (so that autocompletion and normalisation show): `name`, `platform`, `backend`,
    /// `version_policy` (the one in effect: the latest version when none is given),
    /// `max_batch_size`, `input`, `output`, `dynamic_batching`, `instance_group`,
    /// `default_model_filename`, `parameters` and `response_cache`. Inputs and outputs
    /// keep the file's other fields (`reshape`, ...) by name, instance groups by position.
    /// A configuration built from the model alone has the typed fields only.
    pub fn to_proto(&self) -> proto::ModelConfig {
        let mut message = (*self.message).clone();
        message.name = self.name.clone();
        message.platform = self.platform.clone();
        message.backend = self.backend.clone();
        message.version_policy = Some(version_policy(
            &self.version_policy.clone().unwrap_or_default(),
        ));
        message.max_batch_size = int32(self.max_batch_size());
        let file_inputs = std::mem::take(&mut message.input);
        message.input = self
            .input
            .iter()
            .map(|i| input(i, file_inputs.iter().find(|f| f.name == i.name)))
            .collect();
        let file_outputs = std::mem::take(&mut message.output);
        message.output = self
            .output
            .iter()
            .map(|o| output(o, file_outputs.iter().find(|f| f.name == o.name)))
            .collect();
        message.scheduling_choice = match (&self.dynamic_batching, message.scheduling_choice) {
            (Some(batching), Some(SchedulingChoice::DynamicBatching(file))) => Some(
                SchedulingChoice::DynamicBatching(dynamic_batching(batching, file)),
            ),
            (Some(batching), _) => Some(SchedulingChoice::DynamicBatching(dynamic_batching(
                batching,
                Default::default(),
            ))),
            (None, Some(SchedulingChoice::DynamicBatching(_))) => None,
            (None, other) => other,
        };
        let file_groups = std::mem::take(&mut message.instance_group);
        message.instance_group = self
            .instance_group
            .iter()
            .enumerate()
            .map(|(i, group)| instance_group(group, file_groups.get(i).cloned()))
            .collect();
        message.default_model_filename = self.default_model_filename.clone();
        message.parameters = self
            .parameters
            .iter()
            .map(|(key, value)| {
                let value = proto::ModelParameter {
                    string_value: value.string_value.clone(),
                };
                (key.clone(), value)
            })
            .collect();
        message.response_cache =
            self.response_cache
                .as_ref()
                .map(|cache| proto::ModelResponseCache {
                    enable: cache.enable,
                });
        message
    }

    /// [`to_proto`](Self::to_proto) as the JSON Triton returns from
    /// `GET /v2/models/<model>/config`: protobuf field names, enums by name
    /// (`"TYPE_FP32"`, `"KIND_CPU"`), 64-bit integers as JSON numbers, scalar, list and map
    /// fields always present (with their defaults when unset) and unset messages left out.
    pub fn to_json(&self) -> serde_json::Value {
        schema::to_json(&self.to_proto())
    }

    /// [`to_proto`](Self::to_proto) in protobuf text format: a `config.pbtxt` Triton and
    /// ferroserve read back as this configuration.
    pub fn to_text(&self) -> String {
        schema::to_text(&self.to_proto())
    }
}

/// The protocol's `int32` fields for values ferroserve keeps as `u32`.
fn int32(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

fn version_policy(policy: &VersionPolicy) -> proto::ModelVersionPolicy {
    let choice = match policy {
        VersionPolicy::Latest { num_versions } => PolicyChoice::Latest(Latest {
            num_versions: *num_versions,
        }),
        VersionPolicy::All {} => PolicyChoice::All(All {}),
        VersionPolicy::Specific { versions } => PolicyChoice::Specific(Specific {
            versions: versions
                .iter()
                .map(|&v| i64::try_from(v).unwrap_or(i64::MAX))
                .collect(),
        }),
    };
    proto::ModelVersionPolicy {
        policy_choice: Some(choice),
    }
}

fn data_type(dtype: &crate::tensor::DataType) -> proto::DataType {
    proto::DataType::from_str_name(dtype.config_name()).unwrap_or_default()
}

/// `typed` over the file's input of the same name.
fn input(typed: &ModelInput, file: Option<&proto::ModelInput>) -> proto::ModelInput {
    let mut message = file.cloned().unwrap_or_default();
    message.name = typed.name.clone();
    message.set_data_type(data_type(&typed.data_type));
    message.set_format(
        proto::model_input::Format::from_str_name(typed.format.config_name()).unwrap_or_default(),
    );
    message.dims = typed.dims.clone();
    message.optional = typed.optional;
    message
}

/// `typed` over the file's output of the same name.
fn output(typed: &ModelOutput, file: Option<&proto::ModelOutput>) -> proto::ModelOutput {
    let mut message = file.cloned().unwrap_or_default();
    message.name = typed.name.clone();
    message.set_data_type(data_type(&typed.data_type));
    message.dims = typed.dims.clone();
    message.label_filename = typed.label_filename.clone();
    message
}

fn dynamic_batching(
    typed: &DynamicBatching,
    mut message: proto::ModelDynamicBatching,
) -> proto::ModelDynamicBatching {
    message.preferred_batch_size = typed
        .preferred_batch_size
        .iter()
        .map(|&size| int32(size))
        .collect();
    message.max_queue_delay_microseconds = typed.max_queue_delay_microseconds;
    message.default_queue_policy = typed.default_queue_policy.as_ref().map(|policy| {
        queue_policy(
            policy,
            message.default_queue_policy.take().unwrap_or_default(),
        )
    });
    message
}

fn queue_policy(
    typed: &QueuePolicy,
    mut message: proto::ModelQueuePolicy,
) -> proto::ModelQueuePolicy {
    message.set_timeout_action(
        proto::model_queue_policy::TimeoutAction::from_str_name(typed.timeout_action.config_name())
            .unwrap_or_default(),
    );
    message.default_timeout_microseconds = typed.default_timeout_microseconds;
    message.allow_timeout_override = typed.allow_timeout_override;
    message.max_queue_size = typed.max_queue_size;
    message
}

/// `typed` over the file's instance group at the same position.
fn instance_group(
    typed: &InstanceGroup,
    file: Option<proto::ModelInstanceGroup>,
) -> proto::ModelInstanceGroup {
    let mut message = file.unwrap_or_default();
    message.name = typed.name.clone();
    message.set_kind(
        proto::model_instance_group::Kind::from_str_name(typed.kind.config_name())
            .unwrap_or_default(),
    );
    message.count = int32(typed.count);
    message.gpus = typed.gpus.iter().map(|&gpu| int32(gpu)).collect();
    message
}
