"""The files of a store: atomic replacement and the manifest of every file with its size and checksum.

:func:`replace_store` writes a store under a temporary name beside its target, adds the manifest and renames it,
so a store is either complete (manifest included) or absent.

``<store>/manifest.json`` holds ``{"algorithm": "blake2b-128", "files": {relative path: {"size": bytes,
"blake2b": hex}}}`` for every file of the store but itself. It is written into the temporary store before
the rename that makes a store appear, so a manifest always describes a complete store. Readers compare sizes
and presence when they open a store (:func:`manifest_problems`, cheap: one ``stat`` per file), ``inspect`` and
the resume check of ``generate`` also the checksums (``content=True``: reads every byte, decodes nothing).
Readers open a store with a manifest through :func:`verified_store`, which checks every file it reads against
its checksum, so a chunk changed in place (same size) is refused when read, never decoded silently. Stores made
before manifests were written have none and are checked by decoding instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
import warnings
from pathlib import Path
from typing import Callable

import xarray as xr
from zarr.errors import UnstableSpecificationWarning
from zarr.storage import LocalStore

from conventions.atomic import temporary_sibling, write_text_atomic

MANIFEST = "manifest.json"
ALGORITHM = "blake2b-128"
_BLOCK = 1 << 20


def file_digest(path: Path) -> str:
    """The hex blake2b (16-byte digest) of the file at ``path``, read in 1 MiB blocks."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def manifest_path(store: str | Path) -> Path:
    """Where the manifest of ``store`` is kept."""
    return Path(store) / MANIFEST


def write_manifest(store: str | Path) -> Path:
    """Record the size and checksum of every file of the complete store ``store`` (returns the manifest's path)."""
    store = Path(store)
    files = {p.relative_to(store).as_posix(): {"size": p.stat().st_size, "blake2b": file_digest(p)}
             for p in sorted(store.rglob("*")) if p.is_file() and p != manifest_path(store)}
    return write_text_atomic(manifest_path(store),
                             json.dumps({"algorithm": ALGORITHM, "files": files}, indent=0, sort_keys=True) + "\n")


class VerifiedStore(LocalStore):
    """A read-only local Zarr store that checks every file it reads whole against its manifest checksum.

    Args:
        root: the store's directory.
        digests: relative path → blake2b hex, as :func:`write_manifest` records them.
        error: the exception raised for a file whose content differs (called with a one-line message).
    """

    def __init__(self, root: str | Path, digests: dict[str, str], error: type[Exception] = ValueError):
        super().__init__(root, read_only=True)
        self.digests, self.error = digests, error

    def with_read_only(self, read_only: bool = False) -> "VerifiedStore":
        if not read_only:
            raise ValueError("a VerifiedStore is read-only")
        return self

    async def get(self, key, prototype=None, byte_range=None):
        buffer = await super().get(key, prototype, byte_range)
        expected = self.digests.get(key)
        if buffer is not None and byte_range is None and expected is not None:
            if hashlib.blake2b(buffer.as_numpy_array(), digest_size=16).hexdigest() != expected:
                raise self.error(f"{self.root}: {key} differs from its checksum in {MANIFEST} (the store is "
                                 "damaged); regenerate or restore it")
        return buffer


@contextlib.contextmanager
def undecodable_as(error: type[Exception], store: str | Path):
    """Turn an exception raised while chunks of ``store`` are read or decoded (codecs raise many types) into
    ``error``, with a one-line message that says how to find the damaged chunk."""
    try:
        yield
    except error:
        raise
    except Exception as exc:
        raise error(f"{store}: data cannot be decoded ({type(exc).__name__}: {' '.join(str(exc).split())}); "
                    f"`python -m biophys inspect {store}` names the damaged chunk") from exc


def verified_store(store: str | Path, error: type[Exception] = ValueError) -> Path | VerifiedStore:
    """What to open ``store`` through: a :class:`VerifiedStore` when it has a readable manifest, else its path."""
    try:
        files = json.loads(manifest_path(store).read_text())["files"]
        return VerifiedStore(store, {name: str(entry["blake2b"]) for name, entry in files.items()}, error)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return Path(store)


def manifest_problems(store: str | Path, content: bool = False) -> list[str] | None:
    """Files of ``store`` that are missing, differ in size from its manifest or (``content``) in checksum.

    Returns None when the store has no manifest, an empty list when every file matches.
    """
    store = Path(store)
    path = manifest_path(store)
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text())
        files = {str(name): (int(entry["size"]), str(entry["blake2b"])) for name, entry in manifest["files"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return [f"{MANIFEST} cannot be read ({type(exc).__name__}: {exc})"]
    problems = []
    for name, (size, digest) in files.items():
        try:
            actual = (store / name).stat().st_size
        except FileNotFoundError:
            problems.append(f"{name} is missing")
            continue
        if actual != size:
            problems.append(f"{name} has {actual} bytes, {size} when written")
        elif content and file_digest(store / name) != digest:
            problems.append(f"{name} differs from its checksum (same size, changed content)")
    return problems


def describe(problems: list[str], limit: int = 3) -> str:
    """The first ``limit`` problems on one line, with a count of the rest."""
    shown = "; ".join(problems[:limit])
    return shown + (f"; and {len(problems) - limit} more" if len(problems) > limit else "")


def fixed_width_strings(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with every string coordinate (object or NumPy StringDType) as fixed-width unicode, which reads
    back as ``<U`` (plain NumPy strings) rather than StringDType."""
    strings = {name: c.astype(str) for name, c in ds.coords.items() if c.dtype.kind in "OT"}
    return ds.assign_coords(strings) if strings else ds


@contextlib.contextmanager
def quiet_zarr():
    """Silence zarr's notes that consolidated metadata and fixed-width strings are not yet in the Zarr v3 spec
    (zarr-python and xarray read both back; the notes would fill every worker's output)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
        warnings.filterwarnings("ignore", category=UnstableSpecificationWarning)
        yield


def replace_store(path: Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary sibling of ``path``, write its manifest, then rename it onto ``path``.

    Nothing appears at ``path`` until ``write`` has returned, and the temporary store never survives a failure
    (a full disk included), so ``path`` holds either the complete new store or whatever it held before.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path)
    try:
        with quiet_zarr():
            write(tmp)
        write_manifest(tmp)
        if path.exists():
            old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path
