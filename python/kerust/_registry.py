"""Keras's registry of serializable user classes and functions (``keras.saving.register_keras_serializable``),
and the ``__lambda__`` form Keras writes for a Lambda layer's function. Loading only ever builds a class or
function the user registered or passed in ``custom_objects``; a marshalled lambda needs ``safe_mode=False``.
"""

from __future__ import annotations

import codecs
import marshal
import types
from typing import Any, Callable, Dict, Optional

_REGISTERED: Dict[str, Any] = {}
_NAMES: Dict[Any, str] = {}


def register_keras_serializable(package: str = "Custom", name: Optional[str] = None) -> Callable[[Any], Any]:
    """Decorator: files may refer to the class (or function) as `"<package>><name>"`."""

    def decorate(obj: Any) -> Any:
        key = f"{package}>{name or obj.__name__}"
        if isinstance(obj, type) and not hasattr(obj, "get_config"):
            raise ValueError(f"Cannot register a class that does not have a get_config() method: {obj}")
        _REGISTERED[key] = obj
        _NAMES[obj] = key
        return obj

    return decorate


def get_registered_name(obj: Any) -> str:
    return _NAMES.get(obj, getattr(obj, "__name__", str(obj)))


def get_registered_object(name: str, custom_objects: Optional[dict] = None, module_objects: Optional[dict] = None
                          ) -> Any:
    for table in (custom_objects or {}, _REGISTERED, module_objects or {}):
        if name in table:
            return table[name]
    return None


def lookup(registered_name: Optional[str], class_name: str, custom_objects: Optional[dict]) -> Any:
    """The user object a config names: `custom_objects` by registered name, then by class name, then the
    registry (as Keras looks them up)."""
    custom_objects = custom_objects or {}
    for key in (registered_name, class_name):
        if key and key in custom_objects:
            return custom_objects[key]
    for key in (registered_name, class_name):
        if key and key in _REGISTERED:
            return _REGISTERED[key]
    return None


def serialize_function(fn: Any) -> Any:
    if isinstance(fn, types.FunctionType) and fn.__name__ == "<lambda>":
        code = codecs.encode(marshal.dumps(fn.__code__), "base64").decode("ascii")
        closure = tuple(c.cell_contents for c in fn.__closure__) if fn.__closure__ else None
        return {"class_name": "__lambda__", "config": {"code": code, "defaults": fn.__defaults__,
                                                        "closure": closure}}
    if _activation_name(fn) is not None:  # a kerust.activations function: Keras's form for its own activations
        return {"module": "builtins", "class_name": "function", "config": _activation_name(fn),
                "registered_name": "function"}
    return {"module": getattr(fn, "__module__", None), "class_name": "function",
            "config": getattr(fn, "__name__", str(fn)), "registered_name": get_registered_name(fn)}


def _activation_name(fn: Any) -> Optional[str]:
    from . import activations

    name = getattr(fn, "__name__", None)
    return name if isinstance(name, str) and activations.ALL_OBJECTS_DICT.get(name) is fn else None


def deserialize_function(config: Any, custom_objects: Optional[dict], safe_mode: Optional[bool]) -> Any:
    if callable(config):
        return config
    if not isinstance(config, dict):
        raise TypeError(f"Lambda: cannot read the function {config!r}")
    if config.get("class_name") == "__lambda__":
        from . import config as config_module

        unsafe = safe_mode is False or (safe_mode is None and config_module._unsafe_deserialization())
        if not unsafe:
            raise ValueError(
                "Requested the deserialization of a `lambda` object. This carries a potential risk of arbitrary code "
                "execution and thus it is disallowed by default. If you trust the source of the saved model, you "
                "can pass `safe_mode=False` to the loading function in order to allow `lambda` loading, or call "
                "`keras.config.enable_unsafe_deserialization()`.")
        inner = config["config"]
        code = marshal.loads(codecs.decode(inner["code"].encode("ascii"), "base64"))
        defaults = tuple(inner["defaults"]) if inner.get("defaults") else None
        closure = inner.get("closure")
        cells = tuple(types.CellType(v) for v in closure) if closure else None
        from . import ops

        return types.FunctionType(code, {"keras": _kerust(), "ops": ops, "__builtins__": __builtins__}, None,
                                  defaults, cells)
    fn = lookup(config.get("registered_name"), str(config.get("config")), custom_objects)
    if fn is None and config.get("module") in ("builtins", "keras.activations", "kerust.activations"):
        from . import activations

        fn = activations.ALL_OBJECTS_DICT.get(str(config.get("config")))  # Keras's own activations
    if fn is None:
        raise TypeError(f"Could not locate function '{config.get('config')}'. Make sure custom classes and "
                        "functions are decorated with `@keras.saving.register_keras_serializable()`, or pass them "
                        "in `custom_objects`.")
    return fn


def _kerust() -> Any:
    import kerust

    return kerust
