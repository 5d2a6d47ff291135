"""The NeuronIO store: the one place that knows how simulated input/output data are laid out on disk.

Schema (version 1). One Zarr v3 store per split (train / valid / test), written through xarray.

Dimensions
    ``sim``       simulations (one seeded random-input run each)
    ``time``      1 ms bins; bin ``k`` covers ``[k, k+1)`` ms
    ``synapse``   input channels: all excitatory synapses, then all inhibitory ones in the same segment order
    ``spike``     padding dimension of the exact output spike times (length = most spikes in any simulation, ≥ 1)
    ``segment``   dendritic segments (only with the optional dendritic voltages)

Data variables
    ``input_spikes``        uint8   (sim, time, synapse)  presynaptic spikes per bin (delivered at t = k ms)
    ``soma_voltage``        float32 (sim, time)           somatic voltage in mV sampled at t = k ms
    ``nexus_voltage``       float32 (sim, time)           apical nexus voltage in mV (optional)
    ``output_spikes``       bool    (sim, time)           True in the bin holding an output spike: int(t − 0.5)
    ``output_spike_times``  float64 (sim, spike)          exact output spike times in ms, NaN-padded
    ``dendritic_voltage``   float16 (sim, time, segment)  voltages of the dendritic segments in mV (optional)
    ``seed``                int64   (sim,)                the simulation's seed: its input was drawn from
                                                           ``numpy.random.SeedSequence((base_seed, seed))``

Coordinates
    ``sim`` (int64 index), ``time`` (float64, ms), ``synapse`` (int64 index) and per-synapse
    ``synapse_<column>`` for every column of :data:`SYNAPSE_COLUMNS` (segment and section names, x, tree
    basal/apical, path distance from the soma in µm, segment length in µm, kind exc/inh, sign ±1,
    3-D position of the segment centre in µm).

Attributes
    ``schema_version`` (int), ``dt_ms`` (the bin width, 1.0), ``config`` (JSON: the generator config that
    made the data), ``provenance`` (JSON: cell and mechanism provenance, NEURON version, git commit, library
    versions, creation time); stores made by ``generate`` also ``morphology`` (the explicit morphology: "cell1",
    "synthetic" or an absolute path) and ``morphology_sha256`` (the file's sha256, absent for "synthetic").

On disk: string coordinates are fixed-width unicode (``<U``), so ``xr.open_zarr(path)`` gives NumPy strings;
the root ``zarr.json`` holds consolidated metadata; ``manifest.json`` lists every file with its size and checksum
(:mod:`biophys.storefiles`; stores written before it have none and still open).

Writers build an :class:`xarray.Dataset` with :func:`build_dataset` and write it with :func:`write_store`,
which writes to a temporary name beside the target and renames, so a store is either complete or absent
(:func:`biophys.storefiles.replace_store`, which :func:`biophys.shards.concat_stores` uses too). Readers use
:class:`NeuronIOStore` or :func:`open_dataset`, which refuse a store whose files are missing or changed in size.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import xarray as xr
import zarr

from biophys.storefiles import (MANIFEST, describe, fixed_width_strings, manifest_problems, replace_store,
                                undecodable_as, verified_store)
from conventions.signals import DT_MS, spike_bins

SCHEMA_VERSION = 1

#: Per-synapse metadata columns, name → dtype. Stored as coordinates ``synapse_<name>``.
SYNAPSE_COLUMNS: dict[str, str] = {
    "segment": "str", "section": "str", "x": "float64", "tree": "str", "distance_um": "float64",
    "length_um": "float64", "kind": "str", "sign": "int8", "pos_x_um": "float64", "pos_y_um": "float64",
    "pos_z_um": "float64",
}
#: The variables every store has, with their dimensions.
REQUIRED_DIMS = {"input_spikes": ("sim", "time", "synapse"), "soma_voltage": ("sim", "time"),
                 "output_spikes": ("sim", "time"), "output_spike_times": ("sim", "spike"), "seed": ("sim",)}


class StoreError(ValueError):
    """A store is missing, incomplete, corrupt, or does not match what the caller expects."""


def _synapse_coords(synapses: pd.DataFrame) -> dict[str, tuple[str, np.ndarray]]:
    missing = [c for c in SYNAPSE_COLUMNS if c not in synapses.columns]
    if missing:
        raise StoreError(f"synapse table lacks columns {missing}; expected {list(SYNAPSE_COLUMNS)}")
    coords = {}
    for name, dtype in SYNAPSE_COLUMNS.items():
        values = synapses[name].to_numpy()
        values = values.astype(str) if dtype == "str" else values.astype(dtype)
        coords[f"synapse_{name}"] = ("synapse", values)
    return coords


def build_dataset(
    input_spikes: np.ndarray,
    soma_voltage: np.ndarray,
    spike_times: Sequence[np.ndarray],
    seeds: Sequence[int],
    synapses: pd.DataFrame,
    config: dict,
    provenance: dict,
    nexus_voltage: np.ndarray | None = None,
    dendritic_voltage: np.ndarray | None = None,
    sim_index: Sequence[int] | None = None,
) -> xr.Dataset:
    """Assemble simulations into a schema-conforming dataset (validated before it is returned).

    Args:
        input_spikes: uint8/bool [n_sim, T, n_synapse] spikes per 1 ms bin.
        soma_voltage: float [n_sim, T] somatic voltage in mV at t = 0..T−1 ms.
        spike_times: n_sim arrays of output spike times in ms.
        seeds: n_sim per-simulation seeds (see module docstring).
        synapses: table with :data:`SYNAPSE_COLUMNS`, one row per synapse in input order.
        config: the generator config (JSON-serialisable dict).
        provenance: cell/mechanism/library provenance (JSON-serialisable dict).
        nexus_voltage: optional float [n_sim, T] in mV.
        dendritic_voltage: optional float [n_sim, T, n_segment] in mV (stored as float16).
        sim_index: optional global simulation indices (default 0..n_sim−1).
    """
    input_spikes = np.asarray(input_spikes)
    soma_voltage = np.asarray(soma_voltage)
    if input_spikes.ndim != 3:
        raise StoreError(f"input_spikes must be [sim, time, synapse], got shape {input_spikes.shape}")
    n_sim, n_time, n_syn = input_spikes.shape
    if soma_voltage.shape != (n_sim, n_time):
        raise StoreError(f"soma_voltage shape {soma_voltage.shape} != (sim, time) = {(n_sim, n_time)}")
    if len(spike_times) != n_sim or len(seeds) != n_sim:
        raise StoreError(f"need {n_sim} spike-time arrays and seeds, got {len(spike_times)} and {len(seeds)}")
    if len(synapses) != n_syn:
        raise StoreError(f"synapse table has {len(synapses)} rows but input_spikes has {n_syn} synapses")
    if input_spikes.size and (input_spikes.min() < 0 or input_spikes.max() > 255):
        raise StoreError("input_spikes must be counts in 0..255")

    n_spike = max([1] + [len(s) for s in spike_times])
    times = np.full((n_sim, n_spike), np.nan)
    labels = np.zeros((n_sim, n_time), dtype=bool)
    for i, s in enumerate(spike_times):
        s = np.sort(np.asarray(s, dtype=np.float64))
        times[i, : len(s)] = s
        labels[i] = spike_bins(s, n_time)

    data_vars = {
        "input_spikes": (("sim", "time", "synapse"), input_spikes.astype(np.uint8)),
        "soma_voltage": (("sim", "time"), soma_voltage.astype(np.float32)),
        "output_spikes": (("sim", "time"), labels),
        "output_spike_times": (("sim", "spike"), times),
        "seed": (("sim",), np.asarray(seeds, dtype=np.int64)),
    }
    if nexus_voltage is not None:
        data_vars["nexus_voltage"] = (("sim", "time"), np.asarray(nexus_voltage, dtype=np.float32))
    if dendritic_voltage is not None:
        dendritic_voltage = np.asarray(dendritic_voltage, dtype=np.float16)
        if dendritic_voltage.shape[:2] != (n_sim, n_time):
            raise StoreError(f"dendritic_voltage shape {dendritic_voltage.shape} does not start with {(n_sim, n_time)}")
        data_vars["dendritic_voltage"] = (("sim", "time", "segment"), dendritic_voltage)

    coords = {
        "sim": np.arange(n_sim, dtype=np.int64) if sim_index is None else np.asarray(sim_index, dtype=np.int64),
        "time": np.arange(n_time, dtype=np.float64) * DT_MS,
        "synapse": np.arange(n_syn, dtype=np.int64),
        **_synapse_coords(synapses),
    }
    attrs = {"schema_version": SCHEMA_VERSION, "dt_ms": DT_MS, "config": json.dumps(config, sort_keys=True),
             "provenance": json.dumps(provenance, sort_keys=True)}
    ds = xr.Dataset(data_vars, coords=coords, attrs=attrs)
    validate_dataset(ds)
    return ds


def chunk_encoding(ds: xr.Dataset) -> dict:
    """Chunk so that a 500 ms training window touches at most two chunks of one simulation."""
    enc = {}
    n_time = ds.sizes["time"]
    t_chunk = min(n_time, 1000) or 1
    for name, var in ds.data_vars.items():
        if "time" in var.dims:
            enc[name] = {"chunks": tuple(1 if d == "sim" else t_chunk if d == "time" else ds.sizes[d] for d in var.dims)}
    return enc


def write_store(ds: xr.Dataset, path: str | Path, overwrite: bool = False) -> Path:
    """Write ``ds`` as a Zarr v3 store at ``path`` atomically, with its manifest (see :func:`biophys.storefiles.replace_store`).

    Raises:
        StoreError: if ``path`` exists and ``overwrite`` is False, or ``ds`` violates the schema.
    """
    validate_dataset(ds)
    path = Path(path)
    if path.exists() and not overwrite:
        raise StoreError(f"{path} already exists; choose another path or remove it first")
    ds = fixed_width_strings(ds)
    return replace_store(path, lambda tmp: ds.to_zarr(tmp, mode="w", zarr_format=3, consolidated=True,
                                                      encoding=chunk_encoding(ds)))


def validate_dataset(ds: xr.Dataset) -> None:
    """Check ``ds`` against the schema; raise :class:`StoreError` listing every problem found."""
    problems = []
    for name in REQUIRED_DIMS:
        if name not in ds.data_vars:
            problems.append(f"missing variable {name!r}")
    for col in SYNAPSE_COLUMNS:
        if f"synapse_{col}" not in ds.coords:
            problems.append(f"missing coordinate 'synapse_{col}'")
    for key in ("schema_version", "dt_ms", "config", "provenance"):
        if key not in ds.attrs:
            problems.append(f"missing attribute {key!r}")
    if not problems:
        if ds.attrs["schema_version"] != SCHEMA_VERSION:
            problems.append(f"schema_version {ds.attrs['schema_version']} != supported {SCHEMA_VERSION}")
        for name, dims in REQUIRED_DIMS.items():
            if ds[name].dims != dims:
                problems.append(f"{name} has dims {ds[name].dims}, expected {dims}")
        if ds["input_spikes"].dtype != np.uint8:
            problems.append(f"input_spikes dtype {ds['input_spikes'].dtype} != uint8")
        signs = ds["synapse_sign"].values
        if not np.all(np.isin(signs, (-1, 1))):
            problems.append("synapse_sign must be +1 or -1")
        if len(np.unique(ds["sim"].values)) != ds.sizes["sim"]:
            problems.append("duplicate simulation indices")
    if problems:
        raise StoreError("invalid NeuronIO dataset: " + "; ".join(problems))


def open_dataset(path: str | Path) -> xr.Dataset:
    """Open a store lazily and validate its schema; files missing from or changed in size since its manifest
    (when it has one) are refused before any is read, a file changed in content when it is read.

    Raises:
        StoreError: missing path, not a Zarr store, damaged files, or schema violations (message names the
            problem).
    """
    path = Path(path)
    if not path.exists():
        raise StoreError(f"no dataset store at {path}")
    if not (path / "zarr.json").exists():
        raise StoreError(f"{path} is not a Zarr v3 store (no zarr.json); was it written completely?")
    damaged = manifest_problems(path)
    if damaged:
        raise StoreError(f"cannot open {path}: it is damaged ({describe(damaged)}, by its {MANIFEST}); "
                         "regenerate or restore it")
    try:
        root = json.loads((path / "zarr.json").read_text())
        consolidated = isinstance(root, dict) and root.get("consolidated_metadata") is not None
        ds = xr.open_zarr(verified_store(path, StoreError), zarr_format=3, consolidated=consolidated)
    except Exception as exc:  # zarr/xarray raise many types for corrupt metadata
        raise StoreError(f"cannot open {path} as a NeuronIO store: {exc}") from exc
    try:
        validate_dataset(ds)
    except StoreError as exc:
        raise StoreError(f"{path}: {exc}") from exc
    return ds


class NeuronIOStore:
    """Read access to one store for the surrogate and analysis packages.

    Arrays come back as NumPy; the first access of ``load()`` pulls the whole store into memory, which is the
    fast path for the dataset sizes trained on one machine.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.ds = open_dataset(self.path)

    @property
    def n_sims(self) -> int:
        return self.ds.sizes["sim"]

    @property
    def n_time(self) -> int:
        return self.ds.sizes["time"]

    @property
    def n_synapses(self) -> int:
        return self.ds.sizes["synapse"]

    @property
    def sim_ids(self) -> np.ndarray:
        return self.ds["sim"].values

    @property
    def config(self) -> dict:
        return json.loads(self.ds.attrs["config"])

    @property
    def provenance(self) -> dict:
        return json.loads(self.ds.attrs["provenance"])

    @property
    def signs(self) -> np.ndarray:
        """int8 [n_synapse]: +1 excitatory, −1 inhibitory."""
        return self.ds["synapse_sign"].values.astype(np.int8)

    def synapses(self) -> pd.DataFrame:
        """Per-synapse metadata, one row per input channel, columns :data:`SYNAPSE_COLUMNS`."""
        return pd.DataFrame({c: self.ds[f"synapse_{c}"].values for c in SYNAPSE_COLUMNS})

    def load(self) -> "NeuronIOStore":
        """Pull every variable into memory (returns self); a chunk that cannot be decoded is a StoreError."""
        with undecodable_as(StoreError, self.path):
            self.ds = self.ds.load()
        return self

    def input_spikes(self, sim: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        """uint8 [T, n_synapse] spikes of simulation position ``sim`` (0-based position, not id)."""
        return self.ds["input_spikes"].isel(sim=sim, time=slice(start, stop)).values

    def read_input_spikes(self, sim: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        """uint8 [T, n_synapse]: what :meth:`input_spikes` returns, read from the Zarr array without dask.

        For many small reads (training windows read on demand): dask builds a task graph per call, which costs
        more than such a read itself. Safe to call from a background thread.
        """
        try:
            array = self._input_spikes_array
        except AttributeError:
            group = zarr.open_group(verified_store(self.path, StoreError), mode="r")
            array = self._input_spikes_array = group["input_spikes"]
        return array[sim, start:stop]

    def soma_voltage(self, sim: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        """float32 [T] somatic voltage in mV."""
        return self.ds["soma_voltage"].isel(sim=sim, time=slice(start, stop)).values

    def output_spikes(self, sim: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        """bool [T] output spike labels."""
        return self.ds["output_spikes"].isel(sim=sim, time=slice(start, stop)).values

    def spike_times(self, sim: int) -> np.ndarray:
        """float64 [n] exact output spike times in ms of simulation position ``sim``."""
        t = self.ds["output_spike_times"].isel(sim=sim).values
        return t[np.isfinite(t)]

    def summary(self) -> str:
        """A human-readable description: sizes, output statistics, config and provenance highlights."""
        ds = self.ds
        n_spikes = int(np.isfinite(ds["output_spike_times"].values).sum())
        seconds = self.n_sims * self.n_time * DT_MS / 1000.0
        in_rate = float(ds["input_spikes"].mean().values) * 1000.0 / DT_MS
        soma = ds["soma_voltage"].values
        silent = int((np.isfinite(ds["output_spike_times"].values).sum(axis=1) == 0).sum())
        prov = self.provenance
        lines = [
            f"NeuronIO store {self.path} (schema v{ds.attrs['schema_version']})",
            f"  simulations: {self.n_sims} × {self.n_time} ms = {seconds:.1f} simulated s; synapses: {self.n_synapses} "
            f"({int((self.signs > 0).sum())} exc, {int((self.signs < 0).sum())} inh)",
            f"  input rate: {in_rate:.2f} Hz per synapse; output: {n_spikes} spikes, "
            f"{n_spikes / max(seconds, 1e-9):.2f} Hz; silent simulations: {silent}/{self.n_sims}",
            f"  soma voltage: mean {soma.mean():.2f} mV, min {soma.min():.2f}, max {soma.max():.2f}",
            f"  variables: {', '.join(sorted(ds.data_vars))}",
            f"  cell: {prov.get('cell', {}).get('name', 'unknown') if isinstance(prov.get('cell'), dict) else prov.get('cell', 'unknown')}"
            f"; git commit {prov.get('git_commit', 'unknown')}; created {prov.get('created_utc', 'unknown')}",
        ]
        return "\n".join(lines)
