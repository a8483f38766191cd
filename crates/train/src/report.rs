//! A run you can look at: `curves.svg` (loss, accuracy and learning rate per epoch),
//! `confusion.csv` / `confusion.svg` (the best checkpoint on the held-out images) and
//! `report.html` tying them to the config and, once `explain` has run, its gallery. Rewritten
//! after every epoch, so a running or stopped run shows where it is.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

use crate::run_dir::write_atomic;
use crate::{EpochMetrics as Row, RunDir, TrainError};

/// Rewrites curves.svg and report.html from the run folder.
pub fn write(run: &RunDir) -> Result<(), TrainError> {
    let rows = run.metrics()?;
    let svg = curves(&rows).map_err(|e| TrainError::run(&run.path, format!("curves.svg: {e}")))?;
    write_atomic(&run.path.join("curves.svg"), svg.as_bytes())?;
    page(run, &rows)
}

/// Writes the confusion matrix of the best checkpoint (`confusion[true][predicted]`).
pub fn write_confusion(run: &RunDir, confusion: &[Vec<usize>]) -> Result<(), TrainError> {
    write_confusion_files(&run.path, &run.class_names()?, confusion)
}

/// `confusion.csv` (counts, and each true class's accuracy) and `confusion.svg` in `dir`.
pub fn write_confusion_files(
    dir: &Path,
    names: &[String],
    confusion: &[Vec<usize>],
) -> Result<(), TrainError> {
    write_atomic(
        &dir.join("confusion.csv"),
        confusion_csv(names, confusion).as_bytes(),
    )?;
    let svg = confusion_svg(names, confusion)
        .map_err(|e| TrainError::run(dir, format!("confusion.svg: {e}")))?;
    write_atomic(&dir.join("confusion.svg"), svg.as_bytes())
}

/// report.html: what the run is, how it went, where it goes wrong, and where it looks.
pub fn write_page(run: &RunDir) -> Result<(), TrainError> {
    page(run, &run.metrics()?)
}

fn page(run: &RunDir, rows: &[Row]) -> Result<(), TrainError> {
    let config = std::fs::read_to_string(run.path.join("config.toml")).unwrap_or_default();
    let name = run
        .path
        .file_name()
        .map_or("run".into(), |n| n.to_string_lossy().into_owned());
    let mut html = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{name}</title><style>{STYLE}</style>\
         </head><body>\n<h1>{name}</h1>\n",
        name = escape(&name)
    );
    // The first of equal maxima, as training picks its best epoch.
    let best = rows
        .iter()
        .rev()
        .max_by(|a, b| a.val_acc.total_cmp(&b.val_acc));
    match best {
        Some(best) => {
            let last = rows.last().expect("a best row is a row");
            let _ = write!(
                html,
                "<p>{} epochs so far. Best held-out accuracy {:.2}% at epoch {}; last epoch: \
                 train loss {:.4}, held-out loss {:.4}, held-out accuracy {:.2}%.</p>\n\
                 <img src=\"curves.svg\" alt=\"loss, accuracy and learning rate per epoch\">\n",
                rows.len(),
                100.0 * best.val_acc,
                best.epoch,
                last.train_loss,
                last.val_loss,
                100.0 * last.val_acc
            );
        }
        None => html += "<p>No epoch has finished yet.</p>\n",
    }
    if let Ok(csv) = std::fs::read_to_string(run.path.join("confusion.csv")) {
        html += "<h2>The best checkpoint on the held-out images</h2>\n\
                 <img src=\"confusion.svg\" alt=\"confusion matrix\">\n";
        html += &per_class_table(&csv);
    }
    if run.path.join("explain/index.html").is_file() {
        html += "<h2>Where it looks</h2>\n<p><a href=\"explain/index.html\">The Grad-CAM gallery</a> \
                 of <code>explain</code> on this run.</p>\n";
    } else {
        html += "<h2>Where it looks</h2>\n<p>Run <code>explain --run</code> on this folder to \
                 add its Grad-CAM gallery here.</p>\n";
    }
    let _ = write!(
        html,
        "<h2>Config</h2>\n<pre>{}</pre>\n</body></html>\n",
        escape(&config)
    );
    write_atomic(&run.path.join("report.html"), html.as_bytes())
}

type Drawn = Result<String, Box<dyn std::error::Error>>;

/// A curve: its legend, its colour, and the value it plots for each epoch's row.
type Series = (&'static str, RGBColor, fn(&Row) -> f64);

const BLUE: RGBColor = RGBColor(31, 119, 180);
const ORANGE: RGBColor = RGBColor(255, 127, 14);
const GREEN: RGBColor = RGBColor(44, 160, 44);

/// Three panels, one above the other: loss, accuracy, learning rate.
fn curves(rows: &[Row]) -> Drawn {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 780)).into_drawing_area();
        root.fill(&WHITE)?;
        let panels = root.split_evenly((3, 1));
        let loss: [Series; 2] = [
            ("train", BLUE, |r| r.train_loss),
            ("held out", ORANGE, |r| r.val_loss),
        ];
        let accuracy: [Series; 2] = [
            ("train", BLUE, |r| r.train_acc),
            ("held out", ORANGE, |r| r.val_acc),
        ];
        let lr: [Series; 1] = [("lr", GREEN, |r| r.lr)];
        panel(&panels[0], rows, "loss", &loss)?;
        panel(&panels[1], rows, "accuracy", &accuracy)?;
        panel(&panels[2], rows, "learning rate", &lr)?;
        root.present()?;
    }
    Ok(svg)
}

/// One panel: each series against the epoch (whole numbers, from the first epoch shown), from 0
/// to a tenth above its largest value.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    rows: &[Row],
    title: &str,
    series: &[Series],
) -> Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    let first = rows.first().map_or(1, |r| r.epoch as i64);
    let last = rows.last().map_or(1, |r| r.epoch as i64).max(first + 1);
    let top = rows
        .iter()
        .flat_map(|r| series.iter().map(move |(_, _, f)| f(r)))
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(
            (first..last).with_key_points(epoch_ticks(first, last)),
            0.0..(top * 1.1).max(1e-9),
        )?;
    chart.configure_mesh().x_desc("epoch").draw()?;
    for &(name, colour, value) in series {
        let points = rows.iter().map(move |r| (r.epoch as i64, value(r)));
        chart
            .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], colour.stroke_width(2)));
        chart.draw_series(points.map(|p| Circle::new(p, 3, colour.filled())))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// Epochs to label: the first, then the multiples of a round step (1, 2, 5, 10, 20, …) that
/// keeps the labels to about ten.
fn epoch_ticks(first: i64, last: i64) -> Vec<i64> {
    let step = [1, 2, 5]
        .iter()
        .flat_map(|&m| (0..6).map(move |p| m * 10i64.pow(p)))
        .filter(|&step| (last - first) / step <= 10)
        .min()
        .unwrap_or(1);
    let multiples = (first / step + 1..=last / step).map(|k| k * step);
    std::iter::once(first).chain(multiples).collect()
}

/// The matrix as cells shaded by the share of their true class, each with its count.
fn confusion_svg(names: &[String], confusion: &[Vec<usize>]) -> Drawn {
    let n = names.len().max(1);
    let side = (60 * n).clamp(240, 720) as u32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (side + 160, side + 120)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "true class (rows) × predicted class (columns)",
                ("sans-serif", 16),
            )
            .margin(10)
            .x_label_area_size(60)
            .y_label_area_size(110)
            // A segmented 0..k has a segment for each of 0..=k: k = n - 1 gives n cells.
            .build_cartesian_2d((0..n - 1).into_segmented(), (0..n - 1).into_segmented())?;
        // Row 0 at the top: the y axis counts upwards, so true class t sits at n - 1 - t.
        let label = |value: &SegmentValue<usize>, flip: bool| match *value {
            SegmentValue::CenterOf(i) if i < n => names[if flip { n - 1 - i } else { i }].clone(),
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(n)
            .y_labels(n)
            .x_label_formatter(&|v| label(v, false))
            .y_label_formatter(&|v| label(v, true))
            .draw()?;
        for (t, row) in confusion.iter().enumerate() {
            let total = row.iter().sum::<usize>().max(1) as f64;
            for (p, &count) in row.iter().enumerate() {
                let share = count as f64 / total;
                let y = n - 1 - t;
                let shade = RGBColor(
                    (255.0 - 200.0 * share) as u8,
                    (255.0 - 130.0 * share) as u8,
                    255,
                );
                let cell = [
                    (SegmentValue::Exact(p), SegmentValue::Exact(y)),
                    (SegmentValue::Exact(p + 1), SegmentValue::Exact(y + 1)),
                ];
                chart.draw_series(std::iter::once(Rectangle::new(cell, shade.filled())))?;
                let colour = if share > 0.6 { WHITE } else { BLACK };
                chart.draw_series(std::iter::once(Text::new(
                    count.to_string(),
                    (SegmentValue::CenterOf(p), SegmentValue::CenterOf(y)),
                    ("sans-serif", 14).into_font().color(&colour),
                )))?;
            }
        }
        root.present()?;
    }
    Ok(svg)
}

fn confusion_csv(names: &[String], confusion: &[Vec<usize>]) -> String {
    let mut csv = String::from("true\\predicted");
    for name in names {
        csv += &format!(",{}", name.replace(',', "_"));
    }
    csv += ",accuracy\n";
    for (class, (name, row)) in names.iter().zip(confusion).enumerate() {
        let total = row.iter().sum::<usize>();
        let own = row.get(class).copied().unwrap_or(0);
        csv += &name.replace(',', "_");
        for count in row {
            csv += &format!(",{count}");
        }
        csv += &format!(",{:.4}\n", own as f64 / total.max(1) as f64);
    }
    csv
}

/// Per-class accuracy from confusion.csv, as an HTML table.
fn per_class_table(csv: &str) -> String {
    let mut html = String::from("<table><tr><th>class</th><th>images</th><th>accuracy</th></tr>\n");
    for line in csv.lines().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        let Some((&accuracy, counts)) = cells[1..].split_last() else {
            continue;
        };
        let images: usize = counts.iter().filter_map(|c| c.parse::<usize>().ok()).sum();
        let accuracy: f64 = accuracy.parse().unwrap_or(f64::NAN);
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{images}</td><td>{:.1}%</td></tr>",
            escape(cells[0]),
            100.0 * accuracy
        );
    }
    html + "</table>\n"
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em;max-width:60em}\
table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:4px 10px;\
text-align:left}pre{background:#f6f6f6;padding:1em}img{max-width:100%}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_confusion_csv_counts_and_scores_each_class() {
        let names = ["cats".to_string(), "dogs".to_string()];
        let csv = confusion_csv(&names, &[vec![8, 2], vec![1, 9]]);
        assert_eq!(
            csv,
            "true\\predicted,cats,dogs,accuracy\ncats,8,2,0.8000\ndogs,1,9,0.9000\n"
        );
        let table = per_class_table(&csv);
        assert!(
            table.contains("<td>cats</td><td>10</td><td>80.0%</td>"),
            "{table}"
        );
    }

    /// The text of every `<text>` element of an SVG.
    fn texts(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| {
                Some(
                    t.split_once('>')?
                        .1
                        .split_once("</text>")?
                        .0
                        .trim()
                        .to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn epochs_are_whole_numbers_from_the_first_one() {
        let row = |epoch| Row {
            epoch,
            train_loss: 1.0,
            train_acc: 0.5,
            val_loss: 1.0,
            val_acc: 0.5,
            lr: 0.1,
            seconds: 1.0,
        };
        for epochs in [
            vec![row(4)],
            (4..=7).map(row).collect(),
            (1..=40).map(row).collect(),
        ] {
            let labels = texts(&curves(&epochs).unwrap());
            let first = epochs[0].epoch.to_string();
            assert!(labels.contains(&first), "{labels:?}");
            // The x axis's labels are whole numbers, none below the first epoch; the y axes'
            // have decimal points.
            let x_labels: Vec<i64> = labels.iter().filter_map(|t| t.parse().ok()).collect();
            assert!(
                x_labels.iter().all(|&e| e >= epochs[0].epoch as i64),
                "{labels:?}"
            );
            let last = epochs.last().unwrap().epoch;
            let halves = (0..=last).map(|e| format!("{e}.5"));
            assert!(
                !halves
                    .into_iter()
                    .any(|h| labels.contains(&h) && h != "0.5"),
                "{labels:?}"
            );
        }
    }

    #[test]
    fn epoch_labels_start_at_the_first_epoch_and_step_roundly() {
        assert_eq!(epoch_ticks(4, 5), [4, 5]);
        assert_eq!(epoch_ticks(4, 7), [4, 5, 6, 7]);
        assert_eq!(epoch_ticks(1, 40), [1, 5, 10, 15, 20, 25, 30, 35, 40]);
        assert_eq!(
            epoch_ticks(3, 182),
            [3, 20, 40, 60, 80, 100, 120, 140, 160, 180]
        );
    }

    #[test]
    fn curves_and_matrix_are_svg_with_their_labels() {
        let rows: Vec<Row> = (1..=3)
            .map(|e| Row {
                epoch: e,
                train_loss: 1.0 / e as f64,
                train_acc: 0.3 * e as f64,
                val_loss: 1.2 / e as f64,
                val_acc: 0.25 * e as f64,
                lr: 0.01,
                seconds: 1.0,
            })
            .collect();
        let svg = curves(&rows).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("held out") && svg.contains("learning rate")
        );
        let names = ["cats".to_string(), "dogs".to_string()];
        let svg = confusion_svg(&names, &[vec![8, 2], vec![1, 9]]).unwrap();
        assert!(svg.contains("\ncats\n") && svg.contains("\n9\n"), "{svg}");
        assert_eq!(
            Row::parse_row("2,0.5,0.75,0.6,0.7,1e-2,3.5")
                .unwrap()
                .val_acc,
            0.7
        );
        assert!(Row::parse_row("epoch,train_loss").is_none());
    }
}
