"""Training test setup: a micro run config (the tiny networks, a few steps), a FID-network load counter."""

from __future__ import annotations

import dataclasses

from cips3d.metrics.inception import InceptionExtractor
from cips3d.training.config import StageConfig, TrainConfig, train_preset


def micro_config(*stages: StageConfig, **overrides) -> TrainConfig:
    """The tiny networks with short stages and frequent snapshots, for tests."""
    stages = stages or (StageConfig("r16", 16, 4, 2, 2e-4, 2e-3, nerf_noise_steps=3),)
    values = dict(snapshot_every=2, preview_every=2, eval_images=8, ema_start=1, log_every=1)
    return dataclasses.replace(train_preset("tiny"), stages=tuple(stages), **(values | overrides))


def count_fid_network_loads(monkeypatch) -> list:
    """Records every `InceptionExtractor.load` from now on (the list grows by one per load)."""
    loads, load = [], InceptionExtractor.load

    def counted(*args, **kwargs):
        loads.append(args)
        return load(*args, **kwargs)

    monkeypatch.setattr(InceptionExtractor, "load", staticmethod(counted))
    return loads
