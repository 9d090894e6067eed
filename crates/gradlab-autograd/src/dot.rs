//! Seeing the recorded graph: Graphviz DOT and an indented text tree.
//!
//! [`Var::graph`] walks the graph that produced a var (without recursion) and
//! returns a [`RecordedGraph`]: one [`GraphNode`] per var, inputs before the
//! ops that use them, the var itself last. [`Var::to_dot`] and
//! [`Var::graph_tree`] render it.
//!
//! Op nodes carry the backward op's name (`MulBackward`, `Conv2dBackward`),
//! leaves are marked as parameters (they require grad, and show their
//! [`Var::name`]) or constants, and every node shows its shape and dtype.
//!
//! ```
//! use gradlab_autograd::Var;
//! use gradlab_tensor::Tensor;
//! let w = Var::named_parameter(Tensor::from_vec(vec![1.0f64, 2.0], [2]).unwrap(), "w");
//! let x = Var::constant(Tensor::from_vec(vec![3.0f64, 4.0], [2]).unwrap());
//! let loss = w.mul(&x).unwrap().sum_all().unwrap();
//! assert_eq!(
//!     loss.graph_tree(),
//!     "SumBackward [] f64\n\
//!      └── MulBackward [2] f64\n    \
//!          ├── w [2] f64 (parameter)\n    \
//!          └── constant [2] f64\n"
//! );
//! let dot = loss.to_dot();
//! assert!(dot.starts_with("digraph gradlab {"));
//! assert!(dot.contains("n0 [label=\"w\\n[2] f64\", shape=box"));
//! assert!(dot.contains("n0 -> n2;") && dot.contains("n2 -> n3;"));
//! ```

use crate::Var;
use gradlab_tensor::DType;
use std::collections::HashMap;
use std::fmt::Write;

/// What a node of the exported graph stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    /// The output of a recorded op.
    Op,
    /// A leaf that requires grad: gradients accumulate into it.
    Parameter,
    /// A leaf that does not require grad (inputs, targets, masks).
    Constant,
}

/// One var of a [`RecordedGraph`].
#[derive(Clone, Debug, PartialEq)]
pub struct GraphNode {
    /// The var's process-unique id ([`Var::id`]).
    pub var_id: usize,
    /// Op output, parameter or constant.
    pub kind: NodeKind,
    /// The backward op's name for op nodes, e.g. `"Conv2dBackward"`.
    pub op: Option<&'static str>,
    /// The name given with [`Var::set_name`] or [`Var::named_parameter`].
    pub name: Option<String>,
    /// The var's dims and element type.
    pub shape: Vec<usize>,
    pub dtype: DType,
    /// Indices (into [`RecordedGraph::nodes`]) of the op's inputs, in argument order.
    pub inputs: Vec<usize>,
    /// Where the op was called in the user's code (`file:line:column`).
    pub location: Option<String>,
}

impl GraphNode {
    /// The node's title: the op name for ops, else the var's name, else its kind.
    pub fn title(&self) -> String {
        match (self.op, &self.name, self.kind) {
            (Some(op), _, _) => op.to_string(),
            (None, Some(name), _) => name.clone(),
            (None, None, NodeKind::Parameter) => "parameter".to_string(),
            (None, None, _) => "constant".to_string(),
        }
    }

    /// `[2, 3] f64`
    pub fn shape_and_dtype(&self) -> String {
        format!("{} {}", format_dims(&self.shape), self.dtype)
    }
}

/// A fill colour and a note for one node of [`RecordedGraph::to_dot_highlighted`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Highlight {
    /// A Graphviz colour: a name or `#rrggbb`.
    pub fill: String,
    /// A line added to the node's label.
    pub note: String,
}

/// The graph that produced a var, as plain data.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedGraph {
    /// Every var reachable from the root, each before any op that uses it.
    pub nodes: Vec<GraphNode>,
    /// Index of the var the graph was taken from (the last node).
    pub root: usize,
}

impl RecordedGraph {
    /// Walks the graph that produced `root`, iteratively (deep graphs fit).
    pub fn of(root: &Var) -> RecordedGraph {
        let mut index_of: HashMap<usize, usize> = HashMap::new();
        let mut nodes: Vec<GraphNode> = Vec::new();
        // (var, inputs visited so far): a node is emitted once all its inputs are.
        let mut stack: Vec<(Var, usize)> = vec![(root.clone(), 0)];
        while let Some((var, next)) = stack.last_mut() {
            let inputs = var.node().map(|n| n.inputs()).unwrap_or(&[]);
            if let Some(input) = inputs.get(*next) {
                *next += 1;
                if !index_of.contains_key(&input.id()) {
                    let input = input.clone();
                    stack.push((input, 0));
                }
                continue;
            }
            let (var, _) = stack.pop().expect("stack is not empty");
            if index_of.contains_key(&var.id()) {
                continue;
            }
            index_of.insert(var.id(), nodes.len());
            nodes.push(describe(&var, &index_of));
        }
        let root = nodes.len() - 1;
        RecordedGraph { nodes, root }
    }

    /// Every edge as `(input, consumer)` node indices, one per argument
    /// (an input used twice by one op gives two edges).
    pub fn edges(&self) -> Vec<(usize, usize)> {
        self.nodes
            .iter()
            .enumerate()
            .flat_map(|(consumer, n)| n.inputs.iter().map(move |&input| (input, consumer)))
            .collect()
    }

    /// How many op nodes use each node as an input.
    pub fn use_counts(&self) -> Vec<usize> {
        let mut uses = vec![0; self.nodes.len()];
        for (input, _) in self.edges() {
            uses[input] += 1;
        }
        uses
    }

    /// Graphviz DOT: nodes `n0, n1, ...` in [`RecordedGraph::nodes`] order,
    /// edges in the direction data flows (input -> op). Parameters are blue
    /// boxes, constants grey boxes, ops ellipses (the root in green); an op's
    /// tooltip is the place in the user's code that called it.
    pub fn to_dot(&self) -> String {
        self.to_dot_highlighted(|_| None)
    }

    /// [`RecordedGraph::to_dot`] with some nodes filled by a colour of the
    /// caller's and a note added to their label (the profiler colours the
    /// step's graph by time and by saved memory this way).
    pub fn to_dot_highlighted(
        &self,
        highlight: impl Fn(&GraphNode) -> Option<Highlight>,
    ) -> String {
        let mut out = String::from("digraph gradlab {\n");
        out.push_str("  node [fontname=\"Helvetica\", fontsize=10];\n");
        for (i, n) in self.nodes.iter().enumerate() {
            let mut label = escape(&n.title());
            if let (Some(name), NodeKind::Op) = (&n.name, n.kind) {
                let _ = write!(label, "\\n{}", escape(name));
            }
            let _ = write!(label, "\\n{}", escape(&n.shape_and_dtype()));
            let marked = highlight(n);
            if let Some(h) = &marked {
                let _ = write!(label, "\\n{}", escape(&h.note));
            }
            let style = match n.kind {
                NodeKind::Parameter => "shape=box, style=filled, fillcolor=lightblue".to_string(),
                NodeKind::Constant => "shape=box, style=filled, fillcolor=lightgrey".to_string(),
                NodeKind::Op if i == self.root => {
                    "shape=ellipse, style=filled, fillcolor=darkolivegreen1".to_string()
                }
                NodeKind::Op => "shape=ellipse".to_string(),
            };
            let style = match &marked {
                Some(h) => format!(
                    "shape=ellipse, style=filled, fillcolor=\"{}\"",
                    escape(&h.fill)
                ),
                None => style,
            };
            let _ = write!(out, "  n{i} [label=\"{label}\", {style}");
            if let Some(location) = &n.location {
                let _ = write!(out, ", tooltip=\"{}\"", escape(location));
            }
            out.push_str("];\n");
        }
        for (input, consumer) in self.edges() {
            let _ = writeln!(out, "  n{input} -> n{consumer};");
        }
        out.push_str("}\n");
        out
    }

    /// An indented tree from the root down to the leaves. A node used more
    /// than once is printed in full the first time with a tag `@k`; later
    /// uses print only `title @k (shown above)`.
    pub fn to_tree(&self) -> String {
        let uses = self.use_counts();
        let mut tags: HashMap<usize, usize> = HashMap::new();
        let mut out = String::new();
        // (node, prefix of its own line, prefix of its children's lines)
        let mut stack: Vec<(usize, String, String)> =
            vec![(self.root, String::new(), String::new())];
        while let Some((i, line_prefix, child_prefix)) = stack.pop() {
            let n = &self.nodes[i];
            out.push_str(&line_prefix);
            out.push_str(&n.title());
            if let Some(&tag) = tags.get(&i) {
                let _ = writeln!(out, " @{tag} (shown above)");
                continue;
            }
            if uses[i] > 1 {
                let tag = tags.len() + 1;
                tags.insert(i, tag);
                let _ = write!(out, " @{tag}");
            }
            if let (Some(name), NodeKind::Op) = (&n.name, n.kind) {
                let _ = write!(out, " \"{name}\"");
            }
            let _ = write!(out, " {}", n.shape_and_dtype());
            if n.kind == NodeKind::Parameter {
                out.push_str(" (parameter)");
            }
            out.push('\n');
            let last = n.inputs.len().saturating_sub(1);
            for (k, &input) in n.inputs.iter().enumerate().rev() {
                let (branch, continuation) = if k == last {
                    ("└── ", "    ")
                } else {
                    ("├── ", "│   ")
                };
                stack.push((
                    input,
                    format!("{child_prefix}{branch}"),
                    format!("{child_prefix}{continuation}"),
                ));
            }
        }
        out
    }
}

fn describe(var: &Var, index_of: &HashMap<usize, usize>) -> GraphNode {
    let data = var.data();
    let (kind, op, inputs, location) = match var.node() {
        Some(node) => (
            NodeKind::Op,
            Some(node.name()),
            node.inputs().iter().map(|v| index_of[&v.id()]).collect(),
            Some(node.location().to_string()),
        ),
        None if var.requires_grad() => (NodeKind::Parameter, None, Vec::new(), None),
        None => (NodeKind::Constant, None, Vec::new(), None),
    };
    GraphNode {
        var_id: var.id(),
        kind,
        op,
        name: var.name(),
        shape: data.dims().to_vec(),
        dtype: data.dtype(),
        inputs,
        location,
    }
}

fn format_dims(dims: &[usize]) -> String {
    let parts: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

/// Escapes a string for a double-quoted DOT attribute.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Var {
    /// The graph that produced this var, as plain data (see [`RecordedGraph`]).
    pub fn graph(&self) -> RecordedGraph {
        RecordedGraph::of(self)
    }

    /// The graph that produced this var as Graphviz DOT (render with
    /// `dot -Tsvg graph.dot -o graph.svg`).
    ///
    /// ```
    /// use gradlab_autograd::Var;
    /// use gradlab_tensor::Tensor;
    /// let x = Var::named_parameter(Tensor::from_vec(vec![2.0f64], [1]).unwrap(), "x");
    /// let y = x.exp().unwrap();
    /// let dot = y.to_dot();
    /// assert!(dot.contains("n0 [label=\"x\\n[1] f64\", shape=box"));
    /// assert!(dot.contains("n1 [label=\"ExpBackward\\n[1] f64\", shape=ellipse"));
    /// assert!(dot.contains("n0 -> n1;"));
    /// ```
    pub fn to_dot(&self) -> String {
        self.graph().to_dot()
    }

    /// The graph that produced this var as an indented text tree, root first.
    ///
    /// ```
    /// use gradlab_autograd::Var;
    /// use gradlab_tensor::Tensor;
    /// let a = Var::named_parameter(Tensor::from_vec(vec![2.0f64], [1]).unwrap(), "a");
    /// let b = a.exp().unwrap();
    /// let c = b.mul(&b).unwrap(); // b is shared: printed once, then referenced
    /// assert_eq!(
    ///     c.graph_tree(),
    ///     "MulBackward [1] f64\n\
    ///      ├── ExpBackward @1 [1] f64\n\
    ///      │   └── a [1] f64 (parameter)\n\
    ///      └── ExpBackward @1 (shown above)\n"
    /// );
    /// ```
    pub fn graph_tree(&self) -> String {
        self.graph().to_tree()
    }
}
