"""Ablation sweeps on the synthetic fake store with tiny models, and the toy cell of quick mode."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.signal import lfilter

from analysis import ablation
from biophys.dataset import NeuronIOStore
from conventions.signals import spike_bins
from surrogate.models import build_model
from surrogate.config import ConfigError, TrainConfig

TINY = {"model": "branch-elm", "epochs": 1, "batches_per_epoch": 3, "batch_size": 2, "window_ms": 200,
        "burn_in_ms": 50, "threads": 1, "device": "cpu",
        "model_config": {"d_memory": 4, "n_branches": 4, "synapses_per_branch": 4}}


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def test_merge_config_merges_model_config_and_replaces_the_rest():
    base = {"epochs": 3, "model_config": {"d_memory": 4, "tau_m_max_ms": 150.0}}
    merged = ablation.merge_config(base, {"epochs": 1, "model_config": {"tau_m_max_ms": 25.0}})
    assert merged == {"epochs": 1, "model_config": {"d_memory": 4, "tau_m_max_ms": 25.0}}
    assert base["model_config"]["tau_m_max_ms"] == 150.0  # the base is not modified
    assert ablation.setting_columns({"model": "elm", "model_config": {"n_branches": 0}}) == {"model": "elm",
                                                                                             "n_branches": 0}


def test_standard_sweeps_build_the_models_they_name():
    timescale = ablation.timescale_variants()
    assert [v["model_config"]["tau_m_max_ms"] for v in timescale.values()] == list(ablation.TAU_MAX_MS)
    assert 25.0 in ablation.TAU_MAX_MS and min(ablation.TAU_MAX_MS) > 1.0  # τ_min = 1 ms must stay below
    for overrides in timescale.values():
        cfg = ablation.merge_config(TINY, overrides)
        model = build_model(cfg["model"], {**cfg["model_config"], "n_inputs": 16})
        assert model.config.tau_m_max_ms == overrides["model_config"]["tau_m_max_ms"]

    dendritic = ablation.dendritic_variants(n_branches=4, synapses_per_branch=4, routing_seed=3)
    models = {name: build_model(ablation.merge_config(TINY, v)["model"],
                                {**ablation.merge_config(TINY, v)["model_config"], "n_inputs": 16})
              for name, v in dendritic.items()}
    assert models["no branches"].config.n_branches == 0
    assert models["no branches"].config.n_synapses == 16  # one synapse per input channel
    assert models["branches, neuronio routing"].config.routing == "neuronio"
    assert models["branches, random routing"].config.routing == "random"
    assert models["branches, random routing"].config.routing_seed == 3


def test_run_ablation_trains_scores_and_resumes(fake_store, tmp_path):
    variants = {"small memory": {"model_config": {"d_memory": 2}}, "tau_max=5ms": {"model_config": {"tau_m_max_ms": 5.0}}}
    out = tmp_path / "sweep"
    table = ablation.run_ablation(TINY, variants, fake_store, fake_store, fake_store, out, burn_in_ms=50)

    assert list(table["variant"]) == list(variants)
    assert set(ablation.RESULT_COLUMNS) <= set(table.columns)
    assert table["d_memory"].iloc[0] == 2 and np.isnan(table["d_memory"].iloc[1])
    assert table["tau_m_max_ms"].iloc[1] == 5.0
    assert table["params"].iloc[0] < table["params"].iloc[1]  # 2 memory units instead of 4
    assert table["spike_auc"].between(0, 1).all() and (table["rmse_mV"] > 0).all()
    assert (table["epochs_trained"] == 1).all()
    assert (out / "small_memory").is_dir()  # variant names become safe directory names
    run = out / "tau_max=5ms"
    assert json.loads((run / "config.json").read_text())["model_config"]["tau_m_max_ms"] == 5.0
    pd.testing.assert_frame_equal(pd.read_csv(out / ablation.TABLE_FILE), table, check_dtype=False)

    # A second call finds the finished runs and only re-scores them.
    history = (run / "history.json").read_text()
    again = ablation.run_ablation(TINY, variants, fake_store, fake_store, fake_store, out, burn_in_ms=50)
    assert (run / "history.json").read_text() == history
    np.testing.assert_allclose(again["spike_auc"], table["spike_auc"])
    # The same directory under another base config is refused instead of silently mixed.
    with pytest.raises(ConfigError, match="different config"):
        ablation.run_ablation({**TINY, "lr": 1e-3}, variants, fake_store, fake_store, fake_store, out)


def test_run_ablation_refuses_bad_arguments(fake_store, tmp_path):
    out = tmp_path / "sweep"
    with pytest.raises(ValueError, match="at least one variant"):
        ablation.run_ablation(TINY, {}, fake_store, fake_store, fake_store, out)
    with pytest.raises(ValueError, match=r"must not set \['out'\]"):
        ablation.run_ablation({**TINY, "out": "x"}, {"a": {}}, fake_store, fake_store, fake_store, out)
    with pytest.raises(ValueError, match="distinct"):
        ablation.run_ablation(TINY, {"a b": {}, "a/b": {}}, fake_store, fake_store, fake_store, out)
    assert not out.exists()  # refused before anything was written
    assert TrainConfig.from_dict(ablation.merge_config(TINY, {"train": "t", "valid": "v", "out": "o"})).epochs == 1


def test_exp_filter_matches_a_first_order_iir():
    x = np.random.default_rng(0).normal(size=(2, 300, 3))
    kappa = np.exp(-1.0 / 7.0)
    expected = lfilter([1.0], [1.0, -kappa], x, axis=1)
    np.testing.assert_allclose(ablation._exp_filter(x, 7.0), expected, rtol=1e-12, atol=1e-12)


def test_toy_cell_follows_its_equations(tmp_path):
    paths = ablation.write_toy_stores(tmp_path, n_sims=(3, 2, 2), n_time=400, tau_dend_ms=15.0)
    store = NeuronIOStore(paths["train"]).load()
    assert store.n_synapses == 64 and store.n_time == 400 and store.n_sims == 3
    assert (store.signs == np.r_[np.ones(32), -np.ones(32)]).all()

    # Recompute the soma voltage from the stored inputs with an independent filter (lfilter, float64).
    spikes = store.ds["input_spikes"].values.astype(float)
    net = spikes[..., :32] - spikes[..., 32:]
    branch = net.reshape(3, 400, 4, 8).sum(axis=3)  # 4 branches of 8 segments
    local = np.maximum(lfilter([1.0], [1.0, -np.exp(-1 / 15)], branch, axis=1) - 2.0, 0.0)
    v = -75.0 + 2.0 * lfilter([1.0], [1.0, -np.exp(-0.2)], local.sum(axis=2), axis=1) / 5.0
    stored = store.ds["soma_voltage"].values
    spiking = stored == 20.0
    np.testing.assert_allclose(stored[~spiking], v[~spiking], atol=1e-4)
    for i in range(3):
        crossings = np.flatnonzero((v[i, 1:] > -60.0) & (v[i, :-1] <= -60.0)) + 1
        np.testing.assert_array_equal(np.flatnonzero(spiking[i]), crossings)
        np.testing.assert_array_equal(store.output_spikes(i), spike_bins(store.spike_times(i), 400))
    assert spiking.sum() > 0

    other = NeuronIOStore(paths["test"]).load()
    assert not np.array_equal(other.ds["input_spikes"].values[:2], store.ds["input_spikes"].values[:2])
    mtime = paths["test"].stat().st_mtime_ns
    ablation.write_toy_stores(tmp_path, n_sims=(3, 2, 2), n_time=400)
    assert paths["test"].stat().st_mtime_ns == mtime  # existing stores are kept
