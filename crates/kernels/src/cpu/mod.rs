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

/// Σ over `jobs` of what `add` accumulates into a zeroed buffer of `len`, in parallel, with the
/// same bits on every run: the jobs in contiguous groups, one per thread, each group summed in
/// job order, then the groups' sums added in group order. (Rayon's `fold` splits wherever work
/// stealing happens to, so the order of the float additions, and with it the weight gradients
/// and a whole training run, changed from run to run.)
pub(crate) fn ordered_sum<J: Send, S: Default>(
    jobs: Vec<J>,
    len: usize,
    add: impl Fn(&mut [f32], &mut S, J) + Sync,
) -> Vec<f32> {
    use rayon::prelude::*;
    let count = jobs.len();
    let groups = rayon::current_num_threads().min(count).max(1);
    let mut grouped: Vec<Vec<J>> = (0..groups).map(|_| Vec::new()).collect();
    for (index, job) in jobs.into_iter().enumerate() {
        grouped[index * groups / count].push(job);
    }
    let sums: Vec<Vec<f32>> = grouped
        .into_par_iter()
        .map(|group| {
            let mut sum = zeros(len);
            let mut scratch = S::default();
            for job in group {
                add(&mut sum, &mut scratch, job);
            }
            sum
        })
        .collect();
    let mut sums = sums.into_iter();
    let mut total = sums.next().unwrap_or_else(|| zeros(len));
    for sum in sums {
        for (t, v) in total.iter_mut().zip(sum) {
            *t += v;
        }
    }
    total
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
    fn ordered_sums_add_every_job_once_in_the_same_order_every_time() {
        // Values whose float sum depends on the order of the additions.
        let jobs: Vec<f32> = (0..997).map(|i| 1.0 / (i as f32 + 0.37) * 1e4).collect();
        let sum = |jobs: Vec<f32>| {
            ordered_sum(jobs, 2, |total: &mut [f32], _: &mut (), v| {
                total[0] += v;
                total[1] += 1.0;
            })
        };
        let first = sum(jobs.clone());
        assert_eq!(first[1], 997.0, "every job once");
        let exact: f64 = jobs.iter().map(|&v| v as f64).sum();
        assert!((first[0] as f64 - exact).abs() < 1e-3 * exact);
        for _ in 0..20 {
            assert_eq!(sum(jobs.clone())[0].to_bits(), first[0].to_bits());
        }
        assert_eq!(sum(Vec::new()), [0.0, 0.0]);
    }

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
