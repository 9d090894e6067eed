//! 2-D max pooling with argmax, and its deterministic (gathering) backward.
//!
//! Argmax indices are i64 on the device (`-1`: a window that saw no
//! element), as PyTorch stores them. The wrappers also accept `u32` index
//! buffers (`u32::MAX`: no element) for callers that still store those; such
//! indices are converted on the device, one extra pass each way.

use super::{check_len, same_gpu, to_i32, to_i64};
use crate::compile::KernelFile;
use crate::device::{Arg, Gpu};
use crate::error::{CudaError, Result};
use crate::memory::{DeviceBuffer, DeviceElem};
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

/// Element types of index buffers: `i64` (what the kernels use) or `u32`
/// (converted on the device; `u32::MAX` stands for -1).
pub trait IndexElem: DeviceElem + sealed::Sealed {
    /// True for i64, which the kernels read and write directly.
    const NATIVE: bool;
}
impl IndexElem for i64 {
    const NATIVE: bool = true;
}
impl IndexElem for u32 {
    const NATIVE: bool = false;
}
mod sealed {
    pub trait Sealed {}
    impl Sealed for i64 {}
    impl Sealed for u32 {}
}

/// Converts `len` indices at `src` into `dst` with `kernel` (a u32 <-> i64 pass).
fn convert_indices(gpu: &Gpu, kernel: &'static str, src: u64, dst: u64, len: usize) -> Result<()> {
    if len == 0 {
        return Ok(());
    }
    let args = [
        Arg::Ptr(src),
        Arg::Ptr(dst),
        Arg::I64(to_i64(kernel, "length", len)?),
    ];
    gpu.launch(KernelFile::Pool, kernel, gpu.elementwise_config(len), &args)
}

/// An i64 copy of an index buffer (None when it already is one).
pub(crate) fn widened<I: IndexElem>(idx: &DeviceBuffer<I>) -> Result<Option<DeviceBuffer<i64>>> {
    if I::NATIVE {
        return Ok(None);
    }
    let wide = DeviceBuffer::<i64>::uninit(idx.gpu(), idx.len())?;
    let gpu = idx.gpu().clone();
    convert_indices(
        &gpu,
        "indices_u32_to_i64",
        idx.device_ptr(),
        wide.device_ptr(),
        idx.len(),
    )?;
    Ok(Some(wide))
}

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
/// the first maximum in scan order and NaN propagates. `argmax` is normally
/// `DeviceBuffer<i64>`; a `u32` buffer is filled through a conversion pass
/// (an index of 2^32 - 1 or more then reads as `u32::MAX`).
pub fn max_pool2d_forward<I: IndexElem>(
    s: &Pool2dShape,
    input: &DeviceBuffer<f32>,
    out: &mut DeviceBuffer<f32>,
    argmax: &mut DeviceBuffer<I>,
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
    let wide = if I::NATIVE {
        None
    } else {
        Some(DeviceBuffer::<i64>::uninit(&gpu, s.output_len())?)
    };
    let argmax_ptr = wide
        .as_ref()
        .map_or(argmax.device_ptr(), |w| w.device_ptr());
    let args = [
        Arg::Pool(p),
        Arg::Ptr(input.device_ptr()),
        Arg::Ptr(out.device_ptr()),
        Arg::Ptr(argmax_ptr),
    ];
    let cfg = gpu.elementwise_config(s.output_len());
    gpu.launch(KernelFile::Pool, "max_pool2d_forward", cfg, &args)?;
    match wide {
        Some(w) => convert_indices(
            &gpu,
            "indices_i64_to_u32",
            w.device_ptr(),
            argmax.device_ptr(),
            w.len(),
        ),
        None => Ok(()),
    }
}

/// Max-pool backward (overwrites `grad_input`): every input element gathers
/// the gradients of the windows it won, in output order, without atomics.
pub fn max_pool2d_backward<I: IndexElem>(
    s: &Pool2dShape,
    grad_out: &DeviceBuffer<f32>,
    argmax: &DeviceBuffer<I>,
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
    let wide = widened(argmax)?;
    let args = [
        Arg::Pool(p),
        Arg::Ptr(grad_out.device_ptr()),
        Arg::Ptr(
            wide.as_ref()
                .map_or(argmax.device_ptr(), |w| w.device_ptr()),
        ),
        Arg::Ptr(grad_input.device_ptr()),
    ];
    let cfg = gpu.elementwise_config(s.input_len());
    gpu.launch(KernelFile::Pool, "max_pool2d_backward", cfg, &args)
}
