//! The real pretrained weights in `../shared` (set `SHARED_DIR` to read them elsewhere):
//! legacy pickles and safetensors load strictly and classify the tutorial's photos.

use std::path::PathBuf;

use burn::tensor::activation::softmax;
use data::{Batcher, Sample};
use model::{Architecture, Network, SplitModel};

type B = burn::backend::Flex;

fn shared() -> PathBuf {
    let dir = std::env::var_os("SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    assert!(
        dir.join("weights").is_dir(),
        "the real weights are missing: {} has no weights/ (set SHARED_DIR to the shared folder)",
        dir.display()
    );
    dir
}

fn load(arch: &str, file: &str) -> Network<B> {
    let architecture = Architecture::from_name(arch).unwrap();
    let size = pretrained::preprocessing(&architecture).0;
    pretrained::load::<B>(
        &architecture,
        &shared().join(file),
        size,
        &Default::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .model
}

fn probabilities(model: &Network<B>, arch: &str, photo: &str) -> Vec<f32> {
    let architecture = Architecture::from_name(arch).unwrap();
    let (image_size, normalization) = pretrained::preprocessing(&architecture);
    let pixels = data::folder::read_image(&shared().join(photo), image_size).unwrap();
    let sample = Sample {
        pixels,
        label: 0,
        path: None,
        objects: vec![],
    };
    let batcher = Batcher {
        image_size,
        normalization,
        augmentation: Default::default(),
        seed: 0,
    };
    let (images, _) = batcher
        .batch(&[(0, &sample)], 0)
        .to_tensors::<B>(&Default::default());
    softmax(model.forward(images), 1)
        .into_data()
        .to_vec::<f32>()
        .unwrap()
}

fn top(p: &[f32]) -> (usize, f32) {
    p.iter()
        .copied()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap()
}

#[test]
fn efficientnet_lite0_knows_the_tutorials_elephant_and_shark() {
    let model = load(
        "efficientnet_lite0",
        "weights/efficientnet-lite0/efficientnet-lite0-57934424.pth",
    );
    for (photo, class) in [
        ("images/photos/elephant.jpeg", 386),
        ("images/photos/shark.jpeg", 2),
    ] {
        let (best, p) = top(&probabilities(&model, "efficientnet_lite0", photo));
        assert_eq!(best, class, "{photo}");
        assert!(p >= 0.8, "{photo}: probability {p}");
    }
}

#[test]
fn resnet20_legacy_pickle_and_safetensors_agree() {
    let th = load("resnet20", "weights/resnet20-cifar10/resnet20-12fca82f.th");
    let st = load(
        "resnet20",
        "weights/resnet20-cifar10/resnet20-12fca82f.safetensors",
    );
    let photo = "images/photos/chelsea.png";
    let (a, b) = (
        probabilities(&th, "resnet20", photo),
        probabilities(&st, "resnet20", photo),
    );
    assert_eq!(a.len(), 10);
    assert_eq!(a, b);
}
