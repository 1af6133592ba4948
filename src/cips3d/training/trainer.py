"""The training loop: stages in order, a D step and a G step per iteration, EMA, previews, snapshots.

Everything random comes from generators whose states are saved with each snapshot, the data order is
a pure function of the number of images consumed, and Adam states are saved, so a run resumed from a
snapshot continues exactly as if it had never stopped (bit for bit on CPU).

Under torchrun every process runs this loop on its own share of each step (`cips3d.training.distributed`):
gradients, losses and stop decisions are shared, and only rank 0 writes files.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from cips3d.config import RenderConfig, is_real_number, whole_count
from cips3d.config_2d import is_2d_run_config
from cips3d.data.images import ImageDataset, to_float
from cips3d.data.sampler import InfiniteSampler
from cips3d.errors import CheckpointError, ConfigError, UserError, first_line
from cips3d.fast import tf32_matmuls
from cips3d.io.files import atomic_write
from cips3d.io.images import save_png
from cips3d.metrics.evaluate import check_fid_count, evaluate
from cips3d.metrics.inception import InceptionExtractor
from cips3d.models.discriminator import Discriminator, DiscriminatorConfig
from cips3d.models.generator3d import Generator3D
from cips3d.training.augment import DiffAugmentConfig
from cips3d.training.config import RESUMABLE, StageConfig, TrainConfig
from cips3d.training.distributed import World, rank_seed, torchrun_job, world_change_note
from cips3d.training.ema import ema_update
from cips3d.training.evaluate import snapshot_score
from cips3d.training.monitor import Monitor, SilentMonitor
from cips3d.training.preview import preview_grids
from cips3d.training.run_lock import RunFolderLock
from cips3d.training.schedule import ema_active, fade_alpha, nerf_noise_std
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
    recorded_options,
    restore_rng,
    resume_data,
    run_options,
    snapshot_name,
    write_run_record,
    write_snapshot,
)
from cips3d.training.steps import StepRandom, StepSettings, d_step, g_step
from cips3d.training.stopping import StopRequests
from cips3d.training.warm_start import warm_start
from cips3d.words import counted


class TrainingStopped(Exception):
    """Training cannot go on (e.g. the losses stayed non-finite); a snapshot of the last good state exists."""


@dataclass(frozen=True)
class TrainOptions:
    """How to run (not what to train): device, workers, limits."""

    device: torch.device = torch.device("cpu")
    workers: int = 0
    progress: bool = True
    max_steps: int | None = None
    """Stop (with a snapshot) once the run has done this many iterations in total."""
    max_minutes: float | None = None
    """Stop (with a snapshot) after this much wall time."""
    tf32: bool = False
    """On a CUDA device, float32 matrix products (forward and backward) use TF32 tensor cores for the
    whole run. PyTorch leaves them IEEE by default (its cuDNN convolutions already use TF32). A run
    resumes exactly only with the same setting."""
    world: World = World()
    """This process's place in a data-parallel job (its process group already joined); alone by default.
    Each process trains on `batch_size` images per step, so a step sees batch_size * world_size."""
    fid_images: int = 0
    """Also score every snapshot by FID (G_ema against the data, this many images each; 0: SWD only).
    FID from few images is biased upwards: compare runs at the same count."""
    inception: str | None = None
    """The FID network's weights (`cips3d.metrics.inception`); None: the default file."""

    def __post_init__(self) -> None:
        # Said before training, not as a stop at step 0 ("reached -5 steps") or a failure at run().
        if self.max_steps is not None:
            whole_count(self.max_steps, "max_steps")
        if self.max_minutes is not None and not (is_real_number(self.max_minutes) and self.max_minutes > 0):
            raise ConfigError(f"max_minutes must be a positive number, got {self.max_minutes!r}.")
        for name in ("workers", "fid_images"):
            whole_count(getattr(self, name), name, minimum=0)


def nerf_modules(G: Generator3D) -> list[torch.nn.Module]:
    """The NeRF side that fine-tuning freezes: field, its mapping network, the aux head (spec 5.1)."""
    return [G.field, G.nerf_mapping, G.aux_head]


class Trainer:
    """Trains G (and its EMA copy G_ema) against D through the stages of `config`.

    Args:
        config: networks, curriculum and loss settings.
        run_dir: where snapshots, previews, TensorBoard logs and metrics go.
        data: image folder or dataset zip.
        options: device, data-loader workers and stopping limits.
        continuing: set by `from_snapshot` only; a new run refuses a folder that already holds one
            (its snapshots would be mixed with, and pruned by, the new run's).
    """

    def __init__(
        self,
        config: TrainConfig,
        run_dir: str | Path,
        data: str | Path,
        options: TrainOptions,
        *,
        continuing: bool = False,
    ) -> None:
        self.config, self.run_dir, self.data, self.options = config, Path(run_dir), Path(data), options
        check_run_folder(self.run_dir, new_run=not continuing)
        check_run_outside_data(self.run_dir, self.data)
        self._continuing = continuing
        self.folder_lock = RunFolderLock(self.run_dir, options.world.is_main)
        """Held by the main process while it trains; a command may take it earlier (it is re-entrant)."""
        self._data_fingerprint: str | None = None  # of the first scan: every stage's must match it
        device = options.device
        self.G = Generator3D(config.generator, generator=torch.Generator().manual_seed(config.seed)).to(
            device
        )
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        d_config = DiscriminatorConfig.from_dict(config.discriminator)
        self.D = Discriminator(d_config, generator=torch.Generator().manual_seed(config.seed + 1)).to(device)
        rank = options.world.rank  # each process draws its own latents, cameras and augmentations
        self.random = StepRandom(
            g=torch.Generator().manual_seed(rank_seed(config.seed + 2, rank)),
            d=torch.Generator().manual_seed(rank_seed(config.seed + 3, rank)),
        )
        self.state = TrainState()
        self.started_from: str | None = None
        """The weights a fine-tune started from (`warm_start`), kept in run.json; None: a fresh start."""
        self.resume_note: str | None = None
        """Set when a resume cannot continue bit for bit (another number of processes)."""
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self._optimizer_state: dict | None = None
        self._eval_reals: torch.Tensor | None = None
        self._datasets: dict[int, ImageDataset] = {}
        self._written: tuple[str, int] | None = None  # (name, stage) of the last snapshot this process wrote
        self._stops = StopRequests()  # Ctrl-C / SIGTERM: stop after this step, with a snapshot
        self.stopped_by_signal = False
        """Set when the run stopped on a signal (or `request_stop`) rather than at a limit or the end."""
        self._started = time.monotonic()
        # Loaded once, now: a missing weights file is said before training, not at the first snapshot.
        self._fid_network = InceptionExtractor.load(options.inception, device) if options.fid_images else None

    # --- construction from snapshots ---------------------------------------------------------------
    @classmethod
    def from_snapshot(
        cls, path: str | Path, data: str | Path | None, options: TrainOptions, **changes: int
    ) -> Trainer:
        """Continue the run a snapshot (or the newest snapshot of a run folder) belongs to; `changes` may
        set the config's RESUMABLE fields, which decide what is written, not what is trained."""
        snap = load_snapshot(path)
        run_dir = snap.path.parent.parent
        if is_2d_run_config(snap.config):
            raise ConfigError(f"{run_dir} is a 2D CIPS training run; cips3d train2d --resume continues it.")
        if set(changes) - set(RESUMABLE):
            raise ConfigError(f"a resume can change only {', '.join(RESUMABLE)}, not {', '.join(changes)}.")
        config = dataclasses.replace(TrainConfig.from_dict(snap.config), **changes)
        trainer = cls(config, run_dir, resume_data(run_dir, data), options, continuing=True)
        trainer._load_weights(snap)
        trainer.state = snap.state
        trainer._written = (snap.path.name, snap.state.stage)  # a resume that takes no step rewrites nothing
        trainer._restore_rng(snap.rng)
        trainer._optimizer_state = snap.optimizers
        trainer.started_from = recorded_options(run_dir).get("init")
        return trainer

    def _restore_rng(self, saved: dict) -> None:
        """This rank's saved generator states (the run's other ranks are under "other_ranks")."""
        ranks = [saved, *saved.get("other_ranks", [])]
        world = self.options.world
        self.resume_note = world_change_note(len(ranks), world.world_size)
        if world.rank < len(ranks):
            restore_rng(ranks[world.rank], self.generators)

    def warm_start(self, source: str | Path) -> str:
        """Start from the weights in `source` (see `cips3d.training.warm_start`); before `run`."""
        if self.state.global_step:
            raise CheckpointError("a resumed run cannot be warm-started from other weights.")
        loaded, read_from = warm_start(source, self.config, self.G, self.G_ema, self.D)
        # A run goes on training: its snapshot, not the run, stays what this run started from.
        self.started_from = str(read_from.resolve())
        return loaded

    @property
    def generators(self) -> dict[str, torch.Generator]:
        return {"g": self.random.g, "d": self.random.d}

    def _load_weights(self, snap: Snapshot) -> None:
        for name, module in (("G", self.G), ("G_ema", self.G_ema), ("D", self.D)):
            state = getattr(snap, name)
            expected = module.state_dict()
            bad = [k for k in expected if k not in state or state[k].shape != expected[k].shape]
            if bad or len(state) != len(expected):
                raise CheckpointError(
                    f"the snapshot {snap.path} does not fit its own config ({name}: {len(bad)} keys differ)."
                )
            module.load_state_dict(state)

    # --- the loop ----------------------------------------------------------------------------------
    def checked_dataset(self) -> ImageDataset:
        """The images of the current stage; a continued run's are checked against the ones it recorded.
        Fails before anything is written."""
        dataset = self._dataset(self.config.stages[self.state.stage].img_size)
        if self._continuing:
            check_run_data(self.run_dir, dataset, self.state)
        self.state.data_fingerprint = dataset.fingerprint
        return dataset

    def run(self) -> TrainState:
        """Train until the last stage ends or a limit / signal stops the run; returns the final state.
        The main process holds the run folder's lock throughout (`run_lock`: one run per folder)."""
        with self.folder_lock:
            return self._run()

    def _run(self) -> TrainState:
        dataset = self.checked_dataset()
        if self.options.fid_images:  # said now, not at the first snapshot with the steps before it lost
            check_fid_count(dataset.num_images, self.options.fid_images, "fid_images, --fid")
        world = self.options.world
        world.broadcast_modules([self.G, self.G_ema, self.D])  # every process starts from rank 0's weights
        self._started = time.monotonic()  # the time limit counts training, not what ran before it
        total = sum(s.steps for s in self.config.stages)
        if self.options.max_steps is not None:  # the bar ends where this run will
            total = min(total, self.options.max_steps)
        if world.is_main:
            if not self._continuing:
                clear_unsnapshotted_start(self.run_dir)
            o = self.options
            options = run_options(o.max_steps, o.fid_images, o.inception, tf32=o.tf32, init=self.started_from,
                                  torchrun_job=torchrun_job())  # fmt: skip
            write_run_record(self.run_dir, self.data, self.config.to_dict(), dataset, options)
            write_metrics_log(self.run_dir / METRICS_LOG, self.state.history)
            monitor = Monitor(
                self.run_dir / "logs",
                total,
                self.state.global_step,
                self.options.progress,
                self.options.device,
            )
        else:
            monitor = SilentMonitor()
        try:
            with self._stops.installed(world.is_main), tf32_matmuls(self.options.tf32, self.options.device):
                self._loop(monitor)
        finally:
            monitor.close()
        return self.state

    def _loop(self, monitor: Monitor) -> None:
        """Stages until the last one ends or the run must stop."""
        while True:
            stage = self.config.stages[self.state.stage]
            if self.state.stage_step >= stage.steps:
                # A limit reached right at a stage's end stops there (its snapshot is written), not after
                # the hand-off, whose snapshot would replace it under the same step's name.
                if self.state.stage + 1 >= len(self.config.stages) or self._stop_reason():
                    return
                self._next_stage(stage)
                continue
            self._begin_stage(stage)
            if self._run_stage(stage, monitor):
                return
            self._snapshot(monitor, f"end of stage {stage.name}")
            self._preview_of_snapshot(stage, monitor)

    def _run_stage(self, stage: StageConfig, monitor: Monitor) -> bool:
        """Iterate until the stage ends (False) or the run must stop (True, after a snapshot)."""
        batches = self._batches(stage)
        while self.state.stage_step < stage.steps:
            reason = self._stop_reason()
            if reason:
                self._snapshot(monitor, reason)
                self._preview_of_snapshot(stage, monitor)
                return True
            stats = self._iteration(stage, next(batches))
            step = self.state.global_step
            monitor.step(step, self.state.images_seen, stage.name, stats, step % self.config.log_every == 0)
            if self.state.bad_steps_in_row >= self.config.max_bad_steps:
                path = self._snapshot(monitor, "non-finite losses", score=False)
                raise TrainingStopped(
                    f"{self.state.bad_steps_in_row} steps in a row had non-finite losses or gradients; "
                    f"the last good state is in {path}."
                )
            if step % self.config.preview_every == 0 and self.options.world.is_main:
                self._preview(stage, monitor)
            if step % self.config.snapshot_every == 0 and self.state.stage_step < stage.steps:
                limit = self.options.max_steps
                self._snapshot(monitor, f"reached {counted(limit, 'step')}" if step == limit else "interval")
        return False

    def _iteration(self, stage: StageConfig, reals: torch.Tensor) -> dict[str, float]:
        """One D step, one G step, the EMA update, and the counters."""
        settings, world = self._settings(stage), self.options.world
        average = world.average_gradients
        stats = d_step(self.G, self.D, self.optimizers["D"], reals, settings, self.random, average)
        stats |= g_step(self.G, self.D, self.optimizers["G"], settings, self.random, average)
        stats = world.mean_of(stats, self.options.device)
        if ema_active(self.state.stage_step, self.config.ema_start):
            ema_update(self.G_ema, self.G, self.config.ema_decay)
        skipped = int(stats["d_skipped"] + stats["g_skipped"])
        s = self.state
        s.skipped_steps += skipped
        s.bad_steps_in_row = s.bad_steps_in_row + 1 if skipped else 0
        s.stage_step += 1
        s.global_step += 1
        s.images_seen += stage.batch_size * world.world_size
        s.data_position += stage.batch_size * world.world_size
        return stats | {"alpha": settings.alpha, "nerf_noise": settings.render.nerf_noise}

    def _settings(self, stage: StageConfig) -> StepSettings:
        c, step = self.config, self.state.stage_step
        render = c.stage_render(stage, nerf_noise_std(step, stage.nerf_noise_steps))
        r1_now = c.r1_gamma > 0 and step % c.r1_interval == 0
        augment = DiffAugmentConfig(cutout_ratio=c.diffaug_cutout) if stage.diffaug else None
        return StepSettings(
            render=render, pose=c.pose, batch_size=stage.batch_size, aux=stage.aux,
            alpha=fade_alpha(step, stage.fade_steps), augment=augment,
            r1_gamma=c.r1_gamma, r1_scale=float(c.r1_interval) if r1_now else 0.0, grad_clip=c.grad_clip,
            nerf_grad=not stage.freeze_nerf,
        )  # fmt: skip

    # --- stages --------------------------------------------------------------------------------------
    def _begin_stage(self, stage: StageConfig) -> None:
        """Freeze or unfreeze the NeRF, build the optimisers (restoring saved state on a resume)."""
        fresh = self.state.stage_step == 0 and self._optimizer_state is None
        for module in nerf_modules(self.G):
            module.requires_grad_(not stage.freeze_nerf)
        if fresh and stage.freeze_nerf:  # the frozen NeRF is the EMA one (official load_nerf_ema)
            for ours, ema in zip(nerf_modules(self.G), nerf_modules(self.G_ema), strict=True):
                ours.load_state_dict(ema.state_dict())
        betas = self.config.adam_betas
        trainable = [p for p in self.G.parameters() if p.requires_grad]
        self.optimizers = {
            "G": torch.optim.Adam(trainable, lr=stage.g_lr, betas=betas),
            "D": torch.optim.Adam(self.D.parameters(), lr=stage.d_lr, betas=betas),
        }
        if self._optimizer_state is not None:
            for name, optimizer in self.optimizers.items():
                optimizer.load_state_dict(self._optimizer_state[name])
            self._optimizer_state = None
        self._eval_reals = None

    def _next_stage(self, finished: StageConfig) -> None:
        """Hand G, G_ema and D to the next stage, from the best or the last snapshot of this one."""
        source = self.state.best_snapshot if finished.start_from == "best" else None
        current = snapshot_name(self.state.global_step)
        if source is not None and source != current:
            self._load_weights(load_snapshot(self.run_dir / "snapshots" / source))
        s = self.state
        s.stage, s.stage_step = s.stage + 1, 0
        s.best_score, s.best_snapshot, s.stage_started_from = None, None, source or current
        self._optimizer_state = None

    def _batches(self, stage: StageConfig) -> Iterator[torch.Tensor]:
        """Real images [B, 3, S, S] in [-1, 1] on the device, from the run's data position on."""
        dataset, world = self._dataset(stage.img_size), self.options.world
        sampler = InfiniteSampler(
            len(dataset), seed=self.config.data_seed, start=self.state.data_position,
            rank=world.rank, world_size=world.world_size,
        )  # fmt: skip
        loader = DataLoader(
            dataset, batch_size=stage.batch_size, sampler=sampler, num_workers=self.options.workers,
            generator=torch.Generator().manual_seed(0), persistent_workers=False,
        )  # fmt: skip
        for batch in loader:
            yield to_float(batch).to(self.options.device)

    # --- snapshots, previews, stopping ---------------------------------------------------------------
    def _snapshot(self, monitor: Monitor, reason: str, score: bool = True) -> Path:
        """Write a snapshot (rank 0; every process takes part) and return its folder."""
        root = self.run_dir / "snapshots"
        name = snapshot_name(self.state.global_step)
        if self._written == (name, self.state.stage):  # nothing happened since the last one
            return root / name
        self.G_ema.update_truncation_mean()
        world = self.options.world
        rngs = world.gather(capture_rng(self.generators))
        if world.is_main:
            rng = rngs[0] | ({"other_ranks": rngs[1:]} if len(rngs) > 1 else {})
            self._write_snapshot(monitor, root, name, reason, score, rng)
        self.state = world.from_main(self.state)  # the score and best snapshot, once the files exist
        self._written = (name, self.state.stage)
        return root / name

    def _write_snapshot(
        self, monitor: Monitor, root: Path, name: str, reason: str, score: bool, rng: dict
    ) -> None:
        """Score (if asked), write, prune and log snapshot `name` under `root` (rank 0 only)."""
        stage = self.config.stages[self.state.stage]
        record = {"step": self.state.global_step, "stage": stage.name, "reason": reason}
        if score:
            value = snapshot_score(
                self.G_ema, self._reals_for_score(stage), self.config.pose, self._eval_render(stage)
            )
            record["swd"] = value
            monitor.scalar("eval/swd", value, self.state.global_step)
            if self.state.best_score is None or value < self.state.best_score:
                self.state.best_score, self.state.best_snapshot = value, name
            if self.options.fid_images:
                record["fid"] = self._fid(stage)
                monitor.scalar("eval/fid", record["fid"], self.state.global_step)
        self.state.history.append(record)
        modules = {"G": self.G, "G_ema": self.G_ema, "D": self.D}
        path = write_snapshot(root, self.state, self.config.to_dict(), modules, self.optimizers, rng)
        prune_snapshots(root, self.config.keep_snapshots, {self.state.best_snapshot} - {None})
        try:
            _append_jsonl(self.run_dir / METRICS_LOG, record)
        except OSError as err:  # the snapshot, which holds the record too, is complete: the run goes on
            why = first_line(err, 200)
            monitor.message(f"the snapshot {path.name} is complete, but its line in {METRICS_LOG} could "
                            f"not be written ({why}); a resume writes the log again from it.")  # fmt: skip
        scores = "".join(f", {k.upper()} {record[k]:.2f}" for k in ("swd", "fid") if k in record)
        monitor.message(f"snapshot {path.name} ({reason}{scores})")

    def _fid(self, stage: StageConfig) -> float:
        """FID of G_ema against the data at the stage's size (the metrics protocol, the run's renderer)."""
        options = self.options
        result = evaluate(self.G_ema, self.data, ["fid"], options.fid_images, stage.img_size,
                          extractor=self._fid_network, render=self._eval_render(stage),
                          pose=self.config.pose)  # fmt: skip
        return result["metrics"]["fid"]

    def _eval_render(self, stage: StageConfig) -> RenderConfig:
        """Scores and previews render as the G step does, without its noise or its gradient-ray subset."""
        return dataclasses.replace(self.config.stage_render(stage), grad_rays=None)

    def _reals_for_score(self, stage: StageConfig) -> torch.Tensor:
        if self._eval_reals is None:
            dataset = self._dataset(stage.img_size)  # the first num_images items are the unflipped ones
            count = min(self.config.eval_images, dataset.num_images)
            self._eval_reals = to_float(torch.stack([dataset[i] for i in range(count)]))
        return self._eval_reals

    def _dataset(self, img_size: int) -> ImageDataset:
        """The training images at `img_size` (scanned once per resolution)."""
        if img_size not in self._datasets:
            # The enlargement is said once, of the largest stage: "enlarged to 16 px" understated a run
            # that goes on to 32.
            largest = 0 if self._datasets else max(s.img_size for s in self.config.stages)
            dataset = ImageDataset(
                self.data, resolution=img_size, xflip=self.config.xflip, enlarged_above=largest
            )
            if self._data_fingerprint not in (None, dataset.fingerprint):
                raise UserError(f"the images in {self.data} changed during the run (a new stage read them "
                                "again); train on a copy that stays as it is.")  # fmt: skip
            self._data_fingerprint = dataset.fingerprint
            self._datasets[img_size] = dataset
        return self._datasets[img_size]

    def _preview_of_snapshot(self, stage: StageConfig, monitor: Monitor) -> None:
        """A preview beside a stop's or a stage end's snapshot, unless its step has one: a run shorter
        than `preview_every` still shows what it learnt."""
        name = snapshot_name(self.state.global_step)
        if self.options.world.is_main and not (self.run_dir / "previews" / name).exists():
            try:
                self._preview(stage, monitor)
            except OSError as err:  # the snapshot is what matters, and it is complete
                monitor.message(f"the snapshot {name} is complete, but its preview could not be written "
                                f"({first_line(err, 200)}).")  # fmt: skip

    def _preview(self, stage: StageConfig, monitor: Monitor) -> None:
        self.G_ema.update_truncation_mean()
        grids = preview_grids(self.G, self.G_ema, self._eval_render(stage), self.config.pose)
        folder = self.run_dir / "previews" / snapshot_name(self.state.global_step)
        step = self.state.global_step
        for name, grid in grids.items():
            record = {"command": "cips3d train", "run": str(self.run_dir.resolve()), "step": step,
                      "output": f"preview ({name})"}  # fmt: skip
            save_png(grid, folder / f"{name}.png", record)
        monitor.images(self.state.global_step, grids)

    def _stop_reason(self) -> str | None:
        """Why the run must stop now, or None; decided by all processes together (any one can stop it)."""
        o = self.options
        signalled, steps, minutes = o.world.any_of(
            [
                self._stops.requested,
                o.max_steps is not None and self.state.global_step >= o.max_steps,
                o.max_minutes is not None and time.monotonic() - self._started >= 60 * o.max_minutes,
            ],
            o.device,
        )
        if signalled:
            self.stopped_by_signal = True
            return "stopped by signal"
        if steps:
            return f"reached {counted(o.max_steps, 'step')}"
        if minutes:
            return f"reached {o.max_minutes:g} minutes"
        return None

    def request_stop(self) -> None:
        """Finish the current iteration, write a snapshot and return from `run` (safe from a signal)."""
        self._stops.request()


METRICS_LOG = "metrics.jsonl"  # one line per snapshot: its step, stage, reason and scores


def write_metrics_log(path: Path, history: list[dict]) -> None:
    """`path` as the lines of `history` (the snapshots' records up to the one resumed from), written
    atomically: a kill between a snapshot and its line, or a resume from an older snapshot, left the log
    missing lines or holding some twice. A new run starts it empty (and finds an unwritable one now)."""
    atomic_write(path, lambda tmp: Path(tmp).write_text("".join(json.dumps(r) + "\n" for r in history)))


def _append_jsonl(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
