"""Train a surrogate on NeuronIO windows into a run directory; single process, or data-parallel under torchrun.

    python -m surrogate train --model branch-elm --train TRAIN.zarr --valid VALID.zarr --out runs/x
    torchrun --nproc_per_node 2 -m surrogate train ...

Conventions (shared/specs/elm.md): loss = 0.5 · BCE-with-logits(spike) + 0.5 · MSE(scaled soma) over the steps
after each window's burn-in; Adam with a cosine decay of the learning rate to 0 over all batches; validation on
whole validation simulations (loss, spike ROC AUC, soma RMSE in mV on the clipped voltage); the best weights by
validation loss are kept as an independent copy.

Data: in memory, or with ``data_mode = "lazy"`` read from the stores on demand (a window per draw, a few whole
simulations per validation batch); see :func:`choose_data_mode` for "auto". Both modes train bit-identical models
(the windows drawn do not depend on the mode), so a resumed run may change it.

Data parallel: every process holds (or reads) the training data, draws its own windows from a generator seeded by
(seed, rank) and trains the same model (DDP averages gradients), so one step sees world_size × batch_size
windows. Validation simulations are split over the processes and the predictions gathered, so every process
computes the same metrics and takes the same early-stopping decision. Only rank 0 writes the run directory.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch import Tensor, nn
from tqdm import tqdm

from conventions.configkeys import field_names, refuse_unknown_keys
from biophys.dataset import NeuronIOStore, StoreError
from conventions.provenance import provenance
from surrogate import run as rundir
from surrogate.data import (BURN_IN_MS, WINDOW_MS, LazyNeuronIO, NeuronIOArrays, NeuronIOData, WindowSampler,
                            check_window, clip_soma, default_skip_ms, in_memory_nbytes, predict_arrays,
                            soma_from_target, soma_target)
from surrogate.models import MODEL_KINDS, build_model, config_to_dict


class ConfigError(ValueError):
    """A TrainConfig that cannot be trained, or one that conflicts with an existing run."""


class TrainingError(RuntimeError):
    """Training failed numerically (a non-finite loss)."""


@dataclass
class TrainConfig:
    """Everything that defines a training run; the field names are the keys of the run's config.json."""

    model: str = "branch-elm"  # one of surrogate.models.MODEL_KINDS
    model_config: dict = field(default_factory=dict)  # overrides of the model's config dataclass
    train: str = ""  # training store path
    valid: str = ""  # validation store path
    out: str = ""  # run directory
    epochs: int = 10
    batches_per_epoch: int = 100  # batches per epoch and process
    batch_size: int = 8  # windows per batch and process
    window_ms: int = WINDOW_MS  # training window length (1 ms steps)
    burn_in_ms: int = BURN_IN_MS  # first steps of each window (and validation simulation) left out of the loss
    skip_ms: int | None = None  # windows start at or after this time; None: 500 ms when the simulations allow
    lr: float = 5e-4  # Adam's initial learning rate, decayed to 0 by a cosine over all batches
    seed: int = 0  # model initialisation and window sampling
    early_stopping_patience: int = 0  # stop after this many validations without improvement; 0 = never
    valid_every: int = 1  # validate every this many epochs (and always after the last)
    valid_batch_size: int = 4  # whole simulations per validation forward pass
    device: str = "auto"  # "auto" (cuda when available), "cpu" or "cuda"
    threads: int | None = None  # torch CPU threads per process; None: torch's default
    max_wall_s: float | None = None  # training-time budget of this invocation in s; stops after the batch past it
    data_mode: str = "auto"  # "memory", "lazy" (input spikes read from disk when needed) or "auto": choose_data_mode

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        """Build from a dict of field values; unknown keys raise ConfigError naming them."""
        refuse_unknown_keys(values, field_names(cls), "the training config", ConfigError)
        return cls(**values)

    def check(self) -> None:
        """Raise ConfigError naming the first field whose value cannot be trained with."""
        if self.model not in MODEL_KINDS:
            raise ConfigError(f"unknown model {self.model!r}; choose one of {', '.join(MODEL_KINDS)}")
        if not isinstance(self.model_config, dict):
            raise ConfigError(f"model_config must be a dict, got {type(self.model_config).__name__}")
        for name in ("train", "valid", "out"):
            if not getattr(self, name):
                raise ConfigError(f"no {name} path given")
        for name in ("epochs", "batches_per_epoch", "batch_size", "window_ms", "valid_every", "valid_batch_size"):
            _require_int(self, name, minimum=1)
        for name in ("burn_in_ms", "early_stopping_patience", "seed"):
            _require_int(self, name, minimum=0)
        if self.skip_ms is not None:
            _require_int(self, "skip_ms", minimum=0)
        if self.threads is not None:
            _require_int(self, "threads", minimum=1)
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ConfigError(f"lr must be a positive number, got {self.lr!r}")
        if self.max_wall_s is not None and not (isinstance(self.max_wall_s, (int, float)) and self.max_wall_s > 0):
            raise ConfigError(f"max_wall_s must be a positive number of seconds, got {self.max_wall_s!r}")
        if self.data_mode not in DATA_MODES:
            raise ConfigError(f"data_mode must be one of {', '.join(DATA_MODES)}, got {self.data_mode!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("device 'cuda' requested but torch sees no CUDA device")
        if self.burn_in_ms >= self.window_ms:
            raise ConfigError(f"burn_in_ms ({self.burn_in_ms}) must be shorter than window_ms ({self.window_ms})")


DATA_MODES = ("auto", "memory", "lazy")

#: Fields that say where and how a run executes, not what it computes; they may change when resuming.
#: data_mode is one: both modes hand the model the same batches (tests/surrogate/test_train.py checks a run cut in
#: one mode and resumed in the other against an uninterrupted one).
RUNTIME_FIELDS = ("out", "device", "threads", "max_wall_s", "data_mode")

#: "auto" holds the data in memory when it takes at most this fraction of the RAM: the rest is for the model,
#: its activations (a 500 ms batch of 1278 synapses is 20 MB as float32) and whatever else runs on the machine.
RAM_FRACTION = 0.25


def _require_int(cfg: TrainConfig, name: str, minimum: int) -> None:
    value = getattr(cfg, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer ≥ {minimum}, got {value!r}")


def _cgroup_memory_limit(proc_cgroup: Path = Path("/proc/self/cgroup"),
                         root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """The memory limit in bytes of this process's cgroup (v2 ``memory.max`` or v1 ``memory.limit_in_bytes``);
    None when there is none or it cannot be read."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        hierarchy, controllers, path = line.split(":", 2)
        if hierarchy == "0" and not controllers:
            limit = root / path.lstrip("/") / "memory.max"
        elif "memory" in controllers.split(","):
            limit = root / "memory" / path.lstrip("/") / "memory.limit_in_bytes"
        else:
            continue
        try:
            text = limit.read_text().strip()
        except OSError:
            continue
        if text.isdigit():  # "max" (v2) means no limit
            return int(text)
    return None


def ram_bytes() -> int:
    """The memory this process may use in bytes: physical RAM, or its cgroup's limit when lower (a SLURM job or a
    container is often allowed much less than its node has)."""
    physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    limit = _cgroup_memory_limit()
    return physical if limit is None else min(physical, limit)


def choose_data_mode(requested: str, train_store: NeuronIOStore, valid_store: NeuronIOStore, world: int = 1,
                     local_world: int = 1) -> dict:
    """Where the data lives for this run: ``requested`` unless "auto", which picks "memory" when the in-memory
    arrays (uncompressed: 1 byte per ms and synapse, 5 per ms of targets) of the training store and of this
    process's share of the validation store, times the ``local_world`` processes on this machine, take at most
    :data:`RAM_FRACTION` of :func:`ram_bytes`, and "lazy" otherwise.

    Machines with other RAM may choose differently in one data-parallel run, which changes nothing computed.

    Returns:
        {"mode": "memory" | "lazy", "requested": requested, "in_memory_bytes": the estimate for this machine,
        "ram_bytes": the RAM it was held against}.
    """
    valid_share = math.ceil(valid_store.n_sims / world)
    need = local_world * (in_memory_nbytes(train_store) + in_memory_nbytes(valid_store, valid_share))
    ram = ram_bytes()
    mode = requested if requested != "auto" else "memory" if need <= RAM_FRACTION * ram else "lazy"
    return {"mode": mode, "requested": requested, "in_memory_bytes": need, "ram_bytes": ram}


def window_loss(y: Tensor, spike: Tensor, soma: Tensor, burn_in_ms: int) -> Tensor:
    """0.5 · BCE-with-logits(spike) + 0.5 · MSE(scaled soma), averaged over steps t ≥ burn_in_ms.

    Args:
        y: [B, T, 2] model output (spike logit, scaled soma).
        spike: [B, T] spike labels 0/1.
        soma: [B, T] scaled soma target (see surrogate.data.soma_target).
    """
    y, spike, soma = y[:, burn_in_ms:], spike[:, burn_in_ms:], soma[:, burn_in_ms:]
    return 0.5 * F.binary_cross_entropy_with_logits(y[..., 0], spike) + 0.5 * F.mse_loss(y[..., 1], soma)


def validation_metrics(y: np.ndarray, data: NeuronIOData, burn_in_ms: int) -> dict:
    """Loss, spike ROC AUC and soma RMSE (mV, clipped voltage) of whole-simulation outputs y [N, T, 2].

    The AUC is NaN when the validation labels after the burn-in hold a single class.
    """
    labels = data.spike_labels[:, burn_in_ms:]
    loss = window_loss(torch.from_numpy(y), torch.from_numpy(data.spike_labels.astype(np.float32)),
                       torch.from_numpy(soma_target(data.soma_mv).astype(np.float32)), burn_in_ms)
    error_mv = soma_from_target(y[:, burn_in_ms:, 1].astype(np.float64)) - clip_soma(data.soma_mv[:, burn_in_ms:])
    single_class = labels.all() or not labels.any()
    auc = math.nan if single_class else float(roc_auc_score(labels.ravel(), y[:, burn_in_ms:, 0].ravel()))
    return {"valid_loss": float(loss), "valid_auc": auc, "valid_rmse_mv": float(np.sqrt(np.mean(error_mv**2)))}


def snapshot_state(model: nn.Module) -> dict[str, Tensor]:
    """An independent CPU copy of ``model``'s state_dict: later training steps do not change it."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


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


@dataclass
class _Dist:
    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def _setup(cfg: TrainConfig) -> _Dist:
    """Pick the device and, under torchrun (WORLD_SIZE > 1), join the process group (nccl on GPU, else gloo)."""
    use_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return _Dist(0, 1, torch.device("cuda" if use_cuda else "cpu"))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return _Dist(rank, world, device)


def _resolve(cfg: TrainConfig, train_store: NeuronIOStore, valid_store: NeuronIOStore) -> tuple[TrainConfig, nn.Module]:
    """Check the config against the stores; return it with absolute paths, the skip and the full model config
    filled in, and the freshly initialised model (seeded by cfg.seed)."""
    if valid_store.n_synapses != train_store.n_synapses or not np.array_equal(valid_store.signs, train_store.signs):
        raise StoreError(f"the validation store {valid_store.path} has other synapses ({valid_store.n_synapses}) "
                         f"than the training store {train_store.path} ({train_store.n_synapses})")
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
        model = build_model(cfg.model, {**cfg.model_config, "n_inputs": n_inputs})
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
    return resolved, model


def _check_resume(cfg: dict, saved: dict, out: Path) -> None:
    diffs = [f"{k}: run has {saved.get(k)!r}, now {cfg.get(k)!r}"
             for k in sorted(set(cfg) | set(saved)) if k not in RUNTIME_FIELDS and cfg.get(k) != saved.get(k)]
    if diffs:
        raise ConfigError(f"cannot resume {out} with a different config ({'; '.join(diffs)}); "
                          "start a new run directory instead")


def _prepare_out(cfg: dict, resume: bool) -> dict | None:
    """Check the run directory; return the checkpoint to resume from (None for a fresh run)."""
    out = Path(cfg["out"])
    if resume:
        path = out / rundir.CHECKPOINT_FILE
        if not path.exists():
            raise rundir.RunError(f"cannot resume: {path} does not exist")
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        _check_resume(cfg, checkpoint["config"], out)
        return checkpoint
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise rundir.RunError(f"{out} already exists and is not empty; pass --resume to continue that run or "
                              "choose another --out")
    return None


def _gather(d: _Dist, obj) -> list:
    if not d.active:
        return [obj]
    parts = [None] * d.world
    dist.all_gather_object(parts, obj)
    return parts


def _mean_across(d: _Dist, total: float, count: int) -> float:
    if d.active:
        t = torch.tensor([total, count], dtype=torch.float64, device=d.device)  # nccl reduces GPU tensors only
        dist.all_reduce(t)
        total, count = float(t[0]), int(t[1])
    return total / max(count, 1)


class _Trainer:
    """State of one training invocation; rank 0 writes the run directory."""

    def __init__(self, cfg: TrainConfig, model: nn.Module, d: _Dist, stores: tuple[NeuronIOStore, NeuronIOStore],
                 checkpoint: dict | None, progress: bool):
        self.cfg, self.d, self.progress = cfg, d, progress
        # config.json keeps the first invocation's config; a resumed run only changes RUNTIME_FIELDS
        self.config = checkpoint["config"] if checkpoint else dataclasses.asdict(cfg)
        self.out = Path(cfg.out)
        train_store, valid_store = stores
        self.records = {"train": store_record(train_store), "valid": store_record(valid_store)}
        if valid_store.n_sims < d.world:
            raise ConfigError(f"{valid_store.n_sims} validation simulations cannot be split over {d.world} processes")
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        self.data_mode = choose_data_mode(cfg.data_mode, train_store, valid_store, d.world, local_world)
        source = NeuronIOArrays if self.data_mode["mode"] == "memory" else LazyNeuronIO
        self.train_data = source.from_store(train_store)
        self.valid_data = source.from_store(valid_store, np.arange(d.rank, valid_store.n_sims, d.world))
        if d.main:
            tqdm.write(f"data: {self.data_mode['mode']} (requested {cfg.data_mode}; in memory it would take "
                       f"{self.data_mode['in_memory_bytes'] / 1e9:.2f} GB of {self.data_mode['ram_bytes'] / 1e9:.1f} "
                       "GB RAM)", file=sys.stderr)
        self.model = model.to(d.device)
        device_ids = [d.device.index] if d.device.type == "cuda" else None
        self.ddp = nn.parallel.DistributedDataParallel(model, device_ids=device_ids) if d.active else model
        self.optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        self.total_steps = cfg.epochs * cfg.batches_per_epoch
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=self.total_steps, eta_min=0.0)
        self.sampler = WindowSampler(self.train_data, cfg.batch_size, cfg.window_ms, cfg.skip_ms,
                                     np.random.SeedSequence([cfg.seed, d.rank]))
        self.epoch, self.next_batch, self.step = 0, 0, 0
        self.history: list[dict] = []
        self.best: dict | None = None  # {"epoch", "metrics", "state"}
        self.bad_validations = 0
        self.wall_before = 0.0
        self.status = "running"
        if checkpoint is not None:
            self._restore(checkpoint)

    def _restore(self, ck: dict) -> None:
        if ck["world_size"] != self.d.world:
            raise ConfigError(f"the checkpoint was written by {ck['world_size']} processes, now {self.d.world}; "
                              "resume with the same number of processes")
        self.model.load_state_dict(ck["model"])
        self.optimizer.load_state_dict(ck["optimizer"])
        self.scheduler.load_state_dict(ck["scheduler"])
        self.epoch, self.next_batch, self.step = ck["epoch"], ck["next_batch"], ck["step"]
        self.history, self.best = ck["history"], ck["best"]
        self.bad_validations, self.wall_before = ck["bad_validations"], ck["wall_s"]
        self.status = "running" if ck["status"] == "wall_budget" else ck["status"]
        torch.set_rng_state(ck["rng"]["torch"])
        if self.d.device.type == "cuda" and ck["rng"]["cuda"] is not None:
            torch.cuda.set_rng_state(ck["rng"]["cuda"], self.d.device)
        self.sampler.state = ck["rng"]["samplers"][self.d.rank]

    def wall_s(self) -> float:
        return self.wall_before + time.monotonic() - self.t0

    def run(self) -> None:
        self.t0 = time.monotonic()
        if self.status != "running":
            if self.d.main:
                tqdm.write(f"{self.out} is already {self.status}; nothing to resume", file=sys.stderr)
            return
        cfg = self.cfg
        while self.epoch < cfg.epochs:
            train_loss, batches, out_of_time = self._train_epoch()
            self.next_batch += batches
            epoch_done = self.next_batch == cfg.batches_per_epoch
            last = self.epoch + 1 == cfg.epochs and epoch_done
            record = {"epoch": self.epoch + 1, "step": self.step, "batches": batches, "train_loss": train_loss,
                      "valid_loss": None, "valid_auc": None, "valid_rmse_mv": None,
                      "lr": self.optimizer.param_groups[0]["lr"]}
            if not math.isfinite(train_loss):
                raise TrainingError(f"training diverged: the training loss is {train_loss} in epoch {self.epoch + 1}; "
                                    "try a lower --lr")
            patience_ran_out = False
            if last or out_of_time or (epoch_done and (self.epoch + 1) % cfg.valid_every == 0):
                patience_ran_out = self._validate(record)
            record["wall_s"] = self.wall_s()
            self.history.append(record)
            if epoch_done:
                self.epoch, self.next_batch = self.epoch + 1, 0
            if self.epoch == cfg.epochs:
                self.status = "finished"
            elif patience_ran_out:
                self.status = "early_stopped"
            elif out_of_time:
                self.status = "wall_budget"
            self._save()
            if self.status != "running":
                break

    def _train_epoch(self) -> tuple[float, int, bool]:
        """Train the rest of the current epoch; returns (mean loss over processes, batches run, out of time)."""
        cfg, d = self.cfg, self.d
        self.ddp.train()
        total, count, out_of_time = 0.0, 0, False
        bar = tqdm(range(self.next_batch, cfg.batches_per_epoch), desc=f"epoch {self.epoch + 1}/{cfg.epochs}",
                   disable=not (d.main and self.progress), leave=False, dynamic_ncols=True)
        for _ in bar:
            x, spike, soma = (t.to(d.device, non_blocking=True) for t in self.sampler.batch())
            loss = window_loss(self.ddp(x), spike, soma, cfg.burn_in_ms)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            self.step += 1
            value = loss.item()
            total, count = total + value, count + 1
            bar.set_postfix(loss=f"{value:.4f}")
            if cfg.max_wall_s is not None and self._agree(time.monotonic() - self.t0 > cfg.max_wall_s):
                out_of_time = True
                break
        bar.close()
        return _mean_across(d, total, count), count, out_of_time

    def _agree(self, flag: bool) -> bool:
        """True when any process raises ``flag`` (so all processes stop after the same batch)."""
        if not self.d.active:
            return flag
        t = torch.tensor([float(flag)], device=self.d.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def _validate(self, record: dict) -> bool:
        """Fill the validation metrics into ``record``, update the best weights; True when patience ran out."""
        cfg = self.cfg
        y = predict_arrays(self.model, self.valid_data, cfg.valid_batch_size, self.d.device)
        parts = _gather(self.d, (y, self.valid_data.spike_labels, self.valid_data.soma_mv))
        data = dataclasses.replace(
            self.valid_data,
            spike_labels=np.concatenate([p[1] for p in parts]),
            soma_mv=np.concatenate([p[2] for p in parts]),
        )
        metrics = validation_metrics(np.concatenate([p[0] for p in parts]), data, cfg.burn_in_ms)
        record.update(metrics)
        if self.best is None or metrics["valid_loss"] < self.best["metrics"]["valid_loss"]:
            self.best = {"epoch": record["epoch"], "step": self.step,
                         "metrics": {**metrics, "train_loss": record["train_loss"]},
                         "state": snapshot_state(self.model)}
            self.bad_validations = 0
        else:
            self.bad_validations += 1
        if self.d.main:
            tqdm.write(f"epoch {record['epoch']}: train loss {record['train_loss']:.4f}, valid loss "
                       f"{metrics['valid_loss']:.4f}, AUC {metrics['valid_auc']:.4f}, "
                       f"RMSE {metrics['valid_rmse_mv']:.3f} mV", file=sys.stderr)
        patience = cfg.early_stopping_patience
        return patience > 0 and self.bad_validations >= patience

    def _save(self) -> None:
        """Write checkpoint, weights, history, metrics, config and curves (rank 0; all processes join the gather).

        The checkpoint goes first: a process killed while saving leaves a run that ``--resume`` can continue.
        """
        samplers = _gather(self.d, self.sampler.state)
        if not self.d.main:
            return
        rundir.save_torch(self.out / rundir.CHECKPOINT_FILE, {
            "config": self.config,
            "model": snapshot_state(self.model),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": self.epoch,
            "next_batch": self.next_batch,
            "step": self.step,
            "rng": {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state(self.d.device) if self.d.device.type == "cuda" else None,
                    "samplers": samplers},
            "world_size": self.d.world,
            "history": self.history,
            "best": self.best,
            "bad_validations": self.bad_validations,
            "wall_s": self.wall_s(),
            "status": self.status,
        })
        validated = [h for h in self.history if h["valid_loss"] is not None]
        if self.best is not None:
            rundir.save_torch(self.out / rundir.MODEL_FILE, self.best["state"])
        rundir.write_json(self.out / rundir.HISTORY_FILE, self.history)
        rundir.write_json(self.out / rundir.METRICS_FILE, self._metrics(validated))
        rundir.write_json(self.out / rundir.CONFIG_FILE, self.config)
        if validated:
            rundir.plot_curves(validated, self.out / rundir.CURVES_FILE)

    def _metrics(self, validated: list[dict]) -> dict:
        last = validated[-1] if validated else None
        return {
            "status": self.status,
            "model": self.cfg.model,
            "num_params": self.model.num_params(),
            "epochs": self.cfg.epochs,
            "epochs_completed": self.epoch,
            "steps": self.step,
            "windows_per_step": self.cfg.batch_size * self.d.world,
            "world_size": self.d.world,
            "device": str(self.d.device),
            "data_mode": self.data_mode,
            "wall_s": self.wall_s(),
            "best_epoch": self.best["epoch"] if self.best else None,
            "best": self.best["metrics"] if self.best else None,
            "last": {k: last[k] for k in ("epoch", "train_loss", "valid_loss", "valid_auc", "valid_rmse_mv")}
            if last else None,
            "provenance": {**provenance(), "run_config_sha256": config_hash(self.config), "data": self.records},
        }


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True) -> Path:
    """Train ``cfg.model`` on ``cfg.train``, validating on ``cfg.valid``; write the run directory ``cfg.out``.

    With ``resume`` the run continues from ``cfg.out/checkpoint.pt`` (same config required, apart from
    :data:`RUNTIME_FIELDS`). Everything a user can get wrong (config, stores, run directory) is checked before
    the first file is written.

    Raises:
        ConfigError, biophys.dataset.StoreError, surrogate.run.RunError: bad config, stores or run directory.
        TrainingError: the loss became non-finite.
    """
    cfg.check()
    d = _setup(cfg)
    try:
        if cfg.threads is not None:
            torch.set_num_threads(cfg.threads)
        stores = NeuronIOStore(cfg.train), NeuronIOStore(cfg.valid)
        resolved, model = _resolve(cfg, *stores)
        checkpoint = _prepare_out(dataclasses.asdict(resolved), resume)
        if checkpoint is not None:
            resolved = dataclasses.replace(TrainConfig.from_dict(checkpoint["config"]),
                                           **{k: getattr(resolved, k) for k in RUNTIME_FIELDS})
        trainer = _Trainer(resolved, model, d, stores, checkpoint, progress)
        if d.active:
            dist.barrier()  # every process has checked the run directory before rank 0 writes into it
        if d.main:
            Path(resolved.out).mkdir(parents=True, exist_ok=True)
        trainer.run()
        return Path(resolved.out)
    finally:
        if d.active and dist.is_initialized():
            dist.destroy_process_group()
