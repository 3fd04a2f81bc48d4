//! Element-wise ops: one-input math and activations, two-input arithmetic and comparisons with numpy
//! broadcasting, and `where`. Each kind carries its derivative next to its formula.

use super::arr::{broadcast_shapes, broadcast_strides, for_each_offset, numel, Arr, Real};
use crate::error::{Error, Result};
use rayon::prelude::*;

/// Arrays at least this long are mapped in parallel (fixed pieces, so results do not depend on threads).
const PAR_FROM: usize = 1 << 15;
const PIECE: usize = 1 << 14;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unary {
    Negative,
    Abs,
    Sign,
    Square,
    Sqrt,
    Rsqrt,
    Exp,
    Log,
    Log1p,
    Reciprocal,
    Sin,
    Cos,
    Floor,
    Ceil,
    Round,
    Relu,
    Relu6,
    Sigmoid,
    Tanh,
    Gelu {
        approximate: bool,
    },
    Silu,
    Softplus,
    Softsign,
    Elu {
        alpha: f64,
    },
    Selu,
    LeakyRelu {
        slope: f64,
    },
    HardSigmoid,
    HardSilu,
    Erf,
    Clip {
        lo: f64,
        hi: f64,
    },
    LogicalNot,
    /// `cast` to an integer dtype: truncation toward zero.
    Trunc,
    /// `cast` to bool: 1 where non-zero.
    NonZero,
    /// `stop_gradient`, and `cast` to a float dtype: the values pass, the gradient does not (for the cast
    /// it does: see `Unary::Identity`).
    StopGradient,
    Identity,
}

const SELU_ALPHA: f64 = 1.673_263_242_354_377_3;
const SELU_SCALE: f64 = 1.050_700_987_355_480_5;

/// erf in f64: its Maclaurin series below 2.5, the continued fraction of erfc above (accurate to ~1e-14).
pub fn erf(x: f64) -> f64 {
    let ax = x.abs();
    let r = if ax < 2.5 {
        // Maclaurin series: converges fast for |x| < 2.5 (terms fall below 1e-17 within 60 steps)
        let mut term = ax;
        let mut sum = ax;
        let x2 = ax * ax;
        for k in 1..120 {
            let k = k as f64;
            term *= -x2 / k;
            let add = term / (2.0 * k + 1.0);
            sum += add;
            if add.abs() <= 1e-17 * sum.abs() {
                break;
            }
        }
        sum * std::f64::consts::FRAC_2_SQRT_PI
    } else {
        // continued fraction for erfc (Lentz), accurate for |x| >= 2.5
        let x2 = ax * ax;
        let mut f = ax;
        let mut c = ax;
        let mut d = 0.0;
        let tiny = 1e-300;
        for n in 1..200 {
            let an = n as f64 * 0.5;
            d = ax + an * d;
            d = if d.abs() < tiny { tiny } else { d };
            c = ax + an / c;
            c = if c.abs() < tiny { tiny } else { c };
            d = 1.0 / d;
            let delta = c * d;
            f *= delta;
            if (delta - 1.0).abs() < 1e-16 {
                break;
            }
        }
        1.0 - (-x2).exp() / (f * std::f64::consts::PI.sqrt())
    };
    if x < 0.0 {
        -r
    } else {
        r
    }
}

fn sigmoid<T: Real>(x: T) -> T {
    if x >= T::zero() {
        T::one() / (T::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::one() + e)
    }
}

fn softplus<T: Real>(x: T) -> T {
    // log(1 + e^x) without overflow
    x.max(T::zero()) + (-x.abs()).exp().ln_1p()
}

const GELU_C: f64 = 0.797_884_560_802_865_4; // sqrt(2 / pi)

impl Unary {
    pub fn apply<T: Real>(self, x: T) -> T {
        let c = T::c;
        match self {
            Unary::Negative => -x,
            Unary::Abs => x.abs(),
            Unary::Sign => {
                if x > T::zero() {
                    T::one()
                } else if x < T::zero() {
                    -T::one()
                } else {
                    T::zero()
                }
            }
            Unary::Square => x * x,
            Unary::Sqrt => x.sqrt(),
            Unary::Rsqrt => T::one() / x.sqrt(),
            Unary::Exp => x.exp(),
            Unary::Log => x.ln(),
            Unary::Log1p => x.ln_1p(),
            Unary::Reciprocal => T::one() / x,
            Unary::Sin => x.sin(),
            Unary::Cos => x.cos(),
            Unary::Floor => x.floor(),
            Unary::Ceil => x.ceil(),
            // numpy rounds half to even
            Unary::Round => {
                let r = x.round();
                if (x - x.trunc()).abs() == c(0.5) && (r / c(2.0)).fract() != T::zero() {
                    r - x.signum()
                } else {
                    r
                }
            }
            Unary::Relu => x.max(T::zero()),
            Unary::Relu6 => x.max(T::zero()).min(c(6.0)),
            Unary::Sigmoid => sigmoid(x),
            Unary::Tanh => x.tanh(),
            Unary::Gelu { approximate: true } => {
                c(0.5) * x * (T::one() + (c(GELU_C) * (x + c(0.044715) * x * x * x)).tanh())
            }
            Unary::Gelu { approximate: false } => {
                c(0.5) * x * (T::one() + c(erf(x.f64() / std::f64::consts::SQRT_2)))
            }
            Unary::Silu => x * sigmoid(x),
            Unary::Softplus => softplus(x),
            Unary::Softsign => x / (T::one() + x.abs()),
            Unary::Elu { alpha } => {
                if x > T::zero() {
                    x
                } else {
                    c(alpha) * x.exp_m1()
                }
            }
            Unary::Selu => {
                if x > T::zero() {
                    c(SELU_SCALE) * x
                } else {
                    c(SELU_SCALE * SELU_ALPHA) * x.exp_m1()
                }
            }
            Unary::LeakyRelu { slope } => {
                if x >= T::zero() {
                    x
                } else {
                    c(slope) * x
                }
            }
            Unary::HardSigmoid => ((x + c(3.0)) / c(6.0)).max(T::zero()).min(T::one()),
            Unary::HardSilu => x * ((x + c(3.0)) / c(6.0)).max(T::zero()).min(T::one()),
            Unary::Erf => c(erf(x.f64())),
            Unary::Clip { lo, hi } => x.max(c(lo)).min(c(hi)),
            Unary::LogicalNot => {
                if x == T::zero() {
                    T::one()
                } else {
                    T::zero()
                }
            }
            Unary::Trunc => x.trunc(),
            Unary::NonZero => {
                if x != T::zero() {
                    T::one()
                } else {
                    T::zero()
                }
            }
            Unary::StopGradient | Unary::Identity => x,
        }
    }

    /// dy/dx at input `x` with output `y`; None for ops without a gradient (comparisons, rounding, casts).
    pub fn derivative<T: Real>(self, x: T, y: T) -> Option<T> {
        let c = T::c;
        let one = T::one();
        let zero = T::zero();
        let step = |b: bool| if b { one } else { zero };
        Some(match self {
            Unary::Negative => -one,
            Unary::Abs => Unary::Sign.apply(x),
            Unary::Square => c(2.0) * x,
            Unary::Sqrt => c(0.5) / y,
            Unary::Rsqrt => c(-0.5) * y * y * y,
            Unary::Exp => y,
            Unary::Log => one / x,
            Unary::Log1p => one / (one + x),
            Unary::Reciprocal => -y * y,
            Unary::Sin => x.cos(),
            Unary::Cos => -x.sin(),
            Unary::Relu => step(x > zero),
            Unary::Relu6 => step(x > zero && x < c(6.0)),
            Unary::Sigmoid => y * (one - y),
            Unary::Tanh => one - y * y,
            Unary::Gelu { approximate: true } => {
                let u = c(GELU_C) * (x + c(0.044715) * x * x * x);
                let t = u.tanh();
                let du = c(GELU_C) * (one + c(3.0 * 0.044715) * x * x);
                c(0.5) * (one + t) + c(0.5) * x * (one - t * t) * du
            }
            Unary::Gelu { approximate: false } => {
                let cdf = c(0.5) * (one + c(erf(x.f64() / std::f64::consts::SQRT_2)));
                let pdf = (-(x * x) / c(2.0)).exp() / c((2.0 * std::f64::consts::PI).sqrt());
                cdf + x * pdf
            }
            Unary::Silu => {
                let s = sigmoid(x);
                s * (one + x * (one - s))
            }
            Unary::Softplus => sigmoid(x),
            Unary::Softsign => {
                let d = one + x.abs();
                one / (d * d)
            }
            Unary::Elu { alpha } => {
                if x > zero {
                    one
                } else {
                    y + c(alpha)
                }
            }
            Unary::Selu => {
                if x > zero {
                    c(SELU_SCALE)
                } else {
                    y + c(SELU_SCALE * SELU_ALPHA)
                }
            }
            Unary::LeakyRelu { slope } => {
                if x >= zero {
                    one
                } else {
                    c(slope)
                }
            }
            Unary::HardSigmoid => step(x > c(-3.0) && x < c(3.0)) / c(6.0),
            Unary::HardSilu => {
                if x <= c(-3.0) {
                    zero
                } else if x >= c(3.0) {
                    one
                } else {
                    (c(2.0) * x + c(3.0)) / c(6.0)
                }
            }
            Unary::Erf => c(std::f64::consts::FRAC_2_SQRT_PI) * (-(x * x)).exp(),
            Unary::Clip { lo, hi } => step(x >= c(lo) && x <= c(hi)),
            Unary::Identity => one,
            Unary::Sign
            | Unary::Floor
            | Unary::Ceil
            | Unary::Round
            | Unary::LogicalNot
            | Unary::Trunc
            | Unary::NonZero
            | Unary::StopGradient => return None,
        })
    }

    pub fn forward<T: Real>(self, x: &Arr<T>) -> Arr<T> {
        // the common kinds get a loop of their own (the formula inlined, no match per value)
        let data = match self {
            Unary::Relu => map_vec(&x.data, |v| v.max(T::zero())),
            Unary::Negative => map_vec(&x.data, |v| -v),
            Unary::Square => map_vec(&x.data, |v| v * v),
            Unary::Identity | Unary::StopGradient => x.data.clone(),
            _ => map_vec(&x.data, |v| self.apply(v)),
        };
        Arr::new(x.shape.clone(), data)
    }

    pub fn backward<T: Real>(self, x: &Arr<T>, y: &Arr<T>, g: &Arr<T>) -> Option<Arr<T>> {
        self.derivative(T::zero(), T::zero())?;
        if self == Unary::Relu {
            let data = g
                .data
                .iter()
                .zip(&x.data)
                .map(|(&gv, &xv)| if xv > T::zero() { gv } else { T::zero() })
                .collect();
            return Some(Arr::new(x.shape.clone(), data));
        }
        let mut out = g.data.clone();
        let body = |(i, piece): (usize, &mut [T])| {
            let base = i * PIECE;
            for (j, v) in piece.iter_mut().enumerate() {
                let d = self
                    .derivative(x.data[base + j], y.data[base + j])
                    .unwrap_or_else(T::zero);
                *v = *v * d;
            }
        };
        if out.len() >= PAR_FROM {
            out.par_chunks_mut(PIECE).enumerate().for_each(body);
        } else {
            out.chunks_mut(PIECE).enumerate().for_each(body);
        }
        Some(Arr::new(x.shape.clone(), out))
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Binary {
    Add,
    Subtract,
    Multiply,
    Divide,
    Power,
    Maximum,
    Minimum,
    Mod,
    FloorDivide,
    Equal,
    NotEqual,
    Greater,
    GreaterEqual,
    Less,
    LessEqual,
    LogicalAnd,
    LogicalOr,
    LogicalXor,
}

impl Binary {
    fn apply<T: Real>(self, a: T, b: T) -> T {
        let t = |c: bool| if c { T::one() } else { T::zero() };
        match self {
            Binary::Add => a + b,
            Binary::Subtract => a - b,
            Binary::Multiply => a * b,
            Binary::Divide => a / b,
            Binary::Power => a.powf(b),
            Binary::Maximum => {
                if a >= b || b.is_nan() {
                    a
                } else {
                    b
                }
            }
            Binary::Minimum => {
                if a <= b || b.is_nan() {
                    a
                } else {
                    b
                }
            }
            // numpy's mod: the result has the sign of the divisor
            Binary::Mod => {
                let r = a % b;
                if r != T::zero() && (r < T::zero()) != (b < T::zero()) {
                    r + b
                } else {
                    r
                }
            }
            Binary::FloorDivide => (a / b).floor(),
            Binary::Equal => t(a == b),
            Binary::NotEqual => t(a != b),
            Binary::Greater => t(a > b),
            Binary::GreaterEqual => t(a >= b),
            Binary::Less => t(a < b),
            Binary::LessEqual => t(a <= b),
            Binary::LogicalAnd => t(a != T::zero() && b != T::zero()),
            Binary::LogicalOr => t(a != T::zero() || b != T::zero()),
            Binary::LogicalXor => t((a != T::zero()) != (b != T::zero())),
        }
    }

    /// (d/da, d/db) at (a, b) with output y; None for ops without a gradient.
    fn partials<T: Real>(self, a: T, b: T, y: T) -> Option<(T, T)> {
        let one = T::one();
        let zero = T::zero();
        Some(match self {
            Binary::Add => (one, one),
            Binary::Subtract => (one, -one),
            Binary::Multiply => (b, a),
            Binary::Divide => (one / b, -a / (b * b)),
            Binary::Power => {
                let da = if b == zero { zero } else { b * a.powf(b - one) };
                let db = if a > zero { y * a.ln() } else { zero };
                (da, db)
            }
            // ties go to the first input, as TensorFlow's gradient and kerust's Maximum layer
            Binary::Maximum => {
                if a >= b {
                    (one, zero)
                } else {
                    (zero, one)
                }
            }
            Binary::Minimum => {
                if a <= b {
                    (one, zero)
                } else {
                    (zero, one)
                }
            }
            Binary::Mod => (one, -(a / b).floor()),
            _ => return None,
        })
    }

    pub fn has_gradient(self) -> bool {
        self.partials(1.0f64, 1.0, 1.0).is_some()
    }

    pub fn forward<T: Real>(self, op: &str, a: &Arr<T>, b: &Arr<T>) -> Result<Arr<T>> {
        let shape = broadcast_shapes(op, &a.shape, &b.shape)?;
        let n = numel(&shape);
        // fast paths: same shape, a scalar, or b repeating along a's trailing axes (a bias)
        if a.shape == b.shape {
            let data = zip_map(&a.data, &b.data, |x, y| self.apply(x, y));
            return Ok(Arr::new(shape, data));
        }
        if b.data.len() == 1 && a.shape == shape {
            let s = b.data[0];
            return Ok(Arr::new(shape, map_vec(&a.data, |x| self.apply(x, s))));
        }
        if a.data.len() == 1 && b.shape == shape {
            let s = a.data[0];
            return Ok(Arr::new(shape, map_vec(&b.data, |y| self.apply(s, y))));
        }
        if a.shape == shape && is_suffix(&b.shape, &shape) && !b.data.is_empty() {
            let m = b.data.len();
            let mut out = a.data.clone();
            let body = |row: &mut [T]| {
                row.iter_mut()
                    .zip(&b.data)
                    .for_each(|(v, &y)| *v = self.apply(*v, y))
            };
            if n >= PAR_FROM {
                out.par_chunks_mut(m).for_each(body);
            } else {
                out.chunks_mut(m).for_each(body);
            }
            return Ok(Arr::new(shape, out));
        }
        let sa = broadcast_strides(&a.shape, &shape);
        let sb = broadcast_strides(&b.shape, &shape);
        let mut ia = Vec::with_capacity(n);
        for_each_offset(&shape, &sa, |o| ia.push(o));
        let mut data = Vec::with_capacity(n);
        let mut k = 0;
        for_each_offset(&shape, &sb, |o| {
            data.push(self.apply(a.data[ia[k]], b.data[o]));
            k += 1;
        });
        Ok(Arr::new(shape, data))
    }

    pub fn backward<T: Real>(
        self,
        a: &Arr<T>,
        b: &Arr<T>,
        y: &Arr<T>,
        g: &Arr<T>,
    ) -> [Option<Arr<T>>; 2] {
        if !self.has_gradient() {
            return [None, None];
        }
        if matches!(self, Binary::Add | Binary::Subtract) {
            // the partials are constants: no need to read (or broadcast) the inputs
            let gb = g.sum_to(&b.shape);
            let gb = if self == Binary::Subtract {
                gb.map(|v| -v)
            } else {
                gb
            };
            return [Some(g.sum_to(&a.shape)), Some(gb)];
        }
        let shape = &g.shape;
        let ab = a.broadcast_to(shape);
        let bb = b.broadcast_to(shape);
        let n = g.data.len();
        let mut ga = Vec::with_capacity(n);
        let mut gb = Vec::with_capacity(n);
        for i in 0..n {
            let (da, db) = self
                // only power's partials read the output (the others' outputs are not kept)
                .partials(
                    ab.data[i],
                    bb.data[i],
                    y.data.get(i).copied().unwrap_or_else(T::zero),
                )
                .unwrap_or((T::zero(), T::zero()));
            ga.push(g.data[i] * da);
            gb.push(g.data[i] * db);
        }
        [
            Some(Arr::new(shape.clone(), ga).sum_to(&a.shape)),
            Some(Arr::new(shape.clone(), gb).sum_to(&b.shape)),
        ]
    }
}

fn is_suffix(small: &[usize], big: &[usize]) -> bool {
    small.len() <= big.len() && big[big.len() - small.len()..] == *small
}

fn map_vec<T: Real>(a: &[T], f: impl Fn(T) -> T + Sync) -> Vec<T> {
    if a.len() >= PAR_FROM {
        let mut out = a.to_vec();
        out.par_chunks_mut(PIECE)
            .for_each(|c| c.iter_mut().for_each(|v| *v = f(*v)));
        out
    } else {
        a.iter().map(|&x| f(x)).collect()
    }
}

fn zip_map<T: Real>(a: &[T], b: &[T], f: impl Fn(T, T) -> T + Sync) -> Vec<T> {
    let mut out = a.to_vec();
    if a.len() >= PAR_FROM {
        out.par_chunks_mut(PIECE)
            .zip(b.par_chunks(PIECE))
            .for_each(|(o, y)| o.iter_mut().zip(y).for_each(|(v, &w)| *v = f(*v, w)));
    } else {
        out.iter_mut().zip(b).for_each(|(v, &w)| *v = f(*v, w));
    }
    out
}

/// `where(cond, x, y)` with three-way broadcasting.
pub fn where_forward<T: Real>(c: &Arr<T>, x: &Arr<T>, y: &Arr<T>) -> Result<Arr<T>> {
    let s = broadcast_shapes("where", &c.shape, &x.shape)?;
    let s = broadcast_shapes("where", &s, &y.shape)?;
    let (c, x, y) = (c.broadcast_to(&s), x.broadcast_to(&s), y.broadcast_to(&s));
    let data = (0..c.data.len())
        .map(|i| {
            if c.data[i] != T::zero() {
                x.data[i]
            } else {
                y.data[i]
            }
        })
        .collect();
    Ok(Arr::new(s, data))
}

pub fn where_backward<T: Real>(
    c: &Arr<T>,
    x: &Arr<T>,
    y: &Arr<T>,
    g: &Arr<T>,
) -> Vec<Option<Arr<T>>> {
    let cb = c.broadcast_to(&g.shape);
    let pick = |on: bool| {
        let data = g
            .data
            .iter()
            .zip(&cb.data)
            .map(|(&v, &k)| if (k != T::zero()) == on { v } else { T::zero() })
            .collect();
        Arr::new(g.shape.clone(), data)
    };
    vec![
        None,
        Some(pick(true).sum_to(&x.shape)),
        Some(pick(false).sum_to(&y.shape)),
    ]
}

pub fn check_same_rank(op: &str, a: &[usize], b: &[usize]) -> Result<()> {
    if a.len() != b.len() {
        return Err(Error::Value(format!(
            "{op}: expected inputs of the same rank, received shapes {a:?} and {b:?}"
        )));
    }
    Ok(())
}
