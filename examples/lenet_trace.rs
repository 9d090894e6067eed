//! One training step of the trainer's LeNet (`gradlab train --model lenet`)
//! on a CIFAR-10 batch, then each parameter's gradient norm. With
//! `GRADLAB_TRACE=1` each backward node also prints its op, shapes, time and
//! gradient norms as it runs (the same lines the variable turns on for any
//! program):
//!
//! ```text
//! GRADLAB_TRACE=1 cargo run --release --example lenet_trace
//! ```

use gradlab::autograd::{trace::is_trace_on, Var};
use gradlab::data::{DataLoader, LoaderConfig, Split};
use gradlab::introspect::{named_model, random_batch, step_loss};
use gradlab::nn::Module;
use gradlab::tensor::{Rng, Tensor};
use gradlab::train::data::{load_split, normalization};
use gradlab::train::evaluate::batch_tensors;
use gradlab::train::{DatasetKind, ModelKind, NormalizationKind};

const BATCH: usize = 8;

/// The first `BATCH` training images, normalised as the trainer does by
/// default, or why they are not at hand.
fn cifar_batch() -> Result<(Var, Tensor), String> {
    let dataset = DatasetKind::Cifar10;
    let train = load_split(dataset, None, Split::Train, Some(BATCH))?;
    let norm = normalization(NormalizationKind::Half, dataset, train.dims().channels);
    let loader = DataLoader::new(train, LoaderConfig::eval(BATCH).with_normalization(norm))
        .map_err(|e| e.to_string())?;
    let (images, target) = batch_tensors(&loader.batch(0, 0))?;
    println!("a batch of {} CIFAR-10 training images", target.numel());
    let x = Var::constant(images);
    x.set_name("images");
    Ok((x, target))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut rng = Rng::new(0);
    let model = named_model(ModelKind::Lenet, &mut rng)?;
    let (x, target) = cifar_batch().unwrap_or_else(|why| {
        println!("note: {why}; using a random batch of {BATCH} images instead");
        random_batch(BATCH, &mut rng)
    });

    let loss = step_loss(&model, &x, &target)?;
    println!(
        "loss {:.4} (ln 10 = {:.4} for a uniform guess)",
        loss.item()?,
        10f64.ln()
    );
    // The trace is on only when asked for (GRADLAB_TRACE=1).
    if is_trace_on() {
        println!("backward, one line per node (to stderr):");
    } else {
        println!("backward (GRADLAB_TRACE=1 prints one line per node)");
    }
    loss.backward()?;

    println!("\n{:<14} {:<16} {:>11}", "parameter", "shape", "|grad|");
    for (name, p) in model.parameters() {
        let grad = p.grad().ok_or_else(|| format!("{name} got no gradient"))?;
        let norm = grad.to_vec_f64()?.iter().map(|v| v * v).sum::<f64>().sqrt();
        println!("{name:<14} {:<16} {norm:>11.4e}", format!("{:?}", p.dims()));
    }
    Ok(())
}
