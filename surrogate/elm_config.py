"""The ELM neuron's hyper-parameters (Spieler et al., "The Expressive Leaky Memory Neuron", ICLR 2024): one
dataclass whose field names are the keys of the saved JSON, checked on construction. The equations it
parameterises are in :mod:`surrogate.elm`."""

from __future__ import annotations

from dataclasses import dataclass

from conventions.configkeys import check_field_types

ACTIVATIONS = ("relu", "silu")
ROUTINGS = ("neuronio", "random")


@dataclass
class ELMConfig:
    """ELM hyper-parameters; the field names are the keys of the saved JSON.

    Times are in ms. `n_branches = 0` is the vanilla ELM (one synapse per input); otherwise a Branch-ELM with
    `n_branches × synapses_per_branch` synapse slots, each reading the input channel chosen by `routing`.
    `mlp_hidden = None` means 2 · d_memory.
    """

    n_inputs: int = 1278  # input channels: signed spike counts per dt bin
    n_outputs: int = 2  # channel 0 spike logit, channel 1 scaled soma voltage
    d_memory: int = 20  # memory units m
    mlp_hidden: int | None = None  # hidden units per MLP layer
    mlp_layers: int = 1  # hidden (Linear → activation) layers before the output Linear
    activation: str = "relu"  # "relu" | "silu"
    lambda_value: float = 5.0  # memory update scale λ (dimensionless)
    tau_s_ms: float = 5.0  # synapse trace (v1) / branch trace (v2) time constant
    tau_m_min_ms: float = 1.0  # lower bound of the memory time constants
    tau_m_max_ms: float = 150.0  # upper bound of the memory time constants; = tau_m_min_ms: all τ_m constant
    learn_tau_m: bool = False  # train the τ_m logits p (the public release freezes them)
    version: int = 1  # 1: per-synapse traces, gain λ(1 − κ_m); 2: per-branch traces, gain 1 − κ_m^λ
    n_branches: int = 0  # d_tree; 0 = no branches
    synapses_per_branch: int = 100  # d_brch, used only when n_branches > 0
    routing: str = "neuronio"  # "neuronio" (interleaved overlapping windows) | "random"
    routing_seed: int = 0  # seed of the "random" routing draw
    dt_ms: float = 1.0  # time step

    def __post_init__(self) -> None:
        check_field_types(self)
        if self.mlp_hidden is None:
            self.mlp_hidden = 2 * self.d_memory
        for name in ("n_inputs", "n_outputs", "d_memory", "mlp_hidden", "mlp_layers"):
            _require_positive_int(self, name)
        for name in ("lambda_value", "tau_s_ms", "tau_m_min_ms", "tau_m_max_ms", "dt_ms"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"ELMConfig.{name} must be > 0, got {getattr(self, name)!r}")
        if not self.tau_m_min_ms <= self.tau_m_max_ms:
            raise ValueError(
                f"ELMConfig needs tau_m_min_ms <= tau_m_max_ms, got {self.tau_m_min_ms} and {self.tau_m_max_ms}"
            )
        if self.learn_tau_m is True and self.fixed_tau_m:
            raise ValueError(
                f"ELMConfig.learn_tau_m needs tau_m_min_ms < tau_m_max_ms: with both {self.tau_m_min_ms} ms "
                "every τ_m is fixed at that value"
            )
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"ELMConfig.activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        if self.version not in (1, 2):
            raise ValueError(f"ELMConfig.version must be 1 or 2, got {self.version!r}")
        if not isinstance(self.learn_tau_m, bool):
            raise ValueError(f"ELMConfig.learn_tau_m must be a bool, got {self.learn_tau_m!r}")
        if not isinstance(self.n_branches, int) or self.n_branches < 0:
            raise ValueError(f"ELMConfig.n_branches must be an int >= 0, got {self.n_branches!r}")
        if self.n_branches > 0:
            _require_positive_int(self, "synapses_per_branch")
            if self.routing not in ROUTINGS:
                raise ValueError(f"ELMConfig.routing must be one of {ROUTINGS}, got {self.routing!r}")
            if self.routing == "neuronio" and self.n_inputs % 2:
                raise ValueError(
                    "neuronio routing pairs excitatory and inhibitory channels and needs an even n_inputs, "
                    f"got {self.n_inputs}"
                )

    @property
    def fixed_tau_m(self) -> bool:
        """True when tau_m_min_ms == tau_m_max_ms: every τ_m is that constant (ms)."""
        return self.tau_m_min_ms == self.tau_m_max_ms

    @property
    def n_synapses(self) -> int:
        """d_s: synapse slots (n_branches · synapses_per_branch, or n_inputs without branches)."""
        return self.n_branches * self.synapses_per_branch if self.n_branches else self.n_inputs

    @property
    def n_traces(self) -> int:
        """Width of the branch signal b_t fed to the MLP (n_branches, or n_inputs without branches)."""
        return self.n_branches or self.n_inputs


def _require_positive_int(config: object, name: str) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{type(config).__name__}.{name} must be a positive int, got {value!r}")
