"""Evaluate a generator against a dataset: SWD, FID, KID and 3-D consistency, with the protocol recorded.

Real images are the first N of the dataset (no mirroring) at the evaluation size; generated images come
from fixed seeds with cameras from the training pose prior, psi as given, the official stochastic
renderer, and are quantised to uint8 exactly as a PNG would store them. Real features are cached.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch
from tqdm import tqdm

from cips3d import __version__
from cips3d.config import PoseConfig, RenderConfig, check_psi, given_or_default, whole_count
from cips3d.data.images import ImageDataset
from cips3d.errors import ConfigError, UserError
from cips3d.metrics.consistency import generator_consistency
from cips3d.metrics.fid import (
    StatsCacheWarning,
    feature_stats,
    frechet_distance,
    kernel_inception_distance,
    load_cached_stats,
    pixels_digest,
    save_cached_stats,
    stats_key,
)
from cips3d.metrics.inception import InceptionExtractor
from cips3d.metrics.swd import describe_swd, swd
from cips3d.models.generator2d import Generator2D
from cips3d.models.generator3d import Generator3D
from cips3d.nn.modes import evaluating

METRICS = ("swd", "fid", "kid", "consistency")
IMAGE_METRICS = ("swd", "fid", "kid")  # the ones that compare image sets (any generator)
EVAL_SEED = 777
Progress = Callable[[int], None] | None
"""Called with the number of images just done (a progress bar's `update`), or None."""


@contextlib.contextmanager
def _bar(show: bool, total: int, desc: str) -> Iterator[Progress]:
    """A progress bar over `total` images on stderr while inside (None, and nothing shown, unless `show`)."""
    if not show:
        yield None
        return
    with tqdm(total=total, unit="img", desc=desc, dynamic_ncols=True) as bar:
        yield bar.update


@torch.no_grad()
def generated_images(
    G: Generator3D,
    count: int,
    render: RenderConfig,
    pose: PoseConfig,
    psi: float = 1.0,
    batch: int = 16,
    on_images: Progress = None,
) -> torch.Tensor:
    """`count` uint8 images [N, 3, S, S] from fixed seeds (cameras from `pose`); `on_images` as
    `Progress` says."""
    generator = torch.Generator().manual_seed(EVAL_SEED)
    images = []
    with evaluating(G):
        for start in range(0, count, batch):
            z = G.sample_latents(min(batch, count - start), generator)
            img = G(*z, pose=pose, render=render, psi=psi, generator=generator).img
            images.append(((img.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu())
            if on_images is not None:
                on_images(img.shape[0])
    return torch.cat(images)


@torch.no_grad()
def generated_images_2d(
    G: Generator2D, count: int, batch: int = 16, psi: float = 1.0, on_images: Progress = None
) -> torch.Tensor:
    """`count` uint8 images [N, 3, H, W] of a 2D generator on its training grid, from fixed seeds,
    without noise, truncated to `psi` (as `cips3d sample2d` renders them); `on_images` as `Progress`."""
    generator = torch.Generator().manual_seed(EVAL_SEED)
    mean = G.mean_style() if psi != 1 else None
    images = []
    for start in range(0, count, batch):
        w = G.mapping(G.sample_latents(min(batch, count - start), generator))
        img = G.synthesis(G.truncate(w, psi, mean))  # psi 1: w itself
        images.append(((img.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu())
        if on_images is not None:
            on_images(img.shape[0])
    return torch.cat(images)


def real_images(
    data: str | Path, count: int, img_size: int, width: int | None = None, whole: bool = False
) -> torch.Tensor:
    """The first `count` images of `data` (no mirroring), read as `ImageDataset` reads them."""
    dataset = ImageDataset(data, resolution=img_size, width=width, whole=whole)
    n = min(count, dataset.num_images)
    return torch.stack([dataset[i] for i in range(n)])


def _to_float(images: torch.Tensor) -> torch.Tensor:
    return images.float() / 127.5 - 1


def _inception_scores(extractor, reals, fakes, which, record, progress: bool) -> dict[str, float]:
    # Keyed on the pixels themselves: a folder whose files were replaced in place keeps its size and
    # time, so a key on the path would serve the old images' statistics.
    # And on the network: one file runs as TorchScript or, converted, in FIDInceptionV3 (1e-4 apart).
    key = stats_key(pixels=pixels_digest(reals), shape=list(reals.shape), reading=record["real"],
                    extractor=extractor.sha1, network=extractor.network)  # fmt: skip
    cached = load_cached_stats(key)
    if cached is None:
        with _bar(progress, reals.shape[0], "Inception, real images") as on_images:
            real_features = extractor.features(reals, on_images=on_images).numpy()
        real_stats = feature_stats(real_features)
        try:  # the cache only saves time: a folder it cannot write in must not cost the scores
            save_cached_stats(key, real_stats, real_features)
        except (OSError, UserError) as err:
            reason = (
                f"{err.strerror or err} ({err.filename})"
                if isinstance(err, OSError)
                else str(err).rstrip(".")
            )
            warnings.warn(f"the real images' Inception statistics were not cached: {reason}; the next run "
                          "computes them again.", StatsCacheWarning, stacklevel=2)  # fmt: skip
    else:
        real_stats, real_features = cached
    record["real_stats_cached"] = cached is not None
    with _bar(progress, fakes.shape[0], "Inception, generated") as on_images:
        fake_features = extractor.features(fakes, on_images=on_images).numpy()
    out = {}
    if "fid" in which:
        out["fid"] = frechet_distance(real_stats, feature_stats(fake_features))
    if "kid" in which:
        out["kid"] = kernel_inception_distance(real_features, fake_features)
    return out


def evaluate(
    G: Generator3D,
    data: str | Path,
    metrics: Sequence[str] = ("swd", "consistency"),
    num_images: int = 1000,
    img_size: int = 64,
    psi: float = 1.0,
    extractor: InceptionExtractor | str | Path | None = None,
    render: RenderConfig | None = None,
    pose: PoseConfig | None = None,
    progress: bool = False,
) -> dict:
    """Scores of `G` against `data`; returns {"metrics": {...}, "protocol": {...}}. `extractor`: the FID
    network, loaded (a training run scores many snapshots with one) or its weights file (None: the
    default one). `render` and `pose`: the renderer's settings and the camera prior (a training run's;
    default the FFHQ ones). `progress`: bars on stderr over the images generated and read by Inception."""
    metrics = checked_metrics(metrics, METRICS, psi, num_images)
    started = time.monotonic()
    render = dataclasses.replace(render, img_size=img_size) if render else RenderConfig(img_size=img_size)
    protocol: dict = {
        "cips3d": __version__, "data": str(data), "img_size": img_size, "psi": psi,
        "real": "first N images of the dataset, centre-cropped to a square, LANCZOS-resized, no mirroring",
        "fake": f"seeds from {EVAL_SEED}, {'the run' if pose else 'FFHQ'} pose prior, stochastic renderer, "
        "uint8 as in PNG",
        "file_format": "none (in memory, uint8)",
    }  # fmt: skip
    scores: dict[str, float] = {}
    if any(m in metrics for m in IMAGE_METRICS):
        reals = real_images(data, num_images, img_size)
        _check_counts(reals, metrics, num_images)  # before the fakes are generated
        with _bar(progress, reals.shape[0], "generating") as on_images:
            fakes = generated_images(
                G,
                reals.shape[0],
                render,
                given_or_default(pose, PoseConfig, "pose"),
                psi,
                on_images=on_images,
            )
        scores |= _image_scores(reals, fakes, data, metrics, extractor, G.device, protocol, progress)
    if "consistency" in metrics:
        scores |= generator_consistency(G, img_size=img_size)
        protocol["consistency"] = "16 latents, yaw pi/2 +- 0.05 and the pair 1.44 / 1.70, deterministic"
    protocol["seconds"] = round(time.monotonic() - started, 2)
    return {"metrics": scores, "protocol": protocol}


def checked_metrics(
    metrics: str | Sequence[str], known: Sequence[str], psi: float, num_images: int, scored_by: str = "known:"
) -> tuple[str, ...]:
    """`metrics` as a tuple of names (one name may be given as a string: "fid" was read as "f", "i",
    "d"), checked before anything is rendered, with the truncation and image count; an empty list is a
    `ConfigError` (it scored nothing), a name not in `known` a `UserError` listing them."""
    names = (metrics,) if isinstance(metrics, str) else metrics
    if not (isinstance(names, Sequence) and all(isinstance(m, str) for m in names)):
        raise ConfigError(f"metrics must be names such as {known[0]!r}, got {metrics!r}.")
    if not names:
        raise ConfigError(f"name at least one metric ({', '.join(known)}).")
    unknown = [m for m in names if m not in known]
    if unknown:
        raise UserError(f"unknown metrics {unknown}; {scored_by} {', '.join(known)}.")
    check_psi(psi)  # was only checked once images were drawn, and recorded as given without
    whole_count(num_images, "num_images")
    return tuple(dict.fromkeys(names))


def check_fid_count(real_images: int, asked: int | None = None, name: str = "num_images, --num") -> None:
    """A `UserError` unless there are real images enough for FID and KID (feature statistics need 2),
    naming the cause: `asked`, the number of images to score (the setting `name`), or the data (it
    blamed the data for `--num 1`)."""
    if asked is not None and asked < 2:
        raise UserError(f"FID and KID compare feature statistics and need 2 images or more; the number to "
                        f"score ({name}) is {asked}.")  # fmt: skip
    if real_images < 2:
        raise UserError(f"FID and KID compare feature statistics and need 2 images or more; the data "
                        f"gave {real_images}.")  # fmt: skip


def _check_counts(reals: torch.Tensor, metrics: Sequence[str], asked: int) -> None:
    if "fid" in metrics or "kid" in metrics:
        check_fid_count(reals.shape[0], asked)


def _image_scores(reals, fakes, data, metrics, extractor, device, protocol, progress) -> dict[str, float]:
    """SWD, FID and KID (those in `metrics`) of uint8 image sets; the protocol gains their details.
    `extractor`: an `InceptionExtractor`, or the path (None: default) of one to load on `device`."""
    scores: dict[str, float] = {}
    protocol |= {"num_real": reals.shape[0], "num_fake": fakes.shape[0]}
    if "swd" in metrics:
        scores["swd"] = swd(_to_float(reals), _to_float(fakes)).mean
        protocol["swd"] = describe_swd(*reals.shape[-2:])
    if "fid" in metrics or "kid" in metrics:
        check_fid_count(reals.shape[0])
        if not isinstance(extractor, InceptionExtractor):
            extractor = InceptionExtractor.load(extractor, device)
        protocol |= extractor.protocol
        scores |= _inception_scores(extractor, reals, fakes, metrics, protocol, progress)
    return scores


def evaluate_2d(
    G: Generator2D,
    data: str | Path,
    metrics: Sequence[str] = ("swd",),
    num_images: int = 1000,
    extractor: InceptionExtractor | str | Path | None = None,
    psi: float = 1.0,
    progress: bool = False,
) -> dict:
    """SWD, FID and KID of a 2D generator against `data`, at its training size, its samples truncated to
    `psi` (in W, as `sample2d --psi`); returns
    {"metrics": {...}, "protocol": {...}} as `evaluate` does (`extractor` and `progress` as there).
    Panorama models (cylinder coordinates) are compared with whole images, as they were trained."""
    metrics = checked_metrics(metrics, IMAGE_METRICS, psi, num_images, "a 2D model is scored by")
    started = time.monotonic()
    config = G.config
    whole = config.panorama
    protocol: dict = {
        "cips3d": __version__, "data": str(data), "model": "2D CIPS", "psi": psi, "height": config.size,
        "width": config.grid_width,
        "real": "first N images of the dataset, "
                + ("resized whole" if whole else "centre-cropped to the model's aspect, LANCZOS-resized")
                + ", no mirroring",
        "fake": f"seeds from {EVAL_SEED}, the training grid, no noise, uint8 as in PNG",
        "file_format": "none (in memory, uint8)",
    }  # fmt: skip
    reals = real_images(data, num_images, config.size, config.width, whole)
    _check_counts(reals, metrics, num_images)  # before the fakes are generated
    with _bar(progress, reals.shape[0], "generating") as on_images:
        fakes = generated_images_2d(G, reals.shape[0], psi=psi, on_images=on_images)
    scores = _image_scores(reals, fakes, data, metrics, extractor, G.device, protocol, progress)
    protocol["seconds"] = round(time.monotonic() - started, 2)
    return {"metrics": scores, "protocol": protocol}
