//! The deletion and insertion curves behind `--evaluate`'s AUC columns, averaged over the
//! images: where one method beats another (early, late, everywhere), which one number hides.

use std::fmt::Write as _;

use plotters::prelude::*;

/// File names in the output folder.
pub const SVG: &str = "deletion-insertion.svg";
pub const CSV: &str = "deletion-insertion.csv";

/// One explainer's curves: the mean target probability after each step.
pub struct MeanCurves<'a> {
    pub name: &'a str,
    pub deletion: Vec<f32>,
    pub insertion: Vec<f32>,
}

/// Points are equally spaced from nothing changed (0) to every pixel changed (1), as the
/// areas are computed.
fn fraction(k: usize, points: usize) -> f64 {
    if points < 2 {
        0.0
    } else {
        k as f64 / (points - 1) as f64
    }
}

/// `explainer,fraction,deletion,insertion`, a row per point.
pub fn csv(curves: &[MeanCurves]) -> String {
    let mut text = String::from("explainer,fraction,deletion,insertion\n");
    for c in curves {
        let points = c.deletion.len();
        for (k, (d, i)) in c.deletion.iter().zip(&c.insertion).enumerate() {
            let _ = writeln!(text, "{},{:.4},{d:.6},{i:.6}", c.name, fraction(k, points));
        }
    }
    text
}

/// Matplotlib's tab10 for the methods; the baselines in greys, so the eye finds the methods.
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];
const BASELINE_GREYS: [RGBColor; 2] = [RGBColor(110, 110, 110), RGBColor(170, 170, 170)];

fn colour(index: usize, name: &str, baselines_seen: usize) -> RGBColor {
    if name.starts_with("baseline") {
        BASELINE_GREYS[baselines_seen % BASELINE_GREYS.len()]
    } else {
        PALETTE[index % PALETTE.len()]
    }
}

/// Two panels side by side, deletion and insertion, one line per explainer.
pub fn svg(curves: &[MeanCurves]) -> Result<String, Box<dyn std::error::Error>> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1100, 460)).into_drawing_area();
        root.fill(&WHITE)?;
        let panels = root.split_evenly((1, 2));
        fn deletion<'a>(c: &'a MeanCurves) -> &'a [f32] {
            &c.deletion
        }
        fn insertion<'a>(c: &'a MeanCurves) -> &'a [f32] {
            &c.insertion
        }
        // Each legend in the corner its curves leave empty.
        let upper_right = SeriesLabelPosition::UpperRight;
        let lower_right = SeriesLabelPosition::LowerRight;
        panel(
            &panels[0],
            curves,
            "deletion (lower is better)",
            deletion,
            upper_right,
        )?;
        panel(
            &panels[1],
            curves,
            "insertion (higher is better)",
            insertion,
            lower_right,
        )?;
        root.present()?;
    }
    Ok(svg)
}

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    curves: &[MeanCurves],
    title: &str,
    values: for<'a> fn(&'a MeanCurves) -> &'a [f32],
    legend: SeriesLabelPosition,
) -> Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(52)
        .build_cartesian_2d(0.0..1.0, 0.0..1.0)?;
    chart
        .configure_mesh()
        .x_desc("fraction of pixels changed, in the map's order")
        .y_desc("target probability")
        .draw()?;
    let mut baselines_seen = 0;
    for (index, c) in curves.iter().enumerate() {
        let colour = colour(index, c.name, baselines_seen);
        baselines_seen += usize::from(c.name.starts_with("baseline"));
        let points = values(c);
        let n = points.len();
        let line = points
            .iter()
            .enumerate()
            .map(move |(k, &v)| (fraction(k, n), f64::from(v)));
        chart
            .draw_series(LineSeries::new(line, colour.stroke_width(2)))?
            .label(c.name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], colour.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(legend)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Vec<MeanCurves<'static>> {
        vec![
            MeanCurves {
                name: "Grad-CAM",
                deletion: vec![0.9, 0.2, 0.1],
                insertion: vec![0.1, 0.8, 0.9],
            },
            MeanCurves {
                name: "baseline: random",
                deletion: vec![0.9, 0.6, 0.1],
                insertion: vec![0.1, 0.4, 0.9],
            },
        ]
    }

    #[test]
    fn the_csv_has_a_row_per_point_at_equal_fractions() {
        let text = csv(&example());
        let rows: Vec<&str> = text.lines().collect();
        assert_eq!(rows[0], "explainer,fraction,deletion,insertion");
        assert_eq!(rows.len(), 1 + 2 * 3);
        assert_eq!(rows[2], "Grad-CAM,0.5000,0.200000,0.800000");
        assert_eq!(rows[6], "baseline: random,1.0000,0.100000,0.900000");
    }

    #[test]
    fn the_figure_names_both_panels_and_every_explainer() {
        let text = svg(&example()).unwrap();
        assert!(text.starts_with("<svg"));
        for label in [
            "deletion (lower",
            "insertion (higher",
            "Grad-CAM",
            "baseline: random",
        ] {
            assert!(text.contains(label), "{label} missing");
        }
        // The method in tab10 blue, the baseline in grey: a curve and a legend sample per panel.
        for stroke in ["stroke=\"#1F77B4\"", "stroke=\"#6E6E6E\""] {
            assert_eq!(text.matches(stroke).count(), 4, "{stroke}");
        }
    }
}
