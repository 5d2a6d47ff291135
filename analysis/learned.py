"""Learned parameters of ELM models in the units of the equations, for plotting against the morphology."""

from __future__ import annotations

import numpy as np
import pandas as pd
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
    """float [n_inputs] effective synaptic weight per input channel: w_s = relu(ŵ_s) averaged over the valid
    synapse slots that read the channel (one slot without branches; a Branch-ELM's overlapping windows give a
    channel one to four, and a sum would show that routing multiplicity rather than what was learned). A channel
    that no valid slot reads delivers nothing: 0."""
    params = model.params()
    w = params.w_syn.detach().cpu().double()
    if params.routing is None:
        return w.numpy()
    valid = model.valid_indices_mask.cpu().double()
    routing = params.routing.cpu()
    total = torch.zeros(model.config.n_inputs, dtype=torch.float64).index_add_(0, routing, w * valid)
    slots = torch.zeros(model.config.n_inputs, dtype=torch.float64).index_add_(0, routing, valid)
    return torch.where(slots > 0, total / slots.clamp(min=1), torch.zeros_like(total)).numpy()


def weights_by_synapse(model: ELM, synapses: pd.DataFrame, channels: np.ndarray | None) -> pd.DataFrame:
    """The synapse of each model input with its learned weight, joined by identity rather than position.

    Args:
        synapses: a store's synapse table, one row per store channel in store order (``NeuronIOStore.synapses``).
        channels: int [n_inputs] the store channel feeding each model input (``analysis.evaluate.check_layout``;
            None: store order).
    Returns:
        ``synapses`` in model input order (index reset) with a column ``w_s`` (:func:`input_weights`).
    """
    table = synapses if channels is None else synapses.iloc[np.asarray(channels)]
    return table.reset_index(drop=True).assign(w_s=input_weights(model))
