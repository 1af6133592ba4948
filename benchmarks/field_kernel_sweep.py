"""Launch settings of the fused field kernel (`cips3d.kernels.field_triton`) against the PyTorch field.

    python benchmarks/field_kernel_sweep.py --device cuda --out field-sweep.json

One call of the field is one pass of a 512 px frame's deterministic render: 512^2 rays x 12 samples of
the `ffhq` preset, one image (styles folded once, as `InteractiveRenderer` does). Times the PyTorch
field (IEEE float32 and TF32 products) and the kernel for every block size x warps (x pipelining
stages), each with its error against the PyTorch field in IEEE float32 (relative L2 over the features
and the sigmas). Prints a table, fastest first, and writes JSON; the fastest setting is what
`BLOCK_POINTS` / `NUM_WARPS` should be.

With `--device cpu` it runs in Triton's interpreter (TRITON_INTERPRET=1 must be set before Python
starts) on a few points, which is how the tests exercise it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import time
from pathlib import Path

import torch

from cips3d import Generator3D, generator_preset
from cips3d.fast import tf32_matmuls


def field_flop_per_point(field, folded) -> int:
    """Multiply-adds x 2 of one point through the FiLM layers (folded weights [B, in, out]) and the
    two linear heads."""
    films = sum(layer.weight.shape[-2] * layer.weight.shape[-1] for layer in (*folded.hidden, folded.color))
    heads = field.sigma.weight.numel() + field.feature.weight.numel()
    return 2 * (films + heads)


def timed(run, device: torch.device, repeats: int) -> float:
    """Median seconds of `repeats` runs after two warm-ups (CUDA events on a GPU)."""
    for _ in range(2):
        run()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            run()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            begin = time.perf_counter()
            run()
            times.append(time.perf_counter() - begin)
    times.sort()
    return times[len(times) // 2]


def relative_error(out, ref) -> float:
    """Relative L2 error of (feature, sigma) against the reference pair; inf if anything is not finite."""
    num = sum(float((o.double() - r.double()).norm() ** 2) for o, r in zip(out, ref, strict=True))
    den = sum(float(r.double().norm() ** 2) for r in ref)
    error = math.sqrt(num / den)
    return error if math.isfinite(error) else math.inf


def sweep(
    device: torch.device, points_per_image: int, blocks, warps, stages, sines, repeats: int, report=print
) -> dict:
    from cips3d.kernels import field_triton  # noqa: PLC0415 (triton only here)

    G = Generator3D(generator_preset("ffhq")).to(device).eval()
    field = G.field
    styles = G.mapping(*G.sample_latents(1, torch.Generator().manual_seed(0)))
    g = torch.Generator().manual_seed(1)
    points = (torch.rand(1, points_per_image, 3, generator=g) * 2 - 1).mul(0.12).to(device)
    with torch.no_grad():
        folded = field.modulate(styles)
        reference = field._evaluate(points, folded)
    flop = field_flop_per_point(field, folded) * points_per_image
    rows = []

    def add(name, run, **setting):
        with torch.no_grad():
            try:
                out = run()
                seconds = timed(run, device, repeats)
            except Exception as err:  # a block shape this GPU cannot hold (out of registers or shared memory)
                rows.append({"path": name, **setting, "error": f"{type(err).__name__}: {str(err)[:200]}"})
                report(rows[-1])
                return
        error = relative_error(out, reference)
        rows.append({
            "path": name, **setting, "ms": round(seconds * 1e3, 4),
            "tflops": round(flop / seconds / 1e12, 2), "rel_error": float(f"{error:.3g}"),
        })  # fmt: skip
        report(rows[-1])

    add("torch-ieee", lambda: field._evaluate(points, folded))
    with tf32_matmuls(True, device):
        add("torch-tf32", lambda: field._evaluate(points, folded))
    for block, warp, stage, fast_sine in itertools.product(blocks, warps, stages, sines):
        launch = dict(block=block, num_warps=warp, num_stages=stage, fast_sine=fast_sine)

        def fused(launch=launch, tf32=True):
            return field_triton.fused_field(points, folded, field.sigma, field.feature, tf32, **launch)

        add("triton-tf32", fused, **launch)
    timed_rows = [r for r in rows if "ms" in r and r["path"].startswith("triton")]
    best = min(timed_rows, key=lambda r: r["ms"]) if timed_rows else None
    if best:  # the best launch with IEEE float32 products too
        launch = {k: best[k] for k in ("block", "num_warps", "num_stages", "fast_sine")}
        add("triton-ieee", lambda: field_triton.fused_field(
            points, folded, field.sigma, field.feature, False, **launch), **launch)  # fmt: skip
        if best["fast_sine"]:  # what the hardware sine costs in accuracy, with exact products
            launch["fast_sine"] = False
            add("triton-ieee", lambda: field_triton.fused_field(
                points, folded, field.sigma, field.feature, False, **launch), **launch)  # fmt: skip
    return {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu (Triton interpreter)",
        "points": points_per_image, "gflop_per_call": round(flop / 1e9, 3), "rows": rows, "best": best,
    }  # fmt: skip


def table(result: dict) -> str:
    cols = ["path", "block", "num_warps", "num_stages", "fast_sine", "ms", "tflops", "rel_error", "error"]
    rows = sorted(result["rows"], key=lambda r: r.get("ms", math.inf))
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join("" if r.get(c) is None else str(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--points", type=int, default=512 * 512 * 12, help="points per call (one image)")
    parser.add_argument("--blocks", default="32,64,128")
    parser.add_argument("--warps", default="4,8")
    parser.add_argument("--stages", default="default", help="num_stages values; 'default' is Triton's")
    parser.add_argument("--fast-sine", default="0,1", help="hardware sine off (0) and on (1), CUDA only")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", default="field-sweep.json")
    args = parser.parse_args()
    ints = lambda text: tuple(int(v) for v in text.split(","))  # noqa: E731
    stages = tuple(None if v == "default" else int(v) for v in args.stages.split(","))
    sines = tuple(bool(v) for v in ints(args.fast_sine))
    result = sweep(torch.device(args.device), args.points, ints(args.blocks), ints(args.warps), stages, sines,
                   args.repeats, report=lambda row: print(row, flush=True))  # fmt: skip
    print(table(result))
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"best: {result['best']}; wrote {args.out}")


if __name__ == "__main__":
    main()
