//! Average Drop and Increase in Confidence (Chattopadhyay et al. 2018, Grad-CAM++ §5.1).

use burn::prelude::*;

/// Percentages over a set of images.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Confidence {
    /// Mean of max(0, Y − O) / Y, in %: lower is better.
    pub average_drop: f32,
    /// Share of images with O > Y, in %: higher is better.
    pub increase: f32,
}

/// Y is the target class's probability on the image, O on the image multiplied by its map
/// (pixel-wise, every channel, on the preprocessed tensor as pytorch-grad-cam's
/// `CamMultImageConfidenceChange`). `maps[i]` is `h × w` in [0, 1].
pub fn average_drop_and_increase<B: Backend>(
    probabilities: &dyn Fn(Tensor<B, 4>) -> Tensor<B, 2>,
    images: Tensor<B, 4>,
    maps: &[Vec<f32>],
    targets: &[usize],
) -> Confidence {
    let changes = confidence_changes(probabilities, images, maps, targets);
    let n = changes.len() as f32;
    Confidence {
        average_drop: changes.iter().map(|c| c.drop).sum::<f32>() / n,
        increase: 100.0 * changes.iter().filter(|c| c.increased).count() as f32 / n,
    }
}

/// One image's terms of [`Confidence`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConfidenceChange {
    /// 100 · max(0, Y − O) / Y.
    pub drop: f32,
    /// O > Y.
    pub increased: bool,
}

/// Each image's change of confidence, as [`average_drop_and_increase`] averages them.
pub fn confidence_changes<B: Backend>(
    probabilities: &dyn Fn(Tensor<B, 4>) -> Tensor<B, 2>,
    images: Tensor<B, 4>,
    maps: &[Vec<f32>],
    targets: &[usize],
) -> Vec<ConfidenceChange> {
    let [n, _, h, w] = images.dims();
    let device = images.device();
    let masks = Tensor::<B, 3>::from_data(TensorData::new(maps.concat(), [n, h, w]), &device)
        .reshape([n, 1, h, w]);
    let y = target_column(probabilities(images.clone()), targets);
    let o = target_column(probabilities(images * masks), targets);
    y.iter()
        .zip(&o)
        .map(|(&y, &o)| ConfidenceChange {
            drop: 100.0 * (y - o).max(0.0) / y,
            increased: o > y,
        })
        .collect()
}

/// Row i's entry at column `targets[i]`.
pub(crate) fn target_column<B: Backend>(
    probabilities: Tensor<B, 2>,
    targets: &[usize],
) -> Vec<f32> {
    let [_, classes] = probabilities.dims();
    let values = probabilities
        .into_data()
        .to_vec::<f32>()
        .expect("f32 probabilities");
    targets
        .iter()
        .enumerate()
        .map(|(i, &t)| values[i * classes + t])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::activation::softmax;

    /// Two classes whose logits are ± the mean of the left half of channel 0.
    fn left_half(x: Tensor<Flex, 4>) -> Tensor<Flex, 2> {
        let [n, _, h, w] = x.dims();
        let left = x
            .slice([0..n, 0..1, 0..h, 0..w / 2])
            .mean_dim(3)
            .mean_dim(2)
            .reshape([n, 1]);
        softmax(Tensor::cat(vec![left.clone(), left.neg()], 1), 1)
    }

    #[test]
    fn a_map_on_the_evidence_keeps_the_confidence() {
        let device = Default::default();
        let image = Tensor::<Flex, 4>::ones([1, 1, 2, 2], &device) * 2.0;
        let left = vec![1.0, 0.0, 1.0, 0.0];
        let right = vec![0.0, 1.0, 0.0, 1.0];
        let on = average_drop_and_increase(&left_half, image.clone(), &[left], &[0]);
        assert_eq!(on.average_drop, 0.0);
        assert_eq!(on.increase, 0.0);
        // Masking out the evidence: logit 2 → 0, p = σ(4) → 0.5.
        let off = average_drop_and_increase(&left_half, image, &[right], &[0]);
        let y = 1.0 / (1.0 + (-4.0f32).exp());
        assert!(
            (off.average_drop - 100.0 * (y - 0.5) / y).abs() < 1e-3,
            "{off:?}"
        );
    }
}
