"""Where the GPU time goes: PyTorch's profiler over a few eager runs of one workload, per setting.

    python benchmarks/profile_gpu.py --device cuda --workload frame --size 512 --out-dir profiles/
    python benchmarks/profile_gpu.py --device cuda --workload batched --size 256 --batch 16
    python benchmarks/profile_gpu.py --device cuda --workload train --size 128 --batch 4

Workloads: `frame`, interactive frames of one latent (`InteractiveRenderer`, deterministic sampling, no
CUDA graph so that each kernel is attributed to its operator); `batched`, G with the official
stochastic sampling on a batch; `train`, one training iteration (D step with R1, then G step, the
aux branch on; settings `float32` and `tf32`, the latter `cips3d train --tf32`). For each setting it
prints the kernels that took the most time, writes the profiler's table as
`profile-<workload>-<setting>.txt` and a JSON summary in `profile-<workload>.json`: milliseconds per
run by device kernel (`by_kernel`, which sum to `ms_per_run`) and by operator (`by_operator`, the
kernels an operator launched itself). On a CPU there are no device kernels: operators' CPU time.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from pathlib import Path

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

from cips3d import Camera, Generator3D, PoseConfig, RenderConfig, generator_preset
from cips3d.fast import tf32_matmuls
from cips3d.inference.interactive import InteractiveRenderer
from cips3d.models.discriminator import Discriminator, discriminator_preset
from cips3d.training.steps import StepRandom, StepSettings, d_step, g_step

FAST = dict(precision="bf16", field_precision="tf32")
RENDER_SETTINGS = {
    "float32": {},
    "fast": FAST,
    "fused": FAST | dict(field_kernel="triton"),
    "fused-all": FAST | dict(field_kernel="triton", inr_kernel="triton"),
}
TRAIN_SETTINGS = ("float32", "tf32")
WARM_UP = 2  # runs before profiling: library handles, kernel choice, Triton compilation


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def frame_runs(G: Generator3D, setting: str, size: int, batch: int, preset: str) -> Callable[[], object]:
    styles = G.mapping(*G.sample_latents(batch, torch.Generator().manual_seed(0)))
    render = RenderConfig(img_size=size, deterministic=True, **RENDER_SETTINGS[setting])
    viewer = InteractiveRenderer(G, styles, render, cuda_graph=False)
    turn = iter(range(10**9))
    return lambda: viewer.render(
        Camera.from_angles(math.pi / 2 + 0.3 * math.sin(next(turn)), math.pi / 2, batch=batch)
    )


def batched_runs(G: Generator3D, setting: str, size: int, batch: int, preset: str) -> Callable[[], object]:
    z = G.sample_latents(batch, torch.Generator().manual_seed(0))
    render = RenderConfig(img_size=size, **RENDER_SETTINGS[setting])

    @torch.no_grad()
    def run():
        return G(*z, pose=PoseConfig(), render=render, generator=torch.Generator(G.device).manual_seed(1))

    return run


def train_runs(G: Generator3D, setting: str, size: int, batch: int, preset: str) -> Callable[[], object]:
    if setting not in TRAIN_SETTINGS:
        raise KeyError(setting)
    G.train()
    D = Discriminator(discriminator_preset(preset)).to(G.device)
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-4, betas=(0.0, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-4, betas=(0.0, 0.999))
    random = StepRandom(g=torch.Generator().manual_seed(2), d=torch.Generator().manual_seed(3))
    reals = (torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(4)) * 2 - 1).to(
        G.device
    )
    settings = StepSettings(
        render=RenderConfig(img_size=size, nerf_noise=1.0), pose=PoseConfig(), batch_size=batch, aux=True,
        alpha=1.0, augment=None, r1_gamma=10.0, r1_scale=1.0, grad_clip=10.0, nerf_grad=True,
    )  # fmt: skip

    def run():
        with tf32_matmuls(setting == "tf32", G.device):
            d_step(G, D, opt_d, reals, settings, random)
            g_step(G, D, opt_g, settings, random)

    return run


WORKLOADS = {"frame": frame_runs, "batched": batched_runs, "train": train_runs}


def profile_runs(run: Callable[[], object], device: torch.device, runs: int) -> tuple[str, dict]:
    """The profiler's table and the per-run milliseconds by device kernel and by operator."""
    for _ in range(WARM_UP):
        run()
    sync(device)
    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        for _ in range(runs):
            run()
        sync(device)
    averages = prof.key_averages()
    key = "self_device_time_total" if cuda else "self_cpu_time_total"

    def per_run(events) -> dict[str, float]:
        times = {e.key: round(getattr(e, key) / 1e3 / runs, 3) for e in events if getattr(e, key) > 0}
        return dict(sorted(times.items(), key=lambda kv: -kv[1]))

    kernels = [e for e in averages if e.device_type == DeviceType.CUDA] if cuda else list(averages)
    operators = [e for e in averages if e.device_type == DeviceType.CPU]
    by_kernel = per_run(kernels)
    summary = {"clock": "gpu" if cuda else "cpu", "ms_per_run": round(sum(by_kernel.values()), 3)}
    summary |= {"by_kernel": by_kernel, "by_operator": per_run(operators)}
    return averages.table(sort_by=key, row_limit=30), summary


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="frame")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--preset", default="ffhq")
    parser.add_argument("--settings", help="comma-separated (default: all of the workload's)")
    parser.add_argument("--out-dir", default=".")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    G = Generator3D(generator_preset(args.preset)).to(device).eval()
    defaults = TRAIN_SETTINGS if args.workload == "train" else tuple(RENDER_SETTINGS)
    summary = {"workload": args.workload, "size": args.size, "batch": args.batch, "device": str(device)}
    for setting in args.settings.split(",") if args.settings else defaults:
        try:
            run = WORKLOADS[args.workload](G, setting, args.size, args.batch, args.preset)
            text, summary[setting] = profile_runs(run, device, args.runs)
        except Exception as err:  # e.g. a kernel failing to compile: the other settings still run
            summary[setting] = {"error": f"{type(err).__name__}: {str(err)[:300]}"}
            print(f"{setting}: {summary[setting]['error']}")
            continue
        (out / f"profile-{args.workload}-{setting}.txt").write_text(text)
        result = summary[setting]
        print(f"== {args.workload} {setting}: {result['ms_per_run']} {result['clock'].upper()} ms per run")
        for kernel, ms in list(result["by_kernel"].items())[:12]:
            print(f"  {ms:8.3f} ms  {kernel[:110]}")
    (out / f"profile-{args.workload}.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


if __name__ == "__main__":
    main()
