//! Ops that move values without arithmetic: concatenate, slice, tile, repeat, take, take_along_axis, pad and
//! one_hot, each with its adjoint (the gradient scatters back to where a value came from).

use super::arr::{for_each_offset, numel, strides, tuple_str, Arr, Real};
use crate::error::{Error, Result};

/// Concatenate along `axis` (all other axes equal; checked by shape inference).
pub fn concat<T: Real>(xs: &[&Arr<T>], axis: usize) -> Arr<T> {
    let outer: usize = xs[0].shape[..axis].iter().product();
    let mut shape = xs[0].shape.clone();
    shape[axis] = xs.iter().map(|x| x.shape[axis]).sum();
    let mut data = Vec::with_capacity(numel(&shape));
    for o in 0..outer {
        for x in xs {
            let run: usize = x.shape[axis..].iter().product();
            data.extend_from_slice(&x.data[o * run..(o + 1) * run]);
        }
    }
    Arr::new(shape, data)
}

/// The gradient of `concat`: `g` cut back into pieces of the inputs' shapes.
pub fn concat_backward<T: Real>(shapes: &[&[usize]], g: &Arr<T>, axis: usize) -> Vec<Arr<T>> {
    let outer: usize = g.shape[..axis].iter().product();
    let mut outs: Vec<Vec<T>> = shapes
        .iter()
        .map(|s| Vec::with_capacity(numel(s)))
        .collect();
    let mut at = 0;
    for _ in 0..outer {
        for (s, o) in shapes.iter().zip(outs.iter_mut()) {
            let run: usize = s[axis..].iter().product();
            o.extend_from_slice(&g.data[at..at + run]);
            at += run;
        }
    }
    outs.into_iter()
        .zip(shapes)
        .map(|(d, s)| Arr::new(s.to_vec(), d))
        .collect()
}

/// A resolved slice of one axis: start, step and count (numpy semantics, negative steps included).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AxisSlice {
    pub start: i64,
    pub step: i64,
    pub count: usize,
}

impl AxisSlice {
    /// Python's `slice(start, stop, step).indices(n)`.
    pub fn resolve(start: Option<i64>, stop: Option<i64>, step: i64, n: usize) -> Result<Self> {
        if step == 0 {
            return Err(Error::Value("slice step cannot be zero".into()));
        }
        let n = n as i64;
        let clamp = |v: i64, lo: i64, hi: i64| v.max(lo).min(hi);
        let (lo, hi) = if step > 0 { (0, n) } else { (-1, n - 1) };
        let fix = |v: Option<i64>, default: i64| match v {
            None => default,
            Some(v) if v < 0 => clamp(v + n, lo, hi),
            Some(v) => clamp(v, lo, hi),
        };
        let (s, e) = if step > 0 {
            (fix(start, 0), fix(stop, n))
        } else {
            (fix(start, n - 1), fix(stop, -1))
        };
        let count = if step > 0 {
            if e > s {
                (e - s + step - 1) / step
            } else {
                0
            }
        } else if s > e {
            (s - e + (-step) - 1) / (-step)
        } else {
            0
        };
        Ok(AxisSlice {
            start: s,
            step,
            count: count as usize,
        })
    }
}

/// Step a row-major multi-index over `shape` to the next position (wrapping to zeros after the last).
fn next_index(idx: &mut [usize], shape: &[usize]) {
    for ax in (0..idx.len()).rev() {
        idx[ax] += 1;
        if idx[ax] < shape[ax] {
            return;
        }
        idx[ax] = 0;
    }
}

/// The values of `x` at flat offsets `sources`, as an array of `shape` (slice, tile, take_along_axis).
fn gather<T: Real>(x: &Arr<T>, shape: Vec<usize>, sources: &[usize]) -> Arr<T> {
    Arr::new(shape, sources.iter().map(|&s| x.data[s]).collect())
}

/// The flat source offset of every output value of a slice.
fn slice_offsets(shape: &[usize], sl: &[AxisSlice]) -> (Vec<usize>, Vec<usize>) {
    let st = strides(shape);
    let out_shape: Vec<usize> = sl.iter().map(|s| s.count).collect();
    let base: i64 = sl.iter().zip(&st).map(|(s, &k)| s.start * k as i64).sum();
    let steps: Vec<i64> = sl
        .iter()
        .zip(&st)
        .map(|(s, &k)| s.step * k as i64)
        .collect();
    let mut offsets = Vec::with_capacity(numel(&out_shape));
    let mut idx = vec![0usize; out_shape.len()];
    for _ in 0..numel(&out_shape) {
        let off: i64 = base
            + idx
                .iter()
                .zip(&steps)
                .map(|(&i, &s)| i as i64 * s)
                .sum::<i64>();
        offsets.push(off as usize);
        next_index(&mut idx, &out_shape);
    }
    (out_shape, offsets)
}

pub fn slice<T: Real>(x: &Arr<T>, sl: &[AxisSlice]) -> Arr<T> {
    let (shape, offsets) = slice_offsets(&x.shape, sl);
    gather(x, shape, &offsets)
}

pub fn slice_backward<T: Real>(x_shape: &[usize], sl: &[AxisSlice], g: &Arr<T>) -> Arr<T> {
    gather_backward(x_shape, &slice_offsets(x_shape, sl).1, g)
}

/// For each output value of `tile`, the flat index of its source.
fn tile_sources(shape: &[usize], reps: &[usize]) -> (Vec<usize>, Vec<usize>) {
    // reps shorter than the rank pad with 1s on the left; longer ones add leading axes to x
    let rank = shape.len().max(reps.len());
    let xs: Vec<usize> = std::iter::repeat_n(1, rank - shape.len())
        .chain(shape.iter().copied())
        .collect();
    let rs: Vec<usize> = std::iter::repeat_n(1, rank - reps.len())
        .chain(reps.iter().copied())
        .collect();
    let out: Vec<usize> = xs.iter().zip(&rs).map(|(a, b)| a * b).collect();
    let st = strides(&xs);
    let mut src = Vec::with_capacity(numel(&out));
    let mut idx = vec![0usize; rank];
    for _ in 0..numel(&out) {
        src.push(
            idx.iter()
                .enumerate()
                .map(|(a, &i)| (i % xs[a]) * st[a])
                .sum(),
        );
        next_index(&mut idx, &out);
    }
    (out, src)
}

pub fn tile<T: Real>(x: &Arr<T>, reps: &[usize]) -> Arr<T> {
    let (shape, src) = tile_sources(&x.shape, reps);
    gather(x, shape, &src)
}

pub fn tile_backward<T: Real>(x_shape: &[usize], reps: &[usize], g: &Arr<T>) -> Arr<T> {
    gather_backward(x_shape, &tile_sources(x_shape, reps).1, g)
}

/// `repeat` along `axis` of an array already flattened when numpy's axis is None.
pub fn repeat<T: Real>(x: &Arr<T>, repeats: usize, axis: usize) -> Arr<T> {
    let outer: usize = x.shape[..axis].iter().product();
    let n = x.shape[axis];
    let inner: usize = x.shape[axis + 1..].iter().product();
    let mut shape = x.shape.clone();
    shape[axis] = n * repeats;
    let mut data = Vec::with_capacity(numel(&shape));
    for o in 0..outer {
        for k in 0..n {
            let row = &x.data[(o * n + k) * inner..(o * n + k + 1) * inner];
            for _ in 0..repeats {
                data.extend_from_slice(row);
            }
        }
    }
    Arr::new(shape, data)
}

pub fn repeat_backward<T: Real>(
    x_shape: &[usize],
    repeats: usize,
    axis: usize,
    g: &Arr<T>,
) -> Arr<T> {
    let outer: usize = x_shape[..axis].iter().product();
    let n = x_shape[axis];
    let inner: usize = x_shape[axis + 1..].iter().product();
    let mut out = vec![T::zero(); numel(x_shape)];
    for o in 0..outer {
        for k in 0..n {
            for r in 0..repeats {
                let src = ((o * n + k) * repeats + r) * inner;
                let dst = (o * n + k) * inner;
                for i in 0..inner {
                    out[dst + i] = out[dst + i] + g.data[src + i];
                }
            }
        }
    }
    Arr::new(x_shape.to_vec(), out)
}

/// Indices given as floats, checked to be whole numbers within `-n..n` (negative ones count from the end).
fn index_of<T: Real>(op: &str, v: T, n: usize) -> Result<usize> {
    let f = v.f64();
    let i = f as i64;
    if f.fract() != 0.0 || i < -(n as i64) || i >= n as i64 {
        return Err(Error::Value(format!(
            "{op}: index {f} is out of bounds for an axis of size {n}"
        )));
    }
    Ok(if i < 0 {
        (i + n as i64) as usize
    } else {
        i as usize
    })
}

/// `take(x, indices, axis)`: x.shape[:axis] + indices.shape + x.shape[axis+1:].
pub fn take<T: Real>(x: &Arr<T>, idx: &Arr<T>, axis: usize) -> Result<Arr<T>> {
    let outer: usize = x.shape[..axis].iter().product();
    let n = x.shape[axis];
    let inner: usize = x.shape[axis + 1..].iter().product();
    let picks = idx
        .data
        .iter()
        .map(|&v| index_of("take", v, n))
        .collect::<Result<Vec<_>>>()?;
    let mut shape = x.shape[..axis].to_vec();
    shape.extend_from_slice(&idx.shape);
    shape.extend_from_slice(&x.shape[axis + 1..]);
    let mut data = Vec::with_capacity(numel(&shape));
    for o in 0..outer {
        for &k in &picks {
            let at = (o * n + k) * inner;
            data.extend_from_slice(&x.data[at..at + inner]);
        }
    }
    Ok(Arr::new(shape, data))
}

pub fn take_backward<T: Real>(
    x_shape: &[usize],
    idx: &Arr<T>,
    axis: usize,
    g: &Arr<T>,
) -> Result<Arr<T>> {
    let outer: usize = x_shape[..axis].iter().product();
    let n = x_shape[axis];
    let inner: usize = x_shape[axis + 1..].iter().product();
    let mut out = vec![T::zero(); numel(x_shape)];
    let mut src = 0;
    for o in 0..outer {
        for &v in &idx.data {
            let k = index_of("take", v, n)?;
            let at = (o * n + k) * inner;
            for i in 0..inner {
                out[at + i] = out[at + i] + g.data[src + i];
            }
            src += inner;
        }
    }
    Ok(Arr::new(x_shape.to_vec(), out))
}

/// `take_along_axis(x, idx, axis)`: x and idx of one rank; the other axes broadcast.
pub fn take_along_axis<T: Real>(
    x: &Arr<T>,
    idx: &Arr<T>,
    axis: usize,
) -> Result<(Arr<T>, Vec<usize>)> {
    let rank = x.rank();
    let mut shape = vec![0; rank];
    for (a, s) in shape.iter_mut().enumerate() {
        *s = if a == axis {
            idx.shape[a]
        } else if x.shape[a] == idx.shape[a] || idx.shape[a] == 1 {
            x.shape[a]
        } else if x.shape[a] == 1 {
            idx.shape[a]
        } else {
            return Err(Error::Value(format!(
                "take_along_axis: shapes {} and {} do not broadcast outside axis {axis}",
                tuple_str(&x.shape),
                tuple_str(&idx.shape)
            )));
        };
    }
    let xs = strides(&x.shape);
    let is = strides(&idx.shape);
    let n = x.shape[axis];
    let mut sources = Vec::with_capacity(numel(&shape));
    let mut pos = vec![0usize; rank];
    for _ in 0..numel(&shape) {
        let io: usize = (0..rank)
            .map(|a| if idx.shape[a] == 1 { 0 } else { pos[a] * is[a] })
            .sum();
        let k = index_of("take_along_axis", idx.data[io], n)?;
        let xo: usize = (0..rank)
            .map(|a| {
                if a == axis {
                    k * xs[a]
                } else if x.shape[a] == 1 {
                    0
                } else {
                    pos[a] * xs[a]
                }
            })
            .sum();
        sources.push(xo);
        next_index(&mut pos, &shape);
    }
    Ok((gather(x, shape, &sources), sources))
}

/// Scatter-add `g` back to the sources a gather read (the gradient of slice, tile and take_along_axis).
pub fn gather_backward<T: Real>(x_shape: &[usize], sources: &[usize], g: &Arr<T>) -> Arr<T> {
    let mut out = vec![T::zero(); numel(x_shape)];
    for (&s, &v) in sources.iter().zip(&g.data) {
        out[s] = out[s] + v;
    }
    Arr::new(x_shape.to_vec(), out)
}

/// Constant padding: `widths[a] = (before, after)` for every axis.
pub fn pad<T: Real>(x: &Arr<T>, widths: &[(usize, usize)], value: T) -> Arr<T> {
    let shape: Vec<usize> = x
        .shape
        .iter()
        .zip(widths)
        .map(|(&d, &(b, a))| d + b + a)
        .collect();
    let mut out = Arr::full(shape.clone(), value);
    let st = strides(&shape);
    let base: usize = widths.iter().zip(&st).map(|(&(b, _), &s)| b * s).sum();
    let mut i = 0;
    for_each_offset(&x.shape, &st, |o| {
        out.data[base + o] = x.data[i];
        i += 1;
    });
    out
}

pub fn pad_backward<T: Real>(x_shape: &[usize], widths: &[(usize, usize)], g: &Arr<T>) -> Arr<T> {
    let st = strides(&g.shape);
    let base: usize = widths.iter().zip(&st).map(|(&(b, _), &s)| b * s).sum();
    let mut data = Vec::with_capacity(numel(x_shape));
    for_each_offset(x_shape, &st, |o| data.push(g.data[base + o]));
    Arr::new(x_shape.to_vec(), data)
}

/// One-hot along a new axis `axis` of the output; indices outside `0..classes` give all-zero rows.
pub fn one_hot<T: Real>(x: &Arr<T>, classes: usize, axis: usize) -> Arr<T> {
    let outer: usize = x.shape[..axis].iter().product();
    let inner: usize = x.shape[axis..].iter().product();
    let mut shape = x.shape.clone();
    shape.insert(axis, classes);
    let mut data = vec![T::zero(); numel(&shape)];
    for o in 0..outer {
        for i in 0..inner {
            let v = x.data[o * inner + i].f64();
            if v >= 0.0 && v.fract() == 0.0 && (v as usize) < classes {
                data[(o * classes + v as usize) * inner + i] = T::one();
            }
        }
    }
    Arr::new(shape, data)
}
