//! Matrix products in plain f32 on the GPU's ordinary units.
//!
//! burn-cubecl 0.21 without autotuning always multiplies on the tensor cores, which round f32
//! factors to TF32; the unit kernels of cubek (one output tile per unit, f32 fused
//! multiply-adds) are its exact alternative. Four of them exist (single or double buffered, the
//! largest or the smallest tile); `GRADCAM_F32_GEMM` picks one by name for measuring them, the
//! default being the one `scripts/device_tables.sh` found fastest on the convolutions here.

use std::sync::atomic::{AtomicUsize, Ordering};

use burn::tensor::{DType, Shape};
use burn_cubecl::CubeRuntime;
use burn_cubecl::tensor::CubeTensor;
use cubek::matmul::definition::{MatmulElems, MatmulGlobalElems, MatmulSetupError};
use cubek::matmul::launch::{Strategy, launch_ref};
use cubek::matmul::routines::double_unit::DoubleUnitSelectionArgs;
use cubek::matmul::routines::simple_unit::SimpleUnitSelectionArgs;
use cubek::matmul::routines::{BlueprintStrategy, TileSizeSelection};
use cubek::std::InputBinding;

use super::tensor::{dense, empty_like_device};

/// The f32 matrix-product kernels, by the names `GRADCAM_F32_GEMM` takes.
pub const UNIT_GEMMS: [&str; 4] = ["double-max", "double-min", "simple-max", "simple-min"];

fn unit_strategy(name: &str) -> Option<Strategy> {
    let tile = |min: bool| match min {
        true => TileSizeSelection::MinTileSize,
        false => TileSizeSelection::MaxTileSize,
    };
    let double = |min| {
        Strategy::DoubleUnit(BlueprintStrategy::Inferred(DoubleUnitSelectionArgs {
            tile_size: tile(min),
        }))
    };
    let simple = |min| {
        Strategy::SimpleUnit(BlueprintStrategy::Inferred(SimpleUnitSelectionArgs {
            tile_size: tile(min),
        }))
    };
    match name {
        "double-max" => Some(double(false)),
        "double-min" => Some(double(true)),
        "simple-max" => Some(simple(false)),
        "simple-min" => Some(simple(true)),
        _ => None,
    }
}

/// `CHOSEN` before `GRADCAM_F32_GEMM` was read.
const UNREAD: usize = usize::MAX;

/// Index into [`UNIT_GEMMS`] of the kernel in use.
static CHOSEN: AtomicUsize = AtomicUsize::new(UNREAD);

/// Makes every later f32 product take the unit kernel `name` (one of [`UNIT_GEMMS`]), whatever
/// `GRADCAM_F32_GEMM` says. Unknown names are refused.
pub fn choose_unit_gemm(name: &str) -> Result<(), String> {
    let index = UNIT_GEMMS
        .iter()
        .position(|n| *n == name)
        .ok_or_else(|| format!("unknown f32 GEMM `{name}`: use one of {UNIT_GEMMS:?}"))?;
    CHOSEN.store(index, Ordering::Relaxed);
    Ok(())
}

/// The unit kernel in use: [`choose_unit_gemm`]'s, else `GRADCAM_F32_GEMM`'s, else the first.
fn chosen() -> &'static str {
    let mut index = CHOSEN.load(Ordering::Relaxed);
    if index == UNREAD {
        index = std::env::var("GRADCAM_F32_GEMM")
            .ok()
            .and_then(|name| UNIT_GEMMS.iter().position(|n| *n == name))
            .unwrap_or(0);
        CHOSEN.store(index, Ordering::Relaxed);
    }
    UNIT_GEMMS[index]
}

/// `lhs · rhs` over the last two dimensions, batch dimensions broadcast, every product in f32
/// (on the unit kernel of [`choose_unit_gemm`]).
pub fn matmul_f32<R: CubeRuntime>(
    lhs: CubeTensor<R>,
    rhs: CubeTensor<R>,
) -> Result<CubeTensor<R>, MatmulSetupError> {
    let (lhs, rhs) = (dense(lhs), dense(rhs));
    let out = empty_like_device(&lhs, output_shape(lhs.meta.shape(), rhs.meta.shape()));
    let strategy = unit_strategy(chosen()).expect("a known unit GEMM");
    let mut dtypes = MatmulElems::from_globals(&MatmulGlobalElems {
        lhs: DType::F32.into(),
        rhs: DType::F32.into(),
        out: DType::F32.into(),
    });
    let client = lhs.client.clone();
    launch_ref(
        &strategy,
        &client,
        InputBinding::new(lhs.binding(), DType::F32.into()),
        InputBinding::new(rhs.binding(), DType::F32.into()),
        out.clone().binding(),
        &mut dtypes,
    )?;
    Ok(out)
}

/// `[..batch, m, k] · [..batch, k, n]` → `[..batch, m, n]`, a batch dimension of 1 broadcast.
fn output_shape(lhs: &Shape, rhs: &Shape) -> Shape {
    let rank = lhs.num_dims();
    assert_eq!(rank, rhs.num_dims(), "operands of one rank");
    assert_eq!(lhs[rank - 1], rhs[rank - 2], "inner dimensions agree");
    let mut dims: Vec<usize> = (0..rank - 2).map(|d| lhs[d].max(rhs[d])).collect();
    dims.extend([lhs[rank - 2], rhs[rank - 1]]);
    Shape::from(dims)
}
