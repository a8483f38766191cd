//! The parity fixtures of `scripts/make_gradcam_fixtures.py`: a small PyTorch model's
//! `state_dict` under PyTorch's names, an input, and what PyTorch and pytorch-grad-cam made of it.

use std::collections::BTreeMap;
use std::path::Path;

use model::Architecture;
use serde::Deserialize;

#[derive(Deserialize)]
pub struct Tensor1d {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

#[derive(Deserialize)]
pub struct Fixture {
    pub architecture: Architecture,
    pub state_dict: BTreeMap<String, Tensor1d>,
    pub image_size: [usize; 2],
    pub input: Vec<f32>,
    pub logits: Vec<f32>,
    pub targets: Vec<usize>,
    pub cam: Vec<f32>,
    /// pytorch-grad-cam's maps per method (`--method` names), for some fixtures.
    #[serde(default)]
    pub methods: BTreeMap<String, Vec<f32>>,
    /// The same with `eigen_smooth=True`, for some methods.
    #[serde(default)]
    pub eigen_smooth: BTreeMap<String, Vec<f32>>,
    /// The same with `aug_smooth=True`, for some methods.
    #[serde(default)]
    pub aug_smooth: BTreeMap<String, Vec<f32>>,
    /// ROAD's noiseless imputation of the first image, most relevant removed first.
    #[serde(default)]
    pub road: Option<RoadFixture>,
    /// Guided backpropagation and Guided Grad-CAM (before deprocess_image), `[n, 3, h, w]`.
    #[serde(default)]
    pub guided: Option<GuidedFixture>,
    /// Maps at other layers: `{"layer2": {"gradcam": maps}, "layer1,layer3": {...}}`, the key
    /// being what `--layer` takes (several layers fused).
    #[serde(default)]
    pub layers: BTreeMap<String, BTreeMap<String, Vec<f32>>>,
    /// For a binary head: the Grad-CAM tutorial's heatmaps of the sigmoid output, the mean over
    /// channels of w_k A_k at feature resolution, before its ReLU, `[n, h', w']`.
    #[serde(default)]
    pub tutorial_raw: Vec<f32>,
    /// RandomCAM's channel weights as pytorch-grad-cam drew them, `[n, channels]`.
    #[serde(default)]
    pub random_weights: Vec<f32>,
    /// Maps of methods whose reference computes in float32 where the workspace uses float64,
    /// recomputed by the reference in float64 (KPCA-CAM).
    #[serde(default)]
    pub float64: BTreeMap<String, Vec<f32>>,
    /// pytorch-grad-cam's Finer-CAM maps, each image's top class against its three nearest.
    #[serde(default)]
    pub finer: Vec<f32>,
    /// torch-cam's CAM at the layer's resolution, min-max normalised without a ReLU, for the
    /// networks it applies to.
    #[serde(default)]
    pub torchcam_cam: Vec<f32>,
    /// torch-cam's maps of other methods (`--method` names), rectified and min-max normalised
    /// at the layer's resolution, for the fixtures with every method.
    #[serde(default)]
    pub torchcam: BTreeMap<String, Vec<f32>>,
    /// The Gaussian noise torch-cam's SS-CAM drew, `[draws, n, channels, height, width]`.
    #[serde(default)]
    pub sscam_noise: Vec<f32>,
    /// The Gaussian noise torch-cam's SmoothGradCAMpp added to the input, `[draws, n, 3,
    /// height, width]`.
    #[serde(default)]
    pub smoothgrad_noise: Vec<f32>,
    /// pytorch-grad-cam's ARCC of its Grad-CAM maps, term by term, one value per image:
    /// `complexity`, `coherency`, `road` (ROADCombined at 20/40/60/80, noiseless) and `arcc`.
    #[serde(default)]
    pub arcc: BTreeMap<String, Vec<f32>>,
    /// pytorch-grad-cam's Grad-CAM for `ClassifierOutputReST` targets.
    #[serde(default)]
    pub rest: Vec<f32>,
    /// pytorch-grad-cam's `SESS` around `GradCAM`, its final maps.
    #[serde(default)]
    pub sess: Vec<f32>,
    /// pytorch-grad-cam's `dff` in float64 on the last layer's activations.
    #[serde(default)]
    pub dff: Option<DffFixture>,
}

/// Deep Feature Factorization's inputs and results, float64 throughout.
#[derive(Debug, Deserialize)]
pub struct DffFixture {
    pub count: usize,
    /// `[batch, channels, h, w]`.
    pub activations: Vec<f64>,
    /// The starting factors scikit-learn's `NMF(init='random', random_state=0)` drew.
    pub w0: Vec<f64>,
    pub h0: Vec<f64>,
    /// `[channels, count]`, offsets added back.
    pub concepts: Vec<f64>,
    /// `[batch, count, h, w]`.
    pub maps: Vec<f64>,
}

#[derive(Deserialize)]
pub struct GuidedFixture {
    pub backprop: Vec<f32>,
    pub gradcam: Vec<f32>,
}

#[derive(Deserialize)]
pub struct RoadFixture {
    pub percentile: f32,
    pub imputed: Vec<f32>,
}

impl Fixture {
    /// `tests/fixtures/parity/<name>.json`.
    pub fn read(name: &str) -> Fixture {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/parity")
            .join(format!("{name}.json"));
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }
}
