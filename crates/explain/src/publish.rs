//! What is written once every map is drawn: each method's summary.json / summary.csv and
//! gallery, and with several methods the grid and the overview page. One run writes them from
//! its records, `explain merge` from its shards' records, so both write the same files.

use std::path::{Path, PathBuf};

use anyhow::Result;
use cam::Method;

use crate::output::{self, Record, Style};
use crate::{gallery, grid};

/// Where a method's figures go: the output folder, or a folder per method when several.
pub fn method_folder(out: &Path, methods: &[Method], method: Method) -> PathBuf {
    if methods.len() > 1 {
        out.join(method.name())
    } else {
        out.to_path_buf()
    }
}

/// Summaries, galleries, grid and overview of `per_method[m]`, the records of `methods[m]`
/// (every method's in the same image order), whose figures are already in `out`.
pub fn write(
    out: &Path,
    title: &str,
    style: Style,
    methods: &[Method],
    per_method: &[Vec<Record>],
) -> Result<()> {
    for (&method, records) in methods.iter().zip(per_method) {
        let folder = method_folder(out, methods, method);
        output::write_summary(&folder, records)?;
        let method_title = format!("{method} · {title}");
        gallery::write(&folder, &method_title, method.title(), style, records)?;
        report(method, &folder, records);
    }
    if methods.len() < 2 {
        return Ok(());
    }
    let folders: Vec<PathBuf> = methods
        .iter()
        .map(|&m| method_folder(out, methods, m))
        .collect();
    let folders: Vec<&Path> = folders.iter().map(PathBuf::as_path).collect();
    let columns: Vec<&[Record]> = per_method.iter().map(Vec::as_slice).collect();
    grid::write(out, &folders, &columns)?;
    let overview: Vec<gallery::MethodColumn> = methods
        .iter()
        .zip(per_method)
        .map(|(m, records)| gallery::MethodColumn {
            title: m.title(),
            folder: m.name(),
            records,
        })
        .collect();
    gallery::write_overview(out, title, style, &overview)?;
    let names: Vec<&str> = methods.iter().map(|m| m.name()).collect();
    println!(
        "{}: images down; original, {} across (labelled in {})",
        out.join("grid.jpg").display(),
        names.join(", "),
        out.join("index.html").display()
    );
    Ok(())
}

/// Accuracy and empty maps of one method's records, and where its gallery is.
fn report(method: Method, folder: &Path, records: &[Record]) {
    let labelled: Vec<bool> = records.iter().filter_map(Record::correct).collect();
    if !labelled.is_empty() {
        let correct = labelled.iter().filter(|&&c| c).count();
        println!(
            "{correct}/{} explained images predicted correctly ({:.1}%)",
            labelled.len(),
            100.0 * correct as f64 / labelled.len() as f64
        );
    }
    let empty = records.iter().filter(|r| r.empty_map).count();
    if empty > 0 {
        println!(
            "{empty} map(s) were all zero: nothing in those images raised the explained score"
        );
    }
    println!(
        "{method}: figures, summary.json and the gallery in {}",
        folder.join("index.html").display()
    );
}
