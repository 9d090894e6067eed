//! Sizes whose product overflows are errors, never a tensor that looks
//! empty: in a release build `2^32 * 2^32` wraps to 0, and an "empty"
//! tensor of that shape used to pass every length check and then send
//! kernels past their buffers.

use gradlab_tensor::{Conv2dParams, DType, MaxPool2dParams, Shape, Tensor};

fn message<T: std::fmt::Debug>(r: Result<T, gradlab_tensor::TensorError>) -> String {
    r.expect_err("expected an error").to_string()
}

const HUGE: [usize; 2] = [1 << 32, 1 << 32];

#[test]
fn a_tensor_of_an_overflowing_shape_cannot_be_made() {
    let m = message(Tensor::from_vec(Vec::<f32>::new(), HUGE));
    assert!(
        m.starts_with("from_vec: shape [4294967296, 4294967296] has more elements than the 1152921504606846975 a tensor may hold"),
        "{m}"
    );
    // 4 x 2^31 x 2^31 = 2^64, the IDX header that used to load as empty.
    let m = message(Tensor::from_vec(Vec::<f32>::new(), [4, 1 << 31, 1 << 31]));
    assert!(m.contains("has more elements than"), "{m}");
    // A zero does not excuse the others: [2^40, 2^40] planes would wrap.
    let m = message(Tensor::from_vec(Vec::<f64>::new(), [1 << 40, 1 << 40, 0]));
    assert!(m.contains("has more elements than"), "{m}");
    // Still fine: an honest empty tensor.
    assert_eq!(
        Tensor::from_vec(Vec::<f64>::new(), [0, 5]).unwrap().numel(),
        0
    );
}

#[test]
fn views_and_reshapes_to_overflowing_shapes_are_errors() {
    let one = Tensor::ones([1, 1], DType::F32);
    let m = message(one.broadcast_to(HUGE));
    assert!(
        m.starts_with("broadcast_to: shape [4294967296, 4294967296]"),
        "{m}"
    );
    let m = message(one.reshape([1 << 32, 1 << 32, 0]));
    assert!(
        m.starts_with("reshape: shape [4294967296, 4294967296, 0]"),
        "{m}"
    );
    // Two views of 2^32 elements each broadcast to 2^64.
    let col = Tensor::ones([1, 1], DType::F32)
        .broadcast_to([1 << 32, 1])
        .unwrap();
    let row = Tensor::ones([1], DType::F32)
        .broadcast_to([1 << 32])
        .unwrap();
    let m = message(col.add(&row));
    assert!(
        m.starts_with("add: shape [4294967296, 4294967296] has more elements"),
        "{m}"
    );
    assert_eq!(Shape::from(HUGE).numel(), usize::MAX);
}

#[test]
fn conv_and_pool_sizes_that_overflow_are_errors() {
    let x = Tensor::ones([1, 1, 1, 1], DType::F64);
    let w = Tensor::ones([1, 1, 2, 2], DType::F64);
    // The output would be 2^32 x 2^32: it used to wrap to an empty output
    // and gradcheck printed PASSED.
    let params = Conv2dParams {
        padding: (1 << 31, 1 << 31),
        ..Conv2dParams::default()
    };
    let m = message(x.conv2d(&w, None, params));
    assert_eq!(
        m,
        "conv2d: the output would be [1, 1, 4294967296, 4294967296], more than the 1152921504606846975 elements a buffer may hold"
    );
    // A padded side that itself overflows.
    let params = Conv2dParams {
        padding: (usize::MAX / 2 + 1, 0),
        ..Conv2dParams::default()
    };
    let m = message(x.conv2d(&w, None, params));
    assert!(m.contains("[1, 1, (overflow), 0]"), "{m}");
    // A dilation whose span overflows.
    let params = Conv2dParams {
        dilation: (usize::MAX, 1),
        ..Conv2dParams::default()
    };
    assert!(message(x.conv2d(&w, None, params)).contains("(overflow)"));
    // The gradient of an input shape that cannot exist.
    let g = Tensor::ones([1, 1, 1, 1], DType::F64);
    let m = message(g.conv2d_backward_data(
        &Tensor::ones([1, 1, 1, 1], DType::F64),
        &Shape::from([1 << 32, 1, 1 << 32, 1]),
        Conv2dParams::default(),
    ));
    assert!(
        m.contains("the input would be [4294967296, 1, 4294967296, 1]"),
        "{m}"
    );

    // Within the element limit but beyond any memory: the output buffer is
    // refused by the allocator, an error instead of an abort.
    let x3 = Tensor::ones([1, 1, 3, 3], DType::F64);
    let params = Conv2dParams {
        padding: (1 << 50, 0),
        ..Conv2dParams::default()
    };
    let m = message(x3.conv2d(&w, None, params));
    assert!(
        m.starts_with("conv2d: cannot allocate 4503599627370500 elements of 8 bytes"),
        "{m}"
    );
    assert!(
        m.ends_with("the system could not provide that much memory"),
        "{m}"
    );

    let pool = MaxPool2dParams {
        kernel: (2, 2),
        stride: (2, 2),
        padding: (usize::MAX / 2 + 1, 1),
        dilation: (1, 1),
        ceil_mode: false,
    };
    let m = message(x.max_pool2d(pool));
    assert!(m.starts_with("max_pool2d: "), "{m}");
}
