"""The plan of a run: a TrainConfig checked against its stores, with everything it resolves (absolute paths,
the skip, the full model config, the freshly initialised model, the synapse layout of its input channels and the
channel order in which each store is read), and the records a run keeps of its stores."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from biophys.dataset import NeuronIOStore, StoreError
from conventions.layout import LayoutError, SynapseLayout, channel_index
from surrogate import checkpoint as ckpt
from surrogate.config import ConfigError, TrainConfig
from surrogate.data import check_window, default_skip_ms, store_layout
from surrogate.models import build_model, config_to_dict


def config_hash(config: dict) -> str:
    """sha256 of the canonical JSON of a config dict."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def store_record(store: NeuronIOStore) -> dict:
    """What a run records about a store it used: path, sizes, generator config and its hash, provenance."""
    return {
        "path": str(store.path.resolve()),
        "n_sims": store.n_sims,
        "n_time": store.n_time,
        "n_synapses": store.n_synapses,
        "config": store.config,
        "config_sha256": config_hash(store.config),
        "provenance": store.provenance,
    }


def _store_channels(layout: SynapseLayout | None, store: NeuronIOStore, what: str) -> np.ndarray | None:
    """The store channel of each of the run's channels (None: the store's order is the run's)."""
    if layout is None:
        return None
    try:
        index = channel_index(layout, store_layout(store))
    except LayoutError as exc:
        raise StoreError(f"the {what} store {store.path}: {exc}") from None
    return None if np.array_equal(index, np.arange(store.n_synapses)) else index


@dataclasses.dataclass
class Plan:
    """A checked config with everything it resolved: the model, its layout, each store's channel order."""

    cfg: TrainConfig
    model: nn.Module
    layout: SynapseLayout | None
    channels: tuple[np.ndarray | None, np.ndarray | None]


def resolve(cfg: TrainConfig, train_store: NeuronIOStore, valid_store: NeuronIOStore,
             checkpoint: dict | None) -> Plan:
    """Check the config against the stores; fill in absolute paths, the skip and the full model config, and
    build the freshly initialised model (seeded by cfg.seed) for the run's layout: the training store's for a
    fresh run, the checkpoint's on resuming (None, channels by position, for runs that recorded none)."""
    if valid_store.n_synapses != train_store.n_synapses:
        raise StoreError(f"the validation store {valid_store.path} has other synapses ({valid_store.n_synapses}) "
                         f"than the training store {train_store.path} ({train_store.n_synapses})")
    layout = store_layout(train_store) if checkpoint is None else ckpt.checkpoint_layout(checkpoint)
    if layout is None and not np.array_equal(valid_store.signs, train_store.signs):
        raise StoreError(f"the validation store {valid_store.path} has other synapses than the training store "
                         f"{train_store.path}")
    channels = (_store_channels(layout, train_store, "training"), _store_channels(layout, valid_store, "validation"))
    n_inputs = cfg.model_config.get("n_inputs", train_store.n_synapses)
    if n_inputs != train_store.n_synapses:
        raise StoreError(f"the model expects {n_inputs} input channels but {train_store.path} has "
                         f"{train_store.n_synapses} synapses; drop n_inputs from the model config or use a "
                         "matching store")
    skip_ms = default_skip_ms(train_store.n_time, cfg.window_ms) if cfg.skip_ms is None else cfg.skip_ms
    try:
        check_window(train_store.n_time, cfg.window_ms, cfg.burn_in_ms, skip_ms)
    except ValueError as exc:
        raise ConfigError(f"training store {train_store.path}: {exc}") from None
    if cfg.burn_in_ms >= valid_store.n_time:
        raise ConfigError(f"burn_in_ms ({cfg.burn_in_ms}) leaves nothing of the {valid_store.n_time} ms "
                          f"validation simulations")
    torch.manual_seed(cfg.seed)
    try:
        model = build_model(cfg.model, {**cfg.model_config, "n_inputs": n_inputs}, layout=layout)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid model config for {cfg.model}: {exc}") from None
    resolved = dataclasses.replace(
        cfg,
        model_config=config_to_dict(model)["config"],
        train=str(Path(cfg.train).resolve()),
        valid=str(Path(cfg.valid).resolve()),
        out=str(Path(cfg.out).resolve()),
        skip_ms=skip_ms,
    )
    return Plan(resolved, model, layout, channels)
