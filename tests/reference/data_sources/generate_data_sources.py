"""Writes data_sources.npz from real Keras: fit / evaluate / predict fed by Python generators and
`keras.utils.PyDataset`s (steps_per_epoch, validation generators with validation_steps, (x, y, sample_weight)
batches, class_weight, dict batches for a two-input two-output model, a non-mean metric (AUC) over batches).
For each case: the data, the initial weights, Keras's History (keys and values), final weights and the
evaluate / predict results. tests/test_data_sources.py feeds kerust the same batches. Run from the repository
root:

    KERAS_BACKEND=jax .keras-venv/bin/python tests/reference/data_sources/generate_data_sources.py
"""

import json
import os

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "jax")
import keras  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def cycle(x, y, bs, sw=None):
    """Batches of `bs` rows of (x, y[, sw]) forever, in order."""
    n = len(x)
    i = 0
    while True:
        rows = np.arange(i, i + bs) % n
        yield (x[rows], y[rows]) if sw is None else (x[rows], y[rows], sw[rows])
        i = (i + bs) % n


def batches(x, y, bs, sw=None):
    """One pass of (x, y[, sw]) batches of `bs` rows (the last one smaller)."""
    for s in range(0, len(x), bs):
        yield (x[s:s + bs], y[s:s + bs]) if sw is None else (x[s:s + bs], y[s:s + bs], sw[s:s + bs])


class Batches(keras.utils.PyDataset):
    def __init__(self, x, y, bs, sw=None, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.bs, self.sw = x, y, bs, sw

    def __len__(self):
        return -(-len(self.x) // self.bs)

    def __getitem__(self, i):
        s = slice(i * self.bs, (i + 1) * self.bs)
        return (self.x[s], self.y[s]) if self.sw is None else (self.x[s], self.y[s], self.sw[s])


def mlp(out_activation=None):
    m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu"),
                          keras.layers.Dense(1, activation=out_activation)])
    return m


def two_in_two_out():
    a = keras.Input((3,), name="a")
    b = keras.Input((2,), name="b")
    h = keras.layers.Dense(4, activation="tanh", name="h")(keras.layers.Concatenate()([a, b]))
    o1 = keras.layers.Dense(1, name="o1")(h)
    o2 = keras.layers.Dense(2, name="o2")(h)
    return keras.Model({"a": a, "b": b}, {"o1": o1, "o2": o2})


def store(out, name, model, history=None):
    for i, w in enumerate(model.get_weights()):
        out[f"{name}/final{i}"] = w
    if history is not None:
        keys = sorted(history.history)
        out[f"{name}/keys"] = np.array(json.dumps(keys))
        for k in keys:
            out[f"{name}/h/{k}"] = np.asarray(history.history[k], np.float64)


def initial(out, name, model):
    for i, w in enumerate(model.get_weights()):
        out[f"{name}/init{i}"] = w


def main() -> None:
    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    out = {}
    x = rng.normal(size=(16, 3)).astype(np.float32)
    y = (x @ np.array([[0.5], [-1.0], [0.25]], np.float32) + 0.1).astype(np.float32)
    xv = rng.normal(size=(9, 3)).astype(np.float32)
    yv = (xv @ np.array([[0.5], [-1.0], [0.25]], np.float32)).astype(np.float32)
    sw = rng.uniform(0.2, 2.0, size=(16,)).astype(np.float32)
    out.update({"x": x, "y": y, "xv": xv, "yv": yv, "sw": sw})

    # A: an endless generator with steps_per_epoch, a generator for validation with validation_steps. (Keras
    # starts each validation again with the two batches it peeked at first; a validation cycle of exactly two
    # batches makes that the same as continuing the generator, which kerust does.)
    m = mlp()
    m.compile(keras.optimizers.SGD(0.05), "mse", metrics=["mae"])
    initial(out, "gen_steps", m)
    h = m.fit(cycle(x, y, 4), epochs=2, steps_per_epoch=3, validation_data=cycle(xv[:6], yv[:6], 3),
              validation_steps=2, shuffle=False, verbose=0)
    store(out, "gen_steps", m, h)
    out["gen_steps/evaluate"] = np.asarray(m.evaluate(cycle(xv, yv, 4), steps=2, verbose=0), np.float64)
    out["gen_steps/predict"] = m.predict((b[:1] for b in cycle(xv, yv, 4)), steps=2, verbose=0)

    # B: a PyDataset of (x, y, sample_weight), last batch smaller, two epochs; evaluate over it
    m = mlp()
    m.compile(keras.optimizers.SGD(0.05), "mse", metrics=["mae"])
    initial(out, "pyds_sw", m)
    h = m.fit(Batches(x[:10], y[:10], 4, sw[:10]), epochs=2, shuffle=False, verbose=0)
    store(out, "pyds_sw", m, h)
    out["pyds_sw/evaluate"] = np.asarray(m.evaluate(Batches(xv, yv, 4, sw[:9]), verbose=0), np.float64)

    # C: class_weight with a PyDataset (binary targets), accuracy and AUC (AUC is not a mean of batch values)
    yb = (y > 0).astype(np.float32)
    m = mlp("sigmoid")
    m.compile(keras.optimizers.SGD(0.1), "binary_crossentropy", metrics=["accuracy", "auc"])
    initial(out, "class_weight", m)
    h = m.fit(Batches(x, yb, 5), epochs=2, class_weight={0: 1.0, 1: 3.0}, shuffle=False, verbose=0)
    store(out, "class_weight", m, h)
    out["class_weight/evaluate"] = np.asarray(m.evaluate(batches(x, yb, 5, sw), verbose=0), np.float64)

    # D: dict batches for a two-input, two-output model from a finite generator
    xb = rng.normal(size=(16, 2)).astype(np.float32)
    y2 = rng.normal(size=(16, 2)).astype(np.float32)
    out.update({"xb": xb, "y2": y2})
    m = two_in_two_out()
    m.compile(keras.optimizers.SGD(0.05), {"o1": "mse", "o2": "mse"}, metrics={"o1": ["mae"]})
    initial(out, "multi", m)

    def dict_batches():
        for s in range(0, 16, 6):
            yield {"a": x[s:s + 6], "b": xb[s:s + 6]}, {"o1": y[s:s + 6], "o2": y2[s:s + 6]}
    h = m.fit(dict_batches(), epochs=1, shuffle=False, verbose=0)
    store(out, "multi", m, h)
    pred = m.predict(({"a": x[s:s + 6], "b": xb[s:s + 6]},) for s in range(0, 16, 6))
    out["multi/predict_o1"], out["multi/predict_o2"] = pred["o1"], pred["o2"]
    np.savez_compressed(os.path.join(HERE, "data_sources.npz"), **out)
    print(f"wrote {len(out)} arrays to data_sources.npz")


if __name__ == "__main__":
    main()
