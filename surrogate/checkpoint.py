"""``checkpoint.pt``: the last state of a run, written after every epoch so that ``--resume`` continues it exactly.

A checkpoint holds the TrainConfig dict (``config``), the model's state_dict (``model``), the optimizer's and the
scheduler's states, the position in training (``epoch``, ``next_batch``, ``step``), the RNG states (torch, CUDA,
each process's window sampler), ``world_size``, ``history``, ``best`` (epoch, metrics and state of the best
weights so far), ``bad_validations``, ``wall_s``, ``status`` and the synapse ``layout`` of the model's input
channels (absent in checkpoints written before layouts were recorded).

:class:`StopOnInterrupt` turns a first Ctrl-C into a stop after the current batch, so that the checkpoint is
written before the process ends.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

import torch
from tqdm import tqdm

from conventions.layout import LayoutError, SynapseLayout
from surrogate import run as rundir
from surrogate.config import RUNTIME_FIELDS, ConfigError

RESUME_HINT = "python -m surrogate train --out {out} --resume"


def read_checkpoint(out: str | Path) -> dict:
    """The checkpoint of run directory ``out``.

    Raises:
        RunError: one line when the directory or its checkpoint is missing or unreadable.
    """
    out = Path(out)
    path = out / rundir.CHECKPOINT_FILE
    if not out.is_dir():
        raise rundir.RunError(f"cannot resume: {path} does not exist (there is no run directory at {out})")
    if not path.exists():
        raise rundir.RunError(f"cannot resume: {path} does not exist ({out} holds no checkpoint to continue "
                              "from; start it without --resume)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file surfaces as various exception types
        raise rundir.RunError(f"cannot resume: {path} is not a readable checkpoint ({type(exc).__name__})") from None


def checkpoint_layout(checkpoint: dict) -> SynapseLayout | None:
    """The synapse layout a checkpoint records, or None for one written before layouts were recorded."""
    saved = checkpoint.get("layout")
    try:
        return None if saved is None else SynapseLayout.from_dict(saved)
    except LayoutError as exc:
        raise rundir.RunError(f"the checkpoint's synapse layout is malformed: {exc}") from None


def check_same_model(model: str, checkpoint: dict, out: Path) -> None:
    """Raise ConfigError when resuming ``out`` is asked with another model kind than its run has."""
    saved = checkpoint["config"].get("model")
    if model != saved:
        raise ConfigError(f"this run is a {saved} run, not {model}: resume {out} without --model (or with "
                          f"--model {saved})")


def config_differences(cfg: dict, saved: dict) -> list[str]:
    """"field: run has …, now …" for every field, apart from RUNTIME_FIELDS, in which ``cfg`` differs from ``saved``
    (both as dicts of TrainConfig fields); empty when they train the same run."""
    return [f"{k}: run has {saved.get(k)!r}, now {cfg.get(k)!r}"
            for k in sorted(set(cfg) | set(saved)) if k not in RUNTIME_FIELDS and cfg.get(k) != saved.get(k)]


def check_resume(cfg: dict, saved: dict, out: Path) -> None:
    """Raise ConfigError listing every field, apart from RUNTIME_FIELDS, in which ``cfg`` differs from ``saved``."""
    diffs = config_differences(cfg, saved)
    if diffs:
        raise ConfigError(f"cannot resume {out} with a different config ({'; '.join(diffs)}); "
                          "start a new run directory instead")


def check_fresh_out(out: Path) -> None:
    """Raise RunError unless ``out`` is absent or an empty directory."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise rundir.RunError(f"{out} already exists and is not empty; pass --resume to continue that run or "
                              "choose another --out")


def save_checkpoint(out: Path, state: dict) -> None:
    """Write ``state`` (the keys of the module docstring) as ``out/checkpoint.pt``, atomically."""
    rundir.save_torch(out / rundir.CHECKPOINT_FILE, state)


class StopOnInterrupt:
    """While active (main thread, single process): the first Ctrl-C sets :attr:`requested`, so training stops
    after the batch it is in and writes its checkpoint; a second one interrupts at once."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.requested = False

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        tqdm.write("interrupted: stopping after this batch to write the checkpoint (Ctrl-C again to stop at once)",
                   file=sys.stderr)

    def __enter__(self) -> "StopOnInterrupt":
        if self.enabled:
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        if self.enabled:
            signal.signal(signal.SIGINT, self.previous)
