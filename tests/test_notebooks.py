"""The notebooks run top to bottom in quick mode under papermill, with their settings passed as parameters, and
produce their tables, figures and write-ups.

The kernel is the ``python3`` kernelspec; jupyter_client starts it with the interpreter running these tests
(its ``python`` argv entry is replaced by ``sys.executable``), which the first test checks.
"""

import ast
import sys
import time
from pathlib import Path

import nbformat
import pandas as pd
import papermill
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

from analysis.ablation import SUMMARY_FILE, TABLE_FILE
from analysis.ablation_writeup import WRITEUP_FILE

pytestmark = pytest.mark.slow

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CELL_TIMEOUT_S = 300  # generous: the machine may be shared; the quick mode itself takes well under a minute
QUICK_SEEDS = 2

# name → (quick-mode variants, a setting column of the table, the figure, cells)
CASES = {
    "timescale_ablation": (6, "tau_m_max_ms", "timescale.png", 1),
    "dendritic_ablation": (6, "routing", "dendritic.png", 1),
    "memory_size_ablation": (6, "d_memory", "memory_size.png", 1),
    "nmda_ablation": (3, "tau_m_max_ms", "nmda.png", 2),  # d_m 1 once, d_m 5 at two tau_max
}
#: Notebooks whose quick-mode test trains on two processes (from the kernel, as scripts/ablations.sh runs them).
TWO_WORKERS = ("nmda_ablation",)


def test_kernel_is_this_interpreter(tmp_path):
    nb = new_notebook(cells=[new_code_cell("import sys; print(sys.executable)")])
    NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    printed = nb.cells[0].outputs[0]["text"].strip()
    assert Path(printed).resolve() == Path(sys.executable).resolve()


def test_every_notebook_is_tested():
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_parameters_cell_comes_first_and_holds_plain_assignments(name):
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    assert not any(cell.get("outputs") for cell in nb.cells if cell.cell_type == "code"), "outputs committed"
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code[0].metadata.get("tags") == ["parameters"]
    assert not any("parameters" in cell.metadata.get("tags", []) for cell in code[1:])
    body = ast.parse(code[0].source).body
    assert all(isinstance(node, ast.Assign) for node in body)  # no imports, conditions or calls
    names = {target.id for node in body for target in node.targets}
    assert {"quick", "out_dir", "threads", "workers", "seeds", "train"} <= names
    assert "environ" not in "".join(cell.source for cell in code)  # settings come from parameters only
    assert len(ast.literal_eval(next(n.value for n in body if n.targets[0].id == "seeds"))) >= 3  # full mode


@pytest.mark.parametrize("name", sorted(CASES))
def test_notebook_runs_in_quick_mode(tmp_path, name):
    variants, setting, figure, cells = CASES[name]
    out = tmp_path / "out"
    start = time.monotonic()
    nb = papermill.execute_notebook(str(NOTEBOOKS / f"{name}.ipynb"), str(tmp_path / f"{name}.ipynb"),
                                    parameters={"quick": True, "out_dir": str(out), "threads": 1,
                                                "workers": 2 if name in TWO_WORKERS else 1},
                                    kernel_name="python3", cwd=str(tmp_path), progress_bar=False,
                                    execution_timeout=CELL_TIMEOUT_S)
    print(f"{name}: {time.monotonic() - start:.1f} s")

    table = pd.read_csv(out / TABLE_FILE)
    assert len(table) == variants * QUICK_SEEDS * cells and setting in table.columns
    assert table["spike_auc"].between(0.0, 1.0).all() and (table["rmse_mV"] > 0).all(), table
    assert table["spike_auc"].max() > 0.8, table  # the toy cell is learnable within seconds
    summary = pd.read_csv(out / SUMMARY_FILE)
    assert len(summary) == variants * cells and (summary["n_seeds"] == QUICK_SEEDS).all()
    assert (summary["spike_auc_sd"] > 0).all()  # the seeds differ
    shown = [output for cell in nb.cells if cell.cell_type == "code" for output in cell.outputs
             if output.get("output_type") == "execute_result" and "spike_auc_mean" in output["data"].get("text/html", "")]
    assert shown, "the notebook should display its summary table"
    assert (out / figure).exists()
    text = (out / WRITEUP_FILE).read_text()
    assert "(quick mode" in text and f"]({figure})" in text and "±" in text
    assert any(word in text for word in ("**Reproduced**", "**Not resolved**", "**Contradicted**"))
    last = [cell for cell in nb.cells if cell.cell_type == "code"][-1]
    assert "write_section" in last.source  # the last cell writes the write-up


def test_the_full_mode_script_knows_every_notebook_and_refuses_others():
    import subprocess

    script = NOTEBOOKS.parent / "scripts" / "ablations.sh"
    names = next(line for line in script.read_text().splitlines() if line.startswith("NAMES="))
    assert sorted(n + "_ablation" for n in names.split(":-")[1].rstrip("}").split()) == sorted(CASES)
    done = subprocess.run(["bash", str(script), "no_such"], capture_output=True, text=True)
    assert done.returncode == 2 and "no notebook notebooks/no_such_ablation.ipynb" in done.stderr
