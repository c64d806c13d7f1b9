//! `ferroserve config`: a Triton model repository checked without serving it, and a
//! model's completed configuration printed.

use std::path::PathBuf;
use std::process::ExitCode;

use ferroserve_core::{ModelConfig, ModelRepository};
use ferroserve_engine::model::LoadedModel;

use crate::engine::EngineArgs;

#[derive(clap::Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(clap::Subcommand)]
enum ConfigCommand {
    /// Check every model of a repository as `serve` would load it: config.pbtxt against
    /// Triton's schema, the version folders and files, the labels, and the model opened by
    /// its engine and matched to the configuration (an ensemble's steps against their
    /// models). Prints each model's errors and warnings; exits 1 if any model has an error.
    Check {
        /// The model repository (Triton layout).
        repository: PathBuf,
        #[command(flatten)]
        engine: EngineArgs,
    },
    /// Print a model's configuration completed from the model itself (inputs, outputs,
    /// batch size), as a config.pbtxt, or as the JSON of `GET /v2/models/<m>/config`.
    Print {
        /// The model's name in the repository.
        model: String,
        /// The model repository. Default: the bundled one.
        #[arg(long, env = "FERROSERVE_MODEL_REPOSITORY")]
        model_repository: Option<PathBuf>,
        /// Print JSON instead of protobuf text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        engine: EngineArgs,
    },
}

pub fn run(args: ConfigArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        ConfigCommand::Check { repository, engine } => check(&repository, &engine),
        ConfigCommand::Print {
            model,
            model_repository,
            json,
            engine,
        } => {
            let repository = crate::open_repository(model_repository.as_deref())?;
            let configs = completed_configs(&repository, &model, &engine)?;
            let config = configs.last().expect("load returns a version or an error");
            if json {
                println!("{}", serde_json::to_string_pretty(&config.to_json())?);
            } else {
                print!("{}", config.to_text());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The configuration of every version of `name` the version policy selects, completed
/// from the model (an ensemble's as written, its steps checked against theirs).
fn completed_configs(
    repository: &ModelRepository,
    name: &str,
    engine: &EngineArgs,
) -> anyhow::Result<Vec<ModelConfig>> {
    let description = repository
        .load(name)
        .map_err(|e| anyhow::anyhow!(repository.redact(&e.to_string())))?;
    match description.config {
        Some(config) if config.is_ensemble() => {
            check_ensemble(repository, &config, engine, &mut Vec::new())
                .map_err(anyhow::Error::msg)?;
            Ok(vec![config; description.versions.len().max(1)])
        }
        _ => Ok(load(repository, name, engine)
            .map_err(anyhow::Error::msg)?
            .into_iter()
            .map(|model| model.config)
            .collect()),
    }
}

/// Checks the ensemble `config` against its steps' configurations, each completed from
/// its model (nested ensembles checked in turn; `within` are the ensembles being checked,
/// to refuse a cycle).
fn check_ensemble(
    repository: &ModelRepository,
    config: &ModelConfig,
    engine: &EngineArgs,
    within: &mut Vec<String>,
) -> Result<(), String> {
    within.push(config.name.clone());
    let mut steps = Vec::new();
    for (i, step) in config.steps().iter().enumerate() {
        let failed = |reason: String| {
            format!(
                "ensemble_scheduling.step[{i}] (model '{}'): {reason}",
                step.model_name
            )
        };
        if within.contains(&step.model_name) {
            return Err(failed(format!(
                "ensembles that run each other make a cycle: {} -> {}",
                within.join(" -> "),
                step.model_name
            )));
        }
        let description = repository
            .load(&step.model_name)
            .map_err(|e| failed(repository.redact(&e.to_string())))?;
        let step_config = match description.config {
            Some(nested) if nested.is_ensemble() => {
                check_ensemble(repository, &nested, engine, within).map_err(failed)?;
                nested
            }
            _ => {
                let versions = load(repository, &step.model_name, engine).map_err(failed)?;
                let chosen = match step.version() {
                    None => versions.into_iter().last(),
                    Some(v) => versions.into_iter().find(|m| m.version == v),
                };
                chosen
                    .ok_or_else(|| failed(format!("version {} is not served", step.model_version)))?
                    .config
            }
        };
        steps.push(step_config);
    }
    within.pop();
    let configs: Vec<&ModelConfig> = steps.iter().collect();
    config
        .check_steps(&configs)
        .map_err(|e| repository.redact(&e.to_string()))
}

/// Every version of `name` the version policy selects, loaded; or why not, with paths
/// relative to the repository.
fn load(
    repository: &ModelRepository,
    name: &str,
    engine: &EngineArgs,
) -> Result<Vec<LoadedModel>, String> {
    let description = repository
        .load(name)
        .map_err(|e| repository.redact(&e.to_string()))?;
    description
        .versions
        .iter()
        .map(|version| {
            LoadedModel::load(&description, version, engine.engine, &engine.options())
                .map_err(|e| repository.redact(&format!("version {}: {e}", version.version)))
        })
        .collect()
}

fn check(path: &std::path::Path, engine: &EngineArgs) -> anyhow::Result<ExitCode> {
    let repository = ModelRepository::open(path)
        .map_err(|e| anyhow::anyhow!("model repository {}: {e}", path.display()))?;
    let entries = repository.index().map_err(anyhow::Error::msg)?;
    let mut failed = 0;
    for entry in &entries {
        let warnings = repository
            .load(&entry.name)
            .ok()
            .and_then(|d| d.config)
            .map(|c| c.warnings)
            .unwrap_or_default();
        for warning in &warnings {
            println!("{}: warning: {warning}", entry.name);
        }
        let checked = repository
            .load(&entry.name)
            .map_err(|e| repository.redact(&e.to_string()))
            .and_then(|description| match description.config {
                Some(config) if config.is_ensemble() => {
                    check_ensemble(&repository, &config, engine, &mut Vec::new())?;
                    Ok(description.versions.iter().map(|v| v.version).collect())
                }
                _ => Ok(load(&repository, &entry.name, engine)?
                    .iter()
                    .map(|v| v.version)
                    .collect::<Vec<u64>>()),
            });
        match checked {
            Ok(versions) => {
                let numbers: Vec<String> = versions.iter().map(u64::to_string).collect();
                println!("{}: ok (versions {})", entry.name, numbers.join(", "));
            }
            Err(reason) => {
                failed += 1;
                println!("{}: error: {reason}", entry.name);
            }
        }
    }
    println!("{} models, {} with errors", entries.len(), failed);
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
