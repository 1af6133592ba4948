"""Speed and memory of cips3d against the arithmetic floor and the official code (`make bench`).

Times, in one process and interleaved (every repeat visits every case, so drift hits all alike):
- inference of the `ffhq` preset with the official rendering settings (hierarchical, 12 + 12 samples,
  cameras from the FFHQ prior) at 64, 128 and 256 px, batch 1 and 4, for our default path and for a
  reference path of ours that follows the official algorithm as written (one image at a time, the
  official 256^2-ray chunks, float32, no fast paths), and with the bf16 INR (`--precision bf16`);
- one training iteration (D step with R1 and G step, aux branch on, ffhq G and D) at 32, 64 and 128 px,
  batch 4, with full gradients and with partial gradients (a quarter of the rays).
Prints a table and writes JSON: seconds (median and best of the repeats), and from the best run
images/s, GFLOP/s, ratio to the float32 floor, speed-up over the official timings in
`shared/fixtures/official/perf_anchor.json` (their best run, `min_s`) and over our reference path;
peak memory. With `--device cuda` it adds the GPU cases of `gpu_cases.py` (512 px interactive frames,
batched 256 px inference, the card's measured matrix throughput).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path

import torch

import gpu_cases  # beside this script, whose folder is on sys.path when it runs
from cips3d import Generator3D, PoseConfig, RenderConfig, generator_preset
from cips3d.fast import bf16_fast, compile_generator, configure_fast_paths, ieee_convolutions, tf32_matmuls
from cips3d.models.discriminator import Discriminator, discriminator_preset
from cips3d.reference import reference_images
from cips3d.training.steps import StepRandom, StepSettings, d_step, g_step

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CIPS3D_SHARED", REPO.parent / "shared"))  # as the tests find it
ANCHOR = SHARED / "fixtures" / "official" / "perf_anchor.json"
# Floors measured on this machine kind (issue 7): seconds per image with all 9 INR blocks.
FLOOR_F32 = {64: 0.111, 128: 0.444, 256: 1.78}
FLOOR_BF16 = {64: 0.069, 128: 0.275, 256: 1.10}
FLOOR_TRAIN = {32: 0.33}  # a training step at 32 px, batch 4, float32
INR_FLOP_PER_PIXEL = 8.96e6  # all 9 blocks (issue 7)
NERF_FLOP_PER_PIXEL = 1.30e6  # the NeRF field's matrix work for 24 samples (issue 7)
FLOP_PER_PIXEL = INR_FLOP_PER_PIXEL + NERF_FLOP_PER_PIXEL


def _release_memory() -> None:
    """Give freed heap pages back to the OS, so that each case's peak starts from the same level."""
    import ctypes  # noqa: PLC0415
    import gc  # noqa: PLC0415

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc: peaks of later cases may read low
        pass


class PeakMemory:
    """Peak resident memory above the level at start, sampled every 2 ms in a thread (CPU), or the
    CUDA allocator's peak."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def __enter__(self) -> PeakMemory:
        _release_memory()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
            return self
        self.base = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, self._rss())

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            self.peak = torch.cuda.max_memory_allocated(self.device)
            return
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    @property
    def megabytes(self) -> float:
        return (self.peak - self.base) / 2**20


@dataclasses.dataclass
class Case:
    name: str
    kind: str  # "infer" or "train"
    img_size: int
    batch: int
    path: str  # "ours", "ours-bf16", "reference", "full", "partial"
    run: Callable[[], object]
    times: list[float] = dataclasses.field(default_factory=list)
    peak_mb: float = 0.0
    runs_per_repeat: int = 1  # timed calls in each repeat (each one a sample of `times`)


def inference_cases(G: Generator3D, sizes, batches, device, bf16: bool) -> list[Case]:
    pose = PoseConfig()
    cases = []
    for size in sizes:
        for batch in batches:
            z = G.sample_latents(batch, torch.Generator().manual_seed(0))
            fast = RenderConfig(img_size=size)
            reference = RenderConfig(img_size=size)

            def ours(z=z, render=fast):
                with torch.no_grad():
                    return G(*z, pose=pose, render=render, generator=torch.Generator().manual_seed(1))

            def official_way(z=z, render=reference, batch=batch):
                generator = torch.Generator().manual_seed(1)
                with torch.no_grad():
                    camera = G.sample_cameras(pose, batch, generator)
                    return reference_images(G, G.mapping(*z), camera, render, generator=generator)

            cases.append(Case(f"infer {size}px b{batch}", "infer", size, batch, "ours", ours))
            if bf16:

                def ours_bf16(z=z, render=fast):
                    bf16_render = dataclasses.replace(render, precision="bf16")
                    with torch.no_grad():
                        return G(
                            *z, pose=pose, render=bf16_render, generator=torch.Generator().manual_seed(1)
                        )

                cases.append(Case(f"infer {size}px b{batch}", "infer", size, batch, "ours-bf16", ours_bf16))
            cases.append(Case(f"infer {size}px b{batch}", "infer", size, batch, "reference", official_way))
    return cases


def training_cases(G: Generator3D, D: Discriminator, sizes, device, tf32: bool = False) -> list[Case]:
    """Full training iterations (D step with R1, then G step) at batch 4, full and partial gradients;
    with `tf32` (CUDA), also full iterations with TF32 matrix products (`cips3d train --tf32`) and with
    IEEE float32 convolutions (PyTorch's cuDNN default is TF32: what would exact convolutions cost?)."""
    optimizers = {
        "G": torch.optim.Adam(G.parameters(), lr=1e-4, betas=(0.0, 0.999)),
        "D": torch.optim.Adam(D.parameters(), lr=1e-4, betas=(0.0, 0.999)),
    }
    random = StepRandom(g=torch.Generator().manual_seed(2), d=torch.Generator().manual_seed(3))
    cases = []
    for size in sizes:
        reals = torch.rand(4, 3, size, size, generator=torch.Generator().manual_seed(4), device="cpu") * 2 - 1
        reals = reals.to(device)
        for mode, grad_rays in (("full", None), ("partial", size * size // 4)):
            settings = StepSettings(
                render=RenderConfig(img_size=size, nerf_noise=1.0, grad_rays=grad_rays), pose=PoseConfig(),
                batch_size=4, aux=True, alpha=1.0, augment=None, r1_gamma=10.0, r1_scale=1.0,
                grad_clip=10.0, nerf_grad=True,
            )  # fmt: skip

            def step(settings=settings, reals=reals):
                d_step(G, D, optimizers["D"], reals, settings, random)
                g_step(G, D, optimizers["G"], settings, random)

            cases.append(Case(f"train {size}px b4", "train", size, 4, mode, step))
            if not (tf32 and mode == "full"):
                continue
            scopes = {"full-tf32": lambda: tf32_matmuls(True, device), "full-ieee-conv": ieee_convolutions}
            for path, scope in scopes.items():

                def scoped_step(step=step, scope=scope):
                    with scope():
                        step()

                cases.append(Case(f"train {size}px b4", "train", size, 4, path, scoped_step))
    # The official anchor's best G step is the least of 10 timed runs (`n_timed`); 4 per repeat (12 with
    # the default 3 repeats) compares minima over about as many samples, where 3 would favour the anchor.
    cases.append(Case("train-G 32px b4", "train", 32, 4, "G only", _g_only_step(G), runs_per_repeat=4))
    return cases


def _g_only_step(G: Generator3D) -> Callable[[], None]:
    """What the official anchor timed: G forward at 32 px with nerf noise 1 and the aux image, a stand-in
    loss softplus(-mean image), backward (no discriminator)."""
    z = G.sample_latents(4, torch.Generator().manual_seed(6))
    render = RenderConfig(img_size=32, nerf_noise=1.0)

    def step() -> None:
        out = G(*z, pose=PoseConfig(), render=render, generator=torch.Generator().manual_seed(7))
        imgs = torch.cat([out.img, out.aux_img])
        torch.nn.functional.softplus(-imgs.mean((1, 2, 3))).mean().backward()
        G.zero_grad(set_to_none=True)

    return step


def matmul_gflops(routes: dict) -> float | None:
    """This CPU's float32 product speed, from the start-up self-test of the chosen route (a 2048 x 512
    x 512 product, the INR's shape): the rate the `x_machine_floor` column divides by."""
    tests = routes.get("self_test")
    if not tests:
        return None
    route = "bf16" if routes["matmul_route"] == "oneDNN" else "none"
    return 2 * 2048 * 512 * 512 / tests[route]["seconds"] / 1e9


def bf16_matmul_gflops(repeats: int = 7) -> float:
    """This CPU's bfloat16 product speed on the INR's shape (2048 x 512 x 512, best of `repeats`): the
    rate of the bf16 rows' INR work in `x_machine_floor` (AMX runs it about 8x float32's speed)."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(2048, 512, generator=generator).bfloat16()
    b = torch.randn(512, 512, generator=generator).bfloat16()
    best = gpu_cases.best_product_seconds(a, b, torch.device("cpu"), repeats)
    return 2 * 2048 * 512 * 512 / best / 1e9


def measure(cases: list[Case], repeats: int, device: torch.device, log: Callable[[str], None]) -> None:
    for case in cases:  # warm-up (allocator, thread pools, oneDNN primitive caches), with memory
        with PeakMemory(device) as memory:
            case.run()
            gpu_cases.sync(device)
        case.peak_mb = memory.megabytes
        log(f"warmed {case.name} [{case.path}]")
    for r in range(repeats):
        for case in cases:
            for _ in range(case.runs_per_repeat):
                gpu_cases.sync(device)
                start = time.perf_counter()
                case.run()
                gpu_cases.sync(device)
                case.times.append(time.perf_counter() - start)
        log(f"repeat {r + 1}/{repeats} done")


def _anchor() -> dict:
    if not ANCHOR.is_file():
        return {}
    results = json.loads(ANCHOR.read_text())["results"]
    return {(r["mode"], r["img_size"], r["batch"]): r["min_s"] for r in results}


def summarise(
    cases: list[Case], cpu: bool = True, matmul_gflops: float | None = None, bf16_gflops: float | None = None
) -> list[dict]:
    """One row per case; the floors and the official timings are CPU figures, so `cpu=False` (a GPU
    run) leaves those columns empty. With `matmul_gflops` (this machine's float32 product speed),
    inference rows get `x_machine_floor`: seconds over the time of their matrix work at that speed
    (the bf16 rows' INR work at `bf16_gflops`, where it was measured)."""
    anchor = _anchor() if cpu else {}
    rows = []
    for c in cases:
        # Derived figures use the best run: on a shared machine interference only ever adds time.
        seconds = min(c.times)
        row = {
            "case": c.name, "path": c.path, "seconds": round(statistics.median(c.times), 4),
            "best_s": round(seconds, 4), "all_s": [round(t, 4) for t in c.times],
            "images_per_s": round(c.batch / seconds, 3), "peak_mb": round(c.peak_mb, 1),
        }  # fmt: skip
        if c.kind == "infer":
            achieved = c.batch * c.img_size**2 * FLOP_PER_PIXEL / seconds / 1e9
            row["gflops"] = round(achieved, 1)
            bf16_row = c.path.startswith("ours-bf16")  # ours-bf16 and ours-bf16-compiled
            floor = (FLOOR_BF16 if bf16_row else FLOOR_F32).get(c.img_size) if cpu else None
            row["x_floor"] = round(seconds / (floor * c.batch), 2) if floor else None
            if matmul_gflops and cpu:
                inr_rate = bf16_gflops if bf16_row and bf16_gflops else matmul_gflops
                per_pixel = INR_FLOP_PER_PIXEL / inr_rate + NERF_FLOP_PER_PIXEL / matmul_gflops
                row["x_machine_floor"] = round(seconds / (c.batch * c.img_size**2 * per_pixel / 1e9), 2)
        elif cpu and c.kind == "train" and c.img_size in FLOOR_TRAIN and c.path == "G only":
            row["x_floor"] = round(seconds / FLOOR_TRAIN[c.img_size], 2)
        comparable = c.kind == "infer" or c.path == "G only"  # the anchor timed G alone in training
        official = anchor.get((c.kind, c.img_size, c.batch)) if comparable else None
        row["speedup_vs_official"] = round(official / seconds, 2) if official else None
        rows.append(row)
    by_case = {(r["case"], r["path"]): r for r in rows}
    for r in rows:  # same-run speed-up over our reference path
        ref = by_case.get((r["case"], "reference"))
        r["speedup_vs_reference"] = round(ref["best_s"] / r["best_s"], 2) if ref else None
    return rows


def table(rows: list[dict]) -> str:
    cols = ["case", "path", "seconds", "best_s", "images_per_s", "gflops", "x_floor", "x_machine_floor",
            "speedup_vs_official", "speedup_vs_reference", "peak_mb"]  # fmt: skip
    cols += [c for c in ("tflops", "fraction_of_peak") if any(c in r for r in rows)]  # GPU runs
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join("" if r.get(c) is None else str(r.get(c)) for c in cols) + " |")
    return "\n".join(lines)


def machine(device: torch.device) -> dict:
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    try:
        model = next(line for line in open("/proc/cpuinfo") if line.startswith("model name"))
        info["cpu"] = model.split(":", 1)[1].strip()
    except (OSError, StopIteration):
        info["cpu"] = platform.processor()
    info["cores"] = os.cpu_count()
    info["cpu_capability"] = torch.backends.cpu.get_cpu_capability()  # the ATen kernels in use
    info["matrix_units"] = cpu_matrix_units()
    return info


MATRIX_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
"""The CPU flags that decide this table's products: the same 2-core VM kind has been an AVX2 EPYC and an
AVX-512 Xeon with AMX, whose float32 and bfloat16 speeds differ by 2x and 20x."""


def cpu_matrix_units() -> list[str]:
    """Which of `MATRIX_FLAGS` this CPU reports (empty where /proc/cpuinfo cannot be read)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            flags = next(line for line in cpuinfo if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return []
    return [flag for flag in MATRIX_FLAGS if flag in flags]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="64 px only, 1 repeat (a smoke run)")
    parser.add_argument("--sizes", help="inference sizes to time, comma-separated (default 64,128,256)")
    parser.add_argument("--no-train", action="store_true")
    parser.add_argument("--train-sizes", help="training sizes to time, comma-separated (default 32,64,128)")
    parser.add_argument("--gpu-only", action="store_true", help="with --device cuda: only the GPU cases")
    parser.add_argument("--compile", action="store_true", help="also time a torch.compile'd generator")
    parser.add_argument("--gpu-cases", action="store_true",
                        help="run the GPU cases (interactive frames, batched inference) on this device too; "
                        "they always run on CUDA")  # fmt: skip
    parser.add_argument("--gpu-sizes", default="512,256", help="frame size and batched size of the GPU cases")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results.json"))
    args = parser.parse_args()
    device = torch.device(args.device)
    routes = configure_fast_paths(device)
    G = Generator3D(generator_preset("ffhq")).to(device).eval()
    sizes = (64,) if args.quick else (64, 128, 256)
    if args.sizes:
        sizes = tuple(int(v) for v in args.sizes.split(","))
    bf16 = bf16_fast(device)
    cases = [] if args.gpu_only else inference_cases(G, sizes, (1, 4), device, bf16=bf16)
    if args.compile:
        compiled = copy.deepcopy(G)
        compile_generator(compiled)
        for case in inference_cases(compiled, sizes, (1, 4), device, bf16=bf16):
            if case.path != "reference":  # ours-compiled, and ours-bf16-compiled where bf16 is fast
                cases.append(dataclasses.replace(case, path=f"{case.path}-compiled"))
    gpu = device.type == "cuda"
    if not args.no_train:
        D = Discriminator(discriminator_preset("ffhq")).to(device)
        train_sizes = (32,) if args.quick else (32, 64, 128)
        if args.train_sizes:
            train_sizes = tuple(int(v) for v in args.train_sizes.split(","))
        G_train = Generator3D(generator_preset("ffhq")).to(device)
        cases += training_cases(G_train, D, train_sizes, device, tf32=gpu)
    if gpu or args.gpu_cases:
        frame, batched = (int(v) for v in args.gpu_sizes.split(","))
        kernel_errors = {
            name: gpu_cases.fused_kernel_error(G, frame, options) if gpu else {"unavailable": "no CUDA GPU"}
            for name, options in gpu_cases.KERNEL_SETTINGS.items()
        }
        kernels = tuple(name for name, error in kernel_errors.items() if "unavailable" not in error)
        paths = gpu_cases.PLAIN_FRAME_PATHS + tuple(f"{name}-graph" for name in kernels)
        cases += gpu_cases.frame_cases(Case, G, size=frame, paths=paths)
        cases += gpu_cases.batched_cases(Case, G, size=batched, kernels=kernels)
        if args.compile:  # compiled kernels inside the captured graph (inductor fuses the elementwise work)
            paths = ("fast", "fast-graph")
            cases += gpu_cases.frame_cases(Case, compiled, size=frame, paths=paths, label="-compiled")
    measure(cases, 1 if args.quick else args.repeats, device, lambda m: print(m, flush=True))
    if bf16 and not gpu:
        routes["bf16_gflops"] = round(bf16_matmul_gflops(), 1)
    rows = summarise(
        cases, cpu=not gpu, matmul_gflops=matmul_gflops(routes), bf16_gflops=routes.get("bf16_gflops")
    )
    if bf16:
        errors = gpu_cases.setting_errors(G, {"precision": "bf16"}, size=64)
    else:  # bf16 runs at ~1 GFLOP/s here: its error is still reported, from a small image
        errors = {"note": "no bfloat16 matrix units: bf16 not timed"}
        errors |= gpu_cases.setting_errors(G, {"precision": "bf16"}, size=16)
    result = {
        "machine": machine(device), "fast_paths": routes, "bf16": errors,
        "command": " ".join(os.sys.argv), "rows": rows,
    }  # fmt: skip
    if gpu or args.gpu_cases:
        peaks = gpu_cases.matmul_peaks(device, n=8192 if gpu else 1024)
        gpu_cases.add_gpu_columns(rows, peaks)
        fast_error = gpu_cases.setting_errors(G, gpu_cases.FAST, size=frame)
        result["gpu"] = {"matmul_tflops": peaks, "fast_setting_error": fast_error} | {
            f"{name.replace('-', '_')}_setting_error": error for name, error in kernel_errors.items()
        }  # fused_setting_error, fused_all_setting_error
        print(f"GPU matrix throughput (TFLOP/s): {peaks}; fast setting vs float32: {result['gpu']}")
    print(table(rows))
    print(f"bf16 INR: {errors}")
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
