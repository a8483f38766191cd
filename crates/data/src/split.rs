use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

/// Splits `0..len` into (train, validation) with `validation` items held out, the same for the
/// same seed. Both lists come back sorted so that loading order never depends on the split.
pub fn split_indices(len: usize, validation: usize, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut order: Vec<usize> = (0..len).collect();
    order.shuffle(&mut StdRng::seed_from_u64(seed));
    let validation = validation.min(len);
    let mut held_out = order[..validation].to_vec();
    let mut train = order[validation..].to_vec();
    held_out.sort_unstable();
    train.sort_unstable();
    (train, held_out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_a_seeded_partition() {
        let (train, val) = split_indices(100, 20, 7);
        assert_eq!((train.len(), val.len()), (80, 20));
        let mut all: Vec<_> = train.iter().chain(&val).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert_eq!(split_indices(100, 20, 7), (train.clone(), val.clone()));
        assert_ne!(split_indices(100, 20, 8).1, val);
    }
}
