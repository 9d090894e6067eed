//! Localisation: a whole-function check says "mismatch"; checking every
//! node alone names the wrong op, its call site and the nodes it feeds.
//! Also: every built-in op replays its forward, so every node of every
//! graph can be checked.

use gradlab_autograd::gradcheck::{localize, NodeOutcome, Probe};
use gradlab_autograd::{
    gradcheck, gradgradcheck, BackwardOp, GradcheckOptions, Localize, Result, Var,
};
use gradlab_tensor::{Conv2dParams, DType, MaxPool2dParams, Reduction, Rng, Shape, Tensor};
use std::collections::BTreeSet;

fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape.to_vec(), 0.0, 1.0, DType::F64, &mut Rng::new(seed))
}

/// Distinct values 0.1 apart, shuffled: every max is unique.
fn distinct(shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let mut values: Vec<f64> = (0..n)
        .map(|i| (i as f64 - n as f64 / 2.0) * 0.1 + 0.033)
        .collect();
    Rng::new(seed).shuffle(&mut values);
    Tensor::from_vec(values, shape.to_vec()).unwrap()
}

/// `a * b` (elementwise, same shapes) whose backward is right for `a` and
/// `FACTOR` times too large for `b`.
struct SkewedProductBackward;

const FACTOR: f64 = 2.5;

impl BackwardOp for SkewedProductBackward {
    fn name(&self) -> &'static str {
        "SkewedProductBackward"
    }
    fn backward(&self, inputs: &[Var], grad: &Var) -> Result<Vec<Option<Var>>> {
        let (a, b) = (&inputs[0], &inputs[1]);
        Ok(vec![
            Some(grad.mul(b)?),
            Some(grad.mul(a)?.mul_scalar(FACTOR)?),
        ])
    }
    fn forward(&self, inputs: &[Tensor], _: &Shape) -> Option<Result<Tensor>> {
        Some(inputs[0].mul(&inputs[1]).map_err(Into::into))
    }
}

#[track_caller]
fn skewed_product(a: &Var, b: &Var) -> Result<Var> {
    Var::from_op(a.data().mul(&b.data())?, &[a, b], SkewedProductBackward)
}

/// Inputs of the dozen-op function below: x [2, 3], w1 [3, 4], b1 [4], g [2, 4], w2 [4, 3].
fn dozen_op_inputs() -> Vec<Tensor> {
    vec![
        randn(&[2, 3], 1),
        randn(&[3, 4], 2),
        randn(&[4], 3),
        randn(&[2, 4], 4),
        randn(&[4, 3], 5),
    ]
}

/// The line of this file where `skewed_product` is called in [`dozen_ops`].
const SKEWED_LINE: u32 = line!() + 8;

/// Thirteen recorded ops, the fourth a user-defined op wrong on its second input.
fn dozen_ops(v: &[Var]) -> Result<Var> {
    let (x, w1, b1, gate, w2) = (&v[0], &v[1], &v[2], &v[3], &v[4]);
    let h = x.matmul(w1)?; // 1 MatmulBackward
    let h = h.add(b1)?; // 2 AddBackward
    let h = h.tanh()?; // 3 TanhBackward
    let h = skewed_product(&h, gate)?; // 4 SkewedProductBackward
    let h = h.sigmoid()?; // 5 SigmoidBackward
    let h = h.mul_scalar(1.5)?; // 6 MulScalarBackward
    let y = h.matmul(w2)?; // 7 MatmulBackward
    let p = y.softmax(1)?; // 8 SoftmaxBackward
    let p = p.add_scalar(0.1)?; // 9 AddScalarBackward
    let p = p.log()?; // 10 LogBackward
    let s = p.sum(Some(&[1]), false)?; // 11 SumBackward
    let s = s.powf(2.0)?; // 12 PowBackward
    s.mean_all() // 13 MeanBackward
}

#[test]
fn localisation_names_the_one_wrong_op_in_a_dozen_and_its_call_site() {
    let inputs = dozen_op_inputs();
    // The whole-function check alone: gradients of several inputs are off,
    // and nothing says which op made them so.
    let alone = GradcheckOptions {
        localize: Localize::Never,
        ..GradcheckOptions::default()
    };
    let whole = gradcheck(dozen_ops, &inputs, alone).unwrap();
    assert!(!whole.passed(), "{whole}");
    assert!(whole.localization.is_none());
    let text = whole.to_string();
    assert!(
        text.contains("FAIL") && !text.contains("SkewedProduct"),
        "{text}"
    );
    // The gate feeds only the wrong op, so its gradient is off by FACTOR.
    let gate = &whole.inputs[3];
    assert!(
        !gate.passed && (gate.analytic / gate.numeric - FACTOR).abs() < 1e-4,
        "{text}"
    );

    // By default a failing check localises.
    let report = gradcheck(dozen_ops, &inputs, GradcheckOptions::default()).unwrap();
    let nodes = report
        .localization
        .as_ref()
        .expect("a failing check localises");
    let ops: Vec<&str> = nodes.nodes.iter().map(|n| n.op).collect();
    assert_eq!(
        ops,
        [
            "MatmulBackward",
            "AddBackward",
            "TanhBackward",
            "SkewedProductBackward",
            "SigmoidBackward",
            "MulScalarBackward",
            "MatmulBackward",
            "SoftmaxBackward",
            "AddScalarBackward",
            "LogBackward",
            "SumBackward",
            "PowBackward",
            "MeanBackward"
        ]
    );
    let first = nodes.first_disagreement().expect("one node is wrong");
    assert_eq!((first.number, first.op), (4, "SkewedProductBackward"));
    assert!(
        first
            .location
            .starts_with(&format!("{}:{SKEWED_LINE}:", file!())),
        "{} is not line {SKEWED_LINE} of {}",
        first.location,
        file!()
    );
    // Exactly that node: every other one agrees.
    let wrong: Vec<usize> = nodes
        .nodes
        .iter()
        .filter(|n| !n.agrees())
        .map(|n| n.number)
        .collect();
    assert_eq!(wrong, [4], "{report}");
    // Its first input is right; its second is off by FACTOR at every element.
    assert_eq!(first.input_shapes, [vec![2, 4], vec![2, 4]]);
    assert_eq!(first.output_shape, [2, 4]);
    let (a, b) = (&first.inputs[0], &first.inputs[1]);
    assert!(a.passed && !b.passed, "{report}");
    assert!((b.analytic / b.numeric - FACTOR).abs() < 1e-6, "{report}");
    assert!((b.max_rel_error - (FACTOR - 1.0)).abs() < 1e-6, "{report}");
    assert!(matches!(&b.worst, Probe::Element(at) if at.len() == 2));
    // It feeds the sigmoid.
    assert_eq!(first.feeds, [5]);
    let text = report.to_string();
    assert!(
        text.contains(&format!(
            "first node that disagrees: node 4 SkewedProductBackward, called at {}",
            first.location
        )),
        "{text}"
    );
    assert!(text.contains("  feeds node 5 SigmoidBackward ("), "{text}");
    assert!(text.contains("  input 1: worst at ["), "{text}");
}

/// `x²` written without a forward replay.
struct OpaqueSquareBackward;

impl BackwardOp for OpaqueSquareBackward {
    fn name(&self) -> &'static str {
        "OpaqueSquareBackward"
    }
    fn backward(&self, inputs: &[Var], grad: &Var) -> Result<Vec<Option<Var>>> {
        Ok(vec![Some(grad.mul(&inputs[0].mul_scalar(2.0)?)?)])
    }
}

#[test]
fn a_node_that_cannot_replay_is_reported_as_not_checked() {
    let f = |v: &[Var]| {
        let d = v[0].data();
        let y = Var::from_op(d.mul(&d)?, &[&v[0]], OpaqueSquareBackward)?;
        y.exp()?.sum_all()
    };
    let opts = GradcheckOptions {
        localize: Localize::Always,
        ..GradcheckOptions::default()
    };
    let report = gradcheck(f, &[randn(&[3], 7)], opts).unwrap();
    assert!(report.passed(), "{report}");
    let nodes = report.localization.as_ref().unwrap();
    let NodeOutcome::NotChecked(why) = &nodes.nodes[0].outcome else {
        panic!("{report}")
    };
    assert!(why.contains("BackwardOp::forward"), "{why}");
    assert!(nodes.nodes[1..].iter().all(|n| n.agrees()), "{report}");
    assert!(!nodes.passed() && nodes.first_disagreement().is_none());
    let text = report.to_string();
    assert!(
        text.contains("node 1 OpaqueSquareBackward not checked:")
            && text.contains("(2 checked, 1 not checked)"),
        "{text}"
    );
}

/// A forward replay that does not compute what was recorded.
struct MisreplayedBackward;

impl BackwardOp for MisreplayedBackward {
    fn name(&self) -> &'static str {
        "MisreplayedBackward"
    }
    fn backward(&self, _: &[Var], grad: &Var) -> Result<Vec<Option<Var>>> {
        Ok(vec![Some(grad.clone())])
    }
    fn forward(&self, inputs: &[Tensor], _: &Shape) -> Option<Result<Tensor>> {
        Some(inputs[0].mul_scalar(2.0).map_err(Into::into))
    }
}

#[test]
fn a_replay_that_differs_from_the_recorded_output_is_a_disagreement() {
    let x = Var::parameter(randn(&[4], 8));
    let y = Var::from_op(x.data(), &[&x], MisreplayedBackward).unwrap();
    let nodes = localize(&y.sum_all().unwrap(), &GradcheckOptions::default()).unwrap();
    let NodeOutcome::Disagrees(why) = &nodes.nodes[0].outcome else {
        panic!("{nodes}")
    };
    assert!(
        why.contains("forward replay differs from the recorded output"),
        "{why}"
    );
}

#[test]
fn a_non_finite_output_is_replayed_as_recorded() {
    // Width 1, a 2-wide window dilated by 2 and padded by 1: its taps fall
    // at -1 and 1, both in the padding, so it pools -inf.
    let params = MaxPool2dParams {
        kernel: (1, 2),
        stride: (1, 1),
        padding: (0, 1),
        dilation: (1, 2),
        ceil_mode: false,
    };
    let x = Var::parameter(randn(&[1, 1, 2, 1], 12));
    let y = x.max_pool2d(params).unwrap();
    assert!(y
        .data()
        .to_vec::<f64>()
        .unwrap()
        .iter()
        .all(|v| *v == f64::NEG_INFINITY));
    let nodes = localize(&y, &GradcheckOptions::default()).unwrap();
    // The replay is the recording (-inf both); the numeric derivative of a
    // non-finite function is not a number, which fails, as it should.
    let NodeOutcome::Disagrees(why) = &nodes.nodes[0].outcome else {
        panic!("{nodes}")
    };
    assert!(
        !why.contains("replay differs") && why.contains("numeric NaN"),
        "{why}"
    );
}

#[test]
fn localisation_refuses_an_f32_graph_and_a_freed_one() {
    let x = Var::parameter(randn(&[3], 9).to_dtype(DType::F32).unwrap());
    let y = x.exp().unwrap().sum_all().unwrap();
    let err = localize(&y, &GradcheckOptions::default()).unwrap_err();
    assert!(
        err.to_string().contains("record the graph from f64"),
        "{err}"
    );

    let x = Var::parameter(randn(&[3], 9));
    let y = x.exp().unwrap().sum_all().unwrap();
    y.backward().unwrap();
    let nodes = localize(&y, &GradcheckOptions::default()).unwrap();
    assert!(
        nodes.nodes.iter().all(
            |n| matches!(&n.outcome, NodeOutcome::NotChecked(why) if why.contains("retain_graph"))
        ),
        "{nodes}"
    );
}

#[test]
fn large_node_inputs_are_sampled_and_still_caught() {
    // 40 x 40 inputs with a limit of 64 elements per input: a sample and
    // two directions, which still see a wrong factor.
    let inputs = [randn(&[40, 40], 10), randn(&[40, 40], 11)];
    let f = |v: &[Var]| skewed_product(&v[0].tanh()?, &v[1])?.sum_all();
    let opts = GradcheckOptions {
        node_elements: Some(64),
        localize: Localize::Always,
        directions: Some(2),
        ..GradcheckOptions::default()
    };
    let report = gradcheck(f, &inputs, opts).unwrap();
    assert!(!report.passed(), "{report}");
    let nodes = report.localization.as_ref().unwrap();
    let first = nodes.first_disagreement().unwrap();
    assert_eq!(first.op, "SkewedProductBackward");
    let coverage = first.inputs[1].coverage.to_string();
    assert_eq!(coverage, "64/1600+2d", "{report}");
    assert!(nodes.nodes[0].agrees(), "{report}");
}

#[test]
fn every_built_in_op_replays_its_forward_and_agrees_alone() {
    let mut seen = BTreeSet::new();
    let opts = GradcheckOptions {
        localize: Localize::Always,
        ..GradcheckOptions::default()
    };
    // First derivatives always; second ones too where asked (their graphs
    // hold the ops of the backward rules).
    let mut check =
        |what: &str, f: &dyn Fn(&[Var]) -> Result<Var>, inputs: &[Tensor], second: bool| {
            let mut reports = vec![gradcheck(f, inputs, opts).unwrap()];
            if second {
                reports.push(gradgradcheck(f, inputs, opts).unwrap());
            }
            for report in reports {
                let nodes = report.localization.as_ref().unwrap();
                assert!(report.passed() && nodes.passed(), "{what}:\n{report}");
                seen.extend(nodes.nodes.iter().map(|n| n.op));
            }
        };
    let away = |shape: &[usize], seed| {
        let t = randn(shape, seed);
        t.add(
            &t.gt_mask(0.0)
                .unwrap()
                .mul_scalar(0.4)
                .unwrap()
                .add_scalar(-0.2)
                .unwrap(),
        )
        .unwrap()
    };
    let positive =
        |shape: &[usize], seed| randn(shape, seed).abs().unwrap().add_scalar(0.5).unwrap();
    check(
        "elementwise",
        &|v| {
            let a = v[0].add(&v[1])?.sub(&v[2])?.mul(&v[1])?.div(&v[3])?;
            let b = a
                .maximum(&v[2])?
                .neg()?
                .exp()?
                .add(&v[3].log()?)?
                .add(&v[3].sqrt()?)?;
            let c = v[0]
                .relu()?
                .add(&b.sigmoid()?)?
                .add(&b.tanh()?)?
                .add(&v[0].abs()?)?;
            c.mul(&v[3].powf(1.5)?)?
                .add_scalar(0.5)?
                .mul_scalar(2.0)?
                .sum_all()
        },
        &[
            away(&[2, 3], 20),
            randn(&[2, 3], 21),
            randn(&[3], 22),
            positive(&[2, 3], 23),
        ],
        false,
    );
    check(
        "relu's and a mask's second derivatives",
        &|v| {
            let mask = v[0].unary(gradlab_tensor::UnaryOp::GtMask(0.0))?;
            v[0].mul(&v[0])?.relu()?.add(&mask)?.mul(&v[0])?.sum_all()
        },
        &[away(&[5], 24)],
        true,
    );
    let conv = Conv2dParams {
        stride: (2, 1),
        padding: (1, 1),
        ..Default::default()
    };
    let pool = MaxPool2dParams {
        kernel: (2, 2),
        stride: (2, 2),
        padding: (1, 0),
        dilation: (1, 1),
        ceil_mode: true,
    };
    check(
        "conv2d, batch norm, max-pool (and their second derivatives)",
        &|v| {
            let y = v[0].conv2d(&v[1], Some(&v[2]), conv)?;
            let y = gradlab_autograd::batch_norm2d_train(&y, Some(&v[3]), Some(&v[4]), 1e-5)?;
            let (pooled, argmax) = y.tanh()?.max_pool2d_with_indices(pool)?;
            let gathered = y.mul(&y)?.max_pool2d_gather(&argmax, pool)?;
            pooled.tanh()?.add(&gathered)?.sum_all()
        },
        &[
            randn(&[2, 2, 5, 4], 30),
            randn(&[3, 2, 3, 3], 31),
            randn(&[3], 32),
            randn(&[3], 33),
            randn(&[3], 34),
        ],
        true,
    );
    let target = Tensor::from_vec(vec![1i64, 0, 2], [3]).unwrap();
    check(
        "matmul, linear, softmax family, cross-entropy",
        &|v| {
            let h = v[0].linear(&v[1], Some(&v[2]))?.tanh()?;
            let logits = h.matmul(&v[3])?;
            let p = logits.softmax(1)?.add(&logits.log_softmax(0)?)?;
            p.cross_entropy(&target, Reduction::Mean, 0.1)
        },
        &[
            randn(&[3, 4], 40),
            randn(&[5, 4], 41),
            randn(&[5], 42),
            randn(&[5, 3], 43),
        ],
        true,
    );
    check(
        "reductions, max, gather and scatter",
        &|v| {
            let (m, idx) = v[0].max_dim(1, true)?;
            let g = v[0].gather_along(1, &idx)?;
            let s = g.scatter_add_along(1, &idx, &Shape::new(vec![3, 4]))?;
            let t = v[0]
                .sum(Some(&[0]), true)?
                .add(&v[0].mean(Some(&[1]), true)?)?;
            m.add(&s.tanh()?)?.mul(&t)?.sum_all()
        },
        &[distinct(&[3, 4], 60)],
        true,
    );
    check(
        "shape ops",
        &|v| {
            let x = v[0]
                .reshape([3, 4])?
                .permute(&[1, 0])?
                .transpose(0, 1)?
                .t()?;
            let n = x.narrow(0, 1, 2)?.embed(0, 1, 4)?;
            let e = v[1].broadcast_to([4, 3])?.mul(&n)?;
            let back = e.sum_to(&Shape::new(vec![1, 3]))?;
            let c = Var::cat(&[&back, &v[1]], 0)?;
            c.mul(&c)?.contiguous()?.sum_all()
        },
        &[randn(&[12], 50), randn(&[1, 3], 51)],
        true,
    );
    for op in [
        "AddBackward",
        "SubBackward",
        "MulBackward",
        "DivBackward",
        "MaximumBackward",
        "ReluBackwardBackward",
        "NegBackward",
        "ExpBackward",
        "LogBackward",
        "SqrtBackward",
        "ReluBackward",
        "SigmoidBackward",
        "TanhBackward",
        "AbsBackward",
        "PowBackward",
        "AddScalarBackward",
        "MulScalarBackward",
        "GtMaskBackward",
        "Conv2dBackward",
        "Conv2dBackwardDataBackward",
        "Conv2dBackwardWeightBackward",
        "NativeBatchNormBackward",
        "MaxPool2dBackward",
        "MaxPoolScatterBackward",
        "MaxPoolGatherBackward",
        "MatmulBackward",
        "LinearBackward",
        "SoftmaxBackward",
        "LogSoftmaxBackward",
        "CrossEntropyBackward",
        "SumBackward",
        "MeanBackward",
        "MaxBackward",
        "GatherBackward",
        "ScatterAddBackward",
        "ReshapeBackward",
        "PermuteBackward",
        "TransposeBackward",
        "NarrowBackward",
        "EmbedBackward",
        "ExpandBackward",
        "SumToBackward",
        "CatBackward",
    ] {
        assert!(seen.contains(op), "{op} never met: {seen:?}");
    }
}
