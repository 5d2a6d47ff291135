"""The toolkit's cache directory: compiled NEURON mechanisms, downloaded morphologies, compiled C++ kernels.

``$NEURONCOMPUTE_CACHE`` when set, else ``~/.cache/neuroncompute``; each user of the cache takes a subfolder.
The environment variable is read at every call, so a test or a worker can redirect the cache after import.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "NEURONCOMPUTE_CACHE"


def cache_root() -> Path:
    """``$NEURONCOMPUTE_CACHE``, else ``~/.cache/neuroncompute`` (not created here)."""
    root = os.environ.get(CACHE_ENV)
    return Path(root).expanduser() if root else Path.home() / ".cache" / "neuroncompute"


def cache_dir(kind: str) -> Path:
    """The cache's subfolder for one kind of artefact, e.g. ``cache_dir("mechanisms")`` (not created here)."""
    return cache_root() / kind
