//! Preparing the next batches on a background thread while the caller
//! computes on the current one.
//!
//! The worker runs the same [`Batches`] the synchronous path does and sends
//! finished batches through a bounded channel, so the output is identical and
//! memory stays bounded. Batches handed back with [`Prefetch::recycle`] are
//! refilled instead of allocating new ones.

use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::JoinHandle;

use crate::loader::{Batch, Batches};

/// The batches of one epoch, filled ahead of time on a worker thread.
/// Dropping it early stops the worker.
#[derive(Debug)]
pub struct Prefetch {
    ready: Option<Receiver<Batch>>,
    recycled: Sender<Batch>,
    worker: Option<JoinHandle<()>>,
    remaining: usize,
}

impl Prefetch {
    pub(crate) fn start(mut batches: Batches, depth: usize) -> Prefetch {
        let remaining = batches.remaining();
        let (ready_tx, ready_rx): (SyncSender<Batch>, _) = mpsc::sync_channel(depth.max(1));
        let (recycled_tx, recycled_rx) = mpsc::channel::<Batch>();
        let worker = std::thread::Builder::new()
            .name("gradlab-prefetch".to_string())
            .spawn(move || loop {
                let mut batch = recycled_rx.try_recv().unwrap_or_default();
                // A failed send means the consumer is gone: stop quietly.
                if !batches.next_into(&mut batch) || ready_tx.send(batch).is_err() {
                    return;
                }
            })
            .expect("spawning the prefetch thread");
        Prefetch {
            ready: Some(ready_rx),
            recycled: recycled_tx,
            worker: Some(worker),
            remaining,
        }
    }

    /// Hands a used batch back so its buffers are reused for a later one.
    pub fn recycle(&self, batch: Batch) {
        // After the last batch the worker is gone; the batch is just dropped.
        let _ = self.recycled.send(batch);
    }

    /// Re-raises a panic of the worker thread (a bug, not a data problem).
    fn join_worker(&mut self) {
        if let Some(worker) = self.worker.take() {
            if let Err(panic) = worker.join() {
                std::panic::resume_unwind(panic);
            }
        }
    }
}

impl Iterator for Prefetch {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        if self.remaining == 0 {
            return None;
        }
        match self.ready.as_ref()?.recv() {
            Ok(batch) => {
                self.remaining -= 1;
                Some(batch)
            }
            Err(_) => {
                // The worker ended before the last batch: only a panic does that.
                self.join_worker();
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Prefetch {}

impl Drop for Prefetch {
    fn drop(&mut self) {
        // Closing the channel first unblocks a worker waiting to send.
        self.ready.take();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}
