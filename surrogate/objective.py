"""The training objective and the validation scores (Spieler et al. 2023): the loss of a window, and the loss,
spike ROC AUC and soma RMSE of whole validation simulations (the scores of :mod:`conventions.scores`)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from conventions.scores import soma_rmse, spike_auc
from conventions.signals import soma_from_target, soma_target
from surrogate.data import NeuronIOData


def window_loss(y: Tensor, spike: Tensor, soma: Tensor, burn_in_ms: int) -> Tensor:
    """0.5 · BCE-with-logits(spike) + 0.5 · MSE(scaled soma), averaged over steps t ≥ burn_in_ms.

    Args:
        y: [B, T, 2] model output (spike logit, scaled soma).
        spike: [B, T] spike labels 0/1.
        soma: [B, T] scaled soma target (see conventions.signals.soma_target).
    """
    y, spike, soma = y[:, burn_in_ms:], spike[:, burn_in_ms:], soma[:, burn_in_ms:]
    return 0.5 * F.binary_cross_entropy_with_logits(y[..., 0], spike) + 0.5 * F.mse_loss(y[..., 1], soma)


def validation_metrics(y: np.ndarray, data: NeuronIOData, burn_in_ms: int) -> dict:
    """Loss, spike ROC AUC and soma RMSE (mV, clipped voltage) of whole-simulation outputs y [N, T, 2].

    The AUC is NaN when the validation labels after the burn-in hold a single class.
    """
    loss = window_loss(torch.from_numpy(y), torch.from_numpy(data.spike_labels.astype(np.float32)),
                       torch.from_numpy(soma_target(data.soma_mv).astype(np.float32)), burn_in_ms)
    return {"valid_loss": float(loss),
            "valid_auc": spike_auc(data.spike_labels[:, burn_in_ms:], y[:, burn_in_ms:, 0]),
            "valid_rmse_mv": soma_rmse(data.soma_mv[:, burn_in_ms:],
                                       soma_from_target(y[:, burn_in_ms:, 1].astype(np.float64)))}
