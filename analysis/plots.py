"""Figures of the evaluation, one consistent style, written as PNG files (Agg backend, no display needed).

Every function takes plain arrays and dicts, writes one PNG to ``path`` (parent folders created) and returns the
path. Models are coloured consistently by their order in the dicts passed in; the ground truth is black.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # before pyplot: headless, deterministic file output

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from conventions.atomic import replace_atomically

EXC_COLOR = "#c0392b"
INH_COLOR = "#2166ac"
TRUTH_COLOR = "black"
REFERENCE_LABEL = "original NeuronIO data (Spieler et al. 2023)"
DPI = 120

#: Published results on the original NeuronIO test split (Spieler et al. 2023, "The ELM neuron", ICLR 2024,
#: arXiv 2306.16922; the TCN from Beniaguev, Segev & London 2021, Neuron 109:2727):
#: (model, parameters, spike AUC, soma RMSE in mV or None).
REFERENCE_RESULTS: tuple[tuple[str, float, float, float | None], ...] = (
    ("Branch-ELM d_m 20", 8.1e3, 0.9924, 0.638),
    ("Branch-ELM d_m 15", 6.9e3, 0.9913, 0.652),
    ("Branch-ELM d_m 10", 5.9e3, 0.9890, 0.695),
    ("ELM d_m 20", 52.9e3, 0.9918, 0.643),
    ("LSTM h 50", 265.9e3, 0.9913, 0.641),
    ("TCN (Beniaguev et al. 2021; size approx.)", 10e6, 0.991, None),
    ("LIF / ALIF", 1.3e3, 0.912, 2.29),
)


def _style() -> None:
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")


#: Each model family keeps its colour in every figure (report, learning curve), whatever the order of the runs.
FAMILY_COLORS = ("branch-elm", "tcn", "lstm", "elm")


def _colors(names: Sequence[str]) -> dict[str, tuple]:
    """A colour per name: the first run of a model family (its name starts with one in :data:`FAMILY_COLORS`) gets
    the family's colour, any other run the next unused colour of the palette."""
    palette = sns.color_palette("colorblind", len(FAMILY_COLORS) + len(names))
    colors, used = {}, set()
    for name in names:
        i = next((i for i, family in enumerate(FAMILY_COLORS) if name.lower().startswith(family)), None)
        if i is None or i in used:
            i = next(j for j in range(len(FAMILY_COLORS), len(palette)) if j not in used)
        used.add(i)
        colors[name] = palette[i]
    return colors


def _save(fig: plt.Figure, path: str | Path) -> Path:
    """Write the figure to a temporary sibling and rename it into place, so a PNG is complete or absent."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        replace_atomically(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight"))
    finally:
        plt.close(fig)
    return path


def plot_roc(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], path: str | Path,
             aucs: Mapping[str, float] | None = None) -> Path:
    """ROC curves of spike prediction on a log false-positive-rate axis.

    Args:
        curves: model name → (fpr, tpr), float [n] each.
        aucs: optional model name → AUC, shown in the legend.
    """
    _style()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    colors = _colors(list(curves))
    for name, (fpr, tpr) in curves.items():
        label = name if not aucs or aucs.get(name) is None else f"{name} (AUC {aucs[name]:.4f})"
        keep = fpr > 0  # log axis: the (0, ·) vertices cannot be drawn
        ax.plot(fpr[keep], tpr[keep], color=colors[name], label=label, lw=1.6)  # vertices joined as tpr_at_fpr reads them
    grid = np.logspace(-5, 0, 200)
    ax.plot(grid, grid, color="grey", ls=":", lw=1, label="chance")
    for x in (0.0025, 0.01):
        ax.axvline(x, color="grey", lw=0.8, ls="--")
        ax.text(x, 0.02, f" {x:.2%}", color="grey", fontsize=8, rotation=90, va="bottom")
    ax.set(xscale="log", xlim=(1e-5, 1), ylim=(0, 1.01), xlabel="false-positive rate (per 1 ms bin, log)",
           ylabel="true-positive rate", title="Output spike prediction: ROC")
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def plot_traces(time_ms: np.ndarray, truth_mv: np.ndarray, predictions: Mapping[str, np.ndarray],
                input_spikes: np.ndarray, signs: np.ndarray, true_spikes_ms: np.ndarray,
                predicted_spikes_ms: Mapping[str, np.ndarray], path: str | Path, title: str = "") -> Path:
    """Somatic voltage, truth vs each model (one panel per model), above the input raster.

    Args:
        time_ms: float [T] bin times in ms.
        truth_mv: float [T] simulated somatic voltage in mV (unclipped: spikes show).
        predictions: model name → float [T] predicted somatic voltage in mV.
        input_spikes: [T, n_syn] spike counts per bin; signs: int [n_syn] (+1 excitatory, −1 inhibitory).
        true_spikes_ms: float [n] true output spike times in ms.
        predicted_spikes_ms: model name → float [m] predicted output spike times in ms.
    """
    _style()
    names = list(predictions)
    colors = _colors(names)
    heights = [2.0] * len(names) + [2.2]
    fig, axes = plt.subplots(len(names) + 1, 1, figsize=(11, 1.7 * sum(heights)), sharex=True,
                             gridspec_kw={"height_ratios": heights})
    axes = np.atleast_1d(axes)
    for ax, name in zip(axes, names):
        ax.plot(time_ms, truth_mv, color=TRUTH_COLOR, lw=0.9, label="NEURON (truth)")
        ax.plot(time_ms, predictions[name], color=colors[name], lw=1.1, label=name)
        # spikes run off the top: the subthreshold fit is what the eye should compare
        top = max(-45.0, float(np.max(predictions[name])))
        bottom = min(float(np.min(truth_mv)), float(np.min(predictions[name]))) - 2.0
        ax.plot(true_spikes_ms, np.full(len(true_spikes_ms), top + 3), "v", color=TRUTH_COLOR, ms=5,
                label="true spikes")
        pred = predicted_spikes_ms.get(name, np.zeros(0))
        ax.plot(pred, np.full(len(pred), top + 7), "v", color=colors[name], ms=5, label=f"{name} spikes")
        ax.set(ylabel="soma (mV)", ylim=(bottom, top + 10))
        ax.legend(loc="upper left", fontsize=7, ncol=4, frameon=True)
    raster = axes[-1]
    for sign, color in ((1, EXC_COLOR), (-1, INH_COLOR)):
        channels = np.flatnonzero(np.asarray(signs) == sign)
        t_idx, c_idx = np.nonzero(input_spikes[:, channels])
        raster.scatter(time_ms[t_idx], channels[c_idx], s=0.6, color=color, marker="|", linewidths=0.5,
                       rasterized=True)
    raster.set(ylabel="synapse", xlabel="time (ms)", ylim=(-0.5, input_spikes.shape[1] - 0.5))
    proxies = [Line2D([], [], color=c, marker="s", ls="none", label=l)  # raster ticks are too thin for a legend
               for c, l in ((EXC_COLOR, "excitatory"), (INH_COLOR, "inhibitory"))]
    raster.legend(handles=proxies, loc="upper right", fontsize=7, framealpha=0.9)
    axes[0].set_title(title or "Somatic voltage: NEURON vs surrogates, with the input raster")
    return _save(fig, path)


def plot_cost_tradeoff(results: Sequence[Mapping], path: str | Path) -> Path:
    """Spike AUC and soma RMSE vs parameter count (log x), this project's runs beside the published results.

    Args:
        results: one mapping per run with keys name, params, auc, rmse_mV (None where unavailable), and for an
            imported published checkpoint ``published``: {"auc", "rmse_mV"} as its authors measured them on their
            test data, drawn hollow beside the filled point measured here.
    """
    _style()
    fig, (ax_auc, ax_rmse) = plt.subplots(1, 2, figsize=(11, 4.3))
    ref_style = dict(marker="o", facecolors="none", edgecolors="grey", s=50, label=REFERENCE_LABEL)
    for ax, index in ((ax_auc, 2), (ax_rmse, 3)):
        refs = [(i, r) for i, r in enumerate(REFERENCE_RESULTS, 1) if r[index] is not None]
        ax.scatter([r[1] for _, r in refs], [r[index] for _, r in refs], **ref_style)
        for i, ref in refs:
            # numbers, alternating above and below: several references sit within a few thousandths of AUC
            ax.annotate(str(i), (ref[1], ref[index]), textcoords="offset points", xytext=(3, 5 if i % 2 else -11),
                        fontsize=8, color="dimgrey")
    key = "   ".join(f"{i} {r[0]} ({format_count(r[1])}, AUC {r[2]}" + (f", {r[3]} mV)" if r[3] else ")")
                       for i, r in enumerate(REFERENCE_RESULTS, 1))
    fig.text(0.5, -0.02, f"{REFERENCE_LABEL}: {key}", ha="center", va="top", fontsize=7, color="dimgrey",
             wrap=True)
    colors = _colors([r["name"] for r in results])
    for r in results:
        published = r.get("published")
        marker, label = ("D", f"{r['name']} (published weights, scored here)") if published else ("s", r["name"])
        for ax, key in ((ax_auc, "auc"), (ax_rmse, "rmse_mV")):
            if r.get(key) is not None:
                ax.scatter(r["params"], r[key], marker=marker, s=55, color=colors[r["name"]], label=label, zorder=3)
            if published and published.get(key) is not None:
                ax.scatter(r["params"], published[key], marker="D", s=55, facecolors="none",
                           edgecolors=colors[r["name"]], label=f"{r['name']} as published", zorder=3)
    ax_auc.set(xscale="log", xlabel="trainable parameters (log)", ylabel="spike ROC AUC",
               title="Spike prediction vs model size")
    ax_rmse.set(xscale="log", xlabel="trainable parameters (log)", ylabel="soma RMSE (mV, clipped at −55 mV)",
                title="Somatic voltage error vs model size")
    # one legend for both panels, above them: inside an axes it hid points (the TCN's RMSE at the right edge)
    handles = {label: handle for ax in (ax_auc, ax_rmse) for handle, label in zip(*ax.get_legend_handles_labels())}
    fig.legend(handles.values(), handles.keys(), loc="lower center", bbox_to_anchor=(0.5, 1.0), fontsize=7,
               ncol=min(len(handles), 4), frameon=False)
    return _save(fig, path)


def format_count(n: float) -> str:
    """A parameter count as the published tables write it: 8.1K, 10M."""
    return f"{n / 1e6:.0f}M" if n >= 1e6 else f"{n / 1e3:.1f}K"


def plot_training_curves(histories: Mapping[str, Sequence[Mapping]], path: str | Path) -> Path:
    """Per-epoch training curves: losses, validation AUC, validation RMSE.

    Args:
        histories: model name → list of per-epoch dicts (keys train_loss, valid_loss, valid_auc, valid_rmse_mv;
            missing keys are skipped).
    """
    _style()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    colors = _colors(list(histories))
    panels = (("loss", ("train_loss", "valid_loss")), ("validation spike AUC", ("valid_auc",)),
              ("validation soma RMSE (mV)", ("valid_rmse_mv",)))
    for ax, (ylabel, keys) in zip(axes, panels):
        for name, history in histories.items():
            for key in keys:
                values = [(h.get("epoch", i + 1), h[key]) for i, h in enumerate(history) if h.get(key) is not None]
                if values:
                    epochs, ys = zip(*values)
                    ls = "--" if key == "train_loss" else "-"
                    label = f"{name} ({key.split('_')[0]})" if len(keys) > 1 else name
                    ax.plot(epochs, ys, ls=ls, marker="o", ms=3, color=colors[name], label=label)
        ax.set(xlabel="epoch", ylabel=ylabel, title=ylabel)
        ax.legend(fontsize=7)
    axes[0].set_yscale("log")
    return _save(fig, path)


def plot_tau_m(taus: Mapping[str, np.ndarray], path: str | Path,
               initial: Mapping[str, np.ndarray] | None = None) -> Path:
    """Memory time constants τ_m of ELM models, sorted, on a log axis.

    Args:
        taus: model name → float [d_m] τ_m in ms.
        initial: optional model name → float [d_m] the initial (log-spaced) τ_m, drawn hollow.
    """
    _style()
    fig, ax = plt.subplots(figsize=(6, 4))
    colors = _colors(list(taus))
    for name, tau in taus.items():
        tau = np.sort(np.asarray(tau))
        ax.plot(np.arange(len(tau)), tau, "o-", color=colors[name], ms=4, label=f"{name} (learned/used)")
        if initial and name in initial:
            ax.plot(np.arange(len(tau)), np.sort(initial[name]), "o", mfc="none", color=colors[name], ms=6,
                    label=f"{name} (initial)")
    ax.set(yscale="log", xlabel="memory unit (sorted by τ_m)", ylabel="τ_m (ms, log)",
           title="ELM memory time constants")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_weight_vs_distance(distance_um: np.ndarray, weights: np.ndarray, kinds: np.ndarray, path: str | Path,
                            title: str) -> Path:
    """Effective synaptic weight per input channel (w_s averaged over the slots that read it, see
    :func:`analysis.learned.input_weights`) against the synapse's path distance from the soma.

    Args:
        distance_um: float [n_syn] path distance in µm; weights: float [n_syn] w_s (≥ 0, dimensionless);
        kinds: str [n_syn] "exc" / "inh".
    """
    _style()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for kind, color, marker, label in (("exc", EXC_COLOR, "o", "excitatory"), ("inh", INH_COLOR, "x", "inhibitory")):
        sel = np.asarray(kinds) == kind
        ax.scatter(distance_um[sel], weights[sel], s=12, alpha=0.6, color=color, marker=marker, label=label)
    ax.set(xlabel="path distance from soma (µm)", ylabel="effective w_s (mean over the input's slots)", title=title)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_morphology_weights(pos_x_um: np.ndarray, pos_y_um: np.ndarray, weights: np.ndarray, path: str | Path,
                            title: str) -> Path:
    """Synapse positions projected on the x–y plane, coloured by learned weight.

    Args:
        pos_x_um, pos_y_um: float [n] segment-centre coordinates in µm; weights: float [n] (one value per point,
            e.g. an excitatory synapse's w_s).
    """
    _style()
    fig, ax = plt.subplots(figsize=(5.5, 7))
    order = np.argsort(weights)  # strongest drawn last, on top
    points = ax.scatter(pos_x_um[order], pos_y_um[order], c=weights[order], cmap="viridis", s=10)
    fig.colorbar(points, ax=ax, label="effective w_s (mean over the input's slots)")
    ax.set(xlabel="x (µm)", ylabel="y (µm)", title=title, aspect="equal")
    ax.grid(False)
    return _save(fig, path)
