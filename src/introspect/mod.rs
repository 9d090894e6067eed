//! Seeing inside backprop from the command line: `gradlab graph` draws the
//! graph of one training step of the trainer's models, `gradlab gradcheck`
//! checks one op's derivatives against finite differences (running the op
//! through the fixture runner's dispatch).
//!
//! `gradlab gradcheck --model` checks a whole training step of the
//! trainer's models the same way, parameter by parameter along random
//! directions and node by node (`--localize`), and `--drift` compares f32
//! with f64 per node.
//!
//! ```text
//! gradlab graph --model lenet --out lenet.dot --batch 4
//! gradlab graph --model convnet
//! gradlab gradcheck --op max_pool2d --shape 2,3,9,9 --kernel 3 --stride 2 --padding 1
//! gradlab gradcheck --op conv2d --shape 1,4,7,7 --groups 2 --dilation 2 --second-order
//! gradlab gradcheck --op softmax --localize
//! gradlab gradcheck --model lenet --localize
//! gradlab gradcheck --model convnet --drift
//! ```

mod cases;
mod gradcheck;
mod graph;
mod misscaled;
pub mod model_check;
mod step;

pub use cases::{GradcheckCase, GRADCHECK_OPS};
pub use gradcheck::{
    check_case, execute as execute_gradcheck, parse_dims, parse_pair, render, run as run_gradcheck,
    GradcheckArgs,
};
pub use graph::{run as run_graph, write_graph, GraphArgs, GraphOutput};
pub use step::{name_parameters, named_model, random_batch, step_graph, step_loss};

#[cfg(test)]
mod tests;
