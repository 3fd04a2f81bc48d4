"""``keras.optimizers.schedules``: learning rate as a function of the optimizer step. The engine evaluates
them (before every update, at ``optimizer.iterations``); calling one here asks the same code."""

from __future__ import annotations

from typing import Any, Optional, Sequence

from .. import _core
from .. import _json


class LearningRateSchedule:
    """Base of the schedules: `schedule(step)` is the learning rate at optimizer step `step`."""
    def __init__(self, **config: Any) -> None:
        self._config = config
        _core.validate("schedule", _json.dumps(self._serialized()))

    def get_config(self) -> dict:
        """The schedule's arguments as a dict."""
        return dict(self._config)

    @classmethod
    def from_config(cls, config: dict) -> "LearningRateSchedule":
        """A new schedule from a `get_config()` dict."""
        return cls(**config)

    def _serialized(self) -> dict:
        return {"module": "keras.optimizers.schedules", "class_name": type(self).__name__,
                "config": self.get_config(), "registered_name": None}

    def __call__(self, step: int) -> float:
        return float(_core.schedule_value(_json.dumps(self._serialized()), int(step)))

    def __getattr__(self, key: str) -> Any:
        config = self.__dict__.get("_config", {})
        if key in config:
            return config[key]
        raise AttributeError(key)


class ExponentialDecay(LearningRateSchedule):
    """`initial_learning_rate * decay_rate ** (step / decay_steps)`, the exponent rounded down with `staircase=True`."""
    def __init__(self, initial_learning_rate: float, decay_steps: int, decay_rate: float, staircase: bool = False,
                 name: str = "ExponentialDecay") -> None:
        super().__init__(initial_learning_rate=initial_learning_rate, decay_steps=decay_steps,
                         decay_rate=decay_rate, staircase=staircase, name=name)


class PiecewiseConstantDecay(LearningRateSchedule):
    """`values[0]` up to step `boundaries[0]`, then `values[1]` up to `boundaries[1]`, and so on: one more value than
    boundaries."""
    def __init__(self, boundaries: Sequence[int], values: Sequence[float],
                 name: str = "PiecewiseConstant") -> None:
        super().__init__(boundaries=list(boundaries), values=list(values), name=name)


class PolynomialDecay(LearningRateSchedule):
    """From `initial_learning_rate` to `end_learning_rate` over `decay_steps`, following
    `(1 - step / decay_steps) ** power`; `cycle=True` starts again with a longer period."""
    def __init__(self, initial_learning_rate: float, decay_steps: int, end_learning_rate: float = 0.0001,
                 power: float = 1.0, cycle: bool = False, name: str = "PolynomialDecay") -> None:
        super().__init__(initial_learning_rate=initial_learning_rate, decay_steps=decay_steps,
                         end_learning_rate=end_learning_rate, power=power, cycle=cycle, name=name)


class InverseTimeDecay(LearningRateSchedule):
    """`initial_learning_rate / (1 + decay_rate * step / decay_steps)`, the ratio rounded down with `staircase=True`."""
    def __init__(self, initial_learning_rate: float, decay_steps: int, decay_rate: float, staircase: bool = False,
                 name: str = "InverseTimeDecay") -> None:
        super().__init__(initial_learning_rate=initial_learning_rate, decay_steps=decay_steps,
                         decay_rate=decay_rate, staircase=staircase, name=name)


class CosineDecay(LearningRateSchedule):
    """Cosine decay to `alpha * initial_learning_rate` over `decay_steps`, optionally after a linear warm-up to
    `warmup_target` over `warmup_steps` (the decay then starts from `warmup_target`)."""
    def __init__(self, initial_learning_rate: float, decay_steps: int, alpha: float = 0.0,
                 name: str = "CosineDecay", warmup_target: Optional[float] = None, warmup_steps: int = 0) -> None:
        super().__init__(initial_learning_rate=initial_learning_rate, decay_steps=decay_steps, alpha=alpha,
                         name=name, warmup_target=warmup_target, warmup_steps=warmup_steps)


_CLASSES = {c.__name__: c for c in (ExponentialDecay, PiecewiseConstantDecay, PolynomialDecay, InverseTimeDecay,
                                    CosineDecay)}


def deserialize(config: dict) -> LearningRateSchedule:
    """A schedule from its `{"class_name": ..., "config": ...}` dict."""
    cls = _CLASSES.get(config.get("class_name", ""))
    if cls is None:
        raise ValueError(f"Unknown learning rate schedule {config.get('class_name')!r}; kerust has "
                         f"{', '.join(_CLASSES)}")
    return cls.from_config(config.get("config", {}))


def serialize(schedule: LearningRateSchedule) -> dict:
    """The schedule's `{"class_name": ..., "config": ...}` dict."""
    return schedule._serialized()
