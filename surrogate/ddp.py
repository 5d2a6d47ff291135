"""Data-parallel helpers: the process's place under torchrun (or alone), and the collectives training uses.

Alone (WORLD_SIZE unset or 1) every helper is the identity and no process group exists.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Dist:
    """This process's ``rank`` of ``world`` and its ``device``."""

    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def setup(device: str) -> Dist:
    """Pick the device ("auto", "cpu" or "cuda") and, under torchrun (WORLD_SIZE > 1), join the process group
    (nccl on GPU, else gloo)."""
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist(0, 1, torch.device("cuda" if use_cuda else "cpu"))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    chosen = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(chosen)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return Dist(rank, world, chosen)


def local_world() -> int:
    """Processes of this run on this machine."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", "1"))


def teardown(d: Dist) -> None:
    if d.active and dist.is_initialized():
        dist.destroy_process_group()


def barrier(d: Dist) -> None:
    if d.active:
        dist.barrier()


def gather(d: Dist, obj) -> list:
    """Every process's ``obj``, in rank order."""
    if not d.active:
        return [obj]
    parts = [None] * d.world
    dist.all_gather_object(parts, obj)
    return parts


def mean_across(d: Dist, total: float, count: int) -> float:
    """Sum of ``total`` over processes divided by the sum of ``count`` (at least 1)."""
    if d.active:
        t = torch.tensor([total, count], dtype=torch.float64, device=d.device)  # nccl reduces GPU tensors only
        dist.all_reduce(t)
        total, count = float(t[0]), int(t[1])
    return total / max(count, 1)


def agree(d: Dist, flag: bool) -> bool:
    """True when any process raises ``flag`` (so all processes stop after the same batch)."""
    if not d.active:
        return flag
    t = torch.tensor([float(flag)], device=d.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())
