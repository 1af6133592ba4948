"""Ray grid: unit directions, row-major from the top-left, the fov on the extreme pixels."""

from __future__ import annotations

import math

import torch

from cips3d.rendering.rays import camera_ray_directions, rotate_directions, transform_points


def test_ray_directions_have_unit_length():
    d = camera_ray_directions(33, 12.0)
    assert d.shape == (33 * 33, 3)
    assert torch.allclose(d.norm(dim=-1), torch.ones(33 * 33), atol=1e-6)


def test_grid_is_row_major_from_the_top_left_and_spans_the_fov():
    size, fov = 5, 30.0
    d = camera_ray_directions(size, fov).reshape(size, size, 3)
    assert d[0, 0, 0] < 0 and d[0, 0, 1] > 0  # top-left pixel looks left and up
    assert d[0, -1, 0] > 0 and d[-1, 0, 1] < 0
    assert torch.allclose(d[2, 2], torch.tensor([0.0, 0.0, -1.0]))  # centre looks down -z
    half = math.atan2(d[2, -1, 0], -d[2, -1, 2])  # the right-most pixel sits at x_ndc = 1
    assert abs(math.degrees(half) - fov / 2) < 1e-4


def test_world_transforms_rotate_then_translate():
    angle = torch.tensor(0.7)
    m = torch.eye(4)
    m[0, 0], m[0, 2], m[2, 0], m[2, 2] = angle.cos(), angle.sin(), -angle.sin(), angle.cos()
    m[:3, 3] = torch.tensor([1.0, 2.0, 3.0])
    p = torch.randn(1, 4, 2, 3, generator=torch.Generator().manual_seed(0))
    world = transform_points(p, m[None])
    expected = p @ m[:3, :3].T + m[:3, 3]
    assert torch.allclose(world, expected, atol=1e-6)
    assert torch.allclose(rotate_directions(p[:, :, 0], m[None]), p[:, :, 0] @ m[:3, :3].T, atol=1e-6)
