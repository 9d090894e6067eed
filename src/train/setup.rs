//! Turning options into the pieces of a run: checked numbers, the
//! optimizer, the schedule, and the thread pool.

use super::args::{OptimizerKind, ScheduleKind};
use super::config::RunConfig;
use gradlab_autograd::Var;
use gradlab_nn::{Adam, AdamConfig, LrSchedule, Module, OneCycle, Optimizer, Sgd, SgdConfig};
use gradlab_tensor::Device;

/// The batch size as a count, refusing zero and negative values.
pub fn positive_batch_size(batch_size: i64) -> Result<usize, String> {
    if batch_size <= 0 {
        return Err(format!(
            "--batch-size must be a positive integer, got {batch_size}"
        ));
    }
    Ok(batch_size as usize)
}

/// The device to run on; a CUDA device is opened here so that a missing
/// driver is reported before any data is loaded.
pub fn check_device(device: &str) -> Result<Device, String> {
    let parsed = device.parse::<Device>()?;
    open_device(parsed).map_err(|e| format!("--device {device}: {e}"))?;
    Ok(parsed)
}

/// Opens `device` (a no-op for the CPU), with the driver's own error, so
/// that the caller can name the flag that asked for it.
pub fn open_device(device: Device) -> Result<(), String> {
    match device {
        Device::Cpu => Ok(()),
        Device::Cuda(0) => gradlab_cuda::Gpu::global()
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Device::Cuda(n) => Err(format!(
            "cuda:{n} is not available: gradlab drives one GPU, cuda:0"
        )),
    }
}

/// Moves the model's parameters and buffers, and the optimizer's state, to
/// `device` (the optimizer shares the parameter vars, so it follows).
pub fn move_to_device(
    model: &dyn Module,
    optimizer: Option<&mut dyn Optimizer>,
    device: Device,
) -> Result<(), String> {
    if device == Device::Cpu {
        return Ok(());
    }
    for (_, var) in model.state() {
        var.set_data(var.data().to_device(device).map_err(|e| e.to_string())?);
    }
    if let Some(optimizer) = optimizer {
        let state = optimizer
            .state()
            .into_iter()
            .map(|(name, t)| Ok((name, t.to_device(device)?)))
            .collect::<Result<Vec<_>, gradlab_tensor::TensorError>>()
            .map_err(|e| e.to_string())?;
        optimizer.load_state(&state).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The optimizer the options ask for, over `params`.
pub fn build_optimizer(
    config: &RunConfig,
    params: Vec<(String, Var)>,
) -> Result<Box<dyn Optimizer>, String> {
    let optimizer: Box<dyn Optimizer> = match config.optimizer {
        OptimizerKind::Sgd => {
            let sgd = SgdConfig::new(config.lr)
                .with_momentum(config.momentum)
                .with_weight_decay(config.weight_decay);
            Box::new(Sgd::new(params, sgd).map_err(|e| e.to_string())?)
        }
        OptimizerKind::Adam | OptimizerKind::Adamw => {
            let base = if config.optimizer == OptimizerKind::Adam {
                AdamConfig::adam(config.lr)
            } else {
                AdamConfig::adamw(config.lr)
            };
            let adam = AdamConfig {
                beta1: config.momentum,
                weight_decay: config.weight_decay,
                ..base
            };
            Box::new(Adam::new(params, adam).map_err(|e| e.to_string())?)
        }
    };
    Ok(optimizer)
}

/// The schedule the options ask for, over `epochs` epochs of `steps_per_epoch` steps.
pub fn build_schedule(config: &RunConfig, steps_per_epoch: usize) -> Result<LrSchedule, String> {
    let total_steps = config.epochs * steps_per_epoch;
    let schedule = match config.schedule {
        ScheduleKind::None => LrSchedule::Constant,
        ScheduleKind::Step => {
            let epochs = config.step_epochs.unwrap_or((config.epochs / 3).max(1));
            LrSchedule::Step {
                step_size: epochs * steps_per_epoch,
                gamma: config.gamma,
            }
        }
        ScheduleKind::Cosine => LrSchedule::Cosine {
            total_steps,
            min_lr: 0.0,
        },
        ScheduleKind::Onecycle => {
            let mut cycle = OneCycle::new(total_steps);
            // Momentum cycling needs a momentum to cycle, as in PyTorch.
            cycle.cycle_momentum = config.optimizer != OptimizerKind::Sgd || config.momentum > 0.0;
            LrSchedule::OneCycle(cycle)
        }
    };
    schedule.validate().map_err(|e| e.to_string())?;
    Ok(schedule)
}

/// Runs `f` on a pool of `threads` workers (by default rayon's choice: one
/// per core, or `RAYON_NUM_THREADS`), so every kernel the run calls uses
/// that many threads. `f` itself runs on one of the workers: a kernel's
/// parallel loop then starts on the calling worker and wakes only the
/// others, instead of handing every loop from an outside thread to the pool
/// and sleeping until it ends (about 15% of a LeNet step at batch 64 on two
/// cores went to those hand-offs).
pub fn with_threads<R: Send>(
    threads: Option<usize>,
    f: impl FnOnce() -> R + Send,
) -> Result<R, String> {
    crate::threads::check_threads(threads)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.unwrap_or(0))
        .build()
        .map_err(|e| format!("cannot start the thread pool: {e}"))?;
    Ok(pool.install(f))
}

#[cfg(test)]
mod tests {
    use super::with_threads;

    #[test]
    fn the_run_happens_on_a_worker_of_a_pool_of_the_asked_size() {
        let (on_worker, threads) = with_threads(Some(3), || {
            (
                rayon::current_thread_index().is_some(),
                rayon::current_num_threads(),
            )
        })
        .unwrap();
        assert!(on_worker);
        assert_eq!(threads, 3);
        // Rayon's default size when none is asked for.
        let default = with_threads(None, rayon::current_num_threads).unwrap();
        assert_eq!(
            default,
            rayon::ThreadPoolBuilder::new()
                .build()
                .unwrap()
                .current_num_threads()
        );
        assert_eq!(
            with_threads(Some(0), || ()).unwrap_err(),
            "--threads must be at least 1"
        );
    }
}
