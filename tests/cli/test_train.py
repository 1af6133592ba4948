"""`cips3d train` end to end: a short run, resume, kill -9, and one-sentence errors."""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from cips3d.cli.train import _workers_arg, default_workers
from cips3d.io.images import read_png_record
from cips3d.training.snapshot import list_snapshots, load_snapshot
from tests.cli.helpers import run
from tests.conftest import write_blobs

FAST = ["--preset", "tiny", "--batch-size", "2", "--preview-every", "1000", "--quiet", "--device", "cpu"]


def test_train_then_resume(tmp_path, capsys, blob_folder):
    outdir = tmp_path / "run"
    args = ["--data", str(blob_folder), "--outdir", str(outdir), "--max-steps", "2", "--snapshot-every", "1"]
    code, out, _ = run(capsys, "train", *args, *FAST)
    assert code == 0 and "step 2" in out
    assert [p.name for p in list_snapshots(outdir / "snapshots")][-1] == "step-000000002"
    assert (
        outdir / "previews" / "step-000000002" / "G_ema.png"
    ).is_file()  # a stop has one, whatever --preview-every
    preview = read_png_record(outdir / "previews" / "step-000000002" / "G_ema.png")  # and says what it is
    assert (preview["command"], preview["step"], preview["output"]) == ("cips3d train", 2, "preview (G_ema)")
    code, out, _ = run(capsys, "train", "--resume", str(outdir), "--max-steps", "3", "--quiet")
    assert code == 0 and "step 3" in out and load_snapshot(outdir).state.global_step == 3
    history = (outdir / "metrics.jsonl").read_text()
    code, out, _ = run(capsys, "train", "--resume", str(outdir), "--max-steps", "2", "--quiet")
    assert code == 0 and "already at step 3 (--max-steps 2); nothing to do" in out
    assert (outdir / "metrics.jsonl").read_text() == history
    names = [p.name for p in list_snapshots(outdir / "snapshots")]
    code, _, err = run(capsys, "train", "--resume", str(outdir / "snapshots" / "step-000000001"), "--quiet")
    assert code == 2 and "has newer snapshots than step-000000001 (the newest is step-000000003)" in err
    code, _, err = run(capsys, "train", "--resume", str(outdir), "--outdir", str(tmp_path / "b"), "--quiet")
    assert code == 2 and f"continues the run in {outdir}; leave out --outdir" in err
    assert [p.name for p in list_snapshots(outdir / "snapshots")] == names
    # What a resume may change: which snapshots are written and kept, not what is trained.
    code, _, err = run(capsys, "train", "--resume", str(outdir), "--max-steps", "4", "--keep", "1", "--quiet")
    assert code == 0, err
    snapshot = load_snapshot(outdir)
    assert snapshot.state.global_step == 4 and snapshot.config["keep_snapshots"] == 1
    kept = {p.name for p in list_snapshots(outdir / "snapshots")}
    assert kept == {"step-000000004", snapshot.state.best_snapshot}


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda tmp, blobs: ["--data", str(tmp / "empty")], "no images"),
        (lambda tmp, blobs: ["--data", str(tmp / "corrupt")], "could be read"),
        (lambda tmp, blobs: ["--data", str(tmp / "missing")], "no folder or zip"),
        (lambda tmp, blobs: ["--resume", str(tmp / "empty")], "no complete training snapshot"),
        (lambda tmp, blobs: ["--resume", str(tmp / "nothing")], "nothing to resume"),
        (lambda tmp, blobs: ["--resume"], "give the run to continue: --resume RUN."),
        (lambda tmp, blobs: ["--data", str(blobs), "--init", str(tmp / "none.pth")], "nothing to start from"),
        (lambda tmp, blobs: [], "give --data"),
        (lambda tmp, b: ["--data", str(b), "--fid", "4", "--inception", str(tmp / "x.pt")], "no Inception"),
        (lambda tmp, blobs: ["--data", str(blobs), "--inception", str(tmp / "x.pt")], "give --fid"),
        (lambda tmp, b: ["--data", str(tmp / "one"), "--fid", "4"], "FID and KID compare feature statistics"),
        (lambda tmp, b: ["--data", str(b), "--preset", "tiny-finetune"], "give --init with that model"),
    ],
    ids=[
        "empty", "corrupt", "missing", "resume-empty", "resume-missing", "resume-nothing", "init", "no-data",
        "fid-network-missing", "inception-without-fid", "fid-one-image", "finetune-without-init",
    ],
)  # fmt: skip
def test_user_errors_end_in_one_sentence_and_exit_2(tmp_path, capsys, blob_folder, make_args, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "a.png").write_bytes(b"not a png")
    (tmp_path / "corrupt" / "b.jpg").write_text("nor a jpeg")
    write_blobs(tmp_path / "one", count=1)  # --fid: said before the first step, not after the first snapshot
    args = make_args(tmp_path, blob_folder)
    where = [] if "--resume" in args else ["--outdir", str(tmp_path / "o")]  # a resume stays in its run
    code, _, err = run(capsys, "train", *args, *where, "--quiet")
    assert code == 2 and not (tmp_path / "o").exists()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err


def test_tf32_is_accepted_and_says_it_changes_nothing_on_a_cpu(tmp_path, capsys, blob_folder):
    args = ["--data", str(blob_folder), "--outdir", str(tmp_path / "run"), "--max-steps", "1", "--tf32"]
    code, out, err = run(capsys, "train", *args, *FAST)
    assert code == 0 and "step 1" in out and "tf32 needs a CUDA GPU" in err
    assert (
        f"; snapshot {tmp_path / 'run' / 'snapshots' / 'step-000000001'}, previews in " in out
    )  # where they went
    # one step of a stage whose EMA starts at step 20 (tiny): G_ema is still the initial one
    assert "note: G_ema, which sample, blend and convert read, follows G from step 20 of a stage" in out


def test_the_g_ema_note_is_said_only_before_the_stages_ema_begins(capsys):
    from cips3d.cli.train import _note_still_ema  # noqa: PLC0415

    _note_still_ema(20, 20)
    _note_still_ema(0, 0)
    assert capsys.readouterr().out == ""
    _note_still_ema(1000, 999)
    assert "this stage is at step 999: it is still as the stage began" in capsys.readouterr().out


def test_workers_default_to_none_on_a_cpu_and_half_the_cores_beside_a_gpu():
    assert default_workers(torch.device("cpu"), cpu_count=16) == 0
    assert default_workers(torch.device("cuda"), cpu_count=16) == 8
    assert default_workers(torch.device("cuda"), cpu_count=6) == 3
    assert default_workers(torch.device("cuda"), cpu_count=64) == 8
    assert default_workers(torch.device("cuda"), cpu_count=1) == 0
    # torchrun's processes on one machine share its cores
    assert default_workers(torch.device("cuda"), cpu_count=16, processes_per_machine=8) == 1
    assert default_workers(torch.device("cuda"), cpu_count=64, processes_per_machine=4) == 8
    assert _workers_arg("auto") == "auto" and _workers_arg("0") == 0 and _workers_arg("3") == 3
    for bad in ("-1", "many"):
        with pytest.raises(argparse.ArgumentTypeError):
            _workers_arg(bad)


def test_a_new_run_refuses_a_folder_that_holds_one(tmp_path, capsys, blob_folder):
    outdir = tmp_path / "run"
    args = ["train", "--data", str(blob_folder), "--outdir", str(outdir), "--max-steps", "1", *FAST]
    assert run(capsys, *args)[0] == 0
    code, _, err = run(capsys, *args)
    assert code == 2 and "already holds a run" in err


def test_a_torchrun_restart_continues_the_run_its_job_wrote_and_no_other(
    tmp_path, capsys, blob_folder, monkeypatch
):
    """torchrun --max-restarts starts the same command again after a failure: without this it refused
    the folder its first start had written ("already holds a run") until the restarts ran out. Only the
    job's own run is continued: a run another job left in the folder is still refused."""
    outdir = tmp_path / "run"
    args = ["train", "--data", str(blob_folder), "--outdir", str(outdir), *FAST]
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job-a")  # as torchrun sets it, in every start of the job
    assert run(capsys, *args, "--max-steps", "1")[0] == 0
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    code, _, err = run(capsys, *args, "--max-steps", "2")
    assert code == 0 and f"torchrun restart 1: continuing the run in {outdir}" in err
    assert load_snapshot(outdir).state.global_step == 2
    code, _, err = run(capsys, *args, "--max-steps", "3", "--batch-size", "3")  # not the run's settings
    assert code == 2 and "--batch-size 3 (the run's: 2)" in err
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job-b")  # another job, sent to a folder holding a run
    code, _, err = run(capsys, *args, "--max-steps", "3")
    assert code == 2 and "already holds a run" in err and load_snapshot(outdir).state.global_step == 2
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "none")  # torchrun's shared default tells no job apart
    code, _, err = run(capsys, *args, "--max-steps", "3")
    assert code == 2 and "already holds a run" in err
    fresh = tmp_path / "fresh"  # the first start failed before its first snapshot: start afresh
    code, _, err = run(
        capsys, "train", "--data", str(blob_folder), "--outdir", str(fresh), "--max-steps", "1", *FAST
    )
    assert code == 0 and "torchrun restart" not in err and load_snapshot(fresh).state.global_step == 1


def test_sigkill_at_any_moment_leaves_a_run_that_resumes(tmp_path, capsys):
    data = tmp_path / "data"
    write_blobs(data, count=12, size=16)
    outdir = tmp_path / "run"
    cmd = [sys.executable, "-m", "cips3d", "train", "--data", str(data), "--outdir", str(outdir),
           "--snapshot-every", "1", *FAST]  # fmt: skip
    child = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ | {"OMP_NUM_THREADS": "1"}
    )
    try:
        deadline = time.monotonic() + 120
        while len(list_snapshots(outdir / "snapshots")) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(random.Random().uniform(0, 0.6))  # anywhere: mid-step or mid-snapshot
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    snap = load_snapshot(outdir)
    step = snap.state.global_step
    assert step >= 2
    code, out, _ = run(capsys, "train", "--resume", str(outdir), "--max-steps", str(step + 1), "--quiet")
    assert code == 0 and f"step {step + 1}" in out


def test_a_resume_folder_whose_snapshot_does_not_fit_its_config_exits_2(tmp_path, capsys, blob_folder):
    outdir = tmp_path / "run"
    assert (
        run(capsys, "train", "--data", str(blob_folder), "--outdir", str(outdir), "--max-steps", "1", *FAST)[
            0
        ]
        == 0
    )
    state_file = list_snapshots(outdir / "snapshots")[-1] / "state.json"
    meta = json.loads(state_file.read_text())
    meta["config"]["generator"]["inr"]["hidden_dim"] = 32  # another architecture than the saved weights
    meta["config"]["generator"]["inr_mapping"]["hidden_dim"] = 32
    meta["config"]["generator"]["inr"]["style_dim"] = 32
    state_file.write_text(json.dumps(meta))
    code, _, err = run(capsys, "train", "--resume", str(outdir), "--quiet")
    assert code == 2 and "does not fit its own config" in err and len(err.strip().splitlines()) == 1


def test_a_resume_stops_at_the_runs_own_max_steps(tmp_path, capsys, blob_folder):
    """--max-steps (and --tf32, --fid) are remembered: a resume without them (after Ctrl-C, say) stops
    where the run was asked to, and says so; a new limit replaces it."""
    outdir = tmp_path / "run"
    args = ["--data", str(blob_folder), "--outdir", str(outdir), "--max-steps", "2", "--snapshot-every", "2"]
    assert run(capsys, "train", *args, "--tf32", *FAST)[0] == 0
    assert json.loads((outdir / "metrics.jsonl").read_text().splitlines()[-1])["reason"] == "reached 2 steps"
    code, out, _ = run(capsys, "train", "--resume", str(outdir), "--quiet")
    assert code == 0 and "already at step 2 (the run's --max-steps 2); nothing to do; give a larger" in out
    assert run(capsys, "train", "--resume", str(outdir), "--max-steps", "3", "--quiet")[0] == 0
    (outdir / "snapshots" / "step-000000003").rename(outdir / "snapshots" / ".tmp-gone")  # back to step 2
    code, out, _ = run(capsys, "train", "--resume", str(outdir), "--quiet")
    assert (
        code == 0 and "note: going on with the run's --max-steps 3, --tf32 (give a flag to change it;" in out
    )
    assert load_snapshot(outdir).state.global_step == 3
