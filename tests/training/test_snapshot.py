"""Snapshots: round trip, pruning, and a process killed with SIGKILL in the middle of writing one."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import types

import pytest
import torch
from torch import nn

from cips3d.errors import CheckpointError, UserError
from cips3d.training import snapshot as snapshot_module
from cips3d.training.snapshot import (
    TrainState,
    capture_rng,
    list_snapshots,
    load_snapshot,
    prune_snapshots,
    restore_rng,
    write_snapshot,
)


def write(root, step: int, value: float = 0.0):
    modules = {name: nn.Linear(2, 2) for name in ("G", "G_ema", "D")}
    for m in modules.values():
        nn.init.constant_(m.weight, value)
    opt = torch.optim.Adam(modules["G"].parameters())
    rng = capture_rng({"g": torch.Generator().manual_seed(step)})
    return write_snapshot(root, TrainState(global_step=step), {"k": step}, modules, {"G": opt}, rng)


def test_round_trip(tmp_path):
    path = write(tmp_path, 7, value=0.5)
    snap = load_snapshot(tmp_path)
    assert snap.path == path and snap.state.global_step == 7 and snap.config == {"k": 7}
    assert torch.equal(snap.G["weight"], torch.full((2, 2), 0.5))
    assert set(snap.optimizers) == {"G"}
    umask = os.umask(0)
    os.umask(umask)
    modes = {p.name: p.stat().st_mode & 0o777 for p in path.iterdir()}
    assert set(modes.values()) == {0o666 & ~umask}, modes  # the weights were 0600 beside 0644 files


def test_rng_states_round_trip_and_the_global_generators_are_left_alone():
    g = torch.Generator().manual_seed(3)
    saved = capture_rng({"g": g})
    expected = torch.rand(3, generator=g)
    torch.manual_seed(1)
    global_before = torch.get_rng_state()
    restore_rng(saved, {"g": g})
    assert torch.equal(torch.rand(3, generator=g), expected)
    assert torch.equal(torch.get_rng_state(), global_before) and set(saved) == {"generators"}


def test_prune_keeps_the_newest_and_the_protected(tmp_path):
    for step in range(1, 7):
        write(tmp_path, step)
    deleted = prune_snapshots(tmp_path, keep=2, protect={"step-000000002"})
    kept = [p.name for p in list_snapshots(tmp_path)]
    assert kept == ["step-000000002", "step-000000005", "step-000000006"]
    assert len(deleted) == 3


def test_pruning_clears_folders_left_half_deleted_or_half_written_by_a_killed_run(tmp_path):
    write(tmp_path, 1)
    for leftover in (".del-step-000000000-99999", ".tmp-step-000000001-99999"):  # another pid's
        (tmp_path / leftover).mkdir()
        (tmp_path / leftover / "G.safetensors").write_bytes(b"half")
    prune_snapshots(tmp_path, keep=2, protect=set())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-000000001"]  # .del-* stayed forever before


def test_unreadable_snapshots_raise_one_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="nothing to resume"):
        load_snapshot(tmp_path / "missing")
    with pytest.raises(CheckpointError, match="no complete training snapshot"):
        load_snapshot(tmp_path)
    path = write(tmp_path, 1)
    (path / "G.safetensors").write_bytes(b"broken")
    with pytest.raises(CheckpointError, match="cannot be read") as raised:
        load_snapshot(path)
    assert "previous snapshot" not in str(raised.value)  # there is none


def test_a_damaged_newest_snapshot_names_the_one_to_go_on_from(tmp_path):
    write(tmp_path, 1)
    newest = write(tmp_path, 2)
    (newest / "rng.pt").write_bytes((newest / "rng.pt").read_bytes()[:10])  # cut short
    with pytest.raises(
        CheckpointError, match="previous snapshot, step-000000001, is the one to go on from"
    ) as raised:
        load_snapshot(tmp_path)
    # PyTorch's own words, cut to their first sentence: "... not a ZIP archive. This is an internal miniz
    # error. If you are seeing this error, there is a high likelihood that your checkpoint ..."
    assert "cannot be read (RuntimeError: PytorchStreamReader failed" in str(raised.value)
    assert "If you are seeing" not in str(raised.value) and len(str(raised.value)) < 400
    assert load_snapshot(tmp_path, training_state=False).state  # the weights alone still read
    # Named itself (as --init): "move it out and the run uses the previous one" was advice for a resume.
    with pytest.raises(CheckpointError, match=r"previous snapshot is .*step-000000001: give that one\.$"):
        load_snapshot(newest)
    shutil.move(newest, tmp_path.parent / "set-aside")  # as the message says
    assert load_snapshot(tmp_path).path.name == "step-000000001"


CHILD = textwrap.dedent(
    """
    import sys, time
    import cips3d.training.snapshot as snap
    from tests.training.test_snapshot import write

    root = sys.argv[1]
    write(root, 1, value=1.0)  # a complete snapshot

    def stalled_save(tensors, path, metadata=None):  # write part of the file, then hang mid-snapshot
        with open(path, "wb") as f:
            f.write(b"partial")
            f.flush()
        print("writing", flush=True)
        time.sleep(120)

    snap.save_file = stalled_save
    write(root, 2, value=2.0)
    """
)


def test_sigkill_during_a_snapshot_write_leaves_the_previous_one_loadable(tmp_path):
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=os.getcwd(),
    )
    try:
        assert child.stdout.readline().strip() == "writing"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert any(p.name.startswith(".tmp-step-000000002") for p in tmp_path.iterdir())
    snap = load_snapshot(tmp_path)
    assert snap.state.global_step == 1 and torch.equal(snap.G["weight"], torch.ones(2, 2))
    # The half-written folder is cleaned up by the next prune (it belongs to a dead process).
    prune_snapshots(tmp_path, keep=3, protect=set())
    assert not any(p.name.startswith(".tmp-") for p in tmp_path.iterdir())


def test_a_failed_write_leaves_no_partial_folder_and_names_the_last_good_snapshot(tmp_path, monkeypatch):
    """A full disk mid-write: one sentence naming the cause and the newest complete snapshot; the
    temporary folder (which kept the disk full and failed the next resume) is removed."""
    write(tmp_path, 1)

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(snapshot_module.torch, "save", full)
    with pytest.raises(UserError) as caught:
        write(tmp_path, 2)
    assert str(caught.value) == (
        f"cannot write the snapshot step-000000002 in {tmp_path} ([Errno 28] No space left on device); the "
        "newest complete one is step-000000001."
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-000000001"]


def test_a_full_disk_is_said_in_words_not_in_torchs(tmp_path, monkeypatch):
    write(tmp_path, 1)
    size = sum(f.stat().st_size for f in (tmp_path / "step-000000001").iterdir())

    def cut_short(*args, **kwargs):  # what torch.save said on a full tmpfs
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 238336 vs 238224")

    monkeypatch.setattr(snapshot_module.torch, "save", cut_short)
    monkeypatch.setattr(
        snapshot_module.shutil, "disk_usage", lambda root: types.SimpleNamespace(free=size // 2)
    )
    with pytest.raises(
        UserError, match=r"\(the disk is full: 0\.0 MB free, a snapshot takes about 0\.0 MB\); "
    ):
        write(tmp_path, 2)
    monkeypatch.setattr(
        snapshot_module.shutil, "disk_usage", lambda root: types.SimpleNamespace(free=size * 9)
    )
    with pytest.raises(UserError, match="unexpected pos 238336"):  # room enough: torch's words are the cause
        write(tmp_path, 2)


def test_rewriting_a_step_replaces_its_folder_and_a_crash_while_deleting_the_old_one_loses_neither(
    tmp_path, monkeypatch
):
    write(tmp_path, 4, value=0.25)
    real_rmtree = shutil.rmtree

    def killed_while_deleting(path, *args, **kwargs):
        if os.path.basename(path).startswith(".del-"):
            raise KeyboardInterrupt  # the process dies here
        real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(snapshot_module.shutil, "rmtree", killed_while_deleting)
    with pytest.raises(KeyboardInterrupt):
        write(tmp_path, 4, value=0.75)
    snap = load_snapshot(tmp_path)  # the new one is in place; the old one waits under .del-* for pruning
    assert snap.state.global_step == 4 and torch.equal(snap.G["weight"], torch.full((2, 2), 0.75))
    (old,) = tmp_path.glob(".del-*")
    assert old.name.startswith(".del-step-000000004")
