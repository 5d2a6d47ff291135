"""Integrity checks of NeuronIO stores, which ``inspect`` runs before it summarises a store.

:func:`store_problems` goes beyond the checks of :func:`biophys.dataset.open_dataset` (schema; every file its
manifest lists present at its size): it compares every file with its manifest checksum, decodes every chunk of
every variable (a garbled chunk fails here, named by its key, not in the middle of training), checks that the
spike labels agree with the exact spike times, and, for stores made by ``generate``, that every planned
simulation is present with the seed of its index.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr
import zarr

from biophys.dataset import open_dataset
from biophys.storefiles import manifest_problems
from conventions.signals import spike_bins


def damaged_chunks(store: str | Path, sim: int) -> list[str]:
    """Keys (``name/c/i/j/…``) of the chunks holding simulation position ``sim`` that cannot be decoded."""
    damaged = []
    for name, array in zarr.open_group(store, mode="r").arrays():
        if (array.metadata.dimension_names or (None,))[0] != "sim":
            continue
        for rest in np.ndindex(*array.cdata_shape[1:]):
            index = (sim // array.chunks[0], *rest)
            try:
                array.blocks[index]
            except Exception:  # codecs raise many types for damaged chunks
                damaged.append(f"{name}/c/" + "/".join(str(i) for i in index))
    return damaged


def data_problems(ds: xr.Dataset) -> list[str]:
    """Problems found by reading every value of ``ds`` (an opened store), one simulation at a time.

    Returns an empty list when all chunks decode, somatic voltages are finite, the per-bin labels equal
    :func:`~conventions.signals.spike_bins` of the exact spike times and the time axis is 0, 1, 2, … ms.
    """
    problems = []
    n_time = ds.sizes["time"]
    if not np.array_equal(ds["time"].values, np.arange(n_time, dtype=np.float64)):
        problems.append("time coordinate is not 0, 1, …, T−1 ms")
    for i in range(ds.sizes["sim"]):
        sim_id = int(ds["sim"].values[i])
        try:
            one = ds.isel(sim=i).load()
        except Exception as exc:  # codecs and stores raise many types for damaged chunks
            source = ds.encoding.get("source")
            chunks = damaged_chunks(source, i) if source else []
            where = f"chunk(s) {', '.join(chunks)}" if chunks else f"({type(exc).__name__}: {exc})"
            problems.append(f"simulation {sim_id}: data cannot be read: {' '.join(where.split())}")
            continue
        if not np.all(np.isfinite(one["soma_voltage"].values)):
            problems.append(f"simulation {sim_id}: non-finite somatic voltage")
        labels = spike_bins(one["output_spike_times"].values, n_time)
        if not np.array_equal(labels, one["output_spikes"].values):
            problems.append(f"simulation {sim_id}: output_spikes disagree with output_spike_times")
    return problems


def planned_sims_problems(ds: xr.Dataset, sims: np.ndarray) -> list[str]:
    """Problems if ``ds`` does not hold exactly simulations ``sims``, each with ``seed == sim``."""
    ids = ds["sim"].values
    if not np.array_equal(ids, sims):
        missing = np.setdiff1d(sims, ids)
        extra = np.setdiff1d(ids, sims)
        return [f"simulations differ from the plan: {len(missing)} missing (first {missing[:5].tolist()}), "
                f"{len(extra)} unexpected (first {extra[:5].tolist()})"]
    if not np.array_equal(ds["seed"].values, sims):
        return ["seeds do not equal the simulation indices"]
    return []


def store_problems(path: str | Path) -> list[str]:
    """Every problem found in the store at ``path`` (empty list: the store is intact).

    Files that differ from the store's manifest are reported without decoding anything; otherwise every chunk
    is decoded.

    Raises:
        StoreError: the store cannot be opened, misses files or has files of another size than its manifest
            lists, or violates the schema.
    """
    ds = open_dataset(path)
    files = manifest_problems(path, content=True)
    if files:
        return files
    problems = data_problems(ds)
    config = json.loads(ds.attrs["config"])
    # A GenerateConfig (see biophys.genconfig) plans simulations 0..n_sims−1, simulation k seeded with k.
    if isinstance(config, dict) and {"n_sims", "base_seed", "inputs"} <= set(config):
        problems += planned_sims_problems(ds, np.arange(int(config["n_sims"])))
    return problems
