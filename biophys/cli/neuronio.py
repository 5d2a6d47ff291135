"""``import-neuronio FILE.p... --out STORE``: original NeuronIO pickles (Beniaguev et al. 2021) into one store."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from biophys import dataset
from biophys.neuronio_format import NeuronIOFormatError, import_neuronio


def register_cli(subparsers) -> None:
    """Add ``import-neuronio`` to an argparse subparsers object."""
    p = subparsers.add_parser("import-neuronio", help="convert original NeuronIO pickles into a store",
                              description="Read pickles in the original NeuronIO layout (Beniaguev et al. 2021), "
                              "plain or gzip-compressed, and write their simulations as one NeuronIO store.")
    p.add_argument("files", nargs="+", type=Path, help="original .p (or .p.gz) files, each once")
    p.add_argument("--out", type=Path, required=True, help="the store to write")
    p.set_defaults(func=_import_command)


def _import_command(args: argparse.Namespace) -> int:
    try:
        path = import_neuronio(args.files, args.out)
    except (NeuronIOFormatError, dataset.StoreError) as exc:
        print(f"import-neuronio: {exc}", file=sys.stderr)
        return 2
    print(dataset.NeuronIOStore(path).summary())
    return 0
