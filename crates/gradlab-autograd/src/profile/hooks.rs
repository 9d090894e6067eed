//! The profiler's hooks in the graph and the engine. Each is one
//! thread-local check when no profile runs on the thread.

use super::session::{Session, Settings};
use crate::Var;
use gradlab_tensor::backend::meter;
use gradlab_tensor::Tensor;
use std::cell::RefCell;
use std::panic::Location;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Instant;

thread_local! {
    static SESSION: RefCell<Option<Session>> = const { RefCell::new(None) };
}

// 0 = not read yet, 1 = off, 2 = on, 3 = on with inspection.
static FROM_ENVIRONMENT: AtomicU8 = AtomicU8::new(0);

/// What `GRADLAB_PROFILE` asks for: `None` (unset or anything else), a
/// profile of every step (`1` or `true`), or one with inspection
/// (`inspect`).
fn environment_asks() -> Option<bool> {
    let read = match FROM_ENVIRONMENT.load(Ordering::Relaxed) {
        0 => {
            let value = std::env::var("GRADLAB_PROFILE").unwrap_or_default();
            let read = match value.as_str() {
                "1" | "true" => 2,
                "inspect" => 3,
                _ => 1,
            };
            FROM_ENVIRONMENT.store(read, Ordering::Relaxed);
            read
        }
        v => v,
    };
    (read >= 2).then_some(read == 3)
}

/// True while a profile records on this thread (starting the one
/// `GRADLAB_PROFILE` asks for on first use).
pub(crate) fn active() -> bool {
    if SESSION.with(|s| s.borrow().is_some()) {
        return true;
    }
    let Some(inspect) = environment_asks() else {
        return false;
    };
    install(Some(Session::new(Settings {
        inspect,
        parameters: Vec::new(),
        print_steps: true,
    })));
    meter::set_metering(true);
    true
}

/// Runs `f` on this thread's session, if one records.
fn with_session<R>(f: impl FnOnce(&mut Session) -> R) -> Option<R> {
    SESSION.with(|s| s.borrow_mut().as_mut().map(f))
}

/// Puts `session` in place of this thread's, returning the one it replaces.
pub(crate) fn install(session: Option<Session>) -> Option<Session> {
    SESSION.with(|s| std::mem::replace(&mut *s.borrow_mut(), session))
}

/// Where an op was called and, while profiling, when it started.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OpSite {
    pub location: &'static Location<'static>,
    pub started: Option<Instant>,
}

impl OpSite {
    /// The caller's location, and the time now when a profile records.
    #[track_caller]
    #[inline]
    pub(crate) fn caller() -> OpSite {
        OpSite {
            location: Location::caller(),
            started: if active() {
                with_session(Session::op_started).flatten()
            } else {
                None
            },
        }
    }
}

impl From<&'static Location<'static>> for OpSite {
    /// A site without a start time (an op recorded through
    /// [`Var::from_op`](crate::Var::from_op) after computing its output).
    fn from(location: &'static Location<'static>) -> OpSite {
        OpSite {
            location,
            started: None,
        }
    }
}

/// A node was recorded for `var` (`held_by_op`: what its op saves).
pub(crate) fn recorded(var: &Var, held_by_op: Vec<Tensor>, started: Option<Instant>) {
    with_session(|s| s.recorded(var, held_by_op, started));
}

/// The profiler's view of one backward pass; inert when none records.
pub(crate) struct BackwardScope {
    on: bool,
    finished: bool,
}

impl BackwardScope {
    pub(crate) fn enter(root: &Var) -> BackwardScope {
        let on = active() && with_session(|s| s.backward_started(root)).is_some();
        BackwardScope {
            on,
            finished: false,
        }
    }

    /// Before a node's backward rule: its start time.
    #[inline]
    pub(crate) fn node_begin(&self) -> Option<Instant> {
        if !self.on {
            return None;
        }
        with_session(Session::node_backward_begin).flatten()
    }

    /// After the rule ran and its gradients were accumulated.
    pub(crate) fn node_end(&self, var: &Var, began: Option<Instant>, grads: &[Var]) {
        if let Some(began) = began {
            with_session(|s| s.node_backward_end(var, began, grads));
        }
    }

    /// True when the profile wants the gradients a node produced (to look for NaN).
    #[inline]
    pub(crate) fn wants_gradients(&self) -> bool {
        self.on && with_session(|s| s.settings.inspect).unwrap_or(false)
    }

    #[inline]
    pub(crate) fn leaf_received(&self, var: &Var) {
        if self.on {
            with_session(|s| s.leaf_received(var));
        }
    }

    /// The pass completed.
    pub(crate) fn finish(mut self, order: &[Var], into_leaves: bool) {
        if self.on {
            self.finished = true;
            with_session(|s| s.backward_finished(order, into_leaves));
        }
    }
}

impl Drop for BackwardScope {
    fn drop(&mut self) {
        // A pass that failed half-way leaves the backward state.
        if self.on && !self.finished {
            with_session(|s| s.backward_finished(&[], false));
        }
    }
}

/// Enters a layer named `name` (inside the current one); false when no
/// profile records.
pub(crate) fn enter_layer(name: &str) -> bool {
    active()
        && with_session(|s| {
            let full = match s.layers.last() {
                Some(parent) => format!("{parent}.{name}"),
                None => name.to_string(),
            };
            s.layers.push(full);
        })
        .is_some()
}

pub(crate) fn leave_layer() {
    with_session(|s| s.layers.pop());
}
