//! Max-pool forward (values and i64 argmax, exactly) and backward (bits),
//! with ties, NaN, padding, dilation and ceil mode.

use super::{assert_bits, download, random, upload};
use gradlab_cpu::{reference, Pool2dShape, Rng};
use gradlab_cuda::{max_pool2d_backward, max_pool2d_forward, DeviceBuffer, Gpu};
use std::sync::Arc;

pub fn pool_shapes() -> Vec<Pool2dShape> {
    let base = Pool2dShape {
        batch: 2,
        channels: 3,
        in_h: 9,
        in_w: 11,
        kernel: (2, 2),
        stride: (2, 2),
        padding: (0, 0),
        dilation: (1, 1),
        ceil_mode: false,
    };
    vec![
        base,
        Pool2dShape {
            kernel: (3, 3),
            stride: (2, 2),
            padding: (1, 1),
            ..base
        },
        Pool2dShape {
            kernel: (3, 2),
            stride: (1, 1),
            ..base
        },
        Pool2dShape {
            kernel: (2, 3),
            stride: (2, 1),
            dilation: (2, 2),
            ..base
        },
        Pool2dShape {
            ceil_mode: true,
            ..base
        },
        Pool2dShape {
            kernel: (3, 3),
            stride: (2, 2),
            padding: (1, 1),
            ceil_mode: true,
            ..base
        },
        // One window per row: a row maximum (how max along a dim runs).
        Pool2dShape {
            batch: 5,
            channels: 1,
            in_h: 1,
            in_w: 37,
            kernel: (1, 37),
            stride: (1, 37),
            ..base
        },
    ]
}

pub fn check_max_pool(gpu: &Arc<Gpu>, shapes: &[Pool2dShape]) {
    let mut rng = Rng::new(5);
    for s in shapes {
        let s = *s;
        // Few distinct values so that ties happen, plus a NaN.
        let mut x: Vec<f32> = (0..s.input_len()).map(|_| rng.below(5) as f32).collect();
        let nan_at = 7 % x.len();
        x[nan_at] = f32::NAN;
        let dy = random(&mut rng, s.output_len());
        let mut want_y = vec![0.0f32; s.output_len()];
        let mut want_arg = vec![0usize; s.output_len()];
        reference::max_pool2d_forward(&s, &x, &mut want_y, &mut want_arg);
        let mut want_dx = vec![0.0f32; s.input_len()];
        reference::max_pool2d_backward(&s, &dy, &want_arg, &mut want_dx);
        let want_arg: Vec<i64> = want_arg
            .iter()
            .map(|&a| if a == usize::MAX { -1 } else { a as i64 })
            .collect();

        let (dx_in, ddy) = (upload(gpu, &x), upload(gpu, &dy));
        let mut y = DeviceBuffer::zeros(gpu, s.output_len()).unwrap();
        let mut arg = DeviceBuffer::<i64>::zeros(gpu, s.output_len()).unwrap();
        max_pool2d_forward(&s, &dx_in, &mut y, &mut arg).unwrap();
        assert_bits(&format!("pool y {s:?}"), &download(&y), &want_y);
        assert_eq!(download(&arg), want_arg, "pool argmax {s:?}");
        let mut dx = upload(gpu, &vec![f32::NAN; s.input_len()]);
        max_pool2d_backward(&s, &ddy, &arg, &mut dx).unwrap();
        assert_bits(&format!("pool dx {s:?}"), &download(&dx), &want_dx);
    }
}
