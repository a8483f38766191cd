//! Weights file → state dict → strictly checked module.
//!
//! Reading goes through burn-store's readers, whose pickle interpreter rebuilds tensors and
//! plain containers only: a global it does not know is an error, never an import. Keys are
//! normalised in this order: training wrappers (`state_dict.`, `model.`) and DataParallel's
//! `module.` are dropped, BatchNorm's `num_batches_tracked` counters and Swin's
//! `relative_position_index` (derived from the window size) are ignored, then the
//! architecture's own renames apply (`Architecture::torch_key_patterns`).

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::Path;
use std::rc::Rc;

use burn::module::ParamId;
use burn::prelude::*;
use burn::tensor::DType;
use burn_store::pytorch::pickle_reader::PickleError;
use burn_store::pytorch::{PytorchError, PytorchReader};
use burn_store::{
    ApplyError, ApplyResult, KeyRemapper, ModuleSnapshot, ModuleStore, SafetensorsStore,
    TensorSnapshot, TensorSnapshotError,
};
use model::{Architecture, Head, ModelSpec, Network};

use crate::ImportError;
use crate::adapter::TorchToBurn;
use crate::layout::{Layout, TorchFile, read_torch_file};
use crate::records;

/// Integer buffers PyTorch saves that the architectures rebuild themselves.
const DERIVED_BUFFERS: [&str; 2] = ["num_batches_tracked", "relative_position_index"];

/// Top-level keys under which training scripts commonly save the state dict.
const WRAPPERS: [&str; 4] = ["state_dict", "model_state_dict", "model", "net"];

/// A model of `architecture` for images of `image_size` (it matters only for heads that
/// flatten, as the tutorial's CNN), with the weights of `path`; the number of classes comes
/// from the file. Every tensor of the model must be in the file and every tensor of the file
/// must be used, with the same shapes.
pub fn load<B: Backend>(
    architecture: &Architecture,
    path: &Path,
    image_size: [usize; 2],
    device: &B::Device,
) -> Result<Pretrained<B>, ImportError> {
    if let Architecture::Onnx(_) = architecture {
        return Err(ImportError::Unreadable {
            path: path.to_path_buf(),
            message: "an ONNX network is read by model::OnnxNetwork (ModelSpec::init_onnx), \
                      not as PyTorch weights"
                .into(),
        });
    }
    let snapshots = remap(
        read_state_dict(path)?,
        architecture.torch_key_patterns(),
        path,
    )?;
    let key = classifier_key(architecture);
    let outputs = snapshots
        .iter()
        .find(|s| s.full_path() == key)
        .map(|s| s.shape[0])
        .ok_or_else(|| ImportError::NoClassifier {
            path: path.to_path_buf(),
            key: key.to_string(),
            architecture: arch_name(architecture),
        })?;
    // One output row is a binary classifier (a sigmoid on class 1's logit).
    let head = Head::of_outputs(outputs);
    let num_classes = outputs.max(2);
    let spec = ModelSpec {
        architecture: architecture.clone(),
        num_classes,
        head,
        channels: 3,
        image_size,
    };
    let mut model = spec
        .init::<B>(device)
        .map_err(|message| ImportError::Mismatch {
            path: path.to_path_buf(),
            architecture: arch_name(architecture),
            details: message,
        })?;
    let sources: Vec<String> = snapshots.iter().map(TensorSnapshot::full_path).collect();
    let problems = Rc::new(RefCell::new(Vec::new()));
    let snapshots = snapshots
        .into_iter()
        .map(|snapshot| checked(snapshot, &problems))
        .collect();
    let result = model.apply(snapshots, None, Some(Box::new(TorchToBurn)), true);
    let problems = problems.take();
    if !problems.is_empty() {
        return Err(ImportError::Damaged {
            path: path.to_path_buf(),
            details: list(&problems),
        });
    }
    check(&result, &sources).map_err(|details| ImportError::Mismatch {
        path: path.to_path_buf(),
        architecture: arch_name(architecture),
        details,
    })?;
    Ok(Pretrained {
        model,
        num_classes,
        head,
    })
}

/// A loaded model and its number of classes (read from the file: running the model to find
/// out would, on an autodiff backend, update its BatchNorm statistics).
pub struct Pretrained<B: Backend> {
    pub model: Network<B>,
    pub num_classes: usize,
    pub head: Head,
}

fn arch_name(architecture: &Architecture) -> String {
    format!("{architecture:?}")
}

/// Every tensor of the file, keys normalised (wrappers, `module.`, counters removed).
pub fn read_state_dict(path: &Path) -> Result<Vec<TensorSnapshot>, ImportError> {
    let unreadable = |message: String| ImportError::Unreadable {
        path: path.to_path_buf(),
        message,
    };
    if !path.is_file() {
        return Err(unreadable("no such file".into()));
    }
    let named: Vec<(String, TensorSnapshot)> = if is_safetensors(path) {
        SafetensorsStore::from_file(path)
            .get_all_snapshots()
            .map_err(|e| unreadable(format!("not a readable safetensors file ({e})")))?
            .iter()
            .map(|(key, snapshot)| (key.clone(), snapshot.clone()))
            .collect()
    } else {
        // burn-store's reader refuses pickles that would import code and lists the tensors;
        // their values are read here, with every size checked.
        let tensors = PytorchReader::new(path)
            .map_err(|e| reader_error(path, e))?
            .into_tensors();
        let file = Rc::new(read_torch_file(path).map_err(&unreadable)?);
        tensors
            .into_iter()
            .map(|(key, snapshot)| match file.layouts.get(&key) {
                Some(layout)
                    if layout
                        .storage
                        .as_ref()
                        .is_some_and(|s| s.kind == "FloatStorage") =>
                {
                    let snapshot = f32_snapshot(path, &file, &key, layout);
                    Ok((key, snapshot))
                }
                Some(layout) if !layout.is_row_major() => {
                    let ordered = reorder(&snapshot, layout).ok_or_else(|| {
                        unreadable(format!(
                            "`{key}` is a strided view; save it with .contiguous()"
                        ))
                    })?;
                    Ok((key, ordered))
                }
                _ => Ok((key, snapshot)),
            })
            .collect::<Result<_, ImportError>>()?
    };
    // The readers key their maps by name but may leave the snapshot's own path unset, which
    // the key remapper needs.
    let snapshots: Vec<TensorSnapshot> = named
        .into_iter()
        .filter(|(key, _)| !DERIVED_BUFFERS.iter().any(|b| key.ends_with(b)))
        .map(|(key, mut snapshot)| {
            snapshot.path_stack = Some(key.split('.').map(str::to_string).collect());
            snapshot
        })
        .collect();
    if snapshots.is_empty() {
        return Err(ImportError::Empty {
            path: path.to_path_buf(),
        });
    }
    let mut prefixes = Vec::new();
    let keys: Vec<String> = snapshots.iter().map(TensorSnapshot::full_path).collect();
    let mut stripped: Vec<&str> = keys.iter().map(String::as_str).collect();
    for candidate in WRAPPERS.iter().chain(&["module"]) {
        let prefix = format!("{candidate}.");
        if stripped.iter().all(|k| k.starts_with(&prefix)) {
            stripped = stripped.iter().map(|k| &k[prefix.len()..]).collect();
            prefixes.push(prefix);
        }
    }
    let prefix = prefixes.concat();
    if prefix.is_empty() {
        return Ok(snapshots);
    }
    remap(
        snapshots,
        vec![(format!("^{}", regex_escape(&prefix)), String::new())],
        path,
    )
}

fn regex_escape(text: &str) -> String {
    text.replace('.', r"\.")
}

fn remap(
    snapshots: Vec<TensorSnapshot>,
    patterns: Vec<(String, String)>,
    path: &Path,
) -> Result<Vec<TensorSnapshot>, ImportError> {
    if patterns.is_empty() {
        return Ok(snapshots);
    }
    let remapper = KeyRemapper::from_patterns(patterns).map_err(|e| ImportError::Unreadable {
        path: path.to_path_buf(),
        message: format!("key pattern: {e}"),
    })?;
    Ok(remapper.remap(snapshots).0)
}

/// The snapshot, its values refused when they cannot be read or are not all finite: a NaN or
/// an infinity in the weights makes every prediction and map meaningless while looking like
/// one. What was wrong goes to `problems`, by tensor.
fn checked(snapshot: TensorSnapshot, problems: &Rc<RefCell<Vec<String>>>) -> TensorSnapshot {
    let (name, read, problems, dtype) = (
        snapshot.full_path(),
        snapshot.clone_data_fn(),
        problems.clone(),
        snapshot.dtype,
    );
    let check = Rc::new(move || {
        let refuse = |message: String| {
            problems.borrow_mut().push(message.clone());
            Err(TensorSnapshotError::DataError(message))
        };
        // Every parameter of these networks is floating point; integer data poured into a float
        // parameter corrupted memory (found by fuzzing: a `U32` running mean).
        if !dtype.is_float() {
            return refuse(format!(
                "`{name}` is stored as {dtype:?}: the networks' weights are floating point"
            ));
        }
        let data = match read() {
            Ok(data) => data,
            Err(
                TensorSnapshotError::DataError(message)
                | TensorSnapshotError::IoError(message)
                | TensorSnapshotError::PanicError(message),
            ) => return refuse(message),
        };
        if data.dtype.is_float() {
            let (nan, infinite) = match data.as_slice::<f32>() {
                Ok(values) => non_finite(values.iter().copied()),
                Err(_) => non_finite(data.iter::<f32>()),
            };
            if nan + infinite > 0 {
                return refuse(format!(
                    "`{name}` holds {nan} NaN and {infinite} infinite values (of {}): the weights are broken",
                    data.num_elements()
                ));
            }
        }
        Ok(data)
    });
    TensorSnapshot::from_closure(
        check,
        snapshot.dtype,
        snapshot.shape.clone(),
        snapshot.path_stack.clone().unwrap_or_default(),
        snapshot.container_stack.clone().unwrap_or_default(),
        snapshot.tensor_id.unwrap_or_default(),
    )
}

/// How many of `values` are NaN, and how many infinite.
fn non_finite(values: impl Iterator<Item = f32>) -> (usize, usize) {
    values.fold((0, 0), |(nan, infinite), v| {
        (
            nan + usize::from(v.is_nan()),
            infinite + usize::from(v.is_infinite()),
        )
    })
}

/// Tensor `key` of a PyTorch file, its f32 values read (when the model asks) by
/// [`records::read_f32`].
fn f32_snapshot(path: &Path, file: &Rc<TorchFile>, key: &str, layout: &Layout) -> TensorSnapshot {
    let (path, file, name) = (path.to_path_buf(), file.clone(), key.to_string());
    let shape = layout.shape.clone();
    let read = Rc::new(move || {
        records::read_f32(&path, &file, &name)
            .map(|values| TensorData::new(values, shape.clone()))
            .map_err(|message| TensorSnapshotError::DataError(format!("`{name}`: {message}")))
    });
    TensorSnapshot::from_closure(
        read,
        DType::F32,
        layout.shape.clone().into(),
        vec![],
        vec![],
        ParamId::new(),
    )
}

/// The snapshot's values in row-major order; burn-store read them in storage order.
fn reorder(snapshot: &TensorSnapshot, layout: &Layout) -> Option<TensorSnapshot> {
    let data = snapshot.to_data().ok()?.convert::<f32>();
    // burn-store's values already start at the view's offset.
    let from_offset = Layout {
        offset: 0,
        ..layout.clone()
    };
    let values = from_offset.gather(data.as_slice::<f32>().ok()?)?;
    Some(TensorSnapshot::from_data(
        TensorData::new(values, layout.shape.clone()),
        snapshot.path_stack.clone().unwrap_or_default(),
        snapshot.container_stack.clone().unwrap_or_default(),
        snapshot.tensor_id.unwrap_or_default(),
    ))
}

/// A safetensors file starts with the length of its JSON header, then `{` (a zip starts with
/// `PK`, a pickle with 0x80). A lying header length is then the safetensors reader's error.
fn is_safetensors(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 9];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && head[8] == b'{'
}

fn reader_error(path: &Path, error: PytorchError) -> ImportError {
    match error {
        PytorchError::Pickle(PickleError::UnsupportedType(global)) => ImportError::UnsafePickle {
            path: path.to_path_buf(),
            global,
        },
        other => ImportError::Unreadable {
            path: path.to_path_buf(),
            message: format!("not a readable PyTorch file ({other})"),
        },
    }
}

/// The module path (after renames) of the last Linear's weight, `[classes, features]`.
fn classifier_key(architecture: &Architecture) -> &'static str {
    match architecture {
        Architecture::CifarResnet(_) => "linear.weight",
        Architecture::Vgg(_) => "head.2.weight",
        Architecture::TutorialCnn(_) => "fc3.weight",
        Architecture::Resnet(_) | Architecture::EfficientnetLite(_) => "fc.weight",
        Architecture::MobilenetV2(_)
        | Architecture::MobilenetV3Large(_)
        | Architecture::Densenet(_)
        | Architecture::Convnext(_) => "classifier.weight",
        Architecture::Vit(_) | Architecture::Swin(_) => "head.weight",
        // Never asked: `load` refuses ONNX, whose file is its own architecture.
        Architecture::Onnx(_) => "",
    }
}

/// Strictness on top of burn-store's result: nothing missing, nothing left over, no shape
/// error. burn-store matches BatchNorm's `gamma`/`beta` under PyTorch's `weight`/`bias` yet
/// still lists those source keys as unused, so a source key counts as used when it or its
/// BatchNorm alias was applied.
fn check(result: &ApplyResult, sources: &[String]) -> Result<(), String> {
    let applied: BTreeSet<&str> = result.applied.iter().map(String::as_str).collect();
    let used = |key: &str| {
        applied.contains(key)
            || [(".weight", ".gamma"), (".bias", ".beta")]
                .iter()
                .any(|(torch, burn)| {
                    key.strip_suffix(torch)
                        .is_some_and(|stem| applied.contains(format!("{stem}{burn}").as_str()))
                })
    };
    let unexpected: Vec<&str> = sources
        .iter()
        .map(String::as_str)
        .filter(|k| !used(k))
        .collect();
    let missing: Vec<String> = result
        .missing
        .iter()
        .map(|(path, _)| path.replace(".gamma", ".weight").replace(".beta", ".bias"))
        .collect();
    let shapes: Vec<String> = result
        .errors
        .iter()
        .map(|e| match e {
            ApplyError::ShapeMismatch {
                path,
                expected,
                found,
            } => format!(
                "{path}: the model has {:?}, the file {:?}",
                &expected[..],
                &found[..]
            ),
            other => other.to_string(),
        })
        .collect();
    let mut report = String::new();
    for (title, items) in [
        ("missing from the file", missing),
        (
            "in the file but not in the model",
            unexpected.iter().map(|s| s.to_string()).collect(),
        ),
        ("wrong shape", shapes),
    ] {
        if !items.is_empty() {
            report += &format!("  {} {title}: {}\n", items.len(), list(&items));
        }
    }
    if report.is_empty() {
        Ok(())
    } else {
        Err(report.trim_end().to_string())
    }
}

/// The first few items, and how many more.
fn list(items: &[String]) -> String {
    let shown: Vec<&str> = items.iter().take(8).map(String::as_str).collect();
    let more = items.len().saturating_sub(shown.len());
    let mut text = shown.join(", ");
    if more > 0 {
        text += &format!(", … ({more} more)");
    }
    text
}
