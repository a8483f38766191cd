//! PyTorch's parameter layout → burn's: burn-store's [`PyTorchToBurnAdapter`], except that
//! Linear weights are transposed here. burn-store 0.21 transposes them one element at a time
//! through a four-byte `memcpy`: VGG19's 123 million classifier weights took 40% of a whole
//! `explain` run. Here an f32 matrix is transposed in cache-sized tiles.

use burn::tensor::{DType, TensorData};
use burn_store::{ModuleAdapter, PyTorchToBurnAdapter, TensorSnapshot};
use rayon::prelude::*;

/// Side of the square tiles the transpose moves: 32 rows read, 32 written, few enough pages
/// for the TLB.
const TILE: usize = 32;

#[derive(Debug, Clone, Default)]
pub struct TorchToBurn;

impl ModuleAdapter for TorchToBurn {
    fn adapt(&self, snapshot: &TensorSnapshot) -> TensorSnapshot {
        if is_linear_weight(snapshot) && snapshot.dtype == DType::F32 {
            return transposed(snapshot);
        }
        PyTorchToBurnAdapter.adapt(snapshot)
    }

    fn get_alternative_param_name(&self, param_name: &str, container_type: &str) -> Option<String> {
        PyTorchToBurnAdapter.get_alternative_param_name(param_name, container_type)
    }

    fn clone_box(&self) -> Box<dyn ModuleAdapter> {
        Box::new(self.clone())
    }
}

/// A Linear's `[out, in]` weight, which burn stores as `[in, out]`.
fn is_linear_weight(snapshot: &TensorSnapshot) -> bool {
    let name = snapshot.path_stack.as_ref().and_then(|path| path.last());
    snapshot.shape.len() == 2
        && name.is_some_and(|name| name == "weight")
        && snapshot.module_type().as_deref() == Some("Struct:Linear")
}

/// The snapshot with its 2-D data transposed when read (lazily, as burn-store's own).
fn transposed(snapshot: &TensorSnapshot) -> TensorSnapshot {
    let [rows, cols] = [snapshot.shape[0], snapshot.shape[1]];
    let read = snapshot.clone_data_fn();
    let data = std::rc::Rc::new(move || {
        let data = read()?;
        let values = data
            .as_slice::<f32>()
            .map(|values| transpose(values, rows, cols));
        Ok(match values {
            Ok(values) => TensorData::new(values, [cols, rows]),
            // Not readable as f32 after all: burn-store's general path.
            Err(_) => return Ok(general_transpose(data, rows, cols)),
        })
    });
    TensorSnapshot::from_closure(
        data,
        snapshot.dtype,
        vec![cols, rows].into(),
        snapshot.path_stack.clone().unwrap_or_default(),
        snapshot.container_stack.clone().unwrap_or_default(),
        snapshot.tensor_id.unwrap_or_default(),
    )
}

fn general_transpose(data: TensorData, rows: usize, cols: usize) -> TensorData {
    let values: Vec<f32> = data.convert::<f32>().to_vec().unwrap_or_default();
    TensorData::new(transpose(&values, rows, cols), [cols, rows])
}

/// The `cols × rows` transpose of a row-major `rows × cols` matrix: bands of output rows in
/// parallel, each written tile by tile.
pub(crate) fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    assert_eq!(values.len(), rows * cols, "a {rows}×{cols} matrix");
    let mut out = vec![0.0f32; values.len()];
    out.par_chunks_mut((TILE * rows).max(1))
        .enumerate()
        .for_each(|(band, out)| {
            let first_col = band * TILE;
            for row_tile in (0..rows).step_by(TILE) {
                for (c, out_row) in out.chunks_exact_mut(rows).enumerate() {
                    let col = first_col + c;
                    for r in row_tile..(row_tile + TILE).min(rows) {
                        out_row[r] = values[r * cols + col];
                    }
                }
            }
        });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposes_matrices_larger_and_smaller_than_a_tile() {
        for (rows, cols) in [(1, 1), (3, 5), (70, 130), (129, 64)] {
            let values: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
            let out = transpose(&values, rows, cols);
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(
                        out[c * rows + r],
                        values[r * cols + c],
                        "{rows}×{cols} at ({r}, {c})"
                    );
                }
            }
        }
    }
}
