"""The fast ELM path against the plain step loop (forward and gradients), gradcheck of the hand-written
backward, and the vectorised pieces (trace filter, sparse input projection) against direct computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import surrogate.elm_fused as fused
from surrogate.elm import ELM
from surrogate.elm_config import ELMConfig

BACKENDS = ["auto", "torch"]


@pytest.fixture(params=BACKENDS)
def backend(request, monkeypatch):
    """Runs a test with the C++ kernels ("auto" on CPU) and with the torch-ops fallback."""
    monkeypatch.setenv(fused.BACKEND_ENV, request.param)
    if request.param == "auto" and fused.recurrence_backend("cpu") != "cpp":
        pytest.skip("C++ extension could not be built here; the torch-ops backend is tested instead")
    return request.param


CONFIGS = {
    "branch-v1": dict(n_inputs=30, d_memory=4, n_branches=5, synapses_per_branch=8),
    "branch-v2-random": dict(
        n_inputs=30, d_memory=4, n_branches=5, synapses_per_branch=8, version=2, routing="random", routing_seed=2
    ),
    "vanilla-silu-2layer-learned-tau": dict(
        n_inputs=12, d_memory=3, mlp_hidden=6, mlp_layers=2, activation="silu", lambda_value=3.0, learn_tau_m=True
    ),
    "released-branch-elm": dict(n_branches=45, synapses_per_branch=100),
}


def _run(model, x, fast, weights):
    model.zero_grad(set_to_none=True)
    model.fast = fast
    y = model(x)
    (y * weights).mean().backward()
    return y.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_fast_matches_plain_loop_float32(name, backend):
    torch.manual_seed(0)
    config = ELMConfig(**CONFIGS[name])
    model = ELM(config)
    with torch.no_grad():
        model._proto_w_s.uniform_(-0.3, 1.0)
        model.w_y.weight.mul_(3.0)
    steps = 60
    spikes = torch.rand(3, steps, config.n_inputs) < 0.03
    x = spikes.float() * torch.randint(1, 3, spikes.shape) * torch.where(torch.rand(config.n_inputs) < 0.5, 1.0, -1.0)
    weights = torch.randn(3, steps, 2)
    y_fast, g_fast = _run(model, x, True, weights)
    y_plain, g_plain = _run(model, x, False, weights)
    assert (y_fast - y_plain).abs().max() < 1e-5
    assert y_plain.abs().max() > 0.1
    for key, reference in g_plain.items():
        assert reference.abs().max() > 0, key
        assert (g_fast[key] - reference).abs().max() < 1e-5, key


def test_fast_matches_plain_loop_float64_exactly(backend):
    torch.manual_seed(1)
    model = ELM(ELMConfig(**CONFIGS["vanilla-silu-2layer-learned-tau"])).double()
    x = torch.randint(-1, 2, (2, 40, 12)).double()
    weights = torch.randn(2, 40, 2, dtype=torch.float64)
    y_fast, g_fast = _run(model, x, True, weights)
    y_plain, g_plain = _run(model, x, False, weights)
    torch.testing.assert_close(y_fast, y_plain, rtol=0, atol=1e-12)
    for key, reference in g_plain.items():
        torch.testing.assert_close(g_fast[key], reference, rtol=0, atol=1e-12)


@pytest.mark.parametrize("activation, layers", [("relu", 1), ("silu", 2)])
def test_memory_recurrence_gradcheck(activation, layers, backend):
    generator = torch.Generator().manual_seed(3)

    def param(*shape, scale=0.5):
        return (scale * torch.randn(*shape, generator=generator, dtype=torch.float64)).requires_grad_()

    batch, steps, hidden, d_m = 2, 7, 4, 3
    drive = param(batch, steps, hidden, scale=1.0)
    kappa = torch.tensor([0.3, 0.7, 0.95], dtype=torch.float64, requires_grad=True)
    gain = torch.tensor([2.0, 1.1, 0.2], dtype=torch.float64, requires_grad=True)
    hidden_w = tuple(param(hidden, hidden) for _ in range(layers - 1))
    hidden_b = tuple(param(hidden) for _ in range(layers - 1))
    inputs = (drive, kappa, gain, param(hidden, d_m), hidden_w, hidden_b, param(d_m, hidden), param(d_m))

    def f(drive, kappa, gain, w_mem, w_out, b_out, *hidden):
        return fused.memory_recurrence(
            drive, kappa, gain, w_mem, hidden[0::2], hidden[1::2], w_out, b_out, activation
        )

    flat = (*inputs[:4], inputs[6], inputs[7], *[p for pair in zip(hidden_w, hidden_b) for p in pair])
    assert torch.autograd.gradcheck(f, flat, eps=1e-6, atol=1e-7)


def test_exp_filter_against_loop(backend):
    rng = np.random.default_rng(0)
    for steps, chunk in [(1, 4), (10, 4), (203, 64), (64, 64)]:
        u = rng.normal(size=(2, steps, 3))
        expected = np.zeros_like(u)
        state = np.zeros((2, 3))
        for t in range(steps):
            state = 0.8 * state + u[:, t]
            expected[:, t] = state
        y = fused.exp_filter(torch.from_numpy(u), 0.8, chunk=chunk).numpy()
        np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
        blocked = fused.exp_filter_blocked(torch.from_numpy(u), 0.8, chunk=chunk).numpy()
        np.testing.assert_allclose(blocked, expected, rtol=1e-12, atol=1e-12)


def test_exp_filter_gradcheck(backend):
    u = torch.randn(2, 11, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: fused.exp_filter(v, 0.7, chunk=4), (u,))
    assert torch.autograd.gradcheck(lambda v: fused.exp_filter_blocked(v, 0.7, chunk=4), (u,))


@pytest.mark.parametrize("density", [0.02, 0.5])
def test_input_projection_matches_dense(density, backend):
    """Sparse kernel below SPARSE_MAX_DENSITY, dense fallback above it; both equal x @ w with its gradient."""
    torch.manual_seed(4)
    # 40 columns: two blocks of 16 that the scan may skip and a tail of 8; some signed zeros too.
    x = (torch.rand(3, 50, 40) < density).double() * torch.randint(-2, 3, (3, 50, 40)).double()
    x[0, :5] = -0.0
    w = torch.randn(40, 6, dtype=torch.float64, requires_grad=True)
    y = fused.input_projection(x, w)
    torch.testing.assert_close(y, x @ w, rtol=0, atol=1e-12)
    assert torch.autograd.gradcheck(lambda v: fused.input_projection(x, v), (w,))


def test_backend_is_reported():
    assert fused.recurrence_backend("cpu") in ("cpp", "torch")
    assert fused.recurrence_backend("meta") == "torch"


def test_unknown_backend_rejected(monkeypatch):
    monkeypatch.setenv(fused.BACKEND_ENV, "cuda-magic")
    with pytest.raises(ValueError, match="NEURONCOMPUTE_ELM_BACKEND"):
        fused.recurrence_backend("cpu")
