//! Both models train on Fashion-MNIST's 1x28x28 images (LeNet pads conv1 so
//! that its flattened features stay 16x5x5). Skipped when the data set is absent.

use clap::Parser;
use gradlab::data::fashion_mnist_dir;
use gradlab::train::{train, TrainArgs};

#[test]
fn lenet_and_convnet_train_on_fashion_mnist() {
    if fashion_mnist_dir(None).is_none() {
        eprintln!("skipping: Fashion-MNIST not found (install dataset-fashion-mnist or set GRADLAB_FASHION_MNIST)");
        return;
    }
    for (model, expected_shapes) in [
        (
            "lenet",
            vec![
                ("conv1.weight", vec![6, 1, 5, 5]),
                ("fc1.weight", vec![120, 400]),
            ],
        ),
        (
            "convnet",
            vec![
                ("conv1.weight", vec![64, 1, 3, 3]),
                ("fc.weight", vec![10, 256]),
            ],
        ),
    ] {
        let args = TrainArgs::try_parse_from([
            "train",
            "--quiet",
            "--no-save",
            "--dataset",
            "fashion-mnist",
            "--model",
            model,
            "--epochs",
            "2",
            "--batch-size",
            "16",
            "--limit-train",
            "64",
            "--limit-test",
            "50",
            "--optimizer",
            "adam",
            "--lr",
            "0.003",
            "--threads",
            "2",
        ])
        .unwrap();
        let report = train(&args).unwrap();
        for (name, shape) in expected_shapes {
            let (_, t) = report.state.iter().find(|(n, _)| n == name).unwrap();
            assert_eq!(t.dims(), shape.as_slice(), "{model} {name}");
        }
        assert_eq!(report.step_losses.len(), 8);
        assert!(report.step_losses.iter().all(|l| l.is_finite()));
        // The second pass over the same 64 images fits them better than the first.
        let (first, second) = (report.epochs[0].train_loss, report.epochs[1].train_loss);
        assert!(second < first, "{model}: epoch loss {first} -> {second}");
        assert_eq!(report.evaluation.as_ref().unwrap().total(), 50);
    }
}
