//! Valid conv2d and max-pool problems, built so by construction: every
//! parameter (stride, padding, dilation, groups, ceil mode) varies, and the
//! input sizes often leave rows and columns that no window covers exactly
//! (a partial window in ceil mode, uncovered tail rows otherwise).

use super::ops::Domain;
use crate::{Result, Var};
use gradlab_tensor::{Conv2dParams, MaxPool2dParams, Shape, Tensor};
use proptest::prelude::*;

/// One spatial dim of a windowed op: kernel, stride, padding, dilation,
/// and the input length.
#[derive(Clone, Copy, Debug)]
struct Axis {
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
    len: usize,
}

/// An axis whose windows fit: `outputs` full windows and then `rest` more
/// input positions (fewer than a stride) that no further window starts at.
/// `max_padding` bounds the padding given the kernel and its effective
/// extent (conv: half the extent; max-pool: PyTorch's half the kernel).
fn axis(max_padding: fn(usize, usize) -> usize) -> impl Strategy<Value = Axis> {
    (1usize..=3, 1usize..=3, 1usize..=2, 1usize..=3)
        .prop_flat_map(move |(kernel, stride, dilation, outputs)| {
            let extent = dilation * (kernel - 1) + 1;
            let padding = 0..=max_padding(kernel, extent);
            (
                Just((kernel, stride, dilation, outputs)),
                padding,
                0..stride,
            )
        })
        .prop_filter_map(
            "the input must have at least one position",
            |((kernel, stride, dilation, outputs), padding, rest)| {
                let extent = dilation * (kernel - 1) + 1;
                let covered = (outputs - 1) * stride + extent + rest;
                let len = covered.checked_sub(2 * padding).filter(|&l| l > 0)?;
                Some(Axis {
                    kernel,
                    stride,
                    padding,
                    dilation,
                    len,
                })
            },
        )
}

/// A valid conv2d problem: shapes, parameters, and whether it has a bias.
#[derive(Clone, Debug)]
pub struct Conv2dCase {
    /// `[N, C, H, W]`
    pub input: Vec<usize>,
    /// `[O, C / groups, KH, KW]`
    pub weight: Vec<usize>,
    pub bias: bool,
    pub params: Conv2dParams,
}

impl Conv2dCase {
    /// Random f64 inputs: the input, the weight, and the bias when there is one.
    pub fn tensors(&self, seed: u64) -> Vec<Tensor> {
        let mut t = vec![
            Domain::Any.tensor(&self.input, seed),
            Domain::Any.tensor(&self.weight, seed ^ 1),
        ];
        if self.bias {
            t.push(Domain::Any.tensor(&[self.weight[0]], seed ^ 2));
        }
        t
    }

    /// The convolution of vars in the order of [`Conv2dCase::tensors`].
    pub fn apply(&self, v: &[Var]) -> Result<Var> {
        v[0].conv2d(&v[1], v.get(2).filter(|_| self.bias), self.params)
    }

    /// True when some input rows or columns lie past the last window.
    pub fn leaves_a_tail(&self) -> bool {
        let p = &self.params;
        let tail = |len: usize, kernel: usize, stride: usize, padding: usize, dilation: usize| {
            (len + 2 * padding)
                .checked_sub(dilation * (kernel - 1) + 1)
                .is_some_and(|spare| spare % stride != 0)
        };
        tail(
            self.input[2],
            self.weight[2],
            p.stride.0,
            p.padding.0,
            p.dilation.0,
        ) || tail(
            self.input[3],
            self.weight[3],
            p.stride.1,
            p.padding.1,
            p.dilation.1,
        )
    }
}

/// Valid conv2d problems, small enough for element-by-element gradchecks:
/// batch 1-2, 1-3 groups of 1-2 input and 1-2 output channels, kernels
/// 1-3 per side, strides 1-3, dilations 1-2, padding up to half the
/// effective kernel, 1-3 outputs per side and a tail of up to a stride
/// less one, with or without a bias.
///
/// ```
/// use gradlab_autograd::testing::{assert_gradcheck, conv2d_case};
/// use proptest::prelude::*;
/// proptest!(ProptestConfig::with_cases(4), |(case in conv2d_case(), seed in any::<u64>())| {
///     assert_gradcheck(|v| case.apply(v), &case.tensors(seed));
/// });
/// ```
pub fn conv2d_case() -> impl Strategy<Value = Conv2dCase> {
    let half_extent = |_kernel: usize, extent: usize| (extent - 1) / 2;
    (
        1usize..=2,
        1usize..=3,
        1usize..=2,
        1usize..=2,
        axis(half_extent),
        axis(half_extent),
        any::<bool>(),
    )
        .prop_map(
            |(batch, groups, in_per_group, out_per_group, h, w, bias)| Conv2dCase {
                input: vec![batch, groups * in_per_group, h.len, w.len],
                weight: vec![groups * out_per_group, in_per_group, h.kernel, w.kernel],
                bias,
                params: Conv2dParams {
                    stride: (h.stride, w.stride),
                    padding: (h.padding, w.padding),
                    dilation: (h.dilation, w.dilation),
                    groups,
                },
            },
        )
}

/// A valid max-pool problem: the input shape and the parameters.
#[derive(Clone, Debug)]
pub struct MaxPool2dCase {
    /// `[N, C, H, W]`
    pub input: Vec<usize>,
    pub params: MaxPool2dParams,
}

impl MaxPool2dCase {
    /// An input of distinct values (no ties in any window), drawn from `seed`.
    pub fn tensor(&self, seed: u64) -> Tensor {
        Domain::Distinct.tensor(&self.input, seed)
    }

    /// The pooling of `v[0]`.
    pub fn apply(&self, v: &[Var]) -> Result<Var> {
        v[0].max_pool2d(self.params)
    }

    /// True when ceil mode adds a last window that hangs over the end of
    /// the (padded) input.
    pub fn has_partial_window(&self) -> bool {
        let shape = Shape::new(self.input.clone());
        let floor = MaxPool2dParams {
            ceil_mode: false,
            ..self.params
        };
        match (
            self.params.problem("max_pool2d", &shape),
            floor.problem("max_pool2d", &shape),
        ) {
            (Ok(ceil), Ok(floor)) => ceil.out_h() > floor.out_h() || ceil.out_w() > floor.out_w(),
            _ => false,
        }
    }
}

/// Valid max-pool problems: batch 1-2, 1-2 channels, kernels 1-3 per side,
/// strides 1-3, dilations 1-2, padding up to half the kernel (PyTorch's
/// limit), ceil mode or not, 1-3 windows per side and a tail of up to a
/// stride less one (in ceil mode, a partial window). Every case passes
/// [`MaxPool2dParams::problem`], and every window reaches at least one
/// input element (none lies wholly in the padding).
///
/// ```
/// use gradlab_autograd::testing::{assert_gradcheck, max_pool2d_case};
/// use proptest::prelude::*;
/// proptest!(ProptestConfig::with_cases(4), |(case in max_pool2d_case(), seed in any::<u64>())| {
///     assert_gradcheck(|v| case.apply(v), &[case.tensor(seed)]);
/// });
/// ```
pub fn max_pool2d_case() -> impl Strategy<Value = MaxPool2dCase> {
    let half_kernel = |kernel: usize, _extent: usize| kernel / 2;
    (
        1usize..=2,
        1usize..=2,
        axis(half_kernel),
        axis(half_kernel),
        any::<bool>(),
    )
        .prop_map(|(batch, channels, h, w, ceil_mode)| MaxPool2dCase {
            input: vec![batch, channels, h.len, w.len],
            params: MaxPool2dParams {
                kernel: (h.kernel, w.kernel),
                stride: (h.stride, w.stride),
                padding: (h.padding, w.padding),
                dilation: (h.dilation, w.dilation),
                ceil_mode,
            },
        })
        .prop_filter(
            "MaxPool2dParams::problem accepts the case and every window sees the input",
            |case| {
                let p = &case.params;
                let Ok(s) = p.problem("max_pool2d", &Shape::new(case.input.clone())) else {
                    return false;
                };
                let h = (p.kernel.0, p.stride.0, p.padding.0, p.dilation.0);
                let w = (p.kernel.1, p.stride.1, p.padding.1, p.dilation.1);
                every_window_sees_the_input(case.input[2], s.out_h(), h)
                    && every_window_sees_the_input(case.input[3], s.out_w(), w)
            },
        )
}

/// True when each of `outputs` windows along an axis of `len` has a tap
/// inside the input (a window wholly in the padding pools nothing: -inf).
fn every_window_sees_the_input(
    len: usize,
    outputs: usize,
    (kernel, stride, padding, dilation): (usize, usize, usize, usize),
) -> bool {
    (0..outputs).all(|o| {
        (0..kernel).any(|j| {
            let tap = (o * stride + j * dilation) as isize - padding as isize;
            (0..len as isize).contains(&tap)
        })
    })
}
