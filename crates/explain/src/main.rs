//! `explain`: reloads a `train` run, or a pretrained PyTorch model, and shows where it looks,
//! with Grad-CAM.
//!
//! image → preprocess → features → classifier → score → backward → map → figures.
//! Files given with `--image` get a folder each (original.jpg, heatmap.jpg, superimposed.jpg);
//! held-out images (`--split`) get the tutorial's per-class folders and an `index.html` gallery.

mod accuracy;
mod args;
mod concepts;
mod curves;
mod evaluate;
mod explainer;
mod gallery;
mod grid;
mod merge;
mod output;
mod progress;
mod publish;
mod shard;
mod source;
mod subject;

use std::path::PathBuf;

use anyhow::{Result, bail};
use burn::backend::Autodiff;
use burn::prelude::Backend;
use cam::{GuidedBackend, Method, Score, Target};
use clap::Parser;
use model::{AutodiffKernels, Head, Kernels, SplitModel};
use rayon::prelude::*;
use train::OnBackend;

use args::{Args, Command, TargetPreset, parse_weights};
use explainer::{BatchMaps, Request, argmax, explain_batch, top};
use output::{Guided, Layout, RankedClass, Record, Style};
use shard::{EvaluationShape, Shard, ShardNote, Share};
use source::{Item, Split, SplitItems};
use subject::{ModelSource, Subject};

fn main() {
    kernels::allocator::keep_freed_memory();
    if let Err(error) = run(Args::parse()) {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<()> {
    if let Some(Command::Merge { out, shards }) = &args.command {
        return merge::merge(out, shards);
    }
    kernels::set_precision(args.precision);
    args.device.check()?;
    let implied = args
        .weights
        .as_deref()
        .filter(|w| args.arch.is_none() && args.run.is_none() && w.ends_with(".onnx"))
        .map(|_| "onnx".to_string());
    let source = match args.arch.as_ref().or(implied.as_ref()) {
        Some(architecture) => {
            let Some(file) = &args.weights else {
                bail!("--arch {architecture} needs --weights FILE (a .pth, .th or .safetensors)");
            };
            if args.image.is_empty() && args.data_dir.is_none() && !args.list_layers {
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
            path: match &args.run {
                Some(run) if !run.exists() => anyhow::bail!(
                    "--run {}: no such folder (a run folder is what `train` writes under runs/)",
                    run.display()
                ),
                run => run.clone(),
            },
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

/// The methods that can explain `model` at `layers`. One the user named that cannot is an
/// error saying why; under `--method all` it is left out with a note.
fn applicable<B: Backend, M: SplitModel<B>>(
    methods: Vec<Method>,
    model: &M,
    layers: &[usize],
    all: bool,
) -> Result<Vec<Method>> {
    let mut kept = Vec::with_capacity(methods.len());
    for method in methods {
        match layers.iter().try_for_each(|&l| method.applies_to(model, l)) {
            Ok(()) => kept.push(method),
            Err(why) if all => eprintln!("note: --method all leaves {method} out: {why}"),
            Err(why) => bail!("--method {method}: {why}"),
        }
    }
    Ok(kept)
}

struct Job<'a> {
    args: &'a Args,
    source: ModelSource,
}

impl Job<'_> {
    /// Whether `--method` included `all` (which expands to every method at parsing).
    fn all_methods(&self) -> bool {
        self.args.method.iter().any(|group| group.len() > 1)
    }
}

impl OnBackend for Job<'_> {
    type Output = Result<()>;

    fn run<I: Kernels>(self, device: I::Device) -> Result<()> {
        if self.args.accuracy {
            return self.accuracy::<I>(&device);
        }
        let subject = self.source.open::<Autodiff<I>>(&device)?;
        if self.args.list_layers {
            print!("{}", subject::layer_table(&subject.model));
            return Ok(());
        }
        let layers = resolve_layers(&subject.model, &self.args.layer)?;
        if let model::Network::Onnx(_) = &subject.model
            && self.args.layer.is_empty()
        {
            let names = subject.model.layer_names();
            eprintln!(
                "note: the layer is {} (--list-layers shows the others)",
                names[layers[0]]
            );
        }
        let (targets, score) = self.targets(&subject)?;
        let (selection, layout) = self.items(&subject)?;
        let mut methods: Vec<Method> = self.args.method.iter().flatten().copied().collect();
        methods.dedup();
        let methods = applicable(methods, &subject.model, &layers, self.all_methods())?;
        let out = match (&self.args.out, self.args.shard) {
            (Some(out), _) => out.clone(),
            (None, Some(shard)) => subject.default_out().join(shard.folder_name()),
            (None, None) => subject.default_out(),
        };
        std::fs::create_dir_all(&out)
            .map_err(|e| anyhow::anyhow!("creating {}: {e}", out.display()))?;
        // Until this run has finished, the folder holds no finished shard.
        ShardNote::remove(&out)?;
        if let Some(count) = self.args.concepts {
            let layer = match layers[..] {
                [layer] => layer,
                _ => bail!("--concepts factorises one --layer, not several"),
            };
            let request = concepts::Request {
                count: count.into(),
                layer,
                batch: self.args.batch_size.into(),
                class_names: &subject.class_names,
            };
            let batcher = subject.batcher();
            let items = selection.items;
            return concepts::explain(&out, &subject.model, &batcher, items, &request, &device);
        }
        let note = self.shard_note(&subject, &selection, &methods, &layers)?;
        if self.args.evaluate {
            if targets.len() > 1 {
                bail!("--evaluate scores one class per image: give --class one class");
            }
            let samples: Vec<&data::Sample> =
                selection.items.iter().map(|item| &item.sample).collect();
            let evaluation = evaluate::evaluate(
                &out,
                &subject.model,
                &subject.batcher(),
                &samples,
                &methods,
                evaluate::Settings {
                    target: targets[0],
                    steps: self.args.steps as usize,
                    eigen_smooth: self.args.eigen_smooth,
                    batch: self.args.batch_size as usize,
                    layer: match layers[..] {
                        [layer] => layer,
                        _ => bail!("--evaluate takes one --layer, not a fusion of several"),
                    },
                    first_position: selection.first,
                },
                &device,
            )?;
            evaluation.report(&out)?;
            return note.map_or(Ok(()), |note| note.write(&out));
        }
        let explainer = Explainer {
            args: self.args,
            subject: &subject,
            targets,
            score,
            methods,
            layers,
            out,
        };
        // The folder itself too: a previous run with one method wrote its figures there.
        output::remove_previous(&explainer.out)?;
        for &method in &explainer.methods {
            output::remove_previous(&explainer.out_for(method))?;
        }
        let per_method = explainer.explain_all(selection.items, layout, &device)?;
        for (&method, records) in explainer.methods.iter().zip(&per_method) {
            output::write_manifest(&explainer.out_for(method), records)?;
        }
        publish::write(
            &explainer.out,
            &subject.title(),
            explainer.style(),
            &explainer.methods,
            &per_method,
        )?;
        // The run's report.html links the gallery once there is one.
        if let subject::Origin::Run { run, .. } = &subject.origin
            && run.path.join("metrics.csv").is_file()
            && self.args.shard.is_none()
        {
            train::report::write_page(run)?;
        }
        note.map_or(Ok(()), |note| note.write(&explainer.out))
    }
}

/// The indices of the layers named on the command line, or the last layer.
fn resolve_layers<B: Backend, M: SplitModel<B>>(
    model: &M,
    queries: &[String],
) -> Result<Vec<usize>> {
    if queries.is_empty() {
        return Ok(vec![model.last_layer()]);
    }
    let names = model.layer_names();
    let mut layers = Vec::new();
    for query in queries {
        let Some(layer) = model.find_layer(query) else {
            bail!(
                "--layer {query}: {} has no such layer; its layers are {}",
                model.architecture(),
                names.join(", ")
            );
        };
        if names[layer] != *query {
            // A stage's name stands for its last layer (`layer3` → `layer3.5`, a transformer
            // block's → its first norm): say which one it was.
            eprintln!("note: --layer {query} is {}", names[layer]);
        }
        if !layers.contains(&layer) {
            layers.push(layer);
        }
    }
    Ok(layers)
}

impl Job<'_> {
    fn accuracy<B: Kernels>(&self, device: &B::Device) -> Result<()> {
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
        let out = self
            .args
            .out
            .clone()
            .unwrap_or_else(|| subject.default_out());
        accuracy::report(
            &subject.title(),
            what,
            &set,
            &subject.model,
            &subject.batcher(),
            device,
            &out,
        )?;
        println!(
            "per-class accuracy and the confusion matrix: {}",
            out.join("confusion.csv").display()
        );
        Ok(())
    }

    /// The classes to explain for each image, and what of them is differentiated.
    fn targets<B: Backend>(&self, subject: &Subject<B>) -> Result<(Vec<Target>, Score)> {
        let args = self.args;
        if args.target == Some(TargetPreset::Tutorial) {
            // The tutorial backpropagates its SimpleCNN's sigmoid output, σ(z) = P(class 1),
            // and its VGG19's predicted logit.
            return Ok(match subject.head {
                Head::Binary => (vec![Target::Class(1)], Score::Probability),
                Head::Softmax => (vec![Target::Predicted], Score::Logit),
            });
        }
        let targets = match &args.class[..] {
            [] => (0..args.top_k.clamp(1, subject.class_names.len()))
                .map(Target::Ranked)
                .collect(),
            classes => {
                let mut targets = Vec::with_capacity(classes.len());
                for class in classes {
                    let target = Target::Class(subject.class_index(class)?);
                    if !targets.contains(&target) {
                        targets.push(target);
                    }
                }
                targets
            }
        };
        Ok((targets, args.score.into()))
    }

    /// The images to explain (this shard's share), and how their figures are laid out.
    fn items<B: Kernels>(&self, subject: &Subject<B>) -> Result<(SplitItems, Layout)> {
        let shard = self.args.shard.unwrap_or(Shard::WHOLE);
        let share = Share {
            shard,
            batch: self.args.batch_size as usize,
        };
        if !self.args.image.is_empty() {
            let selection = source::files(&self.args.image, subject.image_size, share)?;
            return Ok((selection, Layout::PerImage));
        }
        let (selection, name) = match (&subject.origin, &self.args.data_dir) {
            (subject::Origin::Pretrained { .. }, Some(root)) => (
                source::folder(
                    root,
                    self.args.limit,
                    &subject.class_names,
                    subject.image_size,
                    share,
                )?,
                root.display().to_string(),
            ),
            _ => {
                let which = self.args.split.unwrap_or(Split::Val);
                let selection = source::split(
                    subject.run()?,
                    which,
                    self.args.limit,
                    &subject.class_names,
                    share,
                )?;
                (selection, which.name().to_string())
            }
        };
        let what = format!("the {} {name} images", selection.total);
        if self.args.shard.is_some() {
            println!(
                "shard {shard}: explaining images {}..{} of the {} chosen of {what}",
                selection.first,
                selection.first + selection.items.len(),
                selection.chosen,
            );
        } else {
            println!("explaining {} of {what}", selection.items.len());
        }
        if selection.unreadable > 0 {
            println!(
                "{} image(s) could not be read and were skipped",
                selection.unreadable
            );
        }
        Ok((selection, Layout::PerClass))
    }

    /// With `--shard`: the note its folder gets when the shard has finished, naming everything
    /// the shards of one job must share.
    fn shard_note<B: Kernels>(
        &self,
        subject: &Subject<B>,
        selection: &SplitItems,
        methods: &[Method],
        layers: &[usize],
    ) -> Result<Option<ShardNote>> {
        let Some(shard) = self.args.shard else {
            return Ok(None);
        };
        let weights = data::digest::sha256_file(&subject.weights_file)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", subject.weights_file.display()))?;
        let names = subject.model.layer_names();
        let layers: Vec<&str> = layers.iter().map(|&l| names[l].as_str()).collect();
        Ok(Some(ShardNote {
            shard: shard.index,
            of: shard.count,
            first: selection.first,
            images: selection.items.len(),
            chosen: selection.chosen,
            title: subject.title(),
            methods: methods.iter().map(|m| m.name().to_string()).collect(),
            style: self.args.style(),
            evaluation: self.args.evaluate.then_some(EvaluationShape {
                steps: self.args.steps as usize,
                image_size: subject.image_size,
            }),
            job: shard::job(self.args, &weights, &layers, selection),
        }))
    }
}

/// Draws the maps of one model for one set of targets into one folder.
struct Explainer<'a, B: GuidedBackend + AutodiffKernels> {
    args: &'a Args,
    subject: &'a Subject<B>,
    /// One set of figures per target and image.
    targets: Vec<Target>,
    score: Score,
    methods: Vec<Method>,
    /// Where the maps are taken (fused when several).
    layers: Vec<usize>,
    out: PathBuf,
}

impl<B: GuidedBackend + AutodiffKernels> Explainer<'_, B> {
    /// How every map becomes a picture.
    fn style(&self) -> Style {
        self.args.style()
    }

    /// Where a method's figures go.
    fn out_for(&self, method: Method) -> PathBuf {
        publish::method_folder(&self.out, &self.methods, method)
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
            let request = Request {
                targets: &self.targets,
                score: self.score,
                methods: &self.methods,
                layers: &self.layers,
                smoothing: explainer::Smoothing {
                    eigen: self.args.eigen_smooth,
                    augmentation: self.args.aug_smooth,
                    sess: self.args.sess,
                },
                guided: self.args.guided,
            };
            let explanations =
                explain_batch(&self.subject.model, &samples, &request, &batcher, device)?;
            for (&target, explained) in self.targets.iter().zip(&explanations) {
                let guided = explained.guided.as_deref();
                for ((&method, maps), records) in
                    self.methods.iter().zip(&explained.maps).zip(&mut records)
                {
                    for record in self.draw_batch(method, &ready, maps, guided, target, layout)? {
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
        guided: Option<&[Vec<f32>]>,
        target: Target,
        layout: Layout,
    ) -> Result<Vec<Record>> {
        let out = self.out_for(method);
        let style = self.style();
        items
            .par_iter()
            .zip(&maps.explained)
            .enumerate()
            .map(|(i, (item, explained))| {
                let non_finite = |values: &[f32]| values.iter().any(|v| !v.is_finite());
                if non_finite(&explained.probabilities) || non_finite(&explained.map) {
                    anyhow::bail!(
                        "{}: the model's scores or the {method} map are not finite (NaN or \
                         infinite): the weights overflow on this input; no figures written",
                        item.name
                    );
                }
                let names = &self.subject.class_names;
                let predicted = argmax(&explained.probabilities);
                let stem = match target {
                    Target::Ranked(n) if self.targets.len() > 1 => {
                        format!("{}_top{}", item.name, n + 1)
                    }
                    Target::Class(c) if self.targets.len() > 1 => {
                        format!("{}_class{c}", item.name)
                    }
                    _ => item.name.clone(),
                };
                let class = item.label.map_or("", |l| names[l].as_str());
                let (file_stem, predicted_label) =
                    self.args.naming.file_parts(&stem, predicted, names);
                let figures = layout.figures(&file_stem, class, &predicted_label, guided.is_some());
                let original = item.original.as_ref().expect("loaded before drawing");
                let drawn = output::draw(
                    &out,
                    &figures,
                    original,
                    &explained.map,
                    maps.map_size,
                    style,
                    guided.map(|g| Guided {
                        gradients: &g[i],
                        size: self.subject.image_size,
                    }),
                )?;
                if let (true, Some(folder)) = (self.args.save_raw, &figures.raw_folder) {
                    output::write_raw(
                        &out.join(folder),
                        &explained.map,
                        maps.map_size,
                        self.subject.image_size,
                        maps.post_processed,
                    )?;
                }
                Ok(Record {
                    name: stem,
                    method: method.name().to_string(),
                    path: item.sample.path.clone(),
                    label: item.label.map(|l| names[l].clone()),
                    label_index: item.label,
                    predicted: names[predicted].clone(),
                    predicted_index: predicted,
                    probability: explained.probabilities[predicted],
                    top5: top(&explained.probabilities, 5)
                        .into_iter()
                        .map(|(index, probability)| RankedClass {
                            index,
                            class: names[index].clone(),
                            probability,
                        })
                        .collect(),
                    target: names[explained.target].clone(),
                    target_index: explained.target,
                    target_probability: explained.probabilities[explained.target],
                    peak: drawn.peak,
                    empty_map: drawn.empty,
                    figures,
                })
            })
            .collect()
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
