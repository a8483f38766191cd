//! `explain` on a run trained here: held-out accuracy, predictions for files, clear errors.

mod common;

use std::path::Path;

use common::{assert_success, explain};
use train::TrainConfig;

use common::SHAPES_RUN as CONFIG;

/// `network` as a safetensors file under PyTorch's parameter names.
fn save_torch_named(network: &model::CifarResNet<burn_flex::Flex>, path: &Path) {
    use burn_store::{BurnToPyTorchAdapter, ModuleSnapshot, SafetensorsStore};
    let mut store = SafetensorsStore::from_file(path).with_to_adapter(BurnToPyTorchAdapter);
    network.save_into(&mut store).unwrap();
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn explains_held_out_images_and_files_and_reports_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    let config = TrainConfig::parse(CONFIG, "test").unwrap();
    let run_path = dir.path().join("runs/shapes-001");
    let mut first_held_out = Vec::new();
    let summary = common::train_run(&config, &run_path, |_, data| {
        first_held_out = data.validation.samples[0].pixels.clone()
    });

    // No arguments: the latest run under ./runs, held-out images in the tutorial's layout.
    let out = explain(&["--limit", "3"], dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_success(&out);
    assert_eq!(stdout.matches(", explained ").count(), 3, "{stdout}");
    let explained = run_path.join("explain");
    let records: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(explained.join("summary.json")).unwrap())
            .unwrap();
    let records = records.as_array().unwrap();
    assert_eq!(records.len(), 3);
    let labels: std::collections::BTreeSet<_> = records
        .iter()
        .map(|r| r["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels.len(), 3, "a few images cover several classes");
    for record in records {
        let (label, predicted) = (
            record["label"].as_str().unwrap(),
            record["predicted"].as_str().unwrap(),
        );
        let file = format!(
            "{label}/{}_label_{predicted}.jpg",
            record["name"].as_str().unwrap()
        );
        for folder in ["originals", "heatmaps", "superimposed"] {
            let picture = image::open(explained.join(folder).join(&file)).unwrap();
            assert_eq!(
                (picture.width(), picture.height()),
                (256, 256), // 16 × 16 shapes, each pixel shown as 16 × 16
                "{folder}/{file}"
            );
        }
    }
    let gallery = std::fs::read_to_string(explained.join("index.html")).unwrap();
    assert_eq!(gallery.matches("<tr class=").count(), 3);
    let report = std::fs::read_to_string(run_path.join("report.html")).unwrap();
    assert!(report.contains("href=\"explain/index.html\""), "{report}");
    // Again into the same folder with fewer images: the old figures go, the gallery and the
    // folder hold only the new ones, and a file of the user's stays.
    std::fs::write(explained.join("notes.txt"), "mine").unwrap();
    let out = explain(&["--limit", "1"], dir.path());
    assert_success(&out);
    let figures: Vec<_> = walk(&explained)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    assert_eq!(figures.len(), 3, "one image's three figures: {figures:?}");
    assert!(explained.join("notes.txt").is_file());

    // A file keeps its own size in the figures; --class picks the explained score by name.
    let file = dir.path().join("shape.png");
    let big = image::imageops::resize(
        &image::RgbImage::from_raw(16, 16, first_held_out.clone()).unwrap(),
        40,
        30,
        image::imageops::FilterType::Nearest,
    );
    big.save(&file).unwrap();
    let out = explain(
        &[
            "--image",
            "shape.png",
            "--class",
            "cross",
            "--out",
            "figures",
        ],
        dir.path(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("000_shape [gradcam]: predicted ") && stdout.contains("explained cross"),
        "{stdout}"
    );
    let superimposed = image::open(dir.path().join("figures/000_shape/superimposed.jpg")).unwrap();
    assert_eq!((superimposed.width(), superimposed.height()), (40, 30));
    let figures: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("figures/summary.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(figures[0]["target"], "cross");
    assert_eq!(figures[0]["top5"].as_array().unwrap().len(), 4);
    // Indices beside the names, for scripts.
    let names = data::shapes::CLASS_NAMES;
    let index = |key: &str| figures[0][key].as_u64().unwrap() as usize;
    assert_eq!(names[index("target_index")], "cross");
    assert_eq!(names[index("predicted_index")], figures[0]["predicted"]);
    assert_eq!(
        figures[0]["top5"][0]["index"],
        figures[0]["predicted_index"]
    );
    let peak = &figures[0]["peak"];
    assert!(peak[0].as_u64().unwrap() < 40 && peak[1].as_u64().unwrap() < 30);
    let csv = std::fs::read_to_string(dir.path().join("figures/summary.csv")).unwrap();
    assert!(
        csv.starts_with(
            "name,path,label,predicted,probability,target,target_probability,peak_x,peak_y,superimposed,label_index,predicted_index,target_index,top5\n000_shape,shape.png,,"
        ),
        "{csv}"
    );

    // --top-k: one set of figures per image and rank.
    let out = explain(
        &["--limit", "2", "--top-k", "2", "--out", "topk"],
        dir.path(),
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches(", explained ")
            .count(),
        4
    );
    let second = std::fs::read_to_string(dir.path().join("topk/summary.csv"))
        .unwrap()
        .lines()
        .filter(|line| line.contains("_top2_label_"))
        .count();
    assert_eq!(second, 2);

    // Several classes: a map each, a repeated one once, the files told apart by class index.
    let out = explain(
        &[
            "--limit",
            "2",
            "--class",
            "cross,0,cross",
            "--out",
            "classes",
        ],
        dir.path(),
    );
    assert_success(&out);
    let records: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("classes/summary.json")).unwrap(),
    )
    .unwrap();
    let records = records.as_array().unwrap();
    assert_eq!(records.len(), 4);
    let cross = names.iter().position(|&n| n == "cross").unwrap();
    for record in records {
        let (name, target) = (
            record["name"].as_str().unwrap(),
            record["target_index"].as_u64(),
        );
        assert!(
            name.ends_with(&format!("_class{}", target.unwrap())),
            "{name}"
        );
    }
    let classes: std::collections::BTreeSet<u64> = records
        .iter()
        .map(|r| r["target_index"].as_u64().unwrap())
        .collect();
    assert_eq!(classes, [0, cross as u64].into());

    // --save-raw: the raw map and pytorch-grad-cam's array, consistent with each other.
    let out = explain(
        &["--image", "shape.png", "--save-raw", "--out", "raw"],
        dir.path(),
    );
    assert_success(&out);
    let folder = std::fs::read_dir(dir.path().join("raw"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .unwrap();
    let read = |name: &str| {
        let bytes = std::fs::read(folder.join(name)).unwrap();
        let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
        (npy.shape().to_vec(), npy.into_vec::<f32>().unwrap())
    };
    let (raw_shape, raw) = read("cam_raw.npy");
    let (cam_shape, cam) = read("cam.npy");
    assert_eq!((raw_shape, cam_shape), (vec![4, 4], vec![16, 16]));
    let minmax = cam::postprocess::Normalization::MinMax;
    let expected = cam::postprocess::upsample(
        &cam::postprocess::relu_normalize(&raw, minmax),
        [4, 4],
        [16, 16],
        minmax,
    );
    assert_eq!(cam, expected);

    // --method all: one capture, every method's figures in its own folder.
    let out = explain(
        &[
            "--image",
            "shape.png",
            "--method",
            "all",
            "--out",
            "methods",
        ],
        dir.path(),
    );
    assert_success(&out);
    let out = explain(
        &[
            "--image",
            "shape.png",
            "--eigen-smooth",
            "--aug-smooth",
            "--save-raw",
            "--out",
            "smooth",
        ],
        dir.path(),
    );
    assert!(out.status.success() && dir.path().join("smooth/000_shape/heatmap.jpg").is_file());
    // SESS around two methods, one with a capture of its own; its array is final already.
    let out = explain(
        &[
            "--image",
            "shape.png",
            "--sess",
            "--method",
            "gradcam,finercam",
            "--save-raw",
            "--out",
            "sess",
        ],
        dir.path(),
    );
    assert_success(&out);
    let bytes = std::fs::read(dir.path().join("sess/finercam/000_shape/cam.npy")).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    assert_eq!(npy.shape().to_vec(), vec![16, 16]);
    let cam = npy.into_vec::<f32>().unwrap();
    let (min, max) = cam
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    assert!(
        min == 0.0 && (max - 1.0).abs() < 1e-5,
        "normalised: {min} {max}"
    );
    let refused = explain(
        &["--image", "shape.png", "--sess", "--aug-smooth"],
        dir.path(),
    );
    assert!(!refused.status.success());
    // Deep Feature Factorization: three concepts, a figure, each concept's share and classes.
    let out = explain(
        &["--image", "shape.png", "--concepts", "3", "--out", "dff"],
        dir.path(),
    );
    assert_success(&out);
    let figure = image::open(dir.path().join("dff/concepts/000_shape.jpg")).unwrap();
    assert_eq!(
        (figure.width(), figure.height()),
        (40, 30),
        "the file's own size"
    );
    let csv = std::fs::read_to_string(dir.path().join("dff/concepts.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 3, "{csv}");
    let shares: f32 = rows.iter().map(|r| r[3].parse::<f32>().unwrap()).sum();
    assert!(
        (shares - 1.0).abs() < 1e-3,
        "every pixel has one strongest concept: {csv}"
    );
    for row in &rows {
        let classes: Vec<&str> = row[4].split(';').collect();
        assert_eq!(classes.len(), 2, "two classes per concept: {csv}");
        assert!(
            names.contains(&classes[0].split(':').next().unwrap()),
            "{csv}"
        );
    }
    let page = std::fs::read_to_string(dir.path().join("dff/concepts.html")).unwrap();
    assert!(page.contains("concepts/000_shape.jpg") && page.matches("concept ").count() >= 3);
    let grid = image::open(dir.path().join("methods/grid.jpg")).unwrap();
    assert_eq!(grid.height(), 128, "one image, one row");
    assert!(
        grid.width() > 11 * 128,
        "the original and ten methods across"
    );
    // The top-level page names every method across and links each method's gallery.
    let overview = std::fs::read_to_string(dir.path().join("methods/index.html")).unwrap();
    assert!(overview.contains("<th>Score-CAM</th>") && overview.contains("ablationcam/index.html"));
    let scorecam = std::fs::read_to_string(dir.path().join("methods/scorecam/index.html")).unwrap();
    assert!(
        scorecam.contains("Score-CAM overlay"),
        "the map column says which method"
    );
    for method in cam::Method::ALL {
        let folder = dir.path().join("methods").join(method.name());
        assert!(
            folder.join("000_shape/superimposed.jpg").is_file()
                && folder.join("index.html").is_file(),
            "{method}"
        );
    }

    // --evaluate: methods and baselines, one table; shapes have boxes, so the pointing games
    // are scored too.
    let out = explain(
        &[
            "--limit",
            "4",
            "--method",
            "gradcam,scorecam",
            "--evaluate",
            "--steps",
            "4",
            "--out",
            "eval",
        ],
        dir.path(),
    );
    assert_success(&out);
    let table = std::fs::read_to_string(dir.path().join("eval/evaluation.md")).unwrap();
    assert!(table.starts_with("Protocol: 4 images at 16×16"), "{table}");
    assert!(
        table.contains("| deletion AUC ↓ | insertion AUC ↑ |") && table.contains("ms/image ↓"),
        "each column says which way is better: {table}"
    );
    for row in [
        "| gradcam |",
        "| scorecam |",
        "| baseline: random |",
        "| baseline: centre gaussian |",
    ] {
        let line = table
            .lines()
            .find(|l| l.starts_with(row))
            .unwrap_or_else(|| panic!("{row}: {table}"));
        assert_eq!(line.matches('|').count(), 16, "{line}");
        assert!(!line.contains('–'), "pointing games scored: {line}");
    }
    assert!(
        table.contains("| complexity ↓ | coherency ↑ | ARCC ↑ |"),
        "ARCC's columns: {table}"
    );
    let csv = std::fs::read_to_string(dir.path().join("eval/evaluation.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5);
    // Every image's own scores: 4 images × (2 methods + 2 baselines), in [0, 1] where bounded.
    let images = std::fs::read_to_string(dir.path().join("eval/evaluation-images.csv")).unwrap();
    assert_eq!(images.lines().count(), 1 + 4 * 4);
    let header: Vec<&str> = images.lines().next().unwrap().split(',').collect();
    for column in ["complexity", "coherency", "arcc"] {
        let c = header.iter().position(|&h| h == column).unwrap();
        for line in images.lines().skip(1) {
            let value: f32 = line.split(',').nth(c).unwrap().parse().unwrap();
            assert!((0.0..=1.0).contains(&value), "{column} {value}: {line}");
        }
    }
    // The curves behind the AUC columns: 256 pixels in 4 steps of 64 → 5 points each, whose
    // area (trapezoids; the mean of areas is the area of the mean) is the table's AUC.
    let curves = std::fs::read_to_string(dir.path().join("eval/deletion-insertion.csv")).unwrap();
    assert_eq!(curves.lines().count(), 1 + 4 * 5, "{curves}");
    let deletion: Vec<f64> = curves
        .lines()
        .filter(|l| l.starts_with("gradcam,"))
        .map(|l| l.split(',').nth(2).unwrap().parse().unwrap())
        .collect();
    let area = (deletion.iter().sum::<f64>() - (deletion[0] + deletion[4]) / 2.0) / 4.0;
    let table_auc: f64 = csv
        .lines()
        .find(|l| l.starts_with("gradcam,"))
        .unwrap()
        .split(',')
        .nth(3)
        .unwrap()
        .parse()
        .unwrap();
    assert!((area - table_auc).abs() < 1e-4, "{area} vs {table_auc}");
    let figure = std::fs::read_to_string(dir.path().join("eval/deletion-insertion.svg")).unwrap();
    assert!(figure.contains("gradcam") && figure.contains("baseline: centre gaussian"));
    assert!(
        table.contains("](deletion-insertion.svg)"),
        "the table shows the figure"
    );

    let out = explain(&["--accuracy"], dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let expected = format!("{:.2}%", 100.0 * summary.best_val_acc);
    assert!(
        stdout.contains("held-out images correct") && stdout.contains(&expected),
        "{stdout} vs {expected}"
    );
    // On disk too: counts per true × predicted class, each class's accuracy, a picture.
    let confusion = std::fs::read_to_string(explained.join("confusion.csv")).unwrap();
    assert!(confusion.starts_with("true\\predicted,circle,square,triangle,cross,accuracy"));
    assert_eq!(confusion.lines().count(), 5, "{confusion}");
    assert!(explained.join("confusion.svg").is_file());
}

#[test]
fn mistakes_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 6] = [
        (&[], "holds no run"),
        (&["--run", "."], "is not a run folder"),
        (&["--run", "missing"], "--run missing: no such folder"),
        (
            &["--weights", "newest"],
            "use best, last or an epoch number",
        ),
        (&["--alpha", "nan"], "a number from 0 to 1"),
        (&["--top-k", "0"], "at least 1"),
    ];
    std::fs::create_dir(dir.path().join("runs")).unwrap();
    for (args, expected) in cases {
        let out = explain(args, dir.path());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(expected),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn folder_runs_reread_only_their_held_out_files_at_full_size() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pictures");
    let shapes = data::shapes::generate(40, 16, 3);
    for (i, sample) in shapes.samples.iter().enumerate() {
        let folder = root.join(&shapes.class_names[sample.label]);
        std::fs::create_dir_all(&folder).unwrap();
        let small = image::RgbImage::from_raw(16, 16, sample.pixels.clone()).unwrap();
        image::imageops::resize(&small, 24, 20, image::imageops::FilterType::Triangle)
            .save(folder.join(format!("{i:02}.png")))
            .unwrap();
    }
    let folder_source = format!("source = \"folder\"\ndir = {:?}", root.to_str().unwrap());
    let config = TrainConfig::parse(
        &CONFIG
            .replace("epochs = 3", "epochs = 1")
            .replace("source = \"shapes\"\ncount = 900", &folder_source)
            .replace("validation = 0.2", "validation = 0.25"),
        "test",
    )
    .unwrap();
    let run_path = dir.path().join("runs/folder-001");
    common::train_run(&config, &run_path, |run, data| {
        run.write_held_out(&data.validation.samples, &root).unwrap()
    });

    // A held-out file that disappeared since training is skipped and counted.
    let held_out = std::fs::read_to_string(run_path.join("held_out.txt")).unwrap();
    assert_eq!(held_out.lines().count(), 10);
    std::fs::remove_file(root.join(held_out.lines().next().unwrap())).unwrap();
    let out = explain(&["--limit", "all"], dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_success(&out);
    assert!(
        stdout.contains("explaining 9 of the 10 held-out (val) images"),
        "{stdout}"
    );
    assert!(stdout.contains("1 image(s) could not be read"), "{stdout}");
    let records: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run_path.join("explain/summary.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(records.as_array().unwrap().len(), 9);
    let overlay = run_path
        .join("explain")
        .join(records[0]["figures"]["superimposed"].as_str().unwrap());
    let picture = image::open(overlay).unwrap();
    assert_eq!(
        (picture.width(), picture.height()),
        (24, 20),
        "full-size figures"
    );

    // --save-raw in the tutorial's layout: raw/<class>/<image>/, one folder per image.
    let out = explain(
        &["--limit", "all", "--save-raw", "--out", "raw"],
        dir.path(),
    );
    assert_success(&out);
    let arrays: Vec<_> = walk(&dir.path().join("raw/raw"))
        .into_iter()
        .filter(|p| p.ends_with("cam.npy"))
        .collect();
    assert_eq!(
        arrays.len(),
        9,
        "the nine readable held-out images: {arrays:?}"
    );

    let out = explain(&["--split", "test"], dir.path());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no separate test set"));
}

#[test]
fn pretrained_files_go_through_the_same_path() {
    let dir = tempfile::tempdir().unwrap();
    // A ResNet-20 with random weights, saved under PyTorch's names as a safetensors file.
    let network =
        model::CifarResNetConfig::default().init::<burn_flex::Flex>(3, 3, &Default::default());
    save_torch_named(&network, &dir.path().join("resnet20.safetensors"));
    std::fs::write(dir.path().join("labels.txt"), "ant\nbee\ncat\n").unwrap();
    image::RgbImage::from_pixel(50, 40, image::Rgb([200, 30, 30]))
        .save(dir.path().join("red.png"))
        .unwrap();

    let out = explain(
        &[
            "--arch",
            "resnet20",
            "--weights",
            "resnet20.safetensors",
            "--labels",
            "labels.txt",
            "--image",
            "red.png",
            "--input-size",
            "40x48",
            "--mean",
            "0.5,0.5,0.5",
            "--class",
            "bee",
            "--save-raw",
        ],
        dir.path(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_success(&out);
    assert!(stdout.contains("explained bee"), "{stdout}");
    let folder = dir.path().join("explained/resnet20/000_red");
    assert_eq!(
        image::open(folder.join("superimposed.jpg"))
            .unwrap()
            .width(),
        50
    );
    let bytes = std::fs::read(folder.join("cam.npy")).unwrap();
    assert_eq!(
        npyz::NpyFile::new(&bytes[..]).unwrap().shape(),
        [40, 48],
        "--input-size"
    );

    // Maps fused over two layers, with guided backpropagation beside them.
    let fused = [
        "--arch",
        "resnet20",
        "--weights",
        "resnet20.safetensors",
        "--image",
        "red.png",
        "--layer",
        "layer2,layer3.1",
        "--guided",
        "--save-raw",
        "--out",
        "fused",
    ];
    let out = explain(&fused, dir.path());
    assert_success(&out);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("--layer layer2 is layer2.2"), "{said}");
    let folder = dir.path().join("fused/000_red");
    for figure in ["guided_backprop.jpg", "guided_cam.jpg"] {
        assert_eq!(
            image::open(folder.join(figure)).unwrap().width(),
            50,
            "{figure}"
        );
    }
    let bytes = std::fs::read(folder.join("cam_raw.npy")).unwrap();
    let shape = npyz::NpyFile::new(&bytes[..]).unwrap().shape().to_vec();
    assert_eq!(shape, [32, 32], "a fused map is at the input's size");

    let cases: [(&[&str], &str); 5] = [
        (
            &["--arch", "resnet20", "--image", "red.png"],
            "needs --weights FILE",
        ),
        (
            &[
                "--arch",
                "resnet20",
                "--weights",
                "resnet20.safetensors",
                "--image",
                "red.png",
                "--layer",
                "layer4",
            ],
            "its layers are stem, layer1.0",
        ),
        (
            &[
                "--arch",
                "resnet21",
                "--weights",
                "resnet20.safetensors",
                "--image",
                "red.png",
            ],
            "unknown; use one of",
        ),
        (
            &[
                "--arch",
                "resnet56",
                "--weights",
                "resnet20.safetensors",
                "--image",
                "red.png",
            ],
            "missing from the file",
        ),
        (
            &[
                "--arch",
                "resnet20",
                "--weights",
                "labels.txt",
                "--image",
                "red.png",
            ],
            "not a readable PyTorch file",
        ),
    ];
    for (args, expected) in cases {
        let out = explain(args, dir.path());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(expected),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn scores_that_overflow_are_an_error_not_an_empty_map() {
    use burn::module::Param;

    let dir = tempfile::tempdir().unwrap();
    // Finite weights (the loader accepts them) whose logits overflow to infinity.
    let mut network =
        model::CifarResNetConfig::default().init::<burn_flex::Flex>(3, 3, &Default::default());
    network.linear.weight = Param::from_tensor(network.linear.weight.val().ones_like() * 3e38);
    save_torch_named(&network, &dir.path().join("huge.safetensors"));
    image::RgbImage::from_pixel(32, 32, image::Rgb([200, 30, 30]))
        .save(dir.path().join("red.png"))
        .unwrap();
    let out = explain(
        &[
            "--arch",
            "resnet20",
            "--weights",
            "huge.safetensors",
            "--image",
            "red.png",
        ],
        dir.path(),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && err.contains("not finite"),
        "{err}\n{stdout}"
    );
}

/// Circles and squares as PNG class folders, and a binary-head run trained on them.
fn binary_run(dir: &Path) -> std::path::PathBuf {
    let shapes = data::shapes::generate(240, 16, 4);
    for (i, sample) in shapes
        .samples
        .iter()
        .enumerate()
        .filter(|(_, s)| s.label < 2)
    {
        let folder = dir.join("photos").join(&shapes.class_names[sample.label]);
        std::fs::create_dir_all(&folder).unwrap();
        let picture = image::RgbImage::from_raw(16, 16, sample.pixels.clone()).unwrap();
        picture.save(folder.join(format!("{i:03}.png"))).unwrap();
    }
    let config = CONFIG
        .replace(
            "name = \"cifar_resnet\"",
            "name = \"cifar_resnet\"\nhead = \"binary\"",
        )
        .replace(
            "source = \"shapes\"\ncount = 900",
            "source = \"folder\"\ndir = \"photos\"",
        );
    let mut config = TrainConfig::parse(&config, "test").unwrap();
    config.data.dir = Some(dir.join("photos"));
    let run_path = dir.join("runs/binary-001");
    common::train_run(&config, &run_path, |_, _| {});
    run_path
}

#[test]
fn a_binary_run_is_explained_the_tutorials_way() {
    let dir = tempfile::tempdir().unwrap();
    let run = binary_run(dir.path());
    let out_dir = dir.path().join("tutorial");
    let out = explain(
        &[
            "--run",
            run.to_str().unwrap(),
            "--limit",
            "6",
            "--target",
            "tutorial",
            "--colormap",
            "ocean",
            "--naming",
            "tutorial",
            "--out",
            out_dir.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert_success(&out);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("summary.json")).unwrap())
            .unwrap();
    let records = summary.as_array().unwrap();
    assert_eq!(records.len(), 6);
    for record in records {
        // The tutorial explains the sigmoid output, class 1, whatever the prediction.
        assert_eq!(record["target_index"], 1, "{record}");
        let p = record["top5"][0]["probability"].as_f64().unwrap();
        assert!((0.5..=1.0).contains(&p), "{record}");
        let number: usize = record["name"].as_str().unwrap().parse().unwrap();
        let file = format!(
            "heatmaps/{}/{number}_label_{}.jpg",
            record["label"].as_str().unwrap(),
            record["predicted_index"]
        );
        assert_eq!(record["figures"]["heatmap"], file.as_str());
        let heatmap = out_dir.join(&file);
        assert!(heatmap.is_file(), "{} missing", heatmap.display());
    }
    // --target tutorial decides the class and the score itself.
    let out = explain(
        &[
            "--run",
            run.to_str().unwrap(),
            "--target",
            "tutorial",
            "--class",
            "1",
        ],
        dir.path(),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--class"));
}
