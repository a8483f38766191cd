//! Writes the seeds of the fuzz targets that Rust can make itself into `<dir>/<target>/`:
//! a real checkpoint, safetensors weights, CIFAR records, the embedded configs, a PNG, a
//! JPEG and a small ONNX export (a committed fixture). The zip and legacy-pickle PyTorch seeds
//! come from `scripts/make_fuzz_seeds.py` (torch).

use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(std::env::args().nth(1).expect("usage: write_seeds DIR"));
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let folder = dir.join(target);
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join(name), bytes).unwrap();
    };
    write("checkpoint", "model.mpk", &fuzzing::checkpoint_seed());
    write("onnx_model", "mobile.onnx", &fuzzing::onnx_seed());
    let weights = fuzzing::safetensors_seed();
    write("safetensors_weights", "resnet8_w4.safetensors", &weights);
    write("torch_weights", "resnet8_w4.safetensors", &weights);
    let record = |label: u8| {
        let mut r = vec![label];
        r.extend((0..3072u32).map(|i| (i * 7 % 251) as u8));
        r
    };
    write(
        "cifar_batch",
        "two_records.bin",
        &[record(3), record(9)].concat(),
    );
    for (name, text) in train::config::EMBEDDED {
        write("train_config", &format!("{name}.toml"), text.as_bytes());
    }
    let picture =
        image::RgbImage::from_fn(12, 9, |x, y| image::Rgb([x as u8 * 20, y as u8 * 25, 90]));
    for (name, format) in [
        ("small.png", image::ImageFormat::Png),
        ("small.jpg", image::ImageFormat::Jpeg),
    ] {
        let mut bytes = std::io::Cursor::new(Vec::new());
        picture.write_to(&mut bytes, format).unwrap();
        write("image", name, bytes.get_ref());
    }
}
