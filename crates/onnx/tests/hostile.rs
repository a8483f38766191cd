//! Damaged and hostile model files, each made here from a small real export (the MobileNet-like
//! fixture of `scripts/make_onnx_fixtures.py`): every one is refused with an error that names
//! the file and the problem, none panics, and the process stays under 1 GiB throughout.

use std::path::{Path, PathBuf};

use onnx_ir::{Message, ModelProto};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/onnx/mobile.script.onnx")
}

fn model() -> ModelProto {
    ModelProto::parse_from_bytes(&std::fs::read(fixture()).unwrap()).unwrap()
}

fn bytes(model: &ModelProto) -> Vec<u8> {
    model.write_to_bytes().unwrap()
}

fn graph(model: &mut ModelProto) -> &mut onnx_ir::GraphProto {
    model.graph.as_mut().unwrap()
}

/// The first initializer with at least `min` values stored in the file.
fn weight(model: &mut ModelProto, min: usize) -> &mut onnx_ir::TensorProto {
    graph(model)
        .initializer
        .iter_mut()
        .find(|t| t.data_type == 1 && t.raw_data.len() >= 4 * min)
        .expect("a float weight")
}

/// `Message::merge_from_bytes` sets a field whose enum type onnx-ir does not re-export:
/// field 14 (`data_location`) = 1 (EXTERNAL), in its wire form.
fn mark_external(tensor: &mut onnx_ir::TensorProto) {
    tensor.merge_from_bytes(&[14 << 3, 1]).unwrap();
}

fn point_at(tensor: &mut onnx_ir::TensorProto, location: &str, offset: usize, length: usize) {
    for (key, value) in [
        ("location", location.to_string()),
        ("offset", offset.to_string()),
        ("length", length.to_string()),
    ] {
        tensor.external_data.push(Default::default());
        let entry = tensor.external_data.last_mut().unwrap();
        entry.key = key.into();
        entry.value = value;
    }
    mark_external(tensor);
}

/// The first activation node (a ReLU, or a HardSwish's Clip).
fn activation(model: &mut ModelProto) -> &mut onnx_ir::NodeProto {
    graph(model)
        .node
        .iter_mut()
        .find(|n| n.op_type == "Relu" || n.op_type == "Clip")
        .expect("an activation")
}

type Case = (&'static str, fn() -> Vec<u8>, &'static str);

const CASES: &[Case] = &[
    ("empty", Vec::new, "empty"),
    (
        "truncated",
        || {
            let b = std::fs::read(fixture()).unwrap();
            b[..b.len() / 2].to_vec()
        },
        "could not parse",
    ),
    (
        "not_onnx",
        || b"\x89PNG\r\n\x1a\n this is a picture, not a model".to_vec(),
        "could not parse",
    ),
    (
        "external_outside",
        || {
            let mut m = model();
            let w = weight(&mut m, 1);
            let len = w.raw_data.len();
            w.raw_data = Default::default();
            point_at(w, "../../etc/passwd", 0, len);
            bytes(&m)
        },
        "outside the model's folder",
    ),
    (
        "external_absolute",
        || {
            let mut m = model();
            let w = weight(&mut m, 1);
            let len = w.raw_data.len();
            w.raw_data = Default::default();
            point_at(w, "/etc/passwd", 0, len);
            bytes(&m)
        },
        "outside the model's folder",
    ),
    (
        "dims_claim_more",
        || {
            let mut m = model();
            let w = weight(&mut m, 2);
            w.dims[0] *= 2;
            bytes(&m)
        },
        "but the file holds",
    ),
    (
        "dims_claim_fewer",
        || {
            let mut m = model();
            let w = weight(&mut m, 4);
            let keep = w.raw_data.len() / 2;
            w.raw_data = w.raw_data.slice(..keep);
            bytes(&m)
        },
        "but the file holds",
    ),
    (
        "absurd_dims",
        || {
            let mut m = model();
            let w = weight(&mut m, 1);
            w.dims = vec![1 << 40, 1 << 40];
            bytes(&m)
        },
        "too large to be real",
    ),
    (
        "negative_dims",
        || {
            let mut m = model();
            weight(&mut m, 1).dims[0] = -3;
            bytes(&m)
        },
        "has dims",
    ),
    (
        "nan_weight",
        || {
            let mut m = model();
            let w = weight(&mut m, 1);
            let mut raw = w.raw_data.to_vec();
            raw[..4].copy_from_slice(&f32::NAN.to_le_bytes());
            w.raw_data = raw.into();
            bytes(&m)
        },
        "non-finite",
    ),
    (
        "infinite_weight",
        || {
            let mut m = model();
            let w = weight(&mut m, 1);
            let mut raw = w.raw_data.to_vec();
            raw[..4].copy_from_slice(&f32::INFINITY.to_le_bytes());
            w.raw_data = raw.into();
            bytes(&m)
        },
        "non-finite",
    ),
    (
        "dangling_input",
        || {
            let mut m = model();
            let node = activation(&mut m);
            node.input[0] = "a_tensor_nothing_makes".into();
            bytes(&m)
        },
        "a_tensor_nothing_makes",
    ),
    (
        "cycle",
        || {
            let mut m = model();
            let g = graph(&mut m);
            let last = g.node.last().unwrap().output[0].clone();
            let node = g.node.iter_mut().find(|n| n.op_type == "Conv").unwrap();
            node.input[0] = last;
            bytes(&m)
        },
        "which a later node produces",
    ),
    (
        "unknown_operator",
        || {
            let mut m = model();
            let node = activation(&mut m);
            node.op_type = "MakeItLookGood".into();
            node.name = "/features/odd/MakeItLookGood".into();
            bytes(&m)
        },
        "node /features/odd/MakeItLookGood: the operator ai.onnx::MakeItLookGood",
    ),
    (
        "unknown_domain",
        || {
            let mut m = model();
            let node = activation(&mut m);
            node.domain = "com.example.secret".into();
            bytes(&m)
        },
        "com.example.secret::",
    ),
];

/// Peak resident memory of this process, from the kernel's own count.
fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[test]
fn every_hostile_file_is_refused_by_name_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for (name, make, expected) in CASES {
        let path = dir.path().join(format!("{name}.onnx"));
        std::fs::write(&path, make()).unwrap();
        let result = std::panic::catch_unwind(|| onnx::load(&path));
        let message = match result {
            Err(_) => format!("{name}: panicked"),
            Ok(Ok(_)) => format!("{name}: accepted"),
            Ok(Err(e)) => {
                let text = e.to_string();
                if text.contains(&*path.to_string_lossy()) && text.contains(expected) {
                    eprintln!("{name}: {text}");
                    continue;
                }
                format!("{name}: {text:?} should name the file and say {expected:?}")
            }
        };
        failures.push(message);
    }
    assert!(failures.is_empty(), "{failures:#?}");
    if cfg!(target_os = "linux") {
        let peak = peak_rss_bytes();
        assert!(peak < 1 << 30, "peak memory {peak} bytes");
    }
}

#[test]
fn external_data_inside_the_models_folder_loads_as_the_embedded_model_does() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = model();
    let mut data = Vec::new();
    for tensor in &mut graph(&mut m).initializer {
        if tensor.raw_data.is_empty() {
            continue;
        }
        let offset = data.len();
        data.extend_from_slice(&tensor.raw_data);
        point_at(tensor, "weights/model.bin", offset, tensor.raw_data.len());
        tensor.raw_data = Default::default();
    }
    std::fs::create_dir(dir.path().join("weights")).unwrap();
    std::fs::write(dir.path().join("weights/model.bin"), data).unwrap();
    let path = dir.path().join("external.onnx");
    std::fs::write(&path, bytes(&m)).unwrap();
    let external = onnx::load(&path).unwrap();
    let embedded = onnx::load(&fixture()).unwrap();
    assert_eq!(external.constants.len(), embedded.constants.len());
    for (a, b) in external.constants.iter().zip(&embedded.constants) {
        assert_eq!(a.dims, b.dims);
        assert!(a.values == b.values, "a constant differs");
    }
}

#[test]
fn a_missing_external_data_file_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = model();
    let w = weight(&mut m, 1);
    let len = w.raw_data.len();
    w.raw_data = Default::default();
    point_at(w, "gone.bin", 0, len);
    let path = dir.path().join("model.onnx");
    std::fs::write(&path, bytes(&m)).unwrap();
    let err = onnx::load(&path).unwrap_err().to_string();
    assert!(err.contains(&*path.to_string_lossy()), "{err}");
}
