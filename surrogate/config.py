"""The training config: one frozen record of everything that defines a run; its field names are the keys of the
run's ``config.json`` and of ``--config`` files."""

from __future__ import annotations

from dataclasses import dataclass, field

from conventions.configkeys import check_field_types, field_names, refuse_unknown_keys
from conventions.signals import BURN_IN_MS
from surrogate.data import WINDOW_MS
from surrogate.models import MODEL_KINDS

DATA_MODES = ("auto", "memory", "lazy")
DEVICES = ("auto", "cpu", "cuda")

#: Fields that say where and how a run executes, not what it computes; they may change when resuming.
#: data_mode is one: both modes hand the model the same batches (tests/surrogate/test_train.py checks a run cut in
#: one mode and resumed in the other against an uninterrupted one).
RUNTIME_FIELDS = ("out", "device", "threads", "max_wall_s", "data_mode")


class ConfigError(ValueError):
    """A TrainConfig that cannot be trained, or one that conflicts with an existing run."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run; checked on construction (ConfigError naming the field)."""

    model: str = "branch-elm"  # one of surrogate.models.MODEL_KINDS
    model_config: dict = field(default_factory=dict)  # overrides of the model's config dataclass
    train: str | None = None  # training store path
    valid: str | None = None  # validation store path
    out: str | None = None  # run directory
    epochs: int = 10
    batches_per_epoch: int = 100  # batches per epoch and process
    batch_size: int = 8  # windows per batch and process
    window_ms: int = WINDOW_MS  # training window length (1 ms steps)
    burn_in_ms: int = BURN_IN_MS  # first steps of each window (and validation simulation) left out of the loss
    skip_ms: int | None = None  # windows start at or after this time; None: 500 ms when the simulations allow
    lr: float = 5e-4  # Adam's initial learning rate, decayed to 0 by a cosine over all batches
    grad_clip_norm: float | None = None  # clip the gradients' global L2 norm to this before each step; None: don't
    seed: int = 0  # model initialisation and window sampling
    early_stopping_patience: int = 0  # stop after this many validations without improvement; 0 = never
    valid_every: int = 1  # validate every this many epochs (and always after the last)
    valid_batch_size: int = 4  # whole simulations per validation forward pass
    device: str = "auto"  # "auto" (cuda when available), "cpu" or "cuda"
    threads: int | None = None  # torch CPU threads per process; None: torch's default
    max_wall_s: float | None = None  # training-time budget of this invocation in s; stops after the batch past it
    data_mode: str = "auto"  # "memory", "lazy" (input spikes read from disk when needed) or "auto"

    def __post_init__(self) -> None:
        check_field_types(self, error=ConfigError)
        if self.model not in MODEL_KINDS:
            raise ConfigError(f"unknown model {self.model!r}; choose one of {', '.join(MODEL_KINDS)}")
        for name in ("epochs", "batches_per_epoch", "batch_size", "window_ms", "valid_every", "valid_batch_size"):
            self._require_int(name, minimum=1)
        for name in ("burn_in_ms", "early_stopping_patience", "seed"):
            self._require_int(name, minimum=0)
        if self.skip_ms is not None:
            self._require_int("skip_ms", minimum=0)
        if self.threads is not None:
            self._require_int("threads", minimum=1)
        if not self.lr > 0:
            raise ConfigError(f"lr must be a positive number, got {self.lr!r}")
        if self.grad_clip_norm is not None and not self.grad_clip_norm > 0:
            raise ConfigError(f"grad_clip_norm must be a positive number or None, got {self.grad_clip_norm!r}")
        if self.max_wall_s is not None and not self.max_wall_s > 0:
            raise ConfigError(f"max_wall_s must be a positive number of seconds, got {self.max_wall_s!r}")
        if self.data_mode not in DATA_MODES:
            raise ConfigError(f"data_mode must be one of {', '.join(DATA_MODES)}, got {self.data_mode!r}")
        if self.device not in DEVICES:
            raise ConfigError(f"device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")
        if self.burn_in_ms >= self.window_ms:
            raise ConfigError(f"burn_in_ms ({self.burn_in_ms}) must be shorter than window_ms ({self.window_ms})")

    def _require_int(self, name: str, minimum: int) -> None:
        value = getattr(self, name)
        if value < minimum:
            raise ConfigError(f"{name} must be an integer ≥ {minimum}, got {value!r}")

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        """Build from a dict of field values; unknown keys raise ConfigError naming them."""
        refuse_unknown_keys(values, field_names(cls), "the training config", ConfigError)
        return cls(**values)

    def require_paths(self) -> None:
        """Raise ConfigError naming the first of the paths training needs (train, valid, out) that is not given."""
        for name in ("train", "valid", "out"):
            if not getattr(self, name):
                raise ConfigError(f"no {name} path given (--{name})")
