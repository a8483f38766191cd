//! The PyTorch loader on files written the way torch writes them (tests/support/torch_file.rs):
//! wrappers and `module.` prefixes, permuted storages, and every way a file can be wrong.

mod support;

use burn::prelude::*;
use model::SplitModel;
use support::fixture::Fixture;
use support::torch_file::{StoredTensor, Wrapping, hostile_pth, zip_pth};

type B = burn::backend::Flex;

fn fixture() -> Fixture {
    Fixture::read("cifar_resnet8_w4")
}

fn tensors(fixture: &Fixture, prefix: &str) -> Vec<StoredTensor> {
    fixture
        .state_dict
        .iter()
        .map(|(key, t)| {
            StoredTensor::contiguous(&format!("{prefix}{key}"), t.values.clone(), t.shape.clone())
        })
        .collect()
}

fn load(fixture: &Fixture, bytes: &[u8]) -> Result<model::Network<B>, pretrained::ImportError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.pth");
    std::fs::write(&path, bytes).unwrap();
    pretrained::load::<B>(
        &fixture.architecture,
        &path,
        fixture.image_size,
        &Default::default(),
    )
    .map(|p| p.model)
}

fn assert_logits(fixture: &Fixture, model: &model::Network<B>) {
    let [h, w] = fixture.image_size;
    let batch = fixture.input.len() / (3 * h * w);
    let images = Tensor::<B, 4>::from_data(
        TensorData::new(fixture.input.clone(), [batch, 3, h, w]),
        &Default::default(),
    );
    let logits = model.forward(images).into_data().to_vec::<f32>().unwrap();
    for (got, want) in logits.iter().zip(&fixture.logits) {
        assert!(
            (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
            "{logits:?} vs {:?}",
            fixture.logits
        );
    }
}

fn error(fixture: &Fixture, bytes: &[u8]) -> String {
    match load(fixture, bytes) {
        Ok(_) => panic!("the loader accepted a bad file"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn zip_checkpoints_load_bare_wrapped_and_from_data_parallel() {
    let fixture = fixture();
    for (prefix, wrapping) in [("", Wrapping::Bare), ("module.", Wrapping::StateDict)] {
        let bytes = zip_pth(&tensors(&fixture, prefix), wrapping);
        let model = load(&fixture, &bytes).unwrap_or_else(|e| panic!("{e}"));
        assert_logits(&fixture, &model);
    }
}

#[test]
fn permuted_storages_are_put_back_in_order() {
    let fixture = fixture();
    let mut stored = tensors(&fixture, "");
    // Store conv1.weight [o, i, kh, kw] as TensorFlow does, [kh, kw, i, o] in memory.
    let conv = stored.iter_mut().find(|t| t.key == "conv1.weight").unwrap();
    let [o, i, kh, kw] = [0, 1, 2, 3].map(|d| conv.shape[d]);
    let mut hwio = vec![0.0; conv.storage.len()];
    for (index, &v) in conv.storage.iter().enumerate() {
        let (a, rest) = (index / (i * kh * kw), index % (i * kh * kw));
        let (b, rest) = (rest / (kh * kw), rest % (kh * kw));
        let (c, d) = (rest / kw, rest % kw);
        hwio[((c * kw + d) * i + b) * o + a] = v;
    }
    conv.storage = hwio;
    conv.strides = vec![1, o, kw * i * o, i * o];
    let model = load(&fixture, &zip_pth(&stored, Wrapping::Bare)).unwrap_or_else(|e| panic!("{e}"));
    assert_logits(&fixture, &model);
}

#[test]
fn wrong_files_are_errors_that_name_the_problem() {
    let fixture = fixture();
    let all = || tensors(&fixture, "");

    let mut missing = all();
    missing.retain(|t| t.key != "layer2.0.conv1.weight");
    let message = error(&fixture, &zip_pth(&missing, Wrapping::Bare));
    assert!(
        message.contains("1 missing from the file: layer2.0.conv1.weight"),
        "{message}"
    );

    let mut extra = all();
    extra.push(StoredTensor::contiguous(
        "head.weight",
        vec![0.0; 4],
        vec![2, 2],
    ));
    let message = error(&fixture, &zip_pth(&extra, Wrapping::Bare));
    assert!(
        message.contains("1 in the file but not in the model: head.weight"),
        "{message}"
    );

    let mut reshaped = all();
    let bias = reshaped
        .iter_mut()
        .find(|t| t.key == "linear.bias")
        .unwrap();
    bias.storage.push(0.0);
    bias.shape[0] += 1;
    let message = error(&fixture, &zip_pth(&reshaped, Wrapping::Bare));
    assert!(message.contains("wrong shape: linear.bias"), "{message}");

    let whole = zip_pth(&all(), Wrapping::Bare);
    let message = error(&fixture, &whole[..whole.len() / 2]);
    assert!(message.contains("not a readable PyTorch file"), "{message}");

    let message = error(&fixture, &hostile_pth());
    assert!(
        message.contains("refusing to unpickle `os.system`"),
        "{message}"
    );

    let message = error(&fixture, b"");
    assert!(message.contains("model.pth"), "{message}");
}

#[test]
fn damaged_and_lying_records_are_refused_naming_the_tensor() {
    let fixture = fixture();
    let all = || tensors(&fixture, "");
    let with = |edit: &dyn Fn(&mut StoredTensor)| {
        let mut stored = all();
        edit(stored.iter_mut().find(|t| t.key == "conv1.weight").unwrap());
        zip_pth(&stored, Wrapping::Bare)
    };

    // The record holds 16 of the 108 values the pickle claims (PyTorch: "record size (64
    // bytes) does not match expected size").
    let message = error(
        &fixture,
        &with(&|t| {
            t.claimed_numel = Some(t.storage.len());
            t.storage.truncate(16);
        }),
    );
    assert!(
        message.contains("conv1.weight") && message.contains("64 bytes"),
        "{message}"
    );

    // A shape of 10^10 values over a record of 108: refused before anything is allocated.
    let message = error(&fixture, &with(&|t| t.shape = vec![100_000, 100_000, 3, 3]));
    assert!(message.contains("conv1.weight"), "{message}");

    // One flipped bit in the data: the zip entry's CRC no longer matches.
    let whole = zip_pth(&all(), Wrapping::Bare);
    let conv = all().into_iter().find(|t| t.key == "conv1.weight").unwrap();
    let needle: Vec<u8> = conv.storage[..4]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let at = whole
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap();
    let mut flipped = whole.clone();
    flipped[at + 1] ^= 0x10;
    let message = error(&fixture, &flipped);
    assert!(
        message.contains("conv1.weight") && message.contains("checksum"),
        "{message}"
    );

    for (what, value) in [("NaN", f32::NAN), ("infinite", f32::INFINITY)] {
        let message = error(&fixture, &with(&|t| t.storage[3] = value));
        assert!(
            message.contains("conv1.weight") && message.contains(&format!("1 {what}")),
            "{message}"
        );
    }
}
