//! GEMM: every variant, every operand layout, tails, batches, alpha/beta,
//! strided and offset C, unaligned and non-unit-stride operands.

use super::{assert_close, download, random, upload, widen};
use gradlab_cpu::{reference, Rng};
use gradlab_cuda::{gemm, matmul, GemmProblem, Gpu, MatmulVariant, MatrixLayout, OperandLayout};
use std::sync::Arc;

/// One GEMM problem and how its operands are laid out.
#[derive(Clone, Copy, Debug)]
pub struct GemmCase {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub batch: usize,
    pub layout: OperandLayout,
    pub alpha: f32,
    pub beta: f32,
    /// Extra elements after each row of C (a strided output) and a leading offset.
    pub c_pad: usize,
    pub c_offset: usize,
    /// Extra elements after each stored row of A (breaks 16-byte alignment
    /// when not a multiple of 4) and a leading offset of A.
    pub a_pad: usize,
    pub a_offset: usize,
    /// Column stride of A's storage (1 normally; 2 reads every other element,
    /// a layout no fast path covers).
    pub a_step: usize,
}

impl GemmCase {
    pub fn new(m: usize, k: usize, n: usize, layout: OperandLayout) -> GemmCase {
        GemmCase {
            m,
            k,
            n,
            batch: 1,
            layout,
            alpha: 1.0,
            beta: 0.0,
            c_pad: 0,
            c_offset: 0,
            a_pad: 0,
            a_offset: 0,
            a_step: 1,
        }
    }

    /// The problem and the lengths of the A, B and C buffers it needs.
    fn problem(&self) -> (GemmProblem, [usize; 3]) {
        let (ta, tb) = match self.layout {
            OperandLayout::NN => (false, false),
            OperandLayout::NT => (false, true),
            OperandLayout::TN => (true, false),
            OperandLayout::TT => (true, true),
        };
        let mut p = GemmProblem::new(self.m, self.k, self.n, ta, tb);
        p.batch = self.batch;
        p.alpha = self.alpha;
        p.beta = self.beta;
        // A stored as rows of `stored_cols` elements `a_step` apart, plus padding.
        let (stored_rows, stored_cols) = if ta {
            (self.k, self.m)
        } else {
            (self.m, self.k)
        };
        let row = stored_cols * self.a_step + self.a_pad;
        let stored = MatrixLayout {
            offset: self.a_offset,
            row_stride: row,
            col_stride: self.a_step,
            batch_stride: stored_rows * row,
        };
        p.a = if ta { stored.transposed() } else { stored };
        let ldc = self.n + self.c_pad;
        p.c = MatrixLayout {
            offset: self.c_offset,
            row_stride: ldc,
            col_stride: 1,
            batch_stride: self.m * ldc,
        };
        let lens = [
            self.a_offset + self.batch * stored_rows * row,
            self.batch * self.k * self.n,
            self.c_offset + self.batch * self.m * ldc,
        ];
        (p, lens)
    }
}

/// Runs one case with `variant` and compares with `reference::gemm` in f64.
pub fn check_gemm_case(gpu: &Arc<Gpu>, rng: &mut Rng, variant: MatmulVariant, c: &GemmCase) {
    let (p, [la, lb, lc]) = c.problem();
    if c.m > 1 && c.k > 1 && c.n > 1 {
        // (A dimension of 1 makes both strides of an operand look unit.)
        assert_eq!(OperandLayout::of(&p), c.layout, "{c:?}");
    }
    let a = random(rng, la);
    let b = random(rng, lb);
    let c0 = random(rng, lc);
    let (a64, b64) = (widen(&a), widen(&b));
    let mut want = widen(&c0);
    for bi in 0..c.batch {
        let off_c = p.c.offset + bi * p.c.batch_stride;
        reference::gemm(
            c.m,
            c.k,
            c.n,
            c.alpha as f64,
            &a64[p.a.offset + bi * p.a.batch_stride..],
            p.a.row_stride,
            p.a.col_stride,
            &b64[bi * p.b.batch_stride..],
            p.b.row_stride,
            p.b.col_stride,
            c.beta as f64,
            &mut want[off_c..],
            p.c.row_stride,
            1,
        );
    }
    let (da, db) = (upload(gpu, &a), upload(gpu, &b));
    let mut dc = upload(gpu, &c0);
    gemm(variant, &p, &da, &db, &mut dc).unwrap_or_else(|e| panic!("{variant} {c:?}: {e}"));
    let per_product = if variant.is_f32_exact() { 2e-6 } else { 1.5e-3 };
    let tol = per_product * (c.k as f64).max(1.0) * c.alpha.abs().max(1.0) as f64 + 1e-5;
    assert_close(&format!("{variant} {c:?}"), &download(&dc), &want, tol);
}

/// Shapes for every layout: tiny, partial tiles in every direction, whole
/// aligned tiles (the 16-byte paths), K not a multiple of 4 or of the slice.
pub fn gemm_cases() -> Vec<GemmCase> {
    let mut cases = Vec::new();
    for layout in OperandLayout::ALL {
        for (m, k, n) in [
            (1, 1, 1),
            (7, 5, 3),
            (33, 20, 129),
            (131, 77, 203),
            (128, 64, 128),
            (130, 0, 70),
        ] {
            cases.push(GemmCase::new(m, k, n, layout));
        }
        cases.push(GemmCase {
            batch: 2,
            alpha: 0.5,
            beta: -2.0,
            c_pad: 3,
            c_offset: 5,
            ..GemmCase::new(150, 40, 140, layout)
        });
        // Unaligned A rows (pad 3) and an offset: the element-wise edge path.
        cases.push(GemmCase {
            a_pad: 3,
            a_offset: 1,
            ..GemmCase::new(129, 36, 131, layout)
        });
    }
    // Neither stride of A is 1: the general path of the transposing loader.
    cases.push(GemmCase {
        a_step: 2,
        ..GemmCase::new(65, 19, 70, OperandLayout::NN)
    });
    cases.push(GemmCase {
        beta: 1.0,
        c_pad: 4,
        batch: 2,
        ..GemmCase::new(256, 48, 136, OperandLayout::NN)
    });
    cases
}

/// Fewer, smaller cases for the variants that run every layout in one
/// kernel (naive, shared-tiled, register-blocked): two layouts, partial
/// tiles, a batch with alpha, beta and a strided C, general strides.
pub fn small_gemm_cases() -> Vec<GemmCase> {
    let mut cases = Vec::new();
    for layout in [OperandLayout::NN, OperandLayout::TT] {
        for (m, k, n) in [(1, 1, 1), (7, 5, 3), (33, 20, 65), (130, 0, 70)] {
            cases.push(GemmCase::new(m, k, n, layout));
        }
        cases.push(GemmCase {
            batch: 2,
            alpha: 0.5,
            beta: -2.0,
            c_pad: 3,
            c_offset: 5,
            ..GemmCase::new(40, 20, 36, layout)
        });
    }
    cases.push(GemmCase {
        a_step: 2,
        a_pad: 1,
        ..GemmCase::new(17, 9, 30, OperandLayout::NT)
    });
    cases
}

/// The cases a variant is checked on: every layout and the larger shapes
/// for the kernels compiled per layout, the small set for the others.
pub fn cases_for(variant: MatmulVariant) -> Vec<GemmCase> {
    match variant {
        MatmulVariant::Naive | MatmulVariant::SharedTiled | MatmulVariant::RegisterBlocked => {
            small_gemm_cases()
        }
        _ => gemm_cases(),
    }
}

/// Every variant in `variants` on its cases.
pub fn check_gemm_variants(gpu: &Arc<Gpu>, variants: &[MatmulVariant]) {
    let mut rng = Rng::new(1);
    for &variant in variants {
        for case in cases_for(variant) {
            check_gemm_case(gpu, &mut rng, variant, &case);
        }
    }
}

/// With beta = 0, C is written without being read: NaNs there vanish.
pub fn check_beta_zero_ignores_c(gpu: &Arc<Gpu>, variants: &[MatmulVariant]) {
    let mut rng = Rng::new(2);
    for &variant in variants {
        let (m, k, n) = (33, 20, 129);
        let a = random(&mut rng, m * k);
        let b = random(&mut rng, k * n);
        let mut c = upload(gpu, &vec![f32::NAN; m * n]);
        let (da, db) = (upload(gpu, &a), upload(gpu, &b));
        matmul(variant, m, k, n, &da, false, &db, false, &mut c).unwrap();
        assert!(
            download(&c).iter().all(|v| v.is_finite()),
            "{variant} leaked NaN from C"
        );
    }
}
