//! The backward engine: accumulation, graph freeing, deep graphs, grad mode,
//! second derivatives.

use gradlab_autograd::{grad, no_grad, BackwardOptions, Var};
use gradlab_tensor::{DType, Tensor};

fn t(v: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape.to_vec()).unwrap()
}

#[test]
fn leaf_used_twice_accumulates() {
    // y = x * x + 3x at x = [1, -2]: dy/dx = 2x + 3.
    let x = Var::parameter(t(&[1.0, -2.0], &[2]));
    let three = Var::constant(t(&[3.0], &[1]));
    let y = x
        .mul(&x)
        .unwrap()
        .add(&x.mul(&three).unwrap())
        .unwrap()
        .sum_all()
        .unwrap();
    y.backward().unwrap();
    assert_eq!(x.grad().unwrap().to_vec::<f64>().unwrap(), vec![5.0, -1.0]);
    // A second graph accumulates into the same .grad, as in PyTorch.
    x.sum_all().unwrap().backward().unwrap();
    assert_eq!(x.grad().unwrap().to_vec::<f64>().unwrap(), vec![6.0, 0.0]);
    x.zero_grad();
    assert!(x.grad().is_none());
}

#[test]
fn graph_is_freed_unless_retained() {
    let x = Var::parameter(t(&[2.0], &[1]));
    let y = x.exp().unwrap().sum_all().unwrap();
    y.backward_with(
        None,
        BackwardOptions {
            retain_graph: true,
            create_graph: false,
        },
    )
    .unwrap();
    y.backward().unwrap();
    let e2 = 2.0f64.exp();
    assert!((x.grad().unwrap().to_vec::<f64>().unwrap()[0] - 2.0 * e2).abs() < 1e-12);
    let err = y.backward().unwrap_err().to_string();
    assert!(
        err.contains("already freed") && err.contains("SumBackward"),
        "{err}"
    );
}

#[test]
fn chain_of_100k_ops_does_not_overflow_the_stack() {
    // Run on a thread with a small stack to make any recursion fail loudly.
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| {
            let x = Var::parameter(t(&[1.0], &[1]));
            let mut y = x.clone();
            for _ in 0..100_000 {
                y = y.mul_scalar(1.0).unwrap().add_scalar(0.0).unwrap();
            }
            y.sum_all().unwrap().backward().unwrap();
            assert_eq!(x.grad().unwrap().to_vec::<f64>().unwrap(), vec![1.0]);
            drop(y);
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn no_grad_and_detach_record_nothing() {
    let x = Var::parameter(t(&[1.0, 2.0], &[2]));
    let y = no_grad(|| x.mul(&x).unwrap());
    assert!(!y.requires_grad() && y.is_leaf());
    let z = x.detach().mul(&x).unwrap().sum_all().unwrap();
    z.backward().unwrap();
    // Only the non-detached factor contributes: d/dx (c * x) = c.
    assert_eq!(x.grad().unwrap().to_vec::<f64>().unwrap(), vec![1.0, 2.0]);
}

#[test]
fn backward_errors_are_clear() {
    let c = Var::constant(t(&[1.0], &[1]));
    assert!(c
        .backward()
        .unwrap_err()
        .to_string()
        .contains("does not require grad"));
    let x = Var::parameter(t(&[1.0, 2.0], &[2]));
    let err = x.mul(&x).unwrap().backward().unwrap_err().to_string();
    assert!(err.contains("single-element output"), "{err}");
}

#[test]
fn second_derivative_matches_closed_form() {
    // f(x) = x^3 * sin-free mix: f = x^3 + exp(x); f' = 3x^2 + e^x; f'' = 6x + e^x.
    let x0 = 0.7f64;
    let x = Var::parameter(t(&[x0], &[1]));
    let f = x
        .powf(3.0)
        .unwrap()
        .add(&x.exp().unwrap())
        .unwrap()
        .sum_all()
        .unwrap();
    let opts = BackwardOptions {
        retain_graph: true,
        create_graph: true,
    };
    let g = grad(&f, &[&x], None, opts).unwrap()[0].clone().unwrap();
    assert!((g.item().unwrap() - (3.0 * x0 * x0 + x0.exp())).abs() < 1e-12);
    let h = grad(
        &g.sum_all().unwrap(),
        &[&x],
        None,
        BackwardOptions::default(),
    )
    .unwrap()[0]
        .clone()
        .unwrap();
    assert!((h.item().unwrap() - (6.0 * x0 + x0.exp())).abs() < 1e-12);
}

#[test]
fn second_derivative_of_matmul_and_mean() {
    // f(A) = mean((A x)^2) for fixed x: Hessian-vector product is 2/n * (V x) x^T.
    let a = Tensor::from_vec(vec![0.5, -1.0, 2.0, 0.25, 1.5, -0.75], [3, 2]).unwrap();
    let xv = Tensor::from_vec(vec![1.5, -2.0], [2, 1]).unwrap();
    let v = Tensor::from_vec(vec![1.0, 0.0, -1.0, 2.0, 0.5, 0.5], [3, 2]).unwrap();
    let f = |vars: &[Var]| {
        let ax = vars[0].matmul(&Var::constant(xv.clone()))?;
        ax.mul(&ax)?.mean_all()
    };
    let hv = gradlab_autograd::hvp(f, &[a], std::slice::from_ref(&v)).unwrap();
    let vx = v.matmul(&xv).unwrap();
    let expected = vx
        .matmul(&xv.t().unwrap())
        .unwrap()
        .mul_scalar(2.0 / 3.0)
        .unwrap();
    let (got, want) = (
        hv[0].to_vec::<f64>().unwrap(),
        expected.to_vec::<f64>().unwrap(),
    );
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() < 1e-12, "{got:?} vs {want:?}");
    }
}

#[test]
fn dtype_mix_is_an_error_not_a_panic() {
    let a = Var::parameter(Tensor::ones([2], DType::F32));
    let b = Var::parameter(Tensor::ones([2], DType::F64));
    let err = a.add(&b).unwrap_err().to_string();
    assert!(err.contains("add: dtype mismatch: f32 and f64"), "{err}");
}
