"""The notebooks run top to bottom in quick mode (NEURONCOMPUTE_QUICK=1) and produce their tables.

The kernel is the ``python3`` kernelspec; jupyter_client starts it with the interpreter running these tests
(its ``python`` argv entry is replaced by ``sys.executable``), which the first test checks.
"""

import sys
import time
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

from analysis.ablation import TABLE_FILE

pytestmark = pytest.mark.slow

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CELL_TIMEOUT_S = 300  # generous: the machine may be shared; the quick mode itself takes well under a minute


def execute(nb, workdir: Path):
    NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                   resources={"metadata": {"path": str(workdir)}}).execute()
    return nb


def test_kernel_is_this_interpreter(tmp_path):
    nb = execute(new_notebook(cells=[new_code_cell("import sys; print(sys.executable)")]), tmp_path)
    printed = nb.cells[0].outputs[0]["text"].strip()
    assert Path(printed).resolve() == Path(sys.executable).resolve()


@pytest.mark.parametrize("name, sweep, variants, setting", [
    ("timescale_ablation", "timescale", 6, "tau_m_max_ms"),
    ("dendritic_ablation", "dendritic", 3, "routing"),
])
def test_notebook_runs_in_quick_mode(tmp_path, monkeypatch, name, sweep, variants, setting):
    monkeypatch.setenv("NEURONCOMPUTE_QUICK", "1")
    monkeypatch.setenv("NEURONCOMPUTE_ABLATION_OUT", str(tmp_path / "out"))
    monkeypatch.setenv("NEURONCOMPUTE_THREADS", "1")
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    assert not any(cell.get("outputs") for cell in nb.cells if cell.cell_type == "code"), "outputs committed"

    start = time.monotonic()
    execute(nb, tmp_path)
    print(f"{name}: {time.monotonic() - start:.1f} s")

    out = tmp_path / "out" / "quick"
    result = pd.read_csv(out / sweep / TABLE_FILE)
    assert len(result) == variants and setting in result.columns
    assert result["spike_auc"].between(0.0, 1.0).all() and (result["rmse_mV"] > 0).all(), result
    assert result["spike_auc"].max() > 0.6, result  # the toy cell is learnable within seconds
    shown = [output for cell in nb.cells if cell.cell_type == "code" for output in cell.outputs
             if output.get("output_type") == "execute_result" and "spike_auc" in output["data"].get("text/html", "")]
    assert shown, "the notebook should display its results table"
    assert (out / f"{sweep}.png").exists()
