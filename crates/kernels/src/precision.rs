//! How exactly a GPU multiplies: every product in f32, or the tensor cores' TF32 for the
//! convolutions and matrix products that dominate training.
//!
//! TF32 keeps f32's range but rounds each factor to 10 mantissa bits (about 3 decimal digits)
//! before multiplying; sums stay in f32. It is what PyTorch uses for convolutions by default
//! (`torch.backends.cudnn.allow_tf32 = True`), and it is several times faster on tensor cores.
//! A Grad-CAM map, though, is a ratio of gradients that cancel, and TF32 moves it by more than
//! a user comparing against the CPU would accept; so explaining asks for [`Precision::F32`]
//! and training for [`Precision::Tf32`] unless told otherwise.
//!
//! The CPU backend always computes in f32: the setting only changes what the GPU kernels do.
//! It is one value for the whole process, read at every operation, because burn's operations
//! carry no options of their own.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU8, Ordering};

/// The arithmetic of the GPU's convolutions and matrix products.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Precision {
    /// Every product and sum in f32: the CPU's numbers up to the order of summation.
    F32,
    /// Factors rounded to TF32 on the tensor cores, sums in f32 (PyTorch's default for
    /// convolutions).
    Tf32,
}

impl Precision {
    pub const NAMES: &'static str = "f32 or tf32";
}

impl FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "f32" => Ok(Precision::F32),
            "tf32" => Ok(Precision::Tf32),
            _ => Err(format!("unknown precision `{s}`: use {}", Precision::NAMES)),
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::Tf32 => "tf32",
        })
    }
}

const F32: u8 = 0;
const TF32: u8 = 1;

static PRECISION: AtomicU8 = AtomicU8::new(F32);

/// Sets the precision of every later GPU operation in this process.
pub fn set_precision(precision: Precision) {
    let value = match precision {
        Precision::F32 => F32,
        Precision::Tf32 => TF32,
    };
    PRECISION.store(value, Ordering::Relaxed);
}

/// The precision GPU operations use now ([`Precision::F32`] until [`set_precision`]).
pub fn precision() -> Precision {
    match PRECISION.load(Ordering::Relaxed) {
        TF32 => Precision::Tf32,
        _ => Precision::F32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_say_what_is_allowed() {
        for p in [Precision::F32, Precision::Tf32] {
            assert_eq!(p.to_string().parse(), Ok(p));
        }
        let error = "fp16".parse::<Precision>().unwrap_err();
        assert!(error.contains("f32 or tf32"), "{error}");
    }
}
