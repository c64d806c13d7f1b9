//! ferroserve's model configuration and statistics as the protocol's `ModelConfig` and
//! `ModelStatistics` messages.

use ferroserve_core::config::{
    DynamicBatching, InputFormat, InstanceGroup, InstanceKind, ModelInput, ModelOutput,
    QueuePolicy, TimeoutAction, VersionPolicy,
};
use ferroserve_core::DataType;

use super::proto;
use super::proto::model_version_policy::PolicyChoice;
use ferroserve_runtime::stats;

/// The configuration as `ModelConfig` reports it. A configuration without a version
/// policy reports the one in effect, the latest version.
pub(super) fn model_config(config: &ferroserve_core::ModelConfig) -> proto::ModelConfig {
    proto::ModelConfig {
        name: config.name.clone(),
        platform: config.platform.clone(),
        backend: config.backend.clone(),
        version_policy: Some(version_policy(
            &config.version_policy.clone().unwrap_or_default(),
        )),
        max_batch_size: int32(config.max_batch_size()),
        input: config.input.iter().map(input).collect(),
        output: config.output.iter().map(output).collect(),
        dynamic_batching: config.dynamic_batching.as_ref().map(dynamic_batching),
        instance_group: config.instance_group.iter().map(instance_group).collect(),
        default_model_filename: config.default_model_filename.clone(),
        parameters: config
            .parameters
            .iter()
            .map(|(key, value)| {
                let value = proto::ModelParameter {
                    string_value: value.string_value.clone(),
                };
                (key.clone(), value)
            })
            .collect(),
        response_cache: config
            .response_cache
            .as_ref()
            .map(|cache| proto::ModelResponseCache {
                enable: cache.enable,
            }),
    }
}

/// The protocol's `int32` fields for values ferroserve keeps as `u32`.
fn int32(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

fn data_type(dtype: DataType) -> i32 {
    let value = match dtype {
        DataType::Bool => proto::DataType::TypeBool,
        DataType::Uint8 => proto::DataType::TypeUint8,
        DataType::Uint16 => proto::DataType::TypeUint16,
        DataType::Uint32 => proto::DataType::TypeUint32,
        DataType::Uint64 => proto::DataType::TypeUint64,
        DataType::Int8 => proto::DataType::TypeInt8,
        DataType::Int16 => proto::DataType::TypeInt16,
        DataType::Int32 => proto::DataType::TypeInt32,
        DataType::Int64 => proto::DataType::TypeInt64,
        DataType::Fp16 => proto::DataType::TypeFp16,
        DataType::Fp32 => proto::DataType::TypeFp32,
        DataType::Fp64 => proto::DataType::TypeFp64,
        DataType::Bytes => proto::DataType::TypeString,
    };
    value as i32
}

fn version_policy(policy: &VersionPolicy) -> proto::ModelVersionPolicy {
    use proto::model_version_policy::{All, Latest, Specific};
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

fn input(input: &ModelInput) -> proto::ModelInput {
    use proto::model_input::Format;
    let format = match input.format {
        InputFormat::None => Format::None,
        InputFormat::Nhwc => Format::Nhwc,
        InputFormat::Nchw => Format::Nchw,
    };
    proto::ModelInput {
        name: input.name.clone(),
        data_type: data_type(input.data_type),
        format: format as i32,
        dims: input.dims.clone(),
        optional: input.optional,
    }
}

fn output(output: &ModelOutput) -> proto::ModelOutput {
    proto::ModelOutput {
        name: output.name.clone(),
        data_type: data_type(output.data_type),
        dims: output.dims.clone(),
        label_filename: output.label_filename.clone(),
    }
}

fn dynamic_batching(batching: &DynamicBatching) -> proto::ModelDynamicBatching {
    proto::ModelDynamicBatching {
        preferred_batch_size: batching
            .preferred_batch_size
            .iter()
            .map(|&s| int32(s))
            .collect(),
        max_queue_delay_microseconds: batching.max_queue_delay_microseconds,
        default_queue_policy: batching.default_queue_policy.as_ref().map(queue_policy),
    }
}

fn queue_policy(policy: &QueuePolicy) -> proto::ModelQueuePolicy {
    use proto::model_queue_policy::TimeoutAction as Action;
    let action = match policy.timeout_action {
        TimeoutAction::Reject => Action::Reject,
        TimeoutAction::Delay => Action::Delay,
    };
    proto::ModelQueuePolicy {
        timeout_action: action as i32,
        default_timeout_microseconds: policy.default_timeout_microseconds,
        allow_timeout_override: policy.allow_timeout_override,
        max_queue_size: policy.max_queue_size,
    }
}

fn instance_group(group: &InstanceGroup) -> proto::ModelInstanceGroup {
    use proto::model_instance_group::Kind;
    let kind = match group.kind {
        InstanceKind::Auto => Kind::Auto,
        InstanceKind::Gpu => Kind::Gpu,
        InstanceKind::Cpu => Kind::Cpu,
        InstanceKind::Model => Kind::Model,
    };
    proto::ModelInstanceGroup {
        name: group.name.clone(),
        kind: kind as i32,
        count: int32(group.count),
        gpus: group.gpus.iter().map(|&g| int32(g)).collect(),
    }
}

/// One model version's statistics as `ModelStatistics`.
pub(super) fn statistics(stats: stats::ModelStatistics) -> proto::ModelStatistics {
    let duration = |d: stats::StatisticDuration| {
        Some(proto::StatisticDuration {
            count: d.count,
            ns: d.ns,
        })
    };
    let inference = stats.inference_stats;
    proto::ModelStatistics {
        name: stats.name,
        version: stats.version,
        last_inference: stats.last_inference,
        inference_count: stats.inference_count,
        execution_count: stats.execution_count,
        inference_stats: Some(proto::InferStatistics {
            success: duration(inference.success),
            fail: duration(inference.fail),
            queue: duration(inference.queue),
            compute_input: duration(inference.compute_input),
            compute_infer: duration(inference.compute_infer),
            compute_output: duration(inference.compute_output),
            cache_hit: duration(inference.cache_hit),
            cache_miss: duration(inference.cache_miss),
        }),
        batch_stats: stats
            .batch_stats
            .into_iter()
            .map(|batch| proto::InferBatchStatistics {
                batch_size: batch.batch_size as u64,
                compute_input: duration(batch.compute_input),
                compute_infer: duration(batch.compute_infer),
                compute_output: duration(batch.compute_output),
            })
            .collect(),
    }
}
