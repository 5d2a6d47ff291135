"""Interop with the public ELM release (Spieler et al. 2023, github.com/AaronSpieler/elmneuron): its constructor
arguments mapped onto :class:`surrogate.elm.ELMConfig`, and its conformance cases' weights loaded into an ELM.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from surrogate.elm import ELM, ELMConfig


RELEASE_ARGS = {
    "num_input": "n_inputs",
    "num_output": "n_outputs",
    "num_memory": "d_memory",
    "mlp_hidden_size": "mlp_hidden",
    "mlp_num_layers": "mlp_layers",
    "mlp_activation": "activation",
    "memory_tau_min": "tau_m_min_ms",
    "memory_tau_max": "tau_m_max_ms",
    "lambda_value": "lambda_value",
    "num_branch": "n_branches",
    "num_synapse_per_branch": "synapses_per_branch",
    "input_to_synapse_routing": "routing",
    "learn_memory_tau": "learn_tau_m",
    "tau_s_value": "tau_s_ms",
    "tau_b_value": "tau_s_ms",
}


def config_from_release_args(args: dict, version: int = 1) -> ELMConfig:
    """ELMConfig from the public release's constructor arguments (e.g. cases.json "config")."""
    unknown = sorted(set(args) - set(RELEASE_ARGS))
    if unknown:
        raise ValueError(f"unknown ELM release arguments: {unknown}")
    fields = {RELEASE_ARGS[k]: v for k, v in args.items()}
    if "routing" in fields:
        fields["routing"] = {"neuronio_routing": "neuronio", "random_routing": "random"}.get(
            fields["routing"], fields["routing"]
        )
    return ELMConfig(version=version, **fields)


def load_conformance_npz(path: str | Path, release_args: dict) -> ELM:
    """Build the ELM of a conformance case (public-release argument names) and load its npz weights.

    The version follows from the arrays (`tau_b`: v2). Raises ValueError when the file disagrees with the
    config: trace time constants, routing indices/mask, or τ_m recomputed from `_proto_tau_m`.
    """
    arrays = np.load(path)
    version = 2 if "tau_b" in arrays.files else 1
    config = config_from_release_args(release_args, version=version)
    tau_trace = arrays["tau_b" if version == 2 else "tau_s"]
    if not np.allclose(tau_trace, config.tau_s_ms):
        raise ValueError(f"{path}: trace time constants differ from tau_s_ms = {config.tau_s_ms}")
    model = ELM(config)
    if config.n_branches:
        for name in ("input_to_synapse_indices", "valid_indices_mask"):
            if not np.array_equal(arrays[name], getattr(model, name).numpy()):
                raise ValueError(f"{path}: {name} differs from the {config.routing} routing")
    state_keys = set(model.state_dict())
    loaded = {
        name.replace("__", "."): torch.from_numpy(arrays[name])
        for name in arrays.files
        if name.replace("__", ".") in state_keys
    }
    model.load_state_dict(loaded, strict=True)
    with torch.no_grad():
        tau_m = model.tau_m_ms().numpy()
    if not np.allclose(tau_m, arrays["tau_m_effective"], rtol=1e-5, atol=1e-5):
        raise ValueError(f"{path}: τ_m from _proto_tau_m differs from tau_m_effective")
    return model
