//! What the trainer writes into checkpoints and checks when it reads them back.

use super::args::{parse_value, value_name, DatasetKind, ModelKind};
use super::config::RunConfig;
use super::models::build_model;
use gradlab_data::CIFAR10_DIMS;
use gradlab_nn::checkpoint::OPTIMIZER_PREFIX;
use gradlab_nn::{Checkpoint, Module, Optimizer};
use gradlab_tensor::Rng;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Checkpoint format tag in the metadata.
pub const FORMAT: &str = "gradlab-checkpoint/1";

/// Where the run is: epochs completed and optimizer steps taken.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    pub epoch: usize,
    pub step: usize,
}

/// A checkpoint of the whole run state after `progress`, for a run of
/// `steps_per_epoch` steps per epoch.
pub fn snapshot(
    config: &RunConfig,
    model: &dyn Module,
    optimizer: &dyn Optimizer,
    progress: Progress,
    steps_per_epoch: usize,
) -> Checkpoint {
    let mut ck = Checkpoint::new();
    ck.add_module(model);
    ck.add_optimizer(optimizer);
    let facts = [
        ("format", FORMAT.to_string()),
        ("model", value_name(config.model)),
        ("dataset", value_name(config.dataset)),
        ("epoch", progress.epoch.to_string()),
        ("step", progress.step.to_string()),
        ("steps_per_epoch", steps_per_epoch.to_string()),
        ("seed", config.seed.to_string()),
        ("batch_size", config.batch_size.to_string()),
        ("base_lr", config.lr.to_string()),
        ("epochs", config.epochs.to_string()),
        ("schedule", value_name(config.schedule)),
        ("normalization", value_name(config.normalization)),
        ("augment", config.augment.to_string()),
    ];
    for (key, value) in facts {
        ck.metadata.insert(key.to_string(), value);
    }
    ck
}

/// The paths of the checkpoint after epoch `epoch` (1-based) and of `last.safetensors`.
pub fn checkpoint_paths(dir: &Path, model: ModelKind, epoch: usize) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{}-epoch{epoch}.safetensors", value_name(model))),
        dir.join("last.safetensors"),
    )
}

/// Checkpoint files (`last.safetensors`, `<model>-epoch<N>.safetensors`)
/// already in `dir`, sorted.
pub fn existing_checkpoints(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|name| {
            name == "last.safetensors"
                || (name.ends_with(".safetensors") && name.contains("-epoch"))
        })
        .collect();
    found.sort();
    found
}

/// Where a checkpoint file came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// `gradlab train`, with the run's facts in its metadata.
    Trainer { dataset: DatasetKind },
    /// A bare state_dict (PyTorch's `safetensors.torch.save_file(model.state_dict())`):
    /// tensors under the model's names, nothing else.
    StateDict,
}

/// A checkpoint read from disk, with the model it holds.
pub struct Opened {
    pub checkpoint: Checkpoint,
    pub model: ModelKind,
    pub origin: Origin,
}

/// The tensor names of `kind`'s parameters and buffers.
fn state_names(kind: ModelKind) -> Result<BTreeSet<String>, String> {
    // Names do not depend on the image size or class count.
    let model = build_model(kind, CIFAR10_DIMS, 10, &mut Rng::new(0)).map_err(|e| e.to_string())?;
    Ok(model.state().into_iter().map(|(name, _)| name).collect())
}

/// Which model a bare state_dict holds, from its tensor names.
fn recognise(ck: &Checkpoint, path: &Path, want: Option<ModelKind>) -> Result<ModelKind, String> {
    let names: BTreeSet<String> = ck
        .tensors
        .keys()
        .filter(|n| !n.starts_with(OPTIMIZER_PREFIX))
        .cloned()
        .collect();
    let candidates = match want {
        Some(kind) => vec![kind],
        None => vec![ModelKind::Lenet, ModelKind::Convnet],
    };
    for &kind in &candidates {
        if state_names(kind)? == names {
            return Ok(kind);
        }
    }
    let listed = names.iter().take(6).cloned().collect::<Vec<_>>().join(", ");
    let kinds = candidates
        .iter()
        .map(|&k| value_name(k))
        .collect::<Vec<_>>()
        .join(" or ");
    let format = match ck.meta("format") {
        Some(f) => format!("metadata format is {f:?}, not {FORMAT:?}"),
        None => "no metadata format".to_string(),
    };
    Err(format!(
        "checkpoint {}: not written by gradlab train ({format}), and not a state_dict of {kinds}: its tensors are {listed}{}",
        path.display(),
        if names.len() > 6 { ", ..." } else { "" }
    ))
}

/// Reads a checkpoint: one written by `gradlab train` (checked to hold
/// `model` when given), or a bare state_dict whose tensor names are those
/// of `model` (or, when not given, of one of the trainer's models).
pub fn open(path: &Path, model: Option<ModelKind>) -> Result<Opened, String> {
    let ck = Checkpoint::load(path).map_err(|e| e.to_string())?;
    let here = path.display();
    if ck.meta("format") != Some(FORMAT) {
        // Not the trainer's: a state_dict, if its names are a model's.
        let kind = recognise(&ck, path, model)?;
        return Ok(Opened {
            checkpoint: ck,
            model: kind,
            origin: Origin::StateDict,
        });
    }
    let saved_model = ck.meta("model").unwrap_or("missing");
    let kind = parse_value::<ModelKind>(saved_model)
        .ok_or_else(|| format!("checkpoint {here}: unknown model '{saved_model}'"))?;
    if let Some(want) = model {
        if want != kind {
            return Err(format!(
                "checkpoint {here} holds model '{saved_model}', not '{}' as requested",
                value_name(want)
            ));
        }
    }
    let saved_dataset = ck.meta("dataset").unwrap_or("missing");
    let dataset = parse_value::<DatasetKind>(saved_dataset)
        .ok_or_else(|| format!("checkpoint {here}: unknown dataset '{saved_dataset}'"))?;
    Ok(Opened {
        checkpoint: ck,
        model: kind,
        origin: Origin::Trainer { dataset },
    })
}

/// Refuses a checkpoint holding NaN or infinity: it is not a state to
/// evaluate or continue from.
pub fn check_finite(ck: &Checkpoint, path: &Path) -> Result<(), String> {
    match ck.first_non_finite() {
        None => Ok(()),
        Some((name, index, value)) => Err(format!(
            "checkpoint {}: tensor '{name}' holds {value} at flat index {index}; a diverged state is not loaded",
            path.display()
        )),
    }
}

/// Loads the model weights of `path` (a trainer checkpoint or a bare
/// state_dict) into `model`, for `train --init-from`.
pub fn init_from(path: &Path, kind: ModelKind, model: &dyn Module) -> Result<(), String> {
    let opened = open(path, Some(kind))?;
    check_finite(&opened.checkpoint, path)?;
    opened
        .checkpoint
        .restore_module(model, path)
        .map_err(|e| e.to_string())
}

/// Loads a checkpoint into the model and optimizer of a run configured as
/// `config` (whose epochs have `steps_per_epoch` steps), returning where the
/// run stopped.
///
/// Refused: a bare state_dict (no run to continue), another data set, a
/// non-finite state, a step count that disagrees with the epoch, and
/// optimizer state missing for a run that has stepped (it would restart
/// from zero without a word). `--reset-optimizer` allows the last two
/// deliberately: the optimizer starts afresh and the step count follows
/// the epoch.
pub fn resume(
    path: &Path,
    config: &RunConfig,
    reset_optimizer: bool,
    model: &dyn Module,
    optimizer: &mut dyn Optimizer,
    steps_per_epoch: usize,
) -> Result<Progress, String> {
    let Opened {
        checkpoint: ck,
        origin,
        ..
    } = open(path, Some(config.model))?;
    let here = path.display();
    let Origin::Trainer { dataset } = origin else {
        return Err(format!(
            "checkpoint {here} is a bare state_dict with no run to resume; use --init-from {here} to start a run from its weights"
        ));
    };
    if dataset != config.dataset {
        return Err(format!(
            "checkpoint {here} was trained on {}, not {} as requested",
            value_name(dataset),
            value_name(config.dataset)
        ));
    }
    check_finite(&ck, path)?;
    ck.restore_module(model, path).map_err(|e| e.to_string())?;
    let number = |key: &str| -> Result<usize, String> {
        ck.meta(key).and_then(|v| v.parse().ok()).ok_or_else(|| {
            format!("checkpoint {here}: metadata '{key}' is missing or not a number")
        })
    };
    let epoch = number("epoch")?;
    let step = number("step")?;
    for (key, now) in [
        ("seed", config.seed.to_string()),
        ("batch_size", config.batch_size.to_string()),
    ] {
        if let Some(then) = ck.meta(key) {
            if then != now {
                eprintln!("note: the checkpoint was trained with {key} {then}, this run uses {now}: the data order will differ");
            }
        }
    }
    let consistent = step_matches_epoch(&ck, config, epoch, step, steps_per_epoch);
    if reset_optimizer {
        let step = epoch.saturating_mul(steps_per_epoch);
        eprintln!(
            "note: --reset-optimizer: the optimizer starts afresh after epoch {epoch}, counting from step {step}"
        );
        return Ok(Progress { epoch, step });
    }
    consistent.map_err(|why| {
        format!("checkpoint {here}: {why}; pass --reset-optimizer to restart the optimizer at this epoch deliberately")
    })?;
    ck.restore_optimizer(optimizer, path)
        .map_err(|e| e.to_string())?;
    let missing = optimizer.missing_state();
    if step > 0 && !missing.is_empty() {
        let shown = missing
            .iter()
            .take(3)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        let more = if missing.len() > 3 {
            format!(" and {} more", missing.len() - 3)
        } else {
            String::new()
        };
        return Err(format!(
            "checkpoint {here}: was saved after {step} steps but lacks the {} state {shown}{more}; \
             resuming would restart it from zero. Pass --reset-optimizer to do that deliberately",
            optimizer.name()
        ));
    }
    Ok(Progress { epoch, step })
}

/// Checks that `step` is the number of steps `epoch` epochs take: with the
/// checkpoint's own `steps_per_epoch` when it records one, with this run's
/// when it was written with the same batch size, else that it is a whole
/// number of steps per epoch.
fn step_matches_epoch(
    ck: &Checkpoint,
    config: &RunConfig,
    epoch: usize,
    step: usize,
    steps_now: usize,
) -> Result<(), String> {
    let same_batch = ck.meta("batch_size") == Some(config.batch_size.to_string().as_str());
    let per_epoch = match ck.meta("steps_per_epoch") {
        Some(v) => Some(
            v.parse::<usize>()
                .map_err(|_| format!("metadata 'steps_per_epoch' is not a number ({v:?})"))?,
        ),
        None if same_batch => Some(steps_now),
        None => None,
    };
    let fits = match per_epoch {
        Some(n) => epoch.checked_mul(n) == Some(step),
        None if epoch == 0 => step == 0,
        None => step.is_multiple_of(epoch) && step >= epoch,
    };
    if fits {
        return Ok(());
    }
    Err(match per_epoch {
        Some(n) => format!(
            "its step {step} does not match its epoch {epoch} (at {n} steps per epoch, epoch {epoch} ends at step {})",
            epoch
                .checked_mul(n)
                .map_or_else(|| "past any count".to_string(), |s| s.to_string())
        ),
        None => format!("its step {step} is not a whole number of steps for each of its {epoch} epochs"),
    })
}
