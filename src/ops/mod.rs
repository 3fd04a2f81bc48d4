//! `keras.ops` in the engine: every op is a value of `Op`, parsed from the plain config Python records when
//! user code calls an op (eagerly or while a layer's `call` is traced). Each op has, in one place:
//! - shape inference on symbolic shapes (`infer`), where the batch size is a symbol,
//! - a forward kernel and a derivative rule, generic over f32 (the engine) and f64 (the gradient checks),
//! - whether it keeps samples apart (`batch_local`), which lets inference run in slices of the batch.

pub mod arr;
pub mod attention;
pub mod elementwise;
pub mod linalg;
pub mod reduce;
pub mod shape;

use crate::error::{Error, Result};
use crate::rng::Rng;
use arr::{norm_axis, numel, Arr, Real};
use elementwise::{Binary, Unary};
use linalg::Einsum;
use reduce::Reduce;
use serde_json::Value;
use shape::AxisSlice;

/// A symbolic dimension: `n`, or `n` times the batch size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dim {
    pub n: usize,
    pub batch: bool,
}

impl Dim {
    pub const fn known(n: usize) -> Self {
        Dim { n, batch: false }
    }
    pub const BATCH: Dim = Dim { n: 1, batch: true };
    /// From the wire format: >= 0 a known size, -m: m times the batch.
    pub fn from_i64(v: i64) -> Self {
        if v < 0 {
            Dim {
                n: (-v) as usize,
                batch: true,
            }
        } else {
            Dim::known(v as usize)
        }
    }
    pub fn to_i64(self) -> i64 {
        if self.batch {
            -(self.n as i64)
        } else {
            self.n as i64
        }
    }
    pub fn resolve(self, batch: usize) -> usize {
        if self.batch {
            self.n * batch
        } else {
            self.n
        }
    }
}

/// `(None, 3)` as Keras prints a symbolic shape.
pub fn dims_str(d: &[Dim]) -> String {
    let items: Vec<String> = d
        .iter()
        .map(|x| {
            if x.batch {
                "None".to_string()
            } else {
                x.n.to_string()
            }
        })
        .collect();
    if items.len() == 1 {
        format!("({},)", items[0])
    } else {
        format!("({})", items.join(", "))
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RandomKind {
    Normal,
    Uniform,
    TruncatedNormal,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    Unary(Unary),
    Binary(Binary),
    Where,
    Reduce {
        kind: Reduce,
        axes: Option<Vec<i64>>,
        keepdims: bool,
    },
    Arg {
        max: bool,
        axis: Option<i64>,
        keepdims: bool,
    },
    Cumsum {
        axis: Option<i64>,
    },
    Softmax {
        axis: i64,
        log: bool,
    },
    MatMul,
    /// Keras's `dot_product_attention` (see `attention`): inputs query, key, value and an optional mask.
    DotProductAttention {
        scale: f64,
    },
    Einsum(Einsum),
    Tensordot {
        axes_a: Vec<i64>,
        axes_b: Vec<i64>,
    },
    /// Target entries: Some(n) known (-1: inferred), None: the batch size.
    Reshape {
        shape: Vec<Option<i64>>,
    },
    Transpose {
        axes: Option<Vec<i64>>,
    },
    ExpandDims {
        axes: Vec<i64>,
    },
    Squeeze {
        axes: Option<Vec<i64>>,
    },
    BroadcastTo {
        shape: Vec<Option<usize>>,
    },
    Concatenate {
        axis: i64,
    },
    Stack {
        axis: i64,
    },
    /// (start, stop, step) for the leading axes; later axes are kept whole.
    Slice {
        items: Vec<(Option<i64>, Option<i64>, i64)>,
    },
    Tile {
        reps: Vec<usize>,
    },
    Repeat {
        repeats: usize,
        axis: Option<i64>,
    },
    Take {
        axis: Option<i64>,
    },
    TakeAlongAxis {
        axis: Option<i64>,
    },
    Pad {
        widths: Vec<(usize, usize)>,
        value: f64,
    },
    OneHot {
        classes: usize,
        axis: i64,
    },
    Constant {
        shape: Vec<usize>,
        values: Vec<f64>,
    },
    Fill {
        shape: Vec<Option<usize>>,
        value: f64,
    },
    FillLike {
        value: f64,
    },
    Arange {
        start: f64,
        stop: f64,
        step: f64,
    },
    Eye {
        n: usize,
        m: usize,
        k: i64,
    },
    Random {
        kind: RandomKind,
        shape: Vec<Option<usize>>,
        a: f64,
        b: f64,
    },
    Dropout {
        rate: f64,
    },
}

/// Every op name `Op::from_config` accepts, for the gradient-check table and error messages.
pub const OP_NAMES: &[&str] = &[
    "negative",
    "abs",
    "sign",
    "square",
    "sqrt",
    "rsqrt",
    "exp",
    "log",
    "log1p",
    "reciprocal",
    "sin",
    "cos",
    "floor",
    "ceil",
    "round",
    "relu",
    "relu6",
    "sigmoid",
    "tanh",
    "gelu",
    "silu",
    "softplus",
    "softsign",
    "elu",
    "selu",
    "leaky_relu",
    "hard_sigmoid",
    "hard_silu",
    "erf",
    "clip",
    "logical_not",
    "trunc",
    "nonzero",
    "stop_gradient",
    "identity",
    "add",
    "subtract",
    "multiply",
    "divide",
    "power",
    "maximum",
    "minimum",
    "mod",
    "floor_divide",
    "equal",
    "not_equal",
    "greater",
    "greater_equal",
    "less",
    "less_equal",
    "logical_and",
    "logical_or",
    "logical_xor",
    "where",
    "sum",
    "mean",
    "max",
    "min",
    "prod",
    "var",
    "std",
    "logsumexp",
    "norm1",
    "norm2",
    "norm_inf",
    "argmax",
    "argmin",
    "cumsum",
    "softmax",
    "log_softmax",
    "matmul",
    "dot_product_attention",
    "einsum",
    "tensordot",
    "reshape",
    "transpose",
    "expand_dims",
    "squeeze",
    "broadcast_to",
    "concatenate",
    "stack",
    "slice",
    "tile",
    "repeat",
    "take",
    "take_along_axis",
    "pad",
    "one_hot",
    "constant",
    "fill",
    "fill_like",
    "arange",
    "eye",
    "random_normal",
    "random_uniform",
    "truncated_normal",
    "dropout",
];

fn unary_of(name: &str, cfg: &Value) -> Result<Option<Unary>> {
    let num = |k: &str, d: f64| -> Result<f64> { get_f64(cfg, name, k, Some(d)) };
    Ok(Some(match name {
        "negative" => Unary::Negative,
        "abs" => Unary::Abs,
        "sign" => Unary::Sign,
        "square" => Unary::Square,
        "sqrt" => Unary::Sqrt,
        "rsqrt" => Unary::Rsqrt,
        "exp" => Unary::Exp,
        "log" => Unary::Log,
        "log1p" => Unary::Log1p,
        "reciprocal" => Unary::Reciprocal,
        "sin" => Unary::Sin,
        "cos" => Unary::Cos,
        "floor" => Unary::Floor,
        "ceil" => Unary::Ceil,
        "round" => Unary::Round,
        "relu" => Unary::Relu,
        "relu6" => Unary::Relu6,
        "sigmoid" => Unary::Sigmoid,
        "tanh" => Unary::Tanh,
        "gelu" => Unary::Gelu {
            approximate: cfg
                .get("approximate")
                .and_then(Value::as_bool)
                .unwrap_or(true),
        },
        "silu" => Unary::Silu,
        "softplus" => Unary::Softplus,
        "softsign" => Unary::Softsign,
        "elu" => Unary::Elu {
            alpha: num("alpha", 1.0)?,
        },
        "selu" => Unary::Selu,
        "leaky_relu" => Unary::LeakyRelu {
            slope: num("negative_slope", 0.2)?,
        },
        "hard_sigmoid" => Unary::HardSigmoid,
        "hard_silu" => Unary::HardSilu,
        "erf" => Unary::Erf,
        "clip" => Unary::Clip {
            lo: num("min", f64::NEG_INFINITY)?,
            hi: num("max", f64::INFINITY)?,
        },
        "logical_not" => Unary::LogicalNot,
        "trunc" => Unary::Trunc,
        "nonzero" => Unary::NonZero,
        "stop_gradient" => Unary::StopGradient,
        "identity" => Unary::Identity,
        _ => return Ok(None),
    }))
}

fn binary_of(name: &str) -> Option<Binary> {
    Some(match name {
        "add" => Binary::Add,
        "subtract" => Binary::Subtract,
        "multiply" => Binary::Multiply,
        "divide" => Binary::Divide,
        "power" => Binary::Power,
        "maximum" => Binary::Maximum,
        "minimum" => Binary::Minimum,
        "mod" => Binary::Mod,
        "floor_divide" => Binary::FloorDivide,
        "equal" => Binary::Equal,
        "not_equal" => Binary::NotEqual,
        "greater" => Binary::Greater,
        "greater_equal" => Binary::GreaterEqual,
        "less" => Binary::Less,
        "less_equal" => Binary::LessEqual,
        "logical_and" => Binary::LogicalAnd,
        "logical_or" => Binary::LogicalOr,
        "logical_xor" => Binary::LogicalXor,
        _ => return None,
    })
}

fn reduce_of(name: &str) -> Option<Reduce> {
    Some(match name {
        "sum" => Reduce::Sum,
        "mean" => Reduce::Mean,
        "max" => Reduce::Max,
        "min" => Reduce::Min,
        "prod" => Reduce::Prod,
        "var" => Reduce::Var,
        "std" => Reduce::Std,
        "logsumexp" => Reduce::LogSumExp,
        "norm1" => Reduce::Norm1,
        "norm2" => Reduce::Norm2,
        "norm_inf" => Reduce::NormInf,
        _ => return None,
    })
}

fn bad(op: &str, key: &str, expected: &str, v: &Value) -> Error {
    Error::Value(format!("{op}: `{key}` must be {expected}, received {v}"))
}

fn get_f64(cfg: &Value, op: &str, key: &str, default: Option<f64>) -> Result<f64> {
    match (cfg.get(key), default) {
        (None | Some(Value::Null), Some(d)) => Ok(d),
        (Some(v), _) => v.as_f64().ok_or_else(|| bad(op, key, "a number", v)),
        (None, None) => Err(Error::Value(format!("{op}: `{key}` is required"))),
    }
}

fn get_i64(cfg: &Value, op: &str, key: &str) -> Result<i64> {
    let v = cfg.get(key).unwrap_or(&Value::Null);
    v.as_i64().ok_or_else(|| bad(op, key, "an integer", v))
}

fn get_usize(cfg: &Value, op: &str, key: &str) -> Result<usize> {
    let v = cfg.get(key).unwrap_or(&Value::Null);
    v.as_u64()
        .filter(|&n| n < (1 << 31))
        .map(|n| n as usize)
        .ok_or_else(|| bad(op, key, "a non-negative integer", v))
}

fn opt_i64(cfg: &Value, op: &str, key: &str) -> Result<Option<i64>> {
    match cfg.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| bad(op, key, "an integer or None", v)),
    }
}

fn i64_list(cfg: &Value, op: &str, key: &str) -> Result<Vec<i64>> {
    let v = cfg.get(key).unwrap_or(&Value::Null);
    if let Some(n) = v.as_i64() {
        return Ok(vec![n]);
    }
    v.as_array()
        .ok_or_else(|| bad(op, key, "an integer or a list of integers", v))?
        .iter()
        .map(|x| {
            x.as_i64()
                .ok_or_else(|| bad(op, key, "a list of integers", v))
        })
        .collect()
}

fn opt_i64_list(cfg: &Value, op: &str, key: &str) -> Result<Option<Vec<i64>>> {
    match cfg.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => i64_list(cfg, op, key).map(Some),
    }
}

/// A shape whose entries are sizes or None (the batch size).
fn shape_list(cfg: &Value, op: &str, key: &str) -> Result<Vec<Option<usize>>> {
    let v = cfg.get(key).unwrap_or(&Value::Null);
    v.as_array()
        .ok_or_else(|| bad(op, key, "a list of sizes", v))?
        .iter()
        .map(|x| match x {
            Value::Null => Ok(None),
            _ => x
                .as_u64()
                .filter(|&n| n < (1 << 31))
                .map(|n| Some(n as usize))
                .ok_or_else(|| bad(op, key, "a list of non-negative sizes (or None)", v)),
        })
        .collect()
}

impl Op {
    pub fn from_config(cfg: &Value) -> Result<Op> {
        let name = cfg
            .get("op")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::Value(format!("op config without `op`: {cfg}")))?;
        if let Some(u) = unary_of(name, cfg)? {
            return Ok(Op::Unary(u));
        }
        if let Some(b) = binary_of(name) {
            return Ok(Op::Binary(b));
        }
        if let Some(kind) = reduce_of(name) {
            return Ok(Op::Reduce {
                kind,
                axes: opt_i64_list(cfg, name, "axis")?,
                keepdims: cfg
                    .get("keepdims")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            });
        }
        let op = match name {
            "where" => Op::Where,
            "argmax" | "argmin" => Op::Arg {
                max: name == "argmax",
                axis: opt_i64(cfg, name, "axis")?,
                keepdims: cfg
                    .get("keepdims")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            },
            "cumsum" => Op::Cumsum {
                axis: opt_i64(cfg, name, "axis")?,
            },
            "softmax" | "log_softmax" => Op::Softmax {
                axis: opt_i64(cfg, name, "axis")?.unwrap_or(-1),
                log: name == "log_softmax",
            },
            "matmul" => Op::MatMul,
            "dot_product_attention" => {
                let scale = get_f64(cfg, name, "scale", None)?;
                if !scale.is_finite() {
                    return Err(Error::Value(format!(
                        "dot_product_attention: `scale` must be a finite number, received {scale}"
                    )));
                }
                Op::DotProductAttention { scale }
            }
            "einsum" => Op::Einsum(Einsum::parse(
                cfg.get("subscripts").and_then(Value::as_str).unwrap_or(""),
            )?),
            "tensordot" => Op::Tensordot {
                axes_a: i64_list(cfg, name, "axes_a")?,
                axes_b: i64_list(cfg, name, "axes_b")?,
            },
            "reshape" => {
                let v = cfg.get("shape").unwrap_or(&Value::Null);
                let shape = v
                    .as_array()
                    .ok_or_else(|| bad(name, "shape", "a list", v))?
                    .iter()
                    .map(|x| match x {
                        Value::Null => Ok(None),
                        _ => x
                            .as_i64()
                            .filter(|n| (-1..(1 << 31)).contains(n))
                            .map(Some)
                            .ok_or_else(|| bad(name, "shape", "a list of sizes, -1 or None", v)),
                    })
                    .collect::<Result<Vec<_>>>()?;
                if shape.iter().filter(|&&d| d == Some(-1)).count() > 1 {
                    return Err(Error::Value(format!(
                        "reshape: only one dimension of the new shape can be -1, received {v}"
                    )));
                }
                Op::Reshape { shape }
            }
            "transpose" => Op::Transpose {
                axes: opt_i64_list(cfg, name, "axes")?,
            },
            "expand_dims" => Op::ExpandDims {
                axes: i64_list(cfg, name, "axis")?,
            },
            "squeeze" => Op::Squeeze {
                axes: opt_i64_list(cfg, name, "axis")?,
            },
            "broadcast_to" => Op::BroadcastTo {
                shape: shape_list(cfg, name, "shape")?,
            },
            "concatenate" => Op::Concatenate {
                axis: get_i64(cfg, name, "axis")?,
            },
            "stack" => Op::Stack {
                axis: get_i64(cfg, name, "axis")?,
            },
            "slice" => {
                let v = cfg.get("items").unwrap_or(&Value::Null);
                let items = v
                    .as_array()
                    .ok_or_else(|| bad(name, "items", "a list of [start, stop, step]", v))?
                    .iter()
                    .map(|it| {
                        let part = |i: usize| it.get(i).and_then(Value::as_i64);
                        let step = part(2).unwrap_or(1);
                        if step == 0 {
                            return Err(Error::Value("slice step cannot be zero".into()));
                        }
                        Ok((part(0), part(1), step))
                    })
                    .collect::<Result<Vec<_>>>()?;
                Op::Slice { items }
            }
            "tile" => Op::Tile {
                reps: i64_list(cfg, name, "repeats")?
                    .into_iter()
                    .map(|r| {
                        usize::try_from(r).map_err(|_| {
                            Error::Value(format!(
                                "tile: `repeats` must be non-negative, received {r}"
                            ))
                        })
                    })
                    .collect::<Result<_>>()?,
            },
            "repeat" => Op::Repeat {
                repeats: get_usize(cfg, name, "repeats")?,
                axis: opt_i64(cfg, name, "axis")?,
            },
            "take" => Op::Take {
                axis: opt_i64(cfg, name, "axis")?,
            },
            "take_along_axis" => Op::TakeAlongAxis {
                axis: opt_i64(cfg, name, "axis")?,
            },
            "pad" => {
                let v = cfg.get("widths").unwrap_or(&Value::Null);
                let widths = v
                    .as_array()
                    .ok_or_else(|| bad(name, "pad_width", "a list of (before, after) pairs", v))?
                    .iter()
                    .map(|p| {
                        let w = |i: usize| p.get(i).and_then(Value::as_u64).map(|n| n as usize);
                        match (w(0), w(1)) {
                            (Some(b), Some(a)) if a < (1 << 31) && b < (1 << 31) => Ok((b, a)),
                            _ => Err(bad(name, "pad_width", "pairs of non-negative integers", v)),
                        }
                    })
                    .collect::<Result<Vec<_>>>()?;
                Op::Pad {
                    widths,
                    value: get_f64(cfg, name, "value", Some(0.0))?,
                }
            }
            "one_hot" => Op::OneHot {
                classes: get_usize(cfg, name, "num_classes")?,
                axis: opt_i64(cfg, name, "axis")?.unwrap_or(-1),
            },
            "constant" => {
                let shape: Vec<usize> = shape_list(cfg, name, "shape")?
                    .into_iter()
                    .map(|d| d.ok_or_else(|| Error::Value("constant: shape must be known".into())))
                    .collect::<Result<_>>()?;
                let v = cfg.get("values").unwrap_or(&Value::Null);
                let values: Vec<f64> = v
                    .as_array()
                    .ok_or_else(|| bad(name, "values", "a list of numbers", v))?
                    .iter()
                    .map(|x| match x {
                        Value::String(s) if s == "nan" => Ok(f64::NAN),
                        Value::String(s) if s == "inf" => Ok(f64::INFINITY),
                        Value::String(s) if s == "-inf" => Ok(f64::NEG_INFINITY),
                        _ => x.as_f64().ok_or_else(|| bad(name, "values", "numbers", x)),
                    })
                    .collect::<Result<_>>()?;
                crate::initializers::checked_numel("constant", &shape)?;
                if numel(&shape) != values.len() {
                    return Err(Error::Value(format!(
                        "constant: {} values for shape {shape:?}",
                        values.len()
                    )));
                }
                Op::Constant { shape, values }
            }
            "fill" => Op::Fill {
                shape: shape_list(cfg, name, "shape")?,
                value: get_f64(cfg, name, "value", Some(0.0))?,
            },
            "fill_like" => Op::FillLike {
                value: get_f64(cfg, name, "value", Some(0.0))?,
            },
            "arange" => {
                let step = get_f64(cfg, name, "step", Some(1.0))?;
                if step == 0.0 || !step.is_finite() {
                    return Err(Error::Value(format!(
                        "arange: `step` must be non-zero, received {step}"
                    )));
                }
                Op::Arange {
                    start: get_f64(cfg, name, "start", Some(0.0))?,
                    stop: get_f64(cfg, name, "stop", None)?,
                    step,
                }
            }
            "eye" => Op::Eye {
                n: get_usize(cfg, name, "N")?,
                m: match cfg.get("M") {
                    None | Some(Value::Null) => get_usize(cfg, name, "N")?,
                    _ => get_usize(cfg, name, "M")?,
                },
                k: opt_i64(cfg, name, "k")?.unwrap_or(0),
            },
            "random_normal" | "random_uniform" | "truncated_normal" => {
                let (kind, da, db) = match name {
                    "random_normal" => (RandomKind::Normal, 0.0, 1.0),
                    "random_uniform" => (RandomKind::Uniform, 0.0, 1.0),
                    _ => (RandomKind::TruncatedNormal, 0.0, 1.0),
                };
                Op::Random {
                    kind,
                    shape: shape_list(cfg, name, "shape")?,
                    a: get_f64(cfg, name, "a", Some(da))?,
                    b: get_f64(cfg, name, "b", Some(db))?,
                }
            }
            "dropout" => {
                let rate = get_f64(cfg, name, "rate", None)?;
                if !(0.0..1.0).contains(&rate) {
                    return Err(Error::Value(format!(
                        "dropout: `rate` must be in [0, 1), received {rate}"
                    )));
                }
                Op::Dropout { rate }
            }
            other => {
                return Err(Error::Value(format!(
                    "Unknown op '{other}'. kerust's ops: {}",
                    OP_NAMES.join(", ")
                )))
            }
        };
        Ok(op)
    }

    /// How many inputs the op takes: (least, most).
    pub fn arity(&self) -> (usize, usize) {
        match self {
            Op::Unary(_)
            | Op::Reduce { .. }
            | Op::Arg { .. }
            | Op::Cumsum { .. }
            | Op::Softmax { .. }
            | Op::Reshape { .. }
            | Op::Transpose { .. }
            | Op::ExpandDims { .. }
            | Op::Squeeze { .. }
            | Op::BroadcastTo { .. }
            | Op::Slice { .. }
            | Op::Tile { .. }
            | Op::Repeat { .. }
            | Op::Pad { .. }
            | Op::OneHot { .. }
            | Op::FillLike { .. }
            | Op::Dropout { .. } => (1, 1),
            Op::Binary(_)
            | Op::MatMul
            | Op::Tensordot { .. }
            | Op::Take { .. }
            | Op::TakeAlongAxis { .. } => (2, 2),
            Op::Where => (3, 3),
            Op::DotProductAttention { .. } => (3, 4),
            Op::Einsum(e) => (e.inputs.len(), e.inputs.len()),
            Op::Concatenate { .. } | Op::Stack { .. } => (1, usize::MAX),
            Op::Constant { .. }
            | Op::Fill { .. }
            | Op::Arange { .. }
            | Op::Eye { .. }
            | Op::Random { .. } => (0, 0),
        }
    }

    pub fn name(&self) -> String {
        match self {
            Op::Unary(u) => format!("{u:?}"),
            Op::Binary(b) => format!("{b:?}"),
            Op::Reduce { kind, .. } => format!("{kind:?}"),
            other => {
                let s = format!("{other:?}");
                s.split([' ', '(', '{']).next().unwrap_or("op").to_string()
            }
        }
        .to_lowercase()
    }

    /// The output shape for inputs of symbolic shapes `ins`, or a ValueError naming the op and the shapes.
    pub fn infer(&self, ins: &[Vec<Dim>]) -> Result<Vec<Dim>> {
        let (lo, hi) = self.arity();
        if ins.len() < lo || ins.len() > hi {
            return Err(Error::Value(format!(
                "{}: expected {} input(s), received {}",
                self.name(),
                if lo == hi {
                    lo.to_string()
                } else {
                    format!("at least {lo}")
                },
                ins.len()
            )));
        }
        infer::infer(self, ins)
    }

    /// Whether each sample's outputs depend only on that sample's inputs (so inference may split the batch).
    pub fn batch_local(&self, ins: &[Vec<Dim>], out: &[Dim]) -> bool {
        infer::batch_local(self, ins, out)
    }

    /// Forward on concrete arrays; `batch` resolves None entries of shape arguments. Returns the output and
    /// what the backward needs besides inputs and output (dropout's mask).
    pub fn forward<T: Real>(
        &self,
        xs: &[&Arr<T>],
        batch: usize,
        rng: &mut Rng,
    ) -> Result<(Arr<T>, Option<Arr<T>>)> {
        kernels::forward(self, xs, batch, rng)
    }

    /// dL/d(each input) from dL/d(output) `g`; None for an input without a gradient. `need[i]` false lets an
    /// op skip input i (the products do); `y` may be empty when `uses_output` is false.
    pub fn backward<T: Real>(
        &self,
        xs: &[&Arr<T>],
        y: &Arr<T>,
        saved: Option<&Arr<T>>,
        g: &Arr<T>,
        need: &[bool],
    ) -> Result<Vec<Option<Arr<T>>>> {
        kernels::backward(self, xs, y, saved, g, need)
    }

    /// Whether the backward reads the forward's output (else a training pass need not keep it).
    pub fn uses_output(&self) -> bool {
        matches!(
            self,
            Op::Unary(_) | Op::Softmax { .. } | Op::Reduce { .. } | Op::Binary(Binary::Power)
        )
    }

    /// Whether any input can receive a gradient.
    pub fn differentiable(&self) -> bool {
        match self {
            Op::Unary(u) => u.derivative(0.5f64, 0.5).is_some(),
            Op::Binary(b) => b.has_gradient(),
            Op::Arg { .. }
            | Op::OneHot { .. }
            | Op::Constant { .. }
            | Op::Fill { .. }
            | Op::FillLike { .. }
            | Op::Arange { .. }
            | Op::Eye { .. }
            | Op::Random { .. } => false,
            _ => true,
        }
    }
}

/// Resolve axes against a rank: sorted, distinct, non-negative.
pub fn axes_of(op: &str, axes: &[i64], rank: usize) -> Result<Vec<usize>> {
    let mut out = Vec::with_capacity(axes.len());
    for &a in axes {
        let a = norm_axis(op, a, rank)?;
        if out.contains(&a) {
            return Err(Error::Value(format!("{op}: axis {a} is repeated")));
        }
        out.push(a);
    }
    out.sort_unstable();
    Ok(out)
}

pub fn resolve_shape(shape: &[Option<usize>], batch: usize) -> Vec<usize> {
    shape.iter().map(|d| d.unwrap_or(batch)).collect()
}

/// The resolved slice of every axis of `shape` for `items` (later axes whole).
pub fn slices_of(
    items: &[(Option<i64>, Option<i64>, i64)],
    shape: &[usize],
) -> Result<Vec<AxisSlice>> {
    if items.len() > shape.len() {
        return Err(Error::Value(format!(
            "slice: too many indices ({}) for a tensor of rank {}",
            items.len(),
            shape.len()
        )));
    }
    shape
        .iter()
        .enumerate()
        .map(|(a, &n)| match items.get(a) {
            Some(&(s, e, st)) => AxisSlice::resolve(s, e, st, n),
            None => AxisSlice::resolve(None, None, 1, n),
        })
        .collect()
}

mod infer;
mod kernels;

#[cfg(test)]
mod gradcheck;
