"""Which input channel is which: the synapse layout of a store, recorded by the models trained on it.

A store's input channels are identified by its synapse coordinates, not by their position: channel ``i`` is the
synapse of kind ``synapse_kind[i]`` ("exc" or "inh") on segment ``synapse_segment[i]`` (a segment name such as
``dend[3](0.5)``). Several synapses of one kind may sit on one segment, so a channel's identity is (segment,
kind, occurrence), the occurrence counting the channels of that (segment, kind) in channel order from 0.

A model records the layout of its input channels in model order; :func:`channel_index` maps them onto the
channels of another store, whatever their order there.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

KINDS = ("exc", "inh")
SIGNS = {"exc": 1, "inh": -1}


class LayoutError(ValueError):
    """Two synapse layouts do not hold the same channels, or a layout is malformed."""


@dataclass(frozen=True)
class SynapseLayout:
    """Per input channel, in model input order: ``segments[i]`` (segment name) and ``kinds[i]`` ("exc"/"inh")."""

    segments: tuple[str, ...]
    kinds: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "segments", tuple(str(s) for s in self.segments))
        object.__setattr__(self, "kinds", tuple(str(k) for k in self.kinds))
        if len(self.segments) != len(self.kinds):
            raise LayoutError(f"a synapse layout needs one kind per segment, got {len(self.segments)} segments and "
                              f"{len(self.kinds)} kinds")
        bad = sorted(set(self.kinds) - set(KINDS))
        if bad:
            raise LayoutError(f"synapse kinds must be 'exc' or 'inh', got {bad}")

    @classmethod
    def from_dataset(cls, ds) -> "SynapseLayout":
        """The layout of a store's dataset (its ``synapse_segment`` and ``synapse_kind`` coordinates, of any string
        dtype: object, fixed-width or NumPy's StringDType)."""
        return cls(tuple(str(s) for s in ds["synapse_segment"].values),
                   tuple(str(k) for k in ds["synapse_kind"].values))

    @classmethod
    def from_dict(cls, data: dict) -> "SynapseLayout":
        """Inverse of :meth:`to_dict`."""
        if not isinstance(data, dict) or set(data) != {"segments", "kinds"}:
            raise LayoutError(f"a saved synapse layout holds 'segments' and 'kinds', got {data!r:.80}")
        return cls(tuple(data["segments"]), tuple(data["kinds"]))

    def to_dict(self) -> dict:
        """{"segments": [...], "kinds": [...]}: JSON-serialisable (and loadable by ``torch.load(weights_only)``)."""
        return {"segments": list(self.segments), "kinds": list(self.kinds)}

    @property
    def n_channels(self) -> int:
        return len(self.segments)

    @property
    def signs(self) -> np.ndarray:
        """int8 [n_channels]: +1 excitatory, −1 inhibitory."""
        return np.array([SIGNS[k] for k in self.kinds], dtype=np.int8)

    def identities(self) -> list[tuple[str, str, int]]:
        """(segment, kind, occurrence) of every channel, in channel order."""
        seen: Counter = Counter()
        out = []
        for key in zip(self.segments, self.kinds):
            out.append((*key, seen[key]))
            seen[key] += 1
        return out

    def select(self, channels: np.ndarray) -> "SynapseLayout":
        """The layout of channels ``channels`` (int [n]) of this one, in that order."""
        return SynapseLayout(tuple(self.segments[i] for i in channels), tuple(self.kinds[i] for i in channels))

    def exc_inh_pairs(self) -> np.ndarray:
        """int64 [n_exc, 2]: each excitatory channel (in channel order) with the inhibitory channel of the same
        segment and occurrence. Raises LayoutError unless every channel has exactly one partner."""
        inh = {(seg, occ): i for i, (seg, kind, occ) in enumerate(self.identities()) if kind == "inh"}
        pairs = []
        for i, (seg, kind, occ) in enumerate(self.identities()):
            if kind == "exc":
                if (seg, occ) not in inh:
                    raise LayoutError(f"excitatory channel {i} ({_name(seg, 'exc', occ)}) has no inhibitory "
                                      "partner on its segment")
                pairs.append((i, inh.pop((seg, occ))))
        if inh:
            (seg, occ), i = next(iter(inh.items()))
            raise LayoutError(f"{len(inh)} inhibitory channels have no excitatory partner on their segment, e.g. "
                              f"channel {i} ({_name(seg, 'inh', occ)})")
        return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def _name(segment: str, kind: str, occurrence: int) -> str:
    return f"{segment} {kind}" + (f" #{occurrence + 1}" if occurrence else "")


def channel_index(model_layout: SynapseLayout, store_layout: SynapseLayout) -> np.ndarray:
    """int64 [model_layout.n_channels]: for each model channel, the store channel with the same identity.

    Raises:
        LayoutError: in one line, when the store lacks some of the model's channels or holds others besides.
    """
    where = {identity: i for i, identity in enumerate(store_layout.identities())}
    wanted = model_layout.identities()
    missing = [identity for identity in wanted if identity not in where]
    if missing:
        raise LayoutError(f"the store lacks {len(missing)} of the run's {len(wanted)} channels, e.g. "
                          f"{_name(*missing[0])}")
    extra = set(where) - set(wanted)
    if extra:
        example = min(extra, key=where.get)
        raise LayoutError(f"the store has {len(extra)} channels the run was not trained on, e.g. {_name(*example)}")
    return np.array([where[identity] for identity in wanted], dtype=np.int64)
