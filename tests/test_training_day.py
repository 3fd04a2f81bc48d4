"""Training-day features against Keras 3.15.1 (TensorFlow 2.21 backend): optimizers and gradient clipping,
learning-rate schedules, weight regularizers, the activation / noise layers, the confusion-matrix and top-k
metrics, fit's arguments (class_weight, sample_weight, initial_epoch, validation_freq, steps_per_epoch), the
*_on_batch methods, and freezing layers.

Every reference number below was computed with Keras 3.15.1 on the same model, weights and data (small scripts
run in a separate virtualenv; kerust never imports Keras). Inputs and weights are fixed arrays or come from
``_det``, a deterministic sine pattern that the Keras scripts used too.
"""

from __future__ import annotations

import math

import kerust
import numpy as np
import pytest
from kerust import layers, optimizers, regularizers
from kerust.optimizers import schedules

# ---- shared data -------------------------------------------------------------------------------------------------

X = np.array([[0.5, -1.0, 2.0], [1.5, 0.3, -0.7], [-0.2, 0.8, 0.1], [1.0, 1.0, -1.0]], np.float32)
Y = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, -0.5], [2.0, 1.0]], np.float32)
W = np.array([[0.1, -0.2], [0.3, 0.4], [-0.5, 0.6]], np.float32)
B = np.array([0.05, -0.1], np.float32)


def _det(shape, phase, scale=1.0):
    """Deterministic 'random-looking' float32 values: sin(1.37 * i + phase) * scale (same in the Keras scripts)."""
    n = int(np.prod(shape))
    return (np.sin(np.arange(n) * 1.37 + phase) * scale).astype(np.float32).reshape(shape)


def _dense(uid, **kwargs):
    """Sequential([Input((3,)), Dense(2)]) with kernel W and bias B."""
    m = kerust.Sequential([kerust.Input((3,)), layers.Dense(2, name=uid("d"), **kwargs)], name=uid("m"))
    m.set_weights([W, B])
    return m


def _constant(value):
    return {"class_name": "Constant", "config": {"value": value}}


# ---- 1. optimizers -------------------------------------------------------------------------------------------------

# Keras 3.15.1: Sequential([Input((3,)), Dense(2)]), set_weights([W, B]), compile(optimizer, "mse"),
# three train_on_batch(X, Y): (kernel, bias, the three returned losses)
KERAS_OPTIMIZER_STEPS = {
    "adadelta": (
        [[0.104277633, -0.195716128], [0.295721024, 0.404277623], [-0.495716065, 0.595716953]],
        [0.0542838275, -0.0957232192],
        [1.57536256, 1.56809735, 1.56078124],
    ),
    "adamax": (
        [[0.339664787, 0.0680276826], [0.0546211824, 0.639299035], [-0.232000381, 0.335881829]],
        [0.317647427, 0.135768414],
        [1.57536256, 1.12973762, 0.85367763],
    ),
    "nadam": (
        [[0.304384202, 0.0333757102], [0.0893010199, 0.603762567], [-0.266886711, 0.370107293]],
        [0.282933712, 0.0996271595],
        [1.57536256, 1.10636711, 0.892958939],
    ),
    "adamw": (
        [[0.35776037, 0.107994661], [-0.000749267638, 0.606541157], [-0.150855452, 0.236875981]],
        [0.323445499, 0.177290499],
        [1.57536256, 1.08569145, 0.776674688],
    ),
    "adam_amsgrad": (
        [[0.380593657, 0.09475068], [0.0153812617, 0.680370808], [-0.205220014, 0.306490183]],
        [0.344658345, 0.177533567],
        [1.57536256, 1.12974179, 0.826390743],
    ),
    "rmsprop_centered": (
        [[0.583861172, 0.467247605], [-0.216036528, 0.880775273], [0.1638349, -0.040857181]],
        [0.713222742, 0.361454606],
        [1.57536256, 0.909404814, 0.592196941],
    ),
    "adagrad": (
        [[0.238500983, 0.00285676122], [0.161313847, 0.562013566], [-0.297174454, 0.400283515]],
        [0.247522652, 0.0567127652],
        [1.57536256, 1.16838479, 0.964787841],
    ),
    "sgd_clipnorm": (
        [[0.122420311, -0.118512377], [0.276533455, 0.439114064], [-0.419778794, 0.517306507]],
        [0.179124489, -0.0237003975],
        [1.57536256, 1.44684505, 1.32653713],
    ),
    "sgd_clipvalue": (
        [[0.159999996, -0.140000015], [0.239999995, 0.460000038], [-0.439999968, 0.540000081]],
        [0.110000007, -0.0399999917],
        [1.57536256, 1.47518539, 1.38053465],
    ),
    "sgd_global_clipnorm": (
        [[0.121447884, -0.125953734], [0.279348195, 0.435633719], [-0.427676588, 0.525670946]],
        [0.10506437, -0.0672691166],
        [1.57536256, 1.47791123, 1.38492775],
    ),
    "adam_clipnorm": (
        [[0.390583694, 0.100296892], [0.00550879538, 0.690369129], [-0.199693173, 0.300026447]],
        [0.350444138, 0.188279033],
        [1.57536256, 1.12974918, 0.822502136],
    ),
    "sgd_momentum_weight_decay": (
        [[0.197533518, 0.160666555], [0.195406586, 0.525669217], [-0.134886891, 0.226931453]],
        [0.314061075, 0.0477924272],
        [1.57536256, 1.194731, 0.822966516],
    ),
}

OPTIMIZERS = {
    "adadelta": lambda: optimizers.Adadelta(learning_rate=1.0),
    "adamax": lambda: optimizers.Adamax(learning_rate=0.1),
    "nadam": lambda: optimizers.Nadam(learning_rate=0.1),
    "adamw": lambda: optimizers.AdamW(learning_rate=0.1, weight_decay=0.5),
    "adam_amsgrad": lambda: optimizers.Adam(learning_rate=0.1, amsgrad=True),
    "rmsprop_centered": lambda: optimizers.RMSprop(learning_rate=0.05, momentum=0.9, centered=True),
    "adagrad": lambda: optimizers.Adagrad(learning_rate=0.1),
    "sgd_clipnorm": lambda: optimizers.SGD(learning_rate=0.1, clipnorm=0.5),
    "sgd_clipvalue": lambda: optimizers.SGD(learning_rate=0.1, clipvalue=0.2),
    "sgd_global_clipnorm": lambda: optimizers.SGD(learning_rate=0.1, global_clipnorm=0.5),
    "adam_clipnorm": lambda: optimizers.Adam(learning_rate=0.1, clipnorm=0.3),
    "sgd_momentum_weight_decay": lambda: optimizers.SGD(learning_rate=0.1, momentum=0.5, weight_decay=0.2),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_three_steps_match_keras(uid, name):
    m = _dense(uid)
    m.compile(optimizer=OPTIMIZERS[name](), loss="mse")
    losses = [m.train_on_batch(X, Y) for _ in range(3)]
    kernel, bias, keras_losses = KERAS_OPTIMIZER_STEPS[name]
    k, b = m.get_weights()
    np.testing.assert_allclose(k, kernel, rtol=0, atol=1e-5)
    np.testing.assert_allclose(b, bias, rtol=0, atol=1e-5)
    np.testing.assert_allclose(losses, keras_losses, rtol=1e-5)
    assert m.optimizer.iterations == 3


def test_clipping_bounds_the_first_step(uid):
    """The first SGD step moves each weight by lr * (clipped gradient): check the clip itself from the raw
    gradient of an unclipped SGD(lr=1) step."""
    raw = _dense(uid)
    raw.compile(optimizer=optimizers.SGD(1.0), loss="mse")
    raw.train_on_batch(X, Y)
    gk, gb = (w0 - w1 for w0, w1 in zip([W, B], raw.get_weights()))

    def first_step(opt):
        m = _dense(uid)
        m.compile(optimizer=opt, loss="mse")
        m.train_on_batch(X, Y)
        return [w0 - w1 for w0, w1 in zip([W, B], m.get_weights())]

    sk, sb = first_step(optimizers.SGD(1.0, clipvalue=0.2))
    np.testing.assert_allclose(sk, np.clip(gk, -0.2, 0.2), atol=1e-6)
    np.testing.assert_allclose(sb, np.clip(gb, -0.2, 0.2), atol=1e-6)
    sk, sb = first_step(optimizers.SGD(1.0, clipnorm=0.5))  # each variable on its own
    np.testing.assert_allclose(sk, gk * min(1.0, 0.5 / np.linalg.norm(gk)), atol=1e-6)
    np.testing.assert_allclose(sb, gb * min(1.0, 0.5 / np.linalg.norm(gb)), atol=1e-6)
    sk, sb = first_step(optimizers.SGD(1.0, global_clipnorm=0.5))  # all variables together
    scale = min(1.0, 0.5 / math.sqrt(float(np.sum(gk**2) + np.sum(gb**2))))
    np.testing.assert_allclose(sk, gk * scale, atol=1e-6)
    np.testing.assert_allclose(sb, gb * scale, atol=1e-6)


# ---- 2. learning-rate schedules ------------------------------------------------------------------------------------

SCHEDULE_STEPS = [0, 1, 3, 7, 10, 15, 20, 25, 40, 100]

SCHEDULES = {
    "exp": lambda: schedules.ExponentialDecay(0.1, decay_steps=7, decay_rate=0.5),
    "exp_staircase": lambda: schedules.ExponentialDecay(0.1, decay_steps=7, decay_rate=0.5, staircase=True),
    "piecewise": lambda: schedules.PiecewiseConstantDecay([3, 10, 20], [0.5, 0.2, 0.1, 0.01]),
    "poly": lambda: schedules.PolynomialDecay(0.1, decay_steps=20, end_learning_rate=0.01, power=2.0),
    "poly_cycle": lambda: schedules.PolynomialDecay(0.1, decay_steps=20, end_learning_rate=0.01, power=0.5,
                                                    cycle=True),
    "inverse_time": lambda: schedules.InverseTimeDecay(0.1, decay_steps=5, decay_rate=0.5),
    "inverse_time_staircase": lambda: schedules.InverseTimeDecay(0.1, decay_steps=5, decay_rate=0.5,
                                                                 staircase=True),
    "cosine": lambda: schedules.CosineDecay(0.1, decay_steps=20, alpha=0.1),
    "cosine_warmup": lambda: schedules.CosineDecay(0.0, decay_steps=20, alpha=0.1, warmup_target=0.2,
                                                   warmup_steps=5),
}

# Keras 3.15.1: float(schedule(step)) for step in SCHEDULE_STEPS
KERAS_SCHEDULE_VALUES = {
    "exp": [0.100000001, 0.0905723646, 0.0742997155, 0.0500000007, 0.0371498577, 0.022643093, 0.0138011193,
            0.00841187593, 0.00190470868, 5.00693022e-06],
    "exp_staircase": [0.100000001, 0.100000001, 0.100000001, 0.0500000007, 0.0500000007, 0.0250000004,
                      0.0250000004, 0.0125000002, 0.00312500005, 6.10351572e-06],
    "piecewise": [0.5, 0.5, 0.5, 0.200000003, 0.200000003, 0.100000001, 0.100000001, 0.00999999978, 0.00999999978,
                  0.00999999978],
    "poly": [0.100000001, 0.0912249982, 0.0750249997, 0.0480249971, 0.0324999988, 0.015625, 0.00999999978,
             0.00999999978, 0.00999999978, 0.00999999978],
    "poly_cycle": [0.100000001, 0.097721152, 0.0929758996, 0.0825603232, 0.0736396089, 0.0549999997,
                   0.00999999978, 0.0651135221, 0.00999999978, 0.00999999978],
    "inverse_time": [0.100000001, 0.0909090936, 0.0769230798, 0.0588235296, 0.0500000007, 0.0399999991,
                     0.0333333351, 0.0285714287, 0.0199999996, 0.0090909088],
    "inverse_time_staircase": [0.100000001, 0.100000001, 0.100000001, 0.0666666701, 0.0500000007, 0.0399999991,
                               0.0333333351, 0.0285714287, 0.0199999996, 0.0090909088],
    "cosine": [0.100000001, 0.0994459763, 0.0950952917, 0.0754295737, 0.054999996, 0.0231801961, 0.0100000007,
               0.0100000007, 0.0100000007, 0.0100000007],
    "cosine_warmup": [0, 0.0400000028, 0.120000005, 0.195595086, 0.173639625, 0.109999992, 0.0463603921,
                      0.0200000014, 0.0200000014, 0.0200000014],
}


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_schedule_values_match_keras(name):
    schedule = SCHEDULES[name]()
    got = [schedule(step) for step in SCHEDULE_STEPS]
    np.testing.assert_allclose(got, KERAS_SCHEDULE_VALUES[name], rtol=1e-6, atol=1e-9)


# Keras 3.15.1: SGD(schedule) on _dense, fit(X, Y, batch_size=1, epochs=3, shuffle=False): 12 steps;
# (optimizer.learning_rate afterwards, kernel, bias)
KERAS_SCHEDULED_FIT = {
    "exp_staircase": (0.05000000074505806,
                      [[0.25599587, 0.362633407], [0.206215501, 0.489311874], [0.053433992, 0.120679878]],
                      [0.519604683, 0.00544741936]),
    "piecewise": (0.10000000149011612,
                  [[-0.0250692964, 0.944016039], [0.667284012, 0.0101138577], [0.378616095, -0.119433746]],
                  [0.801971138, -0.285952061]),
    "cosine_warmup": (0.15085914731025696,
                      [[0.322047412, 0.576793909], [0.418960661, 0.410737067], [0.0803924799, 0.0391086638]],
                      [0.782298625, -0.0267599747]),
}


@pytest.mark.parametrize("name", sorted(KERAS_SCHEDULED_FIT))
def test_scheduled_sgd_fit_matches_keras(uid, name):
    schedule = SCHEDULES[name]()
    m = _dense(uid)
    m.compile(optimizer=optimizers.SGD(schedule), loss="mse")
    m.fit(X, Y, batch_size=1, epochs=3, shuffle=False, verbose=0)
    lr, kernel, bias = KERAS_SCHEDULED_FIT[name]
    assert m.optimizer.iterations == 12
    assert m.optimizer.learning_rate == pytest.approx(schedule(12), rel=1e-6)
    assert m.optimizer.learning_rate == pytest.approx(lr, rel=1e-6)
    k, b = m.get_weights()
    np.testing.assert_allclose(k, kernel, atol=1e-5)
    np.testing.assert_allclose(b, bias, atol=1e-5)


def test_scheduled_learning_rate_follows_the_step(uid):
    schedule = SCHEDULES["piecewise"]()
    m = _dense(uid)
    m.compile(optimizer=optimizers.SGD(schedule), loss="mse")
    assert m.optimizer.learning_rate == pytest.approx(0.5)
    for n in range(1, 12):
        m.train_on_batch(X, Y)
        assert m.optimizer.iterations == n
        assert m.optimizer.learning_rate == pytest.approx(schedule(n), rel=1e-6)


def test_learning_rate_of_a_scheduled_optimizer_is_not_settable(uid):
    opt = optimizers.SGD(SCHEDULES["exp"]())
    with pytest.raises(TypeError, match="not settable"):
        opt.learning_rate = 0.1
    m = _dense(uid)
    m.compile(optimizer=opt, loss="mse")
    with pytest.raises(TypeError, match="not settable"):
        m.optimizer.learning_rate = 0.1


class _SetLearningRate(kerust.callbacks.Callback):
    def __init__(self, rates):
        super().__init__()
        self.rates = rates

    def on_epoch_begin(self, epoch, logs=None):
        self.model.optimizer.learning_rate = self.rates[epoch]


def test_learning_rate_set_between_epochs_takes_effect(uid):
    # Keras 3.15.1: SGD(0.5), a callback setting learning_rate to 0.1, 0.01, 0.0 at each epoch's start,
    # fit(X, Y, batch_size=2, epochs=3, shuffle=False)
    m = _dense(uid)
    m.compile(optimizer=optimizers.SGD(0.5), loss="mse")
    h = m.fit(X, Y, batch_size=2, epochs=3, shuffle=False, verbose=0, callbacks=[_SetLearningRate([0.1, 0.01, 0.0])])
    np.testing.assert_allclose(h.history["loss"], [1.55737615, 0.957558274, 0.920136213], rtol=1e-5)
    k, b = m.get_weights()
    np.testing.assert_allclose(
        k, [[0.174051359, -0.00673230411], [0.254489869, 0.482614964], [-0.309051782, 0.405497193]], atol=1e-5
    )
    np.testing.assert_allclose(b, [0.218401387, -0.0265613627], atol=1e-5)
    assert m.optimizer.learning_rate == 0.0

    # between fit calls: a zero rate freezes everything, a new rate moves again
    before = m.get_weights()
    m.fit(X, Y, batch_size=2, epochs=1, shuffle=False, verbose=0)
    for a, c in zip(before, m.get_weights()):
        np.testing.assert_array_equal(a, c)
    m.optimizer.learning_rate = 0.1
    m.fit(X, Y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    assert not np.allclose(before[0], m.get_weights()[0])


# ---- 3. regularizers ------------------------------------------------------------------------------------------------

XC = _det((6, 4, 4, 1), 0.3)
YC = _det((6, 1), 1.1)
CONV_WEIGHTS = [_det((2, 2, 1, 2), 2.0, 0.5), np.array([0.1, -0.2], np.float32), _det((18, 1), 0.7, 0.3),
                np.array([0.05], np.float32)]


def _conv(uid, regularized=True):
    """Conv2D(2, 2, kernel "l1", bias L1L2(0.01, 0.02)) -> Flatten -> Dense(1, kernel L1L2(0.001, 0.01))."""
    m = kerust.Sequential([
        kerust.Input((4, 4, 1)),
        layers.Conv2D(2, 2, name=uid("c"), kernel_regularizer="l1" if regularized else None,
                      bias_regularizer=regularizers.L1L2(l1=0.01, l2=0.02) if regularized else None),
        layers.Flatten(name=uid("f")),
        layers.Dense(1, name=uid("d"),
                     kernel_regularizer=regularizers.L1L2(l1=0.001, l2=0.01) if regularized else None),
    ], name=uid("m"))
    m.set_weights(CONV_WEIGHTS)
    return m


def _conv_penalty(weights):
    kc, bc, kd, _ = (w.astype(np.float64) for w in weights)
    return (0.01 * np.abs(kc).sum() + 0.01 * np.abs(bc).sum() + 0.02 * np.square(bc).sum()
            + 0.001 * np.abs(kd).sum() + 0.01 * np.square(kd).sum())


def _mse(pred, y):
    return float(np.mean((pred.astype(np.float64) - y) ** 2))


REGULARIZED_DENSE = {
    "L2(0.01)": (lambda: regularizers.L2(0.01), lambda w: 0.01 * np.square(w).sum(), lambda w: 2 * 0.01 * w),
    "l1": (lambda: "l1", lambda w: 0.01 * np.abs(w).sum(), lambda w: 0.01 * np.sign(w)),
    "L1L2(0.02, 0.03)": (lambda: regularizers.L1L2(l1=0.02, l2=0.03),
                         lambda w: 0.02 * np.abs(w).sum() + 0.03 * np.square(w).sum(),
                         lambda w: 0.02 * np.sign(w) + 2 * 0.03 * w),
}


@pytest.mark.parametrize("name", sorted(REGULARIZED_DENSE))
def test_dense_regularizer_adds_its_penalty_and_gradient(uid, name):
    make, penalty, grad = REGULARIZED_DENSE[name]
    W64 = W.astype(np.float64)
    reg = _dense(uid, kernel_regularizer=make())
    plain = _dense(uid)
    for m in (reg, plain):
        m.compile(optimizer=optimizers.SGD(1.0), loss="mse")
    data_loss = _mse(X @ W + B, Y)
    assert plain.evaluate(X, Y, verbose=0) == pytest.approx(data_loss, rel=1e-6)
    assert reg.evaluate(X, Y, verbose=0) == pytest.approx(data_loss + penalty(W64), rel=1e-6)
    # one SGD(1) step: the regularized model moves by the extra -penalty gradient on the kernel only
    assert reg.train_on_batch(X, Y) == pytest.approx(data_loss + penalty(W64), rel=1e-6)
    plain.train_on_batch(X, Y)
    (kr, br), (kp, bp) = reg.get_weights(), plain.get_weights()
    np.testing.assert_allclose(kr - kp, -grad(W64), atol=1e-6)
    np.testing.assert_allclose(br, bp, atol=1e-7)


def test_conv_and_dense_regularizers_add_their_penalty_and_gradient(uid):
    reg, plain = _conv(uid), _conv(uid, regularized=False)
    for m in (reg, plain):
        m.compile(optimizer=optimizers.SGD(1.0), loss="mse")
    data_loss = plain.evaluate(XC, YC, verbose=0)
    assert data_loss == pytest.approx(_mse(plain.predict(XC, verbose=0), YC), rel=1e-6)
    assert reg.evaluate(XC, YC, verbose=0) == pytest.approx(data_loss + _conv_penalty(CONV_WEIGHTS), rel=1e-6)
    reg.train_on_batch(XC, YC)
    plain.train_on_batch(XC, YC)
    kc, bc, kd, _ = (w.astype(np.float64) for w in CONV_WEIGHTS)
    penalty_grads = [0.01 * np.sign(kc), 0.01 * np.sign(bc) + 2 * 0.02 * bc, 0.001 * np.sign(kd) + 2 * 0.01 * kd,
                     np.zeros(1)]
    for wr, wp, g in zip(reg.get_weights(), plain.get_weights(), penalty_grads):
        np.testing.assert_allclose(wr - wp, -g, atol=1e-6)


def test_history_loss_includes_the_penalty(uid):
    m = _dense(uid, kernel_regularizer=regularizers.L2(0.01))
    m.compile(optimizer=optimizers.SGD(0.0), loss="mse")
    h = m.fit(X, Y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    expected = _mse(X @ W + B, Y) + 0.01 * float(np.square(W.astype(np.float64)).sum())
    np.testing.assert_allclose(h.history["loss"], [expected, expected], rtol=1e-6)


# Keras 3.15.1: SGD(0.1), "mse": (evaluate() before training, fit(batch_size=2, epochs=2, shuffle=False) losses)
KERAS_REGULARIZED_FIT = {
    "dense_l2": (1.58446252, [1.56489813, 0.993040562]),
    "dense_l1": (1.59636259, [1.5761869, 1.00214493]),
    "conv": (0.600113034, [0.789157212, 0.824132502]),
}


@pytest.mark.parametrize("name", sorted(KERAS_REGULARIZED_FIT))
def test_regularized_fit_matches_keras(uid, name):
    if name == "conv":
        m, x, y = _conv(uid), XC, YC
    else:
        m = _dense(uid, kernel_regularizer=regularizers.L2(0.01) if name == "dense_l2" else "l1")
        x, y = X, Y
    m.compile(optimizer=optimizers.SGD(0.1), loss="mse")
    evaluated, losses = KERAS_REGULARIZED_FIT[name]
    assert m.evaluate(x, y, verbose=0) == pytest.approx(evaluated, rel=1e-5)
    h = m.fit(x, y, batch_size=2, epochs=2, shuffle=False, verbose=0)
    np.testing.assert_allclose(h.history["loss"], losses, rtol=1e-5)
    if name == "dense_l2":
        # Keras 3.15.1 weights after the fit
        k, b = m.get_weights()
        np.testing.assert_allclose(
            k, [[0.215713471, 0.109796807], [0.235716909, 0.50827688], [-0.197024524, 0.29825443]], atol=1e-5
        )
        np.testing.assert_allclose(b, [0.323284149, 0.00410524849], atol=1e-5)


# ---- 4. activation and noise layers ---------------------------------------------------------------------------------

X2 = np.concatenate([_det((3, 6), 0.2, 3.0), np.array([[0.5, 1.5, 0.0, -1.0, 2.0, 0.25]], np.float32)])
X4 = _det((2, 3, 3, 2), 0.5, 3.0)

ACTIVATION_LAYERS = {
    "leaky_default": (lambda: layers.LeakyReLU(), X2),
    "leaky_0.1": (lambda: layers.LeakyReLU(negative_slope=0.1), X2),
    "relu_full": (lambda: layers.ReLU(max_value=1.5, negative_slope=0.1, threshold=0.5), X2),
    "relu_max": (lambda: layers.ReLU(max_value=1.0), X2),
    "elu": (lambda: layers.ELU(alpha=0.5), X2),
    "softmax": (lambda: layers.Softmax(), X2),
    "prelu_shared": (lambda: layers.PReLU(alpha_initializer=_constant(0.25), shared_axes=[1, 2]), X4),
    "prelu": (lambda: layers.PReLU(alpha_initializer=_constant(0.25)), X2),
}

# Keras 3.15.1: Sequential([Input(x.shape[1:]), layer]).predict(x)
KERAS_ACTIVATIONS = {
    "leaky_default": [
        [0.596008003, 2.99999905, 0.600689948, -0.828115284, -0.510541737, 2.08153486],
        [2.53212881, -0.321441054, -0.887861311, -0.0327263363, 2.91602254, 1.27228749],
        [-0.722552359, -0.669911981, 1.51774931, 2.83846927, -0.115645662, -0.897671819],
        [0.5, 1.5, 0, -0.300000012, 2, 0.25],
    ],
    "leaky_0.1": [
        [0.596008003, 2.99999905, 0.600689948, -0.276038408, -0.170180574, 2.08153486],
        [2.53212881, -0.107147016, -0.295953751, -0.0109087788, 2.91602254, 1.27228749],
        [-0.240850791, -0.223303989, 1.51774931, 2.83846927, -0.0385485552, -0.29922393],
        [0.5, 1.5, 0, -0.100000001, 2, 0.25],
    ],
    "relu_full": [
        [0.596008003, 1.5, 0.600689948, -0.32603842, -0.220180556, 1.5],
        [1.5, -0.15714702, -0.345953763, -0.0609087758, 1.5, 1.27228749],
        [-0.290850788, -0.273303986, 1.5, 1.5, -0.088548556, -0.349223942],
        [0, 1.5, -0.0500000007, -0.150000006, 1.5, -0.0250000004],  # x == threshold (0.5) gives 0 in Keras
    ],
    "relu_max": [
        [0.596008003, 1, 0.600689948, 0, 0, 1],
        [1, 0, 0, 0, 1, 1],
        [0, 0, 1, 1, 0, 0],
        [0.5, 1, 0, 0, 1, 0.25],
    ],
    "elu": [
        [0.596008003, 2.99999905, 0.600689948, -0.468366265, -0.408823013, 2.08153486],
        [2.53212881, -0.32874769, -0.474078566, -0.0516741276, 2.91602254, 1.27228749],
        [-0.455025285, -0.446398973, 1.51774931, 2.83846927, -0.159939826, -0.474912524],
        [0.5, 1.5, 0, -0.316060275, 2, 0.25],
    ],
    "softmax": [
        [0.0567389391, 0.627944469, 0.0570052043, 0.00197796524, 0.00570103107, 0.250632465],
        [0.350347459, 0.00953840744, 0.00144377234, 0.0249708444, 0.514306366, 0.0993932411],
        [0.0039837691, 0.00474786898, 0.202043951, 0.756880403, 0.0301218424, 0.00222219806],
        [0.101953097, 0.27713725, 0.0618376732, 0.0227488112, 0.456922054, 0.0794011503],
    ],
    "prelu_shared": [
        [[[1.43827665, 2.86671448], [-0.0736864433, -0.746072114], [-0.223921314, 2.62700009]],
         [[1.9435941, -0.462925375], [-0.670559227, 0.781758785], [2.99408007, 0.412578076]],
         [[-0.707375705, -0.385316283], [2.21469307, 2.42470503], [-0.311869889, -0.730580986]]],
        [[[0.0817661881, 2.95494032], [1.0969578, -0.629341125], [-0.525283277, 1.67922366]],
         [[2.7709744, -0.143470854], [-0.749974072, -0.155693382], [2.75147223, 1.72033429]],
         [[-0.51630795, -0.636038542], [1.05037022, 2.96314621], [0.131627142, -0.72766006]]],
    ],
    "prelu": [
        [0.596008003, 2.99999905, 0.600689948, -0.690096021, -0.425451428, 2.08153486],
        [2.53212881, -0.267867535, -0.739884377, -0.0272719469, 2.91602254, 1.27228749],
        [-0.602126956, -0.558259964, 1.51774931, 2.83846927, -0.0963713825, -0.748059809],
        [0.5, 1.5, 0, -0.25, 2, 0.25],
    ],
}

# Keras 3.15.1: count_params() and weight shapes of the one-layer models above
KERAS_ACTIVATION_PARAMS = {"prelu_shared": (2, [(1, 1, 2)]), "prelu": (6, [(6,)])}


@pytest.mark.parametrize("name", sorted(ACTIVATION_LAYERS))
def test_activation_layer_matches_keras(uid, name):
    make, x = ACTIVATION_LAYERS[name]
    m = kerust.Sequential([kerust.Input(x.shape[1:]), make()], name=uid("m"))
    np.testing.assert_allclose(m.predict(x, verbose=0), KERAS_ACTIVATIONS[name], rtol=0, atol=1e-6)
    params, shapes = KERAS_ACTIVATION_PARAMS.get(name, (0, []))
    assert m.count_params() == params
    assert [w.shape for w in m.get_weights()] == shapes


def test_leaky_relu_default_slope_is_keras3s():
    assert layers.LeakyReLU().negative_slope == 0.3
    assert layers.LeakyReLU().get_config()["negative_slope"] == 0.3


def test_relu_between_zero_and_threshold(uid):
    """Keras: x for x > threshold, else negative_slope * (x - threshold) (then clipped at max_value)."""
    x = np.array([[-1.0, 0.0, 0.2, 0.5, 0.7, 3.0]], np.float32)
    m = kerust.Sequential([kerust.Input((6,)), layers.ReLU(negative_slope=0.5, threshold=0.5)], name=uid("m"))
    # Keras 3.15.1: [-0.75, -0.25, -0.15, 0, 0.7, 3]
    np.testing.assert_allclose(m.predict(x, verbose=0), [[-0.75, -0.25, -0.15, 0.0, 0.7, 3.0]], atol=1e-6)


@pytest.mark.parametrize("make", [
    lambda: layers.ReLU(max_value=-1.0),
    lambda: layers.ReLU(negative_slope=-0.1),
    lambda: layers.ReLU(threshold=-1.0),
    lambda: layers.ReLU(negative_slope=None),
    lambda: layers.ReLU(threshold=None),
    lambda: layers.LeakyReLU(negative_slope=-0.1),
    lambda: layers.LeakyReLU(negative_slope=None),
], ids=["relu_max_value", "relu_slope", "relu_threshold", "relu_slope_none", "relu_threshold_none", "leaky_slope",
        "leaky_slope_none"])
def test_negative_or_missing_relu_arguments_are_rejected_as_in_keras(make):
    """Keras 3.15.1 raises ValueError for each of these ("... cannot be None or a negative value")."""
    with pytest.raises(ValueError):
        make()


def test_prelu_with_per_channel_alphas_matches_keras(uid):
    m = kerust.Sequential([kerust.Input((3, 3, 2)), layers.PReLU(shared_axes=[1, 2], name=uid("p"))], name=uid("m"))
    assert [w.shape for w in m.get_weights()] == [(1, 1, 2)]
    np.testing.assert_array_equal(m.get_weights()[0], 0.0)  # Keras's default alpha_initializer is "Zeros"
    m.set_weights([np.array([[[0.2, -0.5]]], np.float32)])
    # Keras 3.15.1 predict(X4) with alphas [0.2, -0.5]
    expected = [
        [[[1.43827665, 2.86671448], [-0.0589491539, 1.49214423], [-0.179137051, 2.62700009]],
         [[1.9435941, 0.925850749], [-0.536447406, 0.781758785], [2.99408007, 0.412578076]],
         [[-0.565900564, 0.770632565], [2.21469307, 2.42470503], [-0.249495909, 1.46116197]]],
        [[[0.0817661881, 2.95494032], [1.0969578, 1.25868225], [-0.420226634, 1.67922366]],
         [[2.7709744, 0.286941707], [-0.599979281, 0.311386764], [2.75147223, 1.72033429]],
         [[-0.41304636, 1.27207708], [1.05037022, 2.96314621], [0.131627142, 1.45532012]]],
    ]
    np.testing.assert_allclose(m.predict(X4, verbose=0), expected, atol=1e-6)


def test_prelu_alpha_is_trained_as_keras_trains_it(uid):
    m = kerust.Sequential([
        kerust.Input((3, 3, 2)),
        layers.PReLU(alpha_initializer=_constant(0.25), shared_axes=[1, 2], name=uid("p")),
        layers.Flatten(name=uid("f")),
        layers.Dense(1, name=uid("d")),
    ], name=uid("m"))
    m.set_weights([m.get_weights()[0], _det((18, 1), 0.4, 0.3), np.zeros(1, np.float32)])
    np.testing.assert_array_equal(m.get_weights()[0], np.full((1, 1, 2), 0.25, np.float32))
    m.compile(optimizer=optimizers.SGD(0.02), loss="mse")
    h = m.fit(_det((2, 3, 3, 2), 0.5, 1.0), _det((2, 1), 0.9), batch_size=1, epochs=2, shuffle=False, verbose=0)
    # Keras 3.15.1, same model, weights and data
    np.testing.assert_allclose(h.history["loss"], [0.603170455, 0.188643605], rtol=1e-5)
    alpha, kernel, bias = m.get_weights()
    np.testing.assert_allclose(alpha, [[[0.197701499, 0.181248263]]], atol=1e-5)
    np.testing.assert_allclose(kernel.ravel(), [
        0.0878582448, 0.203010336, -0.0112511627, -0.273986638, -0.108046375, 0.175757512, 0.145307109,
        -0.150820389, -0.260020137, 0.0352192707, 0.208685338, 0.0421563424, -0.253079027, -0.165655836,
        0.144522667, 0.176342875, -0.0926904753, -0.276947856], atol=1e-5)
    np.testing.assert_allclose(bias, [-0.0941887498], atol=1e-5)


def test_spatial_dropout_is_identity_in_predict(uid):
    m = kerust.Sequential([kerust.Input((3, 3, 2)), layers.SpatialDropout2D(0.5, name=uid("s"))], name=uid("m"))
    np.testing.assert_array_equal(m.predict(X4, verbose=0), X4)
    np.testing.assert_array_equal(m.predict_on_batch(X4), X4)


def test_spatial_dropout_drops_whole_channels_in_training(uid):
    """Input of ones -> SpatialDropout2D(0.5) -> Flatten -> Dense(1, kernel of ones, no bias), target 1000.
    One SGD step moves each kernel entry by lr * 2 * (y - pred) * dropped_input, so the kernel's change is the
    dropped input up to a factor: per channel, all four positions are zero or all are 1 / (1 - rate) = 2."""
    h, w, c = 2, 2, 16
    m = kerust.Sequential([
        kerust.Input((h, w, c)),
        layers.SpatialDropout2D(0.5, name=uid("s")),
        layers.Flatten(name=uid("f")),
        layers.Dense(1, use_bias=False, kernel_initializer="ones", name=uid("d")),
    ], name=uid("m"))
    lr = 1e-3
    m.compile(optimizer=optimizers.SGD(lr), loss="mse")
    x = np.ones((1, h, w, c), np.float32)
    y = np.array([[1000.0]], np.float32)
    assert m.evaluate(x, y, verbose=0) == pytest.approx((1000.0 - h * w * c) ** 2)
    loss = m.train_on_batch(x, y)
    residual = math.sqrt(loss)  # y - pred > 0
    dropped = ((m.get_weights()[0].reshape(h, w, c) - 1.0) / (lr * 2 * residual)).astype(np.float64)
    kept = np.zeros(c, bool)
    for ch in range(c):
        values = dropped[:, :, ch]
        assert np.allclose(values, 0.0, atol=1e-3) or np.allclose(values, 2.0, rtol=1e-3), values
        kept[ch] = values[0, 0] > 1.0
    assert 0 < kept.sum() < c
    # the step's prediction was the sum of the kept, scaled inputs
    assert 1000.0 - residual == pytest.approx(2.0 * h * w * kept.sum(), rel=1e-4)


def test_gaussian_noise_is_identity_in_predict_and_noise_in_training(uid):
    n = 400
    m = kerust.Sequential([
        kerust.Input((n,)),
        layers.GaussianNoise(0.5, name=uid("g")),
        layers.Dense(1, use_bias=False, kernel_initializer="zeros", name=uid("d")),
    ], name=uid("m"))
    x = _det((1, n), 0.3)
    only_noise = kerust.Sequential([kerust.Input((n,)), layers.GaussianNoise(0.5, name=uid("g"))], name=uid("m"))
    np.testing.assert_array_equal(only_noise.predict(x, verbose=0), x)
    lr = 1e-3
    m.compile(optimizer=optimizers.SGD(lr), loss="mse")
    y = np.array([[10.0]], np.float32)
    assert m.train_on_batch(x, y) == pytest.approx(100.0)  # zero kernel: the noise does not reach the loss
    # kernel change = lr * 2 * (y - 0) * (x + noise)
    noise = m.get_weights()[0].ravel() / (lr * 2 * 10.0) - x.ravel()
    assert abs(noise.mean()) < 0.1
    assert 0.4 < noise.std() < 0.6


# Keras 3.15.1 model.summary() rows and totals for the model in the test below
KERAS_ACTIVATIONS_SUMMARY = [
    "│ leaky (LeakyReLU)               │ (None, 3, 3, 2)        │             0 │",
    "│ relu6 (ReLU)                    │ (None, 3, 3, 2)        │             0 │",
    "│ elu_l (ELU)                     │ (None, 3, 3, 2)        │             0 │",
    "│ prelu_s (PReLU)                 │ (None, 3, 3, 2)        │             2 │",
    "│ prelu_f (PReLU)                 │ (None, 3, 3, 2)        │            18 │",
    "│ sdrop (SpatialDropout2D)        │ (None, 3, 3, 2)        │             0 │",
    "│ noise (GaussianNoise)           │ (None, 3, 3, 2)        │             0 │",
    "│ smax (Softmax)                  │ (None, 3, 3, 2)        │             0 │",
    " Total params: 20 (80.00 B)",
    " Trainable params: 20 (80.00 B)",
    " Non-trainable params: 0 (0.00 B)",
]


def test_activation_layers_count_params_and_summary_rows():
    m = kerust.Sequential([
        kerust.Input((3, 3, 2)), layers.LeakyReLU(name="leaky"), layers.ReLU(max_value=6.0, name="relu6"),
        layers.ELU(name="elu_l"), layers.PReLU(shared_axes=[1, 2], name="prelu_s"), layers.PReLU(name="prelu_f"),
        layers.SpatialDropout2D(0.5, name="sdrop"), layers.GaussianNoise(0.1, name="noise"),
        layers.Softmax(name="smax"),
    ], name="acts")
    assert m.count_params() == 20
    assert [layer.count_params() for layer in m.layers] == [0, 0, 0, 2, 18, 0, 0, 0]
    lines = []
    m.summary(print_fn=lines.append)
    text = "\n".join(lines).splitlines()
    for row in KERAS_ACTIVATIONS_SUMMARY:
        assert row in text, f"{row!r} not in summary:\n" + "\n".join(text)


# ---- 5. metrics ------------------------------------------------------------------------------------------------------

XM = _det((20, 3), 0.1, 2.0)
YB = np.array([1, 0, 1, 1, 0, 0, 1, 0, 1, 0, 1, 1, 0, 1, 0, 0, 1, 1, 0, 1], np.float32).reshape(20, 1)
LABELS = np.array([0, 1, 2, 3, 4, 1, 2, 0, 3, 4, 2, 2, 1, 0, 4, 3, 1, 0, 2, 3])
YCAT = np.eye(5, dtype=np.float32)[LABELS]


def _binary(uid):
    """Dense(1, sigmoid) with fixed weights: its probabilities on XM span 0.24 .. 0.78."""
    m = kerust.Sequential([kerust.Input((3,)), layers.Dense(1, activation="sigmoid", name=uid("d"))], name=uid("m"))
    m.set_weights([np.array([[0.8], [-0.6], [0.3]], np.float32), np.array([0.1], np.float32)])
    return m


def _categorical(uid):
    m = kerust.Sequential([kerust.Input((3,)), layers.Dense(5, activation="softmax", name=uid("d"))], name=uid("m"))
    m.set_weights([_det((3, 5), 0.6, 0.8), _det((5,), 1.4, 0.2)])
    return m


# Keras 3.15.1: _binary, loss "binary_crossentropy", evaluate(XM, YB, batch_size=8, return_dict=True)
KERAS_BINARY_EVAL = {"auc": 0.7373737096786499, "binary_accuracy": 0.6499999761581421, "loss": 0.6248964667320251,
                     "precision": 0.6666666865348816, "recall": 0.7272727489471436}


def _assert_metrics(got, expected):
    assert list(got) == list(expected)
    for key, value in expected.items():
        tol = 1e-4 if key.startswith(("auc", "val_auc")) else 1e-6
        np.testing.assert_allclose(got[key], value, rtol=0, atol=tol, err_msg=key)


def test_binary_metric_objects_match_keras(uid):
    m = _binary(uid)
    m.compile(optimizer="sgd", loss="binary_crossentropy",
              metrics=[kerust.metrics.Precision(), kerust.metrics.Recall(), kerust.metrics.AUC(num_thresholds=200),
                       kerust.metrics.BinaryAccuracy(threshold=0.7)])
    _assert_metrics(m.evaluate(XM, YB, batch_size=8, verbose=0, return_dict=True), KERAS_BINARY_EVAL)


def test_binary_metric_strings_match_keras(uid):
    m = _binary(uid)
    m.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["precision", "recall", "auc", "binary_accuracy"])
    _assert_metrics(m.evaluate(XM, YB, batch_size=8, verbose=0, return_dict=True), KERAS_BINARY_EVAL)
    h = m.fit(XM, YB, batch_size=8, epochs=2, shuffle=False, verbose=0)
    # Keras 3.15.1: fit(XM, YB, batch_size=8, epochs=2, shuffle=False) with SGD(0.01)
    _assert_metrics(h.history, {
        "auc": [0.732323169708252, 0.7373737096786499],
        "binary_accuracy": [0.6499999761581421, 0.6499999761581421],
        "loss": [0.6259124279022217, 0.6237747073173523],
        "precision": [0.6666666865348816, 0.6666666865348816],
        "recall": [0.7272727489471436, 0.7272727489471436],
    })


def test_binary_metrics_from_the_predictions(uid):
    """The same numbers from first principles (threshold 0.5 for precision/recall, 0.7 for the accuracy)."""
    m = _binary(uid)
    m.compile(optimizer="sgd", loss="binary_crossentropy",
              metrics=["precision", "recall", kerust.metrics.BinaryAccuracy(threshold=0.7)])
    p = m.predict(XM, verbose=0).ravel()
    t = YB.ravel() == 1
    tp, fp, fn = np.sum((p > 0.5) & t), np.sum((p > 0.5) & ~t), np.sum((p <= 0.5) & t)
    logs = m.evaluate(XM, YB, batch_size=8, verbose=0, return_dict=True)
    assert logs["precision"] == pytest.approx(tp / (tp + fp))
    assert logs["recall"] == pytest.approx(tp / (tp + fn))
    assert logs["binary_accuracy"] == pytest.approx(np.mean((p > 0.7) == t))


def test_top_k_metrics_match_keras(uid):
    m = _categorical(uid)
    m.compile(optimizer="sgd", loss="categorical_crossentropy",
              metrics=[kerust.metrics.TopKCategoricalAccuracy(k=2), "categorical_accuracy"])
    # Keras 3.15.1
    _assert_metrics(m.evaluate(XM, YCAT, batch_size=8, verbose=0, return_dict=True),
                    {"categorical_accuracy": 0.15000000596046448, "loss": 2.503401279449463,
                     "top_k_categorical_accuracy": 0.4000000059604645})
    m = _categorical(uid)
    m.compile(optimizer="sgd", loss="categorical_crossentropy", metrics=["top_k_categorical_accuracy"])
    _assert_metrics(m.evaluate(XM, YCAT, batch_size=8, verbose=0, return_dict=True),
                    {"loss": 2.503401279449463, "top_k_categorical_accuracy": 1.0})  # k=5 of 5 classes
    h = m.fit(XM, YCAT, batch_size=8, epochs=1, shuffle=False, verbose=0, validation_data=(XM, YCAT))
    assert list(h.history) == ["loss", "top_k_categorical_accuracy", "val_loss", "val_top_k_categorical_accuracy"]


def test_sparse_top_k_metrics_match_keras(uid):
    m = _categorical(uid)
    m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy",
              metrics=[kerust.metrics.SparseTopKCategoricalAccuracy(k=2),
                       kerust.metrics.SparseTopKCategoricalAccuracy(k=1, name="top1")])
    # Keras 3.15.1
    _assert_metrics(m.evaluate(XM, LABELS, batch_size=8, verbose=0, return_dict=True),
                    {"loss": 2.503401279449463, "sparse_top_k_categorical_accuracy": 0.4000000059604645,
                     "top1": 0.15000000596046448})
    m = _categorical(uid)
    m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["sparse_top_k_categorical_accuracy"])
    _assert_metrics(m.evaluate(XM, LABELS, batch_size=8, verbose=0, return_dict=True),
                    {"loss": 2.503401279449463, "sparse_top_k_categorical_accuracy": 1.0})


def test_metrics_with_the_same_name_get_unique_names_as_in_keras(uid):
    """Keras 3.15.1 renames the second metric named "top_k_categorical_accuracy" to "..._1" and keeps both."""
    m = _categorical(uid)
    m.compile(optimizer="sgd", loss="categorical_crossentropy",
              metrics=[kerust.metrics.TopKCategoricalAccuracy(k=2), "top_k_categorical_accuracy",
                       "categorical_accuracy"])
    _assert_metrics(m.evaluate(XM, YCAT, batch_size=8, verbose=0, return_dict=True),
                    {"categorical_accuracy": 0.15000000596046448, "loss": 2.503401279449463,
                     "top_k_categorical_accuracy": 0.4000000059604645, "top_k_categorical_accuracy_1": 1.0})
    h = m.fit(XM, YCAT, batch_size=8, epochs=1, shuffle=False, verbose=0, validation_data=(XM, YCAT))
    assert list(h.history) == [
        "categorical_accuracy", "loss", "top_k_categorical_accuracy", "top_k_categorical_accuracy_1",
        "val_categorical_accuracy", "val_loss", "val_top_k_categorical_accuracy", "val_top_k_categorical_accuracy_1",
    ]


# ---- 6. fit arguments and the *_on_batch methods ---------------------------------------------------------------------

SW = _det((20,), 0.8, 0.5) + 1.0
CLASS_WEIGHT = {0: 0.5, 1: 2.0}
XF = _det((10, 3), 0.35)
YF = _det((10, 2), 1.2)


def test_class_weight_equals_its_sample_weights(uid):
    m1, m2 = _binary(uid), _binary(uid)
    for m in (m1, m2):
        m.compile(optimizer=optimizers.SGD(0.5), loss="binary_crossentropy")
    h1 = m1.fit(XM, YB, class_weight=CLASS_WEIGHT, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    sw = np.where(YB.ravel() == 1, 2.0, 0.5).astype(np.float32)
    h2 = m2.fit(XM, YB, sample_weight=sw, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    np.testing.assert_allclose(h1["loss"], h2["loss"], rtol=1e-6)
    for a, b in zip(m1.get_weights(), m2.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    # Keras 3.15.1: the class_weight fit
    np.testing.assert_allclose(h1["loss"], [0.9003488421440125, 0.7226274013519287], rtol=1e-5)
    k, b = m1.get_weights()
    np.testing.assert_allclose(k.ravel(), [1.16481328, -0.371736139, 0.0262411535], atol=1e-5)
    np.testing.assert_allclose(b, [0.95541501], atol=1e-5)


def test_sample_weight_in_fit_and_evaluate_match_keras(uid):
    m = _binary(uid)
    m.compile(optimizer=optimizers.SGD(0.5), loss="binary_crossentropy")
    # Keras 3.15.1: evaluate(XM, YB, sample_weight=SW, batch_size=8); the "sum_over_batch_size" reduction divides
    # the weighted sum by the number of samples, not by the sum of the weights
    assert m.evaluate(XM, YB, sample_weight=SW, batch_size=8, verbose=0) == pytest.approx(0.6642751693725586,
                                                                                       rel=1e-6)
    assert m.evaluate(XM, YB, batch_size=8, verbose=0) == pytest.approx(0.6248964667320251, rel=1e-6)
    p = m.predict(XM, verbose=0).astype(np.float64)
    per_sample = -(YB * np.log(p) + (1 - YB) * np.log(1 - p)).ravel()
    assert m.evaluate(XM, YB, sample_weight=SW, batch_size=20, verbose=0) == pytest.approx(
        float(np.mean(per_sample * SW)), rel=1e-5)
    h = m.fit(XM, YB, sample_weight=SW, batch_size=8, epochs=2, shuffle=False, verbose=0)
    # Keras 3.15.1: fit with sample_weight=SW
    np.testing.assert_allclose(h.history["loss"], [0.7567607164382935, 0.7644343972206116], rtol=1e-5)
    k, b = m.get_weights()
    np.testing.assert_allclose(k.ravel(), [1.03168881, -0.556323767, 0.0857335478], atol=1e-5)
    np.testing.assert_allclose(b, [0.145775303], atol=1e-5)


def test_sample_weight_does_not_weight_compiled_metrics_in_evaluate(uid):
    """In Keras 3, `metrics=` are unweighted (only `weighted_metrics=` see sample weights): with sample_weight
    the loss is weighted but accuracy is the plain accuracy. Values from Keras 3.15.1."""
    m = _binary(uid)
    m.compile(optimizer=optimizers.SGD(0.5), loss="binary_crossentropy", metrics=["accuracy"])
    logs = m.evaluate(XM, YB, sample_weight=SW, batch_size=8, verbose=0, return_dict=True)
    _assert_metrics(logs, {"accuracy": 0.6499999761581421, "loss": 0.6642751693725586})


def test_class_weight_does_not_weight_compiled_metrics_in_fit(uid):
    m = _binary(uid)
    m.compile(optimizer=optimizers.SGD(0.5), loss="binary_crossentropy", metrics=["accuracy"])
    h = m.fit(XM, YB, class_weight=CLASS_WEIGHT, batch_size=8, epochs=2, shuffle=False, verbose=0)
    # Keras 3.15.1
    _assert_metrics(h.history, {"accuracy": [0.44999998807907104, 0.6000000238418579],
                                "loss": [0.9003488421440125, 0.7226274013519287]})


def test_sample_weight_does_not_weight_compiled_metrics_in_test_on_batch(uid):
    m = _dense(uid)
    m.compile(optimizer=optimizers.SGD(0.1), loss="mse", metrics=["mae"])
    got = m.test_on_batch(X, Y, sample_weight=np.array([1, 0, 2, 0.5], np.float32))
    # Keras 3.15.1: weighted loss, unweighted mae
    np.testing.assert_allclose(got, [1.0472311973571777, 1.0987499952316284], rtol=1e-6)


def test_initial_epoch(uid):
    m = _dense(uid)
    m.compile(optimizer=optimizers.SGD(0.1), loss="mse")
    h = m.fit(XF, YF, batch_size=2, epochs=5, initial_epoch=2, shuffle=False, verbose=0)
    # Keras 3.15.1
    assert h.epoch == [2, 3, 4]
    assert list(h.history) == ["loss"]
    np.testing.assert_allclose(h.history["loss"], [0.7569818496704102, 0.6529778242111206, 0.6082665324211121],
                               rtol=1e-5)
    assert m.optimizer.iterations == 15


def test_validation_freq(uid):
    m = _dense(uid)
    m.compile(optimizer=optimizers.SGD(0.1), loss="mse")
    h = m.fit(XF, YF, batch_size=2, epochs=5, validation_data=(XF, YF), validation_freq=2, shuffle=False, verbose=0)
    # Keras 3.15.1: validation after epochs 2 and 4 (1-based) only
    assert h.epoch == [0, 1, 2, 3, 4]
    assert {k: len(v) for k, v in h.history.items()} == {"loss": 5, "val_loss": 2}
    np.testing.assert_allclose(h.history["loss"], [0.7569818496704102, 0.6529778242111206, 0.6082665324211121,
                                                   0.5881481170654297, 0.5786706805229187], rtol=1e-5)
    np.testing.assert_allclose(h.history["val_loss"], [0.5614194869995117, 0.5236163139343262], rtol=1e-5)


def test_steps_per_epoch(uid):
    """10 samples in batches of 2 (5 batches), steps_per_epoch=2, epochs=2: 4 steps. Keras 3 keeps one iterator
    over the arrays across epochs when steps_per_epoch is set, so the second epoch trains on batches 3 and 4."""
    m = _dense(uid)
    m.compile(optimizer=optimizers.SGD(0.1), loss="mse")
    h = m.fit(XF, YF, batch_size=2, epochs=2, steps_per_epoch=2, shuffle=False, verbose=0)
    assert m.optimizer.iterations == 2 * 2
    assert len(h.history["loss"]) == 2
    # Keras 3.15.1
    np.testing.assert_allclose(h.history["loss"], [0.9863772392272949, 0.5195068120956421], rtol=1e-5)
    k, b = m.get_weights()
    np.testing.assert_allclose(
        k, [[0.0622013398, -0.106084287], [0.204722047, 0.26903373], [-0.500207663, 0.453841925]], atol=1e-5
    )
    np.testing.assert_allclose(b, [0.0924608856, -0.0705491304], atol=1e-5)


def test_steps_per_epoch_first_epoch_uses_the_first_batches(uid):
    m1, m2 = _dense(uid), _dense(uid)
    for m in (m1, m2):
        m.compile(optimizer=optimizers.SGD(0.1), loss="mse")
    m1.fit(XF, YF, batch_size=2, epochs=1, steps_per_epoch=3, shuffle=False, verbose=0)
    m2.fit(XF[:6], YF[:6], batch_size=2, epochs=1, shuffle=False, verbose=0)
    assert m1.optimizer.iterations == m2.optimizer.iterations == 3
    for a, b in zip(m1.get_weights(), m2.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_evaluate_return_forms(uid):
    m = _dense(uid)
    m.compile(optimizer=optimizers.SGD(0.1), loss="mse", metrics=["mae"])
    values = m.evaluate(X, Y, verbose=0)
    logs = m.evaluate(X, Y, verbose=0, return_dict=True)
    assert isinstance(values, list) and len(values) == 2
    assert list(logs) == ["loss", "mae"]
    assert values == [logs["loss"], logs["mae"]]
    pred = X @ W + B
    assert logs["loss"] == pytest.approx(_mse(pred, Y), rel=1e-6)
    assert logs["mae"] == pytest.approx(float(np.mean(np.abs(pred - Y))), rel=1e-6)
    plain = _dense(uid)
    plain.compile(optimizer=optimizers.SGD(0.1), loss="mse")
    assert np.ndim(plain.evaluate(X, Y, verbose=0)) == 0
    assert plain.evaluate(X, Y, verbose=0, return_dict=True) == {"loss": pytest.approx(_mse(pred, Y), rel=1e-6)}


def test_on_batch_methods_match_keras(uid):
    m = _dense(uid)
    m.compile(optimizer=optimizers.SGD(0.1), loss="mse", metrics=["mae"])
    # Keras 3.15.1: train_on_batch returns [loss, mae] of the batch before the update; metrics reset per call
    r1 = m.train_on_batch(X, Y)
    assert isinstance(r1, list)
    np.testing.assert_allclose(r1, [1.5753625631332397, 1.0987499952316284], rtol=1e-6)
    r2 = m.train_on_batch(X, Y, return_dict=True)
    assert list(r2) == ["loss", "mae"]
    np.testing.assert_allclose([r2["loss"], r2["mae"]], [1.213471531867981, 0.9783862233161926], rtol=1e-6)
    t1 = m.test_on_batch(X, Y)
    np.testing.assert_allclose(t1, [0.9685256481170654, 0.8795166015625], rtol=1e-6)
    t2 = m.test_on_batch(X, Y, return_dict=True)
    assert list(t2) == ["loss", "mae"]
    np.testing.assert_allclose([t2["loss"], t2["mae"]], t1, rtol=1e-7)
    p = m.predict_on_batch(X)
    assert isinstance(p, np.ndarray) and p.shape == (4, 2) and p.dtype == np.float32
    np.testing.assert_allclose(p, [[-0.637726843, 0.326160252], [0.715554714, -0.201895833],
                                   [0.323009849, 0.41014573], [0.912295341, 0.0200450495]], atol=1e-6)
    np.testing.assert_array_equal(p, m.predict(X, verbose=0))

    single = _dense(uid)
    single.compile(optimizer=optimizers.SGD(0.1), loss="mse")
    loss = single.train_on_batch(X, Y)
    assert np.ndim(loss) == 0 and loss == pytest.approx(1.5753625631332397, rel=1e-6)
    loss = single.test_on_batch(X, Y)
    assert np.ndim(loss) == 0 and loss == pytest.approx(1.213471531867981, rel=1e-6)


# ---- 7. freezing -----------------------------------------------------------------------------------------------------

YR = _det((10, 1), 2.2)
FREEZE_WEIGHTS = [
    _det((3, 4), 0.15, 0.7), _det((4,), 0.5, 0.1),  # d1
    1.0 + _det((4,), 0.9, 0.2), _det((4,), 1.3, 0.1), _det((4,), 1.7, 0.3), 1.0 + np.abs(_det((4,), 2.1, 0.5)),  # bn
    _det((4, 1), 2.5, 0.6), np.array([0.05], np.float32),  # d2
]


def _bn_model(name):
    m = kerust.Sequential([kerust.Input((3,)), layers.Dense(4, name="d1"), layers.BatchNormalization(name="bn"),
                           layers.Dense(1, name="d2")], name=name)
    m.set_weights(FREEZE_WEIGHTS)
    return m


# Keras 3.15.1: _bn_model, the named layer frozen after build, SGD(0.1), "mse": evaluate() before training,
# fit(XF, YR, batch_size=5, epochs=2, shuffle=False) losses, weights after, and summary() totals
KERAS_FROZEN = {
    "d1": (1.09382343, [1.58236754, 0.750636756], [
        [[0.104606695, 0.699097097, 0.174262747, -0.629583776], [-0.425403386, 0.459890634, 0.608853459, -0.217019305],
         [-0.695422351, -0.0603842884, 0.671335101, 0.328179479]],
        [0.0479425527, 0.0955571532, -0.00982485898, -0.0994762853],
        [1.06083262, 1.05747092, 0.719337285, 0.776896954],
        [0.0963594094, 0.0450300835, -0.0791054815, -0.076167047],
        [0.284628868, 0.0262689292, -0.274150163, -0.13562727],
        [1.39265621, 1.13231623, 1.45354831, 1.01338565],
        [[0.0086341165], [0.0319531485], [-0.143510297], [0.0212698504]],
        [0.0557721518],
    ], [" Total params: 37 (148.00 B)", " Trainable params: 13 (52.00 B)", " Non-trainable params: 24 (96.00 B)"]),
    "bn": (1.09382343, [1.00278044, 0.752766669], [
        [[0.120256938, 0.674710274, 0.152706295, -0.618836939], [-0.333807826, 0.342964798, 0.499906391, -0.171638325],
         [-0.674535215, -0.0826391354, 0.649432659, 0.335535079]],
        [0.0817053318, 0.0522089303, -0.0493349768, -0.0829337686],
        [1.15666533, 1.15307093, 0.904394567, 0.808792055],
        [0.0963558182, 0.0454305671, -0.0782335922, -0.0766379014],
        [0.297499448, 0.0214594528, -0.288939267, -0.13671717],
        [1.43160462, 1.161268, 1.49593437, 1.03655994],
        [[0.189054504], [-0.183853388], [-0.327228606], [0.109704822]],
        [0.166120321],
    ], [" Total params: 37 (148.00 B)", " Trainable params: 21 (84.00 B)", " Non-trainable params: 16 (64.00 B)"]),
    "none": (1.09382343, [1.55632496, 0.772077203], [
        [[0.18720004, 0.753864348, 0.128005713, -0.633856237], [-0.326385736, 0.352046579, 0.580787301, -0.152163878],
         [-0.738517642, -0.158170432, 0.70639658, 0.35832271]],
        [0.047942549, 0.0955571532, -0.00982487109, -0.0994762853],
        [1.06193197, 1.0585413, 0.722247303, 0.777148008],
        [0.096441865, 0.0449612886, -0.0790292174, -0.0761692524],
        [0.285026163, 0.0259952638, -0.274215043, -0.135449082],
        [1.39396942, 1.13390732, 1.45395398, 1.01387584],
        [[0.0547760613], [-0.00338058174], [-0.157586753], [0.0345782861]],
        [0.0552193969],
    ], [" Total params: 37 (148.00 B)", " Trainable params: 29 (116.00 B)", " Non-trainable params: 8 (32.00 B)"]),
}


def _summary_lines(m):
    lines = []
    m.summary(print_fn=lines.append)
    return "\n".join(lines).splitlines()


@pytest.mark.parametrize("frozen", sorted(KERAS_FROZEN))
def test_freezing_matches_keras(uid, frozen):
    m = _bn_model(uid(f"frozen_{frozen}"))
    if frozen != "none":
        m.get_layer(frozen).trainable = False
        assert not m.get_layer(frozen).trainable
    m.compile(optimizer=optimizers.SGD(0.1), loss="mse")
    evaluated, losses, weights, totals = KERAS_FROZEN[frozen]
    summary = _summary_lines(m)
    for line in totals:
        assert line in summary, f"{line!r} not in summary:\n" + "\n".join(summary)
    assert m.evaluate(XF, YR, verbose=0) == pytest.approx(evaluated, rel=1e-6)
    h = m.fit(XF, YR, batch_size=5, epochs=2, shuffle=False, verbose=0)
    np.testing.assert_allclose(h.history["loss"], losses, rtol=1e-5)
    after = m.get_weights()
    for i, (got, want) in enumerate(zip(after, weights)):
        np.testing.assert_allclose(got, want, atol=1e-5, err_msg=f"weight {i}")
    changed = [not np.array_equal(a, b) for a, b in zip(FREEZE_WEIGHTS, after)]
    if frozen == "d1":
        assert changed == [False, False, True, True, True, True, True, True]
    elif frozen == "bn":  # gamma, beta and the moving statistics stay
        assert changed == [True, True, False, False, False, False, True, True]
    else:
        assert all(changed)


def test_frozen_batch_normalization_trains_in_inference_mode(uid):
    m = _bn_model(uid("frozen_bn"))
    m.get_layer("bn").trainable = False
    m.compile(optimizer=optimizers.SGD(0.1), loss="mse")
    x, y = XF[:5], YR[:5]
    # with the moving statistics, the training-step loss is the inference loss
    assert m.train_on_batch(x, y) == pytest.approx(_inference_loss(x, y), rel=1e-6)
    np.testing.assert_array_equal(m.get_layer("bn").get_weights()[2], FREEZE_WEIGHTS[4])
    np.testing.assert_array_equal(m.get_layer("bn").get_weights()[3], FREEZE_WEIGHTS[5])
    # an unfrozen one normalises with the batch statistics and moves its moving statistics
    m2 = _bn_model(uid("live_bn"))
    m2.compile(optimizer=optimizers.SGD(0.1), loss="mse")
    assert m2.train_on_batch(x, y) != pytest.approx(_inference_loss(x, y), rel=1e-3)
    assert not np.array_equal(m2.get_layer("bn").get_weights()[2], FREEZE_WEIGHTS[4])


def _inference_loss(x, y):
    k1, b1, gamma, beta, mean, var, k2, b2 = (w.astype(np.float64) for w in FREEZE_WEIGHTS)
    h = x @ k1 + b1
    h = (h - mean) / np.sqrt(var + 1e-3) * gamma + beta
    return _mse(h @ k2 + b2, y)


def test_batch_normalization_moving_stats_are_non_trainable_params(uid):
    m = _bn_model(uid("bn_params"))
    bn = m.get_layer("bn")
    assert bn.count_params() == 16
    assert m.count_params() == 37
    summary = _summary_lines(m)
    assert " Non-trainable params: 8 (32.00 B)" in summary
    assert " Trainable params: 29 (116.00 B)" in summary
    # freezing d2 after the rest: 8 + 5 non-trainable
    m.get_layer("d2").trainable = False
    assert " Non-trainable params: 13 (52.00 B)" in _summary_lines(m)
    m.get_layer("d2").trainable = True
    assert " Non-trainable params: 8 (32.00 B)" in _summary_lines(m)
