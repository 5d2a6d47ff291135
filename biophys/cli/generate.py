"""``generate``: simulate a NeuronIO dataset (resumable, local processes or Dask); flags override the config file.

``--morphology`` takes what ``simulate`` and ``validate`` take; the config records it explicitly (see
:class:`biophys.genconfig.GenerateConfig`).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from biophys import dataset, generate
from biophys.backends import one_line
from biophys.cli.morphology import MORPHOLOGY_HELP
from biophys.genconfig import BACKENDS, Execution, GenerateConfig, load_config
from biophys.planning import GenerateError
from biophys.shards import shard_dir


def register_cli(subparsers) -> None:
    """Add ``generate`` to an argparse subparsers object (NEURON is imported only by the workers)."""
    p = subparsers.add_parser(
        "generate", help="simulate a NeuronIO dataset (resumable, local processes or Dask)",
        description="Simulate N seeded random-input runs of the cell into a Zarr store. Re-running the same "
        "command resumes an interrupted run; flags override the config file.")
    p.add_argument("--config", type=Path, help="JSON or TOML file with GenerateConfig keys (+ [execution])")
    p.add_argument("--out", type=Path, required=True, help="the store to write, e.g. data/train.zarr")
    p.add_argument("--n-sims", type=int, help="number of simulations")
    p.add_argument("--duration-ms", type=int, help="length of each simulation in ms")
    p.add_argument("--seed", type=int, help="base seed (simulation k draws from SeedSequence((seed, k)))")
    p.add_argument("--cell", choices=("ball-and-stick", "l5pc"), help="which cell to simulate")
    p.add_argument("--morphology", help=MORPHOLOGY_HELP)
    p.add_argument("--sims-per-task", type=int, help="simulations per task / shard")
    p.add_argument("--record-dendrites", action="store_true", default=None,
                   help="also store every dendritic segment's voltage")
    p.add_argument("--workers", type=int, help="worker processes (default 1)")
    p.add_argument("--backend", choices=BACKENDS, help="local processes or dask (default local)")
    p.add_argument("--scheduler", help="address of a running dask scheduler (with --backend dask)")
    p.add_argument("--force-workers", action="store_true", default=None, help="allow more workers than CPUs")
    p.add_argument("--keep-shards", action="store_true", default=None, help="keep <out>.shards after consolidating")
    p.add_argument("--no-progress", dest="progress", action="store_false", default=None, help="no progress bar")
    p.set_defaults(func=_generate_command)


def _resolve(args: argparse.Namespace) -> tuple[GenerateConfig, Execution]:
    """The config file (or defaults) with the command-line flags applied and the morphology made explicit."""
    if args.config is not None:
        cfg, execution = load_config(args.config)
    else:
        cfg, execution = GenerateConfig(), Execution()
    top = {"n_sims": args.n_sims, "duration_ms": args.duration_ms, "base_seed": args.seed,
           "sims_per_task": args.sims_per_task}
    cfg = dataclasses.replace(cfg, **{k: v for k, v in top.items() if v is not None})
    if args.cell is not None and args.cell != cfg.cell.name:
        # Another cell gets its own default morphology unless --morphology names one.
        cfg = dataclasses.replace(cfg, cell=dataclasses.replace(cfg.cell, name=args.cell, morphology=None))
    if args.morphology is not None:
        cfg = dataclasses.replace(cfg, cell=dataclasses.replace(cfg.cell, morphology=args.morphology))
    if args.record_dendrites is not None:
        cfg = dataclasses.replace(cfg, sim=dataclasses.replace(cfg.sim, record_dendrites=args.record_dendrites))
    run = {"workers": args.workers, "backend": args.backend, "scheduler": args.scheduler,
           "force_workers": args.force_workers, "keep_shards": args.keep_shards, "progress": args.progress}
    if args.scheduler is not None and args.backend is None:
        run["backend"] = "dask"
    return cfg, dataclasses.replace(execution, **{k: v for k, v in run.items() if v is not None})


def _generate_command(args: argparse.Namespace) -> int:
    try:
        cfg, execution = _resolve(args)
        generate.generate(cfg, args.out, execution)
    except (ValueError, GenerateError, dataset.StoreError) as exc:
        print(f"generate: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"generate: {type(exc).__name__}: {one_line(exc)}; finished shards are kept in {shard_dir(args.out)}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"generate: interrupted; finished shards are kept in {shard_dir(args.out)}; re-run the same "
              "command to resume", file=sys.stderr)
        return 130
    return 0
