//! The CPU kernels on plain f32 slices, independent of burn: what [`crate::Kernels`] runs for
//! burn's CPU backend. Each is checked against its definition here and against burn's own
//! operation in `flex`'s tests.

use std::ops::Range;

pub mod conv;
pub mod matmul;
pub mod norm;
pub mod pool;
pub mod sgd;

/// `len` zeros, written rather than asked of the allocator zeroed: a zeroed allocation of a large
/// block makes the allocator hand back fresh pages, each a page fault on first write,
/// where filling a reused block costs one pass over memory that is already mapped.
pub(crate) fn zeros(len: usize) -> Vec<f32> {
    let mut values = Vec::with_capacity(len);
    values.resize(len, 0.0);
    values
}

/// The outputs `o < outputs` whose input position `o · stride + offset` lies inside
/// `0..input`, and the input position of the first of them: one kernel tap's valid range, for
/// im2col and pooling.
pub(crate) fn span_inside(
    offset: isize,
    stride: usize,
    input: usize,
    outputs: usize,
) -> (Range<usize>, usize) {
    let lo = if offset >= 0 {
        0
    } else {
        (-offset as usize).div_ceil(stride)
    };
    let room = input as isize - offset;
    let hi = if room <= 0 {
        0
    } else {
        (room as usize).div_ceil(stride).min(outputs)
    };
    let lo = lo.min(hi);
    (
        lo..hi,
        (lo as isize * stride as isize + offset).max(0) as usize,
    )
}

/// `f(&mut dst[j], src[j · stride])` for each j: the inner loop of im2col and pooling. Strides
/// 1 and 2, the ones CNNs use, in forms the compiler vectorises.
pub(crate) fn zip_strided(dst: &mut [f32], src: &[f32], stride: usize, f: impl Fn(&mut f32, f32)) {
    let Some(last) = dst.len().checked_sub(1) else {
        return;
    };
    let src = &src[..last * stride + 1];
    match stride {
        1 => dst.iter_mut().zip(src).for_each(|(d, &s)| f(d, s)),
        2 => {
            let (body, tail) = dst.split_at_mut(last);
            body.iter_mut()
                .zip(src.chunks_exact(2))
                .for_each(|(d, pair)| f(d, pair[0]));
            f(&mut tail[0], src[last * 2]);
        }
        _ => dst
            .iter_mut()
            .zip(src.iter().step_by(stride))
            .for_each(|(d, &s)| f(d, s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_zips_read_every_stride_th_element() {
        let src: Vec<f32> = (0..20).map(|i| i as f32).collect();
        for stride in 1..4 {
            for len in 0..6 {
                let mut dst = vec![0.0; len];
                zip_strided(&mut dst, &src[1..], stride, |d, s| *d = s);
                let expected: Vec<f32> = (0..len).map(|j| (1 + j * stride) as f32).collect();
                assert_eq!(dst, expected, "stride {stride}, {len} elements");
            }
        }
    }
}
