//! micrograd's neuron, `o = tanh(x1*w1 + x2*w2 + b)`, on gradlab scalars:
//! its graph as a tree, then every gradient next to the formula derived by
//! hand with the chain rule.
//!
//! ```text
//! cargo run --release --example scalar_micrograd
//! ```

use gradlab::autograd::Var;
use gradlab::tensor::Tensor;
use std::process::ExitCode;

fn scalar(value: f64, name: &str) -> Var {
    Var::named_parameter(Tensor::scalar(value), name)
}

fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let (x1v, x2v, w1v, w2v, bv) = (2.0, 0.0, -3.0, 1.0, 6.881_373_587_019_543);
    let (x1, x2) = (scalar(x1v, "x1"), scalar(x2v, "x2"));
    let (w1, w2) = (scalar(w1v, "w1"), scalar(w2v, "w2"));
    let b = scalar(bv, "b");

    let x1w1 = x1.mul(&w1)?;
    let x2w2 = x2.mul(&w2)?;
    let sum = x1w1.add(&x2w2)?;
    let n = sum.add(&b)?;
    let o = n.tanh()?;
    for (var, name) in [
        (&x1w1, "x1*w1"),
        (&x2w2, "x2*w2"),
        (&sum, "x1*w1 + x2*w2"),
        (&n, "n"),
        (&o, "o"),
    ] {
        var.set_name(name);
        // Non-leaves drop their gradient after backward unless asked to keep it.
        var.retain_grad();
    }

    println!("The graph of o (a tree, root first):\n{}", o.graph_tree());
    o.backward()?;

    let ov = o.item()?;
    let dn = 1.0 - ov * ov;
    let rows: [(&str, &Var, &str, f64); 10] = [
        ("o", &o, "1", 1.0),
        ("n", &n, "1 - o²", dn),
        ("x1*w1 + x2*w2", &sum, "do/dn · 1", dn),
        ("x1*w1", &x1w1, "do/dn · 1", dn),
        ("x2*w2", &x2w2, "do/dn · 1", dn),
        ("b", &b, "do/dn · 1", dn),
        ("x1", &x1, "(1 - o²) · w1", dn * w1v),
        ("w1", &w1, "(1 - o²) · x1", dn * x1v),
        ("x2", &x2, "(1 - o²) · w2", dn * w2v),
        ("w2", &w2, "(1 - o²) · x2", dn * x2v),
    ];
    println!("o = tanh({:.6}) = {ov:.6}\n", n.item()?);
    println!(
        "{:<15} {:>10} {:>12}   {:<16} {:>12}",
        "var", "value", "do/dvar", "formula", "by hand"
    );
    let mut all_agree = true;
    for (name, var, formula, by_hand) in rows {
        let grad = var
            .grad()
            .ok_or_else(|| format!("{name} has no gradient"))?
            .item_f64()?;
        let agrees = (grad - by_hand).abs() <= 1e-12 * (1.0 + by_hand.abs());
        all_agree &= agrees;
        println!(
            "{name:<15} {:>10.6} {grad:>12.6}   {formula:<16} {by_hand:>12.6}  {}",
            var.item()?,
            if agrees { "ok" } else { "MISMATCH" }
        );
    }
    if all_agree {
        println!("\nevery gradient equals its hand-derived formula");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("\nsome gradients differ from the chain rule by hand");
        Ok(ExitCode::FAILURE)
    }
}
