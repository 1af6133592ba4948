"""Where a 512 px interactive frame spends its GPU time: PyTorch's profiler over eager frames.

    python benchmarks/profile_frame.py --device cuda --size 512 --out-dir profiles/

For each setting (float32, the fast setting, the fast setting with the fused field kernel) it renders a
few orbiting frames eagerly (no CUDA graph, so each kernel is attributed to its operator), then prints
the kernels that took the most GPU time and writes the table as `profile-<setting>.txt`, with a JSON
summary (GPU milliseconds per frame by operator) in `profile.json`.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from cips3d import Camera, Generator3D, RenderConfig, generator_preset
from cips3d.inference.interactive import InteractiveRenderer

SETTINGS = {
    "float32": {},
    "fast": dict(precision="bf16", field_precision="tf32"),
    "fused": dict(precision="bf16", field_precision="tf32", field_kernel="triton"),
    "fused-all": dict(precision="bf16", field_precision="tf32", field_kernel="triton", inr_kernel="triton"),
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def profile_setting(G: Generator3D, styles, size: int, options: dict, frames: int) -> tuple[str, dict]:
    render = RenderConfig(img_size=size, deterministic=True, **options)
    viewer = InteractiveRenderer(G, styles, render, cuda_graph=False)
    cameras = [Camera.from_angles(math.pi / 2 + 0.3 * math.sin(i), math.pi / 2) for i in range(frames + 2)]
    for camera in cameras[:2]:  # warm-up: handles, kernel choice, Triton compilation
        viewer.render(camera)
    sync(G.device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if G.device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for camera in cameras[2:]:
            viewer.render(camera)
        sync(G.device)
    averages = prof.key_averages()
    key = "self_device_time_total" if G.device.type == "cuda" else "self_cpu_time_total"
    text = averages.table(sort_by=key, row_limit=25)
    per_frame = {e.key: round(getattr(e, key) / 1e3 / frames, 3) for e in averages if getattr(e, key) > 0}
    per_frame = dict(sorted(per_frame.items(), key=lambda kv: -kv[1]))
    clock = "gpu" if G.device.type == "cuda" else "cpu"  # which time the profiler attributed
    return text, {f"{clock}_ms_per_frame": round(sum(per_frame.values()), 3), "by_kernel": per_frame}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--frames", type=int, default=3)
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--out-dir", default=".")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    G = Generator3D(generator_preset("ffhq")).to(device).eval()
    styles = G.mapping(*G.sample_latents(1, torch.Generator().manual_seed(0)))
    summary = {}
    for name in args.settings.split(","):
        try:
            text, summary[name] = profile_setting(G, styles, args.size, SETTINGS[name], args.frames)
        except Exception as err:  # e.g. the fused kernel failing to compile: the other settings still run
            summary[name] = {"error": f"{type(err).__name__}: {str(err)[:300]}"}
            print(f"{name}: {summary[name]['error']}")
            continue
        (out / f"profile-{name}.txt").write_text(text)
        top = list(summary[name]["by_kernel"].items())[:12]
        total = next(v for k, v in summary[name].items() if k.endswith("_ms_per_frame"))
        print(f"== {name}: {total} ms per frame (sum of self times)")
        for kernel, ms in top:
            print(f"  {ms:8.3f} ms  {kernel[:110]}")
    (out / "profile.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


if __name__ == "__main__":
    main()
