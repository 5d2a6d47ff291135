"""Provenance records: which code, which libraries, which machine made a dataset or a run.

Every store written by :mod:`biophys` and every run directory written by :mod:`surrogate` embeds the dict
returned by :func:`provenance` so that a result can be traced back to the exact code and environment.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import platform
import subprocess
import sys
from pathlib import Path

_PACKAGES = ("numpy", "scipy", "xarray", "zarr", "neuron", "torch", "scikit-learn", "pandas")


def git_commit(path: str | Path | None = None) -> str:
    """The commit of the git checkout holding ``path`` (default: this package), with "+dirty" when the
    tracked files differ from it, or "unknown" outside a checkout."""
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where, capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def package_versions(names: tuple[str, ...] = _PACKAGES) -> dict[str, str]:
    """Installed versions of the libraries whose behaviour shapes the numbers ("absent" if not installed)."""
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def provenance() -> dict:
    """A JSON-serialisable record of code version, library versions, Python, host and creation time (UTC)."""
    return {
        "git_commit": git_commit(),
        "packages": package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
