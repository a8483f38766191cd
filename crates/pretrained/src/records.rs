//! The values of one f32 tensor of a PyTorch file, read from its storage record.
//!
//! burn-store 0.21 reads a record that is shorter than its tensor as if the rest were zeros,
//! and a missing record as all zeros: a damaged file loads silently and explains wrongly.
//! Here, as in PyTorch, a record must hold exactly the bytes its storage claims, the view
//! must lie inside it, the zip entry's CRC must match, and every size is checked against the
//! file before anything is allocated.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use crate::layout::{Layout, Records, TorchFile};

/// How much a deflated zip entry can expand: a bound on what a small file can make us allocate.
const MAX_DEFLATE_RATIO: u64 = 1032;

/// The row-major values of tensor `key`, whose storage holds f32.
pub fn read_f32(path: &Path, file: &TorchFile, key: &str) -> Result<Vec<f32>, String> {
    let layout = &file.layouts[key];
    let storage = layout.storage.as_ref().ok_or("no storage reference")?;
    let needed = layout.offset.saturating_add(layout.span());
    let values = match &file.records {
        Records::Zip { prefix } => read_zip_record(
            path,
            &format!("{prefix}data/{}", storage.key),
            storage.numel,
        )?,
        Records::Legacy(storages) => {
            let &(start, numel) = storages
                .get(&storage.key)
                .ok_or_else(|| format!("storage {} is not in the file", storage.key))?;
            if numel < needed {
                return Err(format!(
                    "its storage holds {numel} values, the tensor needs {needed}"
                ));
            }
            read_at(path, start, numel)?
        }
    };
    if values.len() < needed {
        return Err(format!(
            "its storage holds {} values, the tensor needs {needed}",
            values.len()
        ));
    }
    Ok(view(layout, values))
}

/// Record `name` of the zip archive, checked against the `numel` f32 values its storage claims.
fn read_zip_record(path: &Path, name: &str, numel: Option<usize>) -> Result<Vec<f32>, String> {
    let reader = BufReader::new(File::open(path).map_err(|e| e.to_string())?);
    let mut archive = zip::ZipArchive::new(reader).map_err(|e| e.to_string())?;
    let mut entry = archive
        .by_name(name)
        .map_err(|_| format!("its record {name} is missing"))?;
    let size = entry.size();
    if let Some(numel) = numel
        && size != numel as u64 * 4
    {
        return Err(format!(
            "record {name} holds {size} bytes where its storage needs {} (the file is damaged)",
            numel as u64 * 4
        ));
    }
    if size > entry.compressed_size().saturating_mul(MAX_DEFLATE_RATIO) || size % 4 != 0 {
        return Err(format!(
            "record {name} claims an impossible size of {size} bytes"
        ));
    }
    let mut values = vec![0.0f32; (size / 4) as usize];
    entry
        .read_exact(bytemuck::cast_slice_mut(&mut values))
        .map_err(|e| format!("record {name}: {e}"))?;
    // Reading on to the end makes the zip reader compare the entry's CRC.
    io::copy(&mut entry, &mut io::sink())
        .map_err(|e| format!("record {name}: {e} (the file is damaged)"))?;
    Ok(from_little_endian(values))
}

/// `numel` f32 values from byte `start` of a legacy file (their extent was checked on scanning).
fn read_at(path: &Path, start: u64, numel: usize) -> Result<Vec<f32>, String> {
    let mut file = File::open(path).map_err(|e| e.to_string())?;
    file.seek(SeekFrom::Start(start))
        .map_err(|e| e.to_string())?;
    let mut values = vec![0.0f32; numel];
    file.read_exact(bytemuck::cast_slice_mut(&mut values))
        .map_err(|e| format!("reading its storage: {e}"))?;
    Ok(from_little_endian(values))
}

/// PyTorch writes little-endian; on a little-endian machine this is free.
fn from_little_endian(mut values: Vec<f32>) -> Vec<f32> {
    for v in &mut values {
        *v = f32::from_bits(u32::from_le(v.to_bits()));
    }
    values
}

/// The tensor's row-major values out of its storage's: the storage itself when they coincide.
fn view(layout: &Layout, storage: Vec<f32>) -> Vec<f32> {
    let numel = layout.numel();
    if layout.is_row_major() {
        if layout.offset == 0 && storage.len() == numel {
            return storage;
        }
        return storage[layout.offset..layout.offset + numel].to_vec();
    }
    layout
        .gather(&storage)
        .expect("the storage was checked to cover the view")
}
