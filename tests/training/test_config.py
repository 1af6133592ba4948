"""Training configs: which preset a run's config is, up to what `cips3d train` sets beside --preset."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cips3d.errors import ConfigError
from cips3d.training.config import TRAIN_PRESETS, StageConfig, TrainConfig, preset_name, train_preset
from cips3d.training.trainer import TrainOptions


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


@pytest.mark.parametrize(
    "change, words",
    [
        ({"eval_images": 0}, "eval_images must be a whole number of 1 or more"),  # was: a run lost at its end
        ({"seed": -1}, "seed must be a whole number from 0 to 2^63 - 1, got -1"),  # was: wrapped by torch
        ({"data_seed": 2**64}, "data_seed must be a whole number from 0"),
        ({"adam_betas": (2.0, 3.0)}, "adam_betas must be two numbers in [0, 1), got (2.0, 3.0)"),
        # The next ones were refused only when a stage first rendered or augmented with them.
        ({"fov": 500.0}, "fov must be in (0, 180) degrees, got 500.0"),
        ({"ray_start": 2.0}, "ray bounds must satisfy 0 <= ray_start < ray_end"),
        ({"num_steps": 1}, "num_steps must be an integer >= 3 with hierarchical sampling"),
        ({"diffaug_cutout": 5.0}, "DiffAugment cutout_ratio must be in [0, 1], got 5.0"),
        ({"ema_start": -3}, "ema_start must be a whole number of 0 or more, got -3"),
        ({"stages": (StageConfig("r16", 16, 4, 2, 2e-4, 2e-3, grad_rays=0),)}, "stage r16: grad_rays must"),
    ],
)
def test_values_no_run_could_use_are_refused_when_the_config_is_made(change, words):
    with pytest.raises(ConfigError) as caught:
        dataclasses.replace(train_preset("tiny"), **change)
    assert words in str(caught.value)


@pytest.mark.parametrize(
    "change, words",
    [
        (
            {"max_steps": -5},
            "max_steps must be a whole number of 1 or more, got -5",
        ),  # was: "reached -5 steps"
        ({"max_minutes": 0.0}, "max_minutes must be a positive number, got 0.0"),
        (
            {"workers": -1},
            "workers must be a whole number of 0 or more, got -1",
        ),  # was: a ValueError at run()
        ({"fid_images": 1.5}, "fid_images must be a whole number of 0 or more, got 1.5"),
    ],
)
def test_run_options_no_run_could_use_are_refused_when_made(change, words):
    with pytest.raises(ConfigError) as caught:
        TrainOptions(**change)
    assert words in str(caught.value)
