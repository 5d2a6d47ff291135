"""Fast ELM building blocks: an exponential trace filter over whole windows and the memory recurrence as a
custom autograd Function with a hand-written backward.

The memory recurrence (see `surrogate.elm`), with the branch part of the MLP's first layer precomputed as
`drive` a_t [B, T, h]:

    pre_0 = a_t + W_mem (κ ⊙ m_{t-1});   h_i = act(pre_i);   pre_i = W_i h_{i-1} + c_i (hidden layers i ≥ 1)
    Δm_t = 1.7159 tanh(2/3 (W_out h_last + c_out));   m_t = κ ⊙ m_{t-1} + g ⊙ Δm_t

Only the loops over t are sequential (forward: the MLP at each step; backward: the matrix-vector products that
carry ∂L/∂m back in time). Weight gradients are summed over all (b, t) afterwards with one matrix product each.
The loops run in a small C++ extension on CPU (compiled once, cached under ~/.cache), or as torch ops on other
devices and when the compiler is unavailable; `recurrence_backend(device)` says which.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

log = logging.getLogger(__name__)

DELTA_M_AMPLITUDE = 1.7159
DELTA_M_SLOPE = 2.0 / 3.0
FILTER_CHUNK = 64  # steps per block of the trace filter: one [L, L] matmul per block, one [n, n] across blocks


def exp_filter(u: Tensor, kappa: float, chunk: int = FILTER_CHUNK) -> Tensor:
    """y_t = κ y_{t-1} + u_t with y_{-1} = 0, along dim 1 of u [B, T, C] (differentiable torch ops).

    Blocks of `chunk` steps are filtered by a lower-triangular Toeplitz matrix of powers of κ; the block end
    states are then propagated across blocks the same way, so there is no Python loop over time.
    """
    batch, steps, channels = u.shape
    length = min(chunk, steps)
    blocks = -(-steps // length)
    u = F.pad(u, (0, 0, 0, blocks * length - steps)).view(batch, blocks, length, channels)
    within = _decay_matrix(length, kappa, u)
    local = within @ u
    across = _decay_matrix(blocks, kappa**length, u)
    block_end = across @ local[:, :, -1]
    entering = F.pad(block_end[:, :-1], (0, 0, 1, 0))
    decay = kappa ** torch.arange(1, length + 1, device=u.device, dtype=torch.float64)
    y = local + decay.to(u.dtype)[:, None] * entering[:, :, None, :]
    return y.reshape(batch, blocks * length, channels)[:, :steps]


def _decay_matrix(n: int, kappa: float, like: Tensor) -> Tensor:
    """[n, n] with entry (i, j) = κ^(i−j) for i ≥ j, else 0 (built in float64, returned in like's dtype)."""
    index = torch.arange(n, device=like.device, dtype=torch.float64)
    lag = index[:, None] - index[None, :]
    return torch.where(lag >= 0, kappa ** lag.clamp(min=0), 0.0).to(like.dtype)


# ------------------------------------------------------------------------------- sequential kernels


def _activation(pre: Tensor, name: str) -> Tensor:
    return F.relu(pre) if name == "relu" else F.silu(pre)


def _activation_slope(pre: Tensor, name: str) -> Tensor:
    if name == "relu":
        return (pre > 0).to(pre.dtype)
    sig = torch.sigmoid(pre)
    return sig * (1 + pre * (1 - sig))


def _forward_loop_torch(drive, kappa, gain, w_mem, hidden_w, hidden_b, w_out, b_out, activation):
    """Time-major loop. drive [T, B, h] → (memory [T, B, d_m], tanh part [T, B, d_m], pre-activations per layer)."""
    steps, batch, hidden = drive.shape
    memory = drive.new_empty(steps, batch, kappa.shape[0])
    tanh_part = torch.empty_like(memory)
    pre = [drive.new_empty(steps, batch, hidden) for _ in range(len(hidden_w) + 1)]
    m = drive.new_zeros(batch, kappa.shape[0])
    amplified_gain = DELTA_M_AMPLITUDE * gain
    for t in range(steps):
        p = torch.addmm(drive[t], kappa * m, w_mem.t())
        pre[0][t] = p
        for i, (w, b) in enumerate(zip(hidden_w, hidden_b)):
            p = torch.addmm(b, _activation(p, activation), w.t())
            pre[i + 1][t] = p
        d = torch.tanh(DELTA_M_SLOPE * torch.addmm(b_out, _activation(p, activation), w_out.t()))
        tanh_part[t] = d
        m = kappa * m + amplified_gain * d
        memory[t] = m
    return memory, tanh_part, pre


def _backward_loop_torch(grad_memory, kappa, gain, w_mem, hidden_w, w_out, tanh_part, pre, activation):
    """Reverse-time loop, all time-major. Returns (∂L/∂pre per layer, ∂L/∂z, total ∂L/∂m_t)."""
    steps, batch, _ = grad_memory.shape
    grad_pre = [torch.empty_like(p) for p in pre]
    grad_z = torch.empty_like(grad_memory)
    grad_m = torch.empty_like(grad_memory)
    carry = grad_memory.new_zeros(grad_memory.shape[1:])
    z_gain = DELTA_M_AMPLITUDE * DELTA_M_SLOPE * gain
    for t in range(steps - 1, -1, -1):
        gm = grad_memory[t] + carry
        grad_m[t] = gm
        gz = gm * z_gain * (1 - tanh_part[t] ** 2)
        grad_z[t] = gz
        gh = gz @ w_out
        for i in range(len(pre) - 1, -1, -1):
            gp = gh * _activation_slope(pre[i][t], activation)
            grad_pre[i][t] = gp
            if i:
                gh = gp @ hidden_w[i - 1]
        carry = kappa * (gm + gp @ w_mem)
    return grad_pre, grad_z, grad_m


class MemoryRecurrence(torch.autograd.Function):
    """m [B, T, d_m] from drive [B, T, h] (see module docstring); first-order gradients hand-written.

    Inputs: activation name, drive, κ [d_m], g [d_m], W_mem [h, d_m], W_out [d_m, h], c_out [d_m], then
    the hidden layers' weights [h, h] and biases [h] alternating.
    """

    @staticmethod
    def forward(ctx, activation, drive, kappa, gain, w_mem, w_out, b_out, *hidden):
        hidden_w, hidden_b = hidden[0::2], hidden[1::2]
        loops = _loops(drive.device)
        memory, tanh_part, pre = loops[0](
            drive.transpose(0, 1).contiguous(), kappa, gain, w_mem, hidden_w, hidden_b, w_out, b_out, activation
        )
        ctx.activation = activation
        ctx.save_for_backward(kappa, gain, w_mem, w_out, memory, tanh_part, *pre, *hidden_w)
        return memory.transpose(0, 1).contiguous()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        kappa, gain, w_mem, w_out, memory, tanh_part, *rest = ctx.saved_tensors
        n_hidden = (len(rest) - 1) // 2
        pre, hidden_w = rest[: n_hidden + 1], rest[n_hidden + 1 :]
        activation = ctx.activation
        loops = _loops(grad_output.device)
        grad_pre, grad_z, grad_m = loops[1](
            grad_output.transpose(0, 1).contiguous(), kappa, gain, w_mem, hidden_w, w_out, tanh_part, pre, activation
        )
        previous = F.pad(memory[:-1], (0, 0, 0, 0, 1, 0))
        flat = lambda a: a.reshape(-1, a.shape[-1])  # noqa: E731  (T, B) → rows for the weight-gradient sums
        needs = ctx.needs_input_grad
        grad_drive = grad_pre[0].transpose(0, 1) if needs[1] else None
        grad_kappa = grad_gain = None
        if needs[2]:
            grad_kappa = ((grad_m + grad_pre[0] @ w_mem) * previous).sum((0, 1))
        if needs[3]:
            grad_gain = (grad_m * tanh_part).sum((0, 1)) * DELTA_M_AMPLITUDE
        grad_w_mem = flat(grad_pre[0]).t() @ flat(kappa * previous) if needs[4] else None
        grad_hidden = []
        for i in range(n_hidden):
            below = flat(_activation(pre[i], activation))
            grad_hidden += [flat(grad_pre[i + 1]).t() @ below, flat(grad_pre[i + 1]).sum(0)]
        top = flat(_activation(pre[-1], activation))
        grad_w_out = flat(grad_z).t() @ top
        grad_b_out = flat(grad_z).sum(0)
        return (None, grad_drive, grad_kappa, grad_gain, grad_w_mem, grad_w_out, grad_b_out, *grad_hidden)


def memory_recurrence(
    drive: Tensor,
    kappa: Tensor,
    gain: Tensor,
    w_mem: Tensor,
    hidden_w: tuple[Tensor, ...],
    hidden_b: tuple[Tensor, ...],
    w_out: Tensor,
    b_out: Tensor,
    activation: str,
) -> Tensor:
    """Memory trajectory m [B, T, d_m] (see the module docstring for the symbols and shapes)."""
    hidden = [p for pair in zip(hidden_w, hidden_b) for p in pair]
    return MemoryRecurrence.apply(activation, drive, kappa, gain, w_mem, w_out, b_out, *hidden)


# ------------------------------------------------------------------------------------------ backends

_TORCH_LOOPS = (_forward_loop_torch, _backward_loop_torch)


def _loops(device: torch.device):
    return _TORCH_LOOPS


def recurrence_backend(device: torch.device | str = "cpu") -> str:
    """Name of the implementation the memory recurrence uses on `device`: "cpp" or "torch"."""
    return "cpp" if _loops(torch.device(device)) is not _TORCH_LOOPS else "torch"
