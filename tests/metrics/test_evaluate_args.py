"""The scoring functions check what they are asked before rendering or reading anything."""

from __future__ import annotations

import math

import pytest

from cips3d.config_2d import cips2d_preset
from cips3d.errors import ConfigError, UserError
from cips3d.metrics.consistency import generator_consistency
from cips3d.metrics.evaluate import evaluate, evaluate_2d
from cips3d.models.generator2d import Generator2D


def test_one_metric_may_be_a_string_and_no_metric_is_named(tiny_G, tmp_path):
    missing = tmp_path / "no-data"  # never read: the checks come first
    with pytest.raises(ConfigError, match="name at least one metric"):  # scored nothing, silently
        evaluate(tiny_G, missing, metrics=[])
    with pytest.raises(ConfigError, match="metrics must be names such as 'swd', got 3"):
        evaluate(tiny_G, missing, metrics=3)
    with pytest.raises(UserError, match=r"unknown metrics \['fd'\]; known: swd, fid, kid, consistency"):
        evaluate(tiny_G, missing, metrics="fd")  # a string was read letter by letter: ['f', 'd']
    result = evaluate(tiny_G, missing, metrics="consistency", img_size=16)  # one name as a string works
    assert set(result["metrics"]) >= {"consistency_error", "mirror_ratio"}


@pytest.mark.parametrize(
    ("setting", "message"), [({"psi": 2.0}, "truncation psi"), ({"num_images": 0}, "num_images")]
)
def test_truncation_and_image_counts_are_checked_first(tiny_G, tmp_path, setting, message):
    with pytest.raises(
        ConfigError, match=message
    ):  # psi 2 was recorded in the protocol of a consistency score
        evaluate(tiny_G, tmp_path, metrics=["consistency"], **setting)
    with pytest.raises(ConfigError, match=message):
        evaluate_2d(Generator2D(cips2d_preset("cips-tiny")), tmp_path, ["swd"], **setting)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"count": 1.5}, "count must be a whole number"),
        ({"yaw_delta": math.nan}, "yaw_delta must be a finite number"),
        ({"yaw_delta": 0.0}, "yaw_delta must be between 0 and pi"),
        ({"tolerance": 0.0}, "tolerance must be a positive distance"),  # no pixel counted: NaN scores
    ],
)
def test_consistency_settings_are_checked(tiny_G, setting, message):
    with pytest.raises(ConfigError, match=message):
        generator_consistency(tiny_G, img_size=16, **setting)
