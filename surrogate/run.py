"""Run directories: the files one training run leaves behind, written atomically, and read back.

A run directory holds
    ``config.json``    the TrainConfig as a dict (model kind, full model_config, data paths, seed, …);
    ``metrics.json``   status, best and last validation metrics, epochs, steps, wall time, num_params,
                       data_mode (in memory or lazy, what was asked, the in-memory size and RAM in bytes),
                       provenance (code, run-config hash, and each store's provenance and config hash);
    ``history.json``   one record per validation: epoch, step, train/valid loss, valid AUC, soma RMSE (mV), lr;
    ``model.pt``       the best weights (by validation loss) as ``{"kind", "config", "state_dict", "layout"}``:
                       the model kind and config dict of :mod:`surrogate.models`, its state_dict, and the synapse
                       layout of its input channels (:mod:`conventions.layout`), so the file alone rebuilds the
                       model (:func:`load_model`); files written before hold the bare state_dict, read with
                       ``config.json`` beside them;
    ``checkpoint.pt``  the last state (:mod:`surrogate.checkpoint`);
    ``curves.png``     the history plotted.
Every file is written to a temporary sibling and renamed into place, so each is either complete or absent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from conventions.atomic import replace_atomically
from conventions.layout import LayoutError, SynapseLayout
from surrogate.models import build_model, model_from_dict

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.json"
MODEL_FILE = "model.pt"
CHECKPOINT_FILE = "checkpoint.pt"
CURVES_FILE = "curves.png"
#: In a run directory copied from another sweep rather than trained there: {"source": that run's absolute path}.
REUSED_FILE = "reused_from.json"
#: metrics.json statuses of a run that trains no further (others: "running", "wall_budget", "interrupted").
DONE_STATUSES = ("finished", "early_stopped")


class RunError(ValueError):
    """A run directory is missing, incomplete, or inconsistent."""


def write_json(path: str | Path, obj) -> None:
    """Write ``obj`` as indented JSON, atomically (non-finite floats are written as NaN/Infinity)."""
    def write(tmp: Path) -> None:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")
    replace_atomically(Path(path), write)


def save_torch(path: str | Path, obj) -> None:
    """``torch.save`` atomically."""
    replace_atomically(Path(path), lambda tmp: torch.save(obj, tmp))


def plot_curves(history: list[dict], path: str | Path) -> None:
    """Plot loss (train, valid), valid spike AUC, valid soma RMSE (mV) and lr against epoch into a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.5), constrained_layout=True)
    axes[0].plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    axes[0].plot(epochs, [h["valid_loss"] for h in history], "o-", label="valid")
    axes[0].set(ylabel="loss (0.5 BCE + 0.5 MSE)", yscale="log")
    axes[0].legend()
    axes[1].plot(epochs, [h["valid_auc"] for h in history], "o-")
    axes[1].set(ylabel="valid spike ROC AUC")
    axes[2].plot(epochs, [h["valid_rmse_mv"] for h in history], "o-")
    axes[2].set(ylabel="valid soma RMSE (mV)")
    axes[3].plot(epochs, [h["lr"] for h in history], "o-")
    axes[3].set(ylabel="learning rate (end of epoch)")
    for ax in axes:
        ax.set_xlabel("epoch")
    replace_atomically(Path(path), lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)


@dataclass
class Run:
    """A finished (or interrupted) training run read back from its directory.

    Attributes:
        path: the run directory.
        config: config.json (TrainConfig fields).
        metrics: metrics.json.
        history: history.json, one dict per validation.
        model: the model with the best weights, in eval mode, on the CPU; ``model.layout`` is the synapse layout
            of its input channels (None for runs written before layouts were recorded).
        data_provenance: {"train": …, "valid": …} records of the stores trained and validated on.
    """

    path: Path
    config: dict
    metrics: dict
    history: list[dict]
    model: nn.Module
    data_provenance: dict

    @property
    def layout(self) -> SynapseLayout | None:
        return getattr(self.model, "layout", None)


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RunError(f"{path.parent} is not a complete run directory: {path.name} is missing") from None
    except json.JSONDecodeError as exc:
        raise RunError(f"{path} is not valid JSON: {exc}") from None


def model_file(kind: str, config: dict, state_dict: dict, layout: SynapseLayout | None) -> dict:
    """The contents of ``model.pt`` (see the module docstring)."""
    return {"kind": kind, "config": config, "state_dict": state_dict,
            "layout": None if layout is None else layout.to_dict()}


def read_model_file(path: str | Path) -> dict:
    """``model.pt`` as ``{"kind", "config", "state_dict", "layout"}``; a file of the earlier layout (a bare
    state_dict) gives None for kind, config and layout. The layout comes back as a SynapseLayout."""
    path = Path(path)
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file surfaces as various exception types
        raise RunError(f"{path} is not a readable weights file ({type(exc).__name__})") from None
    if not (isinstance(saved, dict) and isinstance(saved.get("state_dict"), dict)):
        return {"kind": None, "config": None, "state_dict": saved, "layout": None}
    try:
        layout = None if saved.get("layout") is None else SynapseLayout.from_dict(saved["layout"])
    except LayoutError as exc:
        raise RunError(f"{path}: its synapse layout is malformed: {exc}") from None
    return {**saved, "layout": layout}


def load_model(path: str | Path) -> nn.Module:
    """The model a self-describing ``model.pt`` holds, rebuilt from the file alone, in eval mode on the CPU."""
    saved = read_model_file(path)
    if saved["kind"] is None:
        raise RunError(f"{path} holds bare weights (written before model.pt described its model); "
                       f"read it with load_run on its run directory")
    try:
        model = model_from_dict(saved, saved["layout"])
        model.load_state_dict(saved["state_dict"])
    except (TypeError, ValueError, RuntimeError) as exc:
        raise RunError(f"{path} does not describe a valid model: {exc}") from None
    return model.eval()


def model_from_config(config: dict, layout: SynapseLayout | None = None) -> nn.Module:
    """A freshly initialised model for a run's config dict (keys ``model`` and ``model_config``)."""
    try:
        return build_model(config["model"], config["model_config"], layout=layout)
    except KeyError as exc:
        raise RunError(f"run config lacks {exc}") from None
    except (TypeError, ValueError) as exc:
        raise RunError(f"run config does not describe a valid model: {exc}") from None


def load_run(run_dir: str | Path) -> Run:
    """Read a run directory; the model gets the best weights (model.pt) and is put in eval mode.

    Raises:
        RunError: missing directory or files, weights that do not fit the configured model, or a
            checkpoint written under a different config than config.json.
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise RunError(f"no run directory at {path}")
    config = _read_json(path / CONFIG_FILE)
    metrics = _read_json(path / METRICS_FILE)
    history = _read_json(path / HISTORY_FILE)
    if not (path / MODEL_FILE).exists():
        raise RunError(f"{path} holds no weights ({MODEL_FILE} is missing); did training finish an epoch?")
    saved = read_model_file(path / MODEL_FILE)
    if saved["kind"] is not None and (saved["kind"], saved["config"]) != (config.get("model"),
                                                                         config.get("model_config")):
        raise RunError(f"{path / MODEL_FILE} does not fit the model in {CONFIG_FILE}: it holds a {saved['kind']} "
                       f"with {saved['config']}")
    model = model_from_config(config, saved["layout"])
    try:
        model.load_state_dict(saved["state_dict"])
    except RuntimeError as exc:
        raise RunError(f"{path / MODEL_FILE} does not fit the model in {CONFIG_FILE}: {exc}") from None
    checkpoint = path / CHECKPOINT_FILE
    if checkpoint.exists():
        saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
        if saved.get("config") != config:
            raise RunError(f"{checkpoint} was written under a different config than {path / CONFIG_FILE}")
    if metrics.get("model") not in (None, config.get("model")):
        raise RunError(f"{METRICS_FILE} names model {metrics['model']!r} but {CONFIG_FILE} names {config['model']!r}")
    model.eval()
    return Run(path=path, config=config, metrics=metrics, history=history, model=model,
               data_provenance=metrics.get("provenance", {}).get("data", {}))
