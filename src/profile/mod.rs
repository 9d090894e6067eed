//! `gradlab profile`: where the time and memory of the trainer's training
//! step go, node by node, against this machine's roofline.
//!
//! Runs the trainer's model (forward layer by layer, cross-entropy,
//! backward, an SGD update) on random CIFAR-10-shaped batches: one warm-up
//! step, then `--steps` profiled ones through
//! [`gradlab_autograd::profile`](mod@gradlab_autograd::profile). Prints a table sorted by time (forward
//! and backward ms, share of the step, GFLOP/s, share of the roofline at
//! the node's intensity, compute- or memory-bound by the ridge point of
//! the peaks `gradlab bench` measures, saved MB), the three costliest
//! nodes with what limits each, activation statistics, gradient norms and
//! warnings. Writes the profile as JSON (`--json`), a roofline with every
//! node (`--svg`), and the step's graph coloured by time and by saved
//! memory, as DOT and as SVG drawn by [`crate::plot`] (no Graphviz
//! needed): `<PREFIX>-time.{dot,svg}` and `<PREFIX>-saved.{dot,svg}`.
//!
//! ```text
//! gradlab profile --model lenet --batch 64 --steps 5 --json p.json --svg p.svg
//! gradlab profile --model convnet --batch 32 --threads 1 --kernels reference
//! ```

mod output;
#[cfg(test)]
mod tests;

use crate::bench::{Fingerprint, MachinePeak};
use crate::introspect::{named_model, random_batch};
use crate::train::ModelKind;
use gradlab_autograd::profile::{layer, profile_with, Profile, ProfileOptions, Roof};
use gradlab_autograd::Var;
use gradlab_nn::optim::{Optimizer, Sgd};
use gradlab_nn::{Module, Sequential};
use gradlab_tensor::optim::SgdConfig;
use gradlab_tensor::{Device, Rng, Tensor};
use std::path::PathBuf;
use std::process::ExitCode;

pub use output::{write_outputs, Written};

/// Flags of `gradlab profile`.
#[derive(clap::Args, Debug, Clone)]
pub struct ProfileArgs {
    /// The trainer's model to profile.
    #[arg(long, value_enum, default_value = "lenet")]
    pub model: ModelKind,
    /// Images per batch.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Profiled steps (after one warm-up step); the table shows means.
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    /// Worker threads (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// cpu, or cuda / cuda:0.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Write the profile (every node of every step, the summary, the
    /// machine) as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write a roofline chart with every node to this SVG file.
    #[arg(long)]
    pub svg: Option<PathBuf>,
    /// Where the coloured graphs go: `<PREFIX>-time.dot` and
    /// `<PREFIX>-saved.dot`, each with an SVG of the same name beside it
    /// (default: `<model>-profile`, beside `gradlab graph`'s `<model>.dot`).
    #[arg(long)]
    pub dot: Option<PathBuf>,
    /// Seed of the parameters and the batches.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// What one `gradlab profile` run measured.
#[derive(Debug)]
pub struct ProfileRun {
    pub profile: Profile,
    pub machine: Fingerprint,
    pub roof: Roof,
    /// `lenet, batch 64, 5 steps, 2 threads, fast kernels, cpu`.
    pub setup: String,
}

/// One step: forward layer by layer (each child, or a child and the ReLU
/// fused into it as training runs them, a profiler layer), the loss,
/// backward, the update.
fn train_step(
    model: &Sequential,
    optimizer: &mut Sgd,
    x: &Var,
    target: &Tensor,
) -> Result<(), String> {
    model.zero_grad();
    let mut failed = String::new();
    let y = model
        .forward_layers(x, |step, run| {
            let name = step.name();
            let y = layer(&name, run);
            if y.is_err() {
                failed = name;
            }
            y
        })
        .map_err(|e| format!("{failed}: {e}"))?;
    let loss = layer("loss", || gradlab_nn::cross_entropy(&y, target))
        .map_err(|e| format!("loss: {e}"))?;
    loss.backward().map_err(|e| format!("backward: {e}"))?;
    optimizer.step().map_err(|e| format!("sgd step: {e}"))
}

fn parse_device(device: &str) -> Result<Device, String> {
    let parsed: Device = device.parse()?;
    crate::train::open_device(parsed).map_err(|e| format!("--device {device}: {e}"))?;
    Ok(parsed)
}

/// Measures the peaks and profiles `args.steps` steps.
pub fn measure(args: &ProfileArgs) -> Result<ProfileRun, String> {
    if args.batch == 0 {
        return Err("--batch must be at least 1".into());
    }
    if args.steps == 0 {
        return Err("--steps must be at least 1".into());
    }
    crate::threads::check_threads(args.threads)?;
    let device = parse_device(&args.device)?;
    let threads = args.threads.unwrap_or_else(crate::threads::cores);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| format!("cannot build a pool of {threads} threads: {e}"))?;
    pool.install(|| {
        let peak = MachinePeak::measure(false);
        let machine = Fingerprint::collect(&peak, threads);
        let roof = Roof {
            gflops: peak.gflops_for(threads),
            gbps: peak.triad_gbps,
        };
        let mut rng = Rng::new(args.seed);
        let model = named_model(args.model, &mut rng)?;
        for (_, var) in model.state() {
            var.set_data(var.data().to_device(device).map_err(|e| e.to_string())?);
        }
        let mut optimizer = Sgd::new(model.parameters(), SgdConfig::new(0.01).with_momentum(0.9))
            .map_err(|e| e.to_string())?;
        let batches = (0..=args.steps)
            .map(|_| {
                let (x, target) = random_batch(args.batch, &mut rng);
                let x = Var::constant(x.data().to_device(device)?);
                Ok((x, target.to_device(device)?))
            })
            .collect::<Result<Vec<_>, gradlab_tensor::TensorError>>()
            .map_err(|e| e.to_string())?;
        let (warm_x, warm_target) = &batches[0];
        train_step(&model, &mut optimizer, warm_x, warm_target)?;
        // The report shows activation statistics and names the node of a
        // NaN, so this profile inspects; its own time is left out of the
        // step it reports.
        let options = ProfileOptions::default()
            .inspecting()
            .parameters(model.parameters());
        let (result, profile) = profile_with(options, || {
            batches[1..]
                .iter()
                .try_for_each(|(x, t)| train_step(&model, &mut optimizer, x, t))
        });
        result?;
        let setup = format!(
            "{}, batch {}, {} steps, {threads} threads, {} kernels, {device}",
            crate::train::args::value_name(args.model),
            args.batch,
            args.steps,
            gradlab_tensor::backend::kernels()
        );
        Ok(ProfileRun {
            profile,
            machine,
            roof,
            setup,
        })
    })
}

/// The report printed by `gradlab profile`.
pub fn render(run: &ProfileRun) -> String {
    let summary = run.profile.summary();
    let mut out = format!(
        "profile: {}\nmachine: {}\nroofs: {:.1} GFLOP/s FMA peak, {:.1} GB/s triad; ridge {:.2} FLOP/byte\n\n",
        run.setup,
        run.machine.describe(),
        run.roof.gflops,
        run.roof.gbps,
        run.roof.ridge()
    );
    out.push_str(&summary.table(Some(&run.roof)));
    out.push_str("\nthe three costliest nodes:\n");
    for line in summary.limits(3, Some(&run.roof)) {
        out.push_str(&line);
        out.push('\n');
    }
    let activations = summary.activations_table();
    if !activations.is_empty() {
        out.push_str("\nactivations (last step):\n");
        out.push_str(&activations);
    }
    out.push_str("\ngradient norms (last step):\n");
    for p in &summary.parameters {
        let norm = p.norm.map_or("none".into(), |n| format!("{n:.4e}"));
        out.push_str(&format!("  {:<16} {:>12}\n", p.name, norm));
    }
    out
}

/// `gradlab profile`.
pub fn run(args: &ProfileArgs) -> Result<ExitCode, String> {
    let run = measure(args)?;
    print!("{}", render(&run));
    let written = write_outputs(args, &run)?;
    for line in written.lines() {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}
