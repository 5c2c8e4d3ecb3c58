"""The one validator of config sections: a mapping checked against a typed, frozen dataclass.

Unknown keys, missing required keys and values of the wrong type are refused with a
:class:`~hyperkit.errors.ConfigError` that names the key (``evaluate.conv.steps``); values are
converted to the field types (YAML strings such as ``1e-3`` are parsed, lists become tuples), and
a nested config dataclass is built from its own mapping.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from types import UnionType
from typing import Any, Mapping

from hyperkit.errors import ConfigError

__all__ = ["fields_from", "optional_fields", "check_unknown"]


def _field_types(cls: type) -> dict[str, Any]:
    """Field name -> its type (``int``, ``float``, ``bool`` or a nested config class)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def optional_fields(cls: type) -> dict[str, Any]:
    """The fields of ``cls`` that have a default, with it (the rest are required)."""
    return {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}


def _finite(number: float, value: Any, path: str) -> float:
    """``number`` when finite: no setting means anything at NaN or infinity (``.nan`` spacing resampled nothing)."""
    if not math.isfinite(number):
        raise ConfigError(f"{path} must be a finite number, got {value!r}")
    return number


def _convert(value: Any, typ: Any, path: str) -> Any:
    """``value`` as ``typ``: ``bool``, ``int``, ``float``, ``str``, ``X | None`` or a tuple type.

    YAML strings such as ``1e-3`` are parsed; a list becomes a tuple of converted items.

    Raises:
        ConfigError: naming ``path`` and the value, when it is not of that type (a float that is NaN
            or infinite included).
    """
    origin, args = typing.get_origin(typ), typing.get_args(typ)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _convert(value, inner[0], path)
    elif origin is tuple:
        if isinstance(value, (list, tuple)):
            items = list(value)
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(_convert(v, args[0], f"{path}[{i}]") for i, v in enumerate(items))
            if len(items) == len(args):
                return tuple(_convert(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(items, args)))
        raise ConfigError(f"{path} must be a list of {len(args) if Ellipsis not in args else 'any number of'} "
                          f"value(s), got {value!r}")
    elif typ is str:
        if isinstance(value, str):
            return value
    elif typ is bool:
        if isinstance(value, bool):
            return value
    elif not isinstance(value, bool):
        if typ is int:
            if isinstance(value, int):
                return value
            if isinstance(value, float) and value.is_integer():
                return int(value)
        elif typ is float and isinstance(value, (int, float)):
            return _finite(float(value), value, path)
        if isinstance(value, str):
            try:
                parsed = typ(value)
            except ValueError:
                pass
            else:
                return _finite(parsed, value, path) if typ is float else parsed
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    raise ConfigError(f"{path} must be {names.get(typ, getattr(typ, '__name__', str(typ)))}, got {value!r}")


def check_unknown(data: Mapping[str, Any], known: Any, where: str) -> None:
    """Refuse keys of ``data`` that are not in ``known``, naming ``where`` and the known keys.

    Raises:
        ConfigError: an unknown key.
    """
    unknown = sorted(set(data) - set(known), key=str)  # key=str: YAML keys may be numbers too
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in {where}; known: {sorted(known, key=str)}")


def fields_from(cls: type, data: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Constructor arguments of the config dataclass ``cls`` from a mapping, checked.

    Unknown keys and missing required keys are refused; values are converted to the field
    types; a nested config dataclass is built from its own mapping.

    Raises:
        ConfigError: an unknown or missing key, or a value of the wrong type, named with ``where``.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a mapping of keys, got {data!r}")
    types = _field_types(cls)
    check_unknown(data, types, where)
    missing = sorted(set(types) - set(data) - set(optional_fields(cls)))
    if missing:
        raise ConfigError(f"{where} lacks key(s) {missing} (a profile's {where} section has them all)")
    out: dict[str, Any] = {}
    for k, v in data.items():
        typ = types[k]
        if typing.get_origin(typ) in (typing.Union, UnionType) and v is not None:
            inner = [a for a in typing.get_args(typ) if a is not type(None)]
            typ = inner[0] if len(inner) == 1 and dataclasses.is_dataclass(inner[0]) else typ
        out[k] = (typ.from_mapping(v, f"{where}.{k}") if dataclasses.is_dataclass(typ)
                  else _convert(v, typ, f"{where}.{k}"))
    return out


