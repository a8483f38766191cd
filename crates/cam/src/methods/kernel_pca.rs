//! KPCA-CAM (Karmani et al. 2024): Eigen-CAM with kernel PCA. Each position's channel vector,
//! centred per channel, is compared with every other through a sigmoid kernel; the map is the
//! positions' coordinates on the first principal component of that kernel, as
//! pytorch-grad-cam's `KPCA_CAM` gets them from scikit-learn's `KernelPCA` (its defaults:
//! `tanh(x·y / channels + 1)`, the kernel centred, the component scaled by √λ, and its sign
//! such that its largest entry in absolute value is positive).

use burn::prelude::*;
use nalgebra::DMatrix;

/// The first kernel principal component of A per image, `[batch, h, w]`.
pub fn kernel_pca_map<B: Backend>(activations: Tensor<B, 4>) -> Tensor<B, 3> {
    let [batch, channels, h, w] = activations.dims();
    let device = activations.device();
    let values = activations.into_data().to_vec::<f32>().expect("f32 tensor");
    let maps: Vec<f32> = values
        .chunks(channels * h * w)
        .flat_map(|image| first_kernel_component(image, channels, h * w))
        .collect();
    Tensor::from_data(TensorData::new(maps, [batch, h, w]), &device)
}

/// `image` is `[channels, positions]`; returns each position's coordinate.
fn first_kernel_component(image: &[f32], channels: usize, positions: usize) -> Vec<f32> {
    // NaN activations count as 0, as pytorch-grad-cam sets them.
    let value = |c: usize, p: usize| {
        let v = f64::from(image[c * positions + p]);
        if v.is_nan() { 0.0 } else { v }
    };
    let x = DMatrix::from_fn(positions, channels, |p, c| value(c, p));
    let mean = x.row_mean();
    let centred = DMatrix::from_fn(positions, channels, |p, c| x[(p, c)] - mean[c]);
    let gamma = 1.0 / channels as f64;
    let kernel = (&centred * centred.transpose()).map(|dot| (gamma * dot + 1.0).tanh());
    let eigen = double_centred(kernel).symmetric_eigen();
    if positions == 0 {
        return Vec::new();
    }
    let (top, _) = eigen.eigenvalues.argmax();
    let lambda = eigen.eigenvalues[top].max(0.0);
    let vector = eigen.eigenvectors.column(top);
    let largest = vector.iamax();
    let sign = if vector[largest] < 0.0 { -1.0 } else { 1.0 };
    vector
        .iter()
        .map(|&v| (sign * v * lambda.sqrt()) as f32)
        .collect()
}

/// K − 1K/n − K1/n + 1K1/n²: the kernel of the features centred in feature space
/// (scikit-learn's `KernelCenterer`).
fn double_centred(kernel: DMatrix<f64>) -> DMatrix<f64> {
    let rows = kernel.row_mean();
    let columns = kernel.column_mean();
    let all = kernel.mean();
    DMatrix::from_fn(kernel.nrows(), kernel.ncols(), |i, j| {
        kernel[(i, j)] - rows[j] - columns[i] + all
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    #[test]
    fn centring_leaves_rows_and_columns_summing_to_zero() {
        let k = DMatrix::from_row_slice(3, 3, &[4.0, 1.0, 2.0, 1.0, 3.0, 0.5, 2.0, 0.5, 5.0]);
        let c = double_centred(k);
        for i in 0..3 {
            assert!(c.row(i).sum().abs() < 1e-12 && c.column(i).sum().abs() < 1e-12);
        }
    }

    #[test]
    fn two_clusters_get_opposite_signs_and_the_larger_entry_is_positive() {
        // One channel: positions 0, 1 at −1 and 2, 3 at +3. The kernel sees two groups; the
        // first component separates them.
        let a = [-1.0, -1.0, 3.0, 3.0];
        let x = Tensor::<Flex, 4>::from_data(
            TensorData::new(a.to_vec(), [1, 1, 2, 2]),
            &Default::default(),
        );
        let map = kernel_pca_map(x).into_data().to_vec::<f32>().unwrap();
        assert!((map[0] - map[1]).abs() < 1e-6 && (map[2] - map[3]).abs() < 1e-6);
        assert!(map[0] * map[2] < 0.0, "{map:?}");
        let largest = map
            .iter()
            .fold(0f32, |m, v| if v.abs() > m.abs() { *v } else { m });
        assert!(largest > 0.0, "{map:?}");
    }
}
