//! The data cache sizes of this CPU, read once at run time, so that the
//! GEMM and convolution kernels size their blocks for the machine they run
//! on instead of for the one they were written on.
//!
//! Linux describes the caches in `/sys/devices/system/cpu/cpu0/cache`; where
//! that is missing, x86-64 CPUs answer CPUID leaf 4 (Intel) or 0x8000001D
//! (AMD), which use the same layout. A CPU that answers neither gets
//! conservative sizes (32 KiB, 256 KiB, 8 MiB), so blocks come out small
//! rather than thrashing.

use std::sync::OnceLock;

/// Sizes in bytes of the caches one core uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheSizes {
    /// Level-1 data cache of one core.
    pub l1d: usize,
    /// Level-2 cache of one logical CPU (its share, when several share one).
    pub l2: usize,
    /// Level-3 cache, whole.
    pub l3: usize,
    /// Logical CPUs sharing that level-3 cache (1 when unknown).
    pub l3_sharing: usize,
    /// Where the sizes came from: `"sysfs"`, `"cpuid"` or `"default"`.
    pub source: &'static str,
}

impl CacheSizes {
    /// What a CPU that describes nothing is assumed to have.
    pub const DEFAULT: CacheSizes = CacheSizes {
        l1d: 32 << 10,
        l2: 256 << 10,
        l3: 8 << 20,
        l3_sharing: 1,
        source: "default",
    };

    /// One core's share of the level-3 cache.
    pub fn l3_per_core(&self) -> usize {
        self.l3 / self.l3_sharing.max(1)
    }

    /// One line, e.g. `L1d 48 KiB, L2 2 MiB, L3 260 MiB shared by 2 (sysfs)`.
    pub fn describe(&self) -> String {
        format!(
            "L1d {}, L2 {}, L3 {} shared by {} ({})",
            human(self.l1d),
            human(self.l2),
            human(self.l3),
            self.l3_sharing,
            self.source
        )
    }

    /// Fills what a probe did not find from [`CacheSizes::DEFAULT`], and
    /// keeps the sizes ordered (a level never smaller than the one below).
    fn completed(found: Found, source: &'static str) -> CacheSizes {
        let d = CacheSizes::DEFAULT;
        let l1d = found.l1d.unwrap_or(d.l1d);
        let l2 = found.l2.unwrap_or(d.l2).max(l1d);
        let (l3, l3_sharing) = found.l3.unwrap_or((d.l3, 1));
        CacheSizes {
            l1d,
            l2,
            l3: l3.max(l2),
            l3_sharing: l3_sharing.max(1),
            source,
        }
    }
}

fn human(bytes: usize) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{} KiB", bytes >> 10)
    }
}

/// The caches of this machine, probed once.
pub fn cache_sizes() -> CacheSizes {
    static SIZES: OnceLock<CacheSizes> = OnceLock::new();
    *SIZES.get_or_init(probe)
}

fn probe() -> CacheSizes {
    if let Some(found) = from_sysfs(std::path::Path::new("/sys/devices/system/cpu/cpu0/cache")) {
        return CacheSizes::completed(found, "sysfs");
    }
    if let Some(found) = from_cpuid() {
        return CacheSizes::completed(found, "cpuid");
    }
    CacheSizes::DEFAULT
}

/// What a probe found, level by level (L3 with its sharing count).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Found {
    l1d: Option<usize>,
    l2: Option<usize>,
    l3: Option<(usize, usize)>,
}

impl Found {
    fn add(&mut self, level: u32, data: bool, bytes: usize, sharing: usize) {
        if bytes == 0 || !data {
            return;
        }
        match level {
            1 => self.l1d = Some(bytes),
            // A level-2 cache shared by SMT siblings or a cluster of cores
            // counts per logical CPU: each runs a worker.
            2 => self.l2 = Some(bytes / sharing.max(1)),
            3 => self.l3 = Some((bytes, sharing.max(1))),
            _ => {}
        }
    }

    fn any(self) -> Option<Found> {
        (self.l1d.is_some() || self.l2.is_some()).then_some(self)
    }
}

/// Reads `index*/{level,type,size,shared_cpu_list}` under `dir`.
fn from_sysfs(dir: &std::path::Path) -> Option<Found> {
    let mut found = Found::default();
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        if !entry.file_name().to_string_lossy().starts_with("index") {
            continue;
        }
        let read = |name: &str| std::fs::read_to_string(entry.path().join(name)).ok();
        let (Some(level), Some(kind), Some(size)) = (read("level"), read("type"), read("size"))
        else {
            continue;
        };
        let (Ok(level), Some(bytes)) = (level.trim().parse::<u32>(), parse_size(&size)) else {
            continue;
        };
        let sharing = read("shared_cpu_list").map_or(1, |l| count_cpus(&l));
        let data = matches!(kind.trim(), "Data" | "Unified");
        found.add(level, data, bytes, sharing);
    }
    found.any()
}

/// `48K`, `2048K`, `260M`, `1G` or plain bytes.
fn parse_size(text: &str) -> Option<usize> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, ""),
    };
    let value: usize = digits.parse().ok()?;
    let scale = match unit.trim() {
        "" => 1,
        "K" | "KB" | "KiB" => 1 << 10,
        "M" | "MB" | "MiB" => 1 << 20,
        "G" | "GB" | "GiB" => 1 << 30,
        _ => return None,
    };
    value.checked_mul(scale)
}

/// The number of CPUs in a list such as `0-3,8,10-11`.
fn count_cpus(list: &str) -> usize {
    list.trim()
        .split(',')
        .filter(|part| !part.is_empty())
        .map(|part| match part.split_once('-') {
            Some((a, b)) => match (a.parse::<usize>(), b.parse::<usize>()) {
                (Ok(a), Ok(b)) if b >= a => b - a + 1,
                _ => 1,
            },
            None => 1,
        })
        .sum::<usize>()
        .max(1)
}

/// CPUID's deterministic cache parameters: leaf 4 on Intel, 0x8000001D on
/// AMD (same register layout).
#[cfg(target_arch = "x86_64")]
fn from_cpuid() -> Option<Found> {
    use std::arch::x86_64::{__cpuid, __cpuid_count};
    // SAFETY: leaves 0 and 0x80000000 exist on every x86-64 CPU (newer
    // toolchains declare these intrinsics safe, hence the allow).
    #[allow(unused_unsafe)]
    let (basic, extended) = unsafe { (__cpuid(0), __cpuid(0x8000_0000)) };
    let amd = (basic.ebx, basic.edx, basic.ecx) == (0x6874_7541, 0x6974_6e65, 0x444d_4163);
    let leaf = if amd && extended.eax >= 0x8000_001d {
        0x8000_001d
    } else if !amd && basic.eax >= 4 {
        4
    } else {
        return None;
    };
    let mut found = Found::default();
    for sub in 0..16 {
        // SAFETY: the leaf is at most the highest one the CPU reported.
        #[allow(unused_unsafe)]
        let r = unsafe { __cpuid_count(leaf, sub) };
        let kind = r.eax & 0x1f;
        if kind == 0 {
            break;
        }
        let level = (r.eax >> 5) & 0x7;
        let sharing = ((r.eax >> 14) & 0xfff) as usize + 1;
        let ways = ((r.ebx >> 22) & 0x3ff) as usize + 1;
        let partitions = ((r.ebx >> 12) & 0x3ff) as usize + 1;
        let line = (r.ebx & 0xfff) as usize + 1;
        let sets = r.ecx as usize + 1;
        // Types: 1 data, 2 instruction, 3 unified.
        found.add(level, kind != 2, ways * partitions * line * sets, sharing);
    }
    found.any()
}

#[cfg(not(target_arch = "x86_64"))]
fn from_cpuid() -> Option<Found> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_cpu_lists_parse() {
        assert_eq!(parse_size("48K\n"), Some(48 << 10));
        assert_eq!(parse_size("266240K"), Some(260 << 20));
        assert_eq!(parse_size("2M"), Some(2 << 20));
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("12Q"), None);
        assert_eq!(count_cpus("0-1\n"), 2);
        assert_eq!(count_cpus("0-3,8,10-11"), 7);
        assert_eq!(count_cpus("5"), 1);
    }

    #[test]
    fn a_fake_sysfs_tree_is_read_level_by_level() {
        let dir = std::env::temp_dir().join(format!("gradlab-cache-test-{}", std::process::id()));
        let write = |index: &str, level: &str, kind: &str, size: &str, shared: &str| {
            let d = dir.join(index);
            std::fs::create_dir_all(&d).unwrap();
            for (name, text) in [
                ("level", level),
                ("type", kind),
                ("size", size),
                ("shared_cpu_list", shared),
            ] {
                std::fs::write(d.join(name), text).unwrap();
            }
        };
        write("index0", "1", "Data", "32K", "0");
        write("index1", "1", "Instruction", "32K", "0");
        // A level-2 cache shared by two cores counts half per core.
        write("index2", "2", "Unified", "1024K", "0-1");
        write("index3", "3", "Unified", "32768K", "0-15");
        let found = from_sysfs(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        let sizes = CacheSizes::completed(found.expect("caches found"), "sysfs");
        assert_eq!(
            (sizes.l1d, sizes.l2, sizes.l3, sizes.l3_sharing),
            (32 << 10, 512 << 10, 32 << 20, 16)
        );
        assert_eq!(sizes.l3_per_core(), 2 << 20);
    }

    #[test]
    fn this_machine_reports_ordered_sizes() {
        let s = cache_sizes();
        assert!(s.l1d >= 4 << 10 && s.l2 >= s.l1d && s.l3 >= s.l2, "{s:?}");
        // Where sysfs exists, CPUID (when the CPU answers it) agrees on L1d.
        if let (Some(cpuid), "sysfs") = (from_cpuid(), s.source) {
            if let Some(l1d) = cpuid.l1d {
                assert_eq!(l1d, s.l1d, "{s:?} vs {cpuid:?}");
            }
        }
    }
}
