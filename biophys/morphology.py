"""Morphologies as data: section geometry, the L5PC discretisation rules, and where a morphology comes from.

A :class:`Morphology` is plain data (3-D points per section, parents, regions) that
:mod:`biophys.simulator` turns into NEURON sections; nothing here imports NEURON. Reading Neurolucida ASC and
SWC files goes through NEURON's Import3d and therefore lives in the simulator
(:func:`biophys.simulator.read_morphology`), which calls :func:`check_morphology_file` first and returns a
:class:`Morphology`.

Rules of the Hay et al. 2011 L5PC model kept here:

- regions (NEURON section lists): ``soma``, ``basal`` (named ``dend[i]``), ``apical`` (``apic[i]``), ``axon``;
- the reconstructed axon is replaced by two 30 µm × 1 µm sections (:func:`replace_axon`);
- every section gets ``nseg = 1 + 2·int(L / 40 µm)`` (:func:`nseg_for_length`);
- every dendrite and the axon attach at ``soma(0.5)``; children attach with their 0 end.

Morphology sources, in order (:func:`resolve_morphology`): a path the user gives; ``cell1.asc`` in the local
cache (``$NEURONCOMPUTE_CACHE/morphologies`` or ``~/.cache/neuroncompute/morphologies``, filled by
``python -m biophys fetch-morphology``); the deterministic synthetic L5PC of :func:`synthetic_l5pc`.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from conventions import cache as conventions_cache

REGIONS = ("soma", "basal", "apical", "axon")
DENDRITIC_REGIONS = ("basal", "apical")
#: Section name prefix per region, as Import3d names them.
REGION_PREFIX = {"soma": "soma", "basal": "dend", "apical": "apic", "axon": "axon"}

SEGMENT_LENGTH_UM = 40.0  # the nseg rule's length unit (µm)
AXON_STUB_LENGTH_UM = 30.0
AXON_STUB_DIAM_UM = 1.0

CELL1_NAME = "cell1.asc"
CELL1_SHA256 = "a8afc0925afec1dd9241528ee6ccfdcb1c321904d876835990592c2573567383"
CELL1_URL = "https://modeldb.science/getModelFile?model=139653&file=/L5bPCmodelsEH/morphologies/cell1.asc"
#: The recording site called "nexus" in the NeuronIO data, on cell1.asc.
CELL1_NEXUS = ("apic[50]", 0.9)

SYNTHETIC_VERSION = "synthetic-l5pc/1"
BALL_AND_STICK_VERSION = "ball-and-stick/1"
_SYNTHETIC_SEED = 20110101  # fixed: the synthetic cell is one specific cell, not a random draw


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
        if nexus := self.nexus:
            if nexus[0] not in seen:
                problems.append(f"nexus section {nexus[0]!r} does not exist")
        if problems:
            raise MorphologyError("invalid morphology: " + "; ".join(problems))


def nseg_for_length(length_um: float) -> int:
    """The L5PC discretisation rule: ``1 + 2·int(L / 40 µm)`` segments (always odd)."""
    return 1 + 2 * int(length_um / SEGMENT_LENGTH_UM)


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
    start = _point_at(soma.points, 0.5)[:3]
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
            pos = _point_at(sec.points, x)
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


def morphometrics(morph: Morphology) -> dict[str, float]:
    """Summary numbers: section and segment counts per region, total lengths (µm), max apical path (µm)."""
    out: dict[str, float] = {}
    for region in REGIONS:
        secs = morph.region(region)
        out[f"n_sections_{region}"] = len(secs)
        out[f"n_segments_{region}"] = sum(s.nseg for s in secs)
        out[f"length_um_{region}"] = sum(s.length_um for s in secs)
    apical_root = morph.region("apical")[0].name if morph.region("apical") else None
    if apical_root is not None:
        starts = section_start_distances(morph, origin=apical_root)
        ends = [starts[s.name] + s.length_um for s in morph.region("apical")]
        out["max_apical_path_um"] = max(ends)
    soma_names = {s.name for s in morph.region("soma")}
    out["n_basal_trees"] = sum(1 for s in morph.region("basal") if s.parent in soma_names)
    return out


# --- files ---------------------------------------------------------------------------------------------------


def file_sha256(path: str | Path) -> str:
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
    """The explicit morphology of a cell: "cell1", "synthetic", "ball-and-stick" or an absolute file path.

    Args:
        cell_name: "l5pc" or "ball-and-stick".
        spec: None (the cell's :data:`DEFAULT_MORPHOLOGY`), one of :data:`NAMED_MORPHOLOGIES`, or a path to a
            .asc/.swc file. The ball-and-stick cell has its own geometry only; "ball-and-stick" is not an L5PC.
    """
    if cell_name not in DEFAULT_MORPHOLOGY:
        raise MorphologyError(f"unknown cell {cell_name!r}; expected 'l5pc' or 'ball-and-stick'")
    spec = DEFAULT_MORPHOLOGY[cell_name] if spec is None else str(spec)
    if cell_name == "ball-and-stick" and spec != "ball-and-stick":
        raise MorphologyError(f"the ball-and-stick cell has its built-in geometry only, not morphology {spec!r}")
    if cell_name == "l5pc" and spec == "ball-and-stick":
        raise MorphologyError("morphology 'ball-and-stick' belongs to --cell ball-and-stick, not to the l5pc")
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


def resolve_morphology(name: str, spec: str | None) -> Path | Morphology:
    """Where the morphology of a cell comes from: the file to read (see :func:`morphology_file`) or, for
    built-in geometry, the Morphology (:func:`synthetic_l5pc` or :func:`ball_and_stick`, axon not yet
    replaced)."""
    path = morphology_file(name, spec)
    if path is not None:
        return path
    return ball_and_stick() if name == "ball-and-stick" else synthetic_l5pc()


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


# --- generated morphologies ------------------------------------------------------------------------------------


class _TreeBuilder:
    """Grows sections as straight-ish polylines; names them per region in creation order (depth first)."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.sections: list[SectionGeometry] = []
        self.count = dict.fromkeys(REGIONS, 0)

    def add(self, region: str, parent: SectionGeometry, parent_x: float, direction, length_um: float,
            diam_start_um: float, diam_end_um: float, wiggle: float = 0.15) -> SectionGeometry:
        """A section of ``length_um`` starting at ``parent(parent_x)``, heading along ``direction``.

        Points every ~10 µm; the heading drifts by ``wiggle`` (radians-ish) per point for tortuosity, and the
        diameter tapers linearly.
        """
        n = max(2, int(round(length_um / 10.0)) + 1)
        heading = np.asarray(direction, dtype=float)
        heading /= np.linalg.norm(heading)
        step = length_um / (n - 1)
        xyz = [_point_at(parent.points, parent_x)[:3]]
        for _ in range(n - 1):
            heading = heading + wiggle * self.rng.normal(size=3)
            heading /= np.linalg.norm(heading)
            xyz.append(xyz[-1] + step * heading)
        diam = np.linspace(diam_start_um, diam_end_um, n)
        sec = SectionGeometry(f"{REGION_PREFIX[region]}[{self.count[region]}]", region, parent.name, parent_x,
                              np.column_stack([np.array(xyz), diam]))
        self.count[region] += 1
        self.sections.append(sec)
        return sec

    def branch(self, region: str, parent: SectionGeometry, direction, diam_um: float, order: int,
               max_order: int, inner_length, terminal_length, p_branch: float, spread: float) -> None:
        """A binary subtree: each section bifurcates with probability ``p_branch`` until ``max_order``."""
        terminal = order >= max_order or self.rng.random() > p_branch
        length = self.rng.uniform(*(terminal_length if terminal else inner_length))
        end_diam = max(0.4, diam_um * (0.85 if terminal else 0.9))
        sec = self.add(region, parent, 1.0, direction, length, diam_um, end_diam)
        if terminal:
            return
        base = sec.points[-1, :3] - sec.points[-2, :3]
        base /= np.linalg.norm(base)
        child_diam = max(0.4, end_diam * 0.63)  # ≈ Rall's 3/2 power rule for two equal daughters
        for sign in (1.0, -1.0):
            d = _rotate_away(base, sign * spread, self.rng)
            self.branch(region, sec, d, child_diam, order + 1, max_order, inner_length, terminal_length,
                        p_branch, spread)


def synthetic_l5pc() -> Morphology:
    """A deterministic L5PC-like morphology for offline use (axon not yet replaced; no reconstructed axon).

    Built from typical thick-tufted layer-5 morphometrics, scaled like Hay et al. 2011's cell1: a 23.2 µm ×
    13.5 µm soma; 8 basal trees of binary branches (66 sections, ≈ 5.6 mm, radial reach ≈ 230 µm); an apical
    trunk of 8 sections rising ≈ 800 µm along +y and tapering 3.5 → 1.8 µm, with an oblique tree at each of the
    first 6 trunk branch points, and a tuft of 3 primary branches from the trunk's end (53 apical sections,
    ≈ 6.2 mm, farthest tip ≈ 1.24 mm from the trunk base). 599 dendritic segments (286 basal, 313 apical) under
    the nseg rule. The nexus is the trunk's last section at x = 0.9 (≈ 780 µm from the soma). Diameters are set
    so that the membrane area (≈ 28,500 µm²) and, with the L5PC biophysics, the somatic input resistance
    (≈ 51 MΩ; cell1: 45 MΩ) and rest (−80.6 mV) come close to cell1's; 0.5 / 0.8 / 1.0 nA steps give
    8 / 15 / 17 spikes in 1 s (cell1: 6 / 15 / 17).
    The same call always returns the same geometry (fixed seed), recorded as ``SYNTHETIC_VERSION``.
    """
    rng = np.random.default_rng(_SYNTHETIC_SEED)
    tree = _TreeBuilder(rng)
    soma_pts = np.array([[0.0, -11.6, 0.0, 13.5], [0.0, 0.0, 0.0, 13.5], [0.0, 11.6, 0.0, 13.5]])
    soma = SectionGeometry("soma[0]", "soma", None, 0.0, soma_pts)
    tree.sections.append(soma)
    tree.count["soma"] = 1

    for k in range(8):
        angle = 2 * np.pi * (k + 0.3 * rng.random()) / 8
        direction = np.array([np.cos(angle), -0.6 - 0.3 * rng.random(), np.sin(angle)])
        primary = tree.add("basal", soma, 0.5, direction, rng.uniform(15, 30), 1.8, 1.5)
        base = direction / np.linalg.norm(direction)
        for sign in (1.0, -1.0):
            tree.branch("basal", primary, _rotate_away(base, sign * 0.5, rng), 0.9, 1, 3,
                        inner_length=(30, 60), terminal_length=(90, 150), p_branch=0.55, spread=0.45)

    trunk_diam = np.linspace(3.5, 1.8, 9)
    parent, parent_x = soma, 0.5
    for k in range(8):
        trunk = tree.add("apical", parent, parent_x, [0.0, 1.0, 0.0], rng.uniform(90, 110),
                         trunk_diam[k], trunk_diam[k + 1], wiggle=0.03)
        if k < 6:
            angle = rng.uniform(0, 2 * np.pi)
            oblique_dir = np.array([np.cos(angle), 0.5, np.sin(angle)])
            tree.branch("apical", trunk, oblique_dir, 1.1, 1, 3, inner_length=(50, 90),
                        terminal_length=(110, 170), p_branch=0.7, spread=0.5)
        parent, parent_x = trunk, 1.0
    nexus = (trunk.name, 0.9)
    for k in range(3):
        angle = 2 * np.pi * k / 3 + 0.3 * rng.random()
        tree.branch("apical", trunk, [np.cos(angle), 1.0, np.sin(angle)], 1.8, 1, 4,
                    inner_length=(60, 110), terminal_length=(130, 200), p_branch=0.85, spread=0.4)

    return Morphology(_region_ordered(tree.sections), nexus, {"kind": "synthetic", "generator": SYNTHETIC_VERSION})


def ball_and_stick() -> Morphology:
    """The tiny demo cell (axon not yet replaced): a 20 µm × 20 µm soma, two 100 µm basal dendrites, a 200 µm
    apical trunk splitting into two 60 µm tuft branches. 27 dendritic segments (54 synapses) under the nseg
    rule; nexus at the trunk's x = 0.9."""
    soma = SectionGeometry("soma[0]", "soma", None, 0.0,
                           np.array([[0.0, -10.0, 0.0, 20.0], [0.0, 10.0, 0.0, 20.0]]))

    def straight(name, region, parent, start, end, d0, d1):
        return SectionGeometry(name, region, parent, 0.5 if parent == "soma[0]" else 1.0,
                               np.array([[*start, d0], [*end, d1]], dtype=float))

    b, t = 100 / np.sqrt(2), 60 / np.sqrt(2)  # 100 µm basal and 60 µm tuft branches at 45°
    sections = (
        soma,
        straight("dend[0]", "basal", "soma[0]", (0, 0, 0), (b, -b, 0), 1.5, 1.0),
        straight("dend[1]", "basal", "soma[0]", (0, 0, 0), (-b, -b, 0), 1.5, 1.0),
        straight("apic[0]", "apical", "soma[0]", (0, 0, 0), (0, 200, 0), 3.0, 2.0),
        straight("apic[1]", "apical", "apic[0]", (0, 200, 0), (t, 200 + t, 0), 1.2, 0.8),
        straight("apic[2]", "apical", "apic[0]", (0, 200, 0), (-t, 200 + t, 0), 1.2, 0.8),
    )
    return Morphology(sections, ("apic[0]", 0.9), {"kind": "ball-and-stick", "generator": BALL_AND_STICK_VERSION})


def _region_ordered(sections: list[SectionGeometry]) -> tuple[SectionGeometry, ...]:
    """Sections ordered soma, basal, apical, axon, each region in creation (depth-first, index) order.

    Names were given per region in creation order, so parents still precede their children."""
    return tuple(s for region in REGIONS for s in sections if s.region == region)


def _rotate_away(direction: np.ndarray, angle: float, rng: np.random.Generator) -> np.ndarray:
    """``direction`` turned by ``angle`` (radians) about a random axis perpendicular to it."""
    direction = np.asarray(direction, float) / np.linalg.norm(direction)
    axis = np.cross(direction, rng.normal(size=3))
    axis /= np.linalg.norm(axis)
    return direction * np.cos(angle) + np.cross(axis, direction) * np.sin(angle)


def _arc_lengths(points: np.ndarray) -> np.ndarray:
    """float [n]: cumulative 3-D path length (µm) along the points."""
    steps = np.linalg.norm(np.diff(np.asarray(points)[:, :3], axis=0), axis=1)
    return np.concatenate([[0.0], np.cumsum(steps)])


def _point_at(points: np.ndarray, x: float) -> np.ndarray:
    """float [4]: the point (x, y, z, diam) at normalised arc length ``x`` by linear interpolation."""
    arc = _arc_lengths(points)
    target = x * arc[-1]
    return np.array([np.interp(target, arc, points[:, j]) for j in range(4)])


# --- command line ----------------------------------------------------------------------------------------------


def register_cli(subparsers) -> None:
    """Add ``fetch-morphology``: download Hay's cell1.asc (or another file) into the cache, sha256-checked."""
    parser = subparsers.add_parser(
        "fetch-morphology", help="download the L5PC reconstruction cell1.asc into the local cache",
        description="Download a morphology (default: Hay et al. 2011 cell1.asc from ModelDB 139653) and check "
                    "its sha256; the simulator then uses it instead of the synthetic L5PC.")
    parser.add_argument("--url", default=CELL1_URL, help="where to download from (default: ModelDB)")
    parser.add_argument("--dest", type=Path, default=None,
                        help=f"target file (default: {cache_dir() / CELL1_NAME})")
    parser.add_argument("--sha256", default=CELL1_SHA256, help="expected sha256 hex digest")
    parser.set_defaults(func=_fetch_command)


def _fetch_command(args: argparse.Namespace) -> int:
    try:
        path = fetch_morphology(args.url, args.dest, args.sha256)
    except MorphologyError as exc:
        print(f"error: {exc}")
        return 1
    print(path)
    return 0
