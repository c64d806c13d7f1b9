//! `ferroserve accuracy`: how often an engine, a precision, a quantized model or a
//! preprocessing choice changes a classifier's answer, image by image, against a
//! reference (by default the same model on ONNX Runtime in f32).
//!
//! Both models see the same images through the same preprocessing code
//! ([`ImagePreprocessor`], as `serve` runs it); the candidate may decode JPEGs at reduced
//! scale (`--jpeg-draft`). Images are counted per folder, so that photos, their variants
//! and other samples are reported apart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use ferroserve_core::{classification, DataType, ModelRepository, PixelType, Precision, Tensor};
use ferroserve_engine::model::LoadedModel;
use ferroserve_engine::{EngineKind, EngineOptions, Runner};
use ferroserve_vision::ImagePreprocessor;
use serde::Serialize;

use crate::classify::image_files;
use crate::engine::EngineArgs;

#[derive(clap::Args)]
pub struct AccuracyArgs {
    /// Model repository of the candidate (Triton layout). Default: the bundled one.
    #[arg(long, env = "FERROSERVE_MODEL_REPOSITORY")]
    model_repository: Option<PathBuf>,
    /// The candidate model. Default: efficientnet-lite0.
    #[arg(long, default_value = "efficientnet-lite0")]
    model: String,
    /// The candidate's engine and precision.
    #[command(flatten)]
    engine: EngineArgs,
    /// The candidate decodes large JPEGs at reduced scale (preprocess.jpeg_draft), the
    /// reference as its configuration says.
    #[arg(long)]
    jpeg_draft: bool,
    /// Model repository of the reference. Default: the candidate's.
    #[arg(long)]
    reference_model_repository: Option<PathBuf>,
    /// The reference model. Default: the candidate model.
    #[arg(long)]
    reference_model: Option<String>,
    /// The reference's engine.
    #[arg(long, default_value = "onnxruntime")]
    reference_engine: EngineKind,
    /// The reference's precision.
    #[arg(long, default_value = "f32")]
    reference_precision: Precision,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
    /// Image files and folders; each image is counted in the group of its folder's name.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

/// Agreement over one group of images.
#[derive(Debug, Default, Serialize)]
struct Agreement {
    images: usize,
    /// The candidate's top class is the reference's.
    top1: usize,
    /// The candidate's five top classes are the reference's five, in any order.
    top5: usize,
    /// The reference's top class is among the candidate's five.
    top1_in_top5: usize,
    /// The largest difference of one score between the two, over the group.
    max_score_difference: f32,
}

impl Agreement {
    fn add(&mut self, reference: &[f32], candidate: &[f32]) {
        let (reference_top, candidate_top) = (top_k(reference, 5), top_k(candidate, 5));
        self.images += 1;
        self.top1 += usize::from(reference_top[0] == candidate_top[0]);
        let mut same = (reference_top.clone(), candidate_top.clone());
        same.0.sort_unstable();
        same.1.sort_unstable();
        self.top5 += usize::from(same.0 == same.1);
        self.top1_in_top5 += usize::from(candidate_top.contains(&reference_top[0]));
        let difference = reference
            .iter()
            .zip(candidate)
            .map(|(r, c)| (r - c).abs())
            .fold(0.0, f32::max);
        self.max_score_difference = self.max_score_difference.max(difference);
    }

    fn merge(&mut self, other: &Agreement) {
        self.images += other.images;
        self.top1 += other.top1;
        self.top5 += other.top5;
        self.top1_in_top5 += other.top1_in_top5;
        self.max_score_difference = self.max_score_difference.max(other.max_score_difference);
    }

    fn share(&self, count: usize) -> f64 {
        count as f64 / self.images.max(1) as f64
    }
}

/// What one side (candidate or reference) runs.
struct Side {
    model: LoadedModel,
    runner: Box<dyn Runner>,
    preprocessor: ImagePreprocessor,
    input: Tensor,
    output: Vec<Tensor>,
    /// The output that holds the class scores.
    scores: usize,
}

#[derive(Serialize)]
struct Report {
    candidate: String,
    reference: String,
    /// Per folder name.
    groups: BTreeMap<String, Agreement>,
    total: Agreement,
    /// Images either side could not classify, with the reason.
    failed: Vec<(String, String)>,
}

pub fn run(args: AccuracyArgs) -> anyhow::Result<ExitCode> {
    let repository = crate::open_repository(args.model_repository.as_deref())?;
    let other_repository = match &args.reference_model_repository {
        Some(dir) => Some(crate::open_repository(Some(dir))?),
        None => None,
    };
    let mut candidate = Side::load(
        &repository,
        &args.model,
        args.engine.engine,
        &args.engine.options(),
        args.jpeg_draft,
    )?;
    let reference_options = EngineOptions {
        precision: Some(args.reference_precision),
        ..args.engine.options()
    };
    let mut reference = Side::load(
        other_repository.as_ref().unwrap_or(&repository),
        args.reference_model.as_deref().unwrap_or(&args.model),
        Some(args.reference_engine),
        &reference_options,
        false,
    )?;
    let mut report = Report {
        candidate: candidate.describe(args.jpeg_draft),
        reference: reference.describe(false),
        groups: BTreeMap::new(),
        total: Agreement::default(),
        failed: Vec::new(),
    };
    for path in image_files(&args.paths) {
        let scores = std::fs::read(&path)
            .context("reading the file")
            .and_then(|image| Ok((reference.scores(&image)?, candidate.scores(&image)?)));
        match scores {
            Ok((reference_scores, candidate_scores)) => report
                .groups
                .entry(group_of(&path))
                .or_default()
                .add(&reference_scores, &candidate_scores),
            Err(e) => report
                .failed
                .push((path.display().to_string(), format!("{e:#}"))),
        }
    }
    for group in report.groups.values() {
        report.total.merge(group);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    if report.total.images == 0 {
        bail!("no image could be classified");
    }
    Ok(if report.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

impl Side {
    fn load(
        repository: &ModelRepository,
        name: &str,
        engine: Option<EngineKind>,
        options: &EngineOptions,
        jpeg_draft: bool,
    ) -> anyhow::Result<Side> {
        let description = repository.load(name)?;
        let version = description
            .versions
            .last()
            .with_context(|| format!("model '{name}' has no version to load"))?;
        let model = LoadedModel::load(&description, version, engine, options)
            .with_context(|| format!("loading model '{name}' version {}", version.version))?;
        let (Some(mut settings), Some(image_input)) =
            (model.preprocessing.clone(), model.image_input)
        else {
            bail!("model '{name}' declares no image preprocessing (preprocess.* parameters)");
        };
        if model.engine.inputs().len() != 1 {
            bail!("model '{name}' has more inputs than its image input");
        }
        settings.jpeg_draft |= jpeg_draft;
        let spec = &model.engine.inputs()[image_input];
        let shape: Vec<usize> = spec.shape.iter().map(|&d| d.max(1) as usize).collect();
        let mut input = Tensor::with_capacity(spec.dtype, settings.image_bytes());
        input.reshape(spec.dtype, &shape);
        if input.data.len() != settings.image_bytes() {
            bail!("model '{name}': its image input {shape:?} does not hold one preprocessed image");
        }
        let scores = model.labels.iter().position(Option::is_some).unwrap_or(0);
        if model.engine.outputs()[scores].dtype != DataType::Fp32 {
            bail!("model '{name}': its class scores are not FP32");
        }
        let output = model
            .engine
            .outputs()
            .iter()
            .map(|spec| Tensor::with_capacity(spec.dtype, 0))
            .collect();
        Ok(Side {
            runner: model.engine.runner()?,
            preprocessor: ImagePreprocessor::new(settings),
            model,
            input,
            output,
            scores,
        })
    }

    fn describe(&self, jpeg_draft: bool) -> String {
        let draft = if jpeg_draft { ", jpeg_draft" } else { "" };
        format!(
            "{} on {} {}{draft}",
            self.model.name,
            self.model.engine.kind().name(),
            self.model.engine.precision()
        )
    }

    /// The class scores of one encoded image.
    fn scores(&mut self, image: &[u8]) -> anyhow::Result<Vec<f32>> {
        let data = &mut self.input.data;
        match self.preprocessor.settings().pixel_type {
            PixelType::F32 => self
                .preprocessor
                .preprocess_f32(image, data.as_mut_slice::<f32>())?,
            PixelType::U8 => self
                .preprocessor
                .preprocess_u8(image, data.as_bytes_mut())?,
        }
        self.runner.run(&[self.input.view()], &mut self.output)?;
        Ok(self.output[self.scores].data.as_slice::<f32>().to_vec())
    }
}

/// The indices of the `k` largest scores, largest first.
fn top_k(scores: &[f32], k: usize) -> Vec<usize> {
    classification::top_k(scores, k)
        .into_iter()
        .map(|class| class.index)
        .collect()
}

/// The name of the folder an image is in.
fn group_of(path: &Path) -> String {
    path.parent()
        .and_then(Path::file_name)
        .map_or_else(|| ".".into(), |name| name.to_string_lossy().into_owned())
}

fn print_table(report: &Report) {
    println!("candidate: {}", report.candidate);
    println!("reference: {}", report.reference);
    println!(
        "{:<12} {:>6} {:>8} {:>8} {:>13} {:>10}",
        "group", "images", "top-1", "top-5", "top-1 in top-5", "max diff"
    );
    let rows = report.groups.iter().map(|(name, a)| (name.as_str(), a));
    for (name, a) in rows.chain([("total", &report.total)]) {
        println!(
            "{:<12} {:>6} {:>8.4} {:>8.4} {:>14.4} {:>10.4}",
            name,
            a.images,
            a.share(a.top1),
            a.share(a.top5),
            a.share(a.top1_in_top5),
            a.max_score_difference
        );
    }
    for (path, reason) in &report.failed {
        eprintln!("error: {path}: {reason}");
    }
}
