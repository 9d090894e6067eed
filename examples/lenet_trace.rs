//! One LeNet training step on a CIFAR-10 batch with the backward trace on:
//! each backward node prints its op, shapes, time and gradient norms as it
//! runs (the same lines `GRADLAB_TRACE=1` turns on for any program).
//!
//! ```text
//! cargo run --release --example lenet_trace
//! ```

use gradlab::autograd::{set_trace, Var};
use gradlab::data::{cifar10_dir, load_cifar10_limited, Normalization, Split};
use gradlab::introspect::LeNet;
use gradlab::tensor::{DType, Rng, Tensor};

const BATCH: usize = 8;

/// The first `BATCH` training images, normalised with CIFAR-10's channel
/// statistics, or `None` (and why) when the data is not at hand.
fn cifar_batch() -> Result<(Var, Tensor), String> {
    let dir = cifar10_dir(None)
        .ok_or("no CIFAR-10 directory found (run data/get-cifar10.sh or set GRADLAB_DATA)")?;
    let data = load_cifar10_limited(&dir, Split::Train, Some(BATCH)).map_err(|e| e.to_string())?;
    let dims = data.dims();
    let norm = Normalization::cifar10();
    let images: Vec<f32> = data
        .images()
        .iter()
        .enumerate()
        .map(|(i, &pixel)| norm.apply((i / dims.plane_len()) % dims.channels, pixel))
        .collect();
    let labels: Vec<i64> = data.labels().iter().map(|&l| l as i64).collect();
    let n = labels.len();
    let x = Tensor::from_vec(images, [n, dims.channels, dims.height, dims.width])
        .map_err(|e| e.to_string())?;
    let target = Tensor::from_vec(labels, [n]).map_err(|e| e.to_string())?;
    println!(
        "a batch of {n} CIFAR-10 training images from {}",
        dir.display()
    );
    Ok((Var::constant(x), target))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut rng = Rng::new(0);
    let net = LeNet::new(DType::F32, &mut rng);
    let (x, target) = cifar_batch().unwrap_or_else(|why| {
        println!("note: {why}; using a random batch of {BATCH} images instead");
        LeNet::random_batch(BATCH, DType::F32, &mut rng)
    });
    x.set_name("images");

    let loss = net.loss(&x, &target)?;
    println!(
        "loss {:.4} (ln 10 = {:.4} for a uniform guess)",
        loss.item()?,
        10f64.ln()
    );
    println!("backward, one line per node (to stderr):");
    set_trace(true);
    loss.backward()?;
    set_trace(false);

    println!("\n{:<14} {:<16} {:>11}", "parameter", "shape", "|grad|");
    for (name, p) in net.parameters() {
        let grad = p.grad().ok_or_else(|| format!("{name} got no gradient"))?;
        let norm = grad.to_vec_f64()?.iter().map(|v| v * v).sum::<f64>().sqrt();
        println!("{name:<14} {:<16} {norm:>11.4e}", format!("{:?}", p.dims()));
    }
    Ok(())
}
