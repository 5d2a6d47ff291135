"""Branch-ELM routing: which input channel each synapse slot of a branch reads (Spieler et al. 2023, Branch-ELM).

Pure functions returning (indices LongTensor [d_s], valid BoolTensor [d_s]), slots grouped branch by branch;
:func:`surrogate.elm.make_routing` picks one for a config.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from conventions.layout import SynapseLayout


def layout_interleaving(layout: SynapseLayout) -> Tensor:
    """LongTensor [n_channels]: excitatory channels in channel order, each followed by the inhibitory channel of
    its segment (:meth:`SynapseLayout.exc_inh_pairs`; raises LayoutError when a channel has no partner)."""
    return torch.from_numpy(layout.exc_inh_pairs().reshape(-1))


def neuronio_routing(n_inputs: int, n_branches: int, synapses_per_branch: int,
                     interleaved: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Neighbour-preserving routing of the NeuronIO inputs onto branches.

    Inputs are interleaved so that each excitatory channel sits beside the inhibitory channel of its segment:
    ``interleaved`` (LongTensor [n_inputs], see :func:`layout_interleaving`), or by position when None
    (excitatory channel i beside inhibitory channel n/2 + i, the NeuronIO order). Branch k reads the window
    [k·stride, k·stride + synapses_per_branch) of that order, stride = ceil(n_inputs / n_branches). Window slots
    past the end are clamped to the last input and masked.
    """
    if interleaved is None:
        half = n_inputs // 2
        interleaved = torch.stack([torch.arange(half), torch.arange(half) + half], dim=1).reshape(-1)
    elif interleaved.shape != (n_inputs,):
        raise ValueError(f"the layout pairs {interleaved.shape[0]} channels but the model has {n_inputs} inputs")
    stride = math.ceil(n_inputs / n_branches)
    position = torch.arange(n_branches)[:, None] * stride + torch.arange(synapses_per_branch)[None, :]
    valid = position < n_inputs
    indices = interleaved[position.clamp(max=n_inputs - 1)]
    return indices.reshape(-1), valid.reshape(-1)


def random_routing(n_inputs: int, n_branches: int, synapses_per_branch: int, seed: int) -> tuple[Tensor, Tensor]:
    """Each synapse slot reads an input channel drawn uniformly (seeded); all slots valid."""
    generator = torch.Generator().manual_seed(seed)
    indices = torch.randint(n_inputs, (n_branches * synapses_per_branch,), generator=generator)
    return indices, torch.ones_like(indices, dtype=torch.bool)
