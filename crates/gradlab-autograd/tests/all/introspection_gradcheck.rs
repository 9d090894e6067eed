//! First and second derivatives of every differentiable op against finite
//! differences, Hessian-vector products, and gradcheck catching wrong
//! backward rules.

use gradlab_autograd::gradcheck::Probe;
use gradlab_autograd::{
    grad, gradcheck, gradgradcheck, hvp, BackwardOp, BackwardOptions, GradcheckOptions,
    GradcheckReport, Localize, Result, Var,
};
use gradlab_tensor::{Conv2dParams, DType, MaxPool2dParams, Reduction, Rng, Tensor};

fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape.to_vec(), 0.0, 1.0, DType::F64, &mut Rng::new(seed))
}

/// Values in `[low, high)`.
fn uniform(shape: &[usize], low: f64, high: f64, seed: u64) -> Tensor {
    Tensor::rand_uniform(shape.to_vec(), low, high, DType::F64, &mut Rng::new(seed))
}

/// Values at least 0.2 away from zero, either sign (for relu and divisors).
fn away_from_zero(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = Rng::new(seed);
    let n: usize = shape.iter().product();
    let values = (0..n)
        .map(|_| {
            let magnitude = rng.uniform(0.2, 1.5);
            if rng.next_f64() < 0.5 {
                -magnitude
            } else {
                magnitude
            }
        })
        .collect();
    Tensor::from_vec(values, shape.to_vec()).unwrap()
}

/// A shuffled ramp: all values distinct and 0.1 apart, so every max is unique
/// and stays the max under finite-difference steps. The offset keeps the
/// squares distinct too (no value is the negative of another).
fn distinct(shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let mut values: Vec<f64> = (0..n)
        .map(|i| (i as f64 - n as f64 / 2.0) * 0.1 + 0.033)
        .collect();
    Rng::new(seed).shuffle(&mut values);
    Tensor::from_vec(values, shape.to_vec()).unwrap()
}

/// Asserts that first and second derivatives of `f` at `inputs` match
/// finite differences.
fn check_both(what: &str, f: impl Fn(&[Var]) -> Result<Var> + Copy, inputs: &[Tensor]) {
    let opts = GradcheckOptions::default();
    let first = gradcheck(f, inputs, opts).unwrap();
    assert!(first.passed(), "gradcheck {what}:\n{first}");
    let second = gradgradcheck(f, inputs, opts).unwrap();
    assert!(second.passed(), "gradgradcheck {what}:\n{second}");
    // One report row per input, plus the output cotangent for gradgradcheck.
    assert_eq!(first.inputs.len(), inputs.len());
    assert_eq!(second.inputs.len(), inputs.len() + 1);
}

#[test]
fn conv2d_second_derivatives() {
    let cases = [
        // (input, weight, stride, padding, dilation, groups)
        ([1, 2, 5, 5], [3, 2, 3, 3], (1, 1), (0, 0), (1, 1), 1),
        ([2, 2, 6, 5], [2, 2, 3, 2], (2, 1), (1, 0), (1, 1), 1),
        ([1, 2, 7, 7], [2, 2, 2, 2], (2, 2), (1, 1), (2, 3), 1),
        ([1, 4, 5, 5], [4, 2, 3, 3], (1, 2), (1, 1), (1, 1), 2),
        ([1, 3, 5, 4], [3, 1, 2, 2], (1, 1), (0, 1), (2, 1), 3),
    ];
    for (k, (x, w, stride, padding, dilation, groups)) in cases.into_iter().enumerate() {
        let params = Conv2dParams {
            stride,
            padding,
            dilation,
            groups,
        };
        let bias = [w[0]];
        let inputs = [
            randn(&x, 10 + k as u64),
            randn(&w, 20 + k as u64),
            randn(&bias, 30 + k as u64),
        ];
        let what = format!("conv2d {x:?} * {w:?} {params:?}");
        check_both(&what, |v| v[0].conv2d(&v[1], Some(&v[2]), params), &inputs);
    }
}

#[test]
fn max_pool2d_second_derivatives() {
    let pool = |kernel, stride, padding, dilation, ceil_mode| MaxPool2dParams {
        kernel,
        stride,
        padding,
        dilation,
        ceil_mode,
    };
    let cases = [
        ([1, 2, 4, 4], pool((2, 2), (2, 2), (0, 0), (1, 1), false)),
        ([2, 1, 7, 6], pool((3, 3), (2, 2), (1, 1), (1, 1), false)),
        ([1, 2, 6, 7], pool((2, 3), (2, 1), (1, 0), (2, 1), true)),
        ([1, 1, 5, 5], pool((2, 2), (2, 2), (0, 0), (1, 1), true)),
    ];
    for (k, (x, params)) in cases.into_iter().enumerate() {
        let what = format!("max_pool2d {x:?} {params:?}");
        check_both(
            &what,
            |v| v[0].max_pool2d(params),
            &[distinct(&x, k as u64)],
        );
        // Composed with a smooth op, the Hessian is not zero in x.
        check_both(
            &what,
            |v| v[0].mul(&v[0])?.max_pool2d(params)?.tanh(),
            &[distinct(&x, k as u64)],
        );
    }
}

#[test]
fn matmul_and_linear_second_derivatives() {
    check_both(
        "matmul 2d",
        |v| v[0].matmul(&v[1]),
        &[randn(&[3, 4], 1), randn(&[4, 2], 2)],
    );
    check_both(
        "matmul 1d @ 2d",
        |v| v[0].matmul(&v[1]),
        &[randn(&[4], 3), randn(&[4, 3], 4)],
    );
    check_both(
        "matmul 2d @ 1d",
        |v| v[0].matmul(&v[1]),
        &[randn(&[3, 4], 5), randn(&[4], 6)],
    );
    check_both(
        "matmul 1d @ 1d",
        |v| v[0].matmul(&v[1]),
        &[randn(&[4], 7), randn(&[4], 8)],
    );
    check_both(
        "matmul batched broadcast",
        |v| v[0].matmul(&v[1]),
        &[randn(&[2, 1, 2, 3], 9), randn(&[3, 3, 2], 10)],
    );
    check_both(
        "matmul of a transposed view",
        |v| v[0].matmul(&v[1].t()?),
        &[randn(&[3, 4], 11), randn(&[2, 4], 12)],
    );
    check_both(
        "linear with bias",
        |v| v[0].linear(&v[1], Some(&v[2])),
        &[randn(&[3, 4], 13), randn(&[2, 4], 14), randn(&[2], 15)],
    );
    check_both(
        "linear 3-d input",
        |v| v[0].linear(&v[1], None),
        &[randn(&[2, 2, 3], 16), randn(&[4, 3], 17)],
    );
}

#[test]
fn softmax_family_second_derivatives() {
    for dim in 0..2 {
        check_both(
            "softmax",
            |v| v[0].softmax(dim),
            &[randn(&[3, 4], 20 + dim as u64)],
        );
        check_both(
            "log_softmax",
            |v| v[0].log_softmax(dim),
            &[randn(&[3, 4], 30 + dim as u64)],
        );
    }
    let target = Tensor::from_vec(vec![2i64, 0, 3], [3]).unwrap();
    for (reduction, smoothing) in [
        (Reduction::Mean, 0.0),
        (Reduction::Sum, 0.0),
        (Reduction::Mean, 0.1),
    ] {
        let what = format!("cross_entropy {reduction:?} smoothing {smoothing}");
        check_both(
            &what,
            |v| v[0].cross_entropy(&target, reduction, smoothing),
            &[randn(&[3, 4], 40)],
        );
    }
}

#[test]
fn elementwise_second_derivatives() {
    let (a, b) = (randn(&[2, 3], 50), randn(&[2, 3], 51));
    let row = randn(&[3], 52);
    check_both("add", |v| v[0].add(&v[1]), &[a.clone(), row.clone()]);
    check_both("sub", |v| v[0].sub(&v[1]), &[a.clone(), row.clone()]);
    check_both("mul", |v| v[0].mul(&v[1]), &[a.clone(), b.clone()]);
    check_both(
        "mul broadcast",
        |v| v[0].mul(&v[1]),
        &[a.clone(), row.clone()],
    );
    check_both(
        "div",
        |v| v[0].div(&v[1]),
        &[a.clone(), away_from_zero(&[2, 3], 53)],
    );
    check_both("neg", |v| v[0].neg(), std::slice::from_ref(&a));
    check_both("exp", |v| v[0].exp(), std::slice::from_ref(&a));
    let positive = uniform(&[2, 3], 0.3, 2.0, 54);
    check_both("log", |v| v[0].log(), std::slice::from_ref(&positive));
    check_both("sqrt", |v| v[0].sqrt(), std::slice::from_ref(&positive));
    check_both("pow 3", |v| v[0].powf(3.0), std::slice::from_ref(&a));
    check_both("pow -1.5", |v| v[0].powf(-1.5), &[positive]);
    check_both(
        "relu",
        |v| v[0].relu()?.mul(&v[0]),
        &[away_from_zero(&[2, 3], 55)],
    );
    check_both("sigmoid", |v| v[0].sigmoid(), std::slice::from_ref(&a));
    check_both("tanh", |v| v[0].tanh(), std::slice::from_ref(&a));
    check_both(
        "abs",
        |v| v[0].abs()?.mul(&v[0]),
        &[away_from_zero(&[2, 3], 56)],
    );
    check_both(
        "maximum",
        |v| v[0].maximum(&v[1]),
        &[
            distinct(&[2, 3], 57),
            distinct(&[2, 3], 58).add_scalar(0.05).unwrap(),
        ],
    );
    check_both(
        "scalars",
        |v| v[0].mul_scalar(-2.5)?.add_scalar(1.0)?.tanh(),
        &[b],
    );
}

#[test]
fn reduction_second_derivatives() {
    let x = randn(&[2, 3, 4], 60);
    // Squared first, so that the second derivatives are not all zero.
    let sq = |v: &Var| v.mul(v);
    check_both(
        "sum all",
        |v| sq(&v[0])?.sum_all(),
        std::slice::from_ref(&x),
    );
    check_both(
        "sum dims",
        |v| sq(&v[0])?.sum(Some(&[0, 2]), false),
        std::slice::from_ref(&x),
    );
    check_both(
        "sum keepdim",
        |v| sq(&v[0])?.sum(Some(&[1]), true),
        std::slice::from_ref(&x),
    );
    check_both(
        "mean all",
        |v| sq(&v[0])?.mean_all(),
        std::slice::from_ref(&x),
    );
    check_both(
        "mean dims",
        |v| sq(&v[0])?.mean(Some(&[2]), true),
        std::slice::from_ref(&x),
    );
    let d = distinct(&[2, 3, 4], 61);
    for dim in 0..3 {
        check_both(
            "max_dim",
            |v| Ok(sq(&v[0])?.max_dim(dim, false)?.0),
            std::slice::from_ref(&d),
        );
        check_both(
            "max_dim keepdim",
            |v| Ok(v[0].max_dim(dim, true)?.0),
            std::slice::from_ref(&d),
        );
    }
}

#[test]
fn shape_op_second_derivatives() {
    let x = randn(&[2, 3, 4], 70);
    let sq = |v: &Var| v.mul(v);
    check_both(
        "reshape",
        |v| sq(&v[0])?.reshape([4, 6]),
        std::slice::from_ref(&x),
    );
    check_both(
        "permute",
        |v| sq(&v[0])?.permute(&[2, 0, 1])?.contiguous(),
        std::slice::from_ref(&x),
    );
    check_both(
        "transpose",
        |v| sq(&v[0])?.transpose(0, 2),
        std::slice::from_ref(&x),
    );
    check_both(
        "flatten",
        |v| sq(&v[0])?.flatten(1),
        std::slice::from_ref(&x),
    );
    check_both(
        "narrow",
        |v| sq(&v[0])?.narrow(2, 1, 2),
        std::slice::from_ref(&x),
    );
    check_both(
        "unsqueeze/squeeze",
        |v| sq(&v[0])?.unsqueeze(1)?.squeeze(1),
        std::slice::from_ref(&x),
    );
    check_both(
        "expand",
        |v| sq(&v[0])?.expand([3, 2, 3, 4]),
        std::slice::from_ref(&x),
    );
    check_both(
        "cat",
        |v| Var::cat(&[&sq(&v[0])?, &v[1], &v[2].exp()?], 1),
        &[
            randn(&[2, 1, 3], 71),
            randn(&[2, 2, 3], 72),
            randn(&[2, 3, 3], 73),
        ],
    );
}

#[test]
fn a_small_lenet_like_loss_second_derivatives() {
    // conv -> relu -> pool -> linear -> cross-entropy, all parameters at once.
    let target = Tensor::from_vec(vec![1i64, 0], [2]).unwrap();
    let f = |v: &[Var]| {
        let h = v[0]
            .conv2d(&v[1], Some(&v[2]), Conv2dParams::default())?
            .relu()?;
        let p = h.max_pool2d(MaxPool2dParams::square(2))?.flatten(1)?;
        p.linear(&v[3], None)?
            .cross_entropy(&target, Reduction::Mean, 0.0)
    };
    // Inputs chosen so that no pre-activation sits near a relu kink or a pool tie.
    let inputs = [
        distinct(&[2, 1, 5, 5], 80),
        randn(&[2, 1, 2, 2], 81),
        randn(&[2], 82),
        randn(&[2, 8], 83),
    ];
    check_both("conv-relu-pool-linear-ce", f, &inputs);
}

/// `f(x, w) = sum(tanh(conv(x, w))^2) + mean(log_softmax(x_flat))`: non-zero
/// Hessian in every block.
fn smooth_loss(v: &[Var]) -> Result<Var> {
    let y = v[0]
        .conv2d(
            &v[1],
            None,
            Conv2dParams {
                padding: (1, 1),
                ..Default::default()
            },
        )?
        .tanh()?;
    let a = y.mul(&y)?.sum_all()?;
    let b = v[0].flatten(1)?.log_softmax(1)?.mean_all()?;
    a.add(&b)
}

#[test]
fn hvp_matches_finite_differences_of_gradients() {
    let inputs = [
        randn(&[2, 2, 4, 4], 90),
        randn(&[3, 2, 3, 3], 91).mul_scalar(0.3).unwrap(),
    ];
    let dirs = [randn(&[2, 2, 4, 4], 92), randn(&[3, 2, 3, 3], 93)];
    let hv = hvp(smooth_loss, &inputs, &dirs).unwrap();
    // Central difference of the gradient along v: (∇f(x + εv) - ∇f(x - εv)) / 2ε.
    let gradient_at = |step: f64| -> Vec<Vec<f64>> {
        let xs: Vec<Var> = inputs
            .iter()
            .zip(&dirs)
            .map(|(x, d)| Var::parameter(x.add(&d.mul_scalar(step).unwrap()).unwrap()))
            .collect();
        let refs: Vec<&Var> = xs.iter().collect();
        let loss = smooth_loss(&xs).unwrap();
        let g = grad(&loss, &refs, None, BackwardOptions::default()).unwrap();
        g.into_iter()
            .map(|g| g.unwrap().data().to_vec::<f64>().unwrap())
            .collect()
    };
    let eps = 1e-5;
    let (plus, minus) = (gradient_at(eps), gradient_at(-eps));
    let mut largest = 0.0f64;
    for i in 0..2 {
        let got = hv[i].to_vec::<f64>().unwrap();
        assert_eq!(got.len(), plus[i].len());
        for j in 0..got.len() {
            let numeric = (plus[i][j] - minus[i][j]) / (2.0 * eps);
            largest = largest.max(numeric.abs());
            assert!(
                (got[j] - numeric).abs() <= 1e-6 + 1e-5 * numeric.abs(),
                "input {i} element {j}: hvp {} vs finite differences {numeric}",
                got[j]
            );
        }
    }
    assert!(largest > 0.1, "the test needs a Hessian that is not ~0");
}

#[test]
fn hvp_of_a_quadratic_is_the_matrix_product() {
    // f(x) = x^T A x / 2 with symmetric A: H = A, H v = A v.
    let a = Tensor::from_vec(vec![2.0, -1.0, 0.5, -1.0, 3.0, 0.0, 0.5, 0.0, 1.0], [3, 3]).unwrap();
    let v = Tensor::from_vec(vec![1.0, 2.0, -1.0], [3]).unwrap();
    let f = |xs: &[Var]| {
        xs[0]
            .matmul(&Var::constant(a.clone()))?
            .mul(&xs[0])?
            .sum_all()?
            .mul_scalar(0.5)
    };
    let hv = hvp(f, &[randn(&[3], 95)], std::slice::from_ref(&v)).unwrap();
    let (got, want) = (
        hv[0].to_vec::<f64>().unwrap(),
        a.matmul(&v).unwrap().to_vec::<f64>().unwrap(),
    );
    assert_eq!(want, vec![-0.5, 5.0, -0.5]);
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() < 1e-12, "{got:?} vs {want:?}");
    }
}

/// `x²` with a deliberately wrong derivative: `3x` instead of `2x`.
struct BrokenSquareBackward;

impl BackwardOp for BrokenSquareBackward {
    fn name(&self) -> &'static str {
        "BrokenSquareBackward"
    }
    fn backward(&self, inputs: &[Var], grad: &Var) -> Result<Vec<Option<Var>>> {
        Ok(vec![Some(grad.mul(&inputs[0].mul_scalar(3.0)?)?)])
    }
}

/// `x²` whose derivative is right in value but cut from the graph, so its
/// own derivative (the second derivative of x²) comes out as 0, not 2.
struct DetachedSquareBackward;

impl BackwardOp for DetachedSquareBackward {
    fn name(&self) -> &'static str {
        "DetachedSquareBackward"
    }
    fn backward(&self, inputs: &[Var], grad: &Var) -> Result<Vec<Option<Var>>> {
        let two_x = Var::constant(inputs[0].data().mul_scalar(2.0)?);
        Ok(vec![Some(grad.mul(&two_x)?)])
    }
}

fn square_with(x: &Var, op: impl BackwardOp + 'static) -> Result<Var> {
    let d = x.data();
    Var::from_op(d.mul(&d)?, &[x], op)
}

#[test]
fn gradcheck_reports_a_wrong_backward() {
    let x = Tensor::from_vec(vec![0.5, -1.0, 2.0, 0.25], [2, 2]).unwrap();
    let w = randn(&[2, 2], 100);
    let f = |v: &[Var]| square_with(&v[0], BrokenSquareBackward)?.mul(&v[1]);
    // The per-input table alone, as a whole-function check gives it.
    let opts = GradcheckOptions {
        localize: Localize::Never,
        ..GradcheckOptions::default()
    };
    let report: GradcheckReport = gradcheck(f, &[x.clone(), w], opts).unwrap();
    assert!(!report.passed());
    let (bad, good) = (&report.inputs[0], &report.inputs[1]);
    assert!(!bad.passed && good.passed, "{report}");
    // analytic = 3x * (cotangent * w), numeric = 2x * (cotangent * w): ratio 3/2 everywhere.
    assert!((bad.analytic / bad.numeric - 1.5).abs() < 1e-6, "{report}");
    assert!((bad.max_rel_error - 0.5).abs() < 1e-6, "{report}");
    assert_eq!(bad.shape, vec![2, 2]);
    let xv = x.to_vec::<f64>().unwrap();
    let Probe::Element(at) = &bad.worst else {
        panic!("an element check reports elements: {report}")
    };
    let flat = at[0] * 2 + at[1];
    assert!(bad.numeric.abs() > 0.0 && xv[flat] != 0.0);
    let table = report.to_string();
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(rows.len(), 3, "{table}");
    assert!(
        rows[0].contains("max abs err")
            && rows[0].contains("analytic")
            && rows[0].contains("numeric")
    );
    assert!(
        rows[1].starts_with("0 ") && rows[1].ends_with("FAIL"),
        "{table}"
    );
    assert!(
        rows[2].starts_with("1 ") && rows[2].ends_with("ok"),
        "{table}"
    );
}

#[test]
fn gradgradcheck_catches_a_backward_that_is_not_differentiable() {
    let x = randn(&[3], 101);
    let f = |v: &[Var]| square_with(&v[0], DetachedSquareBackward);
    let first = gradcheck(f, std::slice::from_ref(&x), GradcheckOptions::default()).unwrap();
    assert!(first.passed(), "{first}");
    let second = gradgradcheck(f, &[x], GradcheckOptions::default()).unwrap();
    // Row 0 (d/dx of the first gradient) is wrong; row 1 (d/d cotangent) is right.
    assert!(
        !second.inputs[0].passed && second.inputs[1].passed,
        "{second}"
    );
    assert_eq!(second.inputs[0].analytic, 0.0, "{second}");
}
