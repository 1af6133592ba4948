"""The tiny preset learns the built-in synthetic data: SWD to the data drops by at least 30%."""

from __future__ import annotations

import dataclasses

from cips3d.config import PoseConfig, RenderConfig
from cips3d.data.synth import write_synth_dataset
from cips3d.metrics.evaluate import generated_images, real_images
from cips3d.metrics.swd import swd
from cips3d.training.config import StageConfig, train_preset
from cips3d.training.trainer import Trainer, TrainOptions

SIZE, STEPS = 16, 150


def score(G, reals) -> float:
    fakes = generated_images(G, reals.shape[0], RenderConfig(img_size=SIZE), PoseConfig())
    return swd(reals.float() / 127.5 - 1, fakes.float() / 127.5 - 1).mean


def test_the_tiny_preset_learns_the_synthetic_data(tmp_path):
    data = tmp_path / "synth.zip"
    write_synth_dataset(data, count=400, resolution=SIZE, seed=0, progress=False)
    stage = StageConfig("r16", SIZE, STEPS, 8, 2e-4, 2e-3, nerf_noise_steps=100)
    config = dataclasses.replace(
        train_preset("tiny"), stages=(stage,), snapshot_every=10_000, preview_every=10_000
    )
    trainer = Trainer(config, tmp_path / "run", data, TrainOptions(progress=False))
    reals = real_images(data, 128, SIZE)
    before = score(trainer.G_ema, reals)
    trainer.run()
    after = score(trainer.G_ema, reals)
    assert after <= 0.7 * before, f"SWD {before:.1f} -> {after:.1f}"
