//! The CIFAR-10 binary format: `data_batch_{1..5}.bin` and `test_batch.bin`, each a run of
//! 3,073-byte records (one label byte, then 1,024 red, 1,024 green and 1,024 blue bytes of a
//! 32×32 image, row-major).

use std::fs::File;
use std::io::{BufWriter, Read};
use std::path::{Path, PathBuf};

use crate::{DataError, ImageSet, Progress, Sample};

pub const RECORD_BYTES: usize = 1 + PIXELS * 3;
const SIDE: usize = 32;
const PIXELS: usize = SIDE * SIDE;
const FOLDER: &str = "cifar-10-batches-bin";
pub const ARCHIVE_URL: &str = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";
pub const ARCHIVE_SHA256: &str = "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd";
pub const CLASS_NAMES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// Which files of the data set to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CifarSplit {
    /// The five training batches, 50,000 images.
    Train,
    /// `test_batch.bin`, 10,000 images.
    Test,
}

impl CifarSplit {
    pub fn files(self) -> Vec<String> {
        match self {
            CifarSplit::Train => (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(),
            CifarSplit::Test => vec!["test_batch.bin".to_string()],
        }
    }
}

/// The folder holding the batch files: `dir` itself or its `cifar-10-batches-bin`.
pub fn batches_dir(dir: &Path) -> PathBuf {
    let nested = dir.join(FOLDER);
    if nested.is_dir() {
        nested
    } else {
        dir.to_path_buf()
    }
}

/// Reads one split from `dir` (the batch folder or its parent).
pub fn load(dir: &Path, split: CifarSplit) -> Result<ImageSet, DataError> {
    let folder = batches_dir(dir);
    let files = split.files();
    let missing: Vec<_> = files
        .iter()
        .filter(|f| !folder.join(f).is_file())
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(DataError::CifarMissing {
            dir: folder,
            missing: missing.join(", "),
            url: ARCHIVE_URL,
            sha256: ARCHIVE_SHA256,
        });
    }
    let mut samples = Vec::new();
    for file in files {
        samples.extend(read_batch(&folder.join(file))?);
    }
    Ok(ImageSet {
        samples,
        class_names: CLASS_NAMES.iter().map(|s| s.to_string()).collect(),
        image_size: [SIDE, SIDE],
    })
}

/// Reads every record of one batch file, checking its size and labels.
pub fn read_batch(path: &Path) -> Result<Vec<Sample>, DataError> {
    let bytes = std::fs::read(path).map_err(DataError::io(path))?;
    let not_cifar = |reason: String| DataError::NotCifar {
        path: path.to_path_buf(),
        reason,
    };
    if bytes.is_empty() || bytes.len() % RECORD_BYTES != 0 {
        return Err(not_cifar(format!(
            "its size, {} bytes, is not a whole number of {RECORD_BYTES}-byte records (truncated download?)",
            bytes.len()
        )));
    }
    bytes
        .chunks_exact(RECORD_BYTES)
        .enumerate()
        .map(|(index, record)| {
            let label = record[0] as usize;
            if label >= CLASS_NAMES.len() {
                return Err(not_cifar(format!(
                    "record {index} has label {label}, CIFAR-10 labels are 0–9 (a CIFAR-100 file?)"
                )));
            }
            Ok(Sample {
                pixels: planar_to_interleaved(&record[1..]),
                label,
                path: None,
                objects: vec![],
            })
        })
        .collect()
}

/// CHW planes → HWC pixels.
fn planar_to_interleaved(planes: &[u8]) -> Vec<u8> {
    (0..PIXELS)
        .flat_map(|p| [planes[p], planes[PIXELS + p], planes[2 * PIXELS + p]])
        .collect()
}

/// Makes sure `dir` holds the binary files, downloading and unpacking the official archive
/// when they are missing. Returns the batch folder.
pub fn ensure_downloaded(dir: &Path, progress: &dyn Progress) -> Result<PathBuf, DataError> {
    if load_is_possible(dir) {
        return Ok(batches_dir(dir));
    }
    std::fs::create_dir_all(dir).map_err(DataError::io(dir))?;
    let archive = dir.join("cifar-10-binary.tar.gz");
    download(ARCHIVE_URL, &archive, progress).map_err(|e| match e {
        DataError::Download { url, reason } => DataError::Download {
            url,
            reason: format!(
                "{reason}.\nOffline? Download it by hand (170 MB, SHA-256 {ARCHIVE_SHA256}) and unpack it in {} \
                 so that {}/{FOLDER}/data_batch_1.bin exists",
                dir.display(),
                dir.display()
            ),
        },
        other => other,
    })?;
    verify_sha256(&archive, ARCHIVE_SHA256)?;
    progress.start("unpacking CIFAR-10", None);
    let file = File::open(&archive).map_err(DataError::io(&archive))?;
    tar::Archive::new(flate2::read::GzDecoder::new(file))
        .unpack(dir)
        .map_err(DataError::io(&archive))?;
    progress.finish();
    std::fs::remove_file(&archive).map_err(DataError::io(&archive))?;
    Ok(batches_dir(dir))
}

fn load_is_possible(dir: &Path) -> bool {
    let folder = batches_dir(dir);
    CifarSplit::Train
        .files()
        .iter()
        .chain(&CifarSplit::Test.files())
        .all(|f| folder.join(f).is_file())
}

/// Streams `url` into `path` through a `.part` file, so an interrupted download never looks
/// complete.
fn download(url: &str, path: &Path, progress: &dyn Progress) -> Result<(), DataError> {
    let fail = |reason: String| DataError::Download {
        url: url.to_string(),
        reason,
    };
    let response = ureq::get(url).call().map_err(|e| fail(e.to_string()))?;
    let total = response.body().content_length();
    let partial = path.with_extension("gz.part");
    let mut out = BufWriter::new(File::create(&partial).map_err(DataError::io(&partial))?);
    let mut body = response.into_body().into_reader();
    progress.start("downloading CIFAR-10", total);
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let n = body.read(&mut buffer).map_err(|e| fail(e.to_string()))?;
        if n == 0 {
            break;
        }
        std::io::Write::write_all(&mut out, &buffer[..n]).map_err(DataError::io(&partial))?;
        progress.advance(n as u64);
    }
    progress.finish();
    out.into_inner().map_err(|e| DataError::Io {
        path: partial.clone(),
        source: e.into_error(),
    })?;
    std::fs::rename(&partial, path).map_err(DataError::io(path))
}

fn verify_sha256(path: &Path, expected: &str) -> Result<(), DataError> {
    let got = crate::digest::sha256_file(path).map_err(DataError::io(path))?;
    if got != expected {
        let _ = std::fs::remove_file(path);
        return Err(DataError::Checksum {
            path: path.to_path_buf(),
            got,
            expected: expected.into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(label: u8, fill: u8) -> Vec<u8> {
        let mut r = vec![label];
        r.extend((0..3 * PIXELS).map(|i| fill.wrapping_add((i / PIXELS) as u8)));
        r
    }

    #[test]
    fn reads_records_and_interleaves_channels() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data_batch_1.bin");
        std::fs::write(&path, [record(3, 10), record(9, 50)].concat()).unwrap();
        let samples = read_batch(&path).unwrap();
        assert_eq!(samples.len(), 2);
        assert_eq!(samples[0].label, 3);
        assert_eq!(&samples[0].pixels[..6], &[10, 11, 12, 10, 11, 12]);
        assert_eq!(samples[1].label, 9);
        assert_eq!(samples[1].pixels.len(), 32 * 32 * 3);
    }

    #[test]
    fn truncated_file_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data_batch_1.bin");
        let mut bytes = record(1, 0);
        bytes.truncate(3000);
        std::fs::write(&path, bytes).unwrap();
        let err = read_batch(&path).unwrap_err().to_string();
        assert!(
            err.contains("3000 bytes") && err.contains("truncated"),
            "{err}"
        );
    }

    #[test]
    fn foreign_label_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("test_batch.bin");
        std::fs::write(&path, [record(0, 0), record(42, 0)].concat()).unwrap();
        let err = read_batch(&path).unwrap_err().to_string();
        assert!(err.contains("record 1 has label 42"), "{err}");
    }

    #[test]
    fn missing_files_name_the_archive_and_place() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("test_batch.bin"), record(0, 0)).unwrap();
        let err = load(dir.path(), CifarSplit::Train).unwrap_err().to_string();
        assert!(
            err.contains("data_batch_1.bin") && err.contains(ARCHIVE_URL),
            "{err}"
        );
        let test = load(dir.path(), CifarSplit::Test).unwrap();
        assert_eq!(test.len(), 1);
        assert_eq!(test.class_names[0], "airplane");
    }

    #[test]
    fn checksum_mismatch_removes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.tar.gz");
        std::fs::write(&path, b"not the archive").unwrap();
        assert!(matches!(
            verify_sha256(&path, ARCHIVE_SHA256),
            Err(DataError::Checksum { .. })
        ));
        assert!(!path.exists());
    }
}
