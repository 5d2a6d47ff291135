"""The trained run directories committed under results/ are what the README says: each rebuilds its model from
its own files, matches its recorded parameter count and finished status, and carries no optimizer checkpoint."""

from pathlib import Path

import pytest
import torch

from analysis.evaluate import FINAL_STATUSES, open_run
from surrogate.models import model_input_width, num_params

RESULTS = Path(__file__).resolve().parents[2] / "results"
RUN_DIRS = sorted(p.parent for p in RESULTS.rglob("model.pt"))


def test_results_hold_the_quality_study_runs():
    names = {p.name for p in RUN_DIRS}
    assert {"branch-elm_sims01200", "tcn_sims01200", "lstm_sims01200"} <= names


@pytest.mark.parametrize("run_dir", RUN_DIRS, ids=lambda p: str(p.relative_to(RESULTS)))
def test_a_committed_run_rebuilds_from_its_own_files(run_dir):
    assert not (run_dir / "checkpoint.pt").exists(), "optimizer checkpoints stay out of the repository"
    run = open_run(run_dir)
    assert num_params(run.model) == run.metrics["num_params"]
    assert run.metrics["status"] in FINAL_STATUSES
    assert run.data_provenance["train"]["n_sims"] > 0
    with torch.no_grad():
        y = run.model(torch.zeros(1, 50, model_input_width(run.model)))
    assert y.shape[:2] == (1, 50) and torch.isfinite(y).all()
