"""Bad input gets a Keras-style ValueError/TypeError naming what was expected and what was received; hostile
values never reach a Rust panic or crash the interpreter."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import kerust
import numpy as np
import pytest
from kerust import layers, losses, optimizers


def _model(uid, n_in=4, n_out=3, act="softmax", loss="categorical_crossentropy", name=None):
    first = name or uid("dense")
    m = kerust.Sequential([kerust.Input((n_in,)), layers.Dense(n_out, activation=act, name=first)],
                          name=uid("m"))
    m.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
    return m


def _onehot(n, k=3):
    return kerust.utils.to_categorical(np.arange(n) % k, k)


# ---- data ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("call", ["fit", "evaluate", "predict", "train_on_batch", "test_on_batch"])
def test_wrong_feature_count_names_expected_and_received_shapes(call, uid):
    name = uid("first")
    m = _model(uid, name=name)
    x = np.zeros((5, 5), "float32")
    args = (x,) if call == "predict" else (x, _onehot(5))
    kwargs = {"verbose": 0} if call in ("fit", "evaluate", "predict") else {}
    with pytest.raises(ValueError) as info:
        getattr(m, call)(*args, **kwargs)
    msg = str(info.value)
    assert "(None, 4)" in msg and "(None, 5)" in msg
    assert name in msg


def test_wrong_feature_count_for_an_mnist_mlp(uid):
    m = kerust.Sequential([kerust.Input((784,)), layers.Dense(10, activation="softmax", name=uid("d"))])
    m.compile(optimizer="adam", loss="categorical_crossentropy")
    with pytest.raises(ValueError, match="784") as info:
        m.fit(np.zeros((2, 28, 28)), _onehot(2, 10), verbose=0)
    assert "28" in str(info.value)
    with pytest.raises(ValueError, match="784") as info:
        m.predict(np.zeros((2, 783)), verbose=0)
    assert "783" in str(info.value)


def test_x_y_length_mismatch(uid):
    m = _model(uid)
    for call in (lambda: m.fit(np.zeros((5, 4)), _onehot(6), verbose=0),
                 lambda: m.evaluate(np.zeros((5, 4)), _onehot(6), verbose=0),
                 lambda: m.train_on_batch(np.zeros((5, 4)), _onehot(6))):
        with pytest.raises(ValueError) as info:
            call()
        assert "5" in str(info.value) and "6" in str(info.value)


@pytest.mark.parametrize("bad", [3, -1, 7, 1.5])
def test_sparse_labels_out_of_range(bad, uid):
    m = _model(uid, loss="sparse_categorical_crossentropy")
    y = np.array([0, 1, 2, bad, 1])
    for call in (lambda: m.fit(np.zeros((5, 4)), y, verbose=0),
                 lambda: m.evaluate(np.zeros((5, 4)), y, verbose=0),
                 lambda: m.train_on_batch(np.zeros((5, 4)), y)):
        with pytest.raises(ValueError) as info:
            call()
        msg = str(info.value)
        assert str(bad) in msg
        assert "[0, 3)" in msg or "0 to 2" in msg
    before = m.get_weights()
    with pytest.raises(ValueError):
        m.fit(np.zeros((5, 4)), y, verbose=0)
    for a, b in zip(before, m.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_one_hot_labels_of_the_wrong_width(uid):
    m = _model(uid)
    with pytest.raises(ValueError) as info:
        m.fit(np.zeros((5, 4)), np.zeros((5, 4)), verbose=0)
    msg = str(info.value)
    assert "(None, 4)" in msg and "(None, 3)" in msg
    # integer labels given to categorical_crossentropy: a hint towards the sparse loss
    with pytest.raises(ValueError, match="sparse_categorical_crossentropy"):
        m.fit(np.zeros((5, 4)), np.array([0, 1, 2, 0, 1]), verbose=0)


def test_object_and_string_arrays_raise_type_error(uid):
    m = _model(uid)
    with pytest.raises(TypeError, match="object"):
        m.fit(np.array([[1, 2, 3, "a"]], dtype=object), _onehot(1), verbose=0)
    with pytest.raises(TypeError, match="`x`"):
        m.predict(np.array([["a", "b", "c", "d"]]), verbose=0)
    with pytest.raises(TypeError, match="`y`"):
        m.fit(np.zeros((1, 4)), np.array([["a", "b", "c"]]), verbose=0)
    with pytest.raises(TypeError):
        m.predict(np.zeros((2, 4), dtype=complex), verbose=0)


@pytest.mark.parametrize("call", ["fit", "evaluate", "predict", "train_on_batch", "test_on_batch"])
def test_empty_arrays_raise_value_error(call, uid):
    m = _model(uid)
    x = np.zeros((0, 4), "float32")
    args = (x,) if call == "predict" else (x, np.zeros((0, 3)))
    kwargs = {"verbose": 0} if call in ("fit", "evaluate", "predict") else {}
    before = m.get_weights()
    with pytest.raises(ValueError, match="empty"):
        getattr(m, call)(*args, **kwargs)
    for a, b in zip(before, m.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert m.optimizer.iterations == 0


def test_scalar_input_has_no_batch_axis(uid):
    m = _model(uid)
    with pytest.raises(ValueError, match="batch axis"):
        m.predict(3.0, verbose=0)


@pytest.mark.parametrize(
    "kwargs,word",
    [({"batch_size": 0}, "batch_size"), ({"batch_size": -2}, "batch_size"), ({"batch_size": 2.5}, "batch_size"),
     ({"epochs": -1}, "epochs"), ({"validation_split": 1.5}, "validation_split"),
     ({"validation_split": 0.9}, "validation_split"), ({"verbose": 3}, "verbose"),
     ({"sample_weight": np.ones(4)}, "sample_weight"), ({"validation_data": np.zeros((2, 4))}, "validation_data")],
)
def test_bad_fit_arguments(kwargs, word, uid):
    m = _model(uid)
    with pytest.raises(ValueError, match=word):
        m.fit(np.zeros((5, 4)), _onehot(5), **{"verbose": 0, **kwargs})


# ---- names ---------------------------------------------------------------------------------------------------


def test_unknown_optimizer_loss_metric_names_list_the_valid_ones(uid):
    m = kerust.Sequential([kerust.Input((4,)), layers.Dense(3, name=uid("d"))])
    with pytest.raises(ValueError, match="adamm") as info:
        m.compile(optimizer="adamm", loss="mse")
    assert "adam" in str(info.value).replace("adamm", "") and "sgd" in str(info.value)
    with pytest.raises(ValueError, match="msee") as info:
        m.compile(optimizer="adam", loss="msee")
    assert "mean_squared_error" in str(info.value) and "categorical_crossentropy" in str(info.value)
    with pytest.raises(ValueError, match="acuracy") as info:
        m.compile(optimizer="adam", loss="mse", metrics=["acuracy"])
    assert "accuracy" in str(info.value).replace("acuracy", "")
    assert not m.compiled
    with pytest.raises(ValueError):
        kerust.optimizers.get("nope")
    with pytest.raises(ValueError):
        kerust.losses.get("nope")


def test_unknown_activation_at_construction(uid):
    name = uid("d")
    with pytest.raises(ValueError, match="relux") as info:
        layers.Dense(3, activation="relux", name=name)
    msg = str(info.value)
    assert name in msg and "relu" in msg.replace("relux", "") and "softmax" in msg
    with pytest.raises(ValueError, match="foo"):
        layers.Activation("foo")
    with pytest.raises(ValueError):
        layers.Conv2D(2, 3, activation="nope")


@pytest.mark.parametrize("call", ["fit", "evaluate", "train_on_batch"])
def test_training_before_compile_is_a_runtime_error(call, uid):
    m = kerust.Sequential([kerust.Input((4,)), layers.Dense(3, name=uid("d"))])
    kwargs = {"verbose": 0} if call != "train_on_batch" else {}
    with pytest.raises(RuntimeError, match="compile"):
        getattr(m, call)(np.zeros((2, 4)), np.zeros((2, 3)), **kwargs)
    # predict does not need compile
    assert m.predict(np.zeros((2, 4)), verbose=0).shape == (2, 3)


# ---- layer arguments ---------------------------------------------------------------------------------------


_BAD_LAYER_ARGS = [
    ("Dense(0)", lambda n: layers.Dense(0, name=n), ["units", "0"]),
    ("Dense(-3)", lambda n: layers.Dense(-3, name=n), ["units", "-3"]),
    ("Dense(2.5)", lambda n: layers.Dense(2.5, name=n), ["units", "2.5"]),
    ("Dense(nan)", lambda n: layers.Dense(float("nan"), name=n), ["units"]),
    ("Conv2D(filters=0)", lambda n: layers.Conv2D(0, 3, name=n), ["filters", "0"]),
    ("Conv2D(kernel_size=0)", lambda n: layers.Conv2D(2, 0, name=n), ["kernel_size"]),
    ("Conv2D(kernel_size=(3,-1))", lambda n: layers.Conv2D(2, (3, -1), name=n), ["kernel_size"]),
    ("Conv2D(strides=0)", lambda n: layers.Conv2D(2, 3, strides=0, name=n), ["strides"]),
    ("Conv2D(padding=full)", lambda n: layers.Conv2D(2, 3, padding="full", name=n), ["padding", "full"]),
    ("MaxPooling2D(pool_size=0)", lambda n: layers.MaxPooling2D(pool_size=0, name=n), ["pool_size"]),
    ("AveragePooling2D(pool_size=(2,0))", lambda n: layers.AveragePooling2D(pool_size=(2, 0), name=n),
     ["pool_size"]),
    ("MaxPooling2D(strides=-1)", lambda n: layers.MaxPooling2D(2, strides=-1, name=n), ["strides"]),
    ("Dropout(1.0)", lambda n: layers.Dropout(rate=1.0, name=n), ["rate", "1.0"]),
    ("Dropout(-0.1)", lambda n: layers.Dropout(rate=-0.1, name=n), ["rate", "-0.1"]),
    ("Dropout(nan)", lambda n: layers.Dropout(rate=float("nan"), name=n), ["rate"]),
    ("BatchNormalization(momentum=1.5)", lambda n: layers.BatchNormalization(momentum=1.5, name=n), ["momentum"]),
    ("BatchNormalization(epsilon=0)", lambda n: layers.BatchNormalization(epsilon=0.0, name=n), ["epsilon"]),
    ("BatchNormalization(momentum=nan)", lambda n: layers.BatchNormalization(momentum=float("nan"), name=n),
     ["momentum"]),
]


@pytest.mark.parametrize("make,words", [c[1:] for c in _BAD_LAYER_ARGS], ids=[c[0] for c in _BAD_LAYER_ARGS])
def test_bad_layer_arguments_raise_at_construction(make, words, uid):
    name = uid("layer")
    with pytest.raises(ValueError) as info:
        make(name)
    msg = str(info.value)
    assert name in msg or words[0] in msg
    for w in words:
        assert w in msg, msg


def test_dense_named_in_its_error(uid):
    name = uid("d")
    with pytest.raises(ValueError, match=name):
        layers.Dense(0, name=name)


def test_kernel_larger_than_input_fails_at_build(uid):
    name = uid("conv")
    conv = layers.Conv2D(2, 5, name=name)  # fine on its own
    with pytest.raises(ValueError) as info:
        kerust.Sequential([kerust.Input((4, 4, 1)), conv])
    msg = str(info.value)
    assert name in msg and "(5, 5)" in msg and "(4, 4)" in msg
    pool = uid("pool")
    with pytest.raises(ValueError, match=pool):
        kerust.Sequential([kerust.Input((2, 2, 1)), layers.MaxPooling2D(3, name=pool)])
    # padding="same" makes the same window legal
    m = kerust.Sequential([kerust.Input((4, 4, 1)), layers.Conv2D(2, 5, padding="same", name=uid("conv"))])
    assert m.layers[0].output_shape == (None, 4, 4, 2)


def test_wrong_rank_at_build(uid):
    name = uid("conv")
    with pytest.raises(ValueError) as info:
        kerust.Sequential([kerust.Input((4,)), layers.Conv2D(2, 3, name=name)])
    msg = str(info.value)
    assert name in msg and "ndim=4" in msg and "ndim=2" in msg
    pool = uid("pool")
    with pytest.raises(ValueError, match=pool):
        kerust.Sequential([kerust.Input((4, 4)), layers.MaxPooling2D(2, name=pool)])
    gap = uid("gap")
    with pytest.raises(ValueError, match=gap):
        kerust.Sequential([kerust.Input((4,)), layers.GlobalAveragePooling2D(name=gap)])
    rs = uid("reshape")
    with pytest.raises(ValueError, match=rs):
        kerust.Sequential([kerust.Input((4,)), layers.Reshape((3,), name=rs)])


def test_failed_add_leaves_the_model_as_it_was(uid):
    m = kerust.Sequential([kerust.Input((4,)), layers.Dense(3, name=uid("d"))])
    w = m.get_weights()
    with pytest.raises(ValueError):
        m.add(layers.Conv2D(2, 3, name=uid("conv")))
    assert len(m.layers) == 1
    for a, b in zip(w, m.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(TypeError):
        m.add("dense")


def test_duplicate_layer_names_and_reused_layers(uid):
    n = uid("d")
    with pytest.raises(ValueError, match=n):
        kerust.Sequential([kerust.Input((4,)), layers.Dense(3, name=n), layers.Dense(3, name=n)])
    shared = layers.Dense(3, name=uid("d"))
    kerust.Sequential([kerust.Input((4,)), shared])
    with pytest.raises(ValueError, match=shared.name):
        kerust.Sequential([kerust.Input((3,)), shared])


# ---- set_weights ---------------------------------------------------------------------------------------------


def test_set_weights_wrong_count_or_shape_leaves_weights_unchanged(uid):
    m = kerust.Sequential([kerust.Input((4,)), layers.Dense(3, name=uid("d")), layers.Dense(2, name=uid("d"))])
    before = [w.copy() for w in m.get_weights()]
    good = [np.ones_like(w) for w in before]
    with pytest.raises(ValueError) as info:
        m.set_weights(good[:3])
    assert "3" in str(info.value) and "4" in str(info.value)
    with pytest.raises(ValueError):
        m.set_weights(good + [np.ones(2)])
    # the last array is wrong: nothing may be written, not even the first three
    with pytest.raises(ValueError) as info:
        m.set_weights(good[:3] + [np.ones(5)])
    assert "(2,)" in str(info.value).replace("[2]", "(2,)") and "5" in str(info.value)
    with pytest.raises(ValueError) as info:
        m.set_weights([np.ones((3, 4))] + good[1:])
    assert "kernel" in str(info.value)
    for a, b in zip(before, m.get_weights()):
        np.testing.assert_array_equal(a, b)
    layer = m.layers[0]
    with pytest.raises(ValueError, match=layer.name):
        layer.set_weights([np.ones((4, 3))])
    with pytest.raises(ValueError, match=layer.name):
        layer.set_weights([np.ones((4, 3)), np.ones(4)])
    with pytest.raises(TypeError):
        m.set_weights(np.ones(3))
    for a, b in zip(before, m.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_set_weights_before_build(uid):
    m = kerust.Sequential([layers.Dense(3, name=uid("d"))])
    with pytest.raises(ValueError, match="built"):
        m.set_weights([np.ones((4, 3)), np.ones(3)])


# ---- unknown keyword arguments -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda m: layers.Dense(3, foo=1),
        lambda m: layers.Conv2D(3, 3, kernal_size=3),
        lambda m: layers.Dropout(0.5, rates=0.1),
        lambda m: layers.MaxPooling2D(2, pool=2),
        lambda m: layers.BatchNormalization(mommentum=0.9),
        lambda m: layers.InputLayer(shape=(3,), foo=1),
        lambda m: optimizers.Adam(foo=1),
        lambda m: optimizers.SGD(momentun=0.9),
        lambda m: losses.MeanSquaredError(from_logits=True),
        lambda m: m.compile(optimizer="adam", loss="mse", foo=1),
        lambda m: m.fit(np.zeros((2, 4)), np.zeros((2, 3)), foo=1),
        lambda m: m.predict(np.zeros((2, 4)), foo=1),
        lambda m: m.evaluate(np.zeros((2, 4)), np.zeros((2, 3)), foo=1),
        lambda m: kerust.Sequential(foo=1),
    ],
)
def test_unknown_keyword_arguments_raise_type_error(call, uid):
    m = _model(uid)
    with pytest.raises(TypeError):
        call(m)


# ---- hostile values ----------------------------------------------------------------------------------------

HOSTILE = [None, -1, 0, 2**40, float("nan"), float("inf"), "abc", [[1, [2]]], np.zeros((0,)), np.zeros((0, 4)),
           [], object(), True]
_ALLOWED = (ValueError, TypeError, RuntimeError)


def _targets():
    """(name, function of one hostile value) pairs over the public API."""
    x = np.random.default_rng(0).normal(size=(6, 4)).astype("float32")
    y = _onehot(6)

    def model():
        m = kerust.Sequential([kerust.Input((4,)), layers.Dense(3, activation="softmax")])
        m.compile(optimizer="sgd", loss="categorical_crossentropy", metrics=["accuracy"])
        return m

    def seq_with(layer):
        return kerust.Sequential([kerust.Input((6, 6, 2)), layer])

    return [
        ("Dense(units)", lambda v: layers.Dense(v)),
        ("Dense(activation)", lambda v: layers.Dense(3, activation=v)),
        ("Dense(use_bias)", lambda v: kerust.Sequential([kerust.Input((4,)), layers.Dense(3, use_bias=v)])),
        ("Dense(kernel_initializer)",
         lambda v: kerust.Sequential([kerust.Input((4,)), layers.Dense(3, kernel_initializer=v)])),
        ("Dense(name)", lambda v: layers.Dense(3, name=v)),
        ("Dense(input_shape)", lambda v: kerust.Sequential([layers.Dense(3, input_shape=v)])),
        ("Conv2D(filters)", lambda v: seq_with(layers.Conv2D(v, 3))),
        ("Conv2D(kernel_size)", lambda v: seq_with(layers.Conv2D(2, v))),
        ("Conv2D(strides)", lambda v: seq_with(layers.Conv2D(2, 3, strides=v))),
        ("Conv2D(padding)", lambda v: seq_with(layers.Conv2D(2, 3, padding=v))),
        ("MaxPooling2D(pool_size)", lambda v: seq_with(layers.MaxPooling2D(v))),
        ("AveragePooling2D(strides)", lambda v: seq_with(layers.AveragePooling2D(2, strides=v))),
        ("Dropout(rate)", lambda v: layers.Dropout(v)),
        ("BatchNormalization(momentum)", lambda v: layers.BatchNormalization(momentum=v)),
        ("BatchNormalization(epsilon)", lambda v: layers.BatchNormalization(epsilon=v)),
        ("Reshape(target_shape)", lambda v: kerust.Sequential([kerust.Input((4,)), layers.Reshape(v)])),
        ("Activation", lambda v: layers.Activation(v)),
        ("Input(shape)", lambda v: kerust.Input(shape=v)),
        ("Input((v,)) + Flatten", lambda v: kerust.Sequential([kerust.Input((v,)), layers.Flatten()])),
        ("Sequential(layers)", lambda v: kerust.Sequential(v)),
        ("fit(x)", lambda v: model().fit(v, y, verbose=0)),
        ("fit(y)", lambda v: model().fit(x, v, verbose=0)),
        ("fit(batch_size)", lambda v: model().fit(x, y, batch_size=v, verbose=0)),
        ("fit(epochs)", lambda v: model().fit(x, y, epochs=v if v != 2**40 else -(2**40), verbose=0)),
        ("fit(validation_split)", lambda v: model().fit(x, y, validation_split=v, verbose=0)),
        ("fit(validation_data)", lambda v: model().fit(x, y, validation_data=v, verbose=0)),
        ("fit(validation_data=(x, v))", lambda v: model().fit(x, y, validation_data=(x, v), verbose=0)),
        ("fit(sample_weight)", lambda v: model().fit(x, y, sample_weight=v, verbose=0)),
        ("fit(class_weight)", lambda v: model().fit(x, y, class_weight=v, verbose=0)),
        ("fit(shuffle)", lambda v: model().fit(x, y, shuffle=v, verbose=0)),
        ("fit(verbose)", lambda v: model().fit(x, y, verbose=v)),
        ("fit(callbacks)", lambda v: model().fit(x, y, callbacks=v, verbose=0)),
        ("predict(x)", lambda v: model().predict(v, verbose=0)),
        ("predict(batch_size)", lambda v: model().predict(x, batch_size=v, verbose=0)),
        ("evaluate(x)", lambda v: model().evaluate(v, y, verbose=0)),
        ("evaluate(y)", lambda v: model().evaluate(x, v, verbose=0)),
        ("train_on_batch(x)", lambda v: model().train_on_batch(v, y)),
        ("train_on_batch(y)", lambda v: model().train_on_batch(x, v)),
        ("set_weights(v)", lambda v: model().set_weights(v)),
        ("set_weights([v, b])", lambda v: model().set_weights([v, np.zeros(3)])),
        ("layer.set_weights([k, v])", lambda v: model().layers[0].set_weights([np.zeros((4, 3)), v])),
        ("compile(optimizer)", lambda v: model().compile(optimizer=v, loss="mse")),
        ("compile(loss)", lambda v: model().compile(optimizer="sgd", loss=v)),
        ("compile(metrics)", lambda v: model().compile(optimizer="sgd", loss="mse", metrics=v)),
        ("SGD(learning_rate)", lambda v: optimizers.SGD(learning_rate=v)),
        ("Adam(beta_1)", lambda v: optimizers.Adam(beta_1=v)),
        ("optimizer.learning_rate = v", lambda v: setattr(model().optimizer, "learning_rate", v)),
        ("MeanSquaredError()(v, y)", lambda v: losses.MeanSquaredError()(v, y)),
        ("CategoricalCrossentropy()(y, v)", lambda v: losses.CategoricalCrossentropy()(y, v)),
        ("SparseCategoricalCrossentropy()(v, p)", lambda v: losses.SparseCategoricalCrossentropy()(v, y)),
        ("to_categorical(v)", lambda v: kerust.utils.to_categorical(v)),
        ("to_categorical(num_classes)", lambda v: kerust.utils.to_categorical([0, 1], num_classes=v)),
        ("normalize(v)", lambda v: kerust.utils.normalize(v)),
        ("set_random_seed(v)", lambda v: kerust.utils.set_random_seed(v)),
    ]


_TARGETS = _targets()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("name,fn", _TARGETS, ids=[t[0] for t in _TARGETS])
def test_hostile_values_raise_clean_errors(name, fn):
    problems = []
    for v in HOSTILE:
        try:
            fn(v)
        except _ALLOWED as e:
            if type(e).__name__ == "PanicException" or "internal error" in str(e) or "panicked" in str(e):
                problems.append(f"{v!r}: panic surfaced as {type(e).__name__}: {e}")
        except MemoryError as e:
            # Keras's own to_categorical allocates the (n, num_classes) array and fails the same way
            if not name.startswith("to_categorical"):
                problems.append(f"{v!r}: MemoryError: {e}")
        except KeyboardInterrupt:  # pragma: no cover - would mean a signal was faked
            raise
        except BaseException as e:  # noqa: BLE001 - the point is to catch everything else
            problems.append(f"{v!r}: {type(e).__module__}.{type(e).__name__}: {e}")
        kerust.utils.set_random_seed(1234)
    assert not problems, f"{name}:\n" + "\n".join(problems)


def test_nan_and_inf_data_do_not_crash(uid):
    m = _model(uid)
    x = np.full((4, 4), np.nan, "float32")
    out = m.predict(x, verbose=0)
    assert out.shape == (4, 3)
    loss = m.fit(np.full((4, 4), np.inf), _onehot(4), verbose=0).history["loss"][0]
    assert not math.isfinite(loss) or loss >= 0


# ---- the interpreter survives shapes too big to allocate ----------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        "kerust.Sequential([kerust.Input((2**45,)), layers.Dense(2)])",  # 2**46 floats: more than any machine
        "kerust.Sequential([kerust.Input((2**62,)), layers.Dense(4)])",  # 2**64 weights: overflows usize
        "kerust.Sequential([kerust.Input((2**64,)), layers.Dense(4)])",  # does not fit in usize at all
        "kerust.Sequential([kerust.Input((3, 3, 2**20)), layers.Conv2D(2**30, 3)])",  # 9 * 2**50 weights
    ],
)
def test_huge_shapes_raise_instead_of_aborting(code):
    script = textwrap.dedent(
        f"""
        import numpy as np
        import kerust
        from kerust import layers
        try:
            m = {code}
            m.get_weights()
            m.predict(np.zeros((1,) + tuple(m._input_shape)), verbose=0)
        except (ValueError, MemoryError) as e:
            print("RAISED", type(e).__name__, e)
        except BaseException as e:
            print("WRONG", type(e).__name__, e)
        else:
            print("NO ERROR")
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, f"interpreter died (rc={proc.returncode}): {proc.stderr[-500:]}"
    assert proc.stdout.startswith("RAISED"), proc.stdout + proc.stderr[-500:]
