"""A look inside one training step: every layer's output and gradients (`Sequential.inspect`), and a finite-
difference check of the engine's backpropagation (`utils.gradient_check`). Neither changes the model."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np


def weight_names(layer: Any) -> List[str]:
    """Keras's names for a layer's weights, in the order `get_weights` returns them."""
    cfg = layer.get_config()
    if layer.class_name in ("Dense", "Conv2D", "Conv1D", "Conv2DTranspose", "DepthwiseConv2D"):
        return ["kernel"] + (["bias"] if cfg.get("use_bias", True) else [])
    if layer.class_name == "SeparableConv2D":
        return ["depthwise_kernel", "pointwise_kernel"] + (["bias"] if cfg.get("use_bias", True) else [])
    if layer.class_name == "BatchNormalization":
        return ((["gamma"] if cfg.get("scale", True) else []) + (["beta"] if cfg.get("center", True) else [])
                + ["moving_mean", "moving_variance"])
    if layer.class_name == "PReLU":
        return ["alpha"]
    if layer.class_name == "Embedding":
        return ["embeddings"]
    if layer.class_name == "LayerNormalization":
        rms = cfg.get("rms_scaling", False)
        return ((["gamma"] if cfg.get("scale", True) or rms else [])
                + (["beta"] if cfg.get("center", True) and not rms else []))
    if layer.class_name in ("SimpleRNN", "LSTM", "GRU"):
        return ["kernel", "recurrent_kernel"] + (["bias"] if cfg.get("use_bias", True) else [])
    if layer.class_name == "Bidirectional":
        sub = [cfg["layer"], cfg["backward_layer"]]
        return [f"{part['config']['name']}/{n}" for part in sub
                for n in ["kernel", "recurrent_kernel"] + (["bias"] if part["config"].get("use_bias", True) else [])]
    from ._custom import is_custom

    if is_custom(layer):  # a layer written as a traced call (the attention layers and their projections too)
        return [v.name for v in layer._ordered_variables()]
    return []


class LayerTrace(dict):
    """One layer's arrays for the inspected batch: ``output``, ``output_gradient`` (dL/d output),
    ``weights`` and ``weight_gradients`` (dicts by weight name, e.g. ``kernel``, ``bias``)."""


class Inspection(Dict[str, LayerTrace]):
    """`Sequential.inspect`'s result: a dict from layer name to :class:`LayerTrace`, plus ``loss`` (the batch's
    training loss, weight penalties included) and ``input_gradient`` (dL/d x)."""

    loss: float
    input_gradient: np.ndarray


def build_inspection(model: Any, raw: tuple) -> Inspection:
    loss, outputs, output_grads, input_grad, weight_grads = raw
    weights = model.get_weights()
    ranges = model._core.layer_weight_ranges()
    result = Inspection()
    result.loss = float(loss)
    # one input: its gradient array (as before); several: a list in input order
    result.input_gradient = input_grad[0] if input_grad is not None and len(input_grad) == 1 else input_grad
    for i, layer in enumerate(model._units):
        first, n = ranges[i]
        names = _names_for(layer, n)
        trace = LayerTrace(
            output=outputs[i],
            output_gradient=output_grads[i],
            weights={names[j]: weights[first + j] for j in range(n)},
            weight_gradients={names[j]: weight_grads[first + j] for j in range(n)},
        )
        result[layer.name] = trace
    return result


def _names_for(layer: Any, n: int) -> List[str]:
    names = weight_names(layer)
    return names if len(names) == n else [f"weight_{j}" for j in range(n)]


def gradient_check(model: Any, x: Any, y: Any, *, sample_weight: Any = None, epsilon: float = 3e-3,
                   samples_per_weight: int = 8, seed: int = 0, tolerance: float = 2e-2) -> Dict[str, Dict[str, Any]]:
    """Compare backpropagation with central finite differences, weight by weight; see `utils.gradient_check`."""
    if not (isinstance(epsilon, (int, float)) and 0 < float(epsilon) < 1):
        raise ValueError(f"gradient_check: `epsilon` must be a number in (0, 1), received {epsilon!r}")
    if isinstance(samples_per_weight, bool) or not isinstance(samples_per_weight, int) or samples_per_weight < 1:
        raise ValueError("gradient_check: `samples_per_weight` must be a positive int, "
                         f"received {samples_per_weight!r}")
    inspection = model.inspect(x, y, sample_weight=sample_weight)
    x32, y32, sw = model._inspect_arrays(x, y, sample_weight)
    original = model.get_weights()
    ranges = model._core.layer_weight_ranges()
    rng = np.random.default_rng(seed)
    report: Dict[str, Dict[str, Any]] = {}
    try:
        for i, layer in enumerate(model._units):
            first, n = ranges[i]
            if n == 0 or not layer.trainable:
                continue  # a frozen layer's weights get no gradient in training
            trace = inspection[layer.name]
            names = _names_for(layer, n)
            per_weight: Dict[str, Dict[str, float]] = {}
            worst = 0.0
            for j in range(n):
                name = names[j]
                if name in ("moving_mean", "moving_variance"):
                    continue  # not trained by gradients
                backprop = trace["weight_gradients"][name].reshape(-1)
                picks = rng.choice(backprop.size, size=min(samples_per_weight, backprop.size), replace=False)
                numeric = np.empty(len(picks))
                for p, flat in enumerate(picks):
                    numeric[p] = _central_difference(model, original, first + j, int(flat), float(epsilon),
                                                     x32, y32, sw)
                analytic = backprop[picks].astype(np.float64)
                err = np.abs(numeric - analytic)
                # entries far smaller than the weight's largest gradient are judged against that scale: float32
                # round-off in the loss would otherwise make their relative error meaningless
                floor = max(1e-4, 0.05 * float(np.abs(backprop).max()))
                rel = err / np.maximum(np.abs(numeric) + np.abs(analytic), floor)
                per_weight[name] = {"max_abs_error": float(err.max()), "max_rel_error": float(rel.max()),
                                    "checked": int(len(picks))}
                worst = max(worst, float(rel.max()))
            if per_weight:
                report[layer.name] = {"weights": per_weight, "max_rel_error": worst, "ok": worst <= tolerance}
    finally:
        model.set_weights(original)
    return report


def _central_difference(model: Any, original: List[np.ndarray], index: int, flat: int, eps: float,
                        x: np.ndarray, y: np.ndarray, sw: Optional[np.ndarray]) -> float:
    losses = []
    for sign in (1.0, -1.0):
        weights = list(original)
        w = original[index].copy()
        w.reshape(-1)[flat] += sign * eps
        weights[index] = w
        model.set_weights(weights)
        losses.append(model._core.inspect(x, y, sw, False)[0])
    return (losses[0] - losses[1]) / (2.0 * eps)
