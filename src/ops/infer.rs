//! Shape inference on symbolic shapes (the batch size is a symbol: a `Dim` is n or n * batch), and which ops
//! keep samples apart.

use super::arr::norm_axis;
use super::linalg::{tensordot_spec, Einsum};
use super::{axes_of, dims_str, Dim, Op};
use crate::error::{Error, Result};

fn shapes_err(op: &Op, ins: &[Vec<Dim>], why: &str) -> Error {
    let shapes: Vec<String> = ins.iter().map(|s| dims_str(s)).collect();
    Error::Value(format!(
        "{}: {why}; received shapes {}",
        op.name(),
        shapes.join(" and ")
    ))
}

/// numpy broadcasting of symbolic shapes.
fn broadcast(op: &Op, all: &[Vec<Dim>], a: &[Dim], b: &[Dim]) -> Result<Vec<Dim>> {
    let n = a.len().max(b.len());
    let one = Dim::known(1);
    (0..n)
        .map(|i| {
            let x = if i + a.len() >= n {
                a[i + a.len() - n]
            } else {
                one
            };
            let y = if i + b.len() >= n {
                b[i + b.len() - n]
            } else {
                one
            };
            if x == y || y == one {
                Ok(x)
            } else if x == one {
                Ok(y)
            } else {
                Err(shapes_err(
                    op,
                    all,
                    "the shapes cannot be broadcast together",
                ))
            }
        })
        .collect()
}

/// (count of known factors, count of batch factors) of a symbolic shape's size.
fn size(d: &[Dim]) -> (usize, usize) {
    d.iter()
        .fold((1, 0), |(n, b), x| (n * x.n, b + x.batch as usize))
}

fn known(op: &Op, ins: &[Vec<Dim>], d: Dim, what: &str) -> Result<usize> {
    if d.batch {
        return Err(shapes_err(
            op,
            ins,
            &format!("{what} cannot be the batch axis (its size is unknown until the model runs)"),
        ));
    }
    Ok(d.n)
}

fn resolve_shape(shape: &[Option<usize>]) -> Vec<Dim> {
    shape
        .iter()
        .map(|d| d.map(Dim::known).unwrap_or(Dim::BATCH))
        .collect()
}

pub fn infer(op: &Op, ins: &[Vec<Dim>]) -> Result<Vec<Dim>> {
    let name = op.name();
    let x = ins.first().cloned().unwrap_or_default();
    let rank = x.len();
    let one = Dim::known(1);
    Ok(match op {
        Op::Unary(_) | Op::Softmax { axis: _, .. } | Op::FillLike { .. } | Op::Dropout { .. } => {
            if let Op::Softmax { axis, .. } = op {
                norm_axis(&name, *axis, rank)?;
            }
            x
        }
        Op::Binary(_) => broadcast(op, ins, &ins[0], &ins[1])?,
        Op::Where => {
            let s = broadcast(op, ins, &ins[0], &ins[1])?;
            broadcast(op, ins, &s, &ins[2])?
        }
        Op::Reduce { axes, keepdims, .. } => {
            let axes = match axes {
                Some(a) => axes_of(&name, a, rank)?,
                None => (0..rank).collect(),
            };
            (0..rank)
                .filter_map(|a| {
                    if axes.contains(&a) {
                        keepdims.then_some(one)
                    } else {
                        Some(x[a])
                    }
                })
                .collect()
        }
        Op::Arg { axis, keepdims, .. } => match axis {
            None if *keepdims => vec![one; rank],
            None => vec![],
            Some(a) => {
                let a = norm_axis(&name, *a, rank)?;
                (0..rank)
                    .filter_map(|i| {
                        if i == a {
                            keepdims.then_some(one)
                        } else {
                            Some(x[i])
                        }
                    })
                    .collect()
            }
        },
        Op::Cumsum { axis } => match axis {
            None => {
                let (n, b) = size(&x);
                if b > 1 {
                    return Err(shapes_err(op, ins, "cannot flatten two batch axes"));
                }
                vec![Dim { n, batch: b == 1 }]
            }
            Some(a) => {
                norm_axis(&name, *a, rank)?;
                x
            }
        },
        Op::DotProductAttention { .. } => {
            let (q, k, v) = (&ins[0], &ins[1], &ins[2]);
            let ok = q.len() == 4
                && k.len() == 4
                && v.len() == 4
                && q[0] == k[0]
                && k[0] == v[0]
                && q[2] == k[2]
                && k[2] == v[2]
                && q[3] == k[3]
                && k[1] == v[1]
                && ins.get(3).is_none_or(|m| m.len() <= 4);
            if !ok {
                return Err(shapes_err(
                    op,
                    ins,
                    "expected query (B, T, H, D), key (B, S, H, D), value (B, S, H, Dv) and a mask of at most \
                     4 axes",
                ));
            }
            vec![q[0], q[1], q[2], v[3]]
        }
        Op::MatMul => {
            let (a, b) = (&ins[0], &ins[1]);
            if a.is_empty() || b.is_empty() {
                return Err(shapes_err(op, ins, "inputs must have rank >= 1"));
            }
            let a2: Vec<Dim> = if a.len() == 1 {
                vec![one, a[0]]
            } else {
                a.clone()
            };
            let b2: Vec<Dim> = if b.len() == 1 {
                vec![b[0], one]
            } else {
                b.clone()
            };
            if a2[a2.len() - 1] != b2[b2.len() - 2] {
                return Err(shapes_err(
                    op,
                    ins,
                    "the last axis of the first input must equal the second-to-last of the second",
                ));
            }
            let mut out = broadcast(op, ins, &a2[..a2.len() - 2], &b2[..b2.len() - 2])?;
            if a.len() > 1 {
                out.push(a2[a2.len() - 2]);
            }
            if b.len() > 1 {
                out.push(b2[b2.len() - 1]);
            }
            out
        }
        Op::Einsum(e) => einsum_dims(op, e, ins)?,
        Op::Tensordot { axes_a, axes_b } => {
            let e = tensordot_einsum(axes_a, axes_b, ins[0].len(), ins[1].len())?;
            einsum_dims(op, &e, ins)?
        }
        Op::Reshape { shape } => {
            let (n_in, b_in) = size(&x);
            let target: Vec<Option<Dim>> = shape
                .iter()
                .map(|d| match d {
                    None => Some(Dim::BATCH),
                    Some(-1) => None,
                    Some(n) => Some(Dim::known(*n as usize)),
                })
                .collect();
            let fixed: Vec<Dim> = target.iter().flatten().copied().collect();
            let (n_t, b_t) = size(&fixed);
            let err = || {
                Error::Value(format!(
                    "reshape: cannot reshape a tensor of shape {} into shape {}",
                    dims_str(&x),
                    shape_spec(shape)
                ))
            };
            if target.iter().any(Option::is_none) {
                if n_t == 0 || n_in % n_t != 0 || b_in < b_t || b_in - b_t > 1 {
                    return Err(err());
                }
                let inferred = Dim {
                    n: n_in / n_t,
                    batch: b_in - b_t == 1,
                };
                target.iter().map(|d| d.unwrap_or(inferred)).collect()
            } else {
                if n_t != n_in || b_t != b_in {
                    return Err(err());
                }
                fixed
            }
        }
        Op::Transpose { axes } => {
            let perm = perm_of(&name, axes.as_deref(), rank)?;
            perm.iter().map(|&p| x[p]).collect()
        }
        Op::ExpandDims { axes } => {
            let out_rank = rank + axes.len();
            let axes = axes_of(&name, axes, out_rank)?;
            let mut it = x.iter();
            (0..out_rank)
                .map(|a| {
                    if axes.contains(&a) {
                        one
                    } else {
                        *it.next().unwrap_or(&one)
                    }
                })
                .collect()
        }
        Op::Squeeze { axes } => {
            let axes = match axes {
                Some(a) => {
                    let a = axes_of(&name, a, rank)?;
                    for &i in &a {
                        if x[i] != one {
                            return Err(shapes_err(
                                op,
                                ins,
                                &format!("cannot squeeze axis {i}, whose size is not 1"),
                            ));
                        }
                    }
                    a
                }
                None => (0..rank).filter(|&i| x[i] == one).collect(),
            };
            (0..rank)
                .filter(|i| !axes.contains(i))
                .map(|i| x[i])
                .collect()
        }
        Op::BroadcastTo { shape } => {
            let target = resolve_shape(shape);
            let out = broadcast(op, ins, &x, &target)?;
            if out != target {
                return Err(shapes_err(
                    op,
                    ins,
                    &format!("cannot broadcast to shape {}", dims_str(&target)),
                ));
            }
            out
        }
        Op::Concatenate { axis } | Op::Stack { axis } => {
            let stack = matches!(op, Op::Stack { .. });
            for s in ins {
                if s.len() != rank || (stack && *s != x) {
                    return Err(shapes_err(
                        op,
                        ins,
                        "all inputs must have the same shape (but for the concatenation axis)",
                    ));
                }
            }
            if stack {
                let a = norm_axis(&name, *axis, rank + 1)?;
                let mut out = x.clone();
                out.insert(a, Dim::known(ins.len()));
                out
            } else {
                let a = norm_axis(&name, *axis, rank)?;
                for s in ins {
                    for i in 0..rank {
                        if i != a && s[i] != x[i] {
                            return Err(shapes_err(
                                op,
                                ins,
                                &format!("all inputs must have the same shape except on axis {a}"),
                            ));
                        }
                    }
                    if s[a].batch != x[a].batch {
                        return Err(shapes_err(
                            op,
                            ins,
                            "cannot join a batch axis with a fixed one",
                        ));
                    }
                }
                let mut out = x.clone();
                out[a] = Dim {
                    n: ins.iter().map(|s| s[a].n).sum(),
                    batch: x[a].batch,
                };
                out
            }
        }
        Op::Slice { items } => {
            if items.len() > rank {
                return Err(shapes_err(
                    op,
                    ins,
                    "too many indices for the tensor's rank",
                ));
            }
            let mut out = x.clone();
            for (a, &(s, e, st)) in items.iter().enumerate() {
                if x[a].batch {
                    if (s, e, st) != (None, None, 1) {
                        return Err(shapes_err(
                            op,
                            ins,
                            "kerust cannot slice the batch axis of a symbolic tensor (use `:` there)",
                        ));
                    }
                    continue;
                }
                out[a] = Dim::known(super::shape::AxisSlice::resolve(s, e, st, x[a].n)?.count);
            }
            out
        }
        Op::Tile { reps } => {
            let r = rank.max(reps.len());
            let xs: Vec<Dim> = std::iter::repeat_n(one, r - rank)
                .chain(x.iter().copied())
                .collect();
            let rs: Vec<usize> = std::iter::repeat_n(1, r - reps.len())
                .chain(reps.iter().copied())
                .collect();
            xs.iter()
                .zip(&rs)
                .map(|(d, &k)| Dim {
                    n: d.n * k,
                    batch: d.batch,
                })
                .collect()
        }
        Op::Repeat { repeats, axis } => match axis {
            None => {
                let (n, b) = size(&x);
                if b > 1 {
                    return Err(shapes_err(op, ins, "cannot flatten two batch axes"));
                }
                vec![Dim {
                    n: n * repeats,
                    batch: b == 1,
                }]
            }
            Some(a) => {
                let a = norm_axis(&name, *a, rank)?;
                let mut out = x.clone();
                out[a].n *= repeats;
                out
            }
        },
        Op::Take { axis } => {
            let idx = &ins[1];
            match axis {
                None => idx.clone(),
                Some(a) => {
                    let a = norm_axis(&name, *a, rank)?;
                    known(op, ins, x[a], "the axis taken from")?;
                    let mut out = x[..a].to_vec();
                    out.extend_from_slice(idx);
                    out.extend_from_slice(&x[a + 1..]);
                    out
                }
            }
        }
        Op::TakeAlongAxis { axis } => {
            let idx = &ins[1];
            let a = match axis {
                Some(a) => norm_axis(&name, *a, rank)?,
                None => {
                    return Err(shapes_err(
                        op,
                        ins,
                        "`axis=None` is not supported by kerust",
                    ))
                }
            };
            if idx.len() != rank {
                return Err(shapes_err(
                    op,
                    ins,
                    "the indices must have the same rank as the tensor",
                ));
            }
            (0..rank)
                .map(|i| {
                    if i == a || x[i] == one {
                        Ok(idx[i])
                    } else if idx[i] == x[i] || idx[i] == one {
                        Ok(x[i])
                    } else {
                        Err(shapes_err(
                            op,
                            ins,
                            "the shapes do not broadcast outside `axis`",
                        ))
                    }
                })
                .collect::<Result<_>>()?
        }
        Op::Pad { widths, .. } => {
            if widths.len() != rank {
                return Err(shapes_err(
                    op,
                    ins,
                    &format!(
                        "`pad_width` must have one (before, after) pair per axis, received {}",
                        widths.len()
                    ),
                ));
            }
            x.iter()
                .zip(widths)
                .map(|(d, &(b, a))| {
                    if d.batch && b + a > 0 {
                        Err(shapes_err(op, ins, "cannot pad the batch axis"))
                    } else {
                        Ok(Dim {
                            n: d.n + b + a,
                            batch: d.batch,
                        })
                    }
                })
                .collect::<Result<_>>()?
        }
        Op::OneHot { classes, axis } => {
            let a = norm_axis(&name, *axis, rank + 1)?;
            let mut out = x.clone();
            out.insert(a, Dim::known(*classes));
            out
        }
        Op::Constant { shape, .. } => shape.iter().map(|&n| Dim::known(n)).collect(),
        Op::Fill { shape, .. } | Op::Random { shape, .. } => resolve_shape(shape),
        Op::Arange { start, stop, step } => vec![Dim::known(arange_len(*start, *stop, *step))],
        Op::Eye { n, m, .. } => vec![Dim::known(*n), Dim::known(*m)],
    })
}

pub fn arange_len(start: f64, stop: f64, step: f64) -> usize {
    let n = ((stop - start) / step).ceil();
    if n.is_finite() && n > 0.0 {
        (n as usize).min(1 << 31)
    } else {
        0
    }
}

fn shape_spec(shape: &[Option<i64>]) -> String {
    let items: Vec<String> = shape
        .iter()
        .map(|d| d.map(|n| n.to_string()).unwrap_or_else(|| "None".into()))
        .collect();
    format!("({})", items.join(", "))
}

pub fn perm_of(op: &str, axes: Option<&[i64]>, rank: usize) -> Result<Vec<usize>> {
    match axes {
        None => Ok((0..rank).rev().collect()),
        Some(a) => {
            if a.len() != rank {
                return Err(Error::Value(format!(
                    "{op}: `axes` must list each of the {rank} axes once, received {a:?}"
                )));
            }
            let mut perm = Vec::with_capacity(rank);
            for &x in a {
                let x = norm_axis(op, x, rank)?;
                if perm.contains(&x) {
                    return Err(Error::Value(format!(
                        "{op}: `axes` must list each of the {rank} axes once, received {a:?}"
                    )));
                }
                perm.push(x);
            }
            Ok(perm)
        }
    }
}

pub fn tensordot_einsum(axes_a: &[i64], axes_b: &[i64], ra: usize, rb: usize) -> Result<Einsum> {
    let a = axes_a
        .iter()
        .map(|&x| norm_axis("tensordot", x, ra))
        .collect::<Result<Vec<_>>>()?;
    let b = axes_b
        .iter()
        .map(|&x| norm_axis("tensordot", x, rb))
        .collect::<Result<Vec<_>>>()?;
    tensordot_spec(ra, rb, &a, &b)
}

fn einsum_dims(op: &Op, e: &Einsum, ins: &[Vec<Dim>]) -> Result<Vec<Dim>> {
    let shapes: Vec<&[Dim]> = ins.iter().map(|s| s.as_slice()).collect();
    let sizes = e
        .sizes(&shapes, dims_str)
        .map_err(|err| shapes_err(op, ins, &err.to_string()))?;
    Ok(e.output
        .iter()
        .map(|c| {
            sizes
                .iter()
                .find(|(l, _)| l == c)
                .map(|x| x.1)
                .unwrap_or(Dim::known(1))
        })
        .collect())
}

/// Whether the batch sits at axis 0 only (or nowhere).
fn batch_first(d: &[Dim]) -> bool {
    d.iter().skip(1).all(|x| !x.batch)
}

fn has_batch(d: &[Dim]) -> bool {
    d.iter().any(|x| x.batch)
}

/// Whether sample i's outputs depend on sample i's inputs alone, judged from the shapes: every batched tensor
/// has its batch at axis 0 and the op does not reduce, move or mix that axis.
pub fn batch_local(op: &Op, ins: &[Vec<Dim>], out: &[Dim]) -> bool {
    if !ins.iter().any(|s| has_batch(s)) && !has_batch(out) {
        return true;
    }
    if !ins.iter().all(|s| batch_first(s)) || !batch_first(out) {
        return false;
    }
    let out_batched = out.first().is_some_and(|d| d.batch);
    let rank = ins.first().map(Vec::len).unwrap_or(0);
    let not_axis0 = |axis: i64, r: usize| norm_axis("", axis, r).map(|a| a != 0).unwrap_or(false);
    match op {
        // elementwise: every batched operand must line up with the output's axis 0
        Op::Unary(_) | Op::Binary(_) | Op::Where | Op::FillLike { .. } | Op::Dropout { .. } => {
            out_batched && ins.iter().all(|s| !has_batch(s) || s.len() == out.len())
        }
        Op::Reduce { axes, .. } => match axes {
            None => false,
            Some(a) => a.iter().all(|&x| not_axis0(x, rank)),
        },
        Op::Arg { axis, .. } | Op::Cumsum { axis } => axis.is_some_and(|a| not_axis0(a, rank)),
        Op::Softmax { axis, .. } => not_axis0(*axis, rank),
        // each sample's attention reads its own query, key and value (and a mask with a batch axis, or none)
        Op::DotProductAttention { .. } => {
            out_batched && ins.iter().all(|s| has_batch(s) && s.len() == 4)
        }
        Op::MatMul => {
            let (a, b) = (&ins[0], &ins[1]);
            // a batched a's axis 0 is a row or a batch of pairs; a batched b must have it as a batch of pairs
            (!has_batch(a) || a.len() >= 2)
                && (!has_batch(b) || (b.len() >= 3 && (a.len() >= b.len() || !has_batch(a))))
                && out_batched
        }
        Op::Einsum(_) | Op::Tensordot { .. } => {
            let e = match op {
                Op::Einsum(e) => e.clone(),
                Op::Tensordot { axes_a, axes_b } => {
                    match tensordot_einsum(axes_a, axes_b, ins[0].len(), ins[1].len()) {
                        Ok(e) => e,
                        Err(_) => return false,
                    }
                }
                _ => return false,
            };
            let first = e.output.first().copied();
            out_batched
                && ins
                    .iter()
                    .zip(&e.inputs)
                    .all(|(s, letters)| !has_batch(s) || letters.first().copied() == first)
        }
        Op::Reshape { .. }
        | Op::ExpandDims { .. }
        | Op::Squeeze { .. }
        | Op::BroadcastTo { .. } => out_batched && ins[0].first() == out.first(),
        Op::Transpose { .. } | Op::Tile { .. } | Op::Pad { .. } | Op::Slice { .. } => {
            out_batched && ins[0].first() == out.first()
        }
        Op::Concatenate { axis } => not_axis0(*axis, rank) && out_batched,
        Op::Stack { axis } => not_axis0(*axis, rank + 1) && out_batched,
        Op::Repeat { axis, .. } => axis.is_some_and(|a| not_axis0(a, rank)),
        Op::Take { axis } => {
            let (x, idx) = (&ins[0], &ins[1]);
            if !has_batch(x) {
                axis.is_none_or(|a| matches!(norm_axis("", a, rank), Ok(0)))
            } else {
                !has_batch(idx) && axis.is_some_and(|a| not_axis0(a, rank))
            }
        }
        Op::TakeAlongAxis { axis } => axis.is_some_and(|a| not_axis0(a, rank)),
        Op::OneHot { axis, .. } => not_axis0(*axis, rank + 1),
        // random values drawn for a whole batch differ from those drawn slice by slice
        Op::Random { .. } => false,
        Op::Constant { .. } | Op::Fill { .. } | Op::Arange { .. } | Op::Eye { .. } => true,
    }
}
