"""Typed node params: every value in a config (or a ``--set``) checked against its constructor annotation.

One small helper used for every node kind, before anything is constructed or run. The annotation
of a node's ``__init__`` parameter is the contract; :func:`coerce` checks a YAML value against it
and returns the value to pass (ints widened to float where a float is expected, paths as
:class:`pathlib.Path` where the annotation says ``Path``), or raises :class:`ParamTypeError` whose
message reads ``expected T, got V`` (with the nearest valid choice for a misspelt ``Literal``).

The rules (YAML 1.1 as PyYAML reads it, the same for config files and ``--set`` values):

========================  ==================================================================
annotation                accepted YAML values
========================  ==================================================================
``bool``                  YAML booleans only: ``true``/``false`` (also YAML 1.1's unquoted
                          ``yes``/``no``/``on``/``off``, which the YAML parser itself reads as
                          booleans). Any other value, quoted ``"true"`` or ``no_way`` included,
                          is an error: a flag is never set by a truthy string.
``int``                   integers; never a boolean, never a float (``2.0`` is an error)
``float``                 integers or floats, finite; never a boolean, never a string
``str``                   strings only (``source_id: 123`` is an error: quote it)
``Path``                  a non-empty string, returned as ``pathlib.Path``
``Literal["a", "b"]``     one of the listed values (a misspelling names the nearest choice)
``X | None``              ``null`` (or omitted, if the param has a default) or an X
``X | Y``                 the first member the value fits, in the order written
``list[X]``               a YAML list whose every item is an X (``tuple[X, ...]`` likewise)
``dict[str, X]``          a YAML mapping with string keys and X values
``Any``                   anything (a node that takes free-form data must say so)
========================  ==================================================================

Usage::

    values = check_params(NodeClass, {"order": 4, "mode": "causal"})   # {name: coerced value}
"""
from __future__ import annotations

import difflib
import inspect
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

_MISSING = object()


class ParamTypeError(ValueError):
    """A param value that does not fit its annotation; ``str()`` is ``expected T, got V``."""

    def __init__(self, message: str, param: str | None = None) -> None:
        self.param = param
        super().__init__(message)


class MissingParamError(ValueError):
    """A required param (no default) that the config does not give."""

    def __init__(self, param: str, annotation: Any) -> None:
        self.param, self.annotation = param, annotation
        super().__init__(f"required, expected {type_name(annotation)} (no default)")


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def type_name(annotation: Any) -> str:
    """A readable name for an annotation: ``int``, ``float or None``, ``list of int or str``, ``'a' or 'b'``."""
    if annotation is Any or annotation is inspect.Parameter.empty:
        return "any value"
    if annotation is type(None):
        return "null"
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Literal:
        return " or ".join(repr(a) for a in args) if len(args) <= 2 else "one of " + ", ".join(repr(a) for a in args)
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(a) for a in args)
    if origin in (list, tuple):
        items = args[0] if args else Any
        return f"a list of ({type_name(items)})" if typing.get_origin(items) in (Union, types.UnionType) \
            else f"a list of {type_name(items)}"
    if origin is dict:
        return f"a mapping of str to {type_name(args[1]) if len(args) == 2 else 'any value'}"
    if annotation is Path:
        return "a path (string)"
    if annotation is bool:
        return "bool (true/false)"
    return getattr(annotation, "__name__", str(annotation))


def coerce(value: Any, annotation: Any) -> Any:
    """Check ``value`` (as YAML parsed it) against ``annotation``; return the value to pass.

    Raises:
        ParamTypeError: ``expected T, got V`` (and ``(did you mean 'x'?)`` for a misspelt choice).
    """
    if annotation is Any or annotation is inspect.Parameter.empty:
        return value
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        for member in args:
            try:
                return coerce(value, member)
            except ParamTypeError:
                continue
        raise ParamTypeError(f"expected {type_name(annotation)}, got {_short(value)}" + _hint(value, annotation))
    if origin is Literal:
        if any(value == a and type(value) is type(a) for a in args):
            return value
        raise ParamTypeError(f"expected {type_name(annotation)}, got {_short(value)}" + _hint(value, annotation))
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise ParamTypeError(f"expected {type_name(annotation)}, got {_short(value)}")
        item_type = args[0] if args else Any
        out = []
        for i, item in enumerate(value):
            try:
                out.append(coerce(item, item_type))
            except ParamTypeError as exc:
                raise ParamTypeError(f"item {i}: {exc}") from None
        return out if origin is list else tuple(out)
    if origin is dict:
        if not isinstance(value, dict):
            raise ParamTypeError(f"expected {type_name(annotation)}, got {_short(value)}")
        value_type = args[1] if len(args) == 2 else Any
        result = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ParamTypeError(f"expected string keys, got {_short(k)}")
            try:
                result[k] = coerce(v, value_type)
            except ParamTypeError as exc:
                raise ParamTypeError(f"key {k!r}: {exc}") from None
        return result
    if annotation is type(None):
        if value is None:
            return None
        raise ParamTypeError(f"expected null, got {_short(value)}")
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ParamTypeError(f"expected bool (true/false), got {_short(value)}")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ParamTypeError(f"expected int, got {_short(value)}")
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ParamTypeError(f"expected a finite float, got {_short(value)}")
            return float(value)
        raise ParamTypeError(f"expected float, got {_short(value)}")
    if annotation is str:
        if isinstance(value, str):
            return value
        hint = f" (quote it: '{value}')" if isinstance(value, (int, float, bool)) else ""
        raise ParamTypeError(f"expected str, got {_short(value)}{hint}")
    if annotation is Path:
        if isinstance(value, (str, Path)) and str(value):
            return Path(value)
        raise ParamTypeError(f"expected a path (string), got {_short(value)}")
    raise TypeError(f"annotation {annotation!r} is not supported by pipeline.params (see its docstring)")


def _hint(value: Any, annotation: Any) -> str:
    """`` (did you mean 'x'?)`` when ``value`` is a string close to one of the annotation's choices."""
    if not isinstance(value, str):
        return ""
    choices = [str(c) for c in _literal_choices(annotation)]
    close = difflib.get_close_matches(value, choices, n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _literal_choices(annotation: Any) -> list[Any]:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return list(typing.get_args(annotation))
    if origin in (Union, types.UnionType):
        return [c for a in typing.get_args(annotation) for c in _literal_choices(a)]
    return []


def param_annotations(cls: type) -> dict[str, tuple[Any, Any]]:
    """``{param: (annotation, default)}`` of ``cls.__init__`` (default ``inspect.Parameter.empty``
    when required), string annotations resolved in the class's module."""
    signature = inspect.signature(cls.__init__)
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception as exc:  # an annotation that does not resolve is a bug in the node, not the config
        raise TypeError(f"{cls.__name__}.__init__ annotations do not resolve: {exc}") from None
    out: dict[str, tuple[Any, Any]] = {}
    for p in signature.parameters.values():
        if p.name == "self" or p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            continue
        out[p.name] = (hints.get(p.name, inspect.Parameter.empty), p.default)
    return out


def check_params(cls: type, params: dict[str, Any]) -> dict[str, Any]:
    """Check ``params`` against ``cls.__init__``'s annotations; return the coerced params.

    Unknown names are not checked here (the graph loader names them with the nearest valid name).

    Raises:
        MissingParamError: a required param is absent (``.param`` names it).
        ParamTypeError: a value does not fit (``.param`` names it).
    """
    spec = param_annotations(cls)
    out = dict(params)
    for name, (annotation, default) in spec.items():
        if name not in params:
            if default is inspect.Parameter.empty:
                raise MissingParamError(name, annotation)
            continue
        try:
            out[name] = coerce(params[name], annotation)
        except ParamTypeError as exc:
            raise ParamTypeError(str(exc), param=name) from None
    return out
