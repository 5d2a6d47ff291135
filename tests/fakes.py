"""Small synthetic NeuronIO stores for tests that need data but not NEURON.

The fake "cell" is a leaky integrator of signed, weighted input spikes with a threshold, so the stores have
learnable structure (a surrogate can beat chance on them) while costing milliseconds to make.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from biophys import dataset


def fake_synapses(n_segments: int) -> pd.DataFrame:
    """A synapse table for ``n_segments`` dendritic segments (one exc + one inh each), half basal half apical."""
    seg = np.arange(n_segments)
    tree = np.where(seg < n_segments // 2, "basal", "apical")
    rows = []
    for kind, sign in (("exc", 1), ("inh", -1)):
        for i in seg:
            rows.append({
                "segment": f"sec{i // 3}({(i % 3 + 0.5) / 3:.4f})", "section": f"sec{i // 3}",
                "x": (i % 3 + 0.5) / 3, "tree": tree[i], "distance_um": 10.0 * i, "length_um": 13.3,
                "kind": kind, "sign": sign, "pos_x_um": float(np.cos(i)) * i, "pos_y_um": 8.0 * i * (1 if tree[i] == "apical" else -1),
                "pos_z_um": 0.0,
            })
    return pd.DataFrame(rows)


def fake_dataset(n_sims: int = 4, n_time: int = 1200, n_segments: int = 8, seed: int = 0, rate_hz: float = 20.0):
    """An in-memory dataset following the schema. Returns the xarray.Dataset."""
    rng = np.random.default_rng(seed)
    n_syn = 2 * n_segments
    spikes = (rng.random((n_sims, n_time, n_syn)) < rate_hz / 1000.0).astype(np.uint8)
    sign = np.r_[np.ones(n_segments), -np.ones(n_segments)]
    drive = spikes @ (sign * 4.0)
    kernel = np.exp(-np.arange(60) / 10.0)
    v = np.empty((n_sims, n_time), dtype=np.float32)
    times = []
    for i in range(n_sims):
        u = -75.0 + np.convolve(drive[i], kernel)[:n_time]
        crossings = np.flatnonzero((u[1:] > -60.0) & (u[:-1] <= -60.0)) + 1
        t_spk = crossings + 0.3
        u = u.copy()
        u[crossings] = 20.0
        v[i] = u
        times.append(t_spk.astype(np.float64))
    return dataset.build_dataset(
        spikes, v, times, seeds=np.arange(n_sims), synapses=fake_synapses(n_segments),
        config={"generator": "tests.fakes", "seed": seed, "n_time": n_time},
        provenance={"cell": {"name": "fake-integrator"}, "git_commit": "test"},
    )


def fake_store(path: str | Path, **kwargs) -> Path:
    """Write :func:`fake_dataset` to ``path`` and return the path."""
    return dataset.write_store(fake_dataset(**kwargs), path)
