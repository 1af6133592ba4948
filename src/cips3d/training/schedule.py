"""Per-step schedules of the official trainer (spec 4.1), as pure functions of the step in a stage."""

from __future__ import annotations


def nerf_noise_std(step: int, anneal_steps: int) -> float:
    """Std of the density noise: max(0, 1 - step / anneal_steps); 0 when annealing is off."""
    if anneal_steps <= 0:
        return 0.0
    return max(0.0, 1.0 - step / anneal_steps)


def fade_alpha(step: int, fade_steps: int) -> float:
    """Weight of the full-resolution D input while it fades in: min(1, step / fade_steps)."""
    if fade_steps <= 0:
        return 1.0
    return min(1.0, step / fade_steps)


def ema_active(step: int, start: int) -> bool:
    """G_ema is left untouched before `start` (it is not copied from G either, as official)."""
    return step >= start
