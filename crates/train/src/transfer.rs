//! Fine-tuning in the training loop: the pretrained start with a new classifier, what trains
//! in each epoch, the classifier's inputs computed once for the probe epochs, and the two
//! learning rates.

use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use data::{Batch, Batcher, ImageSet};
use model::{AutodiffKernels, Kernels, ModelSpec, Network, PlainRelu, SplitModel, Trainable};

use crate::config::PretrainedBatchNorm;
use crate::{TrainConfig, TrainError};

/// The most memory the probe's cached features may take; beyond it the probe epochs run the
/// frozen network on every batch instead.
const FEATURE_BYTES: usize = 1 << 30;

/// A fresh model of `spec`: initialised at random, or, when the config names pretrained
/// weights, loaded from them with a new classifier for the data set's classes.
pub fn initial_model<B: AutodiffKernels>(
    config: &TrainConfig,
    spec: &ModelSpec,
    device: &B::Device,
) -> Result<Network<B>, TrainError> {
    let Some(weights) = &config.model.finetune.weights else {
        return spec
            .init::<B>(device)
            .map_err(|message| TrainError::Config {
                origin: "[model]".into(),
                message,
            });
    };
    let config_error = |message| TrainError::Config {
        origin: "[model]".into(),
        message,
    };
    spec.validate().map_err(config_error)?;
    let loaded = match spec.architecture {
        model::Architecture::Onnx(_) => Network::Onnx(
            model::OnnxNetwork::load(weights, Some(spec.image_size), device)
                .map_err(|e| config_error(e.to_string()))?,
        ),
        _ => pretrained::load::<B>(&spec.architecture, weights, spec.image_size, device)?.model,
    };
    // A fresh classifier even where the file's has as many outputs: its classes are others.
    let outputs = spec.head.outputs(spec.num_classes);
    loaded
        .with_new_classifier(outputs, device)
        .map_err(config_error)
}

/// Whether epoch `epoch` (from 1) trains the classifier alone (a probe epoch).
pub fn probing(config: &TrainConfig, epoch: usize) -> bool {
    epoch <= config.model.finetune.probe_epochs
}

/// `model` with what trains in `epoch` trained and the rest frozen (frozen BatchNorm layers
/// keep their running statistics; in a fine-tuned network, by default, all of them). An
/// ordinary run, which trains everything, is unchanged.
pub fn for_epoch<B: Kernels>(
    model: Network<B>,
    config: &TrainConfig,
    epoch: usize,
) -> Result<Network<B>, TrainError>
where
    Network<B>: SplitModel<B>,
{
    let finetune = &config.model.finetune;
    let scope = match probing(config, epoch) {
        true => &Trainable::Classifier,
        false => &finetune.train,
    };
    if finetune.weights.is_none() && finetune.probe_epochs == 0 && *scope == Trainable::All {
        return Ok(model);
    }
    let model = model.trained(scope).map_err(|message| TrainError::Config {
        origin: "[model]".into(),
        message,
    })?;
    Ok(match (&finetune.weights, finetune.batch_norm) {
        (Some(_), PretrainedBatchNorm::Frozen) => model.with_frozen_batch_norm(),
        _ => model,
    })
}

/// The classifier's input (`SplitModel::embedding`) of every image of a set, computed once.
pub struct Features {
    /// Numbers per image.
    pub width: usize,
    /// `[images, width]`, row-major, in the set's order.
    pub rows: Vec<f32>,
}

impl Features {
    /// The features of `set` through the frozen `model` (without augmentation), or `None` when
    /// they would not fit in [`FEATURE_BYTES`]. `progress` is told each batch's size.
    pub fn of<B: Kernels>(
        model: &Network<B>,
        set: &ImageSet,
        batcher: &Batcher,
        batch_size: usize,
        device: &B::Device,
        progress: &mut dyn FnMut(usize),
    ) -> Option<Features> {
        let batcher = Batcher {
            augmentation: Default::default(),
            ..*batcher
        };
        let indexed: Vec<_> = set.samples.iter().enumerate().collect();
        let mut rows = Vec::new();
        let mut width = 0;
        for chunk in indexed.chunks(batch_size.max(1)) {
            let (images, _) = batcher.batch(chunk, 0).to_tensors::<B>(device);
            let embedding = model.embedding(model.features(images));
            width = embedding.dims()[1];
            if set.len() * width * size_of::<f32>() > FEATURE_BYTES {
                return None;
            }
            rows.extend(embedding.into_data().iter::<f32>());
            progress(chunk.len());
        }
        Some(Features { width, rows })
    }

    /// The rows of `indices` (into the set) as a batch of `[n, width, 1, 1]` "images".
    pub fn batch(&self, indices: &[usize], set: &ImageSet) -> Batch {
        let mut images = Vec::with_capacity(indices.len() * self.width);
        for &i in indices {
            images.extend_from_slice(&self.rows[i * self.width..(i + 1) * self.width]);
        }
        Batch {
            images,
            labels: indices.iter().map(|&i| set.samples[i].label).collect(),
            dims: [indices.len(), self.width, 1, 1],
        }
    }
}

/// Logits of a batch: images through the whole network, or cached features (`[n, width, 1,
/// 1]`) through the classifier alone.
pub fn logits<B: Kernels>(model: &Network<B>, input: Tensor<B, 4>, features: bool) -> Tensor<B, 2> {
    match features {
        true => model.head_from_embedding(input.flatten(1, 3), &PlainRelu),
        false => model.forward(input),
    }
}

/// One optimiser step. With `pretrained_lr`, the classifier's parameters step at `lr` and the
/// pretrained ones at `pretrained_lr` (each parameter once: two passes over disjoint sets).
/// `average` makes the replicas' gradients one before they are applied (on one device, the
/// gradients as they are).
pub fn step<B, O, E>(
    optimizer: &mut O,
    model: Network<B>,
    grads: <B as AutodiffBackend>::Gradients,
    lr: f64,
    pretrained_lr: Option<f64>,
    mut average: impl FnMut(GradientsParams) -> Result<GradientsParams, E>,
) -> Result<Network<B>, E>
where
    B: AutodiffKernels,
    O: Optimizer<Network<B>, B>,
    Network<B>: AutodiffModule<B>,
{
    let Some(pretrained_lr) = pretrained_lr else {
        let grads = average(GradientsParams::from_grads(grads, &model))?;
        return Ok(optimizer.step(lr, model, grads));
    };
    let mut grads = grads;
    let classifier = GradientsParams::from_params(&mut grads, &model, &model.classifier_params());
    let pretrained = average(GradientsParams::from_grads(grads, &model))?;
    let model = optimizer.step(lr, model, average(classifier)?);
    if pretrained.is_empty() {
        return Ok(model);
    }
    Ok(optimizer.step(pretrained_lr, model, pretrained))
}
