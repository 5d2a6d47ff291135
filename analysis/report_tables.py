"""The report's Markdown tables and the one-line notes about what a run's numbers mean."""

from __future__ import annotations

#: spike AUC below this (chance is 0.5) means a run has not learned to predict spikes
LEARNED_AUC = 0.6


def _fmt(value, digits: int = 3, percent: bool = False) -> str:
    if value is None:
        return "n/a"
    if percent:
        return f"{100 * value:.1f} %"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}f}"


def _fmt_speed(speed: dict) -> tuple[str, str]:
    rate = f"{speed['simulated_s_per_wall_s']:.3g}"
    ratio = "n/a" if speed["speedup_vs_neuron"] is None else f"{speed['speedup_vs_neuron']:.3g}×"
    return rate, ratio


def run_label(name: str, result: dict) -> str:
    """A run's name in tables, marked when it holds published weights (an imported checkpoint)."""
    return f"{name} (published)" if result.get("published") else name


def metrics_table(names: list[str], results: list[dict]) -> str:
    """The Markdown table of the main metrics, one row per run (imported checkpoints labelled published)."""
    header = ("| run | model | params | MACs/ms | spike AUC | TPR @ 0.25 % FPR | TPR @ 1 % FPR | RMSE (mV) | "
              "MAE (mV) | expl. var. | Γ (±2 ms) | precision | recall | sim s / wall s | vs NEURON |")
    rows = [header, "|" + "---|" * (header.count("|") - 1)]
    for name, r in zip(names, results):
        timing = r["spike_timing"]
        rate, ratio = _fmt_speed(r["speed"])
        rows.append(
            f"| {run_label(name, r)} | {r['model']} | {_fmt(r['params'])} | {_fmt(r['macs_per_ms'])} | {_fmt(r['spike_auc'], 4)} "
            f"| {_fmt(r['tpr_at_fpr']['0.25%'], percent=True)} | {_fmt(r['tpr_at_fpr']['1.00%'], percent=True)} "
            f"| {_fmt(r['rmse_mV'])} | {_fmt(r['mae_mV'])} | {_fmt(r['explained_variance'])} "
            f"| {_fmt(timing['coincidence_factor'])} | {_fmt(timing['precision'])} | {_fmt(timing['recall'])} "
            f"| {rate} | {ratio} |"
        )
    return "\n".join(rows)


PUBLISHED_ROWS = (("spike AUC", ("spike_auc",), 4, False), ("TPR @ 0.25 % FPR", ("tpr_at_fpr", "0.25%"), 3, True),
                  ("TPR @ 1 % FPR", ("tpr_at_fpr", "1.00%"), 3, True), ("RMSE (mV)", ("rmse_mV",), 3, False),
                  ("MAE (mV)", ("mae_mV",), 3, False), ("expl. var.", ("explained_variance",), 3, False))


def lookup(record: dict | None, keys: tuple[str, ...]):
    """``record[k0][k1]…``, or None where a level is missing."""
    for key in keys:
        record = record.get(key) if isinstance(record, dict) else None
    return record


def published_table(names: list[str], results: list[dict]) -> str | None:
    """For the imported checkpoints among the runs: each metric as published (the authors' test split of the
    original NeuronIO data) beside the one measured here; None when no run is an imported checkpoint."""
    rows = [(n, r) for n, r in zip(names, results) if r.get("published")]
    if not rows:
        return None
    header = "| metric | " + " | ".join(f"{n}: published | {n}: here" for n, _ in rows) + " |"
    lines = [header, "|" + "---|" * (1 + 2 * len(rows))]
    for label, keys, digits, percent in PUBLISHED_ROWS:
        cells = [f"{_fmt(lookup(r['published'].get('test'), keys), digits, percent)} | "
                 f"{_fmt(lookup(r, keys), digits, percent)}" for _, r in rows]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def learning_notes(names: list[str], results: list[dict]) -> list[str]:
    """One line per run that has not learned what it is scored on: spike AUC near chance, or a voltage prediction
    that explains no variance, so that its row is not read as a measurement of the architecture."""
    notes = []
    for name, r in zip(names, results):
        auc, ev = r.get("spike_auc"), r.get("explained_variance")
        failed = []
        if auc is not None and auc < LEARNED_AUC:
            failed.append(f"spikes (AUC {auc:.3f}, chance 0.5)")
        if ev is not None and ev <= 0:
            failed.append(f"the somatic voltage (explained variance {ev:.3f})")
        if failed:
            notes.append(f"- {run_label(name, r)} has not learned to predict {' or '.join(failed)} with this much data "
                         f"and training ({r.get('epochs_trained')} epochs): its row says so little about the "
                         "architecture.")
    return notes
