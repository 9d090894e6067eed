//! Elementwise kernels: broadcasting binary ops, unary ops, fill, strided copy.

use super::{check_len, same_gpu, to_i64};
use crate::compile::KernelFile;
use crate::device::Arg;
use crate::error::{CudaError, Result};
use crate::memory::DeviceBuffer;
use cudarc::driver::DeviceRepr;

/// Highest rank the strided kernels accept.
pub const MAX_RANK: usize = 6;

/// Twin of `StridedArgs` in `kernels/elementwise.cu`: operand 0 is the
/// output, 1 and 2 the inputs.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct StridedArgs {
    rank: i32,
    pad: i32,
    shape: [i64; MAX_RANK],
    strides: [[i64; MAX_RANK]; 3],
    offsets: [i64; 3],
}

// SAFETY: #[repr(C)] struct of i32/i64 arrays, laid out like its CUDA twin.
unsafe impl DeviceRepr for StridedArgs {}

/// A strided view of a buffer: element at multi-index `i` lives at
/// `offset + Σ i[d] * strides[d]`. A broadcast dimension has stride 0.
#[derive(Clone, Copy, Debug)]
pub struct View<'a> {
    pub offset: usize,
    pub strides: &'a [usize],
}

impl<'a> View<'a> {
    pub fn new(offset: usize, strides: &'a [usize]) -> View<'a> {
        View { offset, strides }
    }
}

/// Binary ops; the codes match `OP_*` in `kernels/elementwise.cu`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    /// NaN-propagating maximum.
    Maximum,
    /// NaN-propagating minimum.
    Minimum,
    /// `a ^ b` (powf).
    Pow,
    /// `a * (b > 0)`: the gradient `a` of a ReLU whose input was `b`.
    ReluBackward,
}

impl BinaryOp {
    fn code(self) -> i32 {
        self as i32
    }
}

/// Unary ops; codes match `UOP_*` in `kernels/elementwise.cu`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    Neg,
    Exp,
    Log,
    Sqrt,
    Relu,
    Sigmoid,
    Tanh,
    Abs,
    /// `x ^ p`.
    Powf(f32),
    AddScalar(f32),
    MulScalar(f32),
    /// `1 / x`.
    Recip,
}

impl UnaryOp {
    fn code_and_param(self) -> (i32, f32) {
        match self {
            UnaryOp::Neg => (0, 0.0),
            UnaryOp::Exp => (1, 0.0),
            UnaryOp::Log => (2, 0.0),
            UnaryOp::Sqrt => (3, 0.0),
            UnaryOp::Relu => (4, 0.0),
            UnaryOp::Sigmoid => (5, 0.0),
            UnaryOp::Tanh => (6, 0.0),
            UnaryOp::Abs => (7, 0.0),
            UnaryOp::Powf(p) => (8, p),
            UnaryOp::AddScalar(s) => (9, s),
            UnaryOp::MulScalar(s) => (10, s),
            UnaryOp::Recip => (11, 0.0),
        }
    }
}

/// Checks a view against its buffer and fills its slot of the kernel args.
fn describe(
    op: &'static str,
    what: &str,
    shape: &[usize],
    view: View<'_>,
    len: usize,
    slot: usize,
    args: &mut StridedArgs,
) -> Result<()> {
    if view.strides.len() != shape.len() {
        return Err(CudaError::invalid(
            op,
            format!(
                "{what} has {} strides for shape {shape:?}",
                view.strides.len()
            ),
        ));
    }
    let mut last = view.offset;
    for (&n, &st) in shape.iter().zip(view.strides) {
        last = (n - 1)
            .checked_mul(st)
            .and_then(|x| x.checked_add(last))
            .ok_or_else(|| CudaError::invalid(op, format!("{what} strides overflow")))?;
    }
    if last >= len {
        return Err(CudaError::invalid(
            op,
            format!(
                "{what} (shape {shape:?}, strides {:?}, offset {}) reaches element {last}, buffer has {len}",
                view.strides, view.offset
            ),
        ));
    }
    for (d, &st) in view.strides.iter().enumerate() {
        args.strides[slot][d] = to_i64(op, "stride", st)?;
    }
    args.offsets[slot] = to_i64(op, "offset", view.offset)?;
    Ok(())
}

/// Kernel args for `shape`, or None when it has no elements.
fn strided_args(op: &'static str, shape: &[usize]) -> Result<Option<(StridedArgs, usize)>> {
    if shape.len() > MAX_RANK {
        return Err(CudaError::invalid(
            op,
            format!("rank {} exceeds the maximum {MAX_RANK}", shape.len()),
        ));
    }
    let numel = shape
        .iter()
        .try_fold(1usize, |acc, &n| acc.checked_mul(n))
        .ok_or_else(|| CudaError::invalid(op, format!("shape {shape:?} overflows")))?;
    if numel == 0 {
        return Ok(None);
    }
    let mut args = StridedArgs {
        rank: shape.len() as i32,
        pad: 0,
        shape: [1; MAX_RANK],
        strides: [[0; MAX_RANK]; 3],
        offsets: [0; 3],
    };
    for (d, &n) in shape.iter().enumerate() {
        args.shape[d] = to_i64(op, "dimension", n)?;
    }
    Ok(Some((args, numel)))
}

/// Output views must not write one element twice (no zero strides on
/// dimensions longer than 1), or threads would race.
fn check_writable(op: &'static str, shape: &[usize], view: View<'_>) -> Result<()> {
    if shape
        .iter()
        .zip(view.strides)
        .any(|(&n, &st)| n > 1 && st == 0)
    {
        return Err(CudaError::invalid(
            op,
            format!(
                "output strides {:?} repeat elements of shape {shape:?}",
                view.strides
            ),
        ));
    }
    Ok(())
}

/// `out[i] = op(a[i], b[i])` over `shape`, each operand through its own view
/// (stride 0 broadcasts).
#[allow(clippy::too_many_arguments)]
pub fn binary(
    op: BinaryOp,
    shape: &[usize],
    a: &DeviceBuffer<f32>,
    a_view: View<'_>,
    b: &DeviceBuffer<f32>,
    b_view: View<'_>,
    out: &mut DeviceBuffer<f32>,
    out_view: View<'_>,
) -> Result<()> {
    const OP: &str = "binary";
    let gpu = same_gpu(OP, &[a.gpu(), b.gpu(), out.gpu()])?.clone();
    let Some((mut args, numel)) = strided_args(OP, shape)? else {
        return Ok(());
    };
    check_writable(OP, shape, out_view)?;
    describe(OP, "output", shape, out_view, out.len(), 0, &mut args)?;
    describe(OP, "a", shape, a_view, a.len(), 1, &mut args)?;
    describe(OP, "b", shape, b_view, b.len(), 2, &mut args)?;
    let launch = [
        Arg::I32(op.code()),
        Arg::Strided(args),
        Arg::I64(numel as i64),
        Arg::Ptr(a.device_ptr()),
        Arg::Ptr(b.device_ptr()),
        Arg::Ptr(out.device_ptr()),
    ];
    gpu.launch(
        KernelFile::Elementwise,
        "binary_strided",
        gpu.elementwise_config(numel),
        &launch,
    )
}

/// In place: `a[i] = op(a[i], b[i])` over `shape` (e.g. gradient accumulation).
pub fn binary_inplace(
    op: BinaryOp,
    shape: &[usize],
    a: &mut DeviceBuffer<f32>,
    a_view: View<'_>,
    b: &DeviceBuffer<f32>,
    b_view: View<'_>,
) -> Result<()> {
    const OP: &str = "binary_inplace";
    let gpu = same_gpu(OP, &[a.gpu(), b.gpu()])?.clone();
    let Some((mut args, numel)) = strided_args(OP, shape)? else {
        return Ok(());
    };
    check_writable(OP, shape, a_view)?;
    describe(OP, "a (output)", shape, a_view, a.len(), 0, &mut args)?;
    describe(OP, "a", shape, a_view, a.len(), 1, &mut args)?;
    describe(OP, "b", shape, b_view, b.len(), 2, &mut args)?;
    let launch = [
        Arg::I32(op.code()),
        Arg::Strided(args),
        Arg::I64(numel as i64),
        Arg::Ptr(a.device_ptr()),
        Arg::Ptr(b.device_ptr()),
        Arg::Ptr(a.device_ptr()),
    ];
    gpu.launch(
        KernelFile::Elementwise,
        "binary_strided",
        gpu.elementwise_config(numel),
        &launch,
    )
}

/// `out[i] = op(a[i], b[i])` for three contiguous buffers of equal length.
pub fn binary_contiguous(
    op: BinaryOp,
    a: &DeviceBuffer<f32>,
    b: &DeviceBuffer<f32>,
    out: &mut DeviceBuffer<f32>,
) -> Result<()> {
    const OP: &str = "binary_contiguous";
    let gpu = same_gpu(OP, &[a.gpu(), b.gpu(), out.gpu()])?.clone();
    check_len(OP, "b", b, a.len())?;
    check_len(OP, "output", out, a.len())?;
    if a.is_empty() {
        return Ok(());
    }
    let launch = [
        Arg::I32(op.code()),
        Arg::I64(a.len() as i64),
        Arg::Ptr(a.device_ptr()),
        Arg::Ptr(b.device_ptr()),
        Arg::Ptr(out.device_ptr()),
    ];
    gpu.launch(
        KernelFile::Elementwise,
        "binary_contiguous",
        gpu.elementwise_config(a.len()),
        &launch,
    )
}

fn unary_launch(op: UnaryOp, x: u64, out: u64, n: usize, gpu: &crate::Gpu) -> Result<()> {
    if n == 0 {
        return Ok(());
    }
    let (code, param) = op.code_and_param();
    let launch = [
        Arg::I32(code),
        Arg::F32(param),
        Arg::I64(n as i64),
        Arg::Ptr(x),
        Arg::Ptr(out),
    ];
    gpu.launch(
        KernelFile::Elementwise,
        "unary_contiguous",
        gpu.elementwise_config(n),
        &launch,
    )
}

/// `out[i] = op(x[i])` for contiguous buffers of equal length.
pub fn unary(op: UnaryOp, x: &DeviceBuffer<f32>, out: &mut DeviceBuffer<f32>) -> Result<()> {
    let gpu = same_gpu("unary", &[x.gpu(), out.gpu()])?.clone();
    check_len("unary", "output", out, x.len())?;
    unary_launch(op, x.device_ptr(), out.device_ptr(), x.len(), &gpu)
}

/// `x[i] = op(x[i])` in place.
pub fn unary_inplace(op: UnaryOp, x: &mut DeviceBuffer<f32>) -> Result<()> {
    let gpu = x.gpu().clone();
    unary_launch(op, x.device_ptr(), x.device_ptr(), x.len(), &gpu)
}

/// Sets every element to `value`.
pub fn fill(buf: &mut DeviceBuffer<f32>, value: f32) -> Result<()> {
    if buf.is_empty() {
        return Ok(());
    }
    let gpu = buf.gpu().clone();
    let launch = [
        Arg::Ptr(buf.device_ptr()),
        Arg::I64(buf.len() as i64),
        Arg::F32(value),
    ];
    gpu.launch(
        KernelFile::Elementwise,
        "fill_f32",
        gpu.elementwise_config(buf.len()),
        &launch,
    )
}

/// Copies `src` seen through `src_view` into `dst` seen through `dst_view`,
/// both over `shape` (e.g. a permuted view into a contiguous buffer).
pub fn copy_strided(
    shape: &[usize],
    src: &DeviceBuffer<f32>,
    src_view: View<'_>,
    dst: &mut DeviceBuffer<f32>,
    dst_view: View<'_>,
) -> Result<()> {
    const OP: &str = "copy_strided";
    let gpu = same_gpu(OP, &[src.gpu(), dst.gpu()])?.clone();
    let Some((mut args, numel)) = strided_args(OP, shape)? else {
        return Ok(());
    };
    check_writable(OP, shape, dst_view)?;
    describe(OP, "destination", shape, dst_view, dst.len(), 0, &mut args)?;
    describe(OP, "source", shape, src_view, src.len(), 1, &mut args)?;
    let launch = [
        Arg::Strided(args),
        Arg::I64(numel as i64),
        Arg::Ptr(src.device_ptr()),
        Arg::Ptr(dst.device_ptr()),
    ];
    gpu.launch(
        KernelFile::Elementwise,
        "copy_strided",
        gpu.elementwise_config(numel),
        &launch,
    )
}

/// Row-major contiguous strides of `shape`.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        strides[d] = strides[d + 1] * shape[d + 1];
    }
    strides
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_args_check_extents() {
        let shape = [2, 3];
        let (mut args, n) = strided_args("t", &shape).unwrap().unwrap();
        assert_eq!(n, 6);
        describe("t", "x", &shape, View::new(0, &[3, 1]), 6, 1, &mut args).unwrap();
        assert_eq!(args.strides[1][..2], [3, 1]);
        let e = describe("t", "x", &shape, View::new(1, &[3, 1]), 6, 1, &mut args);
        assert!(e.unwrap_err().to_string().contains("reaches element 6"));
        // Broadcast row: stride 0 is fine for inputs, not for outputs.
        describe("t", "x", &shape, View::new(0, &[0, 1]), 3, 2, &mut args).unwrap();
        assert!(check_writable("t", &shape, View::new(0, &[0, 1])).is_err());
        assert!(strided_args("t", &[1; 7]).is_err());
        assert!(strided_args("t", &[4, 0]).unwrap().is_none());
        assert_eq!(contiguous_strides(&[2, 3, 4]), vec![12, 4, 1]);
    }

    #[test]
    fn op_codes_match_the_kernel_file() {
        let src = crate::KernelFile::Elementwise.source();
        for (name, code) in [
            ("OP_ADD", BinaryOp::Add.code()),
            ("OP_MAX", BinaryOp::Maximum.code()),
            ("OP_RELU_BACKWARD", BinaryOp::ReluBackward.code()),
            ("UOP_POWF", UnaryOp::Powf(2.0).code_and_param().0),
            ("UOP_RECIP", UnaryOp::Recip.code_and_param().0),
        ] {
            assert!(
                src.contains(&format!("#define {name} {code}")),
                "{name} != {code}"
            );
        }
    }
}
