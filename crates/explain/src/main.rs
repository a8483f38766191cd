//! `explain`: reloads a `train` run and shows what its model sees in images.
//!
//! This first version reports predictions: the held-out accuracy of a run, per class, and the
//! top classes of given image files. Grad-CAM maps and figures build on the same loading path.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use burn::tensor::activation::softmax;
use burn::tensor::backend::AutodiffBackend;
use clap::Parser;
use data::{Batcher, ImageSet, Sample};
use model::{Network, SplitModel};
use train::{DeviceChoice, OnBackend, RunDir, TrainConfig, Weights, dataset};

/// Reload a trained run and report what its model predicts.
///
/// Without --image, evaluates the run's held-out validation images (the same split `train`
/// held out) and prints the accuracy per class.
#[derive(Parser, Debug)]
#[command(
    version,
    after_help = "Examples:
  explain                                   # the most recent run under runs/
  explain --run runs/cats_dogs-001 --image cat.jpg dog.png --top-k 2"
)]
struct Args {
    /// Run folder written by `train` [default: the run under runs/ with the newest checkpoint].
    #[arg(long)]
    run: Option<PathBuf>,
    /// Which weights: best, last, or an epoch number.
    #[arg(long, default_value = "best", value_parser = parse_weights)]
    weights: Weights,
    /// Image files to classify instead of the validation split.
    #[arg(long, num_args = 1..)]
    image: Vec<PathBuf>,
    /// How many classes to list per image.
    #[arg(long, default_value_t = 3)]
    top_k: usize,
    /// Where the data set is, if it moved since training (replaces the config's data.dir).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
}

fn parse_weights(s: &str) -> Result<Weights, String> {
    match s {
        "best" => Ok(Weights::Best),
        "last" => Ok(Weights::Last),
        n => n
            .parse()
            .map(Weights::Epoch)
            .map_err(|_| format!("`{s}`: use best, last or an epoch number")),
    }
}

fn main() {
    if let Err(error) = run(Args::parse()) {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<()> {
    args.device.check()?;
    let run = match &args.run {
        Some(path) => RunDir::open(path)?,
        None => RunDir::latest("runs".as_ref())?,
    };
    let mut config = run.config()?;
    if let Some(dir) = &args.data_dir {
        config.data.dir = Some(dir.clone());
    }
    let class_names = run.class_names()?;
    let images = if args.image.is_empty() {
        None
    } else {
        Some(read_images(&args.image, &config, &class_names)?)
    };
    args.device.run(Report {
        args: &args,
        run: &run,
        config: &config,
        class_names: &class_names,
        images,
    })?
}

/// The given files, decoded at the run's input size (label unknown: 0).
fn read_images(
    paths: &[PathBuf],
    config: &TrainConfig,
    class_names: &[String],
) -> Result<ImageSet> {
    let samples = paths
        .iter()
        .map(|path| {
            let pixels = data::folder::read_image(path, config.data.image_size)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            Ok(Sample {
                pixels,
                label: 0,
                path: Some(path.clone()),
                objects: vec![],
            })
        })
        .collect::<Result<_>>()?;
    Ok(ImageSet {
        samples,
        class_names: class_names.to_vec(),
        image_size: config.data.image_size,
    })
}

struct Report<'a> {
    args: &'a Args,
    run: &'a RunDir,
    config: &'a TrainConfig,
    class_names: &'a [String],
    images: Option<ImageSet>,
}

impl OnBackend for Report<'_> {
    type Output = Result<()>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Result<()> {
        let model = self
            .run
            .load_model::<B::InnerBackend>(self.args.weights, &device)?;
        let batcher = Batcher {
            image_size: self.config.data.image_size,
            normalization: self.config.data.normalization,
            augmentation: Default::default(),
            seed: self.config.seed,
        };
        match &self.images {
            Some(images) => print_predictions(&model, images, &batcher, self.args.top_k, &device),
            None => self.print_validation(&model, &batcher, &device),
        }
    }
}

impl Report<'_> {
    fn print_validation<B: Backend>(
        &self,
        model: &Network<B>,
        batcher: &Batcher,
        device: &B::Device,
    ) -> Result<()> {
        let data = dataset::load(&self.config.data, self.config.seed, &())
            .context("reloading the run's data")?;
        if data.class_names() != self.class_names {
            bail!(
                "the data set's classes differ from {}/classes.txt",
                self.run.path.display()
            );
        }
        let set = &data.validation;
        if set.is_empty() {
            bail!("the run held out no validation images (data.validation = 0)");
        }
        let predicted = predict(model, set, batcher, device)
            .into_iter()
            .map(|p| argmax(&p));
        let mut per_class = vec![(0usize, 0usize); self.class_names.len()];
        for (sample, guess) in set.samples.iter().zip(predicted) {
            per_class[sample.label].1 += 1;
            per_class[sample.label].0 += usize::from(guess == sample.label);
        }
        let correct: usize = per_class.iter().map(|c| c.0).sum();
        println!(
            "{}: {}/{} held-out images correct ({:.2}%)",
            self.run.path.display(),
            correct,
            set.len(),
            100.0 * correct as f64 / set.len() as f64
        );
        for (name, (right, total)) in self.class_names.iter().zip(per_class) {
            println!(
                "  {name:>16}: {right:>5}/{total:<5} {:6.2}%",
                100.0 * right as f64 / total.max(1) as f64
            );
        }
        Ok(())
    }
}

fn print_predictions<B: Backend>(
    model: &Network<B>,
    images: &ImageSet,
    batcher: &Batcher,
    top_k: usize,
    device: &B::Device,
) -> Result<()> {
    for (sample, probabilities) in images
        .samples
        .iter()
        .zip(predict(model, images, batcher, device))
    {
        let mut ranked: Vec<(usize, f32)> = probabilities.into_iter().enumerate().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        let top: Vec<String> = ranked
            .iter()
            .take(top_k.max(1))
            .map(|(class, p)| format!("{} {:.1}%", images.class_names[*class], 100.0 * p))
            .collect();
        println!(
            "{}: {}",
            sample.path.as_deref().unwrap_or("?".as_ref()).display(),
            top.join(", ")
        );
    }
    Ok(())
}

/// Class probabilities of every image, in batches.
fn predict<B: Backend>(
    model: &Network<B>,
    set: &ImageSet,
    batcher: &Batcher,
    device: &B::Device,
) -> Vec<Vec<f32>> {
    let indexed: Vec<_> = set.samples.iter().enumerate().collect();
    indexed
        .chunks(64)
        .flat_map(|chunk| {
            let (images, _) = batcher.batch(chunk, 0).to_tensors::<B>(device);
            let probabilities = softmax(model.forward(images), 1);
            let classes = probabilities.dims()[1];
            let flat = probabilities
                .into_data()
                .to_vec::<f32>()
                .expect("f32 probabilities");
            flat.chunks(classes)
                .map(<[f32]>::to_vec)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn argmax(values: &[f32]) -> usize {
    values
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i)
        .unwrap_or(0)
}
