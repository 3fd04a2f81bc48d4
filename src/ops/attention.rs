//! `dot_product_attention(query, key, value, mask)`, as Keras's `ops.dot_product_attention` computes it:
//! `softmax(where(mask, q k^T * scale, -inf-ish)) v` per batch and head, for `query (B, T, H, D)`, `key (B, S, H,
//! D)`, `value (B, S, H, Dv)` and a bool mask broadcastable to `(B, H, T, S)`; output `(B, T, H, Dv)`.
//!
//! Each head is one batched product (the heads moved next to the batch first, a copy of whole rows), so no
//! score passes through a general permutation. The probabilities are kept for the backward.

use super::arr::{Arr, Real};
use super::linalg::bmm;
use crate::error::{Error, Result};
use rayon::prelude::*;

/// Rows of this many values or more are shared among threads (each row alone: no thread-count dependence).
const PAR_MIN: usize = 1 << 15;

/// The masked logits' value: far below any real logit, so a row with some kept entry gives the masked ones
/// zero weight, and a row masked everywhere weighs every entry alike (as Keras's fused path does).
fn masked_logit<T: Real>() -> T {
    T::c(-1e30)
}

/// Sizes (batch, query steps, heads, depth, key steps, value depth), checking the operands agree.
fn sizes<T: Real>(q: &Arr<T>, k: &Arr<T>, v: &Arr<T>) -> Result<[usize; 6]> {
    let ok = q.rank() == 4
        && k.rank() == 4
        && v.rank() == 4
        && q.shape[0] == k.shape[0]
        && k.shape[0] == v.shape[0]
        && q.shape[2] == k.shape[2]
        && k.shape[2] == v.shape[2]
        && q.shape[3] == k.shape[3]
        && k.shape[1] == v.shape[1];
    if !ok {
        return Err(Error::Value(format!(
            "dot_product_attention: expected query (B, T, H, D), key (B, S, H, D) and value (B, S, H, Dv); \
             received {:?}, {:?} and {:?}",
            q.shape, k.shape, v.shape
        )));
    }
    Ok([
        q.shape[0], q.shape[1], q.shape[2], q.shape[3], k.shape[1], v.shape[3],
    ])
}

/// The mask as 0/1 per (batch, head, query step, key step), or None.
fn full_mask<T: Real>(
    mask: Option<&Arr<T>>,
    b: usize,
    h: usize,
    t: usize,
    s: usize,
) -> Result<Option<Arr<T>>> {
    let Some(m) = mask else { return Ok(None) };
    let target = [b, h, t, s];
    let fits = m.rank() <= 4
        && m.shape
            .iter()
            .rev()
            .zip(target.iter().rev())
            .all(|(&a, &want)| a == 1 || a == want);
    if !fits {
        return Err(Error::Value(format!(
            "dot_product_attention: the mask of shape {:?} does not broadcast to (batch, heads, query steps, \
             key steps) = {target:?}",
            m.shape
        )));
    }
    Ok(Some(m.broadcast_to(&target)))
}

/// `(B, L, H, E)` to `(B, H, L, E)` and back (the same swap of axes 1 and 2).
fn heads_first<T: Real>(x: &Arr<T>) -> Arr<T> {
    x.permuted(&[0, 2, 1, 3])
}

/// Forward: (output, the attention probabilities `(B, H, T, S)`).
pub fn forward<T: Real>(
    q: &Arr<T>,
    k: &Arr<T>,
    v: &Arr<T>,
    mask: Option<&Arr<T>>,
    scale: f64,
) -> Result<(Arr<T>, Arr<T>)> {
    let [b, t, h, d, s, dv] = sizes(q, k, v)?;
    let mask = full_mask(mask, b, h, t, s)?;
    let (qh, kh, vh) = (heads_first(q), heads_first(k), heads_first(v));
    let bh = b * h;
    let mut p = bmm(bh, t, d, s, &qh.data, t * d, false, &kh.data, s * d, true);
    let sc = T::c(scale);
    let row = |(i, r): (usize, &mut [T])| {
        let keep = mask.as_ref().map(|m| &m.data[i * s..(i + 1) * s]);
        match keep {
            Some(m) => r.iter_mut().zip(m).for_each(|(x, &k)| {
                *x = if k != T::zero() {
                    *x * sc
                } else {
                    masked_logit()
                }
            }),
            None => r.iter_mut().for_each(|x| *x = *x * sc),
        }
        let top = r.iter().fold(T::neg_infinity(), |a, &x| a.max(x));
        let sum = T::exp_shifted_sum(r, top);
        let inv = T::one() / sum;
        r.iter_mut().for_each(|x| *x = *x * inv);
    };
    if p.len() >= PAR_MIN {
        p.par_chunks_mut(s).enumerate().for_each(row);
    } else {
        p.chunks_mut(s).enumerate().for_each(row);
    }
    let o = bmm(bh, t, s, dv, &p, t * s, false, &vh.data, s * dv, false);
    let out = heads_first(&Arr::new(vec![b, h, t, dv], o));
    Ok((out, Arr::new(vec![b, h, t, s], p)))
}

/// Backward from dL/d(output) `g`: the gradients of query, key and value (and None for the mask).
pub fn backward<T: Real>(
    q: &Arr<T>,
    k: &Arr<T>,
    v: &Arr<T>,
    mask: Option<&Arr<T>>,
    probs: &Arr<T>,
    g: &Arr<T>,
    scale: f64,
) -> Result<Vec<Option<Arr<T>>>> {
    let [b, t, h, d, s, dv] = sizes(q, k, v)?;
    let mask = full_mask(mask, b, h, t, s)?;
    let (qh, kh, vh, gh) = (
        heads_first(q),
        heads_first(k),
        heads_first(v),
        heads_first(g),
    );
    let bh = b * h;
    let p = &probs.data;
    // dV = P^T dO; dP = dO V^T
    let dvh = bmm(bh, s, t, dv, p, t * s, true, &gh.data, t * dv, false);
    let mut ds = bmm(
        bh,
        t,
        dv,
        s,
        &gh.data,
        t * dv,
        false,
        &vh.data,
        s * dv,
        true,
    );
    // through the softmax, then the mask (a masked logit is a constant) and the scale
    let sc = T::c(scale);
    let row = |(i, r): (usize, &mut [T])| {
        let pr = &p[i * s..(i + 1) * s];
        let dot = r.iter().zip(pr).fold(T::zero(), |a, (&x, &y)| a + x * y);
        let keep = mask.as_ref().map(|m| &m.data[i * s..(i + 1) * s]);
        for (j, x) in r.iter_mut().enumerate() {
            *x = if keep.is_none_or(|m| m[j] != T::zero()) {
                pr[j] * (*x - dot) * sc
            } else {
                T::zero()
            };
        }
    };
    if ds.len() >= PAR_MIN {
        ds.par_chunks_mut(s).enumerate().for_each(row);
    } else {
        ds.chunks_mut(s).enumerate().for_each(row);
    }
    // dQ = dS K, dK = dS^T Q
    let dqh = bmm(bh, t, s, d, &ds, t * s, false, &kh.data, s * d, false);
    let dkh = bmm(bh, s, t, d, &ds, t * s, true, &qh.data, t * d, false);
    let back = |x: Vec<T>, l: usize, e: usize| heads_first(&Arr::new(vec![b, h, l, e], x));
    let mut out = vec![
        Some(back(dqh, t, d)),
        Some(back(dkh, s, d)),
        Some(back(dvh, s, dv)),
    ];
    if mask.is_some() {
        out.push(None);
    }
    Ok(out)
}
