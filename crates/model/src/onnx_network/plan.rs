//! What is decided once per model and input size: where each node's inputs come from, which
//! values depend on the image (the rest — shape arithmetic — is computed at load and kept),
//! which values are still needed after each node, and the layers a CAM can read.

use std::collections::HashMap;

use onnx::{Graph, Op, Operand, Values};

/// Where a node input comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A value the graph computes (its slot).
    Slot(usize),
    /// A float constant: a weight, `OnnxNetwork::weights[i]`.
    Weight(usize),
    /// An integer constant (`Plan::ints[i]`).
    Int(usize),
}

/// A point where a CAM can read the network: a node's output, and what the rest of the graph
/// needs beside it.
#[derive(Debug, Clone)]
pub struct Layer {
    pub name: String,
    pub node: usize,
    /// The values alive after the node, the node's output first; all have its dims.
    pub live: Vec<usize>,
    /// The output's dims for one image.
    pub dims: Vec<usize>,
}

impl Layer {
    /// `[1, N, C]` tokens (a transformer), as opposed to `[1, C, H, W]` maps.
    pub fn tokens(&self) -> bool {
        self.dims.len() == 3
    }

    /// Channels of one live value in the packed `[batch, channels, h, w]` layout.
    pub fn channels(&self) -> usize {
        if self.tokens() {
            self.dims[2]
        } else {
            self.dims[1]
        }
    }
}

#[derive(Debug)]
pub struct Plan {
    pub graph: Graph,
    /// The file the graph was read from, for messages.
    pub file: String,
    pub inputs: Vec<Vec<Option<Source>>>,
    pub outputs: Vec<Vec<usize>>,
    pub slots: usize,
    pub input_slot: usize,
    pub output_slot: usize,
    /// Integer constants: values and dims.
    pub ints: Vec<(Vec<f32>, Vec<usize>)>,
    /// Each weight's dims.
    pub weight_dims: Vec<Vec<usize>>,
    /// Nodes that do not depend on the image: run once at load.
    pub fixed_node: Vec<bool>,
    /// Values of the fixed nodes, and every slot's dims for one image (from the load run).
    pub fixed: Vec<Option<(Vec<f32>, Vec<usize>)>>,
    pub dims: Vec<Vec<usize>>,
    /// The last node reading each slot (`usize::MAX`: the graph's output).
    pub last_use: Vec<usize>,
    /// The node producing each slot (`None`: the input).
    pub producer: Vec<Option<usize>>,
    pub layers: Vec<Layer>,
    pub default_layer: usize,
    /// The node whose input is the embedding the classifier reads, and that input's slot.
    pub classifier: Option<(usize, usize)>,
    pub channels: usize,
    pub size: [usize; 2],
}

impl Plan {
    /// The wiring of `graph`; its dims, fixed values and layers come from [`Plan::settle`].
    pub fn wire(graph: Graph, file: &str, channels: usize, size: [usize; 2]) -> Plan {
        let mut slots = HashMap::new();
        slots.insert(graph.input.clone(), 0usize);
        let mut ints = Vec::new();
        let mut int_index = HashMap::new();
        let mut weights = vec![usize::MAX; graph.constants.len()];
        let mut weight_dims = Vec::new();
        for (i, c) in graph.constants.iter().enumerate() {
            if let Values::F32(_) = c.values {
                weights[i] = weight_dims.len();
                weight_dims.push(c.dims.clone());
            }
        }
        let mut inputs = Vec::new();
        let mut outputs = Vec::new();
        for node in &graph.nodes {
            let ins = node
                .inputs
                .iter()
                .map(|operand| {
                    operand.as_ref().map(|o| match o {
                        Operand::Value(name) => Source::Slot(slots[name]),
                        Operand::Constant(c) => match &graph.constants[*c].values {
                            Values::F32(_) => Source::Weight(weights[*c]),
                            Values::Int(values) => {
                                let next = ints.len();
                                let i = *int_index.entry(*c).or_insert(next);
                                if i == next {
                                    let dims = graph.constants[*c].dims.clone();
                                    ints.push((values.iter().map(|&v| v as f32).collect(), dims));
                                }
                                Source::Int(i)
                            }
                        },
                    })
                })
                .collect();
            inputs.push(ins);
            let outs = node
                .outputs
                .iter()
                .map(|name| {
                    let next = slots.len();
                    *slots.entry(name.clone()).or_insert(next)
                })
                .collect();
            outputs.push(outs);
        }
        let count = slots.len();
        let output_slot = slots[&graph.output];
        let fixed_node = fixed_nodes(&graph, &inputs, &outputs, count);
        // Fixed nodes run once at load: their reads keep nothing alive.
        let mut last_use = vec![0; count];
        for (n, ins) in inputs.iter().enumerate().filter(|(n, _)| !fixed_node[*n]) {
            for s in ins.iter().flatten() {
                if let Source::Slot(s) = s {
                    last_use[*s] = n;
                }
            }
        }
        last_use[output_slot] = usize::MAX;
        let mut producer = vec![None; count];
        for (n, outs) in outputs.iter().enumerate() {
            for &o in outs {
                producer[o] = Some(n);
            }
        }
        Plan {
            graph,
            file: file.to_string(),
            inputs,
            outputs,
            slots: count,
            input_slot: 0,
            output_slot,
            ints,
            weight_dims,
            fixed_node,
            fixed: vec![None; count],
            dims: vec![Vec::new(); count],
            last_use,
            producer,
            layers: Vec::new(),
            default_layer: 0,
            classifier: None,
            channels,
            size,
        }
    }

    /// Records the load run's dims and fixed values, then finds the layers.
    pub fn settle(
        &mut self,
        dims: Vec<Vec<usize>>,
        fixed: Vec<Option<(Vec<f32>, Vec<usize>)>>,
    ) -> Result<(), String> {
        self.dims = dims;
        self.fixed = fixed;
        self.layers = self.find_layers();
        if self.layers.is_empty() {
            return Err("no node gives a [batch, channels, h, w] map or [batch, tokens, channels] tokens that a CAM could read".into());
        }
        self.default_layer = self.find_default();
        self.classifier = self.find_classifier();
        Ok(())
    }

    fn is_fixed_slot(&self, slot: usize) -> bool {
        self.fixed[slot].is_some()
    }

    /// Nodes whose output is a map or tokens, with every other value alive after them of the
    /// same dims (so they pack beside it).
    fn find_layers(&self) -> Vec<Layer> {
        let mut layers = Vec::new();
        for (n, node) in self.graph.nodes.iter().enumerate() {
            if self.fixed_node[n] {
                continue;
            }
            let Some(&out) = self.outputs[n].first() else {
                continue;
            };
            let dims = &self.dims[out];
            let spatial = match dims.len() {
                4 => dims[2] * dims[3] > 1,
                3 => dims[1] > 1,
                _ => false,
            };
            if !spatial || self.last_use[out] <= n {
                continue;
            }
            let mut live = vec![out];
            let mut packable = true;
            for s in 0..self.slots {
                let produced = s == self.input_slot || self.producer[s].is_some_and(|p| p <= n);
                if s == out || !produced || self.is_fixed_slot(s) || self.last_use[s] <= n {
                    continue;
                }
                if self.dims[s] != *dims {
                    packable = false;
                    break;
                }
                live.push(s);
            }
            if !packable {
                continue;
            }
            let name = match node.module.as_deref() {
                Some(m) if !m.is_empty() => format!("{m}.{}", node.name),
                _ => node.name.clone(),
            };
            layers.push(Layer {
                name,
                node: n,
                live,
                dims: dims.clone(),
            });
        }
        layers
    }

    /// pytorch-grad-cam's usual choice: a transformer's last block's first LayerNorm; else the
    /// last map before the pooling that feeds the classifier.
    fn find_default(&self) -> usize {
        let norms: Vec<usize> = self
            .layers
            .iter()
            .enumerate()
            .filter(|(_, l)| {
                l.tokens() && matches!(self.graph.nodes[l.node].op, Op::LayerNorm { .. })
            })
            .map(|(i, _)| i)
            .collect();
        let maps = self.layers.iter().rposition(|l| !l.tokens());
        match (norms.len(), maps) {
            (n, _) if n >= 3 => norms[n - 3],
            (2, _) => norms[0],
            (_, Some(m)) => m,
            _ => self.layers.len() - 1,
        }
    }

    /// The last Linear, Gemm or MatMul on a `[1, features]` input.
    fn find_classifier(&self) -> Option<(usize, usize)> {
        self.graph
            .nodes
            .iter()
            .enumerate()
            .rev()
            .find_map(|(n, node)| {
                let linear = matches!(node.op, Op::Linear { .. } | Op::Gemm { .. } | Op::MatMul);
                match self.inputs[n].first() {
                    Some(Some(Source::Slot(s))) if linear && self.dims[*s].len() == 2 => {
                        Some((n, *s))
                    }
                    _ => None,
                }
            })
    }
}

/// A node is fixed when none of its inputs depends on the image or on a weight, a Shape's
/// input aside. Weights count as dynamic because they train: a value computed from one at
/// load (a class token expanded, a weight transposed) would never see its updates.
fn fixed_nodes(
    graph: &Graph,
    inputs: &[Vec<Option<Source>>],
    outputs: &[Vec<usize>],
    slots: usize,
) -> Vec<bool> {
    let mut dynamic = vec![false; slots];
    dynamic[0] = true;
    let mut fixed = Vec::with_capacity(graph.nodes.len());
    for (n, node) in graph.nodes.iter().enumerate() {
        let depends = !matches!(node.op, Op::Shape { .. })
            && inputs[n].iter().flatten().any(|s| match s {
                Source::Slot(s) => dynamic[*s],
                Source::Weight(_) => true,
                Source::Int(_) => false,
            });
        for &o in &outputs[n] {
            dynamic[o] = depends;
        }
        fixed.push(!depends);
    }
    fixed
}
