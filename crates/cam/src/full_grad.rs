//! FullGrad (Srinivas & Fleuret 2019) as pytorch-grad-cam's `FullGrad` computes it: the image
//! times its gradient, and for every convolution and BatchNorm with a bias, that bias times the
//! gradient of the layer's output, each made absolute, normalised per image and channel,
//! resized to the image, and all summed. Not a function of one layer's A: the whole network
//! runs on the autodiff backend, and every biased layer's output gets a zero-valued leaf added
//! ([`model::Rectifier::biased`]) whose gradient is the output's.

use std::cell::RefCell;

use burn::module::AutodiffModule;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use model::{Rectifier, SplitModel, class_scores};

use crate::capture::{check_request, resolve_targets, target_score_sum};
use crate::postprocess::{Normalization, relu_normalize, resize_bilinear};
use crate::{Capture, CaptureError, Score, Target};

/// FullGrad's maps `[batch, height, width]` at the images' size, in [0, 1], and the model's
/// outputs `[batch, outputs]` and the classes explained: one forward and one backward pass.
pub fn full_grad<B, M>(
    model: &M,
    images: Tensor<B::InnerBackend, 4>,
    targets: &[Target],
    score: Score,
) -> Result<FullGradMaps<B::InnerBackend>, CaptureError>
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + SplitModel<B>,
{
    let [batch, _, height, width] = images.dims();
    check_request(model, batch, targets, model.last_layer())?;
    let frozen = model.clone().no_grad();
    let probes = BiasProbes::<B>::default();
    let input = Tensor::<B, 4>::from_inner(images.clone()).require_grad();
    let activations = frozen.features_at(input.clone(), frozen.last_layer(), &probes);
    let outputs = frozen.head(activations, &probes);
    let classes = resolve_targets(class_scores(outputs.clone().inner()), targets)?;
    let grads = target_score_sum(score.of(outputs.clone()), &classes).backward();
    let size = [height, width];
    let input_gradient = input
        .grad(&grads)
        .expect("the outputs depend on the images");
    let mut total = normalised_channel_sum((input_gradient * images.clone()).abs(), size);
    for (probe, bias) in probes.recorded.take() {
        // A layer the score does not depend on has no gradient, and adds nothing.
        let Some(gradient) = probe.grad(&grads) else {
            continue;
        };
        let channels = bias.dims()[0];
        let term = (gradient * bias.reshape([1, channels, 1, 1])).abs();
        for (sum, add) in total.iter_mut().zip(normalised_channel_sum(term, size)) {
            *sum += add;
        }
    }
    let maps: Vec<f32> = total
        .chunks(height * width)
        .flat_map(|map| relu_normalize(map, Normalization::MinMax))
        .collect();
    Ok(FullGradMaps {
        maps: Tensor::from_data(
            TensorData::new(maps, [batch, height, width]),
            &images.device(),
        ),
        outputs: outputs.inner(),
        targets: classes,
    })
}

/// FullGrad as a [`Capture`] (`Method::capture`): `activations` hold the finished maps as one
/// channel at the images' size (the gradients are ones), so that a channel sum is the map and
/// every path that takes a capture (`--evaluate`, SESS) takes FullGrad. `layer` is only
/// recorded: FullGrad reads every biased layer.
pub fn capture_full_grad<B, M>(
    model: &M,
    images: Tensor<B::InnerBackend, 4>,
    targets: &[Target],
    layer: usize,
    score: Score,
) -> Result<Capture<B::InnerBackend>, CaptureError>
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + SplitModel<B>,
{
    let FullGradMaps {
        maps,
        outputs,
        targets,
    } = full_grad(model, images, targets, score)?;
    let map = maps.unsqueeze_dim::<4>(1);
    Ok(Capture {
        gradients: map.ones_like(),
        activations: map.clone(),
        layer_output: map,
        outputs,
        score,
        targets,
        layer,
        noisy: None,
    })
}

/// What [`full_grad`] returns.
pub struct FullGradMaps<B: Backend> {
    pub maps: Tensor<B, 3>,
    pub outputs: Tensor<B, 2>,
    pub targets: Vec<usize>,
}

/// Σ over channels of each `[h, w]` plane of `terms` `[batch, channels, h, w]` normalised to
/// [0, 1] (pytorch-grad-cam's `scale_accross_batch_and_channels`), resized to `size`: the
/// per-image sums, `batch × size` values. Resizing is linear, so the sum is resized once.
fn normalised_channel_sum<B: Backend>(terms: Tensor<B, 4>, size: [usize; 2]) -> Vec<f32> {
    let [_, channels, h, w] = terms.dims();
    let values = terms.into_data().to_vec::<f32>().expect("f32 terms");
    values
        .chunks(channels * h * w)
        .flat_map(|image| {
            let mut sum = vec![0f32; h * w];
            for plane in image.chunks(h * w) {
                for (s, v) in sum
                    .iter_mut()
                    .zip(relu_normalize(plane, Normalization::MinMax))
                {
                    *s += v;
                }
            }
            resize_bilinear(&sum, [h, w], size)
        })
        .collect()
}

/// A zero leaf added to a biased layer's output, and that layer's bias.
type Probe<B> = (
    Tensor<B, 4>,
    Tensor<<B as AutodiffBackend>::InnerBackend, 1>,
);

/// A plain forward pass that adds a zero leaf to each biased layer's output and keeps it with
/// the bias, so that the leaf's gradient is the output's.
struct BiasProbes<B: AutodiffBackend> {
    recorded: RefCell<Vec<Probe<B>>>,
}

impl<B: AutodiffBackend> Default for BiasProbes<B> {
    fn default() -> Self {
        Self {
            recorded: RefCell::new(Vec::new()),
        }
    }
}

impl<B: AutodiffBackend> Rectifier<B> for BiasProbes<B> {
    fn relu<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        burn::tensor::activation::relu(x)
    }

    fn biased(&self, output: Tensor<B, 4>, bias: Tensor<B, 1>) -> Tensor<B, 4> {
        let probe = Tensor::<B, 4>::zeros(output.dims(), &output.device()).require_grad();
        self.recorded
            .borrow_mut()
            .push((probe.clone(), bias.inner()));
        output + probe
    }
}
