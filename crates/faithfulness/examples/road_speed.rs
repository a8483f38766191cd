//! Time of ROAD's imputation, the part of `--evaluate` that runs on the CPU whatever the
//! device: `cargo run -p faithfulness --example road_speed -- [side] [percentile]` prints the
//! median milliseconds of one imputation of a `3 × side × side` image with the pixels above
//! the percentile of a smooth map removed.

use std::time::Instant;

use faithfulness::road::remove_salient;
use rand::SeedableRng;
use rand::rngs::StdRng;

fn main() {
    let args: Vec<f32> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let side = args.first().map_or(128, |&s| s as usize);
    let percentile = args.get(1).copied().unwrap_or(10.0);
    let image: Vec<f32> = (0..3 * side * side)
        .map(|i| ((i * 7919) % 255) as f32 / 255.0)
        .collect();
    // A blob in the middle: the removed region is one large hole, the slow case.
    let centre = side as f32 / 2.0;
    let map: Vec<f32> = (0..side * side)
        .map(|i| {
            let (y, x) = ((i / side) as f32, (i % side) as f32);
            (-((y - centre).powi(2) + (x - centre).powi(2)) / (side as f32).powi(2) * 8.0).exp()
        })
        .collect();
    let mut rng = StdRng::seed_from_u64(0);
    let mut times: Vec<f64> = (0..5)
        .map(|_| {
            let start = Instant::now();
            remove_salient(&image, &map, [3, side, side], percentile, 0.0, &mut rng);
            1000.0 * start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!(
        "road imputation {side}x{side} percentile {percentile}: median {:.1} ms",
        times[2]
    );
}
