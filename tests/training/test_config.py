"""Training configs: which preset a run's config is, up to what `cips3d train` sets beside --preset."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cips3d.errors import ConfigError
from cips3d.training.config import TRAIN_PRESETS, TrainConfig, preset_name, train_preset


@pytest.mark.parametrize("name", TRAIN_PRESETS)
def test_a_preset_is_recognised_with_its_seed_batch_size_and_bookkeeping_changed(name):
    config = train_preset(name)
    assert preset_name(config) == name
    changed = dataclasses.replace(config, seed=7, snapshot_every=3, keep_snapshots=9, preview_every=11)
    changed = changed.with_stages(tuple(dataclasses.replace(s, batch_size=2) for s in config.stages))
    assert preset_name(TrainConfig.from_dict(changed.to_dict())) == name  # as a snapshot reads it back


def test_a_config_of_its_own_has_no_preset_name():
    config = train_preset("tiny")
    assert preset_name(dataclasses.replace(config, r1_gamma=1.0)) is None
    assert preset_name(config.with_stages(config.stages[:1])) is None
    longer = dataclasses.replace(config.stages[0], steps=config.stages[0].steps + 1)
    assert preset_name(config.with_stages((longer, *config.stages[1:]))) is None


def test_counts_and_intervals_are_whole_numbers_of_one_or_more():
    config = train_preset("tiny")
    for wrong in (0, 2.5, True):
        with pytest.raises(
            ConfigError, match=f"^snapshot_every must be a whole number of 1 or more, got {wrong}"
        ):
            dataclasses.replace(config, snapshot_every=wrong)
    assert (
        type(dataclasses.replace(config, snapshot_every=np.int64(3)).snapshot_every) is int
    )  # JSON can save it
