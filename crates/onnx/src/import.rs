//! onnx-ir's IR → [`Graph`]: the one module that names onnx-ir's node types. Tensors leave it
//! as vectors, so onnx-ir's burn-tensor (0.23) never meets the workspace's (0.21).

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use onnx_ir::ir::{ArgType, Argument, ValueSource};
use onnx_ir::node::padding::PaddingConfig2d;
use onnx_ir::{Node as IrNode, OnnxGraph, OnnxGraphBuilder};

use crate::graph::{Constant, Graph, Node, Op, Operand, Pool, Reduce, Unary, Values};
use crate::{Error, MAX_FILE_BYTES, names};

/// Parses `file` with onnx-ir (a panic inside it becomes an error naming the file) and converts
/// what it gives.
pub fn import(file: &Path) -> Result<Graph, Error> {
    let unreadable = |reason: String| Error::Unreadable {
        file: file.to_path_buf(),
        reason,
    };
    let size = std::fs::metadata(file)
        .map_err(|e| unreadable(format!("cannot read it: {e}")))?
        .len();
    if size == 0 {
        return Err(unreadable("the file is empty, not an ONNX model".into()));
    }
    if size > MAX_FILE_BYTES {
        return Err(unreadable(format!(
            "{size} bytes is more than the {MAX_FILE_BYTES} this reads"
        )));
    }
    let parse = |reason: String| Error::Parse {
        file: file.to_path_buf(),
        reason,
    };
    let modules = names::read(file)?;
    let ir = catch_unwind(AssertUnwindSafe(|| {
        OnnxGraphBuilder::new().parse_file(file)
    }))
    .map_err(|panic| parse(format!("onnx-ir failed: {}", panic_text(&panic))))?
    .map_err(|e| parse(e.to_string()))?;
    catch_unwind(AssertUnwindSafe(|| convert(file, &ir, &modules)))
        .map_err(|panic| parse(format!("reading its graph failed: {}", panic_text(&panic))))?
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic".into())
}

/// The constants, each stored once however many nodes read it.
#[derive(Default)]
struct Constants {
    values: Vec<Constant>,
    index: HashMap<String, usize>,
}

impl Constants {
    fn operand(&mut self, arg: &Argument) -> Result<Option<Operand>, String> {
        if arg.is_optional() {
            return Ok(None);
        }
        let key = match arg.value_source {
            ValueSource::Static(id) => format!("static:{id}"),
            ValueSource::Constant => format!("constant:{}", arg.name),
            _ => return Ok(Some(Operand::Value(arg.name.clone()))),
        };
        if let Some(&i) = self.index.get(&key) {
            return Ok(Some(Operand::Constant(i)));
        }
        let Some(data) = arg.value() else {
            return Err(format!("constant {} has no data", arg.name));
        };
        let dims: Vec<usize> = data.shape().iter().copied().collect();
        let values = if data.dtype().is_float() {
            Values::F32(data.iter::<f32>().collect())
        } else if matches!(data.dtype(), onnx_ir::ir::DType::Bool(_)) {
            Values::Int(data.iter::<bool>().map(|b| b as u8 as f64).collect())
        } else {
            Values::Int(data.iter::<i64>().map(|v| v as f64).collect())
        };
        let count = match &values {
            Values::F32(v) => v.len(),
            Values::Int(v) => v.len(),
        };
        if count != dims.iter().product::<usize>() {
            return Err(format!("a constant holds {count} values for dims {dims:?}"));
        }
        self.values.push(Constant { dims, values });
        self.index.insert(key, self.values.len() - 1);
        Ok(Some(Operand::Constant(self.values.len() - 1)))
    }
}

fn dims(arg: &Argument) -> Option<Vec<Option<usize>>> {
    match &arg.ty {
        ArgType::Tensor(t) => t.static_shape.clone(),
        ArgType::Shape(n) => Some(vec![Some(*n)]),
        ArgType::ScalarNative(_) => Some(vec![]),
        ArgType::ScalarTensor(_) => Some(vec![Some(1)]),
    }
}

fn convert(file: &Path, ir: &OnnxGraph, modules: &names::Modules) -> Result<Graph, Error> {
    let invalid = |reason: String| Error::Invalid {
        file: file.to_path_buf(),
        reason,
    };
    let [input] = ir.inputs.as_slice() else {
        return Err(invalid(format!(
            "the graph takes {} inputs; an image network takes one (the images)",
            ir.inputs.len()
        )));
    };
    let [output] = ir.outputs.as_slice() else {
        return Err(invalid(format!(
            "the graph has {} outputs; a classifier has one (the logits)",
            ir.outputs.len()
        )));
    };
    if ir.nodes.is_empty() {
        return Err(invalid("the graph has no nodes".into()));
    }
    let mut constants = Constants::default();
    let mut nodes = Vec::new();
    for node in &ir.nodes {
        if matches!(node, IrNode::Constant(_)) {
            continue; // its readers hold its value
        }
        let op = op(node).map_err(|op| Error::Unsupported {
            file: file.to_path_buf(),
            node: match node {
                IrNode::Custom(c) => modules.first_of_type(&c.op_type),
                _ => modules.original(node.name()),
            }
            .unwrap_or(node.name())
            .to_string(),
            op,
            opset: modules.opset,
        })?;
        let inputs = node
            .inputs()
            .iter()
            .map(|arg| constants.operand(arg))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(format!("node {}: {e}", node.name())))?;
        nodes.push(Node {
            name: node.name().to_string(),
            module: modules.module(node.name()).map(str::to_string),
            original: modules.original(node.name()).map(str::to_string),
            op,
            inputs,
            outputs: node.outputs().iter().map(|a| a.name.clone()).collect(),
            output_dims: node.outputs().iter().map(dims).collect(),
        });
    }
    Ok(Graph {
        input: input.name.clone(),
        input_dims: dims(input).unwrap_or_default(),
        output: output.name.clone(),
        nodes,
        constants: constants.values,
        opset: modules.opset,
    })
}

/// The operator of `node`, or the name of one this runtime does not run.
fn op(node: &IrNode) -> Result<Op, String> {
    use IrNode as N;
    let unary = |u| Ok(Op::Unary(u));
    match node {
        N::Identity(_) | N::Dropout(_) => unary(Unary::Identity),
        N::Relu(_) => unary(Unary::Relu),
        N::Sigmoid(_) => unary(Unary::Sigmoid),
        N::Tanh(_) => unary(Unary::Tanh),
        N::Erf(_) => unary(Unary::Erf),
        N::Exp(_) => unary(Unary::Exp),
        N::Log(_) => unary(Unary::Log),
        N::Sqrt(_) => unary(Unary::Sqrt),
        N::Neg(_) => unary(Unary::Neg),
        N::Abs(_) => unary(Unary::Abs),
        N::Reciprocal(_) => unary(Unary::Reciprocal),
        N::Not(_) => unary(Unary::Not),
        N::HardSwish(_) => unary(Unary::HardSwish),
        N::Softplus(_) => unary(Unary::Softplus),
        N::Mish(_) => unary(Unary::Mish),
        N::Gelu(n) => unary(match n.config.approximate {
            onnx_ir::node::gelu::GeluApproximate::Exact => Unary::Gelu,
            onnx_ir::node::gelu::GeluApproximate::Tanh => Unary::GeluTanh,
        }),
        N::LeakyRelu(n) => unary(Unary::LeakyRelu(n.config.alpha as f32)),
        N::HardSigmoid(n) => unary(Unary::HardSigmoid {
            alpha: n.config.alpha as f32,
            beta: n.config.beta as f32,
        }),
        N::Clip(n) => {
            use onnx_ir::node::clip::ClipInput;
            let bound = |b: &Option<ClipInput>, default: f32| match b {
                None => Ok(default),
                Some(ClipInput::Static(s)) => Ok(scalar(s)),
                Some(ClipInput::Runtime(_)) => {
                    Err("Clip with bounds computed at run time".to_string())
                }
            };
            unary(Unary::Clip {
                min: bound(&n.config.min, f32::NEG_INFINITY)?,
                max: bound(&n.config.max, f32::INFINITY)?,
            })
        }
        N::Add(_) => Ok(Op::Add),
        N::Sub(_) => Ok(Op::Sub),
        N::Mod(n) => Ok(Op::Mod {
            fmod: n.config.fmod,
        }),
        N::ScatterND(n) => match &n.config.reduction {
            onnx_ir::node::scatter_nd::ScatterNDReduction::None => Ok(Op::ScatterNd),
            other => Err(format!("ScatterND with reduction {other:?}")),
        },
        N::Mul(_) => Ok(Op::Mul),
        N::Div(_) => Ok(Op::Div),
        N::Pow(_) => Ok(Op::Pow),
        N::Max(_) => Ok(Op::Max),
        N::Min(_) => Ok(Op::Min),
        N::Equal(_) => Ok(Op::Equal),
        N::Where(_) => Ok(Op::Where),
        N::Conv2d(n) => {
            let c = &n.config;
            Ok(Op::Conv {
                stride: c.stride,
                pads: pads(&c.padding),
                dilation: c.dilation,
                groups: c.groups,
            })
        }
        N::BatchNormalization(n) => Ok(Op::BatchNorm {
            epsilon: match &n.config {
                onnx_ir::node::batch_norm::BatchNormConfig::Static(c) => c.epsilon,
                onnx_ir::node::batch_norm::BatchNormConfig::Runtime(c) => c.epsilon,
            },
        }),
        N::MaxPool2d(n) => {
            let c = &n.config;
            Ok(Op::Pool(Pool {
                max: true,
                kernel: c.kernel_size,
                stride: c.strides,
                pads: pads(&c.padding),
                dilation: c.dilation,
                ceil_mode: c.ceil_mode,
                count_include_pad: false,
            }))
        }
        N::AveragePool2d(n) => {
            let c = &n.config;
            Ok(Op::Pool(Pool {
                max: false,
                kernel: c.kernel_size,
                stride: c.strides,
                pads: pads(&c.padding),
                dilation: c.dilation,
                ceil_mode: c.ceil_mode,
                count_include_pad: c.count_include_pad,
            }))
        }
        N::GlobalAveragePool(_) => Ok(Op::GlobalAveragePool),
        N::ReduceMean(n) => reduce(Reduce::Mean, &n.config),
        N::ReduceSum(n) => reduce(Reduce::Sum, &n.config),
        N::ReduceMax(n) => reduce(Reduce::Max, &n.config),
        N::ReduceMin(n) => reduce(Reduce::Min, &n.config),
        N::ReduceL2(n) => reduce(Reduce::L2, &n.config),
        N::GatherND(n) if n.config.batch_dims == 0 => Ok(Op::GatherNd),
        N::Flatten(n) => Ok(Op::Flatten {
            axis: n.config.axis,
        }),
        N::Reshape(n) => {
            use onnx_ir::node::reshape::ReshapeInput;
            Ok(Op::Reshape {
                shape: match &n.config.shape {
                    ReshapeInput::Static(s) => Some(s.clone()),
                    ReshapeInput::Runtime(_) => None,
                },
                allowzero: n.config.allowzero.unwrap_or(0) != 0,
            })
        }
        N::Transpose(n) => Ok(Op::Transpose {
            perm: n.config.perm.iter().map(|&p| p as usize).collect(),
        }),
        N::Squeeze(n) => {
            use onnx_ir::node::squeeze::SqueezeInput;
            Ok(Op::Squeeze {
                axes: match &n.config.axes {
                    None => Some(vec![]),
                    Some(SqueezeInput::Static(a)) => Some(a.clone()),
                    Some(SqueezeInput::Runtime(_)) => None,
                },
            })
        }
        N::Unsqueeze(n) => {
            use onnx_ir::node::unsqueeze::UnsqueezeConfig;
            Ok(Op::Unsqueeze {
                axes: match &n.config {
                    UnsqueezeConfig::Static(a) => Some(a.clone()),
                    UnsqueezeConfig::Runtime(_) => None,
                },
            })
        }
        N::Concat(n) => Ok(Op::Concat {
            axis: n.config.axis,
        }),
        N::Split(n) => {
            use onnx_ir::node::split::SplitSizesInput;
            let c = &n.config;
            let sizes = match (&c.split_sizes, c.split_size) {
                (Some(SplitSizesInput::Static(s)), _) => Some(s.clone()),
                (Some(SplitSizesInput::Runtime(_)), _) => {
                    return Err("Split with sizes computed at run time".into());
                }
                (None, Some(size)) => {
                    let parts = n.outputs.len();
                    Some(vec![size; parts])
                }
                (None, None) => None,
            };
            Ok(Op::Split {
                axis: c.axis,
                sizes,
            })
        }
        N::Slice(n) => {
            use onnx_ir::node::slice::SliceInput;
            let get = |s: &SliceInput| match s {
                SliceInput::Static(v) => Some(v.clone()),
                SliceInput::Runtime(_) => None,
            };
            let c = &n.config;
            Ok(Op::Slice {
                starts: get(&c.starts),
                ends: get(&c.ends),
                axes: c.axes.as_ref().map_or(Some(vec![]), get),
                steps: c.steps.as_ref().map_or(Some(vec![]), get),
            })
        }
        N::Gather(n) => Ok(Op::Gather {
            axis: n.config.axis,
        }),
        N::Expand(n) => {
            use onnx_ir::node::expand::ExpandConfig;
            Ok(Op::Expand {
                shape: match &n.config {
                    ExpandConfig::Static(s) => Some(s.clone()),
                    ExpandConfig::Runtime(_) => None,
                },
            })
        }
        N::Pad(n) => {
            use onnx_ir::node::pad::{ConstantValueInput, PadInput, PadMode};
            let c = &n.config;
            if !matches!(c.mode, PadMode::Constant) {
                return Err(format!("Pad in {:?} mode", c.mode));
            }
            let pads = match &c.pads {
                PadInput::Static(pads) => Some(pads.clone()),
                _ => None,
            };
            let ConstantValueInput::Static(value) = c.constant_value else {
                return Err("Pad with a value computed at run time".into());
            };
            Ok(Op::Pad { pads, value })
        }
        N::Linear(n) => Ok(Op::Linear {
            transpose_weight: n.config.transpose_weight,
        }),
        N::Gemm(n) => Ok(Op::Gemm {
            alpha: n.config.alpha,
            beta: n.config.beta,
            trans_a: n.config.trans_a != 0,
            trans_b: n.config.trans_b != 0,
        }),
        N::MatMul(_) => Ok(Op::MatMul),
        N::Einsum(n) if n.inputs.len() == 2 => {
            Op::einsum(&n.config.equation).ok_or(format!("Einsum \"{}\"", n.config.equation))
        }
        N::LayerNormalization(n) => Ok(Op::LayerNorm {
            axis: {
                let rank = n.inputs.first().map_or(1, |x| x.ty.rank()) as i64;
                let axis = n.config.axis;
                (if axis < 0 { axis + rank } else { axis }).max(0) as usize
            },
            epsilon: n.config.epsilon,
        }),
        N::Softmax(n) => Ok(Op::Softmax {
            axis: n.config.axis,
        }),
        N::LogSoftmax(n) => Ok(Op::LogSoftmax {
            axis: n.config.axis,
        }),
        N::Attention(n) => {
            let c = &n.config;
            let cache = n.inputs.iter().skip(4).any(|a| !a.is_optional());
            if cache || c.softcap != 0.0 {
                return Err("Attention with a cache or a softcap".into());
            }
            let boolean_mask = n
                .inputs
                .get(3)
                .is_some_and(|m| matches!(m.ty.elem_type(), onnx_ir::ir::DType::Bool(_)));
            Ok(Op::Attention {
                scale: c.scale,
                causal: c.is_causal,
                boolean_mask,
            })
        }
        N::Shape(n) => Ok(Op::Shape {
            start: n.config.start,
            end: n.config.end,
        }),
        N::Cast(n) => Ok(Op::Cast {
            to_float: n.config.to.is_float(),
        }),
        N::Range(n) => {
            use onnx_ir::node::range::RangeInput;
            let value = |r: &RangeInput| match r {
                RangeInput::Static(v) => Some(*v as f64),
                RangeInput::StaticFloat(v) => Some(*v),
                RangeInput::Runtime(_) => None,
            };
            let c = &n.config;
            Ok(Op::Range {
                start: value(&c.start),
                limit: value(&c.limit),
                delta: value(&c.delta),
            })
        }
        N::ConstantOfShape(n) => {
            use onnx_ir::node::constant_of_shape::ConstantOfShapeShape;
            let c = &n.config;
            Ok(Op::ConstantOfShape {
                shape: match &c.shape {
                    ConstantOfShapeShape::Static(s) => Some(s.clone()),
                    ConstantOfShapeShape::Runtime(_) => None,
                },
                value: c
                    .value
                    .as_ref()
                    .and_then(|v| v.iter::<f64>().next())
                    .unwrap_or(0.0),
            })
        }
        N::Custom(c) => Err(format!("{}::{}", display_domain(&c.domain), c.op_type)),
        other => Err(other.node_type().to_string()),
    }
}

fn display_domain(domain: &str) -> &str {
    if domain.is_empty() { "ai.onnx" } else { domain }
}

fn scalar(s: &onnx_ir::ir::Scalar) -> f32 {
    use onnx_ir::ir::Scalar;
    match *s {
        Scalar::Float(f) => f as f32,
        Scalar::Int(i) => i as f32,
        Scalar::UInt(u) => u as f32,
        Scalar::Bool(b) => b as u8 as f32,
    }
}

/// top, left, bottom, right.
fn pads(padding: &PaddingConfig2d) -> [usize; 4] {
    match *padding {
        PaddingConfig2d::Valid => [0; 4],
        PaddingConfig2d::Explicit(top, left, bottom, right) => [top, left, bottom, right],
    }
}

fn reduce(kind: Reduce, config: &onnx_ir::node::reduce::ReduceConfig) -> Result<Op, String> {
    use onnx_ir::node::reduce::ReduceAxes;
    let axes = match &config.axes {
        ReduceAxes::Static(a) if a.is_empty() && config.noop_with_empty_axes => {
            return Ok(Op::Unary(Unary::Identity));
        }
        ReduceAxes::Static(a) => Some(a.clone()),
        ReduceAxes::Runtime(_) => None,
    };
    Ok(Op::Reduce {
        kind,
        axes,
        keepdims: config.keepdims,
    })
}
