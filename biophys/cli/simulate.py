"""``simulate``: run the cell on the input spikes of a NeuronIO store or an original pickle, write a store.

A store's inputs are simulated with the settings it records (its ``config`` attribute's ``cell`` and ``sim``
sections), so that re-simulating a store reproduces it; options given on the command line override them. A
pickle records none, so the defaults of :class:`~biophys.config.CellConfig` and
:class:`~biophys.config.SimConfig` apply to it.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

from biophys import synapses
from biophys.cli.morphology import MORPHOLOGY_HELP, check_morphology
from biophys.config import ENGINES, CellConfig, SimConfig
from biophys.dataset import StoreError
from biophys.morphology import MorphologyError
from biophys.neuronio_format import NeuronIOFormatError, SimulationInputs, read_inputs
from conventions.configkeys import field_names

#: Command-line option → SimConfig field; each overrides the setting the input store records.
_SIM_OPTIONS = {"method": "method", "dt_ms": "dt_ms", "secondorder": "secondorder", "celsius": "celsius_degC",
                "engine": "engine"}


def register_cli(subparsers) -> None:
    """Add ``simulate`` to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "simulate", help="simulate the cell on given input spike trains and write a NeuronIO store",
        description="Run the L5PC (or the ball-and-stick cell) on the input spike trains of a NeuronIO store or "
                    "an original NeuronIO pickle (.p or .p.gz) and write the results as a NeuronIO store. A store "
                    "is simulated with the cell and integration settings it records unless options say otherwise.")
    parser.add_argument("--inputs", required=True, type=Path, help="input NeuronIO store (directory) or pickle")
    parser.add_argument("--out", required=True, type=Path, help="output store path (.zarr)")
    parser.add_argument("--cell", default=None, choices=("l5pc", "ball-and-stick"),
                        help="default: the input store's cell, else l5pc")
    parser.add_argument("--morphology", default=None, help=MORPHOLOGY_HELP)
    parser.add_argument("--synapse-model", default=None, choices=synapses.EXCITATORY_MODELS)
    parser.add_argument("--method", default=None, choices=("fixed", "cvode"))
    parser.add_argument("--dt-ms", type=float, default=None)
    parser.add_argument("--secondorder", type=int, default=None, choices=(0, 1, 2),
                        help="0 = backward Euler, 2 = Crank–Nicolson")
    parser.add_argument("--celsius", type=float, default=None, help="temperature (°C)")
    parser.add_argument("--engine", default=None, choices=ENGINES,
                        help="who integrates (default: the input store's engine, else neuron)")
    parser.add_argument("--record-dendrites", action="store_true", help="store every dendritic segment's voltage")
    parser.add_argument("--max-sims", type=int, default=None, help="simulate only the first N simulations")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output store")
    parser.set_defaults(func=_simulate_command)


def configs(args: argparse.Namespace, recorded: dict) -> tuple[CellConfig, SimConfig]:
    """The cell and sim configs of a run: the ``recorded`` config's (a store's) where options do not say.

    ``--cell`` alone starts the cell from the defaults; ``--morphology`` and ``--synapse-model`` override
    single fields. Dendritic recording follows ``--record-dendrites`` only.
    """
    cell = {} if args.cell is not None else _known(CellConfig, recorded.get("cell"))
    if args.cell is not None:
        cell["name"] = args.cell
    for option, key in (("morphology", "morphology"), ("synapse_model", "synapse_model")):
        if getattr(args, option) is not None:
            cell[key] = getattr(args, option)
    sim = _known(SimConfig, recorded.get("sim"))
    sim.update({key: getattr(args, option) for option, key in _SIM_OPTIONS.items()
                if getattr(args, option) is not None})
    sim["record_dendrites"] = bool(args.record_dendrites)
    return CellConfig(**cell), SimConfig(**sim)


def _known(cls, section) -> dict:
    """The fields of config class ``cls`` found in a recorded config section (other keys are not settings)."""
    section = section if isinstance(section, dict) else {}
    return {key: section[key] for key in field_names(cls) if key in section}


def _simulate_command(args: argparse.Namespace) -> int:
    from biophys.simulator import SimulationError

    if args.out.exists() and not args.overwrite:
        print(f"error: {args.out} already exists; pass --overwrite to replace it", file=sys.stderr)
        return 1
    try:
        inputs = read_inputs(args.inputs)
        if not inputs.spike_times:
            raise NeuronIOFormatError(f"{args.inputs}: holds no simulations")
        cell, sim_config = configs(args, inputs.config)
        check_morphology(cell.name, cell.morphology)
        return _simulate(args, inputs, cell, sim_config)
    except (NeuronIOFormatError, StoreError, MorphologyError, SimulationError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _simulate(args: argparse.Namespace, inputs: SimulationInputs, cell: CellConfig, sim_config: SimConfig) -> int:
    from biophys import dataset
    from biophys.simulator import CellSimulator
    from conventions.provenance import provenance as code_provenance

    count = len(inputs.spike_times) if args.max_sims is None else min(args.max_sims, len(inputs.spike_times))
    T = inputs.duration_ms
    with CellSimulator(cell, sim_config) as sim:
        if len(inputs.spike_times[0]) != sim.n_synapses:
            raise NeuronIOFormatError(f"{inputs.source} has {len(inputs.spike_times[0])} input channels, the cell "
                                      f"has {sim.n_synapses} synapses")
        spikes = np.zeros((count, T, sim.n_synapses), np.uint8)
        soma = np.zeros((count, T), np.float32)
        nexus = np.zeros((count, T), np.float32)
        dend = np.zeros((count, T, sim.n_synapses // 2), np.float16) if args.record_dendrites else None
        out_times = []
        for i in range(count):
            trains = inputs.spike_times[i]
            result = sim.run_spike_times(trains, T)
            for k, train in enumerate(trains):
                np.add.at(spikes[i, :, k], train.astype(np.int64), 1)
            soma[i] = result.soma_mV
            if result.nexus_mV is not None:
                nexus[i] = result.nexus_mV
            if dend is not None:
                dend[i] = result.dend_mV
            out_times.append(result.spike_times_ms)
            print(f"simulation {i + 1}/{count}: {len(result.spike_times_ms)} output spikes")
        config = {"command": "simulate", "inputs": inputs.source, "cell": dataclasses.asdict(cell),
                  "sim": dataclasses.asdict(sim_config)}
        prov = {**code_provenance(), **sim.provenance()}
        ds = dataset.build_dataset(spikes, soma, out_times, inputs.seeds[:count], sim.synapses, config, prov,
                                   nexus_voltage=nexus if sim.morphology.nexus is not None else None,
                                   dendritic_voltage=dend, sim_index=inputs.sim_index[:count])
    dataset.write_store(ds, args.out, overwrite=args.overwrite)
    print(args.out)
    return 0
