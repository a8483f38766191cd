//! Fine-tuning a network read from ONNX: a fresh classifier for new classes, what trains, and
//! which parameters are the classifier's.
//!
//! The classifier is [`Plan::classifier`]'s node (the last Linear, Gemm or MatMul on pooled
//! features). A weight belongs to the nodes that read it; it trains when the first of them
//! comes at or after the first node that trains.

use burn::module::{Param, ParamId};
use burn::prelude::*;
use burn::tensor::Distribution;
use kernels::Kernels;
use onnx::{Op, Operand, Values};

use super::plan::Source;
use super::{OnnxError, OnnxNetwork};
use crate::Trainable;

impl<B: Kernels> OnnxNetwork<B> {
    /// The network with its classifier replaced by a fresh one of `outputs` outputs, initialised
    /// as PyTorch initialises a Linear layer (uniform in ±1/√inputs, bias too).
    pub fn with_new_classifier(
        self,
        outputs: usize,
        device: &B::Device,
    ) -> Result<Self, OnnxError> {
        let plan = self.plan();
        let error = |reason: String| OnnxError::Run {
            file: plan.file.clone(),
            reason,
        };
        let (node, _) = plan.classifier.ok_or_else(|| {
            error(
                "no Linear, Gemm or MatMul on pooled features to replace as the classifier".into(),
            )
        })?;
        let mut graph = self.current_graph();
        let classifier = &graph.nodes[node];
        let weight_first = match classifier.op {
            Op::Linear { transpose_weight } => transpose_weight,
            Op::Gemm { trans_b, .. } => trans_b,
            _ => false,
        };
        let constant = |i: usize| match classifier.inputs.get(i) {
            Some(Some(Operand::Constant(c))) => Some(*c),
            _ => None,
        };
        let weight = constant(1).ok_or_else(|| {
            error(format!(
                "the classifier {} has no constant weight",
                classifier.name
            ))
        })?;
        let bias = constant(2);
        let dims = graph.constants[weight].dims.clone();
        let [a, b] = dims[..] else {
            return Err(error(format!("the classifier's weight has dims {dims:?}")));
        };
        let inputs = if weight_first { b } else { a };
        let bound = 1.0 / (inputs as f64).sqrt();
        let fresh = |dims: Vec<usize>| {
            let count = dims.iter().product::<usize>();
            let values =
                Tensor::<B, 1>::random([count], Distribution::Uniform(-bound, bound), device)
                    .into_data()
                    .to_vec::<f32>()
                    .expect("f32 values");
            onnx::Constant {
                dims,
                values: Values::F32(values),
            }
        };
        graph.constants[weight] = fresh(match weight_first {
            true => vec![outputs, inputs],
            false => vec![inputs, outputs],
        });
        if let Some(bias) = bias {
            let rank = graph.constants[bias].dims.len();
            let mut dims = vec![1; rank.max(1)];
            *dims.last_mut().unwrap() = outputs;
            graph.constants[bias] = fresh(dims);
        }
        let (file, channels, size) = (plan.file.clone(), plan.channels, plan.size);
        Self::from_graph(graph, &file, channels, size, device)
    }

    /// The graph with its weights as they are now (trained), not as the file had them.
    fn current_graph(&self) -> onnx::Graph {
        let mut graph = self.plan().graph.clone();
        let floats = graph
            .constants
            .iter_mut()
            .filter(|c| matches!(c.values, Values::F32(_)));
        for (constant, weight) in floats.zip(&self.weights) {
            let values = weight
                .val()
                .into_data()
                .to_vec::<f32>()
                .expect("f32 values");
            constant.values = Values::F32(values);
        }
        graph
    }

    /// The network with `scope` trained and the rest frozen. `from <layer>` starts at the first
    /// node under that module path (`layer4` → `/layer4/layer4.0/conv1/Conv`), or at the node
    /// the layer names.
    pub fn trained(self, scope: &Trainable) -> Result<Self, String> {
        let plan = self.plan();
        let first = match scope {
            Trainable::All => 0,
            Trainable::Classifier => plan.classifier.map_or(plan.graph.nodes.len(), |c| c.0),
            Trainable::From(query) => self.first_node_of(query).ok_or_else(|| {
                format!(
                    "train = \"from {query}\": no node of the graph is under `{query}`; \
                     `explain --arch onnx --weights FILE --list-layers` lists them"
                )
            })?,
        };
        let readers = self.first_readers();
        let weights = self
            .weights
            .into_iter()
            .zip(readers)
            .map(|(w, reader)| w.set_require_grad(reader >= first))
            .collect();
        Ok(OnnxNetwork {
            weights,
            plan: self.plan,
            batches: self.batches,
        })
    }

    /// The parameters the classifier's node and the nodes after it read.
    pub fn classifier_params(&self) -> Vec<ParamId> {
        let Some((node, _)) = self.plan().classifier else {
            return Vec::new();
        };
        let readers = self.first_readers();
        self.weights
            .iter()
            .zip(readers)
            .filter(|(_, reader)| *reader >= node)
            .map(|(w, _): (&Param<Tensor<B, 1>>, _)| w.id)
            .collect()
    }

    /// The classifier's weights `[outputs, channels]` when only global average pooling (and
    /// reshapes) lie between the default layer and a Linear classifier on its channels: the
    /// head plain CAM explains.
    pub fn pooled_linear_weights(&self) -> Option<Tensor<B, 2>> {
        let plan = self.plan();
        let (node, _) = plan.classifier?;
        let layer = &plan.layers[plan.default_layer];
        if layer.tokens() || layer.live.len() != 1 {
            return None;
        }
        let mut pooled = false;
        for n in layer.node + 1..node {
            if plan.fixed_node[n] {
                continue;
            }
            match &plan.graph.nodes[n].op {
                Op::GlobalAveragePool => pooled = true,
                Op::Reduce {
                    kind: onnx::Reduce::Mean,
                    axes: Some(axes),
                    ..
                } if axes == &[2, 3] => pooled = true,
                Op::Flatten { .. } | Op::Reshape { .. } | Op::Squeeze { .. } => {}
                Op::Unary(onnx::Unary::Identity) => {}
                _ => return None,
            }
        }
        let classifier = &plan.graph.nodes[node];
        let weight_first = match classifier.op {
            Op::Linear { transpose_weight } => transpose_weight,
            Op::Gemm { trans_b, .. } => trans_b,
            _ => false,
        };
        let Some(Some(Source::Weight(w))) = plan.inputs[node].get(1) else {
            return None;
        };
        let [a, b] = plan.weight_dims[*w][..] else {
            return None;
        };
        let weight = self.weights[*w].val().reshape([a, b]);
        let weight = if weight_first {
            weight
        } else {
            weight.transpose()
        };
        (pooled && weight.dims()[1] == layer.channels()).then_some(weight)
    }

    /// The first node under module path `query`, or the node a layer of that name ends at.
    fn first_node_of(&self, query: &str) -> Option<usize> {
        let prefix = format!("{query}.");
        let nodes = &self.plan().graph.nodes;
        nodes
            .iter()
            .position(|n| {
                n.module
                    .as_deref()
                    .is_some_and(|m| m == query || m.starts_with(&prefix))
            })
            .or_else(|| {
                use crate::SplitModel;
                self.find_layer(query).map(|l| self.layers()[l].node)
            })
    }

    /// For each weight, the first node that reads it (`usize::MAX`: none does).
    fn first_readers(&self) -> Vec<usize> {
        let plan = self.plan();
        let mut first = vec![usize::MAX; self.weights.len()];
        for (n, inputs) in plan.inputs.iter().enumerate() {
            for source in inputs.iter().flatten() {
                if let Source::Weight(w) = source {
                    first[*w] = first[*w].min(n);
                }
            }
        }
        first
    }
}
