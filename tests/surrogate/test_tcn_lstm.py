"""TCN and LSTM baselines: shapes, causality, parameter counts of the presets, config validation."""

from __future__ import annotations

import pytest
import torch

from surrogate.lstm import LSTMConfig, LSTMModel
from surrogate.models import num_params
from surrogate.tcn import TCN, TCN_PRESETS, TCNConfig


def _tcn_count(n_in, layers, channels, first_kernel, kernel, batchnorm=True):
    first = n_in * channels * first_kernel + channels
    deep = (layers - 1) * (channels * channels * kernel + channels)
    norm = 2 * channels * layers if batchnorm else 0
    heads = 2 * (channels + 1)
    return first + deep + norm + heads


def test_tcn_preset_parameter_counts():
    small = TCN(TCNConfig(**TCN_PRESETS["small"]))
    large = TCN(TCNConfig(**TCN_PRESETS["large"]))
    assert num_params(small) == _tcn_count(1278, 4, 4, 10, 9)
    assert 40_000 <= num_params(small) <= 60_000
    assert num_params(large) == _tcn_count(1278, 7, 128, 54, 24)
    assert num_params(large) >= 1_000_000


def test_tcn_shape_and_causality():
    torch.manual_seed(0)
    config = TCNConfig(n_inputs=10, n_layers=3, channels=5, first_kernel=6, kernel=3, dilation_base=2)
    model = TCN(config).eval()
    x = torch.randn(2, 40, 10)
    y = model(x)
    assert y.shape == (2, 40, 2)
    cut = 25
    changed = x.clone()
    changed[:, cut:] = torch.randn(2, 40 - cut, 10)
    y_changed = model(changed)
    torch.testing.assert_close(y_changed[:, :cut], y[:, :cut], rtol=0, atol=0)
    assert (y_changed[:, cut:] - y[:, cut:]).abs().max() > 1e-4


def test_tcn_receptive_field():
    """Output t depends on input t − rf + 1 but not on t − rf."""
    config = TCNConfig(n_inputs=3, n_layers=3, channels=4, first_kernel=5, kernel=3, dilation_base=2, batchnorm=False)
    assert config.receptive_field == 5 + 2 * 1 + 2 * 2
    torch.manual_seed(1)
    model = TCN(config)
    for layer in model.body:
        if isinstance(layer, torch.nn.Conv1d):
            torch.nn.init.uniform_(layer.weight, 0.1, 1.0)  # all-positive weights: no ReLU cuts the path
    steps, t = 30, 25
    x = torch.zeros(1, steps, 3, requires_grad=True)
    model(x)[0, t, 0].backward()
    touched = x.grad[0].abs().sum(1) > 0
    rf = config.receptive_field
    assert touched[t - rf + 1] and not touched[t - rf] and not touched[t + 1 :].any()


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"n_layers": 0}, "n_layers"),
        ({"channels": -3}, "channels"),
        ({"first_kernel": 0}, "first_kernel"),
        ({"activation": "softsign"}, "activation"),
        ({"batchnorm": "yes"}, "batchnorm"),
        ({"dilation_base": 1.5}, "dilation_base"),
    ],
)
def test_tcn_bad_configs(fields, message):
    with pytest.raises(ValueError, match=message):
        TCNConfig(**fields)


def test_lstm_parameter_count_and_shape():
    model = LSTMModel(LSTMConfig())
    hidden, n_in = 50, 1278
    assert num_params(model) == 4 * hidden * (n_in + hidden) + 4 * hidden + 2 * hidden + 2 == 265_902
    two_layers = LSTMModel(LSTMConfig(n_inputs=8, hidden=5, n_layers=2))
    assert num_params(two_layers) == (4 * 5 * 13 + 20) + (4 * 5 * 10 + 20) + 12
    assert two_layers(torch.randn(3, 17, 8)).shape == (3, 17, 2)


def test_lstm_causal():
    torch.manual_seed(2)
    model = LSTMModel(LSTMConfig(n_inputs=6, hidden=7))
    x = torch.randn(2, 30, 6)
    changed = x.clone()
    changed[:, 20:] += 1.0
    y, y_changed = model(x), model(changed)
    torch.testing.assert_close(y_changed[:, :20], y[:, :20], rtol=0, atol=0)
    assert (y_changed[:, 20:] - y[:, 20:]).abs().max() > 1e-4


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"hidden": 0}, "hidden"),
        ({"n_layers": 0}, "n_layers"),
        ({"dropout": 1.0}, "dropout"),
        ({"n_inputs": 2.5}, "n_inputs"),
    ],
)
def test_lstm_bad_configs(fields, message):
    with pytest.raises(ValueError, match=message):
        LSTMConfig(**fields)
