"""The learning curve on fake stores and tiny trained runs: table numbers are analysis.evaluate's, the figure is
written, bad roots are refused in one line."""

import json

import pytest
import torch

from analysis import curves
from analysis.__main__ import main
from analysis.evaluate import AnalysisError, evaluate_run
from fakes import fake_store
from surrogate.config import TrainConfig
from surrogate.train import train

torch.set_num_threads(1)

TINY = {"branch-elm": {"n_branches": 4, "synapses_per_branch": 6, "d_memory": 4},
        "lstm": {"hidden": 4}}


def train_run(out, kind, train_store, valid_store):
    cfg = TrainConfig(model=kind, model_config=TINY[kind], train=str(train_store), valid=str(valid_store),
                      out=str(out), epochs=1, batches_per_epoch=3, batch_size=2, window_ms=200, burn_in_ms=50,
                      skip_ms=0, threads=1, data_mode="memory")
    return train(cfg, progress=False)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("curve")
    small = fake_store(tmp / "train2.zarr", n_sims=2, n_time=600, seed=1)
    large = fake_store(tmp / "train4.zarr", n_sims=4, n_time=600, seed=1)
    valid = fake_store(tmp / "valid.zarr", n_sims=2, n_time=600, seed=2)
    test = fake_store(tmp / "test.zarr", n_sims=3, n_time=600, seed=3)
    root = tmp / "runs"
    for kind in TINY:
        for name, store in (("s2", small), ("s4", large)):
            train_run(root / kind / name, kind, store, valid)
    reference = train_run(tmp / "reference", "branch-elm", large, valid)
    return {"root": root, "valid": valid, "test": test, "reference": reference, "tmp": tmp}


def test_table_numbers_are_those_of_evaluate_for_every_run(study, tmp_path):
    table = curves.write_learning_curve(study["root"], study["test"], tmp_path / "lc", valid_path=study["valid"],
                                        reference=study["reference"])
    curve = json.loads((tmp_path / "lc" / curves.JSON_FILE).read_text())
    assert len(curve["points"]) == 4
    for point in curve["points"]:
        result = evaluate_run(point["run"], study["test"], burn_in_ms=50, valid_store=study["valid"])
        assert point["spike_auc"] == pytest.approx(result["spike_auc"])
        assert point["tpr_1pct"] == pytest.approx(result["tpr_at_fpr"]["1.00%"])
        assert point["rmse_mV"] == pytest.approx(result["rmse_mV"])
        assert point["train_hours"] == pytest.approx(point["train_sims"] * 600 / 3.6e6)
        assert f"{result['spike_auc']:.4f}" in table.read_text()
    assert sorted(p["train_sims"] for p in curve["points"]) == [2, 2, 4, 4]
    ref = evaluate_run(study["reference"], study["test"], burn_in_ms=50, valid_store=study["valid"])
    assert curve["reference"]["spike_auc"] == pytest.approx(ref["spike_auc"])
    assert (tmp_path / "lc" / curves.FIGURE_FILE).stat().st_size > 10_000
    assert "reference: branch-elm" in table.read_text()


def test_cli_writes_the_curve_and_refuses_bad_roots(study, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["learning-curve", str(study["root"]), "--data", str(study["test"]), "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {curves.TABLE_FILE, curves.JSON_FILE, curves.FIGURE_FILE}
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["learning-curve", str(empty), "--data", str(study["test"]), "--out", str(tmp_path / "x")]) == 2
    assert "no run directories" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_a_target_auc_without_a_reference_run_gets_each_model_an_extrapolation(study, tmp_path, capsys):
    out = tmp_path / "target"
    args = ["learning-curve", str(study["root"]), "--data", str(study["test"]), "--out", str(out)]
    assert main(args + ["--target-auc", "0.9999"]) == 0
    curve = json.loads((out / curves.JSON_FILE).read_text())
    text = (out / curves.TABLE_FILE).read_text()
    assert curve["reference"] is None
    for model in {p["model"] for p in curve["points"]}:
        best = [p for p in curve["points"] if p["model"] == model][-1]["spike_auc"]
        assert f"- {model}: AUC {best:.4f}" in text and "below the target 0.9999" in text
    assert main(args + ["--target-auc", "1.5"]) == 2
    assert "--target-auc must lie between 0.5 and 1" in capsys.readouterr().err


def test_two_runs_of_one_model_on_one_size_are_refused(study):
    runs = curves.find_runs(study["root"]) + [study["reference"]]
    with pytest.raises(AnalysisError, match="both train branch-elm"):
        curves.curve_points(runs, study["test"])


def test_power_law_extrapolation_reaches_the_target():
    # 1 − AUC halves with every doubling of data: 0.08 at 1 h, 0.04 at 2 h, 0.02 at 4 h → 0.01 at 8 h
    points = [{"train_hours": h, "spike_auc": 1 - 0.08 / h} for h in (1, 2, 4)]
    assert curves.hours_to_reach(points, "spike_auc", 0.99) == pytest.approx(8.0)
    flat = [{"train_hours": h, "spike_auc": 0.9} for h in (1, 2)]
    assert curves.hours_to_reach(flat, "spike_auc", 0.99) is None


def test_an_extrapolation_past_a_million_hours_is_no_estimate():
    # 1 − AUC falls by 0.1 % per doubling: reaching 0.9999 would take far beyond 10^6 h
    points = [{"train_hours": h, "spike_auc": 1 - 0.1 * h ** -0.0015} for h in (1, 2, 4)]
    assert curves.hours_to_reach(points, "spike_auc", 0.9999) is None


def test_the_figure_ticks_are_the_training_sizes(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(curves, "_save", lambda fig, path: figures.append(fig) or path)
    points = [{"model": "m", "train_hours": h, "train_sims": int(h * 600), "spike_auc": 1 - 0.02 / h,
               "tpr_1pct": 0.5, "rmse_mV": 1.0} for h in (0.25, 0.5, 1, 2)]
    curves.plot_learning_curve({"points": points, "reference": None}, tmp_path / "c.png", target_auc=0.99)
    for ax in figures[0].axes:
        assert list(ax.get_xticks()) == [0.25, 0.5, 1, 2]
        assert [t.get_text() for t in ax.get_xticklabels()] == ["0.25", "0.5", "1", "2"]
        assert not ax.xaxis.get_minor_ticks()
