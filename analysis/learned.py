"""Learned parameters of ELM models in the units of the equations, for plotting against the morphology."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from surrogate.elm import ELM, initial_tau_m_logits


def is_elm(model: nn.Module) -> bool:
    return isinstance(model, ELM)


@torch.no_grad()
def tau_m_ms(model: ELM) -> np.ndarray:
    """float [d_m] the memory time constants τ_m in ms the model runs with."""
    return model.tau_m_ms().cpu().numpy().astype(np.float64)


def initial_tau_m_ms(model: ELM) -> np.ndarray:
    """float [d_m] the log-spaced τ_m in ms the model started from."""
    c = model.config
    return c.tau_m_min_ms + (c.tau_m_max_ms - c.tau_m_min_ms) * torch.sigmoid(initial_tau_m_logits(c)).numpy()


@torch.no_grad()
def input_weights(model: ELM) -> np.ndarray:
    """float [n_inputs] learned synaptic weight per input channel: w_s = relu(ŵ_s) summed over the synapse slots
    that read the channel (one slot without branches; overlapping windows give a Branch-ELM channel several, and
    masked slots contribute 0)."""
    params = model.params()
    w = params.w_syn.detach().cpu().double()
    if params.routing is None:
        return w.numpy()
    per_input = torch.zeros(model.config.n_inputs, dtype=torch.float64)
    per_input.index_add_(0, params.routing.cpu(), w)
    return per_input.numpy()
