"""``inspect STORE``: check a store's integrity first, then summarise it (exit 0 intact, 1 damaged, 2 unreadable)."""

from __future__ import annotations

import argparse
import sys

from biophys.dataset import NeuronIOStore, StoreError
from biophys.inspect_store import store_problems
from biophys.storefiles import describe, manifest_path


def register_cli(subparsers) -> None:
    """Add ``inspect STORE`` to an argparse subparsers object."""
    p = subparsers.add_parser("inspect", help="check a NeuronIO store's integrity and summarise it",
                              description="Compare every file with the store's manifest (sizes and checksums), "
                              "decode every chunk, check labels, seeds and completeness, then print a summary. "
                              "Exit 0 if intact, 1 if problems were found, 2 if the store cannot be opened.")
    p.add_argument("store", help="path of the Zarr store")
    p.set_defaults(func=_inspect_command)


def _inspect_command(args: argparse.Namespace) -> int:
    try:
        problems = store_problems(args.store)
        if problems:
            print(f"inspect: {args.store}: integrity: {len(problems)} problem(s): {describe(problems, 5)}",
                  file=sys.stderr)
            return 1
        print(NeuronIOStore(args.store).summary())
    except StoreError as exc:
        print(f"inspect: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    files = ("manifest: every file matches its size and checksum" if manifest_path(args.store).exists()
             else "no manifest (the store predates them): checked by decoding only")
    print(f"integrity: OK ({files}; every chunk decoded; labels, seeds and simulations consistent)")
    return 0
