//! `Sequential`: named children applied in order.

use crate::module::prefixed;
use crate::{Module, NnError, Result};
use gradlab_autograd::Var;
use std::sync::atomic::{AtomicBool, Ordering};

/// One step of [`Sequential::forward_layers`]: a child, or a child and the
/// ReLU after it run as one op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layer<'a> {
    /// The child's name.
    pub child: &'a str,
    /// The name of the ReLU folded into the child, if one is.
    pub relu: Option<&'a str>,
}

impl Layer<'_> {
    /// The child's name, or `<child>+<relu>` (`bn1+relu1`) for a fused pair.
    pub fn name(&self) -> String {
        match self.relu {
            Some(relu) => format!("{}+{relu}", self.child),
            None => self.child.to_string(),
        }
    }

    /// The name of the module whose output this is: the ReLU's, else the child's.
    pub fn output_name(&self) -> &str {
        self.relu.unwrap_or(self.child)
    }
}

/// Children applied one after the other. Each child's state is named
/// `<child>.<name>` (e.g. `conv1.weight`), as in a PyTorch module whose
/// attributes are the children.
///
/// A child followed by a [`ReLU`](crate::layers::ReLU) runs as one op
/// where the child has a fused form ([`Module::fuses_relu`]: batch norm
/// in training on the fast kernels); the values are those of the two
/// children one after the other, which is what runs otherwise.
pub struct Sequential {
    children: Vec<(String, Box<dyn Module>)>,
    training: AtomicBool,
}

impl Default for Sequential {
    fn default() -> Self {
        Sequential::new()
    }
}

impl Sequential {
    /// An empty container in training mode.
    pub fn new() -> Sequential {
        Sequential {
            children: Vec::new(),
            training: AtomicBool::new(true),
        }
    }

    /// Appends a child named `name` (names must be unique and contain no dot).
    pub fn push(
        mut self,
        name: impl Into<String>,
        child: impl Module + 'static,
    ) -> Result<Sequential> {
        let name = name.into();
        if name.is_empty() || name.contains('.') || self.children.iter().any(|(n, _)| *n == name) {
            return Err(NnError::invalid(
                "Sequential::push",
                format!("child name '{name}' must be non-empty, without dots, and unique"),
            ));
        }
        child.set_training(self.is_training());
        self.children.push((name, Box::new(child)));
        Ok(self)
    }

    /// [`Module::forward`], passing each child's output through
    /// `after(name, y)` before the next child sees it (for a child and the
    /// ReLU folded into it, once, with the ReLU's name): for inspecting or
    /// altering activations between layers.
    pub fn forward_each(
        &self,
        x: &Var,
        mut after: impl FnMut(&str, Var) -> Result<Var>,
    ) -> Result<Var> {
        self.forward_layers(x, |layer, run| after(layer.output_name(), run()?))
    }

    /// [`Module::forward`], one layer at a time: `step(layer, run)` gets
    /// each layer (a child, or a child and the ReLU folded into it) and
    /// `run`, which computes the layer's output from the previous one, and
    /// returns what the next layer sees. For timing or scoping each layer
    /// as it runs (the profiler does), with exactly the ops training runs.
    pub fn forward_layers(
        &self,
        x: &Var,
        mut step: impl FnMut(&Layer<'_>, &mut dyn FnMut() -> Result<Var>) -> Result<Var>,
    ) -> Result<Var> {
        let mut y = x.clone();
        let mut children = self.children.iter().peekable();
        while let Some((name, child)) = children.next() {
            let relu = children
                .peek()
                .filter(|(_, next)| next.is_relu() && child.fuses_relu(&y))
                .map(|(next_name, _)| next_name.as_str());
            let layer = Layer { child: name, relu };
            let input = &y;
            y = step(&layer, &mut || match relu {
                Some(_) => child.forward_relu(input),
                None => child.forward(input),
            })?;
            if relu.is_some() {
                children.next();
            }
        }
        Ok(y)
    }

    /// The children with their names, in order.
    pub fn children(&self) -> impl Iterator<Item = (&str, &dyn Module)> {
        self.children.iter().map(|(n, c)| (n.as_str(), c.as_ref()))
    }
}

impl Module for Sequential {
    fn forward(&self, x: &Var) -> Result<Var> {
        self.forward_each(x, |_, y| Ok(y))
    }

    fn parameters(&self) -> Vec<(String, Var)> {
        self.children
            .iter()
            .flat_map(|(n, c)| prefixed(n, c.parameters()))
            .collect()
    }

    fn buffers(&self) -> Vec<(String, Var)> {
        self.children
            .iter()
            .flat_map(|(n, c)| prefixed(n, c.buffers()))
            .collect()
    }

    fn set_training(&self, training: bool) {
        self.training.store(training, Ordering::Relaxed);
        for (_, child) in &self.children {
            child.set_training(training);
        }
    }

    fn is_training(&self) -> bool {
        self.training.load(Ordering::Relaxed)
    }
}
