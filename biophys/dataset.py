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
    versions, creation time).

Writers build an :class:`xarray.Dataset` with :func:`build_dataset` and write it with :func:`write_store`,
which writes to a temporary name beside the target and renames, so a store is either complete or absent.
:func:`concat_stores` merges shard stores into one store the same way, streaming them so that its memory does
not grow with their number. Readers use :class:`NeuronIOStore`.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Callable, Iterable, Sequence

import dask
import dask.array
import numpy as np
import pandas as pd
import xarray as xr
import zarr

from conventions.atomic import temporary_sibling
from conventions.signals import DT_MS, spike_bins

SCHEMA_VERSION = 1

#: Per-synapse metadata columns, name → dtype. Stored as coordinates ``synapse_<name>``.
SYNAPSE_COLUMNS: dict[str, str] = {
    "segment": "str",
    "section": "str",
    "x": "float64",
    "tree": "str",
    "distance_um": "float64",
    "length_um": "float64",
    "kind": "str",
    "sign": "int8",
    "pos_x_um": "float64",
    "pos_y_um": "float64",
    "pos_z_um": "float64",
}

REQUIRED_VARIABLES = ("input_spikes", "soma_voltage", "output_spikes", "output_spike_times", "seed")


class StoreError(ValueError):
    """A store is missing, incomplete, corrupt, or does not match what the caller expects."""


def _synapse_coords(synapses: pd.DataFrame) -> dict[str, tuple[str, np.ndarray]]:
    missing = [c for c in SYNAPSE_COLUMNS if c not in synapses.columns]
    if missing:
        raise StoreError(f"synapse table lacks columns {missing}; expected {list(SYNAPSE_COLUMNS)}")
    coords = {}
    for name, dtype in SYNAPSE_COLUMNS.items():
        values = synapses[name].to_numpy()
        values = values.astype(str).astype(object) if dtype == "str" else values.astype(dtype)
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
    attrs = {
        "schema_version": SCHEMA_VERSION,
        "dt_ms": DT_MS,
        "config": json.dumps(config, sort_keys=True),
        "provenance": json.dumps(provenance, sort_keys=True),
    }
    ds = xr.Dataset(data_vars, coords=coords, attrs=attrs)
    validate_dataset(ds)
    return ds


def _encoding(ds: xr.Dataset) -> dict:
    """Chunk so that a 500 ms training window touches at most two chunks of one simulation."""
    enc = {}
    n_time = ds.sizes["time"]
    t_chunk = min(n_time, 1000) or 1
    for name, var in ds.data_vars.items():
        if "time" in var.dims:
            enc[name] = {"chunks": tuple(1 if d == "sim" else t_chunk if d == "time" else ds.sizes[d] for d in var.dims)}
    return enc


def write_store(ds: xr.Dataset, path: str | Path, overwrite: bool = False) -> Path:
    """Write ``ds`` as a Zarr v3 store at ``path`` atomically (temporary sibling, then rename).

    Raises:
        StoreError: if ``path`` exists and ``overwrite`` is False, or ``ds`` violates the schema.
    """
    validate_dataset(ds)
    return _replace_store(Path(path), lambda tmp: ds.to_zarr(tmp, mode="w", zarr_format=3, consolidated=False,
                                                               encoding=_encoding(ds)), overwrite)


def _replace_store(path: Path, write: Callable[[Path], object], overwrite: bool) -> Path:
    """Call ``write(tmp)`` on a temporary sibling of ``path``, then rename it onto ``path``.

    Nothing appears at ``path`` until ``write`` has returned, and the temporary store never survives a failure
    (a full disk included), so ``path`` holds either the complete new store or whatever it held before.

    Raises:
        StoreError: if ``path`` exists and ``overwrite`` is False.
    """
    if path.exists() and not overwrite:
        raise StoreError(f"{path} already exists; choose another path or remove it first")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path)
    try:
        write(tmp)
        if path.exists():
            old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def validate_dataset(ds: xr.Dataset) -> None:
    """Check ``ds`` against the schema; raise :class:`StoreError` listing every problem found."""
    problems = []
    for name in REQUIRED_VARIABLES:
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
        expected = {
            "input_spikes": ("sim", "time", "synapse"),
            "soma_voltage": ("sim", "time"),
            "output_spikes": ("sim", "time"),
            "output_spike_times": ("sim", "spike"),
            "seed": ("sim",),
        }
        for name, dims in expected.items():
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
    """Open a store lazily and validate its schema.

    Raises:
        StoreError: missing path, not a Zarr store, or schema violations (message names the problem).
    """
    path = Path(path)
    if not path.exists():
        raise StoreError(f"no dataset store at {path}")
    if not (path / "zarr.json").exists():
        raise StoreError(f"{path} is not a Zarr v3 store (no zarr.json); was it written completely?")
    try:
        ds = xr.open_zarr(path, zarr_format=3, consolidated=False)
    except Exception as exc:  # zarr/xarray raise many types for corrupt metadata
        raise StoreError(f"cannot open {path} as a NeuronIO store: {exc}") from exc
    try:
        validate_dataset(ds)
    except StoreError as exc:
        raise StoreError(f"{path}: {exc}") from exc
    return ds


def concat_stores(paths: Iterable[str | Path], out: str | Path, overwrite: bool = False) -> Path:
    """Consolidate shard stores (same synapses, config, variables and time axis) into one store, ordered by sim index.

    Streams, so memory stays below about one shard whatever the number of shards: a first pass reads each shard's
    metadata and simulation indices only; the output is then created at its final shape (metadata and
    coordinates), each shard's time-resolved variables are copied into their ``sim`` rows chunk by chunk (memory:
    the chunks dask's threads hold in flight), and the per-simulation variables (``seed``,
    ``output_spike_times``) are gathered into blocks of one output chunk that are written once each (memory: the
    blocks still being filled). ``spike`` is NaN-padded to the most spikes of any shard. The store equals what
    :func:`write_store` makes of the concatenated dataset (variables, dtypes, chunks, attributes), with the
    shards' ``timing`` provenance summed. It appears at ``out`` only when complete: a failure (a full disk, say)
    leaves no partial store and the shards untouched.

    Raises:
        StoreError: no shards, ``out`` exists and ``overwrite`` is False, or the shards do not fit together.
    """
    paths = [Path(p) for p in paths]
    out = Path(out)
    if not paths:
        raise StoreError("no shards to consolidate")
    if out.exists() and not overwrite:
        raise StoreError(f"{out} already exists; choose another path or remove it first")
    # Pass 1 holds no shard open beyond its own step: only indices, spike counts and timings accumulate.
    first = open_dataset(paths[0])
    sims, timings, n_spike = [], [], 1
    for path in paths:
        ds = open_dataset(path)
        _check_fits(ds, first, path)
        sims.append(ds["sim"].values)
        n_spike = max(n_spike, ds.sizes["spike"])
        timings.append(json.loads(ds.attrs["provenance"]).get("timing"))
    order = np.sort(np.concatenate(sims))
    template = _template(first, order, n_spike)
    template.attrs["provenance"] = json.dumps(_merge_timing(json.loads(first.attrs["provenance"]), timings),
                                              sort_keys=True)
    validate_dataset(template)
    encoding = _encoding(template)
    per_sim = [name for name in template.data_vars if name not in encoding]
    encoding |= {name: {"chunks": _auto_chunks(template[name].shape, template[name].dtype)} for name in per_sim}
    time_resolved = [name for name in template.data_vars if name not in per_sim]
    chunks_along = {"time": encoding[time_resolved[0]]["chunks"][1], "sim": 1}

    def write(tmp: Path) -> None:
        template.to_zarr(tmp, mode="w", zarr_format=3, consolidated=False, encoding=encoding, compute=False)
        blocks = [_BlockWriter(tmp, template[name], encoding[name]["chunks"][0]) for name in per_sim]
        # Shards in order of their first simulation: a block then waits for at most the shards it straddles.
        for i in sorted(range(len(paths)), key=lambda i: sims[i].min(initial=np.iinfo(np.int64).max)):
            ds = open_dataset(paths[i])
            positions = np.searchsorted(order, ds["sim"].values)
            if not len(positions):
                continue
            _write_rows(ds[time_resolved].chunk(chunks_along), positions, tmp)
            for block in blocks:
                block.add(positions, ds[block.name].values)

    # The threaded scheduler bounds memory by its chunks in flight and keeps the copy in this process even when
    # a dask.distributed client is the default (its workers may not see the temporary store).
    with dask.config.set(scheduler="threads"):
        return _replace_store(out, write, overwrite)


def _check_fits(ds: xr.Dataset, first: xr.Dataset, path: Path) -> None:
    """Raise :class:`StoreError` unless shard ``ds`` (at ``path``) can be consolidated with shard ``first``."""
    if ds.attrs["config"] != first.attrs["config"]:
        raise StoreError(f"shard {path} was made with a different config; refusing to mix")
    if ds.sizes["time"] != first.sizes["time"] or ds.sizes["synapse"] != first.sizes["synapse"]:
        raise StoreError(f"shard {path} has time × synapse {ds.sizes['time']} × {ds.sizes['synapse']}, "
                         f"expected {first.sizes['time']} × {first.sizes['synapse']}")
    variables = {name: (v.dims, v.dtype) for name, v in ds.data_vars.items()}
    expected = {name: (v.dims, v.dtype) for name, v in first.data_vars.items()}
    if variables != expected:
        raise StoreError(f"shard {path} has variables {sorted(variables)} (dims, dtypes), expected those of the "
                         f"first shard {sorted(expected)}")


def _template(first: xr.Dataset, sims: np.ndarray, n_spike: int) -> xr.Dataset:
    """The consolidated dataset's shape, coordinates and attributes, with lazy (never computed) data variables.

    Args:
        first: one opened shard (coordinates other than ``sim``, variables and attributes are taken from it).
        sims: int64 [n_sim] sorted simulation indices of all shards.
        n_spike: the most output spikes of any shard.
    """
    sizes = {**first.sizes, "sim": len(sims), "spike": n_spike}
    coords = {name: (c.dims, c.values, c.attrs) for name, c in first.coords.items() if "sim" not in c.dims}
    coords["sim"] = ("sim", sims)
    data_vars = {name: (v.dims, dask.array.empty(tuple(sizes[d] for d in v.dims), dtype=v.dtype, chunks=-1), v.attrs)
                 for name, v in first.data_vars.items()}
    return xr.Dataset(data_vars, coords=coords, attrs=dict(first.attrs))


def _auto_chunks(shape: tuple[int, ...], dtype: np.dtype) -> tuple[int, ...]:
    """The chunks zarr picks itself for ``shape`` and ``dtype``, as :func:`write_store` gets for variables that
    :func:`_encoding` leaves alone (asked of an in-memory array, which holds metadata only)."""
    return zarr.create_array(zarr.storage.MemoryStore(), shape=shape, dtype=dtype).chunks


def _write_rows(ds: xr.Dataset, positions: np.ndarray, store: Path) -> None:
    """Write the variables ``ds`` into rows ``positions`` (one per simulation of ``ds``) of ``store``'s ``sim``
    axis, one region per run of rows that land on consecutive output rows: a shard in sim order is one run,
    read by slicing, which keeps its chunks (sorting by fancy indexing would merge a shard into one dask chunk)."""
    ds = ds.drop_vars(list(ds.coords))
    for run in np.split(np.arange(len(positions)), np.flatnonzero(np.diff(positions) != 1) + 1):
        region = {"sim": slice(int(positions[run[0]]), int(positions[run[-1]]) + 1)}
        ds.isel(sim=slice(int(run[0]), int(run[-1]) + 1)).to_zarr(store, region=region, zarr_format=3,
                                                                  consolidated=False)


class _BlockWriter:
    """Writes one per-simulation variable in blocks of ``block`` simulations (its chunk along ``sim``).

    A block is written once, when all its simulations have arrived, so no chunk is read back and rewritten, and
    only blocks still being filled are held in memory. Rows are NaN-padded (zero for non-float variables) where a
    shard's trailing dimensions (``spike``) are shorter than the output's.
    """

    def __init__(self, store: Path, var: xr.DataArray, block: int):
        self.store, self.name, self.dims, self.shape, self.dtype = store, var.name, var.dims, var.shape, var.dtype
        self.block = block
        self.fill = np.nan if var.dtype.kind == "f" else 0
        self.pending: dict[int, tuple[np.ndarray, int]] = {}

    def add(self, positions: np.ndarray, values: np.ndarray) -> None:
        """Take the rows ``values`` [len(positions), ...] of output rows ``positions``; write completed blocks."""
        for b in np.unique(positions // self.block):
            start, stop = b * self.block, min((b + 1) * self.block, self.shape[0])
            if b in self.pending:
                rows, filled = self.pending.pop(b)
            else:
                rows, filled = np.full((stop - start, *self.shape[1:]), self.fill, dtype=self.dtype), 0
            mine = (positions >= start) & (positions < stop)
            rows[(positions[mine] - start, *(slice(0, n) for n in values.shape[1:]))] = values[mine]
            filled += int(mine.sum())
            if filled < stop - start:
                self.pending[b] = (rows, filled)
            else:
                xr.Dataset({self.name: (self.dims, rows)}).to_zarr(
                    self.store, region={"sim": slice(int(start), int(stop))}, zarr_format=3, consolidated=False)


def _merge_timing(first: dict, timings: list) -> dict:
    """``first`` (the first shard's provenance) with the shards' ``timing`` seconds summed (CPU-seconds of all shards).

    Args:
        first: the first shard's provenance.
        timings: every shard's ``timing`` dict of seconds, None where a shard has none (then nothing is summed and
            ``first``'s timing is kept as it is).
    """
    merged = dict(first)
    if all(isinstance(t, dict) for t in timings):
        merged["timing"] = {key: float(sum(t.get(key, 0.0) for t in timings)) for key in timings[0]}
    return merged


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
        """Pull every variable into memory (returns self)."""
        self.ds = self.ds.load()
        return self

    def input_spikes(self, sim: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        """uint8 [T, n_synapse] spikes of simulation position ``sim`` (0-based position, not id)."""
        return self.ds["input_spikes"].isel(sim=sim, time=slice(start, stop)).values

    def read_input_spikes(self, sim: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        """uint8 [T, n_synapse]: what :meth:`input_spikes` returns, read from the Zarr array without dask.

        For many small reads (training windows read on demand): dask builds a task graph per call, which costs
        more than the read itself (5 ms against 2 ms for a 500 ms window of 1278 synapses). Safe to call from a
        background thread.
        """
        try:
            array = self._input_spikes_array
        except AttributeError:
            array = self._input_spikes_array = zarr.open_group(self.path, mode="r")["input_spikes"]
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
