"""Stored values checked against the types their fields declare: a reader leaves out what does not
fit (a value of another release, a hand-edited database) rather than fail on it later."""

from __future__ import annotations

import functools
import json
import types
import typing
from typing import Any


def fits(value: Any, hint: Any) -> bool:
    """Whether a stored (JSON) value is of the type a field declares. Hand-written: the fields use a
    handful of types (numbers, strings, lists and dicts of them), and a validation library would be a
    dependency for ten lines."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(fits(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is float:  # JSON writes 12.0 as 12
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:  # a count written as 2e6 is still a count
        return (isinstance(value, int) or isinstance(value, float) and value.is_integer()) and not isinstance(value, bool)
    if origin is list:
        return isinstance(value, list) and all(fits(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(fits(k, args[0]) and fits(v, args[1]) for k, v in value.items())
    return type(value) is hint


@functools.cache
def hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def typed(cls: type, stored: Any) -> tuple[dict[str, Any], list[str]]:
    """The stored attributes that are fields of `cls` and of its types; and what is wrong with the others."""
    declared = hints(cls)
    good, bad = {}, []
    for key, value in (stored.items() if isinstance(stored, dict) else ()):
        if key not in declared:
            continue  # a key of another release
        if fits(value, declared[key]):
            good[key] = value
        else:
            bad.append(f"{key} is {_shown(value)}, not {_type_name(declared[key])}")
    return good, bad


def square(matrix: list[list[int]]) -> bool:
    return bool(matrix) and all(len(row) == len(matrix) for row in matrix)


def _shown(value: Any) -> str:
    text = json.dumps(value, default=str)
    return f"{type(value).__name__} {text[:40]}{'...' if len(text) > 40 else ''}"


def _type_name(hint: Any) -> str:
    return str(hint).replace("typing.", "").replace("<class '", "").replace("'>", "")
