"""The quality study at scale, one resumable command: simulate train / valid / test stores of one cell, train each
model on nested subsets of the training data (1/8, 1/4, 1/2, all by default), score the learning curve on the test
split, and record what it cost.

Stages, each skipped where its output exists, so re-running the same command continues where it stopped:
1. ``python -m biophys generate`` (a subprocess; the dataset default integration) into OUT/data/{train,valid,test}
   .zarr, from fixed seeds; generate itself resumes from its finished shards;
2. nested subsets: the first k simulations of the training store (:func:`analysis.study_runs.subset_store`);
3. a probe per model measuring its step and validation times on all the data (OUT/probes), which size every
   schedule;
4. learning rates: a model given ``lr_grid`` is trained on the smallest subset with each, and the lowest
   validation loss picks its rate (OUT/lr_grid);
5. the curve's runs OUT/curve/<model>/<model>_sims<k>, each within a wall budget proportional to its data
   (finished runs skipped, unfinished ones resumed from their checkpoints);
6. OUT/learning_curve (:mod:`analysis.curves`), OUT/report (:func:`analysis.report.write_report` of the models
   trained on all data), optionally their scores on original NeuronIO pickles imported with ``python -m biophys
   import-neuronio``, and OUT/study.md + OUT/study.json with the costs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from analysis import curves, study_report
from analysis.evaluate import AnalysisError
from analysis.report import write_report
from analysis.study_runs import (BATCH_SIZE, WINDOW_MS, Probe, best_lr, budget_s, ensure_run, probe,
                                 subset_sizes, subset_store)
from biophys.dataset import NeuronIOStore, StoreError
from conventions.atomic import write_text_atomic
from conventions.configkeys import check_field_types, field_names, refuse_unknown_keys
from surrogate.config import ConfigError
from surrogate.train import TrainingError, TrainingInterrupted

SPLITS = ("train", "valid", "test")
#: settings that change how the study runs, not what it computes: they may differ when it is re-run
RUNTIME_KEYS = ("workers", "threads", "device", "data_mode", "neuronio", "reference", "target_auc")


@dataclass(frozen=True)
class StudyConfig:
    """Everything the study computes from; the keys of its TOML file (``configs/quality_study.toml``)."""

    generate_config: str = "configs/quality.toml"  # the generate config (cell, synapses); sizes and seeds below
    cell: str = "l5pc"
    morphology: str | None = "cell1"  # "cell1", "synthetic" or a file; None: the cell's own default
    duration_ms: int = 6000
    train_sims: int = 1200
    valid_sims: int = 100
    test_sims: int = 100
    seeds: dict = field(default_factory=lambda: {"train": 1, "valid": 2, "test": 3})
    sims_per_task: int = 4
    fractions: list = field(default_factory=lambda: [0.125, 0.25, 0.5, 1.0])
    wall_s_all: float = 14400.0  # wall budget of one model trained on all the data, in s
    wall_s_min: float = 600.0  # no run gets less
    batches_per_epoch: int = 500
    probe_batches: int = 20
    burn_in_ms: int = 150
    grad_clip_norm: float | None = None  # every run's gradient-norm clip (surrogate.config.TrainConfig); None: none
    seed: int = 0  # model initialisation and window sampling of every run
    models: dict = field(default_factory=dict)  # name → {kind, model_config, lr | lr_grid}
    workers: int = 2
    threads: int = 2
    device: str = "cpu"  # where models train: "cpu", "cuda" or "auto" (the costs are priced on the CPU)
    # where training data live: "auto", "memory" or "lazy" (surrogate.config.TrainConfig.data_mode); the same
    # batches either way, so a study may change it when re-run
    data_mode: str = "auto"
    neuronio: str | None = None  # directory of original NeuronIO pickles to score the final models on
    reference: str | None = None  # run directory of a published checkpoint: the learning curve's reference line
    # without a reference run: the test AUC the learning curve extrapolates each model's data need to (the
    # published Branch-ELM checkpoint scores 0.986 on cell1 data from `biophys generate`)
    target_auc: float | None = None

    def __post_init__(self):
        check_field_types(self, error=ConfigError)
        if set(self.seeds) != set(SPLITS):
            raise ConfigError(f"seeds must give one seed for each of {', '.join(SPLITS)}, got {sorted(self.seeds)}")
        if not self.models:
            raise ConfigError("no models: give [models.<name>] tables with kind, model_config and lr or lr_grid")
        for name, spec in self.models.items():
            refuse_unknown_keys(spec, ("kind", "model_config", "lr", "lr_grid"), f"[models.{name}]", ConfigError)
            if "kind" not in spec or ("lr" in spec) == ("lr_grid" in spec):
                raise ConfigError(f"[models.{name}] needs a kind and exactly one of lr, lr_grid")
        if not all(0 < f <= 1 for f in self.fractions):
            raise ConfigError(f"fractions must lie in (0, 1], got {self.fractions}")

    @classmethod
    def load(cls, path: Path | None, overrides: dict) -> "StudyConfig":
        values = {}
        if path is not None:
            try:
                values = tomllib.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise ConfigError(f"cannot read study config {path}: {exc}") from None
        refuse_unknown_keys(values, field_names(cls), f"study config {path}", ConfigError)
        return cls(**{**values, **{k: v for k, v in overrides.items() if v is not None}})


def _check_same_study(cfg: StudyConfig, root: Path) -> None:
    """Record the config in OUT/study_config.json, or refuse one that computes something else there."""
    record = root / "study_config.json"
    mine = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in RUNTIME_KEYS}
    if record.exists():
        saved = json.loads(record.read_text())
        differing = sorted(k for k in set(saved) | set(mine) if saved.get(k) != mine.get(k))
        if differing:
            raise ConfigError(f"{root} holds a study made with other settings ({', '.join(differing)}); choose "
                              "another --out or the same settings")
    else:
        root.mkdir(parents=True, exist_ok=True)
        write_text_atomic(record, json.dumps(mine, indent=2) + "\n")


def _run(command: list[str], what: str) -> None:
    print(f"$ {' '.join(command)}", flush=True)
    if subprocess.run(command).returncode != 0:
        raise AnalysisError(f"{what} failed (command above); re-run the study to continue")


def make_data(cfg: StudyConfig, data: Path) -> dict[str, Path]:
    """The three stores, generated (or completed) with fixed seeds."""
    stores = {}
    for split in SPLITS:
        out = data / f"{split}.zarr"
        n = getattr(cfg, f"{split}_sims")
        command = [sys.executable, "-m", "biophys", "generate", "--config", cfg.generate_config, "--cell", cfg.cell,
                   "--out", str(out), "--n-sims", str(n), "--duration-ms", str(cfg.duration_ms),
                   "--seed", str(cfg.seeds[split]), "--sims-per-task", str(cfg.sims_per_task),
                   "--workers", str(cfg.workers), "--no-progress"]
        if cfg.morphology is not None:
            command += ["--morphology", cfg.morphology]
        _run(command, f"generating {split}")
        stores[split] = out
    return stores


def _fields(cfg: StudyConfig, spec: dict, lr: float, train: Path, valid: Path, out: Path) -> dict:
    return {"model": spec["kind"], "model_config": spec.get("model_config", {}), "train": str(train),
            "valid": str(valid), "out": str(out), "batch_size": BATCH_SIZE, "window_ms": WINDOW_MS,
            "burn_in_ms": cfg.burn_in_ms, "lr": lr, "grad_clip_norm": cfg.grad_clip_norm, "seed": cfg.seed,
            "threads": cfg.threads, "batches_per_epoch": cfg.batches_per_epoch, "device": cfg.device,
            "data_mode": cfg.data_mode}


def train_models(cfg: StudyConfig, root: Path, stores: dict[str, Path]) -> dict:
    """Probes, learning-rate grids and the curve's runs; returns what the study records of them."""
    n_all = NeuronIOStore(stores["train"]).n_sims
    sizes = subset_sizes(n_all, cfg.fractions)
    subsets = {k: subset_store(stores["train"], k) for k in sizes}
    smallest = subsets[sizes[0]]
    record = {"subsets": {str(k): str(p) for k, p in subsets.items()}, "models": {}}
    for name, spec in cfg.models.items():
        first_lr = spec.get("lr", (spec.get("lr_grid") or [None])[0])
        print(f"== {name}: probing step times", flush=True)
        # on all the data: where the step is slowest (read from disk when the store outgrows the memory), so
        # that smaller runs end their schedules early rather than have the wall budget cut them
        timing = probe(_fields(cfg, spec, first_lr, stores["train"], stores["valid"], root / "probes" / name),
                       cfg.probe_batches)
        model = {"probe": dataclasses.asdict(timing), "published_schedule_h": timing.published_schedule_h(),
                 "runs": {}}
        lr = spec.get("lr")
        if lr is None:
            lr, model["lr_grid"] = _grid(cfg, name, spec, timing, smallest, stores["valid"], root, n_all)
        model["lr"] = lr
        for k in sizes:
            budget = budget_s(k, n_all, cfg.wall_s_all, cfg.wall_s_min)
            out = root / "curve" / name / f"{name}_sims{k:05d}"
            fields = _fields(cfg, spec, lr, subsets[k], stores["valid"], out)
            fields["epochs"] = timing.epochs(budget, cfg.batches_per_epoch)
            print(f"== {name} on {k} simulations", flush=True)
            try:
                out = ensure_run(fields, budget)
            except TrainingError as exc:
                model["runs"][str(k)] = {"error": str(exc)}
                continue
            metrics = json.loads((out / "metrics.json").read_text())
            model["runs"][str(k)] = {"run": str(out), "budget_s": budget, "wall_s": metrics.get("wall_s"),
                                     "status": metrics.get("status"), "epochs": fields["epochs"]}
        record["models"][name] = model
    return record


def _grid(cfg, name, spec, timing: Probe, train, valid, root, n_all) -> tuple[float, dict]:
    k = NeuronIOStore(train).n_sims
    budget = budget_s(k, n_all, cfg.wall_s_all, cfg.wall_s_min)
    runs = {}
    for lr in spec["lr_grid"]:
        fields = _fields(cfg, spec, lr, train, valid, root / "lr_grid" / name / f"lr_{lr:g}")
        fields["epochs"] = timing.epochs(budget, cfg.batches_per_epoch)
        print(f"== {name}: learning rate {lr:g} on {k} simulations", flush=True)
        try:
            runs[lr] = ensure_run(fields, budget)
        except TrainingError as exc:
            print(f"  diverged: {exc}", flush=True)
    chosen, best = best_lr(runs)
    print(f"== {name}: learning rate {chosen:g} chosen on the validation split", flush=True)
    return chosen, {"budget_s": budget, "train_sims": k, "chosen": chosen,
                    "valid": {f"{lr:g}": b for lr, b in best.items()}}


def score_models(cfg: StudyConfig, root: Path, stores: dict[str, Path], training: dict) -> dict:
    """The learning curve, the report of the models trained on all data and, given pickles, their NeuronIO scores."""
    curve = curves.write_learning_curve(root / "curve", stores["test"], root / "learning_curve",
                                        valid_path=stores["valid"], reference=cfg.reference,
                                        target_auc=cfg.target_auc)
    largest = str(max(int(k) for k in training["subsets"]))
    final = {name: Path(m["runs"][largest]["run"]) for name, m in training["models"].items()
             if "run" in m["runs"].get(largest, {})}
    report = write_report(list(final.values()), stores["test"], root / "report", valid_store=stores["valid"]) \
        if final else None
    neuronio = None
    if cfg.neuronio is not None:
        store = study_report.import_neuronio(Path(cfg.neuronio), root / "data" / "neuronio.zarr")
        neuronio = {"store": str(store), "scores": study_report.score_on(final, store)}
    return {"curve": curve, "report": report, "neuronio": neuronio, "final": final}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="scripts/quality_study.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, default=Path("configs/quality_study.toml"),
                   help="study config (TOML, keys = StudyConfig fields; default configs/quality_study.toml)")
    p.add_argument("--out", type=Path, default=Path("runs/quality"), help="study folder (default runs/quality)")
    p.add_argument("--morphology", help="cell morphology: cell1, synthetic or a .asc/.swc file")
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), help="where models train (default cpu)")
    p.add_argument("--data-mode", choices=("auto", "memory", "lazy"),
                   help="where training data live (default auto: in memory when they take ≤ 1/4 of the RAM)")
    p.add_argument("--neuronio", metavar="DIR", help="folder of original NeuronIO pickles to score the final "
                   "models on as well")
    p.add_argument("--target-auc", type=float, metavar="AUC", help="without --reference: the test AUC the "
                   "learning curve extrapolates each model's data need to")
    p.add_argument("--publish", type=Path, metavar="DIR", help="when the study is done, copy the models trained "
                   "on all data (without optimizer checkpoints), the learning curve and study.md into DIR (e.g. "
                   "results/quality)")
    p.add_argument("--generate-config", metavar="TOML", help="override the config's generate_config, the cell and "
                   "synapse model the stores are simulated with (e.g. configs/quality_ampa.toml: the AMPA-only cell "
                   "of notebooks/nmda_ablation.ipynb, at the study's sizes and seeds)")
    p.add_argument("--data-only", action="store_true", help="stop after simulating the stores (OUT/data)")
    p.add_argument("--reference", metavar="RUN", help="run directory of a published checkpoint (`python -m "
                   "surrogate import-elmneuron`), the learning curve's reference line")
    for name, kind in (("train-sims", int), ("valid-sims", int), ("test-sims", int), ("duration-ms", int),
                       ("wall-s-all", float), ("wall-s-min", float), ("workers", int), ("threads", int)):
        p.add_argument(f"--{name}", type=kind, help=f"override the config's {name.replace('-', '_')}")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if k not in ("config", "out", "publish", "data_only")}
    root = args.out
    try:
        cfg = StudyConfig.load(args.config, overrides)
        _check_same_study(cfg, root)
        stores = make_data(cfg, root / "data")
        if args.data_only:
            print("data: " + ", ".join(str(path) for path in stores.values()))
            return 0
        training = train_models(cfg, root, stores)
        scored = score_models(cfg, root, stores, training)
        record = {"command": " ".join([Path(sys.argv[0]).name] + (sys.argv[1:] if argv is None else argv)),
                  "config": dataclasses.asdict(cfg), "simulation": study_report.simulation_cost(stores),
                  "training": training, "neuronio": scored["neuronio"]}
        print(f"wrote {study_report.write_study(root, record, scored['curve'], scored['report'])}")
        if args.publish is not None:
            for path in study_report.publish(scored["final"], root, args.publish):
                print(f"published {path}")
    except (AnalysisError, ConfigError, StoreError, TrainingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (TrainingInterrupted, KeyboardInterrupt):
        print("interrupted; re-run the same command to continue the study", file=sys.stderr)
        return 130
    return 0
