//! What the exporter called each node, and the torch module it came from.
//!
//! onnx-ir renames every node after its type and a counter (`conv2d3`: the third 2-D Conv of
//! the file), before it folds or fuses anything. Counting the file's own nodes the same way
//! finds, for each name onnx-ir gives, the node of the file, and with it the torch module path:
//! - the TorchScript exporter (`dynamo=False`) names nodes by scope:
//!   `/layer4/layer4.1/relu_1/Relu`, `/blocks/blocks.11/norm1/LayerNormalization`;
//! - the dynamo exporter (`dynamo=True`) writes the scope into the node's `namespace`
//!   metadata: `: Net/blocks: Sequential/blocks.11: Block/blocks.11.norm1: LayerNorm/…`.
//!
//! The file's protobuf is read here through onnx-ir's own bindings, also to refuse absurd
//! tensor dims and external data outside the model's folder before onnx-ir reads anything.

use std::collections::{HashMap, HashSet};
use std::path::{Component, Path};

use onnx_ir::{Message, ModelProto, NodeProto};

use crate::MAX_TENSOR_ELEMENTS;

/// onnx-ir's node names → the file's node names and module paths.
#[derive(Debug, Default)]
pub struct Modules {
    by_ir_name: HashMap<String, (String, Option<String>)>,
    pub opset: usize,
}

impl Modules {
    /// The exporter's name for onnx-ir's node `ir_name`.
    pub fn original(&self, ir_name: &str) -> Option<&str> {
        self.lookup(ir_name).map(|(name, _)| name.as_str())
    }

    /// The torch module path of onnx-ir's node `ir_name` (`""`: the model itself).
    pub fn module(&self, ir_name: &str) -> Option<&str> {
        self.lookup(ir_name)
            .and_then(|(_, module)| module.as_deref())
    }

    fn lookup(&self, ir_name: &str) -> Option<&(String, Option<String>)> {
        // onnx-ir names a fused attention after the MatMul it starts from.
        let name = ir_name.strip_suffix("_attention").unwrap_or(ir_name);
        self.by_ir_name.get(name)
    }
}

/// Reads `file`'s protobuf: checks its tensors' dims and external data, then names its nodes.
pub fn read(file: &Path) -> Result<Modules, String> {
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read it: {e}"))?;
    let model = ModelProto::parse_from_bytes(&bytes).map_err(|e| e.to_string())?;
    let graph = model.graph.as_ref().ok_or("the file holds no graph")?;
    let mut constants = HashSet::new();
    for tensor in &graph.initializer {
        let locations = tensor.external_data.iter().filter(|e| e.key == "location");
        check_tensor(
            &tensor.name,
            &tensor.dims,
            locations.map(|e| e.value.as_str()),
        )?;
        constants.insert(tensor.name.clone());
    }
    for node in &graph.node {
        if node.op_type == "Constant" {
            constants.extend(node.output.iter().cloned());
        }
    }
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map_or(0, |o| o.version.max(0) as usize);
    Ok(Modules {
        by_ir_name: ir_names(&graph.node, &constants),
        opset,
    })
}

fn check_tensor<'a>(
    name: &str,
    dims: &[i64],
    locations: impl Iterator<Item = &'a str>,
) -> Result<(), String> {
    let mut elements: usize = 1;
    for &d in dims {
        let d = usize::try_from(d).map_err(|_| format!("tensor {name} has dims {dims:?}"))?;
        elements = elements
            .checked_mul(d)
            .filter(|&n| n <= MAX_TENSOR_ELEMENTS)
            .ok_or_else(|| format!("tensor {name} claims dims {dims:?}: too large to be real"))?;
    }
    for location in locations {
        let shown = location;
        let location = Path::new(location);
        let inside = location
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if !inside {
            return Err(format!(
                "tensor {name} keeps its data at {}, outside the model's folder: refused",
                shown
            ));
        }
    }
    Ok(())
}

/// Counts the nodes as onnx-ir's node conversion does: a counter per (remapped) type, and
/// Gemm or MatMul turned into Linear counted again as Linear, the Add a MatMul absorbs
/// as its bias not at all.
fn ir_names(
    nodes: &[NodeProto],
    constants: &HashSet<String>,
) -> HashMap<String, (String, Option<String>)> {
    let mut counters: HashMap<String, usize> = HashMap::new();
    let mut names = HashMap::new();
    let mut absorbed = None;
    for (i, node) in nodes.iter().enumerate() {
        if absorbed == Some(i) {
            continue;
        }
        let mut name = |kind: &str| {
            let count = counters.entry(kind.to_string()).or_insert(0);
            *count += 1;
            format!("{kind}{count}")
        };
        let first = name(&ir_type(node));
        let linear = match node.op_type.as_str() {
            "Gemm" => straight_gemm(node),
            "MatMul" => {
                let weight = node.input.get(1).is_some_and(|w| constants.contains(w));
                if weight
                    && nodes
                        .get(i + 1)
                        .is_some_and(|next| is_bias_add(next, node, constants))
                {
                    absorbed = Some(i + 1);
                }
                weight
            }
            _ => false,
        };
        let ir_name = if linear { name("linear") } else { first };
        names.insert(ir_name, (node.name.clone(), module_path(node)));
    }
    names
}

/// onnx-ir's lower-case type name for `node` after its remapping by kernel rank.
fn ir_type(node: &NodeProto) -> String {
    let spatial = node
        .attribute
        .iter()
        .find(|a| a.name == "kernel_shape")
        .map_or(2, |a| a.ints.len());
    match node.op_type.as_str() {
        "Conv" => format!("conv{spatial}d"),
        "MaxPool" => format!("maxpool{spatial}d"),
        "AveragePool" => format!("averagepool{spatial}d"),
        other => other.to_lowercase(),
    }
}

fn straight_gemm(node: &NodeProto) -> bool {
    let attr = |n: &str| node.attribute.iter().find(|a| a.name == n);
    let float = |n: &str| attr(n).map(|a| a.f);
    let int = |n: &str| attr(n).map(|a| a.i);
    int("transA").unwrap_or(0) == 0
        && float("alpha") == Some(1.0)
        && float("beta") == Some(1.0)
        && int("transB") == Some(1)
}

/// An Add right after `matmul` that adds a constant to its output: onnx-ir's bias.
fn is_bias_add(next: &NodeProto, matmul: &NodeProto, constants: &HashSet<String>) -> bool {
    let Some(out) = matmul.output.first() else {
        return false;
    };
    next.op_type == "Add"
        && next.input.len() == 2
        && next.input.iter().any(|i| i == out)
        && next.input.iter().any(|i| i != out && constants.contains(i))
}

/// The torch module path of `node`, from its dynamo metadata or its TorchScript scope name.
fn module_path(node: &NodeProto) -> Option<String> {
    if let Some(namespace) = node
        .metadata_props
        .iter()
        .find(|p| p.key == "namespace")
        .map(|p| p.value.as_str())
    {
        let mut scopes: Vec<&str> = namespace
            .split('/')
            .map(|s| s.split(':').next().unwrap_or("").trim())
            .collect();
        scopes.pop(); // the operator itself
        return Some(scopes.last().copied().unwrap_or("").to_string());
    }
    let scope = node.name.strip_prefix('/')?;
    let mut parts: Vec<&str> = scope.split('/').collect();
    parts.pop();
    let mut path: Vec<&str> = Vec::new();
    for part in parts {
        match path.last() {
            Some(last) if part.starts_with(&format!("{last}.")) => *path.last_mut().unwrap() = part,
            _ => path.push(part),
        }
    }
    Some(path.join("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, op: &str) -> NodeProto {
        NodeProto {
            name: name.into(),
            op_type: op.into(),
            ..Default::default()
        }
    }

    #[test]
    fn torchscript_scopes_become_module_paths() {
        let path = |name| module_path(&node(name, "Relu"));
        assert_eq!(
            path("/layer4/layer4.1/relu_1/Relu").as_deref(),
            Some("layer4.1.relu_1")
        );
        assert_eq!(
            path("/stem/stem.0/stem.0.0/Conv").as_deref(),
            Some("stem.0.0")
        );
        assert_eq!(
            path("/blocks/blocks.11/norm1/LayerNormalization").as_deref(),
            Some("blocks.11.norm1")
        );
        assert_eq!(path("/GlobalAveragePool").as_deref(), Some(""));
        assert_eq!(path("Identity_3"), None);
    }

    #[test]
    fn dynamo_namespaces_become_module_paths() {
        let mut n = node("node_layer_norm", "LayerNormalization");
        n.metadata_props.push(Default::default());
        let entry = n.metadata_props.last_mut().unwrap();
        entry.key = "namespace".into();
        entry.value = ": m.Vit/blocks: Sequential/blocks.1: m.Block/blocks.1.norm1: LayerNorm/layer_norm: aten.layer_norm.default".into();
        assert_eq!(module_path(&n).as_deref(), Some("blocks.1.norm1"));
    }

    #[test]
    fn nodes_are_counted_as_onnx_ir_renames_them() {
        let mut matmul = node("/fc1/MatMul", "MatMul");
        matmul.input = vec!["x".into(), "w".into()];
        matmul.output = vec!["mm".into()];
        let mut add = node("/fc1/Add", "Add");
        add.input = vec!["mm".into(), "b".into()];
        let mut gemm = node("/head/Gemm", "Gemm");
        gemm.input = vec!["y".into(), "w2".into()];
        let nodes = [
            node("/a/Conv", "Conv"),
            node("/a/Relu", "Relu"),
            matmul,
            add,
            node("/b/Add", "Add"),
            gemm,
        ];
        let constants: HashSet<String> = ["w", "b", "w2"].map(String::from).into();
        let names = ir_names(&nodes, &constants);
        let original = |ir: &str| names.get(ir).map(|(n, _)| n.as_str());
        assert_eq!(original("conv2d1"), Some("/a/Conv"));
        assert_eq!(original("relu1"), Some("/a/Relu"));
        assert_eq!(original("linear1"), Some("/fc1/MatMul"));
        // The bias Add is absorbed; the next Add is onnx-ir's first.
        assert_eq!(original("add1"), Some("/b/Add"));
        // A Gemm without explicit alpha/beta/transB stays a Gemm.
        assert_eq!(original("gemm1"), Some("/head/Gemm"));
    }
}
