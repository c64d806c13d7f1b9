//! `ferroserve classify`: files and folders in, top-k classes out.
//!
//! The files go through the same [`Runtime`] as `ferroserve serve`'s requests: decoded
//! and preprocessed on its preprocessing threads, batched by its scheduler onto the
//! model's instances, ranked by its `/classify` path. A bounded number are in flight at
//! once, which bounds the memory they take.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use ferroserve_core::ModelRepository;
use ferroserve_runtime::infer::ClassifiedAs;
use ferroserve_runtime::{LoadOptions, ModelControlMode, Runtime, RuntimeOptions};

use crate::engine::EngineArgs;

/// File extensions picked up when walking a folder.
const IMAGE_EXTENSIONS: [&str; 7] = ["jpg", "jpeg", "png", "webp", "bmp", "gif", "jfif"];

#[derive(clap::Args)]
pub struct ClassifyArgs {
    /// Model repository (Triton layout). Default: the bundled one.
    #[arg(long, env = "FERROSERVE_MODEL_REPOSITORY")]
    model_repository: Option<PathBuf>,
    /// Model to use. Default: the repository's only model, or efficientnet-lite0.
    #[arg(long, env = "FERROSERVE_MODEL")]
    model: Option<String>,
    #[command(flatten)]
    engine: EngineArgs,
    /// How many classes to print per image.
    #[arg(long, default_value_t = 5)]
    top_k: usize,
    /// Print one JSON object per image instead of a table.
    #[arg(long)]
    json: bool,
    /// Decode/preprocess threads. Default: one per core.
    #[arg(long)]
    preprocess_threads: Option<usize>,
    /// Image files and folders; folders are walked for image files by extension.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

/// One image's outcome.
struct Outcome {
    path: PathBuf,
    result: Result<Vec<ClassifiedAs>, String>,
    latency: Duration,
}

pub fn run(args: ClassifyArgs) -> anyhow::Result<ExitCode> {
    let repository = crate::open_repository(args.model_repository.as_deref())?;
    let name = match &args.model {
        Some(name) => name.clone(),
        None => only_model(&repository)?,
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let preprocess_threads = args.preprocess_threads.unwrap_or(cores).max(1);
    let in_flight = 4 * preprocess_threads + 16;
    let runtime = Runtime::start(RuntimeOptions {
        model_repository: repository.root().to_path_buf(),
        control_mode: ModelControlMode::Explicit,
        startup_models: vec![name.clone()],
        load: LoadOptions {
            engine: args.engine.engine,
            engine_options: args.engine.options(),
            intra_op_threads: None,
            max_queue_size: in_flight,
            max_queue_wait: None,
            tune: false,
            naive: Default::default(),
        },
        preprocess_threads,
        links: Default::default(),
        cache_bytes: 0,
    })?;
    let Some(served) = runtime
        .loaded_models()
        .into_iter()
        .find(|m| m.model.name == name)
    else {
        let reason = runtime
            .repository_index()?
            .into_iter()
            .find(|entry| entry.name == name)
            .map(|entry| entry.reason)
            .unwrap_or_else(|| "no such model".into());
        bail!("cannot load model '{name}': {reason}");
    };
    if served.model.preprocessing.is_none() {
        bail!("model '{name}' declares no image preprocessing (parameters preprocess.* in its config.pbtxt)");
    }
    let engine = format!(
        "{} {}",
        served.model.engine.kind().name(),
        served.model.engine.precision()
    );
    drop(served);
    let files = image_files(&args.paths);
    let code = report(&runtime, &name, &engine, &files, &args, in_flight);
    runtime.shutdown();
    code
}

/// The repository's only model, or `efficientnet-lite0` when there are several.
fn only_model(repository: &ModelRepository) -> anyhow::Result<String> {
    let names: Vec<String> = repository.index()?.into_iter().map(|e| e.name).collect();
    match names.as_slice() {
        [only] => Ok(only.clone()),
        names if names.iter().any(|n| n == "efficientnet-lite0") => Ok("efficientnet-lite0".into()),
        [] => bail!(
            "model repository {} holds no model",
            repository.root().display()
        ),
        names => bail!(
            "several models in the repository, pick one with --model: {}",
            names.join(", ")
        ),
    }
}

/// Files named explicitly, and image files found by extension under folders, in order.
/// A path that cannot be read is kept, so that it is reported as a failure.
pub(crate) fn image_files(paths: &[PathBuf]) -> Vec<PathBuf> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            found.push(dir.to_path_buf());
            return;
        };
        let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, found);
            } else if has_image_extension(&path) {
                found.push(path);
            }
        }
    }
    let mut found = Vec::new();
    for path in paths {
        if path.is_dir() {
            walk(path, &mut found);
        } else {
            found.push(path.clone());
        }
    }
    found
}

fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// Classifies every file on the runtime, at most `in_flight` at a time, calling
/// `on_outcome` for each as it completes (with the file's position in `files`).
fn classify_files(
    runtime: &Arc<Runtime>,
    model: &str,
    files: &[PathBuf],
    top_k: usize,
    in_flight: usize,
    mut on_outcome: impl FnMut(usize, Outcome),
) -> anyhow::Result<()> {
    let io = tokio::runtime::Builder::new_current_thread()
        .build()
        .context("starting the async runtime")?;
    io.block_on(async {
        let mut running = tokio::task::JoinSet::new();
        let mut next = 0;
        loop {
            while running.len() < in_flight && next < files.len() {
                let (runtime, model, path) =
                    (runtime.clone(), model.to_string(), files[next].clone());
                let position = next;
                running.spawn(async move {
                    let started = Instant::now();
                    let result = match tokio::fs::read(&path).await {
                        Ok(image) => runtime
                            .classify_image(&model, None, Bytes::from(image), top_k)
                            .await
                            .map(|classified| classified.classes)
                            .map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    };
                    let latency = started.elapsed();
                    (
                        position,
                        Outcome {
                            path,
                            result,
                            latency,
                        },
                    )
                });
                next += 1;
            }
            match running.join_next().await {
                Some(Ok((position, outcome))) => on_outcome(position, outcome),
                Some(Err(e)) => return Err(anyhow::anyhow!("a classification task failed: {e}")),
                None => return Ok(()),
            }
        }
    })
}

/// Prints each outcome as it completes, in file order, then the summary; the exit code
/// is 1 if any file failed.
fn report(
    runtime: &Arc<Runtime>,
    model: &str,
    engine: &str,
    files: &[PathBuf],
    args: &ClassifyArgs,
    in_flight: usize,
) -> anyhow::Result<ExitCode> {
    let progress = if files.len() >= 20 {
        indicatif::ProgressBar::new(files.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut latencies =
        hdrhistogram::Histogram::<u64>::new(3).expect("3 significant digits is valid");
    let mut pending = BTreeMap::new();
    let mut next_to_print = 0;
    let mut failures = 0;
    let mut stdout = std::io::stdout().lock();
    let started = Instant::now();
    classify_files(
        runtime,
        model,
        files,
        args.top_k,
        in_flight,
        |position, outcome| {
            progress.inc(1);
            let _ = latencies.record(outcome.latency.as_micros() as u64);
            pending.insert(position, outcome);
            while let Some(outcome) = pending.remove(&next_to_print) {
                next_to_print += 1;
                if outcome.result.is_err() {
                    failures += 1;
                }
                progress.suspend(|| print_outcome(&mut stdout, &outcome, args.json));
            }
        },
    )?;
    progress.finish_and_clear();
    let elapsed = started.elapsed();
    let _ = stdout.flush();
    let ms = |micros: u64| micros as f64 / 1000.0;
    eprintln!(
        "{} images, {} failed, {:.1} images/s, latency p50 {:.1} ms, p99 {:.1} ms ({} on {})",
        files.len(),
        failures,
        files.len() as f64 / elapsed.as_secs_f64(),
        ms(latencies.value_at_quantile(0.5)),
        ms(latencies.value_at_quantile(0.99)),
        model,
        engine,
    );
    Ok(if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_outcome(out: &mut impl Write, outcome: &Outcome, json: bool) {
    let path = outcome.path.display().to_string();
    let result = match (&outcome.result, json) {
        (Err(reason), _) => {
            eprintln!("error: {path}: {reason}");
            Ok(())
        }
        (Ok(ranked), true) => {
            let classes: Vec<_> = ranked
                .iter()
                .map(|r| serde_json::json!({"index": r.index, "label": r.label, "probability": r.probability}))
                .collect();
            let line = serde_json::json!({
                "path": path,
                "classes": classes,
                "latency_ms": outcome.latency.as_secs_f64() * 1000.0,
            });
            writeln!(out, "{line}")
        }
        (Ok(ranked), false) => {
            let mut text = format!("{path}\n");
            for (rank, r) in ranked.iter().enumerate() {
                let label = r.label.as_deref().unwrap_or("");
                text += &format!(
                    "  {}. {:>7.4}  {label} [{}]\n",
                    rank + 1,
                    r.probability,
                    r.index
                );
            }
            write!(out, "{text}")
        }
    };
    // A closed stdout (e.g. piped into `head`) is not worth a panic.
    let _ = result;
}
