"""generate at scale: resume checks that decode nothing, a full disk, and an external dask scheduler."""

import argparse
import errno
import functools
import json
import logging
import os
import re
import signal
from pathlib import Path

import pytest
import xarray as xr

from biophys import backends, generate, shards as shard_store
from biophys.cli import generate as cli_generate
from biophys.genconfig import Execution
from biophys.planning import GenerateError, plan_tasks
from biophys.storefiles import manifest_path
from test_generate import FakeSimulator, data_vars, small_config

FAKE = f"{FakeSimulator.__module__}:FakeSimulator"
QUIET = Execution(progress=False)
KEEP = Execution(progress=False, keep_shards=True)
#: Names the shard whose write runs out of disk in a DiskFullSimulator's worker.
DISK_FULL_ENV = "NEURONCOMPUTE_TEST_DISK_FULL_SHARD"


class DiskFullSimulator(FakeSimulator):
    """FakeSimulator whose worker process runs out of disk while it writes the shard named by $DISK_FULL_ENV.

    The shard's metadata reach its temporary store, then the data chunks fail with ENOSPC, as when a disk fills
    up mid-write. The patch lives in the worker process, which the pool discards after the run.
    """

    def __init__(self, cell, sim):
        super().__init__(cell, sim)
        target = os.environ.get(DISK_FULL_ENV)
        if target and not getattr(xr.Dataset.to_zarr, "fills_disk", False):
            real = xr.Dataset.to_zarr

            def to_zarr(ds, store, *args, **kwargs):
                if Path(store).name.startswith(f".{target}.tmp-"):
                    real(ds.chunk(), store, *args, **{**kwargs, "compute": False})
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(Path(store) / "input_spikes"))
                return real(ds, store, *args, **kwargs)

            to_zarr.fills_disk = True
            xr.Dataset.to_zarr = to_zarr


DISK_FULL = f"{__name__}:DiskFullSimulator"
#: A KilledWorkerSimulator's worker process dies (SIGKILL, as from the OOM killer) in its k-th simulation.
KILL_ENV = "NEURONCOMPUTE_TEST_KILL_AT_SIM"


class KilledWorkerSimulator(FakeSimulator):
    """FakeSimulator whose worker process is killed by its own k-th simulation (k = $KILL_ENV, counted per
    process), as a worker killed by the OOM killer or an operator dies mid-task."""

    runs = 0

    def run(self, input_spikes, duration_ms):
        KilledWorkerSimulator.runs += 1
        if str(KilledWorkerSimulator.runs) == os.environ.get(KILL_ENV):
            os.kill(os.getpid(), signal.SIGKILL)
        return super().run(input_spikes, duration_ms)


KILLED = f"{__name__}:KilledWorkerSimulator"


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The data of small_config() generated in one run without failures."""
    out = tmp_path_factory.mktemp("uninterrupted") / "d.zarr"
    generate.generate(small_config(), out, QUIET, simulator=FAKE, log=lambda m: None)
    return data_vars(out)


def cli(argv):
    parser = argparse.ArgumentParser()
    cli_generate.register_cli(parser.add_subparsers())
    return parser.parse_args(argv)


def test_resume_check_decodes_nothing_yet_finds_damaged_shards(tmp_path, monkeypatch):
    cfg = small_config()
    config = cfg.to_dict()
    out = tmp_path / "d.zarr"
    generate.generate(cfg, out, KEEP, simulator=FAKE, log=lambda m: None)
    shards = shard_store.shard_dir(out)
    tasks = plan_tasks(cfg.n_sims, cfg.sims_per_task)
    paths = [shards / t.shard_name for t in tasks]
    assert all(manifest_path(p).exists() for p in paths)

    decoded = []
    real_data_problems = shard_store.data_problems
    monkeypatch.setattr(shard_store, "data_problems", lambda ds: decoded.append(ds) or real_data_problems(ds))
    assert [shard_store.shard_problems(p, t, config) for p, t in zip(paths, tasks)] == [[], [], []]
    assert decoded == []

    chunk = next(p for p in (paths[1] / "input_spikes" / "c").rglob("*") if p.is_file())
    chunk.write_bytes(chunk.read_bytes()[:7])
    problems = shard_store.shard_problems(paths[1], tasks[1], config)
    assert len(problems) == 1 and "input_spikes/c/" in problems[0] and "has 7 bytes" in problems[0]
    next(p for p in (paths[2] / "soma_voltage" / "c").rglob("*") if p.is_file()).unlink()
    assert "is missing" in shard_store.shard_problems(paths[2], tasks[2], config)[0]
    assert decoded == []

    # Without a manifest the shard is decoded: intact passes, a truncated chunk is still caught.
    manifest_path(paths[0]).unlink()
    assert shard_store.shard_problems(paths[0], tasks[0], config) == [] and len(decoded) == 1
    chunk = next(p for p in (paths[0] / "input_spikes" / "c").rglob("*") if p.is_file())
    chunk.write_bytes(chunk.read_bytes()[:7])
    assert "cannot be read" in shard_store.shard_problems(paths[0], tasks[0], config)[0]


def test_disk_full_while_writing_a_shard(tmp_path, monkeypatch, capsys, uninterrupted):
    cfg = small_config()
    (tmp_path / "c.json").write_text(json.dumps(cfg.to_dict()))
    out = tmp_path / "d.zarr"
    args = cli(["generate", "--config", str(tmp_path / "c.json"), "--out", str(out), "--workers", "1",
                "--keep-shards", "--no-progress"])
    # The command line builds the real cell; the fake simulator stands in through generate's `simulator` argument.
    monkeypatch.setattr(generate, "generate",
                        functools.partial(generate.generate, simulator=DISK_FULL, log=lambda m: None))
    names = [t.shard_name for t in plan_tasks(cfg.n_sims, cfg.sims_per_task)]
    monkeypatch.setenv(DISK_FULL_ENV, names[1])
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("generate: simulations 2..3 failed: the disk is full")
    assert "No space left on device" in err and f"while writing shard {shard_store.shard_dir(out) / names[1]}" in err
    shards = shard_store.shard_dir(out)
    # One worker runs the tasks in order: the first shard was finished before the disk filled up.
    first = shards / names[0]
    assert shard_store.shard_problems(first, plan_tasks(cfg.n_sims, cfg.sims_per_task)[0], cfg.to_dict()) == []
    assert not out.exists() and not (shards / names[1]).exists()
    assert not [p.name for p in shards.iterdir() if p.name.startswith(".")]
    mtime = (first / "zarr.json").stat().st_mtime_ns

    monkeypatch.delenv(DISK_FULL_ENV)
    assert args.func(args) == 0
    assert (first / "zarr.json").stat().st_mtime_ns == mtime
    xr.testing.assert_identical(data_vars(out), uninterrupted)


def test_disk_full_while_consolidating_keeps_the_shards(tmp_path, monkeypatch, uninterrupted):
    cfg = small_config()
    out = tmp_path / "d.zarr"
    real = xr.Dataset.to_zarr

    def fills_disk(ds, store, *args, **kwargs):
        if kwargs.get("region") is not None:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(store))
        return real(ds, store, *args, **kwargs)

    # Only this process is patched: the workers write their shards normally, the consolidation fails.
    monkeypatch.setattr(xr.Dataset, "to_zarr", fills_disk)
    with pytest.raises(GenerateError) as info:
        generate.generate(cfg, out, QUIET, simulator=FAKE, log=lambda m: None)
    message = str(info.value)
    shards = shard_store.shard_dir(out)
    assert "\n" not in message and message.startswith(f"consolidating 3 shard(s) into {out} failed: the disk is full")
    assert f"the shards in {shards} are kept" in message
    assert not out.exists() and not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    tasks = plan_tasks(cfg.n_sims, cfg.sims_per_task)
    assert [shard_store.shard_problems(shards / t.shard_name, t, cfg.to_dict()) for t in tasks] == [[], [], []]

    monkeypatch.undo()
    (tmp_path / ".d.zarr.tmp-0badf00d").mkdir()   # what a consolidation killed mid-write leaves behind
    report = generate.generate(cfg, out, QUIET, simulator=FAKE, log=lambda m: None)
    assert (report.n_new, report.n_kept) == (0, 3)
    assert not (tmp_path / ".d.zarr.tmp-0badf00d").exists() and not shards.exists()
    xr.testing.assert_identical(data_vars(out), uninterrupted)


def test_killed_worker_is_a_clear_error_and_the_run_resumes(tmp_path, monkeypatch, uninterrupted):
    cfg = small_config()
    out = tmp_path / "d.zarr"
    # One worker runs the 3 tasks (2 + 2 + 1 simulations) in order; its 3rd run is the second task's first.
    monkeypatch.setenv(KILL_ENV, "3")
    with pytest.raises(GenerateError) as info:
        generate.generate(cfg, out, Execution(workers=1, progress=False), simulator=KILLED, log=lambda m: None)
    message = str(info.value)
    # The pool fails every unfinished task at once; which one is reported first depends on scheduling.
    assert "\n" not in message
    assert re.match(r"simulations (2\.\.3|4\.\.4) failed: a worker process died \(killed, or out of memory\?\)\. "
                    r"Finished shards are kept; re-run the same command to resume\.$", message)
    tasks = plan_tasks(cfg.n_sims, cfg.sims_per_task)
    shards = shard_store.shard_dir(out)
    assert shard_store.shard_problems(shards / tasks[0].shard_name, tasks[0], cfg.to_dict()) == []
    assert not out.exists() and not (shards / tasks[1].shard_name).exists()

    monkeypatch.delenv(KILL_ENV)
    report = generate.generate(cfg, out, QUIET, simulator=KILLED, log=lambda m: None)
    assert (report.n_new, report.n_kept) == (3, 1)
    xr.testing.assert_identical(data_vars(out), uninterrupted)


@pytest.mark.neuron
@pytest.mark.slow
def test_external_dask_scheduler_matches_local(tmp_path):
    from distributed import Client, LocalCluster

    cfg = small_config(n_sims=3, sims_per_task=1, duration_ms=200)
    (tmp_path / "c.json").write_text(json.dumps(cfg.to_dict()))
    generate.generate(cfg, tmp_path / "local.zarr", Execution(workers=1, progress=False), log=lambda m: None)
    with LocalCluster(n_workers=2, threads_per_worker=2, processes=True, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster:
        args = cli(["generate", "--config", str(tmp_path / "c.json"), "--out", str(tmp_path / "dask.zarr"),
                    "--scheduler", cluster.scheduler_address, "--no-progress"])
        assert args.func(args) == 0
        with Client(cluster) as client:
            events = client.get_events(backends.PROGRESS_TOPIC)
    # Every simulation reported its progress from a worker of the external cluster.
    assert sorted(message[1] for _, message in events) == [0, 1, 2]
    local = data_vars(tmp_path / "local.zarr")
    assert local["input_spikes"].values.any()
    xr.testing.assert_identical(data_vars(tmp_path / "dask.zarr"), local)
