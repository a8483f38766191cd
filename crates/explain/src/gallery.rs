//! `index.html`: every explained image with its overlay, true label, prediction and confidence.
//! One self-contained file with relative links, so it opens from disk with no server; a few
//! lines of script sort the table by any column and filter correct / incorrect rows.

use std::fmt::Write;
use std::path::Path;

use anyhow::{Context, Result};

use crate::output::Record;

pub fn write(out: &Path, title: &str, records: &[Record]) -> Result<()> {
    let path = out.join("index.html");
    std::fs::write(&path, render(title, records))
        .with_context(|| format!("writing {}", path.display()))
}

fn render(title: &str, records: &[Record]) -> String {
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
    html += ". Click a column to sort.</p>\n<p>Show: \
         <button onclick=\"show('')\">all</button> \
         <button onclick=\"show('correct')\">correct</button> \
         <button onclick=\"show('incorrect')\">incorrect</button></p>\n\
         <table id=\"gallery\"><thead><tr><th>#</th><th>image</th><th>Grad-CAM</th>\
         <th>true label</th><th>prediction</th><th>confidence</th><th>explained</th>\
         <th>correct</th></tr></thead><tbody>\n";
    for (row, record) in records.iter().enumerate() {
        html += &table_row(row, record);
    }
    html += "</tbody></table>\n<script>";
    html += SCRIPT;
    html += "</script></body></html>\n";
    html
}

fn table_row(row: usize, r: &Record) -> String {
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
    format!(
        "<tr class=\"{verdict}\"><td>{row}</td>\
         <td><a href=\"{original}\"><img src=\"{original}\" loading=\"lazy\"></a></td>\
         <td><a href=\"{overlay}\"><img src=\"{overlay}\" loading=\"lazy\"></a>{guided}</td>\
         <td>{label}</td><td>{predicted}</td><td data-value=\"{p}\">{percent:.1}%</td>\
         <td>{target}</td><td>{mark}</td></tr>\n",
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
background:#f3f3f3}img{height:128px;image-rendering:pixelated}tr.incorrect{background:#fde8e8}";

const SCRIPT: &str = r#"
function show(kind) {
  for (const row of document.querySelectorAll('#gallery tbody tr'))
    row.style.display = !kind || row.classList.contains(kind) ? '' : 'none';
}
document.querySelectorAll('#gallery th').forEach((th, column) => {
  let ascending = true;
  th.onclick = () => {
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
            top5: vec![],
            target: predicted.into(),
            target_index: 0,
            target_probability: 0.75,
            peak: [0, 0],
            empty_map: false,
            figures: Layout::PerClass.figures("0001", label, predicted, false),
        }
    }

    #[test]
    fn rows_link_figures_and_mark_mistakes() {
        let html = render(
            "cats <& dogs",
            &[record("cats", "cats"), record("dogs", "cats")],
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
