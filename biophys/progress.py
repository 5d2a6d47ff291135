"""What a ``generate`` run shows: a simulation-level progress bar while it runs, a one-line summary at the end."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from biophys import dataset
from biophys.planning import Task


class Progress:
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
            missing = (task.stop - task.start) - self._seen.pop(task.start, 0)
            if missing > 0:
                self._bar.update(missing)

    def close(self) -> None:
        self._bar.close()


@dataclass(frozen=True)
class GenerateReport:
    """Outcome of :func:`biophys.generate.generate`.

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


def report(out: Path, n_new: int, n_kept: int, wall_s: float, input_s: float, duration_ms: int) -> GenerateReport:
    """The :class:`GenerateReport` of the store ``out`` after a run that simulated ``n_new`` and kept ``n_kept``."""
    ds = dataset.open_dataset(out)
    counts = np.isfinite(ds["output_spike_times"].values).sum(axis=1)
    simulated_s = ds.sizes["sim"] * ds.sizes["time"] * dataset.DT_MS / 1000.0
    return GenerateReport(out=out, n_sims=ds.sizes["sim"], n_new=n_new, n_kept=n_kept, simulated_s=simulated_s,
                          new_simulated_s=n_new * duration_ms / 1000.0, wall_s=wall_s, input_s=input_s,
                          output_rate_hz=float(counts.sum() / simulated_s), silent_fraction=float(np.mean(counts == 0)))
