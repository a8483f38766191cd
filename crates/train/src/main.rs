//! `train`: fits a split CNN from a TOML config and writes a run folder for `explain`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use burn::backend::Autodiff;
use clap::Parser;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use model::Kernels;
use train::device::OnDevices;
use train::fit::{BatchProgress, Sets};
use train::parallel::{Cluster, Plan, WsAddress};
use train::tensorboard::TensorBoard;
use train::{
    DeviceChoice, EpochMetrics, Observer, OnBackend, Overrides, RunDir, Summary, TrainConfig,
    config, dataset,
};

/// Train a CNN image classifier whose features and classifier can be explained with Grad-CAM.
///
/// Writes a run folder (config, class names, metrics.csv, a checkpoint per epoch, the best
/// model) that `explain` reads back.
#[derive(Parser, Debug)]
#[command(version, after_help = EXAMPLES)]
struct Args {
    /// A config file, or the name of an embedded config: shapes (default), cifar, cats_dogs,
    /// tutorial (the Grad-CAM tutorial's exact recipe), cifar_jpeg. Also read from TRAIN_CONFIG,
    /// which `cargo run -p train --config cifar.toml` sets (see cifar.toml at the root).
    #[arg(long, short, env = "TRAIN_CONFIG")]
    config: Option<String>,
    /// Where the data set is (replaces the config's data.dir).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Pretrained weights to fine-tune (replaces the config's model.weights): the network is
    /// loaded strictly, its classifier replaced for the data set's classes.
    #[arg(long, value_name = "FILE")]
    weights: Option<PathBuf>,
    /// Run folder [default: runs/<config>-NNN, the first free NNN; with --resume, the latest run].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Number of epochs [default: the config's `epochs`]. With --resume, the run's new total.
    #[arg(long)]
    epochs: Option<usize>,
    /// Images per training step [default: the config's `batch_size`].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Base learning rate.
    #[arg(long)]
    lr: Option<f64>,
    /// Seed of the initialisation, the split, the shuffles and the augmentation.
    #[arg(long)]
    seed: Option<u64>,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu", conflicts_with = "devices")]
    device: DeviceChoice,
    /// Data-parallel training: a replica of the network on each device (`cpu,cpu`,
    /// `cuda:0,cuda:1`), each step's batch split evenly between them, their gradients averaged.
    /// BatchNorm normalises each replica's share with its own statistics.
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    devices: Vec<DeviceChoice>,
    /// Train on several machines: how many. Each runs this command with its own --node-rank
    /// and the same config, options and data set (at --data-dir on each); --resume needs the
    /// run folder on a file system every node reads. Node 0 coordinates and writes the run.
    #[arg(long, default_value_t = 1, value_name = "N")]
    nodes: usize,
    /// This machine's place among --nodes, 0 to N-1 (Slurm: $SLURM_NODEID).
    #[arg(long, default_value_t = 0, value_name = "R")]
    node_rank: usize,
    /// Where node 0 serves the coordinator that the nodes register with: ws://HOST:PORT,
    /// HOST being node 0's address as the others reach it.
    #[arg(long, value_name = "ws://HOST:PORT")]
    coordinator: Option<WsAddress>,
    /// Where this node serves its gradients to the others [default: this machine's host name
    /// (the coordinator's host when that is a loopback address), at the coordinator's port
    /// + 1 + --node-rank].
    #[arg(long, value_name = "ws://HOST:PORT")]
    node_address: Option<WsAddress>,
    /// Seconds a replica waits for the others, at a step or for the nodes to come up, before
    /// the run stops: a replica or node that died leaves the others waiting.
    #[arg(long, default_value_t = 1800, value_name = "SECONDS")]
    peer_timeout: u64,
    /// How a GPU multiplies in convolutions and matrix products: tf32 (tensor cores, factors
    /// rounded to 10 mantissa bits, as PyTorch convolves by default) or f32 (every product in
    /// f32, several times slower). The CPU always computes in f32.
    #[arg(long, default_value = "tf32")]
    precision: kernels::Precision,
    /// Continue the run in --out from its last checkpoint (model, optimizer, epoch).
    #[arg(long)]
    resume: bool,
    /// Score every checkpoint of the run in --out (or the latest) again, without
    /// augmentation, on its held-out and its training images: rescored.csv, the tutorial's
    /// per-epoch log. Trains nothing.
    #[arg(long, conflicts_with_all = ["resume", "epochs", "lr", "config"])]
    rescore: bool,
    /// Also write each epoch's losses, accuracies, learning rate and time as TensorBoard
    /// scalars into DIR/<run folder's name>/ (`tensorboard --logdir DIR` compares runs).
    /// Rewritten from metrics.csv when a run resumes.
    #[arg(long, value_name = "DIR", conflicts_with = "rescore")]
    tensorboard: Option<PathBuf>,
    /// No progress bars (the per-epoch lines are still printed).
    #[arg(long, short)]
    quiet: bool,
}

const EXAMPLES: &str = "Examples:
  train                                    # synthetic shapes, a couple of minutes on CPU
  train --config cifar --epochs 30         # CIFAR-10 (downloaded into data/cifar10)
  train --config cats_dogs --data-dir ../shared/data/cats-vs-dogs/train
  train --config tutorial                  # the Grad-CAM tutorial's run (../shared/data/cats-vs-dogs)
  train --resume --out runs/cifar-001      # continue an interrupted run
  train --config cifar --device cuda       # needs a build with --features cuda
  train --config cifar --devices cuda:0,cuda:1   # two GPUs, each step's batch split
  train --config cifar --nodes 2 --node-rank 0 --coordinator ws://node0:29500   # on node0,
  train --config cifar --nodes 2 --node-rank 1 --coordinator ws://node0:29500   # and on node1";

fn main() {
    kernels::allocator::keep_freed_memory();
    if let Err(error) = run(Args::parse()) {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<()> {
    let overrides = Overrides {
        data_dir: args.data_dir.clone(),
        weights: args.weights.clone(),
        epochs: args.epochs,
        batch_size: args.batch_size,
        lr: args.lr,
        seed: args.seed,
    };
    kernels::set_precision(args.precision);
    let devices = match args.devices.is_empty() {
        true => vec![args.device],
        false => args.devices.clone(),
    };
    let plan = plan(&args, devices.len())?;
    for device in &devices {
        device.check()?;
    }
    let (run_path, config) = if args.resume || args.rescore {
        resume_target(&args, &overrides)?
    } else {
        let (mut config, name) =
            TrainConfig::load(args.config.as_deref().unwrap_or(config::DEFAULT))?;
        config.apply(&overrides)?;
        let path = args
            .out
            .clone()
            .unwrap_or_else(|| RunDir::next_free("runs".as_ref(), &name));
        (path, config)
    };

    let bars = Bars::new(args.quiet);
    let data = dataset::load(&config.data, config.seed, &bars).context("loading the data set")?;
    for skipped in &data.skipped {
        eprintln!(
            "warning: skipped {}: {}",
            skipped.path.display(),
            skipped.reason
        );
    }
    if !data.skipped.is_empty() {
        eprintln!("warning: {} unreadable file(s) skipped", data.skipped.len());
    }
    // Everything that can be refused before the run folder exists, so that a refused run
    // leaves no half-made folder behind.
    plan.share(config.batch_size)?;
    let classes = data.class_names().len();
    if classes < 2 {
        bail!(
            "the data set has {classes} class ({}); a classifier needs at least two (one folder per class)",
            data.class_names().join(", ")
        );
    }
    config
        .model_spec(classes)
        .validate()
        .map_err(|e| anyhow::anyhow!("the model does not fit the data: {e}"))?;
    let tensorboard = match &args.tensorboard {
        Some(dir) if plan.writes_run() => Some(
            TensorBoard::new(dir, &run_path)
                .with_context(|| format!("--tensorboard {}", dir.display()))?,
        ),
        _ => None,
    };
    let run = if args.resume || args.rescore {
        RunDir::open(&run_path)?
    } else if !plan.writes_run() {
        // Node 0 makes the folder and writes everything in it; this node only trains.
        RunDir { path: run_path }
    } else {
        let run = RunDir::create(&run_path, &config, data.class_names())?;
        if let Some(root) = &config.data.dir {
            run.write_held_out(&data.validation.samples, root)?;
        }
        run
    };
    if (args.resume || args.rescore) && run.class_names()? != data.class_names() {
        bail!(
            "the classes in the data set differ from {}/classes.txt",
            run.path.display()
        );
    }
    if args.rescore {
        return args.device.run(Rescore {
            config: &config,
            data: &data,
            run: &run,
        })?;
    }
    let mut bars = bars;
    let names: Vec<String> = devices.iter().map(ToString::to_string).collect();
    let place = match &plan.cluster {
        Some(cluster) => format!(" · node {} of {}", cluster.rank, cluster.nodes),
        None => String::new(),
    };
    let writes = match plan.writes_run() {
        true => {
            bars.console = Some(run.path.join("console.log"));
            format!("run folder {}", run.path.display())
        }
        false => "node 0 writes the run folder".into(),
    };
    bars.say(&format!(
        "{} · {} train / {} validation images · {} classes · {}{place} · {writes}",
        architecture_name(&config),
        data.train.len(),
        data.validation.len(),
        data.class_names().len(),
        names.join(","),
    ));
    if let Some(board) = &tensorboard {
        bars.say(&format!(
            "TensorBoard scalars in {}",
            board.folder().display()
        ));
    }
    let log = Console(bars.console.clone());
    if let Some(cluster) = plan.cluster.as_ref().filter(|c| c.rank == 0) {
        cluster.serve_coordinator()?;
    }
    let summary = train::device::run_on_devices(
        &devices,
        Fit {
            config: &config,
            data: &data,
            run: &run,
            resume: args.resume,
            plan: &plan,
            observers: (bars, tensorboard),
        },
    )??;
    match plan.writes_run() {
        true => report(&summary, &run, &log),
        false => log.say(&format!(
            "done in {:.0} s; node 0 wrote the run",
            summary.seconds
        )),
    }
    Ok(())
}

/// The devices and nodes that `args` spread the training over.
fn plan(args: &Args, devices: usize) -> Result<Plan> {
    let mut plan = Plan::replicas(devices);
    plan.peer_timeout = Duration::from_secs(args.peer_timeout);
    let alone = args.coordinator.is_none() && args.node_address.is_none() && args.node_rank == 0;
    match (args.nodes, &args.coordinator) {
        (1, _) if alone => Ok(plan),
        (1, _) => bail!("--node-rank, --coordinator and --node-address need --nodes N (N ≥ 2)"),
        (_, None) => bail!("--nodes needs --coordinator ws://HOST:PORT, where node 0 listens"),
        (_, _) if args.rescore => bail!("--rescore runs on one machine: leave out --nodes"),
        (nodes, Some(coordinator)) => {
            let cluster = Cluster::new(
                nodes,
                args.node_rank,
                coordinator.clone(),
                args.node_address.clone(),
            )?;
            Ok(plan.across(cluster))
        }
    }
}

/// On --resume: the run folder and its saved config, with only --epochs allowed to change.
fn resume_target(args: &Args, overrides: &Overrides) -> Result<(PathBuf, TrainConfig)> {
    if args.config.is_some()
        || args.batch_size.is_some()
        || args.lr.is_some()
        || args.weights.is_some()
        || args.seed.is_some()
    {
        bail!(
            "--resume and --rescore use the run's saved config.toml; only --epochs (--resume), --data-dir and --device may be given"
        );
    }
    let run = match &args.out {
        Some(path) => RunDir::open(path)?,
        None => RunDir::latest("runs".as_ref())?,
    };
    let mut config = run.config()?;
    config.apply(overrides)?;
    Ok((run.path, config))
}

fn architecture_name(config: &TrainConfig) -> String {
    toml::to_string(&config.model)
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
}

struct Fit<'a> {
    config: &'a TrainConfig,
    data: &'a dataset::RunData,
    run: &'a RunDir,
    resume: bool,
    plan: &'a Plan,
    observers: (Bars, Option<TensorBoard>),
}

impl OnDevices for Fit<'_> {
    type Output = Result<Summary, train::TrainError>;

    fn run<I: Kernels>(mut self, devices: Vec<I::Device>) -> Self::Output {
        let data = self.data;
        let sets = Sets {
            train: &data.train,
            validation: &data.validation,
            test: data.test.as_ref(),
        };
        train::fit_parallel::<Autodiff<I>>(
            self.config,
            sets,
            self.run,
            self.resume,
            &devices,
            self.plan,
            &mut self.observers,
        )
    }
}

struct Rescore<'a> {
    config: &'a TrainConfig,
    data: &'a dataset::RunData,
    run: &'a RunDir,
}

impl OnBackend for Rescore<'_> {
    type Output = Result<()>;

    fn run<I: Kernels>(self, device: I::Device) -> Self::Output {
        let epochs = self.run.checkpoint_epochs()?.len();
        if epochs == 0 {
            bail!("{} has no checkpoint to score", self.run.path.display());
        }
        println!(
            "scoring {epochs} checkpoints on {} held-out and {} training images",
            self.data.validation.len(),
            self.data.train.len()
        );
        let started = std::time::Instant::now();
        train::rescore::rescore::<I>(
            self.run,
            self.config,
            &self.data.train,
            &self.data.validation,
            &device,
            &mut |row| {
                println!(
                    "epoch {:3}: held-out loss {:.4} acc {:6.2}% | training images loss {:.4} acc {:6.2}% | {:.0} s",
                    row.epoch,
                    row.validation.loss,
                    100.0 * row.validation.accuracy,
                    row.train.loss,
                    100.0 * row.train.accuracy,
                    started.elapsed().as_secs_f64()
                )
            },
        )?;
        println!("wrote {}", self.run.path.join("rescored.csv").display());
        Ok(())
    }
}

fn report(summary: &Summary, run: &RunDir, log: &Console) {
    if summary.first_epoch > summary.epochs {
        log.say(&format!(
            "nothing to do: the run already finished its {} epochs",
            summary.epochs
        ));
        return;
    }
    log.say(&format!(
        "done in {:.0} s: best validation accuracy {:.2}% at epoch {}{}",
        summary.seconds,
        100.0 * summary.best_val_acc,
        summary.best_epoch,
        summary
            .test_acc
            .map(|a| format!(", test accuracy {:.2}%", 100.0 * a))
            .unwrap_or_default()
    ));
    log.say(&format!(
        "run folder: {}  (explain it with: {} --run {})",
        run.path.display(),
        explain_command(),
        run.path.display()
    ));
}

/// Prints a line and keeps it in the run's console.log, so that what a run said survives the
/// terminal it ran in.
struct Console(Option<PathBuf>);

impl Console {
    fn say(&self, line: &str) {
        println!("{line}");
        self.keep(line);
    }

    fn keep(&self, line: &str) {
        use std::io::Write as _;
        let Some(path) = &self.0 else { return };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path);
        if let Ok(mut file) = file {
            let _ = writeln!(file, "{line}");
        }
    }
}

/// How this user runs `explain`: through cargo when `train` was started by `cargo run` (which
/// sets CARGO), otherwise the binary beside this one.
fn explain_command() -> String {
    if std::env::var_os("CARGO").is_some() {
        return "cargo run -p explain --".into();
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("explain")))
        .filter(|explain| explain.is_file())
        .map_or("explain".into(), |explain| explain.display().to_string())
}

/// indicatif bars for loading and for each epoch.
struct Bars {
    multi: MultiProgress,
    current: std::sync::Mutex<Option<ProgressBar>>,
    quiet: bool,
    /// The run's console.log, once the run folder exists.
    console: Option<PathBuf>,
}

impl Bars {
    fn new(quiet: bool) -> Self {
        Self {
            multi: MultiProgress::new(),
            current: Default::default(),
            quiet,
            console: None,
        }
    }

    /// A line above the bars, kept in console.log.
    fn say(&self, line: &str) {
        if self.quiet || self.multi.is_hidden() {
            println!("{line}");
        } else {
            let _ = self.multi.println(line);
        }
        Console(self.console.clone()).keep(line);
    }

    fn show(&self, bar: ProgressBar) -> ProgressBar {
        let bar = if self.quiet {
            ProgressBar::hidden()
        } else {
            self.multi.add(bar)
        };
        bar.enable_steady_tick(Duration::from_millis(200));
        *self.current.lock().unwrap() = Some(bar.clone());
        bar
    }

    fn bar(&self) -> Option<ProgressBar> {
        self.current.lock().unwrap().clone()
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .expect("valid template")
        .progress_chars("=> ")
}

impl data::Progress for Bars {
    fn start(&self, what: &str, total: Option<u64>) {
        let bar = match total {
            Some(n) => ProgressBar::new(n)
                .with_style(style("{msg:>20} [{bar:30}] {pos}/{len} ({per_sec}, {eta})")),
            None => ProgressBar::new_spinner(),
        };
        self.show(bar.with_message(what.to_string()));
    }

    fn advance(&self, done: u64) {
        if let Some(bar) = self.bar() {
            bar.inc(done);
        }
    }

    fn finish(&self) {
        if let Some(bar) = self.current.lock().unwrap().take() {
            bar.finish_and_clear();
        }
    }
}

impl Observer for Bars {
    fn extracting(&mut self, images: usize) {
        let bar = ProgressBar::new(images as u64).with_style(style(
            "features for the probe [{bar:30}] {pos}/{len} images ({per_sec}, {eta})",
        ));
        self.show(bar);
    }

    fn extracted(&mut self, images: usize) {
        if let Some(bar) = self.bar() {
            bar.inc(images as u64);
        }
    }

    fn epoch_started(&mut self, epoch: usize, epochs: usize, batches: usize) {
        // The feature extraction's bar, if any, ends here.
        data::Progress::finish(self);
        let bar = ProgressBar::new(batches as u64)
            .with_style(style(
                "epoch {prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed}<{eta})",
            ))
            .with_prefix(format!("{epoch}/{epochs}"));
        self.show(bar);
    }

    fn batch_finished(&mut self, p: &BatchProgress) {
        if let Some(bar) = self.bar() {
            bar.set_position(p.batch as u64);
            bar.set_message(format!(
                "loss {:.4} acc {:.2}% · {:.0} img/s · lr {:.2e}",
                p.loss,
                100.0 * p.accuracy,
                p.images_per_second,
                p.lr
            ));
        }
    }

    fn validating(&mut self, _batches: usize) {
        if let Some(bar) = self.bar() {
            bar.set_message("validating…");
        }
    }

    fn epoch_finished(&mut self, m: &EpochMetrics, is_best: bool) {
        data::Progress::finish(self);
        let line = format!(
            "epoch {:>3}: train loss {:.4} acc {:6.2}% | val loss {:.4} acc {:6.2}% | {:.1} s{}",
            m.epoch,
            m.train_loss,
            100.0 * m.train_acc,
            m.val_loss,
            100.0 * m.val_acc,
            m.seconds,
            if is_best { " ★ best" } else { "" }
        );
        self.say(&line);
    }
}
