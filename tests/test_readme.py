"""The README's Python examples run as written (with the tiny preset standing in for G_ema.pth)."""

from __future__ import annotations

import re

import torch

import cips3d.io.checkpoint as checkpoint
from cips3d import Camera, Generator3D, RenderConfig, generator_preset
from tests.conftest import REPO


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)


def block_with(text: str) -> str:
    """The one README Python block that contains `text`."""
    found = [b for b in python_blocks() if text in b]
    assert len(found) == 1, text
    return found[0]


def test_readme_api_examples_run(monkeypatch):
    tiny = Generator3D(generator_preset("tiny")).eval()
    monkeypatch.setattr(checkpoint, "load_generator", lambda *a, **k: tiny)
    blocks = python_blocks()
    assert len(blocks) == 6
    scope: dict = {}
    try:  # the example turns autograd off itself (it ran with it on: 5 GB at 128 px, outputs with grads)
        exec(blocks[0].replace("img_size=128", "img_size=16"), scope)
        out = scope["out"]
        assert out.img.shape == (2, 3, 16, 16) and out.nerf_feature.shape == (2, 256, 16)
        assert not out.img.requires_grad
        scope["za"] = tiny.sample_latents(1, torch.Generator().manual_seed(1))
        scope["zb"] = tiny.sample_latents(1, torch.Generator().manual_seed(2))
        scope["camera"] = scope["camera"].select(slice(0, 1))
        exec(blocks[1], scope)
        assert scope["out"].img.shape == (1, 3, 16, 16)
        exec(block_with("InteractiveRenderer").replace("img_size=512", "img_size=8"), scope)
    finally:
        torch.set_grad_enabled(True)  # the rest of the suite trains
    assert scope["frame"].shape == (2, 3, 8, 8) and scope["viewer"].render_config.precision == "bf16"


def test_readme_inversion_example_runs(monkeypatch, tmp_path):
    tiny = Generator3D(generator_preset("tiny")).eval()
    monkeypatch.chdir(tmp_path)
    small = block_with("invert(").replace("steps=200", "steps=2").replace("64", "8")
    scope: dict = {"G": tiny, "torch": torch, "Camera": Camera, "RenderConfig": RenderConfig}
    exec(small, scope)
    assert scope["side_view"].shape == (1, 3, 8, 8) and len(scope["fit"].losses) == 2
    assert (tmp_path / "photo.safetensors").is_file()


def test_readme_2d_example_runs():
    scope: dict = {"torch": torch}
    try:
        exec(block_with("G2 = Generator2D("), scope)
        exec(block_with("G360 = Generator2D("), scope)
    finally:
        torch.set_grad_enabled(True)
    assert not scope["image"].requires_grad
    assert scope["image"].shape == (1, 3, 32, 32) and scope["patch"].shape == (1, 3, 8, 8)
    assert scope["larger"].shape == (1, 3, 64, 64) and scope["points"].shape == (1, 3, 2000, 1)
    assert torch.allclose(scope["patch"], scope["image"][:, :, 4:20:2, 8:24:2], atol=1e-5)
    panorama = scope["panorama"]
    assert panorama.shape == (1, 3, 32, 256) and scope["out"].image.shape == (1, 3, 64, 64)
