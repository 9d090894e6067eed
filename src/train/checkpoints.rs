//! What the trainer writes into checkpoints and checks when it reads them back.

use super::args::{parse_value, value_name, DatasetKind, ModelKind, TrainArgs};
use gradlab_nn::{Checkpoint, Module, Optimizer};
use std::path::{Path, PathBuf};

/// Checkpoint format tag in the metadata.
pub const FORMAT: &str = "gradlab-checkpoint/1";

/// Where the run is: epochs completed and optimizer steps taken.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    pub epoch: usize,
    pub step: usize,
}

/// A checkpoint of the whole run state after `progress`.
pub fn snapshot(
    args: &TrainArgs,
    model: &dyn Module,
    optimizer: &dyn Optimizer,
    progress: Progress,
) -> Checkpoint {
    let mut ck = Checkpoint::new();
    ck.add_module(model);
    ck.add_optimizer(optimizer);
    let facts = [
        ("format", FORMAT.to_string()),
        ("model", value_name(args.model)),
        ("dataset", value_name(args.dataset)),
        ("epoch", progress.epoch.to_string()),
        ("step", progress.step.to_string()),
        ("seed", args.seed.to_string()),
        ("batch_size", args.batch_size.to_string()),
        ("base_lr", args.lr.to_string()),
        ("epochs", args.epochs.to_string()),
        ("schedule", value_name(args.schedule)),
        ("normalization", value_name(args.normalization)),
        ("augment", args.augment.to_string()),
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

/// Reads a checkpoint and checks it holds a trainer run of `model` (when given).
pub fn open(
    path: &Path,
    model: Option<ModelKind>,
) -> Result<(Checkpoint, ModelKind, DatasetKind), String> {
    let ck = Checkpoint::load(path).map_err(|e| e.to_string())?;
    let here = path.display();
    if ck.meta("format") != Some(FORMAT) {
        return Err(format!(
            "checkpoint {here}: not written by gradlab train (metadata format is {:?}, expected {FORMAT:?})",
            ck.meta("format").unwrap_or("missing")
        ));
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
    Ok((ck, kind, dataset))
}

/// Loads a checkpoint into the model and optimizer of a run with `args`,
/// returning where the run stopped.
pub fn resume(
    path: &Path,
    args: &TrainArgs,
    model: &dyn Module,
    optimizer: &mut dyn Optimizer,
) -> Result<Progress, String> {
    let (ck, _, dataset) = open(path, Some(args.model))?;
    let here = path.display();
    if dataset != args.dataset {
        return Err(format!(
            "checkpoint {here} was trained on {}, not {} as requested",
            value_name(dataset),
            value_name(args.dataset)
        ));
    }
    ck.restore_module(model, path).map_err(|e| e.to_string())?;
    ck.restore_optimizer(optimizer, path)
        .map_err(|e| e.to_string())?;
    let number = |key: &str| -> Result<usize, String> {
        ck.meta(key).and_then(|v| v.parse().ok()).ok_or_else(|| {
            format!("checkpoint {here}: metadata '{key}' is missing or not a number")
        })
    };
    for (key, now) in [
        ("seed", args.seed.to_string()),
        ("batch_size", args.batch_size.to_string()),
    ] {
        if let Some(then) = ck.meta(key) {
            if then != now {
                eprintln!("note: the checkpoint was trained with {key} {then}, this run uses {now}: the data order will differ");
            }
        }
    }
    Ok(Progress {
        epoch: number("epoch")?,
        step: number("step")?,
    })
}
