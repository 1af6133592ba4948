"""Data-parallel training across processes (torchrun, one process per GPU; gloo on CPUs, for tests).

Every process holds the whole G, G_ema and D and trains on its own `batch_size` images, latents and
cameras per step (the official convention: the batch size is per GPU). After each backward pass the
gradients are averaged over the processes in one flat all-reduce, so every process takes the same
optimiser step and the weights never drift apart. Rank 0 writes snapshots, previews, logs and metrics;
decisions that must be unanimous (stop now, best snapshot so far) travel from it or through a vote.

Why a flat all-reduce and not `DistributedDataParallel`: the discriminator step runs D forward twice
before its backward pass and takes R1's gradient with `create_graph=True`, a pattern DDP's bucketed
hooks do not support; one explicit reduction after the backward pass supports it, costs one collective
per step, and keeps the step functions free of wrappers.

`World` is this process's place in the job; a single process is `World()` and every method is then a
no-op, so the trainer calls them unconditionally.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import re
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import distributed as dist
from torch import nn

from cips3d.errors import SaidElsewhere, UserError, first_line
from cips3d.training.snapshot import list_snapshots
from cips3d.words import counted

T = TypeVar("T")

# torchrun's environment contract (the same names as `torch.distributed.run` sets).
_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")


@dataclass(frozen=True)
class World:
    """Where this process stands in a data-parallel job (rank 0 of 1 when alone)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    def __post_init__(self) -> None:
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise UserError(f"rank {self.rank} does not fit a job of {self.world_size} processes.")
        if self.local_world_size < 1 or not 0 <= self.local_rank < self.local_world_size:
            raise UserError(
                f"local rank {self.local_rank} does not fit {self.local_world_size} processes per machine."
            )

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files and prints."""
        return self.rank == 0

    # --- collectives (no-ops for a single process) ----------------------------------------------------
    def average_gradients(self, params: Iterable[nn.Parameter], loss: torch.Tensor) -> torch.Tensor:
        """Replace each gradient by its mean over the processes; return the mean of `loss` likewise.

        Parameters without a gradient are left alone (Adam skips them, as it does in a single
        process). Which parameters have one follows from the graph, the same on every process, so all
        processes reduce tensors of the same size in the same order.
        """
        params = [p for p in params if p.grad is not None]
        if not self.distributed or not params:
            return loss
        flat = torch.cat([p.grad.reshape(-1) for p in params] + [loss.detach().reshape(1).to(params[0])])
        dist.all_reduce(flat)
        flat /= self.world_size
        offset = 0
        for p in params:
            p.grad.copy_(flat[offset : offset + p.numel()].view_as(p.grad))
            offset += p.numel()
        return flat[-1].to(loss.dtype)

    def mean_of(self, values: Mapping[str, float], device: torch.device) -> dict[str, float]:
        """The mean of each value over the processes (the same keys on every process)."""
        if not self.distributed:
            return dict(values)
        keys = sorted(values)
        t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return dict(zip(keys, (t / self.world_size).tolist(), strict=True))

    def any_of(self, flags: list[bool], device: torch.device) -> list[bool]:
        """Per position, whether any process raised that flag (a unanimous decision from local ones)."""
        if not self.distributed:
            return list(flags)
        t = torch.tensor([int(f) for f in flags], dtype=torch.int32, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return [bool(v) for v in t.tolist()]

    def from_main(self, obj: T) -> T:
        """Rank 0's `obj` on every process (a picklable object; also a barrier behind rank 0)."""
        if not self.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: T) -> list[T]:
        """Every process's `obj`, in rank order, on every process."""
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def broadcast_modules(self, modules: Iterable[nn.Module]) -> None:
        """Copy rank 0's parameters and buffers into every process's modules, in place."""
        if not self.distributed:
            return
        with torch.no_grad():
            for module in modules:
                for tensor in module.state_dict().values():
                    dist.broadcast(tensor, src=0)


def world_from_environment(env: Mapping[str, str] | None = None) -> World:
    """The `World` that torchrun (or any launcher with its variables) describes; `World()` without them."""
    env = os.environ if env is None else env
    present = [name for name in _ENV[:2] if name in env]
    if not present:
        return World()
    if len(present) < 2:
        raise UserError(
            "RANK and WORLD_SIZE must be set together (start multi-process training with torchrun)."
        )
    try:
        rank, world_size = int(env["RANK"]), int(env["WORLD_SIZE"])
        local_rank = int(env.get("LOCAL_RANK", rank))
        local_world_size = int(env.get("LOCAL_WORLD_SIZE", world_size))
    except ValueError as err:
        raise UserError(f"a torchrun variable is not an integer ({err}).") from err
    return World(rank, world_size, local_rank, local_world_size)


def torchrun_job(env: Mapping[str, str] | None = None) -> str | None:
    """The id of this torchrun job, the same in every process and every restart of it: torchrun's
    TORCHELASTIC_RUN_ID (its --rdzv-id, or a fresh uuid for a job on one machine with the default
    rendezvous). Its shared default 'none' (set with --master-port, or several machines without
    --rdzv-id) tells no job from another; on one machine the job is then known by its torchrun agent,
    the parent of every process it starts, again after a restart. None outside torchrun, or for a
    default id on several machines."""
    env = os.environ if env is None else env
    job = env.get("TORCHELASTIC_RUN_ID")
    if not job:
        return None
    if job != "none":
        return job
    one_machine = "LOCAL_WORLD_SIZE" in env and env.get("LOCAL_WORLD_SIZE") == env.get("WORLD_SIZE")
    return f"{socket.gethostname()}, torchrun agent {os.getppid()}" if one_machine else None


def backend_for(device: torch.device) -> str:
    """NCCL between GPUs, gloo between CPU processes."""
    return "nccl" if device.type == "cuda" else "gloo"


def join(world: World, device: torch.device) -> None:
    """Join the job's process group (torchrun's MASTER_ADDR / MASTER_PORT rendezvous); alone: nothing."""
    if not world.distributed or dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    try:
        dist.init_process_group(
            backend_for(device), rank=world.rank, world_size=world.world_size, timeout=PROCESS_GROUP_TIMEOUT
        )
    except (RuntimeError, ValueError) as err:
        raise UserError(f"cannot join the training job's process group ({first_line(err)}).") from err


# pytorch/pytorch#154976 (merged June 2025, near the 2.8 branch cut): below 2.9, to be safe.
_GLOO_DESTRUCTOR_HOLDS_GIL = torch.__version__ < "2.9"
GLOO_SETTLE_SECONDS = 0.2  # far more than freeing a few tensors takes; paid once, at the end of a run


def leave(world: World, together: bool = False) -> None:
    """Leave the process group `join` made. `together` (every process finished its work normally):
    wait for the others first, so that none tears its connections down while a peer still uses them
    (gloo then aborts that peer: seen once under load at the end of a run); after a failure no peer
    may come, so leave at once.

    Older PyTorch destroys a gloo group holding the GIL while it joins the group's worker threads,
    which may still be freeing the last collectives' tensors, and that needs the GIL: a deadlock
    (pytorch/pytorch#154976; with torch 2.4.1 a quarter of two-process runs hung at the end). There
    the GIL is first let go for a moment (a sleep) so the workers finish."""
    if world.distributed and dist.is_initialized():
        if together:
            dist.barrier()
        if _GLOO_DESTRUCTOR_HOLDS_GIL and dist.get_backend() == "gloo":
            time.sleep(GLOO_SETTLE_SECONDS)
        dist.destroy_process_group()


@contextlib.contextmanager
def process_group(world: World, device: torch.device) -> Iterator[None]:
    """`join` for the block; `leave` after it, together when it ended normally (a return included)."""
    join(world, device)
    finished = False
    try:
        yield
        finished = True
    finally:
        leave(world, together=finished)


# Ours: how long a process waits for the others in one collective. NCCL's default is 10 minutes, and
# rank 0 alone scores a snapshot (FID on 50,000 images may take longer on a slower GPU) while the
# others wait; a process that died is noticed at once (its connections close), not after this.
PROCESS_GROUP_TIMEOUT = datetime.timedelta(minutes=60)

# What a job's processes compare before training (facts that differ make them train on other images,
# or wait forever for each other at different steps), and how a difference is named.
AGREED_FACTS = {
    "settings": "other settings (the command's flags)",
    "images": "other images (--data)",
    "step": "another snapshot (--resume)",
    "limits": "other limits or scoring (--max-steps, --minutes, --fid)",
}


def start_together(world: World, start: Callable[[], T], facts: Callable[[T], dict]) -> T:
    """`start()` on every process (build the trainer, read the data), then agree on the outcome: when
    any process failed with a `UserError`, or `facts(result)` (keys of `AGREED_FACTS`) differ from rank
    0's, every process raises: rank 0 a `UserError` naming what failed or differs and on which ranks,
    the others `SaidElsewhere` (so the job says it once, not once per process, and none is left
    waiting for the others in a collective)."""
    result, failure, error = None, None, None
    try:
        result = start()
    except UserError as err:
        failure, error = str(err), err
    if not world.distributed:
        if error is not None:
            raise error
        return result
    reports = world.gather((failure, None if failure else facts(result)))
    message = _failures(reports) or _disagreements(reports)
    if message is None:
        return result
    if world.is_main:
        raise UserError(message)
    raise SaidElsewhere(message)


def _ranks(ranks: list[int]) -> str:
    return f"rank {ranks[0]}" if len(ranks) == 1 else f"ranks {', '.join(map(str, ranks))}"


def _failures(reports: list[tuple[str | None, dict | None]]) -> str | None:
    """One sentence for the processes that failed to start: their message, once per distinct one."""
    by_message: dict[str, list[int]] = {}
    for rank, (failure, _) in enumerate(reports):
        if failure is not None:
            by_message.setdefault(failure, []).append(rank)
    if not by_message:
        return None
    if len(by_message) == 1 and len(next(iter(by_message.values()))) == len(reports):
        return next(iter(by_message))  # every process failed alike: as one process says it
    return " ".join(f"{_ranks(ranks)}: {message}" for message, ranks in by_message.items())


def _disagreements(reports: list[tuple[str | None, dict | None]]) -> str | None:
    main = reports[0][1]
    differ = {}
    for rank, (_, facts) in enumerate(reports[1:], start=1):
        for key in AGREED_FACTS:
            if facts[key] != main[key]:
                differ.setdefault(key, []).append(rank)
    if not differ:
        return None
    said = "; ".join(f"{_ranks(ranks)} {'have' if len(ranks) > 1 else 'has'} {AGREED_FACTS[key]}"
                     for key, ranks in differ.items())  # fmt: skip
    return (f"the job's processes were not started alike: against rank 0, {said}. Start every process "
            "with the same command, images and run folder.")  # fmt: skip


def job_facts(config: Mapping[str, Any], images: str | None, step: int, limits: tuple) -> dict[str, Any]:
    """The `AGREED_FACTS` of one process: its run config (as a digest), its images' fingerprint, the step
    it starts from, and its limits and scoring (ranks that stop at other steps wait for each other)."""
    settings = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()
    return {"settings": settings, "images": images, "step": step, "limits": list(limits)}


def lost_peer(err: BaseException, world: World, run_dir: Path, command: str) -> UserError | None:
    """The one sentence for a run whose collective failed because another process died or cannot be
    reached (None for any other error): the newest complete snapshot, and the command that resumes."""
    why = collective_failure(err) if world.distributed else None
    if why is None:
        return None
    snapshots = list_snapshots(run_dir / "snapshots") if (run_dir / "snapshots").is_dir() else []
    newest = (
        f"the newest complete snapshot is {snapshots[-1]}" if snapshots else "no snapshot was written yet"
    )
    return UserError(
        f"another process of the job stopped or cannot be reached ({why}), so this one stopped too; "
        + newest
        + (f", and `cips3d {command} --resume {run_dir}` continues from it." if snapshots else ".")
    )


def collective_failure(err: BaseException) -> str | None:
    """Why a collective failed, in a few words, when `err` came from the process group (a peer that died
    or could not be reached); None for any other error. gloo raises a plain RuntimeError whose message
    starts with its source file, so the message is what tells."""
    text = first_line(err)
    if not (isinstance(err, getattr(dist, "DistError", ())) or re.search(r"gloo|nccl|by peer", text, re.I)):
        return None
    text = re.sub(r"^\[[^\]]*\]\s*", "", text)  # gloo's "[/path/pair.cc:553] "
    return text.split(". ")[0].rstrip(".")


def world_change_note(trained_by: int, world_size: int) -> str | None:
    """What a resume on another number of processes changes (None when the count is the same): the batch
    is per process, so a step takes another number of images and the run cannot go on bit for bit."""
    if trained_by == world_size:
        return None
    return (
        f"the run was trained by {counted(trained_by, 'process', 'processes')} and continues on "
        f"{world_size}, so each step now takes {world_size} x batch-size images instead of {trained_by} x; "
        "it goes on from the snapshot, but not bit for bit as it would have on the same count."
    )


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank `rank`'s random draws: `seed` itself on rank 0 (a single process trains as it
    always did), a 63-bit hash of (seed, rank) on the others, so that no two ranks share a stream."""
    if rank == 0:
        return seed
    digest = hashlib.sha256(f"cips3d-rank:{seed}:{rank}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1
