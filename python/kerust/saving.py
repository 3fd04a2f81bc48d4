"""Keras v3 files: ``.keras`` archives and ``.weights.h5`` weight files, read and written in Keras's own layout.

A ``.keras`` file is a zip holding ``metadata.json``, ``config.json`` (the model's ``serialize_keras_object``
form) and ``model.weights.h5``. In the HDF5 file every layer of a Sequential model keeps its variables under
``layers/<snake_case(class name)>[_<n>]/vars/<i>`` (``dense``, ``dense_1``, ... counted per class, in layer
order; the layer's own name is only the ``name`` attribute of its ``vars`` group), the model itself has an
empty ``vars`` group, and a compiled Keras model adds ``optimizer/vars/<i>``.

Loading trusts nothing in the file: layers are built only from kerust's whitelist of classes (nothing named in
the file is imported or evaluated), archive members are size-checked before they are read, every weight's
shape is checked against the model before any weight is read, and a model whose configuration would need an
absurd amount of memory is refused before the engine allocates it. Problems raise ``ValueError`` (or
``OSError`` for a file that cannot be opened) naming the file. Writes go to a temporary file beside the
target, are fsynced and then renamed over it.
"""

from __future__ import annotations

# A damaged or hostile file is a bad *value*: everything this module finds wrong in a file is a ValueError
# (callers catch ValueError/OSError), even where the fault is a JSON value of the wrong type.
# ruff: noqa: TRY004
import contextlib
import datetime
import io
import json
import os
import re
import stat
import warnings
import zipfile
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import layers as layers_module
from . import losses as losses_module
from . import metrics as metrics_module
from . import optimizers as optimizers_module
from ._files import atomic_write as _atomic_write
from ._inspect import weight_names as _weight_names
from ._registry import get_registered_name, get_registered_object, register_keras_serializable

__all__ = ["get_registered_name", "get_registered_object", "keras_config", "load_model", "load_weights",
           "register_keras_serializable", "save_model", "save_weights"]

# The Keras release whose file layout this module writes (checked against files Keras 3.15.1 wrote); kerust's
# own version goes beside it in metadata.json as "kerust_version".
KERAS_FORMAT_VERSION = "3.15.1"

_CONFIG = "config.json"
_METADATA = "metadata.json"
_WEIGHTS = "model.weights.h5"

# limits on what a file may make us read or allocate
_MAX_MEMBER_BYTES = 1 << 30  # one archive member, uncompressed
_MAX_READ_BYTES = 1 << 30  # all the members we read, together
_MAX_RATIO = 1000  # uncompressed / compressed size of one member
_MAX_MEMBERS = 10_000
_MAX_JSON_BYTES = 64 << 20
_MAX_LAYERS = 10_000
_MAX_H5_CHILDREN = 100_000

_DTYPE_POLICY = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"},
                 "registered_name": None}
_OPTIMIZER_COMMON = ("weight_decay", "clipnorm", "global_clipnorm", "clipvalue")
_OPTIMIZER_KERAS_DEFAULTS = {"use_ema": False, "ema_momentum": 0.99, "ema_overwrite_frequency": None,
                             "loss_scale_factor": None, "gradient_accumulation_steps": None}


# ---- small helpers --------------------------------------------------------------------------------------------
def _h5py() -> Any:
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - h5py is a test dependency
        raise ImportError("Reading and writing Keras files needs h5py: `pip install h5py` "
                          "(or `pip install kerust[h5]`).") from exc
    return h5py


def _fspath(filepath: Any) -> str:
    if isinstance(filepath, bytes):
        filepath = os.fsdecode(filepath)
    if not isinstance(filepath, (str, os.PathLike)):
        raise TypeError(f"filepath must be a path (str or os.PathLike), received {type(filepath).__name__}")
    return os.fspath(filepath)


def to_snake_case(name: str) -> str:
    """Keras's ``naming.to_snake_case`` (names the per-layer groups of the weights file)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _keras_paths(class_names: Sequence[str]) -> list[str]:
    """``layers/<name>`` for each layer, numbered per class as Keras's ``_save_container_state`` does."""
    used: dict[str, int] = {}
    paths = []
    for class_name in class_names:
        name = to_snake_case(class_name)
        if name in used:
            used[name] += 1
            name = f"{name}_{used[name]}"
        else:
            used[name] = 0
        paths.append(name)
    return paths


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _shape_str(shape: Sequence[Any]) -> str:
    return str(tuple(int(d) for d in shape))


def _weight_label(names: list[str], i: int) -> str:
    return f"weight {i} ({names[i]})" if i < len(names) else f"weight {i}"


class _LayerSpec:
    """One model layer as the weights file sees it."""

    def __init__(self, layer: Any, path: str, shapes: list[tuple[int, ...]]) -> None:
        self.layer = layer
        self.path = path
        self.shapes = shapes
        self.names = _weight_names(layer)

    @property
    def who(self) -> str:
        return f"layer '{self.layer.name}' ({self.layer.class_name})"


# ---- atomic writes: kerust._files (shared with the callbacks that write files) ---------------------------


# ---- reading archives -----------------------------------------------------------------------------------------
def _check_file(path: str) -> int:
    """Size of the regular file ``path``; a missing file is an OSError, an empty one a ValueError."""
    st = os.stat(path)  # FileNotFoundError names the file
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"Cannot load '{path}': not a regular file")
    if st.st_size == 0:
        raise ValueError(f"Cannot load '{path}': the file is empty (0 bytes)")
    return int(st.st_size)


def _bad_member_name(name: str) -> str | None:
    if not name or len(name) > 1024:
        return "empty or overlong name"
    if "\x00" in name or "\\" in name:
        return "NUL or backslash in name"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    if any(part == ".." for part in name.split("/")):
        return "'..' in path"
    return None


class _Archive:
    """A validated ``.keras`` zip: member names and sizes checked before anything is decompressed."""

    def __init__(self, path: str) -> None:
        self.path = path
        _check_file(path)
        try:
            self.zf = zipfile.ZipFile(path, "r")
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, NotImplementedError) as exc:
            raise ValueError(f"Cannot load '{path}': not a valid .keras file (a .keras file is a zip "
                             f"archive; this one cannot be read as a zip: {exc})") from exc
        try:
            self._validate()
        except BaseException:
            self.zf.close()
            raise
        self._read_total = 0

    def error(self, message: str) -> ValueError:
        return ValueError(f"Cannot load '{self.path}': {message}")

    def _validate(self) -> None:
        infos = self.zf.infolist()
        if len(infos) > _MAX_MEMBERS:
            raise self.error(f"the archive has {len(infos)} members (at most {_MAX_MEMBERS} allowed)")
        seen = set()
        self.members: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            name = info.filename
            why = _bad_member_name(name)
            if why is not None:
                raise self.error(f"unsafe member name {name!r} in the archive ({why})")
            if name in seen:
                raise self.error(f"the archive holds member {name!r} twice")
            seen.add(name)
            if info.flag_bits & 0x1:
                raise self.error(f"member {name!r} is encrypted")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise self.error(f"member {name!r} uses zip compression method {info.compress_type} "
                                 "(only stored and deflated are accepted)")
            if info.file_size > _MAX_MEMBER_BYTES:
                raise self.error(f"member {name!r} would uncompress to {info.file_size} bytes (more than the "
                                 f"{_MAX_MEMBER_BYTES} allowed)")
            if info.file_size > 0 and info.file_size / max(info.compress_size, 1) > _MAX_RATIO:
                raise self.error(f"member {name!r} has a compression ratio of "
                                 f"{info.file_size / max(info.compress_size, 1):.0f} (more than {_MAX_RATIO}): "
                                 "refusing a possible zip bomb")
            self.members[name] = info

    def has(self, name: str) -> bool:
        return name in self.members

    def read(self, name: str, limit: int = _MAX_MEMBER_BYTES) -> bytes:
        info = self.members.get(name)
        if info is None:
            raise self.error(f"the archive has no {name!r} (members: {sorted(self.members)[:10]})")
        if info.file_size > limit:
            raise self.error(f"{name!r} is {info.file_size} bytes (at most {limit} allowed)")
        if self._read_total + info.file_size > _MAX_READ_BYTES:
            raise self.error(f"the archive's members add up to more than {_MAX_READ_BYTES} bytes")
        out = bytearray()
        try:
            with self.zf.open(info, "r") as f:
                while True:
                    chunk = f.read(1 << 20)
                    if not chunk:
                        break
                    out += chunk
                    if len(out) > info.file_size:
                        raise self.error(f"{name!r} uncompresses to more than its declared size")
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, OSError) as exc:
            raise self.error(f"{name!r} is corrupt or truncated ({exc})") from exc
        if len(out) != info.file_size:
            raise self.error(f"{name!r} is truncated ({len(out)} of {info.file_size} bytes)")
        self._read_total += len(out)
        return bytes(out)

    def read_json(self, name: str) -> Any:
        raw = self.read(name, _MAX_JSON_BYTES)
        return _parse_json(raw, f"'{self.path}' ({name})")

    def close(self) -> None:
        self.zf.close()


def _reject_constant(token: str) -> Any:
    raise ValueError(f"non-standard JSON number {token}")


def _parse_json(raw: bytes, where: str) -> Any:
    try:
        text = raw.decode("utf-8")
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError as exc:
        raise ValueError(f"Cannot load {where}: JSON nested too deeply") from exc
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ValueError(f"Cannot load {where}: invalid JSON ({exc})") from exc


# ---- the HDF5 weights ----------------------------------------------------------------------------------------
# What a malformed HDF5 file may make libhdf5 allocate while we walk it (in a probe child, see _probe_h5).
_PROBE_MEMORY_BYTES = 1 << 30
_PROBE_SECONDS = 60


def _walk_h5(source: Any) -> None:
    """Touch every link, object, shape and attribute: what loading will do to the file's structure."""
    h5py = _h5py()
    with h5py.File(source, "r") as f:
        def visit(name: str, obj: Any) -> None:
            list(obj.attrs.keys())
            if isinstance(obj, h5py.Dataset):
                _ = (obj.shape, obj.dtype)

        list(f.attrs.keys())
        f.visititems(visit)


def _probe_h5(source: Any, where: str) -> None:
    """Walk the HDF5 structure in a forked child under a memory and time limit first: a crafted file can make
    libhdf5 itself allocate without bound while listing a group, which no check in this process could stop.
    Where fork is unavailable (not POSIX) the walk is skipped."""
    if not hasattr(os, "fork") or not hasattr(os, "waitpid"):
        return
    import resource
    import signal

    pid = os.fork()
    if pid == 0:  # child: never returns
        code = 1
        try:
            with open("/proc/self/statm") as fh:
                vm = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
            resource.setrlimit(resource.RLIMIT_AS, (vm + _PROBE_MEMORY_BYTES, vm + _PROBE_MEMORY_BYTES))
            signal.alarm(_PROBE_SECONDS)
            _walk_h5(source)
            code = 0
        except BaseException:  # noqa: B036 - any failure in the child is a verdict on the file
            code = 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
        raise ValueError(f"Cannot load {where}: the HDF5 structure is malformed (walking it failed or needed more "
                         f"than {_PROBE_MEMORY_BYTES >> 20} MiB or {_PROBE_SECONDS} s)")


def _open_h5_bytes(data: bytes, where: str) -> Any:
    h5py = _h5py()
    _probe_h5(io.BytesIO(data), where)
    try:
        return h5py.File(io.BytesIO(data), "r")
    except (OSError, ValueError, RuntimeError) as exc:
        raise ValueError(f"Cannot load {where}: not a valid HDF5 file ({exc})") from exc


def _open_h5_path(path: str) -> Any:
    h5py = _h5py()
    _check_file(path)
    _probe_h5(path, f"'{path}'")
    try:
        return h5py.File(path, "r")
    except (OSError, ValueError, RuntimeError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(f"Cannot load '{path}': not a valid HDF5 weights file ({exc})") from exc


def _child(group: Any, name: str, where: str) -> Any:
    """``group[name]`` if it exists as a plain (hard-linked) object, else None; links elsewhere are refused."""
    h5py = _h5py()
    try:
        link = group.get(name, getlink=True)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise ValueError(f"Cannot load {where}: cannot read '{group.name}/{name}' ({exc})") from exc
    if link is None:
        return None
    if not isinstance(link, h5py.HardLink):
        raise ValueError(f"Cannot load {where}: '{group.name}/{name}' is a {type(link).__name__} (links to "
                         "other objects or files are not accepted)")
    try:
        return group[name]
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise ValueError(f"Cannot load {where}: cannot read '{group.name}/{name}' ({exc})") from exc


def _keys(group: Any, where: str) -> list[str]:
    try:
        n = len(group)
        if n > _MAX_H5_CHILDREN:
            raise ValueError(f"Cannot load {where}: '{group.name}' has {n} entries")
        return list(group.keys())
    except (OSError, RuntimeError) as exc:
        raise ValueError(f"Cannot load {where}: cannot list '{group.name}' ({exc})") from exc


def _count_datasets(group: Any, where: str, depth: int = 0) -> int:
    """Datasets below ``group`` (groups nest at most a few levels in a weights file)."""
    h5py = _h5py()
    if depth > 8:
        raise ValueError(f"Cannot load {where}: '{group.name}' nests groups too deeply")
    total = 0
    for key in _keys(group, where):
        obj = _child(group, key, where)
        if isinstance(obj, h5py.Dataset):
            total += 1
        elif isinstance(obj, h5py.Group):
            total += _count_datasets(obj, where, depth + 1)
    return total


def _layers_root(f: Any, where: str) -> Any:
    h5py = _h5py()
    try:  # a damaged file fails here first, with h5py's RuntimeError/KeyError
        root_attrs = set(f.attrs.keys()) if hasattr(f, "attrs") else set()
        legacy = "layer_names" in root_attrs or "model_weights" in f
    except (OSError, RuntimeError, KeyError, ValueError) as exc:
        raise ValueError(f"Cannot load {where}: cannot read the file's root group ({exc})") from exc
    if legacy:
        raise ValueError(f"Cannot load {where}: this is a legacy Keras 2 HDF5 file (`.h5`), which kerust does "
                         "not read; re-save it with Keras 3 as `.keras` or `.weights.h5`")
    for name in ("layers", "_layer_checkpoint_dependencies"):  # the second: files of TF-Keras 2.13
        obj = _child(f, name, where)
        if obj is not None:
            if not isinstance(obj, h5py.Group):
                raise ValueError(f"Cannot load {where}: '/{name}' is not a group")
            return obj
    return None


def _plan_weights(f: Any, specs: list[_LayerSpec], where: str, nested: set | None = None) -> list[Any]:
    """Check the file against the model (structure, shapes, dtypes) without reading any weight; returns the
    datasets in model order. `nested`: the paths of nested models (their groups hold layers, not weights)."""
    nested = nested or set()
    h5py = _h5py()
    root = _layers_root(f, where)
    wanted = sum(len(s.shapes) for s in specs)
    if root is None:
        if wanted:
            raise ValueError(f"Cannot load {where}: the file has no 'layers' group, but the model has {wanted} "
                             "weights to load")
        return []
    datasets: list[Any] = []
    claimed = set()
    for spec in specs:
        claimed.add(spec.path)
        holder = _child(root, spec.path, where)
        vars_group = None
        if holder is not None:
            if not isinstance(holder, h5py.Group):
                raise ValueError(f"Cannot load {where}: 'layers/{spec.path}' is not a group")
            vars_group = _child(holder, "vars", where)
            if vars_group is not None and not isinstance(vars_group, h5py.Group):
                raise ValueError(f"Cannot load {where}: 'layers/{spec.path}/vars' is not a group")
            extra = [k for k in _keys(holder, where) if k != "vars"]
            if extra and _count_datasets(holder, where) > (len(vars_group) if vars_group is not None else 0):
                raise ValueError(f"Cannot load {where}: {spec.who} at 'layers/{spec.path}' holds nested "
                                 f"weights ({extra}) that kerust's layer does not have")
        keys = _keys(vars_group, where) if vars_group is not None else []
        if len(keys) != len(spec.shapes):
            raise ValueError(
                f"Cannot load {where}: {spec.who} expects {len(spec.shapes)} weights "
                f"{spec.names or ''} with shapes {[_shape_str(s) for s in spec.shapes]}, but the file has "
                f"{len(keys)} under 'layers/{spec.path}/vars' (does the file come from the same architecture?)")
        for i, shape in enumerate(spec.shapes):
            label = _weight_label(spec.names, i)
            ds = _child(vars_group, str(i), where)
            if not isinstance(ds, h5py.Dataset):
                raise ValueError(f"Cannot load {where}: {spec.who}: 'layers/{spec.path}/vars/{i}' is missing "
                                 "or not a dataset")
            if ds.is_virtual or ds.external:
                raise ValueError(f"Cannot load {where}: {spec.who}: {label} is stored outside the file "
                                 "(external or virtual datasets are not accepted)")
            if tuple(ds.shape or ()) != tuple(shape):
                raise ValueError(
                    f"Cannot load {where}: {spec.who}: {label} has shape {_shape_str(ds.shape or ())} in the "
                    f"file ('layers/{spec.path}/vars/{i}'), but the model expects {_shape_str(shape)}")
            if ds.dtype.kind != "f" or ds.dtype.itemsize not in (2, 4, 8):
                dtype = ds.attrs.get("dtype", ds.dtype)
                raise ValueError(f"Cannot load {where}: {spec.who}: {label} has dtype {dtype} (kerust reads "
                                 "float16/32/64 weights)")
            datasets.append(ds)
    _check_unclaimed(root, "", claimed, nested, specs, where)
    return datasets


def _check_unclaimed(group: Any, prefix: str, claimed: set, nested: set, specs: list[_LayerSpec],
                     where: str) -> None:
    """Refuse weights in the file that no layer of the model takes (nested models' groups included)."""
    h5py = _h5py()
    for key in _keys(group, where):
        path = prefix + key
        obj = _child(group, key, where)
        if path in nested and isinstance(obj, h5py.Group):
            inner = _child(obj, "layers", where)
            if isinstance(inner, h5py.Group):
                _check_unclaimed(inner, f"{path}/layers/", claimed, nested, specs, where)
            continue
        if path in claimed:
            continue
        if isinstance(obj, h5py.Dataset) or (isinstance(obj, h5py.Group) and _count_datasets(obj, where)):
            raise ValueError(f"Cannot load {where}: the file holds weights under 'layers/{path}', which matches "
                             f"no layer of this model (its weighted layers map to "
                             f"{[s.path for s in specs if s.shapes]}); is it the same architecture?")


def _read_datasets(datasets: list[Any], where: str) -> list[np.ndarray]:
    arrays = []
    for ds in datasets:
        try:
            arr = np.asarray(ds.astype("float32")[()], dtype=np.float32)
        except (OSError, ValueError, RuntimeError, TypeError) as exc:
            raise ValueError(f"Cannot load {where}: cannot read '{ds.name}' ({exc})") from exc
        arrays.append(np.ascontiguousarray(arr).reshape(ds.shape))
    return arrays


def _write_weights(f: Any, model: Any) -> None:
    """Keras's layout: ``vars`` for the model, ``layers/<path>/vars/<i>`` per layer (see the module doc)."""
    from .models import Model

    root_vars = f.create_group("vars")
    root_vars.attrs["name"] = model.name
    layers_group = f.create_group("layers")
    weights = model.get_weights()
    written: set = set()
    for path, layer in _weight_tree(model):
        holder = layers_group.create_group(path)
        group = holder.create_group("vars")
        group.attrs["name"] = layer.name
        if isinstance(layer, Model):
            holder.create_group("layers")
            continue
        if model._core is None or getattr(layer, "_is_input_layer", False) or id(layer) in written:
            continue
        written.add(id(layer))
        first, n = model._weight_slot_of(layer)
        for i in range(n):
            group.create_dataset(str(i), data=np.ascontiguousarray(weights[first + i], dtype=np.float32))
    _write_optimizer(f, model)


# Keras creates optimizer slots through `add_optimizer_variables` calls: the names of one call are interleaved
# per variable (Adam: m0, v0, m1, v1, ...) and the calls follow each other (RMSprop: all velocities, then all
# momentums). Variable 0 is `iterations` (int64) and 1 the learning rate (float32). Checked on Keras 3.15.1 files.
_SLOT_GROUPS = {
    "adam": (("momentum", "velocity"), ("velocity_hat",)),
    "adamw": (("momentum", "velocity"), ("velocity_hat",)),
    "sgd": (("momentum",),),
    "rmsprop": (("velocity",), ("momentum",), ("average_gradient",)),
    "adagrad": (("accumulator",),),
    "adadelta": (("accumulated_grad", "accumulated_delta_var"),),
    "adamax": (("m", "norm"),),
    "nadam": (("momentum", "velocity"),),  # and, last, the scalar u_product (see _EXTRA_SCALARS)
}
# Optimizer variables Keras stores after the slots, by optimizer: one float32 scalar each.
_EXTRA_SCALARS = {"nadam": ("nadam_u_product",)}


def _slot_layout(model: Any) -> tuple[int, list[str], list[list[np.ndarray]], list[tuple[int, int]]]:
    """(iterations, slot names, slots per trainable weight, file order as (weight index, slot index))."""
    iterations, names, slots = model._core.get_optimizer_state()
    groups = _SLOT_GROUPS.get(type(model.optimizer).__name__.lower())
    if groups is None:
        raise ValueError(f"kerust cannot map {type(model.optimizer).__name__}'s state to Keras's file layout")
    order = []
    for group in groups:
        present = [names.index(n) for n in group if n in names]
        order += [(i, j) for i in range(len(slots)) for j in present]
    return int(iterations), list(names), slots, order


def _write_optimizer(f: Any, model: Any) -> None:
    if model._core is None or not model.compiled:
        return
    iterations, _, slots, order = _slot_layout(model)
    group = f.create_group("optimizer").create_group("vars")
    group.attrs["name"] = model.optimizer.name
    head = _head_count(model)
    group.create_dataset("0", data=np.int64(iterations))
    if head == 2:
        group.create_dataset("1", data=np.float32(model.optimizer.learning_rate))
    for k, (i, j) in enumerate(order):
        group.create_dataset(str(head + k), data=slots[i][j])
    for k, attr in enumerate(_EXTRA_SCALARS.get(type(model.optimizer).__name__.lower(), ())):
        group.create_dataset(str(head + len(order) + k), data=np.float32(getattr(model._core, attr)))


def _restore_optimizer(f: Any, model: Any, where: str) -> bool:
    """Load Keras's `optimizer/vars` into the compiled model's engine; every entry is checked first."""
    h5py = _h5py()
    opt = _child(f, "optimizer", where)
    if opt is None:
        return False
    variables = _child(opt, "vars", where) if isinstance(opt, h5py.Group) else None
    if not isinstance(variables, h5py.Group):
        raise ValueError(f"Cannot load {where}: 'optimizer' has no 'vars' group")
    _, names, slots, order = _slot_layout(model)
    head = _head_count(model)
    extras = _EXTRA_SCALARS.get(type(model.optimizer).__name__.lower(), ())
    total = head + len(order) + len(extras)
    keys = _keys(variables, where)
    if len(keys) != total:
        raise ValueError(
            f"Cannot load {where}: the file holds {len(keys)} optimizer variables, but "
            f"{type(model.optimizer).__name__} on this model needs {total} (iterations"
            f"{', learning rate' if head == 2 else ''}, {len(names)} slot(s) {names} for each of {len(slots)} "
            f"trainable weights{', ' + ', '.join(extras) if extras else ''})")
    entries = []
    for k in range(total):
        ds = _child(variables, str(k), where)
        if not isinstance(ds, h5py.Dataset) or ds.is_virtual or ds.external:
            raise ValueError(f"Cannot load {where}: 'optimizer/vars/{k}' is missing or not a plain dataset")
        slot = k - head
        want = slots[order[slot][0]][order[slot][1]].shape if 0 <= slot < len(order) else ()
        if tuple(ds.shape or ()) != tuple(want) or ds.dtype.kind not in "fiu":
            raise ValueError(f"Cannot load {where}: 'optimizer/vars/{k}' has shape {_shape_str(ds.shape or ())} "
                             f"and dtype {ds.dtype}; expected {_shape_str(want)} numbers")
        entries.append(ds)
    try:  # an empty (null) dataset, inf, or a value too big for a float or an int64 step counter
        iterations = int(entries[0][()])
        learning_rate = float(entries[1][()]) if head == 2 else 0.0
        scalars = [float(ds[()]) for ds in entries[head + len(order):]]
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"Cannot load {where}: optimizer iterations, learning rate and scalars must be numbers "
                         f"({exc})") from exc
    if not 0 <= iterations < 2**63 or not np.isfinite(learning_rate) or learning_rate < 0:
        raise ValueError(f"Cannot load {where}: optimizer iterations={iterations}, learning_rate={learning_rate}")
    new = [[np.zeros(0, np.float32)] * len(names) for _ in slots]
    for (i, j), ds in zip(order, entries[head:]):
        new[i][j] = np.ascontiguousarray(ds[()], dtype=np.float32)
    model._core.set_optimizer_state(iterations, new)
    if head == 2:
        model.optimizer.learning_rate = learning_rate
    for attr, value in zip(extras, scalars):
        try:
            setattr(model._core, attr, value)
        except ValueError as exc:
            raise ValueError(f"Cannot load {where}: {exc}") from exc
    return True


def _head_count(model: Any) -> int:
    """Keras stores `iterations`, then the learning rate unless it is a schedule (which holds no variable)."""
    from .optimizers.schedules import LearningRateSchedule

    return 1 if isinstance(model.optimizer._learning_rate, LearningRateSchedule) else 2


def _weights_h5_bytes(model: Any) -> bytes:
    h5py = _h5py()
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        _write_weights(f, model)
    return buf.getvalue()


def _weight_tree(model: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(path under ``layers/``, layer or nested model) for everything in `model.layers`, depth-first: a nested
    model's layers are numbered per class again under ``<its path>/layers/`` (Keras's ``_save_container_state``)."""
    from .models import Model

    out: list[tuple[str, Any]] = []
    layer_list = model.layers
    for layer, path in zip(layer_list, _keras_paths([la.class_name for la in layer_list])):
        out.append((prefix + path, layer))
        if isinstance(layer, Model):
            out.extend(_weight_tree(layer, f"{prefix}{path}/layers/"))
    return out


def _model_specs(model: Any) -> list[_LayerSpec]:
    """The weights the built kerust ``model`` has, layer by layer (nested models' layers included, each layer
    once, where Keras stores it), with their shapes."""
    from .models import Model

    specs = []
    seen: set = set()
    shapes = [tuple(w.shape) for w in model.get_weights()] if model._core is not None else []
    for path, layer in _weight_tree(model):
        if isinstance(layer, Model):
            continue
        if model._core is None or getattr(layer, "_is_input_layer", False) or id(layer) in seen:
            specs.append(_LayerSpec(layer, path, []))
            continue
        seen.add(id(layer))
        first, n = model._weight_slot_of(layer)
        specs.append(_LayerSpec(layer, path, shapes[first:first + n]))
    return specs


def _nested_paths(model: Any) -> set:
    from .models import Model

    return {path for path, layer in _weight_tree(model) if isinstance(layer, Model)}


# ---- config: Keras -> kerust ---------------------------------------------------------------------------------
def _check_keras_origin(entry: dict, what: str) -> None:
    """Refuse objects that name custom code (we never import it, but say why it cannot load)."""
    module = entry.get("module")
    if module is not None and not (isinstance(module, str) and (module == "keras" or module.startswith("keras."))):
        raise ValueError(f"{what} comes from module {module!r}: kerust loads Keras's built-in classes only "
                         "(custom layers/objects cannot be loaded)")
    registered = entry.get("registered_name")
    if registered is not None and registered != entry.get("class_name"):
        raise ValueError(f"{what} is the registered custom object {registered!r}: kerust loads Keras's built-in "
                         "classes only")


def _check_dtype(value: Any, who: str) -> None:
    """float32 (as a string or a DTypePolicy dict) or None; anything else (mixed precision...) is refused."""
    if value is None:
        return
    name: Any = value
    if isinstance(value, dict):
        if value.get("class_name") not in ("DTypePolicy", "FloatDTypePolicy", "Policy"):
            raise ValueError(f"{who}: unsupported dtype policy {value.get('class_name')!r} (kerust computes in "
                             "float32)")
        cfg = value.get("config")
        name = cfg.get("name") if isinstance(cfg, dict) else None
    if name != "float32":
        raise ValueError(f"{who}: dtype {name!r} is not supported; kerust computes in float32")


def _initializer(value: Any, who: str, key: str) -> Any:
    if value is None or isinstance(value, str):
        return value
    if not isinstance(value, dict) or not isinstance(value.get("class_name"), str):
        raise ValueError(f"{who}: `{key}` must be a name or a {{'class_name', 'config'}} dict, received "
                         f"{type(value).__name__}")
    _check_keras_origin(value, f"{who}: `{key}`")
    cfg = value.get("config", {})
    if cfg is None:
        cfg = {}
    if not isinstance(cfg, dict):
        raise ValueError(f"{who}: `{key}` config must be a dict")
    return {"class_name": value["class_name"], "config": dict(cfg)}


# Keras-only arguments kerust's layers do not take, with the values that leave them off.
_INERT: dict[str, tuple[Any, ...]] = {
    "quantization_config": (None,),
    "lora_rank": (None,),
    "lora_enabled": (False,),
    "renorm": (False,),
    "renorm_clipping": (None,),
    "autocast": (True,),
}
# keys Keras writes around a layer's config (not arguments)
_ENTRY_KEYS = {"module", "registered_name", "shared_object_id", "build_config"}


def _same(value: Any, allowed: tuple[Any, ...]) -> bool:
    return any(value is a or (type(value) is type(a) and value == a) for a in allowed)


def _translate_layer_config(class_name: str, cfg: dict) -> dict:
    name = cfg.get("name")
    who = f"{class_name} {name!r}" if isinstance(name, str) else class_name
    out: dict[str, Any] = {}
    for key, value in cfg.items():
        if not isinstance(key, str):
            raise ValueError(f"{who}: config keys must be strings")
        if key == "dtype":
            _check_dtype(value, who)
            continue
        if key in _ENTRY_KEYS:
            continue
        if (key.endswith(("_regularizer", "_constraint"))) and value is None:
            continue
        if key in _INERT:
            if not _same(value, _INERT[key]):
                raise ValueError(f"{who}: `{key}`={value!r} is not supported by kerust")
            continue
        if key == "lora_alpha" and cfg.get("lora_rank") is None:
            continue
        if key == "renorm_momentum" and not cfg.get("renorm"):
            continue
        if key.endswith("_initializer"):
            value = _initializer(value, who, key)
        out[key] = value
    return out


def _batch_shape(value: Any, who: str) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"{who}: the input shape must be a list [batch, dim, ...], received {value!r}")
    dims = list(value)[1:]
    if not dims or not all(_is_int(d) and 0 < d < (1 << 31) for d in dims):
        raise ValueError(f"{who}: every input dimension must be a positive int, received {value!r}")
    return tuple(int(d) for d in dims)


def _parse_sequential(config: Any, where: str) -> tuple[dict, tuple[int, ...] | None, list[Any], Any]:
    """Validate a Keras Sequential config and build (unbuilt) kerust layers from it.

    Returns (model kwargs, input shape or None, layers, compile_config)."""
    if not isinstance(config, dict):
        raise ValueError(f"Cannot load {where}: config.json must be a JSON object, received "
                         f"{type(config).__name__}")
    class_name = config.get("class_name")
    if class_name != "Sequential":
        raise ValueError(f"Cannot load {where}: expected a Sequential model config, received {class_name!r}")
    try:
        _check_keras_origin(config, "the model")
    except ValueError as exc:
        raise ValueError(f"Cannot load {where}: {exc}") from exc
    inner = config.get("config")
    if not isinstance(inner, dict):
        raise ValueError(f"Cannot load {where}: config.json has no 'config' object")
    entries = inner.get("layers", [])
    if not isinstance(entries, list):
        raise ValueError(f"Cannot load {where}: 'config.layers' must be a list")
    if len(entries) > _MAX_LAYERS:
        raise ValueError(f"Cannot load {where}: {len(entries)} layers (at most {_MAX_LAYERS})")
    name = inner.get("name")
    if name is not None and not isinstance(name, str):
        raise ValueError(f"Cannot load {where}: the model name must be a string")
    trainable = inner.get("trainable", True)
    if not isinstance(trainable, bool):
        raise ValueError(f"Cannot load {where}: 'trainable' must be true or false")
    try:
        _check_dtype(inner.get("dtype"), "the model")
    except ValueError as exc:
        raise ValueError(f"Cannot load {where}: {exc}") from exc

    input_shape: tuple[int, ...] | None = None
    built: list[Any] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("class_name"), str):
            raise ValueError(f"Cannot load {where}: layer #{index} must be an object with a 'class_name'")
        cls = entry["class_name"]
        cfg = entry.get("config", {})
        if not isinstance(cfg, dict):
            raise ValueError(f"Cannot load {where}: layer #{index} ({cls}) has no 'config' object")
        try:
            _check_keras_origin(entry, "the layer")
            if cls in _MODEL_CLASSES:
                built.append(_nested_model(entry, where))
                continue
            if cls == "InputLayer":
                if index != 0:
                    raise ValueError(f"layer #{index}: an InputLayer may only come first")
                for key, ok in (("sparse", (False, None)), ("ragged", (False, None)), ("optional", (False, None))):
                    if not _same(cfg.get(key), ok):
                        raise ValueError(f"InputLayer: `{key}`={cfg.get(key)!r} is not supported by kerust")
                _check_dtype(cfg.get("dtype"), "InputLayer")
                shape = cfg.get("batch_shape", cfg.get("batch_input_shape"))
                if shape is None and cfg.get("shape") is not None:
                    shape = [None, *cfg["shape"]] if isinstance(cfg["shape"], list) else cfg["shape"]
                input_shape = _batch_shape(shape, "InputLayer")
                continue
            kwargs = _translate_layer_config(cls, cfg)
            # an input shape carried by the first layer (Keras 2 style) becomes the model's
            for key in ("batch_input_shape", "batch_shape"):
                if key in kwargs:
                    shape = kwargs.pop(key)
                    if not built and input_shape is None:
                        input_shape = _batch_shape(shape, f"layer #{index} ({cls})")
            for key in ("input_shape", "input_dim", "batch_size"):
                if key in kwargs:
                    value = kwargs.pop(key)
                    if not built and input_shape is None and value is not None:
                        if key == "input_shape":
                            input_shape = _batch_shape([None, *(value if isinstance(value, list) else [])],
                                                       f"layer #{index} ({cls})")
                        elif key == "input_dim":
                            input_shape = _batch_shape([None, value], f"layer #{index} ({cls})")
            layer = layers_module.deserialize({"class_name": cls, "config": kwargs})
        except (ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"Cannot load {where}: layer #{index} ({cls}): {exc}") from exc
        built.append(layer)

    if input_shape is None:
        for source in (inner.get("build_input_shape"),
                       (config.get("build_config") or {}).get("input_shape")
                       if isinstance(config.get("build_config"), dict) else None):
            if source is not None:
                try:
                    input_shape = _batch_shape(source, "build_input_shape")
                except ValueError as exc:
                    raise ValueError(f"Cannot load {where}: {exc}") from exc
                break
    return {"name": name, "trainable": trainable}, input_shape, built, config.get("compile_config")


_MODEL_CLASSES = ("Sequential", "Functional", "Model")
# Nested models deeper than this are refused (a file cannot make loading recurse without bound).
_MAX_NESTING = 32
_nesting = [0]


def _nested_model(entry: dict, where: str) -> Any:
    """A model inside a model's layer list, built (it is needed as a layer)."""
    if _nesting[0] >= _MAX_NESTING:
        raise ValueError(f"models nest more than {_MAX_NESTING} levels deep")
    _nesting[0] += 1
    try:
        return _build_model(entry, where)[0]
    finally:
        _nesting[0] -= 1


def _history(value: Any, who: str) -> tuple[str, int, int]:
    if (not isinstance(value, (list, tuple)) or len(value) != 3 or not isinstance(value[0], str)
            or not all(_is_int(v) and 0 <= v < _MAX_LAYERS for v in value[1:])):
        raise ValueError(f"{who}: expected a [layer name, node index, tensor index] reference, received {value!r}")
    return str(value[0]), int(value[1]), int(value[2])


def _node_args(node: Any, who: str) -> tuple[Any, bool]:
    """(the tensor references of one inbound node, whether they were given as a list)."""
    if not isinstance(node, dict):
        raise ValueError(f"{who}: an inbound node must be an object with `args` and `kwargs`")
    kwargs = node.get("kwargs") or {}
    if not isinstance(kwargs, dict) or any(v is not None for k, v in kwargs.items() if k in ("mask", "training")) \
            or any(k not in ("mask", "training") for k in kwargs):
        raise ValueError(f"{who}: call arguments {kwargs!r} are not supported by kerust (only tensors)")
    args = node.get("args")
    if not isinstance(args, list) or len(args) != 1:
        raise ValueError(f"{who}: expected one positional argument (a tensor or a list of tensors), received "
                         f"{args!r}")
    arg = args[0]
    as_list = isinstance(arg, list)
    items = arg if as_list else [arg]
    refs = []
    for item in items:
        if not isinstance(item, dict) or item.get("class_name") != "__keras_tensor__" or \
                not isinstance(item.get("config"), dict):
            raise ValueError(f"{who}: node arguments must be Keras tensors, received {item!r}")
        refs.append(_history(item["config"].get("keras_history"), who))
    return refs, as_list


def _build_functional(config: dict, where: str) -> Any:
    """A functional model from Keras's config: the layers first, then their calls in an order that has every
    input ready (Keras's own loader does the same)."""
    from .layers import InputLayer
    from .models import Functional

    inner = config.get("config")
    if not isinstance(inner, dict):
        raise ValueError("the functional model has no 'config' object")
    entries = inner.get("layers")
    if not isinstance(entries, list) or len(entries) > _MAX_LAYERS:
        raise ValueError(f"'layers' must be a list of at most {_MAX_LAYERS} layers")
    name = inner.get("name")
    trainable = inner.get("trainable", True)
    if (name is not None and not isinstance(name, str)) or not isinstance(trainable, bool):
        raise ValueError("the model's `name` must be a string and `trainable` true or false")
    made: dict[str, Any] = {}
    calls: list[tuple[str, int, list, bool]] = []
    outputs: dict[tuple[str, int], list] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("class_name"), str):
            raise ValueError(f"layer #{index} must be an object with a 'class_name'")
        cls = entry["class_name"]
        cfg = entry.get("config", {})
        lname = entry.get("name", cfg.get("name") if isinstance(cfg, dict) else None)
        who = f"layer #{index} ({cls})"
        if not isinstance(lname, str) or not isinstance(cfg, dict) or lname in made:
            raise ValueError(f"{who}: every layer needs a 'config' object and a unique name")
        _check_keras_origin(entry, "the layer")
        if cls in _MODEL_CLASSES:
            layer = _nested_model(entry, where)
        elif cls == "InputLayer":
            for key, ok in (("sparse", (False, None)), ("ragged", (False, None)), ("optional", (False, None))):
                if not _same(cfg.get(key), ok):
                    raise ValueError(f"InputLayer: `{key}`={cfg.get(key)!r} is not supported by kerust")
            _check_dtype(cfg.get("dtype"), "InputLayer")
            shape = cfg.get("batch_shape", cfg.get("batch_input_shape"))
            layer = InputLayer(shape=_batch_shape(shape, f"InputLayer '{lname}'"), name=lname)
            outputs[(lname, 0)] = [layer.output]
        else:
            kwargs = _translate_layer_config(cls, cfg)
            for key in ("batch_input_shape", "batch_shape", "input_shape", "input_dim", "batch_size"):
                kwargs.pop(key, None)
            layer = layers_module.deserialize({"class_name": cls, "config": kwargs})
        made[lname] = layer
        nodes = entry.get("inbound_nodes", [])
        if not isinstance(nodes, list):
            raise ValueError(f"{who}: 'inbound_nodes' must be a list")
        for k, node in enumerate(nodes):
            refs, as_list = _node_args(node, f"{who} node {k}")
            calls.append((lname, k, refs, as_list))
    pending = calls
    while pending:
        waiting = []
        for lname, k, refs, as_list in pending:
            ready = all((r[0], r[1]) in outputs for r in refs) and (k == 0 or (lname, k - 1) in outputs)
            if not ready:
                waiting.append((lname, k, refs, as_list))
                continue
            try:
                tensors = [outputs[(r[0], r[1])][r[2]] for r in refs]
            except IndexError:
                raise ValueError(f"layer '{lname}' node {k}: a tensor reference {refs} points past its layer's "
                                 "outputs") from None
            result = made[lname](tensors if as_list else tensors[0])
            outputs[(lname, k)] = result if isinstance(result, list) else [result]
        if len(waiting) == len(pending):
            raise ValueError(f"the graph cannot be built: the inputs of {[(w[0], w[1]) for w in waiting][:5]} "
                             "are never computed")
        pending = waiting

    def resolve(value: Any, what: str) -> Any:
        if isinstance(value, list) and value and isinstance(value[0], str):
            ref = _history(value, what)
            try:
                return outputs[(ref[0], ref[1])][ref[2]]
            except (KeyError, IndexError):
                raise ValueError(f"{what} names {value!r}, which the graph does not compute") from None
        if isinstance(value, list) and value:
            return [resolve(v, what) for v in value]
        if isinstance(value, dict) and value:
            return {str(k): resolve(v, what) for k, v in value.items()}
        raise ValueError(f"{what} must be a [layer, node, tensor] reference or a list of them, received {value!r}")

    inputs = resolve(inner.get("input_layers"), "input_layers")
    outs = resolve(inner.get("output_layers"), "output_layers")
    return Functional(inputs, outs, name=name, trainable=trainable)


def _build_model(config: Any, where: str) -> tuple[Any, Any]:
    """(the model a Keras config describes, its compile_config)."""
    if not isinstance(config, dict):
        raise ValueError(f"Cannot load {where}: the model config must be a JSON object, received "
                         f"{type(config).__name__}")
    class_name = config.get("class_name")
    if class_name == "Sequential":
        kwargs, input_shape, layer_list, compile_config = _parse_sequential(config, where)
        return _build_sequential(kwargs, input_shape, layer_list), compile_config
    if class_name in ("Functional", "Model"):
        try:
            _check_keras_origin(config, "the model")
            model = _build_functional(config, where)
        except (ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"Cannot load {where}: {exc}") from exc
        return model, config.get("compile_config")
    raise ValueError(f"Cannot load {where}: kerust loads Sequential and Functional models; this file holds a "
                     f"{class_name!r} model")


# ---- shapes, before the engine allocates anything -------------------------------------------------------------
# ---- compile config -------------------------------------------------------------------------------------------
def _optimizer_from_config(value: Any) -> Any:
    if isinstance(value, str):
        return optimizers_module.get(value)
    if not isinstance(value, dict) or not isinstance(value.get("class_name"), str):
        raise ValueError(f"unsupported optimizer {value!r}")
    _check_keras_origin(value, f"optimizer {value['class_name']!r}")
    cfg = value.get("config", {})
    if not isinstance(cfg, dict):
        raise ValueError("the optimizer config must be an object")
    cfg = dict(cfg)
    cfg.pop("is_legacy_optimizer", None)
    if cfg.get("decay", 0) in (0, 0.0, None):
        cfg.pop("decay", None)
    lr = cfg.get("learning_rate")
    if isinstance(lr, dict):  # a schedule: known classes only
        _check_keras_origin(lr, f"learning rate schedule {lr.get('class_name')!r}")
    elif lr is not None and (isinstance(lr, bool) or not isinstance(lr, (int, float))):
        raise ValueError(f"learning_rate {lr!r} is neither a number nor a learning rate schedule")
    return optimizers_module.get({"class_name": value["class_name"], "config": cfg})


def _loss_from_config(value: Any) -> Any:
    if isinstance(value, str):
        losses_module.get(value)
        return value
    if isinstance(value, dict) and isinstance(value.get("class_name"), str):
        _check_keras_origin(value, f"loss {value['class_name']!r}")
        if value["class_name"] == "function" and isinstance(value.get("config"), str):
            losses_module.get(value["config"])
            return value["config"]
        cfg = value.get("config", {})
        if not isinstance(cfg, dict):
            raise ValueError("the loss config must be an object")
        cfg = {k: v for k, v in cfg.items() if not (k == "dtype" and v in (None, "float32"))}
        return losses_module.get({"class_name": value["class_name"], "config": cfg})
    if value is None:
        return None
    raise ValueError(f"unsupported loss {value!r}")


def _metrics_from_config(value: Any) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"unsupported metrics {value!r}")
    out: list[Any] = []
    for m in value:
        if isinstance(m, dict) and isinstance(m.get("class_name"), str):
            _check_keras_origin(m, f"metric {m['class_name']!r}")
            if m["class_name"] == "function":
                m = m.get("config")
            elif m["class_name"] in metrics_module._CLASSES:
                out.append(metrics_module.get(m))
                continue
            else:
                cfg = m.get("config")
                m = cfg.get("name") if isinstance(cfg, dict) else None
        if not isinstance(m, str) or m not in metrics_module.NAMES:
            raise ValueError(f"unsupported metric {m!r} (kerust computes {', '.join(metrics_module.NAMES)})")
        out.append(m)
    return out


def _compile_from_config(model: Any, cc: Any, where: str) -> bool:
    """Compile ``model`` as the file says; warn (and leave it uncompiled) when kerust lacks what it needs."""
    if cc is None:
        return False
    if not isinstance(cc, dict):
        raise ValueError(f"Cannot load {where}: 'compile_config' must be an object")
    if cc.get("loss") is None:
        return False  # compiled without a loss: nothing kerust can train with
    try:
        if cc.get("weighted_metrics") is not None:
            raise ValueError("`weighted_metrics` is not supported by kerust yet")
        optimizer = _optimizer_from_config(cc.get("optimizer", "rmsprop"))
        loss = _per_output_value(cc.get("loss"), _loss_from_config)
        weights = cc.get("loss_weights")
        if weights is not None:
            flat = list(weights.values()) if isinstance(weights, dict) else weights
            if not isinstance(flat, (list, tuple)) or not all(
                    isinstance(w, (int, float)) and not isinstance(w, bool) for w in flat):
                raise ValueError(f"unsupported loss_weights {weights!r}")
        metrics = cc.get("metrics")
        if isinstance(metrics, dict):
            metrics = {k: _metrics_from_config(v if isinstance(v, list) or v is None else [v])
                       for k, v in metrics.items()}
        elif isinstance(metrics, list) and metrics and all(isinstance(m, list) or m is None for m in metrics):
            metrics = [_metrics_from_config(m) for m in metrics]
        else:
            metrics = _metrics_from_config(metrics)
        model.compile(optimizer=optimizer, loss=loss, metrics=metrics, loss_weights=weights)
    except (ValueError, TypeError) as exc:
        warnings.warn(f"{where}: the model was loaded without compiling it, because kerust cannot use the "
                      f"file's training configuration ({exc}). Call `model.compile(...)` before training.",
                      stacklevel=3)
        return False
    return True


# ---- public API: reading --------------------------------------------------------------------------------------
def _build_sequential(kwargs: dict, input_shape: Any, layer_list: list[Any]) -> Any:
    from .layers import InputLayer
    from .models import Sequential

    model = Sequential(name=kwargs["name"], trainable=kwargs["trainable"])
    for layer in layer_list:
        model.add(layer)
    if input_shape is not None:
        if layer_list:
            model.build((None, *input_shape))
        else:
            model.add(InputLayer(shape=input_shape))
    return model


def model_from_config(config: Any) -> Any:
    """A fresh (uncompiled, newly initialised) model from a Keras Sequential config (`to_json()` output)."""
    return _build_model(config, "the model config")[0]


def load_model(filepath: Any, custom_objects: Any = None, compile: bool = True, safe_mode: bool = True) -> Any:
    """Load a Keras v3 ``.keras`` file written by Keras or by kerust into a kerust ``Sequential``.

    Only Keras's built-in layer classes that kerust implements can be loaded; custom objects never are
    (``custom_objects`` must be None; loading is always "safe mode"). A compiled model gets the optimizer
    state stored in the file, so training resumes where it stopped."""
    if custom_objects:
        raise ValueError("kerust cannot load custom objects (it never runs code named in a file); "
                         "`custom_objects` must be None")
    path = _fspath(filepath)
    if path.endswith((".h5", ".hdf5")) and not path.endswith(".weights.h5"):
        raise ValueError(f"Cannot load '{path}': the legacy Keras HDF5 (.h5) model format is not supported by "
                         "kerust; save the model as `.keras` with Keras 3")
    if path.endswith(".weights.h5"):
        raise ValueError(f"Cannot load '{path}': a `.weights.h5` file holds weights only; build the model and "
                         "call `model.load_weights(...)`")
    if not path.endswith(".keras"):
        raise ValueError(f"File format not supported: filepath={path}. kerust loads Keras v3 `.keras` files "
                         "(and weights from `.weights.h5` with `model.load_weights`)")
    where = f"'{path}'"
    with contextlib.closing(_Archive(path)) as archive:
        if archive.has(_METADATA):
            metadata = archive.read_json(_METADATA)
            if not isinstance(metadata, dict):
                raise archive.error("metadata.json must be a JSON object")
        if not archive.has(_CONFIG):
            raise archive.error("the archive has no config.json (is it a Keras v3 .keras file?)")
        if not archive.has(_WEIGHTS):
            other = [n for n in archive.members if n.startswith("model.weights")]
            detail = f" (found {other}; only the h5 weights format is supported)" if other else ""
            raise archive.error(f"the archive has no {_WEIGHTS}{detail}")
        config = archive.read_json(_CONFIG)
        sequential = isinstance(config, dict) and config.get("class_name") == "Sequential"
        if sequential:
            kwargs, input_shape, layer_list, compile_config = _parse_sequential(config, where)
        weights_where = f"'{path}' ({_WEIGHTS})"
        h5 = _open_h5_bytes(archive.read(_WEIGHTS), weights_where)
        try:
            if sequential and input_shape is None:
                root = _layers_root(h5, weights_where)
                if root is not None and _count_datasets(root, weights_where):
                    raise archive.error("the model has no input shape (no InputLayer or build_input_shape), so "
                                        "its weights cannot be placed")
            # The engine builds the model (it refuses absurd sizes before allocating), then every dataset is
            # checked against the weights it made before any value is read.
            try:
                if sequential:
                    model = _build_sequential(kwargs, input_shape, layer_list)
                else:
                    model, compile_config = _build_model(config, where)
            except (ValueError, TypeError) as exc:
                if str(exc).startswith("Cannot load"):
                    raise
                raise archive.error(str(exc)) from exc
            datasets = _plan_weights(h5, _model_specs(model), weights_where, _nested_paths(model))
            arrays = _read_datasets(datasets, weights_where)
            if arrays:
                model.set_weights(arrays)
            # with the optimizer state the file holds, training resumes where it stopped
            if compile and _compile_from_config(model, compile_config, where):
                _restore_optimizer(h5, model, weights_where)
        finally:
            h5.close()
    return model


def load_weights(model: Any, filepath: Any) -> None:
    """``model.load_weights``: weights from a ``.weights.h5`` (or ``.keras``) file in Keras's layout, matched to
    the model's layers by class and position as Keras does. Every shape is checked before anything is read."""
    path = _fspath(filepath)
    if model._core is None:
        raise ValueError(f"Model '{model.name}' is not built yet: build it (or give it an input shape) before "
                         "load_weights.")
    specs = _model_specs(model)
    if path.endswith(".keras"):
        with contextlib.closing(_Archive(path)) as archive:
            where = f"'{path}' ({_WEIGHTS})"
            h5 = _open_h5_bytes(archive.read(_WEIGHTS), where)
            try:
                _load_weights_from(h5, model, specs, where)
            finally:
                h5.close()
    elif path.endswith((".h5", ".hdf5")):
        where = f"'{path}'"
        h5 = _open_h5_path(path)
        try:
            _load_weights_from(h5, model, specs, where)
        finally:
            h5.close()
    else:
        raise ValueError(f"Cannot load weights from '{path}': expected a `.weights.h5` or `.keras` file")


def _load_weights_from(h5: Any, model: Any, specs: list[_LayerSpec], where: str) -> None:
    arrays = _read_datasets(_plan_weights(h5, specs, where, _nested_paths(model)), where)
    if arrays:
        model.set_weights(arrays)
    if model.compiled:
        # as Keras: a built optimizer takes the file's state; an uncompiled model ignores it
        _restore_optimizer(h5, model, where)


# ---- config: kerust -> Keras ---------------------------------------------------------------------------------
def _keras_value(key: str, value: Any) -> Any:
    if key.endswith("_initializer") and isinstance(value, dict) and "class_name" in value:
        return {"module": "keras.initializers", "class_name": value["class_name"],
                "config": dict(value.get("config") or {}), "registered_name": None}
    return value


def _keras_layer_config(layer: Any) -> dict:
    cfg = {}
    for key, value in layer.get_config().items():
        cfg[key] = json.loads(json.dumps(_DTYPE_POLICY)) if key == "dtype" else _keras_value(key, value)
    return cfg


def _keras_loss(loss: Any) -> Any:
    if isinstance(loss, losses_module.Loss):
        return {"module": "keras.losses", "class_name": type(loss).__name__, "config": loss.get_config(),
                "registered_name": None}
    if isinstance(loss, dict):
        return {"module": "keras.losses", "class_name": loss["class_name"],
                "config": dict(loss.get("config") or {}), "registered_name": None}
    return loss


def _per_output_value(value: Any, convert: Callable[[Any], Any]) -> Any:
    """`convert` applied to one value, or to each entry of a per-output list or dict."""
    if isinstance(value, dict) and not ("class_name" in value and "config" in value):
        return {k: convert(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [convert(v) for v in value]
    return convert(value)


def _keras_metrics(value: Any) -> Any:
    def one_list(items: Any) -> Any:
        if items is None:
            return None
        items = items if isinstance(items, (list, tuple)) else [items]
        return [metrics_module.spec(metrics_module.get(m)) for m in items]

    if value is None:
        return None
    if isinstance(value, dict):
        return {k: one_list(v) for k, v in value.items()}
    if value and all(isinstance(m, (list, tuple)) or m is None for m in value):
        return [one_list(m) for m in value]
    return one_list(value) or None


def _keras_compile_config(model: Any) -> dict | None:
    if not model.compiled or model.optimizer is None:
        return None
    opt = model.optimizer
    own = opt.get_config()
    cfg: dict[str, Any] = {"name": own.pop("name"), "learning_rate": own.pop("learning_rate")}
    for key in _OPTIMIZER_COMMON:
        cfg[key] = own.pop(key, None)
    cfg.update(_OPTIMIZER_KERAS_DEFAULTS)
    cfg.update(own)
    return {
        "optimizer": {"module": "keras.optimizers", "class_name": type(opt).__name__, "config": cfg,
                      "registered_name": None},
        "loss": _per_output_value(model.loss, _keras_loss),
        "loss_weights": model._compile_args.get("loss_weights"),
        "metrics": _keras_metrics(model._compile_args.get("metrics")),
        "weighted_metrics": None,
        "run_eagerly": False,
        "steps_per_execution": 1,
        "jit_compile": False,
    }


def _sequential_entry(model: Any) -> dict:
    """A Sequential model as Keras 3 serializes it (with an InputLayer when built)."""
    from .models import Model

    policy = json.loads(json.dumps(_DTYPE_POLICY))
    layer_list = model.layers
    entries = []
    input_shape = model._input_shape
    if input_shape is not None:
        taken = {la.name for la in layer_list}
        input_name, n = model._input_name or "input_layer", 0
        while input_name in taken:
            n += 1
            input_name = f"input_layer_{n}"
        entries.append({"module": "keras.layers", "class_name": "InputLayer",
                        "config": {"batch_shape": [None, *[int(d) for d in input_shape]], "dtype": "float32",
                                   "sparse": False, "ragged": False, "name": input_name, "optional": False},
                        "registered_name": None})
    shape_in = list(input_shape) if input_shape is not None else None
    for layer in layer_list:
        entry = _layer_entry(layer)
        if model._core is not None and shape_in is not None:
            if isinstance(layer, Model) or layer.count_params():
                entry["build_config"] = {"input_shape": [None, *[int(d) for d in shape_in]]}
            shape_in = list(layer.output_shape[1:])
        entries.append(entry)
    inner: dict[str, Any] = {"name": model.name, "trainable": bool(model.trainable), "dtype": policy,
                             "layers": entries}
    out: dict[str, Any] = {"module": "keras", "class_name": "Sequential", "config": inner,
                           "registered_name": None}
    if input_shape is not None:
        batch = [None, *[int(d) for d in input_shape]]
        inner["build_input_shape"] = batch
        out["build_config"] = {"input_shape": list(batch)}
    return out


def _functional_entry(model: Any) -> dict:
    """A functional model as Keras 3 serializes it: each layer in Keras's file form with its `inbound_nodes`."""
    inner = model.get_config()
    by_name = {layer.name: layer for layer in model.layers}
    for entry in inner["layers"]:
        layer = by_name[entry["name"]]
        keep = {"name": entry["name"], "inbound_nodes": entry["inbound_nodes"]}
        entry.clear()
        entry.update(_layer_entry(layer))
        entry.update(keep)
    return {"module": "keras.src.models.functional", "class_name": "Functional", "config": inner,
            "registered_name": "Functional", "build_config": {"input_shape": None}}


def _layer_entry(layer: Any) -> dict:
    from .models import Functional, Sequential

    if isinstance(layer, Sequential):
        return _sequential_entry(layer)
    if isinstance(layer, Functional):
        return _functional_entry(layer)
    if getattr(layer, "_is_input_layer", False):
        return {"module": "keras.layers", "class_name": "InputLayer", "config": layer.get_config(),
                "registered_name": None}
    return {"module": "keras.layers", "class_name": layer.class_name, "config": _keras_layer_config(layer),
            "registered_name": None}


def keras_config(model: Any) -> dict:
    """The model's ``config.json`` as Keras 3 writes it (Sequential or Functional, nested models inside)."""
    out = _layer_entry(model)
    compile_config = _keras_compile_config(model)
    if compile_config is not None:
        out["compile_config"] = compile_config
    return out


# ---- public API: writing --------------------------------------------------------------------------------------
def save_model(model: Any, filepath: Any, overwrite: bool = True) -> None:
    """``model.save``: a Keras v3 ``.keras`` file (metadata.json, config.json, model.weights.h5), written
    atomically. Optimizer slot values are not saved yet (the engine cannot export them)."""
    path = _fspath(filepath)
    if not path.endswith(".keras"):
        if path.endswith((".h5", ".hdf5")):
            raise ValueError(f"Invalid filepath extension for saving: {path}. kerust writes the Keras v3 "
                             "`.keras` format; the legacy HDF5 `.h5` model format is not supported (use "
                             "`save_weights` with a `.weights.h5` name to save weights alone)")
        raise ValueError(f"Invalid filepath extension for saving. Please add a `.keras` extension (the native "
                         f"Keras v3 format). Received: filepath={path}")
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"'{path}' already exists and overwrite=False")
    if not model.built:
        warnings.warn(f"Model '{model.name}' is not built yet: the saved file holds no weights.", stacklevel=2)
    from . import __version__

    metadata = {"keras_version": KERAS_FORMAT_VERSION,
                "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
                "kerust_version": __version__}
    config = keras_config(model)
    weights = _weights_h5_bytes(model)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(_METADATA, json.dumps(metadata))
        zf.writestr(_CONFIG, json.dumps(config))
        zf.writestr(_WEIGHTS, weights)
    _atomic_write(path, buf.getvalue())


def save_weights(model: Any, filepath: Any, overwrite: bool = True) -> None:
    """``model.save_weights``: a ``.weights.h5`` file in Keras's layout, written atomically."""
    path = _fspath(filepath)
    if not path.endswith(".weights.h5"):
        raise ValueError(f"The filename must end in `.weights.h5`. Received: filepath={path}")
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"'{path}' already exists and overwrite=False")
    if not model.built:
        warnings.warn(f"Model '{model.name}' is not built yet: the saved file holds no weights.", stacklevel=2)
    _atomic_write(path, _weights_h5_bytes(model))

