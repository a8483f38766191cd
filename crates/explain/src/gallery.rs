//! `index.html`: every explained image with its overlay, true label, prediction and confidence.
//! One self-contained file with relative links, so it opens from disk with no server; a few
//! lines of script sort the table by any column and filter correct / incorrect rows.

use std::fmt::Write;
use std::path::Path;

use anyhow::{Context, Result};

use cam::figure::Colormap;
use cam::postprocess::Normalization;

use crate::output::{Record, Style};

/// `method` titles the map columns (`Score-CAM`); `style` is how its maps were drawn, shown as
/// the colour scale above the table.
pub fn write(
    out: &Path,
    title: &str,
    method: &str,
    style: Style,
    records: &[Record],
) -> Result<()> {
    write_page(out, render(title, method, style, records))
}

fn write_page(out: &Path, html: String) -> Result<()> {
    let path = out.join("index.html");
    std::fs::write(&path, html).with_context(|| format!("writing {}", path.display()))
}

/// One method's folder, for the overview page.
pub struct MethodColumn<'a> {
    pub title: &'a str,
    /// The folder's name under the output folder (`scorecam`).
    pub folder: &'a str,
    /// Its records, in the same image order as every other column's.
    pub records: &'a [Record],
}

/// `index.html` at the top of a several-method output: each method's gallery linked with its
/// accuracy, then the images down and each method's overlay across, labelled (what grid.jpg
/// shows as one picture).
pub fn write_overview(
    out: &Path,
    title: &str,
    style: Style,
    columns: &[MethodColumn],
) -> Result<()> {
    write_page(out, render_overview(title, style, columns))
}

fn render_overview(title: &str, style: Style, columns: &[MethodColumn]) -> String {
    let mut html = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title>\n\
         <style>{STYLE}</style></head><body>\n<h1>{title}</h1>\n<p>Each method's gallery: ",
        title = escape(title)
    );
    let links: Vec<String> = columns
        .iter()
        .map(|c| {
            format!(
                "<a href=\"{0}/index.html\">{1}</a>",
                escape(c.folder),
                escape(c.title)
            )
        })
        .collect();
    html += &links.join(" · ");
    html += ".</p>\n";
    html += &colour_scale(style);
    html += "<table><thead><tr><th>#</th><th>image</th>";
    for column in columns {
        let _ = write!(html, "<th>{}</th>", escape(column.title));
    }
    html += "</tr></thead><tbody>\n";
    let rows = columns.first().map_or(0, |c| c.records.len());
    for row in 0..rows {
        let first = &columns[0].records[row];
        let label = first
            .label
            .as_deref()
            .map_or(String::new(), |l| format!("<br>true {}", escape(l)));
        let _ = write!(
            html,
            "<tr><td>{}{label}<br>predicted {}</td><td><img src=\"{}/{}\" loading=\"lazy\"></td>",
            escape(&first.name),
            escape(&first.predicted),
            escape(columns[0].folder),
            escape(&first.figures.original)
        );
        for column in columns {
            let record = &column.records[row];
            let _ = write!(
                html,
                "<td><img src=\"{}/{}\" loading=\"lazy\" title=\"{}\"></td>",
                escape(column.folder),
                escape(&record.figures.superimposed),
                escape(column.title)
            );
        }
        html += "</tr>\n";
    }
    html + "</tbody></table>\n</body></html>\n"
}

/// The colour scale of the heatmaps: the colormap's 256 levels as a bar, its ends named, and
/// what 0 and 1 mean under the normalisation used.
fn colour_scale(style: Style) -> String {
    let stops: Vec<String> = (0..256)
        .map(|level| {
            let [r, g, b] = style.colormap.colour(level as f32 / 255.0);
            format!("rgb({r},{g},{b}) {:.2}%", 100.0 * level as f32 / 255.0)
        })
        .collect();
    let (low, high) = match style.normalization {
        Normalization::MinMax => (
            "the map's lowest value",
            "its highest (each map scaled on its own)",
        ),
        Normalization::Max => (
            "zero",
            "the map's highest value (each map scaled on its own)",
        ),
    };
    format!(
        "<div class=\"scale\"><span>0</span><div id=\"colour-scale\" title=\"{name}\" \
         style=\"background:linear-gradient(to right,{stops})\"></div><span>1</span>\
         <span class=\"note\">{name}: 0 = {low}, 1 = {high}; negative evidence is cut by ReLU. \
         Overlay = {alpha} × heatmap + image.</span></div>\n",
        name = colormap_name(style.colormap),
        stops = stops.join(","),
        alpha = style.alpha,
    )
}

fn colormap_name(colormap: Colormap) -> &'static str {
    match colormap {
        Colormap::Jet => "jet (OpenCV)",
        Colormap::Ocean => "ocean (OpenCV)",
        Colormap::Turbo => "turbo",
        Colormap::Viridis => "viridis",
        Colormap::Inferno => "inferno",
    }
}

fn render(title: &str, method: &str, style: Style, records: &[Record]) -> String {
    let labelled = records.iter().filter(|r| r.label.is_some()).count();
    let correct = records.iter().filter(|r| r.correct() == Some(true)).count();
    let mut html = String::new();
    let _ = write!(
        html,
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title>\n\
         <style>{STYLE}</style></head><body>\n<h1>{title}</h1>\n<p>{}",
        records.len(),
        title = escape(title)
    );
    html += " explained images";
    if labelled > 0 {
        let _ = write!(
            html,
            ", {correct} of {labelled} predicted correctly ({:.1}%)",
            100.0 * correct as f64 / labelled as f64
        );
    }
    html += ". Click a column to sort. <span id=\"sorted\">Sorted by file number.</span></p>\n";
    html += &colour_scale(style);
    // Without true labels there is nothing to filter on.
    if labelled > 0 {
        html += "<p>Show: <button onclick=\"show('')\">all</button> \
                 <button onclick=\"show('correct')\">correct</button> \
                 <button onclick=\"show('incorrect')\">incorrect</button> \
                 <span id=\"showing\">showing all</span></p>\n";
    }
    let method = escape(method);
    let _ = writeln!(
        html,
        "<table id=\"gallery\"><thead><tr><th title=\"the file's number\">#</th><th>image</th>\
         <th>{method} heatmap</th><th>{method} overlay</th><th>true label</th><th>prediction</th>\
         <th>confidence</th><th>top 5</th><th>explained</th><th>correct</th></tr></thead><tbody>"
    );
    for record in records {
        html += &table_row(record);
    }
    html += "</tbody></table>\n<script>";
    html += SCRIPT;
    html += "</script></body></html>\n";
    html
}

fn table_row(r: &Record) -> String {
    let verdict = match r.correct() {
        Some(true) => "correct",
        Some(false) => "incorrect",
        None => "",
    };
    let mark = match r.correct() {
        Some(true) => "✓",
        Some(false) => "✗",
        None => "–",
    };
    let top5: Vec<String> = r
        .top5
        .iter()
        .map(|c| format!("{} {:.1}%", escape(&c.class), 100.0 * c.probability))
        .collect();
    format!(
        "<tr class=\"{verdict}\"><td>{number}</td>\
         <td><a href=\"{original}\"><img src=\"{original}\" loading=\"lazy\"></a></td>\
         <td><a href=\"{heatmap}\"><img src=\"{heatmap}\" loading=\"lazy\"></a></td>\
         <td><a href=\"{overlay}\"><img src=\"{overlay}\" loading=\"lazy\"></a>{guided}</td>\
         <td>{label}</td><td>{predicted}</td><td data-value=\"{p}\">{percent:.1}%</td>\
         <td class=\"top5\">{top5}</td><td>{target}</td><td>{mark}</td></tr>\n",
        number = escape(&r.name),
        heatmap = escape(&r.figures.heatmap),
        top5 = top5.join("<br>"),
        original = escape(&r.figures.original),
        overlay = escape(&r.figures.superimposed),
        guided = r.figures.guided.as_ref().map_or(String::new(), |g| format!(
            " <a href=\"{cam}\"><img src=\"{cam}\" loading=\"lazy\" title=\"Guided CAM\"></a>",
            cam = escape(&g.cam)
        )),
        label = escape(r.label.as_deref().unwrap_or("–")),
        predicted = escape(&r.predicted),
        p = r.probability,
        percent = 100.0 * r.probability,
        target = escape(&r.target),
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}\
td,th{border-bottom:1px solid #ddd;padding:4px 10px;text-align:left}th{cursor:pointer;\
background:#f3f3f3}img{height:128px;image-rendering:pixelated}tr.incorrect{background:#fde8e8}\
td.top5{font-size:smaller;white-space:nowrap}#showing,#sorted{color:#666;margin-left:1em}\
.scale{display:flex;align-items:center;gap:8px;margin:0 0 1em}#colour-scale{width:256px;\
height:14px;border:1px solid #999}.scale .note{color:#666;font-size:smaller}";

const SCRIPT: &str = r#"
function show(kind) {
  let shown = 0;
  for (const row of document.querySelectorAll('#gallery tbody tr')) {
    const visible = !kind || row.classList.contains(kind);
    row.style.display = visible ? '' : 'none';
    shown += visible;
  }
  document.getElementById('showing').textContent =
    `showing ${kind || 'all'}: ${shown} image${shown === 1 ? '' : 's'}` +
    (shown ? '' : ` (no ${kind} predictions)`);
}
const headers = document.querySelectorAll('#gallery th');
headers.forEach((th, column) => {
  let ascending = true;
  th.onclick = () => {
    const name = th.textContent;
    headers.forEach(h => { h.textContent = h.textContent.replace(/ [▲▼]$/, ''); });
    th.textContent = name.replace(/ [▲▼]$/, '') + (ascending ? ' ▲' : ' ▼');
    document.getElementById('sorted').textContent =
      `Sorted by ${th.textContent.slice(0, -2)}, ${ascending ? 'ascending' : 'descending'}.`;
    const body = document.querySelector('#gallery tbody');
    const key = row => {
      const cell = row.children[column];
      const text = cell.dataset.value ?? cell.textContent;
      const number = parseFloat(text);
      return isNaN(number) ? text : number;
    };
    const rows = [...body.rows].sort((a, b) => {
      const x = key(a), y = key(b);
      return (x < y ? -1 : x > y ? 1 : 0) * (ascending ? 1 : -1);
    });
    ascending = !ascending;
    rows.forEach(row => body.appendChild(row));
  };
});
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::Layout;

    fn record(label: &str, predicted: &str) -> Record {
        Record {
            name: "0001".into(),
            method: "gradcam".into(),
            path: None,
            label: Some(label.into()),
            label_index: Some(0),
            predicted: predicted.into(),
            predicted_index: 0,
            probability: 0.75,
            top5: vec![crate::output::RankedClass {
                index: 0,
                class: predicted.into(),
                probability: 0.75,
            }],
            target: predicted.into(),
            target_index: 0,
            target_probability: 0.75,
            peak: [0, 0],
            empty_map: false,
            figures: Layout::PerClass.figures("0001", label, predicted, false),
        }
    }

    const STYLE_OF_TUTORIAL: Style = Style {
        normalization: Normalization::Max,
        colormap: Colormap::Ocean,
        alpha: 0.4,
    };

    #[test]
    fn the_colour_scale_is_the_colormap_the_figures_use() {
        let html = colour_scale(STYLE_OF_TUTORIAL);
        // OCEAN runs from black to white through blue; every one of its 256 levels is a stop.
        assert!(
            html.contains("linear-gradient(to right,rgb(0,0,0) 0.00%,"),
            "{html}"
        );
        assert!(html.contains("rgb(255,255,255) 100.00%)"), "{html}");
        assert_eq!(html.matches("rgb(").count(), 256);
        assert!(html.contains("ocean (OpenCV): 0 = zero, 1 = the map's highest value"));
        assert!(html.contains("Overlay = 0.4 × heatmap + image"));
        let jet = colour_scale(Style {
            colormap: Colormap::Jet,
            normalization: Normalization::MinMax,
            ..STYLE_OF_TUTORIAL
        });
        // OpenCV's JET starts dark blue and ends dark red.
        assert!(
            jet.contains("rgb(0,0,128) 0.00%") && jet.contains("rgb(128,0,0) 100.00%"),
            "{jet}"
        );
        assert!(jet.contains("0 = the map's lowest value"));
    }

    #[test]
    fn the_overview_labels_methods_across_and_images_down() {
        let records = [record("cats", "dogs")];
        let columns = [
            MethodColumn {
                title: "Grad-CAM",
                folder: "gradcam",
                records: &records,
            },
            MethodColumn {
                title: "Score-CAM",
                folder: "scorecam",
                records: &records,
            },
        ];
        let html = render_overview("two methods", STYLE_OF_TUTORIAL, &columns);
        assert!(html.contains("id=\"colour-scale\""));
        assert!(html.contains("<a href=\"scorecam/index.html\">Score-CAM</a>"));
        assert!(html.contains("<th>Grad-CAM</th><th>Score-CAM</th>"));
        assert!(html.contains("0001<br>true cats<br>predicted dogs"));
        assert!(html.contains("src=\"scorecam/superimposed/cats/0001_label_dogs.jpg\""));
    }

    #[test]
    fn rows_link_figures_and_mark_mistakes() {
        let html = render(
            "cats <& dogs",
            "Score-CAM",
            STYLE_OF_TUTORIAL,
            &[record("cats", "cats"), record("dogs", "cats")],
        );
        assert!(html.contains("<th>Score-CAM overlay</th>"));
        assert!(html.contains("<td>0001</td>"), "# is the file's number");
        assert!(html.contains("src=\"heatmaps/dogs/0001_label_cats.jpg\""));
        assert!(html.contains("cats 75.0%"), "the top 5");
        // Unlabelled images: no filters that could only empty the page.
        let mut unlabelled = record("cats", "cats");
        unlabelled.label = None;
        assert!(
            !render("t", "Grad-CAM", STYLE_OF_TUTORIAL, &[unlabelled]).contains("show('correct')")
        );
        assert!(html.contains("<title>cats &lt;&amp; dogs</title>"));
        assert!(html.contains("1 of 2 predicted correctly (50.0%)"));
        assert!(html.contains("src=\"superimposed/dogs/0001_label_cats.jpg\""));
        assert!(html.contains("src=\"originals/cats/0001_label_cats.jpg\""));
        assert_eq!(html.matches("<tr class=\"incorrect\">").count(), 1);
        assert_eq!(html.matches("<tr class=\"correct\">").count(), 1);
        assert!(html.contains("data-value=\"0.75\">75.0%"));
    }
}
