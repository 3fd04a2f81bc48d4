"""Keras v3 files: ``.keras`` archives and ``.weights.h5`` weight files, read and written in Keras's own layout.

A ``.keras`` file is a zip holding ``metadata.json``, ``config.json`` (the model's ``serialize_keras_object``
form) and ``model.weights.h5``. In the HDF5 file every layer of a Sequential model keeps its variables under
``layers/<snake_case(class name)>[_<n>]/vars/<i>`` (``dense``, ``dense_1``, ... counted per class, in layer
order; the layer's own name is only the ``name`` attribute of its ``vars`` group), the model itself has an
empty ``vars`` group, and a compiled Keras model adds ``optimizer/vars/<i>``. A custom layer keeps its own
``add_weight`` variables in its ``vars`` and its sublayers in groups named by *attribute* (sorted), recursively
(``layers/transformer_block/att/query/vars/0``); a subclassed model's attributes sit at the top of the file
(``conv/vars/0``). This is the walk of Keras's ``saving_lib._save_state`` (see `_saveables`).

Loading trusts nothing in the file: layers are built only from kerust's whitelist of classes and from the
classes the user passes in ``custom_objects`` or registers with ``register_keras_serializable`` (nothing named
in the file is imported or evaluated; a Lambda's marshalled code needs ``safe_mode=False``), archive members
are size-checked before they are read, every weight's shape is checked against the model before any weight is
read, and a model whose configuration would need an absurd amount of memory is refused before the engine
allocates it. Problems raise ``ValueError`` (or ``OSError`` for a file that cannot be opened) naming the file.
Writes go to a temporary file beside the target, are fsynced and then renamed over it.
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
from . import _preprocess
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
_MAX_H5_DEPTH = 64  # group levels below one group

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
    """One object Keras's saving walk visits (a layer, a custom layer, a model), as the weights file sees it: its
    group (``path``, "" for the saved model itself, whose variables are the root ``vars``), the shapes of its own
    variables and where they sit in the model's ``get_weights()`` list (``first``)."""

    def __init__(self, layer: Any, path: str, shapes: list[tuple[int, ...]], first: int = 0) -> None:
        self.layer = layer
        self.path = path
        self.shapes = shapes
        self.first = first
        self.names = _own_weight_names(layer)

    @property
    def vars_path(self) -> str:
        return f"{self.path}/vars" if self.path else "vars"

    @property
    def who(self) -> str:
        kind = "model" if getattr(self.layer, "_is_model", False) else "layer"
        return f"{kind} '{self.layer.name}' ({self.layer.class_name})"


def _own_weight_names(layer: Any) -> list[str]:
    from ._custom import is_custom

    if getattr(layer, "_is_model", False) or getattr(layer, "_is_input_layer", False):
        return []
    if is_custom(layer):
        return [v.name for v in layer._ordered_variables()]
    return _weight_names(layer)


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
    """Datasets below ``group`` (groups nest a few levels per custom layer or nested model in a weights file)."""
    h5py = _h5py()
    if depth > _MAX_H5_DEPTH:
        raise ValueError(f"Cannot load {where}: '{group.name}' nests groups too deeply")
    total = 0
    for key in _keys(group, where):
        obj = _child(group, key, where)
        if isinstance(obj, h5py.Dataset):
            total += 1
        elif isinstance(obj, h5py.Group):
            total += _count_datasets(obj, where, depth + 1)
    return total


def _holds_weights(f: Any, where: str) -> bool:
    """Whether the file holds any layer weights (datasets outside the optimizer's state)."""
    h5py = _h5py()
    for key in _keys(f, where):
        obj = _child(f, key, where) if key != "optimizer" else None
        if isinstance(obj, h5py.Dataset) or (isinstance(obj, h5py.Group) and _count_datasets(obj, where)):
            return True
    return False


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


def _group_at(f: Any, path: str, where: str) -> Any:
    """The group at `path` ("" is the root), or None when some part of the path is missing."""
    h5py = _h5py()
    obj = f
    walked = ""
    for part in path.split("/") if path else []:
        obj = _child(obj, part, where)
        walked = f"{walked}/{part}" if walked else part
        if obj is None:
            return None
        if not isinstance(obj, h5py.Group):
            raise ValueError(f"Cannot load {where}: '{walked}' is not a group")
    return obj


def _plan_weights(f: Any, specs: list[_LayerSpec], where: str, subclassed: bool = False
                  ) -> list[tuple[_LayerSpec, list[Any]]]:
    """Check the file against the model (structure, shapes, dtypes) without reading any weight; returns each
    saveable's datasets. Every group is found as Keras's loader finds it: by the path of Keras's saving walk
    (`_saveables`), also in the ``_layer_checkpoint_dependencies`` naming of TF-Keras 2.13 files."""
    h5py = _h5py()
    root = _layers_root(f, where)
    legacy = root is not None and root.name == "/_layer_checkpoint_dependencies"
    weighted = [s for s in specs if s.shapes]
    if root is None and not subclassed and weighted:
        raise ValueError(f"Cannot load {where}: the file has no 'layers' group, but the model has "
                         f"{sum(len(s.shapes) for s in weighted)} weights to load")
    plan: list[tuple[_LayerSpec, list[Any]]] = []
    found: set = set()  # the file paths of the saveables' groups
    for spec in specs:
        path = spec.path
        holder = _group_at(f, path, where)
        if holder is None and legacy:  # Keras's fallback for TF-Keras 2.13 files
            path = path.replace("layers", "_layer_checkpoint_dependencies")
            holder = _group_at(f, path, where)
        vars_path = f"{path}/vars" if path else "vars"
        vars_group = None
        if holder is not None:
            found.add(path)
            vars_group = _child(holder, "vars", where)
            if vars_group is not None and not isinstance(vars_group, h5py.Group):
                raise ValueError(f"Cannot load {where}: '{vars_path}' is not a group")
        keys = _keys(vars_group, where) if vars_group is not None else []
        if len(keys) != len(spec.shapes):
            raise ValueError(
                f"Cannot load {where}: {spec.who} expects {len(spec.shapes)} weights "
                f"{str(spec.names) + ' ' if spec.names else ''}with shapes {[_shape_str(s) for s in spec.shapes]}, "
                f"but the file has {len(keys)} under '{vars_path}' (does the file come from the same architecture?)")
        datasets = []
        for i, shape in enumerate(spec.shapes):
            label = _weight_label(spec.names, i)
            ds = _child(vars_group, str(i), where)
            if not isinstance(ds, h5py.Dataset):
                raise ValueError(f"Cannot load {where}: {spec.who}: '{vars_path}/{i}' is missing or not a dataset")
            if ds.is_virtual or ds.external:
                raise ValueError(f"Cannot load {where}: {spec.who}: {label} is stored outside the file "
                                 "(external or virtual datasets are not accepted)")
            if tuple(ds.shape or ()) != tuple(shape):
                raise ValueError(
                    f"Cannot load {where}: {spec.who}: {label} has shape {_shape_str(ds.shape or ())} in the "
                    f"file ('{vars_path}/{i}'), but the model expects {_shape_str(shape)}")
            # a weight Keras keeps as an integer (Normalization's `count`, named by the layer's
            # `_integer_weights`) is read as float32, as kerust keeps every weight; other weights must be floats
            integer_ok = ds.dtype.kind in "iu" and i in getattr(spec.layer, "_integer_weights", ())
            if not (ds.dtype.kind == "f" and ds.dtype.itemsize in (2, 4, 8)) and not integer_ok:
                dtype = ds.attrs.get("dtype", ds.dtype)
                raise ValueError(f"Cannot load {where}: {spec.who}: {label} has dtype {dtype} (kerust reads "
                                 "float16/32/64 weights)")
            datasets.append(ds)
        plan.append((spec, datasets))
    # a subclassed model's sublayers sit at the top of the file (by attribute); other models' under 'layers'
    start = f if subclassed else root
    if start is not None:
        prefix = "" if subclassed else root.name.lstrip("/") + "/"
        _check_unclaimed(start, prefix, found, specs, where)
    return plan


def _check_unclaimed(group: Any, prefix: str, found: set, specs: list[_LayerSpec], where: str,
                     inside: set | None = None) -> None:
    """Refuse weights in the file that no saveable of the model takes: everything outside the ``vars`` groups of
    the model's saveables (the optimizer's state at the top excepted, `_restore_optimizer` reads it)."""
    h5py = _h5py()
    if inside is None:  # the found groups and the groups above them
        inside = {p.rsplit("/", k)[0] for p in found if p for k in range(p.count("/") + 1)}
    for key in _keys(group, where):
        path = prefix + key
        if (not prefix and key in ("optimizer", "vars")) or (path.endswith("/vars") and path[:-5] in found):
            continue
        obj = _child(group, key, where)
        if isinstance(obj, h5py.Group) and path in inside:
            _check_unclaimed(obj, f"{path}/", found, specs, where, inside)
        elif isinstance(obj, h5py.Dataset) or (isinstance(obj, h5py.Group) and _count_datasets(obj, where)):
            raise ValueError(f"Cannot load {where}: the file holds weights under '{path}', which matches no layer "
                             f"of this model (its weighted layers map to {[s.path for s in specs if s.shapes]}); "
                             "is it the same architecture?")


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
    """Keras's layout: a ``vars`` group for every object Keras's saving walk visits (see `_saveables`), holding
    its own variables as ``0``, ``1``, ...; then the optimizer's state."""
    weights = model.get_weights() if model._core is not None else []
    _preprocess.write_host_groups(f, model)
    for spec in _model_specs(model):
        group = f.create_group(spec.vars_path)  # and the groups above it
        group.attrs["name"] = spec.layer.name
        for i in range(len(spec.shapes)):
            group.create_dataset(str(i), data=np.array(weights[spec.first + i], dtype=np.float32, order="C"))
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
    unbuilt = len(keys) == head < total
    if unbuilt:  # an optimizer Keras never built (compiled, never trained): its step count and learning rate
        order, extras, total = [], (), head
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
    if not unbuilt:
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


def _name_key(name: str) -> str:
    """Keras's order of attributes in its saving walk: by name, private ones (``_x``) last."""
    return "~" + name if name.startswith("_") else name


def _is_saveable(obj: Any) -> bool:
    from .layers import InputLayer, Layer
    from .models import Model

    return isinstance(obj, (Layer, Model, InputLayer))


def _is_subclassed(model: Any) -> bool:
    return bool(getattr(model, "_subclassed", False))


def _by_attribute(obj: Any) -> bool:
    """A custom layer or a subclassed model: Keras walks its attributes (a built-in layer is a leaf, a Sequential
    or Functional model holds its `layers`)."""
    from ._custom import is_custom

    return _is_subclassed(obj) or is_custom(obj)


def _children(obj: Any) -> list[tuple[str, Any]]:
    """Keras's ``_walk_saveable``: (attribute name, value) of what may hold saveables, in visiting order."""
    from .models import Model

    if not _by_attribute(obj):
        return [("layers", obj.layers)] if isinstance(obj, Model) else []
    internal: set = getattr(obj, "_internal_attrs", set())
    attrs = {k: v for k, v in vars(obj).items() if k not in internal and not k.startswith("__")}
    if isinstance(obj, Model):
        attrs["layers"] = obj.layers  # a property of Keras's Model, walked like an attribute
    return sorted(attrs.items(), key=lambda kv: _name_key(kv[0]))


def _saveables(model: Any) -> list[tuple[str, Any]]:
    """(path in the weights file, object) for every object Keras's ``saving_lib._save_state`` visits, in its
    order: the model ("", its variables are the root ``vars``), then, depth-first, each object's children --
    a Sequential/Functional model's `layers` first (``layers/<snake_case(class)>``, numbered ``_1``, ``_2``...
    per class), then a custom layer's or subclassed model's attributes by name (``att/query``; a list or dict of
    layers as ``<attribute>/<snake_case(class)>``; a model's `layers` is one of them). An object reached a second
    time is skipped (it keeps the first path), as Keras does."""
    out: list[tuple[str, Any]] = []
    visited: set = set()

    def visit(obj: Any, path: str) -> None:
        if id(obj) in visited:
            return
        visited.add(id(obj))
        out.append((path, obj))
        for attr, child in _children(obj):
            child_path = f"{path}/{attr}" if path else attr
            if _is_saveable(child):
                visit(child, child_path)
            elif isinstance(child, (list, tuple, dict, set)):
                items = list(child.values()) if isinstance(child, dict) else list(child)
                items = [x for x in items if _is_saveable(x)]
                for item, name in zip(items, _keras_paths([x.class_name for x in items])):
                    visit(item, f"{child_path}/{name}")

    visit(model, "")
    return out


def _model_specs(model: Any) -> list[_LayerSpec]:
    """The saveables of the kerust ``model`` (`_saveables`) with the shapes of their own weights and where those
    sit in ``model.get_weights()`` (none before the model is built)."""
    shapes = [tuple(w.shape) for w in model.get_weights()] if model._core is not None else []
    specs = []
    for path, obj in _saveables(model):
        first, n = 0, 0
        if model._core is not None and not getattr(obj, "_is_model", False):
            i = model._unit_index.get(id(obj))
            if i is not None:
                first, n = model._weight_slot_of(obj)
        if getattr(obj, "class_name", None) == "Bidirectional":
            # `<path>/forward_layer/cell/vars` and `<path>/backward_layer/cell/vars`, the other groups empty
            n_forward = len(_weight_names(obj.layer))
            specs.append(_LayerSpec(obj, path, [], first))
            for sub, start, stop in (("forward_layer", 0, n_forward), ("backward_layer", n_forward, n)):
                specs.append(_LayerSpec(obj, f"{path}/{sub}", [], first + start))
                specs.append(_LayerSpec(obj, f"{path}/{sub}/cell", shapes[first + start:first + stop],
                                        first + start))
            continue
        if getattr(obj, "class_name", None) in _CELL_LAYERS:
            # Keras keeps a recurrent layer's weights in its cell: `<path>/vars` is empty, `<path>/cell/vars` holds
            # kernel, recurrent_kernel, bias
            specs.append(_LayerSpec(obj, path, [], first))
            specs.append(_LayerSpec(obj, f"{path}/cell", shapes[first:first + n], first))
            continue
        specs.append(_LayerSpec(obj, path, shapes[first:first + n], first))
    return specs


_CELL_LAYERS = ("SimpleRNN", "LSTM", "GRU")


def _assign_weights(model: Any, plan: list[tuple[_LayerSpec, list[Any]]], where: str) -> None:
    """Read every planned dataset, then set them all at once in their places of ``model.get_weights()`` (weights
    of layers the file does not hold, such as ones only a custom layer's ``call`` reaches, keep their values)."""
    if not any(datasets for _, datasets in plan):
        return
    read = [(spec, _read_datasets(datasets, where)) for spec, datasets in plan]
    values = model.get_weights()
    for spec, arrays in read:
        values[spec.first:spec.first + len(arrays)] = arrays
    model.set_weights(values)


# ---- config: Keras -> kerust ---------------------------------------------------------------------------------
def _check_keras_origin(entry: dict, what: str) -> None:
    """Refuse objects that name custom code (we never import it, but say why it cannot load)."""
    module = entry.get("module")
    if module is not None and not _is_keras_module(module):
        raise ValueError(f"{what} comes from module {module!r}: kerust loads Keras's built-in classes only here "
                         "(custom layers and models load through `custom_objects` or the registry; other custom "
                         "objects cannot be loaded)")
    registered = entry.get("registered_name")
    if registered is not None and registered != entry.get("class_name"):
        raise ValueError(f"{what} is the registered custom object {registered!r}: kerust loads Keras's built-in "
                         "classes only here (custom layers and models load through `custom_objects` or the "
                         "registry)")


def _is_keras_module(module: Any) -> bool:
    return isinstance(module, str) and (module == "keras" or module.startswith("keras."))


class _CustomObjectError(TypeError, ValueError):
    """A custom class a file names that cannot be found, or that cannot be rebuilt from the file's config. A
    TypeError as in Keras, and a ValueError as every other problem with a file in kerust."""


class _Objects:
    """What loading may build besides kerust's built-in classes: the user's ``custom_objects`` (looked up by the
    ``registered_name`` a file gives, then the class name) and the classes registered with
    ``register_keras_serializable``; and whether a Lambda's marshalled Python code may be loaded."""

    def __init__(self, custom_objects: Any = None, safe_mode: Any = True) -> None:
        if custom_objects is not None and not isinstance(custom_objects, dict):
            raise TypeError("`custom_objects` must be a dict mapping names (such as 'MyLayer' or "
                            f"'Custom>MyLayer') to classes or functions, received {type(custom_objects).__name__}")
        self.custom_objects: dict = dict(custom_objects or {})
        self.safe_mode = safe_mode

    def unsafe(self) -> bool:
        from . import config as config_module

        return self.safe_mode is False or config_module._unsafe_deserialization()


def _builtin_names() -> set:
    return {*layers_module._CLASSES, *_MODEL_CLASSES, "InputLayer", "Lambda"}


def _user_class(entry: dict, what: str, objects: _Objects) -> Any:
    """The user class (a Layer or Model subclass) a config entry names, from `custom_objects` or the registry; None
    when the entry names one of Keras's built-in classes. A custom class that is not found raises: kerust never
    imports the module a file names (as Keras: "Could not locate class ...")."""
    from ._registry import lookup
    from .layers import Layer
    from .models import Model

    class_name = entry["class_name"]
    module = entry.get("module")
    registered = entry.get("registered_name")
    if (module is not None and not isinstance(module, str)) or \
            (registered is not None and not isinstance(registered, str)):
        raise ValueError(f"{what}: `module` and `registered_name` must be strings or null")
    if module is None or _is_keras_module(module):
        if registered is None or (registered == class_name and (module is not None
                                                                  or class_name in _builtin_names())):
            return None  # Keras's own class (module null and registered_name set: a user class from __main__)
    found = lookup(registered, class_name, objects.custom_objects)
    if found is None:
        key = registered or class_name
        raise _CustomObjectError(
            f"Could not locate class '{class_name}'. Make sure custom classes and functions are decorated with "
            "`@keras.saving.register_keras_serializable()` (and imported before loading), or pass them to "
            f"`load_model` in `custom_objects` (e.g. custom_objects={{{key!r}: {class_name}}}). {what} names "
            f"class {class_name!r} from module {module!r} with registered_name {registered!r}; kerust never "
            "imports code named in a file.")
    if not (isinstance(found, type) and issubclass(found, (Layer, Model))):
        raise _CustomObjectError(f"{what}: the custom object found for {registered or class_name!r} is {found!r}, "
                                 "not a subclass of keras.layers.Layer or keras.Model")
    return found


def _user_config(entry: dict, who: str) -> dict:
    cfg = entry.get("config")
    if not isinstance(cfg, dict) or not all(isinstance(k, str) for k in cfg):
        raise ValueError(f"{who}: 'config' must be an object with string keys")
    _check_dtype(cfg.get("dtype"), who)
    return dict(cfg)


def _rebuild_error(who: str, cls: Any, exc: BaseException) -> _CustomObjectError:
    return _CustomObjectError(f"{who}: {cls.__name__}.from_config could not rebuild it from the file's config "
                              f"({type(exc).__name__}: {exc}). Make sure its `get_config()` returns every argument "
                              "of `__init__`.")


def _custom_layer(entry: dict, cls: Any, who: str, objects: _Objects) -> Any:
    """A user layer from its config entry (``cls.from_config(config)``, as Keras), or a subclassed model."""
    from .layers import Layer
    from .models import Model

    if issubclass(cls, Model):
        return _subclassed_model(entry, cls, who)
    cfg = _user_config(entry, who)
    try:
        layer = cls.from_config(cfg)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise _rebuild_error(who, cls, exc) from exc
    if not isinstance(layer, Layer):
        raise _CustomObjectError(f"{who}: {cls.__name__}.from_config returned {type(layer).__name__}, not a layer")
    return layer


def _lambda_layer(entry: dict, who: str, objects: _Objects) -> Any:
    """Keras's Lambda: its function is a registered or given function, or (with ``safe_mode=False`` or
    ``keras.config.enable_unsafe_deserialization()`` only) a marshalled Python lambda."""
    import binascii

    from .layers import Lambda

    cfg = _user_config(entry, who)
    for key in ("mask", "output_shape"):
        if cfg.get(key) is None:
            cfg.pop(key, None)
    try:
        return Lambda.from_config(cfg, custom_objects=objects.custom_objects, safe_mode=not objects.unsafe())
    except TypeError as exc:
        raise _CustomObjectError(f"{who}: {exc}") from exc
    except (KeyError, AttributeError, EOFError, binascii.Error) as exc:
        raise ValueError(f"{who}: cannot rebuild the Lambda from the file's config ({type(exc).__name__}: "
                         f"{exc})") from exc


def _input_shapes(value: Any, who: str) -> Any:
    """A subclassed model's build input shape(s) (one batch shape, or a list of them) for ``model.build``."""
    if isinstance(value, list) and value and isinstance(value[0], list):
        if len(value) > _MAX_LAYERS:
            raise ValueError(f"{who}: too many inputs")
        return [[None, *_batch_shape(v, who)] for v in value]
    return [None, *_batch_shape(value, who)]


def _subclassed_model(entry: dict, cls: Any, who: str) -> Any:
    """A subclassed model: ``cls.from_config(config)`` if the class defines one, else ``cls(**config)`` (Keras's
    ``Model.from_config`` for a subclassed model), then built for the input shape of its ``build_config``."""
    cfg = _user_config(entry, who)
    build = entry.get("build_config")
    shape = build.get("input_shape") if isinstance(build, dict) else None
    shapes = _input_shapes(shape, f"{who} build_config") if shape is not None else None
    try:
        from_config = getattr(cls, "from_config", None)
        model = from_config(cfg) if callable(from_config) else cls(**cfg)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise _rebuild_error(who, cls, exc) from exc
    if not getattr(model, "_subclassed", False):
        raise _CustomObjectError(f"{who}: {cls.__name__} did not make a subclassed keras.Model")
    if shapes is not None:
        model.build(shapes)
    return model


def _reraise(exc: BaseException, message: str) -> ValueError:
    """The error to raise for `exc` with a fuller `message`: of the same kind for a custom object's problem."""
    return _CustomObjectError(message) if isinstance(exc, _CustomObjectError) else ValueError(message)


def _input_dtype(value: Any, who: str) -> Any:
    """An InputLayer's dtype: float32, or an int or bool type (token ids, converted when data comes in)."""
    name = value.get("config", {}).get("name") if isinstance(value, dict) else value
    if name in ("int8", "int16", "int32", "int64", "uint8", "bool"):
        return name
    _check_dtype(value, who)
    return None


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


def _parse_sequential(config: Any, where: str, objects: _Objects | None = None
                      ) -> tuple[dict, tuple[int, ...] | None, list[Any], Any]:
    """Validate a Keras Sequential config and build (unbuilt) kerust layers from it.

    Returns (model kwargs, input shape or None, layers, compile_config)."""
    objects = objects or _Objects()
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
            user = _user_class(entry, f"layer #{index} ({cls})", objects)
            if user is not None:
                built.append(_custom_layer(entry, user, f"layer #{index} ({cls})", objects))
                continue
            if cls == "Lambda":
                built.append(_lambda_layer(entry, f"layer #{index} (Lambda)", objects))
                continue
            if cls in _MODEL_CLASSES:
                built.append(_nested_model(entry, where, objects))
                continue
            if cls == "InputLayer":
                if index != 0:
                    raise ValueError(f"layer #{index}: an InputLayer may only come first")
                for key, ok in (("sparse", (False, None)), ("ragged", (False, None)), ("optional", (False, None))):
                    if not _same(cfg.get(key), ok):
                        raise ValueError(f"InputLayer: `{key}`={cfg.get(key)!r} is not supported by kerust")
                if cfg.get("dtype") == "string":  # strings for a TextVectorization, which kerust runs on the host
                    built.append(layers_module.InputLayer(
                        shape=_batch_shape(cfg.get("batch_shape"), "InputLayer"), dtype="string",
                        name=cfg.get("name") if isinstance(cfg.get("name"), str) else None))
                    continue
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
                if key in kwargs and not (key == "input_dim" and cls == "Embedding"):  # Embedding's own argument
                    value = kwargs.pop(key)
                    if not built and input_shape is None and value is not None:
                        if key == "input_shape":
                            input_shape = _batch_shape([None, *(value if isinstance(value, list) else [])],
                                                       f"layer #{index} ({cls})")
                        elif key == "input_dim":
                            input_shape = _batch_shape([None, value], f"layer #{index} ({cls})")
            layer = layers_module.deserialize({"class_name": cls, "config": kwargs})
        except (ValueError, TypeError, KeyError) as exc:
            raise _reraise(exc, f"Cannot load {where}: layer #{index} ({cls}): {exc}") from exc
        built.append(layer)

    if input_shape is None and not _preprocess.starts_on_host(built):  # else the vectorizer gives the shape
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


def _nested_model(entry: dict, where: str, objects: _Objects) -> Any:
    """A model inside a model's layer list, built (it is needed as a layer)."""
    if _nesting[0] >= _MAX_NESTING:
        raise ValueError(f"models nest more than {_MAX_NESTING} levels deep")
    _nesting[0] += 1
    try:
        return _build_model(entry, where, objects)[0]
    finally:
        _nesting[0] -= 1


def _history(value: Any, who: str) -> tuple[str, int, int]:
    if (not isinstance(value, (list, tuple)) or len(value) != 3 or not isinstance(value[0], str)
            or not all(_is_int(v) and 0 <= v < _MAX_LAYERS for v in value[1:])):
        raise ValueError(f"{who}: expected a [layer name, node index, tensor index] reference, received {value!r}")
    return str(value[0]), int(value[1]), int(value[2])


def _node_call(layer: Any, node: Any, who: str, mask_ops: set) -> tuple[list, Any]:
    """(the tensor references of one inbound node, how to call the layer on them): the positional tensors, then
    an `initial_state` and a `mask` given by keyword. A mask that one of Keras's recorded mask ops computes is
    left out: the layer before makes it again."""
    refs, as_list = _node_args(node, who)
    kwargs = node.get("kwargs") or {}
    states: list = []
    mask = None
    for key, value in kwargs.items():
        if value is None or key == "training":
            continue
        if key == "initial_state":
            states = [_tensor_ref(v, who) for v in (value if isinstance(value, list) else [value])]
        elif key == "mask":
            ref = _tensor_ref(value, who)
            mask = None if ref[0] in mask_ops else ref
        else:
            raise ValueError(f"{who}: call argument {key}={value!r} is not supported by kerust (tensors, "
                             "initial_state and mask only)")
    for ref in refs + states + ([mask] if mask else []):
        if ref[0] in mask_ops:
            raise ValueError(f"{who}: reads the output of the keras.ops call '{ref[0]}', which kerust does not "
                             "load")
    if not states and mask is None:
        return refs, as_list
    n = len(refs)

    def call(tensors: list) -> Any:
        main = tensors[:n] if as_list else tensors[0]
        kw: dict = {}
        if states:
            kw["initial_state"] = tensors[n:n + len(states)]
        if mask is not None:
            kw["mask"] = tensors[-1]
        return layer(main, **kw)

    return refs + states + ([mask] if mask else []), call


def _node_args(node: Any, who: str) -> tuple[Any, bool]:
    """(the tensor references of one inbound node, whether they were given as a list)."""
    if not isinstance(node, dict):
        raise ValueError(f"{who}: an inbound node must be an object with `args` and `kwargs`")
    kwargs = node.get("kwargs") or {}
    # `training=False` is what Keras writes for a call inside a layer's own call; a call fixed in training mode
    # (`training=True`) is not supported
    if not isinstance(kwargs, dict) or kwargs.get("training") not in (None, False):
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


def _tensor_ref(item: Any, who: str) -> Any:
    """The [layer, node, tensor] reference of one Keras tensor in an inbound node."""
    if not isinstance(item, dict) or item.get("class_name") != "__keras_tensor__" or \
            not isinstance(item.get("config"), dict):
        raise ValueError(f"{who}: node arguments must be Keras tensors, received {item!r}")
    return _history(item["config"].get("keras_history"), who)


# the keras.ops classes Keras records beside masking layers in a functional config (Embedding's not_equal,
# Masking's any)
_MASK_OPS = ("NotEqual", "Any", "Squeeze", "ExpandDims", "LogicalAnd", "LogicalOr", "Cast")


def _build_functional(config: dict, where: str, objects: _Objects) -> Any:
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
    calls: list[tuple[str, int, list, Any]] = []  # the last: as a list, or a call (keyword arguments)
    mask_ops: set = set()
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
        if str(entry.get("module", "")).startswith("keras.src.ops") and cls in _MASK_OPS:
            mask_ops.add(lname)  # a mask Keras recorded as ops; kerust's layers make it again
            made[lname] = None
            continue
        user = _user_class(entry, who, objects)
        if user is not None:
            layer = _custom_layer(entry, user, f"layer '{lname}' ({cls})", objects)
        elif cls == "Lambda":
            layer = _lambda_layer(entry, f"layer '{lname}' (Lambda)", objects)
        elif cls in _MODEL_CLASSES:
            layer = _nested_model(entry, where, objects)
        elif cls == "InputLayer":
            for key, ok in (("sparse", (False, None)), ("ragged", (False, None)), ("optional", (False, None))):
                if not _same(cfg.get(key), ok):
                    raise ValueError(f"InputLayer: `{key}`={cfg.get(key)!r} is not supported by kerust")
            dtype = _input_dtype(cfg.get("dtype"), "InputLayer")
            shape = cfg.get("batch_shape", cfg.get("batch_input_shape"))
            layer = InputLayer(shape=_batch_shape(shape, f"InputLayer '{lname}'"), name=lname, dtype=dtype)
            outputs[(lname, 0)] = [layer.output]
        else:
            kwargs = _translate_layer_config(cls, cfg)
            shape_keys = ("batch_input_shape", "batch_shape", "input_shape", "batch_size", "input_dim")
            for key in shape_keys[:-1] if cls == "Embedding" else shape_keys:  # Embedding's own input_dim
                kwargs.pop(key, None)
            layer = layers_module.deserialize({"class_name": cls, "config": kwargs})
        made[lname] = layer
        nodes = entry.get("inbound_nodes", [])
        if not isinstance(nodes, list):
            raise ValueError(f"{who}: 'inbound_nodes' must be a list")
        for k, node in enumerate(nodes):
            if hasattr(layer, "_call_from_node"):  # Keras's keyword arguments (attention layers)
                if not isinstance(node, dict):
                    raise ValueError(f"{who} node {k}: an inbound node must be an object with `args` and `kwargs`")
                refs, as_list = layer._call_from_node(node, _tensor_ref)
            else:
                refs, as_list = _node_call(layer, node, f"{who} node {k}", mask_ops)
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
            if callable(as_list):
                result = as_list(tensors)
            else:
                result = made[lname](tensors if as_list else tensors[0])
            outputs[(lname, k)] = list(result) if isinstance(result, (list, tuple)) else [result]
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


def _build_model(config: Any, where: str, objects: _Objects | None = None) -> tuple[Any, Any]:
    """(the model a Keras config describes, its compile_config)."""
    objects = objects or _Objects()
    if not isinstance(config, dict):
        raise ValueError(f"Cannot load {where}: the model config must be a JSON object, received "
                         f"{type(config).__name__}")
    class_name = config.get("class_name")
    if not isinstance(class_name, str):
        raise ValueError(f"Cannot load {where}: the model config has no 'class_name' string")
    try:
        user = _user_class(config, "the model", objects)
        if user is not None:
            from .models import Model

            if not issubclass(user, Model):
                raise ValueError(f"the file holds a {class_name!r} layer, not a model")
            return _subclassed_model(config, user, f"model ({class_name})"), config.get("compile_config")
    except (ValueError, TypeError, KeyError) as exc:
        raise _reraise(exc, f"Cannot load {where}: {exc}") from exc
    if class_name == "Sequential":
        kwargs, input_shape, layer_list, compile_config = _parse_sequential(config, where, objects)
        return _build_sequential(kwargs, input_shape, layer_list), compile_config
    if class_name in ("Functional", "Model"):
        try:
            model = _build_functional(config, where, objects)
        except (ValueError, TypeError, KeyError) as exc:
            raise _reraise(exc, f"Cannot load {where}: {exc}") from exc
        return model, config.get("compile_config")
    raise ValueError(f"Cannot load {where}: kerust loads Sequential, Functional and (with their classes in "
                     f"`custom_objects` or the registry) subclassed models; this file holds a {class_name!r} model")


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


def _metrics_from_config(value: Any, objects: "_Objects") -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"unsupported metrics {value!r}")
    out: list[Any] = []
    for m in value:
        if isinstance(m, dict) and isinstance(m.get("class_name"), str):
            user = _user_metric(m, objects)
            if user is not None:
                out.append(user)
                continue
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


def _user_metric(entry: dict, objects: "_Objects") -> Any:
    """A user's `keras.metrics.Metric` subclass that `custom_objects` or the registry has for this entry, built
    from its config; None when neither has it."""
    from ._registry import lookup

    registered = entry.get("registered_name")
    found = lookup(registered if isinstance(registered, str) else None, entry["class_name"],
                   objects.custom_objects)
    if not (isinstance(found, type) and issubclass(found, metrics_module.Metric)) or found._builtin:
        return None
    cfg = entry.get("config") or {}
    if not isinstance(cfg, dict):
        raise ValueError(f"metric {entry['class_name']!r}: the config must be an object")
    return found.from_config(cfg)


def _compile_from_config(model: Any, cc: Any, where: str, objects: Any = None) -> bool:
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
        objects = objects or _Objects()
        if isinstance(metrics, dict):
            metrics = {k: _metrics_from_config(v if isinstance(v, list) or v is None else [v], objects)
                       for k, v in metrics.items()}
        elif isinstance(metrics, list) and metrics and all(isinstance(m, list) or m is None for m in metrics):
            metrics = [_metrics_from_config(m, objects) for m in metrics]
        else:
            metrics = _metrics_from_config(metrics, objects)
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


def model_from_config(config: Any, custom_objects: Any = None) -> Any:
    """A fresh (uncompiled, newly initialised) model from a Keras model config (`to_json()` output); custom layers
    and subclassed models come from `custom_objects` or the registry."""
    return _build_model(config, "the model config", _Objects(custom_objects))[0]


def load_model(filepath: Any, custom_objects: Any = None, compile: bool = True, safe_mode: bool = True) -> Any:
    """Load a Keras v3 ``.keras`` file written by Keras or by kerust: a Sequential, Functional or subclassed model.

    Layers are built from Keras's built-in classes that kerust implements, and custom layers and models from the
    classes in ``custom_objects`` (keyed by the ``registered_name`` the file gives, e.g. ``"Custom>MyLayer"``, or
    by class name) or registered with ``keras.saving.register_keras_serializable``; nothing named in the file is
    imported. A Lambda layer's marshalled Python function is only loaded with ``safe_mode=False`` (or after
    ``keras.config.enable_unsafe_deserialization()``). A compiled model gets the optimizer state stored in the
    file, so training resumes where it stopped."""
    objects = _Objects(custom_objects, safe_mode)
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
        sequential = False
        if isinstance(config, dict) and config.get("class_name") == "Sequential":
            try:  # Keras's Sequential, not a user's class of that name
                sequential = _user_class(config, "the model", objects) is None
            except (ValueError, TypeError) as exc:
                raise _reraise(exc, f"Cannot load {where}: {exc}") from exc
        if sequential:
            kwargs, input_shape, layer_list, compile_config = _parse_sequential(config, where, objects)
        weights_where = f"'{path}' ({_WEIGHTS})"
        h5 = _open_h5_bytes(archive.read(_WEIGHTS), weights_where)
        try:
            if sequential and input_shape is None and not _preprocess.starts_on_host(layer_list):
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
                    model, compile_config = _build_model(config, where, objects)
            except (ValueError, TypeError) as exc:
                if str(exc).startswith("Cannot load"):
                    raise
                raise _reraise(exc, f"Cannot load {where}: {exc}") from exc
            if model._core is None and _holds_weights(h5, weights_where):
                raise archive.error(f"model '{model.name}' is not built (the file gives no input shape), so its "
                                    "weights cannot be placed")
            plan = _plan_weights(h5, _model_specs(model), weights_where, _is_subclassed(model))
            _assign_weights(model, plan, weights_where)
            _preprocess.load_host_assets(model, archive.read, archive.has, where)
            # with the optimizer state the file holds, training resumes where it stopped
            if compile and _compile_from_config(model, compile_config, where, objects) and \
                    model._core is not None:
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
    _assign_weights(model, _plan_weights(h5, specs, where, _is_subclassed(model)), where)
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
        return [metrics_module.serialize(metrics_module.get(m)) for m in items]

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
    return _preprocess.keras_sequential_entry(model, out, _DTYPE_POLICY)  # a host TextVectorization in front


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
    from ._custom import is_custom
    from .layers import Lambda
    from .models import Functional, Sequential

    if isinstance(layer, Sequential):
        return _sequential_entry(layer)
    if isinstance(layer, Functional):
        return _functional_entry(layer)
    if getattr(layer, "_is_input_layer", False):
        return {"module": "keras.layers", "class_name": "InputLayer", "config": layer.get_config(),
                "registered_name": None}
    if type(layer) is Lambda:
        entry = {"module": "keras.layers", "class_name": "Lambda", "config": _lambda_config(layer),
                 "registered_name": None}
    elif getattr(layer, "_keras_builtin", False):  # Keras's own class, computed by kerust as a traced call
        entry = {"module": "keras.layers", "class_name": layer.class_name, "config": _keras_layer_config(layer),
                 "registered_name": None}
        build_config = layer._keras_build_config()
        if build_config is not None:
            entry["build_config"] = build_config
        return entry
    elif _is_subclassed(layer) or is_custom(layer):
        entry = _custom_entry(layer)
    else:
        return {"module": "keras.layers", "class_name": layer.class_name, "config": _keras_layer_config(layer),
                "registered_name": None}
    build_config = _build_config(layer)
    if build_config is not None:
        entry["build_config"] = build_config
    return entry


def _custom_entry(obj: Any) -> dict:
    """A custom layer or subclassed model as Keras serializes it: its class's module (null for ``__main__``), class
    name, ``get_config()`` (with Keras's dtype policy), and its registered name ("<package>><name>" when registered
    with ``register_keras_serializable``, the class name otherwise)."""
    cls = type(obj)
    who = f"{'Model' if _is_subclassed(obj) else 'Layer'} '{obj.name}' ({cls.__name__})"
    config = _user_get_config(obj, who)
    if "dtype" in config and (config["dtype"] in (None, "float32") or isinstance(config["dtype"], dict)):
        config["dtype"] = json.loads(json.dumps(_DTYPE_POLICY))
    module = getattr(cls, "__module__", None)
    return {"module": None if module == "__main__" else module, "class_name": cls.__name__,
            "config": {str(k): _plain(v, f"{who}: get_config()[{k!r}]") for k, v in config.items()},
            "registered_name": get_registered_name(cls)}


def _user_get_config(obj: Any, who: str) -> dict:
    from .models import Model

    try:
        config = obj.get_config()
    except NotImplementedError as exc:
        if not _is_subclassed(obj):
            raise
        if type(obj).get_config is Model.get_config:  # no get_config of its own: Keras's base config
            return {"name": obj.name, "trainable": bool(obj.trainable)}
        raise NotImplementedError(
            f"{who}: get_config() raised NotImplementedError ({exc}): kerust's `keras.Model.get_config()` has no "
            "base config for subclassed models yet, so `super().get_config()` cannot be called in one; return "
            "the constructor arguments (and `name`) from `get_config` without it to save this model as .keras "
            "(`save_weights` works without a config)") from exc
    if not isinstance(config, dict):
        raise TypeError(f"{who}: get_config() must return a dict, it returned {type(config).__name__}")
    return dict(config)


def _lambda_config(layer: Any) -> dict:
    """Keras's Lambda config: its function (a registered function's reference, or a lambda's marshalled code),
    `output_shape` only when given, and `arguments`."""
    who = f"Lambda '{layer.name}'"
    out: dict[str, Any] = {}
    for key, value in layer.get_config().items():
        if key == "dtype":
            out[key] = json.loads(json.dumps(_DTYPE_POLICY))
        elif not (key == "output_shape" and value is None):
            out[key] = _plain(value, f"{who}: `{key}`")
    return out


def _plain(value: Any, who: str) -> Any:
    """A get_config() value as JSON data, as Keras's ``serialize_keras_object`` writes it (NumPy values, tuples,
    functions and layers included)."""
    from ._registry import serialize_function
    from .layers import Layer
    from .models import Model

    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return {"class_name": "__numpy__", "config": {"value": value.tolist(), "dtype": value.dtype.name}}
    if isinstance(value, (list, tuple)):
        return [_plain(v, who) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v, who) for k, v in value.items()}
    if isinstance(value, (Layer, Model)):
        return _layer_entry(value)
    if callable(value) and hasattr(value, "__name__"):
        return _plain(serialize_function(value), who)
    raise TypeError(f"{who}: cannot write {value!r} ({type(value).__name__}) to config.json; return plain "
                    "numbers, strings, lists and dicts from get_config")


def _shapes_of(structure: Any) -> Any:
    from ._graph import KerasTensor

    if isinstance(structure, KerasTensor):
        return [None if d is None else int(d) for d in structure.shape]
    if isinstance(structure, (list, tuple)):
        return [_shapes_of(v) for v in structure]
    if isinstance(structure, dict):
        return {str(k): _shapes_of(v) for k, v in structure.items()}
    return None


def _build_config(obj: Any) -> dict | None:
    """Keras's ``build_config``: the input shape a custom layer was first called (built) with, or a built
    subclassed model's input shape(s); None when not built."""
    if _is_subclassed(obj):
        if obj._core is None:
            return None
        shapes = [[None, *[int(d) for d in s]] for s in obj._input_sample_shapes()]
        return {"input_shape": shapes[0] if len(shapes) == 1 else shapes}
    nodes = [n for n in getattr(obj, "_inbound_nodes", []) if not n.is_input]
    if not nodes:
        return None
    node = nodes[0]
    args = node._trace_args[0] if node._trace_args else None
    return {"input_shape": _shapes_of(args[0] if args else node.call_args)}


def keras_config(model: Any) -> dict:
    """The model's ``config.json`` as Keras 3 writes it (Sequential, Functional or subclassed; nested models and
    custom layers inside)."""
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
        for name, data in _preprocess.host_assets(model):  # a host TextVectorization's vocabulary
            zf.writestr(name, data)
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

