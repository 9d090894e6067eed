//! The bench's reports: the sweep's correctness column, the comparison
//! verdicts, the SVG and the JSON document, on tiny sizes.

use gradlab::bench::{
    compare, figure, load_rows, markdown, regressions, sweep_conv, sweep_gemm, Check, GemmVariant,
    MachinePeak, Measured, Plan, Report, Row, Verdict,
};

fn peak() -> MachinePeak {
    MachinePeak {
        level: gradlab::cpu::detected_simd_level(),
        one_core_gflops: 50.0,
        all_cores_gflops: 100.0,
        one_core_avx2_gflops: None,
        triad_gbps: 10.0,
    }
}

fn tiny_plan() -> Plan {
    Plan::with_budget(true, 3, 0.0)
}

/// A variant that gets one entry wrong: fast, and not to be ranked.
fn wrong_variant() -> GemmVariant {
    GemmVariant::new(
        "off by one entry",
        Box::new(|m, k, n, a, b, c| {
            gradlab::bench::gemm_crate_sgemm(m, k, n, a, b, c, 1);
            c[m * n / 2] += 1.0;
        }),
    )
}

fn gemm_rows(variants: &[GemmVariant], sizes: &[usize]) -> Vec<Measured> {
    let mut rows = Vec::new();
    sweep_gemm(sizes, variants, &tiny_plan(), &peak(), 1, &mut |m| {
        rows.push(m)
    });
    rows
}

#[test]
fn a_wrong_variant_is_flagged_and_not_ranked() {
    let mut variants = gradlab::bench::gemm_variants(1);
    variants.push(wrong_variant());
    let rows = gemm_rows(&variants, &[17, 32]);
    assert_eq!(rows.len(), 2 * variants.len());
    for r in &rows {
        let check = r.check.as_ref().expect("every sweep row is checked");
        if r.row.variant == "off by one entry" {
            assert!(!check.passed() && r.flagged(), "{check:?}");
            assert!(check.max_abs_error >= 0.99, "{check:?}");
            assert_eq!(r.rank, None);
        } else {
            assert!(
                check.passed(),
                "{} {}: {check:?}",
                r.row.variant,
                r.row.shape
            );
            assert!(check.max_rel_error < 1e-5, "{check:?}");
            assert!(r.rank.is_some());
            assert_eq!(check.against, "reference, every entry");
        }
        let (min, max) = (r.min_s.unwrap(), r.max_s.unwrap());
        assert!(min <= r.row.median_s && r.row.median_s <= max);
        assert!(r.reps.unwrap() >= 3);
    }
    // Ranks of one size are 1..=passing variants, each once.
    let mut ranks: Vec<usize> = rows
        .iter()
        .filter(|r| r.row.shape == "17x17x17")
        .filter_map(|r| r.rank)
        .collect();
    ranks.sort_unstable();
    assert_eq!(ranks, (1..=variants.len() - 1).collect::<Vec<_>>());
    let table = markdown(&rows);
    assert!(table.contains("(wrong)**"), "{table}");
}

#[test]
fn an_unwritten_entry_is_caught_too() {
    let lazy = GemmVariant::new(
        "skips the last row",
        Box::new(|m, k, n, a, b, c| {
            gradlab::bench::gemm_crate_sgemm(m - 1, k, n, a, b, c, 1);
        }),
    );
    let rows = gemm_rows(&[lazy], &[9]);
    let check = rows[0].check.as_ref().unwrap();
    assert!(check.max_abs_error.is_infinite() && !check.passed());
}

#[test]
fn conv_sweep_checks_every_pass_against_the_reference() {
    let mut rows = Vec::new();
    sweep_conv(&[1, 2], &tiny_plan(), &peak(), 1, &mut |m| rows.push(m));
    let kernels: std::collections::BTreeSet<&str> =
        rows.iter().map(|r| r.row.kernel.as_str()).collect();
    assert_eq!(kernels.len(), 3, "{kernels:?}");
    assert!(rows.iter().all(|r| r.check.as_ref().unwrap().passed()));
    assert!(rows
        .iter()
        .all(|r| r.size.is_some() && r.intensity.is_some()));
}

fn row(variant: &str, min: f64, median: f64, max: f64) -> Measured {
    let mut m = Measured::new(
        Row {
            kernel: "gemm f32".into(),
            shape: "64x64x64".into(),
            variant: variant.into(),
            threads: 1,
            median_s: median,
            gflops: Some(1.0),
            gbps: None,
            peak_share: 0.1,
            baseline_ratio: None,
        },
        None,
    );
    m.min_s = Some(min);
    m.max_s = Some(max);
    m.reps = Some(5);
    m
}

#[test]
fn verdicts_use_the_spread_of_both_runs() {
    let old = vec![
        row("sped up", 1.9, 2.0, 2.2),
        row("slowed down", 1.0, 1.05, 1.1),
        row("noisy", 1.0, 1.1, 1.5),
        row("only old", 1.0, 1.0, 1.0),
    ];
    let new = vec![
        row("sped up", 0.9, 1.0, 1.1),
        row("slowed down", 1.5, 1.6, 1.8),
        // A median 20% lower, but inside the old run's spread: noise.
        row("noisy", 0.85, 0.88, 1.2),
        row("only new", 1.0, 1.0, 1.0),
    ];
    let c = compare(&new, &old);
    let verdicts: Vec<(&str, Verdict)> =
        c.iter().map(|c| (c.variant.as_str(), c.verdict)).collect();
    assert_eq!(
        verdicts,
        [
            ("sped up", Verdict::Faster),
            ("slowed down", Verdict::Slower),
            ("noisy", Verdict::Same)
        ]
    );
    assert!((c[0].ratio - 0.5).abs() < 1e-12);
    // --fail-slower 50 catches the 1.52x slow-down, 60 lets it pass.
    assert_eq!(regressions(&c, 50.0).len(), 1);
    assert!(regressions(&c, 60.0).is_empty());
}

#[test]
fn the_svg_parses_and_holds_one_series_per_variant() {
    let mut variants = gradlab::bench::gemm_variants(1);
    variants.push(wrong_variant());
    let rows = gemm_rows(&variants, &[16, 24]);
    let svg = figure(&rows, &peak(), 1).to_svg().unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("the SVG is well-formed XML");
    let texts: Vec<String> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text().map(|t| t.trim().to_string()))
        .collect();
    // One legend entry per variant in the GFLOP/s chart and one in the
    // roofline: twice each.
    for v in &variants {
        assert_eq!(
            texts.iter().filter(|t| **t == v.name).count(),
            2,
            "{} in {texts:?}",
            v.name
        );
    }
    assert!(texts.iter().any(|t| t.starts_with("FMA peak")));
}

#[test]
fn reports_round_trip_and_old_files_still_load() {
    let dir = std::env::temp_dir().join(format!("gradlab-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut r = row("fast", 1.0, 1.1, 1.2);
    r.check = Some(Check::compare(&[1.0, 2.0], &[1.0, 2.5], 1e-3, "reference"));
    let report = Report {
        machine: serde_json::from_value(serde_json::json!({
            "cpu_model": "test", "simd_level": "avx2", "cores": 2, "threads": 1, "caches": [],
            "peak_one_core_gflops": 1.0, "peak_gflops": 1.0, "peak_triad_gbps": 1.0,
            "gradlab_version": "0", "commit": "abc"
        }))
        .unwrap(),
        rows: vec![r.clone()],
    };
    let new_file = dir.join("new.json");
    std::fs::write(&new_file, serde_json::to_string(&report).unwrap()).unwrap();
    assert_eq!(load_rows(&new_file).unwrap(), vec![r]);
    // A bare array of rows without spreads (an older file, PyTorch's script).
    let old_file = dir.join("old.json");
    std::fs::write(
        &old_file,
        r#"[{"kernel":"gemm f32","shape":"64x64x64","variant":"fast","threads":1,"median_s":2.0,"gflops":1.0,"peak_share":0.5,"baseline_ratio":null}]"#,
    )
    .unwrap();
    let old = load_rows(&old_file).unwrap();
    assert_eq!(old[0].interval(), (1.9, 2.1));
    assert_eq!(compare(&report.rows, &old)[0].verdict, Verdict::Faster);
    let bad = dir.join("bad.json");
    std::fs::write(&bad, "{\"rows\": 3}").unwrap();
    assert!(load_rows(&bad).unwrap_err().contains("neither"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A report written as `--json` writes it, compared with itself, passes
/// `--fail-slower`; the same report with one row planted 3x slower fails,
/// naming that row and no other.
#[test]
fn the_gate_passes_an_unchanged_report_and_catches_a_planted_slowdown() {
    let dir = std::env::temp_dir().join(format!("gradlab-gate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rows = gemm_rows(&gradlab::bench::gemm_variants(1), &[24, 32]);
    let report = Report {
        machine: gradlab::bench::Fingerprint::collect(&peak(), 1),
        rows: rows.clone(),
    };
    let old_path = dir.join("old.json");
    std::fs::write(&old_path, serde_json::to_string_pretty(&report).unwrap()).unwrap();

    let unchanged = gradlab::bench::compare_with_file(&rows, &old_path).unwrap();
    assert_eq!(unchanged.len(), rows.len());
    assert!(unchanged
        .iter()
        .all(|c| c.verdict == Verdict::Same && c.ratio == 1.0));
    gradlab::bench::fail_on_regressions(&unchanged, 5.0, &old_path).unwrap();

    let mut slowed = rows.clone();
    let victim = slowed
        .iter_mut()
        .find(|r| r.row.shape == "32x32x32" && r.row.variant.starts_with("fast"))
        .unwrap();
    for t in [
        &mut victim.row.median_s,
        victim.min_s.as_mut().unwrap(),
        victim.max_s.as_mut().unwrap(),
    ] {
        *t *= 3.0;
    }
    let victim_name = victim.row.variant.clone();
    let compared = gradlab::bench::compare_with_file(&slowed, &old_path).unwrap();
    let slower: Vec<_> = compared
        .iter()
        .filter(|c| c.verdict == Verdict::Slower)
        .collect();
    assert_eq!(slower.len(), 1);
    assert!((slower[0].ratio - 3.0).abs() < 1e-9);
    let err = gradlab::bench::fail_on_regressions(&compared, 5.0, &old_path)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("1 row(s)") && err.contains(&format!("32x32x32 {victim_name} (3.00x)")),
        "{err}"
    );
    // Within the allowance it passes: 3x is a 200% slow-down.
    gradlab::bench::fail_on_regressions(&compared, 250.0, &old_path).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
