"""The learning curve: test scores of each model kind against the hours of simulated data it was trained on.

Every run directory under a root is scored on one test store with :func:`analysis.evaluate.evaluate` (one
burn-in for all: the longest the runs were trained with) and placed at the simulated duration of its training
store (simulations × their length, from the store record the run keeps). Runs are grouped into lines by model
kind and parameter count. A reference run (a published checkpoint imported with ``python -m surrogate
import-elmneuron``, or any run directory) is scored on the same split and drawn as a horizontal line.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from analysis.evaluate import AnalysisError, evaluate, load_arrays, open_run, open_store, run_burn_in
from analysis.plots import _colors, _save, _style
from conventions.atomic import write_text_atomic
from surrogate.run import CONFIG_FILE, MODEL_FILE, Run

TABLE_FILE = "learning_curve.md"
JSON_FILE = "learning_curve.json"
FIGURE_FILE = "learning_curve.png"
MS_PER_HOUR = 3.6e6
MAX_EXTRAPOLATED_H = 1e6  # h of training data; a power-law extrapolation further than this says nothing
#: (point key, panel title) of the figure's panels
SCORES = (("spike_auc", "test spike ROC AUC"), ("tpr_1pct", "test TPR at 1 % FPR"),
          ("rmse_mV", "test soma RMSE (mV)"))


def find_runs(root: str | Path) -> list[Path]:
    """Run directories (a config.json and a model.pt) at or below ``root``, sorted by path.

    Raises:
        AnalysisError: ``root`` is not a directory or holds no run directory.
    """
    root = Path(root)
    if not root.is_dir():
        raise AnalysisError(f"run root {root} is not a directory")
    runs = sorted(p.parent for p in root.rglob(CONFIG_FILE) if (p.parent / MODEL_FILE).is_file())
    if not runs:
        raise AnalysisError(f"no run directories (config.json + model.pt) under {root}")
    return runs


def training_data(run: Run) -> tuple[int, float]:
    """(simulations, hours of simulated activity) of the store ``run`` was trained on.

    Raises:
        AnalysisError: the run records no size of its training store.
    """
    record = run.data_provenance.get("train", {})
    if not isinstance(record.get("n_sims"), int) or not isinstance(record.get("n_time"), int):
        raise AnalysisError(f"run {run.path} records no size of its training store (metrics.json provenance.data"
                            ".train n_sims, n_time)")
    return record["n_sims"], record["n_sims"] * record["n_time"] / MS_PER_HOUR


def _point(result: dict, run: Run) -> dict:
    return {"model": f"{result['model']} ({result['params']:,} params)", "kind": result["model"],
            "params": result["params"], "spike_auc": result["spike_auc"],
            "tpr_1pct": result["tpr_at_fpr"]["1.00%"], "rmse_mV": result["rmse_mV"], "run": str(run.path),
            "run_status": result["run_status"], "train_wall_s": run.metrics.get("wall_s")}


def curve_points(run_dirs: list[str | Path], store_path: str | Path, valid_path: str | Path | None = None,
                 reference: str | Path | None = None, burn_in_ms: int | None = None) -> dict:
    """Score every run (and ``reference``) on ``store_path``.

    Returns:
        {"store", "burn_in_ms", "points": [one dict per run, sorted by model then hours: model (label), kind,
        params, train_sims, train_hours, spike_auc, tpr_1pct, rmse_mV, run, run_status, train_wall_s],
        "reference": the reference's dict (no train_* keys) or None}.
    Raises:
        AnalysisError: unreadable runs or stores, or two runs of one model on the same amount of data.
    """
    runs = [open_run(d) for d in run_dirs]
    if not runs:
        raise AnalysisError("no runs for a learning curve")
    store = open_store(store_path)
    valid = open_store(valid_path) if valid_path is not None else None
    data = load_arrays(store)
    valid_data = load_arrays(valid) if valid is not None else None
    burn_in_ms = max(run_burn_in(r) for r in runs) if burn_in_ms is None else burn_in_ms

    def score(run: Run) -> dict:
        return _point(evaluate(run, store, burn_in_ms, valid, data=data, valid_data=valid_data).metrics, run)

    points, seen = [], {}
    for run in runs:
        n_sims, hours = training_data(run)
        point = {**score(run), "train_sims": n_sims, "train_hours": hours}
        key = (point["model"], n_sims)
        if key in seen:
            raise AnalysisError(f"runs {seen[key]} and {run.path} both train {point['model']} on {n_sims} "
                                "simulations; give a root that holds one run per model and size")
        seen[key] = run.path
        points.append(point)
    points.sort(key=lambda p: (p["model"], p["train_hours"]))
    ref = score(open_run(reference)) if reference is not None else None
    return {"store": str(store.path), "burn_in_ms": burn_in_ms, "points": points, "reference": ref}


def _fmt(value, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def curve_table(curve: dict) -> str:
    """The Markdown table: one row per run, and the reference's row last."""
    rows = ["| model | training data (h) | simulations | test AUC | TPR @ 1 % FPR | RMSE (mV) | training wall (h) |",
            "|---|---|---|---|---|---|---|"]
    for p in curve["points"]:
        wall = None if p["train_wall_s"] is None else p["train_wall_s"] / 3600
        rows.append(f"| {p['model']} | {p['train_hours']:.3g} | {p['train_sims']:,} | {_fmt(p['spike_auc'], 4)} "
                    f"| {_fmt(p['tpr_1pct'], 3)} | {_fmt(p['rmse_mV'], 3)} | {_fmt(wall, 2)} |")
    ref = curve["reference"]
    if ref is not None:
        rows.append(f"| reference: {ref['model']}, `{Path(ref['run']).name}` | – | – | {_fmt(ref['spike_auc'], 4)} "
                    f"| {_fmt(ref['tpr_1pct'], 3)} | {_fmt(ref['rmse_mV'], 3)} | – |")
    return "\n".join(rows)


def plot_learning_curve(curve: dict, path: str | Path, target_auc: float | None = None) -> Path:
    """Three panels (AUC, TPR at 1 % FPR, RMSE) against hours of training data (log x), one line per model, the
    reference as a dashed horizontal line and ``target_auc`` (when no reference is given) as a dotted one."""
    _style()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    models = list(dict.fromkeys(p["model"] for p in curve["points"]))
    colors = _colors(models)
    ref = curve["reference"]
    # the sizes themselves as ticks: a log axis spanning under a decade labels its minor ticks on top of each other
    hours = sorted({p["train_hours"] for p in curve["points"]})
    for ax, (key, label) in zip(axes, SCORES):
        for model in models:
            line = [(p["train_hours"], p[key]) for p in curve["points"] if p["model"] == model and p[key] is not None]
            if line:
                ax.plot(*zip(*line), "o-", color=colors[model], label=model)
        if ref is not None and ref[key] is not None:
            ax.axhline(ref[key], color="grey", ls="--", lw=1.2, label=f"reference: {Path(ref['run']).name}")
        elif ref is None and target_auc is not None and key == "spike_auc":
            ax.axhline(target_auc, color="grey", ls=":", lw=1.2, label=f"target AUC {target_auc:g}")
        ax.set(xscale="log", xlabel="simulated training data (h, log)", title=label)
        ax.xaxis.set_major_locator(FixedLocator(hours))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda h, _: f"{h:g}"))
        ax.xaxis.set_minor_locator(NullLocator())
    handles = {lab: h for ax in axes for h, lab in zip(*ax.get_legend_handles_labels())}
    fig.legend(handles.values(), handles.keys(), loc="lower center", bbox_to_anchor=(0.5, 1.0), fontsize=8,
               ncol=min(len(handles), 4), frameon=False)
    return _save(fig, path)


def write_learning_curve(root: str | Path, store_path: str | Path, out_dir: str | Path,
                         valid_path: str | Path | None = None, reference: str | Path | None = None,
                         burn_in_ms: int | None = None, target_auc: float | None = None) -> Path:
    """Score the runs under ``root`` (:func:`find_runs`) and write ``out_dir``/learning_curve.{md,json,png}
    (each atomically; nothing is written when scoring fails). Returns the Markdown file's path.

    Each model short of the reference run's test AUC, or of ``target_auc`` where no reference run is given (e.g.
    a published score whose checkpoint is not at hand), gets a line extrapolating the data it needs."""
    curve = curve_points(find_runs(root), store_path, valid_path, reference, burn_in_ms)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise AnalysisError(f"--out {out_dir} exists and is not a directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    figure = plot_learning_curve(curve, out_dir / FIGURE_FILE, target_auc)
    write_text_atomic(out_dir / JSON_FILE, json.dumps(curve, indent=2) + "\n")
    text = ["# Learning curve", "",
            f"Every run under `{root}` scored on the whole simulations of `{curve['store']}` after a "
            f"{curve['burn_in_ms']} ms burn-in; training data in hours of simulated activity.", "",
            curve_table(curve), "", f"![learning curve]({figure.name})", ""]
    text += _extrapolations(curve, target_auc)
    write_text_atomic(out_dir / TABLE_FILE, "\n".join(text))
    return out_dir / TABLE_FILE


def _extrapolations(curve: dict, target_auc: float | None = None) -> list[str]:
    """Lines saying, per model below the reference's AUC (else ``target_auc``), how much data a power law through
    its curve needs."""
    ref = curve["reference"]
    if ref is not None and ref["spike_auc"] is not None:
        target, name = ref["spike_auc"], "the reference's"
    elif target_auc is not None:
        target, name = target_auc, "the target"
    else:
        return []
    lines = []
    for model in dict.fromkeys(p["model"] for p in curve["points"]):
        points = [p for p in curve["points"] if p["model"] == model]
        best = points[-1]["spike_auc"]
        if best is None or best >= target:
            continue
        hours = hours_to_reach(points, "spike_auc", target)
        if hours is None:
            need = f"its curve does not extrapolate to it within {MAX_EXTRAPOLATED_H:.0e} h of data"
        else:
            need = f"a power law through its last points reaches it at ~{hours:.3g} h of training data"
        lines.append(f"- {model}: AUC {best:.4f} at {points[-1]['train_hours']:.3g} h, "
                     f"{target - best:.4f} below {name} {target:.4f}; {need}.")
    return lines + ([""] if lines else [])


def hours_to_reach(points: list[dict], key: str, target: float) -> float | None:
    """Hours of data at which a power-law fit of (1 − score) against hours (log–log, the last three points of
    one model) reaches ``1 − target``; None with fewer than two usable points, a curve that does not improve, or
    an answer beyond ``MAX_EXTRAPOLATED_H``.

    Used to extrapolate how much data a model needs to reach a published AUC.
    """
    usable = [(p["train_hours"], p[key]) for p in points if p[key] is not None and p[key] < 1][-3:]
    if len(usable) < 2:
        return None
    hours, score = np.array(usable).T
    slope, intercept = np.polyfit(np.log(hours), np.log(1 - score), 1)
    if slope > -1e-3:  # flat within rounding: no finite amount of data reaches the target
        return None
    log_hours = (np.log(1 - target) - intercept) / slope
    # a shallow curve extrapolates to astronomically many hours (or past float range): not a usable estimate
    return float(np.exp(log_hours)) if log_hours <= np.log(MAX_EXTRAPOLATED_H) else None
