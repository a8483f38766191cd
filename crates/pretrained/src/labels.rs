use std::path::Path;

use crate::ImportError;

/// The ImageNet-1k class names in class-id order (from torchvision's model metadata, written
/// by `scripts/make_imagenet_labels.py`).
const IMAGENET: &str = include_str!("imagenet_classes.txt");

pub fn imagenet_classes() -> Vec<String> {
    IMAGENET.lines().map(str::to_string).collect()
}

/// Names for `num_classes` outputs: ImageNet's for 1000, CIFAR-10's for 10, `class N` otherwise.
pub fn class_names(num_classes: usize) -> Vec<String> {
    match num_classes {
        1000 => imagenet_classes(),
        10 => data::cifar::CLASS_NAMES.map(str::to_string).to_vec(),
        n => (0..n).map(|i| format!("class {i}")).collect(),
    }
}

/// A labels file: one class name per line, in class-id order, exactly `num_classes` of them.
pub fn read_labels(path: &Path, num_classes: usize) -> Result<Vec<String>, ImportError> {
    let error = |message: String| ImportError::Labels {
        path: path.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    if names.len() != num_classes {
        return Err(error(format!(
            "{} names for a model with {num_classes} classes (one name per line)",
            names.len()
        )));
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imagenet_names_are_complete_and_in_order() {
        let names = imagenet_classes();
        assert_eq!(names.len(), 1000);
        assert_eq!(names[2], "great white shark");
        assert_eq!(names[386], "African elephant");
    }

    #[test]
    fn labels_file_must_match_the_model() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labels.txt");
        std::fs::write(&path, "cat\ndog\n").unwrap();
        assert_eq!(read_labels(&path, 2).unwrap(), ["cat", "dog"]);
        let err = read_labels(&path, 3).unwrap_err().to_string();
        assert!(err.contains("2 names for a model with 3 classes"), "{err}");
    }
}
