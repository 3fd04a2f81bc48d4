"""scikit-learn estimators around kerust models: `KerasClassifier` and `KerasRegressor`.

They follow scikit-learn's estimator contract, so `cross_val_score`, `GridSearchCV`, `Pipeline` and
`sklearn.base.clone` work on them:

```python
import kerust as keras
from kerust import layers
from kerust.wrappers import KerasClassifier

def build(n_features_in, n_classes, hidden=32):
    model = keras.Sequential([keras.Input((n_features_in,)),
                              layers.Dense(hidden, activation="relu"),
                              layers.Dense(n_classes, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model

clf = KerasClassifier(build, hidden=64, epochs=10, random_state=0)
```

How keyword arguments are routed:

- the wrapper's own arguments (`epochs`, `batch_size`, `verbose`, `validation_split`, `callbacks`, `shuffle`,
  `random_state`, `optimizer`, `loss`, `metrics`, `warm_start`, `num_threads`, and `class_weight` on the
  classifier) configure training;
- any other keyword argument goes to the `model` function: `hidden=64` and `model__hidden=64` both call
  `model(hidden=64)` (the prefixed form can also be set later, through `set_params` or a parameter grid);
- `fit__<name>=value` is passed to `Sequential.fit` as `<name>=value`;
- parameters of the `model` function named `n_features_in`, `input_shape`, `n_classes` (classifier) or
  `n_outputs` (regressor) receive the values from the training data unless given explicitly.

scikit-learn is an optional dependency of kerust: `import kerust` never imports it; this module does.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import os
import random
import tempfile
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.preprocessing import LabelEncoder
    from sklearn.utils import check_random_state
    from sklearn.utils.class_weight import compute_sample_weight
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, column_or_1d
except ImportError as exc:  # pragma: no cover - exercised only without scikit-learn
    raise ImportError(
        "kerust.wrappers needs scikit-learn, which is not installed: pip install scikit-learn"
    ) from exc

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _sk_validate_data
except ImportError:  # pragma: no cover - older scikit-learn

    def _sk_validate_data(estimator: Any, *args: Any, **kwargs: Any) -> Any:
        return estimator._validate_data(*args, **kwargs)


from . import config as _config
from . import losses as _losses
from . import optimizers as _optimizers
from .callbacks import Callback
from .models import Model, Sequential, load_model
from .utils import set_random_seed

__all__ = ["KerasClassifier", "KerasRegressor"]

_MODEL_PREFIX = "model__"
_FIT_PREFIX = "fit__"
_SEED_LIMIT = 2**31 - 1


@contextlib.contextmanager
def _seeded(seed: Optional[int]) -> Iterator[None]:
    """Seed kerust (and Python's and NumPy's global generators, as ``set_random_seed`` does) for the block,
    then give Python and NumPy back the states they had: a seeded fit does not disturb the caller's random
    streams. kerust's own generator keeps going from the seed (its state cannot be read back)."""
    if seed is None:
        yield
        return
    py_state = random.getstate()
    np_state = np.random.get_state()
    set_random_seed(seed)
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


@contextlib.contextmanager
def _threads(n: Optional[int], who: str) -> Iterator[None]:
    """Run the block on ``n`` kerust threads (``kerust.config.set_num_threads``), then go back to the previous
    count. The count is per process: this is for one estimator per process (``GridSearchCV(n_jobs=k)`` workers).
    Results do not depend on it: kerust is bit-identical for any thread count."""
    if n is None:
        yield
        return
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{who}: num_threads must be a positive int or None, received {n!r}")
    previous = _config.requested_num_threads()
    _config.set_num_threads(int(n))
    try:
        yield
    finally:
        _config.set_num_threads(previous)


def _accepted_names(fn: Callable[..., Any]) -> Tuple[Optional[set], bool]:
    """(names ``fn`` accepts by keyword, whether it takes ``**kwargs``); (None, True) if it cannot be inspected."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None, True
    names = {p.name for p in sig.parameters.values()
             if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}
    var_kw = any(p.kind == inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
    return names, var_kw


def _fresh_optimizer(opt: Any) -> Any:
    """An optimizer instance given as a parameter is copied (from its config) for each model it compiles, so
    clones and refits never share optimizer state; names and config dicts are resolved by ``compile``."""
    if isinstance(opt, _optimizers.Optimizer):
        return type(opt).from_config(opt.get_config())
    return opt


def _check_sample_weight(who: str, sample_weight: Any, n: int) -> Optional[np.ndarray]:
    """None, or one finite non-negative weight per sample, not all zero (scikit-learn's rules)."""
    if sample_weight is None:
        return None
    sw = np.asarray(sample_weight)
    if sw.dtype.kind not in "biuf":
        raise TypeError(f"{who}: sample_weight must be numeric, received dtype {sw.dtype}")
    if sw.ndim == 0:
        sw = np.full(n, float(sw))
    sw = sw.astype(np.float64)
    if sw.shape != (n,):
        raise ValueError(f"{who}: sample_weight must have shape ({n},) (one weight per sample), received {sw.shape}")
    if not np.all(np.isfinite(sw)) or np.any(sw < 0):
        raise ValueError(f"{who}: sample_weight must be finite and non-negative")
    if not np.any(sw > 0):
        raise ValueError(f"{who}: sample_weight is zero for every sample; nothing would be learned")
    return sw


class _KerasWrapper(BaseEstimator):
    """What the classifier and the regressor share: parameters, routing, building, fitting, pickling."""

    _y_numeric = False  # whether scikit-learn converts y to numbers (object arrays of numbers included)
    # set by fit
    model_: Model
    history_: Dict[str, List[Any]]
    n_features_in_: int
    _input_shape: Tuple[int, ...]

    def __init__(
        self,
        model: Optional[Callable[..., Model]] = None,
        *,
        optimizer: Any = None,
        loss: Any = None,
        metrics: Optional[List[Any]] = None,
        epochs: int = 1,
        batch_size: Optional[int] = None,
        verbose: Any = 0,
        validation_split: float = 0.0,
        callbacks: Optional[List[Callback]] = None,
        shuffle: bool = True,
        random_state: Any = None,
        warm_start: bool = False,
        num_threads: Optional[int] = None,
        **kwargs: Any,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.loss = loss
        self.metrics = metrics
        self.epochs = epochs
        self.batch_size = batch_size
        self.verbose = verbose
        self.validation_split = validation_split
        self.callbacks = callbacks
        self.shuffle = shuffle
        self.random_state = random_state
        self.warm_start = warm_start
        self.num_threads = num_threads
        for key, value in kwargs.items():
            setattr(self, key, value)
        self._extra_params: Tuple[str, ...] = tuple(kwargs)

    # ---- parameters -------------------------------------------------------------------------------------
    def get_params(self, deep: bool = True) -> Dict[str, Any]:
        params = super().get_params(deep=deep)
        for key in getattr(self, "_extra_params", ()):
            params[key] = getattr(self, key)
        return params

    def set_params(self, **params: Any) -> "_KerasWrapper":
        """Set parameters. Routed ones (``model__<name>``, ``fit__<name>``) may be new; plain names must
        already be parameters (given to the constructor), as for any scikit-learn estimator."""
        own = {}
        extra = list(getattr(self, "_extra_params", ()))
        for key, value in params.items():
            routed = key.startswith(_MODEL_PREFIX) or key.startswith(_FIT_PREFIX)
            if routed and not key.split("__", 1)[1]:
                raise ValueError(f"{type(self).__name__}: invalid parameter {key!r}; expected "
                                 f"'{key}<name>', e.g. '{key}hidden'")
            if key in extra or routed:
                setattr(self, key, value)
                if key not in extra:
                    extra.append(key)
            else:
                own[key] = value
        self._extra_params = tuple(extra)
        if own:
            super().set_params(**own)
        return self

    def _routed(self) -> Tuple[Dict[str, Any], Dict[str, Any]]:
        """(keyword arguments for the model function, extra keyword arguments for ``Sequential.fit``)."""
        model_kwargs: Dict[str, Any] = {}
        fit_kwargs: Dict[str, Any] = {}
        for key in getattr(self, "_extra_params", ()):
            value = getattr(self, key)
            if key in (_MODEL_PREFIX, _FIT_PREFIX):
                raise ValueError(f"{type(self).__name__}: invalid parameter {key!r}; expected "
                                 f"'{key}<name>', e.g. '{key}hidden'")
            if key.startswith(_FIT_PREFIX):
                fit_kwargs[key[len(_FIT_PREFIX):]] = value
                continue
            name = key[len(_MODEL_PREFIX):] if key.startswith(_MODEL_PREFIX) else key
            if name in model_kwargs:
                raise ValueError(f"{type(self).__name__}: the model argument {name!r} is given twice, as "
                                 f"{name!r} and {_MODEL_PREFIX + name!r}; keep one")
            model_kwargs[name] = value
        return model_kwargs, fit_kwargs

    # ---- building ----------------------------------------------------------------------------------------
    def _meta(self, X: np.ndarray) -> Dict[str, Any]:
        return {"n_features_in": int(X.shape[1]), "input_shape": tuple(int(d) for d in X.shape[1:])}

    def _build(self, X: np.ndarray) -> Model:
        """Call the model function with its routed arguments, check what it returns, apply the optimizer / loss /
        metrics overrides (or compile an uncompiled model) and build it for X's shape."""
        name = type(self).__name__
        fn = self.model
        if fn is None:
            raise ValueError(f"{name}: `model` must be a function that builds and compiles a kerust model; "
                             "received None")
        if isinstance(fn, Model):
            raise TypeError(f"{name}: `model` must be a function that returns a new model (so that clones and "
                            f"refits start from fresh weights), received the model instance {fn.name!r}; wrap "
                            "the code that builds it in a function")
        if not callable(fn):
            raise TypeError(f"{name}: `model` must be a function that builds a kerust model, received "
                            f"{type(fn).__name__} {fn!r}")
        model_kwargs, _ = self._routed()
        names, var_kw = _accepted_names(fn)
        if names is not None and not var_kw:
            unknown = sorted(set(model_kwargs) - names)
            if unknown:
                fn_name = getattr(fn, "__name__", repr(fn))
                raise TypeError(f"{name}: {unknown} are routed to the model function {fn_name}(), which does not "
                                f"accept them; its parameters are {sorted(names)}")
        for key, value in self._meta(X).items():
            if key not in model_kwargs and names is not None and key in names:
                model_kwargs[key] = value
        model = fn(**model_kwargs)
        if not isinstance(model, Model):
            raise TypeError(f"{name}: the model function must return a kerust model (kerust.Sequential or "
                            f"kerust.Model), received {type(model).__name__}")
        if not model.built and isinstance(model, Sequential):
            model.build((None,) + tuple(X.shape[1:]))
        self._compile(model)
        return model

    def _default_loss(self, model: Model) -> str:
        raise NotImplementedError

    def _compile(self, model: Model) -> None:
        overrides = self.optimizer is not None or self.loss is not None or self.metrics is not None
        if model.compiled and not overrides:
            return
        metrics: Optional[List[Any]]
        if model.compiled:
            optimizer = _fresh_optimizer(self.optimizer) if self.optimizer is not None else model.optimizer
            loss = self.loss if self.loss is not None else model.loss
            metrics = (self.metrics if self.metrics is not None
                       else list((getattr(model, "_compile_args", None) or {}).get("metrics") or []))
        else:
            # Keras's compile() default optimizer; the loss follows the wrapper's target encoding
            optimizer = _fresh_optimizer(self.optimizer) if self.optimizer is not None else "rmsprop"
            loss = self.loss if self.loss is not None else self._default_loss(model)
            metrics = self.metrics
        model.compile(optimizer=optimizer, loss=loss, metrics=None if metrics is None else list(metrics))

    @staticmethod
    def _output_units(model: Model) -> int:
        return int(model.layers[-1].output_shape[-1])

    @staticmethod
    def _loss_of(model: Model) -> _losses.Loss:
        return _losses.get(model.loss)

    # ---- fitting -----------------------------------------------------------------------------------------
    def _seed(self) -> Optional[int]:
        rs = self.random_state
        if rs is None:
            return None
        if isinstance(rs, (int, np.integer)) and not isinstance(rs, bool):
            if rs < 0:
                raise ValueError(f"{type(self).__name__}: random_state must be a non-negative int, a "
                                 f"numpy RandomState or None; received {rs!r}")
            return int(rs)
        if isinstance(rs, np.random.RandomState):
            return int(check_random_state(rs).randint(_SEED_LIMIT))
        raise TypeError(f"{type(self).__name__}: random_state must be a non-negative int, a numpy RandomState or "
                        f"None; received {type(rs).__name__} {rs!r}")

    def _validate_X(self, X: Any, reset: bool) -> np.ndarray:
        X = _sk_validate_data(self, X, reset=reset, allow_nd=True, dtype=[np.float32, np.float64])
        return np.asarray(X, dtype=np.float32)

    def _encode_y(self, y: Any) -> None:
        """Check y and record what the model function and the targets need (classes, outputs)."""
        raise NotImplementedError

    def _targets_for(self, model: Model) -> np.ndarray:
        """The targets ``model.fit`` gets, after checking the model's output against y (before any training)."""
        raise NotImplementedError

    def _sample_weight(self, y: Any, sample_weight: Any) -> Any:
        return sample_weight

    def fit(self, X: Any, y: Any, sample_weight: Any = None, **fit_kwargs: Any) -> "_KerasWrapper":
        """Build the model (or keep training it with `warm_start=True`) and train it on (X, y).

        Args:
            X: Samples, shape `(n_samples, n_features)` (or `(n_samples, *input_shape)`, e.g. images).
            y: Labels (classifier) or targets (regressor), one per sample.
            sample_weight: Optional weight of each sample (finite, non-negative, not all zero).
            **fit_kwargs: Passed to `Sequential.fit`, over the wrapper's parameters, for this call only
                (`fit(X, y, epochs=3)`).

        Returns:
            The estimator itself. A fit that raises (Ctrl-C included) leaves the estimator's attributes as they
            were before it (with `warm_start`, the model keeps the steps it completed, as Keras's `fit` does).
        """
        saved = dict(self.__dict__)
        try:
            return self._fit(X, y, sample_weight, fit_kwargs)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(saved)
            raise

    def _fit(self, X: Any, y: Any, sample_weight: Any, fit_kwargs: Dict[str, Any]) -> "_KerasWrapper":
        X, y = _sk_validate_data(self, X, y, reset=True, allow_nd=True, dtype=[np.float32, np.float64],
                                 multi_output=True, y_numeric=self._y_numeric)
        X = np.asarray(X, dtype=np.float32)
        sample_weight = _check_sample_weight(type(self).__name__, sample_weight, X.shape[0])
        seed = self._seed()
        continuing = bool(self.warm_start) and hasattr(self, "model_")
        old_shape = getattr(self, "_input_shape", None)
        if continuing and old_shape != tuple(X.shape[1:]):
            raise ValueError(f"{type(self).__name__}: warm_start continues the fitted model, which takes samples "
                             f"of shape {old_shape}; received {tuple(X.shape[1:])}")
        with _threads(self.num_threads, type(self).__name__), _seeded(seed):
            self._encode_y(y)
            weights = self._sample_weight(y, sample_weight)
            model = self.model_ if continuing else self._build(X)
            target = self._targets_for(model)
            _, routed_fit = self._routed()
            kwargs: Dict[str, Any] = {
                "epochs": self.epochs, "batch_size": self.batch_size, "verbose": self.verbose,
                "validation_split": self.validation_split, "shuffle": self.shuffle,
                # fresh copies: a callback given as a parameter is never bound to a fitted model
                "callbacks": None if self.callbacks is None else copy.deepcopy(list(self.callbacks)),
            }
            kwargs.update(routed_fit)
            kwargs.update(fit_kwargs)
            if weights is not None:
                kwargs["sample_weight"] = weights
            history = model.fit(X, target, **kwargs)
        self.model_ = model
        self._input_shape = tuple(X.shape[1:])
        self.history_ = {k: list(v) for k, v in history.history.items()}
        return self

    def _raw_predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "model_")
        X = self._validate_X(X, reset=False)
        if tuple(X.shape[1:]) != self._input_shape:
            raise ValueError(f"X has samples of shape {tuple(X.shape[1:])}, but {type(self).__name__} was fitted "
                             f"on samples of shape {self._input_shape}")
        with _threads(self.num_threads, type(self).__name__):
            return np.asarray(self.model_.predict(X, batch_size=self.batch_size, verbose=0))

    # ---- pickling (the fitted model travels as the bytes of its .keras file) --------------------------------
    def __getstate__(self) -> Dict[str, Any]:
        state = dict(super().__getstate__())
        model = state.pop("model_", None)
        if model is not None:
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "model.keras")
                model.save(path)
                with open(path, "rb") as f:
                    state["_model_keras_bytes"] = f.read()
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        state = dict(state)
        data = state.pop("_model_keras_bytes", None)
        super().__setstate__(state)
        if data is not None:
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "model.keras")
                with open(path, "wb") as f:
                    f.write(data)
                self.model_ = load_model(path)


def _show(classes: np.ndarray, limit: int = 10) -> str:
    """Labels as Python values (``['a', 'b']``, not ``[np.str_('a'), ...]``), at most ``limit`` of them."""
    values = [c.item() if isinstance(c, np.generic) else c for c in list(classes)[:limit]]
    return repr(values)[:-1] + (", ...]" if len(classes) > limit else "]")


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - np.max(z, axis=1, keepdims=True)
    e = np.exp(z)
    return e / np.sum(e, axis=1, keepdims=True)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


class KerasClassifier(ClassifierMixin, _KerasWrapper):
    """A scikit-learn classifier around a kerust model.

    Labels may be anything scikit-learn accepts (strings, ints, ...); ``classes_`` holds them sorted and the
    model is trained on their indices. The targets the model sees follow its output layer and loss:

    - one output unit (sigmoid, ``binary_crossentropy``): two classes, targets 0/1;
    - ``n_classes`` units with ``sparse_categorical_crossentropy``: integer class indices;
    - ``n_classes`` units with any other loss (``categorical_crossentropy``, ...): one-hot rows.

    An uncompiled model is compiled with ``optimizer`` (default ``"rmsprop"``, as Keras's ``compile``) and
    ``loss`` (default ``binary_crossentropy`` for one unit, else ``sparse_categorical_crossentropy``).
    ``class_weight`` (a dict keyed by original labels, or ``"balanced"``) becomes per-sample weights.

    After ``fit``: ``classes_``, ``n_classes_``, ``n_features_in_``, ``model_`` (the trained kerust model) and
    ``history_`` (``History.history``: per-epoch ``loss`` and metrics).

    Args:
        model: A function that builds and returns a new kerust `Sequential`, normally compiled. Its keyword
            arguments come from the wrapper's extra parameters (see the module notes) and, for parameters named
            `n_features_in`, `input_shape`, `n_classes`, from the training data.
        optimizer: Overrides the model's optimizer (a name, a config dict or an optimizer instance, copied for
            each model). `None`: the model's own, or `"rmsprop"` (Keras's `compile` default) if uncompiled.
        loss: Overrides the model's loss. `None`: the model's own, or `binary_crossentropy` (one output unit) or
            `sparse_categorical_crossentropy` if uncompiled.
        metrics: Overrides the model's metrics (they appear in `history_`).
        epochs: Passed to `Sequential.fit` (Keras's default, 1).
        batch_size: Passed to `fit` and `predict` (`None`: 32).
        verbose: Passed to `fit` (0, quiet, by default: estimators are fitted many times).
        validation_split: Passed to `fit`; `val_*` entries then appear in `history_`.
        callbacks: Passed to `fit`, deep-copied for each fit, so the objects given are never bound to a model.
        shuffle: Passed to `fit`.
        random_state: An int seeds kerust (`kerust.utils.set_random_seed`) before the model is built and
            trained, so fits are bit-identical; Python's and NumPy's global generators get their previous states
            back afterwards. A `numpy.random.RandomState` draws the seed from itself. `None`: no seeding.
        warm_start: If true, a second `fit` keeps training the fitted `model_` instead of building a new one.
        num_threads: If set, `fit` and `predict` compute on this many kerust threads
            (`kerust.config.set_num_threads`) and restore the previous count afterwards; `1` for
            `GridSearchCV(..., n_jobs=k)` workers. Results do not depend on it.
        **kwargs: `name=value` or `model__name=value`: passed to `model` as `name=value`.
            `fit__name=value`: passed to `Sequential.fit`.
        class_weight: A dict from original labels to weights, or `"balanced"`; multiplies `sample_weight`.
    """

    classes_: np.ndarray
    n_classes_: int

    def __init__(
        self,
        model: Optional[Callable[..., Sequential]] = None,
        *,
        optimizer: Any = None,
        loss: Any = None,
        metrics: Optional[List[Any]] = None,
        epochs: int = 1,
        batch_size: Optional[int] = None,
        verbose: Any = 0,
        validation_split: float = 0.0,
        callbacks: Optional[List[Callback]] = None,
        shuffle: bool = True,
        random_state: Any = None,
        warm_start: bool = False,
        num_threads: Optional[int] = None,
        class_weight: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(model, optimizer=optimizer, loss=loss, metrics=metrics, epochs=epochs,
                         batch_size=batch_size, verbose=verbose, validation_split=validation_split,
                         callbacks=callbacks, shuffle=shuffle, random_state=random_state, warm_start=warm_start,
                         num_threads=num_threads, **kwargs)
        self.class_weight = class_weight

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True  # images (n, h, w, c) are fine
        return tags

    def _meta(self, X: np.ndarray) -> Dict[str, Any]:
        meta = super()._meta(X)
        meta["n_classes"] = self.n_classes_
        return meta

    def _encode_y(self, y: Any) -> None:
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] > 1:
            raise ValueError(f"{type(self).__name__} expects one label per sample (shape (n,)), received y of "
                             f"shape {y.shape}; pass class labels, not one-hot rows (multi-label targets are "
                             "not supported)")
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        encoder = LabelEncoder().fit(y)
        classes = encoder.classes_
        if self.warm_start and hasattr(self, "model_") and not np.array_equal(classes, self.classes_):
            raise ValueError(f"{type(self).__name__}: warm_start continues a model fitted on classes "
                             f"{_show(self.classes_)}; received classes {_show(classes)}")
        self.classes_ = classes
        self.n_classes_ = len(classes)
        self._codes = encoder.transform(y)

    def _sample_weight(self, y: Any, sample_weight: Any) -> Any:
        if self.class_weight is None:
            return sample_weight
        cw = compute_sample_weight(self.class_weight, column_or_1d(np.asarray(y)))
        if sample_weight is None:
            return cw
        return np.asarray(sample_weight, dtype=np.float64) * cw

    def _default_loss(self, model: Model) -> str:
        return "binary_crossentropy" if self._output_units(model) == 1 else "sparse_categorical_crossentropy"

    def _targets_for(self, model: Model) -> np.ndarray:
        units = self._output_units(model)
        n = self.n_classes_
        codes = self.__dict__.pop("_codes")  # not kept after fit
        if units == 1:
            if n > 2:
                raise ValueError(f"{type(self).__name__}: the model has one output unit (binary), but y has {n} "
                                 f"classes {_show(self.classes_)}; give the last layer n_classes={n} units (softmax)")
            return codes.astype(np.float32)
        if units != n:
            raise ValueError(f"{type(self).__name__}: the model's last layer has {units} units, but y has {n} "
                             f"classes {_show(self.classes_)}; give it n_classes={n} units (take a parameter named "
                             "`n_classes` in the model function to get it)")
        if isinstance(self._loss_of(model), _losses.SparseCategoricalCrossentropy):
            return codes.astype(np.float32)
        one_hot = np.zeros((codes.shape[0], n), dtype=np.float32)
        one_hot[np.arange(codes.shape[0]), codes] = 1.0
        return one_hot

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape (n_samples, n_classes), in the order of ``classes_``; rows sum to 1."""
        out = self._raw_predict(X).astype(np.float64)
        out = out.reshape(out.shape[0], -1)
        from_logits = bool(getattr(self._loss_of(self.model_), "from_logits", False))
        if out.shape[1] == 1:
            p = _sigmoid(out[:, 0]) if from_logits else out[:, 0]
            p = np.clip(p, 0.0, 1.0)
            if self.n_classes_ == 1:
                return np.ones((out.shape[0], 1))
            return np.column_stack([1.0 - p, p])
        if from_logits:
            binary = isinstance(self._loss_of(self.model_), _losses.BinaryCrossentropy)
            out = _sigmoid(out) if binary else _softmax(out)
        out = np.clip(out, 0.0, None)
        total = out.sum(axis=1, keepdims=True)
        uniform = np.full_like(out, 1.0 / out.shape[1])
        return np.where(total > 0, out / np.where(total > 0, total, 1.0), uniform)

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each sample, as one of the original labels."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]


class KerasRegressor(RegressorMixin, _KerasWrapper):
    """A scikit-learn regressor around a kerust model.

    ``y`` of shape (n,) trains a model with one output unit and ``predict`` returns shape (n,); ``y`` of shape
    (n, k) trains k outputs and ``predict`` returns (n, k). ``score`` is R^2 (scikit-learn's ``r2_score``). An
    uncompiled model is compiled with ``optimizer`` (default ``"rmsprop"``) and ``loss`` (default ``"mse"``).

    After ``fit``: ``n_features_in_``, ``n_outputs_``, ``model_`` and ``history_``.

    Args:
        model: A function that builds and returns a new kerust `Sequential`, normally compiled. Its keyword
            arguments come from the wrapper's extra parameters (see the module notes) and, for parameters named
            `n_features_in`, `input_shape`, `n_outputs`, from the training data.
        optimizer: Overrides the model's optimizer (a name, a config dict or an optimizer instance, copied for
            each model). `None`: the model's own, or `"rmsprop"` (Keras's `compile` default) if uncompiled.
        loss: Overrides the model's loss. `None`: the model's own, or `"mse"` if uncompiled.
        metrics: Overrides the model's metrics (they appear in `history_`).
        epochs: Passed to `Sequential.fit` (Keras's default, 1).
        batch_size: Passed to `fit` and `predict` (`None`: 32).
        verbose: Passed to `fit` (0, quiet, by default: estimators are fitted many times).
        validation_split: Passed to `fit`; `val_*` entries then appear in `history_`.
        callbacks: Passed to `fit`, deep-copied for each fit, so the objects given are never bound to a model.
        shuffle: Passed to `fit`.
        random_state: An int seeds kerust (`kerust.utils.set_random_seed`) before the model is built and
            trained, so fits are bit-identical; Python's and NumPy's global generators get their previous states
            back afterwards. A `numpy.random.RandomState` draws the seed from itself. `None`: no seeding.
        warm_start: If true, a second `fit` keeps training the fitted `model_` instead of building a new one.
        num_threads: If set, `fit` and `predict` compute on this many kerust threads
            (`kerust.config.set_num_threads`) and restore the previous count afterwards; `1` for
            `GridSearchCV(..., n_jobs=k)` workers. Results do not depend on it.
        **kwargs: `name=value` or `model__name=value`: passed to `model` as `name=value`.
            `fit__name=value`: passed to `Sequential.fit`.
    """

    _y_numeric = True

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.target_tags.multi_output = True
        return tags

    def _more_tags(self) -> Dict[str, Any]:  # the same, for scikit-learn < 1.6
        return {"multioutput": True}

    def _meta(self, X: np.ndarray) -> Dict[str, Any]:
        meta = super()._meta(X)
        meta["n_outputs"] = self.n_outputs_
        return meta

    def _encode_y(self, y: Any) -> None:
        y = np.asarray(y)
        if y.dtype.kind not in "biuf":
            raise TypeError(f"{type(self).__name__} expects numeric targets, received y of dtype {y.dtype}")
        if y.ndim not in (1, 2):
            raise ValueError(f"{type(self).__name__} expects y of shape (n,) or (n, n_outputs), received "
                             f"{y.shape}")
        self._y_1d = y.ndim == 1
        self.n_outputs_ = 1 if y.ndim == 1 else int(y.shape[1])
        self._y = y.astype(np.float32)

    def _default_loss(self, model: Model) -> str:
        return "mse"

    def _targets_for(self, model: Model) -> np.ndarray:
        units = self._output_units(model)
        if units != self.n_outputs_:
            raise ValueError(f"{type(self).__name__}: the model's last layer has {units} units, but y has "
                             f"{self.n_outputs_} output(s); give it n_outputs={self.n_outputs_} units (take a "
                             "parameter named `n_outputs` in the model function to get it)")
        return self.__dict__.pop("_y")  # not kept after fit

    def predict(self, X: Any) -> np.ndarray:
        """Predictions: shape (n,) if the model was fitted on 1-D y, else (n, n_outputs)."""
        out = self._raw_predict(X).astype(np.float64)
        out = out.reshape(out.shape[0], -1)
        return out[:, 0] if self._y_1d and out.shape[1] == 1 else out
