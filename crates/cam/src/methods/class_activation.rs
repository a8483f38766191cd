//! CAM, the class activation map (Zhou et al. 2016), as torch-cam's `CAM`: for a network whose
//! head is global average pooling then one Linear layer, the logit of class c is the spatial
//! mean of Σ_k W_ck A_k plus a bias, so the map is Σ_k W_ck A_k: the classifier's own weights,
//! no gradient. Other heads have no such weights ([`cam_applies`] says why).

use burn::prelude::*;
use model::SplitModel;

use super::weighted;

/// Why CAM cannot explain `model` at `layer`, if it cannot.
pub fn cam_applies<B: Backend, M: SplitModel<B>>(model: &M, layer: usize) -> Result<(), String> {
    let architecture = model.architecture();
    if model.class_weights().is_none() {
        return Err(format!(
            "cam needs a head of global average pooling then one Linear layer (ResNets, \
             EfficientNet-Lite, MobileNetV2, DenseNet); {architecture} has another: its \
             gradient methods (gradcam) explain it"
        ));
    }
    if layer != model.last_layer() {
        let last = &model.layer_names()[model.last_layer()];
        return Err(format!(
            "cam reads the classifier's weights, which apply at the last layer ({last}) only"
        ));
    }
    Ok(())
}

/// W_ck A_k for each image's target class c, `[batch, channels, h, w]`. A binary head's
/// one output scores class 1 as z and class 0 as −z, so class 0's weights are −W.
pub fn class_activation<B: Backend, M: SplitModel<B>>(
    model: &M,
    activations: Tensor<B, 4>,
    targets: &[usize],
) -> Tensor<B, 4> {
    let weights = model
        .class_weights()
        .expect("cam_applies was checked: the head is pooling then Linear");
    let weights = match weights.dims()[0] {
        1 => Tensor::cat(vec![weights.clone().neg(), weights], 0),
        _ => weights,
    };
    let device = activations.device();
    let rows: Vec<i64> = targets.iter().map(|&t| t as i64).collect();
    let rows = Tensor::<B, 1, Int>::from_data(TensorData::new(rows, [targets.len()]), &device);
    weighted(activations, weights.select(0, rows))
}
