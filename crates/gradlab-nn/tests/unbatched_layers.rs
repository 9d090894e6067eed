//! `Conv2d` and `MaxPool2d` take one unbatched image `[C, H, W]` as
//! PyTorch's layers do: the result is the batch-of-one result without its
//! batch dim, and the layer's parameters get the same gradients.

use gradlab_autograd::Var;
use gradlab_nn::layers::{Conv2d, MaxPool2d};
use gradlab_nn::Module;
use gradlab_tensor::{DType, Rng, Tensor};

fn close(a: &Tensor, b: &Tensor) {
    assert_eq!(a.shape(), b.shape());
    for (x, y) in a.to_vec_f64().unwrap().iter().zip(b.to_vec_f64().unwrap()) {
        assert!((x - y).abs() <= 1e-12 * (1.0 + y.abs()), "{x} vs {y}");
    }
}

#[test]
fn a_conv_and_pool_stack_on_one_image_is_the_batch_of_one() {
    let mut rng = Rng::new(3);
    let conv = Conv2d::new(3, 4, 3, 1, 1, true, DType::F64, &mut rng);
    let pool = MaxPool2d::new(2);
    let image = Tensor::randn([3, 6, 8], 0.0, 1.0, DType::F64, &mut rng);
    let run = |x: Tensor| {
        let x = Var::parameter(x);
        let y = pool
            .forward(&conv.forward(&x).unwrap().relu().unwrap())
            .unwrap();
        y.tanh().unwrap().sum_all().unwrap().backward().unwrap();
        let grads = (
            x.grad().unwrap(),
            conv.weight.grad().unwrap(),
            conv.bias.as_ref().unwrap().grad().unwrap(),
        );
        conv.weight.zero_grad();
        conv.bias.as_ref().unwrap().zero_grad();
        (y.data(), grads)
    };
    let (y, (gx, gw, gb)) = run(image.clone());
    let (yb, (gxb, gwb, gbb)) = run(image.unsqueeze(0).unwrap());
    assert_eq!(y.dims(), [4, 3, 4]);
    close(&y, &yb.squeeze(0).unwrap());
    close(&gx, &gxb.squeeze(0).unwrap());
    close(&gw, &gwb);
    close(&gb, &gbb);
}
