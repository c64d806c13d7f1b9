//! `ferroserve config`: a Triton model repository checked without serving it, and a
//! model's completed configuration printed.

use std::path::PathBuf;
use std::process::ExitCode;

use ferroserve_core::ModelRepository;
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
    /// its engine and matched to the configuration. Prints each model's errors and
    /// warnings; exits 1 if any model has an error.
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
            let loaded = load(&repository, &model, &engine).map_err(anyhow::Error::msg)?;
            let config = &loaded
                .last()
                .expect("load returns a version or an error")
                .config;
            if json {
                println!("{}", serde_json::to_string_pretty(&config.to_json())?);
            } else {
                print!("{}", config.to_text());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
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
        match load(&repository, &entry.name, engine) {
            Ok(versions) => {
                let numbers: Vec<String> = versions.iter().map(|v| v.version.to_string()).collect();
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
