//! The blocked GEMM driver (the Goto/BLIS loop nest around a micro-kernel).
//!
//! ```text
//! for jc in columns of C, nc at a time        B panel (kc×nc) packed once, shared
//!   for pc in k, kc at a time                 fixed order: each C element sums k the same way
//!     pack B[pc, jc]                          (in parallel, panel by panel)
//!     for (ic, jr-group) in parallel          items own disjoint C tiles
//!       pack A[ic, pc]                        by the core that uses it: stays in its L2
//!       for jr in group: for ir in ic block   B micro-panel stays in L1/L2 across ir
//!         micro-kernel(MR×NR tile)
//! ```
//! Every element of `C` is computed by exactly one thread per `pc` step and
//! the `pc` steps run in order, so results do not depend on the thread count
//! or on which thread ran which item. The block sizes come from this
//! machine's caches ([`Blocking`]).

use super::blocking::Blocking;
use super::kernel::{GemmElement, MicroKernel, TileEpilogue};
use super::pack::{pack_a, pack_b, MatRef};
use super::BiasAxis;
use crate::scratch::{PlainData, Scratch};
use crate::simd::SimdLevel;
use rayon::prelude::*;

/// Problems with fewer multiply-adds than this (about 20 µs on one core)
/// run on the calling thread only: below it rayon's fork/joins (three per
/// block) cost more than they save, more so on a busy machine.
const PARALLEL_MIN_MACS: usize = 1 << 21;
/// Operand blocks smaller than this are packed by one thread.
const PARALLEL_PACK_MIN: usize = 1 << 16;
/// Problems this small skip packing altogether.
const TINY_MACS: usize = 2048;
/// Largest tile any micro-kernel uses (for the stack buffer of edge tiles).
const MAX_MR: usize = 8;
const MAX_NR: usize = 64;

/// One GEMM problem: `C = relu?(alpha·A·B + beta·C + bias)` with strided operands.
#[derive(Clone, Copy)]
pub(crate) struct Problem<'a, E> {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub alpha: E,
    pub a: MatRef<'a, E>,
    pub b: MatRef<'a, E>,
    pub beta: E,
    pub bias: Option<(&'a [E], BiasAxis)>,
    pub relu: bool,
    /// Whether the driver may fork onto the rayon pool (callers that are
    /// already parallel over a batch say no).
    pub parallel: bool,
}

impl<'a, E: crate::Float> Problem<'a, E> {
    /// `C = A·B` (alpha 1, beta 0, no bias or activation), split over the
    /// pool where that pays.
    pub(crate) fn product(
        m: usize,
        k: usize,
        n: usize,
        a: MatRef<'a, E>,
        b: MatRef<'a, E>,
    ) -> Self {
        Problem {
            m,
            k,
            n,
            alpha: E::ONE,
            a,
            b,
            beta: E::ZERO,
            bias: None,
            relu: false,
            parallel: true,
        }
    }
}

/// C as a raw pointer with strides, shared by the workers that write disjoint tiles.
#[derive(Clone, Copy)]
struct CPtr<E> {
    ptr: *mut E,
    rs: usize,
    cs: usize,
}
// SAFETY: workers only write disjoint tiles of C (see `run_items`), and the
// caller's `&mut [E]` outlives the parallel section.
unsafe impl<E: Send> Send for CPtr<E> {}
// SAFETY: as for Send: shared copies of the pointer write disjoint tiles only.
unsafe impl<E: Send> Sync for CPtr<E> {}

/// Whether distinct `(i, j)` always map to distinct offsets (so that
/// writing tiles from several threads cannot race).
fn is_injective(m: usize, n: usize, rs: usize, cs: usize) -> bool {
    let (mut dims, mut strides) = ([m, n], [rs, cs]);
    if strides[0] > strides[1] {
        dims.swap(0, 1);
        strides.swap(0, 1);
    }
    let (inner_ok, outer_ok) = (
        dims[0] <= 1 || strides[0] >= 1,
        dims[1] <= 1 || strides[1] >= strides[0] * dims[0].max(1),
    );
    inner_ok && outer_ok
}

/// Runs the problem on `c` (`m×n`, element `(i, j)` at `c[i*rsc + j*csc]`).
/// Lengths have been checked by the caller.
pub(crate) fn run<E: GemmElement + PlainData>(
    level: SimdLevel,
    p: Problem<'_, E>,
    c: &mut [E],
    rsc: usize,
    csc: usize,
) {
    if p.m == 0 || p.n == 0 {
        return;
    }
    if p.m * p.n * p.k <= TINY_MACS || !is_injective(p.m, p.n, rsc, csc) {
        return naive(p, c, rsc, csc);
    }
    let (kernel, transpose) = choose_kernel::<E>(level, p.m, p.n, rsc, csc);
    if transpose {
        let t = Problem {
            m: p.n,
            n: p.m,
            a: MatRef {
                data: p.b.data,
                rs: p.b.cs,
                cs: p.b.rs,
            },
            b: MatRef {
                data: p.a.data,
                rs: p.a.cs,
                cs: p.a.rs,
            },
            bias: p.bias.map(|(v, axis)| (v, axis.transposed())),
            ..p
        };
        return blocked(
            kernel,
            t,
            CPtr {
                ptr: c.as_mut_ptr(),
                rs: csc,
                cs: rsc,
            },
        );
    }
    blocked(
        kernel,
        p,
        CPtr {
            ptr: c.as_mut_ptr(),
            rs: rsc,
            cs: csc,
        },
    )
}

/// The micro-kernel for an `m×n` C with strides `(rsc, csc)`, and whether
/// to run it on the transposed problem (`C^T = B^T·A^T`).
fn choose_kernel<E: GemmElement>(
    level: SimdLevel,
    m: usize,
    n: usize,
    rsc: usize,
    csc: usize,
) -> (MicroKernel<E>, bool) {
    // The micro-kernels store rows of C with unit stride; a column-major C
    // is the row-major C^T = B^T·A^T. Otherwise pick the kernel and the
    // orientation that waste the least on padded lanes (a linear layer with
    // ten outputs is better done as C^T; a 128-wide C with 16-wide tiles).
    let padded = |k: &MicroKernel<E>, rows: usize, cols: usize| {
        rows.div_ceil(k.mr) * k.mr * cols.div_ceil(k.nr) * k.nr
    };
    let main = E::micro_kernel(level);
    let narrow = E::narrow_micro_kernel(level).unwrap_or(main);
    let wide = E::wide_micro_kernel(level).unwrap_or(main);
    // (kernel, transposed, narrow) triples; a column-major C is always transposed.
    let forced = csc != 1 && rsc == 1;
    let choices = [
        (main, forced, false),
        (wide, forced, false),
        (narrow, forced, true),
        (main, csc == 1 || forced, false),
        (wide, csc == 1 || forced, false),
        (narrow, csc == 1 || forced, true),
    ];
    // Strided tile stores cost about as much again as the tile's FMAs on
    // small problems: a transposed row-major C counts double. Where 512-bit
    // FMAs run at full rate a 256-bit tile does half the work per
    // instruction, so its lanes count double too (on cores that split
    // 512-bit operations in two halves, both cost the same).
    let store_cost = if csc == 1 { 2 } else { 1 };
    let narrow_cost = if crate::simd::full_rate_avx512() {
        2
    } else {
        1
    };
    let cost = |&(k, t, is_narrow): &(MicroKernel<E>, bool, bool)| {
        let lanes = if t {
            store_cost * padded(&k, n, m)
        } else {
            padded(&k, m, n)
        };
        if is_narrow {
            narrow_cost * lanes
        } else {
            lanes
        }
    };
    // The first cheapest wins: ties keep the main kernel and C as it is.
    let (kernel, transpose, _) = choices
        .iter()
        .copied()
        .min_by_key(cost)
        .unwrap_or(choices[0]);
    (kernel, transpose)
}

/// Panels of A for every depth block, packed once for several products
/// with the same A and the same shape (the weights of a convolution, used
/// for every image): each then skips packing A.
pub(crate) struct PackedA<E: PlainData> {
    kernel: MicroKernel<E>,
    blocking: Blocking,
    m: usize,
    k: usize,
    n: usize,
    /// Depth block `pc` holds `ceil(m / mr)` panels of `mr × kc` values
    /// and starts at `panels · mr · pc` (every earlier block is `kc` deep).
    data: Vec<E>,
}

/// Packs `a` (`m×k`) for products `A·B` with `B` `k×n` into a row-major C,
/// or `None` when such products would not use packed A panels as they are
/// (too small, or better run transposed).
pub(crate) fn pack_a_once<E: GemmElement + PlainData>(
    level: SimdLevel,
    m: usize,
    k: usize,
    n: usize,
    a: MatRef<'_, E>,
) -> Option<PackedA<E>> {
    let mut packed = packed_a_zeroed(level, m, k, n)?;
    let (mr, kc, panels) = (
        packed.kernel.mr,
        packed.blocking.kc,
        m.div_ceil(packed.kernel.mr),
    );
    for pc in (0..k).step_by(kc) {
        let kc = kc.min(k - pc);
        let block = &mut packed.data[panels * mr * pc..][..panels * mr * kc];
        pack_a(block, mr, a, (0, m), pc, kc, false);
    }
    Some(packed)
}

/// The panels [`pack_a_once`] would fill for an `m×k` A and `n` columns,
/// all zero, for a caller that writes A's values straight into place
/// (at [`PanelLayout::offset`]); `None` where `pack_a_once` gives `None`.
pub(crate) fn packed_a_zeroed<E: GemmElement + PlainData>(
    level: SimdLevel,
    m: usize,
    k: usize,
    n: usize,
) -> Option<PackedA<E>> {
    if m == 0 || n == 0 || k == 0 || m * n * k <= TINY_MACS {
        return None;
    }
    let (kernel, transpose) = choose_kernel::<E>(level, m, n, n, 1);
    if transpose {
        return None;
    }
    let blocking = Blocking::for_machine(kernel.mr, kernel.nr, std::mem::size_of::<E>());
    let data = reused_zeroed::<E>(m.div_ceil(kernel.mr) * kernel.mr * k);
    Some(PackedA {
        kernel,
        blocking,
        m,
        k,
        n,
        data,
    })
}

/// Storage of dropped [`PackedA`]s, for the next ones: weights packed
/// afresh on every call (a training step's convolutions) would otherwise
/// fault in new pages each time, which costs more than the packing.
static PACKED_POOL: std::sync::Mutex<Vec<Box<dyn std::any::Any + Send>>> =
    std::sync::Mutex::new(Vec::new());
/// Most buffers [`PACKED_POOL`] keeps, and most bytes.
const POOL_BUFFERS: usize = 128;
const POOL_BYTES: usize = 64 << 20;

/// `len` zeros, in a pooled buffer when one of `E` is large enough.
fn reused_zeroed<E: PlainData>(len: usize) -> Vec<E> {
    let found = {
        let mut pool = PACKED_POOL.lock().unwrap_or_else(|e| e.into_inner());
        let at = pool.iter().position(|b| {
            b.downcast_ref::<Vec<E>>()
                .is_some_and(|v| v.capacity() >= len && v.capacity() <= 2 * len.max(1024))
        });
        at.map(|i| pool.swap_remove(i))
    };
    match found.and_then(|b| b.downcast::<Vec<E>>().ok()) {
        Some(mut v) => {
            v.clear();
            v.resize(len, zero::<E>());
            *v
        }
        None => {
            crate::scratch::note_growth(len * std::mem::size_of::<E>());
            vec![zero::<E>(); len]
        }
    }
}

/// The all-zero-bits value of a plain-data element (0.0 for floats).
fn zero<E: PlainData>() -> E {
    // SAFETY: every bit pattern of a PlainData type is a valid value.
    unsafe { std::mem::zeroed() }
}

impl<E: PlainData> Drop for PackedA<E> {
    fn drop(&mut self) {
        let data = std::mem::take(&mut self.data);
        if data.capacity() == 0 {
            return;
        }
        let mut pool = PACKED_POOL.lock().unwrap_or_else(|e| e.into_inner());
        let bytes: usize = pool.iter().map(|b| pooled_bytes(b.as_ref())).sum();
        let size = data.capacity() * std::mem::size_of::<E>();
        if pool.len() < POOL_BUFFERS && bytes + size <= POOL_BYTES {
            pool.push(Box::new(data));
        }
    }
}

/// Bytes held by a pooled buffer.
fn pooled_bytes(b: &(dyn std::any::Any + Send)) -> usize {
    if let Some(v) = b.downcast_ref::<Vec<f32>>() {
        v.capacity() * 4
    } else if let Some(v) = b.downcast_ref::<Vec<f64>>() {
        v.capacity() * 8
    } else {
        0
    }
}

impl<E: PlainData> PackedA<E> {
    /// Where each `A(i, p)` is kept in [`PackedA::data_mut`].
    pub(crate) fn layout(&self) -> PanelLayout {
        PanelLayout {
            m: self.m,
            k: self.k,
            mr: self.kernel.mr,
            kc: self.blocking.kc,
        }
    }

    /// The packed values, to be written at [`PanelLayout::offset`]s (other
    /// entries are the zero padding of the last panel).
    pub(crate) fn data_mut(&mut self) -> &mut [E] {
        &mut self.data
    }
}

/// The arrangement of a [`PackedA`]: depth blocks of `kc` steps, each a
/// run of panels of `mr` rows stored step by step.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PanelLayout {
    m: usize,
    k: usize,
    /// Rows per panel.
    pub mr: usize,
    kc: usize,
}

impl PanelLayout {
    /// Where `A(i, p)` is kept: `A(i..i + r, p)` are adjacent when
    /// `i % mr + r <= mr`.
    pub(crate) fn offset(&self, i: usize, p: usize) -> usize {
        debug_assert!(i < self.m && p < self.k);
        let (mr, kc) = (self.mr, self.kc);
        let pc = p / kc * kc;
        let depth = kc.min(self.k - pc);
        self.m.div_ceil(mr) * mr * pc + i / mr * mr * depth + (p - pc) * mr + i % mr
    }
}

/// [`run`] with A already packed by [`pack_a_once`] for this shape (`p.a`
/// is still read when C's layout needs the general path).
pub(crate) fn run_packed_a<E: GemmElement + PlainData>(
    packed: &PackedA<E>,
    level: SimdLevel,
    p: Problem<'_, E>,
    c: &mut [E],
    rsc: usize,
) {
    debug_assert!(packed.m == p.m && packed.k == p.k && packed.n == p.n);
    if !is_injective(p.m, p.n, rsc, 1) {
        return run(level, p, c, rsc, 1);
    }
    let c = CPtr {
        ptr: c.as_mut_ptr(),
        rs: rsc,
        cs: 1,
    };
    blocked_with(packed.kernel, p, c, Some(packed));
}

/// Straight loops for problems too small to amortise packing.
pub(crate) fn naive<E: crate::Float>(p: Problem<'_, E>, c: &mut [E], rsc: usize, csc: usize) {
    for i in 0..p.m {
        for j in 0..p.n {
            let mut acc = E::ZERO;
            for q in 0..p.k {
                acc += p.a.data[i * p.a.rs + q * p.a.cs] * p.b.data[q * p.b.rs + j * p.b.cs];
            }
            let dst = &mut c[i * rsc + j * csc];
            let mut r = p.alpha * acc;
            if p.beta != E::ZERO {
                r += p.beta * *dst;
            }
            match p.bias {
                Some((bias, BiasAxis::Row)) => r += bias[i],
                Some((bias, BiasAxis::Col)) => r += bias[j],
                None => {}
            }
            if p.relu && r < E::ZERO {
                r = E::ZERO;
            }
            *dst = r;
        }
    }
}

fn blocked<E: GemmElement + PlainData>(kernel: MicroKernel<E>, p: Problem<'_, E>, c: CPtr<E>) {
    blocked_with(kernel, p, c, None)
}

fn blocked_with<E: GemmElement + PlainData>(
    kernel: MicroKernel<E>,
    p: Problem<'_, E>,
    c: CPtr<E>,
    packed_a: Option<&PackedA<E>>,
) {
    let (mr, nr) = (kernel.mr, kernel.nr);
    debug_assert!(mr <= MAX_MR && nr <= MAX_NR);
    // A pre-packed A fixes the depth of the blocks.
    let blocking = packed_a.map_or_else(
        || Blocking::for_machine(mr, nr, std::mem::size_of::<E>()),
        |a| a.blocking,
    );
    let kc_max = blocking.kc;
    let threads = if p.parallel && p.m * p.n * p.k >= PARALLEL_MIN_MACS {
        rayon::current_num_threads()
    } else {
        1
    };
    let parallel = threads > 1;
    // With few rows of A each B value feeds few FMAs, so copying B into
    // panels would cost about as much as using it: read B in place instead.
    let direct_b = p.b.cs == 1 && p.m <= 12 * mr;
    let nc = if direct_b { p.n } else { blocking.nc };

    let mut b_scratch = Scratch::take();
    let b_len = if direct_b {
        nr * kc_max.min(p.k)
    } else {
        nc.min(p.n).div_ceil(nr) * nr * kc_max.min(p.k)
    };
    let b_buf = b_scratch.slice::<E>(b_len);

    for jc in (0..p.n).step_by(nc) {
        let nc_here = nc.min(p.n - jc);
        for pc in (0..p.k).step_by(kc_max) {
            let kc = kc_max.min(p.k - pc);
            let last = pc + kc == p.k;
            let tail_cols = nc_here % nr;
            let b_panels = if direct_b {
                if tail_cols != 0 {
                    let tail0 = jc + nc_here - tail_cols;
                    pack_b(b_buf, nr, p.b, pc, kc, (tail0, jc + nc_here), false);
                }
                BPanels::Direct {
                    base: p.b.data[pc * p.b.rs + jc..].as_ptr(),
                    rsb: p.b.rs,
                    tail: b_buf.as_ptr(),
                    full_panels: nc_here / nr,
                }
            } else {
                let parallel_pack = parallel && nc_here * kc >= PARALLEL_PACK_MIN;
                pack_b(b_buf, nr, p.b, pc, kc, (jc, jc + nc_here), parallel_pack);
                BPanels::Packed(b_buf.as_ptr())
            };
            let block = Block {
                kernel,
                kc,
                a: p.a,
                a_packed: packed_a.map(|a| a.data[p.m.div_ceil(mr) * mr * pc..].as_ptr()),
                pc,
                b_panels,
                row0: 0,
                rows: p.m,
                col0: jc,
                cols: nc_here,
                epi: TileEpilogue {
                    alpha: p.alpha,
                    beta: if pc == 0 { p.beta } else { E::ONE },
                    row_bias: std::ptr::null(),
                    col_bias: std::ptr::null(),
                    relu: last && p.relu,
                },
                bias: if last { p.bias } else { None },
            };
            run_items(&block, c, threads, blocking.mc);
        }
    }
}

/// Where the micro-kernel finds panel `jr` of B.
#[derive(Clone, Copy)]
enum BPanels<E> {
    Packed(*const E),
    /// B read in place (rows contiguous, `rsb` apart); the ragged last panel is packed at `tail`.
    Direct {
        base: *const E,
        rsb: usize,
        tail: *const E,
        full_panels: usize,
    },
}

/// One `(jc, pc)` step: packed operands and the part of C they update.
struct Block<'a, E> {
    kernel: MicroKernel<E>,
    kc: usize,
    /// A itself: each item packs the rows it computes, columns `pc..pc+kc`,
    a: MatRef<'a, E>,
    /// unless this block's panels were packed beforehand (all rows).
    a_packed: Option<*const E>,
    pc: usize,
    b_panels: BPanels<E>,
    row0: usize,
    rows: usize,
    col0: usize,
    cols: usize,
    epi: TileEpilogue<E>,
    bias: Option<(&'a [E], BiasAxis)>,
}
// SAFETY: the raw pointers are read-only views of buffers that outlive the
// parallel section; nothing writes through them.
unsafe impl<E: Sync> Sync for Block<'_, E> {}

fn run_items<E: GemmElement + PlainData>(
    block: &Block<'_, E>,
    c: CPtr<E>,
    threads: usize,
    mc: usize,
) {
    let (mr, nr) = (block.kernel.mr, block.kernel.nr);
    let row_panels = block.rows.div_ceil(mr);
    let col_panels = block.cols.div_ceil(nr);
    let (row_blocks, col_groups) = split_items(
        (row_panels, col_panels),
        (mr, nr),
        (mc / mr).max(1),
        threads,
        block.a_packed.is_none(),
    );
    // Row blocks all about the same size, so that no worker is left with
    // one long item at the end; likewise column groups.
    let block_panels = row_panels.div_ceil(row_blocks);
    let row_blocks = row_panels.div_ceil(block_panels);
    let group = col_panels.div_ceil(col_groups);
    let col_groups = col_panels.div_ceil(group);
    let item = |idx: usize| {
        let (rb, cg) = (idx / col_groups, idx % col_groups);
        let panels = (cg * group)..((cg + 1) * group).min(col_panels);
        let ir_range = (rb * block_panels)..((rb + 1) * block_panels).min(row_panels);
        let rows = (
            block.row0 + ir_range.start * mr,
            (block.row0 + ir_range.end * mr).min(block.row0 + block.rows),
        );
        let mut a_scratch = Scratch::take();
        let a_panels = match block.a_packed {
            // SAFETY: the packed block holds every row panel of this depth block.
            Some(all) => unsafe { all.add(ir_range.start * mr * block.kc) },
            None => {
                let a_panels = a_scratch.slice::<E>(ir_range.len() * mr * block.kc);
                pack_a(a_panels, mr, block.a, rows, block.pc, block.kc, false);
                a_panels.as_ptr()
            }
        };
        for jr in panels {
            for ir in ir_range.clone() {
                // SAFETY: panel `ir` of the block is within the packed rows.
                let a = unsafe { a_panels.add((ir - ir_range.start) * mr * block.kc) };
                // SAFETY: tiles (ir, jr) are disjoint across items; the
                // operand panels hold `kc` steps each.
                unsafe { tile(block, c, a, ir, jr) };
            }
        }
    };
    let items = row_blocks * col_groups;
    if threads > 1 && items > 1 {
        (0..items).into_par_iter().for_each(item);
    } else {
        (0..items).for_each(item);
    }
}

/// How many row blocks and column groups one `(jc, pc)` step is cut into.
///
/// Row blocks hold at most `mc_panels` panels of A (so that an item's
/// packed A block stays in its L2). Beyond that the split is a trade: an
/// item packs the A rows it computes, so every extra column group copies A
/// once more, and every extra row block streams B past its panels once
/// more. With `threads` workers it needs enough items (eight per thread,
/// for balance on a machine shared with other work), and among the splits
/// that give them it takes the one that moves the fewest values: A copied
/// (read and written, counted twice) `groups` times, plus B read `blocks`
/// times. Without packing (A packed beforehand) only B's reads count.
fn split_items(
    (row_panels, col_panels): (usize, usize),
    (mr, nr): (usize, usize),
    mc_panels: usize,
    threads: usize,
    packs_a: bool,
) -> (usize, usize) {
    let want = if threads > 1 { 8 * threads } else { 1 };
    let fewest_blocks = row_panels.div_ceil(mc_panels).max(1);
    (fewest_blocks..=row_panels.max(fewest_blocks))
        .map(|blocks| {
            let groups = want.div_ceil(blocks).clamp(1, col_panels.max(1));
            let a_copies = if packs_a {
                2 * groups * row_panels * mr
            } else {
                0
            };
            let b_reads = blocks * col_panels * nr;
            // Too few items idle a worker for a whole item: count that as
            // the cost it is, the work of the missing items.
            let short = want.saturating_sub(blocks * groups);
            (blocks, groups, (a_copies + b_reads, short))
        })
        .min_by_key(|&(_, _, (moved, short))| (short, moved))
        .map_or((1, 1), |(blocks, groups, _)| (blocks, groups))
}

/// Computes tile `(ir, jr)` of the block into C from the packed A panel `a`.
///
/// # Safety
/// `c` must be valid for the block's rows and columns, `a` must hold `kc`
/// steps of `MR` values, and no other thread may touch this tile meanwhile.
unsafe fn tile<E: GemmElement>(
    block: &Block<'_, E>,
    c: CPtr<E>,
    a: *const E,
    ir: usize,
    jr: usize,
) {
    let MicroKernel { mr, nr, run } = block.kernel;
    let kc = block.kc;
    let (b, rsb) = match block.b_panels {
        // SAFETY: panel `jr` of a packed B block starts `jr·nr·kc` values in.
        BPanels::Packed(base) => (unsafe { base.add(jr * nr * kc) }, nr),
        BPanels::Direct {
            base,
            rsb,
            tail,
            full_panels,
        } => {
            if jr < full_panels {
                // SAFETY: a B read in place has its full panel `jr` `jr·nr` columns in.
                (unsafe { base.add(jr * nr) }, rsb)
            } else {
                (tail, nr)
            }
        }
    };
    let i0 = block.row0 + ir * mr;
    let j0 = block.col0 + jr * nr;
    let rows = mr.min(block.row0 + block.rows - i0);
    let cols = nr.min(block.col0 + block.cols - j0);
    let mut epi = block.epi;
    if rows == mr && cols == nr && c.cs == 1 {
        match block.bias {
            Some((bias, BiasAxis::Row)) => epi.row_bias = bias[i0..i0 + mr].as_ptr(),
            Some((bias, BiasAxis::Col)) => epi.col_bias = bias[j0..j0 + nr].as_ptr(),
            None => {}
        }
        // SAFETY: a full tile of row-major C: `mr` rows `c.rs` apart of
        // `nr` contiguous values, all inside C; the panels hold `kc` steps.
        unsafe { run(kc, a, b, rsb, c.ptr.add(i0 * c.rs + j0), c.rs, &epi) };
        return;
    }
    // Ragged or strided tile: go through a full-size buffer.
    let mut buf = [E::ZERO; MAX_MR * MAX_NR];
    let mut row_bias = [E::ZERO; MAX_MR];
    let mut col_bias = [E::ZERO; MAX_NR];
    // SAFETY: only called with i < rows and j < cols, inside the tile.
    let at = |i: usize, j: usize| unsafe { c.ptr.add((i0 + i) * c.rs + (j0 + j) * c.cs) };
    if epi.beta != E::ZERO {
        for i in 0..rows {
            for j in 0..cols {
                // SAFETY: an element of this thread's tile of C.
                buf[i * nr + j] = unsafe { *at(i, j) };
            }
        }
    }
    match block.bias {
        Some((bias, BiasAxis::Row)) => {
            row_bias[..rows].copy_from_slice(&bias[i0..i0 + rows]);
            epi.row_bias = row_bias.as_ptr();
        }
        Some((bias, BiasAxis::Col)) => {
            col_bias[..cols].copy_from_slice(&bias[j0..j0 + cols]);
            epi.col_bias = col_bias.as_ptr();
        }
        None => {}
    }
    // SAFETY: `buf` is a full `mr × nr` tile with rows `nr` apart.
    unsafe { run(kc, a, b, rsb, buf.as_mut_ptr(), nr, &epi) };
    for i in 0..rows {
        for j in 0..cols {
            // SAFETY: an element of this thread's tile of C.
            unsafe { *at(i, j) = buf[i * nr + j] };
        }
    }
}
