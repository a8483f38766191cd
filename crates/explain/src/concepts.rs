//! `--concepts K`: Deep Feature Factorization of each image's activations at the layer into K
//! concepts (`cam::concepts`), drawn as pytorch-grad-cam's `show_factorization_on_image` draws
//! them — each pixel in its strongest concept's colour, as bright as that concept is there,
//! half over the image — and each concept's most likely classes, the classifier run on the
//! concept itself where the head is pooling + Linear. Figures under `concepts/`, the legend in
//! `concepts.csv` and `concepts.html`.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use burn::module::AutodiffModule;
use burn::prelude::*;
use cam::concepts::{Concepts, factorize, random_start};
use cam::postprocess::{Normalization, relu_normalize, upsample};
use cam::{Score, Target, capture_without_gradients};
use data::Batcher;
use image::RgbImage;
use model::{AutodiffKernels, Network, PlainRelu, SplitModel, class_probabilities};

use crate::source::Item;

/// The seed of every image's starting factors.
const SEED: u64 = 0;
/// Classes listed per concept.
const TOP_CLASSES: usize = 2;

/// What `--concepts` needs besides the images.
pub struct Request<'a> {
    pub count: usize,
    pub layer: usize,
    pub batch: usize,
    pub class_names: &'a [String],
}

/// One concept of one image, a row of concepts.csv.
struct Row {
    image: String,
    concept: usize,
    colour: [u8; 3],
    /// Share of the image's pixels where this concept is the strongest.
    share: f32,
    /// (class, probability), most likely first; empty where the head cannot score a concept.
    classes: Vec<(String, f32)>,
}

/// Factorises, draws and lists the concepts of `items` into `out`.
pub fn explain<B: AutodiffKernels>(
    out: &Path,
    model: &Network<B>,
    batcher: &Batcher,
    mut items: Vec<Item>,
    request: &Request,
    device: &B::Device,
) -> Result<()> {
    let inference = model.valid();
    // The classifier scores a concept (a vector over the channels) only when it reads the
    // pooled channels of this very layer.
    let scored = inference.class_weights().is_some() && request.layer == inference.last_layer();
    let bar = crate::progress::bar("factorising", items.len());
    let mut rows = Vec::new();
    let mut figures = Vec::new();
    for chunk in items.chunks_mut(request.batch.max(1)) {
        // A file that cannot be read is skipped, as the maps skip it.
        for item in chunk.iter_mut() {
            if let Err(e) = item.load_original(batcher.image_size) {
                bar.suspend(|| eprintln!("skipped {}: {e}", item.name));
            }
        }
        let chunk: Vec<&Item> = chunk.iter().filter(|i| i.original.is_some()).collect();
        if chunk.is_empty() {
            continue;
        }
        let samples: Vec<_> = chunk.iter().map(|item| &item.sample).collect();
        let images = crate::explainer::input_batch(model, &samples, batcher, device)?;
        let targets = vec![Target::Predicted; chunk.len()];
        let captured =
            capture_without_gradients(&inference, images, &targets, request.layer, Score::Logit)?;
        let [_, channels, h, w] = captured.activations.dims();
        let activations = captured
            .activations
            .into_data()
            .to_vec::<f32>()
            .expect("f32");
        for (item, values) in chunk.iter().zip(activations.chunks(channels * h * w)) {
            let values: Vec<f64> = values.iter().map(|&v| v.into()).collect();
            let concepts = factorize(&values, [1, channels, h, w], request.count, |x, size| {
                random_start(x, size, request.count, SEED)
            });
            let classes = match scored {
                true => concept_classes(&inference, &concepts, request.class_names, device),
                false => vec![Vec::new(); request.count],
            };
            let original = item.original.as_ref().expect("loaded above");
            let (figure, shares) = draw(original, &concepts.maps, [h, w], request.count);
            let file = format!("concepts/{}.jpg", item.name);
            let path = out.join(&file);
            std::fs::create_dir_all(path.parent().expect("a folder"))
                .with_context(|| format!("creating {}", out.join("concepts").display()))?;
            crate::output::replace(&path)?;
            figure
                .save(&path)
                .with_context(|| format!("writing {}", path.display()))?;
            for (concept, (share, classes)) in shares.into_iter().zip(classes).enumerate() {
                rows.push(Row {
                    image: item.name.clone(),
                    concept,
                    colour: colour(concept, request.count),
                    share,
                    classes,
                });
            }
            figures.push((item.name.clone(), file));
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    write_csv(out, &rows)?;
    write_page(out, &figures, &rows)?;
    println!(
        "{} concepts per image: figures in {}, legend in {}",
        request.count,
        out.join("concepts").display(),
        out.join("concepts.html").display()
    );
    if !scored {
        println!(
            "(no classes per concept: the classifier reads a pooling + Linear head's channels \
             only at the last layer)"
        );
    }
    Ok(())
}

/// Each concept's most likely classes: the head on the concept as a 1 × 1 map, whose pooling
/// is the concept itself.
fn concept_classes<B: Backend, M: SplitModel<B>>(
    model: &M,
    concepts: &Concepts,
    names: &[String],
    device: &B::Device,
) -> Vec<Vec<(String, f32)>> {
    let (count, channels) = (concepts.count, concepts.channels);
    let values: Vec<f32> = (0..count)
        .flat_map(|c| concepts.vector(c).into_iter().map(|v| v as f32))
        .collect();
    let maps = Tensor::<B, 4>::from_data(TensorData::new(values, [count, channels, 1, 1]), device);
    let outputs = model.logits_from(maps, model.last_layer(), &PlainRelu);
    let probabilities = class_probabilities(outputs);
    let classes = probabilities.dims()[1];
    let values = probabilities.into_data().to_vec::<f32>().expect("f32");
    values
        .chunks(classes)
        .map(|row| {
            crate::explainer::top(row, TOP_CLASSES)
                .into_iter()
                .map(|(i, p)| (names[i].clone(), p))
                .collect()
        })
        .collect()
}

/// The figure over `original`, and each concept's share of its pixels.
fn draw(original: &RgbImage, maps: &[f64], size: [usize; 2], count: usize) -> (RgbImage, Vec<f32>) {
    let (width, height) = original.dimensions();
    let out = [height as usize, width as usize];
    // Each concept normalised and resized to the figure, as pytorch-grad-cam's scale_cam_image.
    let scaled: Vec<Vec<f32>> = maps
        .chunks(size[0] * size[1])
        .map(|m| {
            let m: Vec<f32> = m.iter().map(|&v| v as f32).collect();
            upsample(
                &relu_normalize(&m, Normalization::MinMax),
                size,
                out,
                Normalization::MinMax,
            )
        })
        .collect();
    let mut figure = original.clone();
    let mut dominant = vec![0usize; count];
    for (i, pixel) in figure.pixels_mut().enumerate() {
        let (best, strength) = (0..count)
            .map(|k| (k, scaled[k][i]))
            .fold((0, f32::MIN), |a, b| if b.1 > a.1 { b } else { a });
        dominant[best] += 1;
        let tint = colour(best, count);
        for c in 0..3 {
            let image = f32::from(pixel[c]) / 255.0;
            let mask = f32::from(tint[c]) / 255.0 * strength;
            pixel[c] = (255.0 * (0.5 * image + 0.5 * mask)) as u8;
        }
    }
    let pixels = (width * height) as f32;
    let shares = dominant.iter().map(|&n| n as f32 / pixels).collect();
    (figure, shares)
}

/// Concept `k` of `count`'s colour: matplotlib's `gist_rainbow` at k / count (its 256-entry
/// table), as pytorch-grad-cam colours concepts.
fn colour(k: usize, count: usize) -> [u8; 3] {
    const STOPS: [(f32, [f32; 3]); 8] = [
        (0.0, [1.0, 0.0, 0.16]),
        (0.03, [1.0, 0.0, 0.0]),
        (0.215, [1.0, 1.0, 0.0]),
        (0.4, [0.0, 1.0, 0.0]),
        (0.586, [0.0, 1.0, 1.0]),
        (0.77, [0.0, 0.0, 1.0]),
        (0.954, [1.0, 0.0, 1.0]),
        (1.0, [1.0, 0.0, 0.75]),
    ];
    let entry = ((k as f32 / count as f32) * 256.0).floor().min(255.0);
    let x = entry / 255.0;
    let upper = STOPS
        .iter()
        .position(|s| s.0 >= x)
        .unwrap_or(STOPS.len() - 1)
        .max(1);
    let ((x0, c0), (x1, c1)) = (STOPS[upper - 1], STOPS[upper]);
    let t = (x - x0) / (x1 - x0);
    [0, 1, 2].map(|c| (255.0 * (c0[c] + (c1[c] - c0[c]) * t)).round() as u8)
}

fn hex([r, g, b]: [u8; 3]) -> String {
    format!("#{r:02x}{g:02x}{b:02x}")
}

fn write_csv(out: &Path, rows: &[Row]) -> Result<()> {
    let mut csv = String::from("image,concept,colour,share,classes\n");
    for r in rows {
        let classes: Vec<String> = r
            .classes
            .iter()
            .map(|(name, p)| format!("{}:{p:.4}", name.replace([',', ';', ':'], "_")))
            .collect();
        let _ = writeln!(
            csv,
            "{},{},{},{:.4},{}",
            r.image,
            r.concept,
            hex(r.colour),
            r.share,
            classes.join(";")
        );
    }
    let path = out.join("concepts.csv");
    std::fs::write(&path, csv).with_context(|| format!("writing {}", path.display()))
}

/// A page with every figure and its legend: each concept's colour, share and classes.
fn write_page(out: &Path, figures: &[(String, String)], rows: &[Row]) -> Result<()> {
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let mut html = String::from(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Concepts</title>\n\
         <style>body{font-family:sans-serif;margin:1.5em}td{padding:.4em;vertical-align:top}\
         span{display:inline-block;width:1em;height:1em;margin-right:.4em}</style></head><body>\n\
         <h1>Deep Feature Factorization</h1>\n<table>\n",
    );
    for (image, file) in figures {
        let _ = write!(
            html,
            "<tr><td><img src=\"{}\" width=\"256\"></td><td><b>{}</b><br>",
            escape(file),
            escape(image)
        );
        for r in rows.iter().filter(|r| &r.image == image) {
            let classes: Vec<String> = r
                .classes
                .iter()
                .map(|(name, p)| format!("{} {:.0}%", escape(name), 100.0 * p))
                .collect();
            let _ = write!(
                html,
                "<span style=\"background:{}\"></span>concept {}: {:.0}% of the image{}<br>",
                hex(r.colour),
                r.concept,
                100.0 * r.share,
                match classes.is_empty() {
                    true => String::new(),
                    false => format!(" — {}", classes.join(", ")),
                }
            );
        }
        html.push_str("</td></tr>\n");
    }
    html.push_str("</table>\n</body></html>\n");
    let path = out.join("concepts.html");
    std::fs::write(&path, html).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concept_colours_are_matplotlibs_gist_rainbow() {
        // matplotlib 3.11: gist_rainbow(0.2) = (1, 0.918919, 0), (0.25) = (0.805511, 1, 0),
        // (0.5) = (0, 1, 0.548176), (0.8) = (0.163043, 0, 1).
        assert_eq!(colour(0, 5), [255, 0, 41]);
        assert_eq!(colour(1, 5), [255, 234, 0]);
        assert_eq!(colour(1, 4), [205, 255, 0]);
        assert_eq!(colour(2, 4), [0, 255, 140]);
        assert_eq!(colour(4, 5), [42, 0, 255]);
    }
}
