//! Networks read from ONNX (`explain --arch onnx`) against onnxruntime and pytorch-grad-cam:
//! small networks of each family of operators, exported with both of torch's exporters, from
//! `scripts/make_onnx_fixtures.py`. CI reads only the committed files.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use cam::postprocess::{Normalization, relu_normalize, upsample};
use cam::{Target, capture_at, grad_cam};
use model::{OnnxNetwork, SplitModel};
use train::device::Cpu;

type Inner = burn::backend::Flex;

#[derive(serde::Deserialize)]
struct Fixture {
    input_shape: [usize; 4],
    input: Vec<f32>,
    logits: std::collections::BTreeMap<String, Vec<f32>>,
    targets: Vec<usize>,
    layer: String,
    gradcam: Vec<f32>,
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx")
}

fn fixture(name: &str) -> Fixture {
    let path = dir().join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Logits within 1e-4 (relative) of onnxruntime's, Grad-CAM at the fixture's torch layer
/// within 1e-4 of pytorch-grad-cam's, for both exports of `name`.
fn check(name: &str) {
    let fixture = fixture(name);
    let [batch, channels, h, w] = fixture.input_shape;
    for exporter in ["script", "dynamo"] {
        let what = format!("{name}.{exporter}");
        let file = dir().join(format!("{what}.onnx"));
        let model = OnnxNetwork::<Cpu>::load(&file, None, &Default::default())
            .unwrap_or_else(|e| panic!("{e}"));
        let layer = model
            .find_layer(&fixture.layer)
            .unwrap_or_else(|| panic!("{what}: no layer {}", fixture.layer));
        let images = Tensor::<Inner, 4>::from_data(
            TensorData::new(fixture.input.clone(), [batch, channels, h, w]),
            &Default::default(),
        );
        assert!(
            model.runs_at_once(batch, &Default::default()),
            "{what}: a dynamic batch runs at once"
        );
        let targets: Vec<Target> = fixture.targets.iter().map(|&t| Target::Class(t)).collect();
        let captured = capture_at(&model, images, &targets, layer).unwrap();
        let logits = captured
            .outputs
            .clone()
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        let reference = &fixture.logits[exporter];
        let worst = logits
            .iter()
            .zip(reference)
            .map(|(a, b)| (a - b).abs() / (1.0 + b.abs()))
            .fold(0.0f32, f32::max);
        eprintln!("{what}: logits, max relative difference from onnxruntime {worst:.2e}");
        assert!(worst <= 1e-4, "{what}: logits {logits:?} vs {reference:?}");

        let [_, _, mh, mw] = captured.activations.dims();
        let maps = grad_cam(captured.activations, captured.gradients)
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        let ours: Vec<f32> = maps
            .chunks(mh * mw)
            .flat_map(|m| {
                upsample(
                    &relu_normalize(m, Normalization::MinMax),
                    [mh, mw],
                    [h, w],
                    Normalization::MinMax,
                )
            })
            .collect();
        let worst = ours
            .iter()
            .zip(&fixture.gradcam)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        eprintln!(
            "{what}: Grad-CAM at {}, max |ours − pytorch-grad-cam| {worst:.2e}",
            fixture.layer
        );
        assert!(worst <= 1e-4, "{what}: Grad-CAM differs by {worst}");
    }
}

/// An export of batch 1 (no dynamic batch: its shape arithmetic may hold a literal 1) gives a
/// batch of 2 the logits of the dynamic export, at once where the graph allows, else image
/// by image.
#[test]
fn exports_without_a_dynamic_batch_still_take_batches() {
    for name in ["resnet_d", "mobile", "convnext", "vit"] {
        let fixture = fixture(name);
        let file = dir().join(format!("{name}.static.onnx"));
        let model = OnnxNetwork::<Inner>::load(&file, None, &Default::default()).unwrap();
        let images = Tensor::<Inner, 4>::from_data(
            TensorData::new(fixture.input.clone(), fixture.input_shape),
            &Default::default(),
        );
        let logits = model.forward(images).into_data().to_vec::<f32>().unwrap();
        let reference = &fixture.logits["script"];
        let worst = logits
            .iter()
            .zip(reference)
            .map(|(a, b)| (a - b).abs() / (1.0 + b.abs()))
            .fold(0.0f32, f32::max);
        let at_once = model.runs_at_once(2, &Default::default());
        eprintln!("{name}.static: batch of 2 at once: {at_once}, logits within {worst:.2e}");
        assert!(worst <= 1e-4, "{name}.static: {logits:?} vs {reference:?}");
    }
}

#[test]
fn resnet_d_with_squeeze_excitation_matches() {
    check("resnet_d");
}

#[test]
fn depthwise_hardswish_gelu_network_matches() {
    check("mobile");
}

#[test]
fn convnext_blocks_match() {
    check("convnext");
}

#[test]
fn vision_transformer_matches_at_its_last_blocks_first_norm() {
    check("vit");
}

/// `[model] name = "onnx"`: the ResNet-D export fine-tuned on the synthetic shapes, one probe
/// epoch then `from layer2`. The classifier is new (the shapes' classes, not the file's 5),
/// the stem and layer1 keep the file's weights, layer2 learns, and the run reopens from its
/// own copy of the graph.
#[test]
fn an_onnx_network_fine_tunes_from_a_layer_and_its_run_reopens() {
    use train::{RunDir, TrainConfig, Weights, dataset};
    let file = dir().join("resnet_d.script.onnx");
    let config = TrainConfig::parse(
        &format!(
            r#"
            epochs = 2
            batch_size = 16
            seed = 5
            [model]
            name = "onnx"
            weights = "{}"
            train = "from layer2"
            probe_epochs = 1
            pretrained_lr = 1e-3
            [data]
            source = "shapes"
            count = 48
            validation = 0.25
            image_size = [32, 32]
            [optimizer]
            name = "adam"
            lr = 1e-2
            "#,
            file.display()
        ),
        "test config",
    )
    .unwrap();
    let data = dataset::load(&config.data, config.seed, &()).unwrap();
    let classes = data.class_names().len();
    let out = tempfile::tempdir().unwrap();
    let run = RunDir::create(out.path(), &config, data.class_names()).unwrap();
    train::fit::<Cpu>(
        &config,
        &data.train,
        &data.validation,
        None,
        &run,
        false,
        &Default::default(),
        &mut (),
    )
    .unwrap();
    assert_eq!(run.metrics().unwrap().len(), 2);
    assert!(out.path().join("model.onnx").is_file());

    let device = Default::default();
    let trained = run.load_model::<Inner>(Weights::Last, &device).unwrap();
    let original = OnnxNetwork::<Inner>::load(&file, None, &device).unwrap();
    let images =
        Tensor::<Inner, 4>::random([2, 3, 32, 32], burn::tensor::Distribution::Default, &device);
    assert_eq!(trained.forward(images.clone()).dims(), [2, classes]);
    let at = |layer: &str| {
        let index = original.find_layer(layer).unwrap();
        assert_eq!(trained.find_layer(layer), Some(index));
        let ours = trained.features_at(images.clone(), index, &model::PlainRelu);
        let file = original.features_at(images.clone(), index, &model::PlainRelu);
        (ours - file).abs().max().into_scalar()
    };
    assert_eq!(at("layer1"), 0.0, "layer1 is frozen");
    assert!(at("layer2") > 1e-4, "layer2 trains");
}

/// Plain CAM's weights: where the head is pooling then one Linear, the logits of two images
/// differ by the weights times the difference of their pooled maps (the bias cancels).
/// A transformer's head is not such a head.
#[test]
fn class_weights_are_the_linear_head_on_pooled_maps() {
    let device = Default::default();
    for exporter in ["script", "dynamo", "static"] {
        let file = dir().join(format!("resnet_d.{exporter}.onnx"));
        let model = OnnxNetwork::<Inner>::load(&file, None, &device).unwrap();
        let weights = model.class_weights().expect("GAP + Linear");
        let images = Tensor::<Inner, 4>::random(
            [2, 3, 32, 32],
            burn::tensor::Distribution::Default,
            &device,
        );
        let maps = model.features_at(images.clone(), model.last_layer(), &model::PlainRelu);
        let pooled = maps.mean_dim(3).mean_dim(2).flatten::<2>(1, 3);
        let logits = model.forward(images);
        let delta = |t: Tensor<Inner, 2>| t.clone().narrow(0, 0, 1) - t.narrow(0, 1, 1);
        let predicted = delta(pooled).matmul(weights.transpose());
        let error = (predicted - delta(logits)).abs().max().into_scalar();
        assert!(error < 1e-5, "resnet_d.{exporter}: {error}");
    }
    let vit = OnnxNetwork::<Inner>::load(&dir().join("vit.script.onnx"), None, &device).unwrap();
    assert!(vit.class_weights().is_none());
}
