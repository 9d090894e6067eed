//! Without a CUDA driver, device requests are clear errors, never panics, and
//! CPU tensors work as before. (On a machine with a driver the driver-specific
//! assertions are skipped; `tests/cuda_ops.rs` covers that case.)

use gradlab_tensor::{DType, Device, Tensor, TensorError};

fn driver_present() -> bool {
    gradlab_cuda::driver_available()
}

#[test]
fn moving_to_cuda_without_a_driver_is_a_device_error() {
    if driver_present() {
        eprintln!("skipping: a CUDA driver is present on this machine");
        return;
    }
    let t = Tensor::ones([2, 3], DType::F32);
    let err = t.to_device(Device::Cuda(0)).unwrap_err();
    assert!(
        matches!(
            err,
            TensorError::Device {
                device: Device::Cuda(0),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("cuda:0: no CUDA driver found (libcuda.so could not be loaded)"),
        "{err}"
    );
    let err = Tensor::zeros_on([4], DType::F32, Device::Cuda(0)).unwrap_err();
    assert!(
        err.to_string().starts_with("cuda:0: no CUDA driver found"),
        "{err}"
    );
    // A second attempt fails the same way.
    assert!(t.to_device(Device::Cuda(0)).is_err());
}

#[test]
fn dtypes_and_devices_cuda_cannot_hold_are_named() {
    let f64s = Tensor::ones([2], DType::F64);
    assert_eq!(
        f64s.to_device(Device::Cuda(0)).unwrap_err().to_string(),
        "to_device: dtype f64 is not supported here (f32 or i64 on CUDA (convert with .to_dtype(DType::F32)))"
    );
    // Indices travel as i64, as on the CPU: a large one (or -100) is no
    // reason to refuse; only the missing driver is.
    let big = Tensor::from_vec(vec![-100i64, 1 << 40], [2]).unwrap();
    if !driver_present() {
        let m = big.to_device(Device::Cuda(0)).unwrap_err().to_string();
        assert!(m.starts_with("cuda:0: no CUDA driver found"), "{m}");
    }
    let m = Tensor::ones([2], DType::F32)
        .to_device(Device::Cuda(3))
        .unwrap_err()
        .to_string();
    assert!(
        m.contains("cuda:3 is not available") || m.contains("no CUDA driver"),
        "{m}"
    );
}

#[test]
fn cpu_tensors_stay_on_the_cpu() {
    let t = Tensor::full_on([2, 2], 3.0, DType::F64, Device::Cpu).unwrap();
    assert_eq!(t.device(), Device::Cpu);
    assert!(!t.is_cuda());
    assert_eq!(t.to_vec::<f64>().unwrap(), vec![3.0; 4]);
    assert_eq!(t.to_cpu().unwrap().to_vec::<f64>().unwrap(), vec![3.0; 4]);
    // zeros_like on the CPU is a dense tensor, as before.
    let z = t.zeros_like().unwrap();
    assert!(z.is_contiguous());
    assert_eq!(z.to_vec::<f64>().unwrap(), vec![0.0; 4]);
    // The optimizer step goes through the contract on any device.
    let mut p = Tensor::ones([2], DType::F32);
    let g = Tensor::ones([2], DType::F32);
    let cfg = gradlab_tensor::optim::SgdConfig::new(0.1);
    p.sgd_step_(&g, None, &cfg).unwrap();
    assert_eq!(p.to_vec::<f32>().unwrap(), vec![0.9, 0.9]);
}

#[test]
fn device_names_parse_and_print() {
    assert_eq!("cuda".parse::<Device>().unwrap(), Device::Cuda(0));
    assert_eq!("cuda:1".parse::<Device>().unwrap().to_string(), "cuda:1");
    assert!(Device::Cuda(0).is_cuda() && !Device::Cpu.is_cuda());
    let e = TensorError::DeviceMismatch {
        op: "add",
        lhs: Device::Cuda(0),
        rhs: Device::Cpu,
    };
    assert_eq!(
        e.to_string(),
        "add: tensors are on different devices: cuda:0 and cpu (move one with .to_device())"
    );
}
