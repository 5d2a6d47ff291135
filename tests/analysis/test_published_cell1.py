"""(slow, neuron) A run trained on toolkit data of cell1 is scored on the original NeuronIO reference pickle, and a
published checkpoint on the toolkit data: the same 1278 segments, matched by synapse layout, not by cell name."""

import json
import subprocess
import sys

import pytest

from published_fakes import write_checkpoint

pytestmark = [pytest.mark.slow, pytest.mark.neuron]

REFERENCE = "reference_traces/original_l5pc_neuronio_seed77.p"


def _run(*args, cwd):
    done = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=cwd, timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_own_and_published_runs_are_scored_across_the_two_datasets(shared_data, tmp_path):
    cell1 = str(shared_data / "morphologies" / "cell1.asc")
    _run("biophys", "generate", "--out", "train.zarr", "--n-sims", "2", "--duration-ms", "400", "--cell", "l5pc",
         "--morphology", cell1, "--no-progress", cwd=tmp_path)
    _run("biophys", "import-neuronio", str(shared_data / REFERENCE), "--out", "ref.zarr", "--morphology", cell1,
         cwd=tmp_path)
    _run("surrogate", "train", "--train", "train.zarr", "--valid", "train.zarr", "--out", "mine", "--epochs", "1",
         "--batches-per-epoch", "2", "--batch-size", "2", "--window-ms", "200", "--skip-ms", "0", "--burn-in-ms",
         "50", "--model-config", '{"d_memory": 4}', "--no-progress", cwd=tmp_path)
    write_checkpoint(tmp_path / "num_memory_6")
    _run("surrogate", "import-elmneuron", "num_memory_6", "--out", "published", cwd=tmp_path)

    mine_on_original = json.loads(_run("analysis", "evaluate", "mine", "--data", "ref.zarr", cwd=tmp_path))
    assert mine_on_original["n_sims"] == 2 and mine_on_original["sim_ms"] == 1500
    assert mine_on_original["compatibility"]["synapses"] == "ok: 1278 channels mapped by segment and kind"
    assert "'l5pc' in the training data, 'original-neuronio' here" in mine_on_original["compatibility"]["cell"]
    assert mine_on_original["spike_auc"] is not None and mine_on_original["rmse_mV"] > 0

    _run("analysis", "report", "published", "mine", "--data", "train.zarr", "--burn-in", "50", "--out", "report",
         cwd=tmp_path)
    text = (tmp_path / "report" / "report.md").read_text()
    assert "| published (published) |" in text and "| mine |" in text and "## Published checkpoints" in text
