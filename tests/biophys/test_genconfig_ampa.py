"""configs/quality_ampa.toml goes through ``python -m biophys generate``'s config path (the simulation itself
replaced by a recorder): configs/quality.toml with AMPA-only synapses and the AMPA-only protocol's drive."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from biophys import generate
from biophys.__main__ import main
from biophys.genconfig import load_config
from biophys.inputs import InputConfig, draw_rates

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture
def resolved(monkeypatch, tmp_path):
    """config file → the GenerateConfig and Execution that ``generate`` would run, without simulating."""
    calls = []
    monkeypatch.setattr(generate, "generate", lambda cfg, out, execution: calls.append((cfg, out, execution)))

    def run(name: str, *flags: str):
        assert main(["generate", "--config", str(CONFIGS / name), "--out", str(tmp_path / "x.zarr"), *flags]) == 0
        return calls[-1][0]
    return run


def test_ampa_config_is_quality_with_ampa_synapses_and_the_harder_drive(resolved):
    ampa = resolved("quality_ampa.toml", "--morphology", "synthetic", "--n-sims", "3")
    nmda = resolved("quality.toml", "--morphology", "synthetic", "--n-sims", "3")
    assert ampa.cell.synapse_model == "ampa" and nmda.cell.synapse_model == "ampa_nmda"
    assert ampa.inputs.exc_spikes_per_100ms == {"basal": (0.0, 1900.0), "apical": (0.0, 2000.0)}
    assert (ampa.inputs.inh_offset_low_per_100ms, ampa.inputs.inh_offset_high_per_100ms) == (-1650.0, 150.0)
    # The NMDA default [-600, 200] is held by the same two fields.
    assert (nmda.inputs.inh_offset_low_per_100ms, nmda.inputs.inh_offset_high_per_100ms) == (-600.0, 200.0)
    assert ampa.n_sims == 3 and ampa.cell.morphology == "synthetic"
    different = {k for k, v in ampa.to_dict().items() if nmda.to_dict()[k] != v}
    assert different == {"cell", "inputs"}
    assert {k for k, v in ampa.to_dict()["cell"].items() if nmda.to_dict()["cell"][k] != v} == {"synapse_model"}
    inputs = {k for k, v in ampa.to_dict()["inputs"].items() if nmda.to_dict()["inputs"][k] != v}
    assert inputs == {"exc_spikes_per_100ms", "inh_offset_low_per_100ms", "inh_offset_high_per_100ms"}


def test_the_offsets_bound_the_inhibitory_rate_around_the_excitatory_one():
    """The protocol's "exc − inh spike difference" range [−1650, 150] is, as in the original generator, added to
    the excitatory rate: inh − exc lies in [−1650, 150] per tree and block (inh ≥ 0), read from drawn rates."""
    cfg = load_config(CONFIGS / "quality_ampa.toml")[0].inputs
    segments = pd.DataFrame({"tree": ["basal"] * 5 + ["apical"] * 5, "length_um": 20.0})
    rates = draw_rates(cfg, segments, 20000, np.random.default_rng(0))
    offset = rates.inh_per_100ms - rates.exc_per_100ms
    assert offset.max() <= 150.0 and offset.min() >= -1650.0
    assert (rates.inh_per_100ms >= 0).all()
    assert rates.exc_per_100ms[rates.trees.index("basal")].max() <= 1900.0
    assert rates.exc_per_100ms[rates.trees.index("apical")].max() > 1900.0  # apical reaches beyond basal's range
    assert isinstance(cfg, InputConfig)
