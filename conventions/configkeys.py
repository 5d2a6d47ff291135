"""The one check that a config dict holds only known keys.

Every config dataclass is saved as JSON whose keys equal its field names and is rebuilt from such dicts (or from
TOML files a user wrote), so a misspelt key must be refused by name rather than silently fall back to a default.
"""

from __future__ import annotations

import dataclasses
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
