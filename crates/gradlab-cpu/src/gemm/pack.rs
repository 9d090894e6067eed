//! Copying blocks of `A` and `B` into the panel layout the micro-kernels
//! stream through: whatever the operands' strides (transposed or not), the
//! micro-kernel then reads both with unit stride, and tails are zero-padded
//! to whole panels so that it never needs a bounds check.
//!
//! Both operands pack the same way: a panel is `w` *lanes* (rows of A,
//! columns of B) by `kc` *steps* (the shared `k` dimension), stored step by
//! step. What differs is which direction is contiguous in the source:
//!
//! * lanes contiguous (row-major B, column-major A): each step is one short
//!   copy. Rows of the source may be a page apart, so a panel-by-panel walk
//!   would touch a new page (and miss) on every copy; the walk goes over a
//!   few steps of *all* the group's panels at a time, reading every source
//!   row front to back;
//! * steps contiguous (row-major A, column-major B): a transposition; the
//!   panel's `w` source runs are read side by side.
//!
//! The common panel widths are compiled as constants so that the copies
//! unroll into straight vector moves; packing was a tenth of a large GEMM's
//! time when every copy went through a loop of run-time length.

use crate::Float;
use rayon::prelude::*;

/// A strided read-only matrix view: element `(i, j)` at `data[i*rs + j*cs]`.
#[derive(Clone, Copy)]
pub(crate) struct MatRef<'a, E> {
    pub data: &'a [E],
    pub rs: usize,
    pub cs: usize,
}

impl<'a, E> MatRef<'a, E> {
    /// The view of `data` with row stride `rs` and column stride `cs`.
    pub(crate) fn new(data: &'a [E], rs: usize, cs: usize) -> Self {
        MatRef { data, rs, cs }
    }
}

/// A strided writable matrix view: element `(i, j)` at `data[i*rs + j*cs]`.
pub(crate) struct MatMut<'a, E> {
    pub data: &'a mut [E],
    pub rs: usize,
    pub cs: usize,
}

impl<'a, E> MatMut<'a, E> {
    /// The view of `data` with row stride `rs` and column stride `cs`.
    pub(crate) fn new(data: &'a mut [E], rs: usize, cs: usize) -> Self {
        MatMut { data, rs, cs }
    }
}

/// Lanes `0..lanes` by steps `0..kc` of a source: value `(lane, step)` at
/// `data[origin + lane*lane_stride + step*step_stride]`.
#[derive(Clone, Copy)]
struct Source<'a, E> {
    data: &'a [E],
    origin: usize,
    lane_stride: usize,
    step_stride: usize,
    lanes: usize,
    kc: usize,
}

/// Steps of every panel copied per sweep over a group's panels when lanes
/// are contiguous: enough source rows in flight for the prefetchers, few
/// enough that their lines stay in L1 between panels.
const STEPS_PER_SWEEP: usize = 8;

/// Packs rows `rows.0..rows.1`, columns `p0..p0+kc` of `a` into panels of
/// `mr` rows: panel `ip` holds `kc` steps of `mr` consecutive row values.
pub(crate) fn pack_a<E: Float>(
    dst: &mut [E],
    mr: usize,
    a: MatRef<'_, E>,
    rows: (usize, usize),
    p0: usize,
    kc: usize,
    parallel: bool,
) {
    let src = Source {
        data: a.data,
        origin: rows.0 * a.rs + p0 * a.cs,
        lane_stride: a.rs,
        step_stride: a.cs,
        lanes: rows.1 - rows.0,
        kc,
    };
    pack_panels(dst, mr, src, parallel);
}

/// Packs rows `p0..p0+kc`, columns `cols.0..cols.1` of `b` into panels of
/// `nr` columns: panel `jp` holds `kc` rows of `nr` consecutive values.
pub(crate) fn pack_b<E: Float>(
    dst: &mut [E],
    nr: usize,
    b: MatRef<'_, E>,
    p0: usize,
    kc: usize,
    cols: (usize, usize),
    parallel: bool,
) {
    let src = Source {
        data: b.data,
        origin: p0 * b.rs + cols.0 * b.cs,
        lane_stride: b.cs,
        step_stride: b.rs,
        lanes: cols.1 - cols.0,
        kc,
    };
    pack_panels(dst, nr, src, parallel);
}

fn pack_panels<E: Float>(dst: &mut [E], width: usize, src: Source<'_, E>, parallel: bool) {
    let panels = src.lanes.div_ceil(width);
    let panel_len = width * src.kc;
    let dst = &mut dst[..panels * panel_len];
    if panels == 0 || panel_len == 0 {
        return;
    }
    // Contiguous groups of panels, one per worker.
    let groups = if parallel {
        rayon::current_num_threads().min(panels)
    } else {
        1
    };
    let per_group = panels.div_ceil(groups);
    let pack_group = |(g, group): (usize, &mut [E])| {
        let first = g * per_group;
        match width {
            4 => pack_group::<E, 4>(group, first, src),
            6 => pack_group::<E, 6>(group, first, src),
            8 => pack_group::<E, 8>(group, first, src),
            16 => pack_group::<E, 16>(group, first, src),
            24 => pack_group::<E, 24>(group, first, src),
            32 => pack_group::<E, 32>(group, first, src),
            48 => pack_group::<E, 48>(group, first, src),
            64 => pack_group::<E, 64>(group, first, src),
            _ => pack_group_any(group, width, first, src),
        }
    };
    if groups > 1 {
        dst.par_chunks_mut(per_group * panel_len)
            .enumerate()
            .for_each(pack_group);
    } else {
        pack_group((0, dst));
    }
}

/// Packs the panels held by `dst` (whole panels of `W` lanes), the first
/// being panel `first` of the source.
fn pack_group<E: Float, const W: usize>(dst: &mut [E], first: usize, src: Source<'_, E>) {
    let kc = src.kc;
    let panel_len = W * kc;
    let live = |jp: usize| W.min(src.lanes - (first + jp) * W);
    if src.lane_stride == 1 {
        for s0 in (0..kc).step_by(STEPS_PER_SWEEP) {
            let steps = s0..(s0 + STEPS_PER_SWEEP).min(kc);
            for (jp, panel) in dst.chunks_exact_mut(panel_len).enumerate() {
                let lane0 = (first + jp) * W;
                let live = live(jp);
                for p in steps.clone() {
                    let from = src.origin + p * src.step_stride + lane0;
                    let to = &mut panel[p * W..(p + 1) * W];
                    if live == W {
                        let to: &mut [E; W] = to.try_into().expect("panel step is W wide");
                        let from: &[E; W] = src.data[from..from + W]
                            .try_into()
                            .expect("source run is W wide");
                        *to = *from;
                    } else {
                        to[..live].copy_from_slice(&src.data[from..from + live]);
                        to[live..].fill(E::ZERO);
                    }
                }
            }
        }
    } else if src.step_stride == 1 {
        for (jp, panel) in dst.chunks_exact_mut(panel_len).enumerate() {
            let lane0 = (first + jp) * W;
            let live = live(jp);
            if live == W {
                let runs: [&[E]; W] = std::array::from_fn(|i| {
                    let from = src.origin + (lane0 + i) * src.lane_stride;
                    &src.data[from..from + kc]
                });
                for (p, step) in panel.chunks_exact_mut(W).enumerate() {
                    for (to, run) in step.iter_mut().zip(&runs) {
                        *to = run[p];
                    }
                }
            } else {
                pack_panel_strided(panel, W, lane0, live, src);
            }
        }
    } else {
        for (jp, panel) in dst.chunks_exact_mut(panel_len).enumerate() {
            pack_panel_strided(panel, W, (first + jp) * W, live(jp), src);
        }
    }
}

/// [`pack_group`] for a width without a compiled-in constant.
fn pack_group_any<E: Float>(dst: &mut [E], width: usize, first: usize, src: Source<'_, E>) {
    for (jp, panel) in dst.chunks_exact_mut(width * src.kc).enumerate() {
        let lane0 = (first + jp) * width;
        pack_panel_strided(panel, width, lane0, width.min(src.lanes - lane0), src);
    }
}

/// One panel, element by element, any strides; lanes past `live` are zero.
fn pack_panel_strided<E: Float>(
    panel: &mut [E],
    width: usize,
    lane0: usize,
    live: usize,
    src: Source<'_, E>,
) {
    if live < width {
        panel.fill(E::ZERO);
    }
    for i in 0..live {
        let run = src.origin + (lane0 + i) * src.lane_stride;
        for p in 0..src.kc {
            panel[p * width + i] = src.data[run + p * src.step_stride];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Value `(i, j)` of the test matrices, distinct everywhere.
    fn value(i: usize, j: usize) -> f64 {
        (i * 1000 + j) as f64 + 0.5
    }

    /// A `rows×cols` matrix in a buffer with the given strides (and padding
    /// elsewhere set to NaN, so that reading outside the view shows).
    fn matrix(rows: usize, cols: usize, rs: usize, cs: usize) -> Vec<f64> {
        let len = (rows - 1) * rs + (cols - 1) * cs + 1;
        let mut data = vec![f64::NAN; len];
        for i in 0..rows {
            for j in 0..cols {
                data[i * rs + j * cs] = value(i, j);
            }
        }
        data
    }

    #[test]
    fn panels_hold_the_block_in_step_order_with_zero_padding() {
        // Widths with and without a compiled constant, every stride pattern,
        // blocks that are not whole panels, serial and parallel.
        for &width in &[4usize, 6, 8, 16, 24, 48, 5] {
            for &(row_major, lanes_total, kc) in &[(true, 37, 11), (false, 50, 9), (true, 96, 17)] {
                for &transposed in &[false, true] {
                    for &parallel in &[false, true] {
                        let (rows, cols) = (lanes_total + 3, kc + 5);
                        let (rs, cs) = if row_major {
                            (cols + 2, 1)
                        } else {
                            (1, rows + 1)
                        };
                        let data = matrix(rows, cols, rs, cs);
                        let m = MatRef {
                            data: &data,
                            rs,
                            cs,
                        };
                        let panels = (lanes_total - 2).div_ceil(width);
                        let mut dst = vec![f64::NAN; panels * width * kc];
                        if transposed {
                            // As B^T: lanes are rows 2.., steps columns 3..
                            let bt = MatRef {
                                data: &data,
                                rs: cs,
                                cs: rs,
                            };
                            pack_b(&mut dst, width, bt, 3, kc, (2, lanes_total), parallel);
                        } else {
                            pack_a(&mut dst, width, m, (2, lanes_total), 3, kc, parallel);
                        }
                        for jp in 0..panels {
                            for p in 0..kc {
                                for i in 0..width {
                                    let got = dst[jp * width * kc + p * width + i];
                                    let lane = 2 + jp * width + i;
                                    let want = if lane < lanes_total {
                                        value(lane, 3 + p)
                                    } else {
                                        0.0
                                    };
                                    assert_eq!(
                                        got, want,
                                        "width {width} row_major {row_major} transposed {transposed} panel {jp} step {p} lane {i}"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
