//! Time per image of each CAM method: capture (features, classifier, backward) plus the
//! method's own work, for a randomly initialised network of `--arch` at its input size.
//! `cargo run -p explain --example methods_speed -- ARCH BATCH REPEATS [cpu|cuda] [f32|tf32]`
//! prints one line per method, `burn <method> ms/image median=<x>`; `scripts/bench_methods.sh`
//! runs pytorch-grad-cam on the same network and batch beside it. After the methods, `sess`
//! (SESS around Grad-CAM, one run) and `dff` (5 concepts of the last layer's activations).
//! `BENCH_METHODS=a,b` times only those.

use std::time::Instant;

use burn::backend::Autodiff;
use burn::module::AutodiffModule;
use burn::prelude::*;
use cam::{Method, Score, Target, capture_scored, capture_without_gradients};
use kernels::Precision;
use model::{Architecture, Kernels, ModelSpec, SplitModel};
use train::OnBackend;
use train::device::run_benchmark;

struct Bench {
    arch: String,
    batch: usize,
    repeats: usize,
}

fn main() {
    kernels::allocator::keep_freed_memory();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bench = Bench {
        arch: args.first().cloned().unwrap_or_else(|| "resnet18".into()),
        batch: args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1),
        repeats: args.get(2).and_then(|a| a.parse().ok()).unwrap_or(3),
    };
    // `explain`'s default: every GPU product in f32 (the CPU computes in f32 regardless).
    let arg = |i: usize| args.get(i).map(String::as_str);
    run_benchmark(bench, arg(3), arg(4), Precision::F32);
}

impl OnBackend for Bench {
    type Output = ();

    fn run<I: Kernels>(self, device: I::Device) {
        let architecture =
            Architecture::from_name(&self.arch).expect("a --arch name, e.g. resnet18");
        let (image_size, _) = pretrained::preprocessing(&architecture);
        let cifar = self.arch.starts_with("resnet") && image_size == [32, 32];
        let spec = ModelSpec {
            architecture,
            num_classes: if cifar { 10 } else { 1000 },
            head: model::Head::Softmax,
            channels: 3,
            image_size,
        };
        let model = spec.init::<Autodiff<I>>(&device).unwrap();
        let [h, w] = image_size;
        let images = Tensor::<I, 4>::random(
            [self.batch, 3, h, w],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let targets = vec![Target::Predicted; self.batch];
        let inference = model.valid();
        let last = inference.last_layer();
        let chosen = std::env::var("BENCH_METHODS").ok();
        let chosen = |wanted: &str| {
            chosen
                .as_deref()
                .is_none_or(|list| list.split(',').any(|name| name == wanted))
        };
        let per_image = |runs: usize, run: &dyn Fn()| {
            run(); // warm-up: lazy parameters, and on a GPU the kernels' compilation
            let mut times: Vec<f64> = (0..runs)
                .map(|_| {
                    let start = Instant::now();
                    run();
                    1000.0 * start.elapsed().as_secs_f64() / self.batch as f64
                })
                .collect();
            times.sort_by(f64::total_cmp);
            times[times.len() / 2]
        };
        for method in Method::ALL.into_iter().filter(|&m| chosen(m.name())) {
            if let Err(why) = method.applies_to(&inference, last) {
                eprintln!("burn {method}: skipped, {why}");
                continue;
            }
            let run = || {
                let layer = inference.last_layer();
                let captured = match method.uses_gradients() {
                    // Finer-CAM and Smooth Grad-CAM++ take their own captures.
                    true => method
                        .capture(&model, images.clone(), &targets, layer, Score::Logit)
                        .unwrap(),
                    false => capture_without_gradients(
                        &inference,
                        images.clone(),
                        &targets,
                        layer,
                        Score::Logit,
                    )
                    .unwrap(),
                };
                let maps = method.map(&inference, images.clone(), &captured, I::PERTURBATION_BATCH);
                // Reading the maps back waits for the device.
                maps.into_data().to_vec::<f32>().unwrap();
            };
            let slow = matches!(method, Method::ScoreCam | Method::IsCam | Method::SsCam);
            let median = per_image(if slow { 1 } else { self.repeats }, &run);
            println!("burn {method} ms/image median={median:.2}");
        }
        if chosen("sess") {
            let run = || {
                let layer = inference.last_layer();
                let captured =
                    capture_scored(&model, images.clone(), &targets, layer, Score::Logit).unwrap();
                let maps = cam::sess::sess(
                    &model,
                    images.clone(),
                    &captured,
                    &[layer],
                    Method::GradCam,
                    false,
                    I::PERTURBATION_BATCH,
                )
                .unwrap();
                maps.into_data().to_vec::<f32>().unwrap();
            };
            println!("burn sess ms/image median={:.2}", per_image(1, &run));
        }
        if chosen("dff") {
            let run = || {
                let layer = inference.last_layer();
                let captured = capture_without_gradients(
                    &inference,
                    images.clone(),
                    &targets,
                    layer,
                    Score::Logit,
                )
                .unwrap();
                let shape = captured.activations.dims();
                let values = captured
                    .activations
                    .clone()
                    .into_data()
                    .to_vec::<f32>()
                    .unwrap();
                let values: Vec<f64> = values.into_iter().map(f64::from).collect();
                let start = |x: &[f64], rows_cols| cam::concepts::random_start(x, rows_cols, 5, 0);
                cam::concepts::factorize(&values, shape, 5, start);
            };
            println!(
                "burn dff ms/image median={:.2}",
                per_image(self.repeats, &run)
            );
        }
    }
}
