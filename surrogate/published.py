"""Interop with the public ELM release (Spieler et al. 2023, github.com/AaronSpieler/elmneuron): its constructor
arguments mapped onto :class:`surrogate.elm_config.ELMConfig`, its state_dict keys onto an :class:`surrogate.elm.ELM`'s,
the synapse layout its NeuronIO models read, and its conformance cases' weights loaded into an ELM.

The release's reference modules (v1 ``expressive_leaky_memory_neuron.py``, v2 ``…_v2.py``) hold the same
parameters as :class:`surrogate.elm.ELM` under the same names, plus the trace time constants as a tensor
(``tau_s`` [d_s] in v1, ``tau_b`` [d_tree] in v2, which tells the versions apart); an ELM has one scalar
``tau_s_ms`` instead.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from biophys.morphology import segment_name
from conventions.configkeys import refuse_unknown_keys
from conventions.layout import KINDS, SynapseLayout
from surrogate.elm import ELM
from surrogate.elm_config import ELMConfig
from surrogate.models import build_model

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
    "delta_t": "dt_ms",
}
#: Release arguments that only set initial values, which trained weights replace.
INITIAL_VALUE_ARGS = ("w_s_value",)
_ROUTINGS = {"neuronio_routing": "neuronio", "random_routing": "random"}

#: Segments per section (nseg) of cell1 (Hay et al. 2011, the NeuronIO cell of Beniaguev et al. 2021) under the
#: nseg rule of :mod:`biophys.morphology`, basal ``dend[0..83]`` then apical ``apic[0..108]``: 262 + 377 = 639
#: dendritic segments, each with one excitatory and one inhibitory NeuronIO input.
NEURONIO_NSEG = {
    "dend": (1, 1, 7, 1, 5, 9, 7, 1, 1, 1, 3, 1, 1, 7, 7, 3, 1, 1, 1, 1, 1, 1, 3, 1, 1, 1, 1, 3, 9, 1, 1, 5, 5, 5, 1,
             7, 3, 3, 3, 5, 5, 1, 1, 1, 5, 7, 1, 1, 3, 1, 1, 3, 1, 1, 5, 1, 3, 1, 7, 7, 5, 5, 5, 1, 1, 1, 7, 5, 3, 5,
             9, 1, 9, 1, 5, 1, 3, 3, 3, 1, 3, 1, 7, 1),
    "apic": (3, 3, 1, 3, 1, 1, 1, 1, 3, 7, 5, 1, 5, 7, 3, 1, 1, 9, 5, 9, 3, 1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 1, 1, 7, 3,
             5, 13, 13, 5, 3, 11, 1, 3, 1, 5, 3, 1, 1, 1, 7, 3, 11, 5, 9, 1, 1, 1, 1, 1, 1, 11, 9, 1, 9, 5, 1, 1, 9,
             5, 7, 3, 3, 1, 3, 1, 3, 7, 7, 5, 3, 1, 1, 1, 3, 3, 5, 5, 7, 1, 3, 1, 1, 1, 5, 1, 3, 1, 1, 1, 1, 1, 7, 9,
             5, 1, 5, 1, 1, 1),
}


class PublishedError(ValueError):
    """A published checkpoint that cannot be read into an ELM (the message names the file and the problem)."""


def neuronio_segments() -> list[str]:
    """The 639 dendritic segment names of the NeuronIO cell in NeuronIO order (``"dend[2](0.0714286)"``)."""
    return [segment_name(f"{prefix}[{i}]", (j + 0.5) / nseg)
            for prefix, counts in NEURONIO_NSEG.items() for i, nseg in enumerate(counts) for j in range(nseg)]


def neuronio_layout() -> SynapseLayout:
    """The 1278 input channels of the original NeuronIO data: excitatory on every segment of
    :func:`neuronio_segments`, then inhibitory on the same segments (signed +1 / −1)."""
    segments = neuronio_segments()
    return SynapseLayout(tuple(segments * len(KINDS)), tuple(k for k in KINDS for _ in segments))


def config_from_release_args(args: dict, version: int = 1, where: str = "release arguments") -> ELMConfig:
    """ELMConfig from the public release's constructor arguments (e.g. cases.json "config").

    Raises:
        PublishedError: an argument the release's constructors do not have, or a value ELMConfig refuses.
    """
    if not isinstance(args, dict):
        raise PublishedError(f"{where} must be a JSON object of constructor arguments, got {type(args).__name__}")
    refuse_unknown_keys(args, (*RELEASE_ARGS, *INITIAL_VALUE_ARGS), where, error=PublishedError)
    fields = {RELEASE_ARGS[k]: v for k, v in args.items() if k in RELEASE_ARGS}
    if fields.get("n_branches", 0) is None:  # the release's vanilla ELM: one branch per input
        fields["n_branches"] = 0
    if "routing" in fields:
        fields["routing"] = _ROUTINGS.get(fields["routing"], fields["routing"])
    try:
        return ELMConfig(version=version, **fields)
    except (TypeError, ValueError) as exc:
        raise PublishedError(f"{where}: {exc}") from None


def _shape(t) -> list[int]:
    """The shape of a tensor or an array."""
    return list(t.shape)


def release_version(state: dict, where: str) -> int:
    """1 for a v1 state_dict (``tau_s``), 2 for v2 (``tau_b``)."""
    has = [k for k in ("tau_s", "tau_b") if k in state]
    if len(has) != 1:
        raise PublishedError(f"{where}: expected exactly one of the trace time constants 'tau_s' (v1) or 'tau_b' "
                             f"(v2), found {has or 'neither'}")
    return 1 if has[0] == "tau_s" else 2


def model_from_release(args: dict, state: dict, layout: SynapseLayout | None = None,
                       where: tuple[str, str] = ("release arguments", "state_dict")) -> ELM:
    """An ELM holding the weights of a release ``state`` (tensors or arrays under the release's keys, ``.``
    separated) for constructor ``args``, its inputs described by ``layout``.

    Raises:
        PublishedError (one line, naming ``where`` = (config source, weights source)): unknown arguments, missing
        or unexpected keys, a shape that does not fit the config, non-constant trace time constants or ones that
        contradict ``tau_s_value``/``tau_b_value``, or routing indices that differ from the config's routing.
    """
    args_where, state_where = where
    version = release_version(state, state_where)
    trace_key = "tau_s" if version == 1 else "tau_b"
    trace = np.asarray(state[trace_key], dtype=np.float64).ravel()
    if trace.size == 0 or not np.allclose(trace, trace[0], rtol=1e-6):
        raise PublishedError(f"{state_where}: {trace_key} must hold one time constant repeated, got values from "
                             f"{trace.min(initial=np.nan):g} to {trace.max(initial=np.nan):g} ms")
    config = config_from_release_args(args, version, args_where)
    declared = args.get(f"{trace_key}_value")
    if declared is not None and not np.isclose(declared, trace[0], rtol=1e-6):
        raise PublishedError(f"{args_where} gives {trace_key}_value {declared} but {state_where} holds "
                             f"{trace_key} = {trace[0]:g} ms")
    config = dataclasses.replace(config, tau_s_ms=float(trace[0]))
    if layout is not None and layout.n_channels != config.n_inputs:
        raise PublishedError(f"{args_where}: num_input is {config.n_inputs}, but the NeuronIO inputs are "
                             f"{layout.n_channels} channels")
    try:
        model = build_model("branch-elm" if config.n_branches else "elm", dataclasses.asdict(config), layout=layout)
    except ValueError as exc:
        raise PublishedError(f"{args_where}: {exc}") from None
    expected = model.state_dict()
    routing_keys = {"input_to_synapse_indices", "valid_indices_mask"}
    ignorable = {trace_key} | (set() if config.n_branches else routing_keys)
    missing = [k for k in expected if k not in state]
    if missing:
        raise PublishedError(f"{state_where} lacks {missing[0]!r}" + (f" and {len(missing) - 1} more key(s)"
                                                                         if len(missing) > 1 else ""))
    extra = sorted(set(state) - set(expected) - ignorable)
    if extra:
        raise PublishedError(f"{state_where} has key(s) {extra} that an ELM of {args_where} does not have")
    for key in ignorable & routing_keys:
        if np.prod(_shape(state[key])):
            raise PublishedError(f"{state_where}: {key} must be empty for an ELM without branches")
    loaded = {}
    for key, want in expected.items():
        if _shape(state[key]) != list(want.shape):
            raise PublishedError(f"{state_where}: {key} has shape {_shape(state[key])}, but {args_where} implies "
                                 f"{list(want.shape)}")
        loaded[key] = torch.as_tensor(np.asarray(state[key])).to(want.dtype)
    if config.n_branches and config.routing == "neuronio":
        for key in sorted(routing_keys):
            if not torch.equal(loaded[key], expected[key]):
                raise PublishedError(f"{state_where}: {key} differs from the neuronio routing of {args_where}")
    model.load_state_dict(loaded, strict=True)
    return model.eval()


def load_conformance_npz(path: str | Path, release_args: dict) -> ELM:
    """Build the ELM of a conformance case (public-release argument names) and load its npz weights.

    The version follows from the arrays (`tau_b`: v2). Raises PublishedError when the file disagrees with the
    config: trace time constants, routing indices/mask, or τ_m recomputed from `_proto_tau_m`.
    """
    arrays = np.load(path)
    state = {name.replace("__", "."): arrays[name] for name in arrays.files
             if name not in ("x", "y", "tau_m_effective", "w_s_effective")}
    model = model_from_release(release_args, state, where=("the case's config", str(path)))
    with torch.no_grad():
        tau_m = model.tau_m_ms().numpy()
    if not np.allclose(tau_m, arrays["tau_m_effective"], rtol=1e-5, atol=1e-5):
        raise PublishedError(f"{path}: τ_m from _proto_tau_m differs from tau_m_effective")
    return model
