"""``fetch-morphology`` (download Hay et al. 2011's cell1.asc into the cache, sha256-checked), and the
``--morphology`` option that ``simulate`` and ``validate`` share."""

from __future__ import annotations

import argparse
from pathlib import Path

from biophys.morphology import (CELL1_NAME, CELL1_SHA256, NAMED_MORPHOLOGIES, MorphologyError, cache_dir,
                                morphology_file)
from biophys.morphology_io import CELL1_URL, fetch_morphology


def register_cli(subparsers) -> None:
    """Add ``fetch-morphology`` to an argparse subparsers object."""
    description = ("Download a morphology (default: Hay et al. 2011 cell1.asc from ModelDB 139653) and check its "
                   "sha256; `--morphology cell1` then uses it.")
    parser = subparsers.add_parser("fetch-morphology", description=description,
                                   help="download the L5PC reconstruction cell1.asc into the local cache")
    parser.set_defaults(func=_fetch_command)
    parser.add_argument("--url", default=CELL1_URL, help="where to download from (default: ModelDB)")
    parser.add_argument("--dest", type=Path, default=None,
                        help=f"target file (default: {cache_dir() / CELL1_NAME})")
    parser.add_argument("--sha256", default=CELL1_SHA256, help="expected sha256 hex digest")


def _fetch_command(args: argparse.Namespace) -> int:
    try:
        path = fetch_morphology(args.url, args.dest, args.sha256)
    except MorphologyError as exc:
        print(f"error: {exc}")
        return 1
    print(path)
    return 0


MORPHOLOGY_HELP = ('"cell1" (Hay et al. 2011\'s reconstruction, after `python -m biophys fetch-morphology`), '
                   '"synthetic" or a .asc/.swc file (default: "synthetic" for the l5pc; the ball-and-stick cell '
                   'has its built-in geometry)')


def check_morphology(cell_name: str, spec: str | None) -> None:
    """Raise MorphologyError with a one-line message for a morphology that cannot be built, before NEURON
    starts (a missing file, cell1 not cached or with a wrong sha256, a malformed file, a wrong cell)."""
    if spec is not None and spec not in NAMED_MORPHOLOGIES and not Path(spec).is_file():
        raise MorphologyError(f"morphology file {spec} does not exist")
    morphology_file(cell_name, spec)
