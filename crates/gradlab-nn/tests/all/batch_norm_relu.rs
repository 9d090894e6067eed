//! A `Sequential` folds `BatchNorm2d` followed by `ReLU` into one op in
//! training on the fast kernels: the same outputs, gradients and running
//! statistics as the two layers applied one after the other (the
//! reference, and what the reference kernels and evaluation run).

use gradlab_autograd::Var;
use gradlab_nn::layers::{BatchNorm2d, Conv2d, ReLU};
use gradlab_nn::{Module, Sequential};
use gradlab_tensor::backend::{with_kernels, Kernels};
use gradlab_tensor::{DType, Rng, Tensor};

/// conv, batch norm, ReLU, with batch norm's bias pushing channel 0 wholly
/// through ReLU and channel 1 wholly under it.
fn block(dtype: DType) -> Sequential {
    let mut rng = Rng::new(7);
    let bn = BatchNorm2d::new(4, dtype);
    bn.bias.set_data(
        Tensor::from_vec(vec![30.0, -30.0, 0.2, -0.1], [4])
            .unwrap()
            .to_dtype(dtype)
            .unwrap(),
    );
    Sequential::new()
        .push("conv", Conv2d::new(3, 4, 3, 1, 1, true, dtype, &mut rng))
        .unwrap()
        .push("bn", bn)
        .unwrap()
        .push("relu", ReLU)
        .unwrap()
}

struct Step {
    y: Tensor,
    node: &'static str,
    grads: Vec<(String, Tensor)>,
    dx: Tensor,
    buffers: Vec<(String, Tensor)>,
}

/// Two training steps' forward and backward; `fused` goes through the
/// `Sequential`, otherwise each child is applied in turn.
fn step(model: &Sequential, fused: bool, dtype: DType) -> Step {
    let mut last = None;
    for seed in [1, 2] {
        model.zero_grad();
        let x = Var::parameter(Tensor::randn(
            [5, 3, 6, 6],
            1.0,
            2.0,
            dtype,
            &mut Rng::new(seed),
        ));
        let y = if fused {
            model.forward(&x).unwrap()
        } else {
            model
                .children()
                .try_fold(x.clone(), |y, (_, child)| child.forward(&y))
                .unwrap()
        };
        let g = Tensor::randn(y.dims().to_vec(), 0.0, 1.0, dtype, &mut Rng::new(seed + 10));
        y.mul(&Var::constant(g))
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        last = Some((y, x));
    }
    let (y, x) = last.unwrap();
    Step {
        node: y.node().unwrap().name(),
        y: y.data(),
        grads: model
            .parameters()
            .into_iter()
            .map(|(n, p)| (n, p.grad().unwrap()))
            .collect(),
        dx: x.grad().unwrap(),
        buffers: model
            .buffers()
            .into_iter()
            .map(|(n, b)| (n, b.data()))
            .collect(),
    }
}

fn rel_diff(a: &Tensor, b: &Tensor) -> f64 {
    let (a, b) = (a.to_vec_f64().unwrap(), b.to_vec_f64().unwrap());
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    diff / (1.0 + scale)
}

fn assert_same_step(a: &Step, b: &Step, tol: f64, what: &str) {
    let mut pairs = vec![
        ("y".to_string(), &a.y, &b.y),
        ("dx".to_string(), &a.dx, &b.dx),
    ];
    for (x, y) in a
        .grads
        .iter()
        .zip(&b.grads)
        .chain(a.buffers.iter().zip(&b.buffers))
    {
        assert_eq!(x.0, y.0);
        pairs.push((x.0.clone(), &x.1, &y.1));
    }
    assert_eq!(
        pairs.len(),
        2 + 4 + 3,
        "{what}: y, dx, 4 parameters, 3 buffers"
    );
    for (name, x, y) in pairs {
        let d = rel_diff(x, y);
        assert!(d <= tol, "{what}: {name} differs by {d:e}");
    }
}

#[test]
fn sequential_fuses_batch_norm_and_relu_with_the_unfused_values() {
    for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-5)] {
        let fused = step(&block(dtype), true, dtype);
        assert_eq!(fused.node, "BatchNormReluBackward");
        let apart = step(&block(dtype), false, dtype);
        assert_eq!(apart.node, "ReluBackward");
        assert_same_step(&fused, &apart, tol, &format!("fast {dtype}"));
        // ReLU cuts channel 1 everywhere: batch norm gets no gradient there.
        let grad = |name: &str| {
            let g = &fused.grads.iter().find(|(n, _)| n == name).unwrap().1;
            g.to_vec_f64().unwrap()
        };
        assert_eq!((grad("bn.weight")[1], grad("bn.bias")[1]), (0.0, 0.0));
        assert!(grad("bn.bias")[0] != 0.0);

        // The reference kernels run the unfused pair, through the Sequential too.
        let reference = with_kernels(Kernels::Reference, || step(&block(dtype), true, dtype));
        assert_eq!(reference.node, "ReluBackward");
        assert_same_step(
            &fused,
            &reference,
            tol,
            &format!("fast fused vs reference {dtype}"),
        );
    }
}

#[test]
fn evaluation_applies_the_layers_in_turn() {
    let model = block(DType::F64);
    step(&model, true, DType::F64);
    model.set_training(false);
    let x = Var::parameter(Tensor::randn(
        [2, 3, 6, 6],
        1.0,
        2.0,
        DType::F64,
        &mut Rng::new(3),
    ));
    let y = model.forward(&x).unwrap();
    assert_eq!(y.node().unwrap().name(), "ReluBackward");
    let apart = model
        .children()
        .try_fold(x.clone(), |y, (_, child)| child.forward(&y))
        .unwrap();
    assert_eq!(
        y.data().to_vec::<f64>().unwrap(),
        apart.data().to_vec::<f64>().unwrap()
    );
}
