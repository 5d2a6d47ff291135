"""Loaded stores reused instead of read again: within a process inside :func:`reuse_loaded`, and across the
processes of a parallel sweep through files in a RAM-backed directory.

A sweep that trains models in several processes at once (:func:`analysis.ablation.run_ablation` with
``workers``) would otherwise hold one in-memory copy of its training store per process: 9 GB each for 2 h of
NeuronIO input. Here the first process that needs an array reads it into a ``.npy`` file of the shared
directory, under a file lock; every process, that one included, then maps the file read-only, so its pages are in
RAM once however many processes read them. On Linux the directory lives in ``/dev/shm`` (tmpfs, i.e. RAM, not
disk); it is removed when the sweep ends.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import pickle
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Hashable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

#: In-memory data kept for reuse inside :func:`reuse_loaded`; None outside it.
_reused: dict | None = None
#: Directory through which processes share what they load (see :func:`reuse_loaded`); None: not shared.
_share_dir: Path | None = None

#: RAM-backed directory for the shared files where the system has one (else the system's temporary directory).
SHM_ROOT = Path("/dev/shm")

#: alloc(shape, dtype) → a writable array that a loader fills in place.
Alloc = Callable[[tuple[int, ...], Any], np.ndarray]


@contextlib.contextmanager
def reuse_loaded(share_dir: str | Path | None = None) -> Iterator[None]:
    """Inside this block, :meth:`surrogate.data.NeuronIOArrays.from_store` hands back the arrays it read before
    for the same store (path and manifest), simulations and channels instead of reading them again; on leaving it
    they are dropped. For sweeps that train many models on one dataset (:mod:`analysis.ablation`): 2 h of NeuronIO
    input take ~2 min to read. The arrays are shared, so nothing may write into them (training doesn't).

    With ``share_dir`` (from :func:`share_directory`), the input spikes are also shared between processes: the
    first process to read a store writes them there, and every process maps that copy read-only
    (:func:`load_shared`). A nested block without ``share_dir`` keeps the outer's.
    """
    global _reused, _share_dir
    outer = _reused, _share_dir
    _reused = {} if _reused is None else _reused
    _share_dir = _share_dir if share_dir is None else Path(share_dir)
    try:
        yield
    finally:
        _reused, _share_dir = outer


def reused(store: Any, positions: np.ndarray, channels: np.ndarray | None) -> tuple[tuple | None, Any]:
    """(key, data kept for it or None) of a read of ``positions`` and ``channels`` of ``store`` (a
    :class:`biophys.dataset.NeuronIOStore`); key None outside :func:`reuse_loaded`."""
    if _reused is None:
        return None, None
    manifest = Path(store.path) / "manifest.json"
    stamp = manifest.stat().st_mtime_ns if manifest.exists() else None
    key = (str(Path(store.path).resolve()), stamp, positions.tobytes(),
           None if channels is None else np.asarray(channels, np.int64).tobytes())
    return key, _reused.get(key)


def remember(key: tuple | None, data: Any) -> Any:
    """Keep ``data`` for ``key`` (from :func:`reused`) while the block lasts; hands ``data`` back."""
    if key is not None and _reused is not None:
        _reused[key] = data
    return data


def share_dir_in_use() -> Path | None:
    """The directory the enclosing :func:`reuse_loaded` block shares through, or None."""
    return _share_dir


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_orphans(root: Path, prefix: str) -> list[Path]:
    """Remove the share directories under ``root`` whose owner (the pid after ``prefix`` in the name) has died.

    A sweep killed outright (SIGKILL, a job scheduler's preemption) cannot remove its directory, and a tmpfs keeps the
    files, ~10 GB of RAM for the 2 h store, until someone deletes them; the next sweep does so."""
    removed = []
    for path in root.glob(f"{prefix}*"):
        pid = path.name[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


@contextlib.contextmanager
def share_directory(prefix: str = "neuroncompute-share-") -> Iterator[Path]:
    """A fresh directory for :func:`load_shared` files, in RAM where possible; removed with its files on exit (on
    SIGTERM too inside :func:`sigterm_as_exit`), and by the next call if the owner was killed outright (its pid is
    in the name; :func:`remove_orphans`)."""
    root = SHM_ROOT if SHM_ROOT.is_dir() and os.access(SHM_ROOT, os.W_OK) else Path(tempfile.gettempdir())
    remove_orphans(root, prefix)
    path = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=root))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """Inside this block SIGTERM raises SystemExit(143), so that ``finally`` clauses (a share's removal, a process
    pool's shutdown) run; only in the main thread and when no other handler is installed, else a no-op."""
    install = threading.current_thread() is threading.main_thread() and \
        signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    if install:
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        yield
    finally:
        if install:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


def load_shared(share_dir: str | Path, key: Hashable, load: Callable[[Alloc], tuple[np.ndarray, Any]]
                ) -> tuple[np.ndarray, Any]:
    """The array (and picklable companion) ``load`` makes for ``key``, made once by whichever process asks first.

    Args:
        share_dir: a directory every participating process can read and write (see :func:`share_directory`).
        key: identifies the data; its ``repr`` names the files, so it must be the same in every process.
        load: ``load(alloc)`` allocates its array with ``alloc(shape, dtype)``, fills it and returns it with a
            companion object (e.g. the small arrays that go with it). Called at most once per key and directory.
    Returns:
        (read-only memory map of the array, the companion). A load that raised leaves nothing behind that
        another call would take for finished: the files get their final names only once complete.
    """
    share_dir = Path(share_dir)
    name = hashlib.sha256(repr(key).encode()).hexdigest()[:32]
    array_path, extra_path = share_dir / f"{name}.npy", share_dir / f"{name}.pkl"
    with open(share_dir / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if this process dies
        if not extra_path.exists():
            partial = share_dir / f"{name}.partial.npy"
            made: list[np.memmap] = []

            def alloc(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
                if made:
                    raise ValueError("load_shared's loader may allocate one array")
                made.append(np.lib.format.open_memmap(partial, mode="w+", dtype=dtype, shape=tuple(shape)))
                _reserve(partial)
                return made[0]

            array, extra = load(alloc)
            if not made or array is not made[0]:
                raise ValueError("load_shared's loader must return the array it allocated with alloc")
            made[0].flush()
            os.replace(partial, array_path)
            partial_extra = share_dir / f"{name}.partial.pkl"
            partial_extra.write_bytes(pickle.dumps(extra))
            os.replace(partial_extra, extra_path)  # last: its presence says the pair is complete
        return np.load(array_path, mmap_mode="r"), pickle.loads(extra_path.read_bytes())


def _reserve(path: Path) -> None:
    """Claim the file's blocks now: a RAM-backed file that runs out of room while it is written through a memory
    map kills the process (SIGBUS) instead of raising."""
    size = path.stat().st_size
    with open(path, "r+b") as f:
        try:
            os.posix_fallocate(f.fileno(), 0, size)
        except OSError as exc:
            raise OSError(f"{path.parent} has no room for a shared array of {size / 1e9:.2f} GB ({exc.strerror}); "
                          "free RAM, or train on fewer processes or with lazy data") from None
