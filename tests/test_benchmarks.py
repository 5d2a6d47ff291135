"""The training-side benchmarks still run against the current code and print one JSON line (tiny sizes).

The simulation benchmarks (sim_speed, generate_speed) need compiled mechanisms and minutes of NEURON; the
engine's tests exercise the code they time."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _json_line(script: str, *args: str) -> dict:
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, done.stdout
    return json.loads(lines[0])


def test_elm_speed_prints_fast_and_plain_times():
    result = _json_line("elm_speed.py", "--threads", "1", "--repeats", "1", "--steps", "20")
    assert result["params"] == 8002
    timing = result["T20"]
    assert timing["fast_s"] > 0 and timing["plain_s"] > 0


def test_data_speed_prints_memory_and_lazy_times():
    result = _json_line("data_speed.py", "--batches", "2", "--repeats", "1")
    assert result["shape"] == [16, 4000, 1278]
    for mode in ("memory", "lazy"):
        assert result[mode]["batch_ms"] > 0 and result[mode]["elm_step_ms"] > result[mode]["batch_ms"]


def test_sweep_speed_times_each_layout_against_the_first():
    result = _json_line("sweep_speed.py", "--layouts", "1x1", "2x1", "--steps", "2", "--rounds", "1")
    assert set(result["steps_per_s"]) == {"1x1", "2x1"} and result["over_first"]["1x1"] == 1.0
    assert all(rate > 0 for rate in result["steps_per_s"].values())
