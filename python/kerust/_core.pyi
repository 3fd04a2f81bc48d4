"""Type stubs for ``kerust._core``, the compiled Rust engine (source: ``src/bindings/mod.rs``).

Parameter names, kinds and defaults are the ones pyo3 exposes (``inspect.signature``); checked by
``python -m mypy.stubtest kerust._core``. Arrays going in must be C-contiguous ``float32`` (the Python layer
converts them); arrays coming out are new ``float32`` arrays owned by the caller.
"""

from typing import Callable, Final, List, Optional, Sequence, Tuple, Union, final

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "CoreModel",
    "set_random_seed",
    "loss_value",
    "initial_value",
    "validate",
    "graph_shapes",
    "schedule_value",
    "set_num_threads",
    "get_num_threads",
    "simd_level",
    "METRIC_NAMES",
    "OP_NAMES",
    "op_eval",
    "op_shape",
    "__version__",
]

_F32Array = NDArray[np.float32]
# One array per model input (or output); a single array stands for a one-element list.
_Arrays = Union[_F32Array, Sequence[_F32Array]]
# Per output: its sample weights or None; a single vector weighs the only output.
_Weights = Union[_F32Array, Sequence[Optional[_F32Array]], None]
# The engine's running logs: (name, value) pairs in Keras's order, e.g. [("loss", 0.3), ("accuracy", 0.9)].
_Logs = List[Tuple[str, float]]
# Called as progress(step, logs) with the GIL held, from inside fit/evaluate/predict; an exception stops the loop.
_Progress = Callable[[int, _Logs], object]

__version__: Final[str]
# The SIMD level the GEMM and element-wise kernels dispatch to on this CPU: "avx512", "avx2+fma" or "baseline".
simd_level: Final[str]
# Every metric name the engine accepts (the one source of truth for kerust.metrics).
METRIC_NAMES: Final[List[str]]
OP_NAMES: Final[List[str]]

@final
class CoreModel:
    """The compiled model: owns every weight, gradient and optimizer slot."""

    def __new__(
        cls,
        spec_json: str,
        input_shape: Sequence[int],
        seed: Optional[int] = None,
        name: Optional[str] = None,
    ) -> CoreModel: ...
    @property
    def name(self) -> str:
        """The model's name, as given at construction (used in error messages)."""
    @property
    def iterations(self) -> int:
        """The optimizer's step count (0 before ``compile``)."""
    @property
    def nadam_u_product(self) -> float:
        """Nadam's running momentum-cache product (a Keras optimizer variable)."""
    @nadam_u_product.setter
    def nadam_u_product(self, value: float) -> None: ...
    @property
    def learning_rate(self) -> Optional[float]:
        """The current learning rate (a schedule's value at the current step); None before ``compile``."""
    @learning_rate.setter
    def learning_rate(self, lr: float) -> None: ...
    def layer_info(self) -> List[Tuple[str, str, List[int], int, int]]:
        """Per layer: (name, class_name, output_shape, params, trainable_params)."""
    def output_shape(self) -> List[int]:
        """The first output's sample shape."""
    def output_shapes(self) -> List[List[int]]:
        """Every output's sample shape."""
    def compile(self, loss_json: str, optimizer_json: str, metrics_json: str) -> None: ...
    def compile_heads(self, heads_json: str, optimizer_json: str) -> None:
        """One ``{"loss", "weight", "loss_name", "metrics"}`` per output."""
    def prepare(self, x: _Arrays, y: _Arrays, sample_weight: _Weights = None) -> None: ...
    def begin_epoch(self, n: int, shuffle: bool) -> None: ...
    def begin_pass(self, n: int, shuffle: bool) -> None: ...
    def reset_logs(self) -> None: ...
    def train_steps(
        self,
        x: _Arrays,
        y: _Arrays,
        sample_weight: _Weights,
        batch_size: int,
        max_steps: int,
        progress: Optional[_Progress] = None,
    ) -> Tuple[int, bool, _Logs]:
        """Up to ``max_steps`` batches of the current epoch. Returns (steps, finished, logs)."""
    def evaluate(
        self,
        x: _Arrays,
        y: _Arrays,
        sample_weight: _Weights,
        batch_size: int,
        progress: Optional[_Progress] = None,
    ) -> _Logs: ...
    def predict(self, x: _Arrays, batch_size: int, progress: Optional[_Progress] = None) -> List[_F32Array]:
        """One array per model output."""
    def train_on_batch(self, x: _Arrays, y: _Arrays, sample_weight: _Weights = None) -> _Logs: ...
    def inspect(
        self,
        x: _Arrays,
        y: _Arrays,
        sample_weight: _Weights = None,
        with_grads: bool = True,
    ) -> Tuple[float, List[_F32Array], List[_F32Array], Optional[List[_F32Array]], List[_F32Array]]:
        """One side-effect-free training-mode forward/backward pass: (loss, layer outputs, gradients at the layer
        outputs, gradients at the inputs, weight gradients). Without ``with_grads`` the layer-output gradients and
        weight gradients are empty and the input gradients None."""
    def get_weights(self) -> List[_F32Array]: ...
    def set_weights(self, first: int, weights: Sequence[_F32Array], expected: int, who: str) -> None:
        """Replace ``expected`` weights starting at ``first``; ``who`` names the model or layer in errors."""
    def layer_weight_ranges(self) -> List[Tuple[int, int]]:
        """Per layer: (index of its first weight, number of weights)."""
    def set_layer_trainable(self, index: int, trainable: bool) -> None: ...
    def reset_states(self, index: Optional[int] = None) -> None: ...
    def get_optimizer_state(self) -> Tuple[int, List[str], List[List[_F32Array]]]:
        """(iterations, slot names, per trainable weight its slot arrays shaped like the weight)."""
    def set_optimizer_state(self, iterations: int, slots: Sequence[Sequence[_F32Array]]) -> None: ...
    def take_non_finite_source(self) -> Optional[str]:
        """Where non-finite values first appeared in training since the last call (then cleared)."""
    def claim_training(self) -> None: ...
    def release_training(self) -> None: ...

def set_random_seed(seed: int) -> None:
    """Make every model built from now on reproducible."""

def loss_value(loss_json: str, y_true: _F32Array, y_pred: _F32Array) -> float:
    """The mean loss of ``loss_json`` on NumPy arrays."""

def initial_value(initializer_json: str, shape: List[int]) -> List[float]:
    """An initializer's values for a variable of ``shape`` (flat)."""

def schedule_value(schedule_json: str, step: int) -> float:
    """A schedule's learning rate at ``step``."""

def validate(kind: str, json: str) -> None:
    """Check a name or config with the engine's own parser; raises ValueError/TypeError when invalid.

    ``kind``: "layer:<ClassName>", "loss", "optimizer", "metric", "activation", "initializer", "schedule".
    """

def graph_shapes(spec_json: str) -> List[List[int]]:
    """The sample shape of every node's output in a graph spec (builds and drops its layers)."""

def op_shape(config_json: str, shapes: List[List[int]]) -> List[int]:
    """The symbolic output shape of one op (sizes; -m stands for m times the batch size)."""

def op_eval(config_json: str, inputs: List[NDArray[np.float64]], seed: int) -> NDArray[np.float64]:
    """One op run now on float64 arrays."""

def set_num_threads(n: int) -> None:
    """Set the number of worker threads for numeric work (0: back to the default)."""

def get_num_threads() -> int:
    """The number of worker threads kerust's numeric work runs on in this process."""
