//! The images to explain: files named on the command line, or a split of the run's data.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use data::{ImageSet, Sample};
use image::RgbImage;
use rayon::prelude::*;
use train::config::Source;
use train::{RunDir, TrainConfig, dataset};

use crate::shard::Share;

/// Which of the run's images to explain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Split {
    /// The images the run held out for validation.
    Val,
    /// The data set's own test set (CIFAR-10's test_batch.bin).
    Test,
}

impl Split {
    pub fn name(self) -> &'static str {
        match self {
            Split::Val => "held-out (val)",
            Split::Test => "test",
        }
    }
}

/// An image to explain: as the model takes it, and as the figures show it.
pub struct Item {
    /// Its position and, for files, the file's stem: `0007`, `000_elephant`.
    pub name: String,
    /// At the model's input size.
    pub sample: Sample,
    /// The true class, for images of a split.
    pub label: Option<usize>,
    /// Full size for figures; read only when its batch comes up (a split can be large).
    pub original: Option<RgbImage>,
}

impl Item {
    /// The picture the figures are drawn on: the source file at its own size when there is
    /// one, the stored pixels otherwise (CIFAR-10 binaries, synthetic shapes).
    pub fn load_original(&mut self, [height, width]: [usize; 2]) -> Result<(), String> {
        if self.original.is_some() {
            return Ok(());
        }
        let picture = match &self.sample.path {
            Some(path) => for_figures(data::folder::decode_rgb(path)?),
            None => enlarged(
                RgbImage::from_raw(width as u32, height as u32, self.sample.pixels.clone())
                    .ok_or("stored pixels do not match the image size")?,
            ),
        };
        self.original = Some(picture);
        Ok(())
    }
}

/// The longest side figures are drawn at (larger photos are reduced by whole blocks of
/// pixels to at most this). The map is computed at the model's input size anyway; drawing a
/// 48-megapixel photo's three figures at full size would take gigabytes and seconds.
pub const FIGURE_MAX_SIDE: u32 = 2048;

/// The side small stored images (CIFAR-10 binaries, synthetic shapes) are enlarged towards for
/// their figures: a 32 × 32 picture is a speck in any viewer.
pub const FIGURE_MIN_SIDE: u32 = 256;

/// `picture` enlarged by a whole factor, each pixel a square block (nearest neighbour, so that
/// no detail is invented), until its longest side is close to [`FIGURE_MIN_SIDE`].
fn enlarged(picture: RgbImage) -> RgbImage {
    let factor = FIGURE_MIN_SIDE / picture.width().max(picture.height()).max(1);
    if factor <= 1 {
        return picture;
    }
    let (width, height) = (picture.width() * factor, picture.height() * factor);
    image::imageops::resize(
        &picture,
        width,
        height,
        image::imageops::FilterType::Nearest,
    )
}

/// `picture`, its longest side reduced to at most [`FIGURE_MAX_SIDE`] by averaging blocks.
fn for_figures(picture: RgbImage) -> RgbImage {
    match picture
        .width()
        .max(picture.height())
        .div_ceil(FIGURE_MAX_SIDE)
    {
        0 | 1 => picture,
        block => average_blocks(&picture, block),
    }
}

/// Each `block × block` square of pixels (a partial last row or column dropped) as its mean.
fn average_blocks(picture: &RgbImage, block: u32) -> RgbImage {
    let (width, height) = (picture.width() / block, picture.height() / block);
    let (block, row_bytes) = (block as usize, picture.width() as usize * 3);
    let mut sums = vec![0u32; width as usize * 3];
    let mut out = Vec::with_capacity(sums.len() * height as usize);
    for rows in picture
        .as_raw()
        .chunks_exact(row_bytes * block)
        .take(height as usize)
    {
        sums.fill(0);
        for row in rows.chunks_exact(row_bytes) {
            for (x, pixels) in row.chunks_exact(3 * block).take(width as usize).enumerate() {
                for pixel in pixels.chunks_exact(3) {
                    for c in 0..3 {
                        sums[x * 3 + c] += u32::from(pixel[c]);
                    }
                }
            }
        }
        let area = (block * block) as u32;
        out.extend(sums.iter().map(|&sum| ((sum + area / 2) / area) as u8));
    }
    RgbImage::from_raw(width, height, out).expect("one RGB triple per pixel")
}

/// The share's image files, resized for the model; an unreadable file is an error naming it.
pub fn files(paths: &[PathBuf], size: [usize; 2], share: Share) -> Result<SplitItems> {
    let range = share.of(paths.len());
    let items = paths[range.clone()]
        .iter()
        .zip(range.clone())
        .map(|(path, i)| {
            let original = data::folder::decode_rgb(path)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            let pixels = data::folder::resize_rgb(&original, size);
            Ok(Item {
                name: format!("{i:03}_{}", stem(path)),
                sample: Sample {
                    pixels,
                    label: 0,
                    path: Some(path.clone()),
                    objects: vec![],
                },
                label: None,
                original: Some(for_figures(original)),
            })
        })
        .collect::<Result<_>>()?;
    Ok(SplitItems {
        items,
        total: paths.len(),
        chosen: paths.len(),
        first: range.start,
        unreadable: 0,
    })
}

fn stem(path: &Path) -> &str {
    path.file_stem().and_then(|s| s.to_str()).unwrap_or("image")
}

/// The share of the `limit` images of a split of the run's data (as the run split it, same
/// seed) spread over the classes.
pub struct SplitItems {
    pub items: Vec<Item>,
    /// Images in the whole split.
    pub total: usize,
    /// Images chosen of it (`--limit`), over all shards,
    pub chosen: usize,
    /// and the position of this share's first among them.
    pub first: usize,
    /// Files of the data folder that could not be decoded (never part of any split).
    pub unreadable: usize,
}

pub fn split(
    (run, config): (&RunDir, &TrainConfig),
    which: Split,
    limit: usize,
    class_names: &[String],
    share: Share,
) -> Result<SplitItems> {
    if let (Split::Val, Source::Folder, Some(root)) = (which, config.data.source, &config.data.dir)
        && let Some(files) = run.held_out()?
    {
        return Ok(listed_files(
            root,
            &files,
            limit,
            class_names,
            config.data.image_size,
            share,
        ));
    }
    let data = dataset::load(&config.data, config.seed, &crate::progress::Bars::default())
        .context("reloading the run's data (pass --data-dir if it moved)")?;
    if data.class_names() != class_names {
        bail!("the data set's classes differ from the run's classes.txt: was the folder changed?");
    }
    let set: ImageSet = match which {
        Split::Val => data.validation,
        Split::Test => data
            .test
            .context("this run's data has no separate test set: use --split val")?,
    };
    let labels: Vec<usize> = set.samples.iter().map(|s| s.label).collect();
    let total = set.len();
    let mut samples: Vec<Option<Sample>> = set.samples.into_iter().map(Some).collect();
    let chosen = choose(&labels, limit, class_names.len());
    let range = share.of(chosen.len());
    let items = chosen[range.clone()]
        .iter()
        .map(|&i| {
            let sample = samples[i].take().expect("each index once");
            Item {
                name: index_name(i, total),
                label: Some(sample.label),
                sample,
                original: None,
            }
        })
        .collect();
    Ok(SplitItems {
        items,
        total,
        chosen: chosen.len(),
        first: range.start,
        unreadable: data.skipped.len(),
    })
}

/// `limit` images of a folder `<root>/<class>/*.jpg`, whose class folders carry the model's
/// class names.
pub fn folder(
    root: &Path,
    limit: usize,
    class_names: &[String],
    size: [usize; 2],
    share: Share,
) -> Result<SplitItems> {
    let (folders, files) = data::folder::list(root)?;
    let unknown: Vec<&String> = folders
        .iter()
        .filter(|f| !class_names.contains(f))
        .collect();
    if !unknown.is_empty() {
        bail!(
            "{}: class folders {unknown:?} are not classes of the model (folders must carry the \
             model's class names; pass --labels to name them)",
            root.display()
        );
    }
    let relative: Vec<PathBuf> = files
        .iter()
        .filter_map(|(path, _)| path.strip_prefix(root).ok().map(Path::to_path_buf))
        .collect();
    Ok(listed_files(
        root,
        &relative,
        limit,
        class_names,
        size,
        share,
    ))
}

/// Files `<class>/<file>` under `root` (a run's `held_out.txt`, a folder's listing): only the
/// share's chosen ones are read.
fn listed_files(
    root: &Path,
    files: &[PathBuf],
    limit: usize,
    class_names: &[String],
    size: [usize; 2],
    share: Share,
) -> SplitItems {
    let class_of = |file: &PathBuf| {
        let class = file.components().next()?.as_os_str().to_str()?;
        class_names.iter().position(|name| name == class)
    };
    let labels: Vec<Option<usize>> = files.iter().map(class_of).collect();
    let known: Vec<usize> = (0..files.len()).filter(|&i| labels[i].is_some()).collect();
    let known_labels: Vec<usize> = known.iter().map(|&i| labels[i].unwrap()).collect();
    let chosen: Vec<usize> = choose(&known_labels, limit, class_names.len())
        .into_iter()
        .map(|k| known[k])
        .collect();
    let range = share.of(chosen.len());
    let read: Vec<Option<Item>> = chosen[range.clone()]
        .par_iter()
        .map(|&i| {
            let path = root.join(&files[i]);
            let original = data::folder::decode_rgb(&path).ok()?;
            Some(Item {
                name: index_name(i, files.len()),
                sample: Sample {
                    pixels: data::folder::resize_rgb(&original, size),
                    label: labels[i]?,
                    path: Some(path),
                    objects: vec![],
                },
                label: labels[i],
                original: Some(for_figures(original)),
            })
        })
        .collect();
    // Files of a class the run does not know (the folder changed) count as unreadable too.
    let unreadable =
        read.iter().filter(|item| item.is_none()).count() + (files.len() - known.len());
    SplitItems {
        items: read.into_iter().flatten().collect(),
        total: files.len(),
        chosen: chosen.len(),
        first: range.start,
        unreadable,
    }
}

/// `limit` indices covering the classes evenly, in split order.
fn choose(labels: &[usize], limit: usize, classes: usize) -> Vec<usize> {
    let mut chosen = classes_in_turn(labels, classes);
    chosen.truncate(limit);
    chosen.sort_unstable();
    chosen
}

/// `0042`: the position in the split, padded so that files sort in split order.
fn index_name(index: usize, total: usize) -> String {
    let digits = total.to_string().len().max(3);
    format!("{index:0digits$}")
}

/// Indices ordered so that any prefix covers the classes evenly: the first image of each class,
/// then the second of each, ... (files of a folder source come sorted by class).
fn classes_in_turn(labels: &[usize], classes: usize) -> Vec<usize> {
    let mut per_class = vec![Vec::new(); classes];
    for (i, &label) in labels.iter().enumerate() {
        per_class[label].push(i);
    }
    let longest = per_class.iter().map(Vec::len).max().unwrap_or(0);
    (0..longest)
        .flat_map(|rank| per_class.iter().filter_map(move |c| c.get(rank).copied()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_prefix_covers_the_classes_evenly() {
        let labels = [0, 0, 0, 1, 1, 2];
        assert_eq!(classes_in_turn(&labels, 3), [0, 3, 5, 1, 4, 2]);
        assert_eq!(classes_in_turn(&labels, 4), [0, 3, 5, 1, 4, 2]);
        assert!(classes_in_turn(&[], 2).is_empty());
    }

    #[test]
    fn large_pictures_are_reduced_for_figures_by_averaging_blocks() {
        let mut picture =
            RgbImage::from_pixel(FIGURE_MAX_SIDE * 2 + 10, 300, image::Rgb([200, 100, 50]));
        picture.put_pixel(0, 0, image::Rgb([0, 0, 0]));
        // Blocks of 3: 4106 / 3 = 1368 columns, 100 rows.
        let reduced = for_figures(picture);
        assert_eq!(reduced.dimensions(), (1368, 100));
        assert_eq!(
            reduced.get_pixel(0, 0).0,
            [178, 89, 44],
            "the mean of its block"
        );
        assert_eq!(reduced.get_pixel(10, 10).0, [200, 100, 50]);
        let small = RgbImage::new(640, 480);
        assert_eq!(for_figures(small).dimensions(), (640, 480));
    }

    #[test]
    fn small_stored_pictures_are_enlarged_pixel_for_pixel() {
        let mut picture = RgbImage::from_pixel(32, 16, image::Rgb([10, 20, 30]));
        picture.put_pixel(1, 0, image::Rgb([255, 0, 0]));
        let shown = enlarged(picture);
        assert_eq!(shown.dimensions(), (256, 128));
        assert_eq!(
            shown.get_pixel(8, 7).0,
            [255, 0, 0],
            "pixel (1, 0) is an 8 × 8 block"
        );
        assert_eq!(shown.get_pixel(16, 0).0, [10, 20, 30]);
        assert_eq!(enlarged(RgbImage::new(300, 200)).dimensions(), (300, 200));
    }
}
