//! Block sizes of the GEMM loop nest, derived from this machine's caches
//! (see [`crate::cache`]) and the micro-kernel's tile, following the
//! analytical model of BLIS (Low et al., "Analytical modeling is enough for
//! high-performance BLIS", 2016) instead of constants tuned on one CPU:
//!
//! * `kc`: one `kc×nr` panel of B is reused by every A panel of an item
//!   while the micro-kernel sweeps them past it, so it is sized to L1 (the
//!   A panels and C's tile stream through beside it);
//! * `mc`: the packed `mc×kc` block of A that one worker sweeps stays in
//!   (half of) its L2 while the B panels pass;
//! * `nc`: the packed `kc×nc` block of B, shared by the workers, fits in
//!   half of their share of the L3.
//!
//! Results depend on `kc` (each element of C sums its `k` products in
//! `kc`-long runs), so they are the same for every thread count but may
//! differ in the last bits between machines with different L1 sizes, as
//! they already do between SIMD levels.

use crate::cache::CacheSizes;

/// The shallowest and deepest blocks: shallower ones spend too much on
/// C's loads and stores per FMA, deeper ones gain nothing.
const KC_RANGE: (usize, usize) = (128, 512);
/// The fewest columns of B packed at once, in micro-panels.
const NC_MIN_PANELS: usize = 8;
/// Depths are multiples of this (whole cache lines of f32 steps).
const KC_STEP: usize = 16;
/// The most columns of B packed at once: beyond it, the packed block would
/// take more scratch memory than the passes it saves are worth.
const NC_MAX: usize = 1 << 13;

/// The block sizes of one GEMM (for one micro-kernel).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Blocking {
    /// Depth of a packed block (steps of `k`).
    pub kc: usize,
    /// Rows of A per worker item, a multiple of `mr`.
    pub mc: usize,
    /// Columns of B packed at once, a multiple of `nr`.
    pub nc: usize,
}

impl Blocking {
    /// Blocks for an `mr×nr` micro-kernel on `elem`-byte values with these
    /// caches, `threads` workers sharing the packed B block.
    pub(crate) fn new(
        caches: &CacheSizes,
        (mr, nr): (usize, usize),
        elem: usize,
        threads: usize,
    ) -> Blocking {
        let kc = (caches.l1d / (nr * elem)) / KC_STEP * KC_STEP;
        let kc = kc.clamp(KC_RANGE.0, KC_RANGE.1);
        let mc = (caches.l2 / 2 / (kc * elem) / mr).max(1) * mr;
        let l3_share = caches.l3_per_core() * threads.clamp(1, caches.l3_sharing.max(1));
        let nc_panels = l3_share / 2 / (kc * elem) / nr;
        let nc = nc_panels.clamp(NC_MIN_PANELS, (NC_MAX / nr).max(NC_MIN_PANELS)) * nr;
        Blocking { kc, mc, nc }
    }

    /// Blocks for this machine and the current thread pool.
    pub(crate) fn for_machine(mr: usize, nr: usize, elem: usize) -> Blocking {
        let threads = rayon::current_num_threads();
        Blocking::new(&crate::cache::cache_sizes(), (mr, nr), elem, threads)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caches(l1d_k: usize, l2_k: usize, l3_m: usize) -> CacheSizes {
        CacheSizes {
            l1d: l1d_k << 10,
            l2: l2_k << 10,
            l3: l3_m << 20,
            l3_sharing: 8,
            source: "test",
        }
    }

    #[test]
    fn blocks_follow_the_caches() {
        // A server core with 48 KiB L1d, 2 MiB L2 (AVX-512 f32 tile 8x48):
        // the B panel fills L1, the A block half of L2.
        let big = Blocking::new(&caches(48, 2048, 260), (8, 48), 4, 2);
        assert_eq!(big.kc, 256);
        assert_eq!(big.mc, 1024);
        assert_eq!(big.nc, NC_MAX / 48 * 48);
        // A 32 KiB L1d and 512 KiB L2 (AVX2 f32 tile 6x16): deeper panels
        // (the B panel is narrower), fewer rows per block; 32 MiB of L3
        // shared by 8 cores, two of them working.
        let small = Blocking::new(&caches(32, 512, 32), (6, 16), 4, 2);
        assert_eq!(small.kc, 512);
        assert_eq!(small.mc, 126);
        assert_eq!(small.nc, 2048);
        // Tiny caches still give usable blocks.
        let tiny = Blocking::new(&caches(4, 16, 1), (8, 48), 8, 1);
        assert_eq!(tiny.kc, KC_RANGE.0);
        assert!(tiny.mc >= 8 && tiny.nc >= 8 * 48);
    }
}
