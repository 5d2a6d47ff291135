"""Expressive Leaky Memory (ELM) neuron, v1 and v2, with optional branches (Branch-ELM).

Spieler et al., "The Expressive Leaky Memory Neuron" (ICLR 2024). One time step (Δt = dt_ms):

    traces      s_t = κ_s s_{t-1} + w_s ⊙ x_t[routing]          (v1, one per synapse slot)
                b_t = κ_s b_{t-1} + Σ_branch (w_s ⊙ x_t[routing]) (v2, one per branch)
    branches    b_t = Σ_branch s_t                               (v1; without branches b_t = s_t)
    update      Δm_t = 1.7159 tanh(2/3 · MLP([b_t, κ_m ⊙ m_{t-1}]))
    memory      m_t = κ_m ⊙ m_{t-1} + g ⊙ Δm_t,  g = λ(1 − κ_m) (v1) or 1 − exp(−λΔt/τ_m) (v2)
    readout     y_t = W_y m_t + b_y

with κ = exp(−Δt/τ), w_s = relu(ŵ_s), τ_m = τ_min + (τ_max − τ_min) sigmoid(p). States start at zero.
τ_min = τ_max is allowed and means every τ_m is that constant (the paper's fixed-τ ablation; then τ_m cannot be
learned).

`elm_step` is the plain reference for one step and `elm_forward_reference` its loop over time; the `ELM`
module runs the equivalent fast path of `surrogate.elm_fused` by default.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from conventions.layout import SynapseLayout
from surrogate.elm_config import ELMConfig
from surrogate.elm_fused import DELTA_M_AMPLITUDE, DELTA_M_SLOPE, exp_filter, input_projection, memory_recurrence
from surrogate.routing import layout_interleaving, neuronio_routing, random_routing

# logit clamp for initialising τ_m at the ends of [τ_min, τ_max]; sigmoid never reaches 0 or 1
_TAU_M_LOGIT_EPS = 1e-8


def make_routing(config: ELMConfig, layout: SynapseLayout | None = None) -> tuple[Tensor, Tensor]:
    """The (indices, valid) routing of a Branch-ELM config (see :mod:`surrogate.routing`).

    "neuronio" pairs each excitatory channel with the inhibitory channel of the same segment: by the ``layout``
    of the input channels when given, else by position (excitatory channel i with n/2 + i).
    """
    if config.n_branches == 0:
        raise ValueError("an ELM without branches has no routing")
    if config.routing == "neuronio":
        interleaved = None if layout is None else layout_interleaving(layout)
        return neuronio_routing(config.n_inputs, config.n_branches, config.synapses_per_branch, interleaved)
    return random_routing(config.n_inputs, config.n_branches, config.synapses_per_branch, config.routing_seed)


# ------------------------------------------------------------------------------------ step function


class ELMParams(NamedTuple):
    """Effective parameters of one ELM in the units of the equations (differentiable tensors).

    w_syn       [d_s]            synaptic weights relu(ŵ_s), zero on masked slots
    routing     [d_s] or None    input channel read by each synapse slot (None: slot i reads input i)
    tau_m_ms    [d_m]            memory time constants
    mlp_weights ([h, d_b + d_m], [h, h]…, [d_m, h])  Linear weights; first layer columns: branches, then memory
    mlp_biases  ([h]…, [d_m])
    w_y         [d_out, d_m]     readout weight
    b_y         [d_out]          readout bias
    """

    w_syn: Tensor
    routing: Tensor | None
    tau_m_ms: Tensor
    mlp_weights: tuple[Tensor, ...]
    mlp_biases: tuple[Tensor, ...]
    w_y: Tensor
    b_y: Tensor


class ELMState(NamedTuple):
    """trace [B, d_s] (v1) or [B, d_b] (v2); memory [B, d_m]."""

    trace: Tensor
    memory: Tensor


def initial_state(batch: int, config: ELMConfig, like: Tensor) -> ELMState:
    """Zero state with the dtype and device of `like`."""
    width = config.n_synapses if config.version == 1 else config.n_traces
    return ELMState(like.new_zeros(batch, width), like.new_zeros(batch, config.d_memory))


def memory_coefficients(tau_m_ms: Tensor, config: ELMConfig) -> tuple[Tensor, Tensor]:
    """(κ_m, g) [d_m]: memory decay per step and the gain on Δm (v1: λ(1 − κ_m), v2: 1 − exp(−λΔt/τ_m))."""
    kappa_m = torch.exp(-config.dt_ms / tau_m_ms)
    if config.version == 1:
        return kappa_m, config.lambda_value * (1.0 - kappa_m)
    return kappa_m, -torch.expm1(-config.lambda_value * config.dt_ms / tau_m_ms)


def activation_fn(name: str):
    return F.relu if name == "relu" else F.silu


def branch_sum(per_synapse: Tensor, config: ELMConfig) -> Tensor:
    """[..., d_s] → [..., d_b]: sum over each branch's slots (identity without branches)."""
    if config.n_branches == 0:
        return per_synapse
    return per_synapse.unflatten(-1, (config.n_branches, config.synapses_per_branch)).sum(-1)


def elm_step(x_t: Tensor, state: ELMState, params: ELMParams, config: ELMConfig) -> tuple[Tensor, ELMState]:
    """One ELM step, exactly the equations of the module docstring.

    x_t [B, n_in] signed spike counts in this bin → (y_t [B, d_out], new state).
    """
    kappa_s = math.exp(-config.dt_ms / config.tau_s_ms)
    kappa_m, gain = memory_coefficients(params.tau_m_ms, config)
    x_syn = x_t if params.routing is None else x_t[:, params.routing]
    drive = params.w_syn * x_syn
    if config.version == 1:
        trace = kappa_s * state.trace + drive
        branches = branch_sum(trace, config)
    else:
        trace = kappa_s * state.trace + branch_sum(drive, config)
        branches = trace
    decayed = kappa_m * state.memory
    hidden = torch.cat([branches, decayed], dim=-1)
    act = activation_fn(config.activation)
    for weight, bias in zip(params.mlp_weights[:-1], params.mlp_biases[:-1]):
        hidden = act(F.linear(hidden, weight, bias))
    z = F.linear(hidden, params.mlp_weights[-1], params.mlp_biases[-1])
    delta_m = DELTA_M_AMPLITUDE * torch.tanh(DELTA_M_SLOPE * z)
    memory = decayed + gain * delta_m
    return F.linear(memory, params.w_y, params.b_y), ELMState(trace, memory)


def elm_forward_reference(x: Tensor, params: ELMParams, config: ELMConfig) -> Tensor:
    """Plain step loop: x [B, T, n_in] → y [B, T, d_out]."""
    state = initial_state(x.shape[0], config, x)
    outputs = []
    for t in range(x.shape[1]):
        y_t, state = elm_step(x[:, t], state, params, config)
        outputs.append(y_t)
    return torch.stack(outputs, dim=1)


def elm_forward_fast(x: Tensor, params: ELMParams, config: ELMConfig) -> Tensor:
    """Same result as `elm_forward_reference`, with the input path vectorised over time.

    Everything before the MLP's first layer is linear and independent of m, and all traces share τ_s, so
    W_0,b · trace(w_s ⊙ x[routing]) = trace(x @ W_in) with W_in [n_in, h] folding routing, w_s, branch sums and
    the first layer's branch columns together (this also makes v1 and v2 traces identical). The exponential
    trace filter runs on h channels for all T at once; only the memory recurrence is sequential.
    """
    n_in, d_b = config.n_inputs, config.n_traces
    first_w = params.mlp_weights[0]
    w_branch, w_memory = first_w[:, :d_b], first_w[:, d_b:]
    if params.routing is None:
        w_in = params.w_syn[:, None] * w_branch.t()
    else:
        slot_branch = torch.arange(config.n_synapses, device=x.device) // config.synapses_per_branch
        routing_matrix = x.new_zeros(n_in, d_b).index_put(
            (params.routing, slot_branch), params.w_syn, accumulate=True
        )
        w_in = routing_matrix @ w_branch.t()
    kappa_s = math.exp(-config.dt_ms / config.tau_s_ms)
    drive = exp_filter(input_projection(x, w_in), kappa_s) + params.mlp_biases[0]
    kappa_m, gain = memory_coefficients(params.tau_m_ms, config)
    memory = memory_recurrence(
        drive,
        kappa_m,
        gain,
        w_memory,
        params.mlp_weights[1:-1],
        params.mlp_biases[1:-1],
        params.mlp_weights[-1],
        params.mlp_biases[-1],
        config.activation,
    )
    return F.linear(memory, params.w_y, params.b_y)


# --------------------------------------------------------------------------------------------- module


def initial_tau_m_logits(config: ELMConfig) -> Tensor:
    """p [d_m] such that τ_m = τ_min + (τ_max − τ_min) sigmoid(p) is log-spaced from τ_min to τ_max.

    With τ_min = τ_max the logits do not change τ_m; they are 0 (sigmoid 1/2), a finite value like any other.
    """
    if config.fixed_tau_m:
        return torch.zeros(config.d_memory, dtype=torch.float32)
    tau = np.geomspace(config.tau_m_min_ms, config.tau_m_max_ms, config.d_memory)
    fraction = (tau - config.tau_m_min_ms) / (config.tau_m_max_ms - config.tau_m_min_ms)
    fraction = np.clip(fraction, _TAU_M_LOGIT_EPS, 1.0 - _TAU_M_LOGIT_EPS)
    return torch.tensor(np.log(fraction) - np.log1p(-fraction), dtype=torch.float32)


class MLP(nn.Module):
    """mlp_layers × (Linear → activation), then Linear(h → d_m); `network` indices match the public release."""

    def __init__(self, n_in: int, hidden: int, n_out: int, layers: int, activation: str):
        super().__init__()
        act = nn.ReLU if activation == "relu" else nn.SiLU
        modules: list[nn.Module] = []
        for i in range(layers):
            modules += [nn.Linear(n_in if i == 0 else hidden, hidden), act()]
        modules.append(nn.Linear(hidden, n_out))
        self.network = nn.Sequential(*modules)

    def linears(self) -> list[nn.Linear]:
        return [m for m in self.network if isinstance(m, nn.Linear)]

    def forward(self, x: Tensor) -> Tensor:
        return self.network(x)


class ELM(nn.Module):
    """ELM / Branch-ELM: forward(x [B, T, n_in]) → y [B, T, n_outputs].

    Parameters: `_proto_w_s` [d_s] (ŵ_s, init 0.5), `_proto_tau_m` [d_m] (p; trainable only with learn_tau_m),
    `mlp.network.{0,2,…}` Linear layers, `w_y` readout. Buffers (Branch-ELM): `input_to_synapse_indices`
    [d_s], `valid_indices_mask` [d_s]. `fast=False` makes forward run the plain step loop. `layout`: the
    synapse layout of the input channels (``.layout``), which the "neuronio" routing pairs channels by.
    """

    def __init__(self, config: ELMConfig, fast: bool = True, layout: SynapseLayout | None = None):
        super().__init__()
        self.config = config
        self.fast = fast
        self.layout = layout
        self._proto_w_s = nn.Parameter(torch.full((config.n_synapses,), 0.5))
        self._proto_tau_m = nn.Parameter(initial_tau_m_logits(config), requires_grad=config.learn_tau_m)
        if config.n_branches:
            indices, valid = make_routing(config, layout)
            self.register_buffer("input_to_synapse_indices", indices)
            self.register_buffer("valid_indices_mask", valid)
        self.mlp = MLP(
            config.n_traces + config.d_memory,
            config.mlp_hidden,
            config.d_memory,
            config.mlp_layers,
            config.activation,
        )
        self.w_y = nn.Linear(config.d_memory, config.n_outputs)

    def tau_m_ms(self) -> Tensor:
        """τ_m [d_m] in ms."""
        c = self.config
        return c.tau_m_min_ms + (c.tau_m_max_ms - c.tau_m_min_ms) * torch.sigmoid(self._proto_tau_m)

    def params(self) -> ELMParams:
        w_syn = F.relu(self._proto_w_s)
        routing = None
        if self.config.n_branches:
            w_syn = w_syn * self.valid_indices_mask
            routing = self.input_to_synapse_indices
        linears = self.mlp.linears()
        return ELMParams(
            w_syn=w_syn,
            routing=routing,
            tau_m_ms=self.tau_m_ms(),
            mlp_weights=tuple(m.weight for m in linears),
            mlp_biases=tuple(m.bias for m in linears),
            w_y=self.w_y.weight,
            b_y=self.w_y.bias,
        )

    def forward(self, x: Tensor) -> Tensor:
        if self.fast:
            return elm_forward_fast(x, self.params(), self.config)
        return self.forward_reference(x)

    def forward_reference(self, x: Tensor) -> Tensor:
        return elm_forward_reference(x, self.params(), self.config)
