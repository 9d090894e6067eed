//! A two-layer MLP learns the two-moons toy problem: full-batch gradient
//! descent, printing the loss and each layer's gradient norm as it goes,
//! then the accuracy.
//!
//! ```text
//! cargo run --release --example mlp_toy
//! ```

use gradlab::autograd::Var;
use gradlab::tensor::{DType, Reduction, Rng, Tensor};
use std::f64::consts::PI;

/// `n` points of two interleaved half circles with Gaussian noise, and
/// their labels (0 for the upper moon, 1 for the lower).
fn two_moons(n: usize, noise: f64, rng: &mut Rng) -> (Tensor, Tensor) {
    let mut points = Vec::with_capacity(2 * n);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let label = i % 2;
        let t = rng.uniform(0.0, PI);
        let (x, y) = if label == 0 {
            (t.cos(), t.sin())
        } else {
            (1.0 - t.cos(), 0.5 - t.sin())
        };
        points.push(x + noise * rng.normal());
        points.push(y + noise * rng.normal());
        labels.push(label as i64);
    }
    (
        Tensor::from_vec(points, [n, 2]).expect("2n values"),
        Tensor::from_vec(labels, [n]).expect("n labels"),
    )
}

/// A `[out, in]` weight and `[out]` bias, uniform in ±1/sqrt(in) as PyTorch draws them.
fn layer(name: &str, inputs: usize, outputs: usize, rng: &mut Rng) -> (Var, Var) {
    let bound = 1.0 / (inputs as f64).sqrt();
    let w = Tensor::rand_uniform([outputs, inputs], -bound, bound, DType::F64, rng);
    let b = Tensor::rand_uniform([outputs], -bound, bound, DType::F64, rng);
    (
        Var::named_parameter(w, format!("{name}.weight")),
        Var::named_parameter(b, format!("{name}.bias")),
    )
}

fn l2(t: &Tensor) -> gradlab::tensor::Result<f64> {
    Ok(t.to_vec_f64()?.iter().map(|v| v * v).sum::<f64>().sqrt())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut rng = Rng::new(7);
    let (points, labels) = two_moons(200, 0.1, &mut rng);
    let x = Var::constant(points);
    let (w1, b1) = layer("fc1", 2, 16, &mut rng);
    let (w2, b2) = layer("fc2", 16, 2, &mut rng);
    let params = [&w1, &b1, &w2, &b2];
    let (steps, lr) = (600, 0.5);

    let forward = |x: &Var| -> gradlab::autograd::Result<Var> {
        x.linear(&w1, Some(&b1))?.tanh()?.linear(&w2, Some(&b2))
    };

    println!(
        "{:>5} {:>9} {:>12} {:>12}",
        "step", "loss", "|grad fc1|", "|grad fc2|"
    );
    for step in 0..=steps {
        let loss = forward(&x)?.cross_entropy(&labels, Reduction::Mean, 0.0)?;
        for p in params {
            p.zero_grad();
        }
        loss.backward()?;
        if step % 100 == 0 {
            // One norm per layer, over its weight and bias together.
            let norm = |w: &Var, b: &Var| -> gradlab::tensor::Result<f64> {
                let (gw, gb) = (w.grad().expect("weight grad"), b.grad().expect("bias grad"));
                Ok(l2(&gw)?.hypot(l2(&gb)?))
            };
            println!(
                "{step:>5} {:>9.4} {:>12.4e} {:>12.4e}",
                loss.item()?,
                norm(&w1, &b1)?,
                norm(&w2, &b2)?
            );
        }
        for p in params {
            let g = p.grad().expect("every parameter feeds the loss");
            p.set_data(p.data().sub(&g.mul_scalar(lr)?)?);
        }
    }

    let logits = gradlab::autograd::no_grad(|| forward(&x))?;
    let (_, predicted) = logits.data().max_dim(1, false)?;
    let (predicted, labels) = (predicted.to_vec::<i64>()?, labels.to_vec::<i64>()?);
    let correct = predicted
        .iter()
        .zip(&labels)
        .filter(|(p, l)| p == l)
        .count();
    println!(
        "accuracy: {correct}/{} = {:.1}%",
        labels.len(),
        100.0 * correct as f64 / labels.len() as f64
    );
    Ok(())
}
