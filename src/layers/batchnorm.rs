//! BatchNormalization over the last axis: batch statistics in training (and moving averages updated),
//! moving statistics in inference. Weights `[gamma, beta, moving_mean, moving_variance]` as Keras.

use super::{initializer_of, Ctx, Layer, Param};
use crate::config::Cfg;
use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::tensor::{shape_str, Tensor};
use rayon::prelude::*;
use serde_json::Value;

pub struct BatchNormalization {
    name: String,
    /// The layer's own flag: a frozen BatchNormalization runs in inference mode, even without gamma/beta.
    trainable: bool,
    axis: i64,
    momentum: f32,
    epsilon: f32,
    center: bool,
    scale: bool,
    inits: [crate::initializers::Initializer; 4],
    c: usize,
    params: Vec<Param>,
    // training cache
    xhat: Vec<f32>,
    inv_std: Vec<f32>,
}

impl BatchNormalization {
    pub fn from_config(v: &Value) -> Result<Self> {
        let cfg = Cfg::new("BatchNormalization", v)?;
        // -1 or the last axis' positive index (checked at build, when the rank is known)
        let axis = match cfg.raw("axis") {
            None => -1,
            Some(Value::Array(a)) if a.len() == 1 && a[0].as_i64().is_some() => {
                a[0].as_i64().unwrap_or(-1)
            }
            Some(x) if x.as_i64().is_some() => x.as_i64().unwrap_or(-1),
            Some(x) => return Err(cfg.err("axis", "an int", x)),
        };
        let momentum = cfg.f32_or("momentum", 0.99)?;
        let epsilon = cfg.f32_or("epsilon", 1e-3)?;
        if !(0.0..=1.0).contains(&momentum) || epsilon <= 0.0 {
            return Err(Error::Value(format!(
                "BatchNormalization '{}': expected momentum in [0, 1] and epsilon > 0, received {momentum} and {epsilon}",
                cfg.name
            )));
        }
        Ok(BatchNormalization {
            trainable: true,
            axis,
            momentum,
            epsilon,
            center: cfg.bool_or("center", true)?,
            scale: cfg.bool_or("scale", true)?,
            inits: [
                initializer_of(&cfg, "gamma_initializer", "ones")?,
                initializer_of(&cfg, "beta_initializer", "zeros")?,
                initializer_of(&cfg, "moving_mean_initializer", "zeros")?,
                initializer_of(&cfg, "moving_variance_initializer", "ones")?,
            ],
            name: cfg.name,
            c: 0,
            params: Vec::new(),
            xhat: Vec::new(),
            inv_std: Vec::new(),
        })
    }

    fn idx(&self, name: &str) -> Option<usize> {
        self.params.iter().position(|p| p.name == name)
    }

    fn value(&self, name: &str, default: f32) -> Vec<f32> {
        match self.idx(name) {
            Some(i) => self.params[i].value.clone(),
            None => vec![default; self.c],
        }
    }

    /// Whether training-mode statistics apply: a frozen BatchNormalization runs in inference mode (as Keras).
    fn uses_batch_stats(&self, training: bool) -> bool {
        training && self.trainable
    }
}

impl Layer for BatchNormalization {
    fn name(&self) -> &str {
        &self.name
    }
    fn class_name(&self) -> &'static str {
        "BatchNormalization"
    }

    fn build(&mut self, input_shape: &[usize], rng: &mut Rng) -> Result<Vec<usize>> {
        let Some(&c) = input_shape.last() else {
            return Err(Error::Value(format!(
                "BatchNormalization '{}': input must have at least 2 dimensions, received (None,)",
                self.name
            )));
        };
        if c == 0 {
            return Err(Error::Value(format!(
                "BatchNormalization '{}': the normalised axis has size 0, received input shape {}",
                self.name,
                shape_str(input_shape)
            )));
        }
        let rank = input_shape.len() as i64 + 1;
        if self.axis != -1 && self.axis != rank - 1 {
            return Err(Error::Value(format!(
                "BatchNormalization '{}': only the last axis (channels-last) is supported: axis=-1 or {} for \
                 inputs of shape {}, received axis={}",
                self.name,
                rank - 1,
                shape_str(input_shape),
                self.axis
            )));
        }
        self.c = c;
        let shape = vec![c];
        let mut params = Vec::new();
        if self.scale {
            params.push(Param::new(
                "gamma",
                shape.clone(),
                self.inits[0].fill(&shape, rng)?,
                true,
            ));
        }
        if self.center {
            params.push(Param::new(
                "beta",
                shape.clone(),
                self.inits[1].fill(&shape, rng)?,
                true,
            ));
        }
        params.push(Param::new(
            "moving_mean",
            shape.clone(),
            self.inits[2].fill(&shape, rng)?,
            false,
        ));
        params.push(Param::new(
            "moving_variance",
            shape.clone(),
            self.inits[3].fill(&shape, rng)?,
            false,
        ));
        self.params = params;
        Ok(input_shape.to_vec())
    }

    fn forward(&mut self, mut x: Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        let c = self.c;
        if x.last_dim() != c || x.shape.len() < 2 {
            return Err(Error::Value(format!(
                "Input 0 of layer \"{}\" (BatchNormalization) is incompatible with the layer: expected axis -1 \
                 to have value {c}, found shape {}",
                self.name,
                shape_str(x.shape.get(1..).unwrap_or(&[]))
            )));
        }
        let rows = x.data.len() / c;
        let gamma = self.value("gamma", 1.0);
        let beta = self.value("beta", 0.0);
        let (mean, var) = if self.uses_batch_stats(ctx.training) && rows > 0 {
            // two passes (the mean, then the squared deviations from it), each summed in f64
            let mean = channel_sums(&x.data, c, |acc, row| {
                acc.iter_mut().zip(row).for_each(|(m, &v)| *m += v as f64)
            });
            let mean: Vec<f64> = mean.iter().map(|m| m / rows as f64).collect();
            let var = channel_sums(&x.data, c, |acc, row| {
                acc.iter_mut()
                    .zip(row)
                    .zip(&mean)
                    .for_each(|((s, &v), m)| *s += (v as f64 - m).powi(2))
            });
            let mean: Vec<f32> = mean.iter().map(|&m| m as f32).collect();
            let var: Vec<f32> = var.iter().map(|&v| (v / rows as f64) as f32).collect();
            let m = self.momentum;
            for (name, batch) in [("moving_mean", &mean), ("moving_variance", &var)] {
                if let Some(i) = self.idx(name) {
                    self.params[i]
                        .value
                        .iter_mut()
                        .zip(batch.iter())
                        .for_each(|(mv, &bv)| *mv = *mv * m + bv * (1.0 - m));
                }
            }
            (mean, var)
        } else {
            (
                self.value("moving_mean", 0.0),
                self.value("moving_variance", 1.0),
            )
        };
        let inv_std: Vec<f32> = var
            .iter()
            .map(|v| 1.0 / (v + self.epsilon).sqrt())
            .collect();
        let span = ROWS_PER_CHUNK * c;
        let normalise = |xc: &mut [f32], xhat: Option<&mut [f32]>| {
            normalise_rows(xc, xhat, &mean, &inv_std, &gamma, &beta)
        };
        if ctx.training {
            self.xhat.resize(x.data.len(), 0.0);
            x.data
                .par_chunks_mut(span)
                .zip(self.xhat.par_chunks_mut(span))
                .for_each(|(xc, hc)| normalise(xc, Some(hc)));
            self.inv_std = inv_std;
        } else {
            x.data
                .par_chunks_mut(span)
                .for_each(|xc| normalise(xc, None));
        }
        Ok(x)
    }

    fn backward(&mut self, mut grad: Tensor, _need: bool) -> Result<Tensor> {
        let c = self.c;
        if self.xhat.len() != grad.data.len() || c == 0 {
            return Err(Error::Runtime(format!(
                "BatchNormalization '{}': backward called without a matching training forward pass",
                self.name
            )));
        }
        let rows = grad.data.len() / c;
        let gamma = self.value("gamma", 1.0);
        // sum(g) and sum(g * xhat) per channel, side by side in one f64 buffer of 2c
        let sums = paired_channel_sums(&grad.data, &self.xhat, c);
        let (sum_g, sum_gx) = sums.split_at(c);
        if let Some(i) = self.idx("gamma") {
            self.params[i]
                .grad
                .iter_mut()
                .zip(sum_gx)
                .for_each(|(g, s)| *g += *s as f32);
        }
        if let Some(i) = self.idx("beta") {
            self.params[i]
                .grad
                .iter_mut()
                .zip(sum_g)
                .for_each(|(g, s)| *g += *s as f32);
        }
        let batch_stats = self.trainable;
        let n = rows as f32;
        let k: Vec<f32> = gamma
            .iter()
            .zip(&self.inv_std)
            .map(|(g, s)| g * s)
            .collect();
        let mean_g: Vec<f32> = sum_g.iter().map(|&s| s as f32 / n).collect();
        let mean_gx: Vec<f32> = sum_gx.iter().map(|&s| s as f32 / n).collect();
        let span = ROWS_PER_CHUNK * c;
        grad.data
            .par_chunks_mut(span)
            .zip(self.xhat.par_chunks(span))
            .for_each(|(gc, hc)| {
                if batch_stats {
                    input_grad_rows(gc, hc, &k, &mean_g, &mean_gx)
                } else {
                    gc.chunks_exact_mut(c)
                        .for_each(|row| row.iter_mut().zip(&k).for_each(|(g, k)| *g *= k))
                }
            });
        Ok(grad)
    }

    fn params(&self) -> &[Param] {
        &self.params
    }
    fn params_mut(&mut self) -> &mut [Param] {
        &mut self.params
    }
    fn set_trainable(&mut self, trainable: bool) {
        self.trainable = trainable;
        for p in self.params.iter_mut() {
            p.trainable = trainable && p.trainable_kind;
        }
    }
    fn clear_cache(&mut self) {
        self.xhat = Vec::new();
        self.inv_std = Vec::new();
    }
}

/// Rows per parallel piece of the per-channel passes. Fixed, so the partial sums (added in piece order) and hence
/// the results are the same for any thread count.
const ROWS_PER_CHUNK: usize = 256;

/// Per-channel f64 sums over every row of `data` (rows of `c`), `add(acc, row)` adding one row into a piece's
/// accumulator; the pieces' sums are added in order.
fn channel_sums(data: &[f32], c: usize, add: impl Fn(&mut [f64], &[f32]) + Sync) -> Vec<f64> {
    let partials: Vec<Vec<f64>> = data
        .par_chunks(ROWS_PER_CHUNK * c)
        .map(|piece| {
            let mut acc = vec![0.0f64; c];
            piece.chunks_exact(c).for_each(|row| add(&mut acc, row));
            acc
        })
        .collect();
    let mut total = vec![0.0f64; c];
    for p in &partials {
        total.iter_mut().zip(p).for_each(|(t, v)| *t += v);
    }
    total
}

/// `[sum(g), sum(g * xhat)]` per channel (2c values), as `channel_sums`.
fn paired_channel_sums(g: &[f32], xhat: &[f32], c: usize) -> Vec<f64> {
    let span = ROWS_PER_CHUNK * c;
    let partials: Vec<Vec<f64>> = g
        .par_chunks(span)
        .zip(xhat.par_chunks(span))
        .map(|(gc, hc)| {
            let mut acc = vec![0.0f64; 2 * c];
            let (sg, sgx) = acc.split_at_mut(c);
            for (row, xh) in gc.chunks_exact(c).zip(hc.chunks_exact(c)) {
                for (((a, b), &gv), &hv) in sg.iter_mut().zip(sgx.iter_mut()).zip(row).zip(xh) {
                    *a += gv as f64;
                    *b += (gv * hv) as f64;
                }
            }
            acc
        })
        .collect();
    let mut total = vec![0.0f64; 2 * c];
    for p in &partials {
        total.iter_mut().zip(p).for_each(|(t, v)| *t += v);
    }
    total
}

crate::simd_fn! {
    /// `xhat = (x - mean) * inv_std` (kept when `xhat` is given) and `y = gamma * xhat + beta`, in place.
    fn normalise_rows(
        x: &mut [f32],
        xhat: Option<&mut [f32]>,
        mean: &[f32],
        inv_std: &[f32],
        gamma: &[f32],
        beta: &[f32],
    ) {
        let c = mean.len();
        match xhat {
            Some(h) => {
                for (row, hrow) in x.chunks_exact_mut(c).zip(h.chunks_exact_mut(c)) {
                    for (((((v, hv), &m), &s), &g), &b) in
                        row.iter_mut().zip(hrow).zip(mean).zip(inv_std).zip(gamma).zip(beta)
                    {
                        let xh = (*v - m) * s;
                        *hv = xh;
                        *v = g * xh + b;
                    }
                }
            }
            None => {
                for row in x.chunks_exact_mut(c) {
                    for ((((v, &m), &s), &g), &b) in
                        row.iter_mut().zip(mean).zip(inv_std).zip(gamma).zip(beta)
                    {
                        *v = g * ((*v - m) * s) + b;
                    }
                }
            }
        }
    }
}

crate::simd_fn! {
    /// BatchNormalization's input gradient over batch statistics, in place:
    /// `dx = k * (g - mean(g) - xhat * mean(g * xhat))` with `k = gamma * inv_std`.
    fn input_grad_rows(g: &mut [f32], xhat: &[f32], k: &[f32], mean_g: &[f32], mean_gx: &[f32]) {
        let c = k.len();
        for (row, hrow) in g.chunks_exact_mut(c).zip(xhat.chunks_exact(c)) {
            for ((((v, &h), &k), &mg), &mgx) in row.iter_mut().zip(hrow).zip(k).zip(mean_g).zip(mean_gx) {
                *v = k * (*v - (mg + h * mgx));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::gradcheck;
    use super::*;
    use serde_json::json;

    #[test]
    fn normalises_and_updates_moving_stats() {
        let mut bn = BatchNormalization::from_config(&json!({})).unwrap();
        let mut rng = Rng::new(0);
        bn.build(&[2], &mut rng).unwrap();
        let mut ctx = Ctx {
            training: true,
            rng: &mut rng,
        };
        let x = Tensor::new(vec![4, 2], vec![1.0, 10.0, 2.0, 20.0, 3.0, 30.0, 4.0, 40.0]).unwrap();
        let y = bn.forward(x, &mut ctx).unwrap();
        let col0: Vec<f32> = y.data.iter().step_by(2).copied().collect();
        let expect = 1.0 / (1.25f32 + 1e-3).sqrt();
        assert!((col0[0] + 1.5 * expect).abs() < 1e-5);
        // moving_mean = 0.99 * 0 + 0.01 * 2.5
        assert!((bn.params[2].value[0] - 0.025).abs() < 1e-7);
        // moving_variance = 0.99 * 1 + 0.01 * 1.25 (biased batch variance)
        assert!((bn.params[3].value[0] - 1.0025).abs() < 1e-6);
    }

    #[test]
    fn without_gamma_and_beta_still_uses_batch_statistics() {
        let mut bn =
            BatchNormalization::from_config(&json!({"scale": false, "center": false})).unwrap();
        let mut rng = Rng::new(0);
        bn.build(&[1], &mut rng).unwrap();
        let mut ctx = Ctx {
            training: true,
            rng: &mut rng,
        };
        let y = bn
            .forward(Tensor::new(vec![2, 1], vec![1.0, 3.0]).unwrap(), &mut ctx)
            .unwrap();
        let k = 1.0 / (1.0f32 + 1e-3).sqrt();
        assert!((y.data[0] + k).abs() < 1e-6 && (y.data[1] - k).abs() < 1e-6);
        assert!((bn.params[0].value[0] - 0.02).abs() < 1e-7);
        bn.set_trainable(false);
        let mut ctx = Ctx {
            training: true,
            rng: &mut rng,
        };
        let y = bn
            .forward(Tensor::new(vec![2, 1], vec![1.0, 3.0]).unwrap(), &mut ctx)
            .unwrap();
        assert!((y.data[0] - (1.0 - 0.02) / (1.0f32 + 1e-3).sqrt()).abs() < 1e-5);
    }

    #[test]
    fn gradients() {
        let mut bn = BatchNormalization::from_config(&json!({})).unwrap();
        let mut rng = Rng::new(0);
        bn.build(&[2, 3], &mut rng).unwrap();
        bn.params[0].value = vec![0.5, 1.5, -1.0];
        bn.params[1].value = vec![0.1, -0.2, 0.3];
        gradcheck::check(&mut bn, gradcheck::input(&[4, 2, 3], 8), 2e-2);
    }
}
