"""Atomic file writes: a file is either complete or absent, never half-written.

Every writer of the toolkit (stores excepted, which are directories: see ``dataset.write_store``) goes through
:func:`replace_atomically`: write a temporary sibling (same directory, so the rename stays on one file system),
then ``os.replace`` it onto the target.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Callable


def temporary_sibling(path: Path) -> Path:
    """A hidden, unique name beside ``path`` (``.NAME.tmp-XXXXXXXX``)."""
    return path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")


def replace_atomically(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)``, then rename ``tmp`` onto ``path``; the temporary file never survives a failure."""
    path = Path(path)
    tmp = temporary_sibling(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    return replace_atomically(path, lambda tmp: tmp.write_text(text))
