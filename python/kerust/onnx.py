"""Export a built `Sequential` model to an ONNX file that ONNX Runtime (or any ONNX backend) can run.

`kerust.onnx.export(model, "model.onnx")` writes a graph that takes the model's channels-last (NHWC) input,
named `"input"`, with a dynamic batch axis, and returns what `model.predict` returns, as float32, named
`"output"`. Every layer class and every activation name kerust has is translated; anything else raises
`ValueError` naming the layer.

The `onnx` package is an optional dependency: `import kerust` (and `import kerust.onnx`) never loads it; it is
imported on the first export, which raises `ImportError` with the install command when it is missing.

How the graph is laid out:

* Weights are read once through `model.get_weights()` (Keras layouts) and stored as initializers named after
  their layer (`conv2d/kernel`, ...). Node and tensor names start with the layer's name too.
* Conv2D and the pooling layers are ONNX's NCHW ops. The exporter keeps track of the current layout and inserts a
  `Transpose` only where it changes: a run of Conv2D, pooling, BatchNormalization and activation layers stays
  NCHW, and the tensor is transposed back to NHWC before a layer that depends on the layout (Flatten, Reshape,
  Dense, ...) and at the output, so `Flatten` flattens in Keras's (height, width, channels) order.
* `padding="same"` is written as explicit pads computed as TensorFlow does (the odd extra row/column at the end);
  average pooling excludes the padding from the count (`count_include_pad=0`), as Keras does.
* Dropout, SpatialDropout2D and GaussianNoise are identities at inference and become `Identity` nodes.
* BatchNormalization uses its moving statistics: `(x - mean) * (1 / sqrt(var + epsilon)) * gamma + beta`, with
  the reciprocal square root computed in float32 exactly as the engine computes it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

__all__ = ["BATCH_DIM", "DEFAULT_OPSET", "INPUT_NAME", "MIN_OPSET", "OUTPUT_NAME", "SUPPORTED_ACTIVATIONS",
           "SUPPORTED_LAYERS", "NOT_EXPORTED_LAYERS", "export", "to_onnx"]

DEFAULT_OPSET = 13
"""The opset `export` targets unless told otherwise."""
MIN_OPSET = 13
"""The oldest opset `export` can target (the graphs rely on opset 13's single-axis Softmax)."""
INPUT_NAME = "input"
"""The name of the graph's input."""
OUTPUT_NAME = "output"
"""The name of the graph's output."""
BATCH_DIM = "batch"
"""The symbolic name of the batch axis of the input and the output."""

# kerust's fixed activation constants (src/activations.rs)
_SELU_ALPHA = 1.6732632
_SELU_SCALE = 1.050701
_LEAKY_RELU_SLOPE = 0.2

_TO_NCHW = [0, 3, 1, 2]
_TO_NHWC = [0, 2, 3, 1]


def _import_onnx() -> Any:
    try:
        import onnx
    except ImportError as exc:
        raise ImportError(
            "Exporting a kerust model to ONNX needs the `onnx` package, which is an optional dependency: "
            "`pip install onnx` (and `pip install onnxruntime` to run the exported file)."
        ) from exc
    return onnx


# ---- the graph being built ----------------------------------------------------------------------------------
@dataclass
class _Tensor:
    """A value in the graph: its name, whether it is laid out NCHW (only ever for rank-4 values), and its
    per-sample shape in Keras's channels-last order (without the batch axis)."""

    name: str
    nchw: bool
    shape: Tuple[int, ...]


class _Graph:
    def __init__(self, onnx: Any, opset: int) -> None:
        self.onnx = onnx
        self.opset = opset
        self.nodes: List[Any] = []
        self.initializers: List[Any] = []
        self._used: set = {INPUT_NAME, OUTPUT_NAME}

    def fresh(self, base: str) -> str:
        name, k = base, 0
        while name in self._used:
            k += 1
            name = f"{base}_{k}"
        self._used.add(name)
        return name

    def const(self, base: str, value: Any, dtype: Any = np.float32) -> str:
        name = self.fresh(base)
        array = np.ascontiguousarray(np.asarray(value, dtype=dtype))
        self.initializers.append(self.onnx.numpy_helper.from_array(array, name=name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], base: str, **attrs: Any) -> str:
        out = self.fresh(base)
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), [out], name=out, **attrs))
        return out


# ---- layout changes ---------------------------------------------------------------------------------------------
def _to_nhwc(g: _Graph, t: _Tensor, prefix: str) -> _Tensor:
    if not t.nchw:
        return t
    return _Tensor(g.op("Transpose", [t.name], f"{prefix}/to_nhwc", perm=_TO_NHWC), False, t.shape)


def _to_nchw(g: _Graph, t: _Tensor, prefix: str) -> _Tensor:
    if t.nchw:
        return t
    return _Tensor(g.op("Transpose", [t.name], f"{prefix}/to_nchw", perm=_TO_NCHW), True, t.shape)


def _channel_const(value: np.ndarray, t: _Tensor) -> np.ndarray:
    """A per-channel (C,) array shaped to broadcast against `t` in its current layout."""
    return value.reshape(-1, 1, 1) if t.nchw else value


# ---- activations ------------------------------------------------------------------------------------------------
def _act_elementwise(op_type: str, **attrs: Any) -> Callable[[_Graph, _Tensor, str], str]:
    def build(g: _Graph, t: _Tensor, prefix: str) -> str:
        return g.op(op_type, [t.name], f"{prefix}/{op_type}", **attrs)

    return build


def _act_softmax(g: _Graph, t: _Tensor, prefix: str) -> str:
    # kerust's softmax normalises over the last (channels) axis; in NCHW that axis is 1
    return g.op("Softmax", [t.name], f"{prefix}/Softmax", axis=1 if t.nchw else -1)


def _act_gelu(g: _Graph, t: _Tensor, prefix: str) -> str:
    # exact GELU, 0.5 * x * (1 + erf(x / sqrt(2))), in the engine's order of operations
    scaled = g.op("Mul", [t.name, g.const(f"{prefix}/inv_sqrt2", 1.0 / math.sqrt(2.0))], f"{prefix}/gelu_scaled")
    erf = g.op("Erf", [scaled], f"{prefix}/gelu_erf")
    one_plus = g.op("Add", [erf, g.const(f"{prefix}/one", 1.0)], f"{prefix}/gelu_1p")
    half_x = g.op("Mul", [t.name, g.const(f"{prefix}/half", 0.5)], f"{prefix}/gelu_half_x")
    return g.op("Mul", [half_x, one_plus], f"{prefix}/Gelu")


def _act_swish(g: _Graph, t: _Tensor, prefix: str) -> str:
    sig = g.op("Sigmoid", [t.name], f"{prefix}/swish_sigmoid")
    return g.op("Mul", [t.name, sig], f"{prefix}/Swish")


def _act_relu6(g: _Graph, t: _Tensor, prefix: str) -> str:
    return _clip(g, t.name, 0.0, 6.0, f"{prefix}/Relu6")


def _clip(g: _Graph, x: str, low: float, high: float, base: str) -> str:
    return g.op("Clip", [x, g.const(f"{base}_min", low), g.const(f"{base}_max", high)], base)


def _act_log_softmax(g: _Graph, t: _Tensor, prefix: str) -> str:
    return g.op("LogSoftmax", [t.name], f"{prefix}/LogSoftmax", axis=1 if t.nchw else -1)


def _act_mish(g: _Graph, t: _Tensor, prefix: str) -> str:
    soft = g.op("Softplus", [t.name], f"{prefix}/mish_softplus")
    return g.op("Mul", [t.name, g.op("Tanh", [soft], f"{prefix}/mish_tanh")], f"{prefix}/Mish")


def _act_hard_silu(g: _Graph, t: _Tensor, prefix: str) -> str:
    # x * relu6(x + 3) / 6, HardSigmoid being clip(x / 6 + 0.5, 0, 1)
    gate = g.op("HardSigmoid", [t.name], f"{prefix}/hard_silu_gate", alpha=1.0 / 6.0, beta=0.5)
    return g.op("Mul", [t.name, gate], f"{prefix}/HardSilu")


def _act_celu(g: _Graph, t: _Tensor, prefix: str) -> str:
    # max(x, 0) + exp(min(x, 0)) - 1 (alpha 1), ONNX's Celu with its default alpha
    return g.op("Celu", [t.name], f"{prefix}/Celu", alpha=1.0)


def _act_log_sigmoid(g: _Graph, t: _Tensor, prefix: str) -> str:
    neg = g.op("Neg", [t.name], f"{prefix}/log_sigmoid_neg")
    return g.op("Neg", [g.op("Softplus", [neg], f"{prefix}/log_sigmoid_softplus")], f"{prefix}/LogSigmoid")


def _act_tanh_shrink(g: _Graph, t: _Tensor, prefix: str) -> str:
    return g.op("Sub", [t.name, g.op("Tanh", [t.name], f"{prefix}/tanh_shrink_tanh")], f"{prefix}/TanhShrink")


def _act_hard_tanh(g: _Graph, t: _Tensor, prefix: str) -> str:
    return _clip(g, t.name, -1.0, 1.0, f"{prefix}/HardTanh")


def _act_shrink(bias: float) -> Callable[[_Graph, _Tensor, str], str]:
    # ONNX Shrink: x - bias above lambd, x + bias below -lambd, 0 between (soft_shrink: bias 0.5; hard: 0)
    def build(g: _Graph, t: _Tensor, prefix: str) -> str:
        return g.op("Shrink", [t.name], f"{prefix}/Shrink", bias=bias, lambd=0.5)

    return build


def _act_sparse_plus(g: _Graph, t: _Tensor, prefix: str) -> str:
    # 0 for x <= -1, x for x >= 1, (x + 1)^2 / 4 between: clip(x, -1, 1) gives the middle piece at both ends
    # (0 and 1), and relu(x - 1) adds back what is above 1
    mid = g.op("Add", [_clip(g, t.name, -1.0, 1.0, f"{prefix}/sparse_plus_clip"),
                       g.const(f"{prefix}/sparse_plus_one", 1.0)], f"{prefix}/sparse_plus_shift")
    quarter = g.op("Mul", [g.op("Mul", [mid, mid], f"{prefix}/sparse_plus_sq"),
                           g.const(f"{prefix}/sparse_plus_quarter", 0.25)], f"{prefix}/sparse_plus_mid")
    above = g.op("Relu", [g.op("Sub", [t.name, g.const(f"{prefix}/sparse_plus_one_b", 1.0)],
                               f"{prefix}/sparse_plus_minus1")], f"{prefix}/sparse_plus_above")
    return g.op("Add", [quarter, above], f"{prefix}/SparsePlus")


def _act_squareplus(g: _Graph, t: _Tensor, prefix: str) -> str:
    sq = g.op("Mul", [t.name, t.name], f"{prefix}/squareplus_sq")
    root = g.op("Sqrt", [g.op("Add", [sq, g.const(f"{prefix}/squareplus_b", 4.0)], f"{prefix}/squareplus_add")],
                f"{prefix}/squareplus_sqrt")
    total = g.op("Add", [t.name, root], f"{prefix}/squareplus_sum")
    return g.op("Mul", [total, g.const(f"{prefix}/squareplus_half", 0.5)], f"{prefix}/Squareplus")


def _act_sparsemax(g: _Graph, t: _Tensor, prefix: str) -> str:
    # Keras's sparsemax over the channels (last Keras axis): the values sorted in decreasing order (TopK of all),
    # their running sums c, the support where z_k - (c_k - 1) / k > 0, tau = (sum of c over it - 1) / its size
    axis = 1 if t.nchw else -1
    n = int(t.shape[-1])
    shape = [1] * (len(t.shape) + 1)
    shape[axis] = n
    k_all = g.const(f"{prefix}/sparsemax_k", [n], np.int64)
    sorted_x, unused = g.fresh(f"{prefix}/sparsemax_sorted"), g.fresh(f"{prefix}/sparsemax_order")
    g.nodes.append(g.onnx.helper.make_node("TopK", [t.name, k_all], [sorted_x, unused], name=sorted_x,
                                           axis=axis, largest=1, sorted=1))
    running = g.op("CumSum", [sorted_x, g.const(f"{prefix}/sparsemax_axis", axis, np.int64)],
                   f"{prefix}/sparsemax_cumsum")
    one = g.const(f"{prefix}/sparsemax_one", 1.0)
    positions = g.const(f"{prefix}/sparsemax_positions", np.arange(1, n + 1, dtype=np.float32).reshape(shape))
    bound = g.op("Div", [g.op("Sub", [running, one], f"{prefix}/sparsemax_c1"), positions],
                 f"{prefix}/sparsemax_bound")
    support = g.op("Cast", [g.op("Greater", [g.op("Sub", [sorted_x, bound], f"{prefix}/sparsemax_margin"),
                                             g.const(f"{prefix}/sparsemax_zero", 0.0)], f"{prefix}/sparsemax_gt")],
                   f"{prefix}/sparsemax_support", to=g.onnx.TensorProto.FLOAT)
    axes = g.const(f"{prefix}/sparsemax_axes", [axis], np.int64)
    size = g.op("ReduceSum", [support, axes], f"{prefix}/sparsemax_size", keepdims=1)
    total = g.op("ReduceSum", [g.op("Mul", [support, running], f"{prefix}/sparsemax_kept"), axes],
                 f"{prefix}/sparsemax_total", keepdims=1)
    tau = g.op("Div", [g.op("Sub", [total, one], f"{prefix}/sparsemax_t1"), size], f"{prefix}/sparsemax_tau")
    return g.op("Relu", [g.op("Sub", [t.name, tau], f"{prefix}/sparsemax_shift")], f"{prefix}/Sparsemax")


# Every name kerust's engine accepts (src/activations.rs `NAMES`, plus "" for linear), each as the ONNX ops
# computing the same formula.
_ACTIVATIONS: Dict[str, Optional[Callable[[_Graph, _Tensor, str], str]]] = {
    "linear": None,
    "": None,
    "relu": _act_elementwise("Relu"),
    "sigmoid": _act_elementwise("Sigmoid"),
    "tanh": _act_elementwise("Tanh"),
    "softmax": _act_softmax,
    "elu": _act_elementwise("Elu", alpha=1.0),
    "selu": _act_elementwise("Selu", alpha=_SELU_ALPHA, gamma=_SELU_SCALE),
    "gelu": _act_gelu,
    "softplus": _act_elementwise("Softplus"),
    "softsign": _act_elementwise("Softsign"),
    "swish": _act_swish,
    "silu": _act_swish,
    "relu6": _act_relu6,
    # Keras 3's hard_sigmoid: relu6(x + 3) / 6 == clip(x / 6 + 0.5, 0, 1)
    "hard_sigmoid": _act_elementwise("HardSigmoid", alpha=1.0 / 6.0, beta=0.5),
    "exponential": _act_elementwise("Exp"),
    "leaky_relu": _act_elementwise("LeakyRelu", alpha=_LEAKY_RELU_SLOPE),
    "mish": _act_mish,
    "log_softmax": _act_log_softmax,
    "hard_silu": _act_hard_silu,
    "hard_swish": _act_hard_silu,
    "celu": _act_celu,
    "log_sigmoid": _act_log_sigmoid,
    "tanh_shrink": _act_tanh_shrink,
    "hard_tanh": _act_hard_tanh,
    "soft_shrink": _act_shrink(0.5),
    "hard_shrink": _act_shrink(0.0),
    "sparse_plus": _act_sparse_plus,
    "sparse_sigmoid": _act_elementwise("HardSigmoid", alpha=0.5, beta=0.5),
    "squareplus": _act_squareplus,
    "sparsemax": _act_sparsemax,
}

SUPPORTED_ACTIVATIONS: Tuple[str, ...] = tuple(sorted(k for k in _ACTIVATIONS if k))
"""The activation names the exporter translates (every name kerust's engine accepts)."""


def _activation_builder(name: Any, who: str) -> Optional[Callable[[_Graph, _Tensor, str], str]]:
    """The builder for activation `name` (None for linear); ValueError naming the layer for an unknown name."""
    if not isinstance(name, str) or name not in _ACTIVATIONS:
        raise ValueError(
            f"Cannot export {who} to ONNX: unknown activation {name!r}. Supported activations: "
            f"{', '.join(SUPPORTED_ACTIVATIONS)}"
        )
    return _ACTIVATIONS[name]


def _activation(g: _Graph, t: _Tensor, name: Any, who: str, prefix: str) -> _Tensor:
    build = _activation_builder(name, who)
    if build is None:
        return t
    return _Tensor(build(g, t, prefix), t.nchw, t.shape)


# ---- layers -----------------------------------------------------------------------------------------------------
@dataclass
class _LayerCtx:
    """What a layer converter needs: the graph, the layer, its config and weights (Keras layouts), a readable
    name for errors, the node-name prefix and the layer's output shape (per sample, channels-last)."""

    graph: _Graph
    layer: Any
    config: Dict[str, Any]
    weights: List[np.ndarray]
    who: str
    prefix: str
    out_shape: Tuple[int, ...]


def _pair(value: Any, who: str, key: str) -> Tuple[int, int]:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return int(value[0]), int(value[1])
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value), int(value)
    raise ValueError(f"Cannot export {who} to ONNX: `{key}` must be an int or a pair of ints, received {value!r}")


def _padding_same(ctx: _LayerCtx) -> bool:
    padding = str(ctx.config.get("padding", "valid")).lower()
    if padding not in ("valid", "same"):
        raise ValueError(f"Cannot export {ctx.who} to ONNX: padding must be 'valid' or 'same', received {padding!r}")
    return padding == "same"


def _pads(size: Tuple[int, int], window: Tuple[int, int], strides: Tuple[int, int], same: bool) -> List[int]:
    """ONNX `pads` ([top, left, bottom, right]) for TensorFlow's padding rule: "same" pads so that the output
    is ceil(size / stride) long, the odd extra row/column at the end; "valid" does not pad."""
    if not same:
        return [0, 0, 0, 0]
    begin, end = [], []
    for n, k, s in zip(size, window, strides):
        out = -(-n // s)
        needed = max((out - 1) * s + k - n, 0)
        begin.append(needed // 2)
        end.append(needed - needed // 2)
    return begin + end


def _check_channels_last(ctx: _LayerCtx) -> None:
    data_format = ctx.config.get("data_format") or "channels_last"
    if data_format != "channels_last":
        raise ValueError(f"Cannot export {ctx.who} to ONNX: only data_format='channels_last' is supported, "
                         f"received {data_format!r}")


def _expect_weights(ctx: _LayerCtx, count: int) -> None:
    if len(ctx.weights) != count:
        raise ValueError(f"Cannot export {ctx.who} to ONNX: expected {count} weight arrays, the model has "
                         f"{len(ctx.weights)}")


def _dense(ctx: _LayerCtx, t: _Tensor) -> _Tensor:
    g, cfg = ctx.graph, ctx.config
    use_bias = bool(cfg.get("use_bias", True))
    _expect_weights(ctx, 2 if use_bias else 1)
    t = _to_nhwc(g, t, ctx.prefix)
    y = g.op("MatMul", [t.name, g.const(f"{ctx.prefix}/kernel", ctx.weights[0])], f"{ctx.prefix}/MatMul")
    if use_bias:
        y = g.op("Add", [y, g.const(f"{ctx.prefix}/bias", ctx.weights[1])], f"{ctx.prefix}/BiasAdd")
    return _activation(g, _Tensor(y, False, ctx.out_shape), cfg.get("activation"), ctx.who, ctx.prefix)


def _conv2d(ctx: _LayerCtx, t: _Tensor) -> _Tensor:
    g, cfg = ctx.graph, ctx.config
    _check_channels_last(ctx)
    use_bias = bool(cfg.get("use_bias", True))
    _expect_weights(ctx, 2 if use_bias else 1)
    kernel = ctx.weights[0]  # (kh, kw, in / groups, out)
    window = (int(kernel.shape[0]), int(kernel.shape[1]))
    strides = _pair(cfg.get("strides", 1), ctx.who, "strides")
    dilations = _pair(cfg.get("dilation_rate", 1), ctx.who, "dilation_rate")
    span = ((window[0] - 1) * dilations[0] + 1, (window[1] - 1) * dilations[1] + 1)  # the dilated window's reach
    pads = _pads((t.shape[0], t.shape[1]), span, strides, _padding_same(ctx))
    t = _to_nchw(g, t, ctx.prefix)
    # ONNX: (out, in / groups, kh, kw)
    inputs = [t.name, g.const(f"{ctx.prefix}/kernel", kernel.transpose(3, 2, 0, 1))]
    if use_bias:
        inputs.append(g.const(f"{ctx.prefix}/bias", ctx.weights[1]))
    y = g.op("Conv", inputs, f"{ctx.prefix}/Conv", kernel_shape=list(window), strides=list(strides), pads=pads,
             dilations=list(dilations), group=int(cfg.get("groups", 1)))
    return _activation(g, _Tensor(y, True, ctx.out_shape), cfg.get("activation"), ctx.who, ctx.prefix)


def _pool2d(is_max: bool) -> Callable[[_LayerCtx, _Tensor], _Tensor]:
    def convert(ctx: _LayerCtx, t: _Tensor) -> _Tensor:
        g, cfg = ctx.graph, ctx.config
        _check_channels_last(ctx)
        window = _pair(cfg.get("pool_size", 2), ctx.who, "pool_size")
        strides_value = cfg.get("strides")
        strides = window if strides_value is None else _pair(strides_value, ctx.who, "strides")
        pads = _pads((t.shape[0], t.shape[1]), window, strides, _padding_same(ctx))
        t = _to_nchw(g, t, ctx.prefix)
        if is_max:
            y = g.op("MaxPool", [t.name], f"{ctx.prefix}/MaxPool", kernel_shape=list(window),
                     strides=list(strides), pads=pads)
        else:  # padding is left out of each window's count, as Keras/TensorFlow do
            y = g.op("AveragePool", [t.name], f"{ctx.prefix}/AveragePool", kernel_shape=list(window),
                     strides=list(strides), pads=pads, count_include_pad=0)
        return _Tensor(y, True, ctx.out_shape)

    return convert


def _global_pool2d(is_max: bool) -> Callable[[_LayerCtx, _Tensor], _Tensor]:
    def convert(ctx: _LayerCtx, t: _Tensor) -> _Tensor:
        g = ctx.graph
        _check_channels_last(ctx)
        t = _to_nchw(g, t, ctx.prefix)
        op_type = "GlobalMaxPool" if is_max else "GlobalAveragePool"
        y = g.op(op_type, [t.name], f"{ctx.prefix}/{op_type}")  # (N, C, 1, 1)
        if ctx.config.get("keepdims", False):
            return _Tensor(y, True, ctx.out_shape)  # NHWC (N, 1, 1, C) is this transposed
        return _Tensor(g.op("Flatten", [y], f"{ctx.prefix}/Flatten", axis=1), False, ctx.out_shape)

    return convert


def _flatten(ctx: _LayerCtx, t: _Tensor) -> _Tensor:
    _check_channels_last(ctx)
    t = _to_nhwc(ctx.graph, t, ctx.prefix)  # Keras flattens in (height, width, channels) order
    return _Tensor(ctx.graph.op("Flatten", [t.name], f"{ctx.prefix}/Flatten", axis=1), False, ctx.out_shape)


def _reshape(ctx: _LayerCtx, t: _Tensor) -> _Tensor:
    g = ctx.graph
    t = _to_nhwc(g, t, ctx.prefix)
    # 0 copies the batch size from the input; the rest is the layer's resolved output shape (no -1 left)
    shape = g.const(f"{ctx.prefix}/shape", [0, *ctx.out_shape], dtype=np.int64)
    return _Tensor(g.op("Reshape", [t.name, shape], f"{ctx.prefix}/Reshape"), False, ctx.out_shape)


def _identity(ctx: _LayerCtx, t: _Tensor) -> _Tensor:
    # Dropout, SpatialDropout2D, GaussianNoise: only active in training
    return _Tensor(ctx.graph.op("Identity", [t.name], f"{ctx.prefix}/Identity"), t.nchw, ctx.out_shape)


def _activation_layer(ctx: _LayerCtx, t: _Tensor) -> _Tensor:
    build = _activation_builder(ctx.config.get("activation"), ctx.who)
    if build is None:  # Activation("linear")
        return _identity(ctx, t)
    return _Tensor(build(ctx.graph, t, ctx.prefix), t.nchw, ctx.out_shape)


def _batch_normalization(ctx: _LayerCtx, t: _Tensor) -> _Tensor:
    g, cfg = ctx.graph, ctx.config
    axis = cfg.get("axis", -1)
    rank = len(t.shape) + 1
    if isinstance(axis, (list, tuple)) and len(axis) == 1:
        axis = axis[0]
    if axis not in (-1, rank - 1):
        raise ValueError(f"Cannot export {ctx.who} to ONNX: only the channels axis (-1) is supported, "
                         f"received axis={axis!r}")
    scale, center = bool(cfg.get("scale", True)), bool(cfg.get("center", True))
    _expect_weights(ctx, 2 + int(scale) + int(center))
    weights = list(ctx.weights)
    gamma = weights.pop(0) if scale else None
    beta = weights.pop(0) if center else None
    mean, variance = weights
    epsilon = np.float32(cfg.get("epsilon", 1e-3))
    inv_std = np.float32(1.0) / np.sqrt(variance.astype(np.float32) + epsilon)  # float32, as the engine
    y = g.op("Sub", [t.name, g.const(f"{ctx.prefix}/moving_mean", _channel_const(mean, t))], f"{ctx.prefix}/center")
    y = g.op("Mul", [y, g.const(f"{ctx.prefix}/inv_std", _channel_const(inv_std, t))], f"{ctx.prefix}/normalize")
    if gamma is not None:
        y = g.op("Mul", [y, g.const(f"{ctx.prefix}/gamma", _channel_const(gamma, t))], f"{ctx.prefix}/scale")
    if beta is not None:
        y = g.op("Add", [y, g.const(f"{ctx.prefix}/beta", _channel_const(beta, t))], f"{ctx.prefix}/shift")
    return _Tensor(y, t.nchw, ctx.out_shape)


def _number(ctx: _LayerCtx, key: str, default: float) -> float:
    value = ctx.config.get(key, default)
    if value is None:
        value = default
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"Cannot export {ctx.who} to ONNX: `{key}` must be a number, received {value!r}")
    return float(value)


def _leaky_relu(ctx: _LayerCtx, t: _Tensor) -> _Tensor:
    slope = _number(ctx, "negative_slope", 0.3)
    y = ctx.graph.op("LeakyRelu", [t.name], f"{ctx.prefix}/LeakyRelu", alpha=slope)
    return _Tensor(y, t.nchw, ctx.out_shape)


def _relu(ctx: _LayerCtx, t: _Tensor) -> _Tensor:
    g, p = ctx.graph, ctx.prefix
    max_value = ctx.config.get("max_value")
    high = None if max_value is None else _number(ctx, "max_value", 0.0)
    slope = _number(ctx, "negative_slope", 0.0)
    threshold = _number(ctx, "threshold", 0.0)
    if threshold == 0.0 and slope == 0.0:
        y = g.op("Relu", [t.name], f"{p}/Relu") if high is None else _clip(g, t.name, 0.0, high, f"{p}/Clip")
    elif threshold == 0.0 and high is None:
        y = g.op("LeakyRelu", [t.name], f"{p}/LeakyRelu", alpha=slope)
    else:
        # the engine's rule: x > threshold -> min(x, max_value); otherwise slope * (x - threshold)
        above = g.op("Greater", [t.name, g.const(f"{p}/threshold", threshold)], f"{p}/above")
        kept = t.name if high is None else g.op("Min", [t.name, g.const(f"{p}/max_value", high)], f"{p}/capped")
        shifted = g.op("Sub", [t.name, g.const(f"{p}/threshold", threshold)], f"{p}/shifted")
        below = g.op("Mul", [shifted, g.const(f"{p}/negative_slope", slope)], f"{p}/below")
        y = g.op("Where", [above, kept, below], f"{p}/Relu")
    return _Tensor(y, t.nchw, ctx.out_shape)


def _elu(ctx: _LayerCtx, t: _Tensor) -> _Tensor:
    alpha = _number(ctx, "alpha", 1.0)
    return _Tensor(ctx.graph.op("Elu", [t.name], f"{ctx.prefix}/Elu", alpha=alpha), t.nchw, ctx.out_shape)


def _softmax(ctx: _LayerCtx, t: _Tensor) -> _Tensor:
    axis = ctx.config.get("axis", -1)
    if isinstance(axis, (list, tuple)) and len(axis) == 1:
        axis = axis[0]
    if axis not in (-1, len(t.shape)):
        raise ValueError(f"Cannot export {ctx.who} to ONNX: only axis=-1 is supported, received axis={axis!r}")
    return _Tensor(_act_softmax(ctx.graph, t, ctx.prefix), t.nchw, ctx.out_shape)


def _prelu(ctx: _LayerCtx, t: _Tensor) -> _Tensor:
    _expect_weights(ctx, 1)
    alpha = ctx.weights[0]  # the sample shape, 1 along shared axes
    if t.nchw:
        alpha = alpha.transpose(2, 0, 1)
    y = ctx.graph.op("PRelu", [t.name, ctx.graph.const(f"{ctx.prefix}/alpha", alpha)], f"{ctx.prefix}/PRelu")
    return _Tensor(y, t.nchw, ctx.out_shape)


def _permute(ctx: _LayerCtx, t: _Tensor) -> _Tensor:
    t = _to_nhwc(ctx.graph, t, ctx.prefix)
    perm = [0, *(int(d) for d in ctx.config["dims"])]
    return _Tensor(ctx.graph.op("Transpose", [t.name], f"{ctx.prefix}/Transpose", perm=perm), False, ctx.out_shape)


def _repeat_vector(ctx: _LayerCtx, t: _Tensor) -> _Tensor:
    g = ctx.graph
    n, d = (int(v) for v in ctx.out_shape)
    row = g.op("Reshape", [t.name, g.const(f"{ctx.prefix}/row", [0, 1, d], dtype=np.int64)], f"{ctx.prefix}/Reshape")
    y = g.op("Tile", [row, g.const(f"{ctx.prefix}/repeats", [1, n, 1], dtype=np.int64)], f"{ctx.prefix}/Tile")
    return _Tensor(y, False, ctx.out_shape)


# Every single-input class kerust's engine builds (src/layers/mod.rs CLASS_NAMES), by its Keras class name.
_CONVERTERS: Dict[str, Callable[[_LayerCtx, _Tensor], _Tensor]] = {
    "Dense": _dense,
    "Activation": _activation_layer,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Conv2D": _conv2d,
    "MaxPooling2D": _pool2d(is_max=True),
    "AveragePooling2D": _pool2d(is_max=False),
    "GlobalAveragePooling2D": _global_pool2d(is_max=False),
    "GlobalMaxPooling2D": _global_pool2d(is_max=True),
    "Dropout": _identity,
    "SpatialDropout2D": _identity,
    "GaussianNoise": _identity,
    "BatchNormalization": _batch_normalization,
    "LeakyReLU": _leaky_relu,
    "ReLU": _relu,
    "ELU": _elu,
    "Softmax": _softmax,
    "PReLU": _prelu,
    "Permute": _permute,
    "RepeatVector": _repeat_vector,
    "Identity": _identity,
}

GRAPH_ONLY_LAYERS: Tuple[str, ...] = ("Add", "Average", "Concatenate", "Dot", "Maximum", "Minimum", "Multiply",
                                      "Subtract")
"""Merge layers: they take several inputs, so they occur only in functional models, which the exporter does not
translate yet (it exports Sequential models)."""

NOT_EXPORTED_LAYERS: Tuple[str, ...] = ("AveragePooling1D", "Bidirectional", "Conv1D", "Embedding",
                                        "GRU", "GlobalAveragePooling1D", "GlobalMaxPooling1D", "LSTM",
                                        "LayerNormalization", "MaxPooling1D", "SimpleRNN", "SpatialDropout1D",
                                        "UpSampling1D", "ZeroPadding1D", "Cropping1D", "MultiHeadAttention",
                                        "Attention", "AdditiveAttention", "TimeDistributed",
                                        "Masking", "TextVectorization",
                                        # traced vision, normalisation and noise layers (kerust/_vision_layers.py)
                                        "ZeroPadding2D", "ZeroPadding3D", "Cropping2D", "Cropping3D", "UpSampling2D",
                                        "UpSampling3D", "UnitNormalization", "GroupNormalization",
                                        "ActivityRegularization", "GaussianDropout", "AlphaDropout",
                                        # engine convolutions without an exporter yet
                                        "Conv2DTranspose", "DepthwiseConv2D", "SeparableConv2D",
                                        # traced preprocessing and augmentation (kerust/_preprocessing_layers.py)
                                        "CategoryEncoding", "CenterCrop", "Discretization", "Normalization",
                                        "RandomBrightness", "RandomContrast", "RandomCrop", "RandomFlip",
                                        "RandomRotation", "RandomTranslation", "RandomZoom", "Rescaling",
                                        "Resizing",
                                        # traced volumetric layers (kerust/_volumetric_layers.py)
                                        "Conv3D", "MaxPooling3D", "AveragePooling3D", "GlobalAveragePooling3D",
                                        "GlobalMaxPooling3D", "SpatialDropout3D")
"""Sequence, attention and traced vision layers the exporter does not translate yet, and TextVectorization
(strings, run on the host): exporting a model with one raises a ValueError."""

SUPPORTED_LAYERS: Tuple[str, ...] = tuple(sorted(_CONVERTERS))
"""The layer classes the exporter translates (every single-input class kerust builds)."""


# ---- entry points -----------------------------------------------------------------------------------------------
def _check_opset(onnx: Any, opset: Any) -> int:
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)):
        raise TypeError(f"opset must be an int (at least {MIN_OPSET}), received {opset!r}")
    newest = int(onnx.defs.onnx_opset_version())
    if not MIN_OPSET <= int(opset) <= newest:
        raise ValueError(f"opset must be between {MIN_OPSET} and {newest} (the newest the installed onnx "
                         f"{onnx.__version__} knows), received {opset}")
    return int(opset)


def _check_model(model: Any) -> None:
    from .models import Sequential

    if not isinstance(model, Sequential):
        raise TypeError(f"kerust.onnx exports kerust Sequential models, received {type(model).__name__}")
    if not model.built or not model.layers:
        raise ValueError(f"Model '{model.name}' is not built yet: give it an input shape (an Input, "
                         "`input_shape=` on the first layer, or model.build(...)) or call it on data before "
                         "exporting it to ONNX.")


def to_onnx(model: Any, opset: int = DEFAULT_OPSET) -> Any:
    """Build the ONNX graph of a kerust model, in memory (what `export` writes to a file).

    The graph has one float32 input named `"input"` of shape `(batch, *input_shape)` (channels-last, the batch
    axis symbolic) and one float32 output named `"output"`, equal to what `model.predict` returns. The result has
    passed `onnx.checker.check_model`.

    Args:
        model: A built kerust `Sequential` model.
        opset: The ONNX opset to target: 13 (the default) up to the newest the installed `onnx` knows.

    Returns:
        An `onnx.ModelProto`.

    Raises:
        TypeError: `model` is not a kerust `Sequential` model, or `opset` is not an int.
        ValueError: The model is not built, `opset` is out of range, or a layer or activation is one the
            exporter does not know (the message names the layer).
        ImportError: The optional `onnx` package is not installed (`pip install onnx`).
    """
    _check_model(model)
    onnx = _import_onnx()
    opset = _check_opset(onnx, opset)
    graph = _Graph(onnx, opset)
    input_shape = tuple(int(d) for d in model._input_shape)
    all_weights = model.get_weights()
    t = _Tensor(INPUT_NAME, False, input_shape)
    for layer in list(getattr(model, "_host_layers", None) or []) + model.layers:  # a host vectorizer: refused
        class_name = layer.class_name
        who = f"layer '{layer.name}' ({class_name})"
        convert = _CONVERTERS.get(class_name)
        if convert is None:
            raise ValueError(f"Cannot export {who} to ONNX: the exporter does not know the layer class "
                             f"{class_name!r}. Supported layers: {', '.join(SUPPORTED_LAYERS)}")
        first, count = layer._weight_slot()
        ctx = _LayerCtx(graph=graph, layer=layer, config=layer.get_config(),
                        weights=[np.asarray(w, dtype=np.float32) for w in all_weights[first:first + count]],
                        who=who, prefix=layer.name, out_shape=tuple(int(d) for d in layer.output_shape[1:]))
        t = convert(ctx, t)
    t = _to_nhwc(graph, t, "output")
    _name_output(graph, t.name)
    output_shape = tuple(int(d) for d in model._core.output_shape())

    helper = onnx.helper
    float_type = onnx.TensorProto.FLOAT
    onnx_graph = helper.make_graph(
        graph.nodes,
        str(model.name),
        [helper.make_tensor_value_info(INPUT_NAME, float_type, [BATCH_DIM, *input_shape])],
        [helper.make_tensor_value_info(OUTPUT_NAME, float_type, [BATCH_DIM, *output_shape])],
        initializer=graph.initializers,
    )
    opset_imports = [helper.make_opsetid("", opset)]
    proto = helper.make_model(onnx_graph, opset_imports=opset_imports, producer_name="kerust",
                              producer_version=_kerust_version(),
                              doc_string=f"kerust Sequential model '{model.name}'")
    # the oldest IR version that carries this opset, so older runtimes can read the file too
    proto.ir_version = helper.find_min_ir_version_for(opset_imports)
    onnx.checker.check_model(proto)
    return proto


def _name_output(graph: _Graph, name: str) -> None:
    """Make the last value the graph's output `"output"`: rename the node output that produced it, or add an
    Identity when the value is the graph input itself (a model of identities only)."""
    for node in reversed(graph.nodes):
        if name in node.output:
            node.output[list(node.output).index(name)] = OUTPUT_NAME
            for other in graph.nodes:  # nothing reads the final value, but keep every reference consistent
                for i, inp in enumerate(other.input):
                    if inp == name:
                        other.input[i] = OUTPUT_NAME
            return
    graph.nodes.append(graph.onnx.helper.make_node("Identity", [name], [OUTPUT_NAME], name=OUTPUT_NAME))


def _kerust_version() -> str:
    from . import _core

    return str(getattr(_core, "__version__", ""))


def export(model: Any, path: Any, opset: int = DEFAULT_OPSET) -> None:
    """Write a built kerust `Sequential` model to `path` as an ONNX file.

    The file takes the model's channels-last input, named `"input"`, with a dynamic batch axis, and gives what
    `model.predict` gives, as float32, named `"output"`. It is written to a temporary file beside `path`, fsynced
    and renamed over `path`, so an interrupted or failed export never leaves a half-written file.

    Args:
        model: A built kerust `Sequential` model.
        path: Where to write the file (`str` or `os.PathLike`), usually ending in `.onnx`.
        opset: The ONNX opset to target: 13 (the default) up to the newest the installed `onnx` knows.

    Raises:
        TypeError: `model` is not a kerust `Sequential` model, `path` is not a path, or `opset` is not an int.
        ValueError: The model is not built, `opset` is out of range, or a layer or activation is one the
            exporter does not know (the message names the layer).
        ImportError: The optional `onnx` package is not installed (`pip install onnx`).
        OSError: The file cannot be written.
    """
    from ._files import atomic_write as _atomic_write
    from .saving import _fspath

    target = _fspath(path)
    proto = to_onnx(model, opset=opset)
    _atomic_write(target, proto.SerializeToString())
