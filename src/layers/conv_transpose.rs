//! Conv2DTranspose, channels-last: the adjoint of a Conv2D whose input is this layer's output. Its kernel
//! `(kh, kw, filters, in)` read as a `(kh*kw*filters, in)` matrix is that Conv2D's kernel, so the forward pass
//! is one GEMM per chunk (`x K^T`, a patch per input pixel) folded back onto the output with col2im, and the
//! backward pass is the Conv2D's forward (im2col of the output gradient, times K) and its kernel gradient.
//!
//! Geometry as Keras (JAX's `conv_transpose`): output length `(in - 1) * s + span + output_padding` for
//! "valid" (`output_padding` defaults to `max(span, s) - span`), `in * s` for "same" without `output_padding`,
//! else `(in - 1) * s + span % 2 + output_padding`; output position `i * s + k * d - pad` takes input pixel
//! `i` through tap `k`, where `pad = span - 1 - left_pad` and `left_pad` is JAX's leading padding.

use super::conv2d::add_bias;
use super::{
    activation_of, expect_rank, initializer_of, regularizer_of, Ctx, FusedActivation, Layer, Param,
};
use crate::activations::Activation;
use crate::config::Cfg;
use crate::error::{Error, Result};
use crate::kernels::conv::{col2im_add, im2col, Window};
use crate::kernels::gemm::{matmul, Op};
use crate::kernels::scratch::with_scratch;
use crate::kernels::SAMPLES_PER_CHUNK;
use crate::rng::Rng;
use crate::tensor::{shape_str, Tensor};
use rayon::prelude::*;
use serde_json::Value;

/// Output length and the Conv2D padding `pad` (see the module comment) along one axis.
fn transpose_axis(
    input: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    same: bool,
    output_padding: Option<usize>,
) -> (usize, usize) {
    let span = (kernel - 1) * dilation + 1;
    let (out, left_pad) = if !same {
        let op = output_padding.unwrap_or(span.max(stride) - span);
        ((input - 1) * stride + span + op, span - 1)
    } else {
        let pad_len = match output_padding {
            None => stride + span - 2,
            Some(op) => span + span % 2 - 2 + op,
        };
        let out = match output_padding {
            None => input * stride,
            Some(op) => (input - 1) * stride + span % 2 + op,
        };
        (out, (pad_len / 2 + pad_len % 2).min(span - 1))
    };
    (out, span - 1 - left_pad)
}

fn tuple(p: (usize, usize)) -> String {
    format!("({}, {})", p.0, p.1)
}

pub struct Conv2DTranspose {
    name: String,
    filters: usize,
    kernel_size: (usize, usize),
    strides: (usize, usize),
    dilation: (usize, usize),
    output_padding: Option<(usize, usize)>,
    same: bool,
    use_bias: bool,
    config: Value,
    act: FusedActivation,
    /// The window of the Conv2D this layer is the adjoint of: over the output `(oh', ow', filters)`, with the
    /// input's pixels as its output pixels.
    win: Option<Window>,
    in_channels: usize,
    params: Vec<Param>,
    input: Tensor,
    partials: Vec<f32>,
}

impl Conv2DTranspose {
    pub fn from_config(v: &Value) -> Result<Self> {
        let cfg = Cfg::new("Conv2DTranspose", v)?;
        cfg.channels_last()?;
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
        let strides = cfg.pair("strides", Some((1, 1)))?;
        let dilation = cfg.pair("dilation_rate", Some((1, 1)))?;
        let output_padding = match cfg.raw("output_padding") {
            None | Some(Value::Null) => None,
            Some(_) => Some(cfg.pair("output_padding", None)?),
        };
        if let Some(op) = output_padding {
            for (i, (o, s)) in [(op.0, strides.0), (op.1, strides.1)]
                .into_iter()
                .enumerate()
            {
                if o >= s {
                    return Err(Error::Value(format!(
                        "`output_padding` must be strictly less than `strides` for all dimensions. At \
                         dimension {i}, `output_padding` is {o} but `strides` is {s}. Received: \
                         output_padding={}, strides={}",
                        tuple(op),
                        tuple(strides)
                    )));
                }
            }
        }
        if strides.0.max(strides.1) > 1 && dilation.0.max(dilation.1) > 1 {
            return Err(Error::Value(format!(
                "`strides > 1` not supported in conjunction with `dilation_rate > 1`. Received: \
                 strides={} and dilation_rate={}",
                tuple(strides),
                tuple(dilation)
            )));
        }
        Ok(Conv2DTranspose {
            filters,
            kernel_size: cfg.pair("kernel_size", None)?,
            strides,
            dilation,
            output_padding,
            same: cfg.padding_same()?,
            use_bias: cfg.bool_or("use_bias", true)?,
            act: FusedActivation::new(activation_of(&cfg)?),
            name: cfg.name.clone(),
            config: v.clone(),
            win: None,
            in_channels: 0,
            params: Vec::new(),
            input: Tensor::default(),
            partials: Vec::new(),
        })
    }

    fn checked_window(&self, x: &Tensor) -> Result<Window> {
        let win = self.win.ok_or_else(|| {
            Error::Runtime(format!("Conv2DTranspose '{}' used before build", self.name))
        })?;
        if x.shape.len() != 4 || x.shape[1..] != [win.oh, win.ow, self.in_channels] {
            return Err(Error::Value(format!(
                "Input 0 of layer \"{}\" (Conv2DTranspose) is incompatible with the layer: expected shape {}, \
                 found shape {}",
                self.name,
                shape_str(&[win.oh, win.ow, self.in_channels]),
                shape_str(x.shape.get(1..).unwrap_or(&[]))
            )));
        }
        Ok(win)
    }
}

impl Layer for Conv2DTranspose {
    fn name(&self) -> &str {
        &self.name
    }
    fn class_name(&self) -> &'static str {
        "Conv2DTranspose"
    }

    fn build(&mut self, input_shape: &[usize], rng: &mut Rng) -> Result<Vec<usize>> {
        expect_rank(self, input_shape, 3, "(batch, height, width, channels)")?;
        let (h, w, c) = (input_shape[0], input_shape[1], input_shape[2]);
        let (kh, kw) = self.kernel_size;
        if h == 0 || w == 0 || kh == 0 || kw == 0 || self.strides.0 == 0 || self.strides.1 == 0 {
            return Err(Error::Value(format!(
                "Conv2DTranspose '{}': kernel_size, strides and the input's height and width must be positive \
                 (kernel_size={}, strides={}, input {})",
                self.name,
                tuple(self.kernel_size),
                tuple(self.strides),
                shape_str(input_shape)
            )));
        }
        let op = self.output_padding;
        let (oh, pad_top) = transpose_axis(
            h,
            kh,
            self.strides.0,
            self.dilation.0,
            self.same,
            op.map(|p| p.0),
        );
        let (ow, pad_left) = transpose_axis(
            w,
            kw,
            self.strides.1,
            self.dilation.1,
            self.same,
            op.map(|p| p.1),
        );
        if oh
            .checked_mul(ow)
            .and_then(|p| p.checked_mul(self.filters))
            .is_none_or(|n| n > 1 << 31)
        {
            return Err(Error::Value(format!(
                "Conv2DTranspose '{}': the output ({oh}, {ow}, {}) is too large",
                self.name, self.filters
            )));
        }
        self.win = Some(Window {
            h: oh,
            w: ow,
            c: self.filters,
            kh,
            kw,
            sh: self.strides.0,
            sw: self.strides.1,
            dh: self.dilation.0,
            dw: self.dilation.1,
            oh: h,
            ow: w,
            pad_top,
            pad_left,
        });
        self.in_channels = c;
        let cfg = Cfg::new("Conv2DTranspose", &self.config)?;
        let kshape = vec![kh, kw, self.filters, c];
        let init = initializer_of(&cfg, "kernel_initializer", "glorot_uniform")?;
        let mut kernel = Param::new("kernel", kshape.clone(), init.fill(&kshape, rng)?, true);
        kernel.regularizer = regularizer_of(&cfg, "kernel_regularizer")?;
        self.params = vec![kernel];
        if self.use_bias {
            let init = initializer_of(&cfg, "bias_initializer", "zeros")?;
            let f = self.filters;
            let mut bias = Param::new("bias", vec![f], init.fill(&[f], rng)?, true);
            bias.regularizer = regularizer_of(&cfg, "bias_regularizer")?;
            self.params.push(bias);
        }
        Ok(vec![oh, ow, self.filters])
    }

    fn forward(&mut self, x: Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        let win = self.checked_window(&x)?;
        let (p, plen, c, out_len) = (
            win.out_pixels(),
            win.patch_len(),
            self.in_channels,
            win.in_len(),
        );
        let b = x.batch();
        let mut y = Tensor::for_overwrite(vec![b, win.h, win.w, self.filters]);
        let kernel = &self.params[0].value;
        let bias = self.params.get(1).map(|p| p.value.as_slice());
        y.data
            .par_chunks_mut(SAMPLES_PER_CHUNK * out_len)
            .zip(x.data.par_chunks(SAMPLES_PER_CHUNK * p * c))
            .for_each(|(yc, xc)| {
                let n = xc.len() / (p * c);
                with_scratch(n * p * plen, 0, |cols, _| {
                    matmul(n * p, c, plen, xc, Op::N, kernel, Op::T, cols, false);
                    yc.fill(0.0);
                    for (ys, cs) in yc
                        .chunks_exact_mut(out_len)
                        .zip(cols.chunks_exact(p * plen))
                    {
                        col2im_add(&win, cs, ys);
                    }
                });
                if let Some(bias) = bias {
                    add_bias(yc, bias);
                }
            });
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
        let unmatched = || {
            Error::Runtime(format!(
                "Conv2DTranspose '{}': backward called without a matching training forward pass",
                self.name
            ))
        };
        let win = self.checked_window(&self.input).map_err(|_| unmatched())?;
        let (p, plen, c, out_len) = (
            win.out_pixels(),
            win.patch_len(),
            self.in_channels,
            win.in_len(),
        );
        let b = self.input.batch();
        if g.data.len() != b * out_len {
            return Err(unmatched());
        }
        let f = self.filters;
        let has_bias = self.params.len() > 1;
        let kernel = &self.params[0].value;
        let part_len = plen * c + f;
        let mut partials = std::mem::take(&mut self.partials);
        partials.clear();
        partials.resize(b.div_ceil(SAMPLES_PER_CHUNK) * part_len, 0.0);
        // Per fixed chunk: the output gradient unfolded (the adjoint Conv2D's patches), the kernel and bias
        // partials, and the input gradient; partials are summed in chunk order (any thread count, same sums).
        let chunk = |gc: &[f32], xc: &[f32], part: &mut [f32], dxc: Option<&mut [f32]>| {
            let n = gc.len() / out_len;
            let (dk, db) = part.split_at_mut(plen * c);
            with_scratch(n * p * plen, 0, |cols, _| {
                for (gs, cs) in gc
                    .chunks_exact(out_len)
                    .zip(cols.chunks_exact_mut(p * plen))
                {
                    im2col(&win, gs, cs);
                }
                // K is (plen, c): dK = cols^T x, dx = cols K
                matmul(plen, n * p, c, cols, Op::T, xc, Op::N, dk, false);
                if let Some(dxc) = dxc {
                    matmul(n * p, plen, c, cols, Op::N, kernel, Op::N, dxc, false);
                }
            });
            db.fill(0.0);
            if has_bias {
                for row in gc.chunks_exact(f) {
                    db.iter_mut().zip(row).for_each(|(a, v)| *a += v);
                }
            }
        };
        let work = g
            .data
            .par_chunks(SAMPLES_PER_CHUNK * out_len)
            .zip(self.input.data.par_chunks(SAMPLES_PER_CHUNK * p * c))
            .zip(partials.par_chunks_mut(part_len));
        let mut dx = Tensor::default();
        if need_input_grad {
            // every value is written by the GEMM
            dx = Tensor::for_overwrite(vec![b, win.oh, win.ow, c]);
            work.zip(dx.data.par_chunks_mut(SAMPLES_PER_CHUNK * p * c))
                .for_each(|(((gc, xc), part), dxc)| chunk(gc, xc, part, Some(dxc)));
        } else {
            work.for_each(|((gc, xc), part)| chunk(gc, xc, part, None));
        }
        for part in partials.chunks_exact(part_len) {
            let (dk, db) = part.split_at(plen * c);
            self.params[0]
                .grad
                .iter_mut()
                .zip(dk)
                .for_each(|(a, v)| *a += v);
            if let Some(bias) = self.params.get_mut(1) {
                bias.grad.iter_mut().zip(db).for_each(|(a, v)| *a += v);
            }
        }
        self.partials = partials;
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

#[cfg(test)]
mod tests {
    use super::super::gradcheck;
    use super::*;
    use serde_json::json;

    fn built(cfg: Value, in_shape: &[usize]) -> Conv2DTranspose {
        let mut l = Conv2DTranspose::from_config(&cfg).unwrap();
        let mut rng = Rng::new(3);
        l.build(in_shape, &mut rng).unwrap();
        if let Some(b) = l.params.get_mut(1) {
            b.value
                .iter_mut()
                .enumerate()
                .for_each(|(j, v)| *v = 0.02 * j as f32);
        }
        l
    }

    #[test]
    fn output_lengths_are_keras() {
        // valid: (in - 1) * s + max(k, s); same: in * s; with output_padding: Keras's formulas
        assert_eq!(transpose_axis(4, 3, 2, 1, false, None).0, 9);
        assert_eq!(transpose_axis(4, 2, 3, 1, false, None).0, 12);
        assert_eq!(transpose_axis(4, 3, 2, 1, true, None).0, 8);
        assert_eq!(transpose_axis(4, 3, 2, 1, true, Some(1)).0, 8);
        assert_eq!(transpose_axis(4, 3, 2, 1, false, Some(1)).0, 10);
        assert_eq!(transpose_axis(5, 3, 1, 2, true, None).0, 5);
    }

    #[test]
    fn one_pixel_spreads_the_kernel() {
        // a single input pixel with one channel, stride 1, valid: the output is the kernel itself
        let mut l = built(
            json!({"filters": 1, "kernel_size": 2, "use_bias": false}),
            &[1, 1, 1],
        );
        l.params[0].value = vec![1.0, 2.0, 3.0, 4.0];
        let mut rng = Rng::new(0);
        let mut ctx = Ctx {
            training: false,
            rng: &mut rng,
        };
        let x = Tensor::new(vec![1, 1, 1, 1], vec![2.0]).unwrap();
        let y = l.forward(x, &mut ctx).unwrap();
        assert_eq!(y.shape, vec![1, 2, 2, 1]);
        assert_eq!(y.data, vec![2.0, 4.0, 6.0, 8.0]);
    }

    #[test]
    fn gradients() {
        let cases = [
            json!({"filters": 3, "kernel_size": 3, "strides": 2, "activation": "tanh"}),
            json!({"filters": 2, "kernel_size": [2, 3], "strides": [2, 1], "padding": "same"}),
            json!({"filters": 2, "kernel_size": 3, "strides": 2, "padding": "same", "output_padding": 1}),
            json!({"filters": 2, "kernel_size": 2, "dilation_rate": 2, "use_bias": false}),
        ];
        for cfg in cases {
            let mut l = built(cfg, &[3, 4, 2]);
            gradcheck::check(&mut l, gradcheck::input(&[5, 3, 4, 2], 9), 2e-2);
        }
    }

    #[test]
    fn keras_errors() {
        let e = Conv2DTranspose::from_config(&json!({"filters": 2, "kernel_size": 3, "strides": 2,
            "output_padding": 2}))
        .err()
        .unwrap()
        .to_string();
        assert!(
            e.contains("`output_padding` must be strictly less than `strides`"),
            "{e}"
        );
        assert!(Conv2DTranspose::from_config(&json!({"filters": 0, "kernel_size": 3})).is_err());
        assert!(Conv2DTranspose::from_config(
            &json!({"filters": 1, "kernel_size": 3, "strides": 2, "dilation_rate": 2})
        )
        .is_err());
    }
}
