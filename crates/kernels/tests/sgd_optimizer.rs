//! The kernels' SGD against burn's own: the same parameters, bit for bit, step after step, and
//! optimiser checkpoints that load across the two.

use burn::backend::{Autodiff, Flex};
use burn::module::Param;
use burn::nn::{Linear, LinearConfig};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, Optimizer, SgdConfig};
use burn::prelude::*;
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Recorder};
use kernels::optim::Sgd;

type Ad = Autodiff<Flex>;

fn burns_sgd<M: burn::module::AutodiffModule<Ad>>() -> impl Optimizer<M, Ad> {
    let momentum = MomentumConfig::new()
        .with_momentum(0.9)
        .with_dampening(0.1)
        .with_nesterov(false);
    SgdConfig::new()
        .with_momentum(Some(momentum))
        .with_weight_decay(Some(WeightDecayConfig::new(1e-3)))
        .init()
}

fn ours() -> Sgd {
    Sgd::new(0.9, 0.1, false, 1e-3)
}

/// A different batch at each step, the same for both optimisers (not from burn's global random
/// generator, which the tests running beside this one draw from too).
fn loss(model: &Linear<Ad>, step: u64) -> Tensor<Ad, 1> {
    let values: Vec<f32> = (0..40)
        .map(|i| ((i * 7 + step * 13) % 11) as f32 / 5.0 - 1.0)
        .collect();
    let x = Tensor::<Ad, 2>::from_data(TensorData::new(values, [8, 5]), &Default::default());
    model.forward(x).powi_scalar(2).mean()
}

fn step<O: Optimizer<Linear<Ad>, Ad>>(
    optimizer: &mut O,
    model: Linear<Ad>,
    step: u64,
) -> Linear<Ad> {
    let grads = GradientsParams::from_grads(loss(&model, step).backward(), &model);
    optimizer.step(0.05, model, grads)
}

/// A layer with known weights (burn initialises parameters lazily, from its global generator,
/// so two clones of a fresh layer need not start equal).
fn layer() -> Linear<Ad> {
    let device = Default::default();
    let mut layer = LinearConfig::new(5, 3).init::<Ad>(&device);
    let weight: Vec<f32> = (0..15).map(|i| (i as f32 - 7.0) / 10.0).collect();
    layer.weight = Param::from_data(TensorData::new(weight, [5, 3]), &device);
    layer.bias = Some(Param::from_data(
        TensorData::new(vec![0.1f32, -0.2, 0.3], [3]),
        &device,
    ));
    layer
}

fn weights(model: &Linear<Ad>) -> (TensorData, TensorData) {
    (
        model.weight.val().into_data(),
        model.bias.as_ref().unwrap().val().into_data(),
    )
}

#[test]
fn steps_are_burns_bit_for_bit() {
    let (mut theirs, mut mine) = (layer(), layer());
    let (mut their_optimizer, mut my_optimizer) = (burns_sgd(), ours().init());
    for i in 0..4 {
        theirs = step(&mut their_optimizer, theirs, i);
        mine = step(&mut my_optimizer, mine, i);
        assert_eq!(weights(&mine), weights(&theirs), "step {i}");
    }
}

#[test]
fn checkpoints_load_across_the_two_optimisers() {
    let recorder = NamedMpkBytesRecorder::<FullPrecisionSettings>::new();
    let mut model = layer();
    let mut theirs = burns_sgd();
    for i in 0..2 {
        model = step(&mut theirs, model, i);
    }
    // burn's checkpoint into ours, and ours back into burn's: the next step agrees.
    let bytes = recorder.record(theirs.to_record(), ()).unwrap();
    let mut mine = ours().init();
    mine = mine.load_record(recorder.load(bytes, &Default::default()).unwrap());
    let bytes = recorder.record(mine.to_record(), ()).unwrap();
    let mut back = burns_sgd();
    back = back.load_record(recorder.load(bytes, &Default::default()).unwrap());
    let reference = step(&mut theirs, model.clone(), 2);
    assert_eq!(
        weights(&step(&mut mine, model.clone(), 2)),
        weights(&reference)
    );
    assert_eq!(weights(&step(&mut back, model, 2)), weights(&reference));
}
