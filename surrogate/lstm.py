"""LSTM baseline: stacked LSTM over the signed input spike counts, then a linear readout per time step."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from conventions.configkeys import check_field_types


@dataclass
class LSTMConfig:
    """LSTM hyper-parameters; the field names are the keys of the saved JSON."""

    n_inputs: int = 1278  # input channels: signed spike counts per 1 ms bin
    n_outputs: int = 2  # channel 0 spike logit, channel 1 scaled soma voltage
    hidden: int = 50  # LSTM units per layer
    n_layers: int = 1  # stacked LSTM layers
    dropout: float = 0.0  # dropout between stacked layers (fraction)

    def __post_init__(self) -> None:
        check_field_types(self)
        for name in ("n_inputs", "n_outputs", "hidden", "n_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"LSTMConfig.{name} must be a positive int, got {value!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"LSTMConfig.dropout must be in [0, 1), got {self.dropout!r}")


class LSTMModel(nn.Module):
    """forward(x [B, T, n_in]) → y [B, T, n_outputs].

    PyTorch's LSTM carries two bias vectors per layer whose sum is all that matters; the hidden-to-hidden one
    is frozen at zero so the trainable count equals a single-bias LSTM (265,902 for hidden 50 on 1278 inputs).
    """

    def __init__(self, config: LSTMConfig):
        super().__init__()
        self.config = config
        self.lstm = nn.LSTM(
            config.n_inputs,
            config.hidden,
            num_layers=config.n_layers,
            batch_first=True,
            dropout=config.dropout if config.n_layers > 1 else 0.0,
        )
        for layer in range(config.n_layers):
            redundant_bias = getattr(self.lstm, f"bias_hh_l{layer}")
            nn.init.zeros_(redundant_bias)
            redundant_bias.requires_grad_(False)
        self.readout = nn.Linear(config.hidden, config.n_outputs)

    def forward(self, x: Tensor) -> Tensor:
        hidden, _ = self.lstm(x)
        return self.readout(hidden)
