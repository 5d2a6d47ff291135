"""Published ELM checkpoints (Spieler et al. 2023) imported as run directories: outputs, layout, and refusals.

Checkpoint folders are built here, in the release's naming (model_config.json, neuronio_best_model_state.pt with
the release's state_dict keys, eval_results.json, …); nothing is downloaded. The release's equations are
re-implemented below in float64 NumPy straight from its state_dict, and that implementation is itself checked
against the shared conformance cases, so the imported ELM is compared with an independent reference.
"""

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from published_fakes import BRANCH_ARGS, EVAL, neuronio_store, release_state, write_checkpoint
from surrogate.import_published import import_elmneuron, read_checkpoint_dir
from surrogate.published import NEURONIO_NSEG, PublishedError, neuronio_layout, neuronio_segments
from surrogate.run import load_run


def reference_forward(state: dict, args: dict, x: np.ndarray) -> np.ndarray:
    """The release's recurrence (v1: per-synapse traces, gain λ(1 − κ_m); v2: per-branch traces, gain 1 − κ_m^λ)
    in float64 from its state_dict: x [B, T, n_in] signed inputs → y [B, T, n_out]."""
    s = {k: np.asarray(v, dtype=np.float64) for k, v in state.items()}
    lam, dt = args.get("lambda_value", 5.0), args.get("delta_t", 1.0)
    lo, hi = args["memory_tau_min"], args["memory_tau_max"]
    tau_m = lo + (hi - lo) / (1 + np.exp(-s["_proto_tau_m"]))
    kappa_m = np.exp(-dt / tau_m)
    v2 = "tau_b" in s
    gain = 1 - np.exp(-dt * lam / tau_m) if v2 else lam * (1 - kappa_m)
    kappa = np.exp(-dt / (s["tau_b"] if v2 else s["tau_s"]))
    w_s = np.maximum(s["_proto_w_s"], 0)
    if s["input_to_synapse_indices"].size:
        x = x[..., s["input_to_synapse_indices"].astype(int)] * s["valid_indices_mask"]
    n_branch = args.get("num_branch") or x.shape[-1]
    layers = sorted({int(k.split(".")[2]) for k in s if k.startswith("mlp.network.")})
    act = (lambda z: z / (1 + np.exp(-z))) if args.get("mlp_activation") == "silu" else (lambda z: np.maximum(z, 0))
    batch, steps, _ = x.shape
    trace = np.zeros((batch, kappa.size))
    m = np.zeros((batch, tau_m.size))
    out = []
    for t in range(steps):
        drive = w_s * x[:, t]
        if v2:
            trace = kappa * trace + drive.reshape(batch, n_branch, -1).sum(-1)
            branches = trace
        else:
            trace = kappa * trace + drive
            branches = trace.reshape(batch, n_branch, -1).sum(-1)
        h = np.concatenate([branches, kappa_m * m], axis=-1)
        for i, layer in enumerate(layers):
            h = h @ s[f"mlp.network.{layer}.weight"].T + s[f"mlp.network.{layer}.bias"]
            if i < len(layers) - 1:
                h = act(h)
        m = kappa_m * m + gain * 1.7159 * np.tanh(2 / 3 * h)
        out.append(m @ s["w_y.weight"].T + s["w_y.bias"])
    return np.stack(out, axis=1)


@pytest.mark.parametrize("case", ["v1_branch_neuronio", "v2_branch_neuronio", "v1_vanilla_dm5_silu_2layer"])
def test_the_reference_implementation_reproduces_the_conformance_cases(shared_data, case):
    folder = shared_data / "elm_conformance"
    arrays = np.load(folder / f"{case}.npz")
    args = json.loads((folder / "cases.json").read_text())[case]["config"]
    state = {k.replace("__", "."): arrays[k] for k in arrays.files}
    assert np.abs(reference_forward(state, args, arrays["x"]) - arrays["y"]).max() < 1e-4


def test_the_neuronio_layout_is_the_original_order():
    layout = neuronio_layout()
    segments = neuronio_segments()
    assert len(segments) == sum(map(sum, NEURONIO_NSEG.values())) == 639 and len(set(segments)) == 639
    assert layout.n_channels == 1278 and layout.segments[:639] == layout.segments[639:] == tuple(segments)
    assert layout.kinds[:639] == ("exc",) * 639 and layout.kinds[639:] == ("inh",) * 639
    assert (layout.signs[:639] == 1).all() and (layout.signs[639:] == -1).all()
    assert segments[0] == "dend[0](0.5)" and segments[2] == "dend[2](0.0714286)" and segments[262] == "apic[0](0.166667)"
    assert segments[-1] == "apic[108](0.5)"
    np.testing.assert_array_equal(layout.exc_inh_pairs(), np.stack([np.arange(639), np.arange(639) + 639], axis=1))


@pytest.mark.parametrize("version", [1, 2])
def test_an_imported_run_computes_the_release_equations(tmp_path, version):
    folder = write_checkpoint(tmp_path / "ckpt", version=version)
    out = import_elmneuron(folder, tmp_path / "run")
    run = load_run(out)
    assert run.model.config.version == version and run.model.layout == neuronio_layout()
    x = np.random.default_rng(1).poisson(0.05, (2, 80, 1278)).astype(np.float32) * neuronio_layout().signs
    with torch.no_grad():
        y = run.model(torch.from_numpy(x)).numpy()
    state = torch.load(folder / "neuronio_best_model_state.pt", weights_only=True)
    expected = reference_forward({k: v.numpy() for k, v in state.items()}, BRANCH_ARGS, x)
    assert np.abs(y - expected).max() < 1e-5
    assert np.abs(expected).max() > 0.1  # not a degenerate comparison


@pytest.mark.parametrize("case", ["v1_branch_neuronio", "v2_branch_neuronio", "v1_vanilla_dm5_silu_2layer"])
def test_conformance_weights_imported_as_a_checkpoint_give_the_expected_outputs(shared_data, tmp_path, case):
    folder = shared_data / "elm_conformance"
    arrays = np.load(folder / f"{case}.npz")
    args = json.loads((folder / "cases.json").read_text())[case]["config"]
    state = {k.replace("__", "."): torch.from_numpy(arrays[k]) for k in arrays.files
             if k not in ("x", "y", "tau_m_effective", "w_s_effective")}
    run = load_run(import_elmneuron(write_checkpoint(tmp_path / "ckpt", args=args, state=state), tmp_path / "run"))
    with torch.no_grad():
        y = run.model(torch.from_numpy(arrays["x"])).numpy()
    assert np.abs(y - arrays["y"]).max() < 1e-4
    assert run.metrics["num_params"] == json.loads((folder / "cases.json").read_text())[case]["trainable_params"]


def test_the_run_directory_records_where_it_came_from_and_the_published_metrics(tmp_path):
    folder = write_checkpoint(tmp_path / "ckpt")
    run = load_run(import_elmneuron(folder, tmp_path / "run"))
    assert run.metrics["status"] == "imported" and run.history == []
    assert run.config["burn_in_ms"] == 150 and run.config["published"]["model_config"] == BRANCH_ARGS
    test = run.metrics["published"]["test"]
    assert test["spike_auc"] == 0.99 and test["rmse_mV"] == 0.64 and test["tpr_at_fpr"] == {"0.25%": 0.3, "1.00%": 0.7}
    assert test["explained_variance"] == pytest.approx(0.957)
    files = run.metrics["provenance"]["import"]["sha256"]
    assert set(files) == {"model_config.json", "neuronio_best_model_state.pt", "eval_results.json",
                          "train_config.json", "model_stats.json"}
    assert files["eval_results.json"] == hashlib.sha256((folder / "eval_results.json").read_bytes()).hexdigest()
    assert run.metrics["provenance"]["import"]["source"] == str(folder.resolve())


def test_a_checkpoint_without_train_config_imports_with_the_default_burn_in(tmp_path):
    run = load_run(import_elmneuron(write_checkpoint(tmp_path / "ckpt", train_config=False), tmp_path / "run"))
    assert "burn_in_ms" not in run.config and "train_config.json" not in run.metrics["provenance"]["import"]["sha256"]


def test_a_store_with_permuted_synapses_is_scored_the_same(tmp_path):
    from analysis.evaluate import evaluate_run

    run = import_elmneuron(write_checkpoint(tmp_path / "ckpt"), tmp_path / "run")
    perm = np.random.default_rng(3).permutation(1278)
    usual, _ = neuronio_store(tmp_path / "usual.zarr")
    shuffled, _ = neuronio_store(tmp_path / "shuffled.zarr", perm=perm)
    a, b = evaluate_run(run, usual, burn_in_ms=20), evaluate_run(run, shuffled, burn_in_ms=20)
    for key in ("spike_auc", "rmse_mV", "mae_mV", "explained_variance"):
        assert a[key] == b[key], key
    assert a["published"]["test"]["spike_auc"] == 0.99


def _bad(tmp_path, name, **kwargs) -> str:
    folder = write_checkpoint(tmp_path / name, **kwargs)
    with pytest.raises(PublishedError) as info:
        read_checkpoint_dir(folder)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_bad_checkpoints_are_refused_in_one_line(tmp_path):
    state = release_state(BRANCH_ARGS, 1)
    state["mlp.network.0.weight"] = state["mlp.network.0.weight"][:, :-1]
    message = _bad(tmp_path, "shape", state=state)
    assert "mlp.network.0.weight has shape [12, 50]" in message and "implies [12, 51]" in message
    assert "unknown key(s) ['num_dendrite']" in _bad(tmp_path, "key", args={**BRANCH_ARGS, "num_dendrite": 3})
    state = release_state(BRANCH_ARGS, 1)
    del state["w_y.bias"]
    assert "lacks 'w_y.bias'" in _bad(tmp_path, "missing-key", state=state)
    state = release_state(BRANCH_ARGS, 1)
    state["input_to_synapse_indices"] = state["input_to_synapse_indices"].flip(0)
    assert "input_to_synapse_indices differs from the neuronio routing" in _bad(tmp_path, "routing", state=state)
    assert "num_input is 1000" in _bad(tmp_path, "width", args={**BRANCH_ARGS, "num_input": 1000},
                                       state=release_state(BRANCH_ARGS, 1))
    folder = write_checkpoint(tmp_path / "no-weights")
    (folder / "neuronio_best_model_state.pt").unlink()
    with pytest.raises(PublishedError, match="neuronio_best_model_state.pt missing"):
        read_checkpoint_dir(folder)


def test_the_cli_imports_and_refuses_in_one_line(tmp_path, capsys):
    from surrogate.cli import main

    folder = write_checkpoint(tmp_path / "ckpt")
    (folder / "eval_results.json").unlink()
    argv = ["import-elmneuron", str(folder), "--out", str(tmp_path / "run")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "eval_results.json missing" in err
    assert not (tmp_path / "run").exists()
    (folder / "eval_results.json").write_text(json.dumps(EVAL))
    done = subprocess.run([sys.executable, "-m", "surrogate", *argv], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert load_run(tmp_path / "run").layout == neuronio_layout()
    assert main(argv) == 2 and "already exists and is not empty" in capsys.readouterr().err
    assert not list(tmp_path.glob(".run.tmp-*"))
