"""The standard sweeps of the ablation notebooks, as variants for :func:`analysis.ablation.run_ablation`, and the
published results they are read beside.

- timescale: the upper bound τ_max of the ELM's memory time constants, plus every τ_m fixed at 25 ms
  (Spieler et al. 2023: τ_max must reach ≳ 25 ms, and a constant ≈ 25 ms is sufficiently good);
- dendritic: Branch-ELM with neighbour-preserving ("neuronio") routing vs. random routing vs. no branches, and
  the branch count × size (d_tree × d_brch) at a fixed synapse budget;
- memory: the number of memory units d_m at the released branch layout;
- NMDA: a grid over d_m × τ_max, run on a cell with and without NMDA (Beniaguev, Segev & London 2021, Neuron
  109:2727, fit the AMPA-only cell with a single-layer network).

τ_m spreads log-uniformly over [τ_min, τ_max] with τ_min = 1 ms (the ELM default); every variant sets both bounds.
τ_max = τ_min is allowed and means every τ_m equals that value, so τ_max = 1 ms is a memory of constant 1 ms.
With d_m = 1 the single τ_m is τ_min (the log-spaced grid starts there), so τ_max changes nothing at d_m = 1.
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from analysis.ablation_writeup import Finding

#: τ_max values (ms) of the timescale sweep.
TAU_MAX_MS = (1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 150.0, 500.0)
#: Lower bound of the memory time constants in every sweep (ms).
TAU_MIN_MS = 1.0
#: The constant τ_m (ms) of the fixed-timescale variant.
FIXED_TAU_MS = 25.0
FIXED_TAU_VARIANT = f"tau_m fixed at {FIXED_TAU_MS:g}ms"
#: d_m values of the memory-size sweep (those of the published checkpoints).
D_MEMORY = (1, 2, 5, 10, 20, 40)
#: The released NeuronIO Branch-ELM's layout: d_tree branches × d_brch synapse slots.
RELEASED_LAYOUT = (45, 100)
#: d_tree × d_brch at the released synapse budget of 4,500 slots.
RELEASED_BUDGET_LAYOUTS = ((45, 100), (90, 50), (15, 300), (5, 900))
#: The NMDA notebook's default grid.
NMDA_D_MEMORY = (1, 2, 5, 20)
NMDA_TAU_MAX_MS = (5.0, 25.0, 150.0)

ROUTING_VARIANTS = ("branches, neuronio routing", "branches, random routing", "no branches")
#: The largest AUC difference counted as "as good" (our choice; the paper's Branch-ELM and ELM differ by 0.0006).
SIMILAR_AUC = 0.005

#: Test results of the published NeuronIO Branch-ELM checkpoints (45 × 100, τ_max 150 ms) by d_m: trainable
#: parameters and spike ROC AUC on the authors' test data (Spieler et al. 2023, ICLR 2024, arXiv 2306.16922;
#: the evaluation results released with their checkpoints).
PUBLISHED_MEMORY_RESULTS = pd.DataFrame(
    [(1, 4601, 0.9437), (2, 4708, 0.9582), (5, 5077, 0.9757), (10, 5852, 0.9878), (20, 8002, 0.9922),
     (40, 14702, 0.9934)],
    columns=["d_memory", "params", "spike_auc"],
)


def _tau_bounds(tau_max_ms: float) -> dict:
    if not tau_max_ms >= TAU_MIN_MS:
        raise ValueError(f"tau_max must be >= tau_min = {TAU_MIN_MS:g} ms, got {tau_max_ms!r}")
    return {"tau_m_min_ms": TAU_MIN_MS, "tau_m_max_ms": float(tau_max_ms)}


def timescale_variants(tau_max_ms: Sequence[float] = TAU_MAX_MS, fixed_tau_ms: float | None = FIXED_TAU_MS
                       ) -> dict[str, dict]:
    """One variant per τ_max (ms), {"tau_max=25ms": {"model_config": {"tau_m_min_ms": 1.0, "tau_m_max_ms": 25.0}},
    …}, plus (unless ``fixed_tau_ms`` is None) one with every τ_m fixed at ``fixed_tau_ms``."""
    variants = {f"tau_max={t:g}ms": {"model_config": _tau_bounds(t)} for t in tau_max_ms}
    if fixed_tau_ms is not None:
        variants[f"tau_m fixed at {fixed_tau_ms:g}ms"] = {
            "model_config": {"tau_m_min_ms": float(fixed_tau_ms), "tau_m_max_ms": float(fixed_tau_ms)}}
    return variants


def layout_name(n_branches: int, synapses_per_branch: int) -> str:
    return f"layout {n_branches}x{synapses_per_branch}"


def dendritic_variants(n_branches: int = RELEASED_LAYOUT[0], synapses_per_branch: int = RELEASED_LAYOUT[1],
                       routing_seed: int | None = None, layouts: Sequence[tuple[int, int]] = ()) -> dict[str, dict]:
    """Branch-ELM with neuronio routing and with random routing (same branch sizes), the ELM without branches,
    and a neuronio-routed Branch-ELM per (d_tree, d_brch) in ``layouts`` other than the first layout.

    ``routing_seed`` None draws the random routing anew for each training seed (see
    :func:`analysis.ablation.seed_overrides`). Every layout should hold the same synapse budget
    (d_tree · d_brch), so that only how the slots are grouped changes; a different one is refused.
    """
    budget = n_branches * synapses_per_branch
    branches = {"n_branches": n_branches, "synapses_per_branch": synapses_per_branch}
    random = {**branches, "routing": "random", **({} if routing_seed is None else {"routing_seed": routing_seed})}
    variants = {
        ROUTING_VARIANTS[0]: {"model": "branch-elm", "model_config": {**branches, "routing": "neuronio"}},
        ROUTING_VARIANTS[1]: {"model": "branch-elm", "model_config": random},
        ROUTING_VARIANTS[2]: {"model": "elm", "model_config": {"n_branches": 0}},
    }
    for d_tree, d_brch in layouts:
        if d_tree * d_brch != budget:
            raise ValueError(f"layout {d_tree}x{d_brch} holds {d_tree * d_brch} synapse slots, not the budget "
                             f"{n_branches}x{synapses_per_branch} = {budget}")
        if (d_tree, d_brch) != (n_branches, synapses_per_branch):
            variants[layout_name(d_tree, d_brch)] = {"model": "branch-elm", "model_config": {
                "n_branches": d_tree, "synapses_per_branch": d_brch, "routing": "neuronio"}}
    return variants


def layout_rows(summary: pd.DataFrame) -> pd.DataFrame:
    """The rows of a dendritic summary that are neuronio-routed Branch-ELMs (the layout sweep, the base layout
    included), sorted by d_tree, with a ``layout`` column "d_tree×d_brch"."""
    rows = summary[(summary["model"] == "branch-elm") & (summary["routing"] == "neuronio")].copy()
    rows["layout"] = [f"{int(t)}×{int(b)}" for t, b in zip(rows["n_branches"], rows["synapses_per_branch"])]
    return rows.sort_values("n_branches").reset_index(drop=True)


def memory_variants(d_memory: Sequence[int] = D_MEMORY) -> dict[str, dict]:
    """One variant per d_m: {"d_m=20": {"model_config": {"d_memory": 20}}, …}."""
    return {f"d_m={d}": {"model_config": {"d_memory": int(d)}} for d in d_memory}


def memory_timescale_grid(d_memory: Sequence[int] = NMDA_D_MEMORY, tau_max_ms: Sequence[float] = NMDA_TAU_MAX_MS
                          ) -> dict[str, dict]:
    """One variant per (d_m, τ_max): {"d_m=5, tau_max=25ms": {"model_config": {"d_memory": 5, …}}, …}.

    The d_m time constants are log-spaced from τ_min to τ_max, so a single memory unit has τ_m = τ_min whatever
    τ_max: d_m = 1 gets one variant, at τ_max = τ_min, instead of one practically identical run per τ_max."""
    grid = {}
    for d in d_memory:
        for t in [TAU_MIN_MS] if int(d) == 1 else tau_max_ms:
            grid[f"d_m={d}, tau_max={t:g}ms"] = {"model_config": {"d_memory": int(d), **_tau_bounds(t)}}
    return grid


def with_published(summary: pd.DataFrame) -> pd.DataFrame:
    """A memory-sweep summary (column ``d_memory``) with the published checkpoints' ``published_params`` and
    ``published_auc`` beside each d_m (NaN where none was published)."""
    published = PUBLISHED_MEMORY_RESULTS.rename(columns={"params": "published_params", "spike_auc": "published_auc"})
    merged = summary.merge(published, on="d_memory", how="left")
    return merged.astype({"published_params": "Int64"})


def timescale_findings(tau_max_ms: Sequence[float] = TAU_MAX_MS, long_ms: float = 25.0, short_ms: float = 5.0,
                       spread_ms: float = 150.0) -> list[Finding]:
    """Spieler et al.'s timescale findings on a :func:`timescale_variants` sweep: τ_max ≥ ``long_ms`` beats
    τ_max ≤ ``short_ms``; and every τ_m fixed at 25 ms is as good as τ_m spread up to ``spread_ms`` (when both
    are in the sweep)."""
    long = [f"tau_max={t:g}ms" for t in tau_max_ms if t >= long_ms]
    short = [f"tau_max={t:g}ms" for t in tau_max_ms if t <= short_ms]
    findings = [Finding(f"τ_max ≥ {long_ms:g} ms beats τ_max ≤ {short_ms:g} ms (the memory must reach ≳ 25 ms)",
                        long, short)]
    if spread_ms in tau_max_ms:
        findings.append(Finding(f"every τ_m fixed at {FIXED_TAU_MS:g} ms is as good as τ_m spread over "
                                f"[{TAU_MIN_MS:g}, {spread_ms:g}] ms", (FIXED_TAU_VARIANT,),
                                (f"tau_max={spread_ms:g}ms",), kind="similar", tolerance=SIMILAR_AUC))
    return findings


def dendritic_findings() -> list[Finding]:
    """Neighbour-preserving routing beats random routing; and the Branch-ELM with it is as good as the ELM
    without branches (Spieler et al. 2023: AUC 0.9924 with 8.1K parameters vs 0.9918 with 52.9K)."""
    neuronio, random, unbranched = ROUTING_VARIANTS
    return [Finding("neighbour-preserving routing beats random routing", (neuronio,), (random,)),
            Finding("branches with neighbour-preserving routing are as good as no branches", (neuronio,),
                    (unbranched,), kind="similar", tolerance=SIMILAR_AUC)]


def memory_findings(d_memory: Sequence[int] = D_MEMORY, large: int = 10, small: int = 2) -> list[Finding]:
    """d_m ≥ ``large`` beats d_m ≤ ``small`` (published: AUC 0.9878–0.9934 against 0.9437–0.9582)."""
    return [Finding(f"d_m ≥ {large} beats d_m ≤ {small}", [f"d_m={d}" for d in d_memory if d >= large],
                    [f"d_m={d}" for d in d_memory if d <= small])]
