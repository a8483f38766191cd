//! Data parallelism: every device a replica of the network, each step's batch split between
//! them, their gradients averaged before every replica takes the same optimiser step. On one
//! machine, one thread per device; across machines, one process per node, each with its
//! devices. The averaging is burn 0.21's `burn-collective` (`register`,
//! `GradientsParams::all_reduce`, `finish_collective`, and its orchestrator, which node 0
//! serves for the others to register with). This is the one module that talks to it, so that
//! moving to burn's later `DistributedBackend` is one change.
//!
//! Why not burn-train's DDP: it drives burn-train's `Learner`, not this workspace's loop
//! (checkpoints that resume bit for bit, fine-tuning's probe epochs and two learning rates),
//! and it needs NCCL, so it could neither run nor be tested on a CPU.
//!
//! Between nodes, burn-collective 0.21 as published stalls at its second all-reduce; the
//! workspace builds a copy with that fixed (crates/patched).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use burn::collective::{self, AllReduceStrategy, CollectiveConfig, PeerId, ReduceOperation};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::TensorPrimitive;

use crate::TrainError;

/// How the training is spread over this machine's devices, and over the nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Replicas on this node, one per device.
    pub devices: usize,
    /// The other machines, when there are any.
    pub cluster: Option<Cluster>,
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
            cluster: None,
            peer_timeout: Duration::from_secs(30 * 60),
        }
    }

    /// This plan's replicas on every node of `cluster`.
    pub fn across(self, cluster: Cluster) -> Plan {
        Plan {
            cluster: Some(cluster),
            ..self
        }
    }

    /// Replicas on all nodes.
    pub fn world(&self) -> usize {
        self.devices * self.cluster.as_ref().map_or(1, |c| c.nodes)
    }

    /// Whether this process writes the run folder: node 0 does, the other nodes only train.
    pub fn writes_run(&self) -> bool {
        self.cluster.as_ref().is_none_or(|c| c.rank == 0)
    }

    /// The replica of this node's `local`-th device.
    pub fn replica(&self, local: usize) -> Replica {
        let node = self.cluster.as_ref().map_or(0, |c| c.rank);
        Replica {
            rank: node * self.devices + local,
            world: self.world(),
        }
    }

    /// Images each replica takes of a batch of `batch_size`, or why the batch cannot be split.
    pub fn share(&self, batch_size: usize) -> Result<usize, TrainError> {
        let world = self.world();
        if !batch_size.is_multiple_of(world) {
            return Err(TrainError::Parallel(format!(
                "a batch of {batch_size} images does not split evenly between {world} replicas: \
                 choose a --batch-size that {world} divides"
            )));
        }
        Ok(batch_size / world)
    }
}

/// Several machines training one run: this process is node `rank` of `nodes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    pub nodes: usize,
    pub rank: usize,
    /// Where node 0 serves the coordinator that every node registers with.
    pub coordinator: WsAddress,
    /// Where this node serves its gradients to the other nodes.
    pub address: WsAddress,
}

impl Cluster {
    /// Node `rank` of `nodes`, its own address given or, by default, the coordinator's port
    /// plus 1 + `rank` on this machine: the coordinator's host when that is this machine
    /// (a loopback address), the machine's host name otherwise.
    pub fn new(
        nodes: usize,
        rank: usize,
        coordinator: WsAddress,
        address: Option<WsAddress>,
    ) -> Result<Cluster, TrainError> {
        if nodes < 2 || rank >= nodes {
            return Err(TrainError::Parallel(format!(
                "--node-rank {rank} with --nodes {nodes}: a cluster has at least 2 nodes, \
                 ranked 0 to {}",
                nodes.max(2) - 1
            )));
        }
        let address = match address {
            Some(address) => address,
            None => WsAddress {
                host: match coordinator.is_loopback() {
                    true => coordinator.host.clone(),
                    false => host_name()?,
                },
                port: coordinator
                    .port
                    .checked_add(1 + rank as u16)
                    .ok_or_else(|| TrainError::Parallel("the coordinator's port is too high to number the nodes' ports after it: give --node-address".into()))?,
            },
        };
        Ok(Cluster {
            nodes,
            rank,
            coordinator,
            address,
        })
    }

    /// On node 0: serves the coordinator in the background for the life of the process.
    pub fn serve_coordinator(&self) -> Result<(), TrainError> {
        let port = self.coordinator.port;
        port_is_free(port, "the coordinator (--coordinator)")?;
        quiet_network_layer();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("a runtime for the coordinator");
            runtime.block_on(collective::start_global_orchestrator(port));
            // It returns when the process is interrupted (SIGINT, SIGTERM), whose handlers it
            // takes over: the process has to end here, or it would not end at all.
            eprintln!(
                "error: interrupted. The last checkpoint is intact; --resume on every node \
                 continues from it"
            );
            std::process::exit(130);
        });
        Ok(())
    }

    /// `config` with this node's place among the others.
    fn configure(&self, config: CollectiveConfig) -> CollectiveConfig {
        let address = |a: &WsAddress| a.to_string().parse().expect("a ws:// address");
        config
            .with_num_nodes(self.nodes as u32)
            .with_global_address(address(&self.coordinator))
            .with_node_address(address(&self.address))
            .with_data_service_port(self.address.port)
            // Each node's sum goes to node 0 and back: of burn-collective's global strategies,
            // the one with the fewest connections per all-reduce for the few large tensors
            // of a step.
            .with_global_all_reduce_strategy(AllReduceStrategy::Centralized)
    }
}

/// A `ws://HOST:PORT` address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsAddress {
    pub host: String,
    pub port: u16,
}

impl WsAddress {
    fn is_loopback(&self) -> bool {
        self.host == "localhost"
            || self
                .host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

impl FromStr for WsAddress {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wrong = || format!("`{s}` is not a ws://HOST:PORT address (e.g. ws://10.0.0.1:29500)");
        let rest = s.strip_prefix("ws://").ok_or_else(wrong)?;
        let (host, port) = rest.rsplit_once(':').ok_or_else(wrong)?;
        let port = port.parse().map_err(|_| wrong())?;
        if host.is_empty() || host.contains('/') {
            return Err(wrong());
        }
        Ok(WsAddress {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for WsAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ws://{}:{}", self.host, self.port)
    }
}

/// This machine's host name, which the other nodes reach it by on a cluster.
fn host_name() -> Result<String, TrainError> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::env::var("HOSTNAME"))
        .map(|name| name.trim().to_string())
        .unwrap_or_default();
    match name.is_empty() {
        true => Err(TrainError::Parallel(
            "this machine's host name is unknown: give --node-address ws://HOST:PORT".into(),
        )),
        false => Ok(name),
    }
}

/// Refuses a port another program holds, before the collective's server would fail to bind
/// it in the background and leave the other nodes waiting.
fn port_is_free(port: u16, what: &str) -> Result<(), TrainError> {
    std::net::TcpListener::bind(("0.0.0.0", port))
        .map(drop)
        .map_err(|e| {
            TrainError::Parallel(format!(
                "port {port}, for {what}, cannot be opened ({e}): choose another"
            ))
        })
}

/// Keeps burn's network layer from printing its own log to stdout (it installs a logger for
/// the whole process the first time it serves, unless one is already there), and turns the
/// panics of its connections, which a node that stopped causes, into one line each.
fn quiet_network_layer() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ =
            tracing::subscriber::set_global_default(tracing::subscriber::NoSubscriber::default());
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let network = std::thread::current()
                .name()
                .is_some_and(|name| name.starts_with("tokio-"));
            match network {
                true => eprintln!("warning: a connection between the nodes failed: {info}"),
                false => report(info),
            }
        }));
    });
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
    /// Registers the replica (alone: nothing to register) and starts its watchdog, which
    /// also bounds the wait for the other nodes to come up.
    pub fn join(replica: Replica, device: &B::Device, plan: &Plan) -> Result<Self, TrainError> {
        let last_progress = Arc::new(AtomicU64::new(FINISHED));
        if replica.world > 1 {
            let mut config = CollectiveConfig::default().with_num_devices(plan.devices);
            if let Some(cluster) = &plan.cluster {
                quiet_network_layer();
                if replica.rank.is_multiple_of(plan.devices) {
                    port_is_free(cluster.address.port, "this node (--node-address)")?;
                }
                config = cluster.configure(config);
            }
            watch(Arc::clone(&last_progress), plan.peer_timeout);
            collective::register::<B>(replica.peer(), device.clone(), config)
                .map_err(|e| TrainError::Parallel(format!("joining the other replicas: {e:?}")))?;
        }
        Ok(Peer {
            replica,
            last_progress,
            _backend: std::marker::PhantomData,
        })
    }

    /// Refuses to go on unless every replica has the same `fingerprint` of what it trains (the
    /// config, the data, the checkpoint it starts from): nodes that disagree would average
    /// gradients of different things.
    pub fn agree(&self, fingerprint: [u8; 8], device: &B::Device) -> Result<(), TrainError> {
        if self.replica.world == 1 {
            return Ok(());
        }
        // 16-bit pieces: their sum over any plausible number of replicas is exact in f32.
        let pieces: Vec<f32> = fingerprint
            .chunks(2)
            .map(|p| u16::from_le_bytes([p[0], p[1]]) as f32)
            .collect();
        let mine = Tensor::<B, 1>::from_floats(pieces.as_slice(), device);
        let summed = self
            .sum(mine)?
            .into_data()
            .to_vec::<f32>()
            .unwrap_or_default();
        let world = self.replica.world as f32;
        if summed
            .iter()
            .zip(&pieces)
            .any(|(sum, piece)| *sum != piece * world)
        {
            return Err(TrainError::Parallel(
                "the nodes disagree on what they train: every node needs the same config \
                 and options, the same data set and, with --resume, the same run folder"
                    .into(),
            ));
        }
        Ok(())
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
                    "error: no training step went through for {} s (--peer-timeout): a replica \
                     or a node stopped. The last checkpoint is intact; --resume (on every node) \
                     continues from it",
                    timeout.as_secs()
                );
                std::process::exit(2);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(s: &str) -> WsAddress {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_are_ws_host_port() {
        assert_eq!(
            address("ws://10.0.0.1:29500"),
            WsAddress {
                host: "10.0.0.1".into(),
                port: 29500
            }
        );
        assert_eq!(address("ws://node0:1").to_string(), "ws://node0:1");
        for wrong in [
            "node0:29500",
            "http://node0:1",
            "ws://node0",
            "ws://:1",
            "ws://a:x",
        ] {
            let error = wrong.parse::<WsAddress>().unwrap_err();
            assert!(error.contains("ws://HOST:PORT"), "{wrong}: {error}");
        }
    }

    #[test]
    fn a_node_serves_after_the_coordinator_on_its_host_by_default() {
        let cluster = Cluster::new(3, 2, address("ws://127.0.0.1:29500"), None).unwrap();
        assert_eq!(cluster.address, address("ws://127.0.0.1:29503"));
        let given = Some(address("ws://n2:4000"));
        let cluster = Cluster::new(3, 2, address("ws://n0:29500"), given).unwrap();
        assert_eq!(cluster.address, address("ws://n2:4000"));
        assert!(Cluster::new(2, 2, address("ws://n0:1"), None).is_err());
        assert!(Cluster::new(1, 0, address("ws://n0:1"), None).is_err());
    }

    #[test]
    fn replicas_are_ranked_node_by_node() {
        let cluster = Cluster::new(3, 1, address("ws://127.0.0.1:29500"), None).unwrap();
        let plan = Plan::replicas(2).across(cluster);
        assert_eq!(plan.world(), 6);
        assert_eq!(plan.replica(0), Replica { rank: 2, world: 6 });
        assert_eq!(plan.replica(1), Replica { rank: 3, world: 6 });
        assert!(!plan.replica(0).leads() && !plan.writes_run());
        assert_eq!(plan.share(24).unwrap(), 4);
        assert!(plan.share(16).is_err());
        assert!(Plan::replicas(2).writes_run());
    }
}
