"""The README's Python examples run as written (with the tiny preset standing in for G_ema.pth)."""

from __future__ import annotations

import re

import torch

import cips3d.io.checkpoint as checkpoint
from cips3d import Generator3D, generator_preset
from tests.conftest import REPO


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)


def test_readme_api_examples_run(monkeypatch):
    tiny = Generator3D(generator_preset("tiny")).eval()
    monkeypatch.setattr(checkpoint, "load_generator", lambda *a, **k: tiny)
    blocks = python_blocks()
    assert len(blocks) == 3
    scope: dict = {}
    with torch.no_grad():
        exec(blocks[0].replace("img_size=128", "img_size=16"), scope)
        out = scope["out"]
        assert out.img.shape == (2, 3, 16, 16) and out.nerf_feature.shape == (2, 256, 16)
        scope["za"] = tiny.sample_latents(1, torch.Generator().manual_seed(1))
        scope["zb"] = tiny.sample_latents(1, torch.Generator().manual_seed(2))
        scope["camera"] = scope["camera"].select(slice(0, 1))
        exec(blocks[1], scope)
        assert scope["out"].img.shape == (1, 3, 16, 16)
        exec(blocks[2].replace("img_size=512", "img_size=8"), scope)  # the interactive viewer
    assert scope["frame"].shape == (2, 3, 8, 8) and scope["viewer"].render_config.precision == "bf16"
