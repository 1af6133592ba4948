"""Typed outputs: one field per thing, never tensors concatenated along the batch."""

from __future__ import annotations

from dataclasses import dataclass

import torch

Styles = dict[str, torch.Tensor]
"""Style vectors by official layer name ('nerf_w0', ..., 'inr_w1024_1'), each [B, D]."""


@dataclass
class GeneratorOutput:
    """Everything one generator call produces, for B images of H x W pixels."""

    img: torch.Tensor
    """[B, 3, H, W] the CIPS-3D image in [-1, 1] (INR decoder output); like `aux_img`, a permuted view of
    row-major pixels, so `.contiguous()` before `.view`."""
    aux_img: torch.Tensor
    """[B, 3, H, W] the aux NeRF image tanh(Linear(feature)) in [-1, 1]."""
    nerf_feature: torch.Tensor
    """[B, H*W, C] the volume-rendered feature per pixel, row-major: the INR's input."""
    depth: torch.Tensor
    """[B, 1, H, W] expected depth of the surface each ray hits, sum w t / sum w, along the unit ray
    (same units as ray_start / ray_end); ray_end where a ray hits nothing."""
    opacity: torch.Tensor
    """[B, 1, H, W] accumulated opacity sum_k w_k of each ray."""
    cam2world: torch.Tensor
    """[B, 4, 4] camera-to-world matrices."""
    camera_origin: torch.Tensor
    """[B, 3] camera positions."""
    pitch_yaw: torch.Tensor
    """[B, 2] (pitch, yaw) in radians of sampled or angle-built cameras; zeros for cameras given by
    position and direction, as in the official code (see `Camera.position_angles`)."""
    styles: Styles
    """The style vectors used (after truncation)."""
