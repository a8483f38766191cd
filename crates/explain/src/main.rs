//! `explain`: reloads a `train` run and shows where its model looks, with Grad-CAM.
//!
//! For each image: the class score's gradient with respect to the last conv activation gives
//! the map (`cam`), which is written as the tutorial's three figures: `original.jpg`,
//! `heatmap.jpg` and `superimposed.jpg`. `--accuracy` reports the held-out accuracy instead.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use burn::tensor::activation::softmax;
use burn::tensor::backend::AutodiffBackend;
use cam::figure::{Colormap, heatmap, superimpose};
use cam::postprocess::{Normalization, peak, relu_normalize, upsample};
use cam::{Target, capture, grad_cam};
use clap::Parser;
use data::{Batcher, ImageSet, Sample};
use image::RgbImage;
use model::{Network, SplitModel};
use serde::Serialize;
use train::{DeviceChoice, OnBackend, RunDir, TrainConfig, Weights, dataset};

/// Reload a trained run and show where its model looks (Grad-CAM).
///
/// Without --image, explains the first --limit images the run held out for validation. Each
/// image gets a folder under --out with original.jpg, heatmap.jpg and superimposed.jpg.
#[derive(Parser, Debug)]
#[command(
    version,
    after_help = "Examples:
  explain                                    # the most recent run under runs/, 8 held-out images
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
    /// Image files to explain instead of held-out images.
    #[arg(long, num_args = 1..)]
    image: Vec<PathBuf>,
    /// How many held-out images to explain.
    #[arg(long, default_value_t = 8)]
    limit: usize,
    /// The class to explain, by index or name [default: each image's predicted class].
    #[arg(long, conflicts_with = "top_k")]
    class: Option<String>,
    /// Explain each image's N most likely classes (folders get a `_topN` suffix).
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
    /// ReLU, min-max normalisation and resizing to the model input: pytorch-grad-cam's array).
    #[arg(long)]
    save_raw: bool,
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
    let job = Job {
        args: &args,
        run: &run,
        config: &config,
        class_names: &class_names,
        targets,
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

/// An image to explain: as shown (its own size) and as the model takes it.
struct Item {
    name: String,
    original: RgbImage,
    sample: Sample,
    /// The true class, for held-out images.
    label: Option<usize>,
}

/// One line of summary.json / summary.csv.
#[derive(Serialize)]
struct Record {
    name: String,
    path: Option<PathBuf>,
    label: Option<String>,
    predicted: String,
    probability: f32,
    top5: Vec<(String, f32)>,
    target: String,
    /// `[x, y]` of the map's maximum, in pixels of the original image.
    peak: [usize; 2],
    empty_map: bool,
}

/// A float32 `height × width` array in NumPy's format.
fn write_npy(path: &Path, values: &[f32], [height, width]: [usize; 2]) -> Result<()> {
    use npyz::WriterBuilder;
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut writer = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&[height as u64, width as u64])
        .writer(std::io::BufWriter::new(file))
        .begin_nd()?;
    writer.extend(values.iter().copied())?;
    writer
        .finish()
        .with_context(|| format!("writing {}", path.display()))
}

fn write_summary(out: &Path, records: &[Record]) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let json = serde_json::to_string_pretty(records).expect("records serialise");
    std::fs::write(out.join("summary.json"), json)
        .with_context(|| format!("writing {}/summary.json", out.display()))?;
    let mut csv = String::from("name,path,label,predicted,probability,target,peak_x,peak_y\n");
    for r in records {
        let path = r
            .path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        csv += &format!(
            "{},{},{},{},{:.6},{},{},{}\n",
            r.name,
            path.replace(',', "_"),
            r.label.as_deref().unwrap_or(""),
            r.predicted,
            r.probability,
            r.target,
            r.peak[0],
            r.peak[1]
        );
    }
    std::fs::write(out.join("summary.csv"), csv)
        .with_context(|| format!("writing {}/summary.csv", out.display()))
}

struct Job<'a> {
    args: &'a Args,
    run: &'a RunDir,
    config: &'a TrainConfig,
    class_names: &'a [String],
    /// One set of figures per target and image.
    targets: Vec<Target>,
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
            return self.print_accuracy(&model, &batcher, &device);
        }
        let model = self.run.load_model::<B>(self.args.weights, &device)?;
        let items = self.items()?;
        let out = self
            .args
            .out
            .clone()
            .unwrap_or_else(|| self.run.path.join("explain"));
        let mut records = Vec::new();
        for chunk in items.chunks(16) {
            for &target in &self.targets {
                records.extend(
                    self.explain_batch::<B>(&model, chunk, target, &batcher, &out, &device)?,
                );
            }
        }
        write_summary(&out, &records)?;
        println!("figures and summary.json in {}", out.display());
        Ok(())
    }
}

impl Job<'_> {
    fn items(&self) -> Result<Vec<Item>> {
        let size = self.config.data.image_size;
        if self.args.image.is_empty() {
            let data = dataset::load(&self.config.data, self.config.seed, &())
                .context("reloading the run's data")?;
            let [h, w] = size;
            return Ok(data
                .validation
                .samples
                .into_iter()
                .take(self.args.limit)
                .enumerate()
                .map(|(i, sample)| Item {
                    name: format!("{i:03}_label_{}", self.class_names[sample.label]),
                    original: RgbImage::from_raw(w as u32, h as u32, sample.pixels.clone())
                        .expect("sample size"),
                    label: Some(sample.label),
                    sample,
                })
                .collect());
        }
        self.args
            .image
            .iter()
            .enumerate()
            .map(|(i, path)| {
                let original = data::folder::decode_rgb(path)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                let pixels = data::folder::resize_rgb(original.clone(), size);
                let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("image");
                Ok(Item {
                    name: format!("{i:03}_{stem}"),
                    original,
                    sample: Sample {
                        pixels,
                        label: 0,
                        path: Some(path.clone()),
                        objects: vec![],
                    },
                    label: None,
                })
            })
            .collect()
    }

    /// One forward and one backward for the batch, then the figures of each image.
    fn explain_batch<B: AutodiffBackend>(
        &self,
        model: &Network<B>,
        items: &[Item],
        target: Target,
        batcher: &Batcher,
        out: &Path,
        device: &B::Device,
    ) -> Result<Vec<Record>> {
        let samples: Vec<_> = items.iter().map(|item| &item.sample).enumerate().collect();
        let (images, _) = batcher
            .batch(&samples, 0)
            .to_tensors::<B::InnerBackend>(device);
        model
            .input_shape()
            .check(model.architecture(), images.dims())?;
        let captured = capture(model, images, &vec![target; items.len()])?;
        let probabilities = softmax(captured.logits.clone(), 1)
            .into_data()
            .to_vec::<f32>()
            .expect("f32");
        let [_, _, h, w] = captured.activations.dims();
        let maps = grad_cam(captured.activations, captured.gradients)
            .into_data()
            .to_vec::<f32>()
            .expect("f32");
        let classes = self.class_names.len();
        let mut records = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let map = relu_normalize(&maps[i * h * w..(i + 1) * h * w], self.args.normalize);
            let (width, height) = item.original.dimensions();
            let full = upsample(
                &map,
                [h, w],
                [height as usize, width as usize],
                self.args.normalize,
            );
            let heat = heatmap(&full, width, height, self.args.colormap);
            let name = match target {
                Target::Ranked(n) if self.targets.len() > 1 => {
                    format!("{}_top{}", item.name, n + 1)
                }
                _ => item.name.clone(),
            };
            let folder = out.join(&name);
            std::fs::create_dir_all(&folder)
                .with_context(|| format!("creating {}", folder.display()))?;
            for (file, picture) in [
                ("original.jpg", &item.original),
                ("heatmap.jpg", &heat),
                (
                    "superimposed.jpg",
                    &superimpose(&item.original, &heat, self.args.alpha),
                ),
            ] {
                picture
                    .save(folder.join(file))
                    .with_context(|| format!("writing {}", folder.join(file).display()))?;
            }
            if self.args.save_raw {
                let raw = &maps[i * h * w..(i + 1) * h * w];
                let [mh, mw] = self.config.data.image_size;
                let minmax = Normalization::MinMax;
                let cam = upsample(&relu_normalize(raw, minmax), [h, w], [mh, mw], minmax);
                write_npy(&folder.join("cam_raw.npy"), raw, [h, w])?;
                write_npy(&folder.join("cam.npy"), &cam, [mh, mw])?;
            }
            let row = &probabilities[i * classes..(i + 1) * classes];
            let predicted = argmax(row);
            let target = captured.targets[i];
            let (x, y) = peak(&full, width as usize);
            let empty = if map.iter().all(|&v| v == 0.0) {
                " (empty map: no positive evidence)"
            } else {
                ""
            };
            println!(
                "{}: predicted {} ({:.1}%), explained {}, peak at ({x}, {y}){empty}",
                name,
                self.class_names[predicted],
                100.0 * row[predicted],
                self.class_names[target]
            );
            let mut ranked: Vec<(usize, f32)> = row.iter().copied().enumerate().collect();
            ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
            records.push(Record {
                name: name.clone(),
                path: item.sample.path.clone(),
                label: item.label.map(|l| self.class_names[l].clone()),
                predicted: self.class_names[predicted].clone(),
                probability: row[predicted],
                top5: ranked
                    .iter()
                    .take(5)
                    .map(|&(c, p)| (self.class_names[c].clone(), p))
                    .collect(),
                target: self.class_names[target].clone(),
                peak: [x, y],
                empty_map: !empty.is_empty(),
            });
        }
        Ok(records)
    }

    fn print_accuracy<B: Backend>(
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
