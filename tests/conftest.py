import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """The read-only test data of the project (``../shared/data`` beside the checkout, or $NEURONCOMPUTE_SHARED/data)."""
    import os

    root = Path(os.environ.get("NEURONCOMPUTE_SHARED", REPO.parent / "shared"))
    return root / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not path.exists():
        pytest.skip(f"shared test data not found at {path}")
    return path


@pytest.fixture
def fake_store(tmp_path):
    """A small synthetic NeuronIO store (see tests/fakes.py)."""
    from fakes import fake_store as make

    return make(tmp_path / "fake.zarr")
