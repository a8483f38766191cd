//! The graph as the runtime reads it: nodes in an order where every input comes first, their
//! attributes as plain values, constants as vectors.

/// A model: one image input, one output, the nodes between them.
#[derive(Debug, Clone)]
pub struct Graph {
    /// The input's name and dims (`None` where the export left a dimension symbolic).
    pub input: String,
    pub input_dims: Vec<Option<usize>>,
    pub output: String,
    pub nodes: Vec<Node>,
    pub constants: Vec<Constant>,
    /// The default domain's opset the file declares.
    pub opset: usize,
}

/// One operator application.
#[derive(Debug, Clone)]
pub struct Node {
    /// onnx-ir's name for it (`conv2d3`, `layernormalization2`): unique in the graph.
    pub name: String,
    /// The torch module it came from (`layer4.1.relu`, `blocks.11.norm1`), where the exporter
    /// recorded one.
    pub module: Option<String>,
    /// The name the exporter gave it (`/layer4/layer4.1/relu_1/Relu`, `node_relu_6`).
    pub original: Option<String>,
    pub op: Op,
    /// `None` where an optional input was left out.
    pub inputs: Vec<Option<Operand>>,
    pub outputs: Vec<String>,
    /// Each output's dims as far as shape inference knew them.
    pub output_dims: Vec<Option<Vec<Option<usize>>>>,
}

/// Where an input comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operand {
    /// The graph's input or a node's output.
    Value(String),
    /// An index into [`Graph::constants`]: a weight, or a value folded at load.
    Constant(usize),
}

/// A constant: f32 weights, or small integer values (shapes, axes, indices) kept as f64.
#[derive(Debug, Clone, PartialEq)]
pub struct Constant {
    pub dims: Vec<usize>,
    pub values: Values,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    F32(Vec<f32>),
    /// Integers and booleans (exact in f64 up to 2^53, far beyond any shape).
    Int(Vec<f64>),
}

/// Element-wise functions of one tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Unary {
    Identity,
    Relu,
    Sigmoid,
    Tanh,
    Erf,
    Exp,
    Log,
    Sqrt,
    Neg,
    Abs,
    Reciprocal,
    /// Logical not of a 0/1 value.
    Not,
    HardSwish,
    Gelu,
    GeluTanh,
    Softplus,
    Mish,
    LeakyRelu(f32),
    HardSigmoid {
        alpha: f32,
        beta: f32,
    },
    Clip {
        min: f32,
        max: f32,
    },
}

/// A 2-D pooling window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    pub max: bool,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    /// top, left, bottom, right.
    pub pads: [usize; 4],
    pub dilation: [usize; 2],
    pub ceil_mode: bool,
    pub count_include_pad: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduce {
    Mean,
    Sum,
    Max,
    Min,
    /// √Σx² (Swin V2's cosine attention normalises by it).
    L2,
}

/// The operators the runtime runs. Where an attribute is `None` the value is read at run time
/// from the input ONNX puts it at (a shape computed from another tensor's).
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Unary(Unary),
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Max,
    Min,
    Equal,
    Where,
    /// 2-D convolution; `pads` top, left, bottom, right.
    Conv {
        stride: [usize; 2],
        pads: [usize; 4],
        dilation: [usize; 2],
        groups: usize,
    },
    BatchNorm {
        epsilon: f64,
    },
    Pool(Pool),
    GlobalAveragePool,
    Reduce {
        kind: Reduce,
        /// Empty: every axis.
        axes: Option<Vec<usize>>,
        keepdims: bool,
    },
    Flatten {
        axis: usize,
    },
    Reshape {
        shape: Option<Vec<i64>>,
        allowzero: bool,
    },
    Transpose {
        perm: Vec<usize>,
    },
    Squeeze {
        /// `Some(vec![])`: every axis of size 1.
        axes: Option<Vec<i64>>,
    },
    Unsqueeze {
        axes: Option<Vec<i64>>,
    },
    Concat {
        axis: usize,
    },
    Split {
        axis: usize,
        /// The sizes of the parts; `None` with `parts`: equal parts.
        sizes: Option<Vec<usize>>,
    },
    Slice {
        starts: Option<Vec<i64>>,
        ends: Option<Vec<i64>>,
        axes: Option<Vec<i64>>,
        steps: Option<Vec<i64>>,
    },
    Gather {
        axis: usize,
    },
    Expand {
        shape: Option<Vec<i64>>,
    },
    /// Constant padding: (before, after) per axis.
    /// `pads` per axis (before, after); `None`: read from input 1 at run time (ONNX's layout,
    /// every axis's start, then every axis's end).
    Pad {
        pads: Option<Vec<(usize, usize)>>,
        value: f32,
    },
    /// `x · Wᵀ + b` with W `[out, in]` when `transpose_weight`, else `x · W + b` (W `[in, out]`).
    Linear {
        transpose_weight: bool,
    },
    Gemm {
        alpha: f32,
        beta: f32,
        trans_a: bool,
        trans_b: bool,
    },
    MatMul,
    /// The remainder: with `fmod`, of the sign of the dividend (C's fmod); else of the
    /// divisor (Python's %).
    Mod {
        fmod: bool,
    },
    /// A copy of input 0 with the slices that input 1's index tuples name replaced by input
    /// 2's (Swin's attention mask, built by slice assignment).
    ScatterNd,
    /// The slices of input 0 that input 1's index tuples name (no batch dims).
    GatherNd,
    /// A two-operand Einsum that is a batched matrix product (MaxViT's attention):
    /// the letters of each operand and of the output.
    Einsum {
        a: Vec<char>,
        b: Vec<char>,
        out: Vec<char>,
    },
    LayerNorm {
        axis: usize,
        epsilon: f64,
    },
    Softmax {
        axis: usize,
    },
    LogSoftmax {
        axis: usize,
    },
    /// softmax(Q·Kᵀ·scale)·V over `[batch, heads, tokens, depth]` (ONNX Attention, opset 23,
    /// or onnx-ir's fusion of the MatMul–Softmax–MatMul pattern).
    Attention {
        scale: Option<f64>,
        causal: bool,
        /// The optional fourth input, a mask: boolean (false hides a score) or added to the
        /// scaled scores (Swin's shifted windows).
        boolean_mask: bool,
    },
    Shape {
        start: usize,
        end: usize,
    },
    Cast {
        to_float: bool,
    },
    ConstantOfShape {
        shape: Option<Vec<i64>>,
        value: f64,
    },
    /// `start, start + delta, …` below `limit`; a `None` is read from input 0, 1 or 2.
    Range {
        start: Option<f64>,
        limit: Option<f64>,
        delta: Option<f64>,
    },
}

impl Op {
    /// The ONNX name of the operator, for messages and `--list-layers`.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Unary(u) => match u {
                Unary::Identity => "Identity",
                Unary::Relu => "Relu",
                Unary::Sigmoid => "Sigmoid",
                Unary::Tanh => "Tanh",
                Unary::Erf => "Erf",
                Unary::Exp => "Exp",
                Unary::Log => "Log",
                Unary::Sqrt => "Sqrt",
                Unary::Neg => "Neg",
                Unary::Abs => "Abs",
                Unary::Reciprocal => "Reciprocal",
                Unary::Not => "Not",
                Unary::HardSwish => "HardSwish",
                Unary::Gelu | Unary::GeluTanh => "Gelu",
                Unary::Softplus => "Softplus",
                Unary::Mish => "Mish",
                Unary::LeakyRelu(_) => "LeakyRelu",
                Unary::HardSigmoid { .. } => "HardSigmoid",
                Unary::Clip { .. } => "Clip",
            },
            Op::Add => "Add",
            Op::Sub => "Sub",
            Op::Mul => "Mul",
            Op::Div => "Div",
            Op::Pow => "Pow",
            Op::Max => "Max",
            Op::Min => "Min",
            Op::Equal => "Equal",
            Op::Where => "Where",
            Op::Conv { .. } => "Conv",
            Op::BatchNorm { .. } => "BatchNormalization",
            Op::Pool(p) if p.max => "MaxPool",
            Op::Pool(_) => "AveragePool",
            Op::GlobalAveragePool => "GlobalAveragePool",
            Op::Reduce { kind, .. } => match kind {
                Reduce::Mean => "ReduceMean",
                Reduce::Sum => "ReduceSum",
                Reduce::Max => "ReduceMax",
                Reduce::Min => "ReduceMin",
                Reduce::L2 => "ReduceL2",
            },
            Op::Flatten { .. } => "Flatten",
            Op::Reshape { .. } => "Reshape",
            Op::Transpose { .. } => "Transpose",
            Op::Squeeze { .. } => "Squeeze",
            Op::Unsqueeze { .. } => "Unsqueeze",
            Op::Concat { .. } => "Concat",
            Op::Split { .. } => "Split",
            Op::Slice { .. } => "Slice",
            Op::Gather { .. } => "Gather",
            Op::Expand { .. } => "Expand",
            Op::Pad { .. } => "Pad",
            Op::Linear { .. } => "Linear",
            Op::Gemm { .. } => "Gemm",
            Op::MatMul => "MatMul",
            Op::Einsum { .. } => "Einsum",
            Op::Mod { .. } => "Mod",
            Op::ScatterNd => "ScatterND",
            Op::GatherNd => "GatherND",
            Op::LayerNorm { .. } => "LayerNormalization",
            Op::Softmax { .. } => "Softmax",
            Op::LogSoftmax { .. } => "LogSoftmax",
            Op::Attention { .. } => "Attention",
            Op::Shape { .. } => "Shape",
            Op::Cast { .. } => "Cast",
            Op::ConstantOfShape { .. } => "ConstantOfShape",
            Op::Range { .. } => "Range",
        }
    }
}

impl Op {
    /// `equation` as an [`Op::Einsum`], when it is a batched matrix product: two operands,
    /// letters only (no ellipsis), none repeated within a term, and every letter that leaves
    /// the output shared by both operands (a contraction, not a sum over one operand).
    pub fn einsum(equation: &str) -> Option<Op> {
        let equation: String = equation.chars().filter(|c| !c.is_whitespace()).collect();
        let (inputs, out) = equation.split_once("->")?;
        let (a, b) = inputs.split_once(',')?;
        let term = |t: &str| -> Option<Vec<char>> {
            let letters: Vec<char> = t.chars().collect();
            let distinct = letters
                .iter()
                .enumerate()
                .all(|(i, c)| c.is_ascii_alphabetic() && !letters[..i].contains(c));
            distinct.then_some(letters)
        };
        let (a, b, out) = (term(a)?, term(b)?, term(out)?);
        let fits = a
            .iter()
            .chain(&b)
            .all(|c| out.contains(c) || (a.contains(c) && b.contains(c)))
            && out.iter().all(|c| a.contains(c) || b.contains(c));
        fits.then_some(Op::Einsum { a, b, out })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batched_products_are_einsums_and_other_equations_are_not() {
        assert!(Op::einsum("B G H I D, B G H J D -> B G H I J").is_some());
        assert!(Op::einsum("bij,bjk->bik").is_some());
        assert!(Op::einsum("ij->ji").is_none(), "one operand");
        assert!(Op::einsum("...ij,...jk->...ik").is_none(), "ellipsis");
        assert!(Op::einsum("ii,ij->ij").is_none(), "a repeated letter");
        assert!(
            Op::einsum("ij,jk->k").is_none(),
            "i is summed over one operand only"
        );
    }
}
