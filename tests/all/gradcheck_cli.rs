//! `gradlab gradcheck --model lenet --localize` as a user runs it: the
//! per-node table and exit status 0; with an op whose backward is wrong,
//! exit status 1 and the op named.

use std::process::Command;

fn gradlab(args: &[&str]) -> (String, Option<i32>) {
    let out = Command::new(env!("CARGO_BIN_EXE_gradlab"))
        .args(args)
        .output()
        .expect("the gradlab binary runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (text, out.status.code())
}

#[test]
fn lenet_localize_prints_the_node_table_and_exits_0() {
    let (text, code) = gradlab(&["gradcheck", "--model", "lenet", "--localize"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("node  op"), "{text}");
    assert!(text.contains("   1  Conv2dBackward"), "{text}");
    assert!(text.contains("  13  CrossEntropyBackward"), "{text}");
    assert!(
        text.contains("every node agrees (13 nodes checked)"),
        "{text}"
    );
}

#[test]
fn a_wrong_op_in_lenet_exits_1_naming_it() {
    let (text, code) = gradlab(&[
        "gradcheck",
        "--model",
        "lenet",
        "--localize",
        "--inject-wrong-op",
    ]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("first node that disagrees: node 3 MisscaledBackward"),
        "{text}"
    );
    let last = text.trim_end().lines().last().unwrap_or("");
    assert!(
        last.starts_with("FAILED:") && last.contains("MisscaledBackward"),
        "{last}"
    );
}

#[test]
fn a_missing_op_or_model_is_an_error() {
    let (text, code) = gradlab(&["gradcheck"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("--op") && text.contains("--model"), "{text}");
}
