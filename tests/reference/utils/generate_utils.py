"""Reference values for tests/test_utils_more.py from real Keras 3.15.1 (JAX backend):
KERAS_BACKEND=jax .keras-venv/bin/python tests/reference/utils/generate_utils.py

The environment has no TensorFlow and no Grain, so split_dataset's and timeseries_dataset_from_array's final
`tf.data.Dataset` wrapping cannot run; the sizes, the shuffled order and the windows come from the same Keras code
those functions run before wrapping (split_dataset: _convert_dataset_to_list, random.seed/shuffle,
_rescale_dataset_split_sizes, _restore_dataset_from_list; timeseries: Keras's argument checks, then its
start positions and windows as _timeseries_dataset_tf / _timeseries_dataset_grain compute them). get_file runs
whole (local cache, checksums, a failing origin)."""

import json
import os
import random
import tempfile

import numpy as np
from keras.src.utils import dataset_utils as du
from keras.src.utils import timeseries_dataset_utils as tsu
from keras.utils import get_file

HERE = os.path.dirname(os.path.abspath(__file__))
out = {}
data = np.arange(40, dtype="float32").reshape(10, 4)
labels = np.arange(10)


def keras_split(dataset, left_size=None, right_size=None, shuffle=False, seed=None):
    spec = du._get_type_spec(dataset)
    as_list = du._convert_dataset_to_list(dataset, spec)
    if shuffle:
        random.seed(seed)
        random.shuffle(as_list)
    left, right = du._rescale_dataset_split_sizes(left_size, right_size, len(as_list))
    lhs = du._restore_dataset_from_list(list(as_list[:left]), spec, dataset)
    rhs = du._restore_dataset_from_list(list(as_list[-right:]), spec, dataset)
    if isinstance(dataset, tuple):
        return [np.asarray(a).tolist() for a in lhs], [np.asarray(a).tolist() for a in rhs]
    return np.asarray(lhs).tolist(), np.asarray(rhs).tolist()


cases = [dict(left_size=0.8), dict(right_size=3), dict(left_size=4, right_size=3), dict(left_size=0.25),
         dict(left_size=0.6, shuffle=True, seed=7), dict(left_size=5, right_size=2, shuffle=True, seed=123)]
out["split_array"] = [dict(kw, result=keras_split(data, **kw)) for kw in cases]
out["split_tuple"] = [dict(kw, result=keras_split((data, labels), **kw)) for kw in cases[:1] + cases[4:5]]
errors = []
for kw in [dict(), dict(left_size=0), dict(left_size=10), dict(left_size=1.5), dict(left_size=0.7, right_size=0.6),
           dict(left_size="a"), dict(left_size=8, right_size=5)]:
    try:
        keras_split(data, **kw)
        errors.append(dict(kw=kw, error=None))
    except Exception as e:  # noqa: BLE001
        # the check split_dataset makes before the helpers run
        err = e if kw else ValueError("At least one of the `left_size` or `right_size` must be specified. "
                                      "Received: left_size=None and right_size=None")
        errors.append(dict(kw=kw, type=type(err).__name__, message=str(err)))
out["split_errors"] = errors

series = np.arange(100)
ts_cases = [dict(sequence_length=10), dict(sequence_length=5, sequence_stride=3, sampling_rate=2),
            dict(sequence_length=4, start_index=10, end_index=40, sequence_stride=2),
            dict(sequence_length=6, shuffle=True, seed=11, sequence_stride=4)]
ts = []
for kw in ts_cases:
    start = kw.get("start_index") or 0
    end = kw.get("end_index") or len(series)
    sl, sr, ss = kw["sequence_length"], kw.get("sampling_rate", 1), kw.get("sequence_stride", 1)
    num = min(end - start - (sl - 1) * sr, len(series))
    pos = np.arange(0, num, ss)
    if kw.get("shuffle"):
        np.random.RandomState(kw["seed"]).shuffle(pos)
    windows = [series[start:end][np.arange(p, p + sl * sr, sr)].tolist() for p in pos]
    ts.append(dict(kw, inputs=windows, targets=[int(series[start:][p]) for p in pos]))
out["timeseries"] = ts
ts_err = []
for kw in [dict(start_index=-1), dict(start_index=200), dict(start_index=20, end_index=10), dict(end_index=100),
           dict(sampling_rate=0), dict(sequence_stride=0), dict(sequence_stride=100)]:
    try:
        tsu.timeseries_dataset_from_array(series, series, 5, format="none", **kw)
    except ValueError as e:
        ts_err.append(dict(kw=kw, message=str(e)))
out["timeseries_errors"] = ts_err

# get_file from a local cache, with checksums, and with a failing origin
tmp = tempfile.mkdtemp()
os.makedirs(os.path.join(tmp, "datasets"))
with open(os.path.join(tmp, "datasets", "data.txt"), "wb") as f:
    f.write(b"kerust reference file\n")
import hashlib  # noqa: E402

sha = hashlib.sha256(b"kerust reference file\n").hexdigest()
md5 = hashlib.md5(b"kerust reference file\n").hexdigest()
path = get_file("data.txt", origin="http://127.0.0.1:9/data.txt", file_hash=sha, cache_dir=tmp)
out["get_file"] = dict(content="kerust reference file\n", sha256=sha, md5=md5,
                       relpath=os.path.relpath(path, tmp))
try:
    get_file("missing.txt", origin="http://127.0.0.1:9/missing.txt", cache_dir=tmp)
except Exception as e:  # noqa: BLE001
    out["get_file"]["missing_error"] = type(e).__name__
    out["get_file"]["missing_exists_after"] = os.path.exists(os.path.join(tmp, "datasets", "missing.txt"))
with open(os.path.join(HERE, "utils_reference.json"), "w") as f:
    json.dump(out, f, indent=1, sort_keys=True)
print("wrote", os.path.join(HERE, "utils_reference.json"))
