//! Forward and backward of every op on concrete arrays: the dispatch from `Op` to the kernels.

use super::arr::{broadcast_shapes, norm_axis, numel, tuple_str, Arr, Real};
use super::elementwise::{where_backward, where_forward};
use super::infer::{arange_len, perm_of, tensordot_einsum};
use super::reduce;
use super::{axes_of, linalg, resolve_shape, shape, slices_of, Op, RandomKind};
use crate::error::{Error, Result};
use crate::rng::Rng;

fn reduce_axes(op: &str, axes: &Option<Vec<i64>>, rank: usize) -> Result<Vec<usize>> {
    match axes {
        Some(a) => axes_of(op, a, rank),
        None => Ok((0..rank).collect()),
    }
}

/// The target of a reshape on concrete sizes.
fn reshape_target(shape: &[Option<i64>], from: &[usize], batch: usize) -> Result<Vec<usize>> {
    let total = numel(from);
    let known: usize = shape
        .iter()
        .map(|d| match d {
            None => batch,
            Some(-1) => 1,
            Some(n) => *n as usize,
        })
        .product();
    let out: Vec<usize> = shape
        .iter()
        .map(|d| match d {
            None => batch,
            Some(-1) => total.checked_div(known).unwrap_or(0),
            Some(n) => *n as usize,
        })
        .collect();
    if numel(&out) != total {
        return Err(Error::Value(format!(
            "reshape: cannot reshape a tensor of shape {} into shape {}",
            tuple_str(from),
            tuple_str(&out)
        )));
    }
    Ok(out)
}

fn expanded_shape(op: &str, from: &[usize], axes: &[i64]) -> Result<Vec<usize>> {
    let rank = from.len() + axes.len();
    let axes = axes_of(op, axes, rank)?;
    let mut it = from.iter();
    Ok((0..rank)
        .map(|a| {
            if axes.contains(&a) {
                1
            } else {
                *it.next().unwrap_or(&1)
            }
        })
        .collect())
}

fn squeezed_shape(op: &str, from: &[usize], axes: &Option<Vec<i64>>) -> Result<Vec<usize>> {
    let axes = match axes {
        Some(a) => axes_of(op, a, from.len())?,
        None => (0..from.len()).filter(|&i| from[i] == 1).collect(),
    };
    for &a in &axes {
        if from[a] != 1 {
            return Err(Error::Value(format!(
                "squeeze: cannot squeeze axis {a} of a tensor of shape {}",
                tuple_str(from)
            )));
        }
    }
    Ok((0..from.len())
        .filter(|i| !axes.contains(i))
        .map(|i| from[i])
        .collect())
}

fn random_fill<T: Real>(
    kind: RandomKind,
    shape: Vec<usize>,
    a: f64,
    b: f64,
    rng: &mut Rng,
) -> Arr<T> {
    let n = numel(&shape);
    let data = (0..n)
        .map(|_| {
            T::c(match kind {
                RandomKind::Normal => a + b * rng.normal() as f64,
                RandomKind::TruncatedNormal => a + b * rng.truncated_normal() as f64,
                RandomKind::Uniform => a + (b - a) * rng.uniform_f64(),
            })
        })
        .collect();
    Arr::new(shape, data)
}

pub fn forward<T: Real>(
    op: &Op,
    xs: &[&Arr<T>],
    batch: usize,
    rng: &mut Rng,
) -> Result<(Arr<T>, Option<Arr<T>>)> {
    let name = op.name();
    let x = xs.first().copied();
    let rank = x.map(|a| a.rank()).unwrap_or(0);
    let need = |i: usize| -> Result<&Arr<T>> {
        xs.get(i).copied().ok_or_else(|| {
            Error::Value(format!(
                "{name}: expected {} input(s), received {}",
                i + 1,
                xs.len()
            ))
        })
    };
    let y = match op {
        Op::Unary(u) => u.forward(need(0)?),
        Op::Binary(b) => b.forward(&name, need(0)?, need(1)?)?,
        Op::Where => where_forward(need(0)?, need(1)?, need(2)?)?,
        Op::Reduce {
            kind,
            axes,
            keepdims,
        } => kind.forward(need(0)?, &reduce_axes(&name, axes, rank)?, *keepdims),
        Op::Arg {
            max,
            axis,
            keepdims,
        } => {
            let a = axis.map(|a| norm_axis(&name, a, rank)).transpose()?;
            reduce::arg(need(0)?, a, *keepdims, *max)
        }
        Op::Cumsum { axis } => {
            let x = need(0)?;
            match axis {
                None => reduce::cumsum(&x.clone().reshaped(vec![x.data.len()]), 0, false),
                Some(a) => reduce::cumsum(x, norm_axis(&name, *a, rank)?, false),
            }
        }
        Op::Softmax { axis, log } => {
            reduce::softmax(need(0)?, norm_axis(&name, *axis, rank)?, *log)
        }
        Op::MatMul => linalg::matmul(need(0)?, need(1)?)?,
        Op::DotProductAttention { scale } => {
            let (y, probs) = super::attention::forward(
                need(0)?,
                need(1)?,
                need(2)?,
                xs.get(3).copied(),
                *scale,
            )?;
            return Ok((y, Some(probs)));
        }
        Op::Einsum(e) => e.forward(xs)?,
        Op::Tensordot { axes_a, axes_b } => {
            let (a, b) = (need(0)?, need(1)?);
            tensordot_einsum(axes_a, axes_b, a.rank(), b.rank())?.forward(&[a, b])?
        }
        Op::Reshape { shape } => {
            let x = need(0)?;
            x.clone().reshaped(reshape_target(shape, &x.shape, batch)?)
        }
        Op::Transpose { axes } => need(0)?.permuted(&perm_of(&name, axes.as_deref(), rank)?),
        Op::ExpandDims { axes } => {
            let x = need(0)?;
            x.clone().reshaped(expanded_shape(&name, &x.shape, axes)?)
        }
        Op::Squeeze { axes } => {
            let x = need(0)?;
            x.clone().reshaped(squeezed_shape(&name, &x.shape, axes)?)
        }
        Op::BroadcastTo { shape } => {
            let x = need(0)?;
            let target = resolve_shape(shape, batch);
            let s = broadcast_shapes(&name, &x.shape, &target)?;
            if s != target {
                return Err(Error::Value(format!(
                    "broadcast_to: cannot broadcast shape {} to {}",
                    tuple_str(&x.shape),
                    tuple_str(&target)
                )));
            }
            x.broadcast_to(&target)
        }
        Op::Concatenate { axis } => {
            check_joinable(&name, xs, false)?;
            shape::concat(xs, norm_axis(&name, *axis, rank)?)
        }
        Op::Stack { axis } => {
            check_joinable(&name, xs, true)?;
            let a = norm_axis(&name, *axis, rank + 1)?;
            let ex: Vec<Arr<T>> = xs
                .iter()
                .map(|x| {
                    let mut s = x.shape.clone();
                    s.insert(a, 1);
                    (*x).clone().reshaped(s)
                })
                .collect();
            let refs: Vec<&Arr<T>> = ex.iter().collect();
            shape::concat(&refs, a)
        }
        Op::Slice { items } => {
            let x = need(0)?;
            shape::slice(x, &slices_of(items, &x.shape)?)
        }
        Op::Tile { reps } => shape::tile(need(0)?, reps),
        Op::Repeat { repeats, axis } => {
            let x = need(0)?;
            match axis {
                None => shape::repeat(&x.clone().reshaped(vec![x.data.len()]), *repeats, 0),
                Some(a) => shape::repeat(x, *repeats, norm_axis(&name, *a, rank)?),
            }
        }
        Op::Take { axis } => {
            let (x, idx) = (need(0)?, need(1)?);
            match axis {
                None => shape::take(&x.clone().reshaped(vec![x.data.len()]), idx, 0)?,
                Some(a) => shape::take(x, idx, norm_axis(&name, *a, rank)?)?,
            }
        }
        Op::TakeAlongAxis { axis } => {
            let (x, idx) = (need(0)?, need(1)?);
            let a = along_axis(&name, *axis, x, idx)?;
            shape::take_along_axis(x, idx, a)?.0
        }
        Op::Pad { widths, value } => {
            let x = need(0)?;
            if widths.len() != rank {
                return Err(Error::Value(format!(
                    "pad: `pad_width` needs one (before, after) pair per axis of shape {}",
                    tuple_str(&x.shape)
                )));
            }
            shape::pad(x, widths, T::c(*value))
        }
        Op::OneHot { classes, axis } => {
            shape::one_hot(need(0)?, *classes, norm_axis(&name, *axis, rank + 1)?)
        }
        Op::Constant { shape, values } => {
            Arr::new(shape.clone(), values.iter().map(|&v| T::c(v)).collect())
        }
        Op::Fill { shape, value } => Arr::full(resolve_shape(shape, batch), T::c(*value)),
        Op::FillLike { value } => Arr::full(need(0)?.shape.clone(), T::c(*value)),
        Op::Arange { start, stop, step } => {
            let n = arange_len(*start, *stop, *step);
            Arr::new(
                vec![n],
                (0..n).map(|i| T::c(start + i as f64 * step)).collect(),
            )
        }
        Op::Eye { n, m, k } => {
            let mut a = Arr::full(vec![*n, *m], T::zero());
            for i in 0..*n {
                let j = i as i64 + k;
                if j >= 0 && (j as usize) < *m {
                    a.data[i * m + j as usize] = T::one();
                }
            }
            a
        }
        Op::Random { kind, shape, a, b } => {
            random_fill(*kind, resolve_shape(shape, batch), *a, *b, rng)
        }
        Op::Dropout { rate } => {
            let x = need(0)?;
            let keep = T::c(1.0 / (1.0 - rate));
            let mask: Vec<T> = (0..x.data.len())
                .map(|_| {
                    if (rng.uniform() as f64) < *rate {
                        T::zero()
                    } else {
                        keep
                    }
                })
                .collect();
            let mask = Arr::new(x.shape.clone(), mask);
            let y = Arr::new(
                x.shape.clone(),
                x.data
                    .iter()
                    .zip(&mask.data)
                    .map(|(&v, &m)| v * m)
                    .collect(),
            );
            return Ok((y, Some(mask)));
        }
    };
    Ok((y, None))
}

fn along_axis<T: Real>(name: &str, axis: Option<i64>, x: &Arr<T>, idx: &Arr<T>) -> Result<usize> {
    let a = axis
        .ok_or_else(|| Error::Value(format!("{name}: `axis=None` is not supported by kerust")))?;
    if idx.rank() != x.rank() {
        return Err(Error::Value(format!(
            "{name}: the indices must have the rank of the tensor; received shapes {} and {}",
            tuple_str(&x.shape),
            tuple_str(&idx.shape)
        )));
    }
    norm_axis(name, a, x.rank())
}

fn check_joinable<T: Real>(name: &str, xs: &[&Arr<T>], same: bool) -> Result<()> {
    let first = xs
        .first()
        .ok_or_else(|| Error::Value(format!("{name}: needs at least one tensor")))?;
    for x in xs {
        if x.rank() != first.rank() || (same && x.shape != first.shape) {
            let shapes: Vec<String> = xs.iter().map(|x| tuple_str(&x.shape)).collect();
            return Err(Error::Value(format!(
                "{name}: the tensors must have {}; received shapes {}",
                if same { "one shape" } else { "one rank" },
                shapes.join(", ")
            )));
        }
    }
    Ok(())
}

pub fn backward<T: Real>(
    op: &Op,
    xs: &[&Arr<T>],
    y: &Arr<T>,
    saved: Option<&Arr<T>>,
    g: &Arr<T>,
    need: &[bool],
) -> Result<Vec<Option<Arr<T>>>> {
    let name = op.name();
    let rank = xs.first().map(|a| a.rank()).unwrap_or(0);
    let x = || {
        xs.first().copied().ok_or_else(|| {
            Error::Runtime(format!(
                "kerust internal error: {name} backward without inputs"
            ))
        })
    };
    let one = |a: Arr<T>| Ok(vec![Some(a)]);
    match op {
        Op::Unary(u) => Ok(vec![u.backward(x()?, y, g)]),
        Op::Binary(b) => Ok(b.backward(xs[0], xs[1], y, g).into_iter().collect()),
        Op::Where => Ok(where_backward(xs[0], xs[1], xs[2], g)),
        Op::Reduce { kind, axes, .. } => {
            let axes = reduce_axes(&name, axes, rank)?;
            // the output without keepdims has the reduced axes removed; the run layout is the same
            one(kind.backward(x()?, y, g, &axes))
        }
        Op::Cumsum { axis } => {
            let x = x()?;
            match axis {
                None => one(
                    reduce::cumsum(&g.clone().reshaped(vec![g.data.len()]), 0, true)
                        .reshaped(x.shape.clone()),
                ),
                Some(a) => one(reduce::cumsum(g, norm_axis(&name, *a, rank)?, true)),
            }
        }
        Op::Softmax { axis, log } => one(reduce::softmax_backward(
            y,
            g,
            norm_axis(&name, *axis, rank)?,
            *log,
        )),
        Op::DotProductAttention { scale } => {
            let probs = saved.ok_or_else(|| {
                Error::Runtime(
                    "kerust internal error: attention backward without its probabilities".into(),
                )
            })?;
            super::attention::backward(xs[0], xs[1], xs[2], xs.get(3).copied(), probs, g, *scale)
        }
        Op::MatMul => {
            let wanted = |i: usize| need.get(i).copied().unwrap_or(true);
            let [ga, gb] = linalg::matmul_backward(xs[0], xs[1], g, [wanted(0), wanted(1)])?;
            Ok(vec![ga, gb])
        }
        Op::Einsum(e) => e.backward(xs, g),
        Op::Tensordot { axes_a, axes_b } => {
            tensordot_einsum(axes_a, axes_b, xs[0].rank(), xs[1].rank())?.backward(xs, g)
        }
        Op::Reshape { .. } | Op::ExpandDims { .. } | Op::Squeeze { .. } => {
            one(g.clone().reshaped(x()?.shape.clone()))
        }
        Op::Transpose { axes } => {
            let perm = perm_of(&name, axes.as_deref(), rank)?;
            let mut inv = vec![0; perm.len()];
            for (i, &p) in perm.iter().enumerate() {
                inv[p] = i;
            }
            one(g.permuted(&inv))
        }
        Op::BroadcastTo { .. } => one(g.sum_to(&x()?.shape)),
        Op::Concatenate { axis } | Op::Stack { axis } => {
            let stack = matches!(op, Op::Stack { .. });
            let a = norm_axis(&name, *axis, if stack { rank + 1 } else { rank })?;
            let shapes: Vec<Vec<usize>> = xs
                .iter()
                .map(|x| {
                    let mut s = x.shape.clone();
                    if stack {
                        s.insert(a, 1);
                    }
                    s
                })
                .collect();
            let refs: Vec<&[usize]> = shapes.iter().map(|s| s.as_slice()).collect();
            Ok(shape::concat_backward(&refs, g, a)
                .into_iter()
                .zip(xs)
                .map(|(p, x)| Some(p.reshaped(x.shape.clone())))
                .collect())
        }
        Op::Slice { items } => {
            let x = x()?;
            one(shape::slice_backward(
                &x.shape,
                &slices_of(items, &x.shape)?,
                g,
            ))
        }
        Op::Tile { reps } => one(shape::tile_backward(&x()?.shape, reps, g)),
        Op::Repeat { repeats, axis } => {
            let x = x()?;
            match axis {
                None => one(shape::repeat_backward(&[x.data.len()], *repeats, 0, g)
                    .reshaped(x.shape.clone())),
                Some(a) => one(shape::repeat_backward(
                    &x.shape,
                    *repeats,
                    norm_axis(&name, *a, rank)?,
                    g,
                )),
            }
        }
        Op::Take { axis } => {
            let (x, idx) = (xs[0], xs[1]);
            let gx = match axis {
                None => shape::take_backward(&[x.data.len()], idx, 0, g)?.reshaped(x.shape.clone()),
                Some(a) => shape::take_backward(&x.shape, idx, norm_axis(&name, *a, rank)?, g)?,
            };
            Ok(vec![Some(gx), None])
        }
        Op::TakeAlongAxis { axis } => {
            let (x, idx) = (xs[0], xs[1]);
            let a = along_axis(&name, *axis, x, idx)?;
            let (_, sources) = shape::take_along_axis(x, idx, a)?;
            Ok(vec![
                Some(shape::gather_backward(&x.shape, &sources, g)),
                None,
            ])
        }
        Op::Pad { widths, .. } => one(shape::pad_backward(&x()?.shape, widths, g)),
        Op::Dropout { .. } => {
            let mask = saved.ok_or_else(|| {
                Error::Runtime("kerust internal error: dropout backward without its mask".into())
            })?;
            one(Arr::new(
                g.shape.clone(),
                g.data
                    .iter()
                    .zip(&mask.data)
                    .map(|(&v, &m)| v * m)
                    .collect(),
            ))
        }
        // the ops `Op::differentiable` names as without a gradient (the f64 table checks that every other op
        // returns one)
        _ => Ok(xs.iter().map(|_| None).collect()),
    }
}
