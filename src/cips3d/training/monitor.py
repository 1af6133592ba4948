"""Watching a run: a progress bar with steps/s, images seen and losses; TensorBoard scalars (peak memory
included) and images."""

from __future__ import annotations

import resource
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from cips3d.errors import UserError
from cips3d.io.files import make_folder

BAR_SECONDS = 0.1  # tqdm's own refresh on a terminal
LOG_BAR_SECONDS = 30.0  # into a file (a cluster job's log): one update every 30 s, not ten a second


def check_writable(folder: Path, what: str) -> None:
    """Make `folder` and a `UserError` unless a file can be written in it: TensorBoard's writer fails in
    a background thread (half a traceback, then a bytes path) where a folder is not writable."""
    make_folder(folder)
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise UserError(f"cannot write {what} in {folder} ({err.strerror or err}).") from None


def peak_memory_gb(device: torch.device) -> float:
    """The most memory this run has held so far: the CUDA allocator's peak on a GPU, the process's peak
    resident size on a CPU (what decides whether a larger batch or size fits the machine)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1e9
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # Linux: kilobytes


class Monitor:
    """Progress bar plus TensorBoard event files under `log_dir` (tensorboard is imported lazily)."""

    def __init__(
        self,
        log_dir: Path,
        total_steps: int | None,
        initial_step: int,
        enabled: bool = True,
        device: torch.device | None = None,
    ) -> None:
        from torch.utils.tensorboard import SummaryWriter  # noqa: PLC0415 (slow import, only when training)

        check_writable(log_dir, "the TensorBoard logs")
        self.writer = SummaryWriter(log_dir=str(log_dir))
        self.bar = tqdm(
            total=total_steps, initial=initial_step, unit="step", disable=not enabled, dynamic_ncols=True,
            mininterval=BAR_SECONDS if sys.stderr.isatty() else LOG_BAR_SECONDS,
        )  # fmt: skip
        self._shown = False
        self.device = device

    def step(
        self, global_step: int, images_seen: int, stage: str, stats: dict[str, float], log: bool
    ) -> None:
        self.bar.update(1)
        if log:
            for name, value in stats.items():
                self.writer.add_scalar(f"train/{name}", value, global_step)
            self.writer.add_scalar("train/images_seen", images_seen, global_step)
            if self.device is not None:
                self.writer.add_scalar("train/peak_memory_gb", peak_memory_gb(self.device), global_step)
        if log or not self._shown:  # the first step's losses too: a short run showed none before step 10
            keys = ("d_loss", "g_loss", "r1")
            shown = {k: f"{stats[k]:.3f}" for k in keys if k in stats}
            self.bar.set_postfix(stage=stage, images=_count(images_seen), **shown)
            self._shown = True

    def images(self, global_step: int, grids: dict[str, np.ndarray]) -> None:
        for name, grid in grids.items():
            self.writer.add_image(f"preview/{name}", grid, global_step, dataformats="HWC")

    def scalar(self, name: str, value: float, global_step: int) -> None:
        self.writer.add_scalar(name, value, global_step)

    def message(self, text: str) -> None:
        self.bar.write(text)

    def close(self) -> None:
        self.bar.close()
        self.writer.close()


def _count(images: int) -> str:
    """Images seen, as people say them: 840, 12.3k, 4.50M ("kimg=0.0" stayed zero through a short run)."""
    if images < 1000:
        return str(images)
    return f"{images / 1000:.1f}k" if images < 1_000_000 else f"{images / 1_000_000:.2f}M"


class SilentMonitor:
    """What the processes other than rank 0 of a data-parallel run watch with: nothing is shown or written."""

    def step(self, *args, **kwargs) -> None:
        pass

    def images(self, *args, **kwargs) -> None:
        pass

    def scalar(self, *args, **kwargs) -> None:
        pass

    def message(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass
