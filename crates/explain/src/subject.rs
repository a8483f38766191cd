//! Whose predictions are explained: a `train` run, or a pretrained PyTorch file (`--arch`).
//! Either way the rest of `explain` sees one model, its class names and its preprocessing.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use burn::prelude::*;
use data::{Batcher, Normalization};
use model::{Architecture, Head, Kernels, Network, OnnxNetwork, PRETRAINED_NAMES, SplitModel};
use train::{RunDir, TrainConfig, Weights};

/// Where the model comes from, as the command line says.
pub enum ModelSource {
    Run {
        path: Option<PathBuf>,
        weights: Weights,
        data_dir: Option<PathBuf>,
    },
    Pretrained {
        architecture: String,
        file: PathBuf,
        labels: Option<PathBuf>,
        /// Overrides of the architecture's preprocessing.
        input_size: Option<[usize; 2]>,
        mean: Option<[f32; 3]>,
        std: Option<[f32; 3]>,
    },
}

pub enum Origin {
    // Boxed: a config holds every architecture's settings, the other variant two names.
    Run {
        run: RunDir,
        config: Box<TrainConfig>,
    },
    Pretrained {
        architecture: String,
        file: PathBuf,
    },
}

pub struct Subject<B: Backend> {
    pub model: Network<B>,
    pub head: Head,
    pub class_names: Vec<String>,
    pub image_size: [usize; 2],
    pub normalization: Normalization,
    pub origin: Origin,
    /// The file the weights were read from.
    pub weights_file: PathBuf,
}

impl ModelSource {
    pub fn open<B: Kernels>(&self, device: &B::Device) -> Result<Subject<B>> {
        match self {
            ModelSource::Run {
                path,
                weights,
                data_dir,
            } => {
                let run = match path {
                    Some(path) => RunDir::open(path)?,
                    None => RunDir::latest("runs".as_ref())?,
                };
                let mut config = run.config()?;
                if let Some(dir) = data_dir {
                    config.data.dir = Some(dir.clone());
                }
                Ok(Subject {
                    weights_file: run.model_file(*weights)?,
                    model: run.load_model::<B>(*weights, device)?,
                    head: config.model.head,
                    class_names: run.class_names()?,
                    image_size: config.data.image_size,
                    normalization: config.normalization(),
                    origin: Origin::Run {
                        run,
                        config: Box::new(config),
                    },
                })
            }
            ModelSource::Pretrained {
                architecture,
                file,
                labels,
                input_size,
                mean,
                std,
            } => {
                if architecture == "onnx" {
                    return open_onnx(file, labels.as_deref(), *input_size, *mean, *std, device);
                }
                let Some(arch) = Architecture::from_name(architecture) else {
                    bail!("--arch {architecture}: unknown; use one of {PRETRAINED_NAMES}");
                };
                let (default_size, default_normalization) = pretrained::preprocessing(&arch);
                let image_size = input_size.unwrap_or(default_size);
                let normalization = Normalization {
                    mean: mean.unwrap_or(default_normalization.mean),
                    std: std.unwrap_or(default_normalization.std),
                };
                if normalization.std.contains(&0.0) {
                    bail!("--std must not contain 0");
                }
                let pretrained::Pretrained {
                    model,
                    num_classes: classes,
                    head,
                } = pretrained::load::<B>(&arch, file, image_size, device)?;
                let class_names = match labels {
                    Some(path) => pretrained::read_labels(path, classes)?,
                    None => pretrained::class_names(classes),
                };
                Ok(Subject {
                    model,
                    head,
                    class_names,
                    image_size,
                    normalization,
                    weights_file: file.clone(),
                    origin: Origin::Pretrained {
                        architecture: architecture.clone(),
                        file: file.clone(),
                    },
                })
            }
        }
    }
}

/// A network exported to ONNX: its input size from the graph (or `input_size`), ImageNet's
/// normalisation unless told otherwise, classes numbered unless `labels` names them.
fn open_onnx<B: Kernels>(
    file: &Path,
    labels: Option<&Path>,
    input_size: Option<[usize; 2]>,
    mean: Option<[f32; 3]>,
    std: Option<[f32; 3]>,
    device: &B::Device,
) -> Result<Subject<B>> {
    let network = OnnxNetwork::<B>::load(file, input_size, device)?;
    let plan = network.plan();
    let classes = plan.dims[plan.output_slot].iter().product::<usize>();
    if classes < 2 {
        bail!(
            "{}: the graph gives {classes} output; a classifier gives one logit per class",
            file.display()
        );
    }
    let normalization = Normalization {
        mean: mean.unwrap_or(Normalization::IMAGENET.mean),
        std: std.unwrap_or(Normalization::IMAGENET.std),
    };
    if normalization.std.contains(&0.0) {
        bail!("--std must not contain 0");
    }
    let class_names = match labels {
        Some(path) => pretrained::read_labels(path, classes)?,
        None if classes == 1000 || classes == 10 => pretrained::class_names(classes),
        None => (0..classes).map(|c| c.to_string()).collect(),
    };
    Ok(Subject {
        image_size: plan.size,
        model: Network::Onnx(network),
        head: Head::Softmax,
        class_names,
        normalization,
        weights_file: file.to_path_buf(),
        origin: Origin::Pretrained {
            architecture: "onnx".into(),
            file: file.to_path_buf(),
        },
    })
}

/// `--list-layers`: each layer's name, operator and output shape, the default marked.
pub fn layer_table<B: Kernels>(model: &Network<B>) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let default = model.last_layer();
    match model {
        Network::Onnx(net) => {
            let plan = net.plan();
            for (i, layer) in net.layers().iter().enumerate() {
                let node = &plan.graph.nodes[layer.node];
                let mark = if i == default { "  (default)" } else { "" };
                let original = node.original.as_deref().unwrap_or("");
                let _ = writeln!(
                    out,
                    "{:<48} {:<20} {:?} {original}{mark}",
                    layer.name,
                    node.op.name(),
                    layer.dims
                );
            }
        }
        _ => {
            for (i, name) in model.layer_names().iter().enumerate() {
                let mark = if i == default { "  (default)" } else { "" };
                let _ = writeln!(out, "{name}{mark}");
            }
        }
    }
    out
}

impl<B: Backend> Subject<B> {
    pub fn batcher(&self) -> Batcher {
        let seed = match &self.origin {
            Origin::Run { config, .. } => config.seed,
            Origin::Pretrained { .. } => 0,
        };
        Batcher {
            image_size: self.image_size,
            normalization: self.normalization,
            augmentation: Default::default(),
            seed,
        }
    }

    /// `<run>/explain` for a run, `explained/<arch>` for a pretrained file.
    pub fn default_out(&self) -> PathBuf {
        match &self.origin {
            Origin::Run { run, .. } => run.path.join("explain"),
            Origin::Pretrained { architecture, .. } => {
                PathBuf::from("explained").join(architecture)
            }
        }
    }

    pub fn title(&self) -> String {
        match &self.origin {
            Origin::Run { run, .. } => run.path.display().to_string(),
            Origin::Pretrained { architecture, file } => {
                format!("{architecture} · {}", file.display())
            }
        }
    }

    /// The class `name` or index `name`.
    pub fn class_index(&self, class: &str) -> Result<usize> {
        let names = &self.class_names;
        if let Some(i) = names.iter().position(|n| n == class) {
            return Ok(i);
        }
        match class.parse::<usize>() {
            Ok(i) if i < names.len() => Ok(i),
            _ if names.len() > 20 => bail!(
                "--class {class}: not a class name or index below {} of this model",
                names.len()
            ),
            _ => bail!(
                "--class {class}: not a class of this model ({})",
                names.join(", ")
            ),
        }
    }

    /// The run and its config, for work that needs the run's data.
    pub fn run(&self) -> Result<(&RunDir, &TrainConfig)> {
        match &self.origin {
            Origin::Run { run, config } => Ok((run, config)),
            Origin::Pretrained { .. } => {
                bail!(
                    "a pretrained model has no run data: pass --image FILE... or --data-dir FOLDER"
                )
            }
        }
    }
}
