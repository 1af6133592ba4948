"""FID and KID against closed forms and brute force."""

from __future__ import annotations

import numpy as np
import pytest

from cips3d.errors import ConfigError
from cips3d.metrics.fid import FeatureStats, feature_stats, frechet_distance, kernel_inception_distance


def test_fid_of_two_gaussians_equals_the_closed_form():
    rng = np.random.default_rng(0)
    d = 6
    q1, _ = np.linalg.qr(rng.normal(size=(d, d)))
    q2, _ = np.linalg.qr(rng.normal(size=(d, d)))
    s1 = q1 @ np.diag(rng.uniform(0.5, 2, d)) @ q1.T
    s2 = q2 @ np.diag(rng.uniform(0.5, 2, d)) @ q2.T
    m1, m2 = rng.normal(size=d), rng.normal(size=d)
    # Closed form with an independent route: Tr sqrt(S1 S2) from the eigenvalues of the product.
    trace_sqrt = np.sqrt(np.linalg.eigvals(s1 @ s2).real).sum()
    expected = np.sum((m1 - m2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * trace_sqrt
    got = frechet_distance(FeatureStats(m1, s1, 0), FeatureStats(m2, s2, 0))
    assert abs(got - expected) < 1e-9
    diag = frechet_distance(
        FeatureStats(m1, np.diag([1.0, 4, 9, 1, 1, 1]), 0), FeatureStats(m1, np.eye(d), 0)
    )
    assert abs(diag - (0 + 1 + 4)) < 1e-9  # sum (sqrt(a) - sqrt(b))^2 for commuting covariances


def test_fid_of_samples_approaches_the_population_value():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(20_000, 3))
    b = rng.normal(size=(20_000, 3)) * 2 + 1
    got = frechet_distance(feature_stats(a), feature_stats(b))
    assert abs(got - (3 * 1 + 3 * (2 - 1) ** 2)) < 0.3  # sampling error of 20k draws is about 0.1


def test_kid_equals_a_brute_force_unbiased_mmd():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(12, 4)), rng.normal(size=(12, 4)) + 0.5

    def k(a, b):
        return (a @ b / 4 + 1) ** 3

    m = 12
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    got = kernel_inception_distance(real=y, fake=x, subsets=3, subset_size=12)
    assert abs(got - (xx + yy - 2 * xy)) < 1e-10


def test_feature_sets_that_give_no_statistics_are_named():
    rng = np.random.default_rng(0)
    with pytest.raises(ConfigError, match=r"features must be \[N, D\] with N >= 2 images, got \[1, 4\]"):
        feature_stats(rng.random((1, 4)))  # NaN covariance, then a LinAlgError inside the distance
    with pytest.raises(ConfigError, match="fake features must be"):
        kernel_inception_distance(rng.random((5, 4)), rng.random((1, 4)))  # was a division by zero
    with pytest.raises(ConfigError, match="real and fake features differ in width"):
        kernel_inception_distance(rng.random((5, 4)), rng.random((5, 3)))
    with pytest.raises(ConfigError, match="differ in width"):
        frechet_distance(feature_stats(rng.random((5, 4))), feature_stats(rng.random((5, 3))))
    with pytest.raises(ConfigError, match="hold NaN or infinite values"):
        feature_stats(np.full((3, 4), np.nan))


def test_kid_settings_and_unreadable_features_are_named():
    rng = np.random.default_rng(0)
    a, b = rng.random((5, 4)), rng.random((5, 4))
    with pytest.raises(ConfigError, match="subsets must be a whole number of 1 or more, got 0"):
        kernel_inception_distance(a, b, subsets=0)  # was a ZeroDivisionError
    with pytest.raises(ConfigError, match="subset_size must be a whole number of 2 or more, got 1"):
        kernel_inception_distance(a, b, subset_size=1)  # was nan
    with pytest.raises(ConfigError, match="features must be numbers \\[N, D\\], got str"):
        feature_stats("abc")
