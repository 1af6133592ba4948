"""One discriminator step and one generator step (spec 4.1 steps 5-6), each a short function.

Both draw only from the explicit generators in `StepRandom`, skip the optimiser step (and say so)
when the loss or the gradient norm is not finite, and return plain floats for logging.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn

from cips3d.config import PoseConfig, RenderConfig
from cips3d.models.generator3d import Generator3D
from cips3d.nn.modes import frozen_weights
from cips3d.training.losses import d_logistic_loss, g_nonsaturating_loss, r1_penalty


@dataclass(frozen=True)
class StepSettings:
    """What one training iteration needs to know about its stage and step."""

    render: RenderConfig
    """Image size, sampling, density noise of this step, and grad_rays for the G step."""
    pose: PoseConfig
    batch_size: int
    aux: bool
    """Aux images go to the aux discriminator (and reals are duplicated for it)."""
    alpha: float
    """Fade-in weight of the discriminator input."""
    augment: object | None
    """DiffAugment settings, or None."""
    r1_gamma: float
    r1_scale: float
    """0 on steps without R1; the lazy-R1 interval on steps with it."""
    grad_clip: float
    nerf_grad: bool
    """False when the NeRF is frozen: its side renders without gradients."""


@dataclass
class StepRandom:
    """The training run's random sources (saved in every snapshot for exact resume)."""

    g: torch.Generator
    """Latents, cameras and render draws."""
    d: torch.Generator
    """DiffAugment draws."""


GradientAverage = Callable[[Iterable[nn.Parameter], torch.Tensor], torch.Tensor]
"""(parameters, loss) -> mean loss over the processes, after averaging the parameters' gradients in place
(`World.average_gradients`); data-parallel training passes it to both steps."""


def no_average(params: Iterable[nn.Parameter], loss: torch.Tensor) -> torch.Tensor:
    """A single process: the loss as it is, the gradients untouched."""
    return loss


def _scalar(t: torch.Tensor) -> float:
    return float(t.detach())


def clip_or_skip(params: Iterable[nn.Parameter], max_norm: float, loss: torch.Tensor) -> tuple[bool, float]:
    """Clip the total gradient norm to `max_norm`, unless the loss or the norm is not finite: then all
    gradients are dropped so the optimiser step does nothing. (The official clip lets NaN through.)

    Returns (step is safe, total norm before clipping).
    """
    params = [p for p in params if p.grad is not None]
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm) if params else torch.zeros(())
    ok = bool(torch.isfinite(loss)) and bool(torch.isfinite(norm))
    if not ok:
        for p in params:
            p.grad = None
    return ok, float(norm)


def generate(G: Generator3D, settings: StepSettings, random: StepRandom, render: RenderConfig):
    """Fresh latents and cameras -> (images, aux images or None)."""
    z_nerf, z_inr = G.sample_latents(settings.batch_size, random.g)
    out = G(
        z_nerf, z_inr, pose=settings.pose, render=render, generator=random.g, nerf_grad=settings.nerf_grad
    )
    return out.img, (out.aux_img if settings.aux else None)


def discriminate(
    D: nn.Module, images: torch.Tensor, aux: torch.Tensor | None, settings, random
) -> torch.Tensor:
    """Logits [B or 2B, 1] of the main D on `images` and the aux D on `aux` (when given)."""
    return D(images, aux, alpha=settings.alpha, augment=settings.augment, generator=random.d)


def d_step(
    G: Generator3D,
    D: nn.Module,
    opt: torch.optim.Optimizer,
    reals: torch.Tensor,
    settings: StepSettings,
    random,
    average: GradientAverage = no_average,
) -> dict[str, float]:
    """Non-saturating logistic D loss on fresh fakes, plus R1 on the reals when scheduled.

    `average` (data-parallel runs) makes the gradients and the loss those of all processes together
    before the clip-or-skip decision, so every process decides alike."""
    with torch.no_grad():
        fake, fake_aux = generate(G, settings, random, settings.render)
    with_r1 = settings.r1_scale > 0
    real_main = reals.detach().clone().requires_grad_(with_r1)
    real_aux = reals.detach().clone().requires_grad_(with_r1) if settings.aux else None
    real_logits = discriminate(D, real_main, real_aux, settings, random)
    r1 = torch.zeros_like(real_logits)
    if with_r1:
        leaves = [real_main] + ([real_aux] if real_aux is not None else [])
        r1 = r1_penalty(real_logits, leaves, settings.r1_gamma) * settings.r1_scale
    fake_logits = discriminate(D, fake, fake_aux, settings, random)
    loss = d_logistic_loss(real_logits, fake_logits, r1)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    loss = average(D.parameters(), loss)
    ok, norm = clip_or_skip(D.parameters(), settings.grad_clip, loss)
    if ok:
        opt.step()
    return {
        "d_loss": _scalar(loss),
        "r1": _scalar(r1.mean()),
        "d_real": _scalar(real_logits.mean()),
        "d_fake": _scalar(fake_logits.mean()),
        "d_grad_norm": norm,
        "d_skipped": float(not ok),
    }


def g_step(
    G: Generator3D,
    D: nn.Module,
    opt: torch.optim.Optimizer,
    settings: StepSettings,
    random,
    average: GradientAverage = no_average,
) -> dict[str, float]:
    """Non-saturating G loss through a D whose parameters do not collect gradients (`average`: as in
    `d_step`)."""
    with frozen_weights(D):
        fake, fake_aux = generate(G, settings, random, settings.render)
        logits = discriminate(D, fake, fake_aux, settings, random)
        loss = g_nonsaturating_loss(logits)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    loss = average(G.parameters(), loss)
    ok, norm = clip_or_skip(G.parameters(), settings.grad_clip, loss)
    if ok:
        opt.step()
    return {"g_loss": _scalar(loss), "g_grad_norm": norm, "g_skipped": float(not ok)}
