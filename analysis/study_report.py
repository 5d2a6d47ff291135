"""What a quality study (:mod:`analysis.study`) reports: its costs, the final models' scores on original NeuronIO
data, and OUT/study.md + OUT/study.json beside the learning curve."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from analysis import cost, curves
from analysis.evaluate import AnalysisError, evaluate_run
from biophys.dataset import NeuronIOStore
from conventions.atomic import write_text_atomic

STUDY_MD = "study.md"
STUDY_JSON = "study.json"


def simulation_cost(stores: dict[str, Path]) -> dict:
    """{split: {"sims", "simulated_h", "cpu_h"}} from each store's timing provenance (cpu_h None if absent)."""
    out = {}
    for split, path in stores.items():
        store = NeuronIOStore(path)
        cpu_s = cost.simulation_cpu_s(store.provenance)
        out[split] = {"sims": store.n_sims, "simulated_h": store.n_sims * store.n_time / curves.MS_PER_HOUR,
                      "cpu_h": None if cpu_s is None else cpu_s / 3600}
    return out


def import_neuronio(directory: Path, out: Path) -> Path:
    """The store of the original pickles (``*.p``, ``*.p.gz``) in ``directory``, imported once."""
    if out.exists():
        return out
    files = sorted(p for p in directory.iterdir() if p.name.endswith((".p", ".p.gz")))
    if not files:
        raise AnalysisError(f"no NeuronIO pickles (*.p, *.p.gz) in {directory}")
    command = [sys.executable, "-m", "biophys", "import-neuronio", *map(str, files), "--out", str(out)]
    print(f"$ {' '.join(command)}", flush=True)
    if subprocess.run(command).returncode != 0:
        raise AnalysisError(f"importing the NeuronIO pickles of {directory} failed (command above)")
    return out


def score_on(runs: dict[str, Path], store: Path) -> dict:
    """{name: {spike_auc, tpr_1pct, rmse_mV} or {error}} of each run on ``store`` (threshold-free scores)."""
    scores = {}
    for name, run in runs.items():
        try:
            r = evaluate_run(run, store)
        except AnalysisError as exc:
            scores[name] = {"error": str(exc)}
            continue
        scores[name] = {"spike_auc": r["spike_auc"], "tpr_1pct": r["tpr_at_fpr"]["1.00%"], "rmse_mV": r["rmse_mV"]}
    return scores


def _h(value) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _score(value, digits) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def markdown(record: dict, curve_md: Path, report_md: Path | None) -> str:
    """OUT/study.md's text from the study's record."""
    cfg = record["config"]
    lines = ["# Quality study", "", f"Command: `{record['command']}`", "",
             f"Cell {cfg['cell']} (morphology {cfg['morphology']}), simulations of {cfg['duration_ms']} ms; seeds "
             + ", ".join(f"{k} {v}" for k, v in cfg["seeds"].items()) + f"; model seed {cfg['seed']}; batches of "
             f"8 windows × 500 ms; wall budget {cfg['wall_s_all']:.0f} s per model on all the data, proportional "
             f"to the data, at least {cfg['wall_s_min']:.0f} s.", "",
             f"Learning curve: [{curve_md.name}]({curve_md.parent.name}/{curve_md.name})"
             + (f"; full report of the models trained on all data: [report]({report_md.parent.name}/"
                f"{report_md.name})" if report_md else ""), "",
             curve_md.read_text().split("\n", 2)[2].replace("](learning_curve.png)",
                                                           f"]({curve_md.parent.name}/learning_curve.png)"),
             "## Cost", "", "| split | simulations | simulated (h) | simulation CPU-hours |", "|---|---|---|---|"]
    for split, c in record["simulation"].items():
        lines.append(f"| {split} | {c['sims']:,} | {c['simulated_h']:.2f} | {_h(c['cpu_h'])} |")
    lines += ["", "| model | learning rate | step (s) | validation (s) | training wall per run (h) | "
              "published schedule on this CPU (h) |", "|---|---|---|---|---|---|"]
    for name, m in record["training"]["models"].items():
        walls = ", ".join(f"{k}: {_h(r.get('wall_s') and r['wall_s'] / 3600)}" if "error" not in r else f"{k}: diverged"
                          for k, r in m["runs"].items())
        lines.append(f"| {name} | {m['lr']:g} | {m['probe']['step_s']:.3f} | {m['probe']['valid_s']:.1f} | "
                     f"{walls} | {m['published_schedule_h']:.1f} |")
    lines += ["", "Training wall per run: simulations → hours. The published schedule is 30 epochs × 11,400 batches "
              "of 8 × 500 ms windows (Spieler et al. 2023) at the probe's measured step time, validations not "
              "counted."]
    if record.get("neuronio"):
        lines += ["", "## On original NeuronIO data", "", f"Store: `{record['neuronio']['store']}` (the models "
                  "trained on all the data; threshold-free scores)", "", "| model | AUC | TPR @ 1 % FPR | RMSE (mV) |",
                  "|---|---|---|---|"]
        for name, s in record["neuronio"]["scores"].items():
            lines.append(f"| {name} | {s['error']} | | |" if "error" in s else
                         f"| {name} | {_score(s['spike_auc'], 4)} | {_score(s['tpr_1pct'], 3)} | "
                         f"{_score(s['rmse_mV'], 3)} |")
    return "\n".join(lines) + "\n"


def write_study(root: Path, record: dict, curve_md: Path, report_md: Path | None) -> Path:
    write_text_atomic(root / STUDY_JSON, json.dumps(record, indent=2) + "\n")
    write_text_atomic(root / STUDY_MD, markdown(record, curve_md, report_md))
    return root / STUDY_MD


#: What a run directory holds that a published copy leaves out: the optimizer state for resuming (~4× the weights).
UNPUBLISHED = ("checkpoint.pt",)


def publish(final_runs: dict[str, Path], root: Path, dest: Path) -> list[Path]:
    """Copy what a study's users need into ``dest`` (e.g. ``results/quality``): each model's run on all of the
    data (without :data:`UNPUBLISHED` files), the learning curve, study.md and, when the study wrote one, the report
    of the final models that study.md links to. Each item is copied beside its final name and then renamed into
    place, so an interrupted copy is never taken for a finished one.

    Returns:
        The paths written under ``dest``.
    """
    items = {run.name: run for run in final_runs.values()}
    items.update({"learning_curve": root / "learning_curve", STUDY_MD: root / STUDY_MD})
    if (root / "report").is_dir():
        items["report"] = root / "report"
    missing = [str(p) for p in items.values() if not p.exists()]
    if missing:
        raise AnalysisError(f"nothing to publish at {', '.join(missing)}")
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for name, source in items.items():
        target, partial = dest / name, dest / f".{name}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        if source.is_dir():
            shutil.copytree(source, partial, ignore=shutil.ignore_patterns(*UNPUBLISHED))
        else:
            shutil.copy2(source, partial)
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        partial.rename(target)
        written.append(target)
    return written
