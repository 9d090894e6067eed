//! scripts/gpu-check.sh in its dry-run mode (the GPU steps faked, the
//! bundle's test executables run): the summary, the files under $OUT, the
//! JSON of results, the exit status, and the batch and GPU requirement that
//! reach every step. Skips (printing why) without bash or python3.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/gpu-check.sh")
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A bundle whose tests/ holds shell scripts that print libtest's closing
/// line (and the environment they were given).
fn fake_bundle(dir: &Path, failing: bool) {
    let tests = dir.join("tests");
    std::fs::create_dir_all(&tests).unwrap();
    let write = |name: &str, body: &str| {
        let p = tests.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    write(
        "gpu_kernels",
        "echo \"args: $*\"\necho \"require=$GRADLAB_REQUIRE_GPU batch=$GRADLAB_BENCH_BATCH\"\n\
         echo 'test result: ok. 12 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.00s'",
    );
    if failing {
        write(
            "cuda_ops",
            "echo 'test result: FAILED. 7 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out'\nexit 101",
        );
    }
}

fn run(bundle: &Path, out: &Path, fake_fail: Option<&str>) -> Output {
    let mut cmd = Command::new("bash");
    cmd.arg(script())
        .arg("--dry-run")
        .arg(bundle)
        .env("OUT", out)
        .env("GRADLAB_BENCH_BATCH", "64")
        .env_remove("GRADLAB_GPU_CHECK_FAKE_FAIL");
    if let Some(step) = fake_fail {
        cmd.env("GRADLAB_GPU_CHECK_FAKE_FAIL", step);
    }
    cmd.output().expect("run bash")
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gradlab-gpu-check-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn dry_run_writes_the_summary_and_results_and_fails_on_any_failure() {
    if !have("bash") || !have("python3") {
        eprintln!("skipping: needs bash and python3");
        return;
    }
    let dir = temp_dir("dry");
    let bundle = dir.join("bundle");
    fake_bundle(&bundle, false);

    // Everything passes.
    let out = dir.join("out");
    let o = run(&bundle, &out, None);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "exit {:?}\n{stdout}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout.contains("GPU check PASSED"), "{stdout}");
    assert!(stdout.contains("budget 480s"), "{stdout}");
    for step in ["machine", "tests", "fixtures", "train", "bench", "compare"] {
        assert!(
            stdout.contains(&format!("{step} passed")),
            "{step}: {stdout}"
        );
    }
    assert!(
        stdout.contains("gpu_kernels") && stdout.contains("12 passed"),
        "{stdout}"
    );
    assert!(
        stdout.contains("of cuBLAS f32") && stdout.contains("of cuDNN f32"),
        "{stdout}"
    );
    assert!(
        stdout.contains("64x64x32x32 k2s2"),
        "the batch reaches the benchmark: {stdout}"
    );
    let summary_lines = stdout
        .lines()
        .skip_while(|l| !l.starts_with("===="))
        .count();
    assert!(
        summary_lines <= 40,
        "the summary fits one screen ({summary_lines} lines)"
    );

    let mut files: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "bench.tsv",
            "bench.txt",
            "compare.txt",
            "fixtures.txt",
            "machine.txt",
            "results.json",
            "tests.txt",
            "train.txt"
        ]
    );
    let tests_log = std::fs::read_to_string(out.join("tests.txt")).unwrap();
    assert!(tests_log.contains("args: --include-ignored"), "{tests_log}");
    assert!(tests_log.contains("require=1 batch=64"), "{tests_log}");
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["ok"], true);
    assert_eq!(results["dry_run"], true);
    assert_eq!(results["batch"], 64);
    assert_eq!(results["steps"].as_array().unwrap().len(), 6);
    assert_eq!(results["test_groups"][0]["passed"], 12);
    let kernels = results["kernels"].as_array().unwrap();
    assert!(kernels
        .iter()
        .any(|k| k["variant"] == "warp_tiled" && k["share"].as_f64() == Some(0.8)));

    // A failing test binary fails the check.
    fake_bundle(&bundle, true);
    let o = run(&bundle, &dir.join("out-failing-test"), None);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("GPU check FAILED") && stdout.contains("tests failed"),
        "{stdout}"
    );
    assert!(stdout.contains("1 failed"), "{stdout}");

    // So does a failing comparison with PyTorch.
    fake_bundle(&bundle, false);
    std::fs::remove_file(bundle.join("tests/cuda_ops")).unwrap();
    let o = run(&bundle, &dir.join("out-failing-compare"), Some("compare"));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("compare failed"), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}
