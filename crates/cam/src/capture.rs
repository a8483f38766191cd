//! A and dScore/dA without hooks: run the model up to the chosen layer on the inference model,
//! make its output a fresh autodiff leaf, run the rest of the model on that leaf, and
//! backpropagate the target scores.

use burn::module::AutodiffModule;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use model::{PlainRelu, SplitModel, class_probabilities, class_scores};
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

/// Which number of the target class is differentiated (and, for Score-CAM and Ablation-CAM,
/// compared).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Score {
    /// The class score: its logit (pytorch-grad-cam's `ClassifierOutputTarget`); for a binary
    /// head, the output z for class 1 and -z for class 0 (`BinaryClassifierOutputTarget`).
    #[default]
    Logit,
    /// The class probability: softmax (`ClassifierOutputSoftmaxTarget`); for a binary head,
    /// σ(z) for class 1 — what the Grad-CAM tutorial backpropagates — and 1 − σ(z) for class 0.
    Probability,
    /// The logit minus the class's cross-entropy, z_c − (log Σ_j e^{z_j} − z_c): before and
    /// after the softmax at once (pytorch-grad-cam's `ClassifierOutputReST`, Shapley-CAM's
    /// target; for a binary head, of its class scores ±z).
    Rest,
}

impl Score {
    /// The number of every class for model outputs `[batch, outputs]` → `[batch, classes]`.
    pub fn of<B: Backend>(self, outputs: Tensor<B, 2>) -> Tensor<B, 2> {
        match self {
            Score::Logit => class_scores(outputs),
            Score::Probability => class_probabilities(outputs),
            Score::Rest => {
                let z = class_scores(outputs);
                // log Σ e^z, shifted by the row's maximum so that e^z cannot overflow.
                let top = z.clone().max_dim(1).detach();
                let log_sum = (z.clone() - top.clone()).exp().sum_dim(1).log() + top;
                z * 2.0 - log_sum
            }
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CaptureError {
    #[error("{targets} targets for {images} images")]
    TargetCount { targets: usize, images: usize },
    #[error("class {class} does not exist: the model has {classes} classes")]
    NoSuchClass { class: usize, classes: usize },
    #[error("layer {layer} does not exist: the model has {layers} layers")]
    NoSuchLayer { layer: usize, layers: usize },
}

/// What a CAM method needs, on the inference backend.
#[derive(Debug, Clone)]
pub struct Capture<B: Backend> {
    /// A, `[batch, channels, h, w]`, as the CAM reads it (`SplitModel::cam_view`).
    pub activations: Tensor<B, 4>,
    /// dS/dA for each image's own target score, same shape as A.
    pub gradients: Tensor<B, 4>,
    /// The layer's output as the rest of the model takes it (A itself, but for a transformer
    /// the token sequence), which Ablation-CAM changes and runs on.
    pub layer_output: Tensor<B, 4>,
    /// The model's outputs `[batch, outputs]`: logits, or one column for a binary head.
    pub outputs: Tensor<B, 2>,
    /// What the gradients are of.
    pub score: Score,
    /// The class explained for each image.
    pub targets: Vec<usize>,
    /// The index of the layer whose output A is (see `SplitModel::layer_names`).
    pub layer: usize,
    /// For Smooth Grad-CAM++ ([`capture_smoothed`]): the gradients' moments over noisy copies
    /// of the images.
    pub noisy: Option<NoisyGradients<B>>,
}

/// SmoothGrad's statistics of dS/dA over noisy copies of the input.
#[derive(Debug, Clone)]
pub struct NoisyGradients<B: Backend> {
    /// The mean over the copies of (dS/dA)²,
    pub squares: Tensor<B, 4>,
    /// and of (dS/dA)³.
    pub cubes: Tensor<B, 4>,
    /// The last copy's A and dS/dA: torch-cam's SmoothGradCAMpp weighs these in place of the
    /// image's A and the mean gradient (the parity test feeds them to it).
    pub last_activations: Tensor<B, 4>,
    pub last_gradients: Tensor<B, 4>,
}

impl<B: Backend> Capture<B> {
    /// Every class's score, `[batch, classes]`, as `score` defines it.
    pub fn scores(&self) -> Tensor<B, 2> {
        self.score.of(self.outputs.clone())
    }

    /// Every class's probability, `[batch, classes]`.
    pub fn probabilities(&self) -> Tensor<B, 2> {
        class_probabilities(self.outputs.clone())
    }
}

/// [`capture_at`] the last layer, the output of `features`.
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
    capture_at(model, images, targets, model.last_layer())
}

/// [`capture_scored`] with the class logits as scores.
pub fn capture_at<B, M>(
    model: &M,
    images: Tensor<B::InnerBackend, 4>,
    targets: &[Target],
    layer: usize,
) -> Result<Capture<B::InnerBackend>, CaptureError>
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + SplitModel<B>,
    M::InnerModule: SplitModel<B::InnerBackend>,
{
    capture_scored(model, images, targets, layer, Score::Logit)
}

/// One forward and one backward for the whole batch, A taken at `layer`; each image gets its
/// own target, whose `score` is differentiated. Targets are ranked by logit whatever `score`.
///
/// The layers up to `layer` run on the inference model (`valid()`), the rest on the autodiff
/// model with its parameters frozen, where BatchNorm also uses its running statistics: the map
/// is the deployed network's, and each image's gradient is its own.
pub fn capture_scored<B, M>(
    model: &M,
    images: Tensor<B::InnerBackend, 4>,
    targets: &[Target],
    layer: usize,
    score: Score,
) -> Result<Capture<B::InnerBackend>, CaptureError>
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + SplitModel<B>,
    M::InnerModule: SplitModel<B::InnerBackend>,
{
    let captured = capture_scored_each(model, images, &[targets], layer, score)?;
    Ok(captured
        .into_iter()
        .next()
        .expect("one request, one capture"))
}

/// [`capture_scored`] for several requests (each one target per image: `--class a,b,c`,
/// `--top-k`) at once: the layers up to `layer` run once, the rest of the model and the one
/// backward pass on as many copies of A as there are requests. One capture per request.
pub fn capture_scored_each<B, M>(
    model: &M,
    images: Tensor<B::InnerBackend, 4>,
    requests: &[&[Target]],
    layer: usize,
    score: Score,
) -> Result<Vec<Capture<B::InnerBackend>>, CaptureError>
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + SplitModel<B>,
    M::InnerModule: SplitModel<B::InnerBackend>,
{
    let objective =
        |outputs: Tensor<B, 2>, targets: &[usize]| target_score_sum(score.of(outputs), targets);
    capture_objective(model, images, requests, layer, score, objective)
}

/// Finer-CAM's capture (Zhang et al. 2025): the gradients are of the target's score against
/// the classes whose logits are nearest to it, pytorch-grad-cam's `FinerWeightedTarget`:
/// Σ_j p_j (z_c − α z_j) / Σ_j p_j over the `comparisons` nearest classes j (softmax p_j,
/// differentiated too). Grad-CAM of this capture is Finer-CAM.
pub fn capture_finer<B, M>(
    model: &M,
    images: Tensor<B::InnerBackend, 4>,
    targets: &[Target],
    layer: usize,
    alpha: f64,
) -> Result<Capture<B::InnerBackend>, CaptureError>
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + SplitModel<B>,
    M::InnerModule: SplitModel<B::InnerBackend>,
{
    let objective = |outputs: Tensor<B, 2>, targets: &[usize]| {
        let logits = class_scores(outputs);
        let values = logits.clone().inner().into_data().to_vec::<f32>();
        let values = values.expect("f32 logits");
        let classes = logits.dims()[1];
        let nearest: Vec<Vec<usize>> = targets
            .iter()
            .zip(values.chunks(classes))
            .map(|(&target, row)| nearest_classes(row, target, FINER_COMPARISONS))
            .collect();
        finer_score_sum(logits, targets, &nearest, alpha)
    };
    let captured = capture_objective(model, images, &[targets], layer, Score::Logit, objective)?;
    Ok(captured
        .into_iter()
        .next()
        .expect("one request, one capture"))
}

/// Smooth Grad-CAM++'s capture (Omeiza et al. 2019): the images' own A and targets, and the
/// gradients of `samples` copies of the images with `noise(s)` added (torch-cam: N(0, 0.3²)
/// on the preprocessed input), for the same classes: their mean as the gradients, and the
/// moments in `noisy`.
pub fn capture_smoothed<B, M>(
    model: &M,
    images: Tensor<B::InnerBackend, 4>,
    targets: &[Target],
    layer: usize,
    score: Score,
    samples: usize,
    mut noise: impl FnMut(usize) -> Tensor<B::InnerBackend, 4>,
) -> Result<Capture<B::InnerBackend>, CaptureError>
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + SplitModel<B>,
    M::InnerModule: SplitModel<B::InnerBackend>,
{
    let inference = model.valid();
    let mut captured =
        capture_without_gradients(&inference, images.clone(), targets, layer, score)?;
    let classes: Vec<Target> = captured.targets.iter().map(|&t| Target::Class(t)).collect();
    let (batch, samples) = (images.dims()[0], samples.max(1));
    // Several copies per pass: at batch 1 a pass of four images costs far less than four.
    let per_pass = (NOISY_PASS_IMAGES / batch).clamp(1, samples);
    let mut sums: Option<[Tensor<B::InnerBackend, 4>; 3]> = None;
    let mut last = None;
    let mut first = 0;
    while first < samples {
        let copies = per_pass.min(samples - first);
        let noisy: Vec<_> = (first..first + copies)
            .map(|s| images.clone() + noise(s))
            .collect();
        let targets = classes.repeat(copies);
        let pass = capture_scored(model, Tensor::cat(noisy, 0), &targets, layer, score)?;
        for copy in 0..copies {
            let of_copy = |t: &Tensor<B::InnerBackend, 4>| t.clone().narrow(0, copy * batch, batch);
            let g = of_copy(&pass.gradients);
            let g2 = g.clone().powi_scalar(2);
            let g3 = g2.clone() * g.clone();
            sums = Some(match sums {
                None => [g.clone(), g2, g3],
                Some([s1, s2, s3]) => [s1 + g.clone(), s2 + g2, s3 + g3],
            });
            last = Some((of_copy(&pass.activations), g));
        }
        first += copies;
    }
    let [mean, squares, cubes] = sums.expect("one copy or more");
    let (last_activations, last_gradients) = last.expect("one copy or more");
    let n = samples as f32;
    captured.gradients = mean / n;
    captured.noisy = Some(NoisyGradients {
        squares: squares / n,
        cubes: cubes / n,
        last_activations,
        last_gradients,
    });
    Ok(captured)
}

/// Images per forward pass of [`capture_smoothed`]'s noisy copies (whole copies of the batch,
/// at least one).
const NOISY_PASS_IMAGES: usize = 32;

/// pytorch-grad-cam's Finer-CAM compares with the 1st to 3rd nearest classes,
pub const FINER_COMPARISONS: usize = 3;
/// with this α (its default).
pub const FINER_ALPHA: f64 = 1.0;

/// The `count` classes whose scores are nearest `row[target]` (ascending distance, the lower
/// index first on ties), `target` itself left out.
fn nearest_classes(row: &[f32], target: usize, count: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..row.len()).filter(|&c| c != target).collect();
    let distance = |c: usize| (row[c] - row[target]).abs();
    order.sort_by(|&a, &b| distance(a).total_cmp(&distance(b)));
    order.truncate(count);
    order
}

/// Σ over images of Σ_j p_j (z_c − α z_j) / (Σ_j p_j + 1e-9).
fn finer_score_sum<B: Backend>(
    logits: Tensor<B, 2>,
    targets: &[usize],
    nearest: &[Vec<usize>],
    alpha: f64,
) -> Tensor<B, 1> {
    let [batch, classes] = logits.dims();
    let device = logits.device();
    let mut chosen = vec![0f32; batch * classes];
    let mut compared = vec![0f32; batch * classes];
    for (i, (&target, others)) in targets.iter().zip(nearest).enumerate() {
        chosen[i * classes + target] = 1.0;
        for &j in others {
            compared[i * classes + j] = 1.0;
        }
    }
    let mask =
        |values| Tensor::<B, 2>::from_data(TensorData::new(values, [batch, classes]), &device);
    let (chosen, compared) = (mask(chosen), mask(compared));
    let target = (logits.clone() * chosen).sum_dim(1);
    let weights = burn::tensor::activation::softmax(logits.clone(), 1) * compared;
    let total = weights.clone().sum_dim(1);
    let numerator = target * total.clone() - (weights * logits).sum_dim(1) * alpha;
    (numerator / (total + 1e-9)).sum()
}

/// A capture per request with `objective(outputs, targets)` backpropagated: A once, the rest
/// of the model on a copy of A per request, one backward pass.
fn capture_objective<B, M, F>(
    model: &M,
    images: Tensor<B::InnerBackend, 4>,
    requests: &[&[Target]],
    layer: usize,
    score: Score,
    objective: F,
) -> Result<Vec<Capture<B::InnerBackend>>, CaptureError>
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + SplitModel<B>,
    M::InnerModule: SplitModel<B::InnerBackend>,
    F: FnOnce(Tensor<B, 2>, &[usize]) -> Tensor<B, 1>,
{
    let batch = images.dims()[0];
    for targets in requests {
        check_request(model, batch, targets, layer)?;
    }
    let inference = model.valid();
    let activations = inference.features_at(images, layer, &PlainRelu);
    let copies = vec![activations.clone(); requests.len()];
    let leaf = Tensor::<B, 4>::from_inner(Tensor::cat(copies, 0)).require_grad();
    let outputs = model
        .clone()
        .no_grad()
        .logits_from(leaf.clone(), layer, &PlainRelu);
    let block = |t: Tensor<B::InnerBackend, 2>, r: usize| t.narrow(0, r * batch, batch);
    let scores = class_scores(outputs.clone().inner());
    let resolved = requests
        .iter()
        .enumerate()
        .map(|(r, targets)| resolve_targets(block(scores.clone(), r), targets))
        .collect::<Result<Vec<_>, _>>()?;
    let grads = objective(outputs.clone(), &resolved.concat()).backward();
    let gradients = leaf
        .grad(&grads)
        .expect("the rest of the model depends on its input");
    let hooked = inference.hooked_activations(layer, activations.clone());
    let view = inference.cam_view(layer, hooked);
    let outputs = outputs.inner();
    Ok(resolved
        .into_iter()
        .enumerate()
        .map(|(r, targets)| Capture {
            activations: view.clone(),
            gradients: inference.cam_view(layer, gradients.clone().narrow(0, r * batch, batch)),
            layer_output: activations.clone(),
            outputs: block(outputs.clone(), r),
            score,
            targets,
            layer,
            noisy: None,
        })
        .collect())
}

/// A capture for the methods that read only A and the scores (`Method::uses_gradients` is
/// false for all of them): one forward pass on the inference model, no backward; the gradients
/// are zeros.
pub fn capture_without_gradients<B: Backend, M: SplitModel<B>>(
    model: &M,
    images: Tensor<B, 4>,
    targets: &[Target],
    layer: usize,
    score: Score,
) -> Result<Capture<B>, CaptureError> {
    let captured = capture_without_gradients_each(model, images, &[targets], layer, score)?;
    Ok(captured
        .into_iter()
        .next()
        .expect("one request, one capture"))
}

/// [`capture_without_gradients`] for several requests from one forward pass.
pub fn capture_without_gradients_each<B: Backend, M: SplitModel<B>>(
    model: &M,
    images: Tensor<B, 4>,
    requests: &[&[Target]],
    layer: usize,
    score: Score,
) -> Result<Vec<Capture<B>>, CaptureError> {
    for targets in requests {
        check_request(model, images.dims()[0], targets, layer)?;
    }
    let activations = model.features_at(images, layer, &PlainRelu);
    let outputs = model.logits_from(activations.clone(), layer, &PlainRelu);
    let view = model.cam_view(layer, model.hooked_activations(layer, activations.clone()));
    requests
        .iter()
        .map(|targets| {
            Ok(Capture {
                gradients: view.zeros_like(),
                activations: view.clone(),
                layer_output: activations.clone(),
                outputs: outputs.clone(),
                score,
                targets: resolve_targets(class_scores(outputs.clone()), targets)?,
                layer,
                noisy: None,
            })
        })
        .collect()
}

/// One target per image, and a layer the model has.
pub(crate) fn check_request<B: Backend, M: SplitModel<B>>(
    model: &M,
    batch: usize,
    targets: &[Target],
    layer: usize,
) -> Result<(), CaptureError> {
    if targets.len() != batch {
        return Err(CaptureError::TargetCount {
            targets: targets.len(),
            images: batch,
        });
    }
    let layers = model.last_layer() + 1;
    if layer >= layers {
        return Err(CaptureError::NoSuchLayer { layer, layers });
    }
    Ok(())
}

/// The class each `target` names for its row of class scores `[batch, classes]`.
pub(crate) fn resolve_targets<B: Backend>(
    scores: Tensor<B, 2>,
    targets: &[Target],
) -> Result<Vec<usize>, CaptureError> {
    let [_, classes] = scores.dims();
    let scores = scores.into_data().to_vec::<f32>().expect("f32 scores");
    targets
        .iter()
        .zip(scores.chunks(classes))
        .map(|(target, row)| match *target {
            Target::Predicted => Ok(ranked(row, 0)),
            Target::Ranked(n) if n < classes => Ok(ranked(row, n)),
            Target::Ranked(n) => Err(CaptureError::NoSuchClass { class: n, classes }),
            Target::Class(class) if class < classes => Ok(class),
            Target::Class(class) => Err(CaptureError::NoSuchClass { class, classes }),
        })
        .collect()
}

/// Σ_i scores[i, target_i]: backpropagated, image i's gradient only sees its own score.
pub(crate) fn target_score_sum<B: Backend>(
    scores: Tensor<B, 2>,
    targets: &[usize],
) -> Tensor<B, 1> {
    let [batch, classes] = scores.dims();
    let mut mask = vec![0f32; batch * classes];
    for (i, &t) in targets.iter().enumerate() {
        mask[i * classes + t] = 1.0;
    }
    let mask = Tensor::<B, 2>::from_data(TensorData::new(mask, [batch, classes]), &scores.device());
    (scores * mask).sum()
}

/// The index of the (n+1)-th largest value (ties keep the lower index first).
fn ranked(row: &[f32], n: usize) -> usize {
    let mut order: Vec<usize> = (0..row.len()).collect();
    order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
    order[n]
}
