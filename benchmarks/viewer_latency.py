"""How fast `cips3d view` answers: frames of an orbiting camera requested over HTTP, one after the
other as the page requests them, with the server's render and PNG-encode times and the client's
round trip per frame.

    python benchmarks/viewer_latency.py --device cuda --preset ffhq --size 512 --fast --frames 60

`--fast` is the fast setting of the GPU targets (bf16 INR, TF32 field, float32 compositing); on CUDA
frames replay a CUDA graph. Prints a table (median and 90th percentile, frames per second from the
median round trip, and from the wall time) and writes JSON with every frame's numbers.

`--in-flight 2` keeps two requests open at once (the page keeps one): the server renders one frame while
the other is encoded and sent, which says what pipelining the page's requests would gain (the render
times then include the wait for the other request's render; compare the throughput).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from cips3d import Generator3D, RenderConfig, generator_preset
from cips3d.inference.web_viewer import make_server, serve_in_thread

WARM_UP = 3  # frames before timing: library handles, the CUDA graph capture and its checked replays
FAST = dict(precision="bf16", field_precision="tf32")


def orbit_queries(frames: int, seed: int = 0, image_format: str = "jpeg") -> list[str]:
    """One query per frame: the yaw swinging +-0.5 rad around the front, the pitch nodding."""
    out = []
    for i in range(frames):
        phase = 2 * math.pi * i / max(frames, 1)
        yaw, pitch = math.pi / 2 + 0.5 * math.sin(phase), math.pi / 2 - 0.1 * math.cos(phase)
        out.append(f"seed={seed}&yaw={yaw:.5f}&pitch={pitch:.5f}&format={image_format}")
    return out


def fetch(url: str, query: str) -> dict[str, float]:
    """One frame: the server's timings and the round trip, in milliseconds."""
    started = time.perf_counter()
    with urllib.request.urlopen(f"{url}/frame?{query}", timeout=600) as response:
        response.read()
        headers = response.headers
    return {
        "render_ms": float(headers["X-Render-Ms"]), "encode_ms": float(headers["X-Encode-Ms"]),
        "round_trip_ms": 1000 * (time.perf_counter() - started),
    }  # fmt: skip


def measure(url: str, queries: list[str], in_flight: int = 1) -> tuple[list[dict[str, float]], float]:
    """Request the frames in order, `in_flight` open at a time; each frame's timings, and the wall time
    of all of them in seconds."""
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=in_flight) as pool:  # map keeps `in_flight` requests open
        rows = list(pool.map(lambda query: fetch(url, query), queries))
    return rows, time.perf_counter() - started


def summarise(rows: list[dict[str, float]], seconds: float) -> dict[str, float]:
    summary = {}
    for key in ("render_ms", "encode_ms", "round_trip_ms"):
        values = sorted(r[key] for r in rows)
        summary[f"{key}_median"] = round(statistics.median(values), 2)
        summary[f"{key}_p90"] = round(values[min(len(values) - 1, int(0.9 * len(values)))], 2)
    summary["frames_per_second"] = round(1000 / summary["round_trip_ms_median"], 2)
    summary["throughput_fps"] = round(len(rows) / seconds, 2)  # from the wall time: counts overlap
    return summary


def run(
    G: Generator3D, render: RenderConfig, frames: int, image_format: str = "jpeg", in_flight: int = 1
) -> tuple[dict[str, float], list[dict[str, float]]]:
    server = make_server(G, render, port=0)
    stop = serve_in_thread(server)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        measure(url, orbit_queries(WARM_UP, 0, image_format))
        rows, seconds = measure(url, orbit_queries(frames, 0, image_format), in_flight)
    finally:
        stop()
    return summarise(rows, seconds), rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--preset", default="ffhq")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--fast", action="store_true", help="bf16 INR and TF32 field")
    parser.add_argument("--field-kernel", default="torch", choices=("torch", "triton"),
                        help="the NeRF field layer by layer, or one fused Triton kernel (CUDA)")  # fmt: skip
    parser.add_argument("--inr-kernel", default="torch", choices=("torch", "triton"),
                        help="the INR layers in cuBLAS, or fused Triton products (CUDA)")  # fmt: skip
    parser.add_argument(
        "--format", default="jpeg", choices=("jpeg", "png"), help="frame encoding (default jpeg)"
    )
    parser.add_argument("--in-flight", type=int, default=1,
                        help="requests open at once (the page: 1; 2 overlaps one render with the last "
                        "frame's encoding and transfer)")  # fmt: skip
    parser.add_argument("--out", default="benchmarks/viewer-latency.json")
    args = parser.parse_args(argv)
    if args.in_flight < 1:
        parser.error("--in-flight must be 1 or more")
    device = torch.device(args.device)
    G = (
        Generator3D(generator_preset(args.preset), generator=torch.Generator().manual_seed(0))
        .to(device)
        .eval()
    )
    options = (FAST if args.fast else {}) | {"field_kernel": args.field_kernel, "inr_kernel": args.inr_kernel}
    render = RenderConfig(img_size=args.size, deterministic=True, **options)
    summary, rows = run(G, render, args.frames, args.format, args.in_flight)
    setting = ("fast" if args.fast else "float32") + (", fused" if args.field_kernel == "triton" else "")
    setting += ", fused INR" if args.inr_kernel == "triton" else ""
    setting += f", {args.format}" + (f", {args.in_flight} in flight" if args.in_flight > 1 else "")
    result = {"device": str(device), "preset": args.preset, "size": args.size, "setting": setting,
              "summary": summary, "frames": rows}  # fmt: skip
    print("| device | size | setting | render ms | encode ms | round trip ms | frames/s | throughput fps |")
    print("|---|---|---|---|---|---|---|---|")
    s = summary
    print(f"| {device} | {args.size} | {setting} | {s['render_ms_median']} | {s['encode_ms_median']} "
          f"| {s['round_trip_ms_median']} | {s['frames_per_second']} | {s['throughput_fps']} |")  # fmt: skip
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
