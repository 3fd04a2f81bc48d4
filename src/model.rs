//! A model over a graph of layers (`crate::graph`): build from plain data, and the train / evaluate / predict
//! loops with one loss (and its metrics) per output. No Python here: progress and interruption go through a
//! hook closure the bindings provide.

use crate::error::{Error, Result};
use crate::graph::{Graph, GraphSpec, Step, Unit, Watch};
use crate::layers::{Ctx, Param};
use crate::losses::Loss;
use crate::metrics::{self, Metric};
use crate::optimizers::Optimizer;
use crate::rng::Rng;
use crate::tensor::{shape_str, Tensor};
use crate::traced_loss::{Reduction, TracedLoss};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Named values, in order: `loss` first, then each output's loss (several outputs), then each metric.
pub type Logs = Vec<(String, f64)>;

/// Called between batches with (batches done, running logs). An `Err` stops the loop after the current batch.
pub type Hook<'a> = &'a mut dyn FnMut(usize, &Logs) -> Result<()>;

/// How often the hook runs at most (besides the last batch): keeps Python out of the batch loop.
const HOOK_INTERVAL: Duration = Duration::from_millis(100);

/// A user's array as the engine reads it: contiguous f32, batch first.
#[derive(Clone, Copy, Debug)]
pub struct Data<'a> {
    pub shape: &'a [usize],
    pub data: &'a [f32],
}

impl<'a> Data<'a> {
    pub fn new(shape: &'a [usize], data: &'a [f32]) -> Result<Self> {
        if shape.is_empty() || shape.iter().product::<usize>() != data.len() {
            return Err(Error::Value(format!(
                "expected an array with a batch axis, received shape {shape:?} with {} values",
                data.len()
            )));
        }
        Ok(Data { shape, data })
    }
    pub fn len(&self) -> usize {
        self.shape[0]
    }
    pub fn is_empty(&self) -> bool {
        self.shape[0] == 0
    }
    fn row(&self) -> usize {
        self.shape[1..].iter().product()
    }
    /// Copy the samples `idx` into a batch tensor.
    fn gather(&self, idx: &[usize]) -> Tensor {
        let row = self.row();
        let mut data = Vec::with_capacity(idx.len() * row);
        for &i in idx {
            data.extend_from_slice(&self.data[i * row..(i + 1) * row]);
        }
        let mut shape = self.shape.to_vec();
        shape[0] = idx.len();
        Tensor { shape, data }
    }
    fn range(&self, start: usize, n: usize) -> Tensor {
        let row = self.row();
        let mut shape = self.shape.to_vec();
        shape[0] = n;
        // copied over whole: the slice can take a buffer an earlier inference slice gave back
        let mut t = Tensor::for_overwrite(shape);
        t.data
            .copy_from_slice(&self.data[start * row..(start + n) * row]);
        t
    }
}

/// The sample count shared by every array of a structure (x inputs, y outputs).
fn cardinality(what: &str, arrays: &[Data]) -> Result<usize> {
    let n = arrays.first().map(Data::len).unwrap_or(0);
    if arrays.iter().any(|a| a.len() != n) {
        let sizes: Vec<String> = arrays.iter().map(|a| a.len().to_string()).collect();
        return Err(Error::Value(format!(
            "Data cardinality is ambiguous: {what} sizes: {}. Make sure all arrays contain the same number of \
             samples.",
            sizes.join(", ")
        )));
    }
    Ok(n)
}

/// Per output, its sample weights (or none).
pub type SampleWeights<'a> = [Option<&'a [f32]>];

/// (iterations, slot names, for each trainable weight its slot vectors in slot-name order).
pub type OptimizerState = (u64, Vec<&'static str>, Vec<Vec<Vec<f32>>>);

/// What `compile` says about one output: its loss (None: the output is not trained), the loss's weight in the
/// total, the History name of its loss (several outputs: `"<output>_loss"`), and its metric specs.
pub struct HeadSpec {
    pub loss: Option<Value>,
    pub weight: f64,
    pub loss_name: Option<String>,
    pub metrics: Vec<Value>,
}

/// An output's loss: one of the engine's, or a traced user function.
enum HeadLoss {
    Builtin(Loss),
    Traced(Box<TracedLoss>),
}

impl HeadLoss {
    fn from_value(v: &Value) -> Result<Self> {
        match v.get("graph") {
            Some(spec) => {
                let reduction = Reduction::from_name(v.get("reduction").and_then(Value::as_str))?;
                let traced =
                    TracedLoss::from_spec(GraphSpec::from_value(spec)?)?.with_reduction(reduction);
                Ok(HeadLoss::Traced(Box::new(traced)))
            }
            None => Ok(HeadLoss::Builtin(Loss::from_value(v)?)),
        }
    }

    fn check_targets(&self, y: &Tensor, out_shape: &[usize]) -> Result<()> {
        match self {
            HeadLoss::Builtin(l) => l.check_targets(y, out_shape),
            HeadLoss::Traced(t) => t.check_targets(y),
        }
    }

    fn fuses_with(&self, act: crate::activations::Activation) -> bool {
        matches!(self, HeadLoss::Builtin(l) if l.fuses_with(act))
    }

    fn forward_backward(
        &self,
        pred: &Tensor,
        y: &Tensor,
        fused: bool,
        sw: Option<&[f32]>,
    ) -> Result<(f64, Tensor)> {
        match self {
            HeadLoss::Builtin(l) => l.forward_backward(pred, y, fused, sw),
            HeadLoss::Traced(t) => t.forward_backward(pred, y, sw),
        }
    }
}

struct Head {
    loss: Option<HeadLoss>,
    weight: f64,
    loss_name: Option<String>,
    metric_specs: Vec<Value>,
}

pub struct Compiled {
    heads: Vec<Head>,
    pub optimizer: Optimizer,
    /// The resolved metrics (for the data last prepared), with the output each reads.
    metrics: Vec<(usize, Metric)>,
}

#[derive(Default)]
struct EpochState {
    order: Vec<usize>,
    cursor: usize,
    /// Batches run since the logs were last reset (the epoch's step count).
    steps: usize,
    sums: Sums,
}

/// Running sums for logs: total loss, each output's loss, each metric's state.
#[derive(Default, Clone)]
struct Sums {
    loss: f64,
    head_losses: Vec<f64>,
    seen: f64,
    metrics: Vec<Vec<f64>>,
}

pub struct LayerInfo {
    pub name: String,
    pub class_name: &'static str,
    pub output_shape: Vec<usize>,
    pub params: usize,
    pub trainable_params: usize,
}

/// What `Model::inspect` saw: the loss (with weight penalties), every layer's output and the gradient of the loss
/// with respect to it (at its first call), the gradients with respect to the model's inputs, and every weight's
/// gradient (Keras order).
#[derive(Default)]
pub struct Inspection {
    pub loss: f64,
    pub outputs: Vec<Tensor>,
    pub output_grads: Vec<Tensor>,
    pub input_grads: Vec<Tensor>,
    pub weight_grads: Vec<Tensor>,
}

/// Samples per inference slice (see `Model::infer_into`).
const INFERENCE_SLICE: usize = 16 * crate::kernels::SAMPLES_PER_CHUNK;
// Slicing keeps every output bit only if slices split no layer's fixed chunk (samples or Dense rows).
const _: () = assert!(
    INFERENCE_SLICE.is_multiple_of(crate::kernels::SAMPLES_PER_CHUNK)
        && INFERENCE_SLICE.is_multiple_of(crate::layers::dense::ROWS_PER_CHUNK)
);

pub struct Model {
    graph: Graph,
    output_shapes: Vec<Vec<usize>>,
    non_finite_source: Option<String>,
    rng: Rng,
    shuffle_rng: Rng,
    compiled: Option<Compiled>,
    epoch: EpochState,
}

struct Throttle(Instant);

impl Throttle {
    fn due(&mut self, last: bool) -> bool {
        if last || self.0.elapsed() >= HOOK_INTERVAL {
            self.0 = Instant::now();
            true
        } else {
            false
        }
    }
}

fn batch_size_ok(batch_size: usize) -> Result<()> {
    if batch_size == 0 {
        return Err(Error::Value(
            "batch_size must be a positive integer, received 0".into(),
        ));
    }
    Ok(())
}

impl Model {
    /// A Sequential model: every layer from its `(class_name, config)`, for samples of `input_shape`.
    pub fn new(specs: &[(String, Value)], input_shape: &[usize], seed: u64) -> Result<Self> {
        if specs.is_empty() {
            return Err(Error::Value(
                "a Sequential model needs at least one layer".into(),
            ));
        }
        Self::from_graph(GraphSpec::chain(specs, input_shape), seed)
    }

    pub fn from_graph(spec: GraphSpec, seed: u64) -> Result<Self> {
        let mut rng = Rng::new(seed);
        let mut init_rng = rng.fork();
        let shuffle_rng = rng.fork();
        let graph = Graph::new(spec, &mut init_rng)?;
        Ok(Model {
            output_shapes: graph.output_shapes(),
            graph,
            non_finite_source: None,
            rng,
            shuffle_rng,
            compiled: None,
            epoch: EpochState::default(),
        })
    }

    pub fn input_shapes(&self) -> &[Vec<usize>] {
        self.graph.input_shapes()
    }

    pub fn output_shapes(&self) -> &[Vec<usize>] {
        &self.output_shapes
    }

    pub fn layer_info(&self) -> Vec<LayerInfo> {
        self.graph
            .units()
            .iter()
            .zip(self.graph.unit_output_shapes())
            .map(|(u, s)| LayerInfo {
                name: u.name().to_string(),
                class_name: u.class_name(),
                output_shape: s,
                params: u.params().iter().map(|p| p.value.len()).sum(),
                trainable_params: u
                    .params()
                    .iter()
                    .filter(|p| p.trainable)
                    .map(|p| p.value.len())
                    .sum(),
            })
            .collect()
    }

    /// One loss for a one-output model.
    pub fn compile(
        &mut self,
        loss: &Value,
        optimizer: &Value,
        metric_specs: &[Value],
    ) -> Result<()> {
        let head = HeadSpec {
            loss: Some(loss.clone()),
            weight: 1.0,
            loss_name: None,
            metrics: metric_specs.to_vec(),
        };
        self.compile_heads(vec![head], optimizer)
    }

    /// One `HeadSpec` per output.
    pub fn compile_heads(&mut self, heads: Vec<HeadSpec>, optimizer: &Value) -> Result<()> {
        if heads.len() != self.output_shapes.len() {
            return Err(Error::Value(format!(
                "compile: the model has {} output(s), received losses for {}",
                self.output_shapes.len(),
                heads.len()
            )));
        }
        if heads.iter().all(|h| h.loss.is_none()) {
            return Err(Error::Value(
                "compile: a `loss` is required for at least one output".into(),
            ));
        }
        let mut out = Vec::with_capacity(heads.len());
        for h in heads {
            for m in &h.metrics {
                metrics::check(m)?;
            }
            if !(h.weight.is_finite()) {
                return Err(Error::Value(format!(
                    "loss_weights must be finite numbers, received {}",
                    h.weight
                )));
            }
            out.push(Head {
                loss: h.loss.as_ref().map(HeadLoss::from_value).transpose()?,
                weight: h.weight,
                loss_name: h.loss_name,
                metric_specs: h.metrics,
            });
        }
        let optimizer = Optimizer::from_value(optimizer)?;
        self.compiled = Some(Compiled {
            heads: out,
            optimizer,
            metrics: Vec::new(),
        });
        Ok(())
    }

    pub fn compiled(&self) -> Option<&Compiled> {
        self.compiled.as_ref()
    }

    pub fn optimizer_mut(&mut self) -> Result<&mut Optimizer> {
        self.compiled
            .as_mut()
            .map(|c| &mut c.optimizer)
            .ok_or_else(not_compiled)
    }

    fn check_x(&self, x: &[Data]) -> Result<usize> {
        let shapes = self.graph.input_shapes();
        if x.len() != shapes.len() {
            return Err(Error::Value(format!(
                "The model expects {} input arrays, but it received {}",
                shapes.len(),
                x.len()
            )));
        }
        for (i, (d, s)) in x.iter().zip(shapes).enumerate() {
            if d.shape[1..] != s[..] {
                let layer = self.graph.first_reader(i).unwrap_or("input");
                let which = if shapes.len() > 1 {
                    format!("Input {i} of the model (read by layer \"{layer}\")")
                } else {
                    format!("Input 0 of layer \"{layer}\"")
                };
                return Err(Error::Value(format!(
                    "{which} is incompatible with the layer: expected shape {}, found shape {}",
                    shape_str(s),
                    shape_str(&d.shape[1..])
                )));
            }
        }
        cardinality("x", x)
    }

    /// One target array per output and one sample weight (or none) per output, each of `n` samples.
    fn check_y(&self, y: &[Data], sample_weight: &SampleWeights, n: usize) -> Result<()> {
        let outs = self.output_shapes.len();
        if y.len() != outs {
            return Err(Error::Value(format!(
                "The model has {outs} output(s), but it received {} target arrays",
                y.len()
            )));
        }
        let ny = cardinality("y", y)?;
        if ny != n {
            return Err(Error::Value(format!(
                "Data cardinality is ambiguous: x sizes: {n}, y sizes: {ny}. Make sure all arrays contain the \
                 same number of samples."
            )));
        }
        if sample_weight.len() > outs {
            return Err(Error::Value(format!(
                "sample_weight has {} entries for a model with {outs} output(s)",
                sample_weight.len()
            )));
        }
        for w in sample_weight.iter().flatten() {
            if w.len() != n {
                return Err(Error::Value(format!(
                    "sample_weight has {} values for {n} samples",
                    w.len()
                )));
            }
        }
        Ok(())
    }

    /// Validate a training/evaluation pair and resolve "accuracy" for these targets. Call before the loops.
    pub fn prepare(&mut self, x: &[Data], y: &[Data], sample_weight: &SampleWeights) -> Result<()> {
        let n = self.check_x(x)?;
        self.check_y(y, sample_weight, n)?;
        let outs = self.output_shapes.clone();
        let c = self.compiled.as_mut().ok_or_else(not_compiled)?;
        let mut resolved = Vec::new();
        for (j, (head, (yd, out))) in c.heads.iter().zip(y.iter().zip(&outs)).enumerate() {
            if let Some(loss) = &head.loss {
                let probe = Tensor {
                    shape: yd.shape.to_vec(),
                    data: yd.data.to_vec(),
                };
                loss.check_targets(&probe, out)?;
            }
            for m in &head.metric_specs {
                resolved.push((j, metrics::resolve(m, &yd.shape[1..], out)?));
            }
        }
        c.metrics = resolved;
        Ok(())
    }

    /// A training forward pass over the batch `batch()` builds.
    /// Returns the predictions and the plan the pass ran (the backward pass must follow the same one: a traced
    /// replay runs unfused).
    fn forward_training(
        &mut self,
        batch: &dyn Fn() -> Vec<Tensor>,
    ) -> Result<(Vec<Tensor>, Arc<[Step]>)> {
        // In training, note where non-finite values first appeared, so a NaN loss can be traced to a layer.
        // Only the predictions are checked each step; when one is not finite, the same pass is run again from
        // the same state (random stream, so the same dropout masks, and the statistics layers update in
        // forward, BatchNormalization's moving averages) checking every layer's output. This keeps a full pass
        // over every activation out of the steady state; the batch is built again for the replay rather than
        // copied every step. A non-finite value that a layer absorbs before the prediction (a max-pool window
        // where NaN never wins) is not traced: the loss stays finite then.
        let watch = self.non_finite_source.is_none();
        let replay = watch.then(|| (self.rng.clone(), self.self_updated_stats()));
        let h = self.forward_pass(batch(), true, false)?;
        if let Some((rng, stats)) = replay {
            if !h.iter().all(|t| all_finite(&t.data)) {
                self.rng = rng;
                let params = self.graph.params_mut();
                for (p, v) in params.filter(|p| !p.trainable_kind).zip(stats) {
                    p.value = v;
                }
                let traced = self.forward_pass(batch(), true, true)?;
                return Ok((traced, self.graph.plan(true, true)));
            }
        }
        Ok((h, self.graph.plan(true, false)))
    }

    /// Values of the weights a layer updates itself during a training forward pass (not by gradients).
    fn self_updated_stats(&self) -> Vec<Vec<f32>> {
        self.graph
            .params()
            .filter(|p| !p.trainable_kind)
            .map(|p| p.value.clone())
            .collect()
    }

    fn forward_pass(&mut self, x: Vec<Tensor>, training: bool, trace: bool) -> Result<Vec<Tensor>> {
        if trace && !x.iter().all(|t| all_finite(&t.data)) {
            self.non_finite_source = Some("the input batch".into());
        }
        let plan = self.graph.plan(training, trace);
        let mut ctx = Ctx {
            training,
            rng: &mut self.rng,
        };
        let source = &mut self.non_finite_source;
        let mut watch = |name: &str, class: &'static str, y: &Tensor| {
            if source.is_none() && !all_finite(&y.data) {
                *source = Some(format!("layer '{name}' ({class})"));
            }
        };
        let watch: Option<Watch> = if trace { Some(&mut watch) } else { None };
        self.graph.forward(x, &mut ctx, &plan, watch, None)
    }

    /// Inference on samples `start..start + n`, appended to `out` (one buffer per output). The batch goes
    /// through the network in slices of `INFERENCE_SLICE` samples: each layer's output for a slice stays in
    /// cache for the next layer and its buffers are reused from the allocator instead of fresh pages, where a
    /// whole predict batch (1000 images: 86 MB after the seed CNN's first layer) would stream through memory.
    /// A multiple of SAMPLES_PER_CHUNK, so the per-chunk arithmetic (and so every output bit) is the same as
    /// with one big batch.
    fn infer_into(
        &mut self,
        x: &[Data],
        start: usize,
        n: usize,
        out: &mut [Vec<f32>],
    ) -> Result<f64> {
        let mut added = 0.0;
        let end = start + n;
        let mut s = start;
        // a graph whose ops mix samples (a reduction over the batch) runs each batch whole, as Keras does
        let slice = if self.graph.batch_local() {
            INFERENCE_SLICE
        } else {
            n.max(1)
        };
        while s < end {
            let len = slice.min(end - s);
            let batch = x.iter().map(|d| d.range(s, len)).collect();
            let mut ys = self.forward_pass(batch, false, false)?;
            added += self.split_added_losses(&mut ys).0;
            for (o, y) in out.iter_mut().zip(ys) {
                o.extend_from_slice(&y.data);
                y.recycle();
            }
            s += len;
        }
        // the sum of the added losses (`add_loss`) of this batch, which runs whole when there are any
        Ok(added)
    }

    /// Take the added losses (`add_loss`) off the end of a forward pass's results: the sum of their values,
    /// and their gradients (ones: d(sum)/d(value)) to append to the outputs' gradients.
    fn split_added_losses(&self, preds: &mut Vec<Tensor>) -> (f64, Vec<Option<Tensor>>) {
        let n_out = preds.len().saturating_sub(self.graph.added_loss_count());
        let added = preds.split_off(n_out);
        let total = added
            .iter()
            .map(|t| t.data.iter().map(|&v| v as f64).sum::<f64>())
            .sum();
        let grads = added
            .into_iter()
            .map(|t| {
                let mut g = Tensor::zeros(t.shape);
                g.data.iter_mut().for_each(|v| *v = 1.0);
                Some(g)
            })
            .collect();
        (total, grads)
    }

    /// Where non-finite values first appeared in the training forward passes since the model was built or
    /// last asked (e.g. "layer 'dense_1' (Dense)"); None while everything stayed finite.
    pub fn take_non_finite_source(&mut self) -> Option<String> {
        self.non_finite_source.take()
    }

    fn fresh_sums(&self) -> Sums {
        let c = self.compiled.as_ref();
        Sums {
            loss: 0.0,
            head_losses: vec![0.0; c.map(|c| c.heads.len()).unwrap_or(0)],
            seen: 0.0,
            metrics: c
                .map(|c| c.metrics.iter().map(|(_, m)| m.initial_state()).collect())
                .unwrap_or_default(),
        }
    }

    /// Per output: whether its loss fuses with the activation of the layer that produced it.
    fn fused_losses(&self) -> Vec<bool> {
        let Some(c) = &self.compiled else {
            return Vec::new();
        };
        c.heads
            .iter()
            .enumerate()
            .map(|(j, h)| match (&h.loss, self.graph.output_activation(j)) {
                (Some(loss), Some((act, only_loss))) => only_loss && loss.fuses_with(act),
                _ => false,
            })
            .collect()
    }

    /// Losses of one batch: (total without penalties, each output's unweighted loss, each output's gradient).
    fn batch_losses(
        &self,
        preds: &[Tensor],
        ys: &[Tensor],
        fused: &[bool],
        sw: &[Option<Vec<f32>>],
        want_grads: bool,
    ) -> Result<(f64, Vec<f64>, Vec<Option<Tensor>>)> {
        let c = self.compiled.as_ref().ok_or_else(not_compiled)?;
        let mut total = 0.0;
        let mut each = Vec::with_capacity(c.heads.len());
        let mut grads = Vec::with_capacity(c.heads.len());
        for (j, head) in c.heads.iter().enumerate() {
            let Some(loss) = &head.loss else {
                each.push(0.0);
                grads.push(None);
                continue;
            };
            let w = sw.get(j).and_then(|w| w.as_deref());
            let (value, mut grad) = loss.forward_backward(&preds[j], &ys[j], fused[j], w)?;
            total += head.weight * value;
            each.push(value);
            if want_grads {
                if head.weight != 1.0 {
                    let scale = head.weight as f32;
                    grad.data.iter_mut().for_each(|g| *g *= scale);
                }
                grads.push(Some(grad));
            } else {
                grads.push(None);
            }
        }
        Ok((total, each, grads))
    }

    fn penalty(&self) -> f64 {
        self.graph
            .params()
            .filter_map(|p| p.regularizer.map(|r| r.penalty(&p.value)))
            .sum()
    }

    /// Add one batch into running sums.
    fn add_batch(
        &self,
        sums: &mut Sums,
        total: f64,
        each: &[f64],
        preds: &[Tensor],
        ys: &[Tensor],
        bs: f64,
    ) -> Result<()> {
        sums.loss += total * bs;
        for (s, v) in sums.head_losses.iter_mut().zip(each) {
            *s += v * bs;
        }
        sums.seen += bs;
        if let Some(c) = &self.compiled {
            // Keras 3: `metrics` ignore sample weights (only `weighted_metrics` use them)
            for ((j, m), st) in c.metrics.iter().zip(sums.metrics.iter_mut()) {
                m.update(&preds[*j], &ys[*j], None, st)?;
            }
        }
        Ok(())
    }

    /// One optimisation step on the batch `xb()` builds (built again only to trace a non-finite prediction);
    /// returns the batch's total loss and each output's loss, and adds the batch into the metric states.
    fn train_batch(
        &mut self,
        xb: &dyn Fn() -> Vec<Tensor>,
        ys: &[Tensor],
        sw: &[Option<Vec<f32>>],
        sums: &mut Sums,
    ) -> Result<()> {
        let (mut preds, plan) = self.forward_training(xb)?;
        let (added, added_grads) = self.split_added_losses(&mut preds);
        let fused = self.fused_losses();
        let (total, each, mut grads) = self.batch_losses(&preds, ys, &fused, sw, true)?;
        let total = total + added;
        grads.extend(added_grads);
        let bs = preds.first().map(Tensor::batch).unwrap_or(0) as f64;
        for p in self.graph.params_mut() {
            p.grad.iter_mut().for_each(|g| *g = 0.0);
        }
        // weight penalties join the loss (as Keras's `model.losses`); computed before the update
        let penalty = self.penalty();
        self.add_batch(sums, total + penalty, &each, &preds, ys, bs)?;
        drop(preds);
        self.graph.backward(grads, &fused, &plan, false, None)?;
        for p in self.graph.params_mut() {
            if let Some(r) = p.regularizer {
                if p.trainable {
                    r.add_gradient(&p.value, &mut p.grad);
                }
            }
        }
        let Model {
            graph, compiled, ..
        } = self;
        let c = compiled.as_mut().ok_or_else(not_compiled)?;
        let mut params: Vec<(usize, &mut Param)> = graph
            .params_mut()
            .enumerate()
            .filter(|(_, p)| p.trainable)
            .collect();
        c.optimizer.step(&mut params);
        // Keras projects every updated weight with its constraint right after the update
        for (_, p) in params.iter_mut() {
            if let Some(con) = &p.constraint {
                con.apply(&mut p.value, &p.shape);
            }
        }
        Ok(())
    }

    fn logs(&self, sums: &Sums) -> Logs {
        let seen = sums.seen.max(1.0);
        let mut logs = vec![("loss".to_string(), sums.loss / seen)];
        if let Some(c) = &self.compiled {
            for (h, s) in c.heads.iter().zip(&sums.head_losses) {
                if let (Some(name), Some(_)) = (&h.loss_name, &h.loss) {
                    logs.push((name.clone(), s / seen));
                }
            }
            for ((_, m), st) in c.metrics.iter().zip(&sums.metrics) {
                logs.push((m.name.clone(), m.result(st)));
            }
        }
        logs
    }

    /// Start an epoch over `n` samples, shuffled with the model's own stream when asked.
    pub fn begin_epoch(&mut self, n: usize, shuffle: bool) {
        self.begin_pass(n, shuffle);
        self.reset_logs();
    }

    /// A new pass over the data (order and position) that keeps the running logs. With `steps_per_epoch`,
    /// Keras's epochs cut passes: an epoch can end mid-pass, and a pass can end mid-epoch.
    pub fn begin_pass(&mut self, n: usize, shuffle: bool) {
        let mut order: Vec<usize> = (0..n).collect();
        if shuffle {
            self.shuffle_rng.shuffle(&mut order);
        }
        self.epoch.order = order;
        self.epoch.cursor = 0;
    }

    /// Reset the running loss and metrics (a new epoch's logs), keeping the position in the data.
    pub fn reset_logs(&mut self) {
        self.epoch.steps = 0;
        self.epoch.sums = self.fresh_sums();
    }

    /// Run up to `max_steps` batches of the current epoch. Returns (batches run, epoch finished, running logs).
    pub fn train_steps(
        &mut self,
        x: &[Data],
        y: &[Data],
        sample_weight: &SampleWeights,
        batch_size: usize,
        max_steps: usize,
        hook: Hook,
    ) -> Result<(usize, bool, Logs)> {
        batch_size_ok(batch_size)?;
        let n = self.check_x(x)?;
        self.check_y(y, sample_weight, n)?;
        if self.epoch.order.len() != n {
            return Err(Error::Runtime(
                "train_steps called without begin_epoch for this data".into(),
            ));
        }
        let mut throttle = Throttle(Instant::now());
        let mut done = 0;
        while done < max_steps && self.epoch.cursor < self.epoch.order.len() {
            let start = self.epoch.cursor;
            let end = (start + batch_size).min(self.epoch.order.len());
            let idx = self.epoch.order[start..end].to_vec();
            let xb = || x.iter().map(|d| d.gather(&idx)).collect();
            let yb: Vec<Tensor> = y.iter().map(|d| d.gather(&idx)).collect();
            let swb: Vec<Option<Vec<f32>>> = sample_weight
                .iter()
                .map(|w| w.map(|w| idx.iter().map(|&i| w[i]).collect()))
                .collect();
            let mut sums = std::mem::take(&mut self.epoch.sums);
            let result = self.train_batch(&xb, &yb, &swb, &mut sums);
            self.epoch.sums = sums;
            result?;
            self.epoch.cursor = end;
            self.epoch.steps += 1;
            done += 1;
            let finished = self.epoch.cursor >= self.epoch.order.len();
            if throttle.due(finished || done == max_steps) {
                let logs = self.epoch_logs();
                hook(self.epoch.steps, &logs)?;
            }
        }
        let finished = self.epoch.cursor >= self.epoch.order.len();
        if finished {
            self.clear_caches();
        }
        Ok((done, finished, self.epoch_logs()))
    }

    pub fn epoch_logs(&self) -> Logs {
        self.logs(&self.epoch.sums)
    }

    /// Loss and metrics over the whole data set, in inference mode.
    pub fn evaluate(
        &mut self,
        x: &[Data],
        y: &[Data],
        sample_weight: &SampleWeights,
        batch_size: usize,
        hook: Hook,
    ) -> Result<Logs> {
        batch_size_ok(batch_size)?;
        self.prepare(x, y, sample_weight)?;
        let n = x.first().map(Data::len).unwrap_or(0);
        let outs = self.output_shapes.clone();
        let fused = self.fused_losses();
        let mut sums = self.fresh_sums();
        let penalty = self.penalty();
        let mut throttle = Throttle(Instant::now());
        let mut start = 0;
        while start < n {
            let bs = batch_size.min(n - start);
            let mut data: Vec<Vec<f32>> = outs
                .iter()
                .map(|s| Vec::with_capacity(bs * s.iter().product::<usize>()))
                .collect();
            let added = self.infer_into(x, start, bs, &mut data)?;
            let preds = data
                .into_iter()
                .zip(&outs)
                .map(|(d, s)| Tensor::new([vec![bs], s.clone()].concat(), d))
                .collect::<Result<Vec<_>>>()?;
            let ys: Vec<Tensor> = y.iter().map(|d| d.range(start, bs)).collect();
            let swb: Vec<Option<Vec<f32>>> = sample_weight
                .iter()
                .map(|w| w.map(|w| w[start..start + bs].to_vec()))
                .collect();
            let (total, each, _) = self.batch_losses(&preds, &ys, &fused, &swb, false)?;
            self.add_batch(
                &mut sums,
                total + added + penalty,
                &each,
                &preds,
                &ys,
                bs as f64,
            )?;
            start += bs;
            if throttle.due(start >= n) {
                let logs = self.logs(&sums);
                hook(start.div_ceil(batch_size), &logs)?;
            }
        }
        self.clear_caches();
        Ok(self.logs(&sums))
    }

    /// Outputs for every sample, in inference mode: one tensor per model output.
    pub fn predict(&mut self, x: &[Data], batch_size: usize, hook: Hook) -> Result<Vec<Tensor>> {
        batch_size_ok(batch_size)?;
        let n = self.check_x(x)?;
        let outs = self.output_shapes.clone();
        let mut data: Vec<Vec<f32>> = outs
            .iter()
            .map(|s| Vec::with_capacity(n * s.iter().product::<usize>()))
            .collect();
        let mut throttle = Throttle(Instant::now());
        let mut start = 0;
        while start < n {
            let bs = batch_size.min(n - start);
            self.infer_into(x, start, bs, &mut data)?;
            start += bs;
            if throttle.due(start >= n) {
                hook(start.div_ceil(batch_size), &Vec::new())?;
            }
        }
        self.clear_caches();
        data.into_iter()
            .zip(outs)
            .map(|(d, s)| Tensor::new([vec![n], s].concat(), d))
            .collect()
    }

    /// One training step on exactly this batch (Keras's `train_on_batch`); returns the batch's logs.
    pub fn train_on_batch(
        &mut self,
        x: &[Data],
        y: &[Data],
        sample_weight: &SampleWeights,
    ) -> Result<Logs> {
        self.prepare(x, y, sample_weight)?;
        let mut sums = self.fresh_sums();
        let ys: Vec<Tensor> = y.iter().map(|d| d.range(0, d.len())).collect();
        let sw: Vec<Option<Vec<f32>>> = sample_weight
            .iter()
            .map(|w| w.map(<[f32]>::to_vec))
            .collect();
        let result = self.train_batch(
            &|| x.iter().map(|d| d.range(0, d.len())).collect(),
            &ys,
            &sw,
            &mut sums,
        );
        self.clear_caches();
        result?;
        // the batch's logs, not weighted by its size
        sums.seen = 1.0;
        let bs = x.first().map(Data::len).unwrap_or(1).max(1) as f64;
        sums.loss /= bs;
        sums.head_losses.iter_mut().for_each(|v| *v /= bs);
        Ok(self.logs(&sums))
    }

    /// One training-mode forward and backward pass on this batch with no effect on the model: no weight update,
    /// and the weights (BatchNormalization's moving statistics included), the random stream and the NaN watch
    /// are put back afterwards, so repeated calls see the same dropout masks. For teaching and debugging:
    /// `Model.inspect` and `utils.gradient_check`. With `with_grads` false only the loss is computed.
    pub fn inspect(
        &mut self,
        x: &[Data],
        y: &[Data],
        sample_weight: &SampleWeights,
        with_grads: bool,
    ) -> Result<Inspection> {
        self.prepare(x, y, sample_weight)?;
        let saved_values: Vec<Vec<f32>> = self.graph.params().map(|p| p.value.clone()).collect();
        let saved_rng = self.rng.clone();
        let saved_watch = self.non_finite_source.clone();
        let result = self.inspect_pass(x, y, sample_weight, with_grads);
        for (p, v) in self.graph.params_mut().zip(saved_values) {
            p.value = v;
        }
        self.rng = saved_rng;
        self.non_finite_source = saved_watch;
        self.clear_caches();
        result
    }

    fn inspect_pass(
        &mut self,
        x: &[Data],
        y: &[Data],
        sample_weight: &SampleWeights,
        with_grads: bool,
    ) -> Result<Inspection> {
        let xb: Vec<Tensor> = x.iter().map(|d| d.range(0, d.len())).collect();
        let ys: Vec<Tensor> = y.iter().map(|d| d.range(0, d.len())).collect();
        let sw: Vec<Option<Vec<f32>>> = sample_weight
            .iter()
            .map(|w| w.map(<[f32]>::to_vec))
            .collect();
        let n = x.first().map(Data::len).unwrap_or(0);
        let plan = self.graph.plan(true, true);
        let mut node_outputs = Vec::new();
        let mut preds = {
            let mut ctx = Ctx {
                training: true,
                rng: &mut self.rng,
            };
            self.graph
                .forward(xb, &mut ctx, &plan, None, Some(&mut node_outputs))?
        };
        let (added, added_grads) = self.split_added_losses(&mut preds);
        // Unfused: the gradient reported at an output layer is dL/d(output), through its own activation.
        let unfused = vec![false; preds.len()];
        let (total, _, mut grads) = self.batch_losses(&preds, &ys, &unfused, &sw, true)?;
        let total = total + added;
        grads.extend(added_grads);
        let mut out = Inspection {
            loss: total + self.penalty(),
            ..Inspection::default()
        };
        let first = self.graph.first_nodes();
        let pick = |v: &mut Vec<Option<Tensor>>| -> Vec<Tensor> {
            first
                .iter()
                .map(|k| {
                    k.and_then(|k| v.get_mut(k).and_then(Option::take))
                        .unwrap_or_default()
                })
                .collect()
        };
        out.outputs = pick(&mut node_outputs);
        if !with_grads {
            return Ok(out);
        }
        for p in self.graph.params_mut() {
            p.grad.iter_mut().for_each(|g| *g = 0.0);
        }
        let mut node_grads = Vec::new();
        let input_grads =
            self.graph
                .backward(grads, &unfused, &plan, true, Some(&mut node_grads))?;
        // an input (or a layer) no loss depends on gets zeros
        out.input_grads = input_grads
            .into_iter()
            .zip(self.graph.input_shapes())
            .map(|(g, s)| {
                if g.shape.is_empty() {
                    Tensor::zeros([vec![n], s.clone()].concat())
                } else {
                    g
                }
            })
            .collect();
        let unit_shapes = self.graph.unit_output_shapes();
        out.output_grads = pick(&mut node_grads)
            .into_iter()
            .zip(unit_shapes)
            .map(|(g, s)| {
                if g.shape.is_empty() {
                    Tensor::zeros([vec![n], s].concat())
                } else {
                    g
                }
            })
            .collect();
        for p in self.graph.params_mut() {
            if let Some(r) = p.regularizer {
                if p.trainable {
                    r.add_gradient(&p.value, &mut p.grad);
                }
            }
        }
        out.weight_grads = self
            .graph
            .params()
            .map(|p| Tensor {
                shape: p.shape.clone(),
                data: p.grad.clone(),
            })
            .collect();
        Ok(out)
    }

    fn clear_caches(&mut self) {
        self.graph.clear_caches();
        Tensor::drop_spares();
        crate::alloc::release_cached();
    }

    /// Every weight in Keras order, as (shape, values).
    pub fn weights(&self) -> Vec<(Vec<usize>, Vec<f32>)> {
        self.graph
            .params()
            .map(|p| (p.shape.clone(), p.value.clone()))
            .collect()
    }

    /// (shape, trainable) of every weight, in Keras order.
    pub fn weights_info(&self) -> Vec<(Vec<usize>, bool)> {
        self.graph
            .params()
            .map(|p| (p.shape.clone(), p.trainable))
            .collect()
    }

    /// (first weight index, number of weights) of each layer.
    pub fn layer_weight_ranges(&self) -> Vec<(usize, usize)> {
        let mut start = 0;
        self.graph
            .units()
            .iter()
            .map(|u: &Unit| {
                let n = u.params().len();
                let r = (start, n);
                start += n;
                r
            })
            .collect()
    }

    /// Replace weights `first..first+new.len()`, checking count and every shape before changing anything.
    pub fn set_weights(
        &mut self,
        first: usize,
        new: &[(Vec<usize>, Vec<f32>)],
        expected: usize,
        who: &str,
    ) -> Result<()> {
        if new.len() != expected {
            return Err(Error::Value(format!(
                "You called `set_weights(weights)` on {who} with a weight list of length {}, but the layer was \
                 expecting {expected} weights.",
                new.len()
            )));
        }
        let mut params: Vec<&mut Param> =
            self.graph.params_mut().skip(first).take(expected).collect();
        if params.len() != expected {
            return Err(Error::Value(format!(
                "{who}: weights {first}..{} do not exist in this model",
                first + expected
            )));
        }
        for (p, (shape, values)) in params.iter().zip(new) {
            if &p.shape != shape || values.len() != p.value.len() {
                return Err(Error::Value(format!(
                    "{who}: weight '{}' has shape {:?}, which is not compatible with the provided weight shape {:?}",
                    p.name, p.shape, shape
                )));
            }
        }
        for (p, (_, values)) in params.iter_mut().zip(new) {
            p.value.copy_from_slice(values);
        }
        Ok(())
    }

    /// Optimizer state for checkpoints: (iterations, slot names, per trainable weight its slots in Keras order).
    pub fn optimizer_state(&mut self) -> Result<OptimizerState> {
        let Model {
            graph, compiled, ..
        } = self;
        let opt = &mut compiled.as_mut().ok_or_else(not_compiled)?.optimizer;
        let mut out = Vec::new();
        for (pos, p) in graph.params().enumerate() {
            if p.trainable {
                out.push(opt.slots_of(pos, p.value.len()).clone());
            }
        }
        Ok((opt.iterations, opt.slot_names(), out))
    }

    /// Restore what `optimizer_state` returned; every count and length is checked before anything changes.
    pub fn set_optimizer_state(
        &mut self,
        iterations: u64,
        slots: Vec<Vec<Vec<f32>>>,
    ) -> Result<()> {
        let Model {
            graph, compiled, ..
        } = self;
        let opt = &mut compiled.as_mut().ok_or_else(not_compiled)?.optimizer;
        let n_slots = opt.slot_names().len();
        let trainable: Vec<(usize, usize)> = graph
            .params()
            .enumerate()
            .filter(|(_, p)| p.trainable)
            .map(|(pos, p)| (pos, p.value.len()))
            .collect();
        if slots.len() != trainable.len() {
            return Err(Error::Value(format!(
                "optimizer state has slots for {} weights, the model has {} trainable weights",
                slots.len(),
                trainable.len()
            )));
        }
        for (i, ((_, len), s)) in trainable.iter().zip(&slots).enumerate() {
            if s.len() != n_slots || s.iter().any(|v| v.len() != *len) {
                return Err(Error::Value(format!(
                    "optimizer state for trainable weight {i}: expected {n_slots} slots of {len} values",
                )));
            }
        }
        for ((pos, len), s) in trainable.into_iter().zip(slots) {
            *opt.slots_of(pos, len) = s;
        }
        opt.iterations = iterations;
        Ok(())
    }

    pub fn set_layer_trainable(&mut self, index: usize, trainable: bool) -> Result<()> {
        self.graph.set_unit_trainable(index, trainable)
    }

    /// Zero the states the `stateful` recurrent layers of unit `only` (every unit: None) carry between batches.
    pub fn reset_states(&mut self, only: Option<usize>) {
        self.graph.reset_states(only);
    }
}

crate::simd_fn! {
    fn all_finite_into(data: &[f32], out: &mut bool) {
        // a sum of `x * 0` is NaN exactly when some x is NaN or infinite; vectorises, unlike an early exit
        let s: f32 = data.iter().map(|v| v * 0.0).sum();
        *out = s == 0.0;
    }
}

fn all_finite(data: &[f32]) -> bool {
    let mut ok = true;
    all_finite_into(data, &mut ok);
    ok
}

fn not_compiled() -> Error {
    Error::Runtime(
        "You must call `compile()` before using the model for training or evaluation.".into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Step;
    use serde_json::json;

    fn mlp(seed: u64) -> Model {
        let specs = vec![
            (
                "Dense".to_string(),
                json!({"name": "d1", "units": 8, "activation": "relu"}),
            ),
            (
                "Dense".to_string(),
                json!({"name": "d2", "units": 3, "activation": "softmax"}),
            ),
        ];
        let mut m = Model::new(&specs, &[4], seed).unwrap();
        m.compile(
            &json!("sparse_categorical_crossentropy"),
            &json!({"class_name": "Adam", "config": {"learning_rate": 0.05}}),
            &["accuracy".into()],
        )
        .unwrap();
        m
    }

    /// A ReLU conv + valid 2x2 max pooling (the seed CNN's pair), a linear conv without bias + an odd-sized
    /// "same" 3x3/2 max pooling, then a `third_act` 1x1 conv + `third_pool`, Flatten and Dense(3).
    fn conv_pool_specs(
        filters: usize,
        third_pool: &str,
        pool_cfg: Value,
        third_act: &str,
    ) -> Vec<(String, Value)> {
        vec![
            (
                "Conv2D".to_string(),
                json!({"filters": filters, "kernel_size": 3, "activation": "relu"}),
            ),
            ("MaxPooling2D".to_string(), json!({"pool_size": 2})),
            (
                "Conv2D".to_string(),
                json!({"filters": 5, "kernel_size": 2, "padding": "same", "use_bias": false}),
            ),
            (
                "MaxPooling2D".to_string(),
                json!({"pool_size": 3, "strides": 2, "padding": "same"}),
            ),
            (
                "Conv2D".to_string(),
                json!({"filters": 4, "kernel_size": 1, "activation": third_act}),
            ),
            (third_pool.to_string(), pool_cfg),
            ("Flatten".to_string(), json!({})),
            ("Dense".to_string(), json!({"units": 3})),
        ]
    }

    #[test]
    fn fused_conv_pool_inference_matches_layer_by_layer() {
        // the third pooling (average) cannot be fused
        let specs = conv_pool_specs(8, "AveragePooling2D", json!({"pool_size": 2}), "tanh");
        let mut m = Model::new(&specs, &[13, 11, 2], 4).unwrap();
        let n = 9; // two full chunks and a partial one
        let mut rng = Rng::new(5);
        let x: Vec<f32> = (0..n * 13 * 11 * 2).map(|_| rng.uniform() - 0.5).collect();
        let input = || vec![Tensor::new(vec![n, 13, 11, 2], x.clone()).unwrap()];
        let plain = m.forward_pass(input(), false, true).unwrap();
        let fused = m.forward_pass(input(), false, false).unwrap();
        assert_eq!(fused[0].shape, plain[0].shape);
        assert_eq!(fused[0].data, plain[0].data); // bit for bit
        assert_eq!(
            m.graph.plan(false, false).to_vec(),
            vec![
                Step::ConvMaxPool(0, 1),
                Step::ConvMaxPool(2, 3),
                Step::Node(4),
                Step::Node(5),
                Step::Node(6),
                Step::Node(7)
            ]
        );
        assert!(m
            .graph
            .plan(false, true)
            .iter()
            .all(|s| matches!(s, Step::Node(_))));
    }

    #[test]
    fn fused_conv_pool_training_matches_layer_by_layer() {
        // the third conv's pooling stays apart in training: tanh is not applied chunk by chunk there
        let specs = conv_pool_specs(6, "MaxPooling2D", json!({"pool_size": 1}), "tanh");
        let n = 9; // two full chunks and a partial one
        let mut rng = Rng::new(5);
        let x: Vec<f32> = (0..n * 14 * 12 * 2).map(|_| rng.uniform() - 0.5).collect();
        let g: Vec<f32> = (0..n * 3).map(|_| rng.uniform() - 0.5).collect();
        let run = |trace: bool| {
            let mut m = Model::new(&specs, &[14, 12, 2], 4).unwrap();
            let input = Tensor::new(vec![n, 14, 12, 2], x.clone()).unwrap();
            let pred = m.forward_pass(vec![input], true, trace).unwrap();
            let plan = m.graph.plan(true, trace);
            let grad = Tensor::new(vec![n, 3], g.clone()).unwrap();
            m.graph
                .backward(vec![Some(grad)], &[false], &plan, false, None)
                .unwrap();
            let grads: Vec<Vec<f32>> = m.graph.params().map(|p| p.grad.clone()).collect();
            (pred[0].data.clone(), grads, plan.to_vec())
        };
        let (pred_fused, grads_fused, fused) = run(false);
        let (pred_plain, grads_plain, plain) = run(true); // a traced pass never fuses
        assert_eq!(
            fused,
            vec![
                Step::ConvMaxPool(0, 1),
                Step::ConvMaxPool(2, 3),
                Step::Node(4),
                Step::Node(5),
                Step::Node(6),
                Step::Node(7)
            ]
        );
        assert_eq!(plain.len(), 8);
        assert_eq!(pred_fused, pred_plain); // bit for bit
        assert_eq!(grads_fused, grads_plain);
        assert!(grads_fused.iter().all(|g| g.iter().any(|v| *v != 0.0)));
    }

    fn toy() -> (Vec<f32>, Vec<f32>) {
        // three separable blobs
        let mut rng = Rng::new(9);
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..90 {
            let c = i % 3;
            for j in 0..4 {
                x.push(if j == c { 2.0 } else { 0.0 } + 0.3 * rng.normal());
            }
            y.push(c as f32);
        }
        (x, y)
    }

    fn fit(m: &mut Model, x: &[f32], y: &[f32], epochs: usize) -> Vec<Logs> {
        let xs = [90usize, 4];
        let ys = [90usize];
        let xd = [Data::new(&xs, x).unwrap()];
        let yd = [Data::new(&ys, y).unwrap()];
        m.prepare(&xd, &yd, &[]).unwrap();
        let mut hist = Vec::new();
        for _ in 0..epochs {
            m.begin_epoch(90, true);
            let (_, finished, logs) = m
                .train_steps(&xd, &yd, &[], 16, usize::MAX, &mut |_, _| Ok(()))
                .unwrap();
            assert!(finished);
            hist.push(logs);
        }
        hist
    }

    #[test]
    fn learns_and_is_deterministic() {
        let (x, y) = toy();
        let mut a = mlp(42);
        let ha = fit(&mut a, &x, &y, 15);
        assert!(ha.last().unwrap()[0].1 < ha[0][0].1 * 0.5, "{ha:?}");
        assert!(ha.last().unwrap()[1].1 > 0.95);
        let mut b = mlp(42);
        let hb = fit(&mut b, &x, &y, 15);
        assert_eq!(ha, hb);
        assert_eq!(a.weights(), b.weights());
    }

    #[test]
    fn interrupted_step_keeps_model_usable() {
        let (x, y) = toy();
        let mut m = mlp(1);
        let (xs, ys) = ([90usize, 4], [90usize]);
        let xd = [Data::new(&xs, &x).unwrap()];
        let yd = [Data::new(&ys, &y).unwrap()];
        m.prepare(&xd, &yd, &[]).unwrap();
        m.begin_epoch(90, false);
        let r = m.train_steps(&xd, &yd, &[], 10, 3, &mut |_, _| Err(Error::Interrupted));
        assert!(matches!(r, Err(Error::Interrupted)));
        let p = m.predict(&xd, 32, &mut |_, _| Ok(())).unwrap();
        assert_eq!(p[0].shape, vec![90, 3]);
        assert!(p[0].data.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn set_weights_checks_before_writing() {
        let mut m = mlp(3);
        let before = m.weights();
        let mut bad = before.clone();
        bad[3].0 = vec![4];
        bad[3].1 = vec![0.0; 4];
        assert!(m.set_weights(0, &bad, 4, "sequential").is_err());
        assert_eq!(m.weights(), before);
        assert!(m.set_weights(0, &before[..2], 4, "sequential").is_err());
    }
}
