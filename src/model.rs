//! Sequential: build from layer configs, forward, backward, and the train / evaluate / predict loops.
//! No Python here: progress and interruption go through a hook closure the bindings provide.

use crate::error::{Error, Result};
use crate::layers::{self, Ctx, Layer, Param};
use crate::losses::Loss;
use crate::metrics::{self, Metric};
use crate::optimizers::Optimizer;
use crate::rng::Rng;
use crate::tensor::{shape_str, Tensor};
use serde_json::Value;
use std::time::{Duration, Instant};

/// Named values, in order: `loss` first, then each metric.
pub type Logs = Vec<(String, f64)>;

/// Called between batches with (batches done, running logs). An `Err` stops the loop after the current batch.
pub type Hook<'a> = &'a mut dyn FnMut(usize, &Logs) -> Result<()>;

/// Most weight values one model may hold (2 GiB of f32); each layer alone is capped lower, so checking the
/// running total after each layer bounds what is ever allocated.
const MAX_MODEL_WEIGHTS: usize = 1 << 29;

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
    /// Copy the samples `idx` (or the range `start..start+n` when `idx` is None) into a batch tensor.
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

/// (iterations, slot names, for each trainable weight its slot vectors in slot-name order).
pub type OptimizerState = (u64, Vec<&'static str>, Vec<Vec<Vec<f32>>>);

pub struct Compiled {
    pub loss: Loss,
    pub optimizer: Optimizer,
    metric_specs: Vec<Value>,
    metrics: Vec<Metric>,
}

#[derive(Default)]
struct EpochState {
    order: Vec<usize>,
    cursor: usize,
    /// Batches run since the logs were last reset (the epoch's step count).
    steps: usize,
    loss_sum: f64,
    seen: f64,
    metric_sums: Vec<Vec<f64>>,
}

pub struct LayerInfo {
    pub name: String,
    pub class_name: &'static str,
    pub output_shape: Vec<usize>,
    pub params: usize,
    pub trainable_params: usize,
}

/// What `Model::inspect` saw: the loss (with weight penalties), every layer's output and the gradient of the loss
/// with respect to it, the gradient with respect to the model's input, and every weight's gradient (Keras order).
#[derive(Default)]
pub struct Inspection {
    pub loss: f64,
    pub outputs: Vec<Tensor>,
    pub output_grads: Vec<Tensor>,
    pub input_grad: Tensor,
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
    layers: Vec<Box<dyn Layer>>,
    non_finite_source: Option<String>,
    input_shape: Vec<usize>,
    output_shapes: Vec<Vec<usize>>,
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

impl Model {
    /// Build every layer from its `(class_name, config)` for samples of `input_shape` (no batch axis).
    pub fn new(specs: &[(String, Value)], input_shape: &[usize], seed: u64) -> Result<Self> {
        if specs.is_empty() {
            return Err(Error::Value(
                "a Sequential model needs at least one layer".into(),
            ));
        }
        if input_shape.contains(&0) {
            return Err(Error::Value(format!(
                "input shape {} has a zero dimension",
                shape_str(input_shape)
            )));
        }
        crate::initializers::checked_numel("input", input_shape)?;
        let mut rng = Rng::new(seed);
        let mut init_rng = rng.fork();
        let shuffle_rng = rng.fork();
        let mut layers = Vec::with_capacity(specs.len());
        let mut output_shapes = Vec::with_capacity(specs.len());
        let mut shape = input_shape.to_vec();
        let mut total_weights = 0usize;
        for (class_name, cfg) in specs {
            let mut layer = layers::from_config(class_name, cfg)?;
            shape = layer.build(&shape, &mut init_rng)?;
            crate::initializers::checked_numel(
                &format!("output of layer '{}'", layer.name()),
                &shape,
            )?;
            total_weights += layer.params().iter().map(|p| p.value.len()).sum::<usize>();
            if total_weights > MAX_MODEL_WEIGHTS {
                return Err(Error::Value(format!(
                    "layer '{}': the model would hold more than {MAX_MODEL_WEIGHTS} weight values (2 GiB); \
                     refusing to allocate it",
                    layer.name()
                )));
            }
            let trainable = cfg
                .get("trainable")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            layer.set_trainable(trainable);
            output_shapes.push(shape.clone());
            layers.push(layer);
        }
        Ok(Model {
            layers,
            non_finite_source: None,
            input_shape: input_shape.to_vec(),
            output_shapes,
            rng,
            shuffle_rng,
            compiled: None,
            epoch: EpochState::default(),
        })
    }

    pub fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    pub fn output_shape(&self) -> &[usize] {
        self.output_shapes.last().map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn layer_info(&self) -> Vec<LayerInfo> {
        self.layers
            .iter()
            .zip(&self.output_shapes)
            .map(|(l, s)| LayerInfo {
                name: l.name().to_string(),
                class_name: l.class_name(),
                output_shape: s.clone(),
                params: l.params().iter().map(|p| p.value.len()).sum(),
                trainable_params: l
                    .params()
                    .iter()
                    .filter(|p| p.trainable)
                    .map(|p| p.value.len())
                    .sum(),
            })
            .collect()
    }

    pub fn compile(
        &mut self,
        loss: &Value,
        optimizer: &Value,
        metric_specs: &[Value],
    ) -> Result<()> {
        let loss = Loss::from_value(loss)?;
        let optimizer = Optimizer::from_value(optimizer)?;
        for m in metric_specs {
            metrics::check(m)?;
        }
        self.compiled = Some(Compiled {
            loss,
            optimizer,
            metric_specs: metric_specs.to_vec(),
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

    fn check_x(&self, x: &Data) -> Result<()> {
        if x.shape[1..] != self.input_shape[..] {
            let first = self.layers.first().map(|l| l.name()).unwrap_or("input");
            return Err(Error::Value(format!(
                "Input 0 of layer \"{first}\" is incompatible with the layer: expected shape {}, found shape {}",
                shape_str(&self.input_shape),
                shape_str(&x.shape[1..])
            )));
        }
        Ok(())
    }

    /// Validate a training/evaluation pair and resolve "accuracy" for these targets. Call before the loops.
    pub fn prepare(&mut self, x: &Data, y: &Data, sample_weight: Option<&[f32]>) -> Result<()> {
        self.check_x(x)?;
        if x.len() != y.len() {
            return Err(Error::Value(format!(
                "Data cardinality is ambiguous: x sizes: {}, y sizes: {}. Make sure all arrays contain the same \
                 number of samples.",
                x.len(),
                y.len()
            )));
        }
        if let Some(w) = sample_weight {
            if w.len() != x.len() {
                return Err(Error::Value(format!(
                    "sample_weight has {} values for {} samples",
                    w.len(),
                    x.len()
                )));
            }
        }
        let out = self.output_shape().to_vec();
        let c = self.compiled.as_mut().ok_or_else(not_compiled)?;
        let yt = Tensor {
            shape: y.shape.to_vec(),
            data: Vec::new(),
        };
        c.loss.check_targets(
            &Tensor {
                data: y.data.to_vec(),
                ..yt
            },
            &out,
        )?;
        c.metrics = c
            .metric_specs
            .iter()
            .map(|m| metrics::resolve(m, &y.shape[1..], &out))
            .collect::<Result<_>>()?;
        Ok(())
    }

    /// A training forward pass over the batch `batch()` builds.
    fn forward_training(&mut self, batch: &dyn Fn() -> Tensor) -> Result<Tensor> {
        // In training, note where non-finite values first appeared, so a NaN loss can be traced to a layer.
        // Only the prediction is checked each step; when it is not finite, the same pass is run again from the
        // same state (random stream, so the same dropout masks, and the statistics layers update in forward,
        // BatchNormalization's moving averages) checking every layer's output. This keeps a full pass over
        // every activation out of the steady state; the batch is built again for the replay rather than
        // copied every step. A non-finite value that a layer absorbs before the prediction (a max-pool window
        // where NaN never wins) is not traced: the loss stays finite then.
        let watch = self.non_finite_source.is_none();
        let replay = watch.then(|| (self.rng.clone(), self.self_updated_stats()));
        let h = self.forward_pass(batch(), true, false)?;
        if let Some((rng, stats)) = replay {
            if !all_finite(&h.data) {
                self.rng = rng;
                let params = self
                    .layers
                    .iter_mut()
                    .flat_map(|l| l.params_mut().iter_mut());
                for (p, v) in params.filter(|p| !p.trainable_kind).zip(stats) {
                    p.value = v;
                }
                return self.forward_pass(batch(), true, true);
            }
        }
        Ok(h)
    }

    /// Values of the weights a layer updates itself during a training forward pass (not by gradients).
    fn self_updated_stats(&self) -> Vec<Vec<f32>> {
        self.all_params()
            .filter(|p| !p.trainable_kind)
            .map(|p| p.value.clone())
            .collect()
    }

    fn forward_pass(&mut self, x: Tensor, training: bool, trace: bool) -> Result<Tensor> {
        if trace && !all_finite(&x.data) {
            self.non_finite_source = Some("the input batch".into());
        }
        let mut ctx = Ctx {
            training,
            rng: &mut self.rng,
        };
        let mut h = x;
        let mut i = 0;
        while i < self.layers.len() {
            // A convolution and the max pooling after it run as one pass (same values, and the unpooled output
            // never streams through memory; in training it is not kept either). A traced pass keeps every
            // layer's output; a pooling that is the last layer stays apart (the loss may fuse with it).
            if !trace && i + 2 < self.layers.len() {
                let pool = self.layers[i + 1].max_pool_window();
                let fusable = |w: &crate::kernels::conv::Window| {
                    self.layers[i].can_fuse_max_pool(w, training)
                };
                if let Some(pool) = pool.filter(fusable) {
                    h = self.layers[i].forward_max_pooled(h, &pool, training)?;
                    i += 2;
                    continue;
                }
            }
            let layer = &mut self.layers[i];
            h = layer.forward(h, &mut ctx)?;
            if trace && self.non_finite_source.is_none() && !all_finite(&h.data) {
                self.non_finite_source =
                    Some(format!("layer '{}' ({})", layer.name(), layer.class_name()));
            }
            i += 1;
        }
        Ok(h)
    }

    /// Inference on samples `start..start + n`, appended to `out`. The batch goes through the network in slices
    /// of `INFERENCE_SLICE` samples: each layer's output for a slice stays in cache for the next layer and its
    /// buffers are reused from the allocator instead of fresh pages, where a whole predict batch (1000 images:
    /// 86 MB after the seed CNN's first layer) would stream through memory. A multiple of SAMPLES_PER_CHUNK, so
    /// the per-chunk arithmetic (and so every output bit) is the same as with one big batch.
    fn infer_into(&mut self, x: &Data, start: usize, n: usize, out: &mut Vec<f32>) -> Result<()> {
        let end = start + n;
        let mut s = start;
        while s < end {
            let len = INFERENCE_SLICE.min(end - s);
            let y = self.forward_pass(x.range(s, len), false, false)?;
            out.extend_from_slice(&y.data);
            y.recycle();
            s += len;
        }
        Ok(())
    }

    /// Where non-finite values first appeared in the training forward passes since the model was built or
    /// last asked (e.g. "layer 'dense_1' (Dense)"); None while everything stayed finite.
    pub fn take_non_finite_source(&mut self) -> Option<String> {
        self.non_finite_source.take()
    }

    /// Zeroed metric states for the compiled metrics.
    fn fresh_metric_states(&self) -> Vec<Vec<f64>> {
        self.compiled
            .as_ref()
            .map(|c| c.metrics.iter().map(|m| vec![0.0; m.state_len()]).collect())
            .unwrap_or_default()
    }

    /// One optimisation step on the batch `xb()` builds (built again only to trace a non-finite prediction);
    /// returns the batch loss and adds the batch into the metric states.
    fn train_batch(
        &mut self,
        xb: &dyn Fn() -> Tensor,
        yb: &Tensor,
        sw: Option<&[f32]>,
        states: &mut [Vec<f64>],
    ) -> Result<f64> {
        let pred = self.forward_training(xb)?;
        let Model {
            layers, compiled, ..
        } = self;
        let c = compiled.as_mut().ok_or_else(not_compiled)?;
        let fused = layers
            .last()
            .map(|l| c.loss.fuses_with(l.activation()))
            .unwrap_or(false);
        let (loss, grad) = c.loss.forward_backward(&pred, yb, fused, sw)?;
        // Keras 3: `metrics` ignore sample weights (only `weighted_metrics` use them)
        for (m, st) in c.metrics.iter().zip(states.iter_mut()) {
            m.update(&pred, yb, None, st);
        }
        drop(pred);
        for layer in layers.iter_mut() {
            for p in layer.params_mut() {
                p.grad.iter_mut().for_each(|g| *g = 0.0);
            }
        }
        backward_layers(layers, grad, fused)?;
        // weight penalties join the loss (as Keras's `model.losses`) and their gradients the weights'
        let mut penalty = 0.0;
        for p in layers.iter_mut().flat_map(|l| l.params_mut().iter_mut()) {
            if let Some(r) = p.regularizer {
                penalty += r.penalty(&p.value);
                if p.trainable {
                    r.add_gradient(&p.value, &mut p.grad);
                }
            }
        }
        let mut params: Vec<(usize, &mut Param)> = layers
            .iter_mut()
            .flat_map(|l| l.params_mut().iter_mut())
            .enumerate()
            .filter(|(_, p)| p.trainable)
            .collect();
        c.optimizer.step(&mut params);
        Ok(loss + penalty)
    }

    fn logs(&self, loss_sum: f64, seen: f64, states: &[Vec<f64>]) -> Logs {
        let mut logs = vec![("loss".to_string(), loss_sum / seen.max(1.0))];
        if let Some(c) = &self.compiled {
            for (m, st) in c.metrics.iter().zip(states) {
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
        self.epoch.loss_sum = 0.0;
        self.epoch.seen = 0.0;
        self.epoch.metric_sums = self.fresh_metric_states();
    }

    /// Run up to `max_steps` batches of the current epoch. Returns (batches run, epoch finished, running logs).
    pub fn train_steps(
        &mut self,
        x: &Data,
        y: &Data,
        sample_weight: Option<&[f32]>,
        batch_size: usize,
        max_steps: usize,
        hook: Hook,
    ) -> Result<(usize, bool, Logs)> {
        if batch_size == 0 {
            return Err(Error::Value(
                "batch_size must be a positive integer, received 0".into(),
            ));
        }
        self.check_x(x)?;
        if self.epoch.order.len() != x.len() || y.len() != x.len() {
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
            let xb = || x.gather(&idx);
            let yb = y.gather(&idx);
            let swb: Option<Vec<f32>> = sample_weight.map(|w| idx.iter().map(|&i| w[i]).collect());
            let mut states = std::mem::take(&mut self.epoch.metric_sums);
            let result = self.train_batch(&xb, &yb, swb.as_deref(), &mut states);
            self.epoch.metric_sums = states;
            let loss = result?;
            let bs = (end - start) as f64;
            self.epoch.cursor = end;
            self.epoch.steps += 1;
            self.epoch.loss_sum += loss * bs;
            self.epoch.seen += bs;
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
        self.logs(
            self.epoch.loss_sum,
            self.epoch.seen,
            &self.epoch.metric_sums,
        )
    }

    /// Loss and metrics over the whole data set, in inference mode.
    pub fn evaluate(
        &mut self,
        x: &Data,
        y: &Data,
        sample_weight: Option<&[f32]>,
        batch_size: usize,
        hook: Hook,
    ) -> Result<Logs> {
        if batch_size == 0 {
            return Err(Error::Value(
                "batch_size must be a positive integer, received 0".into(),
            ));
        }
        self.prepare(x, y, sample_weight)?;
        let n = x.len();
        let out_len: usize = self.output_shape().iter().product();
        let tail = self.output_shape().to_vec();
        let out_shape = |b: usize| [vec![b], tail.clone()].concat();
        let (mut loss_sum, mut seen, mut sums) = (0.0f64, 0.0f64, self.fresh_metric_states());
        let penalty: f64 = self
            .all_params()
            .filter_map(|p| p.regularizer.map(|r| r.penalty(&p.value)))
            .sum();
        let mut throttle = Throttle(Instant::now());
        let mut start = 0;
        while start < n {
            let bs = batch_size.min(n - start);
            let mut data = Vec::with_capacity(bs * out_len);
            self.infer_into(x, start, bs, &mut data)?;
            let pred = Tensor::new(out_shape(bs), data)?;
            let yb = y.range(start, bs);
            let swb = sample_weight.map(|w| &w[start..start + bs]);
            let c = self.compiled.as_ref().ok_or_else(not_compiled)?;
            let fused = self
                .layers
                .last()
                .map(|l| c.loss.fuses_with(l.activation()))
                .unwrap_or(false);
            let (loss, _) = c.loss.forward_backward(&pred, &yb, fused, swb)?;
            loss_sum += (loss + penalty) * bs as f64;
            seen += bs as f64;
            for (st, m) in sums.iter_mut().zip(&c.metrics) {
                m.update(&pred, &yb, None, st);
            }
            start += bs;
            if throttle.due(start >= n) {
                let logs = self.logs(loss_sum, seen, &sums);
                hook(start.div_ceil(batch_size), &logs)?;
            }
        }
        self.clear_caches();
        Ok(self.logs(loss_sum, seen, &sums))
    }

    /// Outputs for every sample, in inference mode, as a flat row-major buffer plus its shape.
    pub fn predict(&mut self, x: &Data, batch_size: usize, hook: Hook) -> Result<Tensor> {
        if batch_size == 0 {
            return Err(Error::Value(
                "batch_size must be a positive integer, received 0".into(),
            ));
        }
        self.check_x(x)?;
        let n = x.len();
        let out_shape = self.output_shape().to_vec();
        let out_len: usize = out_shape.iter().product();
        let mut data = Vec::with_capacity(n * out_len);
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
        let mut shape = vec![n];
        shape.extend(out_shape);
        Tensor::new(shape, data)
    }

    /// One training step on exactly this batch (Keras's `train_on_batch`); returns the batch's logs.
    pub fn train_on_batch(
        &mut self,
        x: &Data,
        y: &Data,
        sample_weight: Option<&[f32]>,
    ) -> Result<Logs> {
        self.prepare(x, y, sample_weight)?;
        let mut states = self.fresh_metric_states();
        let loss = self.train_batch(
            &|| x.range(0, x.len()),
            &y.range(0, y.len()),
            sample_weight,
            &mut states,
        )?;
        let logs = self.logs(loss, 1.0, &states);
        self.clear_caches();
        Ok(logs)
    }

    /// One training-mode forward and backward pass on this batch with no effect on the model: no weight update,
    /// and the weights (BatchNormalization's moving statistics included), the random stream and the NaN watch
    /// are put back afterwards, so repeated calls see the same dropout masks. For teaching and debugging:
    /// `Model.inspect` and `utils.gradient_check`. With `with_grads` false only the loss is computed.
    pub fn inspect(
        &mut self,
        x: &Data,
        y: &Data,
        sample_weight: Option<&[f32]>,
        with_grads: bool,
    ) -> Result<Inspection> {
        self.prepare(x, y, sample_weight)?;
        let saved_values: Vec<Vec<f32>> = self.all_params().map(|p| p.value.clone()).collect();
        let saved_rng = self.rng.clone();
        let saved_watch = self.non_finite_source.clone();
        let result = self.inspect_pass(x, y, sample_weight, with_grads);
        for (p, v) in self
            .layers
            .iter_mut()
            .flat_map(|l| l.params_mut().iter_mut())
            .zip(saved_values)
        {
            p.value = v;
        }
        self.rng = saved_rng;
        self.non_finite_source = saved_watch;
        self.clear_caches();
        result
    }

    fn inspect_pass(
        &mut self,
        x: &Data,
        y: &Data,
        sample_weight: Option<&[f32]>,
        with_grads: bool,
    ) -> Result<Inspection> {
        let (xb, yb) = (x.range(0, x.len()), y.range(0, y.len()));
        let mut outputs = Vec::with_capacity(self.layers.len());
        let mut h = xb;
        {
            let mut ctx = Ctx {
                training: true,
                rng: &mut self.rng,
            };
            for layer in self.layers.iter_mut() {
                h = layer.forward(h, &mut ctx)?;
                if with_grads {
                    outputs.push(h.clone());
                }
            }
        }
        let Model {
            layers, compiled, ..
        } = self;
        let c = compiled.as_mut().ok_or_else(not_compiled)?;
        // Unfused: the gradient reported at the last layer is dL/d(output), through its own activation.
        let (loss, grad) = c.loss.forward_backward(&h, &yb, false, sample_weight)?;
        let mut penalty = 0.0;
        for p in layers.iter().flat_map(|l| l.params().iter()) {
            if let Some(r) = p.regularizer {
                penalty += r.penalty(&p.value);
            }
        }
        let mut out = Inspection {
            loss: loss + penalty,
            outputs,
            ..Inspection::default()
        };
        if !with_grads {
            return Ok(out);
        }
        for p in layers.iter_mut().flat_map(|l| l.params_mut().iter_mut()) {
            p.grad.iter_mut().for_each(|g| *g = 0.0);
        }
        let mut g = grad;
        let mut output_grads = Vec::with_capacity(layers.len());
        for layer in layers.iter_mut().rev() {
            output_grads.push(g.clone());
            g = layer.backward(g, true)?;
        }
        output_grads.reverse();
        out.output_grads = output_grads;
        out.input_grad = g;
        for p in layers.iter_mut().flat_map(|l| l.params_mut().iter_mut()) {
            if let Some(r) = p.regularizer {
                if p.trainable {
                    r.add_gradient(&p.value, &mut p.grad);
                }
            }
        }
        out.weight_grads = layers
            .iter()
            .flat_map(|l| l.params().iter())
            .map(|p| Tensor {
                shape: p.shape.clone(),
                data: p.grad.clone(),
            })
            .collect();
        Ok(out)
    }

    fn clear_caches(&mut self) {
        for l in self.layers.iter_mut() {
            l.clear_cache();
        }
        Tensor::drop_spares();
        crate::alloc::release_cached();
    }

    fn all_params(&self) -> impl Iterator<Item = &Param> {
        self.layers.iter().flat_map(|l| l.params().iter())
    }

    /// Every weight in Keras order, as (shape, values).
    pub fn weights(&self) -> Vec<(Vec<usize>, Vec<f32>)> {
        self.all_params()
            .map(|p| (p.shape.clone(), p.value.clone()))
            .collect()
    }

    /// (shape, trainable) of every weight, in Keras order.
    pub fn weights_info(&self) -> Vec<(Vec<usize>, bool)> {
        self.all_params()
            .map(|p| (p.shape.clone(), p.trainable))
            .collect()
    }

    /// (first weight index, number of weights) of each layer.
    pub fn layer_weight_ranges(&self) -> Vec<(usize, usize)> {
        let mut start = 0;
        self.layers
            .iter()
            .map(|l| {
                let n = l.params().len();
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
        let mut params: Vec<&mut Param> = self
            .layers
            .iter_mut()
            .flat_map(|l| l.params_mut().iter_mut())
            .skip(first)
            .take(expected)
            .collect();
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
            layers, compiled, ..
        } = self;
        let opt = &mut compiled.as_mut().ok_or_else(not_compiled)?.optimizer;
        let mut out = Vec::new();
        for (pos, p) in layers.iter().flat_map(|l| l.params().iter()).enumerate() {
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
            layers, compiled, ..
        } = self;
        let opt = &mut compiled.as_mut().ok_or_else(not_compiled)?.optimizer;
        let n_slots = opt.slot_names().len();
        let trainable: Vec<(usize, usize)> = layers
            .iter()
            .flat_map(|l| l.params().iter())
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
        let layer = self
            .layers
            .get_mut(index)
            .ok_or_else(|| Error::Value(format!("no layer at index {index}")))?;
        layer.set_trainable(trainable);
        Ok(())
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

/// The backward pass over `layers` from dL/d(prediction) (dL/d(pre-activation) of the last layer when the loss
/// fused with its activation), after a training `forward_pass`; a layer that ran fused with the max pooling
/// after it (`Layer::fused_with_next`) takes both backward in one call. Returns the gradient reaching the first
/// layer's input (empty: the first layer is not asked).
fn backward_layers(
    layers: &mut [Box<dyn Layer>],
    grad: Tensor,
    fused_loss: bool,
) -> Result<Tensor> {
    let n = layers.len();
    let mut g = grad;
    let mut i = n;
    while i > 0 {
        i -= 1;
        if i > 0 && layers[i - 1].fused_with_next() {
            // this pooling ran fused with the layer before it: one backward pass for both
            i -= 1;
            g = layers[i].backward_max_pooled(g, i > 0)?;
            continue;
        }
        g = if i + 1 == n && fused_loss {
            layers[i].backward_preactivation(g, i > 0)?
        } else {
            layers[i].backward(g, i > 0)?
        };
    }
    Ok(g)
}

fn not_compiled() -> Error {
    Error::Runtime(
        "You must call `compile()` before using the model for training or evaluation.".into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let mut h = Tensor::new(vec![n, 13, 11, 2], x.clone()).unwrap();
        let mut step_rng = Rng::new(0);
        for layer in m.layers.iter_mut() {
            let mut ctx = Ctx {
                training: false,
                rng: &mut step_rng,
            };
            h = layer.forward(h, &mut ctx).unwrap();
        }
        let fused = m
            .forward_pass(Tensor::new(vec![n, 13, 11, 2], x).unwrap(), false, false)
            .unwrap();
        assert_eq!(fused.shape, h.shape);
        assert_eq!(fused.data, h.data); // bit for bit
        assert!(m.layers[0].can_fuse_max_pool(&m.layers[1].max_pool_window().unwrap(), false));
        assert!(m.layers[2].can_fuse_max_pool(&m.layers[3].max_pool_window().unwrap(), false));
        assert!(m.layers[5].max_pool_window().is_none());
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
            let pred = m.forward_pass(input, true, trace).unwrap();
            let fused: Vec<bool> = (0..m.layers.len())
                .map(|i| i > 0 && m.layers[i - 1].fused_with_next())
                .collect();
            let grad = Tensor::new(vec![n, 3], g.clone()).unwrap();
            backward_layers(&mut m.layers, grad, false).unwrap();
            let grads: Vec<Vec<f32>> = m.all_params().map(|p| p.grad.clone()).collect();
            (pred.data, grads, fused)
        };
        let (pred_fused, grads_fused, fused) = run(false);
        let (pred_plain, grads_plain, plain) = run(true); // a traced pass never fuses
        assert_eq!(
            fused,
            vec![false, true, false, true, false, false, false, false]
        );
        assert!(plain.iter().all(|f| !f));
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
        let xd = Data::new(&xs, x).unwrap();
        let yd = Data::new(&ys, y).unwrap();
        m.prepare(&xd, &yd, None).unwrap();
        let mut hist = Vec::new();
        for _ in 0..epochs {
            m.begin_epoch(90, true);
            let (_, finished, logs) = m
                .train_steps(&xd, &yd, None, 16, usize::MAX, &mut |_, _| Ok(()))
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
        let xd = Data::new(&xs, &x).unwrap();
        let yd = Data::new(&ys, &y).unwrap();
        m.prepare(&xd, &yd, None).unwrap();
        m.begin_epoch(90, false);
        let r = m.train_steps(&xd, &yd, None, 10, 3, &mut |_, _| Err(Error::Interrupted));
        assert!(matches!(r, Err(Error::Interrupted)));
        let p = m.predict(&xd, 32, &mut |_, _| Ok(())).unwrap();
        assert_eq!(p.shape, vec![90, 3]);
        assert!(p.data.iter().all(|v| v.is_finite()));
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
