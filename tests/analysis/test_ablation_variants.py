"""The standard ablation sweeps build the models they name; the published memory-size checkpoints' parameter
counts match this toolkit's Branch-ELM."""

import numpy as np
import pandas as pd
import pytest

from analysis import ablation, ablation_variants as variants
from surrogate.models import build_model, num_params

TINY = {"model": "branch-elm", "model_config": {"d_memory": 4, "n_branches": 4, "synapses_per_branch": 4}}


def _model(overrides, base=TINY, n_inputs=16):
    cfg = ablation.merge_config(base, overrides)
    return build_model(cfg["model"], {**cfg["model_config"], "n_inputs": n_inputs})


def test_timescale_sweep_spans_one_to_500_ms_plus_a_fixed_25_ms_memory():
    sweep = variants.timescale_variants()
    assert list(sweep) == [f"tau_max={t:g}ms" for t in (1, 2, 5, 10, 25, 50, 150, 500)] + ["tau_m fixed at 25ms"]
    for name, overrides in sweep.items():
        tau = _model(overrides).tau_m_ms().detach().numpy()
        config = overrides["model_config"]
        assert tau.min() == pytest.approx(config["tau_m_min_ms"], rel=1e-5)
        assert tau.max() == pytest.approx(config["tau_m_max_ms"], rel=1e-5)
    np.testing.assert_array_equal(_model(sweep["tau_max=1ms"]).tau_m_ms().detach().numpy(), np.ones(4))
    np.testing.assert_array_equal(_model(sweep[variants.FIXED_TAU_VARIANT]).tau_m_ms().detach().numpy(),
                                  np.full(4, 25.0))
    assert list(variants.timescale_variants([5], None)) == ["tau_max=5ms"]
    with pytest.raises(ValueError, match="tau_max must be >= tau_min"):
        variants.timescale_variants([0.5])


def test_dendritic_sweep_routings_and_layouts_at_one_budget():
    sweep = variants.dendritic_variants(4, 16, layouts=[(4, 16), (8, 8), (2, 32)])
    assert list(sweep) == [*variants.ROUTING_VARIANTS, "layout 8x8", "layout 2x32"]  # the base layout once
    models = {name: _model(v, n_inputs=64) for name, v in sweep.items()}
    assert models["no branches"].config.n_branches == 0 and models["no branches"].config.n_synapses == 64
    assert models["branches, random routing"].config.routing == "random"
    for name in ("layout 8x8", "layout 2x32", "branches, neuronio routing"):
        assert models[name].config.n_synapses == 64 and models[name].config.routing == "neuronio"
    # no routing_seed: drawn per training seed, so two seeds give two routings
    random = [ablation.seed_overrides(sweep["branches, random routing"], s) for s in (0, 1)]
    routings = [_model(r, n_inputs=64).input_to_synapse_indices for r in random]
    assert not np.array_equal(*routings)
    assert variants.dendritic_variants(4, 16, routing_seed=3)["branches, random routing"]["model_config"][
        "routing_seed"] == 3
    with pytest.raises(ValueError, match="holds 60 synapse slots, not the budget 4x16 = 64"):
        variants.dendritic_variants(4, 16, layouts=[(6, 10)])
    assert all(t * b == 4500 for t, b in variants.RELEASED_BUDGET_LAYOUTS)


def test_layout_rows_pick_the_neuronio_branch_models_in_branch_order():
    summary = pd.DataFrame({"variant": ["n", "r", "none", "8x8"], "model": ["branch-elm", "branch-elm", "elm", "branch-elm"],
                            "routing": ["neuronio", "random", np.nan, "neuronio"],
                            "n_branches": [4, 4, 0, 8], "synapses_per_branch": [16, 16, np.nan, 8]})
    rows = variants.layout_rows(summary)
    assert list(rows["variant"]) == ["n", "8x8"] and list(rows["layout"]) == ["4×16", "8×8"]


@pytest.mark.parametrize("d_memory, params, auc", list(variants.PUBLISHED_MEMORY_RESULTS.itertuples(index=False)))
def test_published_memory_checkpoints_have_our_parameter_counts(d_memory, params, auc):
    """Spieler et al.'s released checkpoints (45 × 100 branches) against branch-elm's defaults at each d_m."""
    model = _model(variants.memory_variants([d_memory])[f"d_m={d_memory}"], base={"model": "branch-elm"},
                   n_inputs=1278)
    assert (model.config.n_branches, model.config.synapses_per_branch) == variants.RELEASED_LAYOUT
    assert num_params(model) == params
    assert 0.9 < auc < 1.0


def test_memory_sweep_and_published_columns():
    assert list(variants.memory_variants()) == [f"d_m={d}" for d in (1, 2, 5, 10, 20, 40)]
    summary = pd.DataFrame({"variant": ["d_m=2", "d_m=3"], "d_memory": [2, 3], "spike_auc_mean": [0.9, 0.91]})
    merged = variants.with_published(summary)
    assert merged["published_params"].iloc[0] == 4708 and merged["published_auc"].iloc[0] == 0.9582
    assert pd.isna(merged["published_params"].iloc[1]) and np.isnan(merged["published_auc"].iloc[1])


def test_memory_timescale_grid_is_the_product_with_one_variant_for_a_single_unit():
    grid = variants.memory_timescale_grid([1, 5], [2, 25])
    # one memory unit has the one time constant τ_min = 1 ms whatever τ_max
    assert list(grid) == ["d_m=1, tau_max=1ms", "d_m=5, tau_max=2ms", "d_m=5, tau_max=25ms"]
    assert grid["d_m=1, tau_max=1ms"]["model_config"] == {"d_memory": 1, "tau_m_min_ms": 1.0, "tau_m_max_ms": 1.0}
    assert grid["d_m=5, tau_max=25ms"]["model_config"] == {"d_memory": 5, "tau_m_min_ms": 1.0, "tau_m_max_ms": 25.0}


def test_findings_name_variants_of_their_sweeps():
    names = set(variants.timescale_variants())
    for finding in variants.timescale_findings():
        assert set(finding.first + finding.second) <= names
    assert variants.timescale_findings()[0].first == ("tau_max=25ms", "tau_max=50ms", "tau_max=150ms", "tau_max=500ms")
    assert variants.timescale_findings()[0].second == ("tau_max=1ms", "tau_max=2ms", "tau_max=5ms")
    assert len(variants.timescale_findings([1, 25])) == 1  # no 150 ms variant to compare the fixed one with
    for finding in variants.dendritic_findings():
        assert set(finding.first + finding.second) <= set(variants.dendritic_variants())
    (memory,) = variants.memory_findings()
    assert memory.first == ("d_m=10", "d_m=20", "d_m=40") and memory.second == ("d_m=1", "d_m=2")
