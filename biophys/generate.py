"""Generate NeuronIO datasets: plan simulations into tasks, run them in parallel, resume, consolidate.

A run of ``n_sims`` simulations is cut into tasks of ``sims_per_task`` consecutive simulations. Each task
becomes one shard store ``<out>.shards/sims-<start>-<stop>.zarr``, written atomically by the worker that
simulated it; ``<out>.shards/config.json`` records the config the shards were made with. When every shard
exists, they are consolidated into ``<out>`` and (unless kept) removed.

Resume: running the same command again keeps every shard that opens, holds exactly its planned simulations and
still has every file with the size it was written with (``<out>.shards/manifests/<shard>.json``, recorded when the
shard was finished; no data are decoded), redoes the others, and refuses a shard directory or store made with a
different config. The shards stay the source of truth until the consolidated store exists: a failure, a full
disk included, leaves the finished shards in place for the next run.

Determinism: simulation ``k`` draws its input from ``numpy.random.SeedSequence((base_seed, k))`` and the
simulator is deterministic, so the data do not depend on the worker count, the task order or the backend.

Backends: ``local`` runs a :class:`concurrent.futures.ProcessPoolExecutor` with the ``spawn`` context;
``dask`` submits the tasks to a ``dask.distributed`` scheduler (a :class:`~dask.distributed.LocalCluster` of
single-threaded worker processes when no address is given; the shard directory must then be on a file system
that every worker sees). Every worker process builds one simulator from plain config dicts and reuses it for all
its tasks; NEURON objects never leave the process.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import importlib
import json
import os
import shutil
import sys
import threading
import time
import tomllib
import uuid
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from biophys import dataset
from conventions.atomic import write_text_atomic
from conventions.configkeys import field_names, refuse_unknown_keys
from biophys.inputs import InputConfig, draw_inputs, n_bins
from biophys.inspect_store import data_problems, planned_sims_problems
from conventions.provenance import provenance
from biophys.config import CellConfig, SimConfig

#: The simulator class a worker builds, as "module:attribute"; it takes (CellConfig, SimConfig).
DEFAULT_SIMULATOR = "biophys.simulator:CellSimulator"
BACKENDS = ("local", "dask")
_PROGRESS_TOPIC = "neuroncompute-generate-progress"
_CONFIG_FILE = "config.json"
_MANIFESTS = "manifests"
#: Integration settings of generated datasets where the config gives none. benchmarks/sim_speed.py on cell1.asc
#: under NeuronIO input (12 seeds × 1.5 s): Crank–Nicolson at dt = 1/12 ms is the fastest setting within 0.5 mV
#: somatic RMSE, ≥ 95 % of the dt 0.025 ms backward-Euler baseline's spikes matched (±2 ms) and ≤ 5 % spurious
#: ones: 0.076 mV, 17/17 spikes, none spurious, 3.3× faster; against the original model's traces 0.070 mV,
#: 2/2 spikes. dt 0.1 ms (CN) misses 2 of 17 and adds 2; dt 0.0625 ms backward Euler misses 2 of 17.
#: The simulator's own default stays the reference dt 0.025 ms backward Euler.
DATASET_SIM_DEFAULTS = {"dt_ms": 1 / 12, "secondorder": 2}


class GenerateError(RuntimeError):
    """A generate run cannot start or could not finish (the message says why and what to do)."""


# --- configuration -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GenerateConfig:
    """What to simulate. Field names are the keys of the config file and of the ``config`` stored with the data.

    Attributes:
        cell: which cell (see :class:`biophys.config.CellConfig`).
        sim: how to integrate and what to record (see :class:`biophys.config.SimConfig`, incl.
            ``record_dendrites``).
        inputs: the input protocol (see :class:`biophys.inputs.InputConfig`).
        duration_ms: length of every simulation in ms (whole ms).
        n_sims: number of simulations; they are indexed 0..n_sims−1.
        base_seed: simulation k draws its input from ``SeedSequence((base_seed, k))``.
        sims_per_task: consecutive simulations per task (one shard store each).
    """

    cell: CellConfig = field(default_factory=CellConfig)
    sim: SimConfig = field(default_factory=lambda: SimConfig(**DATASET_SIM_DEFAULTS))
    inputs: InputConfig = field(default_factory=InputConfig)
    duration_ms: int = 6000
    n_sims: int = 128
    base_seed: int = 0
    sims_per_task: int = 4

    def __post_init__(self):
        n_bins(self.duration_ms)
        object.__setattr__(self, "duration_ms", int(self.duration_ms))
        for name, minimum in (("n_sims", 1), ("base_seed", 0), ("sims_per_task", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) \
                    or value < minimum:
                raise ValueError(f"{name} must be a whole number ≥ {minimum}, got {value!r}")
            object.__setattr__(self, name, int(value))

    def to_dict(self) -> dict:
        """JSON-ready dict with the field names as keys (sections for cell, sim and inputs)."""
        return {
            "cell": dataclasses.asdict(self.cell),
            "sim": dataclasses.asdict(self.sim),
            "inputs": self.inputs.to_dict(),
            "duration_ms": self.duration_ms,
            "n_sims": self.n_sims,
            "base_seed": self.base_seed,
            "sims_per_task": self.sims_per_task,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "GenerateConfig":
        """Build from a dict of the :meth:`to_dict` layout; missing keys take defaults.

        Raises:
            ValueError: unknown keys (named with their section) or invalid values.
        """
        sections = {"cell": CellConfig, "sim": SimConfig, "inputs": InputConfig}
        refuse_unknown_keys(data, field_names(cls), "config")
        kwargs = {k: v for k, v in data.items() if k not in sections}
        for name, section_cls in sections.items():
            section = data.get(name, {})
            if not isinstance(section, dict):
                raise ValueError(f"config section [{name}] must be a table of keys, got {section!r}")
            if name == "sim":
                section = {**DATASET_SIM_DEFAULTS, **section}
            refuse_unknown_keys(section, field_names(section_cls), f"section [{name}]")
            kwargs[name] = section_cls(**_match_default_types(section_cls, section))
        return cls(**kwargs)


@dataclass(frozen=True)
class Execution:
    """How to run (does not change the data, so it is not stored with them). Config-file section [execution].

    Attributes:
        workers: number of worker processes (local) or LocalCluster workers (dask without a scheduler).
        backend: "local" or "dask".
        scheduler: address of a running dask scheduler (dask only); None starts a LocalCluster.
        force_workers: allow more workers than this machine's CPUs.
        keep_shards: keep ``<out>.shards/`` after consolidation.
        progress: show a tqdm progress bar.
    """

    workers: int = 1
    backend: str = "local"
    scheduler: str | None = None
    force_workers: bool = False
    keep_shards: bool = False
    progress: bool = True

    def __post_init__(self):
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise ValueError(f"workers must be a whole number ≥ 1, got {self.workers!r}")
        cpus = os.cpu_count() or 1
        if self.workers > cpus and not self.force_workers and self.scheduler is None:
            raise ValueError(f"workers = {self.workers} exceeds the {cpus} CPUs of this machine; "
                             "use --force-workers to oversubscribe anyway")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.scheduler is not None and self.backend != "dask":
            raise ValueError("a scheduler address needs --backend dask")


def _match_default_types(cls, data: dict) -> dict:
    """Whole numbers given for float fields become floats, so that equal configs serialise identically."""
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    return {k: float(v) if isinstance(defaults.get(k), float) and isinstance(v, int) and not isinstance(v, bool)
            else v for k, v in data.items()}


def load_config(path: str | Path) -> tuple[GenerateConfig, Execution]:
    """Read a ``.json`` or ``.toml`` config file: GenerateConfig keys plus an optional [execution] section.

    Raises:
        ValueError: unreadable file, unknown suffix, unknown keys or invalid values (message names the file).
    """
    path = Path(path)
    try:
        if path.suffix == ".json":
            data = json.loads(path.read_text())
        elif path.suffix == ".toml":
            data = tomllib.loads(path.read_text())
        else:
            raise ValueError(f"config file must end in .json or .toml, got {path.name!r}")
    except (OSError, json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"cannot read config {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"config {path} must hold a table of keys at the top level")
    data = dict(data)
    execution = data.pop("execution", {})
    try:
        if not isinstance(execution, dict):
            raise ValueError("section [execution] must be a table of keys")
        refuse_unknown_keys(execution, field_names(Execution), "section [execution]")
        return GenerateConfig.from_dict(data), Execution(**execution)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"config {path}: {exc}") from exc


# --- planning ----------------------------------------------------------------------------------------------------


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


def plan_tasks(n_sims: int, sims_per_task: int) -> list[Task]:
    """Consecutive tasks of ``sims_per_task`` simulations (the last may be shorter) covering 0..n_sims−1."""
    return [Task(s, min(s + sims_per_task, n_sims)) for s in range(0, n_sims, sims_per_task)]


def shard_dir(out: str | Path) -> Path:
    """``<out>.shards``: where the shards of the store ``out`` are written."""
    out = Path(out)
    return out.with_name(out.name + ".shards")


def manifest_path(shard: str | Path) -> Path:
    """``<shards>/manifests/<shard name>.json``: where the file manifest of the shard store ``shard`` is kept."""
    shard = Path(shard)
    return shard.parent / _MANIFESTS / f"{shard.name}.json"


def write_manifest(shard: str | Path) -> Path:
    """Record the size in bytes of every file of the finished shard store ``shard``.

    Written after the store has been renamed into place, so a manifest only ever describes a complete shard.
    """
    shard = Path(shard)
    files = {p.relative_to(shard).as_posix(): p.stat().st_size for p in sorted(shard.rglob("*")) if p.is_file()}
    path = manifest_path(shard)
    path.parent.mkdir(exist_ok=True)
    return write_text_atomic(path, json.dumps({"files": files}, indent=0, sort_keys=True) + "\n")


def manifest_problems(shard: Path) -> list[str] | None:
    """Files of ``shard`` that are missing or differ in size from its manifest; None if it has no readable one."""
    try:
        files = json.loads(manifest_path(shard).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    problems = []
    for name, size in files.items():
        try:
            actual = (shard / name).stat().st_size
        except FileNotFoundError:
            problems.append(f"{name} is missing")
            continue
        if actual != size:
            problems.append(f"{name} has {actual} bytes, {size} when written")
    return problems


def shard_problems(path: Path, task: Task, config: dict) -> list[str]:
    """Why the shard at ``path`` cannot be kept for ``task`` of a run with ``config`` (empty: keep it).

    Reads metadata, coordinates and seeds only: the shard must open, carry ``config``, span ``duration_ms`` bins,
    hold exactly the task's simulations, and have every file its manifest lists (see :func:`write_manifest`) at
    the size it was written with, which catches missing, truncated and half-written chunks without decoding them.
    A shard without a manifest (made before manifests were kept, or by a run killed between renaming the shard
    and writing its manifest) is decoded in full instead, as ``python -m biophys inspect`` does.
    """
    try:
        ds = dataset.open_dataset(path)
    except dataset.StoreError as exc:
        return [str(exc)]
    if json.loads(ds.attrs["config"]) != config:
        return ["made with a different config"]
    if ds.sizes["time"] != config["duration_ms"]:
        return [f"{ds.sizes['time']} time bins, expected {config['duration_ms']}"]
    problems = planned_sims_problems(ds, task.sims)
    if problems:
        return problems
    files = manifest_problems(path)
    if files is None:
        return data_problems(ds)
    if files:
        return [f"{len(files)} file(s) changed since the shard was written: " + "; ".join(files[:3])
                + ("; …" if len(files) > 3 else "")]
    return []


def _config_differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested config dicts."""
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _config_differences(va, vb, f"{prefix}{key}.")
        elif va != vb:
            out.append(f"{prefix}{key}: {va!r} (existing) vs {vb!r} (requested)")
    return out


def _refuse_mismatch(what: Path, where: str, existing: dict, requested: dict, out: Path) -> None:
    diffs = _config_differences(existing, requested)
    shown = "; ".join(diffs[:6]) + ("; …" if len(diffs) > 6 else "")
    raise GenerateError(
        f"{what} was made with a different config ({shown}). To resume it, re-run with the config it was made "
        f"with (saved in {where}); to start fresh, remove {what} or choose another --out than {out}.")


def _prepare_shards(cfg: GenerateConfig, out: Path) -> Path:
    """Create ``<out>.shards`` with its config.json, or check that an existing one matches ``cfg``."""
    shards = shard_dir(out)
    config = cfg.to_dict()
    record = shards / _CONFIG_FILE
    if record.exists():
        try:
            existing = json.loads(record.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise GenerateError(f"cannot read {record} ({exc}); remove {shards} to start fresh") from exc
        if existing != config:
            _refuse_mismatch(shards, str(record), existing, config, out)
        return shards
    if shards.exists() and any(p.name.startswith("sims-") for p in shards.iterdir()):
        raise GenerateError(f"{shards} holds shards but no {_CONFIG_FILE}, so their config is unknown; "
                            f"remove {shards} to start fresh")
    shards.mkdir(parents=True, exist_ok=True)
    write_text_atomic(record, json.dumps(config, indent=2, sort_keys=True) + "\n")
    return shards


def _remove_stale_temporaries(shards: Path) -> None:
    """Delete half-written shards and manifests left by a killed run (``.<name>.tmp-*`` / ``.old-*``)."""
    for p in [*shards.iterdir(), *(shards / _MANIFESTS).glob(".sims-*")]:
        if p.name.startswith(".sims-") and (".tmp-" in p.name or ".old-" in p.name):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)


def _remove_stale_consolidation(out: Path) -> None:
    """Delete the temporary store a consolidation killed mid-write left beside ``out`` (``.<out>.tmp-*``): it can
    be as large as the dataset, and a consolidation is about to write a new one."""
    for p in out.parent.iterdir():
        if p.name.startswith(f".{out.name}.tmp-"):
            shutil.rmtree(p, ignore_errors=True)


# --- the worker side -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """Everything a worker needs for one task, as plain picklable data."""

    task: Task
    config: dict
    shard: str
    provenance: dict
    simulator: str = DEFAULT_SIMULATOR


@dataclass(frozen=True)
class TaskResult:
    """What a finished task reports back (the data themselves stay in the shard)."""

    task: Task
    n_spikes: tuple[int, ...]
    wall_s: float
    input_s: float


_worker_lock = threading.Lock()
_worker_state: dict = {"key": None, "simulator": None, "progress": None}


def _worker_simulator(job: Job):
    """This process's simulator for ``job``'s cell and sim config; built on first use and then reused."""
    key = (job.simulator, json.dumps(job.config["cell"], sort_keys=True), json.dumps(job.config["sim"], sort_keys=True))
    if _worker_state["key"] != key:
        if _worker_state["simulator"] is not None:
            _worker_state["simulator"].close()
            _worker_state["simulator"] = None
        module, _, name = job.simulator.partition(":")
        factory = getattr(importlib.import_module(module), name)
        _worker_state["simulator"] = factory(CellConfig(**job.config["cell"]), SimConfig(**job.config["sim"]))
        _worker_state["key"] = key
    return _worker_state["simulator"]


def input_segments(synapses: pd.DataFrame) -> pd.DataFrame:
    """The segment table the input protocol needs (``tree``, ``length_um`` in input order) from a simulator's
    synapse table, checking that the inhibitory synapses sit on the excitatory ones' segments in the same order."""
    exc = synapses[synapses["kind"] == "exc"].reset_index(drop=True)
    inh = synapses[synapses["kind"] == "inh"].reset_index(drop=True)
    if len(exc) + len(inh) != len(synapses) or not synapses["kind"].iloc[: len(exc)].eq("exc").all() \
            or not exc["segment"].equals(inh["segment"]):
        raise GenerateError("the simulator's synapse table is not one excitatory synapse per segment followed by "
                            "one inhibitory synapse per segment in the same order, as the input protocol needs")
    return exc[["tree", "length_um"]]


def simulate_task(simulator, job: Job, on_sim: Callable[[int], None] = lambda k: None) -> TaskResult:
    """Simulate ``job``'s simulations on ``simulator`` and write them as one shard store.

    Args:
        simulator: a CellSimulator (or an object with its ``synapses``, ``run`` and ``provenance``).
        job: the task, config dict and shard path.
        on_sim: called with the simulation index after each simulation (progress reporting).
    """
    start_wall = time.perf_counter()
    cfg = GenerateConfig.from_dict(job.config)
    segments = input_segments(simulator.synapses)
    inputs, soma, nexus, dend, spikes = [], [], [], [], []
    input_s = 0.0
    neuron_s = 0.0
    for k in range(job.task.start, job.task.stop):
        t0 = time.perf_counter()
        rng = np.random.default_rng(np.random.SeedSequence((cfg.base_seed, k)))
        x = draw_inputs(cfg.inputs, segments, cfg.duration_ms, rng)
        input_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        result = simulator.run(x, cfg.duration_ms)
        neuron_s += time.perf_counter() - t0
        inputs.append(x.T)
        soma.append(result.soma_mV)
        nexus.append(result.nexus_mV)
        dend.append(result.dend_mV)
        spikes.append(np.asarray(result.spike_times_ms, dtype=np.float64))
        on_sim(k)
    if cfg.sim.record_dendrites and any(d is None for d in dend):
        raise GenerateError("sim.record_dendrites is set but the simulator returned no dendritic voltages")
    ds = dataset.build_dataset(
        np.stack(inputs), np.stack(soma), spikes, seeds=job.task.sims, synapses=simulator.synapses,
        config=job.config,
        provenance={**job.provenance, **simulator.provenance(),
                    "timing": {"neuron_wall_s": neuron_s, "input_draw_s": input_s}},
        nexus_voltage=None if any(v is None for v in nexus) else np.stack(nexus),
        dendritic_voltage=np.stack(dend) if cfg.sim.record_dendrites else None,
        sim_index=job.task.sims,
    )
    dataset.write_store(ds, job.shard, overwrite=True)
    write_manifest(job.shard)
    return TaskResult(job.task, tuple(len(s) for s in spikes), time.perf_counter() - start_wall, input_s)


def _init_local_worker(progress_queue) -> None:
    _worker_state["progress"] = progress_queue


def run_local_job(job: Job) -> TaskResult:
    """Entry point of a local worker process (ProcessPoolExecutor)."""
    with _worker_lock:
        progress = _worker_state["progress"]
        on_sim = (lambda k: progress.put((job.task.start, k))) if progress is not None else (lambda k: None)
        return simulate_task(_worker_simulator(job), job, on_sim)


def run_dask_job(job: Job) -> TaskResult:
    """Entry point of a dask task. The lock keeps a multi-threaded dask worker to one NEURON run at a time."""
    from distributed import get_worker

    worker = get_worker()
    with _worker_lock:
        return simulate_task(_worker_simulator(job), job,
                             lambda k: worker.log_event(_PROGRESS_TOPIC, (job.task.start, k)))


# --- the coordinator side ------------------------------------------------------------------------------------------


class _Progress:
    """Simulation-level progress from per-simulation messages, reconciled with task completions."""

    def __init__(self, total: int, done: int, enabled: bool):
        from tqdm import tqdm

        self._bar = tqdm(total=total, initial=done, unit="sim", desc="simulations", disable=not enabled,
                         dynamic_ncols=True, smoothing=0.1)
        self._seen: dict[int, int] = {}
        self._finished: set[int] = set()
        self._lock = threading.Lock()

    def sim_done(self, task_start: int) -> None:
        with self._lock:
            if task_start not in self._finished:
                self._seen[task_start] = self._seen.get(task_start, 0) + 1
                self._bar.update(1)

    def task_done(self, task: Task) -> None:
        with self._lock:
            self._finished.add(task.start)
            missing = (task.stop - task.start) - self._seen.get(task.start, 0)
            if missing > 0:
                self._bar.update(missing)

    def close(self) -> None:
        self._bar.close()


def _run_local(jobs: list[Job], execution: Execution, progress: _Progress) -> list[TaskResult]:
    ctx = get_context("spawn")
    messages = ctx.Queue()

    def drain():
        while (item := messages.get()) is not None:
            progress.sim_done(item[0])

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    results = []
    pool = ProcessPoolExecutor(max_workers=min(execution.workers, len(jobs)), mp_context=ctx,
                               initializer=_init_local_worker, initargs=(messages,))
    try:
        pending = {pool.submit(run_local_job, job): job for job in jobs}
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                job = pending.pop(future)
                results.append(_task_result(future.result, job))
                progress.task_done(job.task)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        messages.put(None)
        reader.join(timeout=5)
    return results


def _run_dask(jobs: list[Job], execution: Execution, progress: _Progress) -> list[TaskResult]:
    import logging

    from distributed import Client, LocalCluster, as_completed

    if execution.scheduler:
        client, cluster = Client(execution.scheduler), None
    else:
        # One thread per worker process: NEURON's state is global per process.
        cluster = LocalCluster(n_workers=execution.workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)
        client = Client(cluster)
    results = []
    try:
        client.subscribe_topic(_PROGRESS_TOPIC, lambda event: progress.sim_done(event[1][0]))
        futures = {client.submit(run_dask_job, job, pure=False, key=f"generate-{job.task.shard_name}-{uuid.uuid4().hex[:8]}"): job
                   for job in jobs}
        for future in as_completed(futures):
            job = futures[future]
            results.append(_task_result(future.result, job))
            progress.task_done(job.task)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return results


def _task_result(get: Callable[[], TaskResult], job: Job) -> TaskResult:
    try:
        return get()
    except Exception as exc:
        sims = f"simulations {job.task.start}..{job.task.stop - 1}"
        if isinstance(exc, OSError) and _disk_full(exc):
            message = (f"{sims} failed: the disk is full ({_one_line(exc)}) while writing shard {job.shard}. "
                       "Finished shards are kept; free disk space and re-run the same command to resume.")
        elif isinstance(exc, BrokenProcessPool):
            message = (f"{sims} failed: a worker process died (killed, or out of memory?). Finished shards are "
                       "kept; re-run the same command to resume.")
        else:
            message = (f"{sims} failed: {type(exc).__name__}: {_one_line(exc).rstrip('.')}. Finished shards are "
                       "kept; re-run the same command to resume.")
        raise GenerateError(message) from exc


def _disk_full(exc: OSError) -> bool:
    """True for "no space left on device" and "disk quota exceeded"."""
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)


def _one_line(exc: BaseException) -> str:
    """The exception's message on one line (error messages of generate are one line each)."""
    return " ".join(str(exc).split())


@dataclass(frozen=True)
class GenerateReport:
    """Outcome of :func:`generate`.

    Attributes:
        out: the consolidated store.
        n_sims: simulations in the store; n_new: simulated by this run; n_kept: shards kept from earlier runs.
        simulated_s: simulated seconds in the store; new_simulated_s: by this run.
        wall_s: wall time of this run (s); input_s: CPU time spent drawing inputs (s, summed over workers).
        output_rate_hz: mean output spike rate; silent_fraction: fraction of simulations without output spikes.
    """

    out: Path
    n_sims: int
    n_new: int
    n_kept: int
    simulated_s: float
    new_simulated_s: float
    wall_s: float
    input_s: float
    output_rate_hz: float
    silent_fraction: float

    def summary(self) -> str:
        rate = self.new_simulated_s / self.wall_s * 3600 if self.wall_s > 0 else float("nan")
        return (f"{self.out}: {self.n_sims} simulations ({self.simulated_s:.1f} simulated s); this run simulated "
                f"{self.n_new} ({self.new_simulated_s:.1f} s) in {self.wall_s:.1f} s wall "
                f"({rate:.0f} simulated s per hour), kept {self.n_kept} shard(s); output {self.output_rate_hz:.2f} Hz, "
                f"silent simulations {100 * self.silent_fraction:.1f} %")


def _report(out: Path, n_new: int, n_kept: int, wall_s: float, input_s: float, duration_ms: int) -> GenerateReport:
    ds = dataset.open_dataset(out)
    counts = np.isfinite(ds["output_spike_times"].values).sum(axis=1)
    simulated_s = ds.sizes["sim"] * ds.sizes["time"] * dataset.DT_MS / 1000.0
    return GenerateReport(out=out, n_sims=ds.sizes["sim"], n_new=n_new, n_kept=n_kept, simulated_s=simulated_s,
                          new_simulated_s=n_new * duration_ms / 1000.0, wall_s=wall_s, input_s=input_s,
                          output_rate_hz=float(counts.sum() / simulated_s), silent_fraction=float(np.mean(counts == 0)))


def generate(cfg: GenerateConfig, out: str | Path, execution: Execution = Execution(),
             simulator: str = DEFAULT_SIMULATOR, log: Callable[[str], None] = print) -> GenerateReport:
    """Simulate ``cfg`` into the store ``out``, resuming from ``<out>.shards`` if an earlier run left shards.

    Args:
        cfg: what to simulate.
        out: path of the consolidated Zarr store.
        execution: how to run it.
        simulator: "module:attribute" of the simulator class each worker builds from (CellConfig, SimConfig).
        log: where progress messages go.
    Raises:
        GenerateError: ``out`` or its shard directory was made with a different config, or a task or the
            consolidation failed, a full disk included (finished shards are kept).
    """
    t_start = time.perf_counter()
    out = Path(out)
    config = cfg.to_dict()
    if out.exists():
        try:
            existing = json.loads(dataset.open_dataset(out).attrs["config"])
        except dataset.StoreError as exc:
            raise GenerateError(f"{out} exists but is not a readable store ({exc}); remove it or choose another "
                                "--out") from exc
        if existing != config:
            _refuse_mismatch(out, f"the 'config' attribute of {out}", existing, config, out)
        log(f"{out} is already complete with this config; nothing to do")
        return _report(out, 0, 0, time.perf_counter() - t_start, 0.0, cfg.duration_ms)

    shards = _prepare_shards(cfg, out)
    _remove_stale_temporaries(shards)
    tasks = plan_tasks(cfg.n_sims, cfg.sims_per_task)
    todo, kept = [], 0
    for task in tasks:
        path = shards / task.shard_name
        if path.exists():
            problems = shard_problems(path, task, config)
            if not problems:
                kept += 1
                continue
            log(f"redoing {path.name}: {problems[0]}")
            shutil.rmtree(path)
        # A manifest left without its shard would otherwise describe the shard written next.
        manifest_path(path).unlink(missing_ok=True)
        todo.append(task)
    if kept:
        log(f"resuming: keeping {kept} finished shard(s) of {len(tasks)} in {shards}")

    results = []
    if todo:
        base = provenance()
        jobs = [Job(t, config, str(shards / t.shard_name), base, simulator) for t in todo]
        n_done = cfg.n_sims - sum(t.stop - t.start for t in todo)
        progress = _Progress(cfg.n_sims, n_done, execution.progress)
        try:
            runner = _run_local if execution.backend == "local" else _run_dask
            results = runner(jobs, execution, progress)
        finally:
            progress.close()

    _remove_stale_consolidation(out)
    try:
        dataset.concat_stores([shards / t.shard_name for t in tasks], out)
    except OSError as exc:
        cause, remedy = (f"the disk is full ({_one_line(exc)})", "free disk space") if _disk_full(exc) else \
            (f"{type(exc).__name__}: {_one_line(exc)}", "fix the cause")
        raise GenerateError(f"consolidating {len(tasks)} shard(s) into {out} failed: {cause}. Nothing was written at "
                            f"{out} and the shards in {shards} are kept; {remedy} and re-run the same command to "
                            "consolidate them.") from exc
    if not execution.keep_shards:
        shutil.rmtree(shards, ignore_errors=True)
    n_new = sum(r.task.stop - r.task.start for r in results)
    report = _report(out, n_new, kept, time.perf_counter() - t_start, sum(r.input_s for r in results),
                     cfg.duration_ms)
    log(report.summary())
    return report


# --- command line --------------------------------------------------------------------------------------------------


def register_cli(subparsers) -> None:
    """Add ``generate`` to an argparse subparsers object (NEURON is imported only by the workers)."""
    p = subparsers.add_parser(
        "generate", help="simulate a NeuronIO dataset (resumable, local processes or Dask)",
        description="Simulate N seeded random-input runs of the cell into a Zarr store. Re-running the same "
        "command resumes an interrupted run; flags override the config file.")
    p.add_argument("--config", type=Path, help="JSON or TOML file with GenerateConfig keys (+ [execution])")
    p.add_argument("--out", type=Path, required=True, help="the store to write, e.g. data/train.zarr")
    p.add_argument("--n-sims", type=int, help="number of simulations")
    p.add_argument("--duration-ms", type=int, help="length of each simulation in ms")
    p.add_argument("--seed", type=int, help="base seed (simulation k draws from SeedSequence((seed, k)))")
    p.add_argument("--cell", choices=("ball-and-stick", "l5pc"), help="which cell to simulate")
    p.add_argument("--sims-per-task", type=int, help="simulations per task / shard")
    p.add_argument("--record-dendrites", action="store_true", default=None,
                   help="also store every dendritic segment's voltage")
    p.add_argument("--workers", type=int, help="worker processes (default 1)")
    p.add_argument("--backend", choices=BACKENDS, help="local processes or dask (default local)")
    p.add_argument("--scheduler", help="address of a running dask scheduler (with --backend dask)")
    p.add_argument("--force-workers", action="store_true", default=None, help="allow more workers than CPUs")
    p.add_argument("--keep-shards", action="store_true", default=None, help="keep <out>.shards after consolidating")
    p.add_argument("--no-progress", dest="progress", action="store_false", default=None, help="no progress bar")
    p.set_defaults(func=_generate_command)


def _resolve(args: argparse.Namespace) -> tuple[GenerateConfig, Execution]:
    """The config file (or defaults) with the command-line flags applied."""
    if args.config is not None:
        cfg, execution = load_config(args.config)
    else:
        cfg, execution = GenerateConfig(), Execution()
    top = {"n_sims": args.n_sims, "duration_ms": args.duration_ms, "base_seed": args.seed,
           "sims_per_task": args.sims_per_task}
    cfg = dataclasses.replace(cfg, **{k: v for k, v in top.items() if v is not None})
    if args.cell is not None:
        cfg = dataclasses.replace(cfg, cell=dataclasses.replace(cfg.cell, name=args.cell))
    if args.record_dendrites is not None:
        cfg = dataclasses.replace(cfg, sim=dataclasses.replace(cfg.sim, record_dendrites=args.record_dendrites))
    run = {"workers": args.workers, "backend": args.backend, "scheduler": args.scheduler,
           "force_workers": args.force_workers, "keep_shards": args.keep_shards, "progress": args.progress}
    if args.scheduler is not None and args.backend is None:
        run["backend"] = "dask"
    return cfg, dataclasses.replace(execution, **{k: v for k, v in run.items() if v is not None})


def _generate_command(args: argparse.Namespace) -> int:
    try:
        cfg, execution = _resolve(args)
        generate(cfg, args.out, execution)
    except (ValueError, GenerateError, dataset.StoreError) as exc:
        print(f"generate: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"generate: {type(exc).__name__}: {_one_line(exc)}; finished shards are kept in {shard_dir(args.out)}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"generate: interrupted; finished shards are kept in {shard_dir(args.out)}; re-run the same "
              "command to resume", file=sys.stderr)
        return 130
    return 0
