//! The kernels' cost formulas against counts done by hand.

use gradlab_cpu::cost::{gemm_cost, Cost};
use gradlab_cpu::{BatchNormShape, Conv2dShape, Pool2dShape};

const F32: usize = 4;

#[test]
fn conv2d_with_stride_padding_dilation_and_groups() {
    // Input 2x4x7x7, 6 filters of 2 channels (groups 2) 3x3, stride 2,
    // padding 1, dilation 2: the window spans 5, so each side has
    // (7 + 2 - 5) / 2 + 1 = 3 positions.
    let s = Conv2dShape {
        batch: 2,
        in_channels: 4,
        in_h: 7,
        in_w: 7,
        out_channels: 6,
        kernel_h: 3,
        kernel_w: 3,
        stride: (2, 2),
        padding: (1, 1),
        dilation: (2, 2),
        groups: 2,
    };
    assert_eq!((s.out_h(), s.out_w()), (3, 3));
    // 2·6·3·3 = 108 outputs, each 2 channels x 9 taps = 18 multiply-adds.
    let macs = 108.0 * 18.0;
    // input 392, weight 6·2·3·3 = 108, bias 6, output 108 values.
    assert_eq!(
        s.forward_cost(F32, true),
        Cost::new(2.0 * macs + 108.0, (392.0 + 108.0 + 6.0 + 108.0) * 4.0)
    );
    assert_eq!(
        s.forward_cost(F32, false),
        Cost::new(2.0 * macs, (392.0 + 108.0 + 108.0) * 4.0)
    );
    // Both gradients do the forward's multiply-adds; dx reads dy and w and
    // writes dx, dw reads x and dy and writes dw.
    assert_eq!(
        s.backward_data_cost(F32),
        Cost::new(2.0 * macs, (108.0 + 108.0 + 392.0) * 4.0)
    );
    assert_eq!(
        s.backward_weight_cost(F32),
        Cost::new(2.0 * macs, (392.0 + 108.0 + 108.0) * 4.0)
    );
}

#[test]
fn conv2d_with_uneven_window_and_stride_and_depthwise_groups() {
    // 1x3x5x6 input, 4 filters 2x3, stride (1, 2), padding (0, 1):
    // out_h = 5 - 2 + 1 = 4, out_w = (6 + 2 - 3) / 2 + 1 = 3.
    let s = Conv2dShape {
        batch: 1,
        in_channels: 3,
        in_h: 5,
        in_w: 6,
        out_channels: 4,
        kernel_h: 2,
        kernel_w: 3,
        stride: (1, 2),
        padding: (0, 1),
        dilation: (1, 1),
        groups: 1,
    };
    assert_eq!((s.out_h(), s.out_w()), (4, 3));
    // 4·4·3 = 48 outputs of 3·2·3 = 18 multiply-adds, in f64.
    assert_eq!(s.forward_cost(8, false).flops, 2.0 * 48.0 * 18.0);
    assert_eq!(s.forward_cost(8, false).bytes, (90.0 + 72.0 + 48.0) * 8.0);

    // Depthwise: 8 channels, 8 groups, 3x3 same padding on 10x10: each of
    // the 8·10·10 outputs sums one channel's 9 taps.
    let d = Conv2dShape {
        groups: 8,
        ..Conv2dShape::square(1, 8, 8, 10, 3, 1)
    };
    assert_eq!(d.forward_cost(F32, false).flops, 2.0 * 800.0 * 9.0);
    assert_eq!(d.weight_len(), 72);
}

#[test]
fn batched_matmul() {
    // 5 products of [3, 4] x [4, 2]: 5·3·4·2 = 120 multiply-adds.
    assert_eq!(
        gemm_cost(5, 3, 4, 2, F32),
        Cost::new(240.0, 5.0 * (12.0 + 8.0 + 6.0) * 4.0)
    );
    assert_eq!(
        gemm_cost(1, 64, 400, 120, F32).flops,
        2.0 * 64.0 * 400.0 * 120.0
    );
}

#[test]
fn max_pool_forward_backward_and_gather() {
    // 1x2x7x7, 3x3 window, stride 2, padding 1: (7 + 2 - 3) / 2 + 1 = 4.
    let s = Pool2dShape {
        batch: 1,
        channels: 2,
        in_h: 7,
        in_w: 7,
        kernel: (3, 3),
        stride: (2, 2),
        padding: (1, 1),
        dilation: (1, 1),
        ceil_mode: false,
    };
    assert_eq!(s.output_len(), 32);
    // 32 outputs x 9 comparisons; reads 98 values, writes 32 values and 32 i64 indices.
    assert_eq!(
        s.max_forward_cost(F32),
        Cost::new(288.0, 98.0 * 4.0 + 32.0 * 4.0 + 32.0 * 8.0)
    );
    // 32 routed adds; reads 32 gradients and indices, writes 98 values.
    assert_eq!(
        s.max_backward_cost(F32),
        Cost::new(32.0, 32.0 * 4.0 + 32.0 * 8.0 + 98.0 * 4.0)
    );
    // Reads 32 indices and 32 values, writes 32 values.
    assert_eq!(
        s.max_gather_cost(F32),
        Cost::new(0.0, 32.0 * 8.0 + 2.0 * 32.0 * 4.0)
    );
}

#[test]
fn batch_norm_train_inference_and_backward() {
    let s = BatchNormShape {
        batch: 2,
        channels: 3,
        plane: 4,
    };
    // 24 values. Statistics 4 FLOPs each, normalising 2, weight 1, bias 1.
    // Reads x, writes y (48 values); weight, bias, mean, var: 4 x 3 values.
    assert_eq!(
        s.train_forward_cost(F32, true, true),
        Cost::new(24.0 * 8.0, (48.0 + 12.0) * 4.0)
    );
    // Without the affine parameters: 6 FLOPs; mean and var only.
    assert_eq!(
        s.train_forward_cost(F32, false, false),
        Cost::new(24.0 * 6.0, (48.0 + 6.0) * 4.0)
    );
    // Inference: a scale and a shift; x, y and four vectors of 3.
    assert_eq!(s.inference_cost(F32), Cost::new(48.0, (48.0 + 12.0) * 4.0));
    // Backward: 9 FLOPs per value; reads g, x, writes dx (72 values);
    // reads mean, var, weight and writes dw, db (5 x 3 values).
    assert_eq!(s.backward_cost(F32), Cost::new(216.0, (72.0 + 15.0) * 4.0));
}

#[test]
fn costs_add_up_and_give_intensity() {
    let total: Cost = [Cost::new(10.0, 4.0), Cost::new(6.0, 4.0)]
        .into_iter()
        .sum();
    assert_eq!(total, Cost::new(16.0, 8.0));
    assert_eq!(total.intensity(), Some(2.0));
}
