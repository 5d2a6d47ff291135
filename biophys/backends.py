"""Where a ``generate`` run's tasks execute: the worker side (one simulator per process, a task → one shard) and
the two backends that feed it.

``local`` runs a :class:`concurrent.futures.ProcessPoolExecutor` with the ``spawn`` context; ``dask`` submits the
tasks to a ``dask.distributed`` scheduler (a :class:`~dask.distributed.LocalCluster` of single-threaded worker
processes when no address is given; the shard directory must then be on a file system that every worker sees).
Both keep at most two tasks per worker in flight, so a long plan is never held as futures. Every worker process
builds one simulator from plain config dicts and reuses it for all its tasks; NEURON objects never leave the
process. A local worker ends when its parent dies (a SIGKILLed ``generate`` cannot shut its pool down), and one
that integrates with CoreNEURON is replaced by a fresh process after :data:`RECYCLE_AFTER_MS` of simulated time
(:func:`tasks_per_worker`).
"""

from __future__ import annotations

import ctypes
import errno
import importlib
import json
import math
import os
import signal
import sys
import threading
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Callable, Iterable, Iterator

import numpy as np
import pandas as pd

from biophys import dataset
from biophys.config import CellConfig, SimConfig
from biophys.genconfig import Execution, GenerateConfig
from biophys.inputs import draw_inputs
from biophys.planning import GenerateError, Task

#: The simulator class a worker builds, as "module:attribute"; it takes (CellConfig, SimConfig).
DEFAULT_SIMULATOR = "biophys.simulator:CellSimulator"
PROGRESS_TOPIC = "neuroncompute-generate-progress"
#: Tasks in flight per worker: one running, one queued so the worker never waits for the coordinator.
IN_FLIGHT_PER_WORKER = 2
_PR_SET_PDEATHSIG = 1
_PARENT_POLL_S = 0.5
#: Simulated time (ms) after which a local CoreNEURON worker gives way to a fresh process. Each ``psolve`` of
#: NEURON 9.0.2's in-memory CoreNEURON leaves memory behind that is never reused (~1.2 MB per simulated second
#: of cell1, whether or not there are input events; NEURON's own integrator keeps none): a worker that simulated
#: 600 × 6 s had grown to 4 GB. Ten minutes of simulated time bound that to ~0.7 GB, for one cell build (a few
#: seconds) per ~70 s of the worker's simulating.
RECYCLE_AFTER_MS = 600_000


@dataclass(frozen=True)
class Job:
    """Everything a worker needs for one task, as plain picklable data (``attrs``: extra store attributes)."""

    task: Task
    config: dict
    shard: str
    provenance: dict
    simulator: str = DEFAULT_SIMULATOR
    attrs: dict | None = None


@dataclass(frozen=True)
class TaskResult:
    """What a finished task reports back (the data themselves stay in the shard)."""

    task: Task
    n_spikes: tuple[int, ...]
    wall_s: float
    input_s: float
    worker_pid: int = 0  # the process that simulated it


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
    """Simulate ``job``'s simulations on ``simulator`` and write them as one shard store (with its manifest).

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
    ds.attrs.update(job.attrs or {})
    dataset.write_store(ds, job.shard, overwrite=True)
    return TaskResult(job.task, tuple(len(s) for s in spikes), time.perf_counter() - start_wall, input_s,
                      os.getpid())


def _die_with_parent(parent: int) -> None:
    """End this process when ``parent`` dies: at once by the kernel on Linux (PR_SET_PDEATHSIG), else within
    half a second from a watcher thread (which also covers a parent that died before the kernel was asked)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)

    def watch():
        while os.getppid() == parent:
            time.sleep(_PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="parent-death-watcher").start()


def _init_local_worker(progress_queue, parent: int) -> None:
    _die_with_parent(parent)
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
                             lambda k: worker.log_event(PROGRESS_TOPIC, (job.task.start, k)))


def tasks_per_worker(cfg: GenerateConfig) -> int | None:
    """Tasks a local worker runs before a fresh process replaces it: as many as hold :data:`RECYCLE_AFTER_MS`
    of simulated time under CoreNEURON (at least one); None (no limit) under NEURON's integrator."""
    if cfg.sim.engine != "coreneuron":
        return None
    return max(1, math.ceil(RECYCLE_AFTER_MS / (cfg.sims_per_task * cfg.duration_ms)))


def run_local(jobs: Iterable[Job], n_jobs: int, execution: Execution, progress,
              max_tasks_per_worker: int | None = None) -> Iterator[TaskResult]:
    """Run ``jobs`` (``n_jobs`` of them) in local worker processes, each replaced by a fresh one after
    ``max_tasks_per_worker`` tasks (None: never); yields each result as its task finishes."""
    ctx = get_context("spawn")
    messages = ctx.Queue()

    def drain():
        while (item := messages.get()) is not None:
            progress.sim_done(item[0])

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    workers = min(execution.workers, n_jobs)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_local_worker,
                               initargs=(messages, os.getpid()), max_tasks_per_child=max_tasks_per_worker)
    try:
        yield from _bounded(jobs, lambda job: pool.submit(run_local_job, job), workers,
                            lambda pending: wait(pending, return_when=FIRST_COMPLETED)[0], progress)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        messages.put(None)
        reader.join(timeout=5)


def run_dask(jobs: Iterable[Job], n_jobs: int, execution: Execution, progress) -> Iterator[TaskResult]:
    """Run ``jobs`` on a dask scheduler (or a LocalCluster of ``execution.workers``); yields each result."""
    import logging

    from distributed import Client, LocalCluster, as_completed

    if execution.scheduler:
        client, cluster = Client(execution.scheduler), None
    else:
        # One thread per worker process: NEURON's state is global per process.
        cluster = LocalCluster(n_workers=execution.workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)
        client = Client(cluster)
    try:
        client.subscribe_topic(PROGRESS_TOPIC, lambda event: progress.sim_done(event[1][0]))
        workers = max(1, len(client.scheduler_info().get("workers", {})) or execution.workers)
        finished = as_completed()

        def submit(job):
            future = client.submit(run_dask_job, job, pure=False,
                                   key=f"generate-{job.task.shard_name}-{uuid.uuid4().hex[:8]}")
            finished.add(future)
            return future

        yield from _bounded(jobs, submit, workers, lambda pending: [next(finished)], progress)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _bounded(jobs: Iterable[Job], submit, workers: int, next_done, progress) -> Iterator[TaskResult]:
    """Submit ``jobs`` keeping ``IN_FLIGHT_PER_WORKER × workers`` in flight; yield results as tasks finish.

    Args:
        submit: job → future; next_done: the pending futures → an iterable of finished ones (at least one).
    """
    jobs = iter(jobs)
    pending = {}
    for job in jobs:
        pending[submit(job)] = job
        if len(pending) >= IN_FLIGHT_PER_WORKER * workers:
            break
    while pending:
        for future in next_done(pending):
            job = pending.pop(future)
            yield _task_result(future.result, job)
            progress.task_done(job.task)
            following = next(jobs, None)
            if following is not None:
                pending[submit(following)] = following


def _task_result(get: Callable[[], TaskResult], job: Job) -> TaskResult:
    try:
        return get()
    except Exception as exc:
        sims = f"simulations {job.task.start}..{job.task.stop - 1}"
        if isinstance(exc, OSError) and disk_full(exc):
            message = (f"{sims} failed: the disk is full ({one_line(exc)}) while writing shard {job.shard}. "
                       "Finished shards are kept; free disk space and re-run the same command to resume.")
        elif isinstance(exc, BrokenProcessPool):
            message = (f"{sims} failed: a worker process died (killed, or out of memory?). Finished shards are "
                       "kept; re-run the same command to resume.")
        else:
            message = (f"{sims} failed: {type(exc).__name__}: {one_line(exc).rstrip('.')}. Finished shards are "
                       "kept; re-run the same command to resume.")
        raise GenerateError(message) from exc


def disk_full(exc: OSError) -> bool:
    """True for "no space left on device" and "disk quota exceeded"."""
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)


def one_line(exc: BaseException) -> str:
    """The exception's message on one line (error messages of generate are one line each)."""
    return " ".join(str(exc).split())
