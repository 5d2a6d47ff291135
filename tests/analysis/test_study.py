"""The quality study's machinery on fake stores (nested subsets, budgets, skipping and resuming runs, probes, the
learning-rate choice, config checks), and once end to end on a ball-and-stick cell (slow)."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from analysis import cost, study, study_report, study_runs
from analysis.evaluate import AnalysisError
from analysis.study import StudyConfig, _check_same_study, _fields, main
from biophys.dataset import NeuronIOStore
from fakes import fake_store
from surrogate.config import ConfigError

torch.set_num_threads(1)
ELM = {"kind": "branch-elm", "model_config": {"n_branches": 4, "synapses_per_branch": 6, "d_memory": 4}, "lr": 0.005}


def fields(out, train, valid, **extra):
    return {"model": "branch-elm", "model_config": ELM["model_config"], "train": str(train), "valid": str(valid),
            "out": str(out), "batch_size": 2, "window_ms": 200, "burn_in_ms": 50, "skip_ms": 0, "lr": 0.005,
            "threads": 1, "batches_per_epoch": 4, "epochs": 3, "data_mode": "memory", **extra}


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("study")
    return fake_store(tmp / "train.zarr", n_sims=8, n_time=600, seed=1), fake_store(tmp / "valid.zarr", n_sims=2,
                                                                                      n_time=600, seed=2)


def test_subsets_budgets_and_schedules():
    assert study_runs.subset_sizes(1200, [0.125, 0.25, 0.5, 1.0]) == [150, 300, 600, 1200]
    assert study_runs.subset_sizes(3, [0.1, 0.2, 1.0]) == [1, 3]
    assert study_runs.budget_s(150, 1200, 14400, 900) == 1800
    assert study_runs.budget_s(10, 1200, 14400, 900) == 900
    timing = study_runs.Probe(step_s=0.2, valid_s=20.0)
    assert timing.epochs(1200.0, 500) == 10  # 500 × 0.2 s + 20 s = 120 s per epoch
    assert timing.epochs(10.0, 500) == 1
    assert timing.published_schedule_h() == pytest.approx(30 * 11_400 * 0.2 / 3600)


def test_subset_store_holds_the_first_simulations_of_the_full_one(stores):
    full, _ = stores
    path = study_runs.subset_store(full, 3)
    sub, whole = NeuronIOStore(path), NeuronIOStore(full)
    assert sub.n_sims == 3 and path != full
    assert np.array_equal(sub.sim_ids, whole.sim_ids[:3])
    for i in range(3):
        assert np.array_equal(sub.input_spikes(i), whole.input_spikes(i))
        assert np.array_equal(sub.soma_voltage(i), whole.soma_voltage(i))
    assert sub.provenance["subset"] == {"of": str(full.resolve()), "first_sims": 3}
    assert "timing" not in sub.provenance
    stamp = os.stat(path / "zarr.json").st_mtime_ns
    assert study_runs.subset_store(full, 3) == path and os.stat(path / "zarr.json").st_mtime_ns == stamp
    assert study_runs.subset_store(full, 8) == full


def test_runs_are_skipped_when_done_and_resumed_when_cut(stores, tmp_path):
    train, valid = stores
    out = tmp_path / "run"
    assert study_runs.run_state(out, 5.0) == ("fresh", 5.0)
    study_runs.ensure_run(fields(out, train, valid, epochs=1), budget=60.0)
    assert study_runs.run_state(out, 60.0)[0] == "done"
    stamp = os.stat(out / "metrics.json").st_mtime_ns
    study_runs.ensure_run(fields(out, train, valid, epochs=1), budget=60.0)
    assert os.stat(out / "metrics.json").st_mtime_ns == stamp  # skipped

    cut = tmp_path / "cut"
    metrics = {"status": "wall_budget", "wall_s": 0.5}
    study_runs.ensure_run(fields(cut, train, valid, epochs=50), budget=1e-3)  # stops after its first batch
    saved = json.loads((cut / "metrics.json").read_text())
    assert saved["status"] == "wall_budget" and saved["steps"] < 200
    (cut / "metrics.json").write_text(json.dumps({**saved, **metrics}))
    state, left = study_runs.run_state(cut, 2.0)
    assert state == "resume" and left == pytest.approx(1.5)
    study_runs.ensure_run(fields(cut, train, valid, epochs=50), budget=2.0)
    resumed = json.loads((cut / "metrics.json").read_text())
    assert resumed["steps"] > saved["steps"] and json.loads((cut / "config.json").read_text())["epochs"] == 50


def test_a_folder_without_checkpoint_is_refused(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    with pytest.raises(AnalysisError, match="no checkpoint.pt"):
        study_runs.run_state(tmp_path / "run", 10.0)


def test_probe_measures_and_is_read_back(stores, tmp_path):
    train, valid = stores
    timing = study_runs.probe(fields(tmp_path / "probe", train, valid), batches=3)
    assert timing.step_s > 0 and timing.valid_s >= 0
    assert len(json.loads((tmp_path / "probe" / "history.json").read_text())) == 3
    stamp = os.stat(tmp_path / "probe" / "history.json").st_mtime_ns
    assert study_runs.probe(fields(tmp_path / "probe", train, valid), batches=3) == timing
    assert os.stat(tmp_path / "probe" / "history.json").st_mtime_ns == stamp


def test_probe_times_leave_the_warm_up_epoch_out_and_read_old_two_epoch_probes():
    epochs = [{"wall_s": 5.0, "batches": 20}, {"wall_s": 7.0, "batches": 20}, {"wall_s": 12.0, "batches": 20}]
    timing = study_runs.probe_times(epochs)
    assert timing.step_s == pytest.approx(0.1) and timing.valid_s == pytest.approx(3.0)
    old = study_runs.probe_times([{"wall_s": 5.0, "batches": 20}, {"wall_s": 12.0, "batches": 20}])
    assert old.step_s == pytest.approx(0.25) and old.valid_s == pytest.approx(2.0)


def test_the_lowest_validation_loss_picks_the_learning_rate(tmp_path):
    runs = {}
    for lr, loss in ((1e-3, 0.30), (3e-3, 0.20), (1e-2, float("nan"))):
        runs[lr] = tmp_path / f"lr_{lr:g}"
        runs[lr].mkdir()
        (runs[lr] / "metrics.json").write_text(json.dumps({"best": {"valid_loss": loss, "valid_auc": 0.9}}))
    chosen, best = study_runs.best_lr(runs)
    assert chosen == 3e-3 and best[1e-3]["valid_loss"] == 0.30
    with pytest.raises(AnalysisError, match="no run"):
        study_runs.best_lr({1e-2: runs[1e-2]})


def test_study_config_checks_and_refuses_another_study_in_the_same_folder(tmp_path):
    with pytest.raises(ConfigError, match="no models"):
        StudyConfig()
    with pytest.raises(ConfigError, match="exactly one of lr, lr_grid"):
        StudyConfig(models={"x": {"kind": "tcn"}})
    with pytest.raises(ConfigError, match="seeds"):
        StudyConfig(models={"e": ELM}, seeds={"train": 1})
    with pytest.raises(ConfigError, match="train_sims"):
        StudyConfig(models={"e": ELM}, train_sims="10")
    _check_same_study(StudyConfig(models={"e": ELM}), tmp_path)
    _check_same_study(StudyConfig(models={"e": ELM}, threads=1, neuronio="/x", data_mode="lazy"),
                      tmp_path)  # runtime only
    fields = _fields(StudyConfig(models={"e": ELM}, data_mode="memory", grad_clip_norm=1.0), ELM, 0.01, "t", "v", "o")
    assert fields["data_mode"] == "memory" and fields["grad_clip_norm"] == 1.0
    with pytest.raises(ConfigError, match="grad_clip_norm"):
        _check_same_study(StudyConfig(models={"e": ELM}, grad_clip_norm=1.0), tmp_path)
    with pytest.raises(ConfigError, match="train_sims"):
        _check_same_study(StudyConfig(models={"e": ELM}, train_sims=10), tmp_path)
    assert main(["--config", str(tmp_path / "absent.toml"), "--out", str(tmp_path / "s")]) == 2


def test_simulation_cost_sums_the_store_timing(stores):
    assert cost.simulation_cpu_s({"timing": {"neuron_wall_s": 3600.0, "input_draw_s": 36.0}}) == 3636.0
    assert cost.simulation_cpu_s({}) is None
    train, _ = stores
    c = study_report.simulation_cost({"train": train})["train"]
    assert c == {"sims": 8, "simulated_h": pytest.approx(8 * 600 / 3.6e6), "cpu_h": None}


TOY = """
generate_config = "{gen}"
cell = "ball-and-stick"
morphology = "ball-and-stick"
duration_ms = 1200
train_sims = 8
valid_sims = 2
test_sims = 2
sims_per_task = 2
fractions = [0.25, 0.5, 1.0]
wall_s_all = 3.0
wall_s_min = 1.0
batches_per_epoch = 5
probe_batches = 2
workers = 2
threads = 1

[models.belm]
kind = "branch-elm"
model_config = {{ n_branches = 6, synapses_per_branch = 12, d_memory = 4 }}
lr = 0.005

[models.tcn]
kind = "tcn"
model_config = {{ n_layers = 2, channels = 4, first_kernel = 5, kernel = 3, dilation_base = 1 }}
lr_grid = [0.001, 0.01]

[models.lstm]
kind = "lstm"
model_config = {{ hidden = 4 }}
lr = 0.005
"""


@pytest.mark.slow
@pytest.mark.neuron
def test_the_study_runs_end_to_end_and_a_rerun_skips_everything(tmp_path):
    gen = tmp_path / "gen.toml"
    gen.write_text('[cell]\nname = "ball-and-stick"\n')
    config = tmp_path / "study.toml"
    config.write_text(TOY.format(gen=gen))
    root = tmp_path / "quality"
    assert main(["--config", str(config), "--out", str(root)]) == 0
    record = json.loads((root / "study.json").read_text())
    assert set(record["training"]["models"]) == {"belm", "tcn", "lstm"}
    assert record["training"]["models"]["tcn"]["lr"] in (0.001, 0.01)
    assert record["simulation"]["train"]["cpu_h"] > 0
    curve = json.loads((root / "learning_curve" / "learning_curve.json").read_text())
    assert sorted(p["train_sims"] for p in curve["points"]) == [2, 2, 2, 4, 4, 4, 8, 8, 8]
    assert (root / "learning_curve" / "learning_curve.png").exists() and (root / "report" / "report.md").exists()
    text = (root / "study.md").read_text()
    assert "published schedule" in text and "simulation CPU-hours" in text
    stamps = {p: os.stat(p).st_mtime_ns for p in root.rglob("metrics.json") if "report" not in p.parts}
    published = tmp_path / "results"
    assert main(["--config", str(config), "--out", str(root), "--publish", str(published)]) == 0
    assert {p: os.stat(p).st_mtime_ns for p in stamps} == stamps
    assert sorted(p.name for p in published.iterdir()) == ["belm_sims00008", "learning_curve", "lstm_sims00008",
                                                           "report", "study.md", "tcn_sims00008"]
    assert (published / "report" / "report.md").exists()  # study.md links to it
    assert (published / "tcn_sims00008" / "model.pt").exists()
    assert not list(published.rglob("checkpoint.pt"))


def test_data_only_simulates_the_stores_of_another_cell_at_the_study_sizes_and_seeds(tmp_path, monkeypatch):
    commands = []
    monkeypatch.setattr(study, "_run", lambda command, what: commands.append(command))
    root = tmp_path / "quality_ampa"
    argv = ["--config", "configs/quality_study.toml", "--out", str(root), "--data-only",
            "--generate-config", "configs/quality_ampa.toml"]
    assert main(argv) == 0
    settings = [{key: value for key, value in zip(c, c[1:]) if key.startswith("--") and not value.startswith("--")}
                for c in commands]
    assert all(c[1:4] == ["-m", "biophys", "generate"] for c in commands)
    defaults = StudyConfig.load(Path("configs/quality_study.toml"), {})
    assert [s["--out"] for s in settings] == [str(root / "data" / f"{split}.zarr") for split in ("train", "valid",
                                                                                               "test")]
    assert [s["--seed"] for s in settings] == [str(defaults.seeds[k]) for k in ("train", "valid", "test")]
    assert [s["--n-sims"] for s in settings] == [str(n) for n in (defaults.train_sims, defaults.valid_sims,
                                                                  defaults.test_sims)]
    assert {s["--config"] for s in settings} == {"configs/quality_ampa.toml"}
    assert {s["--morphology"] for s in settings} == {defaults.morphology}
    assert json.loads((root / "study_config.json").read_text())["generate_config"] == "configs/quality_ampa.toml"
    assert sorted(p.name for p in root.iterdir()) == ["study_config.json"]  # no training, no report


def test_publish_copies_the_final_runs_without_checkpoints_and_replaces_an_older_copy(tmp_path):
    root, dest = tmp_path / "study", tmp_path / "results"
    run = root / "curve" / "m" / "m_sims00008"
    run.mkdir(parents=True)
    for name in ("model.pt", "config.json", "checkpoint.pt"):
        (run / name).write_text(name)
    (root / "learning_curve").mkdir()
    (root / "learning_curve" / "learning_curve.md").write_text("curve")
    (root / "study.md").write_text("study v1")
    study_report.publish({"m": run}, root, dest)
    assert sorted(p.name for p in (dest / "m_sims00008").iterdir()) == ["config.json", "model.pt"]
    assert not (dest / "report").exists()  # none written, none asked for
    (root / "report").mkdir()
    (root / "report" / "report.md").write_text("report")
    (root / "study.md").write_text("study v2")
    (run / "model.pt").write_text("better weights")
    study_report.publish({"m": run}, root, dest)
    assert (dest / "study.md").read_text() == "study v2"
    assert (dest / "m_sims00008" / "model.pt").read_text() == "better weights"
    assert (dest / "report" / "report.md").read_text() == "report"
    assert not list(dest.glob(".*partial"))
    (root / "study.md").unlink()
    with pytest.raises(AnalysisError, match="nothing to publish at .*study.md"):
        study_report.publish({"m": run}, root, dest)


def test_original_neuronio_pickles_are_imported_once_and_scored(tmp_path, monkeypatch):
    import pandas as pd

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "biophys"))  # cell_helpers
    from cell_helpers import params_dict, simulation_dict, write_pickle
    from surrogate.config import TrainConfig
    from surrogate.train import train

    segments = pd.DataFrame({"tree": ["basal", "basal", "apical", "apical"], "length_um": [10.0] * 4,
                             "distance_um": [5.0, 15.0, 10.0, 30.0], "section_index": [0, 0, 1, 1]})
    rng = np.random.default_rng(0)
    pickles = tmp_path / "pickles"
    pickles.mkdir()
    sims = [simulation_dict((rng.random((8, 600)) < 0.05).astype(np.uint8), -70 + rng.standard_normal(600),
                            np.array([100.4, 350.2])) for _ in range(2)]
    write_pickle(pickles / "a.p", params_dict(segments, 600, 2, 7), sims)
    store = study_report.import_neuronio(pickles, tmp_path / "neuronio.zarr")
    assert NeuronIOStore(store).n_sims == 2
    assert study_report.import_neuronio(pickles, tmp_path / "neuronio.zarr") == store  # once
    run = train(TrainConfig(model="branch-elm", model_config={"n_branches": 2, "synapses_per_branch": 5,
                                                              "d_memory": 3},
                            train=str(store), valid=str(store), out=str(tmp_path / "run"), epochs=1,
                            batches_per_epoch=1, batch_size=2, window_ms=200, burn_in_ms=50, skip_ms=0, threads=1),
                progress=False)
    other = fake_store(tmp_path / "other.zarr", n_sims=2, n_time=600)
    scores = study_report.score_on({"fits": run}, store)
    assert set(scores["fits"]) == {"spike_auc", "tpr_1pct", "rmse_mV"}
    assert "error" in study_report.score_on({"other cell": run}, other)["other cell"]
    empty = tmp_path / "none"
    empty.mkdir()
    with pytest.raises(AnalysisError, match="no NeuronIO pickles"):
        study_report.import_neuronio(empty, tmp_path / "x.zarr")
