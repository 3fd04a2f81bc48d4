//! Conv2D, channels-last: im2col per sample, one GEMM per chunk of samples against the `(kh*kw*in, out)` kernel.
//! The patches live in a per-thread scratch buffer for one chunk at a time; training keeps the layer's input,
//! not its patches (9x smaller for a 3x3 kernel), and backward unfolds each chunk again while it is in cache.
//! A dilated window reads taps `dilation_rate` apart; with `groups` > 1 each group of `in / groups` input
//! channels is unfolded on its own and multiplied by its column block of the `(kh*kw*in/groups, out)` kernel.

use super::{activation_of, expect_rank, Ctx, FusedActivation, KernelBias, Layer, Param};
use crate::activations::Activation;
use crate::config::Cfg;
use crate::error::{Error, Result};
use crate::kernels::conv::{col2im_add, col2im_channels_add, im2col, im2col_channels, Window};
use crate::kernels::gemm::{matmul, matmul_sub, Op, Sub};
use crate::kernels::pool::{self, NO_GRAD};
use crate::kernels::scratch::{with_scratch, with_scratch3};
use crate::kernels::SAMPLES_PER_CHUNK;
use crate::rng::Rng;
use crate::tensor::{shape_str, Tensor};
use rayon::prelude::*;
use serde_json::Value;

pub struct Conv2D {
    name: String,
    filters: usize,
    kernel_size: (usize, usize),
    strides: (usize, usize),
    dilation: (usize, usize),
    groups: usize,
    same: bool,
    weights: KernelBias,
    act: FusedActivation,
    win: Option<Window>,
    params: Vec<Param>,
    /// The input of the last training batch, for backward.
    input: Tensor,
    /// The max pooling the last training forward ran fused with (`forward_max_pooled`), and its argmax.
    pooled: Option<Window>,
    pool_argmax: Vec<u32>,
    /// Per-chunk kernel and bias gradient partials, `(chunks, kh*kw*in*out + out)`, kept between batches.
    partials: Vec<f32>,
    batch: usize,
}

impl Conv2D {
    pub fn from_config(v: &Value) -> Result<Self> {
        let cfg = Cfg::new("Conv2D", v)?;
        cfg.channels_last()?;
        let filters = cfg.positive_usize("filters")?;
        let strides = cfg.pair("strides", Some((1, 1)))?;
        let dilation = cfg.pair("dilation_rate", Some((1, 1)))?;
        let groups = match cfg.raw("groups") {
            None | Some(Value::Null) => 1,
            Some(g) => match g.as_u64() {
                Some(g) if g > 0 && g < 1 << 20 => g as usize,
                _ => {
                    return Err(Error::Value(format!(
                        "The number of groups must be a positive integer. Received: groups={g}."
                    )))
                }
            },
        };
        if !filters.is_multiple_of(groups) {
            return Err(Error::Value(format!(
                "The number of filters must be evenly divisible by the number of groups. Received: \
                 groups={groups}, filters={filters}."
            )));
        }
        if strides.0.max(strides.1) > 1 && dilation.0.max(dilation.1) > 1 {
            return Err(Error::Value(format!(
                "`strides > 1` not supported in conjunction with `dilation_rate > 1`. Received: \
                 strides={strides:?} and dilation_rate={dilation:?}"
            )));
        }
        Ok(Conv2D {
            filters,
            kernel_size: cfg.pair("kernel_size", None)?,
            strides,
            dilation,
            groups,
            same: cfg.padding_same()?,
            weights: KernelBias::from_config(&cfg)?,
            act: FusedActivation::new(activation_of(&cfg)?),
            name: cfg.name,
            win: None,
            params: Vec::new(),
            input: Tensor::default(),
            pooled: None,
            pool_argmax: Vec::new(),
            partials: Vec::new(),
            batch: 0,
        })
    }

    fn window(&self) -> Result<Window> {
        self.win
            .ok_or_else(|| Error::Runtime(format!("Conv2D '{}' used before build", self.name)))
    }

    /// Output pixels, patch length (of one group), filters and input values per sample.
    fn sizes(&self, win: &Window) -> (usize, usize, usize, usize) {
        (
            win.out_pixels(),
            win.patch_len() / self.groups,
            self.filters,
            win.in_len(),
        )
    }

    /// The built window, after checking that `x` is a batch of this layer's input shape.
    fn checked_window(&self, x: &Tensor) -> Result<Window> {
        let win = self.window()?;
        if x.shape.len() != 4 || x.shape[1..] != [win.h, win.w, win.c] {
            return Err(Error::Value(format!(
                "Input 0 of layer \"{}\" (Conv2D) is incompatible with the layer: expected shape {}, \
                 found shape {}",
                self.name,
                shape_str(&[win.h, win.w, win.c]),
                shape_str(x.shape.get(1..).unwrap_or(&[]))
            )));
        }
        Ok(win)
    }

    /// After a forward pass: in training keep the input (backward unfolds it again, cheaper in memory than
    /// keeping every patch) and the max pooling it ran fused with, if any; in inference give its buffer back.
    fn keep_for_backward(&mut self, x: Tensor, training: bool, pooled: Option<Window>) {
        if training {
            self.batch = x.batch();
            self.pooled = pooled;
            std::mem::replace(&mut self.input, x).recycle();
        } else {
            x.recycle();
        }
    }

    /// Backward from `g`, after a training forward that was fused with a max pooling or not, as `fused` says.
    fn backward_from(&mut self, g: Tensor, need_input_grad: bool, fused: bool) -> Result<Tensor> {
        if self.pooled.is_some() != fused {
            return Err(self.unmatched_backward());
        }
        let dx = self.backward_core(&g.data, need_input_grad)?;
        g.recycle();
        Ok(dx)
    }

    fn unmatched_backward(&self) -> Error {
        Error::Runtime(format!(
            "Conv2D '{}': backward called without a matching training forward pass",
            self.name
        ))
    }

    /// Kernel, bias and (if asked) input gradients from `g`: dL/d(pre-activation output) when the last forward
    /// was not fused, else dL/d(output of the fused max pooling), taken back through the pooling's argmax and
    /// the activation chunk by chunk.
    fn backward_core(&mut self, g: &[f32], need_input_grad: bool) -> Result<Tensor> {
        let win = self.window()?;
        let (p, k, f, in_len) = self.sizes(&win);
        let b = self.batch;
        let pooled_len = self.pooled.map(|w| w.out_pixels() * w.c);
        let g_len = pooled_len.unwrap_or(p * f);
        let argmax_ok = pooled_len.is_none_or(|len| self.pool_argmax.len() == b * len);
        if self.input.data.len() != b * in_len || g.len() != b * g_len || !argmax_ok {
            return Err(self.unmatched_backward());
        }
        let has_bias = self.params.len() > 1;
        let kernel = &self.params[0].value;
        let argmax = &self.pool_argmax;
        let groups = self.groups;
        // One pass per fixed chunk: its output gradient (through the pooling and activation when fused), the
        // input unfolded again, its kernel and bias partials, and (if asked) its input gradient through the
        // patch gradients. Partials are summed in chunk order below, so the result is the same for any thread
        // count (the bias differs from one serial pass only by rounding).
        let chunk_grads = |ci: usize, xc: &[f32], part: &mut [f32], dxc: Option<&mut [f32]>| {
            let n = xc.len() / in_len;
            let first = ci * SAMPLES_PER_CHUNK;
            let gc_given = &g[first * g_len..][..n * g_len];
            let (dk, db) = part.split_at_mut(k * f);
            let pointwise = groups == 1 && win.is_pointwise();
            let cols_len = if pointwise { 0 } else { n * p * k };
            let dcols_len = if dxc.is_some() && !pointwise {
                n * p * k
            } else {
                0
            };
            let dconv_len = if pooled_len.is_some() { n * p * f } else { 0 };
            with_scratch3(cols_len, dcols_len, dconv_len, |cols, dcols, dconv| {
                let gc: &[f32] = if pooled_len.is_some() {
                    dconv.fill(0.0);
                    let args = &argmax[first * g_len..][..n * g_len];
                    // ReLU's derivative is in the argmax already (NO_GRAD where the window's max was 0)
                    for ((d, gs), a) in dconv
                        .chunks_exact_mut(p * f)
                        .zip(gc_given.chunks_exact(g_len))
                        .zip(args.chunks_exact(g_len))
                    {
                        pool::max_backward(gs, a, d);
                    }
                    dconv
                } else {
                    gc_given
                };
                if pointwise {
                    // the patches are the input and the patch gradients are the input gradient
                    matmul(k, n * p, f, xc, Op::T, gc, Op::N, dk, false);
                    if let Some(dxc) = dxc {
                        matmul(n * p, f, k, gc, Op::N, kernel, Op::T, dxc, false);
                    }
                } else if groups == 1 {
                    for s in 0..n {
                        im2col(
                            &win,
                            &xc[s * in_len..][..in_len],
                            &mut cols[s * p * k..][..p * k],
                        );
                    }
                    matmul(k, n * p, f, cols, Op::T, gc, Op::N, dk, false);
                    if let Some(dxc) = dxc {
                        matmul(n * p, f, k, gc, Op::N, kernel, Op::T, dcols, false);
                        dxc.fill(0.0);
                        for s in 0..n {
                            col2im_add(
                                &win,
                                &dcols[s * p * k..][..p * k],
                                &mut dxc[s * in_len..][..in_len],
                            );
                        }
                    }
                } else {
                    grouped_backward(
                        &win,
                        groups,
                        xc,
                        gc,
                        kernel,
                        cols,
                        dk,
                        dxc.map(|d| (d, dcols)),
                    );
                }
                db.fill(0.0);
                if has_bias {
                    for row in gc.chunks(f) {
                        db.iter_mut().zip(row).for_each(|(a, v)| *a += v);
                    }
                }
            })
        };
        let part_len = k * f + f;
        let mut partials = std::mem::take(&mut self.partials);
        partials.resize(b.div_ceil(SAMPLES_PER_CHUNK) * part_len, 0.0);
        let work = self
            .input
            .data
            .par_chunks(SAMPLES_PER_CHUNK * in_len)
            .enumerate()
            .zip(partials.par_chunks_mut(part_len));
        let mut dx = Tensor::default();
        if need_input_grad {
            // every value is written: each chunk is cleared before its patch gradients are added
            dx = Tensor::for_overwrite(vec![b, win.h, win.w, win.c]);
            work.zip(dx.data.par_chunks_mut(SAMPLES_PER_CHUNK * in_len))
                .for_each(|(((ci, xc), part), dxc)| chunk_grads(ci, xc, part, Some(dxc)));
        } else {
            work.for_each(|((ci, xc), part)| chunk_grads(ci, xc, part, None));
        }
        for part in partials.chunks_exact(part_len) {
            let (dk, db) = part.split_at(k * f);
            self.params[0]
                .grad
                .iter_mut()
                .zip(dk)
                .for_each(|(a, b)| *a += b);
            if let Some(bias) = self.params.get_mut(1) {
                bias.grad.iter_mut().zip(db).for_each(|(a, b)| *a += b);
            }
        }
        self.partials = partials;
        // The input is not needed any more: its buffer can serve the next batch.
        std::mem::take(&mut self.input).recycle();
        self.batch = 0;
        self.pooled = None;
        Ok(dx)
    }
}

crate::simd_fn! {
    /// `out[r, j] = relu(out[r, j] + bias[j])`: the bias and an inference ReLU in one pass.
    fn add_bias_relu(out: &mut [f32], bias: &[f32]) {
        for row in out.chunks_exact_mut(bias.len()) {
            row.iter_mut().zip(bias).for_each(|(a, b)| *a = (*a + b).max(0.0));
        }
    }
}

crate::simd_fn! {
    /// As `add_bias_relu`, recording where the output is positive (the training ReLU's mask).
    fn add_bias_relu_masked(out: &mut [f32], bias: &[f32], mask: &mut [u8]) {
        for (row, m) in out.chunks_exact_mut(bias.len()).zip(mask.chunks_exact_mut(bias.len())) {
            for ((a, b), m) in row.iter_mut().zip(bias).zip(m) {
                *a = (*a + b).max(0.0);
                *m = (*a > 0.0) as u8;
            }
        }
    }
}

crate::simd_fn! {
    /// `out[r, j] += bias[j]` for every row r of `out` (the convolution layers' bias step).
    pub(super) fn add_bias(out: &mut [f32], bias: &[f32]) {
        for row in out.chunks_exact_mut(bias.len()) {
            row.iter_mut().zip(bias).for_each(|(a, b)| *a += b);
        }
    }
}

/// How a chunk's GEMM output is finished: the bias the GEMM step adds (None when a fused ReLU takes it) and
/// the per-chunk epilogue (bias + ReLU in one pass, or the fused activation, or nothing when the activation
/// runs over the whole output afterwards). The same values whichever way.
#[allow(clippy::type_complexity)]
fn chunk_epilogue(
    act: Activation,
    fused: bool,
    bias: Option<&[f32]>,
    f: usize,
) -> (
    Option<&[f32]>,
    impl Fn(&mut [f32], Option<&mut [u8]>) + Sync + '_,
) {
    let bias_relu = bias.filter(|_| fused && act == Activation::Relu);
    let gemm_bias = if bias_relu.is_some() { None } else { bias };
    let finish = move |yc: &mut [f32], mask: Option<&mut [u8]>| match (bias_relu, mask) {
        (Some(b), Some(m)) => add_bias_relu_masked(yc, b, m),
        (Some(b), None) => add_bias_relu(yc, b),
        (None, mask) if fused => FusedActivation::apply_chunk(act, yc, mask, f),
        _ => {}
    };
    (gemm_bias, finish)
}

/// Patches of every sample of a chunk, then one GEMM for the chunk (one per group), then the bias.
fn conv_chunk(
    win: &Window,
    groups: usize,
    x: &[f32],
    cols: &mut [f32],
    kernel: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let (p, k, in_len) = (win.out_pixels(), win.patch_len() / groups, win.in_len());
    let f = kernel.len() / k;
    let n = x.len() / in_len;
    if groups == 1 && win.is_pointwise() {
        matmul(n * p, k, f, x, Op::N, kernel, Op::N, out, false);
    } else if groups == 1 {
        for s in 0..n {
            im2col(
                win,
                &x[s * in_len..][..in_len],
                &mut cols[s * p * k..][..p * k],
            );
        }
        matmul(n * p, k, f, cols, Op::N, kernel, Op::N, out, false);
    } else {
        let (cg, fg) = (win.c / groups, f / groups);
        for g in 0..groups {
            unfold_group(win, x, g * cg, cg, &mut cols[..n * p * k]);
            let a = Sub {
                data: cols,
                ld: k,
                op: Op::N,
            };
            let b = Sub {
                data: &kernel[g * fg..],
                ld: f,
                op: Op::N,
            };
            matmul_sub(n * p, k, fg, a, b, &mut out[g * fg..], f, false);
        }
    }
    if let Some(bias) = bias {
        add_bias(out, bias);
    }
}

/// The patches of input channels `[c0, c0 + cg)` of every sample in `x`, one sample after another.
fn unfold_group(win: &Window, x: &[f32], c0: usize, cg: usize, cols: &mut [f32]) {
    let (in_len, plen) = (win.in_len(), win.out_pixels() * win.kh * win.kw * cg);
    for (xs, cs) in x.chunks_exact(in_len).zip(cols.chunks_exact_mut(plen)) {
        im2col_channels(win, xs, c0, cg, cs);
    }
}

/// A chunk's kernel gradient (into `dk`, `(k, f)` with `k` one group's patch length) and, with `dx`, its input
/// gradient, group by group: each group's patches against its column block of the output gradient `gc`.
#[allow(clippy::too_many_arguments)]
fn grouped_backward(
    win: &Window,
    groups: usize,
    xc: &[f32],
    gc: &[f32],
    kernel: &[f32],
    cols: &mut [f32],
    dk: &mut [f32],
    mut dx: Option<(&mut [f32], &mut [f32])>,
) {
    let (p, in_len) = (win.out_pixels(), win.in_len());
    let n = xc.len() / in_len;
    let (cg, k) = (win.c / groups, win.patch_len() / groups);
    let f = kernel.len() / k;
    let fg = f / groups;
    if let Some((dxc, _)) = dx.as_mut() {
        dxc.fill(0.0);
    }
    for g in 0..groups {
        unfold_group(win, xc, g * cg, cg, &mut cols[..n * p * k]);
        let grad_g = Sub {
            data: &gc[g * fg..],
            ld: f,
            op: Op::N,
        };
        let cols_t = Sub {
            data: cols,
            ld: k,
            op: Op::T,
        };
        matmul_sub(k, n * p, fg, cols_t, grad_g, &mut dk[g * fg..], f, false);
        if let Some((dxc, dcols)) = dx.as_mut() {
            let kernel_t = Sub {
                data: &kernel[g * fg..],
                ld: f,
                op: Op::T,
            };
            matmul_sub(n * p, fg, k, grad_g, kernel_t, dcols, k, false);
            let plen = p * k;
            for (dc, ds) in dcols[..n * plen]
                .chunks_exact(plen)
                .zip(dxc.chunks_exact_mut(in_len))
            {
                col2im_channels_add(win, dc, g * cg, cg, ds);
            }
        }
    }
}

impl Layer for Conv2D {
    fn name(&self) -> &str {
        &self.name
    }
    fn class_name(&self) -> &'static str {
        "Conv2D"
    }

    fn build(&mut self, input_shape: &[usize], rng: &mut Rng) -> Result<Vec<usize>> {
        expect_rank(self, input_shape, 3, "(batch, height, width, channels)")?;
        let what = format!("Conv2D '{}'", self.name);
        let channels = input_shape[2];
        if !channels.is_multiple_of(self.groups) {
            return Err(Error::Value(format!(
                "The number of input channels must be evenly divisible by the number of groups. Received \
                 groups={}, but the input has {channels} channels (full input shape is (None, {}, {}, \
                 {channels})).",
                self.groups, input_shape[0], input_shape[1]
            )));
        }
        let win = Window::dilated(
            &what,
            (input_shape[0], input_shape[1], channels),
            self.kernel_size,
            self.strides,
            self.dilation,
            self.same,
        )?;
        let (kh, kw) = self.kernel_size;
        let kshape = vec![kh, kw, channels / self.groups, self.filters];
        self.params = self.weights.make(kshape, rng)?;
        self.win = Some(win);
        Ok(vec![win.oh, win.ow, self.filters])
    }

    fn forward(&mut self, x: Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        let win = self.checked_window(&x)?;
        let (p, k, f, in_len) = self.sizes(&win);
        let b = x.batch();
        // every output value is written by the GEMM (it never reads its destination)
        let mut y = Tensor::for_overwrite(vec![b, win.oh, win.ow, f]);
        let kernel = &self.params[0].value;
        let bias = self.params.get(1).map(|p| p.value.as_slice());
        let fused = self.act.per_chunk(ctx.training);
        let (gemm_bias, finish) = chunk_epilogue(self.act.act, fused, bias, f);
        let chunk_out = SAMPLES_PER_CHUNK * p * f;
        let groups = self.groups;
        let pointwise = groups == 1 && win.is_pointwise();
        let conv_into = |xc: &[f32], yc: &mut [f32]| {
            let n = xc.len() / in_len;
            let cols_len = if pointwise { 0 } else { n * p * k };
            with_scratch(cols_len, 0, |cols, _| {
                conv_chunk(&win, groups, xc, cols, kernel, gemm_bias, yc)
            });
        };
        let work = y
            .data
            .par_chunks_mut(chunk_out)
            .zip(x.data.par_chunks(SAMPLES_PER_CHUNK * in_len));
        if ctx.training && fused && self.act.needs_mask(true) {
            let mut mask = self.act.take_mask(b * p * f);
            work.zip(mask.par_chunks_mut(chunk_out))
                .for_each(|((yc, xc), mc)| {
                    conv_into(xc, yc);
                    finish(yc, Some(mc));
                });
            self.act.restore_mask(mask);
        } else {
            work.for_each(|(yc, xc)| {
                conv_into(xc, yc);
                finish(yc, None);
            });
        }
        if !fused {
            self.act.forward(&mut y, ctx.training);
        }
        drop(finish); // (it borrows the bias)
        self.keep_for_backward(x, ctx.training, None);
        Ok(y)
    }

    fn backward(&mut self, mut grad: Tensor, need_input_grad: bool) -> Result<Tensor> {
        self.act.backward(&mut grad)?;
        self.backward_from(grad, need_input_grad, false)
    }
    fn backward_preactivation(&mut self, grad_z: Tensor, need_input_grad: bool) -> Result<Tensor> {
        self.backward_from(grad_z, need_input_grad, false)
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
        self.pooled = None;
        self.pool_argmax = Vec::new();
        self.partials = Vec::new();
        self.batch = 0;
        self.act.clear();
    }
}

/// The fused pass with the max pooling after it (see `crate::graph::fusion`).
impl Conv2D {
    /// Whether `forward_max_pooled` can run this convolution (training or inference) with `pool` after it:
    /// the pooling reads exactly this layer's output, and the activation can be applied chunk by chunk.
    pub fn can_fuse_max_pool(&self, pool: &Window, training: bool) -> bool {
        self.win
            .is_some_and(|w| (pool.h, pool.w, pool.c) == (w.oh, w.ow, self.filters))
            && self.act.per_chunk(training)
    }

    /// Forward of this convolution then the max pooling `pool`, chunk by chunk so the unpooled output never
    /// leaves the cache; the same values as the two forward passes. In training the backward pass of both is
    /// `backward_max_pooled`.
    pub fn forward_max_pooled(
        &mut self,
        x: Tensor,
        pool: &Window,
        training: bool,
    ) -> Result<Tensor> {
        let win = self.checked_window(&x)?;
        if !self.can_fuse_max_pool(pool, training) {
            return Err(Error::Runtime(format!(
                "Conv2D '{}' cannot run fused with this max pooling",
                self.name
            )));
        }
        let (p, k, f, in_len) = self.sizes(&win);
        let pooled_len = pool.out_pixels() * pool.c;
        let b = x.batch();
        // every value is written by the pooling (each window starts from -inf)
        let mut y = Tensor::for_overwrite(vec![b, pool.oh, pool.ow, pool.c]);
        let kernel = &self.params[0].value;
        let bias = self.params.get(1).map(|p| p.value.as_slice());
        let (gemm_bias, finish) = chunk_epilogue(self.act.act, true, bias, f);
        let relu = self.act.act == Activation::Relu;
        let groups = self.groups;
        let mut argmax = std::mem::take(&mut self.pool_argmax);
        argmax.resize(if training { b * pooled_len } else { 0 }, 0);
        let chunk_pooled = SAMPLES_PER_CHUNK * pooled_len;
        let run_chunk =
            |yc: &mut [f32], xc: &[f32], ac: Option<&mut [u32]>| {
                let n = xc.len() / in_len;
                // the chunk's convolution output lives in scratch, in cache, until it is pooled
                with_scratch(n * p * k, n * p * f, |cols, conv| {
                    conv_chunk(&win, groups, xc, cols, kernel, gemm_bias, conv);
                    finish(conv, None);
                    let pairs = yc
                        .chunks_exact_mut(pooled_len)
                        .zip(conv.chunks_exact(p * f));
                    match ac {
                        // training keeps each window's argmax, as the pooling layer itself would
                        Some(ac) => pairs.zip(ac.chunks_exact_mut(pooled_len)).for_each(
                            |((out, sample), a)| {
                                pool::max_forward(pool, sample, out, a);
                                if relu {
                                    // No ReLU mask is kept: a window's max is the ReLU output at its argmax,
                                    // so the mask there is (max > 0); where it is not, no gradient flows back
                                    // (the same as adding it and masking it to 0, even where windows overlap).
                                    for (o, i) in out.iter().zip(a.iter_mut()) {
                                        if *o <= 0.0 || o.is_nan() {
                                            *i = NO_GRAD;
                                        }
                                    }
                                }
                            },
                        ),
                        None => pairs
                            .for_each(|(out, sample)| pool::max_forward_values(pool, sample, out)),
                    }
                });
            };
        let work = y
            .data
            .par_chunks_mut(chunk_pooled)
            .zip(x.data.par_chunks(SAMPLES_PER_CHUNK * in_len));
        if training {
            work.zip(argmax.par_chunks_mut(chunk_pooled))
                .for_each(|((yc, xc), ac)| run_chunk(yc, xc, Some(ac)));
        } else {
            work.for_each(|(yc, xc)| run_chunk(yc, xc, None));
        }
        self.pool_argmax = argmax;
        drop(finish); // (it borrows the bias)
        self.keep_for_backward(x, training, Some(*pool));
        Ok(y)
    }

    /// Backward through the max pooling and this convolution after a training `forward_max_pooled`: from
    /// dL/d(pooled output) to dL/d(input); the same values as the two backward passes.
    pub fn backward_max_pooled(&mut self, grad: Tensor, need_input_grad: bool) -> Result<Tensor> {
        self.backward_from(grad, need_input_grad, true)
    }
}

#[cfg(test)]
mod tests {
    use super::super::gradcheck;
    use super::*;
    use serde_json::json;

    fn conv(cfg: Value, in_shape: &[usize]) -> Conv2D {
        let mut c = Conv2D::from_config(&cfg).unwrap();
        let mut rng = Rng::new(2);
        c.build(in_shape, &mut rng).unwrap();
        if let Some(b) = c.params.get_mut(1) {
            b.value
                .iter_mut()
                .enumerate()
                .for_each(|(i, v)| *v = 0.05 * i as f32);
        }
        c
    }

    #[test]
    fn known_output_single_channel() {
        // 3x3 input, 2x2 kernel of ones: each output is the sum of its window.
        let mut c = conv(
            json!({"filters": 1, "kernel_size": 2, "use_bias": false}),
            &[3, 3, 1],
        );
        c.params[0].value = vec![1.0; 4];
        let mut rng = Rng::new(0);
        let mut ctx = Ctx {
            training: false,
            rng: &mut rng,
        };
        let x = Tensor::new(vec![1, 3, 3, 1], (1..=9).map(|v| v as f32).collect()).unwrap();
        let y = c.forward(x, &mut ctx).unwrap();
        assert_eq!(y.shape, vec![1, 2, 2, 1]);
        assert_eq!(y.data, vec![12.0, 16.0, 24.0, 28.0]);
    }

    #[test]
    fn gradients_valid_same_strided_even_odd() {
        let cases = [
            json!({"filters": 3, "kernel_size": [3, 3], "activation": "sigmoid"}),
            json!({"filters": 2, "kernel_size": [2, 2], "padding": "same"}),
            json!({"filters": 2, "kernel_size": [3, 2], "strides": [2, 1], "padding": "same", "activation": "tanh"}),
            json!({"filters": 2, "kernel_size": 4, "strides": 2, "padding": "same", "use_bias": false}),
            json!({"filters": 2, "kernel_size": 3, "strides": 2}),
        ];
        for cfg in cases {
            let mut c = conv(cfg, &[5, 6, 2]);
            // 5 samples: more than one chunk, and a partial last chunk
            gradcheck::check(&mut c, gradcheck::input(&[5, 5, 6, 2], 9), 2e-2);
        }
    }

    #[test]
    fn kernel_larger_than_input_is_rejected_at_build() {
        let mut c = Conv2D::from_config(&json!({"filters": 2, "kernel_size": 5})).unwrap();
        let mut rng = Rng::new(0);
        let err = c.build(&[3, 3, 1], &mut rng).unwrap_err().to_string();
        assert!(err.contains("larger than the input"), "{err}");
        assert!(c.build(&[8, 8], &mut rng).is_err());
        assert!(Conv2D::from_config(&json!({"filters": 0, "kernel_size": 3})).is_err());
    }
}
