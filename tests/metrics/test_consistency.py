"""3-D consistency: rigid views warp onto each other, shuffled ones do not; mirror cheating is caught."""

from __future__ import annotations

import math

import torch

from cips3d.data.synth import render_scenes, sample_scenes
from cips3d.metrics.consistency import generator_consistency, mirror_flip_error, warp_compare
from cips3d.rendering.cameras import Camera

N, SIZE = 6, 48


def views(yaw_a: float, yaw_b: float):
    scenes = sample_scenes(N, torch.Generator().manual_seed(1))
    cams = [Camera.from_angles(torch.full((N,), y), torch.full((N,), math.pi / 2)) for y in (yaw_a, yaw_b)]
    (a, da), (b, db) = (render_scenes(scenes, c, SIZE, supersample=1) for c in cams)
    return a, da, cams[0].cam2world(), b, db, cams[1].cam2world()


def test_rigid_scenes_are_consistent_and_shuffled_ones_are_not():
    a, da, ma, b, db, mb = views(math.pi / 2 - 0.06, math.pi / 2 + 0.06)
    rigid = warp_compare(a, da, ma, b, db, mb, 12.0)
    order = torch.roll(torch.arange(N), 1)
    shuffled = warp_compare(a, da, ma, b[order], db[order], mb, 12.0)
    assert rigid.colour_error < 0.02 and rigid.depth_error < 1e-3
    assert shuffled.colour_error > 10 * rigid.colour_error
    assert rigid.visible_fraction > 0.2


def test_a_mirrored_second_view_is_caught():
    a, da, ma, b, db, mb = views(1.44, 1.70)
    honest = warp_compare(a, da, ma, b, db, mb, 12.0).colour_error / mirror_flip_error(a, b)
    mirrored = a.flip(-1)
    cheating = warp_compare(a, da, ma, mirrored, db, mb, 12.0).colour_error / max(
        mirror_flip_error(a, mirrored), 1e-8
    )
    assert honest < 0.5 and cheating > 1


def test_generator_consistency_reports_every_figure(tiny_G):
    scores = generator_consistency(tiny_G, count=2, img_size=16)
    assert set(scores) >= {"consistency_error", "geometry_error", "mirror_ratio", "mirror_flip_error"}
    assert all(math.isfinite(v) for v in scores.values())


def test_a_refused_call_leaves_the_model_in_its_own_mode(tiny_G):
    tiny_G.train()
    try:
        for bad in ({"count": 0}, {"img_size": 1}):
            try:
                generator_consistency(tiny_G, **bad)
            except ValueError:
                pass
            assert tiny_G.training  # was: left in eval mode when the arguments were refused
    finally:
        tiny_G.eval()
