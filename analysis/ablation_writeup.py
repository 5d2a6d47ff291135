"""Write-ups of the ablation notebooks: whether a paper's finding is reproduced, decided by a stated rule on the
seeds' error bars, and a Markdown section with the table, data size, seeds, wall time and figure.

Two rules (sd: the sample sd over training seeds of one variant; the sd of a difference of two variants' means is
taken as √(sd₁² + sd₂²), the spread of a single-seed difference, which is conservative):

- "greater" — a group of variants should beat another on a metric. *Reproduced* when the worst of the first
  group beats the best of the second by more than ``n_sd`` sd of their difference; *contradicted* when even the
  best of the first falls behind the worst of the second by more than that; otherwise *not resolved*.
- "similar" — two variants should score alike. *Reproduced* when the difference plus ``n_sd`` sd stays within
  ``tolerance``; *contradicted* when the difference minus ``n_sd`` sd exceeds it; otherwise *not resolved*.

With one seed there is no sd and nothing is resolved. :func:`decide_smallest_memory` adds the threshold rule of
the NMDA notebook. The findings come from Spieler et al. 2023 (ICLR 2024, arXiv 2306.16922) and Beniaguev, Segev &
London 2021 (Neuron 109:2727).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from analysis.evaluate import open_store
from conventions.atomic import write_text_atomic
from surrogate.run import REUSED_FILE

#: Metrics where lower is better; the others are better higher.
LOWER_IS_BETTER = ("rmse_mV",)
METRIC_LABELS = {"spike_auc": "spike AUC", "rmse_mV": "RMSE (mV)", "tpr_at_1pct_fpr": "TPR at 1 % FPR"}
SETTING_LABELS = {"d_memory": "d_m", "tau_m_max_ms": "τ_max (ms)"}
KINDS = ("greater", "similar")
WRITEUP_FILE = "writeup.md"
#: A run whose test spike AUC is at most this ranks spikes no better than chance: its spike readout is constant or
#: inverted -- an optimisation that failed, not a measure of its variant (seen with d_m ≤ 2 on the AMPA-only cell).
CHANCE_AUC = 0.5


@dataclass(frozen=True)
class Finding:
    """A paper's finding as a test on a summary (:func:`analysis.ablation.summarise`).

    Attributes:
        claim: the finding in words, e.g. "τ_max ≥ 25 ms beats τ_max ≤ 5 ms".
        first, second: variant names; kind "greater": ``first`` should beat ``second``; kind "similar": one
            variant each, which should score alike.
        kind: "greater" or "similar" (see the module docstring).
        metric: a metric of :data:`analysis.ablation.METRICS`.
        n_sd: how many sd of the difference decide.
        tolerance: kind "similar" only: the largest difference of means still "alike" (metric units).
    """

    claim: str
    first: tuple[str, ...]
    second: tuple[str, ...]
    kind: str = "greater"
    metric: str = "spike_auc"
    n_sd: float = 2.0
    tolerance: float = 0.005

    def __post_init__(self):
        object.__setattr__(self, "first", tuple(self.first))
        object.__setattr__(self, "second", tuple(self.second))
        if self.kind not in KINDS:
            raise ValueError(f"Finding.kind must be one of {KINDS}, got {self.kind!r}")
        if not self.first or not self.second:
            raise ValueError("a Finding needs variants on both sides")
        if self.kind == "similar" and (len(self.first), len(self.second)) != (1, 1):
            raise ValueError("a 'similar' Finding compares exactly one variant with one other")
        if not (self.n_sd > 0 and self.tolerance >= 0):
            raise ValueError(f"n_sd must be > 0 and tolerance >= 0, got {self.n_sd} and {self.tolerance}")

    def rule(self) -> str:
        """The decision rule in one sentence."""
        label = METRIC_LABELS.get(self.metric, self.metric)
        if self.kind == "greater":
            return (f"reproduced when the {label} of the worst of {_names(self.first)} beats the best of "
                    f"{_names(self.second)} by more than {self.n_sd:g} sd of the difference, contradicted when "
                    "the best falls behind the worst by as much, otherwise not resolved")
        return (f"reproduced when the {label} of {self.first[0]} and {self.second[0]} differ by less than "
                f"{self.tolerance:g} even after adding {self.n_sd:g} sd of the difference, contradicted when they "
                "differ by more than that after subtracting it, otherwise not resolved")


@dataclass(frozen=True)
class Verdict:
    """outcome: "reproduced", "contradicted" or "not resolved"; sentence: the outcome with its numbers."""

    outcome: str
    sentence: str


def _names(names: Sequence[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)


def mean_sd(mean: float, sd: float, digits: int = 4) -> str:
    """"0.9437 ± 0.0012"; "0.9437 (one seed)" without an sd."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "n/a"
    return f"{mean:.{digits}f} (one seed)" if sd is None or math.isnan(sd) else f"{mean:.{digits}f} ± {sd:.{digits}f}"


def _stats(summary: pd.DataFrame, names: Sequence[str], metric: str) -> dict[str, tuple[float, float]]:
    for column in ("variant", f"{metric}_mean", f"{metric}_sd"):
        if column not in summary:
            raise ValueError(f"the summary lacks the column {column!r}")
    rows = summary.set_index("variant")
    missing = [n for n in names if n not in rows.index]
    if missing:
        raise ValueError(f"the summary has no variant(s) {missing}")
    return {n: (float(rows.at[n, f"{metric}_mean"]), float(rows.at[n, f"{metric}_sd"])) for n in names}


def decide(finding: Finding, summary: pd.DataFrame) -> Verdict:
    """Apply ``finding``'s rule to a summary of one cell (columns variant, <metric>_mean, <metric>_sd)."""
    stats = _stats(summary, finding.first + finding.second, finding.metric)
    sign = -1.0 if finding.metric in LOWER_IS_BETTER else 1.0  # score: higher is better
    score = {n: sign * m for n, (m, _) in stats.items()}
    label = METRIC_LABELS.get(finding.metric, finding.metric)

    def spread(a: str, b: str) -> float:
        return math.hypot(stats[a][1], stats[b][1])

    def text(a: str, b: str) -> str:
        return (f"{label} {a} {mean_sd(*stats[a])} vs {b} {mean_sd(*stats[b])}, difference "
                f"{stats[a][0] - stats[b][0]:+.4f}, {finding.n_sd:g} sd of it {finding.n_sd * spread(a, b):.4f}")

    if finding.kind == "greater":
        worst_first = min(finding.first, key=score.get)
        best_second = max(finding.second, key=score.get)
        best_first = max(finding.first, key=score.get)
        worst_second = min(finding.second, key=score.get)
        margin = score[worst_first] - score[best_second]
        reverse = score[worst_second] - score[best_first]
        if math.isnan(spread(worst_first, best_second)):
            outcome, pair = "not resolved", (worst_first, best_second)
        elif margin > finding.n_sd * spread(worst_first, best_second):
            outcome, pair = "reproduced", (worst_first, best_second)
        elif reverse > finding.n_sd * spread(best_first, worst_second):
            outcome, pair = "contradicted", (best_first, worst_second)
        else:
            outcome, pair = "not resolved", (worst_first, best_second)
    else:
        a, b = finding.first[0], finding.second[0]
        gap, sd = abs(stats[a][0] - stats[b][0]), spread(a, b)
        pair = (a, b)
        if math.isnan(sd):
            outcome = "not resolved"
        elif gap + finding.n_sd * sd <= finding.tolerance:
            outcome = "reproduced"
        elif gap - finding.n_sd * sd > finding.tolerance:
            outcome = "contradicted"
        else:
            outcome = "not resolved"
    no_sd = " (fewer than two seeds: no error bar)" if math.isnan(spread(*pair)) else ""
    return Verdict(outcome, f"**{outcome.capitalize()}**: {finding.claim} — {text(*pair)}{no_sd}.")


def smallest_reaching(summary: pd.DataFrame, target: float, setting: str, metric: str = "spike_auc",
                      n_sd: float = 2.0, by: str = "cell") -> pd.DataFrame:
    """Per group of ``by``: the smallest value of ``setting`` at which some variant *reaches* ``target``
    (mean − n_sd · sd ≥ target), and the largest at which every variant *fails* it (mean + n_sd · sd < target).

    Returns:
        One row per group: ``by``, ``reaches`` (smallest reaching value or NaN), ``fails`` (largest value at which
        all variants fail, or NaN), ``best_<metric>`` (the best mean) — metric better when higher.
    """
    mean, sd = summary[f"{metric}_mean"], summary[f"{metric}_sd"]
    flags = summary.assign(_reach=mean - n_sd * sd >= target, _fail=mean + n_sd * sd < target)
    rows = []
    for group, part in flags.groupby(by, sort=False):
        per_value = part.groupby(setting)
        reached = part.loc[part["_reach"], setting]
        failed = [v for v, p in per_value if p["_fail"].all()]
        rows.append({by: group, "reaches": reached.min() if len(reached) else float("nan"),
                     "fails": max(failed) if failed else float("nan"), f"best_{metric}": part[f"{metric}_mean"].max()})
    return pd.DataFrame(rows)


def decide_smallest_memory(summary: pd.DataFrame, target: float, needs_less: str, needs_more: str,
                           setting: str = "d_memory", n_sd: float = 2.0) -> Verdict:
    """The NMDA notebook's rule: cell ``needs_less`` (e.g. AMPA-only) should reach ``target`` AUC at a smaller
    ``setting`` than cell ``needs_more``. *Reproduced* when at some value ``needs_less`` reaches the target (mean
    − n_sd · sd ≥ target, some τ_max) while every variant of ``needs_more`` at that value fails it (mean + n_sd · sd
    < target); *contradicted* when the reverse holds at some value; otherwise *not resolved*."""
    def status(cell: str) -> dict:
        """setting value → (some variant reaches the target, every variant fails it)."""
        part = summary[summary["cell"] == cell]
        if part.empty:
            raise ValueError(f"the summary has no cell {cell!r}")
        low = part["spike_auc_mean"] - n_sd * part["spike_auc_sd"]
        high = part["spike_auc_mean"] + n_sd * part["spike_auc_sd"]
        return {v: (bool((low[p.index] >= target).any()), bool((high[p.index] < target).all()))
                for v, p in part.groupby(setting)}

    less, more = status(needs_less), status(needs_more)
    shared = sorted(set(less) & set(more))
    won = [v for v in shared if less[v][0] and more[v][1]]
    lost = [v for v in shared if more[v][0] and less[v][1]]
    label = SETTING_LABELS.get(setting, setting)
    claim = (f"the {needs_less} cell reaches AUC {target:g} at a smaller {label} than the {needs_more} cell "
             f"(reach: mean − {n_sd:g} sd ≥ {target:g} somewhere at that {label}; fail: mean + {n_sd:g} sd < "
             f"{target:g} everywhere at it)")
    if won and not lost:
        return Verdict("reproduced", f"**Reproduced**: {claim} — at {label} = {won[0]:g} {needs_less} reaches it "
                                     f"and {needs_more} fails.")
    if lost and not won:
        return Verdict("contradicted", f"**Contradicted**: {claim} — at {label} = {lost[0]:g} {needs_more} "
                                       f"reaches it and {needs_less} fails.")
    return Verdict("not resolved", f"**Not resolved**: {claim} — no {label} where one cell reaches it and the "
                                   "other fails beyond the error bars.")


def data_description(stores: Mapping[str, str | Path]) -> str:
    """"train 16 × 1.2 s, valid 4 × 1.2 s, test 4 × 1.2 s (0.0067 h in all)" for {"train": path, …}."""
    parts, total_ms = [], 0
    for split, path in stores.items():
        store = open_store(path)
        parts.append(f"{split} {store.n_sims} × {store.n_time / 1000:g} s")
        total_ms += store.n_sims * store.n_time
    return f"{', '.join(parts)} ({total_ms / 3.6e6:.3g} h in all)"


def reuse_note(table: pd.DataFrame) -> str:
    """A sentence on the runs of a sweep table (column ``run``: run directories) that were copied from other
    sweeps (:data:`surrogate.run.REUSED_FILE`) rather than trained by it; "" when none was."""
    reused = table["run"].map(lambda run: (Path(run) / REUSED_FILE).is_file()).astype(bool)
    if not reused.any():
        return ""
    wall = table.loc[reused, "train_wall_s"].sum()
    return (f"{int(reused.sum())} of {len(table)} runs were trained by other sweeps under the same config (data, "
            f"settings and seed) and copied here (each has {REUSED_FILE}); their {wall:.0f} s of training are "
            "in the training total above but not in this notebook's wall time.")


def failed_runs(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of a sweep table whose test spike AUC is at most :data:`CHANCE_AUC`."""
    return table[table["spike_auc"] <= CHANCE_AUC]


def failed_note(table: pd.DataFrame, by: Sequence[str] = ("cell", "variant")) -> str:
    """A sentence naming the runs of :func:`failed_runs` (by the ``by`` columns the table has and the seed);
    "" when there are none."""
    failed = failed_runs(table)
    if failed.empty:
        return ""
    names = "; ".join(" ".join(str(row[c]) for c in by if c in row.index) + f" seed {row['seed']} (AUC "
                      f"{row['spike_auc']:.3f})" for _, row in failed.iterrows())
    return (f"{len(failed)} of {len(table)} runs rank spikes no better than chance (test AUC ≤ {CHANCE_AUC:g}: a "
            f"constant or inverted spike readout, an optimisation that failed): {names}.")


def memory_without_failed(trained: pd.DataFrame, failed: pd.DataFrame, target: float, needs_less: str,
                          needs_more: str, n_sd: float = 2.0) -> str:
    """The NMDA notebook's second look: the (cell, variant)s that lost runs to :func:`failed_runs`, their spike AUC
    without them, and :func:`decide_smallest_memory` on both settings of ``trained`` (the summary of the other
    runs); "" when no run failed."""
    if failed.empty:
        return ""
    scores = []
    for (cell, variant), _ in failed.groupby(["cell", "variant"], sort=False):
        row = trained[(trained["cell"] == cell) & (trained["variant"] == variant)]
        scores.append(f"{cell} {variant} " + (mean_sd(row["spike_auc_mean"].iloc[0], row["spike_auc_sd"].iloc[0])
                                              if len(row) else "no run left"))
    verdicts = [decide_smallest_memory(trained, target, needs_less, needs_more, setting, n_sd).sentence
                for setting in ("d_memory", "tau_m_max_ms")]
    return f"Without them: {'; '.join(scores)}. " + " ".join(verdicts)


def markdown_section(title: str, summary: pd.DataFrame, verdicts: Sequence[Verdict],
                     findings: Sequence[Finding | str], *, columns: Mapping[str, str], data: str,
                     seeds: Sequence[int], wall_s: float, figure: str | None, notes: str = "") -> str:
    """A Markdown section: the verdicts, data size, seeds and wall time, a table of mean ± sd per variant
    (``columns``: header → summary column, shown before params, AUC and RMSE), the figure and the rules."""
    n_runs = int(summary["n_seeds"].sum())
    lines = [f"## {title}", ""]
    lines += [" ".join(v.sentence for v in verdicts), ""]
    lines += [f"Data: {data}. Seeds: {len(seeds)} per variant ({', '.join(map(str, seeds))}), {n_runs} runs. "
              f"Wall time: {summary['train_wall_s'].sum():.0f} s of training over all runs; this notebook run took "
              f"{wall_s:.0f} s (less when it resumed finished runs).", ""]
    headers = [*columns, "params", "n seeds", "spike AUC", "RMSE (mV)"]
    lines += ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for _, row in summary.iterrows():
        cells = [_cell(row[c]) for c in columns.values()]
        cells += [f"{int(row['params']):,}", str(int(row["n_seeds"])),
                  mean_sd(row["spike_auc_mean"], row["spike_auc_sd"]), mean_sd(row["rmse_mV_mean"], row["rmse_mV_sd"], 3)]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if figure:
        lines += [f"![{title}]({figure})", ""]
    rules = [f if isinstance(f, str) else f.rule() for f in findings]
    lines += ["Rules (sd: sample sd over seeds; sd of a difference: √(sd₁² + sd₂²)): " + "; ".join(rules) + ".", ""]
    if notes:
        lines += [notes, ""]
    return "\n".join(lines)


def _cell(value) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return f"{int(value):,}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def write_section(out_dir: str | Path, text: str, name: str = WRITEUP_FILE) -> Path:
    """Write a section as ``out_dir/<name>`` (atomically); returns the path."""
    path = Path(out_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text_atomic(path, text)
