//! The training loop: epochs of SGD/Adam steps on augmented batches, a validation pass on the
//! inner (non-autodiff) backend, then a checkpoint. Everything random is drawn from the config's
//! seed and the epoch number, so a resumed run continues exactly where an uninterrupted one
//! would be.

use std::sync::mpsc::sync_channel;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use burn::module::{AutodiffModule, ModuleMapper, Param, ParamId};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, Optimizer};
use burn::prelude::*;
use burn::tensor::Transaction;
use data::{Batch, Batcher, ImageSet};
use kernels::optim::Sgd;
use model::{AutodiffKernels, Kernels, Network, SplitModel, class_scores, classification_loss};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::config::OptimizerConfig;
use crate::parallel::{Peer, Plan};
use crate::report;
use crate::run_dir::{CheckpointState, EpochMetrics, RunDir};
use crate::transfer::{self, Features};
use crate::{TrainConfig, TrainError};

/// Held by a fit from its seeding of the backend to its end (see `Trainer::run`).
static BACKEND_RNG: Mutex<()> = Mutex::new(());

/// Live numbers of the epoch so far.
#[derive(Debug, Clone, Copy)]
pub struct BatchProgress {
    pub batch: usize,
    pub loss: f64,
    pub accuracy: f64,
    pub images_per_second: f64,
    pub lr: f64,
}

/// Hooks for showing progress; the library prints nothing itself.
pub trait Observer {
    /// The probe's features of `images` images are being computed…
    fn extracting(&mut self, _images: usize) {}
    /// …and `images` more of them are done.
    fn extracted(&mut self, _images: usize) {}
    fn epoch_started(&mut self, _epoch: usize, _epochs: usize, _batches: usize) {}
    fn batch_finished(&mut self, _progress: &BatchProgress) {}
    fn validating(&mut self, _batches: usize) {}
    fn epoch_finished(&mut self, _metrics: &EpochMetrics, _is_best: bool) {}
}

impl Observer for () {}

/// Two observers, each told everything in turn (progress bars and TensorBoard).
impl<A: Observer, B: Observer> Observer for (A, B) {
    fn extracting(&mut self, images: usize) {
        self.0.extracting(images);
        self.1.extracting(images);
    }
    fn extracted(&mut self, images: usize) {
        self.0.extracted(images);
        self.1.extracted(images);
    }
    fn epoch_started(&mut self, epoch: usize, epochs: usize, batches: usize) {
        self.0.epoch_started(epoch, epochs, batches);
        self.1.epoch_started(epoch, epochs, batches);
    }
    fn batch_finished(&mut self, progress: &BatchProgress) {
        self.0.batch_finished(progress);
        self.1.batch_finished(progress);
    }
    fn validating(&mut self, batches: usize) {
        self.0.validating(batches);
        self.1.validating(batches);
    }
    fn epoch_finished(&mut self, metrics: &EpochMetrics, is_best: bool) {
        self.0.epoch_finished(metrics, is_best);
        self.1.epoch_finished(metrics, is_best);
    }
}

/// An observer that may not be there.
impl<T: Observer> Observer for Option<T> {
    fn extracting(&mut self, images: usize) {
        if let Some(o) = self {
            o.extracting(images);
        }
    }
    fn extracted(&mut self, images: usize) {
        if let Some(o) = self {
            o.extracted(images);
        }
    }
    fn epoch_started(&mut self, epoch: usize, epochs: usize, batches: usize) {
        if let Some(o) = self {
            o.epoch_started(epoch, epochs, batches);
        }
    }
    fn batch_finished(&mut self, progress: &BatchProgress) {
        if let Some(o) = self {
            o.batch_finished(progress);
        }
    }
    fn validating(&mut self, batches: usize) {
        if let Some(o) = self {
            o.validating(batches);
        }
    }
    fn epoch_finished(&mut self, metrics: &EpochMetrics, is_best: bool) {
        if let Some(o) = self {
            o.epoch_finished(metrics, is_best);
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct Summary {
    pub first_epoch: usize,
    pub epochs: usize,
    pub best_epoch: usize,
    pub best_val_acc: f64,
    pub last: Option<EpochMetrics>,
    /// Accuracy of the best model on the source's test set, when it has one.
    pub test_acc: Option<f64>,
    pub seconds: f64,
}

/// Trains (or resumes) the run in `run` on `device`.
pub fn fit<B: AutodiffKernels>(
    config: &TrainConfig,
    train: &ImageSet,
    validation: &ImageSet,
    test: Option<&ImageSet>,
    run: &RunDir,
    resume: bool,
    device: &B::Device,
    observer: &mut dyn Observer,
) -> Result<Summary, TrainError> {
    let sets = Sets {
        train,
        validation,
        test,
    };
    let devices = std::slice::from_ref(device);
    fit_parallel::<B>(
        config,
        sets,
        run,
        resume,
        devices,
        &Plan::single(),
        observer,
    )
}

/// The images a fit reads.
#[derive(Clone, Copy)]
pub struct Sets<'a> {
    pub train: &'a ImageSet,
    pub validation: &'a ImageSet,
    pub test: Option<&'a ImageSet>,
}

/// [`fit`] with a replica of the network on each of `devices`: each step's batch split between
/// them, their gradients averaged, every replica taking the same step. The first replica
/// validates, reports to `observer` and writes the run; the others only train. BatchNorm
/// normalises each replica's share with its own statistics (PyTorch's DDP without
/// SyncBatchNorm), and the running statistics saved are the first replica's.
pub fn fit_parallel<B: AutodiffKernels>(
    config: &TrainConfig,
    sets: Sets,
    run: &RunDir,
    resume: bool,
    devices: &[B::Device],
    plan: &Plan,
    observer: &mut dyn Observer,
) -> Result<Summary, TrainError> {
    assert_eq!(
        devices.len(),
        plan.devices,
        "one device per replica of this node"
    );
    let share = plan.share(config.batch_size)?;
    // burn's random numbers come from one generator per process: two fits at once (a
    // sweep in threads, tests) would draw each other's numbers and neither would repeat.
    let _one_fit_at_a_time = BACKEND_RNG.lock().unwrap_or_else(PoisonError::into_inner);
    B::seed(&devices[0], config.seed);
    let start = Start::<B>::load(config, sets.train, run, resume, plan, &devices[0])?;
    let fingerprint = fingerprint(config, sets.train, start.resumed_from);
    let trainer = |local: usize, start: Start<B>, observer: &mut dyn Observer| {
        let device = &devices[local];
        let peer = Peer::<B::InnerBackend>::join(plan.replica(local), device, plan)?;
        peer.agree(fingerprint, device)?;
        let trainer = Trainer {
            config,
            train: sets.train,
            validation: sets.validation,
            test: sets.test,
            run,
            device,
            observer,
            peer: &peer,
            share,
        };
        trainer.run(start)
    };
    std::thread::scope(|scope| {
        let trainer = &trainer;
        let others: Vec<_> = (1..devices.len())
            .map(|local| {
                let start = start.on(&devices[local]);
                scope.spawn(move || trainer(local, start, &mut ()))
            })
            .collect();
        let led = trainer(0, start, observer);
        for other in others {
            match other.join() {
                Ok(Ok(_)) => {}
                Ok(Err(e)) if led.is_ok() => return Err(e),
                Ok(Err(_)) => {}
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        led
    })
}

/// Where a fit starts: the network (fresh, pretrained or the last checkpoint's), the
/// checkpoint's state, and the epoch whose optimiser state each replica loads.
struct Start<B: AutodiffKernels> {
    model: Network<B>,
    state: CheckpointState,
    resumed_from: Option<usize>,
}

impl<B: AutodiffKernels> Start<B> {
    fn load(
        config: &TrainConfig,
        train: &ImageSet,
        run: &RunDir,
        resume: bool,
        plan: &Plan,
        device: &B::Device,
    ) -> Result<Self, TrainError> {
        let mut state = CheckpointState {
            epoch: 0,
            val_acc: 0.0,
            best_val_acc: f64::NEG_INFINITY,
            best_epoch: 0,
        };
        let mut model = None;
        let mut resumed_from = None;
        if resume {
            if let Some((epoch, _)) = run.last_checkpoint()? {
                state = run.checkpoint_state(epoch)?;
                model = Some(run.load_model(crate::Weights::Epoch(epoch), device)?);
                resumed_from = Some(epoch);
                if plan.writes_run() {
                    run.repair_best(&state)?;
                }
            }
            if plan.writes_run() {
                run.truncate_metrics(state.epoch)?;
            }
        }
        // A fresh run starts from the pretrained weights, if any: a resumed one never reads them
        // (and keeps its checkpoint's parameter ids, which its optimiser state is keyed by).
        let model = match model {
            Some(model) => model,
            None => {
                let spec = config.model_spec(train.class_names.len());
                numbered_parameters(transfer::initial_model::<B>(config, &spec, device)?)
            }
        };
        Ok(Start {
            model,
            state,
            resumed_from,
        })
    }

    /// This start on `device`, the network's parameters copied: replicas share no buffer that
    /// an in-place optimiser step could change under another.
    fn on(&self, device: &B::Device) -> Start<B> {
        Start {
            model: self.model.clone().map(&mut CopyTo { device }),
            state: self.state,
            resumed_from: self.resumed_from,
        }
    }
}

/// What a replica trains, in 8 bytes: the config (but where the data and the pretrained
/// weights are, which may differ between machines), the training images' labels and file
/// names, and the checkpoint it starts from.
fn fingerprint(config: &TrainConfig, train: &ImageSet, resumed_from: Option<usize>) -> [u8; 8] {
    use sha2::{Digest, Sha256};
    let mut config = config.clone();
    config.data.dir = None;
    config.model.finetune.weights = config.model.finetune.weights.map(|_| "".into());
    let mut hasher = Sha256::new();
    hasher.update(toml::to_string(&config).unwrap_or_default());
    hasher.update(train.class_names.join("\n"));
    for sample in &train.samples {
        hasher.update(sample.label.to_le_bytes());
        if let Some(name) = sample.path.as_deref().and_then(|p| p.file_name()) {
            hasher.update(name.as_encoded_bytes());
        }
    }
    hasher.update(resumed_from.unwrap_or(0).to_le_bytes());
    hasher.finalize()[..8].try_into().expect("8 of 32 bytes")
}

/// The network with its parameters numbered in module order. burn draws parameter ids at
/// random, and `GradientsParams::all_reduce` averages parameters in the order of their ids:
/// numbered, replicas made in different processes (nodes) pair the same parameters.
fn numbered_parameters<B: AutodiffKernels>(model: Network<B>) -> Network<B> {
    struct Numbering(u64);
    impl<B: Backend> ModuleMapper<B> for Numbering {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            let (_, tensor, mapper) = param.consume();
            self.0 += 1;
            Param::from_mapped_value(ParamId::from(self.0), tensor, mapper)
        }
    }
    model.map(&mut Numbering(0))
}

/// Copies every parameter to a device, as new buffers.
struct CopyTo<'a, B: Backend> {
    device: &'a B::Device,
}

impl<B: Backend> ModuleMapper<B> for CopyTo<'_, B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let trained = tensor.is_require_grad();
        let copy = Tensor::from_data(tensor.into_data(), self.device).set_require_grad(trained);
        Param::from_mapped_value(id, copy, mapper)
    }
}

struct Trainer<'a, B: AutodiffKernels> {
    config: &'a TrainConfig,
    train: &'a ImageSet,
    validation: &'a ImageSet,
    test: Option<&'a ImageSet>,
    run: &'a RunDir,
    device: &'a B::Device,
    observer: &'a mut dyn Observer,
    peer: &'a Peer<B::InnerBackend>,
    /// Images of each batch this replica trains on.
    share: usize,
}

impl<B: AutodiffKernels> Trainer<'_, B> {
    /// [`Trainer::train`] with the config's optimiser.
    fn run(self, start: Start<B>) -> Result<Summary, TrainError> {
        match self.config.optimizer {
            OptimizerConfig::Sgd {
                momentum,
                nesterov,
                weight_decay,
                ..
            } => {
                // burn's SGD, as one in-place pass per parameter (kernels::optim).
                self.train_with(
                    Sgd::new(momentum, 0.0, nesterov, weight_decay).init(),
                    start,
                )
            }
            OptimizerConfig::Adam { weight_decay, .. } => {
                let decay =
                    (weight_decay > 0.0).then(|| WeightDecayConfig::new(weight_decay as f32));
                self.train_with(AdamConfig::new().with_weight_decay(decay).init(), start)
            }
        }
    }

    fn train_with<O: Optimizer<Network<B>, B>>(
        mut self,
        optimizer: O,
        start: Start<B>,
    ) -> Result<Summary, TrainError> {
        let started = Instant::now();
        let config = self.config;
        let leads = self.peer.replica().leads();
        let Start {
            model,
            mut state,
            resumed_from,
        } = start;
        let mut optimizer = optimizer;
        if let Some(epoch) = resumed_from {
            optimizer = optimizer.load_record(self.run.load_optimizer(epoch, self.device)?);
        }
        let mut model = model;
        let mut features: Option<(Features, Features)> = None;

        let batcher = Batcher {
            image_size: config.data.image_size,
            normalization: config.normalization(),
            augmentation: config.data.augmentation,
            seed: config.seed,
        };
        let first_epoch = state.epoch + 1;
        let mut last = None;
        for epoch in first_epoch..=config.epochs {
            let epoch_start = Instant::now();
            model = transfer::for_epoch(model, config, epoch)?;
            let probing = transfer::probing(config, epoch);
            if probing && features.is_none() {
                features = self.features(&model.valid(), &batcher);
            }
            // Probe epochs train the classifier on features computed once; without room for
            // them, on the frozen network's output of unaugmented images.
            let cached = features.as_ref().filter(|_| probing);
            let batcher = match probing {
                true => Batcher {
                    augmentation: Default::default(),
                    ..batcher
                },
                false => batcher,
            };
            let order = self.epoch_order(epoch);
            let batches = order.len() / config.batch_size;
            self.observer.epoch_started(epoch, config.epochs, batches);
            let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
            let mut lr = 0.0;
            let (sender, receiver) = sync_channel::<Batch>(2);
            // This replica's share of every batch.
            let rank = self.peer.replica().rank;
            let chunks: Vec<&[usize]> = order
                .chunks_exact(config.batch_size)
                .map(|batch| &batch[rank * self.share..(rank + 1) * self.share])
                .collect();
            // The model moves through the epoch: the optimiser updates parameters that nothing
            // else holds in place.
            let trained = std::thread::scope(|scope| -> Result<Network<B>, TrainError> {
                let mut model = model;
                // Decode and augment the next batches while the model trains on this one.
                let train = self.train;
                scope.spawn(move || {
                    for chunk in &chunks {
                        let batch = match cached {
                            Some((rows, _)) => rows.batch(chunk, train),
                            None => {
                                let samples: Vec<_> =
                                    chunk.iter().map(|&i| (i, &train.samples[i])).collect();
                                batcher.batch(&samples, epoch)
                            }
                        };
                        if sender.send(batch).is_err() {
                            return;
                        }
                    }
                });
                // The step's loss and correct count stay on the device until a few steps
                // are read at once: reading them every step would make the host wait for the
                // GPU each time instead of queueing the next step while it works.
                let mut unread = UnreadSteps::default();
                let peer = self.peer;
                let mut read = |unread: &mut UnreadSteps<B::InnerBackend>| {
                    for step in unread.read() {
                        if !step.loss.is_finite() {
                            let kept = match state.epoch {
                                0 => "No checkpoint was written.".to_string(),
                                e => format!("The checkpoint of epoch {e} is intact."),
                            };
                            return Err(TrainError::Diverged {
                                loss: step.loss,
                                epoch,
                                batch: step.index + 1,
                                kept,
                            });
                        }
                        loss_sum += step.loss as f64 * step.images as f64;
                        correct += step.correct;
                        seen += step.images;
                        self.observer.batch_finished(&BatchProgress {
                            batch: step.index + 1,
                            loss: loss_sum / seen as f64,
                            accuracy: correct as f64 / seen as f64,
                            images_per_second: seen as f64 / epoch_start.elapsed().as_secs_f64(),
                            lr: step.lr,
                        });
                    }
                    Ok(())
                };
                for (step, batch) in receiver.iter().enumerate() {
                    let base = config.optimizer.lr();
                    lr = config
                        .schedule
                        .lr(base, epoch - 1, step, batches, config.epochs);
                    // Every schedule scales its base rate: the pretrained layers' follows.
                    let pretrained_lr = config.model.finetune.pretrained_lr.map(|p| p * lr / base);
                    let (images, labels) = batch.to_tensors::<B>(self.device);
                    let outputs = transfer::logits(&model, images, cached.is_some());
                    let loss = classification_loss(outputs.clone(), labels.clone());
                    let correct = correct_count(outputs.inner(), labels.inner());
                    let (loss_value, correct) = whole_batch(peer, loss.clone().inner(), correct)?;
                    let images = batch.labels.len() * self.peer.replica().world;
                    unread.push(step, lr, loss_value, correct, images);
                    let average = |grads| self.peer.average(grads);
                    model = transfer::step(
                        &mut optimizer,
                        model,
                        loss.backward(),
                        lr,
                        pretrained_lr,
                        average,
                    )?;
                    if unread.due() {
                        read(&mut unread)?;
                    }
                }
                read(&mut unread)?;
                Ok(model)
            });
            model = trained?;
            if !leads {
                continue;
            }

            let valid = model.valid();
            self.observer
                .validating(self.validation.len().div_ceil(config.batch_size));
            let validated = match cached {
                Some((_, rows)) => score(self.validation, config.batch_size, |indices| {
                    let (input, _) = rows.batch(indices, self.validation).to_tensors(self.device);
                    transfer::logits(&valid, input, true)
                }),
                None => evaluate(
                    &valid,
                    self.validation,
                    &batcher,
                    config.batch_size,
                    self.device,
                ),
            };
            let (val_loss, val_acc) = (validated.loss, validated.accuracy);
            let is_best = val_acc > state.best_val_acc;
            if is_best {
                state.best_val_acc = val_acc;
                state.best_epoch = epoch;
            }
            state.epoch = epoch;
            state.val_acc = val_acc;
            let metrics = EpochMetrics {
                epoch,
                train_loss: loss_sum / seen.max(1) as f64,
                train_acc: correct as f64 / seen.max(1) as f64,
                val_loss,
                val_acc,
                lr,
                seconds: epoch_start.elapsed().as_secs_f64(),
            };
            // The row first: a run killed before its checkpoint lands has the row dropped on
            // --resume (`truncate_metrics`); the other order would lose the row for good.
            self.run.append_metrics(&metrics)?;
            self.run
                .save_checkpoint(&model, optimizer.to_record(), &state)?;
            if is_best {
                report::write_confusion(self.run, &validated.confusion)?;
            }
            report::write(self.run)?;
            self.observer.epoch_finished(&metrics, is_best);
            last = Some(metrics);
        }

        let test_acc = match self.test {
            Some(test) if state.best_epoch > 0 && leads => {
                let best = self
                    .run
                    .load_model::<B::InnerBackend>(crate::Weights::Best, self.device)?;
                Some(evaluate(&best, test, &batcher, config.batch_size, self.device).accuracy)
            }
            _ => None,
        };
        Ok(Summary {
            first_epoch,
            epochs: config.epochs,
            best_epoch: state.best_epoch,
            best_val_acc: state.best_val_acc,
            last,
            test_acc,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// The classifier's inputs for the training and the held-out images, computed once for the
    /// probe epochs, or `None` when they would take too much memory.
    fn features(
        &mut self,
        model: &Network<B::InnerBackend>,
        batcher: &Batcher,
    ) -> Option<(Features, Features)> {
        let total = self.train.len() + self.validation.len();
        self.observer.extracting(total);
        let mut progress = |images| self.observer.extracted(images);
        let size = self.config.batch_size;
        let train = Features::of(model, self.train, batcher, size, self.device, &mut progress)?;
        let held_out = Features::of(
            model,
            self.validation,
            batcher,
            size,
            self.device,
            &mut progress,
        )?;
        Some((train, held_out))
    }

    /// The order of the training images in `epoch`: a shuffle drawn from (seed, epoch).
    fn epoch_order(&self, epoch: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.train.len()).collect();
        order.shuffle(&mut StdRng::seed_from_u64(
            self.config.seed.wrapping_add(epoch as u64 * 7919),
        ));
        order
    }
}

/// How a model did on a set of images.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Mean loss: cross-entropy, or binary cross-entropy for a binary head.
    pub loss: f64,
    pub accuracy: f64,
    /// `confusion[true][predicted]`: image counts.
    pub confusion: Vec<Vec<usize>>,
}

/// Loss, accuracy and confusion matrix of `model` on `set`, without augmentation. An empty
/// set gives NaN loss and accuracy.
pub fn evaluate<B: Kernels>(
    model: &Network<B>,
    set: &ImageSet,
    batcher: &Batcher,
    batch_size: usize,
    device: &B::Device,
) -> Evaluation {
    let batcher = Batcher {
        augmentation: Default::default(),
        ..*batcher
    };
    score(set, batch_size, |indices| {
        let samples: Vec<_> = indices.iter().map(|&i| (i, &set.samples[i])).collect();
        let (images, _) = batcher.batch(&samples, 0).to_tensors::<B>(device);
        model.forward(images)
    })
}

/// Loss, accuracy and confusion matrix of the outputs `outputs` gives for each chunk of
/// `batch_size` indices into `set`.
fn score<B: Kernels>(
    set: &ImageSet,
    batch_size: usize,
    mut outputs: impl FnMut(&[usize]) -> Tensor<B, 2>,
) -> Evaluation {
    let classes = set.class_names.len();
    let mut confusion = vec![vec![0usize; classes]; classes];
    // Losses and predictions stay on the device until the end: one transfer, not two a batch.
    let (mut losses, mut predictions, mut sizes) = (Vec::new(), Vec::new(), Vec::new());
    let indices: Vec<usize> = (0..set.len()).collect();
    for chunk in indices.chunks(batch_size.max(1)) {
        let logits = outputs(chunk);
        let device = logits.device();
        let labels: Vec<i64> = chunk.iter().map(|&i| set.samples[i].label as i64).collect();
        let labels = Tensor::from_data(TensorData::new(labels, [chunk.len()]), &device);
        losses.push(classification_loss(logits.clone(), labels).reshape([1]));
        predictions.push(class_scores(logits).argmax(1).flatten::<1>(0, 1));
        sizes.push(chunk.len());
    }
    let mut loss_sum = 0.0f64;
    if !losses.is_empty() {
        let data = Transaction::default()
            .register(Tensor::cat(losses, 0))
            .register(Tensor::cat(predictions, 0))
            .execute();
        let batch_losses = data[0].iter::<f32>();
        loss_sum = batch_losses
            .zip(&sizes)
            .map(|(loss, &size)| loss as f64 * size as f64)
            .sum();
        let predicted = data[1].iter::<i64>().map(|p| p as usize);
        for (sample, predicted) in set.samples.iter().zip(predicted) {
            confusion[sample.label][predicted] += 1;
        }
    }
    let correct: usize = (0..classes).map(|c| confusion[c][c]).sum();
    let n = set.len() as f64;
    Evaluation {
        loss: loss_sum / n,
        accuracy: correct as f64 / n,
        confusion,
    }
}

/// The whole batch's mean loss and correct count from one replica's `loss` and `correct`: the
/// replicas' shares are equal, so the mean of their means.
fn whole_batch<B: Backend>(
    peer: &Peer<B>,
    loss: Tensor<B, 1>,
    correct: Tensor<B, 1, Int>,
) -> Result<(Tensor<B, 1>, Tensor<B, 1, Int>), TrainError> {
    let world = peer.replica().world;
    if world == 1 {
        return Ok((loss, correct));
    }
    let both = Tensor::cat(vec![loss.reshape([1]), correct.float().reshape([1])], 0);
    let summed = peer.sum(both)?;
    let loss = summed.clone().narrow(0, 0, 1) / world as f32;
    Ok((loss, summed.narrow(0, 1, 1).int()))
}

/// How many rows of `outputs` predict their label, as a one-element tensor.
fn correct_count<B: Backend>(
    outputs: Tensor<B, 2>,
    labels: Tensor<B, 1, Int>,
) -> Tensor<B, 1, Int> {
    let predicted = class_scores(outputs).argmax(1).flatten::<1>(0, 1);
    predicted.equal(labels).int().sum()
}

/// One training step's numbers, read back.
struct StepNumbers {
    index: usize,
    lr: f64,
    loss: f32,
    correct: usize,
    images: usize,
}

/// The numbers of the steps since the last read, still on the device.
struct UnreadSteps<B: Backend> {
    steps: Vec<(usize, f64, usize)>,
    losses: Vec<Tensor<B, 1>>,
    correct: Vec<Tensor<B, 1, Int>>,
    since: Instant,
}

impl<B: Backend> Default for UnreadSteps<B> {
    fn default() -> Self {
        Self {
            steps: Vec::new(),
            losses: Vec::new(),
            correct: Vec::new(),
            since: Instant::now(),
        }
    }
}

impl<B: Backend> UnreadSteps<B> {
    /// At most this many steps go unread…
    const MAX_STEPS: usize = 16;
    /// …and none for longer than this, so that progress stays live on a slow device.
    const MAX_SECONDS: f64 = 0.25;

    fn push(
        &mut self,
        index: usize,
        lr: f64,
        loss: Tensor<B, 1>,
        correct: Tensor<B, 1, Int>,
        images: usize,
    ) {
        self.steps.push((index, lr, images));
        self.losses.push(loss.reshape([1]));
        self.correct.push(correct.reshape([1]));
    }

    fn due(&self) -> bool {
        self.steps.len() >= Self::MAX_STEPS
            || self.since.elapsed().as_secs_f64() >= Self::MAX_SECONDS
    }

    /// The unread steps' numbers, in order, in one transfer from the device.
    fn read(&mut self) -> Vec<StepNumbers> {
        self.since = Instant::now();
        if self.steps.is_empty() {
            return Vec::new();
        }
        let data = Transaction::default()
            .register(Tensor::cat(std::mem::take(&mut self.losses), 0))
            .register(Tensor::cat(std::mem::take(&mut self.correct), 0))
            .execute();
        let losses = data[0].iter::<f32>();
        let correct = data[1].iter::<i64>();
        std::mem::take(&mut self.steps)
            .into_iter()
            .zip(losses.zip(correct))
            .map(|((index, lr, images), (loss, correct))| StepNumbers {
                index,
                lr,
                loss,
                correct: correct as usize,
                images,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use data::Sample;

    use super::*;

    fn images(names: &[&str]) -> ImageSet {
        let samples = names
            .iter()
            .enumerate()
            .map(|(i, name)| Sample {
                pixels: vec![0; 3],
                label: i % 2,
                path: Some(PathBuf::from("/data/a").join(name)),
                objects: Vec::new(),
            })
            .collect();
        ImageSet {
            samples,
            class_names: vec!["a".into(), "b".into()],
            image_size: [1, 1],
        }
    }

    #[test]
    fn fingerprints_tell_what_is_trained_not_where_it_lies() {
        let config = TrainConfig::load("cifar").unwrap().0;
        let set = images(&["x.jpg", "y.jpg"]);
        let print = fingerprint(&config, &set, None);
        let mut moved = config.clone();
        moved.data.dir = Some("/elsewhere".into());
        let mut elsewhere = set.clone();
        for sample in &mut elsewhere.samples {
            let name = sample
                .path
                .as_ref()
                .unwrap()
                .file_name()
                .unwrap()
                .to_owned();
            sample.path = Some(PathBuf::from("/mnt/b").join(name));
        }
        assert_eq!(fingerprint(&moved, &elsewhere, None), print);

        let mut reseeded = config.clone();
        reseeded.seed += 1;
        assert_ne!(fingerprint(&reseeded, &set, None), print);
        assert_ne!(
            fingerprint(&config, &images(&["x.jpg", "z.jpg"]), None),
            print
        );
        assert_ne!(fingerprint(&config, &set, Some(3)), print);
    }
}
