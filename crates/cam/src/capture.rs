//! A and dScore/dA without hooks: run `features` on the inference model, make its output a
//! fresh autodiff leaf, run `classifier` on that leaf, and backpropagate the target scores.

use burn::module::AutodiffModule;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use model::SplitModel;
use thiserror::Error;

/// Which class score to explain for one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Target {
    /// The class with the largest logit.
    #[default]
    Predicted,
    /// The class with the (n+1)-th largest logit: `Ranked(0)` is `Predicted`.
    Ranked(usize),
    Class(usize),
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CaptureError {
    #[error("{targets} targets for {images} images")]
    TargetCount { targets: usize, images: usize },
    #[error("class {class} does not exist: the model has {classes} classes")]
    NoSuchClass { class: usize, classes: usize },
}

/// What a CAM method needs, on the inference backend.
#[derive(Debug, Clone)]
pub struct Capture<B: Backend> {
    /// A, `[batch, channels, h, w]`.
    pub activations: Tensor<B, 4>,
    /// dS/dA for each image's own target score, same shape as A.
    pub gradients: Tensor<B, 4>,
    /// Logits `[batch, classes]`.
    pub logits: Tensor<B, 2>,
    /// The class explained for each image.
    pub targets: Vec<usize>,
}

/// One forward and one backward for the whole batch; each image gets its own target.
///
/// `features` runs on the inference model (`valid()`: BatchNorm on running statistics), so the
/// map is the deployed network's. The classifier runs on the autodiff model: the architectures
/// of `model` keep BatchNorm and dropout out of their classifiers, so it computes the same
/// function there.
pub fn capture<B, M>(
    model: &M,
    images: Tensor<B::InnerBackend, 4>,
    targets: &[Target],
) -> Result<Capture<B::InnerBackend>, CaptureError>
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + SplitModel<B>,
    M::InnerModule: SplitModel<B::InnerBackend>,
{
    let batch = images.dims()[0];
    if targets.len() != batch {
        return Err(CaptureError::TargetCount {
            targets: targets.len(),
            images: batch,
        });
    }
    let activations = model.valid().features(images);
    let leaf = Tensor::<B, 4>::from_inner(activations.clone()).require_grad();
    let logits = model.classifier(leaf.clone());
    let [_, classes] = logits.dims();
    let scores = logits
        .clone()
        .inner()
        .into_data()
        .to_vec::<f32>()
        .expect("f32 logits");
    let targets = targets
        .iter()
        .zip(scores.chunks(classes))
        .map(|(target, row)| match *target {
            Target::Predicted => Ok(ranked(row, 0)),
            Target::Ranked(n) if n < classes => Ok(ranked(row, n)),
            Target::Ranked(n) => Err(CaptureError::NoSuchClass { class: n, classes }),
            Target::Class(class) if class < classes => Ok(class),
            Target::Class(class) => Err(CaptureError::NoSuchClass { class, classes }),
        })
        .collect::<Result<Vec<_>, _>>()?;

    // Σ_i logit[i, target_i]: image i's gradient only sees its own score.
    let mut mask = vec![0f32; batch * classes];
    for (i, &t) in targets.iter().enumerate() {
        mask[i * classes + t] = 1.0;
    }
    let mask = Tensor::<B, 2>::from_data(TensorData::new(mask, [batch, classes]), &logits.device());
    let grads = (logits.clone() * mask).sum().backward();
    let gradients = leaf
        .grad(&grads)
        .expect("the classifier depends on its input");
    Ok(Capture {
        activations,
        gradients,
        logits: logits.inner(),
        targets,
    })
}

/// The index of the (n+1)-th largest value (ties keep the lower index first).
fn ranked(row: &[f32], n: usize) -> usize {
    let mut order: Vec<usize> = (0..row.len()).collect();
    order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
    order[n]
}
