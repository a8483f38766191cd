//! Grad-CAM points at the object: on the synthetic shapes, whose boxes are known, the map of a
//! briefly trained model peaks inside the object (pointing game), and on images with two shapes
//! the map of each class peaks on its own shape.

use cam::postprocess::{Normalization, peak, relu_normalize, upsample};
use cam::{Target, capture, grad_cam};
use data::{Batcher, ImageSet, shapes};
use model::Network;
use train::device::Cpu;
use train::{RunDir, TrainConfig, Weights, dataset};

const CONFIG: &str = r#"
epochs = 4
batch_size = 16
seed = 11
[model]
name = "cifar_resnet"
depth = 8
width = 8
[data]
source = "shapes"
count = 2000
validation = 0.2
image_size = [32, 32]
augmentation = { horizontal_flip = true }
[optimizer]
name = "adam"
lr = 0.003
[schedule]
name = "cosine"
"#;

/// Where each image's map for `targets[i]` peaks, in image pixels.
fn peaks(
    model: &Network<Cpu>,
    set: &ImageSet,
    targets: &[Target],
    batcher: &Batcher,
) -> Vec<(usize, usize)> {
    let [side, _] = set.image_size;
    let indexed: Vec<_> = set.samples.iter().enumerate().collect();
    let mut found = Vec::new();
    for (chunk, targets) in indexed.chunks(32).zip(targets.chunks(32)) {
        let batcher = Batcher {
            image_size: set.image_size,
            ..*batcher
        };
        let (images, _) = batcher
            .batch(chunk, 0)
            .to_tensors::<burn::backend::Flex>(&Default::default());
        let captured = capture(model, images, targets).unwrap();
        let [_, _, h, w] = captured.activations.dims();
        let maps = grad_cam(captured.activations, captured.gradients)
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        for map in maps.chunks(h * w) {
            let full = upsample(
                &relu_normalize(map, Normalization::MinMax),
                [h, w],
                [side, side],
                Normalization::MinMax,
            );
            found.push(peak(&full, side));
        }
    }
    found
}

#[test]
fn grad_cam_peaks_inside_the_object() {
    let dir = tempfile::tempdir().unwrap();
    let config = TrainConfig::parse(CONFIG, "localisation").unwrap();
    let data = dataset::load(&config.data, config.seed, &()).unwrap();
    let run = RunDir::create(dir.path(), &config, data.class_names()).unwrap();
    let summary = train::fit::<Cpu>(
        &config,
        &data.train,
        &data.validation,
        None,
        &run,
        false,
        &Default::default(),
        &mut (),
    )
    .unwrap();
    assert!(
        summary.best_val_acc > 0.9,
        "the model must first learn the task: {}",
        summary.best_val_acc
    );
    let model = run
        .load_model::<Cpu>(Weights::Last, &Default::default())
        .unwrap();
    let batcher = Batcher {
        image_size: config.data.image_size,
        normalization: config.normalization(),
        augmentation: Default::default(),
        seed: 0,
    };

    // Pointing game on held-out single shapes, each explained for its true class.
    let set = &data.validation;
    let targets: Vec<Target> = set.samples.iter().map(|s| Target::Class(s.label)).collect();
    let hits = peaks(&model, set, &targets, &batcher)
        .iter()
        .zip(&set.samples)
        .filter(|((x, y), s)| s.objects[0].1.contains(*x, *y))
        .count();
    let rate = hits as f64 / set.len() as f64;
    eprintln!("pointing game: {hits}/{} = {rate:.3}", set.len());
    assert!(
        rate >= 0.95,
        "pointing game: {hits}/{} = {rate:.3}",
        set.len()
    );

    // Two shapes of different classes: each class's map peaks on its own shape.
    let pairs = shapes::generate_pairs(200, 48, 77);
    let mut agree = 0;
    for object in 0..2 {
        let targets: Vec<Target> = pairs
            .samples
            .iter()
            .map(|s| Target::Class(s.objects[object].0))
            .collect();
        agree += peaks(&model, &pairs, &targets, &batcher)
            .iter()
            .zip(&pairs.samples)
            .filter(|((x, y), s)| s.objects[object].1.contains(*x, *y))
            .count();
    }
    let rate = agree as f64 / (2 * pairs.len()) as f64;
    eprintln!(
        "two-object agreement: {agree}/{} = {rate:.3}",
        2 * pairs.len()
    );
    assert!(
        rate >= 0.9,
        "two-object agreement: {agree}/{} = {rate:.3}",
        2 * pairs.len()
    );
}
