"""Test-only helpers for the cell side: morphometrics, NEURON's own view of a built cell, and writers of
original-layout NeuronIO pickles (Beniaguev et al. 2021) for the reader's tests."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from biophys.morphology import REGIONS, Morphology, section_start_distances

_SIMS_KEY = "listOfSingleSimulationDicts"


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



def measure(sim, names: Sequence[str] = ()) -> pd.DataFrame:
    """Per-segment quantities as NEURON sees them in an open CellSimulator (an independent check of the pure
    tables).

    Columns: ``section``, ``region``, ``x``, ``area_um2``, ``distance_um`` (``h.distance`` from soma(0.5)),
    ``diam_um``, plus one column per range variable in ``names`` (NaN where it does not exist), e.g.
    ``"gIhbar_Ih"``, ``"cm"``.
    """
    from neuron import h

    soma = sim.segment("soma")
    rows = []
    for geom in sim.morphology.sections:
        for seg in sim.section(geom.name):
            row = {"section": geom.name, "region": geom.region, "x": seg.x, "area_um2": seg.area(),
                   "distance_um": h.distance(soma, seg), "diam_um": seg.diam}
            for name in names:
                row[name] = getattr(seg, name, np.nan)
            rows.append(row)
    return pd.DataFrame(rows)


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


