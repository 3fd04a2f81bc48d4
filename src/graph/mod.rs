//! The model as a directed acyclic graph of nodes. A node applies one layer (or one merge) to one or more
//! tensors and yields one tensor. Forward runs the nodes in topological order, handing each tensor to its last
//! consumer by value (so it is freed as soon as nothing needs it); backward runs them in reverse, summing the
//! gradients of a tensor that feeds several nodes. Sequential is the chain graph.
//!
//! A layer called twice shares its weights: the first call runs on the layer itself, each later call on an
//! instance of its own (with its own cached activations) into which the layer's weight and gradient buffers
//! are swapped for the duration of the call, so the gradients of every call add up in one buffer.
//!
//! Fusions are rewrites of the plan: a convolution whose only consumer is a max pooling runs as one fused
//! step (`plan`), wherever the pattern appears.

pub mod fusion;
pub mod merge;
pub mod op_nodes;

use crate::activations::Activation;
use crate::error::{Error, Result};
use crate::layers::{self, Ctx, Layer, Param};
use crate::ops::arr::Arr;
use crate::ops::elementwise::Unary;
use crate::ops::{dims_str, Dim, Op};
use crate::rng::Rng;
use crate::tensor::{shape_str, Tensor};
use merge::{Merge, MERGE_CLASSES};
use op_nodes::{OpCache, OpUnit, WeightsUnit};
use rayon::prelude::*;
use serde_json::Value;
use std::sync::Arc;

/// One entry of the model's layer list (Keras's `model.layers` order, which is also the weight order).
pub enum Unit {
    Layer(Box<dyn Layer>),
    /// A merge layer's arguments; each of its nodes owns a built copy.
    Merge(Merge),
    /// One recorded `keras.ops` call.
    Op(OpUnit),
    /// A custom layer's own variables.
    Weights(WeightsUnit),
}

impl Unit {
    pub fn name(&self) -> &str {
        match self {
            Unit::Layer(l) => l.name(),
            Unit::Merge(m) => &m.name,
            Unit::Op(o) => &o.name,
            Unit::Weights(w) => &w.name,
        }
    }
    pub fn class_name(&self) -> &'static str {
        match self {
            Unit::Layer(l) => l.class_name(),
            Unit::Merge(m) => m.class_name,
            Unit::Op(_) => "Op",
            Unit::Weights(_) => "Weights",
        }
    }
    pub fn params(&self) -> &[Param] {
        match self {
            Unit::Layer(l) => l.params(),
            Unit::Weights(w) => &w.params,
            Unit::Merge(_) | Unit::Op(_) => &[],
        }
    }
    pub fn params_mut(&mut self) -> &mut [Param] {
        match self {
            Unit::Layer(l) => l.params_mut(),
            Unit::Weights(w) => &mut w.params,
            Unit::Merge(_) | Unit::Op(_) => &mut [],
        }
    }
    fn layer(&self) -> Option<&dyn Layer> {
        match self {
            Unit::Layer(l) => Some(l.as_ref()),
            _ => None,
        }
    }
}

enum Instance {
    /// The layer's first call: runs on the unit itself.
    Own,
    /// A later call of the same layer (weights swapped in around each use).
    Shared(Box<dyn Layer>),
    Merge(Merge),
    Op(OpCache),
    /// Reads variable i of a `Weights` unit.
    Var(usize),
    /// Its first input in training, its second otherwise (a custom layer whose `call` branches on `training`).
    SelectTraining,
}

struct Node {
    unit: usize,
    inputs: Vec<usize>,
    instance: Instance,
    /// The output's sample shape (its shape without axis 0 when that is the batch, else its whole shape).
    out_shape: Vec<usize>,
    /// The output's rank (batch axis included).
    dims_rank: usize,
}

/// Called with (layer name, class name, output) after each node of a traced forward pass.
pub type Watch<'a> = &'a mut dyn FnMut(&str, &'static str, &Tensor);

/// One step of a forward plan.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Step {
    Node(usize),
    /// A convolution node and the max-pooling node that is its only consumer, as one pass.
    ConvMaxPool(usize, usize),
}

pub struct Graph {
    units: Vec<Unit>,
    nodes: Vec<Node>,
    input_shapes: Vec<Vec<usize>>,
    outputs: Vec<usize>,
    /// Per tensor: how many node inputs and model outputs read it.
    uses: Vec<usize>,
    /// Per unit: how many nodes call it.
    calls: Vec<usize>,
    /// The forward plans, computed once the layers are built: inference, training, and traced (unfused).
    plans: [Arc<[Step]>; 3],
    /// Whether each sample's outputs depend on that sample alone (then inference may run in slices).
    batch_local: bool,
    /// Per tensor: the variable (unit, index) an op node reads in place, when that op is the only reader of
    /// a variable node's output (the variable is lent for the op's forward and backward, not copied).
    lent: Vec<Option<(usize, usize)>>,
    /// `GraphSpec::added_losses`; forward returns them after the outputs.
    added_losses: Vec<usize>,
}

/// One node of a `GraphSpec`: the unit it applies, the tensors it reads, and which variable it reads (for a
/// `Weights` unit).
#[derive(Clone, Debug, PartialEq)]
pub struct NodeSpec {
    pub layer: usize,
    pub inputs: Vec<usize>,
    pub index: usize,
    /// The last input is a Keras mask for the layer (`Layer::takes_mask`).
    pub mask: bool,
}

/// The graph as plain data (what Python sends): unique layers, model inputs' sample shapes, nodes in
/// topological order (tensor ids: the inputs first, then node k's output is `inputs.len() + k`), outputs.
pub struct GraphSpec {
    pub layers: Vec<(String, Value)>,
    pub inputs: Vec<Vec<usize>>,
    pub nodes: Vec<NodeSpec>,
    pub outputs: Vec<usize>,
    /// Tensors a layer added with `add_loss`: each one's sum joins the training loss.
    pub added_losses: Vec<usize>,
}

fn usize_list(v: &Value, what: &str) -> Result<Vec<usize>> {
    v.as_array()
        .ok_or_else(|| Error::Value(format!("graph: `{what}` must be a list of integers")))?
        .iter()
        .map(|x| {
            x.as_u64()
                .filter(|&n| n < (1 << 31))
                .map(|n| n as usize)
                .ok_or_else(|| {
                    Error::Value(format!(
                        "graph: `{what}` must be a list of integers, received {x}"
                    ))
                })
        })
        .collect()
}

impl GraphSpec {
    /// The chain graph of a Sequential model.
    pub fn chain(layers: &[(String, Value)], input_shape: &[usize]) -> Self {
        GraphSpec {
            added_losses: Vec::new(),
            layers: layers.to_vec(),
            inputs: vec![input_shape.to_vec()],
            nodes: (0..layers.len())
                .map(|i| NodeSpec {
                    layer: i,
                    inputs: vec![i],
                    index: 0,
                    mask: false,
                })
                .collect(),
            outputs: vec![layers.len()],
        }
    }

    /// From `{"layers": [{"class_name", "config"}], "inputs": [[dims]], "nodes": [{"layer", "inputs"}],
    /// "outputs": [ids]}`.
    pub fn from_value(v: &Value) -> Result<Self> {
        let list = |k: &str| {
            v.get(k)
                .and_then(Value::as_array)
                .ok_or_else(|| Error::Value(format!("graph: `{k}` must be a list")))
        };
        let layers = list("layers")?
            .iter()
            .map(|item| {
                let class = item
                    .get("class_name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        Error::Value(format!("layer entry without `class_name`: {item}"))
                    })?;
                Ok((
                    class.to_string(),
                    item.get("config").cloned().unwrap_or(Value::Null),
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let inputs = list("inputs")?
            .iter()
            .map(|s| usize_list(s, "inputs"))
            .collect::<Result<Vec<_>>>()?;
        let nodes = list("nodes")?
            .iter()
            .map(|n| {
                let layer = n
                    .get("layer")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| Error::Value(format!("graph: node without `layer`: {n}")))?;
                let inputs = usize_list(n.get("inputs").unwrap_or(&Value::Null), "node inputs")?;
                let index = n.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
                let mask = n.get("mask").and_then(Value::as_bool).unwrap_or(false);
                Ok(NodeSpec {
                    layer: layer as usize,
                    inputs,
                    index,
                    mask,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let outputs = usize_list(v.get("outputs").unwrap_or(&Value::Null), "outputs")?;
        let added_losses = match v.get("losses") {
            None | Some(Value::Null) => Vec::new(),
            Some(l) => usize_list(l, "losses")?,
        };
        Ok(GraphSpec {
            layers,
            inputs,
            nodes,
            outputs,
            added_losses,
        })
    }
}

/// Most weight values one model may hold (2 GiB of f32); each layer alone is capped lower, so checking the
/// running total after each layer bounds what is ever allocated.
const MAX_MODEL_WEIGHTS: usize = 1 << 29;

fn swap_weights(a: &mut dyn Layer, b: &mut dyn Layer) {
    for (p, q) in a.params_mut().iter_mut().zip(b.params_mut().iter_mut()) {
        std::mem::swap(&mut p.value, &mut q.value);
        std::mem::swap(&mut p.grad, &mut q.grad);
    }
}

/// The activation an op node is, for the loss fusion: softmax over the last axis, or sigmoid.
fn op_activation(unit: &Unit, rank: usize) -> Option<Activation> {
    let Unit::Op(o) = unit else {
        return None;
    };
    match &o.op {
        Op::Softmax { axis, log: false } if *axis == -1 || *axis == rank as i64 - 1 => {
            Some(Activation::Softmax)
        }
        Op::Unary(Unary::Sigmoid) => Some(Activation::Sigmoid),
        _ => None,
    }
}

/// Add `g` into the gradient slot of a tensor (a tensor read by several nodes gets the sum).
fn accumulate(slot: &mut Option<Tensor>, g: Tensor) -> Result<()> {
    match slot {
        None => *slot = Some(g),
        Some(acc) => {
            if acc.shape != g.shape {
                return Err(Error::Runtime(format!(
                    "kerust internal error: gradients of shapes {:?} and {:?} for one tensor",
                    acc.shape, g.shape
                )));
            }
            acc.data
                .par_chunks_mut(1 << 14)
                .zip(g.data.par_chunks(1 << 14))
                .for_each(|(a, b)| a.iter_mut().zip(b).for_each(|(x, y)| *x += y));
        }
    }
    Ok(())
}

impl Graph {
    /// Build every layer (with the shape of its first call) and check every node's shapes.
    pub fn new(spec: GraphSpec, rng: &mut Rng) -> Result<Self> {
        Self::build(spec, rng, true)
    }

    /// As `new`, but the outputs may be of any shape (a traced loss may return one scalar).
    pub fn new_unchecked_outputs(spec: GraphSpec, rng: &mut Rng) -> Result<Self> {
        Self::build(spec, rng, false)
    }

    fn build(spec: GraphSpec, rng: &mut Rng, batched_outputs: bool) -> Result<Self> {
        if spec.layers.is_empty() || spec.nodes.is_empty() {
            return Err(Error::Value("a model needs at least one layer".into()));
        }
        if spec.inputs.is_empty() || spec.outputs.is_empty() {
            return Err(Error::Value(
                "a model needs at least one input and one output".into(),
            ));
        }
        for s in &spec.inputs {
            if s.contains(&0) {
                return Err(Error::Value(format!(
                    "input shape {} has a zero dimension",
                    shape_str(s)
                )));
            }
            crate::initializers::checked_numel("input", s)?;
        }
        let n_in = spec.inputs.len();
        let n_tensors = n_in + spec.nodes.len();
        let mut dims: Vec<Vec<Dim>> = spec
            .inputs
            .iter()
            .map(|s| {
                std::iter::once(Dim::BATCH)
                    .chain(s.iter().map(|&n| Dim::known(n)))
                    .collect()
            })
            .collect();
        let mut units: Vec<Option<Unit>> = (0..spec.layers.len()).map(|_| None).collect();
        let mut calls = vec![0usize; spec.layers.len()];
        let mut uses = vec![0usize; n_tensors];
        let mut nodes = Vec::with_capacity(spec.nodes.len());
        let mut total_weights = 0usize;
        let mut batch_local = true;
        for (k, node) in spec.nodes.iter().enumerate() {
            let (u, ins) = (&node.layer, &node.inputs);
            let (class_name, cfg) = spec.layers.get(*u).ok_or_else(|| {
                Error::Value(format!(
                    "graph: node {k} names layer {u}, which does not exist"
                ))
            })?;
            let sources = matches!(class_name.as_str(), "Op" | "Weights");
            if class_name == "SelectTraining" {
                let ok = ins.len() == 2 && ins.iter().all(|&t| t < n_in + k);
                if !ok || dims[ins[0]] != dims[ins[1]] {
                    return Err(Error::Value(format!(
                        "graph: node {k} (SelectTraining) needs two computed tensors of one shape"
                    )));
                }
                for &t in ins {
                    uses[t] += 1;
                }
                if units[*u].is_none() {
                    units[*u] = Some(Unit::Op(OpUnit::from_config(&serde_json::json!({
                        "name": "select_training", "op": "identity"
                    }))?));
                }
                let out = dims[ins[0]].clone();
                calls[*u] += 1;
                let out_shape = match out.first() {
                    Some(d) if *d == Dim::BATCH => out[1..].iter().map(|x| x.n).collect(),
                    _ => out.iter().map(|x| x.n).collect(),
                };
                dims.push(out);
                nodes.push(Node {
                    unit: *u,
                    inputs: ins.clone(),
                    instance: Instance::SelectTraining,
                    out_shape,
                    dims_rank: dims[ins[0]].len(),
                });
                continue;
            }
            if (ins.is_empty() && !sources) || ins.iter().any(|&t| t >= n_in + k) {
                return Err(Error::Value(format!(
                    "graph: node {k} ({class_name}) reads tensors {ins:?}, which are not computed before it"
                )));
            }
            for &t in ins {
                uses[t] += 1;
            }
            let in_dims: Vec<Vec<Dim>> = ins.iter().map(|&t| dims[t].clone()).collect();
            let (instance, out_dims) = match class_name.as_str() {
                "Op" => {
                    let unit = OpUnit::from_config(cfg)?;
                    let out = unit.op.infer(&in_dims)?;
                    batch_local &= unit.op.batch_local(&in_dims, &out);
                    if units[*u].is_none() {
                        units[*u] = Some(Unit::Op(unit));
                    }
                    (Instance::Op(OpCache::default()), out)
                }
                "Weights" => {
                    if units[*u].is_none() {
                        let w = WeightsUnit::from_config(cfg, rng)?;
                        total_weights += w.params.iter().map(|p| p.value.len()).sum::<usize>();
                        units[*u] = Some(Unit::Weights(w));
                    }
                    let Some(Unit::Weights(w)) = &units[*u] else {
                        return Err(Error::Value(format!(
                            "graph: layer {u} is not a Weights unit"
                        )));
                    };
                    let out = w
                        .param(node.index)?
                        .shape
                        .iter()
                        .map(|&n| Dim::known(n))
                        .collect();
                    (Instance::Var(node.index), out)
                }
                _ => {
                    // a layer: its axis 0 is the batch (or whatever leads an op's output), the rest is known
                    let lead = in_dims.first().and_then(|d| d.first()).copied();
                    let mut in_shapes = Vec::with_capacity(in_dims.len());
                    for d in &in_dims {
                        if d.is_empty()
                            || d[1..].iter().any(|x| x.batch)
                            || d.first().copied() != lead
                        {
                            return Err(Error::Value(format!(
                                "Layer '{}' ({class_name}) cannot take an input of shape {}: kerust needs the batch \
                                 axis first (and the same for every input)",
                                cfg.get("name").and_then(Value::as_str).unwrap_or(class_name),
                                dims_str(d)
                            )));
                        }
                        in_shapes.push(d[1..].iter().map(|x| x.n).collect::<Vec<usize>>());
                    }
                    let (instance, out_shape) = Self::build_layer_node(
                        class_name,
                        cfg,
                        *u,
                        &in_shapes,
                        node.mask,
                        &mut units,
                        &mut total_weights,
                        rng,
                    )?;
                    batch_local &= match (&instance, &units[*u]) {
                        (Instance::Shared(l), _) => l.batch_local(),
                        (_, Some(Unit::Layer(l))) => l.batch_local(),
                        _ => true,
                    };
                    let lead = lead.unwrap_or(Dim::BATCH);
                    let out: Vec<Dim> = std::iter::once(lead)
                        .chain(out_shape.iter().map(|&n| Dim::known(n)))
                        .collect();
                    (instance, out)
                }
            };
            if total_weights > MAX_MODEL_WEIGHTS {
                return Err(Error::Value(format!(
                    "layer '{}': the model would hold more than {MAX_MODEL_WEIGHTS} weight values (2 GiB); \
                     refusing to allocate it",
                    cfg.get("name").and_then(Value::as_str).unwrap_or(class_name)
                )));
            }
            let out_shape: Vec<usize> = match out_dims.first() {
                Some(d) if *d == Dim::BATCH => out_dims[1..].iter().map(|x| x.n).collect(),
                _ => out_dims.iter().map(|x| x.n).collect(),
            };
            crate::initializers::checked_numel(
                &format!("output of layer {k} ({class_name})"),
                &out_shape,
            )?;
            calls[*u] += 1;
            let dims_rank = out_dims.len();
            dims.push(out_dims);
            nodes.push(Node {
                unit: *u,
                inputs: ins.clone(),
                instance,
                out_shape,
                dims_rank,
            });
        }
        for &t in &spec.outputs {
            if t >= n_tensors {
                return Err(Error::Value(format!(
                    "graph: output tensor {t} does not exist"
                )));
            }
            uses[t] += 1;
            let d = &dims[t];
            if batched_outputs && (d.first() != Some(&Dim::BATCH) || d[1..].iter().any(|x| x.batch))
            {
                return Err(Error::Value(format!(
                    "a model output must have the batch as its first axis (and only there); output tensor {t} has \
                     shape {}",
                    dims_str(d)
                )));
            }
        }
        for &t in &spec.added_losses {
            if t >= n_tensors {
                return Err(Error::Value(format!(
                    "graph: added loss tensor {t} does not exist"
                )));
            }
            uses[t] += 1;
        }
        // an added loss is a value of the whole batch: inference must not split the batch
        batch_local &= spec.added_losses.is_empty();
        let units = units
            .into_iter()
            .enumerate()
            .map(|(i, u)| {
                u.ok_or_else(|| {
                    Error::Value(format!(
                        "graph: layer {i} ({}) is never called",
                        spec.layers[i].0
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut graph = Graph {
            units,
            nodes,
            input_shapes: spec.inputs,
            outputs: spec.outputs,
            uses,
            calls,
            plans: [Arc::from([]), Arc::from([]), Arc::from([])],
            batch_local,
            lent: Vec::new(),
            added_losses: spec.added_losses,
        };
        graph.lent = graph.lent_variables();
        // which steps fuse depends only on the built layers, so each plan is made once per graph
        graph.plans = [
            graph.make_plan(false, false).into(),
            graph.make_plan(true, false).into(),
            graph.make_plan(true, true).into(),
        ];
        Ok(graph)
    }

    /// Build the layer (or merge) of node `u`'s first call, or a shared instance for a later call: the
    /// instance to run and the output's sample shape.
    #[allow(clippy::too_many_arguments)]
    fn build_layer_node(
        class_name: &str,
        cfg: &Value,
        u: usize,
        in_shapes: &[Vec<usize>],
        masked: bool,
        units: &mut [Option<Unit>],
        total_weights: &mut usize,
        rng: &mut Rng,
    ) -> Result<(Instance, Vec<usize>)> {
        if MERGE_CLASSES.contains(&class_name) {
            let mut m = Merge::from_config(class_name, cfg)?;
            let out = m.build(in_shapes)?;
            if units[u].is_none() {
                units[u] = Some(Unit::Merge(m.clone()));
            }
            return Ok((Instance::Merge(m), out));
        }
        let mut layer = layers::from_config(class_name, cfg)?;
        let layer_name = cfg
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or(class_name);
        if masked && !layer.takes_mask() {
            return Err(Error::Value(format!(
                "Layer '{layer_name}' ({class_name}) does not take a mask"
            )));
        }
        let n_inputs = in_shapes.len() - usize::from(masked);
        if n_inputs == 0 || n_inputs > layer.max_inputs() {
            return Err(Error::Value(format!(
                "Layer '{layer_name}' ({class_name}) expects {}, but it received {n_inputs} input tensors",
                match layer.max_inputs() {
                    1 => "1 input".to_string(),
                    n => format!("1 to {n} inputs"),
                }
            )));
        }
        let trainable = cfg
            .get("trainable")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        match &units[u] {
            None => {
                let out = layer.build_inputs(in_shapes, masked, rng)?;
                crate::constraints::attach(class_name, cfg, layer.params_mut())?;
                layer.set_trainable(trainable);
                *total_weights += layer.params().iter().map(|p| p.value.len()).sum::<usize>();
                units[u] = Some(Unit::Layer(layer));
                Ok((Instance::Own, out))
            }
            Some(owner) => {
                // a second call: same weights, so the shapes must build the same weights
                let mut scratch = Rng::shape_only();
                let out = layer.build_inputs(in_shapes, masked, &mut scratch)?;
                let theirs: Vec<&Vec<usize>> = owner.params().iter().map(|p| &p.shape).collect();
                let mine: Vec<&Vec<usize>> = layer.params().iter().map(|p| &p.shape).collect();
                if theirs != mine {
                    return Err(Error::Value(format!(
                        "Layer '{}' ({class_name}) is called on an input of shape {}, incompatible with the \
                         weights it was built with ({theirs:?})",
                        owner.name(),
                        shape_str(&in_shapes[0])
                    )));
                }
                // the same config, so the same `trainable` flag as the first call
                layer.set_trainable(trainable);
                // its own weight buffers are never used (the owner's are swapped in): drop them
                for p in layer.params_mut() {
                    p.value = Vec::new();
                    p.grad = Vec::new();
                }
                Ok((Instance::Shared(layer), out))
            }
        }
    }

    fn lent_variables(&self) -> Vec<Option<(usize, usize)>> {
        let n_in = self.input_shapes.len();
        let mut lent = vec![None; n_in + self.nodes.len()];
        for (k, node) in self.nodes.iter().enumerate() {
            let Instance::Var(i) = node.instance else {
                continue;
            };
            let t = n_in + k;
            let reader = self.nodes.iter().find(|n| n.inputs.contains(&t));
            let op_reads_once = reader.is_some_and(|n| {
                matches!(n.instance, Instance::Op(_))
                    && n.inputs.iter().filter(|&&x| x == t).count() == 1
            });
            if self.uses[t] == 1 && op_reads_once && !self.outputs.contains(&t) {
                lent[t] = Some((node.unit, i));
            }
        }
        lent
    }

    /// Move the values of the variables op node `k` reads in place into `xs` (the other inputs' slots stay
    /// as given), or, with `restore`, put them back from `xs` / the node's cache.
    fn lend(&mut self, k: usize, xs: &mut [Arr<f32>], restore: bool) -> Result<()> {
        let Graph {
            units, nodes, lent, ..
        } = self;
        let node = &mut nodes[k];
        for (slot, &t) in node.inputs.iter().enumerate() {
            let Some((u, i)) = lent[t] else { continue };
            let Unit::Weights(w) = &mut units[u] else {
                continue;
            };
            if restore {
                let from_xs = xs.get_mut(slot).map(|a| std::mem::take(&mut a.data));
                let data = match (from_xs, &mut node.instance) {
                    (Some(d), _) if !d.is_empty() => d,
                    (_, Instance::Op(cache)) => cache.take_input(slot),
                    _ => Vec::new(),
                };
                w.restore(i, data);
            } else if let Some(x) = xs.get_mut(slot) {
                *x = w.lend(i)?;
            }
        }
        Ok(())
    }

    /// Backward of op node `k`, its lent variables lent again to its cache for the duration. With `direct`, the
    /// gradient of a variable that a matmul reads as its right operand is added straight into the variable's
    /// gradient buffer (as Dense does with its kernel) instead of being returned.
    fn op_backward(
        &mut self,
        k: usize,
        g: Tensor,
        need: &[bool],
        direct: bool,
    ) -> Result<Vec<Option<Tensor>>> {
        let Graph {
            units, nodes, lent, ..
        } = self;
        let node = &mut nodes[k];
        let Instance::Op(cache) = &mut node.instance else {
            return Err(Error::Runtime(
                "kerust internal error: not an op node".into(),
            ));
        };
        let mut need = need.to_vec();
        let is_matmul =
            matches!(&units[node.unit], Unit::Op(o) if matches!(o.op, crate::ops::Op::MatMul));
        let g = op_nodes::arr(g);
        let a_lent = node.inputs.first().is_some_and(|&t| lent[t].is_some());
        if direct && is_matmul && !a_lent && need.get(1) == Some(&true) {
            if let (Some((u, i)), Some(a)) =
                (node.inputs.get(1).and_then(|&t| lent[t]), cache.input(0))
            {
                if let Unit::Weights(w) = &mut units[u] {
                    if let Some(p) = w.params.get_mut(i).filter(|p| p.trainable) {
                        if crate::ops::linalg::matmul_grad_b_into(a, &p.shape, &g, &mut p.grad)? {
                            need[1] = false;
                        }
                    }
                }
            }
        }
        let g = op_nodes::tensor(g);
        for (slot, &t) in node.inputs.iter().enumerate() {
            if let Some((u, i)) = lent[t] {
                if let Unit::Weights(w) = &mut units[u] {
                    cache.put_input(slot, w.lend(i)?.data);
                }
            }
        }
        let result = match &units[node.unit] {
            Unit::Op(o) => cache.backward(&o.op, g, &need),
            _ => Err(Error::Runtime(
                "kerust internal error: an op node without its op".into(),
            )),
        };
        self.lend(k, &mut [], true)?;
        if let Instance::Op(cache) = &mut self.nodes[k].instance {
            cache.clear();
        }
        result
    }

    /// Whether inference may split a batch into slices (no op mixes samples).
    pub fn batch_local(&self) -> bool {
        self.batch_local
    }

    pub fn units(&self) -> &[Unit] {
        &self.units
    }

    pub fn input_shapes(&self) -> &[Vec<usize>] {
        &self.input_shapes
    }

    fn tensor_shape(&self, t: usize) -> &[usize] {
        let n_in = self.input_shapes.len();
        if t < n_in {
            &self.input_shapes[t]
        } else {
            &self.nodes[t - n_in].out_shape
        }
    }

    pub fn output_shapes(&self) -> Vec<Vec<usize>> {
        self.outputs
            .iter()
            .map(|&t| self.tensor_shape(t).to_vec())
            .collect()
    }

    /// The name of the first layer that reads tensor `t` (for error messages about a model input).
    pub fn first_reader(&self, t: usize) -> Option<&str> {
        self.nodes
            .iter()
            .find(|n| n.inputs.contains(&t))
            .map(|n| self.units[n.unit].name())
    }

    /// Every node's output shape, in node order.
    pub fn node_output_shapes(&self) -> Vec<Vec<usize>> {
        self.nodes.iter().map(|n| n.out_shape.clone()).collect()
    }

    /// Each unit's output shape at its first call.
    pub fn unit_output_shapes(&self) -> Vec<Vec<usize>> {
        let mut out: Vec<Option<Vec<usize>>> = vec![None; self.units.len()];
        for n in &self.nodes {
            if out[n.unit].is_none() {
                out[n.unit] = Some(n.out_shape.clone());
            }
        }
        out.into_iter().map(Option::unwrap_or_default).collect()
    }

    /// The activation applied last by the node that produced output `j` (a layer's, or a softmax / sigmoid
    /// op's) and whether nothing but the loss reads that output (then a loss may fuse with it).
    pub fn output_activation(&self, j: usize) -> Option<(Activation, bool)> {
        let t = *self.outputs.get(j)?;
        let n_in = self.input_shapes.len();
        let k = t.checked_sub(n_in)?;
        let node = &self.nodes[k];
        let only_loss = self.uses[t] == 1 && self.outputs.iter().filter(|&&o| o == t).count() == 1;
        let act = match &node.instance {
            Instance::Own => self.units[node.unit].layer()?.activation(),
            Instance::Shared(l) => l.activation(),
            Instance::Op(_) => op_activation(&self.units[node.unit], node.dims_rank)?,
            _ => return None,
        };
        Some((act, only_loss))
    }

    fn node_layer(&self, k: usize) -> Option<&dyn Layer> {
        let n = &self.nodes[k];
        match &n.instance {
            Instance::Own => self.units[n.unit].layer(),
            _ => None,
        }
    }

    /// The order of work for one forward pass: every node, with a convolution and the max pooling that is its
    /// only consumer fused into one step (not in a traced pass, which looks at every layer's output).
    pub fn plan(&self, training: bool, trace: bool) -> Arc<[Step]> {
        let i = if trace { 2 } else { training as usize };
        self.plans[i].clone()
    }

    fn make_plan(&self, training: bool, trace: bool) -> Vec<Step> {
        let n_in = self.input_shapes.len();
        let mut fused_into = vec![false; self.nodes.len()];
        let mut steps = Vec::with_capacity(self.nodes.len());
        for k in 0..self.nodes.len() {
            if fused_into[k] {
                continue;
            }
            let t = n_in + k;
            let consumer = (!trace && self.uses[t] == 1)
                .then(|| (k + 1..self.nodes.len()).find(|&p| self.nodes[p].inputs.contains(&t)))
                .flatten();
            let fused = consumer.filter(|&p| {
                let single_call = |i: usize| self.calls[self.nodes[i].unit] == 1;
                let pool_out = n_in + p;
                // a pooling whose output is a model output stays apart (the loss may fuse with it)
                let pool_feeds_nodes = !self.outputs.contains(&pool_out);
                match (self.node_layer(k), self.node_layer(p)) {
                    (Some(conv), Some(pool))
                        if single_call(k) && single_call(p) && pool_feeds_nodes =>
                    {
                        fusion::conv_max_pool(conv, pool, training).is_some()
                    }
                    _ => false,
                }
            });
            match fused {
                Some(p) => {
                    fused_into[p] = true;
                    steps.push(Step::ConvMaxPool(k, p));
                }
                None => steps.push(Step::Node(k)),
            }
        }
        steps
    }

    /// Run `f` on node `k`'s layer: the unit itself, or the node's own instance with the weights swapped in.
    fn with_layer<T>(
        &mut self,
        k: usize,
        f: impl FnOnce(&mut dyn Layer) -> Result<T>,
    ) -> Result<T> {
        let Graph { units, nodes, .. } = self;
        let node = &mut nodes[k];
        let Unit::Layer(owner) = &mut units[node.unit] else {
            return Err(Error::Runtime(
                "kerust internal error: a merge node has no layer".into(),
            ));
        };
        match &mut node.instance {
            Instance::Own => f(owner.as_mut()),
            Instance::Shared(inst) => {
                swap_weights(owner.as_mut(), inst.as_mut());
                // the weights go back to their owner even if the layer panics (the bindings catch the panic)
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(inst.as_mut())));
                swap_weights(owner.as_mut(), inst.as_mut());
                r.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            }
            _ => Err(Error::Runtime(
                "kerust internal error: a merge or op node has no layer".into(),
            )),
        }
    }

    /// Forward over `inputs` (one tensor per model input) following `plan`; returns the model's outputs.
    /// `watch` is called with each node's output (a traced pass); `record` keeps a copy of every node's output.
    pub fn forward(
        &mut self,
        inputs: Vec<Tensor>,
        ctx: &mut Ctx,
        plan: &[Step],
        mut watch: Option<Watch>,
        mut record: Option<&mut Vec<Option<Tensor>>>,
    ) -> Result<Vec<Tensor>> {
        let n_in = self.input_shapes.len();
        if inputs.len() != n_in {
            return Err(Error::Value(format!(
                "the model expects {n_in} input(s), received {}",
                inputs.len()
            )));
        }
        let batch = inputs
            .first()
            .and_then(|t| t.shape.first())
            .copied()
            .unwrap_or(0);
        let mut vals: Vec<Option<Tensor>> = inputs.into_iter().map(Some).collect();
        vals.resize_with(n_in + self.nodes.len(), || None);
        let mut left = self.uses.clone();
        let fetch =
            |vals: &mut Vec<Option<Tensor>>, left: &mut Vec<usize>, t: usize| -> Result<Tensor> {
                left[t] = left[t].saturating_sub(1);
                let v = if left[t] == 0 {
                    vals[t].take()
                } else {
                    vals[t].clone()
                };
                v.ok_or_else(|| {
                    Error::Runtime(format!(
                        "kerust internal error: tensor {t} used before it was computed"
                    ))
                })
            };
        if let Some(r) = record.as_deref_mut() {
            r.clear();
            r.resize_with(self.nodes.len(), || None);
        }
        for step in plan {
            match *step {
                Step::Node(k) if self.lent[n_in + k].is_some() => {
                    // a variable its only reader reads in place (see `lend`); a traced pass records its value
                    if let (Some(r), Instance::Var(i), Unit::Weights(w)) = (
                        record.as_deref_mut(),
                        &self.nodes[k].instance,
                        &self.units[self.nodes[k].unit],
                    ) {
                        r[k] = Some(w.read(*i)?);
                    }
                }
                Step::Node(k) if matches!(self.nodes[k].instance, Instance::Op(_)) => {
                    let unit = self.nodes[k].unit;
                    let mut xs: Vec<Arr<f32>> = Vec::with_capacity(self.nodes[k].inputs.len());
                    for idx in 0..self.nodes[k].inputs.len() {
                        let t = self.nodes[k].inputs[idx];
                        xs.push(if self.lent[t].is_some() {
                            Arr::default()
                        } else {
                            op_nodes::arr(fetch(&mut vals, &mut left, t)?)
                        });
                    }
                    self.lend(k, &mut xs, false)?;
                    let result = match (&mut self.nodes[k].instance, &self.units[unit]) {
                        (Instance::Op(cache), Unit::Op(o)) => {
                            cache.forward(&o.op, &mut xs, batch, ctx.training, ctx.rng)
                        }
                        _ => Err(Error::Runtime(
                            "kerust internal error: an op node without its op".into(),
                        )),
                    };
                    self.lend(k, &mut xs, true)?;
                    let y = result?;
                    if let Some(w) = watch.as_deref_mut() {
                        let u = &self.units[unit];
                        w(u.name(), u.class_name(), &y);
                    }
                    if let Some(r) = record.as_deref_mut() {
                        r[k] = Some(y.clone());
                    }
                    vals[n_in + k] = Some(y);
                }
                Step::Node(k) => {
                    let ins: Vec<Tensor> = self.nodes[k]
                        .inputs
                        .iter()
                        .map(|&t| fetch(&mut vals, &mut left, t))
                        .collect::<Result<_>>()?;
                    let unit = self.nodes[k].unit;
                    let y = match &mut self.nodes[k].instance {
                        Instance::Merge(m) => m.forward(ins, ctx.training)?,
                        Instance::Var(i) => {
                            let Unit::Weights(w) = &self.units[unit] else {
                                return Err(Error::Runtime(
                                    "kerust internal error: a variable without its layer".into(),
                                ));
                            };
                            w.read(*i)?
                        }
                        Instance::SelectTraining => {
                            let mut it = ins.into_iter();
                            let (a, b) =
                                (it.next().unwrap_or_default(), it.next().unwrap_or_default());
                            if ctx.training {
                                a
                            } else {
                                b
                            }
                        }
                        _ => self.with_layer(k, |l| l.forward_inputs(ins, ctx))?,
                    };
                    if let Some(w) = watch.as_deref_mut() {
                        let u = &self.units[self.nodes[k].unit];
                        w(u.name(), u.class_name(), &y);
                    }
                    if let Some(r) = record.as_deref_mut() {
                        r[k] = Some(y.clone());
                    }
                    vals[n_in + k] = Some(y);
                }
                Step::ConvMaxPool(k, p) => {
                    let t = self.nodes[k].inputs[0];
                    let x = fetch(&mut vals, &mut left, t)?;
                    let training = ctx.training;
                    let window = match (self.node_layer(k), self.node_layer(p)) {
                        (Some(conv), Some(pool)) => fusion::conv_max_pool(conv, pool, training),
                        _ => None,
                    }
                    .ok_or_else(|| {
                        Error::Runtime(
                            "kerust internal error: a fused step that does not fuse".into(),
                        )
                    })?;
                    let y = self.with_layer(k, |l| fusion::forward(l, x, &window, training))?;
                    vals[n_in + p] = Some(y);
                }
            }
        }
        self.outputs
            .iter()
            .chain(&self.added_losses)
            .map(|&t| fetch(&mut vals, &mut left, t))
            .collect()
    }

    /// How many tensors a forward pass returns after the outputs (the added losses).
    pub fn added_loss_count(&self) -> usize {
        self.added_losses.len()
    }

    /// Backward after a training `forward` with the same `plan`: `out_grads[j]` is dL/d(output j) (None: no
    /// loss reads it), dL/d(pre-activation) where `fused[j]`. Adds into every weight's gradient. Returns the
    /// gradients reaching the model's inputs when `want_input_grads` (else empty tensors). `record` gets
    /// dL/d(each node's output).
    pub fn backward(
        &mut self,
        out_grads: Vec<Option<Tensor>>,
        fused: &[bool],
        plan: &[Step],
        want_input_grads: bool,
        mut record: Option<&mut Vec<Option<Tensor>>>,
    ) -> Result<Vec<Tensor>> {
        let n_in = self.input_shapes.len();
        let mut grads: Vec<Option<Tensor>> = (0..n_in + self.nodes.len()).map(|_| None).collect();
        let mut fused_node = vec![false; self.nodes.len()];
        let fused_all: Vec<bool> = fused
            .iter()
            .copied()
            .chain(std::iter::repeat(false))
            .take(self.outputs.len() + self.added_losses.len())
            .collect();
        for ((&t, g), &f) in self
            .outputs
            .iter()
            .chain(&self.added_losses)
            .zip(out_grads)
            .zip(&fused_all)
        {
            if let Some(g) = g {
                accumulate(&mut grads[t], g)?;
                if f && t >= n_in {
                    fused_node[t - n_in] = true;
                }
            }
        }
        if let Some(r) = record.as_deref_mut() {
            r.clear();
            r.resize_with(self.nodes.len(), || None);
        }
        for step in plan.iter().rev() {
            let (k, out) = match *step {
                Step::Node(k) => (k, n_in + k),
                Step::ConvMaxPool(k, p) => (k, n_in + p),
            };
            let Some(g) = grads[out].take() else {
                continue; // nothing downstream has a loss
            };
            if let Some(r) = record.as_deref_mut() {
                r[out - n_in] = Some(g.clone());
            }
            let ins = self.nodes[k].inputs.clone();
            if matches!(self.nodes[k].instance, Instance::Op(_)) && !fused_node[k] {
                let need: Vec<bool> = ins.iter().map(|&t| t >= n_in || want_input_grads).collect();
                let direct = record.is_none();
                for (t, gi) in ins
                    .iter()
                    .copied()
                    .zip(self.op_backward(k, g, &need, direct)?)
                {
                    if let Some(gi) = gi {
                        if t >= n_in || want_input_grads {
                            accumulate(&mut grads[t], gi)?;
                        }
                    }
                }
                continue;
            }
            let need = want_input_grads || ins.iter().any(|&t| t >= n_in);
            let in_grads: Vec<Option<Tensor>> = match *step {
                Step::ConvMaxPool(..) => {
                    vec![Some(self.with_layer(k, |l| fusion::backward(l, g, need))?)]
                }
                Step::Node(_) => {
                    let unit = self.nodes[k].unit;
                    match &mut self.nodes[k].instance {
                        Instance::Merge(m) => m.backward(g)?.into_iter().map(Some).collect(),
                        Instance::Op(cache) if fused_node[k] => {
                            // a softmax / sigmoid op fused with the loss: `g` is already the gradient of its
                            // input (the op's cache holds no lent variable: lending stops after forward)
                            cache.clear();
                            accumulate(&mut grads[ins[0]], g)?;
                            continue;
                        }
                        Instance::Var(i) => {
                            let i = *i;
                            if let Unit::Weights(w) = &mut self.units[unit] {
                                w.add_grad(i, g)?;
                            }
                            continue;
                        }
                        Instance::SelectTraining => {
                            // backward follows a training forward: the gradient goes to the training branch
                            accumulate(&mut grads[ins[0]], g)?;
                            continue;
                        }
                        _ if fused_node[k] => {
                            vec![Some(
                                self.with_layer(k, |l| l.backward_preactivation(g, need))?,
                            )]
                        }
                        _ => self.with_layer(k, |l| l.backward_inputs(g, need))?,
                    }
                }
            };
            if need {
                for (t, gi) in ins.into_iter().zip(in_grads) {
                    if let Some(gi) = gi.filter(|_| t >= n_in || want_input_grads) {
                        accumulate(&mut grads[t], gi)?;
                    }
                }
            }
        }
        Ok(grads
            .into_iter()
            .take(n_in)
            .map(Option::unwrap_or_default)
            .collect())
    }

    /// The first node of every unit (its output is the unit's `output` in Keras).
    pub fn first_nodes(&self) -> Vec<Option<usize>> {
        let mut first = vec![None; self.units.len()];
        for (k, n) in self.nodes.iter().enumerate() {
            if first[n.unit].is_none() {
                first[n.unit] = Some(k);
            }
        }
        first
    }

    pub fn params(&self) -> impl Iterator<Item = &Param> {
        self.units.iter().flat_map(|u| u.params().iter())
    }

    pub fn params_mut(&mut self) -> impl Iterator<Item = &mut Param> {
        self.units
            .iter_mut()
            .flat_map(|u| u.params_mut().iter_mut())
    }

    pub fn set_unit_trainable(&mut self, u: usize, trainable: bool) -> Result<()> {
        let unit = self
            .units
            .get_mut(u)
            .ok_or_else(|| Error::Value(format!("no layer at index {u}")))?;
        match unit {
            Unit::Layer(l) => l.set_trainable(trainable),
            Unit::Weights(w) => {
                for p in w.params.iter_mut() {
                    p.trainable = trainable && p.trainable_kind;
                }
            }
            _ => {}
        }
        for n in self.nodes.iter_mut().filter(|n| n.unit == u) {
            if let Instance::Shared(l) = &mut n.instance {
                l.set_trainable(trainable);
            }
        }
        Ok(())
    }

    /// Forget what the `stateful` layers of unit `only` (every unit: None) carry between batches (Keras's
    /// `reset_states`).
    pub fn reset_states(&mut self, only: Option<usize>) {
        let pick = |u: usize| only.is_none_or(|o| o == u);
        for (i, u) in self.units.iter_mut().enumerate() {
            if let (true, Unit::Layer(l)) = (pick(i), u) {
                l.reset_states();
            }
        }
        for n in self.nodes.iter_mut() {
            if let (true, Instance::Shared(l)) = (pick(n.unit), &mut n.instance) {
                l.reset_states();
            }
        }
    }

    pub fn clear_caches(&mut self) {
        for u in self.units.iter_mut() {
            if let Unit::Layer(l) = u {
                l.clear_cache();
            }
        }
        for n in self.nodes.iter_mut() {
            match &mut n.instance {
                Instance::Shared(l) => l.clear_cache(),
                Instance::Merge(m) => m.clear_cache(),
                Instance::Op(c) => c.clear(),
                Instance::Own | Instance::Var(_) | Instance::SelectTraining => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: Value) -> GraphSpec {
        GraphSpec::from_value(&v).unwrap()
    }

    fn batch(shape: &[usize], seed: u64) -> Tensor {
        let mut r = Rng::new(seed);
        let n = shape.iter().product();
        Tensor::new(shape.to_vec(), (0..n).map(|_| r.normal()).collect()).unwrap()
    }

    fn run(
        g: &mut Graph,
        x: Vec<Tensor>,
        w: &[f32],
        trace: bool,
    ) -> (Vec<f32>, Vec<Vec<f32>>, Vec<Tensor>) {
        let mut rng = Rng::new(1);
        let mut ctx = Ctx {
            training: true,
            rng: &mut rng,
        };
        let plan = g.plan(true, trace);
        let y = g.forward(x, &mut ctx, &plan, None, None).unwrap();
        for p in g.params_mut() {
            p.grad.iter_mut().for_each(|v| *v = 0.0);
        }
        let grad = Tensor::new(y[0].shape.clone(), w.to_vec()).unwrap();
        let dx = g
            .backward(vec![Some(grad)], &[false], &plan, true, None)
            .unwrap();
        (
            y[0].data.clone(),
            g.params().map(|p| p.grad.clone()).collect(),
            dx,
        )
    }

    /// A residual block with a layer called twice: x -> d (shared) -> d -> Add(x, .) -> out.
    fn residual() -> Graph {
        let s = spec(json!({
            "layers": [
                {"class_name": "Dense", "config": {"name": "d", "units": 3, "activation": "tanh"}},
                {"class_name": "Add", "config": {"name": "add"}},
                {"class_name": "Dense", "config": {"name": "out", "units": 2}}
            ],
            "inputs": [[3]],
            "nodes": [{"layer": 0, "inputs": [0]}, {"layer": 0, "inputs": [1]}, {"layer": 1, "inputs": [0, 2]},
                      {"layer": 2, "inputs": [3]}],
            "outputs": [4]
        }));
        Graph::new(s, &mut Rng::new(3)).unwrap()
    }

    #[test]
    fn shared_layer_and_fan_out_gradients_match_finite_differences() {
        let mut g = residual();
        let x = batch(&[4, 3], 5);
        let w: Vec<f32> = (0..8).map(|i| (i as f32 - 3.5) / 4.0).collect();
        let (_, grads, dx) = run(&mut g, vec![x.clone()], &w, false);
        let loss = |g: &mut Graph, x: &Tensor| -> f64 {
            let mut rng = Rng::new(1);
            let mut ctx = Ctx {
                training: false,
                rng: &mut rng,
            };
            let plan = g.plan(false, false);
            let y = g
                .forward(vec![x.clone()], &mut ctx, &plan, None, None)
                .unwrap();
            y[0].data
                .iter()
                .zip(&w)
                .map(|(a, b)| *a as f64 * *b as f64)
                .sum()
        };
        let h = 1e-2f32;
        for (pi, param_grads) in grads.iter().enumerate() {
            for (j, &grad) in param_grads.iter().enumerate() {
                let orig = g.params().nth(pi).unwrap().value[j];
                g.params_mut().nth(pi).unwrap().value[j] = orig + h;
                let lp = loss(&mut g, &x);
                g.params_mut().nth(pi).unwrap().value[j] = orig - h;
                let lm = loss(&mut g, &x);
                g.params_mut().nth(pi).unwrap().value[j] = orig;
                let num = (lp - lm) / (2.0 * h as f64);
                let ana = grad as f64;
                assert!(
                    (num - ana).abs() <= 2e-2 * num.abs().max(1.0),
                    "param {pi}[{j}]: {num} vs {ana}"
                );
            }
        }
        for j in 0..x.data.len() {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp.data[j] += h;
            xm.data[j] -= h;
            let num = (loss(&mut g, &xp) - loss(&mut g, &xm)) / (2.0 * h as f64);
            assert!(
                (num - dx[0].data[j] as f64).abs() <= 2e-2 * num.abs().max(1.0),
                "dx[{j}]"
            );
        }
        // the shared Dense holds one set of weights: kernel, bias, then the output layer's
        assert_eq!(g.params().count(), 4);
    }

    #[test]
    fn conv_pool_fusion_is_a_rewrite_wherever_the_pattern_appears() {
        // two branches, each a convolution followed by a max pooling, concatenated
        let conv = |name: &str| {
            json!({"class_name": "Conv2D", "config": {"name": name, "filters": 3,
                                        "kernel_size": 3, "activation": "relu"}})
        };
        let pool = |name: &str| json!({"class_name": "MaxPooling2D", "config": {"name": name, "pool_size": 2}});
        let s = spec(json!({
            "layers": [conv("c1"), pool("p1"), conv("c2"), pool("p2"),
                       {"class_name": "Concatenate", "config": {"name": "cat"}},
                       {"class_name": "Flatten", "config": {"name": "f"}},
                       {"class_name": "Dense", "config": {"name": "o", "units": 2}}],
            "inputs": [[8, 8, 2]],
            "nodes": [{"layer": 0, "inputs": [0]}, {"layer": 1, "inputs": [1]}, {"layer": 2, "inputs": [0]},
                      {"layer": 3, "inputs": [3]}, {"layer": 4, "inputs": [2, 4]}, {"layer": 5, "inputs": [5]},
                      {"layer": 6, "inputs": [6]}],
            "outputs": [7]
        }));
        let mut g = Graph::new(s, &mut Rng::new(2)).unwrap();
        assert_eq!(
            g.plan(true, false).to_vec(),
            vec![
                Step::ConvMaxPool(0, 1),
                Step::ConvMaxPool(2, 3),
                Step::Node(4),
                Step::Node(5),
                Step::Node(6)
            ]
        );
        let x = batch(&[5, 8, 8, 2], 9);
        let w: Vec<f32> = (0..10).map(|i| (i as f32 - 4.5) / 5.0).collect();
        let fused = run(&mut g, vec![x.clone()], &w, false);
        let plain = run(&mut g, vec![x], &w, true);
        assert_eq!(fused.0, plain.0); // bit for bit
        assert_eq!(fused.1, plain.1);
        assert_eq!(fused.2, plain.2);
    }

    #[test]
    fn bad_graphs_are_refused_before_building() {
        let dense = json!({"class_name": "Dense", "config": {"name": "d", "units": 2}});
        let bad = |nodes: Value, outputs: Value| {
            Graph::new(
                spec(
                    json!({"layers": [dense.clone()], "inputs": [[3]], "nodes": nodes, "outputs": outputs}),
                ),
                &mut Rng::new(0),
            )
        };
        assert!(bad(json!([{"layer": 0, "inputs": [1]}]), json!([1])).is_err()); // reads its own output
        assert!(bad(json!([{"layer": 1, "inputs": [0]}]), json!([1])).is_err()); // no such layer
        assert!(bad(json!([{"layer": 0, "inputs": [0]}]), json!([5])).is_err()); // no such output
        assert!(bad(json!([{"layer": 0, "inputs": [0, 0]}]), json!([1])).is_err()); // two inputs to a Dense
                                                                                    // a shared Dense called on an input its weights do not fit
        let err = Graph::new(
            spec(json!({"layers": [dense], "inputs": [[3], [4]],
                        "nodes": [{"layer": 0, "inputs": [0]}, {"layer": 0, "inputs": [1]}], "outputs": [2, 3]})),
            &mut Rng::new(0),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("'d'") && err.contains("(None, 4)"), "{err}");
    }
}
