"""Scores and sample grids of a `cips3d train2d` run against its untrained start (benchmarks/train2d-lfw.md).

    python benchmarks/train2d_report.py RUN DATA OUTDIR [--images 100]

Writes OUTDIR/result.json (steps, the run's own snapshot scores, and SWD/FID/KID of the untrained and
the trained G_ema with the `cips3d metrics` protocol) and four PNGs: the untrained and trained training
grid (seeds 1-16), the first four styles on a 4x denser grid, and on a grid 1.5x beyond the frame.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from cips3d.io.checkpoint2d import load_generator2d
from cips3d.io.images import make_grid, save_png, to_uint8
from cips3d.metrics.evaluate import evaluate_2d
from cips3d.models.generator2d import Generator2D
from cips3d.training.trainer2d import load_run2d


def save_grid(images: torch.Tensor, path: Path) -> None:
    save_png(make_grid(to_uint8(images.clamp(-1, 1))), path)


@torch.no_grad()
def main() -> None:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("run")
    parser.add_argument("data")
    parser.add_argument("outdir")
    parser.add_argument("--images", type=int, default=100, help="images per side for the scores")
    args = parser.parse_args()
    out = Path(args.outdir)
    out.mkdir(parents=True, exist_ok=True)
    snapshot, config = load_run2d(args.run)
    start = Generator2D(config.generator_config(), torch.Generator().manual_seed(config.seed)).eval()
    end = load_generator2d(args.run)
    scores = {}
    for name, G in (("untrained", start), ("trained", end)):
        result = evaluate_2d(G, args.data, ["swd", "fid", "kid"], args.images)
        scores[name] = result["metrics"]
        save_grid(G(G.sample_latents(16, torch.Generator().manual_seed(1))), out / f"{name}.png")
    w = end.mapping(end.sample_latents(4, torch.Generator().manual_seed(1)))
    save_grid(end.synthesis(w, end.frame_grid(4 * config.generator_config().size).expand(4, -1, -1, -1)),
              out / "trained_4x.png")  # fmt: skip
    wide = end.frame_grid(2 * config.generator_config().size, extent=1.5).expand(4, -1, -1, -1)
    save_grid(end.synthesis(w, wide), out / "trained_2x_extent1.5.png")
    record = {
        "steps": snapshot.state.global_step, "images_seen": snapshot.state.images_seen,
        "history": snapshot.state.history, "scores": scores, "protocol": result["protocol"],
    }  # fmt: skip
    (out / "result.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(scores, indent=1))


if __name__ == "__main__":
    main()
