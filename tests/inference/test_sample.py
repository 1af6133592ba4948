"""Seed lists and per-seed sampling."""

from __future__ import annotations

import pytest
import torch

from cips3d import PoseConfig, RenderConfig
from cips3d.inference.sample import parse_seeds, sample_seeds


def test_parse_seeds_lists_and_ranges():
    assert parse_seeds("0-3,7,10-11") == [0, 1, 2, 3, 7, 10, 11]
    assert parse_seeds("5") == [5]
    assert parse_seeds(" 2, 2,1 ") == [2, 1]


@pytest.mark.parametrize("text", ["", "a", "3-1", "-2", "1,,2", "0-5000000", str(2**64)])
def test_parse_seeds_refuses_nonsense(text):
    with pytest.raises(ValueError):
        parse_seeds(text)


def test_sample_seeds_yields_one_image_per_seed_whatever_the_batch(tiny_G):
    render = RenderConfig(img_size=8)
    pose = PoseConfig()  # random cameras: they must come from each seed's own generator too
    one = [b for b in sample_seeds(tiny_G, [4, 5, 6], render=render, pose=pose, batch_size=1)]
    two = [b for b in sample_seeds(tiny_G, [4, 5, 6], render=render, pose=pose, batch_size=2)]
    assert [b.seeds for b in one] == [[4], [5], [6]] and [b.seeds for b in two] == [[4, 5], [6]]
    imgs_one = torch.cat([b.output.img for b in one])
    imgs_two = torch.cat([b.output.img for b in two])
    assert torch.allclose(imgs_one, imgs_two, atol=1e-5, rtol=0)
    assert torch.equal(
        torch.cat([b.output.pitch_yaw for b in one]), torch.cat([b.output.pitch_yaw for b in two])
    )


def test_progress_is_reported_per_chunk_of_rays_and_adds_up_to_every_pixel(tiny_G):
    """A batch at 256 px takes minutes on a CPU: the bar moved only when the whole batch was done."""
    counts: list[int] = []
    render = RenderConfig(img_size=8, chunk_rows=20)  # 64 rays per image, 2 images: 7 chunks of <= 20
    batches = list(sample_seeds(tiny_G, [1, 2, 3], render=render, pose=PoseConfig(), batch_size=2,
                                on_rays=counts.append))  # fmt: skip
    assert sum(counts) == 3 * 64 and len(counts) > 2  # several updates per batch
    plain = list(sample_seeds(tiny_G, [1, 2, 3], render=render, pose=PoseConfig(), batch_size=2))
    assert all(torch.equal(a.output.img, b.output.img) for a, b in zip(batches, plain, strict=True))
