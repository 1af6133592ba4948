"""Injected random numbers: the layouts taken, and the ones refused although they hold as many values."""

from __future__ import annotations

import pytest
import torch

from cips3d import ConfigError, PoseConfig, RenderDraws
from cips3d.rendering.cameras import sample_pose_angles

B, R, S = 2, 6, 3


def test_every_documented_layout_reads_as_the_same_draws():
    u = torch.rand(B, R, S)
    for given in (u, u[..., None], u.reshape(B * R, S), u.reshape(B, R * S), u.reshape(B, R * S, 1)):
        assert torch.equal(RenderDraws(jitter_u=given).normalized(B, R, S).jitter_u, u)
    noise = torch.randn(B, R, 2 * S)
    assert torch.equal(
        RenderDraws(fine_noise=noise.reshape(B * R, 2 * S)).normalized(B, R, S).fine_noise, noise
    )


@pytest.mark.parametrize("shape", [(B, S, R), (R, B, S), (B * R * S,), (S, B, R)])
def test_a_draw_in_another_layout_is_refused_though_it_holds_as_many_values(shape):
    with pytest.raises(ConfigError, match=r"draws.jitter_u has shape .* expected \(2, 6, 3\)"):
        RenderDraws(jitter_u=torch.rand(shape)).normalized(B, R, S)


@pytest.mark.parametrize(
    "order, words",
    [
        (torch.zeros(R, dtype=torch.long), "must be a permutation of the 6 rays"),
        (torch.randperm(R).float(), "must be [6] integer ray indices"),
        (torch.randperm(R + 1), "must be [6] integer ray indices"),
    ],
    ids=["repeats", "float", "length"],
)
def test_a_ray_order_must_be_a_permutation(order, words):
    assert RenderDraws(grad_order=torch.randperm(R)).normalized(B, R, S).grad_order is not None
    with pytest.raises(ConfigError) as caught:
        RenderDraws(grad_order=order).normalized(B, R, S)
    assert words in str(caught.value)


def test_pose_draws_of_the_wrong_size_name_the_shape_the_pose_takes():
    yaw, _ = sample_pose_angles(
        PoseConfig(mode="gaussian"), 3, yaw_draw=torch.zeros(3), pitch_draw=torch.zeros(3)
    )
    assert torch.allclose(yaw, torch.full((3,), PoseConfig().yaw_mean))
    with pytest.raises(ConfigError, match=r"'gaussian' pose takes yaw and pitch draws of \[3\]"):
        sample_pose_angles(PoseConfig(mode="gaussian"), 3, yaw_draw=torch.zeros(2))
    with pytest.raises(ConfigError, match=r"'truncated_gaussian' pose takes yaw and pitch draws of \[3, 4\]"):
        sample_pose_angles(PoseConfig(mode="truncated_gaussian"), 3, yaw_draw=torch.zeros(3))
