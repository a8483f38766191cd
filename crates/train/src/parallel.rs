//! Data parallelism on one machine: every device a replica of the network, each step's batch
//! split between them, their gradients averaged before every replica takes the same optimiser
//! step. The averaging is burn 0.21's `burn-collective` (`register`,
//! `GradientsParams::all_reduce`, `finish_collective`), one thread per device. This is the one
//! module that talks to it, so that moving to burn's later `DistributedBackend` is one change.
//!
//! Why not burn-train's DDP: it drives burn-train's `Learner`, not this workspace's loop
//! (checkpoints that resume bit for bit, fine-tuning's probe epochs and two learning rates).
//!
//! Several nodes are not here yet: burn-collective 0.21's global all-reduce, between two
//! processes on 127.0.0.1, stalled at the second operation of the first step (with its ring and
//! its centralised strategies alike), each node waiting for a tensor the other had exposed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use burn::collective::{self, CollectiveConfig, PeerId, ReduceOperation};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::TensorPrimitive;

use crate::TrainError;

/// How the training is spread over this machine's devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Replicas, one per device.
    pub devices: usize,
    /// How long a replica waits for the others at one step before the run stops (a replica
    /// that died would leave the others waiting in the collective, which has no deadline).
    pub peer_timeout: Duration,
}

impl Plan {
    /// One device, no peers.
    pub fn single() -> Plan {
        Plan::replicas(1)
    }

    /// `devices` replicas.
    pub fn replicas(devices: usize) -> Plan {
        Plan {
            devices,
            peer_timeout: Duration::from_secs(30 * 60),
        }
    }

    /// The replica of the `local`-th device.
    pub fn replica(&self, local: usize) -> Replica {
        Replica {
            rank: local,
            world: self.devices,
        }
    }

    /// Images each replica takes of a batch of `batch_size`, or why the batch cannot be split.
    pub fn share(&self, batch_size: usize) -> Result<usize, TrainError> {
        let world = self.devices;
        if !batch_size.is_multiple_of(world) {
            return Err(TrainError::Parallel(format!(
                "a batch of {batch_size} images does not split evenly between {world} replicas: \
                 choose a --batch-size that {world} divides"
            )));
        }
        Ok(batch_size / world)
    }
}

/// One replica: its rank among `world`. Rank 0 leads: it validates and writes the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replica {
    pub rank: usize,
    pub world: usize,
}

impl Replica {
    pub fn leads(self) -> bool {
        self.rank == 0
    }

    fn peer(self) -> PeerId {
        PeerId::from(self.rank)
    }
}

/// A replica registered with its peers for the life of a fit; `Drop` leaves the collective.
pub struct Peer<B: Backend> {
    replica: Replica,
    last_progress: Arc<AtomicU64>,
    _backend: std::marker::PhantomData<B>,
}

impl<B: Backend> Peer<B> {
    /// Registers the replica (alone: nothing to register) and starts its watchdog.
    pub fn join(replica: Replica, device: &B::Device, plan: &Plan) -> Result<Self, TrainError> {
        let last_progress = Arc::new(AtomicU64::new(FINISHED));
        if replica.world > 1 {
            let config = CollectiveConfig::default().with_num_devices(plan.devices);
            collective::register::<B>(replica.peer(), device.clone(), config)
                .map_err(|e| TrainError::Parallel(format!("joining the other replicas: {e:?}")))?;
            watch(Arc::clone(&last_progress), plan.peer_timeout);
        }
        Ok(Peer {
            replica,
            last_progress,
            _backend: std::marker::PhantomData,
        })
    }

    pub fn replica(&self) -> Replica {
        self.replica
    }

    /// The mean of every replica's gradients, in each replica.
    pub fn average(&self, grads: GradientsParams) -> Result<GradientsParams, TrainError> {
        if self.replica.world == 1 {
            return Ok(grads);
        }
        let averaged = grads
            .all_reduce::<B>(self.replica.peer(), ReduceOperation::Mean)
            .map_err(|e| TrainError::Parallel(format!("averaging the gradients: {e:?}")));
        self.progressed();
        averaged
    }

    /// The sum over the replicas of `values`.
    pub fn sum(&self, values: Tensor<B, 1>) -> Result<Tensor<B, 1>, TrainError> {
        if self.replica.world == 1 {
            return Ok(values);
        }
        let summed = collective::all_reduce::<B>(
            self.replica.peer(),
            values.into_primitive().tensor(),
            ReduceOperation::Sum,
        )
        .map_err(|e| TrainError::Parallel(format!("adding the replicas' numbers: {e:?}")))?;
        self.progressed();
        Ok(Tensor::from_primitive(TensorPrimitive::Float(summed)))
    }

    fn progressed(&self) {
        let now = started().elapsed().as_millis() as u64;
        self.last_progress.store(now, Ordering::Relaxed);
    }
}

/// What `last_progress` holds when no watchdog is to act: before the first step is possible,
/// and once the fit is over.
const FINISHED: u64 = u64::MAX;

impl<B: Backend> Drop for Peer<B> {
    fn drop(&mut self) {
        self.last_progress.store(FINISHED, Ordering::Relaxed);
        if self.replica.world > 1 {
            let _ = collective::finish_collective::<B>(self.replica.peer());
        }
    }
}

/// The process's start, the watchdog's clock.
fn started() -> Instant {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *START.get_or_init(Instant::now)
}

/// Ends the process when no step has gone through for `timeout`: a replica that panicked
/// leaves the others waiting in the collective for good. Checkpoints are written whole before
/// they count, so the last one stays intact for `--resume`.
fn watch(last_progress: Arc<AtomicU64>, timeout: Duration) {
    last_progress.store(started().elapsed().as_millis() as u64, Ordering::Relaxed);
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(200));
            let last = last_progress.load(Ordering::Relaxed);
            if last == FINISHED {
                return;
            }
            let waited = started()
                .elapsed()
                .saturating_sub(Duration::from_millis(last));
            if waited > timeout {
                eprintln!(
                    "error: no training step went through for {} s: a replica stopped. The last \
                     checkpoint is intact; --resume continues from it",
                    timeout.as_secs()
                );
                std::process::exit(2);
            }
        }
    });
}
