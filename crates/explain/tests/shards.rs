//! `explain --shard I/N` as separate processes, then `explain merge`: the same files as one
//! run, and shards that do not belong together refused by name.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use common::{assert_success, explain};
use train::TrainConfig;

/// Every file under `dir` by its path relative to `dir`, with its bytes.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                files.insert(path.strip_prefix(dir).unwrap().to_path_buf(), bytes);
            }
        }
    }
    files
}

/// Starts `explain` with `args` in `cwd`, without waiting.
fn spawn(args: &[&str], cwd: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_explain"))
        .args(args)
        .current_dir(cwd)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// `n` shards of `args` as `n` processes at once, into `<prefix>0`, `<prefix>1`, ...
fn run_shards(args: &[&str], n: usize, prefix: &str, cwd: &Path) {
    let children: Vec<Child> = (0..n)
        .map(|i| {
            let (shard, out) = (format!("{i}/{n}"), format!("{prefix}{i}"));
            let mut all = args.to_vec();
            all.extend(["--shard", &shard, "--out", &out]);
            spawn(&all, cwd)
        })
        .collect();
    for child in children {
        assert_success(&child.wait_with_output().unwrap());
    }
}

fn stderr(out: &Output) -> String {
    assert!(!out.status.success(), "expected a refusal");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn train(dir: &Path) {
    // One epoch on fewer images: the maps need not be good, only the same.
    let config = common::SHAPES_RUN
        .replace("epochs = 3", "epochs = 1")
        .replace("count = 900", "count = 300");
    let config = TrainConfig::parse(&config, "test").unwrap();
    common::train_run(&config, &dir.join("runs/shapes-001"), |_, _| {});
}

#[test]
fn three_shards_merged_are_one_run_to_the_byte() {
    let dir = tempfile::tempdir().unwrap();
    train(dir.path());
    let job = [
        "--limit",
        "11",
        "--batch-size",
        "3",
        "--method",
        "gradcam,scorecam",
        "--top-k",
        "2",
        "--save-raw",
    ];
    let mut whole = job.to_vec();
    whole.extend(["--out", "whole"]);
    assert_success(&explain(&whole, dir.path()));
    run_shards(&job, 3, "shard", dir.path());
    // Any order on the command line.
    let merged = explain(
        &["merge", "merged", "shard2", "shard0", "shard1"],
        dir.path(),
    );
    assert_success(&merged);
    assert!(
        String::from_utf8_lossy(&merged.stdout).contains("merged 3 shards, 11 images"),
        "{}",
        String::from_utf8_lossy(&merged.stdout)
    );
    let (whole, merged) = (
        files(&dir.path().join("whole")),
        files(&dir.path().join("merged")),
    );
    assert_eq!(
        whole.keys().collect::<Vec<_>>(),
        merged.keys().collect::<Vec<_>>()
    );
    assert!(whole.contains_key(Path::new("grid.jpg")));
    assert!(
        whole
            .keys()
            .any(|p| p.ends_with("cam.npy") && p.starts_with("scorecam/raw"))
    );
    for (path, bytes) in &whole {
        assert!(merged[path] == *bytes, "{} differs", path.display());
    }
    // The merge links the shards' figures; another run into a shard's folder (other colours)
    // replaces its files and leaves the merged ones as they were, even when it cannot know
    // which files the last run wrote (its lists deleted).
    for folder in ["shard0/gradcam", "shard0/scorecam"] {
        std::fs::remove_file(dir.path().join(folder).join("explained-files.txt")).unwrap();
    }
    let mut recoloured = job.to_vec();
    recoloured.extend(["--colormap", "viridis", "--shard", "0/3", "--out", "shard0"]);
    assert_success(&explain(&recoloured, dir.path()));
    let shard0 = files(&dir.path().join("shard0"));
    let relinked = files(&dir.path().join("merged"));
    for (path, bytes) in &whole {
        assert!(relinked[path] == *bytes, "{} changed", path.display());
    }
    let figure = Path::new("gradcam/heatmaps");
    assert!(
        shard0
            .iter()
            .any(|(p, b)| p.starts_with(figure) && merged.get(p).is_some_and(|m| m != b)),
        "the shard's own figures did change"
    );
    run_shards(&job, 3, "shard", dir.path());
    // The shards split at whole batches: 4 batches of 3 (the last of 2) over 3 shards.
    let shard_images = |i: usize| {
        let note = std::fs::read_to_string(dir.path().join(format!("shard{i}/shard.json")));
        let note: serde_json::Value = serde_json::from_str(&note.unwrap()).unwrap();
        (
            note["first"].as_u64().unwrap(),
            note["images"].as_u64().unwrap(),
        )
    };
    assert_eq!([0, 1, 2].map(shard_images), [(0, 3), (3, 3), (6, 5)]);

    // Refusals, each naming what is wrong.
    let refused = |args: &[&str]| stderr(&explain(args, dir.path()));
    let missing = refused(&["merge", "m", "shard0", "shard2"]);
    assert!(missing.contains("shard(s) 1/3 missing"), "{missing}");
    let twice = refused(&["merge", "m", "shard0", "shard1", "shard2", "./shard1"]);
    assert!(twice.contains("are both shard 1/3"), "{twice}");
    let own = refused(&["merge", "shard0", "shard0", "shard1", "shard2"]);
    assert!(own.contains("cannot go into a shard's own folder"), "{own}");
    let none = refused(&["merge", "m", "whole"]);
    assert!(none.contains("whole: no shard.json"), "{none}");
    // A shard of another job: other methods; another split of the images.
    let mut other = job.to_vec();
    other[5] = "gradcam";
    other.extend(["--shard", "1/3", "--out", "foreign"]);
    assert_success(&explain(&other, dir.path()));
    let foreign = refused(&["merge", "m", "shard0", "foreign", "shard2"]);
    assert!(
        foreign.contains("foreign is not a shard of the same job as shard0: --method is"),
        "{foreign}"
    );
    let mut halves = job.to_vec();
    halves.extend(["--shard", "1/2", "--out", "half"]);
    assert_success(&explain(&halves, dir.path()));
    let mixed = refused(&["merge", "m", "shard0", "half", "shard2"]);
    assert!(
        mixed.contains("half is shard 1/2 but shard0 is shard 0/3"),
        "{mixed}"
    );
    let bad = refused(&["--shard", "3/3"]);
    assert!(bad.contains("use I/N with 0 ≤ I < N"), "{bad}");
}

#[test]
fn sharded_evaluations_merge_into_the_same_table() {
    let dir = tempfile::tempdir().unwrap();
    train(dir.path());
    let job = [
        "--evaluate",
        "--limit",
        "6",
        "--batch-size",
        "2",
        "--method",
        "gradcam,eigencam",
        "--steps",
        "4",
    ];
    let mut whole = job.to_vec();
    whole.extend(["--out", "whole"]);
    assert_success(&explain(&whole, dir.path()));
    run_shards(&job, 2, "shard", dir.path());
    assert_success(&explain(
        &["merge", "merged", "shard0", "shard1"],
        dir.path(),
    ));
    let read = |folder: &str, file: &str| {
        std::fs::read_to_string(dir.path().join(folder).join(file)).unwrap()
    };
    // Every column but the time, which no two runs share.
    let without_column = |text: String, name: &str| -> Vec<String> {
        let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
        let column = header.iter().position(|&h| h == name).unwrap();
        text.lines()
            .map(|line| {
                let mut cells: Vec<&str> = line.split(',').collect();
                cells.remove(column);
                cells.join(",")
            })
            .collect()
    };
    let table = |folder| without_column(read(folder, "evaluation.csv"), "ms/image");
    assert_eq!(table("whole"), table("merged"));
    assert_eq!(
        table("whole").len(),
        5,
        "header, two methods, two baselines"
    );
    let images = |folder| without_column(read(folder, "evaluation-images.csv"), "seconds");
    assert_eq!(images("whole"), images("merged"));
    assert_eq!(images("whole").len(), 1 + 4 * 6);
    for file in ["deletion-insertion.csv", "deletion-insertion.svg"] {
        assert_eq!(read("whole", file), read("merged", file), "{file}");
    }
}
