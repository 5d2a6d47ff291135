"""The original NeuronIO pickle layout (Beniaguev, Segev & London 2021): the one reader of it, the import
into a store, and the input spike trains ``simulate`` runs the cell on.

An original file is a pickle (protocol 2, optionally gzip-compressed) of::

    {'Params': {'allSegmentsType': ['basal', ..., 'apical', ...],   # one per dendritic segment
                'allSegmentsLength': [...], 'allSegments_DistFromSoma': [...], 'allSegments_SectionInd': [...],
                'totalSimDurationInSec': ..., 'numSimulations': ..., 'randomSeed': ..., ...},
     'Results': {'listOfSingleSimulationDicts': [
                {'exInputSpikeTimes': {segment index: spike times (ms)}, 'inhInputSpikeTimes': {...},
                 'somaVoltageLowRes': float16 [T] (1 ms), 'nexusVoltageLowRes': float16 [T],
                 'outputSpikeTimes': float16 [n] (ms), 'dendriticVoltagesLowRes': float16 [n_segment, T], ...},
                ...]}}

Only ``Params['allSegmentsType']`` and, per simulation, the two input dicts, ``somaVoltageLowRes`` and
``outputSpikeTimes`` are required; missing segment metadata becomes NaN (or "unknown") in the imported store.
Segment names come from ``allSegments_SectionInd``, else from matching each segment against a morphology
(:mod:`biophys.neuronio_segments`), else they stay unknown; the store's config says which (``segment_identity``).
Imported input spike times fall into 1 ms bins ``floor(t)``; segments absent from an input dict have no spikes.
:func:`read_inputs` keeps the exact times for simulating (and reads a store's inputs too).
"""

from __future__ import annotations

import gzip
import hashlib
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from biophys import dataset, neuronio_segments
from biophys.inputs import spike_matrix_to_times
from conventions.provenance import provenance

TREES = ("basal", "apical")
_SIMS_KEY = "listOfSingleSimulationDicts"
_INPUT_KEYS = ("exInputSpikeTimes", "inhInputSpikeTimes")
_REQUIRED_SIM_KEYS = (*_INPUT_KEYS, "somaVoltageLowRes", "outputSpikeTimes")
_GZIP_MAGIC = b"\x1f\x8b"
#: Stored as ``seed`` for imported simulations: the original files seed a whole file, not each simulation.
UNKNOWN_SEED = -1


class NeuronIOFormatError(ValueError):
    """A file does not follow the original NeuronIO layout (the message names the file and what is wrong)."""


# --- reading the original layout -------------------------------------------------------------------------------


def read_pickle(path: str | Path, required: Sequence[str] = _REQUIRED_SIM_KEYS) -> tuple[dict, list[dict]]:
    """(Params, list of simulation dicts) of an original file (plain or gzip-compressed), with the keys checked.

    Args:
        required: the keys every simulation dict must have (the input dicts suffice to simulate).
    Raises:
        NeuronIOFormatError: a missing or unreadable file, not a pickle, or a missing key (named with the file).
    """
    path = Path(path)
    if not path.is_file():
        raise NeuronIOFormatError(f"{path}: no such file")
    try:
        with open(path, "rb") as raw:
            compressed = raw.read(2) == _GZIP_MAGIC
        with (gzip.open if compressed else open)(path, "rb") as f:
            # The original files are Python 2 pickles: latin1 keeps their NumPy buffers intact.
            data = pickle.load(f, encoding="latin1")
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError, IndexError,
            KeyError, TypeError) as exc:
        raise NeuronIOFormatError(f"{path}: cannot read as a pickle ({type(exc).__name__}: {exc})") from exc
    if not isinstance(data, dict):
        raise NeuronIOFormatError(f"{path}: top level is a {type(data).__name__}, expected a dict with 'Params' "
                                  "and 'Results'")
    for key in ("Params", "Results"):
        if key not in data:
            raise NeuronIOFormatError(f"{path}: missing key {key!r}")
    params, results = data["Params"], data["Results"]
    if not isinstance(params, dict) or "allSegmentsType" not in params:
        raise NeuronIOFormatError(f"{path}: missing key 'Params' → 'allSegmentsType'")
    if not isinstance(results, dict) or _SIMS_KEY not in results:
        raise NeuronIOFormatError(f"{path}: missing key 'Results' → {_SIMS_KEY!r}")
    sims = list(results[_SIMS_KEY])
    if not sims:
        raise NeuronIOFormatError(f"{path}: 'Results' → {_SIMS_KEY!r} is empty")
    for i, sim in enumerate(sims):
        if not isinstance(sim, dict):
            raise NeuronIOFormatError(f"{path}: simulation {i} is a {type(sim).__name__}, expected a dict")
        for key in required:
            if key not in sim:
                raise NeuronIOFormatError(f"{path}: simulation {i} is missing key {key!r}")
    return params, sims


# --- conversion to the store format ------------------------------------------------------------------------------


def _segment_column(path: Path, params: dict, key: str, n_seg: int) -> np.ndarray:
    """float64 [n_seg] from ``params[key]``, NaN when the file does not have it."""
    if key not in params:
        return np.full(n_seg, np.nan)
    values = np.asarray(params[key], dtype=np.float64)
    if values.shape != (n_seg,):
        raise NeuronIOFormatError(f"{path}: 'Params' → {key!r} has {values.size} entries, expected {n_seg} "
                                  "(one per segment of allSegmentsType)")
    return values


def segment_table(path: Path, params: dict) -> pd.DataFrame:
    """One row per dendritic segment: tree, length_um, distance_um, section, x, segment (metadata not in the
    file becomes NaN, or "unknown" for names).

    Section names follow the original script's order: ``allSegments_SectionInd`` numbers the basal sections,
    then the apical ones (either globally or per tree), which become ``dend[i]`` and ``apic[j]``; a segment's
    ``x`` is its position among the consecutive segments of its section.
    """
    tree = np.array([str(t) for t in params["allSegmentsType"]])
    bad = sorted(set(tree) - set(TREES))
    if bad:
        raise NeuronIOFormatError(f"{path}: 'Params' → 'allSegmentsType' holds {bad}; expected 'basal'/'apical'")
    n_seg = len(tree)
    section = np.full(n_seg, "unknown", dtype=object)
    x = np.full(n_seg, np.nan)
    if "allSegments_SectionInd" in params:
        index = _segment_column(path, params, "allSegments_SectionInd", n_seg).astype(np.int64)
        for name, prefix in (("basal", "dend"), ("apical", "apic")):
            rows = np.flatnonzero(tree == name)
            if rows.size:
                section[rows] = [f"{prefix}[{i}]" for i in index[rows] - index[rows].min()]
        # runs of equal section index are one section's segments, in order
        starts = np.r_[0, np.flatnonzero(np.diff(index) != 0) + 1, n_seg]
        for a, b in zip(starts[:-1], starts[1:]):
            x[a:b] = (np.arange(b - a) + 0.5) / (b - a)
    segment = [f"{s}({v:g})" if s != "unknown" else f"segment[{i}]" for i, (s, v) in enumerate(zip(section, x))]
    return pd.DataFrame({
        "segment": segment, "section": section, "x": x, "tree": tree,
        "distance_um": _segment_column(path, params, "allSegments_DistFromSoma", n_seg),
        "length_um": _segment_column(path, params, "allSegmentsLength", n_seg),
    })


def synapse_table(segments: pd.DataFrame) -> pd.DataFrame:
    """Store synapse metadata (:data:`biophys.dataset.SYNAPSE_COLUMNS`): excitatory then inhibitory per segment;
    3-D positions are not in the original files: NaN unless ``segments`` has them (from a matched morphology)."""
    blocks = []
    for kind, sign in (("exc", 1), ("inh", -1)):
        block = segments.copy()
        block["kind"], block["sign"] = kind, sign
        for axis in ("x", "y", "z"):
            if f"pos_{axis}_um" not in block:
                block[f"pos_{axis}_um"] = np.nan
        blocks.append(block)
    return pd.concat(blocks, ignore_index=True)[list(dataset.SYNAPSE_COLUMNS)]


def _input_matrix(path: Path, i: int, sim: dict, n_seg: int, n_time: int) -> np.ndarray:
    """uint8 [T, 2·n_seg] spike counts per 1 ms bin from the two spike-time dicts."""
    counts = np.zeros((n_time, 2 * n_seg), dtype=np.int64)
    for offset, key in ((0, "exInputSpikeTimes"), (n_seg, "inhInputSpikeTimes")):
        trains = sim[key]
        if not isinstance(trains, dict):
            raise NeuronIOFormatError(f"{path}: simulation {i}: {key!r} must map segment indices to spike times")
        for segment, times in trains.items():
            if not 0 <= int(segment) < n_seg:
                raise NeuronIOFormatError(f"{path}: simulation {i}: {key!r} has segment {segment}, but the file "
                                          f"has {n_seg} segments")
            bins = np.floor(np.asarray(times, dtype=np.float64)).astype(np.int64).ravel()
            if bins.size and (bins.min() < 0 or bins.max() >= n_time):
                raise NeuronIOFormatError(f"{path}: simulation {i}: {key!r}[{segment}] has spike times outside "
                                          f"[0, {n_time}) ms")
            np.add.at(counts[:, offset + int(segment)], bins, 1)
    if counts.max(initial=0) > 255:
        raise NeuronIOFormatError(f"{path}: simulation {i}: more than 255 input spikes in one 1 ms bin")
    return counts.astype(np.uint8)


def _file_arrays(path: Path, params: dict, sims: list[dict]) -> dict:
    n_seg = len(params["allSegmentsType"])
    n_time = len(sims[0]["somaVoltageLowRes"])
    out = {"inputs": [], "soma": [], "nexus": [], "dend": [], "spikes": []}
    for i, sim in enumerate(sims):
        soma = np.asarray(sim["somaVoltageLowRes"], dtype=np.float32)
        if soma.shape != (n_time,):
            raise NeuronIOFormatError(f"{path}: simulation {i}: somaVoltageLowRes has shape {soma.shape}, expected "
                                      f"({n_time},) like simulation 0")
        if "recordingTimeLowRes" in sim and not np.allclose(np.asarray(sim["recordingTimeLowRes"], np.float64),
                                                            np.arange(n_time) * dataset.DT_MS):
            raise NeuronIOFormatError(f"{path}: simulation {i}: recordingTimeLowRes is not 0, 1, 2, … ms")
        out["inputs"].append(_input_matrix(path, i, sim, n_seg, n_time))
        out["soma"].append(soma)
        out["nexus"].append(None if "nexusVoltageLowRes" not in sim
                            else np.asarray(sim["nexusVoltageLowRes"], dtype=np.float32))
        dend = sim.get("dendriticVoltagesLowRes")
        if dend is not None:
            dend = np.asarray(dend, dtype=np.float16)
            if dend.shape != (n_seg, n_time):
                raise NeuronIOFormatError(f"{path}: simulation {i}: dendriticVoltagesLowRes has shape {dend.shape}, "
                                          f"expected ({n_seg}, {n_time})")
            dend = dend.T
        out["dend"].append(dend)
        out["spikes"].append(np.asarray(sim["outputSpikeTimes"], dtype=np.float64).ravel())
    return out


def to_dataset(files: Sequence[str | Path], morphology: str | None = None) -> xr.Dataset:
    """Read original files into one store-format dataset (simulations in file order, then list order), its
    segments named by :func:`biophys.neuronio_segments.identify_segments` against ``morphology`` (a morphology spec, or None).

    Raises:
        NeuronIOFormatError: a malformed file, one given twice, files that disagree on segments or duration, or
            segments that do not match ``morphology``.
    """
    files = [Path(f) for f in files]
    if not files:
        raise NeuronIOFormatError("no NeuronIO files given")
    digests: dict[str, Path] = {}
    segments, arrays, sources = None, [], []
    for path in files:
        params, sims = read_pickle(path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest in digests:
            raise NeuronIOFormatError(f"{path}: the same file as {digests[digest]} (equal sha256); give each file "
                                      "once, or its simulations would be imported twice")
        digests[digest] = path
        table = segment_table(path, params)
        if segments is None:
            segments, n_time = table, len(sims[0]["somaVoltageLowRes"])
        elif not table.equals(segments):
            raise NeuronIOFormatError(f"{path}: its segments differ from those of {files[0]}; import files of one "
                                      "cell together")
        elif len(sims[0]["somaVoltageLowRes"]) != n_time:
            raise NeuronIOFormatError(f"{path}: simulations last {len(sims[0]['somaVoltageLowRes'])} ms, those of "
                                      f"{files[0]} {n_time} ms")
        arrays.append(_file_arrays(path, params, sims))
        sources.append({"file": str(path), "sha256": digest,
                        "n_sims": len(sims), "randomSeed": params.get("randomSeed")})
    try:
        segments, identity = neuronio_segments.identify_segments(segments, morphology)
    except neuronio_segments.SegmentMatchError as exc:
        raise NeuronIOFormatError(f"{files[0]}: {exc}") from None
    merged = {k: [v for a in arrays for v in a[k]] for k in arrays[0]}
    n_sims = len(merged["soma"])
    nexus = None if any(v is None for v in merged["nexus"]) else np.stack(merged["nexus"])
    dend = None if any(v is None for v in merged["dend"]) else np.stack(merged["dend"])
    config = {"source": "neuronio-pickle", "files": sources, "segment_identity": identity,
              "seed": f"{UNKNOWN_SEED}: the original files seed a whole file (randomSeed), not each simulation"}
    prov = {**provenance(), "cell": {"name": "original-neuronio"}}
    return dataset.build_dataset(np.stack(merged["inputs"]), np.stack(merged["soma"]), merged["spikes"],
                                 seeds=[UNKNOWN_SEED] * n_sims, synapses=synapse_table(segments), config=config,
                                 provenance=prov, nexus_voltage=nexus, dendritic_voltage=dend)


def import_neuronio(files: Sequence[str | Path], out: str | Path, morphology: str | None = None) -> Path:
    """Convert original NeuronIO pickles into one store at ``out`` (written atomically; refuses to overwrite),
    segments named against ``morphology`` where the files do not name them (see :func:`to_dataset`)."""
    if Path(out).exists():
        raise dataset.StoreError(f"{out} already exists; choose another path or remove it first")
    return dataset.write_store(to_dataset(files, morphology), out)


# --- input spike trains for the simulator ---------------------------------------------------------------------


@dataclass
class SimulationInputs:
    """Input spike trains read from an original pickle or a NeuronIO store.

    Attributes:
        spike_times: per simulation, one float64 array of spike times (ms) per synapse in dataset order.
        duration_ms: T, the simulated duration of every simulation.
        seeds: int64 [n_sim] the simulations' seeds (a pickle's index when it has none).
        sim_index: int64 [n_sim] the simulations' indices in the source.
        source: a short description of where they came from.
        config: the config a store was made with (its ``config`` attribute), {} for a pickle.
    """

    spike_times: list[list[np.ndarray]]
    duration_ms: int
    seeds: np.ndarray
    sim_index: np.ndarray
    source: str
    config: dict = field(default_factory=dict)


def read_inputs(path: str | Path) -> SimulationInputs:
    """Read the input spike trains of a NeuronIO store (a directory) or an original pickle (plain or gzip).

    A pickle holds ``exInputSpikeTimes`` / ``inhInputSpikeTimes`` (segment index → times in ms) per simulation;
    excitatory synapse k is row k, inhibitory synapse k is row n_segments + k, with n_segments from
    ``Params['allSegmentsType']``; the times are kept as they are (not binned). Only open pickles you trust:
    unpickling can run code.

    Raises:
        NeuronIOFormatError: no such path, or a file that is not an original NeuronIO pickle.
        biophys.dataset.StoreError: a directory that is not a valid store.
    """
    path = Path(path)
    if path.is_dir():
        store = dataset.NeuronIOStore(path).load()
        spikes = store.ds["input_spikes"].values
        times = [spike_matrix_to_times(spikes[i].T) for i in range(store.n_sims)]
        return SimulationInputs(times, store.n_time, store.ds["seed"].values.astype(np.int64),
                                store.sim_ids.astype(np.int64), f"store {path}", store.config)
    if not path.exists():
        raise NeuronIOFormatError(f"{path}: no such input file or store")
    params, sims = read_pickle(path, required=_INPUT_KEYS)
    if "totalSimDurationInSec" not in params:
        raise NeuronIOFormatError(f"{path}: missing key 'Params' → 'totalSimDurationInSec'")
    n_segments = len(params["allSegmentsType"])
    duration_ms = int(round(float(params["totalSimDurationInSec"]) * 1000.0))
    times = []
    for i, sim in enumerate(sims):
        trains = [np.zeros(0)] * (2 * n_segments)
        for offset, key in ((0, "exInputSpikeTimes"), (n_segments, "inhInputSpikeTimes")):
            if not isinstance(sim[key], dict):
                raise NeuronIOFormatError(f"{path}: simulation {i}: {key!r} must map segment indices to spike times")
            for segment, spikes in sim[key].items():
                if not 0 <= int(segment) < n_segments:
                    raise NeuronIOFormatError(f"{path}: simulation {i}: {key!r} has segment {segment}, but the file "
                                              f"has {n_segments} segments")
                trains[offset + int(segment)] = np.sort(np.asarray(spikes, dtype=np.float64))
        times.append(trains)
    index = np.arange(len(sims), dtype=np.int64)
    return SimulationInputs(times, duration_ms, index.copy(), index, f"pickle {path}")
