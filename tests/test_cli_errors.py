"""Each command-line tool turns bad arguments into one clear message, exit code 2, and writes nothing.

These run the real entry points (``python -m PACKAGE``) in subprocesses, as a user would.
"""

import subprocess
import sys

import pytest

from fakes import fake_store


def run(*args, cwd):
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def assert_clean_failure(proc, *words):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    for word in words:
        assert word in proc.stderr, proc.stderr


def test_biophys_generate_negative_duration(tmp_path):
    proc = run("biophys", "generate", "--out", str(tmp_path / "d.zarr"), "--n-sims", "1", "--duration-ms", "-5",
               cwd=tmp_path)
    assert_clean_failure(proc, "duration")
    assert list(tmp_path.iterdir()) == []


def test_biophys_inspect_missing_store(tmp_path):
    proc = run("biophys", "inspect", str(tmp_path / "missing.zarr"), cwd=tmp_path)
    assert_clean_failure(proc, "missing.zarr")


def test_surrogate_train_missing_store(tmp_path):
    proc = run("surrogate", "train", "--model", "lstm", "--train", str(tmp_path / "none.zarr"),
               "--valid", str(tmp_path / "none.zarr"), "--out", str(tmp_path / "run"), cwd=tmp_path)
    assert_clean_failure(proc, "none.zarr")
    assert not (tmp_path / "run").exists()


def test_surrogate_train_wrong_input_width(tmp_path):
    store = fake_store(tmp_path / "s.zarr", n_sims=2, n_time=1200, n_segments=4)
    proc = run("surrogate", "train", "--model", "lstm", "--model-config", '{"n_inputs": 10}',
               "--train", str(store), "--valid", str(store), "--out", str(tmp_path / "run"), cwd=tmp_path)
    assert_clean_failure(proc, "8")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", ["evaluate", "report"])
def test_analysis_missing_run(tmp_path, command):
    store = fake_store(tmp_path / "s.zarr", n_sims=1, n_time=400, n_segments=2)
    out = tmp_path / "out"
    extra = ["--out", str(out)]
    proc = run("analysis", command, str(tmp_path / "no_run"), "--data", str(store), *extra, cwd=tmp_path)
    assert_clean_failure(proc, "no_run")
    assert not out.exists()
