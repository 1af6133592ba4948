"""Process bodies for the data-parallel tests: each runs in a spawned process as one rank of a gloo job
and leaves what it computed in a file named after its rank (the parent compares them)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
from torch import distributed as dist
from torch import nn

from cips3d.training import trainer as trainer_module
from cips3d.training.distributed import World, process_group
from cips3d.training.trainer import Trainer, TrainOptions


def torchrun_cips3d(*args: str, processes: int = 2) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc_per_node N -m cips3d ARGS`, one thread per process, output captured."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        str(processes),
    ]
    return subprocess.run([*command, "-m", "cips3d", *args], check=False, capture_output=True, text=True,
                          env=env, timeout=300)  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(body, world_size: int, *args) -> None:
    """Run body(world, *args) in `world_size` fresh processes joined in one gloo group."""
    port = free_port()
    torch.multiprocessing.spawn(_enter, args=(world_size, port, body, args), nprocs=world_size, join=True)


def _enter(rank: int, world_size: int, port: int, body, args) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)  # two ranks share the test machine's cores
    world = World(rank, world_size, rank, world_size)
    with process_group(world, torch.device("cpu")):  # as the commands do: leave together after work
        body(world, *args)


def weights(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def tiny_net() -> nn.Module:
    """Two layers, one of them unused by `tiny_loss`: its parameters get no gradient."""
    torch.manual_seed(0)
    return nn.ModuleDict({"used": nn.Linear(5, 3), "unused": nn.Linear(3, 1)})


def tiny_loss(net: nn.Module, rank: int) -> torch.Tensor:
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(100 + rank))
    return net["used"](x).tanh().square().mean() * (rank + 1)


def average_body(world: World, out: Path) -> None:
    """Backward on this rank's own inputs, then average; save gradients and the averaged loss."""
    net = tiny_net()
    loss = tiny_loss(net, world.rank)
    loss.backward()
    mean_loss = world.average_gradients(net.parameters(), loss)
    grads = {n: (p.grad.clone() if p.grad is not None else None) for n, p in net.named_parameters()}
    stats = world.mean_of({"rank": float(world.rank), "one": 1.0}, torch.device("cpu"))
    votes = world.any_of([world.rank == 1, False], torch.device("cpu"))
    torch.save(
        {
            "grads": grads,
            "loss": mean_loss,
            "stats": stats,
            "votes": votes,
            "gathered": world.gather(world.rank),
        },
        out / f"rank{world.rank}.pt",
    )


def train_body(
    world: World, config, run_dir: Path, data: Path, max_steps: int, out: Path, same_draws: bool,
    device: str = "cpu",
) -> None:  # fmt: skip
    """Train (or resume, when run_dir holds a snapshot) to `max_steps`; save this rank's final weights.

    same_draws: every rank draws the latents, cameras and augmentations of rank 0 (with a dataset of
    identical images, every rank then computes the same gradients as a single process would)."""
    if same_draws:
        trainer_module.rank_seed = lambda seed, rank: seed
    options = TrainOptions(device=torch.device(device), progress=False, max_steps=max_steps, world=world)
    if (run_dir / "snapshots").is_dir():
        trainer = Trainer.from_snapshot(run_dir, None, options)
    else:
        trainer = Trainer(config, run_dir, data, options)
    state = trainer.run()
    result = {
        name: {k: v.cpu() for k, v in weights(getattr(trainer, name)).items()} for name in ("G", "G_ema", "D")
    }
    result["state"] = {"global_step": state.global_step, "images_seen": state.images_seen}
    result["resume_note"] = trainer.resume_note
    torch.save(result, out / f"rank{world.rank}.pt")
    dist.barrier()


def train2d_body(world: World, config, run_dir: Path, data: Path, max_steps: int, out: Path) -> None:
    """Train 2D CIPS (or resume, when run_dir holds a snapshot) to `max_steps`; save this rank's weights."""
    from cips3d.training.trainer2d import Trainer2D  # noqa: PLC0415

    resume = (run_dir / "snapshots").is_dir()
    trainer = Trainer2D(config, run_dir, data, resume=resume, progress=False, world=world)
    trainer.run(max_steps)
    result = {name: weights(getattr(trainer, name)) for name in ("G", "G_ema", "D")}
    result["images_seen"] = trainer.state.images_seen
    torch.save(result, out / f"rank{world.rank}.pt")
    dist.barrier()


def command_body(world: World, argv_of_rank: list[list[str]], out: Path) -> None:
    """`cips3d ARGV` as rank `world.rank` of a torchrun job (each rank its own command line); its exit
    code and what it printed to stderr go to out/rankN.json."""
    import contextlib  # noqa: PLC0415
    import io  # noqa: PLC0415
    import json  # noqa: PLC0415

    from cips3d.cli.main import main  # noqa: PLC0415

    os.environ.update(RANK=str(world.rank), WORLD_SIZE=str(world.world_size))
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(argv_of_rank[world.rank])
    (out / f"rank{world.rank}.json").write_text(json.dumps({"code": code, "err": err.getvalue()}))


# A rank of a two-process `cips3d train` job started by hand (as on two machines), whose rank 1 dies
# (os._exit, as a kill -9 would) in its third iteration: what does rank 0 say?
RANK_THAT_DIES = """
import os, sys
from cips3d.cli.main import main
from cips3d.training.trainer import Trainer
if os.environ["RANK"] == "1":
    iteration, calls = Trainer._iteration, []
    def dying(self, *args):
        calls.append(1)
        if len(calls) == 3:
            os._exit(1)
        return iteration(self, *args)
    Trainer._iteration = dying
sys.exit(main(sys.argv[1:]))
"""


def run_with_a_dying_rank(argv: list[str]) -> subprocess.CompletedProcess:
    """Rank 0's exit code and output; rank 1 dies in its third iteration (`RANK_THAT_DIES`)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()),
               WORLD_SIZE="2")  # fmt: skip
    command = [sys.executable, "-c", RANK_THAT_DIES, *argv]
    with subprocess.Popen(command, env=env | {"RANK": "1"}, stderr=subprocess.DEVNULL) as dying:
        done = subprocess.run(
            command, check=False, env=env | {"RANK": "0"}, capture_output=True, text=True, timeout=300
        )
        dying.wait(timeout=60)
    return done
