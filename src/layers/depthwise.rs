//! DepthwiseConv2D and SeparableConv2D, channels-last. A depthwise convolution filters every input channel on
//! its own with `depth_multiplier` kernels: output channel `c * m + j` is input channel `c` convolved with
//! kernel `(.., .., c, j)`. That is a grouped convolution with one group per channel, but its GEMMs would be
//! `m` columns wide, so it runs as a direct loop over the window's taps instead, each tap one multiply-add over
//! a pixel's channels (contiguous, so it vectorises). SeparableConv2D is a depthwise convolution followed by a
//! 1x1 convolution (one GEMM over all pixels), then the bias and the activation, as Keras's `separable_conv`.

use super::conv2d::add_bias;
use super::{
    activation_of, expect_rank, initializer_of, regularizer_of, Ctx, FusedActivation, Layer, Param,
};
use crate::activations::Activation;
use crate::config::Cfg;
use crate::error::{Error, Result};
use crate::initializers::Initializer;
use crate::kernels::conv::Window;
use crate::kernels::gemm::{matmul, Op};
use crate::kernels::SAMPLES_PER_CHUNK;
use crate::rng::Rng;
use crate::tensor::{shape_str, Tensor};
use rayon::prelude::*;
use serde_json::Value;

crate::simd_fn! {
    /// One sample's depthwise convolution: `out` is `(oh*ow, c*m)`, `kernel` `(kh*kw, c*m)`.
    fn depthwise_sample(win: &Window, m: usize, x: &[f32], kernel: &[f32], out: &mut [f32]) {
        let (c, cm) = (win.c, win.c * m);
        for oy in 0..win.oh {
            for ox in 0..win.ow {
                let row = &mut out[(oy * win.ow + ox) * cm..][..cm];
                row.fill(0.0);
                for ky in 0..win.kh {
                    let Some(iy) = win.in_y(oy, ky) else { continue };
                    for kx in 0..win.kw {
                        let Some(ix) = win.in_x(ox, kx) else { continue };
                        let xs = &x[(iy * win.w + ix) * c..][..c];
                        let ws = &kernel[(ky * win.kw + kx) * cm..][..cm];
                        if m == 1 {
                            for ((o, a), w) in row.iter_mut().zip(xs).zip(ws) {
                                *o += a * w;
                            }
                        } else {
                            for ((o, a), w) in row.chunks_exact_mut(m).zip(xs).zip(ws.chunks_exact(m)) {
                                for (o, w) in o.iter_mut().zip(w) {
                                    *o += a * w;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

crate::simd_fn! {
    /// One sample's share of the kernel gradient (added into `dk`, `(kh*kw, c*m)`) and, when `dx` is not
    /// empty, its input gradient (overwritten), from `g`, the gradient of the sample's `(oh*ow, c*m)` output.
    fn depthwise_sample_backward(
        win: &Window,
        m: usize,
        x: &[f32],
        g: &[f32],
        kernel: &[f32],
        dk: &mut [f32],
        dx: &mut [f32],
    ) {
        let (c, cm) = (win.c, win.c * m);
        let want_dx = !dx.is_empty();
        dx.fill(0.0);
        for oy in 0..win.oh {
            for ox in 0..win.ow {
                let gs = &g[(oy * win.ow + ox) * cm..][..cm];
                for ky in 0..win.kh {
                    let Some(iy) = win.in_y(oy, ky) else { continue };
                    for kx in 0..win.kw {
                        let Some(ix) = win.in_x(ox, kx) else { continue };
                        let at = (iy * win.w + ix) * c;
                        let xs = &x[at..][..c];
                        let tap = (ky * win.kw + kx) * cm;
                        let dks = &mut dk[tap..][..cm];
                        if m == 1 {
                            for ((d, a), gv) in dks.iter_mut().zip(xs).zip(gs) {
                                *d += a * gv;
                            }
                        } else {
                            for ((d, a), gv) in dks.chunks_exact_mut(m).zip(xs).zip(gs.chunks_exact(m)) {
                                for (d, gv) in d.iter_mut().zip(gv) {
                                    *d += a * gv;
                                }
                            }
                        }
                        if want_dx {
                            let ws = &kernel[tap..][..cm];
                            let dxs = &mut dx[at..][..c];
                            if m == 1 {
                                for ((d, w), gv) in dxs.iter_mut().zip(ws).zip(gs) {
                                    *d += w * gv;
                                }
                            } else {
                                for ((d, w), gv) in dxs.iter_mut().zip(ws.chunks_exact(m)).zip(gs.chunks_exact(m)) {
                                    *d += w.iter().zip(gv).map(|(w, g)| w * g).sum::<f32>();
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Add every row of `g` (rows of `db.len()`) into `db`.
fn sum_rows(g: &[f32], db: &mut [f32]) {
    for row in g.chunks_exact(db.len()) {
        db.iter_mut().zip(row).for_each(|(a, v)| *a += v);
    }
}

/// The geometry and arguments both layers share: the window, the depth multiplier, the depthwise kernel's
/// initializer and regularizer (under the config keys `depthwise_*`).
struct Depthwise {
    kernel_size: (usize, usize),
    strides: (usize, usize),
    dilation: (usize, usize),
    same: bool,
    multiplier: usize,
    init: Initializer,
    reg: Option<super::Regularizer>,
    win: Option<Window>,
}

impl Depthwise {
    fn from_config(cfg: &Cfg) -> Result<Self> {
        cfg.channels_last()?;
        let multiplier = match cfg.raw("depth_multiplier") {
            None | Some(Value::Null) => 1,
            Some(v) => match v.as_u64() {
                Some(m) if m > 0 && m < 1 << 20 => m as usize,
                _ => {
                    return Err(Error::Value(format!(
                    "Invalid value for argument `depth_multiplier`. Expected a strictly positive \
                         value. Received depth_multiplier={v}."
                )))
                }
            },
        };
        Ok(Depthwise {
            kernel_size: cfg.pair("kernel_size", None)?,
            strides: cfg.pair("strides", Some((1, 1)))?,
            dilation: cfg.pair("dilation_rate", Some((1, 1)))?,
            same: cfg.padding_same()?,
            multiplier,
            init: initializer_of(cfg, "depthwise_initializer", "glorot_uniform")?,
            reg: regularizer_of(cfg, "depthwise_regularizer")?,
            win: None,
        })
    }

    /// The window for `input_shape` and the depthwise kernel `(kh, kw, channels, multiplier)`.
    /// `what` names the layer in errors; the caller has checked the rank of `input_shape`.
    fn build(
        &mut self,
        what: &str,
        name: &'static str,
        input_shape: &[usize],
        rng: &mut Rng,
    ) -> Result<Param> {
        let win = Window::dilated(
            what,
            (input_shape[0], input_shape[1], input_shape[2]),
            self.kernel_size,
            self.strides,
            self.dilation,
            self.same,
        )?;
        self.win = Some(win);
        let shape = vec![
            self.kernel_size.0,
            self.kernel_size.1,
            win.c,
            self.multiplier,
        ];
        let mut kernel = Param::new(name, shape.clone(), self.init.fill(&shape, rng)?, true);
        kernel.regularizer = self.reg;
        Ok(kernel)
    }

    /// The built window, after checking that `x` is a batch of the built input shape.
    fn checked_window(&self, who: (&str, &str), x: &Tensor) -> Result<Window> {
        let win = self
            .win
            .ok_or_else(|| Error::Runtime(format!("{} '{}' used before build", who.1, who.0)))?;
        if x.shape.len() != 4 || x.shape[1..] != [win.h, win.w, win.c] {
            return Err(Error::Value(format!(
                "Input 0 of layer \"{}\" ({}) is incompatible with the layer: expected shape {}, found shape {}",
                who.0,
                who.1,
                shape_str(&[win.h, win.w, win.c]),
                shape_str(x.shape.get(1..).unwrap_or(&[]))
            )));
        }
        Ok(win)
    }

    /// Output channels of the depthwise step.
    fn out_channels(&self, win: &Window) -> usize {
        win.c * self.multiplier
    }

    /// The depthwise output `(b, oh, ow, c*m)` of `x`, samples in parallel.
    fn forward(&self, win: &Window, x: &Tensor, kernel: &[f32]) -> Tensor {
        let (p, cm, in_len) = (win.out_pixels(), self.out_channels(win), win.in_len());
        let mut y = Tensor::for_overwrite(vec![x.batch(), win.oh, win.ow, cm]);
        let m = self.multiplier;
        y.data
            .par_chunks_mut(p * cm)
            .zip(x.data.par_chunks(in_len))
            .for_each(|(ys, xs)| depthwise_sample(win, m, xs, kernel, ys));
        y
    }

    /// Backward of `forward`: the kernel gradient added into `dk` (summed over fixed chunks of samples in
    /// chunk order, so the same for any thread count) and, if asked, the input gradient.
    #[allow(clippy::too_many_arguments)]
    fn backward(
        &self,
        win: &Window,
        x: &[f32],
        g: &[f32],
        kernel: &[f32],
        dk: &mut [f32],
        partials: &mut Vec<f32>,
        need_input_grad: bool,
    ) -> Tensor {
        let (p, cm, in_len) = (win.out_pixels(), self.out_channels(win), win.in_len());
        let b = x.len() / in_len;
        let m = self.multiplier;
        let k_len = dk.len();
        partials.clear();
        partials.resize(b.div_ceil(SAMPLES_PER_CHUNK) * k_len, 0.0);
        let chunk = |xc: &[f32], gc: &[f32], part: &mut [f32], dxc: &mut [f32]| {
            for (s, (xs, gs)) in xc
                .chunks_exact(in_len)
                .zip(gc.chunks_exact(p * cm))
                .enumerate()
            {
                let dxs: &mut [f32] = if dxc.is_empty() {
                    &mut []
                } else {
                    &mut dxc[s * in_len..][..in_len]
                };
                depthwise_sample_backward(win, m, xs, gs, kernel, part, dxs);
            }
        };
        let work = x
            .par_chunks(SAMPLES_PER_CHUNK * in_len)
            .zip(g.par_chunks(SAMPLES_PER_CHUNK * p * cm))
            .zip(partials.par_chunks_mut(k_len));
        let mut dx = Tensor::default();
        if need_input_grad {
            // every value is written: each sample's gradient is cleared before its taps are added
            dx = Tensor::for_overwrite(vec![b, win.h, win.w, win.c]);
            work.zip(dx.data.par_chunks_mut(SAMPLES_PER_CHUNK * in_len))
                .for_each(|(((xc, gc), part), dxc)| chunk(xc, gc, part, dxc));
        } else {
            work.for_each(|((xc, gc), part)| chunk(xc, gc, part, &mut []));
        }
        for part in partials.chunks_exact(k_len) {
            dk.iter_mut().zip(part).for_each(|(a, v)| *a += v);
        }
        dx
    }
}

fn bias_param(cfg: &Cfg, units: usize, rng: &mut Rng) -> Result<Param> {
    let init = initializer_of(cfg, "bias_initializer", "zeros")?;
    let mut bias = Param::new("bias", vec![units], init.fill(&[units], rng)?, true);
    bias.regularizer = regularizer_of(cfg, "bias_regularizer")?;
    Ok(bias)
}

fn unmatched(class: &str, name: &str) -> Error {
    Error::Runtime(format!(
        "{class} '{name}': backward called without a matching training forward pass"
    ))
}

pub struct DepthwiseConv2D {
    name: String,
    dw: Depthwise,
    use_bias: bool,
    config: Value,
    act: FusedActivation,
    params: Vec<Param>,
    /// The input of the last training batch, for backward.
    input: Tensor,
    partials: Vec<f32>,
}

impl DepthwiseConv2D {
    pub fn from_config(v: &Value) -> Result<Self> {
        let cfg = Cfg::new("DepthwiseConv2D", v)?;
        Ok(DepthwiseConv2D {
            dw: Depthwise::from_config(&cfg)?,
            use_bias: cfg.bool_or("use_bias", true)?,
            act: FusedActivation::new(activation_of(&cfg)?),
            name: cfg.name.clone(),
            config: v.clone(),
            params: Vec::new(),
            input: Tensor::default(),
            partials: Vec::new(),
        })
    }
}

impl Layer for DepthwiseConv2D {
    fn name(&self) -> &str {
        &self.name
    }
    fn class_name(&self) -> &'static str {
        "DepthwiseConv2D"
    }

    fn build(&mut self, input_shape: &[usize], rng: &mut Rng) -> Result<Vec<usize>> {
        expect_rank(self, input_shape, 3, "(batch, height, width, channels)")?;
        let what = format!("DepthwiseConv2D '{}'", self.name);
        let kernel = self.dw.build(&what, "kernel", input_shape, rng)?;
        let win = self
            .dw
            .win
            .ok_or_else(|| Error::Runtime("DepthwiseConv2D: no window".into()))?;
        let cm = self.dw.out_channels(&win);
        self.params = vec![kernel];
        if self.use_bias {
            let cfg = Cfg::new("DepthwiseConv2D", &self.config)?;
            self.params.push(bias_param(&cfg, cm, rng)?);
        }
        Ok(vec![win.oh, win.ow, cm])
    }

    fn forward(&mut self, x: Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        let win = self
            .dw
            .checked_window((&self.name, "DepthwiseConv2D"), &x)?;
        let mut y = self.dw.forward(&win, &x, &self.params[0].value);
        if let Some(bias) = self.params.get(1) {
            let cm = bias.value.len();
            y.data
                .par_chunks_mut(SAMPLES_PER_CHUNK * win.out_pixels() * cm)
                .for_each(|yc| add_bias(yc, &bias.value));
        }
        self.act.forward(&mut y, ctx.training);
        if ctx.training {
            std::mem::replace(&mut self.input, x).recycle();
        } else {
            x.recycle();
        }
        Ok(y)
    }

    fn backward(&mut self, mut grad: Tensor, need_input_grad: bool) -> Result<Tensor> {
        self.act.backward(&mut grad)?;
        self.backward_preactivation(grad, need_input_grad)
    }

    fn backward_preactivation(&mut self, g: Tensor, need_input_grad: bool) -> Result<Tensor> {
        let win = self
            .dw
            .checked_window((&self.name, "DepthwiseConv2D"), &self.input)
            .map_err(|_| unmatched("DepthwiseConv2D", &self.name))?;
        let cm = self.dw.out_channels(&win);
        if g.data.len() != self.input.batch() * win.out_pixels() * cm {
            return Err(unmatched("DepthwiseConv2D", &self.name));
        }
        let (kernel_p, rest) = self.params.split_at_mut(1);
        let kernel = &mut kernel_p[0];
        let dx = self.dw.backward(
            &win,
            &self.input.data,
            &g.data,
            &kernel.value,
            &mut kernel.grad,
            &mut self.partials,
            need_input_grad,
        );
        if let Some(bias) = rest.first_mut() {
            sum_rows(&g.data, &mut bias.grad);
        }
        g.recycle();
        std::mem::take(&mut self.input).recycle();
        Ok(dx)
    }

    fn params(&self) -> &[Param] {
        &self.params
    }
    fn params_mut(&mut self) -> &mut [Param] {
        &mut self.params
    }
    fn activation(&self) -> Activation {
        self.act.act
    }
    fn clear_cache(&mut self) {
        self.input = Tensor::default();
        self.partials = Vec::new();
        self.act.clear();
    }
}

pub struct SeparableConv2D {
    name: String,
    dw: Depthwise,
    filters: usize,
    use_bias: bool,
    config: Value,
    act: FusedActivation,
    params: Vec<Param>,
    /// The input and the depthwise output of the last training batch, for backward.
    input: Tensor,
    mid: Tensor,
    partials: Vec<f32>,
}

impl SeparableConv2D {
    pub fn from_config(v: &Value) -> Result<Self> {
        let cfg = Cfg::new("SeparableConv2D", v)?;
        let filters = match cfg.raw("filters").and_then(Value::as_u64) {
            Some(f) if f > 0 && f < 1 << 24 => f as usize,
            _ => {
                return Err(Error::Value(format!(
                    "Invalid value for argument `filters`. Expected a strictly positive value. Received \
                     filters={}.",
                    cfg.raw("filters").unwrap_or(&Value::Null)
                )))
            }
        };
        Ok(SeparableConv2D {
            dw: Depthwise::from_config(&cfg)?,
            filters,
            use_bias: cfg.bool_or("use_bias", true)?,
            act: FusedActivation::new(activation_of(&cfg)?),
            name: cfg.name.clone(),
            config: v.clone(),
            params: Vec::new(),
            input: Tensor::default(),
            mid: Tensor::default(),
            partials: Vec::new(),
        })
    }
}

impl Layer for SeparableConv2D {
    fn name(&self) -> &str {
        &self.name
    }
    fn class_name(&self) -> &'static str {
        "SeparableConv2D"
    }

    fn build(&mut self, input_shape: &[usize], rng: &mut Rng) -> Result<Vec<usize>> {
        let cfg_value = self.config.clone();
        let cfg = Cfg::new("SeparableConv2D", &cfg_value)?;
        expect_rank(self, input_shape, 3, "(batch, height, width, channels)")?;
        let what = format!("SeparableConv2D '{}'", self.name);
        let depthwise = self.dw.build(&what, "depthwise_kernel", input_shape, rng)?;
        let win = self
            .dw
            .win
            .ok_or_else(|| Error::Runtime("SeparableConv2D: no window".into()))?;
        let cm = self.dw.out_channels(&win);
        let pshape = vec![1, 1, cm, self.filters];
        let pinit = initializer_of(&cfg, "pointwise_initializer", "glorot_uniform")?;
        let mut pointwise = Param::new(
            "pointwise_kernel",
            pshape.clone(),
            pinit.fill(&pshape, rng)?,
            true,
        );
        pointwise.regularizer = regularizer_of(&cfg, "pointwise_regularizer")?;
        self.params = vec![depthwise, pointwise];
        if self.use_bias {
            self.params.push(bias_param(&cfg, self.filters, rng)?);
        }
        Ok(vec![win.oh, win.ow, self.filters])
    }

    fn forward(&mut self, x: Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        let win = self
            .dw
            .checked_window((&self.name, "SeparableConv2D"), &x)?;
        let (p, cm, f) = (win.out_pixels(), self.dw.out_channels(&win), self.filters);
        let mid = self.dw.forward(&win, &x, &self.params[0].value);
        let mut y = Tensor::for_overwrite(vec![x.batch(), win.oh, win.ow, f]);
        let pointwise = &self.params[1].value;
        let bias = self.params.get(2).map(|b| b.value.as_slice());
        y.data
            .par_chunks_mut(SAMPLES_PER_CHUNK * p * f)
            .zip(mid.data.par_chunks(SAMPLES_PER_CHUNK * p * cm))
            .for_each(|(yc, mc)| {
                matmul(mc.len() / cm, cm, f, mc, Op::N, pointwise, Op::N, yc, false);
                if let Some(bias) = bias {
                    add_bias(yc, bias);
                }
            });
        self.act.forward(&mut y, ctx.training);
        if ctx.training {
            std::mem::replace(&mut self.input, x).recycle();
            std::mem::replace(&mut self.mid, mid).recycle();
        } else {
            x.recycle();
            mid.recycle();
        }
        Ok(y)
    }

    fn backward(&mut self, mut grad: Tensor, need_input_grad: bool) -> Result<Tensor> {
        self.act.backward(&mut grad)?;
        self.backward_preactivation(grad, need_input_grad)
    }

    fn backward_preactivation(&mut self, g: Tensor, need_input_grad: bool) -> Result<Tensor> {
        let win = self
            .dw
            .checked_window((&self.name, "SeparableConv2D"), &self.input)
            .map_err(|_| unmatched("SeparableConv2D", &self.name))?;
        let (p, cm, f) = (win.out_pixels(), self.dw.out_channels(&win), self.filters);
        let b = self.input.batch();
        if g.data.len() != b * p * f || self.mid.data.len() != b * p * cm {
            return Err(unmatched("SeparableConv2D", &self.name));
        }
        // The pointwise step: its kernel gradient mid^T g (per fixed chunk, summed in chunk order) and the
        // gradient of the depthwise output, g P^T.
        let pointwise = &self.params[1].value;
        let part_len = cm * f;
        let mut partials = std::mem::take(&mut self.partials);
        partials.clear();
        partials.resize(b.div_ceil(SAMPLES_PER_CHUNK) * part_len, 0.0);
        let mut dmid = Tensor::for_overwrite(vec![b, win.oh, win.ow, cm]);
        dmid.data
            .par_chunks_mut(SAMPLES_PER_CHUNK * p * cm)
            .zip(self.mid.data.par_chunks(SAMPLES_PER_CHUNK * p * cm))
            .zip(g.data.par_chunks(SAMPLES_PER_CHUNK * p * f))
            .zip(partials.par_chunks_mut(part_len))
            .for_each(|(((dm, mc), gc), part)| {
                let rows = mc.len() / cm;
                matmul(cm, rows, f, mc, Op::T, gc, Op::N, part, false);
                matmul(rows, f, cm, gc, Op::N, pointwise, Op::T, dm, false);
            });
        for part in partials.chunks_exact(part_len) {
            self.params[1]
                .grad
                .iter_mut()
                .zip(part)
                .for_each(|(a, v)| *a += v);
        }
        if let Some(bias) = self.params.get_mut(2) {
            sum_rows(&g.data, &mut bias.grad);
        }
        g.recycle();
        let (depthwise, _) = self.params.split_at_mut(1);
        let dx = self.dw.backward(
            &win,
            &self.input.data,
            &dmid.data,
            &depthwise[0].value,
            &mut depthwise[0].grad,
            &mut partials,
            need_input_grad,
        );
        self.partials = partials;
        dmid.recycle();
        std::mem::take(&mut self.input).recycle();
        std::mem::take(&mut self.mid).recycle();
        Ok(dx)
    }

    fn params(&self) -> &[Param] {
        &self.params
    }
    fn params_mut(&mut self) -> &mut [Param] {
        &mut self.params
    }
    fn activation(&self) -> Activation {
        self.act.act
    }
    fn clear_cache(&mut self) {
        self.input = Tensor::default();
        self.mid = Tensor::default();
        self.partials = Vec::new();
        self.act.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::super::gradcheck;
    use super::*;
    use serde_json::json;

    fn built(layer: &mut dyn Layer, in_shape: &[usize]) {
        let mut rng = Rng::new(3);
        layer.build(in_shape, &mut rng).unwrap();
        for (i, p) in layer.params_mut().iter_mut().enumerate() {
            if p.name == "bias" {
                p.value
                    .iter_mut()
                    .enumerate()
                    .for_each(|(j, v)| *v = 0.03 * (j + i) as f32);
            }
        }
    }

    /// A direct sum over the window, for comparison.
    fn naive(win: &Window, m: usize, x: &[f32], k: &[f32]) -> Vec<f32> {
        let cm = win.c * m;
        let mut out = vec![0.0f32; win.out_pixels() * cm];
        for oy in 0..win.oh {
            for ox in 0..win.ow {
                for c in 0..win.c {
                    for j in 0..m {
                        let mut s = 0.0;
                        for ky in 0..win.kh {
                            for kx in 0..win.kw {
                                let (Some(iy), Some(ix)) = (win.in_y(oy, ky), win.in_x(ox, kx))
                                else {
                                    continue;
                                };
                                s += x[(iy * win.w + ix) * win.c + c]
                                    * k[((ky * win.kw + kx) * win.c + c) * m + j];
                            }
                        }
                        out[(oy * win.ow + ox) * cm + c * m + j] = s;
                    }
                }
            }
        }
        out
    }

    #[test]
    fn depthwise_equals_a_direct_sum() {
        for (cfg, shape) in [
            (
                json!({"kernel_size": 3, "depth_multiplier": 2, "padding": "same", "use_bias": false}),
                [5, 4, 3],
            ),
            (
                json!({"kernel_size": [2, 3], "strides": 2, "use_bias": false}),
                [6, 7, 2],
            ),
            (
                json!({"kernel_size": 2, "dilation_rate": 2, "depth_multiplier": 3, "use_bias": false}),
                [5, 5, 2],
            ),
        ] {
            let mut l = DepthwiseConv2D::from_config(&cfg).unwrap();
            built(&mut l, &shape);
            let x = gradcheck::normal_input(&[2, shape[0], shape[1], shape[2]], 4);
            let mut rng = Rng::new(0);
            let mut ctx = Ctx {
                training: false,
                rng: &mut rng,
            };
            let y = l.forward(x.clone(), &mut ctx).unwrap();
            let win = l.dw.win.unwrap();
            let per = shape.iter().product::<usize>();
            for s in 0..2 {
                let want = naive(
                    &win,
                    l.dw.multiplier,
                    &x.data[s * per..][..per],
                    &l.params[0].value,
                );
                let got = &y.data[s * want.len()..][..want.len()];
                for (a, b) in got.iter().zip(&want) {
                    assert!((a - b).abs() < 1e-5, "{a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn depthwise_and_separable_gradients() {
        let cases = [
            json!({"kernel_size": 3, "depth_multiplier": 2, "padding": "same", "activation": "tanh"}),
            json!({"kernel_size": 2, "strides": 2}),
            json!({"kernel_size": 2, "dilation_rate": 2, "use_bias": false}),
        ];
        for cfg in cases {
            let mut l = DepthwiseConv2D::from_config(&cfg).unwrap();
            built(&mut l, &[5, 6, 3]);
            // 5 samples: more than one chunk, and a partial last chunk
            gradcheck::check(&mut l, gradcheck::input(&[5, 5, 6, 3], 9), 2e-2);
            let mut cfg = cfg.clone();
            cfg["filters"] = json!(4);
            let mut s = SeparableConv2D::from_config(&cfg).unwrap();
            built(&mut s, &[5, 6, 3]);
            gradcheck::check(&mut s, gradcheck::input(&[5, 5, 6, 3], 9), 2e-2);
        }
    }

    #[test]
    fn bad_arguments_are_refused() {
        let err = DepthwiseConv2D::from_config(&json!({"kernel_size": 3, "depth_multiplier": 0}))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("depth_multiplier=0"), "{err}");
        assert!(SeparableConv2D::from_config(&json!({"kernel_size": 3, "filters": 0})).is_err());
        let mut l = DepthwiseConv2D::from_config(&json!({"kernel_size": 5})).unwrap();
        let mut rng = Rng::new(0);
        assert!(l.build(&[3, 3, 2], &mut rng).is_err());
    }
}
