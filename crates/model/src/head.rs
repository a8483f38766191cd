//! How a classifier's outputs read as classes. A softmax head has one logit per class; a binary
//! head has one output z, the logit of class 1 (PyTorch's `Linear(…, 1)` + `Sigmoid` +
//! `BCELoss`, the Grad-CAM tutorial's SimpleCNN). Everything downstream asks these functions,
//! so a model with one output is a binary classifier wherever it goes.

use burn::nn::loss::CrossEntropyLossConfig;
use burn::prelude::*;
use burn::tensor::activation::{sigmoid, softmax};
use serde::{Deserialize, Serialize};

/// The last layer of a classifier, as written in a config's `[model]` table (`head = "binary"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Head {
    /// One logit per class, softmax, cross-entropy.
    #[default]
    Softmax,
    /// Two classes, one output: the logit of class 1; sigmoid, binary cross-entropy.
    Binary,
}

impl Head {
    /// How many numbers the model outputs for `classes` classes.
    pub fn outputs(self, classes: usize) -> usize {
        match self {
            Head::Softmax => classes,
            Head::Binary => 1,
        }
    }

    /// The head of a model that outputs `outputs` numbers per image.
    pub fn of_outputs(outputs: usize) -> Head {
        if outputs == 1 {
            Head::Binary
        } else {
            Head::Softmax
        }
    }
}

/// The score of each class, `[batch, classes]`, as pytorch-grad-cam's targets read them: the
/// logits of a softmax head; `[-z, z]` for a binary head (`BinaryClassifierOutputTarget`: the
/// output for class 1, its negation for class 0). The largest score is the predicted class.
pub fn class_scores<B: Backend>(outputs: Tensor<B, 2>) -> Tensor<B, 2> {
    match Head::of_outputs(outputs.dims()[1]) {
        Head::Softmax => outputs,
        Head::Binary => Tensor::cat(vec![outputs.clone().neg(), outputs], 1),
    }
}

/// The probability of each class, `[batch, classes]`: softmax, or `[1 - σ(z), σ(z)]`.
pub fn class_probabilities<B: Backend>(outputs: Tensor<B, 2>) -> Tensor<B, 2> {
    match Head::of_outputs(outputs.dims()[1]) {
        Head::Softmax => softmax(outputs, 1),
        Head::Binary => {
            let positive = sigmoid(outputs);
            Tensor::cat(vec![positive.clone().neg().add_scalar(1.0), positive], 1)
        }
    }
}

/// The mean training loss: cross-entropy, or binary cross-entropy of σ(z) (PyTorch's
/// `BCELoss` after `Sigmoid`).
pub fn classification_loss<B: Backend>(
    outputs: Tensor<B, 2>,
    labels: Tensor<B, 1, Int>,
) -> Tensor<B, 1> {
    let loss = CrossEntropyLossConfig::new().init(&outputs.device());
    match Head::of_outputs(outputs.dims()[1]) {
        Head::Softmax => loss.forward(outputs, labels),
        // softmax([-z/2, z/2]) = [σ(-z), σ(z)], so its cross-entropy is -log σ(±z), the binary
        // cross-entropy, computed with burn's stable log-softmax.
        Head::Binary => loss.forward(class_scores(outputs).div_scalar(2.0), labels),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type B = burn::backend::Flex;

    fn column(values: &[f32]) -> Tensor<B, 2> {
        Tensor::from_data(
            TensorData::new(values.to_vec(), [values.len(), 1]),
            &Default::default(),
        )
    }

    fn values<const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
        t.into_data().to_vec().unwrap()
    }

    #[test]
    fn one_output_is_a_binary_classifier() {
        let z = column(&[2.0, -0.5]);
        assert_eq!(values(class_scores(z.clone())), [-2.0, 2.0, 0.5, -0.5]);
        let sigma = |x: f32| 1.0 / (1.0 + (-x).exp());
        let p = values(class_probabilities(z));
        let want = [1.0 - sigma(2.0), sigma(2.0), 1.0 - sigma(-0.5), sigma(-0.5)];
        for (got, want) in p.iter().zip(want) {
            assert!((got - want).abs() < 1e-6, "{p:?}");
        }
    }

    #[test]
    fn the_binary_loss_is_binary_cross_entropy() {
        let z = column(&[2.0, -0.5, 30.0]);
        let labels = Tensor::<B, 1, Int>::from_data([1, 1, 0], &Default::default());
        let got = values(classification_loss(z, labels))[0];
        // -[log σ(2) + log σ(-0.5) + log(1 - σ(30))] / 3, by hand.
        let log_sigma = |x: f64| -(1.0 + (-x).exp()).ln();
        let want = -(log_sigma(2.0) + log_sigma(-0.5) + log_sigma(-30.0)) / 3.0;
        assert!((got as f64 - want).abs() < 1e-5, "{got} vs {want}");
    }

    #[test]
    fn several_outputs_are_softmax_logits() {
        let logits = Tensor::<B, 2>::from_data([[1.0, 2.0, 0.0]], &Default::default());
        assert_eq!(values(class_scores(logits.clone())), [1.0, 2.0, 0.0]);
        let p = values(class_probabilities(logits));
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6 && p[1] > p[0]);
        assert_eq!(Head::Binary.outputs(2), 1);
        assert_eq!(Head::Softmax.outputs(7), 7);
    }
}
