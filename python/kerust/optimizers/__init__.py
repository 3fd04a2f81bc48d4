"""Keras optimizers. The objects hold configuration; the update runs in Rust, inside the model's engine.

Once a model is compiled with an optimizer, ``optimizer.learning_rate`` and ``optimizer.iterations`` read
and write the engine's live values, so changing the learning rate between epochs takes effect.
"""

from __future__ import annotations

from typing import Any, Optional, Union

from .. import _core
from . import schedules
from .schedules import LearningRateSchedule
from .. import _json

# a fixed rate, or a schedule evaluated at each step (as Keras accepts)
_LearningRate = Union[float, LearningRateSchedule]


class Optimizer:
    """Base of the optimizers: the configuration lives here, the update runs in the engine."""
    _defaults: dict = {}

    def __init__(self, learning_rate: _LearningRate, name: Optional[str] = None, **kwargs: Any) -> None:
        common = {"weight_decay", "clipnorm", "clipvalue", "global_clipnorm"}
        ignored = {"use_ema", "ema_momentum", "ema_overwrite_frequency", "loss_scale_factor",
                   "gradient_accumulation_steps", "jit_compile"}
        unknown = set(kwargs) - common - ignored - set(self._defaults)
        if unknown:
            raise TypeError(f"Unrecognized keyword arguments passed to {type(self).__name__}: {sorted(unknown)}")
        if kwargs.get("use_ema") or kwargs.get("gradient_accumulation_steps"):
            raise ValueError(f"{type(self).__name__}: use_ema and gradient_accumulation_steps are not supported yet")
        if sum(kwargs.get(k) is not None for k in ("clipnorm", "clipvalue", "global_clipnorm")) > 1:
            raise ValueError("Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set.")
        self.name = name or type(self).__name__.lower()
        self._config: dict = {k: kwargs.get(k, v) for k, v in self._defaults.items()}
        for k in common:
            self._config[k] = kwargs.get(k)
        self._learning_rate = learning_rate
        self._core: Optional[_core.CoreModel] = None
        _core.validate("optimizer", _json.dumps(self._serialized()))

    def _serialized(self) -> dict:
        return {"class_name": type(self).__name__, "config": self.get_config()}

    def get_config(self) -> dict:
        """The optimizer's arguments as a dict, in Keras's shape."""
        lr: Any = self._learning_rate
        lr = lr._serialized() if isinstance(lr, LearningRateSchedule) else float(self.learning_rate)
        config = {"name": self.name, "learning_rate": lr}
        config.update(self._config)
        return config

    @classmethod
    def from_config(cls, config: dict) -> "Optimizer":
        """A new optimizer from a `get_config()` dict (a schedule config is rebuilt)."""
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = schedules.deserialize(config["learning_rate"])
        return cls(**config)

    def _attach(self, core: _core.CoreModel) -> None:
        self._core = core

    @property
    def learning_rate(self) -> float:
        """The current rate (a schedule's value at the current step)."""
        if self._core is not None and self._core.learning_rate is not None:
            return float(self._core.learning_rate)
        if isinstance(self._learning_rate, LearningRateSchedule):
            return self._learning_rate(0)
        return float(self._learning_rate)

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        if isinstance(self._learning_rate, LearningRateSchedule):
            raise TypeError("This optimizer was created with a `LearningRateSchedule` object as its "
                            "`learning_rate` constructor argument, hence its learning rate is not settable.")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise ValueError(f"learning_rate must be a non-negative number, received {value!r}")
        value = float(value)
        if self._core is not None:
            self._core.learning_rate = value
        self._learning_rate = value

    lr = learning_rate

    @property
    def iterations(self) -> int:
        """The number of updates applied so far (0 until the model is compiled)."""
        return int(self._core.iterations) if self._core is not None else 0

    def __getattr__(self, key: str) -> Any:
        config = self.__dict__.get("_config", {})
        if key in config:
            return config[key]
        raise AttributeError(f"{type(self).__name__!s} has no attribute {key!r}")


class SGD(Optimizer):
    """Stochastic gradient descent, with optional momentum (Nesterov's with `nesterov=True`)."""
    _defaults = {"momentum": 0.0, "nesterov": False}

    def __init__(self, learning_rate: _LearningRate = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(learning_rate, momentum=momentum, nesterov=nesterov, **kwargs)


class Adam(Optimizer):
    """Adam, with Keras's bias-corrected step size and `epsilon` outside the square root; `amsgrad=True` uses the
    largest second moment seen so far."""
    _defaults = {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7, "amsgrad": False}

    def __init__(self, learning_rate: _LearningRate = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, amsgrad: bool = False, **kwargs: Any) -> None:
        super().__init__(learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, amsgrad=amsgrad,
                         **kwargs)


class AdamW(Optimizer):
    """Adam with decoupled weight decay (`weight_decay`, 0.004 by default)."""
    _defaults = {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7, "amsgrad": False}

    def __init__(self, learning_rate: _LearningRate = 0.001, weight_decay: float = 0.004, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-7, amsgrad: bool = False, **kwargs: Any) -> None:
        super().__init__(learning_rate, weight_decay=weight_decay, beta_1=beta_1, beta_2=beta_2,
                         epsilon=epsilon, amsgrad=amsgrad, **kwargs)


class RMSprop(Optimizer):
    """Divides each step by a moving root mean square of the gradients (minus their moving mean with
    `centered=True`), with optional momentum."""
    _defaults = {"rho": 0.9, "momentum": 0.0, "epsilon": 1e-7, "centered": False}

    def __init__(self, learning_rate: _LearningRate = 0.001, rho: float = 0.9, momentum: float = 0.0,
                 epsilon: float = 1e-7, centered: bool = False, **kwargs: Any) -> None:
        super().__init__(learning_rate, rho=rho, momentum=momentum, epsilon=epsilon, centered=centered,
                         **kwargs)


class Adagrad(Optimizer):
    """Scales each weight's step by the square root of its accumulated squared gradients."""
    _defaults = {"initial_accumulator_value": 0.1, "epsilon": 1e-7}

    def __init__(self, learning_rate: _LearningRate = 0.001, initial_accumulator_value: float = 0.1,
                 epsilon: float = 1e-7, **kwargs: Any) -> None:
        super().__init__(learning_rate, initial_accumulator_value=initial_accumulator_value, epsilon=epsilon,
                         **kwargs)


class Adadelta(Optimizer):
    """Scales steps by moving averages of the squared gradients and of the squared updates."""
    _defaults = {"rho": 0.95, "epsilon": 1e-7}

    def __init__(self, learning_rate: _LearningRate = 0.001, rho: float = 0.95, epsilon: float = 1e-7,
                 **kwargs: Any) -> None:
        super().__init__(learning_rate, rho=rho, epsilon=epsilon, **kwargs)


class Adamax(Optimizer):
    """A variant of Adam that uses the infinity norm of the gradients in place of the second moment."""
    _defaults = {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}

    def __init__(self, learning_rate: _LearningRate = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, **kwargs: Any) -> None:
        super().__init__(learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, **kwargs)


class Nadam(Optimizer):
    """Adam with Nesterov momentum, as Keras computes it."""
    _defaults = {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}

    def __init__(self, learning_rate: _LearningRate = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, **kwargs: Any) -> None:
        super().__init__(learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, **kwargs)


_BY_NAME = {cls.__name__.lower(): cls for cls in (SGD, Adam, AdamW, RMSprop, Adagrad, Adadelta, Adamax, Nadam)}


def get(identifier: Any) -> Optimizer:
    """An optimizer from a name (``"adam"``), a config dict, or an optimizer instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier.lower())
        if cls is None:
            raise ValueError(
                f"Could not interpret optimizer identifier: {identifier!r}. "
                f"Expected one of: {', '.join(sorted(_BY_NAME))}"
            )
        return cls()
    if isinstance(identifier, dict) and isinstance(identifier.get("class_name"), str):
        cls = _BY_NAME.get(identifier["class_name"].lower())
        if cls is not None:
            return cls.from_config(identifier.get("config", {}))
    raise ValueError(f"Could not interpret optimizer identifier: {identifier!r}")


def serialize(optimizer: Optimizer) -> dict:
    """The optimizer's `{"class_name": ..., "config": ...}` dict."""
    return optimizer._serialized()
