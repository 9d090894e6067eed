//! What each kernel costs: floating-point operations and bytes moved.
//!
//! The profiler places every node of a training step on the machine's
//! roofline with these numbers, and `gradlab bench` turns its timings into
//! GFLOP/s with them, so both read the same formulas, written here beside
//! the shapes the kernels take.
//!
//! Conventions (those of PyTorch's flop counter and fvcore, so figures
//! compare with theirs):
//! - a multiply-add is two FLOPs; a convolution counts every window
//!   position of its dense product, padded zeros included;
//! - an elementwise op, a comparison (max-pool, ReLU) or a transcendental
//!   (exp, tanh) counts one FLOP per element it produces;
//! - bytes are the compulsory traffic: every operand read once and every
//!   result written once. A kernel that makes several passes moves more, so
//!   the arithmetic intensity derived from these bytes is an upper bound
//!   and a node found memory-bound by it is memory-bound for certain.
//! - per-channel scalar work of batch norm (a division and a square root
//!   per channel) is not counted: it is `C` operations beside `N·C·H·W`.

use crate::{BatchNormShape, Conv2dShape, Pool2dShape};
use std::iter::Sum;
use std::ops::{Add, AddAssign};

/// Bytes of one index of the pooling argmax (`i64`, as the tensors keep it).
pub const INDEX_BYTES: usize = 8;

/// FLOPs and bytes of one kernel call (or of several, added up).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cost {
    /// Floating-point operations (a multiply-add is two).
    pub flops: f64,
    /// Bytes read and written at least once.
    pub bytes: f64,
}

impl Cost {
    pub const ZERO: Cost = Cost {
        flops: 0.0,
        bytes: 0.0,
    };

    pub fn new(flops: f64, bytes: f64) -> Cost {
        Cost { flops, bytes }
    }

    /// Only traffic: a copy, a fill, a gather.
    pub fn bytes_only(bytes: f64) -> Cost {
        Cost { flops: 0.0, bytes }
    }

    /// FLOPs per byte moved (`None` when nothing is moved).
    ///
    /// ```
    /// use gradlab_cpu::cost::Cost;
    /// assert_eq!(Cost::new(8.0, 4.0).intensity(), Some(2.0));
    /// assert_eq!(Cost::ZERO.intensity(), None);
    /// ```
    pub fn intensity(&self) -> Option<f64> {
        (self.bytes > 0.0).then(|| self.flops / self.bytes)
    }
}

impl Add for Cost {
    type Output = Cost;
    fn add(self, other: Cost) -> Cost {
        Cost::new(self.flops + other.flops, self.bytes + other.bytes)
    }
}

impl AddAssign for Cost {
    fn add_assign(&mut self, other: Cost) {
        *self = *self + other;
    }
}

impl Sum for Cost {
    fn sum<I: Iterator<Item = Cost>>(iter: I) -> Cost {
        iter.fold(Cost::ZERO, Add::add)
    }
}

/// `elements` values of `elem_bytes` each, as bytes.
fn bytes(elements: usize, elem_bytes: usize) -> f64 {
    elements as f64 * elem_bytes as f64
}

/// A matrix product `[m, k] x [k, n]`, `batch` times: `2·batch·m·k·n`
/// FLOPs; both operands read and the result written once.
///
/// ```
/// use gradlab_cpu::cost::gemm_cost;
/// // 3 products of [2, 4] x [4, 5]: 3 · 2·4·5 multiply-adds.
/// let c = gemm_cost(3, 2, 4, 5, 4);
/// assert_eq!(c.flops, 240.0);
/// assert_eq!(c.bytes, 3.0 * (8.0 + 20.0 + 10.0) * 4.0);
/// ```
pub fn gemm_cost(batch: usize, m: usize, k: usize, n: usize, elem_bytes: usize) -> Cost {
    let products = batch as f64;
    Cost::new(
        2.0 * products * m as f64 * k as f64 * n as f64,
        products * (bytes(m * k, elem_bytes) + bytes(k * n, elem_bytes) + bytes(m * n, elem_bytes)),
    )
}

impl Conv2dShape {
    /// Multiply-adds of the dense product: every output value sums over its
    /// group's input channels and the whole (dilated) window.
    fn macs(&self) -> f64 {
        self.output_len() as f64 * (self.in_per_group() * self.kernel_h * self.kernel_w) as f64
    }

    /// The forward convolution: `2·MACs` FLOPs (plus one add per output
    /// for a bias); reads the input, weight (and bias), writes the output.
    ///
    /// ```
    /// use gradlab_cpu::Conv2dShape;
    /// // LeNet's conv1 on one image: 6 x 28 x 28 outputs of 3·5·5 MACs each.
    /// let c = Conv2dShape::square(1, 3, 6, 32, 5, 0).forward_cost(4, false);
    /// assert_eq!(c.flops, 2.0 * 4704.0 * 75.0);
    /// assert_eq!(c.bytes, (3072.0 + 450.0 + 4704.0) * 4.0);
    /// ```
    pub fn forward_cost(&self, elem_bytes: usize, bias: bool) -> Cost {
        let bias_values = if bias { self.out_channels } else { 0 };
        let bias_adds = if bias { self.output_len() as f64 } else { 0.0 };
        Cost::new(
            2.0 * self.macs() + bias_adds,
            bytes(self.input_len(), elem_bytes)
                + bytes(self.weight_len(), elem_bytes)
                + bytes(bias_values, elem_bytes)
                + bytes(self.output_len(), elem_bytes),
        )
    }

    /// The input gradient (a transposed convolution): the forward's MACs;
    /// reads the output gradient and the weight, writes the input gradient.
    pub fn backward_data_cost(&self, elem_bytes: usize) -> Cost {
        Cost::new(
            2.0 * self.macs(),
            bytes(self.output_len(), elem_bytes)
                + bytes(self.weight_len(), elem_bytes)
                + bytes(self.input_len(), elem_bytes),
        )
    }

    /// The weight gradient (a correlation of the input with the output
    /// gradient): the forward's MACs; reads both, writes the weight gradient.
    pub fn backward_weight_cost(&self, elem_bytes: usize) -> Cost {
        Cost::new(
            2.0 * self.macs(),
            bytes(self.input_len(), elem_bytes)
                + bytes(self.output_len(), elem_bytes)
                + bytes(self.weight_len(), elem_bytes),
        )
    }
}

impl Pool2dShape {
    /// Window positions per output (padding included).
    fn window(&self) -> f64 {
        (self.kernel.0 * self.kernel.1) as f64
    }

    /// Max-pool forward: one comparison per window position; reads the
    /// input, writes the values and their `i64` argmax.
    ///
    /// ```
    /// use gradlab_cpu::Pool2dShape;
    /// let s = Pool2dShape { batch: 1, channels: 1, in_h: 4, in_w: 4, kernel: (2, 2),
    ///     stride: (2, 2), padding: (0, 0), dilation: (1, 1), ceil_mode: false };
    /// let c = s.max_forward_cost(4);
    /// assert_eq!(c.flops, 4.0 * 4.0); // 2x2 outputs, 4 comparisons each
    /// assert_eq!(c.bytes, 16.0 * 4.0 + 4.0 * (4.0 + 8.0));
    /// ```
    pub fn max_forward_cost(&self, elem_bytes: usize) -> Cost {
        Cost::new(
            self.output_len() as f64 * self.window(),
            bytes(self.input_len(), elem_bytes)
                + bytes(self.output_len(), elem_bytes + INDEX_BYTES),
        )
    }

    /// Max-pool backward: one add per routed gradient; reads the output
    /// gradient and the argmax, writes the input gradient (zeros included).
    pub fn max_backward_cost(&self, elem_bytes: usize) -> Cost {
        Cost::new(
            self.output_len() as f64,
            bytes(self.output_len(), elem_bytes + INDEX_BYTES)
                + bytes(self.input_len(), elem_bytes),
        )
    }

    /// Reading an input-shaped tensor at the argmax (the adjoint of the
    /// backward): no arithmetic; reads the argmax and one value per output.
    pub fn max_gather_cost(&self, elem_bytes: usize) -> Cost {
        Cost::bytes_only(bytes(self.output_len(), INDEX_BYTES + 2 * elem_bytes))
    }
}

impl BatchNormShape {
    /// Training-mode forward: the statistics take 4 FLOPs per element
    /// (`Σx`, then centre, square and add), normalising 2 (`(x - mean) ·
    /// invstd`) plus one each for the weight and the bias. Reads `x` and
    /// the affine parameters, writes `y` and the per-channel mean and
    /// variance.
    ///
    /// ```
    /// use gradlab_cpu::BatchNormShape;
    /// let s = BatchNormShape { batch: 2, channels: 3, plane: 4 }; // 24 values
    /// let c = s.train_forward_cost(4, true, true);
    /// assert_eq!(c.flops, 24.0 * 8.0);
    /// assert_eq!(c.bytes, (24.0 + 24.0 + 4.0 * 3.0) * 4.0);
    /// ```
    pub fn train_forward_cost(&self, elem_bytes: usize, weight: bool, bias: bool) -> Cost {
        let per_element = 6.0 + f64::from(u8::from(weight)) + f64::from(u8::from(bias));
        let per_channel = 2 + usize::from(weight) + usize::from(bias);
        Cost::new(
            self.len() as f64 * per_element,
            bytes(2 * self.len(), elem_bytes) + bytes(per_channel * self.channels, elem_bytes),
        )
    }

    /// Evaluation mode: one scale and one shift per element (the running
    /// statistics and the affine parameters fold into them); reads `x` and
    /// four per-channel vectors, writes `y`.
    pub fn inference_cost(&self, elem_bytes: usize) -> Cost {
        Cost::new(
            2.0 * self.len() as f64,
            bytes(2 * self.len(), elem_bytes) + bytes(4 * self.channels, elem_bytes),
        )
    }

    /// The backward `dx = w·invstd·(g - mean(g) - x̂·mean(g·x̂))`,
    /// `dw = Σ g·x̂`, `db = Σ g`: 9 FLOPs per element (`x̂` 2, the two
    /// sums 3, `dx` 4). Reads `g`, `x` and the mean, variance and weight,
    /// writes `dx`, `dw` and `db`.
    pub fn backward_cost(&self, elem_bytes: usize) -> Cost {
        Cost::new(
            9.0 * self.len() as f64,
            bytes(3 * self.len(), elem_bytes) + bytes(5 * self.channels, elem_bytes),
        )
    }
}
