"""Types: the stub of the compiled module matches it (stubtest, and real return values against the stub's
annotations), a user's fully annotated script passes ``mypy --strict`` with kerust's own types, kerust's package
passes mypy at the level set in mypy.ini, and the typed example runs.

The three mypy runs start together in the background (mypy is single-threaded and its first run, with an empty
cache, takes 5-20 s each); every test waits only for its own.
"""

from __future__ import annotations

import __future__
import importlib.util
import json
import os
import re
import subprocess
import sys
import types
import typing
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Tuple

import numpy as np
import pytest

import kerust
from kerust import _core, layers, losses, optimizers

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "typed_usage.py"
STUB = ROOT / "python" / "kerust" / "_core.pyi"
HAVE_MYPY = importlib.util.find_spec("mypy") is not None
needs_mypy = pytest.mark.skipif(not HAVE_MYPY, reason="mypy is not installed (pip install mypy)")
MYPY_TIMEOUT = 300

# A user's mistakes that kerust's types must catch under --strict: each line marked `# E: <code>` must be
# reported with that error code, and nothing else may be. If kerust were seen as untyped (Any), none would be.
MISUSE = '''\
from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

import kerust as keras
from kerust import _core, callbacks, layers

model = keras.Sequential([keras.Input(shape=(4,)), layers.Dense(2)])
model.compile(optimizer="adam", loss="mse")
x = np.zeros((2, 4), dtype=np.float32)
model.fit(x, x[:, :2], epochs="2")  # E: arg-type
history: callbacks.History = model.fit(x, x[:, :2], epochs=1, verbose=0)
losses: list[str] = history.history["loss"]
count: str = model.count_params()  # E: assignment
keras.optimizers.Adam(learning_rate=keras.optimizers.schedules.ExponentialDecay(1e-3, 10, 0.9))
keras.optimizers.Adam(learning_rate="fast")  # E: arg-type
loaded: keras.Sequential = keras.saving.load_model("m.keras")
keras.saving.no_such_function()  # E: attr-defined
threads: str = keras.config.get_num_threads()  # E: assignment
_core.set_num_threads("4")  # E: arg-type
core = _core.CoreModel("[]", [4])
weights: list[NDArray[np.float32]] = core.get_weights()
name: int = core.name  # E: assignment
core.learning_rate = None  # E: assignment
lr: float = core.learning_rate  # E: assignment
'''


class _Run:
    """A subprocess started now, waited for on first use."""

    def __init__(self, args: List[str], cwd: Path) -> None:
        self.args = args
        self.proc = subprocess.Popen(args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
        self._out: str | None = None

    def result(self) -> Tuple[int, str]:
        if self._out is None:
            try:
                self._out, _ = self.proc.communicate(timeout=MYPY_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.communicate()
                pytest.fail(f"timed out after {MYPY_TIMEOUT} s: {' '.join(self.args)}")
        return self.proc.returncode, self._out


@pytest.fixture(scope="module")
def mypy_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dict[str, _Run]]:
    if not HAVE_MYPY:
        pytest.skip("mypy is not installed (pip install mypy)")
    tmp = tmp_path_factory.mktemp("typing")
    misuse = tmp / "typed_misuse.py"
    misuse.write_text(MISUSE)
    py = sys.executable
    runs = {
        "stubtest": _Run([py, "-m", "mypy.stubtest", "kerust._core"], ROOT),
        # as a user runs it: no project config (--config-file ""), so only kerust's shipped types count
        "user": _Run([py, "-m", "mypy", "--strict", "--config-file", "", "--cache-dir", str(tmp / "cache-user"),
                      "--no-color-output", "--show-error-codes", str(EXAMPLE), str(misuse)], ROOT),
        "package": _Run([py, "-m", "mypy", "--config-file", str(ROOT / "mypy.ini"), "--cache-dir",
                         str(tmp / "cache-package"), "--no-color-output", "python/kerust"], ROOT),
    }
    yield runs
    for run in runs.values():
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.communicate()


@needs_mypy
def test_stubtest_finds_the_stub_matching_the_compiled_module(mypy_runs: Dict[str, _Run]) -> None:
    code, out = mypy_runs["stubtest"].result()
    assert code == 0 and "Success" in out, out


@needs_mypy
def test_user_script_passes_mypy_strict_and_misuse_is_caught(mypy_runs: Dict[str, _Run]) -> None:
    code, out = mypy_runs["user"].result()
    misuse = Path(mypy_runs["user"].args[-1])
    assert "typed_usage.py" not in out, f"examples/typed_usage.py does not pass mypy --strict:\n{out}"
    expected = {(i, m.group(1)) for i, line in enumerate(MISUSE.splitlines(), start=1)
                for m in [re.search(r"# E: ([a-z-]+)$", line)] if m}
    found = {(int(m.group(1)), m.group(2))
             for m in re.finditer(rf"^{re.escape(str(misuse))}:(\d+): error: .*\[([a-z-]+)\]$", out, re.M)}
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert found == expected and len(errors) == len(expected), out
    assert code == 1, out


@needs_mypy
def test_package_passes_mypy_at_the_level_of_mypy_ini(mypy_runs: Dict[str, _Run]) -> None:
    code, out = mypy_runs["package"].result()
    assert code == 0 and "Success" in out, out


def test_typed_example_runs() -> None:
    proc = subprocess.run([sys.executable, str(EXAMPLE), "--samples", "320", "--seed", "3"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    values = {k: float(v) for k, v in re.findall(r"^(\w+): (\S+)$", proc.stdout, re.M)}
    assert set(values) == {"train_loss", "recorded_loss", "learning_rate", "val_accuracy", "test_loss",
                           "test_accuracy", "predict_accuracy", "reload_max_difference", "params"}, proc.stdout
    assert values["params"] == 784 * 64 + 64 + 64 * 10 + 10
    assert values["recorded_loss"] == values["train_loss"]  # the callback saw what History recorded
    assert values["learning_rate"] == pytest.approx(1e-3)
    assert values["reload_max_difference"] == 0.0  # the reloaded .keras file predicts bit-identically
    # evaluate's accuracy and the accuracy of predict's argmax are the same number, on 64 test images
    assert values["predict_accuracy"] == values["test_accuracy"] == values["val_accuracy"]
    assert 0.0 < values["test_loss"] < 2.3 and values["test_accuracy"] > 0.2  # learned something in 10 steps


# ---- the stub's return types against the values the compiled module really returns -----------------------------
def _load_stub() -> types.ModuleType:
    """The stub executed as a module (annotations left as strings), so ``typing.get_type_hints`` reads it."""
    module = types.ModuleType("kerust_core_stub")
    code = compile(STUB.read_text(), str(STUB), "exec", flags=__future__.annotations.compiler_flag,
                   dont_inherit=True)
    exec(code, module.__dict__)
    return module


def _conforms(value: Any, tp: Any) -> bool:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is type(None):
        return value is None
    if origin is typing.Final:
        return _conforms(value, args[0])
    if origin is typing.Union:
        return any(_conforms(value, a) for a in args)
    if origin is list:
        return isinstance(value, list) and all(_conforms(v, args[0]) for v in value)
    if origin is tuple:
        return isinstance(value, tuple) and len(value) == len(args) and all(map(_conforms, value, args))
    if origin is np.ndarray:  # NDArray[np.float32]: ndarray[<shape>, dtype[float32]]
        (scalar,) = typing.get_args(args[-1])
        return isinstance(value, np.ndarray) and value.dtype == scalar
    if tp in (int, float):
        return type(value) is tp
    if tp in (str, bool):
        return isinstance(value, tp)
    raise AssertionError(f"the conformance check does not know the type {tp!r}")


def test_compiled_module_returns_what_the_stub_declares() -> None:
    stub = _load_stub()
    hints: Callable[[Any], Dict[str, Any]] = typing.get_type_hints
    x = np.arange(12, dtype=np.float32).reshape(4, 3) / 12
    y = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], dtype=np.float32)
    sw = np.ones(4, dtype=np.float32)
    dense = layers.Dense(2, activation="softmax", name="typed_dense")
    layer_json = json.dumps([{"class_name": "Dense", "config": dense.get_config()}])
    core = _core.CoreModel(layer_json, [3], seed=7, name="typed_core")
    progress_calls: List[Tuple[Any, Any]] = []

    def progress(step: Any, logs: Any) -> None:
        progress_calls.append((step, logs))

    loss_json = json.dumps(losses.get("categorical_crossentropy")._serialized())
    nadam_json = json.dumps(optimizers.Nadam(learning_rate=0.01)._serialized())
    schedule = optimizers.schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    calls: Dict[str, Callable[[], Any]] = {
        "compile_heads": lambda: core.compile_heads(json.dumps([{"loss": "mse", "weight": 1.0, "loss_name": None,
                                                                  "metrics": []}]), nadam_json),
        "compile": lambda: core.compile(loss_json, nadam_json, json.dumps(["accuracy"])),
        "layer_info": core.layer_info,
        "output_shape": core.output_shape,
        "output_shapes": core.output_shapes,
        "prepare": lambda: core.prepare(x, y, sw),
        "begin_epoch": lambda: core.begin_epoch(4, False),
        "reset_logs": core.reset_logs,
        "begin_pass": lambda: core.begin_pass(4, True),
        "train_steps": lambda: core.train_steps(x, y, sw, 2, 2, progress),
        "evaluate": lambda: core.evaluate(x, y, None, 2, progress),
        "predict": lambda: core.predict(x, 3, progress),
        "train_on_batch": lambda: core.train_on_batch(x, y),
        "inspect": lambda: core.inspect(x, y, sw),
        "get_weights": core.get_weights,
        "set_weights": lambda: core.set_weights(0, core.get_weights(), 2, "model 'typed_core'"),
        "layer_weight_ranges": core.layer_weight_ranges,
        "set_layer_trainable": lambda: core.set_layer_trainable(0, True),
        "reset_states": lambda: core.reset_states(),
        "get_optimizer_state": core.get_optimizer_state,
        "set_optimizer_state": lambda: core.set_optimizer_state(*core.get_optimizer_state()[::2]),
        "take_non_finite_source": core.take_non_finite_source,
        "claim_training": core.claim_training,
        "release_training": core.release_training,
    }
    methods = {n for n, v in vars(stub.CoreModel).items() if callable(v) and not n.startswith("_")}
    assert methods == set(calls), f"add a call for each new CoreModel method here: {methods ^ set(calls)}"
    for method, call in calls.items():  # in this order: compile first, training before reading its state
        value = call()
        declared = hints(getattr(stub.CoreModel, method))["return"]
        assert _conforms(value, declared), f"CoreModel.{method} returned {value!r}, the stub says {declared}"

    # the progress hook's arguments, as the stub's Callable type declares them
    progress_type = typing.get_args(hints(stub.CoreModel.predict)["progress"])[0]  # Optional[Callable[...]]
    (step_type, logs_type), _ = typing.get_args(progress_type)
    assert progress_calls and all(_conforms(s, step_type) and _conforms(lg, logs_type) for s, lg in progress_calls)
    # properties: the getters' types, then the setters taking their declared type
    for prop in ("name", "iterations", "nadam_u_product", "learning_rate"):
        value = getattr(core, prop)
        assert _conforms(value, hints(getattr(stub.CoreModel, prop).fget)["return"]), (prop, value)
    assert core.name == "typed_core" and core.iterations == 3
    core.learning_rate = 0.5
    core.nadam_u_product = 0.25
    assert (core.learning_rate, core.nadam_u_product) == (0.5, 0.25)
    setters = {p: hints(getattr(stub.CoreModel, p).fset) for p in ("learning_rate", "nadam_u_product")}
    assert [h[k] for h in setters.values() for k in h if k != "return"] == [float, float]

    # module functions and constants
    functions: Dict[str, Callable[[], Any]] = {
        "loss_value": lambda: _core.loss_value(loss_json, y, core.predict(x, 4)[0]),
        "graph_shapes": lambda: _core.graph_shapes(json.dumps({"layers": [{"class_name": "Dense",
                                                                           "config": {"units": 2}}],
                                                               "inputs": [[3]], "nodes": [{"layer": 0, "inputs": [0]}],
                                                               "outputs": [1]})),
        "schedule_value": lambda: _core.schedule_value(json.dumps(schedule._serialized()), 20),
        "validate": lambda: _core.validate("loss", json.dumps("mse")),
        "initial_value": lambda: _core.initial_value(json.dumps("ones"), [2, 3]),
        "get_num_threads": _core.get_num_threads,
        "op_shape": lambda: _core.op_shape(json.dumps({"op": "matmul"}), [[-1, 3], [3, 4]]),
        "op_eval": lambda: _core.op_eval(json.dumps({"op": "add"}), [np.ones((2, 3)), np.ones(3)], 0),
    }
    # changing process-wide state (the seed, the thread count) is left to the tests of those functions
    not_called = {"set_random_seed", "set_num_threads"}
    declared_functions = {n for n, v in vars(stub).items()
                          if isinstance(v, types.FunctionType) and v.__module__ == stub.__name__}
    assert declared_functions == set(functions) | not_called
    assert _core.schedule_value(json.dumps(schedule._serialized()), 20) == pytest.approx(0.025)
    for name, call in functions.items():
        value = call()
        assert _conforms(value, hints(getattr(stub, name))["return"]), (name, value)
    for name, hint in hints(stub).items():
        assert _conforms(getattr(_core, name), hint), name
    assert set(stub.__all__) == set(_core.__all__)
    assert kerust.__version__ == _core.__version__
