//! Layers: each caches what its backward needs, adds into its parameters' gradients and returns the gradient
//! for its input. Shapes passed to `build` exclude the batch axis.

mod activation;
mod activation_layers;
mod batchnorm;
mod conv2d;
mod conv_transpose;
pub(crate) mod dense;
mod depthwise;
mod dropout;
mod embedding;
mod layer_norm;
mod masking;
mod noise;
mod one_d;
mod pooling;
mod recurrent;
mod reshape;
mod shape_ops;
mod steps;

use crate::activations::Activation;
use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::tensor::{shape_str, Tensor};
use rayon::prelude::*;
use serde_json::Value;

pub use activation::ActivationLayer;
pub use activation_layers::{PReLU, ParamActivation};
pub use batchnorm::BatchNormalization;
pub use conv2d::Conv2D;
pub use conv_transpose::Conv2DTranspose;
pub use dense::Dense;
pub use depthwise::{DepthwiseConv2D, SeparableConv2D};
pub use dropout::Dropout;
pub use embedding::Embedding;
pub use layer_norm::LayerNormalization;
pub use noise::{GaussianNoise, SpatialDropout2D};
pub use one_d::OneD;
pub use pooling::{GlobalPool2D, Pool2D};
pub use recurrent::{Bidirectional, Recurrent};
pub use reshape::{Flatten, Reshape};
pub use shape_ops::{Identity, Permute, RepeatVector};
pub use steps::StepLayer;

/// One weight array in Keras layout, with its gradient.
#[derive(Clone, Debug)]
pub struct Param {
    pub name: &'static str,
    pub shape: Vec<usize>,
    pub value: Vec<f32>,
    pub grad: Vec<f32>,
    /// False for statistics a layer updates itself (BatchNormalization's moving mean/variance).
    pub trainable_kind: bool,
    /// The layer's `trainable` flag, applied to trainable kinds.
    pub trainable: bool,
    /// Penalty added to the loss (`kernel_regularizer=` / `bias_regularizer=`).
    pub regularizer: Option<Regularizer>,
    /// Projection applied after each optimizer update (`kernel_constraint=`, ...).
    pub constraint: Option<crate::constraints::Constraint>,
}

/// Keras's L1/L2/L1L2 weight penalty: `l1 * sum(|w|) + l2 * sum(w^2)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Regularizer {
    pub l1: f32,
    pub l2: f32,
}

impl Regularizer {
    /// From `"l1"`, `"l2"`, `"l1_l2"` or `{"class_name": "L1L2", "config": {"l1": .., "l2": ..}}`; None for null.
    pub fn from_value(v: &Value) -> Result<Option<Self>> {
        let Some((name, cfg)) = crate::config::class_and_config(v, "regularizer")? else {
            return Ok(None);
        };
        let num = |k: &str, d: f32| -> Result<f32> {
            match cfg.get(k) {
                None | Some(Value::Null) => Ok(d),
                Some(x) => x
                    .as_f64()
                    .filter(|f| f.is_finite() && *f >= 0.0)
                    .map(|f| f as f32)
                    .ok_or_else(|| {
                        Error::Value(format!(
                            "{name}: `{k}` must be a non-negative number, received {x}"
                        ))
                    }),
            }
        };
        let r = match name {
            "l1" | "L1" => Regularizer {
                l1: num("l1", 0.01)?,
                l2: 0.0,
            },
            "l2" | "L2" => Regularizer {
                l1: 0.0,
                l2: num("l2", 0.01)?,
            },
            "l1_l2" | "L1L2" => Regularizer {
                l1: num("l1", 0.0)?,
                l2: num("l2", 0.0)?,
            },
            _ => {
                return Err(Error::Value(format!(
                    "Unknown regularizer: '{name}'. Expected one of: l1, l2, l1_l2 (L1, L2, L1L2)"
                )))
            }
        };
        Ok(Some(r))
    }

    pub fn penalty(&self, w: &[f32]) -> f64 {
        let (mut a, mut b) = (0.0f64, 0.0f64);
        for &x in w {
            a += x.abs() as f64;
            b += (x * x) as f64;
        }
        self.l1 as f64 * a + self.l2 as f64 * b
    }

    /// Add d(penalty)/dw into `grad`.
    pub fn add_gradient(&self, w: &[f32], grad: &mut [f32]) {
        for (g, &x) in grad.iter_mut().zip(w) {
            let sign = if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                0.0
            };
            *g += self.l1 * sign + 2.0 * self.l2 * x;
        }
    }
}

impl Param {
    pub fn new(
        name: &'static str,
        shape: Vec<usize>,
        value: Vec<f32>,
        trainable_kind: bool,
    ) -> Self {
        let n = value.len();
        Param {
            name,
            shape,
            value,
            grad: vec![0.0; n],
            trainable_kind,
            trainable: trainable_kind,
            regularizer: None,
            constraint: None,
        }
    }
}

/// What a forward pass needs besides its input.
pub struct Ctx<'a> {
    pub training: bool,
    pub rng: &'a mut Rng,
}

/// Lets a graph rewrite see the concrete layer behind a `dyn Layer` (`crate::graph::fusion`).
pub trait AsAny {
    fn as_any(&self) -> &dyn std::any::Any;
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any;
}

impl<T: std::any::Any> AsAny for T {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

pub trait Layer: AsAny + Send + Sync {
    fn name(&self) -> &str;
    fn class_name(&self) -> &'static str;
    /// Check the input shape, create the weights, return the output shape.
    fn build(&mut self, input_shape: &[usize], rng: &mut Rng) -> Result<Vec<usize>>;
    fn forward(&mut self, x: Tensor, ctx: &mut Ctx) -> Result<Tensor>;
    /// dL/d(output) to dL/d(input). With `need_input_grad` false (the first layer) it may return an empty tensor.
    fn backward(&mut self, grad: Tensor, need_input_grad: bool) -> Result<Tensor>;
    fn params(&self) -> &[Param] {
        &[]
    }
    fn params_mut(&mut self) -> &mut [Param] {
        &mut []
    }
    /// The activation applied last inside this layer; lets the model fuse softmax/sigmoid with cross-entropy.
    fn activation(&self) -> Activation {
        Activation::Linear
    }
    /// Backward from the gradient w.r.t. the pre-activation (skipping the fused activation's derivative).
    fn backward_preactivation(&mut self, grad_z: Tensor, need_input_grad: bool) -> Result<Tensor> {
        self.backward(grad_z, need_input_grad)
    }
    fn set_trainable(&mut self, trainable: bool) {
        for p in self.params_mut() {
            p.trainable = trainable && p.trainable_kind;
        }
    }
    /// Drop cached activations (after inference or between fits) so memory does not linger.
    fn clear_cache(&mut self) {}
    /// How many tensors one call may read: the main input, then what a layer takes besides it (a recurrent
    /// layer's initial states). A Keras mask, when a node passes one, comes last and is not counted here.
    fn max_inputs(&self) -> usize {
        1
    }
    /// Whether a call may pass a Keras mask `(batch, steps)` (1 keeps a step, 0 skips it) as its last input.
    fn takes_mask(&self) -> bool {
        false
    }
    /// `build` with every input's sample shape, the main input first; `masked`: the last one is a mask.
    fn build_inputs(
        &mut self,
        shapes: &[Vec<usize>],
        masked: bool,
        rng: &mut Rng,
    ) -> Result<Vec<usize>> {
        let _ = masked;
        self.build(&shapes[0], rng)
    }
    /// `forward` over every input of a call (as given to `build_inputs`).
    fn forward_inputs(&mut self, xs: Vec<Tensor>, ctx: &mut Ctx) -> Result<Tensor> {
        let x = xs.into_iter().next().unwrap_or_default();
        self.forward(x, ctx)
    }
    /// `backward` to every input of a call: None where no gradient flows (a mask).
    fn backward_inputs(
        &mut self,
        grad: Tensor,
        need_input_grad: bool,
    ) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(self.backward(grad, need_input_grad)?)])
    }
    /// Forget the state a `stateful` layer carries from one batch to the next.
    fn reset_states(&mut self) {}
    /// Whether each sample's output depends on that sample alone and the call alone (a `stateful` layer's
    /// depends on the batches before: inference must not split its batches).
    fn batch_local(&self) -> bool {
        true
    }
}

/// A node's mask (the sample shape of its last input) must be `(steps,)`: one value per sample and step.
pub fn check_mask_shape(who: &str, mask: Option<&Vec<usize>>, steps: usize) -> Result<()> {
    match mask {
        Some(m) if m.as_slice() == [steps] => Ok(()),
        m => Err(Error::Value(format!(
            "{who}: the mask must have shape (batch, {steps}) (the input's batch and timesteps), received \
             (batch, {})",
            m.map(|m| m.iter().map(usize::to_string).collect::<Vec<_>>().join(", "))
                .unwrap_or_default()
        ))),
    }
}

/// Classes kerust can build, by their Keras names.
pub const CLASS_NAMES: &[&str] = &[
    "Dense",
    "Activation",
    "Flatten",
    "Reshape",
    "Conv2D",
    "MaxPooling2D",
    "AveragePooling2D",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling2D",
    "Dropout",
    "BatchNormalization",
    "LeakyReLU",
    "ReLU",
    "ELU",
    "Softmax",
    "PReLU",
    "SpatialDropout2D",
    "GaussianNoise",
    "Permute",
    "RepeatVector",
    "Identity",
    "Masking",
    "Embedding",
    "LayerNormalization",
    "SimpleRNN",
    "LSTM",
    "GRU",
    "Bidirectional",
    "Conv1D",
    "MaxPooling1D",
    "AveragePooling1D",
    "GlobalAveragePooling1D",
    "GlobalMaxPooling1D",
    "SpatialDropout1D",
    "UpSampling1D",
    "ZeroPadding1D",
    "Cropping1D",
    "DepthwiseConv2D",
    "SeparableConv2D",
    "Conv2DTranspose",
];

pub fn from_config(class_name: &str, cfg: &Value) -> Result<Box<dyn Layer>> {
    let layer: Box<dyn Layer> = match class_name {
        "Dense" => Box::new(Dense::from_config(cfg)?),
        "Activation" => Box::new(ActivationLayer::from_config(cfg)?),
        "Flatten" => Box::new(Flatten::from_config(cfg)?),
        "Reshape" => Box::new(Reshape::from_config(cfg)?),
        "Conv2D" => Box::new(Conv2D::from_config(cfg)?),
        "MaxPooling2D" => Box::new(Pool2D::from_config(cfg, true)?),
        "AveragePooling2D" => Box::new(Pool2D::from_config(cfg, false)?),
        "GlobalAveragePooling2D" => Box::new(GlobalPool2D::from_config(cfg, false)?),
        "GlobalMaxPooling2D" => Box::new(GlobalPool2D::from_config(cfg, true)?),
        "Dropout" => Box::new(Dropout::from_config(cfg)?),
        "BatchNormalization" => Box::new(BatchNormalization::from_config(cfg)?),
        "LeakyReLU" => Box::new(ParamActivation::from_config("LeakyReLU", cfg)?),
        "ReLU" => Box::new(ParamActivation::from_config("ReLU", cfg)?),
        "ELU" => Box::new(ParamActivation::from_config("ELU", cfg)?),
        "Softmax" => Box::new(ParamActivation::from_config("Softmax", cfg)?),
        "PReLU" => Box::new(PReLU::from_config(cfg)?),
        "SpatialDropout2D" => Box::new(SpatialDropout2D::from_config(cfg)?),
        "GaussianNoise" => Box::new(GaussianNoise::from_config(cfg)?),
        "Permute" => Box::new(Permute::from_config(cfg)?),
        "RepeatVector" => Box::new(RepeatVector::from_config(cfg)?),
        "Identity" => Box::new(Identity::from_config(cfg)?),
        "Masking" => Box::new(masking::Masking::from_config(cfg)?),
        "Embedding" => Box::new(Embedding::from_config(cfg)?),
        "LayerNormalization" => Box::new(LayerNormalization::from_config(cfg)?),
        "SimpleRNN" => Box::new(Recurrent::from_config("SimpleRNN", cfg)?),
        "LSTM" => Box::new(Recurrent::from_config("LSTM", cfg)?),
        "GRU" => Box::new(Recurrent::from_config("GRU", cfg)?),
        "Bidirectional" => Box::new(Bidirectional::from_config(cfg)?),
        "Conv1D" => Box::new(OneD::from_config("Conv1D", cfg)?),
        "MaxPooling1D" => Box::new(OneD::from_config("MaxPooling1D", cfg)?),
        "AveragePooling1D" => Box::new(OneD::from_config("AveragePooling1D", cfg)?),
        "GlobalAveragePooling1D" => Box::new(OneD::from_config("GlobalAveragePooling1D", cfg)?),
        "GlobalMaxPooling1D" => Box::new(OneD::from_config("GlobalMaxPooling1D", cfg)?),
        "SpatialDropout1D" => Box::new(OneD::from_config("SpatialDropout1D", cfg)?),
        "UpSampling1D" => Box::new(StepLayer::from_config("UpSampling1D", cfg)?),
        "ZeroPadding1D" => Box::new(StepLayer::from_config("ZeroPadding1D", cfg)?),
        "Cropping1D" => Box::new(StepLayer::from_config("Cropping1D", cfg)?),
        "DepthwiseConv2D" => Box::new(DepthwiseConv2D::from_config(cfg)?),
        "SeparableConv2D" => Box::new(SeparableConv2D::from_config(cfg)?),
        "Conv2DTranspose" => Box::new(Conv2DTranspose::from_config(cfg)?),
        other => {
            return Err(Error::Value(format!(
                "Unknown layer class '{other}'. kerust supports: {}",
                CLASS_NAMES.join(", ")
            )))
        }
    };
    Ok(layer)
}

/// Shared rule for layers that need a fixed input rank: a clear error naming the layer and both shapes.
pub fn expect_rank(
    layer: &dyn Layer,
    input_shape: &[usize],
    rank: usize,
    meaning: &str,
) -> Result<()> {
    if input_shape.len() != rank {
        return Err(Error::Value(format!(
            "Input 0 of layer \"{}\" ({}) is incompatible with the layer: expected ndim={} {}, found ndim={}. \
             Full shape received: {}",
            layer.name(),
            layer.class_name(),
            rank + 1,
            meaning,
            input_shape.len() + 1,
            shape_str(input_shape)
        )));
    }
    Ok(())
}

/// An activation applied at the end of a layer, with what its derivative needs cached during training.
#[derive(Clone, Debug)]
pub struct FusedActivation {
    pub act: Activation,
    pre: Vec<f32>,
    out: Vec<f32>,
    /// ReLU keeps one byte per value (output > 0) instead of a copy of the output: a quarter of the traffic.
    mask: Vec<u8>,
}

/// Values per parallel piece of element-wise work, rounded to whole rows (softmax works row by row). The
/// functions are element- or row-wise, so the split never changes a result.
fn elementwise_chunk(row: usize) -> usize {
    const TARGET: usize = 1 << 14;
    let row = row.max(1);
    (TARGET / row).max(1) * row
}

crate::simd_fn! {
    fn relu_with_mask(v: &mut [f32], mask: &mut [u8]) {
        v.iter_mut().zip(mask.iter_mut()).for_each(|(x, m)| {
            *x = x.max(0.0);
            *m = (*x > 0.0) as u8;
        })
    }
}

crate::simd_fn! {
    /// ReLU's derivative as TensorFlow takes it: the gradient where the output was positive, else 0.
    fn relu_backward_masked(grad: &mut [f32], mask: &[u8]) {
        grad.iter_mut()
            .zip(mask)
            .for_each(|(g, &m)| *g = if m != 0 { *g } else { 0.0 })
    }
}

impl FusedActivation {
    pub fn new(act: Activation) -> Self {
        FusedActivation {
            act,
            pre: Vec::new(),
            out: Vec::new(),
            mask: Vec::new(),
        }
    }

    pub fn forward(&mut self, z: &mut Tensor, training: bool) {
        let act = self.act;
        if act == Activation::Linear {
            return;
        }
        let row = z.last_dim();
        let chunk = elementwise_chunk(row);
        if training && act == Activation::Relu {
            self.mask.resize(z.data.len(), 0);
            z.data
                .par_chunks_mut(chunk)
                .zip(self.mask.par_chunks_mut(chunk))
                .for_each(|(v, m)| relu_with_mask(v, m));
            return;
        }
        if training && act.needs_input() {
            self.pre.clone_from(&z.data);
        }
        z.data
            .par_chunks_mut(chunk)
            .for_each(|v| act.forward(v, row));
        if training {
            self.out.clone_from(&z.data);
        }
    }

    pub fn backward(&self, grad: &mut Tensor) -> Result<()> {
        let act = self.act;
        if act == Activation::Linear {
            return Ok(());
        }
        let cached = if act == Activation::Relu {
            self.mask.len()
        } else {
            self.out.len()
        };
        if cached != grad.data.len() {
            return Err(Error::Runtime(
                "backward called without a matching training forward pass".into(),
            ));
        }
        let row = grad.last_dim();
        let chunk = elementwise_chunk(row);
        if act == Activation::Relu {
            grad.data
                .par_chunks_mut(chunk)
                .zip(self.mask.par_chunks(chunk))
                .for_each(|(g, m)| relu_backward_masked(g, m));
            return Ok(());
        }
        let pre = &self.pre;
        grad.data
            .par_chunks_mut(chunk)
            .zip(self.out.par_chunks(chunk))
            .enumerate()
            .for_each(|(i, (g, out))| {
                let input = if pre.is_empty() {
                    &[][..]
                } else {
                    &pre[i * chunk..][..g.len()]
                };
                act.backward(input, out, g, row)
            });
        Ok(())
    }

    /// Whether a layer may apply this activation chunk by chunk inside its own parallel loop, right after
    /// computing each chunk (still in cache), with `apply_chunk`: always in inference; in training when
    /// nothing but ReLU's mask has to be kept for backward.
    pub fn per_chunk(&self, training: bool) -> bool {
        !training || matches!(self.act, Activation::Linear | Activation::Relu)
    }

    /// Whether a per-chunk training pass needs a mask buffer (`take_mask`).
    pub fn needs_mask(&self, training: bool) -> bool {
        training && self.act == Activation::Relu
    }

    /// ReLU's mask buffer sized for `len` values, taken out so the layer's chunks can fill it; give it back
    /// with `restore_mask` before backward.
    pub fn take_mask(&mut self, len: usize) -> Vec<u8> {
        let mut mask = std::mem::take(&mut self.mask);
        mask.resize(len, 0);
        mask
    }

    pub fn restore_mask(&mut self, mask: Vec<u8>) {
        self.mask = mask;
    }

    /// Apply `act` to one chunk of whole rows of length `row`; `mask` (a training ReLU) records output > 0.
    /// Same values as `forward`.
    pub fn apply_chunk(act: Activation, values: &mut [f32], mask: Option<&mut [u8]>, row: usize) {
        match mask {
            Some(m) => relu_with_mask(values, m),
            None => act.forward(values, row),
        }
    }

    pub fn clear(&mut self) {
        self.pre = Vec::new();
        self.out = Vec::new();
        self.mask = Vec::new();
    }
}

/// Parse the common `activation` key (a name or null).
pub fn activation_of(cfg: &crate::config::Cfg) -> Result<Activation> {
    match cfg.raw("activation") {
        None => Ok(Activation::Linear),
        Some(Value::String(s)) => Activation::from_name(s)
            .map_err(|e| Error::Value(format!("{} '{}': {}", cfg.class_name, cfg.name, e))),
        Some(v) => Err(cfg.err("activation", "an activation name", v)),
    }
}

/// The kernel + bias weights that Dense and Conv2D share: their arguments and how the weights are made.
#[derive(Clone, Debug)]
pub struct KernelBias {
    pub use_bias: bool,
    kernel_init: crate::initializers::Initializer,
    bias_init: crate::initializers::Initializer,
    kernel_reg: Option<Regularizer>,
    bias_reg: Option<Regularizer>,
}

impl KernelBias {
    pub fn from_config(cfg: &crate::config::Cfg) -> Result<Self> {
        Ok(KernelBias {
            use_bias: cfg.bool_or("use_bias", true)?,
            kernel_init: initializer_of(cfg, "kernel_initializer", "glorot_uniform")?,
            bias_init: initializer_of(cfg, "bias_initializer", "zeros")?,
            kernel_reg: regularizer_of(cfg, "kernel_regularizer")?,
            bias_reg: regularizer_of(cfg, "bias_regularizer")?,
        })
    }

    /// `[kernel]` or `[kernel, bias]`, the bias as long as the kernel's last axis.
    pub fn make(&self, kernel_shape: Vec<usize>, rng: &mut Rng) -> Result<Vec<Param>> {
        let units = kernel_shape.last().copied().unwrap_or(0);
        let mut kernel = Param::new(
            "kernel",
            kernel_shape.clone(),
            self.kernel_init.fill(&kernel_shape, rng)?,
            true,
        );
        kernel.regularizer = self.kernel_reg;
        let mut params = vec![kernel];
        if self.use_bias {
            let mut bias = Param::new(
                "bias",
                vec![units],
                self.bias_init.fill(&[units], rng)?,
                true,
            );
            bias.regularizer = self.bias_reg;
            params.push(bias);
        }
        Ok(params)
    }
}

/// Parse a `*_regularizer` key.
pub fn regularizer_of(cfg: &crate::config::Cfg, key: &str) -> Result<Option<Regularizer>> {
    match cfg.raw(key) {
        None => Ok(None),
        Some(v) => Regularizer::from_value(v).map_err(|e| {
            Error::Value(format!(
                "{} '{}': `{}`: {}",
                cfg.class_name, cfg.name, key, e
            ))
        }),
    }
}

/// Parse an initializer key with its Keras default.
pub fn initializer_of(
    cfg: &crate::config::Cfg,
    key: &str,
    default: &str,
) -> Result<crate::initializers::Initializer> {
    let v = cfg
        .raw(key)
        .cloned()
        .unwrap_or_else(|| Value::String(default.to_string()));
    crate::initializers::Initializer::from_value(&v).map_err(|e| {
        Error::Value(format!(
            "{} '{}': `{}`: {}",
            cfg.class_name, cfg.name, key, e
        ))
    })
}

#[cfg(test)]
pub(crate) mod gradcheck {
    //! Finite-difference checks shared by every layer's tests: the loss is sum(w * layer(x)) for fixed w.
    use super::*;

    /// A tensor of standard normal values from a fixed seed (the input most checks use).
    pub fn normal_input(shape: &[usize], seed: u64) -> Tensor {
        let mut rng = Rng::new(seed);
        let n = shape.iter().product();
        Tensor::new(shape.to_vec(), (0..n).map(|_| rng.normal()).collect()).unwrap()
    }

    fn loss(layer: &mut dyn Layer, xs: &[Tensor], w: &[f32]) -> f64 {
        let mut rng = Rng::new(5);
        let mut ctx = Ctx {
            training: true,
            rng: &mut rng,
        };
        let y = layer.forward_inputs(xs.to_vec(), &mut ctx).unwrap();
        y.data
            .iter()
            .zip(w)
            .map(|(a, b)| *a as f64 * *b as f64)
            .sum()
    }

    /// Checks d/dx and d/d(every trainable param). `tol` is relative to max(1, |numeric|).
    pub fn check(layer: &mut dyn Layer, x: Tensor, tol: f64) {
        check_inputs(layer, vec![x], tol);
    }

    /// `check` for a call over several inputs (`forward_inputs`): the gradient of each input that has one (a
    /// mask has none, and is not perturbed).
    pub fn check_inputs(layer: &mut dyn Layer, xs: Vec<Tensor>, tol: f64) {
        let mut rng = Rng::new(5);
        let mut ctx = Ctx {
            training: true,
            rng: &mut rng,
        };
        let y = layer.forward_inputs(xs.clone(), &mut ctx).unwrap();
        let w: Vec<f32> = (0..y.data.len())
            .map(|i| ((i * 37 % 17) as f32 - 8.0) / 8.0)
            .collect();
        for p in layer.params_mut() {
            p.grad.iter_mut().for_each(|g| *g = 0.0);
        }
        let dxs = layer
            .backward_inputs(Tensor::new(y.shape.clone(), w.clone()).unwrap(), true)
            .unwrap();
        assert_eq!(
            dxs.len(),
            xs.len(),
            "{}: one gradient per input",
            layer.class_name()
        );
        let h = 1e-2f32;
        for (k, dx) in dxs.iter().enumerate() {
            let Some(dx) = dx else { continue };
            assert_eq!(
                dx.shape,
                xs[k].shape,
                "{}: input {k} gradient shape",
                layer.class_name()
            );
            for i in 0..xs[k].data.len() {
                let mut xp = xs.clone();
                xp[k].data[i] += h;
                let mut xm = xs.clone();
                xm[k].data[i] -= h;
                let num = (loss(layer, &xp, &w) - loss(layer, &xm, &w)) / (2.0 * h as f64);
                let ana = dx.data[i] as f64;
                assert!(
                    (num - ana).abs() <= tol * num.abs().max(1.0),
                    "{} d/dx{k}[{i}]: numeric {num} analytic {ana}",
                    layer.class_name()
                );
            }
        }
        let n_params = layer.params().len();
        for pi in 0..n_params {
            if !layer.params()[pi].trainable {
                continue;
            }
            let grads = layer.params()[pi].grad.clone();
            for (j, &grad) in grads.iter().enumerate() {
                let orig = layer.params()[pi].value[j];
                layer.params_mut()[pi].value[j] = orig + h;
                let lp = loss(layer, &xs, &w);
                layer.params_mut()[pi].value[j] = orig - h;
                let lm = loss(layer, &xs, &w);
                layer.params_mut()[pi].value[j] = orig;
                let num = (lp - lm) / (2.0 * h as f64);
                assert!(
                    (num - grad as f64).abs() <= tol * num.abs().max(1.0),
                    "{} d/d{}[{j}]: numeric {num} analytic {grad}",
                    layer.class_name(),
                    layer.params()[pi].name
                );
            }
        }
    }

    pub fn input(shape: &[usize], seed: u64) -> Tensor {
        let mut r = Rng::new(seed);
        let n = shape.iter().product();
        Tensor::new(shape.to_vec(), (0..n).map(|_| r.normal()).collect()).unwrap()
    }
}
