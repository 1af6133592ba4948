"""Training 2D CIPS on an image folder or zip (spec 8.2), with the 3D trainer's snapshots and data order.

    trainer = Trainer2D(Train2DConfig(generator="cips-tiny", patch=16), "runs/cips2d", "faces/")
    trainer.run(max_steps=1000)          # later: Trainer2D(..., resume=True).run(max_steps=2000)

Each iteration takes a batch of real images at the generator's training size, cuts one scale of
multi-scale patches from it (`steps2d.multiscale_patches`), updates D (with lazy R1) and G on those
patches and the coordinates they come from, and moves G_ema. Snapshots (`training.snapshot`: weights,
optimisers, every random generator's state, the data position) are written atomically every
`snapshot_every` iterations and at the end, with a preview grid of G_ema on the training grid; a resumed
run continues exactly as if it had not stopped.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from cips3d.config_2d import (
    CIPS2D_D_PRESETS,
    Cips2DConfig,
    Cips2DDiscriminatorConfig,
    cips2d_preset,
    is_2d_run_config,
)
from cips3d.data.images import ImageDataset, to_float
from cips3d.data.sampler import InfiniteSampler
from cips3d.errors import ConfigError
from cips3d.io.checkpoint import THREE_D_COMMANDS
from cips3d.io.checkpoint2d import load_models2d
from cips3d.io.images import make_grid, save_png, to_uint8
from cips3d.metrics.evaluate import check_fid_count, evaluate_2d
from cips3d.metrics.inception import InceptionExtractor
from cips3d.metrics.swd import swd
from cips3d.models.discriminator2d import Discriminator2D
from cips3d.models.generator2d import Generator2D
from cips3d.training.distributed import World, rank_seed, torchrun_job, world_change_note
from cips3d.training.ema import ema_update
from cips3d.training.monitor import Monitor, SilentMonitor
from cips3d.training.run_lock import RunFolderLock
from cips3d.training.snapshot import (
    Snapshot,
    TrainState,
    capture_rng,
    check_run_data,
    check_run_folder,
    check_run_outside_data,
    clear_unsnapshotted_start,
    load_snapshot,
    prune_snapshots,
    run_options,
    snapshot_name,
    write_run_record,
    write_snapshot,
)
from cips3d.training.steps2d import (
    Cips2DTrainSettings,
    d_step_2d,
    g_step_2d,
    multiscale_patches,
    patch_scales,
)
from cips3d.training.stopping import StopRequests
from cips3d.training.trainer import TrainingStopped

# Config fields a resume may change: when snapshots are written and how many are kept, not what is trained.
RESUMABLE = ("snapshot_every", "keep_snapshots")
PREVIEW_IMAGES = 16
MAX_BAD_STEPS = 10  # skipped updates in a row that stop a run (3-D's TrainConfig.max_bad_steps)
EVAL_IMAGES = 64  # reals and G_ema samples compared by SWD at every snapshot (the 3D trainer's default)


@dataclass(frozen=True)
class Train2DConfig:
    """What defines a 2D run (stored in every snapshot; a resume must use the same)."""

    generator: str = "cips-tiny"
    """A `cips2d_preset` name; its `size` is the training resolution (the images' height)."""
    panorama: bool = False
    """Train on 360-degree panoramas: cylinder coordinates (`Cips2DConfig.coordinates`), images resized
    whole (never cropped, so their ends still meet) and patches that continue across the seam."""
    width: int | None = None
    """Width of the training images (and columns of the generator's embedding); None: the size."""
    patch: int | None = None
    """Side of the training patches (CIPS's --crop); None trains on whole images."""
    batch_size: int = 4
    d_channel_multiplier: int = 2
    d_max_channels: int | None = None
    """Cap on the discriminator's widths; None: the generator preset's (`cips-tiny` 64, which trains
    about 19x faster on a CPU than StyleGAN2's 512; otherwise 512)."""
    d_reads_coordinates: bool = False
    """The discriminator also reads the patch's (x, y) maps (CIPS without --img2dis)."""
    settings: Cips2DTrainSettings = field(default_factory=Cips2DTrainSettings)
    seed: int = 0
    """Seed of the models' initialisation and of every draw (latents, noise, patches)."""
    data_seed: int = 0
    xflip: bool = False
    snapshot_every: int = 500
    keep_snapshots: int = 3
    init: str | None = None
    """Fine-tuning: the 2D model the run starts from (a run, model folder or official CIPS file). G and
    G_ema begin as its weights, D as its discriminator when it has one of this run's config (else from
    scratch); a resume reads its own snapshot, not this."""
    model: dict[str, Any] | None = None
    """The generator's whole config when it is `init`'s rather than a preset's (its size, width and
    coordinates then decide the training images)."""

    def __post_init__(self) -> None:
        if self.model is not None:
            if self.panorama or self.width is not None:
                raise ConfigError(
                    "a fine-tuned model brings its own coordinates and width: leave both unset."
                )
            # one form (a JSON round trip gives lists) so that a resumed run's config compares equal
            object.__setattr__(self, "model", Cips2DConfig.from_dict(self.model).to_dict())
        config = self.generator_config()
        patch_scales(config.size, config.grid_width, self.patch_size)
        if self.patch_size < 8:  # the StyleGAN2 discriminator's smallest input (Cips2DDiscriminatorConfig)
            raise ConfigError(f"the patch side (--patch) must be at least 8 px, the discriminator's smallest "
                              f"input, not {self.patch_size}.")  # fmt: skip
        if min(self.batch_size, self.snapshot_every, self.keep_snapshots) < 1:
            raise ConfigError("batch_size, snapshot_every and keep_snapshots must be at least 1.")
        group = min(self.batch_size, Cips2DDiscriminatorConfig.stddev_group)
        if self.batch_size % group:
            raise ConfigError(
                f"the batch size ({self.batch_size}) must be a multiple of the discriminator's "
                f"minibatch-stddev group ({group})."
            )

    @property
    def patch_size(self) -> int:
        """The discriminator's square input: `patch`, or the images' shorter side."""
        config = self.generator_config()
        return self.patch or min(config.size, config.grid_width)

    def generator_config(self) -> Cips2DConfig:
        """`model`, or the preset with the panorama's coordinates and the images' width."""
        if self.model is not None:
            return Cips2DConfig.from_dict(self.model)
        coordinates = "cylinder" if self.panorama else "plane"
        return dataclasses.replace(cips2d_preset(self.generator), coordinates=coordinates, width=self.width)

    def discriminator(self) -> Cips2DDiscriminatorConfig:
        return Cips2DDiscriminatorConfig(
            size=self.patch_size,
            channel_multiplier=self.d_channel_multiplier,
            max_channels=self.d_max_channels or self._preset_d_cap(),
            input_channels=5 if self.d_reads_coordinates else 3,
        )

    def _preset_d_cap(self) -> int:
        preset = CIPS2D_D_PRESETS.get(self.generator) if self.model is None else None
        return preset().max_channels if preset else Cips2DDiscriminatorConfig.max_channels

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Train2DConfig:
        try:
            return cls(**{**data, "settings": Cips2DTrainSettings(**data["settings"])})
        except (KeyError, TypeError) as err:
            raise ConfigError(f"the 2D training config is malformed ({err}).") from err


def load_run2d(path: str | Path, training_state: bool = True) -> tuple[Snapshot, Train2DConfig]:
    """The newest snapshot of a 2D run folder (or that snapshot) and the config it was trained with
    (`training_state` as in `load_snapshot`)."""
    snapshot = load_snapshot(path, training_state)
    if not is_2d_run_config(snapshot.config):
        run = snapshot.path.parent.parent
        raise ConfigError(f"{run} is a CIPS-3D training run, not a 2D one; {THREE_D_COMMANDS} take it.")
    try:
        return snapshot, Train2DConfig.from_dict(snapshot.config)
    except ConfigError as err:
        raise ConfigError(f"{snapshot.path} is not a 2D CIPS run: {err}") from err


def _describe(config: Cips2DDiscriminatorConfig) -> str:
    return (f"reads {config.input_channels} channels at {config.size} px, multiplier "
            f"{config.channel_multiplier}, widths up to {config.max_channels}")  # fmt: skip


class Trainer2D:
    """A 2D CIPS run in `run_dir` on the images at `data` (see the module docstring)."""

    def __init__(
        self,
        config: Train2DConfig,
        run_dir: str | Path,
        data: str | Path,
        device: torch.device | str = "cpu",
        resume: bool = False,
        progress: bool = True,
        world: World | None = None,
        fid_images: int = 0,
        inception: str | None = None,
    ) -> None:
        """`fid_images` > 0 also scores every snapshot by FID on that many images (`inception`: the FID
        network's weights, None the default file); how a run is scored is not part of its config."""
        self.config, self.run_dir, self.device = config, Path(run_dir), torch.device(device)
        check_run_folder(self.run_dir, new_run=not resume)
        self._new_run = not resume
        check_run_outside_data(self.run_dir, data)
        self.data, self.fid_images, self.inception = data, fid_images, inception
        # Loaded once, now: a missing weights file is said before training, not at the first snapshot.
        self.fid_network = InceptionExtractor.load(inception, self.device) if fid_images else None
        self.world = world or World()
        self.folder_lock = RunFolderLock(self.run_dir, self.world.is_main)
        """Held by the main process while it trains; a command may take it earlier (it is re-entrant)."""
        self.progress = progress and self.world.is_main
        init = torch.Generator().manual_seed(config.seed)
        self.G = Generator2D(config.generator_config(), init).to(self.device)
        self.D = Discriminator2D(config.discriminator(), init).to(self.device)
        self.G_ema = copy.deepcopy(self.G).eval()
        self.opt_g, self.opt_d = config.settings.optimizers(self.G, self.D)
        self.draws = torch.Generator().manual_seed(rank_seed(config.seed + 1, self.world.rank))
        self.preview_z = self.G.sample_latents(PREVIEW_IMAGES, torch.Generator().manual_seed(config.seed + 2))
        model = self.G.config
        self.dataset = ImageDataset(
            data, resolution=model.size, xflip=config.xflip, width=model.width, whole=model.panorama
        )
        self.grid = self.G.training_grid()[0]
        self.state = TrainState()
        self.resume_note: str | None = None  # set by a resume on another number of processes
        self._written: Path | None = None
        self._eval_reals: torch.Tensor | None = None
        self._reported_step: int | None = None
        self.started_from = "a fresh initialisation"
        self._stops = StopRequests()
        self.stopped_by_signal = False
        self.reached_time_limit = False
        """Set when `run` stopped at its `minutes` before its `max_steps`."""
        if fid_images:  # said now, not at the first snapshot with the steps before it lost
            check_fid_count(self.dataset.num_images, fid_images, "fid_images, --fid")
        if resume:
            self._resume()
            check_run_data(self.run_dir, self.dataset, self.state)
        elif config.init is not None:
            self._start_from(config.init)
        self.state.data_fingerprint = self.dataset.fingerprint

    def _start_from(self, path: str) -> None:
        """G and G_ema as the model at `path` (which must have this run's generator config), and D as its
        discriminator when it has one that fits this run's (`self.started_from` says which)."""
        models = load_models2d(path)
        if models.G.config != self.G.config:
            raise ConfigError(f"the model at {path} does not have this run's generator config.")
        self.G.load_state_dict(models.G.state_dict())
        self.G_ema.load_state_dict(models.G.state_dict())
        if models.D is None:
            self.started_from = f"G from {path}; D from scratch ({models.why_no_d})"
        elif models.D.config != self.D.config:
            why = f"its discriminator {_describe(models.D.config)}, this run's {_describe(self.D.config)}"
            self.started_from = f"G from {path}; D from scratch ({why})"
        else:
            self.D.load_state_dict(models.D.state_dict())
            self.started_from = f"G and D from {path}"

    def _resume(self) -> None:
        snapshot, config = load_run2d(self.run_dir)
        differences = _differences(config, self.config)
        if differences:
            raise ConfigError(
                f"{snapshot.path} was written with other settings ({differences}); resume with the run's own."
            )
        self.G.load_state_dict(snapshot.G)
        self.G_ema.load_state_dict(snapshot.G_ema)
        self.D.load_state_dict(snapshot.D)
        self.opt_g.load_state_dict(snapshot.optimizers["G"])
        self.opt_d.load_state_dict(snapshot.optimizers["D"])
        # Rank r goes on with rank r's draws; a rank the run did not have keeps its own seed's (restoring
        # rank 0's on every rank gave all of them the same latents, noise and patches).
        ranks = [snapshot.rng["generators"]["draws"], *snapshot.rng.get("other_ranks", [])]
        if self.world.rank < len(ranks):
            self.draws.set_state(ranks[self.world.rank])
        self.resume_note = world_change_note(len(ranks), self.world.world_size)
        self.state = snapshot.state
        self._written = snapshot.path  # a resume that takes no step rewrites nothing

    def _batches(self) -> Iterator[torch.Tensor]:
        world = self.world  # each process takes its own positions of the one data order
        sampler = InfiniteSampler(
            len(self.dataset), seed=self.config.data_seed, start=self.state.data_position, rank=world.rank,
            world_size=world.world_size,
        )  # fmt: skip
        loader = DataLoader(self.dataset, batch_size=self.config.batch_size, sampler=sampler)
        for batch in loader:
            yield to_float(batch).to(self.device)

    def run(self, max_steps: int | None, minutes: float | None = None) -> Path:
        """Train until `max_steps` iterations in all (counting those before a resume; None: no limit) or
        for `minutes`, whichever comes first; return the last snapshot's folder. Ctrl-C or SIGTERM
        (`training.stopping`) finishes the iteration, writes its snapshot, sets `stopped_by_signal` and
        returns; a second Ctrl-C aborts. The main process holds the run folder's lock throughout."""
        with self.folder_lock:
            return self._run(max_steps, minutes)

    def _run(self, max_steps: int | None, minutes: float | None) -> Path:
        deadline = None if minutes is None else time.monotonic() + minutes * 60
        if self.world.is_main:  # what a resume reads its dataset's path from (first: it makes the folder)
            if self._new_run:
                clear_unsnapshotted_start(self.run_dir)
            options = run_options(max_steps, self.fid_images, self.inception, torchrun_job=torchrun_job())
            write_run_record(self.run_dir, self.data, self.config.to_dict(), self.dataset, options)
        # Rank 0 writes TensorBoard logs and snapshot lines whether or not its progress bar is shown.
        if self.world.is_main:
            monitor = Monitor(
                self.run_dir / "logs", max_steps, self.state.global_step, self.progress, self.device
            )
        else:
            monitor = SilentMonitor()
        try:
            with self._stops.installed(self.world.is_main):
                self._loop(max_steps, deadline, monitor)
                path = self.snapshot()
                self._report(path, monitor)
        finally:
            monitor.close()
        return path

    def _loop(self, max_steps: int | None, deadline: float | None, monitor: Monitor | SilentMonitor) -> None:
        """Iterate until `max_steps`, the `deadline` (a `time.monotonic()` value) or a stop request."""
        if max_steps is None and deadline is None:
            raise ConfigError("a 2D run needs a limit: max_steps, minutes or both.")
        batches = self._batches()
        while max_steps is None or self.state.global_step < max_steps:
            stats = self.step(next(batches))
            log = self.state.global_step % 10 == 0
            monitor.step(self.state.global_step, self.state.images_seen, "2d", stats, log)
            if self.state.bad_steps_in_row >= MAX_BAD_STEPS:
                path = self.snapshot()
                raise TrainingStopped(
                    f"{self.state.bad_steps_in_row} steps in a row had non-finite losses or gradients (their "
                    f"updates were skipped); the last good state is in {path}."
                )
            if self.state.global_step % self.config.snapshot_every == 0:
                self._report(self.snapshot(), monitor)
            late = deadline is not None and time.monotonic() > deadline
            # decided by all processes together, so that every one stops at the same step
            late, self.stopped_by_signal = self.world.any_of([late, self._stops.requested], self.device)
            self.reached_time_limit = late and not self.stopped_by_signal
            if late or self.stopped_by_signal:
                return

    def _report(self, path: Path, monitor: Monitor | SilentMonitor) -> None:
        """Log the score of snapshot `path`, once."""
        record = self.state.history[-1] if self.state.history else None
        if record is None or record["step"] == self._reported_step:
            return
        self._reported_step = record["step"]
        monitor.scalar("eval/swd", record["swd"], record["step"])
        scores = f"SWD {record['swd']:.2f}"
        if "fid" in record:
            monitor.scalar("eval/fid", record["fid"], record["step"])
            scores += f", FID {record['fid']:.2f}"
        monitor.message(f"snapshot {path.name}: {scores} (best: {self.state.best_snapshot})")

    def step(self, reals: torch.Tensor) -> dict[str, float]:
        """One iteration on real images [B, 3, S, S] in [-1, 1]."""
        config, state, average = self.config, self.state, self.world.average_gradients
        wrap = self.G.config.panorama
        patches, coords = multiscale_patches(reals, config.patch_size, self.draws, self.grid, wrap)
        stats = d_step_2d(
            self.G,
            self.D,
            self.opt_d,
            patches,
            coords,
            config.settings,
            self.draws,
            state.global_step,
            average,
        )
        stats |= g_step_2d(self.G, self.D, self.opt_g, coords, config.settings, self.draws, average)
        ema_update(self.G_ema, self.G, config.settings.ema_decay)
        skipped = int(stats.pop("d_skipped") + stats.pop("g_skipped"))
        state.skipped_steps += skipped
        state.bad_steps_in_row = state.bad_steps_in_row + 1 if skipped else 0
        images = reals.shape[0] * self.world.world_size  # every process's batch
        state.global_step += 1
        state.stage_step += 1
        state.images_seen += images
        state.data_position += images
        return stats

    def snapshot(self) -> Path:
        """Write a snapshot and a preview grid of G_ema now (once per iteration count; rank 0 writes,
        every process takes part); keep the newest `keep_snapshots`."""
        root = self.run_dir / "snapshots"
        if self._written is not None and self._written.name == snapshot_name(self.state.global_step):
            return self._written
        states = self.world.gather(self.draws.get_state())
        path = root / snapshot_name(self.state.global_step)
        if self.world.is_main:
            self._score(path.name)
            rng = capture_rng({"draws": self.draws}) | {"other_ranks": states[1:]}
            modules = {"G": self.G, "G_ema": self.G_ema, "D": self.D}
            path = write_snapshot(
                root, self.state, self.config.to_dict(), modules, {"G": self.opt_g, "D": self.opt_d}, rng
            )
            with torch.no_grad():
                preview = self.G_ema(self.preview_z)
            record = {"command": "cips3d train2d", "run": str(self.run_dir.resolve()),
                      "step": self.state.global_step, "output": "preview (G_ema)"}  # fmt: skip
            save_png(make_grid(to_uint8(preview.clamp(-1, 1))), path / "preview.png", record)
            prune_snapshots(root, self.config.keep_snapshots, protect={self.state.best_snapshot} - {None})
        self.state = self.world.from_main(self.state)  # every rank keeps the scores (and waits for the files)
        self._written = path
        return path

    @torch.no_grad()
    def _score(self, name: str) -> None:
        """SWD of G_ema's samples against the data (rank 0): recorded in the history; the best snapshot
        is kept from pruning."""
        if self._eval_reals is None:
            count = min(EVAL_IMAGES, self.dataset.num_images)
            self._eval_reals = torch.stack([to_float(self.dataset[i]) for i in range(count)])
        reals = self._eval_reals
        z = self.G.sample_latents(len(reals), torch.Generator().manual_seed(self.config.seed + 3))
        fakes = torch.cat([self.G_ema(part).cpu() for part in z.split(16)]).clamp(-1, 1)
        value = swd(reals, fakes).mean
        record = {"step": self.state.global_step, "swd": value}
        if self.fid_images:
            scores = evaluate_2d(self.G_ema, self.data, ["fid"], self.fid_images, self.fid_network)
            record["fid"] = scores["metrics"]["fid"]
        self.state.history.append(record)
        if self.state.best_score is None or value < self.state.best_score:
            self.state.best_score, self.state.best_snapshot = value, name


def _differences(run: Train2DConfig, asked: Train2DConfig) -> str:
    """'batch_size 4 in the run, 8 now; ...': the fields in which two run configs differ (those a resume
    may change aside); empty when none do."""
    names = [f.name for f in dataclasses.fields(run)
             if f.name not in RESUMABLE and getattr(run, f.name) != getattr(asked, f.name)]  # fmt: skip
    return "; ".join(f"{n} {getattr(run, n)!r} in the run, {getattr(asked, n)!r} now" for n in names)
