"""The GAN losses of CIPS-3D (spec 3.5): non-saturating logistic loss and the R1 penalty on reals.

The official D step (train.py) is, per sample i of the (possibly [main; aux]) batch,

    d_loss = mean_i( softplus(D(fake_i)) + softplus(-D(real_i)) + r1_i ),  r1_i = gamma/2 ||dD(real_i)/dx||^2

with gamma = 10 every step, and the G step is mean_i softplus(-D(G(z_i))). These functions are pure:
they take logits (and the real images the logits came from) and return tensors.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from cips3d import constants as K


def d_logistic_loss(
    real_logits: torch.Tensor,
    fake_logits: torch.Tensor,
    penalty: torch.Tensor | None = None,
    *,
    reduce: bool = True,
) -> torch.Tensor:
    """Discriminator loss softplus(fake) + softplus(-real) [+ penalty], per sample or averaged.

    Args:
        real_logits: [N, 1] D logits of real images.
        fake_logits: [N, 1] D logits of generated images (same N: row i pairs with row i).
        penalty: optional [N, 1] per-sample regulariser (e.g. `r1_penalty`), added before the mean as
            the official code does.
        reduce: True returns the mean (a scalar), False the [N, 1] per-sample terms.
    """
    loss = F.softplus(fake_logits) + F.softplus(-real_logits)
    if penalty is not None:
        loss = loss + penalty
    return loss.mean() if reduce else loss


def g_nonsaturating_loss(fake_logits: torch.Tensor, *, reduce: bool = True) -> torch.Tensor:
    """Generator loss softplus(-D(G(z))): [N, 1] logits -> scalar mean (or [N, 1] with reduce=False)."""
    loss = F.softplus(-fake_logits)
    return loss.mean() if reduce else loss


def r1_penalty(
    real_logits: torch.Tensor, real_images: torch.Tensor | Sequence[torch.Tensor], gamma: float = K.R1_GAMMA
) -> torch.Tensor:
    """Per-sample R1 penalty gamma/2 * ||d sum(logits) / d x_i||^2 (Mescheder et al. 2018).

    The gradient is taken with `create_graph=True`, so the penalty can be backpropagated into the
    discriminator parameters (a double backward).

    Args:
        real_logits: [N, 1] logits computed from `real_images` (with autograd recording).
        real_images: [N, C, H, W] (or any [N, ...]) with requires_grad; the gradient of sample i only
            depends on logit i, because the discriminator treats samples independently. Or a list of
            such leaves whose rows follow each other in the logits (CIPS-3D's main reals, then the aux
            reals: each copy of a real image gets its own gradient, as the official [x; x] batch does).
        gamma: the R1 weight (official r1_lambda = 10).

    Returns:
        [N, 1] penalties.
    """
    leaves = [real_images] if isinstance(real_images, torch.Tensor) else list(real_images)
    grads = torch.autograd.grad(real_logits.sum(), leaves, create_graph=True)
    return torch.cat([0.5 * gamma * g.flatten(1).square().sum(1, keepdim=True) for g in grads])
