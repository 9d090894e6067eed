//! Profiling your own model through the library: a small convolutional net
//! written by hand (no `gradlab-nn` modules), three SGD steps inside
//! `profile_with`, then the table sorted by time against this machine's
//! roofline, what limits the costliest nodes, the saved-memory peak, and
//! the warnings.
//!
//! The model declares an auxiliary head that the loss never uses, as a
//! forgotten branch would be: the profiler names it.
//!
//! ```text
//! cargo run --release --example profile_my_model
//! ```
//!
//! Writes `my_model-time.dot` (the last step's graph coloured by time) in
//! the current directory; `dot -Tsvg my_model-time.dot -o my_model.svg`
//! draws it.

use gradlab::autograd::profile::{layer, profile_with, DotMetric, ProfileOptions, Roof};
use gradlab::autograd::Var;
use gradlab::bench::MachinePeak;
use gradlab::tensor::{Conv2dParams, DType, MaxPool2dParams, Rng, Tensor};

/// conv 3→8 (3x3, padding 1) → ReLU → 2x2 max-pool → linear 8·8·8 → 10,
/// on 16x16 images; plus an auxiliary head the loss leaves out.
struct SmallNet {
    conv_w: Var,
    conv_b: Var,
    fc_w: Var,
    fc_b: Var,
    aux_w: Var,
}

impl SmallNet {
    fn new(rng: &mut Rng) -> SmallNet {
        let param = |dims: &[usize], fan_in: usize, name: &str, rng: &mut Rng| {
            let bound = 1.0 / (fan_in as f64).sqrt();
            let data = Tensor::rand_uniform(dims.to_vec(), -bound, bound, DType::F32, rng);
            Var::named_parameter(data, name)
        };
        SmallNet {
            conv_w: param(&[8, 3, 3, 3], 27, "conv.weight", rng),
            conv_b: param(&[8], 27, "conv.bias", rng),
            fc_w: param(&[10, 512], 512, "fc.weight", rng),
            fc_b: param(&[10], 512, "fc.bias", rng),
            aux_w: param(&[2, 512], 512, "aux.weight", rng),
        }
    }

    fn parameters(&self) -> Vec<(String, Var)> {
        [
            &self.conv_w,
            &self.conv_b,
            &self.fc_w,
            &self.fc_b,
            &self.aux_w,
        ]
        .into_iter()
        .map(|v| (v.name().unwrap_or_default(), v.clone()))
        .collect()
    }

    /// The logits; each stage runs as a profiler layer so that the table
    /// names it.
    fn forward(&self, x: &Var) -> gradlab::autograd::Result<Var> {
        let padded = Conv2dParams {
            padding: (1, 1),
            ..Conv2dParams::default()
        };
        let h = layer("conv", || {
            x.conv2d(&self.conv_w, Some(&self.conv_b), padded)
        })?;
        let h = layer("relu", || h.relu())?;
        let h = layer("pool", || h.max_pool2d(MaxPool2dParams::square(2)))?;
        let h = layer("flatten", || h.flatten(1))?;
        layer("fc", || h.linear(&self.fc_w, Some(&self.fc_b)))
    }
}

/// One SGD step on `(x, labels)`.
fn train_step(net: &SmallNet, x: &Var, labels: &Tensor, lr: f64) -> Result<(), String> {
    for (_, p) in net.parameters() {
        p.zero_grad();
    }
    let logits = net.forward(x).map_err(|e| e.to_string())?;
    let loss =
        layer("loss", || gradlab::nn::cross_entropy(&logits, labels)).map_err(|e| e.to_string())?;
    loss.backward().map_err(|e| e.to_string())?;
    for (_, p) in net.parameters() {
        if let Some(g) = p.grad() {
            let step = (&g * lr).map_err(|e| e.to_string())?;
            p.set_data((&p.data() - &step).map_err(|e| e.to_string())?);
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut rng = Rng::new(3);
    let net = SmallNet::new(&mut rng);
    let batch = 32;
    let x = Var::constant(Tensor::randn(
        [batch, 3, 16, 16],
        0.0,
        1.0,
        DType::F32,
        &mut rng,
    ));
    let labels: Vec<i64> = (0..batch as i64).map(|i| i % 10).collect();
    let labels = Tensor::from_vec(labels, [batch])?;

    // One step outside the profile: buffers and caches warm, as in training.
    train_step(&net, &x, &labels, 0.05)?;

    // Declaring the parameters lets the profiler report one without gradient.
    let options = ProfileOptions::default().parameters(net.parameters());
    let (result, profile) = profile_with(options, || {
        (0..3).try_for_each(|_| train_step(&net, &x, &labels, 0.05))
    });
    result?;

    // The same peaks `gradlab bench peak` measures.
    let peak = MachinePeak::measure(true);
    let threads = rayon::current_num_threads();
    let roof = Roof {
        gflops: peak.gflops_for(threads),
        gbps: peak.triad_gbps,
    };
    let summary = profile.summary();
    println!("{}\n", peak.describe(threads));
    print!("{}", summary.table(Some(&roof)));
    println!("\nwhat limits the costliest nodes:");
    for line in summary.limits(3, Some(&roof)) {
        println!("{line}");
    }
    let peak_saved = profile
        .steps
        .iter()
        .map(|s| s.saved_peak_bytes)
        .max()
        .unwrap_or(0);
    println!("\nsaved for backward at peak: {peak_saved} bytes");
    println!("\nwarnings:");
    for warning in profile.warnings() {
        println!("  {warning}");
    }
    if let Some(dot) = profile.to_dot(DotMetric::Time) {
        std::fs::write("my_model-time.dot", dot)?;
        println!("\nwrote my_model-time.dot");
    }
    Ok(())
}
