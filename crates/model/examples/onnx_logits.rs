//! The logits of an ONNX model on one input, as `scripts/onnx_sweep.py` compares them with
//! onnxruntime's: `cargo run -p model --example onnx_logits -- MODEL.onnx INPUT.f32 OUT.f32`.
//! INPUT holds `[1, C, H, W]` float32 values (little-endian) for the size the graph fixes;
//! OUT receives the logits the same way. A model that does not load prints why and exits 2.

use std::path::PathBuf;
use std::time::Instant;

use burn::prelude::*;
use burn_flex::Flex;
use model::{OnnxNetwork, SplitModel};

fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn main() {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [model, input, out] = args.as_slice() else {
        eprintln!("usage: onnx_logits MODEL.onnx INPUT.f32 OUT.f32");
        std::process::exit(1);
    };
    let device = Default::default();
    let start = Instant::now();
    let network = match OnnxNetwork::<Flex>::load(model, None, &device) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let loaded = start.elapsed().as_secs_f64();
    let [h, w] = network.plan().size;
    let channels = network.plan().channels;
    let values = floats(&std::fs::read(input).expect("the input file"));
    assert_eq!(values.len(), channels * h * w, "the input's size");
    let images =
        Tensor::<Flex, 4>::from_data(TensorData::new(values, [1, channels, h, w]), &device);
    let start = Instant::now();
    let logits = network.forward(images).into_data().to_vec::<f32>().unwrap();
    let ran = start.elapsed().as_secs_f64();
    let bytes: Vec<u8> = logits.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(out, bytes).expect("the output file");
    println!("load {loaded:.2} s, forward {ran:.2} s");
}
