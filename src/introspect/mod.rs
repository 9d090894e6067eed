//! Seeing inside backprop from the command line: `gradlab graph` draws a
//! training step's graph, `gradlab gradcheck` checks one op's derivatives
//! against finite differences.
//!
//! ```text
//! gradlab graph --model lenet --out lenet.dot --batch 4
//! gradlab gradcheck --op max_pool2d --shape 2,3,9,9 --kernel 3 --stride 2 --padding 1
//! gradlab gradcheck --op conv2d --shape 1,4,7,7 --groups 2 --dilation 2 --second-order
//! ```

mod cases;
mod gradcheck;
mod graph;
mod lenet;

pub use cases::{GradcheckCase, GRADCHECK_OPS};
pub use gradcheck::{
    check_case, parse_dims, parse_pair, render, run as run_gradcheck, GradcheckArgs,
};
pub use graph::{
    lenet_step_graph, run as run_graph, write_graph, GraphArgs, GraphModel, GraphOutput,
};
pub use lenet::LeNet;

#[cfg(test)]
mod tests;
