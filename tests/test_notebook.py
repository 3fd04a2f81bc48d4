"""examples/mnist.ipynb, executed in a real Jupyter kernel (nbclient + ipykernel running this interpreter) on a
small slice of MNIST, and checked for what a notebook user sees: the model's HTML summary table, the text summary,
a progress bar that is redrawn in place, a test accuracy the small run reliably reaches, the three figures and no
errors. The kernel gets its own kernelspec (in a temporary JUPYTER_PATH) whose command is ``sys.executable``, so it
runs the same environment as pytest; a cell appended to the run checks that.
"""

from __future__ import annotations

import base64
import re
import struct
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import kerust
import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
ipykernel_kernelspec = pytest.importorskip("ipykernel.kernelspec")
pytest.importorskip("matplotlib")

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "mnist.ipynb"
KERNEL_NAME = "kerust-notebook-test"

# The small run: 4000 training images (125 steps of 32), 2 epochs, 2000 test images; about 5-10 s of training.
N_TRAIN, EPOCHS, N_TEST = 4000, 2, 2000
STEPS = -(-N_TRAIN // 32)
# With the notebook's seed the run is deterministic (0.929 here); seeds 0-3 gave 0.914-0.938. The margin covers any
# seed, not noise.
MIN_TEST_ACCURACY = 0.85

_CHECK_CELL = """
import sys, kerust
print("EXECUTABLE", sys.executable)
print("KERUST", kerust.__file__)
print("HISTORY", sorted(history.history), [len(v) for v in history.history.values()])
"""

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _cell_index(nb: Any, marker: str) -> int:
    """Index of the only code cell whose source contains ``marker``."""
    found = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and marker in c.source]
    assert len(found) == 1, f"expected one code cell containing {marker!r}, found {found}"
    return found[0]


def _stdout(cell: Any) -> str:
    return "".join(o.text for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")


def _pngs(cell: Any) -> List[bytes]:
    return [base64.b64decode(o.data["image/png"]) for o in cell.outputs
            if o.output_type in ("display_data", "execute_result") and "image/png" in o.get("data", {})]


def render_like_jupyter(text: str) -> str:
    """The stream text as Jupyter front ends show it (JupyterLab, Notebook 7 and VS Code treat stream output
    alike): a backspace deletes the character before it on the same line, and a carriage return that is not part
    of a line ending moves to the start of the line, where the following text overwrites what is there."""
    previous = None
    while previous != text:
        previous = text
        text = re.sub(r"[^\n]\x08", "", text)
    text = re.sub(r"\r+\n", "\n", text)
    lines = []
    for line in text.split("\n"):
        shown = ""
        for piece in line.split("\r"):
            shown = piece + shown[len(piece):]
        lines.append(shown)
    return "\n".join(lines)


def _png_size(png: bytes) -> Tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert png[12:16] == b"IHDR"
    return struct.unpack(">II", png[16:24])


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The notebook after a run in a fresh kernel, with the check cell appended at the end."""
    home = tmp_path_factory.mktemp("jupyter")
    ipykernel_kernelspec.write_kernel_spec(
        home / "kernels" / KERNEL_NAME, overrides={"display_name": "kerust test (pytest's Python)"})
    work = tmp_path_factory.mktemp("notebook_cwd")
    env: Dict[str, str] = {
        "JUPYTER_PATH": str(home),                       # our kernelspec comes first
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),    # connection files
        "IPYTHONDIR": str(home / "ipython"),             # no profile or history in the user's home
        "KERUST_NB_TRAIN": str(N_TRAIN),
        "KERUST_NB_EPOCHS": str(EPOCHS),
        "KERUST_NB_TEST": str(N_TEST),
    }
    nb = nbformat.read(str(NOTEBOOK), as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(_CHECK_CELL.strip()))
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        mp.delenv("KERUST_NB_SEED", raising=False)
        client = nbclient.NotebookClient(nb, kernel_name=KERNEL_NAME, timeout=300, startup_timeout=120,
                                         resources={"metadata": {"path": str(work)}})
        client.execute()
    yield nb


def test_committed_notebook_is_clean_and_valid() -> None:
    nb = nbformat.read(str(NOTEBOOK), as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert len(code) >= 8
    assert all(not c.outputs and c.execution_count is None for c in code), "commit the notebook without outputs"
    assert "import kerust as keras" in "".join(c.source for c in code)


def test_parameters_come_from_the_environment_and_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first code cell alone (it only reads the environment), run here rather than in a kernel."""
    nb = nbformat.read(str(NOTEBOOK), as_version=4)
    source = next(c.source for c in nb.cells if c.cell_type == "code")
    assert "KERUST_NB_TRAIN" in source

    def run() -> Dict[str, Any]:
        namespace: Dict[str, Any] = {}
        exec(compile(source, "<first cell>", "exec"), namespace)  # the notebook's own first cell
        return namespace

    for key in ("KERUST_NB_TRAIN", "KERUST_NB_TEST", "KERUST_NB_EPOCHS", "KERUST_NB_SEED"):
        monkeypatch.delenv(key, raising=False)
    ns = run()
    assert (ns["N_TRAIN"], ns["N_TEST"], ns["EPOCHS"], ns["SEED"]) == (60000, 10000, 3, 42)
    monkeypatch.setenv("KERUST_NB_TRAIN", " 6000 ")
    monkeypatch.setenv("KERUST_NB_EPOCHS", "1")
    ns = run()
    assert (ns["N_TRAIN"], ns["EPOCHS"]) == (6000, 1)
    for bad, message in (("abc", "received 'abc'"), ("0", "received 0"), ("60001", "received 60001")):
        monkeypatch.setenv("KERUST_NB_TRAIN", bad)
        with pytest.raises(ValueError, match=rf"KERUST_NB_TRAIN must be an integer in \[1, 60000\]; {message}"):
            run()


def test_kernel_ran_this_interpreter_and_this_kerust(executed: Any) -> None:
    out = _stdout(executed.cells[-1])
    exe = re.search(r"^EXECUTABLE (.+)$", out, re.M)
    mod = re.search(r"^KERUST (.+)$", out, re.M)
    assert exe and mod, out
    assert Path(exe.group(1)).resolve() == Path(sys.executable).resolve()
    assert Path(mod.group(1)).resolve() == Path(kerust.__file__).resolve()
    assert f"HISTORY ['accuracy', 'loss', 'val_accuracy', 'val_loss'] {[EPOCHS] * 4}" in out


def test_no_errors_or_warnings(executed: Any) -> None:
    for i, cell in enumerate(executed.cells):
        if cell.cell_type != "code":
            continue
        assert not [o for o in cell.outputs if o.output_type == "error"], f"cell {i}"
        err = "".join(o.text for o in cell.outputs if o.output_type == "stream" and o.name == "stderr")
        assert not re.search(r"Traceback|Error|Warning:", err), f"cell {i} wrote to stderr: {err}"
        assert cell.execution_count is not None


def test_parameters_cell_reports_the_small_run(executed: Any) -> None:
    out = _stdout(executed.cells[_cell_index(executed, "KERUST_NB_TRAIN")])
    assert out == f"training on {N_TRAIN} images for {EPOCHS} epoch(s), testing on {N_TEST}, seed 42\n"
    out = _stdout(executed.cells[_cell_index(executed, "load_data()")])
    assert f"x_train ({N_TRAIN}, 28, 28, 1) y_train ({N_TRAIN}, 10)" in out
    assert f"x_test  ({N_TEST}, 28, 28, 1) y_test  ({N_TEST}, 10)" in out


def test_model_is_displayed_as_an_html_table(executed: Any) -> None:
    cell = executed.cells[_cell_index(executed, "keras.Sequential([")]
    results = [o for o in cell.outputs if o.output_type == "execute_result"]
    assert len(results) == 1 and "text/html" in results[0].data
    page = results[0].data["text/html"]
    assert re.search(r"<table>\s*<thead><tr><th>Layer \(type\)</th><th>Output Shape</th><th>Param #</th></tr>"
                     r"</thead>\s*<tbody>", page)
    rows = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td><td[^>]*>(.*?)</td></tr>", page)
    assert rows == [
        ("conv2d (Conv2D)", "(None, 26, 26, 32)", "320"),
        ("max_pooling2d (MaxPooling2D)", "(None, 13, 13, 32)", "0"),
        ("conv2d_1 (Conv2D)", "(None, 11, 11, 64)", "18,496"),
        ("max_pooling2d_1 (MaxPooling2D)", "(None, 5, 5, 64)", "0"),
        ("conv2d_2 (Conv2D)", "(None, 3, 3, 64)", "36,928"),
        ("flatten (Flatten)", "(None, 576)", "0"),
        ("dense (Dense)", "(None, 64)", "36,928"),
        ("dense_1 (Dense)", "(None, 10)", "650"),
    ]
    assert "Total params: 93,322 (364.54 KB)" in page and "Non-trainable params: 0 (0.00 B)" in page
    assert page.count("<table>") == 1 and page.count("</table>") == 1

    text = _stdout(executed.cells[_cell_index(executed, "model.summary()")])
    assert text.startswith('Model: "sequential"\n┏') and "│ conv2d_2 (Conv2D)" in text
    assert " Total params: 93,322 (364.54 KB)\n" in text


def test_progress_bar_is_redrawn_in_place(executed: Any) -> None:
    cell = executed.cells[_cell_index(executed, "model.fit(")]
    streams = [o for o in cell.outputs if o.output_type == "stream" and o.name == "stdout"]
    raw = "".join(o.text for o in streams)
    # The bar was written many times (one message per redraw) ...
    redraws = re.findall(rf"\r\x1b\[1m *\d+/{STEPS}\x1b\[0m", raw)
    assert len(redraws) >= 2 * EPOCHS and len(streams) >= 2 * EPOCHS, repr(raw[:500])
    # ... but only "Epoch i/n" and each epoch's finished bar end a line: every other update rewrites the line.
    assert raw.count("\n") == 2 * EPOCHS, repr(raw)
    shown = _ANSI.sub("", render_like_jupyter(raw)).split("\n")
    assert shown[-1] == ""
    metrics = r"accuracy: \d\.\d{4} - loss: \d\.\d{4} - val_accuracy: \d\.\d{4} - val_loss: \d\.\d{4}"
    for epoch in range(EPOCHS):
        assert shown[2 * epoch] == f"Epoch {epoch + 1}/{EPOCHS}"
        bar = shown[2 * epoch + 1]
        assert re.fullmatch(rf"{STEPS}/{STEPS} ━{{20}} \d+s \d+(us|ms|s)/step - {metrics} *", bar), repr(bar)
    assert len(shown) == 2 * EPOCHS + 1
    # the raw text held intermediate states that the display overwrote
    assert len(re.findall(rf" +\d+/{STEPS} ", _ANSI.sub("", raw))) >= 1


def test_test_accuracy_and_the_figures(executed: Any) -> None:
    out = _stdout(executed.cells[_cell_index(executed, "model.evaluate(")])
    match = re.search(r"^Test accuracy: (\d\.\d{4})$", out, re.M)
    assert match, out
    accuracy = float(match.group(1))
    assert accuracy > MIN_TEST_ACCURACY, out
    assert re.search(r"^Test loss: \d+\.\d{4}$", out, re.M)

    curves = _pngs(executed.cells[_cell_index(executed, "history.history[key]")])
    grid_cell = executed.cells[_cell_index(executed, "model.predict(")]
    grid = _pngs(grid_cell)
    matrix_cell = executed.cells[_cell_index(executed, "np.add.at(confusion")]
    matrix = _pngs(matrix_cell)
    assert len(curves) == len(grid) == len(matrix) == 1
    for png in curves + grid + matrix:
        width, height = _png_size(png)
        assert width >= 300 and height >= 200 and len(png) > 5000

    # the grid's and the confusion matrix's counts agree with evaluate's accuracy
    wrong = re.search(rf"^(\d+) of {N_TEST} test images misclassified$", _stdout(grid_cell), re.M)
    assert wrong and int(wrong.group(1)) == round((1 - accuracy) * N_TEST)
    matrix_out = _stdout(matrix_cell)
    assert f"overall: {accuracy:.4f}" in matrix_out
    per_class = re.findall(r"^digit (\d): (\d\.\d{3}) \((\d+) images\)$", matrix_out, re.M)
    assert [int(d) for d, _, _ in per_class] == list(range(10))
    assert sum(int(n) for _, _, n in per_class) == N_TEST

