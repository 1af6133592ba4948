"""FID and KID from feature sets (pure math), and cached real-image statistics."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cips3d.config import whole_count
from cips3d.errors import ConfigError
from cips3d.io.files import atomic_write

KID_SUBSETS = 100  # StyleGAN / torch-fidelity defaults
KID_SUBSET_SIZE = 1000


@dataclass(frozen=True)
class FeatureStats:
    mean: np.ndarray
    """[D] float64"""
    cov: np.ndarray
    """[D, D] float64 (unbiased)"""
    count: int


def feature_rows(features: torch.Tensor | np.ndarray, what: str = "features") -> np.ndarray:
    """`features` as float64 [N, D] with N >= 2 (a covariance, and KID's unbiased estimate, need two
    rows; one gave NaN statistics and then a LinAlgError); else a `ConfigError`."""
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu()
    try:
        f = np.asarray(features, dtype=np.float64)
    except (TypeError, ValueError):  # a string, a list of dicts
        raise ConfigError(f"{what} must be numbers [N, D], got {type(features).__name__}.") from None
    if f.ndim != 2 or f.shape[0] < 2:
        raise ConfigError(f"{what} must be [N, D] with N >= 2 images, got {list(f.shape)}.")
    if not np.isfinite(f).all():
        raise ConfigError(f"{what} hold NaN or infinite values.")
    return f


def feature_stats(features: torch.Tensor | np.ndarray) -> FeatureStats:
    """Mean and unbiased covariance of [N, D] features (N >= 2)."""
    f = feature_rows(features)
    return FeatureStats(mean=f.mean(axis=0), cov=np.cov(f, rowvar=False), count=f.shape[0])


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(a: FeatureStats, b: FeatureStats) -> float:
    """|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)).

    The trace of the matrix square root is taken as the sum of square roots of the eigenvalues of the
    symmetric PSD matrix S_a^(1/2) S_b S_a^(1/2) (same spectrum as S_a S_b), which stays real and stable.
    """
    if a.mean.shape != b.mean.shape:
        raise ConfigError(
            f"the two feature statistics differ in width ({a.mean.shape[0]} and {b.mean.shape[0]})."
        )
    root_a = _sqrt_psd(a.cov)
    middle = root_a @ b.cov @ root_a
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    diff = a.mean - b.mean
    return float(diff @ diff + np.trace(a.cov) + np.trace(b.cov) - 2 * trace_sqrt)


def kernel_inception_distance(
    real: torch.Tensor | np.ndarray,
    fake: torch.Tensor | np.ndarray,
    subsets: int = KID_SUBSETS,
    subset_size: int = KID_SUBSET_SIZE,
    seed: int = 0,
) -> float:
    """Unbiased MMD^2 with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over random
    subsets of min(subset_size, len(real), len(fake)) samples (Binkowski et al. 2018)."""
    whole_count(subsets, "subsets")  # 0 divided by zero
    whole_count(subset_size, "subset_size", minimum=2)  # 1 gave nan: the unbiased estimate needs pairs
    x_all, y_all = feature_rows(fake, "fake features"), feature_rows(real, "real features")
    d = x_all.shape[1]
    if y_all.shape[1] != d:
        raise ConfigError(f"real and fake features differ in width ({y_all.shape[1]} and {d}).")
    m = min(subset_size, x_all.shape[0], y_all.shape[0])
    rng = np.random.default_rng(seed)
    total = 0.0
    for _ in range(subsets):
        x = x_all[rng.choice(x_all.shape[0], m, replace=False)]
        y = y_all[rng.choice(y_all.shape[0], m, replace=False)]
        a = (x @ x.T / d + 1) ** 3 + (y @ y.T / d + 1) ** 3
        b = (x @ y.T / d + 1) ** 3
        total += (a.sum() - np.trace(a)) / (m - 1) - b.sum() * 2 / m
    return float(total / subsets / m)


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cips3d" / "fid-stats"


def stats_key(**protocol) -> str:
    """A stable name for real statistics made under `protocol` (dataset identity, counts, extractor)."""
    return hashlib.sha1(json.dumps(protocol, sort_keys=True, default=str).encode()).hexdigest()[:16]


def pixels_digest(images: torch.Tensor) -> str:
    """A digest of a batch of images' values (read in chunks: a dataset's worth is gigabytes), so that
    cached statistics belong to exactly these pixels."""
    digest = hashlib.blake2b(digest_size=16)
    flat = images.detach().cpu().contiguous().reshape(images.shape[0], -1)
    for start in range(0, flat.shape[0], 256):
        digest.update(flat[start : start + 256].numpy().tobytes())
    return digest.hexdigest()


def load_cached_stats(key: str) -> tuple[FeatureStats, np.ndarray] | None:
    path = cache_dir() / f"{key}.npz"
    if not path.is_file():
        return None
    try:
        with np.load(path) as data:
            return FeatureStats(data["mean"], data["cov"], int(data["count"])), data["features"]
    except (OSError, ValueError, KeyError):
        return None  # a damaged cache entry is recomputed


class StatsCacheWarning(UserWarning):
    """The real images' statistics could not be cached (an unwritable or full cache folder): the scores
    stand; the next run computes the statistics again."""


def save_cached_stats(key: str, stats: FeatureStats, features: np.ndarray) -> Path:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, mean=stats.mean, cov=stats.cov, count=stats.count, features=features)

    return atomic_write(cache_dir() / f"{key}.npz", write)
