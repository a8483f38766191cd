//! The CAM family. Each method is a small function of what one capture gives (A, dS/dA) —
//! or, for the gradient-free ones, of A and the model's scores — returning the raw map
//! `[batch, h, w]` before ReLU and normalisation, which `postprocess` shares.

mod class_activation;
mod eigen;
mod grad_cam;
mod gradient;
mod integrated;
mod kernel_pca;
mod perturbation;
mod random;
mod smooth;
mod statistics;

pub use class_activation::{cam_applies, class_activation};
pub use eigen::{eigen_cam, eigen_grad_cam, first_component_map};
pub use grad_cam::{grad_cam, grad_cam_contributions, grad_cam_weights};
pub use gradient::{
    channel_sum, grad_cam_element_wise, grad_cam_plus_plus, hires_cam, layer_cam, weighted,
    xgrad_cam,
};
pub use integrated::{
    IS_CAM_SAMPLES, SS_CAM_SAMPLES, SS_CAM_SEED, SS_CAM_STD, integrated_score_cam, seeded_noise,
    smoothed_score_cam,
};
pub use kernel_pca::kernel_pca_map;
pub use perturbation::{ablation_cam, score_cam};
pub use random::{RANDOM_CAM_SEED, random_cam, random_weights};
pub use smooth::{
    SMOOTH_GRAD_SAMPLES, SMOOTH_GRAD_SEED, SMOOTH_GRAD_STD, smooth_grad_cam_plus_plus_weights,
};
pub use statistics::{FEM_SIGMAS, fem};

use std::fmt;
use std::str::FromStr;

use burn::prelude::*;
use model::SplitModel;

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;

use crate::full_grad::capture_full_grad;
use crate::fusion::{fuse_layers, multiply_layers};
use crate::{
    Capture, CaptureError, FINER_ALPHA, Score, Target, capture_finer, capture_scored,
    capture_shapley, capture_smoothed,
};

/// A CAM method, by the name the command line uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    GradCam,
    GradCamPlusPlus,
    XGradCam,
    HiResCam,
    LayerCam,
    GradCamElementWise,
    EigenCam,
    EigenGradCam,
    ScoreCam,
    AblationCam,
    Fem,
    RandomCam,
    KpcaCam,
    FinerCam,
    Cam,
    IsCam,
    SsCam,
    SmoothGradCamPlusPlus,
    RefineCam,
    ShapleyCam,
    FullGrad,
}

impl Method {
    pub const ALL: [Method; 21] = [
        Method::GradCam,
        Method::GradCamPlusPlus,
        Method::XGradCam,
        Method::HiResCam,
        Method::LayerCam,
        Method::GradCamElementWise,
        Method::EigenCam,
        Method::EigenGradCam,
        Method::ScoreCam,
        Method::AblationCam,
        Method::Fem,
        Method::RandomCam,
        Method::KpcaCam,
        Method::FinerCam,
        Method::Cam,
        Method::IsCam,
        Method::SsCam,
        Method::SmoothGradCamPlusPlus,
        Method::RefineCam,
        Method::ShapleyCam,
        Method::FullGrad,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Method::GradCam => "gradcam",
            Method::GradCamPlusPlus => "gradcam++",
            Method::XGradCam => "xgradcam",
            Method::HiResCam => "hirescam",
            Method::LayerCam => "layercam",
            Method::GradCamElementWise => "gradcam-elementwise",
            Method::EigenCam => "eigencam",
            Method::EigenGradCam => "eigengradcam",
            Method::ScoreCam => "scorecam",
            Method::AblationCam => "ablationcam",
            Method::Fem => "fem",
            Method::RandomCam => "randomcam",
            Method::KpcaCam => "kpcacam",
            Method::FinerCam => "finercam",
            Method::Cam => "cam",
            Method::IsCam => "iscam",
            Method::SsCam => "sscam",
            Method::SmoothGradCamPlusPlus => "smoothgradcam++",
            Method::RefineCam => "refinecam",
            Method::ShapleyCam => "shapleycam",
            Method::FullGrad => "fullgrad",
        }
    }

    /// Whether the map reads dS/dA. The others need only A and the scores, so a capture
    /// without the backward pass serves them (`capture_without_gradients`).
    pub fn uses_gradients(self) -> bool {
        !matches!(
            self,
            Method::EigenCam
                | Method::ScoreCam
                | Method::AblationCam
                | Method::Fem
                | Method::RandomCam
                | Method::KpcaCam
                | Method::Cam
                | Method::IsCam
                | Method::SsCam
        )
    }

    /// Why the method cannot explain `model` at `layer`, if it cannot (only CAM has a
    /// condition: a pooling + Linear head, at the last layer).
    pub fn applies_to<B: Backend, M: SplitModel<B>>(
        self,
        model: &M,
        layer: usize,
    ) -> Result<(), String> {
        match self {
            Method::Cam => cam_applies(model, layer),
            _ => Ok(()),
        }
    }

    /// Whether the method's capture is its own ([`Method::capture`]) rather than the one
    /// every other method shares.
    pub fn has_own_capture(self) -> bool {
        matches!(
            self,
            Method::FinerCam
                | Method::SmoothGradCamPlusPlus
                | Method::ShapleyCam
                | Method::FullGrad
        )
    }

    /// The capture this method's map is made of: Finer-CAM's gradients are of its own
    /// comparison score, Smooth Grad-CAM++'s are of noisy copies of the images (seeded, so
    /// that a run repeats), ShapleyCAM's carry the Hessian-vector product, FullGrad's is its
    /// whole map (every biased layer's, not `layer`'s); every other method takes
    /// `capture_scored`'s.
    pub fn capture<B, M>(
        self,
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
        match self {
            Method::FinerCam => capture_finer(model, images, targets, layer, FINER_ALPHA),
            Method::SmoothGradCamPlusPlus => {
                let shape = images.dims();
                let noise = seeded_noise(shape, SMOOTH_GRAD_STD, SMOOTH_GRAD_SEED, images.device());
                let samples = SMOOTH_GRAD_SAMPLES;
                capture_smoothed(model, images, targets, layer, score, samples, noise)
            }
            Method::ShapleyCam => capture_shapley(model, images, targets, layer, score),
            Method::FullGrad => capture_full_grad(model, images, targets, layer, score),
            _ => capture_scored(model, images, targets, layer, score),
        }
    }

    /// The method's name as its paper writes it, for titles.
    pub fn title(self) -> &'static str {
        match self {
            Method::GradCam => "Grad-CAM",
            Method::GradCamPlusPlus => "Grad-CAM++",
            Method::XGradCam => "XGrad-CAM",
            Method::HiResCam => "HiResCAM",
            Method::LayerCam => "LayerCAM",
            Method::GradCamElementWise => "Grad-CAM element-wise",
            Method::EigenCam => "Eigen-CAM",
            Method::EigenGradCam => "EigenGrad-CAM",
            Method::ScoreCam => "Score-CAM",
            Method::AblationCam => "Ablation-CAM",
            Method::Fem => "FEM",
            Method::RandomCam => "RandomCAM",
            Method::KpcaCam => "KPCA-CAM",
            Method::FinerCam => "Finer-CAM",
            Method::Cam => "CAM",
            Method::IsCam => "IS-CAM",
            Method::SsCam => "SS-CAM",
            Method::SmoothGradCamPlusPlus => "Smooth Grad-CAM++",
            Method::RefineCam => "RefineCAM",
            Method::ShapleyCam => "ShapleyCAM",
            Method::FullGrad => "FullGrad",
        }
    }

    /// The raw map `[batch, h, w]` of `capture`, taken on `images` with the inference `model`:
    /// the channels' contributions summed, or for Eigen-CAM and EigenGrad-CAM their first
    /// principal component, for KPCA-CAM the first kernel principal component of A. Score-CAM runs the model on `chunk` masked images at a time,
    /// Ablation-CAM the classifier on `chunk` ablated maps.
    pub fn map<B: Backend, M: SplitModel<B>>(
        self,
        model: &M,
        images: Tensor<B, 4>,
        capture: &Capture<B>,
        chunk: usize,
    ) -> Tensor<B, 3> {
        let contributions = self.contributions(model, images, capture, chunk);
        match self {
            Method::EigenCam | Method::EigenGradCam => first_component_map(contributions),
            Method::KpcaCam => kernel_pca_map(contributions),
            _ => channel_sum(contributions),
        }
    }

    /// The maps of several layers as one `[batch, height, width]` in [0, 1]: RefineCAM's
    /// product (only what every layer marks), every other method's mean.
    pub fn combine_layers<B: Backend>(
        self,
        raw_maps: Vec<Tensor<B, 3>>,
        size: [usize; 2],
    ) -> Tensor<B, 3> {
        match self {
            Method::RefineCam => multiply_layers(raw_maps, size),
            _ => fuse_layers(raw_maps, size),
        }
    }

    /// `map`, or with pytorch-grad-cam's `eigen_smooth` the first principal component of the
    /// channels' contributions instead of their sum (the same for the Eigen methods).
    pub fn smoothed_map<B: Backend, M: SplitModel<B>>(
        self,
        model: &M,
        images: Tensor<B, 4>,
        capture: &Capture<B>,
        chunk: usize,
        eigen_smooth: bool,
    ) -> Tensor<B, 3> {
        // KPCA-CAM is already a projection, and pytorch-grad-cam's ignores eigen_smooth;
        // FullGrad's capture holds its finished map, not channels.
        if eigen_smooth && !matches!(self, Method::KpcaCam | Method::FullGrad) {
            first_component_map(self.contributions(model, images, capture, chunk))
        } else {
            self.map(model, images, capture, chunk)
        }
    }

    /// Each channel's term of the map, `[batch, channels, h, w]`.
    pub fn contributions<B: Backend, M: SplitModel<B>>(
        self,
        model: &M,
        images: Tensor<B, 4>,
        capture: &Capture<B>,
        chunk: usize,
    ) -> Tensor<B, 4> {
        let (a, g) = (capture.activations.clone(), capture.gradients.clone());
        match self {
            // Finer-CAM and ShapleyCAM are Grad-CAM of their own captures (`Method::capture`).
            Method::GradCam | Method::FinerCam | Method::ShapleyCam => grad_cam_contributions(a, g),
            // RefineCAM is Grad-CAM++ at each layer, its layers multiplied (`combine_layers`).
            Method::GradCamPlusPlus | Method::RefineCam => grad_cam_plus_plus(a, g),
            Method::XGradCam => xgrad_cam(a, g),
            Method::HiResCam | Method::EigenGradCam => hires_cam(a, g),
            Method::LayerCam => layer_cam(a, g),
            Method::GradCamElementWise => grad_cam_element_wise(a, g),
            Method::EigenCam | Method::KpcaCam => a,
            // The whole map, as one channel (`capture_full_grad`).
            Method::FullGrad => a,
            Method::Cam => class_activation(model, a, &capture.targets),
            Method::IsCam => integrated_score_cam(model, images, a, capture, IS_CAM_SAMPLES, chunk),
            Method::SsCam => {
                let [batch, channels, _, _] = a.dims();
                let [_, _, height, width] = images.dims();
                let shape = [batch, channels, height, width];
                let noise = seeded_noise::<B>(shape, SS_CAM_STD, SS_CAM_SEED, a.device());
                smoothed_score_cam(model, images, a, capture, SS_CAM_SAMPLES, noise, chunk)
            }
            Method::ScoreCam => score_cam(model, images, a, capture, chunk),
            Method::AblationCam => ablation_cam(model, a, capture, chunk),
            Method::Fem => fem(a, FEM_SIGMAS),
            // The images' own A and the mean gradient of the noisy copies (`Method::capture`).
            Method::SmoothGradCamPlusPlus => {
                let noisy = capture.noisy.as_ref().expect("captured by Method::capture");
                let (squares, cubes) = (noisy.squares.clone(), noisy.cubes.clone());
                let weights = smooth_grad_cam_plus_plus_weights(a.clone(), g, squares, cubes);
                weighted(a, weights)
            }
            Method::RandomCam => {
                let [batch, channels, _, _] = a.dims();
                let weights = random_weights(batch, channels, RANDOM_CAM_SEED, &a.device());
                random_cam(a, weights)
            }
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Method {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Method::ALL
            .into_iter()
            .find(|m| m.name() == s.to_ascii_lowercase())
            .ok_or_else(|| {
                let names: Vec<_> = Method::ALL.iter().map(|m| m.name()).collect();
                format!(
                    "unknown method `{s}`: use one of {}, or all",
                    names.join(", ")
                )
            })
    }
}
