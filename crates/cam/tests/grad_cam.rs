//! Grad-CAM numbers with known answers: worked by hand, against finite differences, and the
//! GAP → Linear identity.

use burn::backend::{Autodiff, Flex};
use burn::module::{AutodiffModule, Param};
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::Distribution;
use cam::postprocess::{Normalization, relu_normalize};
use cam::{CaptureError, Target, capture, grad_cam};
use model::{
    Architecture, CifarResNetConfig, InputShape, ModelSpec, Rectifier, SplitModel,
    TutorialCnnConfig,
};

type Ad = Autodiff<Flex>;

/// features = identity (A is the image); classifier = global average pool → Linear.
#[derive(Module, Debug)]
struct PoolLinear<B: Backend> {
    linear: Linear<B>,
}

impl<B: Backend> SplitModel<B> for PoolLinear<B> {
    fn architecture(&self) -> &'static str {
        "pool_linear"
    }
    fn input_shape(&self) -> InputShape {
        InputShape::AtLeast {
            channels: 2,
            min: 1,
        }
    }
    fn layer_names(&self) -> Vec<String> {
        vec!["identity".into()]
    }
    fn layer<R: Rectifier<B>>(&self, _: usize, images: Tensor<B, 4>, _: &R) -> Tensor<B, 4> {
        images
    }
    fn embedding(&self, a: Tensor<B, 4>) -> Tensor<B, 2> {
        a.mean_dim(3).mean_dim(2).flatten(1, 3)
    }
    fn head_from_embedding<R: Rectifier<B>>(&self, pooled: Tensor<B, 2>, _: &R) -> Tensor<B, 2> {
        self.linear.forward(pooled)
    }
}

fn values<const D: usize>(t: Tensor<Flex, D>) -> Vec<f32> {
    t.into_data().to_vec().unwrap()
}

#[test]
fn a_map_worked_out_by_hand() {
    let device = Default::default();
    let mut model = PoolLinear {
        linear: LinearConfig::new(2, 2).init::<Ad>(&device),
    };
    // Class 0 scores mean(A0) − mean(A1) + 0.5; class 1 scores mean(A1).
    model.linear.weight = Param::from_data([[1.0f32, 0.0], [-1.0, 1.0]], &device);
    model.linear.bias = Some(Param::from_data([0.5f32, 0.0], &device));
    let a = [1.0f32, 2.0, 3.0, 4.0, 0.0, 0.0, 0.0, 8.0];
    let images = Tensor::<Flex, 4>::from_data(TensorData::new(a.to_vec(), [1, 2, 2, 2]), &device);

    let captured = capture(&model, images, &[Target::Class(0)]).unwrap();
    assert_eq!(values(captured.outputs.clone()), vec![1.0, 2.0]); // 2.5 − 2 + 0.5, and 2
    assert_eq!(
        values(captured.gradients.clone()),
        vec![0.25, 0.25, 0.25, 0.25, -0.25, -0.25, -0.25, -0.25]
    );
    // 0.25·A0 − 0.25·A1
    let raw = values(grad_cam(captured.activations, captured.gradients));
    assert_eq!(raw, vec![0.25, 0.5, 0.75, -1.0]);
    let shown = relu_normalize(&raw, Normalization::MinMax);
    for (got, want) in shown.iter().zip([1.0 / 3.0, 2.0 / 3.0, 1.0, 0.0]) {
        assert!((got - want).abs() < 1e-6, "{shown:?}");
    }
    assert_eq!(
        relu_normalize(&raw, Normalization::Max),
        vec![1.0 / 3.0, 2.0 / 3.0, 1.0, 0.0]
    );

    // The predicted class (1: logit 2 > 1) is the default target.
    let images = Tensor::<Flex, 4>::from_data(TensorData::new(a.to_vec(), [1, 2, 2, 2]), &device);
    assert_eq!(
        capture(&model, images, &[Target::Predicted])
            .unwrap()
            .targets,
        vec![1]
    );
}

#[test]
fn gradients_match_central_differences() {
    let device = Default::default();
    let spec = ModelSpec {
        architecture: Architecture::TutorialCnn(TutorialCnnConfig {
            conv_channels: [3, 4, 3],
            kernel_sizes: [3, 3, 3],
            hidden: [12, 8],
        }),
        num_classes: 3,
        head: model::Head::Softmax,
        channels: 3,
        image_size: [10, 10],
    };
    Ad::seed(&device, 7);
    let model = spec.init::<Ad>(&device).unwrap();
    let images = Tensor::<Flex, 4>::random([2, 3, 10, 10], Distribution::Normal(0.0, 1.0), &device);
    let captured = capture(&model, images, &[Target::Class(2), Target::Class(0)]).unwrap();
    let a = values(captured.activations.clone());
    let g = values(captured.gradients.clone());
    let dims = captured.activations.dims();
    let per_image = dims[1] * dims[2] * dims[3];
    let classifier = model.valid();
    let score = |a: &[f32], image: usize, class: usize| -> f64 {
        let t = Tensor::<Flex, 4>::from_data(TensorData::new(a.to_vec(), dims), &device);
        values(classifier.classifier(t))[image * 3 + class] as f64
    };
    // A ReLU kink within eps of a point makes the central difference a blend of two slopes;
    // such points show as one-sided differences that disagree and are left out.
    let eps = 1e-3f32;
    let unperturbed = [score(&a, 0, 2), score(&a, 1, 0)];
    let (mut checked, mut kinks) = (0, 0);
    for index in 0..2 * per_image {
        let (image, class) = if index < per_image { (0, 2) } else { (1, 0) };
        let (mut plus, mut minus) = (a.clone(), a.clone());
        plus[index] += eps;
        minus[index] -= eps;
        let here = unperturbed[image];
        let right = (score(&plus, image, class) - here) / eps as f64;
        let left = (here - score(&minus, image, class)) / eps as f64;
        if (right - left).abs() > 1e-3 + 1e-2 * right.abs() {
            kinks += 1;
            continue;
        }
        let numeric = (right + left) / 2.0;
        assert!(
            (numeric - g[index] as f64).abs() < 2e-3 + 2e-2 * numeric.abs(),
            "at {index}: autodiff {} vs {numeric}",
            g[index]
        );
        checked += 1;
    }
    // Ties between zeros in the max-pool after A are kinks too: about a fifth of the points.
    assert!(
        checked >= per_image,
        "{checked} points checked, {kinks} at kinks"
    );
}

#[test]
fn pooled_linear_heads_give_maps_that_sum_to_the_logit_minus_bias() {
    let device = Default::default();
    let spec = ModelSpec {
        architecture: Architecture::CifarResnet(CifarResNetConfig { depth: 8, width: 4 }),
        num_classes: 5,
        head: model::Head::Softmax,
        channels: 3,
        image_size: [12, 12],
    };
    let model = spec.init::<Ad>(&device).unwrap();
    let images = Tensor::<Flex, 4>::random([3, 3, 12, 12], Distribution::Normal(0.0, 1.0), &device);
    let targets = [Target::Class(4), Target::Predicted, Target::Class(0)];
    let captured = capture(&model, images, &targets).unwrap();
    let logits = values(captured.outputs.clone());
    let raw = grad_cam(captured.activations.clone(), captured.gradients.clone());
    let [_, h, w] = raw.dims();
    let sums = values(raw.sum_dim(2).sum_dim(1).flatten::<1>(0, 2));
    let model::Network::CifarResnet(resnet) = &model else {
        unreachable!()
    };
    let bias = values(resnet.linear.bias.as_ref().unwrap().val().inner());
    for (i, &class) in captured.targets.iter().enumerate() {
        let expected = logits[i * 5 + class] - bias[class];
        assert!(
            (sums[i] - expected).abs() < 1e-4 * (1.0 + expected.abs()),
            "image {i}: {} vs {expected}",
            sums[i]
        );
    }
    assert_eq!((h, w), (3, 3));
}

#[test]
fn bad_targets_are_errors() {
    let device = Default::default();
    let model = PoolLinear {
        linear: LinearConfig::new(2, 2).init::<Ad>(&device),
    };
    let images = || Tensor::<Flex, 4>::zeros([2, 2, 2, 2], &device);
    assert_eq!(
        capture(&model, images(), &[Target::Predicted]).unwrap_err(),
        CaptureError::TargetCount {
            targets: 1,
            images: 2
        }
    );
    assert_eq!(
        capture(&model, images(), &[Target::Predicted, Target::Class(7)]).unwrap_err(),
        CaptureError::NoSuchClass {
            class: 7,
            classes: 2
        }
    );
}
