//! The device contract: every primitive of the `cpu` backend agrees with
//! the `reference` backend (the plain loops) on random f64 and f32 inputs,
//! strided views included, and the coverage table in the docs is the one
//! the backends report.

use gradlab_tensor::backend::{coverage, with_kernels, Backend, Kernels, Primitive};
use gradlab_tensor::optim::{AdamConfig, SgdConfig};
use gradlab_tensor::{Conv2dParams, DType, MaxPool2dParams, Reduction, Rng, Tensor};

/// Cross-entropy options with label smoothing `eps`, the rest PyTorch's defaults.
fn smoothed(eps: f64) -> gradlab_tensor::CrossEntropyOptions {
    gradlab_tensor::CrossEntropyOptions {
        label_smoothing: eps,
        ..Default::default()
    }
}

/// Runs `f` on both host backends and returns the two results.
fn both<R>(f: impl Fn() -> R) -> (R, R) {
    (
        with_kernels(Kernels::Reference, &f),
        with_kernels(Kernels::Fast, &f),
    )
}

/// Norm-wise relative difference `max |a - b| / max |b|` (0 for two zero tensors).
fn rel_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.shape(), b.shape());
    assert_eq!(a.dtype(), b.dtype());
    let (a, b) = (a.to_vec_f64().unwrap(), b.to_vec_f64().unwrap());
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let diff = a
        .iter()
        .zip(&b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
    if scale == 0.0 {
        diff
    } else {
        diff / scale
    }
}

fn tolerance(dtype: DType) -> f64 {
    // The fast kernels sum in another order (blocked GEMM, eight-lane
    // partial sums, threads); nothing else differs.
    match dtype {
        DType::F64 => 1e-12,
        _ => 1e-5,
    }
}

fn assert_close(what: &str, pair: (Vec<Tensor>, Vec<Tensor>)) {
    let (reference, fast) = pair;
    assert_eq!(reference.len(), fast.len(), "{what}");
    for (i, (r, f)) in reference.iter().zip(&fast).enumerate() {
        let d = rel_diff(f, r);
        assert!(
            d <= tolerance(r.dtype()),
            "{what} (result {i}, {}): cpu differs from reference by {d:e}",
            r.dtype()
        );
    }
}

fn randn(shape: &[usize], dtype: DType, seed: u64) -> Tensor {
    Tensor::randn(shape.to_vec(), 0.0, 1.0, dtype, &mut Rng::new(seed))
}

#[test]
fn every_primitive_of_the_cpu_backend_matches_the_reference() {
    for dtype in [DType::F64, DType::F32] {
        let x = randn(&[2, 3, 7, 6], dtype, 1);
        let y = randn(&[3, 1, 6], dtype, 2);
        // A transposed, narrowed view of x's shape: the strided paths run too.
        let view = randn(&[6, 7, 3, 4], dtype, 3)
            .permute(&[3, 2, 1, 0])
            .unwrap()
            .narrow(0, 1, 2)
            .unwrap();
        assert_close(
            "copy, cast",
            both(|| vec![view.copy().unwrap(), view.to_dtype(DType::F64).unwrap()]),
        );
        assert_close(
            "unary",
            both(|| {
                vec![
                    view.exp().unwrap(),
                    view.relu().unwrap(),
                    x.tanh().unwrap(),
                    x.gt_mask(0.1).unwrap(),
                ]
            }),
        );
        assert_close(
            "binary (broadcast, strided)",
            both(|| {
                vec![
                    x.add(&y).unwrap(),
                    x.mul(&y).unwrap(),
                    view.maximum(&x).unwrap(),
                    x.relu_backward(&x.neg().unwrap()).unwrap(),
                ]
            }),
        );
        assert_close(
            "sum, mean, max_dim",
            both(|| {
                let (m, i) = x.max_dim(2, false).unwrap();
                vec![
                    x.sum(Some(&[0, 2, 3]), true).unwrap(),
                    view.sum(Some(&[1]), false).unwrap(),
                    x.mean(None, false).unwrap(),
                    m,
                    i.to_dtype(dtype).unwrap(),
                ]
            }),
        );
        let index = Tensor::from_vec(vec![0i64, 6, 3, 1, 2, 5], [1, 1, 6, 1]).unwrap();
        let src = randn(&[1, 1, 6, 1], dtype, 4);
        assert_close(
            "gather, scatter",
            both(|| {
                vec![
                    x.narrow(0, 0, 1)
                        .unwrap()
                        .narrow(1, 0, 1)
                        .unwrap()
                        .narrow(3, 0, 1)
                        .unwrap()
                        .gather_along(2, &index)
                        .unwrap(),
                    src.scatter_add_along(2, &index, &[1, 1, 7, 1].into())
                        .unwrap(),
                ]
            }),
        );
        let a = randn(&[2, 5, 4], dtype, 5);
        let b = randn(&[4, 3], dtype, 6);
        assert_close(
            "matmul",
            both(|| {
                vec![
                    a.matmul(&b).unwrap(),
                    b.t().unwrap().matmul(&a.transpose(1, 2).unwrap()).unwrap(),
                ]
            }),
        );
        let w = randn(&[4, 3, 3, 2], dtype, 7);
        let bias = randn(&[4], dtype, 8);
        let p = Conv2dParams {
            stride: (2, 1),
            padding: (1, 0),
            dilation: (1, 2),
            groups: 1,
        };
        assert_close(
            "conv2d and its gradients",
            both(|| {
                let out = x.conv2d(&w, Some(&bias), p).unwrap();
                let g = randn(out.dims(), dtype, 9);
                vec![
                    g.conv2d_backward_data(&w, x.shape(), p).unwrap(),
                    g.conv2d_backward_weight(&x, w.shape(), p).unwrap(),
                    out,
                ]
            }),
        );
        let pool = MaxPool2dParams {
            kernel: (3, 2),
            stride: (2, 2),
            padding: (1, 1),
            dilation: (1, 1),
            ceil_mode: true,
        };
        assert_close(
            "max_pool2d and its adjoints",
            both(|| {
                let (out, arg) = x.max_pool2d(pool).unwrap();
                let g = randn(out.dims(), dtype, 10);
                vec![
                    g.max_pool2d_backward(&arg, x.shape(), pool).unwrap(),
                    x.mul_scalar(2.0)
                        .unwrap()
                        .max_pool2d_gather(&arg, pool)
                        .unwrap(),
                    arg.to_dtype(dtype).unwrap(),
                    out,
                ]
            }),
        );
        let gamma = randn(&[3], dtype, 11);
        let beta = randn(&[3], dtype, 12);
        assert_close(
            "batch norm",
            both(|| {
                let (out, mean, var) = x
                    .batch_norm2d_train(Some(&gamma), Some(&beta), 1e-5)
                    .unwrap();
                let g = randn(out.dims(), dtype, 13);
                let (dx, dw, db) = g
                    .batch_norm2d_backward(&x, &mean, &var, Some(&gamma), 1e-5)
                    .unwrap();
                let eval = x
                    .batch_norm2d_inference(&mean, &var, Some(&gamma), None, 1e-5)
                    .unwrap();
                vec![out, mean, var, dx, dw, db, eval]
            }),
        );
        // Channel 0 all through ReLU, channel 1 all cut, channel 2 mixed.
        let shifts = Tensor::from_vec(vec![50.0, -50.0, 0.0], [3])
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        let beta_cut = beta.add(&shifts).unwrap();
        assert_close(
            "batch norm + ReLU",
            both(|| {
                let mut out = vec![];
                for b in [Some(&beta_cut), None] {
                    let (y, mean, var) = x.batch_norm2d_relu_train(Some(&gamma), b, 1e-5).unwrap();
                    let g = randn(y.dims(), dtype, 16);
                    let (dx, dw, db) = g
                        .batch_norm2d_relu_backward(&x, &mean, &var, Some(&gamma), b, 1e-5)
                        .unwrap();
                    out.extend([y, mean, var, dx, dw, db]);
                }
                out
            }),
        );
        let logits = randn(&[5, 4], dtype, 14);
        let target = Tensor::from_vec(vec![0i64, 3, 1, 1, 2], [5]).unwrap();
        assert_close(
            "softmax and cross-entropy",
            both(|| {
                let g = randn(&[5], dtype, 15);
                vec![
                    x.softmax(1).unwrap(),
                    x.log_softmax(3).unwrap(),
                    logits.cross_entropy(&target, Reduction::Mean, 0.1).unwrap(),
                    logits.cross_entropy(&target, Reduction::Sum, 0.0).unwrap(),
                    logits
                        .cross_entropy_backward(&target, &smoothed(0.2), &g)
                        .unwrap(),
                    Tensor::one_hot(&target, 4, dtype).unwrap(),
                ]
            }),
        );
        // Class weights, ignored targets (the default -100 and a class),
        // smoothing, per-pixel targets and every reduction.
        let weight = randn(&[4], dtype, 17)
            .abs()
            .unwrap()
            .add_scalar(0.1)
            .unwrap();
        let ignoring = Tensor::from_vec(vec![0i64, -100, 3, 1, 2], [5]).unwrap();
        let spatial = randn(&[2, 4, 3, 2], dtype, 18);
        let pixels =
            Tensor::from_vec(vec![0i64, 3, 1, 1, 2, -100, 2, 0, 3, 1, 1, 0], [2, 3, 2]).unwrap();
        assert_close(
            "cross-entropy with weights, ignored targets, per pixel",
            both(|| {
                let g = randn(&[5], dtype, 19);
                let mut out = Vec::new();
                // With class 1 ignored, -100 is no longer a valid target.
                for (ignore_index, eps, ignoring) in [
                    (-100, 0.0, &ignoring),
                    (-100, 0.3, &ignoring),
                    (1, 0.1, &target),
                ] {
                    let opts = gradlab_tensor::CrossEntropyOptions {
                        ignore_index,
                        label_smoothing: eps,
                        weight: Some(weight.clone()),
                        ..Default::default()
                    };
                    let (losses, total) = logits.cross_entropy_rows(ignoring, &opts).unwrap();
                    out.extend([losses, total]);
                    out.push(logits.cross_entropy_backward(ignoring, &opts, &g).unwrap());
                    out.push(Tensor::cross_entropy_target(ignoring, 4, &opts, dtype).unwrap());
                    if ignore_index == -100 {
                        for reduction in [Reduction::None, Reduction::Mean, Reduction::Sum] {
                            let opts = gradlab_tensor::CrossEntropyOptions {
                                reduction,
                                ..opts.clone()
                            };
                            out.push(spatial.cross_entropy_with(&pixels, &opts).unwrap());
                        }
                    }
                }
                out
            }),
        );
        assert_close(
            "cat, embed",
            both(|| {
                vec![
                    Tensor::cat(&[&x, &view, &y.broadcast_to([2, 3, 7, 6]).unwrap()], 1).unwrap(),
                    view.embed(1, 2, 9).unwrap(),
                ]
            }),
        );
        assert_close(
            "sgd and adam steps",
            both(|| {
                let g = randn(&[2, 3, 7, 6], dtype, 16);
                let mut p = x.clone();
                let mut buf = x.zeros_like().unwrap();
                let sgd = SgdConfig::new(0.1)
                    .with_momentum(0.9)
                    .with_weight_decay(0.01);
                p.sgd_step_(&g, Some((&mut buf, true)), &sgd).unwrap();
                p.sgd_step_(&g, Some((&mut buf, false)), &sgd).unwrap();
                let (mut m, mut v) = (x.zeros_like().unwrap(), x.zeros_like().unwrap());
                let mut q = x.clone();
                let adam = AdamConfig::adamw(0.01);
                q.adam_step_(&g, &mut m, &mut v, 1, &adam).unwrap();
                q.adam_step_(&g, &mut m, &mut v, 2, &adam).unwrap();
                vec![p, buf, q, m, v]
            }),
        );
    }
}

#[test]
fn the_coverage_table_in_the_docs_is_the_backends_own() {
    let table = coverage();
    println!("{table}");
    assert_eq!(
        table,
        include_str!("../../src/backend/coverage.txt"),
        "the backends' gaps changed: write this table into crates/gradlab-tensor/src/backend/coverage.txt"
    );
    let reference: &dyn Backend = &gradlab_tensor::backend::reference::Reference;
    let cpu: &dyn Backend = &gradlab_tensor::backend::cpu::Cpu;
    assert!(reference.gaps().is_empty() && cpu.gaps().is_empty());
    assert_eq!(Primitive::ALL.len(), table.lines().count() - 2);
}

/// Every `unsupported(self, Primitive::X)` in the CUDA backend names a
/// primitive listed in its gaps, and every gap is returned somewhere, so
/// the table cannot claim what the code does not do (checked from the
/// source, since no GPU is needed to read it).
#[test]
fn the_cuda_gaps_are_the_ones_its_methods_return() {
    let source = include_str!("../../src/backend/cuda/contract.rs");
    let returned: Vec<&str> = source
        .match_indices("unsupported(self, Primitive::")
        .map(|(i, m)| {
            let rest = &source[i + m.len()..];
            &rest[..rest.find(')').unwrap()]
        })
        .collect();
    let gaps: Vec<String> = gradlab_tensor::backend::cuda::GAPS
        .iter()
        .map(|(p, _)| format!("{p:?}"))
        .collect();
    let mut r: Vec<String> = returned.iter().map(|s| s.to_string()).collect();
    r.sort();
    let mut g = gaps.clone();
    g.sort();
    assert_eq!(r, g);
}

#[test]
fn an_unsupported_primitive_names_itself_and_the_backend() {
    let cuda = gradlab_tensor::backend::cuda::Cuda;
    let e = gradlab_tensor::backend::unsupported(&cuda, Primitive::MaxPool2dGather);
    assert_eq!(
        e.to_string(),
        "max_pool2d_gather: not supported by the cuda backend (no gather kernel (needed only by second derivatives of max_pool2d))"
    );
}
