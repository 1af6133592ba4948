"""`cips3d convert`: official generator weights (CIPS-3D, or 2D CIPS) -> our checkpoint folder, or back."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from cips3d.cli.common import check_model_folder_target, refuse_ignored, refuse_overwriting_inputs
from cips3d.convert.official_2d import holds_official_cips2d
from cips3d.errors import UserError
from cips3d.io.checkpoint import (
    carries_own_config,
    load_generator,
    official_generator,
    official_state_dict,
    read_torch_file,
    save_generator,
)
from cips3d.io.checkpoint2d import (
    generator2d_from_official,
    is_generator2d,
    load_generator2d,
    load_models2d,
    official_checkpoint2d,
    official_generator_state,
    save_generator2d,
)
from cips3d.io.files import atomic_write
from cips3d.models.generator2d import Generator2D

EXAMPLES = """examples:
  cips3d convert G_ema.pth ffhq-cips3d --preset ffhq
  cips3d convert generator.pth small --official-config small_config.json
  cips3d convert ffhq-cips3d G_ema_official.pth --to-official
  cips3d convert churches.pt churches-cips2d          # an official 2D CIPS checkpoint (its g_ema)
  cips3d convert churches-cips2d churches_again.pt --to-official
  cips3d convert runs/cips2d cips2d-model                 # a train2d run's G_ema, as a 2D model folder
"""


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "convert",
        help="convert official generator weights (CIPS-3D or 2D CIPS) to our format (or back)",
        description="Convert an official CIPS-3D generator state dict (generator.pth or G_ema.pth) or an "
        "official 2D CIPS checkpoint (CIPSskip: the g_ema of a training checkpoint, its architecture read "
        "from the tensors) into a cips3d checkpoint folder (config.json + model.safetensors), or, with "
        "--to-official, a cips3d checkpoint or run into the official layout. No code is unpickled.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("source", help="official .pth/.pt, or (with --to-official) our checkpoint folder or run")
    p.add_argument("target", help="our checkpoint folder, or (with --to-official) the file to write")
    p.add_argument(
        "--preset", help="CIPS-3D: config preset of the official weights (ffhq for FFHQ/AFHQ/cartoon)"
    )
    p.add_argument(
        "--official-config", help="CIPS-3D: JSON with the official constructor kwargs (instead of --preset)"
    )
    p.add_argument("--to-official", action="store_true", help="write the official layout instead")
    p.add_argument("--force", action="store_true", help="replace a model folder or file at the target")
    p.set_defaults(run=run)


def _to_official(args: argparse.Namespace, target: Path) -> int:
    source = Path(args.source)
    if source.is_file() and not carries_own_config(source):  # it asked for --preset, then called it ignored
        raise UserError(f"{source} is an official file already; --to-official writes our model folders, "
                        "runs and snapshots in the official layout.")  # fmt: skip
    given = {"--preset": bool(args.preset), "--official-config": bool(args.official_config)}
    refuse_ignored(given, "with --to-official (the source carries its own config)")
    if is_generator2d(args.source):
        models = load_models2d(args.source)
        content = official_checkpoint2d(models.G, models.D)
        atomic_write(target, lambda p: torch.save(content, p))
        parts = " and ".join(f"'{k}' ({len(v)} tensors)" for k, v in content.items())
        print(f"wrote the official 2D CIPS {parts} to {target}")
        if models.G.config.embedding_align_corners:
            print(
                "cips3d convert: note: this model reads its coordinate embedding with align_corners=True "
                "(how cips3d trains); the official code reads it with PyTorch's default (False), so its "
                "images of this file differ from ours, and so do those of the file converted back to cips3d.",
                file=sys.stderr,
            )
        return 0
    state = official_state_dict(load_generator(args.source))
    atomic_write(target, lambda p: torch.save(state, p))
    print(f"wrote {len(state)} official tensors to {target}")
    return 0


def _convert_2d(args: argparse.Namespace, content: object, source: Path, target: Path) -> int:
    G = generator2d_from_official(official_generator_state(content, source, "G_ema"))
    return _save_2d(args, G, target)


def _save_2d(args: argparse.Namespace, G: Generator2D, target: Path) -> int:
    if args.preset or args.official_config:
        raise UserError("--preset and --official-config are for CIPS-3D weights; a 2D CIPS model "
                        "brings its own architecture.")  # fmt: skip
    save_generator2d(G, target)
    params = sum(p.numel() for p in G.parameters())
    print(f"wrote {target}/ (a 2D CIPS generator, {params:,} parameters)")
    return 0


def _refuse_replacing(target: Path, force: bool) -> None:
    """A file already at `target` is replaced only when asked: it may be the only copy of other weights."""
    if target.is_file() and not force:
        raise UserError(f"{target} is already a file; give --force to replace it, or another target.")


def run(args: argparse.Namespace) -> int:
    target = Path(args.target)
    if args.to_official:
        if target.is_dir():
            raise UserError(f"{target} is a folder; --to-official writes one file: give its path.")
        refuse_overwriting_inputs(target, args.source)
        if target.suffix not in (".pt", ".pth"):
            raise UserError(f"--to-official writes a PyTorch file: give a .pt or .pth path, not {target}.")
        _refuse_replacing(target, args.force)
        return _to_official(args, target)
    check_model_folder_target(target, args.force, args.source)
    source = Path(args.source)
    if is_generator2d(source):  # a train2d run (its G_ema) or a 2D model folder
        return _save_2d(args, load_generator2d(source), target)
    if not (source.is_file() and source.suffix not in (".safetensors", ".json")):
        G = load_generator(source, preset=args.preset, official_config=args.official_config)
    else:
        content = read_torch_file(source)
        if holds_official_cips2d(content):
            return _convert_2d(args, content, source, target)
        G = official_generator(content, source, args.preset, args.official_config)
    save_generator(G, target)
    params = sum(p.numel() for p in G.parameters())
    print(f"wrote {target}/ ({params:,} parameters)")
    return 0
