"""What a ``generate`` run simulates (:class:`GenerateConfig`) and how it runs (:class:`Execution`), read from
``.json`` or ``.toml`` files whose keys are the field names (:func:`load_config`).

Every field is type-checked on construction (:func:`conventions.configkeys.check_field_types`), naming the key:
``duration_ms = "300"`` and ``[execution] workers = "2"`` are refused, not stored or failed on later.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from biophys.config import CellConfig, SimConfig
from biophys.inputs import InputConfig, n_bins
from biophys.morphology import morphology_spec
from conventions.configkeys import check_field_types, field_names, refuse_unknown_keys

BACKENDS = ("local", "dask")
#: Integration settings of generated datasets where the config gives none. benchmarks/sim_speed.py on cell1.asc
#: under NeuronIO input chose Crank–Nicolson at dt = 1/12 ms as the fastest setting within 0.5 mV somatic RMSE
#: and ≥ 95 % of the dt 0.025 ms backward-Euler baseline's spikes matched (±2 ms), with ≤ 5 % spurious ones.
#: The simulator's own default stays the reference dt 0.025 ms backward Euler.
DATASET_SIM_DEFAULTS = {"dt_ms": 1 / 12, "secondorder": 2, "engine": "coreneuron"}


@dataclass(frozen=True)
class GenerateConfig:
    """What to simulate. Field names are the keys of the config file and of the ``config`` stored with the data.

    Attributes:
        cell: which cell (see :class:`biophys.config.CellConfig`); its ``morphology`` is made explicit (see
            :func:`biophys.morphology.morphology_spec`: None becomes the cell's default, a path absolute).
        sim: how to integrate and what to record (see :class:`biophys.config.SimConfig`, incl.
            ``record_dendrites``).
        inputs: the input protocol (see :class:`biophys.inputs.InputConfig`).
        duration_ms: length of every simulation in ms (whole ms).
        n_sims: number of simulations; they are indexed 0..n_sims−1.
        base_seed: simulation k draws its input from ``SeedSequence((base_seed, k))``.
        sims_per_task: consecutive simulations per task (one shard store each).
    """

    cell: CellConfig = field(default_factory=CellConfig)
    sim: SimConfig = field(default_factory=lambda: SimConfig(**DATASET_SIM_DEFAULTS))
    inputs: InputConfig = field(default_factory=InputConfig)
    duration_ms: int = 6000
    n_sims: int = 128
    base_seed: int = 0
    sims_per_task: int = 4

    def __post_init__(self):
        # A whole number of ms given as a float (600.0) is the same duration; a fractional one is refused by
        # n_bins with its own message.
        if isinstance(self.duration_ms, float):
            n_bins(self.duration_ms)
            object.__setattr__(self, "duration_ms", int(self.duration_ms))
        check_field_types(self)
        # The explicit morphology ("cell1", "synthetic", "ball-and-stick" or an absolute path), so the config
        # stored with the data names the exact cell.
        explicit = morphology_spec(self.cell.name, self.cell.morphology)
        if explicit != self.cell.morphology:
            object.__setattr__(self, "cell", dataclasses.replace(self.cell, morphology=explicit))
        n_bins(self.duration_ms)
        for name, minimum in (("n_sims", 1), ("base_seed", 0), ("sims_per_task", 1)):
            if getattr(self, name) < minimum:
                raise ValueError(f"{name} must be a whole number ≥ {minimum}, got {getattr(self, name)!r}")

    def to_dict(self) -> dict:
        """JSON-ready dict with the field names as keys (sections for cell, sim and inputs)."""
        return {
            "cell": dataclasses.asdict(self.cell),
            "sim": dataclasses.asdict(self.sim),
            "inputs": self.inputs.to_dict(),
            "duration_ms": self.duration_ms,
            "n_sims": self.n_sims,
            "base_seed": self.base_seed,
            "sims_per_task": self.sims_per_task,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "GenerateConfig":
        """Build from a dict of the :meth:`to_dict` layout; missing keys take defaults.

        Raises:
            ValueError: unknown keys (named with their section) or invalid values.
        """
        sections = {"cell": CellConfig, "sim": SimConfig, "inputs": InputConfig}
        refuse_unknown_keys(data, field_names(cls), "config")
        kwargs = {k: v for k, v in data.items() if k not in sections}
        for name, section_cls in sections.items():
            section = data.get(name, {})
            if not isinstance(section, dict):
                raise ValueError(f"config section [{name}] must be a table of keys, got {section!r}")
            if name == "sim":
                section = {**DATASET_SIM_DEFAULTS, **section}
            refuse_unknown_keys(section, field_names(section_cls), f"section [{name}]")
            kwargs[name] = section_cls(**_match_default_types(section_cls, section))
        return cls(**kwargs)


@dataclass(frozen=True)
class Execution:
    """How to run (does not change the data, so it is not stored with them). Config-file section [execution].

    Attributes:
        workers: number of worker processes (local) or LocalCluster workers (dask without a scheduler).
        backend: "local" or "dask".
        scheduler: address of a running dask scheduler (dask only); None starts a LocalCluster.
        force_workers: allow more workers than this machine's CPUs.
        keep_shards: keep ``<out>.shards/`` after consolidation.
        progress: show a tqdm progress bar.
    """

    workers: int = 1
    backend: str = "local"
    scheduler: str | None = None
    force_workers: bool = False
    keep_shards: bool = False
    progress: bool = True

    def __post_init__(self):
        check_field_types(self)
        if self.workers < 1:
            raise ValueError(f"workers must be a whole number ≥ 1, got {self.workers!r}")
        cpus = os.cpu_count() or 1
        if self.workers > cpus and not self.force_workers and self.scheduler is None:
            raise ValueError(f"workers = {self.workers} exceeds the {cpus} CPUs of this machine; "
                             "use --force-workers to oversubscribe anyway")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.scheduler is not None and self.backend != "dask":
            raise ValueError("a scheduler address needs --backend dask")


def _match_default_types(cls, data: dict) -> dict:
    """Whole numbers given for float fields become floats, so that equal configs serialise identically."""
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    return {k: float(v) if isinstance(defaults.get(k), float) and isinstance(v, int) and not isinstance(v, bool)
            else v for k, v in data.items()}


def load_config(path: str | Path) -> tuple[GenerateConfig, Execution]:
    """Read a ``.json`` or ``.toml`` config file: GenerateConfig keys plus an optional [execution] section.

    Raises:
        ValueError: unreadable file, unknown suffix, unknown keys or invalid values (message names the file).
    """
    path = Path(path)
    try:
        if path.suffix == ".json":
            data = json.loads(path.read_text())
        elif path.suffix == ".toml":
            data = tomllib.loads(path.read_text())
        else:
            raise ValueError(f"config file must end in .json or .toml, got {path.name!r}")
    except (OSError, json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"cannot read config {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"config {path} must hold a table of keys at the top level")
    data = dict(data)
    execution = data.pop("execution", {})
    try:
        if not isinstance(execution, dict):
            raise ValueError("section [execution] must be a table of keys")
        refuse_unknown_keys(execution, field_names(Execution), "section [execution]")
        return GenerateConfig.from_dict(data), Execution(**execution)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"config {path}: {exc}") from exc
