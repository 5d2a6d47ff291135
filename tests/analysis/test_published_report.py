"""A published checkpoint (imported with surrogate import-elmneuron) scored and reported beside one's own run."""

import dataclasses
import json

import torch

from analysis.__main__ import main
from published_fakes import neuronio_store, write_checkpoint
from surrogate.import_published import import_elmneuron
from surrogate.models import build_model, model_kind, num_params
from surrogate.published import neuronio_layout
from surrogate.run import model_file

torch.set_num_threads(1)


def own_run(path, store):
    """A small Branch-ELM run directory trained (here: initialised) on the NeuronIO layout."""
    torch.manual_seed(0)
    model = build_model("branch-elm", {"n_branches": 8, "synapses_per_branch": 170, "d_memory": 3},
                        layout=neuronio_layout())
    path.mkdir()
    kind, config = model_kind(model), dataclasses.asdict(model.config)
    (path / "config.json").write_text(json.dumps({"model": kind, "model_config": config, "train": str(store)}))
    (path / "metrics.json").write_text(json.dumps({"status": "finished", "model": kind,
                                                   "num_params": num_params(model)}))
    (path / "history.json").write_text(json.dumps([{"epoch": 1, "step": 5, "train_loss": 1.0, "valid_loss": 1.1,
                                                    "valid_auc": 0.6, "valid_rmse_mv": 3.0, "lr": 1e-3}]))
    torch.save(model_file(kind, config, model.state_dict(), model.layout), path / "model.pt")
    return path


def test_report_labels_the_published_run_and_shows_its_published_metrics(tmp_path, capsys):
    store, _ = neuronio_store(tmp_path / "test.zarr", n_sims=2, n_time=400)
    published = import_elmneuron(write_checkpoint(tmp_path / "num_memory_6"), tmp_path / "published")
    mine = own_run(tmp_path / "mine", store)
    assert main(["report", str(published), str(mine), "--data", str(store), "--burn-in", "50",
                 "--out", str(tmp_path / "report")]) == 0
    text = (tmp_path / "report" / "report.md").read_text()
    assert "| published (published) | branch-elm |" in text and "| mine | branch-elm |" in text
    assert "## Published checkpoints" in text
    assert "| metric | published: published | published: here |" in text
    summary = json.loads((tmp_path / "report" / "metrics.json").read_text())
    ours, theirs = summary["runs"][1], summary["runs"][0]
    assert ours["published"] is None and theirs["published"]["test"]["spike_auc"] == 0.99
    assert f"| spike AUC | 0.9900 | {theirs['spike_auc']:.4f} |" in text
    assert f"| RMSE (mV) | 0.640 | {theirs['rmse_mV']:.3f} |" in text
    assert theirs["run_status"] == "imported" and theirs["unfinished"] is None
    assert theirs["compatibility"]["synapses"] == "ok: 1278 channels mapped by segment and kind"
    assert (tmp_path / "report" / "figures" / "tradeoff.png").stat().st_size > 1000


def test_a_published_run_on_a_store_of_another_cell_is_refused_in_one_line(tmp_path, capsys):
    from fakes import fake_store

    published = import_elmneuron(write_checkpoint(tmp_path / "ckpt"), tmp_path / "published")
    other = fake_store(tmp_path / "other.zarr", n_sims=2, n_time=300)
    assert main(["evaluate", str(published), "--data", str(other)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cell 'fake-integrator'" in err
    assert "the store lacks 1278 of the run's 1278 channels, e.g. dend[0](0.5) exc" in err


def test_a_store_imported_without_segment_names_says_how_to_name_them(shared_data, tmp_path, capsys):
    from biophys.neuronio_format import import_neuronio

    store = import_neuronio([shared_data / "reference_traces/original_l5pc_neuronio_seed77.p"], tmp_path / "r.zarr")
    published = import_elmneuron(write_checkpoint(tmp_path / "ckpt"), tmp_path / "published")
    assert main(["evaluate", str(published), "--data", str(store)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "segments are unnamed: import it again" in err and "--morphology" in err
