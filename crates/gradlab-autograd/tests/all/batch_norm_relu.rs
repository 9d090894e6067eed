//! Batch norm followed by ReLU as one recorded op: the same values,
//! gradients and statistics as batch norm then ReLU (the reference), on the
//! fast and the reference kernels, in f64 and f32, with channels that ReLU
//! passes entirely, cuts entirely and splits; exact first and second
//! derivatives; a graph node that says what it is.

use gradlab_autograd::{
    batch_norm2d_relu_train, batch_norm2d_relu_train_with_stats, batch_norm2d_train_with_stats,
    gradcheck, gradgradcheck, GradcheckOptions, Var,
};
use gradlab_tensor::backend::{with_kernels, Kernels};
use gradlab_tensor::{DType, Rng, Tensor};

fn randn(shape: &[usize], mean: f64, seed: u64, dtype: DType) -> Tensor {
    Tensor::randn(shape.to_vec(), mean, 1.5, dtype, &mut Rng::new(seed))
}

/// Max |a - b| / (1 + max |b|).
fn rel_diff(a: &Tensor, b: &Tensor) -> f64 {
    let (a, b) = (a.to_vec_f64().unwrap(), b.to_vec_f64().unwrap());
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    diff / (1.0 + scale)
}

/// `[N, 4, H, W]` input and parameters: channel 0's bias lets ReLU pass
/// every value, channel 1's cuts every value, channels 2 and 3 are split.
fn problem(dtype: DType) -> [Tensor; 4] {
    let shape = [4, 4, 5, 6];
    let x = randn(&shape, 2.0, 1, dtype);
    let w = Tensor::from_vec(vec![0.7, 1.3, -0.9, 1.1], [4])
        .unwrap()
        .to_dtype(dtype)
        .unwrap();
    // Normalised values lie within ±sqrt(120) ≈ 11 of 0.
    let b = Tensor::from_vec(vec![20.0, -20.0, 0.3, -0.2], [4])
        .unwrap()
        .to_dtype(dtype)
        .unwrap();
    let g = randn(&shape, 0.0, 4, dtype);
    [x, w, b, g]
}

/// (y, dx, dweight, dbias, mean, var) of the fused op or the unfused pair.
fn run(fused: bool, [x0, w0, b0, g0]: &[Tensor; 4]) -> [Tensor; 6] {
    let (x, w, b) = (
        Var::parameter(x0.clone()),
        Var::parameter(w0.clone()),
        Var::parameter(b0.clone()),
    );
    let (y, mean, var) = if fused {
        batch_norm2d_relu_train_with_stats(&x, Some(&w), Some(&b), 1e-5).unwrap()
    } else {
        let (z, mean, var) = batch_norm2d_train_with_stats(&x, Some(&w), Some(&b), 1e-5).unwrap();
        (z.relu().unwrap(), mean, var)
    };
    y.mul(&Var::constant(g0.clone()))
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    [
        y.data(),
        x.grad().unwrap(),
        w.grad().unwrap(),
        b.grad().unwrap(),
        mean,
        var,
    ]
}

const NAMES: [&str; 6] = ["y", "dx", "dweight", "dbias", "mean", "var"];

#[test]
fn fused_equals_batch_norm_then_relu() {
    for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 2e-6)] {
        let p = problem(dtype);
        for kernels in [Kernels::Fast, Kernels::Reference] {
            let (fused, apart) = with_kernels(kernels, || (run(true, &p), run(false, &p)));
            for ((f, a), what) in fused.iter().zip(&apart).zip(NAMES) {
                let d = rel_diff(f, a);
                assert!(
                    d <= tol,
                    "{what} ({dtype}, {kernels}): fused differs by {d:e}"
                );
            }
            // The fast kernels: the same bits.
            if kernels == Kernels::Fast {
                for ((f, a), what) in fused.iter().zip(&apart).zip(NAMES) {
                    assert_eq!(f.to_vec_f64().unwrap(), a.to_vec_f64().unwrap(), "{what}");
                }
            }
            // The channel ReLU cuts gets no gradient at all; the one it
            // passes gets batch norm's.
            let dw = fused[2].to_vec_f64().unwrap();
            let db = fused[3].to_vec_f64().unwrap();
            assert_eq!((dw[1], db[1]), (0.0, 0.0));
            let g_sum: f64 = (0..4)
                .map(|n| p[3].narrow(0, n, 1).unwrap().narrow(1, 0, 1).unwrap())
                .map(|t| t.to_vec_f64().unwrap().iter().sum::<f64>())
                .sum();
            assert!((db[0] - g_sum).abs() <= tol * 100.0, "{} vs {g_sum}", db[0]);
            let y = fused[0].to_vec_f64().unwrap();
            let channel =
                |c: usize| (0..4).flat_map(move |n| (0..30).map(move |i| (n * 4 + c) * 30 + i));
            assert!(channel(0).all(|i| y[i] > 0.0) && channel(1).all(|i| y[i] == 0.0));
            assert!(channel(2).any(|i| y[i] == 0.0) && channel(2).any(|i| y[i] > 0.0));
        }
        // And the fast fused op against the reference pair.
        let fast = with_kernels(Kernels::Fast, || run(true, &p));
        let reference = with_kernels(Kernels::Reference, || run(false, &p));
        for ((f, r), what) in fast.iter().zip(&reference).zip(NAMES) {
            let d = rel_diff(f, r);
            assert!(
                d <= tol,
                "{what} ({dtype}): fast fused differs from reference by {d:e}"
            );
        }
    }
}

#[test]
fn first_and_second_derivatives_match_finite_differences() {
    let f = |v: &[Var]| batch_norm2d_relu_train(&v[0], Some(&v[1]), Some(&v[2]), 1e-5)?.tanh();
    let inputs = [
        randn(&[3, 2, 3, 4], 0.5, 5, DType::F64),
        randn(&[2], 1.0, 6, DType::F64),
        randn(&[2], 0.0, 7, DType::F64),
    ];
    for kernels in [Kernels::Fast, Kernels::Reference] {
        with_kernels(kernels, || {
            let first = gradcheck(f, &inputs, GradcheckOptions::default()).unwrap();
            assert!(first.passed(), "{kernels}: {first}");
            let second = gradgradcheck(f, &inputs, GradcheckOptions::default()).unwrap();
            assert!(second.passed(), "{kernels}: {second}");
        });
    }
    let plain = |v: &[Var]| batch_norm2d_relu_train(&v[0], None, None, 1e-5)?.tanh();
    let report = gradcheck(plain, &inputs[..1], GradcheckOptions::default()).unwrap();
    assert!(report.passed(), "{report}");
}

#[test]
fn the_graph_node_names_both_ops_and_keeps_only_the_input() {
    let x = Var::parameter(randn(&[2, 3, 2, 2], 0.0, 8, DType::F64));
    let w = Var::parameter(Tensor::ones([3], DType::F64));
    let y = batch_norm2d_relu_train(&x, Some(&w), None, 1e-5).unwrap();
    let node = y.node().expect("recorded");
    assert_eq!(node.name(), "BatchNormReluBackward");
    assert_eq!(node.inputs().len(), 2);
}

#[test]
fn bad_input_is_a_clear_error() {
    let x = Var::parameter(Tensor::ones([1, 3, 1, 1], DType::F32));
    let err = batch_norm2d_relu_train(&x, None, None, 1e-5)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("batch_norm2d_relu_train: training needs more than 1 value per channel"),
        "{err}"
    );
    let x = Var::parameter(Tensor::ones([2, 3, 2, 2], DType::F32));
    let w = Var::parameter(Tensor::ones([4], DType::F32));
    let err = batch_norm2d_relu_train(&x, Some(&w), None, 1e-5)
        .unwrap_err()
        .to_string();
    assert!(err.contains("weight must have shape [3], got [4]"), "{err}");
}
