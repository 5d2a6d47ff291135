"""generate refuses what it cannot do before writing anything, records its morphology, and leaves no orphans."""

import argparse
import dataclasses
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import xarray as xr

from biophys import dataset, generate, planning, shards as shard_store
from biophys.cli import generate as cli_generate
from biophys.config import CellConfig
from biophys.genconfig import GenerateConfig, load_config
from biophys.morphology import file_sha256
from biophys.planning import GenerateError
from test_generate import FAKE, QUIET, FakeSimulator, data_vars, small_config

REPO = Path(__file__).resolve().parents[2]
SWC = "1 1 0 0 0 5 -1\n2 3 0 -5 0 1 1\n3 3 0 -40 0 1 2\n4 4 0 5 0 1 1\n5 4 0 200 0 1 4\n"


def cli(argv, capsys):
    parser = argparse.ArgumentParser()
    cli_generate.register_cli(parser.add_subparsers())
    args = parser.parse_args(argv)
    rc = args.func(args)
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("text, message", [
    ('duration_ms = "300"\n', r"GenerateConfig\.duration_ms must be a whole number, not str '300'"),
    ('[execution]\nworkers = "2"\n', r"Execution\.workers must be a whole number, not str '2'"),
    ('[sim]\nrecord_dendrites = "no"\n', r"SimConfig\.record_dendrites must be true or false, not str 'no'"),
    ('[execution]\nkeep_shards = 1\n', r"Execution\.keep_shards must be true or false"),
])
def test_config_values_of_the_wrong_type_are_refused_by_key(tmp_path, text, message):
    (tmp_path / "c.toml").write_text(text)
    with pytest.raises(ValueError, match=message):
        load_config(tmp_path / "c.toml")


@pytest.mark.parametrize("flags, what", [
    (["--n-sims", "1000000000000", "--duration-ms", "200"], "of disk"),
    (["--n-sims", "1", "--duration-ms", "1000000000"], "of memory"),
])
def test_runs_the_machine_cannot_hold_are_refused_before_anything_is_written(tmp_path, capsys, monkeypatch, flags,
                                                                            what):
    if what == "of memory":  # the disk of any machine running this test, however small, would hold it
        usage = shutil.disk_usage(tmp_path)._replace(free=2**60)
        monkeypatch.setattr(planning.shutil, "disk_usage", lambda path: usage)
    out = tmp_path / "data" / "h.zarr"
    rc, err = cli(["generate", "--out", str(out), "--cell", "ball-and-stick", "--workers", "1", "--no-progress",
                   *flags], capsys)
    assert rc == 2 and err.count("\n") == 1 and what in err and " GB" in err, err
    assert not tmp_path.joinpath("data").exists()


def test_resource_estimates_scale_and_name_the_numbers(tmp_path, monkeypatch):
    cfg = small_config()
    assert planning.store_bytes(dataclasses.replace(cfg, n_sims=10), 54) == 2 * planning.store_bytes(
        dataclasses.replace(cfg, n_sims=5), 54)
    assert planning.worker_bytes(cfg, 1278) > planning.worker_bytes(cfg, 54) > planning.WORKER_BASE_BYTES
    monkeypatch.setattr(planning, "available_memory_bytes", lambda: planning.WORKER_BASE_BYTES)
    with pytest.raises(GenerateError, match=r"1 worker\(s\) .* need about .* GB of memory .* allows 0\.419 GB"):
        generate.generate(cfg, tmp_path / "d.zarr", QUIET, simulator=FAKE, log=lambda m: None)
    assert list(tmp_path.iterdir()) == []


def test_tasks_are_planned_lazily():
    tasks = planning.plan_tasks(10**12, 3)
    assert len(tasks) == 333_333_333_334 and tasks[-1] == planning.Task(999_999_999_999, 10**12)
    assert tasks[1:3] == [planning.Task(3, 6), planning.Task(6, 9)]


def test_morphology_file_is_recorded_and_another_file_refused(tmp_path, capsys, monkeypatch):
    swc = tmp_path / "cell.swc"
    swc.write_text(SWC)
    # The command line builds the real cell; the fake simulator stands in through generate's `simulator` argument.
    monkeypatch.setattr(generate, "generate", functools.partial(generate.generate, simulator=FAKE, log=lambda m: None))
    out = tmp_path / "d.zarr"
    argv = ["generate", "--out", str(out), "--cell", "l5pc", "--morphology", str(swc), "--n-sims", "2",
            "--duration-ms", "100", "--sims-per-task", "1", "--workers", "1", "--keep-shards", "--no-progress"]
    rc, err = cli(argv, capsys)
    assert rc == 0, err
    ds = dataset.open_dataset(out)
    assert ds.attrs["morphology"] == str(swc.resolve()) and ds.attrs["morphology_sha256"] == file_sha256(swc)
    assert json.loads(ds.attrs["config"])["cell"]["morphology"] == str(swc.resolve())
    swc.write_text(SWC.replace("200", "250"))
    rc, err = cli(argv, capsys)
    assert rc == 2 and "was made with morphology" in err and err.count("\n") == 1
    os.rename(out, tmp_path / "kept.zarr")
    rc, err = cli(argv, capsys)   # the shards recorded the other file too
    assert rc == 2 and f"{shard_store.shard_dir(out)} was made with morphology" in err


def test_default_morphology_is_explicit_in_the_config():
    assert GenerateConfig().cell.morphology == "synthetic"
    assert small_config().cell.morphology == "ball-and-stick"
    with pytest.raises(ValueError, match="ball-and-stick cell has its built-in geometry"):
        GenerateConfig(cell=CellConfig(name="ball-and-stick", morphology="cell1"))


class SlowSimulator(FakeSimulator):
    def run(self, input_spikes, duration_ms):
        time.sleep(1.0)
        return super().run(input_spikes, duration_ms)


_KILL_CLI = """
import argparse, functools, sys
from biophys import generate
from biophys.cli import generate as cli
if __name__ == "__main__":
    generate.generate = functools.partial(generate.generate, simulator="test_generate_limits:SlowSimulator",
                                          log=lambda m: None)
    parser = argparse.ArgumentParser()
    cli.register_cli(parser.add_subparsers())
    args = parser.parse_args(sys.argv[1:])
    sys.exit(args.func(args))
"""


def _descendants(pid: int) -> set[int]:
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("backend", ["local", "dask"])
def test_sigkill_of_generate_leaves_no_worker_behind(tmp_path, backend):
    script = tmp_path / "cli.py"
    script.write_text(_KILL_CLI)
    tests = REPO / "tests"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, (REPO, tests, tests / "biophys")))}
    proc = subprocess.Popen([sys.executable, str(script), "generate", "--out", str(tmp_path / "k.zarr"),
                             "--cell", "ball-and-stick", "--n-sims", "40", "--duration-ms", "100",
                             "--sims-per-task", "1", "--workers", "2", "--force-workers", "--no-progress",
                             "--backend", backend],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not list(shard_store.shard_dir(tmp_path / "k.zarr").glob("sims-*")):
            assert proc.poll() is None and time.monotonic() < deadline, "generate ended before its first shard"
            time.sleep(0.05)
        workers = _descendants(proc.pid)
        assert len(workers) >= 2
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = [p for p in workers if _alive(p)]
    for pid in survivors:
        os.kill(pid, signal.SIGKILL)
    assert survivors == []


def test_same_size_corrupt_shard_chunk_is_redone(tmp_path):
    cfg = small_config()
    out = tmp_path / "d.zarr"
    keep = dataclasses.replace(QUIET, keep_shards=True)
    generate.generate(cfg, out, keep, simulator=FAKE, log=lambda m: None)
    reference = data_vars(out)
    shards = shard_store.shard_dir(out)
    name = planning.plan_tasks(cfg.n_sims, cfg.sims_per_task)[1].shard_name
    chunk = next(p for p in (shards / name / "input_spikes" / "c").rglob("*") if p.is_file())
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    os.rename(out, tmp_path / "first.zarr")
    messages = []
    report = generate.generate(cfg, out, keep, simulator=FAKE, log=messages.append)
    assert (report.n_new, report.n_kept) == (2, 2)
    assert [m for m in messages if m.startswith("redoing")] == [
        f"redoing {name}: 1 file(s) changed since the shard was written: "
        f"{chunk.relative_to(shards / name).as_posix()} differs from its checksum (same size, changed content)"]
    xr.testing.assert_identical(data_vars(out), reference)
