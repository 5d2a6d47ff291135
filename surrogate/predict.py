"""Batched inference over whole simulations of a store, with the store's channels mapped to the model's.

A model that records the synapse layout it was trained on (``model.layout``, see :mod:`conventions.layout`)
reads each of its input channels from the store channel of the same segment and kind, whatever the store's
order; a store that lacks some of them, or holds others, is refused. A model without a recorded layout (a run
written before layouts were recorded) reads the store's channels by position.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from biophys.dataset import NeuronIOStore, StoreError
from conventions.layout import LayoutError, channel_index
from conventions.signals import BURN_IN_MS, clip_soma, soma_from_target
from surrogate.data import LazyNeuronIO, NeuronIOArrays, NeuronIOData, signed_inputs
from surrogate.models import model_input_width


@torch.no_grad()
def predict_arrays(model: nn.Module, data: NeuronIOData, batch_size: int = 4,
                   device: str | torch.device = "cpu", channels: np.ndarray | None = None) -> np.ndarray:
    """Raw model outputs for whole simulations run from t = 0, ``batch_size`` simulations at a time (a
    :class:`LazyNeuronIO` reads the input spikes of those simulations only). ``channels`` (int [n_in]): the data
    channel feeding each model input, default all in data order.

    Returns:
        float32 [n_sims, n_time, 2]: channel 0 spike logit, channel 1 scaled soma (see ``soma_from_target``).
    """
    signs = data.signs if channels is None else data.signs[channels]
    was_training = model.training
    model.eval()
    out = np.empty((data.n_sims, data.n_time, 2), np.float32)
    try:
        for lo in range(0, data.n_sims, batch_size):
            spikes = data.input_sims(lo, lo + batch_size)
            if channels is not None:
                spikes = spikes[..., channels]
            x = torch.from_numpy(signed_inputs(spikes, signs)).to(device)
            out[lo:lo + batch_size] = model(x).float().cpu().numpy()
    finally:
        model.train(was_training)
    return out


def model_channels(model: nn.Module, data: NeuronIOData) -> np.ndarray | None:
    """The data channel of each model input by the model's recorded layout (None: data order, as it is).

    Raises:
        StoreError: one line, when the widths differ or the layouts do not hold the same channels.
    """
    layout = getattr(model, "layout", None)
    if layout is None:
        if model_input_width(model) != data.n_synapses:
            raise StoreError(f"the model expects {model_input_width(model)} input channels but the store has "
                             f"{data.n_synapses} synapses")
        return None
    try:
        index = channel_index(layout, data.layout)
    except LayoutError as exc:
        raise StoreError(str(exc)) from None
    return None if np.array_equal(index, np.arange(data.n_synapses)) else index


def predict_store(model: nn.Module, store: NeuronIOStore | NeuronIOData | str | Path, burn_in_ms: int = BURN_IN_MS,
                  batch_size: int = 4, device: str | torch.device = "cpu") -> dict:
    """Predictions of ``model`` for every whole simulation of ``store``, burn-in removed.

    The model runs each simulation from t = 0; the first ``burn_in_ms`` bins are dropped from every array. A store
    (or its path) is read lazily (:class:`LazyNeuronIO`): input spikes ``batch_size`` simulations at a time, so
    memory does not grow with the store's input. Channels are mapped by :func:`model_channels`.

    Returns a dict of arrays over bins t = burn_in_ms .. n_time − 1 (T' = n_time − burn_in_ms of them):
        ``spike_prob`` float32 [n_sims, T'] predicted spike probability per bin;
        ``spike_true`` bool [n_sims, T'] true output spike per bin;
        ``soma_pred_mv`` float32 [n_sims, T'] predicted somatic voltage in mV (unclipped, unrescaled);
        ``soma_true_mv`` float32 [n_sims, T'] true voltage clipped at −55 mV (what the model is trained on);
        ``time_ms`` float64 [T'] bin start times; ``offset_ms`` float (= burn_in_ms);
        ``spike_times_ms`` list of n_sims float64 arrays of exact true spike times (whole simulation, in ms);
        ``sim_ids`` int64 [n_sims] the store's simulation indices.

    Raises:
        StoreError: the store does not hold the model's input channels (see :func:`model_channels`).
    """
    data = store if isinstance(store, (NeuronIOArrays, LazyNeuronIO)) else LazyNeuronIO.from_store(store)
    channels = model_channels(model, data)
    if not 0 <= burn_in_ms < data.n_time:
        raise ValueError(f"burn_in_ms must lie in [0, {data.n_time}), got {burn_in_ms}")
    y = predict_arrays(model, data, batch_size, device, channels)[:, burn_in_ms:]
    keep = slice(burn_in_ms, None)
    return {
        "spike_prob": torch.sigmoid(torch.from_numpy(y[..., 0])).numpy(),
        "spike_true": data.spike_labels[:, keep].copy(),
        "soma_pred_mv": soma_from_target(y[..., 1]),
        "soma_true_mv": clip_soma(data.soma_mv[:, keep]).astype(np.float32),
        "time_ms": np.arange(burn_in_ms, data.n_time, dtype=np.float64),
        "offset_ms": float(burn_in_ms),
        "spike_times_ms": data.spike_times_ms,
        "sim_ids": data.sim_ids,
    }
