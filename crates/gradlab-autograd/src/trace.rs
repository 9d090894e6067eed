//! Backward trace: a record of each node as `backward()` runs it.
//!
//! Turn it on with [`set_trace`] or the environment variable
//! `GRADLAB_TRACE=1`; each node then prints one line to stderr: its position,
//! op name, input and output shapes, time spent, and the norm of each
//! gradient it produced. [`capture_trace`] collects the same events for code
//! that wants to inspect them.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

/// One node run by the backward pass.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceEvent {
    /// 1-based position in the backward order.
    pub step: usize,
    /// Nodes the backward pass will run in all.
    pub total: usize,
    /// The id of the var the node produced.
    pub var_id: usize,
    pub op: &'static str,
    /// Where the op was created in the user's code.
    pub location: String,
    pub input_shapes: Vec<Vec<usize>>,
    pub output_shape: Vec<usize>,
    pub elapsed: Duration,
    /// L2 norm of the gradient produced for each input (None where none was needed).
    pub grad_norms: Vec<Option<f64>>,
}

impl std::fmt::Display for TraceEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inputs: Vec<String> = self.input_shapes.iter().map(|s| format!("{s:?}")).collect();
        let norms: Vec<String> = self
            .grad_norms
            .iter()
            .map(|n| n.map_or("-".to_string(), |n| format!("{n:.3e}")))
            .collect();
        write!(
            f,
            "[backward {:>3}/{}] {:<22} out {:?} <- in {}  {:>9.3} ms  |grad| {}",
            self.step,
            self.total,
            self.op,
            self.output_shape,
            inputs.join(", "),
            self.elapsed.as_secs_f64() * 1e3,
            norms.join(", ")
        )
    }
}

// 0 = not read yet, 1 = off, 2 = on.
static TRACE: AtomicU8 = AtomicU8::new(0);

/// Turns the printed backward trace on or off (overrides `GRADLAB_TRACE`).
pub fn set_trace(on: bool) {
    TRACE.store(if on { 2 } else { 1 }, Ordering::Relaxed);
}

/// True when backward prints its trace.
pub fn is_trace_on() -> bool {
    match TRACE.load(Ordering::Relaxed) {
        0 => {
            let on = std::env::var("GRADLAB_TRACE").is_ok_and(|v| v == "1" || v == "true");
            TRACE.store(if on { 2 } else { 1 }, Ordering::Relaxed);
            on
        }
        v => v == 2,
    }
}

thread_local! {
    static SINK: RefCell<Option<Vec<TraceEvent>>> = const { RefCell::new(None) };
}

/// Runs `f` and returns the trace events of every backward pass it ran on this thread.
///
/// ```
/// use gradlab_autograd::{capture_trace, Var};
/// use gradlab_tensor::Tensor;
/// let x = Var::parameter(Tensor::from_vec(vec![3.0f64, 4.0], [2]).unwrap());
/// let loss = x.mul(&x).unwrap().sum_all().unwrap();
/// let (result, events) = capture_trace(|| loss.backward());
/// result.unwrap();
/// let ops: Vec<&str> = events.iter().map(|e| e.op).collect();
/// assert_eq!(ops, ["SumBackward", "MulBackward"]);
/// // MulBackward sends 2 * 1 * x to each of its two inputs (x twice): norm 5.
/// assert_eq!(events[1].grad_norms, vec![Some(5.0), Some(5.0)]);
/// ```
pub fn capture_trace<R>(f: impl FnOnce() -> R) -> (R, Vec<TraceEvent>) {
    let previous = SINK.with(|s| s.borrow_mut().replace(Vec::new()));
    let r = f();
    let events = SINK
        .with(|s| std::mem::replace(&mut *s.borrow_mut(), previous))
        .unwrap_or_default();
    (r, events)
}

pub(crate) fn is_capturing() -> bool {
    SINK.with(|s| s.borrow().is_some())
}

pub(crate) fn emit(event: TraceEvent) {
    if is_trace_on() {
        eprintln!("{event}");
    }
    SINK.with(|s| {
        if let Some(events) = s.borrow_mut().as_mut() {
            events.push(event);
        }
    });
}
