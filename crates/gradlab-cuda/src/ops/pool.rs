//! 2-D max pooling with argmax, and its deterministic (gathering) backward.
//!
//! Argmax indices are i64 on the device (`-1`: a window that saw no
//! element), as PyTorch stores them, and as tensors keep them.

use super::{check_len, same_gpu, to_i32};
use crate::compile::KernelFile;
use crate::device::Arg;
use crate::error::{CudaError, Result};
use crate::memory::DeviceBuffer;
use cudarc::driver::DeviceRepr;
use gradlab_cpu::Pool2dShape;

/// Twin of `PoolParams` in `kernels/pool.cu` (same field order).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct PoolParams {
    planes: i32,
    in_h: i32,
    in_w: i32,
    out_h: i32,
    out_w: i32,
    kh: i32,
    kw: i32,
    stride_h: i32,
    stride_w: i32,
    pad_h: i32,
    pad_w: i32,
    dil_h: i32,
    dil_w: i32,
}

// SAFETY: #[repr(C)] struct of i32, laid out like its CUDA twin.
unsafe impl DeviceRepr for PoolParams {}

/// Argmax value of a window that saw no input element (cannot happen for
/// shapes that pass validation; kept so a reader knows the sentinel).
pub const NO_ARGMAX: i64 = -1;

fn params(op: &'static str, s: &Pool2dShape) -> Result<PoolParams> {
    let bad = |m: &str| Err(CudaError::invalid(op, format!("{m} in {s:?}")));
    if s.kernel.0 == 0 || s.kernel.1 == 0 || s.stride.0 == 0 || s.stride.1 == 0 {
        return bad("kernel and stride must be positive");
    }
    if s.dilation.0 == 0 || s.dilation.1 == 0 {
        return bad("dilation must be positive");
    }
    // PyTorch's rule; it guarantees every window overlaps the input.
    if 2 * s.padding.0 > s.kernel.0 || 2 * s.padding.1 > s.kernel.1 {
        return bad("padding must be at most half the kernel size");
    }
    if s.out_h() == 0 || s.out_w() == 0 {
        return bad("the window does not fit the padded input");
    }
    let i = |what: &str, v: usize| to_i32(op, what, v);
    Ok(PoolParams {
        planes: i("batch × channels", s.batch * s.channels)?,
        in_h: i("in_h", s.in_h)?,
        in_w: i("in_w", s.in_w)?,
        out_h: i("out_h", s.out_h())?,
        out_w: i("out_w", s.out_w())?,
        kh: i("kernel", s.kernel.0)?,
        kw: i("kernel", s.kernel.1)?,
        stride_h: i("stride", s.stride.0)?,
        stride_w: i("stride", s.stride.1)?,
        pad_h: i("padding", s.padding.0)?,
        pad_w: i("padding", s.padding.1)?,
        dil_h: i("dilation", s.dilation.0)?,
        dil_w: i("dilation", s.dilation.1)?,
    })
}

/// Max-pool forward. `argmax[o]` receives the index of the winning element
/// within its input plane (`ih * in_w + iw`), as PyTorch records it; ties keep
/// the first maximum in scan order and NaN propagates.
pub fn max_pool2d_forward(
    s: &Pool2dShape,
    input: &DeviceBuffer<f32>,
    out: &mut DeviceBuffer<f32>,
    argmax: &mut DeviceBuffer<i64>,
) -> Result<()> {
    const OP: &str = "max_pool2d_forward";
    let gpu = same_gpu(OP, &[input.gpu(), out.gpu(), argmax.gpu()])?.clone();
    let p = params(OP, s)?;
    check_len(OP, "input", input, s.input_len())?;
    check_len(OP, "output", out, s.output_len())?;
    check_len(OP, "argmax", argmax, s.output_len())?;
    if s.output_len() == 0 {
        return Ok(());
    }
    let args = [
        Arg::Pool(p),
        Arg::Ptr(input.device_ptr()),
        Arg::Ptr(out.device_ptr()),
        Arg::Ptr(argmax.device_ptr()),
    ];
    let cfg = gpu.elementwise_config(s.output_len());
    gpu.launch(KernelFile::Pool, "max_pool2d_forward", cfg, &args)
}

/// Max-pool backward (overwrites `grad_input`): every input element gathers
/// the gradients of the windows it won, in output order, without atomics.
pub fn max_pool2d_backward(
    s: &Pool2dShape,
    grad_out: &DeviceBuffer<f32>,
    argmax: &DeviceBuffer<i64>,
    grad_input: &mut DeviceBuffer<f32>,
) -> Result<()> {
    const OP: &str = "max_pool2d_backward";
    let gpu = same_gpu(OP, &[grad_out.gpu(), argmax.gpu(), grad_input.gpu()])?.clone();
    let p = params(OP, s)?;
    check_len(OP, "grad_out", grad_out, s.output_len())?;
    check_len(OP, "argmax", argmax, s.output_len())?;
    check_len(OP, "grad_input", grad_input, s.input_len())?;
    if s.input_len() == 0 {
        return Ok(());
    }
    let args = [
        Arg::Pool(p),
        Arg::Ptr(grad_out.device_ptr()),
        Arg::Ptr(argmax.device_ptr()),
        Arg::Ptr(grad_input.device_ptr()),
    ];
    let cfg = gpu.elementwise_config(s.input_len());
    gpu.launch(KernelFile::Pool, "max_pool2d_backward", cfg, &args)
}
