"""Data-parallel training: torchrun's environment, the gradient average, and whole runs of two gloo
processes on the CPU (the arithmetic of a single process, weights kept in sync, exact resume)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket

import numpy as np
import pytest
import torch
from PIL import Image

from cips3d.errors import UserError
from cips3d.io.inspect import describe
from cips3d.training import distributed
from cips3d.training.config import StageConfig
from cips3d.training.distributed import World, rank_seed, torchrun_job, world_from_environment
from cips3d.training.run_lock import run_lock
from cips3d.training.snapshot import load_snapshot
from cips3d.training.trainer import Trainer, TrainOptions
from tests.conftest import write_blobs
from tests.training import ddp_workers
from tests.training.conftest import micro_config

STAGE = StageConfig("r16", 16, 4, 2, 2e-4, 2e-3, nerf_noise_steps=3)


def test_the_environment_of_torchrun_names_the_world():
    assert world_from_environment({}) == World()
    env = {"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}
    world = world_from_environment(env)
    assert (world.rank, world.world_size, world.local_rank, world.local_world_size) == (3, 8, 1, 2)
    assert world.distributed and not world.is_main
    assert world_from_environment({"RANK": "0", "WORLD_SIZE": "1"}) == World()


@pytest.mark.parametrize(
    "env, words",
    [
        ({"RANK": "1"}, "must be set together"),
        ({"RANK": "x", "WORLD_SIZE": "2"}, "not an integer"),
        ({"RANK": "2", "WORLD_SIZE": "2"}, "does not fit a job of 2"),
        ({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "1"}, "local rank 1"),
    ],
)
def test_a_broken_environment_is_one_clear_error(env, words):
    with pytest.raises(UserError, match=words):
        world_from_environment(env)


def test_a_torchrun_job_is_known_across_its_restarts():
    """The id a restart compares with run.json's: torchrun's own, else (its shared default 'none', as
    with --master-port) the torchrun agent of a job on one machine; none outside torchrun."""
    assert torchrun_job({}) is None
    several = {"TORCHELASTIC_RUN_ID": "a1b2", "WORLD_SIZE": "16", "LOCAL_WORLD_SIZE": "8"}
    assert torchrun_job(several) == "a1b2"
    one = {"TORCHELASTIC_RUN_ID": "none", "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2"}
    assert torchrun_job(one) == f"{socket.gethostname()}, torchrun agent {os.getppid()}" == torchrun_job(one)
    assert torchrun_job(one | {"WORLD_SIZE": "4"}) is None  # several machines: nothing tells the job apart


def test_rank_zero_draws_as_a_single_process_and_every_rank_draws_its_own_stream():
    assert rank_seed(1236, 0) == 1236
    seeds = [rank_seed(1236, r) for r in range(8)]
    assert len(set(seeds)) == 8 and all(0 <= s < 2**63 for s in seeds)
    assert seeds == [rank_seed(1236, r) for r in range(8)]  # a pure function: resumes draw alike


def test_alone_every_collective_is_the_identity():
    world, net = World(), ddp_workers.tiny_net()
    loss = ddp_workers.tiny_loss(net, 0)
    loss.backward()
    grads = [p.grad.clone() for p in net["used"].parameters()]
    assert world.average_gradients(net.parameters(), loss) is loss
    assert all(torch.equal(p.grad, g) for p, g in zip(net["used"].parameters(), grads, strict=True))
    assert world.mean_of({"a": 2.0}, torch.device("cpu")) == {"a": 2.0}
    assert world.any_of([True, False], torch.device("cpu")) == [True, False]
    assert world.from_main("x") == "x" and world.gather(5) == [5]


def test_gradients_and_losses_are_averaged_over_the_processes(tmp_path):
    ddp_workers.spawn(ddp_workers.average_body, 2, tmp_path)
    expected_grads, losses = {}, []
    for rank in range(2):  # each rank's gradients, computed here one after the other
        net = ddp_workers.tiny_net()
        loss = ddp_workers.tiny_loss(net, rank)
        loss.backward()
        losses.append(float(loss.detach()))
        for name, p in net.named_parameters():
            if p.grad is not None:
                expected_grads.setdefault(name, []).append(p.grad)
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        for name, grad in got["grads"].items():
            if name.startswith("unused"):
                assert grad is None, name  # no gradient is invented for an unused parameter
            else:
                torch.testing.assert_close(grad, torch.stack(expected_grads[name]).mean(0), rtol=0, atol=1e-7)
        assert abs(float(got["loss"]) - sum(losses) / 2) < 1e-7
        assert got["stats"] == {"one": 1.0, "rank": 0.5}
        assert got["votes"] == [True, False]
        assert got["gathered"] == [0, 1]


@contextlib.contextmanager
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def identical_images(folder, count: int = 6) -> None:
    """A dataset whose every image is the same, so that every rank's batch is the same."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
    for i in range(count):
        Image.fromarray(image).save(folder / f"{i}.png")


def test_two_processes_with_the_same_draws_train_exactly_as_one(tmp_path):
    """The average of identical gradients is that gradient, bit for bit: so every collective, vote and
    broadcast of the loop leaves the single-process arithmetic untouched, through a stage hand-off from
    the best snapshot too."""
    data = tmp_path / "same"
    identical_images(data)
    stages = (
        StageConfig("r16", 16, 2, 2, 2e-4, 2e-3, nerf_noise_steps=3, start_from="best"),
        StageConfig("r32", 32, 2, 2, 2e-4, 2e-3),
    )
    config = micro_config(*stages, xflip=False, snapshot_every=1, preview_every=2)
    single = Trainer(config, tmp_path / "single", data, TrainOptions(progress=False))
    with one_thread():  # as each rank runs: the sums inside a product depend on the thread count
        single.run()
    out = tmp_path / "out"
    out.mkdir()
    ddp_workers.spawn(ddp_workers.train_body, 2, config, tmp_path / "pair", data, 4, out, True)
    for rank in range(2):
        got = torch.load(out / f"rank{rank}.pt", weights_only=True)
        for name in ("G", "G_ema", "D"):
            mine = ddp_workers.weights(getattr(single, name))
            diff = max(float((got[name][k] - mine[k]).abs().max()) for k in mine)
            assert diff == 0, (rank, name, diff)
        assert got["state"] == {"global_step": 4, "images_seen": 4 * 2 * 2}
    assert single.state.stage == 1 and single.state.stage_started_from is not None  # the hand-off ran


def test_two_processes_stay_in_step_and_resume_exactly(tmp_path, blob_folder):
    config = micro_config(STAGE, snapshot_every=100, preview_every=100)
    straight, halves = tmp_path / "straight", tmp_path / "halves"
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
    ddp_workers.spawn(ddp_workers.train_body, 2, config, straight, blob_folder, 4, tmp_path / "a", False)
    ddp_workers.spawn(ddp_workers.train_body, 2, config, halves, blob_folder, 2, tmp_path / "b", False)
    ddp_workers.spawn(ddp_workers.train_body, 2, config, halves, blob_folder, 4, tmp_path / "c", False)
    a = [torch.load(tmp_path / "a" / f"rank{r}.pt", weights_only=True) for r in range(2)]
    c = [torch.load(tmp_path / "c" / f"rank{r}.pt", weights_only=True) for r in range(2)]
    for name in ("G", "G_ema", "D"):
        for got in (a[1], c[0], c[1]):  # the ranks agree, and the resumed run is the straight one
            assert all(torch.equal(got[name][k], a[0][name][k]) for k in a[0][name]), name
    assert c[0]["resume_note"] is None
    snap = load_snapshot(halves)
    assert snap.state.global_step == 4 and snap.state.images_seen == 4 * 2 * 2
    assert len(snap.rng["other_ranks"]) == 1
    assert dict(describe(halves))["processes"] == 2  # cips3d info: what a resume needs to be exact
    single = Trainer(config, tmp_path / "single", blob_folder, TrainOptions(progress=False))
    single.run()  # the second rank's own images and draws change the result
    assert dict(describe(tmp_path / "single"))["processes"] == 1
    mine = ddp_workers.weights(single.D)
    assert not all(torch.equal(a[0]["D"][k], mine[k]) for k in mine)


def test_resuming_on_another_number_of_processes_says_it_is_not_exact(tmp_path, blob_folder):
    config = micro_config(STAGE, snapshot_every=100, preview_every=100)
    run = tmp_path / "run"
    Trainer(config, run, blob_folder, TrainOptions(progress=False, max_steps=1)).run()
    out = tmp_path / "out"
    out.mkdir()
    ddp_workers.spawn(ddp_workers.train_body, 2, config, run, blob_folder, 2, out, False)
    got = torch.load(out / "rank0.pt", weights_only=True)
    assert (
        "trained by 1 process and continues on 2, so each step now takes 2 x batch-size images instead of 1 x"
        in got["resume_note"]
    )
    assert got["state"] == {"global_step": 2, "images_seen": 2 + 2 * 2}


def test_torchrun_launches_a_run_that_only_rank_zero_writes_and_reports(tmp_path, blob_folder):
    done = ddp_workers.torchrun_cips3d(
        "train", "--data", str(blob_folder), "--preset", "tiny", "--batch-size", "2", "--outdir",
        str(tmp_path / "run"), "--max-steps", "2", "--quiet",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines.count("cips3d train: 2 processes, 2 x 2 images per step.") == 1
    assert sum("step 2, stage r16 (2/300); snapshot " in line for line in lines) == 1, lines
    snap = load_snapshot(tmp_path / "run")
    assert snap.state.images_seen == 2 * 2 * 2
    assert len(list((tmp_path / "run" / "logs").glob("events.out.tfevents.*"))) == 1


def test_an_explicit_gpu_index_under_torchrun_is_refused():
    from cips3d.cli.train import process_device  # noqa: PLC0415

    world = World(1, 2, 1, 2)
    assert process_device(torch.device("cpu"), world, "cpu") == torch.device("cpu")
    with pytest.raises(UserError, match="use --device cuda"):
        process_device(torch.device("cuda", 0), world, "cuda:0")


def test_the_ranks_share_each_step_of_the_data_order_without_overlap(tmp_path, blob_folder):
    def first_batch(batch_size: int, world: World) -> torch.Tensor:
        stage = dataclasses.replace(STAGE, batch_size=batch_size)
        trainer = Trainer(micro_config(stage), tmp_path / "run", blob_folder, TrainOptions(world=world))
        return next(trainer._batches(stage))

    whole = first_batch(4, World())
    halves = [first_batch(2, World(rank, 2, rank, 2)) for rank in range(2)]
    assert torch.equal(halves[0], whole[0::2]) and torch.equal(halves[1], whole[1::2])


def test_processes_leave_together_after_work_and_at_once_after_a_failure(monkeypatch):
    calls = []
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(distributed.dist, "get_backend", lambda: "gloo")
    monkeypatch.setattr(distributed.dist, "barrier", lambda: calls.append("barrier"))
    monkeypatch.setattr(distributed.dist, "destroy_process_group", lambda: calls.append("destroy"))
    world = World(0, 2, 0, 2)

    def train(fail: bool) -> int:
        with distributed.process_group(world, torch.device("cpu")):
            if fail:
                raise UserError("disk full")
            return 0  # a return inside the block is a normal end

    assert train(fail=False) == 0 and calls == ["barrier", "destroy"]
    calls.clear()
    with pytest.raises(UserError):
        train(fail=True)
    assert calls == ["destroy"]  # a peer may never reach a barrier: no waiting for it


@pytest.mark.parametrize("together", [True, False])
def test_on_older_pytorch_gloo_gets_the_gil_back_before_the_group_is_destroyed(monkeypatch, together):
    """Their gloo destructor holds the GIL while its workers may need it (a hang in a quarter of
    two-process runs with torch 2.4.1; `make test-oldest` runs the real thing): let it go first."""
    calls = []
    monkeypatch.setattr(distributed, "_GLOO_DESTRUCTOR_HOLDS_GIL", True)
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(distributed.dist, "get_backend", lambda: "gloo")
    monkeypatch.setattr(distributed.dist, "barrier", lambda: calls.append("barrier"))
    monkeypatch.setattr(distributed.dist, "destroy_process_group", lambda: calls.append("destroy"))
    monkeypatch.setattr(distributed.time, "sleep", lambda s: calls.append(f"sleep {s}"))
    distributed.leave(World(0, 2, 0, 2), together=together)
    waits = [f"sleep {distributed.GLOO_SETTLE_SECONDS}", "destroy"]
    assert calls == (["barrier", *waits] if together else waits)
    calls.clear()
    monkeypatch.setattr(distributed, "_GLOO_DESTRUCTOR_HOLDS_GIL", False)  # PyTorch 2.9 and later
    distributed.leave(World(0, 2, 0, 2), together=together)
    assert calls == (["barrier", "destroy"] if together else ["destroy"])


def test_processes_started_with_other_images_are_refused_and_said_once(tmp_path, blob_folder):
    """Rank 1 given other images: every process stops before training (they trained on the two sets,
    and other settings made them wait for each other forever), and only rank 0 says why."""
    write_blobs(tmp_path / "other", count=10, seed=3)
    common = ["train", "--preset", "tiny", "--batch-size", "2", "--max-steps", "2", "--quiet"]
    argv = [[*common, "--data", str(data), "--outdir", str(tmp_path / f"run{rank}")]
            for rank, data in enumerate((blob_folder, tmp_path / "other"))]  # fmt: skip
    ddp_workers.spawn(ddp_workers.command_body, 2, argv, tmp_path)
    rank0, rank1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2))
    assert rank0["code"] == rank1["code"] == 2 and rank1["err"] == ""
    assert rank0["err"].strip() == (
        "cips3d train: error: the job's processes were not started alike: against rank 0, rank 1 has other "
        "images (--data). Start every process with the same command, images and run folder."
    )
    assert not (tmp_path / "run0" / "snapshots").exists()
    # A mistake every process makes alike is said once, as one process says it.
    argv = [[*common, "--data", str(tmp_path / "missing"), "--outdir", str(tmp_path / "r")]] * 2
    ddp_workers.spawn(ddp_workers.command_body, 2, argv, tmp_path)
    rank0, rank1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2))
    assert rank0["code"] == rank1["code"] == 2 and rank1["err"] == ""
    assert len(rank0["err"].strip().splitlines()) == 1 and "missing" in rank0["err"]
    # Other limits: train2d's ranks waited for each other for good, train's rank 0 crashed on a --minutes
    # only rank 1 had.
    argv = [[*common, "--data", str(blob_folder), "--outdir", str(tmp_path / "l")]] * 2
    argv = [argv[0], [*argv[1], "--minutes", "5"]]
    ddp_workers.spawn(ddp_workers.command_body, 2, argv, tmp_path)
    rank0, rank1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2))
    assert rank0["code"] == rank1["code"] == 2 and rank1["err"] == ""
    assert "rank 1 has other limits or scoring (--max-steps, --minutes, --fid)" in rank0["err"]
    # A folder another job trains is said once, by rank 0, before anything starts.
    with run_lock(tmp_path / "busy"):
        argv = [[*common, "--data", str(blob_folder), "--outdir", str(tmp_path / "busy")]] * 2
        ddp_workers.spawn(ddp_workers.command_body, 2, argv, tmp_path)
    rank0, rank1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2))
    assert rank0["code"] == rank1["code"] == 2 and rank1["err"] == ""
    assert rank0["err"].count("\n") == 1 and "busy is being trained by another process" in rank0["err"]


def _fails_alone():
    raise UserError("alone")


def test_what_differs_or_fails_is_named_with_its_ranks():
    same = {"settings": "a", "images": "f", "step": 0, "limits": [None, None, 0]}
    reports = [(None, same), (None, same | {"step": 5}), (None, same | {"step": 5, "settings": "b"})]
    assert distributed._disagreements(reports) == (
        "the job's processes were not started alike: against rank 0, ranks 1, 2 have another snapshot "
        "(--resume); rank 2 has other settings (the command's flags). Start every process with the same "
        "command, images and run folder."
    )
    assert distributed._disagreements([(None, same)] * 3) is None
    failed = [(None, same), ("no images at /d.", None), ("no images at /d.", None)]
    assert distributed._failures(failed) == "ranks 1, 2: no images at /d."
    assert distributed._failures([("x.", None)] * 2) == "x."  # every process alike: said as one says it
    with pytest.raises(UserError, match="^alone$"):  # a single process raises its own error
        distributed.start_together(World(), _fails_alone, dict)


def test_a_process_that_dies_is_one_sentence_on_the_others_naming_the_snapshot_to_resume(
    tmp_path, blob_folder
):
    """Rank 1 killed in its third iteration: rank 0 said a 40-line gloo traceback; now one sentence with
    the newest snapshot (written at step 1) and the command that resumes."""
    run = tmp_path / "run"
    done = ddp_workers.run_with_a_dying_rank(
        [
            "train",
            "--data",
            str(blob_folder),
            "--preset",
            "tiny",
            "--batch-size",
            "2",
            "--outdir",
            str(run),
            "--max-steps",
            "6",
            "--snapshot-every",
            "1",
            "--quiet",
        ]  # fmt: skip
    )
    assert done.returncode == 2, done.stderr[-3000:]
    (line,) = [line for line in done.stderr.splitlines() if line.strip()]
    assert line.startswith("cips3d train: error: another process of the job stopped or cannot be reached (")
    assert f"the newest complete snapshot is {run / 'snapshots'}" in line
    assert line.endswith(f"`cips3d train --resume {run}` continues from it.")
    assert "Traceback" not in done.stderr


def test_collective_failures_are_told_from_other_errors(tmp_path):
    gloo = RuntimeError(
        "[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:553] Connection closed by peer "
        "[127.0.0.1]:37787. This is typically caused by a remote worker crashing. GLHF!"
    )
    assert distributed.collective_failure(gloo) == "Connection closed by peer [127.0.0.1]:37787"
    assert distributed.collective_failure(RuntimeError("shape mismatch")) is None
    assert distributed.lost_peer(gloo, World(), tmp_path, "train") is None  # alone: no peer to lose
    said = str(distributed.lost_peer(gloo, World(0, 2), tmp_path, "train"))
    assert said.endswith("so this one stopped too; no snapshot was written yet.")
