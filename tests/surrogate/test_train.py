"""The training loop and run directories (surrogate.train, surrogate.run)."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from biophys import dataset
from biophys.dataset import StoreError
from fakes import fake_dataset, fake_store
from conventions import machine
from conventions.layout import SynapseLayout
from surrogate import resources
from surrogate import run as rundir
from surrogate import train as train_mod
from surrogate.data import NeuronIOArrays, store_layout
from surrogate.predict import predict_arrays
from surrogate.models import build_model, num_params
from surrogate.run import RunError, load_run
from surrogate.config import ConfigError, TrainConfig
from surrogate.objective import validation_metrics, window_loss
from surrogate.train import train

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("stores")
    return (fake_store(root / "train.zarr", n_sims=4, n_time=900, seed=0),
            fake_store(root / "valid.zarr", n_sims=2, n_time=900, seed=1))


def tiny_config(stores, out, **overrides) -> TrainConfig:
    """LSTM hidden 8 on 300 ms windows: each run takes about a second."""
    values = dict(model="lstm", model_config={"hidden": 8}, train=str(stores[0]), valid=str(stores[1]),
                  out=str(out), epochs=2, batches_per_epoch=3, batch_size=4, window_ms=300, burn_in_ms=50,
                  threads=1, seed=0)
    values.update(overrides)
    return TrainConfig(**values)


def checkpoint_weights(run_dir) -> dict:
    return torch.load(Path(run_dir) / rundir.CHECKPOINT_FILE, weights_only=True)["model"]


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_window_loss_matches_a_float64_reference_and_ignores_burn_in():
    g = torch.Generator().manual_seed(0)
    y = torch.randn(2, 10, 2, generator=g, dtype=torch.float64)
    spike = (torch.rand(2, 10, generator=g) < 0.3).double()
    soma = torch.randn(2, 10, generator=g, dtype=torch.float64)
    z, s, v = y[:, 4:, 0].numpy(), spike[:, 4:].numpy(), soma[:, 4:].numpy()
    p = 1 / (1 + np.exp(-z))
    bce = -np.mean(s * np.log(p) + (1 - s) * np.log(1 - p))
    mse = np.mean((y[:, 4:, 1].numpy() - v) ** 2)
    assert window_loss(y, spike, soma, 4).item() == pytest.approx(0.5 * bce + 0.5 * mse, rel=1e-12)
    changed = y.clone()
    changed[:, :4] += 100.0
    assert window_loss(changed, spike, soma, 4).item() == window_loss(y, spike, soma, 4).item()


def test_validation_metrics_by_hand(stores):
    valid = NeuronIOArrays.from_store(stores[1])
    y = np.zeros((valid.n_sims, valid.n_time, 2), np.float32)
    y[..., 0] = valid.spike_labels  # a perfect spike ranking
    y[..., 1] = (-60.0 + 67.7) * 0.1  # a constant −60 mV voltage prediction
    m = validation_metrics(y, valid, burn_in_ms=50)
    truth = np.minimum(valid.soma_mv[:, 50:].astype(np.float64), -55.0)
    assert m["valid_auc"] == 1.0
    assert m["valid_rmse_mv"] == pytest.approx(np.sqrt(np.mean((truth + 60.0) ** 2)), rel=1e-5)


def test_snapshot_is_a_real_copy_not_a_reference():
    model = build_model("lstm", {"hidden": 4}, n_inputs=6)
    shallow = model.state_dict()
    snapshot = train_mod.snapshot_state(model)
    before = {k: v.clone() for k, v in snapshot.items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    assert not torch.equal(shallow["readout.weight"], before["readout.weight"]), "state_dict() is a live view"
    assert_same_state(snapshot, before)


def test_train_writes_a_complete_run_dir(stores, tmp_path):
    out = train(tiny_config(stores, tmp_path / "run"), progress=False)
    names = {p.name for p in out.iterdir()}
    assert names == {"config.json", "metrics.json", "history.json", "model.pt", "checkpoint.pt", "curves.png"}
    run = load_run(out)
    assert run.config == json.loads((out / "config.json").read_text())
    assert run.config["model_config"]["hidden"] == 8 and run.config["model_config"]["n_inputs"] == 16
    assert run.config["skip_ms"] == 500 and run.config["out"] == str(out.resolve())
    assert [h["epoch"] for h in run.history] == [1, 2] and run.history[-1]["step"] == 6
    assert run.history[-1]["lr"] == pytest.approx(0.0, abs=1e-12)  # cosine decay to 0 over all batches
    assert run.history[0]["lr"] == pytest.approx(5e-4 * 0.5 * (1 + np.cos(np.pi * 3 / 6)))
    m = run.metrics
    assert m["status"] == "finished" and m["epochs_completed"] == 2 and m["steps"] == 6
    assert m["num_params"] == num_params(run.model) > 0
    assert m["provenance"]["data"]["train"]["provenance"]["cell"]["name"] == "fake-integrator"
    assert len(m["provenance"]["data"]["train"]["config_sha256"]) == 64
    assert run.data_provenance == m["provenance"]["data"]
    assert not run.model.training
    for h in run.history:
        assert 0.0 <= h["valid_auc"] <= 1.0 and h["valid_rmse_mv"] > 0 and np.isfinite(h["train_loss"])


def test_best_weights_are_the_best_epochs_not_the_last(stores, tmp_path, monkeypatch):
    """Validation losses 0.5, 0.3, 0.9: model.pt must hold the weights validated in epoch 2."""
    seen = []
    real_predict = train_mod.predict_arrays

    def recording_predict(model, *args, **kwargs):
        seen.append({k: v.clone() for k, v in model.state_dict().items()})
        return real_predict(model, *args, **kwargs)

    losses = iter([0.5, 0.3, 0.9])

    def scripted_metrics(y, data, burn_in_ms):
        return {**validation_metrics(y, data, burn_in_ms), "valid_loss": next(losses)}

    monkeypatch.setattr(train_mod, "predict_arrays", recording_predict)
    monkeypatch.setattr(train_mod, "validation_metrics", scripted_metrics)
    out = train(tiny_config(stores, tmp_path / "run", epochs=3), progress=False)
    best = torch.load(out / "model.pt", weights_only=True)["state_dict"]
    assert len(seen) == 3
    assert_same_state(best, seen[1])
    assert not torch.equal(best["readout.weight"], seen[2]["readout.weight"])
    assert_same_state(checkpoint_weights(out), seen[2])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["best_epoch"] == 2 and metrics["best"]["valid_loss"] == 0.3 and metrics["last"]["valid_loss"] == 0.9


def test_loaded_model_reproduces_the_best_validation_loss(stores, tmp_path):
    out = train(tiny_config(stores, tmp_path / "run", epochs=3, lr=0.05), progress=False)
    run = load_run(out)
    valid = NeuronIOArrays.from_store(stores[1])
    again = validation_metrics(predict_arrays(run.model, valid), valid, burn_in_ms=50)
    assert again["valid_loss"] == pytest.approx(run.metrics["best"]["valid_loss"], rel=1e-6)
    assert run.metrics["best"]["valid_loss"] == min(h["valid_loss"] for h in run.history)


def test_same_seed_same_weights_other_seed_other_weights(stores, tmp_path):
    a = train(tiny_config(stores, tmp_path / "a"), progress=False)
    b = train(tiny_config(stores, tmp_path / "b"), progress=False)
    c = train(tiny_config(stores, tmp_path / "c", seed=1), progress=False)
    assert_same_state(checkpoint_weights(a), checkpoint_weights(b))
    assert not torch.equal(checkpoint_weights(a)["readout.weight"], checkpoint_weights(c)["readout.weight"])


def test_gradients_are_clipped_to_the_given_norm_before_each_step(stores, tmp_path, monkeypatch):
    """The optimizer sees gradients of global L2 norm at most grad_clip_norm, and the history says how many
    batches were clipped; without the option the gradients reach it unchanged."""
    seen = []
    step = torch.optim.Adam.step

    def spy(self, *args, **kwargs):
        grads = [p.grad for group in self.param_groups for p in group["params"] if p.grad is not None]
        seen.append(float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))))
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", spy)
    plain = train(tiny_config(stores, tmp_path / "plain"), progress=False)
    unclipped, seen[:] = list(seen), []
    clipped = train(tiny_config(stores, tmp_path / "clipped", grad_clip_norm=1e-4), progress=False)
    assert min(unclipped) > 1e-4 and max(seen) <= 1e-4 * (1 + 1e-5)
    assert [h["clipped_fraction"] for h in json.loads((clipped / "history.json").read_text())] == [1.0, 1.0]
    assert all(h["clipped_fraction"] is None for h in json.loads((plain / "history.json").read_text()))


def test_interrupted_and_resumed_run_equals_an_uninterrupted_one(stores, tmp_path):
    straight = train(tiny_config(stores, tmp_path / "straight"), progress=False)
    cut = tiny_config(stores, tmp_path / "cut", max_wall_s=1e-9)  # stops after the first batch
    train(cut, progress=False)
    metrics = json.loads((tmp_path / "cut" / "metrics.json").read_text())
    assert metrics["status"] == "wall_budget" and metrics["steps"] == 1
    train(dataclasses.replace(cut, max_wall_s=None), resume=True, progress=False)
    metrics = json.loads((tmp_path / "cut" / "metrics.json").read_text())
    assert metrics["status"] == "finished" and metrics["steps"] == 6
    assert_same_state(checkpoint_weights(tmp_path / "cut"), checkpoint_weights(straight))
    history = json.loads((tmp_path / "cut" / "history.json").read_text())
    assert [(h["epoch"], h["batches"]) for h in history] == [(1, 1), (1, 2), (2, 3)]
    load_run(tmp_path / "cut")  # config.json and checkpoint still agree after the resume


def test_lazy_training_equals_in_memory_training(stores, tmp_path):
    memory = train(tiny_config(stores, tmp_path / "memory", data_mode="memory"), progress=False)
    lazy = train(tiny_config(stores, tmp_path / "lazy", data_mode="lazy"), progress=False)
    assert_same_state(checkpoint_weights(lazy), checkpoint_weights(memory))
    assert_same_state(torch.load(lazy / "model.pt", weights_only=True)["state_dict"],
                      torch.load(memory / "model.pt", weights_only=True)["state_dict"])
    losses = [[(h["train_loss"], h["valid_loss"], h["valid_auc"]) for h in load_run(run).history]
              for run in (memory, lazy)]
    assert losses[0] == losses[1]
    assert [load_run(run).metrics["data_mode"]["mode"] for run in (memory, lazy)] == ["memory", "lazy"]


def test_a_run_cut_in_memory_resumes_lazily_as_if_uncut(stores, tmp_path):
    """data_mode is a runtime field: changing it on resume is allowed because it changes nothing computed."""
    straight = train(tiny_config(stores, tmp_path / "straight", data_mode="memory"), progress=False)
    cut = tiny_config(stores, tmp_path / "cut", data_mode="memory", max_wall_s=1e-9)
    train(cut, progress=False)
    train(dataclasses.replace(cut, max_wall_s=None, data_mode="lazy"), resume=True, progress=False)
    assert_same_state(checkpoint_weights(tmp_path / "cut"), checkpoint_weights(straight))
    run = load_run(tmp_path / "cut")
    assert run.metrics["status"] == "finished" and run.metrics["data_mode"]["mode"] == "lazy"
    assert run.config["data_mode"] == "memory"  # config.json keeps the first invocation's settings


def test_auto_data_mode_holds_small_stores_in_memory_and_large_ones_on_disk(stores, tmp_path, monkeypatch):
    train_store, valid_store = dataset.NeuronIOStore(stores[0]), dataset.NeuronIOStore(stores[1])
    need = 4 * 900 * (16 + 5) + 2 * 900 * (16 + 5)  # uint8 spikes + float32 voltage + bool label per ms
    auto = resources.choose_data_mode("auto", train_store, valid_store)
    assert auto["mode"] == "memory" and auto["in_memory_bytes"] == need and auto["ram_bytes"] > 4 * need
    # two processes on this machine, each with the whole training store and one of the two validation sims
    assert resources.choose_data_mode("auto", train_store, valid_store, 2, 2)["in_memory_bytes"] == \
        2 * (4 * 900 * 21 + 900 * 21)
    monkeypatch.setattr(resources, "available_memory_bytes", lambda: 4 * need - 1)
    assert resources.choose_data_mode("auto", train_store, valid_store)["mode"] == "lazy"
    assert resources.choose_data_mode("memory", train_store, valid_store)["mode"] == "memory"
    monkeypatch.setattr(resources, "available_memory_bytes", lambda: 4 * need)
    assert resources.choose_data_mode("auto", train_store, valid_store)["mode"] == "memory"
    assert resources.choose_data_mode("lazy", train_store, valid_store)["mode"] == "lazy"
    monkeypatch.setattr(resources, "available_memory_bytes", lambda: 200_000)  # lazy, yet a batch fits
    out = train(tiny_config(stores, tmp_path / "run", epochs=1), progress=False)
    recorded = load_run(out).metrics["data_mode"]
    assert recorded == {"mode": "lazy", "requested": "auto", "in_memory_bytes": need, "ram_bytes": 200_000}


def test_cgroup_memory_limit_v2_v1_and_none(tmp_path):
    proc = tmp_path / "cgroup"
    (tmp_path / "fs" / "job" / "step").mkdir(parents=True)
    proc.write_text("0::/job/step\n")
    (tmp_path / "fs" / "job" / "step" / "memory.max").write_text("4294967296\n")
    assert machine.cgroup_memory_limit(proc, tmp_path / "fs") == 4 * 2**30
    (tmp_path / "fs" / "job" / "step" / "memory.max").write_text("max\n")
    assert machine.cgroup_memory_limit(proc, tmp_path / "fs") is None
    (tmp_path / "fs" / "memory" / "slurm").mkdir(parents=True)
    (tmp_path / "fs" / "memory" / "slurm" / "memory.limit_in_bytes").write_text("1073741824\n")
    proc.write_text("12:cpuset:/slurm\n11:memory:/slurm\n")
    assert machine.cgroup_memory_limit(proc, tmp_path / "fs") == 2**30
    assert machine.cgroup_memory_limit(tmp_path / "absent", tmp_path / "fs") is None
    assert 0 < machine.available_memory_bytes() <= os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def test_resume_refuses_a_different_config(stores, tmp_path):
    cfg = tiny_config(stores, tmp_path / "run", max_wall_s=1e-9)
    train(cfg, progress=False)
    with pytest.raises(ConfigError, match=r"different config \(lr: run has 0.0005, now 0.001\)"):
        train(dataclasses.replace(cfg, lr=1e-3), resume=True, progress=False)
    with pytest.raises(ConfigError, match="hidden"):
        train(dataclasses.replace(cfg, model_config={"hidden": 9}), resume=True, progress=False)


def test_resume_needs_a_checkpoint_and_fresh_runs_an_empty_dir(stores, tmp_path):
    with pytest.raises(RunError, match="cannot resume.*checkpoint.pt does not exist"):
        train(tiny_config(stores, tmp_path / "none"), resume=True, progress=False)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    with pytest.raises(RunError, match="not empty.*--resume"):
        train(tiny_config(stores, tmp_path / "full"), progress=False)


def test_early_stopping(stores, tmp_path, monkeypatch):
    losses = iter([0.5, 0.6, 0.7, 0.8, 0.9])
    monkeypatch.setattr(train_mod, "validation_metrics",
                        lambda y, data, b: {"valid_loss": next(losses), "valid_auc": 0.5, "valid_rmse_mv": 1.0})
    out = train(tiny_config(stores, tmp_path / "run", epochs=5, early_stopping_patience=2), progress=False)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "early_stopped" and metrics["epochs_completed"] == 3 and metrics["best_epoch"] == 1


def test_a_non_finite_loss_stops_training_with_a_clear_error(stores, tmp_path, monkeypatch):
    real_loss = train_mod.window_loss
    monkeypatch.setattr(train_mod, "window_loss", lambda *args: real_loss(*args) * float("nan"))
    with pytest.raises(train_mod.TrainingError, match="diverged.*nan in epoch 1"):
        train(tiny_config(stores, tmp_path / "run"), progress=False)
    assert not (tmp_path / "run" / "model.pt").exists()


def test_valid_every_skips_validations_but_validates_the_last_epoch(stores, tmp_path):
    out = train(tiny_config(stores, tmp_path / "run", epochs=3, valid_every=2), progress=False)
    history = json.loads((out / "history.json").read_text())
    assert [h["valid_loss"] is not None for h in history] == [False, True, True]


def assert_nothing_written(path: Path) -> None:
    assert not path.exists() or not any(path.iterdir())


def test_synapse_count_mismatch_is_caught_before_writing(stores, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(StoreError, match="expects 1278 input channels.*16 synapses"):
        train(tiny_config(stores, out, model_config={"hidden": 8, "n_inputs": 1278}), progress=False)
    other = fake_store(tmp_path / "other.zarr", n_sims=2, n_time=900, n_segments=5)
    with pytest.raises(StoreError, match="other synapses"):
        train(tiny_config(stores, out, valid=str(other)), progress=False)
    assert_nothing_written(out)


@pytest.mark.parametrize("data_mode", ["memory", "lazy"])
def test_nan_and_missing_stores_are_caught_before_writing(stores, tmp_path, data_mode):
    ds = fake_dataset(n_sims=3, n_time=900)
    ds["soma_voltage"][1, 5] = np.nan
    nan_store = dataset.write_store(ds, tmp_path / "nan.zarr")
    out = tmp_path / "run"
    with pytest.raises(StoreError, match=r"NaN.*simulations \[1\]"):
        train(tiny_config(stores, out, train=str(nan_store), data_mode=data_mode), progress=False)
    with pytest.raises(StoreError, match="no dataset store"):
        train(tiny_config(stores, out, valid=str(tmp_path / "absent.zarr"), data_mode=data_mode), progress=False)
    assert_nothing_written(out)


@pytest.mark.parametrize("field, value, message", [
    ("model", "gru", "unknown model"),
    ("epochs", 0, "epochs must be an integer"),
    ("burn_in_ms", 300, "burn_in_ms"),
    ("window_ms", 2000, "does not fit"),
    ("model_config", {"hidden": 8, "colour": 1}, "colour"),
    ("lr", -1.0, "lr must be"),
    ("data_mode", "disk", "data_mode must be one of auto, memory, lazy"),
    ("grad_clip_norm", 0.0, "grad_clip_norm must be a positive number"),
])
def test_bad_configs_are_config_errors(stores, tmp_path, field, value, message):
    with pytest.raises(ConfigError, match=message):
        train(tiny_config(stores, tmp_path / "run", **{field: value}), progress=False)
    assert_nothing_written(tmp_path / "run")


def test_load_run_errors(stores, tmp_path):
    with pytest.raises(RunError, match="no run directory"):
        load_run(tmp_path / "absent")
    out = train(tiny_config(stores, tmp_path / "run", epochs=1), progress=False)
    (out / "model.pt").rename(tmp_path / "model.pt")
    with pytest.raises(RunError, match="no weights"):
        load_run(out)
    (tmp_path / "model.pt").rename(out / "model.pt")
    config = json.loads((out / "config.json").read_text())
    config["model_config"]["hidden"] = 9
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(RunError, match="does not fit the model"):
        load_run(out)
    config["model_config"]["hidden"] = 8
    config["lr"] = 1.0
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(RunError, match="different config"):
        load_run(out)
    (out / "config.json").unlink()
    with pytest.raises(RunError, match="config.json is missing"):
        load_run(out)


def test_train_config_from_dict_rejects_unknown_keys():
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['epoch'\] in the training config"):
        TrainConfig.from_dict({"epoch": 3})
    assert TrainConfig.from_dict({"epochs": 3}).epochs == 3


@pytest.mark.slow
def test_torchrun_two_processes(stores, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [str(Path(sys.executable).parent / "torchrun"), "--nproc_per_node", "2", "--standalone", "-m", "surrogate",
           "train", "--model", "lstm", "--model-config", '{"hidden": 8}', "--train", str(stores[0]),
           "--valid", str(stores[1]), "--out", str(out), "--epochs", "2", "--batches-per-epoch", "3",
           "--batch-size", "4", "--window-ms", "300", "--burn-in-ms", "50", "--threads", "1", "--no-progress"]
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    run = load_run(out)
    assert run.metrics["world_size"] == 2 and run.metrics["windows_per_step"] == 8
    assert run.metrics["status"] == "finished" and run.metrics["steps"] == 6
    samplers = torch.load(out / "checkpoint.pt", weights_only=True)["rng"]["samplers"]
    assert len(samplers) == 2 and samplers[0] != samplers[1], "each rank must draw its own windows"
    single = train(tiny_config(stores, tmp_path / "single"), progress=False)
    assert not torch.equal(checkpoint_weights(out)["readout.weight"], checkpoint_weights(single)["readout.weight"])
    lazy = tmp_path / "ddp-lazy"
    cmd[cmd.index(str(out))] = str(lazy)
    result = subprocess.run([*cmd, "--data-mode", "lazy"], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert load_run(lazy).metrics["data_mode"]["mode"] == "lazy"
    assert_same_state(checkpoint_weights(lazy), checkpoint_weights(out))


def test_model_pt_alone_rebuilds_the_model(stores, tmp_path):
    out = train(tiny_config(stores, tmp_path / "run", epochs=1), progress=False)
    saved = torch.load(out / "model.pt", weights_only=True)
    assert set(saved) == {"kind", "config", "state_dict", "layout"}
    model = build_model(saved["kind"], saved["config"], layout=SynapseLayout.from_dict(saved["layout"]))
    model.load_state_dict(saved["state_dict"])
    x = torch.randn(2, 40, 16)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), load_run(out).model(x), rtol=0, atol=0)
        torch.testing.assert_close(rundir.load_model(out / "model.pt")(x), model(x), rtol=0, atol=0)
    assert model.layout == load_run(out).layout == store_layout(dataset.NeuronIOStore(stores[0]))


def test_a_run_written_with_bare_weights_still_loads_by_position(stores, tmp_path):
    out = train(tiny_config(stores, tmp_path / "run", epochs=1), progress=False)
    new = load_run(out)
    torch.save(torch.load(out / "model.pt", weights_only=True)["state_dict"], out / "model.pt")  # the old layout
    old = load_run(out)
    assert old.layout is None and new.layout is not None
    x = torch.randn(1, 30, 16)
    with torch.no_grad():
        torch.testing.assert_close(old.model(x), new.model(x), rtol=0, atol=0)
    with pytest.raises(RunError, match="bare weights"):
        rundir.load_model(out / "model.pt")


def test_resuming_on_a_store_whose_synapses_were_reordered_maps_them(stores, tmp_path):
    """A cut run resumed after its training store was rewritten with shuffled synapses ends as if uncut."""
    straight = train(tiny_config(stores, tmp_path / "straight"), progress=False)
    store = fake_store(tmp_path / "train.zarr", n_sims=4, n_time=900, seed=0)
    cut = tiny_config(stores, tmp_path / "cut", train=str(store), max_wall_s=1e-9)
    train(cut, progress=False)
    perm = np.random.default_rng(3).permutation(16)
    shuffled = fake_dataset(n_sims=4, n_time=900, seed=0).isel(synapse=perm).assign_coords(synapse=np.arange(16))
    dataset.write_store(shuffled, store, overwrite=True)
    train(dataclasses.replace(cut, max_wall_s=None), resume=True, progress=False)
    assert_same_state(checkpoint_weights(tmp_path / "cut"), checkpoint_weights(straight))


def test_a_validation_store_in_another_order_gives_the_same_metrics(stores, tmp_path):
    usual = train(tiny_config(stores, tmp_path / "usual", epochs=1), progress=False)
    perm = np.random.default_rng(4).permutation(16)
    shuffled = fake_dataset(n_sims=2, n_time=900, seed=1).isel(synapse=perm).assign_coords(synapse=np.arange(16))
    valid = dataset.write_store(shuffled, tmp_path / "valid.zarr")
    other = train(tiny_config(stores, tmp_path / "other", epochs=1, valid=str(valid)), progress=False)
    assert load_run(other).history[-1]["valid_loss"] == load_run(usual).history[-1]["valid_loss"]
    renamed = fake_dataset(n_sims=2, n_time=900, seed=1)
    renamed = renamed.assign_coords(synapse_segment=("synapse", [f"x{i}" for i in range(16)]))
    with pytest.raises(StoreError, match=r"validation store .*lacks 16 of the run's 16 channels, e.g. sec0"):
        train(tiny_config(stores, tmp_path / "bad", valid=str(dataset.write_store(renamed, tmp_path / "r.zarr"))),
              progress=False)
    assert not (tmp_path / "bad").exists()


def test_train_config_is_frozen_type_checked_and_has_no_empty_paths(stores, tmp_path):
    cfg = TrainConfig()
    assert (cfg.train, cfg.valid, cfg.out) == (None, None, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.epochs = 3
    with pytest.raises(ConfigError, match=r"TrainConfig.epochs must be a whole number, not str '3'"):
        TrainConfig(epochs="3")
    with pytest.raises(ConfigError, match=r"TrainConfig.lr must be a number"):
        TrainConfig.from_dict({"lr": "fast"})
    with pytest.raises(ConfigError, match=r"no train path given"):
        train(TrainConfig(valid=str(stores[1]), out=str(tmp_path / "run")), progress=False)
    assert not (tmp_path / "run").exists()


def test_a_batch_too_large_for_the_memory_is_refused_before_anything_is_written(stores, tmp_path, monkeypatch):
    monkeypatch.setattr(resources, "available_memory_bytes", lambda: 100_000)
    with pytest.raises(ConfigError, match=r"a batch of 1,000 windows × 300 ms × 16 synapses needs at least "
                                          r"24.0 MB, more than the 100.0 kB this process may use; lower --batch-size"):
        train(tiny_config(stores, tmp_path / "run", batch_size=1000), progress=False)
    with pytest.raises(ConfigError, match=r"a batch of 2 simulations × 900 ms .* lower --valid-batch-size"):
        train(tiny_config(stores, tmp_path / "run", batch_size=1), progress=False)  # 2 × 900 × 16 × 5 > 100 kB
    assert not (tmp_path / "run").exists()


def test_a_checkpoint_without_a_layout_resumes_by_position(stores, tmp_path):
    straight = train(tiny_config(stores, tmp_path / "straight"), progress=False)
    cut = tiny_config(stores, tmp_path / "cut", max_wall_s=1e-9)
    train(cut, progress=False)
    path = tmp_path / "cut" / "checkpoint.pt"
    old = torch.load(path, weights_only=True)
    del old["layout"]  # as written before layouts were recorded
    torch.save(old, path)
    train(dataclasses.replace(cut, max_wall_s=None), resume=True, progress=False)
    assert_same_state(checkpoint_weights(tmp_path / "cut"), checkpoint_weights(straight))
    assert load_run(tmp_path / "cut").layout is None
