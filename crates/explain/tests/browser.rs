//! The galleries as a browser shows them: headless Chromium loads a copy of each page with
//! `gallery_clicks.js` appended, which clicks the filters and the column headers the way a
//! person would and writes what the page then shows; the test reads that back from the DOM.
//! Skipped, with a message, where no Chromium is installed (`apt-get install chromium`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{assert_success, explain};
use serde_json::Value;
use train::TrainConfig;

/// One epoch at a tiny learning rate: a model that gets some held-out shapes right and some
/// wrong, so both filters have rows to show.
const CONFIG: &str = r#"
epochs = 1
batch_size = 16
seed = 3
[model]
name = "cifar_resnet"
depth = 8
width = 4
[data]
source = "shapes"
count = 200
validation = 0.2
image_size = [16, 16]
[optimizer]
name = "sgd"
lr = 0.0001
"#;

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            let found = Command::new("which").arg(name).output().ok()?;
            found
                .status
                .success()
                .then(|| PathBuf::from(String::from_utf8_lossy(&found.stdout).trim()))
        })
}

/// Loads `page` with the click script appended and returns the script's report.
fn click_through(browser: &Path, page: &Path) -> Value {
    let html = std::fs::read_to_string(page).unwrap();
    let script = include_str!("gallery_clicks.js");
    let copy = page.with_file_name("click-test.html");
    let body_end = html.rfind("</body>").expect("a page with a body");
    let driven = format!(
        "{}<script>{script}</script>{}",
        &html[..body_end],
        &html[body_end..]
    );
    std::fs::write(&copy, driven).unwrap();
    let profile = tempfile::tempdir().unwrap();
    // A tall window, so that every lazily loaded image is in view and loads.
    let dom = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--window-size=1280,20000",
            "--virtual-time-budget=5000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("file://{}", copy.display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    // The last one: the script itself names the element in a comment.
    let start = "<pre id=\"click-test-result\">";
    let json = dom
        .rsplit_once(start)
        .and_then(|(_, rest)| rest.split_once("</pre>"))
        .unwrap_or_else(|| {
            panic!(
                "{}: the click script reported nothing:\n{dom}",
                page.display()
            )
        })
        .0;
    let json = json
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("{}: {e} in {json}", page.display()))
}

fn numbers(values: &Value) -> Vec<f64> {
    let values = values.as_array().expect("an array");
    values.iter().map(|v| v.as_f64().unwrap()).collect()
}

#[test]
fn the_gallery_sorts_filters_and_shows_its_figures_in_chromium() {
    let Some(browser) = chromium() else {
        eprintln!("SKIPPED: no chromium to drive the gallery (apt-get install chromium)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = TrainConfig::parse(CONFIG, "test").unwrap();
    common::train_run(&config, &dir.path().join("runs/shapes-001"), |_, _| {});
    let out = explain(
        &[
            "--limit",
            "16",
            "--method",
            "gradcam,scorecam",
            "--out",
            "explained",
        ],
        dir.path(),
    );
    assert_success(&out);
    let explained = dir.path().join("explained");
    let summary: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(explained.join("gradcam/summary.json")).unwrap(),
    )
    .unwrap();
    let correct = summary
        .iter()
        .filter(|r| r["label"] == r["predicted"])
        .count();
    assert!(
        0 < correct && correct < 16,
        "{correct} of 16 correct: the filters need both kinds"
    );

    let report = click_through(&browser, &explained.join("gradcam/index.html"));
    assert_eq!(report["rows"], 16, "{report}");
    // Original, heatmap and overlay for every row, all decoded.
    assert_eq!(report["images"], 48, "{report}");
    assert_eq!(report["broken_images"], serde_json::json!([]), "{report}");
    assert!(report["scale_width"].as_f64().unwrap() > 100.0, "{report}");
    assert!(
        report["scale_background"]
            .as_str()
            .unwrap()
            .starts_with("linear-gradient(to right, rgb(0, 0, 128)"),
        "OpenCV's jet starts dark blue: {report}"
    );
    let filtered = |name: &str| &report[format!("filter_{name}")];
    assert_eq!(filtered("incorrect")["shown"], 16 - correct);
    assert_eq!(
        filtered("incorrect")["classes"],
        serde_json::json!(["incorrect"])
    );
    assert_eq!(
        filtered("incorrect")["showing"],
        match 16 - correct {
            1 => "showing incorrect: 1 image".to_string(),
            n => format!("showing incorrect: {n} images"),
        }
    );
    assert_eq!(filtered("correct")["shown"], correct);
    assert_eq!(filtered("all")["shown"], 16);

    let ascending = numbers(&report["sorted_once"]["values"]);
    assert_eq!(ascending.len(), 16);
    assert!(ascending.is_sorted(), "{ascending:?}");
    assert_eq!(report["sorted_once"]["header"], "confidence ▲");
    assert_eq!(
        report["sorted_once"]["says"],
        "Sorted by confidence, ascending."
    );
    let descending = numbers(&report["sorted_twice"]["values"]);
    assert!(descending.iter().rev().is_sorted(), "{descending:?}");
    assert_eq!(
        report["sorted_twice"]["says"],
        "Sorted by confidence, descending."
    );
    // Sorting by another column takes the arrow off the first.
    assert_eq!(report["by_number"]["confidence_header"], "confidence");
    let names: Vec<&str> = report["by_number"]["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let mut expected: Vec<&str> = summary
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    expected.sort();
    assert_eq!(names, expected);

    // The page across methods: every original and every method's overlay loads.
    let overview = click_through(&browser, &explained.join("index.html"));
    assert_eq!(overview["images"], 16 * 3, "{overview}");
    assert_eq!(
        overview["broken_images"],
        serde_json::json!([]),
        "{overview}"
    );
    assert_eq!(overview["rows"], 0, "no sortable table there: {overview}");
}
