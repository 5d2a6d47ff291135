import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from biophys import backends, dataset, genconfig, generate, shards as shard_store
from biophys.cli import generate as cli_generate
from biophys.genconfig import Execution, GenerateConfig, load_config
from biophys.planning import GenerateError, Task, plan_tasks
from biophys.inputs import InputConfig, draw_inputs
from biophys.inspect_store import store_problems
from biophys.config import CellConfig, SimConfig
from biophys.recordings import SimResult
from fakes import fake_dataset, fake_synapses

REPO = Path(__file__).resolve().parents[2]


class FakeSimulator:
    """A deterministic stand-in for CellSimulator (leaky sum of signed inputs), cheap to build in a worker."""

    def __init__(self, cell: CellConfig, sim: SimConfig):
        self.synapses = fake_synapses(6)
        self.n_synapses = len(self.synapses)

    def run(self, input_spikes: np.ndarray, duration_ms: int) -> SimResult:
        drive = self.synapses["sign"].to_numpy() @ input_spikes.astype(np.float64)
        v = (-70.0 + np.convolve(drive, np.exp(-np.arange(50) / 10.0))[:duration_ms]).astype(np.float32)
        spikes = np.flatnonzero(v > -55.0)[::7] + 0.25
        return SimResult(soma_mV=v, nexus_mV=v - 1.0, spike_times_ms=spikes, dend_mV=None)

    def provenance(self) -> dict:
        return {"cell": {"name": "fake"}}

    def close(self) -> None:
        pass


class FailingSimulator(FakeSimulator):
    def run(self, input_spikes, duration_ms):
        raise RuntimeError("the membrane melted")


FAKE = f"{__name__}:FakeSimulator"
QUIET = Execution(progress=False)


def small_config(**kwargs) -> GenerateConfig:
    base = dict(cell=CellConfig(name="ball-and-stick"), duration_ms=200, n_sims=5, base_seed=3, sims_per_task=2,
                inputs=InputConfig(exc_spikes_per_100ms={"basal": (0, 40), "apical": (0, 40)}))
    return GenerateConfig(**{**base, **kwargs})


def data_vars(path) -> xr.Dataset:
    ds = dataset.open_dataset(path).load()
    return ds.drop_attrs()


# --- configuration ---------------------------------------------------------------------------------------------


def test_config_round_trip_json_and_toml(tmp_path):
    cfg = small_config()
    (tmp_path / "c.json").write_text(json.dumps({**cfg.to_dict(), "execution": {"workers": 1}}))
    loaded, execution = load_config(tmp_path / "c.json")
    assert loaded == cfg and execution == Execution(workers=1)
    (tmp_path / "c.toml").write_text(
        "duration_ms = 200\nn_sims = 5\nbase_seed = 3\nsims_per_task = 2\n"
        "[cell]\nname = 'ball-and-stick'\n[sim]\ncelsius_degC = 34\n"
        "[inputs]\nblock_jitter_ms = 10\n[inputs.exc_spikes_per_100ms]\nbasal = [0, 40]\napical = [0, 40]\n"
        "[execution]\nbackend = 'dask'\n")
    loaded, execution = load_config(tmp_path / "c.toml")
    assert loaded.sim.celsius_degC == 34.0 and isinstance(loaded.sim.celsius_degC, float)
    assert loaded.inputs.block_jitter_ms == 10.0 and loaded.inputs.exc_spikes_per_100ms["basal"] == (0.0, 40.0)
    assert execution.backend == "dask"
    assert GenerateConfig.from_dict(json.loads(json.dumps(loaded.to_dict()))) == loaded


@pytest.mark.parametrize("text, message", [
    ('{"n_sim": 4}', r"unknown key\(s\) \['n_sim'\] in config"),
    ('{"inputs": {"block_jitter": 3}}', r"\['block_jitter'\] in section \[inputs\]"),
    ('{"sim": {"dt": 0.1}}', r"section \[sim\]"),
    ('{"execution": {"threads": 2}}', r"section \[execution\]"),
    ('{"n_sims": 0}', "n_sims must be a whole number ≥ 1"),
    ('{"duration_ms": 10.5}', "whole number of ms"),
    ('{"cell": {"name": "purkinje"}}', "CellConfig.name"),
    ('{"inputs": {"exc_spikes_per_100ms": {"basal": [-1, 3]}}}', "negative"),
    ('{"execution": {"workers": 0}}', "workers must be"),
    ("[1, 2]", "table of keys"),
    ("{oops", "cannot read config"),
])
def test_config_errors_name_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_config(path)


def test_config_suffix_and_execution_checks(tmp_path):
    (tmp_path / "c.yaml").write_text("n_sims: 3")
    with pytest.raises(ValueError, match=r"\.json or \.toml"):
        load_config(tmp_path / "c.yaml")
    with pytest.raises(ValueError, match="exceeds the .* CPUs"):
        Execution(workers=(os.cpu_count() or 1) + 1)
    assert Execution(workers=(os.cpu_count() or 1) + 1, force_workers=True).workers == (os.cpu_count() or 1) + 1
    with pytest.raises(ValueError, match="backend"):
        Execution(backend="slurm")
    with pytest.raises(ValueError, match="needs --backend dask"):
        Execution(scheduler="tcp://host:8786")


def test_cli_flags_override_config(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps(small_config().to_dict()))
    parser = argparse.ArgumentParser()
    cli_generate.register_cli(parser.add_subparsers())
    args = parser.parse_args(["generate", "--config", str(tmp_path / "c.json"), "--out", "x.zarr", "--n-sims", "9",
                              "--seed", "11", "--cell", "l5pc", "--record-dendrites", "--scheduler", "tcp://h:1"])
    cfg, execution = cli_generate._resolve(args)
    assert (cfg.n_sims, cfg.base_seed, cfg.cell.name, cfg.sim.record_dendrites) == (9, 11, "l5pc", True)
    assert cfg.duration_ms == 200 and cfg.inputs.exc_spikes_per_100ms["basal"] == (0.0, 40.0)
    assert (execution.backend, execution.scheduler) == ("dask", "tcp://h:1")


def test_cli_error_exit_code(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    cli_generate.register_cli(parser.add_subparsers())
    args = parser.parse_args(["generate", "--out", str(tmp_path / "x.zarr"), "--workers", "0"])
    assert args.func(args) == 2
    assert "workers must be a whole number ≥ 1" in capsys.readouterr().err
    assert not (tmp_path / "x.zarr").exists() and not (tmp_path / "x.zarr.shards").exists()


def test_plan_tasks():
    tasks = plan_tasks(7, 3)
    assert tasks == [Task(0, 3), Task(3, 6), Task(6, 7)]
    assert tasks[1].shard_name == "sims-0000003-0000006.zarr" and tasks[2].sims.tolist() == [6]


# --- runs with the fake simulator (real process pool, no NEURON) -----------------------------------------------


def test_generate_writes_seeded_complete_store(tmp_path):
    cfg = small_config()
    out = tmp_path / "d.zarr"
    report = generate.generate(cfg, out, QUIET, simulator=FAKE, log=lambda m: None)
    assert report.n_sims == 5 and report.n_new == 5 and report.simulated_s == pytest.approx(1.0)
    assert not shard_store.shard_dir(out).exists()
    ds = dataset.open_dataset(out)
    assert ds["sim"].values.tolist() == [0, 1, 2, 3, 4] and ds["seed"].values.tolist() == [0, 1, 2, 3, 4]
    assert json.loads(ds.attrs["config"]) == cfg.to_dict()
    assert json.loads(ds.attrs["provenance"])["cell"] == {"name": "fake"}
    # simulation k's input is the protocol drawn from SeedSequence((base_seed, k)), stored [time, synapse]
    segments = fake_synapses(6).query("kind == 'exc'")[["tree", "length_um"]]
    for k in (0, 4):
        rng = np.random.default_rng(np.random.SeedSequence((3, k)))
        expected = draw_inputs(cfg.inputs, segments, 200, rng)
        assert np.array_equal(ds["input_spikes"].isel(sim=k).values, expected.T)
    assert store_problems(out) == []
    # a second run with the same config finds the store complete
    messages = []
    again = generate.generate(cfg, out, QUIET, simulator=FAKE, log=messages.append)
    assert again.n_new == 0 and "already complete" in messages[0]


def test_corrupt_and_partial_shards_are_redone(tmp_path):
    cfg = small_config()
    out = tmp_path / "d.zarr"
    keep = Execution(progress=False, keep_shards=True)
    generate.generate(cfg, out, keep, simulator=FAKE, log=lambda m: None)
    reference = data_vars(out)
    shards = shard_store.shard_dir(out)
    names = [t.shard_name for t in plan_tasks(5, 2)]
    mtimes = {n: (shards / n / "zarr.json").stat().st_mtime_ns for n in names}
    chunk = next(p for p in (shards / names[1] / "input_spikes").rglob("*") if p.is_file())
    chunk.write_bytes(chunk.read_bytes()[:7])                     # truncated chunk: opens, cannot decode
    (shards / names[2] / "zarr.json").unlink()                     # half-written store
    (shards / ".sims-0000099-0000100.zarr.tmp-deadbeef").mkdir()   # leftover of a killed write
    shutil.rmtree(out)
    messages = []
    report = generate.generate(cfg, out, keep, simulator=FAKE, log=messages.append)
    assert report.n_new == 3 and report.n_kept == 1
    assert sum("redoing" in m for m in messages) == 2
    assert (shards / names[0] / "zarr.json").stat().st_mtime_ns == mtimes[names[0]]
    assert (shards / names[1] / "zarr.json").stat().st_mtime_ns != mtimes[names[1]]
    assert not (shards / ".sims-0000099-0000100.zarr.tmp-deadbeef").exists()
    xr.testing.assert_identical(data_vars(out), reference)


def test_config_mismatch_refused(tmp_path):
    cfg = small_config()
    out = tmp_path / "d.zarr"
    shards = shard_store.shard_dir(out)
    shards.mkdir()
    (shards / "config.json").write_text(json.dumps(small_config(base_seed=4).to_dict()))
    with pytest.raises(GenerateError, match=r"different config \(base_seed: 4 \(existing\) vs 3 \(requested\)\)"
                                            r".*To resume it.*to start fresh, remove"):
        generate.generate(cfg, out, QUIET, simulator=FAKE, log=lambda m: None)
    # a finished store made with another config is refused too, naming the differing key
    other = small_config(inputs=InputConfig(exc_spikes_per_100ms={"basal": (0, 40), "apical": (0, 40)},
                                            block_jitter_ms=5))
    made = fake_dataset(n_sims=1, n_time=200, n_segments=6)
    made.attrs["config"] = json.dumps(other.to_dict())
    dataset.write_store(made, out)
    with pytest.raises(GenerateError, match=r"inputs\.block_jitter_ms: 5\.0 \(existing\) vs 20\.0"):
        generate.generate(cfg, out, QUIET, simulator=FAKE)
    assert generate.generate(other, out, QUIET, simulator=FAKE, log=lambda m: None).n_new == 0


def test_failed_task_keeps_finished_shards(tmp_path):
    cfg = small_config()
    out = tmp_path / "d.zarr"
    # Every task fails; which one is reported first depends on process scheduling.
    with pytest.raises(GenerateError, match=r"simulations \d+\.\.\d+ failed: RuntimeError: the membrane melted.*resume"):
        generate.generate(cfg, out, QUIET, simulator=f"{__name__}:FailingSimulator", log=lambda m: None)
    assert not out.exists() and (shard_store.shard_dir(out) / "config.json").exists()


# --- the real cell --------------------------------------------------------------------------------------------


@pytest.mark.neuron
@pytest.mark.slow
def test_seeds_identical_across_workers_and_backends(tmp_path):
    cfg = small_config(n_sims=3, sims_per_task=1, duration_ms=200)
    runs = {
        "local1": Execution(workers=1, progress=False),
        "local2": Execution(workers=2, progress=False, force_workers=True),
        "dask2": Execution(workers=2, backend="dask", progress=False, force_workers=True),
    }
    data = {}
    for name, execution in runs.items():
        generate.generate(cfg, tmp_path / f"{name}.zarr", execution, log=lambda m: None)
        data[name] = data_vars(tmp_path / f"{name}.zarr")
    assert data["local1"]["input_spikes"].values.any() and np.ptp(data["local1"]["soma_voltage"].values) > 1.0
    xr.testing.assert_identical(data["local1"], data["local2"])
    xr.testing.assert_identical(data["local1"], data["dask2"])
    prov = dataset.NeuronIOStore(tmp_path / "dask2.zarr").provenance
    assert prov["cell"]["name"] == "ball-and-stick" and prov["n_synapses"] == 54


def test_coreneuron_workers_are_replaced_after_their_share_of_simulated_time(tmp_path, monkeypatch):
    """A local CoreNEURON worker gives way to a fresh process after RECYCLE_AFTER_MS of simulated time (NEURON's
    integrator keeps its workers), and the data are those of workers that never end."""
    cfg = small_config(n_sims=4, sims_per_task=1)
    assert cfg.sim.engine == "coreneuron"
    assert backends.tasks_per_worker(cfg) == 3000
    assert backends.tasks_per_worker(small_config(sim=SimConfig(engine="neuron"))) is None
    monkeypatch.setattr(backends, "RECYCLE_AFTER_MS", 2 * cfg.duration_ms)
    assert backends.tasks_per_worker(cfg) == 2
    from biophys.progress import Progress

    jobs = [backends.Job(task, cfg.to_dict(), str(tmp_path / task.shard_name), {}, FAKE)
            for task in plan_tasks(cfg.n_sims, cfg.sims_per_task)]
    results = list(backends.run_local(iter(jobs), len(jobs), Execution(workers=1, progress=False),
                                      Progress(cfg.n_sims, 0, False), backends.tasks_per_worker(cfg)))
    pids = [r.worker_pid for r in sorted(results, key=lambda r: r.task.start)]
    assert len(set(pids)) == 2 and pids[0] == pids[1] != pids[2] == pids[3]
    generate.generate(cfg, tmp_path / "recycled.zarr", QUIET, simulator=FAKE, log=lambda m: None)
    monkeypatch.setattr(backends, "RECYCLE_AFTER_MS", 10**9)
    generate.generate(cfg, tmp_path / "kept.zarr", QUIET, simulator=FAKE, log=lambda m: None)
    xr.testing.assert_identical(data_vars(tmp_path / "recycled.zarr"), data_vars(tmp_path / "kept.zarr"))


_CLI = """
import argparse, sys
from biophys.cli import generate
if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    generate.register_cli(parser.add_subparsers())
    args = parser.parse_args(sys.argv[1:])
    sys.exit(args.func(args))
"""


@pytest.mark.neuron
@pytest.mark.slow
def test_resume_after_killed_run(tmp_path):
    out = tmp_path / "r.zarr"
    argv = ["generate", "--out", str(out), "--cell", "ball-and-stick", "--n-sims", "12", "--duration-ms", "300",
            "--sims-per-task", "2", "--seed", "5", "--workers", "1", "--keep-shards", "--no-progress"]
    script = tmp_path / "cli.py"
    script.write_text(_CLI)
    proc = subprocess.Popen([sys.executable, str(script), *argv], cwd=REPO, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    shards = shard_store.shard_dir(out)
    deadline = time.monotonic() + 60
    try:
        while not any(p.name.startswith("sims-") for p in shards.glob("sims-*")):
            assert proc.poll() is None and time.monotonic() < deadline, "generate ended before its first shard"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finished = {p.name: (p / "zarr.json").stat().st_mtime_ns for p in shards.glob("sims-*")}
    assert 1 <= len(finished) < 6 and not out.exists()

    parser = argparse.ArgumentParser()
    cli_generate.register_cli(parser.add_subparsers())
    args = parser.parse_args(argv)
    assert args.func(args) == 0
    for name, mtime in finished.items():
        assert (shards / name / "zarr.json").stat().st_mtime_ns == mtime
    assert len(list(shards.glob("sims-*"))) == 6
    assert store_problems(out) == []
    assert dataset.open_dataset(out)["seed"].values.tolist() == list(range(12))


def test_dataset_default_integration_step():
    """Datasets default to the fastest step that benchmarks/sim_speed.py found accurate; configs can override."""
    assert GenerateConfig().sim.dt_ms == genconfig.DATASET_SIM_DEFAULTS["dt_ms"] == 1 / 12
    assert GenerateConfig().sim.secondorder == 2
    assert GenerateConfig.from_dict({}).sim == GenerateConfig().sim
    overridden = GenerateConfig.from_dict({"sim": {"dt_ms": 0.025, "secondorder": 0}}).sim
    assert (overridden.dt_ms, overridden.secondorder) == (0.025, 0)
