"""Writes tensorboard.json: the scalars real Keras's `keras.callbacks.TensorBoard` writes during a `fit` with
validation (epoch_* in train/ and validation/, batch_* and evaluation_*_vs_iterations, with their steps and
values), for update_freq "epoch", "batch" and 2 (with histogram_freq=1: the epochs of the weights' histograms), from the
fixed-weight model of scenarios.py. The callback needs
TensorFlow's tf.summary, which needs the `tensorboard` package too: run it in a venv with both, from the
repository root. The committed file was written by Keras 3.15.1 with TensorFlow 2.21.0 from the benchmark venv
(which has TensorFlow) with the `tensorboard` package of kerust's .venv appended to its path:

    bench-venv/bin/python -c "import sys, runpy; sys.path.append('.venv/lib/python3.11/site-packages'); \
        runpy.run_path('tests/reference/fit_hooks/generate_tensorboard.py', run_name='__main__')"

tests/test_tensorboard.py runs kerust's TensorBoard on the same fit and compares."""

import json
import os
import sys
import tempfile

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

UPDATE_FREQS = ["epoch", "batch", 2]


def read_scalars(path: str) -> dict:
    """{tag: [[step, value], ...]} of a run folder (TF 2 writes scalars as tensors of the scalars plugin)."""
    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.util import tensor_util

    acc = event_accumulator.EventAccumulator(path, size_guidance={"scalars": 0, "tensors": 0, "histograms": 0})
    acc.Reload()
    out = {tag: [[e.step, float(e.value)] for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    histograms = {tag: [e.step for e in acc.Histograms(tag)] for tag in acc.Tags()["histograms"]}
    for tag in acc.Tags()["tensors"]:
        plugin = acc.SummaryMetadata(tag).plugin_data.plugin_name
        if plugin == "scalars":
            out[tag] = [[e.step, float(tensor_util.make_ndarray(e.tensor_proto))] for e in acc.Tensors(tag)]
        elif plugin == "histograms":
            histograms[tag] = [e.step for e in acc.Tensors(tag)]
    # the weights' histograms: the epochs they were written at (the tags hold layer names, which differ by run)
    out["histogram_steps"] = sorted({tuple(steps) for steps in histograms.values()})
    return dict(sorted(out.items()))


def read_runs(root: str) -> dict:
    """{update_freq: {run folder: scalars}} of the logs `write_runs` made under `root`."""
    return {str(freq): {sub: read_scalars(os.path.join(root, str(freq), sub))
                        for sub in sorted(os.listdir(os.path.join(root, str(freq))))} for freq in UPDATE_FREQS}


def write_runs(root: str) -> None:
    import keras
    import scenarios

    x, y = scenarios._data(10)
    xv, yv = scenarios._data(5, offset=4)
    for freq in UPDATE_FREQS:
        m = scenarios._model(keras)
        board = keras.callbacks.TensorBoard(os.path.join(root, str(freq)), histogram_freq=1, update_freq=freq,
                                            write_graph=False)
        m.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0, validation_data=(xv, yv),
              validation_batch_size=2, callbacks=[board])


def main() -> None:
    import keras
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as root:
        write_runs(root)
        runs = read_runs(root)
    out = {"meta": {"keras": keras.__version__, "backend": keras.backend.backend(), "tensorflow": tf.__version__},
           "runs": runs}
    with open(os.path.join(HERE, "tensorboard.json"), "w") as f:
        f.write(json.dumps(out, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
