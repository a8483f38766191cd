use burn::prelude::*;
use kernels::Kernels;

use crate::{
    CifarResNet, ConvNext, DenseNet, EfficientNetLite, InputShape, MobileNetV2, MobileNetV3,
    OnnxNetwork, Rectifier, ResNet, SplitModel, SwinTransformer, TutorialCnn, Vgg,
    VisionTransformer,
};

/// Any architecture of [`crate::Architecture`], as one module type that `train` and `explain`
/// can hold, save and load.
// A process holds one or two networks, so the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Network<B: Backend> {
    TutorialCnn(TutorialCnn<B>),
    CifarResnet(CifarResNet<B>),
    Vgg(Vgg<B>),
    Resnet(ResNet<B>),
    EfficientnetLite(EfficientNetLite<B>),
    MobilenetV2(MobileNetV2<B>),
    MobilenetV3Large(MobileNetV3<B>),
    Densenet(DenseNet<B>),
    Convnext(ConvNext<B>),
    Vit(VisionTransformer<B>),
    Swin(SwinTransformer<B>),
    /// A network read from an ONNX file (`explain --arch onnx`).
    Onnx(OnnxNetwork<B>),
}

macro_rules! dispatch {
    ($self:ident, $m:ident => $e:expr) => {
        match $self {
            Network::TutorialCnn($m) => $e,
            Network::CifarResnet($m) => $e,
            Network::Vgg($m) => $e,
            Network::Resnet($m) => $e,
            Network::EfficientnetLite($m) => $e,
            Network::MobilenetV2($m) => $e,
            Network::MobilenetV3Large($m) => $e,
            Network::Densenet($m) => $e,
            Network::Convnext($m) => $e,
            Network::Vit($m) => $e,
            Network::Swin($m) => $e,
            Network::Onnx($m) => $e,
        }
    };
}

impl<B: Kernels> SplitModel<B> for Network<B> {
    fn architecture(&self) -> &'static str {
        dispatch!(self, m => m.architecture())
    }

    fn input_shape(&self) -> InputShape {
        dispatch!(self, m => m.input_shape())
    }

    fn layer_names(&self) -> Vec<String> {
        dispatch!(self, m => m.layer_names())
    }

    fn layer<R: Rectifier<B>>(&self, index: usize, x: Tensor<B, 4>, relu: &R) -> Tensor<B, 4> {
        dispatch!(self, m => m.layer(index, x, relu))
    }

    fn embedding(&self, activations: Tensor<B, 4>) -> Tensor<B, 2> {
        dispatch!(self, m => m.embedding(activations))
    }

    fn hooked_activations(&self, index: usize, output: Tensor<B, 4>) -> Tensor<B, 4> {
        dispatch!(self, m => m.hooked_activations(index, output))
    }

    fn hooked_part(&self, index: usize, output: Tensor<B, 4>) -> Tensor<B, 4> {
        dispatch!(self, m => m.hooked_part(index, output))
    }

    fn cam_view(&self, index: usize, output: Tensor<B, 4>) -> Tensor<B, 4> {
        dispatch!(self, m => m.cam_view(index, output))
    }

    fn class_weights(&self) -> Option<Tensor<B, 2>> {
        dispatch!(self, m => m.class_weights())
    }

    fn head_from_embedding<R: Rectifier<B>>(
        &self,
        embedding: Tensor<B, 2>,
        relu: &R,
    ) -> Tensor<B, 2> {
        dispatch!(self, m => m.head_from_embedding(embedding, relu))
    }

    fn head<R: Rectifier<B>>(&self, activations: Tensor<B, 4>, relu: &R) -> Tensor<B, 2> {
        dispatch!(self, m => m.head(activations, relu))
    }

    fn find_layer(&self, query: &str) -> Option<usize> {
        dispatch!(self, m => m.find_layer(query))
    }

    fn last_layer(&self) -> usize {
        dispatch!(self, m => m.last_layer())
    }

    fn features_at<R: Rectifier<B>>(
        &self,
        images: Tensor<B, 4>,
        index: usize,
        relu: &R,
    ) -> Tensor<B, 4> {
        dispatch!(self, m => m.features_at(images, index, relu))
    }

    fn logits_from<R: Rectifier<B>>(
        &self,
        activations: Tensor<B, 4>,
        index: usize,
        relu: &R,
    ) -> Tensor<B, 2> {
        dispatch!(self, m => m.logits_from(activations, index, relu))
    }
}
