"""Fast ELM building blocks: a sparse input projection and an exponential trace filter over whole windows, and
the memory recurrence as a custom autograd Function with a hand-written backward.

The memory recurrence (see `surrogate.elm`), with the branch part of the MLP's first layer precomputed as
`drive` a_t [B, T, h]:

    pre_0 = a_t + W_mem (κ ⊙ m_{t-1});   h_i = act(pre_i);   pre_i = W_i h_{i-1} + c_i (hidden layers i ≥ 1)
    Δm_t = 1.7159 tanh(2/3 (W_out h_last + c_out));   m_t = κ ⊙ m_{t-1} + g ⊙ Δm_t

Only the loops over t are sequential (forward: the MLP at each step; backward: the matrix-vector products that
carry ∂L/∂m back in time). Weight gradients are summed over all (b, t) afterwards with one matrix product each.
The loops (and the sparse input projection) run in a small C++ extension on CPU, compiled once into
$NEURONCOMPUTE_CACHE/torch_extensions (default ~/.cache/neuroncompute), or as torch ops on other devices, when
the compiler is unavailable, or when the environment sets NEURONCOMPUTE_ELM_BACKEND=torch;
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

# "auto": the C++ loops on CPU when they compile, torch ops otherwise; "torch": always torch ops.
BACKEND = os.environ.get("NEURONCOMPUTE_ELM_BACKEND", "auto")

_CPP_SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

namespace {

constexpr double kAmplitude = 1.7159;
constexpr double kSlope = 2.0 / 3.0;

template <typename T, bool Silu> inline T act(T x) {
  if (Silu) return x / (T(1) + std::exp(-x));
  return x > T(0) ? x : T(0);
}

template <typename T, bool Silu> inline T act_slope(T x) {
  if (!Silu) return x > T(0) ? T(1) : T(0);
  const T s = T(1) / (T(1) + std::exp(-x));
  return s * (T(1) + x * (T(1) - s));
}

// Batch elements are independent over the whole window, so threads split the batch and each runs its own
// time loop. Forward weights come transposed so the inner loops are contiguous axpys (they vectorise without
// reassociating sums); backward weights come in their natural layout for the same reason.
template <typename T, bool Silu>
void forward_kernel(const T* drive, const T* kappa, const T* gain, const T* w_mem_t,
                    const std::vector<const T*>& hidden_w_t, const std::vector<const T*>& hidden_b,
                    const T* w_out_t, const T* b_out, T* memory, T* tanh_part, const std::vector<T*>& pre,
                    int64_t B, int64_t S, int64_t H, int64_t D) {
  const int64_t L = static_cast<int64_t>(hidden_w_t.size());
  at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    std::vector<T> m(D), km(D), h(H), z(D);
    for (int64_t b = b0; b < b1; ++b) {
      std::fill(m.begin(), m.end(), T(0));
      for (int64_t t = 0; t < S; ++t) {
        const int64_t row_h = (b * S + t) * H, row_d = (b * S + t) * D;
        for (int64_t j = 0; j < D; ++j) km[j] = kappa[j] * m[j];
        T* p = pre[0] + row_h;
        for (int64_t i = 0; i < H; ++i) p[i] = drive[row_h + i];
        for (int64_t j = 0; j < D; ++j) {
          const T kj = km[j];
          const T* w = w_mem_t + j * H;
          for (int64_t i = 0; i < H; ++i) p[i] += w[i] * kj;
        }
        for (int64_t l = 0; l < L; ++l) {
          for (int64_t i = 0; i < H; ++i) h[i] = act<T, Silu>(p[i]);
          p = pre[l + 1] + row_h;
          for (int64_t i = 0; i < H; ++i) p[i] = hidden_b[l][i];
          for (int64_t k = 0; k < H; ++k) {
            const T hk = h[k];
            const T* w = hidden_w_t[l] + k * H;
            for (int64_t i = 0; i < H; ++i) p[i] += w[i] * hk;
          }
        }
        for (int64_t i = 0; i < H; ++i) h[i] = act<T, Silu>(p[i]);
        for (int64_t j = 0; j < D; ++j) z[j] = b_out[j];
        for (int64_t k = 0; k < H; ++k) {
          const T hk = h[k];
          const T* w = w_out_t + k * D;
          for (int64_t j = 0; j < D; ++j) z[j] += w[j] * hk;
        }
        for (int64_t j = 0; j < D; ++j) {
          const T d = std::tanh(T(kSlope) * z[j]);
          tanh_part[row_d + j] = d;
          m[j] = km[j] + T(kAmplitude) * gain[j] * d;
          memory[row_d + j] = m[j];
        }
      }
    }
  });
}

template <typename T, bool Silu>
void backward_kernel(const T* grad_memory, const T* kappa, const T* gain, const T* w_mem,
                     const std::vector<const T*>& hidden_w, const T* w_out, const T* tanh_part,
                     const std::vector<const T*>& pre, const std::vector<T*>& grad_pre, T* grad_z, T* grad_m,
                     int64_t B, int64_t S, int64_t H, int64_t D) {
  const int64_t L = static_cast<int64_t>(hidden_w.size());
  at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    std::vector<T> carry(D), gh(H), acc(D);
    for (int64_t b = b0; b < b1; ++b) {
      std::fill(carry.begin(), carry.end(), T(0));
      for (int64_t t = S - 1; t >= 0; --t) {
        const int64_t row_h = (b * S + t) * H, row_d = (b * S + t) * D;
        std::fill(gh.begin(), gh.end(), T(0));
        for (int64_t j = 0; j < D; ++j) {
          const T gm = grad_memory[row_d + j] + carry[j];
          grad_m[row_d + j] = gm;
          acc[j] = gm;
          const T d = tanh_part[row_d + j];
          const T gz = gm * T(kAmplitude * kSlope) * gain[j] * (T(1) - d * d);
          grad_z[row_d + j] = gz;
          const T* w = w_out + j * H;
          for (int64_t k = 0; k < H; ++k) gh[k] += gz * w[k];
        }
        for (int64_t l = L; l >= 0; --l) {
          T* gp = grad_pre[l] + row_h;
          const T* p = pre[l] + row_h;
          for (int64_t i = 0; i < H; ++i) gp[i] = gh[i] * act_slope<T, Silu>(p[i]);
          if (l > 0) {
            std::fill(gh.begin(), gh.end(), T(0));
            for (int64_t i = 0; i < H; ++i) {
              const T gi = gp[i];
              const T* w = hidden_w[l - 1] + i * H;
              for (int64_t k = 0; k < H; ++k) gh[k] += gi * w[k];
            }
          }
        }
        const T* gp0 = grad_pre[0] + row_h;
        for (int64_t i = 0; i < H; ++i) {
          const T gi = gp0[i];
          const T* w = w_mem + i * D;
          for (int64_t j = 0; j < D; ++j) acc[j] += gi * w[j];
        }
        for (int64_t j = 0; j < D; ++j) carry[j] = kappa[j] * acc[j];
      }
    }
  });
}

void check(const torch::Tensor& t, const torch::Tensor& like, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be on the CPU");
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
  TORCH_CHECK(t.scalar_type() == like.scalar_type(), name, " has a different dtype");
}

template <typename T>
std::vector<const T*> const_ptrs(const std::vector<torch::Tensor>& ts, const torch::Tensor& like) {
  std::vector<const T*> out;
  for (const auto& t : ts) {
    check(t, like, "a per-layer tensor");
    out.push_back(t.data_ptr<T>());
  }
  return out;
}

}  // namespace

// Input spike counts are sparse (a few % of bins at most), so the input projection scans x once into CSR
// form and multiplies only the non-zeros; the backward reuses the CSR arrays. The scan is one pass over x
// (rows split into parts, each collecting its non-zeros, then stitched) and skips all-zero blocks of 16 with
// an integer OR of their bit patterns, so it runs at memory speed.
template <typename T> inline bool block_is_zero(const T* p) {
  using U = typename std::conditional<sizeof(T) == 4, uint32_t, uint64_t>::type;
  U acc = 0;
  for (int k = 0; k < 16; ++k) {
    U u;
    std::memcpy(&u, p + k, sizeof(T));
    acc |= u << 1;  // drop the sign bit: -0.0 is a zero
  }
  return acc == 0;
}

std::vector<torch::Tensor> dense_to_csr(torch::Tensor x) {
  check(x, x, "x");
  TORCH_CHECK(x.dim() == 2, "x must be 2-D");
  const int64_t N = x.size(0), C = x.size(1);
  auto row_ptr = torch::zeros({N + 1}, x.options().dtype(torch::kLong));
  int64_t* rp = row_ptr.data_ptr<int64_t>();
  torch::Tensor col, val;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "dense_to_csr", [&] {
    const scalar_t* xp = x.data_ptr<scalar_t>();
    const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(N, 4 * at::get_num_threads()));
    std::vector<std::vector<int64_t>> cols(parts);
    std::vector<std::vector<scalar_t>> vals(parts);
    at::parallel_for(0, parts, 1, [&](int64_t p0, int64_t p1) {
      for (int64_t part = p0; part < p1; ++part) {
        auto& cv = cols[part];
        auto& vv = vals[part];
        for (int64_t r = N * part / parts; r < N * (part + 1) / parts; ++r) {
          const scalar_t* row = xp + r * C;
          int64_t c = 0;
          for (; c + 16 <= C; c += 16) {
            if (block_is_zero(row + c)) continue;
            for (int64_t k = c; k < c + 16; ++k) {
              if (row[k] != scalar_t(0)) {
                cv.push_back(k);
                vv.push_back(row[k]);
              }
            }
          }
          for (; c < C; ++c) {
            if (row[c] != scalar_t(0)) {
              cv.push_back(c);
              vv.push_back(row[c]);
            }
          }
          rp[r + 1] = static_cast<int64_t>(cv.size());  // within the part; offset below
        }
      }
    });
    std::vector<int64_t> offset(parts + 1, 0);
    for (int64_t part = 0; part < parts; ++part) offset[part + 1] = offset[part] + cols[part].size();
    col = torch::empty({offset[parts]}, x.options().dtype(torch::kLong));
    val = torch::empty({offset[parts]}, x.options());
    int64_t* cp = col.data_ptr<int64_t>();
    scalar_t* vp = val.data_ptr<scalar_t>();
    at::parallel_for(0, parts, 1, [&](int64_t p0, int64_t p1) {
      for (int64_t part = p0; part < p1; ++part) {
        for (int64_t r = N * part / parts; r < N * (part + 1) / parts; ++r) rp[r + 1] += offset[part];
        std::copy(cols[part].begin(), cols[part].end(), cp + offset[part]);
        std::copy(vals[part].begin(), vals[part].end(), vp + offset[part]);
      }
    });
  });
  return {row_ptr, col, val};
}

// y_t = κ y_{t-1} + u_t along dim 1 of u [B, T, C] (reverse = false), or the adjoint g_t = u_t + κ g_{t+1}
// (reverse = true, the filter's backward). Sequential in t, parallel over B.
torch::Tensor exp_filter(torch::Tensor u, double kappa, bool reverse) {
  check(u, u, "u");
  TORCH_CHECK(u.dim() == 3, "u must be 3-D");
  const int64_t B = u.size(0), S = u.size(1), C = u.size(2);
  auto y = torch::empty_like(u);
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "exp_filter", [&] {
    const scalar_t* up = u.data_ptr<scalar_t>();
    scalar_t* yp = y.data_ptr<scalar_t>();
    const scalar_t k = static_cast<scalar_t>(kappa);
    at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        for (int64_t i = 0; i < S; ++i) {
          const int64_t t = reverse ? S - 1 - i : i;
          const scalar_t* ut = up + (b * S + t) * C;
          scalar_t* yt = yp + (b * S + t) * C;
          if (i == 0) {
            for (int64_t c = 0; c < C; ++c) yt[c] = ut[c];
          } else {
            const scalar_t* prev = yp + (b * S + (reverse ? t + 1 : t - 1)) * C;
            for (int64_t c = 0; c < C; ++c) yt[c] = k * prev[c] + ut[c];
          }
        }
      }
    });
  });
  return y;
}

torch::Tensor csr_matmul(torch::Tensor row_ptr, torch::Tensor col, torch::Tensor val, torch::Tensor w) {
  check(w, val, "w");
  const int64_t N = row_ptr.size(0) - 1, H = w.size(1);
  auto out = torch::zeros({N, H}, w.options());
  const int64_t* rp = row_ptr.data_ptr<int64_t>();
  const int64_t* cp = col.data_ptr<int64_t>();
  AT_DISPATCH_FLOATING_TYPES(w.scalar_type(), "csr_matmul", [&] {
    const scalar_t* vp = val.data_ptr<scalar_t>();
    const scalar_t* wp = w.data_ptr<scalar_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
    at::parallel_for(0, N, 64, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        scalar_t* o = op + r * H;
        for (int64_t k = rp[r]; k < rp[r + 1]; ++k) {
          const scalar_t v = vp[k];
          const scalar_t* wr = wp + cp[k] * H;
          for (int64_t h = 0; h < H; ++h) o[h] += v * wr[h];
        }
      }
    });
  });
  return out;
}

torch::Tensor csr_t_matmul(torch::Tensor row_ptr, torch::Tensor col, torch::Tensor val, torch::Tensor g,
                           int64_t n_cols) {
  check(g, val, "g");
  const int64_t N = row_ptr.size(0) - 1, H = g.size(1);
  auto out = torch::zeros({n_cols, H}, g.options());
  const int64_t* rp = row_ptr.data_ptr<int64_t>();
  const int64_t* cp = col.data_ptr<int64_t>();
  AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "csr_t_matmul", [&] {
    const scalar_t* vp = val.data_ptr<scalar_t>();
    const scalar_t* gp = g.data_ptr<scalar_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
    for (int64_t r = 0; r < N; ++r) {
      const scalar_t* gr = gp + r * H;
      for (int64_t k = rp[r]; k < rp[r + 1]; ++k) {
        const scalar_t v = vp[k];
        scalar_t* o = op + cp[k] * H;
        for (int64_t h = 0; h < H; ++h) o[h] += v * gr[h];
      }
    }
  });
  return out;
}

std::vector<torch::Tensor> recurrence_forward(torch::Tensor drive, torch::Tensor kappa, torch::Tensor gain,
                                              torch::Tensor w_mem_t, std::vector<torch::Tensor> hidden_w_t,
                                              std::vector<torch::Tensor> hidden_b, torch::Tensor w_out_t,
                                              torch::Tensor b_out, bool silu) {
  for (auto* t : {&drive, &kappa, &gain, &w_mem_t, &w_out_t, &b_out}) check(*t, drive, "an input");
  const int64_t B = drive.size(0), S = drive.size(1), H = drive.size(2), D = kappa.size(0);
  auto memory = torch::empty({B, S, D}, drive.options());
  auto tanh_part = torch::empty({B, S, D}, drive.options());
  std::vector<torch::Tensor> pre;
  for (size_t l = 0; l <= hidden_w_t.size(); ++l) pre.push_back(torch::empty({B, S, H}, drive.options()));
  AT_DISPATCH_FLOATING_TYPES(drive.scalar_type(), "elm_recurrence_forward", [&] {
    std::vector<scalar_t*> pre_ptrs;
    for (auto& p : pre) pre_ptrs.push_back(p.data_ptr<scalar_t>());
    auto hw = const_ptrs<scalar_t>(hidden_w_t, drive);
    auto hb = const_ptrs<scalar_t>(hidden_b, drive);
    auto kernel = silu ? forward_kernel<scalar_t, true> : forward_kernel<scalar_t, false>;
    kernel(drive.data_ptr<scalar_t>(), kappa.data_ptr<scalar_t>(), gain.data_ptr<scalar_t>(),
           w_mem_t.data_ptr<scalar_t>(), hw, hb, w_out_t.data_ptr<scalar_t>(), b_out.data_ptr<scalar_t>(),
           memory.data_ptr<scalar_t>(), tanh_part.data_ptr<scalar_t>(), pre_ptrs, B, S, H, D);
  });
  std::vector<torch::Tensor> out{memory, tanh_part};
  out.insert(out.end(), pre.begin(), pre.end());
  return out;
}

std::vector<torch::Tensor> recurrence_backward(torch::Tensor grad_memory, torch::Tensor kappa, torch::Tensor gain,
                                               torch::Tensor w_mem, std::vector<torch::Tensor> hidden_w,
                                               torch::Tensor w_out, torch::Tensor tanh_part,
                                               std::vector<torch::Tensor> pre, bool silu) {
  for (auto* t : {&grad_memory, &kappa, &gain, &w_mem, &w_out, &tanh_part}) check(*t, grad_memory, "an input");
  const int64_t B = grad_memory.size(0), S = grad_memory.size(1), D = grad_memory.size(2), H = w_mem.size(0);
  auto grad_z = torch::empty_like(grad_memory);
  auto grad_m = torch::empty_like(grad_memory);
  std::vector<torch::Tensor> grad_pre;
  for (size_t l = 0; l < pre.size(); ++l) grad_pre.push_back(torch::empty({B, S, H}, grad_memory.options()));
  AT_DISPATCH_FLOATING_TYPES(grad_memory.scalar_type(), "elm_recurrence_backward", [&] {
    std::vector<scalar_t*> gp_ptrs;
    for (auto& g : grad_pre) gp_ptrs.push_back(g.data_ptr<scalar_t>());
    auto hw = const_ptrs<scalar_t>(hidden_w, grad_memory);
    auto pp = const_ptrs<scalar_t>(pre, grad_memory);
    auto kernel = silu ? backward_kernel<scalar_t, true> : backward_kernel<scalar_t, false>;
    kernel(grad_memory.data_ptr<scalar_t>(), kappa.data_ptr<scalar_t>(), gain.data_ptr<scalar_t>(),
           w_mem.data_ptr<scalar_t>(), hw, w_out.data_ptr<scalar_t>(), tanh_part.data_ptr<scalar_t>(), pp,
           gp_ptrs, grad_z.data_ptr<scalar_t>(), grad_m.data_ptr<scalar_t>(), B, S, H, D);
  });
  std::vector<torch::Tensor> out{grad_z, grad_m};
  out.insert(out.end(), grad_pre.begin(), grad_pre.end());
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  // The kernels touch no Python object, so they run without the GIL: a thread that reads the next training
  // batch from disk meanwhile is not held up.
  const auto nogil = py::call_guard<py::gil_scoped_release>();
  m.def("recurrence_forward", &recurrence_forward, nogil);
  m.def("recurrence_backward", &recurrence_backward, nogil);
  m.def("dense_to_csr", &dense_to_csr, nogil);
  m.def("csr_matmul", &csr_matmul, nogil);
  m.def("csr_t_matmul", &csr_t_matmul, nogil);
  m.def("exp_filter", &exp_filter, nogil);
}
"""


def _cache_dir() -> Path:
    """``$NEURONCOMPUTE_CACHE/torch_extensions``, else ``~/.cache/neuroncompute/torch_extensions``."""
    return cache_dir("torch_extensions")


@functools.cache
def _cpp_module():
    """The compiled extension, or None (logged) when it cannot be built. Built once per source version."""
    from torch.utils.cpp_extension import load_inline

    digest = hashlib.sha256((_CPP_SOURCE + torch.__version__).encode()).hexdigest()[:12]
    name = f"elm_recurrence_{digest}"
    build_dir = _cache_dir() / name
    try:
        build_dir.mkdir(parents=True, exist_ok=True)
        module = load_inline(
            name=name,
            cpp_sources=[_CPP_SOURCE],
            extra_cflags=["-O3"],
            build_directory=str(build_dir),
        )
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
    if BACKEND not in ("auto", "torch"):
        raise ValueError(f"NEURONCOMPUTE_ELM_BACKEND must be 'auto' or 'torch', got {BACKEND!r}")
    return BACKEND == "auto" and device.type == "cpu" and _cpp_module() is not None


def _loops(device: torch.device):
    return _CPP_LOOPS if _use_cpp(device) else _TORCH_LOOPS


def recurrence_backend(device: torch.device | str = "cpu") -> str:
    """Implementation the input projection and memory recurrence use on `device`: "cpp" or "torch"."""
    return "cpp" if _use_cpp(torch.device(device)) else "torch"
