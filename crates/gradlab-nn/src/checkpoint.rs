//! Checkpoints as safetensors files, which PyTorch's `safetensors.torch.load_file` reads.
//!
//! A checkpoint is a set of named tensors plus string metadata (the
//! safetensors `__metadata__`). The trainer stores the model's state under
//! its PyTorch names (`conv1.weight`, `bn1.running_mean`), the optimizer's
//! under `optim.<param>.<key>`, and the run's facts (model, epoch, step,
//! optimizer, hyper-parameters, seed) as metadata.
//!
//! Saving writes a temporary file in the target's directory, syncs it to
//! disk and renames it over the target: a crash leaves the old file or the
//! new one, never half of one.

use crate::{Module, NnError, Optimizer, Result};
use gradlab_tensor::{DType, Tensor};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Prefix of optimizer state names.
pub const OPTIMIZER_PREFIX: &str = "optim.";

/// Named tensors and metadata, in memory.
#[derive(Clone, Debug, Default)]
pub struct Checkpoint {
    pub tensors: BTreeMap<String, Tensor>,
    pub metadata: BTreeMap<String, String>,
}

/// A tensor's bytes as safetensors wants them (little-endian).
struct Bytes {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl safetensors::View for &Bytes {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

fn to_bytes(tensor: &Tensor) -> Result<Bytes> {
    // Device tensors are written from a host copy.
    let tensor = &tensor.to_cpu()?;
    let (dtype, data) = match tensor.dtype() {
        DType::F32 => (
            Dtype::F32,
            tensor
                .contiguous_slice::<f32>("checkpoint")?
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        ),
        DType::F64 => (
            Dtype::F64,
            tensor
                .contiguous_slice::<f64>("checkpoint")?
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        ),
        DType::I64 => (
            Dtype::I64,
            tensor
                .contiguous_slice::<i64>("checkpoint")?
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        ),
    };
    Ok(Bytes {
        dtype,
        shape: tensor.dims().to_vec(),
        data,
    })
}

/// Little-endian values of `N` bytes each, in a fallibly allocated vector.
pub fn le_values<T, const N: usize>(
    op: &'static str,
    data: &[u8],
    from: fn([u8; N]) -> T,
) -> std::result::Result<Vec<T>, String> {
    let mut values = gradlab_cpu::try_vec(op, data.len() / N).map_err(|e| e.to_string())?;
    values.extend(
        data.chunks_exact(N)
            .map(|b| from(b.try_into().expect("chunks_exact gives N bytes"))),
    );
    Ok(values)
}

fn from_view(view: &TensorView<'_>) -> std::result::Result<Tensor, String> {
    const OP: &str = "reading a checkpoint tensor";
    let shape = view.shape().to_vec();
    let data = view.data();
    let tensor = match view.dtype() {
        Dtype::F32 => Tensor::from_vec(le_values(OP, data, f32::from_le_bytes)?, shape),
        Dtype::F64 => Tensor::from_vec(le_values(OP, data, f64::from_le_bytes)?, shape),
        Dtype::I64 => Tensor::from_vec(le_values(OP, data, i64::from_le_bytes)?, shape),
        other => {
            return Err(format!(
                "dtype {other:?} is not supported (f32, f64 and i64 are)"
            ))
        }
    };
    tensor.map_err(|e| e.to_string())
}

impl Checkpoint {
    pub fn new() -> Checkpoint {
        Checkpoint::default()
    }

    /// Adds every parameter and buffer of `module` under its name.
    pub fn add_module(&mut self, module: &dyn Module) {
        for (name, var) in module.state() {
            self.tensors.insert(name, var.data());
        }
    }

    /// Adds the optimizer's state under `optim.<param>.<key>` and its name
    /// and hyper-parameters as metadata (`optimizer`, `optim.<name>`).
    pub fn add_optimizer(&mut self, optimizer: &dyn Optimizer) {
        for (name, tensor) in optimizer.state() {
            self.tensors
                .insert(format!("{OPTIMIZER_PREFIX}{name}"), tensor);
        }
        self.metadata
            .insert("optimizer".into(), optimizer.name().into());
        for (name, value) in optimizer.hyper_parameters() {
            self.metadata
                .insert(format!("{OPTIMIZER_PREFIX}{name}"), value.to_string());
        }
    }

    /// The first NaN or infinity among the float tensors (model and
    /// optimizer state), as `(name, flat index, value)`: a checkpoint must
    /// not preserve a diverged state as if it were a good one.
    pub fn first_non_finite(&self) -> Option<(String, usize, f64)> {
        self.tensors.iter().find_map(|(name, tensor)| {
            if !tensor.dtype().is_float() {
                return None;
            }
            let values = tensor.to_vec_f64().ok()?;
            values
                .iter()
                .position(|v| !v.is_finite())
                .map(|i| (name.clone(), i, values[i]))
        })
    }

    /// The metadata value of `key`, if present.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).map(String::as_str)
    }

    /// The safetensors encoding of this checkpoint.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let encoded: Vec<(String, Bytes)> = self
            .tensors
            .iter()
            .map(|(n, t)| Ok((n.clone(), to_bytes(t)?)))
            .collect::<Result<_>>()?;
        let metadata: HashMap<String, String> = self.metadata.clone().into_iter().collect();
        safetensors::serialize(encoded.iter().map(|(n, b)| (n.as_str(), b)), Some(metadata))
            .map_err(|e| NnError::Checkpoint {
                path: PathBuf::from("<memory>"),
                msg: format!("cannot encode: {e}"),
            })
    }

    /// Writes the checkpoint to `path` atomically (temporary file, fsync, rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = self.to_bytes()?;
        write_atomically(path, &bytes)
    }

    /// Reads a checkpoint, checking that it is a complete safetensors file.
    pub fn load(path: &Path) -> Result<Checkpoint> {
        let bytes = std::fs::read(path).map_err(|source| NnError::Io {
            what: "reading checkpoint",
            path: path.to_path_buf(),
            source,
        })?;
        Checkpoint::from_bytes(&bytes).map_err(|msg| NnError::Checkpoint {
            path: path.to_path_buf(),
            msg,
        })
    }

    /// Decodes safetensors bytes; the error says what is wrong with them.
    pub fn from_bytes(bytes: &[u8]) -> std::result::Result<Checkpoint, String> {
        let (_, header) = SafeTensors::read_metadata(bytes)
            .map_err(|e| format!("not a valid safetensors file ({} bytes): {e}", bytes.len()))?;
        let files = SafeTensors::deserialize(bytes)
            .map_err(|e| format!("not a valid safetensors file ({} bytes): {e}", bytes.len()))?;
        let mut tensors = BTreeMap::new();
        for (name, view) in files.tensors() {
            let tensor = from_view(&view).map_err(|e| format!("tensor '{name}': {e}"))?;
            tensors.insert(name, tensor);
        }
        let metadata = header
            .metadata()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        Ok(Checkpoint { tensors, metadata })
    }

    /// Loads the module's parameters and buffers. Every one must be present
    /// with the same shape and dtype, and every non-optimizer tensor of the
    /// checkpoint must belong to the module; `path` names the file in errors.
    pub fn restore_module(&self, module: &dyn Module, path: &Path) -> Result<()> {
        let error = |msg: String| NnError::Checkpoint {
            path: path.to_path_buf(),
            msg,
        };
        let state = module.state();
        let mut loaded = Vec::with_capacity(state.len());
        for (name, var) in &state {
            let want = var.data();
            let Some(got) = self.tensors.get(name) else {
                return Err(error(format!(
                    "has no tensor '{name}' ({} {}) that the model needs",
                    want.dtype(),
                    want.shape()
                )));
            };
            if got.shape() != want.shape() || got.dtype() != want.dtype() {
                return Err(error(format!(
                    "tensor '{name}' is {} {} but the model needs {} {}",
                    got.dtype(),
                    got.shape(),
                    want.dtype(),
                    want.shape()
                )));
            }
            loaded.push((var, got.copy()?));
        }
        if let Some(extra) = self
            .tensors
            .keys()
            .find(|n| !n.starts_with(OPTIMIZER_PREFIX) && !state.iter().any(|(s, _)| s == *n))
        {
            return Err(error(format!(
                "holds tensor '{extra}' that the model does not have"
            )));
        }
        for (var, tensor) in loaded {
            var.set_data(tensor);
        }
        Ok(())
    }

    /// The optimizer state tensors, without their `optim.` prefix.
    pub fn optimizer_state(&self) -> Vec<(String, Tensor)> {
        self.tensors
            .iter()
            .filter_map(|(n, t)| {
                n.strip_prefix(OPTIMIZER_PREFIX)
                    .map(|s| (s.to_string(), t.clone()))
            })
            .collect()
    }

    /// Loads the optimizer state, checking that the optimizer kind matches.
    pub fn restore_optimizer(&self, optimizer: &mut dyn Optimizer, path: &Path) -> Result<()> {
        let saved = self.meta("optimizer").unwrap_or("(none)");
        if saved != optimizer.name() {
            return Err(NnError::Checkpoint {
                path: path.to_path_buf(),
                msg: format!(
                    "was written by optimizer '{saved}', not '{}'",
                    optimizer.name()
                ),
            });
        }
        optimizer
            .load_state(&self.optimizer_state())
            .map_err(|e| NnError::Checkpoint {
                path: path.to_path_buf(),
                msg: e.to_string(),
            })
    }
}

/// The temporary sibling [`write_atomically`] writes `file_name` through:
/// `.NAME.tmp-PID`.
fn temporary_name(file_name: &str, pid: u32) -> String {
    format!(".{file_name}.tmp-{pid}")
}

/// The process id of a temporary file name of [`temporary_name`]'s form.
fn temporary_owner(name: &str) -> Option<u32> {
    let (stem, pid) = name.strip_prefix('.')?.rsplit_once(".tmp-")?;
    if stem.is_empty() || pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// Whether process `pid` is running, when the system can say (Linux's
/// `/proc`); `None` elsewhere, where nothing is removed.
fn process_alive(pid: u32) -> Option<bool> {
    let proc_root = Path::new("/proc");
    if !proc_root.join("self").exists() {
        return None;
    }
    Some(proc_root.join(pid.to_string()).exists())
}

/// Removes the temporary files that writers killed mid-write (`kill -9`, a
/// power cut) left in `dir`: those of processes that no longer run. A
/// process with the same id that runs now keeps its files, and failures
/// are ignored: this is tidying, not part of the write.
pub fn remove_stale_temporaries(dir: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return removed;
    };
    let me = std::process::id();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(temporary_owner) else {
            continue;
        };
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if pid != me && is_file && process_alive(pid) == Some(false) {
            let path = entry.path();
            if std::fs::remove_file(&path).is_ok() {
                removed.push(path);
            }
        }
    }
    removed
}

/// Writes `bytes` to `path` through a temporary sibling file that is synced
/// and renamed, so that `path` never holds a partial write. Temporary files
/// that killed writers left in the directory are removed first.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |what: &'static str, p: &Path| {
        let p = p.to_path_buf();
        move |source| NnError::Io {
            what,
            path: p,
            source,
        }
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    remove_stale_temporaries(&dir);
    let tmp = dir.join(temporary_name(&file_name, std::process::id()));
    let result = (|| {
        let mut file = File::create(&tmp).map_err(io("creating", &tmp))?;
        file.write_all(bytes).map_err(io("writing", &tmp))?;
        file.sync_all().map_err(io("syncing", &tmp))?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(io("renaming into", path))?;
        // The rename itself is durable only once the directory is synced;
        // not every platform can open a directory, so a failure here is ignored.
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::{BatchNorm2d, Linear};
    use crate::optim::{Sgd, SgdConfig};
    use crate::Sequential;
    use gradlab_autograd::Var;
    use gradlab_tensor::Rng;

    fn tmp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("gradlab-nn-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn model(seed: u64, out: usize) -> Sequential {
        let mut rng = Rng::new(seed);
        Sequential::new()
            .push("bn", BatchNorm2d::new(2, DType::F32))
            .unwrap()
            .push("fc", Linear::new(3, out, true, DType::F32, &mut rng))
            .unwrap()
    }

    #[test]
    fn round_trips_model_optimizer_and_metadata() {
        let dir = tmp_dir("roundtrip");
        let path = dir.join("a.safetensors");
        let m = model(1, 4);
        let params = m.parameters();
        let mut opt = Sgd::new(params.clone(), SgdConfig::new(0.1).with_momentum(0.9)).unwrap();
        for (_, p) in &params {
            p.set_grad(Some(Var::constant(p.data().ones_like().unwrap())));
        }
        opt.step().unwrap();
        let mut ck = Checkpoint::new();
        ck.add_module(&m);
        ck.add_optimizer(&opt);
        ck.metadata.insert("model".into(), "tiny".into());
        ck.save(&path).unwrap();
        assert!(std::fs::read_dir(&dir).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains(".tmp-")));

        let back = Checkpoint::load(&path).unwrap();
        assert_eq!(back.meta("model"), Some("tiny"));
        assert_eq!(back.meta("optimizer"), Some("sgd"));
        assert_eq!(back.meta("optim.momentum"), Some("0.9"));
        let names: Vec<&str> = back.tensors.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "bn.bias",
                "bn.num_batches_tracked",
                "bn.running_mean",
                "bn.running_var",
                "bn.weight",
                "fc.bias",
                "fc.weight",
                "optim.bn.bias.momentum_buffer",
                "optim.bn.weight.momentum_buffer",
                "optim.fc.bias.momentum_buffer",
                "optim.fc.weight.momentum_buffer"
            ]
        );
        let fresh = model(2, 4);
        back.restore_module(&fresh, &path).unwrap();
        for ((n, a), (_, b)) in m.state().iter().zip(fresh.state()) {
            assert_eq!(
                a.data().to_vec_f64().unwrap(),
                b.data().to_vec_f64().unwrap(),
                "{n}"
            );
        }
        let mut opt2 =
            Sgd::new(fresh.parameters(), SgdConfig::new(0.1).with_momentum(0.9)).unwrap();
        back.restore_optimizer(&mut opt2, &path).unwrap();
        assert_eq!(opt2.state().len(), 4);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn temporaries_of_dead_writers_are_removed_on_the_next_write() {
        let dir = tmp_dir("stale");
        // A child that has exited stands for a writer killed mid-write.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let stale = dir.join(temporary_name("last.safetensors", dead));
        let live = dir.join(temporary_name("last.safetensors", std::process::id()));
        let unrelated = dir.join(".notes.tmp-draft");
        for p in [&stale, &live, &unrelated] {
            std::fs::write(p, b"partial").unwrap();
        }
        if process_alive(dead) == Some(false) {
            write_atomically(&dir.join("other.bin"), b"data").unwrap();
            assert!(!stale.exists(), "the dead writer's file is removed");
        }
        assert!(live.exists() && unrelated.exists());
        assert_eq!(temporary_owner(".last.safetensors.tmp-123"), Some(123));
        assert_eq!(temporary_owner(".last.safetensors.tmp-12x"), None);
        assert_eq!(temporary_owner("last.safetensors.tmp-12"), None);
        assert_eq!(temporary_owner("..tmp-12"), None);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn non_finite_values_are_found_by_name() {
        let mut ck = Checkpoint::new();
        ck.add_module(&model(1, 4));
        assert_eq!(ck.first_non_finite(), None);
        ck.tensors.insert(
            "fc.bias".into(),
            Tensor::from_vec(vec![0.0f32, f32::NAN, 1.0, 2.0], [4]).unwrap(),
        );
        let (name, index, value) = ck.first_non_finite().unwrap();
        assert_eq!((name.as_str(), index), ("fc.bias", 1));
        assert!(value.is_nan());
    }

    #[test]
    fn mismatches_and_corruption_are_named() {
        let dir = tmp_dir("mismatch");
        let path = dir.join("b.safetensors");
        let mut ck = Checkpoint::new();
        ck.add_module(&model(1, 4));
        ck.save(&path).unwrap();
        let back = Checkpoint::load(&path).unwrap();
        let err = back.restore_module(&model(1, 5), &path).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "checkpoint {}: tensor 'fc.weight' is f32 [4, 3] but the model needs f32 [5, 3]",
                path.display()
            )
        );
        let other = Sequential::new()
            .push("fc", Linear::new(3, 4, true, DType::F32, &mut Rng::new(0)))
            .unwrap();
        let err = back.restore_module(&other, &path).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("holds tensor 'bn.bias' that the model does not have"),
            "{err}"
        );
        let bigger = model(1, 4)
            .push(
                "head",
                Linear::new(4, 2, false, DType::F32, &mut Rng::new(0)),
            )
            .unwrap();
        let err = back.restore_module(&bigger, &path).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("has no tensor 'head.weight' (f32 [2, 4]) that the model needs"),
            "{err}"
        );
        let mut sgd = Sgd::new(vec![], SgdConfig::new(0.1)).unwrap();
        let err = back.restore_optimizer(&mut sgd, &path).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("was written by optimizer '(none)', not 'sgd'"),
            "{err}"
        );

        // A truncated file is refused, not half-loaded.
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();
        let err = Checkpoint::load(&path).unwrap_err();
        assert!(
            err.to_string().contains("not a valid safetensors file"),
            "{err}"
        );
        let err = Checkpoint::load(&dir.join("absent.safetensors")).unwrap_err();
        assert!(err.to_string().starts_with("reading checkpoint "), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
