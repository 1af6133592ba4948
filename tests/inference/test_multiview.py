"""Camera grids, per-view rendering that matches per-seed sampling, and style mixing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cips3d import PoseConfig, RenderConfig
from cips3d.errors import ConfigError
from cips3d.inference.multiview import (
    MIRROR_YAWS,
    grid_cameras,
    mix_styles,
    multiview_image,
    render_mirror_pair,
    render_multiview,
    resolve_inr_layers,
    sample_mixed_seeds,
    seed_generators,
    spread_angles,
    styles_for_seeds,
)
from cips3d.inference.sample import sample_seeds

RENDER = RenderConfig(img_size=8)  # random jitter: views must reproduce `sample`'s draws too
HALF_PI = math.pi / 2


def sampled(G, seed: int, yaw: float, pitch: float) -> torch.Tensor:
    batch = next(sample_seeds(G, [seed], render=RENDER, pose=PoseConfig.fixed(yaw, pitch)))
    return batch.output


def test_grid_cameras_are_pitch_major_and_angles_spread_evenly():
    camera = grid_cameras([1.0, 1.5, 2.0], [1.4, 1.7])
    assert camera.yaw.tolist() == pytest.approx([1.0, 1.5, 2.0] * 2)
    assert camera.pitch.tolist() == pytest.approx([1.4] * 3 + [1.7] * 3)
    assert spread_angles(3, 1.0, 2.0) == pytest.approx([1.0, 1.5, 2.0])
    assert spread_angles(1, 1.0, 2.0) == [1.5]
    with pytest.raises(ConfigError):
        spread_angles(0, 1.0, 2.0)
    tiles = np.zeros((6, 4, 4, 3), np.uint8)
    tiles[5] = 7  # last pitch, last yaw: bottom right
    grid = multiview_image(tiles, num_yaws=3)
    assert grid.shape == (2 * 6 + 2, 3 * 6 + 2, 3) and (grid[8:12, 14:18] == 7).all()


def test_each_view_renders_as_sample_renders_that_seed_and_pose(tiny_G):
    yaws, pitches, seed = [1.3, HALF_PI], [HALF_PI, 1.8], 4
    styles = styles_for_seeds(tiny_G, [seed])
    views = render_multiview(
        tiny_G, styles, yaws, pitches, RENDER, generators=seed_generators(tiny_G, seed, 4), batch_size=3
    )
    assert views.img.shape == (4, 3, 8, 8) and views.depth.shape == (4, 1, 8, 8)
    for index, (pitch, yaw) in enumerate([(p, y) for p in pitches for y in yaws]):
        ref = sampled(tiny_G, seed, yaw, pitch)
        assert torch.allclose(views.img[index], ref.img[0], atol=1e-5), (yaw, pitch)
        assert torch.allclose(views.aux_img[index], ref.aux_img[0], atol=1e-5)
    assert not torch.allclose(views.img[0], views.img[1], atol=1e-3)  # the views do differ


def test_render_views_takes_one_generator_for_all_views_and_names_wrong_ones(tiny_G):
    styles, yaws = styles_for_seeds(tiny_G, [4]), [1.3, HALF_PI, 1.8]

    def views(generators, batch_size=2):
        return render_multiview(
            tiny_G, styles, yaws, [HALF_PI], RENDER, generators=generators, batch_size=batch_size
        )

    one = views(torch.Generator().manual_seed(5))
    assert torch.equal(one.img, views(torch.Generator().manual_seed(5)).img)  # reproducible
    assert not torch.allclose(one.img, views(torch.Generator().manual_seed(6)).img, atol=1e-3)
    for wrong, words in (
        (seed_generators(tiny_G, 4, 2), "got 2 generators for 3 images"),
        (7, "generator must be a torch.Generator or a list of them, got int"),
    ):
        with pytest.raises(ConfigError, match=words):
            views(wrong)
    with pytest.raises(ConfigError, match="renders one object: give styles of batch size 1"):
        render_multiview(tiny_G, styles_for_seeds(tiny_G, [1, 2]), yaws, [HALF_PI], RENDER)


def test_mirror_pair_is_yaw_144_and_170(tiny_G):
    pair = render_mirror_pair(
        tiny_G, styles_for_seeds(tiny_G, [2]), RENDER, generators=seed_generators(tiny_G, 2, 2)
    )
    for view, yaw in zip(pair.img, MIRROR_YAWS, strict=True):
        assert torch.allclose(view, sampled(tiny_G, 2, yaw, HALF_PI).img[0], atol=1e-5)


def test_multiview_progress_comes_per_chunk_of_rays_and_adds_up_to_every_view(tiny_G):
    """15 views at 256 px take about a minute on a CPU: the bar moved only when a subject was done."""
    counts: list[int] = []
    render = RenderConfig(img_size=8, chunk_rows=20, deterministic=True)  # 64 rays a view
    styles = styles_for_seeds(tiny_G, [3])
    views = render_multiview(tiny_G, styles, [1.4, 1.6, 1.8], [HALF_PI], render, batch_size=2,
                             on_rays=counts.append)  # fmt: skip
    assert sum(counts) == 3 * 64 and len(counts) > 3  # several updates per batch of views
    plain = render_multiview(tiny_G, styles, [1.4, 1.6, 1.8], [HALF_PI], render, batch_size=2)
    assert torch.equal(views.img, plain.img)
    pair: list[int] = []
    render_mirror_pair(tiny_G, styles, render, on_rays=pair.append)
    assert sum(pair) == 2 * 64


def test_layer_names_resolve_to_style_names():
    assert resolve_inr_layers(["512", "inr_w4_1"]) == ["inr_w512_0", "inr_w512_1", "inr_w4_1"]
    for bad in (["2048"], ["nerf_w0"], ["inr_w512_2"]):
        with pytest.raises(ConfigError, match="unknown INR layer"):
            resolve_inr_layers(bad)


def test_mix_styles_takes_geometry_from_one_and_appearance_from_the_other(tiny_G):
    base, other = styles_for_seeds(tiny_G, [1, 2]), styles_for_seeds(tiny_G, [7])
    mixed = mix_styles(base, other)
    for name, value in mixed.items():
        source = base if name.startswith("nerf_") else other
        assert torch.equal(value, source[name].expand_as(base[name])), name
    some = mix_styles(base, other, ["1024", "inr_w32_0"])
    taken = {"inr_w1024_0", "inr_w1024_1", "inr_w32_0"}
    for name, value in some.items():
        assert torch.equal(value, (other[name].expand_as(base[name]) if name in taken else base[name])), name


def test_mixed_seeds_keep_their_geometry_camera_and_noise(tiny_G):
    pose = PoseConfig()  # random cameras: still drawn from each seed's own generator
    plain = next(sample_seeds(tiny_G, [3, 5], render=RENDER, pose=pose, batch_size=2)).output
    same = next(sample_mixed_seeds(tiny_G, [3, 5], [3, 5], render=RENDER, pose=pose, batch_size=2)).output
    assert torch.equal(same.img, plain.img) and torch.equal(same.pitch_yaw, plain.pitch_yaw)
    mixed = next(sample_mixed_seeds(tiny_G, [3, 5], [9], render=RENDER, pose=pose, batch_size=2)).output
    assert torch.equal(mixed.depth, plain.depth) and torch.equal(mixed.aux_img, plain.aux_img)
    assert torch.equal(mixed.pitch_yaw, plain.pitch_yaw)
    assert (mixed.img - plain.img).abs().amax(dim=(1, 2, 3)).min() > 1e-3  # every image changed look
    look = styles_for_seeds(tiny_G, [9])["inr_w512_0"]
    assert torch.allclose(mixed.styles["inr_w512_0"], look.expand(2, -1), atol=1e-6)
    with pytest.raises(ConfigError, match="appearance seed"):
        next(sample_mixed_seeds(tiny_G, [3, 5, 6], [1, 2], render=RENDER, pose=pose))


def test_mixing_with_styles_that_do_not_fit_is_named(tiny_G):
    base = styles_for_seeds(tiny_G, [1, 2])
    with pytest.raises(ConfigError, match="the other styles must be a dict of"):  # was an AttributeError
        mix_styles(base, [1])
    with pytest.raises(ConfigError, match=r"the other styles lack 18 layers: inr_w1024_0, .*, \.\.\."):
        mix_styles(base, {"nerf_rgb": base["nerf_rgb"]})  # was a KeyError
    three = styles_for_seeds(tiny_G, [1, 2, 3])
    with pytest.raises(
        ConfigError, match="the other styles must have batch 1 or 2 like the base ones, got 3"
    ):
        mix_styles(base, three)  # was a RuntimeError from expand
