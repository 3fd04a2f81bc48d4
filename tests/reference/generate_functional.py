"""Write the Keras fixtures for the functional API (``tests/test_functional.py``): files saved by real Keras and
the values Keras computed, so kerust is checked against Keras without Keras installed.

Run with a Python that has real Keras 3 + TensorFlow (not kerust's environment), from the repository root:

    bench-venv/bin/python tests/reference/generate_functional.py

It writes, under ``tests/reference/functional/``:

- ``residual_two_outputs.keras``  a functional model with a shared Dense called twice, a residual ``Add``, a nested
  ``Sequential``, a ``Concatenate`` and two outputs (softmax classes and a regression), compiled with Adam,
  per-output losses, ``loss_weights`` and metrics, trained 2 epochs on synthetic data (so the file carries the
  optimizer's state);
- ``transfer.keras``               the transfer-learning recipe: a frozen Sequential base with BatchNormalization
  inside a Sequential with a new head, trained one epoch;
- ``merges.keras``                 a model with two inputs and every merge layer (Subtract, Multiply, Average,
  Maximum, Minimum, Dot with and without ``normalize``), plus Permute, RepeatVector and Identity, untrained;
- ``expected.npz``                 the inputs, targets, Keras's predictions, the History of a further epoch of
  training of the first model from its file, its evaluate() values, its weights in ``model.weights`` order, its
  ``summary()`` text, and, for each output of the merges model, its values and the gradients of
  ``sum(output * R)`` (fixed random ``R``) with respect to the three inputs.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import layers  # noqa: E402

OUT = Path(__file__).resolve().parent / "functional"
F32 = np.float32


def residual_model() -> keras.Model:
    inp = keras.Input((6,), name="features")
    shared = layers.Dense(6, activation="tanh", name="shared")
    a = shared(inp)
    b = shared(a)
    r = layers.Add(name="residual")([inp, b])
    block = keras.Sequential([keras.Input((6,)), layers.Dense(5, activation="relu", name="inner1"),
                              layers.Dense(4, name="inner2")], name="block")
    c = block(r)
    cat = layers.Concatenate(name="cat")([c, a])
    cls = layers.Dense(3, activation="softmax", name="cls")(cat)
    reg = layers.Dense(1, name="reg")(c)
    return keras.Model(inp, [cls, reg], name="residual_two_outputs")


def merges_model() -> keras.Model:
    a = keras.Input((4,), name="a")
    b = keras.Input((4,), name="b")
    s = keras.Input((3, 4), name="seq")
    outs = [
        layers.Subtract(name="sub")([a, b]),
        layers.Multiply(name="mul")([a, b, a]),
        layers.Average(name="avg")([a, b]),
        layers.Maximum(name="max")([a, b]),
        layers.Minimum(name="min")([a, b]),
        layers.Dot(axes=1, name="dot")([a, b]),
        layers.Dot(axes=1, normalize=True, name="cos")([a, b]),
        layers.Dot(axes=(2, 2), name="bdot")([s, s]),
        layers.Permute((2, 1), name="perm")(s),
        layers.RepeatVector(2, name="rep")(a),
        layers.Identity(name="ident")(b),
        layers.Concatenate(axis=1, name="cat1")([s, layers.Reshape((1, 4), name="row")(a)]),
    ]
    return keras.Model([a, b, s], outs, name="merges")


def transfer_model() -> keras.Model:
    """The transfer-learning recipe: a frozen Sequential base (with BatchNormalization) inside a Sequential."""
    base = keras.Sequential([keras.Input((6,)), layers.Dense(8, activation="relu", name="base_dense"),
                             layers.BatchNormalization(name="base_bn"), layers.Dense(5, name="base_out")],
                            name="base")
    base.trainable = False
    return keras.Sequential([base, layers.Dense(3, activation="softmax", name="head")], name="transfer")


def main() -> None:
    OUT.mkdir(exist_ok=True)
    keras.utils.set_random_seed(7)
    rng = np.random.default_rng(7)
    x = rng.normal(size=(96, 6)).astype(F32)
    y_cls = rng.integers(0, 3, size=96).astype(F32)
    y_reg = (x[:, :1] * 0.5 + 0.1).astype(F32)
    m = residual_model()
    m.compile(optimizer=keras.optimizers.Adam(0.01),
              loss={"cls": "sparse_categorical_crossentropy", "reg": "mse"},
              loss_weights={"cls": 1.0, "reg": 0.5},
              metrics={"cls": ["accuracy"], "reg": ["mae"]})
    m.fit(x, {"cls": y_cls, "reg": y_reg}, batch_size=16, epochs=2, shuffle=False, verbose=0)
    path = OUT / "residual_two_outputs.keras"
    m.save(path)
    arrays: dict = {"x": x, "y_cls": y_cls, "y_reg": y_reg}
    p_cls, p_reg = m.predict(x, verbose=0)
    arrays["saved_pred_cls"], arrays["saved_pred_reg"] = p_cls, p_reg
    for i, w in enumerate(m.get_weights()):
        arrays[f"saved_weight_{i}"] = w
    arrays["saved_eval"] = np.array(m.evaluate(x, {"cls": y_cls, "reg": y_reg}, batch_size=32, verbose=0))
    again = keras.saving.load_model(path)
    hist = again.fit(x, {"cls": y_cls, "reg": y_reg}, batch_size=16, epochs=1, shuffle=False, verbose=0)
    arrays["resumed_history"] = np.array(json.dumps({k: [float(v) for v in vs] for k, vs in hist.history.items()}))
    arrays["resumed_iterations"] = np.array(int(again.optimizer.iterations.numpy()))
    r_cls, r_reg = again.predict(x, verbose=0)
    arrays["resumed_pred_cls"], arrays["resumed_pred_reg"] = r_cls, r_reg
    arrays["layer_names"] = np.array(json.dumps([layer.name for layer in m.layers]))
    lines: list = []
    again.summary(print_fn=lambda line, **_: lines.append(line))
    arrays["summary"] = np.array(json.dumps("\n".join(lines).splitlines()))
    arrays["weight_paths"] = np.array(json.dumps([w.path for w in m.weights]))

    t = transfer_model()
    t.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    t.fit(x, y_cls, batch_size=16, epochs=1, shuffle=False, verbose=0)
    t.save(OUT / "transfer.keras")
    arrays["transfer_pred"] = t.predict(x, verbose=0)
    t_again = keras.saving.load_model(OUT / "transfer.keras")
    hist = t_again.fit(x, y_cls, batch_size=16, epochs=1, shuffle=False, verbose=0)
    arrays["transfer_history"] = np.array(json.dumps({k: [float(v) for v in vs] for k, vs in hist.history.items()}))
    arrays["transfer_resumed_pred"] = t_again.predict(x, verbose=0)
    for i, w in enumerate(t_again.get_weights()):
        arrays[f"transfer_weight_{i}"] = w

    mm = merges_model()
    mm.save(OUT / "merges.keras")
    xa = rng.normal(size=(5, 4)).astype(F32)
    xb = rng.normal(size=(5, 4)).astype(F32)
    xb[0, 0] = xa[0, 0]  # a tie for Maximum / Minimum
    xs = rng.normal(size=(5, 3, 4)).astype(F32)
    arrays["merge_a"], arrays["merge_b"], arrays["merge_seq"] = xa, xb, xs
    outs = mm.predict([xa, xb, xs], verbose=0)
    for layer_out, value in zip(mm.output_names, outs):
        arrays[f"merge_out__{layer_out}"] = value
    # gradients of sum(out * R) through the whole model w.r.t. the three inputs, per output
    ta, tb, ts = (tf.constant(v) for v in (xa, xb, xs))
    for k, name in enumerate(mm.output_names):
        with tf.GradientTape() as tape:
            tape.watch([ta, tb, ts])
            out = mm([ta, tb, ts])[k]
            r = tf.constant(np.random.default_rng(100 + k).normal(size=out.shape).astype(F32))
            total = tf.reduce_sum(out * r)
        grads = tape.gradient(total, [ta, tb, ts])
        arrays[f"merge_R__{name}"] = r.numpy()
        for g, t, which in zip(grads, (ta, tb, ts), ("a", "b", "seq")):
            # an input the output does not depend on has no gradient: zeros
            arrays[f"merge_grad__{name}__{which}"] = np.zeros(t.shape, F32) if g is None else g.numpy()
    arrays["merge_output_names"] = np.array(json.dumps(list(mm.output_names)))
    arrays["meta"] = np.array(json.dumps({"keras": keras.__version__, "tensorflow": tf.__version__,
                                          "python": sys.version.split()[0], "numpy": np.__version__}))
    np.savez_compressed(OUT / "expected.npz", **arrays)
    for f in sorted(OUT.iterdir()):
        print(f"wrote {f.relative_to(OUT.parents[2])}: {f.stat().st_size / 1024:.1f} KiB")


if __name__ == "__main__":
    main()
