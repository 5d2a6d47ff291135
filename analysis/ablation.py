"""Ablation sweeps (Spieler et al. 2023, ICLR 2024, arXiv 2306.16922): train one surrogate per variant of a base
config and training seed, score each on a test store, and summarise the seeds of each variant.

A variant is a dict of :class:`surrogate.config.TrainConfig` fields overriding the base config; its
``model_config`` is merged key by key into the base's (the standard sweeps are in
:mod:`analysis.ablation_variants`). Each (variant, seed) trains into ``out_dir/<variant>/seed<k>``; a run directory
that exists is resumed (a finished run is only re-scored, and a run made under another config is refused by
:func:`surrogate.train.train`), so an interrupted sweep continues where it stopped. A sweep can also start from
finished runs of other sweeps (``reuse_from``): a run trained under exactly the config a (variant, seed) asks for,
apart from :data:`surrogate.config.RUNTIME_FIELDS`, is copied instead of trained again.

Quick mode's toy cell lives in :mod:`analysis.ablation_toy` (re-exported here); the write-up of a sweep in
:mod:`analysis.ablation_writeup`.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import multiprocessing
import re
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable, Mapping, Sequence

import pandas as pd

from analysis.ablation_toy import toy_dataset, toy_synapses, write_toy_stores  # noqa: F401  (quick mode's data)
from analysis.evaluate import evaluate, load_arrays, open_run, open_store
from biophys.dataset import NeuronIOStore
from conventions.signals import BURN_IN_MS
from surrogate import run as rundir
from surrogate.checkpoint import config_differences
from surrogate.config import TrainConfig
from surrogate.plan import resolve
from surrogate.shared_data import reuse_loaded, share_directory, sigterm_as_exit
from surrogate.train import train

#: Result columns of every (variant, seed) row, besides one column per overridden setting.
RESULT_COLUMNS = ("variant", "seed", "model", "params", "spike_auc", "tpr_at_1pct_fpr", "rmse_mV", "train_wall_s",
                  "epochs_trained", "run")
#: Metrics that :func:`summarise` gives a mean and sd of.
METRICS = ("spike_auc", "tpr_at_1pct_fpr", "rmse_mV")
TABLE_FILE = "ablation.csv"
SUMMARY_FILE = "summary.csv"
#: Keys run_ablation sets itself; a base config or variant must not give them.
_SET_HERE = ("train", "valid", "out", "seed")


SPLITS = ("train", "valid", "test")


def stores_in(data_dir: str | Path) -> dict[str, Path]:
    """{"train": data_dir/train.zarr, "valid": …, "test": …}; one-line FileNotFoundError naming what is missing."""
    stores = {split: Path(data_dir) / f"{split}.zarr" for split in SPLITS}
    missing = [str(p) for p in stores.values() if not p.exists()]
    if missing:
        raise FileNotFoundError(f"stores not found: {', '.join(missing)} (set data_dir to a directory holding "
                                f"{', '.join(f'{s}.zarr' for s in SPLITS)})")
    return stores


def merge_config(base: Mapping, overrides: Mapping) -> dict:
    """``base`` with ``overrides`` applied; ``model_config`` is merged key by key, other keys replaced."""
    merged = copy.deepcopy(dict(base))
    for key, value in overrides.items():
        if key == "model_config":
            merged["model_config"] = {**merged.get("model_config", {}), **copy.deepcopy(dict(value))}
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def setting_columns(overrides: Mapping) -> dict:
    """The settings a variant changes, flattened: top-level keys as they are, model_config keys without prefix."""
    flat = {k: v for k, v in overrides.items() if k != "model_config"}
    flat.update(overrides.get("model_config", {}))
    return flat


def seed_overrides(overrides: Mapping, seed: int) -> dict:
    """A variant's overrides for one training seed: ``seed`` set, and a random routing that names no
    ``routing_seed`` drawn from the same seed, so that the spread over seeds includes the routing draw."""
    out = merge_config(overrides, {"seed": int(seed)})
    model_config = out.get("model_config", {})
    if model_config.get("routing") == "random" and "routing_seed" not in model_config:
        out["model_config"] = {**model_config, "routing_seed": int(seed)}
    return out


def _run_name(variant: str) -> str:
    """A file-system-safe directory name for a variant name."""
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", variant).strip("_") or "variant"


def _check_seeds(seeds: Sequence[int]) -> list[int]:
    seeds = list(seeds)
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
        raise ValueError(f"seeds must be a non-empty list of whole numbers >= 0, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {seeds}")
    return seeds


def run_ablation(base: Mapping, variants: Mapping[str, Mapping], train_store: str | Path, valid_store: str | Path,
                 test_store: str | Path, out_dir: str | Path, seeds: Sequence[int] = (0,),
                 burn_in_ms: int = BURN_IN_MS, progress: bool = False, workers: int = 1,
                 reuse_from: Sequence[str | Path] = ()) -> pd.DataFrame:
    """Train every variant of ``base`` once per seed and score each run on whole simulations of ``test_store``.

    Args:
        base: TrainConfig fields (``train``, ``valid``, ``out`` and ``seed`` are set here and must not be given).
        variants: name → overrides of TrainConfig fields (see :func:`merge_config`), without ``seed``.
        train_store, valid_store: stores to train and validate on; the validation store also sets the spike
            threshold of the timing metrics.
        test_store: store the table's metrics come from.
        out_dir: gets ``<variant>/seed<k>`` run directories and the table as ``ablation.csv``.
        seeds: training seeds (model initialisation and window sampling; see :func:`seed_overrides`).
        burn_in_ms: evaluation burn-in per simulation (ms).
        progress: progress bars while training (one process only).
        workers: runs trained at once, each in its own process with the base config's ``threads``. The processes
            map one copy of the stores read into RAM (:mod:`surrogate.shared_data`) rather than one each. Results
            do not depend on it; on few cores, small models train faster per core with one thread each.
        reuse_from: directories searched (recursively) for finished runs; a (variant, seed) without a run
            directory yet gets a copy of one trained under its config (see :func:`find_finished_run`), marked
            with :data:`surrogate.run.REUSED_FILE`, instead of training it again.
    Returns:
        One row per (variant, seed), variants in the given order: the columns of :data:`RESULT_COLUMNS` (spike
        ROC AUC, TPR at 1 % FPR, somatic RMSE in mV on the clipped voltage, trainable parameters, training wall
        time in s) plus one column per setting any variant overrides (NaN where a variant keeps the base value).
    Raises:
        ValueError: no variants, bad seeds or workers, or a base or variant that sets what is set here; plus the
            errors of train() and evaluate().
    """
    if not variants:
        raise ValueError("run_ablation needs at least one variant")
    seeds = _check_seeds(seeds)
    given = sorted(set(_SET_HERE) & set(base))
    if given:
        raise ValueError(f"the base config must not set {given}: run_ablation sets the stores, run paths and seeds")
    for variant, overrides in variants.items():
        if set(_SET_HERE) & set(overrides):
            raise ValueError(f"variant {variant!r} must not set {sorted(set(_SET_HERE) & set(overrides))}")
    names = [_run_name(v) for v in variants]
    if len(set(names)) != len(names):
        raise ValueError(f"variant names must stay distinct as directory names, got {names}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a whole number >= 1, got {workers!r}")
    out_dir = Path(out_dir)
    open_store(test_store), open_store(valid_store)  # a missing store fails here, before any training
    jobs = [(variant, name, overrides, seed) for (variant, overrides), name in zip(variants.items(), names)
            for seed in seeds]
    missing_sources = [str(d) for d in reuse_from if not Path(d).is_dir()]
    if missing_sources:
        raise FileNotFoundError(f"reuse_from: no such directory: {', '.join(missing_sources)}")
    for job in jobs if reuse_from else ():
        cfg = _job_config(base, str(train_store), str(valid_store), out_dir, job)
        run_dir = Path(cfg.out)
        if not (run_dir.is_dir() and any(run_dir.iterdir())):
            source = find_finished_run(cfg, reuse_from)
            if source is not None:
                adopt_run(source, run_dir)
    run_one = functools.partial(_train_and_score, base, str(train_store), str(valid_store), str(test_store), out_dir,
                                burn_in_ms, progress and workers == 1)
    if workers == 1:
        with reuse_loaded():  # the stores are read once for the whole sweep (with data_mode "memory")
            rows = [run_one(job) for job in jobs]
    else:
        with sigterm_as_exit(), share_directory() as share:
            rows = map_in_processes(functools.partial(run_one, share_dir=share), jobs, workers)
    table = pd.DataFrame(rows).astype({m: float for m in METRICS})
    out_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_dir / TABLE_FILE, index=False)
    return table


def map_in_processes(fn: Callable, jobs: list, workers: int) -> list:
    """``[fn(job) for job in jobs]`` on ``workers`` spawned processes (spawned, not forked: torch's thread pools do
    not survive a fork). Interrupted (Ctrl-C, SIGTERM as SystemExit), it cancels the jobs not started and
    terminates the workers instead of letting them finish every queued job; runs resume from their checkpoints."""
    context = multiprocessing.get_context("spawn")
    before = set(multiprocessing.active_children())
    pool = ProcessPoolExecutor(workers, context)
    try:
        rows = list(pool.map(fn, jobs))
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        for child in set(multiprocessing.active_children()) - before:
            child.terminate()
        raise
    pool.shutdown()
    return rows


def _job_config(base: Mapping, train_store: str, valid_store: str, out_dir: Path, job: tuple) -> TrainConfig:
    """The TrainConfig of one (variant, seed) job of :func:`run_ablation`, training into ``out_dir/<name>/seed<k>``."""
    _, name, overrides, seed = job
    paths = {"train": train_store, "valid": valid_store, "out": str(out_dir / name / f"seed{seed}")}
    return TrainConfig.from_dict(merge_config(base, {**seed_overrides(overrides, seed), **paths}))


def find_finished_run(cfg: TrainConfig, sources: Sequence[str | Path]) -> Path | None:
    """The first finished run (:data:`surrogate.run.DONE_STATUSES`) under ``sources``, searched recursively, whose saved
    config equals ``cfg`` resolved against its stores (absolute paths, the full model config) in every field but
    :data:`surrogate.config.RUNTIME_FIELDS` (:func:`surrogate.checkpoint.config_differences`, the comparison that
    resuming a run makes); None if there is none."""
    resolved = resolve(cfg, NeuronIOStore(cfg.train), NeuronIOStore(cfg.valid), None).cfg
    wanted = json.loads(json.dumps(dataclasses.asdict(resolved)))  # as saved: tuples become lists
    for source in sources:
        for config_file in sorted(Path(source).rglob(rundir.CONFIG_FILE)):
            run_dir = config_file.parent
            metrics = run_dir / rundir.METRICS_FILE
            if not metrics.is_file() or json.loads(metrics.read_text()).get("status") not in rundir.DONE_STATUSES:
                continue  # a run still training (or cut short) is not the run asked for
            saved = json.loads(config_file.read_text())
            if not config_differences(wanted, saved):
                return run_dir
    return None


def adopt_run(source: Path, run_dir: Path) -> None:
    """Copy the run directory ``source`` to ``run_dir`` (absent or empty) through a temporary name, so that an
    interrupted copy is never taken for a run, and record where it came from in :data:`surrogate.run.REUSED_FILE`."""
    partial = run_dir.with_name(run_dir.name + ".copying")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(source, partial)
    rundir.write_json(partial / rundir.REUSED_FILE, {"source": str(Path(source).resolve())})
    if run_dir.is_dir():
        run_dir.rmdir()  # empty: checked by the caller
    partial.rename(run_dir)


def _train_and_score(base: Mapping, train_store: str, valid_store: str, test_store: str, out_dir: Path,
                     burn_in_ms: int, progress: bool, job: tuple, share_dir: Path | None = None) -> dict:
    """One (variant, seed) of :func:`run_ablation`: train (or resume) its run and score it; its table row."""
    variant, _, overrides, seed = job
    cfg = _job_config(base, train_store, valid_store, out_dir, job)
    run_dir = Path(cfg.out)
    with reuse_loaded(share_dir):
        train(cfg, resume=run_dir.is_dir() and any(run_dir.iterdir()), progress=progress)
        run = open_run(run_dir)
        test, valid = open_store(test_store), open_store(valid_store)
        result = evaluate(run, test, burn_in_ms, valid, load_arrays(test), load_arrays(valid)).metrics
    return {
        "variant": variant,
        "seed": seed,
        "model": result["model"],
        "params": result["params"],
        "spike_auc": result["spike_auc"],
        "tpr_at_1pct_fpr": result["tpr_at_fpr"]["1.00%"],
        "rmse_mV": result["rmse_mV"],
        "train_wall_s": run.metrics["wall_s"],
        "epochs_trained": run.metrics["epochs_completed"],
        "run": str(run_dir),
        **setting_columns(overrides),
    }


def run_ablation_per_cell(base: Mapping, variants: Mapping[str, Mapping], stores: Mapping[str, Mapping],
                          out_dir: str | Path, seeds: Sequence[int] = (0,), burn_in_ms: int = BURN_IN_MS,
                          progress: bool = False, workers: int = 1, reuse_from: Sequence[str | Path] = ()
                          ) -> pd.DataFrame:
    """:func:`run_ablation` on each of several cells: ``stores`` maps a cell name to its {"train", "valid",
    "test"} store paths; cell ``c`` runs under ``out_dir/<c>``. Returns the tables stacked, with a first column
    ``cell``, and writes it as ``out_dir/ablation.csv``."""
    if not stores:
        raise ValueError("run_ablation_per_cell needs at least one cell")
    out_dir = Path(out_dir)
    tables = []
    for cell, paths in stores.items():
        missing = sorted({"train", "valid", "test"} - set(paths))
        if missing:
            raise ValueError(f"cell {cell!r} lacks the {missing} store(s)")
        table = run_ablation(base, variants, paths["train"], paths["valid"], paths["test"], out_dir / _run_name(cell),
                             seeds, burn_in_ms, progress, workers, reuse_from)
        tables.append(table.assign(cell=cell)[["cell", *table.columns]])
    combined = pd.concat(tables, ignore_index=True)
    combined.to_csv(out_dir / TABLE_FILE, index=False)
    return combined


def summarise(table: pd.DataFrame, by: Sequence[str] = ("variant",)) -> pd.DataFrame:
    """Mean and sample sd (n − 1; NaN for one seed) over seeds of :data:`METRICS`, one row per group of ``by``.

    Args:
        table: rows of :func:`run_ablation` (or :func:`run_ablation_per_cell`, then ``by=("cell", "variant")``).
    Returns:
        In the table's order of first appearance: the ``by`` columns, ``n_seeds``, ``model``, ``params``,
        ``<metric>_mean`` and ``<metric>_sd`` per metric, ``train_wall_s`` (summed over seeds, s), and the
        setting columns (constant within a variant).
    Raises:
        ValueError: a missing column, or a variant whose parameter count or settings differ between seeds.
    """
    by = list(by)
    missing = sorted(set(by + ["seed", "params", "train_wall_s", *METRICS]) - set(table.columns))
    if missing:
        raise ValueError(f"the results table lacks the column(s) {missing}")
    settings = [c for c in table.columns if c not in RESULT_COLUMNS and c not in by]
    rows = []
    for key, group in table.groupby(by, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        for column in ["params", "model", *settings]:
            if column in group and group[column].astype(str).nunique() > 1:
                raise ValueError(f"{dict(zip(by, key))}: {column} differs between seeds ({sorted(set(group[column]))})")
        row = {**dict(zip(by, key)), "n_seeds": int(group["seed"].nunique())}
        row["model"] = group["model"].iloc[0] if "model" in group else None
        row["params"] = int(group["params"].iloc[0])
        for metric in METRICS:
            row[f"{metric}_mean"] = float(group[metric].mean())
            row[f"{metric}_sd"] = float(group[metric].std(ddof=1)) if len(group) > 1 else float("nan")
        row["train_wall_s"] = float(group["train_wall_s"].sum())
        row.update({c: group[c].iloc[0] for c in settings})
        rows.append(row)
    return pd.DataFrame(rows)
