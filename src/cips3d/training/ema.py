"""Exponential moving average of the generator's weights (official: decay 0.999 from step 1000)."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model for every trained parameter.

    Frozen parameters (requires_grad False) are copied instead, so that weights which never train stay
    bit-identical in the EMA copy (a blend of two equal floats is not always exact). Buffers (the
    truncation mean) are left alone: the snapshot writer recomputes G_ema's own.
    """
    model_params = dict(model.named_parameters())
    for name, ema_param in ema.named_parameters():
        param = model_params[name]
        if param.requires_grad:
            ema_param.lerp_(param, 1 - decay)
        else:
            ema_param.copy_(param)
