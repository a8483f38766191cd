//! `explain`: reloads a `train` run, or a pretrained PyTorch model, and shows where it looks,
//! with Grad-CAM.
//!
//! image → preprocess → features → classifier → score → backward → map → figures.
//! Files given with `--image` get a folder each (original.jpg, heatmap.jpg, superimposed.jpg);
//! held-out images (`--split`) get the tutorial's per-class folders and an `index.html` gallery.

mod accuracy;
mod evaluate;
mod explainer;
mod gallery;
mod grid;
mod output;
mod progress;
mod source;
mod subject;

use std::path::PathBuf;

use anyhow::{Result, bail};
use burn::prelude::Backend;
use burn::tensor::backend::AutodiffBackend;
use cam::figure::Colormap;
use cam::postprocess::Normalization;
use cam::{Method, Target};
use clap::Parser;
use rayon::prelude::*;
use train::{DeviceChoice, OnBackend, Weights};

use explainer::{BatchMaps, argmax, explain_batch, top};
use output::{Layout, Record, Style};
use source::{Item, Split};
use subject::{ModelSource, Subject};

/// Show where a trained run, or a pretrained PyTorch model, looks (Grad-CAM).
///
/// With --image, each file gets a folder under --out with original.jpg, heatmap.jpg and
/// superimposed.jpg. Otherwise --limit images of a split of the run's data (or, for --arch, of
/// --data-dir) are explained in the tutorial's layout: {originals,heatmaps,superimposed}/
/// <true class>/<index>_label_<predicted>.jpg, with an index.html gallery for any browser.
#[derive(Parser, Debug)]
#[command(
    version,
    after_help = "Examples:
  explain                                    # latest run under runs/, 8 held-out images
  explain --run runs/cats_dogs-001 --split val --limit all
  explain --run runs/cats_dogs-001 --image cat.jpg --class dogs
  explain --accuracy                         # held-out accuracy per class
  explain --arch vgg19 --weights vgg19-dcbb9e9d.pth --image elephant.jpeg
  explain --arch resnet20 --weights resnet20.th --data-dir cifar10-jpeg/train --accuracy"
)]
struct Args {
    /// Run folder written by `train` [default: the run under runs/ with the newest checkpoint].
    #[arg(long)]
    run: Option<PathBuf>,
    /// A run's weights: best, last or an epoch number [default: best]; with --arch, the
    /// PyTorch file (.pth zip or legacy pickle, .th, .safetensors).
    #[arg(long)]
    weights: Option<String>,
    /// Explain a pretrained PyTorch model of this architecture instead of a run: vgg11..vgg19
    /// (and _bn), resnet18..resnet152, resnet20..resnet110 (CIFAR), efficientnet_lite0.
    #[arg(long, conflicts_with_all = ["run", "split"])]
    arch: Option<String>,
    /// Class names for --arch, one per line [default: ImageNet for 1000 classes, CIFAR-10 for 10].
    #[arg(long, requires = "arch")]
    labels: Option<PathBuf>,
    /// For --arch: the input size, `224` or `HxW`, instead of the architecture's default.
    #[arg(long, requires = "arch", value_parser = parse_size)]
    input_size: Option<[usize; 2]>,
    /// For --arch: per-channel mean of RGB / 255, `r,g,b`, instead of the weights' default.
    #[arg(long, requires = "arch", value_parser = parse_triple)]
    mean: Option<[f32; 3]>,
    /// For --arch: per-channel standard deviation, `r,g,b`.
    #[arg(long, requires = "arch", value_parser = parse_triple)]
    std: Option<[f32; 3]>,
    /// Image files to explain instead of the run's images.
    #[arg(long, num_args = 1.., conflicts_with = "split")]
    image: Vec<PathBuf>,
    /// Which of the run's images to explain: val (held out by the run) or test (a data set's
    /// own test set, e.g. CIFAR-10's) [default: val].
    #[arg(long, value_enum)]
    split: Option<Split>,
    /// How many images of the split to explain, or `all`.
    #[arg(long, default_value = "8", value_parser = parse_limit)]
    limit: usize,
    /// The class to explain, by index or name [default: each image's predicted class].
    #[arg(long, conflicts_with = "top_k")]
    class: Option<String>,
    /// CAM method(s), comma-separated, or `all`: gradcam, gradcam++, xgradcam, hirescam,
    /// layercam, gradcam-elementwise, eigencam, eigengradcam, scorecam, ablationcam. With
    /// several, each writes its own folder <out>/<method>/.
    #[arg(long, default_value = "gradcam", value_delimiter = ',', value_parser = parse_method)]
    method: Vec<Vec<Method>>,
    /// pytorch-grad-cam's eigen_smooth: the first principal component of the channels'
    /// contributions instead of their sum (less noise, sign by convention).
    #[arg(long)]
    eigen_smooth: bool,
    /// pytorch-grad-cam's aug_smooth: the mean map of the image and its mirror image, each at
    /// input intensity ×0.9, ×1 and ×1.1 (six captures per batch).
    #[arg(long)]
    aug_smooth: bool,
    /// Explain each image's N most likely classes (files get a `_topN` suffix).
    #[arg(long, default_value_t = 1)]
    top_k: usize,
    /// Output folder [default: <run>/explain, or explained/<arch>].
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
    /// Score the methods (and a random and a centred-Gaussian baseline map) on the images with
    /// Average Drop / Increase in Confidence, deletion / insertion AUC and, where boxes are
    /// known (synthetic shapes), the pointing games; writes evaluation.csv and .md.
    #[arg(long, conflicts_with_all = ["accuracy", "top_k"])]
    evaluate: bool,
    /// Steps of the deletion / insertion curves (--evaluate).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    steps: u16,
    /// Images per forward/backward pass.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    batch_size: u16,
    /// Report the accuracy per class (on the run's held-out images, or on --data-dir) instead
    /// of drawing maps.
    #[arg(long)]
    accuracy: bool,
    /// For a run: where its data set is, if it moved since training. For --arch: a folder
    /// <root>/<class>/*.jpg whose class folders carry the model's class names.
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

fn parse_method(s: &str) -> Result<Vec<Method>, String> {
    match s {
        "all" => Ok(Method::ALL.to_vec()),
        name => name.parse().map(|m| vec![m]),
    }
}

fn parse_size(s: &str) -> Result<[usize; 2], String> {
    let sides: Vec<usize> = s
        .split('x')
        .map(|n| {
            n.parse()
                .map_err(|_| format!("`{s}`: use 224 or HxW, e.g. 240x320"))
        })
        .collect::<Result<_, _>>()?;
    match sides[..] {
        [side] if side > 0 => Ok([side, side]),
        [h, w] if h > 0 && w > 0 => Ok([h, w]),
        _ => Err(format!("`{s}`: use 224 or HxW, e.g. 240x320")),
    }
}

fn parse_triple(s: &str) -> Result<[f32; 3], String> {
    let values: Vec<f32> = s
        .split(',')
        .map(|v| {
            v.trim()
                .parse()
                .map_err(|_| format!("`{s}`: use three numbers, r,g,b"))
        })
        .collect::<Result<_, _>>()?;
    values
        .try_into()
        .map_err(|_| format!("`{s}`: use three numbers, r,g,b"))
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
    let source = match &args.arch {
        Some(architecture) => {
            let Some(file) = &args.weights else {
                bail!("--arch {architecture} needs --weights FILE (a .pth, .th or .safetensors)");
            };
            if args.image.is_empty() && args.data_dir.is_none() {
                bail!("--arch needs images: --image FILE... or --data-dir FOLDER");
            }
            ModelSource::Pretrained {
                architecture: architecture.clone(),
                file: file.into(),
                labels: args.labels.clone(),
                input_size: args.input_size,
                mean: args.mean,
                std: args.std,
            }
        }
        None => ModelSource::Run {
            path: args.run.clone(),
            weights: parse_weights(args.weights.as_deref().unwrap_or("best"))
                .map_err(|e| anyhow::anyhow!("--weights {e}"))?,
            data_dir: args.data_dir.clone(),
        },
    };
    args.device.run(Job {
        args: &args,
        source,
    })?
}

struct Job<'a> {
    args: &'a Args,
    source: ModelSource,
}

impl OnBackend for Job<'_> {
    type Output = Result<()>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Result<()> {
        if self.args.accuracy {
            return self.accuracy::<B::InnerBackend>(&device);
        }
        let subject = self.source.open::<B>(&device)?;
        let targets = match &self.args.class {
            None => (0..self.args.top_k.clamp(1, subject.class_names.len()))
                .map(Target::Ranked)
                .collect(),
            Some(class) => vec![Target::Class(subject.class_index(class)?)],
        };
        let (items, layout) = self.items(&subject)?;
        let mut methods: Vec<Method> = self.args.method.iter().flatten().copied().collect();
        methods.dedup();
        let out = self
            .args
            .out
            .clone()
            .unwrap_or_else(|| subject.default_out());
        std::fs::create_dir_all(&out)
            .map_err(|e| anyhow::anyhow!("creating {}: {e}", out.display()))?;
        if self.args.evaluate {
            let samples: Vec<&data::Sample> = items.iter().map(|item| &item.sample).collect();
            let evaluation = evaluate::evaluate(
                &subject.model,
                &subject.batcher(),
                &samples,
                &methods,
                evaluate::Settings {
                    target: targets[0],
                    steps: self.args.steps as usize,
                    eigen_smooth: self.args.eigen_smooth,
                    batch: self.args.batch_size as usize,
                },
                &device,
            )?;
            return evaluation.report(&out);
        }
        let explainer = Explainer {
            args: self.args,
            subject: &subject,
            targets,
            methods,
            out,
        };
        let per_method = explainer.explain_all(items, layout, &device)?;
        for (&method, records) in explainer.methods.iter().zip(&per_method) {
            let out = explainer.out_for(method);
            output::write_summary(&out, records)?;
            let title = format!("{method} · {}", subject.title());
            gallery::write(&out, &title, records)?;
            explainer.report(method, records);
        }
        if explainer.methods.len() > 1 {
            let folders: Vec<PathBuf> = explainer
                .methods
                .iter()
                .map(|&m| explainer.out_for(m))
                .collect();
            let folders: Vec<&std::path::Path> = folders.iter().map(PathBuf::as_path).collect();
            let columns: Vec<&[Record]> = per_method.iter().map(Vec::as_slice).collect();
            grid::write(&explainer.out, &folders, &columns)?;
            let names: Vec<&str> = explainer.methods.iter().map(|m| m.name()).collect();
            println!(
                "{}: images down; original, {} across",
                explainer.out.join("grid.jpg").display(),
                names.join(", ")
            );
        }
        Ok(())
    }
}

impl Job<'_> {
    fn accuracy<B: Backend>(&self, device: &B::Device) -> Result<()> {
        let subject = self.source.open::<B>(device)?;
        let (set, what) = match (&subject.origin, &self.args.data_dir) {
            (subject::Origin::Pretrained { .. }, Some(root)) => (
                accuracy::folder(root, subject.image_size, &subject.class_names)?,
                "images",
            ),
            _ => {
                let (run, config) = subject.run()?;
                (
                    accuracy::held_out(run, config, &subject.class_names)?,
                    "held-out images",
                )
            }
        };
        accuracy::report(
            &subject.title(),
            what,
            &set,
            &subject.model,
            &subject.batcher(),
            device,
        )
    }

    /// The images to explain, and how their figures are laid out.
    fn items<B: Backend>(&self, subject: &Subject<B>) -> Result<(Vec<Item>, Layout)> {
        if !self.args.image.is_empty() {
            let items = source::files(&self.args.image, subject.image_size)?;
            return Ok((items, Layout::PerImage));
        }
        let (split, name) = match (&subject.origin, &self.args.data_dir) {
            (subject::Origin::Pretrained { .. }, Some(root)) => (
                source::folder(
                    root,
                    self.args.limit,
                    &subject.class_names,
                    subject.image_size,
                )?,
                root.display().to_string(),
            ),
            _ => {
                let which = self.args.split.unwrap_or(Split::Val);
                let split =
                    source::split(subject.run()?, which, self.args.limit, &subject.class_names)?;
                (split, which.name().to_string())
            }
        };
        println!(
            "explaining {} of the {} {name} images",
            split.items.len(),
            split.total,
        );
        if split.unreadable > 0 {
            println!(
                "{} image(s) could not be read and were skipped",
                split.unreadable
            );
        }
        Ok((split.items, Layout::PerClass))
    }
}

/// Draws the maps of one model for one set of targets into one folder.
struct Explainer<'a, B: AutodiffBackend> {
    args: &'a Args,
    subject: &'a Subject<B>,
    /// One set of figures per target and image.
    targets: Vec<Target>,
    methods: Vec<Method>,
    out: PathBuf,
}

impl<B: AutodiffBackend> Explainer<'_, B> {
    /// Where a method's figures go: the output folder, or a folder per method when several.
    fn out_for(&self, method: Method) -> PathBuf {
        if self.methods.len() > 1 {
            self.out.join(method.name())
        } else {
            self.out.clone()
        }
    }

    /// Batch by batch: read the originals, capture once, compute every method's maps, draw the
    /// figures in parallel. The records of each method, in `self.methods` order.
    fn explain_all(
        &self,
        mut items: Vec<Item>,
        layout: Layout,
        device: &B::Device,
    ) -> Result<Vec<Vec<Record>>> {
        let batcher = self.subject.batcher();
        let size = self.subject.image_size;
        let bar = progress::bar("explaining", items.len() * self.targets.len());
        let verbose = items.len() <= 32;
        let mut records = vec![Vec::new(); self.methods.len()];
        let mut unreadable = 0;
        for chunk in items.chunks_mut(self.args.batch_size as usize) {
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
                let maps = explain_batch(
                    &self.subject.model,
                    &samples,
                    target,
                    &self.methods,
                    explainer::Smoothing {
                        eigen: self.args.eigen_smooth,
                        augmentation: self.args.aug_smooth,
                    },
                    &batcher,
                    device,
                )?;
                for ((&method, maps), records) in self.methods.iter().zip(&maps).zip(&mut records) {
                    for record in self.draw_batch(method, &ready, maps, target, layout)? {
                        if verbose {
                            bar.suspend(|| println!("{}", describe(&record)));
                        }
                        records.push(record);
                    }
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
        method: Method,
        items: &[&Item],
        maps: &BatchMaps,
        target: Target,
        layout: Layout,
    ) -> Result<Vec<Record>> {
        let out = self.out_for(method);
        let style = Style {
            normalization: self.args.normalize,
            colormap: self.args.colormap,
            alpha: self.args.alpha,
        };
        items
            .par_iter()
            .zip(&maps.explained)
            .map(|(item, explained)| {
                let names = &self.subject.class_names;
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
                    &out,
                    &figures,
                    original,
                    &explained.map,
                    maps.map_size,
                    style,
                )?;
                if let (true, Some(folder)) = (self.args.save_raw, &figures.raw_folder) {
                    output::write_raw(
                        &out.join(folder),
                        &explained.map,
                        maps.map_size,
                        self.subject.image_size,
                    )?;
                }
                Ok(Record {
                    name: stem,
                    method: method.name().to_string(),
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

    fn report(&self, method: Method, records: &[Record]) {
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
            "{method}: figures, summary.json and the gallery in {}",
            self.out_for(method).join("index.html").display()
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
        "{} [{}]: predicted {} ({:.1}%){truth}, explained {}, peak at ({}, {}){empty}",
        r.name,
        r.method,
        r.predicted,
        100.0 * r.probability,
        r.target,
        r.peak[0],
        r.peak[1]
    )
}
