//! User mistakes get errors that name the op, shapes and dtypes: never a panic.

use gradlab_tensor::{Conv2dParams, DType, MaxPool2dParams, Reduction, Tensor};

fn ones(shape: &[usize]) -> Tensor {
    Tensor::ones(shape.to_vec(), DType::F32)
}

fn message<T: std::fmt::Debug>(r: Result<T, gradlab_tensor::TensorError>) -> String {
    r.expect_err("expected an error").to_string()
}

#[test]
fn mismatched_shapes() {
    assert_eq!(
        message(ones(&[2, 3]).matmul(&ones(&[4, 5]))),
        "matmul: cannot multiply [2, 3] by [4, 5]: inner dimensions 3 and 4 differ"
    );
    let m = message(ones(&[2, 3]).add(&ones(&[4])));
    assert!(
        m.starts_with("add: shapes [2, 3] and [4] cannot be broadcast"),
        "{m}"
    );
    let m = message(Tensor::cat(&[&ones(&[2, 3]), &ones(&[3, 3])], 1));
    assert!(
        m.contains("cat: shapes [2, 3] and [3, 3] differ outside dimension 1"),
        "{m}"
    );
    let m =
        message(ones(&[1, 3, 8, 8]).conv2d(&ones(&[4, 2, 3, 3]), None, Conv2dParams::default()));
    assert!(
        m.starts_with("conv2d: input [1, 3, 8, 8] with 3 channels and weight [4, 2, 3, 3]"),
        "{m}"
    );
    let m =
        message(ones(&[1, 1, 2, 2]).conv2d(&ones(&[1, 1, 5, 5]), None, Conv2dParams::default()));
    assert!(m.contains("does not fit the padded input 2x2"), "{m}");
    let m = message(ones(&[3, 4]).max_pool2d(MaxPool2dParams::square(2)));
    assert!(
        m.contains(
            "max_pool2d: expects a 3-D [C, H, W] (unbatched) or 4-D [N, C, H, W] input, got [3, 4]"
        ),
        "{m}"
    );
    let m = message(Tensor::from_vec(vec![1.0f32; 5], [2, 3]));
    assert!(
        m.contains("from_vec: 5 elements cannot fill shape [2, 3]"),
        "{m}"
    );
}

#[test]
fn wrong_dtype_mix() {
    let a = ones(&[2]);
    let b = Tensor::ones([2], DType::F64);
    assert_eq!(
        message(a.mul(&b)),
        "mul: dtype mismatch: f32 and f64 (convert one with .to_dtype())"
    );
    let idx = Tensor::from_vec(vec![1i64, 2], [2]).unwrap();
    let m = message(idx.exp());
    assert!(m.contains("exp: dtype i64 is not supported here"), "{m}");
    let m = message(ones(&[2, 3]).cross_entropy(&ones(&[2]), Reduction::Mean, 0.0));
    assert!(
        m.contains("cross_entropy: dtype f32 is not supported here (i64 class indices as target)"),
        "{m}"
    );
    let m = message(ones(&[2]).item::<f64>());
    assert!(m.contains("item"), "{m}");
}

#[test]
fn reshape_to_the_wrong_size() {
    assert_eq!(
        message(ones(&[2, 3]).reshape([4, 2])),
        "reshape: cannot reshape a tensor of shape [2, 3] (6 elements) to [4, 2] (8 elements)"
    );
}

#[test]
fn out_of_range_dims_and_indices() {
    assert_eq!(
        message(ones(&[2, 3]).sum(Some(&[2]), false)),
        "sum: dimension 2 is out of range for a tensor of shape [2, 3] (expected to be in range of [-2, 1])"
    );
    assert_eq!(
        message(ones(&[2, 3]).softmax(-3)),
        "softmax: dimension -3 is out of range for a tensor of shape [2, 3] (expected to be in range of [-2, 1])"
    );
    assert!(message(ones(&[2, 3]).softmax(5)).contains("softmax: dimension 5 is out of range"));
    assert!(
        message(ones(&[2, 3]).transpose(0, 3)).contains("transpose: dimension 3 is out of range")
    );
    assert!(message(ones(&[2, 3]).narrow(1, 2, 2))
        .contains("narrow: start 2 + length 2 exceeds size 3"));
    assert!(message(ones(&[2, 3]).permute(&[0, 0])).contains("is not a permutation"));
    let logits = ones(&[2, 3]);
    let target = Tensor::from_vec(vec![0i64, 3], [2]).unwrap();
    let m = message(logits.cross_entropy(&target, Reduction::Mean, 0.0));
    assert!(
        m.contains("target 3 at position 1 is out of range for 3 classes"),
        "{m}"
    );
    // A hand-made argmax pointing outside its 2x2 plane.
    let grad = ones(&[1, 1, 1, 1]);
    let pool = MaxPool2dParams::square(2);
    for bad in [4i64, -2] {
        let argmax = Tensor::from_vec(vec![bad], [1, 1, 1, 1]).unwrap();
        let m = message(grad.max_pool2d_backward(&argmax, &[1, 1, 2, 2].into(), pool));
        assert!(
            m.contains(&format!(
                "max_pool2d_backward: argmax entry {bad} at flat index 0 is outside its plane of 4 elements"
            )),
            "{m}"
        );
        let m = message(ones(&[1, 1, 2, 2]).max_pool2d_gather(&argmax, pool));
        assert!(m.contains("max_pool2d_gather: argmax entry"), "{m}");
    }
}
