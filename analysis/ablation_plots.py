"""Figures of the ablation notebooks: each metric as mean ± sd over training seeds (error bars), from a summary of
:func:`analysis.ablation.summarise`. Every function saves the figure as PNG and returns it."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import pandas as pd

from analysis.ablation_variants import FIXED_TAU_VARIANT, PUBLISHED_MEMORY_RESULTS, ROUTING_VARIANTS, layout_rows

PANELS = (("spike_auc", "spike ROC AUC"), ("rmse_mV", "somatic RMSE (mV)"))


def _errorbar(ax, x, rows: pd.DataFrame, metric: str, **style):
    return ax.errorbar(x, rows[f"{metric}_mean"], yerr=rows[f"{metric}_sd"].fillna(0.0), capsize=3, **style)


def _save(fig, path: str | Path, title: str):
    fig.suptitle(title)
    fig.savefig(path, dpi=120)
    return fig


def plot_timescale(summary: pd.DataFrame, path: str | Path, title: str = "Timescale ablation",
                   paper_tau_ms: float = 25.0):
    """AUC and RMSE against τ_max (log axis); the fixed-τ variant as a separate marker at its τ."""
    spread = summary[summary["variant"] != FIXED_TAU_VARIANT].sort_values("tau_m_max_ms")
    fixed = summary[summary["variant"] == FIXED_TAU_VARIANT]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
    for ax, (metric, label) in zip(axes, PANELS):
        _errorbar(ax, spread["tau_m_max_ms"], spread, metric, marker="o", label="τ_m spread over [1 ms, τ_max]")
        if len(fixed):
            _errorbar(ax, fixed["tau_m_max_ms"], fixed, metric, marker="s", linestyle="none", color="C3",
                      label=FIXED_TAU_VARIANT)
        ax.axvline(paper_tau_ms, color="0.6", linestyle="--", label=f"paper: τ_max ≳ {paper_tau_ms:g} ms")
        ax.set(xscale="log", xlabel="τ_max (ms)", ylabel=label)
    axes[0].legend(loc="lower right", fontsize=8)
    return _save(fig, path, title)


def plot_dendritic(summary: pd.DataFrame, path: str | Path, title: str = "Dendritic ablation"):
    """AUC and RMSE of the routing variants (bars, parameters in the labels) and AUC of the branch layouts."""
    routing = summary.set_index("variant").loc[[v for v in ROUTING_VARIANTS if v in set(summary["variant"])]]
    layouts = layout_rows(summary)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4), constrained_layout=True)
    labels = [f"{v.replace(', ', chr(10))}\n({int(p):,} params)" for v, p in zip(routing.index, routing["params"])]
    for ax, (metric, label) in zip(axes[:2], PANELS):
        ax.bar(labels, routing[f"{metric}_mean"], yerr=routing[f"{metric}_sd"].fillna(0.0), capsize=4,
               color=[f"C{i}" for i in range(len(routing))])
        ax.set(ylabel=label)
        ax.tick_params(axis="x", labelsize=8)
    low = (routing["spike_auc_mean"] - routing["spike_auc_sd"].fillna(0.0)).min()
    axes[0].set_ylim(max(0.0, low - 0.05), 1.0)
    _errorbar(axes[2], layouts["layout"], layouts, "spike_auc", marker="o")
    axes[2].set(xlabel="d_tree × d_brch (same synapse budget)", ylabel="spike ROC AUC")
    return _save(fig, path, title)


def plot_memory(summary: pd.DataFrame, path: str | Path, title: str = "Memory size",
                published: pd.DataFrame = PUBLISHED_MEMORY_RESULTS):
    """AUC and RMSE against trainable parameters (log axis), labelled by d_m, beside the published AUCs."""
    rows = summary.sort_values("params")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
    for ax, (metric, label) in zip(axes, PANELS):
        _errorbar(ax, rows["params"], rows, metric, marker="o", label="this toolkit")
        for x, y, d in zip(rows["params"], rows[f"{metric}_mean"], rows["d_memory"]):
            ax.annotate(f"d_m={int(d)}", (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
        ax.set(xscale="log", xlabel="trainable parameters", ylabel=label)
    axes[0].plot(published["params"], published["spike_auc"], "k^--", label="published checkpoints (45×100)")
    axes[0].legend(loc="lower right", fontsize=8)
    return _save(fig, path, title)


def plot_memory_grid(summary: pd.DataFrame, path: str | Path, target_auc: float, cells: Sequence[str],
                     title: str = "Memory and timescale with and without NMDA"):
    """AUC against d_m, one panel per cell, one line per τ_max; the target AUC as a dashed line. A single memory
    unit has τ_m = τ_min whatever τ_max (see :func:`analysis.ablation_variants.memory_timescale_grid`): a d_m = 1
    point starts every line that lacks one of its own."""
    fig, axes = plt.subplots(1, len(cells), figsize=(5 * len(cells), 3.8), constrained_layout=True, sharey=True,
                             squeeze=False)
    for ax, cell in zip(axes[0], cells):
        part = summary[summary["cell"] == cell]
        single = part[part["d_memory"] == 1]
        shared = single["tau_m_max_ms"].nunique() == 1 and (part["d_memory"] > 1).any()
        lines = part[part["d_memory"] > 1] if shared else part
        for i, (tau, rows) in enumerate(lines.groupby("tau_m_max_ms")):
            if not (rows["d_memory"] == 1).any():
                rows = pd.concat([single, rows])
            rows = rows.sort_values("d_memory")
            _errorbar(ax, rows["d_memory"], rows, "spike_auc", marker="o", color=f"C{i}", label=f"τ_max {tau:g} ms")
        ax.axhline(target_auc, color="0.5", linestyle="--", label=f"target AUC {target_auc:g}")
        ax.set(xscale="log", xlabel="memory units d_m", ylabel="spike ROC AUC", title=cell)
    axes[0][0].legend(loc="lower right", fontsize=8)
    return _save(fig, path, title)
