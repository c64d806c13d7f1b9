//! The engine alone, in this process: the ceiling a server is measured against.
//!
//! An arrangement is `I` model instances of `T` intra-op threads each: `I` engine
//! sessions, each on its own thread, serving one shared queue. For each concurrency `c`,
//! `c` client threads each submit a request (one prepared batch) to the queue and wait
//! for its result before submitting the next; latency runs from submit to result. No
//! protocol, no copies of the input, no batching across requests: what is left is the
//! engine and a queue. Without `--instances` and `--threads`, every arrangement that
//! `serve --tune` chooses among is measured (on 2 cores: `2x1` and `1x2`), and the best
//! is reported per concurrency.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use ferroserve_core::{DataType, PixelType, Tensor};
use ferroserve_engine::model::LoadedModel;
use ferroserve_engine::{EngineError, EngineOptions};
use ferroserve_runtime::Arrangement;
use ferroserve_vision::ImagePreprocessor;

use super::payload::{self, ExpectedOutput, ModelMeta, Sources, TensorMeta};
use super::report::{Level, Load, Report};
use super::tally::{Failure, FailureKind, Tally};
use super::{BenchArgs, Timing, Window};

/// One request waiting for an instance.
struct Job {
    reply: Sender<Result<(), Failure>>,
}

/// Measures every arrangement at every concurrency of `args`.
pub fn run(args: &BenchArgs) -> anyhow::Result<Report> {
    let Some(dir) = &args.model_repository else {
        bail!("--in-process needs --model-repository");
    };
    let repository = ferroserve_core::ModelRepository::open(dir)
        .map_err(|e| anyhow::anyhow!("model repository {}: {e}", dir.display()))?;
    let description = repository.load(&args.model)?;
    let version = description
        .versions
        .last()
        .with_context(|| format!("model '{}' has no version to load", args.model))?;
    let timing = Timing {
        warmup: args.warmup,
        duration: args.duration,
        timeout: args.timeout,
    };
    let mut levels = Vec::new();
    let (mut engine, mut precision) = (String::new(), String::new());
    for arrangement in arrangements(args) {
        let options = EngineOptions {
            intra_op_threads: arrangement.threads,
            precision: args.precision,
            onnxruntime_library: args.onnxruntime_library.clone(),
            openvino_library: args.openvino_library.clone(),
        };
        let model =
            LoadedModel::load(&description, version, args.engine, &options).with_context(|| {
                format!("loading model '{}' version {}", args.model, version.version)
            })?;
        engine = model.engine.kind().name().to_string();
        precision = model.engine.precision().to_string();
        let (inputs, outputs) = prepare(args, &model)?;
        levels.extend(measure(
            args,
            &model,
            arrangement,
            &inputs,
            &outputs,
            &timing,
        )?);
    }
    Ok(Report {
        target: "in-process".into(),
        model: args.model.clone(),
        protocol: "in-process".into(),
        batch: args.batch,
        warmup: args.warmup,
        duration: args.duration,
        arrivals: None,
        engine: Some(engine),
        precision: Some(precision),
        levels,
    })
}

/// The arrangements to measure: the one given, else `cores`x1 and 1x`cores`. Given only
/// one of `--instances` and `--threads`, the other shares the cores out.
fn arrangements(args: &BenchArgs) -> Vec<Arrangement> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let share = |n: usize| (cores / n).max(1);
    match (args.instances, args.threads) {
        // The arrangements `serve --tune` chooses among.
        (None, None) => Arrangement::candidates(cores),
        (instances, threads) => vec![Arrangement {
            instances: instances.unwrap_or_else(|| share(threads.unwrap_or(1))),
            threads: threads.unwrap_or_else(|| share(instances.unwrap_or(1))),
        }],
    }
}

/// The input tensors of one request, and the outputs a run must produce.
fn prepare(
    args: &BenchArgs,
    model: &LoadedModel,
) -> anyhow::Result<(Vec<Tensor>, Vec<ExpectedOutput>)> {
    let batched = model.max_batch_size() > 0;
    let meta_of = |spec: &ferroserve_core::TensorSpec| {
        let mut shape = spec.shape.clone();
        if batched {
            if let Some(first) = shape.first_mut() {
                *first = -1;
            }
        }
        TensorMeta {
            name: spec.name.clone(),
            datatype: spec.dtype.name().to_string(),
            shape,
        }
    };
    let meta = ModelMeta {
        inputs: model.engine.inputs().iter().map(meta_of).collect(),
        outputs: model.engine.outputs().iter().map(meta_of).collect(),
    };
    let row = match (&args.input, &args.image) {
        (Some(path), _) => Some((
            std::fs::read(path).with_context(|| format!("reading --input {}", path.display()))?,
            format!("--input {}", path.display()),
        )),
        (None, Some(path)) => Some((
            preprocess(model, path)?,
            format!("the preprocessed --image {}", path.display()),
        )),
        (None, None) => None,
    };
    let sources = Sources {
        row: row
            .as_ref()
            .map(|(data, what)| (data.as_slice(), what.clone())),
        image: None,
    };
    let payload = payload::build(&args.model, &meta, args.batch, &sources)?;
    let inputs = payload
        .inputs
        .iter()
        .map(|input| {
            let dtype = DataType::from_name(&input.datatype).expect("an engine's own type");
            let shape: Vec<usize> = input.shape.iter().map(|&d| d as usize).collect();
            let mut tensor = Tensor::with_capacity(dtype, input.data.len());
            tensor.reshape(dtype, &shape);
            tensor.data.as_bytes_mut().copy_from_slice(&input.data);
            tensor
        })
        .collect();
    Ok((inputs, payload.outputs))
}

/// One image decoded and preprocessed into the bytes of one row of the image input.
fn preprocess(model: &LoadedModel, path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    let Some(settings) = model.preprocessing.clone() else {
        bail!(
            "model '{}' declares no image preprocessing (preprocess.* parameters), so --image cannot fill its input; give --input FILE",
            model.name
        );
    };
    let encoded =
        std::fs::read(path).with_context(|| format!("reading --image {}", path.display()))?;
    let mut row = vec![0u8; settings.image_bytes()];
    let mut preprocessor = ImagePreprocessor::new(settings);
    let result = match preprocessor.settings().pixel_type {
        PixelType::F32 => {
            let mut pixels = vec![0f32; row.len() / 4];
            let result = preprocessor.preprocess_f32(&encoded, &mut pixels);
            for (bytes, value) in row.chunks_exact_mut(4).zip(pixels) {
                bytes.copy_from_slice(&value.to_le_bytes());
            }
            result
        }
        PixelType::U8 => preprocessor.preprocess_u8(&encoded, &mut row),
    };
    result.with_context(|| format!("--image {}", path.display()))?;
    Ok(row)
}

/// Starts the arrangement's instances, then measures each concurrency against them.
fn measure(
    args: &BenchArgs,
    model: &LoadedModel,
    arrangement: Arrangement,
    inputs: &[Tensor],
    outputs: &[ExpectedOutput],
    timing: &Timing,
) -> anyhow::Result<Vec<Level>> {
    let (jobs, queue) = crossbeam_channel::unbounded::<Job>();
    std::thread::scope(|scope| {
        let (ready_tx, ready) = crossbeam_channel::bounded(arrangement.instances);
        for _ in 0..arrangement.instances {
            let (queue, ready_tx) = (queue.clone(), ready_tx.clone());
            scope.spawn(move || instance(model, inputs, outputs, &queue, &ready_tx));
        }
        drop(ready_tx);
        // The instances stop once `jobs`, the queue's only sender, is dropped: on return.
        let jobs = jobs;
        for _ in 0..arrangement.instances {
            match ready.recv() {
                Ok(Ok(())) => {}
                Ok(Err(reason)) => bail!("model '{}': {reason}", model.name),
                Err(_) => bail!("model '{}': an instance stopped while starting", model.name),
            }
        }
        let concurrencies = match args.concurrency.as_slice() {
            [] => &[1][..],
            given => given,
        };
        let mut levels = Vec::new();
        for &concurrency in concurrencies {
            let label = format!("{arrangement} c={concurrency}");
            let bar = super::progress_bar(args, &label);
            let replies = AtomicU64::new(0);
            let tally = super::with_progress(&bar, timing, &replies, || {
                clients(concurrency, &jobs, timing, &replies)
            });
            let level = Level {
                load: Load::Concurrency(concurrency),
                arrangement: Some(arrangement.to_string()),
                tally,
                elapsed: timing.duration,
            };
            super::summarize(args, &level);
            levels.push(level);
        }
        Ok(levels)
    })
}

/// `concurrency` client threads submitting to `jobs` for one warm-up and window.
fn clients(concurrency: usize, jobs: &Sender<Job>, timing: &Timing, replies: &AtomicU64) -> Tally {
    let window = Window::after(timing.warmup, timing.duration);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..concurrency)
            .map(|_| scope.spawn(|| client(jobs, window, timing.timeout, replies)))
            .collect();
        let mut tally = Tally::default();
        for worker in workers {
            match worker.join() {
                Ok(worker) => tally.merge(&worker),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        tally
    })
}

fn client(jobs: &Sender<Job>, window: Window, timeout: Duration, replies: &AtomicU64) -> Tally {
    let mut tally = Tally::default();
    let (mut reply, mut result) = crossbeam_channel::bounded(1);
    loop {
        let submitted = Instant::now();
        if submitted >= window.end {
            break;
        }
        if jobs
            .send(Job {
                reply: reply.clone(),
            })
            .is_err()
        {
            break;
        }
        let outcome = match result.recv_timeout(timeout) {
            Ok(outcome) => outcome,
            Err(RecvTimeoutError::Timeout) => {
                // The late result must not answer the next job.
                (reply, result) = crossbeam_channel::bounded(1);
                Err(Failure::new(
                    FailureKind::Timeout,
                    format!("no result within {timeout:?}"),
                ))
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let done = Instant::now();
        replies.fetch_add(1, Ordering::Relaxed);
        if window.contains(done) {
            tally.record(&outcome, done - submitted);
        }
    }
    tally
}

/// One model instance: its own engine session, running the prepared inputs for each
/// job until the queue closes. Says on `ready` whether it could start, after one run
/// that warms the session up and shows the inputs fit.
fn instance(
    model: &LoadedModel,
    inputs: &[Tensor],
    expected: &[ExpectedOutput],
    queue: &Receiver<Job>,
    ready: &Sender<Result<(), String>>,
) {
    let mut runner = match model.engine.runner() {
        Ok(runner) => runner,
        Err(e) => {
            let _ = ready.send(Err(e.to_string()));
            return;
        }
    };
    let views: Vec<_> = inputs.iter().map(Tensor::view).collect();
    let mut outputs = vec![Tensor::with_capacity(DataType::Fp32, 0); model.engine.outputs().len()];
    let mut run = || -> Result<(), Failure> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            runner.run(&views, &mut outputs)
        }))
        .unwrap_or_else(|_| Err(EngineError::Run("the engine panicked".into())))
        .map_err(|e| Failure::new(FailureKind::Engine, e.to_string()))?;
        check_outputs(expected, &outputs)
    };
    if let Err(failure) = run() {
        let _ = ready.send(Err(failure.detail));
        return;
    }
    let _ = ready.send(Ok(()));
    for job in queue {
        let _ = job.reply.send(run());
    }
}

fn check_outputs(expected: &[ExpectedOutput], outputs: &[Tensor]) -> Result<(), Failure> {
    for (expected, output) in expected.iter().zip(outputs) {
        let size = output.data.len();
        let wrong = match expected.bytes {
            Some(bytes) => size != bytes,
            None => size == 0,
        };
        if wrong {
            return Err(Failure::new(
                FailureKind::BadReply,
                format!(
                    "output '{}' has {size} bytes, expected {:?}",
                    expected.name, expected.bytes
                ),
            ));
        }
    }
    Ok(())
}
