//! The 1-D convolution and pooling layers over `(batch, steps, channels)`: Conv1D, MaxPooling1D,
//! AveragePooling1D, GlobalAveragePooling1D, GlobalMaxPooling1D and SpatialDropout1D. Each runs its 2-D counterpart on the sequence
//! viewed as an image one row high, `(batch, 1, steps, channels)`, with a window one row high. A view only: no
//! value is copied, and Conv1D's kernel `(kernel_size, in, filters)` is the 2-D kernel `(1, kernel_size, in,
//! filters)` under Keras's 1-D shape.

use super::{Conv2D, Ctx, GlobalPool2D, Layer, Param, Pool2D, SpatialDropout2D};
use crate::activations::Activation;
use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::tensor::Tensor;
use serde_json::Value;

/// Conv1D with `padding="causal"` or `dilation_rate` > 1: the sequence is zero-padded (causal: `(k - 1) * d`
/// steps in front; same: TensorFlow's split) to a multiple of `d` steps and viewed as an image of `d` columns,
/// where a `(k, 1)` window down each column is the dilated window; the rows of the output, read in order, are
/// the output steps.
#[derive(Clone, Copy, Debug, Default)]
struct Dilated {
    dilation: usize,
    kernel: usize,
    stride: usize,
    /// Keras's padding: 0 valid, 1 same, 2 causal.
    padding: u8,
    front: usize,
    /// Steps of the padded sequence (a multiple of `dilation`), and of the output.
    padded: usize,
    out_steps: usize,
}

impl Dilated {
    fn plan(&mut self, steps: usize, who: &str) -> Result<()> {
        let (d, k, s) = (self.dilation, self.kernel, self.stride);
        let span = (k - 1) * d + 1;
        let (front, back) = match self.padding {
            2 => (span - 1, 0),
            1 => {
                let out = steps.div_ceil(s);
                let total = ((out - 1) * s + span).saturating_sub(steps);
                (total / 2, total - total / 2)
            }
            _ => (0, 0),
        };
        let len = steps + front + back;
        if len < span {
            return Err(Error::Value(format!(
                "{who}: a kernel of {k} steps with dilation_rate {d} spans {span} steps, more than the input's \
                 {steps} with padding=\"valid\""
            )));
        }
        self.front = front;
        self.out_steps = (len - span) / s + 1;
        self.padded = len.div_ceil(d) * d;
        Ok(())
    }
}

pub struct OneD {
    class: &'static str,
    inner: Box<dyn Layer>,
    /// The inner layer's output sample shape, and this layer's.
    inner_out: Vec<usize>,
    out: Vec<usize>,
    input: Vec<usize>,
    /// GlobalAveragePooling1D called with a mask: the mean over the kept steps only.
    masked: bool,
    /// The last masked training call's mask and its count of kept steps per sample.
    mask_cache: Option<(Vec<f32>, Vec<f32>)>,
    dilated: Option<Dilated>,
}

/// A 1-D size argument (`3` or `[3]`) as the 2-D pair `[1, 3]`.
fn as_pair(class: &str, key: &str, v: &Value) -> Result<Value> {
    let n = match v {
        Value::Array(a) if a.len() == 1 => a[0].clone(),
        Value::Array(_) => {
            return Err(Error::Value(format!(
                "{class}: `{key}` must be an int or a list of one int, received {v}"
            )))
        }
        other => other.clone(),
    };
    Ok(Value::Array(vec![Value::from(1), n]))
}

impl OneD {
    /// `class`: "Conv1D", "MaxPooling1D", "AveragePooling1D", "GlobalAveragePooling1D", "GlobalMaxPooling1D" or
    /// "SpatialDropout1D".
    pub fn from_config(class: &'static str, v: &Value) -> Result<Self> {
        let mut cfg = v.clone();
        let obj = cfg.as_object_mut().ok_or_else(|| {
            Error::Value(format!(
                "{class}: the config must be an object, received {v}"
            ))
        })?;
        let name = obj
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or(class)
            .to_string();
        let single = |key: &str, default: u64| -> Result<usize> {
            let n = match obj.get(key) {
                None | Some(Value::Null) => Some(default),
                Some(Value::Array(a)) if a.len() == 1 => a[0].as_u64(),
                Some(x) => x.as_u64(),
            };
            n.filter(|&n| n > 0 && n < 1 << 20)
                .map(|n| n as usize)
                .ok_or_else(|| {
                    Error::Value(format!(
                        "{class} '{name}': `{key}` must be a positive int or a list of one, received {}",
                        obj.get(key).map_or("nothing".to_string(), Value::to_string)
                    ))
                })
        };
        let causal = obj.get("padding").and_then(Value::as_str) == Some("causal");
        if causal && class != "Conv1D" {
            return Err(Error::Value(format!(
                "{class} '{name}': padding=\"causal\" is only for Conv1D"
            )));
        }
        let dilation = if class == "Conv1D" {
            single("dilation_rate", 1)?
        } else {
            1
        };
        let mut dilated = None;
        if causal || dilation > 1 {
            let stride = single("strides", 1)?;
            if stride > 1 && dilation > 1 {
                return Err(Error::Value(format!(
                    "{class} '{name}': `strides > 1` not supported in conjunction with `dilation_rate > 1`. \
                     Received: strides=({stride},) and dilation_rate=({dilation},)"
                )));
            }
            let padding = match obj.get("padding").and_then(Value::as_str) {
                Some("causal") => 2,
                Some("same") => 1,
                _ => 0,
            };
            let kernel = single("kernel_size", 1)?;
            dilated = Some(Dilated {
                dilation,
                kernel,
                stride,
                padding,
                ..Dilated::default()
            });
            // the inner 2-D convolution: a (k, 1) window down each column, unpadded
            obj.insert("padding".into(), Value::from("valid"));
            obj.insert("kernel_size".into(), serde_json::json!([kernel, 1]));
            obj.insert("strides".into(), serde_json::json!([stride, 1]));
        }
        obj.remove("dilation_rate");
        for key in ["kernel_size", "strides", "pool_size"] {
            if dilated.is_some() && key != "pool_size" {
                continue; // already the inner layer's pairs
            }
            match obj.get(key) {
                Some(Value::Null) => {
                    obj.remove(key); // the default (a pool's strides: its pool_size)
                }
                Some(x) => {
                    let pair = as_pair(class, key, x)?;
                    obj.insert(key.to_string(), pair);
                }
                None => {}
            }
        }
        let inner: Box<dyn Layer> = match class {
            "Conv1D" => Box::new(Conv2D::from_config(&cfg)?),
            "MaxPooling1D" => Box::new(Pool2D::from_config(&cfg, true)?),
            "AveragePooling1D" => Box::new(Pool2D::from_config(&cfg, false)?),
            "GlobalAveragePooling1D" => Box::new(GlobalPool2D::from_config(&cfg, false)?),
            "GlobalMaxPooling1D" => Box::new(GlobalPool2D::from_config(&cfg, true)?),
            // whole channels dropped over every step: SpatialDropout2D's maps on a one-row image
            "SpatialDropout1D" => Box::new(SpatialDropout2D::from_config(&cfg)?),
            other => {
                return Err(Error::Value(format!(
                    "kerust internal error: no 1-D layer '{other}'"
                )))
            }
        };
        Ok(OneD {
            class,
            inner,
            inner_out: Vec::new(),
            out: Vec::new(),
            input: Vec::new(),
            masked: false,
            mask_cache: None,
            dilated,
        })
    }

    /// A dilated / causal Conv1D's input, zero-padded to the plan's steps (front padding first).
    fn pad_input(&self, x: &Tensor, plan: &Dilated) -> Result<Tensor> {
        let (steps, ch) = (self.input[0], self.input[1]);
        let b = x.batch();
        let mut out = vec![0.0f32; b * plan.padded * ch];
        for (src, dst) in x
            .data
            .chunks(steps * ch)
            .zip(out.chunks_mut(plan.padded * ch))
        {
            dst[plan.front * ch..][..steps * ch].copy_from_slice(src);
        }
        Tensor::new(vec![b, plan.padded / plan.dilation, plan.dilation, ch], out)
    }

    /// The inner output's rows read in order are output steps; keep the first `out_steps`.
    fn crop_output(&self, y: Tensor, plan: &Dilated) -> Result<Tensor> {
        let b = y.batch();
        let per = y.data.len() / b.max(1);
        let keep = plan.out_steps * self.out[1];
        let mut out = Vec::with_capacity(b * keep);
        for row in y.data.chunks(per.max(1)) {
            out.extend_from_slice(&row[..keep]);
        }
        Tensor::new(vec![b, plan.out_steps, self.out[1]], out)
    }

    /// The adjoint of `crop_output`: zeros for the inner output's extra steps.
    fn expand_grad(&self, g: Tensor, plan: &Dilated) -> Result<Tensor> {
        let b = g.batch();
        let per: usize = self.inner_out.iter().product();
        let keep = plan.out_steps * self.out[1];
        let mut out = vec![0.0f32; b * per];
        for (src, dst) in g.data.chunks(keep).zip(out.chunks_mut(per)) {
            dst[..keep].copy_from_slice(src);
        }
        Tensor::new([&[b][..], &self.inner_out].concat(), out)
    }

    /// The adjoint of `pad_input`: the input steps' gradient.
    fn crop_input_grad(&self, dx: Tensor, plan: &Dilated) -> Result<Tensor> {
        let (steps, ch) = (self.input[0], self.input[1]);
        let b = dx.batch();
        let mut out = Vec::with_capacity(b * steps * ch);
        for row in dx.data.chunks(plan.padded * ch) {
            out.extend_from_slice(&row[plan.front * ch..][..steps * ch]);
        }
        Tensor::new(vec![b, steps, ch], out)
    }

    /// Keras's masked mean: `sum(where(mask, x, 0)) / sum(mask)` over the steps (NaN for a sample with every
    /// step masked, as in Keras).
    fn masked_mean(&mut self, x: Tensor, mask: Tensor, keep: bool) -> Result<Tensor> {
        let (steps, ch) = (self.input[0], self.input[1]);
        let b = x.batch();
        if mask.data.len() != b * steps || x.data.len() != b * steps * ch {
            return Err(Error::Value(format!(
                "{} '{}': a mask of shape {:?} for an input of shape {:?}",
                self.class,
                self.name(),
                mask.shape,
                x.shape
            )));
        }
        let mut out = vec![0.0f32; b * ch];
        let mut counts = vec![0.0f32; b];
        for bi in 0..b {
            let o = &mut out[bi * ch..][..ch];
            for t in 0..steps {
                if mask.data[bi * steps + t] != 0.0 {
                    counts[bi] += 1.0;
                    let row = &x.data[(bi * steps + t) * ch..][..ch];
                    o.iter_mut().zip(row).for_each(|(a, v)| *a += v);
                }
            }
            o.iter_mut().for_each(|a| *a /= counts[bi]);
        }
        if keep {
            self.mask_cache = Some((mask.data, counts));
        }
        Tensor::new([&[b][..], &self.out].concat(), out)
    }

    fn view(t: Tensor, sample: &[usize]) -> Result<Tensor> {
        let b = t.batch();
        Tensor::new([&[b][..], sample].concat(), t.data)
    }
}

impl Layer for OneD {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn class_name(&self) -> &'static str {
        self.class
    }
    fn build(&mut self, input_shape: &[usize], rng: &mut Rng) -> Result<Vec<usize>> {
        super::expect_rank(self, input_shape, 2, "(batch, steps, channels)")?;
        self.input = input_shape.to_vec();
        if let Some(mut plan) = self.dilated {
            let who = format!("{} '{}'", self.class, self.name());
            plan.plan(input_shape[0], &who)?;
            let image = [plan.padded / plan.dilation, plan.dilation, input_shape[1]];
            self.inner_out = self.inner.build(&image, rng)?;
            if let Some(kernel) = self.inner.params_mut().first_mut() {
                kernel.shape.remove(1); // (k, 1, in, filters) -> Keras's (k, in, filters)
            }
            self.out = vec![plan.out_steps, self.inner_out[2]];
            self.dilated = Some(plan);
            return Ok(self.out.clone());
        }
        let inner_out = self
            .inner
            .build(&[1, input_shape[0], input_shape[1]], rng)?;
        // (1, steps', c) -> (steps', c), and a global pool's keepdims (1, 1, c) -> (1, c); a global pool's (c)
        // stays
        self.out = if inner_out.len() == 3 {
            inner_out[1..].to_vec()
        } else {
            inner_out.clone()
        };
        self.inner_out = inner_out;
        if self.class == "Conv1D" {
            if let Some(kernel) = self.inner.params_mut().first_mut() {
                kernel.shape.remove(0); // (1, k, in, filters) -> Keras's (k, in, filters)
            }
        }
        Ok(self.out.clone())
    }
    fn takes_mask(&self) -> bool {
        self.class == "GlobalAveragePooling1D"
    }
    fn build_inputs(
        &mut self,
        shapes: &[Vec<usize>],
        masked: bool,
        rng: &mut Rng,
    ) -> Result<Vec<usize>> {
        let out = self.build(&shapes[0], rng)?;
        if masked {
            let who = format!("{} '{}'", self.class, self.name());
            super::check_mask_shape(&who, shapes.last(), self.input[0])?;
        }
        self.masked = masked;
        Ok(out)
    }
    fn forward_inputs(&mut self, xs: Vec<Tensor>, ctx: &mut Ctx) -> Result<Tensor> {
        let mut it = xs.into_iter();
        let x = it.next().unwrap_or_default();
        match it.next() {
            Some(mask) if self.masked => self.masked_mean(x, mask, ctx.training),
            _ => self.forward(x, ctx),
        }
    }
    fn backward_inputs(
        &mut self,
        grad: Tensor,
        need_input_grad: bool,
    ) -> Result<Vec<Option<Tensor>>> {
        if !self.masked {
            return Ok(vec![Some(self.backward(grad, need_input_grad)?)]);
        }
        let (mask, counts) = self.mask_cache.take().ok_or_else(|| {
            Error::Runtime(format!(
                "{} '{}': backward called without a matching training forward pass",
                self.class,
                self.name()
            ))
        })?;
        let (steps, ch) = (self.input[0], self.input[1]);
        let b = counts.len();
        let mut dx = vec![0.0f32; b * steps * ch];
        for bi in 0..b {
            let g = &grad.data[bi * ch..][..ch];
            for t in (0..steps).filter(|&t| mask[bi * steps + t] != 0.0) {
                let row = &mut dx[(bi * steps + t) * ch..][..ch];
                row.iter_mut().zip(g).for_each(|(d, v)| *d = v / counts[bi]);
            }
        }
        Ok(vec![Some(Tensor::new(vec![b, steps, ch], dx)?), None])
    }
    fn forward(&mut self, x: Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        if let Some(plan) = self.dilated {
            let padded = self.pad_input(&x, &plan)?;
            let y = self.inner.forward(padded, ctx)?;
            return self.crop_output(y, &plan);
        }
        let x = Self::view(x, &[1, self.input[0], self.input[1]])?;
        let y = self.inner.forward(x, ctx)?;
        Self::view(y, &self.out)
    }
    fn backward(&mut self, grad: Tensor, need_input_grad: bool) -> Result<Tensor> {
        if let Some(plan) = self.dilated {
            let g = self.expand_grad(grad, &plan)?;
            let dx = self.inner.backward(g, need_input_grad)?;
            return if need_input_grad {
                self.crop_input_grad(dx, &plan)
            } else {
                Ok(dx)
            };
        }
        let g = Self::view(grad, &self.inner_out)?;
        let dx = self.inner.backward(g, need_input_grad)?;
        if !need_input_grad {
            return Ok(dx);
        }
        Self::view(dx, &self.input)
    }
    fn backward_preactivation(&mut self, grad_z: Tensor, need_input_grad: bool) -> Result<Tensor> {
        if let Some(plan) = self.dilated {
            let g = self.expand_grad(grad_z, &plan)?;
            let dx = self.inner.backward_preactivation(g, need_input_grad)?;
            return if need_input_grad {
                self.crop_input_grad(dx, &plan)
            } else {
                Ok(dx)
            };
        }
        let g = Self::view(grad_z, &self.inner_out)?;
        let dx = self.inner.backward_preactivation(g, need_input_grad)?;
        if !need_input_grad {
            return Ok(dx);
        }
        Self::view(dx, &self.input)
    }
    fn activation(&self) -> Activation {
        self.inner.activation()
    }
    fn params(&self) -> &[Param] {
        self.inner.params()
    }
    fn params_mut(&mut self) -> &mut [Param] {
        self.inner.params_mut()
    }
    fn set_trainable(&mut self, trainable: bool) {
        self.inner.set_trainable(trainable)
    }
    fn clear_cache(&mut self) {
        self.inner.clear_cache();
        self.mask_cache = None;
    }
}

#[cfg(test)]
mod tests {
    use super::super::gradcheck;
    use super::*;
    use serde_json::json;

    fn input(shape: &[usize], seed: u64) -> Tensor {
        let mut rng = Rng::new(seed);
        let n = shape.iter().product();
        // values 0.1 apart in scrambled order keep every max unique for the finite differences
        let mut v: Vec<f32> = (0..n).map(|i| i as f32 * 0.1).collect();
        rng.shuffle(&mut v);
        Tensor::new(shape.to_vec(), v).unwrap()
    }

    #[test]
    fn causal_and_dilated_conv1d_match_the_direct_sum() {
        for (padding, d, st) in [
            ("causal", 1, 1),
            ("causal", 2, 1),
            ("valid", 2, 1),
            ("same", 3, 1),
            ("causal", 1, 2),
            ("same", 2, 1),
        ] {
            let cfg = json!({"filters": 2, "kernel_size": 3, "padding": padding, "dilation_rate": d,
                "strides": st, "bias_initializer": "random_normal"});
            let mut l = OneD::from_config("Conv1D", &cfg).unwrap();
            let (steps, ch, k) = (7usize, 3usize, 3usize);
            let out = l.build(&[steps, ch], &mut Rng::new(1)).unwrap();
            assert_eq!(l.params()[0].shape, vec![3, 3, 2], "Keras's kernel layout");
            let span = (k - 1) * d + 1;
            let (front, expect_steps) = match padding {
                "causal" => (span - 1, (steps - 1) / st + 1),
                "same" => ((span - 1) / 2, steps.div_ceil(st)),
                _ => (0, (steps - span) / st + 1),
            };
            assert_eq!(out, vec![expect_steps, 2], "{padding} d={d} s={st}");
            let x = gradcheck::normal_input(&[2, steps, ch], 4);
            let mut rng = Rng::new(0);
            let mut ctx = Ctx {
                training: false,
                rng: &mut rng,
            };
            let y = l.forward(x.clone(), &mut ctx).unwrap();
            let (w, bias) = (&l.params()[0].value, &l.params()[1].value);
            for b in 0..2 {
                for t in 0..expect_steps {
                    for f in 0..2 {
                        let mut acc = bias[f];
                        for j in 0..k {
                            let Some(i) =
                                (t * st + j * d).checked_sub(front).filter(|&i| i < steps)
                            else {
                                continue;
                            };
                            for c in 0..ch {
                                acc += x.data[(b * steps + i) * ch + c] * w[(j * ch + c) * 2 + f];
                            }
                        }
                        let got = y.data[(b * expect_steps + t) * 2 + f];
                        assert!(
                            (got - acc).abs() < 1e-5,
                            "{padding} d={d} s={st}: {got} vs {acc}"
                        );
                    }
                }
            }
            gradcheck::check(&mut l, x, 2e-2);
        }
        let bad = json!({"filters": 2, "kernel_size": 3, "dilation_rate": 2, "strides": 2});
        assert!(OneD::from_config("Conv1D", &bad).is_err());
        let mut short = OneD::from_config(
            "Conv1D",
            &json!({"filters": 1, "kernel_size": 3,
            "dilation_rate": 3}),
        )
        .unwrap();
        assert!(short.build(&[6, 1], &mut Rng::new(1)).is_err());
    }

    #[test]
    fn masked_global_average_is_the_mean_of_the_kept_steps() {
        let mut l = OneD::from_config("GlobalAveragePooling1D", &json!({})).unwrap();
        l.build_inputs(&[vec![3, 2], vec![3]], true, &mut Rng::new(1))
            .unwrap();
        let x = Tensor::new(vec![1, 3, 2], vec![1.0, 2.0, 10.0, 20.0, 3.0, 4.0]).unwrap();
        let m = Tensor::new(vec![1, 3], vec![1.0, 0.0, 1.0]).unwrap();
        let mut rng = Rng::new(5);
        let mut ctx = Ctx {
            training: false,
            rng: &mut rng,
        };
        let y = l
            .forward_inputs(vec![x.clone(), m.clone()], &mut ctx)
            .unwrap();
        assert_eq!(y.data, vec![2.0, 3.0]);
        gradcheck::check_inputs(&mut l, vec![input(&[1, 3, 2], 3), m], 1e-2);
        let e = l
            .build_inputs(&[vec![3, 2], vec![4]], true, &mut Rng::new(1))
            .unwrap_err();
        assert!(
            e.to_string().contains("(batch, 3)") && e.to_string().contains("(batch, 4)"),
            "{e}"
        );
    }

    #[test]
    fn shapes_and_gradients() {
        let cases = [
            (
                "Conv1D",
                json!({"filters": 3, "kernel_size": 3, "strides": 2, "padding": "same"}),
                vec![4, 3],
            ),
            (
                "Conv1D",
                json!({"filters": 2, "kernel_size": [2]}),
                vec![6, 2],
            ),
            ("MaxPooling1D", json!({"pool_size": 2}), vec![3, 2]),
            (
                "AveragePooling1D",
                json!({"pool_size": 3, "strides": 1, "padding": "same"}),
                vec![7, 2],
            ),
            ("GlobalAveragePooling1D", json!({}), vec![2]),
            ("GlobalMaxPooling1D", json!({}), vec![2]),
        ];
        for (class, cfg, out) in cases {
            let mut l = OneD::from_config(class, &cfg).unwrap();
            assert_eq!(l.build(&[7, 2], &mut Rng::new(1)).unwrap(), out, "{class}");
            gradcheck::check(&mut l, input(&[2, 7, 2], 3), 2e-2);
        }
        let mut conv =
            OneD::from_config("Conv1D", &json!({"filters": 4, "kernel_size": 3})).unwrap();
        conv.build(&[5, 2], &mut Rng::new(0)).unwrap();
        assert_eq!(conv.params()[0].shape, vec![3, 2, 4]);
        for bad in [
            json!({"filters": 2, "kernel_size": 2, "groups": 3}),
            json!({"filters": 2, "kernel_size": 2, "dilation_rate": [2, 2]}),
            json!({"filters": 2, "kernel_size": [2, 2]}),
        ] {
            assert!(OneD::from_config("Conv1D", &bad).is_err(), "{bad}");
        }
    }
}
