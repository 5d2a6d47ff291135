"""Temporal convolutional network (Beniaguev, Segev & London 2021, "Single cortical neurons as deep artificial
neural networks"): a stack of causal 1-D convolutions over the input channels, then 1×1-conv spike and voltage
heads. The first layer has a long kernel over all n_inputs channels; deeper layers mix features over time.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from conventions.configkeys import check_field_types

ACTIVATIONS = {"relu": nn.ReLU, "elu": nn.ELU, "silu": nn.SiLU, "tanh": nn.Tanh}

# Named configurations: "small" (~52k parameters, the dataclass defaults); "large" is Beniaguev et al.'s best
# NMDA model (7 layers × 128 channels, kernels 54 then 24 ms, ~11.2M parameters).
TCN_PRESETS: dict[str, dict] = {
    "small": {"n_layers": 4, "channels": 4, "first_kernel": 10, "kernel": 9, "dilation_base": 3},
    "large": {"n_layers": 7, "channels": 128, "first_kernel": 54, "kernel": 24, "dilation_base": 1},
}


@dataclass
class TCNConfig:
    """TCN hyper-parameters; the field names are the keys of the saved JSON. Kernels are in time steps (1 ms)."""

    n_inputs: int = 1278  # input channels: signed spike counts per 1 ms bin
    n_layers: int = 4  # causal conv layers, the first included
    channels: int = 4  # feature maps per layer
    first_kernel: int = 10  # first layer's kernel length (steps)
    kernel: int = 9  # deeper layers' kernel length (steps)
    dilation_base: int = 3  # layer i ≥ 1 uses dilation dilation_base**(i − 1) (1 = no dilation)
    activation: str = "relu"  # one of ACTIVATIONS
    batchnorm: bool = True  # BatchNorm1d between each conv and its activation

    def __post_init__(self) -> None:
        check_field_types(self)
        for name in ("n_inputs", "n_layers", "channels", "first_kernel", "kernel", "dilation_base"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"TCNConfig.{name} must be a positive int, got {value!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"TCNConfig.activation must be one of {tuple(ACTIVATIONS)}, got {self.activation!r}")
        if not isinstance(self.batchnorm, bool):
            raise ValueError(f"TCNConfig.batchnorm must be a bool, got {self.batchnorm!r}")

    @property
    def receptive_field(self) -> int:
        """Steps of input that one output step sees (the current step included)."""
        deep = sum((self.kernel - 1) * self.dilation_base**i for i in range(self.n_layers - 1))
        return self.first_kernel + deep


class CausalConv1d(nn.Conv1d):
    """Conv1d on [B, C, T] padded on the left only, so output t depends on inputs ≤ t; keeps T."""

    def __init__(self, n_in: int, n_out: int, kernel: int, dilation: int = 1):
        super().__init__(n_in, n_out, kernel, dilation=dilation)
        self.left_pad = (kernel - 1) * dilation

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(F.pad(x, (self.left_pad, 0)))


class TCN(nn.Module):
    """forward(x [B, T, n_in]) → y [B, T, 2] (spike logit, scaled soma voltage).

    Causal in eval mode; in train mode batchnorm statistics pool over the whole window.
    """

    def __init__(self, config: TCNConfig):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        for i in range(config.n_layers):
            n_in = config.n_inputs if i == 0 else config.channels
            kernel = config.first_kernel if i == 0 else config.kernel
            dilation = 1 if i == 0 else config.dilation_base ** (i - 1)
            layers.append(CausalConv1d(n_in, config.channels, kernel, dilation))
            if config.batchnorm:
                layers.append(nn.BatchNorm1d(config.channels))
            layers.append(ACTIVATIONS[config.activation]())
        self.body = nn.Sequential(*layers)
        self.spike_head = nn.Conv1d(config.channels, 1, 1)
        self.voltage_head = nn.Conv1d(config.channels, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        features = self.body(x.transpose(1, 2))
        y = torch.cat([self.spike_head(features), self.voltage_head(features)], dim=1)
        return y.transpose(1, 2)
