//! Checkpoint reading on thousands of damaged variants of a valid file
//! (model, SGD and Adam state, metadata): each decodes to a checkpoint or
//! an error saying what is wrong, and a decoded one either loads into the
//! model and optimizer or is refused with a message. Never a panic or an
//! abort, whatever a header claims.

#[path = "../../gradlab-data/tests/support/mutate.rs"]
mod mutate;

use gradlab_autograd::Var;
use gradlab_nn::layers::{BatchNorm2d, Linear};
use gradlab_nn::{Adam, AdamConfig, Checkpoint, Module, Optimizer, Sequential, Sgd, SgdConfig};
use gradlab_tensor::{DType, Rng};
use mutate::{apply, damage, fuzz, put};
use proptest::prelude::*;

fn model() -> Sequential {
    let mut rng = Rng::new(3);
    Sequential::new()
        .push("bn", BatchNorm2d::new(2, DType::F32))
        .unwrap()
        .push("fc", Linear::new(3, 4, true, DType::F64, &mut rng))
        .unwrap()
}

/// A stepped optimizer's checkpoint bytes (`adam` picks Adam, else SGD with momentum).
fn valid(adam: bool) -> Vec<u8> {
    let m = model();
    let params = m.parameters();
    let mut opt: Box<dyn Optimizer> = if adam {
        Box::new(Adam::new(params.clone(), AdamConfig::adam(0.01)).unwrap())
    } else {
        Box::new(Sgd::new(params.clone(), SgdConfig::new(0.1).with_momentum(0.9)).unwrap())
    };
    for (_, p) in &params {
        p.set_grad(Some(Var::constant(p.data().ones_like().unwrap())));
    }
    opt.step().unwrap();
    let mut ck = Checkpoint::new();
    ck.add_module(&m);
    ck.add_optimizer(opt.as_ref());
    ck.metadata.insert("epoch".into(), "1".into());
    ck.to_bytes().unwrap()
}

fn check(bytes: &[u8], adam: bool) -> Result<(), TestCaseError> {
    let ck = match Checkpoint::from_bytes(bytes) {
        Ok(ck) => ck,
        Err(msg) => {
            prop_assert!(!msg.is_empty());
            return Ok(());
        }
    };
    let _ = ck.first_non_finite();
    let m = model();
    let path = std::path::Path::new("fuzzed.safetensors");
    if let Err(e) = ck.restore_module(&m, path) {
        prop_assert!(
            e.to_string().starts_with("checkpoint fuzzed.safetensors"),
            "{}",
            e
        );
        return Ok(());
    }
    let params = m.parameters();
    let mut opt: Box<dyn Optimizer> = if adam {
        Box::new(Adam::new(params, AdamConfig::adam(0.01)).unwrap())
    } else {
        Box::new(Sgd::new(params, SgdConfig::new(0.1).with_momentum(0.9)).unwrap())
    };
    match ck.restore_optimizer(opt.as_mut(), path) {
        // A loaded state must be usable: one more step runs.
        Ok(()) => {
            for (_, p) in m.parameters() {
                p.set_grad(Some(Var::constant(p.data().ones_like().unwrap())));
            }
            opt.step().unwrap();
        }
        Err(e) => prop_assert!(
            e.to_string().starts_with("checkpoint fuzzed.safetensors"),
            "{}",
            e
        ),
    }
    Ok(())
}

#[test]
fn damaged_checkpoints_decode_or_are_refused() {
    let (sgd, adam) = (valid(false), valid(true));
    fuzz(
        "checkpoint",
        4000,
        (damage(), any::<bool>()),
        |_, ((kind, seed), use_adam)| {
            let valid = if use_adam { &adam } else { &sgd };
            check(&apply(valid, kind, seed), use_adam)
        },
    );
}

#[test]
fn damaged_checkpoint_files_load_or_are_refused() {
    let sgd = valid(false);
    fuzz("checkpoint-file", 500, damage(), |dir, (kind, seed)| {
        let path = dir.join("ck.safetensors");
        put(&path, &apply(&sgd, kind, seed));
        if let Err(e) = Checkpoint::load(&path) {
            prop_assert!(e.to_string().contains(&path.display().to_string()), "{}", e);
        }
        Ok(())
    });
}
