"""The documentation site: ``mkdocs build --strict`` succeeds, the pages exist, the API reference documents every
public name, and the compatibility page lists every name kerust and its engine export.

The site is built once per run into a temporary folder (about 10-20 s). The compatibility tables are generated
by ``docs/hooks.py``; the name lists here are collected independently (every public class and function of each
module, the engine's lists read from ``src/``), so a table that misses a name fails here.
"""

from __future__ import annotations

import html
import importlib.util
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Set

import pytest

ROOT = Path(__file__).resolve().parent.parent
NEEDED = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python", "pymdownx")


def _missing_tools() -> List[str]:
    missing = []
    for name in NEEDED:
        try:
            if importlib.util.find_spec(name) is None:
                missing.append(name)
        except ModuleNotFoundError:
            missing.append(name)
    return missing


pytestmark = pytest.mark.skipif(
    bool(_missing_tools()),
    reason=f"the docs toolchain is not installed ({', '.join(_missing_tools())}): "
    "pip install mkdocs mkdocs-material 'mkdocstrings[python]'",
)

# module -> its API page (docs/api/<page>.md)
API_PAGES = {
    "kerust.models": "models",
    "kerust.layers": "layers",
    "kerust.optimizers": "optimizers",
    "kerust.optimizers.schedules": "schedules",
    "kerust.ops": "ops",
    "kerust.random": "random",
    "kerust.losses": "losses",
    "kerust.metrics": "metrics",
    "kerust.callbacks": "callbacks",
    "kerust.regularizers": "regularizers",
    "kerust.utils": "utils",
    "kerust.datasets.mnist": "datasets",
    "kerust.config": "config",
    "kerust.saving": "saving",
    "kerust.wrappers": "wrappers",
    "kerust.onnx": "onnx",
}
PAGES = ["index", "compatibility", "guarantees", "performance", "examples", "onnx", "scikit-learn", "scale-out",
         "api"] + [f"api/{p}" for p in API_PAGES.values()]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--clean", "-f", str(ROOT / "mkdocs.yml"),
         "-d", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{log[-6000:]}"
    assert "WARNING" not in log, log[-6000:]
    return out


def _page(site: Path, name: str) -> str:
    path = site / name / "index.html" if name != "index" else site / "index.html"
    assert path.is_file(), f"{path} was not built"
    return path.read_text(encoding="utf-8")


def _article(page: str) -> str:
    """The page's content, without the navigation and the table of contents."""
    start, end = page.index("<article"), page.index("</article>")
    return page[start:end]


def _text(page: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", _article(page)))


def _code_spans(page: str) -> Set[str]:
    return {html.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in re.findall(r"<code>(.*?)</code>", page, re.S)}


def _public(module: Any, kind: Any) -> List[Any]:
    """Every public class/function ``module`` defines (those in ``__all__`` when it has one)."""
    names = getattr(module, "__all__", None) or [n for n in vars(module) if not n.startswith("_")]
    out = []
    for name in names:
        obj = getattr(module, name)
        if kind(obj) and obj.__module__ == module.__name__ and obj.__name__ == name:
            out.append(obj)
    return out


def _rust_names(path: str, const: str = "NAMES") -> List[str]:
    text = (ROOT / path).read_text(encoding="utf-8")
    m = re.search(r"pub const " + const + r": &\[&str\] = &\[(.*?)\];", text, re.S)
    assert m, f"no {const} list in {path}"
    names = re.findall(r'"([^"]*)"', m.group(1))
    assert names, f"empty {const} list in {path}"
    return names


def _import(name: str) -> Any:
    import importlib

    return importlib.import_module(name)


# ---- the build ------------------------------------------------------------------------------------------------
def test_site_builds_strictly_with_every_page(site: Path) -> None:
    for name in PAGES:
        assert _article(_page(site, name)).strip(), name
    assert (site / "search" / "search_index.json").is_file()
    assert not list(site.rglob("hooks.py")), "docs/hooks.py must not be published"


def test_snippets_are_included_not_copied(site: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    bench = (ROOT / "BENCHMARKS.md").read_text(encoding="utf-8")

    def first_prose_line(source: str, section: str) -> str:
        body = source.split(f"[start:{section}] -->", 1)[1].split(f"[end:{section}]", 1)[0]
        line = next(ln for ln in body.splitlines() if ln.strip() and not ln.startswith(("|", "```", "-", "<!")))
        return re.sub(r"`([^`]*)`", r"\1", line.strip())[:60]

    guarantees, performance = _text(_page(site, "guarantees")), _text(_page(site, "performance"))
    assert first_prose_line(readme, "guarantees") in guarantees
    assert first_prose_line(readme, "errors") in guarantees
    assert "bad input" in guarantees and "Determinism." in guarantees
    assert first_prose_line(bench, "body") in performance
    assert "matrixmultiply" in performance  # the README's GEMM section
    assert first_prose_line(readme, "differences") in _text(_page(site, "compatibility"))
    index = _page(site, "index")
    assert "layers.Conv2D" in _text(index) and "model.fit" in _text(index)  # the tutorial from the README
    for name in ("index", "guarantees", "performance", "compatibility", "examples"):
        assert "--8&lt;--" not in _page(site, name) and "--8<--" not in _article(_page(site, name)), name


def test_snippet_paths_are_checked() -> None:
    import yaml

    config = yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=yaml.BaseLoader)
    extensions = {}
    for ext in config["markdown_extensions"]:
        extensions.update(ext if isinstance(ext, dict) else {ext: {}})
    assert extensions["pymdownx.snippets"]["check_paths"] == "true"
    assert config["plugins"][1]["mkdocstrings"]["handlers"]["python"]["paths"] == ["python"]


# ---- the API reference ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("module_name", sorted(API_PAGES))
def test_api_page_documents_every_public_name(site: Path, module_name: str) -> None:
    if module_name == "kerust.wrappers" and importlib.util.find_spec("sklearn") is None:
        names = re.findall(r"^class (\w+)\(", (ROOT / "python/kerust/wrappers.py").read_text(), re.M)
        names = [n for n in names if not n.startswith("_")]
    else:
        module = _import(module_name)
        names = [o.__name__ for o in _public(module, lambda o: inspect.isclass(o) or inspect.isfunction(o))]
    assert names, module_name
    page = _page(site, f"api/{API_PAGES[module_name]}")
    for name in names:
        assert f'id="{module_name}.{name}"' in page, f"{module_name}.{name} is not documented"
    assert "kerust._core" not in _text(page)


def test_api_pages_show_real_signatures(site: Path) -> None:
    layers = _article(_page(site, "api/layers"))
    assert 'id="kerust.layers.Conv2D"' in layers and "kernel_size" in layers and "filters" in layers
    models = _article(_page(site, "api/models"))
    for method in ("fit", "evaluate", "predict", "compile", "save", "summary"):
        assert f'id="kerust.models.Sequential.{method}"' in models, method
    assert "validation_split" in models
    config = _text(_page(site, "api/config"))
    assert "set_num_threads" in config and "bit-identical" in config  # the docstring, not just the name


# ---- the compatibility page -------------------------------------------------------------------------------------
def test_compatibility_page_lists_every_name(site: Path) -> None:
    import kerust
    import kerust.saving

    page = _article(_page(site, "compatibility"))
    spans = _code_spans(page)
    plain = {s.rstrip("()").strip('"') for s in spans}

    expected: Dict[str, List[str]] = {
        "layer (engine)": _rust_names("src/layers/mod.rs", "CLASS_NAMES"),
        "activation": _rust_names("src/activations.rs"),
        "initializer": _rust_names("src/initializers.rs"),
        "loss name": _rust_names("src/losses.rs"),
        "metric name": _rust_names("src/metrics.rs"),
        "optimizer name": _rust_names("src/optimizers.rs"),
        "schedule": _rust_names("src/schedules.rs"),
        "model member": [n for n in dir(kerust.Sequential) if not n.startswith("_")],
    }
    for module in (kerust.layers, kerust.losses, kerust.metrics, kerust.optimizers, kerust.optimizers.schedules,
                   kerust.callbacks, kerust.regularizers):
        expected[module.__name__] = [c.__name__ for c in _public(module, inspect.isclass)]
    missing = {what: [n for n in names if n not in plain] for what, names in expected.items()}
    assert not any(missing.values()), f"not on the compatibility page: {missing}"

    functions = [f"{m.__name__}.{f.__name__}"
                 for m in (kerust.models, kerust.layers, kerust.utils, kerust.config, kerust.datasets.mnist,
                           kerust.saving, kerust.losses, kerust.metrics, kerust.optimizers,
                           kerust.optimizers.schedules, kerust.regularizers)
                 for f in _public(m, inspect.isfunction)]
    assert "kerust.utils.to_categorical" in functions and "kerust.config.set_num_threads" in functions
    assert [f for f in functions if f not in spans] == []

    # the layer table pairs every engine layer with its Python class and arguments
    for name in expected["layer (engine)"]:
        row = re.search(r"<tr>\s*<td><code>" + name + r"</code></td>(.*?)</tr>", page, re.S)
        assert row, name
        first = next(iter(inspect.signature(getattr(kerust.layers, name)).parameters), None)
        if first not in (None, "kwargs"):
            assert f"<code>{first}" in row.group(1), (name, first)


def test_compatibility_page_states_what_is_missing_and_refused(site: Path) -> None:
    text = _text(_page(site, "compatibility"))
    for name in ("kerust.Model", "kerust.layers.GroupQueryAttention", "kerust.backend",
                 "kerust.initializers"):
        assert name in text
    assert "label_smoothing" in text and "channels_first" in text and "noise_shape" in text
    assert "Deliberate differences" in text


# ---- the hook's own checks fail when the page would be wrong ------------------------------------------------------
@pytest.fixture()
def hooks() -> Any:
    spec = importlib.util.spec_from_file_location("kerust_docs_hooks", ROOT / "docs" / "hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_hook_rejects_stale_claims(hooks: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from mkdocs.exceptions import PluginError

    tables = hooks.Tables(ROOT)
    assert "`Conv2D`" in tables.render("layers")
    assert "`ignore_class`" in tables.render("refused")
    monkeypatch.setattr(hooks, "REFUSED", [("layers.Dense(4)", "a call that works")])
    with pytest.raises(PluginError, match="no longer raises"):
        tables.render("refused")
    monkeypatch.setattr(hooks, "ABSENT", [("kerust.layers", ["Dense"], "present")])
    with pytest.raises(PluginError, match=r"now has \['Dense'\]"):
        tables.render("absent")
    with pytest.raises(PluginError, match="only in the engine"):
        hooks.same("layer classes", ["Dense", "Conv3D"], ["Dense"])
    with pytest.raises(PluginError, match="unknown table marker"):
        tables.render("no-such-table")


def test_hook_reads_the_engine_name_lists(hooks: Any, tmp_path: Path) -> None:
    (tmp_path / "x.rs").write_text('pub const NAMES: &[&str] = &[\n    "a",\n    "b_c", // note\n];\n')
    assert hooks.rust_names(tmp_path, "x.rs") == ["a", "b_c"]
    from mkdocs.exceptions import PluginError

    with pytest.raises(PluginError):
        hooks.rust_names(tmp_path, "x.rs", "OTHER")
    import kerust

    optimizers = [c.__name__.lower() for c in _public(kerust.optimizers, inspect.isclass)
                  if c is not kerust.optimizers.Optimizer]
    assert len(optimizers) >= 8 and sorted(hooks.rust_names(ROOT, "src/optimizers.rs")) == sorted(optimizers)
