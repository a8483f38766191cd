//! Time per image of each CAM method: capture (features, classifier, backward) plus the
//! method's own work, for a randomly initialised network of `--arch` at its input size.
//! `cargo run -p explain --example methods_speed -- ARCH BATCH REPEATS` prints one line per
//! method, `burn <method> ms/image median=<x>`; `scripts/bench_methods.sh` runs
//! pytorch-grad-cam on the same network and batch beside it.

use std::time::Instant;

use burn::module::AutodiffModule;
use burn::prelude::*;
use cam::{Method, Target, capture};
use model::{Architecture, ModelSpec};
use train::device::Cpu;

type Inner = burn::backend::Flex;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arch = args.first().map_or("resnet18", String::as_str);
    let batch: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1);
    let repeats: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(3);
    let architecture = Architecture::from_name(arch).expect("a --arch name, e.g. resnet18");
    let (image_size, _) = pretrained::preprocessing(&architecture);
    let spec = ModelSpec {
        architecture,
        num_classes: if arch.starts_with("resnet") && image_size == [32, 32] {
            10
        } else {
            1000
        },
        channels: 3,
        image_size,
    };
    let device = Default::default();
    let model = spec.init::<Cpu>(&device).unwrap();
    let [h, w] = image_size;
    let images = Tensor::<Inner, 4>::random(
        [batch, 3, h, w],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &device,
    );
    let targets = vec![Target::Predicted; batch];
    let inference = model.valid();
    for method in Method::ALL {
        let run = || {
            let captured = capture(&model, images.clone(), &targets).unwrap();
            let maps = method.map(&inference, images.clone(), &captured, 32);
            maps.into_data().to_vec::<f32>().unwrap().len()
        };
        run(); // warm-up, and the lazy parameters' first forward
        let slow = matches!(method, Method::ScoreCam);
        let mut times: Vec<f64> = (0..if slow { 1 } else { repeats })
            .map(|_| {
                let start = Instant::now();
                run();
                1000.0 * start.elapsed().as_secs_f64() / batch as f64
            })
            .collect();
        times.sort_by(f64::total_cmp);
        println!(
            "burn {method} ms/image median={:.1}",
            times[times.len() / 2]
        );
    }
}
