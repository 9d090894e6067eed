//! Every primitive as an op calls it, metered: the cost the meter logs is
//! the hand count for the op's operands.

use gradlab_tensor::backend::meter::{self, KernelCall};
use gradlab_tensor::{
    Conv2dParams, CrossEntropyOptions, DType, MaxPool2dParams, Reduction, Shape, Tensor,
};

/// The primitive calls `f` makes, metered.
fn calls(f: impl FnOnce()) -> Vec<KernelCall> {
    meter::set_metering(true);
    f();
    let calls = meter::take_calls();
    meter::set_metering(false);
    calls
}

fn only(calls: &[KernelCall]) -> (f64, f64) {
    assert_eq!(calls.len(), 1, "{calls:?}");
    (calls[0].cost.flops, calls[0].cost.bytes)
}

#[test]
fn conv2d_and_its_gradients_through_the_ops() {
    let x = Tensor::ones([2, 4, 7, 7], DType::F32);
    let w = Tensor::ones([6, 2, 3, 3], DType::F32);
    let b = Tensor::ones([6], DType::F32);
    let params = Conv2dParams {
        stride: (2, 2),
        padding: (1, 1),
        dilation: (2, 2),
        groups: 2,
    };
    // 108 outputs of 18 multiply-adds, plus the bias (see gradlab-cpu's tests).
    let forward = calls(|| {
        x.conv2d(&w, Some(&b), params).unwrap();
    });
    assert_eq!(forward[0].primitive.name(), "conv2d");
    assert_eq!(only(&forward), (3888.0 + 108.0, 614.0 * 4.0));
    let dy = Tensor::ones([2, 6, 3, 3], DType::F32);
    let data = calls(|| {
        dy.conv2d_backward_data(&w, x.shape(), params).unwrap();
    });
    assert_eq!(only(&data), (3888.0, 608.0 * 4.0));
    let weight = calls(|| {
        dy.conv2d_backward_weight(&x, w.shape(), params).unwrap();
    });
    assert_eq!(only(&weight), (3888.0, 608.0 * 4.0));
}

#[test]
fn batched_matmul_with_a_broadcast_operand() {
    // [2, 3, 4, 5] @ [5, 6]: 6 products of 4·5·6 multiply-adds; b read once.
    let a = Tensor::ones([2, 3, 4, 5], DType::F64);
    let b = Tensor::ones([5, 6], DType::F64);
    let c = calls(|| {
        a.matmul(&b).unwrap();
    });
    assert_eq!(only(&c), (2.0 * 6.0 * 120.0, (120.0 + 30.0 + 144.0) * 8.0));
}

#[test]
fn elementwise_reductions_and_pooling() {
    let x = Tensor::ones([4, 6], DType::F32);
    let row = Tensor::ones([6], DType::F32);
    // One FLOP per element; x and the broadcast row read once, 24 written.
    assert_eq!(
        only(&calls(|| {
            x.add(&row).unwrap();
        })),
        (24.0, (24.0 + 6.0 + 24.0) * 4.0)
    );
    assert_eq!(
        only(&calls(|| {
            x.exp().unwrap();
        })),
        (24.0, 48.0 * 4.0)
    );
    // A sum over dim 0: 24 adds, 6 results.
    assert_eq!(
        only(&calls(|| {
            x.sum(Some(&[0]), false).unwrap();
        })),
        (24.0, (24.0 + 6.0) * 4.0)
    );
    // A mean adds a scaling of each of the 4 results.
    assert_eq!(
        only(&calls(|| {
            x.mean(Some(&[1]), false).unwrap();
        })),
        (28.0, (24.0 + 4.0) * 4.0)
    );
    // Max-pool 2x2 on 1x1x4x4: 4 outputs x 4 comparisons.
    let img = Tensor::ones([1, 1, 4, 4], DType::F32);
    assert_eq!(
        only(&calls(|| {
            img.max_pool2d(MaxPool2dParams::square(2)).unwrap();
        })),
        (16.0, 16.0 * 4.0 + 4.0 * 12.0)
    );
}

#[test]
fn batch_norm_softmax_and_cross_entropy() {
    let x = Tensor::ones([2, 3, 2, 2], DType::F32);
    let w = Tensor::ones([3], DType::F32);
    let b = Tensor::zeros([3], DType::F32);
    assert_eq!(
        only(&calls(|| {
            x.batch_norm2d_train(Some(&w), Some(&b), 1e-5).unwrap();
        })),
        (24.0 * 8.0, 60.0 * 4.0)
    );
    let logits = Tensor::ones([4, 10], DType::F32);
    // Softmax: 5 FLOPs per element.
    assert_eq!(
        only(&calls(|| {
            logits.softmax(1).unwrap();
        })),
        (200.0, 80.0 * 4.0)
    );
    // Cross-entropy: 6 per logit; reads 40 logits and 4 i64 targets, writes 4
    // losses (then a mean over them, a second primitive).
    let target = Tensor::from_vec(vec![1i64, 2, 3, 4], [4]).unwrap();
    let ce = calls(|| {
        logits.cross_entropy(&target, Reduction::Mean, 0.0).unwrap();
    });
    assert_eq!(ce[0].primitive.name(), "cross_entropy");
    assert_eq!(
        (ce[0].cost.flops, ce[0].cost.bytes),
        (240.0, 40.0 * 4.0 + 32.0 + 16.0)
    );
    let g = Tensor::ones([4], DType::F32);
    assert_eq!(
        only(&calls(|| {
            logits
                .cross_entropy_backward(&target, &CrossEntropyOptions::default(), &g)
                .unwrap();
        })),
        (280.0, 80.0 * 4.0 + 32.0 + 16.0)
    );
}

#[test]
fn nested_primitives_count_once_and_paused_work_not_at_all() {
    // A strided operand is copied inside the op: the copy is its own
    // top-level call, then the product.
    let a = Tensor::ones([8, 8], DType::F32).t().unwrap();
    let c = calls(|| {
        a.matmul(&a).unwrap();
    });
    assert!(c.iter().all(|k| k.cost.flops >= 0.0));
    let names: Vec<&str> = c.iter().map(|k| k.primitive.name()).collect();
    assert_eq!(
        names.iter().filter(|n| **n == "matmul").count(),
        1,
        "{names:?}"
    );
    let quiet = calls(|| {
        meter::paused(|| {
            a.matmul(&a).unwrap();
        })
    });
    assert!(quiet.is_empty());
    assert_eq!(Shape::new([2, 3]).numel(), 6);
}
