"""In CI (`./test.sh` sets KERUST_CI=1) the optional packages behind the ecosystem tests must be importable, so
that their tests run instead of skipping: notebook, docs site, typing, scikit-learn, ONNX."""

from __future__ import annotations

import importlib
import os

import pytest

OPTIONAL_FOR_TESTS = ["sklearn", "joblib", "onnx", "onnxruntime", "nbclient", "nbformat", "ipykernel",
                      "matplotlib", "mypy", "mkdocs", "mkdocstrings", "material", "hypothesis", "tensorboardX",
                      "tensorboard", "pydot"]


@pytest.mark.skipif(os.environ.get("KERUST_CI") != "1", reason="only enforced under ./test.sh (KERUST_CI=1)")
@pytest.mark.parametrize("module", OPTIONAL_FOR_TESTS)
def test_optional_test_dependency_is_installed(module: str) -> None:
    importlib.import_module(module)


def test_plain_import_loads_none_of_them() -> None:
    import subprocess
    import sys

    code = ("import sys, kerust; heavy = [m for m in %r if m in sys.modules]; print(heavy)"
            % (["sklearn", "onnx", "onnxruntime", "matplotlib", "h5py", "mkdocs"],))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
