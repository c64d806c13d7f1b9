//! ferroserve's model configuration and statistics as the protocol's `ModelConfig` and
//! `ModelStatistics` messages.

use prost::Message;

use super::proto;
use ferroserve_runtime::stats;

/// The whole configuration, as the file set it plus what auto-completion added. The
/// protocol's `ModelConfig` is generated from the same vendored schema as
/// [`ferroserve_core::config::proto`], so the message passes through its encoding
/// unchanged.
pub(super) fn model_config(config: &ferroserve_core::ModelConfig) -> proto::ModelConfig {
    proto::ModelConfig::decode(config.to_proto().encode_to_vec().as_slice())
        .expect("both crates generate ModelConfig from the same schema")
}

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
