"""Scoring a 2D generator: against its own samples every image metric is zero, against another model's
it is not; panorama models are compared with whole images; 3-D metrics are refused."""

from __future__ import annotations

import dataclasses
import math
import os
import warnings

import pytest
import torch

from cips3d.config_2d import cips2d_preset
from cips3d.errors import UserError
from cips3d.io.images import save_png
from cips3d.metrics import evaluate as evaluate_module
from cips3d.metrics.evaluate import evaluate_2d, generated_images_2d
from cips3d.metrics.fid import StatsCacheWarning
from cips3d.metrics.inception import CONVERTED, InceptionExtractor
from cips3d.models.generator2d import Generator2D


def model(seed: int, **changes) -> Generator2D:
    config = dataclasses.replace(cips2d_preset("cips-tiny"), **changes)
    return Generator2D(config, torch.Generator().manual_seed(seed)).eval()


def write_samples(G: Generator2D, folder, count: int = 6):
    """The images `evaluate_2d` generates, as a dataset folder in the same order."""
    for i, image in enumerate(generated_images_2d(G, count)):
        save_png(image.permute(1, 2, 0).numpy(), folder / f"img{i:03d}.png")
    return folder


class PooledColours(torch.nn.Module):
    """A stand-in feature extractor (the FID network takes about a minute on this CPU): mean colours
    of a 2 x 2 grid of regions."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.adaptive_avg_pool2d(x, 2).flatten(1)


@pytest.fixture(scope="module")
def extractor(tmp_path_factory):
    path = tmp_path_factory.mktemp("extractor") / "pooled.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(PooledColours()).save(str(path))
    return path


def test_a_model_against_its_own_samples_scores_zero(tmp_path, extractor):
    G = model(0)
    own = write_samples(G, tmp_path / "own")
    result = evaluate_2d(G, own, ["swd", "fid", "kid"], num_images=6, extractor=extractor)
    assert result["metrics"]["swd"] == 0.0
    assert result["metrics"]["fid"] == pytest.approx(0.0, abs=1e-6)
    assert result["metrics"]["kid"] <= 0  # unbiased: the pairs (x_i, x_i) count only across the sets
    assert result["protocol"]["num_real"] == result["protocol"]["num_fake"] == 6
    assert result["protocol"]["extractor"] == "pooled.pt"
    other = evaluate_2d(model(1), own, ["swd", "fid"], num_images=6, extractor=extractor)["metrics"]
    assert other["swd"] > 10 and other["fid"] > 0.5


def test_a_panorama_model_is_compared_with_whole_images(tmp_path):
    G = model(0, coordinates="cylinder", width=64)
    own = write_samples(G, tmp_path / "own")
    result = evaluate_2d(G, own, ["swd"], num_images=6)
    assert result["metrics"]["swd"] == 0.0 and "resized whole" in result["protocol"]["real"]
    assert result["protocol"]["width"] == 64


def test_three_d_metrics_are_refused_for_a_2d_model(tmp_path):
    with pytest.raises(
        UserError, match=r"unknown metrics \[.consistency.\]; a 2D model is scored by swd, fid, kid"
    ):
        evaluate_2d(model(0), tmp_path, ["swd", "consistency"])


def test_truncation_pulls_the_samples_towards_the_mean_style(tmp_path):
    """psi 0 renders the mean style for every seed, so its samples are all one image; psi 1 is untruncated."""
    G = model(0)
    own = write_samples(G, tmp_path / "own")
    assert evaluate_2d(G, own, ["swd"], num_images=6, psi=1.0)["metrics"]["swd"] == 0.0
    result = evaluate_2d(G, own, ["swd"], num_images=6, psi=0.0)
    assert result["metrics"]["swd"] > 1 and result["protocol"]["psi"] == 0.0
    fakes = generated_images_2d(G, 6, psi=0.0).int()
    assert (fakes - fakes[0]).abs().max() <= 1  # one style; batched float rounding may flip a uint8 step
    assert (generated_images_2d(G, 6).int() - fakes[0]).abs().max() > 20


def test_fid_needs_two_images(tmp_path, extractor, monkeypatch):
    G = model(0)
    one = write_samples(G, tmp_path / "own", count=1)
    generated = []
    monkeypatch.setattr(evaluate_module, "generated_images_2d", lambda *a, **k: generated.append(1))
    with pytest.raises(UserError, match="need 2 images or more; the data gave 1"):
        evaluate_2d(G, one, ["swd", "fid"], extractor=extractor)
    assert generated == []  # said before any fake was made (it came after the fakes and SWD)
    two = write_samples(G, tmp_path / "two", count=2)
    with pytest.raises(UserError, match=r"the number to score \(num_images, --num\) is 1"):
        evaluate_2d(G, two, ["kid"], num_images=1, extractor=extractor)  # blamed the data
    assert generated == []


def test_progress_bars_count_the_images_generated_and_read(tmp_path, extractor, capsys):
    G = model(0)
    own = write_samples(G, tmp_path / "own", count=5)
    evaluate_2d(G, own, ["fid"], num_images=5, extractor=extractor, progress=True)
    err = capsys.readouterr().err
    for bar in ("generating", "Inception, real images", "Inception, generated"):
        assert f"{bar}: 100%" in err and "5/5" in err, err
    evaluate_2d(G, own, ["fid"], num_images=5, extractor=extractor)  # the default: no bars
    assert capsys.readouterr().err == ""


def test_real_statistics_are_cached_for_exactly_these_pixels(tmp_path, extractor, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    G, data = model(0), tmp_path / "data"
    write_samples(G, data)
    first = evaluate_2d(G, data, ["fid"], num_images=6, extractor=extractor)
    again = evaluate_2d(G, data, ["fid"], num_images=6, extractor=extractor)
    assert not first["protocol"]["real_stats_cached"] and again["protocol"]["real_stats_cached"]
    assert again["metrics"]["fid"] == first["metrics"]["fid"]
    loaded = InceptionExtractor.load(extractor)  # the same file run another way is another protocol
    other_way = dataclasses.replace(loaded, network=CONVERTED)
    assert not evaluate_2d(G, data, ["fid"], num_images=6, extractor=other_way)["protocol"][
        "real_stats_cached"
    ]
    # Files replaced in place, the folder's time put back: its size and time are as they were.
    folder_time = data.stat().st_mtime_ns
    write_samples(model(1), data)
    os.utime(data, ns=(folder_time, folder_time))
    replaced = evaluate_2d(G, data, ["fid"], num_images=6, extractor=extractor)
    assert not replaced["protocol"]["real_stats_cached"]
    assert replaced["metrics"]["fid"] > first["metrics"]["fid"] + 0.5


def test_a_cache_that_cannot_be_written_costs_a_warning_not_the_scores(tmp_path, extractor, monkeypatch):
    (tmp_path / "cache").write_text("a file where the cache folder would be")  # unwritable, even for root
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    G, data = model(0), tmp_path / "data"
    write_samples(G, data)
    with pytest.warns(
        StatsCacheWarning, match="statistics were not cached: .*is a file.*computes them again"
    ) as caught:
        result = evaluate_2d(G, data, ["fid"], num_images=6, extractor=extractor)
    assert ".;" not in str(caught[0].message)  # the reason's own full stop stood before the semicolon
    assert math.isfinite(result["metrics"]["fid"]) and not result["protocol"]["real_stats_cached"]
