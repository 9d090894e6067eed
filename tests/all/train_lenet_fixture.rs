//! The trainer's LeNet module against PyTorch: loaded with the weights of the
//! `lenet/3_f64` fixture, it must give PyTorch's loss and gradients.

use gradlab::autograd::Var;
use gradlab::data::ImageDims;
use gradlab::nn::{cross_entropy, Checkpoint, Module};
use gradlab::tensor::{Rng, Tensor};
use gradlab::train::models::lenet;
use std::path::PathBuf;

fn fixture() -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/torch/lenet__3_f64.safetensors");
    path.exists().then_some(path)
}

/// `|got - want| <= atol + rtol * |want|` elementwise, naming the first failure.
fn assert_close(name: &str, got: &Tensor, want: &Tensor, rtol: f64, atol: f64) {
    assert_eq!(got.dims(), want.dims(), "{name}: shape");
    let (g, w) = (got.to_vec_f64().unwrap(), want.to_vec_f64().unwrap());
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        assert!(
            (a - b).abs() <= atol + rtol * b.abs(),
            "{name}[{i}]: got {a}, PyTorch {b}"
        );
    }
}

#[test]
fn lenet_module_matches_pytorch_loss_and_gradients() {
    let Some(path) = fixture() else {
        eprintln!("skipping: ../shared/fixtures/torch/lenet__3_f64.safetensors not found");
        return;
    };
    let case = Checkpoint::load(&path).unwrap().tensors;
    let x = &case["x"];
    let dims = ImageDims {
        channels: x.dims()[1],
        height: x.dims()[2],
        width: x.dims()[3],
    };
    let model = lenet(dims, 10, &mut Rng::new(0)).unwrap();
    let params = model.parameters();
    let names: Vec<&str> = params.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "conv1.weight",
            "conv1.bias",
            "conv2.weight",
            "conv2.bias",
            "fc1.weight",
            "fc1.bias",
            "fc2.weight",
            "fc2.bias",
            "fc3.weight",
            "fc3.bias"
        ]
    );
    // Same names and shapes as PyTorch's LeNet; the fixture's f64 weights replace ours.
    for (name, var) in &params {
        let weight = &case[name.as_str()];
        assert_eq!(var.dims(), weight.dims(), "{name}");
        var.set_data(weight.clone());
    }
    let input = Var::parameter(x.clone());
    let loss = cross_entropy(&model.forward(&input).unwrap(), &case["target"]).unwrap();
    assert_close("loss", &loss.data(), &case["out"], 1e-7, 1e-9);
    loss.backward().unwrap();
    assert_close(
        "grad.x",
        &input.grad().unwrap(),
        &case["grad.x"],
        1e-7,
        1e-9,
    );
    for (name, var) in &params {
        let key = format!("grad.{name}");
        assert_close(&key, &var.grad().unwrap(), &case[key.as_str()], 1e-7, 1e-9);
    }
}
