"""The training runs of a quality study: nested training subsets, wall budgets that grow with the data,
schedules sized from measured step times, and runs that are skipped when finished and resumed when not.

A run's cosine learning-rate schedule is sized so that its wall budget, not the schedule, ends it with the learning
rate mostly decayed: a short probe run of each model measures the seconds per training batch and per validation,
and a run of budget B gets ``floor(B / (batches_per_epoch · step_s + valid_s))`` epochs (at least 1).
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

from analysis.evaluate import AnalysisError
from biophys.dataset import NeuronIOStore, open_dataset, write_store
from conventions.atomic import write_text_atomic
from surrogate.config import TrainConfig
from surrogate.run import CHECKPOINT_FILE, CONFIG_FILE, METRICS_FILE
from surrogate.train import TrainingError, train

#: The published training schedule (Spieler et al. 2023, following Beniaguev et al. 2021): 30 epochs of 11,400
#: batches of 8 windows of 500 ms. The study trains with the same batch shape, so its step times price it.
PUBLISHED_BATCHES = 30 * 11_400
BATCH_SIZE = 8
WINDOW_MS = 500
#: metrics.json statuses after which a run never trains again
ENDED = ("finished", "early_stopped")
#: written into a run directory whose loss became non-finite, so that a re-run does not train it again
DIVERGED_FILE = "diverged.txt"


@dataclass(frozen=True)
class Probe:
    """Measured seconds of one training batch and of one validation pass of a model on the study's data."""

    step_s: float
    valid_s: float

    def epochs(self, budget_s: float, batches_per_epoch: int) -> int:
        """Epochs of ``batches_per_epoch`` batches (each followed by a validation) that fit ``budget_s``."""
        return max(1, math.floor(budget_s / (batches_per_epoch * self.step_s + self.valid_s)))

    def published_schedule_h(self) -> float:
        """Hours the published schedule's batches would take at this step time (validations not counted)."""
        return PUBLISHED_BATCHES * self.step_s / 3600


def subset_sizes(n_sims: int, fractions: list[float]) -> list[int]:
    """Simulation counts of the nested training subsets: round(f · n_sims), at least 1, distinct, ascending."""
    return sorted({max(1, round(f * n_sims)) for f in fractions})


def budget_s(n_sims: int, n_all: int, wall_s_all: float, wall_s_min: float) -> float:
    """The wall budget of a run on ``n_sims`` of ``n_all`` simulations: proportional to the data, at least
    ``wall_s_min``."""
    return max(wall_s_min, wall_s_all * n_sims / n_all)


def subset_store(full: Path, n_sims: int) -> Path:
    """The store of the first ``n_sims`` simulations (by position, hence by simulation index) of ``full``:
    ``full`` itself when it holds no more, else ``<full stem>_first<n>.zarr`` beside it, written once.

    The copy's provenance keeps the full store's, with its ``timing`` removed (the simulation cost is the full
    store's, counted once) and ``subset`` = {"of": full path, "first_sims": n}.
    """
    store = NeuronIOStore(full)
    if n_sims >= store.n_sims:
        return full
    path = full.with_name(f"{full.stem}_first{n_sims}.zarr")
    if path.exists():
        if NeuronIOStore(path).n_sims != n_sims:
            raise AnalysisError(f"{path} exists but does not hold {n_sims} simulations; remove it")
        return path
    ds = open_dataset(full).isel(sim=slice(0, n_sims))
    provenance = {k: v for k, v in store.provenance.items() if k != "timing"}
    provenance["subset"] = {"of": str(full.resolve()), "first_sims": n_sims}
    ds.attrs["provenance"] = json.dumps(provenance)
    return write_store(ds, path)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def run_state(out: Path, budget: float) -> tuple[str, float]:
    """("fresh" | "resume" | "done", seconds of budget left) for the run directory ``out``.

    Done: training ended (finished or early-stopped), or its wall time reached ``budget``. Resume: a checkpoint is
    there and budget is left. Fresh: ``out`` is absent or empty.

    Raises:
        AnalysisError: ``out`` holds files but no checkpoint (not a run this study can continue).
    """
    if not out.exists() or not any(out.iterdir()):
        return "fresh", budget
    if (out / DIVERGED_FILE).exists():
        return "done", 0.0
    metrics = _read_json(out / METRICS_FILE) or {}
    spent = float(metrics.get("wall_s") or 0.0)
    if metrics.get("status") in ENDED or (metrics.get("status") == "wall_budget" and spent >= budget):
        return "done", 0.0
    if not (out / CHECKPOINT_FILE).exists():
        raise AnalysisError(f"{out} holds files but no {CHECKPOINT_FILE}; remove it to train that run afresh")
    # at least one second: a run killed during its last validation still needs one batch to validate and save
    return "resume", max(budget - spent, 1.0)


def ensure_run(fields: dict, budget: float, log=print) -> Path:
    """Train the run that the TrainConfig ``fields`` describe within ``budget`` seconds in all, skipping it when
    done and resuming it from its checkpoint when not (its saved config.json decides what is computed).

    Raises:
        surrogate.train.TrainingError: the loss became non-finite; :data:`DIVERGED_FILE` then says so in the run
            directory, and later calls skip the run.
    """
    out = Path(fields["out"])
    state, left = run_state(out, budget)
    if state == "done":
        log(f"  {out}: done, skipped")
        return out
    if state == "resume":
        saved = json.loads((out / CONFIG_FILE).read_text())
        runtime = {k: fields[k] for k in ("out", "threads", "device", "data_mode") if k in fields}
        cfg, resume = TrainConfig.from_dict({**saved, **runtime, "max_wall_s": left}), True
        log(f"  {out}: resuming, {left:.0f} s of its budget left")
    else:
        cfg, resume = TrainConfig.from_dict({**fields, "max_wall_s": budget}), False
        log(f"  {out}: training, budget {budget:.0f} s, {fields['epochs']} epoch(s)")
    try:
        return train(cfg, resume=resume, progress=False)
    except TrainingError as exc:
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / DIVERGED_FILE, f"{exc}\n")
        raise


def probe(fields: dict, batches: int) -> Probe:
    """Measure a model's step and validation times: 3 epochs of ``batches`` batches, validated after the third
    only, in ``fields["out"]`` (kept, and read back instead of rerun once finished); see :func:`probe_times`."""
    out = Path(fields["out"])
    metrics = _read_json(out / METRICS_FILE) or {}
    if metrics.get("status") != "finished" and out.exists():
        shutil.rmtree(out)
    if metrics.get("status") != "finished":
        train(TrainConfig.from_dict({**fields, "epochs": 3, "batches_per_epoch": batches, "valid_every": 3,
                                     "max_wall_s": None}), progress=False)
    return probe_times(json.loads((out / "history.json").read_text()))


def probe_times(history: list[dict]) -> Probe:
    """Step and validation seconds from a probe's epochs (their cumulative ``wall_s`` and ``batches``).

    The first epoch pays one-time costs (allocations, the first reads of the data): it is left out, the second
    times the batches, the third's extra time is the validation. (The first studies' probes ran 2 epochs and timed
    the step on the first, which over-estimated the Branch-ELM's step by ~40 %; a 2-epoch history is still read
    that way, so that such a study resumes with the epochs it planned.)"""
    if len(history) >= 3:
        warm, timed, validated = history[:3]
    else:
        warm, (timed, validated) = {"wall_s": 0.0}, history[:2]
    step_s = (timed["wall_s"] - warm["wall_s"]) / timed["batches"]
    valid_s = validated["wall_s"] - timed["wall_s"] - validated["batches"] * step_s
    return Probe(step_s=step_s, valid_s=max(0.0, valid_s))


def best_lr(runs: dict[float, Path]) -> tuple[float, dict]:
    """The learning rate whose run reached the lowest validation loss (the criterion that also picks each run's
    saved weights), and {lr: that run's best validation metrics}."""
    best = {lr: (_read_json(path / METRICS_FILE) or {}).get("best") or {} for lr, path in runs.items()}
    usable = {lr: b["valid_loss"] for lr, b in best.items()
              if isinstance(b.get("valid_loss"), (int, float)) and math.isfinite(b["valid_loss"])}
    if not usable:
        raise AnalysisError("no run of the learning-rate grid recorded a validation loss")
    return min(usable, key=usable.get), best
