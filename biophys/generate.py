"""Generate NeuronIO datasets: plan simulations into tasks, run them in parallel, resume, consolidate.

A run of ``n_sims`` simulations is cut into tasks of ``sims_per_task`` consecutive simulations
(:mod:`biophys.planning`), after checking that the disk and memory can hold the run. Each task becomes one shard
store, written atomically by the worker that simulated it (:mod:`biophys.backends`); when every shard exists they
are consolidated into ``<out>`` and (unless kept) removed (:mod:`biophys.shards`). The store records the
explicit morphology and its file's sha256 as the attributes ``morphology`` and ``morphology_sha256``.

Resume: running the same command again keeps every intact shard, redoes the others, and refuses a shard
directory or store made with a different config or morphology file. The shards stay the source of truth until
the consolidated store exists: a failure, a full disk included, leaves the finished shards in place for the next
run.

Determinism: simulation ``k`` draws its input from ``numpy.random.SeedSequence((base_seed, k))`` and the
simulator is deterministic, so the data do not depend on the worker count, the task order or the backend.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Callable

from biophys import dataset, shards as shard_store
from biophys.backends import DEFAULT_SIMULATOR, Job, disk_full, one_line, run_dask, run_local, tasks_per_worker
from biophys.genconfig import Execution, GenerateConfig
from biophys.morphology import describe_morphology
from biophys.planning import GenerateError, check_resources, plan_tasks
from biophys.progress import GenerateReport, Progress, report
from conventions.atomic import write_text_atomic
from conventions.provenance import provenance

_MORPHOLOGY_FILE = "morphology.json"


def morphology_attrs(cfg: GenerateConfig) -> dict:
    """The store attributes that name ``cfg``'s morphology: ``morphology`` (explicit spec) and, for a file,
    ``morphology_sha256``.

    Raises:
        biophys.morphology.MorphologyError: a missing, uncached or malformed morphology file.
    """
    described = describe_morphology(cfg.cell.name, cfg.cell.morphology)
    return {key: value for key, value in described.items() if value is not None}


def _refuse_other_morphology(recorded: dict, attrs: dict, what: Path, out: Path) -> None:
    """Raise :class:`GenerateError` when ``recorded`` (``what``'s attributes) name another morphology than
    ``attrs``; stores made before morphologies were recorded name none and pass."""
    recorded = {key: recorded[key] for key in ("morphology", "morphology_sha256") if key in recorded}
    if recorded and recorded != attrs:
        raise GenerateError(
            f"{what} was made with morphology {recorded.get('morphology')!r} (sha256 "
            f"{recorded.get('morphology_sha256')}), this run uses {attrs['morphology']!r} (sha256 "
            f"{attrs.get('morphology_sha256')}); restore that file, or remove {what} or choose another --out "
            f"than {out}")


def _check_shard_morphology(shards: Path, attrs: dict, out: Path) -> None:
    """Record ``attrs`` in ``<shards>/morphology.json``, or refuse a shard directory that recorded others."""
    record = shards / _MORPHOLOGY_FILE
    if record.exists():
        _refuse_other_morphology(json.loads(record.read_text()), attrs, shards, out)
    else:
        write_text_atomic(record, json.dumps(attrs, indent=2, sort_keys=True) + "\n")


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
        GenerateError: ``out`` or its shard directory was made with a different config or morphology file, the
            disk or memory cannot hold the run (nothing is written then), or a task or the consolidation failed,
            a full disk included (finished shards are kept).
        biophys.morphology.MorphologyError: the config's morphology file is missing, uncached or malformed.
    """
    t_start = time.perf_counter()
    out = Path(out)
    config = cfg.to_dict()
    attrs = morphology_attrs(cfg)
    if out.exists():
        try:
            existing = dataset.open_dataset(out)
        except dataset.StoreError as exc:
            raise GenerateError(f"{out} exists but is not a readable store ({exc}); remove it or choose another "
                                "--out") from exc
        if json.loads(existing.attrs["config"]) != config:
            shard_store.refuse_mismatch(out, f"the 'config' attribute of {out}", json.loads(existing.attrs["config"]),
                                        config, out)
        _refuse_other_morphology(existing.attrs, attrs, out, out)
        log(f"{out} is already complete with this config; nothing to do")
        return report(out, 0, 0, time.perf_counter() - t_start, 0.0, cfg.duration_ms)

    check_resources(cfg, execution, out, shard_store.shard_dir(out))
    shards = shard_store.prepare_shards(config, out)
    _check_shard_morphology(shards, attrs, out)
    shard_store.remove_stale_temporaries(shards)
    tasks = plan_tasks(cfg.n_sims, cfg.sims_per_task)
    todo, kept = [], 0
    for task in tasks:
        path = shards / task.shard_name
        if path.exists():
            problems = shard_store.shard_problems(path, task, config)
            if not problems:
                kept += 1
                continue
            log(f"redoing {path.name}: {problems[0]}")
            shutil.rmtree(path)
        todo.append(task)
    if kept:
        log(f"resuming: keeping {kept} finished shard(s) of {len(tasks)} in {shards}")

    results = []
    if todo:
        base = provenance()
        jobs = (Job(t, config, str(shards / t.shard_name), base, simulator, attrs) for t in todo)
        progress = Progress(cfg.n_sims, cfg.n_sims - sum(t.stop - t.start for t in todo), execution.progress)
        try:
            if execution.backend == "local":
                results = list(run_local(jobs, len(todo), execution, progress, tasks_per_worker(cfg)))
            else:
                results = list(run_dask(jobs, len(todo), execution, progress))
        finally:
            progress.close()

    shard_store.remove_stale_consolidation(out)
    try:
        shard_store.concat_stores([shards / t.shard_name for t in tasks], out)
    except OSError as exc:
        cause, remedy = (f"the disk is full ({one_line(exc)})", "free disk space") if disk_full(exc) else \
            (f"{type(exc).__name__}: {one_line(exc)}", "fix the cause")
        raise GenerateError(f"consolidating {len(tasks)} shard(s) into {out} failed: {cause}. Nothing was written at "
                            f"{out} and the shards in {shards} are kept; {remedy} and re-run the same command to "
                            "consolidate them.") from exc
    if not execution.keep_shards:
        shutil.rmtree(shards, ignore_errors=True)
    n_new = sum(r.task.stop - r.task.start for r in results)
    summary = report(out, n_new, kept, time.perf_counter() - t_start, sum(r.input_s for r in results),
                     cfg.duration_ms)
    log(summary.summary())
    return summary
