"""Procedural panoramas: a whole turn whose two edges meet, deterministic from the seed."""

from __future__ import annotations

import torch

from cips3d.data.images import ImageDataset
from cips3d.data.panorama import render_panoramas, write_panorama_dataset
from tests.cli.helpers import run


def column_steps(images: torch.Tensor) -> torch.Tensor:
    """[N, 3, H, W] -> [N, W]: the mean change from each column to the next, the last going round to
    the first (the seam)."""
    turned = torch.cat([images, images[..., :1]], dim=-1)
    return (turned[..., 1:] - turned[..., :-1]).abs().mean(dim=(1, 2))


def test_the_last_column_joins_the_first_as_neighbours_do():
    images = render_panoramas(32, 32, 128, torch.Generator().manual_seed(0))
    assert images.shape == (32, 3, 32, 128) and 0 <= images.min() and images.max() <= 1
    steps = column_steps(images)
    seam, inside = steps[:, -1], steps[:, :-1]
    assert seam.mean() <= inside.mean()  # the seam is a step like any other ...
    assert (seam[:, None] > inside).float().mean() < 0.6  # ... not one of the largest
    # Columns half a turn apart differ far more: a cut anywhere else would show.
    half_turn = (images[..., 0] - images[..., 64]).abs().mean(dim=(1, 2))
    assert half_turn.mean() > 10 * seam.mean()


def test_the_same_seed_gives_the_same_panoramas_and_images_differ():
    a = render_panoramas(4, 16, 64, torch.Generator().manual_seed(3))
    b = render_panoramas(4, 16, 64, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert all((a[i] - a[j]).abs().mean() > 0.02 for i in range(4) for j in range(i))


def test_the_zip_reads_back_whole_at_its_own_size(tmp_path):
    stats = write_panorama_dataset(tmp_path / "p.zip", count=5, height=16, width=64, seed=1, progress=False)
    assert (stats.count, stats.height, stats.width) == (5, 16, 64)
    dataset = ImageDataset(tmp_path / "p.zip", resolution=16, width=64, whole=True)
    expected = render_panoramas(5, 16, 64, torch.Generator().manual_seed(1))
    assert len(dataset) == 5 and dataset[0].shape == (3, 16, 64)
    assert torch.equal(dataset[4], (expected[4] * 255).round().to(torch.uint8))


def test_the_command_writes_the_zip(capsys, tmp_path):
    argv = ["dataset", "panorama", str(tmp_path / "p.zip"), "--count", "3", "--height", "8", "--width", "32"]
    code, text, err = run(capsys, *argv, "--quiet")
    assert code == 0, err
    assert "3 panoramas of 32x8" in text and (tmp_path / "p.zip").is_file()
    narrow = ["dataset", "panorama", str(tmp_path / "n.zip"), "--count", "3", "--height", "8", "--width", "4"]
    code, _, err = run(capsys, *narrow, "--quiet")
    assert code == 2 and "cannot be narrower than its height; got 4 x 8" in err
    assert not (tmp_path / "n.zip").exists()
