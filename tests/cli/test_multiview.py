"""`cips3d multiview`: tiles in the right places, each equal to the sampled image at its pose."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cips3d import PoseConfig, RenderConfig
from cips3d.inference.geometry import normals_from_depth, normals_to_rgb
from cips3d.inference.sample import sample_seeds
from cips3d.io.images import colorize_depth, read_png_record, to_uint8
from tests.cli.helpers import run

SIZE, PAD = 8, 2


def tile(grid: np.ndarray, row: int, col: int) -> np.ndarray:
    y, x = PAD + row * (SIZE + PAD), PAD + col * (SIZE + PAD)
    return grid[y : y + SIZE, x : x + SIZE].astype(int)


def sampled(G, seed: int, yaw: float, pitch: float) -> np.ndarray:
    batch = next(
        sample_seeds(G, [seed], render=RenderConfig(img_size=SIZE), pose=PoseConfig.fixed(yaw, pitch))
    )
    return to_uint8(batch.output.img[0]).astype(int)


def test_rows_are_pitches_columns_are_yaws_and_the_flip_pair_is_144_170(tmp_path, capsys, tiny_G):
    yaws, pitches = [1.3, 1.5708, 1.8], [1.45, 1.5708]
    code, stdout, _ = run(
        capsys,
        *["multiview", "--preset", "tiny", "--seeds", "1", "--size", str(SIZE), "--flip-pair", "--aux"],
        *["--yaws", ",".join(map(str, yaws)), "--pitches", ",".join(map(str, pitches))],
        *["--batch-size", "4", "--outdir", str(tmp_path), "--quiet"],
    )
    assert code == 0 and "2 pitches x 3 yaws" in stdout
    grid = np.asarray(Image.open(tmp_path / "seed0001.png"))
    assert grid.shape == (2 * (SIZE + PAD) + PAD, 3 * (SIZE + PAD) + PAD, 3)
    for row, col in ((0, 0), (1, 1), (0, 2)):
        expected = sampled(tiny_G, 1, yaws[col], pitches[row])
        assert np.abs(tile(grid, row, col) - expected).max() <= 1, (row, col)
    assert np.abs(tile(grid, 0, 0) - tile(grid, 1, 2)).max() > 0
    flip = np.asarray(Image.open(tmp_path / "seed0001_flip.png"))
    for col, yaw in enumerate((1.44, 1.70)):
        assert np.abs(tile(flip, 0, col) - sampled(tiny_G, 1, yaw, 1.5707963)).max() <= 1
    assert Image.open(tmp_path / "seed0001_aux.png").size == grid.shape[1::-1]
    record = read_png_record(tmp_path / "seed0001.png")  # how each grid was made, in its PNG
    assert record["command"] == "cips3d multiview" and record["seed"] == 1 and record["output"] == "views"
    assert (record["yaws"], record["pitches"], record["render"]["img_size"]) == (yaws, pitches, SIZE)
    assert read_png_record(tmp_path / "seed0001_aux.png")["output"] == "views (aux)"
    assert read_png_record(tmp_path / "seed0001_flip.png")["yaws"] == [1.44, 1.70]


def test_depth_and_normals_grids_hold_each_views_maps(tmp_path, capsys, tiny_G):
    """multiview wrote images and aux images only: a view's depth meant a separate `sample` call."""
    yaws = [1.3, 1.8]
    args = ["multiview", "--preset", "tiny", "--seeds", "2", "--size", str(SIZE), "--depth", "--normals"]
    assert run(capsys, *args, "--yaws", "1.3,1.8", "--outdir", str(tmp_path), "--quiet")[0] == 0
    depth = np.asarray(Image.open(tmp_path / "seed0002_depth.png")).astype(int)
    normals = np.asarray(Image.open(tmp_path / "seed0002_normals.png")).astype(int)
    for col, yaw in enumerate(yaws):
        pose = PoseConfig.fixed(yaw, 1.5707963)
        out = next(sample_seeds(tiny_G, [2], render=RenderConfig(img_size=SIZE), pose=pose)).output
        assert np.abs(tile(depth, 0, col) - colorize_depth(out.depth[0], 0.88, 1.12)).max() <= 1
        expected = normals_to_rgb(normals_from_depth(out.depth, 12.0))[0]
        assert np.abs(tile(normals, 0, col) - expected).max() <= 2
    assert not (tmp_path / "seed0002_aux.png").exists()


def test_speed_options_render_what_sample_renders_with_them(tmp_path, capsys, tiny_G, monkeypatch):
    """multiview had no --precision, --fast, --compile or --chunk-rows: its views could not be sample's
    images once sample used them."""
    from cips3d.cli import multiview as multiview_cli  # noqa: PLC0415

    renders = []
    real = multiview_cli.render_multiview
    monkeypatch.setattr(
        multiview_cli, "render_multiview", lambda *a, **k: renders.append(a[4]) or real(*a, **k)
    )
    args = ["multiview", "--preset", "tiny", "--seeds", "4", "--size", str(SIZE), "--yaws", "1.3,1.8"]
    code, _, err = run(capsys, *args, "--precision", "bf16", "--chunk-rows", "7", "--outdir", str(tmp_path),
                       "--quiet")  # fmt: skip
    assert code == 0, err
    assert [(r.precision, r.chunk_rows) for r in renders] == [("bf16", 7)]  # at 8 px bf16 differs by 1 level
    grid = np.asarray(Image.open(tmp_path / "seed0004.png")).astype(int)
    render = RenderConfig(img_size=SIZE, precision="bf16", chunk_rows=7)
    for col, yaw in enumerate((1.3, 1.8)):
        pose = PoseConfig.fixed(yaw, 1.5707963)
        out = next(sample_seeds(tiny_G, [4], render=render, pose=pose)).output
        assert np.abs(tile(grid, 0, col) - to_uint8(out.img[0]).astype(int)).max() <= 2  # bf16 rounding


def test_a_count_spreads_that_many_views(tmp_path, capsys):
    args = ["multiview", "--preset", "tiny", "--seeds", "0", "--yaws", "4", "--size", str(SIZE)]
    assert run(capsys, *args, "--deterministic", "--outdir", str(tmp_path), "--quiet")[0] == 0
    grid = np.asarray(Image.open(tmp_path / "seed0000.png"))
    assert grid.shape == (SIZE + 2 * PAD, 4 * (SIZE + PAD) + PAD, 3)
    assert not (tmp_path / "seed0000_flip.png").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--yaws", "0"], "--yaws"),
        (["--yaws", "1.2,x"], "--yaws"),
        (["--pitches", "100"], "--pitches"),
        (["--seeds", "3-1"], "backwards"),
        (["--yaws", "-2"], "--yaws must ask for 1 to"),
        (["--pitches", "1.2,,1.3"], "--pitches must be a count or radians"),
    ],
    ids=["yaws-zero", "yaws-text", "pitches-many", "seeds", "yaws-negative-count", "pitches-empty"],
)
def test_bad_options_are_refused_before_the_model_is_loaded(tmp_path, capsys, args, message):
    code, _, err = run(capsys, "multiview", "--checkpoint", str(tmp_path / "none.pth"), *args, "--quiet")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and message in lines[0] and "Traceback" not in err


def test_fitted_styles_get_their_own_grid(tmp_path, capsys, tiny_G):
    from cips3d.inference.inversion import Inversion, save_inversion  # noqa: PLC0415
    from cips3d.inference.multiview import styles_for_seeds  # noqa: PLC0415
    from cips3d.rendering.cameras import Camera  # noqa: PLC0415

    styles = styles_for_seeds(tiny_G, [5])
    save_inversion(Inversion(styles, 1.6, 1.5, 12.0), tmp_path / "photo.safetensors")
    code, stdout, _ = run(
        capsys, "multiview", "--preset", "tiny", "--styles", str(tmp_path / "photo.safetensors"),
        "--size", str(SIZE), "--yaws", "1.3,1.8", "--pitches", "1.5708", "--deterministic",
        "--outdir", str(tmp_path / "out"), "--quiet",
    )  # fmt: skip
    assert code == 0 and "wrote 1 grid of" in stdout
    grid = np.asarray(Image.open(tmp_path / "out" / "photo.png"))
    # Every photo `cips3d invert` fits is OUTDIR/<photo>/styles.safetensors: renders take the photo's name.
    for photo in ("ann", "bob"):
        fit = tmp_path / "fits" / photo / "styles.safetensors"
        save_inversion(Inversion(styles, 1.6, 1.5, 12.0), fit)
        argv = ["multiview", "--preset", "tiny", "--styles", str(fit), "--size", "4", "--yaws", "1",
                "--pitches", "1.5", "--outdir", str(tmp_path / "both"), "--quiet"]  # fmt: skip
        assert run(capsys, *argv)[0] == 0
    assert sorted(p.name for p in (tmp_path / "both").iterdir()) == ["ann.png", "bob.png"]
    render = RenderConfig(img_size=SIZE, deterministic=True)
    for col, yaw in enumerate((1.3, 1.8)):
        expected = to_uint8(tiny_G.synthesis(styles, Camera.from_angles(yaw, 1.5708), render).img[0].detach())
        assert np.abs(tile(grid, 0, col) - expected.astype(int)).max() <= 1
