"""``kerust.ops`` (Keras 3's ``keras.ops``) against NumPy references and Keras 3's documented semantics.

What is checked, in eager mode (NumPy arrays or Python scalars in, NumPy arrays out):

- element-wise arithmetic, powers, comparisons and logical ops, with broadcasting pairs ``(2, 3, 4)`` with
  ``(4,)``, ``(3, 1)``, ``(1, 3, 1)``, ``(3, 1)`` with ``(4,)``, and Python floats on either side;
- unary math (``sqrt``, ``rsqrt``, ``exp``, ``log``, ``log1p``, ``tanh``, ``erf``, ...);
- ``matmul`` (2-D, batched 3-D/4-D with batch broadcasting, the 1-D vector cases), ``dot``, ``einsum`` (the
  patterns attention and bilinear layers use), ``tensordot`` (``axes`` an int or a pair of lists);
- shape manipulation (``transpose``, ``reshape``, ``expand_dims``, ``squeeze``, ``broadcast_to``,
  ``concatenate``, ``stack``, ``split``, ``tile``, ``repeat``, ``take``, ``take_along_axis``, ``slice``, ``pad``);
- reductions with ``axis`` None / int / tuple and ``keepdims`` both ways, ``argmax``/``argmin``, ``cumsum``,
  ``norm``;
- creation (``arange`` with one/two/three arguments, ``zeros``, ``ones``, ``full``, ``*_like``, ``eye``,
  ``one_hot``), ``cast``, ``shape``, ``convert_to_tensor``/``convert_to_numpy``, ``stop_gradient``;
- activations both as ``ops.<name>`` and, where Keras has them there, ``ops.nn.<name>``;
- the result dtypes Keras gives (comparisons -> bool, argmax -> int32, ``arange`` with ints -> int32, int
  division -> float32, ``full`` with an int fill -> float32, Python scalars are "weak" and do not promote, ...);
- symbolic mode: ops and operators on ``keras.Input`` give a KerasTensor whose ``.shape`` (``None`` for the
  batch axis) and ``.dtype`` are Keras's;
- bad input raises ``ValueError`` naming the op (where asked) and the shapes involved.

How the expectations were verified: every value below is a NumPy formula computed inside the test (float64,
compared at float32 tolerance); nothing here imports Keras and there is no fixture file. Each expectation
(values, result dtypes, shapes, argument names and defaults, symbolic shapes and dtypes) was checked by running
this very file against real Keras 3.15.1 on the JAX 0.10.2 CPU backend: ``.keras-venv/bin/python -m pytest
tests/test_ops.py`` with ``KERAS_BACKEND=jax`` and, first on ``PYTHONPATH``, a ``kerust/__init__.py`` that is just
``import sys, keras; sys.modules[__name__] = keras`` (results are read back with ``np.asarray``). 540 of the 544
cases pass there; the 4 that do not test kerust's own, stricter choices:

- ``test_eager_results_are_numpy``: Keras returns backend (JAX) arrays; kerust's eager tensors are NumPy arrays.
- ``test_errors_matmul_incompatible_eager``, ``test_errors_reshape_incompatible_size``: eager Keras/JAX raises
  JAX's ``TypeError`` there (``dot_general requires contracting dimensions ...``, ``cannot reshape array of
  shape (2, 3) (size 6) into shape (4, 2) ...``); kerust raises ``ValueError`` in both modes.
- ``test_errors_matmul_incompatible_symbolic``: Keras raises ``ValueError`` naming both shapes (``Inner
  dimensions ... received `x1.shape=(None, 2, 3)` and `x2.shape=(4, 5)```) but not the word "matmul".

The add errors match Keras's own wording in both modes (eager ``Incompatible shapes for broadcasting:
shapes=[(2, 3), (4,)]``, symbolic ``... Input shapes are: [None, 2, 3] and [4].``); the regexes accept both
``(2, 3)`` and ``[2, 3]`` spellings of a shape.

Keras facts worth knowing (all verified): ``ops.gelu`` defaults to ``approximate=True`` (the tanh form), while
``keras.activations.gelu`` defaults to ``approximate=False``; ``hard_sigmoid(x) = clip(x / 6 + 1 / 2, 0, 1)``
(``relu6(x + 3) / 6``; Keras 2's was ``0.2 x + 0.5``); ``leaky_relu``'s ``negative_slope`` defaults to 0.2;
``ops.nn`` has no ``tanh`` or ``erf`` (those live in ``ops`` only); ``std``/``var`` are population (ddof 0);
``ops.repeat``/``ops.take``/``ops.cumsum`` with ``axis=None`` flatten; ``ops.shape`` returns a tuple of Python
ints (``None`` for unknown symbolic dims); ``ops.where(c)`` with one argument returns a tuple of int32 index
arrays; ``one_hot`` of an out-of-range index (-1 or ``num_classes``) is an all-zero row. On a KerasTensor,
``==`` is Python identity (a bool; Keras keeps tensors hashable) while ``!=`` is element-wise, so symbolic
equality is checked through ``ops.equal`` / ``ops.not_equal`` only; ``ops.transpose`` of a ``(None, 3, 4)``
input is ``(4, 3, None)``.
"""

from __future__ import annotations

import math
import re

import kerust as keras
import numpy as np
import pytest
from kerust import ops

TOL = {"rtol": 1e-5, "atol": 1e-6}
TRANS = {"rtol": 3e-5, "atol": 3e-6}  # transcendental functions (exp, log, tanh, erf, pow, ...)

_RNG = np.random.default_rng(20240607)


def _normal(*shape):
    return _RNG.standard_normal(shape).astype(np.float32)


def _away(x):
    """Same signs as ``x`` but at least 0.5 away from zero (safe divisors)."""
    return (np.where(x >= 0, 1.0, -1.0) * (np.abs(x) + 0.5)).astype(np.float32)


A = _normal(2, 3, 4)
A2 = _normal(2, 3, 4)
B4 = _normal(4)
B31 = _normal(3, 1)
B131 = _normal(1, 3, 1)
POS = (np.abs(_normal(2, 3, 4)) + 0.5).astype(np.float32)  # domain of log / sqrt / rsqrt / fractional powers
# integer-valued floats, so that equal / not_equal / greater_equal see ties
I_A = _RNG.integers(-2, 3, (2, 3, 4)).astype(np.float32)
I_B = _RNG.integers(-2, 3, (2, 3, 4)).astype(np.float32)
I_4 = _RNG.integers(-2, 3, (4,)).astype(np.float32)
P = _RNG.random((2, 3, 4)) > 0.5
P2 = _RNG.random((2, 3, 4)) > 0.5
P4 = np.array([True, False, True, False])
# activation inputs: fixed points where formulas differ (hard_sigmoid's +-3 knees, relu6's 6) plus random values
X_ACT = np.concatenate(
    [
        [-7.0, -4.0, -3.0, -2.9, -2.5, -1.0, -0.5, -0.1, 0.0, 0.1, 0.5, 1.0, 2.5, 2.9, 3.0, 4.0, 6.0, 6.5, 8.0],
        3.0 * _normal(21),
    ]
).astype(np.float32).reshape(5, 8)


def _f64(v):
    return np.asarray(v, dtype=np.float64)


def _np(result):
    if isinstance(result, (list, tuple)):
        return [np.asarray(r) for r in result]
    return np.asarray(result)


def _check(result, expected, dtype="float32", tol=None):
    """``result`` (what kerust returned) has ``expected``'s shape, the dtype Keras gives, and its values."""
    got = np.asarray(result)
    want = np.asarray(expected)
    assert got.shape == want.shape, f"shape {got.shape}, expected {want.shape}"
    if dtype is not None:
        assert got.dtype == np.dtype(dtype), f"dtype {got.dtype}, Keras gives {dtype}"
    if got.dtype == np.bool_ or want.dtype == np.bool_:
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), **(tol or TOL))


def _shape_re(shape):
    """A regex for ``shape`` printed as a tuple, ``(2, 3)``, or as a list, ``[2, 3]``."""
    shape = tuple(shape)
    return f"(?:{re.escape(str(shape))}|{re.escape(str(list(shape)))})"


def _all_of(*patterns, ignore_case=False):
    """A regex matching a message that contains every one of ``patterns``, in any order."""
    flags = "(?is)" if ignore_case else "(?s)"
    return flags + "".join(f"(?=.*{p})" for p in patterns)


# ---- element-wise arithmetic ---------------------------------------------------------------------------------

_ARITH = {
    "add": np.add,
    "subtract": np.subtract,
    "multiply": np.multiply,
    "divide": np.divide,
    "true_divide": np.true_divide,
    "maximum": np.maximum,
    "minimum": np.minimum,
}

_PAIRS = {
    "same_shape": (A, _away(A2)),
    "(2,3,4)_(4,)": (A, _away(B4)),
    "(2,3,4)_(3,1)": (A, _away(B31)),
    "(2,3,4)_(1,3,1)": (A, _away(B131)),
    "(3,1)_(4,)": (B31, _away(B4)),
    "(4,)_(2,3,4)": (B4, _away(A2)),
    "array_float": (A, 1.5),
    "float_array": (-0.75, _away(A2)),
}


@pytest.mark.parametrize("pair", list(_PAIRS), ids=list(_PAIRS))
@pytest.mark.parametrize("name", list(_ARITH))
def test_arithmetic(name, pair):
    x1, x2 = _PAIRS[pair]
    expected = _ARITH[name](_f64(x1), _f64(x2))
    _check(getattr(ops, name)(x1, x2), expected)


_POWER = {
    "pos_pow_array": (POS, A2),
    "pos_pow_broadcast": (POS, B4),
    "pos_pow_float": (POS, 0.5),
    "square_via_int": (A, 2),
    "cube_negative_base": (A, 3),
    "float_base": (2.0, A),
}


@pytest.mark.parametrize("case", list(_POWER))
def test_power(case):
    x1, x2 = _POWER[case]
    _check(ops.power(x1, x2), np.power(_f64(x1), _f64(x2)), tol=TRANS)


def _erf(x):
    return np.vectorize(math.erf)(_f64(x))


_UNARY = {
    "negative": (np.negative, A, TOL),
    "abs": (np.abs, A, TOL),
    "sign": (np.sign, np.concatenate([A.ravel(), [0.0, -0.0]]).astype(np.float32), TOL),
    "square": (np.square, A, TOL),
    "sqrt": (np.sqrt, POS, TRANS),
    "rsqrt": (lambda v: 1.0 / np.sqrt(v), POS, TRANS),
    "exp": (np.exp, A, TRANS),
    "log": (np.log, POS, TRANS),
    "log1p": (np.log1p, (0.9 * np.tanh(A)).astype(np.float32), TRANS),
    "tanh": (np.tanh, 2.0 * A, TRANS),
    "erf": (_erf, A, TRANS),
}


@pytest.mark.parametrize("name", list(_UNARY))
def test_unary(name):
    ref, x, tol = _UNARY[name]
    _check(getattr(ops, name)(x), ref(_f64(x)), tol=tol)


@pytest.mark.parametrize(
    "x_min, x_max",
    [(-0.5, 0.5), (0.0, 1.0), (-10.0, 10.0), (0, 1)],
    ids=["sym", "unit", "wide", "int_bounds"],
)
def test_clip(x_min, x_max):
    _check(ops.clip(A, x_min, x_max), np.clip(_f64(A), x_min, x_max))


_WHERE = {
    "arrays": (P, A, A2),
    "broadcast_condition": (P4, A, A2),
    "scalar_else": (A > 0, A, 0.0),
    "scalar_both": (A > 0, 1.0, -1.0),
    "broadcast_values": (P, B4, B31),
}


@pytest.mark.parametrize("case", list(_WHERE))
def test_where(case):
    c, x1, x2 = _WHERE[case]
    _check(ops.where(c, x1, x2), np.where(c, _f64(x1), _f64(x2)))


def test_where_one_argument_gives_int32_indices():
    c = np.array([[True, False, True], [False, False, True]])
    result = ops.where(c)
    assert isinstance(result, tuple) and len(result) == 2
    for got, want in zip(result, np.nonzero(c)):
        _check(got, want, dtype="int32")


# ---- comparisons and logic -----------------------------------------------------------------------------------

_COMPARE = {
    "equal": np.equal,
    "not_equal": np.not_equal,
    "greater": np.greater,
    "greater_equal": np.greater_equal,
    "less": np.less,
    "less_equal": np.less_equal,
}

_CMP_PAIRS = {
    "same_shape": (I_A, I_B),
    "broadcast": (I_A, I_4),
    "array_float": (I_A, 0.0),
    "float_array": (1.0, I_A),
    "random": (A, A2),
}


@pytest.mark.parametrize("pair", list(_CMP_PAIRS))
@pytest.mark.parametrize("name", list(_COMPARE))
def test_comparison(name, pair):
    x1, x2 = _CMP_PAIRS[pair]
    _check(getattr(ops, name)(x1, x2), _COMPARE[name](x1, x2), dtype="bool")


_LOGIC_PAIRS = {"bool": (P, P2), "bool_broadcast": (P, P4), "float_truthiness": (I_A, I_B)}


@pytest.mark.parametrize("pair", list(_LOGIC_PAIRS))
@pytest.mark.parametrize("name", ["logical_and", "logical_or"])
def test_logical_binary(name, pair):
    x1, x2 = _LOGIC_PAIRS[pair]
    _check(getattr(ops, name)(x1, x2), getattr(np, name)(x1 != 0, x2 != 0), dtype="bool")


@pytest.mark.parametrize("x", [P, I_A], ids=["bool", "float_truthiness"])
def test_logical_not(x):
    _check(ops.logical_not(x), np.logical_not(x), dtype="bool")


# ---- products ------------------------------------------------------------------------------------------------


def _pair_of(shape1, shape2, seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape1).astype(np.float32), rng.standard_normal(shape2).astype(np.float32)


_MATMUL = {
    "2d": ((2, 3), (3, 4)),
    "batched_3d": ((2, 3, 4), (2, 4, 5)),
    "3d_2d": ((2, 3, 4), (4, 5)),
    "2d_3d": ((3, 4), (2, 4, 5)),
    "batched_4d": ((2, 2, 3, 4), (2, 2, 4, 5)),
    "4d_broadcast_batch": ((2, 1, 3, 4), (5, 4, 2)),
    "vec_mat": ((3,), (3, 4)),
    "mat_vec": ((2, 3), (3,)),
    "vec_vec": ((3,), (3,)),
    "3d_vec": ((2, 3, 4), (4,)),
    "vec_3d": ((4,), (2, 4, 5)),
}


@pytest.mark.parametrize("case", list(_MATMUL))
def test_matmul(case):
    x1, x2 = _pair_of(*_MATMUL[case], seed=len(case))
    _check(ops.matmul(x1, x2), np.matmul(_f64(x1), _f64(x2)))


_DOT = {
    "2d_2d": ((2, 3), (3, 4)),
    "1d_1d": ((3,), (3,)),
    "2d_1d": ((2, 3), (3,)),
    "1d_2d": ((3,), (3, 4)),
    "3d_2d": ((2, 3, 4), (4, 5)),
    "3d_3d": ((2, 3, 4), (5, 4, 6)),
}


@pytest.mark.parametrize("case", list(_DOT))
def test_dot(case):
    x1, x2 = _pair_of(*_DOT[case], seed=len(case) + 1)
    _check(ops.dot(x1, x2), np.dot(_f64(x1), _f64(x2)))


def test_dot_with_scalar():
    _check(ops.dot(A, 2.0), 2.0 * _f64(A))


_EINSUM = {
    "bij,bkj->bik": ((2, 3, 4), (2, 5, 4)),
    "bqhd,bkhd->bhqk": ((2, 3, 2, 4), (2, 5, 2, 4)),
    "bhqk,bkhd->bqhd": ((2, 2, 3, 5), (2, 5, 2, 4)),
    "ij,jk->ik": ((2, 3), (3, 4)),
    "bi,ij->bj": ((2, 3), (3, 4)),
}


@pytest.mark.parametrize("subscripts", list(_EINSUM))
def test_einsum(subscripts):
    x1, x2 = _pair_of(*_EINSUM[subscripts], seed=len(subscripts))
    _check(ops.einsum(subscripts, x1, x2), np.einsum(subscripts, _f64(x1), _f64(x2)))


def test_einsum_ellipsis():
    x1, x2 = _pair_of((2, 3, 4), (4, 2), seed=7)
    _check(ops.einsum("...ij,...jk->...ik", x1, x2), np.einsum("...ij,...jk->...ik", _f64(x1), _f64(x2)))


_TENSORDOT = {
    "axes_1": ((2, 3, 4), (4, 5), 1),
    "axes_2": ((2, 3, 4), (3, 4, 5), 2),
    "lists_one_axis": ((2, 3), (3, 4), ([1], [0])),
    "lists_two_axes": ((2, 3, 4), (3, 4, 5), ([1, 2], [0, 1])),
    "lists_reordered": ((2, 3, 4), (4, 2, 6), ([2, 0], [0, 1])),
}


@pytest.mark.parametrize("case", list(_TENSORDOT))
def test_tensordot(case):
    s1, s2, axes = _TENSORDOT[case]
    x1, x2 = _pair_of(s1, s2, seed=len(case) + 2)
    _check(ops.tensordot(x1, x2, axes=axes), np.tensordot(_f64(x1), _f64(x2), axes=axes))


# ---- shape manipulation (exact: no arithmetic) ----------------------------------------------------------------

S1 = _normal(1, 3, 1, 4)
S231 = _normal(2, 3, 1)
IDX_SORT = np.argsort(A, axis=-1)

_SHAPE_OPS = [
    ("transpose_default", lambda: ops.transpose(A), lambda: A.T),
    ("transpose_axes", lambda: ops.transpose(A, axes=(2, 0, 1)), lambda: np.transpose(A, (2, 0, 1))),
    ("transpose_2d", lambda: ops.transpose(A[0]), lambda: A[0].T),
    ("reshape_-1_first", lambda: ops.reshape(A, (-1, 4)), lambda: A.reshape(-1, 4)),
    ("reshape_-1_middle", lambda: ops.reshape(A, (4, -1, 2)), lambda: A.reshape(4, -1, 2)),
    ("reshape_flat", lambda: ops.reshape(A, (24,)), lambda: A.reshape(24)),
    ("reshape_list", lambda: ops.reshape(A, [6, 4]), lambda: A.reshape(6, 4)),
    ("expand_dims_0", lambda: ops.expand_dims(A, 0), lambda: A[None]),
    ("expand_dims_1", lambda: ops.expand_dims(A, 1), lambda: A[:, None]),
    ("expand_dims_-1", lambda: ops.expand_dims(A, -1), lambda: A[..., None]),
    ("squeeze_all", lambda: ops.squeeze(S1), lambda: np.squeeze(S1)),
    ("squeeze_axis", lambda: ops.squeeze(S1, axis=2), lambda: np.squeeze(S1, axis=2)),
    ("squeeze_axis_-1", lambda: ops.squeeze(S231, axis=-1), lambda: S231[..., 0]),
    ("squeeze_axis_tuple", lambda: ops.squeeze(S1, axis=(0, 2)), lambda: np.squeeze(S1, axis=(0, 2))),
    ("broadcast_to_(4,)", lambda: ops.broadcast_to(B4, (2, 3, 4)), lambda: np.broadcast_to(B4, (2, 3, 4))),
    ("broadcast_to_(3,1)", lambda: ops.broadcast_to(B31, (2, 3, 4)), lambda: np.broadcast_to(B31, (2, 3, 4))),
    ("concatenate_0", lambda: ops.concatenate([A, A2], axis=0), lambda: np.concatenate([A, A2], 0)),
    ("concatenate_default_axis", lambda: ops.concatenate([A, A2]), lambda: np.concatenate([A, A2])),
    ("concatenate_-1", lambda: ops.concatenate([A, A2[..., :1]], axis=-1), lambda: np.concatenate([A, A2[..., :1]], 2)),
    (
        "concatenate_three_axis_1",
        lambda: ops.concatenate([A, A2[:, :1], A[:, :2]], axis=1),
        lambda: np.concatenate([A, A2[:, :1], A[:, :2]], 1),
    ),
    ("stack_0", lambda: ops.stack([A, A2]), lambda: np.stack([A, A2])),
    ("stack_1", lambda: ops.stack([A, A2, A], axis=1), lambda: np.stack([A, A2, A], 1)),
    ("stack_-1", lambda: ops.stack([A, A2], axis=-1), lambda: np.stack([A, A2], -1)),
    ("tile_same_rank", lambda: ops.tile(A, (1, 2, 1)), lambda: np.tile(A, (1, 2, 1))),
    ("tile_shorter_reps", lambda: ops.tile(A[0], (2,)), lambda: np.tile(A[0], (2,))),
    ("tile_longer_reps", lambda: ops.tile(A[0], (2, 1, 2)), lambda: np.tile(A[0], (2, 1, 2))),
    ("repeat_flat", lambda: ops.repeat(A[0], 2), lambda: np.repeat(A[0], 2)),
    ("repeat_axis_1", lambda: ops.repeat(A, 2, axis=1), lambda: np.repeat(A, 2, axis=1)),
    ("repeat_axis_-1", lambda: ops.repeat(A, 3, axis=-1), lambda: np.repeat(A, 3, axis=-1)),
    ("take_axis_1", lambda: ops.take(A, np.array([2, 0]), axis=1), lambda: np.take(A, [2, 0], axis=1)),
    ("take_negative_index", lambda: ops.take(A, np.array([-1, 0]), axis=-1), lambda: np.take(A, [-1, 0], axis=-1)),
    ("take_flat", lambda: ops.take(A, np.array([[0, 23], [5, 7]])), lambda: np.take(A, [[0, 23], [5, 7]])),
    ("take_scalar_index", lambda: ops.take(A, 1, axis=1), lambda: A[:, 1]),
    (
        "take_along_axis_-1",
        lambda: ops.take_along_axis(A, IDX_SORT, axis=-1),
        lambda: np.take_along_axis(A, IDX_SORT, axis=-1),
    ),
    (
        "take_along_axis_broadcast",
        lambda: ops.take_along_axis(A, np.array([[[1]]]), axis=0),
        lambda: np.take_along_axis(A, np.array([[[1]]]), axis=0),
    ),
    (
        "take_along_axis_none",
        lambda: ops.take_along_axis(A, np.array([23, 0, 5])),
        lambda: np.take_along_axis(A, np.array([23, 0, 5]), axis=None),
    ),
    ("slice", lambda: ops.slice(A, (1, 0, 1), (1, 2, 3)), lambda: A[1:2, 0:2, 1:4]),
    ("slice_lists", lambda: ops.slice(A, [0, 1, 0], [2, 2, 4]), lambda: A[:, 1:3, :]),
    ("pad_2d", lambda: ops.pad(A[0], ((1, 0), (0, 2))), lambda: np.pad(A[0], ((1, 0), (0, 2)))),
    ("pad_3d", lambda: ops.pad(A, ((0, 0), (1, 2), (2, 1))), lambda: np.pad(A, ((0, 0), (1, 2), (2, 1)))),
    (
        "pad_constant_values",
        lambda: ops.pad(A, ((0, 0), (1, 1), (0, 1)), mode="constant", constant_values=1.5),
        lambda: np.pad(A, ((0, 0), (1, 1), (0, 1)), constant_values=1.5),
    ),
]


@pytest.mark.parametrize("call, reference", [c[1:] for c in _SHAPE_OPS], ids=[c[0] for c in _SHAPE_OPS])
def test_shape_op(call, reference):
    _check(call(), reference(), tol={"rtol": 0, "atol": 0})


@pytest.mark.parametrize(
    "sections, axis",
    [(2, -1), (3, 1), (2, 0), ([1, 3], 2), ([2], 1), ([1], 0)],
    ids=["int_-1", "int_1", "int_0", "indices_axis_2", "indices_axis_1", "indices_axis_0"],
)
def test_split(sections, axis):
    result = ops.split(A, sections, axis=axis)
    expected = np.split(A, sections, axis=axis)
    assert isinstance(result, list), type(result)
    assert len(result) == len(expected)
    for got, want in zip(result, expected):
        _check(got, want, tol={"rtol": 0, "atol": 0})


def test_split_default_axis_is_0():
    result = ops.split(A[0], 3)
    assert [np.asarray(r).shape for r in result] == [(1, 4)] * 3


# ---- reductions ----------------------------------------------------------------------------------------------


def _logsumexp(x, axis=None, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    if not keepdims:
        out = np.squeeze(out, axis=axis) if axis is not None else out.reshape(())
    return out


_REDUCE = {
    "sum": (np.sum, TOL),
    "mean": (np.mean, TOL),
    "max": (np.max, TOL),
    "min": (np.min, TOL),
    "prod": (np.prod, TOL),
    "std": (np.std, TRANS),
    "var": (np.var, TOL),
    "logsumexp": (_logsumexp, TRANS),
}

_AXES = [None, 0, 1, -1, (0, 2), (1, 2)]


@pytest.mark.parametrize("keepdims", [False, True], ids=["keepdims_False", "keepdims_True"])
@pytest.mark.parametrize("axis", _AXES, ids=[f"axis_{a}" for a in _AXES])
@pytest.mark.parametrize("name", list(_REDUCE))
def test_reduction(name, axis, keepdims):
    ref, tol = _REDUCE[name]
    _check(getattr(ops, name)(A, axis=axis, keepdims=keepdims), ref(_f64(A), axis=axis, keepdims=keepdims), tol=tol)


@pytest.mark.parametrize("name", list(_REDUCE))
def test_reduction_defaults_reduce_everything(name):
    ref, tol = _REDUCE[name]
    _check(getattr(ops, name)(A), ref(_f64(A)), tol=tol)


@pytest.mark.parametrize("keepdims", [False, True], ids=["keepdims_False", "keepdims_True"])
@pytest.mark.parametrize("axis", [None, 0, 1, -1], ids=["axis_None", "axis_0", "axis_1", "axis_-1"])
@pytest.mark.parametrize("name", ["argmax", "argmin"])
def test_arg_reduction(name, axis, keepdims):
    expected = getattr(np, name)(A, axis=axis, keepdims=keepdims)
    _check(getattr(ops, name)(A, axis=axis, keepdims=keepdims), expected, dtype="int32")


@pytest.mark.parametrize("name", ["argmax", "argmin"])
def test_arg_reduction_ties_pick_the_first(name):
    x = np.array([1.0, 3.0, -2.0, 3.0, -2.0], np.float32)
    _check(getattr(ops, name)(x), getattr(np, name)(x), dtype="int32")


@pytest.mark.parametrize("axis", [None, 0, 1, -1], ids=["axis_None_flattens", "axis_0", "axis_1", "axis_-1"])
def test_cumsum(axis):
    _check(ops.cumsum(A, axis=axis), np.cumsum(_f64(A), axis=axis))


_NORM = {
    "default_3d_is_flat_2norm": (A, {}, lambda x: np.sqrt(np.sum(x * x))),
    "default_2d_frobenius": (A[0], {}, lambda x: np.linalg.norm(x)),
    "default_1d": (B4, {}, lambda x: np.linalg.norm(x)),
    "ord_1_axis_-1": (A, {"ord": 1, "axis": -1}, lambda x: np.sum(np.abs(x), axis=-1)),
    "ord_2_axis_1": (A, {"ord": 2, "axis": 1}, lambda x: np.sqrt(np.sum(x * x, axis=1))),
    "ord_1_axis_0_keepdims": (A, {"ord": 1, "axis": 0, "keepdims": True}, lambda x: np.linalg.norm(x, 1, 0, True)),
    "ord_2_axis_1_keepdims": (A, {"ord": 2, "axis": 1, "keepdims": True}, lambda x: np.linalg.norm(x, 2, 1, True)),
    "axis_-1": (A, {"axis": -1}, lambda x: np.sqrt(np.sum(x * x, axis=-1))),
    "keepdims_no_axis": (A, {"keepdims": True}, lambda x: np.sqrt(np.sum(x * x, keepdims=True))),
    "axis_pair_frobenius": (A, {"axis": (1, 2)}, lambda x: np.sqrt(np.sum(x * x, axis=(1, 2)))),
}


@pytest.mark.parametrize("case", list(_NORM))
def test_norm(case):
    x, kwargs, ref = _NORM[case]
    _check(ops.norm(x, **kwargs), ref(_f64(x)), tol=TRANS)


# ---- creation, cast, conversion ------------------------------------------------------------------------------

_CREATE = [
    ("arange_stop", lambda: ops.arange(5), np.arange(5), "int32"),
    ("arange_start_stop", lambda: ops.arange(2, 7), np.arange(2, 7), "int32"),
    ("arange_step", lambda: ops.arange(1, 8, 2), np.arange(1, 8, 2), "int32"),
    ("arange_negative_step", lambda: ops.arange(5, 0, -1), np.arange(5, 0, -1), "int32"),
    ("arange_float_stop", lambda: ops.arange(5.0), np.arange(5.0), "float32"),
    ("arange_float_step", lambda: ops.arange(0, 1, 0.25), np.arange(0, 1, 0.25), "float32"),
    ("arange_float_three", lambda: ops.arange(1.0, 2.0, 0.25), np.arange(1.0, 2.0, 0.25), "float32"),
    ("arange_dtype", lambda: ops.arange(0, 5, dtype="float32"), np.arange(5.0), "float32"),
    ("zeros", lambda: ops.zeros((2, 3)), np.zeros((2, 3)), "float32"),
    ("zeros_int_shape", lambda: ops.zeros(3), np.zeros(3), "float32"),
    ("zeros_dtype", lambda: ops.zeros((2,), dtype="int32"), np.zeros(2), "int32"),
    ("ones", lambda: ops.ones((2, 3)), np.ones((2, 3)), "float32"),
    ("ones_list_shape", lambda: ops.ones([3, 1]), np.ones((3, 1)), "float32"),
    ("full_float", lambda: ops.full((2, 3), 1.5), np.full((2, 3), 1.5), "float32"),
    ("full_int_fill_is_float32", lambda: ops.full((2,), 3), np.full(2, 3.0), "float32"),
    ("full_dtype", lambda: ops.full((2,), 3, dtype="int32"), np.full(2, 3), "int32"),
    ("zeros_like", lambda: ops.zeros_like(A), np.zeros((2, 3, 4)), "float32"),
    ("ones_like", lambda: ops.ones_like(A), np.ones((2, 3, 4)), "float32"),
    ("ones_like_int32", lambda: ops.ones_like(np.arange(3, dtype=np.int32)), np.ones(3), "int32"),
    ("ones_like_dtype", lambda: ops.ones_like(A[0], dtype="int32"), np.ones((3, 4)), "int32"),
    ("full_like", lambda: ops.full_like(A, 2), np.full((2, 3, 4), 2.0), "float32"),
    ("full_like_int32_truncates", lambda: ops.full_like(np.arange(3, dtype=np.int32), 2.5), np.full(3, 2), "int32"),
    ("eye", lambda: ops.eye(3), np.eye(3), "float32"),
    ("eye_rect", lambda: ops.eye(2, 3), np.eye(2, 3), "float32"),
    ("eye_k", lambda: ops.eye(3, k=1), np.eye(3, k=1), "float32"),
    ("eye_rect_negative_k", lambda: ops.eye(3, 4, k=-1), np.eye(3, 4, k=-1), "float32"),
    ("eye_dtype", lambda: ops.eye(2, dtype="int32"), np.eye(2), "int32"),
    ("one_hot", lambda: ops.one_hot(np.array([0, 2, 1]), 3), np.eye(3)[[0, 2, 1]], "float32"),
    ("one_hot_nn", lambda: ops.nn.one_hot(np.array([0, 2, 1]), 4), np.eye(4)[[0, 2, 1]], "float32"),
    ("one_hot_2d", lambda: ops.one_hot(np.array([[0, 2], [1, 1]]), 3), np.eye(3)[[[0, 2], [1, 1]]], "float32"),
    ("one_hot_axis_0", lambda: ops.one_hot(np.array([0, 2, 1, 2]), 3, axis=0), np.eye(3)[[0, 2, 1, 2]].T, "float32"),
    (
        "one_hot_out_of_range_is_zeros",
        lambda: ops.one_hot(np.array([-1, 3, 1]), 3),
        np.array([[0, 0, 0], [0, 0, 0], [0, 1, 0]]),
        "float32",
    ),
    ("one_hot_dtype", lambda: ops.one_hot(np.array([1]), 2, dtype="int32"), np.array([[0, 1]]), "int32"),
]


@pytest.mark.parametrize("call, expected, dtype", [c[1:] for c in _CREATE], ids=[c[0] for c in _CREATE])
def test_creation(call, expected, dtype):
    _check(call(), expected, dtype=dtype)


_CAST = [
    ("float_to_int32_truncates", np.array([-1.7, -0.5, 0.0, 0.5, 1.7, 2.5], np.float32), "int32",
     np.array([-1, 0, 0, 0, 1, 2])),
    ("float_to_bool", np.array([-1.5, 0.0, 0.25], np.float32), "bool", np.array([True, False, True])),
    ("int_to_float32", np.array([-2, 0, 7], np.int32), "float32", np.array([-2.0, 0.0, 7.0])),
    ("bool_to_float32", np.array([True, False]), "float32", np.array([1.0, 0.0])),
    ("float32_to_float16", np.array([0.5, -2.0], np.float32), "float16", np.array([0.5, -2.0])),
]


@pytest.mark.parametrize("x, dtype, expected", [c[1:] for c in _CAST], ids=[c[0] for c in _CAST])
def test_cast(x, dtype, expected):
    _check(ops.cast(x, dtype), expected, dtype=dtype)


def test_shape_is_a_tuple_of_python_ints():
    s = ops.shape(A)
    assert type(s) is tuple and s == (2, 3, 4)
    assert all(type(d) is int for d in s)
    assert ops.shape(np.float32(1.0)) == ()


_CONVERT = [
    ("float_list", lambda: ops.convert_to_tensor([1.0, 2.5]), np.array([1.0, 2.5]), "float32"),
    ("int_list_is_int32", lambda: ops.convert_to_tensor([[1, 2], [3, 4]]), np.array([[1, 2], [3, 4]]), "int32"),
    ("python_float", lambda: ops.convert_to_tensor(1.5), np.array(1.5), "float32"),
    ("float32_array", lambda: ops.convert_to_tensor(A), A, "float32"),
    ("dtype_argument", lambda: ops.convert_to_tensor([1, 2], dtype="float32"), np.array([1.0, 2.0]), "float32"),
    ("bool_list", lambda: ops.convert_to_tensor([True, False]), np.array([True, False]), "bool"),
]


@pytest.mark.parametrize("call, expected, dtype", [c[1:] for c in _CONVERT], ids=[c[0] for c in _CONVERT])
def test_convert_to_tensor(call, expected, dtype):
    _check(call(), expected, dtype=dtype)


def test_convert_to_numpy():
    out = ops.convert_to_numpy(ops.add(A, 1.0))
    assert isinstance(out, np.ndarray)
    _check(out, _f64(A) + 1.0)
    assert isinstance(ops.convert_to_numpy(A), np.ndarray)
    _check(ops.convert_to_numpy(A), A)


def test_stop_gradient_is_identity():
    _check(ops.stop_gradient(A), A, tol={"rtol": 0, "atol": 0})


def test_eager_results_are_numpy():
    """kerust's own choice (Keras returns backend tensors): eager results are NumPy arrays or NumPy scalars."""
    for result in (ops.add(A, 1.0), ops.matmul(A, A2.transpose(0, 2, 1)), ops.sum(A), ops.greater(A, 0.0)):
        assert isinstance(result, (np.ndarray, np.generic)), type(result)


# ---- result dtypes (Keras's type promotion; Python scalars are "weak") ---------------------------------------

I32 = np.array([1, 2, 3], np.int32)
I32B = np.array([2, 1, 4], np.int32)
F16 = np.array([0.5, 1.0], np.float16)

_DTYPES = [
    ("add_float32_pyint", lambda: ops.add(A, 1), "float32"),
    ("add_float32_pyfloat", lambda: ops.add(A, 1.5), "float32"),
    ("add_int32_pyint", lambda: ops.add(I32, 1), "int32"),
    ("add_int32_pyfloat", lambda: ops.add(I32, 1.5), "float32"),
    ("multiply_int32_float32", lambda: ops.multiply(I32, I32.astype(np.float32)), "float32"),
    ("add_float16_pyfloat", lambda: ops.add(F16, 1.5), "float16"),
    ("add_float16_float32", lambda: ops.add(F16, F16.astype(np.float32)), "float32"),
    ("divide_int32_int32", lambda: ops.divide(I32, I32B), "float32"),
    ("true_divide_int32_pyint", lambda: ops.true_divide(I32, 2), "float32"),
    ("power_int32_pyint", lambda: ops.power(I32, 2), "int32"),
    ("power_float32_pyint", lambda: ops.power(A, 2), "float32"),
    ("square_int32", lambda: ops.square(I32), "int32"),
    ("abs_int32", lambda: ops.abs(I32), "int32"),
    ("sign_int32", lambda: ops.sign(I32), "int32"),
    ("sqrt_int32", lambda: ops.sqrt(I32), "float32"),
    ("exp_int32", lambda: ops.exp(I32), "float32"),
    ("sqrt_float16", lambda: ops.sqrt(F16), "float16"),
    ("maximum_int32_pyfloat", lambda: ops.maximum(I32, 1.5), "float32"),
    ("where_int32_pyfloat", lambda: ops.where(I32 > 1, I32, 0.5), "float32"),
    ("matmul_int32", lambda: ops.matmul(I32[None], I32B[:, None]), "int32"),
    ("matmul_int32_float32", lambda: ops.matmul(I32[None], A[0, :, :1]), "float32"),
    ("sum_int32", lambda: ops.sum(I32), "int32"),
    ("sum_bool", lambda: ops.sum(P), "int32"),
    ("sum_bool_axis", lambda: ops.sum(P, axis=0), "int32"),
    ("cumsum_bool", lambda: ops.cumsum(P4), "int32"),
    ("prod_int32", lambda: ops.prod(I32), "int32"),
    ("max_int32", lambda: ops.max(I32), "int32"),
    ("mean_int32", lambda: ops.mean(I32), "float32"),
    ("var_int32", lambda: ops.var(I32), "float32"),
    ("argmax_float32", lambda: ops.argmax(A, axis=-1), "int32"),
    ("argmin_int32", lambda: ops.argmin(I32), "int32"),
    ("greater_float32", lambda: ops.greater(A, 0.0), "bool"),
    ("logical_not_float32", lambda: ops.logical_not(A), "bool"),
    ("relu_int32", lambda: ops.relu(I32), "int32"),
    ("softmax_int32", lambda: ops.softmax(I32), "float32"),
    ("norm_float32", lambda: ops.norm(A), "float32"),
    ("std_float32", lambda: ops.std(A), "float32"),
    ("logsumexp_float32", lambda: ops.logsumexp(A), "float32"),
]


@pytest.mark.parametrize("call, dtype", [c[1:] for c in _DTYPES], ids=[c[0] for c in _DTYPES])
def test_result_dtype(call, dtype):
    got = np.asarray(call()).dtype
    assert got == np.dtype(dtype), f"dtype {got}, Keras gives {dtype}"


# ---- activations ---------------------------------------------------------------------------------------------

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _softmax(x, axis=-1):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def _gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))


def _gelu_erf(x):
    return 0.5 * x * (1.0 + _erf(x / np.sqrt(2.0)))


# case -> (op name, reference on float64, kwargs, also in ops.nn as in Keras)
_ACTIVATIONS = {
    "relu": ("relu", lambda x: np.maximum(x, 0.0), {}, True),
    "relu6": ("relu6", lambda x: np.clip(x, 0.0, 6.0), {}, True),
    "sigmoid": ("sigmoid", _sigmoid, {}, True),
    "tanh": ("tanh", np.tanh, {}, False),  # Keras has no ops.nn.tanh
    "softmax": ("softmax", _softmax, {}, True),
    "softmax_axis_0": ("softmax", lambda x: _softmax(x, axis=0), {"axis": 0}, True),
    "log_softmax": ("log_softmax", lambda x: x - _logsumexp(x, axis=-1, keepdims=True), {}, True),
    "log_softmax_axis_0": ("log_softmax", lambda x: x - _logsumexp(x, axis=0, keepdims=True), {"axis": 0}, True),
    "gelu_default": ("gelu", _gelu_tanh, {}, True),  # ops.gelu defaults to approximate=True
    "gelu_approximate_True": ("gelu", _gelu_tanh, {"approximate": True}, True),
    "gelu_approximate_False": ("gelu", _gelu_erf, {"approximate": False}, True),
    "silu": ("silu", lambda x: x * _sigmoid(x), {}, True),
    "softplus": ("softplus", lambda x: np.logaddexp(0.0, x), {}, True),
    "elu": ("elu", lambda x: np.where(x > 0, x, np.expm1(x)), {}, True),
    "elu_alpha": ("elu", lambda x: np.where(x > 0, x, 0.5 * np.expm1(x)), {"alpha": 0.5}, True),
    "selu": ("selu", lambda x: _SELU_SCALE * np.where(x > 0, x, _SELU_ALPHA * np.expm1(x)), {}, True),
    "leaky_relu_default": ("leaky_relu", lambda x: np.where(x >= 0, x, 0.2 * x), {}, True),  # negative_slope=0.2
    "leaky_relu_slope": ("leaky_relu", lambda x: np.where(x >= 0, x, 0.1 * x), {"negative_slope": 0.1}, True),
    "hard_sigmoid": ("hard_sigmoid", lambda x: np.clip(x / 6.0 + 0.5, 0.0, 1.0), {}, True),  # relu6(x + 3) / 6
    "erf": ("erf", _erf, {}, False),  # Keras has no ops.nn.erf
}

_ACT_CASES = [(case, "ops") for case in _ACTIVATIONS] + [
    (case, "ops.nn") for case, (_, _, _, in_nn) in _ACTIVATIONS.items() if in_nn
]


@pytest.mark.parametrize("case, namespace", _ACT_CASES, ids=[f"{ns}.{c}" for c, ns in _ACT_CASES])
def test_activation(case, namespace):
    name, ref, kwargs, _ = _ACTIVATIONS[case]
    fn = getattr(ops if namespace == "ops" else ops.nn, name)
    _check(fn(X_ACT, **kwargs), ref(_f64(X_ACT)), tol=TRANS)


@pytest.mark.parametrize("axis", [0, 1, -1, 2], ids=["axis_0", "axis_1", "axis_-1", "axis_2"])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_axis_3d(name, axis):
    x = 3.0 * _f64(A)
    expected = _softmax(x, axis) if name == "softmax" else x - _logsumexp(x, axis=axis, keepdims=True)
    _check(getattr(ops, name)(3.0 * A, axis=axis), expected, tol=TRANS)


@pytest.mark.parametrize("namespace", ["ops", "ops.nn"])
def test_gelu_default_is_the_tanh_approximation(namespace):
    """Keras's ``ops.gelu`` defaults to ``approximate=True`` (``keras.activations.gelu`` to False): at x = 3 the two
    forms differ by 4e-4, far more than the tolerance."""
    gelu = (ops if namespace == "ops" else ops.nn).gelu
    x = np.array([-3.0, -1.0, 1.0, 3.0], np.float32)
    got = np.asarray(gelu(x)).astype(np.float64)
    np.testing.assert_allclose(got, _gelu_tanh(_f64(x)), rtol=1e-5, atol=1e-6)
    assert np.max(np.abs(got - _gelu_erf(_f64(x)))) > 1e-4


def test_hard_sigmoid_is_keras3_formula():
    """``relu6(x + 3) / 6``: 0 at x <= -3, 1 at x >= 3, 0.5 + x / 6 between (Keras 2's ``0.2 x + 0.5`` gave 1 at
    x = 2.5)."""
    x = np.array([-3.0, -2.5, 0.0, 2.5, 3.0], np.float32)
    _check(ops.hard_sigmoid(x), [0.0, 1.0 / 12.0, 0.5, 11.0 / 12.0, 1.0])


# ---- symbolic mode -------------------------------------------------------------------------------------------

W45 = _normal(4, 5)


def _x():
    return keras.Input((3, 4))


_SYMBOLIC = [
    ("matmul", lambda: ops.matmul(_x(), W45), (None, 3, 5), "float32"),
    ("matmul_vec", lambda: ops.matmul(_x(), B4), (None, 3), "float32"),
    ("matmul_2d_input", lambda: ops.matmul(keras.Input((4,)), W45), (None, 5), "float32"),
    ("dot", lambda: ops.dot(_x(), W45), (None, 3, 5), "float32"),
    ("op_matmul", lambda: _x() @ W45, (None, 3, 5), "float32"),
    ("add_float", lambda: ops.add(_x(), 1.0), (None, 3, 4), "float32"),
    ("add_broadcast", lambda: ops.add(_x(), B4), (None, 3, 4), "float32"),
    ("add_two_inputs", lambda: ops.add(_x(), keras.Input((3, 1))), (None, 3, 4), "float32"),
    ("op_add", lambda: _x() + 1, (None, 3, 4), "float32"),
    ("op_radd", lambda: 1.5 + _x(), (None, 3, 4), "float32"),
    ("op_sub_inputs", lambda: _x() - keras.Input((1, 4)), (None, 3, 4), "float32"),
    ("op_rsub", lambda: 1 - _x(), (None, 3, 4), "float32"),
    ("op_mul", lambda: _x() * _x(), (None, 3, 4), "float32"),
    ("op_div", lambda: _x() / 2, (None, 3, 4), "float32"),
    ("op_rdiv", lambda: 2.0 / _x(), (None, 3, 4), "float32"),
    ("op_pow", lambda: _x() ** 2, (None, 3, 4), "float32"),
    ("op_neg", lambda: -_x(), (None, 3, 4), "float32"),
    ("op_gt", lambda: _x() > 0, (None, 3, 4), "bool"),
    ("op_ge", lambda: _x() >= 0.5, (None, 3, 4), "bool"),
    ("op_lt_inputs", lambda: _x() < keras.Input((3, 1)), (None, 3, 4), "bool"),
    ("op_le", lambda: _x() <= 1.0, (None, 3, 4), "bool"),
    ("equal", lambda: ops.equal(_x(), 1.0), (None, 3, 4), "bool"),
    ("not_equal", lambda: ops.not_equal(_x(), B4), (None, 3, 4), "bool"),
    ("logical_and", lambda: ops.logical_and(_x() > 0, _x() < 1), (None, 3, 4), "bool"),
    ("getitem_slice", lambda: _x()[:, 1:], (None, 2, 4), "float32"),
    ("getitem_ellipsis", lambda: _x()[..., 0], (None, 3), "float32"),
    ("getitem_index", lambda: _x()[:, 0], (None, 4), "float32"),
    ("getitem_negative_index", lambda: _x()[:, -1], (None, 4), "float32"),
    ("getitem_two_slices", lambda: _x()[:, 1:, :2], (None, 2, 2), "float32"),
    ("getitem_step", lambda: _x()[:, :, ::2], (None, 3, 2), "float32"),
    ("getitem_newaxis", lambda: _x()[:, None], (None, 1, 3, 4), "float32"),
    ("sum_axis", lambda: ops.sum(_x(), axis=1), (None, 4), "float32"),
    ("sum_keepdims", lambda: ops.sum(_x(), axis=-1, keepdims=True), (None, 3, 1), "float32"),
    ("mean_all", lambda: ops.mean(_x()), (), "float32"),
    ("max_tuple", lambda: ops.max(_x(), axis=(1, 2)), (None,), "float32"),
    ("argmax", lambda: ops.argmax(_x(), axis=-1), (None, 3), "int32"),
    ("std", lambda: ops.std(_x(), axis=1), (None, 4), "float32"),
    ("logsumexp", lambda: ops.logsumexp(_x(), axis=1), (None, 4), "float32"),
    ("norm", lambda: ops.norm(_x(), axis=-1), (None, 3), "float32"),
    ("cumsum", lambda: ops.cumsum(_x(), axis=1), (None, 3, 4), "float32"),
    ("transpose_default", lambda: ops.transpose(_x()), (4, 3, None), "float32"),
    ("transpose_axes", lambda: ops.transpose(_x(), (0, 2, 1)), (None, 4, 3), "float32"),
    ("reshape_-1", lambda: ops.reshape(_x(), (-1, 12)), (None, 12), "float32"),
    ("reshape_-1_3d", lambda: ops.reshape(_x(), (-1, 2, 6)), (None, 2, 6), "float32"),
    ("expand_dims", lambda: ops.expand_dims(_x(), 1), (None, 1, 3, 4), "float32"),
    ("squeeze_axis", lambda: ops.squeeze(keras.Input((3, 1)), -1), (None, 3), "float32"),
    ("squeeze_none_keeps_batch", lambda: ops.squeeze(keras.Input((3, 1))), (None, 3), "float32"),
    ("concatenate", lambda: ops.concatenate([_x(), _x()], axis=-1), (None, 3, 8), "float32"),
    ("stack", lambda: ops.stack([_x(), _x()], axis=1), (None, 2, 3, 4), "float32"),
    ("einsum_bij", lambda: ops.einsum("bij,bkj->bik", _x(), _x()), (None, 3, 3), "float32"),
    (
        "einsum_bqhd",
        lambda: ops.einsum("bqhd,bkhd->bhqk", keras.Input((5, 2, 8)), keras.Input((7, 2, 8))),
        (None, 2, 5, 7),
        "float32",
    ),
    (
        "einsum_bhqk",
        lambda: ops.einsum("bhqk,bkhd->bqhd", keras.Input((2, 5, 7)), keras.Input((7, 2, 8))),
        (None, 5, 2, 8),
        "float32",
    ),
    ("tensordot", lambda: ops.tensordot(_x(), W45, axes=1), (None, 3, 5), "float32"),
    ("pad", lambda: ops.pad(_x(), ((0, 0), (1, 1), (2, 0))), (None, 5, 6), "float32"),
    ("tile", lambda: ops.tile(_x(), (1, 2, 1)), (None, 6, 4), "float32"),
    ("repeat_axis", lambda: ops.repeat(_x(), 2, axis=1), (None, 6, 4), "float32"),
    ("repeat_flat", lambda: ops.repeat(_x(), 2), (None,), "float32"),
    ("take", lambda: ops.take(_x(), np.array([0, 2]), axis=1), (None, 2, 4), "float32"),
    ("where", lambda: ops.where(_x() > 0, _x(), 0.0), (None, 3, 4), "float32"),
    ("clip", lambda: ops.clip(_x(), 0.0, 1.0), (None, 3, 4), "float32"),
    ("cast", lambda: ops.cast(_x(), "int32"), (None, 3, 4), "int32"),
    ("zeros_like", lambda: ops.zeros_like(_x()), (None, 3, 4), "float32"),
    ("one_hot", lambda: ops.one_hot(keras.Input((3,), dtype="int32"), 5), (None, 3, 5), "float32"),
    ("relu", lambda: ops.relu(_x()), (None, 3, 4), "float32"),
    ("nn_softmax", lambda: ops.nn.softmax(_x(), axis=1), (None, 3, 4), "float32"),
    ("gelu", lambda: ops.gelu(_x()), (None, 3, 4), "float32"),
]


@pytest.mark.parametrize("call, shape, dtype", [c[1:] for c in _SYMBOLIC], ids=[c[0] for c in _SYMBOLIC])
def test_symbolic(call, shape, dtype):
    y = call()
    assert not isinstance(y, np.ndarray), type(y)
    assert tuple(y.shape) == shape
    assert str(y.dtype) == dtype


def test_symbolic_split_gives_a_list():
    parts = ops.split(_x(), 2, axis=-1)
    assert isinstance(parts, list) and [tuple(p.shape) for p in parts] == [(None, 3, 2), (None, 3, 2)]
    parts = ops.split(_x(), [1], axis=1)
    assert [tuple(p.shape) for p in parts] == [(None, 1, 4), (None, 2, 4)]


def test_symbolic_shape_has_none_for_batch():
    assert ops.shape(_x()) == (None, 3, 4)


# ---- bad input -----------------------------------------------------------------------------------------------


def test_errors_matmul_incompatible_eager():
    with pytest.raises(ValueError, match=_all_of("matmul", _shape_re((2, 3)), _shape_re((4, 5)), ignore_case=True)):
        ops.matmul(np.ones((2, 3), np.float32), np.ones((4, 5), np.float32))


def test_errors_matmul_incompatible_symbolic():
    with pytest.raises(
        ValueError, match=_all_of("matmul", _shape_re((None, 2, 3)), _shape_re((4, 5)), ignore_case=True)
    ):
        ops.matmul(keras.Input((2, 3)), np.ones((4, 5), np.float32))


def test_errors_reshape_incompatible_size():
    with pytest.raises(ValueError, match=_all_of(_shape_re((2, 3)), _shape_re((4, 2)))):
        ops.reshape(np.ones((2, 3), np.float32), (4, 2))


def test_errors_add_not_broadcastable_eager():
    with pytest.raises(ValueError, match=_all_of(_shape_re((2, 3)), _shape_re((4,)))):
        ops.add(np.ones((2, 3), np.float32), np.ones((4,), np.float32))


def test_errors_add_not_broadcastable_symbolic():
    with pytest.raises(ValueError, match=_all_of(_shape_re((None, 2, 3)), _shape_re((4,)))):
        ops.add(keras.Input((2, 3)), np.ones((4,), np.float32))


def test_symbolic_batch_axis_is_not_sliced_or_broadcast_to_a_fixed_size():
    # Keras lets a symbolic None become 2 here; kerust refuses (README "Differences from Keras"): the batch size
    # is only known when the model runs, and a graph fixed to one size would fail on the next batch
    with pytest.raises(ValueError, match="batch axis"):
        ops.slice(keras.Input((3, 4)), (0, 1, 0), (2, 2, 4))
    with pytest.raises(ValueError, match=r"broadcast.*\(None, 3\)"):
        ops.broadcast_to(keras.Input((3,)), (2, 5, 3))


def test_dot_product_attention_matches_keras_and_its_gradient_is_exact():
    """`ops.dot_product_attention` against `keras.ops.dot_product_attention` (JAX; tests/reference/attention/
    generate_dpa.py): no mask, a mask with a query step masked everywhere, `is_causal`, a scale; and its
    gradients through a model against finite differences."""
    import kerust as keras
    from pathlib import Path

    ref = np.load(Path(__file__).resolve().parent / "reference" / "attention" / "dpa.npz")
    q, k, v = ref["q"], ref["k"], ref["v"]
    dpa = keras.ops.dot_product_attention
    np.testing.assert_allclose(dpa(q, k, v), ref["plain"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dpa(q, k, v, mask=ref["mask"]), ref["masked"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dpa(q, k[:, :4], v[:, :4], is_causal=True), ref["causal"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dpa(q, k, v, scale=0.3), ref["scaled"], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="does not broadcast"):
        dpa(q, k, v, mask=np.ones((2, 1, 5, 6), bool))
    with pytest.raises(ValueError, match="`bias` is not supported"):
        dpa(q, k, v, bias=np.zeros((2, 3, 4, 6)))

    class Attend(keras.layers.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(shape=(5, 5), initializer="glorot_uniform")

        def call(self, x):
            h = keras.ops.reshape(keras.ops.matmul(x, self.w), (-1, 4, 1, 5))
            return keras.ops.reshape(dpa(h, h, h, is_causal=True), (-1, 20))

    model = keras.Sequential([keras.Input((4, 5)), Attend(), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 4, 5)), rng.normal(size=(6, 1)).astype(np.float32)
    report = keras.utils.gradient_check(model, x, y, samples_per_weight=8)
    assert report and all(entry["ok"] for entry in report.values()), report
