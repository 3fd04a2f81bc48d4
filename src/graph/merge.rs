//! Merge layers: nodes with several inputs and no weights (Add, Subtract, Multiply, Average, Maximum,
//! Minimum, Concatenate, Dot). Each node owns its own `Merge` (a shared merge layer has no weights to share),
//! which keeps what its backward pass needs.
//!
//! Shapes exclude the batch axis. Element-wise merges broadcast as Keras does (right-aligned, a dimension of 1
//! stretches); Concatenate joins along one axis; Dot is Keras's `batch_dot` for two inputs of rank 2 or 3.

use crate::config::Cfg;
use crate::error::{Error, Result};
use crate::tensor::{shape_str, Tensor};
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Elementwise {
    Add,
    Subtract,
    Multiply,
    Average,
    Maximum,
    Minimum,
}

#[derive(Clone, Debug)]
enum Kind {
    Elementwise(Elementwise),
    /// Axis of the sample shape (batch excluded).
    Concatenate {
        axis: i64,
    },
    Dot {
        axes: (i64, i64),
        normalize: bool,
    },
}

/// Classes of the merge layers, by their Keras names.
pub const MERGE_CLASSES: &[&str] = &[
    "Add",
    "Subtract",
    "Multiply",
    "Average",
    "Maximum",
    "Minimum",
    "Concatenate",
    "Dot",
];

#[derive(Clone, Debug)]
pub struct Merge {
    pub name: String,
    pub class_name: &'static str,
    kind: Kind,
    /// Per input: its sample shape; for element-wise merges, where each output value reads it from (None: the
    /// same shape as the output).
    in_shapes: Vec<Vec<usize>>,
    maps: Vec<Option<Vec<usize>>>,
    out_shape: Vec<usize>,
    /// Resolved sample axes for Concatenate (one) and Dot (two).
    axes: (usize, usize),
    /// Inputs kept for backward (Multiply, Maximum, Minimum, Dot), in training only.
    cache: Vec<Tensor>,
}

fn resolve_axis(name: &str, axis: i64, rank_with_batch: usize) -> Result<usize> {
    let r = rank_with_batch as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a <= 0 || a >= r {
        return Err(Error::Value(format!(
            "Layer '{name}': axis {axis} is out of range for inputs of rank {rank_with_batch} (the batch axis 0 \
             cannot be merged along)"
        )));
    }
    Ok(a as usize - 1)
}

/// Where each value of `out` (right-aligned broadcasting) reads from in `input`.
fn broadcast_map(input: &[usize], out: &[usize]) -> Vec<usize> {
    let rank = out.len();
    let pad = rank - input.len();
    let dims: Vec<usize> = (0..rank)
        .map(|i| if i < pad { 1 } else { input[i - pad] })
        .collect();
    // strides of the input, 0 on stretched axes
    let mut strides = vec![0usize; rank];
    let mut s = 1;
    for i in (0..rank).rev() {
        strides[i] = if dims[i] == 1 { 0 } else { s };
        s *= dims[i];
    }
    let n: usize = out.iter().product();
    let mut map = Vec::with_capacity(n);
    let mut idx = vec![0usize; rank];
    for _ in 0..n {
        map.push(idx.iter().zip(&strides).map(|(i, s)| i * s).sum());
        for ax in (0..rank).rev() {
            idx[ax] += 1;
            if idx[ax] < out[ax] {
                break;
            }
            idx[ax] = 0;
        }
    }
    map
}

impl Merge {
    pub fn from_config(class_name: &str, v: &Value) -> Result<Self> {
        let class: &'static str = MERGE_CLASSES
            .iter()
            .find(|c| **c == class_name)
            .ok_or_else(|| Error::Value(format!("'{class_name}' is not a merge layer")))?;
        let cfg = Cfg::new(class, v)?;
        let int_of = |key: &str, x: &Value| -> Result<i64> {
            x.as_i64()
                .ok_or_else(|| cfg.err(key, "an integer or a pair of integers", x))
        };
        let kind = match class {
            "Add" => Kind::Elementwise(Elementwise::Add),
            "Subtract" => Kind::Elementwise(Elementwise::Subtract),
            "Multiply" => Kind::Elementwise(Elementwise::Multiply),
            "Average" => Kind::Elementwise(Elementwise::Average),
            "Maximum" => Kind::Elementwise(Elementwise::Maximum),
            "Minimum" => Kind::Elementwise(Elementwise::Minimum),
            "Concatenate" => Kind::Concatenate {
                axis: match cfg.raw("axis") {
                    None => -1,
                    Some(x) => int_of("axis", x)?,
                },
            },
            _ => {
                let axes = match cfg.raw("axes") {
                    None => {
                        return Err(Error::Value(format!(
                            "Dot '{}': missing required argument `axes`",
                            cfg.name
                        )))
                    }
                    Some(Value::Array(a)) if a.len() == 2 => {
                        (int_of("axes", &a[0])?, int_of("axes", &a[1])?)
                    }
                    Some(x) => {
                        let a = int_of("axes", x)?;
                        (a, a)
                    }
                };
                Kind::Dot {
                    axes,
                    normalize: cfg.bool_or("normalize", false)?,
                }
            }
        };
        Ok(Merge {
            name: cfg.name,
            class_name: class,
            kind,
            in_shapes: Vec::new(),
            maps: Vec::new(),
            out_shape: Vec::new(),
            axes: (0, 0),
            cache: Vec::new(),
        })
    }

    fn shapes_err(&self, what: &str, shapes: &[Vec<usize>]) -> Error {
        let list: Vec<String> = shapes.iter().map(|s| shape_str(s)).collect();
        Error::Value(format!(
            "{} '{}': {what}. Received input shapes: [{}]",
            self.class_name,
            self.name,
            list.join(", ")
        ))
    }

    /// Check the input shapes (batch excluded) and return the output shape.
    pub fn build(&mut self, shapes: &[Vec<usize>]) -> Result<Vec<usize>> {
        let min_inputs = 2;
        if shapes.len() < min_inputs {
            return Err(Error::Value(format!(
                "{} '{}': a merge layer should be called on a list of at least {min_inputs} inputs. Received: {} \
                 input(s)",
                self.class_name,
                self.name,
                shapes.len()
            )));
        }
        let out = match self.kind.clone() {
            Kind::Elementwise(op) => {
                if (op == Elementwise::Subtract) && shapes.len() != 2 {
                    return Err(self.shapes_err(
                        "a `Subtract` layer should be called on exactly 2 inputs",
                        shapes,
                    ));
                }
                let rank = shapes.iter().map(Vec::len).max().unwrap_or(0);
                let mut out = vec![1usize; rank];
                for s in shapes {
                    let pad = rank - s.len();
                    for (i, &d) in s.iter().enumerate() {
                        let o = &mut out[pad + i];
                        if *o == 1 {
                            *o = d;
                        } else if d != 1 && d != *o {
                            return Err(self.shapes_err(
                                "inputs must have the same shape or shapes that broadcast (dimensions equal or 1)",
                                shapes,
                            ));
                        }
                    }
                }
                self.maps = shapes
                    .iter()
                    .map(|s| (s != &out).then(|| broadcast_map(s, &out)))
                    .collect();
                out
            }
            Kind::Concatenate { axis } => {
                let rank = shapes[0].len();
                if shapes.iter().any(|s| s.len() != rank) {
                    return Err(self.shapes_err(
                        "a `Concatenate` layer requires inputs of the same rank",
                        shapes,
                    ));
                }
                let a = resolve_axis(&self.name, axis, rank + 1)?;
                for s in shapes {
                    let same = s
                        .iter()
                        .zip(&shapes[0])
                        .enumerate()
                        .all(|(i, (x, y))| i == a || x == y);
                    if !same {
                        return Err(self.shapes_err(
                            &format!(
                                "a `Concatenate` layer requires inputs with matching shapes except for the \
                                 concatenation axis {axis}"
                            ),
                            shapes,
                        ));
                    }
                }
                self.axes = (a, a);
                let mut out = shapes[0].clone();
                out[a] = shapes.iter().map(|s| s[a]).sum();
                out
            }
            Kind::Dot { axes, .. } => {
                if shapes.len() != 2 {
                    return Err(self
                        .shapes_err("a `Dot` layer should be called on exactly 2 inputs", shapes));
                }
                let (s0, s1) = (&shapes[0], &shapes[1]);
                if s0.len() != s1.len() || !(1..=2).contains(&s0.len()) {
                    return Err(self.shapes_err(
                        "kerust's `Dot` takes two inputs of rank 2 (batch, d) or two of rank 3 (batch, n, d)",
                        shapes,
                    ));
                }
                let a0 = resolve_axis(&self.name, axes.0, s0.len() + 1)?;
                let a1 = resolve_axis(&self.name, axes.1, s1.len() + 1)?;
                if s0[a0] != s1[a1] {
                    return Err(self.shapes_err(
                        &format!(
                            "dimension incompatibility: {} (at axis {}) != {} (at axis {})",
                            s0[a0],
                            a0 + 1,
                            s1[a1],
                            a1 + 1
                        ),
                        shapes,
                    ));
                }
                self.axes = (a0, a1);
                if s0.len() == 1 {
                    vec![1]
                } else {
                    vec![s0[1 - a0], s1[1 - a1]]
                }
            }
        };
        self.in_shapes = shapes.to_vec();
        self.out_shape = out.clone();
        Ok(out)
    }

    fn check_inputs(&self, xs: &[Tensor]) -> Result<usize> {
        let b = xs.first().map(Tensor::batch).unwrap_or(0);
        for (x, s) in xs.iter().zip(&self.in_shapes) {
            if x.shape[1..] != s[..] || x.batch() != b {
                return Err(Error::Value(format!(
                    "{} '{}': expected inputs of shapes {:?} with one batch size, received {:?}",
                    self.class_name,
                    self.name,
                    self.in_shapes,
                    xs.iter().map(|t| t.shape.clone()).collect::<Vec<_>>()
                )));
            }
        }
        Ok(b)
    }

    pub fn forward(&mut self, xs: Vec<Tensor>, training: bool) -> Result<Tensor> {
        let b = self.check_inputs(&xs)?;
        let out_len: usize = self.out_shape.iter().product();
        let mut shape = vec![b];
        shape.extend_from_slice(&self.out_shape);
        let y = match self.kind.clone() {
            Kind::Elementwise(op) => {
                let mut out = vec![0.0f32; b * out_len];
                for (i, x) in xs.iter().enumerate() {
                    let len = x.sample_len();
                    for s in 0..b {
                        let dst = &mut out[s * out_len..][..out_len];
                        let src = &x.data[s * len..][..len];
                        let read = |j: usize| match &self.maps[i] {
                            None => src[j],
                            Some(m) => src[m[j]],
                        };
                        for (j, d) in dst.iter_mut().enumerate() {
                            let v = read(j);
                            *d = if i == 0 {
                                v
                            } else {
                                match op {
                                    Elementwise::Add | Elementwise::Average => *d + v,
                                    Elementwise::Subtract => *d - v,
                                    Elementwise::Multiply => *d * v,
                                    // the first of tied values wins (TensorFlow's maximum/minimum gradient)
                                    Elementwise::Maximum => {
                                        if v > *d {
                                            v
                                        } else {
                                            *d
                                        }
                                    }
                                    Elementwise::Minimum => {
                                        if v < *d {
                                            v
                                        } else {
                                            *d
                                        }
                                    }
                                }
                            };
                        }
                    }
                }
                if op == Elementwise::Average {
                    let n = xs.len() as f32;
                    out.iter_mut().for_each(|v| *v /= n);
                }
                if training
                    && matches!(
                        op,
                        Elementwise::Multiply | Elementwise::Maximum | Elementwise::Minimum
                    )
                {
                    self.cache = xs;
                }
                out
            }
            Kind::Concatenate { .. } => {
                let a = self.axes.0;
                let outer: usize = self.out_shape[..a].iter().product();
                let mut out = Vec::with_capacity(b * out_len);
                let blocks: Vec<usize> = self
                    .in_shapes
                    .iter()
                    .map(|s| s[a..].iter().product())
                    .collect();
                for s in 0..b * outer {
                    for (x, &blk) in xs.iter().zip(&blocks) {
                        out.extend_from_slice(&x.data[s * blk..][..blk]);
                    }
                }
                out
            }
            Kind::Dot { normalize, .. } => {
                let x0 = canonical_dot_operand(&xs[0], self.axes.0, true);
                let x1 = canonical_dot_operand(&xs[1], self.axes.1, false);
                let out = if normalize {
                    batch_matmul(&normalized(&x0, true), &normalized(&x1, false))
                } else {
                    batch_matmul(&x0, &x1)
                };
                if training {
                    // the operands before normalization: backward needs their norms
                    self.cache = vec![
                        Tensor {
                            shape: Vec::new(),
                            data: x0.t,
                        },
                        Tensor {
                            shape: Vec::new(),
                            data: x1.t,
                        },
                    ];
                }
                out
            }
        };
        Tensor::new(shape, y)
    }

    /// From dL/d(output) to dL/d(each input).
    pub fn backward(&mut self, grad: Tensor) -> Result<Vec<Tensor>> {
        let b = grad.batch();
        let out_len: usize = self.out_shape.iter().product();
        let with_batch = |s: &[usize]| {
            let mut v = vec![b];
            v.extend_from_slice(s);
            v
        };
        let n_in = self.in_shapes.len();
        match self.kind.clone() {
            Kind::Elementwise(op) => {
                let needs_cache = matches!(
                    op,
                    Elementwise::Multiply | Elementwise::Maximum | Elementwise::Minimum
                );
                if needs_cache && self.cache.len() != n_in {
                    return Err(not_trained(&self.name));
                }
                let xs = std::mem::take(&mut self.cache);
                // which input each output value came from (Maximum/Minimum)
                let winner: Vec<u16> = if matches!(op, Elementwise::Maximum | Elementwise::Minimum)
                {
                    let mut w = vec![0u16; b * out_len];
                    let mut best = vec![0.0f32; b * out_len];
                    for (i, x) in xs.iter().enumerate() {
                        let len = x.sample_len();
                        for s in 0..b {
                            for j in 0..out_len {
                                let v = x.data[s * len + self.maps[i].as_ref().map_or(j, |m| m[j])];
                                let k = s * out_len + j;
                                let better = match op {
                                    Elementwise::Maximum => v > best[k],
                                    _ => v < best[k],
                                };
                                if i == 0 || better {
                                    best[k] = v;
                                    w[k] = i as u16;
                                }
                            }
                        }
                    }
                    w
                } else {
                    Vec::new()
                };
                let mut grads = Vec::with_capacity(n_in);
                for i in 0..n_in {
                    let len: usize = self.in_shapes[i].iter().product();
                    let mut gi = vec![0.0f32; b * len];
                    for s in 0..b {
                        for j in 0..out_len {
                            let k = s * out_len + j;
                            let g = grad.data[k];
                            let local = match op {
                                Elementwise::Add => g,
                                Elementwise::Average => g / n_in as f32,
                                Elementwise::Subtract => {
                                    if i == 0 {
                                        g
                                    } else {
                                        -g
                                    }
                                }
                                Elementwise::Multiply => {
                                    let mut p = g;
                                    for (q, x) in xs.iter().enumerate() {
                                        if q != i {
                                            let lq = x.sample_len();
                                            p *= x.data[s * lq
                                                + self.maps[q].as_ref().map_or(j, |m| m[j])];
                                        }
                                    }
                                    p
                                }
                                Elementwise::Maximum | Elementwise::Minimum => {
                                    if winner[k] as usize == i {
                                        g
                                    } else {
                                        0.0
                                    }
                                }
                            };
                            gi[s * len + self.maps[i].as_ref().map_or(j, |m| m[j])] += local;
                        }
                    }
                    grads.push(Tensor::new(with_batch(&self.in_shapes[i]), gi)?);
                }
                Ok(grads)
            }
            Kind::Concatenate { .. } => {
                let a = self.axes.0;
                let outer: usize = self.out_shape[..a].iter().product();
                let blocks: Vec<usize> = self
                    .in_shapes
                    .iter()
                    .map(|s| s[a..].iter().product())
                    .collect();
                let mut parts: Vec<Vec<f32>> = self
                    .in_shapes
                    .iter()
                    .map(|s| Vec::with_capacity(b * s.iter().product::<usize>()))
                    .collect();
                let mut pos = 0;
                for _ in 0..b * outer {
                    for (p, &blk) in parts.iter_mut().zip(&blocks) {
                        p.extend_from_slice(&grad.data[pos..pos + blk]);
                        pos += blk;
                    }
                }
                parts
                    .into_iter()
                    .zip(&self.in_shapes)
                    .map(|(p, s)| Tensor::new(with_batch(s), p))
                    .collect()
            }
            Kind::Dot { normalize, .. } => {
                if self.cache.len() != 2 {
                    return Err(not_trained(&self.name));
                }
                let x1t = self.cache.pop().unwrap_or_default();
                let x0t = self.cache.pop().unwrap_or_default();
                let mut x0 =
                    Operand::from_cached(x0t.data, &self.in_shapes[0], self.axes.0, true, b);
                let mut x1 =
                    Operand::from_cached(x1t.data, &self.in_shapes[1], self.axes.1, false, b);
                if normalize {
                    x0 = normalized(&x0, true);
                    x1 = normalized(&x1, false);
                }
                // out (b, n, m) = x0 (b, n, d) @ x1 (b, d, m)
                let (n, d, m) = (x0.rows, x0.cols, x1.cols);
                let mut g0 = vec![0.0f32; b * n * d];
                let mut g1 = vec![0.0f32; b * d * m];
                for s in 0..b {
                    let g = &grad.data[s * n * m..][..n * m];
                    let a = &x0.t[s * n * d..][..n * d];
                    let c = &x1.t[s * d * m..][..d * m];
                    for i in 0..n {
                        for k in 0..d {
                            let mut acc0 = 0.0f32;
                            for j in 0..m {
                                acc0 += g[i * m + j] * c[k * m + j];
                            }
                            g0[s * n * d + i * d + k] = acc0;
                        }
                    }
                    for k in 0..d {
                        for j in 0..m {
                            let mut acc1 = 0.0f32;
                            for i in 0..n {
                                acc1 += a[i * d + k] * g[i * m + j];
                            }
                            g1[s * d * m + k * m + j] = acc1;
                        }
                    }
                }
                let mut g0 = Operand {
                    t: g0,
                    ..x0.clone()
                };
                let mut g1 = Operand {
                    t: g1,
                    ..x1.clone()
                };
                if normalize {
                    l2_normalize_backward(&mut g0, &x0, true);
                    l2_normalize_backward(&mut g1, &x1, false);
                }
                Ok(vec![
                    Tensor::new(with_batch(&self.in_shapes[0]), g0.to_input_layout())?,
                    Tensor::new(with_batch(&self.in_shapes[1]), g1.to_input_layout())?,
                ])
            }
        }
    }

    pub fn clear_cache(&mut self) {
        self.cache = Vec::new();
    }
}

fn not_trained(name: &str) -> Error {
    Error::Runtime(format!(
        "merge layer '{name}': backward called without a matching training forward pass"
    ))
}

/// A Dot operand per sample as a matrix: the first as (n, d), the second as (d, m), `d` the contracted axis.
/// Rank-1 samples are (1, d) and (d, 1). `transposed`: the input's own layout had the contracted axis where
/// the canonical layout does not (so the values were transposed into `t`). For normalize, `norms` keeps each
/// contracted vector's clamped L2 norm.
#[derive(Clone, Debug)]
struct Operand {
    t: Vec<f32>,
    rows: usize,
    cols: usize,
    transposed: bool,
    batch: usize,
    norms: Vec<f32>,
}

fn transpose_batch(v: &[f32], batch: usize, r: usize, c: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; v.len()];
    for s in 0..batch {
        for i in 0..r {
            for j in 0..c {
                out[s * r * c + j * r + i] = v[s * r * c + i * c + j];
            }
        }
    }
    out
}

fn canonical_dot_operand(x: &Tensor, axis: usize, first: bool) -> Operand {
    let b = x.batch();
    let sample = &x.shape[1..];
    if sample.len() == 1 {
        let d = sample[0];
        let (rows, cols) = if first { (1, d) } else { (d, 1) };
        return Operand {
            t: x.data.clone(),
            rows,
            cols,
            transposed: false,
            batch: b,
            norms: Vec::new(),
        };
    }
    let (r, c) = (sample[0], sample[1]);
    // canonical: first operand contracts its last axis, the second its first
    let transposed = if first { axis == 0 } else { axis == 1 };
    let (t, rows, cols) = if transposed {
        (transpose_batch(&x.data, b, r, c), c, r)
    } else {
        (x.data.clone(), r, c)
    };
    Operand {
        t,
        rows,
        cols,
        transposed,
        batch: b,
        norms: Vec::new(),
    }
}

impl Operand {
    fn from_cached(
        t: Vec<f32>,
        in_shape: &[usize],
        axis: usize,
        first: bool,
        batch: usize,
    ) -> Self {
        let (rows, cols, transposed) = if in_shape.len() == 1 {
            if first {
                (1, in_shape[0], false)
            } else {
                (in_shape[0], 1, false)
            }
        } else {
            let (r, c) = (in_shape[0], in_shape[1]);
            let transposed = if first { axis == 0 } else { axis == 1 };
            if transposed {
                (c, r, true)
            } else {
                (r, c, false)
            }
        };
        let _ = first;
        Operand {
            t,
            rows,
            cols,
            transposed,
            batch,
            norms: Vec::new(),
        }
    }

    fn to_input_layout(&self) -> Vec<f32> {
        if self.transposed {
            transpose_batch(&self.t, self.batch, self.rows, self.cols)
        } else {
            self.t.clone()
        }
    }
}

const NORM_EPSILON: f32 = 1e-12;

/// Index lists of the contracted vectors: the first operand's rows, the second's columns.
fn vector_len(op: &Operand, first: bool) -> (usize, usize, usize) {
    // (number of vectors per sample, length, stride between their values)
    if first {
        (op.rows, op.cols, 1)
    } else {
        (op.cols, op.rows, op.cols)
    }
}

fn vector_start(op: &Operand, first: bool, s: usize, v: usize) -> usize {
    let base = s * op.rows * op.cols;
    if first {
        base + v * op.cols
    } else {
        base + v
    }
}

/// `sqrt(max(sum(x^2), 1e-12))` for each contracted vector (Keras's `l2_normalize`).
fn contracted_norms(op: &Operand, first: bool) -> Vec<f32> {
    let (count, len, stride) = vector_len(op, first);
    let mut norms = Vec::with_capacity(op.batch * count);
    for s in 0..op.batch {
        for v in 0..count {
            let start = vector_start(op, first, s, v);
            let ss: f32 = (0..len).map(|k| op.t[start + k * stride].powi(2)).sum();
            norms.push(ss.max(NORM_EPSILON).sqrt());
        }
    }
    norms
}

/// The operand with every contracted vector divided by its norm; `norms` keeps those norms for backward.
fn normalized(op: &Operand, first: bool) -> Operand {
    let norms = contracted_norms(op, first);
    let (count, len, stride) = vector_len(op, first);
    let mut out = op.clone();
    for s in 0..op.batch {
        for v in 0..count {
            let start = vector_start(op, first, s, v);
            let n = norms[s * count + v];
            for k in 0..len {
                out.t[start + k * stride] /= n;
            }
        }
    }
    out.norms = norms;
    out
}

/// `g` holds dL/dy for `y = x / |x|` (normalized, with the norms of `x`): d/dx = (g - y (g . y)) / |x|.
fn l2_normalize_backward(g: &mut Operand, y: &Operand, first: bool) {
    let (count, len, stride) = vector_len(y, first);
    for s in 0..y.batch {
        for v in 0..count {
            let start = vector_start(y, first, s, v);
            let n = y.scale_of(s * count + v);
            let dot: f32 = (0..len)
                .map(|k| g.t[start + k * stride] * y.t[start + k * stride])
                .sum();
            for k in 0..len {
                let i = start + k * stride;
                g.t[i] = (g.t[i] - y.t[i] * dot) / n;
            }
        }
    }
}

impl Operand {
    /// The norm the vector had before normalization (kept by `normalized`).
    fn scale_of(&self, i: usize) -> f32 {
        self.norms.get(i).copied().unwrap_or(1.0)
    }
}

/// (b, n, d) @ (b, d, m) -> (b, n, m), flat.
fn batch_matmul(a: &Operand, c: &Operand) -> Vec<f32> {
    let (n, d, m) = (a.rows, a.cols, c.cols);
    let b = a.batch;
    let mut out = vec![0.0f32; b * n * m];
    for s in 0..b {
        let x = &a.t[s * n * d..][..n * d];
        let y = &c.t[s * d * m..][..d * m];
        for i in 0..n {
            for k in 0..d {
                let xv = x[i * d + k];
                for j in 0..m {
                    out[s * n * m + i * m + j] += xv * y[k * m + j];
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use serde_json::json;

    fn input(shape: &[usize], seed: u64) -> Tensor {
        let mut r = Rng::new(seed);
        let n = shape.iter().product();
        Tensor::new(shape.to_vec(), (0..n).map(|_| r.normal()).collect()).unwrap()
    }

    /// sum(w * merge(xs)) for fixed weights w.
    fn loss(m: &mut Merge, xs: &[Tensor], w: &[f32]) -> f64 {
        let y = m.forward(xs.to_vec(), false).unwrap();
        y.data
            .iter()
            .zip(w)
            .map(|(a, b)| *a as f64 * *b as f64)
            .sum()
    }

    /// Every input's gradient against central differences.
    fn check(class: &str, cfg: Value, shapes: &[&[usize]]) {
        let mut m = Merge::from_config(class, &cfg).unwrap();
        let samples: Vec<Vec<usize>> = shapes.iter().map(|s| s[1..].to_vec()).collect();
        m.build(&samples).unwrap();
        let xs: Vec<Tensor> = shapes
            .iter()
            .enumerate()
            .map(|(i, s)| input(s, 10 + i as u64))
            .collect();
        let y = m.forward(xs.clone(), true).unwrap();
        let w: Vec<f32> = (0..y.data.len())
            .map(|i| ((i * 7 % 11) as f32 - 5.0) / 5.0)
            .collect();
        let grads = m
            .backward(Tensor::new(y.shape.clone(), w.clone()).unwrap())
            .unwrap();
        // small steps: Maximum/Minimum switch where two inputs are within a step of each other
        let h = 1e-3f32;
        for (i, g) in grads.iter().enumerate() {
            assert_eq!(g.shape, xs[i].shape, "{class}: gradient shape of input {i}");
            for j in 0..xs[i].data.len() {
                let (mut plus, mut minus) = (xs.clone(), xs.clone());
                plus[i].data[j] += h;
                minus[i].data[j] -= h;
                let num = (loss(&mut m, &plus, &w) - loss(&mut m, &minus, &w)) / (2.0 * h as f64);
                let ana = g.data[j] as f64;
                assert!(
                    (num - ana).abs() <= 2e-2 * num.abs().max(1.0),
                    "{class} d/dx{i}[{j}]: {num} vs {ana}"
                );
            }
        }
    }

    #[test]
    fn elementwise_merges_and_broadcasting_have_exact_gradients() {
        for class in ["Add", "Multiply", "Average", "Maximum", "Minimum"] {
            check(class, json!({}), &[&[2, 3, 4], &[2, 3, 4], &[2, 3, 4]]);
            check(class, json!({}), &[&[2, 3, 4], &[2, 1, 4], &[2, 4]]);
        }
        check("Subtract", json!({}), &[&[2, 5], &[2, 5]]);
        check("Subtract", json!({}), &[&[2, 3, 5], &[2, 1]]);
    }

    #[test]
    fn concatenate_and_dot_gradients() {
        check(
            "Concatenate",
            json!({"axis": -1}),
            &[&[2, 3, 2], &[2, 3, 4]],
        );
        check("Concatenate", json!({"axis": 1}), &[&[2, 1, 4], &[2, 3, 4]]);
        check("Dot", json!({"axes": 1}), &[&[3, 4], &[3, 4]]);
        check(
            "Dot",
            json!({"axes": 1, "normalize": true}),
            &[&[3, 4], &[3, 4]],
        );
        check("Dot", json!({"axes": [2, 2]}), &[&[2, 3, 4], &[2, 5, 4]]);
        check(
            "Dot",
            json!({"axes": [1, 2], "normalize": true}),
            &[&[2, 4, 3], &[2, 5, 4]],
        );
        check("Dot", json!({"axes": [2, 1]}), &[&[2, 3, 4], &[2, 4, 5]]);
    }

    #[test]
    fn shapes_are_checked_with_both_shapes_named() {
        let mut m = Merge::from_config("Add", &json!({"name": "join"})).unwrap();
        let err = m.build(&[vec![3], vec![4]]).unwrap_err().to_string();
        assert!(
            err.contains("join") && err.contains("(None, 3)") && err.contains("(None, 4)"),
            "{err}"
        );
        let mut c = Merge::from_config("Concatenate", &json!({})).unwrap();
        assert!(c.build(&[vec![3, 5], vec![4, 6]]).is_err());
        assert_eq!(c.build(&[vec![3, 5], vec![3, 6]]).unwrap(), vec![3, 11]);
        let mut d = Merge::from_config("Dot", &json!({"axes": 1})).unwrap();
        assert!(d.build(&[vec![3], vec![4]]).is_err());
        assert!(Merge::from_config("Dot", &json!({})).is_err());
        assert!(Merge::from_config("Subtract", &json!({}))
            .unwrap()
            .build(&[vec![2], vec![2], vec![2]])
            .is_err());
    }

    #[test]
    fn maximum_ties_go_to_the_first_input_as_in_tensorflow() {
        let mut m = Merge::from_config("Maximum", &json!({})).unwrap();
        m.build(&[vec![2], vec![2]]).unwrap();
        let a = Tensor::new(vec![1, 2], vec![1.0, 3.0]).unwrap();
        let b = Tensor::new(vec![1, 2], vec![1.0, 2.0]).unwrap();
        m.forward(vec![a, b], true).unwrap();
        let g = m
            .backward(Tensor::new(vec![1, 2], vec![1.0, 1.0]).unwrap())
            .unwrap();
        assert_eq!(g[0].data, vec![1.0, 1.0]);
        assert_eq!(g[1].data, vec![0.0, 0.0]);
    }
}
