//! Element-wise activations with their derivatives side by side. Softmax works over the last axis.

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    Linear,
    Relu,
    Sigmoid,
    Tanh,
    Softmax,
    Elu,
    Selu,
    Gelu,
    Softplus,
    Softsign,
    Swish,
    Relu6,
    HardSigmoid,
    Exponential,
    LeakyRelu,
    Mish,
    LogSoftmax,
    HardSilu,
    Celu,
    LogSigmoid,
    TanhShrink,
    HardTanh,
    SoftShrink,
    HardShrink,
    SparsePlus,
    SparseSigmoid,
    Squareplus,
    Sparsemax,
}

const SELU_ALPHA: f32 = 1.673_263_2;
const SELU_SCALE: f32 = 1.050_701;
/// Keras 3's `leaky_relu` activation function default slope.
const LEAKY_SLOPE: f32 = 0.2;
/// Keras 3's defaults of the activations that take an argument: `soft_shrink`/`hard_shrink` threshold, `celu`
/// alpha (1, so it does not appear), `squareplus` b.
const SHRINK_THRESHOLD: f32 = 0.5;
const SQUAREPLUS_B: f32 = 4.0;

pub const NAMES: &[&str] = &[
    "linear",
    "relu",
    "sigmoid",
    "tanh",
    "softmax",
    "elu",
    "selu",
    "gelu",
    "softplus",
    "softsign",
    "swish",
    "silu",
    "relu6",
    "hard_sigmoid",
    "exponential",
    "leaky_relu",
    "mish",
    "log_softmax",
    "hard_silu",
    "hard_swish",
    "celu",
    "log_sigmoid",
    "tanh_shrink",
    "hard_tanh",
    "soft_shrink",
    "hard_shrink",
    "sparse_plus",
    "sparse_sigmoid",
    "squareplus",
    "sparsemax",
];

impl Activation {
    pub fn from_name(name: &str) -> Result<Self> {
        use Activation::*;
        Ok(match name {
            "linear" | "" => Linear,
            "relu" => Relu,
            "sigmoid" => Sigmoid,
            "tanh" => Tanh,
            "softmax" => Softmax,
            "elu" => Elu,
            "selu" => Selu,
            "gelu" => Gelu,
            "softplus" => Softplus,
            "softsign" => Softsign,
            "swish" | "silu" => Swish,
            "relu6" => Relu6,
            "hard_sigmoid" => HardSigmoid,
            "exponential" => Exponential,
            "leaky_relu" => LeakyRelu,
            "mish" => Mish,
            "log_softmax" => LogSoftmax,
            "hard_silu" | "hard_swish" => HardSilu,
            "celu" => Celu,
            "log_sigmoid" => LogSigmoid,
            "tanh_shrink" => TanhShrink,
            "hard_tanh" => HardTanh,
            "soft_shrink" => SoftShrink,
            "hard_shrink" => HardShrink,
            "sparse_plus" => SparsePlus,
            "sparse_sigmoid" => SparseSigmoid,
            "squareplus" => Squareplus,
            "sparsemax" => Sparsemax,
            _ => {
                return Err(Error::Value(format!(
                    "Unknown activation: '{name}'. Expected one of: {}",
                    NAMES.join(", ")
                )))
            }
        })
    }

    pub fn name(self) -> &'static str {
        use Activation::*;
        match self {
            Linear => "linear",
            Relu => "relu",
            Sigmoid => "sigmoid",
            Tanh => "tanh",
            Softmax => "softmax",
            Elu => "elu",
            Selu => "selu",
            Gelu => "gelu",
            Softplus => "softplus",
            Softsign => "softsign",
            Swish => "silu",
            Relu6 => "relu6",
            HardSigmoid => "hard_sigmoid",
            Exponential => "exponential",
            LeakyRelu => "leaky_relu",
            Mish => "mish",
            LogSoftmax => "log_softmax",
            HardSilu => "hard_silu",
            Celu => "celu",
            LogSigmoid => "log_sigmoid",
            TanhShrink => "tanh_shrink",
            HardTanh => "hard_tanh",
            SoftShrink => "soft_shrink",
            HardShrink => "hard_shrink",
            SparsePlus => "sparse_plus",
            SparseSigmoid => "sparse_sigmoid",
            Squareplus => "squareplus",
            Sparsemax => "sparsemax",
        }
    }

    /// Whether the activation works over whole rows of the last axis (the others are element-wise).
    pub fn is_row_op(self) -> bool {
        matches!(
            self,
            Activation::Softmax | Activation::LogSoftmax | Activation::Sparsemax
        )
    }

    /// Whether the derivative needs the pre-activation input (the others use the output alone).
    pub fn needs_input(self) -> bool {
        use Activation::*;
        matches!(
            self,
            Gelu | Softplus
                | Softsign
                | Swish
                | Relu6
                | HardSigmoid
                | LeakyRelu
                | Mish
                | HardSilu
                | Celu
                | LogSigmoid
                | TanhShrink
                | HardTanh
                | SoftShrink
                | HardShrink
                | SparsePlus
                | SparseSigmoid
                | Squareplus
                | Sparsemax
        )
    }

    /// Apply in place. `row` is the length of the last axis (used by softmax only).
    pub fn forward(self, data: &mut [f32], row: usize) {
        if self != Activation::Linear {
            forward_kernel(self, data, row)
        }
    }

    /// Turn dL/d(output) in `grad` into dL/d(input), in place. `input` may be empty when `needs_input()` is false.
    pub fn backward(self, input: &[f32], output: &[f32], grad: &mut [f32], row: usize) {
        if self != Activation::Linear {
            backward_kernel(self, input, output, grad, row)
        }
    }
}

/// `grad *= f(v)` element-wise, with `f` inlined (so the loop vectorises).
#[inline(always)]
fn scale_by(grad: &mut [f32], vals: &[f32], f: impl Fn(f32) -> f32) {
    grad.iter_mut().zip(vals).for_each(|(g, &v)| *g *= f(v));
}

crate::simd_fn! {
    fn forward_kernel(act: Activation, data: &mut [f32], row: usize) {
        use Activation::*;
        match act {
            Linear => {}
            Relu => data.iter_mut().for_each(|v| *v = v.max(0.0)),
            Sigmoid => data.iter_mut().for_each(|v| *v = sigmoid_fast(*v)),
            Tanh => data.iter_mut().for_each(|v| *v = tanh_fast(*v)),
            Softmax => {
                if row > 0 {
                    data.chunks_mut(row).for_each(softmax_row)
                }
            }
            Elu => data.iter_mut().for_each(|v| {
                if *v <= 0.0 {
                    *v = v.exp_m1()
                }
            }),
            Selu => data.iter_mut().for_each(|v| {
                *v = if *v > 0.0 {
                    SELU_SCALE * *v
                } else {
                    SELU_SCALE * SELU_ALPHA * v.exp_m1()
                }
            }),
            Gelu => data.iter_mut().for_each(|v| {
                *v = 0.5 * *v * (1.0 + erf(*v as f64 / std::f64::consts::SQRT_2) as f32)
            }),
            Softplus => data.iter_mut().for_each(|v| *v = softplus(*v)),
            Softsign => data.iter_mut().for_each(|v| *v /= 1.0 + v.abs()),
            Swish => data.iter_mut().for_each(|v| *v *= sigmoid_fast(*v)),
            Relu6 => data.iter_mut().for_each(|v| *v = v.clamp(0.0, 6.0)),
            HardSigmoid => data
                .iter_mut()
                .for_each(|v| *v = ((*v + 3.0).clamp(0.0, 6.0)) / 6.0),
            Exponential => data.iter_mut().for_each(|v| *v = v.exp()),
            LeakyRelu => data.iter_mut().for_each(|v| {
                if *v < 0.0 {
                    *v *= LEAKY_SLOPE
                }
            }),
            Mish => data.iter_mut().for_each(|v| *v *= tanh_fast(softplus(*v))),
            LogSoftmax => {
                if row > 0 {
                    data.chunks_mut(row).for_each(log_softmax_row)
                }
            }
            HardSilu => data
                .iter_mut()
                .for_each(|v| *v *= (*v + 3.0).clamp(0.0, 6.0) / 6.0),
            Celu => data.iter_mut().for_each(|v| {
                if *v <= 0.0 {
                    *v = v.exp_m1() // alpha 1; NaN stays NaN (it takes neither branch), as Keras's
                }
            }),
            LogSigmoid => data.iter_mut().for_each(|v| *v = -softplus(-*v)),
            TanhShrink => data.iter_mut().for_each(|v| *v -= tanh_fast(*v)),
            HardTanh => data.iter_mut().for_each(|v| *v = v.clamp(-1.0, 1.0)),
            SoftShrink => data.iter_mut().for_each(|v| {
                *v = if *v > SHRINK_THRESHOLD {
                    *v - SHRINK_THRESHOLD
                } else if *v < -SHRINK_THRESHOLD {
                    *v + SHRINK_THRESHOLD
                } else {
                    0.0
                }
            }),
            HardShrink => data.iter_mut().for_each(|v| {
                // Keras's where(|x| > t, x, 0): NaN gives 0
                *v = if v.abs() > SHRINK_THRESHOLD { *v } else { 0.0 }
            }),
            SparsePlus => data.iter_mut().for_each(|v| {
                *v = if *v <= -1.0 {
                    0.0
                } else if *v >= 1.0 {
                    *v
                } else {
                    0.25 * (*v + 1.0) * (*v + 1.0)
                }
            }),
            SparseSigmoid => data
                .iter_mut()
                .for_each(|v| *v = 0.5 * (*v + 1.0).clamp(0.0, 2.0)),
            Squareplus => data
                .iter_mut()
                .for_each(|v| *v = 0.5 * (*v + (*v * *v + SQUAREPLUS_B).sqrt())),
            Sparsemax => {
                if row > 0 {
                    data.chunks_mut(row).for_each(sparsemax_row)
                }
            }
        }
    }
}

crate::simd_fn! {
    fn backward_kernel(act: Activation, input: &[f32], output: &[f32], grad: &mut [f32], row: usize) {
        use Activation::*;
        match act {
            Linear => {}
            Relu => scale_by(grad, output, |y| if y > 0.0 { 1.0 } else { 0.0 }),
            Sigmoid => scale_by(grad, output, |y| y * (1.0 - y)),
            Tanh => scale_by(grad, output, |y| 1.0 - y * y),
            Softmax => {
                if row > 0 {
                    grad.chunks_mut(row)
                        .zip(output.chunks(row))
                        .for_each(|(g, y)| {
                            let dot: f32 = g.iter().zip(y).map(|(a, b)| a * b).sum();
                            g.iter_mut().zip(y).for_each(|(gi, &yi)| *gi = yi * (*gi - dot));
                        })
                }
            }
            Elu => scale_by(grad, output, |y| if y > 0.0 { 1.0 } else { y + 1.0 }),
            Selu => scale_by(grad, output, |y| {
                if y > 0.0 {
                    SELU_SCALE
                } else {
                    y + SELU_SCALE * SELU_ALPHA
                }
            }),
            Gelu => scale_by(grad, input, |x| {
                let xd = x as f64;
                let cdf = 0.5 * (1.0 + erf(xd / std::f64::consts::SQRT_2));
                let pdf = (-0.5 * xd * xd).exp() / (2.0 * std::f64::consts::PI).sqrt();
                (cdf + xd * pdf) as f32
            }),
            Softplus => scale_by(grad, input, sigmoid),
            Softsign => scale_by(grad, input, |x| 1.0 / ((1.0 + x.abs()) * (1.0 + x.abs()))),
            Swish => scale_by(grad, input, |x| {
                let s = sigmoid(x);
                s + x * s * (1.0 - s)
            }),
            Relu6 => scale_by(grad, input, |x| if x > 0.0 && x < 6.0 { 1.0 } else { 0.0 }),
            HardSigmoid => scale_by(grad, input, |x| {
                if x > -3.0 && x < 3.0 {
                    1.0 / 6.0
                } else {
                    0.0
                }
            }),
            Exponential => scale_by(grad, output, |y| y),
            LeakyRelu => scale_by(grad, input, |x| if x > 0.0 { 1.0 } else { LEAKY_SLOPE }),
            Mish => scale_by(grad, input, |x| {
                let t = tanh_fast(softplus(x));
                t + x * (1.0 - t * t) * sigmoid(x)
            }),
            LogSoftmax => {
                if row > 0 {
                    // y = x - logsumexp(x): dx = g - softmax(x) * sum(g), softmax = exp(y)
                    grad.chunks_mut(row)
                        .zip(output.chunks(row))
                        .for_each(|(g, y)| {
                            let total: f32 = g.iter().sum();
                            g.iter_mut().zip(y).for_each(|(gi, &yi)| *gi -= yi.exp() * total);
                        })
                }
            }
            HardSilu => scale_by(grad, input, |x| {
                if x <= -3.0 {
                    0.0
                } else if x >= 3.0 {
                    1.0
                } else {
                    (2.0 * x + 3.0) / 6.0
                }
            }),
            Celu => scale_by(grad, input, |x| if x > 0.0 { 1.0 } else { x.exp() }),
            LogSigmoid => scale_by(grad, input, |x| sigmoid(-x)),
            TanhShrink => scale_by(grad, input, |x| {
                let t = tanh_fast(x);
                t * t
            }),
            HardTanh => scale_by(grad, input, |x| if x.abs() <= 1.0 { 1.0 } else { 0.0 }),
            SoftShrink | HardShrink => scale_by(grad, input, |x| {
                if x.abs() > SHRINK_THRESHOLD {
                    1.0
                } else {
                    0.0
                }
            }),
            SparsePlus => scale_by(grad, input, |x| {
                if x <= -1.0 {
                    0.0
                } else if x >= 1.0 {
                    1.0
                } else {
                    0.5 * (x + 1.0)
                }
            }),
            SparseSigmoid => scale_by(grad, input, |x| if x.abs() < 1.0 { 0.5 } else { 0.0 }),
            Squareplus => scale_by(grad, input, |x| 0.5 * (1.0 + x / (x * x + SQUAREPLUS_B).sqrt())),
            Sparsemax => {
                if row > 0 {
                    grad.chunks_mut(row)
                        .zip(input.chunks(row).zip(output.chunks(row)))
                        .for_each(|(g, (x, y))| sparsemax_row_backward(x, y, g))
                }
            }
        }
    }
}

/// `x - logsumexp(x)` of one row, in place.
fn log_softmax_row(row: &mut [f32]) {
    let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let s: f32 = row.iter().map(|v| (v - m).exp()).sum();
    let lse = m + s.ln();
    row.iter_mut().for_each(|v| *v -= lse);
}

/// The row's values in decreasing order, ties by index (a value's 1-based position in it is its `k`).
fn sorted_desc(x: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&a, &b| x[b].total_cmp(&x[a]).then(a.cmp(&b)));
    order
}

/// Keras 3.15's sparsemax threshold for one row, and the support size `k`: with `z` sorted in decreasing order
/// and `c` its running sums, the support is where `z_k - (c_k - 1) / k > 0`, and `tau` is (the sum of the `c_k`
/// over the support - 1) / k, as every Keras backend computes it (not the paper's `(c_K - 1) / K`).
fn sparsemax_tau(x: &[f32], order: &[usize]) -> (f32, usize) {
    let (mut running, mut support_sum, mut k) = (0.0f32, 0.0f32, 0usize);
    for (i, &j) in order.iter().enumerate() {
        running += x[j];
        if x[j] - (running - 1.0) / (i + 1) as f32 > 0.0 {
            support_sum += running;
            k += 1;
        }
    }
    ((support_sum - 1.0) / k.max(1) as f32, k)
}

fn sparsemax_row(row: &mut [f32]) {
    let order = sorted_desc(row);
    let (tau, _) = sparsemax_tau(row, &order);
    row.iter_mut().for_each(|v| *v = (*v - tau).max(0.0));
}

/// The derivative of `max(x - tau(x), 0)`: tau's derivative by the value at sorted position `p` (1-based) is the
/// number of support positions whose running sum includes it, `(k - p + 1)+`, over `k` (the support is a prefix
/// of the sorted order wherever the values are distinct).
fn sparsemax_row_backward(x: &[f32], y: &[f32], g: &mut [f32]) {
    let order = sorted_desc(x);
    let (_, k) = sparsemax_tau(x, &order);
    let active: f32 = g
        .iter()
        .zip(y)
        .filter(|(_, &yi)| yi > 0.0)
        .map(|(gi, _)| gi)
        .sum();
    let k_f = k.max(1) as f32;
    for (pos, &j) in order.iter().enumerate() {
        let dtau = (k as f32 - pos as f32).max(0.0) / k_f;
        let own = if y[j] > 0.0 { g[j] } else { 0.0 };
        g[j] = own - dtau * active;
    }
}

// Sigmoid and tanh for the layers' activations, written without branches or library calls so the loops over a
// layer's outputs vectorise (a recurrent cell applies them to every gate of every step: as scalar libm calls they
// took a third of an LSTM's training time). Both are within a few float32 ulps of the exact functions.

/// `e^x` for x in float32's normal range: `2^n * e^r` with `n = round(x / ln 2)`, `r` reduced in two parts
/// (Cody-Waite) and `e^r` from Cephes's degree-6 polynomial on `[-ln2/2, ln2/2]`.
#[inline(always)]
pub fn exp_fast(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // below ln(f32::MIN_POSITIVE) the result is 0, as flushed subnormals (a masked logit weighs exactly 0)
    let tiny = x < -87.3;
    let x = x.clamp(-87.3, 88.3);
    let n = (x * std::f32::consts::LOG2_E + 0.5).floor();
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = ((((1.987_569_1e-4 * r + 1.398_2e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let er = p * r * r + r + 1.0;
    let e = er * f32::from_bits(((n as i32 + 127) as u32) << 23);
    if tiny {
        0.0
    } else {
        e
    }
}

crate::simd_fn! {
    /// `x = e^(x - top)` in place, vectorised (a softmax row after its maximum `top`).
    pub fn exp_shifted(row: &mut [f32], top: f32) {
        row.iter_mut().for_each(|x| *x = exp_fast(*x - top));
    }
}

/// `1 / (1 + e^-x)`, from `e^-|x|` so neither tail loses precision.
#[inline(always)]
pub fn sigmoid_fast(x: f32) -> f32 {
    let e = exp_fast(-x.abs());
    let r = 1.0 / (1.0 + e);
    if x >= 0.0 {
        r
    } else {
        e * r
    }
}

/// tanh as a rational function (odd degree-13 over even degree-6 polynomial, the coefficients Eigen uses),
/// clamped where float32's tanh is within an ulp of ±1.
#[inline(always)]
pub fn tanh_fast(x: f32) -> f32 {
    let x = x.clamp(-7.905_311, 7.905_311);
    let x2 = x * x;
    let mut p = x2 * -2.760_768_5e-16 + 2.000_188e-13;
    p = x2 * p - 8.604_672e-11;
    p = x2 * p + 5.122_297e-8;
    p = x2 * p + 1.485_722_4e-5;
    p = x2 * p + 6.372_619_3e-4;
    p = x2 * p + 4.893_524_6e-3;
    p *= x;
    let mut q = x2 * 1.198_258_4e-6 + 1.185_347_1e-4;
    q = x2 * q + 2.268_434_6e-3;
    q = x2 * q + 4.893_525e-3;
    p / q
}

pub fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

fn softplus(x: f32) -> f32 {
    // log(1 + e^x) without overflow
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

pub fn softmax_row(row: &mut [f32]) {
    let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut s = 0.0f32;
    for v in row.iter_mut() {
        *v = (*v - m).exp();
        s += *v;
    }
    let inv = 1.0 / s;
    row.iter_mut().for_each(|v| *v *= inv);
}

/// erf with |error| < 1.2e-7 (Numerical Recipes' erfc Chebyshev fit), enough for f32 GELU.
pub fn erf(x: f64) -> f64 {
    // coefficients of the fit, lowest power first
    const C: [f64; 10] = [
        -1.265_512_23,
        1.000_023_68,
        0.374_091_96,
        0.096_784_18,
        -0.186_288_06,
        0.278_868_07,
        -1.135_203_98,
        1.488_515_87,
        -0.822_152_23,
        0.170_872_77,
    ];
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = C.iter().rev().fold(0.0, |acc, &c| acc * t + c);
    let y = t * (-z * z + poly).exp();
    if x >= 0.0 {
        1.0 - y
    } else {
        y - 1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_sigmoid_and_tanh_are_within_a_few_ulps() {
        let mut worst = (0.0f64, 0.0f64);
        for i in -200_000i32..=200_000 {
            let x = i as f32 * 1e-4 * (1.0 + (i.abs() as f32) * 1e-5);
            let s = 1.0 / (1.0 + (-(x as f64)).exp());
            let t = (x as f64).tanh();
            let es = ((sigmoid_fast(x) as f64 - s) / s.max(1e-30)).abs();
            let et = (tanh_fast(x) as f64 - t).abs() / t.abs().max(1e-3);
            worst = (worst.0.max(es), worst.1.max(et));
        }
        assert!(
            worst.0 < 6e-7 && worst.1 < 6e-7,
            "relative errors {worst:?}"
        );
        assert_eq!(tanh_fast(0.0), 0.0);
        assert_eq!(sigmoid_fast(0.0), 0.5);
        assert!(sigmoid_fast(-100.0) >= 0.0 && sigmoid_fast(100.0) == 1.0);
        assert!((tanh_fast(50.0) - 1.0).abs() < 3e-7);
        assert!(tanh_fast(f32::NAN).is_nan() && sigmoid_fast(f32::NAN).is_nan());
    }

    /// Finite differences of sum(w * act(x)) against backward, for every activation.
    #[test]
    fn derivatives_match_finite_differences() {
        let xs: Vec<f32> = vec![-2.5, -1.1, -0.3, 0.2, 0.7, 1.9, 3.3, -4.0];
        let w: Vec<f32> = vec![0.3, -0.7, 1.1, 0.5, -0.2, 0.9, -1.3, 0.4];
        for name in NAMES {
            let act = Activation::from_name(name).unwrap();
            let row = 4;
            let mut out = xs.clone();
            act.forward(&mut out, row);
            let mut grad = w.clone();
            act.backward(&xs, &out, &mut grad, row);
            let f = |x: &[f64]| -> f64 {
                let mut v: Vec<f32> = x.iter().map(|&a| a as f32).collect();
                act.forward(&mut v, row);
                v.iter()
                    .zip(&w)
                    .map(|(a, b)| (*a as f64) * (*b as f64))
                    .sum()
            };
            for i in 0..xs.len() {
                let h = 1e-3;
                let mut xp: Vec<f64> = xs.iter().map(|&a| a as f64).collect();
                let mut xm = xp.clone();
                xp[i] += h;
                xm[i] -= h;
                let num = (f(&xp) - f(&xm)) / (2.0 * h);
                assert!(
                    (num - grad[i] as f64).abs() < 2e-3 * (1.0 + num.abs()),
                    "{name} at {}: numeric {num} vs analytic {}",
                    xs[i],
                    grad[i]
                );
            }
        }
    }

    #[test]
    fn known_values() {
        let mut v = vec![1.0f32, 2.0, 3.0];
        Activation::Softmax.forward(&mut v, 3);
        assert!((v[2] - 0.665_240_94).abs() < 1e-6);
        assert!((erf(0.5) - 0.520_499_877_8).abs() < 2e-7);
        let mut g = vec![1.0f32];
        Activation::Gelu.forward(&mut g, 1);
        assert!((g[0] - 0.841_344_7).abs() < 1e-6);
        assert!(Activation::from_name("nope").is_err());
    }
}
