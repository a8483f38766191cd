//! The real pretrained weights in `../shared` (set `SHARED_DIR` to read them elsewhere):
//! legacy pickles and safetensors load strictly and classify the tutorial's photos. Without
//! them each test says so and passes, except under `CI=true` (or `REQUIRE_SHARED=1`), where the
//! weights must be there.

use std::io::Write;
use std::path::{Path, PathBuf};

use burn::tensor::activation::softmax;
use data::{Batcher, Sample};
use model::{Architecture, Network, SplitModel};

type B = burn::backend::Flex;

const LEGACY_RESNET20: &str = "weights/resnet20-cifar10/resnet20-12fca82f.th";

/// The shared folder, or `None` (after saying so) when it is absent and may be.
fn shared() -> Option<PathBuf> {
    let dir = std::env::var_os("SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    if dir.join("weights").is_dir() {
        return Some(dir);
    }
    let required = std::env::var("CI").is_ok_and(|v| v == "true")
        || std::env::var("REQUIRE_SHARED").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "the real weights are missing: {} has no weights/ (set SHARED_DIR to the shared folder)",
        dir.display()
    );
    // Straight to stderr: the test harness captures `eprintln!` of passing tests.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: the real weights are not at {} (set SHARED_DIR to the shared folder to run this test)",
        dir.display()
    );
    None
}

fn load(shared: &Path, arch: &str, file: &str) -> Network<B> {
    let architecture = Architecture::from_name(arch).unwrap();
    let size = pretrained::preprocessing(&architecture).0;
    pretrained::load::<B>(&architecture, &shared.join(file), size, &Default::default())
        .unwrap_or_else(|e| panic!("{e}"))
        .model
}

fn probabilities(model: &Network<B>, arch: &str, photo: &Path) -> Vec<f32> {
    let architecture = Architecture::from_name(arch).unwrap();
    let (image_size, normalization) = pretrained::preprocessing(&architecture);
    let pixels = data::folder::read_image(photo, image_size).unwrap();
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
    let Some(shared) = shared() else { return };
    let model = load(
        &shared,
        "efficientnet_lite0",
        "weights/efficientnet-lite0/efficientnet-lite0-57934424.pth",
    );
    for (photo, class) in [
        ("images/photos/elephant.jpeg", 386),
        ("images/photos/shark.jpeg", 2),
    ] {
        let (best, p) = top(&probabilities(
            &model,
            "efficientnet_lite0",
            &shared.join(photo),
        ));
        assert_eq!(best, class, "{photo}");
        assert!(p >= 0.8, "{photo}: probability {p}");
    }
}

#[test]
fn resnet20_legacy_pickle_and_safetensors_agree() {
    let Some(shared) = shared() else { return };
    let th = load(&shared, "resnet20", LEGACY_RESNET20);
    let st = load(
        &shared,
        "resnet20",
        "weights/resnet20-cifar10/resnet20-12fca82f.safetensors",
    );
    let photo = &shared.join("images/photos/chelsea.png");
    let (a, b) = (
        probabilities(&th, "resnet20", photo),
        probabilities(&st, "resnet20", photo),
    );
    assert_eq!(a.len(), 10);
    assert_eq!(a, b);
}

#[test]
fn a_legacy_pickle_cut_short_is_refused() {
    let Some(shared) = shared() else { return };
    let bytes = std::fs::read(shared.join(LEGACY_RESNET20)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for cut in [1, bytes.len() / 100, bytes.len() / 2] {
        let path = dir.path().join(format!("cut{cut}.th"));
        std::fs::write(&path, &bytes[..bytes.len() - cut]).unwrap();
        let architecture = Architecture::from_name("resnet20").unwrap();
        let error = match pretrained::load::<B>(&architecture, &path, [32, 32], &Default::default())
        {
            Ok(_) => panic!("a file {cut} bytes short loaded"),
            Err(error) => error.to_string(),
        };
        assert!(error.contains(&format!("cut{cut}.th")), "{error}");
    }
}
