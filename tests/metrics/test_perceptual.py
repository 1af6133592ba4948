"""The perceptual distance on FID Inception features: a distance that ranks small perturbations of a
face below another face, differentiable, and refusing unknown layers."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from cips3d.data.lfw import lfw_faces
from cips3d.metrics.inception_net import FIDInceptionV3
from cips3d.metrics.perceptual import LAYERS, PerceptualDistance, load_perceptual


@pytest.fixture(scope="module")
def distance() -> PerceptualDistance:
    return load_perceptual()


@pytest.fixture(scope="module")
def faces() -> torch.Tensor:
    return torch.from_numpy(lfw_faces(32)[:4]).permute(0, 3, 1, 2).float() / 127.5 - 1


def test_it_is_a_distance_that_ranks_perturbations_below_other_faces(distance, faces):
    a, b = faces[:2], faces[2:]
    assert torch.equal(distance(a, a), torch.zeros(2))
    assert torch.allclose(distance(a, b), distance(b, a))
    noisy = a + 0.05 * torch.randn(a.shape, generator=torch.Generator().manual_seed(0))
    blurred = F.avg_pool2d(F.pad(a, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    other = distance(a, b)
    assert (distance(a, noisy) < other).all() and (distance(a, blurred) < other).all()
    assert (other < 4 * len(LAYERS)).all()  # each term compares unit vectors


def test_gradients_reach_the_images_and_not_the_network(distance, faces):
    x = faces[:1].clone().requires_grad_()
    distance(x, faces[1:2]).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in distance.parameters())


def test_only_the_blocks_up_to_the_last_layer_are_kept_and_unknown_layers_are_refused():
    net = FIDInceptionV3()
    assert list(PerceptualDistance(net, ["Conv2d_2b_3x3"]).blocks) == [
        "Conv2d_1a_3x3",
        "Conv2d_2a_3x3",
        "Conv2d_2b_3x3",
    ]
    with pytest.raises(ValueError, match="no layers"):
        PerceptualDistance(net, ["Mixed_9z"])
