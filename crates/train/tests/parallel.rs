//! Data-parallel training on the CPU: two replicas in one process, or two processes as two
//! nodes, end with the weights one device reaches on the whole batch (a network without
//! BatchNorm, whose statistics would be each replica's own), and so do runs resumed halfway.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use burn::prelude::*;
use burn_flex::Flex;
use model::Network;
use train::device::Cpu;
use train::fit::Sets;
use train::parallel::Plan;
use train::{RunDir, TrainConfig, Weights};

/// A VGG-11 without BatchNorm, narrow, on 32×32 shapes, SGD with momentum.
const CONFIG: &str = r#"
epochs = 3
batch_size = 16
seed = 11
[model]
name = "vgg"
depth = 11
width = 4
hidden = 16
[data]
source = "shapes"
count = 96
validation = 0.25
image_size = [32, 32]
[optimizer]
name = "sgd"
lr = 0.02
momentum = 0.9
"#;

/// See `tests/training.rs`: burn's one random generator per process, and the collective's one
/// server per process, are shared by the tests of this file.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// CONFIG written into `dir`, for the command line.
fn config_file(dir: &Path) -> std::path::PathBuf {
    let file = dir.join("config.toml");
    std::fs::write(&file, CONFIG).unwrap();
    file
}

fn config(epochs: usize) -> TrainConfig {
    let mut config = TrainConfig::parse(CONFIG, "test").unwrap();
    config.epochs = epochs;
    config
}

/// A fit in this process on `replicas` CPU replicas.
fn fit_in_process(path: &Path, replicas: usize) {
    fit_epochs(path, replicas, 3, false);
}

/// The run at `path` fitted (or resumed) up to `epochs` on `replicas` CPU replicas.
fn fit_epochs(path: &Path, replicas: usize, epochs: usize, resume: bool) {
    let config = config(epochs);
    let data = train::dataset::load(&config.data, config.seed, &()).unwrap();
    let run = match resume {
        true => RunDir::open(path).unwrap(),
        false => RunDir::create(path, &config, data.class_names()).unwrap(),
    };
    let sets = Sets {
        train: &data.train,
        validation: &data.validation,
        test: None,
    };
    let plan = Plan::replicas(replicas);
    let devices = vec![Default::default(); replicas];
    train::fit_parallel::<Cpu>(&config, sets, &run, resume, &devices, &plan, &mut ()).unwrap();
}

fn weights(path: &Path) -> Vec<(String, Vec<f32>)> {
    let network: Network<Flex> = RunDir::open(path)
        .unwrap()
        .load_model(Weights::Last, &Default::default())
        .unwrap();
    let mut out = Vec::new();
    collect(&network, &mut out);
    out
}

fn collect(network: &Network<Flex>, out: &mut Vec<(String, Vec<f32>)>) {
    use burn::module::{ModuleVisitor, Param};
    struct Values<'a>(&'a mut Vec<(String, Vec<f32>)>);
    impl ModuleVisitor<Flex> for Values<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<Flex, D>>) {
            let values = param.val().into_data().to_vec::<f32>().unwrap();
            self.0.push((format!("{}", param.id), values));
        }
    }
    network.visit(&mut Values(out));
}

/// The largest difference between two runs' weights, relative to 1 + |w|, and how far the
/// weights moved from each other's start at all (so that equality is not trivial).
fn largest_difference(a: &[(String, Vec<f32>)], b: &[(String, Vec<f32>)]) -> f32 {
    assert_eq!(a.len(), b.len(), "the same parameters");
    a.iter()
        .zip(b)
        .flat_map(|((_, x), (_, y))| {
            x.iter()
                .zip(y)
                .map(|(p, q)| (p - q).abs() / (1.0 + p.abs()))
        })
        .fold(0.0, f32::max)
}

#[test]
fn two_replicas_end_where_one_device_does_on_the_whole_batch() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (dir.path().join("one"), dir.path().join("two"));
    fit_in_process(&one, 1);
    fit_in_process(&two, 2);
    let gap = largest_difference(&weights(&one), &weights(&two));
    eprintln!("one device vs two replicas: largest relative difference {gap:.2e}");
    assert!(gap <= 1e-5, "the replicas ended {gap} away");
    // Both kept the epochs' rows; the replicas' loss is the whole batch's.
    let rows = |p: &Path| std::fs::read_to_string(p.join("metrics.csv")).unwrap();
    let losses = |text: String| -> Vec<f64> {
        text.lines()
            .skip(1)
            .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
            .collect()
    };
    let (a, b) = (losses(rows(&one)), losses(rows(&two)));
    assert_eq!(a.len(), 3);
    for (x, y) in a.iter().zip(&b) {
        assert!(
            (x - y).abs() <= 1e-4 * (1.0 + x.abs()),
            "train loss {x} vs {y}"
        );
    }
}

#[test]
fn a_batch_that_does_not_split_evenly_is_refused() {
    let _serial = serial();
    let plan = Plan::replicas(3);
    let error = plan.share(16).unwrap_err().to_string();
    assert!(
        error.contains("16") && error.contains("3 replicas"),
        "{error}"
    );
}

#[test]
fn replicas_resumed_halfway_end_where_they_would_have() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (whole, halves) = (dir.path().join("whole"), dir.path().join("halves"));
    fit_epochs(&whole, 2, 3, false);
    fit_epochs(&halves, 2, 1, false);
    fit_epochs(&halves, 2, 3, true);
    let gap = largest_difference(&weights(&whole), &weights(&halves));
    assert_eq!(gap, 0.0, "resumed replicas ended {gap} away");
}

/// `train --devices cpu,cpu` from the command line: one run folder, its epochs, and the
/// devices named in what it prints.
#[test]
fn the_command_line_takes_a_list_of_devices() {
    let dir = tempfile::tempdir().unwrap();
    let file = config_file(dir.path());
    let out = dir.path().join("run");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_train"))
        .args([
            "--config",
            file.to_str().unwrap(),
            "--quiet",
            "--epochs",
            "1",
        ])
        .args(["--devices", "cpu,cpu", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("cpu,cpu"), "{stdout}");
    assert!(
        RunDir::open(&out)
            .unwrap()
            .last_checkpoint()
            .unwrap()
            .is_some()
    );
    // A batch the replicas cannot share evenly is refused before any folder is made.
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_train"))
        .args([
            "--config",
            file.to_str().unwrap(),
            "--quiet",
            "--batch-size",
            "15",
        ])
        .args([
            "--devices",
            "cpu,cpu",
            "--out",
            dir.path().join("odd").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("does not split evenly"),
        "{stderr}"
    );
    assert!(!dir.path().join("odd").exists());
}

/// A port nothing listens on, and the two after it for the nodes' own servers: below the
/// range the system draws the ports of outgoing connections from (32768 and up), where one
/// of the nodes' own connections could take them first.
fn free_port() -> u16 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    let seed = std::process::id() as u64 ^ now.unwrap().as_nanos() as u64;
    let bindable = |port: u16| std::net::TcpListener::bind(("0.0.0.0", port)).is_ok();
    (0..1000u64)
        .map(|i| 20_000 + ((seed.wrapping_mul(7919) + i * 3) % 12_000) as u16)
        .find(|&port| (port..port + 3).all(bindable))
        .expect("three free ports")
}

/// `train --nodes 2 --node-rank RANK` on 127.0.0.1, started in the background.
fn start_node(out: &Path, rank: usize, port: u16, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_train"))
        .args(["--quiet", "--out", out.to_str().unwrap()])
        .args(["--nodes", "2", "--node-rank", &rank.to_string()])
        .args(["--coordinator", &format!("ws://127.0.0.1:{port}")])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The node's exit status and what it printed, or a failure once `limit` has passed.
fn finish_node(mut node: Child, limit: Duration) -> (std::process::ExitStatus, String) {
    let started = Instant::now();
    while node.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            node.kill().unwrap();
            let output = node.wait_with_output().unwrap();
            panic!(
                "a node still ran after {limit:?}:\n{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = node.wait_with_output().unwrap();
    let printed = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status, printed)
}

/// Two nodes, each a process, through the coordinator on 127.0.0.1.
fn fit_on_two_nodes(out: &Path, extra: &[&str]) {
    let port = free_port();
    let nodes: Vec<Child> = (0..2)
        .map(|rank| start_node(out, rank, port, extra))
        .collect();
    for (rank, node) in nodes.into_iter().enumerate() {
        let (status, printed) = finish_node(node, Duration::from_secs(300));
        assert!(status.success(), "node {rank} failed:\n{printed}");
    }
}

/// Two processes as two nodes end where one device does on the whole batch; the second node
/// writes nothing, and nodes that train different things are refused.
#[test]
fn two_nodes_end_where_one_device_does_on_the_whole_batch() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let file = config_file(dir.path());
    let (one, two) = (dir.path().join("one"), dir.path().join("two"));
    fit_in_process(&one, 1);
    let config = ["--config", file.to_str().unwrap()];
    fit_on_two_nodes(&two, &config);
    let gap = largest_difference(&weights(&one), &weights(&two));
    eprintln!("one device vs two nodes: largest relative difference {gap:.2e}");
    assert!(gap <= 1e-5, "the nodes ended {gap} away");
    assert_eq!(RunDir::open(&two).unwrap().metrics().unwrap().len(), 3);

    // Another seed on one node: refused on both, before any step.
    let port = free_port();
    let out = dir.path().join("disagree");
    let nodes = [
        start_node(&out, 0, port, &config),
        start_node(&out, 1, port, &[&config[..], &["--seed", "12"]].concat()),
    ];
    for node in nodes {
        let (status, printed) = finish_node(node, Duration::from_secs(120));
        assert!(
            !status.success() && printed.contains("the nodes disagree"),
            "{printed}"
        );
    }
}

/// A node killed mid-run: the other stops within its --peer-timeout, the last checkpoint is
/// intact, and both nodes resumed end where one device does.
#[test]
fn a_killed_node_stops_the_other_and_the_run_resumes() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let file = config_file(dir.path());
    let out = dir.path().join("two");
    let port = free_port();
    let file = file.to_str().unwrap();
    let long = ["--config", file, "--epochs", "1000", "--peer-timeout", "5"];
    let leader = start_node(&out, 0, port, &long);
    let mut follower = start_node(&out, 1, port, &long);
    let run = |_: ()| RunDir::open(&out).ok()?.last_checkpoint().ok()?;
    let started = Instant::now();
    while run(()).is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no checkpoint"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    follower.kill().unwrap();
    follower.wait().unwrap();
    let killed = Instant::now();
    let (status, printed) = finish_node(leader, Duration::from_secs(60));
    assert!(!status.success(), "{printed}");
    eprintln!(
        "node 0 stopped {:.1} s after node 1 was killed",
        killed.elapsed().as_secs_f64()
    );

    let (last, _) = run(()).expect("the last checkpoint");
    let epochs = (last + 2).to_string();
    fit_on_two_nodes(&out, &["--resume", "--epochs", &epochs]);
    let reference = dir.path().join("one");
    fit_epochs(&reference, 1, last + 2, false);
    let gap = largest_difference(&weights(&reference), &weights(&out));
    assert!(gap <= 1e-5, "the resumed nodes ended {gap} away");
}

/// Node 0 refuses a coordinator port that another program holds, by name, and ends at once on
/// SIGTERM (a cluster's time limit) while it waits for the other node, though the coordinator
/// takes the signal over.
#[test]
fn node_0_refuses_a_taken_port_and_ends_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let file = config_file(dir.path());
    let config = ["--config", file.to_str().unwrap()];
    let port = free_port();

    let taken = std::net::TcpListener::bind(("0.0.0.0", port)).unwrap();
    let node = start_node(&dir.path().join("taken"), 0, port, &config);
    let (status, printed) = finish_node(node, Duration::from_secs(60));
    assert!(
        !status.success() && printed.contains(&format!("port {port}, for the coordinator")),
        "{printed}"
    );
    drop(taken);

    let node = start_node(&dir.path().join("alone"), 0, port, &config);
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no coordinator"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let signalled = Command::new("kill")
        .args(["-TERM", &node.id().to_string()])
        .status()
        .unwrap();
    assert!(signalled.success());
    let (status, printed) = finish_node(node, Duration::from_secs(20));
    assert_eq!(status.code(), Some(130), "{printed}");
    assert!(printed.contains("interrupted"), "{printed}");
}
