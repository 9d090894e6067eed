//! Named ops for property tests: a strategy picks one, and a failing case
//! prints the op's name, not its position in a list.

use crate::gradcheck::GradcheckOptions;
use crate::{gradcheck, Result, Var};
use gradlab_tensor::{DType, Rng, Tensor};
use proptest::prelude::*;
use std::fmt;

/// Where an op's input values are drawn so that its derivative exists
/// there and finite differences are accurate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Domain {
    /// Standard normal.
    Any,
    /// In `[0.5, 2)`: inside the domain of log, sqrt and fractional powers,
    /// and away from a divisor's zero.
    Positive,
    /// Magnitude in `[0.2, 1.5)`, either sign: away from the kinks of ReLU and |x|.
    AwayFromZero,
    /// Distinct values at least 0.1 apart, shuffled: ties in a max are impossible.
    Distinct,
}

impl Domain {
    /// A tensor of `shape` with values from this domain, drawn from `seed` (f64).
    pub fn tensor(self, shape: &[usize], seed: u64) -> Tensor {
        let mut rng = Rng::new(seed);
        let n: usize = shape.iter().product();
        let values: Vec<f64> = match self {
            Domain::Any => (0..n).map(|_| rng.normal()).collect(),
            Domain::Positive => (0..n).map(|_| rng.uniform(0.5, 2.0)).collect(),
            Domain::AwayFromZero => (0..n)
                .map(|_| {
                    let magnitude = rng.uniform(0.2, 1.5);
                    if rng.next_f64() < 0.5 {
                        -magnitude
                    } else {
                        magnitude
                    }
                })
                .collect(),
            Domain::Distinct => {
                let mut ramp: Vec<f64> = (0..n).map(|i| i as f64 * 0.1 - n as f64 * 0.05).collect();
                rng.shuffle(&mut ramp);
                ramp
            }
        };
        Tensor::from_f64_values(values, shape.to_vec().into(), DType::F64)
    }
}

/// A differentiable op, by name: its inputs' domains (one per input) and
/// the function of them. `Debug` prints the name alone, so that proptest's
/// "minimal failing input" line reads `op = div`.
#[derive(Clone, Copy)]
pub struct OpChoice {
    pub name: &'static str,
    /// One domain per input: the arity is `domains.len()`.
    pub domains: &'static [Domain],
    function: fn(&[Var]) -> Result<Var>,
}

impl OpChoice {
    /// An op named `name` of inputs drawn from `domains`.
    pub const fn new(
        name: &'static str,
        domains: &'static [Domain],
        function: fn(&[Var]) -> Result<Var>,
    ) -> OpChoice {
        OpChoice {
            name,
            domains,
            function,
        }
    }

    pub fn arity(&self) -> usize {
        self.domains.len()
    }

    /// Applies the op.
    pub fn apply(&self, inputs: &[Var]) -> Result<Var> {
        (self.function)(inputs)
    }

    /// Inputs of `shapes` (one per input) drawn from the op's domains.
    pub fn inputs(&self, shapes: &[Vec<usize>], seed: u64) -> Vec<Tensor> {
        self.domains
            .iter()
            .zip(shapes)
            .enumerate()
            .map(|(i, (domain, shape))| domain.tensor(shape, seed.wrapping_add(i as u64)))
            .collect()
    }
}

impl fmt::Debug for OpChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

use Domain::{AwayFromZero, Positive};
const ONE: &[Domain] = &[Domain::Any];
const TWO: &[Domain] = &[Domain::Any, Domain::Any];

/// Every elementwise unary op, with the domain it is differentiable on.
pub const UNARY_OPS: &[OpChoice] = &[
    OpChoice::new("neg", ONE, |v| v[0].neg()),
    OpChoice::new("exp", ONE, |v| v[0].exp()),
    OpChoice::new("log", &[Positive], |v| v[0].log()),
    OpChoice::new("sqrt", &[Positive], |v| v[0].sqrt()),
    OpChoice::new("relu", &[AwayFromZero], |v| v[0].relu()),
    OpChoice::new("sigmoid", ONE, |v| v[0].sigmoid()),
    OpChoice::new("tanh", ONE, |v| v[0].tanh()),
    OpChoice::new("abs", &[AwayFromZero], |v| v[0].abs()),
    OpChoice::new("affine", ONE, |v| v[0].mul_scalar(-1.5)?.add_scalar(0.25)),
    OpChoice::new("pow", &[Positive], |v| v[0].powf(2.5)),
];

/// Every broadcasting binary op (the divisor kept away from zero).
pub const BINARY_OPS: &[OpChoice] = &[
    OpChoice::new("add", TWO, |v| v[0].add(&v[1])),
    OpChoice::new("sub", TWO, |v| v[0].sub(&v[1])),
    OpChoice::new("mul", TWO, |v| v[0].mul(&v[1])),
    OpChoice::new("div", &[Domain::Any, Positive], |v| v[0].div(&v[1])),
];

/// One of `ops`; shrinks towards the first.
pub fn op_choice(ops: &'static [OpChoice]) -> impl Strategy<Value = OpChoice> {
    proptest::sample::select(ops)
}

/// One of [`UNARY_OPS`].
pub fn unary_ops() -> impl Strategy<Value = OpChoice> {
    op_choice(UNARY_OPS)
}

/// One of [`BINARY_OPS`].
pub fn binary_ops() -> impl Strategy<Value = OpChoice> {
    op_choice(BINARY_OPS)
}

/// Gradcheck of `op` at `inputs`; panics naming the op and the input
/// shapes, with the per-input table and the first wrong node.
#[track_caller]
pub fn assert_op_gradcheck(op: &OpChoice, inputs: &[Tensor]) {
    let shapes: Vec<Vec<usize>> = inputs.iter().map(|t| t.dims().to_vec()).collect();
    let report =
        gradcheck(|v| op.apply(v), inputs, GradcheckOptions::default()).unwrap_or_else(|e| {
            panic!(
                "gradcheck of {} could not run on inputs {shapes:?}: {e}",
                op.name
            )
        });
    assert!(
        report.passed(),
        "gradcheck of {} failed for inputs {shapes:?}:\n{report}",
        op.name
    );
}
