"""Fast ELM building blocks: a sparse input projection and an exponential trace filter over whole windows, and
the memory recurrence as a custom autograd Function with a hand-written backward.

The memory recurrence (see `surrogate.elm`), with the branch part of the MLP's first layer precomputed as
`drive` a_t [B, T, h]:

    pre_0 = a_t + W_mem (κ ⊙ m_{t-1});   h_i = act(pre_i);   pre_i = W_i h_{i-1} + c_i (hidden layers i ≥ 1)
    Δm_t = 1.7159 tanh(2/3 (W_out h_last + c_out));   m_t = κ ⊙ m_{t-1} + g ⊙ Δm_t

Only the loops over t are sequential (forward: the MLP at each step; backward: the matrix-vector products that
carry ∂L/∂m back in time). Weight gradients are summed over all (b, t) afterwards with one matrix product each.
The loops (and the sparse input projection) run in a small C++ extension on CPU (the kernels are
``surrogate/csrc/elm_kernels.cpp``, shipped with the package), compiled once into
$NEURONCOMPUTE_CACHE/torch_extensions (default ~/.cache/neuroncompute), or as torch ops on other devices, when
the compiler is unavailable, or when the environment sets NEURONCOMPUTE_ELM_BACKEND=torch (read at every call);
`recurrence_backend(device)` says which.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from conventions.cache import cache_dir

log = logging.getLogger(__name__)

DELTA_M_AMPLITUDE = 1.7159  # LeCun's scaled tanh, 1.7159 tanh(2x/3): unit gain and slope near the origin
DELTA_M_SLOPE = 2.0 / 3.0
FILTER_CHUNK = 64  # steps per block of the trace filter: one [L, L] matmul per block, one [n, n] across blocks


def exp_filter(u: Tensor, kappa: float, chunk: int = FILTER_CHUNK) -> Tensor:
    """y_t = κ y_{t-1} + u_t with y_{-1} = 0, along dim 1 of u [B, T, C], differentiable.

    With the C++ backend a sequential kernel (one pass over u, forward and backward); otherwise blocked torch
    ops (`exp_filter_blocked`), which suit GPUs.
    """
    if _use_cpp(u.device) and u.dtype in (torch.float32, torch.float64):
        return ExpFilter.apply(u.contiguous(), float(kappa))
    return exp_filter_blocked(u, kappa, chunk)


class ExpFilter(torch.autograd.Function):
    """`exp_filter` through the C++ kernel; the backward is the same filter run backwards in time."""

    @staticmethod
    def forward(ctx, u, kappa):
        ctx.kappa = kappa
        return _cpp_module().exp_filter(u, kappa, False)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        return _cpp_module().exp_filter(grad_output.contiguous(), ctx.kappa, True), None


def exp_filter_blocked(u: Tensor, kappa: float, chunk: int = FILTER_CHUNK) -> Tensor:
    """`exp_filter` in plain differentiable torch ops, without a Python loop over time.

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


SPARSE_MAX_DENSITY = 0.05  # above this fraction of non-zero inputs the dense BLAS product is faster


class SparseInputProjection(torch.autograd.Function):
    """x [N, n_in] @ w [n_in, h] over the non-zeros of x only (CPU extension); gradient for w only.

    Spike-count inputs are mostly zeros; the forward converts x to CSR once (one scan) and keeps it for the
    backward, or falls back to the dense product when x is not sparse enough.
    """

    @staticmethod
    def forward(ctx, x, w):
        extension = _cpp_module()
        row_ptr, col, val = extension.dense_to_csr(x)
        ctx.n_cols = x.shape[1]
        ctx.dense = val.numel() > SPARSE_MAX_DENSITY * x.numel()
        if ctx.dense:
            ctx.save_for_backward(x)
            return x @ w
        ctx.save_for_backward(row_ptr, col, val)
        return extension.csr_matmul(row_ptr, col, val, w.contiguous())

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        if ctx.dense:
            (x,) = ctx.saved_tensors
            return None, x.t() @ grad_output
        row_ptr, col, val = ctx.saved_tensors
        return None, _cpp_module().csr_t_matmul(row_ptr, col, val, grad_output.contiguous(), ctx.n_cols)


def input_projection(x: Tensor, w: Tensor) -> Tensor:
    """x [B, T, n_in] @ w [n_in, h] → [B, T, h], through the sparse kernel when the C++ backend is in use."""
    if x.requires_grad or x.dtype != w.dtype or not _use_cpp(x.device):
        return x @ w
    flat = x.reshape(-1, x.shape[-1]).contiguous()
    return SparseInputProjection.apply(flat, w).view(*x.shape[:-1], w.shape[1])


# ------------------------------------------------------------------------------- sequential kernels


def _activation(pre: Tensor, name: str) -> Tensor:
    return F.relu(pre) if name == "relu" else F.silu(pre)


def _activation_slope(pre: Tensor, name: str) -> Tensor:
    if name == "relu":
        return (pre > 0).to(pre.dtype)
    sig = torch.sigmoid(pre)
    return sig * (1 + pre * (1 - sig))


def _forward_loop_torch(drive, kappa, gain, w_mem, hidden_w, hidden_b, w_out, b_out, activation):
    """drive [B, T, h] → (memory [B, T, d_m], tanh part [B, T, d_m], pre-activation [B, T, h] per layer)."""
    batch, steps, hidden = drive.shape
    memory = drive.new_empty(steps, batch, kappa.shape[0])
    tanh_part = torch.empty_like(memory)
    pre = [drive.new_empty(steps, batch, hidden) for _ in range(len(hidden_w) + 1)]
    m = drive.new_zeros(batch, kappa.shape[0])
    amplified_gain = DELTA_M_AMPLITUDE * gain
    for t in range(steps):
        p = torch.addmm(drive[:, t], kappa * m, w_mem.t())
        pre[0][t] = p
        for i, (w, b) in enumerate(zip(hidden_w, hidden_b)):
            p = torch.addmm(b, _activation(p, activation), w.t())
            pre[i + 1][t] = p
        d = torch.tanh(DELTA_M_SLOPE * torch.addmm(b_out, _activation(p, activation), w_out.t()))
        tanh_part[t] = d
        m = kappa * m + amplified_gain * d
        memory[t] = m
    return memory.transpose(0, 1), tanh_part.transpose(0, 1), [p.transpose(0, 1) for p in pre]


def _backward_loop_torch(grad_memory, kappa, gain, w_mem, hidden_w, w_out, tanh_part, pre, activation):
    """Reverse-time loop over [B, T, …] tensors → (∂L/∂pre per layer, ∂L/∂z, total ∂L/∂m_t)."""
    batch, steps, d_m = grad_memory.shape
    grad_pre = [p.new_empty(steps, batch, p.shape[-1]) for p in pre]
    grad_z = grad_memory.new_empty(steps, batch, d_m)
    grad_m = torch.empty_like(grad_z)
    carry = grad_memory.new_zeros(batch, d_m)
    z_gain = DELTA_M_AMPLITUDE * DELTA_M_SLOPE * gain
    for t in range(steps - 1, -1, -1):
        gm = grad_memory[:, t] + carry
        grad_m[t] = gm
        gz = gm * z_gain * (1 - tanh_part[:, t] ** 2)
        grad_z[t] = gz
        gh = gz @ w_out
        for i in range(len(pre) - 1, -1, -1):
            gp = gh * _activation_slope(pre[i][:, t], activation)
            grad_pre[i][t] = gp
            if i:
                gh = gp @ hidden_w[i - 1]
        carry = kappa * (gm + gp @ w_mem)
    return [g.transpose(0, 1) for g in grad_pre], grad_z.transpose(0, 1), grad_m.transpose(0, 1)


class MemoryRecurrence(torch.autograd.Function):
    """m [B, T, d_m] from drive [B, T, h] (see module docstring); first-order gradients hand-written.

    Inputs: activation name, drive, κ [d_m], g [d_m], W_mem [h, d_m], W_out [d_m, h], c_out [d_m], then
    the hidden layers' weights [h, h] and biases [h] alternating. The forward keeps every layer's
    pre-activations and tanh(2/3 z) for the backward.
    """

    @staticmethod
    def forward(ctx, activation, drive, kappa, gain, w_mem, w_out, b_out, *hidden):
        hidden_w, hidden_b = hidden[0::2], hidden[1::2]
        forward_loop, _ = _loops(drive.device)
        memory, tanh_part, pre = forward_loop(drive, kappa, gain, w_mem, hidden_w, hidden_b, w_out, b_out, activation)
        ctx.activation = activation
        ctx.save_for_backward(kappa, gain, w_mem, w_out, memory, tanh_part, *pre, *hidden_w)
        return memory.contiguous()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        kappa, gain, w_mem, w_out, memory, tanh_part, *rest = ctx.saved_tensors
        n_hidden = (len(rest) - 1) // 2
        pre, hidden_w = rest[: n_hidden + 1], rest[n_hidden + 1 :]
        activation = ctx.activation
        _, backward_loop = _loops(grad_output.device)
        grad_pre, grad_z, grad_m = backward_loop(
            grad_output, kappa, gain, w_mem, hidden_w, w_out, tanh_part, pre, activation
        )
        previous = F.pad(memory[:, :-1], (0, 0, 1, 0))

        def rows(a: Tensor) -> Tensor:
            return a.reshape(-1, a.shape[-1])

        needs = ctx.needs_input_grad
        grad_drive = grad_pre[0] if needs[1] else None
        grad_kappa = ((grad_m + grad_pre[0] @ w_mem) * previous).sum((0, 1)) if needs[2] else None
        grad_gain = DELTA_M_AMPLITUDE * (grad_m * tanh_part).sum((0, 1)) if needs[3] else None
        grad_w_mem = rows(grad_pre[0]).t() @ rows(kappa * previous) if needs[4] else None
        grad_hidden = []
        for i in range(n_hidden):
            below = rows(_activation(pre[i], activation))
            grad_hidden += [rows(grad_pre[i + 1]).t() @ below, rows(grad_pre[i + 1]).sum(0)]
        top = rows(_activation(pre[-1], activation))
        grad_w_out = rows(grad_z).t() @ top
        grad_b_out = rows(grad_z).sum(0)
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

BACKEND_ENV = "NEURONCOMPUTE_ELM_BACKEND"  # "auto" (default): C++ loops on CPU when they compile; "torch": torch ops
BACKENDS = ("auto", "torch")
KERNEL_SOURCE = Path(__file__).with_name("csrc") / "elm_kernels.cpp"


def _backend() -> str:
    """The backend the environment asks for, read at every call (a test or a worker may change it)."""
    backend = os.environ.get(BACKEND_ENV, "auto")
    if backend not in BACKENDS:
        raise ValueError(f"{BACKEND_ENV} must be 'auto' or 'torch', got {backend!r}")
    return backend


def _cache_dir() -> Path:
    """``$NEURONCOMPUTE_CACHE/torch_extensions``, else ``~/.cache/neuroncompute/torch_extensions``."""
    return cache_dir("torch_extensions")


@functools.cache
def _cpp_module():
    """The compiled extension, or None (logged) when it cannot be built. Built once per source version."""
    from torch.utils.cpp_extension import load

    flags = ["-O3", f"-DELM_DELTA_M_AMPLITUDE={DELTA_M_AMPLITUDE!r}", f"-DELM_DELTA_M_SLOPE={DELTA_M_SLOPE!r}"]
    source = KERNEL_SOURCE.read_bytes()
    digest = hashlib.sha256(source + " ".join(flags).encode() + torch.__version__.encode()).hexdigest()[:12]
    name = f"elm_recurrence_{digest}"
    build_dir = _cache_dir() / name
    try:
        build_dir.mkdir(parents=True, exist_ok=True)
        module = load(name=name, sources=[str(KERNEL_SOURCE)], extra_cflags=flags, build_directory=str(build_dir))
    except Exception as error:  # a missing compiler or ninja surfaces as various exception types
        log.warning("ELM memory recurrence: C++ extension unavailable (%s); using torch ops", error)
        return None
    log.info("ELM memory recurrence: C++ extension %s", build_dir)
    return module


def _forward_loop_cpp(drive, kappa, gain, w_mem, hidden_w, hidden_b, w_out, b_out, activation):
    transposed = [w.t().contiguous() for w in hidden_w]
    out = _cpp_module().recurrence_forward(
        drive.contiguous(),
        kappa.contiguous(),
        gain.contiguous(),
        w_mem.t().contiguous(),
        transposed,
        [b.contiguous() for b in hidden_b],
        w_out.t().contiguous(),
        b_out.contiguous(),
        activation == "silu",
    )
    return out[0], out[1], out[2:]


def _backward_loop_cpp(grad_memory, kappa, gain, w_mem, hidden_w, w_out, tanh_part, pre, activation):
    out = _cpp_module().recurrence_backward(
        grad_memory.contiguous(),
        kappa.contiguous(),
        gain.contiguous(),
        w_mem.contiguous(),
        [w.contiguous() for w in hidden_w],
        w_out.contiguous(),
        tanh_part.contiguous(),
        [p.contiguous() for p in pre],
        activation == "silu",
    )
    return out[2:], out[0], out[1]


_TORCH_LOOPS = (_forward_loop_torch, _backward_loop_torch)
_CPP_LOOPS = (_forward_loop_cpp, _backward_loop_cpp)


def _use_cpp(device: torch.device) -> bool:
    return _backend() == "auto" and device.type == "cpu" and _cpp_module() is not None


def _loops(device: torch.device):
    return _CPP_LOOPS if _use_cpp(device) else _TORCH_LOOPS


def recurrence_backend(device: torch.device | str = "cpu") -> str:
    """Implementation the input projection and memory recurrence use on `device`: "cpp" or "torch"."""
    return "cpp" if _use_cpp(torch.device(device)) else "torch"
