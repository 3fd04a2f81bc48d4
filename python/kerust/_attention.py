"""Attention layers and TimeDistributed, as Keras 3 defines them: ``MultiHeadAttention``, ``Attention``,
``AdditiveAttention`` and ``TimeDistributed``. They are kerust built-in layers written as traced ``call``s of
``keras.ops`` (see kerust._custom): the engine differentiates the ops, so no hand-written backward is needed.
Weights, their shapes, order, names and file paths are Keras's; configs are written as Keras's own classes
(module ``keras.layers``, no registered name) and read back as these classes.
"""

from __future__ import annotations

import re
import string
import warnings
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from . import ops
from . import random as random_module
from . import regularizers as regularizers_module
from .layers import Dropout, Layer, Softmax

_LETTERS = string.ascii_lowercase
_LARGE_NEGATIVE = -1e9  # Keras's Softmax mask value (float32) and Attention's padding offset


def _shape_tuple(shape: Any) -> Tuple[Any, ...]:
    return tuple(None if d is None else int(d) for d in shape)


def _is_tensor_like(x: Any) -> bool:
    from ._graph import KerasTensor

    return isinstance(x, KerasTensor) or hasattr(x, "shape")


def _check_positive_int(who: str, name: str, value: Any, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{who}: received an invalid value for argument `{name}`, expected a positive integer"
                         f"{' or None' if allow_none else ''}. Received: {name}={value!r}")


def _no_unsupported(who: str, **args: Any) -> None:
    for key, value in args.items():
        if value is not None:
            raise ValueError(f"{who}: `{key}` is not supported by kerust yet (received {value!r})")


def _as_bool_mask(mask: Any) -> Any:
    """A mask as a boolean tensor (nonzero is True, as Keras's defensive `cast(mask, "bool")`)."""
    if isinstance(mask, np.ndarray) or not hasattr(mask, "dtype"):
        return np.asarray(mask).astype(bool)
    if str(mask.dtype) == "bool":
        return mask
    return ops.not_equal(mask, 0)


# ---- initializers: Keras's EinsumDense computes VarianceScaling fans from the kernel's input / output axes --------
_VARIANCE_SCALING = {"glorot_uniform": (1.0, "fan_avg", "uniform"), "glorot_normal": (1.0, "fan_avg", "normal"),
                     "he_normal": (2.0, "fan_in", "normal"), "he_uniform": (2.0, "fan_in", "uniform"),
                     "lecun_normal": (1.0, "fan_in", "normal"), "lecun_uniform": (1.0, "fan_in", "uniform")}


def _snake(name: str) -> str:
    from ._naming import to_snake_case

    return to_snake_case(name)


def _variance_scaling_of(initializer: Any) -> Optional[Tuple[float, str, str]]:
    if isinstance(initializer, str):
        return _VARIANCE_SCALING.get(_snake(initializer))
    if isinstance(initializer, dict) and isinstance(initializer.get("class_name"), str):
        name = _snake(initializer["class_name"])
        cfg = initializer.get("config") or {}
        if name == "variance_scaling":
            return (float(cfg.get("scale", 1.0)), str(cfg.get("mode", "fan_in")),
                    "uniform" if cfg.get("distribution") == "uniform" else "normal")
        return _VARIANCE_SCALING.get(name)
    return None


def _engine_fans(shape: Sequence[int]) -> Tuple[int, int]:
    """Keras's `compute_fans` without axes (the engine's rule): the last two axes are (in, out)."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return int(shape[0]), int(shape[0])
    field = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    return int(shape[-2]) * field, int(shape[-1]) * field


def _kernel_initializer(initializer: Any, shape: Sequence[int], input_axes: List[int], output_axes: List[int]
                        ) -> Any:
    """The initializer the engine should use for an EinsumDense kernel so that it draws from Keras's distribution:
    Keras gives VarianceScaling initializers the kernel's input and output axes; the engine computes fans from the
    last two axes, so the scale is adjusted by the ratio of the two fans."""
    vs = _variance_scaling_of(initializer)
    if vs is None:
        return initializer
    scale, mode, distribution = vs
    fan_in = int(np.prod([shape[a] for a in input_axes])) if input_axes else 1
    fan_out = int(np.prod([shape[a] for a in output_axes])) if output_axes else 1
    e_in, e_out = _engine_fans(shape)
    if mode == "fan_in":
        ratio = e_in / fan_in
    elif mode == "fan_out":
        ratio = e_out / fan_out
    else:
        ratio = (e_in + e_out) / (fan_in + fan_out)
    seed = (initializer.get("config") or {}).get("seed") if isinstance(initializer, dict) else None
    config: dict = {"scale": scale * ratio, "mode": mode,
                    "distribution": "uniform" if distribution == "uniform" else "truncated_normal"}
    if seed is not None:
        config["seed"] = seed
    return {"class_name": "VarianceScaling", "config": config}


class _EinsumDense(Layer):
    """The projection sublayer of MultiHeadAttention (Keras's EinsumDense): `einsum(equation, x, kernel) + bias`.
    Internal: kerust does not offer EinsumDense as a layer of its own."""

    _keras_class = "EinsumDense"

    def __init__(self, equation: str, output_shape: Sequence[Optional[int]], bias_axes: Optional[str],
                 kernel_initializer: Any, bias_initializer: Any, kernel_regularizer: Any, bias_regularizer: Any,
                 name: str) -> None:
        super().__init__(name=name)
        self.equation = equation
        self.partial_output_shape = list(output_shape)
        self.bias_axes = bias_axes
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        self.kernel_regularizer = kernel_regularizer
        self.bias_regularizer = bias_regularizer
        self.kernel: Any = None
        self.bias: Any = None

    def _specs(self) -> Tuple[str, str, str]:
        lhs, out = self.equation.split("->")
        inp, ker = lhs.split(",")
        return inp, ker, out

    def full_output_shape(self, input_shape: Sequence[Optional[int]]) -> List[Any]:
        inp, _, out = self._specs()
        dims = {c: input_shape[i] for i, c in enumerate(inp)}
        known: List[Any] = list(self.partial_output_shape)
        tail = len(out) - len(known)
        return [dims.get(c) if (i < tail or known[i - tail] is None) else int(known[i - tail])
                for i, c in enumerate(out)]

    def build(self, input_shape: Any) -> None:
        inp, ker, out = self._specs()
        in_dims = {c: input_shape[i] for i, c in enumerate(inp)}
        out_shape = self.full_output_shape(input_shape)
        out_dims = {c: out_shape[i] for i, c in enumerate(out)}
        shape, in_axes, out_axes = [], [], []
        for i, c in enumerate(ker):
            if c in out_dims:
                shape.append(int(out_dims[c]))
                out_axes.append(i)
            else:
                shape.append(int(in_dims[c]))
                in_axes.append(i)
        init = _kernel_initializer(self.kernel_initializer, shape, in_axes, out_axes)
        self.kernel = self.add_weight(name="kernel", shape=tuple(shape), initializer=init,
                                      regularizer=self.kernel_regularizer)
        if self.bias_axes:
            first = min(out.find(c) for c in self.bias_axes)
            bias_shape = [int(out_dims[c]) if c in self.bias_axes else 1 for c in out[first:]]
            self.bias = self.add_weight(name="bias", shape=tuple(bias_shape), initializer=self.bias_initializer,
                                        regularizer=self.bias_regularizer)
        self.built = True

    def call(self, inputs: Any) -> Any:
        y = ops.einsum(self.equation, inputs, self.kernel)
        if self.bias is not None:
            y = ops.add(y, self.bias)
        return y


def _projection_equation(free_dims: int, bound_dims: int, output_dims: int) -> Tuple[str, str, int]:
    """(einsum equation, bias axes, output rank) of a projection: `free_dims` axes kept, `bound_dims` contracted
    with the kernel, `output_dims` new axes from the kernel (which are the bias's axes)."""
    free = _LETTERS[:free_dims]
    bound = _LETTERS[free_dims:free_dims + bound_dims]
    new = _LETTERS[free_dims + bound_dims:free_dims + bound_dims + output_dims]
    return f"{free}{bound},{bound}{new}->{free}{new}", new, free_dims + output_dims


def _attention_equations(rank: int, attn_axes: Tuple[int, ...]) -> Tuple[str, str, int]:
    """The query-key product and the combination with values, for projected tensors of `rank` (batch, ...,
    heads, channels) attending over `attn_axes`: scores are (batch dims, heads, query attention dims, key
    attention dims)."""
    target = _LETTERS[:rank]
    batch_dims = [i for i in range(rank) if i not in attn_axes and i != rank - 1]
    source = list(target)
    extra = rank
    for i in range(rank):
        if i in attn_axes:
            source[i] = _LETTERS[extra]
            extra += 1
    src = "".join(source)
    product = "".join([target[i] for i in batch_dims] + [target[i] for i in attn_axes]
                      + [src[i] for i in attn_axes])
    return f"{src},{target}->{product}", f"{product},{src}->{target}", len(product)


def _causal_mask(t_query: int, t_value: int) -> np.ndarray:
    """Keras's causal mask (1, Tq, Tv): position i attends to positions j <= i."""
    rows = np.arange(1, t_query + 1)[:, None]
    cols = np.arange(1, t_value + 1)[None, :]
    return (rows >= cols)[None]


def _softmax(x: Any, axes: Tuple[int, ...]) -> Any:
    if len(axes) == 1:
        return ops.softmax(x, axis=axes[0])
    return ops.exp(ops.subtract(x, ops.logsumexp(x, axis=axes, keepdims=True)))


def _check_mask_shape(who: str, what: str, mask: Any, expected: Sequence[Optional[int]]) -> None:
    """A mask must broadcast to `expected` (batch first) with no more axes: each of its dims 1 or equal."""
    mshape = _shape_tuple(np.shape(mask) if isinstance(mask, np.ndarray) else mask.shape)
    expected = _shape_tuple(expected)
    ok = len(mshape) <= len(expected)
    if ok:
        for m, e in zip(mshape[::-1], expected[::-1]):
            if m is not None and e is not None and m != 1 and m != e:
                ok = False
    if not ok:
        raise ValueError(f"{who}: `{what}` of shape {mshape} does not fit: it must broadcast to {expected} "
                         f"(each dimension 1 or equal). Received: {what}.shape={mshape}, expected shape "
                         f"{expected}")


def _set_output_mask(out: Any, mask: Any) -> None:
    """Put a symbolic `mask` on the first output only (not on returned scores), as Keras's layers do."""
    from ._graph import KerasTensor
    from ._masking import set_mask

    if isinstance(mask, KerasTensor):
        set_mask(out[0] if isinstance(out, (list, tuple)) else out, mask)


class _BuiltinTraced(Layer):
    """A kerust built-in layer computed by a traced `call` (written to files as Keras's own class)."""

    _keras_builtin = True

    def _keras_build_config(self) -> Optional[dict]:
        return None

    # Keras's inbound-node form of a call ({"args": [...], "kwargs": {...}}) and back
    def _node_config(self, node: Any, tensor: Any) -> dict:
        raise NotImplementedError

    def _call_from_node(self, node: dict, resolve: Any) -> Tuple[list, Any]:
        raise NotImplementedError


def _node_tensor_refs(value: Any, who: str, resolve: Any, refs: list) -> Any:
    """A node argument from a config: a Keras tensor becomes a placeholder index into `refs`, lists recurse."""
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        refs.append(resolve(value, who))
        return ("__ref__", len(refs) - 1)
    if isinstance(value, list):
        return [_node_tensor_refs(v, who, resolve, refs) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ValueError(f"{who}: unsupported call argument {value!r}")


def _fill_refs(value: Any, tensors: list) -> Any:
    if isinstance(value, tuple) and len(value) == 2 and value[0] == "__ref__":
        return tensors[value[1]]
    if isinstance(value, list):
        return [_fill_refs(v, tensors) for v in value]
    return value


# ---- MultiHeadAttention -----------------------------------------------------------------------------------------
class MultiHeadAttention(_BuiltinTraced):
    """Multi-head attention (Vaswani et al., 2017) as Keras's MultiHeadAttention: query, key and value projected
    per head (`(dim, num_heads, key_dim)` kernels), scaled dot products over `attention_axes`, a softmax that
    masks with -1e9 where the mask is False, dropout on the probabilities in training, and an output projection
    back to the query's last dimension (or `output_shape`). Called as `mha(query, value, key=None,
    attention_mask=None, return_attention_scores=False, training=None, use_causal_mask=False)`."""

    def __init__(self, num_heads: int, key_dim: int, value_dim: Optional[int] = None, dropout: float = 0.0,
                 use_bias: bool = True, output_shape: Any = None, attention_axes: Any = None,
                 sliding_window: Any = None, flash_attention: Any = None,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None, activity_regularizer: Any = None,
                 kernel_constraint: Any = None, bias_constraint: Any = None, use_gate: bool = False,
                 seed: Optional[int] = None, **kwargs: Any) -> None:
        who = "MultiHeadAttention"
        _check_positive_int(who, "num_heads", num_heads)
        _check_positive_int(who, "key_dim", key_dim)
        _check_positive_int(who, "value_dim", value_dim, allow_none=True)
        super().__init__(**kwargs)
        who = f"MultiHeadAttention '{self.name}'"
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ValueError(f"{who}: `dropout` must be a float in [0, 1), received dropout={dropout!r}")
        _no_unsupported(who, sliding_window=sliding_window, kernel_constraint=kernel_constraint,
                        bias_constraint=bias_constraint)
        self.activity_regularizer = regularizers_module.get_activity(activity_regularizer,
                                                                     f"{self.class_name} '{self.name}'")
        if flash_attention:
            raise ValueError(f"{who}: `flash_attention` is not supported by kerust (received {flash_attention!r})")
        if use_gate:
            raise ValueError(f"{who}: `use_gate=True` is not supported by kerust yet")
        if output_shape:
            if isinstance(output_shape, (int, np.integer)):
                output_shape = (int(output_shape),)
            if not isinstance(output_shape, (list, tuple)) or not all(
                    isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0 for d in output_shape):
                raise ValueError(f"{who}: invalid `output_shape`: {output_shape!r}. When specified, the "
                                 "`output_shape` should be of type tuple, list, or int (of positive sizes).")
            output_shape = tuple(int(d) for d in output_shape)
        else:
            output_shape = None
        if isinstance(attention_axes, (int, np.integer)) and not isinstance(attention_axes, bool):
            attention_axes = (int(attention_axes),)
        elif attention_axes is not None and not isinstance(attention_axes, (list, tuple)):
            raise ValueError(f"{who}: `attention_axes` must be an int, list, or tuple. Received: "
                             f"attention_axes={attention_axes!r}")
        self.num_heads = int(num_heads)
        self.key_dim = int(key_dim)
        self.value_dim = int(value_dim) if value_dim else int(key_dim)
        self.dropout = float(dropout)
        self.use_bias = bool(use_bias)
        self._output_shape_arg = output_shape
        self.attention_axes = None if attention_axes is None else tuple(int(a) for a in attention_axes)
        from ._variable import initializer_config

        initializer_config(f"{who}: kernel_initializer", kernel_initializer, "float32")
        initializer_config(f"{who}: bias_initializer", bias_initializer, "float32")
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        self.kernel_regularizer = regularizers_module.get(kernel_regularizer)
        self.bias_regularizer = regularizers_module.get(bias_regularizer)
        self.seed = seed
        self._seed_generator = random_module.SeedGenerator(seed)
        self._shapes: Optional[dict] = None

    def _sublayer_kwargs(self) -> dict:
        return {"kernel_initializer": self.kernel_initializer, "bias_initializer": self.bias_initializer,
                "kernel_regularizer": self.kernel_regularizer, "bias_regularizer": self.bias_regularizer}

    def build(self, query_shape: Any, value_shape: Any = None, key_shape: Any = None) -> None:
        who = f"MultiHeadAttention '{self.name}'"
        if value_shape is None:
            raise ValueError(f"{who}: build needs `query_shape` and `value_shape` (and optionally `key_shape`)")
        query_shape, value_shape = _shape_tuple(query_shape), _shape_tuple(value_shape)
        key_shape = value_shape if key_shape is None else _shape_tuple(key_shape)
        if len(query_shape) < 3 or len(value_shape) < 3:
            raise ValueError(f"{who}: `query` and `value` must have a batch axis, at least one sequence axis and a "
                             f"feature axis. Received: query_shape={query_shape}, value_shape={value_shape}")
        if len(query_shape) != len(value_shape):
            raise ValueError(f"{who}: `query` and `value` must have the same rank. Received: "
                             f"query_shape={query_shape}, value_shape={value_shape}")
        if value_shape[1:-1] != key_shape[1:-1]:
            raise ValueError(f"{who}: all dimensions of `value` and `key`, except the last one, must be equal. "
                             f"Received: value_shape={value_shape} and key_shape={key_shape}")
        kw = self._sublayer_kwargs()
        rank = len(query_shape)
        eq, bias_axes, out_rank = _projection_equation(rank - 1, 1, 2)
        self.query_dense = _EinsumDense(
            eq, [None] * (out_rank - 3) + [self.num_heads, self.key_dim], bias_axes if self.use_bias else None,
            name="query", **kw)
        self.query_dense.build(query_shape)
        self.key_dense = _EinsumDense(
            eq, [None] * (out_rank - 3) + [self.num_heads, self.key_dim], bias_axes if self.use_bias else None,
            name="key", **kw)
        self.key_dense.build(key_shape)
        self.value_dense = _EinsumDense(
            eq, [None] * (out_rank - 3) + [self.num_heads, self.value_dim], bias_axes if self.use_bias else None,
            name="value", **kw)
        self.value_dense.build(value_shape)
        # attention over every axis but batch, heads and features unless told
        proj_rank = out_rank
        if self.attention_axes is None:
            axes = tuple(range(1, proj_rank - 2))
        else:
            axes = tuple(a if a >= 0 else (proj_rank - 1) + a for a in self.attention_axes)
            if any(not 0 < a < proj_rank - 2 for a in axes):
                raise ValueError(f"{who}: `attention_axes` {self.attention_axes} must name axes of the query "
                                 f"between the batch and the feature axis (query_shape={query_shape})")
        self.attention_axes = axes
        self._dot_equation, self._combine_equation, scores_rank = _attention_equations(proj_rank, axes)
        self._norm_axes = tuple(range(scores_rank - len(axes), scores_rank))
        out_dims = self._output_shape_arg or (query_shape[-1],)
        eq_out, bias_out, out_rank2 = _projection_equation(rank - 1, 2, len(out_dims))
        self.output_dense = _EinsumDense(eq_out, [None] * (out_rank2 - 1 - len(out_dims)) + list(out_dims),
                                         bias_out if self.use_bias else None, name="attention_output", **kw)
        self.output_dense.build((*query_shape[:-1], self.num_heads, self.value_dim))
        # Keras's holders of the softmax and the dropout (no weights; their groups appear in Keras's files)
        self._dropout_layer = Dropout(rate=self.dropout, seed=self.seed)
        self._softmax = Softmax(axis=-1)
        self._shapes = {"query_shape": list(query_shape), "value_shape": list(value_shape)}
        if key_shape != value_shape:
            self._shapes["key_shape"] = list(key_shape)
        self.built = True

    def __call__(self, query: Any, value: Any = None, key: Any = None, query_mask: Any = None,  # type: ignore[override]
                 value_mask: Any = None, key_mask: Any = None, attention_mask: Any = None,
                 return_attention_scores: bool = False, training: Any = None, use_causal_mask: bool = False,
                 **kwargs: Any) -> Any:
        who = f"MultiHeadAttention '{self.name}'"
        if kwargs.pop("mask", None) is not None:
            raise ValueError(f"{who}: pass masks as `attention_mask`, `query_mask`, `value_mask` or `key_mask`")
        if kwargs:
            raise TypeError(f"{who}: unexpected call arguments {sorted(kwargs)}")
        if value is None:
            raise TypeError(f"{who}: missing the `value` argument: call it as mha(query, value, key=None, ...)")
        for what, t in (("query", query), ("value", value), ("key", key)):
            if t is not None and not _is_tensor_like(t):
                raise TypeError(f"{who}: `{what}` must be a tensor, received {t!r}")
        explicit = tuple(n for n, m in (("value_mask", value_mask), ("key_mask", key_mask)) if m is not None)
        # Keras's implicit masks: the inputs' Keras masks unless given (the key's only when it is another tensor).
        # The query's is always its own: Keras 3.15's call replaces a `query_mask` argument by it
        if query_mask is not None:
            _check_mask_shape(who, "query_mask", query_mask, (query.shape[0], *query.shape[1:-1]))
        query_mask = getattr(query, "_keras_mask", None)
        if value_mask is None:
            value_mask = getattr(value, "_keras_mask", None)
        if key_mask is None and key is not None and key is not value:
            key_mask = getattr(key, "_keras_mask", None)
        if not self.built:
            self.build(query.shape, value.shape, None if key is None else key.shape)
        self._check_built_shapes(query, value, key)
        q_shape, v_shape = _shape_tuple(query.shape), _shape_tuple(value.shape)
        t_q, t_v = tuple(q_shape[1:-1]), tuple(v_shape[1:-1])
        if key is not None and _shape_tuple(key.shape)[1:-1] != v_shape[1:-1]:
            raise ValueError(f"{who}: all dimensions of `value` and `key`, except the last one, must be equal. "
                             f"Received: value_shape={v_shape} and key_shape={_shape_tuple(key.shape)}")
        for what, m, want in (("query_mask", query_mask, (q_shape[0], *t_q)),
                              ("value_mask", value_mask, (v_shape[0], *t_v)),
                              ("key_mask", key_mask, (v_shape[0], *t_v)),
                              ("attention_mask", attention_mask, (q_shape[0], *t_q, *t_v))):
            if m is not None:
                _check_mask_shape(who, what, m, want)
        names, items = [], []
        for name, t in (("query", query), ("value", value), ("key", key), ("query_mask", query_mask),
                        ("value_mask", value_mask), ("key_mask", key_mask), ("attention_mask", attention_mask)):
            if t is not None:
                names.append(name)
                items.append(t)
        before = len(self._inbound_nodes)
        out = Layer.__call__(self, items, training=training, layout=tuple(names),
                             return_attention_scores=bool(return_attention_scores),
                             use_causal_mask=bool(use_causal_mask))
        if len(self._inbound_nodes) > before:  # what Keras writes of this call besides query, value and key
            self._inbound_nodes[-1]._keras_call_kwargs = {
                "return_attention_scores": bool(return_attention_scores), "use_causal_mask": bool(use_causal_mask),
                "explicit_masks": explicit}
        _set_output_mask(out, query_mask)  # as Keras: the output keeps the query's mask
        return tuple(out) if isinstance(out, list) else out

    def _check_built_shapes(self, query: Any, value: Any, key: Any) -> None:
        """A later call must fit the weights of the first: the same ranks and feature sizes."""
        if self._shapes is None:
            return
        who = f"MultiHeadAttention '{self.name}'"
        built_v = self._shapes["value_shape"]
        built = {"query": self._shapes["query_shape"], "value": built_v, "key": self._shapes.get("key_shape", built_v)}
        for what, t in (("query", query), ("value", value), ("key", value if key is None else key)):
            shape, want = _shape_tuple(t.shape), built[what]
            if len(shape) != len(want) or shape[-1] != want[-1]:
                raise ValueError(f"{who}: `{what}` of shape {shape} does not fit the layer, built for {what} "
                                 f"shape {tuple(want)} (the last axis, {want[-1]}, and the rank must stay the same)")

    def call(self, inputs: Any, layout: Tuple[str, ...] = ("query", "value"), return_attention_scores: bool = False,
             training: Any = None, use_causal_mask: bool = False) -> Any:
        got = dict(zip(layout, inputs))
        query, value = got["query"], got["value"]
        key = got.get("key", value)
        mask = self._attention_mask(query, value, got, use_causal_mask)
        q = self.query_dense(query)
        k = self.key_dense(key)
        v = self.value_dense(value)
        if (self.dropout == 0 and not return_attention_scores and len(q.shape) == 4
                and self._dot_equation == "aecd,abcd->acbe" and self._combine_equation == "acbe,aecd->abcd"):
            # Keras's fused path (no dropout, no scores, attention over the steps): one dot_product_attention
            while mask is not None and len(mask.shape) < 4:
                mask = ops.expand_dims(mask, axis=-3)  # (B, T, S) -> (B, 1, T, S): every head alike
            scale = 1.0 / float(np.sqrt(float(self.key_dim)))
            return self.output_dense(ops.dot_product_attention(q, k, v, mask=mask, scale=scale))
        q = ops.multiply(q, 1.0 / float(np.sqrt(float(self.key_dim))))
        scores = ops.einsum(self._dot_equation, k, q)
        if mask is not None:
            while len(mask.shape) < len(scores.shape):
                mask = ops.expand_dims(mask, axis=-len(self._norm_axes) * 2 - 1)
            scores = ops.where(mask, scores, _LARGE_NEGATIVE)
        probs = _softmax(scores, self._norm_axes)
        # Keras's Softmax(mask) zeroes the masked probabilities, so a query row masked everywhere attends to
        # nothing. Keras skips that layer for its fused dot_product_attention when nothing needs the probabilities
        # (no dropout, no scores returned, 3-D inputs): there such a row attends to every key alike (JAX and
        # TensorFlow backends). Both as Keras.
        fused = self.dropout == 0 and not return_attention_scores and len(q.shape) == 4
        if mask is not None and not fused:
            probs = ops.where(mask, probs, 0.0)
        used = probs
        if training and self.dropout > 0:
            used = random_module.dropout(probs, self.dropout, seed=self._seed_generator)
        out = self.output_dense(ops.einsum(self._combine_equation, used, v))
        if return_attention_scores:
            return out, probs
        return out

    def _attention_mask(self, query: Any, value: Any, got: dict, use_causal_mask: bool) -> Any:
        """Keras's `_compute_attention_mask`: query mask (B, T, 1), value and key masks (B, 1, S), the causal
        mask (1, T, S) and `attention_mask`, combined with logical and."""
        auto = None

        def both(a: Any, b: Any) -> Any:
            return b if a is None else ops.logical_and(a, b)

        if "query_mask" in got:
            auto = both(auto, ops.expand_dims(_as_bool_mask(got["query_mask"]), -1))
        if "value_mask" in got:
            auto = both(auto, ops.expand_dims(_as_bool_mask(got["value_mask"]), -2))
        if "key_mask" in got:
            auto = both(auto, ops.expand_dims(_as_bool_mask(got["key_mask"]), -2))
        if use_causal_mask:
            auto = both(auto, ops.convert_to_tensor(_causal_mask(int(query.shape[1]), int(value.shape[1]))))
        mask = _as_bool_mask(got["attention_mask"]) if "attention_mask" in got else None
        if auto is not None:
            mask = auto if mask is None else ops.logical_and(mask, auto)
        return mask

    def compute_output_shape(self, query_shape: Any, value_shape: Any = None, key_shape: Any = None) -> Any:
        query_shape = _shape_tuple(query_shape)
        if self._output_shape_arg:
            return query_shape[:-1] + tuple(self._output_shape_arg)
        return query_shape

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({
            "num_heads": self.num_heads, "key_dim": self.key_dim, "value_dim": self.value_dim,
            "dropout": self.dropout, "use_bias": self.use_bias, "use_gate": False,
            "output_shape": None if self._output_shape_arg is None else list(self._output_shape_arg),
            "attention_axes": None if self.attention_axes is None else list(self.attention_axes),
            "sliding_window": None, "kernel_initializer": self.kernel_initializer,
            "bias_initializer": self.bias_initializer,
            "kernel_regularizer": regularizers_module.serialize(self.kernel_regularizer),
            "bias_regularizer": regularizers_module.serialize(self.bias_regularizer),
            "activity_regularizer": None, "kernel_constraint": None, "bias_constraint": None, "seed": self.seed})
        return config

    @classmethod
    def from_config(cls, config: dict) -> "MultiHeadAttention":
        config = dict(config)
        config.pop("dtype", None)
        return cls(**config)

    def _keras_build_config(self) -> Optional[dict]:
        return None if self._shapes is None else {"shapes_dict": dict(self._shapes)}

    def _node_config(self, node: Any, tensor: Any) -> dict:
        ins = node.input_tensors
        names = list(node._trace_args[1]["layout"])
        got = dict(zip(names, ins))
        kwargs: dict = {}
        extra = getattr(node, "_keras_call_kwargs", {})
        if "key" in got:
            kwargs["key"] = tensor(got["key"])
        if "attention_mask" in got:
            kwargs["attention_mask"] = tensor(got["attention_mask"])
        for name in ("value_mask", "key_mask"):
            if name in got and name in extra.get("explicit_masks", ()):
                kwargs[name] = tensor(got[name])
        for name in ("return_attention_scores", "use_causal_mask"):
            if extra.get(name):
                kwargs[name] = True
        return {"args": [tensor(got["query"]), tensor(got["value"])], "kwargs": kwargs}

    def _call_from_node(self, node: dict, resolve: Any) -> Tuple[list, Any]:
        who = f"MultiHeadAttention '{self.name}'"
        refs: list = []
        args = node.get("args")
        kwargs = node.get("kwargs") or {}
        if not isinstance(args, list) or not 1 <= len(args) <= 3 or not isinstance(kwargs, dict):
            raise ValueError(f"{who}: an inbound node needs `args` [query, value] and `kwargs`, received {node!r}")
        allowed = {"value", "key", "query_mask", "value_mask", "key_mask", "attention_mask",
                   "return_attention_scores", "use_causal_mask", "training"}
        if any(k not in allowed for k in kwargs):
            raise ValueError(f"{who}: unsupported call arguments {sorted(set(kwargs) - allowed)}")
        a = [_node_tensor_refs(x, who, resolve, refs) for x in args]
        kw = {k: _node_tensor_refs(v, who, resolve, refs) for k, v in kwargs.items() if k != "training"}

        def call(tensors: list) -> Any:
            return self(*_fill_refs(a, tensors), **{k: _fill_refs(v, tensors) for k, v in kw.items()})

        return refs, call


# ---- Attention and AdditiveAttention ----------------------------------------------------------------------------
class Attention(_BuiltinTraced):
    """Dot-product attention (Luong-style) as Keras's Attention: inputs `[query, value]` or `[query, value,
    key]`, scores `query @ key^T` (times a trainable `scale` with `use_scale`; `score_mode="concat"`:
    `concat_score_weight * sum(tanh(scale * (q + k)))`), value positions masked by `mask=[query_mask,
    value_mask]` (the scores less 1e9) and `use_causal_mask`, softmax, dropout in training, and the output zeroed
    where the query mask is False."""

    def __init__(self, use_scale: bool = False, score_mode: str = "dot", dropout: float = 0.0,
                 seed: Optional[int] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        who = f"{self.class_name} '{self.name}'"
        if score_mode not in ("dot", "concat"):
            raise ValueError(f"{who}: invalid value for argument score_mode. Expected one of {{'dot', 'concat'}}. "
                             f"Received: score_mode={score_mode!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ValueError(f"{who}: `dropout` must be a float in [0, 1), received dropout={dropout!r}")
        self.use_scale = bool(use_scale)
        self.score_mode = score_mode
        self.dropout = float(dropout)
        self.seed = seed
        self._seed_generator = random_module.SeedGenerator(seed)
        self.scale: Any = None
        self.concat_score_weight: Any = None
        self._input_shapes: Optional[list] = None

    def _validate_inputs(self, inputs: Any, mask: Any = None) -> None:
        who = f"{self.class_name} '{self.name}'"
        if not isinstance(inputs, (list, tuple)):
            raise ValueError(f"{who}: the layer must be called on a list of inputs, namely [query, value] or "
                             f"[query, value, key]. Received: inputs={inputs!r}.")
        if len(inputs) < 2 or len(inputs) > 3:
            raise ValueError(f"{who}: the layer accepts an inputs list of length 2 or 3, namely [query, value] or "
                             f"[query, value, key]. Received length: {len(inputs)}.")
        if mask is not None:
            if not isinstance(mask, (list, tuple)):
                raise ValueError(f"{who}: the mask must be a list, namely [query_mask, value_mask]. Received: "
                                 f"mask={mask!r}.")
            if len(mask) < 2 or len(mask) > 3:
                raise ValueError(f"{who}: the layer accepts a mask list of length 2 or 3. Received a list of "
                                 f"length {len(mask)}.")

    def _check_shapes(self, shapes: List[Tuple[Optional[int], ...]]) -> None:
        who = f"{self.class_name} '{self.name}'"
        q, v = shapes[0], shapes[1]
        k = shapes[2] if len(shapes) > 2 else v
        if len(q) < 3 or len(v) < 3 or len(k) < 3:
            raise ValueError(f"{who}: query, value and key must be of rank 3 or more (batch, steps, dim). "
                             f"Received: query={q}, value={v}, key={k}")
        if q[-1] != k[-1]:
            raise ValueError(f"{who}: the query and the key must have the same last dimension. Received: query "
                             f"shape {q}, key shape {k}")
        if k[-2] != v[-2]:
            raise ValueError(f"{who}: the key and the value must have the same number of steps. Received: key "
                             f"shape {k}, value shape {v}")

    def build(self, input_shape: Any) -> None:
        self._validate_inputs(input_shape)
        shapes = [_shape_tuple(s) for s in input_shape]
        self._check_shapes(shapes)
        self._input_shapes = [list(s) for s in shapes]
        self.scale = None
        self.concat_score_weight = None
        if self.use_scale:
            self.scale = self.add_weight(name="scale", shape=(), initializer="ones")
        if self.score_mode == "concat":
            self.concat_score_weight = self.add_weight(name="concat_score_weight", shape=(), initializer="ones")
        self.built = True

    def __call__(self, inputs: Any, mask: Any = None, training: Any = None,  # type: ignore[override]
                 return_attention_scores: bool = False, use_causal_mask: bool = False, **kwargs: Any) -> Any:
        who = f"{self.class_name} '{self.name}'"
        if kwargs:
            raise TypeError(f"{who}: unexpected call arguments {sorted(kwargs)}")
        self._validate_inputs(inputs, mask)
        for i, t in enumerate(inputs):
            if not _is_tensor_like(t):
                raise TypeError(f"{who}: input {i} must be a tensor, received {t!r}")
        shapes = [_shape_tuple(t.shape) for t in inputs]
        self._check_shapes(shapes)
        explicit = mask is not None
        if mask is None:  # Keras's implicit masks: those of the inputs
            implicit = [getattr(t, "_keras_mask", None) for t in inputs]
            mask = implicit if any(m is not None for m in implicit) else None
        q_mask = mask[0] if mask else None
        v_mask = mask[1] if mask else None
        if q_mask is not None:
            _check_mask_shape(who, "mask[0] (query mask)", q_mask, shapes[0][:-1])
            if len(_shape_tuple(q_mask.shape)) != len(shapes[0]) - 1:
                raise ValueError(f"{who}: the query mask must have shape {shapes[0][:-1]}, received "
                                 f"{_shape_tuple(q_mask.shape)}")
        if v_mask is not None:
            if len(_shape_tuple(v_mask.shape)) != len(shapes[1]) - 1:
                raise ValueError(f"{who}: the value mask must have shape {shapes[1][:-1]}, received "
                                 f"{_shape_tuple(v_mask.shape)}")
            _check_mask_shape(who, "mask[1] (value mask)", v_mask, shapes[1][:-1])
        if not self.built:
            self.build(shapes)
        scale_dim = None if self.scale is None or not self.scale.shape else int(self.scale.shape[0])
        if scale_dim is not None and shapes[0][-1] != scale_dim:
            raise ValueError(f"{who}: the query's last dimension must be {scale_dim}, the size of the layer's "
                             f"`scale` (built on the first call); received query shape {shapes[0]}")
        names = ["query", "value"] + (["key"] if len(inputs) > 2 else [])
        items = list(inputs)
        for name, m in (("query_mask", q_mask), ("value_mask", v_mask)):
            if m is not None:
                names.append(name)
                items.append(m)
        out = Layer.__call__(self, items, training=training, layout=tuple(names),
                             return_attention_scores=bool(return_attention_scores),
                             use_causal_mask=bool(use_causal_mask))
        nodes = self._inbound_nodes
        if nodes:
            nodes[-1]._keras_call_kwargs = {"n_inputs": len(inputs), "mask": explicit,
                                            "return_attention_scores": bool(return_attention_scores),
                                            "use_causal_mask": bool(use_causal_mask)}
        _set_output_mask(out, q_mask)  # Keras's compute_mask: the query's mask
        return tuple(out) if isinstance(out, list) else out

    def _calculate_scores(self, query: Any, key: Any) -> Any:
        if self.score_mode == "dot":
            scores = ops.matmul(query, ops.einsum("...ij->...ji", key) if len(key.shape) > 3
                                else ops.transpose(key, (0, 2, 1)))
            if self.scale is not None:
                scores = ops.multiply(scores, self.scale)
            return scores
        q = ops.expand_dims(query, axis=-2)
        k = ops.expand_dims(key, axis=-3)
        s = ops.add(q, k)
        if self.scale is not None:
            s = ops.multiply(self.scale, s)
        return ops.multiply(self.concat_score_weight, ops.sum(ops.tanh(s), axis=-1))

    def call(self, inputs: Any, layout: Tuple[str, ...] = ("query", "value"), return_attention_scores: bool = False,
             training: Any = None, use_causal_mask: bool = False) -> Any:
        got = dict(zip(layout, inputs))
        q, v = got["query"], got["value"]
        k = got.get("key", v)
        scores = self._calculate_scores(q, k)
        v_mask = _as_bool_mask(got["value_mask"]) if "value_mask" in got else None
        if use_causal_mask:
            causal = ops.convert_to_tensor(_causal_mask(int(scores.shape[-2]), int(scores.shape[-1])))
            score_mask = causal if v_mask is None else ops.logical_and(ops.expand_dims(v_mask, -2), causal)
        else:
            score_mask = v_mask
        if score_mask is not None:
            if len(score_mask.shape) == 2:
                score_mask = ops.expand_dims(score_mask, -2)
            scores = ops.where(ops.logical_not(score_mask), ops.subtract(scores, -_LARGE_NEGATIVE), scores)
        weights = ops.softmax(scores, axis=-1)
        used = weights
        if training and self.dropout > 0:
            used = random_module.dropout(weights, self.dropout, seed=self._seed_generator)
        out = ops.matmul(used, v)
        if "query_mask" in got:
            out = ops.where(ops.expand_dims(_as_bool_mask(got["query_mask"]), -1), out, 0.0)
        if return_attention_scores:
            return out, weights
        return out

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        """Keras's output mask: the query's."""
        if mask is None or mask[0] is None:
            return None
        return mask[0]

    def compute_output_shape(self, input_shape: Any) -> Any:
        return (*_shape_tuple(input_shape[0])[:-1], _shape_tuple(input_shape[1])[-1])

    def _layer_config(self) -> dict:
        return {"use_scale": self.use_scale, "score_mode": self.score_mode, "dropout": self.dropout,
                "seed": self.seed}

    def _keras_build_config(self) -> Optional[dict]:
        return None if self._input_shapes is None else {"input_shape": [list(s) for s in self._input_shapes]}

    def _node_config(self, node: Any, tensor: Any) -> dict:
        extra = getattr(node, "_keras_call_kwargs", {})
        names = list(node._trace_args[1]["layout"])
        got = dict(zip(names, node.input_tensors))
        n = extra.get("n_inputs", 3 if "key" in got else 2)
        ins = [got["query"], got["value"]] + ([got["key"]] if "key" in got else [])
        kwargs: dict = {}
        if extra.get("mask"):
            kwargs["mask"] = [tensor(got[m]) if m in got else None for m in ("query_mask", "value_mask")]
        for name in ("return_attention_scores", "use_causal_mask"):
            if extra.get(name):
                kwargs[name] = True
        return {"args": [[tensor(t) for t in ins[:n]]], "kwargs": kwargs}

    def _call_from_node(self, node: dict, resolve: Any) -> Tuple[list, Any]:
        who = f"{self.class_name} '{self.name}'"
        refs: list = []
        args = node.get("args")
        kwargs = node.get("kwargs") or {}
        if not isinstance(args, list) or len(args) != 1 or not isinstance(args[0], list) or \
                not isinstance(kwargs, dict):
            raise ValueError(f"{who}: an inbound node needs `args` [[query, value(, key)]], received {node!r}")
        allowed = {"mask", "return_attention_scores", "use_causal_mask", "training"}
        if any(k not in allowed for k in kwargs):
            raise ValueError(f"{who}: unsupported call arguments {sorted(set(kwargs) - allowed)}")
        a = _node_tensor_refs(args[0], who, resolve, refs)
        kw = {k: _node_tensor_refs(v, who, resolve, refs) for k, v in kwargs.items() if k != "training"}

        def call(tensors: list) -> Any:
            return self(_fill_refs(a, tensors), **{k: _fill_refs(v, tensors) for k, v in kw.items()})

        return refs, call


class AdditiveAttention(Attention):
    """Additive (Bahdanau-style) attention as Keras's AdditiveAttention: scores
    `sum(scale * tanh(query + key), axis=-1)` with a trainable `scale` of shape `(dim,)` (glorot_uniform) when
    `use_scale`; masks, softmax and dropout as Attention."""

    def __init__(self, use_scale: bool = True, dropout: float = 0.0, **kwargs: Any) -> None:
        kwargs.pop("score_mode", None)
        super().__init__(use_scale=use_scale, dropout=dropout, **kwargs)

    def build(self, input_shape: Any) -> None:
        self._validate_inputs(input_shape)
        shapes = [_shape_tuple(s) for s in input_shape]
        self._check_shapes(shapes)
        self._input_shapes = [list(s) for s in shapes]
        self.scale = None
        if self.use_scale:
            self.scale = self.add_weight(name="scale", shape=(int(shapes[0][-1]),), initializer="glorot_uniform")
        self.built = True

    def _calculate_scores(self, query: Any, key: Any) -> Any:
        s = ops.tanh(ops.add(ops.expand_dims(query, axis=-2), ops.expand_dims(key, axis=-3)))
        if self.scale is not None:
            s = ops.multiply(self.scale, s)
        return ops.sum(s, axis=-1)

    def _layer_config(self) -> dict:
        return {"use_scale": self.use_scale, "dropout": self.dropout, "seed": self.seed}


# ---- TimeDistributed --------------------------------------------------------------------------------------------
def _inner_from_entry(entry: dict) -> Any:
    """The wrapped layer from its Keras config entry: a built-in class, or a registered custom one."""
    from . import layers as layers_module
    from . import saving

    if not isinstance(entry, dict) or not isinstance(entry.get("class_name"), str):
        raise ValueError(f"TimeDistributed: `layer` must be a layer or a layer config, received {entry!r}")
    objects = saving._Objects()
    who = f"TimeDistributed's layer ({entry['class_name']})"
    user = saving._user_class(entry, who, objects)
    if user is not None:
        return saving._custom_layer(entry, user, who, objects)
    if entry["class_name"] in saving._MODEL_CLASSES:  # a Sequential or functional model as the wrapped layer
        return saving._nested_model(entry, who, objects)
    cfg = saving._translate_layer_config(entry["class_name"], dict(entry.get("config") or {}))
    for key in ("batch_input_shape", "batch_shape", "input_shape", "input_dim", "batch_size"):
        cfg.pop(key, None)
    return layers_module.deserialize({"class_name": entry["class_name"], "config": cfg})


# Keras's built-in layers whose `call` takes a `mask` (TimeDistributed hands them the mask, reshaped with the inputs)
_MASKED_CALLS = ("SimpleRNN", "LSTM", "GRU", "Bidirectional", "GlobalAveragePooling1D", "Attention",
                 "AdditiveAttention", "TimeDistributed", "BatchNormalization", "Softmax", "Lambda", "RNN",
                 "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D", "Sequential", "Functional")
# of those, the ones that read a mask of one value per sample and step of their own input
_STEP_MASKED = ("SimpleRNN", "LSTM", "GRU", "Bidirectional", "GlobalAveragePooling1D")
# Keras's names of the keras.ops calls that compute the masks it writes in a file (kerust makes them again)
_MASK_OP_NAME = re.compile(r"^(not_equal|any|squeeze|expand_dims|logical_and|logical_or|cast)(_\d+)?$")


def _inner_takes_mask(inner: Any) -> bool:
    """Keras's `layer._call_has_mask_arg` for the wrapped layer."""
    from ._custom import call_has_arg, is_custom

    if isinstance(inner, Layer) and is_custom(inner) and not getattr(inner, "_keras_builtin", False):
        return call_has_arg(inner, "mask")
    if getattr(inner, "_subclassed", False):
        return call_has_arg(inner, "mask")
    return getattr(inner, "class_name", type(inner).__name__) in _MASKED_CALLS or \
        type(inner).__name__ in _MASKED_CALLS


class TimeDistributed(_BuiltinTraced):
    """Applies `layer` to every temporal slice of its input: `(batch, time, ...)` becomes `(batch * time, ...)`,
    goes through the layer (one set of weights for every step), and comes back as `(batch, time, ...)`.

    As Keras's: the mask (given as `mask=`, else the input's) goes on to the output unchanged, and reaches the
    wrapped layer, reshaped with the inputs to `(batch * time, ...)`, when the wrapped layer's call takes one."""

    def __init__(self, layer: Any, **kwargs: Any) -> None:
        from .models import Model

        if isinstance(layer, dict):
            layer = _inner_from_entry(layer)
        if not isinstance(layer, (Layer, Model)):
            raise ValueError("Please initialize `TimeDistributed` layer with a `keras.layers.Layer` instance. "
                             f"Received: {layer!r}")
        super().__init__(**kwargs)
        self.layer = layer
        self._input_shape_seen: Optional[list] = None

    def build(self, input_shape: Any) -> None:
        shape = _shape_tuple(input_shape)
        if len(shape) < 3:
            raise ValueError("`TimeDistributed` Layer should be passed an `input_shape` with at least 3 "
                             f"dimensions, received: {shape}")
        self._input_shape_seen = list(shape)
        self.built = True

    def _check_inner_mask(self, mask: Any, shape: Tuple[Any, ...]) -> None:
        """The mask the wrapped layer gets must be one it can read (kerust checks what Keras finds out when the
        model runs)."""
        who = f"TimeDistributed '{self.name}'"
        inner: Any = self.layer
        name = getattr(inner, "class_name", type(inner).__name__)
        mshape = _shape_tuple(mask.shape)
        if name in _STEP_MASKED:
            if len(shape) < 4 or len(mshape) != 3 or mshape[2] != shape[2]:
                raise ValueError(
                    f"{who}: the wrapped {name} layer reads a mask of one value per sample and step of its own "
                    f"input, so the mask must have shape (batch, time, {shape[2] if len(shape) > 2 else '?'}) "
                    f"for inputs of shape {shape}; received a mask of shape {mshape} (Keras accepts this call "
                    "and fails when the model runs)")
        elif name == "Lambda":
            import inspect

            try:
                takes = "mask" in inspect.signature(inner.function).parameters
            except (TypeError, ValueError, AttributeError):
                takes = False
            if takes:
                raise ValueError(f"{who}: passing a mask to the function of the wrapped Lambda layer is not "
                                 "supported by kerust yet")
        elif name in ("BatchNormalization", "Softmax", "RNN", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D",
                      "Attention", "AdditiveAttention") or not isinstance(inner, Layer):
            raise ValueError(f"{who}: passing a mask to the wrapped {name} layer is not supported by kerust yet")

    def __call__(self, inputs: Any, training: Any = None, mask: Any = None, **kwargs: Any) -> Any:
        who = f"TimeDistributed '{self.name}'"
        if kwargs:
            raise TypeError(f"{who}: unexpected call arguments {sorted(kwargs)}")
        if isinstance(inputs, (list, tuple)) or not _is_tensor_like(inputs):
            raise ValueError(f"{who}: kerust wraps layers of one input tensor; received {inputs!r}")
        shape = _shape_tuple(inputs.shape)
        if len(shape) < 3:
            raise ValueError("`TimeDistributed` Layer should be passed an `input_shape` with at least 3 "
                             f"dimensions, received: {shape}")
        given = mask is not None
        if mask is None:
            mask = getattr(inputs, "_keras_mask", None)
        if mask is not None and not _is_tensor_like(mask):
            raise TypeError(f"{who}: `mask` must be a tensor, received {mask!r}")
        reads = False
        if mask is not None:
            mshape = _shape_tuple(mask.shape)
            if len(mshape) < 2:
                raise ValueError("The `mask` passed to the `TimeDistributed` layer must be at least 2D (e.g., "
                                 f"`(batch_size, timesteps)`), but it has {len(mshape)} dimension(s) with shape "
                                 f"{mshape}.")
            if mshape[1] is not None and mshape[1] != shape[1]:
                raise ValueError(f"The `mask` passed to the `TimeDistributed` layer has a shape {mshape} that is "
                                 f"incompatible with the input shape {shape}. The first two dimensions of the mask "
                                 "(batch size and timesteps) must match the input's first two dimensions.")
            # as Keras: the mask goes to the wrapped layer only if its call takes one (Dense's does not)
            reads = _inner_takes_mask(self.layer)
            if reads:
                self._check_inner_mask(mask, shape)
        if not self.built:
            self.build(shape)
        # the mask is a tensor of the call when the wrapped layer reads it or it was given (a config writes it)
        carried = mask is not None and (reads or given)
        before = len(self._inbound_nodes)
        out = Layer.__call__(self, [inputs, mask] if carried else inputs, training=training,
                             mask_in=bool(carried), inner_mask=bool(reads))
        if len(self._inbound_nodes) > before:
            self._inbound_nodes[-1]._keras_call_kwargs = {"explicit_mask": bool(given and carried)}
        _set_output_mask(out, mask)  # as Keras: the input's mask goes on to the output
        return out

    def call(self, inputs: Any, training: Any = None, mask_in: bool = False, inner_mask: bool = False) -> Any:
        mask = None
        if mask_in:
            inputs, mask = inputs
        steps = int(inputs.shape[1])
        folded = ops.reshape(inputs, (-1, *[int(d) for d in inputs.shape[2:]]))
        from ._custom import accepts, is_custom

        kw: dict = {}
        if is_custom(self.layer) and accepts(self.layer.call, "training"):
            kw["training"] = training
        elif getattr(self.layer, "class_name", "") in ("Dropout", "SpatialDropout1D", "SpatialDropout2D",
                                                       "GaussianNoise", "BatchNormalization"):
            kw["training"] = training
        if inner_mask and mask is not None:
            kw["mask"] = ops.reshape(mask, (-1, *[int(d) for d in mask.shape[2:]]))
        with warnings.catch_warnings():
            # Keras runs the wrapped layer's `call` itself, so no mask it drops is reported (this layer hands on
            # its own)
            warnings.filterwarnings("ignore", message=".*does not support masking", category=UserWarning)
            out = self.layer(folded, **kw)
        if not hasattr(out, "_dims"):
            raise ValueError(f"TimeDistributed '{self.name}': the wrapped layer must return one tensor, it returned "
                             f"{out!r}")
        if out._dims and out._dims[0] == -1:
            # a layer node's output is "batch" rows; here the batch is (batch * steps), as the folded input's
            out._dims[0] = folded._dims[0]
        return ops.reshape(out, (None, steps, *[int(d) for d in out.shape[1:]]))

    def compute_output_shape(self, input_shape: Any) -> Any:
        shape = _shape_tuple(input_shape)
        layer: Any = self.layer
        inner = layer.compute_output_shape((shape[0], *shape[2:]))
        return (inner[0], shape[1], *inner[1:])

    def _layer_config(self) -> dict:
        from .saving import _layer_entry

        return {"layer": _layer_entry(self.layer)}

    def _keras_build_config(self) -> Optional[dict]:
        return None if self._input_shape_seen is None else {"input_shape": list(self._input_shape_seen)}

    def _node_config(self, node: Any, tensor: Any) -> dict:
        # as Keras: a mask given as `mask=` is written; one found on the input is made again on loading
        explicit = getattr(node, "_keras_call_kwargs", {}).get("explicit_mask", False)
        mask = tensor(node.input_tensors[1]) if explicit and len(node.input_tensors) > 1 else None
        return {"args": [tensor(node.input_tensors[0])], "kwargs": {"mask": mask}}

    def _call_from_node(self, node: dict, resolve: Any) -> Tuple[list, Any]:
        who = f"TimeDistributed '{self.name}'"
        args = node.get("args")
        kwargs = node.get("kwargs") or {}
        if not isinstance(args, list) or len(args) != 1 or not isinstance(kwargs, dict) or \
                any(k not in ("mask", "training") for k in kwargs):
            raise ValueError(f"{who}: an inbound node needs one tensor argument (and a mask), received {node!r}")
        refs: list = []
        a = _node_tensor_refs(args[0], who, resolve, refs)
        mask = kwargs.get("mask")
        history = mask.get("config", {}).get("keras_history") if isinstance(mask, dict) else None
        if isinstance(history, list) and history and isinstance(history[0], str) and \
                _MASK_OP_NAME.match(history[0]):
            mask = None  # the input's mask, which Keras recorded as ops: the layer before makes it again
        m = _node_tensor_refs(mask, who, resolve, refs) if mask is not None else None

        def call(tensors: list) -> Any:
            return self(_fill_refs(a, tensors), mask=_fill_refs(m, tensors) if m is not None else None)

        return refs, call


CLASSES = (MultiHeadAttention, Attention, AdditiveAttention, TimeDistributed)
