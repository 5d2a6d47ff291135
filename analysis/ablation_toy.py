"""The toy cell of the ablation notebooks' quick mode: small stores, no NEURON, a known dendritic timescale.

A row of segments is cut into contiguous groups, the toy's "branches". Each branch low-pass filters its net
input (excitatory − inhibitory spikes) with τ_dend; with ``branch_nonlinearity`` (the default, "NMDA-like") it
then passes a threshold-linear local nonlinearity, without it ("AMPA-like") the branches add up linearly.
The soma, leaky integrate-and-fire, integrates the sum with τ_soma, fires at a threshold and resets. It mimics, at toy
scale, what the ablations ask of the L5PC: a memory of tens of ms (Spieler et al. 2023, ICLR 2024,
arXiv 2306.16922) and branch-local nonlinear integration (Beniaguev, Segev & London 2021, Neuron 109:2727).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from biophys import dataset

#: Branch threshold of the NMDA-like toy (net input spikes, filtered; dimensionless).
BRANCH_THRESHOLD = 2.0
#: Offset of the AMPA-like toy's linear branches, chosen so that both toys fire at similar mean rates (about 60
#: spikes per 1.2 s simulation at the default input rates, measured over 64 simulations).
LINEAR_OFFSET = 1.0
#: Somatic spike threshold (mV) and the value a spike bin is set to (mV).
SPIKE_THRESHOLD_MV, SPIKE_PEAK_MV = -60.0, 20.0
REST_MV = -75.0
#: mV per unit of the soma's filtered drive (divided by τ_soma, so the gain does not grow with τ_soma).
SOMA_GAIN_MV = 2.0


def toy_synapses(n_segments: int) -> pd.DataFrame:
    """A synapse table (dataset columns) for ``n_segments`` segments in a row: one excitatory synapse each,
    then one inhibitory synapse each in the same order; the first half basal, the rest apical."""
    seg = np.arange(n_segments)
    tree = np.where(seg < n_segments // 2, "basal", "apical")
    base = pd.DataFrame({
        "segment": [f"toy[{i}](0.5)" for i in seg], "section": [f"toy[{i}]" for i in seg], "x": 0.5,
        "tree": tree, "distance_um": 20.0 * (seg + 1), "length_um": 20.0,
        "pos_x_um": 0.0, "pos_y_um": np.where(tree == "apical", 1.0, -1.0) * 20.0 * (seg + 1), "pos_z_um": 0.0,
    })
    exc = base.assign(kind="exc", sign=1)
    inh = base.assign(kind="inh", sign=-1)
    return pd.concat([exc, inh], ignore_index=True)[list(dataset.SYNAPSE_COLUMNS)]


def _exp_filter(x: np.ndarray, tau_ms: float) -> np.ndarray:
    """y_t = κ y_{t−1} + x_t along axis 1 (κ = exp(−1 ms / τ)) of float [n_sims, T, ...], from y_{−1} = 0."""
    kappa = math.exp(-1.0 / tau_ms)
    y = np.empty_like(x, dtype=np.float64)
    acc = np.zeros(x[:, 0].shape)
    for t in range(x.shape[1]):
        acc = kappa * acc + x[:, t]
        y[:, t] = acc
    return y


def _lif_soma(drive: np.ndarray, tau_soma_ms: float) -> tuple[np.ndarray, np.ndarray]:
    """Leaky integrate-and-fire soma over float [n_sims, T] drive: a = κ a + drive_t (κ = exp(−1 ms / τ_soma)),
    v = −75 mV + 2 mV · a / τ_soma; where v > −60 mV the bin is a spike, v is set to +20 mV and a to 0.
    Returns (v float64 [n_sims, T] in mV, fired bool [n_sims, T])."""
    kappa = math.exp(-1.0 / tau_soma_ms)
    v = np.empty_like(drive, dtype=np.float64)
    fired = np.zeros(drive.shape, dtype=bool)
    acc = np.zeros(drive.shape[0])
    for t in range(drive.shape[1]):
        acc = kappa * acc + drive[:, t]
        v[:, t] = REST_MV + SOMA_GAIN_MV * acc / tau_soma_ms
        fired[:, t] = v[:, t] > SPIKE_THRESHOLD_MV
        v[fired[:, t], t] = SPIKE_PEAK_MV
        acc[fired[:, t]] = 0.0
    return v, fired


def toy_dataset(n_sims: int, n_time: int = 1200, n_segments: int = 32, n_groups: int = 4,
                tau_dend_ms: float = 20.0, tau_soma_ms: float = 5.0, seed: int = 0,
                branch_nonlinearity: bool = True):
    """A schema-conforming dataset of a toy cell whose computation needs memory of ``tau_dend_ms``.

    Model, per 1 ms bin: branch drive d = Σ_group (exc − inh spikes); f = d low-pass filtered with τ_dend;
    local = max(f − 2, 0) with ``branch_nonlinearity`` ("NMDA-like"), else local = f − 1 (linear
    branches, "AMPA-like"); the soma integrates Σ_branches local with τ_soma and fires when it crosses −60 mV, then
    resets (:func:`_lif_soma`; a spike bin holds +20 mV). Input rates vary per simulation and per branch
    (uniform 0–50 Hz excitatory, 0–25 Hz inhibitory), so which branches are driven matters — neighbour-
    preserving routing can see it. The same ``seed`` gives the same inputs with and without the nonlinearity.

    Returns:
        xarray.Dataset (see biophys.dataset), n_synapses = 2 · n_segments.
    """
    if n_segments % n_groups:
        raise ValueError(f"n_segments ({n_segments}) must be a multiple of n_groups ({n_groups})")
    if not isinstance(branch_nonlinearity, bool):
        raise ValueError(f"branch_nonlinearity must be True or False, got {branch_nonlinearity!r}")
    rng = np.random.default_rng(seed)
    per_group = n_segments // n_groups
    exc_hz = np.repeat(rng.uniform(0.0, 50.0, (n_sims, n_groups)), per_group, axis=1)
    inh_hz = np.repeat(rng.uniform(0.0, 25.0, (n_sims, n_groups)), per_group, axis=1)
    rate_per_ms = np.concatenate([exc_hz, inh_hz], axis=1)[:, None, :] / 1000.0
    spikes = (rng.random((n_sims, n_time, 2 * n_segments)) < rate_per_ms).astype(np.uint8)
    net = spikes[..., :n_segments].astype(np.float64) - spikes[..., n_segments:]
    branch_drive = net.reshape(n_sims, n_time, n_groups, per_group).sum(axis=3)
    filtered = _exp_filter(branch_drive, tau_dend_ms)
    local = np.maximum(filtered - BRANCH_THRESHOLD, 0.0) if branch_nonlinearity else filtered - LINEAR_OFFSET
    v, fired = _lif_soma(local.sum(axis=2), tau_soma_ms)
    times = [np.flatnonzero(fired[i]) + 0.6 for i in range(n_sims)]  # spike_bins puts t + 0.6 ms in bin t
    name = "toy-branches" if branch_nonlinearity else "toy-linear-branches"
    return dataset.build_dataset(
        spikes, v.astype(np.float32), times, seeds=np.arange(n_sims), synapses=toy_synapses(n_segments),
        config={"generator": "analysis.ablation.toy_dataset", "n_time": n_time, "n_segments": n_segments,
                "n_groups": n_groups, "tau_dend_ms": tau_dend_ms, "tau_soma_ms": tau_soma_ms, "seed": seed,
                "branch_nonlinearity": branch_nonlinearity},
        provenance={"cell": {"name": name}, "n_synapses": 2 * n_segments},
    )


def write_toy_stores(out_dir: str | Path, n_sims: Sequence[int] = (16, 4, 4), **toy_kwargs) -> dict[str, Path]:
    """Write train/valid/test stores of :func:`toy_dataset` (different seeds) under ``out_dir``; an existing
    store is kept. Returns {"train": path, "valid": path, "test": path}."""
    out_dir = Path(out_dir)
    paths = {}
    for offset, (split, count) in enumerate(zip(("train", "valid", "test"), n_sims)):
        path = out_dir / f"{split}.zarr"
        if not path.exists():
            seed = toy_kwargs.get("seed", 0) * 3 + offset
            dataset.write_store(toy_dataset(count, **{**toy_kwargs, "seed": seed}), path)
        paths[split] = path
    return paths
