"""The model registry: every kind builds, maps [B, T, n_in] → [B, T, 2], round-trips through JSON."""

from __future__ import annotations

import json

import pytest
import torch

from surrogate.models import MODEL_KINDS, build_model, config_to_dict, model_from_dict, model_input_width, num_params


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_every_kind_builds_and_round_trips(kind):
    torch.manual_seed(0)
    model = build_model(kind, n_inputs=20) if kind != "branch-elm" else build_model(kind)
    width = model_input_width(model)
    y = model.eval()(torch.randn(2, 15, width))
    assert y.shape == (2, 15, 2)
    saved = json.loads(json.dumps(config_to_dict(model)))
    rebuilt = model_from_dict(saved)
    assert type(rebuilt) is type(model) and rebuilt.config == model.config
    rebuilt.load_state_dict(model.state_dict())
    torch.testing.assert_close(rebuilt.eval()(torch.ones(1, 5, width)), model(torch.ones(1, 5, width)))


def test_defaults():
    assert num_params(build_model("branch-elm")) == 8002
    assert num_params(build_model("elm")) == 54100
    assert num_params(build_model("lstm")) == 265_902
    assert num_params(build_model("tcn", {"preset": "large"})) >= 1_000_000
    assert build_model("tcn", {"preset": "small", "channels": 2}).config.channels == 2


def test_config_overrides_and_width():
    model = build_model("elm", {"d_memory": 7, "version": 2}, n_inputs=10)
    assert (model.config.d_memory, model.config.version, model_input_width(model)) == (7, 2, 10)
    assert model_input_width(build_model("lstm", {"n_inputs": 5})) == 5


@pytest.mark.parametrize(
    "kind, config, message",
    [
        ("gru", None, "gru"),
        ("elm", {"d_mem": 3}, "d_mem"),
        ("tcn", {"preset": "huge"}, "huge"),
        ("lstm", {"hidden": 0}, "hidden"),
    ],
)
def test_errors_name_the_problem(kind, config, message):
    with pytest.raises(ValueError, match=message):
        build_model(kind, config)


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_forward_and_backward_stay_on_the_model_device(kind):
    """Every model, the fast ELM path included, runs forward and backward on a device that is not the CPU.

    No GPU here: the "meta" device (shapes only) stands in, so any tensor created on the CPU inside forward or
    backward (what would break CUDA runs) raises a device mismatch.
    """
    model = build_model(kind).to("meta")
    x = torch.zeros(2, 30, model_input_width(model), device="meta")
    y = model(x)
    y.sum().backward()
    assert y.device.type == "meta" and y.shape == (2, 30, 2)
    assert all(p.grad is not None and p.grad.device.type == "meta" for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("kind, config, message", [
    ("elm", {"d_memory": "3"}, r"ELMConfig.d_memory must be a whole number, not str '3'"),
    ("tcn", {"batchnorm": "no"}, r"TCNConfig.batchnorm must be true or false, not str 'no'"),
    ("lstm", {"dropout": "0.1"}, r"LSTMConfig.dropout must be a number, not str '0.1'"),
])
def test_model_config_types_are_checked_by_key(kind, config, message):
    with pytest.raises(ValueError, match=message):
        build_model(kind, config, n_inputs=8)
