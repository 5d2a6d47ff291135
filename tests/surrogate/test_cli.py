"""`python -m surrogate train`: options, config files, resume, and one-line user errors with exit status 2."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fakes import fake_store
from surrogate.cli import build_parser, main
from surrogate.config import TrainConfig

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("stores")
    return (fake_store(root / "train.zarr", n_sims=3, n_time=800, seed=0),
            fake_store(root / "valid.zarr", n_sims=2, n_time=800, seed=1))


def tiny_args(stores, out, *extra) -> list[str]:
    return ["train", "--model", "lstm", "--model-config", '{"hidden": 8}', "--train", str(stores[0]),
            "--valid", str(stores[1]), "--out", str(out), "--epochs", "1", "--batches-per-epoch", "2",
            "--batch-size", "2", "--window-ms", "200", "--burn-in-ms", "50", "--threads", "1", "--no-progress", *extra]


def exit_code(argv: list[str]) -> int:
    """main's return value, or the status of argparse's exit on a usage error."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def run_cli(*args) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "surrogate", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)


def test_help_explains_every_option():
    parser = build_parser()
    train_parser = parser._subparsers._group_actions[0].choices["train"]
    text = train_parser.format_help()
    for action in train_parser._actions:
        assert action.help, f"{action.option_strings} has no help"
        for option in action.option_strings:
            assert option in text


def test_every_config_field_has_an_option():
    """Each TrainConfig field can be set from the command line (as --field-name)."""
    train_parser = build_parser()._subparsers._group_actions[0].choices["train"]
    options = {o for a in train_parser._actions for o in a.option_strings}
    for name in TrainConfig.__dataclass_fields__:
        assert "--" + name.replace("_", "-") in options, name


def test_train_writes_the_run_and_prints_its_path(stores, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(tiny_args(stores, out, "--seed", "7", "--lr", "1e-3")) == 0
    assert capsys.readouterr().out.strip() == str(out.resolve())
    config = json.loads((out / "config.json").read_text())
    assert (config["seed"], config["lr"], config["model"], config["model_config"]["hidden"]) == (7, 1e-3, "lstm", 8)
    assert json.loads((out / "metrics.json").read_text())["status"] == "finished"


def test_config_file_toml_and_json_with_options_on_top(stores, tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('epochs = 2\nlr = 0.002\nseed = 3\n[model_config]\nhidden = 6\n')
    assert main(tiny_args(stores, tmp_path / "a", "--config", str(toml))) == 0
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    # --epochs 1 and --model-config on the command line win over the file; the rest comes from it
    assert (config["epochs"], config["lr"], config["seed"], config["model_config"]["hidden"]) == (1, 0.002, 3, 8)
    js = tmp_path / "c.json"
    js.write_text(json.dumps({"valid_every": 1, "early_stopping_patience": 4}))
    assert main(tiny_args(stores, tmp_path / "b", "--config", str(js))) == 0
    assert json.loads((tmp_path / "b" / "config.json").read_text())["early_stopping_patience"] == 4


def test_resume_takes_the_saved_settings(stores, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(tiny_args(stores, out, "--max-wall-s", "1e-9")) == 0
    assert json.loads((out / "metrics.json").read_text())["status"] == "wall_budget"
    assert main(["train", "--out", str(out), "--resume", "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "finished" and metrics["steps"] == 2
    assert main(["train", "--out", str(out), "--resume", "--lr", "0.1"]) == 2
    assert "cannot resume" in capsys.readouterr().err


def test_resume_may_change_the_data_mode(stores, tmp_path):
    out = tmp_path / "run"
    assert main(tiny_args(stores, out, "--max-wall-s", "1e-9", "--data-mode", "memory")) == 0
    assert main(["train", "--out", str(out), "--resume", "--no-progress", "--data-mode", "lazy"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "finished" and metrics["data_mode"]["mode"] == "lazy"


@pytest.mark.parametrize("extra, message", [
    (["--model-config", "{hidden: 8"], "--model-config: not valid JSON"),
    (["--epochs", "0"], "epochs must be an integer"),
    (["--config", "absent.toml"], "config file absent.toml does not exist"),
    (["--model-config", '{"n_inputs": 1278}'], "expects 1278 input channels"),
])
def test_user_errors_are_one_line_exit_2(stores, tmp_path, capsys, extra, message):
    assert exit_code(tiny_args(stores, tmp_path / "run", *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


def test_missing_store_in_a_fresh_process_has_no_traceback(stores, tmp_path):
    result = run_cli("train", "--model", "lstm", "--train", str(tmp_path / "nowhere.zarr"), "--valid", str(stores[1]),
                     "--out", str(tmp_path / "run"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: no dataset store at {tmp_path / 'nowhere.zarr'}"
    assert not (tmp_path / "run").exists()


def test_unknown_config_key_in_a_fresh_process(stores, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"epoch": 3}')
    result = run_cli(*tiny_args(stores, tmp_path / "run", "--config", str(bad)))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "unknown key(s) ['epoch'] in the training config" in result.stderr


def test_resume_of_a_missing_or_checkpoint_less_directory_says_so(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "absent"), "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot resume" in err and "no run directory at" in err and "no train path" not in err
    (tmp_path / "empty").mkdir()
    assert main(["train", "--out", str(tmp_path / "empty"), "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert "holds no checkpoint" in err and "\n" not in err and "no train path" not in err


def test_resume_with_another_model_kind_names_the_run_kind(stores, tmp_path, capsys):
    out = tmp_path / "run"
    args = tiny_args(stores, out, "--max-wall-s", "1e-9")
    args[args.index("lstm")] = "branch-elm"
    args[args.index('{"hidden": 8}')] = '{"n_branches": 4, "synapses_per_branch": 4, "d_memory": 3}'
    assert main(args) == 0
    assert main(["train", "--out", str(out), "--resume", "--model", "tcn"]) == 2
    err = capsys.readouterr().err.strip()
    assert "this run is a branch-elm run" in err and "unknown tcn config keys" not in err


def test_a_huge_batch_size_is_refused_before_allocating_and_leaves_no_run_dir(stores, tmp_path):
    result = run_cli(*tiny_args(stores, tmp_path / "run"), "--batch-size", str(10**12))
    assert result.returncode == 2 and "Traceback" not in result.stderr and "MemoryError" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "lower --batch-size" in lines[0] and "TB" in lines[0], result.stderr
    assert not (tmp_path / "run").exists()


def test_ctrl_c_writes_the_checkpoint_and_says_how_to_resume(stores, tmp_path):
    out = tmp_path / "run"
    args = tiny_args(stores, out)
    args[args.index("--batches-per-epoch") + 1] = "100000"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "surrogate", *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not out.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(1.0)  # some batches into the epoch
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    assert f"continue with: python -m surrogate train --out {out.resolve()} --resume" in stderr.strip().splitlines()[-1]
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)
    assert checkpoint["status"] == "interrupted" and checkpoint["next_batch"] > 0
    result = run_cli("train", "--out", str(out), "--resume", "--max-wall-s", "1e-9", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert torch.load(out / "checkpoint.pt", weights_only=True)["next_batch"] == checkpoint["next_batch"] + 1
