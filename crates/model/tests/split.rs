//! Every architecture is `classifier ∘ features`, at its last layer as at any other, and rejects
//! inputs it cannot take by name.

use burn::backend::Autodiff;
use burn::backend::Flex;
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use model::{
    Architecture, CifarResNetConfig, ConvNextConfig, DenseNetConfig, EfficientNetLiteConfig,
    MobileNetV2Config, MobileNetV3Config, ModelSpec, PlainRelu, ResNetConfig, ShapeError,
    SplitModel, SwinConfig, TutorialCnnConfig, VggConfig, VitConfig,
};

fn tiny_specs() -> Vec<ModelSpec> {
    let tutorial = TutorialCnnConfig {
        conv_channels: [3, 4, 2],
        kernel_sizes: [3, 3, 3],
        hidden: [8, 6],
    };
    vec![
        ModelSpec {
            architecture: Architecture::TutorialCnn(tutorial),
            num_classes: 3,
            head: model::Head::Softmax,
            channels: 3,
            image_size: [12, 12],
        },
        ModelSpec {
            architecture: Architecture::CifarResnet(CifarResNetConfig { depth: 8, width: 4 }),
            num_classes: 5,
            head: model::Head::Softmax,
            channels: 3,
            image_size: [12, 12],
        },
    ]
}

#[test]
fn forward_is_classifier_of_features() {
    let device = Default::default();
    for spec in tiny_specs() {
        let model = spec.init::<Flex>(&device).unwrap();
        let x =
            Tensor::<Flex, 4>::random([2, 3, 12, 12], burn::tensor::Distribution::Default, &device);
        let features = model.features(x.clone());
        let split = model.classifier(features.clone());
        let direct = model.forward(x);
        assert_eq!(direct.dims(), [2, spec.num_classes]);
        split
            .into_data()
            .assert_approx_eq::<f32>(&direct.into_data(), Default::default());
        assert_eq!(features.dims()[0], 2);
    }
}

#[test]
fn bad_shapes_name_the_expected_shape() {
    let device = Default::default();
    let [tutorial, resnet] = &tiny_specs()[..] else {
        unreachable!()
    };
    let tutorial = tutorial.init::<Flex>(&device).unwrap();
    let resnet = resnet.init::<Flex>(&device).unwrap();

    let grey = Tensor::<Flex, 4>::zeros([1, 1, 12, 12], &device);
    assert_eq!(
        tutorial.try_forward(grey).unwrap_err(),
        ShapeError::Channels {
            expected: 3,
            got: 1
        }
    );

    let wrong_size = Tensor::<Flex, 4>::zeros([1, 3, 16, 12], &device);
    let err = tutorial.try_forward(wrong_size).unwrap_err();
    assert!(err.to_string().contains("12×12 images, got 16×12"), "{err}");

    let tiny = Tensor::<Flex, 4>::zeros([1, 3, 2, 2], &device);
    let err = resnet.try_forward(tiny).unwrap_err();
    assert!(err.to_string().contains("at least 4×4"), "{err}");

    let bigger = Tensor::<Flex, 4>::zeros([1, 3, 20, 20], &device);
    assert_eq!(resnet.try_forward(bigger).unwrap().dims(), [1, 5]);
}

#[test]
fn invalid_specs_are_errors_not_panics() {
    let mut spec = tiny_specs().remove(1);
    spec.architecture = Architecture::CifarResnet(CifarResNetConfig {
        depth: 21,
        width: 16,
    });
    assert!(
        spec.init::<Flex>(&Default::default())
            .unwrap_err()
            .contains("6n + 2")
    );

    let mut spec = tiny_specs().remove(0);
    spec.image_size = [6, 6];
    assert!(
        spec.init::<Flex>(&Default::default())
            .unwrap_err()
            .contains("at least 7×7")
    );
}

#[test]
fn specs_read_from_toml_and_reject_unknown_keys() {
    let spec: ModelSpec = toml::from_str(
        "num_classes = 10\nchannels = 3\nimage_size = [32, 32]\n[architecture]\nname = \"cifar_resnet\"\ndepth = 20\n",
    )
    .unwrap();
    assert_eq!(
        spec.architecture,
        Architecture::CifarResnet(CifarResNetConfig {
            depth: 20,
            width: 16
        })
    );
    let err = toml::from_str::<ModelSpec>(
        "num_classes = 10\nchannels = 3\nimage_size = [32, 32]\n[architecture]\nname = \"cifar_resnet\"\ndepht = 20\n",
    )
    .unwrap_err();
    assert!(err.to_string().contains("depht"), "{err}");
}

/// Every architecture at a small width, at 32×32.
fn every_architecture() -> Vec<ModelSpec> {
    let small = [
        Architecture::Resnet(ResNetConfig {
            depth: 18,
            width: 2,
        }),
        Architecture::Vgg(VggConfig {
            depth: 11,
            batch_norm: true,
            width: 1,
            hidden: 4,
        }),
        Architecture::EfficientnetLite(EfficientNetLiteConfig {
            channel_divisor: 16,
        }),
        Architecture::MobilenetV2(MobileNetV2Config {
            width_mult: 0.1,
            last_channels: Some(16),
        }),
        Architecture::MobilenetV3Large(MobileNetV3Config { width_mult: 0.1 }),
        Architecture::Densenet(DenseNetConfig {
            growth_rate: 4,
            block_config: [1, 2, 1, 1],
            num_init_features: 8,
            bn_size: 2,
        }),
        Architecture::Convnext(ConvNextConfig {
            dims: [4, 8, 8, 12],
            depths: [1, 1, 2, 1],
        }),
        Architecture::Vit(VitConfig {
            image_size: 32,
            patch_size: 8,
            num_layers: 2,
            num_heads: 2,
            hidden_dim: 8,
            mlp_dim: 12,
        }),
        Architecture::Swin(SwinConfig {
            patch_size: 4,
            embed_dim: 4,
            depths: [2, 1, 1, 2],
            num_heads: [1, 2, 2, 4],
            window_size: 2,
            mlp_ratio: 2.0,
        }),
    ];
    let mut specs: Vec<ModelSpec> = small
        .into_iter()
        .map(|architecture| ModelSpec {
            architecture,
            num_classes: 4,
            head: model::Head::Softmax,
            channels: 3,
            image_size: [32, 32],
        })
        .collect();
    specs.extend(tiny_specs());
    specs
}

#[test]
fn a_split_at_any_layer_computes_the_same_logits() {
    let device = Default::default();
    for spec in every_architecture() {
        let model = spec.init::<Flex>(&device).unwrap();
        let [h, w] = spec.image_size;
        let x =
            Tensor::<Flex, 4>::random([2, 3, h, w], burn::tensor::Distribution::Default, &device);
        let direct = model.forward(x.clone()).into_data();
        let names = model.layer_names();
        let unique: std::collections::BTreeSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len(), "{names:?}");
        for layer in 0..names.len() {
            let a = model.features_at(x.clone(), layer, &PlainRelu);
            let logits = model.logits_from(a, layer, &PlainRelu).into_data();
            logits.assert_approx_eq::<f32>(&direct, Default::default());
        }
    }
}

/// How many trainable parameter tensors a module has (BatchNorm's running statistics are not).
fn parameter_count<B: Backend, M: Module<B>>(module: &M) -> usize {
    struct Count(usize);
    impl<B: Backend> ModuleVisitor<B> for Count {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            self.0 += usize::from(param.is_require_grad());
        }
    }
    let mut count = Count(0);
    module.visit(&mut count);
    count.0
}

#[test]
fn a_classifier_only_finetune_reads_features_nothing_trains_in() {
    // The probe caches `embedding(features(x))` once per image: with only the classifier
    // trained, no parameter upstream of the head may get a gradient, transformers' last block
    // included; with everything trained, they all must.
    let device = Default::default();
    for spec in every_architecture() {
        let network = spec.init::<Autodiff<Flex>>(&device).unwrap();
        let layers = network.layer_names().len();
        let [h, w] = spec.image_size;
        let x = Tensor::random([2, 3, h, w], burn::tensor::Distribution::Default, &device);
        let probe = network
            .clone()
            .with_new_classifier(7, &device)
            .unwrap()
            .trained_from(layers);
        let embedding = probe.embedding(probe.features(x.clone()));
        let logits = probe.head_from_embedding(embedding.clone(), &PlainRelu);
        assert_eq!(logits.dims(), [2, 7]);
        let upstream = GradientsParams::from_grads(embedding.sum().backward(), &probe);
        assert_eq!(upstream.len(), 0, "{:?}", spec.architecture);
        let head = GradientsParams::from_grads(logits.sum().backward(), &probe);
        assert_eq!(
            head.len(),
            probe.classifier_params().len(),
            "{:?}",
            spec.architecture
        );
        let all = network.trained_from(0);
        let trained = GradientsParams::from_grads(all.forward(x).sum().backward(), &all);
        assert_eq!(
            trained.len(),
            parameter_count(&all),
            "{:?}",
            spec.architecture
        );
    }
}
