//! Single-precision matrix multiply: `C = alpha * op(A)·op(B) + beta * C`,
//! batched, with any row/column strides, in several kernel versions.

use super::{same_gpu, to_i32, to_i64};
use crate::compile::KernelFile;
use crate::device::Arg;
use crate::error::{CudaError, Result};
use crate::memory::DeviceBuffer;
use cudarc::driver::LaunchConfig;

/// Which GEMM kernel to run. The first five compute in f32 and differ only in
/// speed (they are a ladder of optimisations, kept side by side to be read and
/// benchmarked); `Tf32TensorCore` rounds inputs to TF32 on the tensor cores.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MatmulVariant {
    /// One thread per output, operands from global memory.
    Naive,
    /// 32×32 tiles staged in shared memory.
    SharedTiled,
    /// 128×128 block tile, 8×8 outputs per thread in registers.
    RegisterBlocked,
    /// Register blocking plus float4 loads and conflict-free shared reads.
    Vectorized,
    /// Warp-level tiling with double-buffered shared memory: the fastest f32 kernel.
    #[default]
    WarpTiled,
    /// TF32 tensor cores (`mma.sync`), f32 accumulation; ~1e-3 relative error.
    Tf32TensorCore,
}

impl MatmulVariant {
    /// Every variant, slowest first.
    pub const ALL: [MatmulVariant; 6] = [
        MatmulVariant::Naive,
        MatmulVariant::SharedTiled,
        MatmulVariant::RegisterBlocked,
        MatmulVariant::Vectorized,
        MatmulVariant::WarpTiled,
        MatmulVariant::Tf32TensorCore,
    ];

    /// Short name used on the command line and in benchmark tables.
    pub fn name(self) -> &'static str {
        match self {
            MatmulVariant::Naive => "naive",
            MatmulVariant::SharedTiled => "shared_tiled",
            MatmulVariant::RegisterBlocked => "register_blocked",
            MatmulVariant::Vectorized => "vectorized",
            MatmulVariant::WarpTiled => "warp_tiled",
            MatmulVariant::Tf32TensorCore => "tf32_tensor_core",
        }
    }

    /// The variant called `name` (see [`MatmulVariant::name`]).
    pub fn from_name(name: &str) -> Option<MatmulVariant> {
        Self::ALL.into_iter().find(|v| v.name() == name)
    }

    /// True when the result is computed in full f32 precision.
    pub fn is_f32_exact(self) -> bool {
        self != MatmulVariant::Tf32TensorCore
    }

    /// The kernel that runs this variant on operands of `layout` (the first
    /// three variants take any layout in one kernel).
    pub fn kernel(self, layout: OperandLayout) -> &'static str {
        use OperandLayout::*;
        match (self, layout) {
            (MatmulVariant::Naive, _) => "matmul_naive",
            (MatmulVariant::SharedTiled, _) => "matmul_shared_tiled",
            (MatmulVariant::RegisterBlocked, _) => "matmul_register_blocked",
            (MatmulVariant::Vectorized, NN) => "matmul_vectorized_nn",
            (MatmulVariant::Vectorized, NT) => "matmul_vectorized_nt",
            (MatmulVariant::Vectorized, TN) => "matmul_vectorized_tn",
            (MatmulVariant::Vectorized, TT) => "matmul_vectorized_tt",
            (MatmulVariant::WarpTiled, NN) => "matmul_warp_tiled_nn",
            (MatmulVariant::WarpTiled, NT) => "matmul_warp_tiled_nt",
            (MatmulVariant::WarpTiled, TN) => "matmul_warp_tiled_tn",
            (MatmulVariant::WarpTiled, TT) => "matmul_warp_tiled_tt",
            (MatmulVariant::Tf32TensorCore, NN) => "matmul_tf32_nn",
            (MatmulVariant::Tf32TensorCore, NT) => "matmul_tf32_nt",
            (MatmulVariant::Tf32TensorCore, TN) => "matmul_tf32_tn",
            (MatmulVariant::Tf32TensorCore, TT) => "matmul_tf32_tt",
        }
    }

    /// (block tile rows, block tile cols, threads per block as (x, y)).
    fn tiling(self) -> (usize, usize, (u32, u32)) {
        match self {
            MatmulVariant::Naive => (8, 32, (32, 8)),
            MatmulVariant::SharedTiled => (32, 32, (32, 32)),
            _ => (128, 128, (256, 1)),
        }
    }
}

impl std::fmt::Display for MatmulVariant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How the operands of a GEMM lie in memory, which picks the compiled
/// kernel of the tiled variants: the first letter is A, the second B; `N`
/// means stored as its own shape with the long axis contiguous (A row-major
/// `m×k`, B row-major `k×n`), `T` means stored transposed (A with `m`
/// contiguous, B with `k` contiguous, as a linear layer's weight). Any other
/// strides take the `N` kernel of that operand, whose loader reads element by
/// element when k is not contiguous.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OperandLayout {
    /// `x @ w`: A row-major, B row-major.
    NN,
    /// `x @ w.T` (a linear layer's forward): A row-major, B stored `n×k`.
    NT,
    /// `x.T @ dy` (a weight gradient): A stored `k×m`, B row-major.
    TN,
    /// Both stored transposed.
    TT,
}

impl OperandLayout {
    /// The layout of `p`'s operands.
    pub fn of(p: &GemmProblem) -> OperandLayout {
        let a_transposed = p.a.row_stride == 1;
        let b_transposed = p.b.col_stride != 1;
        match (a_transposed, b_transposed) {
            (false, false) => OperandLayout::NN,
            (false, true) => OperandLayout::NT,
            (true, false) => OperandLayout::TN,
            (true, true) => OperandLayout::TT,
        }
    }

    /// Every layout.
    pub const ALL: [OperandLayout; 4] = [
        OperandLayout::NN,
        OperandLayout::NT,
        OperandLayout::TN,
        OperandLayout::TT,
    ];
}

/// Where a (batch of) matrices sits in a buffer: element `(i, j)` of matrix
/// `b` is at `offset + b*batch_stride + i*row_stride + j*col_stride`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatrixLayout {
    pub offset: usize,
    pub row_stride: usize,
    pub col_stride: usize,
    pub batch_stride: usize,
}

impl MatrixLayout {
    /// A contiguous row-major `rows × cols` matrix (batches back to back).
    pub fn row_major(rows: usize, cols: usize) -> MatrixLayout {
        MatrixLayout {
            offset: 0,
            row_stride: cols,
            col_stride: 1,
            // Saturating: an absurd size must fail the extent check, not overflow here.
            batch_stride: rows.saturating_mul(cols),
        }
    }

    /// The transpose of this matrix, as a view (no data moves).
    pub fn transposed(self) -> MatrixLayout {
        MatrixLayout {
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// The same layout starting `offset` elements into the buffer.
    pub fn with_offset(self, offset: usize) -> MatrixLayout {
        MatrixLayout { offset, ..self }
    }

    /// Highest element index touched by a `batch` of `rows × cols` matrices
    /// (None when the matrices are empty), or None on overflow.
    fn last_index(self, rows: usize, cols: usize, batch: usize) -> Option<Option<usize>> {
        if rows == 0 || cols == 0 || batch == 0 {
            return Some(None);
        }
        let span = (rows - 1)
            .checked_mul(self.row_stride)?
            .checked_add((cols - 1).checked_mul(self.col_stride)?)?
            .checked_add((batch - 1).checked_mul(self.batch_stride)?)?;
        Some(Some(self.offset.checked_add(span)?))
    }
}

/// A batched GEMM: for each of `batch` matrices, `C (m×n) = alpha * A (m×k) ·
/// B (k×n) + beta * C`. When `beta` is 0, C is not read.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GemmProblem {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub batch: usize,
    pub alpha: f32,
    pub beta: f32,
    pub a: MatrixLayout,
    pub b: MatrixLayout,
    pub c: MatrixLayout,
}

impl GemmProblem {
    /// `C = op(A)·op(B)` for contiguous row-major buffers: A is stored `m×k`
    /// (or `k×m` when `trans_a`), B is stored `k×n` (or `n×k` when `trans_b`).
    pub fn new(m: usize, k: usize, n: usize, trans_a: bool, trans_b: bool) -> GemmProblem {
        let a = if trans_a {
            MatrixLayout::row_major(k, m).transposed()
        } else {
            MatrixLayout::row_major(m, k)
        };
        let b = if trans_b {
            MatrixLayout::row_major(n, k).transposed()
        } else {
            MatrixLayout::row_major(k, n)
        };
        GemmProblem {
            m,
            n,
            k,
            batch: 1,
            alpha: 1.0,
            beta: 0.0,
            a,
            b,
            c: MatrixLayout::row_major(m, n),
        }
    }

    /// Multiply-adds times two.
    pub fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.n as f64 * self.k as f64 * self.batch as f64
    }
}

fn check_operand(
    what: &str,
    layout: MatrixLayout,
    rows: usize,
    cols: usize,
    batch: usize,
    len: usize,
) -> Result<()> {
    match layout.last_index(rows, cols, batch) {
        None => Err(CudaError::invalid(
            "gemm",
            format!("{what} layout {layout:?} overflows for {rows}×{cols}×{batch}"),
        )),
        Some(Some(last)) if last >= len => Err(CudaError::invalid(
            "gemm",
            format!(
                "{what} ({batch} × {rows}×{cols}, {layout:?}) reaches element {last}, buffer has {len}"
            ),
        )),
        _ => Ok(()),
    }
}

/// Runs `p` with kernel `variant` (for the tiled variants, the kernel
/// compiled for the operands' [`OperandLayout`]). Returns once the kernel is
/// queued.
pub fn gemm(
    variant: MatmulVariant,
    p: &GemmProblem,
    a: &DeviceBuffer<f32>,
    b: &DeviceBuffer<f32>,
    c: &mut DeviceBuffer<f32>,
) -> Result<()> {
    let gpu = same_gpu("gemm", &[a.gpu(), b.gpu(), c.gpu()])?.clone();
    check_operand("C", p.c, p.m, p.n, p.batch, c.len())?;
    if p.m == 0 || p.n == 0 || p.batch == 0 {
        return Ok(());
    }
    check_operand("A", p.a, p.m, p.k, p.batch, a.len())?;
    check_operand("B", p.b, p.k, p.n, p.batch, b.len())?;
    let (bm, bn, (tx, ty)) = variant.tiling();
    let grid_y = p.m.div_ceil(bm);
    if grid_y > 65_535 || p.batch > 65_535 {
        return Err(CudaError::invalid(
            "gemm",
            format!(
                "m = {} with {variant} needs {grid_y} block rows and batch = {}; at most 65535 each",
                p.m, p.batch
            ),
        ));
    }
    let cfg = LaunchConfig {
        grid_dim: (
            to_i32("gemm", "n / tile", p.n.div_ceil(bn))? as u32,
            grid_y as u32,
            p.batch as u32,
        ),
        block_dim: (tx, ty, 1),
        shared_mem_bytes: 0,
    };
    let s = |what: &str, v: usize| to_i64("gemm", what, v).map(Arg::I64);
    let args = [
        Arg::I32(to_i32("gemm", "m", p.m)?),
        Arg::I32(to_i32("gemm", "n", p.n)?),
        Arg::I32(to_i32("gemm", "k", p.k)?),
        Arg::F32(p.alpha),
        Arg::Ptr(a.ptr_at(p.a.offset)),
        s("A row stride", p.a.row_stride)?,
        s("A col stride", p.a.col_stride)?,
        s("A batch stride", p.a.batch_stride)?,
        Arg::Ptr(b.ptr_at(p.b.offset)),
        s("B row stride", p.b.row_stride)?,
        s("B col stride", p.b.col_stride)?,
        s("B batch stride", p.b.batch_stride)?,
        Arg::F32(p.beta),
        Arg::Ptr(c.ptr_at(p.c.offset)),
        s("C row stride", p.c.row_stride)?,
        s("C col stride", p.c.col_stride)?,
        s("C batch stride", p.c.batch_stride)?,
    ];
    let kernel = variant.kernel(OperandLayout::of(p));
    gpu.launch(KernelFile::Matmul, kernel, cfg, &args)
}

/// `C (m×n) = op(A)·op(B)` on contiguous row-major buffers, with the default
/// (fastest f32) kernel unless `variant` says otherwise. `trans_a` means A is
/// stored `k×m`; `trans_b` means B is stored `n×k` (as a linear layer's weight).
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    variant: MatmulVariant,
    m: usize,
    k: usize,
    n: usize,
    a: &DeviceBuffer<f32>,
    trans_a: bool,
    b: &DeviceBuffer<f32>,
    trans_b: bool,
    c: &mut DeviceBuffer<f32>,
) -> Result<()> {
    let p = GemmProblem::new(m, k, n, trans_a, trans_b);
    super::check_len("matmul", "A", a, m * k)?;
    super::check_len("matmul", "B", b, k * n)?;
    super::check_len("matmul", "C", c, m * n)?;
    gemm(variant, &p, a, b, c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variant_names_round_trip() {
        for v in MatmulVariant::ALL {
            assert_eq!(MatmulVariant::from_name(v.name()), Some(v));
        }
        assert_eq!(MatmulVariant::from_name("cublas"), None);
        assert_eq!(MatmulVariant::default(), MatmulVariant::WarpTiled);
    }

    #[test]
    fn operand_layouts_pick_one_kernel_each() {
        for (ta, tb, layout) in [
            (false, false, OperandLayout::NN),
            (false, true, OperandLayout::NT),
            (true, false, OperandLayout::TN),
            (true, true, OperandLayout::TT),
        ] {
            let p = GemmProblem::new(5, 6, 7, ta, tb);
            assert_eq!(OperandLayout::of(&p), layout, "trans_a {ta} trans_b {tb}");
        }
        let names: std::collections::HashSet<_> = OperandLayout::ALL
            .iter()
            .map(|&l| MatmulVariant::WarpTiled.kernel(l))
            .collect();
        assert_eq!(names.len(), 4);
        assert_eq!(
            MatmulVariant::Naive.kernel(OperandLayout::TT),
            "matmul_naive"
        );
    }

    #[test]
    fn layouts_describe_transposes_and_extents() {
        let p = GemmProblem::new(3, 4, 5, true, true);
        // A stored 4×3 (k×m): element (i, p) at p*3 + i.
        assert_eq!((p.a.row_stride, p.a.col_stride), (1, 3));
        // B stored 5×4 (n×k): element (p, j) at j*4 + p.
        assert_eq!((p.b.row_stride, p.b.col_stride), (1, 4));
        assert_eq!(p.a.last_index(3, 4, 1), Some(Some(11)));
        assert_eq!(p.c.last_index(3, 5, 2), Some(Some(29)));
        assert_eq!(p.c.last_index(0, 5, 2), Some(None));
        let huge = MatrixLayout::row_major(usize::MAX / 2, 4);
        assert_eq!(huge.last_index(usize::MAX / 2, 4, 1), None);
    }
}
