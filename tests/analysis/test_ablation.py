"""Ablation sweeps on the synthetic fake store with tiny models: seeds, resume, summaries; and the toy cell of
quick mode."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.signal import lfilter

from analysis import ablation, ablation_toy, ablation_writeup
from biophys.dataset import NeuronIOStore
from conventions.signals import spike_bins
from surrogate import run as rundir
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


def test_seed_overrides_draw_a_random_routing_per_seed_unless_it_is_fixed():
    random = {"model_config": {"routing": "random", "n_branches": 4}}
    assert ablation.seed_overrides(random, 3) == {"model_config": {"routing": "random", "n_branches": 4,
                                                                   "routing_seed": 3}, "seed": 3}
    fixed = {"model_config": {"routing": "random", "routing_seed": 7}}
    assert ablation.seed_overrides(fixed, 3)["model_config"]["routing_seed"] == 7
    neuronio = {"model_config": {"routing": "neuronio"}}
    assert ablation.seed_overrides(neuronio, 2) == {"model_config": {"routing": "neuronio"}, "seed": 2}
    assert "seed" not in random  # the variant itself is not modified


def test_run_ablation_trains_every_seed_scores_and_resumes(fake_store, tmp_path):
    variants = {"small memory": {"model_config": {"d_memory": 2}}, "tau_max=5ms": {"model_config": {"tau_m_max_ms": 5.0}}}
    out = tmp_path / "sweep"
    table = ablation.run_ablation(TINY, variants, fake_store, fake_store, fake_store, out, seeds=[0, 1], burn_in_ms=50)

    assert list(table["variant"]) == ["small memory"] * 2 + ["tau_max=5ms"] * 2
    assert list(table["seed"]) == [0, 1, 0, 1]
    assert set(ablation.RESULT_COLUMNS) <= set(table.columns)
    assert (table["d_memory"].iloc[:2] == 2).all() and table["d_memory"].iloc[2:].isna().all()
    assert (table["params"].iloc[:2] < table["params"].iloc[2]).all()  # 2 memory units instead of 4
    assert table["spike_auc"].between(0, 1).all() and (table["rmse_mV"] > 0).all()
    assert (table["epochs_trained"] == 1).all()
    for seed in (0, 1):  # variant names become safe directory names, one run per seed
        saved = json.loads((out / "small_memory" / f"seed{seed}" / "config.json").read_text())
        assert saved["seed"] == seed and saved["model_config"]["d_memory"] == 2
    weights = [torch.load(out / "tau_max=5ms" / f"seed{s}" / "model.pt")["state_dict"]["w_y.weight"] for s in (0, 1)]
    assert not torch.equal(*weights)  # the seeds train different models
    assert table["rmse_mV"].iloc[2] != table["rmse_mV"].iloc[3]
    pd.testing.assert_frame_equal(pd.read_csv(out / ablation.TABLE_FILE), table, check_dtype=False)

    # A second call finds the finished runs and only re-scores them; a new seed trains only that seed.
    run = out / "tau_max=5ms" / "seed1"
    history = (run / "history.json").read_text()
    again = ablation.run_ablation(TINY, variants, fake_store, fake_store, fake_store, out, seeds=[0, 1, 2],
                                  burn_in_ms=50)
    assert (run / "history.json").read_text() == history
    np.testing.assert_allclose(again[again["seed"] < 2]["spike_auc"], table["spike_auc"])
    assert len(again) == 6 and (out / "small_memory" / "seed2" / "model.pt").exists()
    # The same directory under another base config is refused instead of silently mixed.
    with pytest.raises(ConfigError, match="different config"):
        ablation.run_ablation({**TINY, "lr": 1e-3}, variants, fake_store, fake_store, fake_store, out, seeds=[0])


def test_a_sweep_reuses_finished_runs_of_the_same_config_from_other_sweeps(fake_store, tmp_path):
    first = ablation.run_ablation(TINY, {"tau_max=5ms": {"model_config": {"tau_m_max_ms": 5.0}}}, fake_store,
                                  fake_store, fake_store, tmp_path / "first", seeds=[0, 1], burn_in_ms=50)
    source = tmp_path / "first" / "tau_max=5ms" / "seed1"
    history = (source / "history.json").read_text()
    variants = {"short": {"model_config": {"tau_m_max_ms": 5.0}},  # the same runs under another name
                "long": {"model_config": {"tau_m_max_ms": 50.0}}}  # no such run yet
    out = tmp_path / "second"
    (out / "short" / "seed1").mkdir(parents=True)  # an empty run directory is filled too
    second = ablation.run_ablation(TINY, variants, fake_store, fake_store, fake_store, out, seeds=[1, 2],
                                   burn_in_ms=50, reuse_from=[tmp_path / "first"])

    reused = out / "short" / "seed1"
    assert json.loads((reused / rundir.REUSED_FILE).read_text()) == {"source": str(source.resolve())}
    assert (reused / "history.json").read_text() == history  # copied and re-scored, not trained again
    np.testing.assert_allclose(second["spike_auc"].iloc[0], first["spike_auc"].iloc[1])
    # seed 2 of the same variant and the other variant have no finished run of their config: trained here
    for run in (out / "short" / "seed2", out / "long" / "seed1"):
        assert (run / "model.pt").exists() and not (run / rundir.REUSED_FILE).exists()
    assert not list(out.rglob("*.copying"))
    note = ablation_writeup.reuse_note(second)
    assert note.startswith("1 of 4 runs were trained by other sweeps") and ablation_writeup.reuse_note(first) == ""
    # the same config finds the run; another learning rate does not
    same = TrainConfig.from_dict({**TINY, "seed": 1, "train": str(fake_store), "valid": str(fake_store),
                                  "out": str(tmp_path / "x"),
                                  "model_config": {**TINY["model_config"], "tau_m_max_ms": 5.0}})
    assert ablation.find_finished_run(same, [tmp_path / "first"]) == source
    assert ablation.find_finished_run(dataclasses.replace(same, lr=2 * same.lr), [tmp_path / "first"]) is None
    # a run still training is not taken either
    metrics = json.loads((source / "metrics.json").read_text())
    (source / "metrics.json").write_text(json.dumps({**metrics, "status": "running"}))
    assert ablation.find_finished_run(same, [tmp_path / "first"]) is None
    with pytest.raises(FileNotFoundError, match="reuse_from: no such directory"):
        ablation.run_ablation(TINY, variants, fake_store, fake_store, fake_store, out, reuse_from=[tmp_path / "nope"])


def test_a_sweep_in_memory_reads_the_training_store_once(fake_store, tmp_path, monkeypatch):
    reads = []
    original = NeuronIOStore.read_input_spikes

    def counting(self, sim, start=0, stop=None):
        reads.append(sim)
        return original(self, sim, start, stop)

    monkeypatch.setattr(NeuronIOStore, "read_input_spikes", counting)
    variants = {"a": {}, "b": {"model_config": {"d_memory": 2}}}
    ablation.run_ablation({**TINY, "data_mode": "memory"}, variants, fake_store, fake_store, fake_store,
                          tmp_path / "sweep", seeds=[0, 1], burn_in_ms=50)
    n_sims = NeuronIOStore(fake_store).n_sims
    # here the training, validation and test stores are one store, read whole by each: one read in all;
    # without reuse, each of the 4 runs would read it three times
    assert len(reads) == n_sims


def test_a_sweep_on_two_workers_gives_the_serial_table(fake_store, tmp_path):
    variants = {"a": {}, "b": {"model_config": {"d_memory": 2}}}
    base = {**TINY, "data_mode": "memory"}
    serial = ablation.run_ablation(base, variants, fake_store, fake_store, fake_store, tmp_path / "serial",
                                   seeds=[0, 1], burn_in_ms=50)
    parallel = ablation.run_ablation(base, variants, fake_store, fake_store, fake_store, tmp_path / "parallel",
                                     seeds=[0, 1], burn_in_ms=50, workers=2)
    assert list(parallel["variant"]) == list(serial["variant"]) and list(parallel["seed"]) == list(serial["seed"])
    for metric in ablation.METRICS:  # same seeds, one thread each: the same models
        np.testing.assert_allclose(parallel[metric], serial[metric], rtol=1e-5)
    weights = [torch.load(tmp_path / d / "b" / "seed1" / "model.pt")["state_dict"]["w_y.weight"]
               for d in ("serial", "parallel")]
    torch.testing.assert_close(*weights)
    with pytest.raises(ValueError, match="workers"):
        ablation.run_ablation(base, variants, fake_store, fake_store, fake_store, tmp_path / "x", workers=0)


_SWEEP_TERMINATED = """
import os, sys, time
from pathlib import Path
from analysis.ablation import map_in_processes
from surrogate.shared_data import share_directory, sigterm_as_exit

def job(i):
    Path(sys.argv[1], f"{os.getpid()}.{i}").touch()
    time.sleep(60)

if __name__ == "__main__":
    with sigterm_as_exit(), share_directory():  # as run_ablation does
        map_in_processes(job, list(range(6)), 2)
"""


def test_a_terminated_sweep_stops_its_workers_instead_of_running_every_queued_job(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    script, started = tmp_path / "sweep.py", tmp_path / "started"
    script.write_text(_SWEEP_TERMINATED)
    started.mkdir()
    repo = Path(__file__).resolve().parents[2]
    sweep = subprocess.Popen([sys.executable, str(script), str(started)], cwd=repo,
                             env={**os.environ, "PYTHONPATH": str(repo)})
    deadline = time.monotonic() + 60
    while len(list(started.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(list(started.iterdir())) == 2  # both workers busy, four jobs queued
    sweep.send_signal(signal.SIGTERM)
    assert sweep.wait(timeout=20) == 128 + signal.SIGTERM
    workers = {int(p.name.split(".")[0]) for p in started.iterdir()}
    time.sleep(1)
    for pid in workers:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert len(list(started.iterdir())) == 2  # no queued job ran


def test_run_ablation_refuses_bad_arguments(fake_store, tmp_path):
    out = tmp_path / "sweep"
    with pytest.raises(ValueError, match="at least one variant"):
        ablation.run_ablation(TINY, {}, fake_store, fake_store, fake_store, out)
    with pytest.raises(ValueError, match=r"must not set \['out'\]"):
        ablation.run_ablation({**TINY, "out": "x"}, {"a": {}}, fake_store, fake_store, fake_store, out)
    with pytest.raises(ValueError, match=r"must not set \['seed'\]"):
        ablation.run_ablation({**TINY, "seed": 1}, {"a": {}}, fake_store, fake_store, fake_store, out)
    with pytest.raises(ValueError, match=r"variant 'a' must not set \['seed'\]"):
        ablation.run_ablation(TINY, {"a": {"seed": 1}}, fake_store, fake_store, fake_store, out)
    with pytest.raises(ValueError, match="distinct"):
        ablation.run_ablation(TINY, {"a b": {}, "a/b": {}}, fake_store, fake_store, fake_store, out)
    for seeds in ([], [0, 0], [-1], [1.5]):
        with pytest.raises(ValueError, match="seeds"):
            ablation.run_ablation(TINY, {"a": {}}, fake_store, fake_store, fake_store, out, seeds=seeds)
    assert not out.exists()  # refused before anything was written
    assert TrainConfig.from_dict(ablation.merge_config(TINY, {"train": "t", "valid": "v", "out": "o"})).epochs == 1


def test_run_ablation_per_cell_stacks_the_cells(fake_store, tmp_path):
    stores = {"cell A": {"train": fake_store, "valid": fake_store, "test": fake_store},
              "cell B": {"train": fake_store, "valid": fake_store, "test": fake_store}}
    table = ablation.run_ablation_per_cell(TINY, {"v": {}}, stores, tmp_path / "cells", seeds=[0], burn_in_ms=50)
    assert list(table["cell"]) == ["cell A", "cell B"] and list(table.columns[:2]) == ["cell", "variant"]
    assert (tmp_path / "cells" / "cell_A" / "v" / "seed0" / "model.pt").exists()
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "cells" / ablation.TABLE_FILE), table, check_dtype=False)
    with pytest.raises(ValueError, match=r"lacks the \['test'\]"):
        ablation.run_ablation_per_cell(TINY, {"v": {}}, {"c": {"train": fake_store, "valid": fake_store}}, tmp_path)


def _rows(variant, aucs, rmses, params=100, **settings):
    return [{"variant": variant, "seed": s, "model": "branch-elm", "params": params, "spike_auc": a,
             "tpr_at_1pct_fpr": 0.5, "rmse_mV": r, "train_wall_s": 2.0, "epochs_trained": 1, "run": "x", **settings}
            for s, (a, r) in enumerate(zip(aucs, rmses))]


def test_summarise_gives_mean_and_sample_sd_per_variant():
    table = pd.DataFrame(_rows("b", [0.9, 0.92, 0.97], [1.0, 2.0, 4.0], d_memory=5)
                         + _rows("a", [0.8], [3.0], d_memory=2))
    summary = ablation.summarise(table)
    assert list(summary["variant"]) == ["b", "a"]  # order of first appearance
    b = summary.iloc[0]
    assert b["n_seeds"] == 3 and b["d_memory"] == 5 and b["train_wall_s"] == 6.0
    assert b["spike_auc_mean"] == pytest.approx(np.mean([0.9, 0.92, 0.97]))
    assert b["spike_auc_sd"] == pytest.approx(np.std([0.9, 0.92, 0.97], ddof=1))
    assert b["rmse_mV_sd"] == pytest.approx(np.sqrt(((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2 + (4 - 7 / 3) ** 2) / 2))
    assert np.isnan(summary.iloc[1]["spike_auc_sd"])  # one seed: no sd

    by_cell = ablation.summarise(pd.concat([table.assign(cell="x"), table.assign(cell="y")]), by=("cell", "variant"))
    assert list(zip(by_cell["cell"], by_cell["variant"])) == [("x", "b"), ("x", "a"), ("y", "b"), ("y", "a")]

    with pytest.raises(ValueError, match="params differs between seeds"):
        ablation.summarise(pd.DataFrame(_rows("a", [0.8], [1.0], params=1) + _rows("a", [0.8], [1.0], params=2)))
    with pytest.raises(ValueError, match="lacks the column"):
        ablation.summarise(table.drop(columns="rmse_mV"))


def test_stores_in_names_what_is_missing(tmp_path):
    paths = ablation_toy.write_toy_stores(tmp_path, n_sims=(2, 1, 1), n_time=200)
    assert ablation.stores_in(tmp_path) == paths
    with pytest.raises(FileNotFoundError, match=r"stores not found: .*nowhere/train.zarr"):
        ablation.stores_in(tmp_path / "nowhere")


def test_exp_filter_matches_a_first_order_iir():
    x = np.random.default_rng(0).normal(size=(2, 300, 3))
    kappa = np.exp(-1.0 / 7.0)
    expected = lfilter([1.0], [1.0, -kappa], x, axis=1)
    np.testing.assert_allclose(ablation_toy._exp_filter(x, 7.0), expected, rtol=1e-12, atol=1e-12)


def _soma_reference(drive, tau_soma_ms):
    """Scalar loop of the toy's integrate-and-fire soma, from its equations."""
    kappa = np.exp(-1.0 / tau_soma_ms)
    v, fired = np.empty_like(drive), np.zeros(drive.shape, bool)
    for i in range(drive.shape[0]):
        a = 0.0
        for t in range(drive.shape[1]):
            a = kappa * a + drive[i, t]
            v[i, t] = -75.0 + 2.0 * a / tau_soma_ms
            if v[i, t] > -60.0:
                fired[i, t], v[i, t], a = True, 20.0, 0.0
    return v, fired


@pytest.mark.parametrize("nonlinear", [True, False])
def test_toy_cell_follows_its_equations(tmp_path, nonlinear):
    paths = ablation.write_toy_stores(tmp_path, n_sims=(3, 2, 2), n_time=400, tau_dend_ms=15.0,
                                      branch_nonlinearity=nonlinear)
    store = NeuronIOStore(paths["train"]).load()
    assert store.n_synapses == 64 and store.n_time == 400 and store.n_sims == 3
    assert (store.signs == np.r_[np.ones(32), -np.ones(32)]).all()
    assert store.config["branch_nonlinearity"] is nonlinear

    # Recompute the soma voltage from the stored inputs: branch filter by lfilter, the soma by a scalar loop.
    spikes = store.ds["input_spikes"].values.astype(float)
    net = spikes[..., :32] - spikes[..., 32:]
    branch = lfilter([1.0], [1.0, -np.exp(-1 / 15)], net.reshape(3, 400, 4, 8).sum(axis=3), axis=1)
    local = np.maximum(branch - 2.0, 0.0) if nonlinear else branch - 1.0
    v, fired = _soma_reference(local.sum(axis=2), 5.0)
    np.testing.assert_allclose(store.ds["soma_voltage"].values, v, atol=1e-4)
    for i in range(3):
        np.testing.assert_array_equal(store.output_spikes(i), fired[i].astype(store.output_spikes(i).dtype))
        np.testing.assert_array_equal(store.output_spikes(i), spike_bins(store.spike_times(i), 400))
    assert fired.sum() > 0

    other = NeuronIOStore(paths["test"]).load()
    assert not np.array_equal(other.ds["input_spikes"].values[:2], store.ds["input_spikes"].values[:2])
    mtime = paths["test"].stat().st_mtime_ns
    ablation.write_toy_stores(tmp_path, n_sims=(3, 2, 2), n_time=400)
    assert paths["test"].stat().st_mtime_ns == mtime  # existing stores are kept


def test_toy_cells_with_and_without_the_branch_nonlinearity_share_their_inputs():
    nmda = ablation.toy_dataset(4, n_time=600, seed=5)
    ampa = ablation.toy_dataset(4, n_time=600, seed=5, branch_nonlinearity=False)
    np.testing.assert_array_equal(nmda["input_spikes"].values, ampa["input_spikes"].values)
    assert not np.array_equal(nmda["soma_voltage"].values, ampa["soma_voltage"].values)
    with pytest.raises(ValueError, match="branch_nonlinearity must be True or False"):
        ablation.toy_dataset(1, n_time=50, branch_nonlinearity="no")
