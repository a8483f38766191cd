//! The command line of `explain`: what it accepts and how its values are read.

use std::path::PathBuf;

use cam::Method;
use cam::figure::Colormap;
use cam::postprocess::Normalization;
use clap::Parser;
use train::{DeviceChoice, Weights};

use crate::shard::Shard;
use crate::source::Split;

/// Show where a trained run, or a pretrained PyTorch model, looks (Grad-CAM).
///
/// With --image, each file gets a folder under --out with original.jpg, heatmap.jpg and
/// superimposed.jpg. Otherwise --limit images of a split of the run's data (or, for --arch, of
/// --data-dir) are explained in the tutorial's layout: {originals,heatmaps,superimposed}/
/// <true class>/<index>_label_<predicted>.jpg, with an index.html gallery for any browser.
#[derive(Parser, Debug)]
#[command(
    version,
    args_conflicts_with_subcommands = true,
    after_help = "Examples:
  explain                                    # latest run under runs/, 8 held-out images
  explain --run runs/cats_dogs-001 --split val --limit all
  explain --run runs/cats_dogs-001 --image cat.jpg --class dogs
  explain --accuracy                         # held-out accuracy per class
  explain --arch vgg19 --weights vgg19-dcbb9e9d.pth --image elephant.jpeg
  explain --arch resnet50 --weights resnet50.pth --image cat.jpg --layer layer3,layer4 --guided
  explain --arch resnet20 --weights resnet20.th --data-dir cifar10-jpeg/train --accuracy
  explain --run runs/cifar-001 --limit all --shard 0/4 --out shards/0   # one of four shares
  explain merge explained shards/0 shards/1 shards/2 shards/3"
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Run folder written by `train` [default: the run under runs/ with the newest checkpoint].
    #[arg(long)]
    pub run: Option<PathBuf>,
    /// A run's weights: best, last or an epoch number [default: best]; with --arch, the
    /// PyTorch file (.pth zip or legacy pickle, .th, .safetensors), or with --arch onnx the
    /// .onnx file (a .onnx file alone implies --arch onnx).
    #[arg(long)]
    pub weights: Option<String>,
    /// Explain a pretrained model instead of a run: `onnx` (any image network exported to
    /// ONNX, --weights FILE.onnx) or one of the built-in architectures (`explain --help` lists
    /// them under ARCHITECTURES).
    #[arg(long, conflicts_with_all = ["run", "split"])]
    pub arch: Option<String>,
    /// Print the layers --layer can take (name, operator, output shape) and the default one,
    /// then stop.
    #[arg(long)]
    pub list_layers: bool,
    /// Class names for --arch, one per line [default: ImageNet for 1000 classes, CIFAR-10 for 10].
    #[arg(long, requires = "arch")]
    pub labels: Option<PathBuf>,
    /// For --arch: the input size, `224` or `HxW`, instead of the architecture's default.
    #[arg(long, requires = "arch", value_parser = parse_size)]
    pub input_size: Option<[usize; 2]>,
    /// For --arch: per-channel mean of RGB / 255, `r,g,b`, instead of the weights' default.
    #[arg(long, requires = "arch", value_parser = parse_triple)]
    pub mean: Option<[f32; 3]>,
    /// For --arch: per-channel standard deviation, `r,g,b`.
    #[arg(long, requires = "arch", value_parser = parse_triple)]
    pub std: Option<[f32; 3]>,
    /// Image files to explain instead of the run's images.
    #[arg(long, num_args = 1.., conflicts_with = "split")]
    pub image: Vec<PathBuf>,
    /// Which of the run's images to explain: val (held out by the run) or test (a data set's
    /// own test set, e.g. CIFAR-10's) [default: val].
    #[arg(long, value_enum)]
    pub split: Option<Split>,
    /// How many images of the split to explain, or `all`.
    #[arg(long, default_value = "8", value_parser = parse_limit)]
    pub limit: usize,
    /// The class to explain, by index or name [default: each image's predicted class];
    /// several, comma-separated, get a map each (files get a `_class<index>` suffix).
    #[arg(long, conflicts_with = "top_k", value_delimiter = ',')]
    pub class: Vec<String>,
    /// What of the class is differentiated: `logit`, its score (pytorch-grad-cam's
    /// ClassifierOutputTarget; for a binary head, BinaryClassifierOutputTarget: z for class 1,
    /// -z for class 0), `probability` (ClassifierOutputSoftmaxTarget; for a binary head, the
    /// sigmoid output), or `rest`, the logit minus the class's cross-entropy
    /// (ClassifierOutputReST: 2 z_c − log Σ e^z, before and after the softmax at once).
    #[arg(long, value_enum, default_value = "logit")]
    pub score: ScoreKind,
    /// `tutorial`: what the Grad-CAM tutorial explains. For a binary head, the sigmoid output
    /// (class 1's probability) whatever the prediction, as its SimpleCNN; otherwise the
    /// predicted class's logit, as its VGG19.
    #[arg(long, value_enum, conflicts_with_all = ["class", "top_k", "score", "evaluate"])]
    pub target: Option<TargetPreset>,
    /// CAM method(s), comma-separated, or `all`: gradcam, gradcam++, xgradcam, hirescam,
    /// layercam, gradcam-elementwise, eigencam, eigengradcam, scorecam, ablationcam, fem,
    /// randomcam (a seeded baseline), kpcacam, finercam (the target against its three nearest
    /// classes), cam (pooling + Linear heads only), iscam, sscam (seeded), smoothgradcam++
    /// (seeded), refinecam (Grad-CAM++ at each --layer, multiplied), shapleycam (the gradient
    /// less half the Hessian-vector product; its paper's target is --score rest), fullgrad
    /// (the image's and every biased layer's gradient terms; ignores --layer). With several,
    /// each writes its own folder <out>/<method>/.
    #[arg(long, default_value = "gradcam", value_delimiter = ',', value_parser = parse_method)]
    pub method: Vec<Vec<Method>>,
    /// pytorch-grad-cam's eigen_smooth: the first principal component of the channels'
    /// contributions instead of their sum (less noise, sign by convention).
    #[arg(long)]
    pub eigen_smooth: bool,
    /// pytorch-grad-cam's aug_smooth: the mean map of the image and its mirror image, each at
    /// input intensity ×0.9, ×1 and ×1.1 (six captures per batch).
    #[arg(long)]
    pub aug_smooth: bool,
    /// pytorch-grad-cam's SESS around the method: the image at 12 growing scales, a window of
    /// its shorter side slid over each, every window's map weighted by its softmax score and
    /// pasted back, the pasted maps averaged and blurred. 122 windows for a square image.
    #[arg(long, conflicts_with_all = ["aug_smooth", "evaluate"])]
    pub sess: bool,
    /// Take the map at this layer instead of the last conv layer; several, comma-separated, are
    /// fused as pytorch-grad-cam fuses its target_layers. Names follow PyTorch's modules:
    /// layer3 or layer3.1 (ResNets; stem), features.26 (VGG), conv2 (the tutorial CNN),
    /// blocks.10 or head (EfficientNet-Lite). An unknown name lists the model's layers.
    #[arg(long, value_delimiter = ',')]
    pub layer: Vec<String>,
    /// Also draw guided backpropagation (guided_backprop.jpg) and Guided CAM, the gradients
    /// weighted by the map (guided_cam.jpg).
    #[arg(long, conflicts_with = "evaluate")]
    pub guided: bool,
    /// Explain each image's N most likely classes (files get a `_topN` suffix).
    #[arg(long, default_value_t = 1, value_parser = parse_top_k)]
    pub top_k: usize,
    /// File names in the tutorial's layout: `names`, <index>_label_<predicted class name>.jpg,
    /// or `tutorial`, the tutorial's own <n>_label_<predicted class index>.jpg (0 or 1).
    #[arg(long, value_enum, default_value = "names")]
    pub naming: Naming,
    /// Output folder [default: <run>/explain, or explained/<arch>].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Weight of the heatmap in superimposed.jpg, from 0 to 1 (the tutorial's 0.4).
    #[arg(long, default_value_t = 0.4, value_parser = parse_alpha)]
    pub alpha: f32,
    /// jet or ocean (OpenCV's tables, as the tutorial and pytorch-grad-cam draw), turbo,
    /// viridis or inferno.
    #[arg(long, default_value = "jet")]
    pub colormap: Colormap,
    /// minmax (pytorch-grad-cam) or max (the tutorial).
    #[arg(long, default_value = "minmax", value_parser = parse_normalization)]
    pub normalize: Normalization,
    /// Also write cam_raw.npy (the map at feature resolution, before ReLU) and cam.npy (after
    /// ReLU, min-max normalisation and resizing to the model input: pytorch-grad-cam's array),
    /// in each image's folder, or in the tutorial's layout under raw/<class>/<image>/.
    #[arg(long)]
    pub save_raw: bool,
    /// Score the methods (and a random and a centred-Gaussian baseline map) on the images with
    /// Average Drop / Increase in Confidence, deletion / insertion AUC and, where boxes are
    /// known (synthetic shapes), the pointing games; writes evaluation.csv and .md, and the
    /// mean deletion / insertion curves as deletion-insertion.svg and .csv (no map figures).
    #[arg(long, conflicts_with_all = ["accuracy", "top_k"])]
    pub evaluate: bool,
    /// Steps of the deletion / insertion curves (--evaluate).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    pub steps: u16,
    /// Images per forward/backward pass.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    pub batch_size: u16,
    /// Report the accuracy per class (on the run's held-out images, or on --data-dir) instead
    /// of drawing maps.
    #[arg(long)]
    pub accuracy: bool,
    /// For a run: where its data set is, if it moved since training. For --arch: a folder
    /// <root>/<class>/*.jpg whose class folders carry the model's class names.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
    /// How a GPU multiplies in convolutions and matrix products: f32 (every product in f32,
    /// maps as the CPU draws them) or tf32 (tensor cores, factors rounded to 10 mantissa bits:
    /// faster, maps off by up to a few 1e-3). The CPU always computes in f32.
    #[arg(long, default_value = "f32")]
    pub precision: kernels::Precision,
    /// Explain only share I of N (from 0) of the images, whole batches each, for array jobs
    /// (`--shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT`, Kubernetes'
    /// `$JOB_COMPLETION_INDEX/N`) or processes side by side; `explain merge` puts the shares'
    /// folders together. Output: --out, or shard-I-of-N under the default folder.
    #[arg(long, conflicts_with = "accuracy")]
    pub shard: Option<Shard>,
    /// Deep Feature Factorization instead of maps: each image's activations at the layer
    /// factorised into this many concepts (scikit-learn's NMF, as pytorch-grad-cam's `dff`),
    /// drawn in concepts/<image>.jpg (each pixel in its strongest concept's colour) with each
    /// concept's two most likely classes (pooling + Linear heads, at the last layer) in
    /// concepts.csv and concepts.html.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=32),
          conflicts_with_all = ["evaluate", "guided", "sess", "aug_smooth", "accuracy", "shard"])]
    pub concepts: Option<u8>,
}

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Put the folders of `explain --shard I/N` runs together, as one run would have written.
    ///
    /// Figures and arrays (linked, or copied across file systems), summaries, galleries, grid
    /// and evaluation table go into OUT. Shards of another job (model, weights, options or N)
    /// and missing or repeated shards are refused by name.
    Merge {
        /// Where the merged output goes (not one of the shards' folders).
        out: PathBuf,
        /// The shards' output folders, in any order.
        #[arg(required = true, num_args = 1..)]
        shards: Vec<PathBuf>,
    },
}

impl Args {
    /// How every map becomes a picture.
    pub fn style(&self) -> crate::output::Style {
        crate::output::Style {
            normalization: self.normalize,
            colormap: self.colormap,
            alpha: self.alpha,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScoreKind {
    Logit,
    Probability,
    Rest,
}

impl From<ScoreKind> for cam::Score {
    fn from(kind: ScoreKind) -> Self {
        match kind {
            ScoreKind::Logit => cam::Score::Logit,
            ScoreKind::Probability => cam::Score::Probability,
            ScoreKind::Rest => cam::Score::Rest,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Naming {
    Names,
    Tutorial,
}

impl Naming {
    /// The file stem and predicted-class label of an image's figures in the per-class layout.
    pub fn file_parts(self, stem: &str, predicted: usize, names: &[String]) -> (String, String) {
        match self {
            Naming::Names => (stem.to_string(), names[predicted].clone()),
            // The tutorial numbers its files 0, 1, 2, ... and labels them with the class index.
            Naming::Tutorial => {
                let number = stem.trim_start_matches('0');
                let number = if number.is_empty() || number.starts_with('_') {
                    format!("0{number}")
                } else {
                    number.to_string()
                };
                (number, predicted.to_string())
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TargetPreset {
    Tutorial,
}

pub fn parse_weights(s: &str) -> Result<Weights, String> {
    match s {
        "best" => Ok(Weights::Best),
        "last" => Ok(Weights::Last),
        n => n
            .parse()
            .map(Weights::Epoch)
            .map_err(|_| format!("`{s}`: use best, last or an epoch number")),
    }
}

fn parse_method(s: &str) -> Result<Vec<Method>, String> {
    match s {
        "all" => Ok(Method::ALL.to_vec()),
        name => name.parse().map(|m| vec![m]),
    }
}

fn parse_size(s: &str) -> Result<[usize; 2], String> {
    let sides: Vec<usize> = s
        .split('x')
        .map(|n| {
            n.parse()
                .map_err(|_| format!("`{s}`: use 224 or HxW, e.g. 240x320"))
        })
        .collect::<Result<_, _>>()?;
    match sides[..] {
        [side] if side > 0 => Ok([side, side]),
        [h, w] if h > 0 && w > 0 => Ok([h, w]),
        _ => Err(format!("`{s}`: use 224 or HxW, e.g. 240x320")),
    }
}

fn parse_triple(s: &str) -> Result<[f32; 3], String> {
    let values: Vec<f32> = s
        .split(',')
        .map(|v| {
            v.trim()
                .parse()
                .map_err(|_| format!("`{s}`: use three numbers, r,g,b"))
        })
        .collect::<Result<_, _>>()?;
    values
        .try_into()
        .map_err(|_| format!("`{s}`: use three numbers, r,g,b"))
}

fn parse_limit(s: &str) -> Result<usize, String> {
    match s {
        "all" => Ok(usize::MAX),
        n => n
            .parse()
            .map_err(|_| format!("`{s}`: use a number of images or `all`")),
    }
}

fn parse_top_k(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(k) if k >= 1 => Ok(k),
        _ => Err(format!(
            "`{s}`: the number of classes to explain, at least 1"
        )),
    }
}

fn parse_alpha(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(alpha) if (0.0..=1.0).contains(&alpha) => Ok(alpha),
        _ => Err(format!(
            "`{s}`: the heatmap's weight is a number from 0 to 1"
        )),
    }
}

fn parse_normalization(s: &str) -> Result<Normalization, String> {
    match s {
        "minmax" => Ok(Normalization::MinMax),
        "max" => Ok(Normalization::Max),
        _ => Err(format!("`{s}`: use minmax or max")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tutorial_names_are_plain_numbers_and_class_indices() {
        let names = ["cats".to_string(), "dogs".to_string()];
        let parts = |stem| Naming::Tutorial.file_parts(stem, 1, &names);
        assert_eq!(parts("0007"), ("7".into(), "1".into()));
        assert_eq!(parts("0000"), ("0".into(), "1".into()));
        assert_eq!(parts("0000_top2"), ("0_top2".into(), "1".into()));
        assert_eq!(parts("0120"), ("120".into(), "1".into()));
        let named = Naming::Names.file_parts("0007", 0, &names);
        assert_eq!(named, ("0007".into(), "cats".into()));
    }
}
