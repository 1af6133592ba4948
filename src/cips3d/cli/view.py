"""`cips3d view`: a live viewer in the browser (3-D models, and 2D CIPS ones), rendered by this machine."""

from __future__ import annotations

import argparse
import errno
import os
import shlex
import signal
import sys
import threading
from collections.abc import Callable
from http.server import ThreadingHTTPServer

from cips3d import constants as K
from cips3d.cli.common import (
    add_model_arguments,
    checkpoint_generator2d,
    fitted_styles,
    given,
    model_name,
    note_other_model,
    positive_int,
    refuse_ignored,
    resolve_device,
)
from cips3d.cli.entry import EXIT_INTERRUPTED
from cips3d.cli.speed import (
    SPEED_DEFAULTS,
    add_precision_argument,
    refuse_speed_options,
    rendering_generator,
    speed_options,
)
from cips3d.config import MAX_IMG_SIZE, RenderConfig
from cips3d.errors import UserError
from cips3d.inference.inversion2d import fitted_w_model, load_fitted_w
from cips3d.inference.web_viewer import MAX_SEED, make_server
from cips3d.inference.web_viewer2d import make_server2d

DEFAULT_SIZE = 128

EXAMPLES = """examples:
  cips3d view --preset tiny --size 64                        # then open http://127.0.0.1:8000
  cips3d view --checkpoint runs/faces --size 128 --seed 42
  cips3d view --checkpoint G_ema.pth --preset ffhq --size 512 --device cuda --precision bf16 \\
      --field-precision tf32                                  # CUDA graph replay, the fast setting
  cips3d view --checkpoint runs/faces --styles outputs/invert/styles.safetensors   # a fitted photo
  cips3d view --checkpoint runs/cips2d --size 128            # a 2D CIPS model: drag to move, scroll to zoom
  cips3d view --checkpoint runs/cips2d --styles out/invert2d/w.safetensors   # a photo fitted by invert2d

Drag the image to turn the object; the seed box, the arrows, psi and the panel (image, aux NeRF
image, depth, normals) change what is shown. Frames render on demand (deterministic sampling); Ctrl-C stops.
A 2D CIPS model (a train2d run, a converted or official checkpoint) is shown as a window you drag
over its image and zoom into with the wheel: every pixel is rendered from its own coordinates, so
zooming in renders new detail and moving past the frame extrapolates (a panorama goes round).
On another machine, use --host 0.0.0.0 (anyone who can reach the port can then view the model).
"""


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "view",
        help="a live viewer in the browser (3-D models: turn them; 2D CIPS models: move and zoom)",
        description="Serve a web page that renders frames of the model for the camera (3-D) or the "
        "window (2D) you drag to.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_arguments(p)
    g = p.add_argument_group("what to show")
    g.add_argument("--seed", type=int, default=0, help="the first seed shown (default 0)")
    g.add_argument(
        "--styles",
        help="show these fitted styles instead of seeds (`cips3d invert`, or w.safetensors of `invert2d`)",
    )
    g.add_argument(
        "--size",
        type=positive_int,
        help=f"frame side in pixels (default {DEFAULT_SIZE}; a 2D model: its training height)",
    )
    add_precision_argument(g)
    o = p.add_argument_group("where")
    o.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on, IPv4 or IPv6 (default 127.0.0.1; every interface: 0.0.0.0 or ::)",
    )
    o.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    o.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.set_defaults(run=run, max_seed=MAX_SEED)  # checked with every --seed, in its wording


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port must be in [0, 65535], got {args.port}.")
    if args.styles:
        refuse_ignored({"--seed": given(args, "seed")}, "with --styles (the view shows the fitted photo)")
    if args.size is not None and args.size > MAX_IMG_SIZE:
        raise UserError(f"--size of a live view is at most {MAX_IMG_SIZE} px, got {args.size}.")
    G2 = checkpoint_generator2d(args)
    if G2 is not None:
        refuse_speed_options(args, "a 2D CIPS model")
        device = resolve_device(args.device)
        G2 = G2.to(device)
        fitted = load_fitted_w(args.styles, G2) if args.styles else None
        if fitted is not None:
            note_other_model(args.styles, fitted_w_model(args.styles), model_name(args))
        size = args.size or G2.config.size
        command = None if fitted is not None else shlex.join(["cips3d", "sample2d", *_checkpoint(args)])
        server = _listen(
            args, lambda: make_server2d(G2, size, args.host, args.port, args.seed, fitted, command)
        )
        what = f"a 2D CIPS model, {G2.frame_width(size)}x{size} px"
    else:
        args.size = args.size or DEFAULT_SIZE
        render = RenderConfig(img_size=args.size, deterministic=True, **speed_options(args))
        device, G = rendering_generator(args)
        fitted = fitted_styles(args, G) if args.styles else None
        styles = fitted.styles if fitted else None
        camera = (fitted.yaw, fitted.pitch) if fitted else (K.YAW_MEAN, K.PITCH_MEAN)  # the photo's own view
        command = None if fitted else sample_command(args)
        server = _listen(
            args, lambda: make_server(G, render, args.host, args.port, styles, args.seed, camera, command)
        )
        what = f"{args.size}x{args.size} px"
    previous = None
    if threading.current_thread() is threading.main_thread():  # SIGTERM stops it as Ctrl-C does
        previous = signal.signal(signal.SIGTERM, _interrupt)
    everywhere = server.server_address[0] in ("0.0.0.0", "::")
    reach = " (other machines: this machine's address)" if everywhere else ""
    print(f"cips3d view: open {server.url()}{reach} ({what} on {device}); Ctrl-C stops.", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("cips3d view: stopping after the frame being rendered (Ctrl-C again: at once).", flush=True)
    finally:
        close_server(server)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    print("cips3d view: stopped.")
    return 0


def close_server(server: ThreadingHTTPServer) -> None:
    """Close the server, which waits for the frame being rendered. A second Ctrl-C (or SIGTERM) while it
    waits leaves at once through os._exit: Python's own exit with a request thread still inside
    PyTorch aborts the process (SIGABRT, "terminate called without an active exception")."""
    try:
        server.server_close()
    except KeyboardInterrupt:
        print("cips3d view: stopped without waiting for the frame being rendered.", flush=True)
        sys.stderr.flush()
        os._exit(EXIT_INTERRUPTED)


def sample_command(args: argparse.Namespace) -> str:
    """`cips3d sample` with this view's model and render settings: the page adds the seed, camera, psi
    and size, so a view found by dragging renders again at any size (exactly, at the view's size)."""
    words = ["cips3d", "sample", *_checkpoint(args)]
    for flag in ("preset", "official_config"):
        if getattr(args, flag) is not None:
            words += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    if args.checkpoint is None and args.init_seed != 0:
        words += ["--init-seed", str(args.init_seed)]
    for name, value in speed_options(args).items():  # as --fast resolved them on this device
        if value != SPEED_DEFAULTS[name]:
            words += [f"--{name.replace('_', '-')}", value]
    return shlex.join([*words, *(["--compile"] if args.compile else [])])


def _checkpoint(args: argparse.Namespace) -> list[str]:
    return ["--checkpoint", str(args.checkpoint)] if args.checkpoint is not None else []


def _listen(args: argparse.Namespace, make: Callable[[], ThreadingHTTPServer]) -> ThreadingHTTPServer:
    try:
        return make()
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            raise UserError(f"port {args.port} is in use; pick another with --port.") from None
        raise UserError(f"cannot listen on {args.host}:{args.port} ({err.strerror or err}).") from None


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt
