//! `explain`: reloads a `train` run and shows where its model looks, with Grad-CAM.
//!
//! image → preprocess → features → classifier → score → backward → map → figures.
//! Files given with `--image` get a folder each (original.jpg, heatmap.jpg, superimposed.jpg);
//! held-out images (`--split`) get the tutorial's per-class folders and an `index.html` gallery.

mod accuracy;
mod explainer;
mod gallery;
mod output;
mod source;

use std::path::PathBuf;

use anyhow::{Result, bail};
use burn::tensor::backend::AutodiffBackend;
use cam::Target;
use cam::figure::Colormap;
use cam::postprocess::Normalization;
use clap::Parser;
use data::Batcher;
use indicatif::{ProgressBar, ProgressStyle};
use model::Network;
use rayon::prelude::*;
use train::{DeviceChoice, OnBackend, RunDir, TrainConfig, Weights};

use explainer::{BatchMaps, argmax, explain_batch, top};
use output::{Layout, Record, Style};
use source::{Item, Split};

/// Reload a trained run and show where its model looks (Grad-CAM).
///
/// With --image, each file gets a folder under --out with original.jpg, heatmap.jpg and
/// superimposed.jpg. Otherwise the first --limit images of a split of the run's data are
/// explained in the tutorial's layout: {originals,heatmaps,superimposed}/<true class>/
/// <index>_label_<predicted>.jpg, with an index.html gallery that opens in any browser.
#[derive(Parser, Debug)]
#[command(
    version,
    after_help = "Examples:
  explain                                    # latest run under runs/, 8 held-out images
  explain --run runs/cats_dogs-001 --split val --limit all
  explain --run runs/cats_dogs-001 --image cat.jpg --class dogs
  explain --accuracy                         # held-out accuracy per class"
)]
struct Args {
    /// Run folder written by `train` [default: the run under runs/ with the newest checkpoint].
    #[arg(long)]
    run: Option<PathBuf>,
    /// Which weights: best, last, or an epoch number.
    #[arg(long, default_value = "best", value_parser = parse_weights)]
    weights: Weights,
    /// Image files to explain instead of the run's images.
    #[arg(long, num_args = 1.., conflicts_with = "split")]
    image: Vec<PathBuf>,
    /// Which of the run's images to explain: val (held out by the run) or test (a data set's
    /// own test set, e.g. CIFAR-10's).
    #[arg(long, value_enum, default_value = "val")]
    split: Split,
    /// How many images of the split to explain, or `all`.
    #[arg(long, default_value = "8", value_parser = parse_limit)]
    limit: usize,
    /// The class to explain, by index or name [default: each image's predicted class].
    #[arg(long, conflicts_with = "top_k")]
    class: Option<String>,
    /// Explain each image's N most likely classes (files get a `_topN` suffix).
    #[arg(long, default_value_t = 1)]
    top_k: usize,
    /// Output folder [default: <run>/explain].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Weight of the heatmap in superimposed.jpg (the tutorial's 0.4).
    #[arg(long, default_value_t = 0.4)]
    alpha: f32,
    /// jet, turbo, viridis or inferno.
    #[arg(long, default_value = "jet")]
    colormap: Colormap,
    /// minmax (pytorch-grad-cam) or max (the tutorial).
    #[arg(long, default_value = "minmax", value_parser = parse_normalization)]
    normalize: Normalization,
    /// Also write cam_raw.npy (the map at feature resolution, before ReLU) and cam.npy (after
    /// ReLU, min-max normalisation and resizing to the model input: pytorch-grad-cam's array),
    /// in each image's folder (--image only).
    #[arg(long, requires = "image")]
    save_raw: bool,
    /// Images per forward/backward pass.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    batch_size: u16,
    /// Report the held-out accuracy per class instead of drawing maps.
    #[arg(long)]
    accuracy: bool,
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

fn parse_limit(s: &str) -> Result<usize, String> {
    match s {
        "all" => Ok(usize::MAX),
        n => n
            .parse()
            .map_err(|_| format!("`{s}`: use a number of images or `all`")),
    }
}

fn parse_normalization(s: &str) -> Result<Normalization, String> {
    match s {
        "minmax" => Ok(Normalization::MinMax),
        "max" => Ok(Normalization::Max),
        _ => Err(format!("`{s}`: use minmax or max")),
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
    let targets = match &args.class {
        None => (0..args.top_k.clamp(1, class_names.len()))
            .map(Target::Ranked)
            .collect(),
        Some(class) => vec![Target::Class(class_index(class, &class_names)?)],
    };
    let out = args.out.clone().unwrap_or_else(|| run.path.join("explain"));
    let job = Job {
        args: &args,
        run: &run,
        config: &config,
        class_names: &class_names,
        targets,
        out,
    };
    args.device.run(job)?
}

fn class_index(class: &str, names: &[String]) -> Result<usize> {
    if let Some(i) = names.iter().position(|n| n == class) {
        return Ok(i);
    }
    match class.parse::<usize>() {
        Ok(i) if i < names.len() => Ok(i),
        _ => bail!(
            "--class {class}: not a class of this run ({})",
            names.join(", ")
        ),
    }
}

struct Job<'a> {
    args: &'a Args,
    run: &'a RunDir,
    config: &'a TrainConfig,
    class_names: &'a [String],
    /// One set of figures per target and image.
    targets: Vec<Target>,
    out: PathBuf,
}

impl OnBackend for Job<'_> {
    type Output = Result<()>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Result<()> {
        let batcher = Batcher {
            image_size: self.config.data.image_size,
            normalization: self.config.data.normalization,
            augmentation: Default::default(),
            seed: self.config.seed,
        };
        if self.args.accuracy {
            let model = self
                .run
                .load_model::<B::InnerBackend>(self.args.weights, &device)?;
            return accuracy::report(
                self.run,
                self.config,
                self.class_names,
                &model,
                &batcher,
                &device,
            );
        }
        let model = self.run.load_model::<B>(self.args.weights, &device)?;
        let size = self.config.data.image_size;
        let (items, layout) = if self.args.image.is_empty() {
            let split = source::split(
                self.run,
                self.config,
                self.args.split,
                self.args.limit,
                self.class_names,
            )?;
            println!(
                "explaining {} of the {} {} images",
                split.items.len(),
                split.total,
                self.args.split.name()
            );
            if split.unreadable > 0 {
                println!(
                    "{} image(s) could not be read and were skipped",
                    split.unreadable
                );
            }
            (split.items, Layout::PerClass)
        } else {
            (source::files(&self.args.image, size)?, Layout::PerImage)
        };
        std::fs::create_dir_all(&self.out)
            .map_err(|e| anyhow::anyhow!("creating {}: {e}", self.out.display()))?;
        let records = self.explain_all::<B>(&model, items, layout, &batcher, &device)?;
        output::write_summary(&self.out, &records)?;
        let title = format!("Grad-CAM · {}", self.run.path.display());
        gallery::write(&self.out, &title, &records)?;
        self.report(&records);
        Ok(())
    }
}

impl Job<'_> {
    /// Batch by batch: read the originals, compute the maps, draw the figures in parallel.
    fn explain_all<B: AutodiffBackend>(
        &self,
        model: &Network<B>,
        mut items: Vec<Item>,
        layout: Layout,
        batcher: &Batcher,
        device: &B::Device,
    ) -> Result<Vec<Record>> {
        let bar = progress_bar(items.len() * self.targets.len());
        let verbose = items.len() <= 32;
        let mut records = Vec::new();
        let mut unreadable = 0;
        for chunk in items.chunks_mut(self.args.batch_size as usize) {
            let size = self.config.data.image_size;
            let failures: Vec<String> = chunk
                .par_iter_mut()
                .filter_map(|item| {
                    let path = item.sample.path.clone();
                    item.load_original(size).err().map(|e| match path {
                        Some(p) => format!("{}: {e}", p.display()),
                        None => e,
                    })
                })
                .collect();
            for failure in &failures {
                bar.suspend(|| eprintln!("skipped {failure}"));
            }
            unreadable += failures.len();
            let ready: Vec<&Item> = chunk.iter().filter(|i| i.original.is_some()).collect();
            if ready.is_empty() {
                continue;
            }
            let samples: Vec<_> = ready.iter().map(|item| &item.sample).collect();
            for &target in &self.targets {
                let maps = explain_batch(model, &samples, target, batcher, device)?;
                for record in self.draw_batch(&ready, &maps, target, layout)? {
                    if verbose {
                        bar.suspend(|| println!("{}", describe(&record)));
                    }
                    records.push(record);
                }
                bar.inc(ready.len() as u64);
            }
        }
        bar.finish_and_clear();
        if unreadable > 0 {
            println!("{unreadable} image(s) could not be read and were skipped");
        }
        Ok(records)
    }

    fn draw_batch(
        &self,
        items: &[&Item],
        maps: &BatchMaps,
        target: Target,
        layout: Layout,
    ) -> Result<Vec<Record>> {
        let style = Style {
            normalization: self.args.normalize,
            colormap: self.args.colormap,
            alpha: self.args.alpha,
        };
        items
            .par_iter()
            .zip(&maps.explained)
            .map(|(item, explained)| {
                let names = self.class_names;
                let predicted = argmax(&explained.probabilities);
                let stem = match target {
                    Target::Ranked(n) if self.targets.len() > 1 => {
                        format!("{}_top{}", item.name, n + 1)
                    }
                    _ => item.name.clone(),
                };
                let class = item.label.map_or("", |l| names[l].as_str());
                let figures = layout.figures(&stem, class, &names[predicted]);
                let original = item.original.as_ref().expect("loaded before drawing");
                let drawn = output::draw(
                    &self.out,
                    &figures,
                    original,
                    &explained.map,
                    maps.map_size,
                    style,
                )?;
                if let (true, Some(folder)) = (self.args.save_raw, &figures.raw_folder) {
                    output::write_raw(
                        &self.out.join(folder),
                        &explained.map,
                        maps.map_size,
                        self.config.data.image_size,
                    )?;
                }
                Ok(Record {
                    name: stem,
                    path: item.sample.path.clone(),
                    label: item.label.map(|l| names[l].clone()),
                    predicted: names[predicted].clone(),
                    probability: explained.probabilities[predicted],
                    top5: top(&explained.probabilities, 5)
                        .into_iter()
                        .map(|(c, p)| (names[c].clone(), p))
                        .collect(),
                    target: names[explained.target].clone(),
                    target_probability: explained.probabilities[explained.target],
                    peak: drawn.peak,
                    empty_map: drawn.empty,
                    figures,
                })
            })
            .collect()
    }

    fn report(&self, records: &[Record]) {
        let labelled: Vec<bool> = records.iter().filter_map(Record::correct).collect();
        if !labelled.is_empty() {
            let correct = labelled.iter().filter(|&&c| c).count();
            println!(
                "{correct}/{} explained images predicted correctly ({:.1}%)",
                labelled.len(),
                100.0 * correct as f64 / labelled.len() as f64
            );
        }
        let empty = records.iter().filter(|r| r.empty_map).count();
        if empty > 0 {
            println!(
                "{empty} map(s) were all zero: nothing in those images raised the explained score"
            );
        }
        println!(
            "figures, summary.json and the gallery: {}",
            self.out.join("index.html").display()
        );
    }
}

fn describe(r: &Record) -> String {
    let truth = r
        .label
        .as_ref()
        .map(|l| format!(" (true {l})"))
        .unwrap_or_default();
    let empty = if r.empty_map {
        " (empty map: no positive evidence)"
    } else {
        ""
    };
    format!(
        "{}: predicted {} ({:.1}%){truth}, explained {}, peak at ({}, {}){empty}",
        r.name,
        r.predicted,
        100.0 * r.probability,
        r.target,
        r.peak[0],
        r.peak[1]
    )
}

/// A bar on the terminal for long work; hidden for a single image and when output is piped.
fn progress_bar(total: usize) -> ProgressBar {
    if total <= 1 {
        return ProgressBar::hidden();
    }
    ProgressBar::new(total as u64).with_style(
        ProgressStyle::with_template("explaining [{bar:30}] {pos}/{len} ({per_sec}, {eta})")
            .expect("valid template")
            .progress_chars("=> "),
    )
}
