"""``python -m surrogate import-elmneuron DIR --out RUN``: a published checkpoint of Spieler et al. 2023 (a
``models/<name>/`` folder of github.com/AaronSpieler/elmneuron) as a run directory that ``python -m analysis``
scores like any other.

A checkpoint folder holds ``model_config.json`` (the reference constructor's arguments),
``neuronio_best_model_state.pt`` (its state_dict) and ``eval_results.json`` (the published train/valid/test
metrics), and usually ``train_config.json`` and ``model_stats.json``. The run directory gets
    ``model.pt``      ``{"kind", "config", "state_dict", "layout"}`` (:mod:`surrogate.run`), the layout being the
                      1278 original NeuronIO inputs (:func:`surrogate.published.neuronio_layout`);
    ``config.json``   ``model``, ``model_config``, ``burn_in_ms`` (the release's ``burn_in_time``) and
                      ``published`` (the release's model and train configs as they were);
    ``metrics.json``  status "imported", num_params, ``published`` (per split the published metrics under this
                      toolkit's names, and as the release wrote them), ``model_stats`` and provenance (source
                      folder, sha256 of every file read);
    ``history.json``  [] (no training happened here).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import torch

from biophys.morphology import file_sha256
from conventions.atomic import temporary_sibling
from conventions.provenance import provenance
from surrogate.models import model_kind, num_params
from surrogate.published import PublishedError, model_from_release, neuronio_layout
from surrogate.run import CONFIG_FILE, HISTORY_FILE, METRICS_FILE, MODEL_FILE, model_file

MODEL_CONFIG = "model_config.json"
STATE_FILE = "neuronio_best_model_state.pt"
EVAL_RESULTS = "eval_results.json"
TRAIN_CONFIG = "train_config.json"
MODEL_STATS = "model_stats.json"
REQUIRED_FILES = (MODEL_CONFIG, STATE_FILE, EVAL_RESULTS)
OPTIONAL_FILES = (TRAIN_CONFIG, MODEL_STATS)
#: metrics.json status of an imported run: trained elsewhere, finished.
IMPORTED_STATUS = "imported"
REFERENCE = "Spieler et al. 2023, The ELM neuron (ICLR 2024), github.com/AaronSpieler/elmneuron"
#: eval_results.json metric names → this toolkit's (analysis.evaluate); explained variance comes in percent.
METRIC_NAMES = {"AUC": "spike_auc", "soma_RMSE": "rmse_mV", "soma_MAE": "mae_mV",
                "soma_explained_variance_percent": "explained_variance"}
TPR_NAMES = {"TP @ 0.0025 FP": "0.25%", "TP @ 0.0100 FP": "1.00%"}
SPLITS = {"test_results": "test", "valid_results": "valid", "train_results": "train"}


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise PublishedError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise PublishedError(f"{path} must hold a JSON object, not a {type(value).__name__}")
    return value


def _read_state(path: Path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file surfaces as various exception types
        raise PublishedError(f"{path} is not a readable torch state_dict ({type(exc).__name__})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PublishedError(f"{path} does not hold a state_dict (a dict of tensors)")
    return dict(state)


def published_metrics(results: dict) -> dict:
    """Per split ("test", "valid", "train") the metrics of ``eval_results.json`` under this toolkit's names:
    spike_auc, tpr_at_fpr {"0.25%", "1.00%"}, rmse_mV, mae_mV, explained_variance (a fraction)."""
    out = {}
    for key, split in SPLITS.items():
        raw = results.get(key)
        if not isinstance(raw, dict):
            continue
        named = {ours: raw[theirs] for theirs, ours in METRIC_NAMES.items() if theirs in raw}
        if "explained_variance" in named:
            named["explained_variance"] = named["explained_variance"] / 100.0
        named["tpr_at_fpr"] = {ours: raw.get(theirs) for theirs, ours in TPR_NAMES.items()}
        out[split] = named
    return out


def read_checkpoint_dir(src: str | Path) -> dict:
    """Everything a checkpoint folder holds: ``model`` (the ELM, its layout the NeuronIO inputs), ``args``,
    ``train_config``, ``eval_results``, ``model_stats`` (None when the file is absent) and ``sha256`` of each
    file read. Raises PublishedError (one line) for a missing folder or file, or contents that do not fit."""
    src = Path(src)
    if not src.is_dir():
        raise PublishedError(f"no checkpoint folder at {src}")
    missing = [name for name in REQUIRED_FILES if not (src / name).is_file()]
    if missing:
        raise PublishedError(f"{src} is not a published ELM checkpoint: {', '.join(missing)} missing "
                             f"(expected {', '.join(REQUIRED_FILES)})")
    args = _read_json(src / MODEL_CONFIG)
    state = _read_state(src / STATE_FILE)
    model = model_from_release(args, state, neuronio_layout(), where=(str(src / MODEL_CONFIG), str(src / STATE_FILE)))
    present = [name for name in (*REQUIRED_FILES, *OPTIONAL_FILES) if (src / name).is_file()]
    optional = {name: _read_json(src / name) if (src / name).is_file() else None for name in OPTIONAL_FILES}
    return {"model": model, "args": args, "eval_results": _read_json(src / EVAL_RESULTS),
            "train_config": optional[TRAIN_CONFIG], "model_stats": optional[MODEL_STATS],
            "sha256": {name: file_sha256(src / name) for name in present}}


def import_elmneuron(src: str | Path, out: str | Path) -> Path:
    """Write the run directory ``out`` (absent or empty) for the checkpoint folder ``src`` (see the module
    docstring); it is written beside ``out`` under a temporary name and renamed into place whole.

    Raises:
        PublishedError: one line, for a checkpoint that cannot be read or an ``out`` that holds something.
    """
    src, out = Path(src), Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PublishedError(f"{out} already exists and is not empty; choose another --out")
    if not out.resolve().parent.is_dir():
        raise PublishedError(f"cannot write {out}: folder {out.resolve().parent} does not exist")
    read = read_checkpoint_dir(src)
    model = read["model"]
    kind, model_config = model_kind(model), dataclasses.asdict(model.config)
    config = {"model": kind, "model_config": model_config,
              "published": {"model_config": read["args"], "train_config": read["train_config"]}}
    burn_in = (read["train_config"] or {}).get("burn_in_time")
    if burn_in is not None:
        config["burn_in_ms"] = int(burn_in)
    metrics = {
        "status": IMPORTED_STATUS, "model": kind, "num_params": num_params(model),
        "published": {"reference": REFERENCE, **published_metrics(read["eval_results"]),
                      "as_published": read["eval_results"]},
        "model_stats": read["model_stats"],
        "provenance": {**provenance(), "import": {"source": str(src.resolve()), "sha256": read["sha256"]}},
    }
    tmp = temporary_sibling(out.resolve())
    try:
        tmp.mkdir()
        torch.save(model_file(kind, model_config, model.state_dict(), model.layout), tmp / MODEL_FILE)
        for name, obj in ((CONFIG_FILE, config), (METRICS_FILE, metrics), (HISTORY_FILE, [])):
            (tmp / name).write_text(json.dumps(obj, indent=2) + "\n")
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
