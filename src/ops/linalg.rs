//! Matrix products: `matmul` with numpy's broadcasting, and `einsum` (which `tensordot` and `dot` lower to)
//! as a permutation, one batched product and a permutation back.

use super::arr::{broadcast_shapes, numel, tuple_str, Arr, Real};
use super::reduce::Reduce;
use crate::error::{Error, Result};
use rayon::prelude::*;
use std::borrow::Cow;

/// Output rows per parallel piece of a product: fixed, so a result never depends on the thread count.
const ROWS: usize = 64;

/// `c (m x n) = op(a) (m x k) * op(b) (k x n)` for one matrix, row-major, `ta`/`tb`: the slice holds the
/// transpose. Single-threaded; parallelism is over pieces of rows or over the batch.
#[allow(clippy::too_many_arguments)]
fn gemm_one<T: Real>(
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    ta: bool,
    b: &[T],
    tb: bool,
    c: &mut [T],
) {
    // a row-major (m, k) matrix, or the transpose of a (k, m) one
    let (a_rs, a_cs) = if ta { (1, m) } else { (k, 1) };
    let (b_rs, b_cs) = if tb { (1, k) } else { (n, 1) };
    gemm_view(m, k, n, a, a_rs, a_cs, b, b_rs, b_cs, c, false);
}

/// `c (m x n, row-major) = A (m x k) * B (k x n)` (or `c += ...` with `accumulate`) where element (i, p) of A is
/// `a[i * a_rs + p * a_cs]` (and likewise for B): any strided view, such as a block of columns of a transposed
/// matrix.
#[allow(clippy::too_many_arguments)]
fn gemm_view<T: Real>(
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    a_rs: usize,
    a_cs: usize,
    b: &[T],
    b_rs: usize,
    b_cs: usize,
    c: &mut [T],
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c[..m * n].iter_mut().for_each(|v| *v = T::zero());
        }
        return;
    }
    let last = |rows: usize, cols: usize, rs: usize, cs: usize| (rows - 1) * rs + (cols - 1) * cs;
    // Internal invariant: the callers size each buffer from the same (m, k, n) and strides.
    assert!(
        a.len() > last(m, k, a_rs, a_cs) && b.len() > last(k, n, b_rs, b_cs) && c.len() >= m * n
    );
    // SAFETY: the assert bounds every offset the strides reach in a, b and c.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            T::one(),
            T::one(),
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Batched product of `bt` pairs: a (bt, m, k) (or its per-matrix transpose), b (bt, k, n); a batch stride of
/// 0 repeats one matrix for every pair.
#[allow(clippy::too_many_arguments)]
pub(crate) fn bmm<T: Real>(
    bt: usize,
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    a_step: usize,
    ta: bool,
    b: &[T],
    b_step: usize,
    tb: bool,
) -> Vec<T> {
    let mut c = vec![T::zero(); bt * m * n];
    if m * n == 0 {
        return c;
    }
    if bt == 1 && !ta && m > ROWS {
        // one big product: pieces of rows of a and c
        c.par_chunks_mut(ROWS * n)
            .enumerate()
            .for_each(|(i, piece)| {
                let rows = piece.len() / n;
                gemm_one(rows, k, n, &a[i * ROWS * k..], false, b, tb, piece)
            });
        return c;
    }
    c.par_chunks_mut(m * n)
        .enumerate()
        .for_each(|(i, ci)| gemm_one(m, k, n, &a[i * a_step..], ta, &b[i * b_step..], tb, ci));
    c
}

/// numpy's matmul shapes: (batch shape, m, k, n, whether a / b were vectors).
struct MatmulGeometry {
    batch: Vec<usize>,
    m: usize,
    k: usize,
    n: usize,
    a_vec: bool,
    b_vec: bool,
}

fn geometry(a: &[usize], b: &[usize]) -> Result<MatmulGeometry> {
    let err = || {
        Error::Value(format!(
            "matmul: inputs with shapes {} and {} are incompatible (the last axis of the first must equal the \
             second-to-last of the second)",
            tuple_str(a),
            tuple_str(b)
        ))
    };
    if a.is_empty() || b.is_empty() {
        return Err(Error::Value(format!(
            "matmul: inputs must have rank >= 1, received shapes {} and {}",
            tuple_str(a),
            tuple_str(b)
        )));
    }
    let a_vec = a.len() == 1;
    let b_vec = b.len() == 1;
    let a2: Vec<usize> = if a_vec { vec![1, a[0]] } else { a.to_vec() };
    let b2: Vec<usize> = if b_vec { vec![b[0], 1] } else { b.to_vec() };
    let (m, k) = (a2[a2.len() - 2], a2[a2.len() - 1]);
    let (k2, n) = (b2[b2.len() - 2], b2[b2.len() - 1]);
    if k != k2 {
        return Err(err());
    }
    let batch =
        broadcast_shapes("matmul", &a2[..a2.len() - 2], &b2[..b2.len() - 2]).map_err(|_| err())?;
    Ok(MatmulGeometry {
        batch,
        m,
        k,
        n,
        a_vec,
        b_vec,
    })
}

impl MatmulGeometry {
    fn out_shape(&self) -> Vec<usize> {
        let mut s = self.batch.clone();
        if !self.a_vec {
            s.push(self.m);
        }
        if !self.b_vec {
            s.push(self.n);
        }
        s
    }
}

/// An operand as (batch..., rows, cols): its batch step (0 when it has no batch of its own, so one matrix
/// serves every pair) and its data, broadcast to the full batch otherwise.
fn operand<'a, T: Real>(
    x: &'a Arr<T>,
    batch: &[usize],
    rows: usize,
    cols: usize,
) -> (usize, Cow<'a, [T]>) {
    if x.data.len() == rows * cols {
        return (0, Cow::Borrowed(&x.data));
    }
    if x.data.len() == numel(batch) * rows * cols {
        return (rows * cols, Cow::Borrowed(&x.data)); // its own batch is the full one
    }
    let full: Vec<usize> = batch.iter().copied().chain([rows, cols]).collect();
    (rows * cols, Cow::Owned(x.broadcast_to(&full).data))
}

pub fn matmul<T: Real>(a: &Arr<T>, b: &Arr<T>) -> Result<Arr<T>> {
    let g = geometry(&a.shape, &b.shape)?;
    let bt = numel(&g.batch);
    let (sa, da) = operand(a, &g.batch, g.m, g.k);
    let (sb, db) = operand(b, &g.batch, g.k, g.n);
    let data = if sb == 0 && (sa != 0 || bt == 1) {
        // every row of a against one b: a single (bt*m, k) x (k, n) product
        bmm(1, bt * g.m, g.k, g.n, &da, 0, false, &db, 0, false)
    } else {
        bmm(bt, g.m, g.k, g.n, &da, sa, false, &db, sb, false)
    };
    Ok(Arr::new(g.out_shape(), data))
}

/// `A^T G` for A (rows, k) and G (rows, n): the gradient of a matrix shared by every row.
fn at_g<T: Real>(rows: usize, k: usize, n: usize, a: &[T], g: &[T]) -> Vec<T> {
    let mut out = vec![T::zero(); k * n];
    at_g_into(rows, k, n, a, g, &mut out, false);
    out
}

/// `out (k, n) = A^T G`, or `out += A^T G` with `accumulate`.
fn at_g_into<T: Real>(
    rows: usize,
    k: usize,
    n: usize,
    a: &[T],
    g: &[T],
    out: &mut [T],
    accumulate: bool,
) {
    // a piece of output rows is a block of columns of A, read in place as a strided view of A^T (one piece when
    // the output is small)
    let piece_rows = if k <= ROWS { k } else { ROWS };
    out[..k * n]
        .par_chunks_mut(piece_rows * n)
        .enumerate()
        .for_each(|(i, piece)| {
            let r = piece.len() / n;
            let a_block = &a[i * piece_rows..];
            gemm_view(r, rows, n, a_block, 1, k, g, n, 1, piece, accumulate)
        });
}

/// The gradient of a 2-D `b` in `matmul(a, b)` added straight into `out` (a variable's gradient buffer, so no
/// separate buffer is made and summed in). False, leaving `out` alone, where `b`'s gradient needs more than one
/// product (a batch of different `a`s broadcast against it).
pub fn matmul_grad_b_into(
    a: &Arr<f32>,
    b_shape: &[usize],
    g: &Arr<f32>,
    out: &mut [f32],
) -> Result<bool> {
    if b_shape.len() != 2 {
        return Ok(false);
    }
    let geo = geometry(&a.shape, b_shape)?;
    let (m, k, n) = (geo.m, geo.k, geo.n);
    let bt = numel(&geo.batch);
    let (sa, da) = operand(a, &geo.batch, m, k);
    if (sa == 0 && bt > 1) || out.len() != k * n || g.data.len() != bt * m * n {
        return Ok(false);
    }
    at_g_into(bt * m, k, n, &da, &g.data, out, true);
    Ok(true)
}

/// The gradients of `matmul` for the inputs `need` asks for.
pub fn matmul_backward<T: Real>(
    a: &Arr<T>,
    b: &Arr<T>,
    g: &Arr<T>,
    need: [bool; 2],
) -> Result<[Option<Arr<T>>; 2]> {
    let geo = geometry(&a.shape, &b.shape)?;
    let (m, k, n) = (geo.m, geo.k, geo.n);
    let bt = numel(&geo.batch);
    let (sa, da) = operand(a, &geo.batch, m, k);
    let (sb, db) = operand(b, &geo.batch, k, n);
    // dA = g b^T: (bt, m, n) x (bt, n, k)
    let ga = need[0].then(|| {
        let data = if sb == 0 {
            bmm(1, bt * m, n, k, &g.data, 0, false, &db, 0, true)
        } else {
            bmm(bt, m, n, k, &g.data, m * n, false, &db, sb, true)
        };
        let full_a: Vec<usize> = geo.batch.iter().copied().chain([m, k]).collect();
        reduce_to_operand(Arr::new(full_a, data), &a.shape, m, k)
    });
    if !need[1] {
        return Ok([ga, None]);
    }
    // dB = a^T g: (bt, k, m) x (bt, m, n); summed over the pairs when one b served them all
    let (gb, gb_shape) = if sb == 0 {
        let rows = bt * m;
        let a_rows: Cow<[T]> = if sa == 0 && bt > 1 {
            Cow::Owned(
                Arr::new(vec![m, k], da.to_vec())
                    .broadcast_to(&[bt, m, k])
                    .data,
            )
        } else {
            da
        };
        (at_g(rows, k, n, &a_rows, &g.data), vec![k, n])
    } else {
        let per = bmm(bt, k, m, n, &da, sa, true, &g.data, m * n, false);
        (per, geo.batch.iter().copied().chain([k, n]).collect())
    };
    Ok([
        ga,
        Some(reduce_to_operand(Arr::new(gb_shape, gb), &b.shape, k, n)),
    ])
}

/// A gradient in the broadcast (batch..., rows, cols) layout summed back to the operand's own shape.
fn reduce_to_operand<T: Real>(g: Arr<T>, shape: &[usize], rows: usize, cols: usize) -> Arr<T> {
    // An operand with leading size-1 axes that served as one shared matrix (a batch of one) gets a gradient
    // without them: give them back (same values in the same order) before summing to the operand's shape.
    let g = if g.shape.len() < shape.len() {
        let padded = vec![1; shape.len() - g.shape.len()]
            .into_iter()
            .chain(g.shape.iter().copied())
            .collect();
        Arr::new(padded, g.data)
    } else {
        g
    };
    if shape.len() < 2 {
        // a vector operand: the padded axis has size 1, so its values are already in order
        return Arr::new(shape.to_vec(), g.sum_to(&[rows, cols]).data);
    }
    g.sum_to(shape)
}

/// A parsed einsum: the letters of each operand and of the output.
#[derive(Clone, Debug, PartialEq)]
pub struct Einsum {
    pub inputs: Vec<Vec<char>>,
    pub output: Vec<char>,
}

impl Einsum {
    pub fn parse(spec: &str) -> Result<Self> {
        let err =
            |why: &str| Error::Value(format!("einsum: cannot use subscripts '{spec}': {why}"));
        let spec_clean: String = spec.chars().filter(|c| !c.is_whitespace()).collect();
        if spec_clean.contains("...") {
            return Err(err("'...' is not supported by kerust; name every axis"));
        }
        let (lhs, out) = match spec_clean.split_once("->") {
            Some((l, o)) => (l.to_string(), Some(o.to_string())),
            None => (spec_clean.clone(), None),
        };
        let inputs: Vec<Vec<char>> = lhs.split(',').map(|s| s.chars().collect()).collect();
        if inputs.is_empty() || inputs.len() > 2 {
            return Err(err("kerust's einsum takes one or two operands"));
        }
        for s in &inputs {
            if s.iter().any(|c| !c.is_ascii_alphabetic()) {
                return Err(err("subscripts must be letters"));
            }
            for (i, c) in s.iter().enumerate() {
                if s[..i].contains(c) {
                    return Err(err(
                        "a letter repeated within one operand (a diagonal) is not supported",
                    ));
                }
            }
        }
        let output: Vec<char> = match out {
            Some(o) => o.chars().collect(),
            None => {
                // implicit output: the letters that appear once, in alphabetical order
                let mut once: Vec<char> = inputs
                    .iter()
                    .flatten()
                    .copied()
                    .filter(|c| inputs.iter().flatten().filter(|d| *d == c).count() == 1)
                    .collect();
                once.sort();
                once
            }
        };
        for (i, c) in output.iter().enumerate() {
            if !inputs.iter().any(|s| s.contains(c)) || output[..i].contains(c) {
                return Err(err(&format!(
                    "output letter '{c}' must appear once, and in an operand"
                )));
            }
        }
        Ok(Einsum { inputs, output })
    }

    /// The size of each letter, checked to agree between operands (given as sizes of any kind `D`).
    pub fn sizes<D: Copy + PartialEq + std::fmt::Debug>(
        &self,
        shapes: &[&[D]],
        show: impl Fn(&[D]) -> String,
    ) -> Result<Vec<(char, D)>> {
        let mut sizes: Vec<(char, D)> = Vec::new();
        if shapes.len() != self.inputs.len() {
            return Err(Error::Value(format!(
                "einsum: the subscripts name {} operand(s), received {}",
                self.inputs.len(),
                shapes.len()
            )));
        }
        for (letters, shape) in self.inputs.iter().zip(shapes) {
            if letters.len() != shape.len() {
                return Err(Error::Value(format!(
                    "einsum: subscripts '{}' do not fit an operand of shape {}",
                    letters.iter().collect::<String>(),
                    show(shape)
                )));
            }
            for (&c, &d) in letters.iter().zip(shape.iter()) {
                match sizes.iter().find(|(l, _)| *l == c) {
                    Some((_, e)) if *e != d => {
                        return Err(Error::Value(format!(
                        "einsum: letter '{c}' has size {e:?} in one operand and {d:?} in another"
                    )))
                    }
                    Some(_) => {}
                    None => sizes.push((c, d)),
                }
            }
        }
        Ok(sizes)
    }
}

/// The concrete plan of a two-operand einsum: which axes are summed alone, then the permutations around one
/// batched product (batch, left, contracted) x (batch, contracted, right).
struct Plan {
    sum_a: Vec<usize>,
    sum_b: Vec<usize>,
    perm_a: Vec<usize>,
    perm_b: Vec<usize>,
    bt: usize,
    l: usize,
    c: usize,
    r: usize,
    /// product layout (batch letters, left, right) to output order
    perm_out: Vec<usize>,
    prod_shape: Vec<usize>,
}

fn size_of(sizes: &[(char, usize)], c: char) -> usize {
    sizes
        .iter()
        .find(|(l, _)| *l == c)
        .map(|x| x.1)
        .unwrap_or(1)
}

impl Einsum {
    fn plan(&self, sa: &[usize], sb: &[usize]) -> Result<Plan> {
        let sizes = self.sizes(&[sa, sb], tuple_str)?;
        let (a, b) = (&self.inputs[0], &self.inputs[1]);
        let out = &self.output;
        let sum_a: Vec<usize> = (0..a.len())
            .filter(|&i| !b.contains(&a[i]) && !out.contains(&a[i]))
            .collect();
        let sum_b: Vec<usize> = (0..b.len())
            .filter(|&i| !a.contains(&b[i]) && !out.contains(&b[i]))
            .collect();
        let a_rest: Vec<char> = (0..a.len())
            .filter(|i| !sum_a.contains(i))
            .map(|i| a[i])
            .collect();
        let b_rest: Vec<char> = (0..b.len())
            .filter(|i| !sum_b.contains(i))
            .map(|i| b[i])
            .collect();
        let batch: Vec<char> = out
            .iter()
            .copied()
            .filter(|c| a_rest.contains(c) && b_rest.contains(c))
            .collect();
        let contract: Vec<char> = a_rest
            .iter()
            .copied()
            .filter(|c| b_rest.contains(c) && !out.contains(c))
            .collect();
        let left: Vec<char> = a_rest
            .iter()
            .copied()
            .filter(|c| !b_rest.contains(c))
            .collect();
        let right: Vec<char> = b_rest
            .iter()
            .copied()
            .filter(|c| !a_rest.contains(c))
            .collect();
        let pos = |s: &[char], c: char| s.iter().position(|&x| x == c).unwrap_or(0);
        let perm_a: Vec<usize> = batch
            .iter()
            .chain(&left)
            .chain(&contract)
            .map(|&c| pos(&a_rest, c))
            .collect();
        let perm_b: Vec<usize> = batch
            .iter()
            .chain(&contract)
            .chain(&right)
            .map(|&c| pos(&b_rest, c))
            .collect();
        let prod: Vec<char> = batch.iter().chain(&left).chain(&right).copied().collect();
        let perm_out: Vec<usize> = out.iter().map(|&c| pos(&prod, c)).collect();
        let total = |s: &[char]| s.iter().map(|&c| size_of(&sizes, c)).product::<usize>();
        Ok(Plan {
            sum_a,
            sum_b,
            perm_a,
            perm_b,
            bt: total(&batch),
            l: total(&left),
            c: total(&contract),
            r: total(&right),
            perm_out,
            prod_shape: prod.iter().map(|&c| size_of(&sizes, c)).collect(),
        })
    }

    pub fn forward<T: Real>(&self, xs: &[&Arr<T>]) -> Result<Arr<T>> {
        if xs.len() == 1 {
            self.sizes(&[&xs[0].shape], tuple_str)?;
            let (sum, perm) = self.single_plan();
            let y = Reduce::Sum.forward(xs[0], &sum, false);
            return Ok(y.permuted(&perm));
        }
        let p = self.plan(&xs[0].shape, &xs[1].shape)?;
        let a = einsum_operand(xs[0], &p.sum_a, &p.perm_a);
        let b = einsum_operand(xs[1], &p.sum_b, &p.perm_b);
        let c = bmm(
            p.bt,
            p.l,
            p.c,
            p.r,
            &a.data,
            p.l * p.c,
            false,
            &b.data,
            p.c * p.r,
            false,
        );
        Ok(Arr::new(p.prod_shape.clone(), c).permuted(&p.perm_out))
    }

    /// A one-operand einsum: the axes summed away, and the permutation of the rest to the output's order.
    fn single_plan(&self) -> (Vec<usize>, Vec<usize>) {
        let a = &self.inputs[0];
        let sum: Vec<usize> = (0..a.len())
            .filter(|&i| !self.output.contains(&a[i]))
            .collect();
        let kept: Vec<char> = (0..a.len())
            .filter(|i| !sum.contains(i))
            .map(|i| a[i])
            .collect();
        let perm = self
            .output
            .iter()
            .map(|c| kept.iter().position(|k| k == c).unwrap_or(0))
            .collect();
        (sum, perm)
    }

    pub fn backward<T: Real>(&self, xs: &[&Arr<T>], g: &Arr<T>) -> Result<Vec<Option<Arr<T>>>> {
        if xs.len() == 1 {
            let (sum, perm) = self.single_plan();
            let gk = g.permuted(&invert(&perm));
            return Ok(vec![Some(spread(gk, &xs[0].shape, &sum))]);
        }
        let p = self.plan(&xs[0].shape, &xs[1].shape)?;
        let a = einsum_operand(xs[0], &p.sum_a, &p.perm_a);
        let b = einsum_operand(xs[1], &p.sum_b, &p.perm_b);
        let gp = g.permuted(&invert(&p.perm_out));
        // d(a) = g b^T, d(b) = a^T g, per batch
        let ga = bmm(
            p.bt,
            p.l,
            p.r,
            p.c,
            &gp.data,
            p.l * p.r,
            false,
            &b.data,
            p.c * p.r,
            true,
        );
        let gb = bmm(
            p.bt,
            p.c,
            p.l,
            p.r,
            &a.data,
            p.l * p.c,
            true,
            &gp.data,
            p.l * p.r,
            false,
        );
        let ga = Arr::new(a.shape.clone(), ga).permuted(&invert(&p.perm_a));
        let gb = Arr::new(b.shape.clone(), gb).permuted(&invert(&p.perm_b));
        Ok(vec![
            Some(spread(ga, &xs[0].shape, &p.sum_a)),
            Some(spread(gb, &xs[1].shape, &p.sum_b)),
        ])
    }
}

/// An einsum operand as the batched product reads it: its summed-away axes reduced, its axes permuted; the
/// operand itself when neither changes anything (no copy).
fn einsum_operand<'a, T: Real>(x: &'a Arr<T>, sum: &[usize], perm: &[usize]) -> Cow<'a, Arr<T>> {
    let identity = perm.iter().enumerate().all(|(i, &p)| i == p);
    match (sum.is_empty(), identity) {
        (true, true) => Cow::Borrowed(x),
        (true, false) => Cow::Owned(x.permuted(perm)),
        _ => Cow::Owned(Reduce::Sum.forward(x, sum, false).permuted(perm)),
    }
}

fn invert(perm: &[usize]) -> Vec<usize> {
    let mut inv = vec![0; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inv[p] = i;
    }
    inv
}

/// The gradient of a sum over `axes`: `g` (without those axes) repeated along them.
fn spread<T: Real>(g: Arr<T>, shape: &[usize], axes: &[usize]) -> Arr<T> {
    if axes.is_empty() {
        return g.reshaped(shape.to_vec());
    }
    let kept: Vec<usize> = (0..shape.len())
        .map(|a| if axes.contains(&a) { 1 } else { shape[a] })
        .collect();
    g.reshaped(kept).broadcast_to(shape)
}

/// `tensordot(a, b, axes)` as einsum subscripts for operands of ranks `ra`, `rb`.
pub fn tensordot_spec(ra: usize, rb: usize, axes_a: &[usize], axes_b: &[usize]) -> Result<Einsum> {
    if axes_a.len() != axes_b.len() || ra + rb > 52 {
        return Err(Error::Value(format!(
            "tensordot: `axes` must name as many axes of each input, received {axes_a:?} and {axes_b:?}"
        )));
    }
    let letters: Vec<char> = ('a'..='z').chain('A'..='Z').collect();
    let a: Vec<char> = (0..ra).map(|i| letters[i]).collect();
    let mut b: Vec<char> = (0..rb).map(|i| letters[ra + i]).collect();
    for (&x, &y) in axes_a.iter().zip(axes_b) {
        b[y] = a[x];
    }
    let output: Vec<char> = (0..ra)
        .filter(|i| !axes_a.contains(i))
        .map(|i| a[i])
        .chain((0..rb).filter(|i| !axes_b.contains(i)).map(|i| b[i]))
        .collect();
    Ok(Einsum {
        inputs: vec![a, b],
        output,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The in-place gradient of a shared 2-D operand adds exactly what `matmul_backward` returns, for a batch of
    /// rows larger than one GEMM piece and for a 3-D left operand.
    #[test]
    fn gradient_into_a_variable_buffer_adds_the_returned_gradient() {
        for a_shape in [vec![5, 70], vec![2, 3, 70]] {
            let rows: usize = a_shape[..a_shape.len() - 1].iter().product();
            let a = Arr::new(
                a_shape.clone(),
                (0..rows * 70)
                    .map(|v| (v % 13) as f32 * 0.1 - 0.6)
                    .collect(),
            );
            let b = Arr::new(
                vec![70, 3],
                (0..210).map(|v| (v % 7) as f32 * 0.2 - 0.5).collect(),
            );
            let g_shape: Vec<usize> = a_shape[..a_shape.len() - 1]
                .iter()
                .copied()
                .chain([3])
                .collect();
            let g = Arr::new(
                g_shape,
                (0..rows * 3).map(|v| (v % 5) as f32 - 2.0).collect(),
            );
            let [_, gb] = matmul_backward(&a, &b, &g, [false, true]).unwrap();
            let gb = gb.unwrap();
            let mut buf = vec![1.0f32; 210];
            assert!(matmul_grad_b_into(&a, &b.shape, &g, &mut buf).unwrap());
            for (x, y) in buf.iter().zip(&gb.data) {
                assert!(
                    (x - 1.0 - y).abs() <= 1e-4 * y.abs().max(1.0),
                    "{x} vs 1 + {y}"
                );
            }
        }
        let a = Arr::new(vec![4, 3], vec![0.0f32; 12]);
        let mut buf = vec![0.0f32; 6];
        let g = Arr::new(vec![2, 4, 2], vec![0.0f32; 16]);
        // a batch of gs against one `a` broadcast to them and a 3-D `b` take the general path
        assert!(!matmul_grad_b_into(&a, &[3, 2], &g, &mut buf).unwrap());
        assert!(!matmul_grad_b_into(&a, &[1, 3, 2], &g, &mut buf).unwrap());
    }

    #[test]
    fn a_one_operand_einsum_sums_permutes_and_spreads_its_gradient_back() {
        let e = Einsum::parse("ijk->kj").unwrap();
        let x = Arr::new(vec![2, 3, 4], (0..24).map(|v| v as f64).collect());
        let y = e.forward(&[&x]).unwrap();
        assert_eq!(y.shape, vec![4, 3]);
        // y[k][j] = sum_i x[i][j][k]: here k = 2, j = 1
        assert_eq!(y.data[2 * 3 + 1], x.data[4 + 2] + x.data[12 + 4 + 2]);
        let g = Arr::new(vec![4, 3], (0..12).map(|v| v as f64).collect());
        let gx = e.backward(&[&x], &g).unwrap()[0].clone().unwrap();
        // d/dx[i][j][k] = g[k][j] for every i
        for i in 0..2 {
            for j in 0..3 {
                for k in 0..4 {
                    assert_eq!(gx.data[i * 12 + j * 4 + k], g.data[k * 3 + j]);
                }
            }
        }
    }

    #[test]
    fn matmul_gradients_of_a_shared_matrix_with_many_rows_match_a_naive_product() {
        // k > ROWS takes the pieces-of-rows path of at_g (strided views of A^T)
        let (rows, k, n) = (5, 3 * ROWS + 7, 4);
        let a: Vec<f64> = (0..rows * k)
            .map(|i| ((i * 7 % 13) as f64 - 6.0) / 7.0)
            .collect();
        let g: Vec<f64> = (0..rows * n)
            .map(|i| ((i * 5 % 11) as f64 - 5.0) / 5.0)
            .collect();
        let got = at_g(rows, k, n, &a, &g);
        for p in 0..k {
            for j in 0..n {
                let want: f64 = (0..rows).map(|r| a[r * k + p] * g[r * n + j]).sum();
                assert!((got[p * n + j] - want).abs() < 1e-12, "({p}, {j})");
            }
        }
    }

    #[test]
    fn a_batch_of_one_operand_gets_its_own_shape_back() {
        // matmul((5, 3), (1, 3, 4)): b served as one shared matrix; its gradient keeps its (1, 3, 4) shape and
        // equals a^T g
        let a = Arr::new(vec![5, 3], (0..15).map(|i| i as f64 * 0.1).collect());
        let b = Arr::new(
            vec![1, 3, 4],
            (0..12).map(|i| 1.0 - i as f64 * 0.05).collect(),
        );
        let g = Arr::new(
            vec![1, 5, 4],
            (0..20).map(|i| (i % 7) as f64 - 3.0).collect(),
        );
        let [_, gb] = matmul_backward(&a, &b, &g, [true, true]).unwrap();
        let gb = gb.unwrap();
        assert_eq!(gb.shape, vec![1, 3, 4]);
        for r in 0..3 {
            for c in 0..4 {
                let want: f64 = (0..5).map(|i| a.data[i * 3 + r] * g.data[i * 4 + c]).sum();
                assert!((gb.data[r * 4 + c] - want).abs() < 1e-12);
            }
        }
    }
}
