"""Mapping networks: PixelNorm, layer layout, LayerNorm variant."""

from __future__ import annotations

import torch

from cips3d.config import MappingConfig
from cips3d.models.mapping import MappingNetwork, pixel_norm


def test_pixel_norm_gives_unit_mean_square():
    z = torch.randn(4, 256, generator=torch.Generator().manual_seed(0)) * 7
    assert torch.allclose(pixel_norm(z).square().mean(1), torch.ones(4), atol=1e-5)


def test_layers_without_and_with_layer_norm():
    plain = MappingNetwork(MappingConfig(z_dim=16, hidden_dim=8, num_layers=4))
    assert [layer.norm is None for layer in plain.layers] == [True] * 4
    assert [layer.activate for layer in plain.layers] == [True, True, True, False]
    normed = MappingNetwork(
        MappingConfig(z_dim=16, hidden_dim=8, num_layers=3, layer_norm=True, norm_out=True)
    )
    assert all(layer.norm is not None for layer in normed.layers)
    normed.reset_parameters(torch.Generator().manual_seed(0))
    w = normed(torch.randn(5, 16))
    # norm_out: the output is LayerNormed (unit affine at init), so each row has mean 0 and variance 1.
    assert torch.allclose(w.mean(1), torch.zeros(5), atol=1e-5)
    assert torch.allclose(w.var(1, unbiased=False), torch.ones(5), atol=1e-3)


def test_forward_matches_the_layer_formula():
    net = MappingNetwork(MappingConfig(z_dim=6, hidden_dim=5, num_layers=2)).double()
    net.reset_parameters(torch.Generator().manual_seed(1))
    z = torch.randn(3, 6, dtype=torch.float64)
    x = z / torch.sqrt(z.square().mean(1, keepdim=True) + 1e-8)
    x = torch.nn.functional.leaky_relu(net.layers[0].linear(x), 0.2)
    assert torch.allclose(net(z), net.layers[1].linear(x), atol=1e-12)
