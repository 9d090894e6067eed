//! gradlab-cpu: CPU kernels on raw slices.
//!
//! Kernels here know nothing of tensors: they take slices, sizes and strides,
//! so that each can be tested against its plain reference twin and benchmarked
//! alone. Every fast kernel has a twin in [`reference`](mod@reference) that is simple and
//! obviously right. The functions at the crate root are the ones the engine
//! calls; they pick the best implementation for the problem and the CPU
//! (see [`simd`] for how the instruction set is chosen and forced).

pub mod alloc;
pub mod cache;
pub mod conv;
pub mod cost;
pub mod float;
pub mod gemm;
pub mod loss;
pub mod moments;
pub mod norm;
pub mod norm_relu;
pub mod op;
pub mod optim;
pub mod parallel;
pub mod peak;
pub mod pool;
pub mod reference;
pub mod rng;
mod scratch;
pub mod shapes;
pub mod simd;

pub use alloc::{try_full, try_reserve, try_vec, try_zeros, AllocError, MAX_ELEMENTS};
pub use cache::{cache_sizes, CacheSizes};
pub use cost::Cost;
pub use float::Float;
pub use op::{BinaryOp, UnaryOp};
pub use rng::Rng;
pub use shapes::{
    checked_conv_out_len, conv_out_len, pool_out_len, Conv2dShape, Pool2dShape, SizeOverflow,
};
pub use simd::{
    detected_simd_level, set_simd_level, simd_level, with_simd_level, SimdKind, SimdLevel,
    SimdLevelError, UnknownSimdKind, UnsupportedSimdLevel,
};

pub use conv::{
    conv2d_backward_data, conv2d_backward_weight, conv2d_forward, conv_algo, set_conv_algo,
    with_conv_algo, ConvAlgo, UnknownConvAlgo, WinogradTile,
};
pub use gemm::{gemm, gemm_bias_act, BiasAxis};
pub use loss::{
    cross_entropy_backward, cross_entropy_forward, CrossEntropyRows, LabelOutOfRange,
    DEFAULT_IGNORE_INDEX,
};
pub use norm::{
    batch_norm2d_backward, batch_norm2d_inference, batch_norm2d_train_forward, BatchNormShape,
};
pub use norm_relu::{batch_norm2d_relu_backward, batch_norm2d_relu_train_forward};
pub use pool::{
    max_pool2d_backward, max_pool2d_backward_add, max_pool2d_forward, try_max_pool2d_backward,
    ArgmaxOutsidePlane, PoolIndex,
};
