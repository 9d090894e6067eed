//! Training-mode batch norm as one fused op: the same values and gradients
//! as its composed definition, exact first and second derivatives, and the
//! graph node PyTorch users know.

use gradlab_autograd::{
    batch_norm2d, batch_norm2d_train, batch_norm2d_train_with_stats, batch_stats2d, gradcheck,
    gradgradcheck, GradcheckOptions, Var,
};
use gradlab_tensor::{DType, Rng, Tensor};

fn randn(shape: &[usize], mean: f64, seed: u64) -> Tensor {
    Tensor::randn(shape.to_vec(), mean, 1.5, DType::F64, &mut Rng::new(seed))
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    let (a, b) = (a.to_vec::<f64>().unwrap(), b.to_vec::<f64>().unwrap());
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn fused_op_equals_the_composed_definition() {
    let shape = [4, 3, 5, 6];
    let x0 = randn(&shape, 2.0, 1);
    let (w0, b0, g0) = (
        randn(&[3], 1.0, 2),
        randn(&[3], 0.0, 3),
        randn(&shape, 0.0, 4),
    );
    let run = |fused: bool| {
        let (x, w, b) = (
            Var::parameter(x0.clone()),
            Var::parameter(w0.clone()),
            Var::parameter(b0.clone()),
        );
        let y = if fused {
            batch_norm2d_train(&x, Some(&w), Some(&b), 1e-5).unwrap()
        } else {
            let (mean, var) = batch_stats2d(&x).unwrap();
            batch_norm2d(&x, &mean, &var, Some(&w), Some(&b), 1e-5).unwrap()
        };
        y.mul(&Var::constant(g0.clone()))
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        (
            y.data(),
            x.grad().unwrap(),
            w.grad().unwrap(),
            b.grad().unwrap(),
        )
    };
    let (fused, composed) = (run(true), run(false));
    assert!(max_diff(&fused.0, &composed.0) < 1e-12, "y");
    assert!(max_diff(&fused.1, &composed.1) < 1e-12, "dx");
    assert!(max_diff(&fused.2, &composed.2) < 1e-11, "dweight");
    assert!(max_diff(&fused.3, &composed.3) < 1e-11, "dbias");
}

#[test]
fn statistics_are_the_batch_mean_and_biased_variance() {
    let x0 = Tensor::from_vec(
        vec![1.0f64, 2.0, 10.0, 20.0, 3.0, 6.0, 30.0, 60.0],
        [2, 2, 1, 2],
    )
    .unwrap();
    let (_, mean, var) =
        batch_norm2d_train_with_stats(&Var::constant(x0), None, None, 1e-5).unwrap();
    // Channel 0 holds 1, 2, 3, 6; channel 1 holds 10, 20, 30, 60.
    assert_eq!(mean.to_vec::<f64>().unwrap(), [3.0, 30.0]);
    assert_eq!(var.to_vec::<f64>().unwrap(), [3.5, 350.0]);
}

#[test]
fn first_and_second_derivatives_match_finite_differences() {
    let f = |v: &[Var]| batch_norm2d_train(&v[0], Some(&v[1]), Some(&v[2]), 1e-5)?.tanh();
    let inputs = [
        randn(&[3, 2, 3, 4], 0.5, 5),
        randn(&[2], 1.0, 6),
        randn(&[2], 0.0, 7),
    ];
    let first = gradcheck(f, &inputs, GradcheckOptions::default()).unwrap();
    assert!(first.passed(), "{first}");
    let second = gradgradcheck(f, &inputs, GradcheckOptions::default()).unwrap();
    assert!(second.passed(), "{second}");
    // Without affine parameters.
    let plain = |v: &[Var]| batch_norm2d_train(&v[0], None, None, 1e-5)?.tanh();
    let report = gradgradcheck(plain, &inputs[..1], GradcheckOptions::default()).unwrap();
    assert!(report.passed(), "{report}");
}

#[test]
fn the_graph_node_is_native_batch_norm() {
    let x = Var::parameter(randn(&[2, 3, 2, 2], 0.0, 8));
    let w = Var::parameter(Tensor::ones([3], DType::F64));
    let y = batch_norm2d_train(&x, Some(&w), None, 1e-5).unwrap();
    let node = y.node().expect("recorded");
    assert_eq!(node.name(), "NativeBatchNormBackward");
    assert_eq!(node.inputs().len(), 2);
}

#[test]
fn too_few_values_per_channel_is_an_error() {
    let x = Var::parameter(Tensor::ones([1, 3, 1, 1], DType::F32));
    let err = batch_norm2d_train(&x, None, None, 1e-5)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("batch_norm2d_train: training needs more than 1 value per channel, got input [1, 3, 1, 1]"),
        "{err}"
    );
}
