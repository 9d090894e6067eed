//! SGD with PyTorch's semantics (plain, momentum, dampening, weight decay,
//! Nesterov) and Adam/AdamW, over three steps, against the CPU's update
//! rules of `gradlab_cpu::optim` run in f32.

use super::{assert_close, download, random, upload, widen};
use gradlab_cpu::optim::{adam_update, sgd_update};
use gradlab_cpu::Rng;
use gradlab_cuda::{adam_step, sgd_step, AdamConfig, DeviceBuffer, Gpu, SgdConfig};
use std::sync::Arc;

pub fn check_sgd(gpu: &Arc<Gpu>) {
    let mut rng = Rng::new(10);
    let configs = [
        SgdConfig::new(0.1),
        SgdConfig {
            momentum: 0.9,
            ..SgdConfig::new(0.05)
        },
        SgdConfig {
            momentum: 0.9,
            dampening: 0.3,
            weight_decay: 1e-2,
            ..SgdConfig::new(0.05)
        },
        SgdConfig {
            momentum: 0.8,
            nesterov: true,
            weight_decay: 5e-4,
            ..SgdConfig::new(0.1)
        },
    ];
    for cfg in configs {
        let n = 1001;
        let mut p_host = random(&mut rng, n);
        let mut buf_host = vec![0.0f32; n];
        let mut p = upload(gpu, &p_host);
        let mut buf = DeviceBuffer::zeros(gpu, n).unwrap();
        for step in 0..3 {
            let g = random(&mut rng, n);
            let host_buf = (cfg.momentum != 0.0).then_some((buf_host.as_mut_slice(), step == 0));
            sgd_update(&mut p_host, &g, host_buf, &cfg);
            let momentum = (cfg.momentum != 0.0).then_some(&mut buf);
            sgd_step(&cfg, &mut p, &upload(gpu, &g), momentum, step == 0).unwrap();
        }
        assert_close(
            &format!("sgd {cfg:?}"),
            &download(&p),
            &widen(&p_host),
            1e-6,
        );
    }
    let mut p = DeviceBuffer::zeros(gpu, 4).unwrap();
    let g = DeviceBuffer::zeros(gpu, 4).unwrap();
    let cfg = SgdConfig {
        momentum: 0.9,
        ..SgdConfig::new(0.1)
    };
    assert!(sgd_step(&cfg, &mut p, &g, None, true).is_err());
}

pub fn check_adam(gpu: &Arc<Gpu>) {
    let mut rng = Rng::new(11);
    for cfg in [
        AdamConfig::adam(0.01),
        AdamConfig::adam(0.003).with_weight_decay(1e-2),
        AdamConfig::adamw(0.01),
    ] {
        let n = 1001;
        let mut p_host = random(&mut rng, n);
        let (mut m_host, mut v_host) = (vec![0.0f32; n], vec![0.0f32; n]);
        let mut p = upload(gpu, &p_host);
        let mut m = DeviceBuffer::zeros(gpu, n).unwrap();
        let mut v = DeviceBuffer::zeros(gpu, n).unwrap();
        for step in 1..=3 {
            let g = random(&mut rng, n);
            adam_update(&mut p_host, &g, &mut m_host, &mut v_host, step, &cfg);
            adam_step(&cfg, &mut p, &upload(gpu, &g), &mut m, &mut v, step).unwrap();
        }
        assert_close(
            &format!("adam {cfg:?}"),
            &download(&p),
            &widen(&p_host),
            2e-6,
        );
        assert_close(
            &format!("adam m {cfg:?}"),
            &download(&m),
            &widen(&m_host),
            1e-6,
        );
        assert_close(
            &format!("adam v {cfg:?}"),
            &download(&v),
            &widen(&v_host),
            1e-6,
        );
    }
    let mut p = DeviceBuffer::zeros(gpu, 4).unwrap();
    let g = DeviceBuffer::zeros(gpu, 4).unwrap();
    let (mut m, mut v) = (
        DeviceBuffer::zeros(gpu, 4).unwrap(),
        DeviceBuffer::zeros(gpu, 4).unwrap(),
    );
    assert!(adam_step(&AdamConfig::adam(0.1), &mut p, &g, &mut m, &mut v, 0).is_err());
}
