"""Arguments of the wrong kind given to the library's helpers end in one ConfigError naming them, and a
single name or angle is taken where a list is expected (a string was read letter by letter)."""

from __future__ import annotations

import math

import pytest
import torch

from cips3d import Camera, PoseConfig, RenderConfig, generator_preset
from cips3d.errors import ConfigError, UserError
from cips3d.inference.blend import blend_generators
from cips3d.inference.geometry import DensityGrid, check_grid_args, normals_from_depth, resolve_level
from cips3d.inference.inversion import Inversion, save_inversion
from cips3d.inference.multiview import (
    grid_cameras,
    mix_styles,
    render_views,
    resolve_inr_layers,
    sample_mixed_seeds,
    spread_angles,
    styles_for_seeds,
)
from cips3d.inference.sample import parse_seeds, sample_seeds
from cips3d.inference.trajectories import Trajectory, still
from cips3d.inference.video import LatentWalk, check_panels
from cips3d.io.images import colorize_depth, make_grid, to_uint8
from cips3d.io.video import video_header, write_video
from cips3d.seeding import generators_for_seeds

RENDER = RenderConfig(img_size=8, num_steps=4, deterministic=True)


def test_seeds_as_text_or_a_number_are_named(tiny_G):
    for seeds in ("0-3", 5):
        with pytest.raises(
            ConfigError, match="seeds must be a list of whole numbers, got .*parse_seeds reads text"
        ):
            next(sample_seeds(tiny_G, seeds, render=RENDER, pose=PoseConfig()))  # "0-3": seeds '0', '-', '3'
        with pytest.raises(ConfigError, match="seeds must be a list of whole numbers"):
            generators_for_seeds(seeds)


def test_one_layer_name_and_one_angle_need_no_list(tiny_G):
    assert resolve_inr_layers("inr_w4_0") == ["inr_w4_0"]  # was "unknown INR layer 'i'"
    base, other = styles_for_seeds(tiny_G, [1]), styles_for_seeds(tiny_G, [2])
    mixed = mix_styles(base, other, "4")
    assert torch.equal(mixed["inr_w4_1"], other["inr_w4_1"]) and torch.equal(
        mixed["inr_w8_0"], base["inr_w8_0"]
    )
    cameras = grid_cameras(1.2, [1.5, 1.6])  # a float was "not iterable"
    assert cameras.batch == 2
    with pytest.raises(ConfigError, match="yaws must be a list of angles in radians, got 'front'"):
        grid_cameras("front", [1.5])


def test_models_presets_and_devices_of_the_wrong_kind_are_named(tiny_G):
    with pytest.raises(ConfigError, match="the target must be a Generator3D .*got str"):
        blend_generators(tiny_G, "target.pth", 0.5)  # was an AttributeError on .config
    with pytest.raises(ConfigError, match="a preset is named by a string such as 'ffhq', got \\[\\]"):
        generator_preset([])  # was "unhashable type: 'list'"
    camera = Camera.from_angles(math.pi / 2, math.pi / 2)
    if torch.cuda.is_available():
        assert camera.to("cuda").origin.is_cuda
    else:
        with pytest.raises(ConfigError, match="'cuda' was asked for but PyTorch sees no CUDA GPU here"):
            camera.to("cuda")  # was torch's "Torch not compiled with CUDA enabled" assertion


def _frames(n: int, dtype=None):
    import numpy as np  # noqa: PLC0415

    return [np.zeros((8, 8, 3), dtype or np.uint8) for _ in range(n)]


# Found by a review acting as a notebook user: torch's, numpy's or Python's own errors (or silently
# wrong results) before; each now one ConfigError / UserError naming the cause.
REVIEW_CASES = {
    "seeds-with-a-space": (lambda G: parse_seeds("1 2"), "cannot read seeds '1 2'"),  # was [12]
    "seeds-past-a-million": (lambda G: generators_for_seeds(range(10**12)), "more than 1,000,000 seeds"),
    "panels-none": (lambda G: check_panels(None), "panels must be a list of"),
    "half-a-view": (lambda G: spread_angles(2.5, 1, 2), "the number of views must be a whole number"),
    "int-seeds": (lambda G: styles_for_seeds(G, 3), "seeds must be a list of whole numbers"),
    "int-appearance": (
        lambda G: next(sample_mixed_seeds(G, 3, [4], render=RENDER, pose=PoseConfig())),
        "seeds must be a list of whole numbers",
    ),
    "numpy-styles": (
        lambda G: render_views(
            G,
            {k: v.numpy() for k, v in styles_for_seeds(G, [1]).items()},
            Camera.from_angles(1.5, 1.5),
            RENDER,
        ),  # fmt: skip
        "must be torch tensors",
    ),
    "float-frame-later": (
        lambda G: write_video([*_frames(1), *_frames(1, "float64")], "/nonexistent/f.gif"),
        "frame 1 is float64 [8, 8, 3]",
    ),
    "int-video-path": (lambda G: write_video(_frames(1), 5), "the video path must be a file or folder path"),
    "png-video": (lambda G: video_header("x.png"), "video files must end in .mp4 or .gif"),
    "missing-video": (lambda G: video_header("missing.mp4"), "there is no video file at missing.mp4"),
    "fov-nan": (
        lambda G: Trajectory(Camera.from_angles(1.5, 1.5), (math.nan,)),
        "fields of view must be in (0, 180) degrees; got nan",
    ),
    "frame-1.0": (lambda G: still(2).frame(1.0), "a frame index must be a whole number, got 1.0"),
    "bound-text": (lambda G: check_grid_args(8, "0.1", 100), "the grid bound must be positive"),
    "level-percent": (
        lambda G: resolve_level(DensityGrid(torch.ones(2, 2, 2), torch.tensor([-0.1, 0.1])), "50%"),
        "the level must be a number",
    ),
    "nan-density": (
        lambda G: resolve_level(DensityGrid(torch.full((2, 2, 2), math.nan), torch.tensor([-0.1, 0.1])), 1.0),
        "the density holds NaN or infinite values",
    ),
    "1x1-depth": (lambda G: normals_from_depth(torch.ones(1, 1, 1, 1)), "at least 2x2 pixels"),
    "depth-batch-colours": (
        lambda G: colorize_depth(torch.rand(2, 1, 4, 4), 0.1, 1),
        "colorize_depth takes one map ([H, W], [1, H, W], [1, 1, H, W]",
    ),
    "2d-uint8": (lambda G: to_uint8(torch.zeros(4, 4)), "to_uint8 takes [..., C, H, W] tensors, got [4, 4]"),
    "grid-fill-300": (
        lambda G: make_grid(_frames(1)[0][None], fill=300),
        "fill must be a value from 0 to 255",
    ),
    "extra-yaw": (
        lambda G: save_inversion(Inversion({}, 1.5, 1.5, 12.0), "/nonexistent/s.safetensors", {"yaw": 1}),
        "extra metadata cannot replace the fitted camera's yaw",
    ),
}


@pytest.mark.parametrize("name", sorted(REVIEW_CASES))
def test_misuse_found_by_review_is_one_sentence(tiny_G, name):
    call, words = REVIEW_CASES[name]
    with pytest.raises((ConfigError, UserError)) as caught:
        call(tiny_G)
    assert words in str(caught.value), str(caught.value)


def test_a_long_walk_is_computed_per_frame_not_listed_up_front(tiny_G):
    walk = LatentWalk(tiny_G, [0, 1], steps_between=10**9)  # a list of its steps took 24 GB first
    assert len(walk) == 10**9 + 1 and walk.steps[-2] == (0, (10**9 - 1) / 10**9)
    assert torch.equal(walk[-1]["inr_w4_0"], walk[10**9]["inr_w4_0"])


def test_more_helpers_found_by_review(tiny_G):
    from cips3d.inference.blend import gamma_sweep_frames  # noqa: PLC0415
    from cips3d.inference.trajectories import orbit  # noqa: PLC0415
    from cips3d.inference.video import side_by_side_frames  # noqa: PLC0415

    assert resolve_inr_layers("512,1024") == resolve_inr_layers(["512", "1024"])  # was "unknown layer"
    with pytest.raises(ConfigError, match="the orbit's pitch must run from 0"):
        orbit(pitch=10.0)  # was clamped to pi without a word
    with pytest.raises(ConfigError, match="side_by_side_frames needs a list of one or more Generator3D"):
        next(side_by_side_frames([], 0, still(1), RENDER))  # yielded nothing
    with pytest.raises(ConfigError, match="gammas must be a list of blend weights"):
        next(gamma_sweep_frames(tiny_G, tiny_G, 0.5, 0, Camera.from_angles(1.5, 1.5), RENDER))


def test_inputs_a_review_found_refused_by_the_new_checks_are_taken_again():
    """Forms that worked before the checks above, and should: a batch-1 depth map, directions per row,
    tensor numbers, RGB fills, a numpy array of panel names, tall images without a panorama hint."""
    import numpy as np  # noqa: PLC0415

    assert colorize_depth(torch.rand(1, 1, 8, 8) + 1, 0.5, 2.5).shape == (8, 8, 3)
    depth = torch.rand(1, 1, 4, 4) + 1
    from cips3d.rendering.rays import camera_ray_directions  # noqa: PLC0415

    rows = camera_ray_directions(4, 12.0).reshape(4, 4, 3)
    assert torch.equal(normals_from_depth(depth, 12.0, rows), normals_from_depth(depth, 12.0))
    check_grid_args(8, torch.tensor(0.3), 100)
    ramp = DensityGrid(torch.linspace(0, 1, 8).reshape(2, 2, 2), torch.tensor([-0.1, 0.1]))
    assert resolve_level(ramp, torch.tensor(0.5)) == 0.5
    tiles = make_grid(np.zeros((2, 4, 4, 3), np.uint8), fill=(255, 0, 0))
    assert tuple(tiles[0, 4]) == (255, 0, 0)  # the padding column, red
    assert check_panels(np.array(["image", "depth"])) == ("image", "depth")
