//! Runs that keep themselves: the run directory `gradlab train` writes
//! (configuration, metrics, checkpoints, pictures), `eval --run DIR` and
//! `train --resume DIR` reading nothing else, `gradlab runs` listing and
//! comparing runs, and the first and last lines of the output naming the
//! run. Most tests run on a small synthetic CIFAR-10 directory; the last
//! one repeats the README's main job on a slice of the real CIFAR-10 and is
//! skipped (with a printed reason) when it is absent.

use crate::support::{scratch as scratch_in, write_synthetic_cifar};
use clap::Parser;
use gradlab::runs::{comparison, summaries, table, RunSummary};
use gradlab::train::run_dir::{self, read_metrics};
use gradlab::train::{evaluate_run, train, EvalArgs, RunConfig, TrainArgs, TrainReport};
use std::path::{Path, PathBuf};
use std::process::Command;

fn scratch(name: &str) -> PathBuf {
    scratch_in("runs", name)
}

/// A CIFAR-10 directory in `dir`: 40 training records and 20 test records.
fn synthetic_cifar(dir: &Path) -> PathBuf {
    write_synthetic_cifar(&dir.join("cifar"))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn train_with(argv: &[&str]) -> TrainReport {
    let mut all = vec!["train", "--quiet"];
    all.extend_from_slice(argv);
    train(&TrainArgs::try_parse_from(all).unwrap()).unwrap()
}

fn eval_run(argv: &[&str]) -> gradlab::train::Evaluated {
    let mut all = vec!["eval"];
    all.extend_from_slice(argv);
    evaluate_run(&EvalArgs::try_parse_from(all).unwrap()).unwrap()
}

/// The SVG parsed as XML: its `<circle>` markers and `<text>` strings.
fn svg(path: &Path) -> (usize, Vec<String>) {
    let text = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("the SVG is well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let circles = doc
        .descendants()
        .filter(|n| n.has_tag_name("circle"))
        .count();
    let texts = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text().map(|t| t.trim().to_string()))
        .collect();
    (circles, texts)
}

fn same_bits(a: &[(String, gradlab::tensor::Tensor)], b: &[(String, gradlab::tensor::Tensor)]) {
    assert_eq!(a.len(), b.len());
    for ((na, ta), (nb, tb)) in a.iter().zip(b) {
        assert_eq!(na, nb);
        let (va, vb) = (ta.to_vec_f64().unwrap(), tb.to_vec_f64().unwrap());
        assert!(
            va.iter().zip(&vb).all(|(x, y)| x.to_bits() == y.to_bits()),
            "{na} differs"
        );
    }
}

#[test]
fn a_run_keeps_its_configuration_metrics_checkpoints_and_pictures() {
    let root = scratch("keeps");
    let data = synthetic_cifar(&root);
    let dir = root.join("run");
    let report = train_with(&[
        "--data",
        s(&data),
        "--run-dir",
        s(&dir),
        "--epochs",
        "2",
        "--batch-size",
        "10",
        "--lr",
        "0.01",
        "--seed",
        "3",
        "--threads",
        "2",
    ]);
    assert_eq!(report.run_dir.as_deref(), Some(dir.as_path()));
    for file in [
        "config.json",
        "metrics.jsonl",
        "curves.svg",
        "confusion.svg",
        "lenet-epoch1.safetensors",
        "lenet-epoch2.safetensors",
        "last.safetensors",
    ] {
        assert!(dir.join(file).is_file(), "{file}");
    }

    // What `--conv-algo auto` (the default) chose for LeNet's two layers at
    // this batch: both of conv1's passes (its input needs no gradient), all
    // three of conv2's, each pick one of the methods it timed.
    let picks: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("conv-picks.json")).unwrap())
            .unwrap();
    let mut seen: Vec<(u64, String)> = Vec::new();
    for p in picks.as_array().unwrap() {
        let lenet_cifar = [(3, 32), (6, 14)].iter().any(|&(c, side)| {
            p["in_channels"] == c && p["input"] == serde_json::json!([side, side])
        });
        if p["batch"] != 10 || p["threads"] != 2 || p["dtype"] != "f32" || !lenet_cifar {
            continue; // another test's run in this process
        }
        let ms = p["ms"].as_object().unwrap();
        assert!(
            ms.len() >= 2 && ms.values().all(|t| t.as_f64().unwrap() > 0.0),
            "{p}"
        );
        assert!(ms.contains_key(p["pick"].as_str().unwrap()), "{p}");
        seen.push((
            p["in_channels"].as_u64().unwrap(),
            p["pass"].as_str().unwrap().into(),
        ));
    }
    seen.sort();
    seen.dedup();
    let want = [
        (3, "backward_weight"),
        (3, "forward"),
        (6, "backward_data"),
        (6, "backward_weight"),
        (6, "forward"),
    ];
    assert_eq!(seen, want.map(|(c, p)| (c, p.to_string())));

    // The configuration: every option, resolved, and where it ran.
    let config = RunConfig::read(&dir.join("config.json")).unwrap();
    assert_eq!(config, report.config);
    assert_eq!(config.data, Some(std::fs::canonicalize(&data).unwrap()));
    assert_eq!((config.epochs, config.batch_size, config.lr), (2, 10, 0.01));
    assert_eq!((config.momentum, config.seed), (0.9, 3));
    assert_eq!((config.threads, config.threads_used), (Some(2), 2));
    assert_eq!(config.kernels, "fast");
    assert_eq!(config.gradlab_version, env!("CARGO_PKG_VERSION"));
    assert!(!config.gradlab_commit.is_empty());
    assert!(config.started.ends_with('Z'), "{}", config.started);
    assert!(
        config
            .command
            .contains("train --model lenet --dataset cifar10 --data "),
        "{}",
        config.command
    );

    // One metrics line per epoch, with the training loss along the steps.
    let epochs = read_metrics(&dir.join("metrics.jsonl")).unwrap();
    assert_eq!(epochs, report.epochs);
    assert_eq!(epochs.iter().map(|m| m.step).collect::<Vec<_>>(), [4, 8]);
    assert_eq!(
        epochs[1].loss_curve.iter().map(|p| p.0).collect::<Vec<_>>(),
        [5, 6, 7, 8]
    );
    let mean = epochs[1].loss_curve.iter().map(|p| p.1).sum::<f64>() / 4.0;
    assert!((mean - epochs[1].train_loss).abs() < 1e-12);

    // The curves: the epochs are points (4 series marked per epoch).
    let (circles, texts) = svg(&dir.join("curves.svg"));
    assert_eq!(circles, 4 * 2);
    for text in [
        "run: loss by step",
        "test accuracy by epoch",
        "epoch 1",
        "epoch 2",
    ] {
        assert!(texts.iter().any(|t| t == text), "{text} in {texts:?}");
    }
    let (_, texts) = svg(&dir.join("confusion.svg"));
    let accuracy = report.evaluation.as_ref().unwrap().accuracy();
    let title = format!("confusion after epoch 2: {:.2}% correct", 100.0 * accuracy);
    assert!(texts.contains(&title), "{title} in {texts:?}");

    // `eval --run` needs nothing else and reproduces the trainer's numbers.
    let evaluated = eval_run(&["--run", s(&dir)]);
    assert_eq!(Some(&evaluated.evaluation), report.evaluation.as_ref());
    assert_eq!(
        evaluated.describe(),
        format!(
            "lenet after epoch 2 (step 8) from {}",
            dir.join("last.safetensors").display()
        )
    );
    let first = eval_run(&["--run", s(&dir), "--epoch", "1"]);
    assert_eq!((first.epoch, first.step), (Some(1), Some(4)));
    assert_eq!(first.evaluation.accuracy(), epochs[0].test_accuracy);
    assert_eq!(first.evaluation.loss, epochs[0].test_loss);
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn resuming_a_run_directory_needs_nothing_else() {
    let root = scratch("resume");
    let data = synthetic_cifar(&root);
    let recipe = [
        "--data",
        s(&data),
        "--epochs",
        "3",
        "--batch-size",
        "8",
        "--lr",
        "0.02",
        "--momentum",
        "0.5",
        "--augment",
        "--seed",
        "7",
        "--schedule",
        "cosine",
        "--threads",
        "2",
    ];
    let (whole, halted) = (root.join("whole"), root.join("halted"));
    let mut argv = recipe.to_vec();
    argv.extend(["--run-dir", s(&whole)]);
    let straight = train_with(&argv);
    let mut argv = recipe.to_vec();
    argv.extend(["--run-dir", s(&halted), "--stop-after", "1"]);
    let first = train_with(&argv);

    // Nothing but the directory: the recipe comes from its config.json.
    let resumed = train_with(&["--resume", s(&halted)]);
    assert_eq!(resumed.run_dir.as_deref(), Some(halted.as_path()));
    assert_eq!(
        resumed.epochs.iter().map(|m| m.epoch).collect::<Vec<_>>(),
        [2, 3]
    );
    let (a, b) = (&straight.config, &resumed.config);
    assert_eq!(
        (a.lr, a.momentum, a.augment, a.seed, a.schedule, a.threads),
        (b.lr, b.momentum, b.augment, b.seed, b.schedule, b.threads)
    );
    assert_eq!(
        b.started, first.config.started,
        "a resumed run keeps its start time"
    );
    same_bits(&straight.state, &resumed.state);
    assert_eq!(
        straight.step_losses[straight.step_losses.len() - 10..],
        resumed.step_losses[..]
    );
    let epochs = read_metrics(&halted.join("metrics.jsonl")).unwrap();
    assert_eq!(
        epochs.iter().map(|m| m.epoch).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(epochs[1..], resumed.epochs[..]);
    assert_eq!(svg(&halted.join("curves.svg")).0, 4 * 3);

    // A run stopped before its first checkpoint has nothing to resume.
    let empty = root.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let err =
        train(&TrainArgs::try_parse_from(["train", "--resume", s(&empty)]).unwrap()).unwrap_err();
    assert!(err.contains("the run has no checkpoint yet"), "{err}");
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn runs_are_listed_and_compared() {
    let root = scratch("list");
    let data = synthetic_cifar(&root);
    let runs = root.join("runs");
    for (name, lr, epochs) in [("slow", "0.001", "1"), ("fast", "0.05", "2")] {
        let dir = runs.join(name);
        train_with(&[
            "--data",
            s(&data),
            "--run-dir",
            s(&dir),
            "--lr",
            lr,
            "--epochs",
            epochs,
            "--batch-size",
            "10",
        ]);
    }
    // Not a run: no config.json.
    std::fs::create_dir_all(runs.join("notes")).unwrap();
    let found = summaries(&runs).unwrap();
    let names: Vec<&str> = found.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names.len(), 2);
    assert!(
        names.contains(&"slow") && names.contains(&"fast"),
        "{names:?}"
    );
    let text = table(&found);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("run "), "{text}");
    let fast = found.iter().find(|r| r.name == "fast").unwrap();
    let (best, epoch) = fast.best_accuracy().unwrap();
    let row = lines.iter().find(|l| l.starts_with("fast")).unwrap();
    assert!(row.contains("sgd lr 0.05 m 0.9 batch 10"), "{row}");
    assert!(row.contains(" 2/2 "), "{row}");
    assert!(
        row.contains(&format!("{:.2}% (ep {epoch})", 100.0 * best)),
        "{row}"
    );
    // Every column starts where its header starts.
    let column = |line: &str, i: usize| {
        let mut starts = vec![0];
        let bytes = line.as_bytes();
        for j in 2..bytes.len() {
            if bytes[j - 2] == b' ' && bytes[j - 1] == b' ' && bytes[j] != b' ' {
                starts.push(j);
            }
        }
        starts.get(i).copied()
    };
    assert_eq!(column(lines[0], 1), column(lines[1], 1), "{text}");
    assert_eq!(column(lines[0], 1), column(lines[2], 1), "{text}");

    let picture = root.join("compare.svg");
    let chosen = [
        RunSummary::read(&runs.join("slow")).unwrap(),
        RunSummary::read(&runs.join("fast")).unwrap(),
    ];
    comparison(&chosen).write(&picture).unwrap();
    let (circles, texts) = svg(&picture);
    // Accuracy and test loss by epoch: one point per epoch of each run.
    assert_eq!(circles, 2 * (1 + 2));
    for name in ["slow", "fast"] {
        assert_eq!(texts.iter().filter(|t| *t == name).count(), 3, "{texts:?}");
    }
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn the_command_line_says_where_the_run_is_first_and_last() {
    let root = scratch("cli");
    let data = synthetic_cifar(&root);
    let runs = root.join("runs");
    let gradlab = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_gradlab"))
            .args(args)
            .current_dir(&root)
            .output()
            .unwrap();
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    // With no directory named, the run goes under ./runs/.
    let out = gradlab(&[
        "train",
        "--data",
        s(&data),
        "--epochs",
        "1",
        "--batch-size",
        "10",
        "--quiet",
    ]);
    let created: Vec<PathBuf> = std::fs::read_dir(&runs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(created.len(), 1);
    let name = created[0]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        name.starts_with("lenet-20") && name.len() == "lenet-20261130-175400".len(),
        "{name}"
    );
    let dir = Path::new("runs").join(&name);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        format!("run directory: {}", dir.display()),
        "{out}"
    );
    let last = lines.last().unwrap();
    assert!(
        last.starts_with(&format!("run kept in {}: config.json, ", dir.display())),
        "{out}"
    );
    assert!(
        lines[lines.len() - 2].starts_with("final test accuracy ")
            && lines[lines.len() - 2].contains("% after 1 epoch; "),
        "{out}"
    );

    // eval --run says what it loaded.
    let out = gradlab(&["eval", "--run", s(&dir)]);
    assert_eq!(
        out.lines().next().unwrap(),
        format!(
            "evaluating lenet after epoch 1 (step 4) from {} on 20 cifar10 test images",
            dir.join("last.safetensors").display()
        )
    );
    // `--run runs` picks the run started last.
    let newest = gradlab(&["eval", "--run", "runs"]);
    assert_eq!(newest, out);
    // The table lists it; --plot compares it with itself.
    let out = gradlab(&["runs"]);
    assert!(out.lines().nth(1).unwrap().starts_with(&name), "{out}");
    let out = gradlab(&["runs", "--plot", &name, "--out", "both.svg"]);
    assert!(
        out.ends_with("comparison of 1 run written to both.svg\n"),
        "{out}"
    );
    assert_eq!(svg(&root.join("both.svg")).0, 2);
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn older_options_map_onto_the_run_directory() {
    let root = scratch("legacy");
    let data = synthetic_cifar(&root);
    let (ckdir, metrics) = (root.join("ck"), root.join("metrics.jsonl"));
    let common = [
        "--data",
        s(&data),
        "--batch-size",
        "10",
        "--epochs",
        "2",
        "--checkpoint-dir",
        s(&ckdir),
        "--metrics",
        s(&metrics),
    ];
    let mut argv = common.to_vec();
    argv.extend(["--stop-after", "1"]);
    train_with(&argv);
    // --checkpoint-dir is the run directory; --metrics gets the same lines.
    assert!(ckdir.join("config.json").is_file() && ckdir.join("curves.svg").is_file());
    assert_eq!(
        std::fs::read_to_string(&metrics).unwrap(),
        std::fs::read_to_string(ckdir.join("metrics.jsonl")).unwrap()
    );
    // --resume FILE continues in the file's directory.
    let resumed = train_with(&["--resume", s(&ckdir.join("last.safetensors"))]);
    assert_eq!(resumed.run_dir.as_deref(), Some(ckdir.as_path()));
    assert_eq!(resumed.epochs.len(), 1);
    assert!(ckdir.join("lenet-epoch2.safetensors").is_file());
    assert_eq!(read_metrics(&ckdir.join("metrics.jsonl")).unwrap().len(), 2);
    // Without --metrics this time, the extra file did not grow.
    assert_eq!(read_metrics(&metrics).unwrap().len(), 1);
    // --no-save keeps nothing.
    let unsaved = train_with(&[
        "--data",
        s(&data),
        "--batch-size",
        "10",
        "--epochs",
        "1",
        "--no-save",
    ]);
    assert_eq!(unsaved.run_dir, None);
    assert_eq!(
        run_dir::output(&TrainArgs::try_parse_from(["train"]).unwrap(), None),
        run_dir::Output::NewUnder(PathBuf::from("runs"))
    );
    std::fs::remove_dir_all(root).unwrap();
}

/// The README's main job on a slice of CIFAR-10: a run directory with
/// checkpoints, metrics, configuration and curves; `eval --run` gives the
/// printed accuracy; a second run and `gradlab runs` compare them.
#[test]
fn the_main_job_leaves_a_run_that_eval_and_runs_read() {
    let Some(data) =
        gradlab::data::cifar10_dir(None).filter(|d| d.join("data_batch_1.bin").is_file())
    else {
        eprintln!("skipping: CIFAR-10 not found (run data/get-cifar10.sh or set GRADLAB_DATA)");
        return;
    };
    let root = scratch("main-job");
    let runs = root.join("runs");
    let main_job = [
        "--model",
        "lenet",
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--lr",
        "0.001",
        "--momentum",
        "0.9",
        "--limit-train",
        "400",
        "--limit-test",
        "200",
        "--data",
        s(&data),
    ];
    let mut reports = Vec::new();
    for (name, seed) in [("first", "0"), ("second", "1")] {
        let mut argv = main_job.to_vec();
        let dir = runs.join(name);
        argv.extend(["--run-dir", s(&dir), "--seed", seed]);
        let report = train_with(&argv);
        reports.push((dir.clone(), report));
    }
    for (dir, report) in &reports {
        for file in [
            "config.json",
            "metrics.jsonl",
            "last.safetensors",
            "lenet-epoch2.safetensors",
        ] {
            assert!(dir.join(file).is_file(), "{file}");
        }
        assert_eq!(svg(&dir.join("curves.svg")).0, 4 * 2);
        let evaluated = eval_run(&["--run", s(dir)]);
        assert_eq!(Some(&evaluated.evaluation), report.evaluation.as_ref());
        assert_eq!(
            evaluated.evaluation.accuracy(),
            report.epochs[1].test_accuracy
        );
    }
    let found = summaries(&runs).unwrap();
    assert_eq!(found.len(), 2);
    let text = table(&found);
    for (dir, report) in &reports {
        let name = dir.file_name().unwrap().to_str().unwrap();
        let row = text.lines().find(|l| l.starts_with(name)).unwrap();
        let best = report
            .epochs
            .iter()
            .map(|m| m.test_accuracy)
            .fold(0.0, f64::max);
        assert!(row.contains(&format!("{:.2}%", 100.0 * best)), "{row}");
    }
    std::fs::remove_dir_all(root).unwrap();
}
