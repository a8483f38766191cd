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

use onnx_ir::{Message, ModelProto, NodeProto, TensorProto};

use crate::{Error, MAX_TENSOR_ELEMENTS};

/// onnx-ir's node names → the file's node names and module paths.
#[derive(Debug, Default)]
pub struct Modules {
    by_ir_name: HashMap<String, (String, Option<String>)>,
    /// The first node of each operator type: onnx-ir names an operator it does not know
    /// `custom<n>` whatever it is, so this is how such a node is named in an error.
    first_of_type: HashMap<String, String>,
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

    /// The exporter's name for the first node of operator `op_type`.
    pub fn first_of_type(&self, op_type: &str) -> Option<&str> {
        self.first_of_type.get(op_type).map(String::as_str)
    }

    fn lookup(&self, ir_name: &str) -> Option<&(String, Option<String>)> {
        // onnx-ir names a fused attention after the MatMul it starts from.
        let name = ir_name.strip_suffix("_attention").unwrap_or(ir_name);
        self.by_ir_name.get(name)
    }
}

/// Reads `file`'s protobuf: checks its tensors, its wiring and its domains, then names its
/// nodes. These checks come before onnx-ir's, whose messages about them are less direct
/// (a dangling input is a failed type inference there).
pub fn read(file: &Path) -> Result<Modules, Error> {
    let parse = |reason: String| Error::Parse {
        file: file.to_path_buf(),
        reason,
    };
    let invalid = |reason: String| Error::Invalid {
        file: file.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(file).map_err(|e| Error::Unreadable {
        file: file.to_path_buf(),
        reason: format!("cannot read it: {e}"),
    })?;
    let model = ModelProto::parse_from_bytes(&bytes).map_err(|e| parse(e.to_string()))?;
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| parse("the file holds no graph".into()))?;
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map_or(0, |o| o.version.max(0) as usize);
    let mut constants = HashSet::new();
    for tensor in &graph.initializer {
        check_tensor(tensor).map_err(invalid)?;
        constants.insert(tensor.name.clone());
    }
    for node in &graph.node {
        if node.op_type == "Constant" {
            for attribute in &node.attribute {
                if let Some(tensor) = attribute.t.as_ref() {
                    check_tensor(tensor).map_err(invalid)?;
                }
            }
            constants.extend(node.output.iter().cloned());
        }
    }
    if let Some(node) = graph
        .node
        .iter()
        .find(|n| !(n.domain.is_empty() || n.domain == "ai.onnx"))
    {
        return Err(Error::Unsupported {
            file: file.to_path_buf(),
            node: node.name.clone(),
            op: format!("{}::{}", node.domain, node.op_type),
            opset,
        });
    }
    check_wiring(graph).map_err(invalid)?;
    let mut first_of_type = HashMap::new();
    for node in graph.node.iter().rev() {
        first_of_type.insert(node.op_type.clone(), node.name.clone());
    }
    Ok(Modules {
        by_ir_name: ir_names(&graph.node, &constants),
        first_of_type,
        opset,
    })
}

/// Every input a node reads is the graph's input, a weight, or the output of an earlier node.
fn check_wiring(graph: &onnx_ir::GraphProto) -> Result<(), String> {
    let mut known: HashSet<&str> = graph.input.iter().map(|i| i.name.as_str()).collect();
    known.extend(graph.initializer.iter().map(|t| t.name.as_str()));
    let all_outputs: HashSet<&str> = graph
        .node
        .iter()
        .flat_map(|n| n.output.iter().map(String::as_str))
        .collect();
    for node in &graph.node {
        if let Some(input) = node
            .input
            .iter()
            .find(|i| !i.is_empty() && !known.contains(i.as_str()))
        {
            let why = if all_outputs.contains(input.as_str()) {
                "which a later node produces: the graph has a cycle or is out of order"
            } else {
                "which no node produces"
            };
            return Err(format!("node {} reads {input}, {why}", node.name));
        }
        known.extend(node.output.iter().map(String::as_str));
    }
    Ok(())
}

/// Refuses a tensor whose dims are absurd, whose data lies outside the model's folder, or whose
/// data held in the file does not match its dims: before anything is allocated for it.
fn check_tensor(tensor: &TensorProto) -> Result<(), String> {
    let (name, dims) = (&tensor.name, &tensor.dims);
    let mut elements: usize = 1;
    for &d in dims {
        let d = usize::try_from(d).map_err(|_| format!("tensor {name} has dims {dims:?}"))?;
        elements = elements
            .checked_mul(d)
            .filter(|&n| n <= MAX_TENSOR_ELEMENTS)
            .ok_or_else(|| format!("tensor {name} claims dims {dims:?}: too large to be real"))?;
    }
    let locations: Vec<&str> = tensor
        .external_data
        .iter()
        .filter(|e| e.key == "location")
        .map(|e| e.value.as_str())
        .collect();
    for location in &locations {
        let inside = Path::new(location)
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if !inside {
            return Err(format!(
                "tensor {name} keeps its data at {location}, outside the model's folder: refused"
            ));
        }
    }
    if locations.is_empty()
        && let Some(held) = held_elements(tensor)
        && held != elements
    {
        return Err(format!(
            "tensor {name} has dims {dims:?} ({elements} values) but the file holds {held}"
        ));
    }
    Ok(())
}

/// How many values a tensor stored in the file itself holds, by the ONNX rules of which field
/// carries which type; `None` for types this does not count (strings, complex).
fn held_elements(tensor: &TensorProto) -> Option<usize> {
    let bytes = match tensor.data_type {
        2 | 3 | 9 => 1,       // uint8, int8, bool
        4 | 5 | 10 | 16 => 2, // uint16, int16, float16, bfloat16
        1 | 6 | 12 => 4,      // float, int32, uint32
        7 | 11 | 13 => 8,     // int64, double, uint64
        _ => return None,
    };
    if !tensor.raw_data.is_empty() {
        let held = tensor.raw_data.len() / bytes;
        return Some(if tensor.raw_data.len() % bytes == 0 {
            held
        } else {
            usize::MAX // a partial value: never equal to the dims
        });
    }
    Some(match tensor.data_type {
        1 => tensor.float_data.len(),
        7 => tensor.int64_data.len(),
        11 => tensor.double_data.len(),
        12 | 13 => tensor.uint64_data.len(),
        _ => tensor.int32_data.len(),
    })
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
