//! SimpleRNN, LSTM and GRU over `(batch, timesteps, features)`, with Keras's gate orders, weight layouts and
//! defaults: kernel `(features, G * units)`, recurrent_kernel `(units, G * units)`, bias `(G * units)` (GRU with
//! `reset_after`: `(2, 3 * units)`, input and recurrent biases). LSTM gates i, f, c, o; GRU gates z, r, h.
//!
//! The input projections of every step are one GEMM before the loop; each step is one `(batch, units) x (units,
//! G * units)` GEMM and elementwise gate arithmetic. Backpropagation through time keeps each step's gate values
//! and previous state, then makes the kernel's and the input's gradients with one GEMM each over all steps, and
//! the recurrent kernel's with one GEMM over every step's previous state.

use super::{initializer_of, regularizer_of, Ctx, Layer, Param};
use crate::activations::Activation;
use crate::config::Cfg;
use crate::error::{Error, Result};
use crate::initializers::Initializer;
use crate::kernels::gemm::{matmul, Op};
use crate::rng::Rng;
use crate::tensor::Tensor;
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Cell {
    Simple,
    Lstm,
    /// GRU with `reset_after=True` (Keras's default): the reset gate multiplies the recurrent projection.
    Gru,
}

impl Cell {
    /// Gates per unit: the width of the kernels is `gates * units`.
    fn gates(self) -> usize {
        match self {
            Cell::Simple => 1,
            Cell::Lstm => 4,
            Cell::Gru => 3,
        }
    }
}

/// What one training forward keeps for the backward. Per-step arrays are in processing order `s` (reversed
/// input order with `go_backwards`), `(steps, batch, width)`.
#[derive(Default)]
struct Cache {
    batch: usize,
    x: Vec<f32>,
    /// The call's mask `(batch, steps)` in input order (empty: none).
    mask: Vec<f32>,
    /// How many initial states the call was given (their gradients are returned).
    n_init: usize,
    /// The state each step starts from: h (and c for LSTM).
    h_prev: Vec<f32>,
    c_prev: Vec<f32>,
    /// Gate values after their activations, and before them where an activation's derivative needs its input.
    gates: Vec<f32>,
    pre: Vec<f32>,
    /// LSTM: the new cell state and its activation; GRU: the recurrent projection of the candidate gate.
    c: Vec<f32>,
    act_c: Vec<f32>,
    rec_h: Vec<f32>,
    drop: Drop,
}

/// The dropout masks of one training call, each value 0 or `1 / (1 - rate)`, fixed over the steps (as Keras).
/// With `recurrent_dropout`, Keras's cells draw one mask per gate block for the input and for the state; with
/// `dropout` alone, one input mask for every gate.
#[derive(Default)]
struct Drop {
    /// `(masks, batch, features)`: one mask, or one per gate block.
    x: Vec<f32>,
    x_masks: usize,
    /// `(gates, batch, units)`, or empty.
    h: Vec<f32>,
}

fn dropout_masks(n: usize, rate: f32, rng: &mut Rng) -> Vec<f32> {
    let keep = 1.0 - rate;
    let scale = 1.0 / keep;
    (0..n)
        .map(|_| if rng.uniform() < keep { scale } else { 0.0 })
        .collect()
}

/// `a * mask` row by row, where row r of `a` (rows of `dim` values) takes mask row `pick(r)`.
fn masked_rows(a: &[f32], mask: &[f32], dim: usize, pick: impl Fn(usize) -> usize) -> Vec<f32> {
    let mut out = vec![0.0f32; a.len()];
    masked_rows_into(a, mask, dim, pick, &mut out);
    out
}

/// `masked_rows` into a buffer of `a`'s length (the per-step products reuse one).
fn masked_rows_into(
    a: &[f32],
    mask: &[f32],
    dim: usize,
    pick: impl Fn(usize) -> usize,
    out: &mut [f32],
) {
    for (r, (row, src)) in out.chunks_mut(dim).zip(a.chunks(dim)).enumerate() {
        let m = &mask[pick(r) * dim..][..dim];
        row.iter_mut()
            .zip(src.iter().zip(m))
            .for_each(|(o, (v, k))| *o = v * k);
    }
}

/// Columns `k * u .. (k + 1) * u` of a row-major `(rows, w)` matrix, as a `(rows, u)` copy.
fn block_cols(a: &[f32], w: usize, k: usize, u: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; a.len() / w * u];
    block_cols_into(a, w, k, u, &mut out);
    out
}

/// `block_cols` into a `(rows, u)` buffer.
fn block_cols_into(a: &[f32], w: usize, k: usize, u: usize, out: &mut [f32]) {
    for (row, dst) in a.chunks(w).zip(out.chunks_mut(u)) {
        dst.copy_from_slice(&row[k * u..(k + 1) * u]);
    }
}

/// Write (or add) a `(rows, u)` block into columns `k * u ..` of a row-major `(rows, w)` matrix.
fn put_block_cols(dst: &mut [f32], src: &[f32], w: usize, k: usize, u: usize, add: bool) {
    for (row, part) in dst.chunks_mut(w).zip(src.chunks(u)) {
        let to = &mut row[k * u..(k + 1) * u];
        if add {
            to.iter_mut().zip(part).for_each(|(a, b)| *a += b);
        } else {
            to.copy_from_slice(part);
        }
    }
}

pub struct Recurrent {
    name: String,
    class: &'static str,
    cell: Cell,
    units: usize,
    act: Activation,
    rec_act: Activation,
    use_bias: bool,
    unit_forget_bias: bool,
    return_sequences: bool,
    return_state: bool,
    go_backwards: bool,
    /// A masked step's output is zeros (else the previous output); Bidirectional sets it with sequences.
    zero_output_for_mask: bool,
    /// This call's inputs: initial states given, and whether a mask comes last (`build_inputs`).
    n_init: usize,
    masked: bool,
    inits: [Initializer; 3],
    regs: [Option<crate::layers::Regularizer>; 3],
    /// Keras's `dropout` (of the inputs) and `recurrent_dropout` (of the state), applied in training when in
    /// (0, 1); masks from the layer's own stream when it has a `seed`, else the model's.
    dropout: f32,
    recurrent_dropout: f32,
    own_rng: Option<Rng>,
    /// `stateful`: the final states of each call start the next one (until `reset_states`).
    stateful: bool,
    /// GRU: Keras's default `reset_after=True` (r times the recurrent projection, bias `(2, 3u)`), or the
    /// original form (the recurrent kernel reads `r * h`, bias `(3u)`).
    reset_after: bool,
    carried: Vec<Tensor>,
    steps: usize,
    in_dim: usize,
    params: Vec<Param>,
    cache: Option<Cache>,
}

/// An activation argument: missing takes `default`, `None` is linear (as in Keras).
fn activation(cfg: &Cfg, key: &str, default: &str) -> Result<Activation> {
    let act = match cfg.raw(key) {
        None => Activation::from_name(default)?,
        Some(Value::Null) => Activation::Linear,
        Some(Value::String(s)) => Activation::from_name(s).map_err(|e| {
            Error::Value(format!("{} '{}': `{key}`: {e}", cfg.class_name, cfg.name))
        })?,
        Some(v) => return Err(cfg.err(key, "an activation name", v)),
    };
    if act.is_row_op() {
        return Err(Error::Value(format!(
            "{} '{}': `{key}`: {} is not supported inside a recurrent cell",
            cfg.class_name,
            cfg.name,
            act.name()
        )));
    }
    Ok(act)
}

impl Recurrent {
    /// `class`: "SimpleRNN", "LSTM" or "GRU".
    pub fn from_config(class: &'static str, v: &Value) -> Result<Self> {
        let cfg = Cfg::new(class, v)?;
        let cell = match class {
            "LSTM" => Cell::Lstm,
            "GRU" => Cell::Gru,
            _ => Cell::Simple,
        };
        let mut rates = [0.0f32; 2];
        for (r, key) in rates.iter_mut().zip(["dropout", "recurrent_dropout"]) {
            let v = cfg.f32_or(key, 0.0)?;
            if !v.is_finite() {
                return Err(cfg.err(key, "a number in [0, 1]", &Value::from(v as f64)));
            }
            // as Keras: clipped to [0, 1], and applied only strictly inside (0, 1)
            *r = v.clamp(0.0, 1.0);
        }
        let act = activation(&cfg, "activation", "tanh")?;
        let rec_act = match cell {
            Cell::Simple => Activation::Linear, // SimpleRNN has no gates
            _ => activation(&cfg, "recurrent_activation", "sigmoid")?,
        };
        Ok(Recurrent {
            class,
            cell,
            units: cfg.positive_usize("units")?,
            act,
            rec_act,
            use_bias: cfg.bool_or("use_bias", true)?,
            unit_forget_bias: cell == Cell::Lstm && cfg.bool_or("unit_forget_bias", true)?,
            return_sequences: cfg.bool_or("return_sequences", false)?,
            return_state: cfg.bool_or("return_state", false)?,
            go_backwards: cfg.bool_or("go_backwards", false)?,
            zero_output_for_mask: cfg.bool_or("zero_output_for_mask", false)?,
            n_init: 0,
            masked: false,
            inits: [
                initializer_of(&cfg, "kernel_initializer", "glorot_uniform")?,
                initializer_of(&cfg, "recurrent_initializer", "orthogonal")?,
                initializer_of(&cfg, "bias_initializer", "zeros")?,
            ],
            regs: [
                regularizer_of(&cfg, "kernel_regularizer")?,
                regularizer_of(&cfg, "recurrent_regularizer")?,
                regularizer_of(&cfg, "bias_regularizer")?,
            ],
            dropout: rates[0],
            recurrent_dropout: rates[1],
            own_rng: cfg.raw("seed").and_then(Value::as_u64).map(Rng::new),
            stateful: cfg.bool_or("stateful", false)?,
            reset_after: cell != Cell::Gru || cfg.bool_or("reset_after", true)?,
            carried: Vec::new(),
            name: cfg.name,
            steps: 0,
            in_dim: 0,
            params: Vec::new(),
            cache: None,
        })
    }

    fn width(&self) -> usize {
        self.cell.gates() * self.units
    }

    /// The states the cell carries: h, and c for LSTM.
    fn n_states(&self) -> usize {
        if self.cell == Cell::Lstm {
            2
        } else {
            1
        }
    }

    /// The dropout masks of a call on `xs` (none outside training).
    fn call_dropout(&mut self, xs: &[Tensor], ctx: &mut Ctx) -> Drop {
        match (ctx.training, xs.first()) {
            (true, Some(x)) => self.draw_dropout(x.batch(), ctx.rng),
            _ => Drop::default(),
        }
    }

    /// `run` on a call's inputs: the sequence, the initial states it was built with, then the mask.
    fn run_inputs(&mut self, xs: Vec<Tensor>, drop: Drop, training: bool) -> Result<Tensor> {
        let mut it = xs.into_iter();
        let x = it.next().unwrap_or_default();
        let init: Vec<Tensor> = it.by_ref().take(self.n_init).collect();
        let mask = if self.masked { it.next() } else { None };
        self.run(x, mask, init, drop, training)
    }

    /// This training call's dropout masks for a batch of `b`.
    fn draw_dropout(&mut self, b: usize, rng: &mut Rng) -> Drop {
        let active = |r: f32| r > 0.0 && r < 1.0;
        let (px, ph) = (self.dropout, self.recurrent_dropout);
        let g = self.cell.gates();
        let (d, u) = (self.in_dim, self.units);
        let rng = self.own_rng.as_mut().unwrap_or(rng);
        let mut drop = Drop::default();
        if active(px) {
            drop.x_masks = if active(ph) { g } else { 1 };
            drop.x = dropout_masks(drop.x_masks * b * d, px, rng);
        }
        if active(ph) {
            drop.h = dropout_masks(g * b * u, ph, rng);
        }
        drop
    }

    /// Values per sample of the sequence or last output (without the states `return_state` appends).
    fn out_size(&self) -> usize {
        if self.return_sequences {
            self.steps * self.units
        } else {
            self.units
        }
    }

    /// The input time index that processing step `s` reads.
    fn time(&self, s: usize) -> usize {
        if self.go_backwards {
            self.steps - 1 - s
        } else {
            s
        }
    }

    /// The activation of gate block `k` (of `gates()`): the candidate (LSTM's c, GRU's h, SimpleRNN's only
    /// block) takes `activation`, the others `recurrent_activation`.
    fn gate_act(&self, k: usize) -> Activation {
        match (self.cell, k) {
            (Cell::Simple, _) | (Cell::Lstm, 2) | (Cell::Gru, 2) => self.act,
            _ => self.rec_act,
        }
    }

    fn needs_pre(&self) -> bool {
        self.act.needs_input() || (self.cell != Cell::Simple && self.rec_act.needs_input())
    }

    fn bias(&self, row: usize) -> Option<&[f32]> {
        let w = self.width();
        self.use_bias
            .then(|| &self.params[2].value[row * w..(row + 1) * w])
    }

    /// Run the sequence from the `init` states (zeros when empty), skipping the steps `mask` zeroes (a skipped
    /// step keeps the state, as Keras does). Returns the output, then the final states with `return_state`;
    /// `keep` stores what backward needs (the input moves into the cache).
    fn run(
        &mut self,
        x: Tensor,
        mask: Option<Tensor>,
        init: Vec<Tensor>,
        drop: Drop,
        keep: bool,
    ) -> Result<Tensor> {
        let (t_len, d, u, w) = (self.steps, self.in_dim, self.units, self.width());
        let b = x.batch();
        if x.data.len() != b * t_len * d {
            return Err(Error::Value(format!(
                "Input 0 of layer \"{}\" ({}) is incompatible with the layer: expected {} values per sample \
                 (timesteps {t_len}, features {d}), received shape {:?}",
                self.name,
                self.class,
                t_len * d,
                x.shape
            )));
        }
        // input projections of every step (rows in input order: sample, then time) plus the input bias
        let mut xp = vec![0.0f32; b * t_len * w];
        self.input_projection(&x.data, &drop, b, &mut xp);
        if let Some(bias) = self.bias(0) {
            for row in xp.chunks_mut(w) {
                row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
            }
        }
        let rec_bias: Option<Vec<f32>> = match self.cell {
            Cell::Gru if self.reset_after => self.bias(1).map(<[f32]>::to_vec),
            _ => None,
        };
        let mask = mask.map(|m| m.data).unwrap_or_default();
        if !mask.is_empty() && mask.len() != b * t_len {
            return Err(Error::Value(format!(
                "{} '{}': the mask has {} values for a batch of {b} sequences of {t_len} steps",
                self.class,
                self.name,
                mask.len()
            )));
        }
        let kept = |bi: usize, t: usize| mask.is_empty() || mask[bi * t_len + t] != 0.0;
        let mut cache = Cache {
            batch: b,
            n_init: init.len(),
            ..Cache::default()
        };
        if keep {
            cache.h_prev.reserve(t_len * b * u);
            cache.gates.reserve(t_len * b * w);
            if self.needs_pre() {
                cache.pre.reserve(t_len * b * w);
            }
        }
        let init = if init.is_empty() && self.stateful && !self.carried.is_empty() {
            if self.carried[0].batch() != b {
                return Err(Error::Value(format!(
                    "{} '{}': If an RNN is stateful, the batch size of the input sequences must be the same as \
                     the batch size of the initial state. \n- Expected batch size: {}\n- Received batch size: {b}",
                    self.class,
                    self.name,
                    self.carried[0].batch()
                )));
            }
            self.carried.clone()
        } else {
            init
        };
        let mut states = init.into_iter();
        let mut initial = |n: usize| -> Result<Vec<f32>> {
            match states.next() {
                None => Ok(vec![0.0f32; n]),
                Some(s) if s.data.len() == n => Ok(s.data),
                Some(s) => Err(Error::Value(format!(
                    "{} '{}': an initial state of shape {:?} for a batch of {b} and {u} units",
                    self.class, self.name, s.shape
                ))),
            }
        };
        let mut h = initial(b * u)?;
        let mut c = initial(if self.cell == Cell::Lstm { b * u } else { 0 })?;
        // the state before a step, restored where the mask skips it
        let mut h_old = vec![0.0f32; if mask.is_empty() { 0 } else { b * u }];
        let mut c_old = vec![0.0f32; if mask.is_empty() { 0 } else { c.len() }];
        let mut hp = vec![0.0f32; b * w];
        let mut z = vec![0.0f32; b * w];
        // with recurrent dropout: the recurrent kernel's gate blocks, `(units, units)` each
        let rec_blocks: Vec<Vec<f32>> = if drop.h.is_empty() {
            Vec::new()
        } else {
            (0..self.cell.gates())
                .map(|k| block_cols(&self.params[1].value, w, k, u))
                .collect()
        };
        // per-step scratch of the gate blocks' own products (recurrent dropout, GRU reset_after=False)
        let (mut hk, mut part) = (vec![0.0f32; b * u], vec![0.0f32; b * u]);
        // GRU with reset_after=False: the candidate's recurrent kernel, read by `r * h`
        let u_h = if self.cell == Cell::Gru && !self.reset_after {
            block_cols(&self.params[1].value, w, 2, u)
        } else {
            Vec::new()
        };
        // GRU's reset gate of one sample, LSTM's act(c): scratch reused by every step
        let mut r = vec![0.0f32; if self.cell == Cell::Gru { u } else { 0 }];
        let mut ac = vec![0.0f32; c.len()];
        // (batch, steps, units), steps in processing order (as Keras returns them with go_backwards)
        let mut seq = vec![
            0.0f32;
            if self.return_sequences {
                b * t_len * u
            } else {
                0
            }
        ];
        for s in 0..t_len {
            let t = self.time(s);
            if drop.h.is_empty() {
                matmul(
                    b,
                    u,
                    w,
                    &h,
                    Op::N,
                    &self.params[1].value,
                    Op::N,
                    &mut hp,
                    false,
                );
            } else {
                // each gate block reads the state through its own dropout mask
                for (k, uk) in rec_blocks.iter().enumerate() {
                    masked_rows_into(&h, &drop.h[k * b * u..], u, |r| r, &mut hk);
                    matmul(b, u, u, &hk, Op::N, uk, Op::N, &mut part, false);
                    put_block_cols(&mut hp, &part, w, k, u, false);
                }
            }
            if let Some(rb) = &rec_bias {
                for row in hp.chunks_mut(w) {
                    row.iter_mut().zip(rb).for_each(|(v, b)| *v += b);
                }
            }
            if keep {
                cache.h_prev.extend_from_slice(&h);
                if self.cell == Cell::Lstm {
                    cache.c_prev.extend_from_slice(&c);
                }
            }
            if !mask.is_empty() {
                h_old.copy_from_slice(&h);
                c_old.copy_from_slice(&c);
            }
            for bi in 0..b {
                let xrow = &xp[(bi * t_len + t) * w..][..w];
                let hrow = &hp[bi * w..][..w];
                let zrow = &mut z[bi * w..][..w];
                match self.cell {
                    Cell::Gru => {
                        // z and r from x + h parts; the candidate's h part waits for r
                        for k in 0..2 * u {
                            zrow[k] = xrow[k] + hrow[k];
                        }
                        zrow[2 * u..].copy_from_slice(&xrow[2 * u..]);
                    }
                    _ => {
                        for k in 0..w {
                            zrow[k] = xrow[k] + hrow[k];
                        }
                    }
                }
            }
            if self.cell == Cell::Gru && !self.reset_after {
                // r = rec_act(z_r) first, then the candidate's pre-activation x_h + (r * h) U_h
                let rh = &mut hk; // scratch: r * h of this step
                for bi in 0..b {
                    r.copy_from_slice(&z[bi * w + u..][..u]);
                    self.rec_act.forward(&mut r, u);
                    for k in 0..u {
                        let m = if drop.h.is_empty() {
                            1.0
                        } else {
                            drop.h[2 * b * u + bi * u + k]
                        };
                        rh[bi * u + k] = r[k] * h[bi * u + k] * m;
                    }
                }
                matmul(b, u, u, rh, Op::N, &u_h, Op::N, &mut part, false);
                for bi in 0..b {
                    let zrow = &mut z[bi * w + 2 * u..][..u];
                    zrow.iter_mut()
                        .zip(&part[bi * u..][..u])
                        .for_each(|(a, v)| *a += v);
                }
                if keep {
                    cache.rec_h.extend_from_slice(rh);
                }
            } else if self.cell == Cell::Gru {
                // r = rec_act(z_r) first, then the candidate's pre-activation x_h + r * (h U_h + b_h)
                for bi in 0..b {
                    let zrow = &mut z[bi * w..][..w];
                    r.copy_from_slice(&zrow[u..2 * u]);
                    self.rec_act.forward(&mut r, u);
                    let hrow = &hp[bi * w + 2 * u..][..u];
                    for k in 0..u {
                        zrow[2 * u + k] += r[k] * hrow[k];
                    }
                }
                if keep {
                    for bi in 0..b {
                        cache.rec_h.extend_from_slice(&hp[bi * w + 2 * u..][..u]);
                    }
                }
            }
            if keep && self.needs_pre() {
                cache.pre.extend_from_slice(&z);
            }
            // gate activations, block by block
            for row in z.chunks_mut(w) {
                for (k, block) in row.chunks_mut(u).enumerate() {
                    self.gate_act(k).forward(block, u);
                }
            }
            // the new state
            match self.cell {
                Cell::Simple => h.copy_from_slice(&z),
                Cell::Lstm => {
                    for bi in 0..b {
                        let g = &z[bi * w..][..w];
                        for k in 0..u {
                            let (i, f, cc) = (g[k], g[u + k], g[2 * u + k]);
                            c[bi * u + k] = f * c[bi * u + k] + i * cc;
                        }
                    }
                    ac.copy_from_slice(&c);
                    for row in ac.chunks_mut(u) {
                        self.act.forward(row, u);
                    }
                    for bi in 0..b {
                        let g = &z[bi * w..][..w];
                        for k in 0..u {
                            h[bi * u + k] = g[3 * u + k] * ac[bi * u + k];
                        }
                    }
                    if keep {
                        cache.c.extend_from_slice(&c);
                        cache.act_c.extend_from_slice(&ac);
                    }
                }
                Cell::Gru => {
                    for bi in 0..b {
                        let g = &z[bi * w..][..w];
                        for k in 0..u {
                            let (zg, hh) = (g[k], g[2 * u + k]);
                            let hv = &mut h[bi * u + k];
                            *hv = zg * *hv + (1.0 - zg) * hh;
                        }
                    }
                }
            }
            if keep {
                cache.gates.extend_from_slice(&z);
            }
            for bi in (0..b).filter(|&bi| !kept(bi, t)) {
                let row = bi * u..(bi + 1) * u;
                h[row.clone()].copy_from_slice(&h_old[row.clone()]);
                if self.cell == Cell::Lstm {
                    c[row.clone()].copy_from_slice(&c_old[row]);
                }
            }
            if self.return_sequences {
                for bi in 0..b {
                    let out = &mut seq[(bi * t_len + s) * u..][..u];
                    if self.zero_output_for_mask && !kept(bi, t) {
                        out.fill(0.0);
                    } else {
                        out.copy_from_slice(&h[bi * u..][..u]);
                    }
                }
            }
        }
        if self.stateful {
            let mut carried = vec![Tensor::new(vec![b, u], h.clone())?];
            if self.cell == Cell::Lstm {
                carried.push(Tensor::new(vec![b, u], c.clone())?);
            }
            self.carried = carried;
        }
        let out_size = self.out_size();
        let y = if self.return_state {
            // one tensor per sample: the output, then each final state (Python splits them)
            let per = out_size + self.n_states() * u;
            let mut out = Vec::with_capacity(b * per);
            for bi in 0..b {
                let row = bi * u..(bi + 1) * u;
                if self.return_sequences {
                    out.extend_from_slice(&seq[bi * out_size..][..out_size]);
                } else {
                    out.extend_from_slice(&h[row.clone()]);
                }
                out.extend_from_slice(&h[row.clone()]);
                if self.cell == Cell::Lstm {
                    out.extend_from_slice(&c[row]);
                }
            }
            Tensor::new(vec![b, per], out)
        } else if self.return_sequences {
            Tensor::new(vec![b, t_len, u], seq)
        } else {
            Tensor::new(vec![b, u], h)
        };
        if keep {
            cache.x = x.data;
            cache.mask = mask;
            cache.drop = drop;
            self.cache = Some(cache);
        }
        y
    }

    /// `xp = dropout(x) @ kernel` for every step: one product, or one per gate block with per-gate masks.
    fn input_projection(&self, x: &[f32], drop: &Drop, b: usize, xp: &mut [f32]) {
        let (t_len, d, u, w) = (self.steps, self.in_dim, self.units, self.width());
        let kernel = &self.params[0].value;
        match drop.x_masks {
            0 => matmul(b * t_len, d, w, x, Op::N, kernel, Op::N, xp, false),
            1 => {
                let xd = masked_rows(x, &drop.x, d, |r| r / t_len);
                matmul(b * t_len, d, w, &xd, Op::N, kernel, Op::N, xp, false);
            }
            g => {
                for k in 0..g {
                    let xd = masked_rows(x, &drop.x[k * b * d..], d, |r| r / t_len);
                    let wk = block_cols(kernel, w, k, u);
                    let mut part = vec![0.0f32; b * t_len * u];
                    matmul(b * t_len, d, u, &xd, Op::N, &wk, Op::N, &mut part, false);
                    put_block_cols(xp, &part, w, k, u, false);
                }
            }
        }
    }
}

impl Layer for Recurrent {
    fn name(&self) -> &str {
        &self.name
    }
    fn class_name(&self) -> &'static str {
        self.class
    }
    fn build(&mut self, input_shape: &[usize], rng: &mut Rng) -> Result<Vec<usize>> {
        super::expect_rank(self, input_shape, 2, "(batch, timesteps, features)")?;
        self.steps = input_shape[0];
        self.in_dim = input_shape[1];
        let (u, w) = (self.units, self.width());
        let shapes = [vec![self.in_dim, w], vec![u, w]];
        for (s, what) in shapes.iter().zip(["kernel", "recurrent_kernel"]) {
            crate::initializers::checked_numel(
                &format!("{} '{}' {what}", self.class, self.name),
                s,
            )?;
        }
        let mut params = vec![
            Param::new(
                "kernel",
                shapes[0].clone(),
                self.inits[0].fill(&shapes[0], rng)?,
                true,
            ),
            Param::new(
                "recurrent_kernel",
                shapes[1].clone(),
                self.inits[1].fill(&shapes[1], rng)?,
                true,
            ),
        ];
        if self.use_bias {
            let shape = if self.cell == Cell::Gru && self.reset_after {
                vec![2, w]
            } else {
                vec![w]
            };
            let mut values = if self.unit_forget_bias {
                // Keras: the bias initializer for i, then ones for f, then the initializer for c and o
                let mut v = self.inits[2].fill(&[u], rng)?;
                v.extend(std::iter::repeat_n(1.0, u));
                v.extend(self.inits[2].fill(&[2 * u], rng)?);
                v
            } else {
                self.inits[2].fill(&shape, rng)?
            };
            values.truncate(shape.iter().product());
            params.push(Param::new("bias", shape, values, true));
        }
        for (p, r) in params.iter_mut().zip(self.regs) {
            p.regularizer = r;
        }
        self.params = params;
        Ok(if self.return_state {
            vec![self.out_size() + self.n_states() * u]
        } else if self.return_sequences {
            vec![self.steps, u]
        } else {
            vec![u]
        })
    }
    fn max_inputs(&self) -> usize {
        1 + self.n_states()
    }
    fn takes_mask(&self) -> bool {
        true
    }
    fn build_inputs(
        &mut self,
        shapes: &[Vec<usize>],
        masked: bool,
        rng: &mut Rng,
    ) -> Result<Vec<usize>> {
        let out = self.build(&shapes[0], rng)?;
        let extra = &shapes[1..shapes.len() - usize::from(masked)];
        if !extra.is_empty() && extra.len() != self.n_states() {
            return Err(Error::Value(format!(
                "{} '{}': `initial_state` needs {} tensors (one per state), received {}",
                self.class,
                self.name,
                self.n_states(),
                extra.len()
            )));
        }
        for s in extra {
            if s.as_slice() != [self.units] {
                return Err(Error::Value(format!(
                    "{} '{}': an initial state must have shape (batch, {}), received (batch, {})",
                    self.class,
                    self.name,
                    self.units,
                    s.iter()
                        .map(usize::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        if masked {
            let who = format!("{} '{}'", self.class, self.name);
            super::check_mask_shape(&who, shapes.last(), self.steps)?;
        }
        self.n_init = extra.len();
        self.masked = masked;
        Ok(out)
    }
    fn forward(&mut self, x: Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        self.forward_inputs(vec![x], ctx)
    }
    fn forward_inputs(&mut self, xs: Vec<Tensor>, ctx: &mut Ctx) -> Result<Tensor> {
        let drop = self.call_dropout(&xs, ctx);
        self.run_inputs(xs, drop, ctx.training)
    }
    fn backward_inputs(
        &mut self,
        grad: Tensor,
        need_input_grad: bool,
    ) -> Result<Vec<Option<Tensor>>> {
        let (dx, states) = self.backprop(grad, need_input_grad)?;
        let mut out = vec![Some(dx)];
        out.extend(states.into_iter().map(Some));
        if self.masked {
            out.push(None);
        }
        Ok(out)
    }
    fn backward(&mut self, grad: Tensor, need_input_grad: bool) -> Result<Tensor> {
        Ok(self.backprop(grad, need_input_grad)?.0)
    }
    fn params(&self) -> &[Param] {
        &self.params
    }
    fn params_mut(&mut self) -> &mut [Param] {
        &mut self.params
    }
    fn clear_cache(&mut self) {
        self.cache = None;
    }
    fn reset_states(&mut self) {
        self.carried.clear();
    }
    fn batch_local(&self) -> bool {
        !self.stateful
    }
}

impl Recurrent {
    /// Backpropagation through time: dL/d(input), and dL/d(each initial state) the call was given.
    fn backprop(&mut self, grad: Tensor, need_input_grad: bool) -> Result<(Tensor, Vec<Tensor>)> {
        let cache = self.cache.take().ok_or_else(|| {
            Error::Runtime(format!(
                "{} '{}': backward called without a matching training forward pass",
                self.class, self.name
            ))
        })?;
        let (t_len, d, u, w, b) = (
            self.steps,
            self.in_dim,
            self.units,
            self.width(),
            cache.batch,
        );
        let out_size = self.out_size();
        let per_sample = out_size
            + if self.return_state {
                self.n_states() * u
            } else {
                0
            };
        if grad.data.len() != b * per_sample {
            return Err(Error::Runtime(format!(
                "{} '{}': a gradient of shape {:?} for an output of {per_sample} values per sample",
                self.class, self.name, grad.shape
            )));
        }
        let mask = &cache.mask;
        let kept = |bi: usize, t: usize| mask.is_empty() || mask[bi * t_len + t] != 0.0;
        let drop = &cache.drop;
        let rec_blocks: Vec<Vec<f32>> = if drop.h.is_empty() {
            Vec::new()
        } else {
            (0..self.cell.gates())
                .map(|k| block_cols(&self.params[1].value, w, k, u))
                .collect()
        };
        // GRU with reset_after=False: the candidate's recurrent kernel and its gradient, summed over the steps
        let reset_before = self.cell == Cell::Gru && !self.reset_after;
        let u_h = if reset_before {
            block_cols(&self.params[1].value, w, 2, u)
        } else {
            Vec::new()
        };
        let mut du_h = vec![0.0f32; if reset_before { u * u } else { 0 }];
        // per-step scratch: one gate block's gradient, and its product with a kernel block
        let (mut block, mut part) = (vec![0.0f32; b * u], vec![0.0f32; b * u]);
        // the output's gradient of sample bi (the sequence, or the last output)
        let out_grad = |bi: usize| &grad.data[bi * per_sample..][..out_size];
        // dL/d(pre-activations) of every step: for the kernel (rows in input order) and, where they differ
        // (GRU's candidate), for the recurrent kernel (rows in processing order)
        let mut dz_x = vec![0.0f32; b * t_len * w];
        let mut dz_h = vec![0.0f32; t_len * b * w];
        let mut dh_next = vec![0.0f32; b * u];
        let mut dc_next = vec![0.0f32; if self.cell == Cell::Lstm { b * u } else { 0 }];
        if self.return_state {
            // the final states' gradients start the recursion
            for bi in 0..b {
                let g = &grad.data[bi * per_sample + out_size..][..self.n_states() * u];
                dh_next[bi * u..][..u].copy_from_slice(&g[..u]);
                if self.cell == Cell::Lstm {
                    dc_next[bi * u..][..u].copy_from_slice(&g[u..]);
                }
            }
        }
        let mut dz = vec![0.0f32; b * w];
        // per-step scratch: dL/dh, GRU's direct path dh * z, LSTM's dL/d act(c)
        let mut dh = vec![0.0f32; b * u];
        let mut dh_direct = vec![0.0f32; if self.cell == Cell::Gru { b * u } else { 0 }];
        let mut dac = vec![0.0f32; if self.cell == Cell::Lstm { b * u } else { 0 }];
        let needs_pre = self.needs_pre();
        for s in (0..t_len).rev() {
            let t = self.time(s);
            // step s of a per-step array of `width` values per sample
            let at = |width: usize| s * b * width..(s + 1) * b * width;
            let gates = &cache.gates[at(w)];
            let h_prev = &cache.h_prev[at(u)];
            let pre = needs_pre.then(|| &cache.pre[at(w)]);
            // dL/dh of this step: from the next step and from the output
            std::mem::swap(&mut dh, &mut dh_next);
            for bi in 0..b {
                let g = if self.return_sequences {
                    // a masked step's zero output reads nothing
                    (!self.zero_output_for_mask || kept(bi, t)).then(|| &out_grad(bi)[s * u..][..u])
                } else if s + 1 == t_len {
                    Some(out_grad(bi))
                } else {
                    None
                };
                if let Some(g) = g {
                    dh[bi * u..][..u]
                        .iter_mut()
                        .zip(g)
                        .for_each(|(a, v)| *a += v);
                }
            }
            match self.cell {
                Cell::Simple => {
                    dz.copy_from_slice(&dh);
                    for bi in (0..b).filter(|&bi| !kept(bi, t)) {
                        dz[bi * w..][..w].fill(0.0);
                    }
                }
                Cell::Lstm => {
                    let c = &cache.c[at(u)];
                    let ac = &cache.act_c[at(u)];
                    let c_prev = &cache.c_prev[at(u)];
                    // dL/dc from h = o * act(c)
                    for (j, d) in dac.iter_mut().enumerate() {
                        *d = dh[j] * gates[(j / u) * w + 3 * u + j % u];
                    }
                    for ((g, ci), aci) in dac.chunks_mut(u).zip(c.chunks(u)).zip(ac.chunks(u)) {
                        self.act.backward(ci, aci, g, u);
                    }
                    for bi in 0..b {
                        let gr = &gates[bi * w..][..w];
                        let dzr = &mut dz[bi * w..][..w];
                        if !kept(bi, t) {
                            dzr.fill(0.0); // the step kept the state: dc passes through unchanged
                            continue;
                        }
                        for k in 0..u {
                            let j = bi * u + k;
                            let dc = dc_next[j] + dac[j];
                            let (i, f, cc) = (gr[k], gr[u + k], gr[2 * u + k]);
                            dzr[k] = dc * cc;
                            dzr[u + k] = dc * c_prev[j];
                            dzr[2 * u + k] = dc * i;
                            dzr[3 * u + k] = dh[j] * ac[j];
                            dc_next[j] = dc * f;
                        }
                    }
                }
                Cell::Gru => {
                    let rec_h = &cache.rec_h[at(u)];
                    for bi in 0..b {
                        let gr = &gates[bi * w..][..w];
                        let dzr = &mut dz[bi * w..][..w];
                        if !kept(bi, t) {
                            dzr.fill(0.0);
                            dh_direct[bi * u..][..u].fill(0.0); // the pass-through below carries dh
                            continue;
                        }
                        for k in 0..u {
                            let j = bi * u + k;
                            let (zg, hh) = (gr[k], gr[2 * u + k]);
                            dzr[k] = dh[j] * (h_prev[j] - hh);
                            dzr[2 * u + k] = dh[j] * (1.0 - zg);
                            dh_direct[j] = dh[j] * zg;
                        }
                    }
                    // the candidate's derivative first: r's gradient reads it
                    for (bi, row) in dz.chunks_mut(w).enumerate() {
                        let block = &mut row[2 * u..];
                        let out = &gates[bi * w + 2 * u..][..u];
                        let input = pre.map_or(out, |p| &p[bi * w + 2 * u..][..u]);
                        self.act.backward(input, out, block, u);
                        if self.reset_after {
                            for k in 0..u {
                                row[u + k] = row[2 * u + k] * rec_h[bi * u + k];
                            }
                        }
                    }
                    if !self.reset_after {
                        // the candidate read (r * h) U_h: back through U_h, then to r and to h
                        let (dcand, drh) = (&mut block, &mut part);
                        block_cols_into(&dz, w, 2, u, dcand);
                        matmul(b, u, u, dcand, Op::N, &u_h, Op::T, drh, false);
                        matmul(u, b, u, rec_h, Op::T, dcand, Op::N, &mut du_h, true);
                        for bi in 0..b {
                            for k in 0..u {
                                let j = bi * u + k;
                                let m = if drop.h.is_empty() {
                                    1.0
                                } else {
                                    drop.h[2 * b * u + j]
                                };
                                let rg = gates[bi * w + u + k];
                                dz[bi * w + u + k] = drh[j] * h_prev[j] * m;
                                dh_direct[j] += drh[j] * rg * m;
                            }
                        }
                    }
                }
            }
            // through the gate activations (GRU's candidate is done)
            for (bi, row) in dz.chunks_mut(w).enumerate() {
                for (k, block) in row.chunks_mut(u).enumerate() {
                    if self.cell == Cell::Gru && k == 2 {
                        continue;
                    }
                    let out = &gates[bi * w + k * u..][..u];
                    let input = pre.map_or(out, |p| &p[bi * w + k * u..][..u]);
                    self.gate_act(k).backward(input, out, block, u);
                }
            }
            // the recurrent kernel sees the candidate's gradient times r (GRU); the kernel sees it as is
            let dzh = &mut dz_h[s * b * w..(s + 1) * b * w];
            dzh.copy_from_slice(&dz);
            if self.cell == Cell::Gru && !self.reset_after {
                // the candidate's recurrent gradient went through r * h above (into du_h)
                for row in dzh.chunks_mut(w) {
                    row[2 * u..].fill(0.0);
                }
            } else if self.cell == Cell::Gru {
                for bi in 0..b {
                    for k in 0..u {
                        dzh[bi * w + 2 * u + k] *= gates[bi * w + u + k];
                    }
                }
            }
            for bi in 0..b {
                dz_x[(bi * t_len + t) * w..][..w].copy_from_slice(&dz[bi * w..][..w]);
            }
            // dh_next (the buffer `dh` came from) is overwritten with this step's dL/dh_prev
            if drop.h.is_empty() {
                matmul(
                    b,
                    w,
                    u,
                    dzh,
                    Op::N,
                    &self.params[1].value,
                    Op::T,
                    &mut dh_next,
                    false,
                );
            } else {
                // each gate block read the state through its own mask
                dh_next.fill(0.0);
                for (k, uk) in rec_blocks.iter().enumerate() {
                    block_cols_into(dzh, w, k, u, &mut block);
                    matmul(b, u, u, &block, Op::N, uk, Op::T, &mut part, false);
                    let mk = &drop.h[k * b * u..][..b * u];
                    for ((a, p), m) in dh_next.iter_mut().zip(&part).zip(mk) {
                        *a += p * m;
                    }
                }
            }
            if self.cell == Cell::Gru {
                dh_next
                    .iter_mut()
                    .zip(&dh_direct)
                    .for_each(|(a, v)| *a += v);
            }
            // a masked step kept h: its gradient goes straight to the previous state
            for bi in (0..b).filter(|&bi| !kept(bi, t)) {
                let row = bi * u..(bi + 1) * u;
                dh_next[row.clone()]
                    .iter_mut()
                    .zip(&dh[row])
                    .for_each(|(a, v)| *a += v);
            }
        }
        let states = if cache.n_init > 0 {
            let mut st = vec![Tensor::new(vec![b, u], dh_next)?];
            if self.cell == Cell::Lstm {
                st.push(Tensor::new(vec![b, u], dc_next)?);
            }
            st
        } else {
            Vec::new()
        };
        // weight gradients over all steps at once (per gate block where dropout masks differ by block)
        match drop.x_masks {
            0 => matmul(
                d,
                b * t_len,
                w,
                &cache.x,
                Op::T,
                &dz_x,
                Op::N,
                &mut self.params[0].grad,
                true,
            ),
            1 => {
                let xd = masked_rows(&cache.x, &drop.x, d, |r| r / t_len);
                matmul(
                    d,
                    b * t_len,
                    w,
                    &xd,
                    Op::T,
                    &dz_x,
                    Op::N,
                    &mut self.params[0].grad,
                    true,
                );
            }
            g => {
                for k in 0..g {
                    let xd = masked_rows(&cache.x, &drop.x[k * b * d..], d, |r| r / t_len);
                    let dzk = block_cols(&dz_x, w, k, u);
                    let mut part = vec![0.0f32; d * u];
                    matmul(d, b * t_len, u, &xd, Op::T, &dzk, Op::N, &mut part, false);
                    put_block_cols(&mut self.params[0].grad, &part, w, k, u, true);
                }
            }
        }
        if drop.h.is_empty() {
            matmul(
                u,
                t_len * b,
                w,
                &cache.h_prev,
                Op::T,
                &dz_h,
                Op::N,
                &mut self.params[1].grad,
                true,
            );
        } else {
            for k in 0..self.cell.gates() {
                // rows of h_prev are (step, sample): sample r % b's mask
                let hk = masked_rows(&cache.h_prev, &drop.h[k * b * u..], u, |r| r % b);
                let dzk = block_cols(&dz_h, w, k, u);
                let mut part = vec![0.0f32; u * u];
                matmul(u, t_len * b, u, &hk, Op::T, &dzk, Op::N, &mut part, false);
                put_block_cols(&mut self.params[1].grad, &part, w, k, u, true);
            }
        }
        if reset_before {
            put_block_cols(&mut self.params[1].grad, &du_h, w, 2, u, true);
        }
        if self.use_bias {
            let bias = &mut self.params[2].grad;
            for row in dz_x.chunks(w) {
                bias[..w].iter_mut().zip(row).for_each(|(a, v)| *a += v);
            }
            if self.cell == Cell::Gru && self.reset_after {
                for row in dz_h.chunks(w) {
                    bias[w..].iter_mut().zip(row).for_each(|(a, v)| *a += v);
                }
            }
        }
        if !need_input_grad {
            return Ok((Tensor::default(), states));
        }
        let mut dx = vec![0.0f32; b * t_len * d];
        let kernel = &self.params[0].value;
        match drop.x_masks {
            0 | 1 => {
                matmul(b * t_len, w, d, &dz_x, Op::N, kernel, Op::T, &mut dx, false);
                if drop.x_masks == 1 {
                    dx = masked_rows(&dx, &drop.x, d, |r| r / t_len);
                }
            }
            g => {
                for k in 0..g {
                    let dzk = block_cols(&dz_x, w, k, u);
                    let wk = block_cols(kernel, w, k, u);
                    let mut part = vec![0.0f32; b * t_len * d];
                    matmul(b * t_len, u, d, &dzk, Op::N, &wk, Op::T, &mut part, false);
                    let part = masked_rows(&part, &drop.x[k * b * d..], d, |r| r / t_len);
                    dx.iter_mut().zip(&part).for_each(|(a, p)| *a += p);
                }
            }
        }
        Ok((Tensor::new(vec![b, t_len, d], dx)?, states))
    }
}

/// How Bidirectional combines its two directions' outputs.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Merge {
    Concat,
    Sum,
    Mul,
    Ave,
}

/// `Bidirectional(layer)`: the layer over the sequence and a copy with `go_backwards` flipped (or the given
/// `backward_layer`); the backward layer's sequence output is flipped back to input order before the merge, as
/// Keras does. Weights: the forward layer's, then the backward layer's.
pub struct Bidirectional {
    name: String,
    merge: Merge,
    forward: Recurrent,
    backward: Recurrent,
    /// Both layers' weights, forward first: lent to each layer for its pass (`Layer::params` is one slice).
    params: Vec<Param>,
    n_forward: usize,
    /// The two outputs of the last training pass (`mul`'s backward reads them).
    outputs: Option<(Tensor, Tensor)>,
}

fn sub_layer(v: &Value, what: &str, name: &str) -> Result<Recurrent> {
    let class = v.get("class_name").and_then(Value::as_str).unwrap_or("");
    let class: &'static str = match class {
        "SimpleRNN" => "SimpleRNN",
        "LSTM" => "LSTM",
        "GRU" => "GRU",
        other => {
            return Err(Error::Value(format!(
                "Bidirectional '{name}': `{what}` must be a SimpleRNN, LSTM or GRU layer, received '{other}'"
            )))
        }
    };
    Recurrent::from_config(class, v.get("config").unwrap_or(&Value::Null))
}

impl Bidirectional {
    pub fn from_config(v: &Value) -> Result<Self> {
        let cfg = Cfg::new("Bidirectional", v)?;
        let name = cfg.name.clone();
        let merge = match cfg.raw("merge_mode") {
            None => Merge::Concat,
            Some(Value::String(m)) if m == "concat" => Merge::Concat,
            Some(Value::String(m)) if m == "sum" => Merge::Sum,
            Some(Value::String(m)) if m == "mul" => Merge::Mul,
            Some(Value::String(m)) if m == "ave" => Merge::Ave,
            // two outputs: the engine gives them concatenated and Python splits them
            Some(Value::Null) => Merge::Concat,
            Some(x) => {
                return Err(cfg.err(
                    "merge_mode",
                    "one of \"concat\", \"sum\", \"mul\", \"ave\"",
                    x,
                ))
            }
        };
        let layer = cfg
            .raw("layer")
            .ok_or_else(|| Error::Value(format!("Bidirectional '{name}': needs a `layer`")))?;
        let forward = sub_layer(layer, "layer", &name)?;
        let backward = match cfg.raw("backward_layer") {
            Some(b) if !b.is_null() => sub_layer(b, "backward_layer", &name)?,
            _ => {
                let mut b = sub_layer(layer, "layer", &name)?;
                b.go_backwards = !b.go_backwards;
                b
            }
        };
        if forward.return_sequences != backward.return_sequences {
            return Err(Error::Value(format!(
                "Bidirectional '{name}': the forward and backward layers must agree on return_sequences"
            )));
        }
        if forward.stateful || backward.stateful {
            return Err(Error::Value(format!(
                "Bidirectional '{name}': stateful=True is not supported by kerust yet"
            )));
        }
        if forward.return_state || backward.return_state {
            return Err(Error::Value(format!(
                "Bidirectional '{name}': return_state=True is not supported by kerust yet"
            )));
        }
        let (mut forward, mut backward) = (forward, backward);
        // as Keras: with sequences returned, a masked step's output is zeros in both directions
        forward.zero_output_for_mask = forward.return_sequences;
        backward.zero_output_for_mask = backward.return_sequences;
        Ok(Bidirectional {
            name,
            merge,
            forward,
            backward,
            params: Vec::new(),
            n_forward: 0,
            outputs: None,
        })
    }

    /// Run `f` on the forward (0) or backward (1) layer with its weights lent to it.
    fn with<T>(&mut self, which: usize, f: impl FnOnce(&mut Recurrent) -> T) -> T {
        let at = self.n_forward.min(self.params.len());
        let mut rest = self.params.split_off(at);
        let layer = if which == 0 {
            &mut self.forward
        } else {
            &mut self.backward
        };
        let mine = if which == 0 {
            &mut self.params
        } else {
            &mut rest
        };
        std::mem::swap(&mut layer.params, mine);
        let out = f(layer);
        std::mem::swap(&mut layer.params, mine);
        self.params.append(&mut rest);
        out
    }

    /// Run `f` on the forward layer and `g` on the backward one at the same time (each with its weights lent).
    /// The two directions share nothing, so running them in parallel changes no value.
    fn both<A: Send, B: Send>(
        &mut self,
        f: impl FnOnce(&mut Recurrent) -> A + Send,
        g: impl FnOnce(&mut Recurrent) -> B + Send,
    ) -> (A, B) {
        let at = self.n_forward.min(self.params.len());
        let mut rest = self.params.split_off(at);
        std::mem::swap(&mut self.forward.params, &mut self.params);
        std::mem::swap(&mut self.backward.params, &mut rest);
        let (fw, bw) = (&mut self.forward, &mut self.backward);
        let out = rayon::join(|| f(fw), || g(bw));
        std::mem::swap(&mut self.forward.params, &mut self.params);
        std::mem::swap(&mut self.backward.params, &mut rest);
        self.params.append(&mut rest);
        out
    }

    /// A sequence output `(batch, steps, units)` with its steps reversed (the backward layer's to input order).
    fn flip(&self, t: Tensor) -> Result<Tensor> {
        if !self.forward.return_sequences {
            return Ok(t);
        }
        let (steps, u) = (self.forward.steps, self.forward.units);
        let mut out = Vec::with_capacity(t.data.len());
        for sample in t.data.chunks(steps * u) {
            for step in sample.chunks(u).rev() {
                out.extend_from_slice(step);
            }
        }
        Tensor::new(t.shape, out)
    }
}

impl Layer for Bidirectional {
    fn name(&self) -> &str {
        &self.name
    }
    fn class_name(&self) -> &'static str {
        "Bidirectional"
    }
    fn build(&mut self, input_shape: &[usize], rng: &mut Rng) -> Result<Vec<usize>> {
        let out_f = self.forward.build(input_shape, rng)?;
        let out_b = self.backward.build(input_shape, rng)?;
        if out_f != out_b && self.merge != Merge::Concat {
            return Err(Error::Value(format!(
                "Bidirectional '{}': merge_mode needs both directions to give the same shape, received {:?} \
                 and {:?}",
                self.name, out_f, out_b
            )));
        }
        if out_f[..out_f.len() - 1] != out_b[..out_b.len() - 1] {
            return Err(Error::Value(format!(
                "Bidirectional '{}': the two directions give outputs of shapes {:?} and {:?}",
                self.name, out_f, out_b
            )));
        }
        self.n_forward = self.forward.params.len();
        self.params = std::mem::take(&mut self.forward.params);
        self.params.append(&mut self.backward.params);
        let mut out = out_f.clone();
        if self.merge == Merge::Concat {
            if let (Some(last), Some(b)) = (out.last_mut(), out_b.last()) {
                *last += b;
            }
        }
        Ok(out)
    }
    fn takes_mask(&self) -> bool {
        true
    }
    fn build_inputs(
        &mut self,
        shapes: &[Vec<usize>],
        masked: bool,
        rng: &mut Rng,
    ) -> Result<Vec<usize>> {
        let out = self.build(&shapes[0], rng)?;
        if masked {
            super::check_mask_shape(
                &format!("Bidirectional '{}'", self.name),
                shapes.last(),
                self.forward.steps,
            )?;
        }
        // both directions read the call's mask (Bidirectional takes no initial states)
        self.forward.masked = masked;
        self.backward.masked = masked;
        Ok(out)
    }
    fn forward(&mut self, x: Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        self.forward_inputs(vec![x], ctx)
    }
    fn forward_inputs(&mut self, xs: Vec<Tensor>, ctx: &mut Ctx) -> Result<Tensor> {
        // the dropout masks are drawn in order (forward's, then backward's) before both directions run
        let drop_f = self.with(0, |l| l.call_dropout(&xs, ctx));
        let drop_b = self.with(1, |l| l.call_dropout(&xs, ctx));
        let training = ctx.training;
        let xs_f = xs.clone();
        let (yf, yb) = self.both(
            move |l| l.run_inputs(xs_f, drop_f, training),
            move |l| l.run_inputs(xs, drop_b, training),
        );
        let (yf, yb) = (yf?, yb?);
        let yb = self.flip(yb)?;
        let merged = match self.merge {
            Merge::Concat => {
                let (uf, ub) = (self.forward.units, self.backward.units);
                let mut out = Vec::with_capacity(yf.data.len() + yb.data.len());
                for (a, b) in yf.data.chunks(uf).zip(yb.data.chunks(ub)) {
                    out.extend_from_slice(a);
                    out.extend_from_slice(b);
                }
                let mut shape = yf.shape.clone();
                if let Some(last) = shape.last_mut() {
                    *last = uf + ub;
                }
                Tensor::new(shape, out)?
            }
            Merge::Sum | Merge::Mul | Merge::Ave => {
                let mut out = yf.clone();
                for (o, b) in out.data.iter_mut().zip(&yb.data) {
                    *o = match self.merge {
                        Merge::Sum => *o + b,
                        Merge::Mul => *o * b,
                        _ => (*o + b) / 2.0,
                    };
                }
                out
            }
        };
        if ctx.training && self.merge == Merge::Mul {
            self.outputs = Some((yf, yb));
        }
        Ok(merged)
    }
    fn backward(&mut self, grad: Tensor, need_input_grad: bool) -> Result<Tensor> {
        let (gf, gb) = match self.merge {
            Merge::Concat => {
                let (uf, ub) = (self.forward.units, self.backward.units);
                let (mut a, mut b) = (Vec::new(), Vec::new());
                for row in grad.data.chunks(uf + ub) {
                    a.extend_from_slice(&row[..uf]);
                    b.extend_from_slice(&row[uf..]);
                }
                let mut sf = grad.shape.clone();
                let mut sb = grad.shape.clone();
                if let (Some(l), Some(m)) = (sf.last_mut(), sb.last_mut()) {
                    *l = uf;
                    *m = ub;
                }
                (Tensor::new(sf, a)?, Tensor::new(sb, b)?)
            }
            Merge::Sum => (grad.clone(), grad),
            Merge::Ave => {
                let mut half = grad;
                half.data.iter_mut().for_each(|v| *v *= 0.5);
                (half.clone(), half)
            }
            Merge::Mul => {
                let (yf, yb) = self.outputs.take().ok_or_else(|| {
                    Error::Runtime(format!(
                        "Bidirectional '{}': backward called without a matching training forward pass",
                        self.name
                    ))
                })?;
                let mut gf = grad.clone();
                gf.data.iter_mut().zip(&yb.data).for_each(|(g, b)| *g *= b);
                let mut gb = grad;
                gb.data.iter_mut().zip(&yf.data).for_each(|(g, f)| *g *= f);
                (gf, gb)
            }
        };
        let gb = self.flip(gb)?;
        let (dxf, dxb) = self.both(
            move |l| l.backward(gf, need_input_grad),
            move |l| l.backward(gb, need_input_grad),
        );
        let (dxf, dxb) = (dxf?, dxb?);
        if !need_input_grad {
            return Ok(Tensor::default());
        }
        let mut dx = dxf;
        dx.data.iter_mut().zip(&dxb.data).for_each(|(a, b)| *a += b);
        Ok(dx)
    }
    fn backward_inputs(
        &mut self,
        grad: Tensor,
        need_input_grad: bool,
    ) -> Result<Vec<Option<Tensor>>> {
        let dx = self.backward(grad, need_input_grad)?;
        Ok(if self.forward.masked {
            vec![Some(dx), None]
        } else {
            vec![Some(dx)]
        })
    }
    fn params(&self) -> &[Param] {
        &self.params
    }
    fn params_mut(&mut self) -> &mut [Param] {
        &mut self.params
    }
    fn clear_cache(&mut self) {
        self.forward.clear_cache();
        self.backward.clear_cache();
        self.outputs = None;
    }
}

#[cfg(test)]
mod tests {
    use super::super::gradcheck;
    use super::*;
    use serde_json::json;

    use gradcheck::normal_input as input;

    /// Backpropagation through time of every cell, with sequences returned or not, forwards and backwards.
    #[test]
    fn gradients_match_finite_differences() {
        for class in ["SimpleRNN", "LSTM", "GRU"] {
            for cfg in [
                json!({"units": 3, "bias_initializer": "random_normal"}),
                json!({"units": 2, "return_sequences": true, "go_backwards": true}),
            ] {
                let mut l = Recurrent::from_config(class, &cfg).unwrap();
                l.build(&[4, 3], &mut Rng::new(1)).unwrap();
                gradcheck::check(&mut l, input(&[2, 4, 3], 2), 2e-2);
            }
        }
    }

    /// A mask `(2, 4)`: sample 0 skips steps 1 and 3, sample 1 its first step (a left-padded sequence).
    fn mask() -> Tensor {
        Tensor::new(vec![2, 4], vec![1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0]).unwrap()
    }

    #[test]
    fn masks_initial_states_and_returned_states_have_exact_gradients() {
        for class in ["SimpleRNN", "LSTM", "GRU"] {
            let n_states = if class == "LSTM" { 2 } else { 1 };
            for (seq, back, state, zero) in [
                (false, false, true, false),
                (true, true, true, false),
                (true, false, false, true),
            ] {
                let cfg = json!({"units": 2, "return_sequences": seq, "go_backwards": back,
                    "return_state": state, "zero_output_for_mask": zero,
                    "bias_initializer": "random_normal"});
                let mut l = Recurrent::from_config(class, &cfg).unwrap();
                let mut shapes = vec![vec![4, 3]];
                let mut xs = vec![input(&[2, 4, 3], 2)];
                for k in 0..n_states {
                    shapes.push(vec![2]);
                    xs.push(input(&[2, 2], 10 + k as u64));
                }
                shapes.push(vec![4]);
                xs.push(mask());
                l.build_inputs(&shapes, true, &mut Rng::new(1)).unwrap();
                gradcheck::check_inputs(&mut l, xs, 2e-2);
            }
        }
    }

    #[test]
    fn dropout_masks_have_exact_gradients_and_leave_inference_alone() {
        for class in ["SimpleRNN", "LSTM", "GRU"] {
            for (px, ph) in [(0.3, 0.0), (0.0, 0.4), (0.3, 0.4)] {
                let cfg = json!({"units": 3, "return_sequences": true, "dropout": px,
                    "recurrent_dropout": ph, "bias_initializer": "random_normal"});
                let mut l = Recurrent::from_config(class, &cfg).unwrap();
                l.build_inputs(&[vec![4, 3], vec![4]], true, &mut Rng::new(1))
                    .unwrap();
                // gradcheck reruns each forward from one seed: the same masks every time
                gradcheck::check_inputs(&mut l, vec![input(&[2, 4, 3], 2), mask()], 2e-2);
                let x = input(&[2, 4, 3], 3);
                let mut plain = Recurrent::from_config(
                    class,
                    &json!({"units": 3, "return_sequences": true,
                    "bias_initializer": "random_normal"}),
                )
                .unwrap();
                plain.build(&[4, 3], &mut Rng::new(1)).unwrap();
                let run = |l: &mut Recurrent, training: bool| {
                    let mut rng = Rng::new(9);
                    let mut ctx = Ctx {
                        training,
                        rng: &mut rng,
                    };
                    l.forward(x.clone(), &mut ctx).unwrap().data
                };
                assert_eq!(
                    run(&mut l, false),
                    run(&mut plain, false),
                    "{class}: inference has no dropout"
                );
                assert_ne!(
                    run(&mut l, true),
                    run(&mut plain, true),
                    "{class}: training drops"
                );
            }
        }
    }

    #[test]
    fn gru_with_the_reset_gate_before_the_product_has_exact_gradients() {
        for (seq, back, px, ph) in [
            (false, false, 0.0, 0.0),
            (true, true, 0.0, 0.0),
            (true, false, 0.3, 0.4),
        ] {
            let cfg = json!({"units": 3, "reset_after": false, "return_sequences": seq, "go_backwards": back,
                "dropout": px, "recurrent_dropout": ph, "return_state": true,
                "bias_initializer": "random_normal"});
            let mut l = Recurrent::from_config("GRU", &cfg).unwrap();
            l.build_inputs(&[vec![4, 3], vec![3], vec![4]], true, &mut Rng::new(1))
                .unwrap();
            assert_eq!(l.params()[2].shape, vec![9], "one bias (3 * units)");
            let xs = vec![input(&[2, 4, 3], 2), input(&[2, 3], 7), mask()];
            gradcheck::check_inputs(&mut l, xs, 2e-2);
        }
    }

    #[test]
    fn a_stateful_layer_goes_on_from_its_last_state_until_reset() {
        let mut l = Recurrent::from_config("LSTM", &json!({"units": 2, "stateful": true})).unwrap();
        let mut whole = Recurrent::from_config("LSTM", &json!({"units": 2})).unwrap();
        l.build(&[2, 3], &mut Rng::new(1)).unwrap();
        whole.build(&[4, 3], &mut Rng::new(1)).unwrap();
        assert!(!l.batch_local() && whole.batch_local());
        let x = input(&[2, 4, 3], 2);
        let half = |t0: usize| {
            let data: Vec<f32> = x
                .data
                .chunks(12)
                .flat_map(|s| s[t0 * 3..(t0 + 2) * 3].to_vec())
                .collect();
            Tensor::new(vec![2, 2, 3], data).unwrap()
        };
        let mut rng = Rng::new(5);
        let mut ctx = Ctx {
            training: false,
            rng: &mut rng,
        };
        let first = l.forward(half(0), &mut ctx).unwrap();
        let second = l.forward(half(2), &mut ctx).unwrap();
        let full = whole.forward(x.clone(), &mut ctx).unwrap();
        for (a, b) in second.data.iter().zip(&full.data) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        l.reset_states();
        assert_eq!(l.forward(half(0), &mut ctx).unwrap().data, first.data);
        let one = Tensor::new(vec![1, 2, 3], vec![0.5; 6]).unwrap();
        let e = l.forward(one, &mut ctx).unwrap_err();
        assert!(e.to_string().contains("Expected batch size: 2"), "{e}");
    }

    #[test]
    fn a_masked_step_keeps_the_state_and_repeats_the_output() {
        let cfg = json!({"units": 2, "return_sequences": true, "return_state": true});
        let mut l = Recurrent::from_config("LSTM", &cfg).unwrap();
        l.build_inputs(&[vec![4, 3], vec![4]], true, &mut Rng::new(1))
            .unwrap();
        let mut rng = Rng::new(5);
        let mut ctx = Ctx {
            training: false,
            rng: &mut rng,
        };
        let y = l
            .forward_inputs(vec![input(&[2, 4, 3], 2), mask()], &mut ctx)
            .unwrap();
        assert_eq!(y.shape, vec![2, 4 * 2 + 2 * 2]);
        let row = |b: usize, t: usize| &y.data[b * 12 + t * 2..][..2];
        assert_eq!(row(0, 1), row(0, 0)); // skipped: the previous output again
        assert_eq!(row(0, 3), row(0, 2));
        assert_eq!(row(1, 0), &[0.0, 0.0]); // nothing before it: the zero state
        assert_ne!(row(0, 2), row(0, 1));
        assert_eq!(&y.data[8..10], row(0, 3)); // the final h is the last output
                                               // a wrong mask or initial state is refused with both shapes
        let mut bad = Recurrent::from_config("LSTM", &cfg).unwrap();
        let e = bad
            .build_inputs(&[vec![4, 3], vec![5]], true, &mut Rng::new(1))
            .unwrap_err();
        assert!(
            e.to_string().contains("(batch, 4)") && e.to_string().contains("(batch, 5)"),
            "{e}"
        );
        let e = bad
            .build_inputs(&[vec![4, 3], vec![2]], false, &mut Rng::new(1))
            .unwrap_err();
        assert!(e.to_string().contains("needs 2 tensors"), "{e}");
    }

    #[test]
    fn bidirectional_with_a_mask_has_exact_gradients() {
        for seq in [false, true] {
            let cfg = json!({"merge_mode": "concat", "layer": {"class_name": "LSTM",
                "config": {"units": 2, "return_sequences": seq, "bias_initializer": "random_normal"}}});
            let mut l = Bidirectional::from_config(&cfg).unwrap();
            l.build_inputs(&[vec![4, 3], vec![4]], true, &mut Rng::new(1))
                .unwrap();
            gradcheck::check_inputs(&mut l, vec![input(&[2, 4, 3], 2), mask()], 2e-2);
        }
    }

    #[test]
    fn bidirectional_gradients_match_finite_differences() {
        for merge in ["concat", "sum", "mul", "ave"] {
            for seq in [false, true] {
                let cfg = json!({"merge_mode": merge, "layer": {"class_name": "GRU",
                    "config": {"units": 2, "return_sequences": seq, "bias_initializer": "random_normal"}}});
                let mut l = Bidirectional::from_config(&cfg).unwrap();
                l.build(&[4, 3], &mut Rng::new(1)).unwrap();
                gradcheck::check(&mut l, input(&[2, 4, 3], 2), 2e-2);
            }
        }
        let bad = json!({"layer": {"class_name": "Dense", "config": {"units": 2}}});
        assert!(Bidirectional::from_config(&bad).is_err());
    }

    #[test]
    fn zero_weights_give_zero_state_and_lstm_forget_bias_is_one() {
        let mut l = Recurrent::from_config("LSTM", &json!({"units": 2})).unwrap();
        l.build(&[3, 2], &mut Rng::new(0)).unwrap();
        assert_eq!(l.params[2].value, vec![0., 0., 1., 1., 0., 0., 0., 0.]);
        for p in &mut l.params {
            p.value.iter_mut().for_each(|v| *v = 0.0);
        }
        let mut rng = Rng::new(0);
        let mut ctx = Ctx {
            training: false,
            rng: &mut rng,
        };
        let y = l.forward(input(&[2, 3, 2], 3), &mut ctx).unwrap();
        assert_eq!(y.shape, vec![2, 2]);
        assert!(y.data.iter().all(|&v| v == 0.0));
        assert!(Recurrent::from_config("LSTM", &json!({"units": 2, "dropout": "high"})).is_err());
    }
}
