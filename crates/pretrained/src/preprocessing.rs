use data::Normalization;
use model::Architecture;

/// How an architecture's published weights expect their images: `[height, width]` and the
/// normalisation applied to RGB / 255.
pub fn preprocessing(architecture: &Architecture) -> ([usize; 2], Normalization) {
    match architecture {
        // The CIFAR ResNet reference normalises with the ImageNet statistics.
        Architecture::CifarResnet(_) => ([32, 32], Normalization::IMAGENET),
        // (x − 127) / 128, the EfficientNet-Lite training recipe.
        Architecture::EfficientnetLite(_) => (
            [224, 224],
            Normalization {
                mean: [127.0 / 255.0; 3],
                std: [128.0 / 255.0; 3],
            },
        ),
        Architecture::Vgg(_)
        | Architecture::Resnet(_)
        | Architecture::TutorialCnn(_)
        | Architecture::MobilenetV2(_)
        | Architecture::MobilenetV3Large(_)
        | Architecture::Densenet(_)
        | Architecture::Convnext(_)
        | Architecture::Vit(_)
        | Architecture::Swin(_) => ([224, 224], Normalization::IMAGENET),
        // What exports of ImageNet networks expect; the graph's input fixes the size it takes.
        Architecture::Onnx(_) => ([224, 224], Normalization::IMAGENET),
    }
}
