"""Published ELM checkpoint folders (in the naming of github.com/AaronSpieler/elmneuron's models/<name>/) and
stores of the 1278 original NeuronIO inputs, built in tests so that nothing is downloaded."""

import json

import numpy as np
import pandas as pd
import torch

from biophys import dataset
from surrogate.published import neuronio_layout

BRANCH_ARGS = {"num_input": 1278, "num_output": 2, "num_memory": 6, "num_branch": 45, "num_synapse_per_branch": 30,
               "input_to_synapse_routing": "neuronio_routing", "memory_tau_min": 1.0, "memory_tau_max": 150.0,
               "learn_memory_tau": False}
EVAL = {"test_results": {"AUC": 0.99, "TP @ 0.0025 FP": 0.3, "TP @ 0.0100 FP": 0.7, "soma_MAE": 0.34,
                         "soma_RMSE": 0.64, "soma_explained_variance_percent": 95.7}}


def release_state(args: dict, version: int, seed: int = 0) -> dict:
    """Random weights under the release's state_dict keys, with its neuronio routing (exc i beside inh 639 + i)."""
    rng = np.random.default_rng(seed)
    d_m, d_b, d_brch = args["num_memory"], args["num_branch"], args["num_synapse_per_branch"]
    h = 2 * d_m
    n_in = args["num_input"]
    interleaved = np.stack([np.arange(n_in // 2), np.arange(n_in // 2) + n_in // 2], axis=1).ravel()
    stride = -(-n_in // d_b)
    position = (np.arange(d_b)[:, None] * stride + np.arange(d_brch)[None, :]).ravel()
    f32 = lambda *shape: torch.from_numpy(rng.normal(size=shape).astype(np.float32))  # noqa: E731
    state = {"_proto_w_s": f32(d_b * d_brch).abs() * 0.3, "_proto_tau_m": f32(d_m),
             "input_to_synapse_indices": torch.from_numpy(interleaved[np.minimum(position, n_in - 1)]),
             "valid_indices_mask": torch.from_numpy(position < n_in),
             "mlp.network.0.weight": f32(h, d_b + d_m) * 0.3, "mlp.network.0.bias": f32(h) * 0.1,
             "mlp.network.2.weight": f32(d_m, h) * 0.3, "mlp.network.2.bias": f32(d_m) * 0.1,
             "w_y.weight": f32(2, d_m), "w_y.bias": f32(2)}
    state["tau_s" if version == 1 else "tau_b"] = torch.full((d_b * d_brch if version == 1 else d_b,), 5.0)
    return state


def write_checkpoint(folder, args=BRANCH_ARGS, version=1, state=None, train_config=True):
    folder.mkdir(parents=True)
    (folder / "model_config.json").write_text(json.dumps(args))
    torch.save(release_state(args, version) if state is None else state, folder / "neuronio_best_model_state.pt")
    (folder / "eval_results.json").write_text(json.dumps(EVAL))
    (folder / "model_stats.json").write_text(json.dumps({"model_flop_count": None, "model_param_count": 1}))
    if train_config:
        (folder / "train_config.json").write_text(json.dumps({"burn_in_time": 150, "input_window_size": 500}))
    return folder


def neuronio_store(path, perm=None, n_sims=2, n_time=240, seed=0):
    """A store whose synapses are the 1278 NeuronIO inputs (in the order ``perm`` of the original order)."""
    layout = neuronio_layout()
    perm = np.arange(layout.n_channels) if perm is None else perm
    rng = np.random.default_rng(seed)
    spikes = (rng.random((n_sims, n_time, layout.n_channels)) < 0.02).astype(np.uint8)
    tree = ["basal" if s.startswith("dend") else "apical" for s in layout.segments]
    synapses = pd.DataFrame({"segment": layout.segments, "section": [s.split("(")[0] for s in layout.segments],
                             "x": 0.5, "tree": tree, "distance_um": 1.0, "length_um": 1.0, "kind": layout.kinds,
                             "sign": layout.signs, "pos_x_um": 0.0, "pos_y_um": 0.0, "pos_z_um": 0.0})
    soma = (-70 + 5 * rng.standard_normal((n_sims, n_time))).astype(np.float32)
    ds = dataset.build_dataset(spikes[..., perm], soma, [np.array([50.3, 120.7])] * n_sims, seeds=np.arange(n_sims),
                               synapses=synapses.iloc[perm].reset_index(drop=True), config={"test": True},
                               provenance={"cell": {"name": "original-neuronio"}})
    return dataset.write_store(ds, path), spikes * layout.signs
