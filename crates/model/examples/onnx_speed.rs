//! Forward throughput of an ONNX model here, for `scripts/bench_onnx.sh` to set beside
//! onnxruntime's: `cargo run -p model --example onnx_speed -- MODEL.onnx BATCH REPEATS`.
//! Prints `img/s MEDIAN (batch B, at once: yes|no)`; the first run (which decides whether the
//! batch runs at once) is not timed.

use std::path::PathBuf;
use std::time::Instant;

use burn::prelude::*;
use burn::tensor::Distribution;
use burn_flex::Flex;
use model::{OnnxNetwork, SplitModel};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, batch, repeats] = args.as_slice() else {
        eprintln!("usage: onnx_speed MODEL.onnx BATCH REPEATS");
        std::process::exit(1);
    };
    let (batch, repeats): (usize, usize) = (batch.parse().unwrap(), repeats.parse().unwrap());
    let device = Default::default();
    let network = OnnxNetwork::<Flex>::load(&PathBuf::from(model), None, &device)
        .unwrap_or_else(|e| panic!("{e}"));
    let [h, w] = network.plan().size;
    let images = Tensor::<Flex, 4>::random([batch, 3, h, w], Distribution::Default, &device);
    let at_once = network.runs_at_once(batch, &device);
    let _ = network.forward(images.clone()).into_data();
    let mut rates: Vec<f64> = (0..repeats)
        .map(|_| {
            let start = Instant::now();
            let _ = network.forward(images.clone()).into_data();
            batch as f64 / start.elapsed().as_secs_f64()
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    let at_once = if at_once { "yes" } else { "no" };
    println!(
        "img/s {:.2} (batch {batch}, at once: {at_once})",
        rates[rates.len() / 2]
    );
}
