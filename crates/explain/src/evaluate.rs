//! `--evaluate`: every chosen method, and two maps that know nothing (uniform noise, a centred
//! Gaussian), scored with the same perturbation protocol on the same images. One table,
//! printed and written as evaluation.csv and evaluation.md with the protocol above it.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use burn::module::AutodiffModule;
use burn::prelude::*;
use cam::postprocess::{Normalization, peak, relu_normalize, upsample};
use cam::{Capture, Method, Score, Target, capture_at};
use data::{Batcher, Sample};
use faithfulness::baselines::{centre_gaussian, random_map};
use faithfulness::sanity::{randomise_top, spearman};
use faithfulness::{average_drop_and_increase, deletion_insertion, road};
use model::{AutodiffKernels, Network, SplitModel, class_probabilities};

use crate::curves;

/// Images per forward pass for the perturbed copies.
const CHUNK: usize = 32;

/// What is scored: a CAM method or a baseline map.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Explainer {
    Method(Method),
    Random,
    CentreGaussian,
}

impl Explainer {
    fn name(self) -> String {
        match self {
            Explainer::Method(m) => m.name().to_string(),
            Explainer::Random => "baseline: random".into(),
            Explainer::CentreGaussian => "baseline: centre gaussian".into(),
        }
    }
}

/// Sums over images, per explainer.
#[derive(Default, Clone)]
struct Totals {
    images: usize,
    drop: f32,
    increase: f32,
    deletion: f32,
    insertion: f32,
    /// ROAD: mean change of the target probability, most / least relevant removed first.
    road_morf: f32,
    road_lerf: f32,
    /// Images with a box for their target, peaks inside it, energy inside it.
    boxed: usize,
    hits: usize,
    energy: f32,
    /// Spearman correlations with the maps of the model whose top layer, or every layer, was
    /// re-initialised.
    rho_top: f32,
    rho_all: f32,
    seconds: f64,
    /// Sums of the deletion and insertion curves, point by point.
    deletion_curve: Vec<f32>,
    insertion_curve: Vec<f32>,
}

pub struct Evaluation {
    rows: Vec<(String, Totals)>,
    steps: usize,
    image_size: [usize; 2],
}

/// How the images are scored.
pub struct Settings {
    /// The class each map explains.
    pub target: Target,
    /// Steps of the deletion and insertion curves.
    pub steps: usize,
    /// Methods' maps eigen-smoothed.
    pub eigen_smooth: bool,
    /// Images per capture.
    pub batch: usize,
    /// Where the maps are taken (`SplitModel::layer_names`).
    pub layer: usize,
}

/// Scores `methods` and the baselines on `samples`, rewriting the table in `out` after each
/// batch.
pub fn evaluate<B: AutodiffKernels>(
    out: &Path,
    model: &Network<B>,
    batcher: &Batcher,
    samples: &[&Sample],
    methods: &[Method],
    Settings {
        target,
        steps,
        eigen_smooth,
        batch,
        layer,
    }: Settings,
    device: &B::Device,
) -> Result<Evaluation> {
    let inference = model.valid();
    let probabilities = |x: Tensor<B::InnerBackend, 4>| class_probabilities(inference.forward(x));
    let mut explainers: Vec<Explainer> = methods.iter().map(|&m| Explainer::Method(m)).collect();
    explainers.extend([Explainer::Random, Explainer::CentreGaussian]);
    let mut totals = vec![Totals::default(); explainers.len()];
    let evaluation = |totals: &[Totals]| Evaluation {
        rows: explainers
            .iter()
            .map(|e| e.name())
            .zip(totals.to_vec())
            .collect(),
        steps,
        image_size: batcher.image_size,
    };
    // The same re-initialised weights on every run, so that the sanity columns are reproducible.
    B::seed(device, 0);
    let randomised = [
        randomise_top(model.clone(), 1),
        randomise_top(model.clone(), usize::MAX),
    ];
    let [h, w] = batcher.image_size;
    // One step per image and explainer: a batch through every method can take minutes.
    let bar = crate::progress::bar("evaluating", samples.len() * explainers.len());
    let mut seen = 0;
    for chunk in samples.chunks(batch.max(1)) {
        let images = crate::explainer::input_batch(model, chunk, batcher, device)?;
        let started = Instant::now();
        let captured = capture_at(model, images.clone(), &vec![target; chunk.len()], layer)?;
        // Every method starts from this forward (and backward) pass: it counts in their time.
        let capture_seconds = started.elapsed().as_secs_f64();
        // The sanity check explains the same classes with the randomised models.
        let fixed: Vec<Target> = captured.targets.iter().map(|&t| Target::Class(t)).collect();
        let random_captures = randomised
            .iter()
            .map(|m| Ok((m.valid(), capture_at(m, images.clone(), &fixed, layer)?)))
            .collect::<Result<Vec<_>>>()?;
        // Finer-CAM differentiates its own score: its captures, for the same classes; its own
        // capture counts in its time instead of the shared one.
        let finer = match methods.contains(&Method::FinerCam) {
            true => {
                let finer = |m: &Network<B>| {
                    Method::FinerCam.capture(m, images.clone(), &fixed, layer, Score::Logit)
                };
                let started = Instant::now();
                let own = finer(model)?;
                let seconds = started.elapsed().as_secs_f64();
                let randomised = randomised
                    .iter()
                    .map(|m| Ok((m.valid(), finer(m)?)))
                    .collect::<Result<Vec<_>>>()?;
                Some((own, randomised, seconds))
            }
            false => None,
        };
        let context = BatchInputs {
            images: &images,
            eigen_smooth,
            size: [h, w],
            first_seed: seen,
        };
        for (explainer, total) in explainers.iter().zip(&mut totals) {
            let (captured, random_captures, capture_seconds) = match (explainer, &finer) {
                (Explainer::Method(Method::FinerCam), Some((own, randomised, seconds))) => {
                    (own, randomised, *seconds)
                }
                _ => (&captured, &random_captures, capture_seconds),
            };
            let started = Instant::now();
            let maps = context.maps(*explainer, &inference, captured);
            total.seconds += started.elapsed().as_secs_f64();
            if let Explainer::Method(_) = explainer {
                total.seconds += capture_seconds;
            }
            score(
                total,
                &probabilities,
                &images,
                &maps,
                chunk,
                &captured.targets,
                steps,
            );
            for ((randomised, captured), rho) in random_captures
                .iter()
                .zip([&mut total.rho_top, &mut total.rho_all])
            {
                let other = context.maps(*explainer, randomised, captured);
                *rho += maps
                    .iter()
                    .zip(&other)
                    .map(|(a, b)| spearman(a, b))
                    .sum::<f32>();
            }
            bar.inc(chunk.len() as u64);
        }
        seen += chunk.len();
        // The table so far, after every batch: a long evaluation stopped early keeps its rows.
        evaluation(&totals).write(out)?;
    }
    bar.finish_and_clear();
    Ok(evaluation(&totals))
}

/// Which way each column of the table is better, in its order.
const BETTER: [&str; 12] = ["", "↓", "↑", "↓", "↑", "↓", "↑", "↑", "↑", "↓", "↓", "↓"];

/// Milliseconds with enough digits that a near-free baseline does not read as 0.0.
fn milliseconds(ms: f64) -> String {
    if ms < 0.1 {
        format!("{ms:.3}")
    } else {
        format!("{ms:.1}")
    }
}

/// What every explainer's maps of one batch need.
struct BatchInputs<'a, B: Backend> {
    images: &'a Tensor<B, 4>,
    eigen_smooth: bool,
    size: [usize; 2],
    /// Seed of the first image's random baseline map.
    first_seed: usize,
}

impl<B: Backend> BatchInputs<'_, B> {
    /// Maps in [0, 1] at the input's size, one per image.
    fn maps<M: SplitModel<B>>(
        &self,
        explainer: Explainer,
        model: &M,
        captured: &Capture<B>,
    ) -> Vec<Vec<f32>> {
        let n = captured.targets.len();
        let [_, _, mh, mw] = captured.activations.dims();
        match explainer {
            Explainer::Method(method) => {
                let raw = method.smoothed_map(
                    model,
                    self.images.clone(),
                    captured,
                    CHUNK,
                    self.eigen_smooth,
                );
                let raw = raw.into_data().to_vec::<f32>().expect("f32 maps");
                let minmax = Normalization::MinMax;
                raw.chunks(mh * mw)
                    .map(|m| upsample(&relu_normalize(m, minmax), [mh, mw], self.size, minmax))
                    .collect()
            }
            Explainer::Random => (0..n)
                .map(|i| random_map(self.size, (self.first_seed + i) as u64))
                .collect(),
            Explainer::CentreGaussian => vec![centre_gaussian(self.size); n],
        }
    }
}

fn score<B: Backend>(
    total: &mut Totals,
    probabilities: &dyn Fn(Tensor<B, 4>) -> Tensor<B, 2>,
    images: &Tensor<B, 4>,
    maps: &[Vec<f32>],
    samples: &[&Sample],
    targets: &[usize],
    steps: usize,
) {
    let n = samples.len();
    let [_, c, h, w] = images.dims();
    let confidence = average_drop_and_increase(probabilities, images.clone(), maps, targets);
    total.drop += confidence.average_drop * n as f32;
    total.increase += confidence.increase * n as f32;
    for (i, (map, sample)) in maps.iter().zip(samples).enumerate() {
        let image = images.clone().slice([i..i + 1, 0..c, 0..h, 0..w]);
        let step = (h * w).div_ceil(steps.max(1));
        let curves = deletion_insertion(probabilities, image.clone(), map, targets[i], step, CHUNK);
        total.deletion += curves.deletion_auc();
        total.insertion += curves.insertion_auc();
        add_pointwise(&mut total.deletion_curve, &curves.deletion);
        add_pointwise(&mut total.insertion_curve, &curves.insertion);
        let road = road(
            probabilities,
            image,
            map,
            targets[i],
            (total.images + i) as u64,
        );
        total.road_morf += road.morf;
        total.road_lerf += road.lerf;
        // Pointing games, where the data know the target's box.
        if let Some((_, b)) = sample
            .objects
            .iter()
            .find(|(class, _)| *class == targets[i])
        {
            total.boxed += 1;
            let (x, y) = peak(map, w);
            total.hits += usize::from(b.contains(x, y));
            let inside: f32 = (b.y0..b.y1)
                .flat_map(|y| (b.x0..b.x1).map(move |x| map[y * w + x]))
                .sum();
            let all: f32 = map.iter().sum();
            total.energy += if all > 0.0 { inside / all } else { 0.0 };
        }
    }
    total.images += n;
}

/// `sum += curve`, point by point; an empty sum takes the curve's length.
fn add_pointwise(sum: &mut Vec<f32>, curve: &[f32]) {
    if sum.is_empty() {
        sum.resize(curve.len(), 0.0);
    }
    for (s, v) in sum.iter_mut().zip(curve) {
        *s += v;
    }
}

impl Evaluation {
    /// Each explainer's mean deletion and insertion curves.
    fn mean_curves(&self) -> Vec<curves::MeanCurves<'_>> {
        self.rows
            .iter()
            .map(|(name, t)| {
                let n = t.images.max(1) as f32;
                let mean = |sum: &[f32]| sum.iter().map(|v| v / n).collect();
                curves::MeanCurves {
                    name,
                    deletion: mean(&t.deletion_curve),
                    insertion: mean(&t.insertion_curve),
                }
            })
            .collect()
    }

    fn protocol(&self) -> String {
        let [h, w] = self.image_size;
        format!(
            "Protocol: {} images at {h}×{w}, target = each image's predicted class, maps ReLU + \
             min-max normalised and resized to the input. Average Drop (%, lower is better) and \
             Increase in Confidence (%, higher) on image × map (Grad-CAM++ §5.1). Deletion / \
             insertion AUC (RISE; lower / higher is better): pixels changed in map order in {} \
             steps of {} pixels, deleted to 0 of the normalised input, inserted into an 11×11 box \
             blur. ROAD (remove and debias): the most (MoRF, lower is better) or least (LeRF, higher) \
             relevant 10…90% of the pixels replaced by noisy linear imputation from their \
             neighbours, mean change of the target probability. Pointing game (% of peaks inside the target's box) and energy-based pointing \
             game (% of map mass inside it) where boxes exist. Sanity check (Adebayo et al.): Spearman \
             correlation with the maps of the same model with its top weight layer, or all of \
             them, re-initialised (lower: the map depends on the model). Time: per image, the \
             shared forward + backward pass and the method's own work.",
            self.rows.first().map_or(0, |r| r.1.images),
            self.steps,
            (h * w).div_ceil(self.steps.max(1)),
        )
    }

    fn table(&self) -> Vec<[String; 12]> {
        let mut rows = vec![
            [
                "method",
                "avg drop %",
                "increase %",
                "deletion AUC",
                "insertion AUC",
                "ROAD MoRF",
                "ROAD LeRF",
                "pointing %",
                "energy %",
                "sanity ρ top",
                "sanity ρ all",
                "ms/image",
            ]
            .map(String::from),
        ];
        for (name, t) in &self.rows {
            let n = t.images.max(1) as f32;
            let boxed = |v: f32| {
                if t.boxed > 0 {
                    format!("{:.1}", 100.0 * v / t.boxed as f32)
                } else {
                    "–".into()
                }
            };
            rows.push([
                name.clone(),
                format!("{:.2}", t.drop / n),
                format!("{:.1}", t.increase / n),
                format!("{:.4}", t.deletion / n),
                format!("{:.4}", t.insertion / n),
                format!("{:+.4}", t.road_morf / n),
                format!("{:+.4}", t.road_lerf / n),
                boxed(t.hits as f32),
                boxed(t.energy),
                format!("{:.3}", t.rho_top / n),
                format!("{:.3}", t.rho_all / n),
                milliseconds(1000.0 * t.seconds / f64::from(n)),
            ]);
        }
        rows
    }

    /// The table with each metric's better direction in its header (for people; the CSV keeps
    /// plain names for scripts).
    fn table_with_directions(&self) -> Vec<[String; 12]> {
        let mut table = self.table();
        for (cell, better) in table[0].iter_mut().zip(BETTER) {
            if !better.is_empty() {
                *cell = format!("{cell} {better}");
            }
        }
        table
    }

    /// Prints the table and writes evaluation.csv and evaluation.md into `out`.
    pub fn report(&self, out: &Path) -> Result<()> {
        let table = self.table_with_directions();
        self.write(out)?;
        let widths: Vec<usize> = (0..12)
            .map(|c| {
                table
                    .iter()
                    .map(|r| r[c].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        println!("{}\n", self.protocol());
        for row in &table {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(c, (cell, &width))| match c {
                    0 => format!("{cell:<width$}"),
                    _ => format!("{cell:>width$}"),
                })
                .collect();
            println!("{}", cells.join("  "));
        }
        println!(
            "\ntable in {}; mean deletion / insertion curves in {}",
            out.join("evaluation.md").display(),
            out.join(curves::SVG).display()
        );
        Ok(())
    }

    /// evaluation.csv, evaluation.md and the curves' CSV and SVG in `out`.
    fn write(&self, out: &Path) -> Result<()> {
        let table = self.table();
        let csv: String = table.iter().map(|r| r.join(",") + "\n").collect();
        let mut md = format!(
            "{}\n\n↓ lower is better, ↑ higher is better.\n\n",
            self.protocol()
        );
        for (i, row) in self.table_with_directions().iter().enumerate() {
            let _ = writeln!(md, "| {} |", row.join(" | "));
            if i == 0 {
                let _ = writeln!(md, "|{}", "---|".repeat(12));
            }
        }
        let _ = writeln!(
            md,
            "\n![Mean target probability as pixels are deleted (left) or inserted (right) in \
             each map's order]({})",
            curves::SVG
        );
        let mean_curves = self.mean_curves();
        let svg = curves::svg(&mean_curves)
            .map_err(|e| anyhow::anyhow!("drawing {}: {e}", curves::SVG))?;
        for (file, text) in [
            ("evaluation.csv", csv),
            ("evaluation.md", md),
            (curves::CSV, curves::csv(&mean_curves)),
            (curves::SVG, svg),
        ] {
            std::fs::write(out.join(file), text)
                .with_context(|| format!("writing {}", out.join(file).display()))?;
        }
        Ok(())
    }
}
