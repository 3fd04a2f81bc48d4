"""mkdocs hook: the tables of docs/compatibility.md, made from the code when the site is built.

The page holds markers such as ``<!-- kerust:layers -->``; each is replaced by a Markdown table built from what
kerust exports (the Python package, imported) and what its engine knows (the name lists in ``src/*.rs``), so the
page cannot fall behind the code. The hook also checks the page's other claims: the Python and engine lists
agree, the Keras names listed as missing are missing, and every call listed as refused raises. Any mismatch stops
the build with a ``PluginError`` naming it.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from mkdocs.exceptions import PluginError

PAGE = "compatibility.md"
MARKER = re.compile(r"<!--\s*kerust:([a-z-]+)\s*-->")

# Keras names that kerust does not have, with what to use instead. The hook checks that each is really absent
# (``owner`` is evaluated, then ``hasattr(owner, name)`` must be false), so the list cannot go stale silently.
ABSENT: List[Tuple[str, Sequence[str], str]] = [
    ("kerust.layers", ["GroupQueryAttention"], "other attention layers"),
    ("kerust", ["initializers"],
     "these modules: pass initializers by name (`kernel_initializer=\"he_normal\"`) or as Keras config dicts"),
    ("kerust", ["backend"], "the backend module"),
    ("kerust.Sequential", ["train_step", "from_config", "export"],
     "overriding `train_step`, `Sequential.from_config` (use `kerust.models.model_from_json`) and "
     "SavedModel export"),
]

# Calls that kerust refuses with ValueError or TypeError instead of silently ignoring an argument it does not
# implement. Evaluated at every build: one that stops raising fails the build until the page is updated.
REFUSED: List[Tuple[str, str]] = [
    ("layers.Dense(4, activation=lambda x: x)", "activations written in Python"),
    ("layers.Dense(4, dtype='float64')", "dtypes other than float32"),
    ("layers.Conv2D(8, 3, padding='causal')", "`causal` padding in Conv2D (Conv1D has it, as in Keras)"),
    ("layers.Conv2D(8, 3, data_format='channels_first')",
     "`channels_first` in the convolution layers and most others (the 3-D poolings and `SpatialDropout3D` take it)"),
    ("keras.Sequential([keras.Input((4, 4, 3)), layers.BatchNormalization(axis=1)])",
     "BatchNormalization over an axis other than the last"),
    ("layers.BatchNormalization(gamma_regularizer='l2')", "regularizers on BatchNormalization's gamma/beta"),
    ("layers.PReLU(alpha_regularizer='l2')", "regularizers and constraints on PReLU's alpha"),
    ("layers.MultiHeadAttention(2, 4, use_gate=True)",
     "`use_gate`, `sliding_window` and `flash_attention` in MultiHeadAttention"),
    ("layers.TimeDistributed(layers.LSTM(2))(keras.Input((3, 4, 2)), mask=keras.Input((3,)))",
     "a `(batch, time)` mask through TimeDistributed to a recurrent layer, which needs one value per inner step "
     "(Keras accepts the call and fails when the model runs)"),
    ("layers.Softmax(axis=1)", "Softmax over an axis other than the last"),
    ("layers.Bidirectional(layers.LSTM(4, stateful=True))", "`stateful` layers inside Bidirectional"),
    ("keras.Sequential([keras.Input((3, 4)), layers.LayerNormalization(axis=1)])",
     "LayerNormalization over axes that are not the trailing ones"),
    ("keras.Sequential([keras.Input((3,)), layers.Dense(3)]).compile(loss=losses.SparseCategoricalCrossentropy("
     "ignore_class=0))", "`ignore_class` in training (direct calls work; also CategoricalGeneralizedCrossEntropy)"),
    ("keras.Sequential([layers.Dense(1)]).compile(loss='mse', weighted_metrics=['mae'])", "`weighted_metrics`"),
    ("optimizers.Adam(use_ema=True)", "EMA of the weights (`use_ema`)"),
    ("optimizers.SGD(gradient_accumulation_steps=2)", "gradient accumulation"),
]


# ---- reading the code ------------------------------------------------------------------------------------------
def rust_names(root: Path, path: str, const: str = "NAMES") -> List[str]:
    """The strings of ``pub const <const>: &[&str] = &[...]`` in a Rust file of the engine."""
    text = (root / path).read_text(encoding="utf-8")
    m = re.search(r"pub const " + const + r": &\[&str\] = &\[(.*?)\];", text, re.S)
    if m is None:
        raise PluginError(f"docs/hooks.py: no `pub const {const}: &[&str]` list in {path}")
    return re.findall(r'"([^"]*)"', m.group(1))


def public_defined(module: Any, kind: Callable[[Any], bool]) -> List[Any]:
    """Public objects of ``kind`` that ``module`` defines (in ``__all__`` when it has one), in source order."""
    names = getattr(module, "__all__", None) or list(vars(module))
    out = []
    for name in names:
        obj = getattr(module, name, None)
        if name.startswith("_") or not kind(obj) or getattr(obj, "__module__", None) != module.__name__:
            continue
        if getattr(obj, "__name__", name) != name:  # an alias such as MaxPool2D = MaxPooling2D
            continue
        out.append(obj)
    return out


def aliases(module: Any, obj: Any) -> List[str]:
    return [n for n, v in vars(module).items() if v is obj and n != obj.__name__ and not n.startswith("_")]


def _default(value: Any) -> str:
    text = value.__name__ if inspect.isbuiltin(value) or inspect.isfunction(value) else repr(value)
    return text.replace("|", "\\|")


def arguments(func: Any, skip: Iterable[str] = ()) -> str:
    """``a``, ``b=1``, ... of a callable's signature, without ``self`` and ``**kwargs``."""
    if inspect.isclass(func) and func.__init__ is object.__init__:
        return ""
    target = func.__init__ if inspect.isclass(func) else func
    try:
        params = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return ""
    parts = []
    for p in params:
        if p.name == "self" or p.name in skip or p.kind is inspect.Parameter.VAR_KEYWORD:
            continue
        if p.kind is inspect.Parameter.VAR_POSITIONAL:
            parts.append(f"`*{p.name}`")
        elif p.default is inspect.Parameter.empty:
            parts.append(f"`{p.name}`")
        else:
            parts.append(f"`{p.name}={_default(p.default)}`")
    return ", ".join(parts)


def summary(obj: Any) -> str:
    """The first sentence of a docstring, on one line (empty when there is none)."""
    doc = inspect.getdoc(obj) if getattr(obj, "__doc__", None) else None
    if not doc:
        return ""
    text = " ".join(doc.split("\n\n")[0].split())
    m = re.match(r"(.+?\.)(\s|$)", text)
    return (m.group(1) if m else text).replace("|", "\\|")


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(cell or " " for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def code(names: Iterable[str]) -> str:
    return ", ".join(f"`{n}`" for n in names)


def same(what: str, engine: Iterable[str], python: Iterable[str]) -> None:
    engine, python = set(engine), set(python)
    if engine != python:
        raise PluginError(f"docs/hooks.py: {what} differ between the engine and Python: only in the engine "
                          f"{sorted(engine - python)}, only in Python {sorted(python - engine)}")


# ---- the tables --------------------------------------------------------------------------------------------------
class Tables:
    def __init__(self, root: Path) -> None:
        import kerust
        import kerust.saving  # noqa: F401  (loaded lazily by kerust)

        self.root = root
        self.kerust = kerust

    def rust(self, path: str, const: str = "NAMES") -> List[str]:
        return rust_names(self.root, path, const)

    def layers(self) -> str:
        layers = self.kerust.layers
        names = self.rust("src/layers/mod.rs", "CLASS_NAMES") + self.rust("src/graph/merge.rs", "MERGE_CLASSES")
        # preprocessing layers that run in Python on the host (never in the engine), registered in _CLASSES too
        host = ["TextVectorization"]
        # Keras's layers that kerust computes as traced calls of keras.ops (python/kerust/_attention.py)
        traced = ["MultiHeadAttention", "Attention", "AdditiveAttention", "TimeDistributed"]
        # (python/kerust/_vision_layers.py)
        traced += ["ZeroPadding2D", "ZeroPadding3D", "Cropping2D", "Cropping3D", "UpSampling2D", "UpSampling3D",
                   "UnitNormalization", "GroupNormalization", "ActivityRegularization", "GaussianDropout",
                   "AlphaDropout"]
        # (python/kerust/_preprocessing_layers.py)
        traced += ["Rescaling", "Resizing", "CenterCrop", "Normalization", "CategoryEncoding", "Discretization",
                   "RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation", "RandomCrop", "RandomContrast",
                   "RandomBrightness"]
        # (python/kerust/_volumetric_layers.py)
        traced += ["Conv3D", "MaxPooling3D", "AveragePooling3D", "GlobalAveragePooling3D", "GlobalMaxPooling3D",
                   "SpatialDropout3D"]
        same("layer classes", names + host + traced, getattr(layers, "_CLASSES", {}))
        base = set(inspect.signature(layers.Layer.__init__).parameters)
        rows = [("`Layer`", "", "", "the base class; every layer has "
                 + code(n for n in dir(layers.Layer) if not n.startswith("_"))),
                ("`Input`, `InputLayer`", "", arguments(layers.InputLayer), "the model's input shape")]
        for name in names:
            cls = getattr(layers, name)
            # the base arguments, except one a class declares itself (Embedding's `input_dim` is its own)
            skip = base - set(inspect.signature(cls.__init__).parameters)
            rows.append((f"`{name}`", code(aliases(layers, cls)), arguments(cls, skip=skip), summary(cls)))
        # layers written in Python over keras.ops (traced into the engine's graph, like a custom layer)
        for name in ("Lambda", *traced):
            cls = getattr(layers, name)
            rows.append((f"`{name}`", "", arguments(cls, skip=base), summary(cls)))
        for name in host:
            cls = getattr(layers, name)
            rows.append((f"`{name}`", "", arguments(cls, skip=base), summary(cls)))
        return table(("layer", "also named", "arguments", "notes"), rows) + (
            "\n\nEvery layer also takes " + code(sorted(base - {"self", "kwargs"})) + " (`dtype` float32 only).")

    def activations(self) -> str:
        layer_classes = {c.lower(): c for c in self.rust("src/layers/mod.rs", "CLASS_NAMES")}
        rows = []
        engine = self.rust("src/activations.rs")
        for name in engine:
            layer = layer_classes.get(name.replace("_", ""))
            rows.append((f"`{name}`", "yes", f"`layers.{layer}`" if layer else ""))
        from kerust import activations

        same("activations the engine computes", engine, activations.ENGINE_NAMES)
        for name in sorted(set(activations.ALL_OBJECTS_DICT) - set(engine)):
            rows.append((f"`{name}`", "", ""))
        return table(("`kerust.activations` name", "`activation=` name", "also a layer"), rows) + (
            "\n\nEvery name is a function of `kerust.activations` (eager on arrays, traced in a custom layer's "
            "`call` or a `layers.Lambda`); those marked also work as `activation=` on `Dense`, `Conv2D` and the other "
            "engine layers and in `layers.Activation(name)`, which refuse the others with the engine's list.")

    def initializers(self) -> str:
        rows = []
        for name in self.rust("src/initializers.rs"):
            keras_class = "".join(part.capitalize() for part in name.split("_"))
            rows.append((f"`{name}`", f"`{keras_class}`"))
        return table(("name", "Keras class name (in a config dict)"), rows) + (
            "\n\nAny `*_initializer=` argument takes the name, or a Keras config dict "
            "`{\"class_name\": \"RandomNormal\", \"config\": {\"stddev\": 0.1}}` "
            "(`VarianceScaling` too, in this form only).")

    def losses(self) -> str:
        losses = self.kerust.losses
        by_name = getattr(losses, "_BY_NAME", {})
        engine = self.rust("src/losses.rs")
        same("loss names", engine, getattr(losses, "_ENGINE_NAMES", [n for n in by_name if n.islower()]))
        rows = []
        for cls in public_defined(losses, inspect.isclass):
            names = [n for n in by_name if n.islower() and by_name.get(n) is cls]
            rows.append((f"`{cls.__name__}`", code(names), arguments(cls), summary(cls)))
        return table(("class", "names for `compile(loss=...)`", "arguments", "notes"), rows)

    def metrics(self) -> str:
        metrics = self.kerust.metrics
        engine = self.rust("src/metrics.rs")
        same("metric names", engine, metrics.NAMES)
        rows = []
        for cls in public_defined(metrics, inspect.isclass):
            default = getattr(cls, "_default_name", "")
            rows.append((f"`{cls.__name__}`", f"`{default}`" if default else "", arguments(cls), summary(cls)))
        classes = table(("class", "default name", "arguments", "notes"), rows)
        return (classes + "\n\nNames for `compile(metrics=[...])`: " + code(engine) + ". `\"accuracy\"` (and "
                "`\"acc\"`) becomes binary, categorical or sparse categorical accuracy from the loss and the "
                "shapes, as in Keras.")

    def optimizers(self) -> str:
        optimizers = self.kerust.optimizers
        engine = self.rust("src/optimizers.rs")
        classes = [c for c in public_defined(optimizers, inspect.isclass) if c is not optimizers.Optimizer]
        same("optimizer names", engine, [c.__name__.lower() for c in classes])
        rows = [(f"`{c.__name__}`", f"`\"{c.__name__.lower()}\"`", arguments(c), summary(c)) for c in classes]
        rows.insert(0, ("`Optimizer`", "", "", "base class: `learning_rate`, `iterations` (live while compiled)"))
        return table(("optimizer", "name", "arguments", "notes"), rows) + (
            "\n\nEvery optimizer also takes `name`, `weight_decay`, `clipnorm`, `clipvalue` and "
            "`global_clipnorm` (at most one of the three clipping options), and a schedule as `learning_rate`.")

    def schedules(self) -> str:
        schedules = self.kerust.optimizers.schedules
        engine = self.rust("src/schedules.rs")
        classes = public_defined(schedules, inspect.isclass)
        same("schedules", engine, [c.__name__ for c in classes if c is not schedules.LearningRateSchedule])
        return table(("schedule", "arguments", "notes"),
                     [(f"`{c.__name__}`", arguments(c), summary(c)) for c in classes])

    def callbacks(self) -> str:
        callbacks = self.kerust.callbacks
        rows = [(f"`{c.__name__}`", arguments(c), summary(c)) for c in public_defined(callbacks, inspect.isclass)]
        return table(("callback", "arguments", "notes"), rows)

    def regularizers(self) -> str:
        regs = self.kerust.regularizers
        by_name = getattr(regs, "_BY_NAME", {})
        rows = []
        for cls in public_defined(regs, inspect.isclass):
            names = [n for n, c in by_name.items() if c is cls and n.islower()]
            rows.append((f"`{cls.__name__}`", code(names), arguments(cls), summary(cls)))
        return table(("regularizer", "name", "arguments", "notes"), rows) + (
            "\n\nFor `kernel_regularizer=` and `bias_regularizer=` on `Dense` and `Conv2D`.")

    def model(self) -> str:
        seq = self.kerust.Sequential
        functional = self.kerust.models.Functional
        rows = [("`Sequential(...)`", "constructor", arguments(seq), summary(seq)),
                ("`Model(inputs, outputs)`", "constructor", arguments(functional), summary(functional))]
        if "__call__" in vars(self.kerust.Model):
            rows.append(("`model(x)`", "call", arguments(seq.__call__), "the model on a batch of NumPy data, or on "
                         "symbolic tensors (a model used as a layer)"))
        for name, value in inspect.getmembers(seq):
            if name.startswith("_"):
                continue
            if isinstance(value, property):
                rows.append((f"`{name}`", "property", "", summary(value)))
            elif callable(value):
                rows.append((f"`{name}()`", "method", arguments(value), summary(value)))
        return table(("member", "kind", "arguments", "notes"), rows)

    def functions(self) -> str:
        k = self.kerust
        modules = [k.models, k.layers, k.utils, k.config, k.datasets.mnist, k.datasets.imdb, k.datasets.reuters,
                   k.datasets.fashion_mnist, k.datasets.cifar10, k.datasets.cifar100, k.datasets.boston_housing,
                   k.datasets.california_housing,
                   k.saving, k.losses, k.metrics,
                   k.optimizers, k.optimizers.schedules, k.regularizers, k.callbacks]
        rows = []
        for module in modules:
            for f in public_defined(module, inspect.isfunction):
                rows.append((f"`{module.__name__}.{f.__name__}`", arguments(f), summary(f)))
        rows.append(("`kerust.show_config`", arguments(k.show_config), "the same as `kerust.config.show_config`"))
        return table(("function", "arguments", "notes"), rows)

    def absent(self) -> str:
        rows = []
        for owner, names, note in ABSENT:
            obj = self._resolve(owner)
            present = [n for n in names if hasattr(obj, n)]
            if present:
                raise PluginError(f"docs/hooks.py: {owner} now has {present}: update ABSENT and {PAGE}")
            rows.append((code(f"{owner}.{n}" for n in names), note))
        return table(("Keras", "not in kerust"), rows)

    def refused(self) -> str:
        import numpy as np

        k = self.kerust

        class _CustomLayer(k.layers.Layer):
            def call(self, x: Any) -> Any:
                return x

        env: Dict[str, Any] = {"keras": k, "layers": k.layers, "losses": k.losses, "metrics": k.metrics,
                               "optimizers": k.optimizers, "np": np, "_CustomLayer": _CustomLayer}
        rows = []
        for expr, what in REFUSED:
            try:
                eval(expr, env)  # noqa: S307 (fixed expressions written above)
            except (ValueError, TypeError) as e:
                rows.append((f"`{expr}`", what, f"`{type(e).__name__}`"))
                continue
            except Exception as e:  # noqa: BLE001
                raise PluginError(f"docs/hooks.py: `{expr}` raised {type(e).__name__} ({e}), "
                                  "not ValueError/TypeError") from None
            raise PluginError(f"docs/hooks.py: `{expr}` no longer raises: update REFUSED and {PAGE}")
        return table(("call", "what is not supported", "raises"), rows)

    def _resolve(self, dotted: str) -> Any:
        obj: Any = self.kerust
        for part in dotted.split(".")[1:]:
            obj = getattr(obj, part)
        return obj

    def render(self, name: str) -> str:
        method: Optional[Callable[[], str]] = getattr(self, name.replace("-", "_"), None)
        if method is None or name.startswith("_") or name in ("render", "rust"):
            raise PluginError(f"docs/hooks.py: unknown table marker <!-- kerust:{name} --> in {PAGE}")
        return method()


# ---- mkdocs events ---------------------------------------------------------------------------------------------
_ROOT: Optional[Path] = None


def on_config(config: Any) -> Any:
    global _ROOT
    _ROOT = Path(config["config_file_path"]).resolve().parent
    # snippet paths are relative to the repository root, wherever mkdocs is started from
    snippets = config["mdx_configs"].get("pymdownx.snippets")
    if snippets is not None:
        snippets["base_path"] = [str(_ROOT)]
    return config


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    tables = Tables(_ROOT or Path(__file__).resolve().parent.parent)
    found = MARKER.findall(markdown)
    if not found:
        raise PluginError(f"docs/hooks.py: {PAGE} has no <!-- kerust:... --> table markers")
    return MARKER.sub(lambda m: tables.render(m.group(1)), markdown)
