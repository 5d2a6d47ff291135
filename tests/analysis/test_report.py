"""Evaluation, report and CLI on fake stores and small run directories written as `surrogate.run` lays them out."""

import dataclasses
import json
import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from analysis import evaluate as ev
from analysis import metrics
from analysis.__main__ import main
from analysis.report import write_report
from biophys.dataset import NeuronIOStore
from conventions.layout import SynapseLayout
from biophys import dataset
from fakes import fake_dataset, fake_store
from surrogate.models import build_model, model_kind, num_params
from surrogate.run import Run

torch.set_num_threads(1)

TINY = {
    "branch-elm": {"n_branches": 4, "synapses_per_branch": 6, "d_memory": 4},
    "tcn": {"n_layers": 2, "channels": 2, "first_kernel": 5, "kernel": 3, "dilation_base": 1},
}


def make_run(path, kind, store_path, n_inputs=16, cell=None, status="finished", **config_fields):
    """A run directory following surrogate/run.py: config.json, metrics.json, history.json, model.pt
    (``status`` None: metrics.json records none; ``config_fields``: further TrainConfig fields)."""
    torch.manual_seed(0)
    model = build_model(kind, TINY[kind], n_inputs=n_inputs)
    path.mkdir(parents=True)
    provenance = NeuronIOStore(store_path).provenance
    if cell is not None:
        provenance["cell"] = cell
    config = {"model": model_kind(model), "model_config": dataclasses.asdict(model.config),
              "train": str(store_path), "valid": str(store_path), **config_fields}
    history = [{"epoch": e, "step": 10 * e, "train_loss": 1.0 / e, "valid_loss": 1.2 / e, "valid_auc": 0.5 + 0.1 * e,
                "valid_rmse_mv": 3.0 / e, "lr": 1e-3} for e in (1, 2, 3)]
    metrics = {"model": config["model"], "num_params": num_params(model),
               "provenance": {"data": {"train": {"path": str(store_path), "provenance": provenance}}}}
    if status is not None:
        metrics["status"] = status
    (path / "config.json").write_text(json.dumps(config))
    (path / "metrics.json").write_text(json.dumps(metrics))
    (path / "history.json").write_text(json.dumps(history))
    torch.save(model.state_dict(), path / "model.pt")
    return path


@pytest.fixture
def stores(tmp_path):
    return (fake_store(tmp_path / "test.zarr", n_sims=3, n_time=1000, seed=1),
            fake_store(tmp_path / "valid.zarr", n_sims=2, n_time=1000, seed=2))


def test_report_has_table_figures_and_metrics(tmp_path, stores):
    test, valid = stores
    runs = [make_run(tmp_path / "runs" / "belm", "branch-elm", test), make_run(tmp_path / "runs" / "tcn", "tcn", test)]
    out = tmp_path / "report"
    report = write_report(runs, test, out, valid_store=valid)
    text = report.read_text()
    assert "| run | model | params |" in text
    assert "| belm | branch-elm |" in text and "| tcn | tcn |" in text
    for name in ("roc", "traces", "tradeoff", "training", "tau_m", "weights_distance_belm", "morphology_belm"):
        png = out / "figures" / f"{name}.png"
        assert png.stat().st_size > 1000, name
        assert f"](figures/{name}.png)" in text
    summary = json.loads((out / "metrics.json").read_text())
    assert [r["name"] for r in summary["runs"]] == ["belm", "tcn"]
    for r in summary["runs"]:
        assert 0.0 <= r["spike_auc"] <= 1.0
        assert r["rmse_mV"] > 0 and r["mae_mV"] <= r["rmse_mV"]
        assert r["spike_timing"]["threshold_source"].startswith("validation store")
        assert r["speed"]["speedup_vs_neuron"] is None and "neuron_wall_s" in r["speed"]["speedup_reason"]
        assert r["scored_ms"] == 3 * (1000 - 150)
    belm = summary["runs"][0]
    assert belm["params"] == num_params(build_model("branch-elm", TINY["branch-elm"], n_inputs=16))
    assert belm["macs_method"] == "elm-config"


def test_report_without_elm_skips_elm_figures_with_a_note(tmp_path, stores):
    test, _ = stores
    out = tmp_path / "report"
    text = write_report([make_run(tmp_path / "tcn", "tcn", test)], test, out).read_text()
    assert "no ELM among the runs" in text
    assert not (out / "figures" / "tau_m.png").exists()
    assert "evaluated store itself" in text  # no validation store: the threshold's source is stated


def test_evaluate_matches_an_independent_computation(tmp_path, stores):
    test, _ = stores
    run = make_run(tmp_path / "tcn", "tcn", test)
    result = ev.evaluate_run(run, test, burn_in_ms=100)
    loaded = ev.open_run(run)
    store = NeuronIOStore(test)
    x = [store.input_spikes(i).astype(np.float32) * store.signs for i in range(store.n_sims)]
    with torch.no_grad():
        y = loaded.model(torch.from_numpy(np.stack(x))).numpy()[:, 100:]
    soma_mv = y[..., 1] / 0.1 - 67.7
    truth = np.minimum(np.stack([store.soma_voltage(i) for i in range(store.n_sims)])[:, 100:], -55.0)
    assert result["rmse_mV"] == pytest.approx(np.sqrt(np.mean((soma_mv - truth) ** 2)), rel=1e-4)
    assert result["burn_in_ms"] == 100 and result["n_sims"] == 3


def test_missing_weights_or_config_are_clear_errors(tmp_path, stores):
    test, _ = stores
    run = make_run(tmp_path / "r1", "tcn", test)
    (run / "model.pt").unlink()
    with pytest.raises(ev.AnalysisError, match="model.pt"):
        ev.evaluate_run(run, test)
    run = make_run(tmp_path / "r2", "tcn", test)
    (run / "config.json").unlink()
    with pytest.raises(ev.AnalysisError, match="config.json"):
        ev.evaluate_run(run, test)


def test_store_with_other_synapse_count_is_rejected(tmp_path, stores):
    test, _ = stores
    other = fake_store(tmp_path / "other.zarr", n_sims=2, n_time=600, n_segments=5)
    run = make_run(tmp_path / "r", "branch-elm", test)
    with pytest.raises(ev.AnalysisError, match="expects 16 input synapses but store .* has 10"):
        ev.evaluate_run(run, other)


def test_the_cells_name_alone_does_not_make_a_run_incompatible(tmp_path, stores):
    test, _ = stores
    run = make_run(tmp_path / "r", "tcn", test, cell={"name": "hay-l5pc"})
    assert ev.evaluate_run(run, test)["compatibility"]["cell"] == ("ok: the same synapses; the cell is named "
                                                                   "'hay-l5pc' in the training data, "
                                                                   "'fake-integrator' here")


def test_run_trained_on_another_cell_model_is_rejected(tmp_path, stores):
    test, _ = stores
    run = make_run(tmp_path / "r", "tcn", test, cell={"name": "fake-integrator", "synapse_model": "ampa"})
    store = tmp_path / "nmda.zarr"
    ds = fake_dataset(n_sims=2, n_time=600)
    ds.attrs["provenance"] = json.dumps({"cell": {"name": "other", "synapse_model": "ampa_nmda"}})
    dataset.write_store(ds, store)
    with pytest.raises(ev.AnalysisError, match="another cell.*cell.synapse_model: trained on 'ampa', store has "
                                               "'ampa_nmda'"):
        ev.evaluate_run(run, store)


def test_a_store_lacking_the_runs_segments_is_refused_naming_one(tmp_path, stores):
    test, _ = stores
    run = make_run(tmp_path / "r", "branch-elm", test)
    saved = torch.load(run / "model.pt", weights_only=True)
    layout = SynapseLayout.from_dataset(NeuronIOStore(test).ds)
    torch.save({"kind": "branch-elm", "config": json.loads((run / "config.json").read_text())["model_config"],
                "state_dict": saved, "layout": layout.to_dict()}, run / "model.pt")
    other = tmp_path / "other.zarr"
    ds = fake_dataset(n_sims=2, n_time=600)
    ds = ds.assign_coords(synapse_segment=("synapse", [f"apic[{i}](0.5)" for i in range(16)]))
    dataset.write_store(ds, other)
    with pytest.raises(ev.AnalysisError) as info:
        ev.evaluate_run(run, other)
    message = str(info.value)
    assert "\n" not in message and "cell 'fake-integrator'" in message
    assert "the store lacks 16 of the run's 16 channels, e.g. sec0(0.1667) exc" in message
    assert ev.evaluate_run(run, test)["compatibility"]["synapses"] == "ok: 16 channels mapped by segment and kind"


def test_cell_identity_ignores_paths_but_not_file_contents():
    def provenance(path, sha):
        return {"cell": {"name": "l5pc", "morphology": path, "synapse_model": "ampa_nmda"},
                "morphology": {"kind": "file", "path": path, "sha256": sha},
                "biophysics": {"path": "/x/l5pc.json", "sha256": "b1"}, "n_synapses": 1278, "git_commit": "abc"}

    a = ev.cell_identity(provenance("/data/cell1.asc", "m1"))
    assert a == ev.cell_identity({"provenance": provenance(None, "m1")})  # a run's nested record, another path
    assert a != ev.cell_identity(provenance("/data/cell1.asc", "m2"))
    assert a["cell.synapse_model"] == "ampa_nmda" and "git_commit" not in str(a)
    assert ev.cell_identity({"git_commit": "abc"}) is None


def test_cli_evaluate_and_report(tmp_path, stores, capsys):
    test, valid = stores
    run = make_run(tmp_path / "r", "tcn", test)
    assert main(["evaluate", str(run), "--data", str(test), "--threads", "1", "--speed-batch", "8",
                 "--out", str(tmp_path / "m.json")]) == 0
    result = json.loads((tmp_path / "m.json").read_text())
    assert result["model"] == "tcn" and result["speed"]["torch_threads"] == 1
    assert result["speed"]["batch_size"] == 8
    assert main(["report", str(run), "--data", str(test), "--valid", str(valid), "--speed-batch", "32",
                 "--out", str(tmp_path / "rep")]) == 0
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "in batches of 32" in text and re.search(r"load average \d+\.\d+ on \d+ CPUs before the timing", text)


def test_cli_user_errors_exit_2_with_one_line_and_write_nothing(tmp_path, stores, capsys):
    test, _ = stores
    good = make_run(tmp_path / "good", "tcn", test)
    out = tmp_path / "rep"
    code = main(["report", str(good), str(tmp_path / "missing"), "--data", str(test), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "no run directory" in err
    assert not out.exists()
    assert main(["evaluate", str(good), "--data", str(tmp_path / "nostore.zarr")]) == 2
    assert "no dataset store" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["report", str(good), "--data", str(test)])  # --out is required
    assert exc.value.code == 2


def test_cli_help_explains_every_option(capsys):
    for command in ("evaluate", "report"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        for option in ("--data", "--valid", "--burn-in", "--threads", "--speed-batch", "--out"):
            assert option in text


def test_burn_in_longer_than_the_simulations_is_rejected(tmp_path, stores):
    test, _ = stores
    run = make_run(tmp_path / "r", "tcn", test)
    with pytest.raises(ev.AnalysisError, match="burn-in 1000 ms leaves nothing"):
        ev.evaluate_run(run, test, burn_in_ms=1000)


class FakeCellOracle(torch.nn.Module):
    """Reproduces tests/fakes.py's leaky-integrator "cell" exactly (spike labels included), so every metric has
    a known best value. Non-causal: labels sit in bin int(t − 0.5), one bin before the threshold crossing."""

    def __init__(self, n_inputs):
        super().__init__()
        self.config = SimpleNamespace(n_inputs=n_inputs)

    def forward(self, x):
        drive = 4.0 * x.double().sum(-1).numpy()  # fakes.py: spikes @ (sign · 4)
        kernel = np.exp(-np.arange(60) / 10.0)
        u = -75.0 + np.stack([np.convolve(d, kernel)[: d.size] for d in drive])
        crossing = np.zeros_like(u, dtype=bool)
        crossing[:, 1:] = (u[:, 1:] > -60.0) & (u[:, :-1] <= -60.0)
        soma = np.where(crossing, -55.0, np.minimum(u, -55.0))
        logit = np.where(np.roll(crossing, -1, axis=1), 30.0, -30.0)
        y = np.stack([logit, (soma + 67.7) * 0.1], axis=-1)
        return torch.from_numpy(y).float()


def test_an_exact_model_gets_the_best_possible_scores(tmp_path, stores):
    test, _ = stores
    valid = fake_store(tmp_path / "valid_many.zarr", n_sims=8, n_time=2000, seed=2)  # enough spikes for a threshold
    store = NeuronIOStore(test)
    run = Run(path=tmp_path / "oracle", config={"model": "oracle"}, metrics={}, history=[],
              model=FakeCellOracle(store.n_synapses), data_provenance={})
    result = ev.evaluate(run, store, valid_store=NeuronIOStore(valid)).metrics
    assert result["spike_timing"]["n_true"] > 0
    assert result["spike_timing"]["threshold_unsupported"] is None
    assert result["spike_auc"] == 1.0
    assert result["tpr_at_fpr"] == {"0.25%": 1.0, "1.00%": 1.0}
    assert result["rmse_mV"] < 1e-4 and result["mae_mV"] < 1e-4
    assert result["explained_variance"] == pytest.approx(1.0)
    timing = result["spike_timing"]
    assert timing["precision"] == 1.0 and timing["recall"] == 1.0
    assert timing["coincidence_factor"] == pytest.approx(1.0)


@pytest.mark.slow
def test_report_on_runs_written_by_the_trainer(tmp_path):
    from surrogate.config import TrainConfig
    from surrogate.train import train

    data = {name: fake_store(tmp_path / f"{name}.zarr", n_sims=3, n_time=1200, seed=seed)
            for name, seed in (("train", 1), ("valid", 2), ("test", 3))}
    runs = []
    for kind in ("branch-elm", "tcn"):
        cfg = TrainConfig(model=kind, model_config=TINY[kind], train=str(data["train"]), valid=str(data["valid"]),
                          out=str(tmp_path / kind), epochs=2, batches_per_epoch=2, batch_size=2, threads=1)
        runs.append(train(cfg, progress=False))
    report = write_report(runs, data["test"], tmp_path / "report", valid_store=data["valid"])
    summary = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert [r["compatibility"]["cell"] for r in summary["runs"]] == ["ok", "ok"]
    assert [r["epochs_trained"] for r in summary["runs"]] == [2, 2]
    assert "| branch-elm | branch-elm |" in report.read_text()
    assert (tmp_path / "report" / "figures" / "training.png").stat().st_size > 1000


def test_evaluate_takes_the_runs_own_burn_in_unless_one_is_given(tmp_path, stores, capsys):
    test, _ = stores
    run = make_run(tmp_path / "r", "tcn", test, burn_in_ms=100)
    assert main(["evaluate", str(run), "--data", str(test)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["burn_in_ms"] == 100 and result["scored_ms"] == 3 * (1000 - 100)
    assert main(["evaluate", str(run), "--data", str(test), "--burn-in", "200"]) == 0
    assert json.loads(capsys.readouterr().out)["burn_in_ms"] == 200
    assert ev.evaluate_run(make_run(tmp_path / "old", "tcn", test), test)["burn_in_ms"] == 150  # none recorded


def test_report_scores_every_run_after_the_longest_of_their_burn_ins(tmp_path, stores):
    test, _ = stores
    runs = [make_run(tmp_path / "a", "tcn", test, burn_in_ms=50), make_run(tmp_path / "b", "tcn", test, burn_in_ms=120)]
    write_report(runs, test, tmp_path / "rep")
    summary = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert summary["burn_in_ms"] == 120 and [r["burn_in_ms"] for r in summary["runs"]] == [120, 120]


@pytest.mark.parametrize("status", ["running", None])
def test_unfinished_runs_are_scored_but_said_to_be(tmp_path, stores, capsys, status):
    test, _ = stores
    unfinished = make_run(tmp_path / "unfinished", "tcn", test, status=status)
    done = make_run(tmp_path / "done", "tcn", test)
    assert main(["evaluate", str(unfinished), "--data", str(test)]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["run_status"] == status
    assert captured.err.count("\n") == 1 and "training has not finished" in captured.err
    assert str(unfinished) in captured.err
    assert main(["evaluate", str(done), "--data", str(test)]) == 0
    assert capsys.readouterr().err == ""

    text = write_report([done, unfinished], test, tmp_path / "rep").read_text()
    notes = [line for line in text.splitlines() if "Unfinished run" in line]
    assert len(notes) == 1 and str(unfinished) in notes[0] and str(done) not in notes[0]
    assert "Unfinished" not in write_report([done], test, tmp_path / "rep2").read_text()


def test_report_into_an_existing_directory_replaces_the_earlier_report_and_keeps_the_rest(tmp_path, stores):
    test, _ = stores
    out = tmp_path / "demo"  # as scripts/demo.sh: the report goes beside the data and the run directories
    belm = make_run(out / "belm", "branch-elm", test)
    tcn = make_run(out / "tcn", "tcn", test)
    (out / "data").mkdir()
    (out / "data" / "keep.txt").write_text("data")
    write_report([belm, tcn], test, out)
    assert (out / "figures" / "weights_distance_belm.png").exists()
    (out / "figures" / "stray.png").write_bytes(b"old")

    text = write_report([tcn], test, out).read_text()
    figures = sorted(p.name for p in (out / "figures").iterdir())
    assert "weights_distance_belm.png" not in figures and "tau_m.png" not in figures and "stray.png" not in figures
    assert "traces.png" in figures and "](figures/traces.png)" in text
    assert [r["name"] for r in json.loads((out / "metrics.json").read_text())["runs"]] == ["tcn"]
    assert (out / "data" / "keep.txt").read_text() == "data"
    assert ev.open_run(belm).metrics["status"] == "finished"  # the run directories are untouched
    assert sorted(p.name for p in out.iterdir()) == ["belm", "data", "figures", "metrics.json", "report.md", "tcn"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo", "test.zarr", "valid.zarr"]  # no temporaries
    with pytest.raises(ev.AnalysisError, match="is run directory"):
        write_report([tcn], test, out / "tcn")  # would replace the run's own metrics.json
    assert ev.open_run(tcn).metrics["status"] == "finished"


def test_a_run_is_scored_by_its_recorded_synapse_layout_and_refused_where_the_store_lacks_it(tmp_path, stores):
    test, _ = stores
    store = NeuronIOStore(test)
    synapses = store.synapses()
    own = SynapseLayout(tuple(synapses["segment"]), tuple(synapses["kind"]))

    def run_with(layout, name):
        torch.manual_seed(0)
        model = build_model("tcn", TINY["tcn"], n_inputs=16, layout=layout).eval()
        return Run(path=tmp_path / name, config={"model": "tcn"}, metrics={"status": "finished"}, history=[],
                   model=model, data_provenance={})

    in_order = ev.evaluate(run_with(own, "own"), store).metrics
    assert in_order["spike_auc"] is not None
    renamed = SynapseLayout(("elsewhere(0.5)",) + own.segments[1:], own.kinds)
    with pytest.raises(ev.AnalysisError, match="cannot be scored on store .*lacks 1 of the run's 16 channels"):
        ev.evaluate(run_with(renamed, "renamed"), store)


def test_a_split_too_sparse_for_a_threshold_is_said_so_not_scored_as_zeros(tmp_path, stores, monkeypatch):
    test, valid = stores
    store, valid_store = NeuronIOStore(test), NeuronIOStore(valid)
    run = Run(path=tmp_path / "oracle", config={"model": "oracle"}, metrics={}, history=[],
              model=FakeCellOracle(store.n_synapses), data_provenance={})
    # every split is too sparse now
    monkeypatch.setattr(metrics.supported_threshold, "__defaults__", (10**6, metrics.MIN_THRESHOLD_GAMMA, metrics.COINCIDENCE_WINDOW_MS))
    timing = ev.evaluate(run, store, valid_store=valid_store).metrics["spike_timing"]
    assert timing["threshold"] is None and timing["precision"] is None and timing["coincidence_factor"] is None
    assert "too few to choose a spike threshold" in timing["threshold_unsupported"]
    assert timing["threshold_unsupported"].startswith("the validation store")
    assert timing["n_true"] > 0


def test_supported_threshold_refuses_sparse_and_chance_level_splits():
    true = [np.array([150.6, 420.6, 800.6])]
    probs = np.zeros(1000)
    probs[[150, 420, 800]] = 0.9
    threshold, reason = metrics.supported_threshold(true, [probs], [0.0], min_spikes=3)
    assert reason is None and 0.0 < threshold < 0.9
    assert metrics.supported_threshold(true, [probs], [0.0], min_spikes=4)[1].startswith("holds 3 output spike(s)")
    far = np.zeros(1000)
    far[[50, 300, 600]] = 0.9  # confident, and always far from the true spikes
    threshold, reason = metrics.supported_threshold(true, [far], [0.0], min_spikes=3)
    assert threshold is None and "below 0.1" in reason


def test_report_states_why_timing_metrics_are_missing(tmp_path, stores, monkeypatch):
    test, valid = stores
    runs = [make_run(tmp_path / "runs" / "belm", "branch-elm", test)]
    monkeypatch.setattr(metrics.supported_threshold, "__defaults__", (10**6, metrics.MIN_THRESHOLD_GAMMA, metrics.COINCIDENCE_WINDOW_MS))
    text = write_report(runs, test, tmp_path / "report", valid_store=valid).read_text()
    assert "Γ, precision and recall of belm: not reported, because the validation store" in text
    row = next(line for line in text.splitlines() if line.startswith("| belm |"))
    assert "| n/a | n/a | n/a |" in row and "0.000" not in row
