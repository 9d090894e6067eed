//! The memory a graph holds for its backward pass, over time.
//!
//! Each recorded node keeps its inputs (and what its op saves) alive until
//! its backward has run. Buffers are counted once however many nodes hold
//! them (a ReLU's output kept by the max-pool after it and by nothing else
//! is one buffer; a weight used twice is one buffer).

use gradlab_tensor::Tensor;
use std::collections::HashMap;

/// One buffer a node holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Held {
    pub storage: usize,
    pub bytes: usize,
    pub parameter: bool,
}

/// The distinct buffers among `tensors` (`true`: a parameter).
pub(crate) fn distinct(tensors: impl IntoIterator<Item = (Tensor, bool)>) -> Vec<Held> {
    let mut held: Vec<Held> = Vec::new();
    for (t, parameter) in tensors {
        let storage = t.storage_id();
        if !held.iter().any(|h| h.storage == storage) {
            held.push(Held {
                storage,
                bytes: t.storage_bytes(),
                parameter,
            });
        }
    }
    held
}

/// Live buffers with their holder counts, and the peaks reached.
#[derive(Default)]
pub(crate) struct SavedMemory {
    live: HashMap<usize, (Held, usize)>,
    bytes: usize,
    activation_bytes: usize,
    pub peak: usize,
    pub activation_peak: usize,
}

impl SavedMemory {
    /// A node recorded: its buffers are held until its backward runs.
    pub fn hold(&mut self, held: &[Held]) {
        for h in held {
            let entry = self.live.entry(h.storage).or_insert((*h, 0));
            entry.1 += 1;
            if entry.1 == 1 {
                self.bytes += h.bytes;
                if !h.parameter {
                    self.activation_bytes += h.bytes;
                }
            }
        }
        self.peak = self.peak.max(self.bytes);
        self.activation_peak = self.activation_peak.max(self.activation_bytes);
    }

    /// A node's backward ran: it no longer needs its buffers.
    pub fn release(&mut self, held: &[Held]) {
        for h in held {
            if let Some(entry) = self.live.get_mut(&h.storage) {
                entry.1 -= 1;
                if entry.1 == 0 {
                    let (gone, _) = self.live.remove(&h.storage).expect("present");
                    self.bytes -= gone.bytes;
                    if !gone.parameter {
                        self.activation_bytes -= gone.bytes;
                    }
                }
            }
        }
    }
}
