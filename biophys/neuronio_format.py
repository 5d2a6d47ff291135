"""The original NeuronIO pickle layout (Beniaguev, Segev & London 2021): read it, write it, import it.

An original file is a pickle (protocol 2) of::

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
Input spike times fall into 1 ms bins ``floor(t)``; segments absent from an input dict have no spikes.
"""

from __future__ import annotations

import argparse
import hashlib
import pickle
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from biophys import dataset
from conventions.provenance import provenance

TREES = ("basal", "apical")
_SIMS_KEY = "listOfSingleSimulationDicts"
_REQUIRED_SIM_KEYS = ("exInputSpikeTimes", "inhInputSpikeTimes", "somaVoltageLowRes", "outputSpikeTimes")
#: Stored as ``seed`` for imported simulations: the original files seed a whole file, not each simulation.
UNKNOWN_SEED = -1


class NeuronIOFormatError(ValueError):
    """A file does not follow the original NeuronIO layout (the message names the file and what is wrong)."""


# --- reading and writing the original layout -------------------------------------------------------------------


def read_pickle(path: str | Path) -> tuple[dict, list[dict]]:
    """(Params, list of simulation dicts) of an original file, with the required keys checked.

    Raises:
        NeuronIOFormatError: unreadable file, or a missing key (named with the file).
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = pickle.load(f)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError) as exc:
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
        for key in _REQUIRED_SIM_KEYS:
            if key not in sim:
                raise NeuronIOFormatError(f"{path}: simulation {i} is missing key {key!r}")
    return params, sims


def write_pickle(path: str | Path, params: dict, sims: Sequence[dict]) -> Path:
    """Write ``{'Params': params, 'Results': {'listOfSingleSimulationDicts': sims}}`` as pickle protocol 2."""
    path = Path(path)
    with open(path, "wb") as f:
        pickle.dump({"Params": params, "Results": {_SIMS_KEY: list(sims)}}, f, protocol=2)
    return path


def params_dict(segments: pd.DataFrame, duration_ms: int, n_sims: int, random_seed: int) -> dict:
    """Original-layout ``Params`` for dendritic ``segments`` (columns ``tree``, ``length_um``, ``distance_um``,
    and ``section_index``: index of the segment's section among all dendritic sections, basal first)."""
    return {
        "allSegmentsType": [str(t) for t in segments["tree"]],
        "allSegmentsLength": [float(v) for v in segments["length_um"]],
        "allSegments_DistFromSoma": [float(v) for v in segments["distance_um"]],
        "allSegments_SectionInd": [int(v) for v in segments["section_index"]],
        "totalSimDurationInSec": duration_ms / 1000.0,
        "numSimulations": int(n_sims),
        "randomSeed": int(random_seed),
    }


def simulation_dict(input_spikes: np.ndarray, soma_mV: np.ndarray, output_spike_times_ms: np.ndarray,
                    nexus_mV: np.ndarray | None = None, dendritic_mV: np.ndarray | None = None) -> dict:
    """One simulation in the original layout.

    Args:
        input_spikes: uint8/bool [2·n_segment, T]: excitatory channels, then inhibitory (one spike per bin at most).
        soma_mV: float [T] at 1 ms; nexus_mV: optional float [T]; output_spike_times_ms: float [n].
        dendritic_mV: optional float [n_segment, T].
    Returns:
        dict with float64 spike-time arrays keyed by segment index (segments with spikes only) and float16
        voltages and output spike times, as in the original files.
    """
    spikes = np.asarray(input_spikes)
    n_seg = spikes.shape[0] // 2
    trains = [{int(s): np.flatnonzero(row).astype(np.float64) for s, row in enumerate(half) if row.any()}
              for half in (spikes[:n_seg], spikes[n_seg:])]
    sim = {
        "exInputSpikeTimes": trains[0],
        "inhInputSpikeTimes": trains[1],
        "somaVoltageLowRes": np.asarray(soma_mV, dtype=np.float16),
        "recordingTimeLowRes": np.arange(len(soma_mV), dtype=np.float32),
        "outputSpikeTimes": np.asarray(output_spike_times_ms, dtype=np.float16),
    }
    if nexus_mV is not None:
        sim["nexusVoltageLowRes"] = np.asarray(nexus_mV, dtype=np.float16)
    if dendritic_mV is not None:
        sim["dendriticVoltagesLowRes"] = np.asarray(dendritic_mV, dtype=np.float16)
    return sim


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
    3-D positions are not in the original files and become NaN."""
    blocks = []
    for kind, sign in (("exc", 1), ("inh", -1)):
        block = segments.copy()
        block["kind"], block["sign"] = kind, sign
        for axis in ("x", "y", "z"):
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


def to_dataset(files: Sequence[str | Path]) -> xr.Dataset:
    """Read original files into one store-format dataset (simulations in file order, then list order).

    Raises:
        NeuronIOFormatError: a malformed file, or files that disagree on segments or duration.
    """
    files = [Path(f) for f in files]
    if not files:
        raise NeuronIOFormatError("no NeuronIO files given")
    segments, arrays, sources = None, [], []
    for path in files:
        params, sims = read_pickle(path)
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
        sources.append({"file": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                        "n_sims": len(sims), "randomSeed": params.get("randomSeed")})
    merged = {k: [v for a in arrays for v in a[k]] for k in arrays[0]}
    n_sims = len(merged["soma"])
    nexus = None if any(v is None for v in merged["nexus"]) else np.stack(merged["nexus"])
    dend = None if any(v is None for v in merged["dend"]) else np.stack(merged["dend"])
    config = {"source": "neuronio-pickle", "files": sources,
              "seed": f"{UNKNOWN_SEED}: the original files seed a whole file (randomSeed), not each simulation"}
    prov = {**provenance(), "cell": {"name": "original-neuronio"}}
    return dataset.build_dataset(np.stack(merged["inputs"]), np.stack(merged["soma"]), merged["spikes"],
                                 seeds=[UNKNOWN_SEED] * n_sims, synapses=synapse_table(segments), config=config,
                                 provenance=prov, nexus_voltage=nexus, dendritic_voltage=dend)


def import_neuronio(files: Sequence[str | Path], out: str | Path) -> Path:
    """Convert original NeuronIO pickles into one store at ``out`` (written atomically; refuses to overwrite)."""
    if Path(out).exists():
        raise dataset.StoreError(f"{out} already exists; choose another path or remove it first")
    return dataset.write_store(to_dataset(files), out)


# --- command line --------------------------------------------------------------------------------------------------


def register_cli(subparsers) -> None:
    """Add ``import-neuronio FILE.p... --out STORE`` to an argparse subparsers object."""
    p = subparsers.add_parser("import-neuronio", help="convert original NeuronIO pickles into a store",
                              description="Read pickles in the original NeuronIO layout (Beniaguev et al. 2021) "
                              "and write their simulations as one NeuronIO store.")
    p.add_argument("files", nargs="+", type=Path, help="original .p files")
    p.add_argument("--out", type=Path, required=True, help="the store to write")
    p.set_defaults(func=_import_command)


def _import_command(args: argparse.Namespace) -> int:
    try:
        path = import_neuronio(args.files, args.out)
    except (NeuronIOFormatError, dataset.StoreError) as exc:
        print(f"import-neuronio: {exc}", file=sys.stderr)
        return 2
    print(dataset.NeuronIOStore(path).summary())
    return 0
