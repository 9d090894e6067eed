//! Every CUDA kernel against the CPU reference, on fresh random inputs and odd
//! sizes. Needs a GPU, so every test is ignored unless run with `--ignored`;
//! then each skips (printing why) when none is found, unless
//! GRADLAB_REQUIRE_GPU is set, as scripts/gpu-check.sh does.

use gradlab_cpu::{reference, Conv2dShape, Pool2dShape, Rng};
use gradlab_cuda::*;
use std::sync::Arc;

fn gpu() -> Option<Arc<Gpu>> {
    match Gpu::global() {
        Ok(g) => Some(g),
        Err(e) if std::env::var_os("GRADLAB_REQUIRE_GPU").is_some() => {
            panic!("GRADLAB_REQUIRE_GPU is set but: {e}")
        }
        Err(e) => {
            eprintln!("skipping: {e}");
            None
        }
    }
}

fn random(rng: &mut Rng, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.uniform(-1.0, 1.0) as f32).collect()
}

fn upload(gpu: &Arc<Gpu>, v: &[f32]) -> DeviceBuffer<f32> {
    DeviceBuffer::from_host(gpu, v).unwrap()
}

fn widen(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// Asserts |got - want| <= tol elementwise, naming the first bad index.
fn assert_close(what: &str, got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut worst = (0.0f64, 0usize);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let d = (g as f64 - w).abs();
        if d.is_nan() || d > tol {
            panic!("{what}: element {i}: got {g}, want {w} (|diff| {d:e} > {tol:e})");
        }
        if d > worst.0 {
            worst = (d, i);
        }
    }
    eprintln!("{what}: max |diff| {:e} at {}", worst.0, worst.1);
}

// ------------------------------------------------------------------ matmul --

struct GemmCase {
    m: usize,
    k: usize,
    n: usize,
    batch: usize,
    trans_a: bool,
    trans_b: bool,
    alpha: f32,
    beta: f32,
    /// Extra elements at the end of each C row (a strided output) and a leading offset.
    c_pad: usize,
    c_offset: usize,
}

fn gemm_case(m: usize, k: usize, n: usize) -> GemmCase {
    GemmCase {
        m,
        k,
        n,
        batch: 1,
        trans_a: false,
        trans_b: false,
        alpha: 1.0,
        beta: 0.0,
        c_pad: 0,
        c_offset: 0,
    }
}

fn run_gemm_case(gpu: &Arc<Gpu>, rng: &mut Rng, variant: MatmulVariant, c: &GemmCase) {
    let mut p = GemmProblem::new(c.m, c.k, c.n, c.trans_a, c.trans_b);
    p.batch = c.batch;
    p.alpha = c.alpha;
    p.beta = c.beta;
    let ldc = c.n + c.c_pad;
    p.c = MatrixLayout {
        offset: c.c_offset,
        row_stride: ldc,
        col_stride: 1,
        batch_stride: c.m * ldc,
    };
    let a = random(rng, c.batch * c.m * c.k);
    let b = random(rng, c.batch * c.k * c.n);
    let c0 = random(rng, c.c_offset + c.batch * c.m * ldc);
    let mut want = widen(&c0);
    for bi in 0..c.batch {
        let (a64, b64) = (widen(&a), widen(&b));
        let off_c = c.c_offset + bi * c.m * ldc;
        reference::gemm(
            c.m,
            c.k,
            c.n,
            c.alpha as f64,
            &a64[bi * p.a.batch_stride..],
            p.a.row_stride,
            p.a.col_stride,
            &b64[bi * p.b.batch_stride..],
            p.b.row_stride,
            p.b.col_stride,
            c.beta as f64,
            &mut want[off_c..],
            ldc,
            1,
        );
    }
    let (da, db) = (upload(gpu, &a), upload(gpu, &b));
    let mut dc = upload(gpu, &c0);
    gemm(variant, &p, &da, &db, &mut dc).unwrap();
    let got = dc.to_host().unwrap();
    let per_product = if variant.is_f32_exact() { 2e-6 } else { 1.5e-3 };
    let tol = per_product * (c.k as f64).max(1.0) * c.alpha.abs().max(1.0) as f64 + 1e-5;
    assert_close(
        &format!(
            "{variant} m{} k{} n{} batch{} tA{} tB{} alpha{} beta{} pad{} off{}",
            c.m, c.k, c.n, c.batch, c.trans_a, c.trans_b, c.alpha, c.beta, c.c_pad, c.c_offset
        ),
        &got,
        &want,
        tol,
    );
}

fn gemm_cases() -> Vec<GemmCase> {
    let mut cases = vec![
        gemm_case(1, 1, 1),
        gemm_case(7, 5, 3),
        gemm_case(17, 33, 9),
        gemm_case(64, 64, 64),
        gemm_case(127, 129, 65),
        gemm_case(128, 128, 128),
        gemm_case(256, 256, 256),
        gemm_case(257, 300, 131),
        gemm_case(130, 0, 70),
    ];
    for (ta, tb) in [(true, false), (false, true), (true, true)] {
        for (m, k, n) in [(256, 128, 256), (131, 77, 203)] {
            cases.push(GemmCase {
                trans_a: ta,
                trans_b: tb,
                ..gemm_case(m, k, n)
            });
        }
    }
    cases.push(GemmCase {
        batch: 3,
        alpha: 0.5,
        beta: -2.0,
        c_pad: 3,
        c_offset: 5,
        ..gemm_case(150, 70, 140)
    });
    cases.push(GemmCase {
        batch: 2,
        beta: 1.0,
        c_pad: 4,
        ..gemm_case(256, 96, 256)
    });
    cases
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn matmul_every_variant_matches_reference() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(1);
    for variant in MatmulVariant::ALL {
        for case in gemm_cases() {
            run_gemm_case(&gpu, &mut rng, variant, &case);
        }
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn matmul_with_beta_zero_ignores_nans_in_c() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(2);
    for variant in MatmulVariant::ALL {
        let (m, k, n) = (33, 20, 129);
        let a = random(&mut rng, m * k);
        let b = random(&mut rng, k * n);
        let mut c = upload(&gpu, &vec![f32::NAN; m * n]);
        matmul(
            variant,
            m,
            k,
            n,
            &upload(&gpu, &a),
            false,
            &upload(&gpu, &b),
            false,
            &mut c,
        )
        .unwrap();
        let got = c.to_host().unwrap();
        assert!(
            got.iter().all(|v| v.is_finite()),
            "{variant} leaked NaN from C"
        );
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn matmul_rejects_buffers_too_small_for_the_problem() {
    let Some(gpu) = gpu() else { return };
    let a = DeviceBuffer::<f32>::zeros(&gpu, 6).unwrap();
    let b = DeviceBuffer::<f32>::zeros(&gpu, 6).unwrap();
    let mut c = DeviceBuffer::<f32>::zeros(&gpu, 3).unwrap();
    let e = matmul(MatmulVariant::Naive, 2, 3, 2, &a, false, &b, false, &mut c).unwrap_err();
    assert!(e.to_string().contains("C buffer has 3"), "{e}");
}

// -------------------------------------------------------------------- conv --

fn conv_shapes() -> Vec<Conv2dShape> {
    let base = Conv2dShape {
        batch: 2,
        in_channels: 3,
        in_h: 11,
        in_w: 9,
        out_channels: 5,
        kernel_h: 3,
        kernel_w: 3,
        stride: (1, 1),
        padding: (0, 0),
        dilation: (1, 1),
        groups: 1,
    };
    vec![
        base,
        Conv2dShape {
            padding: (1, 2),
            ..base
        },
        Conv2dShape {
            stride: (2, 3),
            padding: (1, 1),
            ..base
        },
        Conv2dShape {
            dilation: (2, 1),
            padding: (2, 0),
            ..base
        },
        Conv2dShape {
            in_channels: 6,
            out_channels: 4,
            groups: 2,
            ..base
        },
        Conv2dShape {
            in_channels: 6,
            out_channels: 9,
            groups: 3,
            stride: (2, 2),
            ..base
        },
        Conv2dShape {
            kernel_h: 5,
            kernel_w: 2,
            padding: (2, 1),
            ..base
        },
        // LeNet's layers, small batch.
        Conv2dShape {
            batch: 3,
            in_channels: 3,
            in_h: 32,
            in_w: 32,
            out_channels: 6,
            kernel_h: 5,
            kernel_w: 5,
            ..base
        },
        Conv2dShape {
            batch: 3,
            in_channels: 6,
            in_h: 14,
            in_w: 14,
            out_channels: 16,
            kernel_h: 5,
            kernel_w: 5,
            ..base
        },
        // Wide enough for the 64- and 128-row tiles, and a long split K.
        Conv2dShape {
            batch: 4,
            in_channels: 40,
            in_h: 12,
            in_w: 12,
            out_channels: 48,
            padding: (1, 1),
            ..base
        },
        Conv2dShape {
            batch: 2,
            in_channels: 16,
            in_h: 7,
            in_w: 13,
            out_channels: 130,
            padding: (1, 1),
            ..base
        },
        Conv2dShape {
            batch: 33,
            in_channels: 8,
            in_h: 16,
            in_w: 16,
            out_channels: 8,
            padding: (1, 1),
            ..base
        },
        Conv2dShape {
            kernel_h: 1,
            kernel_w: 1,
            ..base
        },
    ]
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn conv2d_forward_and_backward_match_reference() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(3);
    for s in conv_shapes() {
        let x = random(&mut rng, s.input_len());
        let w = random(&mut rng, s.weight_len());
        let bias = random(&mut rng, s.out_channels);
        let dy = random(&mut rng, s.output_len());
        let (x64, w64, dy64) = (widen(&x), widen(&w), widen(&dy));
        let taps = (s.in_per_group() * s.kernel_h * s.kernel_w) as f64;
        let tol = 2e-6 * taps + 1e-5;

        let mut want = vec![0.0; s.output_len()];
        reference::conv2d_forward(&s, &x64, &w64, Some(&widen(&bias)), &mut want);
        let mut y = DeviceBuffer::zeros(&gpu, s.output_len()).unwrap();
        let (dx_, dw_) = (upload(&gpu, &x), upload(&gpu, &w));
        conv2d_forward(&s, &dx_, &dw_, Some(&upload(&gpu, &bias)), &mut y).unwrap();
        assert_close(
            &format!("conv fwd {s:?}"),
            &y.to_host().unwrap(),
            &want,
            tol,
        );

        let mut want = vec![0.0; s.input_len()];
        reference::conv2d_backward_data(&s, &dy64, &w64, &mut want);
        let mut gx = upload(&gpu, &vec![f32::NAN; s.input_len()]);
        let ddy = upload(&gpu, &dy);
        conv2d_backward_data(&s, &ddy, &dw_, &mut gx).unwrap();
        let tol_data = 2e-6 * (s.out_per_group() * s.kernel_h * s.kernel_w) as f64 + 1e-5;
        assert_close(
            &format!("conv bwd data {s:?}"),
            &gx.to_host().unwrap(),
            &want,
            tol_data,
        );

        let mut want = vec![0.0; s.weight_len()];
        reference::conv2d_backward_weight(&s, &x64, &dy64, &mut want);
        let mut gw = upload(&gpu, &vec![f32::NAN; s.weight_len()]);
        conv2d_backward_weight(&s, &dx_, &ddy, &mut gw).unwrap();
        let positions = (s.batch * s.out_h() * s.out_w()) as f64;
        let tol_w = 2e-6 * positions + 1e-5;
        assert_close(
            &format!("conv bwd weight {s:?}"),
            &gw.to_host().unwrap(),
            &want,
            tol_w,
        );

        let mut want = vec![0.0; s.out_channels];
        let plane = s.out_h() * s.out_w();
        for n in 0..s.batch {
            for (oc, acc) in want.iter_mut().enumerate() {
                let start = (n * s.out_channels + oc) * plane;
                *acc += dy64[start..start + plane].iter().sum::<f64>();
            }
        }
        let mut gb = DeviceBuffer::zeros(&gpu, s.out_channels).unwrap();
        conv2d_backward_bias(&s, &ddy, &mut gb).unwrap();
        assert_close(
            &format!("conv bwd bias {s:?}"),
            &gb.to_host().unwrap(),
            &want,
            tol_w,
        );
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn conv2d_backward_weight_is_deterministic() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(4);
    let s = bench::bench_conv_shapes(16)[2].1;
    let x = upload(&gpu, &random(&mut rng, s.input_len()));
    let dy = upload(&gpu, &random(&mut rng, s.output_len()));
    let mut first = DeviceBuffer::zeros(&gpu, s.weight_len()).unwrap();
    let mut second = DeviceBuffer::zeros(&gpu, s.weight_len()).unwrap();
    conv2d_backward_weight(&s, &x, &dy, &mut first).unwrap();
    conv2d_backward_weight(&s, &x, &dy, &mut second).unwrap();
    let (a, b) = (first.to_host().unwrap(), second.to_host().unwrap());
    assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
}

// -------------------------------------------------------------------- pool --

#[test]
#[ignore = "needs a CUDA GPU"]
fn max_pool2d_matches_reference_exactly() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(5);
    let base = Pool2dShape {
        batch: 2,
        channels: 3,
        in_h: 9,
        in_w: 11,
        kernel: (2, 2),
        stride: (2, 2),
        padding: (0, 0),
        dilation: (1, 1),
        ceil_mode: false,
    };
    let shapes = [
        base,
        Pool2dShape {
            kernel: (3, 3),
            stride: (2, 2),
            padding: (1, 1),
            ..base
        },
        Pool2dShape {
            kernel: (3, 2),
            stride: (1, 1),
            ..base
        },
        Pool2dShape {
            kernel: (2, 3),
            stride: (2, 1),
            dilation: (2, 2),
            ..base
        },
        Pool2dShape {
            kernel: (2, 2),
            stride: (2, 2),
            ceil_mode: true,
            ..base
        },
        Pool2dShape {
            kernel: (3, 3),
            stride: (2, 2),
            padding: (1, 1),
            ceil_mode: true,
            ..base
        },
    ];
    for s in shapes {
        // Few distinct values so that ties happen, plus a NaN.
        let mut x: Vec<f32> = (0..s.input_len()).map(|_| rng.below(5) as f32).collect();
        x[7] = f32::NAN;
        let dy = random(&mut rng, s.output_len());
        let mut want_y = vec![0.0f32; s.output_len()];
        let mut want_arg = vec![0usize; s.output_len()];
        reference::max_pool2d_forward(&s, &x, &mut want_y, &mut want_arg);
        let mut want_dx = vec![0.0f32; s.input_len()];
        reference::max_pool2d_backward(&s, &dy, &want_arg, &mut want_dx);

        let mut y = DeviceBuffer::zeros(&gpu, s.output_len()).unwrap();
        let mut arg = DeviceBuffer::<i64>::zeros(&gpu, s.output_len()).unwrap();
        max_pool2d_forward(&s, &upload(&gpu, &x), &mut y, &mut arg).unwrap();
        let mut dx = upload(&gpu, &vec![f32::NAN; s.input_len()]);
        max_pool2d_backward(&s, &upload(&gpu, &dy), &arg, &mut dx).unwrap();

        let got_y = y.to_host().unwrap();
        let got_arg = arg.to_host().unwrap();
        for o in 0..s.output_len() {
            assert_eq!(got_arg[o] as usize, want_arg[o], "{s:?} argmax[{o}]");
            assert!(
                got_y[o].to_bits() == want_y[o].to_bits(),
                "{s:?} y[{o}] {} vs {}",
                got_y[o],
                want_y[o]
            );
        }
        let got_dx = dx.to_host().unwrap();
        for (i, (g, w)) in got_dx.iter().zip(&want_dx).enumerate() {
            assert!(g.to_bits() == w.to_bits(), "{s:?} dx[{i}] {g} vs {w}");
        }
    }
}

// ------------------------------------------------------------- elementwise --

fn binary_ref(op: BinaryOp, a: f32, b: f32) -> f32 {
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Maximum => a.max(b),
        BinaryOp::ReluBackward => {
            if b > 0.0 {
                a
            } else {
                0.0
            }
        }
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn binary_ops_broadcast_over_strided_operands() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(6);
    let shape = [2, 3, 5, 7];
    // a: contiguous; b: shape [1, 3, 1, 7] broadcast; out: contiguous.
    let a: Vec<f32> = random(&mut rng, 210).iter().map(|v| v + 1.5).collect();
    let b: Vec<f32> = random(&mut rng, 21).iter().map(|v| v + 1.5).collect();
    let a_strides = contiguous_strides(&shape);
    let b_strides = [0, 7, 0, 1];
    let (da, db) = (upload(&gpu, &a), upload(&gpu, &b));
    let ops = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Maximum,
        BinaryOp::ReluBackward,
    ];
    for op in ops {
        let mut out = DeviceBuffer::zeros(&gpu, 210).unwrap();
        binary(
            op,
            &shape,
            &da,
            View::new(0, &a_strides),
            &db,
            View::new(0, &b_strides),
            &mut out,
            View::new(0, &a_strides),
        )
        .unwrap();
        let got = out.to_host().unwrap();
        let mut want = Vec::new();
        for i0 in 0..2 {
            for i1 in 0..3 {
                for i2 in 0..5 {
                    for i3 in 0..7 {
                        let av = a[((i0 * 3 + i1) * 5 + i2) * 7 + i3];
                        let bv = b[i1 * 7 + i3]
                            - if op == BinaryOp::ReluBackward {
                                1.5
                            } else {
                                0.0
                            };
                        want.push(binary_ref(op, av, bv) as f64);
                    }
                }
            }
        }
        assert_close(&format!("{op:?}"), &got, &want, 1e-5);
        if op == BinaryOp::ReluBackward {
            continue;
        }
        // In place, and through the contiguous kernel with b expanded.
        let expanded: Vec<f32> = want
            .iter()
            .enumerate()
            .map(|(i, _)| b[((i / 35) % 3) * 7 + i % 7])
            .collect();
        let mut inplace = upload(&gpu, &a);
        binary_inplace(
            op,
            &shape,
            &mut inplace,
            View::new(0, &a_strides),
            &db,
            View::new(0, &b_strides),
        )
        .unwrap();
        assert_close(
            &format!("{op:?} in place"),
            &inplace.to_host().unwrap(),
            &want,
            1e-5,
        );
        let mut out = DeviceBuffer::zeros(&gpu, 210).unwrap();
        binary_contiguous(op, &da, &upload(&gpu, &expanded), &mut out).unwrap();
        assert_close(
            &format!("{op:?} contiguous"),
            &out.to_host().unwrap(),
            &want,
            1e-5,
        );
    }
}

/// An op, its input, and the f64 function it must match.
type UnaryCase<'a> = (UnaryOp, &'a Vec<f32>, fn(f32) -> f64);

#[test]
#[ignore = "needs a CUDA GPU"]
fn unary_ops_fill_and_strided_copy() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(7);
    let x: Vec<f32> = random(&mut rng, 1000).iter().map(|v| v * 4.0).collect();
    let pos: Vec<f32> = x.iter().map(|v| v.abs() + 0.1).collect();
    let cases: Vec<UnaryCase> = vec![
        (UnaryOp::Neg, &x, |v| -(v as f64)),
        (UnaryOp::Exp, &x, |v| (v as f64).exp()),
        (UnaryOp::Log, &pos, |v| (v as f64).ln()),
        (UnaryOp::Sqrt, &pos, |v| (v as f64).sqrt()),
        (UnaryOp::Relu, &x, |v| (v as f64).max(0.0)),
        (UnaryOp::Sigmoid, &x, |v| 1.0 / (1.0 + (-(v as f64)).exp())),
        (UnaryOp::Tanh, &x, |v| (v as f64).tanh()),
        (UnaryOp::Abs, &x, |v| (v as f64).abs()),
        (UnaryOp::Pow(2.5), &pos, |v| (v as f64).powf(2.5)),
        (UnaryOp::AddScalar(0.25), &x, |v| v as f64 + 0.25),
        (UnaryOp::MulScalar(-3.0), &x, |v| v as f64 * -3.0),
        (UnaryOp::GtMask(0.25), &x, |v| {
            if v as f64 > 0.25 {
                1.0
            } else {
                0.0
            }
        }),
    ];
    for (op, input, f) in cases {
        let want: Vec<f64> = input.iter().map(|&v| f(v)).collect();
        let mut out = DeviceBuffer::zeros(&gpu, input.len()).unwrap();
        unary(op, &upload(&gpu, input), &mut out).unwrap();
        let got = out.to_host().unwrap();
        for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g as f64 - w).abs() <= 2e-6 * w.abs().max(1.0),
                "{op:?}[{i}]: {g} vs {w}"
            );
        }
        let mut inplace = upload(&gpu, input);
        unary_inplace(op, &mut inplace).unwrap();
        assert_eq!(inplace.to_host().unwrap(), got, "{op:?} in place");
    }

    let mut buf = DeviceBuffer::zeros(&gpu, 333).unwrap();
    fill(&mut buf, 2.5).unwrap();
    assert!(buf.to_host().unwrap().iter().all(|&v| v == 2.5));

    // Permute a [3, 4, 5] tensor to [5, 3, 4] and make it contiguous.
    let src: Vec<f32> = (0..60).map(|v| v as f32).collect();
    let mut dst = DeviceBuffer::zeros(&gpu, 61).unwrap();
    let dst_strides = contiguous_strides(&[5, 3, 4]);
    copy_strided(
        &[5, 3, 4],
        &upload(&gpu, &src),
        View::new(0, &[1, 20, 5]),
        &mut dst,
        View::new(1, &dst_strides),
    )
    .unwrap();
    let got = dst.to_host().unwrap();
    for k in 0..5 {
        for i in 0..3 {
            for j in 0..4 {
                assert_eq!(got[1 + (k * 3 + i) * 4 + j], src[(i * 4 + j) * 5 + k]);
            }
        }
    }
    assert_eq!(got[0], 0.0, "element before the view untouched");
}

// ------------------------------------------------------ reductions, losses --

#[test]
#[ignore = "needs a CUDA GPU"]
fn reductions_match_reference() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(8);
    for (outer, len, inner) in [
        (1, 1, 1),
        (7, 1000, 1),
        (3, 5, 129),
        (1, 70_000, 1),
        (1, 256, 10),
        (300, 33, 1),
    ] {
        let x = random(&mut rng, outer * len * inner);
        let dx = upload(&gpu, &x);
        for op in [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max, ReduceOp::Min] {
            let mut want = vec![0.0f64; outer * inner];
            for o in 0..outer {
                for i in 0..inner {
                    let vals = (0..len).map(|j| x[(o * len + j) * inner + i] as f64);
                    want[o * inner + i] = match op {
                        ReduceOp::Sum => vals.sum(),
                        ReduceOp::Mean => vals.sum::<f64>() / len as f64,
                        ReduceOp::Max => vals.fold(f64::NEG_INFINITY, f64::max),
                        ReduceOp::Min => vals.fold(f64::INFINITY, f64::min),
                    };
                }
            }
            let mut out = DeviceBuffer::zeros(&gpu, outer * inner).unwrap();
            reduce(op, &dx, outer, len, inner, &mut out).unwrap();
            let tol = 1e-6 * (len as f64).sqrt() * 4.0 + 1e-6;
            assert_close(
                &format!("{op:?} {outer}x{len}x{inner}"),
                &out.to_host().unwrap(),
                &want,
                tol,
            );
        }
    }
}

fn log_softmax_ref(row: &[f32]) -> Vec<f64> {
    let m = row
        .iter()
        .map(|&v| v as f64)
        .fold(f64::NEG_INFINITY, f64::max);
    let lse = m + row.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
    row.iter().map(|&v| v as f64 - lse).collect()
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn softmax_and_cross_entropy_match_reference() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(9);
    for (rows, cols) in [(1, 1), (5, 10), (37, 1000), (3, 3000)] {
        let x: Vec<f32> = random(&mut rng, rows * cols)
            .iter()
            .map(|v| v * 8.0)
            .collect();
        let targets: Vec<i64> = (0..rows).map(|_| rng.below(cols) as i64).collect();
        let want_log: Vec<f64> = x.chunks(cols).flat_map(log_softmax_ref).collect();
        let dx = upload(&gpu, &x);
        let mut out = DeviceBuffer::zeros(&gpu, rows * cols).unwrap();
        log_softmax_rows(&dx, rows, cols, &mut out).unwrap();
        assert_close("log_softmax", &out.to_host().unwrap(), &want_log, 1e-5);
        softmax_rows(&dx, rows, cols, &mut out).unwrap();
        let want_p: Vec<f64> = want_log.iter().map(|v| v.exp()).collect();
        assert_close("softmax", &out.to_host().unwrap(), &want_p, 1e-6);

        let dt = DeviceBuffer::from_host(&gpu, &targets).unwrap();
        let mut losses = DeviceBuffer::zeros(&gpu, rows).unwrap();
        cross_entropy_forward(&dx, &dt, rows, cols, &mut losses).unwrap();
        let want_loss: Vec<f64> = (0..rows)
            .map(|r| -want_log[r * cols + targets[r] as usize])
            .collect();
        assert_close(
            "cross_entropy",
            &losses.to_host().unwrap(),
            &want_loss,
            1e-5,
        );

        // Mean reduction: one upstream gradient, scale 1/rows.
        let g = upload(&gpu, &[0.75]);
        let mut grad = DeviceBuffer::zeros(&gpu, rows * cols).unwrap();
        cross_entropy_backward(&dx, &dt, &g, 0, 1.0 / rows as f32, rows, cols, &mut grad).unwrap();
        let want_grad: Vec<f64> = (0..rows * cols)
            .map(|i| {
                let onehot = if i % cols == targets[i / cols] as usize {
                    1.0
                } else {
                    0.0
                };
                (want_p[i] - onehot) * 0.75 / rows as f64
            })
            .collect();
        assert_close(
            "cross_entropy backward",
            &grad.to_host().unwrap(),
            &want_grad,
            1e-6,
        );
    }
    // An out-of-range target is an error, reported at the next synchronisation
    // (on a device of its own, so that no other test's synchronisation takes it).
    let private = Gpu::new(0).unwrap_or(gpu);
    let x = upload(&private, &[0.0, 1.0, 2.0]);
    let bad = DeviceBuffer::from_host(&private, &[3i64]).unwrap();
    let mut loss = DeviceBuffer::zeros(&private, 1).unwrap();
    cross_entropy_forward(&x, &bad, 1, 3, &mut loss).unwrap();
    let e = loss.to_host().unwrap_err().to_string();
    assert!(e.contains("target 3 at row 0 is out of range"), "{e}");
}

// ------------------------------------------------------------------- optim --

// SGD and Adam on the GPU: `gradlab-cuda-harness/tests/gpu_checks.rs` (gpu_sgd_and_adam).
// --------------------------------------------------------------- allocator --

#[test]
#[ignore = "needs a CUDA GPU"]
fn allocator_reuses_blocks_across_steps() {
    let Some(gpu) = gpu() else { return };
    // A private device so other tests' traffic does not move the counters.
    let gpu = Gpu::new(0).unwrap_or(gpu);
    let sizes = [1000usize, 4096, 100_000, 3_000_000, 17];
    let step = |gpu: &Arc<Gpu>| {
        let bufs: Vec<_> = sizes
            .iter()
            .map(|&n| DeviceBuffer::<f32>::zeros(gpu, n).unwrap())
            .collect();
        drop(bufs);
    };
    step(&gpu);
    let after_first = gpu.memory_stats();
    for _ in 0..5 {
        step(&gpu);
    }
    let after = gpu.memory_stats();
    assert_eq!(
        after.driver_allocs, after_first.driver_allocs,
        "steps after the first must not call the driver"
    );
    assert!(after.cache_hits >= after_first.cache_hits + 5 * sizes.len() as u64);
    assert_eq!(after.bytes_in_use, after_first.bytes_in_use);
    let v: Vec<f32> = (0..77).map(|i| i as f32).collect();
    let b = DeviceBuffer::from_host(&gpu, &v).unwrap();
    assert_eq!(b.try_clone().unwrap().to_host().unwrap(), v);
    drop(b);
    gpu.empty_cache().unwrap();
    assert_eq!(gpu.memory_stats().bytes_cached, 0);
}
