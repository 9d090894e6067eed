//! Building blocks for property tests of gradients (enable the `testing` feature).
//!
//! Proptest strategies for shapes, broadcast-compatible shape pairs, random
//! tensors and strided (non-contiguous) views; valid conv2d and max-pool
//! parameter sets ([`conv2d_case`], [`max_pool2d_case`]); a choice among
//! named ops ([`op_choice`]) whose failures print the op's name rather than
//! an index into a list; and gradcheck assertions that print the per-input
//! table, and the first wrong node, on failure. The project's own property
//! tests are written with exactly these.
//!
//! ```
//! use gradlab_autograd::testing::{assert_gradcheck, broadcast_pair, random_tensor};
//! use proptest::prelude::*;
//! proptest!(ProptestConfig::with_cases(4), |((a, b) in broadcast_pair(3, 3), seed in any::<u64>())| {
//!     let (x, y) = (random_tensor(&a, seed), random_tensor(&b, seed ^ 1));
//!     assert_gradcheck(|v| v[0].mul(&v[1]), &[x, y]);
//! });
//! ```
//!
//! A failing case names its op and shows the shrunk shapes (proptest prints
//! the inputs with `Debug`, and an [`OpChoice`] prints as its name):
//!
//! ```text
//! minimal failing input: op = div, (a, b) = ([1], [2, 1]), seed = 0
//! ```

mod cases;
mod ops;

pub use cases::{conv2d_case, max_pool2d_case, Conv2dCase, MaxPool2dCase};
pub use ops::{
    assert_op_gradcheck, binary_ops, op_choice, unary_ops, Domain, OpChoice, BINARY_OPS, UNARY_OPS,
};

use crate::{gradcheck, GradcheckOptions, Result, Var};
use gradlab_tensor::{DType, Rng, Tensor};
use proptest::prelude::*;

/// Shapes of rank `1..=max_rank` with dims in `1..=max_dim` (size-1 dims included).
pub fn shape(max_rank: usize, max_dim: usize) -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(1..=max_dim, 1..=max_rank)
}

/// Two shapes that broadcast together: each is the common shape with some
/// dims set to 1 and some leading dims dropped.
pub fn broadcast_pair(
    max_rank: usize,
    max_dim: usize,
) -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    shape(max_rank, max_dim).prop_flat_map(|full| {
        let r = full.len();
        let operand = move |full: Vec<usize>| {
            (0..=r, proptest::collection::vec(any::<bool>(), r)).prop_map(move |(drop, ones)| {
                full.iter()
                    .zip(&ones)
                    .skip(drop.min(r.saturating_sub(1)))
                    .map(|(&d, &one)| if one { 1 } else { d })
                    .collect::<Vec<_>>()
            })
        };
        (operand(full.clone()), operand(full))
    })
}

/// A tensor of `shape` with values from a seeded normal distribution (f64).
pub fn random_tensor(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape.to_vec(), 0.0, 1.0, DType::F64, &mut Rng::new(seed))
}

/// A tensor of `shape` whose values are distinct and well separated (for
/// max and max-pool, where ties make gradients ill-defined).
pub fn distinct_tensor(shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let mut values: Vec<f64> = (0..n).map(|i| i as f64 * 0.1 - n as f64 * 0.05).collect();
    Rng::new(seed).shuffle(&mut values);
    Tensor::from_vec(values, shape.to_vec()).expect("shape matches")
}

/// How a strided view is made from a larger or permuted base tensor.
#[derive(Clone, Copy, Debug)]
pub enum ViewKind {
    /// The base is stored with its dims reversed and viewed back through a permute.
    Permuted,
    /// The base is larger in one dim and viewed through a narrow.
    Narrowed,
    /// Size-1 dims are expanded with stride 0, when the shape allows it
    /// (else a permuted view).
    Expanded,
}

/// A non-contiguous view holding `shape`, in f64 (standard normal values).
pub fn strided_view(shape: &[usize], kind: ViewKind, seed: u64) -> Tensor {
    strided_view_in(shape, kind, Domain::Any, seed)
}

/// [`strided_view`] with values from `domain` (the view's base is drawn
/// from it, so the values stay in it and the view stays strided).
pub fn strided_view_in(shape: &[usize], kind: ViewKind, domain: Domain, seed: u64) -> Tensor {
    let rank = shape.len();
    match kind {
        ViewKind::Permuted | ViewKind::Expanded if rank < 2 => {
            strided_view_in(shape, ViewKind::Narrowed, domain, seed)
        }
        ViewKind::Permuted => {
            let reversed: Vec<usize> = shape.iter().rev().copied().collect();
            let perm: Vec<usize> = (0..rank).rev().collect();
            domain
                .tensor(&reversed, seed)
                .permute(&perm)
                .expect("valid permutation")
        }
        ViewKind::Narrowed => {
            let dim = seed as usize % rank.max(1);
            let mut bigger = shape.to_vec();
            bigger[dim] += 3;
            domain
                .tensor(&bigger, seed)
                .narrow(dim, 1, shape[dim])
                .expect("fits")
        }
        ViewKind::Expanded => {
            // Expand a size-1 copy of the first dim: values repeat along it.
            let mut base = shape.to_vec();
            base[0] = 1;
            domain
                .tensor(&base, seed)
                .broadcast_to(shape.to_vec())
                .expect("broadcastable")
        }
    }
}

/// Any of the three view kinds.
pub fn view_kind() -> impl Strategy<Value = ViewKind> {
    prop_oneof![
        Just(ViewKind::Permuted),
        Just(ViewKind::Narrowed),
        Just(ViewKind::Expanded)
    ]
}

/// Runs [`gradcheck()`] with default options and panics with the per-input
/// table when analytic and numeric gradients disagree (and, below it, every
/// node checked alone, naming the first wrong one).
#[track_caller]
pub fn assert_gradcheck(f: impl Fn(&[Var]) -> Result<Var>, inputs: &[Tensor]) {
    assert_gradcheck_with(f, inputs, GradcheckOptions::default());
}

#[track_caller]
pub fn assert_gradcheck_with(
    f: impl Fn(&[Var]) -> Result<Var>,
    inputs: &[Tensor],
    opts: GradcheckOptions,
) {
    let shapes: Vec<_> = inputs.iter().map(|t| t.shape().clone()).collect();
    let report = match gradcheck(f, inputs, opts) {
        Ok(r) => r,
        Err(e) => panic!("gradcheck could not run on inputs {shapes:?}: {e}"),
    };
    assert!(
        report.passed(),
        "gradcheck failed for inputs {shapes:?}:\n{report}"
    );
}
