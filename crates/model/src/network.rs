use burn::prelude::*;

use crate::{CifarResNet, EfficientNetLite, InputShape, ResNet, SplitModel, TutorialCnn, Vgg};

/// Any architecture of [`crate::Architecture`], as one module type that `train` and `explain`
/// can hold, save and load.
#[derive(Module, Debug)]
pub enum Network<B: Backend> {
    TutorialCnn(TutorialCnn<B>),
    CifarResnet(CifarResNet<B>),
    Vgg(Vgg<B>),
    Resnet(ResNet<B>),
    EfficientnetLite(EfficientNetLite<B>),
}

macro_rules! dispatch {
    ($self:ident, $m:ident => $e:expr) => {
        match $self {
            Network::TutorialCnn($m) => $e,
            Network::CifarResnet($m) => $e,
            Network::Vgg($m) => $e,
            Network::Resnet($m) => $e,
            Network::EfficientnetLite($m) => $e,
        }
    };
}

impl<B: Backend> SplitModel<B> for Network<B> {
    fn architecture(&self) -> &'static str {
        dispatch!(self, m => m.architecture())
    }

    fn input_shape(&self) -> InputShape {
        dispatch!(self, m => m.input_shape())
    }

    fn features(&self, images: Tensor<B, 4>) -> Tensor<B, 4> {
        dispatch!(self, m => m.features(images))
    }

    fn classifier(&self, activations: Tensor<B, 4>) -> Tensor<B, 2> {
        dispatch!(self, m => m.classifier(activations))
    }
}
