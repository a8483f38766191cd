//! A network read from an ONNX file ([`onnx::Graph`]) run on burn tensors: the operators of
//! [`ops`], in the graph's order, one image at a time (exports fix the batch to 1 as often as
//! not, and the shape arithmetic computed at load then holds for every image).
//!
//! As a [`SplitModel`] its layers are the nodes whose output is a map `[C, H, W]` or tokens
//! `[N, C]`. Where the graph still needs other values after that node (a transformer block's
//! input beside its first norm), they are packed beside the output along the channels, as
//! [`crate::VisionTransformer`] packs its `ln_1` layers.

mod batch;
mod finetune;
mod ops;
mod plan;
mod value;

use std::path::Path;
use std::sync::Arc;

use burn::module::Param;
use burn::prelude::*;
use kernels::Kernels;
use onnx::Values;

use crate::{InputShape, PlainRelu, Rectifier, SplitModel};
use plan::Source;
pub use plan::{Layer, Plan};
use value::Value;

/// An image network from an ONNX file.
#[derive(Module, Debug)]
pub struct OnnxNetwork<B: Backend> {
    /// Every float constant of the graph, flattened (`Plan::weights` maps them).
    weights: Vec<Param<Tensor<B, 1>>>,
    #[module(skip)]
    plan: Arc<Plan>,
    /// The fixed values for each batch size tried (`None`: that batch runs image by image).
    #[module(skip)]
    batches: batch::Batches,
}

/// Why a graph cannot run.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    #[error(transparent)]
    Load(#[from] onnx::Error),
    #[error("{file}: {reason}")]
    Run { file: String, reason: String },
}

type Env<B> = Vec<Option<Value<B>>>;
/// The values of the fixed nodes (shape arithmetic) for one batch size, by slot.
type Fixed = Vec<Option<(Vec<f32>, Vec<usize>)>>;

impl<B: Kernels> OnnxNetwork<B> {
    /// Reads `file` and runs it once on a blank image of `size` (or the size its input fixes),
    /// which checks every operator and computes the shape arithmetic.
    pub fn load(
        file: &Path,
        size: Option<[usize; 2]>,
        device: &B::Device,
    ) -> Result<Self, OnnxError> {
        let graph = onnx::load(file)?;
        let (channels, size) =
            input_size(&graph.input_dims, size).map_err(|reason| OnnxError::Run {
                file: file.display().to_string(),
                reason,
            })?;
        Self::from_graph(graph, &file.display().to_string(), channels, size, device)
    }

    /// `graph` (read from `file`) set up for `channels`×`size` images: its float constants
    /// become the parameters, and one run on a blank image settles the plan.
    fn from_graph(
        graph: onnx::Graph,
        file: &str,
        channels: usize,
        size: [usize; 2],
        device: &B::Device,
    ) -> Result<Self, OnnxError> {
        let run_error = |reason: String| OnnxError::Run {
            file: file.to_string(),
            reason,
        };
        let weights: Vec<Param<Tensor<B, 1>>> = graph
            .constants
            .iter()
            .filter_map(|c| match &c.values {
                Values::F32(v) => Some(Param::from_tensor(Tensor::<B, 1>::from_data(
                    TensorData::new(v.clone(), [v.len()]),
                    device,
                ))),
                Values::Int(_) => None,
            })
            .collect();
        let mut plan = Plan::wire(graph, file, channels, size);
        let [h, w] = size;
        let blank = Tensor::zeros([1, channels, h, w], device);
        let (dims, fixed, _) = settle_run(&plan, &weights, blank, device).map_err(run_error)?;
        plan.settle(dims, fixed).map_err(run_error)?;
        Ok(OnnxNetwork {
            weights,
            plan: Arc::new(plan),
            batches: Default::default(),
        })
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// How many numbers the graph outputs per image (its classes).
    pub fn outputs(&self) -> usize {
        let plan = self.plan();
        plan.dims[plan.output_slot].iter().product::<usize>()
    }

    /// The layers `--list-layers` prints.
    pub fn layers(&self) -> &[Layer] {
        &self.plan().layers
    }
}

/// Channels and `[height, width]` of the input: the graph's where it fixes them, else `size`.
fn input_size(
    dims: &[Option<usize>],
    size: Option<[usize; 2]>,
) -> Result<(usize, [usize; 2]), String> {
    let [_, channels, h, w] = dims else {
        return Err(format!(
            "the input has {} dims; an image network takes [batch, channels, height, width]",
            dims.len()
        ));
    };
    let channels = channels.unwrap_or(3);
    let size = match (h, w, size) {
        (Some(h), Some(w), Some(s)) if s != [*h, *w] => {
            return Err(format!(
                "the graph takes {h}×{w} images, not {}×{}",
                s[0], s[1]
            ));
        }
        (Some(h), Some(w), _) => [*h, *w],
        (_, _, Some(s)) => s,
        _ => return Err("the graph does not fix its input size: pass --input-size H,W".into()),
    };
    // 4096×4096 RGB: far above what classifiers take, far below what would exhaust memory.
    const MAX_INPUT_VALUES: usize = 3 << 24;
    let values = [channels, size[0], size[1]]
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d));
    if !values.is_some_and(|n| n > 0 && n <= MAX_INPUT_VALUES) {
        return Err(format!(
            "an input of {channels}×{}×{} is not an image this reads (at most {MAX_INPUT_VALUES} values)",
            size[0], size[1]
        ));
    }
    Ok((channels, size))
}

/// Runs every node on `images`, fixed nodes included; returns each slot's dims, the fixed
/// nodes' values and the graph's output. An operator that fails says which node it was.
#[allow(clippy::type_complexity)]
fn settle_run<B: Kernels>(
    plan: &Plan,
    weights: &[Param<Tensor<B, 1>>],
    images: Tensor<B, 4>,
    device: &B::Device,
) -> Result<(Vec<Vec<usize>>, Fixed, Value<B>), String> {
    let mut env: Env<B> = vec![None; plan.slots];
    let mut dims = vec![Vec::new(); plan.slots];
    dims[plan.input_slot] = images.dims().to_vec();
    let [_, _, h, w] = images.dims();
    env[plan.input_slot] = Some(Value::new(images));
    let mut fixed = vec![None; plan.slots];
    for n in 0..plan.graph.nodes.len() {
        let outs = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_node(plan, &plan.fixed, weights, &env, n, &PlainRelu, device)
        }))
        .map_err(|panic| {
            let text = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
            format!("a panic ({})", text.unwrap_or_default())
        })
        .and_then(|r| r)
        .map_err(|e| {
            let node = &plan.graph.nodes[n];
            format!(
                "node {} ({}) fails on a {h}×{w} image: {e}",
                node.original.as_deref().unwrap_or(&node.name),
                node.op.name()
            )
        })?;
        for (&slot, value) in plan.outputs[n].iter().zip(outs) {
            dims[slot] = value.dims();
            if plan.fixed_node[n] {
                let data = value.tensor.clone().into_data().convert::<f32>();
                fixed[slot] = Some((
                    data.to_vec::<f32>().map_err(|e| format!("{e:?}"))?,
                    value.dims(),
                ));
            }
            env[slot] = Some(value);
        }
    }
    let output = env[plan.output_slot]
        .take()
        .ok_or("the graph's output was not computed")?;
    Ok((dims, fixed, output))
}

/// Node `n`'s outputs from `env` (fixed values, weights and integer constants filled in).
fn run_node<B: Kernels, R: Rectifier<B>>(
    plan: &Plan,
    fixed: &Fixed,
    weights: &[Param<Tensor<B, 1>>],
    env: &Env<B>,
    n: usize,
    relu: &R,
    device: &B::Device,
) -> Result<Vec<Value<B>>, String> {
    let inputs = plan.inputs[n]
        .iter()
        .map(|source| {
            source
                .map(|s| match s {
                    Source::Slot(slot) => match (&env[slot], &fixed[slot]) {
                        (Some(v), _) => Ok(v.clone()),
                        (None, Some((values, dims))) => {
                            Ok(Value::from_vec(values.clone(), dims, device))
                        }
                        (None, None) => Err(format!("value {slot} was not computed")),
                    },
                    Source::Weight(w) => {
                        Ok(Value::new(weights[w].val()).reshape(&plan.weight_dims[w]))
                    }
                    Source::Int(i) => {
                        let (values, dims) = &plan.ints[i];
                        Ok(Value::from_vec(values.clone(), dims, device))
                    }
                })
                .transpose()
        })
        .collect::<Result<Vec<_>, String>>()?;
    let outputs = plan.outputs[n].len();
    ops::apply(&plan.graph.nodes[n].op, inputs, outputs, relu, device)
}

impl<B: Kernels> OnnxNetwork<B> {
    /// Runs nodes `from..to` on one image's `env`, freeing values nothing later reads.
    fn run<R: Rectifier<B>>(
        &self,
        fixed: &Fixed,
        env: &mut Env<B>,
        from: usize,
        to: usize,
        relu: &R,
        device: &B::Device,
    ) {
        let plan = self.plan();
        for n in from..to {
            if plan.fixed_node[n] {
                continue;
            }
            let outs =
                run_node(plan, fixed, &self.weights, env, n, relu, device).unwrap_or_else(|e| {
                    panic!(
                        "ONNX node {} ({}): {e}",
                        plan.graph.nodes[n].name,
                        plan.graph.nodes[n].op.name()
                    )
                });
            for (&slot, value) in plan.outputs[n].iter().zip(outs) {
                env[slot] = Some(value);
            }
            for s in plan.inputs[n].iter().flatten() {
                if let Source::Slot(s) = s
                    && plan.last_use[*s] == n
                {
                    env[*s] = None;
                }
            }
        }
    }

    /// The live values after `layer`, packed as `[1, channels × live, h, w]` (tokens as
    /// `[1, C × live, 1, N]`).
    fn pack(&self, layer: &Layer, env: &mut Env<B>) -> Tensor<B, 4> {
        let parts = layer
            .live
            .iter()
            .map(|&s| {
                let v = env[s].take().expect("a live value");
                if layer.tokens() {
                    v.to::<3>().swap_dims(1, 2).unsqueeze_dim(2)
                } else {
                    v.to::<4>()
                }
            })
            .collect();
        Tensor::cat(parts, 1)
    }

    fn unpack(&self, layer: &Layer, packed: Tensor<B, 4>) -> Env<B> {
        let plan = self.plan();
        let mut env: Env<B> = vec![None; plan.slots];
        let c = layer.channels();
        for (k, &s) in layer.live.iter().enumerate() {
            let part = packed.clone().narrow(1, k * c, c);
            let v = if layer.tokens() {
                Value::new(part.squeeze_dim::<3>(2).swap_dims(1, 2))
            } else {
                Value::new(part)
            };
            env[s] = Some(v);
        }
        env
    }

    /// The graph's output for `rows` images, as `[rows, classes]`.
    fn output(&self, env: &mut Env<B>, rows: usize) -> Tensor<B, 2> {
        let v = env[self.plan().output_slot]
            .take()
            .expect("the graph's output");
        let total = v.dims().iter().product::<usize>();
        v.reshape(&[rows, total / rows]).to::<2>()
    }
}

impl<B: Kernels> SplitModel<B> for OnnxNetwork<B> {
    fn architecture(&self) -> &'static str {
        "onnx"
    }

    fn input_shape(&self) -> InputShape {
        InputShape::Fixed {
            channels: self.plan().channels,
            size: self.plan().size,
        }
    }

    fn layer_names(&self) -> Vec<String> {
        self.layers().iter().map(|l| l.name.clone()).collect()
    }

    /// By module path (the last node under it), by name (onnx-ir's or the exporter's), or by
    /// the name of the tensor it outputs.
    fn find_layer(&self, query: &str) -> Option<usize> {
        let plan = self.plan();
        let names = self.layer_names();
        crate::find_layer(&names, query).or_else(|| {
            self.layers().iter().rposition(|l| {
                let node = &plan.graph.nodes[l.node];
                node.name == query
                    || node.original.as_deref() == Some(query)
                    || node.outputs.first().is_some_and(|o| o == query)
                    || node.module.as_deref() == Some(query)
            })
        })
    }

    fn last_layer(&self) -> usize {
        self.plan().default_layer
    }

    fn class_weights(&self) -> Option<Tensor<B, 2>> {
        self.pooled_linear_weights()
    }

    fn layer<R: Rectifier<B>>(&self, index: usize, x: Tensor<B, 4>, relu: &R) -> Tensor<B, 4> {
        let layers = self.layers();
        let device = x.device();
        self.by_batch(x, |fixed, row| {
            let (mut env, from) = match index {
                0 => {
                    let mut env = vec![None; self.plan().slots];
                    env[self.plan().input_slot] = Some(Value::new(row));
                    (env, 0)
                }
                _ => (
                    self.unpack(&layers[index - 1], row),
                    layers[index - 1].node + 1,
                ),
            };
            self.run(fixed, &mut env, from, layers[index].node + 1, relu, &device);
            self.pack(&layers[index], &mut env)
        })
    }

    fn features_at<R: Rectifier<B>>(
        &self,
        images: Tensor<B, 4>,
        index: usize,
        relu: &R,
    ) -> Tensor<B, 4> {
        let layer = &self.layers()[index];
        let device = images.device();
        self.by_batch(images, |fixed, row| {
            let mut env = vec![None; self.plan().slots];
            env[self.plan().input_slot] = Some(Value::new(row));
            self.run(fixed, &mut env, 0, layer.node + 1, relu, &device);
            self.pack(layer, &mut env)
        })
    }

    fn logits_from<R: Rectifier<B>>(
        &self,
        activations: Tensor<B, 4>,
        index: usize,
        relu: &R,
    ) -> Tensor<B, 2> {
        let layer = &self.layers()[index];
        let device = activations.device();
        let end = self.plan().graph.nodes.len();
        self.by_batch(activations, |fixed, row| {
            let rows = row.dims()[0];
            let mut env = self.unpack(layer, row);
            self.run(fixed, &mut env, layer.node + 1, end, relu, &device);
            self.output(&mut env, rows)
        })
    }

    fn head<R: Rectifier<B>>(&self, activations: Tensor<B, 4>, relu: &R) -> Tensor<B, 2> {
        self.logits_from(activations, self.last_layer(), relu)
    }

    /// The input of the classifier (the last Linear on `[1, features]`).
    fn embedding(&self, activations: Tensor<B, 4>) -> Tensor<B, 2> {
        let plan = self.plan();
        let (node, slot) = plan
            .classifier
            .expect("the graph has no Linear classifier on pooled features");
        let layer = &self.layers()[self.last_layer()];
        let device = activations.device();
        self.by_batch(activations, |fixed, row| {
            let mut env = self.unpack(layer, row);
            self.run(fixed, &mut env, layer.node + 1, node, &PlainRelu, &device);
            env[slot].take().expect("the embedding").to::<2>()
        })
    }

    fn head_from_embedding<R: Rectifier<B>>(
        &self,
        embedding: Tensor<B, 2>,
        relu: &R,
    ) -> Tensor<B, 2> {
        let plan = self.plan();
        let (node, slot) = plan
            .classifier
            .expect("the graph has no Linear classifier on pooled features");
        let device = embedding.device();
        let end = plan.graph.nodes.len();
        self.by_batch(embedding, |fixed, rows| {
            let count = rows.dims()[0];
            let mut env = vec![None; plan.slots];
            env[slot] = Some(Value::new(rows));
            self.run(fixed, &mut env, node, end, relu, &device);
            self.output(&mut env, count)
        })
    }

    fn hooked_part(&self, index: usize, output: Tensor<B, 4>) -> Tensor<B, 4> {
        let layer = &self.layers()[index];
        let c = layer.channels();
        if layer.live.len() == 1 {
            return output;
        }
        let [b, total, h, w] = output.dims();
        let own = output.narrow(1, 0, c);
        let rest = Tensor::zeros([b, total - c, h, w], &own.device());
        Tensor::cat(vec![own, rest], 1)
    }

    /// The layer's own output; for tokens, the patch tokens as their grid (the class and
    /// distillation tokens dropped, as pytorch-grad-cam's `reshape_transform` does).
    fn cam_view(&self, index: usize, output: Tensor<B, 4>) -> Tensor<B, 4> {
        let layer = &self.layers()[index];
        let c = layer.channels();
        let own = output.narrow(1, 0, c);
        if !layer.tokens() {
            return own;
        }
        let [b, _, _, n] = own.dims();
        let side = (n as f64).sqrt().floor() as usize;
        let grid = (1..=side).rev().find(|g| n - g * g <= 2).unwrap_or(side);
        own.narrow(3, n - grid * grid, grid * grid)
            .reshape([b, c, grid, grid])
    }
}
