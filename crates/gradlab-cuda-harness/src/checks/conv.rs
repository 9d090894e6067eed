//! conv2d forward, both gradients and the bias gradient: every tile height
//! (m32, m64, m128 for each pass), strides, padding, dilation, groups,
//! rectangular kernels, split-K.

use super::{assert_bits, assert_close, download, random, upload, widen};
use gradlab_cpu::{reference, Conv2dShape, Rng};
use gradlab_cuda::{
    conv2d_backward_bias, conv2d_backward_data, conv2d_backward_weight, conv2d_forward,
    DeviceBuffer, Gpu,
};
use std::sync::Arc;

fn base() -> Conv2dShape {
    Conv2dShape {
        batch: 2,
        in_channels: 3,
        in_h: 11,
        in_w: 9,
        out_channels: 5,
        kernel_h: 3,
        kernel_w: 3,
        stride: (1, 1),
        padding: (0, 0),
        dilation: (1, 1),
        groups: 1,
    }
}

/// Small shapes covering every kernel of conv.cu.
pub fn conv_shapes() -> Vec<Conv2dShape> {
    let b = base();
    vec![
        b,
        Conv2dShape {
            stride: (2, 3),
            padding: (1, 2),
            ..b
        },
        Conv2dShape {
            dilation: (2, 1),
            padding: (2, 0),
            ..b
        },
        Conv2dShape {
            in_channels: 6,
            out_channels: 4,
            groups: 2,
            ..b
        },
        Conv2dShape {
            in_channels: 6,
            out_channels: 9,
            groups: 3,
            stride: (2, 2),
            ..b
        },
        Conv2dShape {
            kernel_h: 5,
            kernel_w: 2,
            padding: (2, 1),
            ..b
        },
        // LeNet's second layer, small batch.
        Conv2dShape {
            batch: 2,
            in_channels: 6,
            in_h: 14,
            in_w: 14,
            out_channels: 16,
            kernel_h: 5,
            kernel_w: 5,
            ..b
        },
        // 40 output channels: the 64-row tiles; 66 input channels: the
        // 128-row backward-data tile; a batch long enough to split K.
        Conv2dShape {
            batch: 2,
            in_channels: 66,
            in_h: 4,
            in_w: 5,
            out_channels: 40,
            padding: (1, 1),
            ..b
        },
        // 130 output channels: the 128-row forward and weight tiles (two block rows).
        Conv2dShape {
            batch: 2,
            in_channels: 4,
            in_h: 7,
            in_w: 6,
            out_channels: 130,
            stride: (2, 1),
            padding: (1, 1),
            ..b
        },
        // Many columns: several column blocks and a split K for the weight.
        Conv2dShape {
            batch: 9,
            in_channels: 2,
            in_h: 12,
            in_w: 13,
            out_channels: 3,
            padding: (1, 1),
            ..b
        },
    ]
}

/// Forward, both gradients and the bias gradient of every shape.
pub fn check_conv(gpu: &Arc<Gpu>, shapes: &[Conv2dShape]) {
    let mut rng = Rng::new(3);
    for (i, s) in shapes.iter().enumerate() {
        let s = *s;
        let x = random(&mut rng, s.input_len());
        let w = random(&mut rng, s.weight_len());
        let bias = random(&mut rng, s.out_channels);
        let dy = random(&mut rng, s.output_len());
        let (x64, w64, dy64) = (widen(&x), widen(&w), widen(&dy));
        let (dx_, dw_, ddy) = (upload(gpu, &x), upload(gpu, &w), upload(gpu, &dy));
        let taps = (s.in_per_group() * s.kernel_h * s.kernel_w) as f64;

        let mut want = vec![0.0; s.output_len()];
        reference::conv2d_forward(&s, &x64, &w64, Some(&widen(&bias)), &mut want);
        let mut y = upload(gpu, &vec![f32::NAN; s.output_len()]);
        conv2d_forward(&s, &dx_, &dw_, Some(&upload(gpu, &bias)), &mut y).unwrap();
        assert_close(
            &format!("conv fwd {s:?}"),
            &download(&y),
            &want,
            2e-6 * taps + 1e-5,
        );
        if i < 2 {
            let mut y_nobias = DeviceBuffer::zeros(gpu, s.output_len()).unwrap();
            conv2d_forward(&s, &dx_, &dw_, None, &mut y_nobias).unwrap();
            let mut want = vec![0.0; s.output_len()];
            reference::conv2d_forward(&s, &x64, &w64, None, &mut want);
            let what = format!("conv fwd no bias {s:?}");
            assert_close(&what, &download(&y_nobias), &want, 2e-6 * taps + 1e-5);
        }

        let mut want = vec![0.0; s.input_len()];
        reference::conv2d_backward_data(&s, &dy64, &w64, &mut want);
        let mut gx = upload(gpu, &vec![f32::NAN; s.input_len()]);
        conv2d_backward_data(&s, &ddy, &dw_, &mut gx).unwrap();
        let tol_data = 2e-6 * (s.out_per_group() * s.kernel_h * s.kernel_w) as f64 + 1e-5;
        assert_close(
            &format!("conv bwd data {s:?}"),
            &download(&gx),
            &want,
            tol_data,
        );

        let mut want = vec![0.0; s.weight_len()];
        reference::conv2d_backward_weight(&s, &x64, &dy64, &mut want);
        let mut gw = upload(gpu, &vec![f32::NAN; s.weight_len()]);
        conv2d_backward_weight(&s, &dx_, &ddy, &mut gw).unwrap();
        let positions = (s.batch * s.out_h() * s.out_w()) as f64;
        let tol_w = 2e-6 * positions + 1e-5;
        let first = download(&gw);
        assert_close(&format!("conv bwd weight {s:?}"), &first, &want, tol_w);
        // Split K is summed in a fixed order: the same bits again.
        conv2d_backward_weight(&s, &dx_, &ddy, &mut gw).unwrap();
        assert_bits(
            &format!("conv bwd weight rerun {s:?}"),
            &download(&gw),
            &first,
        );

        let mut want = vec![0.0; s.out_channels];
        let plane = s.out_h() * s.out_w();
        for n in 0..s.batch {
            for (oc, acc) in want.iter_mut().enumerate() {
                let start = (n * s.out_channels + oc) * plane;
                *acc += dy64[start..start + plane].iter().sum::<f64>();
            }
        }
        let mut gb = DeviceBuffer::zeros(gpu, s.out_channels).unwrap();
        conv2d_backward_bias(&s, &ddy, &mut gb).unwrap();
        assert_close(
            &format!("conv bwd bias {s:?}"),
            &download(&gb),
            &want,
            tol_w,
        );
    }
}
