"""Image helpers: value mapping, grids, depth colours, PNG files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cips3d.errors import ConfigError
from cips3d.io.images import colorize_depth, make_grid, save_png, to_uint8


def test_to_uint8_maps_minus_one_to_zero_and_one_to_255():
    img = torch.tensor([-1.0, 0.0, 1.0, 2.0]).view(1, 1, 4).expand(3, 1, 4)
    assert to_uint8(img)[0, :, 0].tolist() == [0, 128, 255, 255]
    assert to_uint8(img).shape == (1, 4, 3)


def test_grid_places_tiles_in_rows():
    tiles = np.stack([np.full((4, 5, 3), i, np.uint8) for i in range(5)])
    grid = make_grid(tiles, ncols=3, pad=1)
    assert grid.shape == (2 * 5 + 1, 3 * 6 + 1, 3)
    assert grid[1, 1, 0] == 0 and grid[1, 7, 0] == 1 and grid[6, 1, 0] == 3 and grid[6, 13, 0] == 255


def test_depth_colours_run_from_bright_near_to_dark_far():
    depth = torch.tensor([[0.88, 1.0, 1.12]])
    rgb = colorize_depth(depth, 0.88, 1.12)
    brightness = rgb.astype(int).sum(-1)[0]
    assert brightness[0] > brightness[1] > brightness[2]


def test_save_png_round_trip(tmp_path):
    array = np.random.default_rng(0).integers(0, 256, (6, 7, 3), dtype=np.uint8)
    path = save_png(array, tmp_path / "sub" / "a.png")
    assert np.array_equal(np.asarray(Image.open(path)), array)
    assert [p.name for p in path.parent.iterdir()] == ["a.png"]  # no temporary file left behind
    with pytest.raises(ConfigError, match="must end in .png, got 'a.jpg'"):  # was PNG bytes named .jpg
        save_png(array, tmp_path / "a.jpg")
    with pytest.raises(ConfigError, match=r"uint8 \[H, W, 1 or 3\] arrays, got uint8 \[3, 6, 7\]"):
        save_png(array.transpose(2, 0, 1).copy(), tmp_path / "b.png")  # was a 3-row RGBA picture
    with pytest.raises(ConfigError, match="got float32"):
        save_png(array.astype(np.float32), tmp_path / "c.png")


def test_grids_and_depth_colours_refuse_or_place_what_they_got_wrong():
    tiles = np.zeros((3, 4, 4, 3), np.uint8)
    for wrong, words in (
        (
            lambda: make_grid(tiles[:0]),
            r"uint8 \[N >= 1, H, W, C\] arrays, got uint8 \[0, 4, 4, 3\]",
        ),  # was /0
        (lambda: make_grid(tiles.astype(np.float32)), "got float32"),  # was an 8-channel picture
        (lambda: make_grid(tiles, ncols=0), "ncols must be a whole number of 1 or more"),  # was the default
        (lambda: make_grid(tiles, pad=-1), "pad must be a whole number of 0 or more"),
    ):
        with pytest.raises(ConfigError, match=words):
            wrong()
    depth = torch.tensor([[0.9, float("nan")]])  # NaN indexed past the colour map (IndexError)
    colours = colorize_depth(depth, 0.88, 1.12)
    assert np.array_equal(colours[0, 1], colorize_depth(torch.tensor([[1.12]]), 0.88, 1.12)[0, 0])
