//! The fixtures runner on the inputs that used to slip through: expected
//! NaN and infinities (which passed against anything), runs that check
//! nothing, a case whose sizes cannot be allocated, a closed output pipe,
//! and thousands of damaged manifests and safetensors files.

#[path = "../../crates/gradlab-data/tests/support/mutate.rs"]
mod mutate;

use gradlab::fixtures::{run, run_dir, FixturesArgs, Outcome, Summary};
use mutate::{apply, damage, fuzz, put};
use proptest::prelude::*;
use serde_json::json;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "gradlab-fixtures-robust-{name}-{}",
        std::process::id()
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// A safetensors file of f64 tensors.
fn safetensors_bytes(tensors: &[(&str, Vec<usize>, Vec<f64>)]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, shape, values) in tensors {
        let start = data.len();
        for v in values {
            data.extend_from_slice(&v.to_le_bytes());
        }
        header.insert(
            name.to_string(),
            json!({"dtype": "F64", "shape": shape, "data_offsets": [start, data.len()]}),
        );
    }
    let header = serde_json::to_vec(&header).unwrap();
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header);
    bytes.extend(data);
    bytes
}

/// A unary case on `x` with the expected output and input gradient.
fn unary(name: &str, op: &str, file: &str) -> serde_json::Value {
    json!({
        "name": name, "op": op, "dtype": "f64", "file": file,
        "inputs": ["x"], "output": "out", "cotangent": "grad_out",
        "grads": {"x": "grad.x"}, "rtol": 1e-7, "atol": 1e-9
    })
}

fn write_case(dir: &Path, file: &str, x: &[f64], out: &[f64], grad: &[f64]) {
    let n = x.len();
    put(
        &dir.join(file),
        &safetensors_bytes(&[
            ("x", vec![n], x.to_vec()),
            ("out", vec![n], out.to_vec()),
            ("grad_out", vec![n], vec![1.0; n]),
            ("grad.x", vec![n], grad.to_vec()),
        ]),
    );
}

fn write_manifest(dir: &Path, cases: Vec<serde_json::Value>) {
    put(
        &dir.join("manifest.json"),
        json!({"format": "fixtures/1", "cases": cases})
            .to_string()
            .as_bytes(),
    );
}

fn outcome<'a>(summary: &'a Summary, name: &str) -> &'a Outcome {
    &summary
        .results
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no result for {name}"))
        .outcome
}

fn args(dir: &Path, filter: Option<&str>) -> FixturesArgs {
    FixturesArgs {
        dir: dir.to_path_buf(),
        filter: filter.map(str::to_string),
        quiet: true,
        device: gradlab::tensor::Device::Cpu,
    }
}

#[test]
fn expected_nan_and_infinities_match_only_themselves() {
    let dir = temp_dir("nonfinite");
    let (nan, inf) = (f64::NAN, f64::INFINITY);
    // exp(0) = 1 against an expected NaN or inf: both used to pass.
    write_case(
        &dir,
        "want_nan.safetensors",
        &[0.0, 1.0],
        &[nan, 1f64.exp()],
        &[1.0, 1f64.exp()],
    );
    write_case(&dir, "want_inf.safetensors", &[0.0], &[inf], &[1.0]);
    // log(-1) is NaN, log(0) is -inf with gradient 1/0 = inf: these match.
    write_case(&dir, "nan_ok.safetensors", &[-1.0], &[nan], &[-1.0]);
    write_case(&dir, "inf_ok.safetensors", &[0.0], &[-inf], &[inf]);
    // -inf where +inf is expected.
    write_case(&dir, "sign.safetensors", &[0.0], &[inf], &[inf]);
    write_manifest(
        &dir,
        vec![
            unary("exp_vs_nan", "exp", "want_nan.safetensors"),
            unary("exp_vs_inf", "exp", "want_inf.safetensors"),
            unary("log_nan", "log", "nan_ok.safetensors"),
            unary("log_neg_inf", "log", "inf_ok.safetensors"),
            unary("log_wrong_sign", "log", "sign.safetensors"),
        ],
    );
    let summary = run_dir(&dir, None).unwrap();
    match outcome(&summary, "exp_vs_nan") {
        Outcome::Fail(why) => assert!(
            why.starts_with("output[0] = 1.0000000000e0, expected NaN"),
            "{why}"
        ),
        other => panic!("exp_vs_nan: {other:?}"),
    }
    match outcome(&summary, "exp_vs_inf") {
        Outcome::Fail(why) => assert!(
            why.starts_with("output[0] = 1.0000000000e0, expected inf"),
            "{why}"
        ),
        other => panic!("exp_vs_inf: {other:?}"),
    }
    assert_eq!(outcome(&summary, "log_nan"), &Outcome::Pass);
    assert_eq!(outcome(&summary, "log_neg_inf"), &Outcome::Pass);
    assert!(matches!(
        outcome(&summary, "log_wrong_sign"),
        Outcome::Fail(_)
    ));
    let failed = summary
        .results
        .iter()
        .find(|r| r.name == "exp_vs_nan")
        .unwrap();
    assert_eq!(failed.max_abs_error, f64::INFINITY);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_run_that_checks_nothing_is_an_error() {
    let dir = temp_dir("nothing");
    write_manifest(&dir, vec![]);
    let err = run(&args(&dir, None)).unwrap_err();
    assert_eq!(
        err,
        format!(
            "{}: the manifest lists no case: nothing to check",
            dir.join("manifest.json").display()
        )
    );
    write_case(&dir, "a.safetensors", &[0.0], &[1.0], &[1.0]);
    write_manifest(&dir, vec![unary("exp_a", "exp", "a.safetensors")]);
    let err = run(&args(&dir, Some("conv"))).unwrap_err();
    assert_eq!(
        err,
        format!(
            "--filter \"conv\" matches none of the 1 cases in {}: nothing to check",
            dir.join("manifest.json").display()
        )
    );
    assert!(run(&args(&dir, Some("exp"))).is_ok());
    // Only skipped cases: nothing was checked either.
    let mut skipped = unary("future", "fft", "a.safetensors");
    skipped["tier"] = json!("extended");
    write_manifest(&dir, vec![skipped]);
    let err = run(&args(&dir, None)).unwrap_err();
    assert_eq!(
        err,
        "every one of the 1 selected cases was skipped: nothing was checked"
    );
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_case_too_large_to_run_fails_alone() {
    let dir = temp_dir("huge");
    write_case(&dir, "a.safetensors", &[0.0], &[1.0], &[1.0]);
    let x: Vec<f64> = (0..9).map(f64::from).collect();
    put(
        &dir.join("conv.safetensors"),
        &safetensors_bytes(&[
            ("x", vec![1, 1, 3, 3], x),
            ("w", vec![1, 1, 2, 2], vec![1.0; 4]),
            ("out", vec![1, 1, 2, 2], vec![0.0; 4]),
        ]),
    );
    let conv = |name: &str, padding: u64| {
        json!({
            "name": name, "op": "conv2d", "dtype": "f64", "file": "conv.safetensors",
            "inputs": ["x", "w"], "attrs": {"padding": [padding, padding]},
            "output": "out", "rtol": 1e-7, "atol": 1e-9
        })
    };
    write_manifest(
        &dir,
        vec![
            conv("conv_padding_1e9", 1_000_000_000),
            conv("conv_padding_2e31", 1 << 31),
            unary("exp_after", "exp", "a.safetensors"),
        ],
    );
    let summary = run_dir(&dir, None).unwrap();
    match outcome(&summary, "conv_padding_1e9") {
        Outcome::Fail(why) => assert_eq!(
            why,
            "conv2d: the output would be [1, 1, 2000000002, 2000000002], more than the 1152921504606846975 elements a buffer may hold"
        ),
        other => panic!("{other:?}"),
    }
    match outcome(&summary, "conv_padding_2e31") {
        Outcome::Fail(why) => assert!(why.contains("[1, 1, 4294967298, 4294967298]"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(outcome(&summary, "exp_after"), &Outcome::Pass);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_closed_output_pipe_ends_the_run_quietly() {
    let dir = temp_dir("pipe");
    write_case(&dir, "a.safetensors", &[0.0], &[1.0], &[1.0]);
    write_manifest(
        &dir,
        (0..50)
            .map(|i| unary(&format!("exp_{i}"), "exp", "a.safetensors"))
            .collect(),
    );
    // `gradlab fixtures DIR | head -0`: the reader is gone before the first line.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_gradlab"))
        .arg("fixtures")
        .arg(&dir)
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.is_empty(), "nothing on stderr: {stderr}");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            out.status.signal(),
            Some(13),
            "ended by SIGPIPE: {:?}",
            out.status
        );
    }
    fs::remove_dir_all(dir).unwrap();
}

/// A valid directory: three cases over two files.
fn valid_fixture_files() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let manifest = json!({"format": "fixtures/1", "cases": [
        unary("exp_a", "exp", "a.safetensors"),
        {
            "name": "conv", "op": "conv2d", "dtype": "f64", "file": "conv.safetensors",
            "inputs": ["x", "w"], "attrs": {"padding": [1, 1], "stride": [2, 1]},
            "output": "out", "rtol": 1e-7, "atol": 1e-9
        },
        {
            "name": "reshape", "op": "reshape", "dtype": "f64", "file": "conv.safetensors",
            "inputs": ["x"], "attrs": {"shape": [9, 1]}, "output": "x9", "rtol": 1e-7, "atol": 1e-9
        }
    ]})
    .to_string()
    .into_bytes();
    let a = safetensors_bytes(&[
        ("x", vec![1], vec![0.0]),
        ("out", vec![1], vec![1.0]),
        ("grad_out", vec![1], vec![1.0]),
        ("grad.x", vec![1], vec![1.0]),
    ]);
    let x: Vec<f64> = (0..9).map(f64::from).collect();
    let conv = safetensors_bytes(&[
        ("x", vec![1, 1, 3, 3], x.clone()),
        ("w", vec![1, 1, 2, 2], vec![1.0; 4]),
        ("out", vec![1, 1, 2, 4], vec![0.0; 8]),
        ("x9", vec![9, 1], x),
    ]);
    (manifest, a, conv)
}

#[test]
fn damaged_manifests_and_tensor_files_fail_case_by_case() {
    let (manifest, a, conv) = valid_fixture_files();
    let strategy = (damage(), 0u8..3);
    fuzz("fixtures", 1500, strategy, |dir, ((kind, seed), which)| {
        let pick = |i: u8, bytes: &[u8]| {
            if i == which {
                apply(bytes, kind, seed)
            } else {
                bytes.to_vec()
            }
        };
        put(&dir.join("manifest.json"), &pick(0, &manifest));
        put(&dir.join("a.safetensors"), &pick(1, &a));
        put(&dir.join("conv.safetensors"), &pick(2, &conv));
        match run_dir(dir, None) {
            Ok(summary) => {
                for r in &summary.results {
                    if let Outcome::Fail(why) = &r.outcome {
                        prop_assert!(!why.contains("panicked"), "{}: {}", r.name, why);
                        prop_assert!(!why.is_empty());
                    }
                }
            }
            Err(e) => prop_assert!(e.contains("manifest.json"), "{}", e),
        }
        Ok(())
    });
}
