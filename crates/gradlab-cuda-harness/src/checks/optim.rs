//! SGD with PyTorch's semantics: plain, momentum, dampening, weight decay,
//! Nesterov, over three steps.

use super::{assert_close, download, random, upload, widen};
use gradlab_cpu::Rng;
use gradlab_cuda::{sgd_step, DeviceBuffer, Gpu, SgdConfig};
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
            for i in 0..n {
                let mut d = g[i] + cfg.weight_decay * p_host[i];
                if cfg.momentum != 0.0 {
                    buf_host[i] = if step == 0 {
                        d
                    } else {
                        cfg.momentum * buf_host[i] + (1.0 - cfg.dampening) * d
                    };
                    d = if cfg.nesterov {
                        d + cfg.momentum * buf_host[i]
                    } else {
                        buf_host[i]
                    };
                }
                p_host[i] -= cfg.lr * d;
            }
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
