"""ELM / Branch-ELM: a hand-set 3-step example against NumPy, the public release's conformance cases,
parameter counts, routing and the v1/v2 trace equivalence."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from surrogate.elm import ELM, branch_sum, elm_step, initial_state, make_routing
from surrogate.elm_config import ELMConfig
from surrogate.models import num_params
from surrogate.published import load_conformance_npz
from surrogate.routing import neuronio_routing


def _numpy_elm(x, w_s, tau_s, tau_m, mlp, w_y, b_y, lam, version):
    """Float64 ELM without branches, one ReLU hidden layer, written from the spec's equations.

    x [T, d_in]; mlp = (W0 [h, d_in + d_m], b0, W1 [d_m, h], b1). Returns y [T, d_out].
    """
    w0, b0, w1, b1 = mlp
    kappa_s, kappa_m = np.exp(-1.0 / tau_s), np.exp(-1.0 / tau_m)
    gain = lam * (1 - kappa_m) if version == 1 else 1 - np.exp(-lam / tau_m)
    s = np.zeros(x.shape[1])
    m = np.zeros(len(tau_m))
    ys = []
    for x_t in x:
        s = kappa_s * s + np.maximum(w_s, 0) * x_t
        hidden = np.maximum(w0 @ np.concatenate([s, kappa_m * m]) + b0, 0)
        delta = 1.7159 * np.tanh(2.0 / 3.0 * (w1 @ hidden + b1))
        m = kappa_m * m + gain * delta
        ys.append(w_y @ m + b_y)
    return np.array(ys)


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("fast", [False, True])
def test_hand_set_three_steps(version, fast):
    tau_m = np.array([2.0, 20.0])
    w_s = np.array([0.8, 0.5])
    w0 = np.array([[0.5, -0.4, 0.3, 0.2], [-0.6, 0.7, 0.1, -0.5], [0.2, 0.3, -0.8, 0.9]])
    b0 = np.array([0.1, 0.05, -0.2])
    w1 = np.array([[0.9, -0.3, 0.4], [-0.2, 0.6, 0.7]])
    b1 = np.array([0.05, -0.1])
    w_y = np.array([[1.0, -0.5], [0.3, 0.8]])
    b_y = np.array([-0.2, 0.1])
    x = np.array([[1.0, 0.0], [0.0, -1.0], [2.0, 1.0]])
    expected = _numpy_elm(x, w_s, 5.0, tau_m, (w0, b0, w1, b1), w_y, b_y, 5.0, version)

    model = ELM(ELMConfig(n_inputs=2, d_memory=2, mlp_hidden=3, version=version), fast=fast).double()
    fraction = (tau_m - 1.0) / 149.0
    with torch.no_grad():
        model._proto_w_s.copy_(torch.tensor(w_s))
        model._proto_tau_m.copy_(torch.tensor(np.log(fraction / (1 - fraction))))
        for layer, (w, b) in zip(model.mlp.linears(), [(w0, b0), (w1, b1)]):
            layer.weight.copy_(torch.tensor(w))
            layer.bias.copy_(torch.tensor(b))
        model.w_y.weight.copy_(torch.tensor(w_y))
        model.w_y.bias.copy_(torch.tensor(b_y))
        y = model(torch.tensor(x)[None])[0].numpy()
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    assert np.abs(expected).min() > 1e-3  # the example is not degenerate


CASES = ["v1_branch_neuronio", "v2_branch_neuronio", "v1_vanilla_dm5_silu_2layer"]


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("fast", [False, True])
def test_conformance(shared_data, name, fast):
    folder = shared_data / "elm_conformance"
    case = json.loads((folder / "cases.json").read_text())[name]
    model = load_conformance_npz(folder / f"{name}.npz", case["config"])
    model.fast = fast
    arrays = np.load(folder / f"{name}.npz")
    with torch.no_grad():
        y = model(torch.from_numpy(arrays["x"])).numpy()
    assert y.shape == tuple(case["y_shape"])
    assert np.abs(y - arrays["y"]).max() < 1e-4
    assert num_params(model) == case["trainable_params"]


def test_conformance_loader_rejects_wrong_routing(shared_data, tmp_path):
    folder = shared_data / "elm_conformance"
    arrays = dict(np.load(folder / "v1_branch_neuronio.npz"))
    arrays["input_to_synapse_indices"] = arrays["input_to_synapse_indices"][::-1].copy()
    np.savez(tmp_path / "bad.npz", **arrays)
    case = json.loads((folder / "cases.json").read_text())["v1_branch_neuronio"]
    with pytest.raises(ValueError, match="input_to_synapse_indices"):
        load_conformance_npz(tmp_path / "bad.npz", case["config"])


def _count_formula(d_s, d_b, d_m, h, d_out=2):
    return d_s + (d_b + d_m) * h + h + h * d_m + d_m + d_m * d_out + d_out


@pytest.mark.parametrize(
    "fields, expected",
    [
        ({"n_branches": 45, "synapses_per_branch": 100}, 8002),
        ({}, 54100),
        ({"n_branches": 45, "synapses_per_branch": 100, "version": 2}, 8002),
        ({"n_branches": 45, "synapses_per_branch": 100, "learn_tau_m": True}, 8022),
        ({"learn_tau_m": True}, 54120),
        ({"n_branches": 45, "synapses_per_branch": 100, "d_memory": 10}, _count_formula(4500, 45, 10, 20)),
        ({"d_memory": 15, "n_branches": 30, "synapses_per_branch": 50}, _count_formula(1500, 30, 15, 30)),
    ],
)
def test_parameter_counts(fields, expected):
    assert num_params(ELM(ELMConfig(**fields))) == expected


def test_neuronio_routing_layout():
    indices, valid = neuronio_routing(1278, 45, 100)
    assert indices.shape == valid.shape == (4500,)
    assert int(valid.sum()) == 4282
    assert indices[:6].tolist() == [0, 639, 1, 640, 2, 641]
    stride = math.ceil(1278 / 45)
    assert stride == 29
    assert indices[100:102].tolist() == [639 + 14, 15]  # branch 1 starts at interleaved position 29
    assert torch.equal(indices[~valid], torch.full((4500 - 4282,), 1277))
    assert torch.equal(torch.sort(indices[valid]).values.unique(), torch.arange(1278))
    last_branch_valid = valid.view(45, 100)[-1]
    assert int(last_branch_valid.sum()) == 1278 - 44 * 29


def test_random_routing_is_seeded():
    config = dict(n_inputs=100, n_branches=4, synapses_per_branch=10, routing="random")
    a, valid = make_routing(ELMConfig(**config, routing_seed=3))
    b, _ = make_routing(ELMConfig(**config, routing_seed=3))
    c, _ = make_routing(ELMConfig(**config, routing_seed=4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert bool(valid.all()) and int(a.min()) >= 0 and int(a.max()) < 100


def test_v1_and_v2_traces_agree():
    """v2's per-branch trace equals the branch sums of v1's per-synapse traces (all τ_s equal)."""
    torch.manual_seed(0)
    fields = dict(n_inputs=20, d_memory=3, n_branches=4, synapses_per_branch=7)
    model = ELM(ELMConfig(**fields)).double()
    with torch.no_grad():
        model._proto_w_s.uniform_(-0.2, 1.0)
    params = model.params()
    configs = {v: ELMConfig(**fields, version=v) for v in (1, 2)}
    x = torch.randint(-2, 3, (3, 30, 20)).double()
    states = {v: initial_state(3, configs[v], x) for v in (1, 2)}
    for t in range(x.shape[1]):
        for v in (1, 2):
            _, states[v] = elm_step(x[:, t], states[v], params, configs[v])
        assert states[1].trace.shape == (3, 28) and states[2].trace.shape == (3, 4)
        torch.testing.assert_close(branch_sum(states[1].trace, configs[1]), states[2].trace, rtol=0, atol=1e-12)
    assert states[2].trace.abs().max() > 0.1


def test_tau_m_initialised_log_spaced():
    tau = ELM(ELMConfig()).tau_m_ms().detach().numpy()
    np.testing.assert_allclose(tau, np.geomspace(1.0, 150.0, 20), rtol=1e-5)
    np.testing.assert_allclose(tau[:4], [1.0, 1.3018, 1.6946, 2.2059], atol=1e-4)


def test_learnable_tau_m_gets_gradient():
    model = ELM(ELMConfig(n_inputs=4, d_memory=3, learn_tau_m=True))
    with torch.no_grad():
        model.w_y.weight.normal_()
    model(torch.ones(2, 20, 4)).sum().backward()
    assert model._proto_tau_m.grad is not None and model._proto_tau_m.grad.abs().sum() > 0
    frozen = ELM(ELMConfig(n_inputs=4, d_memory=3))
    frozen(torch.ones(2, 20, 4)).sum().backward()
    assert frozen._proto_tau_m.grad is None


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"d_memory": 0}, "d_memory"),
        ({"tau_m_min_ms": 10.0, "tau_m_max_ms": 5.0}, "tau_m_min_ms <= tau_m_max_ms"),
        ({"tau_m_min_ms": 25.0, "tau_m_max_ms": 25.0, "learn_tau_m": True}, "every τ_m is fixed"),
        ({"tau_s_ms": -1.0}, "tau_s_ms"),
        ({"activation": "gelu"}, "activation"),
        ({"version": 3}, "version"),
        ({"n_branches": 3, "synapses_per_branch": 0}, "synapses_per_branch"),
        ({"n_branches": 3, "routing": "nearest"}, "routing"),
        ({"n_inputs": 7, "n_branches": 3}, "even n_inputs"),
        ({"lambda_value": 0.0}, "lambda_value"),
    ],
)
def test_bad_configs_raise(fields, message):
    with pytest.raises(ValueError, match=message):
        ELMConfig(**fields)


def test_default_hidden_is_twice_memory():
    assert ELMConfig(d_memory=7).mlp_hidden == 14
    assert ELMConfig(d_memory=7, mlp_hidden=5).mlp_hidden == 5


@pytest.mark.parametrize("fast", [False, True])
def test_fixed_tau_m_is_constant_and_matches_numpy(fast):
    """τ_min = τ_max: every τ_m is that value, whatever the logits, and the output follows the equations."""
    config = ELMConfig(n_inputs=2, d_memory=3, tau_m_min_ms=25.0, tau_m_max_ms=25.0)
    assert config.fixed_tau_m and not ELMConfig().fixed_tau_m
    torch.manual_seed(1)
    model = ELM(config, fast=fast).double()
    np.testing.assert_array_equal(model.tau_m_ms().detach().numpy(), np.full(3, 25.0))
    with torch.no_grad():
        model._proto_tau_m.normal_()  # the logits no longer matter
        model.w_y.weight.normal_()
    np.testing.assert_array_equal(model.tau_m_ms().detach().numpy(), np.full(3, 25.0))
    linears = model.mlp.linears()
    mlp = tuple(t.detach().numpy() for layer in linears for t in (layer.weight, layer.bias))
    x = np.random.default_rng(0).integers(-1, 2, (40, 2)).astype(float)
    expected = _numpy_elm(x, model._proto_w_s.detach().numpy(), 5.0, np.full(3, 25.0), mlp,
                          model.w_y.weight.detach().numpy(), model.w_y.bias.detach().numpy(), 5.0, 1)
    with torch.no_grad():
        y = model(torch.tensor(x)[None])[0].numpy()
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-12)
    # τ_max = τ_min = 1 ms (the timescale sweep's shortest memory) is the same rule at 1 ms.
    np.testing.assert_array_equal(ELM(ELMConfig(tau_m_max_ms=1.0)).tau_m_ms().detach().numpy(), np.ones(20))


def test_fixed_tau_m_round_trips_through_config_json_and_model_file(tmp_path):
    from surrogate import run as rundir
    from surrogate.models import build_model, config_to_dict, model_from_dict

    model = build_model("branch-elm", {"n_branches": 4, "synapses_per_branch": 8, "d_memory": 5,
                                       "tau_m_min_ms": 25.0, "tau_m_max_ms": 25.0}, n_inputs=16)
    saved = json.loads(json.dumps(config_to_dict(model)))
    assert saved["config"]["tau_m_min_ms"] == saved["config"]["tau_m_max_ms"] == 25.0
    assert model_from_dict(saved).config == model.config
    path = tmp_path / "model.pt"
    rundir.save_torch(path, rundir.model_file(saved["kind"], saved["config"], model.state_dict(), None))
    loaded = rundir.load_model(path)
    assert loaded.config.fixed_tau_m and loaded.config == model.config
    np.testing.assert_array_equal(loaded.tau_m_ms().detach().numpy(), np.full(5, 25.0))
    x = torch.randint(-1, 2, (2, 30, 16)).float()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model.eval()(x), rtol=0, atol=0)
