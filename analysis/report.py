"""The comparison report: every run scored on one store, a Markdown table, figures and provenance.

``write_report`` evaluates all runs before it writes anything, so bad inputs leave ``out_dir`` untouched. The
report (``report.md``, ``metrics.json``, ``figures/``) is then written whole into a temporary sibling directory
and renamed into place, so no figure of an earlier report survives beside a new one; other files in ``out_dir``
(stores, run directories) are left alone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np

from analysis import cost, learned, metrics, plots
from analysis.report_tables import learning_notes, lookup, metrics_table, published_table
from analysis.evaluate import (AnalysisError, Evaluation, check_layout, evaluate, load_arrays, open_run,
                               open_store, run_burn_in)
from biophys.dataset import NeuronIOStore
from conventions.atomic import temporary_sibling
from conventions.provenance import git_commit
from conventions.signals import bin_centre_ms, spikes_in_bins
from surrogate.data import NeuronIOArrays

FIGURES_DIR = "figures"
REPORT_FILE = "report.md"
SUMMARY_FILE = "metrics.json"
TRACE_MS = 2000  # longest stretch of one simulation shown in the voltage-trace figure


def _unique_names(evaluations: list[Evaluation]) -> list[str]:
    """Run directory names, made unique with a suffix where two runs share one."""
    names, seen = [], {}
    for ev in evaluations:
        name = ev.metrics["name"]
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return names


def _file_stem(name: str) -> str:
    """A run name made safe for file names and Markdown links."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _roc_figure(names: list[str], evaluations: list[Evaluation], fig_dir: Path) -> tuple[str, Path] | None:
    curves = {n: metrics.roc(ev.predictions["spike_true"], ev.predictions["spike_prob"])
              for n, ev in zip(names, evaluations) if ev.predictions["spike_true"].any()}
    if not curves:
        return None
    aucs = {n: ev.metrics["spike_auc"] for n, ev in zip(names, evaluations)}
    return ("ROC curves of output spike prediction (log false-positive rate)",
            plots.plot_roc(curves, fig_dir / "roc.png", aucs))


def _trace_figure(names: list[str], evaluations: list[Evaluation], data: NeuronIOArrays, burn_in_ms: int,
                  fig_dir: Path) -> tuple[str, Path]:
    """Up to TRACE_MS after the burn-in of the simulation with the most output spikes there."""
    sim = int(np.argmax(data.spike_labels[:, burn_in_ms:].sum(axis=1)))
    window = slice(burn_in_ms, min(data.n_time, burn_in_ms + TRACE_MS))
    rows = slice(0, window.stop - burn_in_ms)  # prediction arrays start at the burn-in
    true_spikes = spikes_in_bins(data.spike_times_ms[sim], window.start, window.stop)
    voltages, spikes = {}, {}
    for n, ev in zip(names, evaluations):
        voltages[n] = ev.predictions["soma_pred_mv"][sim, rows]
        threshold = ev.metrics["spike_timing"]["threshold"]
        if threshold is not None:  # no usable threshold: no predicted spikes to mark
            spikes[n] = window.start + bin_centre_ms(metrics.predicted_spike_bins(
                ev.predictions["spike_prob"][sim, rows], threshold))
    sim_id = int(data.sim_ids[sim])
    path = plots.plot_traces(np.arange(window.start, window.stop, dtype=np.float64), data.soma_mv[sim, window],
                             voltages, data.spikes[sim, window], data.signs, true_spikes, spikes,
                             fig_dir / "traces.png", title=f"Simulation {sim_id}: somatic voltage and input")
    return (f"Somatic voltage of simulation {sim_id}: NEURON vs each surrogate, above the input raster "
            "(predicted spikes at each model's chosen threshold)", path)


def _elm_figures(names: list[str], evaluations: list[Evaluation], store: NeuronIOStore, data: NeuronIOArrays,
                 fig_dir: Path) -> list[tuple[str, Path]]:
    elms = [(n, ev.run) for n, ev in zip(names, evaluations) if learned.is_elm(ev.run.model)]
    if not elms:
        return []
    figures = [("ELM memory time constants τ_m (filled: used by the model; hollow: initial log-spaced values)",
                plots.plot_tau_m({n: learned.tau_m_ms(r.model) for n, r in elms}, fig_dir / "tau_m.png",
                                 {n: learned.initial_tau_m_ms(r.model) for n, r in elms}))]
    synapses = store.synapses()
    for n, run in elms:
        table = learned.weights_by_synapse(run.model, synapses, check_layout(run, data, store))
        exc = table[table["kind"] == "exc"]
        stem = _file_stem(n)
        figures.append((f"{n}: effective synaptic weight per input (w_s averaged over the branch slots that read "
                        "it, so routing multiplicity does not show as bands) vs path distance from the soma",
                        plots.plot_weight_vs_distance(table["distance_um"].to_numpy(), table["w_s"].to_numpy(),
                                                      table["kind"].to_numpy(), fig_dir / f"weights_distance_{stem}.png",
                                                      title=f"{n}: w_s vs distance from soma")))
        figures.append((f"{n}: excitatory synapse positions (x–y projection) coloured by effective weight (w_s "
                        "averaged over the input's branch slots)",
                        plots.plot_morphology_weights(exc["pos_x_um"].to_numpy(), exc["pos_y_um"].to_numpy(),
                                                      exc["w_s"].to_numpy(), fig_dir / f"morphology_{stem}.png",
                                                      title=f"{n}: excitatory w_s on the morphology")))
    return figures


def _tradeoff_point(name: str, result: dict) -> dict:
    """One run's point of :func:`analysis.plots.plot_cost_tradeoff`, with its published test metrics if any."""
    published = None
    if result.get("published"):
        published = {"auc": lookup(result["published"], ("test", "spike_auc")),
                     "rmse_mV": lookup(result["published"], ("test", "rmse_mV"))}
    return {"name": name, "params": result["params"], "auc": result["spike_auc"], "rmse_mV": result["rmse_mV"],
            "published": published}


def _figures(names: list[str], evaluations: list[Evaluation], store: NeuronIOStore, data: NeuronIOArrays,
             burn_in_ms: int, fig_dir: Path) -> tuple[list[tuple[str, Path]], list[str]]:
    """Write every figure that applies; return ([(caption, path)], [notes on skipped figures])."""
    figures, notes = [], []
    roc = _roc_figure(names, evaluations, fig_dir)
    if roc is None:
        notes.append("ROC curves: the evaluated store holds no output spikes after the burn-in.")
    else:
        figures.append(roc)
    figures.append(_trace_figure(names, evaluations, data, burn_in_ms, fig_dir))
    points = [_tradeoff_point(n, ev.metrics) for n, ev in zip(names, evaluations)]
    figures.append(("Spike AUC and soma RMSE vs parameter count, beside the published results on the original "
                    "NeuronIO data (another cell and dataset: a reference, not a target)",
                    plots.plot_cost_tradeoff(points, fig_dir / "tradeoff.png")))
    histories = {n: ev.run.history for n, ev in zip(names, evaluations) if ev.run.history}
    if histories:
        figures.append(("Training curves (per validation)",
                        plots.plot_training_curves(histories, fig_dir / "training.png")))
    else:
        notes.append("Training curves: no run recorded a training history.")
    elm_figures = _elm_figures(names, evaluations, store, data, fig_dir)
    if not elm_figures:
        notes.append("τ_m and learned synaptic weights: no ELM among the runs.")
    return figures + elm_figures, notes


def _markdown(names: list[str], results: list[dict], figures: list[tuple[str, Path]], notes: list[str],
              root: Path, store: NeuronIOStore, valid: NeuronIOStore | None, burn_in_ms: int, commit: str) -> str:
    """report.md's text; figure links are relative to ``root``, the folder report.md is written into."""
    first = results[0]
    timing_sources = sorted({r["spike_timing"]["threshold_source"] for r in results})
    speed_notes = sorted({r["speed"]["speedup_reason"] for r in results if r["speed"]["speedup_reason"]})
    cells = sorted({r["compatibility"]["cell"] for r in results})
    lines = [
        "# Surrogate comparison report",
        "",
        f"{len(results)} run(s) scored on {first['n_sims']} whole held-out simulations of {first['sim_ms']} ms "
        f"from `{store.path}`, each after one {burn_in_ms} ms burn-in ({first['scored_ms'] / 1000:.1f} s scored).",
        "",
    ]
    unfinished = [f"> **Unfinished run:** {r['unfinished']}." for r in results if r["unfinished"]]
    lines += (unfinished + [""]) if unfinished else []
    lines += [
        "## Metrics",
        "",
        metrics_table(names, results),
        "",
        "- Spike AUC and TPR at fixed FPR are over all 1 ms bins after the burn-in; TPR between ROC vertices is "
        "interpolated linearly (the operating point of mixing the two neighbouring thresholds).",
        "- RMSE, MAE and explained variance compare the predicted soma voltage, unrescaled, with the simulated "
        "voltage clipped at −55 mV.",
        f"- Γ, precision and recall: predicted spikes are the peaks of supra-threshold runs of spike probability, "
        f"matched one-to-one within ±2 ms (coincidence factor of Kistler et al. 1997). Threshold chosen on: "
        f"{'; '.join(timing_sources)}.",
        "- MACs/ms: multiply-adds per simulated millisecond (ELM: from the equations; others: forward hooks). "
        "Speed: simulated seconds per wall-clock second of batched CPU inference"
        f" over {first['speed']['n_sims']} whole simulations in batches of {first['speed']['batch_size']}"
        f" ({first['speed']['torch_threads']} torch thread(s); load average {first['speed'].get('load_average', 'n/a')}"
        f" on {os.cpu_count()} CPUs before the timing).",
    ]
    lines += [f"- vs NEURON: n/a because {reason}." for reason in speed_notes]
    lines += learning_notes(names, results)
    lines += [f"- Γ, precision and recall of {n}: not reported, because {r['spike_timing']['threshold_unsupported']}."
              for n, r in zip(names, results) if r["spike_timing"].get("threshold_unsupported")]
    published = published_table(names, results)
    if published is not None:
        lines += ["", "## Published checkpoints", "",
                  "Runs marked (published) hold the weights of a published checkpoint (Spieler et al. 2023, imported "
                  "with `python -m surrogate import-elmneuron`), trained on the original NeuronIO data. Their "
                  "metrics as published (the authors' test split) beside the ones measured here:", "", published]
    lines += ["", f"Published results on the {plots.REFERENCE_LABEL} — another cell and dataset, so a reference "
              "point, not a target:", "", "| model | params | spike AUC | RMSE (mV) |", "|---|---|---|---|"]
    lines += [f"| {name} | {plots.format_count(params)} | {auc} | {'–' if rmse is None else rmse} |"
              for name, params, auc, rmse in plots.REFERENCE_RESULTS]
    lines += ["", "## Figures", ""]
    for caption, path in figures:
        lines += [f"**{caption}**", "", f"![{path.stem}]({path.relative_to(root).as_posix()})", ""]
    if notes:
        lines += ["Figures skipped:", ""] + [f"- {note}" for note in notes] + [""]
    lines += [
        "## Provenance",
        "",
        f"- Data store: `{store.path}` (cell: {_cell_name(store.provenance)}; made at git commit "
        f"{store.provenance.get('git_commit', 'unknown')})",
        f"- Validation store: `{valid.path}`" if valid is not None else "- Validation store: none",
        "- Runs: " + ", ".join(f"`{r['run']}`" for r in results),
        f"- Cell check (training data vs store): {'; '.join(cells)}",
        f"- Report made at git commit {commit}",
        "- All numbers: `metrics.json` beside this file.",
        "",
    ]
    return "\n".join(lines)


def _cell_name(provenance: dict) -> str:
    cell = provenance.get("cell")
    if isinstance(cell, dict):
        return str(cell.get("name", "unnamed"))
    return "unknown" if cell is None else str(cell)


def _install(tmp: Path, out_dir: Path) -> None:
    """Move the report written in ``tmp`` to ``out_dir``: the whole folder when ``out_dir`` does not exist, else
    its figures folder swapped in by two renames, then metrics.json and report.md (last: it links the figures)."""
    if not out_dir.exists():
        os.replace(tmp, out_dir)
        return
    figures, old = out_dir / FIGURES_DIR, temporary_sibling(out_dir / FIGURES_DIR)
    if figures.exists():
        os.replace(figures, old)
    os.replace(tmp / FIGURES_DIR, figures)
    for name in (SUMMARY_FILE, REPORT_FILE):
        os.replace(tmp / name, out_dir / name)
    if old.is_dir():
        shutil.rmtree(old)
    else:
        old.unlink(missing_ok=True)


def write_report(run_dirs: list[str | Path], store_path: str | Path, out_dir: str | Path,
                 valid_store: str | Path | None = None, burn_in_ms: int | None = None,
                 speed_batch: int = cost.SPEED_BATCH) -> Path:
    """Evaluate every run on ``store_path`` and write ``metrics.json``, ``report.md`` and ``figures/*.png``.

    ``burn_in_ms`` None takes the longest burn-in the runs were trained with (:func:`run_burn_in`), so every
    run is scored on the same bins and none inside its own burn-in. An unfinished run is scored and marked so.
    ``speed_batch``: simulations per forward pass of the inference-speed measurement.

    Returns:
        the path of report.md.
    Raises:
        AnalysisError: no runs, or any run/store that cannot be read or does not fit (nothing is written then).
    """
    if not run_dirs:
        raise AnalysisError("no runs to report on")
    runs = [open_run(d) for d in run_dirs]
    out_dir = Path(out_dir)
    for run in runs:
        if out_dir.resolve() == run.path.resolve():
            raise AnalysisError(f"--out {out_dir} is run directory {run.path}: the report's {SUMMARY_FILE} would "
                                "replace the run's; write the report elsewhere")
    store = open_store(store_path)
    valid = open_store(valid_store) if valid_store is not None else None
    data = load_arrays(store)
    valid_data = load_arrays(valid) if valid is not None else None
    burn_in_ms = max(run_burn_in(run) for run in runs) if burn_in_ms is None else burn_in_ms
    evaluations = [evaluate(run, store, burn_in_ms, valid, data=data, valid_data=valid_data, speed_batch=speed_batch)
                   for run in runs]
    names = _unique_names(evaluations)
    results = [dict(ev.metrics, name=n) for n, ev in zip(names, evaluations)]

    out_dir.resolve().parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(out_dir.resolve())
    try:
        (tmp / FIGURES_DIR).mkdir(parents=True)
        figures, notes = _figures(names, evaluations, store, data, burn_in_ms, tmp / FIGURES_DIR)
        commit = git_commit()
        summary = {
            "store": str(store.path),
            "valid_store": None if valid is None else str(valid.path),
            "burn_in_ms": burn_in_ms,
            "git_commit": commit,
            "runs": results,
        }
        (tmp / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
        (tmp / REPORT_FILE).write_text(_markdown(names, results, figures, notes, tmp, store, valid, burn_in_ms,
                                                 commit))
        _install(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir / REPORT_FILE
