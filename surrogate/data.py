"""Training windows and targets from a NeuronIO store, in the conventions of Beniaguev, Segev & London (2021) and
Spieler et al. (2023), whose shared rules live in :mod:`conventions.signals`:
- input: spike counts per 1 ms bin times the channel's sign (+1 excitatory, −1 inhibitory), float32;
- spike target: the store's per-bin output spike labels (bin int(t − 0.5) of each spike);
- soma target: :func:`conventions.signals.soma_target`, the voltage clipped below spike height, then scaled;
- windows of ``window_ms`` (500) starting at or after ``skip_ms`` (500) into a simulation; the first
  ``burn_in_ms`` (:data:`conventions.signals.BURN_IN_MS`) of every window (and of every whole simulation) are
  excluded from losses and metrics, because the model's state has not yet caught up with the input.

Data sources, with one interface for the training windows and the whole-simulation predictions
(:mod:`surrogate.predict`):
- :class:`NeuronIOArrays` holds a store in memory (1 byte per ms and synapse);
- :class:`LazyNeuronIO` holds only the per-bin targets (voltage and spike label, 5 bytes per ms) and reads input
  spikes from the store on demand, a window or a whole simulation at a time.
Both give bit-identical batches and predictions; :class:`WindowSampler` draws the same windows from either.
Either may present the store's channels in another order (``channels``, from
:func:`conventions.layout.channel_index`), so that a model sees its own channel order whatever the store's.
Only :class:`biophys.dataset.NeuronIOStore` knows the storage layout; this module reads through it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from biophys.dataset import NeuronIOStore, StoreError
from conventions.layout import SynapseLayout
from conventions.signals import soma_target
from surrogate.shared_data import Alloc, load_shared, remember, reused, share_dir_in_use

WINDOW_MS = 500
SKIP_MS = 500


def signed_inputs(spikes: np.ndarray, signs: np.ndarray) -> np.ndarray:
    """float32 [..., n_syn] model input: uint8 spike counts [..., n_syn] times int8 signs [n_syn]."""
    x = spikes.astype(np.float32)
    x *= signs.astype(np.float32)  # in place: a batch is 20 MB, and a second buffer costs a third of the time
    return x


#: Bytes per ms a simulation's targets take in memory: float32 voltage + bool spike label.
TARGET_BYTES_PER_MS = 5


def in_memory_nbytes(store: NeuronIOStore, n_sims: int | None = None) -> int:
    """Bytes that :class:`NeuronIOArrays` of ``n_sims`` (default all) simulations of ``store`` take: uint8 spikes
    (1 byte per ms and synapse) plus the targets (:data:`TARGET_BYTES_PER_MS`)."""
    n_sims = store.n_sims if n_sims is None else n_sims
    return n_sims * store.n_time * (store.n_synapses + TARGET_BYTES_PER_MS)


def _open(store: NeuronIOStore | str | Path) -> NeuronIOStore:
    return store if isinstance(store, NeuronIOStore) else NeuronIOStore(store)


def _positions(store: NeuronIOStore, sims: np.ndarray | None) -> np.ndarray:
    """int64 store positions of ``sims`` (default all); raises StoreError for an empty store or selection."""
    if store.n_sims == 0 or store.n_time == 0:
        raise StoreError(f"{store.path} holds no data ({store.n_sims} simulations × {store.n_time} ms)")
    positions = np.arange(store.n_sims) if sims is None else np.asarray(sims, dtype=np.int64)
    if len(positions) == 0:
        raise StoreError(f"no simulations selected from {store.path}")
    return positions


def store_layout(store: NeuronIOStore) -> SynapseLayout:
    """The synapse layout of a store's input channels (segment and kind of each, in store order)."""
    return SynapseLayout.from_dataset(store.ds)


def _read_targets(store: NeuronIOStore, positions: np.ndarray, channels: np.ndarray | None) -> dict:
    """The per-simulation fields both data sources hold in memory, read one simulation at a time; the signs and
    layout of the store's channels ``channels`` (default all, in store order).

    Voltages are read and checked first, so a store with NaN/inf voltages fails before any input spikes are read.

    Raises:
        StoreError: non-finite voltages (naming up to 10 simulations by id).
    """
    soma = np.stack([store.soma_voltage(int(i)) for i in positions])
    bad = np.flatnonzero(~np.isfinite(soma).all(axis=1))
    if len(bad):
        ids = store.sim_ids[positions[bad]]
        raise StoreError(f"{store.path}: soma_voltage has NaN/inf values in simulations {ids[:10].tolist()}"
                         f"{' …' if len(ids) > 10 else ''}")
    layout = store_layout(store)
    return {
        "signs": store.signs if channels is None else store.signs[channels],
        "layout": layout if channels is None else layout.select(channels),
        "soma_mv": soma.astype(np.float32),
        "spike_labels": np.stack([store.output_spikes(int(i)) for i in positions]).astype(bool),
        "spike_times_ms": [store.spike_times(int(i)) for i in positions],
        "sim_ids": store.sim_ids[positions],
    }


@dataclass
class _Targets:
    """What both data sources hold in memory: everything but the input spikes.

    Attributes:
        signs: int8 [n_syn] +1 excitatory, −1 inhibitory.
        layout: the segment and kind of each of the n_syn input channels, in this data's channel order.
        soma_mv: float32 [n_sims, n_time] somatic voltage in mV.
        spike_labels: bool [n_sims, n_time] output spike per bin.
        spike_times_ms: n_sims float64 arrays of exact output spike times in ms.
        sim_ids: int64 [n_sims] the store's simulation indices.
    """

    signs: np.ndarray
    layout: SynapseLayout
    soma_mv: np.ndarray
    spike_labels: np.ndarray
    spike_times_ms: list[np.ndarray]
    sim_ids: np.ndarray

    @property
    def n_sims(self) -> int:
        return self.soma_mv.shape[0]

    @property
    def n_time(self) -> int:
        return self.soma_mv.shape[1]

    @property
    def n_synapses(self) -> int:
        return self.signs.shape[0]


@dataclass
class NeuronIOArrays(_Targets):
    """One store held in memory as the arrays training needs.

    Attributes (besides the targets of :class:`_Targets`):
        spikes: uint8 [n_sims, n_time, n_syn] input spike counts per 1 ms bin (unsigned; kept compact).
    """

    spikes: np.ndarray

    def input_windows(self, sims: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
        """uint8 [B, length, n_syn] spikes of simulations ``sims`` [B] (positions in this data) from ``starts``
        [B] ms."""
        return self.spikes[sims[:, None], starts[:, None] + np.arange(length)]

    def input_sims(self, lo: int, hi: int) -> np.ndarray:
        """uint8 [hi − lo, n_time, n_syn] spikes of whole simulations lo..hi − 1 (positions in this data)."""
        return self.spikes[lo:hi]

    @classmethod
    def from_store(cls, store: NeuronIOStore | str | Path, sims: np.ndarray | None = None,
                   channels: np.ndarray | None = None) -> "NeuronIOArrays":
        """Read simulations (positions ``sims``, default all) of a store, one read per simulation; with
        ``channels`` (int [n_syn] store channel of each of this data's channels) in that channel order.

        The spikes are read straight from the Zarr array into one preallocated array: stacking per-simulation
        copies held the data twice at the peak (18 GB for 2 h of NeuronIO input), and a read through xarray costs
        a task graph per simulation.

        Raises:
            StoreError: missing/invalid store, no simulations, or non-finite voltages (named by simulation).
        """
        store = _open(store)
        positions = _positions(store, sims)
        key, data = reused(store, positions, channels)
        if data is not None:
            return data

        def read(alloc: Alloc) -> tuple[np.ndarray, dict]:
            targets = _read_targets(store, positions, channels)  # first: bad voltages fail before the spikes' read
            n_syn = store.n_synapses if channels is None else len(channels)
            spikes = alloc((len(positions), store.n_time, n_syn), np.uint8)
            for row, position in enumerate(positions):
                sim = store.read_input_spikes(int(position))
                spikes[row] = sim if channels is None else sim[:, channels]
            return spikes, targets

        share_dir = share_dir_in_use()
        spikes, targets = read(np.empty) if share_dir is None else load_shared(share_dir, key, read)
        return remember(key, cls(spikes=spikes, **targets))


@dataclass
class LazyNeuronIO(_Targets):
    """One store whose input spikes stay on disk: the interface of :class:`NeuronIOArrays` without ``spikes``.

    Input spikes (1 byte per ms and synapse) are read when asked for, through
    :meth:`NeuronIOStore.read_input_spikes`; a 500 ms window touches at most two of the store's 1000 ms chunks.
    The targets (:data:`TARGET_BYTES_PER_MS`, 0.4 % of the 1278-synapse store) are read at construction, one
    simulation at a time, which is also when non-finite voltages are found: a bad store fails at startup, not
    epochs into training.

    Decompressed chunks are not cached: random windows of a store too large for memory revisit a chunk with a
    probability of (cached chunks) / (all chunks), so a cache of any affordable size would rarely hit
    (``benchmarks/data_speed.py`` measures the reads).

    Attributes (besides the targets of :class:`_Targets`):
        store: the store read from.
        positions: int64 [n_sims] the store positions of this data's simulations.
        channels: int64 [n_syn] the store channel of each of this data's channels, or None (store order).
    """

    store: NeuronIOStore
    positions: np.ndarray
    channels: np.ndarray | None = None

    def _read(self, position: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        spikes = self.store.read_input_spikes(int(position), start, stop)
        return spikes if self.channels is None else spikes[:, self.channels]

    def input_windows(self, sims: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
        """uint8 [B, length, n_syn] spikes of simulations ``sims`` [B] (positions in this data) from ``starts`` [B]
        ms, one store read per window."""
        out = np.empty((len(sims), length, self.n_synapses), np.uint8)
        for b, (sim, start) in enumerate(zip(sims, starts)):
            out[b] = self._read(self.positions[sim], int(start), int(start) + length)
        return out

    def input_sims(self, lo: int, hi: int) -> np.ndarray:
        """uint8 [hi − lo, n_time, n_syn] spikes of whole simulations lo..hi − 1 (positions in this data)."""
        return np.stack([self._read(i) for i in self.positions[lo:hi]])

    @classmethod
    def from_store(cls, store: NeuronIOStore | str | Path, sims: np.ndarray | None = None,
                   channels: np.ndarray | None = None) -> "LazyNeuronIO":
        """Open simulations (positions ``sims``, default all) of a store, reading their targets; ``channels`` as
        in :meth:`NeuronIOArrays.from_store`.

        Raises:
            StoreError: missing/invalid store, no simulations, or non-finite voltages (named by simulation).
        """
        store = _open(store)
        positions = _positions(store, sims)
        return cls(store=store, positions=positions, channels=channels, **_read_targets(store, positions, channels))


#: Either data source; they share the attributes and methods the training loop and predictions use.
NeuronIOData = NeuronIOArrays | LazyNeuronIO


def default_skip_ms(n_time: int, window_ms: int = WINDOW_MS) -> int:
    """Skip the first 500 ms when a simulation holds 500 ms + a window; else as much as still fits."""
    return min(SKIP_MS, max(0, n_time - window_ms))


def check_window(n_time: int, window_ms: int, burn_in_ms: int, skip_ms: int) -> None:
    """Raise ValueError unless windows of ``window_ms`` after ``skip_ms`` fit ``n_time`` ms with a loss region."""
    if window_ms <= 0 or burn_in_ms < 0 or skip_ms < 0:
        raise ValueError(f"need window_ms > 0, burn_in_ms ≥ 0, skip_ms ≥ 0; "
                         f"got {window_ms}, {burn_in_ms}, {skip_ms}")
    if burn_in_ms >= window_ms:
        raise ValueError(f"burn_in_ms ({burn_in_ms}) must be shorter than window_ms ({window_ms})")
    if skip_ms + window_ms > n_time:
        raise ValueError(f"a {window_ms} ms window after skip_ms = {skip_ms} ms does not fit simulations of "
                         f"{n_time} ms; lower window_ms or skip_ms")


class Batch(NamedTuple):
    """x: float32 [B, T, n_syn] signed inputs; spike: float32 [B, T] labels 0/1; soma: float32 [B, T] target."""

    x: Tensor
    spike: Tensor
    soma: Tensor


class WindowSampler:
    """Random training windows from either data source, reproducible from a seed.

    Every batch draws ``batch_size`` (simulation, start) pairs uniformly: simulations from all of ``data``,
    starts from ``skip_ms .. n_time − window_ms``. The draws depend on the seed and the data's sizes only, so
    :class:`NeuronIOArrays` and :class:`LazyNeuronIO` of one store give the same batches. The generator's state can
    be saved and restored (:attr:`state`), so resumed training continues the same sequence of windows.
    """

    def __init__(self, data: NeuronIOData, batch_size: int, window_ms: int = WINDOW_MS,
                 skip_ms: int | None = None, seed: int | np.random.SeedSequence = 0):
        self.skip_ms = default_skip_ms(data.n_time, window_ms) if skip_ms is None else skip_ms
        check_window(data.n_time, window_ms, 0, self.skip_ms)
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.data = data
        self.batch_size = batch_size
        self.window_ms = window_ms
        self.rng = np.random.default_rng(seed)

    @property
    def state(self) -> dict:
        """The generator's state (JSON-serialisable)."""
        return self.rng.bit_generator.state

    @state.setter
    def state(self, value: dict) -> None:
        self.rng.bit_generator.state = value

    def draw(self) -> tuple[np.ndarray, np.ndarray]:
        """int64 [B] simulation positions and int64 [B] window starts in ms."""
        sims = self.rng.integers(0, self.data.n_sims, size=self.batch_size)
        starts = self.rng.integers(self.skip_ms, self.data.n_time - self.window_ms + 1, size=self.batch_size)
        return sims, starts

    def windows(self, sims: np.ndarray, starts: np.ndarray) -> Batch:
        """The batch of windows of simulations ``sims`` [B] from ``starts`` [B] ms (CPU tensors)."""
        offsets = starts[:, None] + np.arange(self.window_ms)
        rows = sims[:, None]
        d = self.data
        return Batch(
            x=torch.from_numpy(signed_inputs(d.input_windows(sims, starts, self.window_ms), d.signs)),
            spike=torch.from_numpy(d.spike_labels[rows, offsets].astype(np.float32)),
            soma=torch.from_numpy(soma_target(d.soma_mv[rows, offsets]).astype(np.float32)),
        )

    def batch(self) -> Batch:
        """The next batch of windows (CPU tensors)."""
        return self.windows(*self.draw())
