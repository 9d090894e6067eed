//! Elementwise kernels: broadcasting binary ops, unary ops, fill, strided copy.
//!
//! The host merges the dimensions that every operand walks in step (a dense
//! tensor becomes one dimension) before choosing a kernel: operands that are
//! all dense take the contiguous kernels (plain indexing, float4 when
//! aligned); the others take the strided ones, with 32-bit index arithmetic
//! when the element count fits.

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

/// The engine's op enum, one for every backend ([`gradlab_cpu::op`]).
pub use gradlab_cpu::{BinaryOp, UnaryOp};

/// The kernel's code for `op`: `OP_*` in `kernels/elementwise.cu` (0 add,
/// 1 sub, 2 mul, 3 div, 4 maximum, 7 relu-backward `a * (b > 0)`).
pub fn binary_code(op: BinaryOp) -> i32 {
    match op {
        BinaryOp::Add => 0,
        BinaryOp::Sub => 1,
        BinaryOp::Mul => 2,
        BinaryOp::Div => 3,
        BinaryOp::Maximum => 4,
        BinaryOp::ReluBackward => 7,
    }
}

/// The kernel's code for `op` (`UOP_*` in `kernels/elementwise.cu`) and its
/// scalar parameter, in f32 as the kernels compute.
pub fn unary_code(op: UnaryOp) -> (i32, f32) {
    match op {
        UnaryOp::Neg => (0, 0.0),
        UnaryOp::Exp => (1, 0.0),
        UnaryOp::Log => (2, 0.0),
        UnaryOp::Sqrt => (3, 0.0),
        UnaryOp::Relu => (4, 0.0),
        UnaryOp::Sigmoid => (5, 0.0),
        UnaryOp::Tanh => (6, 0.0),
        UnaryOp::Abs => (7, 0.0),
        UnaryOp::Pow(p) => (8, p as f32),
        UnaryOp::AddScalar(s) => (9, s as f32),
        UnaryOp::MulScalar(s) => (10, s as f32),
        UnaryOp::GtMask(t) => (12, t as f32),
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

/// Shape and per-operand strides with size-1 dimensions dropped and adjacent
/// dimensions merged wherever every operand steps through them as through
/// one (outer stride = inner stride × inner size). A dense tensor comes out
/// as one dimension of stride 1.
pub fn merge_dims(shape: &[usize], strides: &[&[usize]]) -> (Vec<usize>, Vec<Vec<usize>>) {
    let mut dims: Vec<usize> = Vec::new();
    let mut merged: Vec<Vec<usize>> = vec![Vec::new(); strides.len()];
    for d in (0..shape.len()).rev() {
        let n = shape[d];
        if n == 1 {
            continue;
        }
        let joins = dims.last().is_some_and(|&inner| {
            merged
                .iter()
                .zip(strides)
                .all(|(m, s)| s[d] == m.last().copied().unwrap_or(0) * inner)
        });
        if joins {
            *dims.last_mut().expect("checked above") *= n;
        } else {
            dims.push(n);
            for (m, s) in merged.iter_mut().zip(strides) {
                m.push(s[d]);
            }
        }
    }
    dims.reverse();
    merged.iter_mut().for_each(|m| m.reverse());
    (dims, merged)
}

/// How a launch over views walks them.
enum Walk {
    /// Every operand dense: plain indexing from each view's offset.
    Contiguous,
    /// Kernel arguments for the strided walk, and whether 32-bit index
    /// arithmetic suffices.
    Strided(Box<StridedArgs>, bool),
}

/// The walk over `shape` for `views` (already checked against their buffers).
fn plan(op: &'static str, shape: &[usize], views: &[View<'_>], numel: usize) -> Result<Walk> {
    let strides: Vec<&[usize]> = views.iter().map(|v| v.strides).collect();
    let (dims, merged) = merge_dims(shape, &strides);
    if dims.len() <= 1 && merged.iter().all(|m| m.first().is_none_or(|&st| st == 1)) {
        return Ok(Walk::Contiguous);
    }
    let (mut args, _) = strided_args(op, &dims)?.expect("numel > 0");
    for (slot, (m, v)) in merged.iter().zip(views).enumerate() {
        for (d, &st) in m.iter().enumerate() {
            args.strides[slot][d] = to_i64(op, "stride", st)?;
        }
        args.offsets[slot] = to_i64(op, "offset", v.offset)?;
    }
    Ok(Walk::Strided(Box::new(args), numel <= i32::MAX as usize))
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
    let ptrs = [
        (a.device_ptr(), a_view),
        (b.device_ptr(), b_view),
        (out.device_ptr(), out_view),
    ];
    binary_launch(&gpu, op, shape, numel, ptrs)
}

/// Launches a binary op over checked views `[a, b, out]` (pointers are the
/// buffers' starts).
fn binary_launch(
    gpu: &crate::Gpu,
    op: BinaryOp,
    shape: &[usize],
    numel: usize,
    [(a, av), (b, bv), (out, ov)]: [(u64, View<'_>); 3],
) -> Result<()> {
    const OP: &str = "binary";
    let at = |base: u64, v: View<'_>| base + 4 * v.offset as u64;
    let cfg = gpu.elementwise_config(numel);
    match plan(OP, shape, &[ov, av, bv], numel)? {
        Walk::Contiguous => {
            let launch = [
                Arg::I32(binary_code(op)),
                Arg::I64(numel as i64),
                Arg::Ptr(at(a, av)),
                Arg::Ptr(at(b, bv)),
                Arg::Ptr(at(out, ov)),
            ];
            gpu.launch(KernelFile::Elementwise, "binary_contiguous", cfg, &launch)
        }
        Walk::Strided(args, narrow) => {
            let kernel = if narrow {
                "binary_strided_i32"
            } else {
                "binary_strided"
            };
            let launch = [
                Arg::I32(binary_code(op)),
                Arg::Strided(*args),
                Arg::I64(numel as i64),
                Arg::Ptr(a),
                Arg::Ptr(b),
                Arg::Ptr(out),
            ];
            gpu.launch(KernelFile::Elementwise, kernel, cfg, &launch)
        }
    }
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
    describe(OP, "b", shape, b_view, b.len(), 2, &mut args)?;
    let ptrs = [
        (a.device_ptr(), a_view),
        (b.device_ptr(), b_view),
        (a.device_ptr(), a_view),
    ];
    binary_launch(&gpu, op, shape, numel, ptrs)
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
        Arg::I32(binary_code(op)),
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
    let (code, param) = unary_code(op);
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
    match plan(OP, shape, &[dst_view, src_view], numel)? {
        // Both dense: one device-to-device copy, no kernel.
        Walk::Contiguous => gpu.copy_dtod(
            dst.ptr_at(dst_view.offset),
            src.ptr_at(src_view.offset),
            4 * numel,
        ),
        Walk::Strided(args, narrow) => {
            let kernel = if narrow {
                "copy_strided_i32"
            } else {
                "copy_strided"
            };
            let launch = [
                Arg::Strided(*args),
                Arg::I64(numel as i64),
                Arg::Ptr(src.device_ptr()),
                Arg::Ptr(dst.device_ptr()),
            ];
            gpu.launch(
                KernelFile::Elementwise,
                kernel,
                gpu.elementwise_config(numel),
                &launch,
            )
        }
    }
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
    fn dense_dims_merge_into_one() {
        let dense = contiguous_strides(&[2, 3, 4]);
        let (dims, strides) = merge_dims(&[2, 3, 4], &[&dense, &dense]);
        assert_eq!((dims, strides), (vec![24], vec![vec![1], vec![1]]));
        // A row broadcast ([2, 3] + [3]): the rows cannot merge with b's stride 0.
        let (dims, strides) = merge_dims(&[2, 3], &[&[3, 1], &[0, 1]]);
        assert_eq!(dims, vec![2, 3]);
        assert_eq!(strides, vec![vec![3, 1], vec![0, 1]]);
        // Size-1 dims vanish; a transposed operand keeps both dims.
        let (dims, _) = merge_dims(&[1, 4, 1, 5], &[&[20, 5, 5, 1], &[20, 5, 5, 1]]);
        assert_eq!(dims, vec![20]);
        let (dims, strides) = merge_dims(&[4, 5], &[&[5, 1], &[1, 4]]);
        assert_eq!(dims, vec![4, 5]);
        assert_eq!(strides[1], vec![1, 4]);
        // A single element: no dims at all (taken as contiguous).
        assert_eq!(merge_dims(&[1, 1], &[&[1, 1]]).0, Vec::<usize>::new());
    }

    #[test]
    fn op_codes_match_the_kernel_file() {
        let src = crate::KernelFile::Elementwise.source();
        for (name, code) in [
            ("OP_ADD", binary_code(BinaryOp::Add)),
            ("OP_SUB", binary_code(BinaryOp::Sub)),
            ("OP_MUL", binary_code(BinaryOp::Mul)),
            ("OP_DIV", binary_code(BinaryOp::Div)),
            ("OP_MAX", binary_code(BinaryOp::Maximum)),
            ("OP_RELU_BACKWARD", binary_code(BinaryOp::ReluBackward)),
            ("UOP_NEG", unary_code(UnaryOp::Neg).0),
            ("UOP_EXP", unary_code(UnaryOp::Exp).0),
            ("UOP_LOG", unary_code(UnaryOp::Log).0),
            ("UOP_SQRT", unary_code(UnaryOp::Sqrt).0),
            ("UOP_RELU", unary_code(UnaryOp::Relu).0),
            ("UOP_SIGMOID", unary_code(UnaryOp::Sigmoid).0),
            ("UOP_TANH", unary_code(UnaryOp::Tanh).0),
            ("UOP_ABS", unary_code(UnaryOp::Abs).0),
            ("UOP_POWF", unary_code(UnaryOp::Pow(2.0)).0),
            ("UOP_ADD_SCALAR", unary_code(UnaryOp::AddScalar(1.0)).0),
            ("UOP_MUL_SCALAR", unary_code(UnaryOp::MulScalar(1.0)).0),
            ("UOP_GT_MASK", unary_code(UnaryOp::GtMask(0.0)).0),
        ] {
            assert!(
                src.contains(&format!("#define {name} {code}")),
                "{name} != {code}"
            );
        }
    }
}
