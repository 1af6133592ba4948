"""`cips3d convert`: an official generator .pth -> our checkpoint folder, or back."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from cips3d.errors import UserError
from cips3d.io.checkpoint import load_generator, official_state_dict, save_generator
from cips3d.io.files import atomic_write

EXAMPLES = """examples:
  cips3d convert G_ema.pth ffhq-cips3d --preset ffhq
  cips3d convert generator.pth small --official-config small_config.json
  cips3d convert ffhq-cips3d G_ema_official.pth --to-official
"""


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "convert",
        help="convert official generator weights to our format (or back)",
        description="Convert an official CIPS-3D generator state dict (generator.pth or G_ema.pth) into "
        "a cips3d checkpoint folder (config.json + model.safetensors), or, with --to-official, a cips3d "
        "checkpoint into an official state dict. No code is unpickled.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("source", help="official .pth, or (with --to-official) our checkpoint folder")
    p.add_argument("target", help="our checkpoint folder, or (with --to-official) the .pth to write")
    p.add_argument("--preset", help="config preset of the official weights (ffhq for FFHQ/AFHQ/cartoon)")
    p.add_argument(
        "--official-config", help="JSON with the official constructor kwargs (instead of --preset)"
    )
    p.add_argument("--to-official", action="store_true", help="write the official layout instead")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    target = Path(args.target)
    if args.to_official:
        G = load_generator(args.source)
        state = official_state_dict(G)
        atomic_write(target, lambda p: torch.save(state, p))
        print(f"wrote {len(state)} official tensors to {target}")
        return 0
    if target.exists() and not target.is_dir():
        raise UserError(f"{target} exists and is not a folder.")
    G = load_generator(args.source, preset=args.preset, official_config=args.official_config)
    save_generator(G, target)
    params = sum(p.numel() for p in G.parameters())
    print(f"wrote {target}/ ({params:,} parameters)")
    return 0
