"""Train a surrogate on NeuronIO windows into a run directory; single process, or data-parallel under torchrun.

    python -m surrogate train --model branch-elm --train TRAIN.zarr --valid VALID.zarr --out runs/x
    torchrun --nproc_per_node 2 -m surrogate train ...

The training setup of Spieler et al. (2023), after Beniaguev, Segev & London (2021): loss = 0.5 ·
BCE-with-logits(spike) + 0.5 · MSE(scaled soma) over the steps after each window's burn-in; Adam with a cosine
decay of the learning rate to 0 over all batches; validation on whole validation simulations (loss, and the spike
ROC AUC and soma RMSE of :mod:`conventions.scores`); the best weights by validation loss are kept as an
independent copy.

This module holds the loop only. The config is :mod:`surrogate.config`, where the data live and whether a batch
fits is :mod:`surrogate.resources`, the collectives are :mod:`surrogate.ddp`, the run directory and its files
are :mod:`surrogate.run` and :mod:`surrogate.checkpoint`.

Data: in memory, or with ``data_mode = "lazy"`` read from the stores on demand; both modes train bit-identical
models (the windows drawn do not depend on the mode), so a resumed run may change it. Input channels are those of
the training store, identified by its synapse layout (:mod:`conventions.layout`), which the run records; a
validation store, or a store on resuming, is read in that channel order whatever its own.

Data parallel: every process holds (or reads) the training data, draws its own windows from a generator seeded by
(seed, rank) and trains the same model (DDP averages gradients), so one step sees world_size × batch_size
windows. Validation simulations are split over the processes and the predictions gathered, so every process
computes the same metrics and takes the same early-stopping decision. Only rank 0 writes the run directory.

A first Ctrl-C (single process) stops training after the current batch and writes the checkpoint; the run
continues with ``--resume``.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from biophys.dataset import NeuronIOStore
from conventions.provenance import provenance
from surrogate import checkpoint as ckpt
from surrogate import ddp
from surrogate import run as rundir
from surrogate.config import RUNTIME_FIELDS, ConfigError, TrainConfig
from surrogate.data import LazyNeuronIO, NeuronIOArrays, WindowSampler
from surrogate.models import num_params
from surrogate.objective import validation_metrics, window_loss
from surrogate.plan import Plan, config_hash, resolve, store_record
from surrogate.predict import predict_arrays
from surrogate.resources import check_batches_fit, choose_data_mode

#: curves.png is redrawn when a run stops and at most this often (s of wall time) while it runs
CURVES_EVERY_S = 60.0


class TrainingError(RuntimeError):
    """Training failed numerically (a non-finite loss)."""


class TrainingInterrupted(Exception):
    """Training stopped at a Ctrl-C after writing its checkpoint; ``str()`` says how to continue."""


def snapshot_state(model: nn.Module) -> dict[str, Tensor]:
    """An independent CPU copy of ``model``'s state_dict: later training steps do not change it."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


class _Trainer:
    """State of one training invocation; rank 0 writes the run directory."""

    def __init__(self, plan: Plan, d: ddp.Dist, stores: tuple[NeuronIOStore, NeuronIOStore],
                 checkpoint: dict | None, progress: bool):
        cfg, model = plan.cfg, plan.model
        self.cfg, self.d, self.progress, self.layout = cfg, d, progress, plan.layout
        # config.json keeps the first invocation's config; a resumed run only changes RUNTIME_FIELDS
        self.config = checkpoint["config"] if checkpoint else dataclasses.asdict(cfg)
        self.out = Path(cfg.out)
        train_store, valid_store = stores
        self.records = {"train": store_record(train_store), "valid": store_record(valid_store)}
        if valid_store.n_sims < d.world:
            raise ConfigError(f"{valid_store.n_sims} validation simulations cannot be split over {d.world} processes")
        valid_batch = min(cfg.valid_batch_size, math.ceil(valid_store.n_sims / d.world))
        check_batches_fit(cfg.batch_size, cfg.window_ms, valid_batch, valid_store.n_time, train_store.n_synapses)
        self.data_mode = choose_data_mode(cfg.data_mode, train_store, valid_store, d.world, ddp.local_world())
        source = NeuronIOArrays if self.data_mode["mode"] == "memory" else LazyNeuronIO
        train_channels, valid_channels = plan.channels
        self.train_data = source.from_store(train_store, channels=train_channels)
        valid_sims = np.arange(d.rank, valid_store.n_sims, d.world)
        self.valid_data = source.from_store(valid_store, valid_sims, valid_channels)
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
        self._curves_at = -math.inf  # when curves.png was last drawn (time.monotonic, s)
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
        self.status = "running" if ck["status"] in ("wall_budget", "interrupted") else ck["status"]
        torch.set_rng_state(ck["rng"]["torch"])
        if self.d.device.type == "cuda" and ck["rng"]["cuda"] is not None:
            torch.cuda.set_rng_state(ck["rng"]["cuda"], self.d.device)
        self.sampler.state = ck["rng"]["samplers"][self.d.rank]

    def wall_s(self) -> float:
        return self.wall_before + time.monotonic() - self.t0

    def run(self, interrupt: ckpt.StopOnInterrupt) -> None:
        self.t0, self.interrupt = time.monotonic(), interrupt
        if self.status != "running":
            if self.d.main:
                tqdm.write(f"{self.out} is already {self.status}; nothing to resume", file=sys.stderr)
            return
        cfg = self.cfg
        while self.epoch < cfg.epochs:
            train_loss, batches, stop, clipped = self._train_epoch()
            self.next_batch += batches
            epoch_done = self.next_batch == cfg.batches_per_epoch
            last = self.epoch + 1 == cfg.epochs and epoch_done
            out_of_time = stop == "wall_budget"
            record = {"epoch": self.epoch + 1, "step": self.step, "batches": batches, "train_loss": train_loss,
                      "valid_loss": None, "valid_auc": None, "valid_rmse_mv": None,
                      "lr": self.optimizer.param_groups[0]["lr"],
                      "clipped_fraction": clipped / batches if cfg.grad_clip_norm is not None and batches else None}
            if not math.isfinite(train_loss):
                raise TrainingError(f"training diverged: the training loss is {train_loss} in epoch {self.epoch + 1}; "
                                    "try a lower --lr")
            patience_ran_out = False
            if last or out_of_time or (epoch_done and (self.epoch + 1) % cfg.valid_every == 0):
                patience_ran_out = self._validate(record)
            record["wall_s"] = self.wall_s()
            if batches:
                self.history.append(record)
            if epoch_done:
                self.epoch, self.next_batch = self.epoch + 1, 0
            if self.epoch == cfg.epochs:
                self.status = "finished"
            elif patience_ran_out:
                self.status = "early_stopped"
            elif stop is not None:
                self.status = stop
            self._save()
            if self.status != "running":
                break

    def _train_epoch(self) -> tuple[float, int, str | None, int]:
        """Train the rest of the current epoch; returns (mean loss over processes, batches run, why it stopped
        early: None, "wall_budget" or "interrupted", batches whose gradient norm was clipped)."""
        cfg, d = self.cfg, self.d
        self.ddp.train()
        total, count, stop, clipped = 0.0, 0, None, 0
        bar = tqdm(range(self.next_batch, cfg.batches_per_epoch), desc=f"epoch {self.epoch + 1}/{cfg.epochs}",
                   disable=not (d.main and self.progress), leave=False, dynamic_ncols=True)
        for _ in bar:
            if self.interrupt.requested:
                stop = "interrupted"
                break
            x, spike, soma = (t.to(d.device, non_blocking=True) for t in self.sampler.batch())
            loss = window_loss(self.ddp(x), spike, soma, cfg.burn_in_ms)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip_norm is not None:
                norm = nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip_norm)
                clipped += int(norm.item() > cfg.grad_clip_norm)
            self.optimizer.step()
            self.scheduler.step()
            self.step += 1
            value = loss.item()
            total, count = total + value, count + 1
            bar.set_postfix(loss=f"{value:.4f}")
            if cfg.max_wall_s is not None and ddp.agree(d, time.monotonic() - self.t0 > cfg.max_wall_s):
                stop = "wall_budget"
                break
            if self.interrupt.requested:
                stop = "interrupted"
                break
        bar.close()
        return ddp.mean_across(d, total, count), count, stop, clipped

    def _validate(self, record: dict) -> bool:
        """Fill the validation metrics into ``record``, update the best weights; True when patience ran out."""
        cfg = self.cfg
        y = predict_arrays(self.model, self.valid_data, cfg.valid_batch_size, self.d.device)
        parts = ddp.gather(self.d, (y, self.valid_data.spike_labels, self.valid_data.soma_mv))
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
        samplers = ddp.gather(self.d, self.sampler.state)
        if not self.d.main:
            return
        ckpt.save_checkpoint(self.out, {
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
            "layout": None if self.layout is None else self.layout.to_dict(),
        })
        validated = [h for h in self.history if h["valid_loss"] is not None]
        if self.best is not None:
            rundir.save_torch(self.out / rundir.MODEL_FILE, rundir.model_file(
                self.cfg.model, self.cfg.model_config, self.best["state"], self.layout))
        rundir.write_json(self.out / rundir.HISTORY_FILE, self.history)
        rundir.write_json(self.out / rundir.METRICS_FILE, self._metrics(validated))
        rundir.write_json(self.out / rundir.CONFIG_FILE, self.config)
        # drawing takes ~1 s, most of a tiny run's epoch: redraw at the end and at most every CURVES_EVERY_S
        if validated and (self.status != "running" or time.monotonic() - self._curves_at >= CURVES_EVERY_S):
            rundir.plot_curves(validated, self.out / rundir.CURVES_FILE)
            self._curves_at = time.monotonic()

    def _metrics(self, validated: list[dict]) -> dict:
        last = validated[-1] if validated else None
        return {
            "status": self.status,
            "model": self.cfg.model,
            "num_params": num_params(self.model),
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
    :data:`RUNTIME_FIELDS`). Everything a user can get wrong (config, stores, run directory, a batch too large for
    the memory) is checked before the first file is written, and a run directory this call created is removed
    again when it fails before writing into it.

    Raises:
        ConfigError, biophys.dataset.StoreError, surrogate.run.RunError: bad config, stores or run directory.
        TrainingError: the loss became non-finite.
        TrainingInterrupted: a Ctrl-C stopped training; the checkpoint is written.
    """
    if resume and not cfg.out:
        raise ConfigError("no out path given (--out): which run should be resumed?")
    checkpoint = ckpt.read_checkpoint(cfg.out) if resume else None
    if checkpoint is not None:
        ckpt.check_same_model(cfg.model, checkpoint, Path(cfg.out))
    cfg.require_paths()
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but torch sees no CUDA device")
    out = Path(cfg.out)
    created = not out.exists()
    d = ddp.setup(cfg.device)
    try:
        if cfg.threads is not None:
            torch.set_num_threads(cfg.threads)
        stores = NeuronIOStore(cfg.train), NeuronIOStore(cfg.valid)
        plan = resolve(cfg, *stores, checkpoint)
        if checkpoint is None:
            ckpt.check_fresh_out(out)
        else:
            ckpt.check_resume(dataclasses.asdict(plan.cfg), checkpoint["config"], out)
            resumed = dataclasses.replace(TrainConfig.from_dict(checkpoint["config"]),
                                          **{k: getattr(plan.cfg, k) for k in RUNTIME_FIELDS})
            plan = dataclasses.replace(plan, cfg=resumed)
        trainer = _Trainer(plan, d, stores, checkpoint, progress)
        ddp.barrier(d)  # every process has checked the run directory before rank 0 writes into it
        if d.main:
            out.mkdir(parents=True, exist_ok=True)
        with ckpt.StopOnInterrupt(enabled=not d.active) as interrupt:
            trainer.run(interrupt)
        if trainer.status == "interrupted":
            raise TrainingInterrupted(f"interrupted; the checkpoint holds epoch {trainer.epoch + 1}, batch "
                                      f"{trainer.next_batch}; continue with: {ckpt.RESUME_HINT.format(out=out)}")
        return out
    except BaseException:
        if created and d.main and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise
    finally:
        ddp.teardown(d)
