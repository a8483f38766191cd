//! `grid.jpg`: images down, methods across (the original first), so that methods can be
//! compared at a glance. Built from the overlays already written.

use std::path::Path;

use anyhow::{Context, Result};
use image::RgbImage;
use image::imageops::{FilterType, overlay, resize};

use crate::output::Record;

/// Height of a cell; widths follow each image's aspect ratio (the first column's).
const CELL: u32 = 128;
/// At most this many images, the first ones.
const ROWS: usize = 16;

/// `columns[m]` are the records of method `m` (same images, same order), under `folders[m]`.
pub fn write(out: &Path, folders: &[&Path], columns: &[&[Record]]) -> Result<()> {
    let rows = columns.first().map_or(0, |c| c.len().min(ROWS));
    if rows == 0 {
        return Ok(());
    }
    let mut cells: Vec<Vec<RgbImage>> = Vec::new();
    for row in 0..rows {
        let first = &columns[0][row];
        let mut line = vec![thumbnail(&folders[0].join(&first.figures.original))?];
        for (folder, records) in folders.iter().zip(columns) {
            line.push(thumbnail(&folder.join(&records[row].figures.superimposed))?);
        }
        cells.push(line);
    }
    let width: u32 = cells
        .iter()
        .map(|line| line.iter().map(RgbImage::width).sum::<u32>())
        .max()
        .unwrap_or(0);
    let mut grid = RgbImage::from_pixel(width, CELL * rows as u32, image::Rgb([255, 255, 255]));
    for (r, line) in cells.iter().enumerate() {
        let mut x = 0;
        for cell in line {
            overlay(&mut grid, cell, i64::from(x), i64::from(CELL * r as u32));
            x += cell.width();
        }
    }
    let path = out.join("grid.jpg");
    grid.save(&path)
        .with_context(|| format!("writing {}", path.display()))
}

fn thumbnail(path: &Path) -> Result<RgbImage> {
    let picture = image::open(path)
        .with_context(|| format!("reading {}", path.display()))?
        .to_rgb8();
    let width = (picture.width() * CELL / picture.height().max(1)).max(1);
    Ok(resize(&picture, width, CELL, FilterType::Triangle))
}
