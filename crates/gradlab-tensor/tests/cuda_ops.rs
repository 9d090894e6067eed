//! Every tensor op on CUDA against the same op on the CPU, on views as well
//! as dense tensors. Needs a GPU, so every test is ignored unless run with
//! `--ignored`; then each skips (printing why) when none is found, unless
//! GRADLAB_REQUIRE_GPU is set, as scripts/gpu-check.sh does.

use gradlab_tensor::{
    Conv2dParams, DType, Device, MaxPool2dParams, Reduction, Result, Rng, Tensor, TensorError,
    UnaryOp,
};

const CUDA: Device = Device::Cuda(0);

fn gpu_ready() -> bool {
    match Tensor::zeros_on([1], DType::F32, CUDA) {
        Ok(_) => true,
        Err(e) if std::env::var_os("GRADLAB_REQUIRE_GPU").is_some() => {
            panic!("GRADLAB_REQUIRE_GPU is set but: {e}")
        }
        Err(e) => {
            eprintln!("skipping: {e}");
            false
        }
    }
}

fn rand(rng: &mut Rng, shape: &[usize]) -> Tensor {
    Tensor::rand_uniform(shape.to_vec(), -1.0, 1.0, DType::F32, rng)
}

fn assert_close(what: &str, got: &Tensor, want: &Tensor, tol: f64) {
    assert_eq!(got.device(), CUDA, "{what}: result left the GPU");
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    assert_eq!(got.dtype(), want.dtype(), "{what}: dtype");
    let (g, w) = (got.to_vec_f64().unwrap(), want.to_vec_f64().unwrap());
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        let ok = (a - b).abs() <= tol * (1.0 + b.abs()) || (a.is_nan() && b.is_nan());
        assert!(ok, "{what}: element {i}: cuda {a}, cpu {b}");
    }
}

/// Runs `f` on the CPU inputs and on their CUDA copies and compares.
fn same_on_both(
    what: &str,
    inputs: Vec<Tensor>,
    tol: f64,
    f: impl Fn(&[Tensor]) -> Result<Tensor>,
) {
    let want = f(&inputs).unwrap_or_else(|e| panic!("{what} on the CPU: {e}"));
    let on_gpu: Vec<Tensor> = inputs.iter().map(|t| t.to_device(CUDA).unwrap()).collect();
    let got = f(&on_gpu).unwrap_or_else(|e| panic!("{what} on CUDA: {e}"));
    assert_close(what, &got, &want, tol);
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn elementwise_ops_on_views_and_broadcasts() {
    if !gpu_ready() {
        return;
    }
    let mut rng = Rng::new(1);
    let x = rand(&mut rng, &[3, 4, 5]);
    let unary = [
        UnaryOp::Neg,
        UnaryOp::Exp,
        UnaryOp::Relu,
        UnaryOp::Sigmoid,
        UnaryOp::Tanh,
        UnaryOp::Abs,
        UnaryOp::AddScalar(0.5),
        UnaryOp::MulScalar(-2.0),
        UnaryOp::GtMask(0.0),
        UnaryOp::GtMask(0.25),
    ];
    for op in unary {
        same_on_both(op.name(), vec![x.clone()], 1e-6, |t| {
            t[0].transpose(0, 2)?.unary(op)
        });
    }
    let positive = x.abs().unwrap().add_scalar(0.1).unwrap();
    for op in [UnaryOp::Log, UnaryOp::Sqrt, UnaryOp::Pow(1.5)] {
        same_on_both(op.name(), vec![positive.clone()], 1e-6, |t| t[0].unary(op));
    }
    let row = rand(&mut rng, &[4, 1]);
    for op in ["add", "sub", "mul", "div", "maximum"] {
        same_on_both(op, vec![x.clone(), row.clone()], 1e-6, |t| {
            let b = &t[1];
            match op {
                "add" => t[0].add(b),
                "sub" => t[0].narrow(2, 1, 3)?.sub(&b.broadcast_to([3, 4, 3])?),
                "mul" => t[0].mul(b),
                "div" => t[0].div(&b.abs()?.add_scalar(0.5)?),
                _ => t[0].permute(&[1, 0, 2])?.maximum(&b.reshape([4, 1, 1])?),
            }
        });
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn reductions_and_max() {
    if !gpu_ready() {
        return;
    }
    let mut rng = Rng::new(2);
    let x = rand(&mut rng, &[4, 3, 5, 2]);
    same_on_both("sum all", vec![x.clone()], 1e-5, |t| t[0].sum_all());
    same_on_both("sum [1]", vec![x.clone()], 1e-5, |t| {
        t[0].sum(Some(&[1]), false)
    });
    same_on_both("sum [0, 2, 3] keepdim", vec![x.clone()], 1e-5, |t| {
        t[0].sum(Some(&[0, 2, 3]), true)
    });
    same_on_both("mean [1, 2] of a view", vec![x.clone()], 1e-5, |t| {
        t[0].transpose(1, 3)?.mean(Some(&[1, 2]), false)
    });
    same_on_both("sum_to", vec![x.clone()], 1e-5, |t| {
        t[0].sum_to(&[3, 1, 2].into())
    });
    for dim in [0, 1, 3] {
        same_on_both("max_dim values", vec![x.clone()], 0.0, |t| {
            Ok(t[0].max_dim(dim, false)?.0)
        });
        same_on_both("max_dim indices", vec![x.clone()], 0.0, |t| {
            Ok(t[0].max_dim(dim, true)?.1)
        });
        same_on_both(
            "scatter_add_along (max backward)",
            vec![x.clone()],
            1e-6,
            |t| {
                let (values, idx) = t[0].max_dim(dim, true)?;
                values.scatter_add_along(dim, &idx, t[0].shape())
            },
        );
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn matmul_with_strided_and_batched_operands() {
    if !gpu_ready() {
        return;
    }
    let mut rng = Rng::new(3);
    let (a, b) = (rand(&mut rng, &[7, 5]), rand(&mut rng, &[6, 5]));
    same_on_both("a @ b.t()", vec![a.clone(), b.clone()], 1e-5, |t| {
        t[0].matmul(&t[1].t()?)
    });
    same_on_both("a.t() @ a", vec![a.clone()], 1e-5, |t| {
        t[0].t()?.matmul(&t[0])
    });
    let (ba, bb) = (rand(&mut rng, &[2, 3, 4, 5]), rand(&mut rng, &[5, 6]));
    same_on_both(
        "batched @ shared",
        vec![ba.clone(), bb.clone()],
        1e-5,
        |t| t[0].matmul(&t[1]),
    );
    let (ca, cb) = (rand(&mut rng, &[2, 1, 4, 5]), rand(&mut rng, &[3, 5, 2]));
    same_on_both("broadcast batch", vec![ca, cb], 1e-5, |t| {
        t[0].matmul(&t[1])
    });
    let v = rand(&mut rng, &[5]);
    same_on_both("matrix @ vector", vec![a.clone(), v.clone()], 1e-5, |t| {
        t[0].matmul(&t[1])
    });
    same_on_both("vector @ vector", vec![v.clone()], 1e-5, |t| {
        t[0].matmul(&t[0])
    });
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn conv_and_pool_with_their_gradients() {
    if !gpu_ready() {
        return;
    }
    let mut rng = Rng::new(4);
    let (x, w, bias) = (
        rand(&mut rng, &[2, 3, 9, 8]),
        rand(&mut rng, &[4, 3, 3, 3]),
        rand(&mut rng, &[4]),
    );
    let p = Conv2dParams {
        stride: (2, 1),
        padding: (1, 1),
        ..Conv2dParams::default()
    };
    same_on_both(
        "conv2d",
        vec![x.clone(), w.clone(), bias.clone()],
        1e-5,
        |t| t[0].conv2d(&t[1], Some(&t[2]), p),
    );
    let g = rand(&mut rng, &[2, 4, 5, 8]);
    same_on_both(
        "conv2d_backward_data",
        vec![g.clone(), w.clone()],
        1e-5,
        |t| t[0].conv2d_backward_data(&t[1], &[2, 3, 9, 8].into(), p),
    );
    same_on_both("conv2d_backward_weight", vec![g, x.clone()], 1e-4, |t| {
        t[0].conv2d_backward_weight(&t[1], &[4, 3, 3, 3].into(), p)
    });
    let pool = MaxPool2dParams::square(2);
    same_on_both("max_pool2d", vec![x.clone()], 0.0, |t| {
        Ok(t[0].max_pool2d(pool)?.0)
    });
    same_on_both("max_pool2d argmax", vec![x.clone()], 0.0, |t| {
        Ok(t[0].max_pool2d(pool)?.1)
    });
    same_on_both("max_pool2d_backward", vec![x.clone()], 0.0, |t| {
        let (y, arg) = t[0].max_pool2d(pool)?;
        y.mul_scalar(3.0)?
            .max_pool2d_backward(&arg, t[0].shape(), pool)
    });
    let on_gpu = x.to_device(CUDA).unwrap();
    let (y, arg) = on_gpu.max_pool2d(pool).unwrap();
    let err = y.max_pool2d_gather(&arg, pool).unwrap_err();
    assert!(err.to_string().contains("not supported on cuda:0"), "{err}");
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn softmax_and_cross_entropy() {
    if !gpu_ready() {
        return;
    }
    let mut rng = Rng::new(5);
    let logits = rand(&mut rng, &[6, 10]).mul_scalar(3.0).unwrap();
    let target = Tensor::from_vec(vec![0i64, 9, 3, 3, 7, 1], [6]).unwrap();
    same_on_both("softmax", vec![logits.clone()], 1e-6, |t| t[0].softmax(1));
    same_on_both("log_softmax dim 0", vec![logits.clone()], 1e-6, |t| {
        t[0].log_softmax(0)
    });
    for (reduction, eps) in [
        (Reduction::Mean, 0.0),
        (Reduction::Sum, 0.0),
        (Reduction::Mean, 0.1),
    ] {
        same_on_both(
            "cross_entropy",
            vec![logits.clone(), target.clone()],
            1e-5,
            |t| t[0].cross_entropy(&t[1], reduction, eps),
        );
    }
    let smoothed = gradlab_tensor::CrossEntropyOptions {
        label_smoothing: 0.1,
        ..Default::default()
    };
    same_on_both("cross_entropy_target", vec![target.clone()], 1e-7, |t| {
        Tensor::cross_entropy_target(&t[0], 10, &smoothed, DType::F32)
    });
    // Class weights, ignored targets (-100 and a class), per-pixel targets.
    let weight = rand(&mut rng, &[10])
        .abs()
        .unwrap()
        .add_scalar(0.1)
        .unwrap();
    let ignoring = Tensor::from_vec(vec![0i64, -100, 3, 3, 7, 1], [6]).unwrap();
    let spatial = rand(&mut rng, &[2, 10, 3]);
    let pixels = Tensor::from_vec(vec![0i64, 9, -100, 3, 7, 1], [2, 3]).unwrap();
    for reduction in [Reduction::None, Reduction::Mean, Reduction::Sum] {
        for (ignore_index, eps) in [(-100, 0.0), (-100, 0.2), (3, 0.1)] {
            let opts = |w: &Tensor| gradlab_tensor::CrossEntropyOptions {
                reduction,
                ignore_index,
                label_smoothing: eps,
                weight: Some(w.clone()),
            };
            same_on_both(
                "cross_entropy with weights",
                vec![logits.clone(), ignoring.clone(), weight.clone()],
                1e-5,
                |t| t[0].cross_entropy_with(&t[1], &opts(&t[2])),
            );
            same_on_both(
                "cross_entropy per pixel",
                vec![spatial.clone(), pixels.clone(), weight.clone()],
                1e-5,
                |t| t[0].cross_entropy_with(&t[1], &opts(&t[2])),
            );
            same_on_both(
                "cross_entropy_backward with weights",
                vec![
                    logits.clone(),
                    ignoring.clone(),
                    weight.clone(),
                    rand(&mut Rng::new(9), &[6]),
                ],
                1e-5,
                |t| t[0].cross_entropy_backward(&t[1], &opts(&t[2]), &t[3]),
            );
        }
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn copies_views_and_constructors() {
    if !gpu_ready() {
        return;
    }
    let mut rng = Rng::new(6);
    let x = rand(&mut rng, &[3, 4, 5]);
    same_on_both("contiguous of a permute", vec![x.clone()], 0.0, |t| {
        t[0].permute(&[2, 0, 1])?.contiguous()
    });
    same_on_both("reshape of a transpose", vec![x.clone()], 0.0, |t| {
        t[0].transpose(0, 1)?.reshape([20, 3])
    });
    same_on_both("narrow + embed", vec![x.clone()], 0.0, |t| {
        t[0].narrow(1, 1, 2)?.embed(1, 1, 4)
    });
    same_on_both("cat", vec![x.clone()], 0.0, |t| {
        Tensor::cat(&[&t[0], &t[0].narrow(2, 0, 2)?], 2)
    });
    same_on_both("zeros_like + ones_like", vec![x.clone()], 0.0, |t| {
        t[0].ones_like()?.add(&t[0].zeros_like()?)
    });
    let full = Tensor::full_on([2, 3], 2.5, DType::F32, CUDA).unwrap();
    assert_eq!(full.to_vec::<f32>().unwrap(), vec![2.5; 6]);
    let idx = Tensor::from_vec(vec![-1i64, 0, 7], [3]).unwrap();
    assert_eq!(
        idx.to_device(CUDA).unwrap().to_vec::<i64>().unwrap(),
        vec![-1, 0, 7]
    );
    let on_gpu = x.to_device(CUDA).unwrap();
    assert!(on_gpu.item_f64().is_err(), "item of 60 elements");
    let total = on_gpu.sum_all().unwrap().item::<f32>().unwrap() as f64;
    assert!((total - x.sum_all().unwrap().item_f64().unwrap()).abs() < 1e-4);
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn mixing_devices_and_cpu_only_paths_are_errors() {
    if !gpu_ready() {
        return;
    }
    let cpu = Tensor::ones([2, 2], DType::F32);
    let gpu = cpu.to_device(CUDA).unwrap();
    let err = gpu.add(&cpu).unwrap_err();
    assert_eq!(
        err,
        TensorError::DeviceMismatch {
            op: "add",
            lhs: CUDA,
            rhs: Device::Cpu
        }
    );
    assert!(matches!(
        cpu.matmul(&gpu),
        Err(TensorError::DeviceMismatch { .. })
    ));
    let target = Tensor::from_vec(vec![0i64, 1], [2]).unwrap();
    assert!(matches!(
        gpu.cross_entropy(&target, Reduction::Mean, 0.0),
        Err(TensorError::DeviceMismatch { .. })
    ));
    let mut p = gpu.clone();
    let err = p.update_::<f32>(|_| {}).unwrap_err().to_string();
    assert!(
        err.contains("update_: a tensor on cuda:0 cannot be updated"),
        "{err}"
    );
    let err = gpu.to_dtype(DType::F64).unwrap_err().to_string();
    assert!(
        err.contains("to_dtype: cannot convert f32 to f64 on cuda:0"),
        "{err}"
    );
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn sgd_step_in_place_matches_the_formula() {
    if !gpu_ready() {
        return;
    }
    let p0 = [1.0f32, -2.0, 0.5];
    let g = [0.5f32, 0.25, -1.0];
    let cfg = gradlab_tensor::optim::SgdConfig::new(0.1)
        .with_momentum(0.9)
        .with_weight_decay(0.01);
    let mut p = Tensor::from_slice(&p0, [3])
        .unwrap()
        .to_device(CUDA)
        .unwrap();
    let keep = p.clone();
    let grad = Tensor::from_slice(&g, [3])
        .unwrap()
        .to_device(CUDA)
        .unwrap();
    let mut buf = p.zeros_like().unwrap();
    p.sgd_step_(&grad, Some((&mut buf, true)), &cfg).unwrap();
    p.sgd_step_(&grad, Some((&mut buf, false)), &cfg).unwrap();
    // Reference: d = g + wd p; b = d (first), b = 0.9 b + d; p -= lr b.
    let mut want = p0.map(f64::from);
    let mut b = [0.0f64; 3];
    for step in 0..2 {
        for i in 0..3 {
            let d = g[i] as f64 + 0.01 * want[i];
            b[i] = if step == 0 { d } else { 0.9 * b[i] + d };
            want[i] -= 0.1 * b[i];
        }
    }
    let got = p.to_vec::<f32>().unwrap();
    for i in 0..3 {
        assert!(
            (got[i] as f64 - want[i]).abs() < 1e-6,
            "{got:?} vs {want:?}"
        );
    }
    // Copy-on-write: the clone taken before the step still holds p0, and the
    // shared zero constant behind zeros_like was not written.
    assert_eq!(keep.to_vec::<f32>().unwrap(), p0.to_vec());
    assert_eq!(
        keep.zeros_like().unwrap().to_vec::<f32>().unwrap(),
        vec![0.0; 3]
    );
}
