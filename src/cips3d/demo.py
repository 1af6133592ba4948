"""The built-in demo (`make demo`, `cips3d demo`): watch CIPS-3D learn 3-D objects on one CPU.

1. Build (once, cached) the procedural multi-view dataset at 32 px.
2. Score the untrained tiny generator, train it for a bounded time (`minutes`), score it again.
3. Write a sample grid, the aux NeRF views and depth beside the images, a turntable video
   (image | aux | depth; mp4, or GIF without an encoder) and a metrics table (start vs end).
4. Invert a held-out synthetic object (a scene the training set does not hold, from a known camera):
   the fit beside the target, and a yaw sweep of the fitted object.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cips3d import __version__
from cips3d.config import RenderConfig
from cips3d.data.synth import cameras_path, render_scenes, sample_scenes, write_synth_dataset
from cips3d.inference.inversion import InversionConfig, fit_panels, invert, target_scale_known
from cips3d.inference.trajectories import yaw as yaw_trajectory
from cips3d.inference.video import video_frames
from cips3d.io.files import atomic_write
from cips3d.io.images import depth_tiles, make_grid, save_png, to_uint8
from cips3d.io.video import write_mp4_or_gif
from cips3d.metrics.evaluate import evaluate
from cips3d.metrics.inception import default_weights_path
from cips3d.metrics.perceptual import load_perceptual
from cips3d.models.generator3d import Generator3D
from cips3d.rendering.cameras import Camera
from cips3d.training.config import train_preset
from cips3d.training.trainer import Trainer, TrainOptions

DATA_COUNT, DATA_SIZE = 5000, 32
EVAL_IMAGES = 200  # per side; FID at this count is biased upwards, KID is not: compare start with end
SAMPLE_SEEDS = range(16)
HELD_OUT_SEED = 10_000  # the dataset's scenes all come from seed 0's stream
HELD_OUT_CAMERA = (np.pi / 2 + 0.3, np.pi / 2 - 0.1)  # yaw, pitch
INVERSION_STEPS = 100


@dataclass(frozen=True)
class DemoResult:
    outdir: Path
    files: dict[str, Path]
    metrics: dict[str, dict[str, float]]


def _dataset(outdir: Path, progress: bool) -> Path:
    data = outdir / "data" / f"synth{DATA_SIZE}.zip"
    if not (data.is_file() and cameras_path(data).is_file()):
        write_synth_dataset(data, DATA_COUNT, DATA_SIZE, seed=0, progress=progress)
    return data


def _metric_names() -> list[str]:
    try:
        default_weights_path()
    except Exception:  # no Inception weights installed: the scores that need no network still run
        return ["swd", "consistency"]
    return ["swd", "kid", "fid", "consistency"]


def _score(G: Generator3D, data: Path) -> dict:
    return evaluate(G, data, _metric_names(), num_images=EVAL_IMAGES, img_size=DATA_SIZE)


def _record(outdir: Path, output: str) -> dict[str, str]:
    """What the demo's pictures record (`save_png(record=...)`): the model is its own run's G_ema."""
    run = (outdir / "run").resolve()
    return {"command": "cips3d demo", "version": __version__, "run": str(run), "output": output}


@torch.no_grad()
def _pictures(G: Generator3D, outdir: Path) -> dict[str, Path]:
    """Sample grids at the training size and at twice it, and image | aux | depth rows."""
    files = {}
    z = G.sample_latents(len(SAMPLE_SEEDS), [torch.Generator().manual_seed(s) for s in SAMPLE_SEEDS])
    camera = Camera.from_angles(np.pi / 2, np.pi / 2, batch=len(SAMPLE_SEEDS))
    for size in (DATA_SIZE, 2 * DATA_SIZE):
        render = RenderConfig(img_size=size, deterministic=True)
        out = G.synthesis(G.mapping(*z), camera, render)
        name = "samples.png" if size == DATA_SIZE else f"samples_{size}px.png"
        record = _record(
            outdir, f"seeds {SAMPLE_SEEDS.start}-{SAMPLE_SEEDS.stop - 1} at {size} px, from the front"
        )
        files[name] = save_png(make_grid(to_uint8(out.img), 8), outdir / name, record)
        if size != DATA_SIZE:
            depth = depth_tiles(out.depth[:8], render.ray_start, render.ray_end)
            rows = np.concatenate([to_uint8(out.img[:8]), to_uint8(out.aux_img[:8]), depth])
            views = _record(outdir, f"seeds 0-7 at {size} px: images, aux images, depth")
            files["views.png"] = save_png(make_grid(rows, 8), outdir / "views.png", views)
    return files


def _turntable(G: Generator3D, outdir: Path, progress: bool) -> Path:
    """The official yaw sweep there and back, panels image | aux | depth, at twice the training size."""
    render = RenderConfig(img_size=2 * DATA_SIZE, deterministic=True)
    sweep = yaw_trajectory(24)
    trajectory = sweep.select(list(range(24)) + list(range(22, 0, -1)))
    styles = G.mapping(*G.sample_latents(1, torch.Generator().manual_seed(0)))
    frames = video_frames(G, styles, trajectory, render, panels=("image", "aux", "depth"), progress=progress)
    record = _record(outdir, "seed 0 along the official yaw sweep and back: image | aux | depth")
    return write_mp4_or_gif(frames, outdir / "turntable", fps=12, record=record)


def _inversion(G: Generator3D, outdir: Path, progress: bool) -> tuple[dict[str, Path], dict]:
    """Fit a held-out object's view (`cips3d invert` with its defaults, fewer steps); its files and a
    record of the true and fitted cameras."""
    scene = sample_scenes(1, torch.Generator().manual_seed(HELD_OUT_SEED))
    rgb, _ = render_scenes(scene, Camera.from_angles(*HELD_OUT_CAMERA), DATA_SIZE)
    target = rgb * 2 - 1
    perceptual = load_perceptual() if "fid" in _metric_names() else None  # the Inception weights
    config = InversionConfig(steps=INVERSION_STEPS, size=DATA_SIZE, perceptual=0.1 if perceptual else 0.0)
    with target_scale_known():  # a render mapped from [0, 1] just above
        result = invert(G, target, config, perceptual=perceptual)
    render = RenderConfig(img_size=DATA_SIZE, deterministic=True)
    fitted = _record(outdir, "a held-out view | its fit | aux image | depth")
    files = {
        "inversion.png": save_png(fit_panels(target, result.output, render), outdir / "inversion.png", fitted)
    }
    sweep = RenderConfig(img_size=2 * DATA_SIZE, deterministic=True)
    frames = video_frames(
        G,
        result.styles,
        yaw_trajectory(24),
        sweep,
        panels=("image", "depth"),
        progress=progress,
        desc="inversion",
    )
    files["inversion_video"] = write_mp4_or_gif(
        frames,
        outdir / "inversion",
        fps=12,
        record=_record(outdir, "the fit along the yaw sweep: image | depth"),
    )
    record = {
        "true_yaw_pitch": list(HELD_OUT_CAMERA), "fitted_yaw_pitch": [result.yaw, result.pitch],
        "loss_start": result.losses[0], "loss_end": result.losses[-1], "perceptual_weight": config.perceptual,
    }  # fmt: skip
    return files, record


def _table(start: dict, end: dict) -> str:
    lines = ["| metric | start | end |", "| --- | --- | --- |"]
    for name, value in start.items():
        lines.append(f"| {name} | {value:.4g} | {end[name]:.4g} |")
    return "\n".join(lines)


def run_demo(
    outdir: str | Path, minutes: float = 10.0, device: str = "cpu", progress: bool = True
) -> DemoResult:
    """Run the whole demo into `outdir` (its training run starts afresh each time; the data is kept)."""
    outdir = Path(outdir)
    started = time.monotonic()
    data = _dataset(outdir, progress)
    run_dir = outdir / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    # No xflip: the synthetic objects are asymmetric on purpose (ear on +x), and mirrored copies would
    # make the mirror-symmetric solution the right answer.
    config = dataclasses.replace(train_preset("tiny"), xflip=False)
    options = TrainOptions(device=torch.device(device), progress=progress, max_minutes=minutes)
    trainer = Trainer(config, run_dir, data, options)
    start = _score(trainer.G_ema, data)
    state = trainer.run()
    G = trainer.G_ema.eval()
    end = _score(G, data)
    files = _pictures(G, outdir)
    files["turntable"] = _turntable(G, outdir, progress)
    inversion_files, inversion = _inversion(G, outdir, progress)
    files |= inversion_files
    table = _table(start["metrics"], end["metrics"])
    files["metrics.md"] = atomic_write(outdir / "metrics.md", lambda p: Path(p).write_text(table + "\n"))
    log = {
        "steps": state.global_step, "images_seen": state.images_seen, "minutes_budget": minutes,
        "seconds_total": round(time.monotonic() - started, 1), "device": device,
        "start": start, "end": end, "inversion": inversion,
    }  # fmt: skip
    files["demo_log.json"] = atomic_write(
        outdir / "demo_log.json", lambda p: Path(p).write_text(json.dumps(log, indent=2))
    )
    return DemoResult(outdir=outdir, files=files, metrics={"start": start["metrics"], "end": end["metrics"]})
