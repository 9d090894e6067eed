//! 2-D convolution forward and backward as implicit GEMM (NCHW, f32).

use super::{check_len, same_gpu, to_i32};
use crate::compile::KernelFile;
use crate::device::Arg;
use crate::error::{CudaError, Result};
use crate::memory::DeviceBuffer;
use crate::ops::reduce::{reduce, ReduceOp};
use cudarc::driver::{DeviceRepr, LaunchConfig};
use gradlab_cpu::Conv2dShape;

/// Twin of `ConvParams` in `kernels/conv.cu` (same field order).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConvParams {
    batch: i32,
    in_c: i32,
    in_h: i32,
    in_w: i32,
    out_c: i32,
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
    groups: i32,
}

// SAFETY: #[repr(C)] struct of i32, laid out like its CUDA twin.
unsafe impl DeviceRepr for ConvParams {}

const BLOCK_COLS: usize = 128;
const BLOCK_K: usize = 8;

/// Validates the shape and converts it for the kernels.
fn params(op: &'static str, s: &Conv2dShape) -> Result<ConvParams> {
    let bad = |m: String| Err(CudaError::invalid(op, format!("{m} in {s:?}")));
    if s.groups == 0
        || !s.in_channels.is_multiple_of(s.groups)
        || !s.out_channels.is_multiple_of(s.groups)
    {
        return bad(format!(
            "groups = {} must divide in_channels = {} and out_channels = {}",
            s.groups, s.in_channels, s.out_channels
        ));
    }
    if s.kernel_h == 0 || s.kernel_w == 0 || s.stride.0 == 0 || s.stride.1 == 0 {
        return bad("kernel and stride must be positive".into());
    }
    if s.dilation.0 == 0 || s.dilation.1 == 0 {
        return bad("dilation must be positive".into());
    }
    if s.out_h() == 0 || s.out_w() == 0 {
        return bad("the kernel does not fit the padded input".into());
    }
    // Every index a kernel forms must fit in i32 (they multiply in i64 only
    // when addressing whole tensors).
    let cols = s.batch.max(1) * (s.in_h * s.in_w).max(s.out_h() * s.out_w());
    let k_fwd = s.in_per_group() * s.kernel_h * s.kernel_w;
    to_i32(op, "batch × spatial size", cols)?;
    to_i32(
        op,
        "channels × kernel size",
        k_fwd.max(s.out_per_group() * s.kernel_h * s.kernel_w),
    )?;
    let i = |what: &str, v: usize| to_i32(op, what, v);
    Ok(ConvParams {
        batch: i("batch", s.batch)?,
        in_c: i("in_channels", s.in_channels)?,
        in_h: i("in_h", s.in_h)?,
        in_w: i("in_w", s.in_w)?,
        out_c: i("out_channels", s.out_channels)?,
        out_h: i("out_h", s.out_h())?,
        out_w: i("out_w", s.out_w())?,
        kh: i("kernel_h", s.kernel_h)?,
        kw: i("kernel_w", s.kernel_w)?,
        stride_h: i("stride", s.stride.0)?,
        stride_w: i("stride", s.stride.1)?,
        pad_h: i("padding", s.padding.0)?,
        pad_w: i("padding", s.padding.1)?,
        dil_h: i("dilation", s.dilation.0)?,
        dil_w: i("dilation", s.dilation.1)?,
        groups: i("groups", s.groups)?,
    })
}

/// Kernel suffix and block rows for a GEMM with `rows` output rows: small
/// channel counts (LeNet's 6 and 16) waste less with a short tile.
fn tile_for(rows: usize) -> (&'static str, usize) {
    if rows <= 32 {
        ("m32", 32)
    } else if rows <= 64 {
        ("m64", 64)
    } else {
        ("m128", 128)
    }
}

fn grid(op: &'static str, rows: usize, cols: usize, z: usize) -> Result<LaunchConfig> {
    let (_, bm) = tile_for(rows);
    let gy = rows.div_ceil(bm);
    if gy > 65_535 || z > 65_535 {
        return Err(CudaError::invalid(
            op,
            format!("grid of {gy} × {z} blocks exceeds 65535 in y or z"),
        ));
    }
    Ok(LaunchConfig {
        grid_dim: (cols.div_ceil(BLOCK_COLS) as u32, gy as u32, z as u32),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    })
}

fn kernel_name(prefix: &str, rows: usize) -> &'static str {
    match (prefix, tile_for(rows).0) {
        ("fwd", "m32") => "conv2d_forward_m32",
        ("fwd", "m64") => "conv2d_forward_m64",
        ("fwd", _) => "conv2d_forward_m128",
        ("bwd_data", "m32") => "conv2d_backward_data_m32",
        ("bwd_data", "m64") => "conv2d_backward_data_m64",
        ("bwd_data", _) => "conv2d_backward_data_m128",
        (_, "m32") => "conv2d_backward_weight_m32",
        (_, "m64") => "conv2d_backward_weight_m64",
        _ => "conv2d_backward_weight_m128",
    }
}

/// `out = conv2d(input, weight) + bias`, PyTorch semantics.
/// Input `[batch, in_c, in_h, in_w]`, weight `[out_c, in_c/groups, kh, kw]`,
/// bias `[out_c]`, out `[batch, out_c, out_h, out_w]`, all contiguous.
pub fn conv2d_forward(
    s: &Conv2dShape,
    input: &DeviceBuffer<f32>,
    weight: &DeviceBuffer<f32>,
    bias: Option<&DeviceBuffer<f32>>,
    out: &mut DeviceBuffer<f32>,
) -> Result<()> {
    const OP: &str = "conv2d_forward";
    let mut gpus = vec![input.gpu(), weight.gpu(), out.gpu()];
    if let Some(b) = bias {
        gpus.push(b.gpu());
        check_len(OP, "bias", b, s.out_channels)?;
    }
    let gpu = same_gpu(OP, &gpus)?.clone();
    let p = params(OP, s)?;
    check_len(OP, "input", input, s.input_len())?;
    check_len(OP, "weight", weight, s.weight_len())?;
    check_len(OP, "output", out, s.output_len())?;
    if s.batch == 0 || s.out_channels == 0 {
        return Ok(());
    }
    let rows = s.out_per_group();
    let cfg = grid(OP, rows, s.batch * s.out_h() * s.out_w(), s.groups)?;
    let args = [
        Arg::Conv(p),
        Arg::Ptr(input.device_ptr()),
        Arg::Ptr(weight.device_ptr()),
        Arg::Ptr(bias.map_or(0, |b| b.device_ptr())),
        Arg::Ptr(out.device_ptr()),
    ];
    gpu.launch(KernelFile::Conv, kernel_name("fwd", rows), cfg, &args)
}

/// Gradient with respect to the input (overwrites `grad_input`).
pub fn conv2d_backward_data(
    s: &Conv2dShape,
    grad_out: &DeviceBuffer<f32>,
    weight: &DeviceBuffer<f32>,
    grad_input: &mut DeviceBuffer<f32>,
) -> Result<()> {
    const OP: &str = "conv2d_backward_data";
    let gpu = same_gpu(OP, &[grad_out.gpu(), weight.gpu(), grad_input.gpu()])?.clone();
    let p = params(OP, s)?;
    check_len(OP, "grad_out", grad_out, s.output_len())?;
    check_len(OP, "weight", weight, s.weight_len())?;
    check_len(OP, "grad_input", grad_input, s.input_len())?;
    if s.input_len() == 0 {
        return Ok(());
    }
    let rows = s.in_per_group();
    let cfg = grid(OP, rows, s.batch * s.in_h * s.in_w, s.groups)?;
    let args = [
        Arg::Conv(p),
        Arg::Ptr(grad_out.device_ptr()),
        Arg::Ptr(weight.device_ptr()),
        Arg::Ptr(grad_input.device_ptr()),
    ];
    gpu.launch(KernelFile::Conv, kernel_name("bwd_data", rows), cfg, &args)
}

/// How many slices the long K of backward-weight is cut into, and the K
/// length of each (a multiple of the tile depth): enough blocks to fill the
/// device about twice, but at least 256 K rows per slice.
fn split_k(s: &Conv2dShape, sm_count: usize) -> (usize, usize) {
    let k = s.batch * s.out_h() * s.out_w();
    let rows = s.out_per_group();
    let (_, bm) = tile_for(rows);
    let cols = s.in_per_group() * s.kernel_h * s.kernel_w;
    let blocks = rows.div_ceil(bm) * cols.div_ceil(BLOCK_COLS) * s.groups;
    let wanted = (2 * sm_count).div_ceil(blocks.max(1));
    let most = k.div_ceil(256).max(1);
    let splits = wanted
        .clamp(1, most.min(256))
        .min(65_535 / s.groups.max(1))
        .max(1);
    let chunk = k.div_ceil(splits).div_ceil(BLOCK_K) * BLOCK_K;
    (k.div_ceil(chunk.max(1)).max(1), chunk.max(BLOCK_K))
}

/// Gradient with respect to the weight (overwrites `grad_weight`). The long
/// reduction over batch and positions is split across blocks; partial sums go
/// to a workspace from the allocator and are added in a fixed order, so the
/// result is deterministic.
pub fn conv2d_backward_weight(
    s: &Conv2dShape,
    input: &DeviceBuffer<f32>,
    grad_out: &DeviceBuffer<f32>,
    grad_weight: &mut DeviceBuffer<f32>,
) -> Result<()> {
    const OP: &str = "conv2d_backward_weight";
    let gpu = same_gpu(OP, &[input.gpu(), grad_out.gpu(), grad_weight.gpu()])?.clone();
    let p = params(OP, s)?;
    check_len(OP, "input", input, s.input_len())?;
    check_len(OP, "grad_out", grad_out, s.output_len())?;
    check_len(OP, "grad_weight", grad_weight, s.weight_len())?;
    let len = s.weight_len();
    if len == 0 {
        return Ok(());
    }
    let (splits, chunk) = split_k(s, gpu.sm_count());
    let rows = s.out_per_group();
    let cols = s.in_per_group() * s.kernel_h * s.kernel_w;
    let cfg = grid(OP, rows, cols, s.groups * splits)?;
    let name = kernel_name("bwd_weight", rows);
    let chunk = Arg::I32(to_i32(OP, "K slice", chunk)?);
    if splits == 1 {
        let args = [
            Arg::Conv(p),
            Arg::Ptr(input.device_ptr()),
            Arg::Ptr(grad_out.device_ptr()),
            Arg::Ptr(grad_weight.device_ptr()),
            chunk,
        ];
        return gpu.launch(KernelFile::Conv, name, cfg, &args);
    }
    let workspace = DeviceBuffer::<f32>::uninit(&gpu, splits * len)?;
    let args = [
        Arg::Conv(p),
        Arg::Ptr(input.device_ptr()),
        Arg::Ptr(grad_out.device_ptr()),
        Arg::Ptr(workspace.device_ptr()),
        chunk,
    ];
    gpu.launch(KernelFile::Conv, name, cfg, &args)?;
    let sum_args = [
        Arg::Ptr(workspace.device_ptr()),
        Arg::Ptr(grad_weight.device_ptr()),
        Arg::I32(to_i32(OP, "weight length", len)?),
        Arg::I32(splits as i32),
    ];
    gpu.launch(
        KernelFile::Conv,
        "conv2d_sum_splits",
        gpu.elementwise_config(len),
        &sum_args,
    )
}

/// Gradient with respect to the bias: `grad_bias[oc] = Σ_{n,h,w} grad_out[n, oc, h, w]`.
pub fn conv2d_backward_bias(
    s: &Conv2dShape,
    grad_out: &DeviceBuffer<f32>,
    grad_bias: &mut DeviceBuffer<f32>,
) -> Result<()> {
    const OP: &str = "conv2d_backward_bias";
    let gpu = same_gpu(OP, &[grad_out.gpu(), grad_bias.gpu()])?.clone();
    check_len(OP, "grad_out", grad_out, s.output_len())?;
    check_len(OP, "grad_bias", grad_bias, s.out_channels)?;
    let plane = s.out_h() * s.out_w();
    let mut per_image = DeviceBuffer::<f32>::uninit(&gpu, s.batch * s.out_channels)?;
    reduce(
        ReduceOp::Sum,
        grad_out,
        s.batch * s.out_channels,
        plane,
        1,
        &mut per_image,
    )?;
    reduce(
        ReduceOp::Sum,
        &per_image,
        1,
        s.batch,
        s.out_channels,
        grad_bias,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(
        batch: usize,
        ic: usize,
        hw: usize,
        oc: usize,
        k: usize,
        groups: usize,
    ) -> Conv2dShape {
        Conv2dShape {
            batch,
            in_channels: ic,
            in_h: hw,
            in_w: hw,
            out_channels: oc,
            kernel_h: k,
            kernel_w: k,
            stride: (1, 1),
            padding: (k / 2, k / 2),
            dilation: (1, 1),
            groups,
        }
    }

    #[test]
    fn split_k_covers_k_exactly_once() {
        for s in [
            shape(256, 64, 32, 64, 3, 1),
            shape(1, 3, 5, 6, 5, 1),
            shape(7, 8, 9, 8, 3, 4),
        ] {
            let k = s.batch * s.out_h() * s.out_w();
            let (splits, chunk) = split_k(&s, 132);
            assert_eq!(chunk % BLOCK_K, 0);
            assert!(splits * chunk >= k, "{s:?}: {splits} × {chunk} < {k}");
            assert!((splits - 1) * chunk < k, "{s:?}: empty last slice");
        }
        let (splits, _) = split_k(&shape(256, 64, 32, 64, 3, 1), 132);
        assert!(splits > 1, "a batch-256 layer must be split");
    }

    #[test]
    fn rejects_groups_that_do_not_divide_channels() {
        let mut s = shape(1, 6, 8, 4, 3, 1);
        s.groups = 4;
        let e = params("conv2d_forward", &s).unwrap_err().to_string();
        assert!(e.contains("groups = 4"), "{e}");
        s.groups = 2;
        assert!(params("conv2d_forward", &s).is_ok());
    }
}
