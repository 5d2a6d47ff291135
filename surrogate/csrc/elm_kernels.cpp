// ELM kernels of surrogate/elm_fused.py: memory recurrence (forward, backward), sparse input projection,
// exponential trace filter. Compiled once by torch.utils.cpp_extension.load into the toolkit's cache.
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

namespace {

// Defined once, in surrogate/elm_fused.py (DELTA_M_AMPLITUDE, DELTA_M_SLOPE), and passed as -D flags.
constexpr double kAmplitude = ELM_DELTA_M_AMPLITUDE;
constexpr double kSlope = ELM_DELTA_M_SLOPE;

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
  // The kernels touch no Python object, so they run without the GIL: other Python threads (a data reader, a
  // notebook) keep running meanwhile.
  const auto nogil = py::call_guard<py::gil_scoped_release>();
  m.def("recurrence_forward", &recurrence_forward, nogil);
  m.def("recurrence_backward", &recurrence_backward, nogil);
  m.def("dense_to_csr", &dense_to_csr, nogil);
  m.def("csr_matmul", &csr_matmul, nogil);
  m.def("csr_t_matmul", &csr_t_matmul, nogil);
  m.def("exp_filter", &exp_filter, nogil);
}
