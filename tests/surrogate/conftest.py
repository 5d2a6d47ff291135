"""Surrogate-model tests run on one torch thread: the machine's cores are shared."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _single_thread():
    torch.set_num_threads(1)
