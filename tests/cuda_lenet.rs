//! The trainer's LeNet on CUDA against the same network on the CPU: loss,
//! every parameter gradient and one SGD step with momentum; then the PyTorch
//! fixtures with their inputs on the GPU. Needs a GPU, so ignored unless run
//! with `--ignored`; then skips (printing why) without one, unless
//! GRADLAB_REQUIRE_GPU is set, as scripts/gpu-check.sh does.

use gradlab::fixtures::{run_dir_on, Outcome};
use gradlab::train::models::lenet;
use gradlab_autograd::Var;
use gradlab_data::ImageDims;
use gradlab_nn::{cross_entropy, Module, Optimizer, Sgd, SgdConfig};
use gradlab_tensor::{DType, Device, Rng, Tensor};
use std::path::PathBuf;

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

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    let (a, b) = (a.to_vec_f64().unwrap(), b.to_vec_f64().unwrap());
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn scale(t: &Tensor) -> f64 {
    t.to_vec_f64()
        .unwrap()
        .iter()
        .fold(0.0f64, |m, v| m.max(v.abs()))
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn lenet_forward_backward_and_sgd_step_match_the_cpu() {
    if !gpu_ready() {
        return;
    }
    let dims = ImageDims {
        channels: 3,
        height: 32,
        width: 32,
    };
    let cpu_model = lenet(dims, 10, &mut Rng::new(7)).unwrap();
    let gpu_model = lenet(dims, 10, &mut Rng::new(7)).unwrap();
    for (_, v) in gpu_model.state() {
        v.set_data(v.data().to_device(CUDA).unwrap());
    }
    let mut rng = Rng::new(8);
    let x = Tensor::randn([16, 3, 32, 32], 0.0, 1.0, DType::F32, &mut rng);
    let labels: Vec<i64> = (0..16).map(|i| (i * 7 % 10) as i64).collect();
    let target = Tensor::from_vec(labels, [16]).unwrap();
    let config = SgdConfig::new(0.05)
        .with_momentum(0.9)
        .with_weight_decay(5e-4);
    let mut cpu_opt = Sgd::new(cpu_model.parameters(), config).unwrap();
    let mut gpu_opt = Sgd::new(gpu_model.parameters(), config).unwrap();

    for step in 0..2 {
        let cpu_loss = cross_entropy(
            &cpu_model.forward(&Var::constant(x.clone())).unwrap(),
            &target,
        )
        .unwrap();
        let gx = Var::constant(x.to_device(CUDA).unwrap());
        let gpu_loss = cross_entropy(
            &gpu_model.forward(&gx).unwrap(),
            &target.to_device(CUDA).unwrap(),
        )
        .unwrap();
        assert_eq!(gpu_loss.device(), CUDA);
        let (lc, lg) = (cpu_loss.item().unwrap(), gpu_loss.item().unwrap());
        assert!(
            (lc - lg).abs() < 1e-4 * (1.0 + lc.abs()),
            "step {step}: loss cpu {lc}, cuda {lg}"
        );
        cpu_opt.zero_grad();
        gpu_opt.zero_grad();
        cpu_loss.backward().unwrap();
        gpu_loss.backward().unwrap();
        for ((name, pc), (_, pg)) in cpu_model.parameters().iter().zip(gpu_model.parameters()) {
            let (gc, gg) = (pc.grad().unwrap(), pg.grad().unwrap());
            assert_eq!(gg.device(), CUDA, "{name}: gradient left the GPU");
            let d = max_abs_diff(&gc, &gg);
            assert!(
                d <= 1e-3 * (1e-3 + scale(&gc)),
                "step {step}: grad of {name}: max |diff| {d}"
            );
        }
        cpu_opt.step().unwrap();
        gpu_opt.step().unwrap();
        for ((name, pc), (_, pg)) in cpu_model.parameters().iter().zip(gpu_model.parameters()) {
            assert_eq!(pg.device(), CUDA, "{name}: parameter left the GPU");
            let d = max_abs_diff(&pc.data(), &pg.data());
            assert!(d <= 1e-5, "step {step}: {name} after SGD: max |diff| {d}");
        }
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn pytorch_fixtures_pass_on_cuda() {
    if !gpu_ready() {
        return;
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/torch");
    let dir = std::env::var_os("GRADLAB_FIXTURES").map_or(dir, PathBuf::from);
    if !dir.join("manifest.json").exists() {
        eprintln!("skipping: no fixtures at {}", dir.display());
        return;
    }
    let summary = run_dir_on(&dir, None, CUDA).unwrap();
    let failures: Vec<String> = summary
        .results
        .iter()
        .filter_map(|r| match &r.outcome {
            Outcome::Fail(why) => Some(format!("{}: {why}", r.name)),
            _ => None,
        })
        .collect();
    assert!(
        failures.is_empty(),
        "failing cases on CUDA:\n{}",
        failures.join("\n")
    );
    assert!(summary.passed() > 0, "no f32 case ran");
}
