//! Non-differentiable points, overlapping inputs, the fast mode along
//! random directions, gradcheck of a closure's parameters, and the
//! f32-vs-f64 drift report.

use gradlab_autograd::gradcheck::{drift, Coverage, Kink, Probe};
use gradlab_autograd::{
    gradcheck, gradcheck_parameters, BackwardOp, GradcheckOptions, Localize, Result, Var,
};
use gradlab_tensor::{Conv2dParams, DType, MaxPool2dParams, Rng, Shape, Tensor};

fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape.to_vec(), 0.0, 1.0, DType::F64, &mut Rng::new(seed))
}

fn t(values: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_vec(values.to_vec(), shape.to_vec()).unwrap()
}

fn strict() -> GradcheckOptions {
    GradcheckOptions {
        kinks_fail: true,
        ..GradcheckOptions::default()
    }
}

fn kink_elements(kinks: &[Kink]) -> Vec<Vec<usize>> {
    kinks
        .iter()
        .map(|k| match &k.at {
            Probe::Element(at) => at.clone(),
            Probe::Direction(d) => panic!("an element check met a kink along direction {d}"),
        })
        .collect()
}

#[test]
fn relu_at_exactly_zero_is_a_kink_not_a_failure() {
    let x = t(&[-1.0, 0.0, 2.0, 0.5], &[4]);
    let c = t(&[1.5, -2.0, 0.5, 1.0], &[4]);
    let f = |v: &[Var]| v[0].relu()?.mul(&Var::constant(c.clone()))?.sum_all();
    let report = gradcheck(f, std::slice::from_ref(&x), GradcheckOptions::default()).unwrap();
    assert!(report.passed(), "{report}");
    assert!(report.localization.is_none());
    let kinks = &report.inputs[0].kinks;
    assert_eq!(kink_elements(kinks), [vec![1]], "{report}");
    // Left of 0 relu is flat, right of it is not; the analytic derivative
    // takes the left one.
    let k = &kinks[0];
    assert!(k.left.abs() < 1e-9 && k.right.abs() > 0.1, "{k:?}");
    assert_eq!(k.analytic, 0.0);
    let text = report.to_string();
    assert!(
        text.contains("non-differentiable points of input 0 (not counted as failures): at [1]:"),
        "{text}"
    );
    // The option makes it a failure, and the report localises it.
    let failing = gradcheck(f, &[x], strict()).unwrap();
    assert!(!failing.passed(), "{failing}");
    let nodes = failing.localization.as_ref().unwrap();
    let first = nodes.first_disagreement().unwrap();
    assert_eq!(first.op, "ReluBackward");
    assert_eq!(kink_elements(&first.inputs[0].kinks), [vec![1]]);
    assert!(failing.to_string().contains("(counted as failures)"));
}

#[test]
fn a_tie_in_a_max_pool_window_is_a_kink_not_a_failure() {
    // One 2x2 window holding 3.0 twice, one without a tie.
    let x = t(&[1.0, 3.0, 0.5, -1.0, 3.0, 0.0, 2.0, 0.25], &[1, 1, 2, 4]);
    let f = |v: &[Var]| {
        v[0].max_pool2d(MaxPool2dParams::square(2))?
            .mul_scalar(1.5)?
            .sum_all()
    };
    let opts = GradcheckOptions {
        localize: Localize::Always,
        ..GradcheckOptions::default()
    };
    let report = gradcheck(f, std::slice::from_ref(&x), opts).unwrap();
    assert!(report.passed(), "{report}");
    // Both tied elements: moving either up makes it the max (slope 1.5),
    // moving it down leaves the other (slope 0).
    assert_eq!(
        kink_elements(&report.inputs[0].kinks),
        [vec![0, 0, 0, 1], vec![0, 0, 1, 0]],
        "{report}"
    );
    // Moving either tied element down leaves the other as the max (slope
    // 0); moving it up makes it the max (the same slope for both). The
    // first one in the window gets the gradient.
    let (a, b) = (&report.inputs[0].kinks[0], &report.inputs[0].kinks[1]);
    for k in [a, b] {
        assert!(
            k.left.abs() < 1e-9 && (k.right - a.right).abs() < 1e-6,
            "{k:?}"
        );
        assert!(k.right.abs() > 0.1, "{k:?}");
    }
    assert!(
        (a.analytic - a.right).abs() < 1e-9 && b.analytic == 0.0,
        "{report}"
    );
    // Checked alone, the max-pool node reports the same points and agrees.
    let nodes = report.localization.as_ref().unwrap();
    assert!(nodes.passed(), "{report}");
    let pool = &nodes.nodes[0];
    assert_eq!(pool.op, "MaxPool2dBackward");
    assert_eq!(pool.inputs[0].kinks.len(), 2, "{report}");

    let failing = gradcheck(f, &[x], strict()).unwrap();
    assert!(!failing.passed(), "{failing}");
    assert_eq!(
        failing
            .localization
            .as_ref()
            .unwrap()
            .first_disagreement()
            .unwrap()
            .op,
        "MaxPool2dBackward"
    );
}

#[test]
fn ties_in_max_abs_at_zero_and_clamp_bounds_are_kinks() {
    let opts = GradcheckOptions::default();
    // max along a dim with a tie in row 0.
    let x = t(&[2.0, 2.0, -1.0, 0.5, 1.0, 3.0], &[2, 3]);
    let r = gradcheck(|v| Ok(v[0].max_dim(1, false)?.0), &[x], opts).unwrap();
    assert!(r.passed(), "{r}");
    assert_eq!(kink_elements(&r.inputs[0].kinks), [vec![0, 0], vec![0, 1]]);
    // |x| at 0.
    let x = t(&[0.0, -0.5, 1.0], &[3]);
    let r = gradcheck(|v| v[0].abs(), &[x], opts).unwrap();
    assert!(r.passed(), "{r}");
    assert_eq!(kink_elements(&r.inputs[0].kinks), [vec![0]]);
    // A clamp from below (max(x, 0.25)) at its bound.
    let x = t(&[0.25, -1.0, 2.0], &[3]);
    let bound = Var::constant(t(&[0.25, 0.25, 0.25], &[3]));
    let r = gradcheck(|v| v[0].maximum(&bound), &[x], opts).unwrap();
    assert!(r.passed(), "{r}");
    assert_eq!(kink_elements(&r.inputs[0].kinks), [vec![0]]);
}

#[test]
fn steep_smooth_functions_are_not_mistaken_for_kinks() {
    // 1e4 x² at 0: the one-sided differences are ±0.01 apart, far beyond
    // the tolerance, but the gap halves with the step: curvature, not a kink.
    let x = t(&[0.0, 0.5, -1e-7], &[3]);
    let f = |v: &[Var]| v[0].powf(2.0)?.mul_scalar(1e4);
    let report = gradcheck(f, std::slice::from_ref(&x), strict()).unwrap();
    assert!(report.passed() && report.kinks() == 0, "{report}");
    // And a wrong derivative there is an error, not excused as a kink.
    let g = |v: &[Var]| {
        let d = v[0].data();
        Var::from_op(d.mul(&d)?.mul_scalar(1e4)?, &[&v[0]], ShiftedSquareBackward)
    };
    let report = gradcheck(g, &[x], GradcheckOptions::default()).unwrap();
    assert!(!report.passed() && report.kinks() == 0, "{report}");
}

/// The derivative of `1e4 x²` off by 0.005 everywhere.
struct ShiftedSquareBackward;

impl BackwardOp for ShiftedSquareBackward {
    fn name(&self) -> &'static str {
        "ShiftedSquareBackward"
    }
    fn backward(&self, inputs: &[Var], grad: &Var) -> Result<Vec<Option<Var>>> {
        let slope = inputs[0].mul_scalar(2e4)?.add_scalar(0.005)?;
        Ok(vec![Some(grad.mul(&slope)?)])
    }
}

/// relu whose derivative at 0 is claimed to be 5: outside both one-sided
/// derivatives, so not excused as a kink.
struct BadKinkReluBackward;

impl BackwardOp for BadKinkReluBackward {
    fn name(&self) -> &'static str {
        "BadKinkReluBackward"
    }
    fn backward(&self, inputs: &[Var], grad: &Var) -> Result<Vec<Option<Var>>> {
        let x = inputs[0].data();
        let positive = x.gt_mask(0.0)?;
        let zero = x.abs()?.gt_mask(0.0)?.neg()?.add_scalar(1.0)?;
        let slope = positive.add(&zero.mul_scalar(5.0)?)?;
        Ok(vec![Some(grad.mul(&Var::constant(slope))?)])
    }
    fn forward(&self, inputs: &[Tensor], _: &Shape) -> Option<Result<Tensor>> {
        Some(inputs[0].relu().map_err(Into::into))
    }
}

#[test]
fn a_wrong_derivative_at_a_kink_is_still_a_failure() {
    let x = t(&[0.0, 1.0], &[2]);
    let f = |v: &[Var]| Var::from_op(v[0].data().relu()?, &[&v[0]], BadKinkReluBackward)?.sum_all();
    let report = gradcheck(f, &[x], GradcheckOptions::default()).unwrap();
    assert!(!report.passed(), "{report}");
    assert!(report.inputs[0].kinks.is_empty(), "{report}");
    assert_eq!(report.inputs[0].worst, Probe::Element(vec![0]));
}

#[test]
fn expanded_inputs_are_checked_per_element_on_a_contiguous_copy() {
    // A [1, 3] row expanded to [4, 3]: 12 elements in 3 memory locations.
    let x = randn(&[1, 3], 30).broadcast_to([4, 3]).unwrap();
    assert_eq!(x.strides()[0], 0);
    let c = randn(&[4, 3], 31);
    let f = |v: &[Var]| v[0].mul(&Var::constant(c.clone()))?.tanh()?.sum_all();
    let report = gradcheck(f, std::slice::from_ref(&x), GradcheckOptions::default()).unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(report.inputs[0].coverage, Coverage::Every(12));
    assert_eq!(report.notes.len(), 1, "{report}");
    let note = &report.notes[0];
    assert!(
        note.contains("12 elements live in 3 memory locations")
            && note.contains("perturb a contiguous copy"),
        "{note}"
    );
    // Per element: the derivative of tanh(x * c) at element (i, j) alone,
    // which is what the check compared (not the sum over a shared column).
    let analytic = {
        let v = Var::parameter(x.clone());
        f(std::slice::from_ref(&v)).unwrap().backward().unwrap();
        v.grad().unwrap().to_vec::<f64>().unwrap()
    };
    let (xs, cs) = (x.to_vec::<f64>().unwrap(), c.to_vec::<f64>().unwrap());
    for j in 0..12 {
        let expected = cs[j] * (1.0 - (xs[j] * cs[j]).tanh().powi(2));
        assert!((analytic[j] - expected).abs() < 1e-12);
    }
    assert!(report.to_string().contains("note: input 0 [4, 3]:"));
}

/// `x²` whose backward is `3x`: wrong by 1.5 at every element.
struct BrokenSquareBackward;

impl BackwardOp for BrokenSquareBackward {
    fn name(&self) -> &'static str {
        "BrokenSquareBackward"
    }
    fn backward(&self, inputs: &[Var], grad: &Var) -> Result<Vec<Option<Var>>> {
        Ok(vec![Some(grad.mul(&inputs[0].mul_scalar(3.0)?)?)])
    }
    fn forward(&self, inputs: &[Tensor], _: &Shape) -> Option<Result<Tensor>> {
        Some(inputs[0].mul(&inputs[0]).map_err(Into::into))
    }
}

#[test]
fn the_fast_mode_checks_random_directions_and_catches_a_wrong_rule() {
    let fast = GradcheckOptions {
        directions: Some(3),
        ..GradcheckOptions::default()
    };
    // A conv layer with 400 inputs and 200 weights: 3 directions each.
    let (x, w) = (randn(&[2, 2, 10, 10], 40), randn(&[4, 2, 5, 5], 41));
    let conv = |v: &[Var]| v[0].conv2d(&v[1], None, Conv2dParams::default())?.tanh();
    let report = gradcheck(conv, &[x.clone(), w.clone()], fast).unwrap();
    assert!(report.passed(), "{report}");
    for r in &report.inputs {
        assert_eq!(r.coverage, Coverage::Directions(3));
        assert!(matches!(r.worst, Probe::Direction(d) if d < 3));
    }
    // The same with a wrong op in the middle: the directions see it, and
    // localisation names it.
    let broken = |v: &[Var]| {
        let y = v[0].conv2d(&v[1], None, Conv2dParams::default())?;
        let d = y.data();
        Var::from_op(d.mul(&d)?, &[&y], BrokenSquareBackward)?.tanh()
    };
    let report = gradcheck(broken, &[x, w], fast).unwrap();
    assert!(report.inputs.iter().all(|r| !r.passed), "{report}");
    let first = report
        .localization
        .as_ref()
        .unwrap()
        .first_disagreement()
        .unwrap();
    assert_eq!((first.number, first.op), (2, "BrokenSquareBackward"));
    let text = report.to_string();
    assert!(
        text.contains("3 dirs") && text.contains("direction "),
        "{text}"
    );
}

#[test]
fn fast_mode_needs_a_direction() {
    let opts = GradcheckOptions {
        directions: Some(0),
        ..GradcheckOptions::default()
    };
    let err = gradcheck(|v| v[0].exp(), &[randn(&[2], 1)], opts).unwrap_err();
    assert!(err.to_string().contains("at least one direction"), "{err}");
}

#[test]
fn parameters_are_checked_in_place_and_restored() {
    let w = Var::named_parameter(randn(&[3, 4], 50), "layer.weight");
    let b = Var::named_parameter(randn(&[3], 51), "layer.bias");
    let x = Var::constant(randn(&[5, 4], 52));
    let before = (
        w.data().to_vec::<f64>().unwrap(),
        b.data().to_vec::<f64>().unwrap(),
    );
    let loss = || x.linear(&w, Some(&b))?.tanh()?.mean_all();
    let report =
        gradcheck_parameters(loss, &[w.clone(), b.clone()], GradcheckOptions::default()).unwrap();
    assert!(report.passed(), "{report}");
    let names: Vec<_> = report.inputs.iter().map(|r| r.label()).collect();
    assert_eq!(names, ["layer.weight", "layer.bias"]);
    assert_eq!(w.data().to_vec::<f64>().unwrap(), before.0);
    assert_eq!(b.data().to_vec::<f64>().unwrap(), before.1);
    assert!(
        w.grad().is_none(),
        "the check returns gradients, it does not accumulate them"
    );
    assert!(report.to_string().starts_with("input"));

    let f32_weight = Var::parameter(randn(&[2], 53).to_dtype(DType::F32).unwrap());
    let err = gradcheck_parameters(
        || f32_weight.sum_all(),
        std::slice::from_ref(&f32_weight),
        GradcheckOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("must be an f64 var"), "{err}");
}

/// A small conv net's loss, of f32 or f64 inputs alike.
fn small_net(v: &[Var]) -> Result<Var> {
    let (x, w1, w2) = (&v[0], &v[1], &v[2]);
    let h = x.conv2d(w1, None, Conv2dParams::default())?.relu()?;
    let h = h.max_pool2d(MaxPool2dParams::square(2))?.flatten(1)?;
    let logits = h.matmul(w2)?;
    let target = Tensor::from_vec(vec![1i64, 0], [2]).unwrap();
    logits.cross_entropy(&target, gradlab_tensor::Reduction::Mean, 0.0)
}

fn small_net_inputs() -> Vec<Tensor> {
    vec![
        randn(&[2, 1, 6, 6], 60),
        randn(&[3, 1, 3, 3], 61),
        randn(&[12, 4], 62),
    ]
}

#[test]
fn drift_of_f64_against_itself_is_exactly_zero() {
    let report = drift(small_net, &small_net_inputs(), DType::F64, 0).unwrap();
    assert_eq!(report.rows.len(), 9, "{report}");
    for r in &report.rows {
        assert_eq!(
            (r.output_rel_error, r.grad_rel_error),
            (0.0, 0.0),
            "{report}"
        );
    }
}

#[test]
fn drift_of_f32_names_every_node_with_finite_errors_at_f32_precision() {
    let report = drift(small_net, &small_net_inputs(), DType::F32, 0).unwrap();
    let what: Vec<&str> = report.rows.iter().map(|r| r.what.as_str()).collect();
    assert_eq!(
        what,
        [
            "input 0",
            "input 1",
            "Conv2dBackward",
            "ReluBackward",
            "MaxPool2dBackward",
            "ReshapeBackward",
            "input 2",
            "MatmulBackward",
            "CrossEntropyBackward"
        ]
    );
    for r in &report.rows {
        assert!(
            r.output_rel_error.is_finite() && r.grad_rel_error.is_finite(),
            "{report}"
        );
        // f32 rounding, not worse: a few units of 2^-24 per op.
        assert!(
            r.output_rel_error < 1e-5 && r.grad_rel_error < 1e-5,
            "{report}"
        );
    }
    // The inputs are the same values in both runs.
    assert_eq!(report.rows[0].output_rel_error, 0.0);
    // The ops do lose precision in f32.
    assert!(
        report.rows.iter().any(|r| r.output_rel_error > 1e-9),
        "{report}"
    );
    let text = report.to_string();
    assert!(text.contains("largest output error: node "), "{text}");
    assert_eq!(text.lines().count(), report.rows.len() + 3, "{text}");
}
