"""What `layer.weights` / `model.weights` return: the weight values as NumPy arrays that also carry Keras's
variable `name` (``kernel``), `path` (``block/attention/q/kernel``: the layer names down to the variable) and
`trainable` flag, in Keras's order (a custom layer's own variables, trainable first, then its sublayers')."""

from __future__ import annotations

from typing import Any, List, Tuple

import numpy as np


class WeightArray(np.ndarray):
    """A copy of one weight's values, with its Keras `name`, `path` and `trainable` flag."""

    name: str
    path: str
    trainable: bool

    def __new__(cls, values: Any, name: str, path: str, trainable: bool) -> "WeightArray":
        obj = np.array(values, dtype=np.float32).view(cls)
        obj.name, obj.path, obj.trainable = name, path, trainable
        return obj

    def __array_finalize__(self, obj: Any) -> None:
        self.name = getattr(obj, "name", "")
        self.path = getattr(obj, "path", "")
        self.trainable = getattr(obj, "trainable", True)

    def numpy(self) -> np.ndarray:
        return np.array(self).view(np.ndarray)

    @property
    def value(self) -> np.ndarray:
        return self.numpy()


def _entries(layer: Any, prefix: str) -> List[Tuple[str, str, bool, bool, Any]]:
    """(name, path, own trainable flag, layer trainable, values) for each weight of `layer`."""
    from ._custom import is_custom
    from ._inspect import weight_names
    from .models import Model

    if isinstance(layer, Model):
        out = []
        for sub in layer.layers:
            if not getattr(sub, "_is_input_layer", False):
                out += _entries(sub, f"{prefix}/{sub.name}" if prefix else sub.name)
        return out
    if is_custom(layer):
        own = layer._ordered_variables()
        values = layer._own_weights() if own else []
        out = [(v.name, f"{prefix}/{v.name}", v.trainable, layer.trainable, a) for v, a in zip(own, values)]
        for sub in layer._tracked_layers():
            out += _entries(sub, f"{prefix}/{sub.name}")
        return out
    arrays = layer.get_weights()
    names = weight_names(layer) or [f"variable_{i}" if i else "variable" for i in range(len(arrays))]
    return [(n, f"{prefix}/{n}", not n.startswith("moving_"), layer.trainable, a) for n, a in zip(names, arrays)]


def weights_of(obj: Any, prefix: str, which: str = "all") -> List[WeightArray]:
    """`which`: "all", "trainable" (own flag and layer flag both set) or "non_trainable"."""
    out = []
    for name, path, own, layer_flag, values in _entries(obj, prefix):
        trainable = own and layer_flag
        if which == "trainable" and not trainable:
            continue
        if which == "non_trainable" and trainable:
            continue
        out.append(WeightArray(values, name, path, own))
    return out
