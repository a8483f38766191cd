//! Folders of image files, one sub-folder per class: `root/<class>/*.jpg|jpeg|png`. Classes are
//! the sorted sub-folder names. Every image is converted to RGB and resized once, in parallel.

use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use rayon::prelude::*;

use crate::{DataError, ImageSet, Progress, Sample};

const EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// A file that could not be used, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Skipped {
    pub path: PathBuf,
    pub reason: String,
}

/// Decodes every image under `root`, resized to `[height, width]`. Unreadable files are
/// returned in the second list instead of failing the whole load.
pub fn load(
    root: &Path,
    image_size: [usize; 2],
    progress: &dyn Progress,
) -> Result<(ImageSet, Vec<Skipped>), DataError> {
    let (class_names, files) = list(root)?;
    progress.start("decoding images", Some(files.len() as u64));
    let decoded: Vec<Result<Sample, Skipped>> = files
        .into_par_iter()
        .map(|(path, label)| {
            let result = read_image(&path, image_size)
                .map(|pixels| Sample {
                    pixels,
                    label,
                    path: Some(path.clone()),
                    objects: vec![],
                })
                .map_err(|reason| Skipped { path, reason });
            progress.advance(1);
            result
        })
        .collect();
    progress.finish();
    let (mut samples, mut skipped) = (Vec::new(), Vec::new());
    for item in decoded {
        match item {
            Ok(sample) => samples.push(sample),
            Err(skip) => skipped.push(skip),
        }
    }
    if samples.is_empty() {
        return Err(match skipped.first() {
            Some(first) => DataError::NoReadableImages {
                root: root.to_path_buf(),
                files: skipped.len(),
                first: first.path.clone(),
                reason: first.reason.clone(),
            },
            None => DataError::EmptyFolder {
                root: root.to_path_buf(),
            },
        });
    }
    Ok((
        ImageSet {
            samples,
            class_names,
            image_size,
        },
        skipped,
    ))
}

/// A folder's class names, sorted, and every image file in them with its label.
pub type Listing = (Vec<String>, Vec<(PathBuf, usize)>);

/// The sorted class folders and every image file in them with its label.
pub fn list(root: &Path) -> Result<Listing, DataError> {
    let mut classes: Vec<(String, PathBuf)> = read_dir_sorted(root)?
        .into_iter()
        .filter(|p| p.is_dir())
        .filter_map(|p| Some((p.file_name()?.to_str()?.to_string(), p)))
        .collect();
    classes.sort();
    let mut files = Vec::new();
    let mut names = Vec::new();
    for (name, dir) in classes {
        let images: Vec<PathBuf> = read_dir_sorted(&dir)?
            .into_iter()
            .filter(|p| has_image_extension(p))
            .collect();
        if images.is_empty() {
            continue;
        }
        files.extend(images.into_iter().map(|p| (p, names.len())));
        names.push(name);
    }
    if names.is_empty() {
        return Err(DataError::EmptyFolder {
            root: root.to_path_buf(),
        });
    }
    Ok((names, files))
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut paths = std::fs::read_dir(dir)
        .map_err(DataError::io(dir))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(DataError::io(dir))?;
    paths.sort();
    Ok(paths)
}

fn has_image_extension(path: &Path) -> bool {
    path.is_file()
        && path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// Decodes any supported file (by content, not by name) to RGB at `[height, width]`.
pub fn read_image(path: &Path, size: [usize; 2]) -> Result<Vec<u8>, String> {
    Ok(resize_rgb(&decode_rgb(path)?, size))
}

/// RGB pixels at `[height, width]` (bilinear with antialiasing, as torchvision's `Resize`).
pub fn resize_rgb(rgb: &image::RgbImage, [height, width]: [usize; 2]) -> Vec<u8> {
    if rgb.dimensions() == (width as u32, height as u32) {
        return rgb.as_raw().clone();
    }
    image::imageops::resize(rgb, width as u32, height as u32, FilterType::Triangle).into_raw()
}

/// The largest image side decoded: a 48-megapixel phone photo (8000 × 6000) is well inside.
pub const MAX_SIDE: u32 = 16_384;
/// The most memory one decode may take (a 16384 × 16384 RGB image is 768 MiB).
pub const MAX_DECODE_BYTES: u64 = 1 << 30;

/// Decodes a file to 8-bit RGB whatever its colour type (grey, RGBA, 16-bit, CMYK). Images
/// beyond [`MAX_SIDE`] pixels a side or [`MAX_DECODE_BYTES`] are refused before decoding, and
/// a JPEG cut short is an error, not a picture half grey.
pub fn decode_rgb(path: &Path) -> Result<image::RgbImage, String> {
    // Read once: the truncation check and the decoder share the bytes.
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let mut reader = image::ImageReader::new(std::io::Cursor::new(&bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    if reader.format() == Some(image::ImageFormat::Jpeg) && jpeg_is_truncated(&bytes) {
        return Err("the JPEG is cut short (no end-of-image marker after its data)".into());
    }
    let image = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => format!(
            "{e}: images are read up to {MAX_SIDE} pixels a side and {} MiB decoded",
            MAX_DECODE_BYTES >> 20
        ),
        e => e.to_string(),
    })?;
    Ok(image.into_rgb8())
}

/// Whether the JPEG's last start-of-scan comes after its last end-of-image marker: the image
/// data was cut before its end. (Inside entropy-coded data 0xFF is always followed by 0x00 or
/// a restart marker, so both markers are unambiguous; an EXIF thumbnail's end marker comes
/// before the main image's scan.)
fn jpeg_is_truncated(bytes: &[u8]) -> bool {
    let last = |marker: u8| bytes.windows(2).rposition(|w| w == [0xFF, marker]);
    match (last(0xDA), last(0xD9)) {
        (Some(scan), Some(end)) => end < scan,
        (Some(_), None) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, Luma, Rgba, RgbaImage};

    #[test]
    fn reads_grey_and_rgba_and_skips_corrupt_files() {
        let root = tempfile::tempdir().unwrap();
        for class in ["dogs", "cats", "empty"] {
            std::fs::create_dir(root.path().join(class)).unwrap();
        }
        GrayImage::from_pixel(20, 10, Luma([200]))
            .save(root.path().join("cats/grey.png"))
            .unwrap();
        RgbaImage::from_pixel(8, 8, Rgba([10, 20, 30, 128]))
            .save(root.path().join("dogs/rgba.png"))
            .unwrap();
        std::fs::write(
            root.path().join("dogs/broken.jpg"),
            b"\xff\xd8 not really a jpeg",
        )
        .unwrap();
        std::fs::write(root.path().join("dogs/notes.txt"), b"ignored").unwrap();

        let (set, skipped) = load(root.path(), [4, 6], &()).unwrap();
        assert_eq!(set.class_names, ["cats", "dogs"]);
        assert_eq!(set.len(), 2);
        assert_eq!(set.samples[0].label, 0);
        assert_eq!(set.samples[0].pixels, vec![200; 4 * 6 * 3]);
        assert_eq!(&set.samples[1].pixels[..3], &[10, 20, 30]);
        assert_eq!(skipped.len(), 1);
        assert!(skipped[0].path.ends_with("dogs/broken.jpg"));
    }

    #[test]
    fn truncated_jpegs_and_oversized_images_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let whole = dir.path().join("whole.jpg");
        image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 4, y as u8 * 5, 90]))
            .save(&whole)
            .unwrap();
        assert!(decode_rgb(&whole).is_ok());
        let bytes = std::fs::read(&whole).unwrap();
        let cut = dir.path().join("cut.jpg");
        std::fs::write(&cut, &bytes[..bytes.len() - 40]).unwrap();
        let message = decode_rgb(&cut).unwrap_err();
        assert!(message.contains("cut short"), "{message}");

        // A header claiming more pixels a side than MAX_SIDE is refused before decoding.
        let wide = dir.path().join("wide.png");
        image::GrayImage::new(MAX_SIDE + 1, 1).save(&wide).unwrap();
        let message = decode_rgb(&wide).unwrap_err();
        assert!(message.contains("16384 pixels a side"), "{message}");
    }

    #[test]
    fn cmyk_jpegs_become_rgb() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cmyk-red-4x4.jpg");
        let pixels = read_image(&path, [4, 4]).unwrap();
        for rgb in pixels.chunks(3) {
            assert!(rgb[0] > 200 && rgb[1] < 50 && rgb[2] < 50, "{rgb:?}");
        }
    }

    #[test]
    fn folder_without_images_is_an_error() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("a")).unwrap();
        assert!(matches!(
            load(root.path(), [4, 4], &()),
            Err(DataError::EmptyFolder { .. })
        ));
    }
}
