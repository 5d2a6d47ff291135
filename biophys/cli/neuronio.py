"""``import-neuronio FILE.p... --out STORE [--morphology M]``: original NeuronIO pickles (Beniaguev et al. 2021)
into one store, its segments named from the files or by matching them against a morphology."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from biophys import dataset
from biophys.morphology import CELL1_NAME, cache_dir
from biophys.neuronio_format import NeuronIOFormatError, import_neuronio
from biophys.neuronio_segments import describe_identity


def register_cli(subparsers) -> None:
    """Add ``import-neuronio`` to an argparse subparsers object."""
    p = subparsers.add_parser("import-neuronio", help="convert original NeuronIO pickles into a store",
                              description="Read pickles in the original NeuronIO layout (Beniaguev et al. 2021), "
                              "plain or gzip-compressed, and write their simulations as one NeuronIO store. Segment "
                              "names come from the files' allSegments_SectionInd, else from matching each segment's "
                              "tree, length and path distance against --morphology; the command says which.")
    p.add_argument("files", nargs="+", type=Path, help="original .p (or .p.gz) files, each once")
    p.add_argument("--out", type=Path, required=True, help="the store to write")
    p.add_argument("--morphology", metavar="M",
                   help="morphology to match segments against when a file has no allSegments_SectionInd: 'cell1' "
                        "or a .asc/.swc path (default: cell1 when it is cached, see fetch-morphology)")
    p.set_defaults(func=_import_command)


def default_morphology() -> str | None:
    """"cell1" when its file is in the cache, else None (no matching)."""
    return "cell1" if (cache_dir() / CELL1_NAME).is_file() else None


def _import_command(args: argparse.Namespace) -> int:
    morphology = args.morphology if args.morphology is not None else default_morphology()
    try:
        path = import_neuronio(args.files, args.out, morphology)
    except (NeuronIOFormatError, dataset.StoreError) as exc:
        print(f"import-neuronio: {exc}", file=sys.stderr)
        return 2
    store = dataset.NeuronIOStore(path)
    print(describe_identity(store.config["segment_identity"]))
    print(store.summary())
    return 0
