"""``python -m biophys``: generate, simulate, validate and inspect NeuronIO datasets.

Each subcommand lives in the module that implements it (``register_cli(subparsers)``); this file only
assembles them, so that ``--help`` lists everything and NEURON is imported only by the commands that need it.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: Modules that contribute subcommands, in the order ``--help`` lists them.
COMMAND_MODULES = (
    "biophys.cli.generate",
    "biophys.cli.inspect",
    "biophys.cli.simulate",
    "biophys.cli.validate",
    "biophys.cli.neuronio",
    "biophys.cli.morphology",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m biophys",
        description="Simulate the detailed L5 pyramidal cell in NEURON and write NeuronIO datasets "
        "(synaptic input spikes per ms → somatic voltage and output spikes).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register_cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
