"""What a training run needs of the machine's memory: where its data live, and whether one batch fits at all.

Both compare byte counts against :func:`conventions.machine.available_memory_bytes` (physical RAM, or the
cgroup's lower limit), the one RAM probe of the toolkit.
"""

from __future__ import annotations

import math

from biophys.dataset import NeuronIOStore
from conventions.machine import available_memory_bytes
from surrogate.config import ConfigError
from surrogate.data import in_memory_nbytes

#: "auto" holds the data in memory when it takes at most this fraction of the RAM: the rest is for the model,
#: its activations (a 500 ms batch of 1278 synapses is 20 MB as float32) and whatever else runs on the machine.
RAM_FRACTION = 0.25

#: Bytes per (window step, synapse) of a batch before the model sees it: the uint8 spike counts read and the
#: float32 signed input made from them.
BATCH_BYTES_PER_ELEMENT = 5


def choose_data_mode(requested: str, train_store: NeuronIOStore, valid_store: NeuronIOStore, world: int = 1,
                     local_world: int = 1) -> dict:
    """Where the data lives for this run: ``requested`` unless "auto", which picks "memory" when the in-memory
    arrays (uncompressed: 1 byte per ms and synapse, 5 per ms of targets) of the training store and of this
    process's share of the validation store, times the ``local_world`` processes on this machine, take at most
    :data:`RAM_FRACTION` of :func:`available_memory_bytes`, and "lazy" otherwise.

    Machines with other RAM may choose differently in one data-parallel run, which changes nothing computed.

    Returns:
        {"mode": "memory" | "lazy", "requested": requested, "in_memory_bytes": the estimate for this machine,
        "ram_bytes": the RAM it was held against}.
    """
    valid_share = math.ceil(valid_store.n_sims / world)
    need = local_world * (in_memory_nbytes(train_store) + in_memory_nbytes(valid_store, valid_share))
    ram = available_memory_bytes()
    mode = requested if requested != "auto" else "memory" if need <= RAM_FRACTION * ram else "lazy"
    return {"mode": mode, "requested": requested, "in_memory_bytes": need, "ram_bytes": ram}


def batch_nbytes(n_windows: int, n_steps: int, n_synapses: int) -> int:
    """A lower bound of the bytes one batch of ``n_windows`` × ``n_steps`` ms × ``n_synapses`` takes as input."""
    return n_windows * n_steps * n_synapses * BATCH_BYTES_PER_ELEMENT


def check_batches_fit(batch_size: int, window_ms: int, valid_batch_size: int, valid_ms: int,
                      n_synapses: int) -> None:
    """Raise ConfigError, naming the numbers, when a training batch (``batch_size`` windows of ``window_ms``) or
    a validation batch (``valid_batch_size`` simulations of ``valid_ms``) alone needs more memory than this
    process may use; checked before anything is allocated."""
    ram = available_memory_bytes()
    for option, n, steps, what in (("--batch-size", batch_size, window_ms, "windows"),
                                   ("--valid-batch-size", valid_batch_size, valid_ms, "simulations")):
        need = batch_nbytes(n, steps, n_synapses)
        if need > ram:
            raise ConfigError(f"a batch of {n:,} {what} × {steps} ms × {n_synapses} synapses needs at least "
                              f"{_size(need)}, more than the {_size(ram)} this process may use; lower {option}")


def _size(n_bytes: int) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:,.1f} {unit}"
    return f"{n_bytes / 1e3:,.1f} kB"
