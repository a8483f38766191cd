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
use faithfulness::{
    ARCC_ROAD_PERCENTILES, arcc, coherency, complexity, confidence_changes, deletion_insertion,
    road,
};
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

/// One image's scores under one explainer: a row of evaluation-images.csv. The table's means
/// are sums of these rows in image order, so that shards merged give the table of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageScores {
    /// Position among all the evaluated images (shards included).
    pub position: usize,
    /// Average Drop's term, in %.
    drop: f32,
    increased: bool,
    deletion: f32,
    insertion: f32,
    /// ROAD: change of the target probability, most / least relevant removed first.
    road_morf: f32,
    road_lerf: f32,
    /// Where the data know the target's box: whether the map's peak is inside it, and the share
    /// of the map's mass inside it.
    in_box: Option<(bool, f32)>,
    /// Spearman correlations with the maps of the model whose top layer, or every layer, was
    /// re-initialised.
    rho_top: f32,
    rho_all: f32,
    /// ARCC's terms: the map's Complexity and Coherency, and ARCC itself.
    complexity: f32,
    coherency: f32,
    arcc: f32,
    /// The image's share of its batch's time.
    seconds: f64,
    deletion_curve: Vec<f32>,
    insertion_curve: Vec<f32>,
}

/// Sums over one explainer's images, in image order.
#[derive(Default)]
struct Totals {
    images: usize,
    drop: f32,
    increases: usize,
    deletion: f32,
    insertion: f32,
    road_morf: f32,
    road_lerf: f32,
    boxed: usize,
    hits: usize,
    energy: f32,
    rho_top: f32,
    rho_all: f32,
    complexity: f32,
    coherency: f32,
    arcc: f32,
    seconds: f64,
    /// Sums of the deletion and insertion curves, point by point.
    deletion_curve: Vec<f32>,
    insertion_curve: Vec<f32>,
}

impl Totals {
    fn of(scores: &[ImageScores]) -> Totals {
        let mut t = Totals::default();
        for s in scores {
            t.images += 1;
            t.drop += s.drop;
            t.increases += usize::from(s.increased);
            t.deletion += s.deletion;
            t.insertion += s.insertion;
            t.road_morf += s.road_morf;
            t.road_lerf += s.road_lerf;
            if let Some((hit, energy)) = s.in_box {
                t.boxed += 1;
                t.hits += usize::from(hit);
                t.energy += energy;
            }
            t.rho_top += s.rho_top;
            t.rho_all += s.rho_all;
            t.complexity += s.complexity;
            t.coherency += s.coherency;
            t.arcc += s.arcc;
            t.seconds += s.seconds;
            add_pointwise(&mut t.deletion_curve, &s.deletion_curve);
            add_pointwise(&mut t.insertion_curve, &s.insertion_curve);
        }
        t
    }
}

pub struct Evaluation {
    rows: Vec<(String, Vec<ImageScores>)>,
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
    /// Position of the first image among all the evaluated ones (a shard's first image): the
    /// random baseline's and ROAD's seeds follow it, so that shards draw as one run does.
    pub first_position: usize,
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
        first_position,
    }: Settings,
    device: &B::Device,
) -> Result<Evaluation> {
    let inference = model.valid();
    let probabilities = |x: Tensor<B::InnerBackend, 4>| class_probabilities(inference.forward(x));
    let mut explainers: Vec<Explainer> = methods.iter().map(|&m| Explainer::Method(m)).collect();
    explainers.extend([Explainer::Random, Explainer::CentreGaussian]);
    let mut scores: Vec<Vec<ImageScores>> = vec![Vec::new(); explainers.len()];
    let evaluation = |scores: &[Vec<ImageScores>]| Evaluation {
        rows: explainers
            .iter()
            .map(|e| e.name())
            .zip(scores.to_vec())
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
    let mut position = first_position;
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
        let context = BatchInputs {
            images: &images,
            eigen_smooth,
            size: [h, w],
            first_position: position,
        };
        for (explainer, scores) in explainers.iter().zip(&mut scores) {
            // Finer-CAM and Smooth Grad-CAM++ take captures of their own (for the same
            // classes), whose time counts instead of the shared one's.
            let own = match explainer {
                Explainer::Method(method) if method.has_own_capture() => {
                    let capture = |m: &Network<B>| {
                        method.capture(m, images.clone(), &fixed, layer, Score::Logit)
                    };
                    let started = Instant::now();
                    let own = capture(model)?;
                    let seconds = started.elapsed().as_secs_f64();
                    let randomised = randomised
                        .iter()
                        .map(|m| Ok((m.valid(), capture(m)?)))
                        .collect::<Result<Vec<_>>>()?;
                    Some((own, randomised, seconds))
                }
                _ => None,
            };
            let (captured, random_captures, capture_seconds) = match &own {
                Some((own, randomised, seconds)) => (own, randomised, *seconds),
                None => (&captured, &random_captures, capture_seconds),
            };
            let started = Instant::now();
            let maps = context.maps(*explainer, &inference, captured);
            let mut seconds = started.elapsed().as_secs_f64();
            if let Explainer::Method(_) = explainer {
                seconds += capture_seconds;
            }
            // Sanity: the same explainer on the model with its top layer, then every layer,
            // re-initialised.
            let sanity: Vec<Vec<f32>> = random_captures
                .iter()
                .map(|(randomised, captured)| {
                    let other = context.maps(*explainer, randomised, captured);
                    maps.iter()
                        .zip(&other)
                        .map(|(a, b)| spearman(a, b))
                        .collect()
                })
                .collect();
            // Coherency: the explainer's maps of the images masked by its maps.
            let masked = context.masked(&maps);
            let remapped = {
                let inputs = BatchInputs {
                    images: &masked,
                    ..context
                };
                match explainer {
                    Explainer::Method(method) => {
                        let own =
                            method.capture(model, masked.clone(), &fixed, layer, Score::Logit)?;
                        inputs.maps(*explainer, &inference, &own)
                    }
                    _ => inputs.maps(*explainer, &inference, captured),
                }
            };
            let related = Related {
                sanity: [&sanity[0], &sanity[1]],
                remapped: &remapped,
            };
            let batch_scores = context.score(
                &probabilities,
                &maps,
                chunk,
                &captured.targets,
                related,
                steps,
                seconds,
            );
            scores.extend(batch_scores);
            bar.inc(chunk.len() as u64);
        }
        position += chunk.len();
        // The table so far, after every batch: a long evaluation stopped early keeps its rows.
        evaluation(&scores).write(out)?;
    }
    bar.finish_and_clear();
    Ok(evaluation(&scores))
}

/// Columns of the table.
const COLUMNS: usize = 15;

/// Which way each column of the table is better, in its order.
const BETTER: [&str; COLUMNS] = [
    "", "↓", "↑", "↓", "↑", "↓", "↑", "↑", "↑", "↓", "↓", "↓", "↑", "↑", "↓",
];

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
    /// Position of the batch's first image: the seed of its random baseline map and of its
    /// ROAD noise.
    first_position: usize,
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
                .map(|i| random_map(self.size, (self.first_position + i) as u64))
                .collect(),
            Explainer::CentreGaussian => vec![centre_gaussian(self.size); n],
        }
    }
}

/// What an explainer's maps are compared with, per image: the sanity check's correlations
/// (top layer, every layer re-initialised), and the explainer's maps of the images masked by
/// its maps (Coherency).
struct Related<'a> {
    sanity: [&'a [f32]; 2],
    remapped: &'a [Vec<f32>],
}

impl<B: Backend> BatchInputs<'_, B> {
    /// The images multiplied by their maps (every channel), as Coherency masks them.
    fn masked(&self, maps: &[Vec<f32>]) -> Tensor<B, 4> {
        let [n, _, h, w] = self.images.dims();
        let device = self.images.device();
        let masks = Tensor::<B, 3>::from_data(TensorData::new(maps.concat(), [n, h, w]), &device);
        self.images.clone() * masks.reshape([n, 1, h, w])
    }

    /// Each image's scores for its map, given what it is compared with; the batch's `seconds`
    /// are shared out evenly.
    #[allow(clippy::too_many_arguments)]
    fn score(
        &self,
        probabilities: &dyn Fn(Tensor<B, 4>) -> Tensor<B, 2>,
        maps: &[Vec<f32>],
        samples: &[&Sample],
        targets: &[usize],
        related: Related,
        steps: usize,
        seconds: f64,
    ) -> Vec<ImageScores> {
        let [rho_top, rho_all] = related.sanity;
        let images = self.images;
        let [n, c, h, w] = images.dims();
        let changes = confidence_changes(probabilities, images.clone(), maps, targets);
        let step = (h * w).div_ceil(steps.max(1));
        (0..n)
            .map(|i| {
                let (map, target) = (&maps[i], targets[i]);
                let image = images.clone().slice([i..i + 1, 0..c, 0..h, 0..w]);
                let curves =
                    deletion_insertion(probabilities, image.clone(), map, target, step, CHUNK);
                let position = self.first_position + i;
                let road = road(probabilities, image, map, target, position as u64);
                let complexity = complexity(map);
                let coherency = coherency(map, &related.remapped[i]);
                // Pointing games, where the data know the target's box.
                let in_box = samples[i]
                    .objects
                    .iter()
                    .find(|(class, _)| *class == target)
                    .map(|(_, b)| {
                        let (x, y) = peak(map, w);
                        let inside: f32 = (b.y0..b.y1)
                            .flat_map(|y| (b.x0..b.x1).map(move |x| map[y * w + x]))
                            .sum();
                        let all: f32 = map.iter().sum();
                        (b.contains(x, y), if all > 0.0 { inside / all } else { 0.0 })
                    });
                ImageScores {
                    position,
                    drop: changes[i].drop,
                    increased: changes[i].increased,
                    deletion: curves.deletion_auc(),
                    insertion: curves.insertion_auc(),
                    road_morf: road.morf,
                    road_lerf: road.lerf,
                    in_box,
                    rho_top: rho_top[i],
                    rho_all: rho_all[i],
                    complexity,
                    coherency,
                    arcc: arcc(complexity, coherency, road.combined(&ARCC_ROAD_PERCENTILES)),
                    seconds: seconds / n as f64,
                    deletion_curve: curves.deletion,
                    insertion_curve: curves.insertion,
                }
            })
            .collect()
    }
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

/// Every image's scores, one row per explainer and image, exactly (floats as Rust prints
/// them, which reads back to the same bits).
pub const IMAGES_CSV: &str = "evaluation-images.csv";

const IMAGES_HEADER: &str = "explainer,image,average_drop,increased,deletion_auc,insertion_auc,\
road_morf,road_lerf,peak_in_box,box_energy,sanity_rho_top,sanity_rho_all,complexity,coherency,\
arcc,seconds,deletion_curve,insertion_curve";

impl ImageScores {
    fn csv_row(&self, explainer: &str) -> String {
        let curve = |c: &[f32]| c.iter().map(f32::to_string).collect::<Vec<_>>().join(";");
        let (hit, energy) = match self.in_box {
            Some((hit, energy)) => (u8::from(hit).to_string(), energy.to_string()),
            None => (String::new(), String::new()),
        };
        [
            explainer.to_string(),
            self.position.to_string(),
            self.drop.to_string(),
            u8::from(self.increased).to_string(),
            self.deletion.to_string(),
            self.insertion.to_string(),
            self.road_morf.to_string(),
            self.road_lerf.to_string(),
            hit,
            energy,
            self.rho_top.to_string(),
            self.rho_all.to_string(),
            self.complexity.to_string(),
            self.coherency.to_string(),
            self.arcc.to_string(),
            self.seconds.to_string(),
            curve(&self.deletion_curve),
            curve(&self.insertion_curve),
        ]
        .join(",")
    }

    /// The explainer's name and the scores of a row of [`IMAGES_CSV`].
    fn parse_row(line: &str) -> Option<(String, ImageScores)> {
        let cells: Vec<&str> = line.split(',').collect();
        let [
            explainer,
            position,
            drop,
            increased,
            deletion,
            insertion,
            morf,
            lerf,
            hit,
            energy,
            rho_top,
            rho_all,
            simple,
            coherent,
            harmonic,
            seconds,
            deletion_curve,
            insertion_curve,
        ] = cells[..]
        else {
            return None;
        };
        let curve = |c: &str| {
            c.split(';')
                .map(|v| v.parse().ok())
                .collect::<Option<Vec<f32>>>()
        };
        let flag = |c: &str| match c {
            "1" => Some(true),
            "0" => Some(false),
            _ => None,
        };
        let in_box = match hit {
            "" => None,
            hit => Some((flag(hit)?, energy.parse().ok()?)),
        };
        let scores = ImageScores {
            position: position.parse().ok()?,
            drop: drop.parse().ok()?,
            increased: flag(increased)?,
            deletion: deletion.parse().ok()?,
            insertion: insertion.parse().ok()?,
            road_morf: morf.parse().ok()?,
            road_lerf: lerf.parse().ok()?,
            in_box,
            rho_top: rho_top.parse().ok()?,
            rho_all: rho_all.parse().ok()?,
            complexity: simple.parse().ok()?,
            coherency: coherent.parse().ok()?,
            arcc: harmonic.parse().ok()?,
            seconds: seconds.parse().ok()?,
            deletion_curve: curve(deletion_curve)?,
            insertion_curve: curve(insertion_curve)?,
        };
        Some((explainer.to_string(), scores))
    }
}

impl Evaluation {
    /// The evaluation of the images of several folders' [`IMAGES_CSV`]s, read in order (the
    /// shards of one job, first to last): the same table as one run over all of them.
    pub fn read(folders: &[&Path], steps: usize, image_size: [usize; 2]) -> Result<Evaluation> {
        let mut rows: Vec<(String, Vec<ImageScores>)> = Vec::new();
        for folder in folders {
            let path = folder.join(IMAGES_CSV);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            for (number, line) in text.lines().enumerate().skip(1) {
                let Some((explainer, scores)) = ImageScores::parse_row(line) else {
                    anyhow::bail!(
                        "{}, line {}: not a row of scores",
                        path.display(),
                        number + 1
                    );
                };
                match rows.iter_mut().find(|(name, _)| *name == explainer) {
                    Some((_, list)) => list.push(scores),
                    None => rows.push((explainer, vec![scores])),
                }
            }
        }
        Ok(Evaluation {
            rows,
            steps,
            image_size,
        })
    }

    fn images_csv(&self) -> String {
        let mut csv = format!("{IMAGES_HEADER}\n");
        for (explainer, scores) in &self.rows {
            for row in scores {
                csv += &row.csv_row(explainer);
                csv.push('\n');
            }
        }
        csv
    }

    /// Each explainer's mean deletion and insertion curves.
    fn mean_curves(&self) -> Vec<curves::MeanCurves<'_>> {
        self.rows
            .iter()
            .map(|(name, scores)| {
                let t = Totals::of(scores);
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
             them, re-initialised (lower: the map depends on the model). ARCC (pytorch-grad-cam): \
             Complexity (mean of the map, lower is simpler), Coherency ((ρ + 1) / 2 for ρ the \
             Pearson correlation of the map with the same explainer's map of the image masked by \
             it) and ARCC, their harmonic mean with 1 − Complexity and ROAD (LeRF − MoRF at 20, \
             40, 60, 80%, doubled, clipped to [0, 1]); a baseline's map of the masked image is \
             its map again. Time: per image, the shared forward + backward pass and the \
             method's own work.",
            self.rows.first().map_or(0, |r| r.1.len()),
            self.steps,
            (h * w).div_ceil(self.steps.max(1)),
        )
    }

    fn table(&self) -> Vec<[String; COLUMNS]> {
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
                "complexity",
                "coherency",
                "ARCC",
                "ms/image",
            ]
            .map(String::from),
        ];
        for (name, scores) in &self.rows {
            let t = Totals::of(scores);
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
                format!("{:.1}", 100.0 * t.increases as f32 / n),
                format!("{:.4}", t.deletion / n),
                format!("{:.4}", t.insertion / n),
                format!("{:+.4}", t.road_morf / n),
                format!("{:+.4}", t.road_lerf / n),
                boxed(t.hits as f32),
                boxed(t.energy),
                format!("{:.3}", t.rho_top / n),
                format!("{:.3}", t.rho_all / n),
                format!("{:.3}", t.complexity / n),
                format!("{:.3}", t.coherency / n),
                format!("{:.3}", t.arcc / n),
                milliseconds(1000.0 * t.seconds / f64::from(n)),
            ]);
        }
        rows
    }

    /// The table with each metric's better direction in its header (for people; the CSV keeps
    /// plain names for scripts).
    fn table_with_directions(&self) -> Vec<[String; COLUMNS]> {
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
        let widths: Vec<usize> = (0..COLUMNS)
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
                let _ = writeln!(md, "|{}", "---|".repeat(COLUMNS));
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
            (IMAGES_CSV, self.images_csv()),
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
