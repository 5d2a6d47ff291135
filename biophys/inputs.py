"""The NeuronIO input protocol: random, slowly varying spike trains for every dendritic segment.

One simulation's input is drawn in three steps (Beniaguev, Segev & London 2021; numbers in :class:`InputConfig`):

1. Block rates. Time is cut into blocks of one length (a choice plus a jitter, drawn once per simulation).
   In every block each tree (basal, apical) gets an excitatory rate, uniform in its range, and an inhibitory
   rate, uniform in ``[max(0, exc + inh_offset_low), exc + inh_offset_high]``, both in total spikes per tree
   per 100 ms. A tree's rate is spread over its segments in proportion to segment length plus
   ``length_offset_um``, times a per-segment, per-block uniform factor.
2. Smoothing. The block-constant per-segment rates are convolved in time with a normalised Gaussian of width σ
   (a choice plus a jitter, once per simulation) over a window of ``1 + window_sigmas·σ`` ms.
3. Spikes. In every 1 ms bin a channel draws p ~ Exponential(mean = its smoothed rate) and spikes if a uniform
   number falls below p, so there is at most one spike per channel per bin.

Everything is vectorised NumPy driven by one :class:`numpy.random.Generator`, consumed in a fixed order, so an
input is a pure function of the config, the segment table, the duration and the generator's seed.
:func:`spike_matrix_to_times` turns a matrix of counts per bin into the event times a simulator delivers.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy.signal import fftconvolve

#: Width of one input bin in ms (spikes are delivered at integer ms).
BIN_MS = 1.0
_EDGE_MODES = ("extend", "zero")


def _default_exc_ranges() -> dict[str, tuple[float, float]]:
    return {"basal": (0.0, 800.0), "apical": (0.0, 800.0)}


@dataclass(frozen=True)
class InputConfig:
    """Every number of the NeuronIO input protocol. Field names are the keys of the saved JSON.

    Attributes:
        exc_spikes_per_100ms: tree name → (low, high) range of the excitatory block rate, in total spikes per
            tree per 100 ms. Every tree of the cell's segments must have an entry.
        inh_offset_low_per_100ms: the inhibitory block rate's lower bound is ``max(0, exc + this)``
            (spikes per tree per 100 ms).
        inh_offset_high_per_100ms: the inhibitory block rate's upper bound is ``exc + this``
            (spikes per tree per 100 ms).
        block_ms_choices: block lengths (ms) to choose from, one per simulation.
        block_jitter_ms: the chosen block length gets a uniform jitter in ``[−this, +this]`` ms and is then
            rounded to whole ms.
        sigma_ms_choices: Gaussian smoothing widths σ (ms) to choose from, one per simulation.
        sigma_jitter_ms: the chosen σ gets a uniform jitter in ``[−this, +this]`` ms.
        window_sigmas: the smoothing window spans ``1 + window_sigmas·σ`` ms.
        length_offset_um: added to every segment's length (µm) before rates are spread by length.
        segment_factor_range: (low, high) of the per-segment, per-block multiplicative rate factor.
        smoothing_edges: ``"extend"`` draws rate blocks beyond both ends of the simulation so the smoothed rate
            is stationary up to the edges; ``"zero"`` pads the block rates with zeros as the original
            generator did, so rates fade over the first and last half window.
    """

    exc_spikes_per_100ms: dict[str, tuple[float, float]] = field(default_factory=_default_exc_ranges)
    inh_offset_low_per_100ms: float = -600.0
    inh_offset_high_per_100ms: float = 200.0
    block_ms_choices: tuple[float, ...] = (25, 30, 35, 40, 45, 55, 60, 65, 70, 75, 80, 85, 90, 100, 150, 200,
                                           300, 450)
    block_jitter_ms: float = 20.0
    sigma_ms_choices: tuple[float, ...] = (25, 30, 35, 40, 50, 60, 80, 100, 150, 200, 300, 400, 500, 600)
    sigma_jitter_ms: float = 20.0
    window_sigmas: float = 7.0
    length_offset_um: float = 10.0
    segment_factor_range: tuple[float, float] = (0.5, 1.5)
    smoothing_edges: str = "extend"

    def __post_init__(self):
        # JSON and TOML give lists; store tuples so configs compare and serialise the same way.
        if not isinstance(self.exc_spikes_per_100ms, dict) or not self.exc_spikes_per_100ms:
            raise ValueError("exc_spikes_per_100ms must map tree names to (low, high) rate ranges")
        ranges = {str(k): _pair(f"exc_spikes_per_100ms[{k!r}]", v) for k, v in self.exc_spikes_per_100ms.items()}
        object.__setattr__(self, "exc_spikes_per_100ms", ranges)
        object.__setattr__(self, "block_ms_choices", _choices("block_ms_choices", self.block_ms_choices))
        object.__setattr__(self, "sigma_ms_choices", _choices("sigma_ms_choices", self.sigma_ms_choices))
        object.__setattr__(self, "segment_factor_range", _pair("segment_factor_range", self.segment_factor_range))
        for name in ("inh_offset_low_per_100ms", "inh_offset_high_per_100ms", "block_jitter_ms", "sigma_jitter_ms",
                     "window_sigmas", "length_offset_um"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
            object.__setattr__(self, name, float(value))
        self._check()

    def _check(self) -> None:
        for tree, (low, high) in self.exc_spikes_per_100ms.items():
            if low < 0:
                raise ValueError(f"exc_spikes_per_100ms[{tree!r}]: rates cannot be negative, got low = {low}")
            if low + self.inh_offset_high_per_100ms < 0:
                raise ValueError(f"inh_offset_high_per_100ms = {self.inh_offset_high_per_100ms} leaves no valid "
                                 f"inhibitory rate when the {tree} excitatory rate is {low}")
        if self.inh_offset_low_per_100ms > self.inh_offset_high_per_100ms:
            raise ValueError(f"inh_offset_low_per_100ms ({self.inh_offset_low_per_100ms}) exceeds "
                             f"inh_offset_high_per_100ms ({self.inh_offset_high_per_100ms})")
        for name in ("block_jitter_ms", "sigma_jitter_ms", "length_offset_um"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} cannot be negative, got {getattr(self, name)}")
        if min(self.block_ms_choices) - self.block_jitter_ms < 1:
            raise ValueError(f"block lengths must stay ≥ 1 ms: smallest choice {min(self.block_ms_choices)} ms "
                             f"minus jitter {self.block_jitter_ms} ms is below 1 ms")
        if min(self.sigma_ms_choices) - self.sigma_jitter_ms <= 0:
            raise ValueError(f"smoothing σ must stay > 0 ms: smallest choice {min(self.sigma_ms_choices)} ms "
                             f"minus jitter {self.sigma_jitter_ms} ms is not positive")
        if self.window_sigmas <= 0:
            raise ValueError(f"window_sigmas must be positive, got {self.window_sigmas}")
        if self.segment_factor_range[0] < 0:
            raise ValueError(f"segment_factor_range cannot be negative, got {self.segment_factor_range}")
        if self.smoothing_edges not in _EDGE_MODES:
            raise ValueError(f"smoothing_edges must be one of {_EDGE_MODES}, got {self.smoothing_edges!r}")

    def to_dict(self) -> dict:
        """JSON-ready dict (tuples become lists) whose keys are the field names."""
        d = asdict(self)
        d["exc_spikes_per_100ms"] = {k: list(v) for k, v in self.exc_spikes_per_100ms.items()}
        for name in ("block_ms_choices", "sigma_ms_choices", "segment_factor_range"):
            d[name] = list(d[name])
        return d


def _pair(name: str, value) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (low, high) pair of numbers, got {value!r}") from None
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise ValueError(f"{name} must be a finite (low, high) pair with low ≤ high, got {value!r}")
    return low, high


def _choices(name: str, values) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a list of numbers, got {values!r}") from None
    if not out or not all(math.isfinite(v) and v > 0 for v in out):
        raise ValueError(f"{name} must be a non-empty list of positive numbers (ms), got {values!r}")
    return out


@dataclass(frozen=True)
class InputRates:
    """The rates behind one simulation's input (everything drawn before the spikes).

    Attributes:
        block_ms: block length in ms.
        sigma_ms: smoothing σ in ms.
        window_ms: smoothing window length in ms.
        trees: tree names, the row order of the per-tree rates.
        block_start_ms: int [n_block] start of every block in ms (negative before t = 0 when edges extend).
        exc_per_100ms: float [n_tree, n_block] excitatory rate per tree, total spikes per 100 ms.
        inh_per_100ms: float [n_tree, n_block] inhibitory rate per tree, total spikes per 100 ms.
        rate_per_ms: float32 [2·n_segment, T] smoothed expected rate of every channel per 1 ms bin
            (excitatory channels, then inhibitory, in segment order).
    """

    block_ms: int
    sigma_ms: float
    window_ms: int
    trees: tuple[str, ...]
    block_start_ms: np.ndarray
    exc_per_100ms: np.ndarray
    inh_per_100ms: np.ndarray
    rate_per_ms: np.ndarray


def n_bins(duration_ms: float) -> int:
    """Number of 1 ms input bins of a simulation lasting ``duration_ms`` (must be a positive whole number)."""
    if not (math.isfinite(duration_ms) and duration_ms > 0 and float(duration_ms) == int(duration_ms)):
        raise ValueError(f"duration_ms must be a positive whole number of ms, got {duration_ms!r}")
    return int(round(duration_ms / BIN_MS))


def _segment_arrays(cfg: InputConfig, segments: pd.DataFrame) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """(trees present in config order, tree index [n_seg], adjusted length µm [n_seg]) with checks."""
    missing = [c for c in ("tree", "length_um") if c not in segments.columns]
    if missing:
        raise ValueError(f"segment table lacks columns {missing}; it needs 'tree' and 'length_um'")
    if len(segments) == 0:
        raise ValueError("segment table is empty: the cell has no dendritic segments to drive")
    tree_names = segments["tree"].astype(str).to_numpy()
    unknown = sorted(set(tree_names) - set(cfg.exc_spikes_per_100ms))
    if unknown:
        raise ValueError(f"segments on trees {unknown} have no rate range in exc_spikes_per_100ms "
                         f"(configured: {sorted(cfg.exc_spikes_per_100ms)})")
    lengths = segments["length_um"].to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(lengths)) or np.any(lengths < 0):
        raise ValueError("segment lengths must be finite and non-negative (µm)")
    trees = tuple(t for t in cfg.exc_spikes_per_100ms if t in set(tree_names))
    position = {t: i for i, t in enumerate(trees)}
    tree_index = np.array([position[t] for t in tree_names], dtype=np.int64)
    adjusted = lengths + cfg.length_offset_um
    for i, t in enumerate(trees):
        if adjusted[tree_index == i].sum() <= 0:
            raise ValueError(f"tree {t!r} has zero total adjusted length; rates cannot be spread over it")
    return trees, tree_index, adjusted


def gaussian_window(sigma_ms: float, window_sigmas: float) -> np.ndarray:
    """float64 [n] normalised Gaussian of width ``sigma_ms`` over ``n = round(1 + window_sigmas·σ)`` 1 ms bins."""
    n = max(1, int(round(1 + window_sigmas * sigma_ms)))
    t = np.arange(n) - (n - 1) / 2.0
    w = np.exp(-0.5 * (t / sigma_ms) ** 2)
    return w / w.sum()


def draw_rates(cfg: InputConfig, segments: pd.DataFrame, duration_ms: float, rng: np.random.Generator) -> InputRates:
    """Draw block rates and smooth them into per-channel rates (steps 1–2 of the protocol).

    Args:
        cfg: the protocol's numbers.
        segments: one row per dendritic segment in input order, columns ``tree`` and ``length_um`` (µm).
        duration_ms: simulation length in ms (whole ms).
        rng: the simulation's generator; consumed in a fixed order.
    Returns:
        :class:`InputRates`, whose ``rate_per_ms`` is float32 [2·n_segment, T] in expected spikes per 1 ms bin.
    """
    n_time = n_bins(duration_ms)
    trees, tree_index, adjusted = _segment_arrays(cfg, segments)
    n_seg = len(adjusted)

    block_ms = max(1, int(round(rng.choice(cfg.block_ms_choices) + rng.uniform(-1, 1) * cfg.block_jitter_ms)))
    sigma_ms = float(rng.choice(cfg.sigma_ms_choices) + rng.uniform(-1, 1) * cfg.sigma_jitter_ms)
    window = gaussian_window(sigma_ms, cfg.window_sigmas)
    pad_left = (len(window) - 1) // 2
    pad_right = len(window) - 1 - pad_left

    if cfg.smoothing_edges == "extend":
        first_ms, span_ms = -pad_left, n_time + len(window) - 1
    else:
        first_ms, span_ms = 0, n_time
    n_block = -(-span_ms // block_ms)
    block_start = first_ms + block_ms * np.arange(n_block)

    low = np.array([cfg.exc_spikes_per_100ms[t][0] for t in trees])[:, None]
    high = np.array([cfg.exc_spikes_per_100ms[t][1] for t in trees])[:, None]
    exc = rng.uniform(low, high, size=(len(trees), n_block))
    inh = rng.uniform(np.maximum(0.0, exc + cfg.inh_offset_low_per_100ms), exc + cfg.inh_offset_high_per_100ms)

    # Spikes per 100 ms per tree → expected spikes per µm (adjusted) per ms, then per segment.
    tree_length = np.bincount(tree_index, weights=adjusted, minlength=len(trees))
    per_um_ms = np.concatenate([exc, inh]) / np.tile(tree_length * 100.0, 2)[:, None]
    rows = np.r_[tree_index, tree_index + len(trees)]
    f_low, f_high = cfg.segment_factor_range
    factors = rng.uniform(f_low, f_high, size=(2 * n_seg, n_block))
    block_rates = per_um_ms[rows] * np.r_[adjusted, adjusted][:, None] * factors

    rates = np.repeat(block_rates.astype(np.float32), block_ms, axis=1)[:, :span_ms]
    if cfg.smoothing_edges == "zero":
        rates = np.pad(rates, ((0, 0), (pad_left, pad_right)))
    smoothed = fftconvolve(rates, window.astype(np.float32)[None, :], mode="valid", axes=1)
    # FFT round-off leaves values of order −1e-9 where the rate is zero; rates cannot be negative.
    np.maximum(smoothed, 0.0, out=smoothed)
    return InputRates(block_ms=block_ms, sigma_ms=sigma_ms, window_ms=len(window), trees=trees,
                      block_start_ms=block_start, exc_per_100ms=exc, inh_per_100ms=inh,
                      rate_per_ms=smoothed.astype(np.float32, copy=False))


def draw_spikes(rate_per_ms: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Step 3: uint8 [n_channel, T] spikes; bin spikes where uniform < p, p ~ Exponential(mean = rate)."""
    p = rng.standard_exponential(rate_per_ms.shape, dtype=np.float32)
    p *= rate_per_ms
    return (rng.random(rate_per_ms.shape, dtype=np.float32) < p).astype(np.uint8)


def draw_inputs(cfg: InputConfig, segments: pd.DataFrame, duration_ms: float, rng: np.random.Generator) -> np.ndarray:
    """One simulation's input: uint8 [2·n_segment, T] spikes per 1 ms bin, excitatory channels then inhibitory.

    Equals ``draw_spikes(draw_rates(cfg, segments, duration_ms, rng).rate_per_ms, rng)`` with the same
    generator; see the module docstring for the protocol.
    """
    return draw_spikes(draw_rates(cfg, segments, duration_ms, rng).rate_per_ms, rng)


def spike_matrix_to_times(input_spikes: np.ndarray) -> list[np.ndarray]:
    """uint8/bool [n_synapses, T] counts per 1 ms bin → per-synapse float64 spike times (ms); a count c in
    bin k gives c events at t = k ms."""
    counts = np.asarray(input_spikes)
    if counts.ndim != 2:
        raise ValueError(f"input_spikes must be [n_synapses, T], got shape {counts.shape}")
    if counts.size and counts.min() < 0:
        raise ValueError("input_spikes must be non-negative counts")
    rows, bins = np.nonzero(counts)
    reps = counts[rows, bins].astype(np.int64)
    rows, bins = np.repeat(rows, reps), np.repeat(bins, reps)
    splits = np.searchsorted(rows, np.arange(1, counts.shape[0]))
    return [b.astype(np.float64) for b in np.split(bins, splits)]
