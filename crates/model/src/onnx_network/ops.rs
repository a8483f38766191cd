//! Each ONNX operator on [`Value`]s, on burn's tensor operations (so autodiff differentiates
//! them) and the workspace's kernels for convolution, BatchNorm and Linear.

use burn::prelude::*;
use burn::tensor::activation;
use burn::tensor::ops::{ConvOptions, PadMode};
use kernels::Kernels;
use onnx::{Op, Pool, Reduce, Unary};

use super::value::{MAX_RANK, Value, padded};
use crate::Rectifier;

type Inputs<B> = Vec<Option<Value<B>>>;

/// `op` applied to `inputs` (the node's, `None` where left out), its `outputs` results.
pub fn apply<B: Kernels, R: Rectifier<B>>(
    op: &Op,
    mut inputs: Inputs<B>,
    outputs: usize,
    relu: &R,
    device: &B::Device,
) -> Result<Vec<Value<B>>, String> {
    let mut take = |i: usize| -> Result<Value<B>, String> {
        inputs
            .get_mut(i)
            .and_then(Option::take)
            .ok_or_else(|| format!("input {i} is missing"))
    };
    let one = |v: Value<B>| Ok(vec![v]);
    match op {
        Op::Unary(u) => one(unary(*u, take(0)?, relu)),
        Op::Add => one(binary(take(0)?, take(1)?, |a, b| a + b)),
        Op::Sub => one(binary(take(0)?, take(1)?, |a, b| a - b)),
        Op::Mul => one(binary(take(0)?, take(1)?, |a, b| a * b)),
        Op::Div => one(binary(take(0)?, take(1)?, |a, b| a / b)),
        Op::Pow => one(expanded(take(0)?, take(1)?, |a, b| a.powf(b))),
        Op::Max => one(expanded(take(0)?, take(1)?, |a, b| a.max_pair(b))),
        Op::Min => one(expanded(take(0)?, take(1)?, |a, b| a.min_pair(b))),
        Op::Equal => one(expanded(take(0)?, take(1)?, |a, b| a.equal(b).float())),
        Op::Where => {
            let (c, x, y) = (take(0)?, take(1)?, take(2)?);
            let (c, x) = Value::broadcast(c, x);
            let (x, y) = Value::broadcast(x, y);
            let (c, y) = Value::broadcast(c, y);
            let rank = x.rank.max(y.rank).max(c.rank);
            let t = y.tensor.mask_where(c.tensor.bool(), x.tensor);
            one(Value { tensor: t, rank })
        }
        Op::Conv {
            stride,
            pads,
            dilation,
            groups,
        } => {
            let (x, w) = (take(0)?.to::<4>(), take(1)?.to::<4>());
            let bias = take(2).ok().map(|b| b.to::<1>());
            let [top, left, bottom, right] = *pads;
            let (x, padding) = if top == bottom && left == right {
                (x, [top, left])
            } else {
                (
                    x.pad((left, right, top, bottom), PadMode::Constant(0.0)),
                    [0, 0],
                )
            };
            let options = ConvOptions::new(*stride, padding, *dilation, *groups);
            let out = kernels::conv2d_options(x, w, bias.clone(), options);
            let out = match bias {
                Some(bias) => relu.biased(out, bias),
                None => out,
            };
            one(Value::new(out))
        }
        Op::BatchNorm { epsilon } => {
            let x = take(0)?.to::<4>();
            let [gamma, beta, mean, var] =
                [take(1)?, take(2)?, take(3)?, take(4)?].map(Value::to::<1>);
            let scale = gamma / (var + *epsilon).sqrt();
            let shift = beta - mean * scale.clone();
            let out = kernels::channel_affine(x, scale, shift.clone());
            one(Value::new(relu.biased(out, shift)))
        }
        Op::Pool(pool) => one(Value::new(pool2d(pool, take(0)?.to::<4>())?)),
        Op::GlobalAveragePool => one(Value::new(take(0)?.to::<4>().mean_dim(3).mean_dim(2))),
        Op::Reduce {
            kind,
            axes,
            keepdims,
        } => {
            let x = take(0)?;
            let axes = match axes {
                Some(a) => a.iter().map(|&a| a as i64).collect(),
                None => take(1).map(|v| v.ints()).unwrap_or_default(),
            };
            one(reduce(x, *kind, &axes, *keepdims))
        }
        Op::Flatten { axis } => {
            let x = take(0)?;
            let dims = x.dims();
            let left: usize = dims[..*axis].iter().product();
            let right: usize = dims[*axis..].iter().product();
            one(x.reshape(&[left, right]))
        }
        Op::Reshape { shape, allowzero } => {
            let x = take(0)?;
            let shape = match shape {
                Some(s) => s.clone(),
                None => take(1)?.ints(),
            };
            let dims = reshaped(&x.dims(), &shape, *allowzero)?;
            one(x.reshape(&dims))
        }
        Op::Transpose { perm } => one(permuted(take(0)?, perm)),
        Op::Mod { fmod } => one(expanded(take(0)?, take(1)?, |a, b| {
            let q = a.clone() / b.clone();
            let q = match fmod {
                true => q.clone().sign() * q.abs().floor(),
                false => q.floor(),
            };
            a - b * q
        })),
        Op::GatherNd => one(gather_nd(take(0)?, take(1)?)?),
        Op::ScatterNd => one(scatter_nd(take(0)?, take(1)?, take(2)?)?),
        Op::Einsum { a, b, out } => one(einsum(take(0)?, take(1)?, a, b, out)?),
        Op::Squeeze { axes } => {
            let x = take(0)?;
            let dims = x.dims();
            let axes = match axes {
                Some(a) => a.clone(),
                None => take(1)?.ints(),
            };
            let axes = normalise(&axes, dims.len());
            let kept: Vec<usize> = dims
                .iter()
                .enumerate()
                .filter(|(i, d)| {
                    !(if axes.is_empty() {
                        **d == 1
                    } else {
                        axes.contains(i)
                    })
                })
                .map(|(_, d)| *d)
                .collect();
            one(x.reshape(&kept))
        }
        Op::Unsqueeze { axes } => {
            let x = take(0)?;
            let axes = match axes {
                Some(a) => a.clone(),
                None => take(1)?.ints(),
            };
            let mut dims = x.dims();
            let rank = dims.len() + axes.len();
            let mut axes = normalise(&axes, rank);
            axes.sort();
            for a in axes {
                dims.insert(a, 1);
            }
            one(x.reshape(&dims))
        }
        Op::Concat { axis } => {
            let parts: Vec<Value<B>> = inputs.into_iter().flatten().collect();
            let rank = parts.iter().map(|p| p.rank).max().unwrap_or(1);
            // Empty parts add nothing (and burn concatenates none of them).
            let kept: Vec<Value<B>> = parts
                .iter()
                .filter(|p| p.tensor.dims().iter().all(|&d| d > 0))
                .cloned()
                .collect();
            let parts = if kept.is_empty() { parts } else { kept };
            let dim = MAX_RANK - rank + axis;
            let t = Tensor::cat(parts.into_iter().map(|p| p.tensor).collect(), dim);
            one(Value { tensor: t, rank })
        }
        Op::Split { axis, sizes } => {
            let x = take(0)?;
            let total = x.dims()[*axis];
            let sizes = match sizes {
                Some(s) => s.clone(),
                None => match take(1) {
                    Ok(v) => v.ints().iter().map(|&s| s as usize).collect(),
                    Err(_) => vec![total.div_ceil(outputs); outputs],
                },
            };
            let dim = x.axis(*axis);
            let mut start = 0;
            let mut parts = Vec::new();
            for size in sizes {
                let size = size.min(total - start);
                parts.push(x.clone().map(|t| t.narrow(dim, start, size)));
                start += size;
            }
            Ok(parts)
        }
        Op::Slice {
            starts,
            ends,
            axes,
            steps,
        } => {
            let x = take(0)?;
            let mut read = |v: &Option<Vec<i64>>, i: usize| match v {
                Some(v) => Ok(v.clone()),
                None => take(i).map(|v| v.ints()),
            };
            let (starts, ends) = (read(starts, 1)?, read(ends, 2)?);
            let (axes, steps) = (read(axes, 3)?, read(steps, 4)?);
            one(slice(x, &starts, &ends, &axes, &steps))
        }
        Op::Gather { axis } => {
            let (x, indices) = (take(0)?, take(1)?);
            let dims = x.dims();
            let index_dims = indices.dims();
            let ids: Vec<i64> = indices
                .ints()
                .into_iter()
                .map(|i| if i < 0 { i + dims[*axis] as i64 } else { i })
                .collect();
            let device = x.tensor.device();
            let ids = Tensor::<B, 1, Int>::from_data(
                TensorData::new(ids, [index_dims.iter().product::<usize>()]),
                &device,
            );
            let dim = x.axis(*axis);
            let picked = x.map(|t| t.select(dim, ids));
            let mut out = dims[..*axis].to_vec();
            out.extend(&index_dims);
            out.extend(&dims[axis + 1..]);
            one(picked.reshape(&out))
        }
        Op::Expand { shape } => {
            let x = take(0)?;
            let shape = match shape {
                Some(s) => s.clone(),
                None => take(1)?.ints(),
            };
            let dims = x.dims();
            let rank = dims.len().max(shape.len());
            let target: Vec<usize> = (0..rank)
                .map(|i| {
                    let d = (i + dims.len()).checked_sub(rank).map_or(1, |j| dims[j]);
                    let s = (i + shape.len())
                        .checked_sub(rank)
                        .map_or(1, |j| shape[j] as usize);
                    if d == 1 { s } else { d }
                })
                .collect();
            bounded("Expand", &target)?;
            let x = Value {
                tensor: x.tensor,
                rank,
            };
            one(x.map(|t| t.expand(padded(&target))))
        }
        Op::Pad { pads, value } => {
            let x = take(0)?;
            let pads = match pads {
                Some(p) => p.clone(),
                None => pairs(&take(1)?.ints(), x.rank)?,
            };
            let pads = &pads;
            let mut dims = x.dims();
            for (d, (before, after)) in dims.iter_mut().zip(pads) {
                *d = d.saturating_add(*before).saturating_add(*after);
            }
            bounded("Pad", &dims)?;
            one(pad(x, pads, *value))
        }
        Op::Linear { transpose_weight } => {
            let (x, w) = (take(0)?, take(1)?);
            let bias = take(2).ok().map(|b| b.to::<1>());
            let w = w.to::<2>();
            let w = if *transpose_weight { w.transpose() } else { w };
            let mut dims = x.dims();
            if let Some(last) = dims.last_mut() {
                *last = w.dims()[1];
            }
            bounded("Linear", &dims)?;
            one(linear(x, w, bias))
        }
        Op::Gemm {
            alpha,
            beta,
            trans_a,
            trans_b,
        } => {
            let (a, b) = (take(0)?.to::<2>(), take(1)?.to::<2>());
            let a = if *trans_a { a.transpose() } else { a };
            let b = if *trans_b { b.transpose() } else { b };
            bounded("Gemm", &[a.dims()[0], b.dims()[1]])?;
            let mut y = Value::new(a.matmul(b) * *alpha);
            if let Ok(c) = take(2) {
                y = binary(y, c.map(|t| t * *beta), |a, b| a + b);
            }
            one(y)
        }
        Op::MatMul => {
            let (a, b) = (take(0)?, take(1)?);
            let (da, db) = (a.tensor.dims(), b.tensor.dims());
            let mut out: Vec<usize> = (0..MAX_RANK - 2).map(|i| da[i].max(db[i])).collect();
            out.extend([da[MAX_RANK - 2], db[MAX_RANK - 1]]);
            bounded("MatMul", &out)?;
            if b.rank == 2 && a.rank >= 2 {
                return one(linear(a, b.to::<2>(), None));
            }
            one(matmul(a, b))
        }
        Op::LayerNorm { axis, epsilon } => {
            let x = take(0)?;
            let scale = take(1)?;
            let bias = take(2).ok();
            one(layer_norm(x, *axis, *epsilon, scale, bias))
        }
        Op::Softmax { axis } => {
            let x = take(0)?;
            let dim = x.axis(*axis);
            one(x.map(|t| activation::softmax(t, dim)))
        }
        Op::LogSoftmax { axis } => {
            let x = take(0)?;
            let dim = x.axis(*axis);
            one(x.map(|t| activation::log_softmax(t, dim)))
        }
        Op::Attention {
            scale,
            causal,
            boolean_mask,
        } => {
            if *causal {
                return Err("causal attention".into());
            }
            let (q, k, v) = (take(0)?, take(1)?, take(2)?);
            if q.rank != 4 {
                return Err(format!("Attention on rank-{} inputs", q.rank));
            }
            let depth = q.dims()[3];
            let scale = scale.unwrap_or(1.0 / (depth as f64).sqrt());
            let k = k.map(|t| t.swap_dims(4, 5));
            let mut scores = matmul(q, k).map(|t| t * scale);
            if let Ok(mask) = take(3) {
                scores = match boolean_mask {
                    false => expanded(scores, mask, |s, m| s + m),
                    true => expanded(scores, mask, |s, m| {
                        s.mask_fill(m.equal_elem(0.0), f32::NEG_INFINITY)
                    }),
                };
            }
            one(matmul(scores.map(|t| activation::softmax(t, 5)), v))
        }
        Op::Shape { start, end } => {
            let x = take(0)?;
            let dims: Vec<f32> = x.dims()[*start..*end].iter().map(|&d| d as f32).collect();
            let n = dims.len();
            one(Value::from_vec(dims, &[n], &x.tensor.device()))
        }
        Op::Cast { to_float } => {
            let x = take(0)?;
            one(if *to_float {
                x
            } else {
                x.map(|t| t.int().float())
            })
        }
        Op::ConstantOfShape { shape, value } => {
            let shape = match shape {
                Some(s) => s.clone(),
                None => take(0)?.ints(),
            };
            let dims: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
            bounded("ConstantOfShape", &dims)?;
            let count = dims.iter().product::<usize>();
            one(Value::from_vec(vec![*value as f32; count], &dims, device))
        }
        Op::Range {
            start,
            limit,
            delta,
        } => {
            let mut read = |given: &Option<f64>, i: usize| -> Result<f64, String> {
                match given {
                    Some(v) => Ok(*v),
                    None => Ok(take(i)?
                        .floats()
                        .first()
                        .copied()
                        .ok_or("an empty Range input")? as f64),
                }
            };
            let (start, limit, delta) = (read(start, 0)?, read(limit, 1)?, read(delta, 2)?);
            let count = ((limit - start) / delta).ceil();
            if !(count.is_finite() && delta != 0.0) {
                return Err(format!("Range({start}, {limit}, {delta})"));
            }
            let count = count.max(0.0) as usize;
            bounded("Range", &[count])?;
            let values = (0..count)
                .map(|i| (start + i as f64 * delta) as f32)
                .collect();
            one(Value::from_vec(values, &[count], device))
        }
    }
}

/// The most values one operator may make for one image: 2^28, 1 GiB of f32. The operators whose
/// output can outgrow their inputs and weights are checked before they allocate, so that a few
/// bytes of a hostile file's shapes cannot ask for terabytes.
const MAX_VALUES: usize = 1 << 28;

fn bounded(op: &str, dims: &[usize]) -> Result<(), String> {
    let fits = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .is_some_and(|n| n <= MAX_VALUES);
    if fits {
        Ok(())
    } else {
        Err(format!(
            "{op} would make a tensor of dims {dims:?}, more than {MAX_VALUES} values"
        ))
    }
}

fn unary<B: Backend, R: Rectifier<B>>(u: Unary, x: Value<B>, relu: &R) -> Value<B> {
    x.map(|t| match u {
        Unary::Identity => t,
        Unary::Relu => relu.relu(t),
        Unary::Sigmoid => activation::sigmoid(t),
        Unary::Tanh => t.tanh(),
        Unary::Erf => t.erf(),
        Unary::Exp => t.exp(),
        Unary::Log => t.log(),
        Unary::Sqrt => t.sqrt(),
        Unary::Neg => t.neg(),
        Unary::Abs => t.abs(),
        Unary::Reciprocal => t.recip(),
        Unary::Not => t.equal_elem(0.0).float(),
        Unary::HardSwish => t.clone() * (t + 3.0).clamp(0.0, 6.0) / 6.0,
        Unary::Gelu => activation::gelu(t),
        Unary::GeluTanh => {
            let inner = (t.clone() + t.clone().powi_scalar(3) * 0.044715)
                * (2.0 / std::f64::consts::PI).sqrt();
            t * (inner.tanh() + 1.0) * 0.5
        }
        Unary::Softplus => activation::softplus(t, 1.0),
        Unary::Mish => activation::mish(t),
        Unary::LeakyRelu(alpha) => activation::leaky_relu(t, alpha as f64),
        Unary::HardSigmoid { alpha, beta } => (t * alpha + beta).clamp(0.0, 1.0),
        Unary::Clip { min, max } => {
            let t = if min.is_finite() { t.clamp_min(min) } else { t };
            if max.is_finite() { t.clamp_max(max) } else { t }
        }
    })
}

/// An element-wise operation burn broadcasts itself.
fn binary<B: Backend>(
    a: Value<B>,
    b: Value<B>,
    f: impl FnOnce(Tensor<B, MAX_RANK>, Tensor<B, MAX_RANK>) -> Tensor<B, MAX_RANK>,
) -> Value<B> {
    let rank = a.rank.max(b.rank);
    Value {
        tensor: f(a.tensor, b.tensor),
        rank,
    }
}

/// An element-wise operation on operands expanded to one shape first.
fn expanded<B: Backend>(
    a: Value<B>,
    b: Value<B>,
    f: impl FnOnce(Tensor<B, MAX_RANK>, Tensor<B, MAX_RANK>) -> Tensor<B, MAX_RANK>,
) -> Value<B> {
    let (a, b) = Value::broadcast(a, b);
    binary(a, b, f)
}

fn pool2d<B: Kernels>(pool: &Pool, x: Tensor<B, 4>) -> Result<Tensor<B, 4>, String> {
    let [top, left, bottom, right] = pool.pads;
    if top != bottom || left != right {
        return Err(format!("pooling with uneven padding {:?}", pool.pads));
    }
    let padding = [top, left];
    Ok(if pool.max {
        if !pool.ceil_mode && pool.dilation == [1, 1] {
            kernels::max_pool2d(x, pool.kernel, pool.stride, padding)
        } else {
            burn::tensor::module::max_pool2d(
                x,
                pool.kernel,
                pool.stride,
                padding,
                pool.dilation,
                pool.ceil_mode,
            )
        }
    } else {
        if pool.dilation != [1, 1] {
            return Err("dilated average pooling".into());
        }
        burn::tensor::module::avg_pool2d(
            x,
            pool.kernel,
            pool.stride,
            padding,
            pool.count_include_pad,
            pool.ceil_mode,
        )
    })
}

/// `axes` (negative from the end) as indices into `rank` dims.
fn normalise(axes: &[i64], rank: usize) -> Vec<usize> {
    axes.iter()
        .map(|&a| {
            if a < 0 {
                (a + rank as i64) as usize
            } else {
                a as usize
            }
        })
        .collect()
}

fn reduce<B: Backend>(x: Value<B>, kind: Reduce, axes: &[i64], keepdims: bool) -> Value<B> {
    let dims = x.dims();
    let mut axes = normalise(axes, dims.len());
    if axes.is_empty() {
        axes = (0..dims.len()).collect();
    }
    let offset = MAX_RANK - x.rank;
    let mut t = x.tensor;
    if kind == Reduce::L2 {
        t = t.powi_scalar(2);
    }
    for &a in &axes {
        let d = offset + a;
        t = match kind {
            Reduce::Mean => t.mean_dim(d),
            Reduce::Sum => t.sum_dim(d),
            Reduce::Max => t.max_dim(d),
            Reduce::Min => t.min_dim(d),
            Reduce::L2 => t.sum_dim(d),
        };
    }
    if kind == Reduce::L2 {
        t = t.sqrt();
    }
    let kept = Value {
        tensor: t,
        rank: dims.len(),
    };
    if keepdims {
        return kept;
    }
    let out: Vec<usize> = dims
        .iter()
        .enumerate()
        .filter(|(i, _)| !axes.contains(i))
        .map(|(_, d)| *d)
        .collect();
    kept.reshape(&out)
}

/// ONNX Reshape's target: 0 copies the input's dim (unless `allowzero`), -1 takes the rest.
fn reshaped(dims: &[usize], shape: &[i64], allowzero: bool) -> Result<Vec<usize>, String> {
    let total: usize = dims.iter().product();
    let mut out: Vec<usize> = shape
        .iter()
        .enumerate()
        .map(|(i, &s)| match s {
            0 if !allowzero => dims.get(i).copied().unwrap_or(0),
            s if s < 0 => 0,
            s => s as usize,
        })
        .collect();
    if let Some(free) = shape.iter().position(|&s| s == -1) {
        let known: usize = out
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != free)
            .map(|(_, d)| *d)
            .product();
        if known == 0 || total % known != 0 {
            return Err(format!("cannot reshape {dims:?} to {shape:?}"));
        }
        out[free] = total / known;
    }
    if out.iter().product::<usize>() != total {
        return Err(format!("cannot reshape {dims:?} to {shape:?}"));
    }
    Ok(out)
}

fn slice<B: Backend>(
    x: Value<B>,
    starts: &[i64],
    ends: &[i64],
    axes: &[i64],
    steps: &[i64],
) -> Value<B> {
    let dims = x.dims();
    let axes: Vec<usize> = if axes.is_empty() {
        (0..starts.len()).collect()
    } else {
        normalise(axes, dims.len())
    };
    let mut x = x;
    for (i, &axis) in axes.iter().enumerate() {
        let n = dims[axis] as i64;
        let step = steps.get(i).copied().unwrap_or(1);
        let clampi = |v: i64, lo: i64, hi: i64| v.clamp(lo, hi);
        let resolve = |v: i64| if v < 0 { v + n } else { v };
        let dim = x.axis(axis);
        let indices: Vec<i64> = if step > 0 {
            let (s, e) = (
                clampi(resolve(starts[i]), 0, n),
                clampi(resolve(ends[i]), 0, n),
            );
            if step == 1 {
                x = match (e - s).max(0) as usize {
                    // Shape arithmetic slices empty ranges (`shape[2:]` of a 2-vector); burn
                    // narrows to nothing by building the empty tensor itself.
                    0 => x.map(|t| {
                        let mut dims = t.dims();
                        dims[dim] = 0;
                        Tensor::from_data(TensorData::new(Vec::<f32>::new(), dims), &t.device())
                    }),
                    len => x.map(|t| t.narrow(dim, s as usize, len)),
                };
                continue;
            }
            (s..e).step_by(step as usize).collect()
        } else {
            let (s, e) = (
                clampi(resolve(starts[i]), -1, n - 1),
                clampi(resolve(ends[i]), -1, n - 1),
            );
            let mut v = Vec::new();
            let mut k = s;
            while k > e {
                v.push(k);
                k += step;
            }
            v
        };
        let device = x.tensor.device();
        let count = indices.len();
        let ids = Tensor::<B, 1, Int>::from_data(TensorData::new(indices, [count]), &device);
        x = x.map(|t| t.select(dim, ids));
    }
    x
}

fn pad<B: Backend>(x: Value<B>, pads: &[(usize, usize)], value: f32) -> Value<B> {
    let mut x = x;
    for (axis, &(before, after)) in pads.iter().enumerate() {
        let dim = x.axis(axis);
        let device = x.tensor.device();
        let block = |size: usize, t: &Tensor<B, MAX_RANK>| {
            let mut dims = t.dims();
            dims[dim] = size;
            Tensor::<B, MAX_RANK>::full(dims, value, &device)
        };
        if before + after == 0 {
            continue;
        }
        x = x.map(|t| {
            let mut parts = Vec::new();
            if before > 0 {
                parts.push(block(before, &t));
            }
            let (a, b) = (block(after, &t), after > 0);
            parts.push(t);
            if b {
                parts.push(a);
            }
            Tensor::cat(parts, dim)
        });
    }
    x
}

/// `x · w + bias` on the last axis of `x`, through the kernels' Linear.
fn linear<B: Kernels>(x: Value<B>, w: Tensor<B, 2>, bias: Option<Tensor<B, 1>>) -> Value<B> {
    let mut dims = x.dims();
    let inner = *dims.last().expect("rank ≥ 1");
    let rows = dims.iter().product::<usize>() / inner.max(1);
    let out = kernels::linear_with(x.reshape(&[rows, inner]).to::<2>(), w.clone(), bias);
    *dims.last_mut().unwrap() = w.dims()[1];
    Value::new(out).reshape(&dims)
}

/// ONNX GatherND without batch dims: the slices of `data` that the index tuples (the last
/// axis of `indices`) name, as one `select` on `data` flattened over the tuple's axes.
fn gather_nd<B: Backend>(data: Value<B>, indices: Value<B>) -> Result<Value<B>, String> {
    let dims = data.dims();
    let index_dims = indices.dims();
    let k = index_dims.last().copied().unwrap_or(0);
    if k == 0 || k > dims.len() {
        return Err(format!("GatherND index tuples of {k} into {dims:?}"));
    }
    let rows: usize = dims[..k].iter().product();
    let per: usize = dims[k..].iter().product();
    let mut flat = Vec::new();
    for tuple in indices.ints().chunks(k) {
        let mut at = 0i64;
        for (d, &i) in tuple.iter().enumerate() {
            let n = dims[d] as i64;
            let i = if i < 0 { i + n } else { i };
            if !(0..n).contains(&i) {
                return Err(format!("GatherND index {tuple:?} outside {dims:?}"));
            }
            at = at * n + i;
        }
        flat.push(at);
    }
    let count = flat.len();
    let device = data.tensor.device();
    let ids = Tensor::<B, 1, Int>::from_data(TensorData::new(flat, [count]), &device);
    let picked = data.reshape(&[rows, per]).to::<2>().select(0, ids);
    let mut out: Vec<usize> = index_dims[..index_dims.len() - 1].to_vec();
    out.extend(&dims[k..]);
    Ok(Value::new(picked).reshape(&out))
}

/// ONNX's pads (every axis's start, then every axis's end) as (before, after) per axis.
fn pairs(pads: &[i64], rank: usize) -> Result<Vec<(usize, usize)>, String> {
    if pads.len() != 2 * rank || pads.iter().any(|&p| p < 0) {
        return Err(format!("Pad with pads {pads:?} on a rank-{rank} tensor"));
    }
    Ok((0..rank)
        .map(|i| (pads[i] as usize, pads[rank + i] as usize))
        .collect())
}

/// ONNX ScatterND without reduction: each index tuple (the last axis of `indices`, `k` long)
/// names a slice of `data` over its first `k` axes, replaced by the matching slice of
/// `updates`. Slice assignment keeps it differentiable.
fn scatter_nd<B: Backend>(
    data: Value<B>,
    indices: Value<B>,
    updates: Value<B>,
) -> Result<Value<B>, String> {
    let (dims, rank) = (data.dims(), data.rank);
    let k = indices.dims().last().copied().unwrap_or(0);
    let indices = indices.ints();
    if k == 0 || k > dims.len() {
        return Err(format!("ScatterND index tuples of {k} into {dims:?}"));
    }
    let per: usize = dims[k..].iter().product();
    let count = indices.len() / k;
    if updates.dims().iter().product::<usize>() != count * per {
        return Err(format!(
            "ScatterND: {count} slices of {:?} from updates of dims {:?}",
            &dims[k..],
            updates.dims()
        ));
    }
    let offset = MAX_RANK - rank;
    let mut out = data.tensor;
    let flat_updates = updates.reshape(&[count, per]).to::<2>();
    for (t, tuple) in indices.chunks(k).enumerate() {
        let mut ranges: Vec<std::ops::Range<usize>> = (0..MAX_RANK).map(|_| 0..1).collect();
        let mut block = [1usize; MAX_RANK];
        for (axis, range) in ranges.iter_mut().enumerate().skip(offset) {
            let d = axis - offset;
            *range = if d < k {
                let i = tuple[d];
                let i = if i < 0 { i + dims[d] as i64 } else { i };
                if i < 0 || i as usize >= dims[d] {
                    return Err(format!("ScatterND index {tuple:?} outside {dims:?}"));
                }
                i as usize..i as usize + 1
            } else {
                block[axis] = dims[d];
                0..dims[d]
            };
        }
        let slice = flat_updates.clone().narrow(0, t, 1).reshape(block);
        let ranges: [std::ops::Range<usize>; MAX_RANK] =
            ranges.try_into().expect("MAX_RANK ranges");
        out = out.slice_assign(ranges, slice);
    }
    Ok(Value { tensor: out, rank })
}

/// `x` with its ONNX axes in the order `perm`.
fn permuted<B: Backend>(x: Value<B>, perm: &[usize]) -> Value<B> {
    let offset = MAX_RANK - x.rank;
    let perm: [usize; MAX_RANK] = std::array::from_fn(|i| {
        if i < offset {
            i
        } else {
            offset + perm[i - offset]
        }
    });
    x.map(|t| t.permute(perm))
}

/// A two-operand Einsum as one batched matrix product: the letters both operands share and
/// the output keeps are the batch, those they share and it drops are contracted; each
/// operand is permuted and flattened to `[batch, rows, inner]`, and the product back.
fn einsum<B: Backend>(
    a: Value<B>,
    b: Value<B>,
    la: &[char],
    lb: &[char],
    out: &[char],
) -> Result<Value<B>, String> {
    let (da, db) = (a.dims(), b.dims());
    if da.len() != la.len() || db.len() != lb.len() {
        return Err(format!("Einsum operands of dims {da:?} and {db:?}"));
    }
    let size = |c: &char| match (
        la.iter().position(|x| x == c),
        lb.iter().position(|x| x == c),
    ) {
        (Some(i), Some(j)) if da[i] != db[j] => {
            Err(format!("Einsum: {c} is {} and {}", da[i], db[j]))
        }
        (Some(i), _) => Ok(da[i]),
        (None, Some(j)) => Ok(db[j]),
        (None, None) => Err(format!("Einsum: {c} is in no operand")),
    };
    let batch: Vec<char> = out
        .iter()
        .copied()
        .filter(|c| la.contains(c) && lb.contains(c))
        .collect();
    let rows: Vec<char> = out.iter().copied().filter(|c| !lb.contains(c)).collect();
    let cols: Vec<char> = out.iter().copied().filter(|c| !la.contains(c)).collect();
    let inner: Vec<char> = la
        .iter()
        .copied()
        .filter(|c| lb.contains(c) && !out.contains(c))
        .collect();
    let product = |letters: &[char]| -> Result<usize, String> {
        letters.iter().map(size).try_fold(1, |n, d| Ok(n * d?))
    };
    let (nb, nr, nc, ni) = (
        product(&batch)?,
        product(&rows)?,
        product(&cols)?,
        product(&inner)?,
    );
    bounded("Einsum", &[nb, nr, nc])?;
    let order = |letters: &[char], groups: [&[char]; 3]| -> Vec<usize> {
        groups
            .iter()
            .flat_map(|g| g.iter())
            .map(|c| {
                letters
                    .iter()
                    .position(|x| x == c)
                    .expect("a letter of the term")
            })
            .collect()
    };
    let a = permuted(a, &order(la, [&batch, &rows, &inner])).reshape(&[nb, nr, ni]);
    let b = permuted(b, &order(lb, [&batch, &inner, &cols])).reshape(&[nb, ni, nc]);
    let done: Vec<char> = [&batch[..], &rows, &cols].concat();
    let dims: Vec<usize> = done.iter().map(size).collect::<Result<_, _>>()?;
    let y = matmul(a, b).reshape(&dims);
    Ok(permuted(y, &order(&done, [out, &[], &[]])))
}

/// A batched matrix product, the batch dims broadcast.
fn matmul<B: Backend>(a: Value<B>, b: Value<B>) -> Value<B> {
    let rank = a.rank.max(b.rank);
    let (da, db) = (a.tensor.dims(), b.tensor.dims());
    let batch: Vec<usize> = (0..MAX_RANK - 2).map(|i| da[i].max(db[i])).collect();
    let expand = |t: Tensor<B, MAX_RANK>, d: [usize; MAX_RANK]| {
        let mut target = d;
        target[..MAX_RANK - 2].copy_from_slice(&batch);
        if target == d { t } else { t.expand(target) }
    };
    let (ta, tb) = (expand(a.tensor, da), expand(b.tensor, db));
    Value {
        tensor: ta.matmul(tb),
        rank,
    }
}

fn layer_norm<B: Backend>(
    x: Value<B>,
    axis: usize,
    epsilon: f64,
    scale: Value<B>,
    bias: Option<Value<B>>,
) -> Value<B> {
    let dims = x.dims();
    let axis = if axis >= dims.len() {
        dims.len() - 1
    } else {
        axis
    };
    let rows: usize = dims[..axis].iter().product();
    let features: usize = dims[axis..].iter().product();
    let flat = x.reshape(&[rows, features]).to::<2>();
    let mean = flat.clone().mean_dim(1);
    let centred = flat - mean;
    let variance = centred.clone().powi_scalar(2).mean_dim(1);
    let normalised = Value::new(centred / (variance + epsilon).sqrt()).reshape(&dims);
    let scaled = binary(normalised, scale, |a, b| a * b);
    match bias {
        Some(bias) => binary(scaled, bias, |a, b| a + b),
        None => scaled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    fn einsum_of(equation: &str, a: Tensor<Flex, 3>, b: Tensor<Flex, 3>) -> Tensor<Flex, 3> {
        let Some(Op::Einsum { a: la, b: lb, out }) = Op::einsum(equation) else {
            panic!("{equation} is a product");
        };
        einsum(Value::new(a), Value::new(b), &la, &lb, &out)
            .unwrap()
            .to::<3>()
    }

    #[test]
    fn einsum_equals_the_matrix_products_it_names() {
        let device = Default::default();
        let random = |dims: [usize; 3]| {
            Tensor::<Flex, 3>::random(dims, burn::tensor::Distribution::Default, &device)
        };
        let (q, k) = (random([2, 3, 4]), random([2, 5, 4]));
        let scores = einsum_of("bik,bjk->bij", q.clone(), k.clone());
        let expected = q.clone().matmul(k.clone().swap_dims(1, 2));
        scores
            .into_data()
            .assert_approx_eq::<f32>(&expected.into_data(), Default::default());
        // The output's letters in another order: the product, transposed.
        let v = random([2, 4, 6]);
        let transposed = einsum_of("bij,bjk->bki", q.clone(), v.clone());
        let expected = q.matmul(v).swap_dims(1, 2);
        transposed
            .into_data()
            .assert_approx_eq::<f32>(&expected.into_data(), Default::default());
    }

    fn values(v: Value<Flex>) -> (Vec<f32>, Vec<usize>) {
        let dims = v.dims();
        (v.floats(), dims)
    }

    fn of(values: &[f32], dims: &[usize]) -> Value<Flex> {
        Value::from_vec(values.to_vec(), dims, &Default::default())
    }

    fn run(op: Op, inputs: Vec<Value<Flex>>) -> (Vec<f32>, Vec<usize>) {
        let inputs = inputs.into_iter().map(Some).collect();
        let out = apply(&op, inputs, 1, &crate::PlainRelu, &Default::default()).unwrap();
        values(out.into_iter().next().unwrap())
    }

    #[test]
    fn mod_follows_the_divisor_or_with_fmod_the_dividend() {
        let (a, b) = (
            of(&[7.0, -7.0, 7.0, -7.0], &[4]),
            of(&[3.0, 3.0, -3.0, -3.0], &[4]),
        );
        let python = run(Op::Mod { fmod: false }, vec![a.clone(), b.clone()]).0;
        assert_eq!(python, [1.0, 2.0, -2.0, -1.0]);
        let c = run(Op::Mod { fmod: true }, vec![a, b]).0;
        assert_eq!(c, [1.0, -1.0, 1.0, -1.0]);
    }

    #[test]
    fn scatter_and_gather_nd_address_slices_by_index_tuples() {
        let data = of(&[0.0; 6], &[3, 2]);
        let indices = of(&[2.0, 0.0], &[2, 1]);
        let updates = of(&[5.0, 6.0, 7.0, 8.0], &[2, 2]);
        let scattered = run(Op::ScatterNd, vec![data, indices.clone(), updates]);
        assert_eq!(scattered, (vec![7.0, 8.0, 0.0, 0.0, 5.0, 6.0], vec![3, 2]));
        let data = of(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0], &[3, 2]);
        assert_eq!(
            run(Op::GatherNd, vec![data.clone(), indices]),
            (vec![4.0, 5.0, 0.0, 1.0], vec![2, 2])
        );
        let pairs = of(&[1.0, 1.0, 2.0, 0.0], &[2, 2]);
        assert_eq!(
            run(Op::GatherNd, vec![data, pairs]),
            (vec![3.0, 4.0], vec![2])
        );
    }

    #[test]
    fn range_reduce_l2_and_runtime_pads() {
        let range = Op::Range {
            start: Some(1.0),
            limit: Some(2.0),
            delta: Some(0.25),
        };
        assert_eq!(run(range, vec![]).0, [1.0, 1.25, 1.5, 1.75]);
        let l2 = Op::Reduce {
            kind: Reduce::L2,
            axes: Some(vec![1]),
            keepdims: false,
        };
        assert_eq!(
            run(l2, vec![of(&[3.0, 4.0, 0.0, 5.0], &[2, 2])]),
            (vec![5.0, 5.0], vec![2])
        );
        let pad = Op::Pad {
            pads: None,
            value: 9.0,
        };
        let padded = run(
            pad,
            vec![of(&[1.0, 2.0], &[1, 2]), of(&[0.0, 1.0, 0.0, 0.0], &[4])],
        );
        assert_eq!(padded, (vec![9.0, 1.0, 2.0], vec![1, 3]));
    }

    #[test]
    fn a_masked_attention_hides_what_the_mask_hides() {
        // One head, two tokens, depth 1: scores q·k = [[1, 2], [2, 4]] (scale 1).
        let q = of(&[1.0, 2.0], &[1, 1, 2, 1]);
        let v = of(&[10.0, 20.0], &[1, 1, 2, 1]);
        let attention = |boolean_mask| Op::Attention {
            scale: Some(1.0),
            causal: false,
            boolean_mask,
        };
        let hide_second = of(&[1.0, 0.0, 1.0, 0.0], &[2, 2]);
        let hidden = run(
            attention(true),
            vec![q.clone(), q.clone(), v.clone(), hide_second],
        );
        assert_eq!(hidden.0, [10.0, 10.0]);
        let added = of(&[0.0, f32::NEG_INFINITY, 0.0, f32::NEG_INFINITY], &[2, 2]);
        assert_eq!(
            run(attention(false), vec![q.clone(), q, v, added]).0,
            [10.0, 10.0]
        );
    }
}
