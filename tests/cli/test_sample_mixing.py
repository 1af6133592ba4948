"""`cips3d sample` style mixing (--appearance-seeds, --mix-layers) and --normals."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from PIL import Image

from cips3d import PoseConfig, RenderConfig
from cips3d.inference.geometry import normals_from_depth, normals_to_rgb
from cips3d.inference.multiview import sample_mixed_seeds
from cips3d.io.checkpoint import load_generator, save_generator
from cips3d.io.images import to_uint8
from tests.cli.helpers import run

SIZE = 8


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path)).astype(int)


@pytest.fixture(scope="module")
def vivid(tmp_path_factory, tiny_G):
    """The tiny model with louder INR styles and RGB heads, so that appearance changes show in uint8
    images (at random init they move pixels by a level or two)."""
    G = copy.deepcopy(tiny_G)
    with torch.no_grad():
        for block in G.decoder.blocks:
            block.mod1.modulation.weight.mul_(10)
            block.mod2.modulation.weight.mul_(10)
        for head in G.decoder.to_rgb:
            head.weight.mul_(100)
    return save_generator(G, tmp_path_factory.mktemp("vivid") / "G")


def sample(capsys, checkpoint, outdir, *extra) -> None:
    common = ["sample", "--checkpoint", str(checkpoint), "--seeds", "3,4", "--size", str(SIZE), "--quiet"]
    code, _, err = run(capsys, *common, "--outdir", str(outdir), *extra)
    assert code == 0, err


def reference(checkpoint, appearance, layers=None) -> np.ndarray:
    G = load_generator(checkpoint)
    render, pose = RenderConfig(img_size=SIZE), PoseConfig.fixed()
    batch = next(sample_mixed_seeds(G, [3, 4], appearance, render=render, pose=pose, inr_layers=layers))
    return to_uint8(batch.output.img).astype(int)


def test_appearance_from_other_seeds_keeps_geometry_and_changes_the_look(tmp_path, capsys, vivid):
    sample(capsys, vivid, tmp_path / "plain", "--depth", "--aux")
    sample(capsys, vivid, tmp_path / "same", "--appearance-seeds", "3,4")
    sample(capsys, vivid, tmp_path / "mixed", "--appearance-seeds", "9", "--depth", "--aux")
    expected = reference(vivid, [9])
    for i, seed in enumerate((3, 4)):
        name = f"seed{seed:04d}"
        plain, mixed = tmp_path / "plain" / name, tmp_path / "mixed" / name
        # an appearance seed equal to the seed is plain sampling, jitter and all
        assert np.array_equal(pixels(tmp_path / "same" / f"{name}.png"), pixels(f"{plain}.png"))
        assert np.array_equal(np.load(f"{mixed}_depth.npy"), np.load(f"{plain}_depth.npy"))
        assert np.array_equal(pixels(f"{mixed}_aux.png"), pixels(f"{plain}_aux.png"))
        assert np.abs(pixels(f"{mixed}.png") - pixels(f"{plain}.png")).max() > 10
        assert np.abs(pixels(f"{mixed}.png") - expected[i]).max() <= 1


def test_mix_layers_take_only_the_named_layers(tmp_path, capsys, vivid):
    sample(capsys, vivid, tmp_path / "some", "--appearance-seeds", "9,9", "--mix-layers", "512,inr_w1024_0")
    some = np.stack([pixels(tmp_path / "some" / f"seed{s:04d}.png") for s in (3, 4)])
    assert np.abs(some - reference(vivid, [9], ["512", "inr_w1024_0"])).max() <= 1
    assert np.abs(some - reference(vivid, [9])).max() > 10  # not every layer was taken
    assert np.abs(some - reference(vivid, [3, 4])).max() > 10  # but some were


def test_appearance_seeds_pair_with_the_seeds_even_when_repeated(tmp_path, capsys, vivid):
    # 9,9,5: seeds 3 and 4 take seed 9's look, seed 5 its own (was refused: "got 2", duplicates dropped)
    sample(capsys, vivid, tmp_path / "paired", "--seeds", "3,4,5", "--appearance-seeds", "9,9,5")
    paired = np.stack([pixels(tmp_path / "paired" / f"seed{s:04d}.png") for s in (3, 4)])
    assert np.abs(paired - reference(vivid, [9])).max() <= 1
    sample(capsys, vivid, tmp_path / "plain", "--seeds", "5")
    assert np.array_equal(
        pixels(tmp_path / "paired" / "seed0005.png"), pixels(tmp_path / "plain" / "seed0005.png")
    )


def test_normals_are_written_from_the_depth_map(tmp_path, capsys, vivid):
    sample(capsys, vivid, tmp_path, "--depth", "--normals")
    for seed in (3, 4):
        depth = torch.from_numpy(np.load(tmp_path / f"seed{seed:04d}_depth.npy"))
        expected = normals_to_rgb(normals_from_depth(depth.view(1, 1, SIZE, SIZE), fov=12.0))[0]
        written = pixels(tmp_path / f"seed{seed:04d}_normals.png")
        assert written.shape == (SIZE, SIZE, 3) and np.abs(written - expected).max() <= 1
        assert written[..., 2].min() >= 127  # every normal faces the camera (+z in camera space)
    assert Image.open(tmp_path / "grid_normals.png").size == (2 * (SIZE + 2) + 2, SIZE + 4)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--mix-layers", "512"], "--appearance-seeds"),
        (["--appearance-seeds", "1", "--mix-layers", "2048"], "unknown INR layer"),
        (["--appearance-seeds", "1,2"], "one per seed"),
        (["--appearance-seeds", "x"], "--appearance-seeds"),
    ],
    ids=["layers-alone", "unknown-layer", "count", "unreadable"],
)
def test_bad_mixing_options_are_refused_before_the_model_is_loaded(tmp_path, capsys, args, message):
    missing = ["--checkpoint", str(tmp_path / "none.pth"), "--seeds", "0-2"]
    code, _, err = run(capsys, "sample", *missing, *args, "--quiet")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and message in lines[0] and "Traceback" not in err
