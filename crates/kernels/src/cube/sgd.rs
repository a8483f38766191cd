//! burn's SGD step (weight decay, momentum with dampening, Nesterov) in one kernel per
//! parameter instead of four to six tensor operations.

use burn::tensor::Shape;
use burn_cubecl::CubeRuntime;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::tensor::{array, dense, elementwise, empty_like_device};
use crate::SgdSettings;

/// One parameter's update; `velocity` is read unless this is the first step with momentum.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn sgd_update<F: Float>(
    param: &Array<F>,
    grad: &Array<F>,
    velocity: &Array<F>,
    new_param: &mut Array<F>,
    new_velocity: &mut Array<F>,
    length: u32,
    lr: f32,
    weight_decay: f32,
    momentum: f32,
    gradient_share: f32,
    #[comptime] has_momentum: bool,
    #[comptime] first: bool,
    #[comptime] nesterov: bool,
) {
    let i = ABSOLUTE_POS;
    if i >= length as usize {
        terminate!();
    }
    let p = param[i];
    let g = grad[i] + p * F::cast_from(weight_decay);
    let mut direction = g;
    if comptime![has_momentum] {
        let mut v = g;
        if comptime![!first] {
            v = g * F::cast_from(gradient_share) + velocity[i] * F::cast_from(momentum);
        }
        new_velocity[i] = v;
        direction = v;
        if comptime![nesterov] {
            direction = v * F::cast_from(momentum) + g;
        }
    }
    new_param[i] = p - direction * F::cast_from(lr);
}

/// The new parameter and, with momentum, the new velocity.
pub fn sgd_step<R: CubeRuntime>(
    param: CubeTensor<R>,
    grad: CubeTensor<R>,
    velocity: Option<CubeTensor<R>>,
    settings: SgdSettings,
) -> (CubeTensor<R>, Option<CubeTensor<R>>) {
    let (param, grad) = (dense(param), dense(grad));
    let length = param.meta.shape().num_elements();
    let shape = Shape::new([length]);
    let new_param = empty_like_device(&param, shape.clone());
    let first = velocity.is_none();
    // What a step does not read or write is bound to a one-element stand-in: one buffer bound
    // twice, once writable, is not allowed everywhere (WebGPU refuses it).
    let unused = || empty_like_device(&param, Shape::new([1]));
    let velocity_in = velocity.map(dense).unwrap_or_else(unused);
    let new_velocity = match settings.momentum {
        Some(_) => empty_like_device(&param, shape),
        None => unused(),
    };
    let momentum = settings.momentum;
    let (cubes, units) = elementwise(&param, length);
    sgd_update::launch::<f32, R>(
        &param.client,
        cubes,
        units,
        array(&param),
        array(&grad),
        array(&velocity_in),
        array(&new_param),
        array(&new_velocity),
        length as u32,
        settings.lr,
        settings.weight_decay.unwrap_or(0.0),
        momentum.map_or(0.0, |m| m.momentum),
        momentum.map_or(0.0, |m| m.gradient_share),
        momentum.is_some(),
        first,
        momentum.is_some_and(|m| m.nesterov),
    );
    (new_param, momentum.map(|_| new_velocity))
}
