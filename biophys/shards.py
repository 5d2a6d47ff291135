"""Shard stores of a ``generate`` run: where they live, the resume check, and their streaming consolidation.

Each task's simulations become one shard store ``<out>.shards/sims-<start>-<stop>.zarr``, written atomically
with its manifest (:mod:`biophys.storefiles`) by the worker that simulated it; ``<out>.shards/config.json``
records the config the shards were made with. When every shard exists they are consolidated into ``<out>``
(:func:`concat_stores`).

Resume (:func:`shard_problems`): a shard is kept when its manifest lists every file at its size and checksum
(every byte read, nothing decoded), it opens, carries the run's config, spans ``duration_ms`` bins and holds
exactly its planned simulations; otherwise it is redone. A shard without a manifest (made before manifests
were kept) is decoded in full instead, as ``python -m biophys inspect`` does. A shard directory or store made
with a different config is refused.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Iterable

import dask
import dask.array
import numpy as np
import xarray as xr
import zarr

from biophys.dataset import StoreError, chunk_encoding, open_dataset, validate_dataset
from biophys.inspect_store import data_problems, planned_sims_problems
from biophys.planning import GenerateError, Task
from biophys.storefiles import describe, fixed_width_strings, manifest_problems, replace_store
from conventions.atomic import write_text_atomic

CONFIG_FILE = "config.json"


def shard_dir(out: str | Path) -> Path:
    """``<out>.shards``: where the shards of the store ``out`` are written."""
    out = Path(out)
    return out.with_name(out.name + ".shards")


def shard_problems(path: Path, task: Task, config: dict) -> list[str]:
    """Why the shard at ``path`` cannot be kept for ``task`` of a run with ``config`` (empty: keep it)."""
    files = manifest_problems(path, content=True)
    if files:
        return [f"{len(files)} file(s) changed since the shard was written: {describe(files)}"]
    try:
        ds = open_dataset(path)
    except StoreError as exc:
        return [str(exc)]
    if json.loads(ds.attrs["config"]) != config:
        return ["made with a different config"]
    if ds.sizes["time"] != config["duration_ms"]:
        return [f"{ds.sizes['time']} time bins, expected {config['duration_ms']}"]
    problems = planned_sims_problems(ds, task.sims)
    if problems:
        return problems
    return data_problems(ds) if files is None else []


def config_differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested config dicts."""
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += config_differences(va, vb, f"{prefix}{key}.")
        elif va != vb:
            out.append(f"{prefix}{key}: {va!r} (existing) vs {vb!r} (requested)")
    return out


def refuse_mismatch(what: Path, where: str, existing: dict, requested: dict, out: Path) -> None:
    """Raise :class:`GenerateError` naming the keys in which ``existing`` (recorded in ``where``) differs."""
    diffs = config_differences(existing, requested)
    shown = "; ".join(diffs[:6]) + ("; …" if len(diffs) > 6 else "")
    raise GenerateError(
        f"{what} was made with a different config ({shown}). To resume it, re-run with the config it was made "
        f"with (saved in {where}); to start fresh, remove {what} or choose another --out than {out}.")


def prepare_shards(config: dict, out: Path) -> Path:
    """Create ``<out>.shards`` with its config.json, or check that an existing one holds ``config``."""
    shards = shard_dir(out)
    record = shards / CONFIG_FILE
    if record.exists():
        try:
            existing = json.loads(record.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise GenerateError(f"cannot read {record} ({exc}); remove {shards} to start fresh") from exc
        if existing != config:
            refuse_mismatch(shards, str(record), existing, config, out)
        return shards
    if shards.exists() and any(p.name.startswith("sims-") for p in shards.iterdir()):
        raise GenerateError(f"{shards} holds shards but no {CONFIG_FILE}, so their config is unknown; "
                            f"remove {shards} to start fresh")
    shards.mkdir(parents=True, exist_ok=True)
    write_text_atomic(record, json.dumps(config, indent=2, sort_keys=True) + "\n")
    return shards


def remove_stale_temporaries(shards: Path) -> None:
    """Delete half-written shards left by a killed run (``.<name>.tmp-*`` / ``.old-*``)."""
    for p in shards.iterdir():
        if p.name.startswith(".sims-") and (".tmp-" in p.name or ".old-" in p.name):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)


def remove_stale_consolidation(out: Path) -> None:
    """Delete the temporary store a consolidation killed mid-write left beside ``out`` (``.<out>.tmp-*``): it can
    be as large as the dataset, and a consolidation is about to write a new one."""
    for p in out.parent.iterdir():
        if p.name.startswith(f".{out.name}.tmp-"):
            shutil.rmtree(p, ignore_errors=True)


def concat_stores(paths: Iterable[str | Path], out: str | Path, overwrite: bool = False) -> Path:
    """Consolidate shard stores (same synapses, config, variables and time axis) into one store, ordered by sim index.

    Streams, so memory stays below about one shard whatever the number of shards: a first pass reads each shard's
    metadata and simulation indices only; the output is then created at its final shape (metadata and
    coordinates), each shard's time-resolved variables are copied into their ``sim`` rows chunk by chunk (memory:
    the chunks dask's threads hold in flight), and the per-simulation variables (``seed``,
    ``output_spike_times``) are gathered into blocks of one output chunk that are written once each (memory: the
    blocks still being filled). ``spike`` is NaN-padded to the most spikes of any shard. The store equals what
    :func:`biophys.dataset.write_store` makes of the concatenated dataset (variables, dtypes, chunks, attributes,
    manifest), with the shards' ``timing`` provenance summed. It appears at ``out`` only when complete: a failure
    (a full disk, say) leaves no partial store and the shards untouched.

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
    template = fixed_width_strings(_template(first, order, n_spike))
    template.attrs["provenance"] = json.dumps(_merge_timing(json.loads(first.attrs["provenance"]), timings),
                                              sort_keys=True)
    validate_dataset(template)
    encoding = chunk_encoding(template)
    per_sim = [name for name in template.data_vars if name not in encoding]
    encoding |= {name: {"chunks": _auto_chunks(template[name].shape, template[name].dtype)} for name in per_sim}
    time_resolved = [name for name in template.data_vars if name not in per_sim]
    chunks_along = {"time": encoding[time_resolved[0]]["chunks"][1], "sim": 1}

    def write(tmp: Path) -> None:
        template.to_zarr(tmp, mode="w", zarr_format=3, consolidated=True, encoding=encoding, compute=False)
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
        return replace_store(out, write)


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
    """The chunks zarr picks itself for ``shape`` and ``dtype``, as ``write_store`` gets for variables that
    :func:`biophys.dataset.chunk_encoding` leaves alone (asked of an in-memory array, which holds metadata only)."""
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


