"""``validate``: run the physiology protocols of Hay et al. (2011) on the cell and write the features as JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from biophys.cli.morphology import MORPHOLOGY_HELP, check_morphology
from biophys.config import ENGINES, CellConfig, SimConfig
from biophys.morphology import MorphologyError
from biophys.protocols import PROTOCOLS, ValidationConfig, validate_cell
from conventions.atomic import write_text_atomic


def register_cli(subparsers) -> None:
    """Add ``validate`` to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "validate", help="check the cell's physiology against the original model and Hay et al. (2011)",
        description="Run resting-potential, input-resistance, current-step, bAP and BAC-firing protocols on the "
                    "cell and write features, published ranges and pass/fail per feature as JSON.")
    parser.add_argument("--json", required=True, type=Path, dest="json_out", help="output JSON file")
    parser.add_argument("--cell", default="l5pc", choices=("l5pc", "ball-and-stick"))
    parser.add_argument("--morphology", default=None, help=MORPHOLOGY_HELP)
    parser.add_argument("--quick", action="store_true",
                        help="1 s steps of 0.5/0.8/1.0 nA (as the reference traces) instead of 2 s steps")
    parser.add_argument("--protocols", nargs="+", default=list(PROTOCOLS), choices=PROTOCOLS)
    parser.add_argument("--engine", default="neuron", choices=ENGINES,
                        help="who integrates the reference dt 0.025 ms backward-Euler protocols")
    parser.set_defaults(func=_validate_command)


def _validate_command(args: argparse.Namespace) -> int:
    if not args.json_out.parent.is_dir():
        print(f"error: output directory {args.json_out.parent} does not exist", file=sys.stderr)
        return 2
    config = ValidationConfig.quick() if args.quick else ValidationConfig()
    try:
        # Checked before NEURON starts, so a bad file costs nothing and reads as one line.
        check_morphology(args.cell, args.morphology)
        result = validate_cell(CellConfig(args.cell, args.morphology), SimConfig(engine=args.engine),
                               tuple(args.protocols), config)
    except (MorphologyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    write_json(result, args.json_out)
    failed = [name for name, ok in result["checks"].items() if not ok]
    print(f"{args.json_out}: {len(result['checks']) - len(failed)}/{len(result['checks'])} checks pass"
          + (f"; failing: {', '.join(failed)}" if failed else ""))
    return 0


def write_json(data: dict, path: Path) -> None:
    """Write ``data`` as JSON atomically (temporary file in the same directory, then rename)."""
    write_text_atomic(path, json.dumps(data, indent=2, default=_json_default) + "\n")


def _json_default(value):
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")
