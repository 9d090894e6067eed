//! One full training step (forward, loss, every parameter gradient, the SGD
//! update, the batch-norm running statistics) of the trainer's LeNet and
//! convnet on the `reference` backend and on the fast `cpu` backend, from
//! the same seed, compared tensor by tensor.

use gradlab::autograd::Var;
use gradlab::data::CIFAR10_DIMS;
use gradlab::nn::optim::{Optimizer, Sgd, SgdConfig};
use gradlab::nn::Module;
use gradlab::tensor::backend::{with_kernels, Kernels};
use gradlab::tensor::{DType, Rng, Tensor};
use gradlab::train::models::build_model;
use gradlab::train::ModelKind;

/// Every tensor of one step, named: the logits, the loss, each parameter's
/// gradient and value after the update, and each buffer after the step.
fn training_step(kind: ModelKind, dtype: DType, batch: usize) -> Vec<(String, Tensor)> {
    let mut rng = Rng::new(17);
    let model = build_model(kind, CIFAR10_DIMS, 10, &mut rng).unwrap();
    for (_, v) in model.state() {
        let t = v.data();
        if t.dtype().is_float() {
            v.set_data(t.to_dtype(dtype).unwrap());
        }
    }
    model.set_training(true);
    let x = Var::constant(Tensor::randn([batch, 3, 32, 32], 0.0, 1.0, dtype, &mut rng));
    let labels: Vec<i64> = (0..batch).map(|_| rng.below(10) as i64).collect();
    let target = Tensor::from_vec(labels, [batch]).unwrap();
    let logits = model.forward(&x).unwrap();
    let loss = gradlab::nn::cross_entropy(&logits, &target).unwrap();
    loss.backward().unwrap();
    let mut out = vec![
        ("logits".to_string(), logits.data()),
        ("loss".to_string(), loss.data()),
    ];
    for (name, p) in model.parameters() {
        out.push((format!("{name}.grad"), p.grad().unwrap()));
    }
    let config = SgdConfig::new(0.05)
        .with_momentum(0.9)
        .with_weight_decay(5e-4);
    let mut sgd = Sgd::new(model.parameters(), config).unwrap();
    sgd.step().unwrap();
    for (name, v) in model.state() {
        out.push((name, v.data()));
    }
    out
}

/// `max |a - b| / max |b|`: the error relative to the tensor's scale, so
/// that elements near zero (which a sum in another order may move by a
/// few ulps of the large ones) do not dominate.
fn relative(a: &Tensor, b: &Tensor) -> f64 {
    let (a, b) = (a.to_vec_f64().unwrap(), b.to_vec_f64().unwrap());
    assert_eq!(a.len(), b.len());
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

fn compare(kind: ModelKind, dtype: DType, batch: usize, tolerance: f64) {
    let reference = with_kernels(Kernels::Reference, || training_step(kind, dtype, batch));
    let fast = with_kernels(Kernels::Fast, || training_step(kind, dtype, batch));
    assert_eq!(reference.len(), fast.len());
    let mut worst = (0.0f64, String::new());
    for ((name, r), (name_f, f)) in reference.iter().zip(&fast) {
        assert_eq!(name, name_f);
        assert_eq!(r.shape(), f.shape(), "{name}");
        assert_eq!(r.dtype(), f.dtype(), "{name}");
        let e = relative(f, r);
        assert!(
            e <= tolerance,
            "{kind:?} {dtype}: {name} differs between the cpu and reference backends by {e:e} (tolerance {tolerance:e})"
        );
        if e > worst.0 {
            worst = (e, name.clone());
        }
    }
    println!(
        "{kind:?} {dtype}: {} tensors agree, worst {:e} ({})",
        reference.len(),
        worst.0,
        worst.1
    );
}

// f64: both backends compute the same sums in a different order (blocked
// GEMM, Winograd or im2col convolutions, partial sums over lanes and
// threads); 1e-10 of the tensor's scale leaves room for that and nothing
// else.
//
// f32: the same reassociation, at f32's unit roundoff (6e-8), through a
// step whose longest sums run over a few thousand terms (conv weight
// gradients sum over batch x output positions; batch norm over N x H x W)
// and whose backward chains ~10 layers: errors of sqrt(n) * eps per sum,
// amplified by each layer, stay below 1e-4 of each tensor's scale. A wrong
// kernel is off by O(1).

#[test]
fn lenet_step_is_the_same_on_the_reference_and_fast_kernels() {
    compare(ModelKind::Lenet, DType::F64, 4, 1e-10);
    compare(ModelKind::Lenet, DType::F32, 4, 1e-4);
}

#[test]
fn convnet_step_is_the_same_on_the_reference_and_fast_kernels() {
    compare(ModelKind::Convnet, DType::F64, 2, 1e-10);
    compare(ModelKind::Convnet, DType::F32, 2, 1e-4);
}

/// Outputs that kernels overwrite come from recycled buffers holding old
/// values. With poisoning on, every recycled buffer is filled with NaN
/// before a kernel gets it: a kernel that left any element unwritten would
/// change the step's results.
#[test]
fn recycled_output_buffers_never_leak_old_values() {
    use gradlab::tensor::backend::poison_recycled_buffers;
    for kind in [ModelKind::Lenet, ModelKind::Convnet] {
        // The first step fills the bins with this step's sizes.
        let clean = training_step(kind, DType::F32, 4);
        poison_recycled_buffers(true);
        let poisoned = training_step(kind, DType::F32, 4);
        poison_recycled_buffers(false);
        for ((name, a), (_, b)) in clean.iter().zip(&poisoned) {
            let (a, b) = (a.to_vec_f64().unwrap(), b.to_vec_f64().unwrap());
            assert!(
                a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
                "{kind:?}: {name} changed when recycled buffers were poisoned"
            );
        }
    }
}
