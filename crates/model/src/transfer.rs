//! Fine-tuning a pretrained network: which of its layers train, a fresh classifier for the new
//! classes, and which parameters belong to that classifier (they may take their own learning
//! rate).
//!
//! A layer that does not train has its parameters marked as needing no gradient; its BatchNorm
//! layers then normalise with their running statistics and leave them as they are
//! (`crate::batch_norm`), as a frozen PyTorch module in `eval()` mode does.

use std::fmt;
use std::str::FromStr;

use burn::module::{ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use kernels::Kernels;

use crate::{Network, find_layer};

/// What of a network trains: `"all"`, `"classifier"` (every layer frozen), or
/// `"from <layer>"` (that layer, the ones after it and the classifier).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Trainable {
    #[default]
    All,
    Classifier,
    From(String),
}

impl Trainable {
    /// The index of the first layer that trains (`names.len()`: none, only the classifier).
    pub fn first_trained(&self, names: &[String]) -> Result<usize, String> {
        match self {
            Trainable::All => Ok(0),
            Trainable::Classifier => Ok(names.len()),
            Trainable::From(layer) => find_layer(names, layer).ok_or_else(|| {
                format!(
                    "train = \"from {layer}\": no layer `{layer}`; the layers are {}",
                    names.join(", ")
                )
            }),
        }
    }
}

impl FromStr for Trainable {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "all" => Ok(Trainable::All),
            "classifier" => Ok(Trainable::Classifier),
            other => match other.strip_prefix("from ") {
                Some(layer) if !layer.trim().is_empty() => {
                    Ok(Trainable::From(layer.trim().to_string()))
                }
                _ => Err(format!(
                    "train = \"{other}\": use \"all\", \"classifier\" or \"from <layer>\""
                )),
            },
        }
    }
}

impl fmt::Display for Trainable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trainable::All => f.write_str("all"),
            Trainable::Classifier => f.write_str("classifier"),
            Trainable::From(layer) => write!(f, "from {layer}"),
        }
    }
}

impl Serialize for Trainable {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Trainable {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Marks every parameter as trained or not. BatchNorm's running statistics, which burn maps
/// like parameters, never are: marked, they would take gradients and an optimiser step.
struct RequireGrad {
    train: bool,
    /// The names of the fields being mapped, innermost last.
    fields: Vec<String>,
}

impl<B: Backend> ModuleMapper<B> for RequireGrad {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.fields.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.fields.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let statistic = matches!(
            self.fields.last().map(String::as_str),
            Some("running_mean" | "running_var")
        );
        param.set_require_grad(self.train && !statistic)
    }
}

/// `module` with its parameters trained (`true`) or frozen.
pub(crate) fn trainable<B: Backend, M: Module<B>>(module: M, train: bool) -> M {
    module.map(&mut RequireGrad {
        train,
        fields: Vec::new(),
    })
}

/// Blocks that are layers 1, 2, … of their network (its stem being layer 0), each trained
/// when its layer is `first` or after.
pub(crate) fn blocks_trained_from<B: Backend, M: Module<B>>(
    blocks: Vec<M>,
    first: usize,
) -> Vec<M> {
    let blocks = blocks.into_iter().enumerate();
    blocks.map(|(i, b)| trainable(b, i + 1 >= first)).collect()
}

/// Freezes the parameters of every BatchNorm layer.
#[derive(Default)]
struct FreezeBatchNorm {
    /// The containers being mapped, innermost last (`Struct:BatchNorm` for its own fields).
    containers: Vec<String>,
}

impl<B: Backend> ModuleMapper<B> for FreezeBatchNorm {
    fn enter_module(&mut self, _name: &str, container_type: &str) {
        self.containers.push(container_type.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.containers.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        match self.containers.last().map(String::as_str) {
            Some("Struct:BatchNorm") => param.set_require_grad(false),
            _ => param,
        }
    }
}

/// Collects parameter ids.
struct Ids(Vec<ParamId>);

impl<B: Backend> ModuleVisitor<B> for Ids {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.0.push(param.id);
    }
}

/// The ids of the parameters of `module`.
pub(crate) fn param_ids<B: Backend, M: Module<B>>(module: &M) -> Vec<ParamId> {
    let mut ids = Ids(Vec::new());
    module.visit(&mut ids);
    ids.0
}

/// A freshly initialised Linear layer with `old`'s inputs and `outputs` outputs (PyTorch's
/// initialisation: uniform in ±1/√inputs).
pub(crate) fn fresh_linear<B: Backend>(
    old: &Linear<B>,
    outputs: usize,
    device: &B::Device,
) -> Linear<B> {
    let [inputs, _] = old.weight.dims();
    LinearConfig::new(inputs, outputs)
        .with_bias(old.bias.is_some())
        .init(device)
}

impl<B: Backend> Network<B> {
    /// The network with its last Linear layer replaced by a fresh one of `outputs` outputs (a
    /// pretrained network taught new classes). Only a graph read from ONNX can lack one.
    pub fn with_new_classifier(self, outputs: usize, device: &B::Device) -> Result<Self, String>
    where
        B: Kernels,
    {
        Ok(match self {
            Network::TutorialCnn(m) => Network::TutorialCnn(m.with_new_classifier(outputs, device)),
            Network::CifarResnet(m) => Network::CifarResnet(m.with_new_classifier(outputs, device)),
            Network::Vgg(m) => Network::Vgg(m.with_new_classifier(outputs, device)),
            Network::Resnet(m) => Network::Resnet(m.with_new_classifier(outputs, device)),
            Network::EfficientnetLite(m) => {
                Network::EfficientnetLite(m.with_new_classifier(outputs, device))
            }
            Network::MobilenetV2(m) => Network::MobilenetV2(m.with_new_classifier(outputs, device)),
            Network::MobilenetV3Large(m) => {
                Network::MobilenetV3Large(m.with_new_classifier(outputs, device))
            }
            Network::Densenet(m) => Network::Densenet(m.with_new_classifier(outputs, device)),
            Network::Convnext(m) => Network::Convnext(m.with_new_classifier(outputs, device)),
            Network::Vit(m) => Network::Vit(m.with_new_classifier(outputs, device)),
            Network::Swin(m) => Network::Swin(m.with_new_classifier(outputs, device)),
            Network::Onnx(m) => Network::Onnx(
                m.with_new_classifier(outputs, device)
                    .map_err(|e| e.to_string())?,
            ),
        })
    }

    /// The network with `scope` (and the classifier) trained and the rest frozen.
    pub fn trained(self, scope: &Trainable) -> Result<Self, String>
    where
        B: Kernels,
    {
        if let Network::Onnx(m) = self {
            return m.trained(scope).map(Network::Onnx);
        }
        let first = scope.first_trained(&crate::SplitModel::layer_names(&self))?;
        Ok(self.trained_from(first))
    }

    /// The network with layers `first..` (`SplitModel::layer_names`) and the classifier trained,
    /// the layers before frozen. A graph read from ONNX trains by module path instead
    /// ([`Network::trained`]): its "layers" are every node that gives a map.
    pub fn trained_from(self, first: usize) -> Self {
        match self {
            Network::TutorialCnn(m) => Network::TutorialCnn(m.trained_from(first)),
            Network::CifarResnet(m) => Network::CifarResnet(m.trained_from(first)),
            Network::Vgg(m) => Network::Vgg(m.trained_from(first)),
            Network::Resnet(m) => Network::Resnet(m.trained_from(first)),
            Network::EfficientnetLite(m) => Network::EfficientnetLite(m.trained_from(first)),
            Network::MobilenetV2(m) => Network::MobilenetV2(m.trained_from(first)),
            Network::MobilenetV3Large(m) => Network::MobilenetV3Large(m.trained_from(first)),
            Network::Densenet(m) => Network::Densenet(m.trained_from(first)),
            Network::Convnext(m) => Network::Convnext(m.trained_from(first)),
            Network::Vit(m) => Network::Vit(m.trained_from(first)),
            Network::Swin(m) => Network::Swin(m.trained_from(first)),
            Network::Onnx(m) => Network::Onnx(m),
        }
    }

    /// The network with every BatchNorm layer frozen: it normalises with its running statistics
    /// and keeps them, and its scale and shift stay, while the layers around it train.
    pub fn with_frozen_batch_norm(self) -> Self {
        self.map(&mut FreezeBatchNorm::default())
    }

    /// The parameters of the classifier (the layers after the last activation map).
    pub fn classifier_params(&self) -> Vec<ParamId>
    where
        B: Kernels,
    {
        match self {
            Network::TutorialCnn(m) => m.classifier_params(),
            Network::CifarResnet(m) => param_ids(&m.linear),
            Network::Vgg(m) => param_ids(&m.head),
            Network::Resnet(m) => param_ids(&m.fc),
            Network::EfficientnetLite(m) => param_ids(&m.fc),
            Network::MobilenetV2(m) => param_ids(&m.classifier),
            Network::MobilenetV3Large(m) => {
                [param_ids(&m.hidden), param_ids(&m.classifier)].concat()
            }
            Network::Densenet(m) => param_ids(&m.classifier),
            Network::Convnext(m) => [param_ids(&m.norm), param_ids(&m.classifier)].concat(),
            Network::Vit(m) => param_ids(&m.head),
            Network::Swin(m) => param_ids(&m.head),
            Network::Onnx(m) => m.classifier_params(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freezing_batch_norm_leaves_the_other_parameters_trained() {
        use crate::{Architecture, Head, ModelSpec};
        type Ad = burn::backend::Autodiff<burn::backend::Flex>;
        let spec = ModelSpec {
            architecture: Architecture::from_name("resnet20").unwrap(),
            num_classes: 3,
            head: Head::Softmax,
            channels: 3,
            image_size: [8, 8],
        };
        let Network::CifarResnet(net) = spec
            .init::<Ad>(&Default::default())
            .unwrap()
            .trained_from(2)
            .with_frozen_batch_norm()
        else {
            panic!("a CIFAR ResNet");
        };
        let trains = |p: &Param<Tensor<Ad, 1>>| p.val().is_require_grad();
        let block = &net.layer1[1];
        assert!(!trains(&block.bn1.gamma) && !trains(&block.bn2.beta));
        assert!(block.conv1.weight.val().is_require_grad());
        assert!(
            !net.conv1.weight.val().is_require_grad(),
            "the stem stays frozen"
        );
        assert!(!net.layer1[0].conv1.weight.val().is_require_grad());
        assert!(net.linear.weight.val().is_require_grad());
    }

    #[test]
    fn scopes_parse_print_and_find_their_layer() {
        let names: Vec<String> = ["stem", "blocks.0", "blocks.1", "head"]
            .map(String::from)
            .into();
        for (text, first) in [("all", 0), ("classifier", 4), ("from blocks.1", 2)] {
            let scope: Trainable = text.parse().unwrap();
            assert_eq!(scope.to_string(), text);
            assert_eq!(scope.first_trained(&names), Ok(first));
        }
        let unknown = "from blocks.9".parse::<Trainable>().unwrap();
        let error = unknown.first_trained(&names).unwrap_err();
        assert!(
            error.contains("blocks.9") && error.contains("blocks.0, blocks.1"),
            "{error}"
        );
        let error = "everything".parse::<Trainable>().unwrap_err();
        assert!(error.contains("from <layer>"), "{error}");
    }
}
