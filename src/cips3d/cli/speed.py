"""The speed options of the rendering commands (--fast, --precision, --field-precision, the kernels,
--compile, --chunk-rows), the model they render with, and progress counted in rays."""

from __future__ import annotations

import argparse
import importlib.util
import sys

import torch
from tqdm import tqdm

from cips3d.cli.common import build_generator, given, positive_int, refuse_ignored, resolve_device
from cips3d.devices import usable_device
from cips3d.errors import UserError
from cips3d.fast import bf16_fast, compile_generator
from cips3d.models.generator3d import Generator3D


def add_precision_argument(group) -> None:
    """--fast, --precision, --field-precision, --field-kernel, --inr-kernel and --compile: the opt-in
    speed options of rendering commands (`speed_options` gives them to a RenderConfig)."""
    group.add_argument(
        "--fast",
        action="store_true",
        help="the fastest setting of this device, for the options below not given: on a "
        "CUDA GPU bf16 INR, TF32 field and both Triton kernels (512 px at 65 frames/s on an H100, images "
        "within 5e-3 of float32); on a CPU with bfloat16 units bf16 INR; elsewhere nothing changes",
    )
    group.add_argument(
        "--precision",
        choices=("float32", "tf32", "bf16"),
        default=None,
        help="INR arithmetic (default float32): bf16 is ~1%% off and much faster on CPUs/GPUs with "
        "bfloat16 units; tf32 uses a CUDA GPU's TF32 tensor cores",
    )
    group.add_argument(
        "--field-precision",
        choices=("float32", "tf32"),
        default=None,
        help="NeRF field arithmetic (default float32): tf32 uses a CUDA GPU's TF32 tensor cores",
    )
    group.add_argument(
        "--field-kernel",
        choices=("torch", "triton"),
        default=None,
        help="NeRF field evaluation (default torch): triton runs it as one fused kernel per chunk (CUDA "
        "GPUs, needs the triton package that PyTorch's CUDA builds bring)",
    )
    group.add_argument(
        "--inr-kernel",
        choices=("torch", "triton"),
        default=None,
        help="INR layers (default torch): triton runs each as one product with its activation and "
        "residual fused (CUDA GPUs, needs the triton package)",
    )
    group.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the NeRF field and the INR (the first render compiles for ~30 s)",
    )


def warn_if_slow_precision(device: torch.device, precision: str, field_precision: str = "float32") -> None:
    """One line on stderr when bf16 was asked for on hardware that runs it slowly, or TF32 where there
    are no TF32 units (it then changes nothing)."""
    if precision == "bf16" and not bf16_fast(device):
        print("cips3d: warning: this device has no bfloat16 matrix units; --precision bf16 will be much "
              "slower than float32 here.", file=sys.stderr)  # fmt: skip
    if "tf32" in (precision, field_precision) and device.type != "cuda":
        print("cips3d: note: tf32 needs a CUDA GPU; on this device it computes in float32.", file=sys.stderr)


def rendering_generator(args: argparse.Namespace) -> tuple[torch.device, Generator3D]:
    """The device and the model of a rendering command (sample, multiview, video, view, invert): its
    precision warnings, the kernel checks (of the options as --fast resolves them), the --fast note, then
    the model, compiled with --compile."""
    device = resolve_device(args.device)
    options = speed_options(args)
    warn_if_slow_precision(device, options["precision"], options["field_precision"])
    check_kernels(device, options["field_kernel"], options["inr_kernel"])
    note_fast_setting(args, device)
    G = build_generator(args, device)
    if args.compile:
        compile_generator(G)  # compiled on the first render, which then shows no progress for a while
        print("cips3d: note: --compile compiles the field and decoder at the first render (about half a "
              "minute on a CPU, once per size).", file=sys.stderr)  # fmt: skip
    return device, G


SPEED_DEFAULTS = {
    "precision": "float32", "field_precision": "float32", "field_kernel": "torch", "inr_kernel": "torch"
}  # fmt: skip
"""The RenderConfig fields of `add_precision_argument`'s options, at their defaults."""


def speed_options(args: argparse.Namespace) -> dict[str, str]:
    """The RenderConfig fields of `add_precision_argument`'s options: those given on the command line,
    then (with --fast) the fastest setting of the device (`fastest_setting`), then the defaults."""
    given = {name: getattr(args, name) for name in SPEED_DEFAULTS if getattr(args, name) is not None}
    # usable_device, not resolve_device: the matmul route's self-test runs once, when the model is made
    fastest = fastest_setting(usable_device(args.device)) if getattr(args, "fast", False) else {}
    return SPEED_DEFAULTS | fastest | given


def note_fast_setting(args: argparse.Namespace, device: torch.device) -> None:
    """With --fast, one line on stderr naming what it chose here (it was silent: a user could only tell
    by comparing images), or that it changes nothing."""
    if not getattr(args, "fast", False):
        return
    fastest = fastest_setting(device)
    applied = [f"--{name.replace('_', '-')} {value}" for name, value in fastest.items()
               if getattr(args, name) is None and value != SPEED_DEFAULTS[name]]  # fmt: skip
    if not fastest:
        note = (f"--fast changes nothing on {device}: it knows faster settings for CUDA GPUs and for CPUs "
                "with bfloat16 matrix units")  # fmt: skip
    elif not applied:
        note = "--fast changes nothing: the speed options given set everything it would"
    else:
        note = f"--fast renders with {', '.join(applied)}"
        if fastest.get("field_kernel") == "torch":  # CUDA without the triton package
            note += " (not the Triton kernels: the triton package is not installed)"
    print(f"cips3d: note: {note}.", file=sys.stderr)


def fastest_setting(device: torch.device) -> dict[str, str]:
    """What --fast asks for on `device`: on CUDA bf16 INR, TF32 field and the Triton kernels (where the
    triton package is installed); on a CPU with bfloat16 matrix units bf16 INR; else nothing."""
    if device.type == "cuda":
        kernels = "triton" if importlib.util.find_spec("triton") else "torch"
        return dict(precision="bf16", field_precision="tf32", field_kernel=kernels, inr_kernel=kernels)
    return {"precision": "bf16"} if bf16_fast(device) else {}


def check_kernels(device: torch.device, field_kernel: str, inr_kernel: str) -> None:
    """--field-kernel / --inr-kernel triton are CUDA kernels: refuse them up front on other devices."""
    for option, kernel in (("--field-kernel", field_kernel), ("--inr-kernel", inr_kernel)):
        if kernel == "triton" and device.type != "cuda":
            raise UserError(f"{option} triton needs a CUDA GPU; the device here is {device}.")


def refuse_speed_options(args: argparse.Namespace, what: str) -> None:
    """`add_precision_argument`'s options given for a model that renders without them (`what` it is)."""
    changed = {"--fast": args.fast, "--compile": args.compile}
    for name in SPEED_DEFAULTS:  # given at all, at the default too: it renders without them
        changed[f"--{name.replace('_', '-')}"] = given(args, name)
    refuse_ignored(changed, f"for {what}, which renders in float32 without such options")


def chunk_rows(text: str) -> int | str:
    """argparse type of --chunk-rows: 'auto' (any case) or an integer >= 1."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError as err:  # "'AUTO' is not an integer" left out the word it takes
        raise argparse.ArgumentTypeError(f"{err}; give a number of rows or auto") from None


class RayProgress:
    """`on_rays` for a tqdm bar counted in whole units of `rays_per_unit` rays (images, views).

    The bar is set from the exact count of rays, not moved by fractions: a float sum of fractions ended
    a 200 px image at 0.99999 (a bar short of full) or past 1 (a negative time left).
    """

    BAR_FORMAT = "{l_bar}{bar}| {n:.4g}/{total} [{elapsed}<{remaining}]"
    """Counts as 3 and 2.333, not 3.0 and 2.3333333333333335."""

    def __init__(self, bar: tqdm, rays_per_unit: int) -> None:
        self.bar, self.rays_per_unit, self.rays = bar, rays_per_unit, 0

    def __call__(self, rays: int) -> None:
        self.rays += rays
        # exact at every whole unit; rounded between them (the bar showed 2.3333333333333335/5)
        self.bar.n = round(self.rays / self.rays_per_unit, 2)
        self.bar.update(0)  # redrawn at tqdm's own pace, not once per chunk; close() shows the end


def add_chunk_rows_argument(group) -> None:
    group.add_argument(
        "--chunk-rows",
        type=chunk_rows,
        default="auto",
        help="rows per render chunk, or auto (default: 4096 on a CPU, up to 65536 on a GPU)",
    )
