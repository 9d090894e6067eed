//! The `testing` helpers themselves: the parameter strategies give valid
//! problems that cover every parameter (partial windows included), and a
//! failing op-choice property names the op and its shrunk shapes.

use gradlab_autograd::testing::{
    assert_op_gradcheck, conv2d_case, max_pool2d_case, op_choice, shape, Domain, OpChoice,
    UNARY_OPS,
};
use gradlab_autograd::{BackwardOp, Result, Var};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestError, TestRunner};

/// `n` values drawn from `strategy` with a fixed seed.
fn draw<S: Strategy>(strategy: S, n: usize) -> Vec<S::Value> {
    let mut runner = TestRunner::deterministic();
    (0..n)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect()
}

#[test]
fn conv2d_cases_are_valid_and_vary_every_parameter() {
    let cases = draw(conv2d_case(), 300);
    for case in &cases {
        let out = case.apply(&[
            Var::constant(case.tensors(0)[0].clone()),
            Var::constant(case.tensors(0)[1].clone()),
        ]);
        let out = out.unwrap_or_else(|e| panic!("{case:?}: {e}"));
        assert_eq!(out.dims()[..2], [case.input[0], case.weight[0]], "{case:?}");
    }
    let count = |f: &dyn Fn(&gradlab_autograd::testing::Conv2dCase) -> bool| {
        cases.iter().filter(|c| f(c)).count()
    };
    assert!(count(&|c| c.params.groups > 1) > 30);
    assert!(count(&|c| c.params.stride.0 > 1 || c.params.stride.1 > 1) > 30);
    assert!(count(&|c| c.params.dilation.0 > 1 || c.params.dilation.1 > 1) > 30);
    assert!(count(&|c| c.params.padding.0 > 0 || c.params.padding.1 > 0) > 30);
    assert!(count(&|c| c.bias) > 30 && count(&|c| !c.bias) > 30);
    assert!(count(&|c| c.weight[2] != c.weight[3]) > 30);
    assert!(count(&|c| c.leaves_a_tail()) > 30);
}

#[test]
fn max_pool_cases_are_valid_and_leave_partial_windows() {
    let cases = draw(max_pool2d_case(), 300);
    for case in &cases {
        let x = Var::constant(case.tensor(0));
        let y = case.apply(&[x]).unwrap_or_else(|e| panic!("{case:?}: {e}"));
        // No window lies wholly in the padding (it would pool -inf).
        let y = y.data().to_vec::<f64>().unwrap();
        assert!(y.iter().all(|v| v.is_finite()), "{case:?}");
        // Distinct values: no ties in any window.
        let mut v = case.tensor(1).to_vec::<f64>().unwrap();
        v.sort_by(f64::total_cmp);
        assert!(v.windows(2).all(|w| w[1] - w[0] > 0.05));
    }
    let count = |f: &dyn Fn(&gradlab_autograd::testing::MaxPool2dCase) -> bool| {
        cases.iter().filter(|c| f(c)).count()
    };
    assert!(count(&|c| c.params.ceil_mode) > 50);
    assert!(
        count(&|c| c.has_partial_window()) > 20,
        "{}",
        count(&|c| c.has_partial_window())
    );
    assert!(count(&|c| c.params.padding != (0, 0)) > 30);
    assert!(count(&|c| c.params.dilation != (1, 1)) > 30);
    assert!(count(&|c| c.params.stride != c.params.kernel) > 30);
}

/// `x²` whose backward says `3x`.
struct BrokenSquareBackward;

impl BackwardOp for BrokenSquareBackward {
    fn name(&self) -> &'static str {
        "BrokenSquareBackward"
    }
    fn backward(&self, inputs: &[Var], grad: &Var) -> Result<Vec<Option<Var>>> {
        Ok(vec![Some(grad.mul(&inputs[0].mul_scalar(3.0)?)?)])
    }
}

/// The unary ops, with a wrong one among them.
static WITH_A_WRONG_OP: [OpChoice; 3] = [
    UNARY_OPS[5], // sigmoid
    OpChoice::new("broken_square", &[Domain::Positive], |v| {
        let d = v[0].data();
        Var::from_op(d.mul(&d)?, &[&v[0]], BrokenSquareBackward)
    }),
    UNARY_OPS[6], // tanh
];

#[test]
fn a_failing_op_choice_names_the_op_and_the_shrunk_shapes() {
    assert_eq!(format!("{:?}", UNARY_OPS[5]), "sigmoid");
    let mut runner = TestRunner::new(Config {
        cases: 64,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (op_choice(&WITH_A_WRONG_OP), shape(3, 4), any::<u64>());
    let result = runner.run(&strategy, |(op, s, seed)| {
        assert_op_gradcheck(&op, &op.inputs(&[s], seed));
        Ok(())
    });
    let Err(TestError::Fail(reason, (op, s, _))) = result else {
        panic!("the wrong op was never drawn: {result:?}")
    };
    // Shrunk to the wrong op on the smallest shape.
    assert_eq!(format!("{op:?}"), "broken_square");
    assert_eq!(s, vec![1]);
    let reason = reason.to_string();
    assert!(
        reason.contains("gradcheck of broken_square failed for inputs [[1]]"),
        "{reason}"
    );
}
