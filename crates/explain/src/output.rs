//! Everything `explain` writes: the three figures of each explained image, the optional raw
//! arrays, and summary.json / summary.csv.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use cam::figure::{Colormap, gradient_image, heatmap, superimpose};
use cam::postprocess::{Normalization, peak, relu_normalize, resize_bilinear, upsample};
use image::RgbImage;
use serde::{Deserialize, Serialize};

/// Where the figures of one explained image go, relative to the output folder.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Figures {
    pub original: String,
    pub heatmap: String,
    pub superimposed: String,
    /// Guided backpropagation and Guided CAM (`--guided`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guided: Option<GuidedFigures>,
    /// Folder of cam_raw.npy and cam.npy (`--save-raw`): the image's own folder, or in the
    /// tutorial's layout `raw/<class>/<stem>/`.
    #[serde(skip)]
    pub raw_folder: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GuidedFigures {
    pub backprop: String,
    pub cam: String,
}

/// How figures are arranged on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `<name>/{original,heatmap,superimposed}.jpg`, for image files.
    PerImage,
    /// The tutorial's: `{originals,heatmaps,superimposed}/<true class>/<index>_label_<predicted>.jpg`.
    PerClass,
}

impl Layout {
    /// `stem` is the image's name with its top-k suffix; `class` its true class.
    pub fn figures(self, stem: &str, class: &str, predicted: &str, guided: bool) -> Figures {
        match self {
            Layout::PerImage => Figures {
                original: format!("{stem}/original.jpg"),
                heatmap: format!("{stem}/heatmap.jpg"),
                superimposed: format!("{stem}/superimposed.jpg"),
                guided: guided.then(|| GuidedFigures {
                    backprop: format!("{stem}/guided_backprop.jpg"),
                    cam: format!("{stem}/guided_cam.jpg"),
                }),
                raw_folder: Some(stem.to_string()),
            },
            Layout::PerClass => {
                let file = format!("{class}/{stem}_label_{predicted}.jpg");
                Figures {
                    original: format!("originals/{file}"),
                    heatmap: format!("heatmaps/{file}"),
                    superimposed: format!("superimposed/{file}"),
                    guided: guided.then(|| GuidedFigures {
                        backprop: format!("guided_backprop/{file}"),
                        cam: format!("guided_cam/{file}"),
                    }),
                    raw_folder: Some(format!("raw/{class}/{stem}")),
                }
            }
        }
    }
}

/// How maps become pictures.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Style {
    pub normalization: Normalization,
    pub colormap: Colormap,
    pub alpha: f32,
}

/// What drawing one map found out.
pub struct Drawn {
    /// `[x, y]` of the map's maximum in pixels of the original.
    pub peak: [usize; 2],
    /// The map had no positive value: nothing in the image raised the score.
    pub empty: bool,
}

/// Guided gradients of one image, `[3, h, w]` at the model input's size.
pub struct Guided<'a> {
    pub gradients: &'a [f32],
    pub size: [usize; 2],
}

/// Writes heatmap, overlay and original for one raw map (`[h, w]`, feature resolution), and
/// the guided figures when `figures` names them.
pub fn draw(
    out: &Path,
    figures: &Figures,
    original: &RgbImage,
    raw: &[f32],
    map_size: [usize; 2],
    style: Style,
    guided: Option<Guided>,
) -> Result<Drawn> {
    let map = relu_normalize(raw, style.normalization);
    let (width, height) = original.dimensions();
    let full = upsample(
        &map,
        map_size,
        [height as usize, width as usize],
        style.normalization,
    );
    let heat = heatmap(&full, width, height, style.colormap);
    let overlay = superimpose(original, &heat, style.alpha);
    for (file, picture) in [
        (&figures.original, original),
        (&figures.heatmap, &heat),
        (&figures.superimposed, &overlay),
    ] {
        save_jpeg(&out.join(file), picture)?;
    }
    if let (Some(files), Some(guided)) = (&figures.guided, guided) {
        // Resized plane by plane to the original, like the heatmap.
        let out_size = [height as usize, width as usize];
        let gradients: Vec<f32> = guided
            .gradients
            .chunks(guided.size[0] * guided.size[1])
            .flat_map(|plane| resize_bilinear(plane, guided.size, out_size))
            .collect();
        let backprop = gradient_image(&gradients, width, height, None);
        let weighted = gradient_image(&gradients, width, height, Some(&full));
        save_jpeg(&out.join(&files.backprop), &backprop)?;
        save_jpeg(&out.join(&files.cam), &weighted)?;
    }
    let (x, y) = peak(&full, width as usize);
    Ok(Drawn {
        peak: [x, y],
        empty: map.iter().all(|&v| v == 0.0),
    })
}

fn save_jpeg(path: &Path, picture: &RgbImage) -> Result<()> {
    if let Some(folder) = path.parent() {
        std::fs::create_dir_all(folder)
            .with_context(|| format!("creating {}", folder.display()))?;
    }
    replace(path)?;
    picture
        .save(path)
        .with_context(|| format!("writing {}", path.display()))
}

/// `cam_raw.npy` (the map as computed) and `cam.npy` (ReLU, min-max, resized to the model
/// input: the array pytorch-grad-cam returns). A `post_processed` map is that array already
/// (`--aug-smooth`: the plain mean of six normalised maps) and is written as it is.
pub fn write_raw(
    folder: &Path,
    raw: &[f32],
    map_size: [usize; 2],
    input_size: [usize; 2],
    post_processed: bool,
) -> Result<()> {
    let minmax = Normalization::MinMax;
    let cam = match post_processed {
        true if map_size == input_size => raw.to_vec(),
        _ => upsample(&relu_normalize(raw, minmax), map_size, input_size, minmax),
    };
    std::fs::create_dir_all(folder).with_context(|| format!("creating {}", folder.display()))?;
    write_npy(&folder.join("cam_raw.npy"), raw, map_size)?;
    write_npy(&folder.join("cam.npy"), &cam, input_size)
}

/// Where `explain` lists the files it wrote into an output folder, so that the next run into
/// the same folder can remove them.
const MANIFEST: &str = "explained-files.txt";

/// Removes the figures and arrays the previous run listed in `out`'s manifest, and the folders
/// that leaves empty, so that a new gallery never sits beside stale figures. Files `explain`
/// did not write are never touched. Returns how many files went.
pub fn remove_previous(out: &Path) -> Result<usize> {
    let Ok(listed) = read_manifest(out) else {
        return Ok(0);
    };
    let mut removed = 0;
    for file in listed {
        let path = out.join(file);
        if std::fs::remove_file(&path).is_ok() {
            removed += 1;
        }
        // Empty folders up to `out` go too; a folder with anything else in it stays.
        let mut folder = path.parent();
        while let Some(dir) = folder.filter(|d| *d != out && d.starts_with(out)) {
            if std::fs::remove_dir(dir).is_err() {
                break;
            }
            folder = dir.parent();
        }
    }
    Ok(removed)
}

/// Lists every file the records' figures and arrays occupy in `out`.
pub fn write_manifest(out: &Path, records: &[Record]) -> Result<()> {
    let mut files = Vec::new();
    for figures in records.iter().map(|r| &r.figures) {
        files.extend(
            [&figures.original, &figures.heatmap, &figures.superimposed].map(String::clone),
        );
        if let Some(guided) = &figures.guided {
            files.extend([guided.backprop.clone(), guided.cam.clone()]);
        }
        if let Some(folder) = &figures.raw_folder {
            files.extend(["cam_raw.npy", "cam.npy"].map(|f| format!("{folder}/{f}")));
        }
    }
    write_file_list(out, files)
}

/// The manifest of `out`, sorted, each file once.
pub fn write_file_list(out: &Path, mut files: Vec<String>) -> Result<()> {
    files.sort();
    files.dedup();
    let path = out.join(MANIFEST);
    std::fs::write(&path, files.join("\n") + "\n")
        .with_context(|| format!("writing {}", path.display()))
}

/// The files a run listed in `folder`'s manifest (some may not exist: the arrays of a run
/// without `--save-raw` are listed too).
pub fn read_manifest(folder: &Path) -> Result<Vec<String>> {
    let path = folder.join(MANIFEST);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .filter(|l| !l.is_empty() && !l.contains(".."))
        .map(String::from)
        .collect())
}

/// Removes the file at `path`, if any, so that what is written there next is a new file:
/// `explain merge` hard-links shards' figures, and rewriting a linked file in place would
/// change the merged copy too.
pub fn replace(path: &Path) -> Result<()> {
    // Looking first: on some file systems a failing unlink costs ten times a lookup.
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("replacing {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// A float32 `height × width` array in NumPy's format.
fn write_npy(path: &Path, values: &[f32], [height, width]: [usize; 2]) -> Result<()> {
    use npyz::WriterBuilder;
    replace(path)?;
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut writer = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&[height as u64, width as u64])
        .writer(std::io::BufWriter::new(file))
        .begin_nd()?;
    writer.extend(values.iter().copied())?;
    writer
        .finish()
        .with_context(|| format!("writing {}", path.display()))
}

/// One explained image and target: a line of summary.json and summary.csv, a row of the gallery.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub name: String,
    /// The CAM method that drew the map.
    pub method: String,
    pub path: Option<PathBuf>,
    /// The true class, for images of a split.
    pub label: Option<String>,
    pub label_index: Option<usize>,
    pub predicted: String,
    pub predicted_index: usize,
    pub probability: f32,
    /// The five most likely classes, most likely first.
    pub top5: Vec<RankedClass>,
    /// The class whose score the map explains.
    pub target: String,
    pub target_index: usize,
    pub target_probability: f32,
    /// `[x, y]` of the map's maximum, in pixels of the original image.
    pub peak: [usize; 2],
    pub empty_map: bool,
    pub figures: Figures,
}

/// One of a record's most likely classes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RankedClass {
    pub index: usize,
    pub class: String,
    pub probability: f32,
}

impl Record {
    pub fn correct(&self) -> Option<bool> {
        self.label.as_ref().map(|label| *label == self.predicted)
    }
}

pub fn write_summary(out: &Path, records: &[Record]) -> Result<()> {
    let json = serde_json::to_string_pretty(records).expect("records serialise");
    std::fs::write(out.join("summary.json"), json)
        .with_context(|| format!("writing {}/summary.json", out.display()))?;
    let mut csv = String::from(
        "name,path,label,predicted,probability,target,target_probability,peak_x,peak_y,superimposed,\
         label_index,predicted_index,target_index,top5\n",
    );
    for r in records {
        let path = r
            .path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        // `class:probability` pairs separated by `;`, most likely first.
        let top5: Vec<String> = r
            .top5
            .iter()
            .map(|c| {
                format!(
                    "{}:{:.6}",
                    c.class.replace([',', ';', ':'], "_"),
                    c.probability
                )
            })
            .collect();
        csv += &format!(
            "{},{},{},{},{:.6},{},{:.6},{},{},{},{},{},{},{}\n",
            r.name,
            path.replace(',', "_"),
            r.label.as_deref().unwrap_or(""),
            r.predicted,
            r.probability,
            r.target,
            r.target_probability,
            r.peak[0],
            r.peak[1],
            r.figures.superimposed.replace(',', "_"),
            r.label_index.map(|i| i.to_string()).unwrap_or_default(),
            r.predicted_index,
            r.target_index,
            top5.join(";"),
        );
    }
    std::fs::write(out.join("summary.csv"), csv)
        .with_context(|| format!("writing {}/summary.csv", out.display()))
}
