//! A checked view of the `gemm` crate (the one burn-flex itself multiplies with): matrices are
//! slices with row and column strides, and every index a product can touch is checked against
//! its slice before the unchecked call.

use gemm::Parallelism;

/// A read-only `rows × cols` matrix inside `data`: element (i, j) is
/// `data[i * row_stride + j * col_stride]`.
#[derive(Clone, Copy)]
pub struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// # Panics
    /// If an element of the matrix lies outside `data`.
    pub fn new(
        data: &'a [f32],
        [rows, cols]: [usize; 2],
        [row_stride, col_stride]: [usize; 2],
    ) -> Self {
        assert!(
            fits(data.len(), [rows, cols], [row_stride, col_stride]),
            "matrix outside its slice"
        );
        Self {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        }
    }

    /// A row-major matrix that fills `data`.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self::new(data, [rows, cols], [cols, 1])
    }

    /// The transpose, without moving data.
    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }
}

/// A writable matrix inside `data`, as [`MatRef`]; no two of its elements share a place.
pub struct MatMut<'a> {
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> MatMut<'a> {
    /// # Panics
    /// If an element lies outside `data`, or two elements on the same place.
    pub fn new(
        data: &'a mut [f32],
        [rows, cols]: [usize; 2],
        [row_stride, col_stride]: [usize; 2],
    ) -> Self {
        assert!(
            fits(data.len(), [rows, cols], [row_stride, col_stride]),
            "matrix outside its slice"
        );
        let distinct = rows <= 1
            || cols <= 1
            || row_stride >= cols * col_stride
            || col_stride >= rows * row_stride;
        assert!(distinct, "matrix elements overlap");
        Self {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        }
    }

    /// A row-major matrix that fills `data`.
    pub fn row_major(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        Self::new(data, [rows, cols], [cols, 1])
    }
}

/// Whether every element of a `rows × cols` strided matrix lies below `len`.
fn fits(len: usize, [rows, cols]: [usize; 2], [row_stride, col_stride]: [usize; 2]) -> bool {
    rows == 0 || cols == 0 || (rows - 1) * row_stride + (cols - 1) * col_stride < len
}

/// `dst = lhs · rhs`, or `dst += lhs · rhs` when `accumulate`; `threads > 1` lets gemm split
/// the product over rayon's pool.
pub fn matmul(dst: &mut MatMut, lhs: MatRef, rhs: MatRef, accumulate: bool, threads: usize) {
    assert_eq!(lhs.cols, rhs.rows, "inner dimensions");
    assert_eq!(
        [dst.rows, dst.cols],
        [lhs.rows, rhs.cols],
        "output dimensions"
    );
    let [m, n, k] = [lhs.rows, rhs.cols, lhs.cols];
    if m == 0 || n == 0 {
        return;
    }
    let parallelism = if threads > 1 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    // SAFETY: the constructors checked every operand against its slice, and that the
    // destination's elements are distinct; `dst` borrows its slice mutably.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.data.as_mut_ptr(),
            dst.col_stride as isize,
            dst.row_stride as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiplies_strided_views_and_accumulates() {
        // lhs = [[1, 2], [3, 4]], rhs = the transpose of [[5, 6], [7, 8]].
        let lhs = [1.0, 2.0, 3.0, 4.0];
        let rhs_storage = [5.0, 6.0, 7.0, 8.0];
        let rhs = MatRef::row_major(&rhs_storage, 2, 2).t(); // [[5, 7], [6, 8]]
        let mut out = [0.0f32; 6];
        // Write into columns 1..3 of a 2 × 3 row-major buffer.
        let mut dst = MatMut::new(&mut out[1..], [2, 2], [3, 1]);
        matmul(&mut dst, MatRef::row_major(&lhs, 2, 2), rhs, false, 1);
        assert_eq!(out, [0.0, 17.0, 23.0, 0.0, 39.0, 53.0]);
        // The same product accumulated into a column-major view: out[j * 3 + i].
        let mut dst = MatMut::new(&mut out[1..], [2, 2], [1, 3]);
        matmul(&mut dst, MatRef::row_major(&lhs, 2, 2), rhs, true, 2);
        assert_eq!(out, [0.0, 34.0, 62.0, 0.0, 62.0, 106.0]);
    }

    #[test]
    #[should_panic(expected = "outside its slice")]
    fn a_view_past_its_slice_is_refused() {
        MatRef::new(&[0.0; 5], [2, 3], [3, 1]);
    }

    #[test]
    #[should_panic(expected = "overlap")]
    fn an_output_whose_elements_overlap_is_refused() {
        MatMut::new(&mut [0.0; 8], [3, 3], [1, 1]);
    }
}
