use burn::optim::{GradientsParams, Optimizer, AdamConfig};
use burn::prelude::*;
use burn::nn::loss::CrossEntropyLossConfig;
use model::SplitModel;
type B = train::device::Cpu;
fn main() {
    let device = Default::default();
    let (config, _) = train::TrainConfig::load("shapes").unwrap();
    let set = data::shapes::generate(4000, 32, 1);
    let spec = config.model_spec(4);
    let mut model = spec.init::<B>(&device).unwrap();
    let batcher = data::Batcher { image_size: [32, 32], normalization: Default::default(), augmentation: Default::default(), seed: 0 };
    let samples: Vec<_> = set.samples.iter().enumerate().collect();
    let mut optim = AdamConfig::new().init();
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let t = std::time::Instant::now();
    for (step, chunk) in samples.chunks(32).enumerate() {
        let batch = batcher.batch(chunk, 0);
        let (x, y) = batch.to_tensors::<B>(&device);
        let logits = model.forward(x);
        let acc = logits.clone().argmax(1).flatten::<1>(0,1).equal(y.clone()).int().sum().into_scalar();
        let loss = loss_fn.forward(logits, y);
        if step % 10 == 0 { println!("{step}: {} {acc} {:.1}s", loss.clone().into_scalar(), t.elapsed().as_secs_f32()); }
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(3e-3, model, grads);
    }
}
