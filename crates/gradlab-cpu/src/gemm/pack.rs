//! Copying blocks of `A` and `B` into the panel layout the micro-kernels
//! stream through: whatever the operands' strides (transposed or not), the
//! micro-kernel then reads both with unit stride, and tails are zero-padded
//! to whole panels so that it never needs a bounds check.

use crate::Float;
use rayon::prelude::*;

/// A strided read-only matrix view: element `(i, j)` at `data[i*rs + j*cs]`.
#[derive(Clone, Copy)]
pub(crate) struct MatRef<'a, E> {
    pub data: &'a [E],
    pub rs: usize,
    pub cs: usize,
}

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
    let pack_panel = |(ip, panel): (usize, &mut [E])| {
        let r0 = rows.0 + ip * mr;
        let live = mr.min(rows.1 - r0);
        if live < mr {
            panel.fill(E::ZERO);
        }
        for i in 0..live {
            let src = &a.data[(r0 + i) * a.rs + p0 * a.cs..];
            for p in 0..kc {
                panel[p * mr + i] = src[p * a.cs];
            }
        }
    };
    let panel_len = mr * kc;
    let dst = &mut dst[..(rows.1 - rows.0).div_ceil(mr) * panel_len];
    if parallel {
        dst.par_chunks_mut(panel_len)
            .enumerate()
            .for_each(pack_panel);
    } else {
        dst.chunks_mut(panel_len).enumerate().for_each(pack_panel);
    }
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
    let pack_panel = |(jp, panel): (usize, &mut [E])| {
        let c0 = cols.0 + jp * nr;
        let live = nr.min(cols.1 - c0);
        if live < nr {
            panel.fill(E::ZERO);
        }
        if b.cs == 1 {
            for p in 0..kc {
                let start = (p0 + p) * b.rs + c0;
                // Rows are one panel wide: an inlined loop beats a memcpy call.
                for (d, v) in panel[p * nr..p * nr + live]
                    .iter_mut()
                    .zip(&b.data[start..start + live])
                {
                    *d = *v;
                }
            }
        } else {
            // Column-major-ish B (a transposed operand): walk each column contiguously.
            for j in 0..live {
                let src = &b.data[(c0 + j) * b.cs + p0 * b.rs..];
                for p in 0..kc {
                    panel[p * nr + j] = src[p * b.rs];
                }
            }
        }
    };
    let panel_len = nr * kc;
    let dst = &mut dst[..(cols.1 - cols.0).div_ceil(nr) * panel_len];
    if parallel {
        dst.par_chunks_mut(panel_len)
            .enumerate()
            .for_each(pack_panel);
    } else {
        dst.chunks_mut(panel_len).enumerate().for_each(pack_panel);
    }
}
