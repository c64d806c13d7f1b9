//! `ferroserve classify`: files and folders in, top-k classes out.
//!
//! Decoding and preprocessing run on one thread per core, each with its own
//! [`ImagePreprocessor`], writing into buffers taken from a fixed pool; engine workers
//! (one per model instance) batch whatever images are ready and return the buffers. The
//! pool bounds how many images are in memory at once.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use crossbeam_channel::{Receiver, Sender};
use ferroserve_core::classification::{is_probability_distribution, softmax_in_place, top_k};
use ferroserve_core::{
    DataType, ImagePreprocessing, ModelRepository, PixelType, Tensor, TensorBuf,
};
use ferroserve_engine::model::LoadedModel;
use ferroserve_engine::{EngineError, EngineKind, EngineOptions};
use ferroserve_vision::ImagePreprocessor;

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
    /// Inference engine: onnxruntime or tract. Default: the model configuration's backend.
    #[arg(long, env = "FERROSERVE_ENGINE")]
    engine: Option<EngineKind>,
    /// Path of libonnxruntime.so.1.32.0 (also read from ORT_DYLIB_PATH).
    #[arg(long, env = "FERROSERVE_ONNXRUNTIME_LIBRARY")]
    onnxruntime_library: Option<PathBuf>,
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
    result: Result<Vec<Ranked>, String>,
    latency: Duration,
}

struct Ranked {
    index: usize,
    label: Option<String>,
    probability: f32,
}

/// A preprocessed image waiting for the engine.
struct Prepared {
    position: usize,
    started: Instant,
    image: TensorBuf,
}

pub fn run(args: ClassifyArgs) -> anyhow::Result<ExitCode> {
    let repository = crate::open_repository(args.model_repository.as_deref())?;
    let name = match &args.model {
        Some(name) => name.clone(),
        None => only_model(&repository)?,
    };
    let description = repository.load(&name)?;
    let version = description
        .versions
        .last()
        .with_context(|| format!("model '{name}' has no version to load"))?;
    let options = EngineOptions {
        intra_op_threads: 1,
        onnxruntime_library: args.onnxruntime_library.clone(),
    };
    let model = LoadedModel::load(&description, version, args.engine, &options)
        .with_context(|| format!("loading model '{name}' version {}", version.version))?;
    let Some(preprocessing) = model.preprocessing.clone() else {
        bail!("model '{name}' declares no image preprocessing (parameters preprocess.* in its config.pbtxt)");
    };
    if model.image_input != Some(0) || model.engine.inputs().len() != 1 {
        bail!("model '{name}' must take exactly one input, the image, to classify files");
    }

    let files = image_files(&args.paths);
    report(&model, &preprocessing, &files, &args)
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
fn image_files(paths: &[PathBuf]) -> Vec<PathBuf> {
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

/// Runs the pipeline, calling `on_outcome` on this thread for each file as it completes
/// (with the file's position in `files`).
fn classify_files(
    model: &LoadedModel,
    preprocessing: &ImagePreprocessing,
    files: &[PathBuf],
    args: &ClassifyArgs,
    mut on_outcome: impl FnMut(usize, Outcome),
) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let preprocess_threads = args.preprocess_threads.unwrap_or(cores).max(1);
    let instances = model
        .config
        .instance_group
        .iter()
        .map(|g| g.count as usize)
        .sum::<usize>()
        .max(1);
    let max_batch = model.max_batch_size().max(1);
    let image_bytes = preprocessing.image_bytes();

    // Every image in flight holds one pool buffer, from preprocessing until the engine
    // has copied it into a batch.
    let pool_size = preprocess_threads + 2 * instances * max_batch;
    let (free_tx, free_rx) = crossbeam_channel::bounded::<TensorBuf>(pool_size);
    for _ in 0..pool_size {
        let mut buffer = TensorBuf::with_capacity(image_bytes);
        buffer.resize(image_bytes);
        free_tx
            .send(buffer)
            .expect("the pool has room for every buffer");
    }
    let (ready_tx, ready_rx) = crossbeam_channel::bounded::<Prepared>(pool_size);
    let (done_tx, done_rx) = crossbeam_channel::unbounded::<(usize, Outcome)>();
    let next = AtomicUsize::new(0);

    std::thread::scope(|scope| {
        for _ in 0..preprocess_threads {
            let (free_tx, free_rx) = (free_tx.clone(), free_rx.clone());
            let (ready_tx, done_tx) = (ready_tx.clone(), done_tx.clone());
            let (next, preprocessing) = (&next, preprocessing.clone());
            scope.spawn(move || {
                let mut preprocessor = ImagePreprocessor::new(preprocessing);
                loop {
                    let position = next.fetch_add(1, Ordering::Relaxed);
                    let Some(path) = files.get(position) else {
                        break;
                    };
                    let started = Instant::now();
                    let Ok(mut image) = free_rx.recv() else { break };
                    match prepare(&mut preprocessor, path, &mut image) {
                        Ok(()) => {
                            let _ = ready_tx.send(Prepared {
                                position,
                                started,
                                image,
                            });
                        }
                        Err(reason) => {
                            let _ = free_tx.send(image);
                            let outcome = Outcome {
                                path: path.clone(),
                                result: Err(reason),
                                latency: started.elapsed(),
                            };
                            let _ = done_tx.send((position, outcome));
                        }
                    }
                }
            });
        }
        for _ in 0..instances {
            let (ready_rx, free_tx, done_tx) = (ready_rx.clone(), free_tx.clone(), done_tx.clone());
            scope.spawn(move || {
                let worker = EngineWorker {
                    model,
                    image_shape: preprocessing.image_shape(),
                    top_k: args.top_k,
                    max_batch,
                    files,
                };
                worker.run(&ready_rx, &free_tx, &done_tx);
            });
        }
        // Only the workers hold senders now, so the loop ends when they are all done.
        drop((ready_tx, done_tx));
        for (position, outcome) in done_rx.iter() {
            on_outcome(position, outcome);
        }
    });
}

/// Reads and preprocesses one file into `image`.
fn prepare(
    preprocessor: &mut ImagePreprocessor,
    path: &Path,
    image: &mut TensorBuf,
) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let result = match preprocessor.settings().pixel_type {
        PixelType::F32 => preprocessor.preprocess_f32(&bytes, image.as_mut_slice()),
        PixelType::U8 => preprocessor.preprocess_u8(&bytes, image.as_mut_slice()),
    };
    result.map_err(|e| e.to_string())
}

/// One model instance: batches ready images, runs them and ranks the classes.
struct EngineWorker<'a> {
    model: &'a LoadedModel,
    /// Shape of one preprocessed image.
    image_shape: [usize; 3],
    top_k: usize,
    max_batch: usize,
    files: &'a [PathBuf],
}

impl EngineWorker<'_> {
    fn run(
        &self,
        ready: &Receiver<Prepared>,
        free: &Sender<TensorBuf>,
        done: &Sender<(usize, Outcome)>,
    ) {
        let mut runner = match self.model.engine.runner() {
            Ok(runner) => Ok(runner),
            Err(e) => Err(e.to_string()),
        };
        let input_spec = &self.model.engine.inputs()[0];
        let mut input = Tensor::with_capacity(input_spec.dtype, 0);
        let mut outputs =
            vec![Tensor::with_capacity(DataType::Fp32, 0); self.model.engine.outputs().len()];
        let mut batch: Vec<Prepared> = Vec::with_capacity(self.max_batch);
        while let Ok(first) = ready.recv() {
            batch.push(first);
            while batch.len() < self.max_batch {
                match ready.try_recv() {
                    Ok(item) => batch.push(item),
                    Err(_) => break,
                }
            }
            let mut shape = Vec::with_capacity(4);
            if input_spec.shape.len() == 4 {
                shape.push(batch.len());
            }
            shape.extend(self.image_shape);
            input.reshape(input_spec.dtype, &shape);
            let image_len = batch[0].image.len();
            for (slot, item) in input.data.as_bytes_mut().chunks_mut(image_len).zip(&batch) {
                slot.copy_from_slice(item.image.as_bytes());
            }
            let result = match &mut runner {
                // An engine panic fails this batch's files, not the whole run.
                Ok(runner) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    runner.run(&[input.view()], &mut outputs)
                }))
                .unwrap_or_else(|_| Err(EngineError::Run("the engine panicked".into())))
                .map_err(|e| e.to_string()),
                Err(reason) => Err(reason.clone()),
            };
            let rows = batch.len();
            for (row, item) in batch.drain(..).enumerate() {
                let ranked = result
                    .as_ref()
                    .map_err(Clone::clone)
                    .map(|()| self.rank(&outputs[0], row, rows));
                let _ = free.send(item.image);
                let outcome = Outcome {
                    path: self.files[item.position].clone(),
                    result: ranked,
                    latency: item.started.elapsed(),
                };
                let _ = done.send((item.position, outcome));
            }
        }
    }

    /// The top classes of one batch row of a classifier output.
    fn rank(&self, output: &Tensor, row: usize, rows: usize) -> Vec<Ranked> {
        let scores: &[f32] = output.data.as_slice();
        let classes = scores.len() / rows;
        let mut row_scores = scores[row * classes..(row + 1) * classes].to_vec();
        let softmax = self
            .model
            .softmax
            .unwrap_or_else(|| !is_probability_distribution(&row_scores));
        if softmax {
            softmax_in_place(&mut row_scores);
        }
        let labels = self.model.labels.first().and_then(Option::as_ref);
        top_k(&row_scores, self.top_k)
            .into_iter()
            .map(|class| Ranked {
                index: class.index,
                label: labels.and_then(|l| l.get(class.index)).map(str::to_string),
                probability: class.score,
            })
            .collect()
    }
}

/// Prints each outcome as it completes, in file order, then the summary; the exit code
/// is 1 if any file failed.
fn report(
    model: &LoadedModel,
    preprocessing: &ImagePreprocessing,
    files: &[PathBuf],
    args: &ClassifyArgs,
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
    classify_files(model, preprocessing, files, args, |position, outcome| {
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
    });
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
        model.name,
        model.engine.kind().name(),
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
