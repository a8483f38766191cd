//! A training run as written in a TOML file. The resolved config is saved in the run folder,
//! so a run can be rebuilt, resumed or explained from that folder alone.

use std::path::{Path, PathBuf};

use data::{Augmentation, Normalization};
use model::{Architecture, Head, ModelSpec, PRETRAINED_NAMES, Trainable};
use serde::{Deserialize, Serialize};

use crate::TrainError;

/// The largest image side a config may ask for: 16 RGB images of 1024 × 1024 already take
/// 200 MB as input, and a first convolution of 32 channels makes ten times more.
pub const MAX_IMAGE_SIDE: usize = 1024;

/// The configs shipped inside the binary, usable by name (`--config cifar`).
pub const EMBEDDED: [(&str, &str); 6] = [
    ("shapes", include_str!("../../../configs/shapes.toml")),
    ("cifar", include_str!("../../../configs/cifar.toml")),
    ("cats_dogs", include_str!("../../../configs/cats_dogs.toml")),
    ("tutorial", include_str!("../../../configs/tutorial.toml")),
    (
        "cifar_jpeg",
        include_str!("../../../configs/cifar_jpeg.toml"),
    ),
    (
        "cats_dogs_finetune",
        include_str!("../../../configs/cats_dogs_finetune.toml"),
    ),
];

/// The config used when none is given.
pub const DEFAULT: &str = "shapes";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    #[serde(default)]
    pub seed: u64,
    pub model: ModelSection,
    pub data: DataConfig,
    pub optimizer: OptimizerConfig,
    #[serde(default)]
    pub schedule: Schedule,
}

/// The `[model]` table: an architecture's keys (`name = "tutorial_cnn"`, ..., or a published
/// network's name such as `"efficientnet_lite0"` or `"resnet18"`), the head (`head = "binary"`
/// for one sigmoid output; softmax when absent), and for fine-tuning the pretrained weights to
/// start from and what of them trains.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSection {
    pub architecture: Architecture,
    pub head: Head,
    pub finetune: Finetune,
}

/// Fine-tuning: a pretrained network whose classifier is replaced for the data set's classes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Finetune {
    /// The pretrained weights (PyTorch `.pth`/`.th` or safetensors, read strictly); read once,
    /// when the run starts (a resumed run reads its checkpoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<PathBuf>,
    /// What trains after the probe epochs: `"all"`, `"classifier"` or `"from <layer>"`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub train: Trainable,
    /// Epochs that first train the classifier alone (a linear probe): with nothing before it
    /// training and no augmentation, each image's features are computed once.
    #[serde(default, skip_serializing_if = "is_default")]
    pub probe_epochs: usize,
    /// The learning rate of the pretrained layers (the optimizer's `lr` is the new
    /// classifier's); the schedule scales both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pretrained_lr: Option<f64>,
    /// What the pretrained BatchNorm layers do in the layers that train. Written
    /// `pretrained_batch_norm`; read as `batch_norm` too when its value is a word (VGG's own
    /// `batch_norm` is true or false).
    #[serde(
        default,
        skip_serializing_if = "is_default",
        rename = "pretrained_batch_norm"
    )]
    pub batch_norm: PretrainedBatchNorm,
}

/// BatchNorm in the pretrained layers that train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PretrainedBatchNorm {
    /// Frozen: the pretrained running statistics normalise, and stay (the usual advice for
    /// fine-tuning on a small data set: a few hundred steps of small batches would replace
    /// statistics gathered over ImageNet).
    #[default]
    Frozen,
    /// Trained as in training from scratch: batch statistics, running averages updated.
    Trained,
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// The keys of `[model]` that belong to [`Finetune`].
const FINETUNE_KEYS: [&str; 5] = [
    "weights",
    "train",
    "probe_epochs",
    "pretrained_lr",
    "pretrained_batch_norm",
];

// serde cannot flatten these keys into the architecture's tagged, `deny_unknown_fields` table,
// so the table is split by hand: `head` and the fine-tuning keys out, the rest to
// `Architecture`'s own derive (or, for a lone published name, `Architecture::from_name`).
impl<'de> Deserialize<'de> for ModelSection {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut table = toml::Table::deserialize(deserializer)?;
        let head = match table.remove("head") {
            Some(value) => {
                Head::deserialize(value).map_err(|e| D::Error::custom(format!("head: {e}")))?
            }
            None => Head::default(),
        };
        let mut finetune: toml::Table = FINETUNE_KEYS
            .iter()
            .filter_map(|&key| Some((key.to_string(), table.remove(key)?)))
            .collect();
        // `batch_norm = "frozen"` is fine-tuning's; `batch_norm = true` VGG's.
        if let Some(toml::Value::String(_)) = table.get("batch_norm") {
            let value = table.remove("batch_norm").expect("just seen");
            finetune.insert("pretrained_batch_norm".into(), value);
        }
        let finetune =
            Finetune::deserialize(toml::Value::Table(finetune)).map_err(D::Error::custom)?;
        let published = match (table.len(), table.get("name")) {
            (1, Some(toml::Value::String(name))) => Architecture::from_name(name),
            _ => None,
        };
        let architecture = match published {
            Some(architecture) => architecture,
            None => Architecture::deserialize(toml::Value::Table(table)).map_err(|e| {
                D::Error::custom(format!("{e} (or a published network: {PRETRAINED_NAMES})"))
            })?,
        };
        Ok(ModelSection {
            architecture,
            head,
            finetune,
        })
    }
}

impl Serialize for ModelSection {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error;
        let mut table = toml::Table::try_from(&self.architecture).map_err(S::Error::custom)?;
        if self.head != Head::default() {
            table.insert(
                "head".into(),
                toml::Value::try_from(self.head).map_err(S::Error::custom)?,
            );
        }
        table.extend(toml::Table::try_from(&self.finetune).map_err(S::Error::custom)?);
        table.serialize(serializer)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The CIFAR-10 binary batches (downloaded when missing).
    Cifar10,
    /// `dir/<class>/*.jpg|png`.
    Folder,
    /// The embedded synthetic shapes.
    Shapes,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    pub source: Source,
    /// Where the files are (cifar10, folder); `--data-dir` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// How many images to generate (shapes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
    /// Fraction of the images held out for validation.
    pub validation: f64,
    /// `[height, width]` the images are resized to.
    pub image_size: [usize; 2],
    /// Per-channel mean and standard deviation; when absent, ImageNet's, or for fine-tuning what
    /// the pretrained weights expect ([`TrainConfig::normalization`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalization: Option<Normalization>,
    #[serde(default)]
    pub augmentation: Augmentation,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case", deny_unknown_fields)]
pub enum OptimizerConfig {
    Sgd {
        lr: f64,
        #[serde(default)]
        momentum: f64,
        #[serde(default)]
        nesterov: bool,
        #[serde(default)]
        weight_decay: f64,
    },
    Adam {
        lr: f64,
        #[serde(default)]
        weight_decay: f64,
    },
}

impl OptimizerConfig {
    pub fn lr(&self) -> f64 {
        match *self {
            OptimizerConfig::Sgd { lr, .. } | OptimizerConfig::Adam { lr, .. } => lr,
        }
    }

    fn set_lr(&mut self, value: f64) {
        match self {
            OptimizerConfig::Sgd { lr, .. } | OptimizerConfig::Adam { lr, .. } => *lr = value,
        }
    }
}

/// How the learning rate moves over the run, as a pure function of the position in it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case", deny_unknown_fields)]
pub enum Schedule {
    #[default]
    Constant,
    /// Half a cosine from the base rate down to 0 over all steps.
    Cosine,
    /// Multiplied by `gamma` at each milestone epoch.
    Step { milestones: Vec<usize>, gamma: f64 },
}

impl Schedule {
    /// The rate for `step` of `steps_per_epoch` in 0-based `epoch` of `epochs`.
    pub fn lr(
        &self,
        base: f64,
        epoch: usize,
        step: usize,
        steps_per_epoch: usize,
        epochs: usize,
    ) -> f64 {
        match self {
            Schedule::Constant => base,
            Schedule::Cosine => {
                let done = (epoch * steps_per_epoch + step) as f64;
                let total = (epochs * steps_per_epoch).max(1) as f64;
                0.5 * base * (1.0 + (std::f64::consts::PI * done / total).cos())
            }
            Schedule::Step { milestones, gamma } => {
                base * gamma.powi(milestones.iter().filter(|&&m| epoch >= m).count() as i32)
            }
        }
    }
}

/// Values from the command line that replace the file's.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    /// Pretrained weights to fine-tune (replaces `model.weights`).
    pub weights: Option<PathBuf>,
    pub epochs: Option<usize>,
    pub batch_size: Option<usize>,
    pub lr: Option<f64>,
    pub seed: Option<u64>,
}

impl TrainConfig {
    /// Parses TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, TrainError> {
        let config: TrainConfig = toml::from_str(text).map_err(|e| TrainError::Config {
            origin: origin.into(),
            message: e.to_string(),
        })?;
        config.validate().map_err(|message| TrainError::Config {
            origin: origin.into(),
            message,
        })?;
        Ok(config)
    }

    /// `name` is a file path, or the name of an embedded config. Returns the config and a short
    /// name for the run folder.
    pub fn load(name: &str) -> Result<(Self, String), TrainError> {
        let path = Path::new(name);
        if path.is_file() {
            let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("run")
                .to_string();
            return Ok((Self::parse(&text, name)?, stem));
        }
        match EMBEDDED
            .iter()
            .find(|(n, _)| *n == name.trim_end_matches(".toml"))
        {
            Some((n, text)) => Ok((
                Self::parse(text, &format!("embedded config `{n}`"))?,
                n.to_string(),
            )),
            None => Err(TrainError::Config {
                origin: name.into(),
                message: format!(
                    "no such file, and not one of the embedded configs: {}",
                    EMBEDDED
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }),
        }
    }

    pub fn apply(&mut self, overrides: &Overrides) -> Result<(), TrainError> {
        if let Some(dir) = &overrides.data_dir {
            self.data.dir = Some(dir.clone());
        }
        if let Some(weights) = &overrides.weights {
            self.model.finetune.weights = Some(weights.clone());
        }
        if let Some(epochs) = overrides.epochs {
            self.epochs = epochs;
        }
        if let Some(batch_size) = overrides.batch_size {
            self.batch_size = batch_size;
        }
        if let Some(lr) = overrides.lr {
            self.optimizer.set_lr(lr);
        }
        if let Some(seed) = overrides.seed {
            self.seed = seed;
        }
        self.validate().map_err(|message| TrainError::Config {
            origin: "command line".into(),
            message,
        })
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.epochs == 0 {
            return Err("epochs must be at least 1".into());
        }
        if self.batch_size < 2 {
            return Err("batch_size must be at least 2 (BatchNorm needs two images)".into());
        }
        let [height, width] = self.data.image_size;
        if !(1..=MAX_IMAGE_SIDE).contains(&height) || !(1..=MAX_IMAGE_SIDE).contains(&width) {
            return Err(format!(
                "data.image_size is [height, width], each from 1 to {MAX_IMAGE_SIDE}, got [{height}, {width}]"
            ));
        }
        if !(0.0..1.0).contains(&self.data.validation) {
            return Err(format!(
                "data.validation is a fraction in [0, 1), got {}",
                self.data.validation
            ));
        }
        self.data.augmentation.check()?;
        let finetune = &self.model.finetune;
        if finetune.probe_epochs > 0 && finetune.weights.is_none() {
            return Err(
                "model.probe_epochs trains a classifier on pretrained features: \
                        give model.weights (or --weights)"
                    .into(),
            );
        }
        if let Architecture::Onnx(_) = self.model.architecture {
            if finetune.weights.is_none() {
                return Err(
                    "model.name = \"onnx\" trains the network of an ONNX file: give \
                     model.weights = \"FILE.onnx\" (or --weights)"
                        .into(),
                );
            }
            if finetune.batch_norm == PretrainedBatchNorm::Trained {
                return Err(
                    "model.pretrained_batch_norm = \"trained\": the BatchNormalization \
                            nodes of an ONNX graph normalise with the export's statistics \
                            (frozen); remove the key"
                        .into(),
                );
            }
        }
        if let Some(lr) = finetune.pretrained_lr
            && (lr < 0.0 || !lr.is_finite())
        {
            return Err(format!("model.pretrained_lr must be 0 or more, got {lr}"));
        }
        if self.optimizer.lr() <= 0.0 || !self.optimizer.lr().is_finite() {
            return Err(format!(
                "the learning rate must be positive, got {}",
                self.optimizer.lr()
            ));
        }
        match self.data.source {
            Source::Shapes if self.data.count.is_none() => {
                Err("data.count is required for source = \"shapes\"".into())
            }
            Source::Folder if self.data.dir.is_none() => {
                Err("data.dir (or --data-dir) is required for source = \"folder\"".into())
            }
            _ => self.model_spec(2).validate(),
        }
    }

    /// How images are normalised: the config's `data.normalization`, else what the pretrained
    /// weights expect when fine-tuning, else ImageNet's statistics.
    pub fn normalization(&self) -> Normalization {
        match (self.data.normalization, &self.model.finetune.weights) {
            (Some(given), _) => given,
            (None, Some(_)) => pretrained::preprocessing(&self.model.architecture).1,
            (None, None) => Normalization::IMAGENET,
        }
    }

    /// The model this config trains, for a data set of `num_classes` classes.
    pub fn model_spec(&self, num_classes: usize) -> ModelSpec {
        ModelSpec {
            architecture: self.model.architecture.clone(),
            num_classes,
            head: self.model.head,
            channels: 3,
            image_size: self.data.image_size,
        }
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a config always serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_config_parses_and_round_trips() {
        for (name, text) in EMBEDDED {
            let config = TrainConfig::parse(text, name).unwrap();
            assert_eq!(
                TrainConfig::parse(&config.to_toml(), name).unwrap(),
                config,
                "{name}"
            );
        }
    }

    #[test]
    fn unknown_keys_are_named() {
        let text = EMBEDDED[0].1.replace("batch_size", "batchsize");
        let err = TrainConfig::parse(&text, "x.toml").unwrap_err().to_string();
        assert!(err.contains("x.toml") && err.contains("batchsize"), "{err}");
        let text = EMBEDDED[1].1.replace("momentum", "momentun");
        assert!(
            TrainConfig::parse(&text, "x")
                .unwrap_err()
                .to_string()
                .contains("momentun")
        );
    }

    #[test]
    fn the_tutorials_config_is_the_tutorials_run() {
        let (c, _) = TrainConfig::load("cats_dogs").unwrap();
        assert_eq!(
            (c.epochs, c.batch_size, c.data.image_size),
            (15, 16, [128, 128])
        );
        assert_eq!(
            c.optimizer,
            OptimizerConfig::Sgd {
                lr: 0.01,
                momentum: 0.0,
                nesterov: false,
                weight_decay: 0.0
            }
        );
        assert!(matches!(c.model.architecture, Architecture::TutorialCnn(_)));
    }

    #[test]
    fn the_tutorial_config_has_its_binary_head_and_imagenet_normalisation() {
        let (c, _) = TrainConfig::load("tutorial").unwrap();
        assert_eq!(c.model.head, Head::Binary);
        assert_eq!(c.normalization().mean, [0.485, 0.456, 0.406]);
        assert_eq!(c.normalization().std, [0.229, 0.224, 0.225]);
        assert_eq!((c.epochs, c.batch_size, c.optimizer.lr()), (15, 16, 0.01));
        // The head survives the run folder's config.toml.
        assert!(c.to_toml().contains("head = \"binary\""), "{}", c.to_toml());
    }

    #[test]
    fn a_misspelt_head_is_named() {
        let text = EMBEDDED[0]
            .1
            .replace("[model]", "[model]\nhead = \"sigmoid\"");
        let err = TrainConfig::parse(&text, "x.toml").unwrap_err().to_string();
        assert!(err.contains("head") && err.contains("sigmoid"), "{err}");
    }

    #[test]
    fn a_finetune_names_a_published_network_and_takes_its_preprocessing() {
        let (c, _) = TrainConfig::load("cats_dogs_finetune").unwrap();
        assert_eq!(
            Some(c.model.architecture.clone()),
            Architecture::from_name("efficientnet_lite0")
        );
        let finetune = &c.model.finetune;
        assert!(
            finetune
                .weights
                .as_ref()
                .unwrap()
                .ends_with("efficientnet-lite0-57934424.pth")
        );
        assert_eq!(finetune.train, Trainable::From("blocks.15".into()));
        assert_eq!(
            (finetune.probe_epochs, finetune.pretrained_lr),
            (3, Some(0.001))
        );
        assert_eq!(finetune.batch_norm, PretrainedBatchNorm::Frozen);
        // No normalisation given: EfficientNet-Lite's (x − 127) / 128.
        assert_eq!(c.normalization().mean, [127.0 / 255.0; 3]);
        // Written out, the run's config says the same in the architecture's own keys.
        let text = c.to_toml();
        assert!(text.contains("name = \"efficientnet_lite\"") && text.contains("probe_epochs = 3"));
        assert_eq!(TrainConfig::parse(&text, "saved").unwrap(), c);
    }

    #[test]
    fn finetune_settings_are_checked() {
        let base = EMBEDDED[0].1;
        let probe = base.replace("[model]", "[model]\nprobe_epochs = 2");
        let err = TrainConfig::parse(&probe, "x").unwrap_err().to_string();
        assert!(
            err.contains("probe_epochs") && err.contains("weights"),
            "{err}"
        );
        let scope = base.replace("[model]", "[model]\ntrain = \"some\"");
        let err = TrainConfig::parse(&scope, "x").unwrap_err().to_string();
        assert!(err.contains("from <layer>"), "{err}");
        let crop = base.replace("horizontal_flip = true", "random_resized_crop = [0.9, 0.1]");
        let err = TrainConfig::parse(&crop, "x").unwrap_err().to_string();
        assert!(err.contains("random_resized_crop"), "{err}");
        let unknown = base.replace("name = \"cifar_resnet\"", "name = \"resnet9000\"");
        let err = TrainConfig::parse(&unknown, "x").unwrap_err().to_string();
        assert!(err.contains("efficientnet_lite0"), "{err}");
    }

    #[test]
    fn schedules() {
        let cosine = Schedule::Cosine;
        assert_eq!(cosine.lr(0.1, 0, 0, 10, 4), 0.1);
        assert!((cosine.lr(0.1, 2, 0, 10, 4) - 0.05).abs() < 1e-12);
        let step = Schedule::Step {
            milestones: vec![2, 3],
            gamma: 0.1,
        };
        assert_eq!(step.lr(1.0, 1, 5, 10, 4), 1.0);
        assert!((step.lr(1.0, 3, 0, 10, 4) - 0.01).abs() < 1e-12);
    }

    #[test]
    fn overrides_replace_and_are_checked() {
        let (mut c, _) = TrainConfig::load("shapes").unwrap();
        c.apply(&Overrides {
            epochs: Some(2),
            lr: Some(0.5),
            ..Default::default()
        })
        .unwrap();
        assert_eq!((c.epochs, c.optimizer.lr()), (2, 0.5));
        assert!(
            c.apply(&Overrides {
                batch_size: Some(1),
                ..Default::default()
            })
            .is_err()
        );
    }

    /// VGG's `batch_norm = true|false` and fine-tuning's `batch_norm = "frozen"|"trained"`
    /// share a key in the config a user writes; the run's saved config keeps both apart.
    #[test]
    fn vgg_batch_norm_and_fine_tuning_batch_norm_both_survive_the_saved_config() {
        let text = |model: &str| {
            format!(
                "epochs = 1\nbatch_size = 4\n[model]\n{model}\n[data]\nsource = \"shapes\"\ncount = 40\nvalidation = 0.25\nimage_size = [32, 32]\n[optimizer]\nname = \"adam\"\nlr = 0.001\n"
            )
        };
        for model in [
            "name = \"vgg\"\ndepth = 11\nwidth = 4\nhidden = 16",
            "name = \"vgg\"\ndepth = 11\nbatch_norm = true\nwidth = 4\nhidden = 16",
            "name = \"vgg11_bn\"\nweights = \"w.pth\"\nbatch_norm = \"trained\"",
        ] {
            let config = TrainConfig::parse(&text(model), "test").unwrap();
            let saved = TrainConfig::parse(&config.to_toml(), "saved")
                .unwrap_or_else(|e| panic!("{model}: {e}\n{}", config.to_toml()));
            assert_eq!(saved, config, "{model}");
        }
        let tuned = TrainConfig::parse(&text("name = \"vgg11_bn\"\nbatch_norm = \"trained\""), "t");
        assert_eq!(
            tuned.unwrap().model.finetune.batch_norm,
            PretrainedBatchNorm::Trained
        );
    }
}
