"""Keras masks on symbolic tensors: which steps of a sequence count.

A mask is a symbolic bool tensor ``(batch, steps)`` kept on a tensor as ``_keras_mask``, as Keras keeps it. The
layer that makes one (Embedding with ``mask_zero``, Masking) records the ops that compute it; layers that
support masking hand it on; the layers that use it (recurrent layers, Bidirectional, GlobalAveragePooling1D,
custom layers whose ``call`` takes ``mask``) read it as one more input of their node. The ops that compute a mask
are marked derived: a model's config leaves them out, since loading makes them again.
"""

from __future__ import annotations

import warnings
from typing import Any, List, Optional

from ._graph import KerasTensor, deriving


def mask_of(x: Any) -> Any:
    """The mask on `x` (the first tensor of a list), or None."""
    if isinstance(x, (list, tuple)):
        return [mask_of(t) for t in x]
    return getattr(x, "_keras_mask", None)


def set_mask(outputs: Any, mask: Any) -> None:
    """Put `mask` (one mask, or one per output) on the symbolic outputs that have none yet."""
    outs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    masks = mask if isinstance(mask, (list, tuple)) else [mask] * len(outs)
    for t, m in zip(outs, masks):
        if isinstance(t, KerasTensor) and m is not None and t._keras_mask is None:
            t._keras_mask = m


def check_mask(who: str, mask: Any, steps_shape: tuple) -> None:
    """A mask given to a layer must be `(batch, steps)` of the input's batch and steps."""
    shape = tuple(getattr(mask, "shape", ()))
    if shape[1:] != tuple(steps_shape[1:]) or len(shape) != len(steps_shape):
        raise ValueError(f"{who}: the mask has shape {shape}, but the input's (batch, timesteps) are "
                         f"{tuple(steps_shape)}: a mask must have one value per sample and step")


def embedding_mask(inputs: Any) -> Any:
    """Embedding(mask_zero=True): id 0 is padding."""
    from . import ops

    with deriving():
        return ops.not_equal(inputs, 0)


def masking_mask(inputs: Any, mask_value: float) -> Any:
    """Masking: a step counts where any feature differs from `mask_value`."""
    from . import ops

    with deriving():
        return ops.any(ops.not_equal(inputs, mask_value), axis=-1)


def merge_masks(inputs: List[Any], masks: List[Any]) -> Any:
    """Keras's Add, Subtract, Multiply, Average, Maximum, Minimum: a step counts where any input's mask keeps it;
    no mask if any input has none."""
    from . import ops

    if any(m is None for m in masks):
        return None
    with deriving():
        out = masks[0]
        for m in masks[1:]:
            out = ops.logical_or(out, m)
        return out


def concatenate_mask(inputs: List[Any], masks: List[Any], axis: int) -> Any:
    """Keras's Concatenate: each input's mask widened to its shape (all true for an input without one), joined
    along `axis`, then any over the last axis."""
    from . import ops

    if all(m is None for m in masks):
        return None
    with deriving():
        full = []
        for x, m in zip(inputs, masks):
            if m is None:
                full.append(ops.ones_like(x, dtype="bool"))
            elif len(m.shape) < len(x.shape):
                full.append(ops.logical_or(ops.expand_dims(m, axis=-1), ops.zeros_like(x, dtype="bool")))
            else:
                full.append(m)
        return ops.any(ops.concatenate(full, axis=axis), axis=-1)


def destroyed_warning(layer: Any) -> None:
    """Keras's warning when a layer without masking support is given a masked input."""
    warnings.warn(
        f"Layer '{layer.name}' (of type {type(layer).__name__}) was passed an input with a mask attached to it. "
        "However, this layer does not support masking and will therefore destroy the mask information. "
        "Downstream layers will not see the mask.", stacklevel=3)


def previous_mask(inputs: Any, mask: Optional[Any]) -> Any:
    """The mask a call sees: the `mask=` argument, else the one on the (first) input."""
    if mask is not None:
        return mask
    return mask_of(inputs)


def _masks_of(structure: Any) -> Any:
    """Keras's `tree.map_structure(get_keras_mask, x)`: the mask of every tensor, in the same structure."""
    if isinstance(structure, dict):
        return {k: _masks_of(v) for k, v in structure.items()}
    if isinstance(structure, (list, tuple)):
        return type(structure)(_masks_of(v) for v in structure)
    return getattr(structure, "_keras_mask", None)


def _is_tensor_argument(value: Any) -> bool:
    """A tensor, or a non-empty structure of tensors (and Nones), as Keras's `CallSpec` counts them."""
    from ._graph import flat_tensors

    if isinstance(value, KerasTensor):
        return True
    if isinstance(value, (list, tuple, dict)) and len(value) > 0:
        flat = flat_tensors(value)
        return all(t is None or isinstance(t, KerasTensor) for t in flat) and any(
            isinstance(t, KerasTensor) for t in flat)
    return False


def found_call_masks(layer: Any, inputs: Any, kwargs: dict) -> dict:
    """The mask arguments Keras's `Layer.__call__` fills in for a call (its step 6): with one tensor argument and
    a `mask` parameter not given, `mask` is the argument's mask (the same structure as the argument); with
    several tensor arguments, each `<name>_mask` parameter not given is the mask of the argument `<name>`.
    Only the ones that are not None are returned."""
    import inspect

    try:
        names = list(inspect.signature(layer.call).parameters)
    except (TypeError, ValueError):
        return {}
    first = names[0] if names else "inputs"
    tensor_args = {first: inputs} if _is_tensor_argument(inputs) else {}
    tensor_args.update({k: v for k, v in kwargs.items() if k != "training" and _is_tensor_argument(v)})
    found: dict = {}
    if len(tensor_args) == 1:
        if "mask" in names and kwargs.get("mask") is None:
            found["mask"] = _masks_of(next(iter(tensor_args.values())))
    else:
        for name, value in tensor_args.items():
            arg = f"{name}_mask"
            if arg in names and kwargs.get(arg) is None:
                found[arg] = _masks_of(value)
    return {k: v for k, v in found.items() if v is not None}
