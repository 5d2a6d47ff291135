"""Ablation sweeps (Spieler et al. 2023): train one surrogate per variant of a base config, score each on a test store.

Two standard sweeps:
- timescale: the upper bound τ_max of the ELM's memory time constants (the paper: τ_max must reach ~25 ms);
- dendritic: Branch-ELM with neighbour-preserving ("neuronio") routing vs. random routing vs. no branches.

A variant is a dict of :class:`surrogate.config.TrainConfig` fields overriding the base config; its
``model_config`` is merged key by key into the base's. Each variant trains into ``out_dir/<name>``; a variant
whose run directory exists is resumed (a finished run is only re-scored, and a run made under another config is
refused by :func:`surrogate.train.train`), so an interrupted sweep continues where it stopped.

For quick demonstrations without NEURON, :func:`write_toy_stores` makes small stores of a toy cell with a known
dendritic timescale and branch-local nonlinearities (see :func:`toy_dataset`).
"""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from analysis.evaluate import evaluate, load_arrays, open_run, open_store
from biophys import dataset
from conventions.signals import BURN_IN_MS
from surrogate.config import TrainConfig
from surrogate.train import train

#: τ_max values (ms) of the timescale sweep; τ_min stays at the ELM default of 1 ms.
TAU_MAX_MS = (2.0, 5.0, 10.0, 25.0, 50.0, 150.0)
#: Result columns, besides one column per overridden setting.
RESULT_COLUMNS = ("variant", "model", "params", "spike_auc", "tpr_at_1pct_fpr", "rmse_mV", "train_wall_s",
                  "epochs_trained", "run")
TABLE_FILE = "ablation.csv"


def merge_config(base: Mapping, overrides: Mapping) -> dict:
    """``base`` with ``overrides`` applied; ``model_config`` is merged key by key, other keys replaced."""
    merged = copy.deepcopy(dict(base))
    for key, value in overrides.items():
        if key == "model_config":
            merged["model_config"] = {**merged.get("model_config", {}), **copy.deepcopy(dict(value))}
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def setting_columns(overrides: Mapping) -> dict:
    """The settings a variant changes, flattened: top-level keys as they are, model_config keys without prefix."""
    flat = {k: v for k, v in overrides.items() if k != "model_config"}
    flat.update(overrides.get("model_config", {}))
    return flat


def timescale_variants(tau_max_ms: Sequence[float] = TAU_MAX_MS) -> dict[str, dict]:
    """One variant per τ_max (ms): {"tau_max=25ms": {"model_config": {"tau_m_max_ms": 25.0}}, …}."""
    return {f"tau_max={t:g}ms": {"model_config": {"tau_m_max_ms": float(t)}} for t in tau_max_ms}


def dendritic_variants(n_branches: int = 45, synapses_per_branch: int = 100, routing_seed: int = 0) -> dict[str, dict]:
    """Branch-ELM with neuronio routing, with random routing (same branch sizes), and the ELM without branches."""
    branches = {"n_branches": n_branches, "synapses_per_branch": synapses_per_branch}
    return {
        "branches, neuronio routing": {"model": "branch-elm", "model_config": {**branches, "routing": "neuronio"}},
        "branches, random routing": {"model": "branch-elm",
                                     "model_config": {**branches, "routing": "random", "routing_seed": routing_seed}},
        "no branches": {"model": "elm", "model_config": {"n_branches": 0}},
    }


def _run_name(variant: str) -> str:
    """A file-system-safe directory name for a variant name."""
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", variant).strip("_") or "variant"


def run_ablation(base: Mapping, variants: Mapping[str, Mapping], train_store: str | Path, valid_store: str | Path,
                 test_store: str | Path, out_dir: str | Path, burn_in_ms: int = BURN_IN_MS,
                 progress: bool = False) -> pd.DataFrame:
    """Train every variant of ``base`` and score it on whole simulations of ``test_store``.

    Args:
        base: TrainConfig fields (``train``, ``valid`` and ``out`` are set here and must not be given).
        variants: name → overrides of TrainConfig fields (see :func:`merge_config`).
        train_store, valid_store: stores to train and validate on; the validation store also sets the spike
            threshold of the timing metrics.
        test_store: store the table's metrics come from.
        out_dir: gets one run directory per variant and the table as ``ablation.csv``.
        burn_in_ms: evaluation burn-in per simulation (ms).
    Returns:
        One row per variant, in the given order: the columns of :data:`RESULT_COLUMNS` (spike ROC AUC,
        TPR at 1 % FPR, somatic RMSE in mV on the clipped voltage, trainable parameters, training wall time in
        s) plus one column per setting any variant overrides (NaN where a variant keeps the base value).
    Raises:
        ValueError: no variants, or ``base`` sets a path; plus the errors of train() and evaluate().
    """
    if not variants:
        raise ValueError("run_ablation needs at least one variant")
    given_paths = sorted({"train", "valid", "out"} & set(base))
    if given_paths:
        raise ValueError(f"the base config must not set {given_paths}: run_ablation sets the stores and run paths")
    names = [_run_name(v) for v in variants]
    if len(set(names)) != len(names):
        raise ValueError(f"variant names must stay distinct as directory names, got {names}")
    out_dir = Path(out_dir)
    test, valid = open_store(test_store), open_store(valid_store)
    test_data, valid_data = load_arrays(test), load_arrays(valid)  # read once, scored once per variant
    rows = []
    for (variant, overrides), name in zip(variants.items(), names):
        run_dir = out_dir / name
        cfg = TrainConfig.from_dict(merge_config(base, {**overrides, "train": str(train_store),
                                                        "valid": str(valid_store), "out": str(run_dir)}))
        train(cfg, resume=run_dir.is_dir() and any(run_dir.iterdir()), progress=progress)
        run = open_run(run_dir)
        result = evaluate(run, test, burn_in_ms, valid, test_data, valid_data).metrics
        rows.append({
            "variant": variant,
            "model": result["model"],
            "params": result["params"],
            "spike_auc": result["spike_auc"],
            "tpr_at_1pct_fpr": result["tpr_at_fpr"]["1.00%"],
            "rmse_mV": result["rmse_mV"],
            "train_wall_s": run.metrics["wall_s"],
            "epochs_trained": run.metrics["epochs_completed"],
            "run": str(run_dir),
            **setting_columns(overrides),
        })
    table = pd.DataFrame(rows).astype({"spike_auc": float, "tpr_at_1pct_fpr": float, "rmse_mV": float})
    out_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_dir / TABLE_FILE, index=False)
    return table


# --------------------------------------------------------------------------------------------- quick-mode data


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


def toy_dataset(n_sims: int, n_time: int = 1200, n_segments: int = 32, n_groups: int = 4,
                tau_dend_ms: float = 20.0, tau_soma_ms: float = 5.0, seed: int = 0):
    """A schema-conforming dataset of a toy cell whose computation needs memory of ``tau_dend_ms``.

    Model: contiguous groups of segments are "branches"; each branch low-pass filters its net input
    (exc − inh spikes) with τ_dend and passes it through a threshold-linear local nonlinearity; the soma
    low-pass filters the sum with τ_soma, v = −75 mV + 2 mV · that, and fires (+20 mV for one bin) on each
    upward crossing of −60 mV. Input rates vary per simulation and per branch (uniform 0–50 Hz excitatory,
    0–25 Hz inhibitory), so which branches are driven matters — neighbour-preserving routing can see it.

    Returns:
        xarray.Dataset (see biophys.dataset), n_synapses = 2 · n_segments.
    """
    if n_segments % n_groups:
        raise ValueError(f"n_segments ({n_segments}) must be a multiple of n_groups ({n_groups})")
    rng = np.random.default_rng(seed)
    per_group = n_segments // n_groups
    exc_hz = np.repeat(rng.uniform(0.0, 50.0, (n_sims, n_groups)), per_group, axis=1)
    inh_hz = np.repeat(rng.uniform(0.0, 25.0, (n_sims, n_groups)), per_group, axis=1)
    rate_per_ms = np.concatenate([exc_hz, inh_hz], axis=1)[:, None, :] / 1000.0
    spikes = (rng.random((n_sims, n_time, 2 * n_segments)) < rate_per_ms).astype(np.uint8)
    net = spikes[..., :n_segments].astype(np.float64) - spikes[..., n_segments:]
    branch_drive = net.reshape(n_sims, n_time, n_groups, per_group).sum(axis=3)
    local = np.maximum(_exp_filter(branch_drive, tau_dend_ms) - 2.0, 0.0)
    v = -75.0 + 2.0 * _exp_filter(local.sum(axis=2), tau_soma_ms) / tau_soma_ms
    fired = (v[:, 1:] > -60.0) & (v[:, :-1] <= -60.0)
    times = []
    for i in range(n_sims):
        bins = np.flatnonzero(fired[i]) + 1
        v[i, bins] = 20.0
        times.append(bins + 0.6)  # conventions.signals.spike_bins puts a spike 0.6 ms into a bin in that bin
    return dataset.build_dataset(
        spikes, v.astype(np.float32), times, seeds=np.arange(n_sims), synapses=toy_synapses(n_segments),
        config={"generator": "analysis.ablation.toy_dataset", "n_time": n_time, "n_segments": n_segments,
                "n_groups": n_groups, "tau_dend_ms": tau_dend_ms, "tau_soma_ms": tau_soma_ms, "seed": seed},
        provenance={"cell": {"name": "toy-branches"}, "n_synapses": 2 * n_segments},
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
