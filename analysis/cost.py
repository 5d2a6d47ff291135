"""What a surrogate costs: multiply-adds per simulated millisecond and inference speed (parameters:
:func:`surrogate.models.num_params`).

ELM models are costed from their config (the per-step arithmetic of the ELM equations); other models are costed
by forward hooks on their layers during a short probe run, which holds for models that apply each layer once per
1 ms step (TCN with stride-1 causal convolutions, LSTM with a per-step readout).
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch
from torch import nn

from conventions.signals import DT_MS
from surrogate.data import NeuronIOData
from surrogate.elm import ELM
from surrogate.elm_config import ELMConfig
from surrogate.models import model_input_width
from surrogate.predict import model_channels, predict_arrays

PROBE_STEPS = 32  # ms of input in the hook probe; layer costs per step do not depend on it
#: Inference speed is measured as users run a surrogate: over at least this many whole simulations (a store's
#: own, repeated when it holds fewer), SPEED_BATCH simulations per forward pass.
SPEED_SIMS = 64
SPEED_BATCH = 16


def elm_macs_per_step(config: ELMConfig) -> int:
    """Multiply-adds of one ELM step as the equations state it (not the folded fast path's cost).

    Per step: synapse weighting w_s ⊙ x (d_s) and trace decay (d_s in v1, d_tree in v2); memory decay κ_m ⊙ m
    (d_m); the MLP ((d_b + d_m)·h + (L − 1)·h² + h·d_m); the gated update g ⊙ Δm (d_m); the readout (d_m·d_out).
    Branch sums are additions without multiplies and not counted; nor are activations.
    """
    c = config
    traces = c.n_synapses if c.version == 1 else c.n_traces
    h = c.mlp_hidden
    mlp = (c.n_traces + c.d_memory) * h + (c.mlp_layers - 1) * h * h + h * c.d_memory
    return c.n_synapses + traces + 2 * c.d_memory + mlp + c.d_memory * c.n_outputs


def hooked_macs_per_step(model: nn.Module, n_inputs: int, steps: int = PROBE_STEPS) -> int:
    """Multiply-adds per time step counted with forward hooks on Linear, Conv1d, LSTM and GRU layers.

    The probe input is zeros [1, steps, n_inputs]; each layer's multiply-adds follow from its output size
    (Linear: out elements × in_features; Conv1d: out elements × in_channels / groups × kernel; LSTM/GRU: gates ×
    hidden × (input + hidden) per step, layer and direction), summed and divided by ``steps``.
    """
    total = 0

    def count(module: nn.Module, inputs, output) -> None:
        nonlocal total
        if isinstance(module, nn.Linear):
            total += output.numel() * module.in_features
        elif isinstance(module, nn.Conv1d):
            total += output.numel() * module.in_channels // module.groups * module.kernel_size[0]
        elif isinstance(module, (nn.LSTM, nn.GRU)):
            gates = 4 if isinstance(module, nn.LSTM) else 3
            directions = 2 if module.bidirectional else 1
            per_step = 0
            for layer in range(module.num_layers):
                width_in = module.input_size if layer == 0 else module.hidden_size * directions
                per_step += gates * module.hidden_size * (width_in + module.hidden_size) * directions
            total += per_step * steps

    layers = (nn.Linear, nn.Conv1d, nn.LSTM, nn.GRU)
    handles = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, layers)]
    try:
        with torch.no_grad():
            model(torch.zeros(1, steps, n_inputs))
    finally:
        for handle in handles:
            handle.remove()
    return round(total / steps)


def macs_per_ms(model: nn.Module, n_inputs: int, dt_ms: float = DT_MS) -> tuple[int, str]:
    """(multiply-adds per simulated ms, method) with method "elm-config" or "forward-hooks"."""
    if isinstance(model, ELM):
        return round(elm_macs_per_step(model.config) / dt_ms), "elm-config"
    return round(hooked_macs_per_step(model, n_inputs) / dt_ms), "forward-hooks"


def neuron_wall_seconds(provenance: dict) -> tuple[float | None, str | None]:
    """NEURON's wall-clock seconds for simulating a whole store, from the store's provenance.

    Reads ``provenance["timing"]["neuron_wall_s"]`` (seconds summed over all simulations of the store, as if on
    one core). Returns (seconds, None), or (None, reason) when the record is absent or not a positive number.
    """
    timing = provenance.get("timing")
    value = timing.get("neuron_wall_s") if isinstance(timing, dict) else None
    if value is None:
        return None, "the store's provenance records no NEURON wall time (provenance.timing.neuron_wall_s)"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        return None, f"provenance.timing.neuron_wall_s is not a positive number: {value!r}"
    return float(value), None


def simulation_cpu_s(provenance: dict) -> float | None:
    """CPU-seconds it took to make a store: the seconds of its ``provenance["timing"]`` summed (NEURON's wall time
    and the input draws, each summed over all simulations as if on one core); None when none are recorded."""
    timing = provenance.get("timing")
    if not isinstance(timing, dict) or not timing:
        return None
    values = [v for v in timing.values() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return float(sum(values)) if values else None


def inference_speed(model_simulated_ms: float, model_wall_s: float, store_simulated_ms: float,
                    neuron_wall_s: float | None, neuron_reason: str | None = None) -> dict:
    """Speed of a surrogate in simulated seconds per wall-clock second, and its ratio to NEURON.

    Args:
        model_simulated_ms: milliseconds of activity the surrogate predicted; model_wall_s: seconds it took.
        store_simulated_ms: milliseconds NEURON simulated to make the store; neuron_wall_s: seconds it took
            (None when unknown, with ``neuron_reason``).
    Returns:
        dict: simulated_s_per_wall_s, neuron_simulated_s_per_wall_s, speedup_vs_neuron (None with
        speedup_reason when NEURON's time is unknown).
    """
    model_rate = (model_simulated_ms / 1000.0) / max(model_wall_s, 1e-12)
    out = {"simulated_s_per_wall_s": model_rate, "wall_s": model_wall_s,
           "neuron_simulated_s_per_wall_s": None, "speedup_vs_neuron": None, "speedup_reason": neuron_reason}
    if neuron_wall_s is not None:
        neuron_rate = (store_simulated_ms / 1000.0) / neuron_wall_s
        out.update(neuron_simulated_s_per_wall_s=neuron_rate, speedup_vs_neuron=model_rate / neuron_rate,
                   speedup_reason=None)
    return out


class _Repeated:
    """The input side of a :data:`surrogate.data.NeuronIOData` with its simulations repeated to ``n_sims``
    (simulation i is the data's i mod n), as :func:`surrogate.predict.predict_arrays` reads it."""

    def __init__(self, data: NeuronIOData, n_sims: int):
        self.data, self.n_sims = data, n_sims
        self.signs, self.n_time = data.signs, data.n_time

    def input_sims(self, lo: int, hi: int) -> np.ndarray:
        """uint8 [k, n_time, n_syn] input spikes of repeated simulations lo..hi − 1 (k of them below n_sims)."""
        positions = np.arange(lo, min(hi, self.n_sims)) % self.data.n_sims
        return np.concatenate([self.data.input_sims(i, i + 1) for i in positions])


def batched_speed(model: nn.Module, data: NeuronIOData, neuron_wall_s: float | None, neuron_reason: str | None,
                  n_sims: int = SPEED_SIMS, batch_size: int = SPEED_BATCH) -> dict:
    """:func:`inference_speed` of ``model`` predicting ``max(n_sims, data.n_sims)`` whole simulations of ``data``
    (repeated where it holds fewer), ``batch_size`` per forward pass, after one warm-up pass that keeps one-time
    costs (extension loading, allocator) out of the timing. NEURON's rate is the store's (``neuron_wall_s`` for
    all of ``data``).

    Returns:
        :func:`inference_speed`'s dict plus n_sims, batch_size and torch_threads of the measurement, and the
        1-minute load average before it (``load_average``; compare with the CPU count).
    """
    n_sims = max(n_sims, data.n_sims)
    load = os.getloadavg()[0]  # recorded because a busy machine slows the timing
    channels = model_channels(model, data)
    with torch.no_grad():
        model(torch.zeros(1, min(data.n_time, 64), model_input_width(model)))
    start = time.perf_counter()
    predict_arrays(model, _Repeated(data, n_sims), batch_size, channels=channels)
    wall_s = time.perf_counter() - start
    speed = inference_speed(n_sims * data.n_time, wall_s, data.n_sims * data.n_time, neuron_wall_s, neuron_reason)
    return {**speed, "n_sims": n_sims, "batch_size": batch_size, "torch_threads": torch.get_num_threads(),
            "load_average": round(load, 2)}
