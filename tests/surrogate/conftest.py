"""Surrogate-model tests run on one torch thread: the machine's cores are shared. Reset before every test
because training may set its own thread count."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    torch.set_num_threads(1)
