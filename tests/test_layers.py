"""Forward values of every layer against small NumPy references (known weights put in with set_weights), and
finite-difference gradient checks of conv/pooling and BatchNormalization models through the public API."""

from __future__ import annotations

import math

import kerust
import numpy as np
import pytest
from kerust import layers, optimizers

TOL = {"rtol": 1e-5, "atol": 1e-5}


def _rng(seed=0):
    return np.random.default_rng(seed)


def _predict(model, x):
    return model.predict(x.astype("float32"), batch_size=len(x), verbose=0)


# ---- NumPy references (channels-last, TensorFlow's "same" padding) ------------------------------------------


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _same_pads(size, k, s):
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return out, total // 2, total - total // 2  # the extra row/column goes at the end


def _windows(x, k, s, padding, fill):
    """Yield (i, j, window) over an (N, H, W, C) array padded with ``fill``; padded cells are NaN-marked."""
    (kh, kw), (sh, sw) = _pair(k), _pair(s)
    n, h, w, c = x.shape
    if padding == "same":
        oh, pt, pb = _same_pads(h, kh, sh)
        ow, pl, pr = _same_pads(w, kw, sw)
    else:
        oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
        pt = pb = pl = pr = 0
    xp = np.full((n, h + pt + pb, w + pl + pr, c), fill, dtype=np.float64)
    xp[:, pt:pt + h, pl:pl + w, :] = x
    mask = np.zeros((h + pt + pb, w + pl + pr))
    mask[pt:pt + h, pl:pl + w] = 1
    for i in range(oh):
        for j in range(ow):
            ys, xs = i * sh, j * sw
            yield i, j, xp[:, ys:ys + kh, xs:xs + kw, :], mask[ys:ys + kh, xs:xs + kw], (oh, ow)


def conv2d_ref(x, kernel, bias, strides=1, padding="valid"):
    x = x.astype(np.float64)
    out = None
    for i, j, win, _, (oh, ow) in _windows(x, kernel.shape[:2], strides, padding, 0.0):
        if out is None:
            out = np.zeros((x.shape[0], oh, ow, kernel.shape[3]))
        out[:, i, j, :] = np.einsum("nhwc,hwco->no", win, kernel.astype(np.float64)) + bias
    return out


def pool_ref(x, pool, strides, padding, mode):
    x = x.astype(np.float64)
    out = None
    for i, j, win, mask, (oh, ow) in _windows(x, pool, strides if strides is not None else pool, padding,
                                              -np.inf if mode == "max" else 0.0):
        if out is None:
            out = np.zeros((x.shape[0], oh, ow, x.shape[3]))
        if mode == "max":
            out[:, i, j, :] = win.max(axis=(1, 2))
        else:
            out[:, i, j, :] = win.sum(axis=(1, 2)) / mask.sum()  # padding excluded from the count
    return out


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946
_erf = np.vectorize(math.erf)

ACTIVATIONS = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0),
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
    "softmax": _softmax,
    "elu": lambda x: np.where(x > 0, x, np.expm1(x)),
    "selu": lambda x: _SELU_SCALE * np.where(x > 0, x, _SELU_ALPHA * np.expm1(x)),
    "gelu": lambda x: 0.5 * x * (1 + _erf(x / math.sqrt(2))),  # exact (approximate=False), Keras's default
    "softplus": lambda x: np.log1p(np.exp(x)),
    "softsign": lambda x: x / (1 + np.abs(x)),
    "swish": lambda x: x * _sigmoid(x),
    "silu": lambda x: x * _sigmoid(x),
    "relu6": lambda x: np.clip(x, 0, 6),
    "hard_sigmoid": lambda x: np.clip(x + 3, 0, 6) / 6,  # Keras 3: relu6(x + 3) / 6
    "exponential": np.exp,
    "leaky_relu": lambda x: np.where(x > 0, x, 0.2 * x),  # Keras 3 default negative_slope=0.2
}

# values on both sides of every kink, including where Keras 2 and 3 hard_sigmoid differ (|x| = 2.5)
_ACT_INPUT = np.array([[-7.0, -3.5, -2.5, -1.0, -0.3, 0.0, 0.2, 0.9, 2.5, 3.2, 5.9, 6.5, 8.0]])


# ---- Dense ----------------------------------------------------------------------------------------------------


def test_dense_forward(uid):
    rng = _rng(1)
    x = rng.normal(size=(5, 4))
    k = rng.normal(size=(4, 3)).astype("float32")
    b = rng.normal(size=3).astype("float32")
    layer = layers.Dense(3, name=uid("d"))
    m = kerust.Sequential([kerust.Input((4,)), layer])
    layer.set_weights([k, b])
    np.testing.assert_allclose(_predict(m, x), x @ k + b, **TOL)
    m2 = kerust.Sequential([kerust.Input((4,)), layers.Dense(3, use_bias=False, activation="tanh",
                                                                name=uid("d"))])
    m2.set_weights([k])
    np.testing.assert_allclose(_predict(m2, x), np.tanh(x @ k), **TOL)


def test_dense_on_rank_3_input_acts_on_the_last_axis(uid):
    rng = _rng(2)
    x = rng.normal(size=(2, 3, 4))
    m = kerust.Sequential([kerust.Input((3, 4)), layers.Dense(5, name=uid("d"))])
    k, b = rng.normal(size=(4, 5)).astype("float32"), rng.normal(size=5).astype("float32")
    m.set_weights([k, b])
    assert m.layers[0].output_shape == (None, 3, 5)
    np.testing.assert_allclose(_predict(m, x), x @ k + b, **TOL)


# ---- Conv2D --------------------------------------------------------------------------------------------------

_CONV_CASES = [
    # (input HWC, filters, kernel, strides, padding)
    ((5, 5, 2), 3, (3, 3), 1, "valid"),
    ((5, 5, 2), 3, (3, 3), 1, "same"),
    ((6, 5, 2), 3, (2, 2), 1, "same"),  # even kernel: one extra row/column of padding, at the end
    ((7, 6, 1), 2, (4, 3), 2, "same"),  # even kernel, stride 2: total padding 3 -> 1 before, 2 after
    ((7, 7, 2), 2, (3, 3), 2, "valid"),
    ((6, 6, 1), 1, (2, 2), 2, "same"),  # no padding needed
    ((5, 6, 3), 2, (1, 1), 1, "valid"),
    ((7, 5, 2), 2, (3, 2), (2, 1), "same"),
    ((8, 8, 2), 2, (5, 5), 3, "same"),
]


@pytest.mark.parametrize("shape,filters,kernel,strides,padding", _CONV_CASES,
                         ids=[f"{c[0]}-k{c[2]}-s{c[3]}-{c[4]}".replace(" ", "") for c in _CONV_CASES])
def test_conv2d_forward(shape, filters, kernel, strides, padding, uid):
    rng = _rng(3)
    x = rng.normal(size=(2, *shape))
    layer = layers.Conv2D(filters, kernel, strides=strides, padding=padding, name=uid("conv"))
    m = kerust.Sequential([kerust.Input(shape), layer])
    k = rng.normal(size=(*kernel, shape[2], filters)).astype("float32")
    b = rng.normal(size=filters).astype("float32")
    assert [w.shape for w in m.get_weights()] == [k.shape, b.shape]
    m.set_weights([k, b])
    expected = conv2d_ref(x, k, b, strides, padding)
    assert layer.output_shape == (None, *expected.shape[1:])
    np.testing.assert_allclose(_predict(m, x), expected, **TOL)


def test_conv2d_fused_activation(uid):
    rng = _rng(4)
    x = rng.normal(size=(2, 5, 5, 2))
    m = kerust.Sequential([kerust.Input((5, 5, 2)), layers.Conv2D(3, 3, activation="relu", name=uid("c"))])
    k, b = rng.normal(size=(3, 3, 2, 3)).astype("float32"), rng.normal(size=3).astype("float32")
    m.set_weights([k, b])
    np.testing.assert_allclose(_predict(m, x), np.maximum(conv2d_ref(x, k, b), 0), **TOL)


# ---- pooling --------------------------------------------------------------------------------------------------

_POOL_CASES = [
    # (pool_size, strides, padding)
    (2, None, "valid"),
    (3, 1, "valid"),  # overlapping windows
    (3, 2, "valid"),  # overlapping, and 7 is not covered exactly
    (2, None, "same"),  # 5 and 7 do not divide by 2: one padded row/column at the end
    (3, 2, "same"),
    (3, 1, "same"),  # padding on both sides
    ((2, 3), (1, 2), "same"),
    ((3, 2), (2, 3), "valid"),
]


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("pool,strides,padding", _POOL_CASES,
                         ids=[f"p{c[0]}-s{c[1]}-{c[2]}".replace(" ", "") for c in _POOL_CASES])
def test_pooling_forward(mode, pool, strides, padding, uid):
    # all negative: a padded cell counted as 0 would win the max, or pull the average up
    x = _rng(5).normal(size=(2, 5, 7, 3)) - 5.0
    cls = layers.MaxPooling2D if mode == "max" else layers.AveragePooling2D
    layer = cls(pool_size=pool, strides=strides, padding=padding, name=uid("pool"))
    m = kerust.Sequential([kerust.Input((5, 7, 3)), layer])
    expected = pool_ref(x, pool, strides, padding, mode)
    assert layer.output_shape == (None, *expected.shape[1:])
    np.testing.assert_allclose(_predict(m, x), expected, **TOL)


def test_pooling_default_strides_equal_pool_size(uid):
    x = np.arange(2 * 4 * 6 * 1, dtype="float32").reshape(2, 4, 6, 1)
    m = kerust.Sequential([kerust.Input((4, 6, 1)), layers.MaxPooling2D((2, 3), name=uid("p"))])
    out = _predict(m, x)
    assert out.shape == (2, 2, 2, 1)
    np.testing.assert_array_equal(out[0, :, :, 0], [[8, 11], [20, 23]])


@pytest.mark.parametrize("keepdims", [False, True])
def test_global_pooling(keepdims, uid):
    x = _rng(6).normal(size=(3, 4, 5, 2)) - 2.0
    gap = kerust.Sequential([kerust.Input((4, 5, 2)),
                             layers.GlobalAveragePooling2D(keepdims=keepdims, name=uid("gap"))])
    gmp = kerust.Sequential([kerust.Input((4, 5, 2)),
                             layers.GlobalMaxPooling2D(keepdims=keepdims, name=uid("gmp"))])
    np.testing.assert_allclose(_predict(gap, x), x.mean(axis=(1, 2), keepdims=keepdims), **TOL)
    np.testing.assert_allclose(_predict(gmp, x), x.max(axis=(1, 2), keepdims=keepdims), **TOL)
    shape = (None, 1, 1, 2) if keepdims else (None, 2)
    assert gap.layers[0].output_shape == shape and gmp.layers[0].output_shape == shape


# ---- reshaping ---------------------------------------------------------------------------------------------------


def test_flatten_is_row_major_channels_last(uid):
    x = _rng(7).normal(size=(2, 3, 4, 5))
    m = kerust.Sequential([kerust.Input((3, 4, 5)), layers.Flatten(name=uid("f"))])
    assert m.layers[0].output_shape == (None, 60)
    np.testing.assert_array_equal(_predict(m, x), x.astype("float32").reshape(2, -1))


@pytest.mark.parametrize("target", [(4, 6), (2, 3, 4), (24,), (-1, 3), (2, -1, 4)])
def test_reshape(target, uid):
    x = _rng(8).normal(size=(2, 6, 4))
    m = kerust.Sequential([kerust.Input((6, 4)), layers.Reshape(target, name=uid("r"))])
    expected = x.astype("float32").reshape(2, *target)
    assert m.layers[0].output_shape == (None, *expected.shape[1:])
    np.testing.assert_array_equal(_predict(m, x), expected)


# ---- activations --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_layer(name, uid):
    x = _ACT_INPUT
    m = kerust.Sequential([kerust.Input((x.shape[1],)), layers.Activation(name, name=uid("a"))])
    np.testing.assert_allclose(_predict(m, x), ACTIVATIONS[name](x), **TOL)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_fused_in_dense(name, uid):
    x = _ACT_INPUT
    n = x.shape[1]
    m = kerust.Sequential([kerust.Input((n,)), layers.Dense(n, activation=name, name=uid("d"))])
    m.set_weights([np.eye(n, dtype="float32"), np.zeros(n, "float32")])
    np.testing.assert_allclose(_predict(m, x), ACTIVATIONS[name](x), **TOL)


def test_softmax_acts_on_the_last_axis(uid):
    x = _rng(9).normal(size=(2, 3, 4)) * 3
    m = kerust.Sequential([kerust.Input((3, 4)), layers.Activation("softmax", name=uid("a"))])
    np.testing.assert_allclose(_predict(m, x), _softmax(x), **TOL)
    # large logits do not overflow
    big = np.array([[1000.0, 0.0, -1000.0, 999.0]])
    m2 = kerust.Sequential([kerust.Input((4,)), layers.Activation("softmax", name=uid("a"))])
    out = _predict(m2, big)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, _softmax(big), **TOL)


def test_activation_accepts_callables_and_none(uid):
    def relu(x):  # a function named like a Keras activation
        return x

    m = kerust.Sequential([kerust.Input((13,)), layers.Activation(relu, name=uid("a"))])
    np.testing.assert_allclose(_predict(m, _ACT_INPUT), np.maximum(_ACT_INPUT, 0), **TOL)
    d = kerust.Sequential([kerust.Input((13,)), layers.Dense(13, activation=None, name=uid("d"))])
    d.set_weights([np.eye(13, dtype="float32"), np.zeros(13, "float32")])
    np.testing.assert_allclose(_predict(d, _ACT_INPUT), _ACT_INPUT, **TOL)


# ---- Dropout --------------------------------------------------------------------------------------------------


def test_dropout_is_identity_at_inference(uid):
    x = _rng(10).normal(size=(4, 50))
    m = kerust.Sequential([kerust.Input((50,)), layers.Dropout(0.5, name=uid("drop"))])
    np.testing.assert_array_equal(_predict(m, x), x.astype("float32"))
    m.compile(optimizer="sgd", loss="mse")
    assert m.evaluate(x, x, verbose=0) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("rate", [0.2, 0.5, 0.75])
def test_dropout_in_training_zeroes_rate_and_scales(rate, uid):
    """Input -> Dropout -> Dense(1, no bias, kernel 0), loss MAE against y = -1, SGD(lr=1):
    d(loss)/d(kernel_j) = mask_j * x_j / (1 - rate), so the step shows the dropout mask and its scale."""
    d = 4000
    m = kerust.Sequential([kerust.Input((d,)), layers.Dropout(rate, name=uid("drop")),
                           layers.Dense(1, use_bias=False, kernel_initializer="zeros", name=uid("d"))])
    m.compile(optimizer=optimizers.SGD(learning_rate=1.0), loss="mae")
    m.train_on_batch(np.ones((1, d), "float32"), np.array([[-1.0]], "float32"))
    step = -m.get_weights()[0][:, 0].astype(np.float64)
    kept = step != 0
    np.testing.assert_allclose(step[kept], 1.0 / (1.0 - rate), rtol=1e-6)
    dropped = 1.0 - kept.mean()
    assert abs(dropped - rate) < 5 * math.sqrt(rate * (1 - rate) / d)
    # a second step draws a different mask
    m.set_weights([np.zeros((d, 1), "float32")])
    m.train_on_batch(np.ones((1, d), "float32"), np.array([[-1.0]], "float32"))
    assert not np.array_equal(m.get_weights()[0][:, 0] != 0, kept)


# ---- BatchNormalization ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(5,), (3, 4, 5)])
def test_batchnorm_inference_uses_moving_statistics(shape, uid):
    rng = _rng(11)
    c = shape[-1]
    x = rng.normal(size=(4, *shape)) * 2 + 1
    bn = layers.BatchNormalization(name=uid("bn"))
    m = kerust.Sequential([kerust.Input(shape), bn])
    names = [w.shape for w in bn.get_weights()]
    assert names == [(c,)] * 4
    gamma, beta, mean = (rng.normal(size=c).astype("float32") for _ in range(3))
    var = rng.uniform(0.1, 2.0, size=c).astype("float32")
    bn.set_weights([gamma, beta, mean, var])
    expected = gamma * (x - mean) / np.sqrt(var.astype(np.float64) + 1e-3) + beta
    np.testing.assert_allclose(_predict(m, x), expected, **TOL)
    # defaults: gamma 1, beta 0, moving mean 0, moving variance 1
    fresh = kerust.Sequential([kerust.Input(shape), layers.BatchNormalization(name=uid("bn"))])
    np.testing.assert_allclose(_predict(fresh, x), x / math.sqrt(1 + 1e-3), **TOL)


def test_batchnorm_params_are_half_non_trainable(uid):
    m = kerust.Sequential([kerust.Input((4, 4, 3)), layers.BatchNormalization(name=uid("bn"))])
    lines: list = []
    m.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "Total params: 12" in text
    assert "Trainable params: 6" in text
    assert "Non-trainable params: 6" in text


def test_batchnorm_training_uses_batch_statistics_and_updates_moving_ones(uid):
    rng = _rng(12)
    x = (rng.normal(size=(8, 3)) * [1.0, 2.0, 0.5] + [0.5, -1.0, 2.0]).astype("float32")
    bn = layers.BatchNormalization(momentum=0.9, name=uid("bn"))
    m = kerust.Sequential([kerust.Input((3,)), bn])
    gamma = np.array([1.5, 0.5, 2.0], "float32")
    beta = np.array([0.1, -0.2, 0.3], "float32")
    mm = np.array([0.2, 0.1, -0.3], "float32")
    mv = np.array([1.2, 0.8, 1.5], "float32")
    bn.set_weights([gamma, beta, mm, mv])
    m.compile(optimizer=optimizers.SGD(learning_rate=1e-30), loss="mse")
    xd = x.astype(np.float64)
    bmean, bvar = xd.mean(axis=0), xd.var(axis=0)  # biased variance, as Keras
    y_train = gamma * (xd - bmean) / np.sqrt(bvar + 1e-3) + beta
    loss = m.train_on_batch(x, np.zeros_like(x))
    assert loss == pytest.approx(float(np.mean(y_train**2)), rel=1e-5)
    g, b, new_mm, new_mv = bn.get_weights()
    np.testing.assert_allclose(new_mm, 0.9 * mm + 0.1 * bmean, **TOL)
    np.testing.assert_allclose(new_mv, 0.9 * mv + 0.1 * bvar, **TOL)
    np.testing.assert_allclose(g, gamma, **TOL)
    np.testing.assert_allclose(b, beta, **TOL)


# ---- finite-difference gradients through the public API ---------------------------------------------------------


def test_conv_pool_dense_gradients(uid, fd_check):
    rng = _rng(13)
    x = rng.normal(size=(3, 6, 6, 2)).astype("float32")
    y = kerust.utils.to_categorical(rng.integers(0, 3, size=3), 3)
    m = kerust.Sequential([
        kerust.Input((6, 6, 2)),
        layers.Conv2D(2, 3, activation="tanh", name=uid("conv")),
        layers.MaxPooling2D(2, name=uid("pool")),
        layers.Flatten(name=uid("flat")),
        layers.Dense(3, activation="softmax", name=uid("dense")),
    ])
    m.set_weights([w if w.ndim > 1 else rng.normal(size=w.shape).astype("float32") * 0.2 for w in m.get_weights()])
    m.compile(optimizer=optimizers.SGD(learning_rate=1.0), loss="categorical_crossentropy")
    fd_check(m, x, y)


def test_strided_same_conv_avgpool_global_pool_gradients(uid, fd_check):
    rng = _rng(14)
    x = rng.normal(size=(2, 7, 6, 2)).astype("float32")
    y = rng.normal(size=(2, 2)).astype("float32")
    m = kerust.Sequential([
        kerust.Input((7, 6, 2)),
        layers.Conv2D(3, (4, 3), strides=2, padding="same", activation="sigmoid", name=uid("conv")),
        layers.AveragePooling2D(3, strides=1, padding="same", name=uid("pool")),
        layers.Conv2D(2, 2, padding="same", name=uid("conv")),
        layers.GlobalMaxPooling2D(name=uid("gmp")),
        layers.Dense(2, name=uid("dense")),
    ])
    m.compile(optimizer=optimizers.SGD(learning_rate=1.0), loss="mse")
    fd_check(m, x, y)


def test_batchnorm_first_layer_gradients_at_inference_statistics(uid, fd_check):
    """BN first, its moving statistics set to the batch's own: inference and training forward agree, so the
    evaluate loss has the gradient the training step applies to gamma, beta and the Dense after it."""
    rng = _rng(15)
    x = (rng.normal(size=(6, 3)) * 2 + 1).astype("float32")
    y = rng.integers(0, 2, size=(6, 2)).astype("float32")
    bn = layers.BatchNormalization(name=uid("bn"))
    m = kerust.Sequential([kerust.Input((3,)), bn, layers.Dense(2, activation="sigmoid", name=uid("d"))])
    xd = x.astype(np.float64)
    bn.set_weights([rng.uniform(0.5, 1.5, 3).astype("float32"), rng.normal(size=3).astype("float32"),
                    xd.mean(axis=0).astype("float32"), xd.var(axis=0).astype("float32")])
    m.compile(optimizer=optimizers.SGD(learning_rate=1.0), loss="binary_crossentropy")
    fd_check(m, x, y, indices=[0, 1, 4, 5])


def test_batchnorm_gradients_through_batch_statistics(uid, fd_check):
    """Dense -> BN -> Dense in training mode: the loss train_on_batch reports (before its update) has the gradient
    the step applies, including the part that flows through the batch mean and variance."""
    rng = _rng(16)
    x = rng.normal(size=(6, 3)).astype("float32")
    y = rng.integers(0, 3, size=6)
    m = kerust.Sequential([
        kerust.Input((3,)),
        layers.Dense(4, name=uid("d")),
        layers.BatchNormalization(name=uid("bn")),
        layers.Activation("tanh", name=uid("a")),
        layers.Dense(3, activation="softmax", name=uid("d")),
    ])
    w = m.get_weights()
    w[2] = rng.uniform(0.5, 1.5, 4).astype("float32")
    w[3] = rng.normal(size=4).astype("float32") * 0.3
    m.set_weights(w)
    m.compile(optimizer=optimizers.SGD(learning_rate=1.0), loss="sparse_categorical_crossentropy")
    fd_check(m, x, y, objective="train", indices=[0, 2, 3, 6, 7])
    # the Dense bias before BN has no effect on the loss: its gradient is 0
    before = m.get_weights()
    m.train_on_batch(x, y)
    np.testing.assert_allclose(m.get_weights()[1], before[1], atol=1e-6)
