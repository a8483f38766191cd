//! Time of the CPU convolution kernels on the layer shapes of ResNet-20 (CIFAR, batch 64) and
//! of ResNet-18 / VGG at 224×224 (batch 1): `cargo run -p kernels --example conv_speed`.
//! Prints forward and backward milliseconds and the GFLOP/s they reach (medians of 5).

use std::time::Instant;

use kernels::cpu::conv::{Conv2dShape, Wanted, conv2d_backward, conv2d_forward};

fn median_ms(mut f: impl FnMut()) -> f64 {
    f();
    let mut times: Vec<f64> = (0..5)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[2]
}

fn main() {
    let layer = |batch, cin, cout, side, stride| Conv2dShape {
        batch,
        channels_in: cin,
        channels_out: cout,
        input: [side, side],
        kernel: [3, 3],
        stride: [stride; 2],
        padding: [1, 1],
        dilation: [1, 1],
    };
    let shapes = [
        ("resnet20 stage 1", layer(64, 16, 16, 32, 1)),
        ("resnet20 stage 2", layer(64, 32, 32, 16, 1)),
        ("resnet20 stage 3", layer(64, 64, 64, 8, 1)),
        ("resnet20 2→3 (stride 2)", layer(64, 32, 64, 16, 2)),
        ("resnet20 stage 1, batch 128", layer(128, 16, 16, 32, 1)),
        ("vgg 224 64ch", layer(1, 64, 64, 224, 1)),
        ("resnet18 layer4", layer(1, 512, 512, 7, 1)),
    ];
    let all = Wanted {
        input: true,
        weight: true,
        bias: false,
    };
    for (name, shape) in shapes {
        let [oh, ow] = shape.output();
        let x = vec![0.5f32; shape.batch * shape.channels_in * shape.input[0] * shape.input[1]];
        let w = vec![0.25f32; shape.channels_out * shape.channels_in * 9];
        let dy = vec![1.0f32; shape.batch * shape.channels_out * oh * ow];
        let flop =
            2.0 * (shape.batch * shape.channels_out * oh * ow * shape.channels_in * 9) as f64;
        let forward = median_ms(|| drop(conv2d_forward(&x, &w, None, &shape)));
        let backward = median_ms(|| drop(conv2d_backward(&x, &w, &dy, &shape, all)));
        println!(
            "{name:24} forward {forward:7.2} ms ({:5.1} GFLOP/s)  backward {backward:7.2} ms ({:5.1} GFLOP/s)",
            flop / forward / 1e6,
            2.0 * flop / backward / 1e6
        );
    }
}
