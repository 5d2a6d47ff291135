"""``python -m analysis``: score trained surrogates on held-out NeuronIO data and write comparison reports.

User errors (missing or incompatible runs and stores, bad options) print one line to stderr and exit with 2;
files are written to a temporary name and renamed, so nothing is left half-written.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from analysis import cost
from analysis.curves import write_learning_curve
from analysis.evaluate import AnalysisError, evaluate_run
from analysis.report import write_report
from conventions.atomic import write_text_atomic
from conventions.signals import BURN_IN_MS

EXIT_USAGE = 2


def _burn_in(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be ≥ 0 ms, got {value}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m analysis",
        description="Evaluate surrogate models (ELM, Branch-ELM, TCN, LSTM) against the NEURON simulations of a "
        "NeuronIO store: spike ROC AUC, TPR at 0.25 %% and 1 %% FPR, soma RMSE/MAE/explained variance, spike "
        "timing (coincidence factor), parameters, multiply-adds per ms and inference speed.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data", required=True, metavar="STORE",
                       help="NeuronIO store (Zarr) of held-out simulations to score on; every whole simulation "
                       "is scored after the burn-in")
        p.add_argument("--valid", metavar="STORE",
                       help="validation store on which the spike threshold for the timing metrics is chosen "
                       "(default: chosen on --data itself, which is optimistic and marked so)")
        p.add_argument("--burn-in", type=_burn_in, metavar="MS",
                       help="milliseconds at the start of every simulation excluded from all metrics, while the "
                       "model's state catches up with the input (default: the burn_in_ms each run was trained "
                       f"with, the longest of them for a report, else {BURN_IN_MS})")
        p.add_argument("--threads", type=_positive, metavar="N",
                       help="CPU threads for PyTorch inference; the speed metrics depend on it and record it "
                       "(default: PyTorch's choice)")

    def speed(p: argparse.ArgumentParser) -> None:
        p.add_argument("--speed-batch", type=_positive, default=cost.SPEED_BATCH, metavar="N",
                       help="simulations per forward pass when timing batched inference over "
                       f"{cost.SPEED_SIMS} whole simulations (default {cost.SPEED_BATCH}); the report states it")

    ev = sub.add_parser("evaluate", help="score one run; print or write its metrics as JSON",
                        description="Score one training run on a store and print its metrics as JSON.")
    ev.add_argument("run", metavar="RUN", help="run directory written by `python -m surrogate train`")
    common(ev)
    speed(ev)
    ev.add_argument("--out", metavar="FILE", help="write the metrics JSON to FILE instead of stdout")
    ev.set_defaults(func=_evaluate)

    rep = sub.add_parser("report", help="score several runs; write report.md, metrics.json and figures",
                         description="Score every run on a store and write OUT/report.md (metrics table, figures), "
                         "OUT/metrics.json and OUT/figures/*.png.")
    rep.add_argument("runs", nargs="+", metavar="RUN", help="run directories written by `python -m surrogate train`")
    common(rep)
    speed(rep)
    rep.add_argument("--out", required=True, metavar="DIR", help="output directory (created if needed)")
    rep.set_defaults(func=_report)

    lc = sub.add_parser("learning-curve", help="score every run under a root; table and figure against data size",
                        description="Score every run directory under RUN_ROOT on a store and write "
                        "OUT/learning_curve.md, .json and .png: test AUC, TPR at 1 %% FPR and RMSE against hours of "
                        "simulated training data, one line per model (kind and size).")
    lc.add_argument("root", metavar="RUN_ROOT", help="folder holding one run directory per model and training size")
    common(lc)
    lc.add_argument("--reference", metavar="RUN", help="a run directory (e.g. a published checkpoint imported with "
                    "`python -m surrogate import-elmneuron`) scored on the same store and drawn as a reference line")
    lc.add_argument("--target-auc", type=float, metavar="AUC", help="without --reference: the test AUC to "
                    "extrapolate the data each model needs to (e.g. a published checkpoint's score on such data)")
    lc.add_argument("--out", required=True, metavar="DIR", help="output directory (created if needed)")
    lc.set_defaults(func=_learning_curve)
    return parser


def _evaluate(args: argparse.Namespace) -> None:
    result = evaluate_run(args.run, args.data, burn_in_ms=args.burn_in, valid_store=args.valid,
                          speed_batch=args.speed_batch)
    if result["unfinished"]:
        print(f"note: {result['unfinished']}", file=sys.stderr)
    text = json.dumps(result, indent=2) + "\n"
    if args.out is None:
        sys.stdout.write(text)
        return
    out = Path(args.out)
    if not out.parent.is_dir():
        raise AnalysisError(f"cannot write {out}: folder {out.parent} does not exist")
    write_text_atomic(out, text)
    print(f"wrote {out}")


def _report(args: argparse.Namespace) -> None:
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise AnalysisError(f"--out {out} exists and is not a directory")
    report = write_report(args.runs, args.data, out, valid_store=args.valid, burn_in_ms=args.burn_in,
                          speed_batch=args.speed_batch)
    print(f"wrote {report}")


def _learning_curve(args: argparse.Namespace) -> None:
    if args.target_auc is not None and not 0.5 < args.target_auc < 1:
        raise AnalysisError(f"--target-auc must lie between 0.5 and 1, got {args.target_auc}")
    table = write_learning_curve(args.root, args.data, args.out, valid_path=args.valid, reference=args.reference,
                                 burn_in_ms=args.burn_in, target_auc=args.target_auc)
    print(f"wrote {table}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        args.func(args)
    except AnalysisError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
