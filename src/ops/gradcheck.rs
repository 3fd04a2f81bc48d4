//! Every op's derivative against central finite differences in f64. The table must name every op in
//! `OP_NAMES`: a new op cannot be added without a case here (`every_op_has_a_case`). Test code only: the
//! module is declared under `#[cfg(test)]` in `ops/mod.rs`.

#[cfg(test)]
use super::arr::Arr;
use super::{Dim, Op, OP_NAMES};
use crate::rng::Rng;
use serde_json::{json, Value};

#[derive(Clone, Copy)]
enum In {
    /// Normal values, kept away from 0 (kinks of relu, abs, ...).
    Rand(&'static [usize]),
    /// Positive values in [0.5, 2.5] (sqrt, log, power's base).
    Pos(&'static [usize]),
    /// Whole numbers in 0..n, as floats (indices).
    Idx(&'static [usize], usize),
    /// 0/1 values (conditions).
    Mask(&'static [usize]),
}

fn case(name: &str) -> Option<(Value, Vec<In>)> {
    use In::*;
    let c = |v: Value| {
        let mut v = v;
        v["op"] = json!(name);
        v
    };
    let none = json!({});
    const S: &[usize] = &[2, 3, 4];
    Some(match name {
        "sqrt" | "rsqrt" | "log" | "log1p" | "reciprocal" => (c(none), vec![Pos(S)]),
        "negative" | "abs" | "sign" | "square" | "exp" | "sin" | "cos" | "floor" | "ceil"
        | "round" | "relu" | "relu6" | "sigmoid" | "tanh" | "silu" | "softplus" | "softsign"
        | "selu" | "hard_sigmoid" | "hard_silu" | "erf" | "logical_not" | "trunc" | "nonzero"
        | "stop_gradient" | "identity" => (c(none), vec![Rand(S)]),
        "gelu" => (c(json!({"approximate": false})), vec![Rand(S)]),
        "elu" => (c(json!({"alpha": 0.7})), vec![Rand(S)]),
        "leaky_relu" => (c(json!({"negative_slope": 0.3})), vec![Rand(S)]),
        "clip" => (c(json!({"min": -0.5, "max": 0.7})), vec![Rand(S)]),
        "add" | "subtract" | "multiply" | "maximum" | "minimum" | "equal" | "not_equal"
        | "greater" | "greater_equal" | "less" | "less_equal" | "logical_and" | "logical_or"
        | "logical_xor" => (c(none), vec![Rand(&[2, 3, 4]), Rand(&[3, 1])]),
        "divide" | "mod" | "floor_divide" => (c(none), vec![Rand(&[2, 3, 4]), Pos(&[4])]),
        "power" => (c(none), vec![Pos(&[2, 3]), Rand(&[3])]),
        "where" => (c(none), vec![Mask(&[2, 3]), Rand(&[2, 3]), Rand(&[3])]),
        "sum" | "mean" | "max" | "min" | "prod" | "var" | "std" | "logsumexp" | "norm1"
        | "norm2" | "norm_inf" => (c(json!({"axis": [0, 2], "keepdims": false})), vec![Rand(S)]),
        "argmax" | "argmin" => (c(json!({"axis": 1})), vec![Rand(S)]),
        "cumsum" => (c(json!({"axis": 1})), vec![Rand(S)]),
        "softmax" | "log_softmax" => (c(json!({"axis": 1})), vec![Rand(S)]),
        "matmul" => (c(none), vec![Rand(&[2, 3, 4]), Rand(&[4, 5])]),
        "dot_product_attention" => (
            c(json!({"scale": 0.5})),
            vec![
                Rand(&[2, 3, 2, 4]),
                Rand(&[2, 5, 2, 4]),
                Rand(&[2, 5, 2, 3]),
                Mask(&[2, 1, 3, 5]),
            ],
        ),
        "einsum" => (
            c(json!({"subscripts": "bqhd,bkhd->bhqk"})),
            vec![Rand(&[2, 3, 2, 4]), Rand(&[2, 5, 2, 4])],
        ),
        "tensordot" => (
            c(json!({"axes_a": [1, 2], "axes_b": [0, 1]})),
            vec![Rand(S), Rand(&[3, 4, 2])],
        ),
        "reshape" => (c(json!({"shape": [-1, 6]})), vec![Rand(S)]),
        "transpose" => (c(json!({"axes": [2, 0, 1]})), vec![Rand(S)]),
        "expand_dims" => (c(json!({"axis": [1]})), vec![Rand(S)]),
        "squeeze" => (c(json!({"axis": [1]})), vec![Rand(&[2, 1, 3])]),
        "broadcast_to" => (c(json!({"shape": [2, 3, 4]})), vec![Rand(&[3, 1])]),
        "concatenate" => (c(json!({"axis": 1})), vec![Rand(&[2, 3]), Rand(&[2, 2])]),
        "stack" => (c(json!({"axis": 1})), vec![Rand(&[2, 3]), Rand(&[2, 3])]),
        "slice" => (
            c(json!({"items": [[null, null, 1], [2, 0, -1]]})),
            vec![Rand(S)],
        ),
        "tile" => (c(json!({"repeats": [2, 1, 2]})), vec![Rand(S)]),
        "repeat" => (c(json!({"repeats": 2, "axis": 1})), vec![Rand(S)]),
        "take" => (c(json!({"axis": 0})), vec![Rand(&[5, 3]), Idx(&[2, 4], 5)]),
        "take_along_axis" => (c(json!({"axis": 1})), vec![Rand(S), Idx(&[2, 2, 4], 3)]),
        "pad" => (
            c(json!({"widths": [[1, 0], [0, 2], [1, 1]], "value": 0.5})),
            vec![Rand(S)],
        ),
        "one_hot" => (c(json!({"num_classes": 4})), vec![Idx(&[2, 3], 4)]),
        "constant" => (c(json!({"shape": [2], "values": [1.0, 2.0]})), vec![]),
        "fill" => (c(json!({"shape": [2, null], "value": 3.0})), vec![]),
        "fill_like" => (c(json!({"value": 1.0})), vec![Rand(S)]),
        "arange" => (c(json!({"start": 1, "stop": 7, "step": 2})), vec![]),
        "eye" => (c(json!({"N": 3, "M": 4, "k": 1})), vec![]),
        "random_normal" | "random_uniform" | "truncated_normal" => {
            (c(json!({"shape": [3, 2]})), vec![])
        }
        "dropout" => (c(json!({"rate": 0.5})), vec![Rand(S)]),
        _ => return None,
    })
}

fn make(input: In, seed: u64) -> Arr<f64> {
    let mut r = Rng::new(seed);
    let (shape, data): (&[usize], Vec<f64>) = match input {
        In::Rand(s) => (
            s,
            (0..s.iter().product())
                .map(|_| {
                    let v = r.normal() as f64;
                    if v.abs() < 0.1 {
                        v + 0.3f64.copysign(v)
                    } else {
                        v
                    }
                })
                .collect(),
        ),
        In::Pos(s) => (
            s,
            (0..s.iter().product())
                .map(|_| 0.5 + 2.0 * r.uniform_f64())
                .collect(),
        ),
        In::Idx(s, n) => (
            s,
            (0..s.iter().product()).map(|_| r.below(n) as f64).collect(),
        ),
        In::Mask(s) => (
            s,
            (0..s.iter().product()).map(|_| r.below(2) as f64).collect(),
        ),
    };
    Arr::new(shape.to_vec(), data)
}

/// sum(w * op(xs)) with a fixed weight per output value; the same random stream each call (dropout).
fn objective(op: &Op, xs: &[Arr<f64>], w: &[f64]) -> f64 {
    let refs: Vec<&Arr<f64>> = xs.iter().collect();
    let (y, _) = op.forward(&refs, 2, &mut Rng::new(9)).unwrap();
    y.data.iter().zip(w).map(|(a, b)| a * b).sum()
}

#[test]
fn every_op_has_a_case() {
    let missing: Vec<&str> = OP_NAMES
        .iter()
        .copied()
        .filter(|n| case(n).is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "ops without a gradient-check case: {missing:?}"
    );
}

#[test]
fn every_derivative_matches_finite_differences_in_f64() {
    for name in OP_NAMES {
        let (cfg, inputs) = case(name).unwrap();
        let op = Op::from_config(&cfg).unwrap_or_else(|e| panic!("{name}: {e}"));
        let xs: Vec<Arr<f64>> = inputs
            .iter()
            .enumerate()
            .map(|(i, &s)| make(s, 11 + i as u64))
            .collect();
        let refs: Vec<&Arr<f64>> = xs.iter().collect();
        // shape inference agrees with the kernel (batch-free shapes, except fill's None which is batch 2)
        let dims: Vec<Vec<Dim>> = xs
            .iter()
            .map(|x| x.shape.iter().map(|&n| Dim::known(n)).collect())
            .collect();
        let (y, saved) = op
            .forward(&refs, 2, &mut Rng::new(9))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let inferred: Vec<usize> = op
            .infer(&dims)
            .unwrap()
            .iter()
            .map(|d| d.resolve(2))
            .collect();
        assert_eq!(inferred, y.shape, "{name}: inferred shape");
        // the f32 kernels give the f64 values to float32 precision
        let xs32: Vec<Arr<f32>> = xs
            .iter()
            .map(|x| Arr::new(x.shape.clone(), x.data.iter().map(|&v| v as f32).collect()))
            .collect();
        let refs32: Vec<&Arr<f32>> = xs32.iter().collect();
        let (y32, _) = op.forward(&refs32, 2, &mut Rng::new(9)).unwrap();
        for (a, b) in y32.data.iter().zip(&y.data) {
            assert!(
                (*a as f64 - b).abs() <= 1e-4 * b.abs().max(1.0),
                "{name}: f32 {a} vs f64 {b}"
            );
        }
        let w: Vec<f64> = (0..y.data.len())
            .map(|i| ((i * 37 % 17) as f64 - 8.0) / 8.0)
            .collect();
        let g = Arr::new(y.shape.clone(), w.clone());
        // as in the engine, the backward sees the output only if the op says it reads it
        let kept = if op.uses_output() {
            y.clone()
        } else {
            Arr::default()
        };
        let grads = op
            .backward(&refs, &kept, saved.as_ref(), &g, &vec![true; xs.len()])
            .unwrap();
        assert_eq!(grads.len(), xs.len(), "{name}: one gradient slot per input");
        if !op.differentiable() {
            assert!(
                grads.iter().all(Option::is_none),
                "{name}: no gradient expected"
            );
            continue;
        }
        let mut checked = 0;
        for (i, gi) in grads.iter().enumerate() {
            let Some(gi) = gi else { continue };
            assert_eq!(gi.shape, xs[i].shape, "{name}: gradient shape of input {i}");
            let h = 1e-6;
            for j in 0..xs[i].data.len() {
                let mut xp = xs.clone();
                xp[i].data[j] += h;
                let mut xm = xs.clone();
                xm[i].data[j] -= h;
                let num = (objective(&op, &xp, &w) - objective(&op, &xm, &w)) / (2.0 * h);
                let ana = gi.data[j];
                assert!(
                    (num - ana).abs() <= 1e-5 * num.abs().max(1.0),
                    "{name}: d/dx{i}[{j}] numeric {num} analytic {ana}"
                );
                checked += 1;
            }
        }
        assert!(
            checked > 0,
            "{name}: differentiable but no input gradient was checked"
        );
    }
}
