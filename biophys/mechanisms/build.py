"""Compile the project's NMODL mechanisms once into a hash-keyed cache and load them once per process.

The cache holds one directory per source hash, ``<cache>/<sha256>/``, containing the architecture folder that
``nrnivmodl`` makes (``x86_64/`` on Intel Linux) with ``libnrnmech.so`` in it: NEURON's library, built with
NEURON's own flags, which every simulation loads. CoreNEURON's build, ``<cache>/<sha256 over the same plus the
build identity>/``, is made by ``nrnivmodl -coreneuron`` with the flags of :mod:`biophys.mechanisms.flags` and
holds both ``libnrnmech.so`` and ``libcorenrnmech.so``, compiled from the sources as
:func:`biophys.mechanisms.fixed_step.coreneuron_source` rewrites them (the synapses' exact fixed-step decay;
simulations load NEURON's library from the plain build); CoreNEURON runs load the latter through the
``CORENEURONLIB`` environment variable (NEURON's documented way; ``nrn_load_dll`` does not reach CoreNEURON).
Compilation happens in a temporary directory inside the cache and is renamed into place under an ``fcntl``
lock, so concurrent processes never see a half-built library and never compile the same hash twice. NEURON
itself is imported only through :func:`neuron_h`.

Run ``python -m biophys.mechanisms.build [--coreneuron]`` to compile and print the cache directory.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import importlib.metadata
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from biophys.mechanisms import fixed_step
from biophys.mechanisms.flags import build_identity, coreneuron_flags
from conventions.cache import cache_dir

MECHANISM_DIR = Path(__file__).resolve().parent
# Any mechanism defined here works as the probe; this one is present on every cell section.
PROBE_MECHANISM = "NaTs2_t"
_LIBRARY_STEM = "libnrnmech"
_CORENEURON_STEM = "libcorenrnmech"
#: The environment variable CoreNEURON's loader reads the path of its mechanism library from.
CORENEURON_LIBRARY_ENV = "CORENEURONLIB"
_NOCMODL_ERROR = re.compile(r"in file ([^\s/]+\.mod)")
_COMPILER_ERROR = re.compile(r"([^\s/]+)\.cpp:\d+(?::\d+)?: (?:fatal )?error")

_loaded_dir: Path | None = None


class MechanismError(RuntimeError):
    """Compiling or loading the NMODL mechanisms failed."""


def mechanism_sources(source_dir: Path | None = None) -> list[Path]:
    """The ``.mod`` files in ``source_dir`` (default: this package), sorted by file name."""
    directory = Path(source_dir) if source_dir is not None else MECHANISM_DIR
    if not directory.is_dir():
        raise FileNotFoundError(f"mechanism source directory does not exist: {directory}")
    return sorted(directory.glob("*.mod"), key=lambda p: p.name)


@functools.cache
def neuron_version() -> str:
    """NEURON's version string, read without importing NEURON into this process."""
    for distribution in ("neuron", "NEURON", "neuron-nightly", "neuron-gpu"):
        try:
            return f"{distribution} {importlib.metadata.version(distribution)}"
        except importlib.metadata.PackageNotFoundError:
            continue
    nrniv = _neuron_tool("nrniv")
    result = subprocess.run([str(nrniv), "--version"], capture_output=True, text=True, check=False)
    version = result.stdout.strip()
    if result.returncode != 0 or not version:
        raise MechanismError(f"cannot determine the NEURON version from {nrniv}: {result.stderr.strip()}")
    return version


def mechanism_hash(source_dir: Path | None = None) -> str:
    """sha256 (hex) over the sorted ``.mod`` file names and contents plus the NEURON version string."""
    digest = hashlib.sha256()
    digest.update(neuron_version().encode())
    for path in mechanism_sources(source_dir):
        digest.update(b"\0" + path.name.encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def default_cache_dir() -> Path:
    """``$NEURONCOMPUTE_CACHE/mechanisms``, else ``~/.cache/neuroncompute/mechanisms``."""
    return cache_dir("mechanisms")


def find_library(build_dir: Path, stem: str = _LIBRARY_STEM) -> Path | None:
    """The compiled mechanism library inside ``build_dir`` (NEURON's, or CoreNEURON's with
    ``stem="libcorenrnmech"``), or None if there is none.

    nrnivmodl names its output folder after the machine (``x86_64``, ``aarch64``, ``arm64``) and, depending on
    the NEURON version, puts the library directly in it or in its ``.libs`` subfolder; this machine's folder is
    preferred, then any other.
    """
    if not build_dir.is_dir():
        return None
    arch_dirs = sorted(p for p in build_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    arch_dirs.sort(key=lambda p: p.name != platform.machine())
    for arch_dir in arch_dirs:
        for folder in (arch_dir, arch_dir / ".libs"):
            for suffix in (".so", ".dylib"):
                candidate = folder / f"{stem}{suffix}"
                if candidate.is_file():
                    return candidate
    return None


def compile_mechanisms(cache_dir: Path | None = None, source_dir: Path | None = None) -> Path:
    """Compile NEURON's mechanism library unless the cache already holds it; return ``<cache>/<hash>/``.

    The returned directory holds nrnivmodl's architecture folder (e.g. ``x86_64/libnrnmech.so``).
    Raises MechanismError, with nrnivmodl's output, if compilation fails.
    """
    return _compile(cache_dir, source_dir, None)


def compile_coreneuron(cache_dir: Path | None = None, source_dir: Path | None = None,
                       flags: str | None = None) -> Path:
    """Compile the CoreNEURON build (``libnrnmech`` and ``libcorenrnmech``, with ``flags``, default
    :func:`biophys.mechanisms.flags.coreneuron_flags`) unless the cache holds it; return its directory, keyed
    by :func:`coreneuron_hash`. Raises MechanismError, with nrnivmodl's output, if compilation fails."""
    return _compile(cache_dir, source_dir, coreneuron_flags() if flags is None else flags)


def coreneuron_hash(source_dir: Path | None = None, flags: str | None = None) -> str:
    """sha256 (hex) over :func:`mechanism_hash`, the build identity (flags; the CPU for CPU-specific ones) and
    the version of the CoreNEURON sources' rewriting (:mod:`biophys.mechanisms.fixed_step`)."""
    identity = (f"{build_identity(coreneuron_flags() if flags is None else flags)} "
                f"sources=fixed-step-v{fixed_step.VERSION}")
    return hashlib.sha256(f"{mechanism_hash(source_dir)}\0{identity}".encode()).hexdigest()


def use_coreneuron(cache_dir: Path | None = None, source_dir: Path | None = None) -> Path:
    """Compile the CoreNEURON build if needed and point ``CORENEURONLIB`` at its library; return the library."""
    library = find_library(compile_coreneuron(cache_dir, source_dir), _CORENEURON_STEM)
    os.environ[CORENEURON_LIBRARY_ENV] = str(library)
    return library


def _compile(cache_dir: Path | None, source_dir: Path | None, flags: str | None) -> Path:
    """NEURON's build (``flags`` None) or CoreNEURON's with ``flags``, compiled once into the cache."""
    sources = mechanism_sources(source_dir)
    if not sources:
        raise MechanismError(f"no .mod files in {source_dir or MECHANISM_DIR}")
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    key = mechanism_hash(source_dir) if flags is None else coreneuron_hash(source_dir, flags)
    target = cache / key
    if _complete(target, flags):
        return target
    with _exclusive_lock(cache / f".{key}.lock"):
        # Another process may have finished the same build while this one waited for the lock.
        if _complete(target, flags):
            return target
        staging = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=cache))
        try:
            for source in sources:
                if flags is None:
                    shutil.copy2(source, staging / source.name)
                else:
                    _write_coreneuron_source(source, staging / source.name)
            if flags is None:
                _run_nrnivmodl(staging, sources)
            else:
                _run_nrnivmodl(staging, sources, flags)
            # mkdtemp makes the folder private; give it the cache's own mode so a shared cache stays usable.
            staging.chmod(cache.stat().st_mode & 0o777)
            if target.exists():
                # A leftover without a library (e.g. removed by hand) would block the rename.
                shutil.rmtree(target)
            os.rename(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return target


def _write_coreneuron_source(source: Path, target: Path) -> None:
    """``source`` as CoreNEURON's build compiles it (:func:`biophys.mechanisms.fixed_step.coreneuron_source`)."""
    try:
        target.write_text(fixed_step.coreneuron_source(source.name, source.read_text()))
    except fixed_step.SourceError as exc:
        raise MechanismError(str(exc)) from exc


def _complete(build_dir: Path, flags: str | None) -> bool:
    """Whether ``build_dir`` holds NEURON's library and, for a CoreNEURON build (``flags`` given), CoreNEURON's."""
    if find_library(build_dir) is None:
        return False
    return flags is None or find_library(build_dir, _CORENEURON_STEM) is not None


def neuron_h():
    """NEURON's ``h``, imported without its GUI.

    NEURON reads its start-up options from ``NEURON_MODULE_OPTIONS`` when ``neuron`` is first imported;
    ``-nogui`` stops it from looking for an X display, which otherwise prints "Warning: no DISPLAY environment
    variable" in every process. Options the user set are kept.
    """
    options = os.environ.get("NEURON_MODULE_OPTIONS", "")
    if "-nogui" not in options.split():
        os.environ["NEURON_MODULE_OPTIONS"] = f"{options} -nogui".strip()
    from neuron import h

    return h


def load_mechanisms(cache_dir: Path | None = None, source_dir: Path | None = None) -> Path:
    """Compile if needed and load the mechanisms into this process, once; return the build directory.

    A second call returns at once. If the mechanisms were already loaded by some other route (the probe
    mechanism exists in NEURON), the library is not loaded again, which would fail with
    "user defined name already exists".
    """
    global _loaded_dir
    if _loaded_dir is not None:
        return _loaded_dir
    build_dir = compile_mechanisms(cache_dir, source_dir)
    h = neuron_h()

    if not _mechanism_exists(h, PROBE_MECHANISM):
        library = find_library(build_dir)
        if library is None:
            raise MechanismError(f"no {_LIBRARY_STEM} library in {build_dir}")
        if not h.nrn_load_dll(str(library)):
            raise MechanismError(f"NEURON could not load {library}")
        if not _mechanism_exists(h, PROBE_MECHANISM):
            raise MechanismError(f"{library} loaded but does not define {PROBE_MECHANISM}")
    _loaded_dir = build_dir
    return build_dir


def _mechanism_exists(h, name: str) -> bool:
    """Whether a density mechanism or point process called ``name`` is registered in NEURON."""
    for kind in (0, 1):
        mechanisms = h.MechanismType(kind)
        selected = h.ref("")
        for index in range(int(mechanisms.count())):
            mechanisms.select(index)
            mechanisms.selected(selected)
            if selected[0] == name:
                return True
    return False


def _neuron_tool(name: str) -> Path:
    """A NEURON executable from the running interpreter's bin directory (a venv), else from PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which(name)
    if found is None:
        raise MechanismError(f"{name} not found next to {sys.executable} nor on PATH; is NEURON installed?")
    return Path(found)


def _run_nrnivmodl(workdir: Path, sources: list[Path], flags: str | None = None) -> None:
    """Run nrnivmodl in ``workdir`` (which holds copies of ``sources``), with ``-coreneuron -incflags flags``
    when ``flags`` is given; raise MechanismError on failure."""
    command = [str(_neuron_tool("nrnivmodl"))]
    if flags is not None:
        command += ["-coreneuron", "-incflags", flags]
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, check=False)
    output = result.stdout + result.stderr
    if result.returncode == 0 and _complete(workdir, flags):
        return
    named = ", ".join(_files_with_errors(output, sources) or [s.name for s in sources])
    raise MechanismError(
        f"nrnivmodl failed (exit {result.returncode}) compiling {named}; output:\n{output.strip()}"
    )


def _files_with_errors(output: str, sources: list[Path]) -> list[str]:
    """Names of the ``sources`` that nocmodl (``... in file X.mod``) or the C++ compiler (``X.cpp:12: error``)
    report errors in, so the exception names the culprit without the reader digging through the log."""
    reported = {match.group(1) for match in _NOCMODL_ERROR.finditer(output)}
    reported |= {f"{match.group(1)}.mod" for match in _COMPILER_ERROR.finditer(output)}
    return [source.name for source in sources if source.name in reported]


@contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``fcntl`` lock on ``path`` (created if missing) for the duration of the block."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def main() -> None:
    """Compile (if needed) and print the cache directory holding the compiled mechanisms (``--coreneuron``:
    the CoreNEURON build's)."""
    print(compile_coreneuron() if "--coreneuron" in sys.argv[1:] else compile_mechanisms())


if __name__ == "__main__":
    main()
