"""``keras.ops.image``: image ops made of kerust's ``keras.ops`` (so they run eagerly on arrays and trace into
a model's graph, where the engine differentiates them). Keras's arguments, defaults and results (its JAX
backend, which the reference files come from):

- ``resize``: bilinear with half-pixel centres and no antialiasing (``jax.image.resize``'s triangle weights,
  renormalised at the borders) or nearest (``floor((i + 0.5) * in / out)``), as one weight matrix per axis;
  ``crop_to_aspect_ratio`` / ``pad_to_aspect_ratio`` as Keras computes the box.
- ``affine_transform``: output pixel (x, y) reads the input at ``((a0 x + a1 y + a2) / k, (b0 x + b1 y + b2) / k)``,
  ``k = c0 x + c1 y + 1``, sampled as ``scipy.ndimage.map_coordinates`` (order 0 or 1) with Keras's fill modes.
- ``crop_images`` / ``pad_images``: two of (before, after, target) per axis.

Images are ``(batch, height, width, channels)`` or one image ``(height, width, channels)``; ``data_format=
"channels_first"`` is read as ``(batch, channels, height, width)``.
"""

from __future__ import annotations

import itertools
from types import SimpleNamespace
from typing import Any, Callable, List, Optional, Tuple

import numpy as np

from . import ops

_RESIZE_INTERPOLATIONS = ("bilinear", "nearest", "lanczos3", "lanczos5", "bicubic", "area")
_SUPPORTED_RESIZE = ("bilinear", "nearest")
_AFFINE_INTERPOLATIONS = ("nearest", "bilinear")
_AFFINE_FILL_MODES = ("constant", "nearest", "wrap", "mirror", "reflect")


def _data_format(data_format: Optional[str]) -> str:
    if data_format is None:
        return "channels_last"
    value = str(data_format).lower()
    if value not in ("channels_last", "channels_first"):
        raise ValueError("The `data_format` argument must be one of {'channels_first', 'channels_last'}. "
                         f"Received: data_format={data_format}")
    return value


def _shape(x: Any) -> Tuple[Any, ...]:
    return tuple(ops.shape(x))


def _to_nhwc(images: Any, data_format: Optional[str], who: str) -> Tuple[Any, Callable[[Any], Any]]:
    """`images` as a (batch, height, width, channels) tensor, and the function that turns a result back into the
    caller's layout (unbatched and channels-first as given)."""
    fmt = _data_format(data_format)
    if not ops._any_symbolic([images]) and not isinstance(images, np.ndarray):
        images = ops.convert_to_tensor(images)
    rank = len(_shape(images))
    if rank not in (3, 4):
        raise ValueError(f"{who}: invalid images rank: expected rank 3 (single image) or rank 4 (batch of images). "
                         f"Received input with shape: images.shape={_shape(images)}")
    x = images
    if rank == 3:
        x = ops.expand_dims(x, 0)
    if fmt == "channels_first":
        x = ops.transpose(x, (0, 2, 3, 1))
    h, w = _shape(x)[1:3]
    if h is None or w is None:
        raise ValueError(f"{who}: kerust needs images of known height and width, received images.shape="
                         f"{_shape(images)}")

    def back(y: Any) -> Any:
        if fmt == "channels_first":
            y = ops.transpose(y, (0, 3, 1, 2))
        if rank == 3:
            y = ops.squeeze(y, 0)
        return y

    return x, back


def _as_float(x: Any) -> Any:
    return x if ops._dtype_of(x) in ("float16", "bfloat16", "float32") else ops.cast(x, "float32")


# ---- resize --------------------------------------------------------------------------------------------------------
def _bilinear_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of jax.image.resize's "linear" method without antialiasing."""
    scale = np.float32(n_out) / np.float32(n_in)
    inv = np.float32(1.0) / scale
    sample = (np.arange(n_out, dtype=np.float32) + np.float32(0.5)) * inv - np.float32(0.5)
    dist = np.abs(sample[:, None] - np.arange(n_in, dtype=np.float32)[None, :])
    w = np.maximum(np.float32(0), np.float32(1) - dist).astype(np.float32)
    total = w.sum(axis=1, keepdims=True)
    eps = np.finfo(np.float32).eps
    w = np.where(np.abs(total) > 1000 * eps, w / np.where(total != 0, total, 1), 0).astype(np.float32)
    inside = (sample >= -0.5) & (sample <= n_in - 0.5)
    return np.where(inside[:, None], w, 0).astype(np.float32)


def _nearest_weights(n_in: int, n_out: int) -> np.ndarray:
    offsets = (np.arange(n_out, dtype=np.float32) + np.float32(0.5)) * np.float32(n_in) / np.float32(n_out)
    idx = np.clip(np.floor(offsets).astype(np.int64), 0, n_in - 1)
    w = np.zeros((n_out, n_in), dtype=np.float32)
    w[np.arange(n_out), idx] = 1.0
    return w


def _resize_axes(x: Any, height: int, width: int, interpolation: str) -> Any:
    """`x` (batch, h, w, c) resized to (batch, height, width, c) by one weight matrix per axis."""
    h, w = (int(d) for d in _shape(x)[1:3])
    make = _bilinear_weights if interpolation == "bilinear" else _nearest_weights
    if h != height:
        x = ops.einsum("oh,bhwc->bowc", make(h, height), x)
    if w != width:
        x = ops.einsum("pw,bhwc->bhpc", make(w, width), x)
    return x


def _crop_box(height: int, width: int, target_h: int, target_w: int) -> Tuple[int, int, int, int]:
    """Keras's largest centred window of the target's aspect ratio: (top, left, crop height, crop width)."""
    crop_h = max(min(height, int(float(width * target_h) / target_w)), 1)
    crop_w = max(min(width, int(float(height * target_w) / target_h)), 1)
    return int(float(height - crop_h) / 2), int(float(width - crop_w) / 2), crop_h, crop_w


def _check_size(size: Any, who: str) -> Tuple[int, int]:
    if not isinstance(size, (list, tuple)) or len(size) != 2:
        raise ValueError(f"{who}: argument `size` must be a tuple of two elements (height, width). Received: "
                         f"size={size}")
    out = []
    for d in size:
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d <= 0:
            raise ValueError(f"{who}: `size` must be two positive integers (height, width). Received: size={size}")
        out.append(int(d))
    return out[0], out[1]


def check_resize_args(who: str, interpolation: Any, antialias: Any, crop_to_aspect_ratio: Any,
                      pad_to_aspect_ratio: Any, fill_mode: Any) -> None:
    """Keras's checks of resize's arguments (and the ones kerust does not implement)."""
    if interpolation not in _RESIZE_INTERPOLATIONS:
        raise ValueError(f"{who}: invalid value for argument `interpolation`. Expected of one "
                         f"{set(_RESIZE_INTERPOLATIONS)}. Received: interpolation={interpolation}")
    if interpolation not in _SUPPORTED_RESIZE:
        raise ValueError(f"{who}: interpolation={interpolation!r} is not supported by kerust yet (it has "
                         f"{', '.join(repr(i) for i in _SUPPORTED_RESIZE)})")
    if antialias:
        raise ValueError(f"{who}: `antialias=True` is not supported by kerust yet")
    if fill_mode != "constant":
        raise ValueError(f"{who}: invalid value for argument `fill_mode`. Only `'constant'` is supported. "
                         f"Received: fill_mode={fill_mode}")
    if pad_to_aspect_ratio and crop_to_aspect_ratio:
        raise ValueError(f"{who}: only one of `pad_to_aspect_ratio` & `crop_to_aspect_ratio` can be `True`.")


def _resize_nhwc(x: Any, height: int, width: int, interpolation: str, crop_to_aspect_ratio: bool,
                 pad_to_aspect_ratio: bool, fill_value: float) -> Any:
    h, w = (int(d) for d in _shape(x)[1:3])
    if crop_to_aspect_ratio:
        top, left, ch, cw = _crop_box(h, w, height, width)
        if (ch, cw) != (h, w):
            x = x[:, top:top + ch, left:left + cw, :]
    elif pad_to_aspect_ratio:
        pad_h = max(h, int(float(w * height) / width))
        pad_w = max(w, int(float(h * width) / height))
        top = int(float(pad_h - h) / 2)
        left = int(float(pad_w - w) / 2)
        if top > 0:  # Keras pads the same amount on both sides
            x = ops.pad(x, [[0, 0], [top, top], [0, 0], [0, 0]], constant_values=float(fill_value))
        elif left > 0:
            x = ops.pad(x, [[0, 0], [0, 0], [left, left], [0, 0]], constant_values=float(fill_value))
    return _resize_axes(x, height, width, interpolation)


def resize(images: Any, size: Any, interpolation: str = "bilinear", antialias: bool = False,
           crop_to_aspect_ratio: bool = False, pad_to_aspect_ratio: bool = False, fill_mode: str = "constant",
           fill_value: float = 0.0, data_format: Optional[str] = None) -> Any:
    """Images resized to `size` = (height, width) (bilinear or nearest)."""
    who = "keras.ops.image.resize"
    check_resize_args(who, interpolation, antialias, crop_to_aspect_ratio, pad_to_aspect_ratio, fill_mode)
    height, width = _check_size(size, who)
    x, back = _to_nhwc(images, data_format, who)
    return back(_resize_nhwc(_as_float(x), height, width, interpolation, bool(crop_to_aspect_ratio),
                             bool(pad_to_aspect_ratio), float(fill_value)))


# ---- affine_transform ----------------------------------------------------------------------------------------------
def _fix_index(i: Any, size: int, mode: str) -> Any:
    """Keras's (scipy.ndimage's) index for coordinate `i` outside [0, size) under `fill_mode`."""
    if mode in ("constant", "nearest"):
        return ops.clip(i, 0, size - 1)
    if mode == "wrap":
        return ops.mod(i, float(size))
    if size == 1:
        return ops.zeros_like(i)
    if mode == "mirror":
        s = float(size - 1)
        return ops.abs(ops.subtract(ops.mod(ops.add(i, s), 2 * s), s))
    # reflect: the edge pixel repeats (d c b a | a b c d | d c b a)
    s2 = float(2 * size)
    m = ops.abs(ops.subtract(ops.mod(ops.add(ops.multiply(i, 2.0), 1.0 + s2), 2 * s2), s2))
    return ops.floor_divide(ops.subtract(m, 1.0), 2.0)


def _round_half_away(v: Any) -> Any:
    return ops.multiply(ops.sign(v), ops.floor(ops.add(ops.abs(v), 0.5)))


def affine_transform_nhwc(x: Any, transform: Any, interpolation: str, fill_mode: str, fill_value: float,
                          projective: bool = True) -> Any:
    """`x` (batch, h, w, c) under `transform` (batch or 1, 8); `projective=False`: c0 = c1 = 0 is known (no
    division by k)."""
    h, w, c = (int(d) for d in _shape(x)[1:4])
    yy, xx = np.meshgrid(np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32), indexing="ij")
    xs = xx.reshape(1, h * w)
    ys = yy.reshape(1, h * w)
    t = [transform[:, i:i + 1] for i in range(8)]
    x_in = ops.add(ops.add(ops.multiply(t[0], xs), ops.multiply(t[1], ys)), t[2])
    y_in = ops.add(ops.add(ops.multiply(t[3], xs), ops.multiply(t[4], ys)), t[5])
    if projective:
        k = ops.add(ops.add(ops.multiply(t[6], xs), ops.multiply(t[7], ys)), 1.0)
        x_in, y_in = ops.divide(x_in, k), ops.divide(y_in, k)
    flat = ops.reshape(x, (-1, h * w, c))
    # per axis: the sampled coordinates and their weights (one for nearest, two for bilinear), each coordinate's
    # index under `fill_mode` and, for "constant", whether it lies inside the image (1.0) or not (0.0)
    axes = []
    for coord, size in ((y_in, h), (x_in, w)):
        if interpolation == "nearest":
            nodes: List[Tuple[Any, Any]] = [(_round_half_away(coord), None)]
        else:
            lower = ops.floor(coord)
            upper_w = ops.subtract(coord, lower)
            nodes = [(lower, ops.subtract(1.0, upper_w)), (ops.add(lower, 1.0), upper_w)]
        fixed = []
        for i, weight in nodes:
            inside = None
            if fill_mode == "constant":
                inside = ops.cast(ops.logical_and(ops.greater_equal(i, 0.0), ops.less(i, float(size))), "float32")
            fixed.append((_fix_index(i, size, fill_mode), weight, inside))
        axes.append(fixed)
    out = None
    outside = None  # the weight of the corners outside the image, which read `fill_value`
    for (fy, wy, vy), (fx, wx, vx) in itertools.product(*axes):
        idx = ops.cast(ops.add(ops.multiply(fy, float(w)), fx), "int32")
        value = ops.take_along_axis(flat, ops.expand_dims(idx, -1), axis=1)
        weight = None if wy is None else ops.multiply(wy, wx)
        if vy is not None:
            valid = ops.multiply(vy, vx)
            gone = ops.subtract(1.0, valid) if weight is None else ops.multiply(weight, ops.subtract(1.0, valid))
            outside = gone if outside is None else ops.add(outside, gone)
            weight = valid if weight is None else ops.multiply(weight, valid)
        term = value if weight is None else ops.multiply(ops.expand_dims(weight, -1), value)
        out = term if out is None else ops.add(out, term)
    if outside is not None and fill_value != 0:
        out = ops.add(out, ops.expand_dims(ops.multiply(outside, float(fill_value)), -1))
    return ops.reshape(out, (-1, h, w, c))


def check_affine_args(who: str, interpolation: Any, fill_mode: Any, fill_modes: Tuple[str, ...] = _AFFINE_FILL_MODES
                      ) -> None:
    if interpolation not in _AFFINE_INTERPOLATIONS:
        raise ValueError(f"{who}: invalid value for argument `interpolation`. Expected of one "
                         f"{set(_AFFINE_INTERPOLATIONS)}. Received: interpolation={interpolation}")
    if fill_mode not in fill_modes:
        raise ValueError(f"{who}: invalid value for argument `fill_mode`. Expected of one {set(fill_modes)}. "
                         f"Received: fill_mode={fill_mode}")


def affine_transform(images: Any, transform: Any, interpolation: str = "bilinear", fill_mode: str = "constant",
                     fill_value: float = 0, data_format: Optional[str] = None) -> Any:
    """Images under projective transforms `transform` ((8,) or (batch, 8) rows `[a0, a1, a2, b0, b1, b2, c0, c1]`
    mapping each output point to the input point it reads)."""
    who = "keras.ops.image.affine_transform"
    check_affine_args(who, interpolation, fill_mode)
    x, back = _to_nhwc(images, data_format, who)
    if not ops._any_symbolic([transform]) and not isinstance(transform, np.ndarray):
        transform = np.asarray(transform, dtype=np.float32)
    t_shape = _shape(transform)
    if len(t_shape) not in (1, 2) or t_shape[-1] != 8:
        raise ValueError(f"{who}: invalid transform rank: expected rank 1 (single transform) or rank 2 (batch of "
                         f"transforms) of 8 values. Received input with shape: transform.shape={t_shape}")
    if len(t_shape) == 1:
        transform = ops.expand_dims(transform, 0)
    return back(affine_transform_nhwc(_as_float(x), _as_float(transform), interpolation, fill_mode,
                                      float(fill_value)))


# ---- crop_images / pad_images --------------------------------------------------------------------------------------
def _two_of(who: str, before: Any, after: Any, target: Any, size: int, names: Tuple[str, str, str]
            ) -> Tuple[int, int, int]:
    if [before, after, target].count(None) != 1:
        raise ValueError(f"{who}: must specify exactly two of {', '.join(names)}. Received: "
                         f"{names[0]}={before}, {names[1]}={after}, {names[2]}={target}")
    for name, v in zip(names, (before, after, target)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0):
            raise ValueError(f"{who}: {name} must be >= 0. Received: {name}={v}")
    return before, after, target


def crop_images(images: Any, top_cropping: Optional[int] = None, left_cropping: Optional[int] = None,
                bottom_cropping: Optional[int] = None, right_cropping: Optional[int] = None,
                target_height: Optional[int] = None, target_width: Optional[int] = None,
                data_format: Optional[str] = None) -> Any:
    """Images cropped to a box: give two of (top_cropping, bottom_cropping, target_height) and two of
    (left_cropping, right_cropping, target_width)."""
    who = "keras.ops.image.crop_images"
    x, back = _to_nhwc(images, data_format, who)
    h, w = (int(d) for d in _shape(x)[1:3])
    top, bottom, th = _two_of(who, top_cropping, bottom_cropping, target_height, h,
                              ("top_cropping", "bottom_cropping", "target_height"))
    left, right, tw = _two_of(who, left_cropping, right_cropping, target_width, w,
                              ("left_cropping", "right_cropping", "target_width"))
    top = h - th - bottom if top is None else top
    th = h - top - bottom if th is None else th
    left = w - tw - right if left is None else left
    tw = w - left - right if tw is None else tw
    for name, v in (("top_cropping", top), ("target_height", th), ("left_cropping", left), ("target_width", tw)):
        if v < 0:
            raise ValueError(f"{who}: {name} must be >= 0. Received: {name}={v}")
    if top + th > h or left + tw > w:
        raise ValueError(f"{who}: the crop box (top {top}, height {th}, left {left}, width {tw}) does not fit in "
                         f"images of height {h} and width {w}")
    return back(x[:, top:top + th, left:left + tw, :])


def pad_images(images: Any, top_padding: Optional[int] = None, left_padding: Optional[int] = None,
               bottom_padding: Optional[int] = None, right_padding: Optional[int] = None,
               target_height: Optional[int] = None, target_width: Optional[int] = None,
               data_format: Optional[str] = None) -> Any:
    """Images padded with zeros: give two of (top_padding, bottom_padding, target_height) and two of
    (left_padding, right_padding, target_width)."""
    who = "keras.ops.image.pad_images"
    x, back = _to_nhwc(images, data_format, who)
    h, w = (int(d) for d in _shape(x)[1:3])
    top, bottom, th = _two_of(who, top_padding, bottom_padding, target_height, h,
                              ("top_padding", "bottom_padding", "target_height"))
    left, right, tw = _two_of(who, left_padding, right_padding, target_width, w,
                              ("left_padding", "right_padding", "target_width"))
    top = th - bottom - h if top is None else top
    bottom = th - top - h if bottom is None else bottom
    left = tw - right - w if left is None else left
    right = tw - left - w if right is None else right
    for name, v in (("top_padding", top), ("left_padding", left), ("right_padding", right),
                    ("bottom_padding", bottom)):
        if v < 0:
            raise ValueError(f"{who}: {name} must be >= 0. Received: {name}={v}")
    return back(ops.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]]))


image = SimpleNamespace(resize=resize, affine_transform=affine_transform, crop_images=crop_images,
                        pad_images=pad_images)
