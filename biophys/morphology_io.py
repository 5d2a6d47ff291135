"""Where a cell's morphology comes from: files read through NEURON's Import3d, the cache download, and the
built-in geometries, resolved from a config's morphology spec (:func:`biophys.morphology.morphology_spec`).

Import3d needs NEURON; :func:`read_morphology` works with the ``h`` the simulator hands it (this module never
imports NEURON itself) and deletes every temporary section it made before returning.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from pathlib import Path

import numpy as np

from biophys import synthetic
from biophys.morphology import (CELL1_NAME, CELL1_NEXUS, CELL1_SHA256, REGION_PREFIX, Morphology, MorphologyError,
                                SectionGeometry, cache_dir, check_morphology_file, file_sha256, morphology_file)

CELL1_URL = "https://modeldb.science/getModelFile?model=139653&file=/L5bPCmodelsEH/morphologies/cell1.asc"
#: Import3d's section-list attribute → region.
_IMPORT3D_LISTS = {"soma": "soma", "dend": "basal", "apic": "apical", "axon": "axon"}


def resolve_morphology(name: str, spec: str | None) -> Path | Morphology:
    """The file to read for cell ``name`` and morphology ``spec`` (see :func:`biophys.morphology.morphology_file`)
    or, for built-in geometry, the Morphology (synthetic L5PC or ball-and-stick, axon not yet replaced)."""
    path = morphology_file(name, spec)
    if path is not None:
        return path
    return synthetic.ball_and_stick() if name == "ball-and-stick" else synthetic.synthetic_l5pc()


def load_morphology(name: str, spec: str | None, h) -> Morphology:
    """The Morphology of cell ``name`` with morphology ``spec`` (axon not yet replaced); files are read through
    Import3d with NEURON's ``h`` (stdrun and import3d.hoc loaded)."""
    source = resolve_morphology(name, spec)
    return read_morphology(source, h) if isinstance(source, Path) else source


def read_morphology(path: str | Path, h) -> Morphology:
    """Read a Neurolucida ASC or SWC file through NEURON's Import3d into a :class:`Morphology`.

    The temporary NEURON sections Import3d makes are deleted before returning. Sections are named
    ``soma[i]``, ``dend[i]``, ``apic[i]``, ``axon[i]`` as Import3d numbers them; the nexus is cell1.asc's
    apic[50](0.9) when the file is cell1.asc (by sha256), else None.
    """
    path = Path(path)
    kind = check_morphology_file(path)
    reader = h.Import3d_SWC_read() if kind == "swc" else h.Import3d_Neurolucida3()
    if kind == "asc":
        reader.quiet = 1
    target = _ImportTarget()
    try:
        reader.input(str(path))
        h.Import3d_GUI(reader, 0).instantiate(target)
        sections = _extract_geometry(target)
    except RuntimeError as exc:
        raise MorphologyError(f"NEURON's Import3d could not read {path}: {exc}") from exc
    finally:
        for sec in list(getattr(target, "all", [])):
            h.delete_section(sec=sec)
        target.__dict__.clear()
    sha = file_sha256(path)
    nexus = CELL1_NEXUS if sha == CELL1_SHA256 else None
    morph = Morphology(sections, nexus, {"kind": "file", "path": str(path.resolve()), "sha256": sha})
    morph.validate()
    return morph


class _ImportTarget:
    """The object Import3d instantiates into (it adds ``all``, ``soma``, ``dend``, ``apic``, ``axon``)."""

    def __str__(self) -> str:
        return "import3d"


def _extract_geometry(target: _ImportTarget) -> tuple[SectionGeometry, ...]:
    """Copy the 3-D points and topology of Import3d's sections into SectionGeometry records, ordered
    soma, basal, apical, axon."""
    names = {}
    for attr in _IMPORT3D_LISTS:
        for i, sec in enumerate(getattr(target, attr, [])):
            names[sec] = f"{REGION_PREFIX[_IMPORT3D_LISTS[attr]]}[{i}]"
    unknown = [sec.name() for sec in getattr(target, "all", []) if sec not in names]
    if unknown:
        raise MorphologyError(f"sections of unsupported type (not soma/dend/apic/axon): {unknown[:5]}")
    out = []
    for attr, region in _IMPORT3D_LISTS.items():
        for sec in getattr(target, attr, []):
            points = np.array([[sec.x3d(j), sec.y3d(j), sec.z3d(j), sec.diam3d(j)] for j in range(sec.n3d())])
            parent_seg = sec.parentseg()
            parent = names[parent_seg.sec] if parent_seg is not None else None
            parent_x = float(parent_seg.x) if parent_seg is not None else 0.0
            out.append(SectionGeometry(names[sec], region, parent, parent_x, points))
    return tuple(out)


def fetch_morphology(url: str = CELL1_URL, dest: str | Path | None = None, sha256: str | None = CELL1_SHA256,
                     timeout_s: float = 60.0) -> Path:
    """Download a morphology file to ``dest`` (default: the cache's cell1.asc), checking its sha256.

    Skips the download if ``dest`` already has the expected hash. Writes a temporary file beside ``dest`` and
    renames it, so ``dest`` is either absent or complete. Raises MorphologyError on a network failure or a
    hash mismatch (nothing is written then).
    """
    dest = Path(dest) if dest is not None else cache_dir() / CELL1_NAME
    if dest.is_file() and sha256 is not None and file_sha256(dest) == sha256:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(handle, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout_s) as response:
                    for block in iter(lambda: response.read(1 << 16), b""):
                        digest.update(block)
                        out.write(block)
            except OSError as exc:
                raise MorphologyError(f"could not download {url}: {exc}") from exc
        if sha256 is not None and digest.hexdigest() != sha256:
            raise MorphologyError(f"{url} has sha256 {digest.hexdigest()}, expected {sha256}; not saved")
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest

