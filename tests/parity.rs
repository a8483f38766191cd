//! Parity with pytorch-grad-cam: the same weights (a PyTorch `state_dict`, under PyTorch's
//! names, loaded through burn-store's PyTorch adapter), the same input, the same maps.
//! Fixtures come from `scripts/make_gradcam_fixtures.py`; CI reads only the committed JSON.

mod support;

use std::collections::BTreeMap;

use burn::module::AutodiffModule;
use burn::prelude::*;
use cam::methods::{
    channel_sum, random_cam, smooth_grad_cam_plus_plus_weights, smoothed_score_cam, weighted,
};
use cam::postprocess::{Normalization, relu_normalize, upsample};
use cam::{
    Method, Score, Target, capture, capture_at, capture_scored, capture_smoothed,
    capture_without_gradients, grad_cam, guided_backprop, guided_cam,
};
use model::Network;
use model::{SplitModel, find_layer};
use support::fixture::{Fixture, Tensor1d};
use train::device::Cpu;

type Inner = burn::backend::Flex;

fn load(name: &str) -> (Fixture, Network<Cpu>) {
    let fixture = Fixture::read(name);
    // The state dict goes through the same loader as a user's file: strict, PyTorch names.
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), safetensors_bytes(&fixture.state_dict)).unwrap();
    let model = pretrained::load::<Cpu>(
        &fixture.architecture,
        file.path(),
        fixture.image_size,
        &Default::default(),
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"))
    .model;
    (fixture, model)
}

/// The state_dict as a safetensors file, keys and layouts as PyTorch wrote them.
fn safetensors_bytes(state: &BTreeMap<String, Tensor1d>) -> Vec<u8> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = state
        .iter()
        .map(|(k, t)| {
            (
                k.clone(),
                t.shape.clone(),
                t.values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views = bytes.iter().map(|(k, shape, data)| {
        (
            k.clone(),
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
                .unwrap(),
        )
    });
    safetensors::serialize(views, None).unwrap()
}

fn check(name: &str) {
    let (fixture, model) = load(name);
    let [h, w] = fixture.image_size;
    let images = fixture_images(&fixture);
    let targets: Vec<Target> = fixture.targets.iter().map(|&t| Target::Class(t)).collect();
    let captured = capture(&model, images, &targets).unwrap();

    let logits = captured
        .outputs
        .clone()
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    for (got, want) in logits.iter().zip(&fixture.logits) {
        assert!(
            (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
            "{name} logits: {logits:?} vs {:?}",
            fixture.logits
        );
    }
    let [_, _, mh, mw] = captured.activations.dims();
    let maps = grad_cam(captured.activations, captured.gradients)
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    let mut worst = 0.0f32;
    for (i, map) in maps.chunks(mh * mw).enumerate() {
        let ours = upsample(
            &relu_normalize(map, Normalization::MinMax),
            [mh, mw],
            [h, w],
            Normalization::MinMax,
        );
        let theirs = &fixture.cam[i * h * w..(i + 1) * h * w];
        worst = ours
            .iter()
            .zip(theirs)
            .map(|(a, b)| (a - b).abs())
            .fold(worst, f32::max);
    }
    eprintln!("{name}: max |ours − pytorch-grad-cam| = {worst:.2e}");
    assert!(worst <= 1e-4, "{name}: max abs difference {worst}");
}

#[test]
fn cifar_resnet_maps_match_pytorch_grad_cam() {
    check("cifar_resnet8_w4");
}

#[test]
fn tutorial_cnn_maps_match_pytorch_grad_cam() {
    check("tutorial_cnn_tiny");
}

/// One output: class 1 is z, class 0 is -z (BinaryClassifierOutputTarget).
#[test]
fn binary_head_maps_match_pytorch_grad_cam() {
    check("tutorial_cnn_binary");
}

/// The tutorial backpropagates σ(z) and averages w_k A_k over channels: the same map as our
/// Grad-CAM of class 1's probability, divided by the number of channels, scale included.
#[test]
fn the_tutorials_sigmoid_heatmap_is_reproduced_exactly() {
    let (fixture, model) = load("tutorial_cnn_binary");
    let images = fixture_images(&fixture);
    let targets = vec![Target::Class(1); fixture.targets.len()];
    let last = model.last_layer();
    let captured = capture_scored(&model, images, &targets, last, Score::Probability).unwrap();
    let channels = captured.activations.dims()[1] as f32;
    let ours = (grad_cam(captured.activations, captured.gradients) / channels)
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    assert_eq!(ours.len(), fixture.tutorial_raw.len());
    let scale = fixture
        .tutorial_raw
        .iter()
        .fold(0f32, |m, v| m.max(v.abs()));
    let worst = max_difference(&ours, &fixture.tutorial_raw);
    eprintln!("tutorial heatmaps: max |ours − tutorial| = {worst:.2e} (values up to {scale:.2e})");
    assert!(scale > 0.0 && worst <= 1e-4 * scale, "{worst} of {scale}");
}

#[test]
fn efficientnet_lite_maps_match_pytorch_grad_cam() {
    check("efficientnet_lite_d16");
}

#[test]
fn mobilenet_v2_maps_match_pytorch_grad_cam() {
    check("mobilenet_v2_small");
}

#[test]
fn densenet_maps_match_pytorch_grad_cam() {
    check("densenet_small");
}

#[test]
fn resnet_maps_match_pytorch_grad_cam() {
    check("resnet18_small");
    check("resnet50_small");
}

#[test]
fn vgg_maps_match_pytorch_grad_cam() {
    check("vgg19_small");
    check("vgg11_bn_small");
}

/// ReLU, min-max, resized to the input: what pytorch-grad-cam returns, from raw maps.
fn postprocess(raw: &[f32], [mh, mw]: [usize; 2], size: [usize; 2]) -> Vec<f32> {
    raw.chunks(mh * mw)
        .flat_map(|map| {
            upsample(
                &relu_normalize(map, Normalization::MinMax),
                [mh, mw],
                size,
                Normalization::MinMax,
            )
        })
        .collect()
}

/// A reference file of `scripts/make_restored_fixtures.py`, keyed by fixture name.
fn references<T: serde::de::DeserializeOwned>(file: &str) -> T {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/parity")
        .join(file);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The fixtures written with every method (and the targets, ARCC, SESS and DFF).
const EVERY_METHOD: [&str; 3] = ["cifar_resnet8_w4", "tutorial_cnn_tiny", "vgg11_bn_small"];

/// Prints `what`'s largest difference from its reference and fails beyond `bound`.
fn assert_close(what: &str, ours: &[f32], theirs: &[f32], bound: f32) {
    let worst = max_difference(ours, theirs);
    eprintln!("{what}: max |ours − reference| = {worst:.2e}");
    assert!(worst <= bound, "{what}: max abs difference {worst}");
}

fn max_difference(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn check_methods(name: &str) {
    let (fixture, model) = load(name);
    assert!(!fixture.methods.is_empty(), "{name} has no method fixtures");
    let [h, w] = fixture.image_size;
    let batch = fixture.targets.len();
    let images = fixture_images(&fixture);
    let targets: Vec<Target> = fixture.targets.iter().map(|&t| Target::Class(t)).collect();
    let captured = capture(&model, images.clone(), &targets).unwrap();
    let [_, _, mh, mw] = captured.activations.dims();
    let inference = model.valid();
    let smoothed = fixture
        .eigen_smooth
        .iter()
        .map(|(name, maps)| (name, maps, true));
    let plain = fixture
        .methods
        .iter()
        .map(|(name, maps)| (name, maps, false));
    for (method_name, theirs, eigen_smooth) in plain.chain(smoothed) {
        let method: Method = method_name.parse().unwrap();
        // pytorch-grad-cam's KPCA-CAM runs scikit-learn in float32 (maps off by up to ~2e-4
        // from its own float64 result); ours computes in float64 and is held to that.
        let (theirs, limit) = match fixture.float64.get(method_name.as_str()) {
            Some(float64) if !eigen_smooth => {
                let float32 = max_difference(theirs, float64);
                assert!(
                    float32 <= 5e-4,
                    "{name} {method_name}: float32 reference off by {float32}"
                );
                (float64, 1e-5)
            }
            _ => (theirs, 1e-4),
        };
        // Chunks of 3 channels: the batching must not change the numbers. RandomCAM gets the
        // reference's own draws.
        let raw = match method {
            Method::RandomCam => {
                let [_, channels, _, _] = captured.activations.dims();
                let weights = Tensor::from_data(
                    TensorData::new(fixture.random_weights.clone(), [batch, channels]),
                    &Default::default(),
                );
                channel_sum(random_cam(captured.activations.clone(), weights))
            }
            _ => method.smoothed_map(&inference, images.clone(), &captured, 3, eigen_smooth),
        };
        if !method.uses_gradients() && method != Method::RandomCam {
            // Without the backward pass, the same map.
            let forward = capture_without_gradients(
                &inference,
                images.clone(),
                &targets,
                captured.layer,
                Score::Logit,
            )
            .unwrap();
            let again = method.smoothed_map(&inference, images.clone(), &forward, 3, eigen_smooth);
            let again = again.into_data().to_vec::<f32>().unwrap();
            let same = raw.clone().into_data().to_vec::<f32>().unwrap();
            assert!(
                max_difference(&again, &same) <= 1e-6,
                "{name} {method_name}: the forward-only capture changes the map"
            );
        }
        let raw = raw.into_data().to_vec::<f32>().unwrap();
        let ours = postprocess(&raw, [mh, mw], [h, w]);
        let projected = eigen_smooth
            || matches!(
                method,
                Method::EigenCam | Method::EigenGradCam | Method::KpcaCam
            );
        let worst = if projected {
            // A principal component's sign is a convention (LAPACK's differs from ours).
            let flipped: Vec<f32> = raw.iter().map(|v| -v).collect();
            let other = postprocess(&flipped, [mh, mw], [h, w]);
            (0..batch)
                .map(|i| {
                    let span = i * h * w..(i + 1) * h * w;
                    let a = max_difference(&ours[span.clone()], &theirs[span.clone()]);
                    a.min(max_difference(&other[span.clone()], &theirs[span]))
                })
                .fold(0.0, f32::max)
        } else {
            max_difference(&ours, theirs)
        };
        let label = if eigen_smooth { " (eigen smooth)" } else { "" };
        eprintln!("{name} {method_name}{label}: max |ours − pytorch-grad-cam| = {worst:.2e}");
        assert!(
            worst <= limit,
            "{name} {method_name}{label}: max abs difference {worst}"
        );
    }
}

fn check_aug_smooth(name: &str) {
    let (fixture, model) = load(name);
    assert!(
        !fixture.aug_smooth.is_empty(),
        "{name} has no aug_smooth fixtures"
    );
    let images = fixture_images(&fixture);
    let targets: Vec<Target> = fixture.targets.iter().map(|&t| Target::Class(t)).collect();
    let original = capture(&model, images.clone(), &targets).unwrap();
    for (method_name, theirs) in &fixture.aug_smooth {
        let method: Method = method_name.parse().unwrap();
        let ours = cam::smoothing::aug_smooth(
            &model,
            images.clone(),
            &original,
            &[model.last_layer()],
            method,
            false,
            3,
        )
        .unwrap()
        .into_data()
        .to_vec::<f32>()
        .unwrap();
        let worst = max_difference(&ours, theirs);
        eprintln!("{name} {method_name} (aug smooth): max |ours − pytorch-grad-cam| = {worst:.2e}");
        assert!(
            worst <= 1e-4,
            "{name} {method_name} (aug smooth): max abs difference {worst}"
        );
    }
}

#[test]
fn augmentation_smoothing_matches_pytorch_grad_cam() {
    for name in EVERY_METHOD {
        check_aug_smooth(name);
    }
}

#[test]
fn every_method_matches_pytorch_grad_cam() {
    for name in EVERY_METHOD {
        check_methods(name);
        check_finer(name);
    }
}

/// Plain CAM against torch-cam's, where the fixture's network has a pooling + Linear head.
fn check_class_activation(name: &str) {
    let (fixture, model) = load(name);
    let images = fixture_images(&fixture);
    let targets: Vec<Target> = fixture.targets.iter().map(|&t| Target::Class(t)).collect();
    let inference = model.valid();
    let layer = model.last_layer();
    Method::Cam.applies_to(&inference, layer).unwrap();
    let captured =
        capture_without_gradients(&inference, images.clone(), &targets, layer, Score::Logit)
            .unwrap();
    let raw = Method::Cam.map(&inference, images, &captured, 3);
    let [_, mh, mw] = raw.dims();
    let raw = raw.into_data().to_vec::<f32>().unwrap();
    // torch-cam's normalisation: (m − min) / (max − min + 1e-8), no ReLU.
    let ours: Vec<f32> = raw
        .chunks(mh * mw)
        .flat_map(|map| {
            let min = map.iter().copied().fold(f32::INFINITY, f32::min);
            let max = map.iter().copied().fold(f32::NEG_INFINITY, f32::max) - min;
            map.iter()
                .map(move |v| (v - min) / (max + 1e-8))
                .collect::<Vec<_>>()
        })
        .collect();
    let worst = max_difference(&ours, &fixture.torchcam_cam);
    eprintln!("{name} cam: max |ours − torch-cam| = {worst:.2e}");
    assert!(worst <= 1e-5, "{name} cam: max abs difference {worst}");
}

#[test]
fn class_activation_maps_match_torch_cam() {
    for name in [
        "cifar_resnet8_w4",
        "resnet18_small",
        "resnet50_small",
        "efficientnet_lite_d16",
        "mobilenet_v2_small",
        "densenet_small",
    ] {
        check_class_activation(name);
    }
    // A head with hidden layers has no class weights: refused, by name.
    let (_, vgg) = load("vgg11_bn_small");
    let why = Method::Cam.applies_to(&vgg, vgg.last_layer()).unwrap_err();
    assert!(why.contains("global average pooling"), "{why}");
}

/// torch-cam's methods: its maps are rectified, then min-max normalised (ε 1e-8), at the
/// layer's resolution.
fn check_torchcam(name: &str) {
    let (fixture, model) = load(name);
    let images = fixture_images(&fixture);
    let targets: Vec<Target> = fixture.targets.iter().map(|&t| Target::Class(t)).collect();
    let inference = model.valid();
    let layer = model.last_layer();
    let captured =
        capture_without_gradients(&inference, images.clone(), &targets, layer, Score::Logit)
            .unwrap();
    assert!(!fixture.torchcam.is_empty(), "{name} has no torch-cam maps");
    for (method_name, theirs) in &fixture.torchcam {
        let method: Method = method_name.parse().unwrap();
        let raw = match method {
            // SS-CAM gets torch-cam's own noise.
            Method::SsCam => {
                let [n, channels, _, _] = captured.activations.dims();
                let [h, w] = fixture.image_size;
                let per_draw = n * channels * h * w;
                let draws = fixture.sscam_noise.len() / per_draw;
                let noise = |s: usize| {
                    let values = fixture.sscam_noise[s * per_draw..(s + 1) * per_draw].to_vec();
                    let data = TensorData::new(values, [n, channels, h, w]);
                    Tensor::from_data(data, &Default::default())
                };
                let a = captured.activations.clone();
                let map =
                    smoothed_score_cam(&inference, images.clone(), a, &captured, draws, noise, 3);
                channel_sum(map)
            }
            // Smooth Grad-CAM++ gets torch-cam's noise and is weighed as torch-cam weighs it:
            // with the last noisy copy's gradients, and those weights on the last copy's A
            // (its hooks keep the last pass's). Ours weighs the mean gradient and the image's
            // own A, as the method intends; the moments and α are the same arithmetic.
            Method::SmoothGradCamPlusPlus => {
                let [n, c, h, w] = images.dims();
                let per_draw = n * c * h * w;
                let draws = fixture.smoothgrad_noise.len() / per_draw;
                let noise = |s: usize| {
                    let values = &fixture.smoothgrad_noise[s * per_draw..(s + 1) * per_draw];
                    let data = TensorData::new(values.to_vec(), [n, c, h, w]);
                    Tensor::from_data(data, &Default::default())
                };
                let smoothed = capture_smoothed(
                    &model,
                    images.clone(),
                    &targets,
                    layer,
                    Score::Logit,
                    draws,
                    noise,
                )
                .unwrap();
                let noisy = smoothed.noisy.unwrap();
                let weights = smooth_grad_cam_plus_plus_weights(
                    smoothed.activations,
                    noisy.last_gradients,
                    noisy.squares,
                    noisy.cubes,
                );
                channel_sum(weighted(noisy.last_activations, weights))
            }
            _ => method.map(&inference, images.clone(), &captured, 3),
        };
        let [_, mh, mw] = raw.dims();
        let raw = raw.into_data().to_vec::<f32>().unwrap();
        let ours: Vec<f32> = raw
            .chunks(mh * mw)
            .flat_map(|map| {
                let map: Vec<f32> = map.iter().map(|v| v.max(0.0)).collect();
                let min = map.iter().copied().fold(f32::INFINITY, f32::min);
                let max = map.iter().copied().fold(f32::NEG_INFINITY, f32::max) - min;
                map.into_iter().map(move |v| (v - min) / (max + 1e-8))
            })
            .collect();
        let worst = max_difference(&ours, theirs);
        eprintln!("{name} {method_name}: max |ours − torch-cam| = {worst:.2e}");
        assert!(
            worst <= 1e-4,
            "{name} {method_name}: max abs difference {worst}"
        );
    }
}

#[test]
fn torch_cam_methods_match_torch_cam() {
    for name in EVERY_METHOD {
        check_torchcam(name);
    }
}

#[test]
fn seeded_methods_repeat() {
    let (fixture, model) = load("tutorial_cnn_tiny");
    let images = fixture_images(&fixture);
    let targets: Vec<Target> = fixture.targets.iter().map(|&t| Target::Class(t)).collect();
    let inference = model.valid();
    let layer = model.last_layer();
    let captured =
        capture_without_gradients(&inference, images.clone(), &targets, layer, Score::Logit)
            .unwrap();
    for method in [Method::SsCam, Method::RandomCam] {
        let map = || {
            let raw = method.map(&inference, images.clone(), &captured, 3);
            raw.into_data().to_vec::<f32>().unwrap()
        };
        assert_eq!(map(), map(), "{method}");
    }
    // Smooth Grad-CAM++ draws its noise in its capture.
    let smooth = Method::SmoothGradCamPlusPlus;
    let map = || {
        let own = smooth
            .capture(&model, images.clone(), &targets, layer, Score::Logit)
            .unwrap();
        let raw = smooth.map(&inference, images.clone(), &own, 3);
        raw.into_data().to_vec::<f32>().unwrap()
    };
    let first = map();
    assert_eq!(first, map(), "{smooth}");
    // And the noise matters: the map is not Grad-CAM++'s of the image alone.
    let plain = capture_at(&model, images.clone(), &targets, layer).unwrap();
    let plus_plus = Method::GradCamPlusPlus.map(&inference, images.clone(), &plain, 3);
    assert_ne!(first, plus_plus.into_data().to_vec::<f32>().unwrap());
}

/// Finer-CAM: Grad-CAM of each image's top class against its three nearest classes.
fn check_finer(name: &str) {
    let (fixture, model) = load(name);
    let [h, w] = fixture.image_size;
    let images = fixture_images(&fixture);
    let top = vec![Target::Predicted; fixture.targets.len()];
    let layer = model.last_layer();
    let captured = Method::FinerCam
        .capture(&model, images.clone(), &top, layer, Score::Logit)
        .unwrap();
    let [_, _, mh, mw] = captured.activations.dims();
    let raw = Method::FinerCam.map(&model.valid(), images, &captured, 3);
    let ours = postprocess(&raw.into_data().to_vec::<f32>().unwrap(), [mh, mw], [h, w]);
    let worst = max_difference(&ours, &fixture.finer);
    eprintln!("{name} finercam: max |ours − pytorch-grad-cam| = {worst:.2e}");
    assert!(worst <= 1e-4, "{name} finercam: max abs difference {worst}");
}

fn fixture_images(fixture: &Fixture) -> Tensor<Inner, 4> {
    let [h, w] = fixture.image_size;
    Tensor::from_data(
        TensorData::new(fixture.input.clone(), [fixture.targets.len(), 3, h, w]),
        &Default::default(),
    )
}

fn check_guided(name: &str) {
    let (fixture, model) = load(name);
    let theirs = fixture.guided.as_ref().expect("a guided fixture");
    let images = fixture_images(&fixture);
    let guided = guided_backprop(&model, images, &fixture.targets);
    let ours = guided.clone().into_data().to_vec::<f32>().unwrap();
    let scale = theirs.backprop.iter().fold(0f32, |m, v| m.max(v.abs()));
    let worst = max_difference(&ours, &theirs.backprop);
    eprintln!(
        "{name} guided backprop: max |ours − pytorch-grad-cam| = {worst:.2e} (largest {scale:.2e})"
    );
    assert!(
        scale > 0.0 && worst <= 1e-4 * scale,
        "{name}: guided backprop off by {worst}"
    );

    // Guided Grad-CAM with pytorch-grad-cam's own Grad-CAM maps: only the product is tested.
    let [h, w] = fixture.image_size;
    let maps = Tensor::<Inner, 3>::from_data(
        TensorData::new(fixture.cam.clone(), [fixture.targets.len(), h, w]),
        &Default::default(),
    );
    let ours = guided_cam(guided, maps)
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    let worst = max_difference(&ours, &theirs.gradcam);
    assert!(
        worst <= 1e-4 * scale,
        "{name}: guided Grad-CAM off by {worst}"
    );
}

#[test]
fn guided_backpropagation_matches_pytorch_grad_cam() {
    for name in EVERY_METHOD {
        check_guided(name);
    }
}

fn check_layers(name: &str) {
    let (fixture, model) = load(name);
    assert!(!fixture.layers.is_empty(), "{name} has no layer fixtures");
    let images = fixture_images(&fixture);
    let targets: Vec<Target> = fixture.targets.iter().map(|&t| Target::Class(t)).collect();
    let names = model.layer_names();
    let inference = model.valid();
    for (query, methods) in &fixture.layers {
        let layers: Vec<usize> = query
            .split(',')
            .map(|q| find_layer(&names, q).unwrap_or_else(|| panic!("{name}: no layer {q}")))
            .collect();
        for (method_name, theirs) in methods {
            let method: Method = method_name.parse().unwrap();
            let raw = layers
                .iter()
                .map(|&layer| {
                    let captured = capture_at(&model, images.clone(), &targets, layer).unwrap();
                    method.map(&inference, images.clone(), &captured, 3)
                })
                .collect();
            let ours = method.combine_layers(raw, fixture.image_size);
            let worst = max_difference(&ours.into_data().to_vec::<f32>().unwrap(), theirs);
            eprintln!(
                "{name} {method_name} at {query}: max |ours − pytorch-grad-cam| = {worst:.2e}"
            );
            assert!(
                worst <= 1e-4,
                "{name} {method_name} at {query}: off by {worst}"
            );
        }
    }
}

#[test]
fn earlier_and_fused_layers_match_pytorch_grad_cam() {
    for name in ["cifar_resnet8_w4", "vgg11_bn_small"] {
        check_layers(name);
    }
}

#[test]
fn road_imputation_matches_pytorch_grad_cam() {
    use rand::SeedableRng;
    let fixture = Fixture::read("cifar_resnet8_w4");
    let road = fixture.road.as_ref().expect("a ROAD fixture");
    let [h, w] = fixture.image_size;
    let image = &fixture.input[..3 * h * w];
    let map = &fixture.cam[..h * w];
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let ours =
        faithfulness::road::remove_salient(image, map, [3, h, w], road.percentile, 0.0, &mut rng);
    let worst = max_difference(&ours, &road.imputed);
    eprintln!("ROAD imputation: max |ours − pytorch-grad-cam| = {worst:.2e}");
    assert!(worst <= 1e-4, "ROAD imputation differs by {worst}");
    assert_ne!(ours, image, "something was imputed");
}

/// ARCC of Grad-CAM: Complexity and Coherency of our maps, ROAD without imputation noise,
/// against pytorch-grad-cam's `Complexity`, `Coherency`, `ROADCombined` and `ARCC`.
fn check_arcc(name: &str) {
    let (fixture, model) = load(name);
    let [h, w] = fixture.image_size;
    let images = fixture_images(&fixture);
    let n = fixture.targets.len();
    let targets: Vec<Target> = fixture.targets.iter().map(|&t| Target::Class(t)).collect();
    let layer = model.last_layer();
    let inference = model.valid();
    let maps_of = |images: Tensor<Inner, 4>| {
        let captured = capture_at(&model, images.clone(), &targets, layer).unwrap();
        let [_, _, mh, mw] = captured.activations.dims();
        let raw = Method::GradCam.map(&inference, images, &captured, 3);
        postprocess(&raw.into_data().to_vec::<f32>().unwrap(), [mh, mw], [h, w])
    };
    let maps = maps_of(images.clone());
    let masks = Tensor::<Inner, 1>::from_floats(maps.as_slice(), &Default::default());
    let remapped = maps_of(images.clone() * masks.reshape([n, 1, h, w]));
    let probabilities = |x: Tensor<Inner, 4>| model::class_probabilities(inference.forward(x));
    let mut ours: BTreeMap<&str, Vec<f32>> = BTreeMap::new();
    for (i, (map, remap)) in maps.chunks(h * w).zip(remapped.chunks(h * w)).enumerate() {
        let image = images.clone().slice([i..i + 1, 0..3, 0..h, 0..w]);
        let target = fixture.targets[i];
        let road = faithfulness::road_with_noise(&probabilities, image, map, target, 0.0, 0);
        let road = road.combined(&faithfulness::ARCC_ROAD_PERCENTILES);
        let (complexity, coherency) = (
            faithfulness::complexity(map),
            faithfulness::coherency(map, remap),
        );
        let arcc = faithfulness::arcc(complexity, coherency, road);
        for (term, value) in [
            ("complexity", complexity),
            ("coherency", coherency),
            ("road", road),
            ("arcc", arcc),
        ] {
            ours.entry(term).or_default().push(value);
        }
    }
    assert_eq!(fixture.arcc.len(), 4, "{name}: the four terms");
    for (term, theirs) in &fixture.arcc {
        assert_close(
            &format!("{name} ARCC {term}"),
            &ours[term.as_str()],
            theirs,
            1e-4,
        );
    }
}

/// Grad-CAM of the ReST score (`--score rest`) against `ClassifierOutputReST`.
fn check_rest(name: &str) {
    let (fixture, model) = load(name);
    let [h, w] = fixture.image_size;
    let images = fixture_images(&fixture);
    let targets: Vec<Target> = fixture.targets.iter().map(|&t| Target::Class(t)).collect();
    let layer = model.last_layer();
    let captured = capture_scored(&model, images.clone(), &targets, layer, Score::Rest).unwrap();
    let [_, _, mh, mw] = captured.activations.dims();
    let raw = Method::GradCam.map(&model.valid(), images, &captured, 3);
    let ours = postprocess(&raw.into_data().to_vec::<f32>().unwrap(), [mh, mw], [h, w]);
    assert_close(&format!("{name} ReST"), &ours, &fixture.rest, 1e-4);
    // The target is not the logit's: the maps differ.
    assert!(
        max_difference(&ours, &fixture.cam) > 1e-3,
        "{name}: ReST changes the map"
    );
}

/// SESS around Grad-CAM against pytorch-grad-cam's `SESS` with its defaults.
fn check_sess(name: &str) {
    let (fixture, model) = load(name);
    let images = fixture_images(&fixture);
    let targets: Vec<Target> = fixture.targets.iter().map(|&t| Target::Class(t)).collect();
    let layer = model.last_layer();
    let captured = capture_at(&model, images.clone(), &targets, layer).unwrap();
    let ours = cam::sess::sess(
        &model,
        images,
        &captured,
        &[layer],
        Method::GradCam,
        false,
        3,
    );
    let ours = ours.unwrap().into_data().to_vec::<f32>().unwrap();
    assert_close(&format!("{name} SESS"), &ours, &fixture.sess, 1e-4);
}

#[test]
fn sess_matches_pytorch_grad_cam() {
    for name in EVERY_METHOD {
        check_sess(name);
    }
}

/// Deep Feature Factorization: scikit-learn's NMF from its own starting point, through our
/// solver, on the reference's activations.
fn check_dff(name: &str) {
    let fixture = Fixture::read(name);
    let reference = fixture.dff.as_ref().expect("a DFF fixture");
    let (count, batch) = (reference.count, fixture.targets.len());
    let channels = reference.concepts.len() / count;
    let plane = reference.maps.len() / (batch * count);
    let start = |_: &[f64], _: [usize; 2]| [reference.w0.clone(), reference.h0.clone()];
    let ours = cam::concepts::factorize(
        &reference.activations,
        [batch, channels, 1, plane],
        count,
        start,
    );
    let largest = |v: &[f64]| v.iter().fold(0f64, |m, x| m.max(x.abs()));
    for (what, ours, theirs) in [
        ("concepts", &ours.vectors, &reference.concepts),
        ("maps", &ours.maps, &reference.maps),
    ] {
        let worst = ours
            .iter()
            .zip(theirs)
            .map(|(a, b)| (a - b).abs())
            .fold(0f64, f64::max)
            / largest(theirs);
        eprintln!("{name} DFF {what}: max |ours − scikit-learn| / max = {worst:.2e}");
        assert!(
            worst <= 1e-6,
            "{name} DFF {what}: off by {worst} of the largest"
        );
    }
}

#[test]
fn dff_matches_pytorch_grad_cam() {
    for name in EVERY_METHOD {
        check_dff(name);
    }
}

#[test]
fn rest_target_matches_pytorch_grad_cam() {
    for name in EVERY_METHOD {
        check_rest(name);
    }
}

#[test]
fn arcc_matches_pytorch_grad_cam() {
    for name in EVERY_METHOD {
        check_arcc(name);
    }
}

#[test]
fn mobilenet_v3_maps_match_pytorch_grad_cam() {
    check("mobilenet_v3_small");
}

#[test]
fn convnext_maps_match_pytorch_grad_cam() {
    check("convnext_small");
}

#[test]
fn vit_maps_match_pytorch_grad_cam() {
    check("vit_small");
}

#[test]
fn swin_maps_match_pytorch_grad_cam() {
    check("swin_small");
}

/// ShapleyCAM against pytorch-grad-cam's `ShapleyCAM` under the logit, softmax and ReST
/// targets (`scripts/make_restored_fixtures.py`). pytorch-grad-cam 1.5.7's crashes on ViT and
/// misreads Swin's tokens; there the reference is its intent (the script says how).
#[test]
fn shapley_cam_matches_pytorch_grad_cam() {
    let references: BTreeMap<String, BTreeMap<String, Vec<f32>>> = references("shapley.json");
    for (name, maps) in &references {
        let (fixture, model) = load(name);
        let [h, w] = fixture.image_size;
        let images = fixture_images(&fixture);
        let targets: Vec<Target> = fixture.targets.iter().map(|&t| Target::Class(t)).collect();
        for (kind, score) in [
            ("logit", Score::Logit),
            ("probability", Score::Probability),
            ("rest", Score::Rest),
        ] {
            let layer = model.last_layer();
            let captured = Method::ShapleyCam
                .capture(&model, images.clone(), &targets, layer, score)
                .unwrap();
            let [_, _, mh, mw] = captured.activations.dims();
            let raw = Method::ShapleyCam.map(&model.valid(), images.clone(), &captured, 3);
            let ours = postprocess(&raw.into_data().to_vec::<f32>().unwrap(), [mh, mw], [h, w]);
            assert_close(
                &format!("{name} shapleycam {kind}"),
                &ours,
                &maps[kind],
                1e-4,
            );
            if score == Score::Rest {
                // The Hessian term counts: ShapleyCAM of ReST is not Grad-CAM of the logit.
                let moved = max_difference(&ours, &fixture.cam);
                assert!(moved > 1e-2, "{name}: ShapleyCAM (ReST) moved by {moved}");
            }
        }
    }
}

/// Several targets at once (`--class a,b,c`, `--top-k`): one pass through the layers up to A,
/// the rest and the backward on a copy of A per target, equal to a capture per target.
#[test]
fn several_targets_share_one_capture() {
    let (fixture, model) = load("cifar_resnet8_w4");
    let images = fixture_images(&fixture);
    let batch = fixture.targets.len();
    let requests: Vec<Vec<Target>> = [Target::Predicted, Target::Ranked(2), Target::Class(3)]
        .iter()
        .map(|&t| vec![t; batch])
        .collect();
    let asked: Vec<&[Target]> = requests.iter().map(Vec::as_slice).collect();
    let layer = model.last_layer();
    let together =
        cam::capture_scored_each(&model, images.clone(), &asked, layer, Score::Probability)
            .unwrap();
    assert_eq!(together.len(), 3);
    for (targets, joint) in requests.iter().zip(&together) {
        let alone =
            capture_scored(&model, images.clone(), targets, layer, Score::Probability).unwrap();
        assert_eq!(joint.targets, alone.targets);
        let values = |t: &Tensor<Inner, 4>| t.clone().into_data().to_vec::<f32>().unwrap();
        let scale = values(&alone.gradients)
            .iter()
            .fold(0f32, |m, v| m.max(v.abs()));
        let gap = max_difference(&values(&joint.gradients), &values(&alone.gradients));
        assert!(
            gap <= 1e-6 * scale,
            "{targets:?}: gradients differ by {gap} (scale {scale})"
        );
        assert_eq!(values(&joint.activations), values(&alone.activations));
    }
    assert_ne!(together[0].targets, together[1].targets);
}

/// FullGrad against pytorch-grad-cam's `FullGrad` (`scripts/make_restored_fixtures.py`): every
/// convolution and BatchNorm with a bias, on twelve networks.
#[test]
fn full_grad_matches_pytorch_grad_cam() {
    let references: BTreeMap<String, Vec<f32>> = references("fullgrad.json");
    for (name, theirs) in &references {
        let (fixture, model) = load(name);
        let images = fixture_images(&fixture);
        let targets: Vec<Target> = fixture.targets.iter().map(|&t| Target::Class(t)).collect();
        // Through `Method` as `explain` takes it: the capture holds the map, post-processed.
        let layer = model.last_layer();
        let captured = Method::FullGrad
            .capture(&model, images.clone(), &targets, layer, Score::Logit)
            .unwrap();
        let raw = Method::FullGrad.map(&model.valid(), images, &captured, 3);
        let [h, w] = fixture.image_size;
        let ours = postprocess(&raw.into_data().to_vec::<f32>().unwrap(), [h, w], [h, w]);
        assert_close(&format!("{name} fullgrad"), &ours, theirs, 1e-4);
    }
}

/// `--aug-smooth` around the methods with captures of their own: each augmented image takes
/// the method's capture, as pytorch-grad-cam's `aug_smooth` calls the method itself.
#[test]
fn augmentation_smoothing_takes_each_methods_own_capture() {
    let references: BTreeMap<String, BTreeMap<String, Vec<f32>>> = references("aug_smooth.json");
    for (name, maps) in &references {
        let (fixture, model) = load(name);
        let images = fixture_images(&fixture);
        let targets: Vec<Target> = fixture.targets.iter().map(|&t| Target::Class(t)).collect();
        let original = capture(&model, images.clone(), &targets).unwrap();
        for (method_name, theirs) in maps {
            let method: Method = method_name.parse().unwrap();
            let layers = [model.last_layer()];
            let ours = cam::smoothing::aug_smooth(
                &model,
                images.clone(),
                &original,
                &layers,
                method,
                false,
                3,
            )
            .unwrap();
            let ours = ours.into_data().to_vec::<f32>().unwrap();
            assert_close(
                &format!("{name} {method_name} (aug smooth)"),
                &ours,
                theirs,
                1e-4,
            );
        }
    }
}
