"""Task planning of a ``generate`` run and the check, before anything is written, that the machine can hold it.

A run of ``n_sims`` simulations is cut into tasks of ``sims_per_task`` consecutive simulations, one shard store
each. :func:`plan_tasks` returns a lazy sequence (like :class:`range`), so a plan of 10¹² simulations costs no
memory; :func:`check_resources` refuses a run whose store the disk or whose workers the RAM cannot hold.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from biophys.genconfig import Execution, GenerateConfig
from conventions.machine import available_memory_bytes
from conventions.signals import DT_MS, HIRES_DT_MS


class GenerateError(RuntimeError):
    """A generate run cannot start or could not finish (the message says why and what to do)."""


@dataclass(frozen=True)
class Task:
    """Simulations ``start``..``stop − 1``, written to one shard store."""

    start: int
    stop: int

    @property
    def shard_name(self) -> str:
        return f"sims-{self.start:07d}-{self.stop:07d}.zarr"

    @property
    def sims(self) -> np.ndarray:
        return np.arange(self.start, self.stop, dtype=np.int64)


class TaskPlan(Sequence):
    """The tasks of a run, computed on access: ``len``, indexing, iteration and equality with any sequence."""

    def __init__(self, n_sims: int, sims_per_task: int):
        self.n_sims, self.sims_per_task = n_sims, sims_per_task

    def __len__(self) -> int:
        return -(-self.n_sims // self.sims_per_task)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"task {i} of a plan of {len(self)}")
        start = i * self.sims_per_task
        return Task(start, min(start + self.sims_per_task, self.n_sims))

    def __eq__(self, other) -> bool:
        return isinstance(other, Sequence) and len(self) == len(other) and all(a == b for a, b in zip(self, other))

    def __repr__(self) -> str:
        return f"TaskPlan(n_sims={self.n_sims}, sims_per_task={self.sims_per_task})"


def plan_tasks(n_sims: int, sims_per_task: int) -> TaskPlan:
    """Consecutive tasks of ``sims_per_task`` simulations (the last may be shorter) covering 0..n_sims−1."""
    return TaskPlan(n_sims, sims_per_task)


#: Input channels of each cell when the parent plans (it builds no cell): two per dendritic segment, 639 segments
#: in Hay et al.'s (2011) cell1.asc under the L5PC's nseg rule, 27 in the built-in ball-and-stick.
NOMINAL_SYNAPSES = {"l5pc": 1278, "ball-and-stick": 54}
#: The share of their raw size that input spikes and spike labels take on disk after compression (sparse
#: uint8/bool compress well); voltages are counted at their raw size.
SPARSE_ON_DISK = 0.25
#: Memory of a worker process before its first task: interpreter, NEURON, the built cell, libraries.
WORKER_BASE_BYTES = 400 * 2**20


def store_bytes(cfg: GenerateConfig, n_synapses: int) -> int:
    """Estimated bytes on disk of the consolidated store of ``cfg`` (compressed as described above)."""
    per_ms = SPARSE_ON_DISK * (n_synapses + 1) + 4 + 4
    if cfg.sim.record_dendrites:
        per_ms += 2 * (n_synapses // 2)
    return int(cfg.n_sims * cfg.duration_ms / DT_MS * per_ms)


def worker_bytes(cfg: GenerateConfig, n_synapses: int) -> int:
    """Estimated peak memory of one worker process simulating one task of ``cfg``.

    A task holds its simulations' inputs (uint8 per ms and synapse) and voltages until it writes its shard, and
    the dataset built from them (a second copy); one simulation at a time also needs its float64 input rates
    with the smoothing's temporaries (about 3 × 8 bytes per ms and synapse) and NEURON's float64 recordings (two
    per integration step, the 8 kHz somatic grid, the nexus and every recorded dendritic segment per ms).
    """
    n_time = cfg.duration_ms / DT_MS
    n_segments = n_synapses // 2
    held = n_synapses + 4 + 4 + (4 * n_segments if cfg.sim.record_dendrites else 0)
    steps_per_ms = 1 / cfg.sim.dt_ms if cfg.sim.method == "fixed" else 1 / HIRES_DT_MS
    recorded = 8 * (2 * steps_per_ms + 1 / HIRES_DT_MS + 1 + (n_segments if cfg.sim.record_dendrites else 0))
    per_sim = 3 * 8 * n_synapses + recorded
    return int(WORKER_BASE_BYTES + n_time * (2 * cfg.sims_per_task * held + per_sim))


def _existing_ancestor(path: Path) -> Path:
    path = path.resolve()
    while not path.exists():
        path = path.parent
    return path


def _gb(n: float) -> str:
    return f"{n / 1e9:.3g} GB"


def check_resources(cfg: GenerateConfig, execution: Execution, out: Path, shards: Path) -> None:
    """Refuse a run whose store the disk under ``out`` or whose workers this machine's memory cannot hold.

    The disk must hold the shards and the consolidated store at once (twice :func:`store_bytes`), less what the
    finished shards in ``shards`` already take; the memory must hold one task per worker (:func:`worker_bytes`,
    capped at the number of tasks; a dask scheduler's workers run elsewhere and are not counted).

    Raises:
        GenerateError: naming the estimate and what the machine has.
    """
    n_synapses = NOMINAL_SYNAPSES[cfg.cell.name]
    written = sum(p.stat().st_size for p in shards.rglob("*") if p.is_file()) if shards.exists() else 0
    need = 2 * store_bytes(cfg, n_synapses) - written
    where = _existing_ancestor(out.parent)
    free = shutil.disk_usage(where).free
    if need > free:
        raise GenerateError(
            f"{cfg.n_sims} simulations × {cfg.duration_ms} ms of {n_synapses} synapses need about {_gb(need)} of "
            f"disk (shards and the consolidated store), but {where} has {_gb(free)} free; generate fewer or "
            "shorter simulations, or choose an --out on a larger disk")
    if execution.scheduler is not None:
        return
    workers = min(execution.workers, math.ceil(cfg.n_sims / cfg.sims_per_task))
    per_worker = worker_bytes(cfg, n_synapses)
    memory = available_memory_bytes()
    if workers * per_worker > memory:
        raise GenerateError(
            f"{workers} worker(s) simulating {cfg.sims_per_task} × {cfg.duration_ms} ms of {n_synapses} synapses "
            f"per task need about {_gb(per_worker)} of memory each, {_gb(workers * per_worker)} in all, but this "
            f"machine allows {_gb(memory)}; use shorter simulations, fewer --sims-per-task or fewer --workers")
