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
}

const SELU_ALPHA: f32 = 1.673_263_2;
const SELU_SCALE: f32 = 1.050_701;
/// Keras 3's `leaky_relu` activation function default slope.
const LEAKY_SLOPE: f32 = 0.2;

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
        }
    }

    /// Whether the derivative needs the pre-activation input (the others use the output alone).
    pub fn needs_input(self) -> bool {
        use Activation::*;
        matches!(
            self,
            Gelu | Softplus | Softsign | Swish | Relu6 | HardSigmoid | LeakyRelu
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
        }
    }
}

// Sigmoid and tanh for the layers' activations, written without branches or library calls so the loops over a
// layer's outputs vectorise (a recurrent cell applies them to every gate of every step: as scalar libm calls they
// took a third of an LSTM's training time). Both are within a few float32 ulps of the exact functions.

/// `e^x` for x in float32's normal range: `2^n * e^r` with `n = round(x / ln 2)`, `r` reduced in two parts
/// (Cody-Waite) and `e^r` from Cephes's degree-6 polynomial on `[-ln2/2, ln2/2]`.
#[inline(always)]
fn exp_fast(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.3, 88.3);
    let n = (x * std::f32::consts::LOG2_E + 0.5).floor();
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = ((((1.987_569_1e-4 * r + 1.398_2e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let er = p * r * r + r + 1.0;
    er * f32::from_bits(((n as i32 + 127) as u32) << 23)
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
