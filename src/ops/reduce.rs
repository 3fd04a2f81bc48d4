//! Reductions over axes (sum, mean, max, min, prod, var, std, logsumexp, norms), arg-max/min, cumulative sums
//! and softmax. Each works by moving the reduced axes last, so every output value is one contiguous run.

use super::arr::{numel, Arr, Real};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Reduce {
    Sum,
    Mean,
    Max,
    Min,
    Prod,
    Var,
    Std,
    LogSumExp,
    /// sum(|x|)
    Norm1,
    /// sqrt(sum(x^2))
    Norm2,
    /// max(|x|)
    NormInf,
}

/// The input permuted so that `axes` (sorted, distinct) come last: (array, number of outputs, run length).
fn axes_last<T: Real>(x: &Arr<T>, axes: &[usize]) -> (Arr<T>, usize, usize) {
    let keep: Vec<usize> = (0..x.rank()).filter(|a| !axes.contains(a)).collect();
    let perm: Vec<usize> = keep.iter().chain(axes).copied().collect();
    let run: usize = axes.iter().map(|&a| x.shape[a]).product();
    let outs = numel(&x.shape) / run.max(1);
    (x.permuted(&perm), outs, run)
}

/// Undo `axes_last` for an array laid out as (kept axes..., reduced axes...).
fn axes_back<T: Real>(y: Arr<T>, x_shape: &[usize], axes: &[usize]) -> Arr<T> {
    let keep: Vec<usize> = (0..x_shape.len()).filter(|a| !axes.contains(a)).collect();
    let perm: Vec<usize> = keep.iter().chain(axes).copied().collect();
    let mut inv = vec![0; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inv[p] = i;
    }
    let shape: Vec<usize> = perm.iter().map(|&p| x_shape[p]).collect();
    y.reshaped(shape).permuted(&inv)
}

pub fn out_shape(shape: &[usize], axes: &[usize], keepdims: bool) -> Vec<usize> {
    (0..shape.len())
        .filter_map(|a| {
            if axes.contains(&a) {
                keepdims.then_some(1)
            } else {
                Some(shape[a])
            }
        })
        .collect()
}

impl Reduce {
    fn run<T: Real>(self, v: &[T]) -> T {
        let n = T::c(v.len() as f64);
        match self {
            Reduce::Sum => v.iter().copied().sum(),
            Reduce::Mean => v.iter().copied().sum::<T>() / n,
            Reduce::Max => {
                v.iter().copied().fold(
                    T::neg_infinity(),
                    |a, b| {
                        if b > a || b.is_nan() {
                            b
                        } else {
                            a
                        }
                    },
                )
            }
            Reduce::Min => {
                v.iter().copied().fold(
                    T::infinity(),
                    |a, b| {
                        if b < a || b.is_nan() {
                            b
                        } else {
                            a
                        }
                    },
                )
            }
            Reduce::Prod => v.iter().fold(T::one(), |a, &b| a * b),
            Reduce::Var | Reduce::Std => {
                let m = v.iter().copied().sum::<T>() / n;
                let var = v.iter().map(|&x| (x - m) * (x - m)).sum::<T>() / n;
                if self == Reduce::Std {
                    var.sqrt()
                } else {
                    var
                }
            }
            Reduce::LogSumExp => {
                let m = Reduce::Max.run(v);
                if !m.is_finite() {
                    return m;
                }
                m + v.iter().map(|&x| (x - m).exp()).sum::<T>().ln()
            }
            Reduce::Norm1 => v.iter().map(|x| x.abs()).sum(),
            Reduce::Norm2 => v.iter().map(|&x| x * x).sum::<T>().sqrt(),
            Reduce::NormInf => v.iter().fold(T::zero(), |a, &b| a.max(b.abs())),
        }
    }

    /// d(result)/d(v[i]) for one run, given its result `r`, scaled by the upstream gradient `g`.
    fn grad_run<T: Real>(self, v: &[T], r: T, g: T, out: &mut [T]) {
        let n = T::c(v.len() as f64);
        let zero = T::zero();
        match self {
            Reduce::Sum => out.iter_mut().for_each(|o| *o = g),
            Reduce::Mean => out.iter_mut().for_each(|o| *o = g / n),
            // ties share the gradient equally (as TensorFlow's and JAX's reductions)
            Reduce::Max | Reduce::Min | Reduce::NormInf => {
                let hit = |x: T| {
                    if self == Reduce::NormInf {
                        x.abs() == r
                    } else {
                        x == r
                    }
                };
                let count = T::c(v.iter().filter(|&&x| hit(x)).count().max(1) as f64);
                for (o, &x) in out.iter_mut().zip(v) {
                    *o = if hit(x) {
                        let s = if self == Reduce::NormInf {
                            x.signum()
                        } else {
                            T::one()
                        };
                        g * s / count
                    } else {
                        zero
                    };
                }
            }
            Reduce::Prod => {
                for (i, o) in out.iter_mut().enumerate() {
                    // the product of the others, computed directly so a zero input has its true gradient
                    let others = v
                        .iter()
                        .enumerate()
                        .filter(|&(j, _)| j != i)
                        .fold(T::one(), |a, (_, &b)| a * b);
                    *o = g * others;
                }
            }
            Reduce::Var | Reduce::Std => {
                let m = v.iter().copied().sum::<T>() / n;
                let scale = if self == Reduce::Std {
                    // d sqrt(var) = d var / (2 std)
                    T::one() / (T::c(2.0) * r)
                } else {
                    T::one()
                };
                for (o, &x) in out.iter_mut().zip(v) {
                    *o = g * scale * T::c(2.0) * (x - m) / n;
                }
            }
            Reduce::LogSumExp => {
                for (o, &x) in out.iter_mut().zip(v) {
                    *o = g * (x - r).exp();
                }
            }
            Reduce::Norm1 => {
                for (o, &x) in out.iter_mut().zip(v) {
                    *o = g * x.signum() * T::c((x != zero) as u8 as f64);
                }
            }
            Reduce::Norm2 => {
                for (o, &x) in out.iter_mut().zip(v) {
                    *o = if r == zero { zero } else { g * x / r };
                }
            }
        }
    }

    pub fn forward<T: Real>(self, x: &Arr<T>, axes: &[usize], keepdims: bool) -> Arr<T> {
        if axes.is_empty() && matches!(self, Reduce::Sum | Reduce::Max | Reduce::Min | Reduce::Prod)
        {
            return x.clone(); // nothing to reduce: each value is its own run
        }
        let (p, outs, run) = axes_last(x, axes);
        let data = (0..outs)
            .map(|o| self.run(&p.data[o * run..(o + 1) * run]))
            .collect();
        Arr::new(out_shape(&x.shape, axes, keepdims), data)
    }

    pub fn backward<T: Real>(self, x: &Arr<T>, y: &Arr<T>, g: &Arr<T>, axes: &[usize]) -> Arr<T> {
        let (p, outs, run) = axes_last(x, axes);
        let mut gp = vec![T::zero(); p.data.len()];
        for o in 0..outs {
            let span = o * run..(o + 1) * run;
            self.grad_run(&p.data[span.clone()], y.data[o], g.data[o], &mut gp[span]);
        }
        axes_back(Arr::new(p.shape.clone(), gp), &x.shape, axes)
    }
}

/// Index of the first max (or min) along `axis` (None: of the flattened array), as floats.
pub fn arg<T: Real>(x: &Arr<T>, axis: Option<usize>, keepdims: bool, max: bool) -> Arr<T> {
    let axes: Vec<usize> = match axis {
        Some(a) => vec![a],
        None => (0..x.rank()).collect(),
    };
    let (p, outs, run) = axes_last(x, &axes);
    let data = (0..outs)
        .map(|o| {
            let v = &p.data[o * run..(o + 1) * run];
            let mut best = 0;
            for (i, &val) in v.iter().enumerate() {
                let b = v[best];
                let better = if max { val > b } else { val < b };
                if (better || val.is_nan()) && !b.is_nan() {
                    best = i;
                }
            }
            T::c(best as f64)
        })
        .collect();
    let shape = if axis.is_none() && !keepdims {
        vec![]
    } else {
        out_shape(&x.shape, &axes, keepdims)
    };
    Arr::new(shape, data)
}

/// Running sums (or, reversed, the gradient of running sums) along `axis`.
pub fn cumsum<T: Real>(x: &Arr<T>, axis: usize, reverse: bool) -> Arr<T> {
    let n = x.shape[axis];
    let inner: usize = x.shape[axis + 1..].iter().product();
    let outer: usize = x.shape[..axis].iter().product();
    let mut out = x.data.clone();
    for o in 0..outer {
        for i in 0..inner {
            let mut acc = T::zero();
            for s in 0..n {
                let k = if reverse { n - 1 - s } else { s };
                let at = (o * n + k) * inner + i;
                acc = acc + x.data[at];
                out[at] = acc;
            }
        }
    }
    Arr::new(x.shape.clone(), out)
}

/// Rows of this many values or more are shared among threads (each row is computed alone, so the result does not
/// depend on the thread count).
const PAR_ROWS_MIN: usize = 1 << 15;

/// Softmax (or log-softmax) of one contiguous row, in place: one pass for the max, one for exp and its sum, one
/// to scale.
fn softmax_row<T: Real>(v: &mut [T], log: bool) {
    let m = Reduce::Max.run(v);
    let m = if m.is_finite() { m } else { T::zero() };
    if log {
        let s: T = v.iter().map(|&x| (x - m).exp()).sum();
        let shift = m + s.ln();
        v.iter_mut().for_each(|x| *x = *x - shift);
    } else {
        let mut s = T::zero();
        for x in v.iter_mut() {
            *x = (*x - m).exp();
            s = s + *x;
        }
        let inv = T::one() / s;
        v.iter_mut().for_each(|x| *x = *x * inv);
    }
}

fn softmax_backward_row<T: Real>(yv: &[T], gv: &mut [T], log: bool) {
    if log {
        // d log_softmax: g - softmax * sum(g)
        let s: T = gv.iter().copied().sum();
        for (gi, &yi) in gv.iter_mut().zip(yv) {
            *gi = *gi - yi.exp() * s;
        }
    } else {
        let dot: T = gv.iter().zip(yv).map(|(&a, &b)| a * b).sum();
        for (gi, &yi) in gv.iter_mut().zip(yv) {
            *gi = yi * (*gi - dot);
        }
    }
}

/// Softmax (or log-softmax) along `axis`.
pub fn softmax<T: Real>(x: &Arr<T>, axis: usize, log: bool) -> Arr<T> {
    use rayon::prelude::*;
    let run = x.shape.get(axis).copied().unwrap_or(1).max(1);
    if axis + 1 == x.rank() {
        // the usual case: rows are already contiguous
        let mut data = x.data.clone();
        if data.len() >= PAR_ROWS_MIN {
            data.par_chunks_mut(run).for_each(|v| softmax_row(v, log));
        } else {
            data.chunks_mut(run).for_each(|v| softmax_row(v, log));
        }
        return Arr::new(x.shape.clone(), data);
    }
    let (p, _, run) = axes_last(x, &[axis]);
    let mut data = p.data.clone();
    data.chunks_mut(run).for_each(|v| softmax_row(v, log));
    axes_back(Arr::new(p.shape.clone(), data), &x.shape, &[axis])
}

pub fn softmax_backward<T: Real>(y: &Arr<T>, g: &Arr<T>, axis: usize, log: bool) -> Arr<T> {
    use rayon::prelude::*;
    if axis + 1 == y.rank() && y.shape == g.shape {
        let run = y.shape[axis].max(1);
        let mut data = g.data.clone();
        if data.len() >= PAR_ROWS_MIN {
            data.par_chunks_mut(run)
                .zip(y.data.par_chunks(run))
                .for_each(|(gv, yv)| softmax_backward_row(yv, gv, log));
        } else {
            data.chunks_mut(run)
                .zip(y.data.chunks(run))
                .for_each(|(gv, yv)| softmax_backward_row(yv, gv, log));
        }
        return Arr::new(y.shape.clone(), data);
    }
    let (py, _, run) = axes_last(y, &[axis]);
    let (pg, _, _) = axes_last(g, &[axis]);
    let mut data = pg.data.clone();
    data.chunks_mut(run)
        .zip(py.data.chunks(run))
        .for_each(|(gv, yv)| softmax_backward_row(yv, gv, log));
    axes_back(Arr::new(py.shape.clone(), data), &y.shape, &[axis])
}
