"""Registry of surrogate models: build by kind name from a config dict, and save/restore their configs.

Every model maps x [B, T, n_inputs] (signed spike counts per 1 ms bin) to y [B, T, 2] (spike logit, scaled soma
voltage), carries its config dataclass as `.config` and the synapse layout of its input channels as `.layout`
(None when unknown: channels by position); :func:`num_params` counts its trainable parameters.
"""

from __future__ import annotations

import dataclasses

from torch import nn

from conventions.layout import SynapseLayout
from surrogate.elm import ELM
from surrogate.elm_config import ELMConfig
from surrogate.lstm import LSTMConfig, LSTMModel
from surrogate.tcn import TCN, TCN_PRESETS, TCNConfig

MODEL_KINDS = ("elm", "branch-elm", "tcn", "lstm")

_CLASSES = {
    "elm": (ELMConfig, ELM),
    "branch-elm": (ELMConfig, ELM),
    "tcn": (TCNConfig, TCN),
    "lstm": (LSTMConfig, LSTMModel),
}

# Defaults per kind on top of the config dataclass defaults. "branch-elm": the released NeuronIO Branch-ELM
# (45 branches × 100 synapses, d_m 20, 8,002 parameters); "elm": the vanilla ELM with d_m 20 (54,100).
_KIND_DEFAULTS = {
    "elm": {},
    "branch-elm": {"n_branches": 45, "synapses_per_branch": 100, "routing": "neuronio"},
    "tcn": {},
    "lstm": {},
}

PRESETS: dict[str, dict[str, dict]] = {"elm": {}, "branch-elm": {}, "tcn": TCN_PRESETS, "lstm": {}}


def build_model(kind: str, config: dict | None = None, n_inputs: int = 1278,
                layout: SynapseLayout | None = None) -> nn.Module:
    """Model of `kind` (one of MODEL_KINDS) with `config` overriding that kind's defaults.

    `config` holds fields of the kind's config dataclass, plus optionally "preset" (a name in PRESETS[kind])
    whose values apply before the explicit ones. An "n_inputs" key in `config` takes precedence over the
    argument. `layout` (one entry per input channel) becomes the model's `.layout`; the "neuronio" Branch-ELM
    routing pairs its channels by it. Unknown kinds, presets or keys, and a layout of another width, raise
    ValueError naming them.
    """
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}; known: {MODEL_KINDS}")
    config_cls, model_cls = _CLASSES[kind]
    overrides = dict(config or {})
    preset = overrides.pop("preset", None)
    fields = {"n_inputs": n_inputs, **_KIND_DEFAULTS[kind]}
    if preset is not None:
        if preset not in PRESETS[kind]:
            raise ValueError(f"unknown preset {preset!r} for {kind!r}; known: {tuple(PRESETS[kind])}")
        fields.update(PRESETS[kind][preset])
    known = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown {kind} config keys {unknown}; known: {sorted(known)}")
    fields.update(overrides)
    model_config = config_cls(**fields)
    if layout is not None and layout.n_channels != model_config.n_inputs:
        raise ValueError(f"the synapse layout has {layout.n_channels} channels but the model {model_config.n_inputs} "
                         "inputs")
    if model_cls is ELM:
        return ELM(model_config, layout=layout)
    model = model_cls(model_config)
    model.layout = layout
    return model


def model_kind(model: nn.Module) -> str:
    """Registry kind of a model built by `build_model`."""
    if isinstance(model, ELM):
        return "branch-elm" if model.config.n_branches else "elm"
    for kind, (_, model_cls) in _CLASSES.items():
        if isinstance(model, model_cls):
            return kind
    raise ValueError(f"{type(model).__name__} is not a registered surrogate model")


def config_to_dict(model: nn.Module) -> dict:
    """{"kind": …, "config": {field: value}} — JSON-serialisable; `model_from_dict` rebuilds the model."""
    return {"kind": model_kind(model), "config": dataclasses.asdict(model.config)}


def model_from_dict(saved: dict, layout: SynapseLayout | None = None) -> nn.Module:
    """Inverse of `config_to_dict`: a freshly initialised model with the saved config (load weights after)."""
    return build_model(saved["kind"], saved["config"], layout=layout)


def model_input_width(model: nn.Module) -> int:
    """Number of input channels the model expects."""
    return model.config.n_inputs


def num_params(model: nn.Module) -> int:
    """Trainable parameters of any model (for a Branch-ELM masked synapse slots count, as in the public release)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
