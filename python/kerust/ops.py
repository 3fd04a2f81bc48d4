"""``keras.ops``: NumPy-style ops that run eagerly on arrays (returning NumPy arrays) and, on symbolic tensors
(``keras.Input``, or the inputs of a custom layer's ``call`` while kerust traces it), record a node of the
graph the engine runs. Every op's shape rule, forward and derivative live in the engine (``src/ops``); this
module only maps Keras's signatures onto the engine's op configs and gives results Keras's dtypes.
"""

from __future__ import annotations

import builtins
import math
from types import SimpleNamespace
from typing import Any, List, Optional, Sequence

import numpy as np

from . import _core, _json
from ._graph import KerasTensor, Operation, record_op

_FLOATS = ("float16", "bfloat16", "float32", "float64")
_INTS = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")


# ---- dtypes: Keras's results for float32 floatx (JAX's rules: 64-bit types narrow to 32 bits) -------------------
def _dtype_of(x: Any) -> Optional[str]:
    """The dtype of a tensor, None for a Python scalar (a "weak" type that does not promote)."""
    if isinstance(x, KerasTensor):
        return x.dtype
    from ._variable import Variable

    if isinstance(x, Variable):
        return x.dtype
    if isinstance(x, (bool, int, float)) and not isinstance(x, np.generic):
        return None
    a = np.asarray(x)
    if a.dtype == np.bool_:
        return "bool"
    if np.issubdtype(a.dtype, np.integer):
        return "int32" if a.dtype.itemsize >= 4 or a.dtype.kind == "u" else str(a.dtype)
    if np.issubdtype(a.dtype, np.floating):
        return "float32" if a.dtype == np.float64 else str(a.dtype)
    raise TypeError(f"keras.ops: unsupported dtype {a.dtype} (expected numbers or bools)")


def _result_type(xs: Sequence[Any]) -> str:
    """numpy-style promotion over tensors; Python scalars only lift ints to float32 (as in Keras)."""
    typed = [d for d in (_dtype_of(x) for x in xs) if d is not None]
    weak = [x for x in xs if _dtype_of(x) is None]
    if not typed:
        if builtins.any(isinstance(x, float) for x in weak):
            return "float32"
        if builtins.all(isinstance(x, bool) for x in weak) and weak:
            return "bool"
        return "int32"
    floats = [d for d in typed if d in _FLOATS]
    if floats:
        order = ["float16", "bfloat16", "float32", "float64"]
        best = builtins.max(floats, key=order.index)
        if "float16" in floats and "bfloat16" in floats:
            best = "float32"
        return "float32" if best == "float64" else best
    ints = [d for d in typed if d in _INTS]
    if ints:
        if builtins.any(isinstance(x, float) for x in weak):
            return "float32"
        return "int32" if builtins.any(d in ("int32", "int64", "uint32", "uint64") for d in ints) else ints[0]
    if builtins.any(isinstance(x, float) for x in weak):
        return "float32"
    if builtins.any(isinstance(x, int) and not isinstance(x, bool) for x in weak):
        return "int32"
    return "bool"


def _float_type(xs: Sequence[Any]) -> str:
    t = _result_type(xs)
    return t if t in _FLOATS else "float32"


def standardize_dtype(dtype: Any) -> str:
    if dtype is None:
        return "float32"
    if isinstance(dtype, str):
        name = dtype
    else:
        name = np.dtype(dtype).name
    return name


def _np_dtype(dtype: str) -> Any:
    return np.bool_ if dtype == "bool" else np.dtype("float32" if dtype == "bfloat16" else dtype)


# ---- the two ways an op runs ------------------------------------------------------------------------------------
def _symbolic(x: Any) -> bool:
    return isinstance(x, KerasTensor)


def _any_symbolic(xs: Sequence[Any]) -> bool:
    from ._variable import Variable, tracing

    return builtins.any(_symbolic(x) for x in xs) or (tracing() and builtins.any(isinstance(x, Variable) for x in xs))


def _as_symbolic(x: Any) -> KerasTensor:
    """A graph tensor for `x`: itself, a variable read inside a trace, or a constant node."""
    from ._variable import Variable

    if isinstance(x, KerasTensor):
        return x
    if isinstance(x, Variable):
        return x._symbolic()
    a = np.asarray(x)
    dtype = _dtype_of(x) or _result_type([x])
    if a.dtype == object:
        raise TypeError(f"keras.ops: cannot use {x!r} as a tensor")
    values = [v if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))
              for v in a.astype(np.float64).ravel().tolist()]
    return _record("constant", {"shape": list(a.shape), "values": values}, [], dtype)


def _record(name: str, attrs: dict, inputs: Sequence[Any], dtype: str) -> KerasTensor:
    tensors = [_as_symbolic(x) for x in inputs]
    config = {"op": name, **attrs}
    dims = _core.op_shape(_json.dumps(config), [t._dims for t in tensors])
    return record_op(Operation(config), tensors, dims, dtype)


def _value(x: Any) -> np.ndarray:
    from ._variable import Variable

    if x is None:
        raise TypeError("keras.ops: None is not a tensor. Inside a traced call the batch axis of ops.shape(x) is "
                        "None (the batch size is not known yet): count values with ops.size(x) or "
                        "ops.sum(ops.ones_like(x)) instead")
    if isinstance(x, Variable):
        return x.numpy()
    return np.asarray(x)


def _run(name: str, inputs: Sequence[Any], attrs: Optional[dict] = None, dtype: Any = "same",
         seed: Optional[int] = None) -> Any:
    """Apply op `name` to `inputs`: record a node if any is symbolic, else compute now (NumPy result).
    `dtype`: "same" (promote the inputs), "float" (promote, at least float32), or a dtype name."""
    attrs = attrs or {}
    if dtype == "same":
        out_dtype = _result_type(inputs) if inputs else "float32"
    elif dtype == "float":
        out_dtype = _float_type(inputs)
    else:
        out_dtype = dtype
    if _any_symbolic(inputs):
        return _record(name, attrs, inputs, out_dtype)
    arrays = []
    for x in inputs:
        a = _value(x)
        if a.dtype == object or np.iscomplexobj(a):
            raise TypeError(f"{name}: expected numbers or bools, received {x!r}")
        arrays.append(np.asarray(a, dtype=np.float64, order="C"))
    if seed is None:
        seed = int(np.random.randint(0, 2**62))
    out = _core.op_eval(_json.dumps({"op": name, **attrs}), arrays, int(seed) % (1 << 63))
    return out.astype(_np_dtype(out_dtype))


# ---- arithmetic and math ------------------------------------------------------------------------------------------
def _binary(name: str, dtype: str = "same") -> Any:
    def op(x1: Any, x2: Any) -> Any:
        return _run(name, [x1, x2], dtype=dtype)

    op.__name__ = name
    op.__doc__ = f"Element-wise `{name}` with NumPy broadcasting."
    return op


add = _binary("add")
subtract = _binary("subtract")
multiply = _binary("multiply")
maximum = _binary("maximum")
minimum = _binary("minimum")
mod = _binary("mod")
floor_divide = _binary("floor_divide")
equal = _binary("equal", "bool")
not_equal = _binary("not_equal", "bool")
greater = _binary("greater", "bool")
greater_equal = _binary("greater_equal", "bool")
less = _binary("less", "bool")
less_equal = _binary("less_equal", "bool")
logical_and = _binary("logical_and", "bool")
logical_or = _binary("logical_or", "bool")
logical_xor = _binary("logical_xor", "bool")


def divide(x1: Any, x2: Any) -> Any:
    """Element-wise true division (ints give float32)."""
    return _run("divide", [x1, x2], dtype="float")


true_divide = divide


def divide_no_nan(x1: Any, x2: Any) -> Any:
    """`x1 / x2`, and 0 where `x2` is 0 (its gradient is finite there too)."""
    zero = equal(x2, 0)
    return where(zero, 0.0, divide(x1, where(zero, 1.0, x2)))


def power(x1: Any, x2: Any) -> Any:
    """`x1 ** x2`, element-wise."""
    return _run("power", [x1, x2])


def _unary(name: str, dtype: str = "same", engine: Optional[str] = None) -> Any:
    def op(x: Any) -> Any:
        return _run(engine or name, [x], dtype=dtype)

    op.__name__ = name
    op.__doc__ = f"Element-wise `{name}`."
    return op


negative = _unary("negative")
abs = _unary("abs")
absolute = abs
sign = _unary("sign")
square = _unary("square")
sqrt = _unary("sqrt", "float")
rsqrt = _unary("rsqrt", "float")
exp = _unary("exp", "float")
log = _unary("log", "float")
log1p = _unary("log1p", "float")
reciprocal = _unary("reciprocal", "float")
sin = _unary("sin", "float")
cos = _unary("cos", "float")
floor = _unary("floor", "float")
ceil = _unary("ceil", "float")
round = _unary("round", "float")
tanh = _unary("tanh", "float")
erf = _unary("erf", "float")
logical_not = _unary("logical_not", "bool")
relu = _unary("relu")
relu6 = _unary("relu6")
sigmoid = _unary("sigmoid", "float")
silu = _unary("silu", "float")
swish = silu
softplus = _unary("softplus", "float")
softsign = _unary("softsign", "float")
selu = _unary("selu", "float")
hard_sigmoid = _unary("hard_sigmoid", "float")
hard_silu = _unary("hard_silu", "float")
hard_swish = hard_silu


def gelu(x: Any, approximate: bool = True) -> Any:
    """Gaussian error linear unit; `approximate=True` (Keras's default for ops) is the tanh form."""
    return _run("gelu", [x], {"approximate": bool(approximate)}, dtype="float")


def elu(x: Any, alpha: float = 1.0) -> Any:
    return _run("elu", [x], {"alpha": float(alpha)}, dtype="float")


def leaky_relu(x: Any, negative_slope: float = 0.2) -> Any:
    return _run("leaky_relu", [x], {"negative_slope": float(negative_slope)}, dtype="float")


def softmax(x: Any, axis: int = -1) -> Any:
    return _run("softmax", [x], {"axis": int(axis)}, dtype="float")


def log_softmax(x: Any, axis: int = -1) -> Any:
    return _run("log_softmax", [x], {"axis": int(axis)}, dtype="float")


def clip(x: Any, x_min: Any, x_max: Any) -> Any:
    """Values limited to [x_min, x_max]."""
    out = _result_type([x]) if _result_type([x]) != "bool" else "int32"
    return _run("clip", [x], {"min": float(x_min), "max": float(x_max)}, dtype=out)


def where(condition: Any, x1: Any = None, x2: Any = None) -> Any:
    """`x1` where `condition`, else `x2`; with one argument, the indices of the non-zero values."""
    if x1 is None and x2 is None:
        if _any_symbolic([condition]):
            raise TypeError("keras.ops.where(condition) without x1/x2 has a data-dependent shape; kerust cannot "
                            "trace it (give x1 and x2)")
        return tuple(i.astype(np.int32) for i in np.nonzero(_value(condition)))
    if x1 is None or x2 is None:
        raise ValueError("keras.ops.where: give both x1 and x2, or neither")
    return _run("where", [condition, x1, x2], dtype=_result_type([x1, x2]))


def cond(pred: Any, true_fn: Any, false_fn: Any) -> Any:
    """`true_fn()` if `pred` else `false_fn()`. On a symbolic `pred` both branches are traced and the result is
    chosen element-wise (`where`), so both must give tensors of one shape."""
    if not _any_symbolic([pred]):
        return true_fn() if bool(np.asarray(_value(pred))) else false_fn()
    t, f = true_fn(), false_fn()
    return where(pred, t, f)


# ---- reductions -----------------------------------------------------------------------------------------------------
def _axes(axis: Any) -> Any:
    if axis is None:
        return None
    if isinstance(axis, (list, tuple)):
        return [int(a) for a in axis]
    return [int(axis)]


def _reduction(name: str, dtype: str = "same") -> Any:
    def op(x: Any, axis: Any = None, keepdims: bool = False, **kwargs: Any) -> Any:
        if kwargs.get("initial") is not None:
            raise ValueError(f"{name}: `initial` is not supported by kerust")
        out = dtype
        if dtype == "same" and _result_type([x]) == "bool":
            out = "int32" if name in ("sum", "prod") else "bool"
        return _run(name, [x], {"axis": _axes(axis), "keepdims": bool(keepdims)}, dtype=out)

    op.__name__ = name
    op.__doc__ = f"`{name}` over `axis` (None: every axis)."
    return op


sum = _reduction("sum")
prod = _reduction("prod")
max = _reduction("max")
min = _reduction("min")
amax = max
amin = min
mean = _reduction("mean", "float")
var = _reduction("var", "float")
std = _reduction("std", "float")
logsumexp = _reduction("logsumexp", "float")


def any(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """Whether any value over `axis` (None: every axis) is non-zero."""
    return cast(max(cast(x, "float32"), axis=axis, keepdims=keepdims), "bool")


def all(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """Whether every value over `axis` (None: every axis) is non-zero."""
    return cast(min(cast(x, "float32"), axis=axis, keepdims=keepdims), "bool")


def argmax(x: Any, axis: Optional[int] = None, keepdims: bool = False) -> Any:
    return _run("argmax", [x], {"axis": None if axis is None else int(axis), "keepdims": bool(keepdims)},
                dtype="int32")


def argmin(x: Any, axis: Optional[int] = None, keepdims: bool = False) -> Any:
    return _run("argmin", [x], {"axis": None if axis is None else int(axis), "keepdims": bool(keepdims)},
                dtype="int32")


def cumsum(x: Any, axis: Optional[int] = None, dtype: Any = None) -> Any:
    out = standardize_dtype(dtype) if dtype is not None else _result_type([x])
    if out == "bool":
        out = "int32"
    return _run("cumsum", [x], {"axis": None if axis is None else int(axis)}, dtype=out)


def norm(x: Any, ord: Any = None, axis: Any = None, keepdims: bool = False) -> Any:
    """Vector or matrix norm (NumPy's `linalg.norm`): ord None/2 (Euclidean, or Frobenius over two axes), 1,
    inf, 'fro'; matrix 1/inf norms over two axes."""
    rank = len(shape(x))
    axes = _axes(axis)
    inf = float("inf")
    attrs = {"axis": axes, "keepdims": bool(keepdims)}
    if ord is None or ord == "fro" or (ord == 2 and (axes is None and rank == 1 or axes and len(axes) == 1)):
        return _run("norm2", [x], attrs, dtype="float")
    matrix = (axes is not None and len(axes) == 2) or (axes is None and rank == 2)
    if not matrix:
        if ord == 1:
            return _run("norm1", [x], attrs, dtype="float")
        if ord == inf:
            return _run("norm_inf", [x], attrs, dtype="float")
        raise ValueError(f"norm: ord={ord!r} is not supported by kerust (use None, 1, 2, inf or 'fro')")
    a0, a1 = axes if axes is not None else [0, 1]
    if ord in (1, inf):
        summed_axis, max_axis = (a0, a1) if ord == 1 else (a1, a0)
        col = sum(abs(x), axis=summed_axis, keepdims=True)
        out = max(col, axis=max_axis, keepdims=True)
        if not keepdims:
            out = squeeze(out, axis=sorted([a0 % rank, a1 % rank]))
        return out
    raise ValueError(f"norm: the matrix norm ord={ord!r} is not supported by kerust (use None, 1, inf or 'fro')")


# ---- matrix products -------------------------------------------------------------------------------------------------
def matmul(x1: Any, x2: Any) -> Any:
    """NumPy's matmul: batched, with broadcasting of the batch axes."""
    return _run("matmul", [x1, x2])


def dot_product_attention(query: Any, key: Any, value: Any, bias: Any = None, mask: Any = None,
                          scale: Optional[float] = None, is_causal: bool = False, flash_attention: Any = None,
                          attn_logits_soft_cap: Any = None) -> Any:
    """Keras's scaled dot-product attention: `softmax(where(mask, q k^T * scale, -inf)) v` per head, for query
    `(B, T, H, D)`, key `(B, S, H, D)`, value `(B, S, H, Dv)` and a bool mask broadcastable to `(B, H, T, S)`;
    `scale` defaults to `1 / sqrt(D)`; `is_causal` keeps key step s for query step t only when s <= t. A query
    row masked everywhere weighs every key alike. One engine op (its own backward), not a chain of ops."""
    for what, value_ in (("bias", bias), ("attn_logits_soft_cap", attn_logits_soft_cap)):
        if value_ is not None:
            raise ValueError(f"dot_product_attention: `{what}` is not supported by kerust yet")
    if flash_attention:
        raise ValueError("dot_product_attention: `flash_attention=True` is not supported by kerust")
    q_shape, k_shape = shape(query), shape(key)
    if len(q_shape) != 4 or len(k_shape) != 4:
        raise ValueError(f"dot_product_attention: query and key must have 4 axes (batch, steps, heads, depth); "
                         f"received shapes {q_shape} and {k_shape}")
    if scale is None:
        scale = 1.0 / math.sqrt(float(q_shape[-1]))
    if is_causal:
        causal = np.tril(np.ones((int(q_shape[1]), int(k_shape[1])), dtype=bool))
        mask = causal if mask is None else logical_and(mask, causal)
    inputs = [query, key, value] + ([] if mask is None else [mask])
    return _run("dot_product_attention", inputs, {"scale": float(scale)}, dtype="float")


def einsum(subscripts: str, *operands: Any) -> Any:
    """Einstein summation over one or two operands (every axis named; no repeated letter within one)."""
    if not isinstance(subscripts, str):
        raise TypeError(f"einsum: `subscripts` must be a string, received {subscripts!r}")
    subscripts = _expand_ellipsis(subscripts, [len(shape(o)) for o in operands])
    return _run("einsum", list(operands), {"subscripts": subscripts})


def _expand_ellipsis(spec: str, ranks: List[int]) -> str:
    """Replace '...' by letters the subscripts do not use, as many as each operand's extra axes."""
    if "..." not in spec:
        return spec
    spec = spec.replace(" ", "")
    lhs, _, rhs = spec.partition("->")
    parts = lhs.split(",")
    used = set(spec) - {".", ",", "-", ">"}
    free = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" if c not in used]
    widest = 0
    new_parts = []
    for p, r in zip(parts, ranks):
        if "..." in p:
            n = r - (len(p) - 3)
            widest = builtins.max(widest, n)
            new_parts.append(p.replace("...", "".join(free[widest - n:widest]) if n else ""))
        else:
            new_parts.append(p)
    ell = "".join(free[:widest])
    if "->" in spec:
        out = rhs.replace("...", ell)
    else:
        letters = [c for p in parts for c in p if c != "."]
        out = ell + "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    return ",".join(new_parts) + "->" + out


def tensordot(x1: Any, x2: Any, axes: Any = 2) -> Any:
    """Sum over `axes` of both: an int N (the last N of x1 with the first N of x2) or a pair of lists."""
    if isinstance(axes, int):
        r1 = len(shape(x1))
        axes_a, axes_b = list(range(r1 - axes, r1)), list(range(axes))
    else:
        a, b = axes
        axes_a = [int(a)] if isinstance(a, int) else [int(v) for v in a]
        axes_b = [int(b)] if isinstance(b, int) else [int(v) for v in b]
    return _run("tensordot", [x1, x2], {"axes_a": axes_a, "axes_b": axes_b})


def dot(x1: Any, x2: Any) -> Any:
    """NumPy's dot: products of scalars, inner products of vectors, and sums over x1's last axis with x2's
    second-to-last."""
    r1, r2 = len(shape(x1)), len(shape(x2))
    if r1 == 0 or r2 == 0:
        return multiply(x1, x2)
    if r2 == 1:
        return tensordot(x1, x2, axes=([r1 - 1], [0]))
    return tensordot(x1, x2, axes=([r1 - 1], [r2 - 2]))


# ---- shapes ---------------------------------------------------------------------------------------------------------
def shape(x: Any) -> tuple:
    """The shape as a tuple of ints (`None` for the batch axis of a symbolic tensor)."""
    if isinstance(x, KerasTensor):
        return x.shape
    from ._variable import Variable

    if isinstance(x, Variable):
        return tuple(x.shape)
    return tuple(int(d) for d in np.shape(x))


def size(x: Any) -> Any:
    """The number of values in `x` (int32); of a symbolic tensor, counted when the graph runs."""
    if _any_symbolic([x]):
        return sum(ones_like(x, dtype="int32"))
    return np.asarray(np.size(_value(x)), dtype=np.int32)


def ndim(x: Any) -> int:
    return len(shape(x))


def reshape(x: Any, newshape: Any) -> Any:
    """`x` with shape `newshape` (one entry may be -1; `None` stands for the batch size)."""
    if isinstance(newshape, int):
        newshape = (newshape,)
    target = [None if d is None else int(d) for d in newshape]
    return _run("reshape", [x], {"shape": target})


def transpose(x: Any, axes: Any = None) -> Any:
    return _run("transpose", [x], {"axes": None if axes is None else [int(a) for a in axes]})


def expand_dims(x: Any, axis: Any) -> Any:
    return _run("expand_dims", [x], {"axis": _axes(axis)})


def squeeze(x: Any, axis: Any = None) -> Any:
    return _run("squeeze", [x], {"axis": _axes(axis)})


def broadcast_to(x: Any, shape: Sequence[Any]) -> Any:
    return _run("broadcast_to", [x], {"shape": [None if d is None else int(d) for d in shape]})


def concatenate(xs: Sequence[Any], axis: int = 0) -> Any:
    xs = list(xs)
    return _run("concatenate", xs, {"axis": int(axis)}, dtype=_result_type(xs))


def stack(x: Sequence[Any], axis: int = 0) -> Any:
    xs = list(x)
    return _run("stack", xs, {"axis": int(axis)}, dtype=_result_type(xs))


def _slice_items(x: Any, items: List[tuple]) -> Any:
    return _run("slice", [x], {"items": [list(i) for i in items]})


def slice(inputs: Any, start_indices: Sequence[int], shape: Sequence[int]) -> Any:
    """The block of `shape` starting at `start_indices`."""
    items = [(int(s), int(s) + int(n), 1) for s, n in zip(start_indices, shape)]
    return _slice_items(inputs, items)


def split(x: Any, indices_or_sections: Any, axis: int = 0) -> list:
    """Pieces of `x` along `axis`: a number of equal sections, or the indices where to cut."""
    size = shape(x)[axis]
    if size is None:
        raise ValueError("split: cannot split the batch axis of a symbolic tensor")
    if isinstance(indices_or_sections, int):
        n = indices_or_sections
        if n <= 0 or size % n:
            raise ValueError(f"split: an axis of size {size} cannot be split into {n} equal sections")
        cuts = [size // n * i for i in range(1, n)]
    else:
        cuts = [int(i) for i in indices_or_sections]
    bounds = [0, *cuts, size]
    rank = len(shape(x))
    a = axis % rank
    pieces = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        items = [(None, None, 1)] * a + [(lo, hi, 1)]
        pieces.append(_slice_items(x, items))
    return pieces


def tile(x: Any, repeats: Any) -> Any:
    reps = [int(repeats)] if isinstance(repeats, int) else [int(r) for r in repeats]
    return _run("tile", [x], {"repeats": reps})


def repeat(x: Any, repeats: Any, axis: Optional[int] = None) -> Any:
    if not isinstance(repeats, (int, np.integer)):
        raise TypeError(f"repeat: kerust takes one int `repeats`, received {repeats!r}")
    return _run("repeat", [x], {"repeats": int(repeats), "axis": None if axis is None else int(axis)})


def take(x: Any, indices: Any, axis: Optional[int] = None) -> Any:
    """Values of `x` at `indices` along `axis` (None: of the flattened `x`)."""
    return _run("take", [x, indices], {"axis": None if axis is None else int(axis)}, dtype=_result_type([x]))


def take_along_axis(x: Any, indices: Any, axis: Optional[int] = None) -> Any:
    if axis is None:
        x = reshape(x, (-1,))
        indices = reshape(indices, (-1,))
        axis = 0
    return _run("take_along_axis", [x, indices], {"axis": int(axis)}, dtype=_result_type([x]))


def pad(x: Any, pad_width: Any, mode: str = "constant", constant_values: Any = None) -> Any:
    """Constant padding; `pad_width` as NumPy takes it (an int, one pair, or one pair per axis)."""
    if mode != "constant":
        raise ValueError(f"pad: mode={mode!r} is not supported by kerust (only 'constant')")
    rank = len(shape(x))
    w = np.asarray(pad_width, dtype=np.int64)
    if w.ndim == 0:
        w = np.full((rank, 2), int(w))
    elif w.ndim == 1:
        w = np.tile(w.reshape(1, -1) if w.size == 2 else w.reshape(-1, 1), (rank, 1 if w.size == 2 else 2))
    elif w.shape[0] == 1 and rank > 1:
        w = np.tile(w, (rank, 1))
    if (w < 0).any():
        raise ValueError(f"pad: `pad_width` must be non-negative, received {pad_width!r}")
    value = 0.0 if constant_values is None else float(constant_values)
    return _run("pad", [x], {"widths": w.tolist(), "value": value})


def one_hot(x: Any, num_classes: int, axis: int = -1, dtype: Any = None) -> Any:
    return _run("one_hot", [x], {"num_classes": int(num_classes), "axis": int(axis)},
                dtype=standardize_dtype(dtype))


def _getitem(x: Any, key: Any) -> Any:
    """NumPy basic indexing (ints, slices, None, ...) on a symbolic tensor."""
    if not isinstance(key, tuple):
        key = (key,)
    rank = len(shape(x))
    if builtins.any(k is Ellipsis for k in key):
        i = next(j for j, k in enumerate(key) if k is Ellipsis)
        fill = rank - (len(key) - 1 - builtins.sum(1 for k in key if k is None))
        key = key[:i] + (builtins.slice(None),) * fill + key[i + 1:]
    items: List[tuple] = []
    out_shape_ops: List[Any] = []  # per input axis: "keep", "drop"; None entries: "new"
    for k in key:
        if k is None:
            out_shape_ops.append("new")
        elif isinstance(k, builtins.slice):
            items.append((k.start, k.stop, 1 if k.step is None else k.step))
            out_shape_ops.append("keep")
        elif isinstance(k, (int, np.integer)):
            k = int(k)
            items.append((k, k + 1 if k != -1 else None, 1))
            out_shape_ops.append("drop")
        else:
            raise TypeError(f"kerust: indexing a symbolic tensor with {k!r} is not supported; use keras.ops.take "
                            "or keras.ops.take_along_axis")
    y = _slice_items(x, items) if builtins.any(i != (None, None, 1) for i in items) else x
    drop = []
    pos = 0
    for op in out_shape_ops:
        if op == "drop":
            drop.append(pos)
        if op != "new":
            pos += 1
    if drop:
        y = squeeze(y, axis=drop)
    new_at = []
    pos = 0
    for op in out_shape_ops:
        if op == "new":
            new_at.append(pos)
            pos += 1
        elif op == "keep":
            pos += 1
    if new_at:
        y = expand_dims(y, axis=new_at)
    return y


# ---- creation -------------------------------------------------------------------------------------------------------
def _shape_arg(shape: Any) -> list:
    if isinstance(shape, (int, np.integer)):
        return [int(shape)]
    out = []
    for d in shape:
        if d is not None and (int(d) < 0):
            raise ValueError(f"Cannot convert '{tuple(shape)}' to a shape. Negative dimensions are not allowed.")
        out.append(None if d is None else int(d))
    return out


def _constant(name: str, attrs: dict, dtype: str, batched: bool) -> Any:
    if batched:
        return _record(name, attrs, [], dtype)
    return _run(name, [], attrs, dtype=dtype)


def full(shape: Any, fill_value: Any, dtype: Any = None) -> Any:
    s = _shape_arg(shape)
    out = standardize_dtype(dtype)
    return _constant("fill", {"shape": s, "value": float(fill_value)}, out, None in s)


def zeros(shape: Any, dtype: Any = None) -> Any:
    return full(shape, 0.0, dtype)


def ones(shape: Any, dtype: Any = None) -> Any:
    return full(shape, 1.0, dtype)


def full_like(x: Any, fill_value: Any, dtype: Any = None) -> Any:
    out = standardize_dtype(dtype) if dtype is not None else (_dtype_of(x) or _result_type([x]))
    value = float(fill_value)
    if out in _INTS:
        value = float(int(value))
    return _run("fill_like", [x], {"value": value}, dtype=out)


def zeros_like(x: Any, dtype: Any = None) -> Any:
    return full_like(x, 0, dtype)


def ones_like(x: Any, dtype: Any = None) -> Any:
    return full_like(x, 1, dtype)


def arange(start: Any, stop: Any = None, step: Any = 1, dtype: Any = None) -> Any:
    """Evenly spaced values in [start, stop); ints give int32, floats float32."""
    if stop is None:
        start, stop = 0, start
    if dtype is None:
        dtype = "float32" if builtins.any(isinstance(v, (float, np.floating)) for v in (start, stop, step)) else "int32"
    return _run("arange", [], {"start": float(start), "stop": float(stop), "step": float(step)},
                dtype=standardize_dtype(dtype))


def eye(N: int, M: Optional[int] = None, k: int = 0, dtype: Any = None) -> Any:
    return _run("eye", [], {"N": int(N), "M": None if M is None else int(M), "k": int(k)},
                dtype=standardize_dtype(dtype))


def identity(n: int, dtype: Any = None) -> Any:
    return eye(n, dtype=dtype)


def cast(x: Any, dtype: Any) -> Any:
    """`x` as `dtype`: to an int type values truncate toward zero; to bool, non-zero is True."""
    out = standardize_dtype(dtype)
    if not _any_symbolic([x]):
        return np.asarray(_value(x)).astype(_np_dtype(out))
    src = _dtype_of(x)
    if out == "bool":
        return _run("nonzero", [x], dtype="bool")
    if out in _INTS and src in _FLOATS:
        return _run("trunc", [x], dtype=out)
    return _run("identity", [x], dtype=out)


def convert_to_tensor(x: Any, dtype: Any = None, sparse: Any = None) -> Any:
    """`x` as a tensor: symbolic tensors pass through; anything else becomes a NumPy array of Keras's dtype."""
    if _any_symbolic([x]):
        return x if dtype is None else cast(x, dtype)
    a = _value(x)
    out = standardize_dtype(dtype) if dtype is not None else _dtype_of(a) or _result_type([x])
    return np.asarray(a).astype(_np_dtype(out))


def convert_to_numpy(x: Any) -> np.ndarray:
    """A NumPy copy of a tensor's values (not possible for a symbolic tensor: it has none yet)."""
    if isinstance(x, KerasTensor):
        return x.__array__()
    return np.array(_value(x))


def stop_gradient(variable: Any) -> Any:
    """The same values, with no gradient flowing back through them."""
    return _run("stop_gradient", [variable])


def is_tensor(x: Any) -> bool:
    return isinstance(x, (np.ndarray, KerasTensor))


# ---- ops.nn ----------------------------------------------------------------------------------------------------------
nn = SimpleNamespace(
    relu=relu, relu6=relu6, sigmoid=sigmoid, softmax=softmax, log_softmax=log_softmax, gelu=gelu, silu=silu,
    swish=silu, softplus=softplus, softsign=softsign, elu=elu, selu=selu, leaky_relu=leaky_relu,
    hard_sigmoid=hard_sigmoid, hard_silu=hard_silu, hard_swish=hard_silu, one_hot=one_hot,
    dot_product_attention=dot_product_attention,
)

from ._image_ops import image as image  # noqa: E402  (keras.ops.image, in python/kerust/_image_ops.py)
