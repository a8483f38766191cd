//! Guided backpropagation (Springenberg et al. 2015): the gradient of a class score with respect
//! to the image, where every ReLU passes back only positive gradients, and only where its input
//! was positive. Guided Grad-CAM multiplies it by a CAM upsampled to the image.
//!
//! The rule is not the derivative of any forward function, so burn's autodiff cannot produce it
//! from ordinary tensor operations: the ReLU here is a custom autodiff operation, and the model
//! applies it through [`model::Rectifier`].

use burn::backend::Autodiff;
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::module::AutodiffModule;
use burn::prelude::*;
use burn::tensor::TensorPrimitive;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::ops::FloatTensor;
use model::{Rectifier, SplitModel, class_scores};

use crate::capture::target_score_sum;

/// Autodiff backends with a guided ReLU.
pub trait GuidedBackend: AutodiffBackend {
    /// `max(x, 0)` forward; backward, the incoming gradient where both it and `x` are positive.
    fn guided_relu(x: FloatTensor<Self>) -> FloatTensor<Self>;
}

impl<B: Backend, C: CheckpointStrategy> GuidedBackend for Autodiff<B, C> {
    fn guided_relu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct GuidedRelu;

        impl<B: Backend> Backward<B, 1> for GuidedRelu {
            type State = NodeId;

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                checkpointer: &mut Checkpointer,
            ) {
                let input = checkpointer.retrieve_node_output(ops.state);
                unary::<B, _>(ops.parents, ops.node, grads, |grad| {
                    // relu_backward zeroes the gradient where the input was not positive.
                    B::relu(B::relu_backward(input, grad))
                });
            }
        }

        match GuidedRelu
            .prepare::<C>([x.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let state = prep.checkpoint(&x);
                prep.finish(state, B::relu(x.primitive))
            }
            OpsKind::UnTracked(prep) => prep.finish(B::relu(x.primitive)),
        }
    }
}

/// The ReLU of guided backpropagation, for [`SplitModel::layer`] and [`SplitModel::head`].
#[derive(Debug, Clone, Copy, Default)]
pub struct GuidedRelu;

impl<B: GuidedBackend> Rectifier<B> for GuidedRelu {
    fn relu<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let x = x.into_primitive().tensor();
        Tensor::from_primitive(TensorPrimitive::Float(B::guided_relu(x)))
    }
}

/// Guided backpropagation of each image's `targets` score, `[batch, colours, height, width]`:
/// one forward and one backward for the batch, parameters frozen (BatchNorm on running
/// statistics, so each image's gradient is its own).
pub fn guided_backprop<B, M>(
    model: &M,
    images: Tensor<B::InnerBackend, 4>,
    targets: &[usize],
) -> Tensor<B::InnerBackend, 4>
where
    B: GuidedBackend,
    M: AutodiffModule<B> + SplitModel<B>,
{
    let frozen = model.clone().no_grad();
    let images = Tensor::<B, 4>::from_inner(images).require_grad();
    let last = frozen.last_layer();
    let activations = frozen.features_at(images.clone(), last, &GuidedRelu);
    let logits = frozen.head(activations, &GuidedRelu);
    let grads = target_score_sum(class_scores(logits), targets).backward();
    images
        .grad(&grads)
        .expect("the logits depend on the images")
}

/// Guided Grad-CAM: guided gradients `[batch, colours, height, width]` weighted by maps
/// `[batch, height, width]` already at the images' size (post-processed CAMs).
pub fn guided_cam<B: Backend>(guided: Tensor<B, 4>, maps: Tensor<B, 3>) -> Tensor<B, 4> {
    guided * maps.unsqueeze_dim(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    type Ad = Autodiff<Flex>;

    #[test]
    fn only_positive_gradients_pass_where_the_input_was_positive() {
        let device = Default::default();
        let x = Tensor::<Ad, 1>::from_data([-1.0f32, 2.0, 3.0, 0.5], &device).require_grad();
        let y = GuidedRelu.relu(x.clone());
        assert_eq!(y.to_data().to_vec::<f32>().unwrap(), [0.0, 2.0, 3.0, 0.5]);
        // Incoming gradients 5, 7, −2, 0: the first is blocked by x < 0, the third by its sign.
        let upstream = Tensor::<Ad, 1>::from_data([5.0f32, 7.0, -2.0, 0.0], &device);
        let grads = (y * upstream).sum().backward();
        let g = x.grad(&grads).unwrap().into_data().to_vec::<f32>().unwrap();
        assert_eq!(g, [0.0, 7.0, 0.0, 0.0]);
    }

    #[test]
    fn a_plain_relu_lets_negative_gradients_through() {
        let device = Default::default();
        let x = Tensor::<Ad, 1>::from_data([2.0f32], &device).require_grad();
        let y = model::PlainRelu.relu(x.clone());
        let grads = (y * -3.0).sum().backward();
        let g = x.grad(&grads).unwrap().into_data().to_vec::<f32>().unwrap();
        assert_eq!(g, [-3.0]);
    }
}
