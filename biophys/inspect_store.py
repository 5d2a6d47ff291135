"""Integrity checks of NeuronIO stores and the ``inspect`` command.

:func:`store_problems` goes beyond the schema check of :func:`biophys.dataset.open_dataset`: it decodes every
chunk of every variable (a truncated or garbled chunk file fails here, not in the middle of training), checks
that the spike labels agree with the exact spike times, and, for stores made by :mod:`biophys.generate`,
that every planned simulation is present with the seed of its index.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import xarray as xr

from biophys.dataset import NeuronIOStore, StoreError, open_dataset
from conventions.signals import spike_bins


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
            problems.append(f"simulation {sim_id}: data cannot be read ({type(exc).__name__}: {exc})")
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

    Raises:
        StoreError: the store cannot be opened or violates the schema.
    """
    ds = open_dataset(path)
    problems = data_problems(ds)
    config = json.loads(ds.attrs["config"])
    # A GenerateConfig (see biophys.generate) plans simulations 0..n_sims−1, simulation k seeded with k.
    if isinstance(config, dict) and {"n_sims", "base_seed", "inputs"} <= set(config):
        problems += planned_sims_problems(ds, np.arange(int(config["n_sims"])))
    return problems


def register_cli(subparsers) -> None:
    """Add ``inspect STORE`` to an argparse subparsers object."""
    p = subparsers.add_parser("inspect", help="summarise a NeuronIO store and check its integrity",
                              description="Print a store's summary, then decode every chunk and check labels, "
                              "seeds and completeness. Exit 0 if intact, 1 if problems were found, 2 if the "
                              "store cannot be opened.")
    p.add_argument("store", help="path of the Zarr store")
    p.set_defaults(func=_inspect_command)


def _inspect_command(args: argparse.Namespace) -> int:
    try:
        print(NeuronIOStore(args.store).summary())
        problems = store_problems(args.store)
    except StoreError as exc:
        print(f"inspect: {exc}", file=sys.stderr)
        return 2
    if problems:
        print(f"integrity: {len(problems)} problem(s)", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    print("integrity: OK (every chunk decoded; labels, seeds and simulations consistent)")
    return 0
