"""The checks that a config dict holds only known keys, and that every config field holds a value of its type.

Every config dataclass is saved as JSON whose keys equal its field names and is rebuilt from such dicts (or from
TOML files a user wrote), so a misspelt key must be refused by name rather than silently fall back to a
default, and a value of the wrong type (``record_dendrites = "no"``, ``dt_ms = "0.1"``) must be refused by name
rather than be stored or fail later inside arithmetic.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable


def field_names(cls) -> set[str]:
    """The field names of a dataclass (the keys of its saved JSON)."""
    return {f.name for f in dataclasses.fields(cls)}


def refuse_unknown_keys(data: dict, known: Iterable[str], where: str,
                        error: type[Exception] = ValueError) -> None:
    """Raise ``error`` naming every key of ``data`` not in ``known``, and ``where`` they were found."""
    known = set(known)
    unknown = sorted(set(data) - known)
    if unknown:
        raise error(f"unknown key(s) {unknown} in {where}; known keys: {sorted(known)}")


def _describe(tp) -> str:
    origin = typing.get_origin(tp)
    if tp is type(None):
        return "None"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (tuple, list):
        args = typing.get_args(tp)
        return f"a list of {_describe(args[0])}" if args else "a list"
    if origin is dict:
        return "a table"
    return {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}.get(
        tp, getattr(tp, "__name__", str(tp)))


def _matches(value, tp) -> bool:
    """Whether ``value`` (as parsed from JSON or TOML, or given in Python) is acceptable for annotation ``tp``."""
    if tp is typing.Any:
        return True
    if tp is type(None):
        return value is None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in typing.get_args(tp))
    if origin is typing.Literal:
        return value in typing.get_args(tp)
    if origin in (tuple, list):
        if not isinstance(value, (tuple, list)):
            return False
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return all(_matches(v, args[0]) for v in value) if args else True
    if origin is dict:
        return isinstance(value, dict)
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True


def check_field_types(instance, where: str | None = None, error: type[Exception] = ValueError) -> None:
    """Raise ``error`` naming the first field of dataclass ``instance`` whose value does not fit its annotation.

    Annotations understood: bool, int (not bool), float (int accepted), str, None, unions, ``tuple[X, ...]`` and
    ``list[X]`` (a list or tuple of X), dict, Literal and classes; others pass. Call it first in
    ``__post_init__``, before any arithmetic on the values.
    """
    cls = type(instance)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        value = getattr(instance, f.name)
        tp = hints.get(f.name, typing.Any)
        if not _matches(value, tp):
            raise error(f"{where or cls.__name__}.{f.name} must be {_describe(tp)}, "
                        f"not {type(value).__name__} {value!r}")
