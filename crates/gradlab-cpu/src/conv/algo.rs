//! Which algorithm computes a convolution: a setting of this crate, like
//! the SIMD level, so that the tensor layer calls the same three functions
//! whatever the choice.
//!
//! * [`ConvAlgo::Direct`]: loops over the taps without a column matrix
//!   (where a direct kernel covers the shape);
//! * [`ConvAlgo::BatchLanes`]: direct loops with the images of the batch
//!   in the vector lanes, for stride-1 layers with few channels (LeNet's);
//! * [`ConvAlgo::Im2col`]: a column matrix (im2col / col2im, or its
//!   channels-last form) multiplied by the packed GEMM;
//! * [`ConvAlgo::Winograd`]: `F(m×m, 3×3)` for 3×3 stride-1 layers, with
//!   the tile chosen per shape (fewest multiplications for the padded
//!   output), or a named tile ([`ConvAlgo::Winograd2x2`],
//!   [`ConvAlgo::Winograd4x4`]);
//! * [`ConvAlgo::Auto`] (the default): each candidate that applies is timed
//!   at the first call of a *shape class* (pass, element type, every size
//!   of the shape including the batch, SIMD level, thread count), on the
//!   first images of the batch (see [`trial_images`]), and the fastest
//!   computes that call and every later call of the class, as cuDNN's
//!   benchmark mode does.
//!
//! Where a named algorithm does not apply to a shape (a strided layer asked
//! for Winograd, a layer no direct kernel covers), the call takes the
//! *baseline* method instead: direct where a direct kernel covers the shape,
//! else the GEMM forms (the choice the crate makes without timing).
//!
//! # Reproducibility
//! Every method is deterministic: the same inputs give bitwise the same
//! outputs on every call, for every thread count. A named algorithm
//! (`direct`, `im2col`, `winograd`, ...) therefore gives bitwise
//! reproducible runs on a given machine (results may differ in the last
//! bits between machines with other SIMD levels or cache sizes). `auto`
//! keeps one method per shape class for the life of the process, so a run
//! is self-consistent, but two processes may time differently and pick
//! different methods for a class, and then differ in the last bits (about
//! `1e-6` relative in f32; Winograd's rounding differs most, see
//! [`crate::reference::winograd`]). To make timing noise less likely to
//! flip a pick, a candidate replaces the baseline only when it is at least
//! [`AUTO_MARGIN`] faster. Runs that must match bit for bit across
//! processes (resuming a checkpoint exactly, comparing two builds) should
//! name an algorithm; [`auto_picks`] lists what `auto` chose.

use crate::reference::winograd::WinogradTile;
use crate::simd::{SimdKind, SimdLevel};
use crate::Conv2dShape;
use std::cell::Cell;
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// How a convolution is computed (see the [module docs](self)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ConvAlgo {
    /// The fastest applicable method, timed once per shape class.
    #[default]
    Auto,
    /// Direct loops over the taps.
    Direct,
    /// Direct loops with the images of the batch in the vector lanes.
    BatchLanes,
    /// A column matrix and the packed GEMM.
    Im2col,
    /// Winograd for 3×3 stride-1 layers, tile chosen per shape.
    Winograd,
    /// Winograd `F(2×2, 3×3)`.
    Winograd2x2,
    /// Winograd `F(4×4, 3×3)`.
    Winograd4x4,
}

impl ConvAlgo {
    /// Every setting, in the order the command line lists them.
    pub const ALL: [ConvAlgo; 7] = [
        ConvAlgo::Auto,
        ConvAlgo::Direct,
        ConvAlgo::BatchLanes,
        ConvAlgo::Im2col,
        ConvAlgo::Winograd,
        ConvAlgo::Winograd2x2,
        ConvAlgo::Winograd4x4,
    ];

    /// The name the command line takes.
    pub fn name(self) -> &'static str {
        match self {
            ConvAlgo::Auto => "auto",
            ConvAlgo::Direct => "direct",
            ConvAlgo::BatchLanes => "batch-lanes",
            ConvAlgo::Im2col => "im2col",
            ConvAlgo::Winograd => "winograd",
            ConvAlgo::Winograd2x2 => "winograd-2x2",
            ConvAlgo::Winograd4x4 => "winograd-4x4",
        }
    }

    fn code(self) -> u8 {
        ConvAlgo::ALL.iter().position(|&a| a == self).unwrap_or(0) as u8
    }

    fn from_code(code: u8) -> ConvAlgo {
        ConvAlgo::ALL
            .get(usize::from(code))
            .copied()
            .unwrap_or_default()
    }
}

impl fmt::Display for ConvAlgo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not a convolution algorithm.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown convolution algorithm {0:?} (expected auto, direct, batch-lanes, im2col, winograd, winograd-2x2 or winograd-4x4)")]
pub struct UnknownConvAlgo(pub String);

impl FromStr for ConvAlgo {
    type Err = UnknownConvAlgo;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.trim();
        ConvAlgo::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| UnknownConvAlgo(s.to_string()))
    }
}

/// The process-wide setting, as `ConvAlgo::code`.
static GLOBAL: AtomicU8 = AtomicU8::new(0);

thread_local! {
    static THREAD_OVERRIDE: Cell<Option<ConvAlgo>> = const { Cell::new(None) };
}

/// Sets the algorithm of every later convolution in the process (from
/// threads without a [`with_conv_algo`] override).
pub fn set_conv_algo(algo: ConvAlgo) {
    GLOBAL.store(algo.code(), Ordering::Relaxed);
}

/// Runs `f` with convolutions called from this thread computed by `algo`.
pub fn with_conv_algo<R>(algo: ConvAlgo, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<ConvAlgo>);
    impl Drop for Restore {
        fn drop(&mut self) {
            THREAD_OVERRIDE.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(THREAD_OVERRIDE.with(|c| c.replace(Some(algo))));
    f()
}

/// The algorithm a convolution called now, from this thread, uses.
pub fn conv_algo() -> ConvAlgo {
    THREAD_OVERRIDE
        .with(Cell::get)
        .unwrap_or_else(|| ConvAlgo::from_code(GLOBAL.load(Ordering::Relaxed)))
}

/// A candidate must be at least this much faster than the baseline
/// (`1.0 / (1.0 + AUTO_MARGIN)` of its time) for `auto` to pick it.
pub const AUTO_MARGIN: f64 = 0.1;

/// Candidates whose first timed run is within this factor of the fastest
/// first run are timed a second time (the closer calls, where one noisy
/// run could flip the pick); the others are timed once.
pub const AUTO_RETIME_WITHIN: f64 = 1.3;

/// One of the three passes of a convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pass {
    Forward,
    BackwardData,
    BackwardWeight,
}

impl Pass {
    pub fn name(self) -> &'static str {
        match self {
            Pass::Forward => "forward",
            Pass::BackwardData => "backward_data",
            Pass::BackwardWeight => "backward_weight",
        }
    }
}

/// A concrete way to compute one pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    Direct,
    BatchLanes,
    Im2col,
    Winograd(WinogradTile),
}

impl Method {
    /// The method a named setting forces (`None` for `auto` and for
    /// `winograd`, whose tile depends on the shape).
    pub fn algo_method(algo: ConvAlgo) -> Option<Method> {
        match algo {
            ConvAlgo::Direct => Some(Method::Direct),
            ConvAlgo::BatchLanes => Some(Method::BatchLanes),
            ConvAlgo::Im2col => Some(Method::Im2col),
            ConvAlgo::Winograd2x2 => Some(Method::Winograd(WinogradTile::F2)),
            ConvAlgo::Winograd4x4 => Some(Method::Winograd(WinogradTile::F4)),
            ConvAlgo::Auto | ConvAlgo::Winograd => None,
        }
    }

    /// The setting that names this method.
    pub fn algo(self) -> ConvAlgo {
        match self {
            Method::Direct => ConvAlgo::Direct,
            Method::BatchLanes => ConvAlgo::BatchLanes,
            Method::Im2col => ConvAlgo::Im2col,
            Method::Winograd(WinogradTile::F2) => ConvAlgo::Winograd2x2,
            Method::Winograd(WinogradTile::F4) => ConvAlgo::Winograd4x4,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Method::Direct => f.write_str("direct"),
            Method::BatchLanes => f.write_str("batch-lanes"),
            Method::Im2col => f.write_str("im2col"),
            Method::Winograd(tile) => write!(f, "winograd {tile}"),
        }
    }
}

/// What `auto` remembers a pick by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ShapeClass {
    pub pass: Pass,
    pub dtype: &'static str,
    pub shape: Conv2dShape,
    pub simd: SimdKind,
    pub threads: usize,
}

/// `auto`'s pick for one shape class, with the times it measured.
#[derive(Clone, Debug, PartialEq)]
pub struct AutoPick {
    pub class: ShapeClass,
    pub method: Method,
    /// Each candidate with its best time in seconds, baseline first.
    pub timings: Vec<(Method, f64)>,
    /// Images of the batch each candidate was timed on ([`trial_images`]).
    pub trial_images: usize,
}

fn picks() -> &'static Mutex<HashMap<ShapeClass, AutoPick>> {
    static PICKS: std::sync::OnceLock<Mutex<HashMap<ShapeClass, AutoPick>>> =
        std::sync::OnceLock::new();
    PICKS.get_or_init(Default::default)
}

/// Every pick `auto` has made in this process.
pub fn auto_picks() -> Vec<AutoPick> {
    let map = picks().lock().unwrap_or_else(|e| e.into_inner());
    map.values().cloned().collect()
}

/// Forgets `auto`'s picks, so that the next call of each shape class times
/// its candidates again (for benchmarks that change the machine's load).
pub fn clear_auto_picks() {
    picks().lock().unwrap_or_else(|e| e.into_inner()).clear();
}

/// The Winograd tile [`ConvAlgo::Winograd`] takes for `s`: the one with
/// the fewest multiplications for the output padded to whole tiles (`α²`
/// per tile and channel pair); `F(4×4)` on a tie.
pub fn winograd_tile_for(s: &Conv2dShape) -> WinogradTile {
    let products = |t: WinogradTile| {
        let tiles = s.out_h().div_ceil(t.m()) * s.out_w().div_ceil(t.m());
        tiles * t.alpha() * t.alpha()
    };
    if products(WinogradTile::F2) < products(WinogradTile::F4) {
        WinogradTile::F2
    } else {
        WinogradTile::F4
    }
}

/// Images of a batch of `batch` on which `auto` times the candidates: a
/// quarter of the batch, rounded up to 16 images per worker thread (the
/// most images a method takes at once, a vector of them, so that each
/// thread's share of the trial is as whole as its share of the batch), or
/// the whole batch when that is no more. The time of a convolution grows
/// with its images at a steady rate per image, so this ranks the
/// candidates as the whole batch would, at a fraction of the cost.
pub fn trial_images(batch: usize, threads: usize) -> usize {
    let step = 16 * threads.max(1);
    batch
        .div_ceil(4)
        .div_ceil(step)
        .saturating_mul(step)
        .min(batch)
}

/// Runs one pass by the method the current setting chooses among
/// `candidates` (the first is the baseline; all apply to the shape), and
/// returns that method. `run(method, images)` computes the pass by a
/// method for the first `images` images of the batch, overwriting their
/// part of the output; under `auto` at a new shape class each candidate
/// runs once or twice on [`trial_images`] of them (timed, see
/// `time_candidates`), then the pick runs on the whole batch.
pub(crate) fn run_chosen(
    pass: Pass,
    dtype: &'static str,
    s: &Conv2dShape,
    level: SimdLevel,
    candidates: &[Method],
    run: impl FnMut(Method, usize),
) -> Method {
    let grown = crate::scratch::grown_bytes;
    run_chosen_with(pass, dtype, s, level, candidates, run, &grown)
}

/// [`run_chosen`], with `grown()` the running count of freshly allocated
/// working memory (a stand-in in tests).
fn run_chosen_with(
    pass: Pass,
    dtype: &'static str,
    s: &Conv2dShape,
    level: SimdLevel,
    candidates: &[Method],
    mut run: impl FnMut(Method, usize),
    grown: &dyn Fn() -> usize,
) -> Method {
    let baseline = candidates[0];
    let has = |m: Method| candidates.contains(&m);
    let named = |m: Method| if has(m) { m } else { baseline };
    let method = match conv_algo() {
        ConvAlgo::Direct => named(Method::Direct),
        ConvAlgo::BatchLanes => named(Method::BatchLanes),
        ConvAlgo::Im2col => named(Method::Im2col),
        ConvAlgo::Winograd => named(Method::Winograd(winograd_tile_for(s))),
        ConvAlgo::Winograd2x2 => named(Method::Winograd(WinogradTile::F2)),
        ConvAlgo::Winograd4x4 => named(Method::Winograd(WinogradTile::F4)),
        ConvAlgo::Auto if candidates.len() == 1 => baseline,
        ConvAlgo::Auto => {
            let class = ShapeClass {
                pass,
                dtype,
                shape: *s,
                simd: level.kind(),
                threads: rayon::current_num_threads(),
            };
            let known = picks()
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&class)
                .map(|p| p.method);
            match known {
                Some(method) => method,
                None => return time_candidates(class, candidates, &mut run, grown),
            }
        }
    };
    run(method, s.batch);
    method
}

/// Times every candidate once on [`trial_images`] of the batch (twice where
/// the first run grew the scratch buffers, timing the second), and again
/// the baseline and those within [`AUTO_RETIME_WITHIN`] of the fastest
/// first timing (each keeps its best; see `timed_again`), records the pick
/// and runs it on the whole batch (unless the trial was the whole batch
/// and the pick ran last). A candidate far behind after one run cannot win
/// a second. Timing every candidate on the whole batch, the convnet's
/// first training step took about 0.85 s against 0.11 s for later ones
/// (2 threads, 2-core Xeon: 15% of a 3,200-image run).
fn time_candidates(
    class: ShapeClass,
    candidates: &[Method],
    run: &mut impl FnMut(Method, usize),
    grown: &dyn Fn() -> usize,
) -> Method {
    let batch = class.shape.batch;
    let trial = trial_images(batch, class.threads);
    let mut last_run = None;
    let mut time = |m: Method| {
        let timed = |run: &mut dyn FnMut(Method, usize)| {
            let before = grown();
            let start = Instant::now();
            run(m, trial);
            (start.elapsed().as_secs_f64(), grown() != before)
        };
        let (mut seconds, warming) = timed(run);
        if warming {
            // The run grew working buffers (fresh pages: up to 4x the
            // time of a run that finds them ready); time the next one.
            seconds = timed(run).0;
        }
        last_run = Some(m);
        seconds
    };
    let mut timings: Vec<(Method, f64)> = candidates.iter().map(|&m| (m, time(m))).collect();
    let first: Vec<f64> = timings.iter().map(|t| t.1).collect();
    for ((m, best), again) in timings.iter_mut().zip(timed_again(&first)) {
        if again {
            *best = best.min(time(*m));
        }
    }
    let method = pick(&timings);
    // Another thread may have timed the same class meanwhile: keep the
    // first pick, so that every call of the class uses one method.
    let method = picks()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(class)
        .or_insert(AutoPick {
            class,
            method,
            timings,
            trial_images: trial,
        })
        .method;
    if trial < batch || last_run != Some(method) {
        run(method, batch);
    }
    method
}

/// Which candidates get a second timed run, from their first timings: the
/// baseline always (it runs first, so its first run also pays for what the
/// process has not yet warmed, such as scratch buffers growing and workers
/// waking, and alone that once made `auto` leave the direct kernel for one
/// three times slower on LeNet's first layer), and the others within
/// [`AUTO_RETIME_WITHIN`] of the fastest.
fn timed_again(first_s: &[f64]) -> Vec<bool> {
    let fastest = first_s.iter().copied().fold(f64::INFINITY, f64::min);
    first_s
        .iter()
        .enumerate()
        .map(|(i, &t)| i == 0 || t <= fastest * AUTO_RETIME_WITHIN)
        .collect()
}

/// The baseline (the first candidate), unless the fastest beats it by
/// [`AUTO_MARGIN`].
fn pick(timings: &[(Method, f64)]) -> Method {
    let (baseline, baseline_s) = timings[0];
    let (fastest, fastest_s) = timings
        .iter()
        .copied()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or((baseline, baseline_s));
    if fastest_s * (1.0 + AUTO_MARGIN) <= baseline_s {
        fastest
    } else {
        baseline
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_candidates_near_the_fastest_are_timed_again() {
        assert_eq!(
            timed_again(&[10.0, 12.9, 13.1, 30.0]),
            [true, true, false, false]
        );
        // Measured against the fastest, wherever it stands.
        assert_eq!(timed_again(&[12.0, 12.9, 10.0]), [true, true, true]);
        // The baseline is timed again however slow its first run was.
        assert_eq!(timed_again(&[13.5, 10.0]), [true, true]);
        assert_eq!(timed_again(&[10.0, 13.5]), [true, false]);
        assert_eq!(timed_again(&[5.0]), [true]);
    }

    #[test]
    fn the_baseline_keeps_the_pick_unless_beaten_by_the_margin() {
        use Method::{Direct, Im2col};
        assert_eq!(pick(&[(Im2col, 10.0), (Direct, 9.5)]), Im2col);
        assert_eq!(pick(&[(Im2col, 10.0), (Direct, 9.0)]), Direct);
        assert_eq!(pick(&[(Direct, 1.0), (Im2col, 2.0)]), Direct);
    }

    #[test]
    fn names_parse_back() {
        for algo in ConvAlgo::ALL {
            assert_eq!(algo.name().parse::<ConvAlgo>(), Ok(algo));
            assert_eq!(ConvAlgo::from_code(algo.code()), algo);
        }
        assert!("fft".parse::<ConvAlgo>().is_err());
        assert_eq!(" Winograd ".parse::<ConvAlgo>(), Ok(ConvAlgo::Winograd));
    }

    #[test]
    fn the_scoped_setting_wins_on_this_thread_only_while_it_runs() {
        let inside = with_conv_algo(ConvAlgo::Im2col, || {
            let other = std::thread::spawn(conv_algo).join().unwrap();
            (conv_algo(), other)
        });
        assert_eq!(inside.0, ConvAlgo::Im2col);
        assert_ne!(inside.1, ConvAlgo::Im2col);
    }

    #[test]
    fn winograd_tiles_follow_the_padded_output() {
        // 32x32: F(4x4) needs 64 tiles of 36 products, F(2x2) 256 of 16.
        assert_eq!(
            winograd_tile_for(&Conv2dShape::square(1, 8, 8, 32, 3, 1)),
            WinogradTile::F4
        );
        // 6x6 output: F(4x4) pads to 8x8 (4 tiles, 144), F(2x2) 9 tiles (144): tie.
        assert_eq!(
            winograd_tile_for(&Conv2dShape::square(1, 8, 8, 6, 3, 1)),
            WinogradTile::F4
        );
        // 2x2 output: one F(2x2) tile (16) beats one F(4x4) tile (36).
        assert_eq!(
            winograd_tile_for(&Conv2dShape::square(1, 8, 8, 2, 3, 1)),
            WinogradTile::F2
        );
    }

    #[test]
    fn a_named_algorithm_that_does_not_apply_takes_the_baseline() {
        let s = Conv2dShape::square(1, 2, 2, 8, 3, 1);
        let level = SimdLevel::SCALAR;
        let mut ran = Vec::new();
        let candidates = [Method::Im2col, Method::Direct];
        let got = with_conv_algo(ConvAlgo::Winograd, || {
            run_chosen(Pass::Forward, "f32", &s, level, &candidates, |m, images| {
                ran.push((m, images))
            })
        });
        assert_eq!(
            (got, ran.as_slice()),
            (Method::Im2col, &[(Method::Im2col, 1)][..])
        );
    }

    #[test]
    fn trials_take_a_quarter_of_the_batch_in_whole_vectors_per_thread() {
        assert_eq!(trial_images(64, 1), 16);
        assert_eq!(trial_images(64, 2), 32);
        assert_eq!(trial_images(256, 2), 64);
        assert_eq!(trial_images(200, 1), 64);
        // Small batches are timed whole.
        assert_eq!(trial_images(64, 4), 64);
        assert_eq!(trial_images(20, 1), 16);
        assert_eq!(trial_images(7, 1), 7);
        assert_eq!(trial_images(0, 2), 0);
    }

    #[test]
    fn auto_times_each_candidate_on_a_trial_then_runs_the_pick_on_the_batch() {
        // A shape no other test uses, so that the class is new.
        let s = Conv2dShape::square(64, 5, 7, 11, 3, 2);
        let level = SimdLevel::SCALAR;
        let candidates = [Method::Im2col, Method::Direct];
        let mut ran = Vec::new();
        let slow_direct = |m: Method, images: usize, ran: &mut Vec<(Method, usize)>| {
            ran.push((m, images));
            if m == Method::Im2col {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        };
        let threads = 3;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        // Direct's first run grows the working memory (a warm-up).
        let grown = std::sync::atomic::AtomicUsize::new(0);
        let call = |ran: &mut Vec<(Method, usize)>| {
            pool.install(|| {
                with_conv_algo(ConvAlgo::Auto, || {
                    let run = |m, n| {
                        if m == Method::Direct && !ran.contains(&(m, n)) {
                            grown.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        slow_direct(m, n, ran)
                    };
                    let counter = || grown.load(std::sync::atomic::Ordering::Relaxed);
                    run_chosen_with(
                        Pass::BackwardData,
                        "f64",
                        &s,
                        level,
                        &candidates,
                        run,
                        &counter,
                    )
                })
            })
        };
        let first = call(&mut ran);
        assert_eq!(first, Method::Direct);
        // One timed run each on the trial's images (a quarter of 64,
        // rounded up to 16 per thread: 48), direct's twice as its first
        // grew the working memory, a second for the baseline and for those
        // within reach of the fastest (direct itself), then the pick on the
        // whole batch.
        use Method::{Direct, Im2col};
        let trial = trial_images(64, threads);
        assert_eq!(trial, 48);
        assert_eq!(
            ran,
            [
                (Im2col, trial),
                (Direct, trial),
                (Direct, trial),
                (Im2col, trial),
                (Direct, trial),
                (Direct, 64)
            ]
        );
        ran.clear();
        let again = call(&mut ran);
        assert_eq!((again, ran.as_slice()), (Direct, &[(Direct, 64)][..]));
        let pick = auto_picks()
            .into_iter()
            .find(|p| p.class.shape == s && p.class.pass == Pass::BackwardData)
            .expect("recorded");
        assert_eq!((pick.timings.len(), pick.trial_images), (2, 48));
    }
}
