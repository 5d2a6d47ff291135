"""Morphologies as data: section geometry, the L5PC discretisation rules, and which morphology a cell gets.

A :class:`Morphology` is plain data (3-D points per section, parents, regions); nothing here imports NEURON.
Files are read through NEURON's Import3d by :mod:`biophys.morphology_io`; the built-in geometries are in
:mod:`biophys.synthetic`. Rules of the Hay et al. (2011) L5PC model kept here:

- regions (NEURON section lists): ``soma``, ``basal`` (named ``dend[i]``), ``apical`` (``apic[i]``), ``axon``;
- the reconstructed axon is replaced by two 30 µm × 1 µm sections (:func:`replace_axon`);
- every section gets ``nseg = 1 + 2·int(L / 40 µm)`` (:func:`nseg_for_length`);
- every dendrite and the axon attach at ``soma(0.5)``; children attach with their 0 end.

A cell's morphology is named explicitly (:func:`morphology_spec`); :func:`describe_morphology` is what a store
records of it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from conventions import cache as conventions_cache

REGIONS = ("soma", "basal", "apical", "axon")
#: Section name prefix per region, as Import3d names them.
REGION_PREFIX = {"soma": "soma", "basal": "dend", "apical": "apic", "axon": "axon"}

SEGMENT_LENGTH_UM = 40.0  # the nseg rule's length unit (µm)
AXON_STUB_LENGTH_UM = 30.0
AXON_STUB_DIAM_UM = 1.0

CELL1_NAME = "cell1.asc"
CELL1_SHA256 = "a8afc0925afec1dd9241528ee6ccfdcb1c321904d876835990592c2573567383"
#: The recording site called "nexus" in the NeuronIO data, on cell1.asc.
CELL1_NEXUS = ("apic[50]", 0.9)


class MorphologyError(ValueError):
    """A morphology file or object is missing, empty, malformed, or lacks a required part (e.g. apical tree)."""


@dataclass(frozen=True)
class SectionGeometry:
    """One unbranched section.

    Attributes:
        name: ``"<prefix>[i]"`` with the prefix of :data:`REGION_PREFIX`, e.g. ``"dend[3]"``.
        region: one of :data:`REGIONS`.
        parent: name of the parent section, None for the soma.
        parent_x: where on the parent (0..1) this section's 0 end attaches.
        points: float64 [n ≥ 2, 4] 3-D points x, y, z (µm) and diameter (µm), proximal to distal.
    """

    name: str
    region: str
    parent: str | None
    parent_x: float
    points: np.ndarray

    @property
    def length_um(self) -> float:
        """Arc length of the 3-D points in µm (what NEURON computes as L)."""
        return float(_arc_lengths(self.points)[-1])

    @property
    def nseg(self) -> int:
        return nseg_for_length(self.length_um)


@dataclass(frozen=True)
class Morphology:
    """A whole neuron as data.

    Attributes:
        sections: soma first, then every section after its parent; within a region in index order.
        nexus: (section name, x) of the apical recording site called "nexus", or None if undefined.
        provenance: JSON-serialisable origin: ``{"kind": "file", "path", "sha256"}`` or
            ``{"kind": "synthetic" | "ball-and-stick", "generator": <version>}``; ``"axon": "replaced"`` once
            :func:`replace_axon` has been applied.
    """

    sections: tuple[SectionGeometry, ...]
    nexus: tuple[str, float] | None = None
    provenance: dict = field(default_factory=dict)

    def by_name(self) -> dict[str, SectionGeometry]:
        return {s.name: s for s in self.sections}

    def region(self, region: str) -> list[SectionGeometry]:
        """The sections of one region in index order."""
        return [s for s in self.sections if s.region == region]

    def validate(self) -> None:
        """Raise MorphologyError naming every structural problem (soma count, parents, points, apical tree)."""
        problems = []
        somata = self.region("soma")
        if len(somata) != 1:
            problems.append(f"expected exactly one soma section, found {len(somata)}")
        if not self.region("apical"):
            problems.append("no apical dendrite (no section of region 'apical'); an L5PC needs one")
        seen: set[str] = set()
        for sec in self.sections:
            if sec.region not in REGIONS:
                problems.append(f"{sec.name}: unknown region {sec.region!r}")
            if sec.name in seen:
                problems.append(f"{sec.name}: duplicate section name")
            if sec.region != "soma" and sec.parent not in seen:
                problems.append(f"{sec.name}: parent {sec.parent!r} missing or listed after its child")
            if not 0.0 <= sec.parent_x <= 1.0:
                problems.append(f"{sec.name}: parent_x {sec.parent_x} outside [0, 1]")
            pts = np.asarray(sec.points)
            if pts.ndim != 2 or pts.shape[1] != 4 or len(pts) < 2:
                problems.append(f"{sec.name}: points must be [n >= 2, 4], got shape {pts.shape}")
            elif not np.all(np.isfinite(pts)) or np.any(pts[:, 3] <= 0) or sec.length_um <= 0:
                problems.append(f"{sec.name}: non-finite points, non-positive diameter or zero length")
            seen.add(sec.name)
        if self.nexus is not None and self.nexus[0] not in seen:
            problems.append(f"nexus section {nexus[0]!r} does not exist")
        if problems:
            raise MorphologyError("invalid morphology: " + "; ".join(problems))


def nseg_for_length(length_um: float) -> int:
    """The L5PC discretisation rule: ``1 + 2·int(L / 40 µm)`` segments (always odd)."""
    return 1 + 2 * int(length_um / SEGMENT_LENGTH_UM)


def _arc_lengths(points: np.ndarray) -> np.ndarray:
    """float [n]: cumulative 3-D path length (µm) along the points."""
    steps = np.linalg.norm(np.diff(np.asarray(points)[:, :3], axis=0), axis=1)
    return np.concatenate([[0.0], np.cumsum(steps)])


def point_at(points: np.ndarray, x: float) -> np.ndarray:
    """float [4]: the point (x, y, z, diam) at normalised arc length ``x`` by linear interpolation."""
    arc = _arc_lengths(points)
    target = x * arc[-1]
    return np.array([np.interp(target, arc, points[:, j]) for j in range(4)])


def replace_axon(morph: Morphology) -> Morphology:
    """The same morphology with every axonal section replaced by two 30 µm × 1 µm stubs.

    ``axon[0]`` attaches at ``soma(0.5)``, ``axon[1]`` at ``axon[0](1)``; they run straight down (−y) from
    the soma centre, which only matters for drawing. Non-axonal sections must not hang off the axon.
    """
    axonal = {s.name for s in morph.region("axon")}
    orphans = [s.name for s in morph.sections if s.parent in axonal and s.region != "axon"]
    if orphans:
        raise MorphologyError(f"sections {orphans} attach to the axon, which is replaced by stubs")
    soma = morph.region("soma")[0]
    start = point_at(soma.points, 0.5)[:3]
    stubs = []
    for i in range(2):
        top = start - np.array([0.0, AXON_STUB_LENGTH_UM * i, 0.0])
        bottom = top - np.array([0.0, AXON_STUB_LENGTH_UM, 0.0])
        pts = np.array([[*top, AXON_STUB_DIAM_UM], [*bottom, AXON_STUB_DIAM_UM]])
        parent, px = (soma.name, 0.5) if i == 0 else ("axon[0]", 1.0)
        stubs.append(SectionGeometry(f"axon[{i}]", "axon", parent, px, pts))
    kept = tuple(s for s in morph.sections if s.name not in axonal)
    return Morphology(kept + tuple(stubs), morph.nexus, {**morph.provenance, "axon": "replaced"})


def segment_table(morph: Morphology) -> pd.DataFrame:
    """One row per segment (nseg rule applied), sections in ``morph.sections`` order, segments proximal first.

    Columns: ``section`` (str), ``region``, ``index`` (segment index in its section), ``x`` (segment centre,
    0..1), ``segment`` (str ``"dend[3](0.25)"``), ``length_um`` (segment length), ``distance_um`` (path distance
    from ``soma(0.5)`` to the segment centre), ``pos_x_um``, ``pos_y_um``, ``pos_z_um`` (3-D centre).
    """
    rows = []
    starts = section_start_distances(morph)
    for sec in morph.sections:
        start = starts[sec.name]
        n = sec.nseg
        length = sec.length_um
        for i in range(n):
            x = (i + 0.5) / n
            pos = point_at(sec.points, x)
            dist = abs(x - 0.5) * length if sec.region == "soma" else start + x * length
            rows.append({
                "section": sec.name, "region": sec.region, "index": i, "x": x,
                "segment": segment_name(sec.name, x), "length_um": length / n, "distance_um": dist,
                "pos_x_um": pos[0], "pos_y_um": pos[1], "pos_z_um": pos[2],
            })
    return pd.DataFrame(rows)


def segment_name(section: str, x: float) -> str:
    """NEURON's way of printing a segment: ``"dend[3](0.25)"`` (x formatted with %g)."""
    return f"{section}({x:g})"


def section_start_distances(morph: Morphology, origin: str | None = None) -> dict[str, float]:
    """Path distance (µm) from the origin to each section's 0 end.

    Args:
        origin: None for ``soma(0.5)``; a section name for that section's 0 end (sections outside its subtree
            are left out).
    """
    by_name = morph.by_name()
    starts: dict[str, float] = {}
    for sec in morph.sections:
        if origin is None:
            if sec.region == "soma":
                starts[sec.name] = 0.5 * sec.length_um
                continue
            parent = by_name[sec.parent]
            if parent.region == "soma":
                starts[sec.name] = abs(sec.parent_x - 0.5) * parent.length_um
            else:
                starts[sec.name] = starts[parent.name] + sec.parent_x * parent.length_um
        elif sec.name == origin:
            starts[sec.name] = 0.0
        elif sec.parent in starts:
            starts[sec.name] = starts[sec.parent] + sec.parent_x * by_name[sec.parent].length_um
    return starts


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_morphology_file(path: str | Path) -> str:
    """Cheap checks before handing a file to Import3d; return its format ("asc" or "swc").

    Raises MorphologyError for a missing or empty file, an unknown extension, an SWC line that is not 7 numbers
    or names an unknown parent, unbalanced ASC parentheses, or no apical dendrite (no ``(Apical)`` tree in the
    ASC file, no type-4 point in the SWC file).
    """
    path = Path(path)
    if not path.is_file():
        raise MorphologyError(f"morphology file not found: {path}")
    if path.stat().st_size == 0:
        raise MorphologyError(f"morphology file is empty: {path}")
    kind = path.suffix.lower().lstrip(".")
    if kind not in ("asc", "swc"):
        raise MorphologyError(f"{path}: unsupported morphology format {path.suffix!r}; use .asc or .swc")
    text = path.read_text(errors="replace")
    if kind == "swc":
        _check_swc(path, text)
    else:
        _check_asc(path, text)
    return kind


def _check_swc(path: Path, text: str) -> None:
    ids: set[int] = set()
    types: set[int] = set()
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        try:
            if len(fields) != 7:
                raise ValueError
            sample, kind, parent = int(fields[0]), int(fields[1]), int(fields[6])
            [float(f) for f in fields[2:6]]
        except ValueError:
            raise MorphologyError(f"{path}:{lineno}: malformed SWC line (need 7 numbers: id type x y z r parent): "
                                  f"{line[:80]!r}") from None
        if parent != -1 and parent not in ids:
            raise MorphologyError(f"{path}:{lineno}: SWC point {sample} names parent {parent}, not defined before it")
        ids.add(sample)
        types.add(kind)
    if not ids:
        raise MorphologyError(f"{path}: no SWC points")
    if 4 not in types:
        raise MorphologyError(f"{path}: no apical dendrite (no SWC point of type 4); an L5PC needs one")


def _check_asc(path: Path, text: str) -> None:
    depth = 0
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.split(";", 1)[0]
        depth += line.count("(") - line.count(")")
        if depth < 0:
            raise MorphologyError(f"{path}:{lineno}: malformed Neurolucida file (unbalanced ')')")
    if depth != 0:
        raise MorphologyError(f"{path}: malformed Neurolucida file ({depth} unclosed '(')")
    if "(apical)" not in text.lower().replace(" ", ""):
        raise MorphologyError(f"{path}: no apical dendrite (no '(Apical)' tree in the Neurolucida file); "
                              "an L5PC needs one")


def cache_dir() -> Path:
    """``$NEURONCOMPUTE_CACHE/morphologies``, else ``~/.cache/neuroncompute/morphologies``."""
    return conventions_cache.cache_dir("morphologies")


#: The morphology a cell gets when its config names none: a fixed rule, never what happens to be cached.
DEFAULT_MORPHOLOGY = {"l5pc": "synthetic", "ball-and-stick": "ball-and-stick"}
#: Morphologies named by a word rather than a path.
NAMED_MORPHOLOGIES = ("cell1", "synthetic", "ball-and-stick")


def morphology_spec(cell_name: str, spec: str | None) -> str:
    """The explicit morphology of cell ``cell_name`` ("l5pc" or "ball-and-stick") for config value ``spec``:
    None (the cell's :data:`DEFAULT_MORPHOLOGY`), one of :data:`NAMED_MORPHOLOGIES` or a .asc/.swc path, which
    becomes absolute. The ball-and-stick cell has its built-in geometry only, and it is not an L5PC."""
    if cell_name not in DEFAULT_MORPHOLOGY:
        raise MorphologyError(f"unknown cell {cell_name!r}; expected 'l5pc' or 'ball-and-stick'")
    spec = DEFAULT_MORPHOLOGY[cell_name] if spec is None else str(spec)
    if (cell_name == "ball-and-stick") != (spec == "ball-and-stick"):
        raise MorphologyError(f"cell {cell_name!r} cannot have morphology {spec!r}; the ball-and-stick cell has "
                              "its built-in geometry only (morphology 'ball-and-stick' or none)")
    if spec in NAMED_MORPHOLOGIES:
        return spec
    return str(Path(spec).expanduser().resolve())


def morphology_file(cell_name: str, spec: str | None) -> Path | None:
    """The checked file a morphology spec names (see :func:`morphology_spec`), or None for built-in geometry.

    "cell1" is ``cell1.asc`` in the cache (filled by ``python -m biophys fetch-morphology``), verified
    against its sha256. Raises MorphologyError with a one-line message for a missing, uncached or bad file.
    """
    spec = morphology_spec(cell_name, spec)
    if spec in ("synthetic", "ball-and-stick"):
        return None
    if spec != "cell1":
        check_morphology_file(spec)
        return Path(spec)
    cached = cache_dir() / CELL1_NAME
    if not cached.is_file():
        raise MorphologyError(f"morphology 'cell1' is not cached ({cached} missing); run `python -m biophys "
                              "fetch-morphology`, or pass --morphology PATH to a .asc/.swc file")
    digest = file_sha256(cached)
    if digest != CELL1_SHA256:
        raise MorphologyError(f"cached {cached} has sha256 {digest}, expected {CELL1_SHA256}; delete it "
                              "or run `python -m biophys fetch-morphology` again")
    return cached


def describe_morphology(cell_name: str, spec: str | None) -> dict:
    """JSON-ready ``{"morphology": explicit spec, "morphology_sha256": hex sha256 of the file, or None for
    built-in geometry}`` (see :func:`morphology_spec`); imports no NEURON. Raises MorphologyError (one line)
    for a missing, uncached or bad file."""
    path = morphology_file(cell_name, spec)
    return {"morphology": morphology_spec(cell_name, spec),
            "morphology_sha256": None if path is None else file_sha256(path)}
