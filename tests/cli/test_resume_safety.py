"""What stops a run from being lost or changed by a resume: runs inside another run's snapshots, a resume
on other data, settings given again, a resume with nothing to do, a run of the other kind, and how a
stopped `train` reports itself."""

from __future__ import annotations

import json
import os
import shutil
import signal
import warnings

import pytest

from cips3d.training.snapshot import (
    check_run_outside_data,
    clear_unsnapshotted_start,
    list_snapshots,
    load_snapshot,
)
from cips3d.training.trainer import Trainer
from tests.cli.helpers import run

TINY_2D = ["--batch-size", "2", "--snapshot-every", "1", "--quiet", "--device", "cpu"]
TINY_3D = ["--preset", "tiny", "--batch-size", "2", "--preview-every", "1000", "--quiet", "--device", "cpu"]


def train2d(capsys, *argv: str):
    return run(capsys, "train2d", *argv, *TINY_2D)


def names(run_dir) -> list[str]:
    return [p.name for p in list_snapshots(run_dir / "snapshots")]


def test_no_run_is_written_inside_another_runs_snapshots(capsys, tmp_path, blob_folder):
    out = tmp_path / "run"
    assert train2d(capsys, "--data", str(blob_folder), "--outdir", str(out), "--max-steps", "2")[0] == 0
    inside = out / "snapshots" / "step-000000002"
    code, _, err = train2d(capsys, "--data", str(blob_folder), "--outdir", str(inside), "--max-steps", "1")
    assert code == 2 and f"lies inside the snapshots of the run in {out}" in err
    code, _, err = run(
        capsys, "train", "--data", str(blob_folder), "--outdir", str(out / "snapshots"), *TINY_3D
    )
    assert code == 2 and "lies inside the snapshots" in err
    # --resume --outdir SNAPSHOT is --resume SNAPSHOT: an older one is refused, the newest continues the run.
    code, _, err = train2d(capsys, "--resume", "--outdir", str(out / "snapshots" / "step-000000001"),
                           "--max-steps", "3")  # fmt: skip
    assert code == 2 and "has newer snapshots than step-000000001" in err
    assert train2d(capsys, "--resume", "--outdir", str(out / "snapshots"), "--max-steps", "3")[0] == 0
    assert names(out) == ["step-000000001", "step-000000002", "step-000000003"]
    assert not (inside / "snapshots").exists() and not (out / "snapshots" / "run.json").exists()


def test_a_resume_goes_on_with_its_own_data(capsys, tmp_path, blob_folder):
    data, other, out = tmp_path / "data", tmp_path / "other", tmp_path / "run"
    shutil.copytree(blob_folder, data)
    shutil.copytree(blob_folder, other)
    (other / "000.png").unlink()
    assert train2d(capsys, "--data", str(data), "--outdir", str(out), "--max-steps", "1")[0] == 0
    code, _, err = train2d(capsys, "--resume", str(out), "--data", str(other), "--max-steps", "2")
    assert code == 2 and f"the images at {other} are not the ones {out} was trained on (23 images now" in err
    data.rename(tmp_path / "moved")
    code, _, err = train2d(capsys, "--resume", str(out), "--max-steps", "2")
    assert code == 2 and f"the run's dataset {data} (recorded in its run.json) is gone; give --data" in err
    code, _, err = train2d(
        capsys, "--resume", str(out), "--data", str(tmp_path / "moved"), "--max-steps", "2"
    )
    assert code == 0, err
    assert load_snapshot(out).state.global_step == 2 and names(out) == ["step-000000001", "step-000000002"]


def test_a_resume_on_other_images_is_refused_wherever_they_are(capsys, tmp_path, blob_folder):
    """The run records its images' fingerprint (names and sizes): a moved copy passes, other images do
    not, whether under the recorded path (some deleted) or given when the recorded one is gone."""
    data, out3, out2 = tmp_path / "data", tmp_path / "run3", tmp_path / "run2"
    shutil.copytree(blob_folder, data)
    assert (
        run(capsys, "train", "--data", str(data), "--outdir", str(out3), "--max-steps", "1", *TINY_3D)[0] == 0
    )
    assert train2d(capsys, "--data", str(data), "--outdir", str(out2), "--max-steps", "1")[0] == 0
    for extra in sorted(data.iterdir())[:6]:
        extra.unlink()
    code, _, err = run(capsys, "train", "--resume", str(out3), "--max-steps", "2", "--quiet")
    assert (
        code == 2 and f"the images at {data} are not the ones {out3} was trained on (18 images now, 24" in err
    )
    data.rename(tmp_path / "gone")
    other = tmp_path / "other"
    shutil.copytree(blob_folder, other)
    (other / "000.png").unlink()
    code, _, err = train2d(capsys, "--resume", str(out2), "--data", str(other), "--max-steps", "2")
    assert code == 2 and f"not the ones {out2} was trained on (23 images now, 24 when it was trained)" in err
    assert names(out2) == ["step-000000001"] and names(out3) == ["step-000000001"]
    code, _, err = train2d(capsys, "--resume", str(out2), "--data", str(blob_folder), "--max-steps", "2")
    assert code == 0, err  # the same images elsewhere: a moved copy
    (tmp_path / "gone").rename(data)  # the recorded folder is back, but holds other images (18)
    code, _, err = run(capsys, "train", "--resume", str(out3), "--data", str(blob_folder), "--max-steps", "2",
                       "--quiet")  # fmt: skip
    assert code == 0, err  # an identical copy elsewhere is taken although the recorded path exists
    (out3 / "run.json").write_text("{not json")
    code, _, err = run(capsys, "train", "--resume", str(out3), "--max-steps", "3", "--quiet")
    assert code == 2 and f"{out3 / 'run.json'} cannot be read (" in err and "restore it, or delete it" in err


def test_a_run_folder_inside_its_data_folder_is_refused(capsys, tmp_path, blob_folder):
    data, outside = tmp_path / "data", tmp_path / "outside"
    shutil.copytree(blob_folder, data)
    outside.mkdir()
    (data / "linked").symlink_to(outside)  # a link inside the data is walked as data too
    for command, where in ((["train", *TINY_3D], data / "run"), (["train2d", *TINY_2D], data / "linked")):
        code, _, err = run(capsys, *command, "--data", str(data), "--outdir", str(where), "--max-steps", "1")
        assert code == 2 and "lies inside the data folder" in err, err
        assert "previews would become training images" in err
        assert not (data / "run").exists() and not list(outside.iterdir())


def test_a_training_run_given_as_data_is_refused(capsys, tmp_path, blob_folder):
    """`train --data runs/a` (a run) and `--data runs` (a folder of runs) trained on the runs' preview
    grids as photos, exit 0."""
    runs = tmp_path / "runs"
    shutil.copytree(blob_folder, runs / "a" / "photos")
    (runs / "a" / "run.json").write_text("{}")
    check_run_outside_data(tmp_path / "new", runs)  # a stray run.json among photos is no run
    (runs / "a" / "photos").rename(runs / "a" / "previews")  # a run stopped before its first snapshot
    for data, command in ((runs / "a", ["train", *TINY_3D]), (runs, ["train2d", *TINY_2D])):
        code, _, err = run(capsys, *command, "--data", str(data), "--outdir", str(tmp_path / "new"),
                           "--max-steps", "1")  # fmt: skip
        assert (
            code == 2 and f"the data folder {data} holds the training run (or snapshot) {runs / 'a'}" in err
        )
        assert not (tmp_path / "new").exists()


def run_files(run_dir) -> dict:
    """Each file of a run and when it was written, less the lock file (a resume that finds nothing to do
    still holds the folder's lock while it looks, and the lock names its holder)."""
    return {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file() and p.name != ".lock"}


def test_settings_given_again_are_compared_in_words_and_a_finished_resume_touches_nothing(
    capsys, tmp_path, blob_folder
):
    out = tmp_path / "run"
    assert train2d(capsys, "--data", str(blob_folder), "--outdir", str(out), "--max-steps", "2")[0] == 0
    code, _, err = train2d(capsys, "--resume", str(out), "--xflip", "--width", "32", "--max-steps", "3")
    assert code == 2 and "other settings than --xflip (the run's: off):" in err and "--width" not in err
    files = run_files(out)
    code, text, err = train2d(capsys, "--resume", str(out), "--max-steps", "1")
    assert code == 0 and "already at step 2 (--max-steps 1); nothing to do." in text, err
    assert run_files(out) == files


def test_a_finished_run_resumed_on_other_images_is_refused_not_said_to_have_nothing_to_do(
    capsys, tmp_path, blob_folder
):
    other, out3, out2 = tmp_path / "other", tmp_path / "run3", tmp_path / "run2"
    shutil.copytree(blob_folder, other)
    (other / "000.png").unlink()
    assert run(capsys, "train", "--data", str(blob_folder), "--outdir", str(out3), "--max-steps", "1",
               *TINY_3D)[0] == 0  # fmt: skip
    assert train2d(capsys, "--data", str(blob_folder), "--outdir", str(out2), "--max-steps", "1")[0] == 0
    for command, out in (("train", out3), ("train2d", out2)):
        code, _, err = run(capsys, command, "--resume", str(out), "--data", str(other), "--max-steps", "1")
        assert code == 2 and f"not the ones {out} was trained on (23 images now, 24 when" in err, err
        code, text, _ = run(
            capsys, command, "--resume", str(out), "--data", str(blob_folder), "--max-steps", "1"
        )
        assert code == 0 and "nothing to do" in text  # its own images: nothing left to do, as before


def test_train_resume_accepts_the_runs_own_settings_and_names_others(capsys, tmp_path, blob_folder):
    out = tmp_path / "run"
    first = ["--data", str(blob_folder), "--outdir", str(out), "--max-steps", "1"]
    assert run(capsys, "train", *first, *TINY_3D)[0] == 0
    # The same flags again (and the default seed) change nothing; --outdir names the run --resume continues.
    again = ["--outdir", str(out), "--resume", "--seed", "1234", "--max-steps", "2"]
    code, _, err = run(capsys, "train", *again, *TINY_3D)
    assert code == 0, err
    assert load_snapshot(out).state.global_step == 2
    files = run_files(out)
    code, _, err = run(capsys, "train", "--resume", str(out), "--preset", "tiny-finetune", "--seed", "7",
                       "--batch-size", "3", "--max-steps", "3", "--quiet")  # fmt: skip
    named = (
        "other settings than --preset tiny-finetune (the run's: tiny); --seed 7 (the run's: 1234); "
        "--batch-size 3 (the run's: 2): --resume continues a run with its own"
    )
    assert code == 2 and named in err
    code, _, err = run(
        capsys, "train", "--resume", str(out), "--init", str(out), "--max-steps", "3", "--quiet"
    )
    assert code == 2 and "--init starts a new run from other weights, --resume continues one" in err
    assert run_files(out) == files


def test_a_run_of_the_other_kind_is_named_as_such(capsys, tmp_path, blob_folder):
    two_d = tmp_path / "two_d"
    assert train2d(capsys, "--data", str(blob_folder), "--outdir", str(two_d), "--max-steps", "1")[0] == 0
    code, _, err = run(capsys, "train", "--resume", str(two_d), "--quiet")
    assert code == 2 and "is a 2D CIPS training run; cips3d train2d --resume continues it" in err
    code, _, err = run(capsys, "train", "--data", str(blob_folder), "--init", str(two_d), "--outdir",
                       str(tmp_path / "t"), *TINY_3D)  # fmt: skip
    assert code == 2 and "is a 2D CIPS training run; cips3d train2d --init fine-tunes from it" in err
    code, _, err = run(capsys, "train", "--data", str(blob_folder), "--outdir", str(two_d), *TINY_3D)
    assert code == 2 and f"continue it with cips3d train2d --resume {two_d}" in err


def test_train_stopped_by_a_signal_exits_130_and_a_resume_refuses_seed_0(
    capsys, tmp_path, blob_folder, monkeypatch
):
    iteration = Trainer._iteration

    def signalled(self, stage, reals):
        if self.state.global_step == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return iteration(self, stage, reals)

    monkeypatch.setattr(Trainer, "_iteration", signalled)
    out = tmp_path / "run"
    code, text, err = run(capsys, "train", "--data", str(blob_folder), "--outdir", str(out), "--max-steps",
                          "4", *TINY_3D)  # fmt: skip
    assert code == 130 and f"stopped at step 2; snapshot written, --resume {out} continues" in text, err
    assert "stopping after this step" in err and load_snapshot(out).state.global_step == 2
    code, _, err = run(capsys, "train", "--resume", str(out), "--seed", "0", "--quiet")
    assert code == 2 and "--seed 0 (the run's: 1234)" in err


def test_recorded_options_are_checked_and_can_be_turned_off(capsys, tmp_path, blob_folder):
    out = tmp_path / "run"
    assert run(capsys, "train", "--data", str(blob_folder), "--outdir", str(out), "--max-steps", "1",
               "--tf32",
               *TINY_3D)[0] == 0  # fmt: skip
    record = json.loads((out / "run.json").read_text())
    for name, value in (("max_steps", "10"), ("max_steps", 0), ("fid", 1), ("fid", 2.5)):
        (out / "run.json").write_text(json.dumps(record | {"options": record["options"] | {name: value}}))
        code, _, err = run(capsys, "train", "--resume", str(out), "--quiet")
        flag = "--" + name.replace("_", "-")
        assert code == 2 and f"run.json records {flag} {value!r}, which no run takes; give {flag}" in err
    (out / "run.json").write_text(json.dumps(record))
    code, text, err = run(capsys, "train", "--resume", str(out), "--max-steps", "2", "--no-tf32", "--quiet")
    assert code == 0 and "--tf32" not in text, err
    assert json.loads((out / "run.json").read_text())["options"]["tf32"] is False
    with pytest.raises(SystemExit) as stopped:
        run(capsys, "train", "--data", str(blob_folder), "--fid", "1", *TINY_3D)
    assert stopped.value.code == 2 and "needs 2 images or more (0: none)" in capsys.readouterr().err


def test_a_new_run_clears_the_logs_of_a_start_that_wrote_no_snapshot(capsys, tmp_path, blob_folder):
    """A start that failed before its first snapshot left logs/ and previews/; a new run there kept them,
    so TensorBoard showed both runs' steps as one."""
    out = tmp_path / "run"
    (out / "logs").mkdir(parents=True)
    (out / "logs" / "events.out.tfevents.1.failed").write_bytes(b"old curves")
    (out / "previews" / "step-000000000").mkdir(parents=True)
    (out / "run.json").write_text("{}")
    code, _, err = run(capsys, "train", *TINY_3D, "--data", str(blob_folder), "--outdir", str(out),
                       "--max-steps", "1")  # fmt: skip
    assert code == 0, err
    assert "removed the logs/ and previews/ of the run that stopped before its first snapshot" in err
    assert not (out / "logs" / "events.out.tfevents.1.failed").exists()
    assert list_snapshots(out / "snapshots") and list((out / "logs").iterdir())  # this run's own
    (out / "logs" / "mine.txt").write_text("kept")  # a run with a snapshot is never cleared
    assert clear_unsnapshotted_start(out) == [] and (out / "logs" / "mine.txt").exists()


def test_a_cpu_resume_multiplies_through_the_route_its_run_recorded(tmp_path, monkeypatch):
    """The start-up timing picks MKL or oneDNN per process; the two round differently, so a resume that
    timed the other way (another process loading the CPU) was not bit for bit."""
    import json  # noqa: PLC0415

    import torch  # noqa: PLC0415

    from cips3d.cli import resuming  # noqa: PLC0415
    from cips3d.training.snapshot import run_options  # noqa: PLC0415

    assert "matmul_route" in run_options(None, 0, None)  # recorded with every run
    (tmp_path / "run.json").write_text(json.dumps({"options": {"matmul_route": "oneDNN"}}))
    switched = []
    monkeypatch.setattr(resuming, "matmul_route", lambda: "default (MKL)")
    monkeypatch.setattr(resuming, "use_matmul_route", lambda name: switched.append(name) or True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resuming.keep_matmul_route(tmp_path, torch.device("cpu"))
    assert switched == ["oneDNN"]
    monkeypatch.setattr(resuming, "use_matmul_route", lambda name: False)  # a machine without it
    with pytest.warns(UserWarning, match="trained with float32 products through oneDNN, which this machine"):
        resuming.keep_matmul_route(tmp_path, torch.device("cpu"))
    switched.clear()
    resuming.keep_matmul_route(tmp_path, torch.device("meta"))  # not a CPU: nothing to keep
    assert switched == []
