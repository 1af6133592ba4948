"""The GPU part of `make bench` (`bench.py --device cuda`), issue 7's GPU targets:

- interactive frames: one latent, 512 px, batch 1, deterministic sampling, the camera moving every frame
  (`InteractiveRenderer`), in float32 and in the fast setting (bf16 INR, TF32 field, float32
  compositing), the fast one also replayed from a CUDA graph; target 60 frames per second;
- batched 256 px inference (batch 16, the official sampling) of our fast setting against our float32
  reference path (the official algorithm as written, one image at a time); target 10x its throughput;
- the card's own matrix throughput in bf16, TF32 and IEEE float32, measured in the same run, so every
  row also reads as a fraction of what the card can do.

Everything here also runs on a CPU at small sizes (`tests/test_bench_script.py` does), so the code a GPU
session relies on is exercised in CI.
"""

from __future__ import annotations

import itertools
import math
import time

import torch

from cips3d import Camera, Generator3D, PoseConfig, RenderConfig
from cips3d.fast import tf32_matmuls
from cips3d.inference.interactive import CHECKED_FRAMES, InteractiveRenderer
from cips3d.inference.sample import sample_seeds
from cips3d.reference import reference_images

# The fast setting of the GPU targets: bf16 INR products, TF32 field products, float32 compositing.
FAST = dict(precision="bf16", field_precision="tf32")
# ... with the field as one fused Triton kernel (CUDA only; `cips3d.kernels.field_triton`),
FUSED = FAST | dict(field_kernel="triton")
# ... and the INR's layers as Triton products with their activation and residual fused (`inr_triton`).
FUSED_ALL = FUSED | dict(inr_kernel="triton")
KERNEL_SETTINGS = {"fused": FUSED, "fused-all": FUSED_ALL}
"""The settings that need a CUDA GPU and a working Triton, by path name (batched; frames add -graph)."""
# Which measured peak a path is compared with: its products' arithmetic.
PEAK_OF_PATH = {"float32": "float32", "fast": "bf16", "fast-graph": "bf16", "reference": "float32",
                "ours": "float32", "ours-compiled": "float32", "ours-bf16": "bf16",
                "fast-compiled": "bf16", "fast-graph-compiled": "bf16", "fused": "bf16",
                "fused-graph": "bf16", "fused-all": "bf16", "fused-all-graph": "bf16",
                "fused-seeds": "bf16"}  # fmt: skip


def matmul_peaks(device: torch.device, n: int = 8192, repeats: int = 10) -> dict[str, float]:
    """TFLOP/s of an n x n x n product in bf16, TF32 and IEEE float32 on `device` (best of `repeats`)."""
    peaks = {}
    for name, dtype, tf32 in (("bf16", torch.bfloat16, False), ("tf32", torch.float32, True),
                              ("float32", torch.float32, False)):  # fmt: skip
        generator = torch.Generator(device=device).manual_seed(0)
        a = torch.randn(n, n, device=device, generator=generator).to(dtype)
        b = torch.randn(n, n, device=device, generator=generator).to(dtype)
        with tf32_matmuls(tf32, device):
            best = best_product_seconds(a, b, device, repeats)
        peaks[name] = float(f"{2 * n**3 / best / 1e12:.4g}")
    return peaks


def best_product_seconds(a: torch.Tensor, b: torch.Tensor, device: torch.device, repeats: int) -> float:
    """The best of `repeats` timed products a @ b, after one untimed (library handles, kernel choice)."""
    a @ b
    best = math.inf
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - start)
    return best


FRAME_PATHS = {
    "float32": ({}, False), "fast": (FAST, False), "fast-graph": (FAST, True),
    **{f"{name}-graph": (options, True) for name, options in KERNEL_SETTINGS.items()},
}  # fmt: skip
PLAIN_FRAME_PATHS = ("float32", "fast", "fast-graph")
"""The frame paths that run anywhere; the fused ones need a CUDA GPU and a working Triton."""


def frame_cases(
    case_type,
    G: Generator3D,
    size: int = 512,
    chunk_rows: int = 65536,
    frames: int = 24,
    paths: tuple[str, ...] = PLAIN_FRAME_PATHS,
    label: str = "",
) -> list:
    """One interactive frame per run, the camera orbiting (a new camera every call); `label` is added
    to the path names (e.g. '-compiled' for a compiled generator)."""
    styles = G.mapping(*G.sample_latents(1, torch.Generator().manual_seed(0)))
    yaws = torch.linspace(-0.5, 0.5, frames) + math.pi / 2
    cameras = [Camera.from_angles(y, math.pi / 2 - 0.1 * math.sin(2 * math.pi * i / frames))
               for i, y in enumerate(yaws.tolist())]  # fmt: skip
    cases = []
    for path in paths:
        options, graph = FRAME_PATHS[path]
        render = RenderConfig(img_size=size, deterministic=True, chunk_rows=chunk_rows, **options)
        viewer = InteractiveRenderer(G, styles, render, cuda_graph=graph)
        if graph:  # capture and the checked replays now, so that every timed frame is a plain replay
            for camera in cameras[: CHECKED_FRAMES + 1]:
                viewer.render(camera)
        run = _orbiting(viewer, cameras)
        cases.append(case_type(f"frame {size}px b1", "infer", size, 1, path + label, run))
    return cases


def _orbiting(viewer: InteractiveRenderer, cameras: list[Camera]):
    """A run that renders the next camera of the orbit on every call."""
    counter = itertools.count()
    return lambda: viewer.render(cameras[next(counter) % len(cameras)]).img


def batched_cases(
    case_type, G: Generator3D, size: int = 256, batch: int = 16, chunk_rows: int = 65536, kernels=()
) -> list:
    """Batched inference with the official sampling: our float32 and fast paths (and the fast one
    with each of `kernels`, names of KERNEL_SETTINGS), and the reference."""
    device = G.device
    z = G.sample_latents(batch, torch.Generator().manual_seed(0))
    pose = PoseConfig()

    def generator():  # on the device, so the draws cost no host work or transfer
        return torch.Generator(device=device).manual_seed(1)

    def ours(render):
        def run():
            with torch.no_grad():
                return G(*z, pose=pose, render=render, generator=generator()).img

        return run

    def reference():
        g = generator()
        with torch.no_grad():
            camera = G.sample_cameras(pose, batch, g)
            return reference_images(G, G.mapping(*z), camera, RenderConfig(img_size=size), generator=g)

    name = f"infer {size}px b{batch}"
    float32 = RenderConfig(img_size=size, chunk_rows=chunk_rows)
    fast = RenderConfig(img_size=size, chunk_rows=chunk_rows, **FAST)
    cases = [
        case_type(name, "infer", size, batch, "float32", ours(float32)),
        case_type(name, "infer", size, batch, "fast", ours(fast)),
        case_type(name, "infer", size, batch, "reference", reference),
    ]
    for kernel in kernels:
        render = RenderConfig(img_size=size, chunk_rows=chunk_rows, **KERNEL_SETTINGS[kernel])
        cases.append(case_type(name, "infer", size, batch, kernel, ours(render)))
        if kernel == "fused":  # the fastest batched setting, as the CLI renders it
            cases.append(case_type(name, "infer", size, batch, "fused-seeds", _per_seed(G, batch, render)))
    return cases


def _per_seed(G: Generator3D, batch: int, render: RenderConfig):
    """A batch as `cips3d sample --batch-size N` renders it: one CPU generator per seed (an image is the
    same on any device), so its latents, camera and ray draws are made on the host and copied (at 256
    px about 5.6 ms of host work per image on a 2-core CPU: what the GPU waits for, against the
    device-generator rows beside it)."""

    def run():
        with torch.no_grad():
            return next(sample_seeds(G, range(batch), render=render, pose=PoseConfig(), batch_size=batch))

    return run


def fused_kernel_error(G: Generator3D, size: int, options: dict = FUSED) -> dict:
    """A kernel setting's error against float32, or why its kernels cannot run here (then its cases
    are left out, and the rest of a GPU session's benchmark still runs)."""
    try:
        return setting_errors(G, options, size=size)
    except Exception as err:  # a Triton that cannot compile the kernel for this GPU, a missing package
        return {"unavailable": f"{type(err).__name__}: {str(err).strip()[:300]}"}


def add_gpu_columns(rows: list[dict], peaks: dict[str, float]) -> None:
    """TFLOP/s achieved and its fraction of the card's measured peak for the path's arithmetic."""
    for row in rows:
        peak = peaks.get(PEAK_OF_PATH.get(row["path"], ""))
        if "gflops" not in row or not peak:
            continue
        row["tflops"] = round(row["gflops"] / 1e3, 2)
        row["fraction_of_peak"] = float(f"{row['gflops'] / 1e3 / peak:.3g}")


@torch.no_grad()
def setting_errors(G: Generator3D, options: dict, size: int = 128) -> dict[str, float]:
    """Image and depth error of a reduced-precision setting (RenderConfig options) against float32:
    deterministic sampling, a frontal and a turned camera."""
    styles = G.mapping(*G.sample_latents(2, torch.Generator().manual_seed(5)))
    camera = Camera.from_angles(torch.tensor([math.pi / 2, math.pi / 2 + 0.3]), math.pi / 2)
    exact = G.synthesis(styles, camera, RenderConfig(img_size=size, deterministic=True))
    reduced = G.synthesis(styles, camera, RenderConfig(img_size=size, deterministic=True, **options))
    error = (exact.img - reduced.img).abs()
    return {
        "img_size": size,
        "max_abs_error": float(error.max()),
        "mean_abs_error": float(error.mean()),
        "depth_max_abs_error": float((exact.depth - reduced.depth).abs().max()),
    }


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (timings on a GPU must not end before it does)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
