//! The fixtures runner on bad directories and files: clear errors, no panics.

use gradlab::fixtures::{run_dir, Outcome};
use std::fs;
use std::path::PathBuf;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gradlab-fixtures-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// A minimal valid safetensors file with the given f64 tensors.
fn write_safetensors(path: &PathBuf, tensors: &[(&str, Vec<usize>, Vec<f64>)]) {
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, shape, values) in tensors {
        let start = data.len();
        for v in values {
            data.extend_from_slice(&v.to_le_bytes());
        }
        header.insert(
            name.to_string(),
            serde_json::json!({"dtype": "F64", "shape": shape, "data_offsets": [start, data.len()]}),
        );
    }
    let header = serde_json::to_vec(&header).unwrap();
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header);
    bytes.extend(data);
    fs::write(path, bytes).unwrap();
}

fn manifest(cases: serde_json::Value) -> String {
    serde_json::json!({"format": "fixtures/1", "cases": cases}).to_string()
}

fn case(
    name: &str,
    op: &str,
    tier: &str,
    file: &str,
    inputs: &[&str],
    attrs: serde_json::Value,
) -> serde_json::Value {
    serde_json::json!({
        "name": name, "op": op, "tier": tier, "dtype": "f64", "file": file,
        "inputs": inputs, "attrs": attrs, "output": "out", "cotangent": "grad_out",
        "grads": {"x": "grad.x"}, "rtol": 1e-7, "atol": 1e-9
    })
}

#[test]
fn missing_manifest_is_a_clear_error() {
    let dir = temp_dir("missing");
    let err = run_dir(&dir, None).unwrap_err();
    assert!(
        err.contains("cannot read") && err.contains("manifest.json"),
        "{err}"
    );
}

#[test]
fn invalid_manifest_is_a_clear_error() {
    let dir = temp_dir("invalid");
    fs::write(dir.join("manifest.json"), "{\"format\": \"fixtures/1\"").unwrap();
    let err = run_dir(&dir, None).unwrap_err();
    assert!(err.contains("not a valid fixtures manifest"), "{err}");
}

#[test]
fn malformed_safetensors_fails_that_case_only() {
    let dir = temp_dir("malformed");
    fs::write(
        dir.join("broken.safetensors"),
        b"\x10\x00\x00\x00\x00\x00\x00\x00{not json",
    )
    .unwrap();
    write_safetensors(
        &dir.join("good.safetensors"),
        &[
            ("x", vec![3], vec![1.0, -2.0, 3.0]),
            ("out", vec![3], vec![-1.0, 2.0, -3.0]),
            ("grad_out", vec![3], vec![1.0, 1.0, 1.0]),
            ("grad.x", vec![3], vec![-1.0, -1.0, -1.0]),
        ],
    );
    let cases = serde_json::json!([
        case(
            "broken",
            "neg",
            "core",
            "broken.safetensors",
            &["x"],
            serde_json::json!({})
        ),
        case(
            "good",
            "neg",
            "core",
            "good.safetensors",
            &["x"],
            serde_json::json!({})
        ),
    ]);
    fs::write(dir.join("manifest.json"), manifest(cases)).unwrap();
    let summary = run_dir(&dir, None).unwrap();
    match &summary.results[0].outcome {
        Outcome::Fail(why) => assert!(why.contains("not a valid safetensors file"), "{why}"),
        other => panic!("expected a failure, got {other:?}"),
    }
    assert_eq!(summary.results[1].outcome, Outcome::Pass);
}

#[test]
fn wrong_values_fail_and_unknown_ops_follow_their_tier() {
    let dir = temp_dir("wrong");
    write_safetensors(
        &dir.join("c.safetensors"),
        &[
            ("x", vec![2, 2], vec![1.0, 2.0, 3.0, 4.0]),
            // exp(x) deliberately wrong in one element.
            (
                "out",
                vec![2, 2],
                vec![1f64.exp(), 2f64.exp(), 3f64.exp(), 55.0],
            ),
            ("grad_out", vec![2, 2], vec![1.0; 4]),
            (
                "grad.x",
                vec![2, 2],
                vec![1f64.exp(), 2f64.exp(), 3f64.exp(), 4f64.exp()],
            ),
        ],
    );
    let cases = serde_json::json!([
        case(
            "exp_wrong",
            "exp",
            "core",
            "c.safetensors",
            &["x"],
            serde_json::json!({})
        ),
        case(
            "mystery_core",
            "frobnicate",
            "core",
            "c.safetensors",
            &["x"],
            serde_json::json!({})
        ),
        case(
            "mystery_ext",
            "frobnicate",
            "extended",
            "c.safetensors",
            &["x"],
            serde_json::json!({})
        ),
        case(
            "bad_shape",
            "reshape",
            "core",
            "c.safetensors",
            &["x"],
            serde_json::json!({"shape": [3, 2]})
        ),
    ]);
    fs::write(dir.join("manifest.json"), manifest(cases)).unwrap();
    let summary = run_dir(&dir, None).unwrap();
    let outcome = |i: usize| summary.results[i].outcome.clone();
    match outcome(0) {
        Outcome::Fail(why) => assert!(
            why.contains("output[3]") && why.contains("expected 5.5"),
            "{why}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(matches!(outcome(1), Outcome::Fail(w) if w.contains("not supported")));
    assert!(matches!(outcome(2), Outcome::Skip(_)));
    match outcome(3) {
        Outcome::Fail(why) => assert!(
            why.contains("reshape: cannot reshape a tensor of shape [2, 2]"),
            "{why}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        (summary.passed(), summary.failed(), summary.skipped()),
        (0, 3, 1)
    );
}
